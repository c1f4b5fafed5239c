export { SessionsModule } from './sessions.module.js';
export type { SessionsModuleAsyncOptions, SessionsOptionsFactory } from './sessions.module-definition.js';
export type { SessionsModuleOptions, SessionCookieOptions, SameSite, SessionTransportOption, SessionEvent } from './sessions.options.js';
export { SESSION_STORE, SESSIONS_OPTIONS } from './sessions.constants.js';
export { Session } from './session.decorator.js';
export { SkipCsrf } from './csrf.js';
export { TrackedSession, type SessionData, type SessionPatch } from './session.js';
export { SessionsService } from './sessions.service.js';
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
} from './sessions.errors.js';
export type { SessionStore, SessionStoreContext, LoadedSession, SessionTimes, IssuedToken } from './stores/session-store.js';
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

import type { SessionOf, SessionData } from './session.js';
/** The session a handler receives from `@Session()`: `session: Session<{ userId: string }>`. */
export type Session<T extends object = SessionData> = SessionOf<T>;
