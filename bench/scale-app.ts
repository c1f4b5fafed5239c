/**
 * One app process of the scale-out run (`npm run scale`): `fork(scale-app.js, [JSON config])`. Serves
 * a session API on a free port, through a Redis Cluster or a PostgreSQL of the run's own, tells the
 * parent its port and stops when told to.
 */
import 'reflect-metadata';
import { Body, Controller, Get, Header, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { PostgresSessionStore, RedisSessionStore, Session, SessionsModule, type SessionStore } from '../src/index.js';

export interface ScaleAppConfig {
  store: 'redis' | 'postgres';
  /** The Redis client: node-redis's createCluster or ioredis's Cluster. */
  client?: 'node-redis' | 'ioredis';
  /** The cluster's nodes (redis) or the server's port (postgres). */
  ports: number[];
  secret: string;
  /** Milliseconds a store call may take before the request is answered 503. */
  timeout: number;
  /** Redis key prefix or PostgreSQL table of this run. */
  namespace: string;
}

const config = JSON.parse(process.argv[2] ?? '{}') as ScaleAppConfig;
const PROCESS = process.env.SCALE_PROCESS ?? String(process.pid);

type Data = Record<string, number | string>;

@Controller()
class ScaleController {
  @Post('login')
  @Header('x-process', PROCESS)
  login(@Session() session: Session<Data>, @Body() body: { client: string }) {
    session.regenerate();
    session.set('client', body.client);
    return { ok: true };
  }

  /** Writes one key: each client's lanes write keys of their own, concurrently, in one session. */
  @Post('write')
  @Header('x-process', PROCESS)
  write(@Session() session: Session<Data>, @Body() body: { key: string; value: number }) {
    session.set(body.key, body.value);
    return { ok: true };
  }

  @Get('read')
  @Header('x-process', PROCESS)
  read(@Session() session: Session<Data>) {
    return { id: session.id ?? null, data: session.toJSON() };
  }

  @Post('logout')
  @Header('x-process', PROCESS)
  logout(@Session() session: Session<Data>) {
    session.destroy();
    return { ok: true };
  }
}

async function makeStore(): Promise<{ store: SessionStore; close: () => Promise<void> }> {
  if (config.store === 'redis' && config.client === 'ioredis') {
    const { Cluster } = await import('ioredis');
    const cluster = new Cluster(
      config.ports.map((port) => ({ host: '127.0.0.1', port })),
      { redisOptions: { connectTimeout: 1000 }, clusterRetryStrategy: (times) => Math.min(50 * 2 ** times, 500) },
    );
    cluster.on('error', () => undefined);
    await new Promise((resolve, reject) => cluster.once('ready', resolve).once('end', reject));
    return {
      store: new RedisSessionStore(cluster, { prefix: `${config.namespace}:`, timeout: config.timeout }),
      close: async () => void (await cluster.quit().catch(() => cluster.disconnect())),
    };
  }
  if (config.store === 'redis') {
    const { createCluster } = await import('redis');
    const cluster = createCluster({
      rootNodes: config.ports.map((port) => ({ socket: { host: '127.0.0.1', port } })),
      defaults: { socket: { connectTimeout: 1000, reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 500) } },
    });
    cluster.on('error', () => undefined); // the store logs what matters; a dead node's errors would flood
    await cluster.connect();
    return {
      store: new RedisSessionStore(cluster, { prefix: `${config.namespace}:`, timeout: config.timeout }),
      close: () => cluster.close().catch(() => cluster.destroy()),
    };
  }
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({
    host: '127.0.0.1',
    port: config.ports[0],
    user: 'postgres',
    database: 'postgres',
    max: 8,
    connectionTimeoutMillis: config.timeout,
  });
  return {
    store: new PostgresSessionStore(pool, { tableName: config.namespace, timeout: config.timeout, pruneInterval: 0 }),
    close: () => pool.end(),
  };
}

const { store, close } = await makeStore();

@Module({
  imports: [SessionsModule.forRoot({ secret: config.secret, store, maxAge: 3600, csrf: false })],
  controllers: [ScaleController],
})
class ScaleModule {}

const app = await NestFactory.create(ScaleModule, { logger: ['error', 'warn'] });
await app.listen(0, '127.0.0.1');
const { port } = app.getHttpServer().address() as { port: number };
process.on('message', async (message) => {
  if (message === 'stop') {
    await app.close().catch(() => undefined);
    await close().catch(() => undefined);
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
process.send?.({ port });
