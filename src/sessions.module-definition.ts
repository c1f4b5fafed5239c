import { ConfigurableModuleBuilder } from '@nestjs/common';
import { SESSIONS_OPTIONS } from './sessions.constants.js';
import type { SessionsModuleOptions } from './sessions.options.js';

/**
 * `forRoot` / `forRootAsync` come from Nest's ConfigurableModuleBuilder, so `useFactory`, `useClass`,
 * `useExisting`, `imports` and `inject` behave as in every other Nest module.
 */
export const {
  ConfigurableModuleClass: SessionsConfigurableModule,
  OPTIONS_TYPE: SESSIONS_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: SESSIONS_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<SessionsModuleOptions>({ optionsInjectionToken: SESSIONS_OPTIONS })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createSessionsOptions')
  .setExtras({}, (definition) => ({ ...definition, global: true }))
  .build();

/** What `forRootAsync({ useClass })` classes implement. */
export interface SessionsOptionsFactory {
  createSessionsOptions(): SessionsModuleOptions | Promise<SessionsModuleOptions>;
}

export type SessionsModuleAsyncOptions = typeof SESSIONS_ASYNC_OPTIONS_TYPE;
