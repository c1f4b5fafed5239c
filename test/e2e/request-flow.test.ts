import { Injectable, Module, type CallHandler, type ExecutionContext, type INestApplication, type NestInterceptor } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { mergeMap, type Observable } from 'rxjs';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InMemorySessionStore, SessionStoreUnavailableError, SessionsModule, SessionsService } from '../../src/index.js';
import {
  appOn,
  AuthService,
  ChainController,
  GuardedController,
  LoadsSessionGuard,
  MarksAfterInterceptor,
  OTHER_SECRET,
  PLATFORMS,
  ProbeController,
  RecordingLogger,
  SECRET,
  SignsInGuard,
  VisitsModule,
  sessionCookie,
  setCookies,
} from '../fixtures/app.js';

/**
 * Sets `key` in the session after the chain has run, when the request has the header `x-<key>: 1`;
 * saves it only when asked to (`x-save: 1`). One subclass per place an interceptor can stand.
 */
@Injectable()
abstract class ChangesAfterChain implements NestInterceptor {
  protected abstract readonly key: string;
  constructor(private readonly sessions: SessionsService) {}
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(
      mergeMap(async (value: unknown) => {
        const { headers } = context.switchToHttp().getRequest<{ headers: Record<string, string | undefined> }>();
        if (headers[`x-${this.key}`] !== '1') return value;
        const session = await this.sessions.load(context);
        session.set(this.key, true);
        if (headers['x-save'] === '1') await session.save();
        return value;
      }),
    );
  }
}

/** An APP_INTERCEPTOR of the root module: outside the sessions interceptor. */
@Injectable()
class OuterInterceptor extends ChangesAfterChain {
  protected readonly key = 'outer';
}

/** For app.useGlobalInterceptors: inside the sessions interceptor. */
class InnerGlobalInterceptor extends ChangesAfterChain {
  protected readonly key = 'inner';
}

/** An APP_INTERCEPTOR of a module imported after SessionsModule: inside the sessions interceptor. */
@Injectable()
class ModuleInterceptor extends ChangesAfterChain {
  protected readonly key = 'module';
}

@Module({ providers: [{ provide: APP_INTERCEPTOR, useClass: ModuleInterceptor }] })
class InterceptsModule {}

/** An APP_INTERCEPTOR of a module imported before SessionsModule: outside the sessions interceptor. */
@Injectable()
class BeforeInterceptor extends ChangesAfterChain {
  protected readonly key = 'before';
}

@Module({ providers: [{ provide: APP_INTERCEPTOR, useClass: BeforeInterceptor }] })
class BeforeSessionsModule {}

describe.each(PLATFORMS)('the request flow on %s', (platform) => {
  const createApp = appOn(platform);

  describe('everything that loads the session is saved by the one interceptor', () => {
    let app: INestApplication;
    let logger: RecordingLogger;
    let http: ReturnType<INestApplication['getHttpServer']>;
    const methods = {
      read: ProbeController.prototype.read,
      write: ProbeController.prototype.write,
      after: ChainController.prototype.after,
      events: ChainController.prototype.events,
    };

    beforeAll(async () => {
      logger = new RecordingLogger();
      app = await createApp(
        { secret: SECRET, store: new InMemorySessionStore() },
        {
          logger,
          controllers: [ProbeController, ChainController, GuardedController],
          providers: [
            LoadsSessionGuard,
            AuthService,
            SignsInGuard,
            MarksAfterInterceptor,
            { provide: APP_INTERCEPTOR, useClass: OuterInterceptor },
          ],
          imports: [VisitsModule, InterceptsModule],
          beforeInit: (a) => a.useGlobalInterceptors(new InnerGlobalInterceptor(a.get(SessionsService))),
        },
      );
      http = app.getHttpServer();
    });
    afterAll(() => app.close());

    it('a route interceptor that changes the session after the handler: both changes are saved', async () => {
      const agent = request.agent(http);
      await agent.post('/chain/after').expect(201);
      expect((await agent.get('/all')).body).toEqual({ handler: true, after: 'interceptor' });
    });

    it('an interceptor that maps a domain error to a 400: the changes are kept, as for any 4xx', async () => {
      const agent = request.agent(http);
      const res = await agent.post('/chain/domain-error').expect(400);
      expect(res.body.message).toBe('out of stock');
      expect(setCookies(res)).toHaveLength(1);
      expect((await agent.get('/all')).body).toEqual({ attempts: 1 });
    });

    it('an HttpException with a 3xx status (a redirect thrown) keeps the changes, as a 4xx does', async () => {
      const agent = request.agent(http);
      const res = await agent.post('/chain/redirect').expect(303);
      expect(setCookies(res)).toHaveLength(1);
      expect((await agent.get('/all')).body).toEqual({ redirected: true });
    });

    it('a NestMiddleware that loads the session on a route without @Session(): its change is saved', async () => {
      const agent = request.agent(http);
      await agent.get('/chain/middleware').expect(200);
      await agent.get('/chain/middleware').expect(200);
      expect((await agent.get('/all')).body).toEqual({ visits: 2 });
    });

    it('a guard that reaches SessionsService through another service: its change is saved', async () => {
      const agent = request.agent(http);
      await agent.get('/chain/auth').expect(200);
      expect((await agent.get('/all')).body).toEqual({ user: 'via-auth-service' });
    });

    it('an interceptor of app.useGlobalInterceptors runs inside: its change after the handler is saved', async () => {
      const agent = request.agent(http);
      await agent.post('/write').set('x-inner', '1').send({ value: 1 }).expect(201);
      expect((await agent.get('/all')).body).toEqual({ value: 1, inner: true });
    });

    it('an APP_INTERCEPTOR of a module imported after SessionsModule runs inside: its change is saved', async () => {
      const agent = request.agent(http);
      await agent.post('/write').set('x-module', '1').send({ value: 1 }).expect(201);
      expect((await agent.get('/all')).body).toEqual({ value: 1, module: true });
    });

    it('an APP_INTERCEPTOR of the root module runs outside: a change after the chain needs save()', async () => {
      const agent = request.agent(http);
      await agent.post('/write').send({ value: 1 }).expect(201);
      await agent.get('/read').set('x-outer', '1').expect(200);
      expect((await agent.get('/all')).body).toEqual({ value: 1 });
      expect(logger.messages('warn').filter((m) => m.startsWith('ProbeController.read:'))[0]).toMatch(
        /never saved, because it was changed after the sessions interceptor had saved it/,
      );
      await agent.get('/read').set('x-outer', '1').set('x-save', '1').expect(200);
      expect((await agent.get('/all')).body).toEqual({ value: 1, outer: true });
    });

    it('a handler without @Session() that loads the session itself: saved by save(); left unsaved, a warning says so', async () => {
      const agent = request.agent(http);
      await agent.post('/write').send({ value: 1 }).expect(201);
      await agent.post('/chain/late-load').send({ save: true }).expect(201);
      expect((await agent.get('/all')).body).toEqual({ value: 1, late: true });
      expect(logger.messages('warn').join('\n')).not.toMatch(/POST \/chain\/late-load/);
      await agent.post('/chain/late-load').send({}).expect(201);
      await agent.post('/write').send({ value: 2 }).expect(201);
      const warnings = logger.messages('warn').filter((m) => m.startsWith('POST /chain/late-load:'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(
        /never saved, because the sessions interceptor did not run after it was loaded.*"await session\.save\(\)"/,
      );
    });

    it('an inner interceptor that loads the session on a route without @Session(): a warning names the handler', async () => {
      const agent = request.agent(http);
      await agent.post('/chain/after-plain').expect(201);
      await agent.post('/chain/after-plain').expect(201);
      expect((await agent.get('/all')).body).toEqual({});
      expect(logger.messages('warn').filter((m) => m.startsWith('ChainController.afterPlain:'))).toHaveLength(1);
    });

    it('a guard that changes the session and then refuses the request: nothing is saved, and a warning says so', async () => {
      const agent = request.agent(http);
      await agent.post('/write').send({ value: 1 }).expect(201);
      await agent.get('/guarded/plain?mark=refused&deny=1').expect(403);
      expect((await agent.get('/all')).body).toEqual({ value: 1 });
      expect(logger.messages('warn').filter((m) => m.startsWith('GuardedController.plain:'))[0]).toMatch(
        /never saved, because the sessions interceptor did not run after it was loaded/,
      );
    });

    it('a server-sent event stream saves the changes each event makes to an existing session', async () => {
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 1 }));
      const res = await request(http).get('/chain/events').set('Cookie', cookie).expect(200);
      expect(res.text).toContain('"step":2');
      expect((await request(http).get('/all').set('Cookie', cookie)).body).toEqual({ value: 1, event1: true, event2: true });
    });

    it('a new session cannot start in a stream whose headers are sent: nothing is stored, and a warning names the handler', async () => {
      const res = await request(http).get('/chain/events').expect(200);
      expect(setCookies(res)).toEqual([]);
      expect(logger.messages('warn').join('\n')).toMatch(/ChainController\.events: the response was sent before the session was saved/);
    });

    it('controller methods are the same functions after init as before', () => {
      expect(ProbeController.prototype.read).toBe(methods.read);
      expect(ProbeController.prototype.write).toBe(methods.write);
      expect(ChainController.prototype.after).toBe(methods.after);
      expect(ChainController.prototype.events).toBe(methods.events);
    });
  });

  it('an APP_INTERCEPTOR of a module imported before SessionsModule runs outside it', async () => {
    const logger = new RecordingLogger();
    const app = await createApp(SECRET, {
      logger,
      sessions: [BeforeSessionsModule, SessionsModule.forRoot({ secret: SECRET, store: new InMemorySessionStore() })],
    });
    try {
      const agent = request.agent(app.getHttpServer());
      await agent.post('/write').set('x-before', '1').send({ value: 1 }).expect(201);
      expect((await agent.get('/all')).body).toEqual({ value: 1 });
      expect(logger.messages('warn').join('\n')).toMatch(
        /ProbeController.write: a change to the session was never saved, because it was changed after/,
      );
      await agent.post('/write').set('x-before', '1').set('x-save', '1').send({ value: 2 }).expect(201);
      expect((await agent.get('/all')).body).toEqual({ value: 2, before: true });
    } finally {
      await app.close();
    }
  });

  it('a save that fails is answered with its error, and not reported again as a change nobody saved', async () => {
    class DownOnUpdate extends InMemorySessionStore {
      override async update(): Promise<undefined> {
        throw new SessionStoreUnavailableError('the test store is down for updates');
      }
    }
    const logger = new RecordingLogger();
    const app = await createApp({ secret: SECRET, store: new DownOnUpdate() }, { logger });
    try {
      const agent = request.agent(app.getHttpServer());
      await agent.post('/write').send({ value: 1 }).expect(201);
      await agent.post('/write').send({ value: 2 }).expect(503);
      await agent.get('/read').expect(200);
      expect(logger.messages('error').join('\n')).toMatch(/Session store unavailable: the test store is down for updates/);
      expect(logger.messages('warn').join('\n')).not.toMatch(/never saved/);
    } finally {
      await app.close();
    }
  });

  describe('several applications in one process', () => {
    it('two apps with different secrets and stores keep their sessions apart', async () => {
      const storeA = new InMemorySessionStore();
      const storeB = new InMemorySessionStore();
      const a = await createApp({ secret: SECRET, store: storeA });
      const b = await createApp({ secret: OTHER_SECRET, store: storeB });
      try {
        const cookieA = sessionCookie(await request(a.getHttpServer()).post('/write').send({ value: 'a' }));
        expect((await request(b.getHttpServer()).get('/read').set('Cookie', cookieA)).body).toMatchObject({ value: null, isNew: true });
        const cookieB = sessionCookie(await request(b.getHttpServer()).post('/write').send({ value: 'b' }));
        expect((await request(a.getHttpServer()).get('/read').set('Cookie', cookieA)).body.value).toBe('a');
        expect((await request(b.getHttpServer()).get('/read').set('Cookie', cookieB)).body.value).toBe('b');
        expect((await request(a.getHttpServer()).get('/read').set('Cookie', cookieB)).body.isNew).toBe(true);
        expect([storeA.size, storeB.size]).toEqual([1, 1]);
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('an app created after another was closed has working sessions', async () => {
      const first = await createApp({ secret: SECRET, store: new InMemorySessionStore() });
      await request(first.getHttpServer()).post('/write').send({ value: 1 }).expect(201);
      await first.close();
      const store = new InMemorySessionStore();
      const second = await createApp({ secret: OTHER_SECRET, store });
      try {
        const cookie = sessionCookie(await request(second.getHttpServer()).post('/write').send({ value: 'second' }));
        expect((await request(second.getHttpServer()).get('/read').set('Cookie', cookie)).body.value).toBe('second');
        expect(store.size).toBe(1);
      } finally {
        await second.close();
      }
    });
  });
});
