import { afterEach, describe, expect, it, vi } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import { signId } from '../../src/crypto/sign.js';
import { InMemorySessionStore, SessionSerializationError, SessionsConfigError, type SessionStoreContext } from '../../src/index.js';
import { refreshedTimes } from '../../src/session-times.js';
import { Logger } from '@nestjs/common';

const ctx: SessionStoreContext = { keyring: new Keyring(['k'.repeat(32)]), tokenName: 'session', logger: new Logger('test') };
const timing = { ttlMs: 60_000, rolling: false, touchAfterMs: 6_000 };
const times = () => refreshedTimes(timing, Date.now());

describe('InMemorySessionStore', () => {
  afterEach(() => vi.useRealTimers());

  it('works with no arguments and round-trips data, non-ASCII text included', async () => {
    const store = new InMemorySessionStore();
    const { token, id } = await store.create({ name: 'Zoë 🍕 日本', n: 1, list: [1, { a: null }] }, times(), ctx);
    const loaded = await store.load(token, ctx);
    expect(loaded?.id).toBe(id);
    expect(loaded?.data).toEqual({ name: 'Zoë 🍕 日本', n: 1, list: [1, { a: null }] });
    expect(store.size).toBe(1);
    store.close();
  });

  it('an expiry never moves back: a save under older times keeps the later ones an overlapping request wrote', async () => {
    const store = new InMemorySessionStore();
    const now = Date.now();
    const first = { createdAt: now, refreshedAt: now, expiresAt: now + 60_000 };
    const refreshed = { createdAt: now, refreshedAt: now + 6_000, expiresAt: now + 66_000 };
    const { token } = await store.create({ n: 0 }, first, ctx);
    const a = (await store.load(token, ctx))!;
    const b = (await store.load(token, ctx))!;
    await store.touch(b, {}, refreshed, ctx);
    await store.update(a, { set: { n: 1 }, unset: [], replace: false }, {}, first, ctx);
    expect(await store.load(token, ctx)).toMatchObject({ data: { n: 1 }, times: refreshed });
    await store.touch(a, {}, first, ctx);
    expect((await store.load(token, ctx))?.times).toEqual(refreshed);
    store.close();
  });

  it('keeps a copy: changing the data after saving or loading does not change the store', async () => {
    const store = new InMemorySessionStore();
    const data = { list: [1] };
    const { token } = await store.create(data, times(), ctx);
    data.list.push(2);
    const first = await store.load(token, ctx);
    (first!.data.list as number[]).push(3);
    expect((await store.load(token, ctx))!.data).toEqual({ list: [1] });
    store.close();
  });

  it('patches apply key by key, so two patches to different keys both stay', async () => {
    const store = new InMemorySessionStore();
    const { token } = await store.create({ a: 1, b: 1, c: 1 }, times(), ctx);
    const loaded = (await store.load(token, ctx))!;
    await store.update(loaded, { set: { a: 2 }, unset: [], replace: false }, {}, times(), ctx);
    await store.update(loaded, { set: { b: 2 }, unset: ['c'], replace: false }, {}, times(), ctx);
    expect((await store.load(token, ctx))!.data).toEqual({ a: 2, b: 2 });
    await store.update(loaded, { set: { z: 1 }, unset: [], replace: true }, {}, times(), ctx);
    expect((await store.load(token, ctx))!.data).toEqual({ z: 1 });
    store.close();
  });

  it('an update or touch of a destroyed session does not bring it back', async () => {
    const store = new InMemorySessionStore();
    const { token } = await store.create({ a: 1 }, times(), ctx);
    const loaded = (await store.load(token, ctx))!;
    await store.destroy(loaded);
    expect(await store.update(loaded, { set: { a: 2 }, unset: [], replace: false }, {}, times(), ctx)).toBeUndefined();
    expect(await store.touch(loaded, {}, times(), ctx)).toBeUndefined();
    expect(await store.load(token, ctx)).toBeUndefined();
    expect(store.size).toBe(0);
  });

  it('a value that cannot be stored fails the whole save and changes nothing', async () => {
    const store = new InMemorySessionStore();
    const { token } = await store.create({ a: 1 }, times(), ctx);
    const loaded = (await store.load(token, ctx))!;
    const patch = { set: { a: 2, big: 10n }, unset: [], replace: false };
    await expect(store.update(loaded, patch, {}, times(), ctx)).rejects.toThrow(SessionSerializationError);
    await expect(store.update(loaded, patch, {}, times(), ctx)).rejects.toThrow('Session key "big"');
    await expect(store.create({ f: () => 1 }, times(), ctx)).rejects.toThrow('Session key "f"');
    expect((await store.load(token, ctx))!.data).toEqual({ a: 1 });
    expect(store.size).toBe(1);
  });

  it('expired sessions are never read, and the sweep drops them', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const store = new InMemorySessionStore();
    const { token } = await store.create({ a: 1 }, times(), ctx);
    vi.setSystemTime(Date.now() + 60_001);
    expect(await store.load(token, ctx)).toBeUndefined();
    await store.create({ b: 1 }, times(), ctx);
    vi.setSystemTime(Date.now() + 60_001);
    expect(store.size).toBe(0);
  });

  it('evicts the least recently used session past maxSessions', async () => {
    const store = new InMemorySessionStore({ maxSessions: 3 });
    const a = await store.create({ n: 'a' }, times(), ctx);
    const b = await store.create({ n: 'b' }, times(), ctx);
    const c = await store.create({ n: 'c' }, times(), ctx);
    await store.load(a.token, ctx); // a is now more recent than b
    await store.create({ n: 'd' }, times(), ctx);
    expect(store.size).toBe(3);
    expect(await store.load(b.token, ctx)).toBeUndefined();
    expect((await store.load(a.token, ctx))?.data).toEqual({ n: 'a' });
    expect((await store.load(c.token, ctx))?.data).toEqual({ n: 'c' });
    store.close();
  });

  it('a flood of forged or unknown IDs creates nothing', async () => {
    const store = new InMemorySessionStore();
    for (let i = 0; i < 1000; i++) {
      expect(await store.load(signId(`${'x'.repeat(40)}${String(i).padStart(3, '0')}`, ctx.keyring), ctx)).toBeUndefined();
      expect(await store.load(`forged-${i}`, ctx)).toBeUndefined();
    }
    expect(store.size).toBe(0);
  });

  it('the sweep timer does not keep the process alive, and close() stops it', async () => {
    const spy = vi.spyOn(globalThis, 'setInterval');
    const store = new InMemorySessionStore({ sweepInterval: 1 });
    expect(spy).not.toHaveBeenCalled(); // nothing runs until there is something to sweep
    await store.create({ a: 1 }, times(), ctx);
    expect(spy).toHaveBeenCalledTimes(1);
    expect(spy.mock.calls[0]![1]).toBe(1000);
    const timer = spy.mock.results[0]!.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    store.onModuleDestroy();
    expect((timer as unknown as { _destroyed: boolean })._destroyed).toBe(true);
    spy.mockRestore();
  });

  it('bad options are refused with a clear message', () => {
    expect(() => new InMemorySessionStore({ maxSessions: 0 })).toThrow(SessionsConfigError);
    expect(() => new InMemorySessionStore({ maxSessions: 1.5 })).toThrow(/maxSessions must be a whole number/);
    expect(() => new InMemorySessionStore({ sweepInterval: -1 })).toThrow(/sweepInterval/);
  });
});
