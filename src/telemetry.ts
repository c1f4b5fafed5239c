import type { Attributes, Counter, SpanOptions, Tracer } from '@opentelemetry/api';
import type { SessionStore, UserSessionIndex } from './stores/session-store.js';

type OpenTelemetryApi = typeof import('@opentelemetry/api');

/** The instrumentation scope every span and counter of the module belongs to. */
const SCOPE = 'nest-sessions';

/**
 * @internal Spans and counters through the OpenTelemetry API, when `@opentelemetry/api` is installed
 * (an optional peer). Without an SDK registered, the API's own no-op tracer and meter answer, and the
 * module never sees the difference. Nothing here is built without the package, or with `telemetry: false`.
 */
export class Telemetry {
  /**
   * The API, if the package can be loaded; undefined otherwise. Its absence is no error (it is an
   * optional peer), unless `telemetry: true` asked for it; any other failure to load it is logged.
   */
  static async load(
    logger: { warn(message: string): unknown },
    asked: boolean,
    importApi: () => Promise<OpenTelemetryApi> = () => import('@opentelemetry/api'),
  ): Promise<Telemetry | undefined> {
    let api: OpenTelemetryApi;
    try {
      api = await importApi();
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      const absent =
        (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((err as Error).message).includes('@opentelemetry/api');
      if (!absent) {
        logger.warn(`Telemetry is off: @opentelemetry/api could not be loaded: ${err instanceof Error ? err.message : String(err)}`);
      } else if (asked) {
        logger.warn('telemetry: true, but @opentelemetry/api is not installed: install it, or leave the option out');
      }
      return undefined;
    }
    return new Telemetry(api);
  }

  readonly #api: OpenTelemetryApi;
  readonly #tracer: Tracer;
  readonly #loads: Counter;
  /** Store writes: `operation` is `create`, `update`, `touch` or `destroy`. */
  readonly saves: Counter;
  /** New sessions stored: `reason` is `new` or `regenerate`. */
  readonly creates: Counter;
  /** Sessions ended: `reason` is `destroy` (a logout) or `revoke` (`destroyUserSessions()`). */
  readonly destroys: Counter;
  /** Sessions found past their time (`expired` events). */
  readonly expired: Counter;
  readonly #refusedTokens: Counter;
  /** Saves refused because the session would not fit (a cookie session past its size limit). */
  readonly tooLarge: Counter;
  /** Requests answered 503 because the store was down or slow. */
  readonly unavailable: Counter;
  readonly #csrfRefused: Counter;

  private constructor(api: OpenTelemetryApi) {
    this.#api = api;
    this.#tracer = api.trace.getTracer(SCOPE);
    const meter = api.metrics.getMeter(SCOPE);
    const counter = (name: string, unit: string, description: string) =>
      meter.createCounter(`nest_sessions.${name}`, { description, unit });
    this.#loads = counter('loads', '{load}', 'Sessions loaded, by outcome (opened, none, refused)');
    this.saves = counter('saves', '{write}', 'Session store writes, by operation (create, update, touch, destroy)');
    this.creates = counter('creates', '{session}', 'Sessions created, by reason (new, regenerate)');
    this.destroys = counter('destroys', '{session}', 'Sessions ended, by reason (destroy, revoke)');
    this.expired = counter('expired', '{session}', 'Sessions found past their expiry or timeouts');
    this.#refusedTokens = counter('tokens.refused', '{token}', 'Session tokens that opened no session, by reason (expired, unknown)');
    this.tooLarge = counter('too_large', '{session}', 'Sessions that did not fit their cookie');
    this.unavailable = counter('unavailable', '{error}', 'Session store failures answered with a 503');
    this.#csrfRefused = counter('csrf.refused', '{request}', 'Requests refused by the anti-forgery checks, by check (cross-site, token)');
  }

  /** A session asked for: `opened` (a session came back), `none` (no token) or `refused` (a token that opened nothing). */
  loaded(outcome: 'opened' | 'none' | 'refused'): void {
    this.#loads.add(1, LOAD[outcome]);
  }

  /**
   * A token that opened no session: `expired` (the session was found past its idle or absolute timeout)
   * or `unknown` (the store had nothing for it: forged, altered, expired there, ended, or of another secret).
   */
  tokenRefused(reason: 'expired' | 'unknown'): void {
    this.#refusedTokens.add(1, TOKEN[reason]);
  }

  /** A request refused by the anti-forgery checks: by its origin (`cross-site`) or for its token (`token`). */
  csrf(check: 'cross-site' | 'token'): void {
    this.#csrfRefused.add(1, CHECK[check]);
  }

  /** Counts a session event as the counter it belongs to. */
  event(type: 'created' | 'regenerated' | 'destroyed' | 'expired' | 'revoked'): void {
    if (type === 'created') this.creates.add(1, NEW);
    else if (type === 'regenerated') this.creates.add(1, REGENERATE);
    else if (type === 'destroyed') this.destroys.add(1, DESTROY);
    else if (type === 'revoked') this.destroys.add(1, REVOKE);
    else this.expired.add(1);
  }

  /** What the spans of a store's calls carry: client spans, with the store's class. */
  spanOptions(attributes: Attributes): SpanOptions {
    return { kind: this.#api.SpanKind.CLIENT, attributes };
  }

  /**
   * Runs a store call in a client span named `name`, the active span while it runs, marked failed when
   * the call fails. A span nothing records (no SDK registered, or not sampled) is not made active: the
   * call runs as it would without telemetry, which is most of what the no-op case costs.
   */
  span<T>(name: string, options: SpanOptions, call: () => Promise<T>): Promise<T> {
    const span = this.#tracer.startSpan(name, options);
    if (!span.isRecording()) return call();
    const { context, trace, SpanStatusCode } = this.#api;
    return context.with(trace.setSpan(context.active(), span), async () => {
      try {
        return await call();
      } catch (err) {
        span.recordException(err instanceof Error ? err : String(err));
        span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
        throw err;
      } finally {
        span.end();
      }
    });
  }
}

// Attribute objects made once: counting allocates nothing.
const LOAD = { opened: { outcome: 'opened' }, none: { outcome: 'none' }, refused: { outcome: 'refused' } };
const TOKEN = { expired: { reason: 'expired' }, unknown: { reason: 'unknown' } };
const CHECK = { 'cross-site': { check: 'cross-site' }, token: { check: 'token' } };
const NEW = { reason: 'new' };
const REGENERATE = { reason: 'regenerate' };
const DESTROY = { reason: 'destroy' };
const REVOKE = { reason: 'revoke' };
const WRITE = {
  create: { operation: 'create' },
  update: { operation: 'update' },
  touch: { operation: 'touch' },
  destroy: { operation: 'destroy' },
};

/**
 * @internal The store, with each call in a span (attributes: the store's class) and each write counted.
 * Only made when telemetry is on; the module calls the store itself otherwise.
 */
export function tracedStore(store: SessionStore, telemetry: Telemetry): SessionStore {
  // Made once: a call allocates no name or options of its own.
  const options = telemetry.spanOptions({ 'nest_sessions.store': store.constructor.name });
  const write = <T>(operation: keyof typeof WRITE, call: () => Promise<T>) =>
    telemetry.span(WRITE_SPAN[operation], options, call).then((result) => {
      telemetry.saves.add(1, WRITE[operation]);
      return result;
    });
  // Read once: the wrapper is made at startup, as the module reads the store's other properties.
  const index = store.users;
  const users: UserSessionIndex | undefined = index && {
    add: (userId, entry, ctx) => telemetry.span(`${SCOPE} index add`, options, () => index.add(userId, entry, ctx)),
    remove: (userId, id, ctx) => telemetry.span(`${SCOPE} index remove`, options, () => index.remove(userId, id, ctx)),
    list: (userId, ctx, listOptions) => telemetry.span(`${SCOPE} index list`, options, () => index.list(userId, ctx, listOptions)),
  };
  return {
    maxChunks: store.maxChunks,
    maxCookieBytes: store.maxCookieBytes,
    users,
    ping: store.ping && ((ctx) => telemetry.span(`${SCOPE} ping`, options, () => store.ping!(ctx))),
    load: (token, ctx) => telemetry.span(LOAD_SPAN, options, () => store.load(token, ctx)),
    create: (data, times, ctx) => write('create', () => store.create(data, times, ctx)),
    update: (loaded, patch, data, times, ctx) => write('update', () => store.update(loaded, patch, data, times, ctx)),
    touch: (loaded, data, times, ctx) => write('touch', () => store.touch(loaded, data, times, ctx)),
    destroy: (loaded, ctx) => write('destroy', () => store.destroy(loaded, ctx)),
  };
}

const LOAD_SPAN = `${SCOPE} load`;
const WRITE_SPAN = { create: `${SCOPE} create`, update: `${SCOPE} update`, touch: `${SCOPE} touch`, destroy: `${SCOPE} destroy` };
