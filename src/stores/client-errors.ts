import { Logger } from '@nestjs/common';

/**
 * A client with no 'error' listener turns a dropped connection into an uncaught exception that ends the
 * process. When the user attached none, the store attaches one that logs (at most every 10 s): the
 * client reconnects by itself, and requests meanwhile get a 503.
 */
export function listenForErrors(emitter: unknown, name: string): void {
  const e = emitter as { on?: (event: string, fn: (err: Error) => void) => void; listenerCount?: (event: string) => number };
  if (typeof e?.on !== 'function' || typeof e.listenerCount !== 'function' || e.listenerCount('error') > 0) return;
  const logger = new Logger(name);
  let last = 0;
  e.on('error', (err: Error) => {
    const now = Date.now();
    if (now - last < 10_000) return;
    last = now;
    logger.error(`${name}: the client reported an error (it reconnects by itself): ${err?.message ?? String(err)}`);
  });
}
