import type { INestApplication } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppModule } from '../../sample/app.module.js';
import { PLATFORMS } from '../fixtures/app.js';

describe.each(PLATFORMS)('the sample app on %s', (platform) => {
  let app: INestApplication;
  beforeAll(async () => {
    const ref = await Test.createTestingModule({ imports: [AppModule] }).compile();
    if (platform === 'fastify') {
      const fastify = ref.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger: false });
      await fastify.init();
      await fastify.getHttpAdapter().getInstance().ready();
      app = fastify;
    } else {
      app = ref.createNestApplication({ logger: false });
      await app.init();
    }
  });
  afterAll(() => app.close());

  it('counts visits, keeps a cart, logs in and out', async () => {
    const agent = request.agent(app.getHttpServer());
    expect((await agent.get('/').expect(200)).body).toEqual({ visits: 1, user: null });
    expect((await agent.get('/').expect(200)).body).toEqual({ visits: 2, user: null });
    await agent.post('/cart').send({ sku: 'tea' }).expect(201);
    expect((await agent.post('/cart').send({ sku: 'milk' }).expect(201)).body).toEqual({ items: ['tea', 'milk'] });
    await agent.get('/me').expect(401);
    await agent.post('/login').send({ name: 'ann' }).expect(201);
    expect((await agent.get('/me').expect(200)).body.name).toBe('ann');
    expect((await agent.get('/cart')).body).toEqual({ items: ['tea', 'milk'] });
    await agent.post('/logout').expect(201);
    await agent.get('/me').expect(401);
    expect((await agent.get('/').expect(200)).body).toEqual({ visits: 1, user: null });
  });
});
