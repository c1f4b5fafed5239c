import { newSessionId, signId, verifySignedId } from '../crypto/sign.js';
import type { SessionData, SessionPatch } from '../session.js';
import type {
  IssuedToken,
  LoadedSession,
  SessionStore,
  SessionStoreContext,
  SessionTimes,
} from './session-store.js';

/** A stored session as a backend reads it. */
export interface StoredSession {
  readonly data: SessionData;
  readonly times: SessionTimes;
}

/** How many fresh IDs `create` tries before it gives up; with 256-bit IDs a second try never happens. */
const CREATE_ATTEMPTS = 3;

/**
 * The base of every store that keeps sessions on the server (memory, Redis, PostgreSQL, your own).
 *
 * The client holds only a signed random ID (256 bits, HMAC-SHA256), so a forged or guessed ID is refused
 * here, before the backend is asked anything. A backend implements five primitives; the base does IDs,
 * signatures and expiry checks. Each primitive must be atomic on its own: `insert` only creates,
 * `patch` and `refresh` only change a record that still exists.
 */
export abstract class ServerSessionStore implements SessionStore {
  /** The record of `id`, or undefined when there is none, it has expired, or it cannot be read. */
  protected abstract read(id: string): Promise<StoredSession | undefined>;
  /** Creates the record; returns false, changing nothing, when `id` is taken. */
  protected abstract insert(id: string, data: SessionData, times: SessionTimes): Promise<boolean>;
  /** Applies `patch` and the new times to a live record; returns false, creating nothing, when there is none. */
  protected abstract patch(id: string, patch: SessionPatch, times: SessionTimes): Promise<boolean>;
  /** Sets new times on a live record; returns false, creating nothing, when there is none. */
  protected abstract refresh(id: string, times: SessionTimes): Promise<boolean>;
  /** Deletes the record, if there is one. */
  protected abstract remove(id: string): Promise<void>;

  async load(token: string, ctx: SessionStoreContext): Promise<LoadedSession | undefined> {
    const verified = verifySignedId(token, ctx.keyring);
    if (!verified) return undefined;
    const record = await this.read(verified.id);
    if (!record || record.times.expiresAt <= Date.now()) return undefined;
    return { id: verified.id, data: record.data, times: record.times, reissue: verified.keyIndex > 0 };
  }

  async create(data: SessionData, times: SessionTimes, ctx: SessionStoreContext): Promise<IssuedToken> {
    for (let attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
      const id = newSessionId();
      if (await this.insert(id, data, times)) return { id, token: signId(id, ctx.keyring) };
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
    if (!(await this.patch(loaded.id, patch, times))) return undefined;
    return { id: loaded.id, token: signId(loaded.id, ctx.keyring) };
  }

  async touch(
    loaded: LoadedSession,
    _data: SessionData,
    times: SessionTimes,
    ctx: SessionStoreContext,
  ): Promise<IssuedToken | undefined> {
    if (!(await this.refresh(loaded.id, times))) return undefined;
    return { id: loaded.id, token: signId(loaded.id, ctx.keyring) };
  }

  async destroy(loaded: LoadedSession): Promise<void> {
    await this.remove(loaded.id);
  }
}
