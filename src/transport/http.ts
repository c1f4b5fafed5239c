import type { HttpAdapterHost } from '@nestjs/core';

/**
 * The one place that knows Express from Fastify. Headers go through Nest's HTTP adapter (`appendHeader`,
 * `getHeader`, `setHeader`, `isHeadersSent`), which both platforms implement, so several `Set-Cookie`
 * headers all arrive and nothing is written behind the framework's back.
 */
export class HttpIo {
  constructor(private readonly host: HttpAdapterHost) {}

  private get adapter() {
    const adapter = this.host.httpAdapter;
    if (!adapter) throw new Error('nest-sessions needs an HTTP application (NestFactory.create)');
    return adapter;
  }

  /** One request header as a string (the first, if repeated). */
  requestHeader(req: unknown, name: string): string | undefined {
    const value = (req as { headers?: Record<string, string | string[] | undefined> }).headers?.[name];
    return Array.isArray(value) ? value[0] : value;
  }

  /** True when the request came over HTTPS (Express honours `trust proxy` here; Fastify `trustProxy`). */
  isHttps(req: unknown): boolean {
    const r = req as { protocol?: string; secure?: boolean };
    return r.secure === true || r.protocol === 'https';
  }

  headersSent(res: unknown): boolean {
    const r = res as { headersSent?: boolean; sent?: boolean; raw?: { headersSent?: boolean } };
    return r.headersSent === true || r.sent === true || r.raw?.headersSent === true;
  }

  getHeader(res: unknown, name: string): string | undefined {
    const value: unknown = this.adapter.getHeader?.(res, name);
    if (value === undefined || value === null) return undefined;
    return Array.isArray(value) ? value.join(', ') : String(value);
  }

  setHeader(res: unknown, name: string, value: string): void {
    this.adapter.setHeader(res, name, value);
  }

  appendHeader(res: unknown, name: string, value: string): void {
    this.adapter.appendHeader?.(res, name, value);
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
   * A response that carries a session token must not be kept by a shared cache and handed to someone
   * else: `Cache-Control: no-store`, unless the handler chose its own caching, and `Vary` on what carries it.
   */
  preventSharedCaching(res: unknown, varyOn: string): void {
    if (this.getHeader(res, 'Cache-Control') === undefined) this.setHeader(res, 'Cache-Control', 'no-store');
    this.addVary(res, varyOn);
  }
}
