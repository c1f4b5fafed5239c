import {
  Controller,
  Get,
  Inject,
  Injectable,
  Module,
  Post,
  Query,
  type BeforeApplicationShutdown,
  type INestApplication,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { createClient } from 'redis';
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisSessionStore, Session, SessionsModule } from '../../src/index.js';
import { Latch, PLATFORMS, RecordingLogger, SECRET, sessionCookie, type Platform } from '../fixtures/app.js';
import { deleteRunKeys, REDIS_PORT, requireServer, runId } from '../stores/services.js';

const redisUp = await requireServer('Redis', REDIS_PORT);

const REDIS_CLIENT = Symbol('REDIS_CLIENT');
const prefix = `test:${runId}:shutdown:`;

/** Handlers held by the test: each waits on its latch, then writes. */
const held = new Map<string, { arrived: Latch; release: Latch }>();

@Controller()
class SlowController {
  @Post('write')
  async write(@Session() session: Session<{ note: string }>, @Query('key') key: string) {
    const hold = held.get(key);
    hold?.arrived.open();
    await hold?.release.wait;
    session.set('note', key);
    return { key };
  }

  @Get('note')
  note(@Session() session: Session<{ note: string }>) {
    return { note: session.get('note') ?? null };
  }
}

/** Opens a latch when the shutdown reaches the "before shutdown" step, and records when the client closed. */
@Injectable()
class ShutdownProbe implements BeforeApplicationShutdown {
  readonly reached = new Latch();
  beforeApplicationShutdown(): void {
    this.reached.open();
  }
}

/** The app's Redis client, closed at shutdown as the README does it. */
@Module({
  providers: [
    {
      provide: REDIS_CLIENT,
      useFactory: () => createClient({ socket: { host: '127.0.0.1', port: REDIS_PORT } }).connect(),
    },
  ],
  exports: [REDIS_CLIENT],
})
class RedisModule implements OnApplicationShutdown {
  static closedAt: number | undefined;
  constructor(@Inject(REDIS_CLIENT) private readonly redis: ReturnType<typeof createClient>) {}
  onApplicationShutdown(): void {
    RedisModule.closedAt = Date.now();
    this.redis.destroy();
  }
}

async function start(platform: Platform, logger: RecordingLogger | false, shutdownTimeout?: number): Promise<INestApplication> {
  @Module({
    imports: [
      RedisModule,
      SessionsModule.forRootAsync({
        imports: [RedisModule],
        inject: [REDIS_CLIENT],
        useFactory: (redis: ReturnType<typeof createClient>) => ({
          secret: SECRET,
          store: new RedisSessionStore(redis, { prefix }),
          shutdownTimeout,
        }),
      }),
    ],
    controllers: [SlowController],
    providers: [ShutdownProbe],
  })
  class AppModule {}
  const ref = await Test.createTestingModule({ imports: [AppModule] }).compile();
  // forceCloseConnections: Nest destroys open sockets when it closes the server, so whatever a request
  // still had to do after that would run with its client closed.
  const options = { logger: logger === false ? (false as const) : logger, forceCloseConnections: true };
  if (platform === 'fastify') {
    const app = ref.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), options);
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    return app;
  }
  const app = ref.createNestApplication(options);
  await app.init();
  return app;
}

afterAll(async () => {
  if (redisUp) await deleteRunKeys();
});

for (const platform of PLATFORMS) {
  describe.skipIf(!redisUp)(`graceful shutdown on ${platform}`, () => {
    it('app.close() lets the requests in flight finish and save before the store client closes: no save lost', async () => {
      const app = await start(platform, false);
      await app.listen(0, '127.0.0.1');
      const url = await app.getUrl();
      const keys = Array.from({ length: 5 }, (_, i) => `${platform}-${runId}-${i}`);
      for (const key of keys) held.set(key, { arrived: new Latch(), release: new Latch() });
      const requests = keys.map((key) => request(url).post(`/write?key=${key}`));
      const responses = requests.map((r) => r.then((res) => res));
      await Promise.all(keys.map((key) => held.get(key)!.arrived.wait)); // every handler holds its session
      RedisModule.closedAt = undefined;
      const closing = app.close();
      await app.get(ShutdownProbe).reached.wait; // the shutdown has begun
      for (const key of keys) held.get(key)!.release.open();
      const done = await Promise.all(responses);
      await closing;
      expect(done.map((res) => res.status)).toEqual(keys.map(() => 201));
      expect(RedisModule.closedAt).toBeDefined();
      // Every save is in Redis: a new app reads each note back with its cookie.
      const again = await start(platform, false);
      try {
        for (const [i, res] of done.entries()) {
          const read = await request(again.getHttpServer()).get('/note').set('Cookie', sessionCookie(res)).expect(200);
          expect(read.body).toEqual({ note: keys[i] });
        }
      } finally {
        await again.close();
      }
    });

    it('the wait is bounded by shutdownTimeout, and the log says how many were still running', async () => {
      const logger = new RecordingLogger();
      const app = await start(platform, logger, 0.2);
      const key = `${platform}-${runId}-stuck`;
      held.set(key, { arrived: new Latch(), release: new Latch() });
      const stuck = request(app.getHttpServer())
        .post(`/write?key=${key}`)
        .then(
          () => 'answered',
          () => 'cut off',
        );
      await held.get(key)!.arrived.wait;
      await app.close(); // returns although the request never finished
      expect(logger.messages('warn').join('\n')).toMatch(/Shutting down with 1 requests still handling or saving sessions/);
      held.get(key)!.release.open();
      expect(await stuck).toBe('cut off');
    });

    it('leaves no timer or handle of its own open after close()', async () => {
      const count = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
      const before = count();
      const app = await start(platform, false);
      const res = await request(app.getHttpServer()).post('/write?key=plain').expect(201);
      await request(app.getHttpServer()).get('/note').set('Cookie', sessionCookie(res)).expect(200);
      await app.close();
      expect(count()).toBe(before);
    });
  });
}
