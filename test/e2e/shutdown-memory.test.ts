import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InMemorySessionStore } from '../../src/index.js';
import { arrivals, createApp, Latch, latches, PLATFORMS, SECRET } from '../fixtures/app.js';

afterEach(() => vi.useRealTimers());

describe.each(PLATFORMS)('shutting down with the in-memory store, on %s', (platform) => {
  it('stops the sweep timer that a session created during the wait started again', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const store = new InMemorySessionStore({ sweepInterval: 60 });
    const destroyed = new Latch();
    const onModuleDestroy = store.onModuleDestroy.bind(store);
    store.onModuleDestroy = () => {
      onModuleDestroy();
      destroyed.open();
    };
    const app = await createApp({ secret: SECRET, store }, { platform });
    const name = `sweep-${platform}`;
    arrivals.set(name, new Latch());
    latches.set(name, new Latch());
    const response = request(app.getHttpServer())
      .post('/set/k')
      .send({ value: 1, wait: name })
      .then((res) => res.status);
    await arrivals.get(name)!.wait;
    const closing = app.close();
    await destroyed.wait; // the module's destroy step has stopped the timer; the shutdown now waits for the request
    latches.get(name)!.open(); // its new session is stored, which starts the sweep again
    expect(await response).toBe(201);
    await closing;
    expect(vi.getTimerCount()).toBe(0);
  });
});
