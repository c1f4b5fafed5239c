import { describe, expect, it } from 'vitest';
import { SessionKeyError, TrackedSession } from '../../src/index.js';

type Data = { a: number; b: string; c: boolean; d: number[]; items: string[]; user: { name: string } };

function loaded(data: Record<string, unknown>) {
  return new TrackedSession<Data>(data as Partial<Data>, 'some-id');
}

describe('Session: reading and writing', () => {
  it('sets, gets, has and deletes keys', () => {
    const s = new TrackedSession<Data>();
    s.set('a', 1);
    expect(s.get('a')).toBe(1);
    expect(s.has('a')).toBe(true);
    expect(s.delete('a')).toBe(true);
    expect(s.has('a')).toBe(false);
    expect(s.get('a')).toBeUndefined();
    expect(s.delete('a')).toBe(false);
  });

  it('returns the fallback only for a missing key', () => {
    const s = loaded({ a: 0 });
    expect(s.get('a', 5)).toBe(0);
    expect(s.get('b', 'fallback')).toBe('fallback');
  });

  it('update() sets several keys and deletes those given undefined', () => {
    const s = loaded({ a: 1, b: 'x' });
    s.update({ a: 2, c: true, b: undefined });
    expect(s.toJSON()).toEqual({ a: 2, c: true });
  });

  it('counts its keys from 0 to 4', () => {
    const s = new TrackedSession<Data>();
    expect(s.size).toBe(0);
    s.set('a', 1);
    expect(s.size).toBe(1);
    s.set('b', 'x');
    s.set('c', true);
    s.set('d', [1]);
    expect(s.size).toBe(4);
    expect(s.keys()).toEqual(['a', 'b', 'c', 'd']);
  });

  it('getOrThrow() returns a value and throws a SessionKeyError naming a missing key', () => {
    const s = loaded({ a: 1 });
    expect(s.getOrThrow('a')).toBe(1);
    expect(() => s.getOrThrow('user')).toThrow(SessionKeyError);
    expect(() => s.getOrThrow('user')).toThrow('Session key "user" is not set');
  });

  it('toJSON() is a deep copy', () => {
    const s = loaded({ d: [1, 2], user: { name: 'ann' } });
    const copy = s.toJSON();
    copy.d!.push(3);
    copy.user!.name = 'bob';
    (copy as Record<string, unknown>).extra = 1;
    expect(s.get('d')).toEqual([1, 2]);
    expect(s.get('user')).toEqual({ name: 'ann' });
    expect(s.has('extra' as 'a')).toBe(false);
    expect(s.isModified).toBe(false);
  });

  it('keeps "__proto__" an ordinary key', () => {
    const s = new TrackedSession<Record<string, unknown>>();
    s.set('__proto__', { polluted: true });
    const copy = s.toJSON();
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(copy)).toEqual(['__proto__']);
    expect(s._pending().patch.set).toHaveProperty(['__proto__'], { polluted: true });
  });
});

describe('Session: change tracking', () => {
  it('a new session and a freshly loaded one are not modified', () => {
    expect(new TrackedSession().isModified).toBe(false);
    const s = loaded({ a: 1, user: { name: 'ann' } });
    s.get('a');
    s.get('user');
    s.has('a');
    s.keys();
    expect(s.isModified).toBe(false);
  });

  it('set() marks it modified even with the same value', () => {
    const s = loaded({ a: 1 });
    s.set('a', 1);
    expect(s.isModified).toBe(true);
    expect(s._pending().patch).toEqual({ set: { a: 1 }, unset: [], replace: false });
  });

  it('delete() marks it modified even for a missing key', () => {
    const s = loaded({ a: 1 });
    s.delete('b');
    expect(s.isModified).toBe(true);
    expect(s._pending().patch.unset).toEqual(['b']);
  });

  it('clear() marks it modified and asks the store to replace everything', () => {
    const s = loaded({ a: 1, b: 'x' });
    s.clear();
    expect(s.isModified).toBe(true);
    expect(s.size).toBe(0);
    expect(s._pending().patch).toEqual({ set: {}, unset: [], replace: true });
  });

  it('notices a value read from the session and changed in place', () => {
    const s = loaded({ items: ['a'], user: { name: 'ann' } });
    s.get('items')!.push('b');
    expect(s.isModified).toBe(true);
    const { patch } = s._pending();
    expect(patch.set).toEqual({ items: ['a', 'b'] });
    expect(patch.unset).toEqual([]);
  });

  it('an object read but left alone is not a change', () => {
    const s = loaded({ user: { name: 'ann' } });
    const user = s.get('user')!;
    user.name = 'ann';
    expect(s.isModified).toBe(false);
  });

  it('the patch holds only what changed', () => {
    const s = loaded({ a: 1, b: 'x', c: true });
    s.set('a', 2);
    s.delete('b');
    expect(s._pending().patch).toEqual({ set: { a: 2 }, unset: ['b'], replace: false });
  });

  it('after a save, what was saved is the new starting point', () => {
    const s = loaded({ a: 1 });
    s.set('a', 2);
    s._committed('some-id');
    expect(s.isModified).toBe(false);
    expect(s._pending().patch).toEqual({ set: {}, unset: [], replace: false });
  });

  it('an object changed in place after a save is a change again', () => {
    const s = loaded({});
    const list: string[] = [];
    s.set('d', list as unknown as number[]);
    s._committed('some-id');
    expect(s.isModified).toBe(false);
    list.push('late');
    expect(s.isModified).toBe(true);
    expect(s._pending().patch.set).toEqual({ d: ['late'] });
  });

  it('regenerate() and destroy() are changes; destroy() empties the session', () => {
    const r = loaded({ a: 1 });
    r.regenerate();
    expect(r.isModified).toBe(true);
    expect(r.get('a')).toBe(1);
    const d = loaded({ a: 1 });
    d.destroy();
    expect(d.isModified).toBe(true);
    expect(d.size).toBe(0);
    expect(d._pending()).toMatchObject({ destroy: true, regenerate: false });
  });

  it('a value set after destroy() starts a new session', () => {
    const s = loaded({ a: 1 });
    s.destroy();
    s.set('b', 'flash');
    expect(s._pending()).toMatchObject({ destroy: false, regenerate: true, restart: true });
    expect(s.toJSON()).toEqual({ b: 'flash' });
  });

  it('id and isNew tell a stored session from a new one', () => {
    const fresh = new TrackedSession();
    expect(fresh.id).toBeUndefined();
    expect(fresh.isNew).toBe(true);
    const stored = loaded({});
    expect(stored.id).toBe('some-id');
    expect(stored.isNew).toBe(false);
  });

  it('save() outside a request says why it cannot work', async () => {
    await expect(new TrackedSession().save()).rejects.toThrow('not attached to a request');
  });
});

describe('TrackedSession flash', () => {
  it('keeps flashed values apart from the data, and saves them under their reserved key', () => {
    const session = new TrackedSession({ a: 1 }, 'id');
    session.flash('notice', 'Saved.');
    expect(session.keys()).toEqual(['a']);
    expect(session.toJSON()).toEqual({ a: 1 });
    expect(session.isModified).toBe(true);
    expect(session._pending().patch).toEqual({ set: { 'nest-sessions:flash': { notice: 'Saved.' } }, unset: [], replace: false });
  });

  it('hands a stored flash over once: read, it is removed, and the removal is saved', () => {
    const session = new TrackedSession({ a: 1, 'nest-sessions:flash': { notice: 'Saved.', other: 2 } }, 'id');
    expect(session.isModified).toBe(false);
    expect(session.getFlash('missing')).toBeUndefined();
    expect(session.isModified).toBe(false);
    expect(session.getFlash('notice')).toBe('Saved.');
    expect(session.getFlash('notice')).toBeUndefined();
    expect(session._pending().patch.set).toEqual({ 'nest-sessions:flash': { other: 2 } });
    expect(session.getFlash('other')).toBe(2);
    expect(session._pending().patch).toEqual({ set: {}, unset: ['nest-sessions:flash'], replace: false });
  });

  it('a failed handler rolls a read flash back, so the next request still shows it', () => {
    const session = new TrackedSession({ 'nest-sessions:flash': { notice: 'Saved.' } }, 'id');
    expect(session.getFlash('notice')).toBe('Saved.');
    session._rollback();
    expect(session.isModified).toBe(false);
    expect(session.getFlash('notice')).toBe('Saved.');
  });

  it('refuses the reserved key as data, an undefined value, and drops a stored flash that is no object', () => {
    const session = new TrackedSession();
    expect(() => session.set('nest-sessions:flash' as never, 1 as never)).toThrow("reserved for the module's own use");
    expect(() => session.flash('x', undefined)).toThrow('flash a value that JSON keeps');
    const odd = new TrackedSession({ 'nest-sessions:flash': 'text' }, 'id');
    expect(odd.keys()).toEqual([]);
    expect(odd._pending().patch.unset).toEqual(['nest-sessions:flash']);
  });

  it('clear() keeps what is flashed; destroy() drops it, and a flash after it starts the new session', () => {
    const cleared = new TrackedSession({ a: 1, 'nest-sessions:flash': { n: 1 } }, 'id');
    cleared.clear();
    expect(cleared._pending().patch).toEqual({ set: { 'nest-sessions:flash': { n: 1 } }, unset: [], replace: true });
    const destroyed = new TrackedSession({ a: 1, 'nest-sessions:flash': { n: 1 } }, 'id');
    destroyed.destroy();
    expect(destroyed.getFlash('n')).toBeUndefined();
    destroyed.flash('notice', 'Logged out.');
    const pending = destroyed._pending();
    expect(pending.destroy).toBe(false);
    expect(pending.restart).toBe(true);
    expect(destroyed._data()).toEqual({ 'nest-sessions:flash': { notice: 'Logged out.' } });
  });
});

describe('TrackedSession setMaxAge', () => {
  it('keeps its own lifetime apart from the data, and marks the lifetime changed', () => {
    const session = new TrackedSession({ a: 1 }, 'id');
    session.setMaxAge(3600);
    expect(session.maxAge).toBe(3600);
    expect(session.keys()).toEqual(['a']);
    const pending = session._pending();
    expect(pending.lifetimeChanged).toBe(true);
    expect(pending.patch.set).toEqual({ 'nest-sessions:maxAge': 3600 });
  });

  it('reads a stored lifetime, drops one that is no positive number, and rolls back', () => {
    expect(new TrackedSession({ 'nest-sessions:maxAge': 60 }, 'id').maxAge).toBe(60);
    const odd = new TrackedSession({ 'nest-sessions:maxAge': -1 }, 'id');
    expect(odd.maxAge).toBeUndefined();
    expect(odd._pending().patch.unset).toEqual(['nest-sessions:maxAge']);
    const session = new TrackedSession({ 'nest-sessions:maxAge': 60 }, 'id');
    session.setMaxAge(undefined);
    expect(session._pending().patch.unset).toEqual(['nest-sessions:maxAge']);
    session._rollback();
    expect(session.maxAge).toBe(60);
    expect(session.isModified).toBe(false);
  });

  it('refuses what is no lifetime: not a whole number of seconds, or over 400 days', () => {
    for (const bad of [0, -5, NaN, Infinity, 1.5, 400 * 86_400 + 1, 1e300, '60' as unknown as number]) {
      expect(() => new TrackedSession().setMaxAge(bad)).toThrow(RangeError);
    }
    expect(new TrackedSession().setMaxAge(400 * 86_400).maxAge).toBe(400 * 86_400);
  });

  it('setMaxAge(undefined) after destroy() starts no new session', () => {
    const session = new TrackedSession({ 'nest-sessions:maxAge': 60, a: 1 }, 'id');
    session.destroy();
    session.setMaxAge(undefined);
    const pending = session._pending();
    expect(pending.destroy).toBe(true);
    expect(pending.restart).toBe(false);
  });
});

describe('TrackedSession setUser', () => {
  it('keeps the user apart from the data, saved under its reserved key, and rolls back', () => {
    const session = new TrackedSession({ a: 1 }, 'id');
    session.setUser('u-1');
    expect(session.userId).toBe('u-1');
    expect(session.keys()).toEqual(['a']);
    expect(session.toJSON()).toEqual({ a: 1 });
    expect(session._pending().patch.set).toEqual({ 'nest-sessions:user': 'u-1' });
    session._rollback();
    expect(session.userId).toBeUndefined();
    expect(session.isModified).toBe(false);
  });

  it('reads a stored user; setting the same one again is no change; clear() keeps it, destroy() ends it', () => {
    const session = new TrackedSession({ 'nest-sessions:user': 'u-1', a: 1 }, 'id');
    expect(session.userId).toBe('u-1');
    session.setUser('u-1');
    expect(session.isModified).toBe(false);
    session.clear();
    expect(session.userId).toBe('u-1');
    session.destroy();
    expect(session.userId).toBeUndefined();
    session.setUser(undefined); // no new session after a logout
    expect(session._pending().restart).toBe(false);
  });

  it('a change of user gives the session a new ID; the same user again, and regenerate(), keep the mark', () => {
    const session = new TrackedSession({ 'nest-sessions:user': 'u-1' }, 'id');
    session.regenerate();
    expect(session.userId).toBe('u-1');
    session._committed('id-2');
    session.setUser('u-1');
    expect(session._pending().regenerate).toBe(false);
    session.setUser('u-2');
    expect(session._pending().regenerate).toBe(true);
    session._committed('id-3');
    session.setUser(undefined);
    expect(session._pending().regenerate).toBe(true);
  });

  it('after destroy(), a new user starts a new session', () => {
    const session = new TrackedSession({ 'nest-sessions:user': 'u-1' }, 'id');
    session.destroy();
    session.setUser('u-2');
    const pending = session._pending();
    expect(pending.restart).toBe(true);
    expect(pending.patch.set).toEqual({ 'nest-sessions:user': 'u-2' });
  });

  it('refuses what is no user ID, and cannot be set as a key', () => {
    for (const bad of ['', 'x'.repeat(257), 'a\uD800', 42, null, {}]) {
      expect(() => new TrackedSession().setUser(bad as string)).toThrow(/a string of 1 to 256 characters/);
    }
    expect(new TrackedSession().setUser('x'.repeat(256)).userId).toHaveLength(256);
    expect(() => new TrackedSession().set('nest-sessions:user', 'u')).toThrow(/reserved/);
    // Stored by hand as something else: dropped at the next save.
    const odd = new TrackedSession({ 'nest-sessions:user': 7 }, 'id');
    expect(odd.userId).toBeUndefined();
    expect(odd._pending().patch.unset).toEqual(['nest-sessions:user']);
  });
});

describe('TrackedSession refused stored data', () => {
  it('is empty from then on and ends at the save, even after a rollback', () => {
    const session = new TrackedSession<Record<string, unknown>>({ cart: 'oops', 'nest-sessions:maxAge': 60 }, 'id');
    session._refuseStored();
    expect(session.keys()).toEqual([]);
    session.set('other', 1);
    session._rollback();
    expect(session.keys()).toEqual([]);
    expect(session.maxAge).toBeUndefined();
    expect(session._pending().destroy).toBe(true);
  });
});
