import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InMemorySessionStore, SessionsService } from '../../src/index.js';
import { Telemetry } from '../../src/telemetry.js';
import { createApp, RecordingLogger, SECRET, sessionCookie } from '../fixtures/app.js';

/** What importing a package that is not installed rejects with, in Node. */
const notInstalled = () =>
  Promise.reject(
    Object.assign(
      new Error("Cannot find package '@opentelemetry/api' imported from /app/node_modules/nest-sessions/dist/esm/telemetry.js"),
      {
        code: 'ERR_MODULE_NOT_FOUND',
      },
    ),
  );
const MISSING = 'telemetry: true, but @opentelemetry/api is not installed: install it, or leave the option out';

/** Every Telemetry.load() of the apps made while it is on behaves as without the package. */
function withoutTheApi() {
  const load = Telemetry.load.bind(Telemetry);
  vi.spyOn(Telemetry, 'load').mockImplementation((logger, asked) => load(logger, asked, notInstalled as never));
}

afterEach(() => vi.restoreAllMocks());

describe('without @opentelemetry/api installed', () => {
  it('Telemetry.load() answers undefined, silently unless telemetry: true asked for it', async () => {
    const quiet = { warn: vi.fn() };
    await expect(Telemetry.load(quiet, false, notInstalled as never)).resolves.toBeUndefined();
    expect(quiet.warn).not.toHaveBeenCalled();
    const asked = { warn: vi.fn() };
    await expect(Telemetry.load(asked, true, notInstalled as never)).resolves.toBeUndefined();
    expect(asked.warn).toHaveBeenCalledWith(MISSING);
  });

  it('says why when the package is there but fails to load', async () => {
    const logger = { warn: vi.fn() };
    const broken = () => Promise.reject(new SyntaxError('Unexpected token'));
    await expect(Telemetry.load(logger, false, broken as never)).resolves.toBeUndefined();
    expect(logger.warn).toHaveBeenCalledWith('Telemetry is off: @opentelemetry/api could not be loaded: Unexpected token');
  });

  it('the module calls the store itself, and sessions work, with nothing logged', async () => {
    withoutTheApi();
    const store = new InMemorySessionStore();
    const logger = new RecordingLogger();
    const app = await createApp({ secret: SECRET, store }, { logger });
    try {
      expect(app.get(SessionsService).calls).toBe(store);
      expect(app.get(SessionsService).telemetry).toBeUndefined();
      const http = app.getHttpServer();
      const cookie = sessionCookie(await request(http).post('/write').send({ value: 'kept' }).expect(201));
      expect((await request(http).get('/read').set('Cookie', cookie).expect(200)).body).toMatchObject({ value: 'kept' });
      expect(logger.messages('warn')).toEqual([]);
    } finally {
      await app.close();
    }
  });

  it('with telemetry: true, the app starts and says the package is missing', async () => {
    withoutTheApi();
    const logger = new RecordingLogger();
    const app = await createApp({ secret: SECRET, store: new InMemorySessionStore(), telemetry: true }, { logger });
    try {
      expect(logger.messages('warn')).toContain(MISSING);
    } finally {
      await app.close();
    }
  });
});
