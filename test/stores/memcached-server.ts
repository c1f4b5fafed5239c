import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { eventually } from './server-store-suite.js';
import { reachable } from './services.js';

/**
 * Whether Debian's `memcached` is installed (.ci/run installs it). Without it the Memcached tests skip
 * with a loud message, unless CI is set: there they must run.
 */
export function requireMemcached(): boolean {
  if (spawnSync('memcached', ['-V']).status === 0) return true;
  const message = 'memcached is not installed (apt-get install memcached)';
  if (process.env.CI) throw new Error(`${message}, and CI is set: the Memcached store tests must run. .ci/run installs it.`);
  console.warn(`\n${'!'.repeat(78)}\n!! SKIPPING the Memcached store tests: ${message}.\n${'!'.repeat(78)}\n`);
  return false;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A memcached process of the tests' own on 127.0.0.1:port (1 MiB items), stopped and started at will. */
export class LocalMemcached {
  port = 0;
  #process: ChildProcess | undefined;

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    this.#process = spawn('memcached', ['-l', '127.0.0.1', '-p', String(this.port), '-U', '0', '-m', '64', '-I', '1m', '-u', 'root'], {
      stdio: 'ignore',
    });
    await eventually(async () => {
      if (!(await reachable(this.port))) throw new Error('memcached not up yet');
    });
  }

  async stop(): Promise<void> {
    const child = this.#process;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }
}

/** One text-protocol request to memcached, answered with its first line (`mg <key> t` gives the TTL). */
export function ask(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(`${line}\r\n`));
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      if (text.includes('\r\n')) {
        socket.destroy();
        resolve(text.slice(0, text.indexOf('\r\n')));
      }
    });
    socket.once('error', reject);
  });
}
