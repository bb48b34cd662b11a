/**
 * Start-up check of the Redis that holds the queue: BullMQ loses jobs when Redis evicts keys
 * (`maxmemory-policy` other than `noeviction`) and a Redis restart loses them without persistence
 * (AOF off). Problems are returned as warnings for a loud log line, never a crash: a managed Redis
 * may forbid CONFIG and still be fine. On a Redis Cluster every master is checked (each holds queued
 * switches once its slots do), and a warning names the nodes it is about.
 *
 * `clusterMismatch` is the one check that refuses to start: a single-Redis URL pointing at a node of a
 * cluster (or the reverse) would fail on every other command, so start-up says which URL to write.
 */
import type { Redis } from 'ioredis';
import { isCluster, masters, nodeAddress, nodeOptions, type RedisClient } from './redis.js';

/** One problem found, with what to do about it. */
export interface RedisWarning {
  readonly code: 'eviction_policy' | 'aof_off' | 'retries_per_request' | 'config_unavailable';
  readonly message: string;
}

async function configGet(redis: Redis, name: string): Promise<string | undefined> {
  const res = (await redis.call('CONFIG', 'GET', name)) as unknown;
  if (!Array.isArray(res)) return undefined;
  const v: unknown = res[1];
  return typeof v === 'string' ? v : undefined;
}

/** What one node says about the settings BullMQ needs. */
type NodeSettings =
  | { readonly node: string; readonly policy: string | undefined; readonly aof: string | undefined }
  | { readonly node: string; readonly error: string };

async function nodeSettings(node: Redis): Promise<NodeSettings> {
  try {
    const policy = await configGet(node, 'maxmemory-policy');
    const aof = await configGet(node, 'appendonly');
    return { node: nodeAddress(node), policy, aof };
  } catch (e) {
    return { node: nodeAddress(node), error: (e as Error).message };
  }
}

/** `Redis` on one Redis; `Redis Cluster node(s) a, b` on a cluster. */
function subject(cluster: boolean, nodes: readonly string[]): string {
  if (!cluster) return 'Redis';
  return `Redis Cluster node${nodes.length === 1 ? '' : 's'} ${nodes.join(', ')}`;
}

/** Groups `items` by `key`, keeping first-seen order. */
function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

/**
 * Checks the settings BullMQ needs, on one Redis or on every master of a cluster; returns the warnings
 * (empty when all is well). With a patient cluster client it waits until the cluster is ready.
 */
export async function checkRedis(redis: RedisClient): Promise<RedisWarning[]> {
  const warnings: RedisWarning[] = [];
  const cluster = isCluster(redis);
  if (nodeOptions(redis).maxRetriesPerRequest !== null) {
    warnings.push({
      code: 'retries_per_request',
      message:
        'The Redis connection has maxRetriesPerRequest set; BullMQ workers need maxRetriesPerRequest: null (use createRedis from src/redis.ts).',
    });
  }
  let nodes: Redis[];
  try {
    // A patient cluster client waits here until the cluster is ready.
    nodes = await masters(redis);
  } catch (e) {
    warnings.push(unavailable(cluster, [], (e as Error).message));
    return warnings;
  }
  const settings = await Promise.all(nodes.map(nodeSettings));
  const failed = settings.filter((s): s is Extract<NodeSettings, { error: string }> => 'error' in s);
  for (const [error, group] of groupBy(failed, (s) => s.error)) {
    warnings.push(
      unavailable(
        cluster,
        group.map((s) => s.node),
        error,
      ),
    );
  }
  const read = settings.filter((s): s is Extract<NodeSettings, { policy: unknown }> => !('error' in s));
  const evicting = read.filter((s) => s.policy !== undefined && s.policy !== 'noeviction');
  for (const [policy, group] of groupBy(evicting, (s) => s.policy ?? '')) {
    warnings.push({
      code: 'eviction_policy',
      message: `${subject(
        cluster,
        group.map((s) => s.node),
      )} maxmemory-policy is "${policy}": Redis may evict queued switches under memory pressure. Set maxmemory-policy noeviction.`,
    });
  }
  const noAof = read.filter((s) => s.aof !== undefined && s.aof !== 'yes');
  if (noAof.length > 0) {
    warnings.push({
      code: 'aof_off',
      message: `${subject(
        cluster,
        noAof.map((s) => s.node),
      )} ${cluster ? 'run' : 'runs'} without AOF (appendonly no): a Redis restart loses queued and running switches. Set appendonly yes.`,
    });
  }
  return warnings;
}

function unavailable(cluster: boolean, nodes: readonly string[], error: string): RedisWarning {
  const where = cluster && nodes.length > 0 ? `of ${subject(cluster, nodes)} ` : '';
  return {
    code: 'config_unavailable',
    message: `Could not read the Redis configuration ${where}(${error}); make sure maxmemory-policy is noeviction and persistence (AOF) is on${cluster ? ' on every master' : ''}, or queued switches may be lost.`,
  };
}

/**
 * Whether the server's mode matches the URL's: a `redis://` connection to a cluster node would get
 * MOVED or CROSSSLOT errors on most commands. Returns the problem to refuse start-up with, or undefined.
 * (The reverse, `redis+cluster://` to a Redis without cluster mode, never becomes ready: ioredis reports
 * "cluster support disabled" as its last error, which the readiness timeout quotes.)
 */
export async function clusterMismatch(redis: RedisClient): Promise<string | undefined> {
  if (isCluster(redis)) return undefined;
  const info = await redis.info('cluster').catch(() => '');
  if (!/^cluster_enabled:1\s*$/m.test(info)) return undefined;
  return 'REDIS_URL: points at a node of a Redis Cluster, expected redis+cluster://host:port[,host:port…] (or rediss+cluster:// with TLS) for a cluster';
}
