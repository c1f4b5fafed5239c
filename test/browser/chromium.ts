import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium, driven by playwright-core (no browser download). */
const CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => !!p);
export const chromiumPath = CANDIDATES.find((p) => existsSync(p));

/** Whether browser tests run here; under CI=true a missing browser is a failure, not a skip. */
export const hasChromium = chromiumPath !== undefined;
if (!hasChromium) {
  const message = 'Chromium not found (apt-get install chromium, or set CHROMIUM_PATH): browser tests are skipped';
  if (process.env.CI === 'true') throw new Error(message);
  console.warn(message);
}

export function launch(): Promise<Browser> {
  // As root (CI), Chromium needs --no-sandbox. Its background connections (updates, sync) go nowhere on
  // a closed network, and only slow it down.
  const args = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ];
  return chromium.launch({ executablePath: chromiumPath, headless: true, args });
}
