import { Inject, Injectable, Logger, ServiceUnavailableException, type ExecutionContext, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { SESSION_HANDLE, SESSION_STORE, SESSIONS_CONFIG } from './sessions.constants.js';
import { TrackedSession, type SessionData } from './session.js';
import { isLive, isTouchDue, refreshedTimes, secondsLeft } from './session-times.js';
import { SessionsNotConfiguredError, SessionStoreUnavailableError } from './sessions.errors.js';
import type { SessionsConfig } from './sessions.options.js';
import type { IssuedToken, LoadedSession, SessionStore, SessionStoreContext } from './stores/session-store.js';
import { CookieTransport } from './transport/cookie.transport.js';
import { HeaderTransport } from './transport/header.transport.js';
import { HttpIo, httpPairOf } from './transport/http.js';
import type { SessionTransport } from './transport/session-transport.js';

type RequestLike = object & { [SESSION_HANDLE]?: SessionHandle };

/** Each application's service, by its platform instance (the Express app, the Fastify instance). */
const servicesByApp = new WeakMap<object, SessionsService>();
/** The only service registered in this process, if there is only one (null once there are several). */
let soleService: SessionsService | null | undefined;

/**
 * @internal The service of the application a request belongs to: Express requests know their app
 * (`req.app`), Fastify requests their instance (`req.server`, which may be a plugin's child of the
 * root instance). On another platform, the process's only application.
 */
export function sessionsServiceFor(req: object): SessionsService | undefined {
  const { app, server } = req as { app?: unknown; server?: unknown };
  for (let owner = app ?? server; owner && owner !== Object.prototype; owner = Object.getPrototypeOf(owner)) {
    const found = servicesByApp.get(owner as object);
    if (found) return found;
  }
  return soleService ?? undefined;
}

/**
 * @internal The handle behind a session that `@Session()` produced; undefined for anything else. (A
 * field on the session, not a WeakMap: a WeakMap entry per request made garbage collection a sixth of
 * a read's CPU time.)
 */
export function handleOfSession(value: unknown): SessionHandle | undefined {
  return value instanceof TrackedSession && value._owner instanceof SessionHandle ? value._owner : undefined;
}

/**
 * Loads and saves the sessions of requests. The interceptor uses it; guards and middleware can too:
 *
 * ```ts
 * const session = await sessions.load(context); // the same object the handler gets, loaded once
 * ```
 */
@Injectable()
export class SessionsService implements OnModuleInit {
  readonly #logger = new Logger('SessionsModule');
  /** @internal */
  readonly io: HttpIo;
  /** @internal */
  readonly transport: SessionTransport;
  /** @internal */
  readonly storeContext: SessionStoreContext;
  readonly #warnedHandlers = new Set<string>();

  constructor(
    @Inject(SESSIONS_CONFIG) readonly config: SessionsConfig,
    @Inject(SESSION_STORE) readonly store: SessionStore,
    adapterHost: HttpAdapterHost,
  ) {
    this.io = new HttpIo(adapterHost);
    this.transport = config.header
      ? new HeaderTransport(this.io, config.header)
      : new CookieTransport(this.io, config.cookie, store.maxChunks ?? 1);
    this.storeContext = { keyring: config.keyring, tokenName: this.transport.tokenName, logger: this.#logger };
  }

  /** Makes this application's requests find this service (the platform instance exists by now). */
  onModuleInit(): void {
    const instance = this.io.platformInstance();
    if (instance) servicesByApp.set(instance, this);
    soleService = soleService === undefined || soleService === this ? this : null;
  }

  /**
   * The session of the request, loaded on first use and then shared: a guard that loads it and the
   * handler that takes `@Session()` see the same object, and it is saved once, after the handler.
   */
  load<T extends object = SessionData>(context: ExecutionContext): Promise<TrackedSession<T>>;
  load<T extends object = SessionData>(req: object, res: object): Promise<TrackedSession<T>>;
  load(contextOrReq: ExecutionContext | object, res?: object): Promise<TrackedSession> {
    return this.handleOf(contextOrReq, res).load();
  }

  /** @internal The request's handle, created on first use. */
  handleOf(contextOrReq: ExecutionContext | object, res?: object): SessionHandle {
    let req: RequestLike;
    if (isExecutionContext(contextOrReq)) {
      const pair = httpPairOf(contextOrReq);
      if (!pair) throw notHttp(contextOrReq);
      req = pair.req as RequestLike;
      res = pair.res;
    } else {
      req = contextOrReq as RequestLike;
    }
    return this.handleFor(req, res);
  }

  /** @internal The handle of a request, created on first use (which needs the response). */
  handleFor(req: RequestLike, res: object | undefined): SessionHandle {
    let handle = req[SESSION_HANDLE];
    if (!handle) {
      if (!res) throw new TypeError('SessionsService.load(req, res) needs the response too');
      handle = new SessionHandle(this, req, res);
      // An ordinary assignment: every request takes the same shape transition, which V8 makes fast. A
      // symbol key stays out of JSON, Object.keys and for...in.
      req[SESSION_HANDLE] = handle;
    }
    return handle;
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

/** The error for sessions asked for where there is no HTTP request (WebSocket, microservices, GraphQL without req/res). */
export function notHttp(context: ExecutionContext): SessionsNotConfiguredError {
  const where = `${context.getClass().name}.${context.getHandler().name}`;
  const type = context.getType<string>();
  const hint =
    type === 'graphql'
      ? `; pass the request and response into the GraphQL context: GraphQLModule.forRoot({ context: ({ req, res }) => ({ req, res }) })`
      : '';
  return new SessionsNotConfiguredError(
    `Sessions work in HTTP handlers and in GraphQL resolvers whose context has req and res; ${where} runs in a "${type}" context${hint}`,
  );
}

function isExecutionContext(value: unknown): value is ExecutionContext {
  return typeof (value as ExecutionContext).switchToHttp === 'function';
}

/** @internal One request's session: loads it once, saves it at most once per change. */
export class SessionHandle {
  session: TrackedSession | undefined;
  /** What the store returned for the request's token, updated after every save. */
  #loaded: LoadedSession | undefined;
  /** The token the client holds, as far as this request knows (also one that did not open). */
  #token: string | undefined;
  /** How many cookies this response has set so far (chunks), so a later save can expire the extra ones. */
  #written = 0;
  /** The session ended elsewhere while this request ran: nothing more is saved for it. */
  #ended = false;
  #loading: Promise<TrackedSession> | undefined;
  #saving: Promise<void> = Promise.resolve();
  /** The handler that runs, for the warning when the response is already gone (named only then). */
  context: ExecutionContext | undefined;

  constructor(
    private readonly service: SessionsService,
    private readonly req: object,
    private readonly res: object,
  ) {}

  load(): Promise<TrackedSession> {
    return (this.#loading ??= this.#unavailableAs503(this.#load()));
  }

  async #load(): Promise<TrackedSession> {
    const { transport, store, storeContext, config } = this.service;
    const token = transport.read(this.req);
    let loaded: LoadedSession | undefined;
    if (token !== undefined) {
      this.#token = token;
      loaded = await store.load(token, storeContext);
      if (loaded && !isLive(loaded.times, config, Date.now())) loaded = undefined;
      if (!loaded) this.service.logger.debug?.('A session token did not open (unknown, expired or not ours); starting a new session');
    }
    this.#loaded = loaded;
    const session = new TrackedSession(loaded?.data, loaded?.id, () => this.save());
    session._owner = this;
    return (this.session = session);
  }

  /**
   * Drops the changes made since the last save: the handler failed with an error that is not the
   * client's. Later changes (another GraphQL resolver of the same request) are saved as usual.
   */
  discard(): void {
    this.session?._rollback();
  }

  /** Saves what changed, if anything; calls are queued so that two saves never overlap. */
  save(): Promise<void> {
    const next = this.#saving.then(() => this.#unavailableAs503(this.#save()));
    this.#saving = next.catch(() => undefined);
    return next;
  }

  async #save(): Promise<void> {
    const session = this.session;
    if (!session) return;
    if (this.#ended) {
      session._committed(undefined); // dropped, like everything this request changes from now on
      return;
    }
    const { store, storeContext: ctx, config } = this.service;
    const pending = session._pending();
    const loaded = this.#loaded;
    const now = Date.now();
    // Once the response is out, no cookie can be set: nothing that needs a new token is written.
    const sent = this.service.io.headersSent(this.res);
    let issued: IssuedToken | undefined;
    let expire = false;

    if (pending.destroy) {
      // Deleted even when the response is gone: a logout must end the session on the server.
      if (loaded) await store.destroy(loaded, ctx);
      this.#loaded = undefined;
      expire = this.#token !== undefined;
    } else if (pending.regenerate || !loaded) {
      const data = session._data();
      if (!pending.regenerate && Object.keys(data).length === 0) {
        // Nothing to keep: a token that did not open is expired, so the client stops sending it.
        expire = this.#token !== undefined && !sent;
      } else if (sent) {
        this.service.warnHeadersSent(this.#where(), 'the new session was not stored; the previous one, if any, is unchanged');
        return;
      } else {
        // Keep the creation time across regenerate: a new ID does not extend the absolute timeout.
        const createdAt = loaded && !pending.restart ? loaded.times.createdAt : now;
        const times = refreshedTimes(config, now, createdAt);
        // The new record first: if creating it fails, the old session is still there (a 503, not a logout).
        const created = await store.create(data, times, ctx);
        const fresh: LoadedSession = { id: created.id, data: {}, times };
        if (loaded && !(await store.destroy(loaded, ctx)) && !pending.restart) {
          // A logout won the race: it stays a logout, and the new record goes too.
          await store.destroy(fresh, ctx);
          this.#gone();
        } else {
          issued = created;
          this.#loaded = fresh;
        }
      }
    } else if (pending.modified || (!sent && (loaded.reissue || isTouchDue(loaded.times, config, now)))) {
      // A change is a patch; an unchanged session due for a refresh (or a re-signing) is a touch.
      const times = refreshedTimes(config, now, loaded.times.createdAt);
      issued = pending.modified
        ? await store.update(loaded, pending.patch, session._data(), times, ctx)
        : await store.touch(loaded, session._data(), times, ctx);
      if (issued) this.#loaded = { ...loaded, times, reissue: false };
      else this.#gone();
    }

    if (sent) {
      // Server-side stores keep the token on a save: then nothing was lost. A new token or an expiry was.
      if (expire || (issued && issued.token !== this.#token)) {
        this.service.warnHeadersSent(this.#where(), 'the session cookie could not be updated (the store was written where possible)');
      }
    } else if (issued && (issued.token !== this.#token || this.service.transport.resendUnchanged)) {
      // May throw (SessionTooLargeError) before any header is appended: the client keeps its old cookie.
      const cookies = this.service.transport.write(this.req, this.res, issued.token, secondsLeft(this.#loaded!.times, now), this.#written);
      this.#written = Math.max(this.#written, cookies);
      this.#token = issued.token;
    } else if (expire) {
      this.service.transport.clear(this.req, this.res, this.#written);
      this.#token = undefined;
    }
    session._committed(this.#loaded?.id);
  }

  #where(): string {
    const context = this.context;
    return context ? `${context.getClass().name}.${context.getHandler().name}` : 'a handler';
  }

  async #unavailableAs503<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (err) {
      throw err instanceof SessionStoreUnavailableError ? this.service.unavailable(err) : err;
    }
  }

  /**
   * The session ended elsewhere (a logout in another request, expiry) while this request ran: its
   * changes are dropped, and the client's cookie is left alone, since it may already hold a newer
   * session (a login that happened meanwhile). A stale token is expired by the next request that reads it.
   */
  #gone(): void {
    this.service.logger.debug?.('The session ended while this request was running; its changes were dropped');
    this.#loaded = undefined;
    this.#ended = true;
  }
}
