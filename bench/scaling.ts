/**
 * npm run bench:scaling [-- --quick] [-- --rounds=N] [-- --seconds=S] [-- --populations=1000,100000,1000000] [-- --render]
 *
 * Two questions, each answered with interleaved rounds on Fastify (whose own overhead is the smallest,
 * so a store's cost shows most):
 *
 * - Does a request cost the same whatever the number of sessions stored? The Redis and PostgreSQL
 *   stores, each with three populations (1k, 100k and 1M sessions by default), one server per
 *   population (its own key prefix or table), all measured in turn in every round.
 * - Does it grow with the session's size, and how? Every store with sessions of 100 B to 3 KB, one
 *   server per store, one set of sessions per size, all measured in turn in every round.
 *
 * Ratios are medians of per-round ratios (to the smallest population, to the smallest size), so that one
 * slow minute of a shared machine counts for both sides. Writes bench/results/scaling.md, .json,
 * scaling-population.svg and scaling-size.svg.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Logger } from '@nestjs/common';
import pg from 'pg';
import { createClient } from 'redis';
import { Keyring } from '../src/crypto/keyring.js';
import { RedisSessionStore } from '../src/index.js';
import { load, RedisCommandCounter, seedSessions, type Jar, type Route } from './load.js';
import { LABELS, oursPgTable, oursRedisPrefix, SECRET, type Kind } from './scenarios.js';
import { reachable, startServer, stopServer } from './servers.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const ROUNDS = Number(flag('rounds') ?? (quick ? 2 : 5));
const SECONDS = Number(flag('seconds') ?? (quick ? 1 : 2));
const WARMUP = quick ? 0.5 : 2;
const CONNECTIONS = 10;
const POPULATIONS = (flag('populations') ?? (quick ? '1000,100000' : '1000,100000,1000000')).split(',').map(Number);
const SIZES = [100, 1000, 2000, 3000];
const ROUTES: Route[] = ['read', 'write'];
const DAY_MS = 86_400_000;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Point {
  /** What the point is: `ours-redis, 100000 sessions` or `ours-cookie, 3000 B`. */
  kind: Kind;
  x: number;
  route: Route;
  rounds: number[];
  /** Median requests per second. */
  rps: number;
  /** Median of the per-round ratios to the first point of the same store and route. */
  ratio: number;
  errors: number;
  non2xx: number;
}

interface Server {
  kind: Kind;
  x: number;
  child: ChildProcess;
  port: number;
  jars: Jar[];
}

/** Measures every server in turn, in every round, and gives each its rounds and paired ratio. */
async function interleaved(servers: Server[]): Promise<Point[]> {
  const points: Point[] = [];
  for (const route of ROUTES) {
    for (const s of servers) await load(s.port, route, s.jars, WARMUP);
    const rounds = new Map<Server, { rps: number; errors: number; non2xx: number }[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of servers) {
        const m = await load(s.port, route, s.jars, SECONDS);
        (rounds.get(s) ?? rounds.set(s, []).get(s)!).push(m);
      }
    }
    for (const s of servers) {
      const own = rounds.get(s)!;
      const base = rounds.get(servers.find((o) => o.kind === s.kind)!)!;
      const point: Point = {
        kind: s.kind,
        x: s.x,
        route,
        rounds: own.map((m) => Math.round(m.rps)),
        rps: median(own.map((m) => m.rps)),
        ratio: median(own.map((m, i) => m.rps / base[i]!.rps)),
        errors: own.reduce((n, m) => n + m.errors, 0),
        non2xx: own.reduce((n, m) => n + m.non2xx, 0),
      };
      points.push(point);
      console.log(
        `  ${LABELS[s.kind].padEnd(28)} ${String(s.x).padStart(8)} ${route.padEnd(5)} ${Math.round(point.rps).toString().padStart(7)} req/s` +
          `  ${point.ratio.toFixed(2)}x${point.errors || point.non2xx ? `  (${point.errors} errors, ${point.non2xx} non-2xx)` : ''}  [rounds: ${point.rounds.join(', ')}]`,
      );
    }
  }
  return points;
}

/** `count` sessions of about 100 B in a Redis store's namespace, written by the store itself (its create). */
async function fillRedis(namespace: string, count: number): Promise<void> {
  const client = createClient({ socket: { host: '127.0.0.1', port: 6379 } });
  await client.connect();
  const store = new RedisSessionStore(client, { prefix: oursRedisPrefix(namespace), timeout: 10_000, maxPending: 5000 });
  const ctx = { keyring: new Keyring([SECRET]), tokenName: 'session', logger: new Logger('bench') };
  const now = Date.now();
  const times = { createdAt: now, refreshedAt: now, expiresAt: now + DAY_MS };
  const data = { value: 'x'.repeat(80) };
  const BATCH = 2000;
  for (let done = 0; done < count; done += BATCH) {
    await Promise.all(Array.from({ length: Math.min(BATCH, count - done) }, () => store.create(data, times, ctx)));
  }
  await client.quit();
}

/** `count` rows of about 100 B in a PostgreSQL store's table, inserted in one statement (the store's columns). */
async function fillPostgres(pool: pg.Pool, namespace: string, count: number): Promise<void> {
  const table = `"${oursPgTable(namespace)}"`;
  await pool.query(`DROP TABLE IF EXISTS ${table}`);
  await pool.query(
    `CREATE TABLE ${table} (id text PRIMARY KEY, data jsonb NOT NULL, created_at timestamptz NOT NULL, ` +
      `refreshed_at timestamptz NOT NULL, expires_at timestamptz NOT NULL)`,
  );
  await pool.query(
    `INSERT INTO ${table} (id, data, created_at, refreshed_at, expires_at) ` +
      `SELECT md5(g::text) || md5((g * 7)::text), jsonb_build_object('value', repeat('x', 80)), now(), now(), now() + interval '1 day' ` +
      `FROM generate_series(1, $1::int) AS g`,
    [count],
  );
  await pool.query(`ANALYZE ${table}`);
}

function chart(title: string, points: Point[], xLabel: string, logX: boolean): string {
  const W = 720;
  const H = 400;
  const left = 70;
  const right = 190;
  const top = 40;
  const bottom = 60;
  const xs = [...new Set(points.map((p) => p.x))].sort((a, b) => a - b);
  const fx = (x: number) => {
    const [lo, hi] = logX ? [Math.log10(xs[0]!), Math.log10(xs.at(-1)!)] : [xs[0]!, xs.at(-1)!];
    const v = logX ? Math.log10(x) : x;
    return left + ((v - lo) / (hi - lo || 1)) * (W - left - right);
  };
  // µs of server capacity per request: 10^6 / requests per second.
  const cost = (p: Point) => 1e6 / p.rps;
  const maxY = Math.max(...points.map(cost)) * 1.1;
  const fy = (y: number) => top + (1 - y / maxY) * (H - top - bottom);
  const colours = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
  const series = [...new Set(points.map((p) => `${p.kind} ${p.route}`))];
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${title}</text>`,
    `<line x1="${left}" y1="${H - bottom}" x2="${W - right}" y2="${H - bottom}" stroke="black"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${H - bottom}" stroke="black"/>`,
    `<text x="${(left + W - right) / 2}" y="${H - 20}" text-anchor="middle">${xLabel}</text>`,
    `<text x="18" y="${(top + H - bottom) / 2}" text-anchor="middle" transform="rotate(-90 18 ${(top + H - bottom) / 2})">µs per request (1,000,000 / req/s)</text>`,
  ];
  for (const x of xs) {
    parts.push(`<text x="${fx(x)}" y="${H - bottom + 18}" text-anchor="middle">${x.toLocaleString('en')}</text>`);
  }
  for (let i = 0; i <= 4; i++) {
    const y = (maxY * i) / 4;
    parts.push(`<text x="${left - 8}" y="${fy(y) + 4}" text-anchor="end">${Math.round(y)}</text>`);
    parts.push(`<line x1="${left}" y1="${fy(y)}" x2="${W - right}" y2="${fy(y)}" stroke="#ddd"/>`);
  }
  const kinds = [...new Set(points.map((p) => p.kind))];
  series.forEach((name, i) => {
    const mine = points.filter((p) => `${p.kind} ${p.route}` === name).sort((a, b) => a.x - b.x);
    // One colour per store; reads solid, writes dashed.
    const colour = colours[kinds.indexOf(mine[0]!.kind) % colours.length]!;
    const dash = mine[0]!.route === 'write' ? ' stroke-dasharray="6 4"' : '';
    parts.push(
      `<polyline fill="none" stroke="${colour}" stroke-width="2"${dash} points="${mine.map((p) => `${fx(p.x)},${fy(cost(p))}`).join(' ')}"/>`,
    );
    for (const p of mine) parts.push(`<circle cx="${fx(p.x)}" cy="${fy(cost(p))}" r="3" fill="${colour}"/>`);
    const label = `${LABELS[mine[0]!.kind].replace('nest-sessions, ', '')} ${mine[0]!.route}`;
    parts.push(
      `<line x1="${W - right + 15}" y1="${top + 10 + i * 20}" x2="${W - right + 40}" y2="${top + 10 + i * 20}" stroke="${colour}" stroke-width="2"${dash}/>`,
    );
    parts.push(`<text x="${W - right + 46}" y="${top + 14 + i * 20}">${label}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function table(points: Point[], xName: string, unit: string): string {
  const rows = points.map(
    (p) =>
      `| ${LABELS[p.kind]} | ${p.x.toLocaleString('en')}${unit} | ${p.route} | ${Math.round(p.rps).toLocaleString('en')} | ${p.ratio.toFixed(2)}x | ${p.rounds.join(', ')} |`,
  );
  return [
    `| store | ${xName} | route | req/s (median) | vs the smallest (paired) | rounds |`,
    '| --- | ---: | --- | ---: | ---: | --- |',
    ...rows,
  ].join('\n');
}

/** --render: the charts again from the JSON of the last run (after a change to how they are drawn). */
function render(name: string): void {
  const results = join(here, '..', '..', 'results');
  const run = JSON.parse(readFileSync(join(results, `${name}.json`), 'utf8')) as { population: Point[]; size: Point[] };
  writeCharts(results, name, run.population, run.size);
  console.log(`Wrote bench/results/${name}-population.svg and -size.svg from ${name}.json.`);
}

function writeCharts(results: string, name: string, population: Point[], size: Point[]): void {
  writeFileSync(
    join(results, `${name}-population.svg`),
    chart('Cost per request by sessions stored (Fastify)', population, 'sessions stored (log scale)', true),
  );
  writeFileSync(
    join(results, `${name}-size.svg`),
    chart('Cost per request by session size (Fastify)', size, 'session size (bytes of JSON)', false),
  );
}

async function main(): Promise<void> {
  if (args.includes('--render')) return render(quick ? 'scaling-quick' : 'scaling');
  const started = Date.now();
  const services = { redis: await reachable(6379), postgres: await reachable(5432) };
  const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}`;
  console.log(`nest-sessions scaling benchmark (${quick ? 'quick' : 'full'}): ${machine}, Node ${process.version}`);
  const pool = services.postgres
    ? new pg.Pool({ host: '127.0.0.1', port: 5432, database: process.env.PGDATABASE ?? 'test', user: process.env.PGUSER ?? 'postgres' })
    : undefined;
  const redisCleaner = new RedisCommandCounter();
  if (services.redis) await redisCleaner.connect();
  const namespaces: string[] = [];
  const servers: Server[] = [];
  let population: Point[];
  let size: Point[];
  try {
    // Populations: filled first (the servers' own seeded sessions come on top: 10 each).
    console.log('Sessions stored');
    for (const count of POPULATIONS) {
      const namespace = `scale${count}`;
      namespaces.push(namespace);
      if (services.redis) {
        const t = Date.now();
        await fillRedis(namespace, count);
        console.log(`  Redis: ${count.toLocaleString('en')} sessions stored in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      }
      if (pool) {
        const t = Date.now();
        await fillPostgres(pool, namespace, count);
        console.log(`  PostgreSQL: ${count.toLocaleString('en')} rows stored in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      }
    }
    const kinds: Kind[] = [...(services.redis ? (['ours-redis'] as Kind[]) : []), ...(pool ? (['ours-postgres'] as Kind[]) : [])];
    const popServers: Server[] = [];
    for (const kind of kinds) {
      for (const count of POPULATIONS) {
        const { child, port } = await startServer({ platform: 'fastify', kind, namespace: `scale${count}` });
        const s = { kind, x: count, child, port, jars: await seedSessions(port, CONNECTIONS) };
        servers.push(s);
        popServers.push(s);
      }
    }
    population = await interleaved(popServers);
    for (const s of popServers) await stopServer(s.child);
    servers.length = 0;

    console.log('Session size');
    const sizeServers: Server[] = [];
    const sizeKinds: Kind[] = ['ours-memory', 'ours-cookie', ...kinds];
    for (const kind of sizeKinds) {
      const { child, port } = await startServer({
        platform: 'fastify',
        kind,
        namespace: kind === 'ours-memory' || kind === 'ours-cookie' ? undefined : 'size',
      });
      if (kind === 'ours-postgres' || kind === 'ours-redis') namespaces.push('size');
      for (const bytes of SIZES) {
        const s = { kind, x: bytes, child, port, jars: await seedSessions(port, CONNECTIONS, bytes) };
        sizeServers.push(s);
      }
      servers.push(sizeServers.at(-1)!);
    }
    size = await interleaved(sizeServers);
  } finally {
    await Promise.all([...new Set(servers.map((s) => s.child))].map((child) => stopServer(child)));
    for (const namespace of new Set(namespaces)) {
      if (services.redis) await redisCleaner.clear(oursRedisPrefix(namespace));
      if (pool)
        await pool.query(`DROP TABLE IF EXISTS "${oursPgTable(namespace)}", "${oursPgTable(namespace)}_users"`).catch(() => undefined);
    }
    await redisCleaner.close();
    await pool?.end();
  }

  const results = join(here, '..', '..', 'results');
  mkdirSync(results, { recursive: true });
  const name = quick ? 'scaling-quick' : 'scaling';
  const run = {
    date: new Date().toISOString().slice(0, 10),
    machine,
    node: process.version,
    rounds: ROUNDS,
    seconds: SECONDS,
    population,
    size,
  };
  writeFileSync(join(results, `${name}.json`), `${JSON.stringify(run, null, 2)}\n`);
  writeCharts(results, name, population, size);
  const md = [
    `# Scaling benchmark, ${run.date}`,
    '',
    `${machine}, Node ${process.version}; Fastify; ${CONNECTIONS} connections, ${ROUNDS} interleaved rounds of ${SECONDS} s.`,
    '',
    '## By sessions stored',
    '',
    table(population, 'sessions stored', ''),
    '',
    '## By session size',
    '',
    table(size, 'session size', ' B'),
    '',
  ].join('\n');
  writeFileSync(join(results, `${name}.md`), md);
  console.log(
    `\n${md}\nWrote bench/results/${name}.md, .json, -population.svg and -size.svg in ${Math.round((Date.now() - started) / 1000)} s.`,
  );
}

await main();
