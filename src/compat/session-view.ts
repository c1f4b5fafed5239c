import type { SessionData, TrackedSession } from '../session.js';

/** Node's util.inspect hook, without importing node:util. */
const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/** What a view reads and writes: the live session, or a copy once a regenerate put a new view on the request. */
export interface ViewBacking {
  live: TrackedSession | undefined;
  copy: SessionData;
}

/**
 * @internal A session object in the shape other session libraries give (`req.session`): the data as its
 * own properties (reads are `get`, so an object changed in place is noticed; assignments are `set`;
 * `delete` deletes), and `members` (methods and getters) under names that are not data. `Object.keys`,
 * spreading, `for...in`, `JSON.stringify` and `console.log` see the data only; anything else a plain object
 * has (`toString`, `hasOwnProperty`) is there too.
 */
export function sessionView<T extends object>(backing: ViewBacking, members: Record<string, unknown>, what: string): T {
  const read = (key: string): unknown => (backing.live ? backing.live.get(key) : backing.copy[key]);
  const has = (key: string): boolean => (backing.live ? backing.live.has(key) : Object.hasOwn(backing.copy, key));
  const keys = (): string[] => (backing.live ? backing.live.keys() : Object.keys(backing.copy));
  const target = Object.defineProperty({}, INSPECT, {
    value: () => Object.fromEntries(keys().map((key) => [key, read(key)])),
    configurable: true,
  });
  const member = (key: string): PropertyDescriptor | undefined => Object.getOwnPropertyDescriptor(members, key);
  return new Proxy(target, {
    get(target, key, receiver) {
      if (typeof key === 'string') {
        const own = member(key);
        if (own) return own.get ? own.get.call(receiver) : own.value;
        if (has(key)) return read(key);
      }
      return Reflect.get(target, key, receiver);
    },
    set(_target, key, value: unknown) {
      if (typeof key === 'symbol') return false;
      if (member(key)) throw new TypeError(`${what}.${key} is the session's own and cannot be set`);
      if (backing.live) backing.live.set(key, value);
      else backing.copy[key] = value;
      return true;
    },
    deleteProperty(_target, key) {
      if (typeof key === 'symbol' || member(key)) return false;
      if (backing.live) backing.live.delete(key);
      else delete backing.copy[key];
      return true;
    },
    has(target, key) {
      return typeof key === 'string' ? member(key) !== undefined || has(key) : Reflect.has(target, key);
    },
    ownKeys() {
      return keys();
    },
    getOwnPropertyDescriptor(_target, key) {
      if (typeof key === 'symbol' || !has(key)) return undefined;
      return { value: read(key), writable: true, enumerable: true, configurable: true };
    },
    defineProperty() {
      return false;
    },
    preventExtensions() {
      return false;
    },
  }) as T;
}
