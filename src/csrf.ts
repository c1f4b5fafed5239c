import { SetMetadata } from '@nestjs/common';
import { csrfTokenMatches } from './crypto/csrf-token.js';

/** Methods that must not change state, and so are never checked. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** @internal Metadata key of `@SkipCsrf()`. */
export const SKIP_CSRF = 'nest-sessions:skip-csrf';

/**
 * Lets requests to this handler (or every handler of this controller) through without the cross-site
 * check: for webhooks and other endpoints that other sites are meant to call. Their session, if any,
 * is loaded as usual, so such a handler should not trust it for anything that matters.
 */
export const SkipCsrf = (): MethodDecorator & ClassDecorator => SetMetadata(SKIP_CSRF, true);

/** What the cross-site check looks at. Header values as the request carries them (lower-cased names). */
export interface CsrfRequest {
  readonly method: string;
  readonly secFetchSite: string | undefined;
  readonly origin: string | undefined;
  /** The app's own origin as this request reached it: `http://127.0.0.1:8080` (or how to work it out, when needed). */
  readonly ownOrigin: string | (() => string);
}

/**
 * The cross-site check, as browsers now allow it (Fetch Metadata first, then Origin):
 * - GET, HEAD and OPTIONS pass: they must not change state.
 * - `Sec-Fetch-Site: same-origin` or `none` (the user typed the address, a bookmark) passes;
 *   `same-site` or `cross-site` passes only from a trusted origin.
 * - Without `Sec-Fetch-Site` (older browsers), an `Origin` that is neither the app's own nor trusted is
 *   refused, `null` included.
 * - With neither header, the request did not come from a browser that attaches cookies on its own
 *   (a browser sends at least one of them with every cross-origin POST): it passes.
 * Returns undefined when the request passes, or why it does not.
 */
export function crossSiteRefusal(req: CsrfRequest, trustedOrigins: ReadonlySet<string>): string | undefined {
  if (!changesState(req.method)) return undefined;
  const site = req.secFetchSite?.trim().toLowerCase();
  const origin = req.origin?.trim();
  const trusted = origin !== undefined && trustedOrigins.has(origin.toLowerCase());
  if (site === 'same-origin' || site === 'none') return undefined;
  if (site === 'same-site' || site === 'cross-site') {
    return trusted ? undefined : `Sec-Fetch-Site is ${site} and Origin ${origin ?? '(none)'} is not a trusted origin`;
  }
  if (origin === undefined || trusted) return undefined;
  const own = typeof req.ownOrigin === 'function' ? req.ownOrigin() : req.ownOrigin;
  if (origin.toLowerCase() === own.toLowerCase()) return undefined;
  return `Origin ${origin} is not this app's origin (${own}) nor a trusted one`;
}

/** Whether a request with this method is checked at all (anything but GET, HEAD and OPTIONS). */
export function changesState(method: string): boolean {
  return !SAFE_METHODS.has(method.toUpperCase());
}

/** Where the token was looked for, for messages: `the x-csrf-token header or the _csrf field`. */
export interface TokenPlaces {
  readonly tokenHeader: string;
  readonly tokenField: string;
}

/**
 * The token check of `requireToken`, for a state-changing request that passed the cross-site check:
 * the request must carry a token of the session's secret (one of them: a secret derived under each key
 * of the keyring). `secret` is null while the session is not loaded yet: then only a missing token can
 * be refused (before anything is read); undefined when the request has no session. Returns undefined
 * when the request passes, or why it does not.
 */
export function tokenRefusal(
  method: string,
  token: string | undefined,
  secret: string | readonly string[] | undefined | null,
  places: TokenPlaces,
): string | undefined {
  if (!changesState(method)) return undefined;
  if (token === undefined || token === '')
    return `no anti-forgery token in the ${places.tokenHeader} header or the ${places.tokenField} field`;
  if (secret === null) return undefined;
  if (secret === undefined) {
    return 'the request came without a session (no session cookie, or one that expired or ended), so no anti-forgery token can be its own';
  }
  if (!csrfTokenMatches(secret, token)) return `the anti-forgery token does not match this session`;
  return undefined;
}

/** `scheme://host[:port]` for a trusted-origin option, or undefined when it is not one. */
export function normalizeOrigin(value: string): string | undefined {
  if (value.includes('*')) return undefined; // no wildcards: list each origin
  try {
    const url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
    if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) return undefined;
    return url.origin.toLowerCase();
  } catch {
    return undefined;
  }
}
