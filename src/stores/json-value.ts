import { SessionSerializationError } from '../sessions.errors.js';

/**
 * How deeply a stored value may nest (an object or array inside another counts one level). Deeper values
 * are refused when saved: JavaScript's own recursive operations on them (JSON.stringify, structuredClone)
 * can exhaust the stack, and a session that cannot be read back would fail every request it is sent with.
 */
export const MAX_VALUE_DEPTH = 64;

/**
 * How many values (each string, number, array, object ... counts one) one key may hold. A value that
 * refers to the same array twice at each of 40 levels has 2^40 of them: the walk stops there.
 */
export const MAX_VALUE_COUNT = 100_000;

/** NUL, or a surrogate without its pair: text that PostgreSQL's jsonb refuses. */
// eslint-disable-next-line no-control-regex -- NUL is what this pattern looks for
const JSONB_UNSAFE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

interface Frame {
  value: unknown;
  depth: number;
  parent: Frame | undefined;
  /** How the parent reaches this value: a property name or an array index. */
  step: string | number | undefined;
}

/** `cart.items[3].price`, for the error message; built only when something is refused. */
function pathOf(frame: Frame): string {
  let path = '';
  for (let f: Frame | undefined = frame; f; f = f.parent) {
    const step = f.step;
    if (step === undefined) continue; // the key's own value
    if (typeof step === 'number') path = `[${step}]${path}`;
    else path = /^[A-Za-z_$][\w$]*$/.test(step) ? `.${step}${path}` : `[${JSON.stringify(step)}]${path}`;
  }
  return path;
}

/** What a value is, for a message: "a Map", "NaN", "a function", "an instance of Cart". */
function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  if (typeof value === 'bigint') return 'a BigInt';
  if (value === undefined) return 'undefined';
  const name = (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)?.constructor?.name;
  return name ? `an instance of ${name}` : 'an object';
}

/**
 * Throws SessionSerializationError, naming the key and the path inside it, unless `value` is a JSON
 * value that reads back as it was written: null, booleans, finite numbers, strings, arrays without holes
 * or `undefined` items, and plain objects of those, at most MAX_VALUE_DEPTH levels deep. A `Date` is
 * allowed and stored as its ISO string (what JSON does; it reads back as that string). A property whose
 * value is `undefined` is left out, as JSON leaves it out (it reads back as missing, which `get` also
 * gives as undefined), and -0 is stored as 0. Everything else that JSON would quietly change is
 * refused: Map, Set, class instances, Buffer, NaN, Infinity, functions, symbols, arrays with named
 * properties or a toJSON method, more than MAX_VALUE_COUNT values. With `jsonb`, strings (keys included) must also
 * be text PostgreSQL's jsonb accepts. Walks without recursion, so no value can exhaust the stack here.
 */
export function assertJsonValue(key: string, value: unknown, options: { jsonb?: boolean } = {}): void {
  const jsonb = options.jsonb === true;
  const refuse = (frame: Frame, why: string): never => {
    throw new SessionSerializationError(key, `${key}${pathOf(frame)} ${why}`);
  };
  const root: Frame = { value, depth: 0, parent: undefined, step: undefined };
  if (jsonb && JSONB_UNSAFE.test(key)) refuse(root, 'is a key PostgreSQL jsonb cannot store (a NUL character or a lone surrogate)');
  const stack: Frame[] = [root];
  let count = 0;
  while (stack.length > 0) {
    const frame = stack.pop()!;
    if (++count > MAX_VALUE_COUNT)
      refuse(root, `holds more than ${MAX_VALUE_COUNT.toLocaleString('en-US')} values (or refers to the same ones many times)`);
    const v = frame.value;
    switch (typeof v) {
      case 'string':
        if (jsonb && JSONB_UNSAFE.test(v)) refuse(frame, 'holds a NUL character or a lone surrogate, which PostgreSQL jsonb cannot store');
        continue;
      case 'boolean':
        continue;
      case 'number':
        if (!Number.isFinite(v)) refuse(frame, `is ${describe(v)}, which JSON would store as null`);
        continue;
      case 'object':
        break;
      default:
        refuse(frame, `is ${describe(v)}, which JSON cannot store`);
    }
    if (v === null) continue;
    if (v instanceof Date) {
      if (Number.isNaN(v.getTime())) refuse(frame, 'is an invalid Date, which JSON would store as null');
      continue; // a string in JSON: no deeper than its place
    }
    if (frame.depth >= MAX_VALUE_DEPTH) refuse(frame, `is nested more than ${MAX_VALUE_DEPTH} levels deep (or refers to itself)`);
    if (Array.isArray(v)) {
      if (typeof (v as { toJSON?: unknown }).toJSON === 'function')
        refuse(frame, 'has a toJSON method, so JSON would store something else');
      if (Object.keys(v).length !== v.length && Object.keys(v).some((k) => !/^(0|[1-9][0-9]*)$/.test(k))) {
        refuse(frame, 'is an array with named properties, which JSON would leave out');
      }
      for (let i = 0; i < v.length; i++) {
        if (!(i in v)) refuse(frame, `has a hole at index ${i}, which JSON would store as null`);
        const item: unknown = v[i];
        if (item === undefined || typeof item === 'function' || typeof item === 'symbol') {
          refuse({ value: item, depth: frame.depth + 1, parent: frame, step: i }, `is ${describe(item)}, which JSON would store as null`);
        }
        stack.push({ value: item, depth: frame.depth + 1, parent: frame, step: i });
      }
      continue;
    }
    const proto: unknown = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) {
      refuse(frame, `is ${describe(v)}, which JSON would not store as it is: store plain objects and arrays`);
    }
    if (typeof (v as { toJSON?: unknown }).toJSON === 'function') refuse(frame, 'has a toJSON method, so JSON would store something else');
    const record = v as Record<string, unknown>;
    for (const k of Object.keys(record)) {
      const item = record[k];
      if (item === undefined) continue; // left out, as JSON does
      if (jsonb && JSONB_UNSAFE.test(k))
        refuse(
          { value: item, depth: frame.depth + 1, parent: frame, step: k },
          'is a key PostgreSQL jsonb cannot store (a NUL character or a lone surrogate)',
        );
      stack.push({ value: item, depth: frame.depth + 1, parent: frame, step: k });
    }
  }
}

/**
 * Whether JSON text nests deeper than `max` levels, by counting brackets outside strings: one pass, no
 * parsing. For data read back: a session stored by an older version, or by hand, that nests too deeply
 * is treated as unreadable instead of failing every request that reads it.
 */
export function jsonNestsDeeperThan(text: string, max = MAX_VALUE_DEPTH): boolean {
  if (text.length <= max) return false; // too short to hold max + 1 opening brackets
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

/** Whether parsed data nests deeper than `max` levels (the data object itself is level 1). Iterative. */
export function valueNestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > max) return true;
    for (const item of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof item === 'object' && item !== null) stack.push([item, depth + 1]);
    }
  }
  return false;
}
