import { Logger } from '@nestjs/common';
import { Keyring, MIN_SECRET_BITS, MIN_SECRET_LENGTH, secretBits } from './crypto/keyring.js';
import { normalizeOrigin } from './csrf.js';
import { SessionsConfigError } from './sessions.errors.js';
import { isSessionStore, type SessionStore } from './stores/session-store.js';
import { isStandardSchema, type StandardSchemaV1 } from './schema.js';
import { ExpressSessionMigration, type ExpressSessionMigrationOptions, type ExpressSessionStoreLike } from './migration/express-session.js';

export type SameSite = 'lax' | 'strict' | 'none';

export interface SessionCookieOptions {
  /** Cookie name. Default `session`. A `__Host-` name needs `secure: true`, path `/` and no domain. */
  name?: string;
  /** Default `/`. */
  path?: string;
  /** Default none: the cookie goes back only to the host that set it. */
  domain?: string;
  /** Default `lax`. `none` needs `secure: true`. */
  sameSite?: SameSite;
  /** `'auto'` (default): Secure when the request came over HTTPS (`req.secure` / `req.protocol`). */
  secure?: boolean | 'auto';
  /** Default true: scripts in the page cannot read the cookie. */
  httpOnly?: boolean;
}

/** How the session token travels: in a cookie (the default), or in a request/response header. */
export type SessionTransportOption = 'cookie' | { header: string };

export interface SessionsModuleOptions {
  /**
   * Secret, or secrets newest first, each at least 32 characters. The first signs (and seals); every one
   * verifies (and opens), so a secret can be rotated without logging everyone out.
   */
  secret: string | readonly string[];
  /** Where sessions live. Default: a new `CookieSessionStore` (the session sealed in the cookie). */
  store?: SessionStore;
  cookie?: SessionCookieOptions;
  /**
   * `'cookie'` (default), or `{ header: 'x-session-id' }` for APIs and mobile clients: the token comes in
   * that request header and goes back in the same response header when it changes. Only the configured
   * transport is read.
   */
  transport?: SessionTransportOption;
  /**
   * Lifetime in seconds from the last save (or, with `rolling`, from the last request), give or take
   * `touchAfter`. Default 86,400 (one day).
   */
  maxAge?: number;
  /** Seconds without a request after which the session ends, enforced on the server. Default: none. */
  idleTimeout?: number;
  /** Seconds after creation after which the session ends, whatever happens. Default: none. */
  absoluteTimeout?: number;
  /** Push the expiry back on every request, not only on saves. Default false. */
  rolling?: boolean;
  /**
   * The least number of seconds between two pushes of a session's expiry: by a save that changes it (a
   * change in between is saved under the expiry it has, and a server-side store sends no cookie), and,
   * with `rolling` or `idleTimeout`, by a request that changes nothing (so a busy session is not written
   * on every request). 0: with every save and request. Default: a tenth of its lifetime, at most 60.
   */
  touchAfter?: number;
  /**
   * Cross-site request protection for the cookie transport, on by default: a state-changing request
   * (anything but GET, HEAD, OPTIONS) that a browser says comes from another site or origin is refused
   * with a 403 before its session is read. `false` turns it off (for example behind a gateway that does
   * it). The header transport is not checked: browsers never attach its header on their own.
   */
  csrf?: false | SessionCsrfOptions;
  /**
   * Switching from express-session: during the switch, a request with express-session's signed cookie
   * (and no session of ours) has its old session read from the old store and turned into a new one,
   * under a new ID; the old record is deleted and the old cookie expired. Remove the option once the old
   * sessions' lifetime has passed. See the README's migration guide.
   */
  migrateFrom?: ExpressSessionMigrationOptions;
  /**
   * Called for each session event (created, regenerated, destroyed, expired), for an audit log or
   * metrics. It runs after the store call, never delays or fails the request: what it throws or rejects
   * with is logged. See `SessionEvent`.
   */
  onEvent?: (event: SessionEvent) => void | Promise<void>;
  /**
   * A Standard Schema (zod, valibot, arktype, ...) every session's data must match. A stored session
   * that does not is ended and the request starts a fresh one (with a debug log line); a save whose data
   * does not is refused with a `SessionValidationError` naming the path. Keys are optional until set: a
   * new session is empty.
   */
  schema?: StandardSchemaV1;
  /**
   * What the list of a user's sessions (`SessionsService.userSessions()`) records beside their times:
   * the `User-Agent` and the client's address (`req.ip`, which follows Express's `trust proxy` and
   * Fastify's `trustProxy`) of the request that last saved each session. Both off by default: they are
   * personal data, kept in the store for as long as the session lives.
   */
  userSessionInfo?: { userAgent?: boolean; ip?: boolean };
  /**
   * Seconds a shutdown (`app.close()`, or a signal with `enableShutdownHooks()`) waits for requests still
   * in the sessions interceptor and saves under way, before Nest closes the HTTP server and the store's
   * client. 0: no wait. Default 10.
   */
  shutdownTimeout?: number;
  /**
   * OpenTelemetry spans around store calls and counters (loads, saves, creates, destroys, refused
   * tokens, too-large sessions, 503s, refused cross-site requests), through `@opentelemetry/api` when
   * it is installed. Without an OpenTelemetry SDK registered they cost next to nothing. Default: on
   * when the package is installed; true: a warning when it is not; false: the module never loads it.
   */
  telemetry?: boolean;
}

/** What happened to a session, given to the `onEvent` option. `req` is the request it happened in (none for `revoked`). */
export type SessionEvent =
  /** A new session was stored (a first save, or the first change after `destroy()`). */
  | { readonly type: 'created'; readonly id: string; readonly at: number; readonly req: object }
  /** `regenerate()`: the session goes on under `id`; `previousId` opens nothing any more. */
  | { readonly type: 'regenerated'; readonly id: string; readonly previousId: string; readonly at: number; readonly req: object }
  /** The session was ended (`destroy()`, a logout). */
  | { readonly type: 'destroyed'; readonly id: string; readonly at: number; readonly req: object }
  /**
   * A request came with a session whose time had run out (its expiry, `idleTimeout` or `absoluteTimeout`).
   * Seen by the module's own checks and by the cookie and in-memory stores; Redis, Memcached and
   * PostgreSQL let a session go at its expiry without a word.
   */
  | { readonly type: 'expired'; readonly id: string; readonly at: number; readonly req: object }
  /**
   * `SessionsService.destroyUserSessions()` ended the session of `userId` ("log out everywhere"). The
   * service may be called outside any request (a job, an admin tool), so `req` is undefined.
   */
  | { readonly type: 'revoked'; readonly id: string; readonly userId: string; readonly at: number; readonly req: undefined };

/** The options of the cross-site protection (`csrf`). */
export interface SessionCsrfOptions {
  /** Origins of your own front-ends on other hosts or ports (`['https://app.example.com']`) that may send such requests. */
  trustedOrigins?: readonly string[];
  /**
   * Also require the session's anti-forgery token (`session.csrfToken()`) on every state-changing
   * request that loads a session, in the `tokenHeader` header or the `tokenField` form field: for
   * browsers that send neither `Sec-Fetch-Site` nor `Origin`, for `sameSite: 'none'`, or as a second
   * line of defence. Default false: tokens are issued on request but not checked.
   */
  requireToken?: boolean;
  /** The request header that carries the token. Default `x-csrf-token`. */
  tokenHeader?: string;
  /** The field of a parsed form or JSON body that carries the token. Default `_csrf`. */
  tokenField?: string;
}

/** @internal The cross-site protection, checked. */
export interface CsrfConfig {
  readonly trustedOrigins: ReadonlySet<string>;
  readonly requireToken: boolean;
  /** Lower-cased. */
  readonly tokenHeader: string;
  readonly tokenField: string;
}

/** @internal The options, checked and with defaults applied. Times in milliseconds. */
export interface SessionsConfig {
  readonly keyring: Keyring;
  readonly store?: SessionStore;
  readonly cookie: Required<Omit<SessionCookieOptions, 'domain'>> & { domain?: string };
  /** The header that carries the token, lower-cased; undefined for the cookie transport. */
  readonly header?: string;
  /** The cross-site check: undefined when off (or with the header transport). */
  readonly csrf?: CsrfConfig;
  readonly maxAgeMs: number;
  readonly idleTimeoutMs?: number;
  readonly absoluteTimeoutMs?: number;
  readonly rolling: boolean;
  readonly touchAfterMs: number;
  /** How long a save keeps a session alive: the shorter of maxAge and idleTimeout. */
  readonly ttlMs: number;
  /** express-session's cookie and store, during a switch from it. */
  readonly migration?: ExpressSessionMigration;
  readonly onEvent?: (event: SessionEvent) => void | Promise<void>;
  readonly schema?: StandardSchemaV1;
  readonly userSessionInfo?: { readonly userAgent: boolean; readonly ip: boolean };
  readonly shutdownTimeoutMs: number;
  /** Undefined: on when `@opentelemetry/api` is installed. */
  readonly telemetry: boolean | undefined;
}

const FORROOT = 'SessionsModule.forRoot()';
/** RFC 6265 token characters (cookie names). */
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Visible ASCII except `;`, `,` and `=`: nothing that could end the attribute or start another. */
const COOKIE_PATH = /^\/[\x21-\x2b\x2d-\x3a\x3c\x3e-\x7e]*$/;
const COOKIE_DOMAIN = /^\.?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

function fail(message: string): never {
  throw new SessionsConfigError(`${FORROOT}: ${message}`);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `a string of ${value.length} characters`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return value === null ? 'null' : typeof value === 'object' ? 'an object' : String(value);
}

function seconds(name: string, value: unknown, fallback?: number): number | undefined {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    fail(`${name} must be a number of seconds greater than 0; got ${describe(value)}`);
  }
  return value;
}

function secrets(value: unknown): string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0) {
    fail(
      `needs a secret: a string of at least ${MIN_SECRET_LENGTH} characters, or a list of them, newest first ` +
        `(for example forRoot(process.env.SESSION_SECRET)); got ${describe(value)}`,
    );
  }
  list.forEach((secret: unknown, i) => {
    const which = list.length > 1 ? `secret[${i}]` : 'the secret';
    if (typeof secret !== 'string') fail(`${which} must be a string; got ${describe(secret)}`);
    const generate = `Generate one with: node -e "console.log(require('crypto').randomBytes(32).toString('base64url'))"`;
    if (secret.length < MIN_SECRET_LENGTH) {
      fail(`needs a secret of at least ${MIN_SECRET_LENGTH} characters; ${which} has ${secret.length}. ${generate}`);
    }
    const bits = secretBits(secret);
    if (bits < MIN_SECRET_BITS) {
      const why =
        `${which} looks guessable: its characters carry about ${Math.floor(bits)} bits (at least ${MIN_SECRET_BITS} ` +
        `are needed; a repeated character or word, or a handful of characters, is not a secret). ${generate}`;
      // The newest secret signs and seals: it must be good. An older one only opens what it sealed
      // before, so it can still be phased out by rotation; it gets a warning.
      if (i === 0) fail(why);
      new Logger('SessionsModule').warn(`${why} It still opens sessions it sealed; remove it once they have expired.`);
    }
  });
  return list as string[];
}

function cookieOptions(input: SessionCookieOptions | undefined): SessionsConfig['cookie'] {
  if (input !== undefined && (typeof input !== 'object' || input === null)) fail(`cookie must be an object; got ${describe(input)}`);
  const { name = 'session', path = '/', domain, sameSite = 'lax', secure = 'auto', httpOnly = true } = input ?? {};
  if (typeof name !== 'string' || !COOKIE_NAME.test(name)) {
    fail(
      `cookie.name ${JSON.stringify(name)} is not a valid cookie name: use letters, digits and !#$%&'*+-.^_\`|~, no spaces, ";", ",", "=" or quotes`,
    );
  }
  if (typeof path !== 'string' || !COOKIE_PATH.test(path)) {
    fail(`cookie.path ${JSON.stringify(path)} must start with "/" and contain no spaces, control characters, ";", "," or "="`);
  }
  if (domain !== undefined && (typeof domain !== 'string' || !COOKIE_DOMAIN.test(domain))) {
    fail(`cookie.domain ${JSON.stringify(domain)} is not a host name (letters, digits, "-" and ".")`);
  }
  if (sameSite !== 'lax' && sameSite !== 'strict' && sameSite !== 'none') {
    fail(`cookie.sameSite must be 'lax', 'strict' or 'none'; got ${JSON.stringify(sameSite)}`);
  }
  if (secure !== true && secure !== false && secure !== 'auto') {
    fail(`cookie.secure must be true, false or 'auto'; got ${JSON.stringify(secure)}`);
  }
  if (typeof httpOnly !== 'boolean') fail(`cookie.httpOnly must be true or false; got ${JSON.stringify(httpOnly)}`);
  if (sameSite === 'none' && secure !== true) {
    fail(`cookie.sameSite 'none' needs cookie.secure: true (browsers drop SameSite=None cookies without Secure)`);
  }
  // Browsers match the prefixes without regard to case.
  const lower = name.toLowerCase();
  if (lower.startsWith('__secure-') && secure !== true) fail(`a "__Secure-" cookie name needs cookie.secure: true`);
  if (lower.startsWith('__host-') && (secure !== true || path !== '/' || domain !== undefined)) {
    fail(`a "__Host-" cookie name needs cookie.secure: true, cookie.path "/" and no cookie.domain`);
  }
  return { name, path, domain, sameSite, secure, httpOnly };
}

/** Headers that mean something else to HTTP or to this module, and so cannot carry a session token. */
const RESERVED_HEADERS = new Set([
  'cookie',
  'set-cookie',
  'host',
  'connection',
  'content-length',
  'content-type',
  'transfer-encoding',
  'vary',
  'cache-control',
  'upgrade',
  'te',
  'trailer',
  'keep-alive',
  'proxy-connection',
]);

function csrfOption(input: unknown): CsrfConfig | undefined {
  if (input === false) return undefined;
  if (input !== undefined && (typeof input !== 'object' || input === null || Array.isArray(input))) {
    fail(`csrf must be false or { trustedOrigins, requireToken, tokenHeader, tokenField }; got ${describe(input)}`);
  }
  const {
    trustedOrigins: list = [],
    requireToken = false,
    tokenHeader = 'x-csrf-token',
    tokenField = '_csrf',
    ...rest
  } = (input ?? {}) as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0)
    fail(
      `csrf has no option ${unknown.map((k) => JSON.stringify(k)).join(', ')}; it takes trustedOrigins, requireToken, tokenHeader and tokenField`,
    );
  if (!Array.isArray(list)) fail(`csrf.trustedOrigins must be a list of origins such as 'https://app.example.com'; got ${describe(list)}`);
  const origins = new Set<string>();
  for (const value of list as unknown[]) {
    const origin = typeof value === 'string' ? normalizeOrigin(value) : undefined;
    if (!origin)
      fail(`csrf.trustedOrigins: ${describe(value)} is not an origin (scheme, host and port only, such as 'https://app.example.com')`);
    origins.add(origin);
  }
  if (typeof requireToken !== 'boolean') fail(`csrf.requireToken must be true or false; got ${describe(requireToken)}`);
  if (typeof tokenHeader !== 'string' || !COOKIE_NAME.test(tokenHeader)) {
    fail(`csrf.tokenHeader ${JSON.stringify(tokenHeader)} is not a valid header name (letters, digits and !#$%&'*+-.^_\`|~)`);
  }
  if (RESERVED_HEADERS.has(tokenHeader.toLowerCase()))
    fail(`csrf.tokenHeader cannot be "${tokenHeader.toLowerCase()}": HTTP uses it for something else`);
  if (typeof tokenField !== 'string' || !/^[A-Za-z_$][\w$-]*$/.test(tokenField) || tokenField === '__proto__') {
    fail(
      `csrf.tokenField ${JSON.stringify(tokenField)} must be a form field name: a letter, "_" or "$", then letters, digits, "_", "-" or "$"`,
    );
  }
  return { trustedOrigins: origins, requireToken, tokenHeader: tokenHeader.toLowerCase(), tokenField };
}

function transportHeader(transport: unknown): string | undefined {
  if (transport === undefined || transport === 'cookie') return undefined;
  const header = (transport as { header?: unknown } | null)?.header;
  if (typeof transport !== 'object' || transport === null || typeof header !== 'string') {
    fail(`transport must be 'cookie' or { header: 'x-session-id' }; got ${describe(transport)}`);
  }
  if (!COOKIE_NAME.test(header))
    fail(`transport.header ${JSON.stringify(header)} is not a valid header name (letters, digits and !#$%&'*+-.^_\`|~)`);
  const name = header.toLowerCase();
  if (RESERVED_HEADERS.has(name))
    fail(`transport.header cannot be "${name}": HTTP uses it for something else; pick a name such as x-session-id`);
  return name;
}

/** The cross-site protection: checked whatever the transport, so a mistake does not wait for a switch to cookies to show. */
function csrfFor(options: Partial<SessionsModuleOptions>): CsrfConfig | undefined {
  const csrf = csrfOption(options.csrf);
  if (options.transport === undefined || options.transport === 'cookie') return csrf;
  if (csrf?.requireToken) {
    fail(
      `csrf.requireToken does not apply to the header transport: browsers never attach its header on their own, so there is nothing to forge`,
    );
  }
  return undefined;
}

function schemaOption(input: unknown): StandardSchemaV1 | undefined {
  if (input !== undefined && !isStandardSchema(input)) {
    fail(`schema must be a Standard Schema (a zod, valibot or arktype schema, ...); got ${describe(input)}`);
  }
  return input;
}

function eventOption(input: unknown): SessionsConfig['onEvent'] {
  if (input !== undefined && typeof input !== 'function') fail(`onEvent must be a function (event) => void; got ${describe(input)}`);
  return input as SessionsConfig['onEvent'];
}

function shutdownTimeoutOption(input: unknown): number {
  if (input === undefined) return 10_000;
  if (typeof input !== 'number' || !Number.isFinite(input) || input < 0 || input > 3600) {
    fail(`shutdownTimeout must be a number of seconds from 0 to 3600; got ${describe(input)}`);
  }
  return Math.round(input * 1000);
}

function userSessionInfoOption(input: unknown): SessionsConfig['userSessionInfo'] {
  if (input === undefined) return undefined;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    fail(`userSessionInfo must be { userAgent?: boolean, ip?: boolean }; got ${describe(input)}`);
  }
  const { userAgent = false, ip = false, ...rest } = input as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0)
    fail(`userSessionInfo has no option ${unknown.map((k) => JSON.stringify(k)).join(', ')}; it takes userAgent and ip`);
  if (typeof userAgent !== 'boolean') fail(`userSessionInfo.userAgent must be true or false; got ${describe(userAgent)}`);
  if (typeof ip !== 'boolean') fail(`userSessionInfo.ip must be true or false; got ${describe(ip)}`);
  return userAgent || ip ? { userAgent, ip } : undefined;
}

/** Checks `migrateFrom`: express-session's options as the app had them. */
function migrationOption(input: unknown, cookieName: string, header: string | undefined): ExpressSessionMigration | undefined {
  if (input === undefined) return undefined;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    fail(`migrateFrom must be { secret, store, name, cookie, timeout }: the options express-session had; got ${describe(input)}`);
  }
  const { name = 'connect.sid', secret, store, cookie, timeout, ...rest } = input as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) {
    fail(`migrateFrom has no option ${unknown.map((k) => JSON.stringify(k)).join(', ')}; it takes secret, store, name, cookie and timeout`);
  }
  if (header !== undefined) fail('migrateFrom needs the cookie transport: express-session cookies come from browsers');
  if (typeof name !== 'string' || !COOKIE_NAME.test(name)) fail(`migrateFrom.name ${JSON.stringify(name)} is not a valid cookie name`);
  if (name === cookieName || name.startsWith(`${cookieName}.`)) {
    fail(`migrateFrom.name "${name}" must differ from the session cookie's name (cookie.name, "${cookieName}") and its chunks`);
  }
  const secrets = typeof secret === 'string' ? [secret] : secret;
  if (!Array.isArray(secrets) || secrets.length === 0 || !secrets.every((s) => typeof s === 'string' && s.length > 0)) {
    fail(`migrateFrom.secret must be express-session's secret: a non-empty string, or a list of them; got ${describe(secret)}`);
  }
  const old = store as Partial<ExpressSessionStoreLike> | null | undefined;
  if (typeof old !== 'object' || old === null || typeof old.get !== 'function' || typeof old.destroy !== 'function') {
    fail(
      `migrateFrom.store must be express-session's store as it was configured (with get and destroy), such as new RedisStore({ client })`,
    );
  }
  if (cookie !== undefined && (typeof cookie !== 'object' || cookie === null))
    fail(`migrateFrom.cookie must be { path, domain }; got ${describe(cookie)}`);
  const { path, domain } = (cookie ?? {}) as { path?: unknown; domain?: unknown };
  if (path !== undefined && (typeof path !== 'string' || !COOKIE_PATH.test(path))) {
    fail(`migrateFrom.cookie.path ${JSON.stringify(path)} must start with "/" and contain no spaces, control characters, ";", "," or "="`);
  }
  if (domain !== undefined && (typeof domain !== 'string' || !COOKIE_DOMAIN.test(domain))) {
    fail(`migrateFrom.cookie.domain ${JSON.stringify(domain)} is not a host name (letters, digits, "-" and ".")`);
  }
  if (timeout !== undefined && (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0)) {
    fail(`migrateFrom.timeout must be a number of milliseconds greater than 0; got ${describe(timeout)}`);
  }
  return new ExpressSessionMigration({
    name,
    secret: secrets as string[],
    store: old as ExpressSessionStoreLike,
    cookie: { path: path as string | undefined, domain: domain as string | undefined },
    timeout: timeout as number | undefined,
  });
}

/** Checks the options and applies the defaults; every problem is a `SessionsConfigError` that says what to do. */
export function resolveSessionsConfig(input: SessionsModuleOptions | string | readonly string[] | undefined): SessionsConfig {
  const options: Partial<SessionsModuleOptions> =
    typeof input === 'string' || Array.isArray(input) ? { secret: input as string | string[] } : ((input ?? {}) as SessionsModuleOptions);
  if (typeof options !== 'object' || options === null) fail(`options must be an object or a secret; got ${describe(input)}`);
  const keyring = new Keyring(secrets(options.secret));
  if (options.store !== undefined && !isSessionStore(options.store)) {
    fail('store must be a session store (load, create, update, touch and destroy methods), such as new InMemorySessionStore()');
  }
  const maxAge = seconds('maxAge', options.maxAge, 86_400)!;
  const idleTimeout = seconds('idleTimeout', options.idleTimeout);
  const absoluteTimeout = seconds('absoluteTimeout', options.absoluteTimeout);
  if (options.rolling !== undefined && typeof options.rolling !== 'boolean') {
    fail(`rolling must be true or false; got ${describe(options.rolling)}`);
  }
  if (options.telemetry !== undefined && typeof options.telemetry !== 'boolean') {
    fail(`telemetry must be true or false; got ${describe(options.telemetry)}`);
  }
  // Whole milliseconds: stores take expiries as integers (Redis PEXPIREAT refuses a fraction).
  const ttlMs = Math.round(Math.min(maxAge, idleTimeout ?? Infinity) * 1000);
  let touchAfterMs = Math.min(ttlMs / 10, 60_000);
  if (options.touchAfter !== undefined) {
    if (typeof options.touchAfter !== 'number' || !(options.touchAfter >= 0) || !Number.isFinite(options.touchAfter)) {
      fail(`touchAfter must be a number of seconds, 0 or more; got ${describe(options.touchAfter)}`);
    }
    touchAfterMs = Math.round(options.touchAfter * 1000);
    if (touchAfterMs >= ttlMs) {
      // The expiry would never move: a session in use every minute would still end at its first expiry.
      fail(
        `touchAfter (${options.touchAfter} s) must be shorter than the session's lifetime (${ttlMs / 1000} s, the shorter of maxAge and idleTimeout): ` +
          `the expiry moves at most once per touchAfter, so it would never move`,
      );
    }
  }
  const cookie = cookieOptions(options.cookie);
  const header = transportHeader(options.transport);
  return {
    keyring,
    store: options.store,
    cookie,
    header,
    migration: migrationOption(options.migrateFrom, cookie.name, header),
    onEvent: eventOption(options.onEvent),
    schema: schemaOption(options.schema),
    userSessionInfo: userSessionInfoOption(options.userSessionInfo),
    shutdownTimeoutMs: shutdownTimeoutOption(options.shutdownTimeout),
    telemetry: options.telemetry,
    csrf: csrfFor(options),
    maxAgeMs: Math.round(maxAge * 1000),
    idleTimeoutMs: idleTimeout === undefined ? undefined : Math.round(idleTimeout * 1000),
    absoluteTimeoutMs: absoluteTimeout === undefined ? undefined : Math.round(absoluteTimeout * 1000),
    rolling: options.rolling ?? false,
    touchAfterMs,
    ttlMs,
  };
}
