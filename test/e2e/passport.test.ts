import { inspect } from 'node:util';
import {
  Controller,
  Get,
  Injectable,
  Post,
  Req,
  Res,
  UnauthorizedException,
  UseGuards,
  type ExecutionContext,
  type INestApplication,
} from '@nestjs/common';
import { AuthGuard, PassportModule, PassportSerializer, PassportStrategy } from '@nestjs/passport';
import passport from 'passport';
import { Strategy } from 'passport-local';
import { createClient } from 'redis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CookieSessionStore,
  expressSession,
  InMemorySessionStore,
  RedisSessionStore,
  Session,
  SkipCsrf,
  type ExpressSession,
  type SessionStore,
} from '../../src/index.js';
import { ANN, AuthenticatedGuard, FlakyStore, SecondGuard, type User } from '../fixtures/passport.js';
import { deleteRunKeys, REDIS_PORT, requireServer, runId } from '../stores/services.js';
import { cookieAfter, createApp, isExpiry, Jar, RecordingLogger, SECRET, sessionCookie, sessionSetCookies } from '../fixtures/app.js';

const USERS = [ANN];

@Injectable()
class LocalStrategy extends PassportStrategy(Strategy) {
  validate(username: string, password: string): User {
    const user = USERS.find((u) => u.name === username && u.password === password);
    if (!user) throw new UnauthorizedException();
    return { id: user.id, name: user.name };
  }
}

/** What Passport keeps in the session: the user's ID. */
@Injectable()
class SessionSerializer extends PassportSerializer {
  serializeUser(user: User, done: (err: unknown, id?: number) => void): void {
    done(null, user.id);
  }
  deserializeUser(id: number, done: (err: unknown, user?: User | false) => void): void {
    const user = USERS.find((u) => u.id === id);
    done(null, user ? { id: user.id, name: user.name } : false);
  }
}

/** The guard of Nest's Passport recipe: authenticate, then log in (which regenerates the session). */
@Injectable()
class LoginGuard extends AuthGuard('local') {
  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const result = (await super.canActivate(context)) as boolean;
    await super.logIn(context.switchToHttp().getRequest());
    return result;
  }
}

/** As LoginGuard, with Passport's keepSessionInfo: what the session held before login is kept. */
@Injectable()
class KeepingLoginGuard extends AuthGuard('local') {
  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const result = (await super.canActivate(context)) as boolean;
    const req = context.switchToHttp().getRequest<PassportRequest>();
    await new Promise<void>((resolve, reject) =>
      req.logIn(req.user!, { keepSessionInfo: true }, (err) => (err ? reject(err as Error) : resolve())),
    );
    return result;
  }
}

type PassportRequest = {
  user?: User;
  logIn(user: User, options: { keepSessionInfo: boolean }, done: (err?: unknown) => void): void;
  logout(done: (err?: unknown) => void): void;
  session: Record<string, unknown>;
};

@Controller()
class AuthController {
  @Post('login')
  @UseGuards(LoginGuard)
  login(@Req() req: PassportRequest) {
    return { user: req.user };
  }

  @Post('login-keeping')
  @UseGuards(KeepingLoginGuard)
  loginKeeping(@Req() req: PassportRequest) {
    return { user: req.user };
  }

  @Get('me')
  @UseGuards(AuthenticatedGuard)
  me(@Req() req: PassportRequest, @Session() session: Session) {
    return { user: req.user, cart: session.get('cart') ?? null };
  }

  @Post('logout')
  logout(@Req() req: PassportRequest): Promise<{ ok: true }> {
    return new Promise((resolve, reject) => req.logout((err) => (err ? reject(err as Error) : resolve({ ok: true }))));
  }

  /** A session before login: something put in the cart. */
  @Post('cart')
  addToCart(@Session() session: Session<{ cart: string[] }>) {
    session.set('cart', [...session.get('cart', []), 'apple']);
    return { cart: session.get('cart') };
  }

  /** What req.session holds, as JSON. */
  @Get('raw')
  raw(@Req() req: PassportRequest) {
    return { ...req.session };
  }
}

async function passportApp(store: SessionStore | undefined): Promise<INestApplication> {
  return createApp(
    { secret: SECRET, store },
    {
      imports: [PassportModule.register({ session: true })],
      controllers: [AuthController],
      providers: [LocalStrategy, SessionSerializer],
      beforeInit: (app) => {
        app.use(expressSession(app));
        app.use(passport.session());
      },
    },
  );
}

const redisUp = await requireServer('Redis', REDIS_PORT);
let redis: ReturnType<typeof createClient> | undefined;

const stores: Record<string, { skip?: boolean; make: () => Promise<SessionStore> }> = {
  memory: { make: async () => new InMemorySessionStore() },
  cookie: { make: async () => new CookieSessionStore() },
  redis: {
    skip: !redisUp,
    make: async () => {
      redis ??= await createClient({ socket: { host: '127.0.0.1', port: REDIS_PORT } }).connect();
      return new RedisSessionStore(redis, { prefix: `test:${runId}:passport:` });
    },
  },
};

afterAll(async () => {
  if (redis) {
    await deleteRunKeys();
    redis.destroy();
  }
});

for (const [name, { skip, make }] of Object.entries(stores)) {
  describe.skipIf(skip)(`Passport (@nestjs/passport, passport-local) with the ${name} store, on Express`, () => {
    let app: INestApplication;
    let http: ReturnType<INestApplication['getHttpServer']>;
    beforeAll(async () => {
      app = await passportApp(await make());
      http = app.getHttpServer();
    });
    afterAll(() => app.close());

    const login = (cookie?: string, path = '/login', password = 'ann-password') => {
      const req = request(http).post(path).send({ username: 'ann', password });
      return cookie ? req.set('Cookie', cookie) : req;
    };

    it('logs in with a new session ID, keeps the user across requests, and refuses the pre-login cookie', async () => {
      const cart = await request(http).post('/cart').expect(201);
      const before = sessionCookie(cart);

      const loggedIn = await login(before).expect(201);
      expect(loggedIn.body).toEqual({ user: { id: 7, name: 'ann' } });
      const after = sessionCookie(loggedIn);
      expect(after).not.toBe(before);

      const me = await request(http).get('/me').set('Cookie', after).expect(200);
      // Passport's login regenerates the session, and without keepSessionInfo drops what it held.
      expect(me.body).toEqual({ user: { id: 7, name: 'ann' }, cart: null });
      expect((await request(http).get('/raw').set('Cookie', after).expect(200)).body).toEqual({ passport: { user: 7 } });

      // The cookie from before the login (a planted one, say) is worth nothing now.
      await request(http).get('/me').set('Cookie', before).expect(403);
      expect((await request(http).get('/raw').set('Cookie', before).expect(200)).body).toEqual({});
    });

    it('logs in with keepSessionInfo: a new ID, the data kept', async () => {
      const cart = await request(http).post('/cart').expect(201);
      const before = sessionCookie(cart);
      const loggedIn = await login(before, '/login-keeping').expect(201);
      const after = sessionCookie(loggedIn);
      expect(after).not.toBe(before);
      const me = await request(http).get('/me').set('Cookie', after).expect(200);
      expect(me.body).toEqual({ user: { id: 7, name: 'ann' }, cart: ['apple'] });
      await request(http).get('/me').set('Cookie', before).expect(403);
    });

    it('a wrong password is a 401 and leaves the session as it was', async () => {
      const cart = await request(http).post('/cart').expect(201);
      const before = sessionCookie(cart);
      const refused = await login(before, '/login', 'wrong').expect(401);
      expect(sessionSetCookies(refused)).toEqual([]);
      expect((await request(http).get('/raw').set('Cookie', before).expect(200)).body).toEqual({ cart: ['apple'] });
    });

    it('logs out: the cookie is expired, and the pre-logout cookie no longer logs in', async () => {
      const loggedIn = await login().expect(201);
      const cookie = sessionCookie(loggedIn);
      await request(http).get('/me').set('Cookie', cookie).expect(200);

      const out = await request(http).post('/logout').set('Cookie', cookie).expect(201);
      expect(out.body).toEqual({ ok: true });
      // Passport saves the session without its user, then regenerates it: the last word is an expiry.
      const sent = sessionSetCookies(out);
      expect(sent.length).toBeGreaterThan(0);
      expect(isExpiry(sent.at(-1)!)).toBe(true);

      // A copy of the cookie taken before the logout (replayed by whoever kept it) is refused.
      await request(http).get('/me').set('Cookie', cookie).expect(403);
      expect((await request(http).get('/raw').set('Cookie', cookie).expect(200)).body).toEqual({});
    });

    it('a request without a cookie is not authenticated and sets none', async () => {
      const res = await request(http).get('/me').expect(403);
      expect(sessionSetCookies(res)).toEqual([]);
    });
  });
}

type CompatRequest = { session: ExpressSession & Record<string, unknown>; sessionID?: string };
const call = (fn: (done: (err?: unknown) => void) => unknown) =>
  new Promise<void>((resolve, reject) => void fn((err) => (err ? reject(err as Error) : resolve())));

/** Handlers that use express-session's API on req.session. */
@Controller('api')
class ExpressSessionApiController {
  @Post('set')
  set(@Req() req: CompatRequest) {
    req.session.views = 1;
    req.session.profile = { name: 'ann', tags: ['a'] };
    return { id: req.session.id ?? null };
  }

  @Post('change-in-place')
  changeInPlace(@Req() req: CompatRequest) {
    (req.session.profile as { tags: string[] }).tags.push('b');
    delete req.session.views;
    return { keys: Object.keys(req.session), has: 'views' in req.session, json: JSON.parse(JSON.stringify(req.session)) as unknown };
  }

  @Get('read')
  read(@Req() req: CompatRequest, @Session() session: Session) {
    return {
      data: { ...req.session },
      id: req.session.id ?? null,
      sessionID: req.sessionID ?? null,
      viaDecorator: session.toJSON(),
      inspected: inspect(req.session, { depth: 5, breakLength: Infinity }),
    };
  }

  @Post('save-then-change')
  async saveThenChange(@Req() req: CompatRequest) {
    req.session.saved = true;
    await call((done) => req.session.save(done));
    req.session.after = true; // saved by the interceptor, after the handler
    return {};
  }

  @Post('regenerate')
  async regenerate(@Req() req: CompatRequest) {
    const before = req.session;
    await call((done) => req.session.regenerate(done));
    return {
      same: before === req.session,
      empty: Object.keys(req.session).length === 0,
      oldCopy: { ...before },
      id: req.session.id ?? null,
    };
  }

  @Post('regenerate-and-set')
  async regenerateAndSet(@Req() req: CompatRequest) {
    await call((done) => req.session.regenerate(done));
    req.session.fresh = true;
    return {};
  }

  @Post('destroy')
  async destroy(@Req() req: CompatRequest) {
    await call((done) => req.session.destroy(done));
    return { empty: Object.keys(req.session).length === 0 };
  }

  @Post('reload')
  async reload(@Req() req: CompatRequest) {
    req.session.views = 99;
    await call((done) => req.session.reload(done));
    return { views: req.session.views };
  }

  @Post('touch')
  touch(@Req() req: CompatRequest) {
    req.session.touch();
    return { maxAge: req.session.cookie.maxAge };
  }

  @Post('null')
  assignNull(@Req() req: CompatRequest) {
    (req as { session: unknown }).session = null;
    return {};
  }

  @Post('misuse')
  misuse(@Req() req: CompatRequest) {
    const errors: string[] = [];
    const attempt = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        errors.push((err as Error).message);
      }
    };
    attempt(() => ((req.session as Record<string, unknown>).save = 1));
    attempt(() => ((req.session.cookie as { maxAge: number }).maxAge = 1));
    attempt(() => ((req as { session: unknown }).session = {}));
    return { errors };
  }
}

describe('req.session as express-session gives it (expressSession), on Express with the memory store', () => {
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let store: InMemorySessionStore;
  beforeAll(async () => {
    store = new InMemorySessionStore();
    app = await createApp(
      { secret: SECRET, store },
      { controllers: [ExpressSessionApiController], beforeInit: (a) => void a.use(expressSession(a)) },
    );
    http = app.getHttpServer();
  });
  afterAll(() => app.close());

  async function started(): Promise<string> {
    const res = await request(http).post('/api/set').expect(201);
    expect(res.body).toEqual({ id: null });
    return sessionCookie(res);
  }

  it('reads and writes data as properties; @Session() sees the same session', async () => {
    const cookie = await started();
    const read = await request(http).get('/api/read').set('Cookie', cookie).expect(200);
    expect(read.body.data).toEqual({ views: 1, profile: { name: 'ann', tags: ['a'] } });
    expect(read.body.id).toEqual(expect.any(String));
    expect(read.body.sessionID).toBe(read.body.id);
    expect(read.body.viaDecorator).toEqual(read.body.data);
    // console.log(req.session) shows the data, as it does with express-session.
    expect(read.body.inspected).toBe("{ views: 1, profile: { name: 'ann', tags: [ 'a' ] } }");
  });

  it('saves changes made in place and deletions; keys, `in` and JSON see the data only', async () => {
    const cookie = await started();
    const res = await request(http).post('/api/change-in-place').set('Cookie', cookie).expect(201);
    expect(res.body).toEqual({ keys: ['profile'], has: false, json: { profile: { name: 'ann', tags: ['a', 'b'] } } });
    const read = await request(http).get('/api/read').set('Cookie', cookieAfter(res, cookie)).expect(200);
    expect(read.body.data).toEqual({ profile: { name: 'ann', tags: ['a', 'b'] } });
  });

  it('save(callback) saves at once; what changes after it is saved after the handler', async () => {
    const cookie = await started();
    const res = await request(http).post('/api/save-then-change').set('Cookie', cookie).expect(201);
    const read = await request(http).get('/api/read').set('Cookie', cookieAfter(res, cookie)).expect(200);
    expect(read.body.data).toMatchObject({ saved: true, after: true });
  });

  it('regenerate(callback) gives an empty req.session, ends the old session, keeps a copy on the old object', async () => {
    const cookie = await started();
    const res = await request(http).post('/api/regenerate').set('Cookie', cookie).expect(201);
    expect(res.body).toEqual({ same: false, empty: true, oldCopy: { views: 1, profile: { name: 'ann', tags: ['a'] } }, id: null });
    // Nothing was set afterwards: the old session is gone and its cookie expired.
    expect(isExpiry(sessionSetCookies(res).at(-1)!)).toBe(true);
    expect((await request(http).get('/api/read').set('Cookie', cookie).expect(200)).body.data).toEqual({});
  });

  it('regenerate then set: a new ID with only the new data, and the old cookie refused', async () => {
    const cookie = await started();
    const res = await request(http).post('/api/regenerate-and-set').set('Cookie', cookie).expect(201);
    // The regenerate is saved before its callback (the old cookie expired), then the new session is.
    const sent = sessionSetCookies(res);
    expect(isExpiry(sent.at(-1)!)).toBe(false);
    const next = new Jar().apply(res).header();
    expect(next).not.toBe(cookie);
    expect((await request(http).get('/api/read').set('Cookie', next).expect(200)).body.data).toEqual({ fresh: true });
    expect((await request(http).get('/api/read').set('Cookie', cookie).expect(200)).body.data).toEqual({});
  });

  it('destroy(callback) ends the session before the callback runs', async () => {
    const cookie = await started();
    const res = await request(http).post('/api/destroy').set('Cookie', cookie).expect(201);
    expect(res.body).toEqual({ empty: true });
    expect(isExpiry(sessionSetCookies(res).at(-1)!)).toBe(true);
    expect((await request(http).get('/api/read').set('Cookie', cookie).expect(200)).body.data).toEqual({});
  });

  it('reload(callback) drops the changes not saved yet', async () => {
    const cookie = await started();
    const res = await request(http).post('/api/reload').set('Cookie', cookie).expect(201);
    expect(res.body).toEqual({ views: 1 });
  });

  it('touch() moves the expiry at the save, with a cookie, though nothing changed', async () => {
    const cookie = await started();
    const res = await request(http).post('/api/touch').set('Cookie', cookie).expect(201);
    expect(res.body.maxAge).toBeGreaterThan(86_000_000);
    expect(sessionSetCookies(res)).toHaveLength(1);
  });

  it('req.session = null ends the session, as with cookie-session', async () => {
    const cookie = await started();
    const res = await request(http).post('/api/null').set('Cookie', cookie).expect(201);
    expect(isExpiry(sessionSetCookies(res).at(-1)!)).toBe(true);
  });

  it("refuses to set express-session's own names, the cookie, or another req.session, with errors that say why", async () => {
    const res = await request(http).post('/api/misuse').expect(201);
    expect(res.body.errors).toEqual([
      "req.session.save is the session's own and cannot be set",
      expect.stringContaining('req.session.cookie is read-only'),
      expect.stringContaining('req.session cannot be replaced'),
    ]);
  });

  it('a request that changes nothing sets no cookie and writes nothing', async () => {
    const cookie = await started();
    const jar = new Jar();
    const res = await request(http).get('/api/read').set('Cookie', cookie).expect(200);
    expect(jar.apply(res).names()).toEqual([]);
  });
});

describe('expressSession(app) behind another session middleware', () => {
  it('answers 500 and logs an error that names the other middleware', async () => {
    const logger = new RecordingLogger();
    const app = await createApp(SECRET, {
      logger,
      controllers: [ExpressSessionApiController],
      beforeInit: (a) => {
        a.use((req: { session?: unknown }, _res: unknown, next: () => void) => {
          req.session = {};
          next();
        });
        a.use(expressSession(a));
      },
    });
    try {
      const res = await request(app.getHttpServer()).get('/api/read').expect(500);
      expect(res.body).toMatchObject({ statusCode: 500 });
      expect(logger.messages('error').join('\n')).toContain('req.session is set already: another session middleware');
    } finally {
      await app.close();
    }
  });
});

/** Routes where the anti-forgery checks and the timing of Passport's saves matter. */
@Controller('edge')
class EdgeController {
  /** A login posted back by an identity provider on another site (SAML, OIDC form_post). */
  @Post('idp-callback')
  @SkipCsrf()
  @UseGuards(LoginGuard)
  idpCallback(@Req() req: PassportRequest) {
    return { user: req.user };
  }

  /** Logout as Express apps write it: redirect from the callback, the response sent by the handler. */
  @Post('logout-redirect')
  logoutRedirect(@Req() req: PassportRequest, @Res() res: { redirect(url: string): void }): void {
    req.logout(() => res.redirect('/'));
  }

  @Get('proxy-gaps')
  proxyGaps(@Req() req: { session: object }) {
    const session = req.session as Record<string, unknown> & object;
    let frozen = 'no error';
    try {
      Object.preventExtensions(session);
    } catch (err) {
      frozen = (err as Error).constructor.name;
    }
    return {
      string: String(session),
      // eslint-disable-next-line no-prototype-builtins -- what code written for express-session calls
      hasOwn: (session as { hasOwnProperty(key: string): boolean }).hasOwnProperty('passport'),
      frozen,
    };
  }
}

describe('expressSession with the cross-site checks, Passport in guards, and responses sent by handlers', () => {
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let store: InMemorySessionStore;
  const logger = new RecordingLogger();
  beforeAll(async () => {
    store = new InMemorySessionStore();
    app = await createApp(
      { secret: SECRET, store, csrf: { requireToken: false } },
      {
        logger,
        imports: [PassportModule.register({ session: true })],
        controllers: [AuthController, EdgeController],
        providers: [LocalStrategy, SessionSerializer],
        beforeInit: (a) => {
          a.use(expressSession(a));
          a.use(passport.session());
          // A route outside Nest's router, as plain Express code in main.ts would add.
          (
            a.getHttpAdapter().getInstance() as {
              get(path: string, h: (req: CompatRequest, res: { redirect(u: string): void }) => void): void;
            }
          ).get('/outside', (req, res) => {
            req.session.outside = true;
            res.redirect('/');
          });
        },
      },
    );
    http = app.getHttpServer();
  });
  afterAll(() => app.close());
  const crossSite = { 'Sec-Fetch-Site': 'cross-site', Origin: 'https://evil.example' };

  it('refuses a cross-site login, and stores nothing for it (login CSRF)', async () => {
    const res = await request(http).post('/login').set(crossSite).send({ username: 'ann', password: 'ann-password' }).expect(403);
    expect(sessionSetCookies(res)).toEqual([]);
    expect(store.size).toBe(0);
  });

  it('lets a cross-site login through on a @SkipCsrf() route', async () => {
    const res = await request(http)
      .post('/edge/idp-callback')
      .set(crossSite)
      .send({ username: 'ann', password: 'ann-password' })
      .expect(201);
    expect(res.body).toEqual({ user: { id: 7, name: 'ann' } });
    await request(http).get('/me').set('Cookie', sessionCookie(res)).expect(200);
  });

  it('a logout whose callback redirects: the cookie is expired in that response and the old one opens nothing', async () => {
    const cookie = sessionCookie(await request(http).post('/login').send({ username: 'ann', password: 'ann-password' }).expect(201));
    await request(http).get('/me').set('Cookie', cookie).expect(200);
    const out = await request(http).post('/edge/logout-redirect').set('Cookie', cookie).expect(302);
    expect(isExpiry(sessionSetCookies(out).at(-1)!)).toBe(true);
    await request(http).get('/me').set('Cookie', cookie).expect(403);
    expect((await request(http).get('/raw').set('Cookie', cookie).expect(200)).body).toEqual({});
  });

  it('a route outside Nest that changes req.session: not saved, and a warning names it', async () => {
    logger.lines.length = 0;
    const res = await request(http).get('/outside').expect(302);
    expect(sessionSetCookies(res)).toEqual([]);
    await request(http).get('/me').expect(403); // the first response has finished by then
    expect(logger.messages('warn').join('\n')).toContain('GET /outside: a change to the session was never saved');
  });

  it('req.session has what a plain object has, and cannot be frozen', async () => {
    const cookie = sessionCookie(await request(http).post('/login').send({ username: 'ann', password: 'ann-password' }).expect(201));
    const res = await request(http).get('/edge/proxy-gaps').set('Cookie', cookie).expect(200);
    expect(res.body).toEqual({ string: '[object Object]', hasOwn: true, frozen: 'TypeError' });
  });
});

describe('expressSession with requireToken', () => {
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  beforeAll(async () => {
    app = await createApp(
      { secret: SECRET, store: new InMemorySessionStore(), csrf: { requireToken: true } },
      {
        imports: [PassportModule.register({ session: true })],
        controllers: [AuthController, TokenController],
        providers: [LocalStrategy, SessionSerializer],
        beforeInit: (a) => {
          a.use(expressSession(a));
          a.use(passport.session());
        },
      },
    );
    http = app.getHttpServer();
  });
  afterAll(() => app.close());

  it('a login form with its token in the _csrf field goes through; without it, a 403 and no login', async () => {
    const page = await request(http).get('/token').expect(200);
    const cookie = sessionCookie(page);
    const form = { username: 'ann', password: 'ann-password' };
    const refused = await request(http).post('/login').set('Cookie', cookie).type('form').send(form).expect(403);
    expect(sessionSetCookies(refused)).toEqual([]);
    const res = await request(http)
      .post('/login')
      .set('Cookie', cookie)
      .type('form')
      .send({ ...form, _csrf: page.body.token })
      .expect(201);
    await request(http).get('/me').set('Cookie', sessionCookie(res)).expect(200);
  });
});

@Controller('token')
class TokenController {
  @Get()
  token(@Session() session: Session) {
    return { token: session.csrfToken() };
  }
}

@Controller('two-guards')
class TwoGuardsController {
  @Post('login')
  @UseGuards(LoginGuard, SecondGuard)
  login(@Req() req: PassportRequest) {
    return { user: req.user };
  }
}

describe('expressSession when the request fails before or after Passport has logged in', () => {
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let store: FlakyStore;
  let logger: RecordingLogger;
  beforeAll(async () => {
    store = new FlakyStore();
    logger = new RecordingLogger();
    app = await createApp(
      { secret: SECRET, store },
      {
        logger,
        imports: [PassportModule.register({ session: true })],
        controllers: [AuthController, TwoGuardsController],
        providers: [LocalStrategy, SessionSerializer],
        beforeInit: (a) => {
          a.use(expressSession(a));
          a.use(passport.session());
        },
      },
    );
    http = app.getHttpServer();
  });
  afterAll(() => app.close());
  const form = { username: 'ann', password: 'ann-password' };

  it.each([
    ['refuses', 'refuse', 403],
    ['fails', 'crash', 500],
  ])('a guard after the login that %s leaves nobody logged in', async (_what, mode, status) => {
    const before = store.size;
    const res = await request(http).post(`/two-guards/login?second=${mode}`).send(form).expect(status);
    expect(sessionSetCookies(res)).toEqual([]);
    expect(store.size).toBe(before);
  });

  it('a save that fails is a 503, tried once, and logs nobody in', async () => {
    store.failures = 5;
    const creates = store.creates;
    try {
      const res = await request(http).post('/login').send(form).expect(503);
      expect(sessionSetCookies(res)).toEqual([]);
      expect(store.creates - creates).toBe(1);
    } finally {
      store.failures = 0;
    }
  });

  it('a cross-site login is refused without a warning that says to save it', async () => {
    logger.lines.length = 0;
    await request(http).post('/login').set({ 'Sec-Fetch-Site': 'cross-site' }).send(form).expect(403);
    await request(http).get('/me').expect(403); // the first response has finished by then
    expect(logger.messages('warn')).toEqual([]);
  });
});
