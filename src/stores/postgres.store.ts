import { createHash } from 'node:crypto';
import { Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { SessionData, SessionPatch } from '../session.js';
import { SessionsConfigError, SessionSerializationError, SessionStoreUnavailableError } from '../sessions.errors.js';
import { listenForErrors } from './client-errors.js';
import { jsonObject, serializeFields } from './fields.js';
import { assertJsonValue, MAX_VALUE_DEPTH, valueNestsDeeperThan } from './json-value.js';
import { ServerSessionStore, type ServerSessionStoreOptions, type StoredSession } from './server-store.js';
import type { SessionTimes, UserSessionEntry } from './session-store.js';

type PgResult = { rows: Record<string, unknown>[]; rowCount: number | null };

/** A connection checked out of a `pg` Pool. */
export interface PgClientLike {
  query(text: string, values?: unknown[]): Promise<PgResult>;
  /** With an error, the pool destroys the connection instead of reusing it. */
  release(err?: Error | boolean): void;
  on?(event: 'error', listener: (err: Error) => void): unknown;
  removeListener?(event: 'error', listener: (err: Error) => void): unknown;
}

/**
 * A connection checked out of a pg Pool has no 'error' listener: the pool listens only while it is idle.
 * A server that ends the connection (a restart, `pg_terminate_backend`) while it is checked out but not
 * running a query, as when the notice arrives in the same packet as the last reply, makes pg emit
 * 'error' on it, which would end the process. So it is listened to while the store holds it; pg marks
 * it unusable and the pool drops it on release. What failed is the query's to report, or nobody's.
 */
function checkedOut(client: PgClientLike): () => void {
  const ignore = () => undefined;
  client.on?.('error', ignore);
  return () => void client.removeListener?.('error', ignore);
}

/** What the store needs of a `pg` Pool (the package is an optional peer, never imported here). */
export interface PgPoolLike {
  query(text: string, values?: unknown[]): Promise<PgResult>;
  connect(): Promise<PgClientLike>;
  readonly waitingCount?: number;
}

export interface PostgresSessionStoreOptions extends ServerSessionStoreOptions {
  /** Default `sessions`. Letters, digits and `_`. */
  tableName?: string;
  /** Default `public`. */
  schemaName?: string;
  /** Create the table and its index at startup when missing. Default false: run the migration SQL yourself. */
  createTableIfMissing?: boolean;
  /**
   * Seconds between deletions of expired rows (0: never; expired rows are never read anyway). One
   * instance at a time does it, under an advisory lock. Default 300.
   */
  pruneInterval?: number;
  /**
   * Queries waiting for a pool connection beyond which the store fails at once instead of queueing more
   * (a database that hangs would otherwise pile up work). Default 100.
   */
  maxWaiting?: number;
}

/** PostgreSQL's error code for a table that does not exist. */
const UNDEFINED_TABLE = '42P01';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

function lockKey(label: string): string {
  return createHash('sha256').update(label).digest().readBigInt64BE().toString();
}

/**
 * A name made from the table's name and a suffix, within PostgreSQL's 63 characters: a long table name
 * is cut and a hash of it added, so that every table name the store takes gives names that fit.
 */
function derivedName(tableName: string, suffix: string): string {
  const name = `${tableName}${suffix}`;
  if (name.length <= 63) return name;
  const hash = createHash('sha256').update(tableName).digest('hex').slice(0, 8);
  return `${tableName.slice(0, 63 - suffix.length - 9)}_${hash}${suffix}`;
}

/** The table of users' sessions beside `tableName`: `<tableName>_users`, cut and hashed when that would be too long. */
export function usersTableName(tableName: string): string {
  return derivedName(tableName, '_users');
}

function identifier(kind: string, value: unknown): string {
  if (typeof value === 'string' && value.length > 63) {
    throw new SessionsConfigError(`PostgresSessionStore: ${kind} must be at most 63 characters (PostgreSQL's limit); got ${value.length}`);
  }
  if (typeof value !== 'string' || !IDENTIFIER.test(value)) {
    throw new SessionsConfigError(
      `PostgresSessionStore: ${kind} must be letters, digits and "_" (not starting with a digit); got ${JSON.stringify(value)}`,
    );
  }
  return `"${value}"`;
}

/**
 * The table the store uses, for your migrations:
 *
 * ```ts
 * await pool.query(postgresSessionTableSql({ tableName: 'sessions' }));
 * ```
 */
export function postgresSessionTableSql(options: { tableName?: string; schemaName?: string } = {}): string {
  const tableName = options.tableName ?? 'sessions';
  const schema = identifier('schemaName', options.schemaName ?? 'public');
  const table = `${schema}.${identifier('tableName', tableName)}`;
  const index = identifier('index name', derivedName(tableName, '_expires_at_idx'));
  const users = `${schema}.${identifier("table name of users' sessions", usersTableName(tableName))}`;
  const usersIndex = identifier('index name', derivedName(tableName, '_users_expires_at_idx'));
  return [
    `CREATE TABLE IF NOT EXISTS ${table} (`,
    `  id text PRIMARY KEY,`,
    `  data jsonb NOT NULL,`,
    `  created_at timestamptz NOT NULL,`,
    `  refreshed_at timestamptz NOT NULL,`,
    `  expires_at timestamptz NOT NULL`,
    `);`,
    `CREATE INDEX IF NOT EXISTS ${index} ON ${table} (expires_at);`,
    // Which sessions each user has (session.setUser()), for userSessions() and destroyUserSessions().
    `CREATE TABLE IF NOT EXISTS ${users} (`,
    `  user_id text NOT NULL,`,
    `  session_id text NOT NULL,`,
    `  created_at timestamptz NOT NULL,`,
    `  last_seen_at timestamptz NOT NULL,`,
    `  expires_at timestamptz NOT NULL,`,
    `  user_agent text,`,
    `  ip text,`,
    `  PRIMARY KEY (user_id, session_id)`,
    `);`,
    `CREATE INDEX IF NOT EXISTS ${usersIndex} ON ${users} (expires_at);`,
  ].join('\n');
}

/**
 * Sessions in PostgreSQL, through your `pg` Pool. One row per session, the data in a `jsonb` column.
 *
 * Saving is one UPDATE that merges the changed keys into `data` and removes deleted ones, only for a row
 * that is still live, so concurrent requests keep each other's changes and a destroyed session is never
 * brought back. Creating is an insert that never overwrites. Expired rows are never returned, and a
 * timer (which does not keep the process alive) deletes them, one instance at a time.
 */
export class PostgresSessionStore extends ServerSessionStore implements OnModuleInit, OnModuleDestroy {
  readonly #pool: PgPoolLike;
  readonly #tableSql: string;
  readonly #createTable: boolean;
  readonly #pruneMs: number;
  readonly #maxWaiting: number;
  readonly #lockKey: string;
  readonly #createLockKey: string;
  readonly #logger = new Logger('PostgresSessionStore');
  readonly #sql: {
    read: string;
    insert: string;
    patch: string;
    refresh: string;
    remove: string;
    prune: string;
    pruneUsers: string;
    userAdd: string;
    userRemove: string;
    userList: string;
    userListAll: string;
  };
  /** The table of users' sessions, for messages. */
  readonly #usersTable: string;
  #tableReady: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(pool: PgPoolLike, options: PostgresSessionStoreOptions = {}) {
    super(options);
    if (!pool || typeof (pool as PgPoolLike).query !== 'function' || typeof (pool as PgPoolLike).connect !== 'function') {
      throw new SessionsConfigError('PostgresSessionStore needs a pg Pool (new Pool({ ... }) from the "pg" package)');
    }
    // pg keeps a connection attempt that never answers (a partition, a failover) in its pool slot for good:
    // once the slots are full of them the store stays down after the database is back. Only pg's own
    // option bounds an attempt, so a pool without it is refused here, at startup.
    const poolOptions = (pool as { options?: { connectionTimeoutMillis?: unknown } }).options;
    if (poolOptions && !(typeof poolOptions.connectionTimeoutMillis === 'number' && poolOptions.connectionTimeoutMillis > 0)) {
      throw new SessionsConfigError(
        'PostgresSessionStore: the pg Pool has no connectionTimeoutMillis, so connection attempts that never answer would ' +
          'hold its slots for good and the store would stay down after the database came back. Create the pool with one, ' +
          'for example new Pool({ ..., connectionTimeoutMillis: 2000 })',
      );
    }
    const { tableName = 'sessions', schemaName = 'public', createTableIfMissing = false, pruneInterval = 300, maxWaiting = 100 } = options;
    if (typeof pruneInterval !== 'number' || !Number.isFinite(pruneInterval) || pruneInterval < 0) {
      throw new SessionsConfigError(
        `PostgresSessionStore: pruneInterval must be a number of seconds, 0 or more; got ${String(pruneInterval)}`,
      );
    }
    if (!Number.isInteger(maxWaiting) || maxWaiting < 1) {
      throw new SessionsConfigError(`PostgresSessionStore: maxWaiting must be a whole number of at least 1; got ${String(maxWaiting)}`);
    }
    const t = `${identifier('schemaName', schemaName)}.${identifier('tableName', tableName)}`;
    const u = `${identifier('schemaName', schemaName)}.${identifier("table name of users' sessions", usersTableName(tableName))}`;
    this.#usersTable = u;
    this.#pool = pool;
    listenForErrors(pool, 'PostgresSessionStore');
    this.#tableSql = postgresSessionTableSql({ tableName, schemaName });
    this.#createTable = createTableIfMissing === true;
    this.#pruneMs = pruneInterval * 1000;
    this.#maxWaiting = maxWaiting;
    // Advisory locks per table: one instance prunes at a time, one creates the table at a time.
    this.#lockKey = lockKey(`nest-sessions prune ${t}`);
    this.#createLockKey = lockKey(`nest-sessions create ${t}`);
    this.#sql = {
      read: `SELECT data, created_at, refreshed_at, expires_at FROM ${t} WHERE id = $1 AND expires_at > $2`,
      insert: `INSERT INTO ${t} (id, data, created_at, refreshed_at, expires_at) VALUES ($1, $2::jsonb, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
      patch:
        `UPDATE ${t} SET data = (CASE WHEN $2::boolean THEN '{}'::jsonb ELSE data END - $3::text[]) || $4::jsonb, ` +
        // An expiry never moves back: times refreshed later by an overlapping request stay (SET sees the old row).
        `refreshed_at = GREATEST(refreshed_at, $5), expires_at = CASE WHEN refreshed_at > $5 THEN expires_at ELSE $6 END ` +
        `WHERE id = $1 AND expires_at > $7`,
      refresh:
        `UPDATE ${t} SET refreshed_at = GREATEST(refreshed_at, $2), expires_at = CASE WHEN refreshed_at > $2 THEN expires_at ELSE $3 END ` +
        `WHERE id = $1 AND expires_at > $4`,
      remove: `DELETE FROM ${t} WHERE id = $1 RETURNING expires_at > $2 AS live`,
      prune:
        `WITH lock AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($1::bigint) AS held) ` +
        `DELETE FROM ${t} USING lock WHERE lock.held AND expires_at <= $2`,
      pruneUsers: `DELETE FROM ${u} WHERE expires_at <= $1`,
      // An expiry never moves back: an overlapping request that wrote a later one keeps it.
      userAdd:
        `INSERT INTO ${u} AS u (user_id, session_id, created_at, last_seen_at, expires_at, user_agent, ip) ` +
        `VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, session_id) DO UPDATE SET ` +
        `last_seen_at = GREATEST(u.last_seen_at, EXCLUDED.last_seen_at), expires_at = GREATEST(u.expires_at, EXCLUDED.expires_at), ` +
        `user_agent = EXCLUDED.user_agent, ip = EXCLUDED.ip`,
      userRemove: `DELETE FROM ${u} WHERE user_id = $1 AND session_id = $2`,
      // Entries whose session has ended are deleted as they are found (the SELECT sees the rows as before).
      userList:
        `WITH gone AS (DELETE FROM ${u} AS u WHERE u.user_id = $1 AND (u.expires_at <= $2 OR NOT EXISTS ` +
        `(SELECT 1 FROM ${t} AS s WHERE s.id = u.session_id AND s.expires_at > $2))) ` +
        `SELECT u.session_id, u.created_at, u.last_seen_at, u.expires_at, u.user_agent, u.ip FROM ${u} AS u ` +
        `JOIN ${t} AS s ON s.id = u.session_id WHERE u.user_id = $1 AND u.expires_at > $2 AND s.expires_at > $2 ORDER BY u.created_at`,
      userListAll: `SELECT session_id, created_at, last_seen_at, expires_at, user_agent, ip FROM ${u} WHERE user_id = $1`,
    };
  }

  /** Creates the table if asked to, and starts the prune timer. */
  async onModuleInit(): Promise<void> {
    await this.#ensureTable();
    this.#startPruning();
  }

  onModuleDestroy(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Deletes expired rows now, unless another instance is doing it; returns how many sessions this call
   * deleted. Expired entries of users' sessions go too.
   */
  async prune(now = Date.now()): Promise<number> {
    await this.#ensureTable();
    const result = await this.#pool.query(this.#sql.prune, [this.#lockKey, new Date(now)]);
    try {
      await this.#pool.query(this.#sql.pruneUsers, [new Date(now)]);
    } catch (err) {
      // A table made by an earlier postgresSessionTableSql() has no table of users' sessions: nothing to prune.
      if ((err as { code?: unknown })?.code !== UNDEFINED_TABLE) throw err;
    }
    return result.rowCount ?? 0;
  }

  protected async read(id: string, signal: AbortSignal): Promise<StoredSession | undefined> {
    const { rows } = await this.#query(this.#sql.read, [id, new Date()], signal);
    const row = rows[0];
    if (!row) return undefined;
    const data = row.data;
    const times = {
      createdAt: (row.created_at as Date)?.getTime?.(),
      refreshedAt: (row.refreshed_at as Date)?.getTime?.(),
      expiresAt: (row.expires_at as Date)?.getTime?.(),
    };
    if (typeof data !== 'object' || data === null || Array.isArray(data) || !Object.values(times).every(Number.isFinite)) {
      this.#logger.warn(`Ignoring an unreadable session (${id.slice(0, 8)}...): its data is not a JSON object`);
      return undefined;
    }
    if (valueNestsDeeperThan(data, MAX_VALUE_DEPTH + 1)) {
      this.#logger.warn(
        `Ignoring an unreadable session (${id.slice(0, 8)}...): its data is nested more than ${MAX_VALUE_DEPTH} levels deep`,
      );
      return undefined;
    }
    return { data: data as SessionData, times: times as SessionTimes };
  }

  protected async insert(id: string, data: SessionData, times: SessionTimes, signal: AbortSignal): Promise<boolean> {
    const json = this.#json(data);
    const result = await this.#query(
      this.#sql.insert,
      [id, json, new Date(times.createdAt), new Date(times.refreshedAt), new Date(times.expiresAt)],
      signal,
    );
    return result.rowCount === 1;
  }

  protected async patch(id: string, patch: SessionPatch, times: SessionTimes, signal: AbortSignal): Promise<boolean> {
    const json = this.#json(patch.set);
    for (const key of patch.unset) assertJsonValue(key, null, { jsonb: true }); // the key itself
    const result = await this.#query(
      this.#sql.patch,
      [id, patch.replace, patch.unset, json, new Date(times.refreshedAt), new Date(times.expiresAt), new Date()],
      signal,
    );
    return result.rowCount === 1;
  }

  protected async refresh(id: string, times: SessionTimes, signal: AbortSignal): Promise<boolean> {
    const result = await this.#query(this.#sql.refresh, [id, new Date(times.refreshedAt), new Date(times.expiresAt), new Date()], signal);
    return result.rowCount === 1;
  }

  protected async remove(id: string, signal: AbortSignal): Promise<boolean> {
    const { rows } = await this.#query(this.#sql.remove, [id, new Date()], signal);
    return rows[0]?.live === true;
  }

  protected override async addUserSession(userId: string, entry: UserSessionEntry, signal: AbortSignal): Promise<void> {
    await this.#usersQuery(
      this.#sql.userAdd,
      [
        userId,
        entry.id,
        new Date(entry.createdAt),
        new Date(entry.lastSeenAt),
        new Date(entry.expiresAt),
        entry.userAgent ?? null,
        entry.ip ?? null,
      ],
      signal,
    );
  }

  protected override async removeUserSession(userId: string, id: string, signal: AbortSignal): Promise<void> {
    await this.#usersQuery(this.#sql.userRemove, [userId, id], signal);
  }

  protected override async listUserSessions(userId: string, signal: AbortSignal, ended: boolean): Promise<UserSessionEntry[]> {
    const { rows } = ended
      ? await this.#usersQuery(this.#sql.userListAll, [userId], signal)
      : await this.#usersQuery(this.#sql.userList, [userId, new Date()], signal);
    return rows.map((row) => ({
      id: String(row.session_id),
      createdAt: (row.created_at as Date).getTime(),
      lastSeenAt: (row.last_seen_at as Date).getTime(),
      expiresAt: (row.expires_at as Date).getTime(),
      ...(typeof row.user_agent === 'string' ? { userAgent: row.user_agent } : {}),
      ...(typeof row.ip === 'string' ? { ip: row.ip } : {}),
    }));
  }

  /** A query on the table of users' sessions, which a table made by an earlier release may lack: that is said plainly. */
  async #usersQuery(text: string, values: unknown[], signal: AbortSignal): Promise<PgResult> {
    try {
      return await this.#query(text, values, signal);
    } catch (err) {
      if ((err as { code?: unknown })?.code !== UNDEFINED_TABLE) throw err;
      throw new Error(
        `the table ${this.#usersTable} is missing; run postgresSessionTableSql() again (it adds the table of users' sessions), or set createTableIfMissing`,
        { cause: err },
      );
    }
  }

  /** JSON for a jsonb parameter, refusing by key what jsonb cannot hold (NUL characters, lone surrogates). */
  #json(data: SessionData): string {
    return jsonObject(serializeFields(data, { jsonb: true }));
  }

  /**
   * One statement on a connection of its own. If the call is abandoned at the timeout, the connection is
   * destroyed rather than left busy: a hung connection must not hold a pool slot until the OS gives up
   * on it, or requests would keep failing after the database is back.
   */
  async #query(text: string, values: unknown[], signal: AbortSignal): Promise<PgResult> {
    if ((this.#pool.waitingCount ?? 0) >= this.#maxWaiting) {
      throw new SessionStoreUnavailableError(
        `PostgresSessionStore: ${this.#pool.waitingCount} queries are already waiting for a connection (maxWaiting ${this.#maxWaiting})`,
      );
    }
    await this.#ensureTable();
    const client = await this.#pool.connect();
    if (signal.aborted) {
      client.release(); // arrived after the caller gave up: unused, so still healthy
      throw new SessionStoreUnavailableError('PostgresSessionStore: gave up before a connection was free');
    }
    const returned = checkedOut(client);
    let destroyed = false;
    const abandon = () => {
      destroyed = true;
      client.release(new Error('nest-sessions: the query outlasted the store timeout'));
      returned();
    };
    signal.addEventListener('abort', abandon, { once: true });
    try {
      return await client.query(text, values);
    } catch (err) {
      // Class 22 is "data exception": the data was refused, the database is fine.
      if (typeof (err as { code?: unknown })?.code === 'string' && (err as { code: string }).code.startsWith('22')) {
        throw new SessionSerializationError('(session)', err);
      }
      throw err;
    } finally {
      signal.removeEventListener('abort', abandon);
      if (!destroyed) {
        client.release();
        returned();
      }
    }
  }

  #ensureTable(): Promise<void> {
    if (!this.#createTable) return Promise.resolve();
    this.#tableReady ??= this.#createTableOnce().then(
      () => undefined,
      (err: unknown) => {
        this.#tableReady = undefined; // try again on the next call
        throw err;
      },
    );
    return this.#tableReady;
  }

  /** CREATE ... IF NOT EXISTS still races in PostgreSQL: instances starting together take turns under a lock. */
  async #createTableOnce(): Promise<void> {
    const client = await this.#pool.connect();
    const returned = checkedOut(client);
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [this.#createLockKey]);
      await client.query(this.#tableSql);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
      returned();
    }
  }

  #startPruning(): void {
    if (this.#timer || this.#pruneMs === 0) return;
    this.#timer = setInterval(() => {
      this.prune().catch((err: unknown) => this.#logger.warn(`Pruning expired sessions failed: ${(err as Error).message}`));
    }, this.#pruneMs);
    this.#timer.unref();
  }
}
