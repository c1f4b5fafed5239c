import { describe, expect, it, vi } from 'vitest';
import { redisCommands } from '../../src/stores/redis-client.js';
import { Latch } from '../fixtures/app.js';

const signal = new AbortController().signal;
/** CLUSTER SLOTS as a server sends it: `[start, end, [host, port, id], ...replicas]` per range. */
const slotsOf = (...masters: string[]) =>
  masters.map((address, i) => {
    const [host, port] = address.split(':');
    return [i * 100, i * 100 + 99, [host, Number(port), `id${i}`]];
  });

/**
 * A node-redis cluster client (the shape the store detects: sendCommand and masters) whose own view of
 * the masters is `known`, and whose connected masters answer that the cluster's masters are `actual`.
 */
function fakeCluster(known: string[], actual: string[], options: { failingFirst?: boolean } = {}) {
  let open = true;
  const calls: string[] = [];
  const connected = new Latch();
  let connectGate: Promise<void> = Promise.resolve();
  const node = (address: string, fails = false) => ({
    address,
    client: {
      isReady: true,
      sendCommand: async (args: string[]) => {
        calls.push(`${address} ${args.join(' ')}`);
        if (fails) throw new Error('no answer');
        return args[1] === 'INFO' ? 'cluster_state:ok\r\n' : slotsOf(...actual);
      },
    },
  });
  const masters = known.map((a, i) => node(a, options.failingFirst === true && i === 0));
  let mastersRead = 0;
  const cluster = {
    get masters() {
      mastersRead++;
      return masters;
    },
    get isOpen() {
      return open;
    },
    // A command to a dead master: it fails without a reply from any server.
    sendCommand: async () => {
      throw new Error('Connection timeout');
    },
    destroy: () => {
      calls.push('destroy');
      open = false;
    },
    connect: async () => {
      calls.push('connect');
      await connectGate;
      open = true;
      connected.open();
    },
  };
  return {
    cluster,
    calls,
    connected,
    mastersRead: () => mastersRead,
    holdConnect(gate: Promise<void>) {
      connectGate = gate;
    },
  };
}

const logger = () => ({ warn: vi.fn() });

describe("following a Redis Cluster's failover with node-redis", () => {
  it('reconnects the client when its masters are not the cluster’s, and says why', async () => {
    const fake = fakeCluster(['127.0.0.1:1', '127.0.0.1:2'], ['127.0.0.1:1', '127.0.0.1:3']);
    const log = logger();
    const redis = redisCommands(fake.cluster, { deadAfterMs: 3000, logger: log });
    await expect(redis.command('k', ['GET', 'k'], true, signal)).rejects.toThrow('Connection timeout');
    await fake.connected.wait;
    expect(fake.calls.slice(-2)).toEqual(['destroy', 'connect']);
    expect(log.warn).toHaveBeenCalledWith(expect.stringContaining('127.0.0.1:2 gone, 127.0.0.1:3 new'));
  });

  it('leaves the client alone when its masters are the cluster’s', async () => {
    const fake = fakeCluster(['127.0.0.1:1', '127.0.0.1:2'], ['127.0.0.1:2', '127.0.0.1:1']);
    const redis = redisCommands(fake.cluster, { deadAfterMs: 3000, logger: logger() });
    await expect(redis.command('k', ['GET', 'k'], true, signal)).rejects.toThrow();
    await vi.waitFor(() => expect(fake.calls.filter((c) => c.endsWith('CLUSTER SLOTS'))).toHaveLength(1));
    expect(fake.calls).not.toContain('destroy');
  });

  it('asks another master when one does not answer', async () => {
    const fake = fakeCluster(['127.0.0.1:1', '127.0.0.1:2'], ['127.0.0.1:2', '127.0.0.1:3'], { failingFirst: true });
    const redis = redisCommands(fake.cluster, { deadAfterMs: 3000, logger: logger() });
    await expect(redis.command('k', ['GET', 'k'], true, signal)).rejects.toThrow();
    await fake.connected.wait;
    expect(fake.calls).toContain('127.0.0.1:2 CLUSTER SLOTS');
  });

  it('once stopped (the app is shutting down), never looks again nor reopens the client', async () => {
    const fake = fakeCluster(['127.0.0.1:1'], ['127.0.0.1:9']);
    const redis = redisCommands(fake.cluster, { deadAfterMs: 3000, logger: logger() });
    redis.stop!();
    await expect(redis.command('k', ['GET', 'k'], true, signal)).rejects.toThrow();
    // A check would have read the masters before its first await, within the failed call.
    expect(fake.mastersRead()).toBe(0);
    expect(fake.calls).toEqual([]);
  });

  it('closes again a client it was reconnecting when the app began shutting down', async () => {
    const fake = fakeCluster(['127.0.0.1:1'], ['127.0.0.1:9']);
    const gate = new Latch();
    fake.holdConnect(gate.wait);
    const redis = redisCommands(fake.cluster, { deadAfterMs: 3000, logger: logger() });
    await expect(redis.command('k', ['GET', 'k'], true, signal)).rejects.toThrow();
    await vi.waitFor(() => expect(fake.calls).toContain('connect'));
    redis.stop!();
    gate.open();
    await fake.connected.wait;
    await vi.waitFor(() => expect(fake.calls.slice(-3)).toEqual(['destroy', 'connect', 'destroy']));
    expect(fake.cluster.isOpen).toBe(false);
  });

  it('does nothing with timeout: 0 (no watch), as the store documents', async () => {
    const fake = fakeCluster(['127.0.0.1:1'], ['127.0.0.1:9']);
    const redis = redisCommands(fake.cluster, { deadAfterMs: 0, logger: logger() });
    await expect(redis.command('k', ['GET', 'k'], true, signal)).rejects.toThrow();
    expect(fake.mastersRead()).toBe(0);
  });
});
