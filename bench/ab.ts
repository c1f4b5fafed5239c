/**
 * npm run bench:ab -- --base=<checkout> [-- --only=<kind>] [-- --rounds=N] [-- --seconds=S]
 *
 * This build against another commit's, in interleaved rounds: each round measures every scenario of
 * both builds in turn (base and this one alternating which goes first), so that the host's drift hits
 * them alike. `<checkout>` is a checkout of the older commit whose benchmark is built
 * (`npx tsc -p bench/tsconfig.json` there; its node_modules may be a link to this one's). Reports the
 * median of the per-round ratios, this build to the base, and each build to its own no-op-interceptor
 * app. Writes bench/results/ab.md and ab.json.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load, seedSessions, type Jar, type Route } from './load.js';
import type { Kind, Platform, Scenario } from './scenarios.js';
import { startServer, stopServer } from './servers.js';

const here = dirname(fileURLToPath(import.meta.url));
const flag = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const baseDir = flag('base');
if (!baseDir) throw new Error('npm run bench:ab -- --base=<a checkout of the older commit, with its bench built>');
const baseScript = resolve(baseDir, 'bench/dist/bench/server.js');
if (!existsSync(baseScript)) throw new Error(`${baseScript} is missing: run "npx tsc -p bench/tsconfig.json" in ${baseDir}`);
const ROUNDS = Number(flag('rounds') ?? 7);
const SECONDS = Number(flag('seconds') ?? 3);
const WARMUP = 2;
const CONNECTIONS = 10;
const ROUTES: Route[] = ['none', 'read', 'write'];
/** Scenarios every build since the global interceptor has. */
const KINDS: Kind[] = (['noop-interceptor', 'ours-memory', 'ours-cookie'] as Kind[]).filter(
  (k) => k === 'noop-interceptor' || !flag('only') || k.includes(flag('only')!),
);
const PLATFORMS: Platform[] = ['express', 'fastify'];

type Build = 'base' | 'head';
interface Server {
  build: Build;
  scenario: Scenario;
  child: ChildProcess;
  port: number;
  jars: Jar[];
  rounds: Partial<Record<Route, number[]>>;
}

const medianOf = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
/** The median of per-round ratios a[i] / b[i]. */
const ratio = (a: number[], b: number[]) => medianOf(a.map((x, i) => x / b[i]!));

async function runPlatform(platform: Platform): Promise<Server[]> {
  const servers: Server[] = [];
  for (const kind of KINDS) {
    for (const build of ['base', 'head'] as Build[]) {
      const scenario: Scenario = { platform, kind };
      const { child, port } = await startServer(scenario, [], build === 'base' ? baseScript : undefined);
      const jars = await seedSessions(port, CONNECTIONS, 0, kind !== 'noop-interceptor');
      servers.push({ build, scenario, child, port, jars, rounds: {} });
    }
  }
  try {
    for (const route of ROUTES) {
      for (const s of servers) await load(s.port, route, s.jars, WARMUP);
      for (let round = 0; round < ROUNDS; round++) {
        // Alternate which build of a pair goes first: neither always follows the other.
        const order = round % 2 ? [...servers].reverse() : servers;
        for (const s of order) (s.rounds[route] ??= []).push((await load(s.port, route, s.jars, SECONDS)).rps);
      }
      for (const s of servers) {
        console.log(
          `  ${platform} ${s.scenario.kind.padEnd(17)} ${s.build} ${route.padEnd(5)} [${s.rounds[route]!.map(Math.round).join(', ')}]`,
        );
      }
    }
  } finally {
    await Promise.all(servers.map((s) => stopServer(s.child)));
  }
  return servers;
}

async function main(): Promise<void> {
  const commit = (dir: string) => execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const head = commit(join(here, '..', '..'));
  const base = commit(baseDir!);
  const results: { platform: Platform; servers: Server[] }[] = [];
  for (const platform of PLATFORMS) results.push({ platform, servers: await runPlatform(platform) });

  const lines = [
    `# ${head} against ${base}, interleaved`,
    '',
    `${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'CPU'}, Node ${process.version}; ` +
      `${ROUNDS} rounds of ${SECONDS} s per route, ${CONNECTIONS} connections. Medians of per-round ratios.`,
    '',
    `| platform | scenario | route | ${base} req/s | ${head} req/s | ${head} / ${base} | ${base} / its no-op | ${head} / its no-op |`,
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const { platform, servers } of results) {
    const find = (kind: Kind, build: Build) => servers.find((s) => s.scenario.kind === kind && s.build === build)!;
    for (const kind of KINDS) {
      for (const route of ROUTES) {
        const b = find(kind, 'base').rounds[route]!;
        const h = find(kind, 'head').rounds[route]!;
        const nb = find('noop-interceptor', 'base').rounds[route]!;
        const nh = find('noop-interceptor', 'head').rounds[route]!;
        lines.push(
          `| ${platform} | ${kind} | ${route} | ${Math.round(medianOf(b))} | ${Math.round(medianOf(h))} | ${ratio(h, b).toFixed(2)}x | ` +
            `${kind === 'noop-interceptor' ? '' : `${ratio(b, nb).toFixed(2)}x`} | ${kind === 'noop-interceptor' ? '' : `${ratio(h, nh).toFixed(2)}x`} |`,
        );
      }
    }
  }
  const report = `${lines.join('\n')}\n`;
  const out = join(here, '..', '..', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'ab.md'), report);
  const json = results.map(({ platform, servers }) => ({
    platform,
    servers: servers.map((s) => ({ build: s.build === 'base' ? base : head, kind: s.scenario.kind, rounds: s.rounds })),
  }));
  writeFileSync(join(out, 'ab.json'), `${JSON.stringify({ base, head, rounds: ROUNDS, seconds: SECONDS, results: json }, null, 2)}\n`);
  console.log(`\n${report}`);
}

await main();
