/**
 * Redis keys Switchyard keeps beside a BullMQ queue, and the per-environment lock built on them.
 * The lock serializes switches of one environment across any number of worker processes: a plain
 * `SET NX PX` whose value names the owning job *attempt* (`<jobId>:<attemptId>`, see `lockOwner`),
 * renewed while the attempt runs and released with a compare-and-delete. The owner is the attempt, not
 * the job: a second attempt of the same job (BullMQ re-delivers a job whose worker stalled, froze or
 * lost Redis, while that worker may still be running it) waits for the environment like any other job,
 * and takes it only once the earlier attempt released it or its lock expired (`kill -9`). Each renewal
 * also checks, and extends, the attempt's BullMQ job lock, so an attempt learns in the same round trip
 * that it lost either lock. An attempt that fails to be retried after asking the platform for a switch
 * whose outcome it does not know hands the lock to its job's retry (`retryReservation`) instead of
 * releasing it: that switch may still be running on the platform, and no other job may ask for another
 * one meanwhile; the job's next attempt takes the reservation over, and it expires on its own when that
 * attempt never comes. Jobs waiting for an environment register in a sorted set so the releasing
 * job can wake them; a job leaves it when it takes the lock. Each job also keeps a small run record
 * (how often it took the lock, in which attempt, after how many stalls, and with which BullMQ attempt
 * count it was last parked to wait), so that a resumed run can say why it runs again and a wake-up
 * promotes only a job parked to wait for the lock, never one delayed for a retry's backoff.
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
  /**
   * The job's run record (a hash): `ts` (the BullMQ job's creation time, telling a job from a later one
   * with the same id), `runs`, `attempt` and `stalls` of its last run under the lock, and `parked` (its
   * BullMQ attempt count when it last parked to wait for the lock; removed when it takes the lock).
   */
  run(jobId: string): string;
  /** BullMQ's own lock of a job (`<prefix>:<queue>:<jobId>:lock`), checked and extended by renewals. */
  jobLock(jobId: string): string;
  /** BullMQ's hash of a job (`<prefix>:<queue>:<jobId>`), read by wake-ups. */
  job(jobId: string): string;
  /** BullMQ's sorted set of delayed jobs (`<prefix>:<queue>:delayed`), read by wake-ups. */
  readonly delayed: string;
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
    run: (jobId) => `${base}run:${jobId}`,
    jobLock: (jobId) => `${prefix}:${queueName}:${jobId}:lock`,
    job: (jobId) => `${prefix}:${queueName}:${jobId}`,
    delayed: `${prefix}:${queueName}:delayed`,
  };
}

/**
 * The environment lock's value for one attempt of a job. BullMQ job ids cannot contain `:`, so the job
 * id is everything before the first `:` (`ownerJobId`).
 */
export function lockOwner(jobId: string, attemptId: string): string {
  return `${jobId}:${attemptId}`;
}

/**
 * The environment lock's value while job `jobId` (created at `createdAt`, BullMQ's `timestamp`) backs off
 * before a retry, holding the environment for it (`EnvironmentLock.handOver`). No attempt's value looks
 * like it (attempt ids are hex), and a later job with the same id (another creation time) does not take
 * it over.
 */
export function retryReservation(jobId: string, createdAt: number): string {
  return lockOwner(jobId, `${RESERVED}${createdAt}`);
}

/** What a reservation's attempt part starts with (`retryReservation`). */
const RESERVED = 'retry-';

/** The job and its creation time a reservation (`retryReservation`) is for; undefined for other values. */
export function parseRetryReservation(owner: string): { jobId: string; createdAt: string } | undefined {
  const i = owner.indexOf(':');
  if (i < 0 || !owner.startsWith(RESERVED, i + 1)) return undefined;
  return { jobId: owner.slice(0, i), createdAt: owner.slice(i + 1 + RESERVED.length) };
}

/** Whether an environment lock's value is a job's reservation for its retry (`retryReservation`). */
export function isRetryReservation(owner: string): boolean {
  return parseRetryReservation(owner) !== undefined;
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
 * ACQUIRE for job ARGV[3], which also takes over the job's own reservation ARGV[8] (`retryReservation`:
 * an earlier attempt of the job kept the environment for this retry); when taken also: the job leaves
 * the waiters KEYS[4] and its run record KEYS[5] counts this run (a record of another job with the same
 * id, ARGV[4] being the job's creation time, is started afresh; ARGV[5] attempt, ARGV[6] stalls, kept
 * ARGV[7] ms). Returns the value of KEYS[2], the members of the set KEYS[3] and the previous run (runs,
 * attempt, stalls), all read in the same round trip.
 */
const ACQUIRE_AND_READ = `
local v = redis.call('GET', KEYS[1])
if not v or v == ARGV[8] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  return {0, v}
end
redis.call('ZREM', KEYS[4], ARGV[3])
local prev = redis.call('HMGET', KEYS[5], 'ts', 'runs', 'attempt', 'stalls')
local runs, attempt, stalls = 0, 0, 0
if prev[1] == ARGV[4] then
  runs = tonumber(prev[2]) or 0
  attempt = tonumber(prev[3]) or 0
  stalls = tonumber(prev[4]) or 0
end
redis.call('DEL', KEYS[5])
redis.call('HSET', KEYS[5], 'ts', ARGV[4], 'runs', runs + 1, 'attempt', ARGV[5], 'stalls', ARGV[6])
redis.call('PEXPIRE', KEYS[5], ARGV[7])
return {1, ARGV[1], redis.call('GET', KEYS[2]) or '', redis.call('SMEMBERS', KEYS[3]), runs, attempt, stalls}
`;

/**
 * A job parks to wait for the environment: job ARGV[1] joins the waiters KEYS[1] (score ARGV[2], the
 * request time, kept when already there; the set is kept ARGV[5] ms), and its run record KEYS[2] notes
 * its BullMQ attempt count ARGV[4] as `parked` (a record of another job with the same id, ARGV[3] being
 * the job's creation time, is dropped first; kept ARGV[6] ms).
 */
const PARK = `
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if redis.call('HGET', KEYS[2], 'ts') ~= ARGV[3] then
  redis.call('DEL', KEYS[2])
end
redis.call('HSET', KEYS[2], 'ts', ARGV[3], 'parked', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
`;

/**
 * Whether waiter ARGV[1] of the waiters KEYS[1] is parked waiting for the lock, and may be woken: it is
 * in BullMQ's delayed set KEYS[4], and its BullMQ job KEYS[3] (the same job: creation time) has made no
 * attempt since it parked (run record KEYS[2]). A job delayed for a retry's backoff has made one more:
 * it is not woken. A waiter that is no longer waiting (its job is gone or ended, or it is delayed for
 * a backoff) leaves the waiters. Returns 1 when it may be woken.
 */
const WAKEABLE = `
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local job = redis.call('HMGET', KEYS[3], 'timestamp', 'atm', 'attemptsMade', 'finishedOn')
if not job[1] or job[4] then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
if not redis.call('ZSCORE', KEYS[4], ARGV[1]) then return 0 end
local run = redis.call('HMGET', KEYS[2], 'ts', 'parked')
local made = tonumber(job[3] or job[2] or '0')
if run[1] == job[1] and tonumber(run[2]) == made then return 1 end
redis.call('ZREM', KEYS[1], ARGV[1])
return 0
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

/** Replaces KEYS[1] by ARGV[2] (kept ARGV[3] ms) if it holds ARGV[1]. */
const HAND_OVER = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`;

/**
 * KEYS[1] an environment lock, KEYS[2] the hash of the job its reservation ARGV[1] is for, ARGV[2] that
 * job's creation time. Deletes the lock and returns 1 when it still holds ARGV[1] and the job does not
 * exist, has another creation time, or has ended; else 0. One script: the job cannot be read as gone
 * while its next attempt takes the reservation over.
 */
const DROP_ABANDONED = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local job = redis.call('HMGET', KEYS[2], 'timestamp', 'finishedOn')
if job[1] == ARGV[2] and not job[2] then return 0 end
redis.call('DEL', KEYS[1])
return 1
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

/** How long a job's run record is kept (as long as its operation ref). */
export const RUN_RECORD_TTL_MS = 7 * 86_400_000;

/** How long a waiters set is kept after the last job joined it. */
const WAITERS_TTL_MS = 86_400_000;

/** The job taking the lock in `EnvironmentLock.acquireAndRead` (its run is recorded). */
export interface RunOf {
  readonly jobId: string;
  /** The BullMQ job's creation time: tells this job from an earlier one with the same id. */
  readonly createdAt: number;
  /** This run's attempt number (BullMQ attempts made + 1). */
  readonly attempt: number;
  /** BullMQ's stall count of the job now. */
  readonly stalls: number;
}

/** The job's previous run under the lock (`runs` 0: this is its first). */
export interface PreviousRun {
  readonly runs: number;
  readonly attempt: number;
  readonly stalls: number;
}

/**
 * Outcome of `EnvironmentLock.acquireAndRead`: taken, with the key's value, the set's members and the
 * job's previous run; or held by another attempt (`holder` is its job id, `owner` the lock's value).
 */
export type AcquireReadResult =
  | {
      readonly acquired: true;
      readonly value: string | undefined;
      readonly members: string[];
      readonly previous: PreviousRun;
    }
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
   * Like `acquire` for a run of job `run.jobId` (taking over the job's own reservation for its retry,
   * `retryReservation`), and when the lock is taken also: the job leaves the
   * environment's waiters and its run is recorded; reads `key` (e.g. the job's stored operation ref),
   * the members of the set `setKey` (e.g. the job's attached message refs) and the job's previous run,
   * all in the same round trip.
   */
  async acquireAndRead(
    environment: string,
    owner: string,
    key: string,
    setKey: string,
    run: RunOf,
  ): Promise<AcquireReadResult> {
    const res = (await this.redis.eval(
      ACQUIRE_AND_READ,
      5,
      this.keys.lock(environment),
      key,
      setKey,
      this.keys.waiters(environment),
      this.keys.run(run.jobId),
      owner,
      this.ttlMs,
      run.jobId,
      run.createdAt,
      run.attempt,
      run.stalls,
      RUN_RECORD_TTL_MS,
      retryReservation(run.jobId, run.createdAt),
    )) as [number, string, string | undefined, unknown, number, number, number];
    if (res[0] !== 1) return { acquired: false, holder: ownerJobId(res[1]), owner: res[1] };
    return {
      acquired: true,
      value: res[2] ? res[2] : undefined,
      members: strings(res[3]),
      previous: { runs: Number(res[4]) || 0, attempt: Number(res[5]) || 0, stalls: Number(res[6]) || 0 },
    };
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
   * Hands the lock, if `owner` holds it, to `reservation` (a job's `retryReservation`) for `ttlMs`: only
   * that job's next attempt takes it then (`acquireAndRead`), or it expires. Says whether it was handed.
   */
  async handOver(environment: string, owner: string, reservation: string, ttlMs: number): Promise<boolean> {
    const res = await this.redis.eval(
      HAND_OVER,
      1,
      this.keys.lock(environment),
      owner,
      reservation,
      Math.max(1, Math.ceil(ttlMs)),
    );
    return res === 1;
  }

  /**
   * Deletes the lock of `environment` if it still holds `reservation` (a `retryReservation`) and the job
   * that reservation is for will never take it over: its BullMQ hash is gone, belongs to a later job with
   * the same id (another creation time), or says the job ended (`finishedOn`). A job that still exists
   * with the reservation's creation time and has not ended (delayed, waiting, active) keeps it. Says
   * whether it was deleted (false for a value that is no reservation).
   */
  async dropAbandonedReservation(environment: string, reservation: string): Promise<boolean> {
    const reserved = parseRetryReservation(reservation);
    if (reserved === undefined) return false;
    const res = await this.redis.eval(
      DROP_ABANDONED,
      2,
      this.keys.lock(environment),
      this.keys.job(reserved.jobId),
      reservation,
      reserved.createdAt,
    );
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
    await this.redis.multi().zadd(key, 'NX', requestedAt, jobId).pexpire(key, WAITERS_TTL_MS).exec();
  }

  /**
   * Registers a job that parks (a BullMQ delay) to wait for the environment, noting its BullMQ attempt
   * count `attemptsMade`, so that only this wait is ever cut short by a wake-up (`wakeable`).
   */
  async park(
    environment: string,
    job: { readonly jobId: string; readonly createdAt: number; readonly attemptsMade: number },
    requestedAt: number,
  ): Promise<void> {
    await this.redis.eval(
      PARK,
      2,
      this.keys.waiters(environment),
      this.keys.run(job.jobId),
      job.jobId,
      requestedAt,
      job.createdAt,
      job.attemptsMade,
      WAITERS_TTL_MS,
      RUN_RECORD_TTL_MS,
    );
  }

  /**
   * Whether waiter `jobId` is parked waiting for the environment and may be woken (promoted): not when
   * it is delayed for a retry's backoff, or on its way already. A waiter whose job ended, is gone, or
   * is delayed for a backoff leaves the waiters.
   */
  async wakeable(environment: string, jobId: string): Promise<boolean> {
    const res = await this.redis.eval(
      WAKEABLE,
      4,
      this.keys.waiters(environment),
      this.keys.run(jobId),
      this.keys.job(jobId),
      this.keys.delayed,
      jobId,
    );
    return res === 1;
  }

  /**
   * How many of `jobIds` (BullMQ delayed jobs) are parked waiting for an environment, by the test
   * `wakeable` makes: the job exists, has not ended, and has made no attempt since it parked (its run
   * record, of the same job, notes its attempt count as `parked`). A job delayed for a retry's backoff
   * has made one more and is not counted. Two reads per job, in one round trip.
   */
  async parkedAmong(jobIds: readonly string[]): Promise<number> {
    if (jobIds.length === 0) return 0;
    const pipeline = this.redis.pipeline();
    for (const jobId of jobIds) {
      pipeline.hmget(this.keys.job(jobId), 'timestamp', 'atm', 'attemptsMade', 'finishedOn');
      pipeline.hmget(this.keys.run(jobId), 'ts', 'parked');
    }
    const rows = ((await pipeline.exec()) ?? []).map(([err, v]) => {
      if (err) throw err;
      return (Array.isArray(v) ? v : []) as (string | null)[];
    });
    let parked = 0;
    for (let i = 0; i + 1 < rows.length; i += 2) {
      const [ts, atm, attemptsMade, finishedOn] = rows[i] ?? [];
      const [runTs, runParked] = rows[i + 1] ?? [];
      if (!ts || finishedOn || runTs !== ts || runParked === null || runParked === undefined) continue;
      if (Number(runParked) === Number(attemptsMade ?? atm ?? '0')) parked++;
    }
    return parked;
  }

  async removeWaiter(environment: string, jobId: string): Promise<void> {
    await this.redis.zrem(this.keys.waiters(environment), jobId);
  }

  /** Jobs waiting for the environment, oldest request first. */
  async waiters(environment: string): Promise<string[]> {
    return this.redis.zrange(this.keys.waiters(environment), 0, -1);
  }
}
