import { createParamDecorator, UseInterceptors, type ExecutionContext } from '@nestjs/common';
import { INTERCEPTORS_METADATA } from '@nestjs/common/constants.js';
import { recordSessionMethod } from './session-routes.js';
import { SessionsInterceptor } from './sessions.interceptor.js';
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
    recordSessionMethod((target as { constructor: Function }).constructor, propertyKey);
    // The interceptor goes on this method only: routes that take no session run none.
    const descriptor = Object.getOwnPropertyDescriptor(target, propertyKey);
    const interceptors = descriptor && (Reflect.getMetadata(INTERCEPTORS_METADATA, descriptor.value) as unknown[] | undefined);
    if (descriptor && !interceptors?.includes(SessionsInterceptor)) UseInterceptors(SessionsInterceptor)(target, propertyKey, descriptor);
  };
}
