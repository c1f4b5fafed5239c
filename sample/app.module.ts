import { Module } from '@nestjs/common';
import { SessionsModule } from 'nest-sessions';
import { AppController } from './app.controller.js';
import { LoggedInGuard } from './logged-in.guard.js';

const DEV_SECRET = 'sample-only-secret-never-use-this-in-production';

@Module({
  imports: [SessionsModule.forRoot(process.env.SESSION_SECRET ?? DEV_SECRET)],
  controllers: [AppController],
  providers: [LoggedInGuard],
})
export class AppModule {}
