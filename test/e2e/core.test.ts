import { Injectable, Module, type INestApplication } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import request from 'supertest';
import { afterEach, beforeAll, afterAll, describe, expect, it, vi } from 'vitest';
import {
  CookieSessionStore,
  InMemorySessionStore,
  SESSION_STORE,
  SessionsModule,
  SessionsConfigError,
  type SessionsModuleOptions,
  type SessionsOptionsFactory,
} from '../../src/index.js';
import {
  appOn,
  PLATFORMS,
  Latch,
  latches,
  arrivals,
  OTHER_SECRET,
  ProbeController,
  HandlersController,
  WrappedController,
  LoadsSessionGuard,
  RecordingLogger,
  SECRET,
  cookieAfter,
  sessionCookie,
  sessionSetCookies,
  setCookies,
  parseSetCookie,
  isExpiry,
  itRefusesWhatJsonWouldChange,
  CountingStore,
} from '../fixtures/app.js';

describe.each(PLATFORMS)('on %s', (platform) => {
  const createApp = appOn(platform);

  describe('sessions over HTTP (in-memory store)', () => {
    let app: INestApplication;
    let store: CountingStore;
    let http: ReturnType<INestApplication['getHttpServer']>;

    beforeAll(async () => {
      store = new CountingStore();
      app = await createApp({ secret: SECRET, store });
      http = app.getHttpServer();
    });
    afterAll(() => app.close());

    it('a write sends exactly one session Set-Cookie, and a read with it gets the value back', async () => {
      const write = await request(http).post('/write').send({ value: 'Grüße, 世界 ✓' }).expect(201);
      expect(sessionSetCookies(write)).toHaveLength(1);
      const cookie = sessionCookie(write);
      const read = await request(http).get('/read').set('Cookie', cookie).expect(200);
      expect(read.body).toMatchObject({ value: 'Grüße, 世界 ✓', isNew: false });
      expect(read.body.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    });

    it('the cookie holds only a signed 256-bit ID, with safe attributes', async () => {
      const write = await request(http).post('/write').send({ value: 'secret-data' }).expect(201);
      const [header] = sessionSetCookies(write);
      const cookie = parseSetCookie(header!);
      expect(cookie.value).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
      expect(cookie.attributes).toEqual({ 'max-age': '86400', path: '/', httponly: true, samesite: 'Lax' });
      expect(header).not.toContain('secret-data');
      expect(write.headers['cache-control']).toBe('no-store');
      expect(write.headers['vary']).toBe('Cookie');
    });

    it('a read-only request sends no Set-Cookie and writes nothing', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      const before = store.writes();
      const read = await request(http).get('/read').set('Cookie', cookie).expect(200);
      expect(setCookies(read)).toEqual([]);
      expect(store.writes()).toBe(before);
    });

    it('a handler without @Session() costs no store call, even with a session cookie', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      const loads = store.calls.load;
      const none = await request(http).get('/none').set('Cookie', cookie).expect(200);
      expect(setCookies(none)).toEqual([]);
      expect(store.calls.load).toBe(loads);
    });

    it('a change made in place to a value read from the session is saved', async () => {
      const agent = request.agent(http);
      await agent.post('/cart/items').send({ sku: 'a' }).expect(201);
      await agent.post('/cart/items').send({ sku: 'b' }).expect(201);
      const res = await agent.post('/cart/items').send({ sku: 'c' }).expect(201);
      expect(res.body.items).toEqual(['a', 'b', 'c']);
      expect((await agent.get('/all')).body).toEqual({ items: ['a', 'b', 'c'] });
    });

    it('1,000 read-only requests without a cookie leave the store empty', async () => {
      const own = new CountingStore();
      const other = await createApp({ secret: SECRET, store: own });
      try {
        const server = other.getHttpServer();
        for (let i = 0; i < 1000; i += 50) {
          await Promise.all(Array.from({ length: 50 }, () => request(server).get('/read').expect(200)));
        }
        expect(own.size).toBe(0);
        expect(own.writes()).toBe(0);
      } finally {
        await other.close();
      }
    });

    it('a cookie signed with another secret gives an empty session with status 200', async () => {
      const foreign = new CountingStore();
      const elsewhere = await createApp({ secret: OTHER_SECRET, store: foreign });
      const cookie = sessionCookie(await request(elsewhere.getHttpServer()).post('/write').send({ value: 'theirs' }));
      await elsewhere.close();
      const read = await request(http).get('/read').set('Cookie', cookie).expect(200);
      expect(read.body).toEqual({ value: null, id: null, isNew: true, keys: [] });
    });

    it.each([
      ['garbage', 'session=garbage'],
      ['a forged signature', `session=${'A'.repeat(43)}.${'B'.repeat(43)}`],
      ['100 KB', `session=${'x'.repeat(100_000)}`],
      ['12 KB', `session=${'x'.repeat(12_000)}`],
      ['SQL', `session=' OR 1=1; --`],
      ['encoded NUL bytes', `session=${'%00'.repeat(29)}`],
      ['repeated names', `session=a; session=${'A'.repeat(43)}.${'B'.repeat(43)}; session=`],
      ['__proto__', '__proto__=x; session=__proto__'],
    ])('a bad cookie (%s) is never adopted: empty session, 200, nothing stored, cookie expired', async (_name, cookie) => {
      const own = new CountingStore();
      const other = await createApp({ secret: SECRET, store: own });
      try {
        const res = await request(other.getHttpServer()).get('/read').set('Cookie', cookie);
        if (cookie.length > 16_000) {
          // Node refuses headers over 16 KiB before any of our code runs; the 12 KB case reaches us.
          expect(res.status).toBe(431);
        } else {
          expect(res.status).toBe(200);
          expect(res.body.isNew).toBe(true);
          expect(sessionSetCookies(res)).toHaveLength(1);
          expect(isExpiry(sessionSetCookies(res)[0]!)).toBe(true);
        }
        expect(own.size).toBe(0);
        expect(own.writes()).toBe(0);
      } finally {
        await other.close();
      }
    });

    it('an unknown but well-signed ID is not adopted: a change gets a new ID', async () => {
      const write = await request(http).post('/write').send({ value: 1 });
      const cookie = sessionCookie(write);
      const { id } = (await request(http).get('/read').set('Cookie', cookie)).body;
      const own = new CountingStore();
      const other = await createApp({ secret: SECRET, store: own }); // same secret, empty store
      try {
        const res = await request(other.getHttpServer()).post('/write').set('Cookie', cookie).send({ value: 2 }).expect(201);
        const fresh = sessionCookie(res);
        expect(fresh).not.toBe(cookie);
        expect((await request(other.getHttpServer()).get('/read').set('Cookie', fresh)).body.id).not.toBe(id);
      } finally {
        await other.close();
      }
    });

    it('regenerate() gives a new ID, keeps the data, and the old cookie opens nothing', async () => {
      const agent = request.agent(http);
      const first = await agent.post('/write').send({ value: 'kept' });
      const oldCookie = sessionCookie(first);
      const login = await agent.post('/login').send({ user: 'ann' }).expect(201);
      const newCookie = sessionCookie(login);
      expect(newCookie).not.toBe(oldCookie);
      expect((await agent.get('/all')).body).toEqual({ value: 'kept', user: 'ann' });
      const old = await request(http).get('/all').set('Cookie', oldCookie).expect(200);
      expect(old.body).toEqual({});
    });

    it('destroy() deletes the session and expires the cookie', async () => {
      const agent = request.agent(http);
      const cookie = sessionCookie(await agent.post('/login').send({ user: 'ann' }));
      const sizeBefore = store.size;
      const out = await agent.post('/logout').send({}).expect(201);
      expect(sessionSetCookies(out)).toHaveLength(1);
      expect(parseSetCookie(sessionSetCookies(out)[0]!)).toEqual({
        name: 'session',
        value: '',
        attributes: { 'max-age': '0', path: '/', expires: 'Thu, 01 Jan 1970 00:00:00 GMT', httponly: true, samesite: 'Lax' },
      });
      expect(store.size).toBe(sizeBefore - 1);
      expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({});
    });

    it('a client error (4xx) keeps the changes and the cookie reaches the error response', async () => {
      const res = await request(http).post('/client-error').expect(400);
      const cookie = sessionCookie(res);
      expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({ attempts: 1 });
    });

    it.each(['/server-error', '/plain-error'])('a server error (%s) discards the changes', async (path) => {
      const agent = request.agent(http);
      const cookie = sessionCookie(await agent.post('/write').send({ value: 'before' }));
      const res = await agent.post(path).expect(500);
      expect(setCookies(res)).toEqual([]);
      expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({ value: 'before' });
    });

    it('two overlapping requests that change different keys both keep their changes', async () => {
      const agent = request.agent(http);
      const cookie = sessionCookie(await agent.post('/write').send({ value: 0 }));
      const latch = new Latch();
      latches.set('overlap', latch);
      const arrived = new Latch();
      arrivals.set('overlap', arrived);
      // The slow request loads the session first and saves last.
      const slow = request(http)
        .post('/set/a')
        .set('Cookie', cookie)
        .send({ value: 'A', wait: 'overlap' })
        .then((r) => r);
      await arrived.wait; // the request has loaded its session and waits
      await request(http).post('/set/b').set('Cookie', cookie).send({ value: 'B' }).expect(201);
      latch.open();
      expect((await slow).status).toBe(201);
      expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({ value: 0, a: 'A', b: 'B' });
    });

    it('a request that finishes after a logout does not bring the session back', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 0 }));
      const latch = new Latch();
      latches.set('after-logout', latch);
      const arrived = new Latch();
      arrivals.set('after-logout', arrived);
      const slow = request(http)
        .post('/set/late')
        .set('Cookie', cookie)
        .send({ value: 1, wait: 'after-logout' })
        .then((r) => r);
      await arrived.wait; // the request has loaded its session and waits
      await request(http).post('/logout').set('Cookie', cookie).send({}).expect(201);
      latch.open();
      const late = await slow;
      expect(late.status).toBe(201);
      // The changes are dropped, and the cookie left alone: the browser may hold a newer session by now.
      expect(setCookies(late)).toEqual([]);
      expect((await request(http).get('/read').set('Cookie', cookie)).body.isNew).toBe(true);
    });

    it('a login racing a logout does not bring the session back', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 'v' }));
      const size = store.size;
      const latch = new Latch();
      latches.set('login-vs-logout', latch);
      const arrived = new Latch();
      arrivals.set('login-vs-logout', arrived);
      const login = request(http)
        .post('/login')
        .set('Cookie', cookie)
        .send({ user: 'ann', wait: 'login-vs-logout' })
        .then((r) => r);
      await arrived.wait; // the request has loaded its session and waits
      await request(http).post('/logout').set('Cookie', cookie).send({}).expect(201);
      latch.open();
      const res = await login;
      expect(res.status).toBe(201);
      expect(sessionSetCookies(res)).toEqual([]);
      expect(store.size).toBe(size - 1);
      expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({});
    });

    it('a slow request on the old ID does not erase the cookie of a login made meanwhile', async () => {
      const agent = request.agent(http);
      const oldCookie = sessionCookie(await agent.post('/write').send({ value: 0 }));
      const latch = new Latch();
      latches.set('slow-vs-login', latch);
      const arrived = new Latch();
      arrivals.set('slow-vs-login', arrived);
      const slow = request(http)
        .post('/set/late')
        .set('Cookie', oldCookie)
        .send({ value: 1, wait: 'slow-vs-login' })
        .then((r) => r);
      await arrived.wait; // the request has loaded its session and waits
      await agent.post('/login').send({ user: 'ann' }).expect(201);
      latch.open();
      const late = await slow;
      expect(late.status).toBe(201);
      expect(setCookies(late)).toEqual([]);
      expect((await agent.get('/all')).body).toEqual({ value: 0, user: 'ann' });
    });

    it('a 4xx keeps the changes of an existing session too', async () => {
      const agent = request.agent(http);
      await agent.post('/write').send({ value: 1 });
      await agent.post('/client-error').expect(400);
      expect((await agent.get('/all')).body).toEqual({ value: 1, attempts: 1 });
    });

    it('a destroy response tells caches not to keep it', async () => {
      const agent = request.agent(http);
      await agent.post('/write').send({ value: 1 });
      const out = await agent.post('/logout').send({}).expect(201);
      expect(out.headers['cache-control']).toBe('no-store');
      expect(out.headers['vary']).toBe('Cookie');
    });

    it('a regenerate whose new record cannot be created fails with a 503 and keeps the old session', async () => {
      class FailingCreate extends InMemorySessionStore {
        failCreate = false;
        protected override async insert(...args: Parameters<InMemorySessionStore['insert']>) {
          if (this.failCreate) throw new Error('insert refused');
          return super.insert(...args);
        }
      }
      const failing = new FailingCreate();
      const other = await createApp({ secret: SECRET, store: failing });
      try {
        const agent = request.agent(other.getHttpServer());
        await agent.post('/write').send({ value: 'cart' }).expect(201);
        failing.failCreate = true;
        await agent.post('/login').send({ user: 'ann' }).expect(503);
        failing.failCreate = false;
        expect((await agent.get('/all')).body).toEqual({ value: 'cart' });
        expect(failing.size).toBe(1);
      } finally {
        await other.close();
      }
    });

    it('a value changed in place after save() is saved too', async () => {
      const agent = request.agent(http);
      await agent.post('/save-then-push').expect(201);
      expect((await agent.get('/all')).body).toEqual({ list: ['late'] });
    });

    it('simultaneous first requests get distinct sessions', async () => {
      const responses = await Promise.all(Array.from({ length: 20 }, () => request(http).post('/write').send({ value: 1 })));
      expect(new Set(responses.map((r) => sessionCookie(r))).size).toBe(20);
    });

    it('a guard can load the session first; the handler gets the same object, loaded once', async () => {
      const loads = store.calls.load;
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      const res = await request(http).get('/guarded/same?mark=g1').set('Cookie', cookie).expect(200);
      expect(res.body).toEqual({ same: true, guard: 'g1' });
      expect(store.calls.load - loads).toBe(1);
    });

    it("a guard's change is saved even when the handler takes no @Session()", async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      await request(http).get('/guarded/plain?mark=g2').set('Cookie', cookie).expect(200);
      expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({ value: 1, guard: 'g2' });
    });

    it("a guard's change is saved when a pipe then refuses the request, on a route that takes @Session() too", async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      await request(http).post('/guarded/count/many?mark=g4').set('Cookie', cookie).expect(400);
      expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({ value: 1, guard: 'g4' });
      await request(http).post('/guarded/count/2').set('Cookie', cookie).expect(201);
      expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({ value: 1, guard: 'g4', count: 2 });
    });

    it('a guard that rejects leaves the session unsaved', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      const res = await request(http).get('/guarded/plain?mark=g3&deny=1').set('Cookie', cookie).expect(403);
      expect(setCookies(res)).toEqual([]);
      expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({ value: 1 });
    });

    it('a value that cannot be stored fails the request with a 500 and changes nothing', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      const res = await request(http).post('/unserialisable').set('Cookie', cookie).expect(500);
      expect(setCookies(res)).toEqual([]);
      expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({ value: 1 });
    });
  });

  describe('values JSON would change (in-memory store)', () => {
    let app: INestApplication;
    const logger = new RecordingLogger();
    beforeAll(async () => {
      app = await createApp({ secret: SECRET, store: new InMemorySessionStore() }, { logger });
    });
    afterAll(() => app.close());
    itRefusesWhatJsonWouldChange(() => ({ http: app.getHttpServer(), logger }));

    it('a Date is stored as its ISO string, and a property set to undefined is left out, as JSON does', async () => {
      const agent = request.agent(app.getHttpServer());
      await agent.post('/quirky/date').expect(201);
      expect((await agent.get('/all')).body).toEqual({ value: { at: '2026-01-02T03:04:05.000Z' } });
    });
  });

  describe('handlers that send the response themselves', () => {
    it('session.save() before sending sets the cookie', async () => {
      const app = await createApp(SECRET);
      try {
        const res = await request(app.getHttpServer()).post('/raw/saved').expect(201);
        const cookie = sessionCookie(res);
        expect((await request(app.getHttpServer()).get('/all').set('Cookie', cookie)).body).toEqual({ raw: 'saved' });
      } finally {
        await app.close();
      }
    });

    it('without save(), a new session is not stored (no cookie could reach it); a warning names the handler, once', async () => {
      const logger = new RecordingLogger();
      const store = new InMemorySessionStore();
      const app = await createApp({ secret: SECRET, store }, { logger });
      try {
        const res = await request(app.getHttpServer()).post('/raw/unsaved').expect(201);
        await request(app.getHttpServer()).post('/raw/unsaved').expect(201);
        // The save after a handler that sent the response itself runs on promises alone (an in-memory
        // store does no I/O), so it is over before the server reads the next request.
        await request(app.getHttpServer()).get('/none').expect(200);
        expect(setCookies(res)).toEqual([]);
        expect(store.size).toBe(0);
        const warnings = logger.messages('warn').filter((m) => m.includes('ProbeController.rawUnsaved'));
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toContain('the new session was not stored');
        expect(warnings[0]).toContain('await session.save()');
      } finally {
        await app.close();
      }
    });

    it('without save(), changes to an existing server-side session are still stored', async () => {
      const store = new InMemorySessionStore();
      const app = await createApp({ secret: SECRET, store });
      try {
        const agent = request.agent(app.getHttpServer());
        await agent.post('/write').send({ value: 1 }).expect(201);
        await agent.post('/raw/unsaved').expect(201);
        // (The next request is read only after the last one's save, which runs on promises alone.)
        expect((await agent.get('/all')).body).toEqual({ value: 1, raw: 'unsaved' });
      } finally {
        await app.close();
      }
    });

    it('without save(), a regenerate is not applied: the old session stays, nothing unreachable is stored', async () => {
      const logger = new RecordingLogger();
      const store = new InMemorySessionStore();
      const app = await createApp({ secret: SECRET, store }, { logger });
      try {
        const agent = request.agent(app.getHttpServer());
        await agent.post('/write').send({ value: 1 }).expect(201);
        await agent.post('/raw/login').expect(201);
        // (The next request is read only after the last one's save, which runs on promises alone.)
        expect(store.size).toBe(1);
        expect((await agent.get('/all')).body).toEqual({ value: 1 });
        expect(logger.messages('warn').some((m) => m.includes('ProbeController.rawLogin'))).toBe(true);
      } finally {
        await app.close();
      }
    });
  });

  describe.each([
    ['in-memory', () => new InMemorySessionStore()],
    ['cookie', () => new CookieSessionStore()],
  ])('expiry with the %s store (fake clock)', (_name, makeStore) => {
    afterEach(() => vi.useRealTimers());

    async function withApp(
      options: Partial<SessionsModuleOptions>,
      run: (http: ReturnType<INestApplication['getHttpServer']>) => Promise<void>,
    ) {
      const app = await createApp({ secret: SECRET, store: makeStore(), ...options });
      try {
        await run(app.getHttpServer());
      } finally {
        await app.close();
      }
    }

    it('a session past maxAge is gone', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      await withApp({ maxAge: 60 }, async (http) => {
        const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
        vi.setSystemTime(Date.now() + 59_000);
        expect((await request(http).get('/read').set('Cookie', cookie)).body.value).toBe(1);
        vi.setSystemTime(Date.now() + 2_000);
        expect((await request(http).get('/read').set('Cookie', cookie)).body).toMatchObject({ value: null, isNew: true });
      });
    });

    it('idleTimeout: activity keeps the session alive, a long pause ends it', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      await withApp({ maxAge: 3600, idleTimeout: 100, touchAfter: 10 }, async (http) => {
        let cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
        for (let i = 0; i < 5; i++) {
          vi.setSystemTime(Date.now() + 60_000);
          const res = await request(http).get('/read').set('Cookie', cookie).expect(200);
          expect(res.body.value).toBe(1);
          // The touch re-sends the cookie with a fresh Max-Age (the cookie store re-seals it).
          expect(sessionSetCookies(res)[0]).toMatch(/Max-Age=100;/);
          cookie = sessionCookie(res);
        }
        vi.setSystemTime(Date.now() + 101_000);
        expect((await request(http).get('/read').set('Cookie', cookie)).body.isNew).toBe(true);
      });
    });

    it('touches are throttled: requests within touchAfter write nothing', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const store = makeStore();
      const touch = vi.spyOn(store, 'touch');
      await withApp({ store, rolling: true, maxAge: 600, touchAfter: 30 }, async (http) => {
        const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
        for (let i = 0; i < 5; i++) {
          vi.setSystemTime(Date.now() + 5_000);
          expect(setCookies(await request(http).get('/read').set('Cookie', cookie))).toEqual([]);
        }
        expect(touch).not.toHaveBeenCalled();
        vi.setSystemTime(Date.now() + 10_000);
        const res = await request(http).get('/read').set('Cookie', cookie);
        expect(sessionSetCookies(res)[0]).toMatch(/Max-Age=600;/);
        expect(touch).toHaveBeenCalledTimes(1);
      });
    });

    it('a change moves the expiry at most once per touchAfter; in between, the data is saved under the same times', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const store = makeStore();
      const update = vi.spyOn(store, 'update');
      const serverSide = store instanceof InMemorySessionStore;
      await withApp({ store, maxAge: 600, touchAfter: 30 }, async (http) => {
        let cookie = sessionCookie(await request(http).post('/write').send({ value: 0 }));
        const created = Date.now();
        for (let i = 1; i <= 3; i++) {
          vi.setSystemTime(created + 5_000 * i);
          const res = await request(http).post('/write').set('Cookie', cookie).send({ value: i }).expect(201);
          const sent = sessionSetCookies(res);
          // A server-side store keeps the token and the times: no cookie. The cookie store's token holds
          // the data, so it is sent, with the expiry it had.
          if (serverSide) expect(sent).toEqual([]);
          else expect(sent[0]).toMatch(new RegExp(`Max-Age=${600 - 5 * i};`));
          expect(update.mock.calls.at(-1)![3]).toEqual({ createdAt: created, refreshedAt: created, expiresAt: created + 600_000 });
          cookie = cookieAfter(res, cookie);
          expect((await request(http).get('/read').set('Cookie', cookie)).body.value).toBe(i);
        }
        vi.setSystemTime(created + 30_000);
        const res = await request(http).post('/write').set('Cookie', cookie).send({ value: 4 }).expect(201);
        expect(sessionSetCookies(res)[0]).toMatch(/Max-Age=600;/);
        expect(update.mock.calls.at(-1)![3]).toEqual({ createdAt: created, refreshedAt: created + 30_000, expiresAt: created + 630_000 });
        cookie = sessionCookie(res);
        // Alive past the first expiry, by the refresh.
        vi.setSystemTime(created + 620_000);
        expect((await request(http).get('/read').set('Cookie', cookie)).body.value).toBe(4);
      });
    });

    it('touchAfter: 0 moves the expiry, and sends the cookie, with every change', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      await withApp({ maxAge: 600, touchAfter: 0 }, async (http) => {
        let cookie = sessionCookie(await request(http).post('/write').send({ value: 0 }));
        for (let i = 1; i <= 3; i++) {
          vi.setSystemTime(Date.now() + 5_000);
          const res = await request(http).post('/write').set('Cookie', cookie).send({ value: i }).expect(201);
          expect(sessionSetCookies(res)[0]).toMatch(/Max-Age=600;/);
          cookie = sessionCookie(res);
        }
      });
    });

    it('absoluteTimeout ends a session however busy it is, regenerate included', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      await withApp({ maxAge: 3600, absoluteTimeout: 300 }, async (http) => {
        const agent = request.agent(http);
        await agent.post('/write').send({ value: 1 });
        for (let i = 0; i < 4; i++) {
          vi.setSystemTime(Date.now() + 60_000);
          await agent
            .post('/login')
            .send({ user: `u${i}` })
            .expect(201);
        }
        vi.setSystemTime(Date.now() + 61_000);
        expect((await agent.get('/read')).body.isNew).toBe(true);
      });
    });
  });

  describe('how handlers that take @Session() are run', () => {
    it('a handler another method decorator replaced still loads and saves its session, and stays as it was', async () => {
      const logger = new RecordingLogger();
      const wrapped = WrappedController.prototype.wrapped;
      const app = await createApp(SECRET, { controllers: [ProbeController, WrappedController], logger });
      try {
        const agent = request.agent(app.getHttpServer());
        expect((await agent.get('/wrapped').expect(200)).body).toEqual({ isNew: true, wrapped: true });
        expect((await agent.get('/all')).body).toEqual({ wrapped: true });
        expect(logger.messages('warn')).toEqual([]);
        expect(WrappedController.prototype.wrapped).toBe(wrapped);
      } finally {
        await app.close();
      }
    });

    describe('with the metadata, pipes and results of ordinary Nest handlers', () => {
      let app: INestApplication;
      let agent: ReturnType<typeof request.agent>;
      beforeAll(async () => {
        app = await createApp(SECRET, { controllers: [ProbeController, HandlersController] });
        agent = request.agent(app.getHttpServer());
      });
      afterAll(() => app.close());

      it("a guard reads the handler's own metadata through Reflector", async () => {
        await agent.get('/handlers/role').expect(403);
        expect((await agent.get('/handlers/role').set('x-role', 'admin').expect(200)).body).toEqual({ role: 'admin' });
        expect((await agent.get('/all')).body).toMatchObject({ role: 'admin' });
      });

      it('a pipe on another parameter refuses the request with its 400; the next one is saved', async () => {
        const refused = await agent.post('/handlers/count/many').expect(400);
        expect(refused.body.message).toMatch(/numeric string is expected/);
        await agent.post('/handlers/count/3').expect(201);
        expect((await agent.get('/all')).body).toMatchObject({ count: 3 });
      });

      it('an Observable result is saved after each value, changes made while it runs included', async () => {
        expect((await agent.get('/handlers/observable').expect(200)).body).toEqual({ step: 2 });
        expect((await agent.get('/all')).body).toMatchObject({ step: 2, late: true });
      });

      it('a failing Observable rolls back what it changed', async () => {
        await agent.get('/handlers/observable-fails').expect(500);
        expect((await agent.get('/all')).body).not.toHaveProperty('doomed');
      });

      it('the method, called directly in a unit test with a plain object, is the method as written', () => {
        const controller = new HandlersController();
        const fake = { set: vi.fn() };
        expect(controller.count(5, fake as never)).toEqual({ count: 5 });
        expect(fake.set).toHaveBeenCalledWith('count', 5);
      });
    });

    it('a global guard that uses SessionsService gets its changes saved on every route', async () => {
      const logger = new RecordingLogger();
      const app = await createApp(SECRET, {
        logger,
        providers: [LoadsSessionGuard, { provide: APP_GUARD, useClass: LoadsSessionGuard }],
      });
      try {
        const agent = request.agent(app.getHttpServer());
        await agent.get('/none?mark=global').expect(200);
        expect((await agent.get('/all')).body).toEqual({ guard: 'global' });
        expect(logger.messages('warn')).toEqual([]);
      } finally {
        await app.close();
      }
    });
  });

  describe('module registration', () => {
    it.each([0, -10])('maxAge %s fails at startup', async (maxAge) => {
      await expect(createApp({ secret: SECRET, maxAge })).rejects.toThrow(
        /SessionsModule.forRoot\(\): maxAge must be a number of seconds greater than 0/,
      );
    });

    it('a missing secret fails at startup, naming what to pass', async () => {
      await expect(createApp(undefined as unknown as string)).rejects.toThrow(/needs a secret/);
      await expect(createApp('too-short')).rejects.toThrow(SessionsConfigError);
    });

    it('a second registration is a startup error, not a second interceptor', async () => {
      await expect(
        createApp(SECRET, { sessions: [SessionsModule.forRoot(SECRET), SessionsModule.forRoot({ secret: SECRET })] }),
      ).rejects.toThrow(/SessionsModule is registered 2 times/);
    });

    it('@Session() in an app without the module says to import SessionsModule.forRoot', async () => {
      const logger = new RecordingLogger();
      const app = await createApp(SECRET, { sessions: [], logger, controllers: [ProbeController], providers: [] });
      try {
        await request(app.getHttpServer()).get('/read').expect(500);
        expect(logger.messages('error').join('\n')).toMatch(
          /@Session\(\) in ProbeController.read found no session: import SessionsModule.forRoot\(secret\)/,
        );
      } finally {
        await app.close();
      }
    });

    it('overrideProvider(SESSION_STORE) swaps the store', async () => {
      const store = new InMemorySessionStore();
      const app = await createApp(SECRET, { build: (b) => b.overrideProvider(SESSION_STORE).useValue(store) });
      try {
        const cookie = sessionCookie(await request(app.getHttpServer()).post('/write').send({ value: 'x' }));
        expect(store.size).toBe(1);
        expect((await request(app.getHttpServer()).get('/read').set('Cookie', cookie)).body.value).toBe('x');
        expect(app.get(SESSION_STORE)).toBe(store);
      } finally {
        await app.close();
      }
    });

    it('forRootAsync with useFactory and inject', async () => {
      @Module({ providers: [{ provide: 'SECRET', useValue: SECRET }], exports: ['SECRET'] })
      class ConfigModule {}
      const store = new InMemorySessionStore();
      const app = await createApp(SECRET, {
        sessions: [
          SessionsModule.forRootAsync({
            imports: [ConfigModule],
            inject: ['SECRET'],
            useFactory: async (secret: string) => ({ secret, store, cookie: { name: 'sid' } }),
          }),
        ],
      });
      try {
        const cookie = sessionCookie(await request(app.getHttpServer()).post('/write').send({ value: 'async' }), 'sid');
        expect(store.size).toBe(1);
        expect((await request(app.getHttpServer()).get('/read').set('Cookie', cookie)).body.value).toBe('async');
      } finally {
        await app.close();
      }
    });

    it('forRootAsync with useClass', async () => {
      @Injectable()
      class SessionsConfig implements SessionsOptionsFactory {
        createSessionsOptions(): SessionsModuleOptions {
          return { secret: SECRET, cookie: { name: 'from-class' } };
        }
      }
      const app = await createApp(SECRET, { sessions: [SessionsModule.forRootAsync({ useClass: SessionsConfig })] });
      try {
        const res = await request(app.getHttpServer()).post('/write').send({ value: 1 }).expect(201);
        expect(sessionSetCookies(res, 'from-class')).toHaveLength(1);
      } finally {
        await app.close();
      }
    });

    it('forRootAsync whose factory returns bad options fails at startup', async () => {
      await expect(
        createApp(SECRET, { sessions: [SessionsModule.forRootAsync({ useFactory: () => ({ secret: 'short' }) })] }),
      ).rejects.toThrow(/at least 32 characters/);
    });
  });
});
