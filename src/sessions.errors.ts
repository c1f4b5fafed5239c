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
    super(
      `Session key "${key}" holds a value that cannot be serialised: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
  }
}

/** Thrown when `@Session()` or `SessionsService` is used in an app that did not import the module. */
export class SessionsNotConfiguredError extends Error {
  override readonly name = 'SessionsNotConfiguredError';
}
