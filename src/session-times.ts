import type { SessionsConfig } from './sessions.options.js';
import type { SessionTimes } from './stores/session-store.js';

type Timing = Pick<SessionsConfig, 'ttlMs' | 'idleTimeoutMs' | 'absoluteTimeoutMs' | 'rolling' | 'touchAfterMs'>;

/**
 * The timing of a session with its own lifetime (`setMaxAge`, in seconds) in place of `maxAge`: still
 * no longer than `idleTimeout` from its last request, nor past `absoluteTimeout`. A lifetime shorter than
 * `touchAfter` moves its expiry at most once per tenth of it instead, so that it does move.
 */
export function timingFor<T extends Timing>(config: T, seconds: number | undefined): Timing {
  if (seconds === undefined) return config;
  const ttlMs = Math.min(seconds * 1000, config.idleTimeoutMs ?? Infinity);
  return { ...config, ttlMs, touchAfterMs: config.touchAfterMs < ttlMs ? config.touchAfterMs : Math.floor(ttlMs / 10) };
}

/** Times for a session saved or refreshed `now`: it lives `ttl` more, never past its absolute end. */
export function refreshedTimes(config: Timing, now: number, createdAt = now): SessionTimes {
  const end = config.absoluteTimeoutMs === undefined ? Infinity : createdAt + config.absoluteTimeoutMs;
  return { createdAt, refreshedAt: now, expiresAt: Math.min(now + config.ttlMs, end) };
}

/**
 * Whether a stored session is still alive under the current settings. The stored expiry is checked, and
 * so are the timeouts themselves: shortening `maxAge` or adding a timeout applies to existing sessions.
 */
export function isLive(times: SessionTimes, config: Timing, now: number): boolean {
  return (
    now < times.expiresAt &&
    now < times.refreshedAt + config.ttlMs &&
    (config.absoluteTimeoutMs === undefined || now < times.createdAt + config.absoluteTimeoutMs)
  );
}

/** Whether an unchanged session should have its expiry pushed back on this request (throttled). */
export function isTouchDue(times: SessionTimes, config: Timing, now: number): boolean {
  return (config.rolling || config.idleTimeoutMs !== undefined) && now - times.refreshedAt >= config.touchAfterMs;
}

/**
 * Whether a save that changes a session also pushes its expiry back. At most once per `touchAfter`, as
 * for an unchanged session: between two refreshes, a change writes the data under the times it had, and
 * a server-side store's cookie, whose Max-Age follows those times, is not sent again.
 */
export function isRefreshDue(times: SessionTimes, config: Timing, now: number): boolean {
  return now - times.refreshedAt >= config.touchAfterMs;
}

/**
 * The times a save writes: `times`, unless the stored ones were refreshed later (by an overlapping
 * request, after this one decided no refresh was due): an expiry never moves back.
 */
export function laterTimes(stored: SessionTimes, times: SessionTimes): SessionTimes {
  return stored.refreshedAt > times.refreshedAt ? stored : times;
}

/** Seconds until `expiresAt`, for the cookie's Max-Age (at least 1 while the session is alive). */
export function secondsLeft(times: SessionTimes, now: number): number {
  return Math.max(1, Math.floor((times.expiresAt - now) / 1000));
}
