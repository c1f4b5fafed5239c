import type { INestApplication } from '@nestjs/common';
import { createHash } from 'node:crypto';
import net from 'node:net';
import pg from 'pg';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PostgresSessionStore, postgresSessionTableSql, SessionsConfigError } from '../../src/index.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { createApp, RecordingLogger, SECRET, sessionCookie } from '../fixtures/app.js';
import { TcpProxy } from '../fixtures/tcp-proxy.js';
import { describeServerStore, describeStoreFaults, eventually, writtenSession, type MakeStore } from './server-store-suite.js';
import { PG_PORT, requireServer, runId } from './services.js';

const up = await requireServer('PostgreSQL', PG_PORT);

const connection = {
  host: '127.0.0.1',
  database: process.env.PGDATABASE ?? 'test',
  user: process.env.PGUSER ?? 'postgres',
  connectionTimeoutMillis: 2000,
};

let tables = 0;
const tableName = () => `sessions_${runId.replace(/[^a-z0-9]/gi, '_')}_${tables++}`;

/** The admin pool for set-up and for looking behind the store; the store gets a pool of its own. */
let admin: pg.Pool;

const make: MakeStore = async ({ timeout, port = PG_PORT, maxPending } = {}) => {
  const table = tableName();
  await admin.query(postgresSessionTableSql({ tableName: table }));
  const pool = new pg.Pool({ ...connection, port, max: 5 });
  pool.on('error', () => undefined);
  const sent: ('read' | 'write')[] = [];
  // The store checks a connection out per statement: count the statements run on those connections.
  const counted = new Proxy(pool, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== 'connect') return typeof value === 'function' ? value.bind(target) : value;
      return async () => {
        const client = await target.connect();
        return new Proxy(client, {
          get(c, p, r) {
            const v = Reflect.get(c, p, r);
            if (p !== 'query') return typeof v === 'function' ? v.bind(c) : v;
            return (text: string, values?: unknown[]) => {
              sent.push(/^\s*SELECT/i.test(text) ? 'read' : 'write');
              return c.query(text, values);
            };
          },
        });
      };
    },
  });
  const store = new PostgresSessionStore(counted, { tableName: table, timeout, maxPending, pruneInterval: 0 });
  return {
    store,
    sent: () => sent,
    exists: async (id) => (await admin.query(`SELECT 1 FROM "${table}" WHERE id = $1`, [id])).rowCount === 1,
    ttl: async (id) =>
      ((await admin.query(`SELECT expires_at FROM "${table}" WHERE id = $1`, [id])).rows[0].expires_at as Date).getTime() - Date.now(),
    corrupt: async (id) => void (await admin.query(`UPDATE "${table}" SET data = '[1, 2]'::jsonb WHERE id = $1`, [id])),
    plantDeep: async (id, levels) =>
      void (await admin.query(`UPDATE "${table}" SET data = data || jsonb_build_object('deep', $2::jsonb) WHERE id = $1`, [
        id,
        '['.repeat(levels) + ']'.repeat(levels),
      ])),
    close: async () => {
      await pool.end();
      await admin.query(`DROP TABLE IF EXISTS "${table}", "${table}_users"`);
    },
  };
};

describe.skipIf(!up)('PostgresSessionStore', () => {
  beforeAll(() => {
    admin = new pg.Pool({ ...connection, port: PG_PORT, max: 3 });
  });
  afterAll(() => admin.end());

  describeServerStore('PostgresSessionStore', make);

  const proxy = new TcpProxy(PG_PORT);
  describe('behind a proxy', () => {
    beforeAll(() => proxy.up());
    afterAll(() => proxy.down());
    describeStoreFaults('PostgresSessionStore', make, () => proxy);

    it('after a failover that leaves the old connections hanging, requests work again without a restart', async () => {
      const backend = await make({ timeout: 300, port: proxy.port });
      const app = await createApp({ secret: SECRET, store: backend.store });
      try {
        const http = app.getHttpServer();
        const cookie = await writtenSession(http, 'before');
        // Every pooled connection is now dead in the water; new connections reach the database.
        proxy.hangExisting();
        await eventually(async () => {
          expect((await request(http).get('/read').set('Cookie', cookie)).body.value).toBe('before');
        });
        await request(http).post('/write').set('Cookie', cookie).send({ value: 'after' }).expect(201);
      } finally {
        await app.close();
        await backend.close();
        await proxy.down();
        await proxy.up();
      }
    });
  });

  it('survives the server ending a connection in the packet that answered its query (a restart under load)', async () => {
    // pg then emits 'error' on a connection the store holds and is not querying with: without a
    // listener there, the process ends (an uncaught 'error' event), as it did during a restart.
    const terminating = new TerminatingProxy(PG_PORT);
    const port = await terminating.up();
    const backend = await make({ port });
    const ctx = { keyring: new Keyring([SECRET]), tokenName: 'session', logger: new RecordingLogger() as never };
    try {
      const now = Date.now();
      const { token } = await backend.store.create({ user: 'ann' }, { createdAt: now, refreshedAt: now, expiresAt: now + 60_000 }, ctx);
      terminating.arm();
      expect((await backend.store.load(token, ctx))?.data).toEqual({ user: 'ann' });
      expect(terminating.terminated).toBe(1);
      // The pool dropped the ended connection: the next call opens a new one.
      expect((await backend.store.load(token, ctx))?.data).toEqual({ user: 'ann' });
    } finally {
      await backend.close();
      await terminating.down();
    }
  });

  describe('table, pruning and options', () => {
    it('the exported SQL creates the documented table', async () => {
      const table = tableName();
      await admin.query(postgresSessionTableSql({ tableName: table }));
      const { rows } = await admin.query(
        `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`,
        [table],
      );
      expect(rows.map((r) => `${r.column_name} ${r.data_type}`)).toEqual([
        'id text',
        'data jsonb',
        'created_at timestamp with time zone',
        'refreshed_at timestamp with time zone',
        'expires_at timestamp with time zone',
      ]);
      const index = await admin.query(`SELECT indexdef FROM pg_indexes WHERE tablename = $1 AND indexname = $2`, [
        table,
        `${table}_expires_at_idx`,
      ]);
      expect(index.rows[0].indexdef).toMatch(/\(expires_at\)/);
      await admin.query(`DROP TABLE "${table}", "${table}_users"`);
    });

    it('createTableIfMissing creates the table at startup; the prune timer stops with the app', async () => {
      const table = tableName();
      const pool = new pg.Pool({ ...connection, port: PG_PORT, max: 2 });
      const spy = vi.spyOn(globalThis, 'setInterval');
      const store = new PostgresSessionStore(pool, { tableName: table, createTableIfMissing: true, pruneInterval: 60 });
      const app = await createApp({ secret: SECRET, store });
      try {
        expect((await admin.query(`SELECT to_regclass($1) AS t`, [table])).rows[0].t).toBe(table);
        const timer = spy.mock.results.find((r, i) => spy.mock.calls[i]![1] === 60_000)?.value as NodeJS.Timeout;
        expect(timer.hasRef()).toBe(false);
        const cookie = sessionCookie(await request(app.getHttpServer()).post('/write').send({ value: 'pg' }).expect(201));
        expect((await request(app.getHttpServer()).get('/read').set('Cookie', cookie)).body.value).toBe('pg');
        await app.close();
        expect((timer as unknown as { _destroyed: boolean })._destroyed).toBe(true);
      } finally {
        spy.mockRestore();
        await pool.end();
        await admin.query(`DROP TABLE IF EXISTS "${table}", "${table}_users"`);
      }
    });

    it('prune deletes expired rows, one instance at a time (advisory lock)', async () => {
      const table = tableName();
      await admin.query(postgresSessionTableSql({ tableName: table }));
      const pool = new pg.Pool({ ...connection, port: PG_PORT, max: 2 });
      const store = new PostgresSessionStore(pool, { tableName: table, pruneInterval: 0 });
      const ctx = { keyring: new Keyring([SECRET]), tokenName: 'session', logger: new RecordingLogger() };
      const other = await admin.connect();
      try {
        const now = Date.now();
        for (let i = 0; i < 3; i++) await store.create({ i }, { createdAt: now, refreshedAt: now, expiresAt: now + 1_000 }, ctx);
        const live = await store.create({ live: true }, { createdAt: now, refreshedAt: now, expiresAt: now + 3_600_000 }, ctx);
        const later = now + 2_000;
        // Another instance is pruning: it holds the table's lock, so this one leaves the rows alone.
        const key = createHash('sha256').update(`nest-sessions prune "public"."${table}"`).digest().readBigInt64BE().toString();
        await other.query('BEGIN');
        await other.query('SELECT pg_advisory_xact_lock($1::bigint)', [key]);
        expect(await store.prune(later)).toBe(0);
        await other.query('ROLLBACK');
        expect(await store.prune(later)).toBe(3);
        expect(await store.prune(later)).toBe(0);
        const { rows } = await admin.query(`SELECT id FROM "${table}"`);
        expect(rows.map((r) => r.id)).toEqual([live.id]);
      } finally {
        other.release();
        await pool.end();
        await admin.query(`DROP TABLE IF EXISTS "${table}", "${table}_users"`);
      }
    });

    it('a NUL character, which jsonb cannot hold, fails the save naming the key', async () => {
      const backend = await make();
      const app: INestApplication = await createApp({ secret: SECRET, store: backend.store }, { logger: new RecordingLogger() });
      try {
        await request(app.getHttpServer()).post('/set/text').send({ value: 'a\u0000b' }).expect(500);
        expect(backend.sent().filter((s) => s === 'write')).toEqual([]);
      } finally {
        await app.close();
        await backend.close();
      }
    });

    it('several instances starting together all create the table (no race)', async () => {
      const table = tableName();
      const pools = Array.from({ length: 4 }, () => new pg.Pool({ ...connection, port: PG_PORT, max: 2 }));
      try {
        const stores = pools.map(
          (pool) => new PostgresSessionStore(pool, { tableName: table, createTableIfMissing: true, pruneInterval: 0 }),
        );
        const results = await Promise.allSettled(stores.map((store) => store.onModuleInit()));
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
        stores.forEach((store) => store.onModuleDestroy());
      } finally {
        await Promise.all(pools.map((pool) => pool.end()));
        await admin.query(`DROP TABLE IF EXISTS "${table}", "${table}_users"`);
      }
    });

    it("text jsonb cannot hold fails the save as the data's fault (500), not as an outage (503)", async () => {
      const backend = await make();
      const app: INestApplication = await createApp({ secret: SECRET, store: backend.store }, { logger: new RecordingLogger() });
      try {
        const http = app.getHttpServer();
        await request(http).post('/set/text').send({ value: 'lone \ud800 surrogate' }).expect(500);
        await request(http)
          .post('/set/nested')
          .send({ value: { ['key\u0000']: 1 } })
          .expect(500);
        // A backslash followed by "u0000" is ordinary text.
        const agent = request.agent(http);
        await agent.post('/set/path').send({ value: 'C:\\u0000x' }).expect(201);
        expect((await agent.get('/all')).body).toEqual({ path: 'C:\\u0000x' });
      } finally {
        await app.close();
        await backend.close();
      }
    });

    it('a dropped connection does not crash the process when the pool has no error listener', async () => {
      const table = tableName();
      await admin.query(postgresSessionTableSql({ tableName: table }));
      const pool = new pg.Pool({ ...connection, port: PG_PORT, max: 2, application_name: `drop-${table}` });
      try {
        expect(pool.listenerCount('error')).toBe(0);
        const store = new PostgresSessionStore(pool, { tableName: table, pruneInterval: 0 });
        expect(pool.listenerCount('error')).toBe(1);
        const ctx = { keyring: new Keyring([SECRET]), tokenName: 'session', logger: new RecordingLogger() };
        const now = Date.now();
        await store.create({ a: 1 }, { createdAt: now, refreshedAt: now, expiresAt: now + 60_000 }, ctx); // leaves an idle connection
        const removed = new Promise((r) => pool.once('remove', r));
        await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [`drop-${table}`]);
        // The pool drops the dead client after its 'error' (which only the store listens to): by then an
        // unhandled 'error' would have failed the run.
        await removed;
        const { token } = await store.create({ b: 2 }, { createdAt: now, refreshedAt: now, expiresAt: now + 60_000 }, ctx);
        expect((await store.load(token, ctx))?.data).toEqual({ b: 2 });
      } finally {
        await pool.end();
        await admin.query(`DROP TABLE IF EXISTS "${table}", "${table}_users"`);
      }
    });

    it('bad options are refused with a clear message', () => {
      const pool = new pg.Pool(connection);
      expect(() => new PostgresSessionStore({} as pg.Pool)).toThrow(/needs a pg Pool/);
      expect(() => new PostgresSessionStore(pool, { tableName: 'x; DROP TABLE y' })).toThrow(SessionsConfigError);
      expect(() => new PostgresSessionStore(pool, { schemaName: '1abc' })).toThrow(/schemaName must be letters/);
      expect(() => new PostgresSessionStore(pool, { pruneInterval: -1 })).toThrow(/pruneInterval/);
      expect(() => new PostgresSessionStore(pool, { timeout: Number.NaN })).toThrow(/timeout/);
      void pool.end();
    });
  });
});

describe('PostgresSessionStore and the pool it is given', () => {
  it('refuses a pg Pool without connectionTimeoutMillis, naming the option', async () => {
    const unbounded = new pg.Pool({ host: '127.0.0.1', port: PG_PORT });
    try {
      expect(() => new PostgresSessionStore(unbounded)).toThrow(SessionsConfigError);
      expect(() => new PostgresSessionStore(unbounded)).toThrow(
        /no connectionTimeoutMillis.*new Pool\(\{ \.\.\., connectionTimeoutMillis: 2000 \}\)/,
      );
      expect(() => new PostgresSessionStore(new pg.Pool({ host: '127.0.0.1', connectionTimeoutMillis: 0 }))).toThrow(
        /connectionTimeoutMillis/,
      );
    } finally {
      await unbounded.end();
    }
  });

  it('takes a pool with connectionTimeoutMillis, and a pool-like object that has no pg options', async () => {
    const bounded = new pg.Pool({ host: '127.0.0.1', port: PG_PORT, connectionTimeoutMillis: 2000 });
    try {
      expect(() => new PostgresSessionStore(bounded, { pruneInterval: 0 })).not.toThrow();
      const poolLike = { query: bounded.query.bind(bounded), connect: bounded.connect.bind(bounded) };
      expect(() => new PostgresSessionStore(poolLike, { pruneInterval: 0 })).not.toThrow();
    } finally {
      await bounded.end();
    }
  });
});

/**
 * Passes PostgreSQL's protocol through; once armed, it appends to the next reply that ends with
 * ReadyForQuery the FATAL "terminating connection due to administrator command" (57P01) a server sends
 * when it shuts down, in the same write, then closes the connection.
 */
class TerminatingProxy {
  #server: net.Server | undefined;
  readonly #sockets = new Set<net.Socket>();
  #armed = false;
  terminated = 0;

  constructor(private readonly targetPort: number) {}

  arm(): void {
    this.#armed = true;
  }

  async up(): Promise<number> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on('close', () => this.#sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      client.pipe(upstream);
      upstream.on('data', (chunk: Buffer) => {
        const endsReady = chunk.length >= 6 && chunk[chunk.length - 6] === 0x5a && chunk.readInt32BE(chunk.length - 5) === 5;
        if (!this.#armed || !endsReady) return void client.write(chunk);
        this.#armed = false;
        this.terminated++;
        client.end(Buffer.concat([chunk, fatal57P01()]));
        upstream.destroy();
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    this.#server = server;
    return (server.address() as net.AddressInfo).port;
  }

  async down(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()) ?? resolve());
  }
}

/** An ErrorResponse message: severity FATAL, code 57P01. */
function fatal57P01(): Buffer {
  const fields = Buffer.concat(
    [
      ['S', 'FATAL'],
      ['V', 'FATAL'],
      ['C', '57P01'],
      ['M', 'terminating connection due to administrator command'],
    ].map(([type, text]) => Buffer.from(`${type}${text}\0`)),
  );
  const body = Buffer.concat([fields, Buffer.from([0])]);
  const header = Buffer.alloc(5);
  header.write('E', 0);
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}
