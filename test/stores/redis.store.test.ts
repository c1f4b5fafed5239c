import { Redis as IoRedis } from 'ioredis';
import * as ioredis6 from 'ioredis6';
import { createClient } from 'redis';
import * as redis6 from 'redis6';
import { Logger } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import { RedisSessionStore, SessionsConfigError, type SessionStoreContext } from '../../src/index.js';
import { TcpProxy } from '../fixtures/tcp-proxy.js';
import { counted, inspect, type Sent } from './redis-helpers.js';
import { describeServerStore, describeStoreFaults, eventually, type MakeStore } from './server-store-suite.js';
import { deleteRunKeys, REDIS_PORT, requireServer, runId } from './services.js';

const up = await requireServer('Redis', REDIS_PORT);

let stores = 0;

type NodeRedis = { createClient: typeof createClient };
type IoRedisModule = { Redis: typeof IoRedis };

function nodeRedis(lib: NodeRedis, label: string): MakeStore {
  return async ({ timeout, port = REDIS_PORT, maxPending } = {}) => {
    const raw = lib.createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: () => 100 } });
    raw.on('error', () => undefined);
    await raw.connect();
    const sent: Sent = [];
    const prefix = `test:${runId}:${label}${stores++}:`;
    const store = new RedisSessionStore(counted(raw, 'sendCommand', sent), { prefix, timeout, maxPending });
    return inspect(store, prefix, sent, {
      exists: async (key) => (await raw.exists(key)) === 1,
      pttl: (key) => raw.pTTL(key),
      hset: async (key, field, value) => void (await raw.hSet(key, field, value)),
      close: async () => void (await raw.quit().catch(() => raw.destroy())),
    });
  };
}

function ioRedis(lib: IoRedisModule, label: string): MakeStore {
  return async ({ timeout, port = REDIS_PORT, maxPending } = {}) => {
    const raw = new lib.Redis({ host: '127.0.0.1', port, retryStrategy: () => 100, maxRetriesPerRequest: 1 });
    raw.on('error', () => undefined);
    await new Promise((resolve) => raw.once('ready', resolve));
    const sent: Sent = [];
    const prefix = `test:${runId}:${label}${stores++}:`;
    const store = new RedisSessionStore(counted(raw, 'call', sent), { prefix, timeout, maxPending });
    return inspect(store, prefix, sent, {
      exists: async (key) => (await raw.exists(key)) === 1,
      pttl: (key) => raw.pttl(key),
      hset: async (key, field, value) => void (await raw.hset(key, field, value)),
      close: async () => void (await raw.quit().catch(() => raw.disconnect())),
    });
  };
}

// Both majors of both clients: the store declares redis ^5 || ^6 and ioredis ^5 || ^6.
const clients: Record<string, MakeStore> = {
  'node-redis 5': nodeRedis({ createClient }, 'nr5-'),
  'node-redis 6': nodeRedis(redis6 as unknown as NodeRedis, 'nr6-'),
  'ioredis 5': ioRedis({ Redis: IoRedis }, 'io5-'),
  'ioredis 6': ioRedis(ioredis6 as unknown as IoRedisModule, 'io6-'),
};

/** A node-redis 5 store, a plain client beside it to look at or spoil what the store wrote, and a context. */
async function withRaw(
  test: (tools: {
    backend: Awaited<ReturnType<MakeStore>>;
    raw: ReturnType<typeof createClient>;
    context: SessionStoreContext;
  }) => Promise<void>,
): Promise<void> {
  const backend = await clients['node-redis 5']!();
  const raw = createClient({ socket: { port: REDIS_PORT } });
  await raw.connect();
  try {
    await test({ backend, raw, context: { keyring: new Keyring(['k'.repeat(32)]), tokenName: 'session', logger: new Logger('t') } });
  } finally {
    await raw.quit();
    await backend.close();
  }
}

describe.skipIf(!up)('RedisSessionStore', () => {
  // Sessions live up to a day: what the tests wrote is deleted, not left to expire.
  afterAll(async () => {
    await deleteRunKeys();
  });

  for (const [name, make] of Object.entries(clients)) {
    describeServerStore(`RedisSessionStore with ${name}`, make);

    const proxy = new TcpProxy(REDIS_PORT);
    describe(`${name} behind a proxy`, () => {
      beforeAll(() => proxy.up());
      afterAll(() => proxy.down());
      describeStoreFaults(`RedisSessionStore with ${name}`, make, () => proxy);
    });
  }

  it('keeps each top-level key in its own hash field, next to the metadata', async () => {
    await withRaw(async ({ backend, raw, context }) => {
      const now = Date.now();
      const { id } = await backend.store.create(
        { a: 1, b: { c: 'x' } },
        { createdAt: now, refreshedAt: now, expiresAt: now + 60_000 },
        context,
      );
      const key = (backend.store as RedisSessionStore).key(id);
      const hash = await raw.hGetAll(key);
      expect(Object.keys(hash).sort()).toEqual(['.a', '.b', '@']);
      expect(hash['.b']).toBe('{"c":"x"}');
      expect(hash['@']).toBe(`${now}:${now}:${now + 60_000}`);
    });
  });

  it("a session of thousands of keys is created, changed and trimmed in one script each (chunked past Lua's stack)", async () => {
    await withRaw(async ({ backend, raw, context }) => {
      const now = Date.now();
      const times = { createdAt: now, refreshedAt: now, expiresAt: now + 60_000 };
      const data = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, i]));
      const created = await backend.store.create(data, times, context);
      const key = (backend.store as RedisSessionStore).key(created.id);
      expect(await raw.hLen(key)).toBe(5001);
      const loaded = (await backend.store.load(created.token, context))!;
      const unset = Array.from({ length: 4500 }, (_, i) => `k${i}`);
      const set = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`n${i}`, `v${i}`]));
      const later = { ...times, refreshedAt: now + 1000, expiresAt: now + 61_000 };
      expect(await backend.store.update(loaded, { set, unset, replace: false }, {}, later, context)).toBeDefined();
      const after = (await backend.store.load(created.token, context))!;
      expect(Object.keys(after.data)).toHaveLength(500 + 3000);
      expect(after.data['k4999']).toBe(4999);
      expect(after.data['k0']).toBeUndefined();
      expect(after.data['n2999']).toBe('v2999');
      expect(after.times).toEqual(later);
      expect(await raw.pExpireTime(key)).toBe(now + 61_000);
    });
  });

  // Times of a live session, spelled wrongly: each must make the record unreadable, not half-read.
  it.each<[string, (now: number, exp: number) => string]>([
    ['empty', () => ''],
    ['two parts', (now) => `${now}:${now}`],
    ['four parts', (now, exp) => `${now}:${now}:${exp}:1`],
    ['an empty first part', (now, exp) => `:${now}:${exp}`],
    ['an empty middle part', (now, exp) => `${now}::${exp}`],
    ['a word', (now, exp) => `x:${now}:${exp}`],
    ['an infinite expiry', (now) => `${now}:${now}:Infinity`],
  ])('metadata with %s is unreadable: the session is treated as missing', async (_what, spell) => {
    await withRaw(async ({ backend, raw, context }) => {
      const now = Date.now();
      const exp = now + 60_000;
      const created = await backend.store.create({ a: 1 }, { createdAt: now, refreshedAt: now, expiresAt: exp }, context);
      expect(await backend.store.load(created.token, context)).toMatchObject({ data: { a: 1 } });
      await raw.hSet((backend.store as RedisSessionStore).key(created.id), '@', spell(now, exp));
      expect(await backend.store.load(created.token, context)).toBeUndefined();
    });
  });

  it('a store whose script cache was emptied (restart, failover) loads the script again', async () => {
    await withRaw(async ({ backend, raw, context }) => {
      const now = Date.now();
      const times = { createdAt: now, refreshedAt: now, expiresAt: now + 60_000 };
      const { token } = await backend.store.create({ a: 1 }, times, context);
      await raw.scriptFlush();
      const loaded = (await backend.store.load(token, context))!;
      expect(await backend.store.update(loaded, { set: { b: 2 }, unset: [], replace: false }, {}, times, context)).toBeDefined();
      expect((await backend.store.load(token, context))!.data).toEqual({ a: 1, b: 2 });
    });
  });

  it.each([
    [
      'node-redis',
      async () => {
        const client = createClient({ socket: { port: REDIS_PORT, reconnectStrategy: () => 50 } });
        await client.connect();
        return { client, id: await client.clientId(), close: () => client.destroy() };
      },
    ],
    [
      'ioredis',
      async () => {
        const client = new IoRedis({ port: REDIS_PORT, retryStrategy: () => 50 });
        await new Promise((resolve) => client.once('ready', resolve));
        return { client, id: Number(await client.client('ID')), close: () => client.disconnect() };
      },
    ],
  ])('a dropped %s connection does not crash the process when the client has no error listener', async (_name, connect) => {
    const { client, id, close } = await connect();
    const killer = createClient({ socket: { port: REDIS_PORT } });
    await killer.connect();
    try {
      expect((client as unknown as { listenerCount(e: string): number }).listenerCount('error')).toBe(0);
      const store = new RedisSessionStore(client, { prefix: `test:${runId}:drop:` });
      expect((client as unknown as { listenerCount(e: string): number }).listenerCount('error')).toBe(1);
      // The client reports the dropped connection ('error', which only the store listens to), then
      // reconnects: by then an unhandled 'error' would have failed the run.
      const reconnecting = new Promise((r) =>
        (client as unknown as { once(e: string, l: (...args: unknown[]) => void): void }).once('reconnecting', r),
      );
      await killer.sendCommand(['CLIENT', 'KILL', 'ID', String(id)]);
      await reconnecting;
      const context = { keyring: new Keyring(['k'.repeat(32)]), tokenName: 'session', logger: new Logger('t') };
      const now = Date.now();
      await eventually(async () => {
        const { token } = await store.create({ back: true }, { createdAt: now, refreshedAt: now, expiresAt: now + 60_000 }, context);
        expect((await store.load(token, context))?.data).toEqual({ back: true });
      });
    } finally {
      await killer.quit();
      close();
    }
  });

  it('a client with its own error listener keeps it alone', () => {
    const client = new IoRedis({ lazyConnect: true });
    const mine = () => undefined;
    client.on('error', mine);
    new RedisSessionStore(client);
    expect(client.listeners('error')).toEqual([mine]);
  });

  it('refuses something that is not a Redis client, saying what it takes', () => {
    expect(() => new RedisSessionStore({})).toThrow(SessionsConfigError);
    expect(() => new RedisSessionStore(null)).toThrow(/node-redis v5 client .* or an ioredis Redis or Cluster/);
    expect(() => new RedisSessionStore(new IoRedis({ lazyConnect: true }), { timeout: -1 })).toThrow(/timeout must be/);
  });
});
