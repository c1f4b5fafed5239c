import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CSRF_TOKEN_CHARS,
  csrfTokenMatches,
  derivedCsrfSecret,
  isCsrfSecret,
  maskCsrfToken,
  newCsrfSecret,
} from '../../src/crypto/csrf-token.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { crossSiteRefusal, tokenRefusal } from '../../src/csrf.js';
import { CSRF_KEY, TrackedSession } from '../../src/session.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const PLACES = { tokenHeader: 'x-csrf-token', tokenField: '_csrf' };

describe('anti-forgery tokens', () => {
  const secret = newCsrfSecret();

  it('are masked afresh: every token differs, and every one matches its secret', () => {
    const tokens = new Set(Array.from({ length: 200 }, () => maskCsrfToken(secret)));
    expect(tokens.size).toBe(200);
    for (const token of tokens) {
      expect(token).toHaveLength(CSRF_TOKEN_CHARS);
      expect(csrfTokenMatches(secret, token)).toBe(true);
    }
  });

  it("do not match another session's secret (a token carried over from another session)", () => {
    expect(csrfTokenMatches(newCsrfSecret(), maskCsrfToken(secret))).toBe(false);
  });

  it('refuse every change of one character (tampering)', () => {
    const token = maskCsrfToken(secret);
    for (let i = 0; i < token.length; i++) {
      for (const c of ALPHABET) {
        if (c === token[i]) continue;
        expect(csrfTokenMatches(secret, token.slice(0, i) + c + token.slice(i + 1))).toBe(false);
      }
    }
  });

  it('refuse truncation, extension, padding, the other base64 alphabet and whitespace', () => {
    const token = maskCsrfToken(secret);
    for (let n = 0; n < token.length; n++) expect(csrfTokenMatches(secret, token.slice(0, n))).toBe(false);
    for (const bad of [
      `${token}A`,
      `${token}=`,
      `${token}==`,
      ` ${token}`,
      `${token}\n`,
      token.replace(/-/g, '+').replace(/_/g, '/'),
      `${token},${token}`,
    ]) {
      if (bad === token) continue;
      expect(csrfTokenMatches(secret, bad)).toBe(false);
    }
  });

  it('refuse oversize input at once', () => {
    expect(csrfTokenMatches(secret, 'A'.repeat(1_000_000))).toBe(false);
    expect(csrfTokenMatches(secret, maskCsrfToken(secret).repeat(1000))).toBe(false);
  });

  it('never match a random string (fuzzed)', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 200 }), fc.stringMatching(new RegExp(`^[A-Za-z0-9_-]{${CSRF_TOKEN_CHARS}}$`))),
        (candidate) => {
          expect(csrfTokenMatches(secret, candidate)).toBe(false);
        },
      ),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 500) },
    );
  });

  it('secrets are 32 random bytes; anything else stored in their place is not one', () => {
    expect(isCsrfSecret(newCsrfSecret())).toBe(true);
    for (const bad of [undefined, null, 7, '', 'short', `${newCsrfSecret()}A`, newCsrfSecret().slice(1), { secret }])
      expect(isCsrfSecret(bad)).toBe(false);
  });
});

/** Both checks as the module applies them: the headers first, then (with requireToken) the token. */
function decide(
  method: string,
  site: string | undefined,
  origin: string | undefined,
  token: 'none' | 'valid' | 'wrong' | 'other session',
  requireToken: boolean,
) {
  const own = 'http://127.0.0.1:8080';
  const trusted = new Set(['https://app.example.com']);
  const secret = newCsrfSecret();
  const presented = {
    none: undefined,
    valid: maskCsrfToken(secret),
    wrong: 'x'.repeat(CSRF_TOKEN_CHARS),
    'other session': maskCsrfToken(newCsrfSecret()),
  }[token];
  const reason =
    crossSiteRefusal({ method, secFetchSite: site, origin, ownOrigin: own }, trusted) ??
    (requireToken ? tokenRefusal(method, presented, secret, PLACES) : undefined);
  return reason === undefined ? 'pass' : 'refuse';
}

describe('the decision with tokens (method × Sec-Fetch-Site × Origin × trusted origin × token)', () => {
  it.each([
    // method, Sec-Fetch-Site, Origin, token, requireToken, verdict
    ['GET', 'cross-site', 'https://evil.example', 'none', true, 'pass'],
    ['HEAD', undefined, undefined, 'wrong', true, 'pass'],
    ['OPTIONS', 'cross-site', undefined, 'none', true, 'pass'],
    ['POST', 'same-origin', 'http://127.0.0.1:8080', 'none', false, 'pass'],
    ['POST', 'same-origin', 'http://127.0.0.1:8080', 'none', true, 'refuse'],
    ['POST', 'same-origin', 'http://127.0.0.1:8080', 'valid', true, 'pass'],
    ['POST', 'same-origin', 'http://127.0.0.1:8080', 'wrong', true, 'refuse'],
    ['POST', 'same-origin', 'http://127.0.0.1:8080', 'other session', true, 'refuse'],
    ['POST', 'same-origin', 'http://127.0.0.1:8080', 'wrong', false, 'pass'],
    ['POST', 'cross-site', 'https://evil.example', 'valid', true, 'refuse'],
    ['POST', 'cross-site', 'https://evil.example', 'valid', false, 'refuse'],
    ['POST', 'same-site', 'http://127.0.0.1:8081', 'valid', true, 'refuse'],
    ['POST', 'cross-site', 'https://app.example.com', 'valid', true, 'pass'],
    ['POST', 'cross-site', 'https://app.example.com', 'none', true, 'refuse'],
    ['POST', 'cross-site', 'https://app.example.com', 'none', false, 'pass'],
    ['PUT', undefined, 'http://127.0.0.1:8080', 'valid', true, 'pass'],
    ['PUT', undefined, 'http://127.0.0.1:8080', 'none', true, 'refuse'],
    ['DELETE', undefined, 'https://evil.example', 'valid', true, 'refuse'],
    ['PATCH', undefined, undefined, 'none', false, 'pass'],
    ['PATCH', undefined, undefined, 'none', true, 'refuse'],
    ['PATCH', undefined, undefined, 'valid', true, 'pass'],
    ['POST', 'none', undefined, 'other session', true, 'refuse'],
  ] as const)('%s, Sec-Fetch-Site %s, Origin %s, token %s, requireToken %s: %s', (method, site, origin, token, requireToken, expected) => {
    expect(decide(method, site, origin, token, requireToken)).toBe(expected);
  });

  it('says what is missing or wrong', () => {
    const secret = newCsrfSecret();
    expect(tokenRefusal('POST', undefined, secret, PLACES)).toBe('no anti-forgery token in the x-csrf-token header or the _csrf field');
    expect(tokenRefusal('POST', '', null, PLACES)).toMatch(/no anti-forgery token/);
    expect(tokenRefusal('POST', maskCsrfToken(secret), null, PLACES)).toBeUndefined(); // not loaded yet: judged later
    expect(tokenRefusal('POST', maskCsrfToken(secret), undefined, PLACES)).toMatch(/came without a session/);
    expect(tokenRefusal('POST', maskCsrfToken(newCsrfSecret()), secret, PLACES)).toBe('the anti-forgery token does not match this session');
  });
});

describe("a session's anti-forgery secret", () => {
  it('is created by the first csrfToken(), kept apart from the data, and saved as a change', () => {
    const session = new TrackedSession<{ a: number }>({ a: 1 }, 'id');
    expect(session.isModified).toBe(false);
    const token = session.csrfToken();
    expect(session.isModified).toBe(true);
    expect(session.keys()).toEqual(['a']);
    expect(session.size).toBe(1);
    expect(session.toJSON()).toEqual({ a: 1 });
    expect(session.has(CSRF_KEY)).toBe(false);
    const secret = session._csrfSecret()!;
    expect(csrfTokenMatches(secret, token)).toBe(true);
    expect(session._pending().patch.set).toEqual({ [CSRF_KEY]: secret });
    expect(session._data()).toEqual({ a: 1, [CSRF_KEY]: secret });
    session._committed('id');
    expect(session.isModified).toBe(false);
    expect(csrfTokenMatches(secret, session.csrfToken())).toBe(true); // the same secret: no new change
    expect(session.isModified).toBe(false);
  });

  it('comes back from the stored data, and is not a key the handler can set or delete', () => {
    const secret = newCsrfSecret();
    const session = new TrackedSession({ a: 1, [CSRF_KEY]: secret }, 'id');
    expect(session.keys()).toEqual(['a']);
    expect(session._csrfSecret()).toBe(secret);
    expect(session.isModified).toBe(false);
    expect(() => session.set(CSRF_KEY as 'a', 2)).toThrow(/reserved for the anti-forgery secret/);
    expect(() => session.delete(CSRF_KEY)).toThrow(/reserved/);
    expect(() => session.update({ [CSRF_KEY]: 'x' } as never)).toThrow(/reserved/);
    expect(session.isModified).toBe(false);
  });

  it('a stored value that is not a secret is ignored, and the next csrfToken() replaces it', () => {
    const session = new TrackedSession({ [CSRF_KEY]: 'forged-by-hand' }, 'id');
    expect(session._csrfSecret()).toBeUndefined();
    expect(session.isModified).toBe(false);
    session.csrfToken();
    expect(session._pending().patch.set[CSRF_KEY]).toBe(session._csrfSecret());
  });

  it('is replaced on regenerate() and destroy(), so tokens issued before are refused after', () => {
    for (const end of ['regenerate', 'destroy'] as const) {
      const old = newCsrfSecret();
      const session = new TrackedSession({ a: 1, [CSRF_KEY]: old }, 'id');
      session[end]();
      expect(session._csrfSecret()).toBeUndefined();
      if (end === 'regenerate') expect(session._pending().patch.unset).toContain(CSRF_KEY);
      const token = session.csrfToken();
      expect(csrfTokenMatches(old, token)).toBe(false);
      expect(session._csrfSecret()).not.toBe(old);
    }
  });

  it('a csrfToken() after destroy() starts a new session, as a set() would', () => {
    const session = new TrackedSession({ a: 1 }, 'id');
    session.destroy();
    session.csrfToken();
    const pending = session._pending();
    expect(pending).toMatchObject({ destroy: false, restart: true, regenerate: true });
    expect(Object.keys(session._data())).toEqual([CSRF_KEY]);
  });

  it('survives clear(), whose patch replaces the stored data', () => {
    const secret = newCsrfSecret();
    const session = new TrackedSession({ a: 1, [CSRF_KEY]: secret }, 'id');
    session.clear();
    expect(session._pending().patch).toEqual({ set: { [CSRF_KEY]: secret }, unset: [], replace: true });
  });

  it('is rolled back with the rest when the handler fails', () => {
    const secret = newCsrfSecret();
    const fresh = new TrackedSession({}, 'id');
    fresh.csrfToken();
    fresh._rollback();
    expect(fresh._csrfSecret()).toBeUndefined();
    expect(fresh.isModified).toBe(false);
    const kept = new TrackedSession({ [CSRF_KEY]: secret }, 'id');
    kept.regenerate();
    kept._rollback();
    expect(kept._csrfSecret()).toBe(secret);
  });
});

describe("a stored session's secret, derived from its ID", () => {
  const keyring = new Keyring(['csrf-derivation-test-secret-0123456789-abc', 'an-older-secret-still-in-the-list-9876543210']);
  const derive = (id: string) => derivedCsrfSecret(keyring.current.csrfKey, id);

  it('is the same for the same ID and key, and differs by ID and by key', () => {
    expect(derive('a')).toBe(derive('a'));
    expect(isCsrfSecret(derive('a'))).toBe(true);
    expect(derive('a')).not.toBe(derive('b'));
    expect(derivedCsrfSecret(keyring.keys[1]!.csrfKey, 'a')).not.toBe(derive('a'));
  });

  it('gives a stored session tokens without a change; a regenerate or a new session stores a random one', () => {
    const stored = new TrackedSession({ a: 1 }, 'id-1', { csrfSecretOf: derive });
    expect(csrfTokenMatches(derive('id-1'), stored.csrfToken())).toBe(true);
    expect(stored.isModified).toBe(false);
    expect(stored._csrfSecret()).toBeUndefined();
    stored.regenerate();
    const token = stored.csrfToken();
    expect(csrfTokenMatches(derive('id-1'), token)).toBe(false);
    expect(csrfTokenMatches(stored._csrfSecret()!, token)).toBe(true);
    const fresh = new TrackedSession({}, undefined, { csrfSecretOf: derive });
    fresh.csrfToken();
    expect(fresh.isModified).toBe(true);
  });

  it('a token derived under an older secret of the keyring still matches the list of candidates', () => {
    const candidates = keyring.keys.map((key) => derivedCsrfSecret(key.csrfKey, 'id-1'));
    expect(csrfTokenMatches(candidates, maskCsrfToken(derivedCsrfSecret(keyring.keys[1]!.csrfKey, 'id-1')))).toBe(true);
    expect(csrfTokenMatches(candidates, maskCsrfToken(derivedCsrfSecret(keyring.keys[1]!.csrfKey, 'id-2')))).toBe(false);
  });
});
