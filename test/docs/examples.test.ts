import { Controller, Get, Module, type INestApplication, type Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createClient } from 'redis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import passport from 'passport';
import { expressSession, Session, SessionsModule } from '../../src/index.js';
import { SECRET, sessionCookie } from '../fixtures/app.js';
import { moduleText, tsBlocks, type DocBlock } from './blocks.js';
import { requireServer, PG_PORT, REDIS_PORT } from '../stores/services.js';
import { ask, LocalMemcached, requireMemcached } from '../stores/memcached-server.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** Inside test/ so that the test runner compiles the blocks as it compiles the tests (git ignores it). */
const dir = `${root}test/docs/.generated`;
/** A Redis database of the examples' own: they use the prefix `sess:`, as users would. */
const REDIS_DB = 13;

/** The README's complete modules, written where they can be imported; by the line of their block. */
const blocks = tsBlocks(`${root}README.md`, 'README.md').filter((b) => b.kind === 'module');
const find = (needle: string): DocBlock => {
  const found = blocks.filter((b) => b.code.includes(needle));
  if (found.length !== 1) throw new Error(`expected one README block with ${JSON.stringify(needle)}, found ${found.length}`);
  return found[0]!;
};
const fileOf = (block: DocBlock) => block.file ?? `line-${block.line}.ts`;
const load = async <T>(block: DocBlock): Promise<T> => (await import(`${dir}/${fileOf(block)}`)) as T;

/** GET /probe counts in the session: a session that survives requests, whatever the example's options. */
@Controller('probe')
class ProbeController {
  @Get()
  count(@Session() session: Session<{ probe: number }>) {
    const probe = session.get('probe', 0) + 1;
    session.set('probe', probe);
    return { probe };
  }
}

async function boot(module: Type, extra: { controllers?: Type[] } = {}): Promise<INestApplication> {
  @Module({ imports: [module], controllers: extra.controllers ?? [ProbeController] })
  class Host {}
  const ref = await Test.createTestingModule({ imports: [Host] }).compile();
  return ref.createNestApplication({ logger: false }).init();
}

/** Returns the session's cookie (`session=<token>`). */
async function survives(app: INestApplication): Promise<string> {
  const first = await request(app.getHttpServer()).get('/probe').expect(200);
  expect(first.body).toEqual({ probe: 1 });
  const cookie = sessionCookie(first);
  const second = await request(app.getHttpServer()).get('/probe').set('Cookie', cookie).expect(200);
  expect(second.body).toEqual({ probe: 2 });
  return cookie;
}

describe("the README's examples, run", () => {
  const env = { ...process.env };
  beforeAll(() => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (const block of blocks) writeFileSync(`${dir}/${fileOf(block)}`, moduleText(block));
    process.env.SESSION_SECRET = SECRET;
  });
  afterAll(() => {
    process.env = env;
    rmSync(dir, { recursive: true, force: true });
  });

  it('the quick start: a cart that survives requests, and an empty one without the cookie', async () => {
    const { AppModule } = await load<{ AppModule: Type }>(find("@Controller('cart')"));
    const app = await boot(AppModule, { controllers: [] });
    try {
      const http = app.getHttpServer();
      const first = await request(http).post('/cart/tea').expect(201);
      expect(first.body).toEqual({ items: ['tea'] });
      const cookie = sessionCookie(first);
      const second = await request(http).post('/cart/milk').set('Cookie', cookie).expect(201);
      expect(second.body).toEqual({ items: ['tea', 'milk'] });
      expect((await request(http).get('/cart').set('Cookie', sessionCookie(second)).expect(200)).body).toEqual({ items: ['tea', 'milk'] });
      expect((await request(http).get('/cart').expect(200)).body).toEqual({ items: [] });
    } finally {
      await app.close();
    }
  });

  it.each([
    ['the @nestjs/config module', 'ConfigModule.forRoot()'],
    ['the useExisting module', 'useExisting: SessionsConfig'],
    ['the cross-site options and @SkipCsrf()', "@Controller('hooks')"],
    ['the anti-forgery form', "@Controller('profile')"],
  ])('%s: boots, and a session survives requests', async (_name, needle) => {
    const { AppModule } = await load<{ AppModule: Type }>(find(needle));
    const app = await boot(AppModule);
    try {
      await survives(app);
    } finally {
      await app.close();
    }
  });

  it('the anti-forgery form: its token posts through, and a post without it is refused', async () => {
    const { AppModule } = await load<{ AppModule: Type }>(find("@Controller('profile')"));
    const app = await boot(AppModule, { controllers: [] });
    try {
      const http = app.getHttpServer();
      const page = await request(http).get('/profile').expect(200);
      const token = /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;
      const cookie = sessionCookie(page);
      await request(http).post('/profile').set('Cookie', cookie).type('form').send({ name: 'ann' }).expect(403);
      await request(http).post('/profile').set('Cookie', cookie).type('form').send({ name: 'ann', _csrf: token }).expect(201);
    } finally {
      await app.close();
    }
  });

  it('the GraphQL module: a mutation keeps its count across requests', async () => {
    const { AppModule } = await load<{ AppModule: Type }>(find('GraphQLModule.forRoot'));
    const app = await boot(AppModule, { controllers: [] });
    try {
      const agent = request.agent(app.getHttpServer());
      expect((await agent.post('/graphql').send({ query: 'mutation { increment }' }).expect(200)).body).toEqual({ data: { increment: 1 } });
      expect((await agent.post('/graphql').send({ query: 'mutation { increment }' }).expect(200)).body).toEqual({ data: { increment: 2 } });
      expect((await agent.post('/graphql').send({ query: '{ count }' }).expect(200)).body).toEqual({ data: { count: 2 } });
    } finally {
      await app.close();
    }
  });

  it('the Passport module, as passport-main.ts starts it: login, a protected route, logout', async () => {
    const { AuthModule } = await load<{ AuthModule: Type }>(find('class LoginGuard'));
    const ref = await Test.createTestingModule({ imports: [AuthModule] }).compile();
    const app = ref.createNestApplication({ logger: false });
    app.use(expressSession(app));
    app.use(passport.session());
    await app.init();
    try {
      const http = app.getHttpServer();
      await request(http).post('/login').send({ username: 'ann', password: 'wrong' }).expect(401);
      const login = await request(http).post('/login').send({ username: 'ann', password: 'correct horse' }).expect(201);
      expect(login.body).toEqual({ id: 1, name: 'ann' });
      const cookie = sessionCookie(login);
      expect((await request(http).get('/me').set('Cookie', cookie).expect(200)).body).toEqual({ id: 1, name: 'ann' });
      expect((await request(http).post('/logout').set('Cookie', cookie).expect(201)).body).toEqual({ loggedOut: true });
      await request(http).get('/me').set('Cookie', cookie).expect(403);
    } finally {
      await app.close();
    }
  });

  it('your own store (the map-backed one): sessions survive requests', async () => {
    const { MapSessionStore } = await load<{ MapSessionStore: new () => never }>(find('class MapSessionStore'));
    @Module({ imports: [SessionsModule.forRoot({ secret: SECRET, store: new MapSessionStore() })] })
    class WithMapStore {}
    const app = await boot(WithMapStore);
    try {
      await survives(app);
    } finally {
      await app.close();
    }
  });

  it('the Redis module: sessions live in Redis, and the client is closed with the app', async () => {
    if (!(await requireServer('Redis', REDIS_PORT))) return;
    process.env.REDIS_URL = `redis://127.0.0.1:${REDIS_PORT}/${REDIS_DB}`;
    const admin = await createClient({ url: process.env.REDIS_URL }).connect();
    try {
      expect(await admin.keys('sess:*')).toEqual([]); // the database is the examples' own
      const { AppModule } = await load<{ AppModule: Type }>(find('class RedisModule'));
      const app = await boot(AppModule);
      try {
        await survives(app);
        expect(await admin.keys('sess:*')).toHaveLength(1);
      } finally {
        await app.close();
      }
    } finally {
      const keys = await admin.keys('sess:*');
      if (keys.length > 0) await admin.del(keys);
      admin.destroy();
    }
  });

  it("the Memcached module: sessions live in a memcached of the test's own, and the client is shut down with the app", async () => {
    if (!requireMemcached()) return;
    const server = new LocalMemcached();
    await server.start();
    try {
      process.env.MEMCACHED = `127.0.0.1:${server.port}`;
      const { AppModule } = await load<{ AppModule: Type }>(find('new MemcachedSessionStore(memcache'));
      const app = await boot(AppModule);
      let cookie: string;
      try {
        cookie = await survives(app);
      } finally {
        await app.close();
      }
      const id = cookie.slice('session='.length, 'session='.length + 43); // a signed ID: <id>.<signature>
      expect(await ask(server.port, `mg sess:${id} v`)).toMatch(/^VA \d+/);
    } finally {
      delete process.env.MEMCACHED;
      await server.stop();
    }
  });

  it('the PostgreSQL module: it creates its table, and sessions live in it', async () => {
    if (!(await requireServer('PostgreSQL', PG_PORT))) return;
    process.env.DATABASE_URL = `postgres://${process.env.PGUSER ?? 'postgres'}@127.0.0.1:${PG_PORT}/${process.env.PGDATABASE ?? 'test'}`;
    const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await admin.connect();
    try {
      // The example uses the default table, public.sessions: it must not be anyone else's.
      const before = await admin.query(`SELECT to_regclass('public.sessions') AS t`);
      expect(before.rows[0].t, 'a table public.sessions exists already in this database; the example would write into it').toBeNull();
      const { AppModule } = await load<{ AppModule: Type }>(find('class DatabaseModule'));
      const app = await boot(AppModule);
      try {
        await survives(app);
        expect((await admin.query('SELECT count(*)::int AS n FROM public.sessions')).rows[0].n).toBe(1);
      } finally {
        await app.close();
      }
    } finally {
      await admin.query('DROP TABLE IF EXISTS public.sessions, public.sessions_users');
      await admin.end();
    }
  });
});
