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

  it('counts visits, keeps a cart, logs in and out, with the anti-forgery token on every POST', async () => {
    const agent = request.agent(app.getHttpServer());
    expect((await agent.get('/').expect(200)).body).toEqual({ visits: 1, user: null });
    expect((await agent.get('/').expect(200)).body).toEqual({ visits: 2, user: null });
    let token = (await agent.get('/csrf-token').expect(200)).body.token as string;
    expect((await agent.post('/cart').send({ sku: 'tea' }).expect(403)).body.message).toMatch(/no anti-forgery token/);
    await agent.post('/cart').set('x-csrf-token', token).send({ sku: 'tea' }).expect(201);
    expect((await agent.post('/cart').set('x-csrf-token', token).send({ sku: 'milk' }).expect(201)).body).toEqual({
      items: ['tea', 'milk'],
    });
    await agent.get('/me').expect(401);
    const login = await agent.post('/login').set('x-csrf-token', token).send({ name: 'ann' }).expect(201);
    await agent.post('/cart').set('x-csrf-token', token).send({ sku: 'old token' }).expect(403);
    token = login.body.csrfToken;
    expect((await agent.get('/me').expect(200)).body.name).toBe('ann');
    expect((await agent.get('/cart')).body).toEqual({ items: ['tea', 'milk'] });
    await agent.post('/logout').set('x-csrf-token', token).expect(201);
    await agent.get('/me').expect(401);
    expect((await agent.get('/').expect(200)).body).toEqual({ visits: 1, user: null });
  });

  it('the /shop page: its forms carry the token, and post through', async () => {
    const agent = request.agent(app.getHttpServer());
    const tokenOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
    let page = (await agent.get('/shop').expect(200)).text;
    await agent.post('/shop/cart').type('form').send({ sku: 'tea' }).expect(403);
    await agent
      .post('/shop/cart')
      .type('form')
      .send({ sku: '<b>tea</b>', _csrf: tokenOf(page) })
      .expect(303)
      .expect('location', '/shop');
    await agent
      .post('/shop/login')
      .type('form')
      .send({ name: 'ann', _csrf: tokenOf(page) })
      .expect(303);
    page = (await agent.get('/shop').expect(200)).text;
    expect(page).toContain('Signed in as ann');
    expect(page).toContain('<p class="notice">Welcome, ann.</p>');
    expect(page).toContain('<li>&lt;b&gt;tea&lt;/b&gt;</li>');
    page = (await agent.get('/shop').expect(200)).text;
    expect(page).not.toContain('class="notice"'); // shown once
    await agent
      .post('/shop/logout')
      .type('form')
      .send({ _csrf: tokenOf(page) })
      .expect(303);
    page = (await agent.get('/shop').expect(200)).text;
    expect(page).not.toContain('Signed in');
    expect(page).toContain('<p class="notice">You are logged out.</p>');
  });

  it("the /shop/sessions page lists the user's browsers and signs the others out", async () => {
    const tokenOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
    const name = `sample-${platform}-${Date.now()}`;
    const signIn = async (browser: string) => {
      const agent = request.agent(app.getHttpServer());
      const page = (await agent.get('/shop').set('User-Agent', browser).expect(200)).text;
      await agent
        .post('/shop/login')
        .set('User-Agent', browser)
        .type('form')
        .send({ name, _csrf: tokenOf(page) })
        .expect(303);
      return agent;
    };
    const laptop = await signIn('Laptop/1.0');
    const phone = await signIn('Phone/2.0');
    let page = (await laptop.get('/shop/sessions').set('User-Agent', 'Laptop/1.0').expect(200)).text;
    expect(page.match(/<li>/g)).toHaveLength(2);
    expect(page).toMatch(/<li>Laptop\/1\.0, signed in [^<]+<strong>\(this one\)<\/strong><\/li>/);
    expect(page).toMatch(/<li>Phone\/2\.0, signed in [^<]+<\/li>/);
    await laptop
      .post('/shop/sign-out-others')
      .set('User-Agent', 'Laptop/1.0')
      .type('form')
      .send({ _csrf: tokenOf(page) })
      .expect(303)
      .expect('location', '/shop/sessions');
    page = (await laptop.get('/shop/sessions').set('User-Agent', 'Laptop/1.0').expect(200)).text;
    expect(page).toContain('<p class="notice">Signed out 1 other device.</p>');
    expect(page.match(/<li>/g)).toHaveLength(1);
    expect((await phone.get('/shop').expect(200)).text).not.toContain('Signed in');
    expect((await phone.get('/shop/sessions').expect(200)).text).toContain('Log in</a> first');
  });
});
