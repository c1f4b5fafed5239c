import type { LoggerService } from '@nestjs/common';
import type { Keyring } from '../crypto/keyring.js';
import type { SessionData, SessionPatch } from '../session.js';

/** When a session began, when its expiry was last pushed back, and when it ends (ms since the epoch). */
export interface SessionTimes {
  readonly createdAt: number;
  readonly refreshedAt: number;
  readonly expiresAt: number;
}

/** A session as a store hands it back. */
export interface LoadedSession {
  /** The session's ID (server stores: the unsigned ID; cookie store: the ID sealed inside). */
  readonly id: string;
  /** The data, owned by the caller from now on. */
  readonly data: SessionData;
  readonly times: SessionTimes;
  /** The token should be sent again even if nothing changed (it was signed or sealed with an older secret). */
  readonly reissue?: boolean;
}

/** What a store learns from the module: keys, the cookie name it may bind in, a clock and a logger. */
export interface SessionStoreContext {
  readonly keyring: Keyring;
  /** The name the token travels under (cookie or header name); the cookie store binds it into the seal. */
  readonly tokenName: string;
  readonly logger: LoggerService;
  /**
   * A store that sees a token open to a session whose time has run out calls this with its ID (for the
   * `expired` event) and then returns undefined. Stores whose records vanish at their expiry need not.
   */
  readonly expired?: (id: string) => void;
}

/** A token to send back, and the session's ID behind it. */
export interface IssuedToken {
  readonly token: string;
  readonly id: string;
}

/** One of a user's sessions, as the user index keeps it (times in ms since the epoch). */
export interface UserSessionEntry {
  /** The session's ID (server stores: the unsigned ID). */
  readonly id: string;
  readonly createdAt: number;
  /** When the session was last saved or had its expiry pushed back. */
  readonly lastSeenAt: number;
  /** When the entry ends: never before the session itself does. */
  readonly expiresAt: number;
  /** The `User-Agent` of the request that last wrote the entry, with `userSessionInfo: { userAgent: true }`. */
  readonly userAgent?: string;
  /** The address of the request that last wrote the entry, with `userSessionInfo: { ip: true }`. */
  readonly ip?: string;
}

/**
 * Which sessions each user has (`session.setUser(id)`), for a store that can list them. The module keeps
 * it up to date around its own writes: an entry is written before a session's expiry moves (so it never
 * ends before the session does) and right after a session is created (before its token is sent), and
 * removed after the session ends. Each method must be atomic on its own; none may create a session.
 */
export interface UserSessionIndex {
  /**
   * Records session `entry.id` as the user's, or updates its entry. An expiry stored later than
   * `entry.expiresAt` is kept. Entries past their expiry may be dropped here.
   */
  add(userId: string, entry: UserSessionEntry, ctx: SessionStoreContext): Promise<void>;
  /** Removes the entry of session `id`; not an error when there is none. */
  remove(userId: string, id: string, ctx: SessionStoreContext): Promise<void>;
  /**
   * The user's entries whose session is still live (the others may be dropped here). With `ended`, every
   * entry the index holds, expired or not and without checking its session, for a revocation: a clock
   * behind the others' could still see a session live that this one takes for expired.
   */
  list(userId: string, ctx: SessionStoreContext, options?: { readonly ended?: boolean }): Promise<UserSessionEntry[]>;
}

/**
 * What the module needs from a store. A token is whatever the client carries: for server-side stores a
 * signed ID, for the cookie store the sealed data itself. Stores never see a request or a response.
 *
 * Server-side stores are easier to write by extending `ServerSessionStore`, which implements this
 * interface on top of five small primitives.
 */
export interface SessionStore {
  /** How many cookies a token from this store may be split across. Default 1 (server stores' tokens are tiny). */
  readonly maxChunks?: number;
  /**
   * How many bytes the token's cookies may take in the request's `Cookie` header (`name=value` pairs and
   * their separators), whatever `maxChunks` allows. Unset: no limit beyond `maxChunks`.
   */
  readonly maxCookieBytes?: number;
  /**
   * The index of each user's sessions, for `SessionsService.userSessions()` and
   * `destroyUserSessions()`; stores without one (the cookie and Memcached stores) leave it out, and those
   * calls fail with a `SessionsConfigError`. A store with one must end a session by its ID alone in
   * `destroy()` (the module passes the entry's ID and times, and no data).
   */
  readonly users?: UserSessionIndex;
  /**
   * Resolves when the store's backend answers, rejects with why it does not: for health checks
   * (`nest-sessions/health`). Optional; `ServerSessionStore` reads a random session within its timeout.
   */
  ping?(ctx: SessionStoreContext): Promise<void>;
  /**
   * Opens a token. Returns undefined for anything that does not open to a live session (unknown,
   * expired, forged, malformed): never throws for bad input. Throws only when the store itself fails.
   */
  load(token: string, ctx: SessionStoreContext): Promise<LoadedSession | undefined>;
  /** Stores a new session under a new ID; `data` is complete. */
  create(data: SessionData, times: SessionTimes, ctx: SessionStoreContext): Promise<IssuedToken>;
  /**
   * Applies the changes of a loaded session. `patch` is what changed, `data` the whole current data:
   * a store uses whichever it needs. Returns undefined when the session no longer exists (it was
   * destroyed or expired meanwhile): it must not be brought back.
   */
  update(
    loaded: LoadedSession,
    patch: SessionPatch,
    data: SessionData,
    times: SessionTimes,
    ctx: SessionStoreContext,
  ): Promise<IssuedToken | undefined>;
  /** Pushes back the expiry of an unchanged session; undefined when it no longer exists. */
  touch(loaded: LoadedSession, data: SessionData, times: SessionTimes, ctx: SessionStoreContext): Promise<IssuedToken | undefined>;
  /**
   * Deletes a session. Deleting one that is already gone is not an error; it returns false, so that a
   * regenerate racing a logout knows the logout won. Stores that cannot tell (the cookie store) return true.
   */
  destroy(loaded: LoadedSession, ctx: SessionStoreContext): Promise<boolean>;
}

/** True when `value` has every method of `SessionStore`. */
export function isSessionStore(value: unknown): value is SessionStore {
  if (typeof value !== 'object' || value === null) return false;
  const store = value as Record<string, unknown>;
  return ['load', 'create', 'update', 'touch', 'destroy'].every((m) => typeof store[m] === 'function');
}
