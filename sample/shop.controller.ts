import { Body, Controller, Get, Header, Post, Redirect } from '@nestjs/common';
import { Session, SessionsService } from 'nest-sessions';

interface ShopSession {
  cart: string[];
  user: { name: string; since: string };
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/**
 * The same cart as an HTML page with forms. Each form carries the session's anti-forgery token in a
 * hidden `_csrf` field: the module requires it (`csrf: { requireToken: true }` in app.module.ts).
 */
@Controller('shop')
export class ShopController {
  constructor(private readonly sessions: SessionsService) {}

  @Get()
  @Header('content-type', 'text/html; charset=utf-8')
  page(@Session() session: Session<ShopSession>) {
    const token = `<input type="hidden" name="_csrf" value="${session.csrfToken()}">`;
    const user = session.get('user');
    const items = session
      .get('cart', [])
      .map((sku) => `<li>${escapeHtml(sku)}</li>`)
      .join('');
    // Shown once: flashed by the form that redirected here, removed as it is read.
    const notice = session.getFlash<string>('notice');
    const banner = notice ? `<p class="notice">${escapeHtml(notice)}</p>` : '';
    const account = user
      ? `<p>Signed in as ${escapeHtml(user.name)} (<a href="/shop/sessions">active sessions</a>)</p>` +
        `<form method="post" action="/shop/logout">${token}<button>Log out</button></form>`
      : `<form method="post" action="/shop/login">${token}<input name="name" placeholder="name"><button>Log in</button></form>`;
    return `<!doctype html><title>Shop</title>${banner}${account}<ul>${items}</ul>
<form method="post" action="/shop/cart">${token}<input name="sku" placeholder="sku"><button>Add</button></form>`;
  }

  @Post('cart')
  @Redirect('/shop', 303)
  add(@Session() session: Session<ShopSession>, @Body() body: { sku?: string }) {
    if (!body?.sku) return;
    session.set('cart', [...session.get('cart', []), body.sku]);
    session.flash('notice', `Added ${body.sku}.`);
  }

  @Post('login')
  @Redirect('/shop', 303)
  login(@Session() session: Session<ShopSession>, @Body() body: { name?: string }) {
    session.regenerate(); // a new ID, and a new anti-forgery secret: the next page renders new tokens
    const name = body?.name || 'guest';
    session.set('user', { name, since: new Date().toISOString() });
    session.setUser(name); // listed on /shop/sessions, and ended by "sign out other devices"
    session.flash('notice', `Welcome, ${name}.`);
  }

  /** The signed-in user's sessions, this one marked, with a form that ends the others. */
  @Get('sessions')
  @Header('content-type', 'text/html; charset=utf-8')
  async activeSessions(@Session() session: Session<ShopSession>) {
    const userId = session.userId;
    if (!userId) return '<!doctype html><title>Active sessions</title><p><a href="/shop">Log in</a> first.</p>';
    const notice = session.getFlash<string>('notice');
    const rows = (await this.sessions.userSessions(userId, session))
      .map(
        (s) =>
          `<li>${escapeHtml(s.userAgent ?? 'unknown browser')}, signed in ${s.createdAt.toISOString()}, ` +
          `last seen ${s.lastSeenAt.toISOString()}${s.current ? ' <strong>(this one)</strong>' : ''}</li>`,
      )
      .join('');
    const token = `<input type="hidden" name="_csrf" value="${session.csrfToken()}">`;
    return `<!doctype html><title>Active sessions</title>${notice ? `<p class="notice">${escapeHtml(notice)}</p>` : ''}
<ul class="sessions">${rows}</ul>
<form method="post" action="/shop/sign-out-others">${token}<button>Sign out other devices</button></form>
<p><a href="/shop">Back to the shop</a></p>`;
  }

  @Post('sign-out-others')
  @Redirect('/shop/sessions', 303)
  async signOutOthers(@Session() session: Session<ShopSession>) {
    const userId = session.userId;
    if (!userId) return;
    const ended = await this.sessions.destroyUserSessions(userId, { except: session });
    session.flash('notice', `Signed out ${ended} other ${ended === 1 ? 'device' : 'devices'}.`);
  }

  @Post('logout')
  @Redirect('/shop', 303)
  logout(@Session() session: Session<ShopSession>) {
    session.destroy();
    session.flash('notice', 'You are logged out.'); // starts the new, anonymous session it is shown in
  }
}
