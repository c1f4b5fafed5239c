/** Starting and stopping scenario servers (bench/server.ts), each in a process of its own. */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Scenario } from './scenarios.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Whether something listens on 127.0.0.1:`port` (Redis, PostgreSQL). */
export function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(1000, () => (socket.destroy(), resolve(false)));
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts a scenario's server in its own process (with Node's `execArgv`) and waits for its port. `script`:
 * another build's server.js (an A/B run against an older commit); default this build's.
 */
export function startServer(
  scenario: Scenario,
  execArgv: string[] = [],
  script = join(here, 'server.js'),
): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(script, [JSON.stringify(scenario)], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
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

export function stopServer(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => (clearTimeout(timer), resolve()));
    child.send('stop');
  });
}

/**
 * A memcached of the benchmark's own on a free port, when Debian's `memcached` is installed; its
 * address goes to the scenario servers in BENCH_MEMCACHED. Undefined when there is none.
 */
export async function startMemcached(): Promise<{ stop(): void } | undefined> {
  if (spawnSync('memcached', ['-V']).status !== 0) return undefined;
  const port = await new Promise<number>((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(free));
    });
  });
  const child = spawn('memcached', ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-m', '256', '-u', 'root'], { stdio: 'ignore' });
  for (let i = 0; i < 50 && !(await reachable(port)); i++) await new Promise((r) => setTimeout(r, 100));
  process.env.BENCH_MEMCACHED = `127.0.0.1:${port}`;
  return { stop: () => void child.kill('SIGTERM') };
}
