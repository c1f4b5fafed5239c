import { ForbiddenException, type ExecutionContext } from '@nestjs/common';
import { changesState, crossSiteRefusal, normalizeOrigin, SKIP_CSRF, tokenRefusal } from './csrf.js';
import { derivedCsrfSecret } from './crypto/csrf-token.js';
import { lifetimeOf, TrackedSession, userOf, type SessionPatch } from './session.js';
import { isLive, isRefreshDue, isTouchDue, refreshedTimes, secondsLeft, timingFor } from './session-times.js';
import { SESSION_HANDLE } from './sessions.constants.js';
import {
  SessionSerializationError,
  SessionStoreUnavailableError,
  SessionTooLargeError,
  SessionValidationError,
} from './sessions.errors.js';
import { schemaIssue, type StandardSchemaV1 } from './schema.js';
import type { SessionsService } from './sessions.service.js';
import type { IssuedToken, LoadedSession, SessionStoreContext, SessionTimes, UserSessionEntry } from './stores/session-store.js';
import type { LegacyLookup } from './migration/express-session.js';
import type { SessionEvent } from './sessions.options.js';

/** @internal A request as the module sees it: it may carry a handle (and, on Fastify, Node's request). */
export type RequestWithHandle = object & { [SESSION_HANDLE]?: SessionHandle; raw?: RequestWithHandle };

/**
 * @internal The handle a request carries, if something loaded its session. On Fastify, a middleware
 * sees Node's request (`request.raw`), so a handle it created is found there.
 */
export function handleOfRequest(req: object): SessionHandle | undefined {
  const r = req as RequestWithHandle;
  return r[SESSION_HANDLE] ?? r.raw?.[SESSION_HANDLE];
}

/** What the handle needs of Node's response. */
type RawResponse = { closed?: boolean; once?: (event: 'finish' | 'close', listener: () => void) => unknown };

/** @internal `Controller.method` of a context, for messages. */
export function handlerName(context: ExecutionContext): string {
  return `${context.getClass().name}.${context.getHandler().name}`;
}

/** How much of a `User-Agent` an index entry keeps. */
const MAX_USER_AGENT = 512;
/** An IPv6 address with a zone fits in this. */
const MAX_IP = 64;

/**
 * What one save step did for the client: send a token (`refreshed`: with new times, so a cookie's
 * Max-Age moves even when the token is the same), expire the cookie, or neither.
 */
type Outcome = { issued: IssuedToken; refreshed: boolean } | { expire: true } | undefined;

/**
 * @internal One request's session: loads it once, saves it at most once per change. It lives on the
 * request (under SESSION_HANDLE), so whatever loads the session first (a middleware, a guard, the
 * interceptor) creates it, and the interceptor that saves finds it there.
 */
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
  /** The sessions interceptor took the handle over: it saves the session after the chain. */
  #adopted = false;
  /** Whether a listener waits for the response's end, to report changes nothing saved. */
  #watching = false;
  /** A save failed: the request answered with that error, so unsaved changes are no news. */
  #failed = false;
  /** The load found the session past its time (by the store, or by the timeouts). */
  #expiredOnLoad = false;
  /** The anti-forgery checks refused the request: what it changed is not to be saved, nor warned about. */
  #refused = false;

  constructor(
    readonly service: SessionsService,
    private req: object,
    private res: object,
  ) {}

  /**
   * Points the handle at the request and response the route sees. A Fastify middleware gets Node's own
   * objects (`request.raw`, `reply.raw`); the cookie is set through Fastify's reply.
   */
  bind(req: object, res: object): void {
    this.req = req;
    this.res = res;
  }

  /** The sessions interceptor takes over: it saves after the chain it runs. */
  adopt(context: ExecutionContext): void {
    this.context = context;
    this.#adopted = true;
    this.watch();
  }

  /**
   * When the response has gone out, reports changes that nothing saved: made after the interceptor's
   * last save (an interceptor outside it), or on a handle the interceptor never took over (loaded after
   * it let the request by, or by a guard that then refused the request). One listener per request whose
   * session something loaded; none on any other.
   */
  watch(): void {
    if (this.#watching) return;
    const raw = this.#rawResponse();
    if (typeof raw.once !== 'function') return;
    this.#watching = true;
    raw.once('finish', () => {
      if (this.#ended || this.#failed || this.#refused || !this.session?.isModified) return;
      const context = this.context;
      const where = context ? handlerName(context) : this.#route();
      this.service.warnNeverSaved(where, this.#adopted);
    });
  }

  /** @internal Runs `done` once the response has closed (sent, or its connection gone); at once if it has, or cannot tell. */
  whenClosed(done: () => void): void {
    const raw = this.#rawResponse();
    if (raw.closed === false && typeof raw.once === 'function') raw.once('close', done);
    else done();
  }

  /** Node's response under the platform's (Fastify's reply keeps it as `raw`). */
  #rawResponse(): RawResponse {
    return ((this.res as { raw?: unknown }).raw ?? this.res) as RawResponse;
  }

  /** Whether this request logged its debug line: what a client sends is worth one line at most. */
  #loggedDebug = false;

  /** Logs at debug level, once per request: the first thing that went wrong says why. */
  #debug(message: string): void {
    if (this.#loggedDebug) return;
    this.#loggedDebug = true;
    this.service.logger.debug?.(message);
  }

  /** The store's context for this request's load, whose debug lines count towards the request's one line. */
  #quietContext(ctx: SessionStoreContext): SessionStoreContext {
    const logger = ctx.logger;
    return {
      ...ctx,
      logger: {
        log: (message: unknown, ...rest: unknown[]) => logger.log(message, ...rest),
        error: (message: unknown, ...rest: unknown[]) => logger.error(message, ...rest),
        warn: (message: unknown, ...rest: unknown[]) => logger.warn(message, ...rest),
        debug: (message: unknown) => this.#debug(String(message)),
      },
      expired: (id) => {
        this.#expiredOnLoad = true;
        this.#emit('expired', id);
      },
    };
  }

  /** `GET /path` of the request, for a log line where no handler is known. */
  #route(): string {
    const { method, url } = this.req as { method?: string; url?: string };
    return `${method ?? 'a request'} ${(url ?? '').split('?')[0]}`.trim();
  }

  /**
   * The session for one caller that wants it (the interceptor for its handler, a guard, a middleware),
   * after the anti-forgery checks: a request refused by its headers, or for want of a required token,
   * is refused before the store is read; a token that does not match the session, once it is read.
   */
  async loadFor(context: ExecutionContext | undefined, schema?: StandardSchemaV1): Promise<TrackedSession> {
    this.#assertNotForged(context, false);
    const session = await this.load();
    this.#assertNotForged(context, true);
    if (schema) await this.#checkSchema(schema, session);
    return session;
  }

  /** The schemas this request's session answers to (the module's, and each `@Session(schema)` that ran), with their check. */
  #schemas: Map<StandardSchemaV1, Promise<void>> | undefined;

  /**
   * Checks the session's data against `schema`, once per schema per request (callers that come while the
   * check runs wait for it). Stored data that does not match ends the session: the request goes on with a
   * fresh, empty one (a new ID once something is set), and a rollback does not bring the data back.
   */
  #checkSchema(schema: StandardSchemaV1, session: TrackedSession): Promise<void> {
    const schemas = (this.#schemas ??= new Map());
    let check = schemas.get(schema);
    if (!check) schemas.set(schema, (check = this.#runSchema(schema, session)));
    return check;
  }

  async #runSchema(schema: StandardSchemaV1, session: TrackedSession): Promise<void> {
    if (session.size === 0) return; // nothing stored to check; the save checks what gets set
    let issue: string | undefined;
    try {
      issue = await schemaIssue(schema, session._visibleData());
    } catch (err) {
      // The schema's own failure, not the data's: the session is kept, unchecked, and the log says so.
      this.service.logger.error(
        `The session schema threw while checking a stored session, which was kept: ${(err as Error).message ?? String(err)}`,
      );
      return;
    }
    if (issue === undefined) return;
    this.#debug(`Session data refused by its schema (${this.#route()}): ${issue}; the request starts a fresh session`);
    session._refuseStored();
  }

  load(): Promise<TrackedSession> {
    return (this.#loading ??= this.#unavailableAs503(this.#load()));
  }

  async #load(): Promise<TrackedSession> {
    const { transport, calls: store, storeContext, config, telemetry } = this.service;
    const token = transport.read(this.req);
    let loaded: LoadedSession | undefined;
    if (token !== undefined) {
      this.#token = token;
      loaded = await store.load(token, this.#quietContext(storeContext));
      if (loaded && !isLive(loaded.times, timingFor(config, lifetimeOf(loaded.data)), Date.now())) {
        this.#emit('expired', loaded.id);
        this.#debug('Session token refused: the session is past its idle or absolute timeout');
        loaded = undefined;
        this.#expiredOnLoad = true;
      }
    }
    if (telemetry) {
      telemetry.loaded(token === undefined ? 'none' : loaded ? 'opened' : 'refused');
      if (token !== undefined && !loaded) telemetry.tokenRefused(this.#expiredOnLoad ? 'expired' : 'unknown');
    }
    this.#loaded = loaded;
    this.#indexedUser = userOf(loaded?.data);
    // Switching from express-session: its cookie, when ours did not open, brings its old session along;
    // beside a session of ours that opened, it is only ended, so that it cannot come back after a logout.
    let data = loaded?.data;
    const { migration } = config;
    if (migration?.carries(this.service.io, this.req)) {
      if (loaded) {
        const id = migration.signedId(this.service.io, this.req);
        if (id !== undefined) this.#legacy = { id, data: undefined };
      } else {
        const legacy = await migration.lookup(this.service.io, this.req);
        if (legacy) {
          this.#legacy = legacy;
          if (legacy.id === undefined) this.#debug(`express-session cookie refused: ${legacy.why}`);
          else if (legacy.data === undefined) this.#debug('express-session cookie refused: its session has expired');
          else data = legacy.data;
        }
      }
    }
    const session = new TrackedSession(data, loaded?.id, { save: () => this.save(), csrfSecretOf: this.service.csrfSecretOf });
    // The token is judged against the session as loaded, before any caller can change it: its stored
    // secret, or else the one its ID gives under each of the keyring's secrets. A request that changes no
    // state is never judged, so nothing is derived for it. The judgement itself waits for the first
    // caller that needs it, so that a body parsed after an early load (a middleware's) is seen.
    if (config.csrf?.requireToken) {
      const stored = session._csrfSecret();
      const id = loaded?.id;
      const { keyring } = config;
      this.#tokenSecrets = () =>
        stored !== undefined ? [stored] : id !== undefined ? keyring.keys.map((key) => derivedCsrfSecret(key.csrfKey, id)) : undefined;
    }
    // After the token's secrets are taken: a refusal drops the stored secret with the data.
    if (config.schema) await this.#checkSchema(config.schema, session);
    return (this.session = session);
  }

  /** The user whose index lists the stored session (`#loaded`), as of the last save. */
  #indexedUser: string | undefined;

  /** With `requireToken`: the secrets the token is judged against, as loaded (derived only when judged). */
  #tokenSecrets: (() => readonly string[] | undefined) | undefined;

  /** express-session's cookie came with the request: its session is stored anew, then its record deleted and the cookie expired. */
  #legacy: LegacyLookup | undefined;

  /** Why this request is refused by its headers (worked out once), or null when it is not. */
  #crossSite: string | null | undefined;
  /** With `requireToken`: why the request's token is refused, or null when it is accepted; known once the session is loaded. */
  #tokenVerdict: string | null | undefined;

  /**
   * A state-changing request that a browser says comes from another site or origin gets a 403 before
   * the session is read: a page elsewhere must not act with the user's session (see csrf.ts). With
   * `requireToken`, so does one without the session's token (before the read) or with a wrong one
   * (after it). Checked for every caller that wants the session (each GraphQL resolver, each guard),
   * so that one caller's `@SkipCsrf()` lets only that caller through, also once the session is loaded.
   */
  #assertNotForged(context: ExecutionContext | undefined, loaded: boolean): void {
    const csrf = this.service.config.csrf;
    if (!csrf) return;
    let reason = (this.#crossSite ??= this.#crossSiteReason(csrf.trustedOrigins) ?? null);
    let what = 'Cross-site request refused';
    if (reason === null && csrf.requireToken) {
      reason = loaded ? this.#judgedToken() : (this.#tokenReason(null) ?? null);
      what = 'Request refused';
    }
    if (reason === null) return;
    if (context && (Reflect.getMetadata(SKIP_CSRF, context.getHandler()) || Reflect.getMetadata(SKIP_CSRF, context.getClass()))) return;
    this.#debug(`${what} (${this.#route()}): ${reason}`);
    // Once per request, whichever of its callers (guards, resolvers) was refused first.
    if (!this.#refused) this.service.telemetry?.csrf(what === 'Request refused' ? 'token' : 'cross-site');
    this.#refused = true;
    throw new ForbiddenException(`${what}: ${reason}`);
  }

  /** Why the token is refused (null: accepted, or not judged), worked out once, against the secrets as loaded. */
  #judgedToken(): string | null {
    // The method as it is now: a middleware may have changed it (method-override) after the load.
    if (!changesState(this.#method())) return null;
    if (this.#tokenVerdict === undefined) {
      const secrets = this.#tokenSecrets;
      this.#tokenVerdict = secrets ? (this.#tokenReason(secrets()) ?? null) : null;
    }
    return this.#tokenVerdict;
  }

  /** Whether the sessions interceptor has taken the handle over (it saves after the chain). */
  get adopted(): boolean {
    return this.#adopted;
  }

  /** A request whose method cannot be told is treated as one that changes state. */
  #method(): string {
    return (this.req as { method?: string }).method ?? 'POST';
  }

  #crossSiteReason(trustedOrigins: ReadonlySet<string>): string | undefined {
    const method = this.#method();
    if (!changesState(method)) return undefined;
    const { io } = this.service;
    const req = this.req as { host?: unknown };
    return crossSiteRefusal(
      {
        method,
        secFetchSite: io.requestHeader(req, 'sec-fetch-site'),
        origin: io.requestHeader(req, 'origin'),
        // Worked out only when the check gets that far: an Origin without Sec-Fetch-Site.
        ownOrigin: () => {
          const host = typeof req.host === 'string' && req.host ? req.host : io.requestHeader(req, 'host');
          const own = `${io.isHttps(req) ? 'https' : 'http'}://${host ?? ''}`;
          return normalizeOrigin(own) ?? own;
        },
      },
      trustedOrigins,
    );
  }

  /** The token check against the session's secrets (null: not loaded yet, so only a missing token is judged). */
  #tokenReason(secret: readonly string[] | undefined | null): string | undefined {
    const csrf = this.service.config.csrf!;
    return tokenRefusal(this.#method(), this.#presentedToken(csrf.tokenHeader, csrf.tokenField), secret, csrf);
  }

  /** The token the request carries: in the header, or else in the parsed body's field. */
  #presentedToken(header: string, field: string): string | undefined {
    const fromHeader = this.service.io.requestHeader(this.req, header);
    if (fromHeader !== undefined) return fromHeader;
    const body = (this.req as { body?: unknown }).body;
    if (typeof body !== 'object' || body === null || !Object.hasOwn(body, field)) return undefined;
    const value = (body as Record<string, unknown>)[field];
    return typeof value === 'string' ? value : undefined;
  }

  /**
   * Drops the changes made since the last save: the handler failed with an error that is not the
   * client's. Later changes (another GraphQL resolver of the same request) are saved as usual.
   */
  discard(): void {
    this.session?._rollback();
  }

  /** Saves not finished yet. */
  #unfinishedSaves = 0;

  /**
   * Whether a save now would do anything: something changed, a bad token's cookie is to be expired, or
   * an unchanged session is due for a refresh. False lets a read go on without waiting for a save.
   */
  needsSave(): boolean {
    if (this.#unfinishedSaves > 0) return true;
    const session = this.session;
    if (!session) return false;
    if (session.isModified) return true;
    if (this.#legacy) return !this.service.io.headersSent(this.res);
    if (this.#ended) return false;
    const loaded = this.#loaded;
    if (!loaded) return this.#token !== undefined && !this.service.io.headersSent(this.res);
    return (
      (loaded.reissue === true || this.#touchRequested || isTouchDue(loaded.times, this.#timing(session), Date.now())) &&
      !this.service.io.headersSent(this.res)
    );
  }

  /** The expiry is to move at the next save, whatever `touchAfter` says (express-session's `touch()`). */
  #touchRequested = false;

  /** @internal Moves the session's expiry at the next save (express-session's `req.session.touch()`). */
  requestTouch(): void {
    this.#touchRequested = true;
  }

  /** @internal When the stored session expires (ms since the epoch); undefined before it is stored. */
  expiresAt(): number | undefined {
    return this.#loaded?.times.expiresAt;
  }

  /** Saves what changed, if anything; calls are queued so that two saves never overlap. */
  save(): Promise<void> {
    return this.needsSave() ? this.queueSave() : Promise.resolve();
  }

  /** A save after the ones queued before it, for a caller that has asked needsSave() already. */
  queueSave(): Promise<void> {
    this.#unfinishedSaves++;
    const counted = this.service.enter(true); // a shutdown waits for it
    const next = this.#saving.then(() => this.#unavailableAs503(this.#saveTold()));
    this.#saving = next.then(
      () => {
        this.#unfinishedSaves--;
        this.service.leave(counted, true);
      },
      () => {
        this.#unfinishedSaves--;
        this.#failed = true;
        this.service.leave(counted, true);
      },
    );
    return next;
  }

  async #save(): Promise<void> {
    const session = this.session;
    if (!session) return;
    if (this.#ended) {
      session._committed(undefined); // dropped, like everything this request changes from now on
      return;
    }
    const pending = session._pending();
    const loaded = this.#loaded;
    // What a schema refuses is never written: the save fails, naming the path.
    if (this.#schemas && !pending.destroy && (pending.modified || pending.regenerate)) {
      const data = session._visibleData();
      for (const schema of this.#schemas.keys()) {
        const issue = await schemaIssue(schema, data);
        if (issue !== undefined) throw new SessionValidationError(issue);
      }
    }
    const now = Date.now();
    // Once the response is out, no cookie can be set: nothing that needs a new token is written.
    const sent = this.service.io.headersSent(this.res);
    let outcome: Outcome;
    let touching = false;
    let sending = false;
    const events = this.#saveEvents!;
    // An express-session session carried over as it was, with nothing of this request's own.
    const legacy = this.#legacy;
    const converting = legacy?.id !== undefined && legacy.data !== undefined && !loaded && !pending.modified && !pending.regenerate;
    try {
      if (pending.destroy) outcome = await this.#destroy(loaded);
      else if (pending.regenerate || !loaded) outcome = await this.#create(session, loaded, pending.regenerate, pending.restart, sent, now);
      else if (pending.modified) outcome = await this.#patch(session, loaded, pending.patch, pending.lifetimeChanged, now);
      else if (!sent && (loaded.reissue || this.#touchRequested || isTouchDue(loaded.times, this.#timing(session), now))) {
        touching = true;
        outcome = await this.#touch(session, loaded, now);
      }
      sending = true;
      this.#send(outcome, sent, now);
    } catch (err) {
      if (err instanceof SessionTooLargeError) this.service.telemetry?.tooLarge.add(1);
      if (touching && sending && err instanceof SessionTooLargeError) {
        // A refresh of an unchanged session that no longer fits (a cookie written under a larger limit)
        // is skipped: the client keeps the cookie it has, and the request goes on.
        this.#debug(`A session refresh was not sent: ${err.message}`);
      } else if (converting && (err instanceof SessionTooLargeError || err instanceof SessionSerializationError)) {
        // An old session this store cannot take (too large, or values it cannot keep) cannot be carried
        // over, now or later: it is ended, and the user starts afresh, rather than every request failing on it.
        this.service.logger.warn(`An express-session session was not carried over and has ended: ${err.message}`);
        this.#loaded = undefined;
        events.length = 0; // nothing was created after all
      } else {
        throw err;
      }
    }
    this.#touchRequested = false;
    this.#indexedUser = this.#loaded ? session.userId : undefined;
    if (this.#legacy && !sent) await this.#endLegacy(this.#legacy);
    session._committed(this.#loaded?.id);
    this.#saveEvents = undefined;
    for (const event of events) this.service.emit(event);
  }

  /** One save, whose events are told only if it goes through. */
  async #saveTold(): Promise<void> {
    this.#saveEvents = [];
    try {
      await this.#save();
    } finally {
      this.#saveEvents = undefined;
    }
  }

  /**
   * After the old session's data is stored anew (or the session ended, or there was none): the old
   * record is deleted and the old cookie expired, so that neither opens anything again.
   */
  async #endLegacy(legacy: LegacyLookup): Promise<void> {
    const migration = this.service.config.migration!;
    this.#legacy = undefined;
    if (legacy.id !== undefined) {
      try {
        await migration.end(legacy.id);
      } catch (err) {
        // The new session stands; the old record ends with its own expiry in the old store.
        this.service.logger.warn(
          `The old express-session record could not be deleted; it ends at its own expiry: ${(err as Error).message}`,
        );
      }
    }
    migration.clearCookie(this.service.io, this.res);
    this.service.io.preventSharedCaching(this.res, 'Cookie');
  }

  /** Deleted even when the response is gone: a logout must end the session on the server. */
  async #destroy(loaded: LoadedSession | undefined): Promise<Outcome> {
    if (loaded && (await this.service.calls.destroy(loaded, this.service.storeContext))) this.#emit('destroyed', loaded.id);
    if (loaded) await this.#unindex(this.#indexedUser, loaded.id);
    this.#loaded = undefined;
    return this.#token !== undefined ? { expire: true } : undefined;
  }

  /** A new session, or a new ID for the current one (regenerate, or a new session after destroy()). */
  async #create(
    session: TrackedSession,
    loaded: LoadedSession | undefined,
    regenerate: boolean,
    restart: boolean,
    sent: boolean,
    now: number,
  ): Promise<Outcome> {
    const { calls: store, storeContext: ctx, config } = this.service;
    const data = session._data();
    if (!regenerate && Object.keys(data).length === 0) {
      // Nothing to keep: a token that did not open is expired, so the client stops sending it.
      return this.#token !== undefined && !sent ? { expire: true } : undefined;
    }
    if (sent) {
      this.service.warnHeadersSent(this.#where(), 'the new session was not stored; the previous one, if any, is unchanged');
      return undefined;
    }
    // Keep the creation time across regenerate: a new ID does not extend the absolute timeout.
    const createdAt = loaded && !restart ? loaded.times.createdAt : now;
    const times = refreshedTimes(timingFor(config, session.maxAge), now, createdAt);
    // The new record first: if creating it fails, the old session is still there (a 503, not a logout).
    const created = await store.create(data, times, ctx);
    const fresh: LoadedSession = { id: created.id, data: {}, times };
    const user = session.userId;
    if (user !== undefined && store.users) {
      // Listed before its token goes out: a session that "log out everywhere" could miss never reaches a client.
      try {
        await store.users.add(user, this.#entry(created.id, times), ctx);
      } catch (err) {
        await store.destroy(fresh, ctx).catch(() => undefined); // its token was never sent: nothing can open it
        throw err;
      }
    }
    const ended = loaded ? await store.destroy(loaded, ctx) : false;
    if (loaded) await this.#unindex(this.#indexedUser, loaded.id);
    if (loaded && !ended && !restart) {
      // A logout won the race: it stays a logout, and the new record goes too.
      await store.destroy(fresh, ctx);
      await this.#unindex(user, fresh.id);
      this.#gone();
      return undefined;
    }
    this.#loaded = fresh;
    if (loaded && !restart) this.#emit('regenerated', created.id, loaded.id);
    else {
      if (ended) this.#emit('destroyed', loaded!.id);
      this.#emit('created', created.id);
    }
    return { issued: created, refreshed: true };
  }

  /** Events of the save under way: told once its cookie is set, dropped if it fails. */
  #saveEvents: SessionEvent[] | undefined;

  /**
   * An event for the `onEvent` listener; nothing is built when there is none. During a save it waits
   * until the save has gone through (a session too large for its cookie was never created).
   */
  #emit(type: 'created' | 'regenerated' | 'destroyed' | 'expired', id: string, previousId?: string): void {
    if (!this.service.config.onEvent && !this.service.telemetry) return;
    const at = Date.now();
    const req = this.req;
    const event: SessionEvent = type === 'regenerated' ? { type, id, previousId: previousId!, at, req } : { type, id, at, req };
    if (this.#saveEvents) this.#saveEvents.push(event);
    else this.service.emit(event);
  }

  /** What changed, applied to the stored session; nothing if the session ended meanwhile. */
  async #patch(
    session: TrackedSession,
    loaded: LoadedSession,
    patch: SessionPatch,
    lifetimeChanged: boolean,
    now: number,
  ): Promise<Outcome> {
    const timing = this.#timing(session);
    // The expiry moves at most once per touchAfter (see isRefreshDue), or when the lifetime changed;
    // otherwise the times stay as stored.
    const refresh = lifetimeChanged || this.#touchRequested || isRefreshDue(loaded.times, timing, now);
    const times = refresh ? refreshedTimes(timing, now, loaded.times.createdAt) : loaded.times;
    // The user is the one it was loaded with: a change of user is a new ID (setUser regenerates).
    const user = session.userId;
    if (user !== undefined && refresh) await this.#index(user, loaded.id, times);
    const issued = await this.service.calls.update(loaded, patch, session._data(), times, this.service.storeContext);
    if (!issued) await this.#unindex(user, loaded.id);
    return this.#refreshed(loaded, times, issued, refresh);
  }

  /** An unchanged session due for a refresh (rolling expiry) or a re-signing with the newest secret. */
  async #touch(session: TrackedSession, loaded: LoadedSession, now: number): Promise<Outcome> {
    const times = refreshedTimes(this.#timing(session), now, loaded.times.createdAt);
    const user = session.userId;
    if (user !== undefined) await this.#index(user, loaded.id, times);
    const issued = await this.service.calls.touch(loaded, session._data(), times, this.service.storeContext);
    if (!issued) await this.#unindex(user, loaded.id);
    return this.#refreshed(loaded, times, issued, true);
  }

  /**
   * Lists session `id` as the user's with its new times, before the session's own write: the entry never
   * ends before the session does, so "log out everywhere" finds every session that can still open.
   */
  async #index(user: string, id: string, times: SessionTimes): Promise<void> {
    const { calls: store, storeContext } = this.service;
    await store.users?.add(user, this.#entry(id, times), storeContext);
  }

  /**
   * Takes session `id` off the user's list once it has ended (or changed hands). Only a listing can be
   * left behind if this fails (the session itself is gone), and listings check that their sessions live.
   */
  async #unindex(user: string | undefined, id: string): Promise<void> {
    const { calls: store, storeContext } = this.service;
    if (user === undefined || !store.users) return;
    try {
      await store.users.remove(user, id, storeContext);
    } catch (err) {
      this.service.logger.warn(`A session's entry in its user's list could not be removed: ${(err as Error).message}`);
    }
  }

  /** The index entry of session `id`: its times, and the request's user agent and address if the module keeps them. */
  #entry(id: string, times: SessionTimes): UserSessionEntry {
    const info = this.service.config.userSessionInfo;
    const entry: { -readonly [K in keyof UserSessionEntry]: UserSessionEntry[K] } = {
      id,
      createdAt: times.createdAt,
      lastSeenAt: times.refreshedAt,
      expiresAt: times.expiresAt,
    };
    if (info?.userAgent) {
      const agent = this.service.io.requestHeader(this.req, 'user-agent');
      if (agent !== undefined) entry.userAgent = agent.slice(0, MAX_USER_AGENT);
    }
    if (info?.ip) {
      const r = this.req as { ip?: unknown; socket?: { remoteAddress?: unknown } };
      const ip = typeof r.ip === 'string' ? r.ip : r.socket?.remoteAddress;
      if (typeof ip === 'string' && ip) entry.ip = ip.slice(0, MAX_IP);
    }
    return entry;
  }

  #refreshed(loaded: LoadedSession, times: SessionTimes, issued: IssuedToken | undefined, refreshed: boolean): Outcome {
    if (!issued) {
      this.#gone();
      return undefined;
    }
    this.#loaded = { ...loaded, times, reissue: false };
    return { issued, refreshed };
  }

  /** The module's timing, with the session's own lifetime if `setMaxAge()` gave it one. */
  #timing(session: TrackedSession) {
    return timingFor(this.service.config, session.maxAge);
  }

  /** Tells the client: a new or refreshed token, an expired cookie, or (once the response is out) a warning. */
  #send(outcome: Outcome, sent: boolean, now: number): void {
    if (!outcome) return;
    const { transport } = this.service;
    if ('expire' in outcome) {
      if (!sent) {
        transport.clear(this.req, this.res, this.#written);
        this.#token = undefined;
      } else {
        this.service.warnHeadersSent(this.#where(), 'the session cookie could not be updated (the store was written where possible)');
      }
      return;
    }
    const { issued, refreshed } = outcome;
    const { token } = issued;
    if (sent) {
      // Server-side stores keep the token on a save: then nothing was lost. A new token was.
      if (token !== this.#token) {
        this.service.warnHeadersSent(this.#where(), 'the session cookie could not be updated (the store was written where possible)');
      }
    } else if (token !== this.#token || (refreshed && transport.resendUnchanged)) {
      // May throw (SessionTooLargeError) before any header is appended: the client keeps its old cookie.
      const cookies = transport.write(this.req, this.res, token, secondsLeft(this.#loaded!.times, now), this.#written);
      this.#written = Math.max(this.#written, cookies);
      this.#token = token;
    }
  }

  #where(): string {
    const context = this.context;
    return context ? handlerName(context) : 'a handler';
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
    this.#debug('The session ended while this request was running; its changes were dropped');
    this.#loaded = undefined;
    this.#ended = true;
  }
}
