import { createHash, hkdfSync } from 'node:crypto';

/**
 * Keys are derived once, at startup, from each secret with HKDF-SHA256. The salt and the `info` labels
 * are fixed and versioned: changing one of them invalidates every token in circulation, so they only
 * change with the token format version.
 */
export const HKDF_SALT = 'nest-sessions';
export const HKDF_INFO_SIGN = 'nest-sessions v1 session-id signature';
export const HKDF_INFO_SEAL = 'nest-sessions v1 cookie seal';

export const MIN_SECRET_LENGTH = 32;

export interface SessionKey {
  /** Short public fingerprint of the secret (4 bytes), so a token names the key that opens it. */
  readonly id: Buffer;
  /** HMAC-SHA256 key for signing session IDs. */
  readonly signKey: Buffer;
  /** AES-256-GCM key for sealing cookie sessions. */
  readonly sealKey: Buffer;
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
      id: createHash('sha256').update(HKDF_SALT).update('\0key-id\0').update(secret).digest().subarray(0, 4),
      signKey: derive(secret, HKDF_INFO_SIGN),
      sealKey: derive(secret, HKDF_INFO_SEAL),
    }));
  }

  /** The key that signs and seals. */
  get current(): SessionKey {
    return this.keys[0]!;
  }
}
