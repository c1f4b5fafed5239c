/**
 * Load generation with autocannon, in the parent process. Every connection keeps its own session: it
 * starts with a cookie of its own (seeded by a POST /write before the run) and follows every Set-Cookie
 * it is sent, as a browser would.
 */
import autocannon from 'autocannon';
import { createClient } from 'redis';

export type Route = 'read' | 'write' | 'none';

export interface Measured {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  errors: number;
  non2xx: number;
}

/** A browser's cookie jar, just enough of one: name → value; Max-Age=0 or an empty value deletes. */
export class Jar {
  readonly cookies = new Map<string, string>();

  apply(setCookie: string): void {
    const [pair, ...attributes] = setCookie.split(/;\s*/);
    const eq = pair!.indexOf('=');
    const name = pair!.slice(0, eq);
    const value = pair!.slice(eq + 1);
    if (!value || attributes.some((a) => /^max-age=0$/i.test(a))) this.cookies.delete(name);
    else this.cookies.set(name, value);
  }

  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/** Creates one session per connection with POST /write, and returns their jars. */
export async function seedSessions(port: number, count: number, blobBytes = 0, expectCookie = true): Promise<Jar[]> {
  const blob = blobBytes > 0 ? 'x'.repeat(blobBytes) : undefined;
  const jars: Jar[] = [];
  for (let i = 0; i < count; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/write`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: `seed-${i}`, blob }),
    });
    if (res.status >= 300) throw new Error(`seeding a session failed: ${res.status} ${await res.text()}`);
    const jar = new Jar();
    for (const header of res.headers.getSetCookie()) jar.apply(header);
    if (expectCookie && jar.cookies.size === 0) throw new Error('seeding a session set no cookie');
    // Apps without sessions get a cookie of a signed ID's size all the same, so that every scenario's
    // requests are the same size: a route without a session is compared on equal bytes.
    if (!expectCookie) jar.cookies.set('session', `${'a'.repeat(43)}.${'b'.repeat(43)}`);
    jars.push(jar);
  }
  return jars;
}

/** Runs autocannon against one route with one jar per connection. */
export async function load(port: number, route: Route, jars: Jar[], seconds: number): Promise<Measured> {
  const connections = jars.length;
  const method = route === 'write' ? 'POST' : 'GET';
  const body = route === 'write' ? JSON.stringify({ value: 'changed' }) : undefined;
  const base: Record<string, string> = route === 'write' ? { 'content-type': 'application/json' } : {};
  let next = 0;
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/${route}`,
    method,
    body,
    connections,
    duration: seconds,
    headers: base,
    setupClient(client) {
      const jar = jars[next++ % jars.length]!;
      const send = () => client.setHeaders({ ...base, cookie: jar.header() });
      send();
      // autocannon passes the HTTP parser's view of the response: its headers as a flat [name, value, ...] list.
      const onHeaders = ({ headers }: { headers: string[] }) => {
        let changed = false;
        for (let i = 0; i + 1 < headers.length; i += 2) {
          if (headers[i]!.toLowerCase() === 'set-cookie') {
            jar.apply(headers[i + 1]!);
            changed = true;
          }
        }
        if (changed) send();
      };
      client.on('headers', onHeaders as never);
    },
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

/** Redis's own count of the commands it ran, by name, from INFO commandstats. */
export class RedisCommandCounter {
  readonly #client = createClient({ socket: { host: '127.0.0.1', port: 6379 } });

  async connect(): Promise<boolean> {
    try {
      await this.#client.connect();
      return true;
    } catch {
      return false;
    }
  }

  async snapshot(): Promise<Map<string, number>> {
    const info = await this.#client.info('commandstats');
    const counts = new Map<string, number>();
    for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) counts.set(match[1]!, Number(match[2]));
    return counts;
  }

  /** Commands run between two snapshots (the INFO calls themselves left out). */
  static delta(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
    const out = new Map<string, number>();
    for (const [name, calls] of after) {
      if (name === 'info') continue;
      const d = calls - (before.get(name) ?? 0);
      if (d > 0) out.set(name, d);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.#client.quit().catch(() => undefined);
  }

  /** Deletes what the benchmark stored. */
  async clear(prefix: string): Promise<void> {
    for await (const keys of this.#client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
      if (keys.length) await this.#client.del(keys);
    }
  }
}

const WRITES = new Set([
  'evalsha',
  'eval',
  'set',
  'setex',
  'psetex',
  'del',
  'hset',
  'hdel',
  'expire',
  'pexpire',
  'pexpireat',
  'expireat',
  'unlink',
  'getex',
]);

/** Reads and writes per request, from a commandstats delta. */
export function perRequest(delta: Map<string, number>, requests: number): { reads: number; writes: number; detail: string } {
  let reads = 0;
  let writes = 0;
  for (const [name, calls] of delta) {
    if (WRITES.has(name)) writes += calls;
    else reads += calls;
  }
  const detail = [...delta].map(([n, c]) => `${n} ${(c / requests).toFixed(2)}`).join(', ');
  return { reads: reads / requests, writes: writes / requests, detail };
}
