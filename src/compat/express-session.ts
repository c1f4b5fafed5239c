import type { INestApplicationContext } from '@nestjs/common';
import type { TrackedSession } from '../session.js';
import type { SessionHandle } from '../session-handle.js';
import { SessionsConfigError } from '../sessions.errors.js';
import { SessionsService } from '../sessions.service.js';
import { sessionView, type ViewBacking } from './session-view.js';

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
   * call it). The previous `req.session` object keeps a copy of the data, for `keepSessionInfo`. Saved as
   * `save()` is.
   */
  regenerate(callback?: SessionCallback): this;
  /**
   * In a handler, saves now, and the callback gets the error, if any. Before the handler (a guard), the
   * save waits for the request's anti-forgery checks: the interceptor saves after the handler.
   */
  save(callback?: SessionCallback): this;
  /**
   * Ends the session: its record is deleted and the cookie expired (in a handler, before the callback;
   * before it, by the interceptor's save). `req.session` is then an empty new session.
   */
  destroy(callback?: SessionCallback): this;
  /** Drops the changes not saved yet, going back to the session as loaded or last saved. */
  reload(callback?: SessionCallback): this;
  /** Pushes the expiry back at the next save, as if the session were rolling. */
  touch(callback?: SessionCallback): this;
  /** The same as `touch()`. */
  resetMaxAge(): this;
  [key: string]: unknown;
}

/** A request as the compatibility layer sees it. */
type CompatRequest = object & { session?: unknown; sessionID?: unknown };

function later(callback: SessionCallback | undefined, err?: unknown): void {
  if (callback) process.nextTick(callback, err);
}

/**
 * `save`, `regenerate` and `destroy` with a callback: in a handler (the sessions interceptor has the
 * request), the change is saved now, through the same save as `session.save()`, before the callback runs,
 * so a callback that sends the response (`req.logout(() => res.redirect('/'))`) sends it saved. Before
 * the handler (a guard, a middleware), nothing is written: the interceptor saves once the request's
 * anti-forgery checks have passed with the handler known.
 */
function commit(handle: SessionHandle, callback: SessionCallback | undefined): void {
  if (!handle.adopted) return later(callback);
  handle.save().then(
    () => later(callback),
    (err: unknown) => later(callback, err),
  );
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
  let current = view(handle, session, { live: session, copy: {} }, undefined, replace);
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
 * One `req.session` object. `replace` puts a new one on the request, as express-session's regenerate()
 * and destroy() do. `before` is the ID the session had when a regenerate made this object: until the
 * new session is saved, it has no ID to report.
 */
function view(
  handle: SessionHandle,
  session: TrackedSession,
  backing: ViewBacking,
  before: { id: string | undefined } | undefined,
  replace: (next: ExpressSession) => void,
): ExpressSession {
  const successor = (): void => replace(view(handle, session, { live: session, copy: {} }, { id: session.id }, replace));
  const cookie = cookieView(handle);
  const members = {
    get id() {
      return before && session.id === before.id ? undefined : session.id;
    },
    cookie,
    regenerate(callback?: SessionCallback) {
      if (backing.live) {
        backing.copy = session.toJSON();
        backing.live = undefined;
        session.destroy();
        successor();
      }
      commit(handle, callback);
      return self;
    },
    save(callback?: SessionCallback) {
      commit(handle, callback);
      return self;
    },
    destroy(callback?: SessionCallback) {
      session.destroy();
      successor();
      commit(handle, callback);
      return self;
    },
    reload(callback?: SessionCallback) {
      handle.discard();
      later(callback);
      return self;
    },
    touch(callback?: SessionCallback) {
      handle.requestTouch();
      later(callback);
      return self;
    },
    resetMaxAge() {
      handle.requestTouch();
      return self;
    },
  };
  const self: ExpressSession = sessionView<ExpressSession>(backing, members, 'req.session');
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
 * Every request then loads its session (as with express-session). The sessions interceptor saves it after
 * the handler, once the request's anti-forgery checks have passed with the handler known (so
 * `@SkipCsrf()` counts, and a token in a parsed body is seen). A session changed where the interceptor
 * never runs (a guard that sends the response itself, a route outside Nest) is not saved; a warning names
 * the route. A store that is down answers 503 through Nest's exception filters.
 */
export function expressSession(app: Pick<INestApplicationContext, 'get'>): ExpressMiddleware {
  const sessions = app.get(SessionsService);
  return (req, res, next) => {
    const handle = sessions.handleFor(req, res);
    handle.load().then(
      (session) => {
        try {
          installExpressSession(req, handle, session);
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
