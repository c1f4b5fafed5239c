import { Body, Controller, Get, Header, Post, UseInterceptors, type INestApplication } from '@nestjs/common';
import { AnyFilesInterceptor } from '@nestjs/platform-express';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { InMemorySessionStore, Session, SkipCsrf, type SessionsModuleOptions } from '../../src/index.js';
import {
  appOn,
  CountingStore,
  AuthService,
  ChainController,
  MarksAfterInterceptor,
  SignsInGuard,
  GuardedController,
  LoadsSessionGuard,
  PLATFORMS,
  ProbeController,
  SECRET,
  cookieAfter,
  sessionCookie,
  setCookies,
  VisitsModule,
} from '../fixtures/app.js';

/** Pages that issue tokens, and the lifecycle calls that replace them. */
@Controller('forms')
class FormsController {
  @Get('token')
  token(@Session() session: Session) {
    return { token: session.csrfToken() };
  }

  @Get('page')
  @Header('content-type', 'text/html; charset=utf-8')
  page(@Session() session: Session) {
    return `<form method="post" action="/write"><input type="hidden" name="_csrf" value="${session.csrfToken()}"><input name="value" value="x"></form>`;
  }

  @Post('login')
  login(@Session() session: Session<{ user: string }>, @Body() body: { user: string }) {
    session.regenerate();
    session.set('user', body.user);
    return { token: session.csrfToken() };
  }

  /** A new ID, and no token issued in this request: the next ones are derived from the new ID. */
  @Post('renew')
  renew(@Session() session: Session) {
    session.regenerate();
    return { ok: true };
  }

  @Post('logout')
  logout(@Session() session: Session) {
    session.destroy();
    return { ok: true };
  }

  /** A multipart form (Express): its fields are parsed by an interceptor inside the sessions interceptor. */
  @Post('upload')
  @UseInterceptors(AnyFilesInterceptor())
  upload(@Session() session: Session, @Body() body: { note?: string }) {
    session.set('note', body.note);
    return { ok: true };
  }

  @Post('hook')
  @SkipCsrf()
  hook(@Session() session: Session) {
    session.set('hook', true);
    return { ok: true };
  }
}

const STORES = ['cookie', 'memory'] as const;

describe.each(PLATFORMS)('anti-forgery tokens on %s', (platform) => {
  describe.each(STORES)('with the %s store and requireToken', (storeKind) => {
    let app: INestApplication;
    let http: ReturnType<INestApplication['getHttpServer']>;
    const options = (extra: Partial<SessionsModuleOptions> = {}): SessionsModuleOptions => ({
      secret: SECRET,
      csrf: { requireToken: true, trustedOrigins: ['https://front.example.com'] },
      ...(storeKind === 'memory' ? { store: new InMemorySessionStore() } : {}),
      ...extra,
    });

    beforeAll(async () => {
      app = await appOn(platform)(options(), {
        controllers: [ProbeController, GuardedController, FormsController, ChainController],
        providers: [LoadsSessionGuard, AuthService, SignsInGuard, MarksAfterInterceptor],
        imports: [VisitsModule],
      });
      http = app.getHttpServer();
      await app.init();
    });
    afterAll(() => app.close());

    /** A session with a token, as a page that renders a form would start one. */
    const visit = async () => {
      const res = await request(http).get('/forms/token').expect(200);
      return { cookie: sessionCookie(res), token: res.body.token as string };
    };
    const data = async (cookie: string) =>
      (await request(http).get('/all').set('Cookie', cookie).expect(200)).body as Record<string, unknown>;

    it('the first token starts a session; GET needs no token', async () => {
      const { cookie, token } = await visit();
      expect(token).toMatch(/^[A-Za-z0-9_-]{86}$/);
      expect(await data(cookie)).toEqual({}); // the secret is not part of the data
    });

    it('a state-changing request without a token is refused with a 403 that says why', async () => {
      const { cookie } = await visit();
      const res = await request(http).post('/write').set('Cookie', cookie).send({ value: 'forged' }).expect(403);
      expect(res.body.message).toBe('Request refused: no anti-forgery token in the x-csrf-token header or the _csrf field');
      expect(setCookies(res)).toEqual([]);
      expect(await data(cookie)).toEqual({});
    });

    it('the token is accepted in the x-csrf-token header, a form field, and a JSON body field; each issue differs', async () => {
      const { cookie, token } = await visit();
      let current = cookie;
      const second = (await request(http).get('/forms/token').set('Cookie', cookie).expect(200)).body.token as string;
      expect(second).not.toBe(token);
      const sends = [
        (r: request.Test) => r.set('x-csrf-token', token).send({ value: 'header' }),
        (r: request.Test) => r.type('form').send(`value=form&_csrf=${second}`),
        (r: request.Test) => r.send({ value: 'json', _csrf: token }),
      ];
      for (const [i, send] of sends.entries()) {
        const res = await send(request(http).post('/write').set('Cookie', current)).expect(201);
        if (setCookies(res).length > 0) current = sessionCookie(res); // the cookie store re-seals on every save
        expect((await data(current)).value).toBe(['header', 'form', 'json'][i]);
      }
    });

    it('a form rendered with the token posts through', async () => {
      const page = await request(http).get('/forms/page').expect(200);
      const token = /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;
      const res = await request(http)
        .post('/write')
        .set('Cookie', sessionCookie(page))
        .type('form')
        .send({ value: 'from the form', _csrf: token })
        .expect(201);
      expect((await data(cookieAfter(res, sessionCookie(page)))).value).toBe('from the form');
    });

    it.each([
      ['a tampered token', async (t: string) => `${t.slice(0, 10)}${t[10] === 'A' ? 'B' : 'A'}${t.slice(11)}`],
      ['a truncated token', async (t: string) => t.slice(0, -1)],
      ['an oversize token', async (t: string) => t.repeat(50)],
      ['a token of another session', async () => (await visit()).token],
    ])('%s is refused: no cookie is set and nothing is written', async (_name, alter) => {
      const { cookie, token } = await visit();
      const presented = await alter(token);
      const res = await request(http)
        .post('/write')
        .set('Cookie', cookie)
        .set('x-csrf-token', presented)
        .send({ value: 'forged' })
        .expect(403);
      expect(res.body.message).toBe('Request refused: the anti-forgery token does not match this session');
      expect(setCookies(res)).toEqual([]);
      expect(await data(cookie)).toEqual({});
    });

    it('a token from before login is refused after it (regenerate replaces the secret); the new one works', async () => {
      const { cookie, token } = await visit();
      const login = await request(http)
        .post('/forms/login')
        .set('Cookie', cookie)
        .set('x-csrf-token', token)
        .send({ user: 'alice' })
        .expect(201);
      const after = sessionCookie(login);
      const res = await request(http).post('/write').set('Cookie', after).set('x-csrf-token', token).send({ value: 'forged' }).expect(403);
      expect(res.body.message).toMatch(/does not match this session/);
      await request(http).post('/write').set('Cookie', after).set('x-csrf-token', login.body.token).send({ value: 'mine' }).expect(201);
    });

    it("a stored session's tokens cost no write, and requests asking at once all get valid ones", async () => {
      const { cookie, token } = await visit();
      const renewed = sessionCookie(await request(http).post('/forms/renew').set('Cookie', cookie).set('x-csrf-token', token).expect(201));
      const answers = await Promise.all(
        Array.from({ length: 4 }, () => request(http).get('/forms/token').set('Cookie', renewed).expect(200)),
      );
      for (const res of answers) {
        expect(setCookies(res)).toEqual([]); // derived from the session's ID: nothing to store
        await request(http).post('/write').set('Cookie', renewed).set('x-csrf-token', res.body.token).send({ value: 'ok' }).expect(201);
      }
      // The token from before the new ID is refused.
      await request(http).post('/write').set('Cookie', renewed).set('x-csrf-token', token).send({ value: 'old' }).expect(403);
    });

    it('after logout, the old cookie and its token are refused together (replay)', async () => {
      const { cookie, token } = await visit();
      await request(http).post('/forms/logout').set('Cookie', cookie).set('x-csrf-token', token).expect(201);
      const res = await request(http)
        .post('/write')
        .set('Cookie', cookie)
        .set('x-csrf-token', token)
        .send({ value: 'replayed' })
        .expect(403);
      expect(res.body.message).toMatch(/came without a session/);
    });

    it('a guard that loads the session is refused without the token, and passes with it', async () => {
      const { cookie, token } = await visit();
      await request(http).post('/guarded/count/1').set('Cookie', cookie).expect(403);
      await request(http).post('/guarded/count/2').set('Cookie', cookie).set('x-csrf-token', token).expect(201);
    });

    it('a middleware that loads the session needs the token: in the header on both platforms, in a form field only where the body is parsed before middleware (Express)', async () => {
      const { cookie, token } = await visit();
      await request(http).post('/chain/middleware').set('Cookie', cookie).expect(403);
      const res = await request(http).post('/chain/middleware').set('Cookie', cookie).set('x-csrf-token', token).expect(201);
      const form = await request(http).post('/chain/middleware').set('Cookie', cookie).type('form').send({ _csrf: token });
      expect(form.status).toBe(platform === 'express' ? 201 : 403);
      const saved = setCookies(res).length > 0 ? sessionCookie(res) : cookie;
      expect((await data(saved)).visits).toBeGreaterThanOrEqual(1);
    });

    // Fastify has no multipart parser of its own.
    if (platform === 'express')
      it('a multipart form: the token must come in the header, its fields are parsed too late', async () => {
        const { cookie, token } = await visit();
        const refused = await request(http)
          .post('/forms/upload')
          .set('Cookie', cookie)
          .field('_csrf', token)
          .field('note', 'n')
          .expect(403);
        expect(refused.body.message).toMatch(/no anti-forgery token/);
        await request(http).post('/forms/upload').set('Cookie', cookie).set('x-csrf-token', token).field('note', 'n').expect(201);
      });

    it('@SkipCsrf() needs no token; a trusted origin still does', async () => {
      const { cookie, token } = await visit();
      await request(http)
        .post('/forms/hook')
        .set('Cookie', cookie)
        .set({ 'sec-fetch-site': 'cross-site', origin: 'http://evil.example' })
        .expect(201);
      const front = { 'sec-fetch-site': 'cross-site', origin: 'https://front.example.com' };
      await request(http).post('/write').set('Cookie', cookie).set(front).send({ value: 1 }).expect(403);
      await request(http).post('/write').set('Cookie', cookie).set(front).set('x-csrf-token', token).send({ value: 1 }).expect(201);
    });

    it('a cross-site request is refused for its headers even with a valid token', async () => {
      const { cookie, token } = await visit();
      const res = await request(http)
        .post('/write')
        .set('Cookie', cookie)
        .set({ origin: 'http://evil.example', 'x-csrf-token': token })
        .send({ value: 1 })
        .expect(403);
      expect(res.body.message).toMatch(/Origin http:\/\/evil\.example is not this app's origin/);
    });
  });

  describe('what is read and written', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('a request without a token never reads the store; one with a wrong token reads it and writes nothing, even when a refresh is due', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const store = new CountingStore();
      const app = await appOn(platform)(
        { secret: SECRET, store, rolling: true, touchAfter: 0, csrf: { requireToken: true } },
        { controllers: [ProbeController, FormsController] },
      );
      try {
        const http = app.getHttpServer();
        const res = await request(http).get('/forms/token').expect(200);
        const cookie = sessionCookie(res);
        vi.setSystemTime(Date.now() + 10_000);
        const before = { ...store.calls };
        await request(http).post('/write').set('Cookie', cookie).send({ value: 1 }).expect(403);
        expect(store.calls).toEqual(before);
        await request(http).post('/write').set('Cookie', cookie).set('x-csrf-token', 'A'.repeat(86)).send({ value: 1 }).expect(403);
        expect(store.calls).toEqual({ ...before, load: before.load + 1 });
        // The same request with its token refreshes and writes.
        await request(http).post('/write').set('Cookie', cookie).set('x-csrf-token', res.body.token).send({ value: 1 }).expect(201);
        expect(store.writes()).toBeGreaterThan(before.create + before.update + before.touch + before.destroy);
      } finally {
        await app.close();
      }
    });

    it('a token is refused once its session has expired', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const app = await appOn(platform)(
        { secret: SECRET, maxAge: 60, csrf: { requireToken: true } },
        { controllers: [ProbeController, FormsController] },
      );
      try {
        const http = app.getHttpServer();
        const res = await request(http).get('/forms/token').expect(200);
        const cookie = sessionCookie(res);
        vi.setSystemTime(Date.now() + 61_000);
        const late = await request(http)
          .post('/write')
          .set('Cookie', cookie)
          .set('x-csrf-token', res.body.token)
          .send({ value: 1 })
          .expect(403);
        expect(late.body.message).toMatch(/came without a session/);
      } finally {
        await app.close();
      }
    });

    it('without requireToken (the default), tokens are issued and not required', async () => {
      const app = await appOn(platform)({ secret: SECRET }, { controllers: [ProbeController, FormsController] });
      try {
        const http = app.getHttpServer();
        const cookie = sessionCookie(await request(http).get('/forms/token').expect(200));
        await request(http).post('/write').set('Cookie', cookie).send({ value: 1 }).expect(201);
        await request(http).post('/write').set('Cookie', cookie).set('x-csrf-token', 'wrong').send({ value: 1 }).expect(201);
      } finally {
        await app.close();
      }
    });

    it('tokenHeader and tokenField name where the token comes from', async () => {
      const app = await appOn(platform)(
        {
          secret: SECRET,
          store: new InMemorySessionStore(),
          csrf: { requireToken: true, tokenHeader: 'X-XSRF-TOKEN', tokenField: 'authenticity_token' },
        },
        { controllers: [ProbeController, FormsController] },
      );
      try {
        const http = app.getHttpServer();
        const res = await request(http).get('/forms/token').expect(200);
        const cookie = sessionCookie(res);
        const refused = await request(http)
          .post('/write')
          .set('Cookie', cookie)
          .set('x-csrf-token', res.body.token)
          .send({ value: 1 })
          .expect(403);
        expect(refused.body.message).toMatch(/no anti-forgery token in the x-xsrf-token header or the authenticity_token field/);
        await request(http).post('/write').set('Cookie', cookie).set('x-xsrf-token', res.body.token).send({ value: 1 }).expect(201);
        await request(http)
          .post('/write')
          .set('Cookie', cookie)
          .type('form')
          .send({ value: 2, authenticity_token: res.body.token })
          .expect(201);
      } finally {
        await app.close();
      }
    });
  });
});
