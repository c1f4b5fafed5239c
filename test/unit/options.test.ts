import { Logger } from '@nestjs/common';
import { describe, expect, it, vi } from 'vitest';
import { InMemorySessionStore, SessionsConfigError } from '../../src/index.js';
import { resolveSessionsConfig } from '../../src/sessions.options.js';

const SECRET = 'options-test-secret-0123456789-abcdefXYZ';

function error(input: unknown): string {
  try {
    resolveSessionsConfig(input as never);
  } catch (err) {
    expect(err).toBeInstanceOf(SessionsConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a SessionsConfigError');
}

describe('options', () => {
  it('applies safe defaults', () => {
    const config = resolveSessionsConfig(SECRET);
    expect(config.cookie).toEqual({ name: 'session', path: '/', domain: undefined, sameSite: 'lax', secure: 'auto', httpOnly: true });
    expect(config.maxAgeMs).toBe(86_400_000);
    expect(config.ttlMs).toBe(86_400_000);
    expect(config.rolling).toBe(false);
    expect(config.keyring.keys).toHaveLength(1);
  });

  it('takes a list of secrets, newest first', () => {
    const config = resolveSessionsConfig([SECRET, 'an-older-secret-9876543210-ZYXWVUTSRQ']);
    expect(config.keyring.keys).toHaveLength(2);
  });

  it('a missing secret says what to pass', () => {
    expect(error(undefined)).toMatch(/SessionsModule.forRoot\(\): needs a secret.*got undefined/);
    expect(error({})).toMatch(/needs a secret/);
    expect(error([])).toMatch(/needs a secret/);
  });

  it.each([
    ['one character repeated', 'a'.repeat(32)],
    ['a short word repeated', 'abcd'.repeat(8)],
    ['an eight-character block repeated', 'Pa55w0rd'.repeat(4)],
    ['two characters', 'ab'.repeat(20) + 'ba'],
    ['a repeated block with a character more', 'Pa55w0rd'.repeat(4) + '!'],
    ['a repeated block with a few characters more', 'correcthorse'.repeat(3) + '2024'],
  ])('a guessable newest secret (%s) is refused, saying how to make one; an older one is warned about', (_name, secret) => {
    expect(error(secret)).toMatch(
      /the secret looks guessable: its characters carry about \d+ bits \(at least 80 are needed.*randomBytes\(32\)/,
    );
    expect(error([secret, SECRET])).toMatch(/secret\[0\] looks guessable/);
    const warn = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      expect(resolveSessionsConfig([SECRET, secret]).keyring.keys).toHaveLength(2);
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/secret\[1\] looks guessable.*remove it once they have expired/));
    } finally {
      warn.mockRestore();
    }
  });

  it('generated secrets pass: 32 random bytes in base64url, 16 in hex, and a long passphrase', async () => {
    const { randomBytes } = await import('node:crypto');
    for (let i = 0; i < 200; i++) {
      expect(() => resolveSessionsConfig(randomBytes(32).toString('base64url'))).not.toThrow();
      expect(() => resolveSessionsConfig(randomBytes(16).toString('hex'))).not.toThrow();
    }
    expect(() => resolveSessionsConfig('correct horse battery staple gazelle violin')).not.toThrow();
  });

  it('a short secret names the length it has and the one it needs', () => {
    expect(error('short')).toBe(
      'SessionsModule.forRoot(): needs a secret of at least 32 characters; the secret has 5. ' +
        `Generate one with: node -e "console.log(require('crypto').randomBytes(32).toString('base64url'))"`,
    );
    expect(error([SECRET, 'x'])).toMatch(/secret\[1\] has 1/);
    expect(error([SECRET, 42])).toMatch(/secret\[1\] must be a string/);
  });

  it.each([0, -10, Number.NaN, Infinity, '60'])('maxAge %s is refused', (maxAge) => {
    expect(error({ secret: SECRET, maxAge })).toMatch(/maxAge must be a number of seconds greater than 0/);
  });

  it('onEvent must be a function', () => {
    expect(error({ secret: SECRET, onEvent: 'log' })).toContain('onEvent must be a function (event) => void; got a string of 3 characters');
    expect(resolveSessionsConfig({ secret: SECRET, onEvent: () => undefined }).onEvent).toBeTypeOf('function');
  });

  it('userSessionInfo takes userAgent and ip, both off by default', () => {
    expect(resolveSessionsConfig({ secret: SECRET }).userSessionInfo).toBeUndefined();
    expect(resolveSessionsConfig({ secret: SECRET, userSessionInfo: { ip: true } }).userSessionInfo).toEqual({
      userAgent: false,
      ip: true,
    });
    expect(resolveSessionsConfig({ secret: SECRET, userSessionInfo: {} }).userSessionInfo).toBeUndefined();
    expect(error({ secret: SECRET, userSessionInfo: true })).toContain('userSessionInfo must be { userAgent?: boolean, ip?: boolean }');
    expect(error({ secret: SECRET, userSessionInfo: { agent: true } })).toContain('userSessionInfo has no option "agent"');
    expect(error({ secret: SECRET, userSessionInfo: { ip: 'yes' } })).toContain('userSessionInfo.ip must be true or false');
  });

  it('shutdownTimeout: seconds from 0 to 3600, default 10', () => {
    expect(resolveSessionsConfig({ secret: SECRET }).shutdownTimeoutMs).toBe(10_000);
    expect(resolveSessionsConfig({ secret: SECRET, shutdownTimeout: 0 }).shutdownTimeoutMs).toBe(0);
    expect(resolveSessionsConfig({ secret: SECRET, shutdownTimeout: 2.5 }).shutdownTimeoutMs).toBe(2500);
    for (const bad of [-1, NaN, Infinity, 3601, '5']) {
      expect(error({ secret: SECRET, shutdownTimeout: bad })).toContain('shutdownTimeout must be a number of seconds from 0 to 3600');
    }
  });

  it('idleTimeout and absoluteTimeout must be positive', () => {
    expect(error({ secret: SECRET, idleTimeout: 0 })).toMatch(/idleTimeout/);
    expect(error({ secret: SECRET, absoluteTimeout: -1 })).toMatch(/absoluteTimeout/);
  });

  it('the shorter of maxAge and idleTimeout is how long a save keeps a session', () => {
    expect(resolveSessionsConfig({ secret: SECRET, maxAge: 3600, idleTimeout: 600 }).ttlMs).toBe(600_000);
    expect(resolveSessionsConfig({ secret: SECRET, maxAge: 3600, idleTimeout: 600 }).touchAfterMs).toBe(60_000);
    expect(resolveSessionsConfig({ secret: SECRET, maxAge: 100 }).touchAfterMs).toBe(10_000);
  });

  it('SameSite=None without Secure is refused', () => {
    expect(error({ secret: SECRET, cookie: { sameSite: 'none' } })).toMatch(/sameSite 'none' needs cookie.secure: true/);
    expect(() => resolveSessionsConfig({ secret: SECRET, cookie: { sameSite: 'none', secure: true } })).not.toThrow();
  });

  it.each(['a b', 'a;b', 'a,b', 'a=b', 'a\r\nb', '', 'ünï'])('cookie name %j is refused', (name) => {
    expect(error({ secret: SECRET, cookie: { name } })).toMatch(/is not a valid cookie name/);
  });

  it('paths and domains that could inject attributes are refused', () => {
    expect(error({ secret: SECRET, cookie: { path: '/a;Domain=evil' } })).toMatch(/cookie.path/);
    expect(error({ secret: SECRET, cookie: { path: 'relative' } })).toMatch(/cookie.path/);
    expect(error({ secret: SECRET, cookie: { path: '/a=b' } })).toMatch(/cookie.path/);
    expect(error({ secret: SECRET, cookie: { domain: 'a.com; Secure' } })).toMatch(/cookie.domain/);
  });

  it('cookie prefixes get what browsers require of them', () => {
    expect(error({ secret: SECRET, cookie: { name: '__Host-s' } })).toMatch(/__Host-/);
    expect(error({ secret: SECRET, cookie: { name: '__Host-s', secure: true, domain: 'a.com' } })).toMatch(/__Host-/);
    expect(error({ secret: SECRET, cookie: { name: '__Secure-s' } })).toMatch(/__Secure-/);
    expect(() => resolveSessionsConfig({ secret: SECRET, cookie: { name: '__Host-s', secure: true } })).not.toThrow();
    // Browsers match the prefixes without regard to case.
    expect(error({ secret: SECRET, cookie: { name: '__host-s', secure: true, domain: 'a.com' } })).toMatch(/__Host-/);
    expect(error({ secret: SECRET, cookie: { name: '__SECURE-s' } })).toMatch(/__Secure-/);
  });

  it('a store that is not a store is refused', () => {
    expect(error({ secret: SECRET, store: {} })).toMatch(/store must be a session store/);
    expect(() => resolveSessionsConfig({ secret: SECRET, store: new InMemorySessionStore() })).not.toThrow();
  });

  it('odd values for the rest are refused', () => {
    expect(error({ secret: SECRET, cookie: { sameSite: 'Lax' } })).toMatch(/sameSite/);
    expect(error({ secret: SECRET, cookie: { secure: 'yes' } })).toMatch(/cookie.secure/);
    expect(error({ secret: SECRET, rolling: 'yes' })).toMatch(/rolling/);
    expect(error({ secret: SECRET, touchAfter: -1 })).toMatch(/touchAfter/);
    expect(error({ secret: SECRET, cookie: 'session' })).toMatch(/cookie must be an object/);
  });

  it('a touchAfter as long as the lifetime is refused: the expiry would never move', () => {
    expect(error({ secret: SECRET, maxAge: 900, touchAfter: 3600 })).toMatch(
      /touchAfter \(3600 s\) must be shorter than the session's lifetime \(900 s/,
    );
    expect(error({ secret: SECRET, maxAge: 3600, idleTimeout: 600, touchAfter: 600 })).toMatch(/lifetime \(600 s/);
    expect(resolveSessionsConfig({ secret: SECRET, maxAge: 900, touchAfter: 899 }).touchAfterMs).toBe(899_000);
  });
});
