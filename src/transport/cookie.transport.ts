import { createHash } from 'node:crypto';
import { parse, type SerializeOptions } from 'cookie';
import { SessionTooLargeError } from '../sessions.errors.js';
import type { SessionsConfig } from '../sessions.options.js';
import { cookieHeader, type HttpIo } from './http.js';
import type { SessionTransport } from './session-transport.js';

const identity = (value: string): string => value;

/** Browsers drop a cookie whose name, value and attributes add up to more than this, without a word. */
export const COOKIE_LIMIT = 4096;
/** Marks a chunked token: `~<count>~<tag>~<first part>`. Tokens never start with it (base64url and "."). */
const CHUNKED = '~';
const TAG_LENGTH = 8;

/**
 * The token in a cookie, split into numbered chunks when it does not fit in one.
 *
 * Chunk naming, for a cookie named `session` split in three:
 *
 *   session=~3~<tag>~<part 0>   session.1=<part 1>   session.2=<part 2>
 *
 * `<tag>` is 8 characters of the SHA-256 of the whole token, so chunks from two different responses are
 * never put together. A token is read back only when every chunk is present and the tag matches;
 * otherwise the request is treated as carrying a bad token. Chunks a smaller session no longer needs are
 * expired in the same response.
 *
 * Tokens are base64url text, so values are neither percent-encoded nor decoded. When the `Cookie` header
 * holds the name more than once, the first one counts (browsers send the most specific path first).
 */
export class CookieTransport implements SessionTransport {
  readonly tokenName: string;
  /** A cookie's Max-Age must follow every refresh of the session's times, even when the token is the same. */
  readonly resendUnchanged = true;
  readonly #attributes: SerializeOptions;
  readonly #secure: boolean | 'auto';
  readonly #maxChunks: number;
  /** `name=` as it appears in a Cookie header, to skip parsing headers that cannot hold the cookie. */
  readonly #needle: string;
  /** A token of this many characters or more cannot be real; refused unread. */
  readonly #maxToken: number;
  /** Room left for a chunk's value, by chunk, Max-Age and Secure: the same few on every save. */
  readonly #rooms = new Map<string, number>();

  /** Bytes the token's cookies may take in a request's Cookie header; undefined: only maxChunks limits. */
  readonly #maxBytes: number | undefined;

  constructor(
    private readonly io: HttpIo,
    cookie: SessionsConfig['cookie'],
    maxChunks = 1,
    maxBytes?: number,
  ) {
    this.#maxBytes = maxBytes;
    this.tokenName = cookie.name;
    this.#needle = `${cookie.name}=`;
    this.#secure = cookie.secure;
    this.#maxChunks = maxChunks;
    this.#maxToken = maxChunks * COOKIE_LIMIT;
    this.#attributes = {
      path: cookie.path,
      domain: cookie.domain,
      sameSite: cookie.sameSite,
      httpOnly: cookie.httpOnly,
    };
  }

  read(req: unknown): string | undefined {
    const header = this.io.requestHeader(req, 'cookie');
    if (!header || !header.includes(this.#needle)) return undefined;
    const cookies = parse(header, { decode: identity });
    const main = cookies[this.tokenName];
    if (!main) return undefined;
    if (!main.startsWith(CHUNKED)) return main;
    return this.#assemble(main, cookies) ?? '';
  }

  write(req: unknown, res: unknown, token: string, maxAge: number, written = 0): number {
    const secure = this.#isSecure(req);
    const values = this.#split(token, maxAge, secure);
    // Everything is checked before the first header is set: a refused token leaves the response clean.
    values.forEach((value, i) => this.io.setCookie(res, this.#chunkName(i), value, this.#options(maxAge, secure)));
    for (const name of this.#staleChunks(req, values.length, written)) this.io.setCookie(res, name, '', this.#options(0, secure));
    this.io.preventSharedCaching(res, 'Cookie');
    return values.length;
  }

  clear(req: unknown, res: unknown, written = 0): void {
    const secure = this.#isSecure(req);
    this.io.setCookie(res, this.tokenName, '', this.#options(0, secure));
    for (const name of this.#staleChunks(req, 1, written)) this.io.setCookie(res, name, '', this.#options(0, secure));
    this.io.preventSharedCaching(res, 'Cookie');
  }

  /** Chunk cookies from `keep` on that the client has (from its request, or set earlier in this response). */
  #staleChunks(req: unknown, keep: number, written: number): string[] {
    const names = new Set(this.#chunkNamesIn(req).filter((name) => Number(name.slice(this.tokenName.length + 1)) >= keep));
    for (let i = keep; i < written; i++) names.add(this.#chunkName(i));
    return [...names];
  }

  #isSecure(req: unknown): boolean {
    return this.#secure === 'auto' ? this.io.isHttps(req) : this.#secure;
  }

  #chunkName(index: number): string {
    return index === 0 ? this.tokenName : `${this.tokenName}.${index}`;
  }

  /** Cookie attributes by Max-Age and Secure: the same few on every save. */
  readonly #optionsBy = new Map<string, Readonly<SerializeOptions>>();

  #options(maxAge: number, secure: boolean): Readonly<SerializeOptions> {
    const key = `${maxAge} ${secure}`;
    let options = this.#optionsBy.get(key);
    if (options === undefined) {
      // Sessions that are not rolling count Max-Age down: keep the memory small.
      if (this.#optionsBy.size >= 64) this.#optionsBy.clear();
      options = Object.freeze({ ...this.#attributes, secure, maxAge, expires: maxAge === 0 ? new Date(0) : undefined });
      this.#optionsBy.set(key, options);
    }
    return options;
  }

  /** The chunk cookies (`name.1`, `name.2`, ...) the request carries, whatever the main cookie says. */
  #chunkNamesIn(req: unknown): string[] {
    const header = this.io.requestHeader(req, 'cookie');
    if (!header || !header.includes(`${this.tokenName}.`)) return [];
    const prefix = `${this.tokenName}.`;
    return Object.keys(parse(header, { decode: identity })).filter(
      (name) => name.startsWith(prefix) && /^[1-9][0-9]?$/.test(name.slice(prefix.length)),
    );
  }

  /** The token from its chunks, or undefined when one is missing, extra, or from another token. */
  #assemble(main: string, cookies: Record<string, string | undefined>): string | undefined {
    const match = /^~([2-9]|1[0-9]|20)~([A-Za-z0-9_-]{8})~(.+)$/.exec(main);
    if (!match) return undefined;
    const count = Number(match[1]);
    if (count > this.#maxChunks) return undefined;
    const parts = [match[3]!];
    let length = parts[0]!.length;
    for (let i = 1; i < count; i++) {
      const part = cookies[this.#chunkName(i)];
      if (!part) return undefined;
      length += part.length;
      if (length > this.#maxToken) return undefined;
      parts.push(part);
    }
    const token = parts.join('');
    return tag(token) === match[2] ? token : undefined;
  }

  /**
   * Cookie values for `token`, within the byte budget if there is one; throws SessionTooLargeError, which
   * says to keep less or move to a server-side store, past it.
   */
  #split(token: string, maxAge: number, secure: boolean): string[] {
    const budget = this.#maxBytes;
    if (budget === undefined) return this.#chunks(token, maxAge, secure);
    // Past the budget whatever the split: refused before chunking, with the limit of the fewest chunks
    // the budget could fill.
    if (token.length > budget) {
      throw this.#overBudget(token, budget, Math.max(1, Math.ceil(budget / this.#room(0, maxAge, secure))));
    }
    const values = this.#chunks(token, maxAge, secure);
    if (this.#sentBytes(values) > budget) throw this.#overBudget(token, budget, values.length);
    return values;
  }

  /** What the browser sends back for these cookie values: `name=value` each, joined by "; ". */
  #sentBytes(values: readonly string[]): number {
    return values.reduce((n, v) => n + v.length, this.#pairsOverhead(values.length));
  }

  /** The `name=` parts and "; " separators of `count` cookies in a Cookie header. */
  #pairsOverhead(count: number): number {
    let bytes = 2 * (count - 1);
    for (let i = 0; i < count; i++) bytes += this.#chunkName(i).length + 1;
    return bytes;
  }

  /** The error for a token over the budget: how much token `count` cookies leave room for. */
  #overBudget(token: string, budget: number, count: number): SessionTooLargeError {
    const limit = budget - this.#pairsOverhead(count) - (count > 1 ? markerLength(count) : 0);
    return new SessionTooLargeError(token.length, limit, `the cookie store's ${budget}-byte budget for a session's cookies in a request`);
  }

  /** Cookie values for `token`: itself if it fits, else chunks; throws SessionTooLargeError past maxChunks. */
  #chunks(token: string, maxAge: number, secure: boolean): string[] {
    const room = (index: number) => this.#room(index, maxAge, secure);
    if (token.length <= room(0)) return [token];
    let capacity = room(0);
    for (let count = 2; count <= this.#maxChunks; count++) {
      capacity += room(count - 1);
      const prefixLength = markerLength(count);
      if (token.length > capacity - prefixLength) continue;
      const values: string[] = [];
      let offset = room(0) - prefixLength;
      values.push(`${CHUNKED}${count}${CHUNKED}${tag(token)}${CHUNKED}${token.slice(0, offset)}`);
      for (let i = 1; i < count; i++) {
        const size = room(i);
        values.push(token.slice(offset, offset + size));
        offset += size;
      }
      return values;
    }
    const limit = this.#maxChunks === 1 ? room(0) : capacity - markerLength(this.#maxChunks);
    const carriers = `${this.#maxChunks} cookie${this.#maxChunks === 1 ? '' : 's'} of ${COOKIE_LIMIT} bytes (with these cookie attributes)`;
    throw new SessionTooLargeError(token.length, limit, carriers);
  }

  /** What a chunk's value may take up of COOKIE_LIMIT, its name and attributes counted (remembered). */
  #room(index: number, maxAge: number, secure: boolean): number {
    const key = `${index} ${maxAge} ${secure}`;
    let room = this.#rooms.get(key);
    if (room === undefined) {
      // Sessions that are not rolling count Max-Age down: keep the memory small.
      if (this.#rooms.size >= 64) this.#rooms.clear();
      room = COOKIE_LIMIT - cookieHeader(this.#chunkName(index), '', this.#options(maxAge, secure)).length;
      this.#rooms.set(key, room);
    }
    return room;
  }
}

/** Length of the marker a chunked token's first cookie starts with: `~<count>~<tag>~`. */
function markerLength(count: number): number {
  return `${CHUNKED}${count}${CHUNKED}${CHUNKED}`.length + TAG_LENGTH;
}

function tag(token: string): string {
  return createHash('sha256').update(token).digest('base64url').slice(0, TAG_LENGTH);
}
