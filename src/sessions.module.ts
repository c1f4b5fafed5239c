import { Inject, Module, type DynamicModule } from '@nestjs/common';
import { APP_INTERCEPTOR, ModulesContainer } from '@nestjs/core';
import { SESSION_STORE, SESSIONS_CONFIG, SESSIONS_MODULE_MARK, SESSIONS_OPTIONS } from './sessions.constants.js';
import { SessionsConfigError } from './sessions.errors.js';
import { SessionsInterceptor } from './sessions.interceptor.js';
import { SessionsConfigurableModule, type SessionsModuleAsyncOptions } from './sessions.module-definition.js';
import { resolveSessionsConfig, type SessionsConfig, type SessionsModuleOptions } from './sessions.options.js';
import { SessionsService } from './sessions.service.js';
import { CookieSessionStore } from './stores/cookie.store.js';

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
    // The one place that loads what @Session() needs and saves every session (see SessionsInterceptor).
    { provide: APP_INTERCEPTOR, useClass: SessionsInterceptor },
  ],
  exports: [SessionsService, SESSION_STORE, SESSIONS_OPTIONS],
})
export class SessionsModule extends SessionsConfigurableModule {
  constructor(@Inject(ModulesContainer) modules: ModulesContainer) {
    super();
    let registrations = 0;
    let otherCopies = 0;
    for (const module of modules.values()) {
      const metatype = module.metatype as { [SESSIONS_MODULE_MARK]?: unknown } | undefined;
      if (metatype === SessionsModule) registrations++;
      else if (metatype?.[SESSIONS_MODULE_MARK] === true) otherCopies++;
    }
    if (registrations + otherCopies > 1) {
      throw new SessionsConfigError(
        `SessionsModule is registered ${registrations + otherCopies} times; import SessionsModule.forRoot() or forRootAsync() ` +
          `once, in the root module (it is global, so every other module sees it)` +
          (otherCopies > 0 ? `. ${otherCopies} of them came from the package's other build (CommonJS and ESM were both loaded)` : ''),
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

// Read by the registration count above, in this copy of the package and in the other build.
Object.defineProperty(SessionsModule, SESSIONS_MODULE_MARK, { value: true });
