import { createDecipheriv } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import { CLOCK_SKEW_MS, open, openedCacheSize, OPENED_CACHE_UNITS, seal, type SealContents } from '../../src/crypto/seal.js';

// Counts decryptions, to see which opens are answered from memory.
vi.mock('node:crypto', async (importOriginal) => {
  const crypto = await importOriginal<typeof import('node:crypto')>();
  return { ...crypto, createDecipheriv: vi.fn(crypto.createDecipheriv) };
});
const deciphers = vi.mocked(createDecipheriv);

const SECRET = 's'.repeat(32) + '-seal-cache';
const NOW = 1_700_000_000_000;
const contents = (payload = '{"user":"ann"}', expiresAt = NOW + 3_600_000): SealContents => ({
  id: 'AAAAAAAAAAAAAAAAAAAAAA',
  times: { createdAt: NOW - 1000, refreshedAt: NOW, expiresAt },
  payload,
});
const outcome = (result: ReturnType<typeof open>) => ('failure' in result ? result.failure : 'opened');

describe('opened tokens are remembered', () => {
  it('a token sent again is not decrypted again, and opens to the same contents', () => {
    // Sealed by another process (another keyring of the same secret): decrypted the first time only.
    const token = seal(new Keyring([SECRET]), 'session', contents());
    const ring = new Keyring([SECRET]);
    deciphers.mockClear();
    const first = open(ring, 'session', token, NOW);
    expect(open(ring, 'session', token, NOW + 1000)).toEqual(first);
    expect(deciphers).toHaveBeenCalledTimes(1);
    expect(first).toMatchObject({ payload: '{"user":"ann"}', keyIndex: 0 });
  });

  it('a token this process sealed opens without decryption, to what decryption gives', () => {
    const ring = new Keyring([SECRET]);
    const payload = '{"note":"Grüße 🍪"}';
    const token = seal(ring, 'session', contents(payload));
    deciphers.mockClear();
    const remembered = open(ring, 'session', token, NOW);
    expect(deciphers).not.toHaveBeenCalled();
    expect(open(new Keyring([SECRET]), 'session', token, NOW)).toEqual(remembered);
    expect(deciphers).toHaveBeenCalledTimes(1);
  });

  it('a seal that decryption would refuse or change is not remembered', () => {
    const ring = new Keyring([SECRET]);
    const contradictory = { ...contents(), times: { createdAt: NOW, refreshedAt: NOW - 1, expiresAt: NOW + 1000 } };
    expect(outcome(open(ring, 'session', seal(ring, 'session', contradictory), NOW))).toBe('malformed');
    // A lone surrogate (from a serializer of your own) comes back from UTF-8 as U+FFFD.
    const lone = seal(ring, 'session', contents('{"x":"\ud800"}'));
    expect(open(ring, 'session', lone, NOW)).toMatchObject({ payload: '{"x":"\ufffd"}' });
  });

  it('what it returns cannot be changed by a caller', () => {
    const ring = new Keyring([SECRET]);
    const opened = open(ring, 'session', seal(ring, 'session', contents()), NOW);
    expect(outcome(opened)).toBe('opened');
    expect(() => ((opened as { times: { expiresAt: number } }).times.expiresAt = Infinity)).toThrow(TypeError);
  });

  it('a remembered token still expires, and is still refused when dated too far ahead', () => {
    const ring = new Keyring([SECRET]);
    const token = seal(ring, 'session', contents(undefined, NOW + 60_000));
    expect(outcome(open(ring, 'session', token, NOW))).toBe('opened');
    expect(outcome(open(ring, 'session', token, NOW + 60_000))).toBe('expired');
    expect(outcome(open(ring, 'session', token, NOW - CLOCK_SKEW_MS - 1))).toBe('future-dated');
  });

  it('altered, truncated and renamed copies of a remembered token take the full check and fail', () => {
    const ring = new Keyring([SECRET]);
    const token = seal(ring, 'session', contents());
    expect(outcome(open(ring, 'session', token, NOW))).toBe('opened');
    const flipped = token.slice(0, 40) + (token[40] === 'A' ? 'B' : 'A') + token.slice(41);
    deciphers.mockClear();
    expect(outcome(open(ring, 'session', flipped, NOW))).toBe('tampered');
    // Cut by three bytes and spelled correctly, so that it always reaches the cipher (a cut of the text
    // itself is refused as malformed before it, unless the stray bits of its last character are zero).
    const truncated = Buffer.from(token, 'base64url').subarray(0, -3).toString('base64url');
    expect(outcome(open(ring, 'session', truncated, NOW))).toBe('tampered');
    const cut = token.slice(0, -4);
    expect(outcome(open(ring, 'session', cut, NOW))).not.toBe('opened');
    expect(outcome(open(ring, 'other', token, NOW))).toBe('tampered');
    expect(outcome(open(new Keyring([SECRET.toUpperCase()]), 'session', token, NOW))).toBe('unknown key');
    // The flipped, the well-spelled truncated and the renamed one reached the cipher, and so did the cut
    // text when it happens to be well spelled.
    const cutWellSpelled = Buffer.from(cut, 'base64url').toString('base64url') === cut;
    expect(deciphers).toHaveBeenCalledTimes(cutWellSpelled ? 4 : 3);
  });

  it('is bounded by what it holds, and leaves out a session too large to be worth it', () => {
    const ring = new Keyring([SECRET]);
    const payload = JSON.stringify({ text: 'x'.repeat(2000) });
    for (let i = 0; i < 1000; i++) open(ring, 'session', seal(ring, 'session', contents(payload)), NOW);
    const { entries, units } = openedCacheSize(ring);
    expect(units).toBeLessThanOrEqual(OPENED_CACHE_UNITS);
    expect(entries).toBeLessThan(1000);
    expect(entries).toBeGreaterThan(100);

    const small = new Keyring([SECRET]);
    const huge = seal(small, 'session', contents(JSON.stringify({ text: 'y'.repeat(OPENED_CACHE_UNITS / 32) })));
    expect(outcome(open(small, 'session', huge, NOW))).toBe('opened');
    expect(openedCacheSize(small).entries).toBe(0);
  });
});
