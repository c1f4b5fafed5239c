import { describe, expect, it } from 'vitest';
import { createCipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { HKDF_INFO_KEY_ID, HKDF_SALT, Keyring } from '../../src/crypto/keyring.js';
import { CLOCK_SKEW_MS, open, openingKeyCount, seal, SEALS_PER_SALT, type SealContents } from '../../src/crypto/seal.js';

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

  it('two seals of the same contents differ (fresh IV)', () => {
    expect(seal(ring, 'session', contents())).not.toBe(seal(ring, 'session', contents()));
  });

  const saltOf = (token: string) => Buffer.from(token, 'base64url').subarray(5, 21).toString('hex');
  const ivOf = (token: string) => Buffer.from(token, 'base64url').subarray(21, 33).toString('hex');

  it(`a salt (a derived key) serves ${SEALS_PER_SALT} seals, each with its own IV; then a new one is drawn`, () => {
    const own = new Keyring([NEW]);
    const salts = new Map<string, number>();
    const ivs = new Set<string>();
    for (let i = 0; i < SEALS_PER_SALT * 2 + 1; i++) {
      const token = seal(own, 'session', contents('{}'));
      salts.set(saltOf(token), (salts.get(saltOf(token)) ?? 0) + 1);
      ivs.add(ivOf(token));
    }
    expect([...salts.values()]).toEqual([SEALS_PER_SALT, SEALS_PER_SALT, 1]);
    expect(ivs.size).toBe(SEALS_PER_SALT * 2 + 1);
  });

  /** A token of format 1 as a process that drew this salt for it alone would seal it (earlier versions did). */
  function sealedWithSalt(keyring: Keyring, salt: Buffer, payload: string, name = 'session'): string {
    const key = keyring.current;
    const header = Buffer.concat([Buffer.from([1]), key.id, salt, randomBytes(12)]);
    const head = Buffer.alloc(40);
    const { times } = contents();
    head.writeDoubleBE(times.createdAt, 0);
    head.writeDoubleBE(times.refreshedAt, 8);
    head.writeDoubleBE(times.expiresAt, 16);
    Buffer.from(contents().id, 'base64url').copy(head, 24);
    const cipher = createCipheriv('aes-256-gcm', createHmac('sha256', key.sealKey).update(salt).digest(), header.subarray(21), {
      authTagLength: 16,
    });
    cipher.setAAD(Buffer.concat([header, Buffer.from(name)]));
    const body = Buffer.concat([cipher.update(head), cipher.update(payload), cipher.final(), cipher.getAuthTag()]);
    return Buffer.concat([header, body]).toString('base64url');
  }

  it('a token under a salt this process never drew (another process, an earlier version) opens, and its key is remembered', () => {
    const own = new Keyring([NEW]);
    const before = openingKeyCount(own.current);
    const token = sealedWithSalt(own, randomBytes(16), '{"from":"elsewhere"}');
    expect(open(own, 'session', token, NOW)).toEqual({ ...contents('{"from":"elsewhere"}'), keyIndex: 0, stale: false });
    expect(openingKeyCount(own.current)).toBe(before + 1);
    // Another token under the same salt opens with the remembered key.
    const salt = Buffer.from(token, 'base64url').subarray(5, 21);
    expect(open(own, 'session', sealedWithSalt(own, salt, '{"n":2}'), NOW)).toMatchObject({ payload: '{"n":2}' });
    expect(openingKeyCount(own.current)).toBe(before + 1);
  });

  it('made-up salts are never remembered: a token that does not authenticate leaves the memory as it was', () => {
    const own = new Keyring([NEW]);
    seal(own, 'session', contents());
    const before = openingKeyCount(own.current);
    for (let i = 0; i < 20; i++) {
      const token = Buffer.from(sealedWithSalt(new Keyring([OLD]), randomBytes(16), '{}'), 'base64url');
      own.current.id.copy(token, 1); // names this keyring's key, but was sealed under another secret
      expect(failure(token.toString('base64url'), own)).toBe('tampered');
    }
    expect(openingKeyCount(own.current)).toBe(before);
  });

  it('a remembered salt does not open a token altered anywhere, nor one sealed under another secret with that salt', () => {
    const own = new Keyring([NEW]);
    const token = seal(own, 'session', contents());
    const bytes = Buffer.from(token, 'base64url');
    for (const at of [0, 5, 20, 21, 32, 33, 60, bytes.length - 1]) {
      const altered = Buffer.from(bytes);
      altered[at]! ^= 0x01;
      expect(failure(altered.toString('base64url'), own)).not.toBe('opened');
    }
    const salt = bytes.subarray(5, 21);
    const forged = Buffer.from(sealedWithSalt(new Keyring([OLD]), Buffer.from(salt), '{"role":"admin"}'), 'base64url');
    own.current.id.copy(forged, 1);
    expect(failure(forged.toString('base64url'), own)).toBe('tampered');
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
