import {
  Inject,
  Injectable,
  Logger,
  ServiceUnavailableException,
  type BeforeApplicationShutdown,
  type ExecutionContext,
  type OnModuleInit,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { derivedCsrfSecret } from './crypto/csrf-token.js';
import { handleOfRequest, handlerName, SessionHandle, type RequestWithHandle } from './session-handle.js';
import { SESSION_HANDLE, SESSION_STORE, SESSIONS_CONFIG } from './sessions.constants.js';
import { describeUserId, isUserId, MAX_USER_ID_LENGTH, type SessionData, type SessionOf as Session } from './session.js';
import { SessionsConfigError, SessionsNotConfiguredError, SessionStoreUnavailableError } from './sessions.errors.js';
import type { SessionEvent, SessionsConfig } from './sessions.options.js';
import type { SessionStore, SessionStoreContext, UserSessionEntry, UserSessionIndex } from './stores/session-store.js';
import { Telemetry, tracedStore } from './telemetry.js';
import { CookieTransport } from './transport/cookie.transport.js';
import { HeaderTransport } from './transport/header.transport.js';
import { HttpIo, httpPairOf } from './transport/http.js';
import type { SessionTransport } from './transport/session-transport.js';

/** One of a user's live sessions, as `SessionsService.userSessions()` lists them. */
export interface UserSession {
  readonly createdAt: Date;
  /** When the session was signed in or last had its expiry moved (which happens at most once per `touchAfter`). */
  readonly lastSeenAt: Date;
  /** When it ends unless it is used again. */
  readonly expiresAt: Date;
  /** It is the session passed in as the current one. */
  readonly current: boolean;
  /** With `userSessionInfo: { userAgent: true }`: the `User-Agent` of the request that set `lastSeenAt` (at most 512 characters). */
  readonly userAgent?: string;
  /** With `userSessionInfo: { ip: true }`: the address of the request that set `lastSeenAt`. */
  readonly ip?: string;
}

/** How many times `destroyUserSessions()` looks again for sessions that appeared while it ran. */
const REVOKE_ROUNDS = 8;
/** How many sessions `destroyUserSessions()` ends at once. */
const REVOKE_CONCURRENCY = 16;

/**
 * Loads and saves the sessions of requests. The interceptor uses it; guards and middleware can too:
 *
 * ```ts
 * const session = await sessions.load(context); // the same object the handler gets, loaded once
 * ```
 */
@Injectable()
export class SessionsService implements OnModuleInit, BeforeApplicationShutdown {
  readonly #logger = new Logger('SessionsModule');
  /** @internal */
  readonly io: HttpIo;
  /** @internal */
  readonly transport: SessionTransport;
  /** @internal */
  readonly storeContext: SessionStoreContext;
  readonly #warnedHandlers = new Set<string>();

  constructor(
    /** @internal */ @Inject(SESSIONS_CONFIG) readonly config: SessionsConfig,
    /** @internal */ @Inject(SESSION_STORE) readonly store: SessionStore,
    adapterHost: HttpAdapterHost,
  ) {
    this.io = new HttpIo(adapterHost);
    this.transport = config.header
      ? new HeaderTransport(this.io, config.header)
      : new CookieTransport(this.io, config.cookie, store.maxChunks ?? 1, store.maxCookieBytes);
    this.storeContext = { keyring: config.keyring, tokenName: this.transport.tokenName, logger: this.#logger };
    const csrfKey = config.keyring.current.csrfKey;
    this.csrfSecretOf = (id) => derivedCsrfSecret(csrfKey, id);
    this.calls = store;
  }

  /**
   * @internal The store as the module calls it: `store` itself, or with telemetry on and
   * `@opentelemetry/api` installed, `store` with each call in a span and each write counted.
   */
  calls: SessionStore;
  /** @internal The counters, with telemetry on and `@opentelemetry/api` installed. */
  telemetry: Telemetry | undefined;

  /** Loads `@opentelemetry/api` (an optional peer), unless `telemetry: false`. */
  async onModuleInit(): Promise<void> {
    if (this.config.telemetry === false || this.telemetry) return;
    this.telemetry = await Telemetry.load(this.#logger, this.config.telemetry === true);
    if (this.telemetry) this.calls = tracedStore(this.store, this.telemetry);
  }

  /** @internal The anti-forgery secret of the stored session `id`, under the current key. */
  readonly csrfSecretOf: (id: string) => string;

  /**
   * The session of the request, loaded on first use and then shared: a middleware or guard that loads
   * it and the handler that takes `@Session()` see the same object, and the sessions interceptor saves
   * it once, after the handler, whoever loaded it. Loaded after the interceptor let the request by (in
   * an interceptor inside it, or in a handler without `@Session()`), it is saved only by
   * `await session.save()`; a change left unsaved there is logged when the response ends.
   */
  load<T extends object = SessionData>(context: ExecutionContext): Promise<Session<T>>;
  load<T extends object = SessionData>(req: object, res: object): Promise<Session<T>>;
  async load(contextOrReq: ExecutionContext | object, res?: object): Promise<Session> {
    let req: RequestWithHandle;
    let context: ExecutionContext | undefined;
    if (isExecutionContext(contextOrReq)) {
      context = contextOrReq;
      const pair = httpPairOf(context);
      if (!pair) throw notHttp(context);
      req = pair.req;
      res = pair.res;
    } else if (typeof contextOrReq === 'object' && contextOrReq !== null && typeof res === 'object' && res !== null) {
      req = contextOrReq;
    } else {
      throw new TypeError('SessionsService.load() takes an ExecutionContext, or the request and the response');
    }
    let handle = handleOfRequest(req);
    if (!handle) {
      handle = this.attach(req, res);
      handle.watch();
    }
    handle.context ??= context;
    return handle.loadFor(context);
  }

  /**
   * The live sessions of a user (marked with `session.setUser(userId)`), oldest first: for an "active
   * sessions" page. Pass the request's session to have it marked `current`. Needs a store that keeps
   * an index of users' sessions (in-memory, Redis, PostgreSQL); others throw a `SessionsConfigError`.
   */
  async userSessions(userId: string, current?: { readonly id: string | undefined }): Promise<UserSession[]> {
    const index = this.#userIndex('userSessions', userId);
    if (current !== undefined && !isSessionLike(current)) {
      throw new TypeError(`SessionsService.userSessions(userId, current): current must be the request's session, or left out`);
    }
    const entries = await this.#storeCall(() => index.list(userId, this.storeContext));
    const currentId = current?.id;
    return entries
      .sort((a, b) => a.createdAt - b.createdAt)
      .map((entry) => ({
        createdAt: new Date(entry.createdAt),
        lastSeenAt: new Date(entry.lastSeenAt),
        expiresAt: new Date(entry.expiresAt),
        current: currentId !== undefined && entry.id === currentId,
        ...(entry.userAgent !== undefined ? { userAgent: entry.userAgent } : {}),
        ...(entry.ip !== undefined ? { ip: entry.ip } : {}),
      }));
  }

  /**
   * Ends every session of a user ("log out everywhere"), or every one but `except` ("sign out other
   * devices": pass the request's session). Returns how many it ended; each is told to `onEvent` as
   * `revoked`. A request still running on one of them cannot bring it back: its save finds the session
   * gone and writes nothing. To end the current session too, call `session.destroy()` in the handler.
   */
  async destroyUserSessions(userId: string, options: { readonly except?: { readonly id: string | undefined } } = {}): Promise<number> {
    const index = this.#userIndex('destroyUserSessions', userId);
    if (typeof options !== 'object' || options === null || isSessionLike(options) || Object.keys(options).some((k) => k !== 'except')) {
      throw new TypeError(
        'SessionsService.destroyUserSessions(userId, options): options is { except?: session }, such as { except: session } ' +
          'to keep the current one; a session given in its place would have ended every session',
      );
    }
    if (options.except !== undefined && !isSessionLike(options.except)) {
      throw new TypeError("SessionsService.destroyUserSessions(userId, { except }): except must be the request's session");
    }
    const keep = options.except?.id;
    const { calls: store, storeContext: ctx } = this;
    const seen = new Set<string>();
    let ended = 0;
    let failure: unknown;
    // Every entry the index holds, expired or not (another process's clock may still see it live). A
    // request regenerating one of these sessions meanwhile lists its new ID before it deletes the old
    // one: looking again until nothing new is listed finds it.
    for (let round = 0; ; round++) {
      const entries = (await this.#storeCall(() => index.list(userId, ctx, { ended: true }))).filter(
        (e) => e.id !== keep && !seen.has(e.id),
      );
      if (entries.length === 0) break;
      if (round === REVOKE_ROUNDS) {
        this.#logger.warn(
          `destroyUserSessions(): ${entries.length} sessions of the user were signed in while it ran (${REVOKE_ROUNDS} rounds); they remain`,
        );
        break;
      }
      for (const entry of entries) seen.add(entry.id);
      // A few at a time: a user with thousands of sessions must not fill the store's queue for everyone.
      await eachAtMost(REVOKE_CONCURRENCY, entries, async (entry) => {
        try {
          if (await store.destroy(loadedOf(entry), ctx)) {
            ended++;
            if (this.config.onEvent || this.telemetry) this.emit({ type: 'revoked', id: entry.id, userId, at: Date.now(), req: undefined });
          }
        } catch (err) {
          failure ??= err; // the others are still ended; the call fails once they are done
          return;
        }
        try {
          await index.remove(userId, entry.id, ctx);
        } catch (err) {
          // The session is gone: a listing drops its entry.
          this.#logger.warn(`destroyUserSessions(): an entry of an ended session could not be removed: ${(err as Error).message}`);
        }
      });
    }
    if (failure !== undefined) {
      throw failure instanceof SessionStoreUnavailableError ? this.unavailable(failure) : failure;
    }
    return ended;
  }

  #userIndex(method: string, userId: unknown): UserSessionIndex {
    if (!isUserId(userId)) {
      throw new TypeError(
        `SessionsService.${method}(userId): userId must be what session.setUser() was given, a string of 1 to ${MAX_USER_ID_LENGTH} ` +
          `characters; got ${describeUserId(userId)} (is anyone signed in?)`,
      );
    }
    const index = this.calls.users;
    if (!index) {
      throw new SessionsConfigError(
        `SessionsService.${method}(): the ${this.store.constructor.name} keeps no list of a user's sessions (a cookie store cannot: ` +
          `its sessions live in the browsers). Use the InMemorySessionStore, RedisSessionStore or PostgresSessionStore, or a store with a "users" index`,
      );
    }
    return index;
  }

  /** A store call from the service: a store that is down or slow is a 503, as in the interceptor. */
  async #storeCall<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw err instanceof SessionStoreUnavailableError ? this.unavailable(err) : err;
    }
  }

  /** Requests in the sessions interceptor (until their response closed), and saves under way, begun before any shutdown. */
  #inFlight = 0;
  /** Of those, the saves queued by `session.save()` and the compatibility layers. */
  #savesInFlight = 0;
  /** A shutdown began: what starts from now on is not waited for. */
  #shuttingDown = false;
  /** Called when #inFlight drops to 0, while a shutdown waits. */
  #drained: (() => void) | undefined;

  /**
   * @internal A request entered the interceptor (`save` false), or a save started. Returns whether it
   * counts: only what began before a shutdown is waited for. Pass the answer to leave().
   */
  enter(save: boolean): boolean {
    if (this.#shuttingDown) return false;
    this.#inFlight++;
    if (save) this.#savesInFlight++;
    return true;
  }

  /** @internal It left (its response closed), or the save settled. */
  leave(counted: boolean, save: boolean): void {
    if (!counted) return;
    if (save) this.#savesInFlight--;
    if (--this.#inFlight === 0) this.#drained?.();
  }

  /** @internal leave() of a counted request, made once: the interceptor passes it to every response's 'close'. */
  readonly requestLeft = (): void => this.leave(true, false);

  /**
   * With `app.enableShutdownHooks()` (or `app.close()`): before Nest closes the HTTP server and the
   * providers' shutdown hooks run (where apps close their Redis clients and pg pools), waits for the
   * requests that were in the sessions interceptor when the shutdown began to have their responses
   * sent, and for the saves under way then, for at most `shutdownTimeout` seconds.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.#shuttingDown = true;
    const limit = this.config.shutdownTimeoutMs;
    if (this.#inFlight === 0 || limit === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const drained = new Promise<boolean>((resolve) => {
      this.#drained = () => resolve(true);
      timer = setTimeout(() => resolve(false), limit);
    });
    const done = await drained;
    clearTimeout(timer);
    this.#drained = undefined;
    if (!done) {
      const saves = this.#savesInFlight;
      const requests = this.#inFlight - saves;
      this.#logger.warn(
        `Shutting down after shutdownTimeout (${limit / 1000} s) with ${requests} request(s) not yet answered and ${saves} save(s) ` +
          `under way: their session changes may be lost when the store's client closes. Raise shutdownTimeout, or look for ` +
          `handlers that take @Session() and answer slowly or never (server-sent events, long polls)`,
      );
    }
  }

  /** @internal The request's handle, made (and watched) if it has none; nothing is loaded or checked. */
  handleFor(req: RequestWithHandle, res: object): SessionHandle {
    let handle = handleOfRequest(req);
    if (!handle) {
      handle = this.attach(req, res);
      handle.watch();
    }
    return handle;
  }

  /** @internal A new handle on a request that has none; the interceptor and `load()` share it. */
  attach(req: RequestWithHandle, res: object): SessionHandle {
    const handle = new SessionHandle(this, req, res);
    // An ordinary assignment: every request takes the same shape transition, which V8 makes fast. A
    // symbol key stays out of JSON, Object.keys and for...in.
    req[SESSION_HANDLE] = handle;
    return handle;
  }

  /**
   * @internal Logs once per place that the session was changed and nothing saved the change: after the
   * interceptor's save (`adopted`), or where the interceptor never ran for it.
   */
  warnNeverSaved(where: string, adopted: boolean): void {
    // Places named by URL (no context) could be many: a bounded number is reported.
    if (this.#warnedHandlers.has(`unsaved:${where}`) || this.#warnedHandlers.size >= 1_000) return;
    this.#warnedHandlers.add(`unsaved:${where}`);
    const why = adopted
      ? 'it was changed after the sessions interceptor had saved it (in an interceptor outside it, or after the response)'
      : 'the sessions interceptor did not run after it was loaded (it was loaded after the interceptor let the ' +
        'request by, as in a handler without @Session(), or by a guard that then refused the request)';
    this.#logger.warn(
      `${where}: a change to the session was never saved, because ${why}. Call "await session.save()" after the change, or make it where the interceptor saves it.`,
    );
  }

  /** @internal Logs once per handler that a session change could not reach the client. */
  warnHeadersSent(where: string, what: string): void {
    if (this.#warnedHandlers.has(where)) return;
    this.#warnedHandlers.add(where);
    this.#logger.warn(
      `${where}: the response was sent before the session was saved, so ${what}. ` +
        `Call "await session.save()" before sending the response.`,
    );
  }

  /**
   * @internal Tells the `onEvent` listener, if there is one. Its errors (thrown or rejected) are logged,
   * never passed to the request.
   */
  emit(event: SessionEvent): void {
    this.telemetry?.event(event.type);
    const listener = this.config.onEvent;
    if (!listener) return;
    const report = (err: unknown) =>
      this.#logger.error(`The onEvent listener failed on a "${event.type}" event: ${err instanceof Error ? err.message : String(err)}`);
    try {
      const result = listener(event);
      if (result instanceof Promise) result.catch(report);
    } catch (err) {
      report(err);
    }
  }

  /** @internal */
  get logger(): Logger {
    return this.#logger;
  }

  #outageLoggedAt = 0;
  #outageSuppressed = 0;

  /**
   * @internal A store that is down or slow becomes a 503 the client can understand; the cause goes to
   * the log, at most once every 10 seconds during an outage, with a count of what was not repeated.
   */
  unavailable(err: SessionStoreUnavailableError): ServiceUnavailableException {
    this.telemetry?.unavailable.add(1);
    const now = Date.now();
    if (now - this.#outageLoggedAt >= 10_000) {
      const more = this.#outageSuppressed ? ` (${this.#outageSuppressed} more since the last report)` : '';
      this.#logger.error(`Session store unavailable: ${err.message}${more}`);
      this.#outageLoggedAt = now;
      this.#outageSuppressed = 0;
    } else {
      this.#outageSuppressed++;
    }
    return new ServiceUnavailableException('The session store is unavailable; try again shortly', { cause: err });
  }
}

/** @internal The error for sessions asked for where there is no HTTP request (WebSocket, microservices, GraphQL without req/res). */
export function notHttp(context: ExecutionContext): SessionsNotConfiguredError {
  const where = handlerName(context);
  const type = context.getType<string>();
  const hint =
    type === 'graphql'
      ? `; pass the request and response into the GraphQL context: GraphQLModule.forRoot({ context: ({ req, res }) => ({ req, res }) })`
      : '';
  return new SessionsNotConfiguredError(
    `Sessions work in HTTP handlers and in GraphQL resolvers whose context has req and res; ${where} runs in a "${type}" context${hint}`,
  );
}

/** Runs `work` on every item, at most `limit` at once. */
async function eachAtMost<T>(limit: number, items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Whether `value` looks like a session (it has an `id`), as `current` and `except` must be. */
function isSessionLike(value: unknown): boolean {
  return typeof value === 'object' && value !== null && 'id' in value && (typeof value.id === 'string' || value.id === undefined);
}

/** What a store's destroy() needs of a listed session: its ID (and times; no data). */
function loadedOf(entry: UserSessionEntry) {
  return { id: entry.id, data: {}, times: { createdAt: entry.createdAt, refreshedAt: entry.lastSeenAt, expiresAt: entry.expiresAt } };
}

function isExecutionContext(value: unknown): value is ExecutionContext {
  return typeof value === 'object' && value !== null && typeof (value as ExecutionContext).switchToHttp === 'function';
}
