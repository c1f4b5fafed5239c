import { HttpException, Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { Observable, type Subscription } from 'rxjs';
import { handlerSchema, takesSession } from './session.decorator.js';
import type { StandardSchemaV1 } from './schema.js';
import { handleOfRequest, type RequestWithHandle, type SessionHandle } from './session-handle.js';
import { SESSION_HANDLE } from './sessions.constants.js';
import { SessionsService } from './sessions.service.js';
import { httpPairOf, requestOf } from './transport/http.js';

/**
 * The one place where sessions are saved. `SessionsModule` registers it as a global interceptor
 * (`APP_INTERCEPTOR`). Per request:
 *
 * - if the handler takes `@Session()`, or something before it (a middleware, a guard, an interceptor
 *   outside this one) loaded the request's session: load it if need be, run the rest of the chain
 *   (inner interceptors, pipes, the handler), then save once, if something changed, after all of it;
 * - otherwise: `next.handle()`, and nothing else: no cookie parsing, no crypto, no store call.
 *
 * An error leaving the inner chain that is an `HttpException` below 500 keeps the changes (saved, and
 * the cookie reaches the error response); any other error rolls them back. An Observable result is
 * saved after each value, before Nest sends it. WebSocket and microservice contexts pass straight
 * through.
 */
@Injectable()
export class SessionsInterceptor implements NestInterceptor {
  /** Whether each handler takes `@Session()`: worked out on its first request, then one lookup. */
  readonly #takes = new WeakMap<object, boolean>();

  constructor(private readonly sessions: SessionsService) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const req = requestOf(context) as RequestWithHandle | undefined;
    if (!req) return next.handle();
    let handle = handleOfRequest(req);
    if (!handle) {
      if (!this.#takesSession(context)) return next.handle();
      const pair = httpPairOf(context)!;
      handle = this.sessions.attach(pair.req, pair.res);
    } else if (req[SESSION_HANDLE] !== handle) {
      // Loaded by a Fastify middleware, on Node's request: from here on, the route's request and reply.
      const pair = httpPairOf(context)!;
      handle.bind(pair.req, pair.res);
      req[SESSION_HANDLE] = handle;
    }
    return aroundChain(handle, context, next, this.#schemaOf(context));
  }

  /** The schema of the handler's `@Session(schema)`, if any: worked out on its first request. */
  readonly #schemas = new WeakMap<object, StandardSchemaV1 | null>();

  #schemaOf(context: ExecutionContext): StandardSchemaV1 | undefined {
    const handler = context.getHandler();
    let schema = this.#schemas.get(handler);
    if (schema === undefined) this.#schemas.set(handler, (schema = handlerSchema(context.getClass(), handler) ?? null));
    return schema ?? undefined;
  }

  #takesSession(context: ExecutionContext): boolean {
    const handler = context.getHandler();
    let takes = this.#takes.get(handler);
    if (takes === undefined) this.#takes.set(handler, (takes = takesSession(context.getClass(), handler)));
    return takes;
  }
}

/**
 * Loads the session (if it is not yet), runs the rest of the chain, saves after each value it gives.
 * One Observable of its own rather than a chain of operators (`defer`, `mergeMap`, `catchError`,
 * `concatMap`): per request that was most of what RxJS cost a session route. A value is passed on at
 * once when there is nothing to save (a read) and nothing is waiting; otherwise values, the error and
 * the completion go out in order, each after the save before it.
 */
function aroundChain(handle: SessionHandle, context: ExecutionContext, next: CallHandler, schema?: StandardSchemaV1): Observable<unknown> {
  handle.adopt(context);
  const { service } = handle;
  return new Observable<unknown>((subscriber) => {
    // Counted until the response has gone out (or the connection closed): a graceful shutdown waits for it.
    const counted = service.enter(false);
    let inner: Subscription | undefined;
    /** The last step still waiting on a save, if any. */
    let tail: Promise<void> | undefined;
    const inOrder = (step: () => void | Promise<void>): void => {
      const run = (tail ?? Promise.resolve()).then(step);
      tail = run;
      run.then(
        () => {
          if (tail === run) tail = undefined;
        },
        (err: unknown) => {
          if (tail === run) tail = undefined;
          subscriber.error(err);
        },
      );
    };
    // A request refused by the anti-forgery checks, or whose store is down, never reaches the chain,
    // and nothing is saved for it.
    handle.loadFor(context, schema).then(
      () => {
        if (subscriber.closed) return;
        let chain: Observable<unknown>;
        try {
          chain = next.handle();
        } catch (err) {
          inOrder(() => afterError(handle, err));
          return;
        }
        inner = chain.subscribe({
          next: (value) => {
            if (tail === undefined && !handle.needsSave()) subscriber.next(value);
            else
              inOrder(async () => {
                await handle.queueSave();
                subscriber.next(value);
              });
          },
          error: (err: unknown) => inOrder(() => afterError(handle, err)),
          complete: () => {
            if (tail === undefined) subscriber.complete();
            else inOrder(() => subscriber.complete());
          },
        });
        if (subscriber.closed) inner.unsubscribe();
      },
      (err: unknown) => subscriber.error(err),
    );
    return () => {
      // Nest writes the response after the chain completes, outer interceptors and filters first.
      if (counted) handle.whenClosed(service.requestLeft);
      inner?.unsubscribe();
    };
  });
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
