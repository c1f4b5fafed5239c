import { Redis as IoRedis } from 'ioredis';
import * as ioredis6 from 'ioredis6';
import { createClient } from 'redis';
import * as redis6 from 'redis6';
import { Logger } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import { RedisSessionStore, SessionsConfigError } from '../../src/index.js';
import { TcpProxy } from '../fixtures/tcp-proxy.js';
import { counted, inspect, type Sent } from './redis-helpers.js';
import { describeServerStore, describeStoreFaults, type MakeStore } from './server-store-suite.js';
import { REDIS_PORT, requireServer, runId } from './services.js';

const up = await requireServer('Redis', REDIS_PORT);

let stores = 0;

type NodeRedis = { createClient: typeof createClient };
type IoRedisModule = { Redis: typeof IoRedis };

function nodeRedis(lib: NodeRedis, label: string): MakeStore {
  return async ({ timeout, port = REDIS_PORT } = {}) => {
    const raw = lib.createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: () => 100 } });
    raw.on('error', () => undefined);
    await raw.connect();
    const sent: Sent = [];
    const prefix = `test:${runId}:${label}${stores++}:`;
    const store = new RedisSessionStore(counted(raw, 'sendCommand', sent), { prefix, timeout });
    return inspect(store, prefix, sent, {
      exists: async (key) => (await raw.exists(key)) === 1,
      pttl: (key) => raw.pTTL(key),
      hset: async (key, field, value) => void (await raw.hSet(key, field, value)),
      close: async () => void (await raw.quit().catch(() => raw.destroy())),
    });
  };
}

function ioRedis(lib: IoRedisModule, label: string): MakeStore {
  return async ({ timeout, port = REDIS_PORT } = {}) => {
    const raw = new lib.Redis({ host: '127.0.0.1', port, retryStrategy: () => 100, maxRetriesPerRequest: 1 });
    raw.on('error', () => undefined);
    await new Promise((resolve) => raw.once('ready', resolve));
    const sent: Sent = [];
    const prefix = `test:${runId}:${label}${stores++}:`;
    const store = new RedisSessionStore(counted(raw, 'call', sent), { prefix, timeout });
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

describe.skipIf(!up)('RedisSessionStore', () => {
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
    const backend = await clients['node-redis 5']!();
    const raw = createClient({ socket: { port: REDIS_PORT } });
    await raw.connect();
    try {
      const context = { keyring: new Keyring(['k'.repeat(32)]), tokenName: 'session', logger: new Logger('t') };
      const now = Date.now();
      const { id } = await backend.store.create({ a: 1, b: { c: 'x' } }, { createdAt: now, refreshedAt: now, expiresAt: now + 60_000 }, context);
      const key = (backend.store as RedisSessionStore).key(id);
      const hash = await raw.hGetAll(key);
      expect(Object.keys(hash).sort()).toEqual(['.a', '.b', '@']);
      expect(hash['.b']).toBe('{"c":"x"}');
      expect(hash['@']).toBe(`${now}:${now}:${now + 60_000}`);
    } finally {
      await raw.quit();
      await backend.close();
    }
  });

  it('refuses something that is not a Redis client, saying what it takes', () => {
    expect(() => new RedisSessionStore({})).toThrow(SessionsConfigError);
    expect(() => new RedisSessionStore(null)).toThrow(/node-redis v5 client .* or an ioredis Redis or Cluster/);
    expect(() => new RedisSessionStore(new IoRedis({ lazyConnect: true }), { timeout: -1 })).toThrow(/timeout must be/);
  });
});
