/**
 * Property-based fuzzing with fast-check. `npm test` runs a small budget; `npm run fuzz` runs
 * FUZZ_RUNS inputs per property (at least 100,000 in all). Each property says what must hold for every
 * input: no exception escapes, nothing forged or altered opens, data reads back as it was written.
 */
import fc from 'fast-check';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appOn, PLATFORMS } from '../fixtures/app.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { open, seal } from '../../src/crypto/seal.js';
import { newSessionId, signId, verifySignedId } from '../../src/crypto/sign.js';
import { SessionSerializationError } from '../../src/index.js';
import { resolveSessionsConfig } from '../../src/sessions.options.js';
import { parseFields, serializeFields } from '../../src/stores/fields.js';
import { assertJsonValue } from '../../src/stores/json-value.js';
import { CookieTransport } from '../../src/transport/cookie.transport.js';
import { HeaderTransport } from '../../src/transport/header.transport.js';
import { HttpIo } from '../../src/transport/http.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 1000);
const params = { numRuns: RUNS };
const SECRET = 'fuzzing-secret-0123456789-abcdefghijklmnop';
const ring = new Keyring([SECRET]);
const NOW = 1_700_000_000_000;
const contents = (payload: string) => ({
  id: 'AAAAAAAAAAAAAAAAAAAAAA',
  times: { createdAt: NOW - 1000, refreshedAt: NOW, expiresAt: NOW + 3_600_000 },
  payload,
});
const TOKEN = seal(ring, 'session', contents('{"user":"ann"}'));
const SIGNED = signId(newSessionId(), ring);

/** A valid token changed in one of the ways an attacker would try. */
const mutated = (token: string) =>
  fc
    .oneof(
      fc
        .tuple(fc.nat({ max: token.length - 1 }), fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~'))
        .map(([i, c]) => token.slice(0, i) + c + token.slice(i + 1)),
      fc.nat({ max: token.length - 1 }).map((n) => token.slice(0, n)),
      fc.string({ minLength: 1, maxLength: 40 }).map((tail) => token + tail),
      fc.tuple(fc.nat({ max: token.length - 1 }), fc.nat({ max: token.length - 1 })).map(([a, b]) => {
        const chars = [...token];
        [chars[a], chars[b]] = [chars[b]!, chars[a]!];
        return chars.join('');
      }),
    )
    .filter((t) => t !== token);

/** A value as JSON keeps it: Dates as ISO strings, undefined properties left out, -0 as 0. */
function asJsonSeesIt(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(asJsonSeesIt);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined) continue;
      Object.defineProperty(out, k, { value: asJsonSeesIt(v), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  return value;
}

/** The transport's view of a request: a Cookie header or the session header. */
const req = (headers: Record<string, string>) => ({ headers });
const io = new HttpIo({ httpAdapter: undefined } as never);
const cookieTransport = new CookieTransport(io, resolveSessionsConfig(SECRET).cookie, 2, 6000);
const headerTransport = new HeaderTransport(io, 'x-session-id');

describe('fuzzing', () => {
  it('opening random text never throws and never opens', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 600 }),
          fc.base64String({ maxLength: 600 }),
          fc.uint8Array({ maxLength: 450 }).map((b) => Buffer.from(b).toString('base64url')),
        ),
        (token) => {
          expect('failure' in open(ring, 'session', token, NOW)).toBe(true);
        },
      ),
      params,
    );
  });

  it('no change to a sealed token opens (flips, truncations, extensions, swaps)', () => {
    fc.assert(
      fc.property(mutated(TOKEN), (token) => {
        expect('failure' in open(ring, 'session', token, NOW)).toBe(true);
      }),
      params,
    );
  });

  it('verifying random text never throws and never verifies; no change to a signed ID verifies', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), mutated(SIGNED)), (token) => {
        expect(verifySignedId(token, ring)).toBeUndefined();
      }),
      params,
    );
  });

  it('any Cookie header and any session header value are read without an exception', () => {
    const cookieText = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc
        .array(fc.tuple(fc.constantFrom('session', 'session.1', 'session.2', 'other', 'session.99'), fc.string({ maxLength: 80 })), {
          maxLength: 6,
        })
        .map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join('; ')),
      fc.string({ maxLength: 200 }).map((v) => `session=~2~${v}`),
    );
    fc.assert(
      fc.property(cookieText, fc.string({ maxLength: 300 }), (cookie, header) => {
        const token = cookieTransport.read(req({ cookie }));
        expect(token === undefined || typeof token === 'string').toBe(true);
        if (token) expect('failure' in open(ring, 'session', token, NOW)).toBe(true);
        const fromHeader = headerTransport.read(req({ 'x-session-id': header }));
        expect(fromHeader === undefined || typeof fromHeader === 'string').toBe(true);
        if (fromHeader) expect('failure' in open(ring, 'x-session-id', fromHeader, NOW)).toBe(true);
      }),
      params,
    );
  });

  it('every JSON value is accepted and reads back exactly as it was written', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 8 }), { maxKeys: 6 }), (data) => {
        for (const [key, value] of Object.entries(data)) assertJsonValue(key, value);
        const back = parseFields(serializeFields(data));
        expect(back).toEqual(JSON.parse(JSON.stringify(data)));
      }),
      params,
    );
  });

  it('anything else is accepted (and then round-trips as JSON) or refused with a SessionSerializationError', () => {
    fc.assert(
      fc.property(
        fc.anything({
          withMap: true,
          withSet: true,
          withBigInt: true,
          withDate: true,
          withTypedArray: true,
          withSparseArray: true,
          withNullPrototype: true,
          withBoxedValues: true,
        }),
        (value) => {
          try {
            assertJsonValue('k', value);
          } catch (err) {
            expect(err).toBeInstanceOf(SessionSerializationError);
            return;
          }
          // Accepted: it reads back as the value itself, with JSON's own two conversions applied by hand.
          expect(parseFields(serializeFields({ k: value })).k).toStrictEqual(asJsonSeesIt(value));
        },
      ),
      params,
    );
  });

  it('sealed contents open to exactly what was sealed, whatever the payload text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 500, unit: 'binary' }), (payload) => {
        const token = seal(ring, 'session', contents(payload));
        const opened = open(new Keyring([SECRET]), 'session', token, NOW);
        if ('failure' in opened) throw new Error(`failed to open: ${opened.failure}`);
        expect(opened.payload).toBe(Buffer.from(payload, 'utf8').toString('utf8'));
      }),
      params,
    );
  });
});

describe.each(PLATFORMS)('fuzzing over HTTP on %s', (platform) => {
  let app: INestApplication;
  beforeAll(async () => {
    app = await appOn(platform)(SECRET);
  });
  afterAll(() => app.close());

  it('any Cookie header a client can send gives a 200 with an empty session, never an error', async () => {
    // A live token of this app: it opens as it is (checked), and no change to it may.
    const now = Date.now();
    const live = seal(ring, 'session', {
      id: 'BBBBBBBBBBBBBBBBBBBBBB',
      times: { createdAt: now, refreshedAt: now, expiresAt: now + 3_600_000 },
      payload: '{"value":"ann"}',
    });
    expect((await request(app.getHttpServer()).get('/read').set('Cookie', `session=${live}`)).body.value).toBe('ann');
    // What Node's HTTP client lets through in a header: visible ASCII and spaces.
    const visible = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 300 });
    const cookie = fc.oneof(
      visible,
      visible.map((v) => `session=${v}`),
      fc.tuple(visible, visible).map(([a, b]) => `session=~2~${a}; session.1=${b}`),
      // (A change the Cookie header's own syntax undoes, such as a trailing space or "; x", is no change.)
      mutated(live)
        .filter((t) => /^[\x20-\x7e]*$/.test(t) && t.split(';')[0]!.trim() !== live)
        .map((t) => `session=${t}`),
    );
    await fc.assert(
      fc.asyncProperty(cookie, async (header) => {
        const res = await request(app.getHttpServer()).get('/read').set('Cookie', header);
        expect(res.status).toBe(200);
        expect(res.body.value).toBeNull();
      }),
      { numRuns: Math.max(50, Math.floor(RUNS / 20)) },
    );
  });
});
