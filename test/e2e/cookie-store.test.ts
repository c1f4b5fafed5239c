import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { CookieSessionStore, SESSION_STORE, SessionsConfigError, type SessionSerializer } from '../../src/index.js';
import {
  appOn,
  PLATFORMS,
  isExpiry,
  Jar,
  OTHER_SECRET,
  parseSetCookie,
  RecordingLogger,
  SECRET,
  sessionCookie,
  sessionSetCookies,
  setCookies,
  itRefusesWhatJsonWouldChange,
  Latch,
  latches,
  arrivals,
  largestAccepted,
  text,
} from '../fixtures/app.js';

describe.each(PLATFORMS)('on %s', (platform) => {
  const createApp = appOn(platform);

  describe('the cookie store by default: no session that could lock its user out', () => {
    let app: INestApplication;
    let http: ReturnType<INestApplication['getHttpServer']>;
    let logger: RecordingLogger;
    beforeAll(async () => {
      logger = new RecordingLogger();
      app = await createApp(SECRET, { logger });
      http = app.getHttpServer();
    });
    afterAll(() => app.close());

    it('is the default store of forRoot(secret)', () => {
      expect(app.get(SESSION_STORE)).toBeInstanceOf(CookieSessionStore);
    });

    it('the largest session it accepts, with 2 KB of other cookies and headers, makes a request under 8 KB that works', async () => {
      const { length, jar } = await largestAccepted(http);
      expect(length).toBeGreaterThan(4_300); // about 4,400 characters of JSON (README)
      expect(length).toBeLessThan(4_500);
      const headers: Record<string, string> = {
        'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36',
        accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8',
        'accept-language': 'en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7',
        'accept-encoding': 'gzip, deflate, br, zstd',
        referer: 'http://127.0.0.1/some/page/the/user/came/from?with=a&query=string',
        'sec-ch-ua': '"Chromium";v="142", "Not_A Brand";v="24"',
        'sec-fetch-site': 'same-origin',
        'sec-fetch-mode': 'navigate',
        cookie: `${jar.header()}; _ga=GA1.1.${'1'.repeat(20)}; prefs=${'p'.repeat(900)}; consent=${'c'.repeat(560)}`,
      };
      const other = Object.entries(headers).reduce((n, [k, v]) => n + k.length + v.length + 4, 0) - jar.header().length;
      expect(other).toBeGreaterThan(2_000);
      const total = Object.entries(headers).reduce(
        (n, [k, v]) => n + k.length + v.length + 4,
        'GET /all HTTP/1.1\r\nHost: 127.0.0.1\r\n'.length,
      );
      expect(total).toBeLessThan(8_192);
      const res = await request(http).get('/all').set(headers).expect(200);
      expect(res.body.big).toHaveLength(length);
    });

    it('a cookie of up to 4 chunks written under the earlier default still opens, refreshes without failing, and logs out', async () => {
      const earlier = await createApp({ secret: SECRET, store: new CookieSessionStore({ maxChunks: 4 }) });
      try {
        const jar = new Jar().apply(
          await request(earlier.getHttpServer())
            .post('/set/big')
            .send({ value: text(10_000) })
            .expect(201),
        );
        expect(jar.names()).toHaveLength(4);
        expect((await request(http).get('/all').set('Cookie', jar.header()).expect(200)).body.big).toHaveLength(10_000);
        const rolling = await createApp({ secret: SECRET, rolling: true, touchAfter: 0 });
        try {
          const refreshed = await request(rolling.getHttpServer()).get('/read').set('Cookie', jar.header()).expect(200);
          expect(setCookies(refreshed)).toEqual([]); // the refresh did not fit: skipped, not a 500
        } finally {
          await rolling.close();
        }
        const out = await request(http).post('/logout').set('Cookie', jar.header()).send({}).expect(201);
        expect(jar.apply(out).names()).toEqual([]);
      } finally {
        await earlier.close();
      }
    });

    it('one byte more fails with a SessionTooLargeError that says to keep less or move to a server-side store', async () => {
      const { length, jar } = await largestAccepted(http);
      const res = await request(http)
        .post('/set/big')
        .set('Cookie', jar.header())
        .send({ value: text(length + 1) })
        .expect(500);
      expect(setCookies(res)).toEqual([]);
      const errors = logger.messages('error').join('\n');
      expect(errors).toMatch(/the cookie store's 6000-byte budget for a session's cookies in a request can carry at most \d+ bytes/);
      expect(errors).toMatch(/keep it in a server-side store \(RedisSessionStore, PostgresSessionStore\)/);
      expect(errors).not.toMatch(/raise/);
      expect((await request(http).get('/all').set('Cookie', jar.header())).body.big).toHaveLength(length);
    });
  });

  describe('the cookie store, split across up to 4 cookies (maxChunks: 4)', () => {
    let app: INestApplication;
    let http: ReturnType<INestApplication['getHttpServer']>;
    let logger: RecordingLogger;

    beforeAll(async () => {
      logger = new RecordingLogger();
      app = await createApp({ secret: SECRET, store: new CookieSessionStore({ maxChunks: 4 }) }, { logger });
      http = app.getHttpServer();
    });
    afterAll(() => app.close());

    it('round-trips a session, non-ASCII text included, with nothing readable in the cookie', async () => {
      const write = await request(http).post('/write').send({ value: 'ann@example.com — Grüße 日本' }).expect(201);
      const cookie = sessionCookie(write);
      expect(cookie).not.toContain('ann');
      expect(Buffer.from(cookie.split('=')[1]!, 'base64url').toString('latin1')).not.toContain('example');
      const read = await request(http).get('/read').set('Cookie', cookie).expect(200);
      expect(read.body).toMatchObject({ value: 'ann@example.com — Grüße 日本', isNew: false });
      expect(read.body.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(setCookies(read)).toEqual([]);
    });

    it('a tampered cookie gives an empty session with status 200 and is expired in the response', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      const flipped = cookie.slice(0, -5) + (cookie.at(-5) === 'A' ? 'B' : 'A') + cookie.slice(-4);
      const res = await request(http).get('/read').set('Cookie', flipped).expect(200);
      expect(res.body).toMatchObject({ value: null, isNew: true });
      expect(sessionSetCookies(res)).toHaveLength(1);
      expect(isExpiry(sessionSetCookies(res)[0]!)).toBe(true);
      expect(logger.messages('debug').some((m) => m.includes('Session cookie refused: tampered'))).toBe(true);
    });

    it('a 10 KB session round-trips through chunks, each cookie under 4096 bytes with its attributes', async () => {
      const jar = new Jar();
      const big = text(10_000);
      const res = await request(http).post('/set/big').send({ value: big }).expect(201);
      jar.apply(res);
      expect(jar.names()).toEqual(['session', 'session.1', 'session.2', 'session.3']);
      for (const header of setCookies(res)) {
        expect(Buffer.byteLength(header)).toBeLessThanOrEqual(4096);
        expect(parseSetCookie(header).attributes).toEqual({ 'max-age': '86400', path: '/', httponly: true, samesite: 'Lax' });
      }
      expect(jar.cookies.get('session')).toMatch(/^~4~[A-Za-z0-9_-]{8}~/);
      const back = await request(http).get('/all').set('Cookie', jar.header()).expect(200);
      expect(back.body.big).toBe(big);
      expect(setCookies(back)).toEqual([]);
    });

    it('shrinking the session expires the chunks it no longer needs', async () => {
      const jar = new Jar();
      jar.apply(
        await request(http)
          .post('/set/big')
          .send({ value: text(10_000) }),
      );
      expect(jar.names()).toHaveLength(4);
      const res = await request(http).post('/set/big').set('Cookie', jar.header()).send({ value: 'small' }).expect(201);
      const expired = setCookies(res)
        .filter(isExpiry)
        .map((h) => h.split('=')[0]);
      expect(expired.sort()).toEqual(['session.1', 'session.2', 'session.3']);
      jar.apply(res);
      expect(jar.names()).toEqual(['session']);
      expect((await request(http).get('/all').set('Cookie', jar.header())).body.big).toBe('small');
    });

    it('swapped, missing or foreign chunks do not open', async () => {
      const a = new Jar().apply(
        await request(http)
          .post('/set/big')
          .send({ value: text(10_000) }),
      );
      const b = new Jar().apply(
        await request(http)
          .post('/set/big')
          .send({ value: text(10_001) }),
      );
      const variants: Record<string, string> = {};
      const swapped = new Map(a.cookies);
      swapped.set('session.1', a.cookies.get('session.2')!);
      swapped.set('session.2', a.cookies.get('session.1')!);
      variants.swapped = [...swapped].map(([k, v]) => `${k}=${v}`).join('; ');
      const missing = new Map(a.cookies);
      missing.delete('session.2');
      variants.missing = [...missing].map(([k, v]) => `${k}=${v}`).join('; ');
      const foreign = new Map(a.cookies);
      foreign.set('session.3', b.cookies.get('session.3')!);
      variants.foreign = [...foreign].map(([k, v]) => `${k}=${v}`).join('; ');
      for (const [name, header] of Object.entries(variants)) {
        const res = await request(http).get('/all').set('Cookie', header).expect(200);
        expect(res.body, name).toEqual({});
        const expired = setCookies(res)
          .filter(isExpiry)
          .map((h) => h.split('=')[0]);
        expect(expired, name).toContain('session');
      }
    });

    it('chunks whose tag does not match are refused, even when they put together a valid token', async () => {
      const jar = new Jar().apply(
        await request(http)
          .post('/set/big')
          .send({ value: text(10_000) }),
      );
      expect((await request(http).get('/all').set('Cookie', jar.header())).body.big).toHaveLength(10_000);
      const main = jar.cookies.get('session')!;
      const tag = main.split('~')[2]!;
      jar.cookies.set('session', main.replace(`~${tag}~`, `~${tag[0] === 'A' ? 'B' : 'A'}${tag.slice(1)}~`));
      const res = await request(http).get('/all').set('Cookie', jar.header()).expect(200);
      expect(res.body).toEqual({});
    });

    it('two saves in one response expire the chunks the second no longer needs', async () => {
      const jar = new Jar();
      const res = await request(http)
        .post('/set-twice')
        .send({ first: text(10_000), second: 'small' })
        .expect(201);
      jar.apply(res);
      expect(jar.names()).toEqual(['session']);
      expect((await request(http).get('/all').set('Cookie', jar.header())).body).toEqual({ big: 'small' });
    });

    itRefusesWhatJsonWouldChange(() => ({ http, logger }));

    it('a request that loaded the session before a logout does not seal it again after it', async () => {
      const jar = new Jar().apply(await request(http).post('/login').send({ user: 'ann' }));
      const before = jar.header();
      const [arrived, release] = [new Latch(), new Latch()];
      arrivals.set('cookie-logout', arrived);
      latches.set('cookie-logout', release);
      const slow = request(http)
        .post('/set/late')
        .set('Cookie', before)
        .send({ value: 1, wait: 'cookie-logout' })
        .then((r) => r);
      await arrived.wait; // the slow request holds the logged-in session
      jar.apply(await request(http).post('/logout').set('Cookie', before).send({}).expect(201));
      release.open();
      const late = await slow;
      expect(late.status).toBe(201);
      expect(setCookies(late)).toEqual([]); // no sealed copy of the logged-in session comes back
      jar.apply(late);
      expect((await request(http).get('/all').set('Cookie', jar.header())).body).toEqual({});
    });

    it('a copy of the cookie from before a logout opens nothing in the process that saw the logout', async () => {
      const copy = sessionCookie(await request(http).post('/login').send({ user: 'bob' }));
      expect((await request(http).get('/all').set('Cookie', copy)).body).toEqual({ user: 'bob' });
      await request(http).post('/logout').set('Cookie', copy).send({}).expect(201);
      const replay = await request(http).get('/read').set('Cookie', copy).expect(200);
      expect(replay.body.isNew).toBe(true);
    });

    it('a value JSON cannot hold fails the save, naming the key, instead of vanishing', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      const res = await request(http).post('/unserialisable').set('Cookie', cookie).expect(500);
      expect(setCookies(res)).toEqual([]);
      expect(logger.messages('error').join('\n')).toMatch(/Session key "big" holds a value that cannot be serialised/);
    });

    it('a 100 KB session fails with SessionTooLargeError before any header, and the previous cookie still works', async () => {
      const jar = new Jar().apply(await request(http).post('/write').send({ value: 'before' }));
      const res = await request(http)
        .post('/set/huge')
        .set('Cookie', jar.header())
        .send({ value: text(100_000) })
        .expect(500);
      expect(setCookies(res)).toEqual([]);
      const errors = logger.messages('error').join('\n');
      expect(errors).toMatch(/SessionTooLargeError|too large/);
      expect(errors).toMatch(
        /its token is \d{6} bytes, and 4 cookies of 4096 bytes \(with these cookie attributes\) can carry at most \d+ bytes/,
      );
      expect((await request(http).get('/all').set('Cookie', jar.header())).body).toEqual({ value: 'before' });
    });

    it('destroy() expires every chunk', async () => {
      const jar = new Jar().apply(
        await request(http)
          .post('/set/big')
          .send({ value: text(10_000) }),
      );
      const res = await request(http).post('/logout').set('Cookie', jar.header()).send({}).expect(201);
      const expired = setCookies(res)
        .filter(isExpiry)
        .map((h) => h.split('=')[0]);
      expect(expired.sort()).toEqual(['session', 'session.1', 'session.2', 'session.3']);
      jar.apply(res);
      expect(jar.names()).toEqual([]);
    });

    it('responses that set the cookie say Vary: Cookie and Cache-Control: no-store, unless the handler chose', async () => {
      const plain = await request(http).post('/write').send({ value: 1 });
      expect(plain.headers['cache-control']).toBe('no-store');
      expect(plain.headers['vary']).toBe('Cookie');
      const cached = await request(http).post('/cached').expect(201);
      expect(sessionSetCookies(cached)).toHaveLength(1);
      expect(cached.headers['cache-control']).toBe('private, max-age=60');
      expect(cached.headers['vary']).toBe('Cookie');
    });
  });

  describe('the cookie store: secrets and names', () => {
    const apps: INestApplication[] = [];
    afterEach(async () => {
      await Promise.all(apps.splice(0).map((a) => a.close()));
      vi.useRealTimers();
    });
    async function make(...args: Parameters<typeof createApp>) {
      const app = await createApp(...args);
      apps.push(app);
      return app.getHttpServer();
    }

    it('rotation: an older secret opens and is re-sealed with the newest, even on a read-only request', async () => {
      const before = await make(OTHER_SECRET);
      const oldCookie = sessionCookie(await request(before).post('/write').send({ value: 'kept' }));
      const rotated = await make([SECRET, OTHER_SECRET]);
      const read = await request(rotated).get('/read').set('Cookie', oldCookie).expect(200);
      expect(read.body.value).toBe('kept');
      expect(sessionSetCookies(read)).toHaveLength(1);
      const resealed = sessionCookie(read);
      expect(resealed).not.toBe(oldCookie);
      // The re-sealed cookie opens with the new secret alone; once re-sealed, no further Set-Cookie.
      const newOnly = await make(SECRET);
      expect((await request(newOnly).get('/read').set('Cookie', resealed)).body.value).toBe('kept');
      expect(setCookies(await request(rotated).get('/read').set('Cookie', resealed))).toEqual([]);
      // Removing the old secret makes its cookies open as empty sessions.
      const res = await request(newOnly).get('/read').set('Cookie', oldCookie).expect(200);
      expect(res.body).toMatchObject({ value: null, isNew: true });
    });

    it('a cookie replayed under another cookie name does not open', async () => {
      const a = await make({ secret: SECRET, cookie: { name: 'a' } });
      const b = await make({ secret: SECRET, cookie: { name: 'b' } });
      const cookie = sessionCookie(await request(a).post('/write').send({ value: 1 }), 'a');
      expect((await request(a).get('/read').set('Cookie', cookie)).body.value).toBe(1);
      const replayed = `b=${cookie.slice(2)}`;
      expect((await request(b).get('/read').set('Cookie', replayed)).body).toMatchObject({ value: null, isNew: true });
    });

    it('expiry comes from the seal, not the cookie: an old cookie sent again after maxAge is empty', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const http = await make({ secret: SECRET, maxAge: 60 });
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      vi.setSystemTime(Date.now() + 61_000);
      const res = await request(http).get('/read').set('Cookie', cookie).expect(200);
      expect(res.body.isNew).toBe(true);
      expect(isExpiry(sessionSetCookies(res)[0]!)).toBe(true);
    });

    it('a cookie issued in the future (beyond the clock skew) is refused', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const http = await make(SECRET);
      vi.setSystemTime(Date.now() + 10 * 60_000);
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      vi.setSystemTime(Date.now() - 10 * 60_000);
      expect((await request(http).get('/read').set('Cookie', cookie)).body.isNew).toBe(true);
    });

    it('a custom serializer is used both ways', async () => {
      const serializer: SessionSerializer = {
        stringify: (data) => `v1:${JSON.stringify(data)}`,
        parse: (text) => {
          if (!text.startsWith('v1:')) throw new Error('not mine');
          return JSON.parse(text.slice(3));
        },
      };
      const store = new CookieSessionStore({ serializer });
      const stringify = vi.spyOn(serializer, 'stringify');
      const parse = vi.spyOn(serializer, 'parse');
      const http = await make({ secret: SECRET, store });
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 'ünï' }));
      expect((await request(http).get('/read').set('Cookie', cookie)).body.value).toBe('ünï');
      expect(stringify).toHaveBeenCalledTimes(1);
      expect(parse).toHaveBeenCalledTimes(1);
    });

    it('maxChunks 1 refuses what does not fit in one cookie', async () => {
      const http = await make({ secret: SECRET, store: new CookieSessionStore({ maxChunks: 1 }) });
      await request(http)
        .post('/set/a')
        .send({ value: text(2_000) })
        .expect(201);
      await request(http)
        .post('/set/a')
        .send({ value: text(5_000) })
        .expect(500);
    });

    it('bad store options are refused with a clear message', () => {
      expect(() => new CookieSessionStore({ maxChunks: 0 })).toThrow(SessionsConfigError);
      expect(() => new CookieSessionStore({ maxChunks: 21 })).toThrow(/maxChunks must be a whole number from 1 to 20/);
      expect(() => new CookieSessionStore({ serializer: {} as SessionSerializer })).toThrow(/serializer needs/);
    });
  });
});
