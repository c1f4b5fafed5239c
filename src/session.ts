import { isCsrfSecret, maskCsrfToken, newCsrfSecret } from './crypto/csrf-token.js';

/** @internal How a session attached to a request finds what it needs beyond its data. */
export interface SessionWiring {
  /** What `save()` calls. */
  readonly save?: () => Promise<void>;
  /** The anti-forgery secret of the stored session `id`, derived under the current key. */
  readonly csrfSecretOf?: (id: string) => string;
}
import { SessionKeyError } from './sessions.errors.js';

/**
 * @internal Where a session's anti-forgery secret is kept among its data. No Session method shows it,
 * and setting it is refused, so the stores keep it like any key while handlers never see it.
 */
export const CSRF_KEY = 'nest-sessions:csrf';

/** @internal Where flashed values wait for the request that reads them; hidden from the data as the secret is. */
export const FLASH_KEY = 'nest-sessions:flash';

/** @internal Where a session's own lifetime (`setMaxAge`, in seconds) is kept; hidden from the data. */
export const MAX_AGE_KEY = 'nest-sessions:maxAge';

/** @internal Where the user a session belongs to (`setUser`) is kept; hidden from the data. */
export const USER_KEY = 'nest-sessions:user';

/** Reserved keys the module keeps with the data, out of the handler's sight, each with what a stored value must be. */
const HIDDEN: Record<string, (value: unknown) => boolean> = {
  [FLASH_KEY]: (value) => typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length > 0,
  [MAX_AGE_KEY]: (value) => isLifetime(value),
  [USER_KEY]: (value) => isUserId(value),
};

/** The longest user ID `setUser()` takes, in characters. */
export const MAX_USER_ID_LENGTH = 256;

/** @internal Whether `value` is a user ID `setUser()` takes. */
export function isUserId(value: unknown): value is string {
  // Well formed: stores keep IDs as UTF-8, where lone surrogates of different IDs would become the same text.
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_USER_ID_LENGTH && value.isWellFormed();
}

/** @internal What a value given as a user ID is, for an error message. */
export function describeUserId(value: unknown): string {
  if (typeof value !== 'string') return value === null ? 'null' : typeof value;
  if (value.length === 0) return 'an empty string';
  if (value.length > MAX_USER_ID_LENGTH) return `a string of ${value.length} characters`;
  return 'a string with a lone surrogate';
}

/** @internal The user a stored session belongs to, as stored among its data; undefined for none. */
export function userOf(data: SessionData | undefined): string | undefined {
  const value = data?.[USER_KEY];
  return isUserId(value) ? value : undefined;
}

/** The longest lifetime `setMaxAge()` takes: 400 days, the most browsers keep a cookie's Max-Age. */
const MAX_LIFETIME = 400 * 86_400;

function isLifetime(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_LIFETIME;
}

/** @internal The session's own lifetime in seconds, as stored among its data; undefined for the module's. */
export function lifetimeOf(data: SessionData | undefined): number | undefined {
  const value = data?.[MAX_AGE_KEY];
  return isLifetime(value) ? value : undefined;
}

function refuseReserved(key: string): void {
  if (key === CSRF_KEY) throw new TypeError(`The session key "${CSRF_KEY}" is reserved for the anti-forgery secret`);
  if (Object.hasOwn(HIDDEN, key)) throw new TypeError(`The session key "${key}" is reserved for the module's own use`);
}

/** The data of a session: string keys, JSON-compatible values. */
export type SessionData = Record<string, unknown>;

/** What a save has to apply: only what changed since the session was loaded (or last saved). */
export interface SessionPatch {
  /** Keys that were set, or whose value was changed in place, with their current values. */
  readonly set: SessionData;
  /** Keys that were deleted. */
  readonly unset: readonly string[];
  /** The session was cleared first: stored keys not named in `set` are removed too. */
  readonly replace: boolean;
}

type Key<T> = keyof T & string;

/**
 * A session as a handler sees it (`@Session() session: Session<{ userId: string }>`): a small typed
 * map that knows what changed.
 *
 * It does no I/O of its own. Changes are saved once, after the handler and every interceptor around it
 * have finished, by the sessions interceptor; `save()` commits earlier. A value read with `get()` and
 * changed in place (`session.get('items').push(x)`) counts as a change too: objects read from the
 * session are compared, as JSON, with what they were when first read.
 */
export interface SessionOf<T extends object = SessionData> {
  /** The session's ID; undefined until the session is first saved. */
  readonly id: string | undefined;
  /** True when the session has never been saved (it came with no valid cookie). */
  readonly isNew: boolean;
  /** The value of `key`, or undefined (or `fallback`) when the key is not set. */
  get<K extends Key<T>>(key: K): T[K] | undefined;
  get<K extends Key<T>>(key: K, fallback: T[K]): T[K];
  /** The value of `key`; throws `SessionKeyError`, naming the key, when it is not set. */
  getOrThrow<K extends Key<T>>(key: K): T[K];
  /** Sets `key`. Marks the session modified even when the value is the same. `undefined` deletes the key. */
  set<K extends Key<T>>(key: K, value: T[K]): this;
  /** True when `key` is set. */
  has(key: Key<T> | string): boolean;
  /** Removes `key`; returns whether it was set. Marks the session modified either way. */
  delete(key: Key<T> | string): boolean;
  /** Sets every key of `partial` (keys whose value is undefined are deleted). */
  update(partial: Partial<T>): this;
  /** Removes every key. The stored session stays (use `destroy()` to end it). */
  clear(): void;
  /** The keys that are set. */
  keys(): Key<T>[];
  /** How many keys are set. */
  readonly size: number;
  /** A deep copy of the data: changing it does not change the session. */
  toJSON(): Partial<T>;
  /** True when something will be saved: a key set or deleted, the session cleared, a value changed in place, or a lifecycle call. */
  readonly isModified: boolean;
  /**
   * Gives the session a new ID and deletes the record under the old one, keeping the data. Call it on
   * login and on every change of privilege. Applied when the session is saved.
   */
  regenerate(): void;
  /**
   * Ends the session: its data is removed, the stored record deleted and the cookie expired when the
   * session is saved. Setting a key afterwards starts a new session with a new ID.
   */
  destroy(): void;
  /** Saves now instead of after the handler: before sending the response yourself (`@Res()`), or from an interceptor outside the sessions interceptor. */
  save(): Promise<void>;
  /**
   * An anti-forgery token for this session, to put in a form (`<input type="hidden" name="_csrf">`) or
   * send in the `x-csrf-token` header. Each call gives a different string (masked afresh), and every one
   * is valid until the session's ID changes: on `regenerate()` and `destroy()`. For a stored session it
   * is no change (its secret is derived from its ID); for a new one it is: the session is created.
   */
  csrfToken(): string;
  /**
   * Keeps `value` under `key` until a later request reads it with `getFlash(key)`: for a message shown
   * after a redirect ("Saved."). Flashing the same key again replaces the value. Values are JSON values,
   * as the data's are, and are not among `keys()` or `toJSON()`.
   */
  flash(key: string, value: unknown): this;
  /** The value flashed under `key` by an earlier request, removed as it is read; undefined when there is none. */
  getFlash<V = unknown>(key: string): V | undefined;
  /**
   * This session's own lifetime in seconds, in place of the module's `maxAge` ("remember me"): the store
   * and the cookie keep it that long after each save, never past `absoluteTimeout`. `undefined` goes back
   * to `maxAge`. The new expiry applies at the save.
   */
  setMaxAge(seconds: number | undefined): this;
  /** The lifetime `setMaxAge()` gave this session, in seconds; undefined when it has the module's. */
  readonly maxAge: number | undefined;
  /**
   * Marks the session as `userId`'s (a string of 1 to 256 characters), so that
   * `SessionsService.userSessions()` lists it and `destroyUserSessions()` ends it ("log out
   * everywhere"). `undefined` unmarks it; `destroy()` does too. A change of user gives the session a new
   * ID, as `regenerate()` does (so ask for `csrfToken()` after it). Applied when the session is saved.
   */
  setUser(userId: string | undefined): this;
  /** The user `setUser()` marked this session with; undefined when none. */
  readonly userId: string | undefined;
}

/**
 * The class behind `Session<T>`. Construct one to call a handler directly in a unit test:
 * `controller.add(new TrackedSession({ items: [] }))`; `save()` then throws, since no request is behind it.
 */
export class TrackedSession<T extends object = SessionData> implements SessionOf<T> {
  #values: Map<string, unknown>;
  #setKeys = new Set<string>();
  #deletedKeys = new Set<string>();
  #cleared = false;
  /** JSON of object values as they were when first read, to notice changes made in place. */
  #snapshots: Map<string, string> | undefined;
  /** What each key held before its first change since the last save, to roll a failed handler back. */
  #undo: Map<string, { had: boolean; value?: unknown }> | undefined;
  #regenerate = false;
  #destroyed = false;
  /** Set after destroy() when new data arrives: a brand-new session, not a continuation. */
  #restart = false;
  #id: string | undefined;
  #saver: (() => Promise<void>) | undefined;
  #csrfSecretOf: ((id: string) => string) | undefined;
  /** The anti-forgery secret stored with the session (one issued before it had an ID), kept apart from the data the handler sees. */
  #csrf: string | undefined;
  /** What #csrf was at the last save, while it differs: then the secret is saved (or removed). */
  #csrfBefore: { value: string | undefined } | undefined;
  /** What the module keeps under reserved keys (flashed values, the lifetime), apart from the data the handler sees. */
  #hidden = new Map<string, unknown>();
  /** What each of them was at the last save, for those changed since. */
  #hiddenBefore: Map<string, { had: boolean; value?: unknown }> | undefined;

  /**
   * @param data the stored data (taken over, not copied)
   * @param id the ID of a stored session; undefined for a new one
   * @param wiring what `save()` calls and how the anti-forgery secret is derived; given by the module
   */
  constructor(data?: Partial<T> | SessionData, id?: string, wiring?: SessionWiring) {
    this.#values = new Map(data ? Object.entries(data) : undefined);
    if (this.#values.has(CSRF_KEY)) {
      const secret = this.#values.get(CSRF_KEY);
      this.#values.delete(CSRF_KEY);
      // Anything else there (stored by hand) is no secret: the next csrfToken() replaces it.
      if (isCsrfSecret(secret)) this.#csrf = secret;
    }
    for (const key in HIDDEN) {
      if (!this.#values.has(key)) continue;
      const value = this.#values.get(key);
      this.#values.delete(key);
      this.#hidden.set(key, value);
      // Anything else there (stored by hand) is dropped at the next save.
      if (!HIDDEN[key]!(value)) this.#setHidden(key, undefined);
    }
    this.#id = id;
    this.#saver = wiring?.save;
    this.#csrfSecretOf = wiring?.csrfSecretOf;
  }

  /** The session's ID; undefined until the session is first saved. */
  get id(): string | undefined {
    return this.#id;
  }

  /** True when the session has never been saved (it came with no valid cookie). */
  get isNew(): boolean {
    return this.#id === undefined;
  }

  /** The value of `key`, or undefined (or `fallback`) when the key is not set. */
  get<K extends Key<T>>(key: K): T[K] | undefined;
  get<K extends Key<T>>(key: K, fallback: T[K]): T[K];
  get(key: string, fallback?: unknown): unknown {
    const values = this.#values;
    if (!values.has(key)) return fallback;
    const value = values.get(key);
    if (typeof value === 'object' && value !== null && !this.#setKeys.has(key)) {
      const snapshots = (this.#snapshots ??= new Map());
      if (!snapshots.has(key)) snapshots.set(key, safeStringify(value) ?? UNSERIALISABLE);
    }
    return value;
  }

  /** The value of `key`; throws `SessionKeyError`, naming the key, when it is not set. */
  getOrThrow<K extends Key<T>>(key: K): T[K] {
    if (!this.#values.has(key)) throw new SessionKeyError(key);
    return this.get(key) as T[K];
  }

  /** Sets `key`. Marks the session modified even when the value is the same. `undefined` deletes the key. */
  set<K extends Key<T>>(key: K, value: T[K]): this {
    refuseReserved(key);
    if (value === undefined) {
      this.delete(key);
      return this;
    }
    this.#revive();
    this.#remember(key);
    this.#values.set(key, value);
    this.#setKeys.add(key);
    this.#deletedKeys.delete(key);
    return this;
  }

  /** True when `key` is set. */
  has(key: Key<T> | string): boolean {
    return this.#values.has(key);
  }

  /** Removes `key`; returns whether it was set. Marks the session modified either way. */
  delete(key: Key<T> | string): boolean {
    refuseReserved(key);
    this.#remember(key);
    const had = this.#values.delete(key);
    this.#setKeys.delete(key);
    this.#snapshots?.delete(key);
    this.#deletedKeys.add(key);
    return had;
  }

  /** Sets every key of `partial` (keys whose value is undefined are deleted). */
  update(partial: Partial<T>): this {
    for (const [key, value] of Object.entries(partial)) this.set(key as Key<T>, value as T[Key<T>]);
    return this;
  }

  /** Removes every key. The stored session stays (use `destroy()` to end it). */
  clear(): void {
    for (const key of this.#values.keys()) this.#remember(key);
    this.#values.clear();
    this.#setKeys.clear();
    this.#deletedKeys.clear();
    this.#snapshots = undefined;
    this.#cleared = true;
  }

  /** The keys that are set. */
  keys(): Key<T>[] {
    return [...this.#values.keys()] as Key<T>[];
  }

  /** How many keys are set. */
  get size(): number {
    return this.#values.size;
  }

  /** A deep copy of the data: changing it does not change the session. */
  toJSON(): Partial<T> {
    const copy: SessionData = {};
    for (const [key, value] of this.#values) {
      // defineProperty keeps a key such as "__proto__" an ordinary key of the copy
      Object.defineProperty(copy, key, { value: structuredClone(value), enumerable: true, writable: true, configurable: true });
    }
    return copy as Partial<T>;
  }

  /** True when something will be saved: a key set or deleted, the session cleared, a value changed in place, or a lifecycle call. */
  get isModified(): boolean {
    return (
      this.#setKeys.size > 0 ||
      this.#deletedKeys.size > 0 ||
      this.#cleared ||
      this.#regenerate ||
      this.#destroyed ||
      this.#csrfBefore !== undefined ||
      this.#hiddenBefore !== undefined ||
      this.#changedInPlace().length > 0
    );
  }

  /**
   * Gives the session a new ID and deletes the record under the old one, keeping the data. Call it on
   * login and on every change of privilege, so that an ID planted before login is worth nothing after it.
   * Applied when the session is saved.
   */
  regenerate(): void {
    this.#regenerate = true;
    this.#dropCsrf(); // a token known before (a planted session's) is worth nothing after it
  }

  /**
   * Ends the session: its data is removed, the stored record deleted and the cookie expired when the
   * session is saved. Setting a key afterwards starts a new session with a new ID.
   */
  destroy(): void {
    this.clear();
    this.#cleared = false;
    this.#regenerate = false;
    this.#restart = false;
    this.#destroyed = true;
    this.#dropCsrf();
    for (const key of [...this.#hidden.keys()]) this.#setHidden(key, undefined);
  }

  /** Saves now instead of after the handler; for handlers that send the response themselves (`@Res()`). */
  async save(): Promise<void> {
    if (!this.#saver) throw new Error('This session is not attached to a request; it cannot be saved');
    await this.#saver();
  }

  csrfToken(): string {
    if (this.#csrf !== undefined) return maskCsrfToken(this.#csrf);
    // A stored session keeping its ID: the secret follows from the ID, so nothing is written and two
    // requests asking at once get tokens of the same secret.
    if (this.#id !== undefined && this.#csrfSecretOf && !this.#regenerate && !this.#destroyed) {
      return maskCsrfToken(this.#csrfSecretOf(this.#id));
    }
    // No ID yet (or a new one to come): a random secret, saved with the session.
    this.#revive();
    this.#csrfBefore ??= { value: undefined };
    this.#csrf = newCsrfSecret();
    return maskCsrfToken(this.#csrf);
  }

  flash(key: string, value: unknown): this {
    if (typeof key !== 'string') throw new TypeError('session.flash(key, value) needs a string key');
    if (value === undefined) throw new TypeError(`session.flash("${key}", undefined): flash a value that JSON keeps (null, a string, ...)`);
    this.#revive(); // after destroy() (a logout), a flash starts the new session it is shown in
    const flash = this.#hidden.get(FLASH_KEY) as Record<string, unknown> | undefined;
    this.#setHidden(FLASH_KEY, withKey(flash, key, value));
    return this;
  }

  getFlash<V = unknown>(key: string): V | undefined {
    const flash = this.#hidden.get(FLASH_KEY) as Record<string, unknown> | undefined;
    if (!flash || !Object.hasOwn(flash, key)) return undefined;
    const rest = withKey(flash, key, undefined);
    this.#setHidden(FLASH_KEY, Object.keys(rest).length > 0 ? rest : undefined);
    return flash[key] as V;
  }

  setMaxAge(seconds: number | undefined): this {
    if (seconds !== undefined && !isLifetime(seconds)) {
      throw new RangeError(
        `session.setMaxAge(seconds): a whole number of seconds from 1 to ${MAX_LIFETIME} (400 days, the most browsers keep a cookie), ` +
          `or undefined for the module's maxAge; got ${String(seconds)}`,
      );
    }
    if (this.#hidden.get(MAX_AGE_KEY) === seconds) return this;
    if (seconds !== undefined)
      this.#revive(); // after destroy(), a lifetime is part of the new session
    else if (this.#destroyed) return this; // nothing to go back from: the session is ending
    this.#setHidden(MAX_AGE_KEY, seconds);
    return this;
  }

  get maxAge(): number | undefined {
    return this.#hidden.get(MAX_AGE_KEY) as number | undefined;
  }

  setUser(userId: string | undefined): this {
    if (userId !== undefined && !isUserId(userId)) {
      throw new TypeError(
        `session.setUser(userId): a string of 1 to ${MAX_USER_ID_LENGTH} characters without lone surrogates (String(user.id) for a number), ` +
          `or undefined to unmark the session; got ${describeUserId(userId)}`,
      );
    }
    if (this.#hidden.get(USER_KEY) === userId) return this;
    if (userId === undefined && this.#destroyed) return this; // destroy() has unmarked it already
    // A new ID whenever the user changes: an ID never passes from one user to another (or to nobody),
    // so a list of a user's sessions can never name a session that is someone else's.
    if (this.#destroyed)
      this.#revive(); // after destroy() (a logout), a sign-in starts the new session
    else this.regenerate();
    this.#setHidden(USER_KEY, userId);
    return this;
  }

  get userId(): string | undefined {
    return this.#hidden.get(USER_KEY) as string | undefined;
  }

  /** Sets (or, with undefined, removes) a reserved value, remembering what it was at the last save. */
  #setHidden(key: string, value: unknown): void {
    const before = (this.#hiddenBefore ??= new Map());
    if (!before.has(key)) before.set(key, this.#hidden.has(key) ? { had: true, value: this.#hidden.get(key) } : { had: false });
    if (value === undefined) this.#hidden.delete(key);
    else this.#hidden.set(key, value);
  }

  /** The stored data was refused (by a schema): the session ends at the save, whatever a rollback undoes. */
  #refused = false;

  /**
   * @internal The stored data is refused (it does not match a schema): the session is empty from here on,
   * and its stored record ends at the next save. A rollback (a failing handler) keeps it so.
   */
  _refuseStored(): void {
    this.destroy();
    this.#undo = undefined;
    this.#snapshots = undefined;
    this.#csrfBefore = undefined;
    this.#hiddenBefore = undefined;
    this.#refused = true;
  }

  /** @internal The data the handler sees, uncopied (for a schema to check): no reserved keys. */
  _visibleData(): SessionData {
    const data: SessionData = {};
    for (const [key, value] of this.#values) defineKey(data, key, value);
    return data;
  }

  /** @internal The anti-forgery secret stored with the session, if any (else it is derived from the ID). */
  _csrfSecret(): string | undefined {
    return this.#csrf;
  }

  #dropCsrf(): void {
    if (this.#csrf === undefined) return;
    this.#csrfBefore ??= { value: this.#csrf };
    this.#csrf = undefined;
  }

  #remember(key: string): void {
    const undo = (this.#undo ??= new Map());
    if (!undo.has(key)) undo.set(key, this.#values.has(key) ? { had: true, value: this.#values.get(key) } : { had: false });
  }

  /** After destroy(), a new value starts a new session (a fresh ID), not the old one. */
  #revive(): void {
    if (this.#destroyed) {
      this.#destroyed = false;
      this.#restart = true;
      this.#regenerate = true;
      this.#cleared = true;
    }
  }

  #changedInPlace(): string[] {
    const changed: string[] = [];
    if (this.#snapshots) {
      for (const [key, before] of this.#snapshots) {
        if (this.#values.has(key) && safeStringify(this.#values.get(key)) !== before) changed.push(key);
      }
    }
    return changed;
  }

  /** @internal What the save has to do, read by the module. */
  _pending(): PendingChange {
    const inPlace = this.#changedInPlace();
    const set: SessionData = {};
    for (const key of this.#setKeys) defineKey(set, key, this.#values.get(key));
    for (const key of inPlace) defineKey(set, key, this.#values.get(key));
    const unset = [...this.#deletedKeys];
    const csrfChanged = this.#csrfBefore !== undefined;
    if (this.#csrf !== undefined && (csrfChanged || this.#cleared)) set[CSRF_KEY] = this.#csrf;
    else if (this.#csrf === undefined && csrfChanged) unset.push(CSRF_KEY);
    const hiddenChanged = this.#hiddenBefore !== undefined;
    for (const key in HIDDEN) {
      if (this.#hidden.has(key) && (this.#cleared || this.#hiddenBefore?.has(key))) set[key] = this.#hidden.get(key);
      else if (!this.#hidden.has(key) && this.#hiddenBefore?.get(key)?.had) unset.push(key);
    }
    return {
      modified: this.#setKeys.size > 0 || this.#deletedKeys.size > 0 || this.#cleared || inPlace.length > 0 || csrfChanged || hiddenChanged,
      lifetimeChanged: this.#hiddenBefore?.has(MAX_AGE_KEY) === true,
      regenerate: this.#regenerate,
      restart: this.#restart,
      destroy: this.#destroyed,
      patch: { set, unset, replace: this.#cleared },
    };
  }

  /** @internal The current data, shared with the session: stores must copy or serialise it, not keep it. */
  _data(): SessionData {
    const data: SessionData = {};
    for (const [key, value] of this.#values) defineKey(data, key, value);
    if (this.#csrf !== undefined) data[CSRF_KEY] = this.#csrf;
    for (const [key, value] of this.#hidden) data[key] = value;
    return data;
  }

  /**
   * @internal Undoes every change since the last save (a handler or resolver failed with an error that
   * is not the client's): values set or deleted come back, objects changed in place are rebuilt from
   * their snapshot, lifecycle calls are forgotten.
   */
  _rollback(): void {
    for (const [key, before] of this.#undo ?? []) {
      if (before.had) this.#values.set(key, before.value);
      else this.#values.delete(key);
    }
    for (const [key, json] of this.#snapshots ?? []) {
      if (json !== UNSERIALISABLE) this.#values.set(key, JSON.parse(json));
    }
    if (this.#csrfBefore) this.#csrf = this.#csrfBefore.value;
    for (const [key, before] of this.#hiddenBefore ?? []) {
      if (before.had) this.#hidden.set(key, before.value);
      else this.#hidden.delete(key);
    }
    const refused = this.#refused;
    this.#forgetChanges();
    if (refused) {
      // Back to the refusal itself: empty, and ending at the save.
      this.#refused = true;
      this.#destroyed = true;
    }
  }

  /** @internal Called once a save went through: what was saved is the new starting point. */
  _committed(id: string | undefined): void {
    // Objects the handler holds may still change in place after this save: snapshot them as saved.
    const held = new Set([...this.#setKeys, ...(this.#snapshots?.keys() ?? [])]);
    this.#snapshots = undefined;
    for (const key of held) {
      const value = this.#values.get(key);
      if (typeof value === 'object' && value !== null) {
        (this.#snapshots ??= new Map()).set(key, safeStringify(value) ?? UNSERIALISABLE);
      }
    }
    this.#id = id;
    this.#forgetChanges();
  }

  /** The current values become the starting point: nothing is pending any more. */
  #forgetChanges(): void {
    this.#undo = undefined;
    this.#setKeys.clear();
    this.#deletedKeys.clear();
    this.#cleared = false;
    this.#regenerate = false;
    this.#destroyed = false;
    this.#restart = false;
    this.#csrfBefore = undefined;
    this.#hiddenBefore = undefined;
    this.#refused = false;
  }
}

/** @internal */
export interface PendingChange {
  /** Data changed (set, delete, clear, in-place). */
  modified: boolean;
  /** `setMaxAge()` changed the session's lifetime: the save moves its expiry. */
  lifetimeChanged: boolean;
  regenerate: boolean;
  /** A new session after destroy(): new ID and a new creation time. */
  restart: boolean;
  destroy: boolean;
  patch: SessionPatch;
}

/** Never the JSON of anything: a value that could not be serialised when read counts as changed. */
const UNSERIALISABLE = '\0';

/** A copy of `record` with `key` set to `value` (removed for undefined), kept as an ordinary key whatever its name. */
function withKey(record: Record<string, unknown> | undefined, key: string, value: unknown): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record ?? {})) defineKey(copy, k, v);
  if (value === undefined) delete copy[key];
  else defineKey(copy, key, value);
  return copy;
}

function defineKey(target: SessionData, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

function safeStringify(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined; // not JSON: treated as changed, and the save reports why it cannot store it
  }
}
