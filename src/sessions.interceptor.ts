import {
  HttpException,
  Injectable,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { catchError, concatMap, from, mergeMap, type Observable } from 'rxjs';
import { takesSession } from './session.decorator.js';
import { SESSION_HANDLE } from './sessions.constants.js';
import { SessionsService, type SessionHandle } from './sessions.service.js';
import { httpPairOf } from './transport/http.js';

/**
 * Loads the session before the handler and saves it after, once, only if something changed.
 *
 * Works for HTTP handlers and for GraphQL resolvers whose context carries `req` and `res`; WebSocket and
 * microservice handlers pass through untouched.
 *
 * Handlers that do not take `@Session()` pass straight through (one WeakMap lookup) unless a guard
 * loaded the session, in which case its changes are saved too.
 */
@Injectable()
export class SessionsInterceptor implements NestInterceptor {
  /** Whether each handler takes `@Session()`: worked out on its first request, then one lookup. */
  readonly #takes = new WeakMap<Function, boolean>();

  constructor(private readonly sessions: SessionsService) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const type = context.getType<string>();
    if (type !== 'http' && type !== 'graphql') return next.handle();
    const pair = httpPairOf(context);
    if (!pair) return next.handle();
    let handle = (pair.req as { [SESSION_HANDLE]?: SessionHandle })[SESSION_HANDLE];
    if (!handle) {
      const handler = context.getHandler();
      let takes = this.#takes.get(handler);
      if (takes === undefined) this.#takes.set(handler, (takes = takesSession(context.getClass(), handler)));
      if (!takes) return next.handle();
      handle = this.sessions.handleOf(context);
    }
    handle.where = `${context.getClass().name}.${context.getHandler().name}`;
    const session = handle;
    return from(session.load()).pipe(
      mergeMap(() => next.handle()),
      catchError((err: unknown) => from(this.#afterError(session, err))),
      concatMap(async (value) => {
        await session.save();
        return value;
      }),
    );
  }

  /**
   * A client error (4xx) keeps the session's changes and the cookie reaches the error response; anything
   * else rolls them back to the last save (in GraphQL, other resolvers of the request still save theirs).
   */
  async #afterError(handle: SessionHandle, err: unknown): Promise<never> {
    if (err instanceof HttpException && err.getStatus() < 500) {
      await handle.save();
    } else {
      handle.discard();
    }
    throw err;
  }
}

