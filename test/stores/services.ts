import net from 'node:net';

/** Whether something accepts TCP connections at 127.0.0.1:port. */
export function reachable(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * The store suites run against real servers. Without one, they skip with a loud message, unless CI is
 * set: there they must run, so a missing server fails the run.
 */
export async function requireServer(name: string, port: number): Promise<boolean> {
  if (await reachable(port)) return true;
  const message = `${name} is not reachable at 127.0.0.1:${port}`;
  if (process.env.CI) throw new Error(`${message}, and CI is set: the ${name} store tests must run. Start ${name} (.ci/run does).`);
  console.warn(
    `\n${'!'.repeat(78)}\n!! SKIPPING the ${name} store tests: ${message}.\n!! Start ${name} to run them; under CI=true they fail instead.\n${'!'.repeat(78)}\n`,
  );
  return false;
}

export const REDIS_PORT = 6379;
export const PG_PORT = 5432;
/** A prefix no other test run uses, so parallel runs and leftovers never meet. */
export const runId = `${process.pid}-${Date.now().toString(36)}`;

/**
 * Deletes what this run wrote in the developer's Redis under `test:<runId>:` (SCAN and DEL of that
 * prefix only; nothing else in the database is touched).
 */
export async function deleteRunKeys(port = REDIS_PORT): Promise<number> {
  const { createClient } = await import('redis');
  const client = await createClient({ socket: { host: '127.0.0.1', port } }).connect();
  let deleted = 0;
  try {
    for await (const keys of client.scanIterator({ MATCH: `test:${runId}:*`, COUNT: 500 })) {
      if (keys.length > 0) deleted += await client.del(keys);
    }
  } finally {
    client.destroy();
  }
  return deleted;
}
