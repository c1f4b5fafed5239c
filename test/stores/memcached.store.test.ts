import { Logger } from '@nestjs/common';
import Memcached from 'memcached';
import MC from 'memcache-client';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import {
  MemcachedSessionStore,
  SessionsConfigError,
  SessionStoreUnavailableError,
  SessionTooLargeError,
  type SessionStoreContext,
} from '../../src/index.js';
import { memcachedExpiry } from '../../src/stores/memcached.store.js';
import { Latch } from '../fixtures/app.js';
import { TcpProxy } from '../fixtures/tcp-proxy.js';

const { MemcacheClient } = MC;
type MemcacheClient = InstanceType<typeof MemcacheClient>;
import { ask, freePort, LocalMemcached, requireMemcached } from './memcached-server.js';
import { describeServerStore, describeStoreFaults, eventually, type MakeStore, type StoreUnderTest } from './server-store-suite.js';

const hasMemcached = requireMemcached();

type Sent = ('read' | 'write')[];

/** A real client whose commands are counted on the way out: `gets` reads, everything else writes. */
function counted<T extends object>(client: T, sent: Sent): T {
  return new Proxy(client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      if (!['gets', 'cas', 'add', 'delete', 'del'].includes(String(prop))) return value.bind(target);
      return (...args: unknown[]) => {
        sent.push(prop === 'gets' ? 'read' : 'write');
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/** A client set to find a server that came back within a fraction of a second. */
function newClient(port: number): MemcacheClient {
  return new MemcacheClient({ server: `127.0.0.1:${port}`, cmdTimeout: 500, connectTimeout: 500, logger: quiet });
}

/** memcache-client logs what it refuses; quiet here. */
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

let stores = 0;

function makeStoreOn(server: () => LocalMemcached): MakeStore {
  return async ({ timeout, port, maxPending } = {}) => {
    const client = newClient(port ?? server().port);
    const raw = new MemcacheClient({ server: `127.0.0.1:${server().port}`, logger: quiet });
    const sent: Sent = [];
    const prefix = `test:${process.pid}:${stores++}:`;
    const store = new MemcachedSessionStore(counted(client, sent), { prefix, timeout, maxPending });
    const under: StoreUnderTest = {
      store,
      sent: () => sent,
      exists: async (id) => (await raw.get(prefix + id)) !== undefined,
      ttl: async (id) => {
        const answer = await ask(server().port, `mg ${prefix}${id} t`);
        const seconds = /^HD t(-?\d+)/.exec(answer)?.[1];
        if (seconds === undefined) throw new Error(`memcached said ${answer}`);
        return Number(seconds) * 1000;
      },
      corrupt: async (id) => void (await raw.set(prefix + id, 'not a session', { lifetime: 600 })),
      plantDeep: async (id, levels) => {
        const got = await raw.get<string>(prefix + id);
        const record = JSON.parse(String(got!.value)) as { d: Record<string, string> };
        record.d['deep'] = '['.repeat(levels) + ']'.repeat(levels);
        await raw.set(prefix + id, JSON.stringify(record), { lifetime: 600 });
      },
      close: async () => {
        client.shutdown();
        raw.shutdown();
      },
    };
    return under;
  };
}

const context: SessionStoreContext = { keyring: new Keyring(['k'.repeat(32)]), tokenName: 'session', logger: new Logger('t') };
const hour = () => {
  const now = Date.now();
  return { createdAt: now, refreshedAt: now, expiresAt: now + 3_600_000 };
};

describe.skipIf(!hasMemcached)('MemcachedSessionStore', () => {
  const server = new LocalMemcached();
  beforeAll(() => server.start());
  afterAll(() => server.stop());

  {
    const kind = 'memcache-client';
    const make = makeStoreOn(() => server);
    describeServerStore(`MemcachedSessionStore with ${kind}`, make);

    let proxy: TcpProxy;
    describe(`${kind} behind a proxy`, () => {
      beforeAll(async () => {
        proxy = new TcpProxy(server.port);
        await proxy.up();
      });
      afterAll(() => proxy.down());
      describeStoreFaults(`MemcachedSessionStore with ${kind}`, make, () => proxy);
    });

    describe(`with ${kind}`, () => {
      it('a server that stops and comes back: 503s meanwhile, then the same store works again without a restart', async () => {
        const own = new LocalMemcached();
        await own.start();
        const backend = await makeStoreOn(() => own)({ timeout: 300 });
        try {
          const created = await backend.store.create({ a: 1 }, hour(), context);
          await own.stop();
          await expect(backend.store.load(created.token, context)).rejects.toThrow(SessionStoreUnavailableError);
          await own.start();
          // A restarted memcached has lost its items: the session is gone, and a new one can be made.
          await eventually(async () => expect(await backend.store.load(created.token, context)).toBeUndefined());
          const again = await backend.store.create({ b: 2 }, hour(), context);
          expect((await backend.store.load(again.token, context))?.data).toEqual({ b: 2 });
        } finally {
          await backend.close();
          await own.stop();
        }
      });

      it('a dead port: a 503 error, not a hang', async () => {
        const backend = await make({ timeout: 300, port: await freePort() });
        try {
          await expect(backend.store.create({ a: 1 }, hour(), context)).rejects.toThrow(SessionStoreUnavailableError);
        } finally {
          await backend.close();
        }
      });

      it('a session that lives 40 days is kept by memcached for 40 days (the absolute form of the expiry)', async () => {
        const backend = await make();
        try {
          const now = Date.now();
          const times = { createdAt: now, refreshedAt: now, expiresAt: now + 40 * 86_400_000 };
          const created = await backend.store.create({ a: 1 }, times, context);
          const ttl = await backend.ttl(created.id);
          expect(ttl).toBeGreaterThan(39.9 * 86_400_000);
          // Whole seconds, rounded up, by a server clock that ticks once a second.
          expect(ttl).toBeLessThanOrEqual(40 * 86_400_000 + 2000);
          expect((await backend.store.load(created.token, context))?.data).toEqual({ a: 1 });
          await backend.store.destroy({ id: created.id, data: {}, times });
        } finally {
          await backend.close();
        }
      });

      it('a session over the item size is refused with SessionTooLargeError before anything is written', async () => {
        const backend = await make();
        try {
          const big = { blob: 'x'.repeat(1024 * 1024) };
          await expect(backend.store.create(big, hour(), context)).rejects.toThrow(SessionTooLargeError);
          expect(backend.sent()).toEqual([]);
          const created = await backend.store.create({ a: 1 }, hour(), context);
          const loaded = (await backend.store.load(created.token, context))!;
          const before = backend.sent().length;
          await expect(backend.store.update(loaded, { set: big, unset: [], replace: false }, {}, hour(), context)).rejects.toThrow(
            SessionTooLargeError,
          );
          expect(backend.sent().slice(before)).toEqual([]);
          expect((await backend.store.load(created.token, context))?.data).toEqual({ a: 1 });
          // Just under the limit fits, and memcached takes it.
          const loadedAgain = (await backend.store.load(created.token, context))!;
          const fits = { blob: 'x'.repeat(1024 * 1024 - 400) };
          expect(await backend.store.update(loadedAgain, { set: fits, unset: [], replace: false }, {}, hour(), context)).toBeDefined();
          expect(((await backend.store.load(created.token, context))?.data['blob'] as string).length).toBe(1024 * 1024 - 400);
        } finally {
          await backend.close();
        }
      });

      it('a lost compare-and-set race is applied again on the newer item: both changes stay', async () => {
        const backend = await make();
        try {
          const created = await backend.store.create({ a: 0, b: 0 }, hour(), context);
          const first = (await backend.store.load(created.token, context))!;
          const second = (await backend.store.load(created.token, context))!;
          // Both loaded the same item; the first save wins, the second is refused, reads it again, wins.
          await backend.store.update(first, { set: { a: 1 }, unset: [], replace: false }, {}, hour(), context);
          const before = backend.sent().length;
          await backend.store.update(second, { set: { b: 2 }, unset: [], replace: false }, {}, hour(), context);
          expect(backend.sent().slice(before)).toEqual(['read', 'write']);
          expect((await backend.store.load(created.token, context))?.data).toEqual({ a: 1, b: 2 });
        } finally {
          await backend.close();
        }
      });

      it('a save refused because the session was deleted meanwhile writes nothing back', async () => {
        const backend = await make();
        try {
          const created = await backend.store.create({ a: 0 }, hour(), context);
          const loaded = (await backend.store.load(created.token, context))!;
          // A logout through another process: the item goes; this store still holds the load's CAS token.
          const raw = newClient(server.port);
          try {
            await raw.delete((backend.store as MemcachedSessionStore).key(created.id));
          } finally {
            raw.shutdown();
          }
          expect(await backend.store.update(loaded, { set: { a: 1 }, unset: [], replace: false }, {}, hour(), context)).toBeUndefined();
          expect(await backend.exists(created.id)).toBe(false);
        } finally {
          await backend.close();
        }
      });
    });
  }

  it('gives up after casRetries lost races with a 503-kind error, writing nothing', async () => {
    const client = new MemcacheClient({ server: `127.0.0.1:${server.port}`, logger: quiet });
    const raw = new MemcacheClient({ server: `127.0.0.1:${server.port}`, logger: quiet });
    // Another writer changes the item after every read of this store.
    const racing = new Proxy(client, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        if (prop !== 'gets') return value.bind(target);
        return async (key: string) => {
          const got = (await (value as (k: string) => Promise<{ value: unknown } | undefined>).call(target, key)) ?? undefined;
          if (got) await raw.set(key, String(got.value), { lifetime: 600 });
          return got;
        };
      },
    });
    const store = new MemcachedSessionStore(racing, { prefix: `test:${process.pid}:race:`, casRetries: 2 });
    try {
      const created = await store.create({ a: 0 }, hour(), context);
      const loaded = (await store.load(created.token, context))!;
      await expect(store.update(loaded, { set: { a: 1 }, unset: [], replace: false }, {}, hour(), context)).rejects.toThrow(
        /changed by other requests 3 times/,
      );
      expect((await store.load(created.token, context))?.data).toEqual({ a: 0 });
    } finally {
      client.shutdown();
      raw.shutdown();
    }
  });

  describe('overlapping saves from two processes (two stores, one prefix)', () => {
    afterEach(() => vi.useRealTimers());
    const pair = () => {
      const prefix = `test:${process.pid}:pair${stores++}:`;
      const clients = [newClient(server.port), newClient(server.port)];
      const [a, b] = clients.map((c) => new MemcachedSessionStore(c, { prefix }));
      return { a: a!, b: b!, close: () => clients.forEach((c) => c.shutdown()) };
    };

    it('a session this process read before it expired, refreshed since by another, is saved, not taken for gone', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const { a, b, close } = pair();
      try {
        const now = Date.now();
        const created = await a.create({ n: 0 }, { createdAt: now, refreshedAt: now, expiresAt: now + 60_000 }, context);
        const loadedByA = (await a.load(created.token, context))!;
        const loadedByB = (await b.load(created.token, context))!;
        vi.setSystemTime(now + 30_000);
        await b.touch(loadedByB, {}, { createdAt: now, refreshedAt: now + 30_000, expiresAt: now + 90_000 }, context);
        vi.setSystemTime(now + 61_000); // past what A read, within what B wrote
        const later = { createdAt: now, refreshedAt: now + 61_000, expiresAt: now + 121_000 };
        expect(await a.update(loadedByA, { set: { n: 1 }, unset: [], replace: false }, {}, later, context)).toBeDefined();
        expect((await b.load(created.token, context))?.data).toEqual({ n: 1 });
      } finally {
        close();
      }
    });

    it('an expiry never moves back: a save with older times keeps the later ones another request wrote', async () => {
      const { a, b, close } = pair();
      try {
        const t = hour();
        const created = await a.create({ n: 0 }, t, context);
        const loadedByA = (await a.load(created.token, context))!;
        const loadedByB = (await b.load(created.token, context))!;
        const refreshed = { ...t, refreshedAt: t.refreshedAt + 5_000, expiresAt: t.expiresAt + 5_000 };
        await b.touch(loadedByB, {}, refreshed, context);
        // A decided no refresh was due: it writes its change under the times it loaded.
        expect(await a.update(loadedByA, { set: { n: 1 }, unset: [], replace: false }, {}, t, context)).toBeDefined();
        expect(await a.load(created.token, context)).toMatchObject({ data: { n: 1 }, times: refreshed });
        // A refresh to times no later than the stored ones writes nothing.
        const again = (await a.load(created.token, context))!;
        expect(await a.touch(again, {}, t, context)).toBeDefined();
        expect((await b.load(created.token, context))?.times).toEqual(refreshed);
      } finally {
        close();
      }
    });
  });

  it('a save given up at its timeout sends nothing more afterwards', async () => {
    const client = newClient(server.port);
    const raw = newClient(server.port);
    const reread = new Latch();
    let reads = 0;
    let writes = 0;
    const slow = new Proxy(client, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        const fn = (value as (...a: unknown[]) => Promise<unknown>).bind(target);
        if (prop === 'gets') return async (...args: unknown[]) => (++reads === 2 && (await reread.wait), fn(...args));
        if (prop === 'cas') return (...args: unknown[]) => (writes++, fn(...args));
        return fn;
      },
    });
    const store = new MemcachedSessionStore(slow, { prefix: `test:${process.pid}:abandon:`, timeout: 100 });
    try {
      const created = await store.create({ n: 0 }, hour(), context);
      const loaded = (await store.load(created.token, context))!; // read 1: the CAS token is kept
      await raw.set(store.key(created.id), (await raw.get<string>(store.key(created.id)))!.value, { lifetime: 600 }); // another write
      // The kept token is refused (write 1); the re-read (read 2) hangs past the timeout: a 503.
      await expect(store.update(loaded, { set: { n: 1 }, unset: [], replace: false }, {}, hour(), context)).rejects.toThrow(
        SessionStoreUnavailableError,
      );
      reread.open();
      await eventually(async () => expect(store.pending).toBe(0));
      expect(writes).toBe(1);
      expect((await store.load(created.token, context))?.data).toEqual({ n: 0 });
    } finally {
      client.shutdown();
      raw.shutdown();
    }
  });

  it('a client of several servers is refused: memcache-client sends each command to any one of them', () => {
    const client = new MemcacheClient({ server: { servers: [{ server: '127.0.0.1:1' }, { server: '127.0.0.1:2' }] }, logger: quiet });
    try {
      expect(() => new MemcachedSessionStore(client)).toThrow(/has 2 servers/);
    } finally {
      client.shutdown();
    }
  });

  it('keys are the prefix and the 43-character ID; a prefix that would pass 250 bytes is refused', () => {
    const client = new MemcacheClient({ server: '127.0.0.1:1', logger: quiet });
    try {
      const store = new MemcachedSessionStore(client, { prefix: 'app:' });
      expect(store.key('x'.repeat(43))).toBe(`app:${'x'.repeat(43)}`);
      expect(() => new MemcachedSessionStore(client, { prefix: 'p'.repeat(208) })).toThrow(/at most 207/);
      expect(new MemcachedSessionStore(client, { prefix: 'p'.repeat(207) }).key('x'.repeat(43))).toHaveLength(250);
      expect(() => new MemcachedSessionStore(client, { prefix: 'has space' })).toThrow(SessionsConfigError);
      expect(() => new MemcachedSessionStore(client, { prefix: 'new\nline' })).toThrow(SessionsConfigError);
    } finally {
      client.shutdown();
    }
  });

  it('refuses memjs (no compare-and-set) and the memcached package (failures that look like misses), saying why', () => {
    const memjsLike = { get() {}, set() {}, add() {}, delete() {}, servers: [] };
    expect(() => new MemcachedSessionStore(memjsLike as never)).toThrow(/memjs.*cannot compare-and-set/);
    const other = new Memcached('127.0.0.1:1', { retries: 0 });
    try {
      expect(() => new MemcachedSessionStore(other as never)).toThrow(/"memcached" package.*not supported/);
    } finally {
      other.end();
    }
    for (const bad of [undefined, null, {}, { get() {} }]) {
      expect(() => new MemcachedSessionStore(bad as never)).toThrow(/can compare-and-set: memcache-client/);
    }
  });

  it.each([
    ['maxItemSize', { maxItemSize: 10 }],
    ['maxItemSize', { maxItemSize: 1.5 }],
    ['casRetries', { casRetries: -1 }],
    ['timeout', { timeout: -1 }],
  ])('refuses a bad %s', (_name, options) => {
    const client = new MemcacheClient({ server: '127.0.0.1:1', logger: quiet });
    try {
      expect(() => new MemcachedSessionStore(client, options)).toThrow(SessionsConfigError);
    } finally {
      client.shutdown();
    }
  });

  it("Memcached's rule: up to 30 days an expiry is seconds from now, past that an absolute Unix time", () => {
    const now = 1_700_000_000_000;
    expect(memcachedExpiry(now + 60_000, now)).toBe(60);
    expect(memcachedExpiry(now + 1_500, now)).toBe(2);
    expect(memcachedExpiry(now - 5_000, now)).toBe(1);
    expect(memcachedExpiry(now + 30 * 86_400_000, now)).toBe(30 * 86_400);
    expect(memcachedExpiry(now + 30 * 86_400_000 + 1_000, now)).toBe(Math.ceil((now + 30 * 86_400_000 + 1_000) / 1000));
  });
});
