/** Thrown at startup when the module's options cannot work; the message says what to change. */
export class SessionsConfigError extends Error {
  override readonly name = 'SessionsConfigError';
}

/** Thrown by `session.getOrThrow(key)` when the key is not in the session. */
export class SessionKeyError extends Error {
  override readonly name = 'SessionKeyError';
  constructor(readonly key: string) {
    super(`Session key "${key}" is not set`);
  }
}

/** Thrown when a value put in the session cannot be serialised (a BigInt, a cycle, ...). */
export class SessionSerializationError extends Error {
  override readonly name = 'SessionSerializationError';
  constructor(
    readonly key: string,
    cause: unknown,
  ) {
    super(`Session key "${key}" holds a value that cannot be serialised: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
  }
}

/** Thrown when `@Session()` or `SessionsService` is used in an app that did not import the module. */
export class SessionsNotConfiguredError extends Error {
  override readonly name = 'SessionsNotConfiguredError';
}

/**
 * Thrown when a session does not fit in what carries its token (the cookies it may use, or the header).
 * Raised before any header is sent, so the response is a 500 whose log says why, and the client keeps its
 * previous, working token.
 */
export class SessionTooLargeError extends Error {
  override readonly name = 'SessionTooLargeError';
  constructor(
    /** Bytes of the session token. */
    readonly size: number,
    /** Bytes of token that fit. */
    readonly limit: number,
    /** What carries the token, in words: "4 cookies of 4096 bytes", "the x-session-id header". */
    readonly carrier: string,
  ) {
    super(
      `The session is too large: its token is ${size} bytes, and ${carrier} can carry at most ${limit} bytes of it. ` +
        `Keep less in the session, or keep it in a server-side store (RedisSessionStore, PostgresSessionStore): ` +
        `a cookie session travels with every request, and larger cookies make browsers' requests fail at ` +
        `the header limits of Node (16 KB) and proxies (often 8 KB).`,
    );
  }
}

/**
 * Thrown by a save when the session's data does not match its schema (the module's `schema`, or that of
 * a `@Session(schema)` the request ran): nothing is written, and the message names the path that fails.
 */
export class SessionValidationError extends Error {
  override readonly name = 'SessionValidationError';
  constructor(
    /** The first issue, as `path: message`. */
    readonly issue: string,
  ) {
    super(`The session does not match its schema, so it was not saved: ${issue}`);
  }
}

/**
 * The session store failed or did not answer within its timeout. Requests that need the session get a
 * 503 through Nest's exception layer; the next request tries again, so a store that comes back works
 * without a restart.
 */
export class SessionStoreUnavailableError extends Error {
  override readonly name = 'SessionStoreUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * The CommonJS and the ESM build may both be loaded in one process (an app in one format, a library in
 * the other), and each has its own error classes. So that `err instanceof SessionStoreUnavailableError`
 * holds for an error thrown by the other copy (a store built against it), each class's prototype carries
 * its name under a process-wide symbol, and `instanceof` on the class itself also accepts that mark.
 * A subclass keeps the ordinary `instanceof`.
 */
const ERROR_KIND = Symbol.for('nest-sessions:error');

function markAcrossCopies(cls: abstract new (...args: never[]) => Error, kind: string): void {
  Object.defineProperty(cls.prototype, ERROR_KIND, { value: kind });
  Object.defineProperty(cls, Symbol.hasInstance, {
    value(this: object, value: unknown): boolean {
      if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
      return this === cls && typeof value === 'object' && value !== null && (value as { [ERROR_KIND]?: unknown })[ERROR_KIND] === kind;
    },
  });
}

markAcrossCopies(SessionsConfigError, 'SessionsConfigError');
markAcrossCopies(SessionKeyError, 'SessionKeyError');
markAcrossCopies(SessionSerializationError, 'SessionSerializationError');
markAcrossCopies(SessionsNotConfiguredError, 'SessionsNotConfiguredError');
markAcrossCopies(SessionTooLargeError, 'SessionTooLargeError');
markAcrossCopies(SessionStoreUnavailableError, 'SessionStoreUnavailableError');
markAcrossCopies(SessionValidationError, 'SessionValidationError');
