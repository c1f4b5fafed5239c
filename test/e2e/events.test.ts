import { Controller, Get, Post } from '@nestjs/common';
import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CookieSessionStore, InMemorySessionStore, Session, type SessionEvent, type SessionStore } from '../../src/index.js';
import { appOn, cookieAfter, PLATFORMS, RecordingLogger, SECRET, sessionCookie } from '../fixtures/app.js';

@Controller('life')
class LifeController {
  @Post('start')
  start(@Session() session: Session) {
    session.set('cart', ['apple']);
    return {};
  }

  @Post('login')
  login(@Session() session: Session) {
    session.regenerate();
    session.set('user', 'ann');
    return {};
  }

  @Post('logout')
  logout(@Session() session: Session) {
    session.destroy();
    return {};
  }

  /** destroy() then a new value: the old session ends and a new one starts. */
  @Post('restart')
  restart(@Session() session: Session) {
    session.destroy();
    session.set('fresh', true);
    return {};
  }

  /** More than a cookie holds: the save fails. */
  @Post('huge')
  huge(@Session() session: Session) {
    session.set('blob', 'x'.repeat(20_000));
    return {};
  }

  @Get('read')
  read(@Session() session: Session) {
    return session.toJSON();
  }
}

type Recorded = Omit<SessionEvent, 'req' | 'at'> & { hasReq: boolean };

async function appWith(
  platform: (typeof PLATFORMS)[number],
  store: SessionStore,
  onEvent: (event: SessionEvent) => unknown,
  logger?: RecordingLogger,
) {
  return appOn(platform)(
    { secret: SECRET, store, maxAge: 3600, onEvent: onEvent as (event: SessionEvent) => void },
    { controllers: [LifeController], providers: [], logger },
  );
}

function recorder(): { events: Recorded[]; listener: (event: SessionEvent) => void } {
  const events: Recorded[] = [];
  return {
    events,
    listener: (event) => {
      const { req, at, ...rest } = event;
      expect(typeof at).toBe('number');
      events.push({ ...rest, hasReq: typeof req === 'object' && req !== null });
    },
  };
}

describe('onEvent: session events for audit logs', () => {
  afterEach(() => vi.useRealTimers());

  for (const platform of PLATFORMS) {
    for (const [name, make] of [
      ['memory', () => new InMemorySessionStore()],
      ['cookie', () => new CookieSessionStore()],
    ] as const) {
      it(`created, regenerated, destroyed, and a restart, with the ${name} store, on ${platform}`, async () => {
        const { events, listener } = recorder();
        const app = await appWith(platform, make(), listener);
        try {
          const http = app.getHttpServer();
          const started = await request(http).post('/life/start').expect(201);
          const first = sessionCookie(started);
          const loggedIn = await request(http).post('/life/login').set('Cookie', first).expect(201);
          const second = sessionCookie(loggedIn);
          await request(http).get('/life/read').set('Cookie', second).expect(200); // a read: no event
          const restarted = await request(http).post('/life/restart').set('Cookie', second).expect(201);
          const third = cookieAfter(restarted, second);
          await request(http).post('/life/logout').set('Cookie', third).expect(201);
          const [created, regenerated, destroyed, recreated, loggedOut] = events;
          expect(events).toHaveLength(5);
          expect(created).toEqual({ type: 'created', id: expect.any(String), hasReq: true });
          expect(regenerated).toEqual({ type: 'regenerated', id: expect.any(String), previousId: created!.id, hasReq: true });
          expect(regenerated!.id).not.toBe(created!.id);
          expect(destroyed).toEqual({ type: 'destroyed', id: regenerated!.id, hasReq: true });
          expect(recreated).toEqual({ type: 'created', id: expect.any(String), hasReq: true });
          expect(loggedOut).toEqual({ type: 'destroyed', id: recreated!.id, hasReq: true });
        } finally {
          await app.close();
        }
      });

      it(`expired: a request with a session whose time ran out, with the ${name} store, on ${platform}`, async () => {
        vi.useFakeTimers({ toFake: ['Date'], now: Date.parse('2026-12-02T00:00:00Z') });
        const { events, listener } = recorder();
        const app = await appWith(platform, make(), listener);
        try {
          const http = app.getHttpServer();
          const cookie = sessionCookie(await request(http).post('/life/start').expect(201));
          vi.setSystemTime(Date.now() + 3601_000);
          expect((await request(http).get('/life/read').set('Cookie', cookie).expect(200)).body).toEqual({});
          expect(events.map((e) => e.type)).toEqual(['created', 'expired']);
          expect(events[1]!.id).toBe(events[0]!.id);
        } finally {
          await app.close();
        }
      });
    }

    it(`no event for a session whose save failed (too large for its cookie), on ${platform}`, async () => {
      const { events, listener } = recorder();
      const app = await appWith(platform, new CookieSessionStore(), listener);
      try {
        await request(app.getHttpServer()).post('/life/huge').expect(500);
        expect(events).toEqual([]);
      } finally {
        await app.close();
      }
    });

    it(`a listener that throws or rejects is logged and changes nothing for the request, on ${platform}`, async () => {
      const logger = new RecordingLogger();
      for (const listener of [
        () => {
          throw new Error('audit log down');
        },
        () => Promise.reject(new Error('audit log down')),
      ]) {
        const app = await appWith(platform, new InMemorySessionStore(), listener, logger);
        try {
          const cookie = sessionCookie(await request(app.getHttpServer()).post('/life/start').expect(201));
          expect((await request(app.getHttpServer()).get('/life/read').set('Cookie', cookie).expect(200)).body).toEqual({
            cart: ['apple'],
          });
        } finally {
          await app.close();
        }
      }
      expect(
        logger.messages('error').filter((m) => m.includes('The onEvent listener failed on a "created" event: audit log down')),
      ).toHaveLength(2);
    });
  }
});
