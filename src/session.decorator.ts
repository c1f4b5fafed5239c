import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { SESSION_HANDLE } from './sessions.constants.js';
import { SessionsNotConfiguredError } from './sessions.errors.js';
import { notHttp, type SessionHandle } from './sessions.service.js';
import { httpPairOf } from './transport/http.js';

function sessionOf(_data: unknown, context: ExecutionContext) {
  const pair = httpPairOf(context);
  if (!pair) throw notHttp(context);
  const handle = (pair.req as { [SESSION_HANDLE]?: SessionHandle })[SESSION_HANDLE];
  if (!handle?.session) {
    throw new SessionsNotConfiguredError(
      `@Session() in ${context.getClass().name}.${context.getHandler().name} found no session: import ` +
        `SessionsModule.forRoot(secret) (or forRootAsync) in the application's root module`,
    );
  }
  return handle.session;
}

const SessionParam = createParamDecorator(sessionOf);

/** Method names that take `@Session()`, by the class that declares them. */
const sessionMethods = new WeakMap<object, Set<string | symbol>>();

/**
 * Whether a handler takes `@Session()`. Looked up by class and method name, not on the function, so a
 * method decorator that wraps the handler (logging, tracing) does not hide it.
 */
export function takesSession(controller: Function, handler: Function): boolean {
  for (let cls: Function | null = controller; cls && cls !== Function.prototype; cls = Object.getPrototypeOf(cls) as Function | null) {
    const names = sessionMethods.get(cls);
    if (!names) continue;
    for (const name of names) {
      if ((controller.prototype as Record<string | symbol, unknown>)?.[name] === handler) return true;
    }
  }
  return false;
}

/**
 * The request's session, loaded before the handler runs and saved after it, if it changed:
 *
 * ```ts
 * @Post('items')
 * add(@Session() session: Session<{ items: string[] }>) { ... }
 * ```
 */
export function Session(): ParameterDecorator {
  const param = SessionParam();
  return (target, propertyKey, index) => {
    param(target, propertyKey, index);
    if (propertyKey === undefined) return;
    const cls = (target as { constructor: Function }).constructor;
    let names = sessionMethods.get(cls);
    if (!names) sessionMethods.set(cls, (names = new Set()));
    names.add(propertyKey);
  };
}
