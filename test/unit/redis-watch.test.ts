import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { watched } from '../../src/stores/redis-client.js';

class ErrorReply extends Error {}

/** A client whose replies the test hands out, one pending call at a time. */
function fakeClient() {
  const pending: { resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = [];
  let connecting = false;
  let readyAt = 0;
  const client = {
    kind: 'fake',
    resets: 0,
    command: () => new Promise((resolve, reject) => pending.push({ resolve, reject })),
    reset: () => void client.resets++,
    connecting: () => connecting,
    readyAt: () => readyAt,
  };
  return {
    client,
    pending,
    setConnecting(value: boolean) {
      if (connecting && !value) readyAt = Date.now();
      connecting = value;
    },
  };
}

const signal = new AbortController().signal;

describe('the Redis connection watch', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());
  const logger = { warn: vi.fn() };

  it('a connection that keeps answering is never reset, however long it is busy', async () => {
    const { client, pending } = fakeClient();
    const redis = watched(client, { deadAfterMs: 3000, logger });
    for (let i = 0; i < 100; i++) {
      const call = redis.command('k', ['GET', 'k'], true, signal);
      vi.setSystemTime(Date.now() + 1000);
      pending.shift()!.resolve('v');
      await call;
    }
    expect(client.resets).toBe(0);
  });

  it('commands waiting with no reply for longer than deadAfterMs: one reset, a 503, and counting starts over', async () => {
    const { client, pending } = fakeClient();
    const redis = watched(client, { deadAfterMs: 3000, logger });
    void redis.command('k', ['GET', 'k'], true, signal).catch(() => undefined); // never answered
    vi.setSystemTime(Date.now() + 2000);
    void redis.command('k', ['GET', 'k'], true, signal).catch(() => undefined);
    vi.setSystemTime(Date.now() + 1500);
    await expect(redis.command('k', ['GET', 'k'], true, signal)).rejects.toThrow(/reconnecting: its connection stopped answering/);
    expect(client.resets).toBe(1);
    expect(logger.warn).toHaveBeenCalledWith(expect.stringMatching(/has not answered .* for 3500 ms; reconnecting it/));
    // The reset connection's calls settle late; they no longer count, and the new connection is fine.
    for (const p of pending.splice(0)) p.reject(new Error('Disconnects client'));
    await Promise.resolve();
    const fresh = redis.command('k', ['GET', 'k'], true, signal);
    vi.setSystemTime(Date.now() + 10_000);
    pending.shift()!.resolve('v');
    await expect(fresh).resolves.toBe('v');
    expect(client.resets).toBe(1);
  });

  it('an error the server sent is a reply; a client-side timeout is not', async () => {
    const { client, pending } = fakeClient();
    const redis = watched(client, { deadAfterMs: 3000, logger });
    const slow = redis.command('k', ['GET', 'k'], true, signal).catch(() => undefined);
    vi.setSystemTime(Date.now() + 2500);
    const answered = redis.command('k', ['GET', 'k'], true, signal).catch(() => undefined);
    pending[1]!.reject(new ErrorReply('WRONGTYPE'));
    await answered;
    vi.setSystemTime(Date.now() + 2500); // 5 s after the first call, 2.5 s after the last reply
    const next = redis.command('k', ['GET', 'k'], true, signal).catch(() => undefined);
    expect(client.resets).toBe(0);
    pending[0]!.reject(new Error('Command timed out')); // made up by the client: no reply
    await slow;
    vi.setSystemTime(Date.now() + 3500);
    await expect(redis.command('k', ['GET', 'k'], true, signal)).rejects.toThrow(/reconnecting/);
    expect(client.resets).toBe(1);
    void next;
  });

  it('a quiet spell after calls that ended without a reply does not reset a connection with nothing waiting', async () => {
    const { client, pending } = fakeClient();
    const redis = watched(client, { deadAfterMs: 3000, logger });
    const aborted = redis.command('k', ['GET', 'k'], true, signal).catch(() => undefined);
    pending.shift()!.reject(new Error('The operation was aborted'));
    await aborted;
    vi.setSystemTime(Date.now() + 60_000);
    const call = redis.command('k', ['GET', 'k'], true, signal);
    pending.shift()!.resolve('v');
    await expect(call).resolves.toBe('v');
    expect(client.resets).toBe(0);
  });

  it('connecting for longer than deadAfterMs resets; two short reconnects do not add up', async () => {
    const { client, pending, setConnecting } = fakeClient();
    const redis = watched(client, { deadAfterMs: 3000, logger });
    setConnecting(true);
    void redis.command('k', ['GET', 'k'], true, signal).catch(() => undefined);
    vi.setSystemTime(Date.now() + 2000);
    setConnecting(false); // ready again, with no command in between
    vi.setSystemTime(Date.now() + 1000);
    setConnecting(true);
    pending.shift()!.resolve('v');
    await Promise.resolve();
    vi.setSystemTime(Date.now() + 1500);
    void redis.command('k', ['GET', 'k'], true, signal).catch(() => undefined);
    expect(client.resets).toBe(0);
    vi.setSystemTime(Date.now() + 3500);
    await expect(redis.command('k', ['GET', 'k'], true, signal)).rejects.toThrow(/reconnecting/);
    expect(client.resets).toBe(1);
  });
});
