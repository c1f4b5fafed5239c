import { createHmac, timingSafeEqual } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { parse, type SerializeOptions } from 'cookie';
import { CSRF_KEY, type SessionData } from '../session.js';
import { SessionStoreUnavailableError } from '../sessions.errors.js';
import type { HttpIo } from '../transport/http.js';

/**
 * What the migration needs of express-session's store: `get` and `destroy` with express-session's
 * callbacks. Every express-session store has them (connect-redis, connect-pg-simple, connect-mongo, ...),
 * so the store is passed in as it was configured, with its own key prefix, serializer or table.
 */
export interface ExpressSessionStoreLike {
  get(sid: string, callback: (err: unknown, session?: unknown) => void): unknown;
  destroy(sid: string, callback?: (err?: unknown) => void): unknown;
}

/** The `migrateFrom` option: express-session's cookie, secrets and store, as the app configured them. */
export interface ExpressSessionMigrationOptions {
  /** express-session's cookie name (its `name` option). Default `connect.sid`. */
  name?: string;
  /** express-session's `secret`: a string, or a list of them; a cookie signed with any of them is accepted. */
  secret: string | readonly string[];
  /** express-session's store, configured as it was (`new RedisStore({ client, prefix })`, connect-pg-simple's store, ...). */
  store: ExpressSessionStoreLike;
  /** express-session's `cookie.path` and `cookie.domain`, so that the old cookie can be expired. Default path `/`. */
  cookie?: { path?: string; domain?: string };
  /** Milliseconds a call to the old store may take before the request gets a 503. Default 5,000. */
  timeout?: number;
}

/** @internal An old cookie, as far as the migration got with it. */
export type LegacyLookup =
  /** A signed ID whose record was read: its data (nothing for a record that was no longer live). */
  | { readonly id: string; readonly data: SessionData | undefined }
  /** A cookie that is no valid express-session cookie (or whose record is gone): only to be expired. */
  | { readonly id: undefined; readonly why: string };

/** Longer than any cookie a browser keeps: refused unread. */
const MAX_COOKIE = 4096;

/**
 * @internal express-session's signed cookie (`s:<id>.<signature>`, cookie-signature's HMAC-SHA256 in base64
 * without padding) and its store, read once per session to turn an old session into a new one. It
 * never writes to the old store except to delete a record it has converted or found dead.
 */
export class ExpressSessionMigration {
  readonly name: string;
  readonly #secrets: readonly string[];
  readonly #store: ExpressSessionStoreLike;
  readonly #timeout: number;
  readonly #cookie: Readonly<SerializeOptions>;
  readonly #needle: string;

  constructor(options: ExpressSessionMigrationOptions) {
    this.name = options.name ?? 'connect.sid';
    const secret = options.secret;
    this.#secrets = typeof secret === 'string' ? [secret] : [...secret];
    this.#store = options.store;
    this.#timeout = options.timeout ?? 5_000;
    this.#cookie = Object.freeze({ path: options.cookie?.path ?? '/', domain: options.cookie?.domain, maxAge: 0, expires: new Date(0) });
    this.#needle = `${this.name}=`;
  }

  /** Whether the request carries the old cookie at all (no parsing when it does not). */
  carries(io: HttpIo, req: unknown): boolean {
    return io.requestHeader(req, 'cookie')?.includes(this.#needle) === true;
  }

  /**
   * The old session of the request's old cookie: its ID once the signature checks out under one of the
   * old secrets, then its record from the old store, unless that is gone or past its cookie's expiry.
   */
  async lookup(io: HttpIo, req: unknown): Promise<LegacyLookup | undefined> {
    const value = this.#value(io, req);
    if (value === undefined) return undefined;
    const id = this.#idOf(value);
    if (id === undefined) return { id: undefined, why: `the ${this.name} cookie is not signed with any of migrateFrom.secret` };
    const record = await this.#call<unknown>('reading', (done) => this.#store.get(id, done));
    if (record === undefined || record === null) return { id: undefined, why: `the ${this.name} session is not in the old store` };
    if (typeof record !== 'object' || Array.isArray(record)) {
      // Neither carried over nor ended, its cookie left as it is: a misconfigured serializer, not a dead
      // session, is the likelier cause, and the session is there to be carried over once it is fixed.
      this.#warnNotARecord(Array.isArray(record) ? 'an array' : `a ${typeof record}`);
      return undefined;
    }
    return { id, data: liveData(record, Date.now()) };
  }

  /** The old session ID of the request's old cookie when its signature checks out (no store call). */
  signedId(io: HttpIo, req: unknown): string | undefined {
    const value = this.#value(io, req);
    return value === undefined ? undefined : this.#idOf(value);
  }

  /** The ID of an old cookie's value when its signature checks out; a value no browser would keep is refused unread. */
  #idOf(value: string): string | undefined {
    return value.length <= MAX_COOKIE ? unsign(value, this.#secrets) : undefined;
  }

  #value(io: HttpIo, req: unknown): string | undefined {
    const header = io.requestHeader(req, 'cookie');
    if (!header || !header.includes(this.#needle)) return undefined;
    return parse(header)[this.name];
  }

  #warned = false;

  #warnNotARecord(type: string): void {
    if (this.#warned) return;
    this.#warned = true;
    new Logger('SessionsModule').warn(
      `migrateFrom.store returned ${type} where express-session keeps a session object; check that it is configured ` +
        `as in the old app (its serializer). Such sessions are not carried over, and are left in the old store with their cookies.`,
    );
  }

  /** Deletes the old record: converted into a new session, ended, or found dead. */
  async end(id: string): Promise<void> {
    await this.#call<void>('deleting', (done) => this.#store.destroy(id, done));
  }

  /** Expires the old cookie. */
  clearCookie(io: HttpIo, res: unknown): void {
    io.setCookie(res, this.name, '', this.#cookie);
  }

  /** A call to the old store, with its callback, within the timeout; a failure or a timeout is a 503. */
  #call<T>(what: string, start: (done: (err: unknown, value?: T) => void) => unknown): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(
          new SessionStoreUnavailableError(`migrateFrom.store: ${what} an express-session session took longer than ${this.#timeout} ms`),
        );
      }, this.#timeout);
      const done = (err: unknown, value?: T) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          const message = err instanceof Error ? err.message : String(err);
          reject(
            new SessionStoreUnavailableError(`migrateFrom.store: ${what} an express-session session failed: ${message}`, { cause: err }),
          );
        } else resolve(value);
      };
      try {
        // Stores that also return a promise (connect-redis) call the callback as well; a rejection is theirs to report through it.
        const returned = start(done);
        if (returned instanceof Promise) returned.catch((err: unknown) => done(err ?? new Error('rejected')));
      } catch (err) {
        done(err ?? new Error('threw'));
      }
    });
  }
}

/** @internal cookie-signature's `unsign` for express-session's `s:` cookies: the ID, or undefined. */
export function unsign(value: string, secrets: readonly string[]): string | undefined {
  if (!value.startsWith('s:')) return undefined;
  const signed = value.slice(2);
  const dot = signed.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const id = signed.slice(0, dot);
  const given = Buffer.from(signed.slice(dot + 1));
  let found: string | undefined;
  // Every secret is tried, so the time taken does not say which one matched.
  for (const secret of secrets) {
    const expected = Buffer.from(createHmac('sha256', secret).update(id).digest('base64').replace(/=+$/, ''));
    if (expected.length === given.length && timingSafeEqual(expected, given)) found = id;
  }
  return found;
}

/**
 * @internal The data of an express-session record, without its `cookie`; undefined when the record's cookie has
 * expired (a store that does not expire records itself).
 */
export function liveData(record: object, now: number): SessionData | undefined {
  const { cookie, ...data } = record as SessionData & { cookie?: { expires?: unknown } };
  const expires = cookie?.expires;
  if (expires !== undefined && expires !== null) {
    const at = expires instanceof Date ? expires.getTime() : typeof expires === 'string' ? Date.parse(expires) : NaN;
    if (!(at > now)) return undefined;
  }
  delete data[CSRF_KEY];
  return data;
}
