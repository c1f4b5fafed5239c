import { describe, expect, it } from 'vitest';
import { randomToken, randomView } from '../../src/crypto/random.js';

describe('pooled random bytes', () => {
  it('never hands out the same bytes twice, across pool refills', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5_000; i++) seen.add(randomToken(16)); // ~80 KB: ten refills
    expect(seen.size).toBe(5_000);
  });

  it('a view handed out earlier is not overwritten by a refill', () => {
    const first = randomView(32);
    const copy = Buffer.from(first);
    for (let i = 0; i < 1_000; i++) randomView(32);
    expect(first.equals(copy)).toBe(true);
  });

  it('serves sizes larger than the pool', () => {
    expect(randomView(20_000)).toHaveLength(20_000);
  });

  it('looks random: every byte value appears, none dominates', () => {
    const counts = new Array<number>(256).fill(0);
    for (let i = 0; i < 1_000; i++) for (const b of randomView(64)) counts[b]!++;
    expect(Math.min(...counts)).toBeGreaterThan(150);
    expect(Math.max(...counts)).toBeLessThan(350);
  });
});
