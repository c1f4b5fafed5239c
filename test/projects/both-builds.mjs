// Both builds of the package in one process, as when an ESM app uses a CommonJS library built on the
// package (or the other way round): what must be shared is. Run after `npm run build`.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const cjs = require('../../dist/cjs/index.js');
const esm = await import('../../dist/esm/index.js');

assert.notEqual(cjs.SessionsModule, esm.SessionsModule, 'two copies are loaded');
// DI tokens: a store provided under one copy's token is found under the other's.
assert.equal(cjs.SESSION_STORE, esm.SESSION_STORE);
assert.equal(cjs.SESSIONS_OPTIONS, esm.SESSIONS_OPTIONS);
// Errors thrown by one copy are recognised by the other's classes (a store down stays a 503).
assert.ok(new cjs.SessionStoreUnavailableError('down') instanceof esm.SessionStoreUnavailableError);
assert.ok(new esm.SessionTooLargeError(2, 1, 'a cookie') instanceof cjs.SessionTooLargeError);
assert.ok(!(new cjs.SessionTooLargeError(2, 1, 'a cookie') instanceof esm.SessionStoreUnavailableError));
console.log('  ✓ both builds in one process share their tokens and error classes');

// Registering each copy's module is two registrations, reported as such, not two silent interceptors.
const { Module } = await import('@nestjs/common');
const { Test } = await import('@nestjs/testing');
const secret = 'both-builds-check-secret-7f3a9c1e5b2d4086';
class Twice {}
Module({ imports: [cjs.SessionsModule.forRoot(secret), esm.SessionsModule.forRoot(secret)] })(Twice);
await assert.rejects(
  Test.createTestingModule({ imports: [Twice] }).compile(),
  (err) => err instanceof esm.SessionsConfigError && /registered 2 times.*other build/.test(err.message),
);
console.log("  ✓ registering both builds' modules is refused as two registrations");
