/** How a session token travels between client and server. Knows nothing of what the token means. */
export interface SessionTransport {
  /** The name the token travels under (cookie name, header name). */
  readonly tokenName: string;
  /** The token the request carries, or undefined. Never throws for bad input. */
  read(req: unknown): string | undefined;
  /** Sends `token`, to be kept for `maxAge` seconds. */
  write(req: unknown, res: unknown, token: string, maxAge: number): void;
  /** Tells the client to drop the token. */
  clear(req: unknown, res: unknown): void;
}
