import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { SessionsService } from './sessions.service.js';

/** How long a check may take by default, in milliseconds. */
const DEFAULT_TIMEOUT = 3000;

export interface SessionStoreHealthOptions {
  /** Milliseconds the store may take to answer before it counts as down. Default 3000. */
  timeout?: number;
}

/**
 * A `@nestjs/terminus` health indicator for the session store, from `nest-sessions/health` (so that
 * Terminus is needed only by apps that import it). Up when the store answers a read of a random session
 * within its own timeout and `timeout`; down, with the reason, otherwise. Stores that extend
 * `ServerSessionStore` (in-memory, Redis, PostgreSQL, Memcached, your own) are checked this way; another
 * store is checked through its `ping()` if it has one, and the cookie store, which has nothing to
 * reach, is always up.
 *
 * ```ts
 * @Get('health')
 * @HealthCheck()
 * check() {
 *   return this.health.check([() => this.sessionStore.isHealthy('sessions')]);
 * }
 * ```
 */
@Injectable()
export class SessionStoreHealthIndicator {
  constructor(
    private readonly indicators: HealthIndicatorService,
    private readonly sessions: SessionsService,
  ) {}

  async isHealthy(key = 'sessions', options: SessionStoreHealthOptions = {}): Promise<HealthIndicatorResult> {
    const indicator = this.indicators.check(key);
    const { timeout = DEFAULT_TIMEOUT } = options;
    if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0) {
      throw new TypeError(
        `SessionStoreHealthIndicator.isHealthy(key, { timeout }): a number of milliseconds above 0; got ${String(timeout)}`,
      );
    }
    const { store: raw, calls: store, storeContext } = this.sessions;
    const name = raw.constructor.name;
    if (typeof store.ping !== 'function') return indicator.up({ store: name });
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        store.ping(storeContext),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeout} ms`)), timeout);
        }),
      ]);
      return indicator.up({ store: name, responseTime: Math.round(performance.now() - started) });
    } catch (err) {
      return indicator.down({ store: name, message: err instanceof Error ? err.message : String(err) });
    } finally {
      clearTimeout(timer);
    }
  }
}
