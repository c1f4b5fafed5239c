import { Inject, Injectable, Logger, ServiceUnavailableException, type ExecutionContext } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { SESSION_HANDLE, SESSION_STORE, SESSIONS_CONFIG } from './sessions.constants.js';
import { TrackedSession, type SessionData } from './session.js';
import { isLive, isTouchDue, refreshedTimes, secondsLeft } from './session-times.js';
import { SessionsNotConfiguredError, SessionStoreUnavailableError } from './sessions.errors.js';
import type { SessionsConfig } from './sessions.options.js';
import type { IssuedToken, LoadedSession, SessionStore, SessionStoreContext } from './stores/session-store.js';
import { CookieTransport } from './transport/cookie.transport.js';
import { HttpIo } from './transport/http.js';
import type { SessionTransport } from './transport/session-transport.js';

type RequestLike = object & { [SESSION_HANDLE]?: SessionHandle };

/**
 * Loads and saves the sessions of requests. The interceptor uses it; guards and middleware can too:
 *
 * ```ts
 * const session = await sessions.load(context); // the same object the handler gets, loaded once
 * ```
 */
@Injectable()
export class SessionsService {
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
    this.transport = new CookieTransport(this.io, config.cookie, store.maxChunks ?? 1);
    this.storeContext = { keyring: config.keyring, tokenName: this.transport.tokenName, logger: this.#logger };
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
      if (contextOrReq.getType() !== 'http') {
        throw new SessionsNotConfiguredError(
          `Sessions work in HTTP handlers; this is a "${contextOrReq.getType()}" context`,
        );
      }
      const http = contextOrReq.switchToHttp();
      req = http.getRequest<RequestLike>();
      res = http.getResponse<object>();
    } else {
      req = contextOrReq as RequestLike;
    }
    let handle = req[SESSION_HANDLE];
    if (!handle) {
      if (!res) throw new TypeError('SessionsService.load(req, res) needs the response too');
      handle = new SessionHandle(this, req, res);
      Object.defineProperty(req, SESSION_HANDLE, { value: handle, configurable: true });
    }
    return handle;
  }

  /** @internal Logs once per handler that a session change could not reach the client. */
  warnHeadersSent(where: string): void {
    if (this.#warnedHandlers.has(where)) return;
    this.#warnedHandlers.add(where);
    this.#logger.warn(
      `${where}: the response was sent before the session was saved, so the session cookie could not be ` +
        `updated (the store was written where possible). Call "await session.save()" before sending the response.`,
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

function isExecutionContext(value: unknown): value is ExecutionContext {
  return typeof (value as ExecutionContext).switchToHttp === 'function';
}

/** @internal One request's session: loads it once, saves it at most once per change. */
export class SessionHandle {
  session: TrackedSession | undefined;
  /** What the store returned for the request's token, updated after every save. */
  #loaded: LoadedSession | undefined;
  /** The request carried a token, whether or not it opened. */
  #hadToken = false;
  #loading: Promise<TrackedSession> | undefined;
  #saving: Promise<void> = Promise.resolve();
  #discarded = false;
  /** Who is saving, for the warning when the response is already gone. */
  where = 'a handler';

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
      this.#hadToken = true;
      loaded = await store.load(token, storeContext);
      if (loaded && !isLive(loaded.times, config, Date.now())) loaded = undefined;
      if (!loaded) this.service.logger.debug?.('A session token did not open (unknown, expired or not ours); starting a new session');
    }
    this.#loaded = loaded;
    this.session = new TrackedSession(loaded?.data, loaded?.id, () => this.save());
    return this.session;
  }

  /** Drops the changes: the handler failed with an error that is not the client's. */
  discard(): void {
    this.#discarded = true;
  }

  /** Saves what changed, if anything; calls are queued so that two saves never overlap. */
  save(): Promise<void> {
    const next = this.#saving.then(() => this.#unavailableAs503(this.#save()));
    this.#saving = next.catch(() => undefined);
    return next;
  }

  async #save(): Promise<void> {
    const session = this.session;
    if (!session || this.#discarded) return;
    const { store, storeContext: ctx, config } = this.service;
    const pending = session._pending();
    const loaded = this.#loaded;
    const now = Date.now();
    let issued: IssuedToken | undefined;
    let expireCookie = false;

    if (pending.destroy) {
      if (loaded) await store.destroy(loaded, ctx);
      expireCookie = this.#hadToken;
      this.#loaded = undefined;
    } else if (pending.regenerate || !loaded) {
      const data = session._data();
      if (pending.regenerate || Object.keys(data).length > 0) {
        // Keep the creation time across regenerate: a new ID does not extend the absolute timeout.
        const createdAt = loaded && !pending.restart ? loaded.times.createdAt : now;
        const times = refreshedTimes(config, now, createdAt);
        issued = await store.create(data, times, ctx);
        if (loaded) await store.destroy(loaded, ctx);
        this.#loaded = { id: issued.id, data: {}, times };
      } else {
        // Nothing to keep: a token that did not open is expired, so the client stops sending it.
        expireCookie = this.#hadToken;
      }
    } else if (pending.modified) {
      const times = refreshedTimes(config, now, loaded.times.createdAt);
      issued = await store.update(loaded, pending.patch, session._data(), times, ctx);
      if (issued) this.#loaded = { ...loaded, times, reissue: false };
      else this.#gone();
      expireCookie = !issued;
    } else if (loaded.reissue || isTouchDue(loaded.times, config, now)) {
      const times = refreshedTimes(config, now, loaded.times.createdAt);
      issued = await store.touch(loaded, session._data(), times, ctx);
      if (issued) this.#loaded = { ...loaded, times, reissue: false };
      else this.#gone();
      expireCookie = !issued;
    }

    if (issued || expireCookie) {
      if (this.service.io.headersSent(this.res)) {
        this.service.warnHeadersSent(this.where);
      } else {
        const { transport } = this.service;
        // May throw (SessionTooLargeError) before any header is appended: the client keeps its old cookie.
        if (issued) transport.write(this.req, this.res, issued.token, secondsLeft(this.#loaded!.times, now));
        else transport.clear(this.req, this.res);
        this.#hadToken = issued !== undefined;
      }
    }
    session._committed(this.#loaded?.id);
  }

  async #unavailableAs503<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (err) {
      throw err instanceof SessionStoreUnavailableError ? this.service.unavailable(err) : err;
    }
  }

  /** The session ended elsewhere (logout in another request, expiry): its changes are not written back. */
  #gone(): void {
    this.service.logger.debug?.('The session ended while this request was running; its changes were dropped');
    this.#loaded = undefined;
  }
}
