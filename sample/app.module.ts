import { Module } from '@nestjs/common';
import { SessionsModule } from 'nest-sessions';
import { AppController } from './app.controller.js';
import { LoggedInGuard } from './logged-in.guard.js';
import { ShopController } from './shop.controller.js';

const DEV_SECRET = 'sample-only-secret-never-use-this-in-production';

@Module({
  imports: [
    SessionsModule.forRoot({
      secret: process.env.SESSION_SECRET ?? DEV_SECRET,
      // Cross-site requests are refused by default; this also requires the session's token on every
      // POST and DELETE (the /shop forms carry it, API clients get it from GET /csrf-token).
      csrf: { requireToken: true },
    }),
  ],
  controllers: [AppController, ShopController],
  providers: [LoggedInGuard],
})
export class AppModule {}
