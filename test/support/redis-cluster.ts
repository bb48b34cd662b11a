/**
 * A real Redis Cluster for tests: N masters (default 3) spawned from the installed `redis-server` on
 * free loopback ports in a temp dir (`--cluster-enabled yes`, no persistence, `noeviction`, a password),
 * formed with ioredis commands (CLUSTER ADDSLOTSRANGE on each node, CLUSTER MEET between every two), and
 * ready once CLUSTER INFO reports `cluster_state:ok` with every node known on every node (about 2 s: a
 * new master waits that long before it reports ok). `stop()` ends the processes and removes the
 * directory. No replicas: what Switchyard needs from a cluster is slots spread over several nodes, not
 * failover. With `tls`, the nodes accept TLS connections only (the cluster bus too). Tests of outages kill, restart or pause one node (`kill`, `restart`, `pause`).
 *
 * Nothing outlives the test process: its exit, SIGTERM, SIGINT or SIGHUP kills the nodes and removes
 * the directory; a process killed outright (SIGKILL, a cancelled CI job) cannot, so each directory holds
 * an owner file (`owner.json`: the owning pid and the nodes' pids), and the next start reaps the nodes
 * and directory of an owner that is gone.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { alive, ensureRedisBinary } from '../../src/redis-server.js';

/** Number of hash slots of a Redis Cluster. */
const SLOTS = 16_384;

export interface ClusterNodeInfo {
  readonly host: string;
  readonly port: number;
  /** First and last slot this master serves. */
  readonly slots: readonly [number, number];
}

export interface TestRedisCluster {
  /** `redis+cluster://:<password>@127.0.0.1:<port>,…` (`rediss+cluster://` with TLS): REDIS_URL. */
  readonly url: string;
  readonly password: string;
  readonly nodes: readonly ClusterNodeInfo[];
  /** The temp dir of the nodes' files (removed by `stop()`). */
  readonly dir: string;
  /** A plain connection to one node (for CLUSTER KEYSLOT, CONFIG …); closed by `stop()`. */
  admin(index: number): Redis;
  /** The pid of one node's redis-server. */
  pid(index: number): number;
  /**
   * Kills one node (SIGKILL: a crash, a host gone) after saving its cluster state, so that `restart`
   * brings it back as the same node with the same slots (its keys are lost: no persistence).
   */
  kill(index: number): Promise<void>;
  /** Starts a killed node again on the same ports; resolves once it accepts connections. */
  restart(index: number): Promise<void>;
  /** Stops one node (SIGSTOP): it accepts connections and answers nothing, until `resume`. */
  pause(index: number): void;
  resume(index: number): void;
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

/**
 * The PEM files of a TLS-only node: it listens for TLS on its port and on nothing else, with `cert` and
 * `key`. With `ca` (required in a cluster: its bus is TLS too), it trusts that CA for the other nodes'
 * certificates and sends it to clients after its own certificate; without, it sends its own only.
 * Clients need no certificate.
 */
export interface TestTlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca?: string;
}

/** The arguments that make a node listen on `port`: plain TCP, or TLS only. */
function listenArgs(port: number, tls: TestTlsFiles | undefined): string[] {
  if (tls === undefined) return ['--port', String(port)];
  return [
    '--port',
    '0',
    '--tls-port',
    String(port),
    '--tls-cert-file',
    tls.cert,
    '--tls-key-file',
    tls.key,
    ...(tls.ca === undefined ? [] : ['--tls-ca-cert-file', tls.ca]),
    '--tls-auth-clients',
    'no',
  ];
}

interface Spawned {
  readonly child: ChildProcess;
  readonly port: number;
  readonly busPort: number;
}

/**
 * Starts one redis-server on loopback TCP at `port` (cluster-enabled, with its bus on `busPort`, unless
 * `busPort` is undefined); resolves with it once it logs that it accepts connections, or with its output
 * when it exits first. `started` is told of the process as soon as it is spawned, so that it is cleaned
 * up whatever happens next.
 */
async function spawnNode(
  bin: string,
  dir: string,
  password: string,
  port: number,
  busPort: number | undefined,
  extraArgs: readonly string[],
  started: (child: ChildProcess) => void,
  tls?: TestTlsFiles,
): Promise<{ child: ChildProcess } | { output: string }> {
  const clusterArgs =
    busPort === undefined
      ? []
      : [
          '--cluster-enabled',
          'yes',
          '--cluster-port',
          String(busPort),
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          '5000',
          // The bus over TLS too; the nodes then announce their TLS port to clients.
          ...(tls === undefined ? [] : ['--tls-cluster', 'yes']),
        ];
  const child = spawn(
    bin,
    [
      ...listenArgs(port, tls),
      '--bind',
      '127.0.0.1',
      ...clusterArgs,
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
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  started(child);
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
  return (await ready) ? { child } : { output };
}

/**
 * Starts one redis-server on free loopback TCP ports (cluster-enabled unless `cluster` is false).
 * Another process may take a port between `freePort` and the bind: then it is tried again on fresh
 * ports. `started` is told of every process spawned (see `spawnNode`).
 */
async function startNode(
  bin: string,
  dir: string,
  password: string,
  started: (child: ChildProcess) => void,
  cluster = true,
  extraArgs: readonly string[] = [],
  tls?: TestTlsFiles,
): Promise<Spawned> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    let busPort = await freePort();
    while (busPort === port) busPort = await freePort();
    const node = await spawnNode(
      bin,
      dir,
      password,
      port,
      cluster ? busPort : undefined,
      extraArgs,
      started,
      tls,
    );
    if ('child' in node) return { child: node.child, port, busPort };
    if (attempt < 3 && /Address already in use/i.test(node.output)) continue;
    throw new Error(`redis-server (port ${port}) did not start: ${node.output.trim()}`);
  }
}

/** Whether `child` has not exited yet. */
function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

async function kill(child: ChildProcess): Promise<void> {
  if (!running(child)) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

/** The nodes and directory of one running test cluster (or node), for the cleanup at exit. */
interface Owned {
  readonly dir: string;
  children(): readonly ChildProcess[];
}

const owned = new Set<Owned>();

/** Kills every node this process started and removes their directories (synchronous: runs at exit). */
function cleanUpNow(): void {
  for (const o of owned) {
    for (const child of o.children()) if (running(child)) child.kill('SIGKILL');
    rmSync(o.dir, { recursive: true, force: true });
  }
  owned.clear();
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let cleanupInstalled = false;

/**
 * Cleans up at exit and on SIGINT, SIGTERM and SIGHUP. A signal nobody else handles is raised again
 * once the nodes are gone, so the process still ends as that signal ends it.
 */
function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', cleanUpNow);
  for (const signal of SIGNALS) {
    const onSignal = () => {
      cleanUpNow();
      process.off(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/** Prefixes of the directories of test clusters and nodes, in the temp dir. */
const DIR_PREFIXES = ['switchyard-test-cluster-', 'switchyard-test-node-'] as const;
const OWNER_FILE = 'owner.json';

/** What `owner.json` holds. */
interface OwnerRecord {
  readonly pid: number;
  readonly nodes: readonly number[];
}

/** Registers `o` for the cleanup at exit and writes its owner file. Returns what updates the file. */
function own(o: Owned): () => void {
  installCleanup();
  owned.add(o);
  const write = () => {
    const record: OwnerRecord = {
      pid: process.pid,
      nodes: o.children().flatMap((c) => (c.pid !== undefined && running(c) ? [c.pid] : [])),
    };
    try {
      writeFileSync(join(o.dir, OWNER_FILE), `${JSON.stringify(record)}\n`);
    } catch {
      // Stopped meanwhile: the directory is gone, and its nodes with it.
    }
  };
  write();
  return write;
}

/** Whether `pid` is a redis-server (never kill a process that reused a recorded pid). */
function isRedisServer(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'redis-server';
  } catch {
    try {
      return /redis-server/.test(
        execFileSync('ps', ['-o', 'comm=', '-p', String(pid)], { encoding: 'utf8' }),
      );
    } catch {
      return false;
    }
  }
}

/**
 * Kills the nodes and removes the directories of test clusters (and nodes) whose owner is gone (a test
 * process killed outright). Directories without an owner file, or whose owner runs, are left alone.
 */
export function reapOrphanedTestClusters(dir = tmpdir()): void {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of entries) {
    if (!DIR_PREFIXES.some((p) => name.startsWith(p))) continue;
    const path = join(dir, name);
    let record: OwnerRecord;
    try {
      record = JSON.parse(readFileSync(join(path, OWNER_FILE), 'utf8')) as OwnerRecord;
    } catch {
      continue;
    }
    // This process's own (`alive` says no for it): a second cluster or node must not reap the first.
    if (record.pid === process.pid || alive(record.pid)) continue;
    for (const pid of record.nodes) {
      if (!alive(pid) || !isRedisServer(pid)) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    rmSync(path, { recursive: true, force: true });
  }
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

/**
 * Starts one Redis on TCP without cluster mode (the cluster tests' "wrong kind of Redis"); with `tls`,
 * one that accepts TLS connections only (test/redis/tls.test.ts).
 */
export async function startRedisNode(opts: { tls?: TestTlsFiles } = {}): Promise<TestRedisNode> {
  reapOrphanedTestClusters();
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-node-'));
  const password = newPassword();
  let child: ChildProcess | undefined;
  const o: Owned = { dir, children: () => (child ? [child] : []) };
  const update = own(o);
  const stop = async () => {
    if (child) await kill(child);
    rmSync(dir, { recursive: true, force: true });
    owned.delete(o);
  };
  try {
    const node = await startNode(
      ensureRedisBinary(),
      dir,
      password,
      (c) => {
        child = c;
        update();
      },
      false,
      [],
      opts.tls,
    );
    return { port: node.port, password, stop };
  } catch (e) {
    await stop();
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

export interface TestRedisClusterOptions {
  /** Number of masters (default 3). */
  readonly masters?: number;
  /**
   * The nodes' `tcp-backlog`: with a small one, a paused node's accept queue fills with a few
   * connections and the kernel drops further SYNs, so that a new connection stays opening (TCP
   * retransmits its SYN after 1 s, 3 s…) until the node is resumed.
   */
  readonly tcpBacklog?: number;
  /** TLS-only nodes (`rediss+cluster://`), the cluster bus included. */
  readonly tls?: TestTlsFiles;
}

/** Starts and forms a cluster of `masters` nodes; see the module header. */
export async function startRedisCluster(opts: TestRedisClusterOptions = {}): Promise<TestRedisCluster> {
  reapOrphanedTestClusters();
  const count = opts.masters ?? 3;
  const extraArgs = opts.tcpBacklog === undefined ? [] : ['--tcp-backlog', String(opts.tcpBacklog)];
  const bin = ensureRedisBinary();
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-cluster-'));
  const password = newPassword();
  /** Every process started (a restarted node adds one); `spawned` holds the current one of each node. */
  const children: ChildProcess[] = [];
  const spawned: Spawned[] = [];
  const admins: Redis[] = [];
  const o: Owned = { dir, children: () => children };
  const update = own(o);
  const started = (child: ChildProcess) => {
    children.push(child);
    update();
  };
  const stop = async () => {
    for (const a of admins) a.disconnect();
    await Promise.all(children.map(kill));
    rmSync(dir, { recursive: true, force: true });
    owned.delete(o);
  };
  const node = (index: number): Spawned => {
    const s = spawned[index];
    if (!s) throw new Error(`no cluster node ${index}`);
    return s;
  };
  try {
    // In parallel: a new master waits about 2 s after its start before it reports cluster_state:ok
    // (Redis's CLUSTER_WRITABLE_DELAY), and these waits then overlap.
    const results = await Promise.allSettled(
      Array.from({ length: count }, () => startNode(bin, dir, password, started, true, extraArgs, opts.tls)),
    );
    for (const r of results) if (r.status === 'fulfilled') spawned.push(r.value);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    for (const s of spawned) {
      const admin = new Redis({
        host: '127.0.0.1',
        port: s.port,
        password,
        lazyConnect: true,
        ...(opts.tls === undefined
          ? {}
          : { tls: opts.tls.ca === undefined ? {} : { ca: readFileSync(opts.tls.ca) } }),
      });
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
    const admin = (index: number): Redis => {
      const a = admins[index];
      if (!a) throw new Error(`no cluster node ${index}`);
      return a;
    };
    return {
      url: `${opts.tls === undefined ? 'redis' : 'rediss'}+cluster://:${password}@${nodes.map((n) => `${n.host}:${n.port}`).join(',')}`,
      password,
      nodes,
      dir,
      admin,
      pid(index) {
        const pid = node(index).child.pid;
        if (pid === undefined) throw new Error(`cluster node ${index} has no process`);
        return pid;
      },
      async kill(index) {
        const s = node(index);
        if (!running(s.child)) return;
        await admin(index).call('CLUSTER', 'SAVECONFIG');
        await kill(s.child);
        update();
      },
      async restart(index) {
        const s = node(index);
        if (running(s.child)) throw new Error(`cluster node ${index} is running`);
        const again = await spawnNode(bin, dir, password, s.port, s.busPort, extraArgs, started, opts.tls);
        if (!('child' in again))
          throw new Error(`redis-server (port ${s.port}) did not start again: ${again.output.trim()}`);
        spawned[index] = { ...s, child: again.child };
      },
      pause(index) {
        node(index).child.kill('SIGSTOP');
      },
      resume(index) {
        node(index).child.kill('SIGCONT');
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
