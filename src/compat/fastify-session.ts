import type { INestApplication } from '@nestjs/common';
import type { SessionData, TrackedSession } from '../session.js';
import { sessionView } from './session-view.js';
import type { SessionHandle } from '../session-handle.js';
import { SessionsConfigError } from '../sessions.errors.js';
import { SessionsService } from '../sessions.service.js';

/**
 * `request.session` on Fastify, in the shape of `@fastify/session` and `@fastify/secure-session` that
 * `@fastify/passport` and `@fastify/flash` use, backed by the request's nest-sessions session (the one
 * `@Session()` hands a handler, saved by the same interceptor).
 */
export interface FastifySession {
  /** The session's ID; undefined until it is first saved, and after `regenerate()` until it is saved again. */
  readonly sessionId: string | undefined;
  /** The value of `key`, or undefined. */
  get<T = unknown>(key: string): T | undefined;
  /** Sets `key`; `undefined` deletes it. */
  set(key: string, value: unknown): void;
  /** A copy of the data. */
  data(): SessionData;
  /**
   * As `@fastify/session`'s: the session gets a new ID, and keeps only the keys named in `keep` (all of
   * its data is dropped without it). The old session ends when the new one is saved.
   */
  regenerate(keep?: readonly string[]): Promise<void>;
  /** Ends the session: its record is deleted and the cookie expired at the next save (the interceptor's, after the handler). */
  destroy(): Promise<void>;
  /** Saves now instead of after the handler. */
  save(): Promise<void>;
  /** Pushes the expiry back at the next save. */
  touch(): void;
}

/** Just what of Fastify's instance the hook needs. */
interface FastifyInstanceLike {
  decorateRequest(name: string, value: unknown): unknown;
  addHook(name: 'onRequest', hook: (request: object & { session?: unknown }, reply: object) => Promise<void>): unknown;
}

function view(handle: SessionHandle, session: TrackedSession): FastifySession {
  // After regenerate(), the ID reported is none until the new one is saved.
  let before: { id: string | undefined } | undefined;
  const members = {
    get sessionId() {
      return before && session.id === before.id ? undefined : session.id;
    },
    get: (key: string) => session.get(key),
    set: (key: string, value: unknown) => void session.set(key, value),
    data: () => session.toJSON(),
    async regenerate(keep?: readonly string[]) {
      const kept: [string, unknown][] = [];
      for (const key of keep ?? []) if (session.has(key)) kept.push([key, session.get(key)]);
      before = { id: session.id };
      session.destroy();
      // Setting a key after destroy() starts the new session: the data kept goes into it.
      for (const [key, value] of kept) session.set(key, value);
    },
    async destroy() {
      session.destroy();
    },
    // In a handler, now; before it (a guard), the interceptor saves, after the checks.
    save: async () => {
      if (handle.adopted) await handle.save();
    },
    touch: () => handle.requestTouch(),
  };
  return sessionView<FastifySession>({ live: session, copy: {} }, members, 'request.session');
}

/**
 * Gives every Fastify request the `request.session` that `@fastify/passport` (and `@fastify/flash`)
 * expect, with the session of nest-sessions behind it. Call it on the application before `listen()` and
 * before registering `@fastify/passport`, in place of `@fastify/session` or `@fastify/secure-session`:
 *
 * ```ts
 * fastifySession(app);
 * await app.register(fastifyPassport.initialize());
 * await app.register(fastifyPassport.secureSession());
 * ```
 *
 * An `onRequest` hook loads the session of every request. The sessions interceptor saves it after the
 * handler, once the anti-forgery checks have passed with the handler known.
 */
export function fastifySession(app: Pick<INestApplication, 'get' | 'getHttpAdapter'>): void {
  const sessions = app.get(SessionsService);
  const instance = app.getHttpAdapter().getInstance() as Partial<FastifyInstanceLike>;
  if (typeof instance.decorateRequest !== 'function' || typeof instance.addHook !== 'function') {
    throw new SessionsConfigError('fastifySession(app) is for the Fastify platform; on Express, use app.use(expressSession(app))');
  }
  instance.decorateRequest('session', null);
  instance.addHook('onRequest', async (request, reply) => {
    const handle = sessions.handleFor(request, reply);
    request.session = view(handle, await handle.load());
  });
}
