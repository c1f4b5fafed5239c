import { createHmac } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import { newSessionId, signId, verifiedCount, verifySignedId, VERIFIED_CACHE_SIZE } from '../../src/crypto/sign.js';

// Counts HMAC computations, to see which verifications are answered from memory.
vi.mock('node:crypto', async (importOriginal) => {
  const crypto = await importOriginal<typeof import('node:crypto')>();
  return { ...crypto, createHmac: vi.fn(crypto.createHmac) };
});
const hmacs = vi.mocked(createHmac);

const A = 'a'.repeat(32) + '-first-secret';
const B = 'b'.repeat(32) + '-second-secret';

describe('verified session IDs are remembered', () => {
  it('a returning token is checked with an HMAC once, then answered from memory', () => {
    const ring = new Keyring([A]);
    // Signed by another process (another keyring with the same secret): this one has never seen it.
    const token = signId(newSessionId(), new Keyring([A]));
    hmacs.mockClear();
    const first = verifySignedId(token, ring);
    expect(hmacs).toHaveBeenCalledTimes(1);
    expect(verifySignedId(token, ring)).toEqual(first);
    expect(verifySignedId(token, ring)).toEqual(first);
    expect(hmacs).toHaveBeenCalledTimes(1);
  });

  it('an ID is signed with an HMAC once; its token is then remembered as verified', () => {
    const ring = new Keyring([A]);
    const id = newSessionId();
    hmacs.mockClear();
    const token = signId(id, ring);
    expect(signId(id, ring)).toBe(token);
    expect(verifySignedId(token, ring)).toEqual({ id, keyIndex: 0 });
    expect(hmacs).toHaveBeenCalledTimes(1);
    // The same token as a fresh computation gives, under the same secret.
    expect(signId(id, new Keyring([A]))).toBe(token);
  });

  it('a token verified under the newest key is not signed again on a save; one under an older key is', () => {
    const rotated = new Keyring([B, A]);
    const current = signId(newSessionId(), new Keyring([B]));
    const id = current.slice(0, 43);
    expect(verifySignedId(current, rotated)).toEqual({ id, keyIndex: 0 });
    hmacs.mockClear();
    expect(signId(id, rotated)).toBe(current);
    expect(hmacs).not.toHaveBeenCalled();
    // Verified under the older key: re-signed with the newest one, so the client gets a new token.
    const oldId = newSessionId();
    const old = signId(oldId, new Keyring([A]));
    expect(verifySignedId(old, rotated)).toEqual({ id: oldId, keyIndex: 1 });
    hmacs.mockClear();
    const resigned = signId(oldId, rotated);
    expect(resigned).not.toBe(old);
    expect(hmacs).toHaveBeenCalledTimes(1);
    expect(verifySignedId(resigned, rotated)).toEqual({ id: oldId, keyIndex: 0 });
  });

  it('a token altered from a remembered one takes the full check, and fails it, every time', () => {
    const ring = new Keyring([A]);
    const token = signId(newSessionId(), ring);
    expect(verifySignedId(token, ring)).toBeDefined();
    const altered = token.slice(0, -2) + (token.at(-2) === 'A' ? 'B' : 'A') + token.at(-1);
    hmacs.mockClear();
    for (let i = 0; i < 3; i++) expect(verifySignedId(altered, ring)).toBeUndefined();
    expect(hmacs).toHaveBeenCalledTimes(3);
  });

  it('refused tokens are not remembered, and memory is per keyring', () => {
    const ring = new Keyring([A]);
    const before = verifiedCount(ring);
    for (let i = 0; i < 50; i++) verifySignedId(signId(newSessionId(), new Keyring([B])), ring);
    expect(verifiedCount(ring)).toBe(before);
    // Remembered by one keyring, still refused by another secret's.
    const token = signId(newSessionId(), ring);
    expect(verifySignedId(token, ring)).toBeDefined();
    expect(verifySignedId(token, new Keyring([B]))).toBeUndefined();
  });

  it('after a rotation, a remembered token keeps the position of the key that signed it', () => {
    const old = new Keyring([A]);
    const rotated = new Keyring([B, A]);
    const id = newSessionId();
    const token = signId(id, old);
    expect(verifySignedId(token, rotated)).toEqual({ id, keyIndex: 1 });
    expect(verifySignedId(token, rotated)).toEqual({ id, keyIndex: 1 });
  });

  it('memory is bounded: past its size, the oldest tokens are forgotten and checked again', () => {
    const ring = new Keyring([A]);
    const other = new Keyring([A]);
    const first = signId(newSessionId(), other);
    verifySignedId(first, ring);
    for (let i = 0; i < VERIFIED_CACHE_SIZE + 10; i++) verifySignedId(signId(newSessionId(), other), ring);
    expect(verifiedCount(ring)).toBe(VERIFIED_CACHE_SIZE);
    hmacs.mockClear();
    expect(verifySignedId(first, ring)).toBeDefined();
    expect(hmacs).toHaveBeenCalledTimes(1);
  });
});
