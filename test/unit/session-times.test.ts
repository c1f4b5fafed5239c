import { describe, expect, it } from 'vitest';
import { isLive, isTouchDue, refreshedTimes, secondsLeft } from '../../src/session-times.js';

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
