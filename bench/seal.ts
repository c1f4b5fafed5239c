/**
 * Seal + open of a session, in one process, beside what users would otherwise pick:
 *   - nest-sessions' CookieSessionStore: AES-256-GCM, per-token key, times and cookie name sealed in.
 *   - iron-session's sealData/unsealData (iron: AES-256-CBC + HMAC-SHA256, PBKDF2-derived keys per seal).
 *   - cookie-session's work per request: base64 JSON, signed (not encrypted) with keygrip (HMAC-SHA1).
 *
 * Candidates take turns in short rounds so that machine noise hits them alike; the median of the rounds
 * is reported, with ratios to iron-session measured in the same run.
 *
 *   npm run bench:seal            (or: npm run bench:seal -- --quick)
 */
import { Logger } from '@nestjs/common';
import { sealData, unsealData } from 'iron-session';
import Keygrip from 'keygrip';
import { Keyring } from '../src/crypto/keyring.js';
import { refreshedTimes } from '../src/session-times.js';
import { CookieSessionStore } from '../src/stores/cookie.store.js';
import type { SessionStoreContext } from '../src/stores/session-store.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 5 : 15;
const ROUND_MS = quick ? 150 : 300;
const SECRET = 'bench-secret-bench-secret-bench-secret-0123456789';

function session(bytes: number): Record<string, unknown> {
  const data: Record<string, unknown> = { userId: 'u_12345', role: 'member', cart: [] as string[] };
  let i = 0;
  while (JSON.stringify(data).length < bytes) (data.cart as string[]).push(`sku-${i++}-${'x'.repeat(20)}`);
  return data;
}

type Candidate = { name: string; run: () => Promise<unknown> };

function candidates(data: Record<string, unknown>): Candidate[] {
  const ctx: SessionStoreContext = { keyring: new Keyring([SECRET]), tokenName: 'session', logger: new Logger('bench') };
  const store = new CookieSessionStore({ maxChunks: 20 });
  const timing = { ttlMs: 86_400_000, rolling: false, touchAfterMs: 60_000 };
  const keys = new Keygrip([SECRET]);
  return [
    {
      name: 'nest-sessions (AES-256-GCM)',
      run: async () => {
        const { token } = await store.create(data, refreshedTimes(timing, Date.now()), ctx);
        const opened = await store.load(token, ctx);
        if (!opened) throw new Error('did not open');
      },
    },
    {
      name: 'iron-session (iron)',
      run: async () => {
        const sealed = await sealData(data, { password: SECRET, ttl: 86_400 });
        const opened = await unsealData(sealed, { password: SECRET, ttl: 86_400 });
        if (!opened) throw new Error('did not open');
      },
    },
    {
      name: 'cookie-session (signed only)',
      run: async () => {
        const value = Buffer.from(JSON.stringify(data)).toString('base64');
        const signature = keys.sign(`session=${value}`);
        if (keys.index(`session=${value}`, signature) < 0) throw new Error('did not verify');
        JSON.parse(Buffer.from(value, 'base64').toString('utf8'));
      },
    },
  ];
}

async function measure(candidate: Candidate, ms: number): Promise<number> {
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < 20; i++) await candidate.run();
    ops += 20;
    now = performance.now();
  }
  return (ops * 1000) / (now - start);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  console.log(`Seal + open, ${ROUNDS} rounds of ${ROUND_MS} ms each, Node ${process.version}, ${new Date().toISOString()}\n`);
  for (const size of [200, 3_000]) {
    const data = session(size);
    const list = candidates(data);
    for (const c of list) await measure(c, 100); // warm-up
    const results = new Map<string, number[]>(list.map((c) => [c.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of list) results.get(c.name)!.push(await measure(c, ROUND_MS));
    }
    const iron = median(results.get('iron-session (iron)')!);
    console.log(`Session of ${JSON.stringify(data).length} bytes of JSON`);
    console.log('| candidate | seal+open per second | vs iron-session |');
    console.log('| --- | ---: | ---: |');
    for (const [name, xs] of results) {
      const m = median(xs);
      console.log(`| ${name} | ${Math.round(m).toLocaleString('en-US')} | ${(m / iron).toFixed(2)}x |`);
    }
    console.log('');
  }
}

await main();
