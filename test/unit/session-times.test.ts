import { describe, expect, it } from 'vitest';
import { isLive, isTouchDue, refreshedTimes, secondsLeft, timingFor } from '../../src/session-times.js';

const base = { ttlMs: 10_000, rolling: false, touchAfterMs: 1_000 };

describe('session times', () => {
  it('a save keeps a session ttl more, but never past its absolute end', () => {
    expect(refreshedTimes(base, 1_000)).toEqual({ createdAt: 1_000, refreshedAt: 1_000, expiresAt: 11_000 });
    const capped = { ...base, absoluteTimeoutMs: 15_000 };
    expect(refreshedTimes(capped, 10_000, 0)).toEqual({ createdAt: 0, refreshedAt: 10_000, expiresAt: 15_000 });
  });

  it('a session is live until its expiry, its ttl since the last refresh, and its absolute end', () => {
    const t = refreshedTimes(base, 0);
    expect(isLive(t, base, 9_999)).toBe(true);
    expect(isLive(t, base, 10_000)).toBe(false);
    // Settings shortened since the session was saved: the shorter lifetime applies.
    expect(isLive(t, { ...base, ttlMs: 5_000 }, 6_000)).toBe(false);
    expect(isLive({ createdAt: 0, refreshedAt: 50_000, expiresAt: 60_000 }, { ...base, absoluteTimeoutMs: 40_000 }, 55_000)).toBe(false);
  });

  it('a touch is due only with rolling or an idle timeout, and only after touchAfter', () => {
    const t = refreshedTimes(base, 0);
    expect(isTouchDue(t, base, 5_000)).toBe(false);
    expect(isTouchDue(t, { ...base, rolling: true }, 999)).toBe(false);
    expect(isTouchDue(t, { ...base, rolling: true }, 1_000)).toBe(true);
    expect(isTouchDue(t, { ...base, idleTimeoutMs: 10_000 }, 1_000)).toBe(true);
  });

  it('secondsLeft rounds down and stays positive', () => {
    expect(secondsLeft({ createdAt: 0, refreshedAt: 0, expiresAt: 10_999 }, 0)).toBe(10);
    expect(secondsLeft({ createdAt: 0, refreshedAt: 0, expiresAt: 500 }, 0)).toBe(1);
  });
});

describe('timingFor: a session with its own lifetime', () => {
  const config = { ttlMs: 86_400_000, idleTimeoutMs: undefined, absoluteTimeoutMs: 60 * 86_400_000, rolling: false, touchAfterMs: 60_000 };
  it('replaces maxAge, keeps idleTimeout as a bound and absoluteTimeout as the end', () => {
    expect(timingFor(config, undefined)).toBe(config);
    expect(timingFor(config, 30 * 86_400).ttlMs).toBe(30 * 86_400_000);
    expect(timingFor({ ...config, idleTimeoutMs: 3_600_000 }, 30 * 86_400).ttlMs).toBe(3_600_000);
    const times = refreshedTimes(timingFor(config, 365 * 86_400), 0);
    expect(times.expiresAt).toBe(60 * 86_400_000);
  });
  it('a lifetime shorter than touchAfter still moves: once per tenth of it', () => {
    expect(timingFor(config, 30).touchAfterMs).toBe(3_000);
    expect(timingFor(config, 3600).touchAfterMs).toBe(60_000);
  });
});
