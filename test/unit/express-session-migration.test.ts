import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SessionsConfigError, type ExpressSessionStoreLike } from '../../src/index.js';
import { liveData, unsign } from '../../src/migration/express-session.js';
import { resolveSessionsConfig } from '../../src/sessions.options.js';

// express-session signs its cookie with cookie-signature: the migration must accept exactly what it signs.
const signature = createRequire(import.meta.url)('cookie-signature') as {
  sign(value: string, secret: string): string;
  unsign(value: string, secret: string): string | false;
};
const signed = (id: string, secret: string) => `s:${signature.sign(id, secret)}`;

const ID = 'Ez3m2bKq_6G5o0Xn4yJ8pW1vT7uR9sLc';
const SECRETS = ['keyboard cat', 'an older secret'];

describe("unsign: express-session's signed cookie", () => {
  it('accepts what cookie-signature signs, under any secret of the list', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 64 }), fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (id, a, b) => {
        expect(unsign(signed(id, a), [a, b])).toBe(id);
        expect(unsign(signed(id, b), [a, b])).toBe(id);
      }),
    );
  });

  it('refuses a cookie signed with a secret not in the list', () => {
    expect(unsign(signed(ID, 'another secret'), SECRETS)).toBeUndefined();
  });

  it('refuses every one-character change, truncation and extension', () => {
    const cookie = signed(ID, SECRETS[0]!);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=._-:s';
    for (let i = 0; i < cookie.length; i++) {
      for (const c of alphabet) {
        if (c === cookie[i]) continue;
        const changed = cookie.slice(0, i) + c + cookie.slice(i + 1);
        // cookie-signature agrees: a change is never the same signed value (its unsign is the reference).
        expect(unsign(changed, SECRETS), changed).toBeUndefined();
      }
      expect(unsign(cookie.slice(0, i), SECRETS)).toBeUndefined();
    }
    for (const extra of ['=', '==', 'A', '.', ' ']) expect(unsign(cookie + extra, SECRETS)).toBeUndefined();
  });

  it('refuses the unsigned forms and the other base64 alphabet', () => {
    const cookie = signed(ID, SECRETS[0]!);
    expect(unsign(cookie.slice(2), SECRETS)).toBeUndefined(); // no "s:"
    expect(unsign(`s:${ID}`, SECRETS)).toBeUndefined();
    expect(unsign(`s:.${cookie.split('.').pop()!}`, SECRETS)).toBeUndefined();
    const urlSafe = cookie.replace(/\+/g, '-').replace(/\//g, '_');
    if (urlSafe !== cookie) expect(unsign(urlSafe, SECRETS)).toBeUndefined();
  });

  it('never throws on random input, and accepts none of it', () => {
    fc.assert(
      fc.property(fc.string(), (value) => {
        expect(unsign(value, SECRETS)).toBeUndefined();
        expect(unsign(`s:${value}`, SECRETS)).toBeUndefined();
      }),
    );
  });
});

describe('liveData: an express-session record', () => {
  const now = Date.parse('2026-12-02T12:00:00Z');
  it("drops the record's cookie and keeps the rest", () => {
    expect(liveData({ cookie: { expires: '2026-12-02T13:00:00.000Z' }, passport: { user: 7 }, cart: [1] }, now)).toEqual({
      passport: { user: 7 },
      cart: [1],
    });
    expect(liveData({ cookie: { expires: null, originalMaxAge: null }, a: 1 }, now)).toEqual({ a: 1 });
    expect(liveData({ a: 1 }, now)).toEqual({ a: 1 });
  });

  it('refuses a record whose cookie has expired, or whose expiry cannot be read', () => {
    expect(liveData({ cookie: { expires: '2026-12-02T11:59:59.999Z' }, a: 1 }, now)).toBeUndefined();
    expect(liveData({ cookie: { expires: new Date(now) }, a: 1 }, now)).toBeUndefined();
    expect(liveData({ cookie: { expires: 'soon' }, a: 1 }, now)).toBeUndefined();
    expect(liveData({ cookie: { expires: 12 }, a: 1 }, now)).toBeUndefined();
  });

  it('drops the anti-forgery key', () => {
    expect(liveData({ 'nest-sessions:csrf': 'planted', a: 1 }, now)).toEqual({ a: 1 });
  });
});

describe('migrateFrom options', () => {
  const SECRET = 'options-test-secret-0123456789-abcdefXYZ';
  const store: ExpressSessionStoreLike = { get: (_sid, done) => done(null, null), destroy: (_sid, done) => done?.() };
  const error = (migrateFrom: unknown, more: object = {}): string => {
    try {
      resolveSessionsConfig({ secret: SECRET, migrateFrom, ...more } as never);
    } catch (err) {
      expect(err).toBeInstanceOf(SessionsConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a SessionsConfigError');
  };

  it("takes express-session's name, secret, store and cookie path and domain", () => {
    const config = resolveSessionsConfig({ secret: SECRET, migrateFrom: { secret: 'keyboard cat', store } });
    expect(config.migration?.name).toBe('connect.sid');
    expect(
      resolveSessionsConfig({
        secret: SECRET,
        migrateFrom: { name: 'sid', secret: SECRETS, store, cookie: { path: '/app', domain: 'example.com' } },
      }).migration?.name,
    ).toBe('sid');
  });

  it('says what is wrong', () => {
    expect(error('yes')).toContain('migrateFrom must be { secret, store, name, cookie, timeout }');
    expect(error({ secret: 'x', store, prefix: 'sess:' })).toContain('migrateFrom has no option "prefix"');
    expect(error({ store })).toContain("migrateFrom.secret must be express-session's secret");
    expect(error({ secret: ['a', ''], store })).toContain('migrateFrom.secret');
    expect(error({ secret: 'x' })).toContain("migrateFrom.store must be express-session's store");
    expect(error({ secret: 'x', store: { get() {} } })).toContain('migrateFrom.store');
    expect(error({ secret: 'x', store, name: 'bad name' })).toContain('migrateFrom.name "bad name" is not a valid cookie name');
    expect(error({ secret: 'x', store, name: 'session' })).toContain('must differ from the session cookie');
    expect(error({ secret: 'x', store, name: 'session.1' })).toContain('must differ from the session cookie');
    expect(error({ secret: 'x', store, cookie: { path: 'x; Domain=evil' } })).toContain('migrateFrom.cookie.path');
    expect(error({ secret: 'x', store, cookie: { domain: 'a;b' } })).toContain('migrateFrom.cookie.domain');
    expect(error({ secret: 'x', store, timeout: 0 })).toContain('migrateFrom.timeout');
    expect(error({ secret: 'x', store }, { transport: { header: 'x-session' } })).toContain('needs the cookie transport');
  });
});
