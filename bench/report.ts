/** Turns measurements into the console table, the Markdown report and the SVG chart. */
import type { Measured, Route } from './load.js';
import { LABELS, type Kind, type Platform, type Scenario } from './scenarios.js';

export interface RouteResult extends Measured {
  /** Requests per second of each round, in order (rounds are interleaved across scenarios). */
  rounds?: number[];
  /** Redis commands per request, for scenarios that use Redis. */
  redis?: { reads: number; writes: number; detail: string };
}

export interface ScenarioResult {
  scenario: Scenario;
  routes: Partial<Record<Route, RouteResult>>;
  /** Why the scenario did not run. */
  skipped?: string;
}

export interface Run {
  date: string;
  mode: 'quick' | 'full';
  machine: string;
  node: string;
  connections: number;
  seconds: number;
  warmup: number;
  rounds: number;
  scenarios: ScenarioResult[];
}

const ROUTES: Route[] = ['none', 'read', 'write'];
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/**
 * How many times faster `a` is than `b`: the median, over rounds, of the two's ratio within the round.
 * Both were measured seconds apart in each round, so a round the host slowed down counts for both
 * sides (a ratio of the two medians would pair a good round of one with a bad round of the other).
 */
export function speedup(a?: RouteResult, b?: RouteResult): number | undefined {
  if (!a?.rps || !b?.rps) return undefined;
  const ra = a.rounds;
  const rb = b.rounds;
  if (!ra || !rb || ra.length !== rb.length || ra.length === 0) return a.rps / b.rps;
  const ratios = ra.map((x, i) => x / rb[i]!).sort((x, y) => x - y);
  const mid = Math.floor(ratios.length / 2);
  return ratios.length % 2 ? ratios[mid]! : (ratios[mid - 1]! + ratios[mid]!) / 2;
}
const times = (x?: number) => (x === undefined ? 'n/a' : `${x.toFixed(2)}x`);

function find(run: Run, platform: Platform, kind: Kind): ScenarioResult | undefined {
  return run.scenarios.find((s) => s.scenario.platform === platform && s.scenario.kind === kind && !s.skipped);
}

/** The anchors each of our scenarios is compared with, per platform. */
const ANCHORS: Record<Platform, Partial<Record<Kind, Kind[]>>> = {
  express: {
    'ours-memory': ['express-session-memory'],
    'ours-cookie': ['iron-session', 'cookie-session'],
    'ours-redis': ['express-session-redis'],
    'ours-memcached': ['express-session-memcached'],
  },
  fastify: {
    'ours-memory': ['fastify-session-memory'],
    'ours-cookie': ['iron-session', 'fastify-secure-session'],
    'ours-redis': ['fastify-session-redis'],
  },
};

export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean | undefined;
}

/** The README's targets, checked against this run. */
export function checkTargets(run: Run): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const platform of ['express', 'fastify'] as Platform[]) {
    const ceiling = find(run, platform, 'ceiling')?.routes.none;
    const noop = find(run, platform, 'noop-interceptor')?.routes.none;
    const alone = speedup(noop, ceiling);
    if (alone !== undefined) {
      checks.push({
        target: `${platform}: GET /none, one global no-op interceptor vs the ceiling (what any interceptor costs)`,
        measured: times(alone),
        met: undefined,
      });
    }
    const both = speedup(find(run, platform, 'noop-plus-ours')?.routes.none, noop);
    if (both !== undefined) {
      checks.push({
        target: `${platform}: GET /none, an app with a no-op interceptor that adds nest-sessions, vs the same app without`,
        measured: times(both),
        met: undefined,
      });
    }
    for (const kind of ['ours-memory', 'ours-cookie', 'ours-redis', 'ours-postgres'] as Kind[]) {
      const none = find(run, platform, kind)?.routes.none;
      const x = speedup(none, noop);
      if (x !== undefined) {
        checks.push({
          target: `${platform}: GET /none with the module (${LABELS[kind]}) at least 0.97x one global no-op interceptor`,
          measured: times(x),
          met: x >= 0.97,
        });
      }
      const bare = speedup(none, ceiling);
      if (bare !== undefined) {
        checks.push({
          target: `${platform}: GET /none with the module (${LABELS[kind]}) vs the ceiling`,
          measured: times(bare),
          met: undefined,
        });
      }
    }
  }
  for (const platform of ['express', 'fastify'] as Platform[]) {
    const traced = find(run, platform, 'ours-memory');
    const untraced = find(run, platform, 'ours-memory-untraced');
    for (const route of ['read', 'write'] as const) {
      const x = speedup(traced?.routes[route], untraced?.routes[route]);
      if (x === undefined) continue;
      checks.push({
        target: `${platform}: in-memory ${route === 'read' ? 'GET /read' : 'POST /write'}, telemetry on without an OpenTelemetry SDK vs telemetry: false`,
        measured: times(x),
        met: undefined,
      });
    }
  }
  const ours = find(run, 'express', 'ours-redis');
  const es = find(run, 'express', 'express-session-redis');
  const redisVsEs = speedup(ours?.routes.read, es?.routes.read);
  if (redisVsEs !== undefined) {
    checks.push({
      target: 'express: Redis store GET /read at least 1.3x express-session + connect-redis',
      measured: times(redisVsEs),
      met: redisVsEs >= 1.3,
    });
  }
  for (const platform of ['express', 'fastify'] as Platform[]) {
    const redis = find(run, platform, 'ours-redis')?.routes.read?.redis;
    if (!redis) continue;
    checks.push({
      target: `${platform}: Redis store, requests that do not change the session write nothing`,
      measured: `${redis.writes.toFixed(2)} writes/request`,
      met: redis.writes === 0,
    });
    checks.push({
      target: `${platform}: Redis store, at most one round trip to load`,
      // Commands of requests still in flight when a run stops are counted, their responses are not: 2% slack.
      measured: `${redis.reads.toFixed(3)} reads/request`,
      met: redis.reads <= 1.02,
    });
  }
  const cookie = find(run, 'express', 'ours-cookie');
  for (const [anchor, floor] of [
    ['iron-session', 1],
    ['cookie-session', 0.9],
  ] as [Kind, number][]) {
    const other = find(run, 'express', anchor);
    for (const route of ['read', 'write'] as Route[]) {
      const x = speedup(cookie?.routes[route], other?.routes[route]);
      if (x === undefined) continue;
      checks.push({
        target: `express: cookie store ${route === 'read' ? 'GET /read' : 'POST /write'} at least ${floor}x ${LABELS[anchor]}`,
        measured: times(x),
        met: x >= floor,
      });
    }
  }
  return checks;
}

function scenarioTable(run: Run, platform: Platform): string[] {
  const ceiling = find(run, platform, 'ceiling');
  const lines = [
    `| scenario | GET /none req/s (vs ceiling) | GET /read req/s (vs ceiling) | POST /write req/s (vs ceiling) | p50 / p99 ms (none, read, write) |`,
    `| --- | ---: | ---: | ---: | --- |`,
  ];
  for (const result of run.scenarios.filter((s) => s.scenario.platform === platform)) {
    const label = LABELS[result.scenario.kind];
    if (result.skipped) {
      lines.push(`| ${label} | skipped: ${result.skipped} | | | |`);
      continue;
    }
    const cells = ROUTES.map((route) => {
      const r = result.routes[route];
      if (!r) return 'n/a';
      const bad = r.errors || r.non2xx ? ` (${r.errors} errors, ${r.non2xx} non-2xx)` : '';
      return `${fmt(r.rps)} (${times(speedup(r, ceiling?.routes[route]))})${bad}`;
    });
    const latency = ROUTES.map((route) => {
      const r = result.routes[route];
      return r ? `${r.p50} / ${r.p99}` : '-';
    }).join(', ');
    lines.push(`| ${label} | ${cells.join(' | ')} | ${latency} |`);
  }
  return lines;
}

function anchorTable(run: Run, platform: Platform): string[] {
  const lines = ['| ours | compared with | GET /read | POST /write | GET /none |', '| --- | --- | ---: | ---: | ---: |'];
  for (const [kind, anchors] of Object.entries(ANCHORS[platform]) as [Kind, Kind[]][]) {
    const ours = find(run, platform, kind);
    for (const anchor of anchors) {
      const other = find(run, platform, anchor);
      if (!ours || !other) continue;
      const cells = (['read', 'write', 'none'] as Route[]).map((r) => times(speedup(ours.routes[r], other.routes[r])));
      lines.push(`| ${LABELS[kind]} | ${LABELS[anchor]} | ${cells.join(' | ')} |`);
    }
  }
  return lines;
}

function redisTable(run: Run): string[] {
  const lines = [
    '| platform | scenario | route | Redis reads/request | Redis writes/request | commands/request |',
    '| --- | --- | --- | ---: | ---: | --- |',
  ];
  for (const result of run.scenarios) {
    for (const route of ROUTES) {
      const redis = result.routes[route]?.redis;
      if (!redis) continue;
      lines.push(
        `| ${result.scenario.platform} | ${LABELS[result.scenario.kind]} | ${route} | ${redis.reads.toFixed(2)} | ${redis.writes.toFixed(2)} | ${redis.detail || '-'} |`,
      );
    }
  }
  return lines;
}

export function markdown(run: Run): string {
  const checks = checkTargets(run);
  const lines = [
    `# nest-sessions benchmark (${run.mode} mode)`,
    '',
    `${run.date}; ${run.machine}; Node ${run.node}; ${run.connections} connections; ${run.warmup} s warm-up, then ${run.rounds} round(s) of ${run.seconds} s per route; the median round is reported.`,
    'Ratios between scenarios are the median over rounds of their ratio within each round (paired), so a round the host slowed down counts for both sides.',
    'Each scenario is a NestJS app in its own process; autocannon in the parent process keeps one session per connection.',
    "Within a platform, scenarios are measured in interleaved rounds, so the machine's drift hits them alike.",
    'Ratios compare scenarios measured in this run, on this machine.',
    '',
    '## Targets',
    '',
    '| target | measured | met |',
    '| --- | --- | --- |',
    ...checks.map((c) => `| ${c.target} | ${c.measured} | ${c.met === undefined ? 'n/a' : c.met ? 'yes' : '**no**'} |`),
  ];
  for (const platform of ['express', 'fastify'] as Platform[]) {
    lines.push(
      '',
      `## ${platform === 'express' ? 'Express' : 'Fastify'}`,
      '',
      ...scenarioTable(run, platform),
      '',
      ...anchorTable(run, platform),
    );
  }
  lines.push('', '## Redis commands per request (INFO commandstats)', '', ...redisTable(run));
  lines.push('');
  return lines.join('\n');
}

/** A horizontal bar chart of GET /read throughput per scenario, one panel per platform. */
export function svg(run: Run): string {
  const rows: { label: string; value: number; ours: boolean; ceiling: boolean; platform: Platform }[] = [];
  for (const result of run.scenarios) {
    const rps = result.routes.read?.rps;
    if (!rps || result.skipped) continue;
    rows.push({
      label: `${result.scenario.platform}: ${LABELS[result.scenario.kind]}`,
      value: rps,
      ours: result.scenario.kind.startsWith('ours-'),
      ceiling: result.scenario.kind === 'ceiling',
      platform: result.scenario.platform,
    });
  }
  const max = Math.max(1, ...rows.map((r) => r.value));
  const barHeight = 22;
  const labelWidth = 330;
  const chartWidth = 460;
  const top = 40;
  const height = top + rows.length * (barHeight + 6) + 20;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const bars = rows.map((r, i) => {
    const y = top + i * (barHeight + 6);
    const w = Math.max(1, (r.value / max) * chartWidth);
    const fill = r.ceiling ? '#9aa5b1' : r.ours ? '#2f80ed' : '#f2994a';
    return [
      `<text x="${labelWidth - 8}" y="${y + barHeight * 0.7}" text-anchor="end">${esc(r.label)}</text>`,
      `<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${fill}"/>`,
      `<text x="${labelWidth + w + 6}" y="${y + barHeight * 0.7}">${fmt(r.value)}</text>`,
    ].join('');
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + chartWidth + 90}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">GET /read, requests per second (${esc(run.date)}, ${run.mode} mode; blue: nest-sessions, grey: no sessions)</text>`,
    ...bars,
    '</svg>',
    '',
  ].join('\n');
}
