import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import type { SessionTimes } from '../stores/session-store.js';
import type { Keyring, SessionKey } from './keyring.js';
import { randomView } from './random.js';

/**
 * The sealed cookie format, version 1. Everything is base64url of:
 *
 *   version (1) | key id (4) | salt (16) | iv (12) | AES-256-GCM( times (3 x 8) | session id (16) | payload ) | tag (16)
 *
 * - The key id names which secret sealed the token, so rotation costs one decryption, not one per secret.
 * - Tokens are encrypted under a key derived from the secret and a random 128-bit salt,
 *   HMAC-SHA256(seal key, salt), each with a random 96-bit IV. A 96-bit random IV alone under one key
 *   would risk a repeated (key, IV) pair, which breaks GCM, after about 2^32 seals: a busy site reaches
 *   that. A process draws a new salt, so a new key, every SEALS_PER_SALT seals (2^16): the chance of a
 *   repeated IV under one key is then below 2^-65, and the key derivation is not paid on every seal.
 *   Openers remember the keys of salts they have seen.
 * - The associated data is the header and the cookie name, so a token replayed under another cookie
 *   name does not open. Times are inside the seal: the client can neither read nor extend them.
 */
export const SEAL_VERSION = 1;
const KID = 4;
const SALT = 16;
const IV = 12;
const TAG = 16;
const HEADER = 1 + KID + SALT + IV;
const TIMES = 3 * 8;
export const SEALED_ID_BYTES = 16;
const PLAIN_HEAD = TIMES + SEALED_ID_BYTES;
/** The shortest possible token: an empty payload. */
const MIN_BYTES = HEADER + PLAIN_HEAD + TAG;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** How far in the future an issue time may be before the token is refused (clocks of several servers drift). */
export const CLOCK_SKEW_MS = 60_000;

export interface SealContents {
  /** 16 bytes, as base64url (22 characters). */
  id: string;
  times: SessionTimes;
  payload: string;
}

/** `stale`: sealed with an older secret, or under the older key name: the cookie store seals it again. */
export type Opened = SealContents & { keyIndex: number; stale: boolean };

export type OpenFailure = 'malformed' | 'unknown key' | 'tampered' | 'expired' | 'future-dated';

function tokenKey(key: SessionKey, salt: Buffer): Buffer {
  return createHmac('sha256', key.sealKey).update(salt).digest();
}

/** Seals under one salt (one derived key) before a new salt is drawn. */
export const SEALS_PER_SALT = 2 ** 16;
/** Derived keys an opener remembers per secret, by salt. */
const OPENING_KEYS = 256;

interface SealingKey {
  readonly salt: Buffer;
  readonly key: Buffer;
  left: number;
}

const sealingBySecret = new WeakMap<SessionKey, SealingKey>();
const openingBySecret = new WeakMap<SessionKey, Map<string, Buffer>>();

/** The salt and derived key this process seals under now, drawn again after SEALS_PER_SALT seals. */
function sealingKey(key: SessionKey): SealingKey {
  let current = sealingBySecret.get(key);
  if (!current || current.left === 0) {
    const salt = Buffer.from(randomView(SALT));
    current = { salt, key: tokenKey(key, salt), left: SEALS_PER_SALT };
    sealingBySecret.set(key, current);
    rememberOpeningKey(key, salt, current.key);
  }
  current.left--;
  return current;
}

/** The derived key of `salt`: remembered, or computed (and remembered by the caller once it opened a token). */
function openingKey(key: SessionKey, salt: Buffer): { derived: Buffer; known: boolean } {
  const known = openingBySecret.get(key)?.get(salt.toString('latin1'));
  return known ? { derived: known, known: true } : { derived: tokenKey(key, salt), known: false };
}

function rememberOpeningKey(key: SessionKey, salt: Buffer, derived: Buffer): void {
  let keys = openingBySecret.get(key);
  if (!keys) openingBySecret.set(key, (keys = new Map()));
  if (keys.size >= OPENING_KEYS) keys.delete(keys.keys().next().value!);
  keys.set(salt.toString('latin1'), derived);
}

function aad(header: Buffer, tokenName: string): Buffer {
  return Buffer.concat([header, Buffer.from(tokenName, 'utf8')]);
}

/** Seals with the newest key. */
export function seal(keyring: Keyring, tokenName: string, contents: SealContents): string {
  const key = keyring.current;
  const sealing = sealingKey(key);
  const header = Buffer.allocUnsafe(HEADER);
  header[0] = SEAL_VERSION;
  key.id.copy(header, 1);
  sealing.salt.copy(header, 1 + KID);
  randomView(IV).copy(header, 1 + KID + SALT);
  const iv = header.subarray(1 + KID + SALT);

  const head = Buffer.allocUnsafe(PLAIN_HEAD);
  head.writeDoubleBE(contents.times.createdAt, 0);
  head.writeDoubleBE(contents.times.refreshedAt, 8);
  head.writeDoubleBE(contents.times.expiresAt, 16);
  const idBytes = Buffer.from(contents.id, 'base64url');
  if (idBytes.copy(head, TIMES) !== SEALED_ID_BYTES) {
    throw new Error('A sealed session ID must be 16 bytes');
  }

  const cipher = createCipheriv('aes-256-gcm', sealing.key, iv, { authTagLength: TAG });
  cipher.setAAD(aad(header, tokenName));
  const body = Buffer.concat([cipher.update(head), cipher.update(contents.payload, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  const token = Buffer.concat([header, body]).toString('base64url');
  // The client sends this token back next: what it opens to is known, so opening it then costs a lookup.
  // Only when decrypting would give exactly these contents back (and not refuse them).
  const { id, times, payload } = contents;
  if (idBytes.toString('base64url') === id && timesInOrder(times) && payload.isWellFormed()) {
    remember(
      cacheOf(keyring),
      `${tokenName}=${token}`,
      Object.freeze({ id, times: Object.freeze({ ...times }), payload, keyIndex: 0, stale: false }),
    );
  }
  return token;
}

/** How much text (in UTF-16 code units: tokens and payloads) each keyring's memory of opened tokens holds. */
export const OPENED_CACHE_UNITS = 2 * 1024 * 1024;

interface OpenedCache {
  readonly entries: Map<string, Opened>;
  units: number;
}

/**
 * Tokens this process has opened or sealed, per keyring and cookie name: a client sends the same cookie
 * on every request until the session changes, and decrypting it each time (a key derivation, a cipher)
 * is most of a read's own cost. Only tokens that opened, or that `seal` just made, go in, keyed by their
 * exact text, so an altered one is never found and always takes the full check. The times are checked
 * against `now` on every use, so a remembered token still expires. Bounded by the size of what it
 * holds; full, it forgets the oldest.
 */
const openedByKeyring = new WeakMap<Keyring, OpenedCache>();

/**
 * Opens a token, or says why it would not. Never throws: anything from the client is untrusted input.
 * `now` is checked against the sealed times (expiry, and issue times in the future beyond the skew).
 * The result is shared with later calls for the same token: treat it as read-only.
 */
export function open(keyring: Keyring, tokenName: string, token: string, now: number): Opened | { failure: OpenFailure; id?: string } {
  const key = `${tokenName}=${token}`;
  let opened = openedByKeyring.get(keyring)?.entries.get(key);
  if (!opened) {
    const result = decrypt(keyring, tokenName, token);
    if ('failure' in result) return result;
    remember(cacheOf(keyring), key, (opened = result));
  }
  const { times } = opened;
  if (times.refreshedAt > now + CLOCK_SKEW_MS) return { failure: 'future-dated' };
  if (times.expiresAt <= now) return { failure: 'expired', id: opened.id };
  return opened;
}

function timesInOrder(times: SessionTimes): boolean {
  return times.createdAt <= times.refreshedAt && times.refreshedAt <= times.expiresAt;
}

function cacheOf(keyring: Keyring): OpenedCache {
  let cache = openedByKeyring.get(keyring);
  if (!cache) openedByKeyring.set(keyring, (cache = { entries: new Map(), units: 0 }));
  return cache;
}

/** What an entry counts against OPENED_CACHE_UNITS. */
function unitsOf(key: string, opened: Opened): number {
  return key.length + opened.payload.length;
}

function remember(cache: OpenedCache, key: string, opened: Opened): void {
  const size = unitsOf(key, opened);
  if (size > OPENED_CACHE_UNITS / 64) return; // a huge session would push out many small ones
  cache.entries.set(key, opened);
  cache.units += size;
  for (const [oldKey, old] of cache.entries) {
    if (cache.units <= OPENED_CACHE_UNITS) break;
    cache.entries.delete(oldKey);
    cache.units -= unitsOf(oldKey, old);
  }
}

/** @internal How many salts' derived keys an opener remembers for a secret (for tests). */
export function openingKeyCount(key: SessionKey): number {
  return openingBySecret.get(key)?.size ?? 0;
}

/** @internal How many opened tokens a keyring remembers, and how much text (for tests). */
export function openedCacheSize(keyring: Keyring): { entries: number; units: number } {
  const cache = openedByKeyring.get(keyring);
  return { entries: cache?.entries.size ?? 0, units: cache?.units ?? 0 };
}

/** The format and cryptographic checks of `open`; the times are checked for order only. */
function decrypt(keyring: Keyring, tokenName: string, token: string): Opened | { failure: OpenFailure } {
  if (token.length < Math.ceil((MIN_BYTES * 4) / 3) || !BASE64URL.test(token)) return { failure: 'malformed' };
  const bytes = Buffer.from(token, 'base64url');
  // Node's decoder forgives odd lengths and stray bits in the last character: insist on the one spelling.
  if (bytes.length < MIN_BYTES || bytes.toString('base64url') !== token) return { failure: 'malformed' };
  if (bytes[0] !== SEAL_VERSION) return { failure: 'malformed' };

  const kid = bytes.subarray(1, 1 + KID);
  const keys = keyring.keys;
  let keyIndex = keys.findIndex((k) => k.id.equals(kid));
  // A token sealed before key names were keyed: opened all the same, and re-sealed (stale).
  const legacy = keyIndex < 0 && (keyIndex = keys.findIndex((k) => k.legacyId.equals(kid))) >= 0;
  if (keyIndex < 0) return { failure: 'unknown key' };

  const header = bytes.subarray(0, HEADER);
  const salt = bytes.subarray(1 + KID, 1 + KID + SALT);
  const iv = bytes.subarray(1 + KID + SALT, HEADER);
  const tag = bytes.subarray(bytes.length - TAG);
  let plain: Buffer;
  const secret = keys[keyIndex]!;
  const { derived, known } = openingKey(secret, salt);
  try {
    const decipher = createDecipheriv('aes-256-gcm', derived, iv, { authTagLength: TAG });
    decipher.setAAD(aad(header, tokenName));
    decipher.setAuthTag(tag);
    plain = Buffer.concat([decipher.update(bytes.subarray(HEADER, bytes.length - TAG)), decipher.final()]);
  } catch {
    return { failure: 'tampered' };
  }
  // Only a salt whose token authenticated is remembered: made-up salts never fill the memory.
  if (!known) rememberOpeningKey(secret, Buffer.from(salt), derived);

  const times: SessionTimes = Object.freeze({
    createdAt: plain.readDoubleBE(0),
    refreshedAt: plain.readDoubleBE(8),
    expiresAt: plain.readDoubleBE(16),
  });
  if (!timesInOrder(times)) return { failure: 'malformed' };
  return Object.freeze({
    id: plain.subarray(TIMES, PLAIN_HEAD).toString('base64url'),
    times,
    payload: plain.subarray(PLAIN_HEAD).toString('utf8'),
    keyIndex,
    stale: keyIndex > 0 || legacy,
  });
}
