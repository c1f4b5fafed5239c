import type { SessionData } from '../session.js';
import { SessionSerializationError } from '../sessions.errors.js';
import { assertJsonValue, jsonNestsDeeperThan, MAX_VALUE_DEPTH } from './json-value.js';

/**
 * One JSON text per top-level key: what the memory and Redis stores keep, and what lets a save change
 * one key without rewriting the others. Everything is serialised before anything is written, so a value
 * that cannot be stored fails the save whole instead of half-applying it.
 */
export function serializeFields(data: SessionData, options?: { jsonb?: boolean }): [string, string][] {
  const out: [string, string][] = [];
  for (const key of Object.keys(data)) {
    const value = data[key];
    // What JSON would quietly change (a Map, NaN, a function) is refused here, naming where it is.
    assertJsonValue(key, value, options);
    let json: string;
    try {
      json = JSON.stringify(value);
    } catch (err) {
      throw new SessionSerializationError(key, err);
    }
    out.push([key, json]);
  }
  return out;
}

/**
 * The data back from its fields; a key such as "__proto__" stays an ordinary key. Throws on corrupt JSON
 * and on a value nested deeper than a save accepts (stored by an older version, or by hand).
 */
export function parseFields(fields: Iterable<[string, string]>): SessionData {
  const data: SessionData = {};
  for (const [key, json] of fields) {
    if (jsonNestsDeeperThan(json)) throw new Error(`the value of "${key}" is nested more than ${MAX_VALUE_DEPTH} levels deep`);
    // Assignment to "__proto__" would set the prototype instead: that one key is defined.
    if (key === '__proto__')
      Object.defineProperty(data, key, { value: JSON.parse(json), enumerable: true, writable: true, configurable: true });
    else data[key] = JSON.parse(json);
  }
  return data;
}

/** A JSON object from serialised fields, without parsing and serialising each value again. */
export function jsonObject(fields: readonly [string, string][]): string {
  return `{${fields.map(([key, json]) => `${JSON.stringify(key)}:${json}`).join(',')}}`;
}
