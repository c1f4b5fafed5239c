import { Controller, Get, HttpCode, Post, Query, Redirect, type INestApplication } from '@nestjs/common';
import MC from 'memcache-client';
import pg from 'pg';
import { createClient } from 'redis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
import { LocalMemcached, requireMemcached } from './memcached-server.js';
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

let redis: ReturnType<typeof createClient> | undefined;
let pool: pg.Pool | undefined;
const memcached = new LocalMemcached();
let memcacheClient: MemcacheClient | undefined;
const table = `test_${runId.replace(/-/g, '_')}_lifecycle`;

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
    await pool.query(`DROP TABLE IF EXISTS "${table}"`);
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
