import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Keyring } from './keyring.js';
import { randomToken } from './random.js';

/** 32 random bytes: 256 bits, 43 characters of base64url. */
export const ID_BYTES = 32;
const B64_LEN = 43; // base64url length of 32 bytes, without padding
const TOKEN_LENGTH = B64_LEN * 2 + 1;
const B64URL_43 = /^[A-Za-z0-9_-]{43}$/;

/** A fresh random session ID (256 bits, URL-safe). */
export function newSessionId(): string {
  return randomToken(ID_BYTES);
}

function mac(key: Buffer, id: string): Buffer {
  return createHmac('sha256', key).update(id).digest();
}

/**
 * `<id>.<HMAC-SHA256(id)>`, signed with the newest key. Every save of a server-side session sends its
 * cookie again (its Max-Age moves on), so the token of an ID this process has signed or verified under
 * the newest key is remembered, not computed again; a token signed here is remembered as verified too.
 */
export function signId(id: string, keyring: Keyring): string {
  const memo = memoOf(keyring);
  const known = memo.signed.get(id);
  if (known !== undefined) return known;
  const token = `${id}.${mac(keyring.current.signKey, id).toString('base64url')}`;
  remember(memo, token, { id, keyIndex: 0 });
  return token;
}

export interface VerifiedId {
  readonly id: string;
  /** Position of the key that verified it: 0 is the newest, anything else wants re-signing. */
  readonly keyIndex: number;
}

/** How many verified tokens each keyring remembers. */
export const VERIFIED_CACHE_SIZE = 10_000;

/**
 * Tokens this process has verified or signed, per keyring: a returning client's ID is not verified
 * again on every request (an HMAC is a large share of a read's own cost), nor signed again on every
 * save. Only tokens that passed the check, or that were signed here, go in, keyed by their exact text,
 * so a forged or altered token is never found here and always takes the full check; finding one tells
 * nothing to whoever does not already hold it. The store, not this memory, decides whether the session
 * still exists. Full, it forgets the oldest entries first.
 */
interface Memo {
  /** Token → what verified it. */
  readonly verified: Map<string, VerifiedId>;
  /** ID → its token under the newest key. */
  readonly signed: Map<string, string>;
}

const memoByKeyring = new WeakMap<Keyring, Memo>();

function memoOf(keyring: Keyring): Memo {
  let memo = memoByKeyring.get(keyring);
  if (!memo) memoByKeyring.set(keyring, (memo = { verified: new Map(), signed: new Map() }));
  return memo;
}

function remember(memo: Memo, token: string, verified: VerifiedId): void {
  if (memo.verified.size >= VERIFIED_CACHE_SIZE) memo.verified.delete(memo.verified.keys().next().value!);
  memo.verified.set(token, verified);
  if (verified.keyIndex !== 0) return;
  if (memo.signed.size >= VERIFIED_CACHE_SIZE) memo.signed.delete(memo.signed.keys().next().value!);
  memo.signed.set(verified.id, token);
}

/**
 * Checks a signed ID from the client. Anything that is not exactly `<43 chars>.<43 chars>` of base64url
 * is refused before any HMAC is computed; signatures are compared in constant time.
 */
export function verifySignedId(token: string, keyring: Keyring): VerifiedId | undefined {
  const memo = memoOf(keyring);
  const known = memo.verified.get(token);
  if (known) return known;
  const result = checkSignedId(token, keyring);
  if (result) remember(memo, token, result);
  return result;
}

/** @internal How many tokens a keyring remembers (for tests). */
export function verifiedCount(keyring: Keyring): number {
  return memoByKeyring.get(keyring)?.verified.size ?? 0;
}

function checkSignedId(token: string, keyring: Keyring): VerifiedId | undefined {
  if (token.length !== TOKEN_LENGTH || token.charCodeAt(B64_LEN) !== 46 /* . */) return undefined;
  const id = token.slice(0, B64_LEN);
  const sig = token.slice(B64_LEN + 1);
  if (!B64URL_43.test(id) || !B64URL_43.test(sig)) return undefined;
  const given = Buffer.from(sig, 'base64url');
  // Re-encoding must give back the same text: base64url has several spellings of the last character.
  if (given.length !== 32 || given.toString('base64url') !== sig) return undefined;
  const keys = keyring.keys;
  for (let i = 0; i < keys.length; i++) {
    if (timingSafeEqual(mac(keys[i]!.signKey, id), given)) return { id, keyIndex: i };
  }
  return undefined;
}
