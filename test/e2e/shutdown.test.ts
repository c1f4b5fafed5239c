import {
  Controller,
  Get,
  Inject,
  Injectable,
  Module,
  Post,
  Query,
  type BeforeApplicationShutdown,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
  type INestApplication,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { createClient } from 'redis';
import { mergeMap, toArray, type Observable } from 'rxjs';
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisSessionStore, Session, SessionsModule, SessionsService } from '../../src/index.js';
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

/** Holds the answer of the chain inside it, once that chain has completed, until released. */
class HoldingInterceptor implements NestInterceptor {
  readonly holding = new Latch();
  readonly release = new Latch();
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(
      toArray(),
      mergeMap(async ([value]) => {
        this.holding.open();
        await this.release.wait;
        return value;
      }),
    );
  }
}

async function start(
  platform: Platform,
  logger: RecordingLogger | false,
  shutdownTimeout?: number,
  outer?: NestInterceptor,
): Promise<INestApplication> {
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
    providers: [ShutdownProbe, ...(outer ? [{ provide: APP_INTERCEPTOR, useValue: outer }] : [])],
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
      expect(logger.messages('warn').join('\n')).toMatch(
        /Shutting down after shutdownTimeout \(0\.2 s\) with 1 request\(s\) not yet answered and 0 save\(s\) under way: .*Raise shutdownTimeout/,
      );
      held.get(key)!.release.open();
      expect(await stuck).toBe('cut off');
    });

    it('waits until the response of a request in flight has gone out, not only until its chain completed', async () => {
      // An interceptor outside the sessions interceptor holds the answer after the session was saved.
      const outer = new HoldingInterceptor();
      const app = await start(platform, false, 3600, outer);
      try {
        const key = `${platform}-${runId}-late`;
        const order: string[] = [];
        const response = request(app.getHttpServer())
          .post(`/write?key=${key}`)
          .then((res) => res);
        await outer.holding.wait; // the chain inside it has completed, the session saved
        // The step of app.close() that waits, called by itself: it must not end before the answer has gone out.
        const waiting = app
          .get(SessionsService)
          .beforeApplicationShutdown()
          .then(() => order.push('wait over'));
        await null; // a wait that had nothing to wait for would have ended by now
        order.push('released');
        outer.release.open();
        const res = await response;
        await waiting;
        expect(order).toEqual(['released', 'wait over']);
        expect(res.status).toBe(201);
      } finally {
        await app.close();
      }
    });

    it('does not wait for requests that arrive once the shutdown has begun', async () => {
      const app = await start(platform, false, 3600);
      await app.listen(0, '127.0.0.1');
      const url = await app.getUrl();
      const first = `${platform}-${runId}-first`;
      const later = `${platform}-${runId}-later`;
      for (const key of [first, later]) held.set(key, { arrived: new Latch(), release: new Latch() });
      const firstDone = request(url)
        .post(`/write?key=${first}`)
        .then((res) => res.status);
      await held.get(first)!.arrived.wait;
      const closing = app.close();
      await app.get(ShutdownProbe).reached.wait;
      // Arrives during the wait and is held for good: were it waited for, close() would wait an hour.
      const laterDone = request(url)
        .post(`/write?key=${later}`)
        .then(
          (res) => res.status,
          () => 'cut off',
        );
      await held.get(later)!.arrived.wait;
      held.get(first)!.release.open();
      expect(await firstDone).toBe(201);
      await closing;
      expect(await laterDone).toBe('cut off');
      held.get(later)!.release.open();
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
