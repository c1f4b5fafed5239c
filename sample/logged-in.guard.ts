import { Injectable, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { SessionsService } from 'nest-sessions';

/** Lets a request through only when its session has a user. Loading here costs nothing extra: the handler reuses it. */
@Injectable()
export class LoggedInGuard implements CanActivate {
  constructor(private readonly sessions: SessionsService) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await this.sessions.load(context);
    if (!session.has('user')) throw new UnauthorizedException('Log in first: POST /login');
    return true;
  }
}
