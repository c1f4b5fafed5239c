import {
  HttpException,
  Injectable,
  Optional,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { INTERCEPTORS_METADATA } from '@nestjs/common/constants.js';
import { catchError, concatMap, from, isObservable, mergeMap, type Observable } from 'rxjs';
import { isSessionMethod, takesSession } from './session-routes.js';
import { SESSION_HANDLE } from './sessions.constants.js';
import { handleOfSession, SessionsService, type SessionHandle } from './sessions.service.js';
import { httpPairOf } from './transport/http.js';

/**
 * What a method that takes `@Session()` becomes at startup (see wrapSessionMethods): it runs the method
 * with the session that `@Session()` loaded, then saves it, before Nest sends the response; on an error,
 * the 4xx/5xx rule applies. An Observable result is saved after each value, as an interceptor would.
 * Called with anything but a loaded session (a unit test calling the method), it is the method as it was.
 */
export function aroundSessionMethod(method: Function, index: number): Function {
  return function (this: unknown, ...args: unknown[]): unknown {
    const handle = handleOfSession(args[index]);
    return handle ? runAndSave(handle, method, this, args) : method.apply(this, args);
  };
}

async function runAndSave(handle: SessionHandle, method: Function, self: unknown, args: unknown[]): Promise<unknown> {
  let value: unknown;
  try {
    value = await method.apply(self, args);
  } catch (err) {
    return afterError(handle, err);
  }
  if (isObservable(value)) return savedAfterEach(handle, value);
  await handle.save();
  return value;
}

function savedAfterEach(handle: SessionHandle, values: Observable<unknown>): Observable<unknown> {
  return values.pipe(
    catchError((err: unknown) => from(afterError(handle, err))),
    concatMap(async (value) => {
      await handle.save();
      return value;
    }),
  );
}

/** Loads the session (if it is not yet), runs the handler, saves after it (the 4xx/5xx rule applied). */
function aroundHandler(handle: SessionHandle, context: ExecutionContext, next: CallHandler): Observable<unknown> {
  handle.context = context;
  return savedAfterEach(handle, from(handle.load()).pipe(mergeMap(() => next.handle())));
}

/**
 * A client error (4xx) keeps the session's changes and the cookie reaches the error response; anything
 * else rolls them back to the last save (in GraphQL, other resolvers of the request still save theirs).
 */
async function afterError(handle: SessionHandle, err: unknown): Promise<never> {
  if (err instanceof HttpException && err.getStatus() < 500) await handle.save();
  else handle.discard();
  throw err;
}

function handleOf(context: ExecutionContext): SessionHandle | undefined {
  const pair = httpPairOf(context);
  return pair && (pair.req as { [SESSION_HANDLE]?: SessionHandle })[SESSION_HANDLE];
}

/**
 * Loads the session before the handler and saves it after, once, only if something changed.
 *
 * Handlers that take `@Session()` need none: they load through the decorator and save through the
 * wrapper the module gives them at startup, because with Nest the mere presence of an interceptor costs
 * a route about a third of its throughput on Fastify. The module uses it where a guard loads the session
 * (SESSION_SAVER) and, with a warning, globally; you may put it on a route yourself. It works for HTTP
 * handlers and GraphQL resolvers whose context carries `req` and `res`; WebSocket and microservice
 * handlers pass through untouched.
 */
@Injectable()
export class SessionsInterceptor implements NestInterceptor {
  /** Whether each handler takes `@Session()`: worked out on its first request, then one lookup. */
  readonly #takes = new WeakMap<Function, boolean>();

  constructor(@Optional() private readonly sessions?: SessionsService) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const pair = httpPairOf(context);
    if (!pair) return next.handle();
    let handle = (pair.req as { [SESSION_HANDLE]?: SessionHandle })[SESSION_HANDLE];
    if (!handle) {
      const handler = context.getHandler();
      let takes = this.#takes.get(handler);
      if (takes === undefined) this.#takes.set(handler, (takes = takesSession(context.getClass(), handler)));
      // Without the module, the handler runs and @Session() explains what is missing.
      if (!takes || !this.sessions) return next.handle();
      handle = this.sessions.handleOf(context);
    }
    return aroundHandler(handle, context, next);
  }
}

/**
 * The fallback on every route, for apps whose global guard loads the session (see SessionsModule).
 * Routes that save by themselves (a `@Session()` handler, SESSION_SAVER) are left to that.
 */
export class GlobalSessionsInterceptor extends SessionsInterceptor {
  readonly #wired = new WeakMap<Function, boolean>();

  override intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const handler = context.getHandler();
    let wired = this.#wired.get(handler);
    if (wired === undefined) {
      const own = (Reflect.getMetadata(INTERCEPTORS_METADATA, handler) as unknown[] | undefined) ?? [];
      wired = isSessionMethod(handler) || own.includes(SessionsInterceptor) || own.includes(SESSION_SAVER);
      this.#wired.set(handler, wired);
    }
    return wired ? next.handle() : super.intercept(context, next);
  }
}

/**
 * For routes whose guards load the session but whose handler does not take it: saves what the guard
 * changed. It holds no state of its own (the request's handle knows its app), so one instance serves
 * every app in the process; the module adds it to such routes at startup.
 */
export const SESSION_SAVER: NestInterceptor = {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const handle = handleOf(context);
    return handle ? aroundHandler(handle, context, next) : next.handle();
  },
};
