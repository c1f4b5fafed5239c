import { Inject, Injectable, Logger, ServiceUnavailableException, type ExecutionContext } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { derivedCsrfSecret } from './crypto/csrf-token.js';
import { handleOfRequest, handlerName, SessionHandle, type RequestWithHandle } from './session-handle.js';
import { SESSION_HANDLE, SESSION_STORE, SESSIONS_CONFIG } from './sessions.constants.js';
import type { SessionData, SessionOf as Session } from './session.js';
import { SessionsNotConfiguredError, type SessionStoreUnavailableError } from './sessions.errors.js';
import type { SessionEvent, SessionsConfig } from './sessions.options.js';
import type { SessionStore, SessionStoreContext } from './stores/session-store.js';
import { CookieTransport } from './transport/cookie.transport.js';
import { HeaderTransport } from './transport/header.transport.js';
import { HttpIo, httpPairOf } from './transport/http.js';
import type { SessionTransport } from './transport/session-transport.js';

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

function isExecutionContext(value: unknown): value is ExecutionContext {
  return typeof value === 'object' && value !== null && typeof (value as ExecutionContext).switchToHttp === 'function';
}
