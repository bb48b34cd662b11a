/**
 * The switch worker: a BullMQ Worker running `processSwitch` (jobs/switch-processor.ts) with the
 * custom backoff (exponential with jitter), its own Redis connection (`maxRetriesPerRequest: null`),
 * the per-environment lock, and a graceful `close()`: stop taking jobs, let the active switch finish
 * within `shutdownTimeoutMs`, otherwise hand it back to the queue, wait for what finished switches left
 * running (late chat reports, wake-ups) within the same timeout, then close the connections. BullMQ's
 * `lockRenewalFailed` makes the attempts of those jobs re-check their locks at once (an attempt that
 * lost its job lock stops acting); the stall limit is enforced by the processor (`MAX_STALLS`), so that
 * a job given up for stalling still ends with a published, audited and counted final state.
 */
import { Job, type Processor, Worker } from 'bullmq';
import type { AuditLog } from '../src/audit.js';
import type { Clock } from '../src/clock.js';
import type { Logger } from '../src/log.js';
import type { Metrics } from '../src/metrics.js';
import type { PermissionContext } from '../src/permissions.js';
import type { DeployPlatform } from '../src/platform/port.js';
import type { Progress, Reporter } from '../src/progress.js';
import {
  DEFAULT_SWITCH_PREFIX,
  defaultRetryPolicy,
  EnvironmentLock,
  type RetryPolicy,
  SWITCH_BACKOFF,
  switchBackoffDelay,
  switchKeys,
} from '../src/queue.js';
import { closeRedis, createRedis, isCluster, redisAnswers, redisOutageLog } from '../src/redis.js';
import { keyNamespace } from '../src/redis-url.js';
import { MAX_STALLS, processSwitch, SHUTDOWN_REASON } from './switch-processor.js';

/** How long a worker's `close()` lets its active switch finish by default before handing it back. */
export const SHUTDOWN_TIMEOUT_MS = 25_000;

/**
 * How long `close()` waits, Redis answering, for the worker's blocking connection to be back when it is
 * between two reconnection attempts (ioredis waits up to 2 s between them), before closing without
 * waiting for the active switches.
 */
export const BLOCKING_RECONNECT_WAIT_MS = 3_000;

/**
 * Whether BullMQ's graceful close can close `worker`'s blocking connection, waiting up to `ms` for it.
 * That close disconnects it and waits for its `end` event, which a connection between two reconnection
 * attempts (no socket, a retry timer) never emits: ioredis only clears the timer, and close() would
 * never return. A connection whose socket is opening or open, or that never connected, does end.
 */
async function blockingClosable(worker: Worker, ms: number): Promise<boolean> {
  const client = (await worker.getBackend().blockingClient?.catch(() => undefined)) as
    | { status: string }
    | undefined;
  const deadline = Date.now() + ms;
  while (client && (client.status === 'reconnecting' || client.status === 'close')) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return true;
}

/** Options of `startSwitchWorker`. */
export interface SwitchWorkerOptions {
  readonly redisUrl: string;
  readonly queueName: string;
  /**
   * BullMQ key prefix (must match the SwitchQueue's); hash-tagged on a Redis Cluster unless it already
   * carries a tag, as the SwitchQueue's is.
   */
  readonly prefix?: string;
  readonly platform: DeployPlatform;
  readonly reporter: Reporter;
  readonly clock: Clock;
  /** Traffic verification: give up after `timeoutMs`, probing every `intervalMs` (also the operation poll). */
  readonly verify: { readonly timeoutMs: number; readonly intervalMs: number };
  /** BullMQ job lock and environment lock duration; a dead worker's switch is recovered after it. */
  readonly lockDurationMs: number;
  /** How often stalled jobs are looked for (default: lockDurationMs). */
  readonly stalledIntervalMs?: number;
  /** Switches this worker runs at once (different environments; one per environment overall). */
  readonly concurrency: number;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  readonly audit?: AuditLog;
  /**
   * Backoff bounds (attempts are set per job by the queue). Without `baseDelayMs`, a job backs off from
   * the base delay its queue wrote on it.
   */
  readonly retry?: Partial<Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>>;
  /** Longest wait of one attempt for the platform's operation (config `verify.operationTimeout`; default 10 minutes). */
  readonly operationTimeoutMs?: number;
  /** Re-check delay for a job waiting on its environment (default 1s; it is also woken on release). */
  readonly lockRetryMs?: number;
  /**
   * How long `close()` lets the active switch finish before handing it back (default 25s); background
   * work of finished switches is waited for only until this much time has passed since `close()`.
   */
  readonly shutdownTimeoutMs?: number;
  /** Worker name shown on jobs (default `switchyard-<pid>`). */
  readonly name?: string;
  /**
   * The configuration in force in this process (`config.platform` and `config.file`'s environments):
   * when a job's turn comes, the people it names must still be permitted by it (see ProcessorDeps
   * `permissions`). The bot's worker and `jobs/worker-main.ts` pass it; without it jobs are not
   * judged again (tests, the benchmark).
   */
  readonly permissions?: PermissionContext;
}

/** A running switch worker. */
export interface SwitchWorker {
  readonly worker: Worker;
  /** Stops taking jobs, finishes (or hands back) the active ones, closes connections. Idempotent. */
  close(): Promise<void>;
}

/** Starts a switch worker; `await handle.worker.waitUntilReady()` before relying on it. */
export function startSwitchWorker(opts: SwitchWorkerOptions): SwitchWorker {
  const redis = createRedis(opts.redisUrl);
  const prefix = keyNamespace(opts.prefix ?? DEFAULT_SWITCH_PREFIX, isCluster(redis));
  const keys = switchKeys(prefix, opts.queueName);
  const lock = new EnvironmentLock(redis, keys, opts.lockDurationMs);
  const policy = { ...defaultRetryPolicy, ...opts.retry };
  const logger = opts.logger.child({ queue: opts.queueName });
  let worker: Worker | undefined;
  // What finished switches left running (wake-ups, late reports, audit writes): awaited by close().
  const background = new Set<Promise<unknown>>();
  const track = (work: Promise<unknown>): void => {
    const settled = work.then(
      () => undefined,
      () => undefined,
    );
    background.add(settled);
    void settled.then(() => background.delete(settled));
  };
  // Lock checks of the attempts running here, by job id (BullMQ reports lock renewal failures by id).
  const lockChecks = new Map<string, Set<() => void>>();
  const watchJobLock = (jobId: string, check: () => void): (() => void) => {
    let checks = lockChecks.get(jobId);
    if (!checks) {
      checks = new Set();
      lockChecks.set(jobId, checks);
    }
    checks.add(check);
    return () => {
      checks.delete(check);
      if (checks.size === 0 && lockChecks.get(jobId) === checks) lockChecks.delete(jobId);
    };
  };

  // The backoff before a job's next attempt after its attempt failed with `err`, at most (`largest`:
  // the jitter at its top): what BullMQ's backoff strategy below gives, and what an attempt that keeps
  // the environment for its retry keeps it for.
  const backoffDelay = (
    attemptsMade: number,
    err: unknown,
    job: Pick<Job, 'opts'> | undefined,
    largest: boolean,
  ): number => {
    // This worker's own base when it was given one (`--retry-base`): every job carries the base
    // delay its queue wrote, which would otherwise always win and leave the flag doing nothing.
    const backoff = job?.opts.backoff;
    const base =
      opts.retry?.baseDelayMs ??
      (typeof backoff === 'object' && backoff.delay !== undefined ? backoff.delay : policy.baseDelayMs);
    return switchBackoffDelay(
      attemptsMade,
      { baseDelayMs: base, maxDelayMs: policy.maxDelayMs },
      err,
      largest ? () => 1 : Math.random,
    );
  };

  const processor: Processor = (job, token, signal) =>
    processSwitch(
      {
        platform: opts.platform,
        reporter: opts.reporter,
        clock: opts.clock,
        verify: opts.verify,
        operationTimeoutMs: opts.operationTimeoutMs ?? 600_000,
        lockRetryMs: opts.lockRetryMs ?? 1_000,
        lock,
        keys,
        redis,
        logger,
        ...(opts.metrics === undefined ? {} : { metrics: opts.metrics }),
        ...(opts.audit === undefined ? {} : { audit: opts.audit }),
        // The waiters may include another attempt of this very job (re-delivered while this one ran).
        // Only a job parked to wait for the lock is promoted: one delayed for a retry's backoff keeps
        // its backoff, and one not delayed is on its way already (`EnvironmentLock.wakeable`).
        wake: async (environment, ids) => {
          for (const id of ids) {
            if (!worker) continue;
            const waiting = await Job.fromId(worker, id);
            if (waiting && (await lock.wakeable(environment, id)))
              await waiting.promote().catch(() => undefined);
          }
        },
        background: track,
        // BullMQ counts the failed attempt before asking the strategy: its attempt number.
        maxRetryDelayMs: (failed, err) => backoffDelay(failed.attemptsMade + 1, err, failed, true),
        watchJobLock,
        ...(opts.permissions === undefined ? {} : { permissions: opts.permissions }),
      },
      job,
      token,
      signal,
    );

  worker = new Worker<unknown, Progress>(opts.queueName, processor, {
    connection: redis,
    prefix,
    concurrency: opts.concurrency,
    lockDuration: opts.lockDurationMs,
    stalledInterval: opts.stalledIntervalMs ?? opts.lockDurationMs,
    // A switch interrupted by dying workers is still worth finishing (it never acts twice): up to
    // MAX_STALLS times, counted and ended by the processor itself (BullMQ would fail the job without
    // calling it, leaving its chat message on a running step). BullMQ's own limit is only a backstop.
    maxStalledCount: MAX_STALLS + 1000,
    name: opts.name ?? `switchyard-${process.pid}`,
    settings: {
      backoffStrategy: (attemptsMade, type, err, job) => {
        if (type !== SWITCH_BACKOFF) return 0;
        return backoffDelay(attemptsMade, err, job, false);
      },
    },
  });
  const current = worker;
  // BullMQ passes on every error of its two connections (this one and its blocking duplicate), once per
  // reconnection attempt while Redis is down: said once when Redis goes away and once when it is back.
  const outage = redisOutageLog(logger, 'switch worker');
  current.getBackend().on('ready', () => outage.ready());
  current.on('error', (err) => {
    if (outage.error(err)) return;
    // An attempt that lost its job lock ends this way (BullMQ cannot record its end): expected, and
    // the job goes on in the attempt that took it over.
    if (/^(Missing lock for job|Lock mismatch for job|Job \S+ is not in the active state)/.test(err.message))
      logger.warn(
        { err },
        'a switch attempt that had lost its job lock ended; the job is not its own any more',
      );
    // Said again, with what happens next, by the lockRenewalFailed handler below.
    else if (/^could not renew lock for job /.test(err.message))
      logger.debug({ err }, 'switch job lock renewal failed');
    else logger.error({ err }, 'switch worker error');
  });
  current.on('lockRenewalFailed', (jobIds) => {
    for (const id of jobIds) {
      logger.warn({ jobId: id }, 'BullMQ could not renew a switch job lock: its attempt re-checks its locks');
      for (const check of lockChecks.get(id) ?? []) check();
    }
  });
  current.on('failed', (job, err) => {
    if (job) logger.debug({ jobId: job.id, reason: err.message }, 'switch attempt ended without success');
  });

  /**
   * Waits for the background work until it is all done or `deadline` (epoch ms) has passed: a stuck
   * chat report (a Reporter that never answers) cannot hold shutdown up. Work not waited for goes on
   * while the process lives; its Redis commands were sent already (closing waits for their replies).
   */
  const settleBackground = async (deadline: number): Promise<void> => {
    while (background.size > 0) {
      const left = deadline - Date.now();
      let timer: NodeJS.Timeout | undefined;
      const expired =
        left <= 0
          ? Promise.resolve(true)
          : new Promise<boolean>((resolve) => {
              timer = setTimeout(() => resolve(true), left);
            });
      const done = Promise.all([...background]).then(() => false);
      const timedOut = await Promise.race([done, expired]);
      clearTimeout(timer);
      if (timedOut && background.size > 0) {
        logger.warn(
          { pending: background.size },
          'shutdown timeout: not waiting any longer for late chat reports and wake-ups of the switches waiting behind ended or handed-back ones',
        );
        return;
      }
    }
  };

  let closing: Promise<void> | undefined;
  return {
    worker: current,
    close() {
      closing ??= (async () => {
        const shutdownTimeoutMs = opts.shutdownTimeoutMs ?? SHUTDOWN_TIMEOUT_MS;
        // close() as a whole keeps to the shutdown timeout (plus BullMQ's own closing of what it runs).
        const deadline = Date.now() + shutdownTimeoutMs;
        const timer = setTimeout(() => {
          logger.warn('shutdown timeout: handing active switches back to the queue');
          current.cancelAllJobs(SHUTDOWN_REASON);
        }, shutdownTimeoutMs);
        try {
          // While Redis is unreachable nothing can finish (no progress, no completion) and a graceful
          // close would wait for Redis: drop the connections instead. The active switches' locks
          // expire and another worker resumes them, following the platform operation they started.
          const unreachable = !(await redisAnswers(redis));
          if (unreachable) logger.warn('Redis is unreachable: closing without waiting for active switches');
          // Redis back, but the connection BullMQ waits for jobs on still between two reconnection
          // attempts (and staying so): a graceful close would wait for it forever.
          const stuck = !unreachable && !(await blockingClosable(current, BLOCKING_RECONNECT_WAIT_MS));
          if (stuck)
            logger.warn(
              'the worker connection that waits for jobs is still reconnecting: closing without waiting for active switches',
            );
          await current.close(unreachable || stuck);
          // A chat edit a report stopped waiting for (a surface bounds that wait) is still worth
          // delivering: flushed like the rest of the background work, within the same deadline.
          if (opts.reporter.flush) track(opts.reporter.flush());
          await settleBackground(deadline);
        } finally {
          clearTimeout(timer);
          await closeRedis(redis);
        }
      })();
      return closing;
    },
  };
}
