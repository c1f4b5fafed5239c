/**
 * npm run bench [-- --quick] [-- --only=<text>] [-- --rounds=N] [-- --seconds=S]
 * (How cost grows with the number of sessions stored and with their size: npm run bench:scaling.)
 *
 * Runs every scenario (scenarios.ts) in a forked server process, drives it with autocannon, and writes
 * bench/results/<mode>.md and bench/results/<mode>.svg. Quick mode takes under two minutes; full mode
 * about fifteen. Never part of npm test.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { load, perRequest, RedisCommandCounter, seedSessions, type Jar, type Measured, type Route } from './load.js';
import { checkTargets, markdown, svg, type Run, type ScenarioResult } from './report.js';
import { LABELS, PG_TABLE, REDIS_PREFIX, SCENARIOS, type Kind, type Scenario } from './scenarios.js';
import { reachable, startMemcached, startServer, stopServer } from './servers.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
/** --only='a|b': scenarios whose "platform: label" contains any of these. */
const only = args
  .find((a) => a.startsWith('--only='))
  ?.slice('--only='.length)
  .split('|');
const CONNECTIONS = 10;
const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const SECONDS = Number(flag('seconds') ?? (quick ? 0.5 : 3));
/** Quick mode has no separate warm-up runs (each autocannon run costs about half a second on top). */
const WARMUP = quick ? 0 : 2;
const ROUNDS = Number(flag('rounds') ?? (quick ? 1 : 3));
const ROUTES: Route[] = ['none', 'read', 'write'];

const usesRedis = (kind: Kind) => kind.endsWith('-redis');
/** Whether --only (if given) picks this scenario. */
const wanted = (s: Scenario) => !only || only.some((o) => `${s.platform}: ${LABELS[s.kind]}`.includes(o));

interface Running {
  scenario: Scenario;
  child: ChildProcess;
  port: number;
  jars: Jar[];
  result: ScenarioResult;
  samples: Partial<Record<Route, Measured[]>>;
  redisDelta: Partial<Record<Route, Map<string, number>>>;
}

const median = <T>(xs: T[], key: (x: T) => number): T => [...xs].sort((a, b) => key(a) - key(b))[Math.floor(xs.length / 2)]!;

/**
 * All of a platform's scenarios, measured in interleaved rounds: every round measures each scenario in
 * turn, so that the machine's drift (a shared host, turbo, another tenant) hits them alike; the median
 * round is reported. Idle servers cost nothing while another is measured.
 */
async function runPlatform(scenarios: Scenario[], redis: RedisCommandCounter | undefined): Promise<ScenarioResult[]> {
  const running: Running[] = [];
  const failed: ScenarioResult[] = [];
  // Started together: nothing is measured yet, and idle servers cost nothing later.
  await Promise.all(
    scenarios.map(async (scenario) => {
      try {
        const { child, port } = await startServer(scenario);
        const jars = await seedSessions(port, CONNECTIONS, 0, !['ceiling', 'noop-interceptor'].includes(scenario.kind));
        running.push({ scenario, child, port, jars, result: { scenario, routes: {} }, samples: {}, redisDelta: {} });
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        console.log(`  ${LABELS[scenario.kind]}: failed to start: ${why}`);
        failed.push({ scenario, routes: {}, skipped: `failed: ${why.split('\n')[0]}` });
      }
    }),
  );
  running.sort((a, b) => scenarios.indexOf(a.scenario) - scenarios.indexOf(b.scenario));
  try {
    for (const route of ROUTES) {
      if (WARMUP > 0) for (const r of running) await load(r.port, route, r.jars, WARMUP);
      for (let round = 0; round < ROUNDS; round++) {
        for (const r of running) {
          const before = redis && usesRedis(r.scenario.kind) ? await redis.snapshot() : undefined;
          const measured = await load(r.port, route, r.jars, SECONDS);
          (r.samples[route] ??= []).push(measured);
          if (redis && before) {
            const delta = RedisCommandCounter.delta(before, await redis.snapshot());
            const sum = (r.redisDelta[route] ??= new Map());
            for (const [name, calls] of delta) sum.set(name, (sum.get(name) ?? 0) + calls);
          }
        }
      }
      for (const r of running) {
        const samples = r.samples[route]!;
        const mid = median(samples, (m) => m.rps);
        const total = samples.reduce((n, m) => n + m.requests, 0);
        const errors = samples.reduce((n, m) => n + m.errors, 0);
        const non2xx = samples.reduce((n, m) => n + m.non2xx, 0);
        const delta = r.redisDelta[route];
        r.result.routes[route] = {
          ...mid,
          rounds: samples.map((m) => m.rps),
          errors,
          non2xx,
          ...(delta ? { redis: perRequest(delta, total) } : {}),
        };
        process.stdout.write(
          `  ${LABELS[r.scenario.kind].padEnd(40)} ${route.padEnd(5)} ${Math.round(mid.rps).toString().padStart(7)} req/s  p50 ${mid.p50} ms  p99 ${mid.p99} ms` +
            `${errors || non2xx ? `  (${errors} errors, ${non2xx} non-2xx)` : ''}  [rounds: ${samples.map((m) => Math.round(m.rps)).join(', ')}]\n`,
        );
      }
    }
  } finally {
    await Promise.all(running.map((r) => stopServer(r.child)));
  }
  return [...running.map((r) => r.result), ...failed];
}

async function main(): Promise<void> {
  const started = Date.now();
  const services = { redis: await reachable(6379), postgres: await reachable(5432) };
  const memcached = SCENARIOS.some((s) => s.kind.endsWith('memcached') && wanted(s)) ? await startMemcached() : undefined;
  const counter = services.redis ? new RedisCommandCounter() : undefined;
  if (counter) await counter.connect();
  const run: Run = {
    date: new Date().toISOString().slice(0, 10),
    mode: quick ? 'quick' : 'full',
    machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}`,
    node: process.version,
    connections: CONNECTIONS,
    seconds: SECONDS,
    warmup: WARMUP,
    rounds: ROUNDS,
    scenarios: [],
  };
  console.log(`nest-sessions benchmark, ${run.mode} mode: ${run.machine}, Node ${run.node}`);
  for (const platform of ['express', 'fastify'] as const) {
    const chosen = SCENARIOS.filter((s) => s.platform === platform && wanted(s));
    if (chosen.length === 0) continue;
    console.log(platform === 'express' ? 'Express' : 'Fastify');
    const runnable: Scenario[] = [];
    for (const scenario of chosen) {
      const missing =
        usesRedis(scenario.kind) && !services.redis
          ? 'no Redis at 127.0.0.1:6379'
          : scenario.kind === 'ours-postgres' && !services.postgres
            ? 'no PostgreSQL at 127.0.0.1:5432'
            : scenario.kind.endsWith('memcached') && !memcached
              ? 'memcached is not installed (apt-get install memcached)'
              : undefined;
      if (missing) {
        console.log(`  ${LABELS[scenario.kind]}: skipped (${missing})`);
        run.scenarios.push({ scenario, routes: {}, skipped: missing });
      } else {
        runnable.push(scenario);
      }
    }
    run.scenarios.push(...(await runPlatform(runnable, counter)));
  }

  memcached?.stop();
  if (counter) {
    await counter.clear(REDIS_PREFIX);
    await counter.close();
  }
  if (services.postgres) {
    const pool = new pg.Pool({
      host: '127.0.0.1',
      port: 5432,
      database: process.env.PGDATABASE ?? 'test',
      user: process.env.PGUSER ?? 'postgres',
    });
    await pool.query(`DROP TABLE IF EXISTS "${PG_TABLE}", "${PG_TABLE}_users"`).catch(() => undefined);
    await pool.end();
  }

  const results = join(here, '..', '..', 'results'); // from bench/dist/bench to bench/results
  mkdirSync(results, { recursive: true });
  const report = markdown(run);
  // A run of some scenarios (--only) never replaces the record of a whole run.
  const name = only ? `${run.mode}-partial` : run.mode;
  writeFileSync(join(results, `${name}.md`), report);
  writeFileSync(join(results, `${name}.svg`), svg(run));
  writeFileSync(join(results, `${name}.json`), `${JSON.stringify(run, null, 2)}\n`);
  console.log(`\n${report}`);
  const missed = checkTargets(run).filter((c) => c.met === false);
  console.log(
    `\nWrote bench/results/${name}.md, .svg and .json in ${Math.round((Date.now() - started) / 1000)} s; ${missed.length} target(s) missed.`,
  );
}

await main();
