import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'ioredis';
import { createCluster } from 'redis';
import { Logger } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import { RedisSessionStore, type SessionStoreContext } from '../../src/index.js';
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

/** Three masters on local ports, with `replicas` replicas each (none: the smallest real cluster). */
class LocalCluster {
  readonly ports: number[] = [];
  readonly #processes: ChildProcess[] = [];
  readonly #dir = mkdtempSync(join(tmpdir(), 'nest-sessions-cluster-'));
  constructor(readonly replicas = 0) {}

  async start(): Promise<void> {
    for (let i = 0; i < 3 * (1 + this.replicas); i++) {
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
            // A master silent for a second is failed over to its replica.
            '--cluster-node-timeout',
            '1000',
            // Replicas sync as soon as they connect (the default waits 5 s for more replicas).
            '--repl-diskless-sync-delay',
            '0',
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
      String(this.replicas),
      '--cluster-yes',
    ]);
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
    for (const port of this.ports) {
      await eventually(async () => {
        const info = spawnSync('redis-cli', ['-p', String(port), 'cluster', 'info']).stdout.toString();
        if (!info.includes('cluster_state:ok')) throw new Error(`node ${port}: cluster not ok`);
      }, 20_000);
    }
    // Every replica has finished its first sync: a write from now on reaches it.
    for (const port of this.ports) {
      await eventually(async () => {
        const info = spawnSync('redis-cli', ['-p', String(port), 'info', 'replication']).stdout.toString();
        if (!info.includes('role:master') && !info.includes('master_link_status:up')) throw new Error(`replica ${port} not in sync`);
      }, 30_000);
    }
  }

  /** The port of the master that holds `key`, and of its replica. */
  shardOf(key: string): { master: number; replica: number } {
    const port = this.ports.find((p) => this.#alive(p))!;
    const slot = Number(
      spawnSync('redis-cli', ['-p', String(port), 'cluster', 'keyslot', key])
        .stdout.toString()
        .trim(),
    );
    const lines = spawnSync('redis-cli', ['-p', String(port), 'cluster', 'nodes'])
      .stdout.toString()
      .trim()
      .split('\n');
    const nodes = lines.map((line) => line.split(' '));
    const master = nodes.find(
      ([, , flags, , , , , , ...ranges]) =>
        flags!.includes('master') &&
        !flags!.includes('fail') &&
        ranges.some((r) => {
          const [from, to = from] = r.split('-').map(Number);
          return slot >= from! && slot <= to!;
        }),
    )!;
    const replica = nodes.find(([, , flags, masterId]) => flags!.includes('slave') && masterId === master[0])!;
    const portOf = (node: string[]) => Number(node[1]!.split('@')[0]!.split(':')[1]);
    return { master: portOf(master), replica: portOf(replica) };
  }

  #alive(port: number): boolean {
    const p = this.#processes[this.ports.indexOf(port)]!;
    return p.exitCode === null && p.signalCode === null;
  }

  /** Kills a node as a crash does (SIGKILL), and waits until it is gone. */
  async kill(port: number): Promise<void> {
    const p = this.#processes[this.ports.indexOf(port)]!;
    const exited = new Promise((resolve) => p.once('exit', resolve));
    p.kill('SIGKILL');
    await exited;
  }

  keysOn(port: number): number {
    return Number(
      spawnSync('redis-cli', ['-p', String(port), 'dbsize'])
        .stdout.toString()
        .trim(),
    );
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.#processes.map(
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

describe.skipIf(!hasRedisServer)('RedisSessionStore when a Redis Cluster master dies and its replica takes over', () => {
  const clients: Record<string, (ports: number[]) => Promise<{ raw: unknown; close: () => Promise<void> }>> = {
    'node-redis createCluster': async (ports) => {
      const raw = createCluster({
        rootNodes: ports.map((port) => ({ socket: { host: '127.0.0.1', port } })),
        defaults: { socket: { reconnectStrategy: () => 100 } },
      });
      raw.on('error', () => undefined);
      await raw.connect();
      return { raw, close: async () => void (await raw.close().catch(() => raw.destroy())) };
    },
    'ioredis Cluster': async (ports) => {
      const raw = new Cluster(
        ports.map((port) => ({ host: '127.0.0.1', port })),
        { clusterRetryStrategy: () => 100 },
      );
      raw.on('error', () => undefined);
      await new Promise((resolve) => raw.once('ready', resolve));
      return { raw, close: async () => void (await raw.quit().catch(() => raw.disconnect())) };
    },
  };

  for (const [name, connect] of Object.entries(clients)) {
    describe(name, () => {
      const cluster = new LocalCluster(1);
      beforeAll(() => cluster.start(), 60_000);
      afterAll(() => cluster.stop());

      it('serves the session again from the promoted replica, without a restart of the client', { timeout: 60_000 }, async () => {
        const { raw, close } = await connect(cluster.ports);
        // The store's own logger says what it did about the client.
        const warn = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
        const ctx: SessionStoreContext = {
          keyring: new Keyring(['redis-failover-test-secret-0123456789']),
          tokenName: 'session',
          logger: new Logger('test'),
        };
        const prefix = `test:${runId}:failover:`;
        const store = new RedisSessionStore(raw, { prefix, timeout: 500 });
        try {
          const now = Date.now();
          const { token, id } = await store.create({ user: 'ann' }, { createdAt: now, refreshedAt: now, expiresAt: now + 600_000 }, ctx);
          const { master, replica } = cluster.shardOf(store.key(id));
          // Replicated before the crash: what this test asks is whether the client follows the failover.
          await eventually(async () => expect(cluster.keysOn(replica)).toBe(1));
          await cluster.kill(master);
          await eventually(async () => expect((await store.load(token, ctx))?.data).toEqual({ user: 'ann' }), 30_000);
          const after = Date.now();
          const next = await store.create({ user: 'bob' }, { createdAt: after, refreshedAt: after, expiresAt: after + 600_000 }, ctx);
          expect((await store.load(next.token, ctx))?.data).toEqual({ user: 'bob' });
          if (name.startsWith('node-redis')) {
            // node-redis learns of a new topology only from MOVED replies: the store told it.
            expect(warn.mock.calls.some(([w]) => String(w).includes("the Redis Cluster's masters changed"))).toBe(true);
          }
        } finally {
          warn.mockRestore();
          await close();
        }
      });
    });
  }
});
