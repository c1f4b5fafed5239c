import { createHash, hkdfSync } from 'node:crypto';

/**
 * Keys are derived once, at startup, from each secret with HKDF-SHA256. The salt and the `info` labels
 * are fixed and versioned: changing one of them invalidates every token in circulation, so they only
 * change with the token format version.
 */
export const HKDF_SALT = 'nest-sessions';
export const HKDF_INFO_SIGN = 'nest-sessions v1 session-id signature';
export const HKDF_INFO_SEAL = 'nest-sessions v1 cookie seal';
export const HKDF_INFO_KEY_ID = 'nest-sessions v1 key id';
export const HKDF_INFO_CSRF = 'nest-sessions v1 csrf secret';

export const MIN_SECRET_LENGTH = 32;
/** The least entropy a secret may show by its characters' frequencies (see secretBits). */
export const MIN_SECRET_BITS = 80;

export interface SessionKey {
  /**
   * Short public name of the key (4 bytes), so a token names the key that opens it. Derived from the
   * secret with HKDF, like the keys, under its own label. Like any value derived from the secret alone,
   * it lets a guessed secret be tested offline (about as cheaply as against the token's own tag): what
   * protects a secret is that it cannot be guessed, which the secret rule enforces.
   */
  readonly id: Buffer;
  /** The name tokens sealed before the keyed one carried (4 bytes of an unkeyed SHA-256): still opened, and re-sealed. */
  readonly legacyId: Buffer;
  /** HMAC-SHA256 key for signing session IDs. */
  readonly signKey: Buffer;
  /** AES-256-GCM key for sealing cookie sessions. */
  readonly sealKey: Buffer;
  /** HMAC-SHA256 key that derives a stored session's anti-forgery secret from its ID. */
  readonly csrfKey: Buffer;
}

function derive(secret: string, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, HKDF_SALT, info, 32));
}

/** The secrets in use, newest first: the first one signs and seals, every one verifies and opens. */
export class Keyring {
  readonly keys: readonly SessionKey[];

  constructor(secrets: readonly string[]) {
    if (secrets.length === 0) throw new Error('Keyring needs at least one secret');
    this.keys = secrets.map((secret) => ({
      id: derive(secret, HKDF_INFO_KEY_ID).subarray(0, 4),
      legacyId: createHash('sha256').update(HKDF_SALT).update('\0key-id\0').update(secret).digest().subarray(0, 4),
      signKey: derive(secret, HKDF_INFO_SIGN),
      sealKey: derive(secret, HKDF_INFO_SEAL),
      csrfKey: derive(secret, HKDF_INFO_CSRF),
    }));
  }

  /** The key that signs and seals. */
  get current(): SessionKey {
    return this.keys[0]!;
  }
}

/**
 * A rough estimate of a secret's entropy, in bits: the Shannon entropy of its characters' frequencies
 * times their count, or, if less, that of a block the secret repeats plus 8 bits for every character
 * that breaks the repetition ("Pa55w0rd" x 4 + "!" counts as "Pa55w0rd" and one more character). It
 * cannot tell a random secret from a clever pattern, but it catches the secrets people type: one
 * character or a word repeated, a handful of characters. Looks at the first 512 characters.
 */
export function secretBits(secret: string): number {
  const chars = [...secret].slice(0, 512);
  let best = entropyBits(chars);
  for (let period = 1; period <= chars.length / 2; period++) {
    const block = entropyBits(chars.slice(0, period));
    let bits = block;
    for (let i = period; i < chars.length && bits < best; i++) if (chars[i] !== chars[i - period]) bits += 8;
    best = Math.min(best, bits);
  }
  return best;
}

function entropyBits(chars: readonly string[]): number {
  const counts = new Map<string, number>();
  for (const c of chars) counts.set(c, (counts.get(c) ?? 0) + 1);
  let bits = 0;
  for (const count of counts.values()) bits -= count * Math.log2(count / chars.length);
  return bits;
}
