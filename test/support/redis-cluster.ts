/**
 * A real Redis Cluster for tests: N masters (default 3) spawned from the installed `redis-server` on
 * free loopback ports in a temp dir (`--cluster-enabled yes`, no persistence, `noeviction`, a password),
 * formed with ioredis commands (CLUSTER ADDSLOTSRANGE on each node, CLUSTER MEET between every two), and
 * ready once CLUSTER INFO reports `cluster_state:ok` with every node known on every node (about 2 s: a
 * new master waits that long before it reports ok). `stop()` ends
 * the processes and removes the directory. No replicas: what Switchyard needs from a cluster is slots
 * spread over several nodes, not failover.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { ensureRedisBinary } from '../../src/redis-server.js';

/** Number of hash slots of a Redis Cluster. */
const SLOTS = 16_384;

export interface ClusterNodeInfo {
  readonly host: string;
  readonly port: number;
  /** First and last slot this master serves. */
  readonly slots: readonly [number, number];
}

export interface TestRedisCluster {
  /** `redis+cluster://:<password>@127.0.0.1:<port>,…`: what REDIS_URL is set to. */
  readonly url: string;
  readonly password: string;
  readonly nodes: readonly ClusterNodeInfo[];
  /** A plain connection to one node (for CLUSTER KEYSLOT, CONFIG …); closed by `stop()`. */
  admin(index: number): Redis;
  stop(): Promise<void>;
}

/** A TCP port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no TCP port');
  return address.port;
}

interface Spawned {
  readonly child: ChildProcess;
  readonly port: number;
  readonly busPort: number;
}

/**
 * Starts one redis-server on loopback TCP (cluster-enabled unless `cluster` is false); resolves when it
 * logs that it accepts connections. Another process may take a port between `freePort` and the bind:
 * then it is tried again on fresh ports.
 */
async function startNode(bin: string, dir: string, password: string, cluster = true): Promise<Spawned> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    let busPort = await freePort();
    while (busPort === port) busPort = await freePort();
    const clusterArgs = [
      '--cluster-enabled',
      'yes',
      '--cluster-port',
      String(busPort),
      '--cluster-config-file',
      join(dir, `nodes-${port}.conf`),
      '--cluster-node-timeout',
      '5000',
    ];
    const child = spawn(
      bin,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        ...(cluster ? clusterArgs : []),
        '--dir',
        dir,
        '--appendonly',
        'no',
        '--save',
        '',
        '--maxmemory-policy',
        'noeviction',
        '--requirepass',
        password,
        '--masterauth',
        password,
        '--daemonize',
        'no',
        '--loglevel',
        'notice',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    const ready = new Promise<boolean>((resolve) => {
      const onData = (d: Buffer) => {
        output += d.toString();
        if (output.includes('Ready to accept connections')) resolve(true);
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', () => resolve(false));
    });
    if (await ready) return { child, port, busPort };
    if (attempt < 3 && /Address already in use/i.test(output)) continue;
    throw new Error(`redis-server (port ${port}) did not start: ${output.trim()}`);
  }
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

/** A password of letters and digits (written into URLs unencoded). */
function newPassword(): string {
  return `pw${Math.random().toString(36).slice(2, 12)}`;
}

/** One plain (not cluster) Redis on loopback TCP, with a password. */
export interface TestRedisNode {
  readonly port: number;
  readonly password: string;
  stop(): Promise<void>;
}

/** Starts one Redis on TCP without cluster mode (the cluster tests' "wrong kind of Redis"). */
export async function startRedisNode(): Promise<TestRedisNode> {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-node-'));
  const password = newPassword();
  try {
    const node = await startNode(ensureRedisBinary(), dir, password, false);
    return {
      port: node.port,
      password,
      async stop() {
        await kill(node.child);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** Resolves once `check` returns true, checking again after each `everyMs`; rejects after `timeoutMs`. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Starts and forms a cluster of `masters` nodes; see the module header. */
export async function startRedisCluster(opts: { masters?: number } = {}): Promise<TestRedisCluster> {
  const count = opts.masters ?? 3;
  const bin = ensureRedisBinary();
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-cluster-'));
  const password = newPassword();
  const spawned: Spawned[] = [];
  const admins: Redis[] = [];
  const stop = async () => {
    for (const a of admins) a.disconnect();
    await Promise.all(spawned.map(({ child }) => kill(child)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // In parallel: a new master waits about 2 s after its start before it reports cluster_state:ok
    // (Redis's CLUSTER_WRITABLE_DELAY), and these waits then overlap.
    const started = await Promise.allSettled(
      Array.from({ length: count }, () => startNode(bin, dir, password)),
    );
    for (const s of started) if (s.status === 'fulfilled') spawned.push(s.value);
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    for (const s of spawned) {
      const admin = new Redis({ host: '127.0.0.1', port: s.port, password, lazyConnect: true });
      admin.on('error', () => undefined);
      await admin.connect();
      admins.push(admin);
    }
    const nodes: ClusterNodeInfo[] = spawned.map((s, i) => {
      const first = Math.floor((SLOTS * i) / count);
      const last = Math.floor((SLOTS * (i + 1)) / count) - 1;
      return { host: '127.0.0.1', port: s.port, slots: [first, last] };
    });
    await Promise.all(
      admins.map((a, i) => a.call('CLUSTER', 'ADDSLOTSRANGE', ...(nodes[i]?.slots ?? []).map(String))),
    );
    // Every node meets every other: with one MEET per node, the others learn of each other by gossip,
    // which takes seconds.
    await Promise.all(
      admins.map(async (a, i) => {
        for (const [j, s] of spawned.entries())
          if (j !== i) await a.call('CLUSTER', 'MEET', '127.0.0.1', String(s.port), String(s.busPort));
      }),
    );
    await until('cluster_state:ok on every node', async () => {
      const infos = await Promise.all(admins.map((a) => a.call('CLUSTER', 'INFO') as Promise<string>));
      return infos.every(
        (info) =>
          /^cluster_state:ok\s*$/m.test(info) &&
          new RegExp(`^cluster_known_nodes:${count}\\s*$`, 'm').test(info),
      );
    });
    return {
      url: `redis+cluster://:${password}@${nodes.map((n) => `${n.host}:${n.port}`).join(',')}`,
      password,
      nodes,
      admin(index) {
        const a = admins[index];
        if (!a) throw new Error(`no cluster node ${index}`);
        return a;
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
