export { SessionsModule } from './sessions.module.js';
export type { SessionsModuleAsyncOptions, SessionsOptionsFactory } from './sessions.module-definition.js';
export type { SessionsModuleOptions, SessionCookieOptions, SameSite, SessionTransportOption, SessionEvent } from './sessions.options.js';
export { SESSION_STORE, SESSIONS_OPTIONS } from './sessions.constants.js';
export { Session } from './session.decorator.js';
export { SkipCsrf } from './csrf.js';
export { TrackedSession, type SessionData, type SessionPatch } from './session.js';
export { SessionsService, type UserSession } from './sessions.service.js';
export { SessionsInterceptor } from './sessions.interceptor.js';
export {
  expressSession,
  type ExpressSession,
  type ExpressSessionCookie,
  type ExpressMiddleware,
  type SessionCallback,
} from './compat/express-session.js';
export { fastifySession, type FastifySession } from './compat/fastify-session.js';
export type { ExpressSessionMigrationOptions, ExpressSessionStoreLike } from './migration/express-session.js';
export {
  SessionsConfigError,
  SessionKeyError,
  SessionSerializationError,
  SessionsNotConfiguredError,
  SessionTooLargeError,
  SessionStoreUnavailableError,
  SessionValidationError,
} from './sessions.errors.js';
export type {
  SessionStore,
  SessionStoreContext,
  LoadedSession,
  SessionTimes,
  IssuedToken,
  UserSessionEntry,
  UserSessionIndex,
} from './stores/session-store.js';
export { ServerSessionStore, type ServerSessionStoreOptions, type StoredSession } from './stores/server-store.js';
export { CookieSessionStore, type CookieSessionStoreOptions, type SessionSerializer } from './stores/cookie.store.js';
export { RedisSessionStore, type RedisSessionStoreOptions } from './stores/redis.store.js';
export {
  PostgresSessionStore,
  postgresSessionTableSql,
  type PostgresSessionStoreOptions,
  type PgPoolLike,
} from './stores/postgres.store.js';
export { InMemorySessionStore, type InMemorySessionStoreOptions } from './stores/memory.store.js';
export { MemcachedSessionStore, type MemcachedSessionStoreOptions, type MemcacheClientLike } from './stores/memcached.store.js';

export type { StandardSchemaV1 } from './schema.js';

import type { SessionOf, SessionData } from './session.js';
import type { StandardSchemaV1 } from './schema.js';
/**
 * The session a handler receives from `@Session()`: `session: Session<{ userId: string }>`, or, with a
 * Standard Schema, `session: Session<typeof CartSchema>` (its output type is the data's shape).
 */
export type Session<T extends object = SessionData> = T extends StandardSchemaV1
  ? SessionOf<StandardSchemaV1.InferOutput<T> extends object ? StandardSchemaV1.InferOutput<T> : SessionData>
  : SessionOf<T>;
