import { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { AppModule } from './../src/app.module';

describe('a session kept across requests (e2e)', () => {
  let app: INestApplication;

  beforeAll(async () => {
    const moduleFixture = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleFixture.createNestApplication();
    await app.init();
  });

  afterAll(async () => {
    await app.close();
  });

  it('keeps the cart from one request to the next', async () => {
    const first = await request(app.getHttpServer()).post('/cart/tea').expect(201);
    expect(first.body).toEqual({ items: ['tea'] });
    const cookie = String(first.headers['set-cookie']).split(';')[0]!;
    const second = await request(app.getHttpServer()).post('/cart/milk').set('Cookie', cookie).expect(201);
    expect(second.body).toEqual({ items: ['tea', 'milk'] });
    const next = String(second.headers['set-cookie']).split(';')[0]!;
    const read = await request(app.getHttpServer()).get('/cart').set('Cookie', next).expect(200);
    expect(read.body).toEqual({ items: ['tea', 'milk'] });
  });

  it('starts with an empty cart without the cookie', async () => {
    await request(app.getHttpServer()).get('/cart').expect(200, { items: [] });
  });
});
