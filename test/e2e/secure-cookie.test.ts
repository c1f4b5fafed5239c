import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { CookieSessionStore, InMemorySessionStore } from '../../src/index.js';
import { appOn, PLATFORMS, SECRET, sessionSetCookies } from '../fixtures/app.js';

// `secure: 'auto'` (the default) marks the cookie Secure when the request came over HTTPS, as the
// platform tells it: behind a proxy it trusts, from X-Forwarded-Proto.
describe.each(PLATFORMS)("cookie.secure 'auto' on %s", (platform) => {
  const createApp = appOn(platform);

  describe.each([
    ['in-memory', () => new InMemorySessionStore()],
    ['cookie', () => new CookieSessionStore()],
  ])('with the %s store', (_name, makeStore) => {
    async function firstCookie(trustProxy: boolean, proto: string | undefined): Promise<string> {
      const app = await createApp({ secret: SECRET, store: makeStore() }, { trustProxy });
      try {
        let req = request(app.getHttpServer()).post('/write').send({ value: 1 });
        if (proto) req = req.set('X-Forwarded-Proto', proto);
        const [cookie] = sessionSetCookies(await req.expect(201));
        return cookie!;
      } finally {
        await app.close();
      }
    }

    it('over plain HTTP: no Secure attribute', async () => {
      expect(await firstCookie(false, undefined)).not.toMatch(/; Secure/i);
    });

    it('behind a trusted proxy that says https: Secure', async () => {
      expect(await firstCookie(true, 'https')).toMatch(/; Secure/i);
    });

    it('behind a trusted proxy that says http: no Secure', async () => {
      expect(await firstCookie(true, 'http')).not.toMatch(/; Secure/i);
    });

    it('X-Forwarded-Proto from a client the app does not trust is ignored', async () => {
      expect(await firstCookie(false, 'https')).not.toMatch(/; Secure/i);
    });
  });
});
