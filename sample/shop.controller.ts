import { Body, Controller, Get, Header, Post, Redirect } from '@nestjs/common';
import { Session } from 'nest-sessions';

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
      ? `<p>Signed in as ${escapeHtml(user.name)}</p><form method="post" action="/shop/logout">${token}<button>Log out</button></form>`
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
    session.set('user', { name: body?.name || 'guest', since: new Date().toISOString() });
    session.flash('notice', `Welcome, ${body?.name || 'guest'}.`);
  }

  @Post('logout')
  @Redirect('/shop', 303)
  logout(@Session() session: Session<ShopSession>) {
    session.destroy();
    session.flash('notice', 'You are logged out.'); // starts the new, anonymous session it is shown in
  }
}
