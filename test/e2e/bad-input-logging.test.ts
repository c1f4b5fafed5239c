import type { INestApplication } from '@nestjs/common';
import request, { type Response } from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import { randomToken } from '../../src/crypto/random.js';
import { seal, SEALED_ID_BYTES } from '../../src/crypto/seal.js';
import { newSessionId, signId } from '../../src/crypto/sign.js';
import { InMemorySessionStore, type SessionsModuleOptions, type SessionTimes } from '../../src/index.js';
import { appOn, OTHER_SECRET, PLATFORMS, RecordingLogger, SECRET, sessionCookie } from '../fixtures/app.js';

/**
 * Whatever a client sends (a bad cookie, a forged ID, a garbage token) is no news for the operator:
 * each request logs at most one line, at debug level, and that line is a sentence saying what happened.
 */
const HOUR = 3_600_000;
const keyring = new Keyring([SECRET]);
const times = (createdAt: number, expiresAt: number): SessionTimes => ({ createdAt, refreshedAt: createdAt, expiresAt });
const sealed = (t: SessionTimes, payload = '{}', ring = keyring, name = 'session') =>
  seal(ring, name, { id: randomToken(SEALED_ID_BYTES), times: t, payload });
const flip = (token: string, at = token.length - 3) => token.slice(0, at) + (token[at] === 'A' ? 'B' : 'A') + token.slice(at + 1);

async function quietly(logger: RecordingLogger, send: () => Promise<Response>): Promise<Response> {
  logger.lines.length = 0;
  const res = await send();
  expect(logger.lines.length, `logged: ${JSON.stringify(logger.lines)}`).toBeLessThanOrEqual(1);
  for (const line of logger.lines) {
    expect(line.level).toBe('debug');
    expect(line.message).toMatch(/ /); // a sentence, not a bare class name
  }
  return res;
}

describe.each(PLATFORMS)('bad input from clients is logged quietly, on %s', (platform) => {
  const apps: INestApplication[] = [];
  const logger = new RecordingLogger();
  const start = async (options: SessionsModuleOptions) => {
    const app = await appOn(platform)(options, { logger });
    apps.push(app);
    return app.getHttpServer();
  };
  afterAll(() => Promise.all(apps.map((a) => a.close())));

  async function battery(http: ReturnType<INestApplication['getHttpServer']>, cookies: string[]): Promise<void> {
    for (const cookie of cookies) {
      const read = await quietly(logger, () => request(http).get('/read').set('Cookie', cookie));
      expect(read.status, cookie.slice(0, 60)).toBe(200);
      expect(read.body, cookie.slice(0, 60)).toMatchObject({ value: null, isNew: true });
      expect((await quietly(logger, () => request(http).post('/write').set('Cookie', cookie).send({ value: 1 }))).status).toBe(201);
      expect(
        (
          await quietly(logger, () =>
            request(http).post('/write').set('Cookie', cookie).set('Origin', 'http://evil.example').send({ value: 1 }),
          )
        ).status,
      ).toBe(403);
    }
  }

  it('the cookie store: garbage, tampered, cut, extended, foreign, expired, future-dated, unparsable and logged-out cookies', async () => {
    const http = await start({ secret: SECRET });
    const now = Date.now();
    const loggedOut = sessionCookie(await request(http).post('/write').send({ value: 'gone' }).expect(201));
    await request(http).post('/logout').set('Cookie', loggedOut).send({}).expect(201);
    const good = sealed(times(now, now + HOUR));
    await battery(http, [
      'session=garbage',
      'session=%%%!!!***',
      `session=${'A'.repeat(12_000)}`,
      `session=${flip(good)}`,
      `session=${good.slice(0, -10)}`,
      `session=${good}AAAA`,
      `session=${sealed(times(now, now + HOUR), '{}', new Keyring([OTHER_SECRET]))}`,
      `session=${sealed(times(now, now + HOUR), '{}', keyring, 'other')}`,
      `session=${sealed(times(now - 2 * HOUR, now - HOUR))}`,
      `session=${sealed(times(now + HOUR, now + 2 * HOUR))}`,
      `session=${sealed(times(now, now + HOUR), '{')}`,
      `session=${sealed(times(now, now + HOUR), '[1]')}`,
      loggedOut,
      'session=~3~abcdefgh~xyz; session.1=abc',
    ]);
    // The line says why, without a stray context of its own.
    await quietly(logger, () => request(http).get('/read').set('Cookie', 'session=garbage'));
    expect(logger.lines.map((l) => l.message)).toEqual([expect.stringMatching(/^Session cookie refused: /)]);
  });

  it('a server-side store: garbage, forged, foreign, altered, unknown and logged-out IDs', async () => {
    const http = await start({ secret: SECRET, store: new InMemorySessionStore() });
    const valid = sessionCookie(await request(http).post('/write').send({ value: 'real' }).expect(201)).slice('session='.length);
    const loggedOut = sessionCookie(await request(http).post('/write').send({ value: 'gone' }).expect(201));
    await request(http).post('/logout').set('Cookie', loggedOut).send({}).expect(201);
    const [id, sig] = valid.split('.') as [string, string];
    await battery(http, [
      'session=garbage',
      `session=${randomToken(32)}.${randomToken(32)}`,
      `session=${signId(newSessionId(), new Keyring([OTHER_SECRET]))}`,
      `session=${id}.${flip(sig)}`,
      `session=${flip(id, 5)}.${sig}`,
      `session=${valid.slice(0, -4)}`,
      `session=${'A'.repeat(12_000)}`,
      `session=${signId(newSessionId(), keyring)}`,
      loggedOut,
    ]);
    await quietly(logger, () =>
      request(http)
        .get('/read')
        .set('Cookie', `session=${signId(newSessionId(), keyring)}`),
    );
    expect(logger.lines.map((l) => l.message)).toEqual([
      'Session token refused: the store has no live session under it (it ended, expired or never existed)',
    ]);
  });

  it('with requireToken: a bad cookie and a bad token together still make one line', async () => {
    const http = await start({ secret: SECRET, csrf: { requireToken: true } });
    for (const token of ['garbage', '', undefined]) {
      const req = request(http).post('/write').set('Cookie', 'session=garbage');
      const res = await quietly(logger, () =>
        token === undefined ? req.send({ value: 1 }) : req.set('x-csrf-token', token).send({ value: 1 }),
      );
      expect(res.status).toBe(403);
    }
  });

  beforeAll(() => {
    logger.lines.length = 0;
  });
});
