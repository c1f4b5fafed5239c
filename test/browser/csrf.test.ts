import http from 'node:http';
import type { INestApplication } from '@nestjs/common';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appOn, PLATFORMS, SECRET } from '../fixtures/app.js';
import { hasChromium, launch } from './chromium.js';

/** Another origin of the same site: the same host on another port, serving the attacker's page. */
async function attackerSite(target: string): Promise<{ origin: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    if (req.url === '/form') {
      res.end(`<!doctype html><form id="f" method="post" action="${target}/pwn" enctype="text/plain"><input name="a" value="b"></form>`);
    } else {
      res.end(
        `<!doctype html><script>fetch('${target}/pwn', { method: 'POST', credentials: 'include', mode: 'no-cors' }).then(() => { document.title = 'sent' }, () => { document.title = 'failed' })</script>`,
      );
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { origin, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Opens the attacker's page and submits its form (as its own script would, in its own origin). */
async function submitAttackerForm(page: Page, origin: string): Promise<void> {
  await page.goto(`${origin}/form`);
  await Promise.all([page.waitForURL(/\/pwn$/), page.evaluate("document.getElementById('f').submit()")]);
}

describe.skipIf(!hasChromium).each(PLATFORMS)('cross-site requests in Chromium, on %s', (platform) => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launch();
  });
  afterAll(() => browser?.close());

  /** An app at one origin, a logged-in victim's page on it, and the attacker's site on another port. */
  async function scene(csrf: boolean | 'requireToken') {
    const app: INestApplication = await appOn(platform)({
      secret: SECRET,
      ...(csrf === 'requireToken' ? { csrf: { requireToken: true } } : csrf ? {} : { csrf: false }),
    });
    await app.listen(0, '127.0.0.1');
    const origin = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
    const attacker = await attackerSite(origin);
    const context = await browser.newContext();
    const page = await context.newPage();
    // A bound against a page that never loads, below the test's own timeout; not a speed test.
    page.setDefaultTimeout(15_000);
    // The victim's session is started by a page with a token, which a later write must carry under requireToken.
    await page.goto(`${origin}/token-page`);
    const pageToken = async () => (await page.getAttribute('meta[name="csrf-token"]', 'content'))!;
    const logIn = await page.evaluate(
      async (token) =>
        (
          await fetch('/write', {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-csrf-token': token },
            body: '{"value":"victim"}',
          })
        ).status,
      await pageToken(),
    );
    expect(logIn).toBe(201);
    const session = async (p: Page) => (await (await p.goto(`${origin}/all`))!.json()) as Record<string, unknown>;
    return {
      origin,
      attacker,
      page,
      pageToken,
      session,
      close: async () => {
        await context.close();
        await attacker.close();
        await app.close();
      },
    };
  }

  it('with the default protection, a form another origin submits and its credentialed fetch are refused', async () => {
    const { attacker, page, session, close } = await scene(true);
    try {
      await submitAttackerForm(page, attacker.origin);
      expect(await page.evaluate('document.body.innerText')).toMatch(/Cross-site request refused: Sec-Fetch-Site is same-site/);
      await page.goto(`${attacker.origin}/fetch`);
      await page.waitForFunction("document.title === 'sent' || document.title === 'failed'");
      expect(await page.title()).toBe('sent'); // the request went out (its answer is opaque to the page)
      expect(await session(page)).toEqual({ value: 'victim' });
    } finally {
      await close();
    }
  });

  it("the app's own form and same-origin fetch go through", async () => {
    const { origin, page, session, close } = await scene(true);
    try {
      await page.goto(`${origin}/page`);
      await Promise.all([page.waitForURL(/\/pwn$/), page.evaluate("document.getElementById('f').submit()")]);
      expect(await session(page)).toEqual({ value: 'victim', pwned: true });
    } finally {
      await close();
    }
  });

  it('without the protection (csrf: false), the same form from another origin changes the session', async () => {
    const { attacker, page, session, close } = await scene(false);
    try {
      await submitAttackerForm(page, attacker.origin);
      expect(await session(page)).toEqual({ value: 'victim', pwned: true });
    } finally {
      await close();
    }
  });

  it('with requireToken, the own form with its token and a fetch with the header go through; without the token, a 403', async () => {
    const { origin, attacker, page, pageToken, session, close } = await scene('requireToken');
    try {
      await submitAttackerForm(page, attacker.origin);
      expect(await page.evaluate('document.body.innerText')).toMatch(/Cross-site request refused/);
      await page.goto(`${origin}/token-page`);
      await Promise.all([page.waitForURL(/\/pwn$/), page.evaluate("document.getElementById('t').submit()")]);
      expect(await page.evaluate('document.body.innerText')).toMatch(/"ok":true/);
      expect(await session(page)).toEqual({ value: 'victim', pwned: true });
      await page.goto(`${origin}/token-page`);
      const statuses = await page.evaluate(
        async (token) => {
          const send = (headers: Record<string, string>, value: string) =>
            fetch('/write', {
              method: 'POST',
              headers: { 'content-type': 'application/json', ...headers },
              body: JSON.stringify({ value }),
            }).then((r) => r.status);
          return [await send({}, 'no token'), await send({ 'x-csrf-token': token }, 'fetched')];
        },
        await pageToken(),
      );
      expect(statuses).toEqual([403, 201]);
      expect(await session(page)).toEqual({ value: 'fetched', pwned: true });
    } finally {
      await close();
    }
  });
});
