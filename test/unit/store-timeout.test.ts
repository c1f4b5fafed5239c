import { Logger } from '@nestjs/common';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import { signId, newSessionId } from '../../src/crypto/sign.js';
import { SessionStoreUnavailableError } from '../../src/sessions.errors.js';
import { ServerSessionStore, type StoredSession } from '../../src/stores/server-store.js';
import type { SessionStoreContext } from '../../src/stores/session-store.js';

/** A backend whose reads hang until told, and that listens on the signal as node-redis does. */
class HangingStore extends ServerSessionStore {
  signals: AbortSignal[] = [];
  release: (() => void)[] = [];
  protected async read(_id: string, signal: AbortSignal): Promise<StoredSession | undefined> {
    this.signals.push(signal);
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(new Error('aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
      this.release.push(() => {
        signal.removeEventListener('abort', onAbort);
        resolve(undefined);
      });
    });
  }
  protected async insert(): Promise<boolean> {
    return true;
  }
  protected async patch(): Promise<boolean> {
    return true;
  }
  protected async refresh(): Promise<boolean> {
    return true;
  }
  protected async remove(): Promise<boolean> {
    return true;
  }
}

const keyring = new Keyring(['k'.repeat(40)]);
const ctx: SessionStoreContext = { keyring, tokenName: 'session', logger: new Logger('test') };
const token = () => signId(newSessionId(), keyring);

describe('store call timeouts', () => {
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  afterEach(() => {
    process.off('warning', onWarning);
    warnings.length = 0;
  });

  it('many calls at once time out together, each after at least its timeout, with no listener-leak warning', async () => {
    process.on('warning', onWarning);
    const store = new HangingStore({ timeout: 60 });
    const started = performance.now();
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => store.load(token(), ctx)));
    const elapsed = performance.now() - started;
    expect(results.every((r) => r.status === 'rejected' && r.reason instanceof SessionStoreUnavailableError)).toBe(true);
    expect((results[0] as PromiseRejectedResult).reason.message).toMatch(/HangingStore: reading a session took longer than 60 ms/);
    expect(elapsed).toBeGreaterThanOrEqual(59);
    expect(store.signals.every((s) => s.aborted)).toBe(true);
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    expect(store.pending).toBe(0); // the aborted reads settled
  });

  it('a call that answers in time is not failed by its slice firing later', async () => {
    const store = new HangingStore({ timeout: 40 });
    const answered = store.load(token(), ctx);
    store.release.shift()!();
    await expect(answered).resolves.toBeUndefined();
    const late = store.load(token(), ctx);
    await expect(late).rejects.toThrow(/took longer than 40 ms/);
  });

  it('a call after a slice fired gets a signal that is not aborted, even with the clock set back', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const store = new HangingStore({ timeout: 20 });
      await expect(store.load(token(), ctx)).rejects.toThrow(SessionStoreUnavailableError);
      vi.setSystemTime(Date.now() - 3_600_000);
      const next = store.load(token(), ctx);
      expect(store.signals.at(-1)!.aborted).toBe(false);
      store.release.at(-1)!();
      await expect(next).resolves.toBeUndefined();
    } finally {
      vi.useRealTimers();
    }
  });
});
