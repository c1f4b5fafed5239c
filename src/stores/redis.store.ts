import { Logger } from '@nestjs/common';
import type { SessionData, SessionPatch } from '../session.js';
import { SessionsConfigError } from '../sessions.errors.js';
import { parseFields, serializeFields } from './fields.js';
import { listenForErrors } from './client-errors.js';
import { hashEntries, redisCommands, RedisScript, type RedisCommands } from './redis-client.js';
import { ServerSessionStore, type ServerSessionStoreOptions, type StoredSession } from './server-store.js';
import type { SessionTimes, UserSessionEntry } from './session-store.js';

export interface RedisSessionStoreOptions extends ServerSessionStoreOptions {
  /** Prefix of every session's key. Default `sess:`. */
  prefix?: string;
}

/** The metadata field; data fields are the session's keys behind a "." so that no key can collide with it. */
const META = '@';
const DATA = '.';

// Every script touches one key, so it runs unchanged on Redis Cluster. Expired keys do not EXISTS.

/**
 * Runs a command on ARGV[from..to] with as few calls as Lua's stack allows (unpack takes a few thousand
 * values at most): each redis.call costs the script more than the fields it sets.
 */
const HSET_PAIRS = `
local function chunked(command, from, to)
  for i = from, to, 2000 do redis.call(command, KEYS[1], unpack(ARGV, i, math.min(i + 1999, to))) end
end
local function hset_from(from) chunked('HSET', from, #ARGV) end
`;

/** ARGV: expiresAt (ms), then field/value pairs, the metadata first. Insert-only: an existing key is left alone. */
const CREATE = new RedisScript(`${HSET_PAIRS}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
hset_from(2)
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
`);

/**
 * ARGV: expiresAt (ms), replace ("1" clears the data first), n, n fields to delete, then field/value
 * pairs to set, the metadata first. Applies only to a live session: a destroyed one is never brought
 * back. With only the metadata it is the touch that pushes the expiry back. Stored metadata refreshed
 * later than the given one is kept, with its expiry.
 */
const PATCH = new RedisScript(`${HSET_PAIRS}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = tonumber(ARGV[3])
-- An expiry never moves back: metadata refreshed later (by an overlapping request) stays, with its expiry.
local expiry = ARGV[1]
local stored = redis.call('HGET', KEYS[1], '${META}')
if stored then
  local before = tonumber(string.match(stored, '^[^:]*:([^:]*):'))
  local now = tonumber(string.match(ARGV[5 + n], '^[^:]*:([^:]*):'))
  if before and now and before > now then
    ARGV[5 + n] = stored
    expiry = string.match(stored, ':([^:]*)$')
  end
end
if ARGV[2] == '1' then redis.call('DEL', KEYS[1]) end
chunked('HDEL', 4, 3 + n)
hset_from(4 + n)
redis.call('PEXPIREAT', KEYS[1], expiry)
return 1
`);

// A user's sessions: a sorted set of session IDs by expiry, and a hash of each one's entry, under one
// hash tag (the user ID, base64url-encoded), so that each script names keys of one slot only.

/** Drops the entries that expired by ARGV[1] (ms) from both keys. */
const PRUNE_USER = `
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
  for i = 1, #gone, 2000 do redis.call('HDEL', KEYS[2], unpack(gone, i, math.min(i + 1999, #gone))) end
end
`;

/** ARGV: now (ms), session ID, expiresAt (ms), the entry's JSON. An expiry stored later is kept; both keys live as long as the last entry. */
const USER_ADD = new RedisScript(`${PRUNE_USER}
-- An expiry never moves back (ZADD's GT flag would say it, from Redis 6.2 only).
local stored = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not stored or tonumber(stored) < tonumber(ARGV[3]) then redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2]) end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
redis.call('PEXPIREAT', KEYS[2], last[2])
return 1
`);

/** ARGV: session ID. */
const USER_REMOVE = new RedisScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`);

/** ARGV: now (ms), "1" for every entry (nothing pruned). Returns ID, expiry, entry JSON, for each entry. */
const USER_LIST = new RedisScript(`
if ARGV[2] ~= '1' then
${PRUNE_USER}
end
local ids = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #ids, 2 do
  out[#out + 1] = ids[i]
  out[#out + 1] = ids[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], ids[i]) or ''
end
return out
`);

/** What the hash keeps of an entry beside its expiry. */
interface StoredEntry {
  c: number;
  s: number;
  a?: string;
  i?: string;
}

function meta(times: SessionTimes): string {
  return `${times.createdAt}:${times.refreshedAt}:${times.expiresAt}`;
}

function parseMeta(text: string | undefined): SessionTimes | undefined {
  if (text === undefined) return undefined;
  const first = text.indexOf(':');
  const second = text.indexOf(':', first + 1);
  if (first < 0 || second < 0 || text.indexOf(':', second + 1) >= 0) return undefined;
  // Number('') is 0: an empty part is as unreadable as a word.
  if (first === 0 || second === first + 1 || second === text.length - 1) return undefined;
  const createdAt = Number(text.slice(0, first));
  const refreshedAt = Number(text.slice(first + 1, second));
  const expiresAt = Number(text.slice(second + 1));
  if (!Number.isFinite(createdAt) || !Number.isFinite(refreshedAt) || !Number.isFinite(expiresAt)) return undefined;
  return { createdAt, refreshedAt, expiresAt };
}

/**
 * Sessions in Redis or Valkey, through your own client: node-redis v5 (`createClient`, `createCluster`)
 * or ioredis (`Redis`, `Cluster`), detected automatically.
 *
 * One hash per session (`<prefix><id>`), one field per top-level key plus a metadata field, expiring
 * with the session. Loading is one HGETALL. Saving is one script that applies only what changed, only to
 * a session that still exists, and sets the expiry: concurrent requests that change different keys both
 * keep their changes, and a request that finishes after a logout does not bring the session back.
 * Every command names one key, so it runs on Redis Cluster unchanged.
 */
export class RedisSessionStore extends ServerSessionStore {
  readonly #redis: RedisCommands;
  readonly #prefix: string;
  readonly #logger = new Logger('RedisSessionStore');

  constructor(client: unknown, options: RedisSessionStoreOptions = {}) {
    super(options);
    const { prefix = 'sess:' } = options;
    if (typeof prefix !== 'string') throw new SessionsConfigError(`RedisSessionStore: prefix must be a string; got ${typeof prefix}`);
    // A connection silent for three timeouts (at least 3 s) with commands waiting is reset (see redis-client.ts).
    this.#redis = redisCommands(client, { deadAfterMs: this.timeout === 0 ? 0 : Math.max(3 * this.timeout, 3000), logger: this.#logger });
    listenForErrors(client, 'RedisSessionStore');
    this.#prefix = prefix;
  }

  /**
   * Nest calls this once the app has stopped serving, before or after the app's own hook closes the
   * client: from then on the store never reconnects the client by itself (see redis-client.ts).
   */
  onApplicationShutdown(): void {
    this.#redis.stop?.();
  }

  /** The Redis key of a session ID. */
  key(id: string): string {
    return this.#prefix + id;
  }

  protected async read(id: string, signal: AbortSignal): Promise<StoredSession | undefined> {
    const key = this.key(id);
    // Not marked read-only: a cluster client reading from replicas could see a session a logout just deleted.
    const entries = hashEntries(await this.#redis.command(key, ['HGETALL', key], false, signal));
    if (entries.length === 0) return undefined;
    let times: SessionTimes | undefined;
    const fields: [string, string][] = [];
    for (const [field, value] of entries) {
      if (field === META) times = parseMeta(value);
      else if (field.startsWith(DATA)) fields.push([field.slice(1), value]);
    }
    if (!times) return this.#corrupt(key, 'no readable metadata');
    try {
      return { data: parseFields(fields), times };
    } catch (err) {
      return this.#corrupt(key, (err as Error).message);
    }
  }

  protected async insert(id: string, data: SessionData, times: SessionTimes, signal: AbortSignal): Promise<boolean> {
    const args = [String(times.expiresAt), META, meta(times)];
    for (const [name, json] of serializeFields(data)) args.push(DATA + name, json);
    return Number(await CREATE.run(this.#redis, this.key(id), args, signal)) === 1;
  }

  protected async patch(id: string, patch: SessionPatch, times: SessionTimes, signal: AbortSignal): Promise<boolean> {
    const changes = serializeFields(patch.set);
    const args = [String(times.expiresAt), patch.replace ? '1' : '0', String(patch.unset.length)];
    for (const name of patch.unset) args.push(DATA + name);
    args.push(META, meta(times));
    for (const [name, json] of changes) args.push(DATA + name, json);
    return Number(await PATCH.run(this.#redis, this.key(id), args, signal)) === 1;
  }

  protected async refresh(id: string, times: SessionTimes, signal: AbortSignal): Promise<boolean> {
    const args = [String(times.expiresAt), '0', '0', META, meta(times)];
    return Number(await PATCH.run(this.#redis, this.key(id), args, signal)) === 1;
  }

  protected async remove(id: string, signal: AbortSignal): Promise<boolean> {
    const key = this.key(id);
    return Number(await this.#redis.command(key, ['DEL', key], false, signal)) > 0;
  }

  /** The keys of a user's index: the sorted set and the hash, in one hash slot. */
  userKeys(userId: string): [string, string] {
    const tag = `${this.#prefix}user:{${Buffer.from(userId, 'utf8').toString('base64url')}}`;
    return [tag, `${tag}:entries`];
  }

  protected override async addUserSession(userId: string, entry: UserSessionEntry, signal: AbortSignal): Promise<void> {
    const stored: StoredEntry = { c: entry.createdAt, s: entry.lastSeenAt, a: entry.userAgent, i: entry.ip };
    const args = [String(Date.now()), entry.id, String(entry.expiresAt), JSON.stringify(stored)];
    await USER_ADD.run(this.#redis, this.userKeys(userId), args, signal);
  }

  protected override async removeUserSession(userId: string, id: string, signal: AbortSignal): Promise<void> {
    await USER_REMOVE.run(this.#redis, this.userKeys(userId), [id], signal);
  }

  protected override async listUserSessions(userId: string, signal: AbortSignal, ended: boolean): Promise<UserSessionEntry[]> {
    const reply = await USER_LIST.run(this.#redis, this.userKeys(userId), [String(Date.now()), ended ? '1' : '0'], signal);
    const flat = Array.isArray(reply) ? reply.map(String) : [];
    const entries: UserSessionEntry[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) {
      const entry = parseEntry(flat[i]!, Number(flat[i + 1]), flat[i + 2]!);
      if (entry) entries.push(entry);
    }
    if (ended) return entries;
    // Whether each session is still there: its key lives in a slot of its own, so one EXISTS each.
    const live = await Promise.all(
      entries.map(async (entry) => {
        const key = this.key(entry.id);
        return Number(await this.#redis.command(key, ['EXISTS', key], false, signal)) === 1;
      }),
    );
    const gone = entries.filter((_, i) => !live[i]);
    await Promise.all(gone.map((entry) => USER_REMOVE.run(this.#redis, this.userKeys(userId), [entry.id], signal)));
    return entries.filter((_, i) => live[i]);
  }

  #corrupt(key: string, why: string): undefined {
    // Only the start of the ID: enough to find the record, not enough to matter if logs leak.
    this.#logger.warn(`Ignoring an unreadable session (${key.slice(0, this.#prefix.length + 8)}...): ${why}`);
    return undefined;
  }
}

/**
 * An entry as the hash keeps it. One whose details do not read (its hash field lost, say) still names its
 * session, so that `destroyUserSessions()` ends it: its times read 0.
 */
function parseEntry(id: string, expiresAt: number, json: string): UserSessionEntry | undefined {
  if (!Number.isFinite(expiresAt)) return undefined;
  let stored: Partial<StoredEntry> | null = null;
  try {
    stored = JSON.parse(json) as Partial<StoredEntry> | null;
  } catch {
    // unreadable details: the ID and expiry still count
  }
  const known = typeof stored === 'object' && stored !== null;
  const createdAt = known && Number.isFinite(stored!.c) ? stored!.c! : 0;
  const lastSeenAt = known && Number.isFinite(stored!.s) ? stored!.s! : 0;
  return {
    id,
    createdAt,
    lastSeenAt,
    expiresAt,
    ...(known && typeof stored!.a === 'string' ? { userAgent: stored!.a } : {}),
    ...(known && typeof stored!.i === 'string' ? { ip: stored!.i } : {}),
  };
}
