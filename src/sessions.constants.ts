/**
 * Injection token of the store in use. Choose the store with the `store` option (in `forRootAsync`, from
 * any provider you inject), or replace it with `overrideProvider(SESSION_STORE)` in tests.
 */
export const SESSION_STORE = Symbol.for('nest-sessions:store');

/** Injection token of the options given to `SessionsModule.forRoot()` / `forRootAsync()`. */
export const SESSIONS_OPTIONS = Symbol.for('nest-sessions:options');

/** @internal The validated, resolved configuration (keys derived, defaults applied). */
export const SESSIONS_CONFIG = Symbol.for('nest-sessions:config');

/** @internal Property under which a request carries its session handle. */
export const SESSION_HANDLE = Symbol.for('nest-sessions:handle');

/** @internal Metadata key, on a controller class by method name: the index of the `@Session()` parameter. */
export const SESSION_PARAM = 'nest-sessions:session-param';

/**
 * @internal Marks the SessionsModule class of every copy of the package (the CommonJS and the ESM build),
 * so that a registration of each copy in one app counts as two registrations.
 */
export const SESSIONS_MODULE_MARK = Symbol.for('nest-sessions:module');

/** @internal Metadata key, on a controller class by method name: the schema given to `@Session(schema)`. */
export const SESSION_SCHEMA = 'nest-sessions:session-schema';
