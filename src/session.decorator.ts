import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { TrackedSession } from './session.js';
import { SESSION_PARAM, SESSION_SCHEMA } from './sessions.constants.js';
import { isStandardSchema, type StandardSchemaV1 } from './schema.js';
import { SessionsNotConfiguredError } from './sessions.errors.js';
import { notHttp } from './sessions.service.js';
import { handleOfRequest, handlerName } from './session-handle.js';
import { requestOf } from './transport/http.js';

/** Hands over the session the sessions interceptor loaded before the handler ran. No I/O. */
function sessionOf(_data: unknown, context: ExecutionContext): TrackedSession {
  const req = requestOf(context);
  if (!req) throw notHttp(context);
  const session = handleOfRequest(req)?.session;
  if (!session) {
    throw new SessionsNotConfiguredError(
      `@Session() in ${handlerName(context)} found no session: import ` +
        `SessionsModule.forRoot(secret) (or forRootAsync) in the application's root module`,
    );
  }
  return session;
}

const SessionParam = createParamDecorator(sessionOf);

/**
 * The request's session, loaded before the handler runs and saved after it, if it changed:
 *
 * ```ts
 * @Post('items')
 * add(@Session() session: Session<{ items: string[] }>) { ... }
 * ```
 *
 * With a Standard Schema, the stored data is checked before the handler runs (data that does not match
 * ends the session, and the handler gets a fresh one) and again at the save (`SessionValidationError`):
 * `@Session(CartSchema) session: Session<typeof CartSchema>`.
 */
export function Session(schema?: StandardSchemaV1): ParameterDecorator {
  if (schema !== undefined && !isStandardSchema(schema)) {
    throw new TypeError('@Session(schema) takes a Standard Schema (a zod, valibot or arktype schema, ...)');
  }
  const param = SessionParam();
  return (target, propertyKey, index) => {
    param(target, propertyKey, index);
    // Where Nest keeps its own parameter metadata: on the class, by method name. The interceptor reads it
    // to know that this handler needs the session loaded (see takesSession), and with which schema.
    // (Static methods are no route handlers: their target is the class itself.)
    if (propertyKey !== undefined && typeof target !== 'function') {
      Reflect.defineMetadata(SESSION_PARAM, index, target.constructor, propertyKey);
      if (schema) Reflect.defineMetadata(SESSION_SCHEMA, schema, target.constructor, propertyKey);
    }
  };
}

/** @internal The schema `@Session(schema)` gave `handler`, if any (found by name, as takesSession finds it). */
export function handlerSchema(controller: object, handler: { name: string }): StandardSchemaV1 | undefined {
  return Reflect.getMetadata(SESSION_SCHEMA, controller, handler.name) as StandardSchemaV1 | undefined;
}

/**
 * @internal Whether `handler`, a method of `controller` (or of a class it extends), takes `@Session()`.
 * Found by the method's name, so a method decorator that replaced the function does not hide it.
 * Called once per handler.
 */
export function takesSession(controller: { prototype: unknown }, handler: { name: string }): boolean {
  for (
    let proto = controller.prototype as object | null;
    proto && proto !== Object.prototype;
    proto = Object.getPrototypeOf(proto) as object | null
  ) {
    for (const name of Reflect.ownKeys(proto)) {
      if (name === 'constructor') continue;
      const descriptor = Object.getOwnPropertyDescriptor(proto, name);
      if (descriptor?.value === handler)
        return Reflect.getOwnMetadata(SESSION_PARAM, (proto as { constructor: object }).constructor, name) !== undefined;
    }
  }
  // Not a plain method of the class (an accessor or an instance property put it there): by its name.
  return Reflect.getMetadata(SESSION_PARAM, controller, handler.name) !== undefined;
}
