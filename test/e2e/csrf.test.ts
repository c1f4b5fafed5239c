import { Controller, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InMemorySessionStore, Session, SkipCsrf } from '../../src/index.js';
import {
  appOn,
  GuardedController,
  HooksController,
  LoadsSessionGuard,
  PLATFORMS,
  ProbeController,
  RecordingLogger,
  SECRET,
  sessionCookie,
  setCookies,
  VisitsModule,
  ChainController,
  AuthService,
  SignsInGuard,
  MarksAfterInterceptor,
  CountingStore,
} from '../fixtures/app.js';

const EVIL = 'http://evil.example';

/** Every handler of this controller is open to other sites. */
@Controller('open-hooks')
@SkipCsrf()
class OpenHooksController {
  @Post('any')
  any(@Session() session: Session) {
    session.set('open', true);
    return { ok: true };
  }
}

describe.each(PLATFORMS)('cross-site request protection on %s', (platform) => {
  const createApp = appOn(platform);
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let logger: RecordingLogger;
  let own: string;

  beforeAll(async () => {
    logger = new RecordingLogger();
    app = await createApp(
      { secret: SECRET, csrf: { trustedOrigins: ['https://front.example.com'] } },
      {
        logger,
        controllers: [ProbeController, GuardedController, HooksController, ChainController, OpenHooksController],
        providers: [LoadsSessionGuard, AuthService, SignsInGuard, MarksAfterInterceptor],
        imports: [VisitsModule],
      },
    );
    http = app.getHttpServer();
    await app.listen(0, '127.0.0.1');
    own = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
  });
  afterAll(() => app.close());

  const login = async () => sessionCookie(await request(http).post('/write').send({ value: 'mine' }).expect(201));

  it.each([
    [
      'Sec-Fetch-Site: cross-site',
      { 'sec-fetch-site': 'cross-site', origin: EVIL },
      /Sec-Fetch-Site is cross-site and Origin http:\/\/evil\.example is not a trusted origin/,
    ],
    [
      'Sec-Fetch-Site: same-site (another port of the host)',
      { 'sec-fetch-site': 'same-site', origin: 'http://127.0.0.1:1' },
      /Sec-Fetch-Site is same-site/,
    ],
    ['an Origin of another site, without Sec-Fetch-Site', { origin: EVIL }, /Origin http:\/\/evil\.example is not this app's origin/],
    ['Origin null', { origin: 'null' }, /Origin null is not this app's origin/],
  ])('%s: a 403 that says why, and the session is neither read nor changed', async (_name, headers, why) => {
    const cookie = await login();
    const res = await request(http).post('/write').set('Cookie', cookie).set(headers).send({ value: 'forged' }).expect(403);
    expect(res.body.message).toMatch(why);
    expect(setCookies(res)).toEqual([]);
    expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({ value: 'mine' });
  });

  it.each([
    ['Sec-Fetch-Site: same-origin', () => ({ 'sec-fetch-site': 'same-origin', origin: own })],
    ['Sec-Fetch-Site: none', () => ({ 'sec-fetch-site': 'none' })],
    ['its own Origin, without Sec-Fetch-Site', () => ({ origin: own })],
    ['a trusted origin, cross-site', () => ({ 'sec-fetch-site': 'cross-site', origin: 'https://front.example.com' })],
    ['neither header (not a browser)', () => ({})],
  ])('%s: passes', async (_name, headers) => {
    const cookie = await login();
    const res = await request(http).post('/write').set('Cookie', cookie).set(headers()).send({ value: 'changed' }).expect(201);
    // The cookie store: the new data is in the new cookie.
    expect((await request(http).get('/all').set('Cookie', sessionCookie(res))).body).toEqual({ value: 'changed' });
  });

  it('GET is never refused, whatever the headers', async () => {
    const cookie = await login();
    const res = await request(http).get('/read').set('Cookie', cookie).set({ 'sec-fetch-site': 'cross-site', origin: EVIL }).expect(200);
    expect(res.body.value).toBe('mine');
  });

  it('@SkipCsrf() on a handler or on its controller lets a webhook through, with its session', async () => {
    const cookie = await login();
    for (const path of ['/hooks/payment', '/open-hooks/any']) {
      await request(http).post(path).set('Cookie', cookie).set({ 'sec-fetch-site': 'cross-site', origin: EVIL }).expect(201);
    }
  });

  it('a middleware that loads the session is refused too', async () => {
    const cookie = await login();
    const res = await request(http).post('/chain/middleware').set('Cookie', cookie).set({ origin: EVIL });
    expect(res.status).toBe(403);
    expect(res.body.message).toMatch(/Cross-site request refused/);
  });

  it('a refused request never reads the store, and the refusal is logged at debug level', async () => {
    const store = new CountingStore();
    const other = await createApp({ secret: SECRET, store }, { logger });
    try {
      const cookie = sessionCookie(await request(other.getHttpServer()).post('/write').send({ value: 1 }).expect(201));
      const loads = store.calls.load;
      await request(other.getHttpServer()).post('/write').set('Cookie', cookie).set({ origin: EVIL }).send({ value: 2 }).expect(403);
      expect(store.calls.load).toBe(loads);
      expect(logger.messages('debug').join('\n')).toMatch(/Cross-site request refused \(POST \/write\): Origin http:\/\/evil\.example/);
    } finally {
      await other.close();
    }
  });

  it('a guard that loads the session is refused before it reads it, as is a middleware', async () => {
    const cookie = await login();
    await request(http).post('/guarded/count/1?mark=forged').set('Cookie', cookie).set({ origin: EVIL }).expect(403);
    const res = await request(http).post('/chain/late-load').set('Cookie', cookie).set({ origin: EVIL }).send({ save: true });
    expect(res.status).toBe(403);
    expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({ value: 'mine' });
  });

  it('is off with csrf: false, and with the header transport', async () => {
    for (const options of [
      { secret: SECRET, csrf: false as const },
      { secret: SECRET, store: new InMemorySessionStore(), transport: { header: 'x-session-id' } },
    ]) {
      const other = await createApp(options);
      try {
        await request(other.getHttpServer())
          .post('/write')
          .set({ 'sec-fetch-site': 'cross-site', origin: EVIL })
          .send({ value: 1 })
          .expect(201);
      } finally {
        await other.close();
      }
    }
  });
});
