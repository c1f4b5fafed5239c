import { parse, serialize, type SerializeOptions } from 'cookie';
import type { SessionsConfig } from '../sessions.options.js';
import type { HttpIo } from './http.js';
import type { SessionTransport } from './session-transport.js';

const identity = (value: string): string => value;

/**
 * The token in a cookie. Tokens are base64url text, so values are neither percent-encoded nor decoded.
 * When the `Cookie` header holds the name more than once, the first one counts, as with every server
 * using the `cookie` package; browsers send the cookie with the most specific path first.
 */
export class CookieTransport implements SessionTransport {
  readonly tokenName: string;
  readonly #attributes: SerializeOptions;
  readonly #secure: boolean | 'auto';
  /** `name=` as it appears in a Cookie header, to skip parsing headers that cannot hold the cookie. */
  readonly #needle: string;

  constructor(
    private readonly io: HttpIo,
    cookie: SessionsConfig['cookie'],
  ) {
    this.tokenName = cookie.name;
    this.#needle = `${cookie.name}=`;
    this.#secure = cookie.secure;
    this.#attributes = {
      path: cookie.path,
      domain: cookie.domain,
      sameSite: cookie.sameSite,
      httpOnly: cookie.httpOnly,
      encode: identity,
    };
  }

  read(req: unknown): string | undefined {
    const header = this.io.requestHeader(req, 'cookie');
    if (!header || !header.includes(this.#needle)) return undefined;
    return parse(header, { decode: identity })[this.tokenName] || undefined;
  }

  write(req: unknown, res: unknown, token: string, maxAge: number): void {
    this.#send(req, res, token, maxAge);
  }

  clear(req: unknown, res: unknown): void {
    this.#send(req, res, '', 0);
  }

  #send(req: unknown, res: unknown, value: string, maxAge: number): void {
    const secure = this.#secure === 'auto' ? this.io.isHttps(req) : this.#secure;
    const header = serialize(this.tokenName, value, {
      ...this.#attributes,
      secure,
      maxAge,
      expires: maxAge === 0 ? new Date(0) : undefined,
    });
    this.io.appendHeader(res, 'Set-Cookie', header);
    this.io.preventSharedCaching(res, 'Cookie');
  }
}
