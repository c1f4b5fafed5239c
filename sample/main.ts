import 'reflect-metadata';
import { Logger, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';

/** `ADAPTER=fastify npm start` runs the same app on Fastify; Express is the default. */
async function create(adapter: string): Promise<INestApplication> {
  if (adapter === 'fastify') {
    const { FastifyAdapter } = await import('@nestjs/platform-fastify');
    return NestFactory.create(AppModule, new FastifyAdapter());
  }
  if (adapter !== 'express') throw new Error(`ADAPTER must be "express" or "fastify"; got "${adapter}"`);
  return NestFactory.create(AppModule);
}

async function main() {
  if (!process.env.SESSION_SECRET) {
    Logger.warn('SESSION_SECRET is not set: using the sample secret. Set your own outside this sample.', 'Sample');
  }
  const adapter = process.env.ADAPTER ?? 'express';
  const app = await create(adapter);
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, '127.0.0.1');
  Logger.log(`Sample app on http://127.0.0.1:${port} (${adapter})`, 'Sample');
}

main().catch((err: unknown) => {
  Logger.error(err instanceof Error ? err.message : String(err), 'Sample');
  process.exitCode = 1;
});
