/**
 * Many processes, one store, and the store fails over: `npm run scale [-- --seconds=S] [-- --clients=N]
 * [-- --only=redis|postgres]`.
 *
 * Three app processes (scale-app.ts) behind a round-robin HTTP proxy on loopback share
 *   - a Redis Cluster of three masters with one replica each, started here from redis-server on free
 *     ports; during the load one master is killed (SIGKILL) and the cluster fails over to its replica;
 *   - separately, a PostgreSQL of the run's own (initdb on a free port); during the load it is restarted.
 * Many clients, each with its own session, write disjoint keys (two lanes per session, concurrently,
 * each through whichever process the proxy picks); a quarter of them log out while their other lane
 * still writes. Afterwards every session is read back. Reported: committed writes lost, sessions that
 * came back after a logout, failed requests by kind and time (the failover window), and whether every
 * process served again without a restart. Writes bench/results/scale.md, scale.json and one SVG
 * timeline per store.
 */
import { spawn, spawnSync, fork, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ScaleAppConfig } from './scale-app.js';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const SECONDS = Number(arg('seconds') ?? 30);
const CLIENTS = Number(arg('clients') ?? 48);
const ONLY = arg('only');
/** When in the run the store fails, as a fraction of it. */
const EVENT_AT = 0.35;
/** Milliseconds a store call may take (the store's `timeout`): the 503s of an outage come this fast. */
const STORE_TIMEOUT = 1000;
/** A client gives up on a request after this long (counted as a timeout, never retried as the same write). */
const CLIENT_TIMEOUT = 5000;
/** How long Redis Cluster nodes wait before they call a silent master failed. */
const NODE_TIMEOUT = 1000;
const SECRET = 'scale-run-secret-scale-run-secret-0123456789';
const BUCKET = 250;

// ---------------------------------------------------------------------------------------------- ports

function listenable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A free port; with `bus`, its cluster bus port (port + 10000) is free too. */
async function freePort(bus = false): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if ((await listenable(port)) && (!bus || (await listenable(port + 10_000)))) return port;
  }
  throw new Error('no free port');
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const cli = (port: number, ...args: string[]) => spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).stdout ?? '';

/** A command run without blocking the load (the proxy and the clients share this process). */
function command(cmd: string, args: string[]): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('close', (status) => resolve({ status, output }));
  });
}
const cliAsync = async (port: number, ...args: string[]) => (await command('redis-cli', ['-p', String(port), ...args])).output;

// ------------------------------------------------------------------------------------ the services

interface Rig {
  readonly name: string;
  readonly label: string;
  /** What the app processes connect to. */
  readonly ports: number[];
  start(): Promise<void>;
  /** Makes the store fail; resolves with what happened, when the store has recovered by its own measure. */
  fail(mark: (what: string) => void): Promise<void>;
  stop(): Promise<void>;
}

class RedisClusterRig implements Rig {
  readonly name: string;
  readonly label: string;
  constructor(readonly client: 'node-redis' | 'ioredis') {
    this.name = `redis-cluster-${client}`;
    this.label = `Redis Cluster (3 masters + 3 replicas) through ${client === 'ioredis' ? "ioredis's Cluster" : "node-redis's createCluster"}; one master killed (SIGKILL)`;
  }
  readonly ports: number[] = [];
  readonly #nodes = new Map<number, ChildProcess>();
  readonly #dir = mkdtempSync(join(tmpdir(), 'nest-sessions-scale-redis-'));

  async start(): Promise<void> {
    for (let i = 0; i < 6; i++) {
      const port = await freePort(true);
      this.ports.push(port);
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes'];
      args.push('--cluster-config-file', join(this.#dir, `nodes-${port}.conf`), '--cluster-node-timeout', String(NODE_TIMEOUT));
      args.push('--dir', this.#dir, '--save', '', '--appendonly', 'no');
      this.#nodes.set(port, spawn('redis-server', args, { stdio: 'ignore' }));
    }
    for (const port of this.ports) await until(`redis ${port}`, () => cli(port, 'ping').trim() === 'PONG');
    const created = spawnSync(
      'redis-cli',
      ['--cluster', 'create', ...this.ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'],
      {
        encoding: 'utf8',
      },
    );
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
    await until('the cluster', () => this.ports.every((p) => cli(p, 'cluster', 'info').includes('cluster_state:ok')));
    // Every replica in sync, so that the kill tests a failover and not a replica still loading.
    await until('the replicas', () =>
      this.ports.every((p) => {
        const info = cli(p, 'info', 'replication');
        return info.includes('role:master') || info.includes('master_link_status:up');
      }),
    );
    this.#victim = this.ports.find((p) => cli(p, 'info', 'replication').includes('role:master'))!;
  }

  /** The master to kill, picked before the load (a blocking call then costs nothing). */
  #victim = 0;

  async fail(mark: (what: string) => void): Promise<void> {
    const victim = this.#victim;
    const node = this.#nodes.get(victim)!;
    const exited = new Promise((resolve) => node.once('exit', resolve));
    node.kill('SIGKILL');
    await exited;
    mark(`master :${victim} killed`);
    const survivors = this.ports.filter((p) => p !== victim);
    const states = async () => Promise.all(survivors.map((p) => cliAsync(p, 'cluster', 'info')));
    await until('cluster_state:fail', async () => (await states()).some((i) => i.includes('cluster_state:fail')), 10_000).then(
      () => mark('cluster reports fail'),
      () => undefined, // a failover fast enough is never seen failing
    );
    await until('the failover', async () => (await states()).every((i) => i.includes('cluster_state:ok')), 30_000);
    mark('replica promoted; cluster ok');
  }

  async stop(): Promise<void> {
    await Promise.all(
      [...this.#nodes.values()].map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.kill('SIGKILL');
          }),
      ),
    );
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

class PostgresRig implements Rig {
  readonly name = 'postgres';
  readonly label = 'PostgreSQL of its own; restarted (pg_ctl restart -m fast)';
  readonly ports: number[] = [];
  readonly #dir = mkdtempSync(join(tmpdir(), 'nest-sessions-scale-pg-'));
  /** initdb and postgres refuse to run as root: as root, they run as the postgres user. */
  readonly #asUser = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];

  #run(...args: string[]) {
    const [cmd, ...rest] = [...this.#asUser, ...args];
    const result = spawnSync(cmd!, rest, { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`${args.join(' ')} failed: ${result.stdout}${result.stderr}`);
  }

  get #data() {
    return join(this.#dir, 'data');
  }

  async start(): Promise<void> {
    const port = await freePort();
    this.ports.push(port);
    mkdirSync(this.#data);
    if (this.#asUser.length) {
      const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim();
      const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim();
      chownSync(this.#dir, Number(id), Number(gid));
      chownSync(this.#data, Number(id), Number(gid));
    }
    this.#run('initdb', '-D', this.#data, '-A', 'trust', '-U', 'postgres', '--no-sync');
    this.#run(...this.#pgctl('start'));
    const { default: pg } = await import('pg');
    const pool = new pg.Pool({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    const { postgresSessionTableSql } = await import('../src/index.js');
    await pool.query(postgresSessionTableSql({ tableName: 'scale_sessions' }));
    await pool.end();
  }

  #pgctl(action: 'start' | 'restart') {
    const options = `-p ${this.ports[0]} -k ${this.#dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
    return ['pg_ctl', '-D', this.#data, '-o', options, '-l', join(this.#dir, 'log'), '-w', '-m', 'fast', action];
  }

  async fail(mark: (what: string) => void): Promise<void> {
    mark('restart begins');
    const [cmd, ...args] = [...this.#asUser, ...this.#pgctl('restart')];
    const { status, output } = await command(cmd!, args);
    if (status !== 0) throw new Error(`pg_ctl restart failed: ${output}`);
    mark('restarted (accepting connections)');
  }

  async stop(): Promise<void> {
    try {
      this.#run('pg_ctl', '-D', this.#data, '-m', 'immediate', 'stop');
    } catch {
      // already down
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------------- app processes

async function startApps(rig: Rig): Promise<{ ports: number[]; children: ChildProcess[]; errors: string[] }> {
  const errors: string[] = [];
  const config: ScaleAppConfig = {
    store: rig.name === 'postgres' ? 'postgres' : 'redis',
    client: rig instanceof RedisClusterRig ? rig.client : undefined,
    ports: rig.ports,
    secret: SECRET,
    timeout: STORE_TIMEOUT,
    namespace: rig.name === 'postgres' ? 'scale_sessions' : 'scale',
  };
  const children: ChildProcess[] = [];
  const ports = await Promise.all(
    [1, 2, 3].map(
      (n) =>
        new Promise<number>((resolve, reject) => {
          const child = fork(join(here, 'scale-app.js'), [JSON.stringify(config)], {
            env: { ...process.env, SCALE_PROCESS: `app${n}` },
            stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
          });
          children.push(child);
          const collect = (chunk: Buffer) => {
            // eslint-disable-next-line no-control-regex
            const text = chunk.toString().replace(/\x1b\[[0-9;]*m/g, '');
            for (const line of text.split('\n')) if (line.trim()) errors.push(`app${n}: ${line.trim()}`);
          };
          child.stdout!.on('data', collect);
          child.stderr!.on('data', collect);
          child.once('message', (m: { port?: number }) => (m.port ? resolve(m.port) : reject(new Error(`app${n} failed`))));
          child.once('exit', (code, signal) => {
            errors.push(`app${n}: exited (${signal ?? code})`);
            reject(new Error(`app${n} exited (${code}): ${errors.join('\n')}`));
          });
        }),
    ),
  );
  return { ports, children, errors };
}

async function stopApps(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.removeAllListeners('exit'); // an exit from here on is the one asked for
          child.once('exit', () => resolve());
          child.send('stop');
        }),
    ),
  );
}

/** Round robin, one request at a time: consecutive requests of a session go to different processes. */
function startProxy(backends: number[]): Promise<{ port: number; close: () => Promise<void> }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  let next = 0;
  const server = http.createServer((req, res) => {
    const port = backends[next++ % backends.length]!;
    const upstream = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers, agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (res.headersSent) return res.destroy();
      res.writeHead(502, { 'x-proxy-error': err.code ?? err.message });
      res.end();
    });
    req.pipe(upstream);
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () => {
          agent.destroy();
          server.closeAllConnections();
          return new Promise<void>((r) => server.close(() => r()));
        },
      }),
    ),
  );
}

// -------------------------------------------------------------------------------------------- load

type Kind = 'login' | 'write' | 'logout' | 'read';
interface Sample {
  /** Milliseconds since the load began, when the answer came. */
  t: number;
  kind: Kind;
  /** HTTP status, or `timeout` / `network`. */
  status: number | 'timeout' | 'network';
  process?: string;
}

interface ClientResult {
  committed: Record<string, number>;
  cookie: string;
  loggedOut?: { cookie: string };
}

function cookieOf(res: Response, fallback: string): string {
  const set = res.headers.getSetCookie().find((c) => c.startsWith('session='));
  if (!set) return fallback;
  const value = set.split(';')[0]!;
  return value === 'session=' ? fallback : value;
}

async function runLoad(base: string, started: number, end: number): Promise<{ samples: Sample[]; clients: ClientResult[] }> {
  const samples: Sample[] = [];
  const send = async (kind: Kind, cookie: string, body?: unknown): Promise<Response | undefined> => {
    let res: Response | undefined;
    let status: Sample['status'];
    try {
      res = await fetch(`${base}/${kind}`, {
        method: kind === 'read' ? 'GET' : 'POST',
        headers: { 'content-type': 'application/json', ...(cookie ? { cookie } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(CLIENT_TIMEOUT),
      });
      await res.arrayBuffer().catch(() => undefined);
      status = res.status;
    } catch (err) {
      status = (err as Error).name === 'TimeoutError' ? 'timeout' : 'network';
    }
    samples.push({ t: Date.now() - started, kind, status, process: res?.headers.get('x-process') ?? undefined });
    return res;
  };
  const ok = (res: Response | undefined) => res !== undefined && res.status >= 200 && res.status < 300;

  const client = async (i: number): Promise<ClientResult> => {
    const result: ClientResult = { committed: { a: 0, b: 0 }, cookie: '' };
    for (;;) {
      const res = await send('login', '', { client: `c${i}` });
      if (ok(res)) {
        result.cookie = cookieOf(res!, '');
        break;
      }
      if (Date.now() > end) return result;
    }
    // A quarter of the clients log out during the run, while their other lane still writes.
    const logoutAt = i % 4 === 0 ? started + (0.15 + (0.8 * ((i * 7919) % 100)) / 100) * (end - started) : Infinity;
    let stopped = false;
    const lane = async (key: string) => {
      for (let n = 1; !stopped && Date.now() < end; n++) {
        const res = await send('write', result.cookie, { key, value: n });
        if (stopped) return; // an answer after the logout: the write raced it
        if (ok(res)) result.committed[key] = n;
      }
    };
    const logout = async () => {
      if (logoutAt === Infinity) return;
      while (Date.now() < logoutAt) await new Promise((r) => setTimeout(r, 20));
      const cookie = result.cookie;
      while (Date.now() < end) {
        const res = await send('logout', cookie);
        if (ok(res)) {
          stopped = true;
          result.loggedOut = { cookie };
          return;
        }
      }
    };
    await Promise.all([lane('a'), lane('b'), logout()]);
    return result;
  };
  const clients = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i)));
  return { samples, clients };
}

// ---------------------------------------------------------------------------------------------- run

interface StoreRun {
  store: string;
  label: string;
  seconds: number;
  clients: number;
  marks: { t: number; what: string }[];
  requests: number;
  byStatus: Record<string, number>;
  failures: { first?: number; last?: number; byStatus: Record<string, number>; byKind: Record<string, number> };
  /** Milliseconds from the store's failure to the last failed request. */
  window?: number;
  committedWrites: number;
  lostWrites: { client: number; key: string; committed: number; found: number | undefined }[];
  logouts: number;
  resurrected: number;
  unreadable: number;
  /** Per process: successful answers after the last failure. */
  recovered: Record<string, number>;
  appLogLines: number;
  /** What the app processes logged (errors and warnings), and their exits. */
  appLog: string[];
  timeline: { t: number; ok: number; unavailable: number; other: number }[];
}

async function runStore(rig: Rig): Promise<StoreRun> {
  console.log(`\n${rig.label}`);
  await rig.start();
  const apps = await startApps(rig);
  const proxy = await startProxy(apps.ports);
  const base = `http://127.0.0.1:${proxy.port}`;
  try {
    const started = Date.now();
    const end = started + SECONDS * 1000;
    const marks: StoreRun['marks'] = [];
    const mark = (what: string) => {
      marks.push({ t: Date.now() - started, what });
      console.log(`  ${((Date.now() - started) / 1000).toFixed(2)} s: ${what}`);
    };
    const failure = new Promise<void>((resolve, reject) =>
      setTimeout(() => rig.fail(mark).then(resolve, reject), SECONDS * 1000 * EVENT_AT),
    );
    const { samples, clients } = await runLoad(base, started, end);
    await failure;

    // Read every session back, through the proxy, once the store is up again.
    const read = async (cookie: string) => {
      for (let attempt = 0; attempt < 50; attempt++) {
        const res = await fetch(`${base}/read`, { headers: { cookie }, signal: AbortSignal.timeout(CLIENT_TIMEOUT) }).catch(
          () => undefined,
        );
        if (res?.ok) return (await res.json()) as { id: string | null; data: Record<string, unknown> };
        await new Promise((r) => setTimeout(r, 100));
      }
      return undefined;
    };
    const lostWrites: StoreRun['lostWrites'] = [];
    let resurrected = 0;
    let unreadable = 0;
    let committedWrites = 0;
    await Promise.all(
      clients.map(async (c, i) => {
        if (c.loggedOut) {
          // The session a logout ended stays ended, whatever the writes that raced the logout did.
          const back = await read(c.loggedOut.cookie);
          if (!back) unreadable++;
          else if (back.id !== null) resurrected++;
          return;
        }
        if (!c.cookie) return;
        committedWrites += c.committed.a! + c.committed.b!;
        const back = await read(c.cookie);
        if (!back) return void unreadable++;
        for (const key of ['a', 'b']) {
          const found = back.data[key] as number | undefined;
          if ((found ?? 0) < c.committed[key]! || back.data.client !== `c${i}`) {
            lostWrites.push({ client: i, key, committed: c.committed[key]!, found });
          }
        }
      }),
    );

    const failed = samples.filter((s) => typeof s.status !== 'number' || s.status >= 400);
    const count = (list: Sample[], key: (s: Sample) => string) =>
      list.reduce<Record<string, number>>((acc, s) => ((acc[key(s)] = (acc[key(s)] ?? 0) + 1), acc), {});
    const lastFailure = failed.length ? Math.max(...failed.map((s) => s.t)) : undefined;
    const failedAt = marks[0]?.t;
    const recovered: Record<string, number> = {};
    for (const s of samples) {
      if (s.process && typeof s.status === 'number' && s.status < 400 && (lastFailure === undefined || s.t > lastFailure)) {
        recovered[s.process] = (recovered[s.process] ?? 0) + 1;
      }
    }
    const timeline: StoreRun['timeline'] = [];
    for (let t = 0; t < SECONDS * 1000; t += BUCKET) {
      const inBucket = samples.filter((s) => s.t >= t && s.t < t + BUCKET);
      timeline.push({
        t,
        ok: inBucket.filter((s) => typeof s.status === 'number' && s.status < 400).length,
        unavailable: inBucket.filter((s) => s.status === 503).length,
        other: inBucket.filter((s) => s.status !== 503 && (typeof s.status !== 'number' || s.status >= 400)).length,
      });
    }
    return {
      store: rig.name,
      label: rig.label,
      seconds: SECONDS,
      clients: CLIENTS,
      marks,
      requests: samples.length,
      byStatus: count(samples, (s) => String(s.status)),
      failures: {
        first: failed.length ? Math.min(...failed.map((s) => s.t)) : undefined,
        last: lastFailure,
        byStatus: count(failed, (s) => String(s.status)),
        byKind: count(failed, (s) => s.kind),
      },
      window: lastFailure !== undefined && failedAt !== undefined ? lastFailure - failedAt : undefined,
      committedWrites,
      lostWrites,
      logouts: clients.filter((c) => c.loggedOut).length,
      resurrected,
      unreadable,
      recovered,
      appLogLines: apps.errors.length,
      appLog: apps.errors,
      timeline,
    };
  } finally {
    await proxy.close();
    await stopApps(apps.children);
    await rig.stop();
  }
}

// ------------------------------------------------------------------------------------------ report

function markdown(runs: StoreRun[]): string {
  const lines = [
    `# Scale-out run: three processes, one store that fails over`,
    '',
    `${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'CPU'}. ` +
      `${CLIENTS} clients for ${SECONDS} s, the store failing at ${Math.round(EVENT_AT * 100)}% of the run; store timeout ${STORE_TIMEOUT} ms, client timeout ${CLIENT_TIMEOUT} ms.`,
    '',
    '| | ' + runs.map((r) => r.store).join(' | ') + ' |',
    '|---|' + runs.map(() => '---').join('|') + '|',
  ];
  const row = (name: string, f: (r: StoreRun) => string) => lines.push(`| ${name} | ${runs.map(f).join(' | ')} |`);
  row('requests', (r) => String(r.requests));
  row('committed writes (answered 2xx)', (r) => String(r.committedWrites));
  row('**committed writes lost** (goal 0)', (r) => `**${r.lostWrites.length}**`);
  row('logouts during the run', (r) => String(r.logouts));
  row('**sessions back after a logout** (goal 0)', (r) => `**${r.resurrected}**`);
  row('sessions that could not be read back', (r) => String(r.unreadable));
  row(
    'failed requests, by status',
    (r) =>
      Object.entries(r.failures.byStatus)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ') || 'none',
  );
  row(
    'failed requests, by kind',
    (r) =>
      Object.entries(r.failures.byKind)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ') || 'none',
  );
  row('failures from / to (s)', (r) =>
    r.failures.first === undefined ? 'none' : `${(r.failures.first / 1000).toFixed(2)} / ${(r.failures.last! / 1000).toFixed(2)}`,
  );
  row('**failure window** (store failed → last failure)', (r) =>
    r.window === undefined ? 'none' : `**${(r.window / 1000).toFixed(2)} s**`,
  );
  row('store events (s)', (r) => r.marks.map((m) => `${(m.t / 1000).toFixed(2)}: ${m.what}`).join('; '));
  row('successes after the last failure, per process', (r) =>
    ['app1', 'app2', 'app3'].map((p) => `${p}: ${r.recovered[p] ?? 0}`).join(', '),
  );
  row('app log lines (errors, warnings)', (r) => String(r.appLogLines));
  lines.push('');
  for (const r of runs) {
    if (r.lostWrites.length) lines.push(`Lost writes (${r.store}): ${JSON.stringify(r.lostWrites.slice(0, 10))}`, '');
    // The first lines, and every line that is not the store's 503 report (one per process every 10 s).
    const log = r.appLog.filter((l, i) => i < 3 || !/Session store unavailable/.test(l)).slice(0, 20);
    if (log.length)
      lines.push(`App log (${r.store}), ${r.appLogLines} lines, the first and the unusual:`, '', ...log.map((l) => `    ${l}`), '');
    lines.push(`![${r.store} timeline](scale-${r.store}.svg)`, '');
  }
  return `${lines.join('\n')}\n`;
}

/** Answers per 250 ms: successes, 503s and other failures, with the store's events marked. */
function svg(r: StoreRun): string {
  const width = 760;
  const height = 240;
  const left = 48;
  const bottom = 200;
  const top = 30;
  const max = Math.max(1, ...r.timeline.map((b) => b.ok + b.unavailable + b.other));
  const x = (t: number) => left + ((width - left - 10) * t) / (r.seconds * 1000);
  const y = (n: number) => bottom - ((bottom - top) * n) / max;
  const w = Math.max(1, x(BUCKET) - x(0) - 0.5);
  const bars = r.timeline
    .map((b) => {
      let base = 0;
      return [
        ['#3a7', b.ok],
        ['#e90', b.unavailable],
        ['#d33', b.other],
      ]
        .map(([color, n]) => {
          if (!n) return '';
          const rect = `<rect x="${x(b.t).toFixed(1)}" y="${y(base + (n as number)).toFixed(1)}" width="${w.toFixed(1)}" height="${(y(base) - y(base + (n as number))).toFixed(1)}" fill="${color}"/>`;
          base += n as number;
          return rect;
        })
        .join('');
    })
    .join('\n');
  const marks = r.marks
    .map(
      (m, i) =>
        `<line x1="${x(m.t).toFixed(1)}" x2="${x(m.t).toFixed(1)}" y1="${top}" y2="${bottom}" stroke="#333" stroke-dasharray="3,3"/>` +
        `<text x="${(x(m.t) + 3).toFixed(1)}" y="${top + 10 + i * 11}" font-size="10">${m.what.replace(/[<>&]/g, '')}</text>`,
    )
    .join('\n');
  const ticks = Array.from({ length: Math.floor(r.seconds / 5) + 1 }, (_, i) => i * 5)
    .map((s) => `<text x="${x(s * 1000).toFixed(1)}" y="${bottom + 14}" font-size="10" text-anchor="middle">${s}s</text>`)
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${left}" y="16" font-size="12">${r.store}: answers per ${BUCKET} ms (green 2xx, orange 503, red other)</text>
<line x1="${left}" x2="${width - 10}" y1="${bottom}" y2="${bottom}" stroke="#999"/>
<text x="${left - 4}" y="${top + 4}" font-size="10" text-anchor="end">${max}</text>
<text x="${left - 4}" y="${bottom}" font-size="10" text-anchor="end">0</text>
${bars}
${marks}
${ticks}
</svg>
`;
}

async function main(): Promise<void> {
  const rigs: Rig[] = [];
  if (!ONLY || 'redis-cluster-node-redis'.includes(ONLY)) rigs.push(new RedisClusterRig('node-redis'));
  if (!ONLY || 'redis-cluster-ioredis'.includes(ONLY)) rigs.push(new RedisClusterRig('ioredis'));
  if (!ONLY || 'postgres'.includes(ONLY)) rigs.push(new PostgresRig());
  const runs: StoreRun[] = [];
  for (const rig of rigs) runs.push(await runStore(rig));
  const results = join(here, '..', '..', 'results');
  mkdirSync(results, { recursive: true });
  const name = ONLY ? 'scale-partial' : 'scale';
  writeFileSync(join(results, `${name}.md`), markdown(runs));
  writeFileSync(join(results, `${name}.json`), `${JSON.stringify(runs, null, 2)}\n`);
  for (const r of runs) writeFileSync(join(results, `scale-${r.store}.svg`), svg(r));
  console.log(`\n${markdown(runs)}`);
  const bad = runs.some(
    (r) =>
      r.lostWrites.length > 0 ||
      r.resurrected > 0 ||
      r.unreadable > 0 ||
      ['app1', 'app2', 'app3'].some((p) => !r.recovered[p]) ||
      Object.keys(r.failures.byStatus).some((status) => status !== '503'),
  );
  process.exitCode = bad ? 1 : 0;
}

await main();
