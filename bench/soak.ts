/**
 * npm run soak [-- --sessions=1000000] [-- --only=memory|redis]
 *
 * Creates, reads, changes and lets expire SOAK sessions (default 1,000,000) against the in-memory and
 * Redis stores, over HTTP, each store's app in a process of its own (started with --expose-gc), and
 * samples that process's heap (after a full collection) and RSS as it goes. Sessions live 2 seconds,
 * so the stores must keep forgetting them. Writes bench/results/soak.md, .svg and .json.
 */
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { REDIS_PREFIX, type Kind } from './scenarios.js';
import { startServer } from './servers.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const SESSIONS = Number(flag('sessions') ?? 1_000_000);
const ONLY = flag('only');
const WORKERS = 32;
const SAMPLES = 40;

interface Sample {
  sessions: number;
  seconds: number;
  heapMB: number;
  rssMB: number;
}

function memory(child: ChildProcess): Promise<{ heapUsed: number; rss: number }> {
  return new Promise((resolve) => {
    const onMessage = (m: { memory?: { heapUsed: number; rss: number } }) => {
      if (!m.memory) return;
      child.off('message', onMessage);
      resolve(m.memory);
    };
    child.on('message', onMessage);
    child.send('memory');
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: WORKERS });

function send(port: number, method: string, path: string, cookie?: string, body?: string): Promise<{ status: number; cookie?: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (cookie) headers.cookie = cookie;
    if (body) Object.assign(headers, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, cookie: res.headers['set-cookie']?.[0]?.split(';')[0] }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** One session's life: created by a write, read, changed, then left to expire. */
async function lifecycle(port: number, i: number): Promise<void> {
  const created = await send(port, 'POST', '/write', undefined, JSON.stringify({ value: `v${i}` }));
  if (created.status !== 201 || !created.cookie) throw new Error(`create failed: ${created.status}`);
  const read = await send(port, 'GET', '/read', created.cookie);
  if (read.status !== 200) throw new Error(`read failed: ${read.status}`);
  const changed = await send(port, 'POST', '/write', created.cookie, JSON.stringify({ value: `w${i}` }));
  if (changed.status !== 201) throw new Error(`change failed: ${changed.status}`);
}

async function soak(kind: Kind): Promise<Sample[]> {
  const { child, port } = await startServer({ platform: 'fastify', kind, maxAge: 2 }, ['--expose-gc']);
  const samples: Sample[] = [];
  const started = Date.now();
  let next = 0;
  let done = 0;
  const every = Math.max(1, Math.floor(SESSIONS / SAMPLES));
  let sampling = Promise.resolve();
  const sample = async () => {
    const { heapUsed, rss } = await memory(child);
    samples.push({ sessions: done, seconds: (Date.now() - started) / 1000, heapMB: heapUsed / 2 ** 20, rssMB: rss / 2 ** 20 });
    const last = samples.at(-1)!;
    process.stdout.write(
      `  ${kind} ${last.sessions.toLocaleString('en-US')} sessions, ${last.seconds.toFixed(0)} s: heap ${last.heapMB.toFixed(1)} MB, RSS ${last.rssMB.toFixed(1)} MB\n`,
    );
  };
  await sample();
  try {
    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        for (let i = next++; i < SESSIONS; i = next++) {
          await lifecycle(port, i);
          done++;
          if (done % every === 0) sampling = sampling.then(sample);
        }
      }),
    );
    await sampling;
    // Past the last session's expiry and a sweep, what is left is what the app keeps for good.
    await new Promise((r) => setTimeout(r, 4_000));
    await sample();
  } finally {
    child.send('stop');
  }
  return samples;
}

function svg(results: Record<string, Sample[]>): string {
  const W = 720;
  const H = 300;
  const pad = 50;
  const all = Object.values(results).flat();
  const maxX = Math.max(...all.map((s) => s.sessions), 1);
  const maxY = Math.max(...all.map((s) => s.rssMB), 1) * 1.1;
  const x = (v: number) => pad + ((W - 2 * pad) * v) / maxX;
  const y = (v: number) => H - pad - ((H - 2 * pad) * v) / maxY;
  const colors: Record<string, string> = {
    'ours-memory heap': '#2f80ed',
    'ours-memory rss': '#9bbff5',
    'ours-redis heap': '#eb5757',
    'ours-redis rss': '#f5a9a9',
  };
  const lines: string[] = [];
  let legend = 0;
  for (const [kind, samples] of Object.entries(results)) {
    for (const [what, key] of [
      ['heap', 'heapMB'],
      ['rss', 'rssMB'],
    ] as const) {
      const name = `${kind} ${what}`;
      const points = samples.map((s) => `${x(s.sessions).toFixed(1)},${y(s[key]).toFixed(1)}`).join(' ');
      lines.push(`<polyline fill="none" stroke="${colors[name] ?? '#333'}" stroke-width="2" points="${points}"/>`);
      lines.push(
        `<text x="${W - pad - 200}" y="${pad + 14 * legend++}" font-size="11" fill="${colors[name] ?? '#333'}">${name} (MB)</text>`,
      );
    }
  }
  const ticks = [0, 0.25, 0.5, 0.75, 1].map(
    (f) =>
      `<text x="${x(maxX * f).toFixed(1)}" y="${H - pad + 16}" font-size="10" text-anchor="middle">${Math.round(maxX * f).toLocaleString('en-US')}</text>`,
  );
  const yticks = [0, 0.5, 1].map(
    (f) => `<text x="${pad - 6}" y="${y(maxY * f).toFixed(1)}" font-size="10" text-anchor="end">${(maxY * f).toFixed(0)}</text>`,
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${pad}" y="20" font-size="13">Soak: heap (after GC) and RSS of the server, by sessions created, read, changed and expired</text>`,
    `<line x1="${pad}" y1="${H - pad}" x2="${W - pad}" y2="${H - pad}" stroke="#999"/>`,
    `<line x1="${pad}" y1="${pad}" x2="${pad}" y2="${H - pad}" stroke="#999"/>`,
    ...ticks,
    ...yticks,
    ...lines,
    '</svg>',
  ].join('\n');
}

async function main(): Promise<void> {
  const kinds = (['ours-memory', 'ours-redis'] as Kind[]).filter((k) => !ONLY || k.includes(ONLY));
  console.log(
    `nest-sessions soak: ${SESSIONS.toLocaleString('en-US')} sessions per store, ${WORKERS} at a time, Fastify, sessions living 2 s`,
  );
  const results: Record<string, Sample[]> = {};
  for (const kind of kinds) results[kind] = await soak(kind);
  const redis = createClient({ socket: { host: '127.0.0.1', port: 6379 } });
  await redis.connect().then(
    async () => {
      for await (const keys of redis.scanIterator({ MATCH: `${REDIS_PREFIX}*`, COUNT: 1000 })) if (keys.length) await redis.del(keys);
      await redis.quit();
    },
    () => undefined,
  );

  const rows = Object.entries(results).map(([kind, samples]) => {
    const warm = samples[Math.min(2, samples.length - 1)]!; // after warm-up
    const last = samples.at(-1)!;
    const peakHeap = Math.max(...samples.slice(2).map((s) => s.heapMB));
    return `| ${kind} | ${last.sessions.toLocaleString('en-US')} | ${last.seconds.toFixed(0)} s | ${warm.heapMB.toFixed(1)} → ${last.heapMB.toFixed(1)} MB (peak ${peakHeap.toFixed(1)}) | ${warm.rssMB.toFixed(1)} → ${last.rssMB.toFixed(1)} MB |`;
  });
  const report = [
    '# nest-sessions soak',
    '',
    `${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'CPU'}, Node ${process.version}; ${SESSIONS.toLocaleString('en-US')} sessions per store, each created, read and changed over HTTP (Fastify), living 2 s.`,
    '',
    '| store | sessions | time | heap after GC (after warm-up → end) | RSS (after warm-up → end) |',
    '| --- | ---: | ---: | --- | --- |',
    ...rows,
    '',
    '![heap and RSS over the soak](soak.svg)',
    '',
  ].join('\n');
  const out = join(here, '..', '..', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'soak.md'), report);
  writeFileSync(join(out, 'soak.svg'), svg(results));
  writeFileSync(join(out, 'soak.json'), `${JSON.stringify({ sessions: SESSIONS, results }, null, 2)}\n`);
  console.log(`\n${report}`);
  agent.destroy();
}

await main();
