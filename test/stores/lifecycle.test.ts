import { Controller, Get, HttpCode, Post, Query, Redirect, type INestApplication } from '@nestjs/common';
import MC from 'memcache-client';
import pg from 'pg';
import { createClient } from 'redis';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  CookieSessionStore,
  InMemorySessionStore,
  MemcachedSessionStore,
  PostgresSessionStore,
  RedisSessionStore,
  Session,
  type SessionStore,
} from '../../src/index.js';
import { appOn, cookieAfter, Jar, PLATFORMS, SECRET, sessionCookie } from '../fixtures/app.js';
import { ask, LocalMemcached, requireMemcached } from './memcached-server.js';
import { deleteRunKeys, PG_PORT, REDIS_PORT, requireServer, runId } from './services.js';

const { MemcacheClient } = MC;
type MemcacheClient = InstanceType<typeof MemcacheClient>;

const redisUp = await requireServer('Redis', REDIS_PORT);
const pgUp = await requireServer('PostgreSQL', PG_PORT);
const memcachedUp = requireMemcached();

@Controller('flash')
class FlashController {
  /** Saves, flashes a message, and redirects to the page that shows it. */
  @Post('save')
  @Redirect('/flash/show', 303)
  save(@Session() session: Session<{ name: string }>, @Query('name') name: string) {
    session.set('name', name);
    session.flash('notice', `Saved ${name}.`);
  }

  @Get('show')
  show(@Session() session: Session) {
    return { notice: session.getFlash<string>('notice') ?? null, keys: session.keys() };
  }

  /** Logs out, and flashes the goodbye into the new session. */
  @Post('logout')
  @HttpCode(200)
  logout(@Session() session: Session) {
    session.destroy();
    session.flash('notice', 'Logged out.');
    return {};
  }

  @Get('read')
  read(@Session() session: Session) {
    return session.toJSON();
  }
}

const DAY = 86_400;

@Controller('remember')
class RememberController {
  /** Logs in; with ?days=N, for N days ("remember me"). */
  @Post('login')
  async login(@Session() session: Session, @Query('days') days?: string) {
    session.set('user', 'ann');
    if (days) session.setMaxAge(Number(days) * DAY);
    await session.save();
    return { id: session.id, maxAge: session.maxAge ?? null };
  }

  @Post('regenerate')
  regenerate(@Session() session: Session) {
    session.regenerate();
    return { maxAge: session.maxAge ?? null };
  }

  /** Back to the module's lifetime. */
  @Post('forget')
  async forget(@Session() session: Session) {
    session.setMaxAge(undefined);
    await session.save();
    return { id: session.id, maxAge: session.maxAge ?? null };
  }

  @Get('me')
  me(@Session() session: Session) {
    return { user: session.get('user') ?? null, maxAge: session.maxAge ?? null, keys: session.keys() };
  }
}

/** Max-Age of the session cookie a response sets. */
function maxAgeOf(res: request.Response): number {
  const header = (res.headers['set-cookie'] as unknown as string[]).find((c) => c.startsWith('session='))!;
  return Number(/Max-Age=(\d+)/.exec(header)![1]);
}

let redis: ReturnType<typeof createClient> | undefined;
let pool: pg.Pool | undefined;
const memcached = new LocalMemcached();
let memcacheClient: MemcacheClient | undefined;
const table = `test_${runId.replace(/-/g, '_')}_lifecycle`;

/** Seconds the store itself will keep session `id`, read from the store (the cookie store keeps nothing). */
const storedTtl: Record<string, (store: SessionStore, id: string) => Promise<number | undefined>> = {
  redis: async (store, id) => (await redis!.pTTL((store as RedisSessionStore).key(id))) / 1000,
  postgres: async (_store, id) =>
    Number((await pool!.query(`SELECT extract(epoch FROM expires_at - now()) AS s FROM "${table}" WHERE id = $1`, [id])).rows[0].s),
  memcached: async (store, id) => {
    const answer = await ask(memcached.port, `mg ${(store as MemcachedSessionStore).key(id)} t`);
    return Number(/ t(\d+)/.exec(answer)?.[1]);
  },
};

const stores: Record<string, { skip: boolean; make: () => Promise<SessionStore> }> = {
  cookie: { skip: false, make: async () => new CookieSessionStore() },
  memory: { skip: false, make: async () => new InMemorySessionStore() },
  redis: {
    skip: !redisUp,
    make: async () => {
      redis ??= await createClient({ socket: { host: '127.0.0.1', port: REDIS_PORT } }).connect();
      return new RedisSessionStore(redis, { prefix: `test:${runId}:lifecycle:` });
    },
  },
  postgres: {
    skip: !pgUp,
    make: async () => {
      pool ??= new pg.Pool({ host: '127.0.0.1', port: PG_PORT, user: 'postgres', database: 'test', connectionTimeoutMillis: 2000 });
      return new PostgresSessionStore(pool, { tableName: table, createTableIfMissing: true, pruneInterval: 0 });
    },
  },
  memcached: {
    skip: !memcachedUp,
    make: async () => {
      if (!memcacheClient) {
        await memcached.start();
        memcacheClient = new MemcacheClient({
          server: `127.0.0.1:${memcached.port}`,
          logger: { debug() {}, info() {}, warn() {}, error() {} },
        });
      }
      return new MemcachedSessionStore(memcacheClient, { prefix: `test:${runId}:` });
    },
  },
};

afterAll(async () => {
  if (redis) {
    await deleteRunKeys();
    redis.destroy();
  }
  if (pool) {
    await pool.query(`DROP TABLE IF EXISTS "${table}", "${table}_users"`);
    await pool.end();
  }
  memcacheClient?.shutdown();
  await memcached.stop();
});

for (const [name, { skip, make }] of Object.entries(stores)) {
  for (const platform of PLATFORMS) {
    describe.skipIf(skip)(`flash messages with the ${name} store, on ${platform}`, () => {
      let app: INestApplication;
      let http: ReturnType<INestApplication['getHttpServer']>;
      beforeAll(async () => {
        app = await appOn(platform)({ secret: SECRET, store: await make() }, { controllers: [FlashController], providers: [] });
        http = app.getHttpServer();
      });
      afterAll(() => app.close());

      it('survives the redirect, is shown once, and is not among the data', async () => {
        const saved = await request(http).post('/flash/save?name=ann').expect(303);
        expect(saved.headers.location).toBe('/flash/show');
        const cookie = sessionCookie(saved);
        const shown = await request(http).get('/flash/show').set('Cookie', cookie).expect(200);
        expect(shown.body).toEqual({ notice: 'Saved ann.', keys: ['name'] });
        const after = cookieAfter(shown, cookie);
        expect((await request(http).get('/flash/show').set('Cookie', after).expect(200)).body).toEqual({ notice: null, keys: ['name'] });
        expect((await request(http).get('/flash/read').set('Cookie', after).expect(200)).body).toEqual({ name: 'ann' });
      });

      it('a flash after a logout starts the new session it is shown in', async () => {
        const jar = new Jar();
        jar.apply(await request(http).post('/flash/save?name=bob').expect(303));
        const old = jar.header();
        jar.apply(await request(http).post('/flash/logout').set('Cookie', old).expect(200));
        expect(jar.header()).not.toBe(old);
        const shown = await request(http).get('/flash/show').set('Cookie', jar.header()).expect(200);
        expect(shown.body).toEqual({ notice: 'Logged out.', keys: [] });
      });

      it('a session that never flashes writes nothing for it on a read', async () => {
        const cookie = sessionCookie(await request(http).post('/flash/save?name=cy').expect(303));
        const first = await request(http).get('/flash/show').set('Cookie', cookie).expect(200); // reads the flash: a write
        const after = cookieAfter(first, cookie);
        const quiet = await request(http).get('/flash/show').set('Cookie', after).expect(200);
        expect(quiet.headers['set-cookie']).toBeUndefined();
      });
    });
  }
}

for (const [name, { skip, make }] of Object.entries(stores)) {
  for (const platform of PLATFORMS) {
    describe.skipIf(skip)(`remember-me (setMaxAge) with the ${name} store, on ${platform}`, () => {
      let app: INestApplication;
      let http: ReturnType<INestApplication['getHttpServer']>;
      let store: SessionStore;
      beforeAll(async () => {
        store = await make();
        app = await appOn(platform)(
          { secret: SECRET, store, maxAge: DAY, absoluteTimeout: 60 * DAY },
          { controllers: [RememberController], providers: [] },
        );
        http = app.getHttpServer();
      });
      afterAll(() => app.close());

      it("the cookie and the store keep the session for its own lifetime, not the module's", async () => {
        const res = await request(http).post('/remember/login?days=30').expect(201);
        expect(res.body.maxAge).toBe(30 * DAY);
        expect(maxAgeOf(res)).toBeGreaterThan(30 * DAY - 5);
        expect(maxAgeOf(res)).toBeLessThanOrEqual(30 * DAY);
        const ttl = await storedTtl[name]?.(store, res.body.id as string);
        if (ttl !== undefined) expect(ttl).toBeGreaterThan(30 * DAY - 60);
        const me = await request(http).get('/remember/me').set('Cookie', sessionCookie(res)).expect(200);
        expect(me.body).toEqual({ user: 'ann', maxAge: 30 * DAY, keys: ['user'] });
      });

      it('keeps its lifetime across regenerate()', async () => {
        const cookie = sessionCookie(await request(http).post('/remember/login?days=30').expect(201));
        const res = await request(http).post('/remember/regenerate').set('Cookie', cookie).expect(201);
        expect(res.body.maxAge).toBe(30 * DAY);
        expect(sessionCookie(res)).not.toBe(cookie);
        expect(maxAgeOf(res)).toBeGreaterThan(30 * DAY - 5);
      });

      it('never past absoluteTimeout', async () => {
        const res = await request(http).post('/remember/login?days=365').expect(201);
        expect(maxAgeOf(res)).toBeLessThanOrEqual(60 * DAY);
        expect(maxAgeOf(res)).toBeGreaterThan(60 * DAY - 5);
      });

      it("setMaxAge(undefined) goes back to the module's maxAge, at once", async () => {
        const cookie = sessionCookie(await request(http).post('/remember/login?days=30').expect(201));
        const res = await request(http).post('/remember/forget').set('Cookie', cookie).expect(201);
        expect(res.body.maxAge).toBeNull();
        expect(maxAgeOf(res)).toBeLessThanOrEqual(DAY);
        const ttl = await storedTtl[name]?.(store, res.body.id as string);
        if (ttl !== undefined) expect(ttl).toBeLessThanOrEqual(DAY + 1);
      });
    });
  }
}

describe('remember-me past the module maxAge, with a fake clock', () => {
  afterEach(() => vi.useRealTimers());
  for (const platform of PLATFORMS) {
    for (const [name, make] of [
      ['memory', () => new InMemorySessionStore()],
      ['cookie', () => new CookieSessionStore()],
    ] as const) {
      it(`the ${name} store keeps it for its own lifetime, then ends it, on ${platform}`, async () => {
        vi.useFakeTimers({ toFake: ['Date'], now: Date.parse('2026-12-02T00:00:00Z') });
        const app = await appOn(platform)(
          { secret: SECRET, store: make(), maxAge: DAY },
          { controllers: [RememberController], providers: [] },
        );
        try {
          const http = app.getHttpServer();
          const remembered = sessionCookie(await request(http).post('/remember/login?days=30').expect(201));
          const plain = sessionCookie(await request(http).post('/remember/login').expect(201));
          vi.setSystemTime(Date.now() + 2 * DAY * 1000);
          expect((await request(http).get('/remember/me').set('Cookie', remembered).expect(200)).body.user).toBe('ann');
          expect((await request(http).get('/remember/me').set('Cookie', plain).expect(200)).body.user).toBeNull();
          vi.setSystemTime(Date.now() + 29 * DAY * 1000);
          expect((await request(http).get('/remember/me').set('Cookie', remembered).expect(200)).body.user).toBeNull();
        } finally {
          await app.close();
        }
      });
    }
  }
});
