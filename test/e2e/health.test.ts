import { Controller, Get, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import MC from 'memcache-client';
import pg from 'pg';
import { createClient } from 'redis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionStoreHealthIndicator } from '../../src/health.js';
import {
  CookieSessionStore,
  InMemorySessionStore,
  MemcachedSessionStore,
  PostgresSessionStore,
  RedisSessionStore,
  type SessionStore,
} from '../../src/index.js';
import { appOn, PLATFORMS, SECRET } from '../fixtures/app.js';
import { TcpProxy } from '../fixtures/tcp-proxy.js';
import { LocalMemcached, requireMemcached } from '../stores/memcached-server.js';
import { PG_PORT, REDIS_PORT, requireServer, runId } from '../stores/services.js';

const { MemcacheClient } = MC;
const redisUp = await requireServer('Redis', REDIS_PORT);
const pgUp = await requireServer('PostgreSQL', PG_PORT);
const memcachedUp = requireMemcached();

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly sessionStore: SessionStoreHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.sessionStore.isHealthy('sessions', { timeout: 500 })]);
  }
}

async function healthApp(platform: (typeof PLATFORMS)[number], store: SessionStore): Promise<INestApplication> {
  return appOn(platform)(
    { secret: SECRET, store },
    { imports: [TerminusModule], controllers: [HealthController], providers: [SessionStoreHealthIndicator] },
  );
}

/** The `sessions` entry of a Terminus answer. */
async function sessionsHealth(app: INestApplication, status: number): Promise<Record<string, unknown>> {
  const res = await request(app.getHttpServer()).get('/health').expect(status);
  const body = res.body as { info?: Record<string, unknown>; error?: Record<string, unknown>; details: Record<string, unknown> };
  return body.details.sessions as Record<string, unknown>;
}

for (const platform of PLATFORMS) {
  describe(`the session store health indicator on ${platform}`, () => {
    it('the cookie store has nothing to reach: always up', async () => {
      const app = await healthApp(platform, new CookieSessionStore());
      try {
        expect(await sessionsHealth(app, 200)).toEqual({ status: 'up', store: 'CookieSessionStore' });
      } finally {
        await app.close();
      }
    });

    it('the in-memory store answers: up, with the time it took', async () => {
      const app = await healthApp(platform, new InMemorySessionStore());
      try {
        expect(await sessionsHealth(app, 200)).toMatchObject({
          status: 'up',
          store: 'InMemorySessionStore',
          responseTime: expect.any(Number),
        });
      } finally {
        await app.close();
      }
    });

    describe.skipIf(!redisUp)('Redis behind a proxy', () => {
      const proxy = new TcpProxy(REDIS_PORT);
      let app: INestApplication;
      let client: ReturnType<typeof createClient>;
      beforeAll(async () => {
        const port = await proxy.up();
        client = createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: 50 } });
        client.on('error', () => undefined);
        await client.connect();
        app = await healthApp(platform, new RedisSessionStore(client, { prefix: `test:${runId}:health:`, timeout: 300 }));
      });
      afterAll(async () => {
        await app.close();
        client.destroy();
        await proxy.down();
      });

      it('up while Redis answers; down, saying why, when it hangs; up again when it answers', async () => {
        expect(await sessionsHealth(app, 200)).toMatchObject({ status: 'up', store: 'RedisSessionStore' });
        proxy.hang();
        const down = await sessionsHealth(app, 503);
        expect(down).toMatchObject({ status: 'down', store: 'RedisSessionStore' });
        expect(down.message).toMatch(/took longer than 300 ms/);
        proxy.resume();
        expect(await sessionsHealth(app, 200)).toMatchObject({ status: 'up' });
      });
    });

    describe.skipIf(!pgUp)('PostgreSQL', () => {
      it('up while it answers; down when the pool cannot reach it', async () => {
        const pool = new pg.Pool({ host: '127.0.0.1', port: PG_PORT, user: 'postgres', database: 'test', connectionTimeoutMillis: 500 });
        const table = `test_${runId.replace(/-/g, '_')}_health`;
        const up = await healthApp(
          platform,
          new PostgresSessionStore(pool, { tableName: table, createTableIfMissing: true, pruneInterval: 0 }),
        );
        const nowhere = new pg.Pool({ host: '127.0.0.1', port: 1, user: 'postgres', database: 'test', connectionTimeoutMillis: 500 });
        const down = await healthApp(platform, new PostgresSessionStore(nowhere, { tableName: table, pruneInterval: 0 }));
        try {
          expect(await sessionsHealth(up, 200)).toMatchObject({ status: 'up', store: 'PostgresSessionStore' });
          expect(await sessionsHealth(down, 503)).toMatchObject({ status: 'down', message: expect.stringMatching(/ECONNREFUSED/) });
        } finally {
          await up.close();
          await down.close();
          await pool.query(`DROP TABLE IF EXISTS "${table}", "${table}_users"`);
          await pool.end();
          await nowhere.end();
        }
      });
    });

    describe.skipIf(!memcachedUp)('Memcached', () => {
      it('up while it runs; down when it has stopped', async () => {
        const server = new LocalMemcached();
        await server.start();
        const client = new MemcacheClient({ server: `127.0.0.1:${server.port}`, logger: { debug() {}, info() {}, warn() {}, error() {} } });
        const app = await healthApp(platform, new MemcachedSessionStore(client, { prefix: `test:${runId}:`, timeout: 300 }));
        try {
          expect(await sessionsHealth(app, 200)).toMatchObject({ status: 'up', store: 'MemcachedSessionStore' });
          await server.stop();
          expect(await sessionsHealth(app, 503)).toMatchObject({ status: 'down', store: 'MemcachedSessionStore' });
        } finally {
          await app.close();
          client.shutdown();
          await server.stop();
        }
      });
    });

    it("a store of one's own is checked through its ping(), bounded by the timeout", async () => {
      const store = new CookieSessionStore() as CookieSessionStore & { ping(): Promise<void> };
      let answer: () => Promise<void> = async () => undefined;
      store.ping = () => answer();
      const app = await healthApp(platform, store);
      try {
        expect(await sessionsHealth(app, 200)).toMatchObject({ status: 'up' });
        answer = async () => {
          throw new Error('backend on fire');
        };
        expect(await sessionsHealth(app, 503)).toMatchObject({ status: 'down', message: 'backend on fire' });
        answer = () => new Promise(() => undefined); // never answers
        expect(await sessionsHealth(app, 503)).toMatchObject({ status: 'down', message: 'no answer within 500 ms' });
      } finally {
        await app.close();
      }
    });
  });
}
