/** How a session token travels between client and server. Knows nothing of what the token means. */
export interface SessionTransport {
  /** The name the token travels under (cookie name, header name). */
  readonly tokenName: string;
  /** Whether a save sends the token again when it did not change (a cookie's Max-Age needs refreshing). */
  readonly resendUnchanged: boolean;
  /** The token the request carries, or undefined. Never throws for bad input. */
  read(req: unknown): string | undefined;
  /**
   * Sends `token`, to be kept for `maxAge` seconds. `written` is how many cookies this response set
   * before (a second save in one response), so their extra chunks are expired too. Returns how many
   * cookies it set.
   */
  write(req: unknown, res: unknown, token: string, maxAge: number, written?: number): number;
  /** Tells the client to drop the token (and any chunks this response set before). */
  clear(req: unknown, res: unknown, written?: number): void;
}
