import { Logger } from '@nestjs/common';
import { describe, expect, it } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import type { SessionStore, SessionStoreContext, UserSessionIndex } from '../../src/index.js';
import { Telemetry, tracedStore } from '../../src/telemetry.js';

const ctx: SessionStoreContext = {
  keyring: new Keyring(['telemetry-unit-test-secret-0123456789']),
  tokenName: 'session',
  logger: new Logger('test'),
};
const times = { createdAt: 1, refreshedAt: 2, expiresAt: 3 };
const loaded = { id: 'id', data: { a: 1 }, times };

/** A store that records each call (its `this`, its arguments) and answers with `answers[method]`. */
function recordingStore(answers: Record<string, () => Promise<unknown>>, extra: Partial<SessionStore> = {}) {
  const calls: { method: string; self: unknown; args: unknown[] }[] = [];
  const method = (name: string) =>
    function (this: unknown, ...args: unknown[]) {
      calls.push({ method: name, self: this, args });
      return answers[name]!();
    };
  const store = {
    load: method('load'),
    create: method('create'),
    update: method('update'),
    touch: method('touch'),
    destroy: method('destroy'),
    ...extra,
  } as unknown as SessionStore;
  return { store, calls };
}

describe('tracedStore (no OpenTelemetry SDK registered: the API is a no-op)', async () => {
  const telemetry = (await Telemetry.load({ warn: () => undefined }, false))!;

  it('loads, since @opentelemetry/api is installed', () => {
    expect(telemetry).toBeInstanceOf(Telemetry);
  });

  it("passes every call to the store as it came, with the store as this, and returns the store's answer", async () => {
    const issued = { token: 't', id: 'id' };
    const { store, calls } = recordingStore({
      load: async () => loaded,
      create: async () => issued,
      update: async () => issued,
      touch: async () => undefined,
      destroy: async () => true,
    });
    const traced = tracedStore(store, telemetry);
    expect(await traced.load('tok', ctx)).toBe(loaded);
    expect(await traced.create({ a: 1 }, times, ctx)).toBe(issued);
    const patch = { set: { a: 2 }, unset: [] };
    expect(await traced.update(loaded, patch as never, { a: 2 }, times, ctx)).toBe(issued);
    expect(await traced.touch(loaded, { a: 1 }, times, ctx)).toBeUndefined();
    expect(await traced.destroy(loaded, ctx)).toBe(true);
    expect(calls).toEqual([
      { method: 'load', self: store, args: ['tok', ctx] },
      { method: 'create', self: store, args: [{ a: 1 }, times, ctx] },
      { method: 'update', self: store, args: [loaded, patch, { a: 2 }, times, ctx] },
      { method: 'touch', self: store, args: [loaded, { a: 1 }, times, ctx] },
      { method: 'destroy', self: store, args: [loaded, ctx] },
    ]);
  });

  it("rejects with the store's own error, unchanged", async () => {
    const failure = new Error('down');
    const { store } = recordingStore({ load: () => Promise.reject(failure), destroy: () => Promise.reject(failure) });
    const traced = tracedStore(store, telemetry);
    await expect(traced.load('tok', ctx)).rejects.toBe(failure);
    await expect(traced.destroy(loaded, ctx)).rejects.toBe(failure);
  });

  it("keeps what the store has and only that: its limits, its users' index, its ping", async () => {
    const bare = tracedStore(recordingStore({}).store, telemetry);
    expect(bare.users).toBeUndefined();
    expect(bare.ping).toBeUndefined();
    expect(bare.maxChunks).toBeUndefined();

    const seen: unknown[][] = [];
    const users: UserSessionIndex = {
      add: async (...args) => void seen.push(['add', ...args]),
      remove: async (...args) => void seen.push(['remove', ...args]),
      list: async (...args) => (seen.push(['list', ...args]), [{ id: 'x', createdAt: 1, lastSeenAt: 2, expiresAt: 3 }]),
    };
    const ping = async () => void seen.push(['ping']);
    const full = tracedStore(recordingStore({}, { users, ping, maxChunks: 3, maxCookieBytes: 4000 }).store, telemetry);
    expect([full.maxChunks, full.maxCookieBytes]).toEqual([3, 4000]);
    const entry = { id: 'x', createdAt: 1, lastSeenAt: 2, expiresAt: 3 };
    await full.users!.add('ann', entry, ctx);
    await full.users!.remove('ann', 'x', ctx);
    expect(await full.users!.list('ann', ctx, { ended: true })).toEqual([entry]);
    await full.ping!(ctx);
    expect(seen).toEqual([['add', 'ann', entry, ctx], ['remove', 'ann', 'x', ctx], ['list', 'ann', ctx, { ended: true }], ['ping']]);
  });
});
