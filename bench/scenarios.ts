/**
 * The apps under test. Every scenario serves the same three routes:
 *   GET /read   reads one key of the session
 *   POST /write changes one key ({ value }, plus { blob } when seeding a larger session)
 *   GET /none   takes no session
 * Each runs in its own forked process (server.ts); nothing here runs in the load generator's process.
 */
import {
  Body,
  Controller,
  Get,
  Injectable,
  Module,
  Post,
  Req,
  Res,
  type CallHandler,
  type ExecutionContext,
  type INestApplication,
  type NestInterceptor,
  type Type,
} from '@nestjs/common';
import type { Observable } from 'rxjs';
import { APP_INTERCEPTOR, NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
// Each server process imports only what its own scenario uses (see startScenario), so it starts quickly.
type IronModule = typeof import('iron-session');
let iron: IronModule;
import {
  CookieSessionStore,
  InMemorySessionStore,
  MemcachedSessionStore,
  PostgresSessionStore,
  RedisSessionStore,
  Session,
  SessionsModule,
  type SessionStore,
} from '../src/index.js';

export type Platform = 'express' | 'fastify';
export type Kind =
  | 'ceiling'
  | 'noop-interceptor'
  | 'ours-memory'
  | 'ours-memory-untraced'
  | 'noop-plus-ours'
  | 'ours-cookie'
  | 'ours-redis'
  | 'ours-postgres'
  | 'ours-memcached'
  | 'express-session-memory'
  | 'express-session-redis'
  | 'express-session-memcached'
  | 'cookie-session'
  | 'iron-session'
  | 'fastify-secure-session'
  | 'fastify-session-memory'
  | 'fastify-session-redis';

export interface Scenario {
  platform: Platform;
  kind: Kind;
  /** Seconds a session lives (the soak makes them expire); default the module's. */
  maxAge?: number;
  /** Keeps this server's sessions apart (Redis key prefix, PostgreSQL table): the scaling run's populations. */
  namespace?: string;
}

/** Where a scenario's Redis store keeps its sessions. */
export const oursRedisPrefix = (namespace?: string) => `${REDIS_PREFIX}ours:${namespace ? `${namespace}:` : ''}`;
/** The PostgreSQL table of a scenario's store. */
export const oursPgTable = (namespace?: string) => (namespace ? `${PG_TABLE}_${namespace}` : PG_TABLE);

export const LABELS: Record<Kind, string> = {
  ceiling: 'no sessions (ceiling)',
  'noop-interceptor': 'no sessions, a global no-op interceptor',
  'ours-memory': 'nest-sessions, in-memory',
  'ours-memory-untraced': 'nest-sessions, in-memory, telemetry: false',
  'noop-plus-ours': 'a no-op interceptor + nest-sessions, in-memory',
  'ours-cookie': 'nest-sessions, cookie (encrypted)',
  'ours-redis': 'nest-sessions, Redis',
  'ours-postgres': 'nest-sessions, PostgreSQL',
  'ours-memcached': 'nest-sessions, Memcached',
  'express-session-memory': 'express-session, MemoryStore',
  'express-session-redis': 'express-session + connect-redis',
  'express-session-memcached': 'express-session + connect-memcached',
  'cookie-session': 'cookie-session (signed only)',
  'iron-session': 'iron-session (encrypted)',
  'fastify-secure-session': '@fastify/secure-session (encrypted)',
  'fastify-session-memory': '@fastify/session, MemoryStore',
  'fastify-session-redis': '@fastify/session + connect-redis',
};

/** What runs where. Express middleware (express-session, cookie-session) is measured on Express, its home. */
export const SCENARIOS: Scenario[] = [
  ...(
    [
      'ceiling',
      'noop-interceptor',
      'ours-memory',
      'ours-memory-untraced',
      'noop-plus-ours',
      'ours-cookie',
      'ours-redis',
      'ours-postgres',
      'ours-memcached',
      'express-session-memory',
      'express-session-redis',
      'express-session-memcached',
      'cookie-session',
      'iron-session',
    ] as Kind[]
  ).map((kind) => ({ platform: 'express' as const, kind })),
  ...(
    [
      'ceiling',
      'noop-interceptor',
      'ours-memory',
      'ours-memory-untraced',
      'noop-plus-ours',
      'ours-cookie',
      'ours-redis',
      'ours-postgres',
      'ours-memcached',
      'iron-session',
      'fastify-secure-session',
      'fastify-session-memory',
      'fastify-session-redis',
    ] as Kind[]
  ).map((kind) => ({ platform: 'fastify' as const, kind })),
];

export const SECRET = 'benchmark-secret-benchmark-secret-0123456789';
export const REDIS_PREFIX = 'bench:';
export const PG_TABLE = 'bench_sessions';

type Body_ = { value?: string; blob?: string };
/** The request as the session middleware sees it: Express's, or Fastify's raw one under middie. */
const raw = (req: unknown) => ((req as { raw?: unknown }).raw ?? req) as Record<string, any>;

@Controller()
class CeilingController {
  @Get('read') read() {
    return { value: null };
  }
  @Post('write') write(@Body() _body: Body_) {
    return { ok: true };
  }
  @Get('none') none() {
    return { ok: true };
  }
}

@Controller()
class OursController {
  @Get('read') read(@Session() session: Session<{ value: string }>) {
    return { value: session.get('value') ?? null };
  }
  @Post('write') write(@Session() session: Session<{ value: string; blob: string }>, @Body() body: Body_) {
    session.set('value', body.value ?? '');
    if (body.blob) session.set('blob', body.blob);
    return { ok: true };
  }
  @Get('none') none() {
    return { ok: true };
  }
}

/** express-session, cookie-session and @fastify/session all hang a plain object or a get/set API on req.session. */
@Controller()
class ReqSessionController {
  @Get('read') read(@Req() req: unknown) {
    const s = raw(req).session ?? (req as any).session;
    return { value: (typeof s.get === 'function' ? s.get('value') : s.value) ?? null };
  }
  @Post('write') write(@Req() req: unknown, @Body() body: Body_) {
    const s = raw(req).session ?? (req as any).session;
    if (typeof s.set === 'function') {
      s.set('value', body.value);
      if (body.blob) s.set('blob', body.blob);
    } else {
      s.value = body.value;
      if (body.blob) s.blob = body.blob;
    }
    return { ok: true };
  }
  @Get('none') none() {
    return { ok: true };
  }
}

/** What most apps already have: one global interceptor (logging, serialisation, tracing) that passes through. */
@Injectable()
class NoopInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle();
  }
}

const IRON = { password: SECRET, cookieName: 'session', cookieOptions: { secure: false } };

@Controller()
class IronController {
  @Get('read') async read(@Req() req: unknown, @Res({ passthrough: true }) res: unknown) {
    const session = await iron.getIronSession<Body_>(raw(req) as never, raw(res) as never, IRON);
    return { value: session.value ?? null };
  }
  @Post('write') async write(@Req() req: unknown, @Res({ passthrough: true }) res: unknown, @Body() body: Body_) {
    const session = await iron.getIronSession<Body_>(raw(req) as never, raw(res) as never, IRON);
    session.value = body.value;
    if (body.blob) session.blob = body.blob;
    await session.save();
    return { ok: true };
  }
  @Get('none') none() {
    return { ok: true };
  }
}

async function redisClient() {
  const { createClient } = await import('redis');
  const client = createClient({ socket: { host: '127.0.0.1', port: 6379 } });
  await client.connect();
  return client;
}

async function redisStore(prefix: string) {
  const { RedisStore } = await import('connect-redis');
  return new RedisStore({ client: await redisClient(), prefix });
}

type ExpressSession = typeof import('express-session');

/** express-session as users copy it from the NestJS docs (resave and saveUninitialized off), with `store` or its MemoryStore. */
async function useExpressSession(
  app: INestApplication,
  store?: (expressSession: ExpressSession) => Promise<import('express-session').Store>,
): Promise<void> {
  const { default: expressSession } = await import('express-session');
  app.use(
    expressSession({
      secret: SECRET,
      resave: false,
      saveUninitialized: false,
      name: 'session',
      ...(store ? { store: await store(expressSession) } : {}),
    }),
  );
}

/** The memcached the benchmark started (bench/run.ts), as `host:port`. */
export function memcachedServer(): string {
  const server = process.env.BENCH_MEMCACHED;
  if (!server) throw new Error('no memcached for the benchmark (BENCH_MEMCACHED is not set)');
  return server;
}

async function pgPool() {
  const { default: pg } = await import('pg');
  return new pg.Pool({
    host: '127.0.0.1',
    port: 5432,
    database: process.env.PGDATABASE ?? 'test',
    user: process.env.PGUSER ?? 'postgres',
    max: 10,
    connectionTimeoutMillis: 2000,
  });
}

async function oursStore(kind: Kind, namespace?: string): Promise<SessionStore> {
  switch (kind) {
    case 'ours-memory':
    case 'ours-memory-untraced':
      return new InMemorySessionStore({ maxSessions: 1_000_000, sweepInterval: 1 });
    case 'ours-cookie':
      return new CookieSessionStore({ maxChunks: 8 });
    case 'ours-redis':
      return new RedisSessionStore(await redisClient(), { prefix: oursRedisPrefix(namespace) });
    case 'ours-postgres':
      return new PostgresSessionStore(await pgPool(), { tableName: oursPgTable(namespace), createTableIfMissing: true, pruneInterval: 0 });
    case 'ours-memcached': {
      const { MemcacheClient } = await import('memcache-client');
      return new MemcachedSessionStore(new MemcacheClient({ server: memcachedServer(), cmdTimeout: 1000 }), {
        prefix: `${REDIS_PREFIX}ours:`,
      });
    }
    default:
      throw new Error(`not ours: ${kind}`);
  }
}

/** Builds and starts the scenario's app on a free port. */
export async function startScenario({ platform, kind, maxAge, namespace }: Scenario): Promise<{ app: INestApplication; port: number }> {
  const imports: unknown[] = [];
  let controller: Type = CeilingController;
  const providers: unknown[] = [];
  if (kind === 'noop-interceptor') {
    providers.push({ provide: APP_INTERCEPTOR, useClass: NoopInterceptor });
  } else if (kind === 'noop-plus-ours') {
    // An app that already has a global interceptor (its own, in the root module) and adds sessions.
    providers.push({ provide: APP_INTERCEPTOR, useClass: NoopInterceptor });
    imports.push(SessionsModule.forRoot({ secret: SECRET, store: await oursStore('ours-memory') }));
    controller = OursController;
  } else if (kind.startsWith('ours-')) {
    // Telemetry is on by default; @opentelemetry/api is installed and no SDK is registered, as in an
    // app that has the API through another package but collects nothing.
    const telemetry = kind !== 'ours-memory-untraced';
    imports.push(
      SessionsModule.forRoot({ secret: SECRET, store: await oursStore(kind, namespace), telemetry, ...(maxAge ? { maxAge } : {}) }),
    );
    controller = OursController;
  } else if (kind === 'iron-session') {
    iron = await import('iron-session');
    controller = IronController;
  } else if (kind !== 'ceiling') {
    controller = ReqSessionController;
  }

  @Module({ imports: imports as never[], controllers: [controller], providers: providers as never[] })
  class BenchModule {}

  const app =
    platform === 'fastify'
      ? await NestFactory.create<NestFastifyApplication>(BenchModule, new FastifyAdapter(), { logger: false, abortOnError: false })
      : await NestFactory.create(BenchModule, { logger: false, abortOnError: false });

  switch (kind) {
    case 'express-session-memory':
      await useExpressSession(app);
      break;
    case 'express-session-redis':
      await useExpressSession(app, async () => redisStore(`${REDIS_PREFIX}es:`));
      break;
    case 'express-session-memcached':
      await useExpressSession(app, async (expressSession) => {
        const { default: connectMemcached } = await import('connect-memcached');
        const MemcachedStore = connectMemcached(expressSession);
        return new MemcachedStore({ hosts: [memcachedServer()], prefix: `${REDIS_PREFIX}es:` });
      });
      break;
    case 'cookie-session': {
      const { default: cookieSession } = await import('cookie-session');
      app.use(cookieSession({ name: 'session', keys: [SECRET] }));
      break;
    }
    case 'fastify-secure-session': {
      const { default: fastifySecureSession } = await import('@fastify/secure-session');
      await (app as NestFastifyApplication).register(fastifySecureSession as never, {
        key: Buffer.alloc(32, 7),
        cookieName: 'session',
        cookie: { path: '/', httpOnly: true },
      });
      break;
    }
    case 'fastify-session-memory':
    case 'fastify-session-redis': {
      const { default: fastifyCookie } = await import('@fastify/cookie');
      const { default: fastifySession } = await import('@fastify/session');
      await (app as NestFastifyApplication).register(fastifyCookie as never);
      const store = kind === 'fastify-session-redis' ? await redisStore(`${REDIS_PREFIX}fs:`) : undefined;
      await (app as NestFastifyApplication).register(fastifySession as never, {
        secret: SECRET,
        cookieName: 'session',
        saveUninitialized: false,
        cookie: { secure: false, path: '/' },
        ...(store ? { store } : {}),
      });
      break;
    }
  }

  await app.listen(0, '127.0.0.1');
  const address = app.getHttpServer().address() as { port: number };
  return { app, port: address.port };
}
