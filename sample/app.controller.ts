import { Body, Controller, Delete, Get, Post, UseGuards } from '@nestjs/common';
import { Session } from 'nest-sessions';
import { LoggedInGuard } from './logged-in.guard.js';

interface AppSession {
  visits: number;
  cart: string[];
  user: { name: string; since: string };
}

@Controller()
export class AppController {
  /** A visit counter: read, change, and the change is saved after the handler. */
  @Get()
  visit(@Session() session: Session<AppSession>) {
    const visits = session.get('visits', 0) + 1;
    session.set('visits', visits);
    return { visits, user: session.get('user')?.name ?? null };
  }

  /**
   * The session's anti-forgery token, for API clients and scripts: send it back in the x-csrf-token
   * header with every POST and DELETE. The first call starts the session.
   */
  @Get('csrf-token')
  csrfToken(@Session() session: Session<AppSession>) {
    return { token: session.csrfToken() };
  }

  /** Reading alone sends no cookie and writes nothing. */
  @Get('cart')
  cart(@Session() session: Session<AppSession>) {
    return { items: session.get('cart', []) };
  }

  /** The array read from the session is changed in place: that is saved too. */
  @Post('cart')
  addToCart(@Session() session: Session<AppSession>, @Body() body: { sku?: string }) {
    if (!body?.sku) return { error: 'send {"sku": "..."}' };
    const items = session.get('cart');
    if (items) items.push(body.sku);
    else session.set('cart', [body.sku]);
    return { items: session.get('cart') };
  }

  @Delete('cart')
  emptyCart(@Session() session: Session<AppSession>) {
    session.delete('cart');
    return { items: [] };
  }

  /**
   * New ID on login, so an ID planted before it is worth nothing after it; the anti-forgery secret is
   * new too, so the response carries the token to use from now on.
   */
  @Post('login')
  login(@Session() session: Session<AppSession>, @Body() body: { name?: string }) {
    session.regenerate();
    const name = body?.name || 'guest';
    session.set('user', { name, since: new Date().toISOString() });
    session.setUser(name); // listed among the user's sessions (see /shop/sessions)
    return { loggedIn: true, csrfToken: session.csrfToken() };
  }

  @Post('logout')
  logout(@Session() session: Session<AppSession>) {
    session.destroy();
    return { loggedIn: false };
  }

  /** The guard loaded the session already; the handler gets the same object. */
  @Get('me')
  @UseGuards(LoggedInGuard)
  me(@Session() session: Session<AppSession>) {
    return session.getOrThrow('user');
  }
}
