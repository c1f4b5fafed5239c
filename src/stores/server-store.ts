import { setMaxListeners } from 'node:events';
import { newSessionId, signId, verifySignedId } from '../crypto/sign.js';
import type { SessionData, SessionPatch } from '../session.js';
import { SessionsConfigError, SessionSerializationError, SessionStoreUnavailableError, SessionTooLargeError } from '../sessions.errors.js';
import type {
  IssuedToken,
  LoadedSession,
  SessionStore,
  SessionStoreContext,
  SessionTimes,
  UserSessionEntry,
  UserSessionIndex,
} from './session-store.js';

/** A stored session as a backend reads it. */
export interface StoredSession {
  readonly data: SessionData;
  readonly times: SessionTimes;
}

/** How many fresh IDs `create` tries before it gives up; with 256-bit IDs a second try never happens. */
const CREATE_ATTEMPTS = 3;

const NEVER_ABORTED = new AbortController().signal;

/** Calls that start within this many milliseconds of each other share a timer (see `#slice`). */
const SLICE_MS = 10;

interface PendingCall {
  readonly what: string;
  fail(err: Error): void;
}

interface Slice {
  readonly controller: AbortController;
  /** The slice's calls not settled yet. */
  readonly calls: Set<PendingCall>;
  /** Calls starting before this time (performance.now(), ms) join the slice. */
  readonly until: number;
}

export interface ServerSessionStoreOptions {
  /**
   * Milliseconds to wait for the backend before the request fails with a 503. Default 1000; 0 waits
   * as long as the backend takes (for stores that cannot be slow, such as the in-memory one).
   */
  timeout?: number;
  /**
   * The most backend calls that may be unfinished at once, counting those abandoned at the timeout
   * (a hung server still holds them). Past it, requests fail with a 503 at once instead of adding to
   * the client's queue. Default 1000.
   */
  maxPending?: number;
}

/**
 * The base of every store that keeps sessions on the server (memory, Redis, PostgreSQL, your own).
 *
 * The client holds only a signed random ID (256 bits, HMAC-SHA256), so a forged or guessed ID is refused
 * here, before the backend is asked anything. A backend implements five primitives; the base does IDs,
 * signatures and expiry checks. Each primitive must be atomic on its own: `insert` only creates,
 * `patch` and `refresh` only change a record that still exists.
 */
export abstract class ServerSessionStore implements SessionStore {
  /** Milliseconds a backend call may take; 0 for no limit. */
  protected readonly timeout: number;
  readonly #maxPending: number;
  /** Backend calls not settled yet, including those abandoned at the timeout. */
  #pending = 0;

  /** The index of users' sessions, when the backend implements its three primitives (see `addUserSession`). */
  readonly users: UserSessionIndex | undefined;

  constructor(options: ServerSessionStoreOptions = {}) {
    const { timeout = 1000, maxPending = 1000 } = options;
    if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 0) {
      throw new SessionsConfigError(`${new.target.name}: timeout must be a number of milliseconds, 0 or more; got ${String(timeout)}`);
    }
    if (!Number.isInteger(maxPending) || maxPending < 1) {
      throw new SessionsConfigError(`${new.target.name}: maxPending must be a whole number of at least 1; got ${String(maxPending)}`);
    }
    this.timeout = timeout;
    this.#maxPending = maxPending;
    const { addUserSession: add, removeUserSession: remove, listUserSessions: list } = this;
    this.users =
      add && remove && list
        ? {
            add: (userId, entry) => this.guard('indexing a session', (signal) => add.call(this, userId, entry, signal)),
            remove: (userId, id) => this.guard('unindexing a session', (signal) => remove.call(this, userId, id, signal)),
            list: (userId, _ctx, options) =>
              this.guard("listing a user's sessions", (signal) => list.call(this, userId, signal, options?.ended === true)),
          }
        : undefined;
  }

  /** Backend calls not settled yet, including those abandoned at the timeout. */
  get pending(): number {
    return this.#pending;
  }

  // Each primitive gets an AbortSignal that fires when the timeout runs out: a backend that can drop a
  // command still queued (node-redis can) should, so a slow or absent server does not pile up work.

  /** The record of `id`, or undefined when there is none, it has expired, or it cannot be read. */
  protected abstract read(id: string, signal: AbortSignal): Promise<StoredSession | undefined>;
  /** Creates the record; returns false, changing nothing, when `id` is taken. */
  protected abstract insert(id: string, data: SessionData, times: SessionTimes, signal: AbortSignal): Promise<boolean>;
  /** Applies `patch` and the new times to a live record; returns false, creating nothing, when there is none. */
  protected abstract patch(id: string, patch: SessionPatch, times: SessionTimes, signal: AbortSignal): Promise<boolean>;
  /** Sets new times on a live record; returns false, creating nothing, when there is none. */
  protected abstract refresh(id: string, times: SessionTimes, signal: AbortSignal): Promise<boolean>;
  /** Deletes the record; returns whether there was a live one. */
  protected abstract remove(id: string, signal: AbortSignal): Promise<boolean>;

  // A backend that can keep an index of each user's sessions implements these three as well (all or
  // none); `users` then offers them to the module. See `UserSessionIndex` for what each must do.

  /** Records session `entry.id` as the user's, or updates its entry; an expiry stored later is kept. */
  protected addUserSession?(userId: string, entry: UserSessionEntry, signal: AbortSignal): Promise<void>;
  /** Removes the entry of session `id` from the user's index; not an error when there is none. */
  protected removeUserSession?(userId: string, id: string, signal: AbortSignal): Promise<void>;
  /** The user's entries whose session is still live; with `ended`, every entry held, unpruned and unchecked. */
  protected listUserSessions?(userId: string, signal: AbortSignal, ended: boolean): Promise<UserSessionEntry[]>;

  /**
   * Runs a backend call within the timeout. A failure that is the data's fault (it cannot be serialised)
   * passes through; any other becomes a SessionStoreUnavailableError, which the module answers with 503.
   */
  protected async guard<T>(what: string, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (this.#pending >= this.#maxPending) {
      throw new SessionStoreUnavailableError(
        `${this.constructor.name}: ${this.#pending} calls to the backend are still unfinished (maxPending ${this.#maxPending}); not adding more`,
      );
    }
    if (this.timeout === 0) {
      // No time limit (a store that cannot be slow, such as the in-memory one): the call, counted.
      this.#pending++;
      try {
        return await call(NEVER_ABORTED);
      } catch (err) {
        throw this.#asUnavailable(what, err);
      } finally {
        this.#pending--;
      }
    }
    const slice = this.#slice();
    let work: Promise<T>;
    try {
      work = call(slice.controller.signal);
    } catch (err) {
      work = Promise.reject(err);
    }
    this.#pending++;
    try {
      // One reaction on the call does everything: the count of unfinished calls, leaving the slice, the
      // result. A call given up at the timeout still settles here later, and nobody hears about it.
      return await new Promise<T>((resolve, reject) => {
        const entry: PendingCall = { what, fail: reject };
        slice.calls.add(entry);
        work.then(
          (value) => {
            this.#pending--;
            slice.calls.delete(entry);
            resolve(value);
          },
          (err: unknown) => {
            this.#pending--;
            slice.calls.delete(entry);
            reject(err);
          },
        );
      });
    } catch (err) {
      throw this.#asUnavailable(what, err);
    }
  }

  /** A failure that is the data's fault (it cannot be serialised, or is too large) passes through; any other becomes a SessionStoreUnavailableError. */
  #asUnavailable(what: string, err: unknown): Error {
    if (err instanceof SessionSerializationError || err instanceof SessionStoreUnavailableError || err instanceof SessionTooLargeError)
      return err;
    return new SessionStoreUnavailableError(
      `${this.constructor.name}: ${what} failed: ${err instanceof Error ? err.message : String(err)}`,
      {
        cause: err,
      },
    );
  }

  #current: Slice | undefined;

  /**
   * The slice of time calls starting now belong to. Calls that start within SLICE_MS of each other share
   * one timer and one AbortSignal, fired `timeout + SLICE_MS` after the slice opened: every call gets at
   * least its timeout and at most SLICE_MS more. (An AbortController and a timer per call were a large
   * share of a read's own CPU time.)
   */
  #slice(): Slice {
    const now = performance.now(); // monotonic: a clock set back must not keep a slice open
    const current = this.#current;
    if (current && now < current.until) return current;
    const controller = new AbortController();
    // Each unfinished call may listen on the signal (node-redis does): no leak warning up to maxPending.
    setMaxListeners(this.#maxPending + 1, controller.signal);
    const slice: Slice = { controller, calls: new Set(), until: now + SLICE_MS };
    setTimeout(() => {
      if (this.#current === slice) this.#current = undefined; // no call joins a slice that has fired
      if (slice.calls.size === 0) return; // the usual case: every call answered in time
      controller.abort();
      for (const entry of slice.calls) {
        entry.fail(new SessionStoreUnavailableError(`${this.constructor.name}: ${entry.what} took longer than ${this.timeout} ms`));
      }
      slice.calls.clear();
    }, this.timeout + SLICE_MS).unref(); // a call under way keeps the process alive through its connection, not this timer
    return (this.#current = slice);
  }

  /** Reads a random session ID (there is none) within the timeout: the backend answers, or this rejects with why not. */
  async ping(): Promise<void> {
    await this.guard('checking the store', (signal) => this.read(newSessionId(), signal));
  }

  async load(token: string, ctx: SessionStoreContext): Promise<LoadedSession | undefined> {
    const verified = verifySignedId(token, ctx.keyring);
    if (!verified) {
      ctx.logger.debug?.('Session token refused: its signature does not verify (forged, altered, or signed with another secret)');
      return undefined;
    }
    const record = await this.guard('reading a session', (signal) => this.read(verified.id, signal));
    if (record && record.times.expiresAt <= Date.now()) ctx.expired?.(verified.id);
    if (!record || record.times.expiresAt <= Date.now()) {
      ctx.logger.debug?.('Session token refused: the store has no live session under it (it ended, expired or never existed)');
      return undefined;
    }
    return { id: verified.id, data: record.data, times: record.times, reissue: verified.keyIndex > 0 };
  }

  async create(data: SessionData, times: SessionTimes, ctx: SessionStoreContext): Promise<IssuedToken> {
    for (let attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
      const id = newSessionId();
      if (await this.guard('creating a session', (signal) => this.insert(id, data, times, signal)))
        return { id, token: signId(id, ctx.keyring) };
    }
    throw new Error(`Could not find a free session ID in ${CREATE_ATTEMPTS} attempts; is the store's insert working?`);
  }

  async update(
    loaded: LoadedSession,
    patch: SessionPatch,
    _data: SessionData,
    times: SessionTimes,
    ctx: SessionStoreContext,
  ): Promise<IssuedToken | undefined> {
    if (!(await this.guard('saving a session', (signal) => this.patch(loaded.id, patch, times, signal)))) return undefined;
    return { id: loaded.id, token: signId(loaded.id, ctx.keyring) };
  }

  async touch(loaded: LoadedSession, _data: SessionData, times: SessionTimes, ctx: SessionStoreContext): Promise<IssuedToken | undefined> {
    if (!(await this.guard('refreshing a session', (signal) => this.refresh(loaded.id, times, signal)))) return undefined;
    return { id: loaded.id, token: signId(loaded.id, ctx.keyring) };
  }

  async destroy(loaded: LoadedSession): Promise<boolean> {
    return this.guard('deleting a session', (signal) => this.remove(loaded.id, signal));
  }
}
