import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { AppModule } from '../../sample/app.module.js';
import { PLATFORMS } from '../fixtures/app.js';

/**
 * The way applications start: NestFactory.create, not the testing module. Nest checks some things only
 * on this path (global enhancers, for one), so the sample app starts here on both platforms.
 */
describe.each(PLATFORMS)('NestFactory.create on %s', (platform) => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('starts the sample app and serves a session over a real socket', async () => {
    app =
      platform === 'fastify'
        ? await NestFactory.create(AppModule, new FastifyAdapter(), { logger: false, abortOnError: false })
        : await NestFactory.create(AppModule, { logger: false, abortOnError: false });
    await app.listen(0, '127.0.0.1');
    const base = await app.getUrl();
    const first = await fetch(`${base}/`);
    expect(await first.json()).toEqual({ visits: 1, user: null });
    const cookie = first.headers.getSetCookie()[0]!.split(';')[0]!;
    const second = await fetch(`${base}/`, { headers: { cookie } });
    expect(await second.json()).toEqual({ visits: 2, user: null });
  });
});
