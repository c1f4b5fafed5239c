import { Logger } from '@nestjs/common';
import type { SessionData, SessionPatch } from '../session.js';
import { SessionsConfigError, SessionStoreUnavailableError, SessionTooLargeError } from '../sessions.errors.js';
import { parseFields, serializeFields } from './fields.js';
import { ServerSessionStore, type ServerSessionStoreOptions, type StoredSession } from './server-store.js';
import type { SessionTimes } from './session-store.js';
import { laterTimes } from '../session-times.js';

/**
 * The client the store takes: memcache-client's `MemcacheClient` (promises, the text protocol's `gets`
 * and `cas`; a refusal rejects with the protocol's word).
 */
export interface MemcacheClientLike {
  gets(key: string): Promise<{ value: unknown; casUniq: string | number } | undefined>;
  cas(key: string, value: string, options: { casUniq: string | number; lifetime: number }): Promise<unknown>;
  add(key: string, value: string, options: { lifetime: number }): Promise<unknown>;
  delete(key: string): Promise<unknown>;
  cmd(...args: never[]): unknown;
  shutdown(): void;
}

/** What the store needs of either client, whichever it is. */
interface MemcachedOps {
  /** The item's text and CAS token, or undefined when there is none. */
  gets(key: string): Promise<{ text: string; cas: string } | undefined>;
  /** Writes only if the item still has this CAS token; false when it changed or is gone. */
  cas(key: string, text: string, cas: string, exptime: number): Promise<boolean>;
  /** Creates the item; false when the key is taken. */
  add(key: string, text: string, exptime: number): Promise<boolean>;
  /** Deletes the item; whether there was one. */
  delete(key: string): Promise<boolean>;
}

export interface MemcachedSessionStoreOptions extends ServerSessionStoreOptions {
  /** Prefix of every session's key. Default `sess:`. At most 207 bytes: with the ID, a key stays within Memcached's 250. */
  prefix?: string;
  /**
   * The server's item size limit in bytes (memcached's `-I`), key and item overhead included. Default
   * 1,048,576 (1 MiB, memcached's default). A session that would not fit is refused before anything is
   * written, with `SessionTooLargeError`.
   */
  maxItemSize?: number;
  /** How many times a save is tried again when another request changed the session in between; past it, a 503. Default 10. */
  casRetries?: number;
}

/** Memcached's longest key. */
const MAX_KEY_BYTES = 250;
const ID_LENGTH = 43;
/** What an item costs besides its key and value (memcached's item header, CAS, suffix): a safe upper bound. */
const ITEM_OVERHEAD = 96;
/** An expiry further ahead than this many seconds is an absolute Unix time to Memcached. */
const RELATIVE_LIMIT_S = 30 * 24 * 3600;
/** Bounds what the store remembers of the records it has read (see #seen). */
const SEEN_ENTRIES = 10_000;
const SEEN_UNITS = 8 * 1024 * 1024;

/** A stored record: the times, and one JSON text per top-level key (what lets a save change one key). */
interface MemcachedRecord {
  t: [number, number, number];
  d: Record<string, string>;
}

interface Read {
  cas: string;
  record: MemcachedRecord;
}

/** Memcached's exptime for an absolute expiry: seconds from now up to 30 days, an absolute Unix time past that. */
export function memcachedExpiry(expiresAt: number, now: number): number {
  const seconds = Math.max(1, Math.ceil((expiresAt - now) / 1000));
  return seconds <= RELATIVE_LIMIT_S ? seconds : Math.ceil(expiresAt / 1000);
}

/**
 * Sessions in Memcached, through your own memcache-client (`new MemcacheClient(...)`). memjs and the
 * `memcached` package are refused, saying why (no compare-and-set; failures that look like misses).
 *
 * One item per session (`<prefix><id>`): the times and one JSON text per top-level key, expiring with
 * the session by Memcached's own clock. Memcached has no scripts, so a save is a compare-and-set
 * (`gets`, then `cas`): the item as it was read, changed by what this request changed, written only if
 * nobody wrote it in between. When somebody did, the item is read again and the change applied again,
 * up to `casRetries` times; a session deleted meanwhile (a logout) is never written back. So two
 * overlapping requests that change different keys both keep their changes. Loading is one `gets`; a
 * change is one `cas` more, with the CAS token of the load.
 */
export class MemcachedSessionStore extends ServerSessionStore {
  readonly #ops: MemcachedOps;
  readonly #prefix: string;
  readonly #maxItemSize: number;
  readonly #casRetries: number;
  readonly #logger = new Logger('MemcachedSessionStore');
  /**
   * The records this process read last, with their CAS tokens, by ID: the save that follows a load
   * (the usual case) writes with the load's token instead of reading the item again. A stale entry
   * costs nothing but a refused write and a fresh read: the CAS token decides.
   */
  readonly #seen = new Map<string, Read & { units: number }>();
  #seenUnits = 0;

  constructor(client: MemcacheClientLike, options: MemcachedSessionStoreOptions = {}) {
    super(options);
    const { prefix = 'sess:', maxItemSize = 1024 * 1024, casRetries = 10 } = options;
    this.#ops = opsOf(client);
    if (typeof prefix !== 'string' || !/^[!-~]*$/.test(prefix)) {
      throw new SessionsConfigError(`MemcachedSessionStore: prefix must be printable ASCII without spaces; got ${JSON.stringify(prefix)}`);
    }
    if (prefix.length + ID_LENGTH > MAX_KEY_BYTES) {
      throw new SessionsConfigError(
        `MemcachedSessionStore: prefix is ${prefix.length} bytes; with the ${ID_LENGTH}-byte ID a key must stay within Memcached's ${MAX_KEY_BYTES}, so at most ${MAX_KEY_BYTES - ID_LENGTH}`,
      );
    }
    if (!Number.isInteger(maxItemSize) || maxItemSize < 1024) {
      throw new SessionsConfigError(
        `MemcachedSessionStore: maxItemSize must be a whole number of bytes, at least 1024; got ${String(maxItemSize)}`,
      );
    }
    if (!Number.isInteger(casRetries) || casRetries < 0) {
      throw new SessionsConfigError(`MemcachedSessionStore: casRetries must be a whole number, 0 or more; got ${String(casRetries)}`);
    }
    this.#prefix = prefix;
    this.#maxItemSize = maxItemSize;
    this.#casRetries = casRetries;
  }

  /** The item key of a session ID. */
  key(id: string): string {
    return `${this.#prefix}${id}`;
  }

  protected async read(id: string): Promise<StoredSession | undefined> {
    const got = await this.#get(id);
    if (!got) return undefined;
    this.#remember(id, got);
    try {
      return { data: parseFields(Object.entries(got.record.d)), times: timesOf(got.record) };
    } catch (err) {
      this.#forget(id);
      return this.#corrupt(id, (err as Error).message);
    }
  }

  protected async insert(id: string, data: SessionData, times: SessionTimes): Promise<boolean> {
    const record: MemcachedRecord = { t: [times.createdAt, times.refreshedAt, times.expiresAt], d: fieldsObject(serializeFields(data)) };
    return this.#ops.add(this.key(id), this.#text(id, record), memcachedExpiry(times.expiresAt, Date.now()));
  }

  protected patch(id: string, patch: SessionPatch, times: SessionTimes, signal: AbortSignal): Promise<boolean> {
    const changes = serializeFields(patch.set); // before anything is read: a value that cannot be stored fails the save whole
    return this.#change(id, signal, (record) => {
      const d = patch.replace ? {} : fieldsObject(Object.entries(record.d));
      for (const key of patch.unset) delete d[key];
      for (const [key, json] of changes) defineField(d, key, json);
      return { t: timesToWrite(record.t, times), d };
    });
  }

  protected refresh(id: string, times: SessionTimes, signal: AbortSignal): Promise<boolean> {
    // Already refreshed as far (by an overlapping request): nothing to write, and no race to lose.
    // Otherwise these times are the later ones.
    return this.#change(id, signal, (record) =>
      record.t[1] >= times.refreshedAt ? undefined : { t: [times.createdAt, times.refreshedAt, times.expiresAt], d: record.d },
    );
  }

  protected async remove(id: string): Promise<boolean> {
    this.#forget(id);
    return this.#ops.delete(this.key(id));
  }

  /**
   * Compare-and-set: `change` applied to the record as last read, written only if the item is still
   * that one; read again and retried when another write came first. False when the session is gone;
   * true, writing nothing, when `change` says there is nothing to write. Stops once the call's
   * timeout has passed: a change the client was told failed is not written later.
   */
  async #change(id: string, signal: AbortSignal, change: (record: MemcachedRecord) => MemcachedRecord | undefined): Promise<boolean> {
    // The load's CAS token, if this process read the item last; it is spent by this write either way.
    let current = this.#take(id);
    // What this process read may have expired since, while the item was refreshed elsewhere: read it
    // again, rather than take the session for gone.
    if (!current || timesOf(current.record).expiresAt <= Date.now()) current = await this.#get(id);
    for (let attempt = 0; ; attempt++) {
      if (!current || timesOf(current.record).expiresAt <= Date.now()) return false;
      const next = change(current.record);
      if (!next) return true;
      const text = this.#text(id, next);
      abandoned(signal);
      if (await this.#ops.cas(this.key(id), text, current.cas, memcachedExpiry(next.t[2], Date.now()))) return true;
      // Refused: another write came first, or the item is gone; reading it again tells which.
      if (attempt >= this.#casRetries) {
        throw new SessionStoreUnavailableError(
          `MemcachedSessionStore: the session was changed by other requests ${attempt + 1} times while this one saved (casRetries ${this.#casRetries})`,
        );
      }
      abandoned(signal);
      current = await this.#get(id);
    }
  }

  /** The item as a record with its CAS token; undefined when there is none or it is not a session record. */
  async #get(id: string): Promise<Read | undefined> {
    const got = await this.#ops.gets(this.key(id));
    if (!got) return undefined;
    const record = parseRecord(got.text);
    if (!record) return this.#corrupt(id, 'not a session record');
    return { cas: got.cas, record };
  }

  #text(id: string, record: MemcachedRecord): string {
    const text = JSON.stringify(record);
    const size = Buffer.byteLength(text) + Buffer.byteLength(this.key(id)) + ITEM_OVERHEAD;
    if (size > this.#maxItemSize) {
      throw new SessionTooLargeError(size, this.#maxItemSize, "Memcached's item size limit (maxItemSize; memcached -I)");
    }
    return text;
  }

  #remember(id: string, read: Read): void {
    this.#forget(id);
    const units = Object.entries(read.record.d).reduce((n, [k, v]) => n + k.length + v.length, 0);
    if (units > SEEN_UNITS / 64) return;
    this.#seen.set(id, { ...read, units });
    this.#seenUnits += units;
    for (const [oldId, old] of this.#seen) {
      if (this.#seen.size <= SEEN_ENTRIES && this.#seenUnits <= SEEN_UNITS) break;
      this.#seen.delete(oldId);
      this.#seenUnits -= old.units;
    }
  }

  #take(id: string): Read | undefined {
    const seen = this.#seen.get(id);
    this.#forget(id);
    return seen;
  }

  #forget(id: string): void {
    const seen = this.#seen.get(id);
    if (!seen) return;
    this.#seen.delete(id);
    this.#seenUnits -= seen.units;
  }

  #corrupt(id: string, why: string): undefined {
    // Only the start of the ID: enough to find the record, not enough to matter if logs leak.
    this.#logger.warn(`Ignoring an unreadable session (${this.#prefix}${id.slice(0, 8)}...): ${why}`);
    return undefined;
  }
}

const SUPPORTED = 'memcache-client (new MemcacheClient({ server: "host:11211" }))';

/** The client's operations; a client that cannot compare-and-set, or whose failures look like misses, is refused. */
function opsOf(client: unknown): MemcachedOps {
  const c = client as Record<string, unknown> | null;
  const has = (...names: string[]) => typeof c === 'object' && c !== null && names.every((n) => typeof c[n] === 'function');
  if (has('gets', 'cas', 'add', 'delete', 'cmd', 'shutdown')) {
    const servers = (c?.['options'] as { server?: { servers?: unknown[] } } | undefined)?.server?.servers;
    if (Array.isArray(servers) && servers.length > 1) {
      // memcache-client treats several servers as redundant copies and picks one per command: a session
      // added on one would be looked for on another.
      throw new SessionsConfigError(
        `MemcachedSessionStore: the client has ${servers.length} servers. memcache-client sends each command to any one of them ` +
          `(they are meant as redundant copies, not shards), so a session written to one would be missing on the next. ` +
          `Give it one server (or one address in front of several, such as mcrouter).`,
      );
    }
    return memcacheClientOps(client as MemcacheClientLike);
  }
  if (has('gets', 'cas', 'add', 'del', 'end')) {
    throw new SessionsConfigError(
      `MemcachedSessionStore: this looks like a client of the "memcached" package. It is not supported: against a server that ` +
        `stops answering, its calls neither fail nor recover, and a read can come back empty as if the session did not exist ` +
        `(a logout that is not one). Use ${SUPPORTED}.`,
    );
  }
  if (has('get', 'set', 'add', 'delete') && Array.isArray(c?.['servers'])) {
    throw new SessionsConfigError(
      `MemcachedSessionStore: this looks like a memjs client. memjs's releases cannot compare-and-set (its get returns no CAS token), ` +
        `so two overlapping requests would lose each other's changes; the store refuses it. Use ${SUPPORTED}.`,
    );
  }
  throw new SessionsConfigError(`MemcachedSessionStore takes a Memcached client that can compare-and-set: ${SUPPORTED}`);
}

function memcacheClientOps(client: MemcacheClientLike): MemcachedOps {
  // Refusals reject with the protocol's word as the message: NOT_STORED, EXISTS, NOT_FOUND.
  const refused = (err: unknown, ...words: string[]) => err instanceof Error && words.includes(err.message);
  return {
    async gets(key) {
      const got = await client.gets(key);
      if (!got || got.value === undefined || got.value === null) return undefined;
      return { text: textOf(got.value), cas: String(got.casUniq) };
    },
    async cas(key, text, cas, exptime) {
      try {
        await client.cas(key, text, { casUniq: cas, lifetime: exptime });
        return true;
      } catch (err) {
        if (refused(err, 'EXISTS', 'NOT_FOUND')) return false;
        throw err;
      }
    },
    async add(key, text, exptime) {
      try {
        await client.add(key, text, { lifetime: exptime });
        return true;
      } catch (err) {
        if (refused(err, 'NOT_STORED')) return false;
        throw err;
      }
    },
    async delete(key) {
      try {
        await client.delete(key);
        return true;
      } catch (err) {
        if (refused(err, 'NOT_FOUND')) return false;
        throw err;
      }
    },
  };
}

function textOf(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  // A client that decoded the JSON itself (a flag it set): back to the text the store wrote.
  return JSON.stringify(value);
}

/** Fields as an object; a key such as "__proto__" stays an ordinary key. */
function fieldsObject(fields: Iterable<[string, string]>): Record<string, string> {
  const d: Record<string, string> = {};
  for (const [key, json] of fields) defineField(d, key, json);
  return d;
}

function defineField(d: Record<string, string>, key: string, json: string): void {
  Object.defineProperty(d, key, { value: json, enumerable: true, writable: true, configurable: true });
}

/** The call's timeout passed (the client has its 503): no further command is sent for it. */
function abandoned(signal: AbortSignal): void {
  if (signal.aborted) throw new SessionStoreUnavailableError('MemcachedSessionStore: gave up the save at its timeout');
}

/** The record's times as a save writes them: never earlier than the stored ones (see laterTimes). */
function timesToWrite(stored: MemcachedRecord['t'], times: SessionTimes): MemcachedRecord['t'] {
  const t = laterTimes({ createdAt: stored[0], refreshedAt: stored[1], expiresAt: stored[2] }, times);
  return [t.createdAt, t.refreshedAt, t.expiresAt];
}

function timesOf(record: MemcachedRecord): SessionTimes {
  return { createdAt: record.t[0], refreshedAt: record.t[1], expiresAt: record.t[2] };
}

function parseRecord(text: string): MemcachedRecord | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = parsed as Partial<MemcachedRecord> | null;
  if (typeof r !== 'object' || r === null || !Array.isArray(r.t) || r.t.length !== 3) return undefined;
  if (!r.t.every((n) => typeof n === 'number' && Number.isFinite(n))) return undefined;
  if (typeof r.d !== 'object' || r.d === null || Array.isArray(r.d)) return undefined;
  if (!Object.values(r.d).every((v) => typeof v === 'string')) return undefined;
  return r as MemcachedRecord;
}
