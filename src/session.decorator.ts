import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { SESSION_HANDLE, TAKES_SESSION } from './sessions.constants.js';
import { SessionsNotConfiguredError } from './sessions.errors.js';
import type { SessionHandle } from './sessions.service.js';

function sessionOf(_data: unknown, context: ExecutionContext) {
  if (context.getType() !== 'http') {
    throw new SessionsNotConfiguredError(
      `@Session() works in HTTP handlers; ${context.getClass().name}.${context.getHandler().name} runs in a "${context.getType()}" context`,
    );
  }
  const handle = context.switchToHttp().getRequest<{ [SESSION_HANDLE]?: SessionHandle }>()[SESSION_HANDLE];
  if (!handle?.session) {
    throw new SessionsNotConfiguredError(
      `@Session() in ${context.getClass().name}.${context.getHandler().name} found no session: import ` +
        `SessionsModule.forRoot(secret) (or forRootAsync) in the application's root module`,
    );
  }
  return handle.session;
}

const SessionParam = createParamDecorator(sessionOf);

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
    // Marked on the method itself, so the interceptor knows at a glance which handlers take a session.
    const handler = (target as Record<string | symbol, unknown>)[propertyKey];
    if (typeof handler === 'function') Object.defineProperty(handler, TAKES_SESSION, { value: true });
  };
}
