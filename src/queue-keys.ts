/**
 * Redis keys Switchyard keeps beside a BullMQ queue, and the per-environment lock built on them.
 * The lock serializes switches of one environment across any number of worker processes: a plain
 * `SET NX PX` whose value is the owning job id, renewed while the job runs and released with a
 * compare-and-delete. The owner is the job, not the process, so a job recovered after its worker died
 * (`kill -9`) re-enters its own lock at once instead of waiting for it to expire; any other job waits.
 * Jobs waiting for an environment register in a sorted set so the releasing job can wake them.
 */
import type { Redis } from 'ioredis';

/** Key layout under `<prefix>:<queue>:sy:` (same hash slot as the queue when the prefix is tagged). */
export interface SwitchKeys {
  readonly base: string;
  lock(environment: string): string;
  waiters(environment: string): string;
  enqueued(jobId: string): string;
  operation(jobId: string): string;
  messages(jobId: string): string;
}

/** The Switchyard keys beside queue `queueName` under BullMQ prefix `prefix`. */
export function switchKeys(prefix: string, queueName: string): SwitchKeys {
  const base = `${prefix}:${queueName}:sy:`;
  return {
    base,
    lock: (env) => `${base}lock:${env}`,
    waiters: (env) => `${base}waiters:${env}`,
    enqueued: (jobId) => `${base}enq:${jobId}`,
    operation: (jobId) => `${base}op:${jobId}`,
    messages: (jobId) => `${base}msgs:${jobId}`,
  };
}

const ACQUIRE = `
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, ARGV[1]}
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, v}
end
return {0, v}
`;

/**
 * ACQUIRE, and when taken also the value of KEYS[2] and the members of the set KEYS[3] (read under the
 * lock in the same round trip).
 */
const ACQUIRE_AND_READ = `
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  return {0, v}
end
return {1, ARGV[1], redis.call('GET', KEYS[2]) or '', redis.call('SMEMBERS', KEYS[3])}
`;

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

/** RELEASE, then the jobs waiting for the environment and the members of the set KEYS[3]. */
const RELEASE_AND_WAITERS = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return {redis.call('ZRANGE', KEYS[2], 0, -1), redis.call('SMEMBERS', KEYS[3])}
`;

/** Outcome of `EnvironmentLock.acquire`: taken, or held by another job (named). */
export type AcquireResult =
  | { readonly acquired: true }
  | { readonly acquired: false; readonly holder: string };

/**
 * Outcome of `EnvironmentLock.acquireAndRead`: taken, with the key's value and the set's members; or
 * held by another job.
 */
export type AcquireReadResult =
  | { readonly acquired: true; readonly value: string | undefined; readonly members: string[] }
  | { readonly acquired: false; readonly holder: string };

/** Outcome of `EnvironmentLock.releaseAndRead`. */
export interface ReleaseReadResult {
  /** Jobs waiting for the environment, oldest request first. */
  readonly waiters: string[];
  /** Members of the set read in the same round trip. */
  readonly members: string[];
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** The per-environment switch lock (see the module header). */
export class EnvironmentLock {
  constructor(
    private readonly redis: Redis,
    private readonly keys: SwitchKeys,
    /** Lock time-to-live; renewed every third of it while held. */
    readonly ttlMs: number,
  ) {}

  /** Takes the lock for `owner` (or re-enters it when `owner` already holds it). */
  async acquire(environment: string, owner: string): Promise<AcquireResult> {
    const res = (await this.redis.eval(ACQUIRE, 1, this.keys.lock(environment), owner, this.ttlMs)) as [
      number,
      string,
    ];
    return res[0] === 1 ? { acquired: true } : { acquired: false, holder: res[1] };
  }

  /**
   * Like `acquire`, and when the lock is taken also reads `key` (e.g. the job's stored operation ref)
   * and the members of the set `setKey` (e.g. the job's attached message refs) in the same round trip.
   */
  async acquireAndRead(
    environment: string,
    owner: string,
    key: string,
    setKey: string,
  ): Promise<AcquireReadResult> {
    const res = (await this.redis.eval(
      ACQUIRE_AND_READ,
      3,
      this.keys.lock(environment),
      key,
      setKey,
      owner,
      this.ttlMs,
    )) as [number, string, string | undefined, unknown];
    if (res[0] !== 1) return { acquired: false, holder: res[1] };
    return { acquired: true, value: res[2] ? res[2] : undefined, members: strings(res[3]) };
  }

  /** Extends the lock; false when `owner` no longer holds it. */
  async renew(environment: string, owner: string): Promise<boolean> {
    const res = await this.redis.eval(RENEW, 1, this.keys.lock(environment), owner, this.ttlMs);
    return res === 1;
  }

  /** Releases the lock if `owner` holds it. */
  async release(environment: string, owner: string): Promise<boolean> {
    const res = await this.redis.eval(RELEASE, 1, this.keys.lock(environment), owner);
    return res === 1;
  }

  /**
   * Releases the lock if `owner` holds it, and lists the jobs waiting for it and the members of the set
   * `setKey`, in one round trip.
   */
  async releaseAndRead(environment: string, owner: string, setKey: string): Promise<ReleaseReadResult> {
    const res = await this.redis.eval(
      RELEASE_AND_WAITERS,
      3,
      this.keys.lock(environment),
      this.keys.waiters(environment),
      setKey,
      owner,
    );
    const [waiters, members] = Array.isArray(res) ? res : [];
    return { waiters: strings(waiters), members: strings(members) };
  }

  /** The job holding the environment now, if any. */
  async holder(environment: string): Promise<string | undefined> {
    return (await this.redis.get(this.keys.lock(environment))) ?? undefined;
  }

  /** Registers a job waiting for the environment (ordered by request time). */
  async addWaiter(environment: string, jobId: string, requestedAt: number): Promise<void> {
    const key = this.keys.waiters(environment);
    await this.redis.multi().zadd(key, 'NX', requestedAt, jobId).pexpire(key, 86_400_000).exec();
  }

  async removeWaiter(environment: string, jobId: string): Promise<void> {
    await this.redis.zrem(this.keys.waiters(environment), jobId);
  }

  /** Jobs waiting for the environment, oldest request first. */
  async waiters(environment: string): Promise<string[]> {
    return this.redis.zrange(this.keys.waiters(environment), 0, -1);
  }
}
