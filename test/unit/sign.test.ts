import { describe, expect, it } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import { newSessionId, signId, verifySignedId } from '../../src/crypto/sign.js';

const A = 'a'.repeat(32) + '-first-secret';
const B = 'b'.repeat(32) + '-second-secret';

describe('signed session IDs', () => {
  const ring = new Keyring([A]);

  it('IDs are 256 random bits, URL-safe, and never repeat', () => {
    const ids = new Set(Array.from({ length: 1000 }, newSessionId));
    expect(ids.size).toBe(1000);
    for (const id of ids) {
      expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(id, 'base64url')).toHaveLength(32);
    }
  });

  it('a signed ID verifies with the key that signed it', () => {
    const id = newSessionId();
    expect(verifySignedId(signId(id, ring), ring)).toEqual({ id, keyIndex: 0 });
  });

  it('refuses a changed ID, a changed signature, and another key', () => {
    const id = newSessionId();
    const token = signId(id, ring);
    const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    expect(verifySignedId(flip(token, 0), ring)).toBeUndefined();
    expect(verifySignedId(flip(token, 60), ring)).toBeUndefined();
    expect(verifySignedId(signId(id, new Keyring([B])), ring)).toBeUndefined();
  });

  it('refuses truncated, extended, empty, oversize and odd input without throwing', () => {
    const token = signId(newSessionId(), ring);
    for (const bad of [
      '',
      token.slice(0, -1),
      token + 'A',
      token + '.x',
      token.replace('.', ''),
      token.replace('.', '-'),
      'x'.repeat(100_000),
      token.slice(0, 43) + '.' + '\0'.repeat(43),
      "' OR 1=1 --",
      '__proto__',
      `${token.slice(0, 43)}.${'/'.repeat(43)}`,
    ]) {
      expect(verifySignedId(bad, ring), JSON.stringify(bad.slice(0, 50))).toBeUndefined();
    }
  });

  it('refuses a signature spelled with other bits in its last character', () => {
    const token = signId(newSessionId(), ring);
    // 32 bytes in 43 base64url characters leave 2 spare bits in the last one: other spellings decode alike.
    const last = token.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const index = alphabet.indexOf(last);
    const twin = alphabet[(index & ~3) | ((index + 1) & 3)]!;
    expect(Buffer.from(token.slice(44, -1) + twin, 'base64url')).toEqual(Buffer.from(token.slice(44), 'base64url'));
    expect(verifySignedId(token.slice(0, -1) + twin, ring)).toBeUndefined();
  });

  it('rotation: the newest key signs, older ones still verify and report their age', () => {
    const id = newSessionId();
    const oldToken = signId(id, new Keyring([B]));
    const rotated = new Keyring([A, B]);
    expect(verifySignedId(oldToken, rotated)).toEqual({ id, keyIndex: 1 });
    expect(verifySignedId(signId(id, rotated), new Keyring([A]))).toEqual({ id, keyIndex: 0 });
    // Once B is removed, its tokens are worthless.
    expect(verifySignedId(oldToken, new Keyring([A]))).toBeUndefined();
  });

  it('derives different keys for signing and sealing, and from different secrets', () => {
    const [a] = new Keyring([A]).keys;
    const [b] = new Keyring([B]).keys;
    expect(a!.signKey.equals(a!.sealKey)).toBe(false);
    expect(a!.signKey.equals(b!.signKey)).toBe(false);
    expect(a!.id.equals(b!.id)).toBe(false);
    expect(new Keyring([A]).keys[0]!.signKey.equals(a!.signKey)).toBe(true);
  });
});
