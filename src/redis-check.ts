/**
 * Start-up check of the Redis that holds the queue: BullMQ loses jobs when Redis evicts keys
 * (`maxmemory-policy` other than `noeviction`) and a Redis restart loses them without persistence
 * (AOF off). Problems are returned as warnings for a loud log line, never a crash: a managed Redis
 * may forbid CONFIG and still be fine.
 */
import type { Redis } from 'ioredis';

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

/** Checks the settings BullMQ needs; returns the warnings (empty when all is well). */
export async function checkRedis(redis: Redis): Promise<RedisWarning[]> {
  const warnings: RedisWarning[] = [];
  if (redis.options.maxRetriesPerRequest !== null) {
    warnings.push({
      code: 'retries_per_request',
      message:
        'The Redis connection has maxRetriesPerRequest set; BullMQ workers need maxRetriesPerRequest: null (use createRedis from src/redis.ts).',
    });
  }
  let policy: string | undefined;
  let aof: string | undefined;
  try {
    policy = await configGet(redis, 'maxmemory-policy');
    aof = await configGet(redis, 'appendonly');
  } catch (e) {
    warnings.push({
      code: 'config_unavailable',
      message: `Could not read the Redis configuration (${(e as Error).message}); make sure maxmemory-policy is noeviction and persistence (AOF) is on, or queued switches may be lost.`,
    });
    return warnings;
  }
  if (policy !== undefined && policy !== 'noeviction') {
    warnings.push({
      code: 'eviction_policy',
      message: `Redis maxmemory-policy is "${policy}": Redis may evict queued switches under memory pressure. Set maxmemory-policy noeviction.`,
    });
  }
  if (aof !== undefined && aof !== 'yes') {
    warnings.push({
      code: 'aof_off',
      message:
        'Redis runs without AOF (appendonly no): a Redis restart loses queued and running switches. Set appendonly yes.',
    });
  }
  return warnings;
}
