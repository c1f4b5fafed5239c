import { SessionTooLargeError } from '../sessions.errors.js';
import type { HttpIo } from './http.js';
import type { SessionTransport } from './session-transport.js';

/** Proxies commonly refuse a single header line longer than 8 KiB. */
export const HEADER_LIMIT = 8192;

/**
 * The token in a request header, for APIs and mobile clients: the client sends it in `name`, and the
 * server sends it back in the same response header when it changes. An empty value in the response means
 * the session ended: the client should drop its token. Cookies are neither read nor written.
 */
export class HeaderTransport implements SessionTransport {
  /** The client keeps the token until told otherwise: an unchanged token is not sent again. */
  readonly resendUnchanged = false;

  constructor(
    private readonly io: HttpIo,
    readonly tokenName: string,
  ) {}

  read(req: unknown): string | undefined {
    const value = this.io.requestHeader(req, this.tokenName)?.trim();
    return value || undefined;
  }

  write(_req: unknown, res: unknown, token: string): number {
    if (token.length > HEADER_LIMIT) throw new SessionTooLargeError(token.length, HEADER_LIMIT, `the ${this.tokenName} header`);
    this.io.setHeader(res, this.tokenName, token);
    this.io.preventSharedCaching(res, this.tokenName);
    return 1;
  }

  clear(_req: unknown, res: unknown): void {
    this.io.setHeader(res, this.tokenName, '');
    this.io.preventSharedCaching(res, this.tokenName);
  }
}
