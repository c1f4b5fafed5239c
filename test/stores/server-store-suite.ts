import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ServerSessionStore, SessionsModuleOptions } from '../../src/index.js';
import {
  appOn,
  itRefusesWhatJsonWouldChange,
  arrivals,
  Latch,
  PLATFORMS,
  latches,
  RecordingLogger,
  SECRET,
  sessionCookie,
  sessionSetCookies,
  setCookies,
} from '../fixtures/app.js';
import type { TcpProxy } from '../fixtures/tcp-proxy.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { newSessionId, signId } from '../../src/crypto/sign.js';

/** A store on a real backend, with ways to look behind it. */
export interface StoreUnderTest {
  store: ServerSessionStore;
  /** Whether the backend holds a record for the (unsigned) session ID. */
  exists(id: string): Promise<boolean>;
  /** Milliseconds the backend will keep the record, by the app's clock. */
  ttl(id: string): Promise<number>;
  /** The commands or statements the backend ran so far, each as 'read' or 'write'. */
  sent(): ('read' | 'write')[];
  /** Spoils the stored record so that it cannot be read. */
  corrupt(id: string): Promise<void>;
  /** Writes, behind the store's back, a value `levels` deep under the key "deep" (as an older version could). */
  plantDeep(id: string, levels: number): Promise<void>;
  close(): Promise<void>;
}

export type MakeStore = (options?: { timeout?: number; port?: number; maxPending?: number }) => Promise<StoreUnderTest>;

/** The behaviour every server-side store must have, over real HTTP against a real backend. */
export function describeServerStore(name: string, make: MakeStore): void {
  describe(`${name}: the store's own rules`, () => {
    it('an expiry never moves back: a save under older times keeps the later ones an overlapping request wrote', async () => {
      const backend = await make();
      const context = { keyring: new Keyring([SECRET]), tokenName: 'session', logger: new RecordingLogger() };
      try {
        const now = Date.now();
        const first = { createdAt: now, refreshedAt: now, expiresAt: now + 600_000 };
        const created = await backend.store.create({ n: 0 }, first, context);
        const a = (await backend.store.load(created.token, context))!;
        const b = (await backend.store.load(created.token, context))!;
        // B found a refresh due and wrote later times; A, overlapping, found none due.
        const refreshed = { createdAt: now, refreshedAt: now + 60_000, expiresAt: now + 660_000 };
        expect(await backend.store.touch(b, {}, refreshed, context)).toBeDefined();
        expect(await backend.store.update(a, { set: { n: 1 }, unset: [], replace: false }, {}, first, context)).toBeDefined();
        expect(await backend.store.load(created.token, context)).toMatchObject({ data: { n: 1 }, times: refreshed });
        expect(await backend.ttl(created.id)).toBeGreaterThan(640_000);
        // A refresh to earlier times, and a clearing save under them, keep the later times too.
        expect(await backend.store.touch(a, {}, first, context)).toBeDefined();
        expect(await backend.store.update(a, { set: { m: 2 }, unset: [], replace: true }, {}, first, context)).toBeDefined();
        expect(await backend.store.load(created.token, context)).toMatchObject({ data: { m: 2 }, times: refreshed });
        expect(await backend.ttl(created.id)).toBeGreaterThan(640_000);
        await backend.store.destroy(a);
      } finally {
        await backend.close();
      }
    });
  });

  describe.each(PLATFORMS)(`${name}: sessions over HTTP on %s`, (platform) => {
    const createApp = appOn(platform);
    let app: INestApplication;
    let http: ReturnType<INestApplication['getHttpServer']>;
    let backend: StoreUnderTest;
    let logger: RecordingLogger;
    const opened: { close(): Promise<void> }[] = [];

    async function newApp(options: Partial<SessionsModuleOptions> = {}, store = backend.store) {
      const other = await createApp({ secret: SECRET, store, ...options }, { logger });
      opened.push(other);
      return other.getHttpServer();
    }
    const idOf = async (cookie: string) => (await request(http).get('/read').set('Cookie', cookie)).body.id as string;

    beforeAll(async () => {
      backend = await make();
      logger = new RecordingLogger();
      app = await createApp({ secret: SECRET, store: backend.store, maxAge: 3600 }, { logger });
      http = app.getHttpServer();
    });
    afterEach(() => vi.useRealTimers());
    afterAll(async () => {
      await Promise.all(opened.map((o) => o.close()));
      await app.close();
      await backend.close();
    });

    it('the session lives in the store; the cookie holds only a signed ID', async () => {
      const res = await request(http).post('/write').send({ value: 'in the store' }).expect(201);
      const cookie = sessionCookie(res);
      expect(cookie).toMatch(/^session=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
      const id = await idOf(cookie);
      expect(cookie.slice('session='.length, 'session='.length + 43)).toBe(id);
      expect(await backend.exists(id)).toBe(true);
      expect((await request(http).get('/read').set('Cookie', cookie)).body.value).toBe('in the store');
    });

    it('the record expires with the session, and a save pushes the expiry back', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      const id = await idOf(cookie);
      const first = await backend.ttl(id);
      expect(first).toBeGreaterThan(3_590_000);
      expect(first).toBeLessThanOrEqual(3_600_000);
      vi.setSystemTime(Date.now() + 600_000);
      await request(http).post('/write').set('Cookie', cookie).send({ value: 2 }).expect(201);
      // By the moved clock, the record again has the full hour ahead of it.
      expect(await backend.ttl(id)).toBeGreaterThan(3_590_000);
    });

    it('with rolling, a read pushes the expiry back (a touch, no data written)', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const server = await newApp({ maxAge: 600, rolling: true });
      const cookie = sessionCookie(await request(server).post('/write').send({ value: 1 }));
      const id = (await request(server).get('/read').set('Cookie', cookie)).body.id as string;
      vi.setSystemTime(Date.now() + 300_000);
      const before = backend.sent().length;
      const res = await request(server).get('/read').set('Cookie', cookie).expect(200);
      expect(sessionSetCookies(res)[0]).toMatch(/Max-Age=600;/);
      expect(backend.sent().slice(before)).toEqual(['read', 'write']);
      expect(await backend.ttl(id)).toBeGreaterThan(590_000);
    });

    it('loading is one read; read-only requests write nothing', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      const before = backend.sent().length;
      for (let i = 0; i < 20; i++) {
        const res = await request(http).get('/read').set('Cookie', cookie).expect(200);
        expect(setCookies(res)).toEqual([]);
      }
      expect(backend.sent().slice(before)).toEqual(Array(20).fill('read'));
    });

    it('a change is one read and one write', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      const before = backend.sent().length;
      await request(http).post('/write').set('Cookie', cookie).send({ value: 2 }).expect(201);
      expect(backend.sent().slice(before)).toEqual(['read', 'write']);
    });

    it('cookieless reads and forged IDs reach no store; an unknown signed ID costs one read', async () => {
      const before = backend.sent().length;
      for (let i = 0; i < 50; i++) await request(http).get('/read').expect(200);
      await request(http)
        .get('/read')
        .set('Cookie', `session=${'A'.repeat(43)}.${'B'.repeat(43)}`)
        .expect(200);
      await request(http).get('/read').set('Cookie', "session=' OR 1=1 --").expect(200);
      expect(backend.sent().length).toBe(before);
      const unknown = `session=${signId(newSessionId(), new Keyring([SECRET]))}`;
      const res = await request(http).get('/read').set('Cookie', unknown).expect(200);
      expect(res.body.isNew).toBe(true);
      expect(backend.sent().slice(before)).toEqual(['read']);
    });

    it('two overlapping requests that change different keys both keep their changes', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 0 }));
      const latch = new Latch();
      latches.set(`${name}-${platform}-overlap`, latch);
      const arrived = new Latch();
      arrivals.set(`${name}-${platform}-overlap`, arrived);
      const slow = request(http)
        .post('/set/a')
        .set('Cookie', cookie)
        .send({ value: 'A', wait: `${name}-${platform}-overlap` })
        .then((r) => r);
      await arrived.wait; // the slow request has loaded the session and waits in its handler
      await request(http).post('/set/b').set('Cookie', cookie).send({ value: 'B' }).expect(201);
      latch.open();
      expect((await slow).status).toBe(201);
      expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({ value: 0, a: 'A', b: 'B' });
    });

    it('a slow request that finishes after a logout does not bring the session back', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 0 }));
      const id = await idOf(cookie);
      const latch = new Latch();
      latches.set(`${name}-${platform}-logout`, latch);
      const arrived = new Latch();
      arrivals.set(`${name}-${platform}-logout`, arrived);
      const slow = request(http)
        .post('/set/late')
        .set('Cookie', cookie)
        .send({ value: 1, wait: `${name}-${platform}-logout` })
        .then((r) => r);
      await arrived.wait; // the slow request has loaded the session and waits in its handler
      await request(http).post('/logout').set('Cookie', cookie).send({}).expect(201);
      latch.open();
      expect((await slow).status).toBe(201);
      expect(await backend.exists(id)).toBe(false);
      expect((await request(http).get('/read').set('Cookie', cookie)).body.isNew).toBe(true);
    });

    it('regenerate leaves no old record; destroy leaves none at all', async () => {
      const agent = request.agent(http);
      const oldCookie = sessionCookie(await agent.post('/write').send({ value: 'kept' }));
      const oldId = await idOf(oldCookie);
      await agent.post('/login').send({ user: 'ann' }).expect(201);
      const newId = (await agent.get('/read')).body.id as string;
      expect(newId).not.toBe(oldId);
      expect(await backend.exists(oldId)).toBe(false);
      expect(await backend.exists(newId)).toBe(true);
      expect((await agent.get('/all')).body).toEqual({ value: 'kept', user: 'ann' });
      await agent.post('/logout').send({}).expect(201);
      expect(await backend.exists(newId)).toBe(false);
    });

    it('a corrupt stored record is treated as missing, and logged', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      await backend.corrupt(await idOf(cookie));
      const res = await request(http).get('/read').set('Cookie', cookie).expect(200);
      expect(res.body.isNew).toBe(true);
      expect(logger.messages('warn').some((m) => /unreadable session/i.test(m))).toBe(true);
    });

    it('two app instances sharing the store see the same session', async () => {
      const other = await newApp();
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 'shared' }));
      expect((await request(other).get('/read').set('Cookie', cookie)).body.value).toBe('shared');
      await request(other).post('/set/b').set('Cookie', cookie).send({ value: 'from the other' }).expect(201);
      expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({ value: 'shared', b: 'from the other' });
    });

    it('keys such as "__proto__" and non-ASCII text round-trip', async () => {
      const agent = request.agent(http);
      await agent
        .post('/set/__proto__')
        .send({ value: { polluted: true } })
        .expect(201);
      await agent.post('/set/text').send({ value: 'Zoë 🍕 日本' }).expect(201);
      const all = await agent.get('/all');
      // Parsed as JSON.parse does, "__proto__" stays an own key (some backends reorder keys: compare them sorted).
      const body = JSON.parse(all.text) as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(['__proto__', 'text']);
      expect(Object.getOwnPropertyDescriptor(body, '__proto__')?.value).toEqual({ polluted: true });
      expect(body.text).toBe('Zoë 🍕 日本');
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('the anti-forgery secret is kept in the store: a token issued once works on later requests and in another app, until regenerate', async () => {
      const guarded = await newApp({ csrf: { requireToken: true } });
      const res = await request(guarded).get('/csrf-token').expect(200);
      const cookie = sessionCookie(res);
      const token = res.body.token as string;
      await request(guarded).post('/write').set('Cookie', cookie).send({ value: 1 }).expect(403);
      await request(guarded).post('/write').set('Cookie', cookie).set('x-csrf-token', token).send({ value: 1 }).expect(201);
      await request(guarded).post('/cart/items').set('Cookie', cookie).set('x-csrf-token', token).send({ sku: 'a' }).expect(201);
      const other = await newApp({ csrf: { requireToken: true } });
      await request(other).post('/write').set('Cookie', cookie).set('x-csrf-token', token).send({ value: 2 }).expect(201);
      // The secret is not data: the handler's view of the session has only its own keys.
      expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({ value: 2, items: ['a'] });
      const renewed = sessionCookie(
        await request(guarded).post('/login').set('Cookie', cookie).set('x-csrf-token', token).send({ user: 'ann' }).expect(201),
      );
      await request(guarded).post('/write').set('Cookie', renewed).set('x-csrf-token', token).send({ value: 3 }).expect(403);
    });

    it('works with the header transport: the signed ID travels in the header', async () => {
      const server = await newApp({ transport: { header: 'x-session-id' } });
      const write = await request(server).post('/write').send({ value: 'by header' }).expect(201);
      const token = write.headers['x-session-id'] as string;
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
      expect(setCookies(write)).toEqual([]);
      expect(await backend.exists(token.slice(0, 43))).toBe(true);
      expect((await request(server).get('/read').set('x-session-id', token)).body.value).toBe('by header');
    });

    itRefusesWhatJsonWouldChange(() => ({ http, logger }));

    it('a stored value nested deeper than a save accepts reads as no session, not as a failure or an outage', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      await backend.plantDeep(await idOf(cookie), 3000);
      const read = await request(http).get('/read').set('Cookie', cookie).expect(200);
      expect(read.body.isNew).toBe(true);
      expect(logger.messages('error').join('\n')).not.toMatch(/unavailable/);
      expect(logger.messages('warn').join('\n')).toMatch(/nested more than 64 levels deep/);
    });

    it('a value that cannot be stored fails with a 500 and writes nothing', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      const before = backend.sent().length;
      await request(http).post('/unserialisable').set('Cookie', cookie).expect(500);
      expect(backend.sent().slice(before)).toEqual(['read']);
      expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({ value: 1 });
    });
  });
}

/** Poll until `check` passes or `ms` runs out (for a client reconnecting in the background). */
export async function eventually(check: () => Promise<void>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * A session written through `http`, retried until the store answers within its (short) timeout: a
 * fresh pool's first connection on a busy machine can take longer than a fault test's timeout, and
 * that is no fault. The faults come after.
 */
export async function writtenSession(http: Parameters<typeof request>[0], value: unknown): Promise<string> {
  let cookie = '';
  await eventually(async () => {
    cookie = sessionCookie(await request(http).post('/write').send({ value }).expect(201));
  });
  return cookie;
}

/** A store whose backend goes away or hangs: a bounded wait, a clear 503, and recovery without a restart. */
export function describeStoreFaults(name: string, make: MakeStore, proxy: () => TcpProxy): void {
  describe.each(PLATFORMS)(`${name}: when the backend is down or slow, on %s`, (platform) => {
    const createApp = appOn(platform);
    let app: INestApplication;
    let http: ReturnType<INestApplication['getHttpServer']>;
    let backend: StoreUnderTest;
    let logger: RecordingLogger;

    beforeAll(async () => {
      backend = await make({ timeout: 300, port: proxy().port });
      logger = new RecordingLogger();
      app = await createApp({ secret: SECRET, store: backend.store }, { logger });
      http = app.getHttpServer();
    });
    afterAll(async () => {
      await app.close();
      await backend.close();
    });

    it('down: a 503 with a clear message, quickly; back up: the next requests work', async () => {
      const cookie = await writtenSession(http, 'before');
      await proxy().down();
      const started = Date.now();
      const res = await request(http).get('/read').set('Cookie', cookie);
      expect(res.status).toBe(503);
      expect(res.body.message).toBe('The session store is unavailable; try again shortly');
      expect(Date.now() - started).toBeLessThan(5_000); // a bound against hanging, not a speed test
      expect(logger.messages('error').some((m) => m.startsWith('Session store unavailable'))).toBe(true);
      // Handlers without a session do not care.
      await request(http).get('/none').expect(200);
      await proxy().up();
      await eventually(async () => {
        expect((await request(http).get('/read').set('Cookie', cookie)).body.value).toBe('before');
      });
      await request(http).post('/write').set('Cookie', cookie).send({ value: 'after' }).expect(201);
    });

    it('hanging: the wait is bounded by the timeout, then 503; when it answers again, requests work', async () => {
      const cookie = await writtenSession(http, 'before');
      proxy().hang();
      const started = Date.now();
      const results = await Promise.all(
        Array.from({ length: 5 }, () => request(http).post('/write').set('Cookie', cookie).send({ value: 'lost?' })),
      );
      expect(results.map((r) => r.status)).toEqual([503, 503, 503, 503, 503]);
      expect(Date.now() - started).toBeLessThan(5_000); // a bound against hanging, not a speed test
      // The same connections come back to life: no reconnect, no restart.
      proxy().resume();
      await eventually(async () => {
        expect((await request(http).get('/read').set('Cookie', cookie)).status).toBe(200);
      });
      await request(http).post('/write').set('Cookie', cookie).send({ value: 'after' }).expect(201);
      expect((await request(http).get('/read').set('Cookie', cookie)).body.value).toBe('after');
    });

    it('connection attempts that never answer: 503s; once the network is back, the store recovers by itself', async () => {
      const cookie = await writtenSession(http, 'before');
      await proxy().down(); // every open connection is cut
      await proxy().up({ hang: true }); // and every new one is accepted, then never answered
      const results = await Promise.all(Array.from({ length: 8 }, () => request(http).get('/read').set('Cookie', cookie)));
      expect(results.map((r) => r.status)).toEqual(Array(8).fill(503));
      proxy().hangExisting(); // the attempts made meanwhile stay dead for good
      proxy().resume(); // new connections work again
      await eventually(async () => {
        expect((await request(http).get('/read').set('Cookie', cookie)).body.value).toBe('before');
      }, 30_000);
      await request(http).post('/write').set('Cookie', cookie).send({ value: 'after' }).expect(201);
    }, 40_000);

    it('a connection that stays open and never answers again: the store drops it and recovers by itself', async () => {
      const cookie = await writtenSession(http, 'before');
      proxy().hangExisting(); // the open connections go silent for good; new ones work
      expect((await request(http).get('/read').set('Cookie', cookie)).status).toBe(503);
      await eventually(async () => {
        expect((await request(http).get('/read').set('Cookie', cookie)).body.value).toBe('before');
      }, 30_000);
      await request(http).post('/write').set('Cookie', cookie).send({ value: 'after' }).expect(201);
    }, 40_000);

    it('a hung backend does not collect calls without bound: past maxPending, requests fail at once', async () => {
      const bounded = await make({ timeout: 200, port: proxy().port, maxPending: 3 });
      const server = await createApp({ secret: SECRET, store: bounded.store });
      try {
        const cookie = await writtenSession(server.getHttpServer(), 1);
        proxy().hang();
        const before = bounded.sent().length;
        const results = await Promise.all(
          Array.from({ length: 12 }, () => request(server.getHttpServer()).get('/read').set('Cookie', cookie)),
        );
        expect(results.every((r) => r.status === 503)).toBe(true);
        expect(bounded.sent().length - before).toBeLessThanOrEqual(3);
        expect(bounded.store.pending).toBeLessThanOrEqual(3);
        proxy().resume();
        await eventually(async () => {
          expect((await request(server.getHttpServer()).get('/read').set('Cookie', cookie)).body.value).toBe(1);
        });
      } finally {
        await server.close();
        await bounded.close();
      }
    });
  });
}
