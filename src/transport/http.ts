import { Logger, type ExecutionContext } from '@nestjs/common';
import type { HttpAdapterHost } from '@nestjs/core';
import { serialize, type SerializeOptions } from 'cookie';

/** The request and response of a context that has them: HTTP, or GraphQL whose context carries `req` and `res`. */
export interface HttpPair {
  req: object;
  res: object;
}

/**
 * The request and response behind an execution context, or undefined where there are none (WebSocket,
 * microservices, GraphQL without `req`/`res` in its context). GraphQL is recognised without importing
 * `@nestjs/graphql`: its resolvers get `(root, args, context, info)`.
 */
export function httpPairOf(context: ExecutionContext): HttpPair | undefined {
  const type = context.getType<string>();
  if (type === 'http') {
    const http = context.switchToHttp();
    return { req: http.getRequest<object>(), res: http.getResponse<object>() };
  }
  if (type === 'graphql') {
    const gql = context.getArgByIndex<{ req?: object; res?: object } | undefined>(2);
    if (gql && typeof gql.req === 'object' && gql.req && typeof gql.res === 'object' && gql.res) return { req: gql.req, res: gql.res };
  }
  return undefined;
}

/**
 * The request behind an execution context (as `httpPairOf`, without building the pair): the hot path of
 * the sessions interceptor on routes that take no session.
 */
export function requestOf(context: ExecutionContext): object | undefined {
  const type = context.getType<string>();
  if (type === 'http') return context.getArgByIndex<object>(0);
  return type === 'graphql' ? httpPairOf(context)?.req : undefined;
}

type Adapter = NonNullable<HttpAdapterHost['httpAdapter']> & {
  setCookie?: (res: unknown, name: string, value: string, options: object) => unknown;
};

/**
 * The one place that knows Express from Fastify. Everything goes through Nest's HTTP adapter
 * (`setCookie` on Nest 12.1 and later, `appendHeader` otherwise, `getHeader`, `setHeader`,
 * `isHeadersSent`), which both platforms implement, so several `Set-Cookie` headers all arrive and
 * nothing is written behind the framework's back.
 */
export class HttpIo {
  constructor(private readonly host: HttpAdapterHost) {}

  private get adapter(): Adapter {
    const adapter = this.host.httpAdapter as Adapter | undefined;
    if (!adapter) throw new Error('nest-sessions needs an HTTP application (NestFactory.create)');
    return adapter;
  }

  /** One request header as a string (the first, if repeated). Express and Fastify both lower-case names. */
  requestHeader(req: unknown, name: string): string | undefined {
    const value = (req as { headers?: Record<string, string | string[] | undefined> }).headers?.[name];
    return Array.isArray(value) ? value[0] : value;
  }

  /** True when the request came over HTTPS (Express honours `trust proxy` here, Fastify `trustProxy`). */
  isHttps(req: unknown): boolean {
    const r = req as { protocol?: string; secure?: boolean; socket?: { encrypted?: boolean } };
    // `protocol` is a getter that reads the proxy headers on both platforms (Express's `secure` reads it
    // again): asked once. Node's own request (a Fastify middleware's) has neither: its socket says.
    const protocol = r.protocol;
    if (typeof protocol === 'string') return protocol === 'https';
    return r.secure === true || r.socket?.encrypted === true;
  }

  headersSent(res: unknown): boolean {
    return this.adapter.isHeadersSent(res) === true;
  }

  getHeader(res: unknown, name: string): string | undefined {
    const value: unknown = this.adapter.getHeader?.(res, name);
    if (value === undefined || value === null) return undefined;
    return Array.isArray(value) ? value.join(', ') : String(value);
  }

  setHeader(res: unknown, name: string, value: string): void {
    this.adapter.setHeader(res, name, value);
  }

  /**
   * Sets a cookie. `value` must be cookie-safe as it is (our tokens are base64url with `~` and `.`), so
   * the adapter's percent-encoding leaves it unchanged and the header is exactly `cookieHeader()` long.
   */
  setCookie(res: unknown, name: string, value: string, options: Readonly<SerializeOptions>): void {
    const adapter = this.adapter;
    if (typeof adapter.setCookie === 'function') {
      adapter.setCookie(res, name, value, options);
    } else {
      adapter.appendHeader?.(res, 'Set-Cookie', cookieHeader(name, value, options));
    }
  }

  /** Adds `token` to the `Vary` header unless it is there already (or `Vary: *`). */
  addVary(res: unknown, token: string): void {
    const vary = this.getHeader(res, 'Vary');
    if (!vary) return this.setHeader(res, 'Vary', token);
    const wanted = token.toLowerCase();
    if (vary.split(',').some((v) => ['*', wanted].includes(v.trim().toLowerCase()))) return;
    this.setHeader(res, 'Vary', `${vary}, ${token}`);
  }

  /**
   * A response that carries a session token must never be kept by a shared cache and handed to someone
   * else: `Cache-Control: no-store` when the handler set none; a policy of the handler's that is already
   * `private` or `no-store` is kept; any other is made `private` (without `public` and `s-maxage`),
   * with a warning. And `Vary` on what carries the token.
   */
  preventSharedCaching(res: unknown, varyOn: string): void {
    const policy = this.getHeader(res, 'Cache-Control');
    if (policy === undefined) {
      this.setHeader(res, 'Cache-Control', 'no-store');
    } else if (!/(^|,)\s*(private|no-store)\s*(,|$)/i.test(policy)) {
      const rest = policy
        .split(',')
        .map((d) => d.trim())
        .filter((d) => d && !/^(public|s-maxage=.*)$/i.test(d));
      const safe = ['private', ...rest].join(', ');
      this.setHeader(res, 'Cache-Control', safe);
      this.#warnPublic(policy, safe);
    }
    this.addVary(res, varyOn);
  }

  readonly #warnedPolicies = new Set<string>();

  #warnPublic(policy: string, safe: string): void {
    if (this.#warnedPolicies.has(policy)) return;
    this.#warnedPolicies.add(policy);
    new Logger('SessionsModule').warn(
      `A response that sets the session token had "Cache-Control: ${policy}"; sent "${safe}" instead, so that no shared cache hands one user's session to another`,
    );
  }
}

/** A `Set-Cookie` value; used for its length, and where the adapter has no `setCookie`. */
export function cookieHeader(name: string, value: string, options: Readonly<SerializeOptions>): string {
  return serialize(name, value, { ...options, encode: (v) => v });
}
