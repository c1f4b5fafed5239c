/** Injection token of the store in use. Replace it with any provider, or with `overrideProvider(SESSION_STORE)` in tests. */
export const SESSION_STORE = Symbol.for('nest-sessions:store');

/** Injection token of the options given to `SessionsModule.forRoot()` / `forRootAsync()`. */
export const SESSIONS_OPTIONS = Symbol.for('nest-sessions:options');

/** @internal The validated, resolved configuration (keys derived, defaults applied). */
export const SESSIONS_CONFIG = Symbol.for('nest-sessions:config');

/** @internal Metadata key set on handlers that take `@Session()`. */
export const TAKES_SESSION = Symbol.for('nest-sessions:takes-session');

/** @internal Property under which a request carries its session handle. */
export const SESSION_HANDLE = Symbol.for('nest-sessions:handle');
