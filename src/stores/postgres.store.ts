import { createHash } from 'node:crypto';
import { Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { SessionData, SessionPatch } from '../session.js';
import { SessionsConfigError, SessionSerializationError, SessionStoreUnavailableError } from '../sessions.errors.js';
import { jsonObject, serializeFields } from './fields.js';
import { ServerSessionStore, type ServerSessionStoreOptions, type StoredSession } from './server-store.js';
import type { SessionTimes } from './session-store.js';

/** What the store needs of a `pg` Pool (the package is an optional peer, never imported here). */
export interface PgPoolLike {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>;
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

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

function identifier(kind: string, value: unknown): string {
  if (typeof value !== 'string' || !IDENTIFIER.test(value)) {
    throw new SessionsConfigError(`PostgresSessionStore: ${kind} must be letters, digits and "_" (not starting with a digit); got ${JSON.stringify(value)}`);
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
  const table = `${identifier('schemaName', options.schemaName ?? 'public')}.${identifier('tableName', options.tableName ?? 'sessions')}`;
  const index = identifier('index name', `${options.tableName ?? 'sessions'}_expires_at_idx`);
  return [
    `CREATE TABLE IF NOT EXISTS ${table} (`,
    `  id text PRIMARY KEY,`,
    `  data jsonb NOT NULL,`,
    `  created_at timestamptz NOT NULL,`,
    `  refreshed_at timestamptz NOT NULL,`,
    `  expires_at timestamptz NOT NULL`,
    `);`,
    `CREATE INDEX IF NOT EXISTS ${index} ON ${table} (expires_at);`,
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
  readonly #table: string;
  readonly #tableSql: string;
  readonly #createTable: boolean;
  readonly #pruneMs: number;
  readonly #maxWaiting: number;
  readonly #lockKey: string;
  readonly #logger = new Logger('PostgresSessionStore');
  readonly #sql: { read: string; insert: string; patch: string; refresh: string; remove: string; prune: string };
  #tableReady: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(pool: PgPoolLike, options: PostgresSessionStoreOptions = {}) {
    super(options);
    if (!pool || typeof (pool as PgPoolLike).query !== 'function') {
      throw new SessionsConfigError('PostgresSessionStore needs a pg Pool (new Pool({ ... }) from the "pg" package)');
    }
    const { tableName = 'sessions', schemaName = 'public', createTableIfMissing = false, pruneInterval = 300, maxWaiting = 100 } = options;
    if (typeof pruneInterval !== 'number' || !Number.isFinite(pruneInterval) || pruneInterval < 0) {
      throw new SessionsConfigError(`PostgresSessionStore: pruneInterval must be a number of seconds, 0 or more; got ${String(pruneInterval)}`);
    }
    if (!Number.isInteger(maxWaiting) || maxWaiting < 1) {
      throw new SessionsConfigError(`PostgresSessionStore: maxWaiting must be a whole number of at least 1; got ${String(maxWaiting)}`);
    }
    const t = `${identifier('schemaName', schemaName)}.${identifier('tableName', tableName)}`;
    this.#pool = pool;
    this.#table = t;
    this.#tableSql = postgresSessionTableSql({ tableName, schemaName });
    this.#createTable = createTableIfMissing === true;
    this.#pruneMs = pruneInterval * 1000;
    this.#maxWaiting = maxWaiting;
    // One advisory lock per table, so that one instance prunes at a time.
    this.#lockKey = BigInt.asIntN(64, createHash('sha256').update(`nest-sessions prune ${t}`).digest().readBigInt64BE()).toString();
    this.#sql = {
      read: `SELECT data, created_at, refreshed_at, expires_at FROM ${t} WHERE id = $1 AND expires_at > $2`,
      insert: `INSERT INTO ${t} (id, data, created_at, refreshed_at, expires_at) VALUES ($1, $2::jsonb, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
      patch:
        `UPDATE ${t} SET data = (CASE WHEN $2::boolean THEN '{}'::jsonb ELSE data END - $3::text[]) || $4::jsonb, ` +
        `refreshed_at = $5, expires_at = $6 WHERE id = $1 AND expires_at > $7`,
      refresh: `UPDATE ${t} SET refreshed_at = $2, expires_at = $3 WHERE id = $1 AND expires_at > $4`,
      remove: `DELETE FROM ${t} WHERE id = $1 RETURNING expires_at > $2 AS live`,
      prune:
        `WITH lock AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($1::bigint) AS held) ` +
        `DELETE FROM ${t} USING lock WHERE lock.held AND expires_at <= $2`,
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

  /** Deletes expired rows now, unless another instance is doing it; returns how many this call deleted. */
  async prune(now = Date.now()): Promise<number> {
    await this.#ensureTable();
    const result = await this.#pool.query(this.#sql.prune, [this.#lockKey, new Date(now)]);
    return result.rowCount ?? 0;
  }

  protected async read(id: string): Promise<StoredSession | undefined> {
    const { rows } = await this.#query(this.#sql.read, [id, new Date()]);
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
    return { data: data as SessionData, times: times as SessionTimes };
  }

  protected async insert(id: string, data: SessionData, times: SessionTimes): Promise<boolean> {
    const json = this.#json(data);
    const result = await this.#query(this.#sql.insert, [id, json, new Date(times.createdAt), new Date(times.refreshedAt), new Date(times.expiresAt)]);
    return result.rowCount === 1;
  }

  protected async patch(id: string, patch: SessionPatch, times: SessionTimes): Promise<boolean> {
    const json = this.#json(patch.set);
    const result = await this.#query(this.#sql.patch, [
      id,
      patch.replace,
      patch.unset,
      json,
      new Date(times.refreshedAt),
      new Date(times.expiresAt),
      new Date(),
    ]);
    return result.rowCount === 1;
  }

  protected async refresh(id: string, times: SessionTimes): Promise<boolean> {
    const result = await this.#query(this.#sql.refresh, [id, new Date(times.refreshedAt), new Date(times.expiresAt), new Date()]);
    return result.rowCount === 1;
  }

  protected async remove(id: string): Promise<boolean> {
    const { rows } = await this.#query(this.#sql.remove, [id, new Date()]);
    return rows[0]?.live === true;
  }

  /** JSON for a jsonb parameter; jsonb cannot hold the NUL character, so that is refused here, by key. */
  #json(data: SessionData): string {
    const fields = serializeFields(data);
    for (const [key, json] of fields) {
      if (json.includes('\\u0000')) throw new SessionSerializationError(key, 'PostgreSQL jsonb cannot store the NUL character (\\u0000)');
    }
    return jsonObject(fields);
  }

  async #query(text: string, values: unknown[]) {
    if ((this.#pool.waitingCount ?? 0) >= this.#maxWaiting) {
      throw new SessionStoreUnavailableError(
        `PostgresSessionStore: ${this.#pool.waitingCount} queries are already waiting for a connection (maxWaiting ${this.#maxWaiting})`,
      );
    }
    await this.#ensureTable();
    return this.#pool.query(text, values);
  }

  #ensureTable(): Promise<void> {
    if (!this.#createTable) return Promise.resolve();
    this.#tableReady ??= this.#pool.query(this.#tableSql).then(
      () => undefined,
      (err: unknown) => {
        this.#tableReady = undefined; // try again on the next call
        throw err;
      },
    );
    return this.#tableReady;
  }

  #startPruning(): void {
    if (this.#timer || this.#pruneMs === 0) return;
    this.#timer = setInterval(() => {
      this.prune().catch((err: unknown) => this.#logger.warn(`Pruning expired sessions failed: ${(err as Error).message}`));
    }, this.#pruneMs);
    this.#timer.unref();
  }
}
