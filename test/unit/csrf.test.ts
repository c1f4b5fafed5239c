import { describe, expect, it } from 'vitest';
import { crossSiteRefusal, normalizeOrigin } from '../../src/csrf.js';
import { resolveSessionsConfig } from '../../src/sessions.options.js';
import { SessionsConfigError } from '../../src/index.js';

const OWN = 'http://127.0.0.1:8080';
const TRUSTED = new Set(['https://app.example.com']);
const verdict = (method: string, secFetchSite?: string, origin?: string) =>
  crossSiteRefusal({ method, secFetchSite, origin, ownOrigin: OWN }, TRUSTED) === undefined ? 'pass' : 'refuse';

describe('the cross-site decision', () => {
  it.each([
    // method, Sec-Fetch-Site, Origin, verdict
    ['GET', 'cross-site', 'https://evil.example', 'pass'],
    ['HEAD', 'cross-site', undefined, 'pass'],
    ['OPTIONS', 'cross-site', 'https://evil.example', 'pass'],
    ['POST', 'same-origin', OWN, 'pass'],
    ['POST', 'none', undefined, 'pass'],
    ['POST', 'same-site', 'http://127.0.0.1:8081', 'refuse'],
    ['POST', 'cross-site', 'https://evil.example', 'refuse'],
    ['POST', 'cross-site', undefined, 'refuse'],
    ['POST', 'cross-site', 'https://app.example.com', 'pass'],
    ['PUT', 'same-site', 'https://APP.example.com', 'pass'],
    ['DELETE', 'cross-site', 'https://app.example.com.evil.example', 'refuse'],
    ['POST', undefined, OWN, 'pass'],
    ['POST', undefined, 'http://127.0.0.1:8081', 'refuse'],
    ['PATCH', undefined, 'null', 'refuse'],
    ['POST', undefined, 'https://app.example.com', 'pass'],
    ['POST', undefined, undefined, 'pass'],
    ['post', 'CROSS-SITE', 'https://evil.example', 'refuse'],
    ['POST', 'something-new', 'https://evil.example', 'refuse'],
    ['POST', 'something-new', OWN, 'pass'],
  ])('%s with Sec-Fetch-Site %s and Origin %s: %s', (method, site, origin, expected) => {
    expect(verdict(method, site, origin)).toBe(expected);
  });

  it('says which header and which origin', () => {
    expect(crossSiteRefusal({ method: 'POST', secFetchSite: 'cross-site', origin: 'https://evil.example', ownOrigin: OWN }, TRUSTED)).toBe(
      'Sec-Fetch-Site is cross-site and Origin https://evil.example is not a trusted origin',
    );
    expect(crossSiteRefusal({ method: 'POST', secFetchSite: undefined, origin: 'https://evil.example', ownOrigin: OWN }, TRUSTED)).toBe(
      `Origin https://evil.example is not this app's origin (${OWN}) nor a trusted one`,
    );
  });
});

describe('the csrf option', () => {
  it('is on by default for the cookie transport, off for the header transport, off with false', () => {
    const secret = 'csrf-option-test-secret-0123456789-abcdef';
    expect(resolveSessionsConfig(secret).csrf?.trustedOrigins.size).toBe(0);
    expect(resolveSessionsConfig({ secret, transport: { header: 'x-session-id' } }).csrf).toBeUndefined();
    expect(resolveSessionsConfig({ secret, csrf: false }).csrf).toBeUndefined();
    expect([...resolveSessionsConfig({ secret, csrf: { trustedOrigins: ['https://App.example.com/'] } }).csrf!.trustedOrigins]).toEqual([
      'https://app.example.com',
    ]);
  });

  it.each(['app.example.com', 'https://app.example.com/path', 'ftp://app.example.com', 'https://user@app.example.com', 7])(
    'a trusted origin that is not one (%s) fails at startup',
    (value) => {
      const secret = 'csrf-option-test-secret-0123456789-abcdef';
      expect(() => resolveSessionsConfig({ secret, csrf: { trustedOrigins: [value as string] } })).toThrow(SessionsConfigError);
      expect(() => resolveSessionsConfig({ secret, csrf: { trustedOrigins: [value as string] } })).toThrow(/is not an origin/);
    },
  );

  it('takes requireToken, tokenHeader and tokenField, with defaults', () => {
    const secret = 'csrf-option-test-secret-0123456789-abcdef';
    expect(resolveSessionsConfig(secret).csrf).toMatchObject({ requireToken: false, tokenHeader: 'x-csrf-token', tokenField: '_csrf' });
    expect(
      resolveSessionsConfig({ secret, csrf: { requireToken: true, tokenHeader: 'X-XSRF-TOKEN', tokenField: 'authenticity_token' } }).csrf,
    ).toMatchObject({
      requireToken: true,
      tokenHeader: 'x-xsrf-token',
      tokenField: 'authenticity_token',
    });
  });

  it.each([
    [{ requireToken: 'yes' }, /csrf.requireToken must be true or false/],
    [{ tokenHeader: 'x csrf' }, /csrf.tokenHeader "x csrf" is not a valid header name/],
    [{ tokenHeader: 'Cookie' }, /csrf.tokenHeader cannot be "cookie"/],
    [{ tokenField: '' }, /csrf.tokenField "" must be a form field name/],
    [{ tokenField: '__proto__' }, /csrf.tokenField "__proto__"/],
    [{ trustedOrigin: ['https://app.example.com'] }, /csrf has no option "trustedOrigin"/],
    ['on', /csrf must be false or/],
  ])('a bad csrf option (%j) fails at startup, saying what is wrong', (csrf, message) => {
    const secret = 'csrf-option-test-secret-0123456789-abcdef';
    expect(() => resolveSessionsConfig({ secret, csrf: csrf as never })).toThrow(message);
  });

  it('requireToken with the header transport fails at startup: there is nothing to forge', () => {
    const secret = 'csrf-option-test-secret-0123456789-abcdef';
    expect(() => resolveSessionsConfig({ secret, transport: { header: 'x-session-id' }, csrf: { requireToken: true } })).toThrow(
      /csrf.requireToken does not apply to the header transport/,
    );
  });

  it('normalizes origins to scheme, host and port', () => {
    expect(normalizeOrigin('HTTPS://Example.COM:443')).toBe('https://example.com');
    expect(normalizeOrigin('http://127.0.0.1:8081')).toBe('http://127.0.0.1:8081');
  });
});
