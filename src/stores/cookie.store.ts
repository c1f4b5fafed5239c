import { randomToken } from '../crypto/random.js';
import { open, seal, SEALED_ID_BYTES } from '../crypto/seal.js';
import type { SessionData, SessionPatch } from '../session.js';
import { SessionsConfigError, SessionSerializationError } from '../sessions.errors.js';
import { jsonObject, serializeFields } from './fields.js';
import { jsonNestsDeeperThan, MAX_VALUE_DEPTH } from './json-value.js';
import type { IssuedToken, LoadedSession, SessionStore, SessionStoreContext, SessionTimes } from './session-store.js';

/** Turns session data into text and back. Must round-trip what it is given; `parse` may throw on bad input. */
export interface SessionSerializer {
  stringify(data: SessionData): string;
  parse(text: string): SessionData;
}

export interface CookieSessionStoreOptions {
  /** Default: JSON. */
  serializer?: SessionSerializer;
  /**
   * How many cookies one session may be split across (each at most 4096 bytes with its attributes), 1 to
   * 20. Unset, a session's cookies may take at most DEFAULT_COOKIE_BYTES (6,000 bytes) of the request's
   * `Cookie` header, two chunks at most: with about 2 KB of other cookies and headers, every request of
   * the session fits a proxy's 8 KB header limit as well as Node's 16 KB. Setting it is a choice to send
   * more with every request: N cookies of up to 4096 bytes, and no byte limit of ours.
   */
  maxChunks?: number;
}

/** JSON, key by key, so that a value JSON would silently drop (a function, undefined) is an error naming its key. */
const JSON_SERIALIZER: SessionSerializer = { stringify: (data) => jsonObject(serializeFields(data)), parse: JSON.parse };

/** How many ended (logged-out) sessions a cookie store remembers, so that they stay ended in this process. */
export const ENDED_SESSIONS_REMEMBERED = 10_000;

/** The default budget for a session's cookies in a request's `Cookie` header (see `maxChunks`). */
export const DEFAULT_COOKIE_BYTES = 6_000;

/**
 * Keeps the whole session in the cookie, encrypted and authenticated with AES-256-GCM (see
 * `crypto/seal.ts`): the client can neither read nor change it, and its times are sealed inside, so the
 * server decides when it expires.
 *
 * What a cookie cannot do: be revoked everywhere. `destroy()` expires the cookie, and this store
 * remembers the session as ended, but another process or a restart opens a copy taken earlier until its
 * sealed expiry. Where logging out must revoke, use a server-side store. Concurrent requests each seal
 * the whole session, so the last response wins.
 */
export class CookieSessionStore implements SessionStore {
  /** Sessions ended in this process, by ID, with the time they would have expired anyway; oldest first. */
  readonly #ended = new Map<string, number>();
  readonly maxChunks: number;
  readonly maxCookieBytes: number | undefined;
  readonly #serializer: SessionSerializer;

  constructor(options: CookieSessionStoreOptions = {}) {
    // Unset: cookies of up to 4 chunks are still read (the earlier default wrote them), and writes keep to
    // the byte budget, which two chunks hold.
    const { serializer = JSON_SERIALIZER, maxChunks = 4 } = options;
    if (!Number.isInteger(maxChunks) || maxChunks < 1 || maxChunks > 20) {
      throw new SessionsConfigError(`CookieSessionStore: maxChunks must be a whole number from 1 to 20; got ${String(maxChunks)}`);
    }
    if (typeof serializer?.stringify !== 'function' || typeof serializer.parse !== 'function') {
      throw new SessionsConfigError('CookieSessionStore: serializer needs stringify(data) and parse(text) functions');
    }
    this.maxChunks = maxChunks;
    this.maxCookieBytes = options.maxChunks === undefined ? DEFAULT_COOKIE_BYTES : undefined;
    this.#serializer = serializer;
  }

  async load(token: string, ctx: SessionStoreContext): Promise<LoadedSession | undefined> {
    const opened = open(ctx.keyring, ctx.tokenName, token, Date.now());
    if ('failure' in opened) {
      if (opened.id !== undefined) ctx.expired?.(opened.id);
      ctx.logger.debug?.(`Session cookie refused: ${opened.failure}`);
      return undefined;
    }
    if (this.#hasEnded(opened.id)) {
      ctx.logger.debug?.('Session cookie refused: its session was ended (a logout) in this process');
      return undefined;
    }
    if (this.#serializer === JSON_SERIALIZER && jsonNestsDeeperThan(opened.payload, MAX_VALUE_DEPTH + 1)) {
      ctx.logger.debug?.(`Session cookie refused: its data is nested more than ${MAX_VALUE_DEPTH} levels deep`);
      return undefined;
    }
    let data: unknown;
    try {
      data = this.#serializer.parse(opened.payload);
    } catch (err) {
      ctx.logger.debug?.(`Session cookie refused: its payload did not parse (${(err as Error).message})`);
      return undefined;
    }
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      ctx.logger.debug?.('Session cookie refused: its payload is not an object');
      return undefined;
    }
    return { id: opened.id, data: data as SessionData, times: opened.times, reissue: opened.stale };
  }

  async create(data: SessionData, times: SessionTimes, ctx: SessionStoreContext): Promise<IssuedToken> {
    return this.#seal(randomToken(SEALED_ID_BYTES), data, times, ctx);
  }

  async update(
    loaded: LoadedSession,
    _patch: SessionPatch,
    data: SessionData,
    times: SessionTimes,
    ctx: SessionStoreContext,
  ): Promise<IssuedToken | undefined> {
    // A request that loaded the session before a logout must not seal it again after it.
    return this.#hasEnded(loaded.id) ? undefined : this.#seal(loaded.id, data, times, ctx);
  }

  async touch(loaded: LoadedSession, data: SessionData, times: SessionTimes, ctx: SessionStoreContext): Promise<IssuedToken | undefined> {
    return this.#hasEnded(loaded.id) ? undefined : this.#seal(loaded.id, data, times, ctx);
  }

  /**
   * Nothing is kept on the server, so the cookie is expired, and the session's ID is remembered as ended
   * until any copy of it would have expired: in this process, a request still running and a copy of the
   * old cookie can no longer bring it back. Called for a logout and for the old ID of a regenerate.
   * Returns false when it had ended already (a logout won). Best effort: the memory is bounded, so a
   * client that ends sessions by the ten thousand pushes the oldest out of it.
   */
  async destroy(loaded: LoadedSession): Promise<boolean> {
    const already = this.#hasEnded(loaded.id);
    const ended = this.#ended;
    ended.delete(loaded.id);
    // Until the latest a copy could expire: a request running now may refresh it for one more lifetime.
    const lifetime = loaded.times.expiresAt - loaded.times.refreshedAt;
    ended.set(loaded.id, Math.max(loaded.times.expiresAt, Date.now() + lifetime));
    // Bounded: past the limit the oldest are forgotten (their copies open again, until they expire).
    for (const id of ended.keys()) {
      if (ended.size <= ENDED_SESSIONS_REMEMBERED) break;
      ended.delete(id);
    }
    return !already;
  }

  /** How many ended sessions this store remembers now (for tests and monitoring). */
  get endedSessions(): number {
    return this.#ended.size;
  }

  #hasEnded(id: string, now = Date.now()): boolean {
    const until = this.#ended.get(id);
    if (until === undefined) return false;
    if (until > now) return true;
    this.#ended.delete(id); // expired anyway: its cookie no longer opens
    return false;
  }

  #seal(id: string, data: SessionData, times: SessionTimes, ctx: SessionStoreContext): IssuedToken {
    return { id, token: seal(ctx.keyring, ctx.tokenName, { id, times, payload: this.#stringify(data) }) };
  }

  #stringify(data: SessionData): string {
    try {
      const text = this.#serializer.stringify(data);
      if (typeof text !== 'string') throw new Error('the serializer did not return a string');
      return text;
    } catch (err) {
      if (err instanceof SessionSerializationError) throw err;
      // Name the key that failed, so the error says what to fix.
      for (const key of Object.keys(data)) {
        try {
          this.#serializer.stringify({ [key]: data[key] });
        } catch (keyErr) {
          throw new SessionSerializationError(key, keyErr);
        }
      }
      throw new SessionSerializationError('(session)', err);
    }
  }
}
