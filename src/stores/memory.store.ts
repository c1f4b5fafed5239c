import { Logger, type OnModuleDestroy } from '@nestjs/common';
import type { SessionData, SessionPatch } from '../session.js';
import { SessionsConfigError } from '../sessions.errors.js';
import { parseFields, serializeFields } from './fields.js';
import { ServerSessionStore, type StoredSession } from './server-store.js';
import type { SessionTimes, UserSessionEntry } from './session-store.js';
import { laterTimes } from '../session-times.js';

export interface InMemorySessionStoreOptions {
  /** The most sessions kept; past it the least recently used one is dropped. Default 10,000. */
  maxSessions?: number;
  /** Seconds between sweeps of expired sessions; 0 turns the sweep off (expired ones are still never read). Default 60. */
  sweepInterval?: number;
}

interface MemoryRecord {
  /** One JSON text per key: a copy that nothing outside the store can change, patched key by key. */
  fields: Map<string, string>;
  times: SessionTimes;
}

/**
 * Sessions in this process's memory: for development, tests and single-process apps. Sessions are lost
 * on restart and not shared between processes; use the Redis or PostgreSQL store for that.
 *
 * Bounded: at most `maxSessions`, the least recently used dropped first. Expired sessions are swept on a
 * timer that does not keep the process alive.
 */
export class InMemorySessionStore extends ServerSessionStore implements OnModuleDestroy {
  readonly #records = new Map<string, MemoryRecord>();
  /** Each user's sessions (`session.setUser()`), by session ID. */
  readonly #users = new Map<string, Map<string, UserSessionEntry>>();
  readonly #maxSessions: number;
  readonly #sweepMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: InMemorySessionStoreOptions = {}) {
    super({ timeout: 0 });
    const { maxSessions = 10_000, sweepInterval = 60 } = options;
    if (!Number.isInteger(maxSessions) || maxSessions < 1) {
      throw new SessionsConfigError(`InMemorySessionStore: maxSessions must be a whole number of at least 1; got ${String(maxSessions)}`);
    }
    if (typeof sweepInterval !== 'number' || !(sweepInterval >= 0) || !Number.isFinite(sweepInterval)) {
      throw new SessionsConfigError(
        `InMemorySessionStore: sweepInterval must be a number of seconds, 0 or more; got ${String(sweepInterval)}`,
      );
    }
    this.#maxSessions = maxSessions;
    this.#sweepMs = sweepInterval * 1000;
  }

  /** How many live (unexpired) sessions the store holds. */
  get size(): number {
    this.sweep();
    return this.#records.size;
  }

  /** Drops every expired session now, and the entries of users' sessions that have ended. */
  sweep(now = Date.now()): void {
    for (const [id, record] of this.#records) {
      if (record.times.expiresAt <= now) this.#records.delete(id);
    }
    for (const [userId, entries] of this.#users) this.#pruneUser(userId, entries, now);
  }

  /** Stops the sweep timer. The store keeps working; the timer starts again with the next new session. */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  onModuleDestroy(): void {
    this.close();
  }

  /** Again after the shutdown's wait: a session created by a request that was still in flight started the sweep anew. */
  onApplicationShutdown(): void {
    this.close();
  }

  protected async read(id: string): Promise<StoredSession | undefined> {
    const expired = this.#records.get(id);
    const record = this.#live(id);
    // Dropped as it is read: its times (and no data) say so to load(), which reports it expired.
    if (!record) return expired ? { data: {}, times: expired.times } : undefined;
    try {
      return { data: parseFields(record.fields), times: record.times };
    } catch (err) {
      new Logger('InMemorySessionStore').warn(`Dropping an unreadable session: ${(err as Error).message}`);
      this.#records.delete(id);
      return undefined;
    }
  }

  protected async insert(id: string, data: SessionData, times: SessionTimes): Promise<boolean> {
    const fields = new Map(serializeFields(data));
    if (this.#live(id)) return false;
    this.#records.set(id, { fields, times });
    while (this.#records.size > this.#maxSessions) {
      // A Map iterates in insertion order, and every use re-inserts: the first key is the least recently used.
      this.#records.delete(this.#records.keys().next().value!);
    }
    this.#startSweeping();
    return true;
  }

  protected async patch(id: string, patch: SessionPatch, times: SessionTimes): Promise<boolean> {
    const changes = serializeFields(patch.set);
    const record = this.#live(id);
    if (!record) return false;
    if (patch.replace) record.fields.clear();
    for (const key of patch.unset) record.fields.delete(key);
    for (const [key, json] of changes) record.fields.set(key, json);
    record.times = laterTimes(record.times, times);
    return true;
  }

  protected async refresh(id: string, times: SessionTimes): Promise<boolean> {
    const record = this.#live(id);
    if (!record) return false;
    record.times = laterTimes(record.times, times);
    return true;
  }

  protected async remove(id: string): Promise<boolean> {
    const live = this.#live(id) !== undefined;
    this.#records.delete(id);
    return live;
  }

  protected override async addUserSession(userId: string, entry: UserSessionEntry): Promise<void> {
    let entries = this.#users.get(userId);
    if (!entries) this.#users.set(userId, (entries = new Map()));
    const before = entries.get(entry.id);
    // An expiry never moves back: an overlapping request that wrote a later one keeps it.
    entries.set(entry.id, { ...entry, expiresAt: Math.max(entry.expiresAt, before?.expiresAt ?? 0) });
    this.#pruneUser(userId, entries, Date.now());
  }

  protected override async removeUserSession(userId: string, id: string): Promise<void> {
    const entries = this.#users.get(userId);
    if (!entries) return;
    entries.delete(id);
    if (entries.size === 0) this.#users.delete(userId);
  }

  protected override async listUserSessions(userId: string, _signal?: AbortSignal, ended = false): Promise<UserSessionEntry[]> {
    const entries = this.#users.get(userId);
    if (!entries) return [];
    if (!ended) this.#pruneUser(userId, entries, Date.now());
    return [...entries.values()];
  }

  /** Drops the user's entries that have expired or whose session is gone (ended, expired, or pushed out by maxSessions). */
  #pruneUser(userId: string, entries: Map<string, UserSessionEntry>, now: number): void {
    for (const [id, entry] of entries) {
      const record = this.#records.get(id);
      if (entry.expiresAt <= now || !record || record.times.expiresAt <= now) entries.delete(id);
    }
    if (entries.size === 0) this.#users.delete(userId);
  }

  /** The record if it is live, moved to the most recently used end; an expired one is dropped. */
  #live(id: string): MemoryRecord | undefined {
    const record = this.#records.get(id);
    if (!record) return undefined;
    this.#records.delete(id);
    if (record.times.expiresAt <= Date.now()) return undefined;
    this.#records.set(id, record);
    return record;
  }

  #startSweeping(): void {
    if (this.#timer || this.#sweepMs === 0) return;
    this.#timer = setInterval(() => this.sweep(), this.#sweepMs);
    this.#timer.unref();
  }
}
