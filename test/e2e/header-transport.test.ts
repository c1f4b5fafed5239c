import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CookieSessionStore, InMemorySessionStore, SessionsConfigError, type SessionStore } from '../../src/index.js';
import { resolveSessionsConfig } from '../../src/sessions.options.js';
import { createApp, PLATFORMS, RecordingLogger, SECRET, sessionCookie, setCookies } from '../fixtures/app.js';

const HEADER = 'x-session-id';

describe.each(PLATFORMS)('the header transport on %s', (platform) => {
  describe.each([
    ['in-memory', () => new InMemorySessionStore() as SessionStore, /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/],
    ['cookie', () => new CookieSessionStore() as SessionStore, /^[A-Za-z0-9_-]{100,}$/],
  ])('with the %s store', (storeName, makeStore, tokenShape) => {
    let app: INestApplication;
    let http: ReturnType<INestApplication['getHttpServer']>;
    let logger: RecordingLogger;
    beforeAll(async () => {
      logger = new RecordingLogger();
      app = await createApp({ secret: SECRET, store: makeStore(), transport: { header: 'X-Session-Id' } }, { platform, logger });
      http = app.getHttpServer();
    });
    afterAll(() => app.close());

    it('round trip: the token comes back in the response header, and no cookie is set', async () => {
      const write = await request(http).post('/write').send({ value: 'by header' }).expect(201);
      const token = write.headers[HEADER] as string;
      expect(token).toMatch(tokenShape);
      expect(setCookies(write)).toEqual([]);
      expect(write.headers['vary']).toMatch(/x-session-id/i);
      expect(write.headers['cache-control']).toBe('no-store');
      const read = await request(http).get('/read').set(HEADER, token).expect(200);
      expect(read.body).toMatchObject({ value: 'by header', isNew: false });
    });

    it('a read-only request sends no header', async () => {
      const token = (await request(http).post('/write').send({ value: 1 })).headers[HEADER] as string;
      const read = await request(http).get('/read').set(HEADER, token).expect(200);
      expect(read.headers[HEADER]).toBeUndefined();
    });

    it(storeName === 'cookie' ? 'a change sends the new sealed token' : 'a change keeps the token, so no header is sent', async () => {
      const token = (await request(http).post('/write').send({ value: 1 })).headers[HEADER] as string;
      const write = await request(http).post('/write').set(HEADER, token).send({ value: 2 }).expect(201);
      if (storeName === 'cookie') {
        expect(write.headers[HEADER]).toMatch(tokenShape);
        expect(write.headers[HEADER]).not.toBe(token);
      } else {
        expect(write.headers[HEADER]).toBeUndefined();
      }
      const next = (write.headers[HEADER] as string | undefined) ?? token;
      expect((await request(http).get('/read').set(HEADER, next)).body.value).toBe(2);
    });

    it('a cookie is ignored when the header transport is on', async () => {
      const cookieApp = await createApp({ secret: SECRET, store: makeStore() }, { platform });
      try {
        const cookie = sessionCookie(await request(cookieApp.getHttpServer()).post('/write').send({ value: 'cookie' }));
        const res = await request(http).get('/read').set('Cookie', cookie).expect(200);
        expect(res.body).toMatchObject({ value: null, isNew: true });
        expect(setCookies(res)).toEqual([]);
        // And the other way round: the cookie transport ignores the header.
        const token = (await request(http).post('/write').send({ value: 'header' })).headers[HEADER] as string;
        const other = await request(cookieApp.getHttpServer()).get('/read').set(HEADER, token).expect(200);
        expect(other.body).toMatchObject({ value: null, isNew: true });
      } finally {
        await cookieApp.close();
      }
    });

    it('destroy() answers with an empty header: the client drops its token', async () => {
      const token = (await request(http).post('/login').send({ user: 'ann' })).headers[HEADER] as string;
      const out = await request(http).post('/logout').set(HEADER, token).send({}).expect(201);
      expect(out.headers[HEADER]).toBe('');
      if (storeName !== 'cookie') expect((await request(http).get('/read').set(HEADER, token)).body.isNew).toBe(true);
    });

    it('a bad token gives a new session and an empty header', async () => {
      const res = await request(http).get('/read').set(HEADER, 'garbage').expect(200);
      expect(res.body.isNew).toBe(true);
      expect(res.headers[HEADER]).toBe('');
    });
  });

  it('the cookie store binds the sealed token to the header name', async () => {
    const a = await createApp({ secret: SECRET, transport: { header: 'x-a' } }, { platform });
    const b = await createApp({ secret: SECRET, transport: { header: 'x-b' } }, { platform });
    try {
      const token = (await request(a.getHttpServer()).post('/write').send({ value: 1 })).headers['x-a'] as string;
      expect((await request(a.getHttpServer()).get('/read').set('x-a', token)).body.value).toBe(1);
      expect((await request(b.getHttpServer()).get('/read').set('x-b', token)).body.isNew).toBe(true);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a sealed session too large for a header fails with SessionTooLargeError, before any header', async () => {
    const logger = new RecordingLogger();
    const app = await createApp({ secret: SECRET, transport: { header: 'x-session-id' } }, { platform, logger });
    try {
      const res = await request(app.getHttpServer())
        .post('/set/big')
        .send({ value: 'x'.repeat(10_000) })
        .expect(500);
      expect(res.headers[HEADER]).toBeUndefined();
      expect(logger.messages('error').join('\n')).toMatch(/its token is \d+ bytes, and the x-session-id header can carry at most 8192/);
    } finally {
      await app.close();
    }
  });
});

describe('transport option', () => {
  it.each([
    [{ header: 'cookie' }, /cannot be "cookie"/],
    [{ header: 'Set-Cookie' }, /cannot be "set-cookie"/],
    [{ header: 'x session' }, /not a valid header name/],
    [{ header: '' }, /not a valid header name/],
    ['header', /transport must be 'cookie' or \{ header: 'x-session-id' \}/],
    [{ name: 'x' }, /transport must be/],
  ])('%j is refused', (transport, message) => {
    expect(() => resolveSessionsConfig({ secret: SECRET, transport: transport as never })).toThrow(SessionsConfigError);
    expect(() => resolveSessionsConfig({ secret: SECRET, transport: transport as never })).toThrow(message);
  });

  it('header names are matched without case', () => {
    expect(resolveSessionsConfig({ secret: SECRET, transport: { header: 'X-Session-Id' } }).header).toBe('x-session-id');
    expect(resolveSessionsConfig({ secret: SECRET, transport: 'cookie' }).header).toBeUndefined();
  });
});
