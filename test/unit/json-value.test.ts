import { describe, expect, it } from 'vitest';
import { SessionSerializationError } from '../../src/index.js';
import { parseFields, serializeFields } from '../../src/stores/fields.js';
import { nested } from '../fixtures/app.js';
import { assertJsonValue, jsonNestsDeeperThan, MAX_VALUE_DEPTH, valueNestsDeeperThan } from '../../src/stores/json-value.js';

const refusal = (value: unknown, options?: { jsonb?: boolean }): string => {
  try {
    assertJsonValue('k', value, options);
  } catch (err) {
    expect(err).toBeInstanceOf(SessionSerializationError);
    expect((err as SessionSerializationError).key).toBe('k');
    return (err as Error).message;
  }
  throw new Error('accepted');
};

describe('values a save accepts', () => {
  it.each([
    ['null', null],
    ['a boolean', false],
    ['a finite number', -0.5],
    ['a string', 'Grüße, 世界 ✓'],
    ['an empty array', []],
    ['an array', [1, 'two', null, { three: [3] }]],
    ['a plain object', { a: { b: { c: 'd' } } }],
    ['an object without a prototype', Object.assign(Object.create(null) as object, { a: 1 })],
    ['a Date (stored as its ISO string)', new Date(0)],
    ['an object with an undefined property (left out, as JSON does)', { a: 1, b: undefined }],
    [`${MAX_VALUE_DEPTH} levels of nesting`, nested(MAX_VALUE_DEPTH)],
    ['a Date at the deepest level (a string in JSON)', nested(MAX_VALUE_DEPTH, new Date(0))],
    ['-0 (stored as 0)', -0],
  ])('%s', (_name, value) => {
    expect(() => assertJsonValue('k', value)).not.toThrow();
  });
});

describe('values a save refuses, naming the path to them', () => {
  it.each([
    ['a Map', new Map([['a', 1]]), /k is an instance of Map/],
    ['a Set inside an object', { tags: new Set() }, /k\.tags is an instance of Set/],
    ['a class instance', new (class Cart {})(), /k is an instance of Cart/],
    ['a Buffer', Buffer.from('x'), /k is an instance of Buffer/],
    ['NaN', NaN, /k is NaN, which JSON would store as null/],
    ['Infinity deep inside', { a: [{ b: -Infinity }] }, /k\.a\[0\]\.b is -Infinity/],
    ['a function in an object', { f() {} }, /k\.f is a function/],
    ['a symbol', Symbol('s'), /k is a symbol/],
    ['a BigInt', 10n, /k is a BigInt/],
    ['undefined in an array', [1, undefined], /k\[1\] is undefined, which JSON would store as null/],
    // eslint-disable-next-line no-sparse-arrays -- the hole is the point
    ['a hole in an array', [1, , 3], /k has a hole at index 1/],
    ['an invalid Date', new Date(NaN), /k is an invalid Date/],
    ['an object with toJSON', { toJSON: () => 'x' }, /k\.toJSON is a function|has a toJSON method/],
    ['a key that needs quoting', { 'a b': NaN }, /k\["a b"\] is NaN/],
    [`${MAX_VALUE_DEPTH + 1} levels of nesting`, nested(MAX_VALUE_DEPTH + 1), /nested more than 64 levels deep/],
    ['an array with a named property', Object.assign([1, 2], { label: 'x' }), /k is an array with named properties/],
    ['an array with a toJSON method', Object.assign([1], { toJSON: () => 'x' }), /k has a toJSON method/],
  ])('%s', (_name, value, message) => {
    expect(refusal(value)).toMatch(message);
  });

  it('a value that refers to itself is refused, not a stack overflow', () => {
    const loop: Record<string, unknown> = { a: 1 };
    loop.self = loop;
    expect(refusal(loop)).toMatch(/nested more than 64 levels deep \(or refers to itself\)/);
  });

  it('a value that holds the same array twice at each of 40 levels (2^40 values) is refused at once', () => {
    let value: unknown = [];
    for (let i = 0; i < 40; i++) value = [value, value];
    expect(refusal(value)).toMatch(/holds more than 100,000 values \(or refers to the same ones many times\)/);
  });

  it('100,000 levels of nesting are refused without exhausting the stack', () => {
    expect(refusal(nested(100_000))).toMatch(/nested more than 64 levels/);
  });

  it('for PostgreSQL, text jsonb cannot hold is refused in values and in keys', () => {
    expect(refusal({ a: 'x\u0000y' }, { jsonb: true })).toMatch(/k\.a holds a NUL character or a lone surrogate/);
    expect(refusal({ ['\uD800']: 1 }, { jsonb: true })).toMatch(/is a key PostgreSQL jsonb cannot store/);
    expect(() => assertJsonValue('k', { a: 'x\u0000y' })).not.toThrow();
  });

  it('serializeFields refuses before it serialises anything', () => {
    expect(() => serializeFields({ ok: 1, bad: new Map() })).toThrow(/bad is an instance of Map/);
  });
});

describe('nesting of data read back', () => {
  it('counts brackets outside strings only', () => {
    expect(jsonNestsDeeperThan(JSON.stringify(nested(64)))).toBe(false);
    expect(jsonNestsDeeperThan(JSON.stringify(nested(65)))).toBe(true);
    expect(jsonNestsDeeperThan(JSON.stringify({ s: '['.repeat(500) }))).toBe(false);
    expect(jsonNestsDeeperThan(JSON.stringify({ s: '\\"' + '['.repeat(500) }))).toBe(false);
    expect(jsonNestsDeeperThan('[]'.repeat(1000))).toBe(false);
  });

  it('parseFields refuses a field nested too deeply, so the store treats the session as unreadable', () => {
    expect(() => parseFields([['deep', '['.repeat(10_000) + ']'.repeat(10_000)]])).toThrow(/"deep" is nested more than 64 levels/);
    expect(parseFields([['ok', JSON.stringify(nested(64))]])).toEqual({ ok: nested(64) });
  });

  it('valueNestsDeeperThan walks parsed data without recursion', () => {
    expect(valueNestsDeeperThan({ a: nested(64) }, 65)).toBe(false);
    expect(valueNestsDeeperThan({ a: nested(65) }, 65)).toBe(true);
    expect(valueNestsDeeperThan({ a: nested(100_000) }, 65)).toBe(true);
  });
});
