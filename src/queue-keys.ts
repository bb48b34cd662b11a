/**
 * Redis keys Switchyard keeps beside a BullMQ queue, and the per-environment lock built on them.
 * The lock serializes switches of one environment across any number of worker processes: a plain
 * `SET NX PX` whose value names the owning job *attempt* (`<jobId>:<attemptId>`, see `lockOwner`),
 * renewed while the attempt runs and released with a compare-and-delete. The owner is the attempt, not
 * the job: a second attempt of the same job (BullMQ re-delivers a job whose worker stalled, froze or
 * lost Redis, while that worker may still be running it) waits for the environment like any other job,
 * and takes it only once the earlier attempt released it or its lock expired (`kill -9`). Each renewal
 * also checks, and extends, the attempt's BullMQ job lock, so an attempt learns in the same round trip
 * that it lost either lock. Jobs waiting for an environment register in a sorted set so the releasing
 * job can wake them.
 */
import type { RedisClient } from './redis.js';

/** Key layout under `<prefix>:<queue>:sy:` (same hash slot as the queue when the prefix is tagged). */
export interface SwitchKeys {
  readonly base: string;
  lock(environment: string): string;
  waiters(environment: string): string;
  enqueued(jobId: string): string;
  operation(jobId: string): string;
  messages(jobId: string): string;
  /** BullMQ's own lock of a job (`<prefix>:<queue>:<jobId>:lock`), checked and extended by renewals. */
  jobLock(jobId: string): string;
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
    jobLock: (jobId) => `${prefix}:${queueName}:${jobId}:lock`,
  };
}

/**
 * The environment lock's value for one attempt of a job. BullMQ job ids cannot contain `:`, so the job
 * id is everything before the first `:` (`ownerJobId`).
 */
export function lockOwner(jobId: string, attemptId: string): string {
  return `${jobId}:${attemptId}`;
}

/** The job id in an environment lock's value (a value written before attempts were named is the id). */
export function ownerJobId(owner: string): string {
  const i = owner.indexOf(':');
  return i < 0 ? owner : owner.slice(0, i);
}

/** An attempt's BullMQ job lock: its key and the token BullMQ gave the attempt. */
export interface JobLock {
  readonly key: string;
  readonly token: string;
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

/**
 * Extends the environment lock KEYS[1] if ARGV[1] holds it, and the BullMQ job lock KEYS[2] if it still
 * holds token ARGV[3] (not checked when ARGV[3] is empty); leaves `env` and `job` (1 held, 0 lost).
 */
const EXTEND_BOTH = `
local env = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  env = 1
end
local job = 1
if ARGV[3] ~= '' then
  if redis.call('GET', KEYS[2]) == ARGV[3] then
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
  else
    job = 0
  end
end
`;

/** EXTEND_BOTH. Returns {environment held, job lock held}. */
const RENEW = `${EXTEND_BOTH}
return {env, job}
`;

/**
 * The fence before acting on the platform: EXTEND_BOTH, and when both locks are held, writes ARGV[4]
 * to KEYS[3] unless KEYS[3] already has a value (PX ARGV[5]). Returns {environment held, job lock
 * held, written}.
 */
const FENCE = `${EXTEND_BOTH}
if env == 0 or job == 0 then return {env, job, 0} end
local written = 0
if redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5], 'NX') then written = 1 end
return {env, job, written}
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

/** Deletes KEYS[1] if it holds ARGV[1]. */
const DELETE_IF = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

/** Outcome of `EnvironmentLock.acquire`: taken, or held by another attempt (its job named). */
export type AcquireResult =
  | { readonly acquired: true }
  | { readonly acquired: false; readonly holder: string; readonly owner: string };

/**
 * Outcome of `EnvironmentLock.acquireAndRead`: taken, with the key's value and the set's members; or
 * held by another attempt (`holder` is its job id, `owner` the lock's value).
 */
export type AcquireReadResult =
  | { readonly acquired: true; readonly value: string | undefined; readonly members: string[] }
  | { readonly acquired: false; readonly holder: string; readonly owner: string };

/** Outcome of `EnvironmentLock.renew` and `fence`. */
export interface RenewResult {
  /** The owner still holds the environment (and its lock was extended). */
  readonly held: boolean;
  /** The attempt still holds its BullMQ job lock (and it was extended); true when not checked. */
  readonly jobLockHeld: boolean;
}

/** Outcome of `EnvironmentLock.fence`. */
export interface FenceResult extends RenewResult {
  /** The marker was written (the key had no value and both locks are held). */
  readonly written: boolean;
}

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
    private readonly redis: RedisClient,
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
    return res[0] === 1 ? { acquired: true } : { acquired: false, holder: ownerJobId(res[1]), owner: res[1] };
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
    if (res[0] !== 1) return { acquired: false, holder: ownerJobId(res[1]), owner: res[1] };
    return { acquired: true, value: res[2] ? res[2] : undefined, members: strings(res[3]) };
  }

  /**
   * Extends the lock if `owner` holds it, and `jobLock` (the attempt's BullMQ job lock) if it still
   * holds the attempt's token, in one round trip; says which of the two are still held.
   */
  async renew(environment: string, owner: string, jobLock?: JobLock): Promise<RenewResult> {
    const res = (await this.redis.eval(
      RENEW,
      2,
      this.keys.lock(environment),
      jobLock?.key ?? this.keys.lock(environment),
      owner,
      this.ttlMs,
      jobLock?.token ?? '',
    )) as [number, number];
    return { held: res[0] === 1, jobLockHeld: res[1] === 1 };
  }

  /**
   * The fence before an attempt acts on the platform: `renew`, and only when both locks are held, writes
   * `value` to `key` unless it already has one (kept `valueTtlMs`), all in one round trip.
   */
  async fence(
    environment: string,
    owner: string,
    jobLock: JobLock | undefined,
    key: string,
    value: string,
    valueTtlMs: number,
  ): Promise<FenceResult> {
    const res = (await this.redis.eval(
      FENCE,
      3,
      this.keys.lock(environment),
      jobLock?.key ?? this.keys.lock(environment),
      key,
      owner,
      this.ttlMs,
      jobLock?.token ?? '',
      value,
      valueTtlMs,
    )) as [number, number, number];
    return { held: res[0] === 1, jobLockHeld: res[1] === 1, written: res[2] === 1 };
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

  /** Deletes `key` if it still holds `value` (e.g. a marker this attempt wrote). */
  async deleteIf(key: string, value: string): Promise<boolean> {
    return (await this.redis.eval(DELETE_IF, 1, key, value)) === 1;
  }

  /** The job holding the environment now, if any. */
  async holder(environment: string): Promise<string | undefined> {
    const owner = await this.redis.get(this.keys.lock(environment));
    return owner ? ownerJobId(owner) : undefined;
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
