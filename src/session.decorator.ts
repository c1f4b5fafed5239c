import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { TrackedSession } from './session.js';
import { recordSessionMethod } from './session-routes.js';
import { SESSION_HANDLE } from './sessions.constants.js';
import { SessionsNotConfiguredError } from './sessions.errors.js';
import { notHttp, sessionsServiceFor, type SessionHandle } from './sessions.service.js';
import { httpPairOf } from './transport/http.js';

/**
 * The session, loaded here on first use (Nest awaits a promise from a parameter decorator). A guard
 * that loaded it already hands over the same object.
 */
function sessionOf(_data: unknown, context: ExecutionContext): TrackedSession | Promise<TrackedSession> {
  const pair = httpPairOf(context);
  if (!pair) throw notHttp(context);
  const req = pair.req as { [SESSION_HANDLE]?: SessionHandle };
  let handle = req[SESSION_HANDLE];
  if (!handle) {
    const sessions = sessionsServiceFor(req);
    if (!sessions) {
      throw new SessionsNotConfiguredError(
        `@Session() in ${context.getClass().name}.${context.getHandler().name} found no session: import ` +
          `SessionsModule.forRoot(secret) (or forRootAsync) in the application's root module`,
      );
    }
    handle = sessions.handleFor(req, pair.res);
  }
  handle.context = context;
  return handle.session ?? handle.load();
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
    // At startup the module wraps the method so that it saves the session when it returns (see
    // wrapSessionMethods): no interceptor, which in Nest costs a route a large share of its throughput.
    if (propertyKey !== undefined) recordSessionMethod((target as { constructor: Function }).constructor, propertyKey, index);
  };
}
