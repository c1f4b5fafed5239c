import { Controller, Get, Injectable, Module, Post, type MiddlewareConsumer, type NestMiddleware, type NestModule } from '@nestjs/common';
import { context, metrics, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  CookieSessionStore,
  InMemorySessionStore,
  Session,
  SessionsService,
  type SessionsModuleOptions,
  type SessionStore,
} from '../../src/index.js';
import { appOn, PLATFORMS, SECRET, sessionCookie, type Platform } from '../fixtures/app.js';
import { FlakyStore } from '../fixtures/passport.js';

/** Collects on demand: the test reads the counters when it wants them. */
class TestReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

const spans = new InMemorySpanExporter();
const reader = new TestReader();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
const meterProvider = new MeterProvider({ readers: [reader] });

beforeAll(() => {
  // What an app's OpenTelemetry SDK setup does before the app starts.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(tracerProvider);
  metrics.setGlobalMeterProvider(meterProvider);
});

afterAll(async () => {
  trace.disable();
  metrics.disable();
  context.disable();
  await tracerProvider.shutdown();
  await meterProvider.shutdown();
});

afterEach(() => {
  spans.reset();
  vi.useRealTimers();
});

/** Every data point of the module's counters, as `name{key=value,...}` → total so far. */
async function counters(): Promise<Map<string, number>> {
  const { resourceMetrics } = await reader.collect();
  const totals = new Map<string, number>();
  for (const scope of resourceMetrics.scopeMetrics) {
    if (scope.scope.name !== 'nest-sessions') continue;
    for (const metric of scope.metrics) {
      for (const point of metric.dataPoints) {
        const attributes = Object.entries(point.attributes)
          .map(([k, v]) => `${k}=${String(v)}`)
          .join(',');
        totals.set(attributes ? `${metric.descriptor.name}{${attributes}}` : metric.descriptor.name, point.value as number);
      }
    }
  }
  return totals;
}

/** What the counters gained between two readings (only those that moved). */
function gained(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of after) {
    const delta = value - (before.get(key) ?? 0);
    if (delta !== 0) out[key] = delta;
  }
  return out;
}

const tracer = trace.getTracer('test');

/** A span around each request, as an HTTP instrumentation makes: the store's spans belong under it. */
@Injectable()
class RequestSpan implements NestMiddleware {
  use(_req: unknown, res: { setHeader(name: string, value: string): void; on(event: string, f: () => void): void }, next: () => void) {
    tracer.startActiveSpan('request', (span) => {
      res.setHeader('x-span', span.spanContext().spanId);
      res.on('close', () => span.end());
      next();
    });
  }
}

@Controller('t')
class TelemetryController {
  constructor(private readonly sessions: SessionsService) {}

  @Post('write')
  write(@Session() session: Session<{ n: number }>) {
    session.set('n', (session.get('n') ?? 0) + 1);
    return {};
  }

  @Get('read')
  read(@Session() session: Session<{ n: number }>) {
    return { n: session.get('n') ?? null };
  }

  @Post('login')
  login(@Session() session: Session) {
    session.setUser('ann');
    return {};
  }

  @Post('logout')
  logout(@Session() session: Session) {
    session.destroy();
    return {};
  }

  @Post('huge')
  huge(@Session() session: Session<{ blob: string }>) {
    session.set('blob', 'x'.repeat(20_000));
    return {};
  }

  @Post('revoke')
  async revoke() {
    return { ended: await this.sessions.destroyUserSessions('ann') };
  }
}

@Module({ controllers: [TelemetryController], providers: [RequestSpan] })
class TelemetryModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(RequestSpan).forRoutes('*path');
  }
}

function start(platform: Platform, options: Partial<SessionsModuleOptions> & { store?: SessionStore } = {}) {
  return appOn(platform)({ secret: SECRET, maxAge: 3600, ...options }, { controllers: [], providers: [], imports: [TelemetryModule] });
}

const storeSpans = (): ReadableSpan[] => spans.getFinishedSpans().filter((s) => s.name.startsWith('nest-sessions '));

describe.each(PLATFORMS)('OpenTelemetry on %s', (platform) => {
  it('puts each store call in a client span under the request, named for the operation', async () => {
    const app = await start(platform, { store: new InMemorySessionStore() });
    try {
      const http = app.getHttpServer();
      const first = await request(http).post('/t/write').expect(201);
      const cookie = sessionCookie(first);
      const second = await request(http).post('/t/write').set('Cookie', cookie).expect(201);
      const [create, load, update] = storeSpans();
      expect(storeSpans().map((s) => s.name)).toEqual(['nest-sessions create', 'nest-sessions load', 'nest-sessions update']);
      for (const span of [create!, load!, update!]) {
        expect(span.kind).toBe(SpanKind.CLIENT);
        expect(span.attributes).toEqual({ 'nest_sessions.store': 'InMemorySessionStore' });
        expect(span.status.code).toBe(SpanStatusCode.UNSET);
        expect(span.instrumentationScope.name).toBe('nest-sessions');
      }
      expect(create!.parentSpanContext?.spanId).toBe(first.headers['x-span']);
      expect(load!.parentSpanContext?.spanId).toBe(second.headers['x-span']);
      expect(update!.parentSpanContext?.spanId).toBe(second.headers['x-span']);
    } finally {
      await app.close();
    }
  });

  it('marks a failed store call in its span, and counts the 503', async () => {
    const store = new FlakyStore();
    const app = await start(platform, { store });
    try {
      const before = await counters();
      store.failures = 1;
      const res = await request(app.getHttpServer()).post('/t/write').expect(503);
      const [create] = storeSpans();
      expect(create!.name).toBe('nest-sessions create');
      expect(create!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'InMemorySessionStore: down for the test' });
      expect(create!.events.map((e) => e.name)).toEqual(['exception']);
      expect(create!.parentSpanContext?.spanId).toBe(res.headers['x-span']);
      // A write that failed is not a save.
      expect(gained(before, await counters())).toEqual({ 'nest_sessions.loads{outcome=none}': 1, 'nest_sessions.unavailable': 1 });
    } finally {
      await app.close();
    }
  });

  it('counts loads, saves, creates, destroys, revocations and refused tokens', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.parse('2026-12-02T00:00:00Z') });
    const app = await start(platform, { store: new InMemorySessionStore(), rolling: true, touchAfter: 1 });
    try {
      const http = app.getHttpServer();
      const before = await counters();
      const cookie = sessionCookie(await request(http).post('/t/write').expect(201));
      await request(http).post('/t/write').set('Cookie', cookie).expect(201);
      vi.setSystemTime(Date.now() + 2_000);
      await request(http).get('/t/read').set('Cookie', cookie).expect(200);
      const signedIn = sessionCookie(await request(http).post('/t/login').set('Cookie', cookie).expect(201));
      await request(http).get('/t/read').set('Cookie', 'session=not-a-token').expect(200);
      const other = sessionCookie(await request(http).post('/t/write').expect(201));
      await request(http).post('/t/logout').set('Cookie', other).expect(201);
      expect((await request(http).post('/t/revoke').expect(201)).body).toEqual({ ended: 1 });
      await request(http).get('/t/read').set('Cookie', signedIn).expect(200);
      expect(gained(before, await counters())).toEqual({
        // no token: the first write, the other session's write (the revoking handler loads none);
        // opened: write, read, login, logout; refused: the made-up token and the revoked session's
        'nest_sessions.loads{outcome=none}': 2,
        'nest_sessions.loads{outcome=opened}': 4,
        'nest_sessions.loads{outcome=refused}': 2,
        'nest_sessions.tokens.refused{reason=unknown}': 2,
        'nest_sessions.creates{reason=new}': 2,
        'nest_sessions.creates{reason=regenerate}': 1,
        // create: two new and the signed-in one; destroy: the one regenerated, the logout, the revoked one
        'nest_sessions.saves{operation=create}': 3,
        'nest_sessions.saves{operation=update}': 1,
        'nest_sessions.saves{operation=touch}': 1,
        'nest_sessions.saves{operation=destroy}': 3,
        'nest_sessions.destroys{reason=destroy}': 1,
        'nest_sessions.destroys{reason=revoke}': 1,
      });
      const names = new Set(storeSpans().map((s) => s.name));
      expect(names).toEqual(
        new Set([
          'nest-sessions create',
          'nest-sessions load',
          'nest-sessions update',
          'nest-sessions touch',
          'nest-sessions destroy',
          'nest-sessions index add',
          'nest-sessions index list',
          'nest-sessions index remove',
        ]),
      );
    } finally {
      await app.close();
    }
  });

  it('counts a session found past its absolute timeout as expired, and its token as refused', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.parse('2026-12-02T00:00:00Z') });
    const app = await start(platform, { store: new InMemorySessionStore(), absoluteTimeout: 60 });
    try {
      const http = app.getHttpServer();
      const cookie = sessionCookie(await request(http).post('/t/write').expect(201));
      const before = await counters();
      vi.setSystemTime(Date.now() + 61_000);
      expect((await request(http).get('/t/read').set('Cookie', cookie).expect(200)).body).toEqual({ n: null });
      expect(gained(before, await counters())).toEqual({
        'nest_sessions.loads{outcome=refused}': 1,
        'nest_sessions.tokens.refused{reason=expired}': 1,
        'nest_sessions.expired': 1,
      });
    } finally {
      await app.close();
    }
  });

  it('counts a session too large for its cookie', async () => {
    const app = await start(platform, { store: new CookieSessionStore() });
    try {
      const before = await counters();
      await request(app.getHttpServer()).post('/t/huge').expect(500);
      expect(gained(before, await counters())).toEqual({
        'nest_sessions.loads{outcome=none}': 1,
        // saves count store writes: the cookie store sealed the session, which then did not fit its cookie
        'nest_sessions.saves{operation=create}': 1,
        'nest_sessions.too_large': 1,
      });
    } finally {
      await app.close();
    }
  });

  it('counts requests refused by the anti-forgery checks, by check', async () => {
    const app = await start(platform, { store: new InMemorySessionStore(), csrf: { requireToken: true } });
    try {
      const http = app.getHttpServer();
      const before = await counters();
      for (const site of ['cross-site', 'same-site']) {
        await request(http).post('/t/write').set('Sec-Fetch-Site', site).set('Origin', 'http://evil.example').expect(403);
      }
      await request(http).post('/t/write').expect(403); // no token
      expect(gained(before, await counters())).toEqual({
        'nest_sessions.csrf.refused{check=cross-site}': 2,
        'nest_sessions.csrf.refused{check=token}': 1,
      });
    } finally {
      await app.close();
    }
  });

  it('with telemetry: false, makes no span and counts nothing', async () => {
    const store = new InMemorySessionStore();
    const app = await start(platform, { store, telemetry: false });
    try {
      const http = app.getHttpServer();
      expect(app.get(SessionsService).calls).toBe(store);
      const before = await counters();
      const cookie = sessionCookie(await request(http).post('/t/write').expect(201));
      await request(http).post('/t/logout').set('Cookie', cookie).expect(201);
      expect(storeSpans()).toEqual([]);
      expect(gained(before, await counters())).toEqual({});
    } finally {
      await app.close();
    }
  });
});
