import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'ioredis';
import { createCluster } from 'redis';
import { afterAll, beforeAll, describe } from 'vitest';
import { RedisSessionStore } from '../../src/index.js';
import { describeServerStore, eventually, type MakeStore } from './server-store-suite.js';
import { counted, inspect, type Sent } from './redis-helpers.js';
import { runId } from './services.js';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0 && spawnSync('redis-cli', ['--version']).status === 0;
if (!hasRedisServer) {
  console.warn(
    `\n${'!'.repeat(78)}\n!! SKIPPING the Redis Cluster tests: redis-server or redis-cli is not installed.\n${'!'.repeat(78)}\n`,
  );
}

/** A port that is free, and whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort(): Promise<number> {
  const listen = (port: number) =>
    new Promise<number | undefined>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(undefined));
      server.listen(port, '127.0.0.1', () => {
        const bound = (server.address() as net.AddressInfo).port;
        server.close(() => resolve(bound));
      });
    });
  for (let i = 0; i < 50; i++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if ((await listen(port)) && (await listen(port + 10_000))) return port;
  }
  throw new Error('no free port pair for a Redis Cluster node');
}

/** Three masters on local ports, no replicas: the smallest real cluster. */
class LocalCluster {
  readonly ports: number[] = [];
  readonly #processes: ChildProcess[] = [];
  readonly #dir = mkdtempSync(join(tmpdir(), 'nest-sessions-cluster-'));

  async start(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      const port = await freeClusterPort();
      this.ports.push(port);
      this.#processes.push(
        spawn(
          'redis-server',
          [
            '--port',
            String(port),
            '--bind',
            '127.0.0.1',
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            join(this.#dir, `nodes-${port}.conf`),
            '--dir',
            this.#dir,
            '--save',
            '',
            '--appendonly',
            'no',
          ],
          { stdio: 'ignore' },
        ),
      );
    }
    for (const port of this.ports) {
      await eventually(async () => {
        if (
          spawnSync('redis-cli', ['-p', String(port), 'ping'])
            .stdout.toString()
            .trim() !== 'PONG'
        )
          throw new Error(`node ${port} not up`);
      });
    }
    const created = spawnSync('redis-cli', [
      '--cluster',
      'create',
      ...this.ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
    for (const port of this.ports) {
      await eventually(async () => {
        const info = spawnSync('redis-cli', ['-p', String(port), 'cluster', 'info']).stdout.toString();
        if (!info.includes('cluster_state:ok')) throw new Error(`node ${port}: cluster not ok`);
      }, 20_000);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.#processes.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.kill('SIGKILL');
          }),
      ),
    );
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

describe.skipIf(!hasRedisServer)('RedisSessionStore on a Redis Cluster of three masters', () => {
  const cluster = new LocalCluster();
  beforeAll(() => cluster.start(), 60_000);
  afterAll(() => cluster.stop());

  let stores = 0;
  const clients: Record<string, MakeStore> = {
    'node-redis createCluster': async ({ timeout } = {}) => {
      const raw = createCluster({ rootNodes: cluster.ports.map((port) => ({ socket: { host: '127.0.0.1', port } })) });
      raw.on('error', () => undefined);
      await raw.connect();
      const sent: Sent = [];
      const prefix = `test:${runId}:cl${stores++}:`;
      const store = new RedisSessionStore(counted(raw, 'sendCommand', sent), { prefix, timeout });
      return inspect(store, prefix, sent, {
        exists: async (key) => (await raw.exists(key)) === 1,
        pttl: (key) => raw.pTTL(key),
        hset: async (key, field, value) => void (await raw.hSet(key, field, value)),
        close: async () => void (await raw.close().catch(() => raw.destroy())),
      });
    },
    'ioredis Cluster': async ({ timeout } = {}) => {
      const raw = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })));
      raw.on('error', () => undefined);
      await new Promise((resolve) => raw.once('ready', resolve));
      const sent: Sent = [];
      const prefix = `test:${runId}:ic${stores++}:`;
      const store = new RedisSessionStore(counted(raw, 'call', sent), { prefix, timeout });
      return inspect(store, prefix, sent, {
        exists: async (key) => (await raw.exists(key)) === 1,
        pttl: (key) => raw.pttl(key),
        hset: async (key, field, value) => void (await raw.hset(key, field, value)),
        close: async () => void (await raw.quit().catch(() => raw.disconnect())),
      });
    },
  };

  for (const [name, make] of Object.entries(clients)) describeServerStore(`RedisSessionStore with ${name}`, make);
});
