/**
 * npm run bench [-- --quick] [-- --only=<text>]
 *
 * Runs every scenario (scenarios.ts) in a forked server process, drives it with autocannon, and writes
 * bench/results/<mode>.md and bench/results/<mode>.svg. Quick mode takes under two minutes; full mode
 * about fifteen. Never part of npm test.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { load, perRequest, RedisCommandCounter, seedSessions, type Route } from './load.js';
import { checkTargets, markdown, svg, type Run, type ScalingResult, type ScenarioResult } from './report.js';
import { LABELS, PG_TABLE, REDIS_PREFIX, SCENARIOS, type Kind, type Scenario } from './scenarios.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const CONNECTIONS = 10;
const SECONDS = quick ? 1 : 8;
const WARMUP = quick ? 0.5 : 3;
const ROUTES: Route[] = ['none', 'read', 'write'];

function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(1000, () => (socket.destroy(), resolve(false)));
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** Starts a scenario's server in its own process and waits for its port. */
function startServer(scenario: Scenario): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(join(here, 'server.js'), [JSON.stringify(scenario)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => (child.kill('SIGKILL'), reject(new Error('the server did not start within 30 s'))), 30_000);
    child.once('message', (message: { port?: number; error?: string }) => {
      clearTimeout(timer);
      if (message.port) resolve({ child, port: message.port });
      else reject(new Error(message.error ?? 'the server failed to start'));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited with code ${code}`));
    });
  });
}

function stopServer(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => (clearTimeout(timer), resolve()));
    child.send('stop');
  });
}

const usesRedis = (kind: Kind) => kind.endsWith('-redis');

async function runScenario(scenario: Scenario, redis: RedisCommandCounter | undefined): Promise<ScenarioResult> {
  const { child, port } = await startServer(scenario);
  try {
    const jars = await seedSessions(port, CONNECTIONS, 0, scenario.kind !== 'ceiling');
    const result: ScenarioResult = { scenario, routes: {} };
    for (const route of ROUTES) {
      await load(port, route, jars, WARMUP);
      const before = redis && usesRedis(scenario.kind) ? await redis.snapshot() : undefined;
      const measured = await load(port, route, jars, SECONDS);
      result.routes[route] = measured;
      if (redis && before) {
        const delta = RedisCommandCounter.delta(before, await redis.snapshot());
        result.routes[route] = { ...measured, redis: perRequest(delta, measured.requests) };
      }
      process.stdout.write(`  ${route.padEnd(5)} ${Math.round(measured.rps).toString().padStart(7)} req/s  p50 ${measured.p50} ms  p99 ${measured.p99} ms${measured.errors || measured.non2xx ? `  (${measured.errors} errors, ${measured.non2xx} non-2xx)` : ''}\n`);
    }
    return result;
  } finally {
    await stopServer(child);
  }
}

/** Session size 100 B to 10 KB for the cookie and Redis stores, then 10 to 100 connections. */
async function runScaling(services: { redis: boolean }): Promise<ScalingResult[]> {
  const out: ScalingResult[] = [];
  const kinds: Kind[] = ['ours-cookie', ...(services.redis ? (['ours-redis'] as Kind[]) : [])];
  for (const kind of kinds) {
    const { child, port } = await startServer({ platform: 'express', kind });
    try {
      for (const bytes of [100, 3_000, 10_000]) {
        const jars = await seedSessions(port, CONNECTIONS, bytes);
        for (const route of ['read', 'write'] as Route[]) {
          await load(port, route, jars, WARMUP);
          const result = await load(port, route, jars, SECONDS);
          out.push({ kind, bytes, connections: CONNECTIONS, route, result });
          process.stdout.write(`  ${LABELS[kind]}, ${bytes} B, ${route}: ${Math.round(result.rps)} req/s, p99 ${result.p99} ms\n`);
        }
      }
    } finally {
      await stopServer(child);
    }
  }
  for (const kind of ['ceiling', ...kinds] as Kind[]) {
    const { child, port } = await startServer({ platform: 'express', kind });
    try {
      for (const connections of [CONNECTIONS, 100]) {
        const jars = await seedSessions(port, connections, kind === 'ceiling' ? 0 : 100, kind !== 'ceiling');
        await load(port, 'read', jars, WARMUP);
        const result = await load(port, 'read', jars, SECONDS);
        out.push({ kind, bytes: 100, connections, route: 'read', result });
        process.stdout.write(`  ${LABELS[kind]}, ${connections} connections: ${Math.round(result.rps)} req/s, p99 ${result.p99} ms\n`);
      }
    } finally {
      await stopServer(child);
    }
  }
  return out;
}

async function main(): Promise<void> {
  const started = Date.now();
  const services = { redis: await reachable(6379), postgres: await reachable(5432) };
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
    scenarios: [],
    scaling: [],
  };
  console.log(`nest-sessions benchmark, ${run.mode} mode: ${run.machine}, Node ${run.node}`);
  for (const scenario of SCENARIOS) {
    const name = `${scenario.platform}: ${LABELS[scenario.kind]}`;
    if (only && !name.includes(only)) continue;
    const missing = usesRedis(scenario.kind) && !services.redis ? 'no Redis at 127.0.0.1:6379' : scenario.kind === 'ours-postgres' && !services.postgres ? 'no PostgreSQL at 127.0.0.1:5432' : undefined;
    if (missing) {
      console.log(`${name}: skipped (${missing})`);
      run.scenarios.push({ scenario, routes: {}, skipped: missing });
      continue;
    }
    console.log(name);
    try {
      run.scenarios.push(await runScenario(scenario, counter));
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      console.log(`  failed: ${why}`);
      run.scenarios.push({ scenario, routes: {}, skipped: `failed: ${why.split('\n')[0]}` });
    }
  }
  if (!only) {
    console.log('Scaling');
    run.scaling = await runScaling(services);
  }

  if (counter) {
    await counter.clear(REDIS_PREFIX);
    await counter.close();
  }
  if (services.postgres) {
    const pool = new pg.Pool({ host: '127.0.0.1', port: 5432, database: process.env.PGDATABASE ?? 'test', user: process.env.PGUSER ?? 'postgres' });
    await pool.query(`DROP TABLE IF EXISTS "${PG_TABLE}"`).catch(() => undefined);
    await pool.end();
  }

  const results = join(here, '..', '..', 'bench', 'results');
  mkdirSync(results, { recursive: true });
  const report = markdown(run);
  writeFileSync(join(results, `${run.mode}.md`), report);
  writeFileSync(join(results, `${run.mode}.svg`), svg(run));
  writeFileSync(join(results, `${run.mode}.json`), `${JSON.stringify(run, null, 2)}\n`);
  console.log(`\n${report}`);
  const missed = checkTargets(run).filter((c) => c.met === false);
  console.log(`\nWrote bench/results/${run.mode}.md, .svg and .json in ${Math.round((Date.now() - started) / 1000)} s; ${missed.length} target(s) missed.`);
}

await main();
