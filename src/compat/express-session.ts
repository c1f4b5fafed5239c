import type { INestApplicationContext } from '@nestjs/common';
import type { SessionData, TrackedSession } from '../session.js';
import { handleOfRequest, type SessionHandle } from '../session-handle.js';
import { SessionsConfigError } from '../sessions.errors.js';
import { SessionsService } from '../sessions.service.js';

/** A callback in Node's style, as express-session's methods take. */
export type SessionCallback = (err?: unknown) => void;

/** The cookie of a session as express-session shows it (`req.session.cookie`): read-only here. */
export interface ExpressSessionCookie {
  /** Milliseconds until the session expires, or null before it is first saved. */
  readonly maxAge: number | null;
  /** The configured lifetime in milliseconds (the module's `maxAge`). */
  readonly originalMaxAge: number;
  /** When the session expires, or null before it is first saved. */
  readonly expires: Date | null;
  readonly path: string;
  readonly domain: string | undefined;
  readonly httpOnly: boolean;
  readonly sameSite: 'lax' | 'strict' | 'none';
  readonly secure: boolean | 'auto';
}

/**
 * `req.session` as express-session gives it, backed by the request's nest-sessions session: its data as
 * properties (`req.session.passport`, `delete req.session.returnTo`), and express-session's methods with
 * their callbacks. It is the same session `@Session()` hands a handler, saved by the same interceptor.
 */
export interface ExpressSession {
  /** The session's ID; undefined until it is first saved, and after `regenerate()` until it is saved again. */
  readonly id: string | undefined;
  readonly cookie: ExpressSessionCookie;
  /**
   * As express-session's: the data is dropped, the stored session ends, and `req.session` becomes a new,
   * empty session that is stored under a new ID once something is set in it (Passport's login and logout
   * call it). The previous `req.session` object keeps a copy of the data, for `keepSessionInfo`.
   */
  regenerate(callback?: SessionCallback): this;
  /** Saves now; the callback gets the error, if any (a store that is down: a 503). */
  save(callback?: SessionCallback): this;
  /** Ends the session now (its record deleted, the cookie expired); `req.session` is then an empty new session. */
  destroy(callback?: SessionCallback): this;
  /** Drops the changes not saved yet, going back to the session as loaded or last saved. */
  reload(callback?: SessionCallback): this;
  /** Pushes the expiry back at the next save, as if the session were rolling. */
  touch(callback?: SessionCallback): this;
  /** The same as `touch()`. */
  resetMaxAge(): this;
  [key: string]: unknown;
}

/** Node's util.inspect hook, without importing node:util. */
const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/** Names that are express-session's, not data: they cannot be set as keys through `req.session`. */
const RESERVED = new Set(['id', 'cookie', 'regenerate', 'save', 'destroy', 'reload', 'touch', 'resetMaxAge']);

/** A request as the compatibility layer sees it. */
type CompatRequest = object & { session?: unknown; sessionID?: unknown };

/** What a `req.session` object reads and writes: the live session, or a copy once a regenerate replaced it. */
interface Backing {
  live: TrackedSession | undefined;
  copy: SessionData;
  /** The ID the session had when a regenerate made this object: reported as no ID until it changes. */
  readonly before: string | undefined;
  readonly regenerated: boolean;
}

function later(callback: SessionCallback | undefined, err?: unknown): void {
  if (callback) process.nextTick(callback, err);
}

/** @internal `req.session` for the handle's session, installed on `req` (with `req.sessionID`). */
export function installExpressSession(req: CompatRequest, handle: SessionHandle, session: TrackedSession): void {
  if (req.session !== undefined && req.session !== null) {
    throw new SessionsConfigError(
      'req.session is set already: another session middleware (express-session, cookie-session) runs before expressSession(app). ' +
        'Remove it: nest-sessions provides req.session',
    );
  }
  const replace = (next: ExpressSession) => (current = next);
  let current = view(handle, session, { live: session, copy: {}, before: undefined, regenerated: false }, replace);
  Object.defineProperty(req, 'session', {
    configurable: true,
    enumerable: true,
    get: () => current,
    set: (value: unknown) => {
      if (value === current) return;
      if (value === null || value === undefined) {
        // cookie-session's way to end a session: `req.session = null`.
        session.destroy();
        return;
      }
      throw new TypeError('req.session cannot be replaced; set its properties, or call req.session.regenerate() or destroy()');
    },
  });
  Object.defineProperty(req, 'sessionID', { configurable: true, enumerable: true, get: () => current.id });
}

/**
 * One `req.session` object. `replace` puts a new one on the request: regenerate() and destroy() do, as
 * express-session does.
 */
function view(handle: SessionHandle, session: TrackedSession, backing: Backing, replace: (next: ExpressSession) => void): ExpressSession {
  const data = (key: string): unknown => (backing.live ? backing.live.get(key) : backing.copy[key]);
  const has = (key: string): boolean => (backing.live ? backing.live.has(key) : Object.hasOwn(backing.copy, key));
  const keys = (): string[] => (backing.live ? backing.live.keys() : Object.keys(backing.copy));
  /** A new `req.session` for the same session: after regenerate() and destroy(). */
  const successor = (): void => replace(view(handle, session, { live: session, copy: {}, before: session.id, regenerated: true }, replace));
  const methods: Record<string, (callback?: SessionCallback) => ExpressSession> = {
    regenerate(callback) {
      if (backing.live) {
        backing.copy = session.toJSON();
        backing.live = undefined;
        session.destroy();
        successor();
      }
      later(callback);
      return self;
    },
    save(callback) {
      handle.save().then(
        () => later(callback),
        (err: unknown) => later(callback, err),
      );
      return self;
    },
    destroy(callback) {
      session.destroy();
      successor();
      handle.save().then(
        () => later(callback),
        (err: unknown) => later(callback, err),
      );
      return self;
    },
    reload(callback) {
      handle.discard();
      later(callback);
      return self;
    },
    touch(callback) {
      handle.requestTouch();
      later(callback);
      return self;
    },
    resetMaxAge() {
      handle.requestTouch();
      return self;
    },
  };
  const cookie = cookieView(handle);
  // console.log(req.session) shows the data (a Proxy is otherwise shown as its empty target).
  const target = Object.defineProperty({}, INSPECT, {
    value: () => Object.fromEntries(keys().map((key) => [key, data(key)])),
    configurable: true,
  });
  const self: ExpressSession = new Proxy(target as ExpressSession, {
    get(target, key) {
      if (typeof key === 'symbol') return key === INSPECT ? Reflect.get(target, key) : undefined;
      if (Object.hasOwn(methods, key)) return methods[key];
      if (key === 'id') return backing.regenerated && session.id === backing.before ? undefined : session.id;
      if (key === 'cookie') return cookie;
      return data(key);
    },
    set(_target, key, value: unknown) {
      if (typeof key === 'symbol') return false;
      if (RESERVED.has(key)) throw new TypeError(`req.session.${key} is express-session's and cannot be set`);
      if (backing.live) backing.live.set(key, value);
      else backing.copy[key] = value;
      return true;
    },
    deleteProperty(_target, key) {
      if (typeof key === 'symbol' || RESERVED.has(key)) return false;
      if (backing.live) backing.live.delete(key);
      else delete backing.copy[key];
      return true;
    },
    has(_target, key) {
      return typeof key === 'string' && (RESERVED.has(key) || has(key));
    },
    ownKeys() {
      return keys();
    },
    getOwnPropertyDescriptor(_target, key) {
      if (typeof key === 'symbol' || !has(key)) return undefined;
      return { value: data(key), writable: true, enumerable: true, configurable: true };
    },
    defineProperty() {
      return false;
    },
  });
  return self;
}

function cookieView(handle: SessionHandle): ExpressSessionCookie {
  const { cookie, maxAgeMs } = handle.service.config;
  const readOnly = (): never => {
    throw new TypeError(
      "req.session.cookie is read-only with nest-sessions: the cookie's attributes and the session's lifetime are SessionsModule options (cookie, maxAge)",
    );
  };
  const target = {
    get maxAge(): number | null {
      const expiresAt = handle.expiresAt();
      return expiresAt === undefined ? null : Math.max(0, expiresAt - Date.now());
    },
    set maxAge(_value: number | null) {
      readOnly();
    },
    get expires(): Date | null {
      const expiresAt = handle.expiresAt();
      return expiresAt === undefined ? null : new Date(expiresAt);
    },
    set expires(_value: Date | null) {
      readOnly();
    },
    originalMaxAge: maxAgeMs,
    path: cookie.path,
    domain: cookie.domain,
    httpOnly: cookie.httpOnly,
    sameSite: cookie.sameSite,
    secure: cookie.secure,
  };
  return Object.freeze(target);
}

/** A function that Express calls as middleware (`app.use(...)`). */
export type ExpressMiddleware = (req: object, res: object, next: (err?: unknown) => void) => void;

/**
 * Express middleware that gives every request the `req.session` that express-session would, with the
 * session of nest-sessions behind it: what Passport (`passport.session()`, `req.logIn()`, `req.logout()`)
 * and other express-session middleware use. It replaces `app.use(session({ ... }))`, before
 * `app.use(passport.session())`:
 *
 * ```ts
 * app.use(expressSession(app));
 * app.use(passport.session());
 * ```
 *
 * Every request then loads its session (as with express-session); it is saved by the sessions
 * interceptor after the handler, as any session is. A request refused by the cross-site checks, or
 * whose store is down, gets its 403 or 503 from Nest's exception filters.
 */
export function expressSession(app: Pick<INestApplicationContext, 'get'>): ExpressMiddleware {
  const sessions = app.get(SessionsService);
  return (req, res, next) => {
    sessions.load(req, res).then(
      (session) => {
        try {
          installExpressSession(req, handleOfRequest(req)!, session as TrackedSession);
        } catch (err) {
          next(err);
          return;
        }
        next();
      },
      (err: unknown) => next(err),
    );
  };
}
