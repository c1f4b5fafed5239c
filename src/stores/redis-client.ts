import { createHash } from 'node:crypto';
import { SessionsConfigError, SessionStoreUnavailableError } from '../sessions.errors.js';

/**
 * The few things the Redis store needs from a client, whichever client it is. The store takes the
 * user's own client and never imports `redis` or `ioredis`: both are optional peers.
 */
export interface RedisCommands {
  /** Which client this is, for messages. */
  readonly kind: string;
  /** Sends one command about `key` (clusters route by it). */
  command(key: string, args: string[], readonly: boolean, signal: AbortSignal): Promise<unknown>;
  /** Stops whatever the store does to the client by itself (following a cluster's failovers): the app is closing it. */
  stop?(): void;
}

/** node-redis v5: `createClient()`. */
interface NodeRedisClient {
  sendCommand(args: string[], options?: { abortSignal?: AbortSignal }): Promise<unknown>;
  readonly isReady: boolean;
  readonly isOpen: boolean;
  destroy?(): void;
  connect?(): Promise<unknown>;
  on?(event: 'ready', listener: () => void): unknown;
}

/** node-redis v5: `createCluster()`. */
interface NodeRedisCluster {
  sendCommand(firstKey: string, isReadonly: boolean, args: string[], options?: { abortSignal?: AbortSignal }): Promise<unknown>;
  readonly isOpen: boolean;
  /** The masters the client routes to, as it last discovered them. */
  readonly masters: readonly { readonly address: string; readonly client?: Partial<NodeRedisClient> }[];
  destroy?(): unknown;
  connect?(): Promise<unknown>;
}

/** ioredis: `new Redis()` and `new Cluster()`. */
interface IoRedisClient {
  call(command: string, ...args: string[]): Promise<unknown>;
  readonly status: string;
  readonly isCluster?: boolean;
  disconnect?(reconnect?: boolean): void;
}

/**
 * ioredis states in which a command is sent: connected, connecting (at startup; the wait is bounded by
 * the store's timeout and maxPending), or lazy (the command starts the connection). Between reconnect
 * attempts, and once closed, commands fail at once.
 */
const IOREDIS_SENDING = new Set(['ready', 'wait', 'connect', 'connecting']);

function unavailable(kind: string, state: string): SessionStoreUnavailableError {
  return new SessionStoreUnavailableError(`RedisSessionStore: the ${kind} client is not connected (${state})`);
}

/**
 * Works out which client it was given. A client that is not connected fails at once instead of queueing
 * the command: the client's offline queue never grows because of sessions, and the next request after
 * the client reconnects works again.
 */
export function redisCommands(client: unknown, watch?: DeadConnectionWatch): RedisCommands {
  const commands = clientCommands(client, watch);
  return watch && commands.reset && watch.deadAfterMs > 0 ? watched(commands, watch) : commands;
}

/** When to give up on a connection that stopped answering, and where to say so. */
export interface DeadConnectionWatch {
  /** A connection on which no reply has come for this long, with commands waiting, is dead. */
  readonly deadAfterMs: number;
  readonly logger: { warn(message: string): unknown };
}

type ClientCommands = RedisCommands & {
  /** Drops the client's connection and opens a new one (single clients; a cluster manages its own). */
  reset?: () => void;
  /** Whether the client is between connecting and ready (node-redis runs a handshake there). */
  connecting?: () => boolean;
  /** When the client last became ready (ms since the epoch), so that two short reconnects do not add up. */
  readyAt?: () => number;
};

/** An error the server sent (a reply), as opposed to one the client made up (a timeout, "not connected"). */
function isErrorReply(err: unknown): boolean {
  const name = (err as { constructor?: { name?: string }; name?: string } | null)?.constructor?.name;
  return name === 'ErrorReply' || name === 'ReplyError' || (err as { name?: string } | null)?.name === 'ReplyError';
}

/**
 * A connection can stay open and never answer again: a server that was replaced behind a load balancer,
 * a proxy that lost its upstream. Neither client notices that by default (node-redis's connectTimeout
 * covers only the TCP handshake; its pingInterval and socketTimeout do not close such a socket while
 * commands keep coming). So the store watches: when commands have waited `deadAfterMs` with no reply
 * of any kind, or the client has been connecting that long, it tells the client to reconnect
 * (node-redis: destroy() and connect(); ioredis: disconnect(true)), logs a warning saying why, and fails
 * that call with a 503. Only what the server sent counts as a reply: the store's own abort, a client-side
 * timeout and a "not connected" error do not.
 */
export function watched(commands: ClientCommands, { deadAfterMs, logger }: DeadConnectionWatch): RedisCommands {
  /** Calls of the current connection (a reset starts a new generation; older calls no longer count). */
  let generation = 0;
  let waiting = 0;
  /** When the current wait began: the first call sent while none waited, or the last reply since. */
  let waitingSince = 0;
  /** When the client was first seen connecting in its current attempt. */
  let connectingSince: number | undefined;
  let warnedAt = -Infinity;
  return {
    kind: commands.kind,
    command: async (key, args, readonly, signal) => {
      const now = Date.now();
      if (!commands.connecting?.()) connectingSince = undefined;
      else if (connectingSince === undefined || connectingSince < (commands.readyAt?.() ?? 0)) connectingSince = now;
      const silentFor = waiting > 0 ? now - waitingSince : 0;
      const stuckFor = Math.max(silentFor, connectingSince === undefined ? 0 : now - connectingSince);
      if (stuckFor > deadAfterMs) {
        // Once a minute at most: during a long outage the reset repeats every deadAfterMs.
        if (now - warnedAt >= 60_000) {
          warnedAt = now;
          logger.warn(
            `RedisSessionStore: the ${commands.kind} connection has not answered (or finished connecting) for ${stuckFor} ms; ` +
              `reconnecting it. The client's own options do not notice a connection that stays open and silent.`,
          );
        }
        generation++;
        waiting = 0;
        connectingSince = undefined;
        commands.reset!();
        throw unavailable(commands.kind, 'reconnecting: its connection stopped answering');
      }
      const mine = generation;
      if (waiting++ === 0) waitingSince = now;
      const settled = (replied: boolean) => {
        if (mine !== generation) return; // a call of a connection that was reset
        waiting--;
        if (replied) waitingSince = Date.now();
      };
      try {
        const reply = await commands.command(key, args, readonly, signal);
        settled(true);
        return reply;
      } catch (err) {
        settled(isErrorReply(err));
        throw err;
      }
    },
  };
}

function clientCommands(client: unknown, watch?: DeadConnectionWatch): ClientCommands {
  const c = client as Partial<NodeRedisClient & NodeRedisCluster & IoRedisClient> | null;
  if (c && typeof c.call === 'function' && typeof c.status === 'string') {
    const io = c as IoRedisClient;
    const kind = io.isCluster ? 'ioredis Cluster' : 'ioredis';
    return {
      kind,
      command: async (_key, [name, ...args]) => {
        if (!IOREDIS_SENDING.has(io.status)) throw unavailable(kind, io.status);
        return io.call(name!, ...args);
      },
      reset: io.isCluster || typeof io.disconnect !== 'function' ? undefined : () => io.disconnect!(true),
    };
  }
  if (c && typeof c.sendCommand === 'function' && 'masters' in c) {
    const cluster = c as NodeRedisCluster;
    const follow = watch && watch.deadAfterMs > 0 ? followFailovers(cluster, watch.logger) : undefined;
    return {
      kind: 'node-redis cluster',
      command: async (key, args, readonly, signal) => {
        if (!cluster.isOpen) {
          follow?.trigger();
          throw unavailable('node-redis cluster', 'closed');
        }
        try {
          return await cluster.sendCommand(key, readonly, args, { abortSignal: signal });
        } catch (err) {
          if (!isErrorReply(err)) follow?.trigger();
          throw err;
        }
      },
      stop: follow?.stop,
    };
  }
  if (c && typeof c.sendCommand === 'function' && typeof c.isReady === 'boolean') {
    const node = c as NodeRedisClient;
    let readyAt = 0;
    node.on?.('ready', () => {
      readyAt = Date.now();
    });
    return {
      kind: 'node-redis',
      command: async (_key, args, _readonly, signal) => {
        if (!node.isReady) throw unavailable('node-redis', node.isOpen ? 'reconnecting' : 'closed: call connect() first');
        return node.sendCommand(args, { abortSignal: signal });
      },
      connecting: () => node.isOpen && !node.isReady,
      readyAt: () => readyAt,
      reset:
        typeof node.destroy === 'function' && typeof node.connect === 'function'
          ? () => {
              node.destroy!();
              // Its reconnect strategy takes over if the server is still away; errors go to its 'error' listeners.
              node.connect!().catch(() => undefined);
            }
          : undefined,
    };
  }
  throw new SessionsConfigError(
    'RedisSessionStore needs a Redis client: a node-redis v5 client (createClient or createCluster, connected) ' +
      'or an ioredis Redis or Cluster instance',
  );
}

/** How often, at most, a node-redis cluster's topology is compared with the cluster's own (ms). */
const TOPOLOGY_CHECK_MS = 1000;

/**
 * node-redis's cluster client learns of a new topology only from MOVED and ASK replies
 * (redis/node-redis#2806). When a master dies, its replica takes over, but the client goes on sending
 * that shard's commands to the dead address, and they fail until the process restarts. So, after a
 * call fails without a reply from the server (a timeout, a dropped connection), the store asks a
 * master the client is connected to for the cluster's state and masters (`CLUSTER INFO`, `CLUSTER
 * SLOTS`), at most once a second and one check at a time. When the cluster is healthy and its masters
 * are not the client's, the client is reconnected (`destroy()`, then `connect()`, which discovers the
 * topology from its `rootNodes`); a reconnect that fails is tried again after the next failed call.
 * The masters are asked in random order, the next when one does not answer: a master that hangs
 * cannot stop the check. Once stopped (the app is shutting down), the client is never reopened.
 * Returns the trigger, which never throws and never waits, and the stop.
 */
function followFailovers(cluster: NodeRedisCluster, logger: { warn(message: string): unknown }): { trigger: () => void; stop: () => void } {
  let checking = false;
  let lastCheck = -Infinity;
  let stopped = false;
  /** The store closed the client to reconnect it, and the connect has not yet succeeded. */
  let closedByStore = false;
  const reconnect = async () => {
    await cluster.connect!();
    closedByStore = false;
    // The app began closing while the store reconnected: it closes a client it believes open.
    if (stopped) await cluster.destroy!();
  };
  /** The cluster's masters as a connected master sees them, once the cluster is healthy; undefined otherwise. */
  const clusterMasters = async (): Promise<Set<string> | undefined> => {
    const ready = cluster.masters.filter((m) => m.client?.isReady && typeof m.client.sendCommand === 'function');
    for (let i = ready.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [ready[i], ready[j]] = [ready[j]!, ready[i]!];
    }
    for (const { client } of ready) {
      try {
        const signal = AbortSignal.timeout(TOPOLOGY_CHECK_MS);
        const info = String(await client!.sendCommand!(['CLUSTER', 'INFO'], { abortSignal: signal }));
        if (!info.includes('cluster_state:ok')) return undefined; // a failover under way: look again after the next failure
        const slots = (await client!.sendCommand!(['CLUSTER', 'SLOTS'], { abortSignal: signal })) as unknown[];
        return new Set(slots.map((range) => masterAddress(range)).filter((a) => a !== undefined));
      } catch {
        // this master did not answer: ask the next
      }
    }
    return undefined;
  };
  const check = async () => {
    if (closedByStore) {
      if (!cluster.isOpen) await reconnect();
      return;
    }
    const theirs = await clusterMasters();
    const ours = new Set(cluster.masters.map((m) => m.address));
    if (stopped || !theirs?.size || (theirs.size === ours.size && [...theirs].every((a) => ours.has(a)))) return;
    logger.warn(
      `RedisSessionStore: the Redis Cluster's masters changed (${[...ours].filter((a) => !theirs.has(a)).join(', ') || 'none'} gone, ` +
        `${[...theirs].filter((a) => !ours.has(a)).join(', ') || 'none'} new) and the node-redis cluster client had not noticed; reconnecting it`,
    );
    closedByStore = true;
    await cluster.destroy!();
    await reconnect();
  };
  const trigger = () => {
    const now = Date.now();
    if (
      stopped ||
      checking ||
      now - lastCheck < TOPOLOGY_CHECK_MS ||
      typeof cluster.connect !== 'function' ||
      typeof cluster.destroy !== 'function'
    ) {
      return;
    }
    checking = true;
    lastCheck = now;
    check()
      .catch(() => undefined) // the next failed call looks again
      .finally(() => {
        checking = false;
        lastCheck = Date.now();
      });
  };
  return {
    trigger,
    stop: () => {
      stopped = true;
    },
  };
}

/** `host:port` of a `CLUSTER SLOTS` range's master: `[start, end, [host, port, id, ...], ...replicas]`. */
function masterAddress(range: unknown): string | undefined {
  const master = Array.isArray(range) ? (range[2] as unknown) : undefined;
  if (!Array.isArray(master) || master.length < 2) return undefined;
  return `${String(master[0])}:${String(master[1])}`;
}

/** A Lua script, sent by SHA1 and loaded on the first NOSCRIPT (a restarted or failed-over server). */
export class RedisScript {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /** Runs the script on `keys` (one key, or keys of one hash slot: the first routes the call). */
  async run(redis: RedisCommands, keys: string | readonly string[], args: string[], signal: AbortSignal): Promise<unknown> {
    const list = typeof keys === 'string' ? [keys] : keys;
    const tail = [String(list.length), ...list, ...args];
    try {
      return await redis.command(list[0]!, ['EVALSHA', this.sha, ...tail], false, signal);
    } catch (err) {
      if (!String((err as Error)?.message).startsWith('NOSCRIPT')) throw err;
      return redis.command(list[0]!, ['EVAL', this.source, ...tail], false, signal);
    }
  }
}

/** HGETALL's reply as pairs, whatever shape the client gives it (RESP2 flat array, RESP3 map or object). */
export function hashEntries(reply: unknown): [string, string][] {
  if (Array.isArray(reply)) {
    const out: [string, string][] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) out.push([String(reply[i]), String(reply[i + 1])]);
    return out;
  }
  if (reply instanceof Map) return [...reply].map(([k, v]) => [String(k), String(v)]);
  if (reply && typeof reply === 'object') return Object.entries(reply).map(([k, v]) => [k, String(v)]);
  return [];
}
