/**
 * Attempts of one switch job and the locks they hold, in one process on the real Redis and the real
 * LocalPlatform: the environment lock is owned by the attempt, not the job, so a job BullMQ re-delivers
 * while its first attempt still runs (a stalled, frozen or partitioned worker) waits for the environment
 * like any other job; an attempt that lost its BullMQ job lock or its environment lock stops at its next
 * step, never calls the platform after the fence says so, and publishes, audits and counts nothing once
 * the job may be another attempt's; renewals that cannot be confirmed stop an attempt too; a job that
 * stalled more than MAX_STALLS times ends with a published, audited and counted final state; a run
 * resumed after a stall is audited as resumed; a job whose worker was killed right after the platform
 * accepted its request (only the started marker stored) succeeds when the next attempt's own request is
 * refused because that first one landed meanwhile ("target is current"), asking nothing a third time.
 *
 * A lost lock is simulated by deleting its key (what expiry does); the stalled checker runs every
 * 150 ms, so every wait here is for an event (a report, a job's end), never a sleep.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_STALLS, RESUMED_AFTER_STALL_DETAIL } from '../../jobs/switch-processor.js';
import { type Clock, systemClock } from '../../src/clock.js';
import { RefusalCode } from '../../src/domain/result.js';
import { RefusalError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import type { OperationRef, SwitchRequest } from '../../src/platform/port.js';
import type { Progress } from '../../src/progress.js';
import { EnvironmentLock, jobIdForPlan, switchKeys } from '../../src/queue.js';
import { deleteKeys, scanKeys } from '../../src/redis.js';
import { progressView } from '../../src/views/model.js';
import { CapturedLog } from '../support/captured-log.js';
import {
  Cleanup,
  consoleMessage,
  deferred,
  FAST_LOCKS,
  jobData,
  jobLockLossNoticed,
  planFor,
  timeoutGuard,
} from './fixtures/harness.js';
import { LogLines } from './fixtures/logs.js';
import { seedDomains, seedIds } from './fixtures/seed.js';
import { type JobsEnv, REACTIVATION_MS, setupJobs } from './fixtures/setup.js';

const cleanup = new Cleanup();
afterEach(async () => {
  vi.restoreAllMocks();
  await cleanup.run();
});

function keysOf(env: JobsEnv) {
  return switchKeys(env.queue.prefix, env.queueName);
}

async function rollbacksOn(env: JobsEnv, environment: string): Promise<number> {
  const snap = await env.local.snapshot(environment);
  return snap.liveHistory.filter((h) => h.via === 'rollback').length;
}

/** Resolves once the platform moved `environment`'s traffic to `deploymentId`. */
function movedTo(env: JobsEnv, environment: string, deploymentId: string): Promise<void> {
  return new Promise<void>((resolve) => {
    const off = env.local.subscribe((e) => {
      if (e.type === 'traffic.moved' && e.environment === environment && e.to === deploymentId) {
        off();
        resolve();
      }
    });
  });
}

function isResume(p: Progress): boolean {
  return p.steps[1]?.detail?.includes('Resuming') === true;
}

/**
 * Makes environment-lock renewals fail like a Redis failover between `start()` and `end()`.
 * `sixthRefusal` resolves with the sixth refusal: renewals run every 200 ms, so the lock duration
 * (600 ms) passes without a confirmed one by the fourth at the latest, and the sixth is sent after
 * the attempt stopped.
 */
function failover(): { start(): void; end(): void; sixthRefusal: Promise<void> } {
  let failing = false;
  let rejected = 0;
  const sixth = deferred();
  const renew = EnvironmentLock.prototype.renew;
  vi.spyOn(EnvironmentLock.prototype, 'renew').mockImplementation(function (this: EnvironmentLock, ...args) {
    if (!failing) return renew.apply(this, args);
    if (++rejected === 6) sixth.resolve();
    return Promise.reject(new Error("READONLY You can't write against a read only replica."));
  });
  return {
    start: () => {
      failing = true;
    },
    end: () => {
      failing = false;
    },
    sixthRefusal: sixth.promise,
  };
}

/**
 * Resolves once `n` environment-lock renewals answered from now on said both locks are held (each
 * renewal round of an attempt sends one, every third of the lock duration).
 */
function confirmedRenewals(n: number): Promise<void> {
  const done = deferred();
  let confirmed = 0;
  const renew = EnvironmentLock.prototype.renew;
  vi.spyOn(EnvironmentLock.prototype, 'renew').mockImplementation(async function (
    this: EnvironmentLock,
    ...args
  ) {
    const res = await renew.apply(this, args);
    if (res.held && res.jobLockHeld && ++confirmed === n) done.resolve();
    return res;
  });
  return done.promise;
}

/**
 * The system clock as a host whose wall clock is stepped (an NTP correction, a VM resumed, an operator
 * setting the date) has it: `now()` moves by `step(ms)`, its monotonic reading and its sleeps do not.
 */
function steppedSystemClock(): Clock & { step(ms: number): void } {
  let offset = 0;
  return {
    ...systemClock,
    now: () => Date.now() + offset,
    step: (ms: number) => {
      offset += ms;
    },
  };
}

describe('attempts of one switch job', () => {
  it('a job re-delivered while its first attempt still runs waits for it; the first stops at its next step and publishes nothing more', async () => {
    const env = await setupJobs(cleanup);
    await env.startWorker(FAST_LOCKS);
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);

    // The first attempt's BullMQ job lock is lost (its worker stalled past the lock duration) while it
    // follows the platform operation; BullMQ's stalled check re-delivers the job.
    await env.redis.del(keysOf(env).jobLock(jobId));
    const resumed = await env.reporter.waitFor((p) => p.jobId === jobId && isResume(p));
    const fromResume = env.reporter.of(jobId).indexOf(resumed);
    await env.clock.advance(REACTIVATION_MS);
    const final = await env.queue.waitForEnd(jobId);

    expect(final?.outcome).toBe('succeeded');
    // Nothing from the first attempt after the second one took the job: every later state is the
    // second attempt's (which resumed the operation), the final one included.
    const later = env.reporter.of(jobId).slice(fromResume);
    expect(later.filter((p) => !isResume(p))).toEqual([]);
    expect(later.at(-1)).toEqual(final);
    expect(env.platform.switchCalls).toBe(1);
    expect(await rollbacksOn(env, 'env0')).toBe(1);
    const entries = await env.audit.recent('env0', 10);
    expect(entries.map((a) => a.event).filter((e) => e !== 'started')).toEqual(['succeeded', 'requested']);
    // The run resumed after the stall is audited as such, not as a second identical `started`.
    expect(
      entries
        .filter((a) => a.event === 'started')
        .map((a) => a.message)
        .reverse(),
    ).toEqual([undefined, 'resumed after the worker running it stopped answering (attempt 1, run 2)']);
    expect(await env.redis.get(keysOf(env).lock('env0'))).toBeNull();
    // It waited for the first attempt to let go of env0, and is no waiter any more.
    expect(await env.redis.zrange(keysOf(env).waiters('env0'), 0, -1)).toEqual([]);
  });

  it('a first attempt whose locks expired during a slow platform call acts on nothing after it: no state, no audit entry, no release over the attempt that took over', async () => {
    const env = await setupJobs(cleanup);
    const gate = deferred();
    const entered = deferred();
    let calls = 0;
    const handle = await env.startWorker({
      ...FAST_LOCKS,
      platform: {
        ...env.platform,
        rollback: async (r: SwitchRequest): Promise<OperationRef> => {
          calls++;
          if (calls === 1) {
            // The first attempt's request is slow to reach the platform (a frozen VM, a slow network).
            entered.resolve();
            await gate.promise;
          }
          return env.platform.rollback(r);
        },
      },
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    await entered.promise;

    // Both of the first attempt's locks expire while its call is on its way.
    await env.redis.del(keysOf(env).jobLock(jobId), keysOf(env).lock('env0'));
    // BullMQ re-delivers the job; the second attempt takes the (free) environment and switches.
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('succeeded');
    const reportsAtEnd = env.reporter.of(jobId).length;

    // The first attempt's request now reaches the platform, which refuses it (the target is live).
    const firstEnded = new Promise<void>((resolve) =>
      handle.worker.on('error', (err) => {
        if (err.message.includes(jobId) && !err.message.startsWith('could not renew')) resolve();
      }),
    );
    gate.resolve();
    await firstEnded;

    // The first attempt published nothing over the second one's final state, appended no refusal to the
    // audit trail and counted nothing; the platform switched once (the late request changed nothing).
    expect(env.reporter.of(jobId).length).toBe(reportsAtEnd);
    expect(env.reporter.of(jobId).at(-1)).toEqual(final);
    expect(await env.queue.progress(jobId)).toEqual(final);
    const events = (await env.audit.recent('env0', 10)).map((a) => a.event);
    expect(events.filter((e) => e !== 'started')).toEqual(['succeeded', 'requested']);
    const counted = (await env.metrics.jobs.get()).values.reduce((n, v) => n + v.value, 0);
    expect(counted).toBe(1);
    expect(calls).toBe(2);
    expect(await rollbacksOn(env, 'env0')).toBe(1);
    expect(await env.redis.get(keysOf(env).lock('env0'))).toBeNull();
  });

  it('waits while an earlier attempt of the same job still holds the environment, saying so', async () => {
    const env = await setupJobs(cleanup);
    await env.startWorker();
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const jobId = jobIdForPlan(plan.id);
    // An earlier attempt of this job (its worker stalled) still holds env0.
    await env.redis.set(keysOf(env).lock('env0'), `${jobId}:earlier`, 'PX', 60_000);
    await env.queue.enqueue(jobData(plan, env.clock.now()));
    const waiting = await env.reporter.waitFor(
      (p) => p.jobId === jobId && p.steps[0]?.detail?.startsWith('Waiting') === true,
    );
    expect(waiting.steps[0]?.detail).toBe(
      'Waiting: an earlier attempt of this switch still holds env0; it stops at its next step, or its hold expires within 5s.',
    );
    expect(env.platform.switchCalls).toBe(0);

    // The earlier attempt lets go: this one takes its turn and switches.
    await env.redis.del(keysOf(env).lock('env0'));
    expect((await env.queue.waitForEnd(jobId))?.outcome).toBe('succeeded');
    expect(env.platform.switchCalls).toBe(1);
  });

  it('fences the platform call: an attempt whose environment lock expired before it acts does not call the platform', async () => {
    const env = await setupJobs(cleanup);
    let snapshots = 0;
    await env.startWorker({
      platform: {
        ...env.platform,
        snapshot: async (environment: string) => {
          const snap = await env.platform.snapshot(environment);
          // The first attempt's lock expires just after it re-read the platform (a long GC pause).
          if (++snapshots === 1) await env.redis.del(keysOf(env).lock(environment));
          return snap;
        },
      },
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);

    expect(final?.outcome).toBe('succeeded');
    expect(final?.attempt).toBe(2);
    const first = env.reporter
      .of(jobId)
      .find((p) => p.attempt === 1 && p.steps.some((s) => s.state === 'failed'));
    expect(first?.code).toBe('lock_lost');
    expect(first?.steps.at(-1)?.detail).toContain('lost the env0 lock');
    expect(env.platform.switchCalls).toBe(1);
    expect(await rollbacksOn(env, 'env0')).toBe(1);
  });

  it('stops an attempt whose renewals cannot be confirmed for a whole lock duration, silently; the retry resumes it', async () => {
    const env = await setupJobs(cleanup);
    const redis = failover();
    await env.startWorker(FAST_LOCKS);
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);

    // From now on the first attempt cannot confirm that it still holds env0 (Redis fails over).
    redis.start();
    const resumed = await env.reporter.waitFor((p) => p.jobId === jobId && p.attempt === 2 && isResume(p));
    redis.end();
    expect(resumed.operationId).toBeDefined();
    await env.clock.advance(REACTIVATION_MS);
    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 2 });
    // The first attempt stopped without publishing a state of its own end.
    const firstEnds = env.reporter
      .of(jobId)
      .filter((p) => p.attempt === 1 && p.steps.some((s) => s.state === 'failed'));
    expect(firstEnds).toEqual([]);
    expect(env.platform.switchCalls).toBe(1);
    expect(await rollbacksOn(env, 'env0')).toBe(1);
  });
});

describe("a step of the worker host's wall clock while an attempt runs", () => {
  it('forward: an attempt whose renewals are all confirmed goes on; the step is no lost lock', async () => {
    const env = await setupJobs(cleanup);
    const clock = steppedSystemClock();
    const log = new CapturedLog('info');
    await env.startWorker({ ...FAST_LOCKS, clock, logger: log.logger });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    // The platform holds the standby target in reactivation (until its own clock moves).
    await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);

    // The wall clock jumps a minute ahead (a hundred lock durations). Four renewal rounds (200 ms
    // apart, each confirmed) then span more than a lock duration (600 ms) of the attempt's run.
    const renewed = confirmedRenewals(4);
    clock.step(60_000);
    await renewed;
    await env.clock.advance(REACTIVATION_MS);
    const final = await env.queue.waitForEnd(jobId);

    // The first attempt carried the switch through: it did not take itself for one that lost its locks.
    expect({
      outcome: final?.outcome,
      attempt: final?.attempt,
      lockLines: log.lines.filter((l) => /lock/.test(l.msg)).map((l) => l.msg),
    }).toEqual({ outcome: 'succeeded', attempt: 1, lockLines: [] });
    expect(env.platform.switchCalls).toBe(1);
  });

  it('back: renewals that cannot be confirmed still stop the attempt once a lock duration has passed', async () => {
    const env = await setupJobs(cleanup);
    const clock = steppedSystemClock();
    const log = new CapturedLog('info');
    const redis = failover();
    await env.startWorker({ ...FAST_LOCKS, clock, logger: log.logger });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);

    // The wall clock is set back an hour, then renewals fail (a failover). Renewals run every 200 ms:
    // by the sixth refused one the lock duration (600 ms) has passed without a confirmed renewal, and
    // the attempt has stopped, as it would without the step (not an hour and 600 ms later).
    clock.step(-3_600_000);
    redis.start();
    await redis.sixthRefusal;
    const stopped = log.lines.filter((l) => l.msg.includes('lost its lock')).map((l) => l.reason);
    redis.end();
    expect(stopped[0]).toBe('unconfirmed');

    await env.clock.advance(REACTIVATION_MS);
    const final = await env.queue.waitForEnd(jobId, 15_000);
    // A later attempt resumed the same operation: one platform call in all.
    expect(final?.outcome).toBe('succeeded');
    expect(final?.attempt).toBeGreaterThan(1);
    expect(env.platform.switchCalls).toBe(1);
    expect(await rollbacksOn(env, 'env0')).toBe(1);
  });
});

describe("a forward step of the worker host's wall clock while it waits on the platform or the domains", () => {
  it('is no time the platform took: an operation still pending when the clock jumps past the operation timeout is followed to its end', async () => {
    const env = await setupJobs(cleanup);
    const clock = steppedSystemClock();
    let polls = 0;
    const platform = {
      ...env.platform,
      operation: async (ref: OperationRef) => {
        polls++;
        // The wall clock jumps 11 minutes ahead (past the 10-minute operation timeout) at the first
        // poll; the platform answers pending for two more polls, then as it is (done).
        if (polls === 1) clock.step(11 * 60_000);
        if (polls <= 3) return { ...(await env.platform.operation(ref)), state: 'pending' as const };
        return env.platform.operation(ref);
      },
    };
    await env.startWorker({
      clock,
      platform,
      operationTimeoutMs: 600_000,
      verify: { timeoutMs: 60_000, intervalMs: 5 },
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect({ outcome: final?.outcome, code: final?.code, attempt: final?.attempt }).toEqual({
      outcome: 'succeeded',
      code: undefined,
      attempt: 1,
    });
    expect(polls).toBeGreaterThan(3);
    expect(env.platform.switchCalls).toBe(1);
  });

  it('is no time the domains took: a domain still answering from the old deployment when the clock jumps past the verify timeout is verified once it follows', async () => {
    const env = await setupJobs(cleanup);
    const clock = steppedSystemClock();
    const stuck = seedDomains(0)[0] ?? '';
    let probes = 0;
    const platform = {
      ...env.platform,
      probe: async (hostname: string) => {
        if (hostname !== stuck) return env.local.probe(hostname);
        probes++;
        // The wall clock jumps 5 minutes ahead (past the 1-minute verify timeout) at the first probe;
        // the domain answers from the old deployment for two more rounds (an edge cache), then follows.
        if (probes === 1) clock.step(5 * 60_000);
        if (probes <= 3) return { hostname, status: 200, deploymentId: seedIds(0).current };
        return env.local.probe(hostname);
      },
    };
    await env.startWorker({ clock, platform, verify: { timeoutMs: 60_000, intervalMs: 5 } });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect({ outcome: final?.outcome, code: final?.code }).toEqual({ outcome: 'succeeded', code: undefined });
    expect(final?.traffic?.every((t) => t.ok)).toBe(true);
    expect(probes).toBeGreaterThan(3);
  });
});

describe('a worker killed right after the platform accepted its switch, before it stored the operation', () => {
  it('its job\'s next attempt, whose own request the platform refuses because the first one landed meanwhile ("target is current"), verifies traffic and succeeds, with two platform calls in all', async () => {
    const env = await setupJobs(cleanup);
    const target = seedIds(0).standby;
    const accepted = deferred();
    // The first attempt's worker is killed -9: its platform call never returns to it. Rejected only
    // at the end of the test, so that the worker can close.
    let kill!: (e: Error) => void;
    const killed = new Promise<never>((_, reject) => {
      kill = reject;
    });
    let calls = 0;
    const handle = await env.startWorker({
      ...FAST_LOCKS,
      platform: {
        ...env.platform,
        rollback: async (r: SwitchRequest): Promise<OperationRef> => {
          calls++;
          if (calls === 1) {
            // The platform receives and accepts the first attempt's rollback (a standby target: it
            // reactivates until the test advances the clock) ...
            await env.platform.rollback(r);
            accepted.resolve();
            // ... and the worker dies before it hears the answer: only the started marker is stored.
            return killed;
          }
          // The next attempt's request: the first one lands just before it reaches the platform,
          // which then refuses it as the real one does (the target is current).
          const landed = movedTo(env, 'env0', target);
          await env.clock.advance(REACTIVATION_MS);
          await landed;
          return env.platform.rollback(r);
        },
      },
    });
    // Registered after the worker, so it runs before the worker closes (even when the test fails).
    cleanup.add(async () => kill(new Error('worker killed')));
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), target);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    await accepted.promise;
    // What the dead worker left: the started marker, no operation ref.
    const stored = await env.redis.get(keysOf(env).operation(jobId));
    expect(stored === null ? undefined : JSON.parse(stored)).toMatchObject({ started: expect.any(String) });

    // Its locks expire (nobody renews them); BullMQ's stalled check re-delivers the job.
    await env.redis.del(keysOf(env).jobLock(jobId), keysOf(env).lock('env0'));
    const final = await env.queue.waitForEnd(jobId);

    expect(final?.outcome).toBe('succeeded');
    expect(final?.code).toBeUndefined();
    // Traffic verified on the target, domain by domain.
    expect(final?.traffic?.map((t) => [t.hostname, t.deploymentId])).toEqual(
      seedDomains(0).map((h) => [h, target]),
    );
    // Two requests reached the platform, never a third; one rollback happened.
    expect(calls).toBe(2);
    expect(env.platform.switchCalls).toBe(2);
    expect(await rollbacksOn(env, 'env0')).toBe(1);
    const detail = `The platform answered that ${target} is already the current deployment: the rollback an earlier attempt of this job asked for (it was interrupted before it recorded the platform's answer) has taken effect, so it is not asked for again.`;
    expect(final?.steps.map((s) => [s.step, s.state])).toEqual([
      ['queued', 'done'],
      ['validating', 'done'],
      ['reactivating', 'done'],
      ['switching', 'skipped'],
      ['verifying', 'done'],
      ['done', 'done'],
    ]);
    expect(final?.steps.find((s) => s.step === 'switching')?.detail).toBe(detail);
    expect(final?.message).toBe(
      `Rolled back env0 to ${target}: both domains answer from it (${seedDomains(0)
        .map((h) => `${h} → ${target}`)
        .join(
          ', ',
        )}). Automatic deploys are paused until a deployment is promoted. The request of an earlier attempt of this rollback made the switch; this attempt's own request was refused as no longer needed (${target} was already current).`,
    );
    expect((await env.audit.recent('env0', 1))[0]).toMatchObject({
      event: 'succeeded',
      message: final?.message,
    });
    // The job still records that it asked the platform to switch: a later run would not ask again.
    const after = await env.redis.get(keysOf(env).operation(jobId));
    expect(after === null ? undefined : JSON.parse(after)).toMatchObject({ started: expect.any(String) });

    // The killed worker's attempt is let go (only so that the worker can close): it publishes nothing.
    const reportsAtEnd = env.reporter.of(jobId).length;
    const firstEnded = new Promise<void>((resolve) =>
      handle.worker.on('error', (err) => {
        if (err.message.includes(jobId) && !err.message.startsWith('could not renew')) resolve();
      }),
    );
    kill(new Error('worker killed'));
    await firstEnded;
    expect(env.reporter.of(jobId).length).toBe(reportsAtEnd);
    expect(await env.queue.progress(jobId)).toEqual(final);
  });

  it('the same with a running target: the switching step says the earlier request did it', async () => {
    const env = await setupJobs(cleanup);
    const target = seedIds(0).previous;
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), target);
    const jobId = jobIdForPlan(plan.id);
    // What the killed worker left: its started marker, no operation ref; its request is still on its
    // way on the platform and lands just before this attempt's request reaches it.
    const marker = JSON.stringify({ started: `${jobId}:killed`, at: env.clock.now() });
    await env.redis.set(keysOf(env).operation(jobId), marker);
    await env.startWorker({
      platform: {
        ...env.platform,
        rollback: async (r: SwitchRequest): Promise<OperationRef> => {
          const landed = movedTo(env, 'env0', target);
          await env.local.rollback({ environment: 'env0', targetId: target, requestedBy: 'Alice' });
          await landed;
          return env.platform.rollback(r);
        },
      },
    });
    await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);

    expect(final?.outcome).toBe('succeeded');
    expect(final?.steps.map((s) => [s.step, s.state])).toEqual([
      ['queued', 'done'],
      ['validating', 'done'],
      ['switching', 'skipped'],
      ['verifying', 'done'],
      ['done', 'done'],
    ]);
    expect(final?.steps[2]?.detail).toMatch(
      /^The platform answered that dep_e0p2 is already the current deployment: the rollback an earlier attempt of this job asked for/,
    );
    expect(final?.message).toContain('The request of an earlier attempt of this rollback made the switch');
    expect(env.platform.switchCalls).toBe(1);
    expect(await rollbacksOn(env, 'env0')).toBe(1);
  });

  it("any other refusal of the next attempt's own request still ends failed, saying the earlier request may still complete", async () => {
    const notReady = new RefusalError({
      code: RefusalCode.targetNotReady,
      message: 'The target is shutting down, so it cannot take traffic.',
    });
    const env = await setupJobs(cleanup, { faults: { switchErrors: [notReady] } });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const jobId = jobIdForPlan(plan.id);
    // What the killed worker left: its started marker, no operation ref.
    const marker = JSON.stringify({ started: `${jobId}:killed`, at: env.clock.now() });
    await env.redis.set(keysOf(env).operation(jobId), marker);
    await env.startWorker();
    await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'failed', code: RefusalCode.targetNotReady, attempt: 1 });
    expect(final?.message).toContain(
      'The platform may have started this rollback and may still complete it: check where traffic is before trying again.',
    );
    expect(env.platform.switchCalls).toBe(1);
  });

  it('a first attempt whose request is refused as "target is current" (another switch made it live) is still refused', async () => {
    const env = await setupJobs(cleanup);
    const target = seedIds(0).previous;
    await env.startWorker({
      platform: {
        ...env.platform,
        rollback: async (r: SwitchRequest): Promise<OperationRef> => {
          // Someone rolls env0 back to the same target by hand between validation and this request.
          const landed = movedTo(env, 'env0', target);
          await env.local.rollback({ environment: 'env0', targetId: target, requestedBy: 'Bob' });
          await landed;
          return env.platform.rollback(r);
        },
      },
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), target);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'refused', code: RefusalCode.targetIsCurrent });
    expect(final?.message).not.toContain('earlier attempt');
    expect(env.platform.switchCalls).toBe(1);
    expect(await env.redis.get(keysOf(env).operation(jobId))).toBeNull();
  });
});

describe('a job deleted from Redis while it runs (FLUSHDB, DEL, eviction)', () => {
  it('is ended by its attempt, which finishes reading where traffic is and tells, audits and counts the end', async () => {
    const env = await setupJobs(cleanup);
    const lossNoticed = jobLockLossNoticed();
    const gate = deferred();
    const entered = deferred();
    const lines = new LogLines();
    await env.startWorker({
      ...FAST_LOCKS,
      logger: createLogger({ level: 'info', pretty: false, destination: lines }),
      platform: {
        ...env.platform,
        rollback: async (r: SwitchRequest): Promise<OperationRef> => {
          entered.resolve();
          await gate.promise;
          return env.platform.rollback(r);
        },
      },
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    await entered.promise;

    // Every key of the queue goes while the attempt is inside the platform call: the job, its lock, the
    // environment lock, the job's run record and message refs. No other attempt can ever take the job.
    await deleteKeys(env.redis, await scanKeys(env.redis, `${env.queue.prefix}:${env.queueName}*`));
    await lossNoticed;
    expect(await env.queue.queue.getJob(jobId)).toBeUndefined();
    gate.resolve();

    const final = await Promise.race([
      env.reporter.waitFor((p) => p.jobId === jobId && p.outcome !== undefined),
      timeoutGuard(10_000, undefined),
    ]);
    if (final === undefined) throw new Error('the switch of a deleted job never told its end');
    // Logged (at error) once the end is audited and counted.
    await lines.until((ls) => ls.some((l) => l.code === 'job_lost' && l.level === 50));
    const target = plan.target.id;
    expect(final).toMatchObject({ outcome: 'failed', code: 'job_lost', targetId: target });
    // The platform call went on, and the attempt followed its operation to the end.
    expect(final.message).toBe(
      `Switchyard's record of this rollback was lost from Redis while it ran (its job was deleted: FLUSHDB, DEL or eviction), so it stopped following it. The platform reports the rollback to ${target} done; traffic on it was not verified. env0 is serving ${target} (rolled back: automatic deploys paused). That is the target of this rollback.`,
    );
    // The step it was on ends; none is left running ("switching" for good).
    expect(final.steps.filter((s) => s.state === 'running')).toEqual([]);
    expect(final.steps.at(-1)).toMatchObject({
      step: 'switching',
      state: 'failed',
      detail: "Stopped: Switchyard's record of this switch was lost from Redis.",
    });
    expect(env.reporter.reports.find((r) => r.progress === final)?.messages).toEqual([consoleMessage]);
    const audit = await env.audit.recent('env0', 10);
    expect(audit.map((e) => [e.event, e.code])).toEqual([
      ['failed', 'job_lost'],
      ['started', undefined],
      ['requested', undefined],
    ]);
    expect(audit[0]?.message).toBe(final.message);
    const counted = (await env.metrics.jobs.get()).values.filter((v) => v.value > 0);
    expect(counted.map((v) => [v.labels, v.value])).toEqual([[{ action: 'rollback', outcome: 'failed' }, 1]]);
    expect(env.platform.switchCalls).toBe(1);
    expect(await rollbacksOn(env, 'env0')).toBe(1);
  });

  it('while it follows a reactivation: the attempt follows it to its end before telling where traffic is', async () => {
    const env = await setupJobs(cleanup);
    const lossNoticed = jobLockLossNoticed();
    const lines = new LogLines();
    await env.startWorker({
      ...FAST_LOCKS,
      logger: createLogger({ level: 'info', pretty: false, destination: lines }),
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const following = await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);

    await deleteKeys(env.redis, await scanKeys(env.redis, `${env.queue.prefix}:${env.queueName}*`));
    await lossNoticed;
    // The reactivation goes on on the platform and completes.
    await env.clock.advance(REACTIVATION_MS);

    const final = await Promise.race([
      env.reporter.waitFor((p) => p.jobId === jobId && p.outcome !== undefined),
      timeoutGuard(10_000, undefined),
    ]);
    if (final === undefined) throw new Error('the switch of a deleted job never told its end');
    // Logged (at error) once the end is audited and counted.
    await lines.until((ls) => ls.some((l) => l.code === 'job_lost' && l.level === 50));
    const target = seedIds(0).standby;
    expect(final).toMatchObject({ outcome: 'failed', code: 'job_lost' });
    expect(final.message).toContain(
      `The platform reports the rollback to ${target} done; traffic on it was not verified. env0 is serving ${target} (rolled back: automatic deploys paused). That is the target of this rollback.`,
    );
    expect(final.operationId).toBe(following.operationId);
    expect(final.steps.filter((s) => s.state === 'running')).toEqual([]);
    expect((await env.audit.recent('env0', 1)).map((e) => [e.event, e.code])).toEqual([
      ['failed', 'job_lost'],
    ]);
    expect(env.platform.switchCalls).toBe(1);
  });
});

describe('the last attempt', () => {
  it('whose renewals could not be confirmed, but which still holds its job once Redis answers, ends with a final state', async () => {
    const env = await setupJobs(cleanup, { attempts: 1 });
    const redis = failover();
    await env.startWorker(FAST_LOCKS);
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);

    // Renewals fail for a whole lock duration (a failover); the attempt stops at its next step. Then
    // Redis answers again and the job is still this attempt's: nobody else will end it.
    redis.start();
    await redis.sixthRefusal;
    redis.end();
    await env.clock.advance(REACTIVATION_MS);
    const final = await env.queue.waitForEnd(jobId, 15_000);

    expect(final?.outcome).toBe('failed');
    expect(final?.code).toBe('lock_lost');
    expect(final?.message).toContain('That was its last attempt');
    expect(final?.message).toContain('env0 is serving');
    expect(env.reporter.of(jobId).at(-1)).toEqual(final);
    expect((await env.audit.recent('env0', 1))[0]).toMatchObject({ event: 'failed', code: 'lock_lost' });
  });
});

describe('the last attempt, after verifying', () => {
  it('whose renewals could not be confirmed only once its switch was verified reports the success', async () => {
    const env = await setupJobs(cleanup, { attempts: 1 });
    const redis = failover();
    const probe = env.platform.probe?.bind(env.platform);
    if (!probe) throw new Error('the local platform probes');
    const reached = deferred();
    const gate = deferred();
    let first = true;
    await env.startWorker({
      ...FAST_LOCKS,
      platform: {
        ...env.platform,
        // Verification's first probe is held while the renewals fail (a failover), then answers.
        probe: async (hostname: string, signal?: AbortSignal) => {
          if (first) {
            first = false;
            reached.resolve();
            await gate.promise;
          }
          return probe(hostname, signal);
        },
      },
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    await reached.promise;
    redis.start();
    await redis.sixthRefusal;
    redis.end();
    gate.resolve();
    const final = await env.queue.waitForEnd(jobId, 15_000);

    expect(final?.outcome).toBe('succeeded');
    expect(env.reporter.of(jobId).at(-1)).toEqual(final);
    expect((await env.audit.recent('env0', 1))[0]).toMatchObject({ event: 'succeeded' });
  });
});

describe('a job that stalls too often', () => {
  it(`ends after ${MAX_STALLS} stalls with a failed final state saying the outcome is unknown and where traffic is, audited and counted`, async () => {
    const env = await setupJobs(cleanup);
    await env.startWorker(FAST_LOCKS);
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);

    // Each time, the attempt running the job loses its job lock (its worker froze); the next delivery
    // resumes the same operation.
    const resumedAt = new Set<number>();
    for (let stall = 1; stall <= MAX_STALLS; stall++) {
      await env.redis.del(keysOf(env).jobLock(jobId));
      const resumed = await env.reporter.waitFor(
        (p) => p.jobId === jobId && isResume(p) && !resumedAt.has(p.steps[1]?.startedAt ?? 0),
      );
      resumedAt.add(resumed.steps[1]?.startedAt ?? 0);
    }
    // One stall more: the next delivery gives the job up.
    await env.redis.del(keysOf(env).jobLock(jobId));
    const final = await env.queue.waitForEnd(jobId, 15_000);

    expect(final?.outcome).toBe('failed');
    expect(final?.code).toBe('job_stalled');
    expect(final?.message).toContain(`stopped answering ${MAX_STALLS + 1} times`);
    expect(final?.message).toContain('whether it switched is unknown');
    expect(final?.message).toContain(`env0 is serving ${seedIds(0).current}.`);
    expect(final?.message).toContain(
      `reports the operation it started (${final?.operationId}) as reactivating.`,
    );
    // The chat message shows where it was interrupted, and the final state.
    expect(final?.steps.at(-1)).toMatchObject({ step: 'reactivating', state: 'failed' });
    expect(env.reporter.of(jobId).at(-1)).toEqual(final);
    const job = await env.queue.queue.getJob(jobId);
    expect(job?.failedReason).toMatch(/^job_stalled: /);
    expect(job?.stalledCounter).toBe(MAX_STALLS + 1);
    expect((await env.audit.recent('env0', 1))[0]).toMatchObject({
      event: 'failed',
      code: 'job_stalled',
      message: final?.message,
    });
    const failed = (await env.metrics.jobs.get()).values.find((v) => v.labels.outcome === 'failed');
    expect(failed?.value).toBe(1);
    expect(env.platform.switchCalls).toBe(1);
  });
});

describe('a job resumed after its worker died while reactivating its standby target', () => {
  it("shows the steps as they happened across its runs: the first run's queueing and reactivation (done, not 'not reached'), one entry per step", async () => {
    const env = await setupJobs(cleanup);
    const target = seedIds(0).standby;
    // The first attempt's worker is killed -9 while it follows the reactivation: its next read of the
    // operation never returns (rejected only at the end of the test, so that the worker can close).
    let kill!: (e: Error) => void;
    const killed = new Promise<never>((_, reject) => {
      kill = reject;
    });
    const died = deferred();
    let dying = false;
    await env.startWorker({
      ...FAST_LOCKS,
      platform: {
        ...env.platform,
        operation: async (ref: OperationRef) => {
          if (dying) {
            dying = false;
            died.resolve();
            return killed;
          }
          return env.platform.operation(ref);
        },
      },
    });
    // Registered after the worker, so it runs before the worker closes (even when the test fails).
    cleanup.add(async () => kill(new Error('worker killed')));
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), target);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const first = await env.reporter.waitFor(
      (p) => p.jobId === jobId && p.operationId !== undefined && p.steps.at(-1)?.step === 'reactivating',
    );
    dying = true;
    await died.promise;
    // While nobody follows it, the platform finishes the reactivation and the switch.
    const moved = movedTo(env, 'env0', target);
    await env.clock.advance(REACTIVATION_MS);
    await moved;

    // Its job lock expires: BullMQ's stalled check re-delivers the job, whose next run waits while the
    // dead run still holds env0, showing the steps that run published, not a bare "queued".
    await env.redis.del(keysOf(env).jobLock(jobId));
    const waiting = await env.reporter.waitFor(
      (p) => p.jobId === jobId && p.steps.some((s) => s.detail?.startsWith('Waiting: an earlier attempt')),
    );
    const [queued, validating, reactivating] = first.steps;
    expect(waiting.steps).toEqual([
      queued,
      validating,
      {
        ...reactivating,
        detail:
          'Waiting: an earlier attempt of this switch still holds env0; it stops at its next step, or its hold expires within 1s.',
      },
    ]);
    // The dead run's hold on env0 expires too: the resumed run takes the switch over.
    await env.redis.del(keysOf(env).lock('env0'));
    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 1 });
    expect(final?.steps.map((s) => [s.step, s.state])).toEqual([
      ['queued', 'done'],
      ['validating', 'done'],
      ['reactivating', 'done'],
      ['switching', 'skipped'],
      ['verifying', 'done'],
      ['done', 'done'],
    ]);
    const step = (name: string) => final?.steps.find((s) => s.step === name);
    // Queued from the request until the first run took the job: not through the dead run.
    expect(step('queued')).toEqual(queued);
    // The resumed run validated afresh and found the switch done.
    const resumedAt = step('validating')?.startedAt ?? 0;
    expect(resumedAt).toBeGreaterThan(validating?.startedAt ?? Number.POSITIVE_INFINITY);
    expect(step('validating')?.detail).toBe(`${target} already serves env0: not switching again.`);
    // The reactivation the first run started is done: from its start, saying that run was
    // interrupted, until the resumed run found the switch done.
    expect(step('reactivating')).toMatchObject({
      state: 'done',
      startedAt: reactivating?.startedAt,
      detail: RESUMED_AFTER_STALL_DETAIL,
    });
    expect(step('reactivating')?.endedAt).toBeGreaterThanOrEqual(step('validating')?.endedAt ?? 0);
    expect(step('reactivating')?.endedAt).toBeLessThanOrEqual(step('switching')?.startedAt ?? 0);
    // What chat shows: the reactivation done, not "not reached".
    const view = progressView(final as Progress);
    const steps = view.blocks.flatMap((b) => (b.type === 'steps' ? b.steps : []));
    expect(steps.map((s) => [s.step, s.state])).toEqual([
      ['queued', 'done'],
      ['validating', 'done'],
      ['reactivating', 'done'],
      ['switching', 'skipped'],
      ['verifying', 'done'],
      ['done', 'done'],
    ]);
    expect(env.platform.switchCalls).toBe(1);
    expect(await rollbacksOn(env, 'env0')).toBe(1);
  });
});
