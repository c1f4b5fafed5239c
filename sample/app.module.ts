import { Module } from '@nestjs/common';
import { InMemorySessionStore, SessionsModule } from 'nest-sessions';
import { AppController } from './app.controller.js';
import { LoggedInGuard } from './logged-in.guard.js';
import { ShopController } from './shop.controller.js';

const DEV_SECRET = 'sample-only-secret-never-use-this-in-production';

@Module({
  imports: [
    SessionsModule.forRoot({
      secret: process.env.SESSION_SECRET ?? DEV_SECRET,
      // Sessions in this process's memory, which keeps a list of each user's sessions for the
      // /shop/sessions page (the default cookie store cannot: its sessions live in the browsers).
      store: new InMemorySessionStore(),
      // That page shows each session's browser.
      userSessionInfo: { userAgent: true },
      // Cross-site requests are refused by default; this also requires the session's token on every
      // POST and DELETE (the /shop forms carry it, API clients get it from GET /csrf-token).
      csrf: { requireToken: true },
    }),
  ],
  controllers: [AppController, ShopController],
  providers: [LoggedInGuard],
})
export class AppModule {}
