import { Body, Controller, Get, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { CookieSessionStore, InMemorySessionStore, Session, SessionsConfigError, type SessionStore } from '../../src/index.js';
import { resolveSessionsConfig } from '../../src/sessions.options.js';
import { appOn, isExpiry, PLATFORMS, RecordingLogger, SECRET, sessionCookie, sessionSetCookies } from '../fixtures/app.js';

/** The whole session, as the module's schema: keys are optional until set. */
const AppSession = z.object({ cart: z.array(z.string()).optional(), user: z.string().optional() });
/** What the checkout handler's part of the session may be. */
const Checkout = z.object({ cart: z.array(z.string()).optional() });
/** A schema whose validator itself fails. */
const Broken = {
  '~standard': {
    version: 1 as const,
    vendor: 'test',
    validate: () => {
      throw new Error('validator bug');
    },
  },
};

@Controller('s')
class SchemaController {
  @Post('set')
  set(@Session() session: Session, @Body() body: Record<string, unknown>) {
    session.update(body);
    return {};
  }

  @Get('read')
  read(@Session() session: Session) {
    return session.toJSON();
  }

  @Get('broken')
  broken(@Session(Broken) session: Session) {
    return session.toJSON();
  }

  @Get('checkout')
  checkout(@Session(Checkout) session: Session<typeof Checkout>) {
    expectTypeOf(session.get('cart')).toEqualTypeOf<string[] | undefined>();
    return { items: session.get('cart')?.length ?? 0, data: session.toJSON() };
  }
}

describe('Standard Schema for session data', () => {
  for (const platform of PLATFORMS) {
    for (const [name, make] of [
      ['memory', () => new InMemorySessionStore()],
      ['cookie', () => new CookieSessionStore()],
    ] as const) {
      describe(`with the ${name} store, on ${platform}`, () => {
        let store: SessionStore;
        let loose: INestApplication; // the same store, without a schema: it can write what the schema refuses
        let strict: INestApplication;
        let logger: RecordingLogger;
        beforeAll(async () => {
          store = make();
          logger = new RecordingLogger();
          loose = await appOn(platform)({ secret: SECRET, store }, { controllers: [SchemaController], providers: [] });
          strict = await appOn(platform)(
            { secret: SECRET, store, schema: AppSession },
            { controllers: [SchemaController], providers: [], logger },
          );
        });
        afterAll(async () => {
          await loose.close();
          await strict.close();
        });
        const write = (app: INestApplication, body: object, cookie?: string) => {
          const req = request(app.getHttpServer()).post('/s/set').send(body);
          return cookie ? req.set('Cookie', cookie) : req;
        };

        it('keeps data that matches', async () => {
          const cookie = sessionCookie(await write(strict, { cart: ['tea'] }).expect(201));
          expect((await request(strict.getHttpServer()).get('/s/read').set('Cookie', cookie).expect(200)).body).toEqual({ cart: ['tea'] });
        });

        it('refuses a save that does not match, naming the path, and writes nothing', async () => {
          const cookie = sessionCookie(await write(strict, { cart: ['tea'] }).expect(201));
          logger.lines.length = 0;
          const refused = await write(strict, { cart: ['tea', 5] }, cookie).expect(500);
          expect(sessionSetCookies(refused)).toEqual([]);
          expect(logger.messages('error').join('\n')).toContain('The session does not match its schema, so it was not saved: cart[1]:');
          expect((await request(strict.getHttpServer()).get('/s/read').set('Cookie', cookie).expect(200)).body).toEqual({ cart: ['tea'] });
        });

        it('a stored session that does not match is ended: the request starts a fresh one, never a 500', async () => {
          const cookie = sessionCookie(await write(loose, { cart: 'not a list' }).expect(201));
          const res = await request(strict.getHttpServer()).get('/s/read').set('Cookie', cookie).expect(200);
          expect(res.body).toEqual({});
          expect(isExpiry(sessionSetCookies(res).at(-1)!)).toBe(true);
          if (name === 'memory')
            expect((await request(loose.getHttpServer()).get('/s/read').set('Cookie', cookie).expect(200)).body).toEqual({});
        });

        it("@Session(schema): the handler's schema checks the data it gets, and types it", async () => {
          const app = loose;
          const empty = await request(app.getHttpServer()).get('/s/checkout').expect(200);
          expect(empty.body).toEqual({ items: 0, data: {} }); // a new session is not checked: nothing is stored
          const cookie = sessionCookie(await write(app, { cart: ['tea', 'milk'], user: 'ann' }).expect(201));
          expect((await request(app.getHttpServer()).get('/s/checkout').set('Cookie', cookie).expect(200)).body).toEqual({
            items: 2,
            data: { cart: ['tea', 'milk'], user: 'ann' },
          });
          // A cart that is no list of strings is no cart: the handler gets a fresh session.
          const emptied = sessionCookie(await write(app, { cart: [1, 2], user: 'bob' }).expect(201));
          const res = await request(app.getHttpServer()).get('/s/checkout').set('Cookie', emptied).expect(200);
          expect(res.body).toEqual({ items: 0, data: {} });
        });
      });
    }
  }

  it('a schema that throws while checking a stored session: the session is kept and the error logged', async () => {
    const logger = new RecordingLogger();
    const app = await appOn('express')(
      { secret: SECRET, store: new InMemorySessionStore() },
      { controllers: [SchemaController], providers: [], logger },
    );
    try {
      const cookie = sessionCookie(
        await request(app.getHttpServer())
          .post('/s/set')
          .send({ cart: ['tea'] })
          .expect(201),
      );
      expect((await request(app.getHttpServer()).get('/s/broken').set('Cookie', cookie).expect(200)).body).toEqual({ cart: ['tea'] });
      expect(logger.messages('error').join('\n')).toContain(
        'The session schema threw while checking a stored session, which was kept: validator bug',
      );
    } finally {
      await app.close();
    }
  });

  it('refuses what is no Standard Schema, in the options and in @Session()', () => {
    expect(() => resolveSessionsConfig({ secret: SECRET, schema: {} as never })).toThrow(SessionsConfigError);
    expect(() => resolveSessionsConfig({ secret: SECRET, schema: {} as never })).toThrow('schema must be a Standard Schema');
    expect(() => Session({} as never)).toThrow('@Session(schema) takes a Standard Schema');
  });
});
