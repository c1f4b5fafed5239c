import type { RedisSessionStore } from '../../src/index.js';
import type { StoreUnderTest } from './server-store-suite.js';

const READS = new Set(['HGETALL']);

/** A real client whose commands are counted on the way out. */
export type Sent = ('read' | 'write' | 'refused')[];

export function counted<T extends object>(client: T, method: 'sendCommand' | 'call', sent: Sent): T {
  return new Proxy(client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== method || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
      return (...args: unknown[]) => {
        // node-redis: sendCommand(args) or, on a cluster, sendCommand(firstKey, isReadonly, args); ioredis: call(name, ...)
        const command = method === 'call' ? args[0] : Array.isArray(args[0]) ? args[0][0] : (args[2] as string[])[0];
        const name = String(command).toUpperCase();
        const index = sent.push(READS.has(name) ? 'read' : 'write') - 1;
        const result = value.apply(target, args) as Promise<unknown>;
        // An EVALSHA refused with NOSCRIPT ran nothing: the script goes again as EVAL, which is counted.
        // (It costs one extra round trip, once per server, after the server's script cache was emptied.)
        return result.catch((err: Error) => {
          if (name === 'EVALSHA' && String(err?.message).startsWith('NOSCRIPT')) sent[index] = 'refused';
          throw err;
        });
      };
    },
  });
}

export function inspect(
  store: RedisSessionStore,
  prefix: string,
  sent: Sent,
  raw: {
    exists(key: string): Promise<boolean>;
    pttl(key: string): Promise<number>;
    hset(key: string, field: string, value: string): Promise<void>;
    close(): Promise<void>;
  },
): StoreUnderTest {
  return {
    store,
    sent: () => sent.filter((s): s is 'read' | 'write' => s !== 'refused'),
    exists: (id) => raw.exists(prefix + id),
    // PEXPIREAT was given the app's clock; the server counts from its own, so add what the app's clock is ahead.
    ttl: async (id) => (await raw.pttl(prefix + id)) + (Date.now() - performance.timeOrigin - performance.now()),
    corrupt: (id) => raw.hset(prefix + id, '@', 'not-times'),
    plantDeep: (id, levels) => raw.hset(prefix + id, '.deep', '['.repeat(levels) + ']'.repeat(levels)),
    close: raw.close,
  };
}
