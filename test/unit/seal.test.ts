import { describe, expect, it } from 'vitest';
import { hkdfSync } from 'node:crypto';
import { HKDF_INFO_KEY_ID, HKDF_SALT, Keyring } from '../../src/crypto/keyring.js';
import { CLOCK_SKEW_MS, open, seal, type SealContents } from '../../src/crypto/seal.js';

const OLD = 'o'.repeat(32) + '-old-secret';
const NEW = 'n'.repeat(32) + '-new-secret';
const ring = new Keyring([NEW]);
const NOW = 1_700_000_000_000;
const contents = (payload = '{"user":"ann","note":"Grüße 🍪"}'): SealContents => ({
  id: 'AAAAAAAAAAAAAAAAAAAAAA',
  times: { createdAt: NOW - 1000, refreshedAt: NOW, expiresAt: NOW + 3_600_000 },
  payload,
});

function failure(token: string, keyring = ring, name = 'session', now = NOW) {
  const result = open(keyring, name, token, now);
  return 'failure' in result ? result.failure : 'opened';
}

describe('seal and open', () => {
  it('round-trips id, times and payload', () => {
    const token = seal(ring, 'session', contents());
    expect(open(ring, 'session', token, NOW)).toEqual({ ...contents(), keyIndex: 0, stale: false });
  });

  it('a token names its key with an HKDF derivation of the secret, not a plain hash of it', () => {
    const key = ring.current;
    const expected = Buffer.from(hkdfSync('sha256', NEW, HKDF_SALT, HKDF_INFO_KEY_ID, 32)).subarray(0, 4);
    expect(key.id).toEqual(expected);
    expect(key.id.equals(key.legacyId)).toBe(false);
    expect(Buffer.from(seal(ring, 'session', contents()), 'base64url').subarray(1, 5)).toEqual(expected);
  });

  it('a token sealed under the older key name still opens, marked stale so that it is sealed again', () => {
    const legacy = {
      keys: [{ ...ring.current, id: ring.current.legacyId }],
      current: { ...ring.current, id: ring.current.legacyId },
    } as unknown as Keyring;
    const token = seal(legacy, 'session', contents());
    expect(open(new Keyring([NEW]), 'session', token, NOW)).toEqual({ ...contents(), keyIndex: 0, stale: true });
    expect(failure(token, new Keyring([OLD]))).toBe('unknown key');
  });

  it('two seals of the same contents differ (fresh salt and IV)', () => {
    expect(seal(ring, 'session', contents())).not.toBe(seal(ring, 'session', contents()));
  });

  it('the token holds no readable copy of the data', () => {
    const payload = JSON.stringify({ email: 'ann@example.com', role: 'admin' });
    const token = seal(ring, 'session', contents(payload));
    const decoded = Buffer.from(token, 'base64url').toString('latin1');
    for (const needle of ['ann@example.com', 'admin', 'email']) {
      expect(token).not.toContain(needle);
      expect(decoded).not.toContain(needle);
      expect(token).not.toContain(Buffer.from(needle).toString('base64url').slice(0, 6));
    }
  });

  it('a flipped bit anywhere is refused', () => {
    const bytes = Buffer.from(seal(ring, 'session', contents()), 'base64url');
    for (let i = 0; i < bytes.length; i++) {
      const copy = Buffer.from(bytes);
      copy[i]! ^= 0x01;
      // Byte 0 is the version, 1-4 the key id: those fail earlier, as malformed or unknown key.
      expect(failure(copy.toString('base64url')), `byte ${i}`).not.toBe('opened');
    }
  });

  it('truncation, appended bytes and changed case are refused', () => {
    const token = seal(ring, 'session', contents());
    for (const cut of [1, 2, 3, 4, 8, 22]) expect(failure(token.slice(0, -cut)), `cut ${cut}`).not.toBe('opened');
    expect(failure(token.slice(0, 40))).toBe('malformed');
    for (const extra of ['A', 'AA', 'AAAA', 'AAAAAAAA']) expect(failure(token + extra), `+${extra}`).not.toBe('opened');
    const i = [...token].findIndex((c, k) => k > 30 && /[a-z]/.test(c));
    expect(failure(token.slice(0, i) + token[i]!.toUpperCase() + token.slice(i + 1))).toBe('tampered');
    expect(failure(token.toUpperCase())).not.toBe('opened');
  });

  it('empty, odd characters, padding and 100 KB are refused without throwing', () => {
    const token = seal(ring, 'session', contents());
    for (const bad of [
      '',
      ' ',
      token + '=',
      token.replace(/.$/, '+'),
      `${token.slice(0, 50)}.${token.slice(50)}`,
      '\0'.repeat(200),
      'A'.repeat(100_000),
    ]) {
      expect(failure(bad)).not.toBe('opened');
    }
  });

  it('a token spelled with other bits in its last character is refused', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    // Find a token whose length leaves spare bits in the last character, then set one of them.
    for (let n = 0; n < 3; n++) {
      const token = seal(ring, 'session', contents('x'.repeat(n)));
      const spare = (token.length * 6) % 8;
      if (spare === 0) continue;
      const last = alphabet.indexOf(token.at(-1)!);
      const twin = token.slice(0, -1) + alphabet[last ^ 1]!;
      expect(Buffer.from(twin, 'base64url')).toEqual(Buffer.from(token, 'base64url'));
      expect(failure(twin)).toBe('malformed');
      return;
    }
    throw new Error('no token length with spare bits was tried');
  });

  it('a token is bound to its cookie name', () => {
    const token = seal(ring, 'session', contents());
    expect(failure(token, ring, 'session')).toBe('opened');
    expect(failure(token, ring, 'other')).toBe('tampered');
    expect(failure(token, ring, 'Session')).toBe('tampered');
  });

  it('rotation: an older secret still opens and says so; a removed one does not', () => {
    const oldToken = seal(new Keyring([OLD]), 'session', contents());
    const rotated = new Keyring([NEW, OLD]);
    expect(open(rotated, 'session', oldToken, NOW)).toMatchObject({ keyIndex: 1, payload: contents().payload });
    expect(open(rotated, 'session', seal(rotated, 'session', contents()), NOW)).toMatchObject({ keyIndex: 0 });
    expect(failure(oldToken, ring)).toBe('unknown key');
  });

  it('expiry is read from the seal', () => {
    const token = seal(ring, 'session', contents());
    expect(failure(token, ring, 'session', NOW + 3_599_999)).toBe('opened');
    expect(failure(token, ring, 'session', NOW + 3_600_000)).toBe('expired');
  });

  it('a token issued in the future beyond the clock skew is refused', () => {
    const token = seal(ring, 'session', contents());
    expect(failure(token, ring, 'session', NOW - CLOCK_SKEW_MS)).toBe('opened');
    expect(failure(token, ring, 'session', NOW - CLOCK_SKEW_MS - 1)).toBe('future-dated');
  });

  it('times that contradict each other are refused even under a valid seal', () => {
    const bad = { ...contents(), times: { createdAt: NOW, refreshedAt: NOW - 1, expiresAt: NOW + 1000 } };
    expect(failure(seal(ring, 'session', bad))).toBe('malformed');
  });
});
