import { createHmac, timingSafeEqual } from 'node:crypto';
import { randomToken, randomView } from './random.js';

/**
 * Anti-forgery tokens bound to a session (the synchronizer-token pattern). A stored session's secret is
 * derived from its ID under a server key (nothing stored, the same in every request and process); a
 * session that asks for a token before it has an ID gets a random secret, kept with its data until its
 * next regenerate. A token is the secret masked with fresh random bytes (`mask || mask XOR secret`), so
 * every page gets a different string and a compression side channel (BREACH) that recovers bytes
 * repeated across responses learns nothing from it.
 */

/** Bytes of a session's anti-forgery secret. */
export const CSRF_SECRET_BYTES = 32;
/** Characters of a secret (base64url of CSRF_SECRET_BYTES). */
const SECRET_CHARS = Math.ceil((CSRF_SECRET_BYTES * 4) / 3);
/** Characters of a token: base64url of the mask and the masked secret. */
export const CSRF_TOKEN_CHARS = Math.ceil((2 * CSRF_SECRET_BYTES * 4) / 3);
const TOKEN_SHAPE = new RegExp(`^[A-Za-z0-9_-]{${CSRF_TOKEN_CHARS}}$`);
const SECRET_SHAPE = new RegExp(`^[A-Za-z0-9_-]{${SECRET_CHARS}}$`);

/** A new secret for a session, base64url. */
export function newCsrfSecret(): string {
  return randomToken(CSRF_SECRET_BYTES);
}

/** The secret of the stored session `id` under `key` (one of the keyring's `csrfKey`s). */
export function derivedCsrfSecret(key: Buffer, id: string): string {
  return createHmac('sha256', key).update(id).digest().toString('base64url');
}

/** Whether a stored value can be a secret (a session stored by hand, or tampered with, may hold anything). */
export function isCsrfSecret(value: unknown): value is string {
  return typeof value === 'string' && SECRET_SHAPE.test(value) && Buffer.from(value, 'base64url').length === CSRF_SECRET_BYTES;
}

/** A token for `secret`, masked afresh: two calls never give the same string. */
export function maskCsrfToken(secret: string): string {
  const raw = Buffer.from(secret, 'base64url');
  const out = Buffer.allocUnsafe(2 * CSRF_SECRET_BYTES);
  randomView(CSRF_SECRET_BYTES).copy(out, 0);
  for (let i = 0; i < CSRF_SECRET_BYTES; i++) out[CSRF_SECRET_BYTES + i] = out[i]! ^ raw[i]!;
  return out.toString('base64url');
}

/**
 * Whether `token` is a token of `secret`. Only the canonical spelling of exactly one token is accepted
 * (no padding, no other alphabet, no trailing bits), and the secrets are compared in constant time.
 */
export function csrfTokenMatches(secret: string | readonly string[], token: string): boolean {
  if (!TOKEN_SHAPE.test(token)) return false;
  const bytes = Buffer.from(token, 'base64url');
  if (bytes.length !== 2 * CSRF_SECRET_BYTES || bytes.toString('base64url') !== token) return false;
  const unmasked = Buffer.allocUnsafe(CSRF_SECRET_BYTES);
  for (let i = 0; i < CSRF_SECRET_BYTES; i++) unmasked[i] = bytes[i]! ^ bytes[CSRF_SECRET_BYTES + i]!;
  let matches = false;
  // Every candidate is compared (one per secret of the keyring), whichever matches.
  for (const candidate of typeof secret === 'string' ? [secret] : secret) {
    const expected = Buffer.from(candidate, 'base64url');
    if (expected.length === CSRF_SECRET_BYTES && timingSafeEqual(unmasked, expected)) matches = true;
  }
  return matches;
}
