import type { INestApplication } from '@nestjs/common';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appOn, largestAccepted, PLATFORMS, SECRET, text } from '../fixtures/app.js';
import { hasChromium, launch } from './chromium.js';

describe.skipIf(!hasChromium).each(PLATFORMS)('in Chromium, on %s', (platform) => {
  let app: INestApplication;
  let browser: Browser;
  let origin: string;

  beforeAll(async () => {
    app = await appOn(platform)(SECRET);
    await app.listen(0, '127.0.0.1');
    origin = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('the largest session the default cookie store accepts keeps working, logout included', async () => {
    const { length: ok } = await largestAccepted(app.getHttpServer());
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${origin}/read`);
    const saved = await page.evaluate(async (value) => {
      const res = await fetch('/set/big', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ value }),
      });
      return res.status;
    }, text(ok));
    expect(saved).toBe(201);
    // A navigation, with everything a browser sends, and then a logout.
    const navigation = await page.goto(`${origin}/all`);
    expect(navigation?.status()).toBe(200);
    expect(((await navigation?.json()) as { big: string }).big).toHaveLength(ok);
    const cookies = await page.context().cookies();
    expect(cookies.map((c) => c.name).sort()).toEqual(['session', 'session.1']);
    const loggedOut = await page.evaluate(
      async () => (await fetch('/logout', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status,
    );
    expect(loggedOut).toBe(201);
    expect(await page.context().cookies()).toEqual([]);
  });
});
