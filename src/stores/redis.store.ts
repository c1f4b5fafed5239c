import { Logger } from '@nestjs/common';
import type { SessionData, SessionPatch } from '../session.js';
import { SessionsConfigError } from '../sessions.errors.js';
import { parseFields, serializeFields } from './fields.js';
import { listenForErrors } from './client-errors.js';
import { hashEntries, redisCommands, RedisScript, type RedisCommands } from './redis-client.js';
import { ServerSessionStore, type ServerSessionStoreOptions, type StoredSession } from './server-store.js';
import type { SessionTimes } from './session-store.js';

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

  #corrupt(key: string, why: string): undefined {
    // Only the start of the ID: enough to find the record, not enough to matter if logs leak.
    this.#logger.warn(`Ignoring an unreadable session (${key.slice(0, this.#prefix.length + 8)}...): ${why}`);
    return undefined;
  }
}
