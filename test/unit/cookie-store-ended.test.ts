import { Logger } from '@nestjs/common';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import { CookieSessionStore, type SessionStoreContext } from '../../src/index.js';
import { ENDED_SESSIONS_REMEMBERED } from '../../src/stores/cookie.store.js';

const ctx: SessionStoreContext = {
  keyring: new Keyring(['cookie-store-ended-test-secret-0123456789']),
  tokenName: 'session',
  logger: new Logger('test'),
};
const times = (now: number) => ({ createdAt: now, refreshedAt: now, expiresAt: now + 60_000 });

describe('CookieSessionStore remembers ended sessions', () => {
  afterEach(() => vi.useRealTimers());

  it('until they would have expired anyway, then forgets them', async () => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });
    const store = new CookieSessionStore();
    const { token } = await store.create({ user: 'ann' }, times(Date.now()), ctx);
    const loaded = (await store.load(token, ctx))!;
    expect(await store.destroy(loaded)).toBe(true);
    expect(await store.destroy(loaded)).toBe(false); // ended already: a second logout, or a racing login, knows
    expect(await store.load(token, ctx)).toBeUndefined();
    expect(await store.update(loaded, { set: { a: 1 }, unset: [], replace: false }, { a: 1 }, times(Date.now()), ctx)).toBeUndefined();
    expect(await store.touch(loaded, {}, times(Date.now()), ctx)).toBeUndefined();
    vi.setSystemTime(Date.now() + 60_001);
    expect(await store.load(token, ctx)).toBeUndefined(); // expired by its own times
    expect(await store.touch(loaded, {}, times(Date.now()), ctx)).toBeDefined(); // and no longer remembered
    expect(store.endedSessions).toBe(0);
  });

  it(`at most ${ENDED_SESSIONS_REMEMBERED.toLocaleString('en-US')}, the oldest forgotten first`, async () => {
    const store = new CookieSessionStore();
    const now = Date.now();
    const first = (await store.load((await store.create({ n: 0 }, times(now), ctx)).token, ctx))!;
    await store.destroy(first);
    for (let i = 1; i <= ENDED_SESSIONS_REMEMBERED; i++) {
      await store.destroy({ id: `id-${i}`, data: {}, times: times(now) });
    }
    expect(store.endedSessions).toBe(ENDED_SESSIONS_REMEMBERED);
    expect(await store.touch(first, {}, times(now), ctx)).toBeDefined();
  });
});
