/**
 * Where a scenario's server spends its time: npm run bench:profile -- <platform> <kind> <route> [seconds]
 * Starts the server with --cpu-prof, drives one route, and prints the functions with the most self time.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load, seedSessions, type Route } from './load.js';
import type { Kind, Platform } from './scenarios.js';

const [platform = 'express', kind = 'ours-redis', route = 'read', seconds = '5'] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'nest-sessions-profile-'));
const child = fork(join(here, 'server.js'), [JSON.stringify({ platform: platform as Platform, kind: kind as Kind })], {
  execArgv: ['--cpu-prof', `--cpu-prof-dir=${dir}`],
});
const port = await new Promise<number>((resolve, reject) => {
  child.once('message', (m: { port?: number; error?: string }) => (m.port ? resolve(m.port) : reject(new Error(m.error))));
});
const jars = await seedSessions(port, 10, 0, !['ceiling', 'noop-interceptor'].includes(kind));
await load(port, route as Route, jars, 1);
// The profile's clock is the monotonic one hrtime reads, in µs: only samples of the measured window count.
const from = Number(process.hrtime.bigint() / 1000n);
const measured = await load(port, route as Route, jars, Number(seconds));
const to = Number(process.hrtime.bigint() / 1000n);
await new Promise<void>((resolve) => {
  child.once('exit', () => resolve());
  child.send('stop');
});
type Node = { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] };
const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))!;
const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
};
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
let at = profile.startTime;
profile.samples.forEach((id, i) => {
  at += profile.timeDeltas[i] ?? 0;
  if (at < from || at > to) return;
  const frame = byId.get(id)!.callFrame;
  const where = frame.url
    ? `${frame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/bench\/dist\//, '')}:${frame.lineNumber}`
    : '';
  const key = `${frame.functionName || '(anonymous)'} ${where}`;
  self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
const total = [...self.values()].reduce((a, b) => a + b, 0);
// Inclusive time of this library's functions: a sample counts once for every distinct function of
// src/ on its stack, so a function's figure includes what it calls (Nest's adapter, Node's crypto).
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const inclusive = new Map<string, number>();
at = profile.startTime;
profile.samples.forEach((id, i) => {
  at += profile.timeDeltas[i] ?? 0;
  if (at < from || at > to) return;
  const seen = new Set<string>();
  for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
    const frame = byId.get(n)!.callFrame;
    if (!frame.url.includes('/bench/dist/src/')) continue;
    seen.add(`${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*\/bench\/dist\//, '')}:${frame.lineNumber}`);
  }
  for (const key of seen) inclusive.set(key, (inclusive.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
/** Share of the measured window, and CPU µs per request (idle excluded from neither: it is listed). */
const cell = (t: number) => `${((100 * t) / total).toFixed(1).padStart(5)}% ${(t / measured.requests).toFixed(1).padStart(6)} µs/req`;
// Self time grouped by where the code lives: this library, Nest, RxJS, the platform, Node itself.
const owner = (key: string): string => {
  const where = key.slice(key.indexOf(' ') + 1);
  if (where.startsWith('src/')) return 'nest-sessions (src/)';
  if (where.startsWith('bench/') || where.startsWith('file:')) return 'benchmark app';
  const pkg = /^(@[^/]+\/[^/]+|[^/:]+)\//.exec(where);
  if (pkg) return pkg[1]!;
  return where.startsWith('node:') ? 'node (JS)' : key.startsWith('(') ? key.trim() : 'node (native)';
};
const groups = new Map<string, number>();
for (const [key, t] of self) groups.set(owner(key), (groups.get(owner(key)) ?? 0) + t);
const busy = total - (self.get('(idle) ') ?? 0);
console.log(
  `${platform} ${kind} ${route}: ${Math.round(measured.rps)} req/s (profiled); ${(busy / measured.requests).toFixed(1)} µs of CPU per request; self time by owner:`,
);
for (const [key, t] of [...groups].sort((a, b) => b[1] - a[1]).slice(0, 14)) console.log(`${cell(t)}  ${key}`);
console.log('self time by function:');
for (const [key, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.PROFILE_TOP ?? 30)))
  console.log(`${cell(t)}  ${key}`);
console.log("inclusive time of this library's functions (with what they call):");
for (const [key, t] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.PROFILE_TOP ?? 30)))
  console.log(`${cell(t)}  ${key}`);
rmSync(dir, { recursive: true, force: true });
