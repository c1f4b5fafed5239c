import { Controller, Get, HttpCode, Post, Query, type INestApplication } from '@nestjs/common';
import MC from 'memcache-client';
import pg from 'pg';
import { createClient } from 'redis';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  CookieSessionStore,
  InMemorySessionStore,
  MemcachedSessionStore,
  PostgresSessionStore,
  postgresSessionTableSql,
  RedisSessionStore,
  Session,
  SessionsConfigError,
  SessionsService,
  TrackedSession,
  type SessionEvent,
  type SessionStore,
} from '../../src/index.js';
import { appOn, arrivals, isExpiry, Latch, latches, PLATFORMS, SECRET, setCookies } from '../fixtures/app.js';
import { LocalMemcached, requireMemcached } from './memcached-server.js';
import { deleteRunKeys, PG_PORT, REDIS_PORT, requireServer, runId } from './services.js';

const { MemcacheClient } = MC;

const redisUp = await requireServer('Redis', REDIS_PORT);
const pgUp = await requireServer('PostgreSQL', PG_PORT);
const memcachedUp = requireMemcached();

/** Waits, in a handler that has its session loaded, until the test opens the latch of that name. */
async function hold(key: string | undefined): Promise<void> {
  if (!key) return;
  arrivals.get(key)?.open();
  await latches.get(key)?.wait;
}

@Controller('account')
class AccountController {
  constructor(private readonly sessions: SessionsService) {}

  /** Signs in as ?user=: a new ID, and the session marked as the user's. */
  @Post('login')
  @HttpCode(200)
  login(@Session() session: Session<{ name: string }>, @Query('user') user: string) {
    session.regenerate();
    session.setUser(user);
    session.set('name', user);
    return { user: session.userId };
  }

  @Get('me')
  me(@Session() session: Session<{ name: string; note: string }>) {
    return { user: session.userId ?? null, name: session.get('name') ?? null, note: session.get('note') ?? null };
  }

  @Get('sessions')
  async list(@Session() session: Session) {
    return this.sessions.userSessions(session.userId!, session);
  }

  @Post('sign-out-others')
  @HttpCode(200)
  async signOutOthers(@Session() session: Session) {
    return { ended: await this.sessions.destroyUserSessions(session.userId!, { except: session }) };
  }

  @Post('sign-out-everywhere')
  @HttpCode(200)
  async signOutEverywhere(@Session() session: Session) {
    const ended = await this.sessions.destroyUserSessions(session.userId!);
    session.destroy();
    return { ended };
  }

  @Post('logout')
  @HttpCode(200)
  logout(@Session() session: Session) {
    session.destroy();
    return {};
  }

  /** Hands the session to another user without a new ID (a privilege change done the wrong way, but allowed). */
  @Post('switch')
  @HttpCode(200)
  switchUser(@Session() session: Session, @Query('user') user?: string) {
    session.setUser(user || undefined);
    return { user: session.userId ?? null };
  }

  /** Holds the request (session loaded) until the test lets it go, then writes. */
  @Post('slow-write')
  @HttpCode(200)
  async slowWrite(@Session() session: Session<{ note: string }>, @Query('hold') key?: string) {
    await hold(key);
    session.set('note', 'written late');
    return {};
  }

  /** Holds the request, then regenerates: a new ID for a session that may have been revoked meanwhile. */
  @Post('slow-regenerate')
  @HttpCode(200)
  async slowRegenerate(@Session() session: Session<{ note: string }>, @Query('hold') key?: string) {
    await hold(key);
    session.regenerate();
    session.set('note', 'regenerated late');
    return {};
  }
}

let redis: ReturnType<typeof createClient> | undefined;
let pool: pg.Pool | undefined;
const table = `test_${runId.replace(/-/g, '_')}_users`;
const prefix = `test:${runId}:users:`;

/** The entries the store itself holds for a user, read from the backend (not through the module). */
const rawEntries: Record<string, (store: SessionStore, user: string) => Promise<number>> = {
  // Every entry held, unpruned (a listing would drop those whose session is gone).
  memory: async (store, user) => (await store.users!.list(user, undefined as never, { ended: true })).length,
  redis: async (store, user) => {
    const [zset, hash] = (store as RedisSessionStore).userKeys(user);
    const [listed, details] = [await redis!.zCard(zset), await redis!.hLen(hash)];
    expect(details).toBe(listed); // the two keys hold the same sessions
    return listed;
  },
  postgres: async (_store, user) =>
    Number((await pool!.query(`SELECT count(*) AS n FROM "${table}_users" WHERE user_id = $1`, [user])).rows[0].n),
};

const stores: Record<string, { skip: boolean; make: () => Promise<SessionStore> }> = {
  memory: { skip: false, make: async () => new InMemorySessionStore() },
  redis: {
    skip: !redisUp,
    make: async () => {
      redis ??= await createClient({ socket: { host: '127.0.0.1', port: REDIS_PORT } }).connect();
      return new RedisSessionStore(redis, { prefix });
    },
  },
  postgres: {
    skip: !pgUp,
    make: async () => {
      pool ??= new pg.Pool({ host: '127.0.0.1', port: PG_PORT, user: 'postgres', database: 'test', connectionTimeoutMillis: 2000 });
      return new PostgresSessionStore(pool, { tableName: table, createTableIfMissing: true, pruneInterval: 0 });
    },
  },
};

afterAll(async () => {
  if (redis) {
    await deleteRunKeys();
    redis.destroy();
  }
  if (pool) {
    await pool.query(`DROP TABLE IF EXISTS "${table}", "${table}_users"`);
    await pool.end();
  }
});

/** A device: one cookie, as one browser holds it. */
class Device {
  cookie = '';
  constructor(
    private readonly http: Parameters<typeof request>[0],
    readonly agent = 'test-device',
  ) {}
  #take(res: request.Response): request.Response {
    for (const header of setCookies(res)) {
      if (!header.startsWith('session=')) continue;
      this.cookie = isExpiry(header) ? '' : header.split(';')[0]!;
    }
    return res;
  }
  async post(path: string, status = 200): Promise<request.Response> {
    return this.#take(await request(this.http).post(path).set('Cookie', this.cookie).set('User-Agent', this.agent).expect(status));
  }
  async get(path: string, status = 200): Promise<request.Response> {
    return this.#take(await request(this.http).get(path).set('Cookie', this.cookie).set('User-Agent', this.agent).expect(status));
  }
  /** Starts a request and returns it unfinished (for a handler the test holds). */
  startPost(path: string): Promise<request.Response> {
    return request(this.http)
      .post(path)
      .set('Cookie', this.cookie)
      .set('User-Agent', this.agent)
      .then((res) => this.#take(res));
  }
}

let users = 0;
/** A user name no other test uses, so tests sharing a store never see each other's sessions. */
const newUser = () => `user-${runId}-${++users}`;

for (const [name, { skip, make }] of Object.entries(stores)) {
  for (const platform of PLATFORMS) {
    describe.skipIf(skip)(`a user's sessions with the ${name} store, on ${platform}`, () => {
      let app: INestApplication;
      let http: ReturnType<INestApplication['getHttpServer']>;
      let store: SessionStore;
      const events: SessionEvent[] = [];
      beforeAll(async () => {
        store = await make();
        app = await appOn(platform)(
          // touchAfter 0: every save moves the expiry, and so writes the entry too (the harder case).
          { secret: SECRET, store, touchAfter: 0, onEvent: (event) => void events.push(event) },
          { controllers: [AccountController], providers: [] },
        );
        http = app.getHttpServer();
      });
      afterAll(() => app.close());
      beforeEach(() => {
        events.length = 0;
      });

      async function signedIn(user: string, count: number): Promise<Device[]> {
        const devices = Array.from({ length: count }, (_, i) => new Device(http, `device-${i}`));
        for (const device of devices) await device.post(`/account/login?user=${user}`);
        return devices;
      }

      it('lists the live sessions of a user, marking the current one, with no user agent or address by default', async () => {
        const user = newUser();
        const [a] = await signedIn(user, 3);
        await signedIn(newUser(), 1); // someone else's
        const list = (await a!.get('/account/sessions')).body as Record<string, unknown>[];
        expect(list).toHaveLength(3);
        expect(list.filter((s) => s.current)).toHaveLength(1);
        expect(list[0]!.current).toBe(true); // the oldest: device 0 signed in first
        for (const entry of list) {
          expect(Object.keys(entry).sort()).toEqual(['createdAt', 'current', 'expiresAt', 'lastSeenAt']);
          expect(Date.parse(entry.expiresAt as string)).toBeGreaterThan(Date.now());
        }
      });

      it('"sign out other devices" ends the others and keeps this one; nothing comes back', async () => {
        const user = newUser();
        const [a, b, c] = await signedIn(user, 3);
        const ids = events.filter((e) => e.type === 'regenerated' || e.type === 'created').map((e) => e.id);
        expect((await a!.post('/account/sign-out-others')).body).toEqual({ ended: 2 });
        const revoked = events.filter((e) => e.type === 'revoked');
        expect(revoked.map((e) => (e as { userId: string }).userId)).toEqual([user, user]);
        expect(revoked.every((e) => ids.includes(e.id) && e.req === undefined)).toBe(true);
        expect(await rawEntries[name]!(store, user)).toBe(1); // before any listing, which would prune
        for (const other of [b!, c!]) expect((await other.get('/account/me')).body).toEqual({ user: null, name: null, note: null });
        expect((await a!.get('/account/me')).body.user).toBe(user);
        expect((await a!.get('/account/sessions')).body).toHaveLength(1);
      });

      it('"log out everywhere" ends every session, this one too', async () => {
        const user = newUser();
        const [a, b] = await signedIn(user, 2);
        expect((await a!.post('/account/sign-out-everywhere')).body).toEqual({ ended: 2 });
        expect(a!.cookie).toBe(''); // this one's cookie was expired
        expect((await b!.get('/account/me')).body.user).toBeNull();
        expect(await rawEntries[name]!(store, user)).toBe(0);
      });

      it('a logout takes the session off the list', async () => {
        const user = newUser();
        const [a, b] = await signedIn(user, 2);
        await b!.post('/account/logout');
        expect(await rawEntries[name]!(store, user)).toBe(1);
        expect((await a!.get('/account/sessions')).body).toHaveLength(1);
      });

      it("a session handed to another user, or unmarked, moves off the first user's list", async () => {
        const ann = newUser();
        const bob = newUser();
        const [a, b] = await signedIn(ann, 2);
        const before = b!.cookie;
        expect((await b!.post(`/account/switch?user=${bob}`)).body).toEqual({ user: bob });
        expect(b!.cookie).not.toBe(before); // a new ID: an ID never passes from one user to another
        expect(await rawEntries[name]!(store, ann)).toBe(1);
        expect((await a!.get('/account/sessions')).body).toHaveLength(1);
        expect((await b!.get('/account/sessions')).body).toHaveLength(1);
        await b!.post('/account/switch'); // unmarked
        expect(await rawEntries[name]!(store, bob)).toBe(0);
        // Ann's "log out everywhere" leaves the session that is no longer hers alone.
        expect((await a!.post('/account/sign-out-everywhere')).body).toEqual({ ended: 1 });
        expect((await b!.get('/account/me')).body.name).toBe(ann);
      });

      it('a request in flight on a revoked session writes nothing, and leaves no entry behind', async () => {
        const user = newUser();
        const [a, b] = await signedIn(user, 2);
        latches.set('write', new Latch());
        arrivals.set('write', new Latch());
        const late = b!.startPost('/account/slow-write?hold=write');
        await arrivals.get('write')!.wait; // b's session is loaded
        expect((await a!.post('/account/sign-out-others')).body).toEqual({ ended: 1 });
        latches.get('write')!.open();
        const res = await late;
        expect(res.status).toBe(200);
        expect(await rawEntries[name]!(store, user)).toBe(1);
        expect((await b!.get('/account/me')).body).toEqual({ user: null, name: null, note: null });
      });

      it('a regenerate in flight on a revoked session does not survive under its new ID', async () => {
        const user = newUser();
        const [a, b] = await signedIn(user, 2);
        latches.set('regen', new Latch());
        arrivals.set('regen', new Latch());
        const late = b!.startPost('/account/slow-regenerate?hold=regen');
        await arrivals.get('regen')!.wait;
        expect((await a!.post('/account/sign-out-others')).body).toEqual({ ended: 1 });
        latches.get('regen')!.open();
        await late;
        expect(await rawEntries[name]!(store, user)).toBe(1);
        expect((await b!.get('/account/me')).body.user).toBeNull();
        expect((await a!.get('/account/sessions')).body).toHaveLength(1);
      });

      it('signing in again on the same device replaces its entry', async () => {
        const user = newUser();
        const [a] = await signedIn(user, 1);
        await a!.post(`/account/login?user=${user}`); // regenerate of a marked session
        expect(await rawEntries[name]!(store, user)).toBe(1);
      });

      it("a session this process takes for expired is still ended: another process's clock may see it live", async () => {
        const user = newUser();
        const [a] = await signedIn(user, 1);
        vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 2 * 86_400_000 });
        try {
          await app.get(SessionsService).destroyUserSessions(user);
        } finally {
          vi.useRealTimers();
        }
        expect((await a!.get('/account/me')).body.user).toBeNull();
        expect(await rawEntries[name]!(store, user)).toBe(0);
      });
    });
  }
}

for (const [name, { skip, make }] of Object.entries(stores)) {
  describe.skipIf(skip)(`the ${name} store's index of users' sessions`, () => {
    afterEach(() => vi.useRealTimers());

    it('expired sessions leave the index: it never grows without bound', async () => {
      const store = await make();
      const app = await appOn('express')({ secret: SECRET, store, maxAge: 60 }, { controllers: [AccountController], providers: [] });
      try {
        const user = newUser();
        const devices = Array.from({ length: 3 }, () => new Device(app.getHttpServer()));
        for (const device of devices) await device.post(`/account/login?user=${user}`);
        expect(await rawEntries[name]!(store, user)).toBe(devices.length);
        vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 61_000 });
        expect(await app.get(SessionsService).userSessions(user)).toEqual([]);
        expect(await rawEntries[name]!(store, user)).toBe(0);
      } finally {
        vi.useRealTimers();
        await app.close();
      }
    });

    it('an entry never ends before its session: an earlier expiry written after a later one does not replace it', async () => {
      const store = await make();
      const created: string[] = [];
      const app = await appOn('express')(
        { secret: SECRET, store, onEvent: (e) => void (e.type === 'created' && created.push(e.id)) },
        { controllers: [AccountController], providers: [] },
      );
      try {
        const user = newUser();
        await new Device(app.getHttpServer()).post(`/account/login?user=${user}`);
        const ctx = app.get(SessionsService).storeContext;
        const [before] = await store.users!.list(user, ctx);
        expect(before?.id).toBe(created[0]);
        await store.users!.add(user, { ...before!, expiresAt: before!.expiresAt - 30_000 }, ctx);
        const [after] = await store.users!.list(user, ctx);
        expect(after?.expiresAt).toBe(before!.expiresAt);
        await store.users!.remove(user, before!.id, ctx);
        expect(await store.users!.list(user, ctx)).toEqual([]);
      } finally {
        await app.close();
      }
    });
  });
}

describe.skipIf(!redisUp)('the Redis index of a user', () => {
  it("names its two keys with one hash tag, the user's ID: one slot on Redis Cluster", async () => {
    redis ??= await createClient({ socket: { host: '127.0.0.1', port: REDIS_PORT } }).connect();
    const store = new RedisSessionStore(redis, { prefix });
    for (const user of ['ann', 'a{b}c', '}{', 'ü'.repeat(100)]) {
      const tags = store.userKeys(user).map((key) => /\{([^}]*)\}/.exec(key)?.[1]);
      expect(tags[0]).toBeTruthy();
      expect(tags[1]).toBe(tags[0]);
      expect(Buffer.from(tags[0]!, 'base64url').toString('utf8')).toBe(user);
    }
  });
});

describe.skipIf(!pgUp)("the PostgreSQL table of users' sessions", () => {
  it('postgresSessionTableSql() run again on a database of an earlier release adds it, keeping the sessions', async () => {
    pool ??= new pg.Pool({ host: '127.0.0.1', port: PG_PORT, user: 'postgres', database: 'test', connectionTimeoutMillis: 2000 });
    const old = `${table}_old`;
    try {
      await pool.query(
        `CREATE TABLE "${old}" (id text PRIMARY KEY, data jsonb NOT NULL, created_at timestamptz NOT NULL, ` +
          `refreshed_at timestamptz NOT NULL, expires_at timestamptz NOT NULL); ` +
          `INSERT INTO "${old}" VALUES ('kept', '{}', now(), now(), now() + interval '1 day')`,
      );
      await pool.query(postgresSessionTableSql({ tableName: old }));
      expect((await pool.query(`SELECT id FROM "${old}"`)).rows).toEqual([{ id: 'kept' }]);
      expect((await pool.query(`SELECT count(*) AS n FROM "${old}_users"`)).rows[0].n).toBe('0');
    } finally {
      await pool.query(`DROP TABLE IF EXISTS "${old}", "${old}_users"`);
    }
  });

  it('a table name that fits PostgreSQL still works: the derived names are cut and hashed to fit', async () => {
    pool ??= new pg.Pool({ host: '127.0.0.1', port: PG_PORT, user: 'postgres', database: 'test', connectionTimeoutMillis: 2000 });
    const long = `t${runId.replace(/-/g, '_')}_${'x'.repeat(40)}`.slice(0, 63);
    const store = new PostgresSessionStore(pool, { tableName: long, createTableIfMissing: true, pruneInterval: 0 });
    const app = await appOn('express')({ secret: SECRET, store }, { controllers: [AccountController], providers: [] });
    try {
      const user = newUser();
      await new Device(app.getHttpServer()).post(`/account/login?user=${user}`);
      expect(await app.get(SessionsService).userSessions(user)).toHaveLength(1);
      expect(() => new PostgresSessionStore(pool!, { tableName: 'x'.repeat(64) })).toThrow(/at most 63 characters/);
    } finally {
      await app.close();
      const tables = await pool.query(`SELECT tablename FROM pg_tables WHERE tablename LIKE $1`, [`${long.slice(0, 20)}%`]);
      for (const { tablename } of tables.rows) await pool.query(`DROP TABLE IF EXISTS "${tablename}"`);
    }
  });
});

for (const [name, { skip }] of Object.entries(stores).filter(([n]) => n !== 'memory')) {
  describe.skipIf(skip)(`a user with many sessions, with the ${name} store`, () => {
    it("are all ended without filling the store's queue of calls (maxPending) for everyone else", async () => {
      redis ??= name === 'redis' ? await createClient({ socket: { host: '127.0.0.1', port: REDIS_PORT } }).connect() : redis;
      pool ??=
        name === 'postgres'
          ? new pg.Pool({ host: '127.0.0.1', port: PG_PORT, user: 'postgres', database: 'test', connectionTimeoutMillis: 2000 })
          : pool;
      const store =
        name === 'redis'
          ? new RedisSessionStore(redis, { prefix, maxPending: 20 })
          : new PostgresSessionStore(pool!, { tableName: table, createTableIfMissing: true, pruneInterval: 0, maxPending: 20 });
      const app = await appOn('express')({ secret: SECRET, store }, { controllers: [AccountController], providers: [] });
      try {
        const user = newUser();
        const ctx = app.get(SessionsService).storeContext;
        const now = Date.now();
        const times = { createdAt: now, refreshedAt: now, expiresAt: now + 3_600_000 };
        for (let i = 0; i < 100; i++) {
          const { id } = await store.create({ 'nest-sessions:user': user }, times, ctx);
          await store.users!.add(user, { id, createdAt: now, lastSeenAt: now, expiresAt: times.expiresAt }, ctx);
        }
        expect(await app.get(SessionsService).destroyUserSessions(user)).toBe(100);
        expect(await app.get(SessionsService).userSessions(user)).toEqual([]);
      } finally {
        await app.close();
      }
    });
  });
}

/** An in-memory store whose index calls the test can hold or make fail. */
class ControlledIndexStore extends InMemorySessionStore {
  /** Called after each listing, before it is returned: the test can hold the caller there. */
  afterList: (() => Promise<void>) | undefined;
  failAdd = false;
  protected override async listUserSessions(userId: string) {
    const entries = await super.listUserSessions(userId);
    await this.afterList?.();
    return entries;
  }
  protected override async addUserSession(...args: Parameters<InMemorySessionStore['addUserSession']>) {
    if (this.failAdd) throw new Error('index down');
    return super.addUserSession(...args);
  }
  /** The stored session, read from the store's own records. */
  stored(id: string) {
    return this.read(id);
  }
}

for (const platform of PLATFORMS) {
  describe(`a user's sessions when things happen at once, on ${platform}`, () => {
    let app: INestApplication;
    let store: ControlledIndexStore;
    beforeEach(async () => {
      store = new ControlledIndexStore();
      app = await appOn(platform)(
        // rolling, touchAfter 0: every request moves the expiry, so every one writes the entry first.
        { secret: SECRET, store, rolling: true, touchAfter: 0, userSessionInfo: { userAgent: true, ip: true } },
        { controllers: [AccountController], providers: [] },
      );
    });
    afterEach(() => app.close());

    it('a session regenerated between the listing and the revocation is found under its new ID', async () => {
      const user = newUser();
      const a = new Device(app.getHttpServer());
      const b = new Device(app.getHttpServer());
      await a.post(`/account/login?user=${user}`);
      await b.post(`/account/login?user=${user}`);
      const listed = new Latch();
      const resume = new Latch();
      store.afterList = async () => {
        store.afterList = undefined; // only the revocation's first listing waits
        listed.open();
        await resume.wait;
      };
      const revoking = a.post('/account/sign-out-others');
      await listed.wait; // the revocation holds the list with b's old ID
      await b.post('/account/slow-regenerate'); // b's new ID is listed, its old record deleted
      resume.open();
      expect((await revoking).body).toEqual({ ended: 1 });
      expect((await b.get('/account/me')).body.user).toBeNull();
      expect(await app.get(SessionsService).userSessions(user)).toHaveLength(1);
    });

    it('a sign-in whose entry cannot be written fails with a 503, sends no cookie, and leaves no session', async () => {
      store.failAdd = true;
      const res = await request(app.getHttpServer()).post(`/account/login?user=${newUser()}`).expect(503);
      expect(setCookies(res)).toEqual([]);
      expect(store.size).toBe(0);
    });

    it('an entry that cannot be written fails a save that would move the expiry: the session is not written either', async () => {
      const user = newUser();
      const a = new Device(app.getHttpServer());
      await a.post(`/account/login?user=${user}`);
      const [entry] = await store.users!.list(user, app.get(SessionsService).storeContext);
      const before = await store.stored(entry!.id);
      store.failAdd = true;
      await a.post('/account/slow-write', 503); // a change: the patch path
      await a.get('/account/me', 503); // no change, rolling: the touch path
      store.failAdd = false;
      const after = await store.stored(entry!.id);
      expect(after!.times).toEqual(before!.times);
      expect(after!.data.note).toBeUndefined();
      expect((await a.get('/account/me')).body).toMatchObject({ user, note: null });
    });

    it('the user agent kept is cut at 512 characters', async () => {
      const user = newUser();
      await new Device(app.getHttpServer(), 'A'.repeat(600)).post(`/account/login?user=${user}`);
      const [entry] = await app.get(SessionsService).userSessions(user);
      expect(entry?.userAgent).toBe('A'.repeat(512));
    });

    it('bad arguments are clear errors, and a session passed in place of the options ends nothing', async () => {
      const user = newUser();
      await new Device(app.getHttpServer()).post(`/account/login?user=${user}`);
      const service = app.get(SessionsService);
      const session = new TrackedSession({}, 'some-id');
      await expect(service.destroyUserSessions(user, session as never)).rejects.toThrow(/a session given in its place/);
      await expect(service.destroyUserSessions(user, null as never)).rejects.toThrow(TypeError);
      await expect(service.destroyUserSessions(user, { except: 'some-id' } as never)).rejects.toThrow(/except must be/);
      await expect(service.userSessions(undefined as never)).rejects.toThrow(/got undefined \(is anyone signed in\?\)/);
      await expect(service.userSessions('a\uD800')).rejects.toThrow(/lone surrogate/);
      expect(await service.userSessions(user)).toHaveLength(1); // nothing was ended
    });

    it('with userSessionInfo, entries keep the user agent and address of the request that last saved them', async () => {
      const user = newUser();
      await new Device(app.getHttpServer(), 'Firefox/140').post(`/account/login?user=${user}`);
      const [entry] = await app.get(SessionsService).userSessions(user);
      expect(entry?.userAgent).toBe('Firefox/140');
      expect(entry?.ip).toMatch(/127\.0\.0\.1/);
    });
  });
}

describe("stores without an index of users' sessions", () => {
  let memcached: LocalMemcached | undefined;
  afterAll(() => memcached?.stop());
  const makers: [string, boolean, () => Promise<SessionStore>][] = [
    ['CookieSessionStore', false, async () => new CookieSessionStore()],
    [
      'MemcachedSessionStore',
      !memcachedUp,
      async () => {
        memcached = new LocalMemcached();
        await memcached.start();
        const client = new MemcacheClient({
          server: `127.0.0.1:${memcached.port}`,
          logger: { debug() {}, info() {}, warn() {}, error() {} },
        });
        return new MemcachedSessionStore(client, { prefix: `test:${runId}:` });
      },
    ],
  ];
  for (const [storeName, skip, make] of makers) {
    it.skipIf(skip)(`the ${storeName}: setUser() is kept, and listing or revoking says plainly it cannot be done`, async () => {
      const store = await make();
      const app = await appOn('express')({ secret: SECRET, store }, { controllers: [AccountController], providers: [] });
      try {
        const device = new Device(app.getHttpServer());
        await device.post('/account/login?user=ann');
        expect((await device.get('/account/me')).body.user).toBe('ann');
        const service = app.get(SessionsService);
        await expect(service.userSessions('ann')).rejects.toThrow(SessionsConfigError);
        await expect(service.destroyUserSessions('ann')).rejects.toThrow(new RegExp(`the ${storeName} keeps no list of a user's sessions`));
      } finally {
        await app.close();
        (store as { client?: { shutdown?: () => void } }).client?.shutdown?.();
      }
    });
  }
});
