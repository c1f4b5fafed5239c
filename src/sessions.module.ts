import { Inject, Logger, Module, type DynamicModule, type NestInterceptor } from '@nestjs/common';
import { INTERCEPTORS_METADATA } from '@nestjs/common/constants.js';
import { APP_GUARD, APP_INTERCEPTOR, ModulesContainer } from '@nestjs/core';
import { guardsOf, injects, methodsOf, wrapSessionMethods } from './session-routes.js';
import { SESSION_STORE, SESSIONS_CONFIG, SESSIONS_OPTIONS } from './sessions.constants.js';
import { SessionsConfigError } from './sessions.errors.js';
import { aroundSessionMethod, GlobalSessionsInterceptor, SESSION_SAVER, SessionsInterceptor } from './sessions.interceptor.js';
import {
  SessionsConfigurableModule,
  type SessionsModuleAsyncOptions,
} from './sessions.module-definition.js';
import { resolveSessionsConfig, type SessionsConfig, type SessionsModuleOptions } from './sessions.options.js';
import { SessionsService } from './sessions.service.js';
import { CookieSessionStore } from './stores/cookie.store.js';

const logger = new Logger('SessionsModule');

/**
 * Wires the routes at startup, before Nest reads them, so that routes that take no session run no
 * session code at all (with Nest, an interceptor's mere presence costs a route a large share of its
 * throughput):
 * - methods that take `@Session()` are wrapped so that they save when they return (the decorator
 *   loads the session); no interceptor;
 * - routes whose guards inject SessionsService get SESSION_SAVER, which saves what the guard changed
 *   whether or not the handler takes the session, also when a pipe then refuses the request;
 * - a global guard that injects SessionsService makes the interceptor global (every route pays; logged).
 * Returns the global interceptor, or null (no global interceptor).
 */
function wireSessionRoutes(modules: ModulesContainer, sessions: SessionsService): NestInterceptor | null {
  wrapSessionMethods(aroundSessionMethod);
  const reasons: string[] = [];
  for (const module of modules.values()) {
    for (const [token, wrapper] of module.providers) {
      if (typeof token === 'string' && token.startsWith(APP_GUARD) && (injects(wrapper.metatype, SessionsService) || wrapper.inject?.includes(SessionsService))) {
        reasons.push(`the global guard ${(wrapper.metatype as Function | null)?.name ?? token} uses SessionsService`);
      }
    }
    for (const wrapper of [...module.controllers.values(), ...module.providers.values()]) {
      const cls = wrapper.metatype;
      if (typeof cls !== 'function' || wrapper.inject) continue;
      for (const [, handler] of methodsOf(cls)) {
        const guards = guardsOf(cls, handler);
        if (!guards.some((g) => injects(g, SessionsService) || injects((g as object)?.constructor, SessionsService))) continue;
        const interceptors = (Reflect.getMetadata(INTERCEPTORS_METADATA, handler) as unknown[] | undefined) ?? [];
        if (!interceptors.includes(SessionsInterceptor) && !interceptors.includes(SESSION_SAVER)) {
          Reflect.defineMetadata(INTERCEPTORS_METADATA, [...interceptors, SESSION_SAVER], handler);
        }
      }
    }
  }
  if (reasons.length === 0) return null;
  logger.warn(`Sessions run on every route (a global interceptor, which costs throughput) because ${reasons.join('; ')}.`);
  return new GlobalSessionsInterceptor(sessions);
}

/**
 * Sessions for the whole application. Import it once, in the root module:
 *
 * ```ts
 * @Module({ imports: [SessionsModule.forRoot(process.env.SESSION_SECRET)] })
 * export class AppModule {}
 * ```
 */
@Module({
  providers: [
    {
      provide: SESSIONS_CONFIG,
      useFactory: (options: SessionsModuleOptions) => resolveSessionsConfig(options),
      inject: [SESSIONS_OPTIONS],
    },
    {
      provide: SESSION_STORE,
      useFactory: (config: SessionsConfig) => config.store ?? new CookieSessionStore(),
      inject: [SESSIONS_CONFIG],
    },
    SessionsService,
    {
      // Usually nothing (null): see wireSessionRoutes. Nest skips an APP_* factory that returns nothing.
      provide: APP_INTERCEPTOR,
      useFactory: (modules: ModulesContainer, sessions: SessionsService) => wireSessionRoutes(modules, sessions),
      inject: [ModulesContainer, SessionsService],
    },
  ],
  exports: [SessionsService, SESSION_STORE, SESSIONS_OPTIONS],
})
export class SessionsModule extends SessionsConfigurableModule {
  constructor(@Inject(ModulesContainer) modules: ModulesContainer) {
    super();
    let registrations = 0;
    for (const module of modules.values()) if (module.metatype === SessionsModule) registrations++;
    if (registrations > 1) {
      throw new SessionsConfigError(
        `SessionsModule is registered ${registrations} times; import SessionsModule.forRoot() or forRootAsync() ` +
          `once, in the root module (it is global, so every other module sees it)`,
      );
    }
  }

  /**
   * Registers sessions with a secret (or secrets, newest first) or with options.
   * The module is global: register it once, in the root module.
   */
  static override forRoot(options: SessionsModuleOptions | string | readonly string[]): DynamicModule {
    // A bare secret, or no options at all (an unset environment variable): the options check says what is missing.
    const normalized =
      typeof options === 'object' && options !== null && !Array.isArray(options)
        ? (options as SessionsModuleOptions)
        : ({ secret: options } as SessionsModuleOptions);
    return super.forRoot(normalized);
  }

  /** Registers sessions with options made by a factory, a class or an existing provider. */
  static override forRootAsync(options: SessionsModuleAsyncOptions): DynamicModule {
    return super.forRootAsync(options);
  }
}
