import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';

async function main() {
  if (!process.env.SESSION_SECRET) {
    Logger.warn('SESSION_SECRET is not set: using the sample secret. Set your own outside this sample.', 'Sample');
  }
  const app = await NestFactory.create(AppModule);
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, '127.0.0.1');
  Logger.log(`Sample app on http://127.0.0.1:${port}`, 'Sample');
}

void main();
