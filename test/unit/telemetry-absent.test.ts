import request from 'supertest';
import { describe, expect, it, vi } from 'vitest';
import { InMemorySessionStore, SessionsService } from '../../src/index.js';
import { Telemetry } from '../../src/telemetry.js';
import { createApp, SECRET, sessionCookie } from '../fixtures/app.js';

// As in an app without the optional peer: importing it fails.
vi.mock('@opentelemetry/api', () => {
  throw new Error("Cannot find package '@opentelemetry/api'");
});

describe('without @opentelemetry/api installed', () => {
  it('Telemetry.load() answers undefined rather than failing', async () => {
    await expect(Telemetry.load()).resolves.toBeUndefined();
  });

  it('the module calls the store itself, and sessions work', async () => {
    const store = new InMemorySessionStore();
    const app = await createApp({ secret: SECRET, store });
    try {
      expect(app.get(SessionsService).calls).toBe(store);
      expect(app.get(SessionsService).telemetry).toBeUndefined();
      const http = app.getHttpServer();
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 'kept' }).expect(201));
      expect((await request(http).get('/read').set('Cookie', cookie).expect(200)).body).toMatchObject({ value: 'kept' });
    } finally {
      await app.close();
    }
  });
});
