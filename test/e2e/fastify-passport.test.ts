import {
  Controller,
  Get,
  Injectable,
  Post,
  Req,
  UnauthorizedException,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
} from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import fastifyPassport from '@fastify/passport';
import { Strategy } from 'passport-local';
import { createClient } from 'redis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CookieSessionStore,
  fastifySession,
  InMemorySessionStore,
  RedisSessionStore,
  Session,
  SkipCsrf,
  type FastifySession,
  type SessionStore,
} from '../../src/index.js';
import { ANN, AuthenticatedGuard, FlakyStore, findUser, SecondGuard, type User } from '../fixtures/passport.js';
import { deleteRunKeys, REDIS_PORT, requireServer, runId } from '../stores/services.js';
import { createApp, isExpiry, SECRET, sessionCookie, sessionSetCookies } from '../fixtures/app.js';

// One Authenticator of the test's own, set up as @fastify/passport's README does.
const auth = new fastifyPassport.Authenticator();
auth.use(
  'local',
  new Strategy((username, password, done) => done(null, username === ANN.name && password === ANN.password ? findUser(ANN.id) : false)),
);
auth.registerUserSerializer(async (user: User) => user.id);
auth.registerUserDeserializer(async (id: number) => findUser(id));

type PassportRequest = {
  user?: User | null;
  session: FastifySession;
  logIn(user: User, options?: { keepSessionInfo?: boolean }): Promise<void>;
  logOut(): Promise<void>;
  isAuthenticated(): boolean;
};

/** Runs @fastify/passport's local strategy, then logs the user in (which regenerates the session). */
@Injectable()
class FastifyLoginGuard implements CanActivate {
  protected readonly options: { keepSessionInfo?: boolean } = {};
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const req = http.getRequest<PassportRequest>();
    const user = await new Promise<User | false>((resolve, reject) => {
      const handler = auth.authenticate('local', async (_request, _reply, err, found) => {
        if (err) reject(err as Error);
        else resolve((found as User | undefined) ?? false);
      });
      (handler as unknown as (request: unknown, reply: unknown) => Promise<unknown>)(req, http.getResponse()).catch(reject);
    });
    if (!user) throw new UnauthorizedException();
    await req.logIn(user, this.options);
    return true;
  }
}

@Injectable()
class KeepingLoginGuard extends FastifyLoginGuard {
  protected override readonly options = { keepSessionInfo: true };
}

@Controller()
class AuthController {
  @Post('login')
  @UseGuards(FastifyLoginGuard)
  login(@Req() req: PassportRequest) {
    return { user: req.user };
  }

  @Post('login-keeping')
  @UseGuards(KeepingLoginGuard)
  loginKeeping(@Req() req: PassportRequest) {
    return { user: req.user };
  }

  /** A login posted back from another site (an identity provider's form_post). */
  @Post('idp-callback')
  @SkipCsrf()
  @UseGuards(FastifyLoginGuard)
  idpCallback(@Req() req: PassportRequest) {
    return { user: req.user };
  }

  @Get('me')
  @UseGuards(AuthenticatedGuard)
  me(@Req() req: PassportRequest, @Session() session: Session) {
    return { user: req.user, cart: session.get('cart') ?? null };
  }

  @Post('logout')
  async logout(@Req() req: PassportRequest) {
    await req.logOut();
    return { ok: true };
  }

  @Post('cart')
  cart(@Session() session: Session<{ cart: string[] }>) {
    session.set('cart', ['apple']);
    return {};
  }

  @Get('raw')
  raw(@Req() req: PassportRequest) {
    return req.session.data();
  }

  /** The request.session API itself. */
  @Post('api')
  async api(@Req() req: PassportRequest) {
    req.session.set('a', 1);
    req.session.set('b', 2);
    const before = req.session.get<number>('a');
    await req.session.regenerate(['b']);
    return { before, after: req.session.data(), sessionId: req.session.sessionId ?? null };
  }

  @Post('destroy')
  async destroy(@Req() req: PassportRequest) {
    await req.session.destroy();
    return { data: req.session.data() };
  }
}

const redisUp = await requireServer('Redis', REDIS_PORT);
let redis: ReturnType<typeof createClient> | undefined;
afterAll(async () => {
  if (redis) {
    await deleteRunKeys();
    redis.destroy();
  }
});

const stores: Record<string, { skip?: boolean; make: () => Promise<SessionStore> }> = {
  memory: { make: async () => new InMemorySessionStore() },
  cookie: { make: async () => new CookieSessionStore() },
  redis: {
    skip: !redisUp,
    make: async () => {
      redis ??= await createClient({ socket: { host: '127.0.0.1', port: REDIS_PORT } }).connect();
      return new RedisSessionStore(redis, { prefix: `test:${runId}:fastify-passport:` });
    },
  },
};

async function fastifyPassportApp(store: SessionStore): Promise<INestApplication> {
  return createApp(
    { secret: SECRET, store },
    {
      platform: 'fastify',
      controllers: [AuthController],
      providers: [],
      beforeInit: async (app) => {
        fastifySession(app);
        const fastify = app as NestFastifyApplication;
        await fastify.register(auth.initialize() as never);
        await fastify.register(auth.secureSession() as never);
      },
    },
  );
}

for (const [name, { skip, make }] of Object.entries(stores)) {
  describe.skipIf(skip)(`@fastify/passport with the ${name} store, on Fastify (fastifySession)`, () => {
    let app: INestApplication;
    let http: ReturnType<INestApplication['getHttpServer']>;
    beforeAll(async () => {
      app = await fastifyPassportApp(await make());
      http = app.getHttpServer();
    });
    afterAll(() => app.close());

    const login = (cookie?: string, password = ANN.password) => {
      const req = request(http).post('/login').send({ username: ANN.name, password });
      return cookie ? req.set('Cookie', cookie) : req;
    };

    it('logs in with a new session ID and refuses the pre-login cookie', async () => {
      const before = sessionCookie(await request(http).post('/cart').expect(201));
      const loggedIn = await login(before).expect(201);
      expect(loggedIn.body).toEqual({ user: { id: 7, name: 'ann' } });
      const after = sessionCookie(loggedIn);
      expect(after).not.toBe(before);
      // @fastify/passport clears the session on login (clearSessionOnLogin), keeping only its own keys.
      expect((await request(http).get('/me').set('Cookie', after).expect(200)).body).toEqual({ user: { id: 7, name: 'ann' }, cart: null });
      await request(http).get('/me').set('Cookie', before).expect(403);
      expect((await request(http).get('/raw').set('Cookie', before).expect(200)).body).toEqual({});
    });

    it('logs in with keepSessionInfo: a new ID, the data kept', async () => {
      const before = sessionCookie(await request(http).post('/cart').expect(201));
      const loggedIn = await request(http)
        .post('/login-keeping')
        .set('Cookie', before)
        .send({ username: ANN.name, password: ANN.password })
        .expect(201);
      const after = sessionCookie(loggedIn);
      expect(after).not.toBe(before);
      expect((await request(http).get('/me').set('Cookie', after).expect(200)).body).toEqual({
        user: { id: 7, name: 'ann' },
        cart: ['apple'],
      });
      await request(http).get('/me').set('Cookie', before).expect(403);
    });

    it('refuses a cross-site login and stores nothing; lets one through on a @SkipCsrf() route', async () => {
      const crossSite = { 'Sec-Fetch-Site': 'cross-site', Origin: 'https://evil.example' };
      const form = { username: ANN.name, password: ANN.password };
      const refused = await request(http).post('/login').set(crossSite).send(form).expect(403);
      expect(sessionSetCookies(refused)).toEqual([]);
      const res = await request(http).post('/idp-callback').set(crossSite).send(form).expect(201);
      await request(http).get('/me').set('Cookie', sessionCookie(res)).expect(200);
    });

    it('a wrong password is a 401 and leaves the session as it was', async () => {
      const before = sessionCookie(await request(http).post('/cart').expect(201));
      const refused = await login(before, 'wrong').expect(401);
      expect(sessionSetCookies(refused)).toEqual([]);
      expect((await request(http).get('/raw').set('Cookie', before).expect(200)).body).toEqual({ cart: ['apple'] });
    });

    it('logs out: the cookie is expired and the pre-logout cookie is refused', async () => {
      const cookie = sessionCookie(await login().expect(201));
      await request(http).get('/me').set('Cookie', cookie).expect(200);
      const out = await request(http).post('/logout').set('Cookie', cookie).expect(201);
      expect(isExpiry(sessionSetCookies(out).at(-1)!)).toBe(true);
      await request(http).get('/me').set('Cookie', cookie).expect(403);
    });

    it('request.session: get, set, data, regenerate keeping some keys, destroy', async () => {
      const first = await request(http).post('/api').expect(201);
      expect(first.body).toEqual({ before: 1, after: { b: 2 }, sessionId: null });
      const cookie = sessionCookie(first);
      expect((await request(http).get('/raw').set('Cookie', cookie).expect(200)).body).toEqual({ b: 2 });
      const destroyed = await request(http).post('/destroy').set('Cookie', cookie).expect(201);
      expect(destroyed.body).toEqual({ data: {} });
      expect(isExpiry(sessionSetCookies(destroyed).at(-1)!)).toBe(true);
      expect((await request(http).get('/raw').set('Cookie', cookie).expect(200)).body).toEqual({});
    });
  });
}

describe('fastifySession(app) on Express', () => {
  it('says to use expressSession(app)', async () => {
    let thrown: unknown;
    const app = await createApp(SECRET, {
      controllers: [],
      beforeInit: (a) => {
        try {
          fastifySession(a);
        } catch (err) {
          thrown = err;
        }
      },
    });
    await app.close();
    expect((thrown as Error).message).toContain(
      'fastifySession(app) is for the Fastify platform; on Express, use app.use(expressSession(app))',
    );
  });
});

@Controller('two-guards')
class TwoGuardsController {
  @Post('login')
  @UseGuards(FastifyLoginGuard, SecondGuard)
  login(@Req() req: PassportRequest) {
    return { user: req.user };
  }
}

describe('fastifySession when the request fails before or after the login', () => {
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  const store = new FlakyStore();
  beforeAll(async () => {
    app = await createApp(
      { secret: SECRET, store },
      {
        platform: 'fastify',
        controllers: [AuthController, TwoGuardsController],
        providers: [],
        beforeInit: async (a) => {
          fastifySession(a);
          await (a as NestFastifyApplication).register(auth.initialize() as never);
          await (a as NestFastifyApplication).register(auth.secureSession() as never);
        },
      },
    );
    http = app.getHttpServer();
  });
  afterAll(() => app.close());
  const form = { username: ANN.name, password: ANN.password };

  it.each([
    ['refuses', 'refuse', 403],
    ['fails', 'crash', 500],
  ])('a guard after the login that %s leaves nobody logged in', async (_what, mode, status) => {
    const res = await request(http).post(`/two-guards/login?second=${mode}`).send(form).expect(status);
    expect(sessionSetCookies(res)).toEqual([]);
    expect(store.size).toBe(0);
  });

  it('a save that fails is a 503, tried once, and logs nobody in', async () => {
    store.failures = 5;
    try {
      const res = await request(http).post('/login').send(form).expect(503);
      expect(sessionSetCookies(res)).toEqual([]);
      expect(store.creates).toBe(1);
    } finally {
      store.failures = 0;
    }
  });
});
