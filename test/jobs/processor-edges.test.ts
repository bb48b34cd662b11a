/**
 * Edge tests (found by mutation testing) of jobs/switch-processor.ts: behaviour no other test pinned down. Real Redis,
 * a fresh queue per test, the real LocalPlatform on a ManualClock (test/jobs/fixtures).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_STALLS, RESUMED_AFTER_STALL_DETAIL } from '../../jobs/switch-processor.js';
import type { SwitchWorker } from '../../jobs/switch-worker.js';
import type { Plan } from '../../src/domain/plan.js';
import { PlatformHttpError, SwitchyardError } from '../../src/errors.js';
import type {
  DeployPlatform,
  OperationRef,
  OperationStatus,
  SwitchRequest,
} from '../../src/platform/port.js';
import type { Progress, StepRecord } from '../../src/progress.js';
import { EnvironmentLock, jobIdForPlan, queuedProgress, switchKeys } from '../../src/queue.js';
import {
  Cleanup,
  deferred,
  FAST_LOCKS,
  jobData,
  jobLockLossNoticed,
  planFor,
  timeoutGuard,
} from './fixtures/harness.js';
import { seedIds } from './fixtures/seed.js';
import { type JobsEnv, REACTIVATION_MS, setupJobs } from './fixtures/setup.js';

const cleanup = new Cleanup();
afterEach(async () => {
  vi.restoreAllMocks();
  await cleanup.run();
});

/**
 * `env.platform`, whose next `failures` operation reads answer 503; `meanwhile` runs before each, as the
 * platform (and people) go on while the attempt cannot watch.
 */
function failingOperationReads(
  env: JobsEnv,
  failures: number,
  meanwhile: (ref: OperationRef) => Promise<void> = async () => undefined,
): DeployPlatform {
  let left = failures;
  return Object.assign(Object.create(env.platform) as DeployPlatform, {
    operation: async (ref: OperationRef) => {
      if (left > 0) {
        left--;
        await meanwhile(ref);
        throw new PlatformHttpError(
          503,
          'GET',
          `http://platform.test/operations/${ref.id}`,
          undefined,
          'unavailable',
        );
      }
      return env.platform.operation(ref);
    },
  });
}

/** `env.platform`, whose rollback starts operation `id` of env0, which it then reports failed with `error`. */
function failedOperation(
  env: JobsEnv,
  id: string,
  error: NonNullable<OperationStatus['error']>,
): DeployPlatform {
  const ref: OperationRef = {
    id,
    action: 'rollback',
    environment: 'env0',
    targetId: seedIds(0).previous,
    startedAt: env.clock.now(),
  };
  return Object.assign(Object.create(env.platform) as DeployPlatform, {
    rollback: async (): Promise<OperationRef> => ref,
    operation: async (r: OperationRef) =>
      r.id === ref.id
        ? { id: r.id, state: 'failed' as const, updatedAt: env.clock.now(), error }
        : env.platform.operation(r),
  });
}

/** Waits until the local platform reports operation `ref` succeeded, moving its clock `advance` ms first. */
async function untilSucceeded(env: JobsEnv, ref: OperationRef, advance = 0): Promise<void> {
  if (advance > 0) await env.clock.advance(advance);
  for (;;) {
    const status = await env.local.operation(ref);
    if (status.state === 'succeeded') return;
    if (status.state === 'failed') throw new Error(`operation ${ref.id} failed`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

const FAULT_TEXT = { 408: 'request timeout', 502: 'bad gateway', 503: 'unavailable' } as const;

/** What the platform's client throws for a rollback request answered `status`: the answer is lost. */
function rollbackFault(status: keyof typeof FAULT_TEXT): PlatformHttpError {
  return new PlatformHttpError(
    status,
    'POST',
    'http://platform.test/rollback',
    undefined,
    FAULT_TEXT[status],
  );
}

/**
 * `env.platform`, whose rollback requests get `faults` in turn instead of their answers, then answers.
 * `first`, what became of the first request: `sent` to the platform, which starts the switch (the
 * default); `landed`, and the platform finished that switch before the fault (its clock moved
 * `landAfterMs` first: `untilSucceeded`); or `lost` on the way, never reaching the platform (a proxy's
 * 502). `meanwhile` runs before each fault is thrown (`call`: the request's number), as the platform and
 * people go on while the answer is lost. `calls()` counts the requests.
 */
function lostAnswers(
  env: JobsEnv,
  faults: readonly PlatformHttpError[],
  opts: {
    first?: 'sent' | 'landed' | 'lost';
    landAfterMs?: number;
    meanwhile?: (call: number) => Promise<void>;
  } = {},
): { platform: DeployPlatform; calls: () => number } {
  let calls = 0;
  const platform: DeployPlatform = Object.assign(Object.create(env.platform) as DeployPlatform, {
    rollback: async (r: SwitchRequest): Promise<OperationRef> => {
      const call = ++calls;
      const fault = faults[call - 1];
      if (fault === undefined) return env.platform.rollback(r);
      if (call === 1 && opts.first !== 'lost') {
        const ref = await env.platform.rollback(r);
        if (opts.first === 'landed') await untilSucceeded(env, ref, opts.landAfterMs);
      }
      await opts.meanwhile?.(call);
      throw fault;
    },
  });
  return { platform, calls: () => calls };
}

/** Resolves once `worker` took job `jobId` `count` times (each run looks at its environment). */
function runsOf(worker: SwitchWorker, jobId: string, count: number): Promise<void> {
  let seen = 0;
  return new Promise<void>((resolve) => {
    worker.worker.on('active', (job) => {
      if (job.id === jobId && ++seen >= count) resolve();
    });
  });
}

describe('switch processor', () => {
  it('keeps what an earlier attempt found of the target (running, not standby) in a resumed attempt', async () => {
    const env = await setupJobs(cleanup);
    // The first attempt's first read of its operation fails: the second attempt resumes it.
    await env.startWorker({ platform: failingOperationReads(env, 1) });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    expect(plan.targetStandby).toBe(false);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final?.outcome).toBe('succeeded');
    expect(final?.attempt).toBe(2);
    // Views leave the reactivation step out only when the job says the target was running.
    expect(final?.targetStandby).toBe(false);
    expect(env.platform.switchCalls).toBe(1);
  });

  it('says a switch an earlier attempt finished is done, not that it resumes following it', async () => {
    const env = await setupJobs(cleanup);
    // The first attempt cannot read its operation; by the second, the platform finished it.
    await env.startWorker({ platform: failingOperationReads(env, 1) });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 2 });
    expect(final?.steps.find((s) => s.step === 'validating')?.detail).toBe(
      `${plan.target.id} already serves env0: not switching again.`,
    );
    // The switch the first attempt could not follow was the platform's: done, not skipped.
    expect(final?.steps.find((s) => s.step === 'switching')).toMatchObject({
      state: 'done',
      detail: expect.stringMatching(/ \(attempt 1 of 4 could not follow it; the platform finished it\)$/),
    });
  });

  it('tells a job waiting for its environment once, not again at every look at the environment', async () => {
    const env = await setupJobs(cleanup);
    const worker = await env.startWorker({ lockRetryMs: 20 });
    const now = env.clock.now();
    const slow = await planFor(env.local, 'env0', 'rollback', now, seedIds(0).standby);
    const competing = await planFor(env.local, 'env0', 'rollback', now);
    const j1 = await env.queue.enqueue(jobData(slow, now));
    await env.reporter.waitFor((p) => p.jobId === j1.jobId && p.operationId !== undefined);
    const j2Id = jobIdForPlan(competing.id);
    const looked = runsOf(worker, j2Id, 4);
    const j2 = await env.queue.enqueue(jobData(competing, now));
    expect(j2.jobId).toBe(j2Id);
    await looked;

    const waiting = env.reporter
      .of(j2.jobId)
      .filter((p) => p.steps[0]?.detail?.startsWith('Waiting') === true);
    expect(waiting).toHaveLength(1);
    await env.clock.advance(REACTIVATION_MS);
    expect((await env.queue.waitForEnd(j1.jobId))?.outcome).toBe('succeeded');
  });

  it('ends a switch whose job alone was deleted (its run record kept, no later run): the attempt tells the end', async () => {
    const env = await setupJobs(cleanup);
    const lossNoticed = jobLockLossNoticed();
    const gate = deferred();
    const entered = deferred();
    await env.startWorker({
      ...FAST_LOCKS,
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

    // DEL of the job's hash and lock only (an operator's DEL, an eviction): its run record stays.
    const jobKey = env.queue.queue.toKey(jobId);
    await env.redis.del(jobKey, `${jobKey}:lock`);
    await lossNoticed;
    gate.resolve();

    const final = await Promise.race([
      env.reporter.waitFor((p) => p.jobId === jobId && p.outcome !== undefined),
      timeoutGuard(10_000, undefined),
    ]);
    if (final === undefined) throw new Error('the switch of a deleted job never told its end');
    expect(final).toMatchObject({ outcome: 'failed', code: 'job_lost' });
    expect(env.platform.switchCalls).toBe(1);
  });

  it("forgets an earlier attempt's failed operation before asking again: a later attempt knows this job asked", async () => {
    const env = await setupJobs(cleanup);
    const failedRef: OperationRef = {
      id: 'op_failed',
      action: 'rollback',
      environment: 'env0',
      targetId: seedIds(0).previous,
      startedAt: env.clock.now(),
    };
    let calls = 0;
    const platform: DeployPlatform = Object.assign(Object.create(env.platform) as DeployPlatform, {
      rollback: async (r: SwitchRequest): Promise<OperationRef> => {
        calls++;
        // 1st: the platform starts an operation that then fails, switching nothing (retried).
        if (calls === 1) return failedRef;
        // 2nd: the switch is made, but the answer is lost (a 503 after the fact).
        const ref = await env.platform.rollback(r);
        for (;;) {
          const status = await env.local.operation(ref);
          if (status.state === 'succeeded') break;
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        throw rollbackFault(503);
      },
      operation: async (ref: OperationRef) =>
        ref.id === failedRef.id
          ? {
              id: ref.id,
              state: 'failed' as const,
              updatedAt: env.clock.now(),
              error: { code: 'interrupted', message: 'restarted before it switched', retryable: true },
            }
          : env.platform.operation(ref),
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    // The third attempt knows the second asked the platform: the switch found is this job's own.
    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 3 });
    expect(calls).toBe(2);
  });

  it('never says a switch the platform definitely failed may still complete', async () => {
    const env = await setupJobs(cleanup);
    const platform = failedOperation(env, 'op_refused', {
      code: 'image_missing',
      message: 'The image of the target is gone',
      retryable: false,
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'failed', code: 'platform_operation_failed', attempt: 1 });
    expect(final?.message).toBe(
      `The platform could not rollback env0 to ${plan.target.id}: The image of the target is gone (image_missing). env0 is serving ${seedIds(0).current}.`,
    );
  });

  it('ends a plan overtaken after an earlier attempt asked the platform with that sentence only, not "Nothing was done"', async () => {
    const env = await setupJobs(cleanup);
    // The answer to the first request is lost, and meanwhile a push goes live on env0.
    const { platform, calls } = lostAnswers(env, [rollbackFault(503)], {
      first: 'lost',
      meanwhile: async () => {
        await env.local.push({ environment: 'env0' });
        await env.clock.advance(3_000);
        await env.local.settle();
      },
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    // `failed`, not `stale`: the platform may have switched for this job (here it did not).
    expect(final).toMatchObject({ outcome: 'failed', code: 'plan_stale', attempt: 2 });
    expect(final?.message).toContain('This job does nothing more.');
    expect(final?.message).not.toContain('Nothing was done.');
    expect(final?.message).not.toContain('may still complete');
    expect(calls()).toBe(1);
  });

  it('ends failed (plan_stale), saying the live history shows it, when its earlier request switched but the answer was lost and another switch moved on before the retry', async () => {
    const env = await setupJobs(cleanup);
    const ids = seedIds(0);
    // The platform switches, its answer is lost, and Dana rolls env0 further back before the retry.
    const { platform, calls } = lostAnswers(env, [rollbackFault(503)], {
      first: 'landed',
      meanwhile: async () => {
        await untilSucceeded(
          env,
          await env.local.rollback({ environment: 'env0', targetId: ids.standby, requestedBy: 'Dana' }),
          REACTIVATION_MS,
        );
      },
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    // Not known landed (the platform never answered): its view titles it "overtaken" from this.
    expect(final).toMatchObject({ outcome: 'failed', code: 'plan_stale', attempt: 2, switchLanded: false });
    expect(final?.message).toContain(
      `An earlier attempt of this rollback asked the platform to switch env0 to ${ids.previous}, and no answer to that request reached this job (it was lost, or that attempt's worker stopped first). As far as the platform's live history tells, the switch took effect: ${ids.previous} went live, then traffic moved on to ${ids.standby} through another switch (a rollback by Dana), not this one. This job does nothing more. env0 is serving ${ids.standby}`,
    );
    expect((await env.audit.recent('env0', 1))[0]).toMatchObject({ event: 'failed', code: 'plan_stale' });
    expect(calls()).toBe(1);
  });

  it('keeps knowing an earlier unanswered request after a later one is refused: when it lands meanwhile, the job succeeds as its own switch', async () => {
    // jobs/switch-processor.ts: attempt 2's definite "no" (operation in progress) deletes only a marker
    // it wrote itself, and the fence writes none over attempt 1's (NX): were attempt 1's marker deleted,
    // attempt 3 would find the target live and, believing the job never asked, end stale "through
    // another switch, not this one".
    const env = await setupJobs(cleanup);
    let calls = 0;
    let first: SwitchRequest | undefined;
    const platform: DeployPlatform = Object.assign(Object.create(env.platform) as DeployPlatform, {
      rollback: async (r: SwitchRequest): Promise<OperationRef> => {
        calls++;
        if (calls === 1) {
          // The request reaches the platform, which takes it up later; its answer is lost.
          first = r;
          throw rollbackFault(503);
        }
        if (calls === 2 && first !== undefined) {
          // Attempt 1's request lands now, while the platform is busy with it: attempt 2 is refused.
          await untilSucceeded(env, await env.platform.rollback(first));
          throw new SwitchyardError('operation_in_progress', 'another switch of env0 is in progress', {
            retry: true,
          });
        }
        return env.platform.rollback(r);
      },
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 3 });
    expect(final?.message).not.toContain('not this one');
    const switching = final?.steps.find((s) => s.step === 'switching');
    expect(switching?.detail).toContain('an earlier attempt did it');
    expect(calls).toBe(2);
  });

  // The live history is read from the entry live when the job asked (platform time), not from its
  // requestedAt: a requesting host's clock a minute ahead of the platform's does not hide the switch.
  it.each([
    ['', 0],
    [", the requesting host's clock a minute ahead of the platform's", 60_000],
  ])(
    'never asks again when its earlier request switched but the answer was lost and someone moved traffic back to the planned deployment before the retry%s',
    async (_, skew) => {
      const env = await setupJobs(cleanup);
      const ids = seedIds(0);
      // The platform switches, its answer is lost, and Dana promotes the deployment it moved from
      // back before the retry: the state the plan was made on, so the plan holds again.
      const { platform, calls } = lostAnswers(env, [rollbackFault(503)], {
        first: 'landed',
        landAfterMs: 1_000,
        meanwhile: async () => {
          await env.clock.advance(1_000);
          await untilSucceeded(
            env,
            await env.local.promote({ environment: 'env0', targetId: ids.current, requestedBy: 'Dana' }),
          );
        },
      });
      await env.startWorker({ platform });
      const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
      const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now() + skew));

      const final = await env.queue.waitForEnd(jobId);

      // Not rolled back to the target a second time, undoing Dana's deliberate move.
      expect(final).toMatchObject({ outcome: 'failed', code: 'plan_stale', attempt: 2 });
      expect(final?.message).toContain(
        `An earlier attempt of this rollback asked the platform to switch env0 to ${ids.previous}, and no answer to that request reached this job (it was lost, or that attempt's worker stopped first). As far as the platform's live history tells, the switch took effect: ${ids.previous} went live, then traffic went back to ${ids.current} (the deployment this rollback moved it from) through another switch (a promote by Dana), not this one; it is not asked for again. This job does nothing more. env0 is serving ${ids.current}`,
      );
      expect((await env.audit.recent('env0', 1))[0]).toMatchObject({ event: 'failed', code: 'plan_stale' });
      expect(calls()).toBe(1);
      expect((await env.local.snapshot('env0')).environment.currentDeploymentId).toBe(ids.current);
    },
  );

  it('a retry whose stored operation the platform finished ends "done, then overtaken" at once when the live history shows the switch undone meanwhile', async () => {
    const env = await setupJobs(cleanup);
    const ids = seedIds(0);
    // The platform finishes the rollback but the attempt cannot read it; before the retry, Dana
    // promotes the deployment it moved from back.
    const platform = failingOperationReads(env, 1, async (ref) => {
      await untilSucceeded(env, ref);
      await untilSucceeded(
        env,
        await env.local.promote({ environment: 'env0', targetId: ids.current, requestedBy: 'Dana' }),
      );
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    // Not a verify_timeout after the whole verify timeout: the history tells the switch was undone.
    expect(final).toMatchObject({ outcome: 'failed', code: 'plan_stale', attempt: 2 });
    expect(final?.message).toBe(
      `Rolled back env0 to ${ids.previous}; then, before traffic on it was verified, traffic went back to ${ids.current} (the deployment this rollback moved it from) through another switch (a promote by Dana), not this one. This job does nothing more. env0 is serving ${ids.current}.`,
    );
    expect(env.platform.switchCalls).toBe(1);
    // The validating step agrees with that end: env0 serves the source again, so it does not say the
    // target serves it (it did: "dep_… already serves env0: not switching again.").
    const validating = final?.steps.find((s) => s.step === 'validating')?.detail;
    expect(validating).toMatch(
      /^The platform reports this job's rollback \(operation op_\w+\) done: not switching again\.$/,
    );
    // Known landed: its view titles it "done, then overtaken" from this, not from its steps.
    expect(final?.switchLanded).toBe(true);
  });

  it("does not say automatic deploys were resumed since on a platform without a live history, whose rolled-back flag may lag an earlier attempt's rollback", async () => {
    // Like Unkey and Vercel: no live history, and the rollback the first attempt made (its operation
    // followed by the second) not yet shown rolled back. Nobody resumed anything: still "paused".
    const env = await setupJobs(cleanup);
    const ids = seedIds(0);
    const lagging = failingOperationReads(env, 1);
    const platform: DeployPlatform = Object.assign(Object.create(lagging) as DeployPlatform, {
      snapshot: async (environment: string) => {
        const snap = await lagging.snapshot(environment);
        return { ...snap, liveHistory: [], environment: { ...snap.environment, rolledBack: false } };
      },
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 2 });
    expect(final?.message).toContain(`Rolled back env0 to ${ids.previous}`);
    expect(final?.message).toContain('Automatic deploys are paused until a deployment is promoted.');
    expect(final?.message).not.toContain('resumed since');
    expect(env.platform.switchCalls).toBe(1);
  });

  it('succeeds as its own switch when its earlier request landed unanswered and automatic deploys were resumed on the target since', async () => {
    // jobs/switch-processor.ts: the retry found the target current but not rolled back (isAlreadyDone
    // false for a rollback), read the plan stale, and ended failed, saying the switch "did not take
    // effect" while env0 served its target. The live history's newest entry is the job's own switch.
    const env = await setupJobs(cleanup);
    const ids = seedIds(0);
    // The platform switches, its answer is lost, and Bob resumes automatic deploys on the target:
    // no traffic moves and the live history gets no entry.
    const { platform, calls } = lostAnswers(env, [rollbackFault(503)], {
      first: 'landed',
      meanwhile: async () => {
        await untilSucceeded(
          env,
          await env.local.promote({ environment: 'env0', targetId: ids.previous, requestedBy: 'Bob' }),
        );
      },
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 2, switchLanded: true });
    // Not "paused until a deployment is promoted": Bob resumed them.
    expect(final?.message).toContain(`Rolled back env0 to ${ids.previous}: both domains answer from it (`);
    expect(final?.message).toContain('Automatic deploys were resumed since (env0 is no longer rolled back).');
    expect(final?.message).not.toContain('paused');
    // The chat's sentence: the same without the domains its list shows and the switch its title says.
    expect(final?.note).toBe(
      'Both domains answer from it. Automatic deploys were resumed since (env0 is no longer rolled back).',
    );
    const switching = final?.steps.find((s) => s.step === 'switching');
    expect(switching).toMatchObject({ state: 'done' });
    expect(switching?.detail).toContain('the request failed, but the platform did it');
    expect(calls()).toBe(1);
  });

  it("asks again when the live history shows the target put live and undone by other people's switches, not its own request's", async () => {
    // jobs/switch-processor.ts liveThenReplaced ignored who asked: Dana's rollback to the same target,
    // then Erin's promote back, read as this job's request taking effect and being undone.
    const env = await setupJobs(cleanup);
    const ids = seedIds(0);
    // The request never reaches the platform (a 502 from a proxy); before the retry Dana rolls back
    // to the same target on the dashboard and Erin promotes the planned deployment back.
    const { platform, calls } = lostAnswers(env, [rollbackFault(502)], {
      first: 'lost',
      meanwhile: async () => {
        await untilSucceeded(
          env,
          await env.local.rollback({ environment: 'env0', targetId: ids.previous, requestedBy: 'Dana' }),
          1_000,
        );
        await env.clock.advance(1_000);
        await untilSucceeded(
          env,
          await env.local.promote({ environment: 'env0', targetId: ids.current, requestedBy: 'Erin' }),
        );
      },
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 2 });
    expect(calls()).toBe(2);
    const history = (await env.local.snapshot('env0')).liveHistory;
    expect(history.at(-1)).toMatchObject({ deploymentId: ids.previous, via: 'rollback', by: 'Alice' });
  });

  it("says the target went live only through another person's switch when that switch, not its request, preceded traffic moving on", async () => {
    const env = await setupJobs(cleanup);
    const ids = seedIds(0);
    // The request never reaches the platform; Dana rolls back to the same target, then Erin
    // further back.
    const { platform, calls } = lostAnswers(env, [rollbackFault(502)], {
      first: 'lost',
      meanwhile: async () => {
        await untilSucceeded(
          env,
          await env.local.rollback({ environment: 'env0', targetId: ids.previous, requestedBy: 'Dana' }),
        );
        await untilSucceeded(
          env,
          await env.local.rollback({ environment: 'env0', targetId: ids.standby, requestedBy: 'Erin' }),
          REACTIVATION_MS,
        );
      },
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'failed', code: 'plan_stale', attempt: 2, switchLanded: false });
    // Not "the switch took effect: … went live, then traffic moved on … (a rollback by Erin)".
    expect(final?.message).toContain(
      `As far as the platform's live history tells, the switch did not take effect: ${ids.previous} went live since only through another switch (a rollback by Dana), not this one, and traffic has moved since: Traffic moved since this plan was made: env0 now serves ${ids.standby}, not ${ids.current}.`,
    );
    expect(calls()).toBe(1);
  });

  it("does not take another person's switch to its target for its own when its earlier request got no answer", async () => {
    // jobs/switch-processor.ts: a retry finding the target live as a rollback leaves it took the
    // switch for its own ("an earlier attempt did it") and succeeded, though the live history shows
    // Dana's rollback put it live, not this job's request.
    const env = await setupJobs(cleanup);
    const ids = seedIds(0);
    // The request never reaches the platform; Dana rolls back to the same target before the retry.
    const { platform, calls } = lostAnswers(env, [rollbackFault(502)], {
      first: 'lost',
      meanwhile: async () => {
        await untilSucceeded(
          env,
          await env.local.rollback({ environment: 'env0', targetId: ids.previous, requestedBy: 'Dana' }),
        );
      },
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    // `failed`, never `stale`: the job did ask the platform.
    expect(final).toMatchObject({ outcome: 'failed', code: 'plan_stale', attempt: 2, switchLanded: false });
    expect(final?.message).toContain(
      `As far as the platform's live history tells, the switch did not take effect: ${ids.previous} went live since only through another switch (a rollback by Dana), not this one, and traffic has moved since: Traffic moved since this plan was made: env0 now serves ${ids.previous}, not ${ids.current}. This job does nothing more.`,
    );
    expect(calls()).toBe(1);
  });

  it('says the plan no longer holds, not that traffic moved, when its earlier request got no answer and the config now names another project', async () => {
    // jobs/switch-processor.ts askedThenMovedMessage read the other project's history as this
    // environment's: "the switch did not take effect … and traffic has moved since: This plan was made
    // for project …", though the job's switch had landed.
    const env = await setupJobs(cleanup);
    let otherProject = false;
    // The platform switches, its answer is lost, and the config now names another project.
    const { platform: lost, calls } = lostAnswers(env, [rollbackFault(503)], {
      first: 'landed',
      meanwhile: async () => {
        otherProject = true;
      },
    });
    const platform: DeployPlatform = Object.assign(Object.create(lost) as DeployPlatform, {
      snapshot: async (environment: string) => {
        const snap = await env.platform.snapshot(environment);
        return otherProject ? { ...snap, project: { id: 'proj_other', name: 'proj_other' } } : snap;
      },
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'failed', code: 'plan_stale', attempt: 2 });
    expect(final?.message).toContain(
      `no answer to that request reached this job (it was lost, or that attempt's worker stopped first); the switch may have taken effect, but the plan no longer holds: This plan was made for project ${plan.projectId}; Switchyard now acts on project proj_other`,
    );
    expect(final?.message).not.toContain('traffic has moved');
    expect(final?.message).not.toContain('did not take effect');
    expect(calls()).toBe(1);
  });

  it('says the plan no longer holds, not that traffic moved, when its earlier request got no answer and the target was stopped since', async () => {
    const env = await setupJobs(cleanup);
    const ids = seedIds(0);
    // The request never reaches the platform, and the target is stopped before the retry.
    const { platform, calls } = lostAnswers(env, [rollbackFault(502)], {
      first: 'lost',
      meanwhile: async () => {
        await env.local.stop(ids.previous);
      },
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    // `failed`, not `refused`: the earlier request may have switched.
    expect(final).toMatchObject({ outcome: 'failed', code: 'target_stopped', attempt: 2 });
    expect(final?.message).toContain(
      `no answer to that request reached this job (it was lost, or that attempt's worker stopped first); the switch may have taken effect, but the plan no longer holds: ${ids.previous}`,
    );
    expect(final?.message).not.toContain('traffic has moved');
    expect(calls()).toBe(1);
  });

  it('after a 408 on its switch request (it may have switched), the next attempt takes the switch found as its own', async () => {
    const env = await setupJobs(cleanup);
    // The platform switched, but its answer timed out on the way back.
    const { platform, calls } = lostAnswers(env, [rollbackFault(408)], { first: 'landed' });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 2 });
    // The switch the first attempt's request made: done, saying its answer was lost (not a red ✗,
    // nor skipped as if the job had not switched).
    expect(final?.steps.find((s) => s.step === 'switching')).toMatchObject({
      state: 'done',
      detail:
        'The platform answered 408 Request Timeout to the rollback request. (attempt 1 of 4: the request failed, but the platform did it)',
    });
    expect(calls()).toBe(1);
  });

  it.each([
    [
      'a bug reading it (internal)',
      () => new SwitchyardError('internal', 'Cannot read properties of undefined'),
    ],
    [
      'a 2xx answer that does not parse',
      () =>
        new PlatformHttpError(
          200,
          'GET',
          'http://platform.test/operations/x',
          'invalid_response',
          'not JSON',
        ),
    ],
  ])(
    "keeps an earlier attempt's operation when reading it fails with %s: never starts a second switch",
    async (_, fault) => {
      const env = await setupJobs(cleanup);
      let reads = 0;
      const platform: DeployPlatform = Object.assign(Object.create(env.platform) as DeployPlatform, {
        operation: async (ref: OperationRef) => {
          reads++;
          // The first attempt's first read: a 503 (retried); the second attempt's read: the fault.
          if (reads === 1)
            throw new PlatformHttpError(
              503,
              'GET',
              `http://platform.test/operations/${ref.id}`,
              undefined,
              'unavailable',
            );
          if (reads === 2) throw fault();
          return env.platform.operation(ref);
        },
      });
      await env.startWorker({ platform });
      const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
      const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
      const ended = env.queue.waitForEnd(jobId);

      // The third attempt follows the operation the first one started (its reactivation).
      const resumed = await Promise.race([
        env.reporter.waitFor(
          (p) => p.jobId === jobId && p.attempt === 3 && p.steps[1]?.detail?.includes('Resuming') === true,
        ),
        ended,
      ]);
      expect(resumed?.outcome).toBeUndefined();
      expect(env.platform.switchCalls).toBe(1);
      await env.clock.advance(REACTIVATION_MS);
      expect((await ended)?.outcome).toBe('succeeded');
      expect(env.platform.switchCalls).toBe(1);
    },
  );

  it('does not retry a switch the platform stopped waiting for (it may still complete), even when marked retryable', async () => {
    const env = await setupJobs(cleanup);
    const platform = failedOperation(env, 'op_unfinished', {
      code: 'operation_timeout',
      message: 'Stopped waiting for the rollback',
      retryable: true,
      mayStillComplete: true,
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'failed', code: 'platform_operation_failed', attempt: 1 });
    expect(final?.message).toContain('may still complete');
  });

  it('adds where the platform says traffic is to a verified success when its state still shows another deployment', async () => {
    const env = await setupJobs(cleanup);
    const ids = seedIds(0);
    // The platform's environment state lags behind its routing: it still names the source as current.
    const platform: DeployPlatform = Object.assign(Object.create(env.platform) as DeployPlatform, {
      snapshot: async (environment: string) => {
        const snap = await env.platform.snapshot(environment);
        return {
          ...snap,
          environment: { ...snap.environment, currentDeploymentId: ids.current, rolledBack: false },
        };
      },
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final?.outcome).toBe('succeeded');
    expect(final?.message).toMatch(
      new RegExp(
        `Automatic deploys are paused until a deployment is promoted\\. env0 is serving ${ids.current}\\.$`,
      ),
    );
  });

  it('renews its environment lock well within the lock duration while a switch runs: every renewal finds it held', async () => {
    const env = await setupJobs(cleanup);
    const renewals: { held: boolean; jobLockHeld: boolean }[] = [];
    const three = deferred();
    const renew = EnvironmentLock.prototype.renew;
    vi.spyOn(EnvironmentLock.prototype, 'renew').mockImplementation(function (
      this: EnvironmentLock,
      ...args
    ) {
      return renew.apply(this, args).then((res) => {
        renewals.push({ held: res.held, jobLockHeld: res.jobLockHeld });
        if (renewals.length === 3) three.resolve();
        return res;
      });
    });
    await env.startWorker(FAST_LOCKS);
    // A standby target: the switch waits in reactivation until the test moves the platform's clock.
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);

    await three.promise;

    expect(renewals.slice(0, 3)).toEqual([
      { held: true, jobLockHeld: true },
      { held: true, jobLockHeld: true },
      { held: true, jobLockHeld: true },
    ]);
    await env.clock.advance(REACTIVATION_MS);
    expect((await env.queue.waitForEnd(jobId))?.outcome).toBe('succeeded');
  });

  /**
   * `env.platform`, recording the target of every rollback asked for (`calls`): a rollback to `first`
   * (job A's target) fails the first time with `fault()` after it reached the platform when `lands`,
   * and a rollback to any other target (job B's) resolves `otherCalled` when it is asked for.
   */
  function jobAFails(env: JobsEnv, first: string, lands: boolean, fault: () => Error) {
    const calls: string[] = [];
    const otherCalled = deferred();
    let aRef: OperationRef | undefined;
    let failed = false;
    const platform: DeployPlatform = Object.assign(Object.create(env.platform) as DeployPlatform, {
      rollback: async (r: SwitchRequest): Promise<OperationRef> => {
        calls.push(r.targetId);
        if (r.targetId !== first) {
          otherCalled.resolve();
          return env.platform.rollback(r);
        }
        if (failed) return env.platform.rollback(r);
        failed = true;
        if (lands) aRef = await env.platform.rollback(r);
        throw fault();
      },
    });
    return { platform, calls, otherCalled: otherCalled.promise, aRef: () => aRef };
  }

  /** Starts a worker whose retries back off for a minute (the test starts them), and job A. */
  async function startWithJobA(env: JobsEnv, platform: DeployPlatform, target: string) {
    const worker = await env.startWorker({
      platform,
      retry: { baseDelayMs: 60_000, maxDelayMs: 60_000 },
      lockRetryMs: 20,
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), target);
    const a = jobIdForPlan(plan.id);
    const backingOff = new Promise<void>((resolve) =>
      worker.worker.on('failed', (job) => {
        if (job?.id === a) resolve();
      }),
    );
    await env.queue.enqueue(jobData(plan, env.clock.now()));
    await backingOff;
    return a;
  }

  it("keeps its environment while it backs off after its switch request's answer was lost: another job waits for its retry, then re-validates", async () => {
    // Job A's request reaches the platform (a reactivation: it runs until the test moves the platform's
    // clock) and its answer is lost. Were the environment freed for A's backoff, job B would find it
    // unchanged and ask for a second switch while A's still runs.
    const env = await setupJobs(cleanup);
    const ids = seedIds(0);
    const { platform, calls, otherCalled, aRef } = jobAFails(env, ids.standby, true, () =>
      rollbackFault(503),
    );
    const a = await startWithJobA(env, platform, ids.standby);
    // Kept for A's retry: over its longest backoff (a minute), and one lock duration more (5 s).
    const lockKey = switchKeys(env.queue.prefix, env.queueName).lock('env0');
    const createdAt = (await env.queue.queue.getJob(a))?.timestamp;
    expect(await env.redis.get(lockKey)).toBe(`${a}:retry-${createdAt}`);
    expect(await env.redis.pttl(lockKey)).toBeGreaterThan(60_000);
    expect(await env.redis.pttl(lockKey)).toBeLessThanOrEqual(65_000);
    // Job B, planned on the state job A was planned on, comes while A backs off.
    const planB = await planFor(env.local, 'env0', 'rollback', env.clock.now(), ids.previous);
    const { jobId: b } = await env.queue.enqueue(jobData(planB, env.clock.now()));

    const waiting = env.reporter
      .waitFor((p) => p.jobId === b && p.steps.some((s) => s.detail?.startsWith('Waiting') === true))
      .then((p) => p.steps.find((s) => s.state === 'running')?.detail);
    const first = await Promise.race([waiting, otherCalled.then(() => 'job B asked the platform')]);
    expect(first).toBe(
      `Waiting: another env0 switch is running (job ${a}, between two attempts; its switch may still be running on the platform).`,
    );

    // A's switch lands; its retry finds it done (its own) and ends the job, freeing env0 for B.
    const ref = aRef();
    if (ref === undefined) throw new Error("job A's request did not reach the platform");
    await untilSucceeded(env, ref, REACTIVATION_MS);
    await (await env.queue.queue.getJob(a))?.promote();
    expect(await env.queue.waitForEnd(a)).toMatchObject({ outcome: 'succeeded', attempt: 2 });
    const finalB = await env.queue.waitForEnd(b);

    // B re-validated after A: traffic moved since its plan, so it asked for nothing.
    expect(finalB).toMatchObject({ outcome: 'stale', code: 'plan_stale' });
    expect(calls).toEqual([ids.standby]);
  });

  it('drops the reservation of a job removed while it backs off: another job takes its environment at once instead of waiting out the reservation', async () => {
    // Job A's request gets no answer, so it keeps env0 for its retry (over a minute); then A is removed.
    // No attempt of A will ever take the reservation over: job B must not wait for it to expire.
    const env = await setupJobs(cleanup);
    const ids = seedIds(0);
    const { platform, calls } = jobAFails(env, ids.standby, false, () => rollbackFault(503));
    const a = await startWithJobA(env, platform, ids.standby);
    const lockKey = switchKeys(env.queue.prefix, env.queueName).lock('env0');
    const jobA = await env.queue.queue.getJob(a);
    expect(await env.redis.get(lockKey)).toBe(`${a}:retry-${jobA?.timestamp}`);
    await jobA?.remove();

    const planB = await planFor(env.local, 'env0', 'rollback', env.clock.now(), ids.previous);
    const { jobId: b } = await env.queue.enqueue(jobData(planB, env.clock.now()));
    const waited = env.reporter
      .waitFor((p) => p.jobId === b && p.steps.some((s) => s.detail?.startsWith('Waiting') === true))
      .then((p) => p.steps.find((s) => s.state === 'running')?.detail);
    const endB = env.queue.waitForEnd(b);
    // B switches first time, never saying it waits (the reservation had over a minute left).
    expect(await Promise.race([endB.then((f) => f?.outcome), waited])).toBe('succeeded');
    expect(await endB).toMatchObject({ outcome: 'succeeded', attempt: 1 });
    expect(calls).toEqual([ids.standby, ids.previous]);
    expect(await env.redis.exists(lockKey)).toBe(0);
  });

  it('frees its environment at once when its switch request was refused (nothing started): another job runs during its backoff', async () => {
    const env = await setupJobs(cleanup);
    const ids = seedIds(0);
    const busy = () =>
      new SwitchyardError('operation_in_progress', 'another switch of env0 is in progress', { retry: true });
    const { platform, calls } = jobAFails(env, ids.standby, false, busy);
    const a = await startWithJobA(env, platform, ids.standby);
    const planB = await planFor(env.local, 'env0', 'rollback', env.clock.now(), ids.previous);
    const { jobId: b } = await env.queue.enqueue(jobData(planB, env.clock.now()));

    // B switches while A still waits out its minute of backoff, never waiting for env0.
    const waited = env.reporter
      .waitFor((p) => p.jobId === b && p.steps.some((s) => s.detail?.startsWith('Waiting') === true))
      .then((p) => p.steps.find((s) => s.state === 'running')?.detail);
    const endB = env.queue.waitForEnd(b);
    expect(await Promise.race([endB.then((f) => f?.outcome), waited])).toBe('succeeded');
    expect(await endB).toMatchObject({ outcome: 'succeeded', attempt: 1 });
    expect(await (await env.queue.queue.getJob(a))?.getState()).toBe('delayed');
    await (await env.queue.queue.getJob(a))?.promote();

    // A's retry re-validates: B moved traffic since its plan.
    expect(await env.queue.waitForEnd(a)).toMatchObject({ outcome: 'stale', code: 'plan_stale', attempt: 2 });
    expect(calls).toEqual([ids.standby, ids.previous]);
  });

  /**
   * Makes every attempt of job `a` to take its environment lock wait until job `b` has tried to take
   * it (from now on): `b` is first at the lock whatever order a worker takes the two jobs in.
   */
  function bTriesTheLockFirst(a: string, b: string): void {
    const bTried = deferred();
    const acquire = EnvironmentLock.prototype.acquireAndRead;
    vi.spyOn(EnvironmentLock.prototype, 'acquireAndRead').mockImplementation(async function (
      this: EnvironmentLock,
      ...args
    ) {
      if (args[4].jobId === a) await bTried.promise;
      const got = await acquire.apply(this, args);
      if (args[4].jobId === b) bTried.resolve();
      return got;
    });
  }

  it('keeps its environment for its resumed attempt when handed back at shutdown while its switch runs: a job waiting for env0 does not ask the platform first', async () => {
    // Job A is handed back while its operation (a reactivation) still runs. Were env0 freed, job B,
    // planned on the same state and first at the lock, would find it unchanged and ask for a second
    // switch while A's still runs.
    const env = await setupJobs(cleanup);
    const ids = seedIds(0);
    const calls: string[] = [];
    const otherCalled = deferred();
    const platform: DeployPlatform = Object.assign(Object.create(env.platform) as DeployPlatform, {
      rollback: async (r: SwitchRequest): Promise<OperationRef> => {
        calls.push(r.targetId);
        if (r.targetId !== ids.standby) otherCalled.resolve();
        return env.platform.rollback(r);
      },
    });
    const first = await env.startWorker({ platform, shutdownTimeoutMs: 20 });
    const planA = await planFor(env.local, 'env0', 'rollback', env.clock.now(), ids.standby);
    const { jobId: a } = await env.queue.enqueue(jobData(planA, env.clock.now()));
    await env.reporter.waitFor((p) => p.jobId === a && p.operationId !== undefined);
    const planB = await planFor(env.local, 'env0', 'rollback', env.clock.now(), ids.previous);
    const { jobId: b } = await env.queue.enqueue(jobData(planB, env.clock.now()));
    await env.reporter.waitFor(
      (p) => p.jobId === b && p.steps.some((s) => s.detail?.startsWith('Waiting') === true),
    );
    await first.close();

    // Kept for A's resumed attempt, for two lock durations (5 s each) at most.
    const lockKey = switchKeys(env.queue.prefix, env.queueName).lock('env0');
    const createdAt = (await env.queue.queue.getJob(a))?.timestamp;
    expect(await env.redis.get(lockKey)).toBe(`${a}:retry-${createdAt}`);
    expect(await env.redis.pttl(lockKey)).toBeGreaterThan(5_000);
    expect(await env.redis.pttl(lockKey)).toBeLessThanOrEqual(10_000);

    bTriesTheLockFirst(a, b);
    await env.startWorker({ platform });
    const resumed = env.reporter
      .waitFor((p) => p.jobId === a && p.steps.some((s) => s.detail?.includes('Resuming') === true))
      .then(() => 'A resumed');
    expect(await Promise.race([resumed, otherCalled.promise.then(() => 'job B asked the platform')])).toBe(
      'A resumed',
    );
    await env.clock.advance(REACTIVATION_MS);
    expect(await env.queue.waitForEnd(a)).toMatchObject({ outcome: 'succeeded', attempt: 1 });

    // B re-validated after A: traffic moved since its plan, so it asked for nothing.
    expect(await env.queue.waitForEnd(b)).toMatchObject({ outcome: 'stale', code: 'plan_stale' });
    expect(calls).toEqual([ids.standby]);
  });

  it("keeps its environment for the job's next attempt when its attempt lost its job lock while its switch runs: a job waiting for env0 does not ask the platform first", async () => {
    // Job A's BullMQ job lock alone goes (the job stays) while its operation (a reactivation) still
    // runs: the attempt stops without publishing, and BullMQ's stalled check gives the job to a next
    // attempt. Were env0 freed meanwhile, job B, planned on the same state and first at the lock, would
    // find it unchanged and ask for a second switch while A's still runs.
    const env = await setupJobs(cleanup);
    const ids = seedIds(0);
    const order: string[] = [];
    const otherCalled = deferred();
    const platform: DeployPlatform = Object.assign(Object.create(env.platform) as DeployPlatform, {
      rollback: async (r: SwitchRequest): Promise<OperationRef> => {
        order.push(`rollback to ${r.targetId}`);
        if (r.targetId !== ids.standby) otherCalled.resolve();
        return env.platform.rollback(r);
      },
    });
    const lossNoticed = jobLockLossNoticed();
    // A lock duration long enough that a loaded machine takes A's next attempt up within the
    // reservation (three lock durations), and a stalled check quick enough to hand it over soon.
    await env.startWorker({ lockDurationMs: 1_500, stalledIntervalMs: 150, platform });
    const planA = await planFor(env.local, 'env0', 'rollback', env.clock.now(), ids.standby);
    const { jobId: a } = await env.queue.enqueue(jobData(planA, env.clock.now()));
    await env.reporter.waitFor((p) => p.jobId === a && p.operationId !== undefined);
    const planB = await planFor(env.local, 'env0', 'rollback', env.clock.now(), ids.previous);
    const { jobId: b } = await env.queue.enqueue(jobData(planB, env.clock.now()));
    await env.reporter.waitFor(
      (p) => p.jobId === b && p.steps.some((s) => s.detail?.startsWith('Waiting') === true),
    );

    // Once A's attempt lets go of env0 (hands it over or frees it), A's next attempt takes it only after
    // B tried it (B is first at the lock) and the test read it.
    let aLetGo = false;
    const letGo = deferred<string>();
    const bTried = deferred();
    const read = deferred();
    const aOwns = (owner: string) => owner.startsWith(`${a}:`) && !aLetGo;
    const handOver = EnvironmentLock.prototype.handOver;
    vi.spyOn(EnvironmentLock.prototype, 'handOver').mockImplementation(async function (
      this: EnvironmentLock,
      ...args
    ) {
      if (!aOwns(args[1])) return handOver.apply(this, args);
      aLetGo = true;
      const handed = await handOver.apply(this, args);
      letGo.resolve(handed ? 'handed over' : 'not held');
      return handed;
    });
    const releaseAndRead = EnvironmentLock.prototype.releaseAndRead;
    vi.spyOn(EnvironmentLock.prototype, 'releaseAndRead').mockImplementation(async function (
      this: EnvironmentLock,
      ...args
    ) {
      if (!aOwns(args[1])) return releaseAndRead.apply(this, args);
      aLetGo = true;
      const got = await releaseAndRead.apply(this, args);
      letGo.resolve('freed');
      return got;
    });
    const acquire = EnvironmentLock.prototype.acquireAndRead;
    vi.spyOn(EnvironmentLock.prototype, 'acquireAndRead').mockImplementation(async function (
      this: EnvironmentLock,
      ...args
    ) {
      const afterLetGo = aLetGo;
      if (afterLetGo && args[4].jobId === a) await Promise.all([bTried.promise, read.promise]);
      const got = await acquire.apply(this, args);
      if (afterLetGo && args[4].jobId === b) bTried.resolve();
      return got;
    });

    // Only A's BullMQ job lock goes: its attempt notices at its next renewal and stops.
    const jobKey = env.queue.queue.toKey(a);
    await env.redis.del(`${jobKey}:lock`);
    await lossNoticed;
    expect(await letGo.promise).toBe('handed over');

    // Kept for A's next attempt, for three lock durations (600 ms each) at most: the longest backoff
    // (20 ms) and a lock duration are shorter.
    const lockKey = switchKeys(env.queue.prefix, env.queueName).lock('env0');
    const createdAt = (await env.queue.queue.getJob(a))?.timestamp;
    expect(await env.redis.get(lockKey)).toBe(`${a}:retry-${createdAt}`);
    expect(await env.redis.pttl(lockKey)).toBeGreaterThan(3_000);
    expect(await env.redis.pttl(lockKey)).toBeLessThanOrEqual(4_500);
    read.resolve();

    const resumed = env.reporter
      .waitFor((p) => p.jobId === a && p.steps.some((s) => s.detail?.includes('Resuming') === true))
      .then(() => 'A resumed');
    expect(await Promise.race([resumed, otherCalled.promise.then(() => 'job B asked the platform')])).toBe(
      'A resumed',
    );
    await env.clock.advance(REACTIVATION_MS);
    expect(await env.queue.waitForEnd(a)).toMatchObject({ outcome: 'succeeded', attempt: 1 });
    order.push('A ended');

    // B re-validated after A: traffic moved since its plan, so it asked for nothing.
    expect(await env.queue.waitForEnd(b)).toMatchObject({ outcome: 'stale', code: 'plan_stale' });
    expect(order).toEqual([`rollback to ${ids.standby}`, 'A ended']);
  });
});

describe("a resumed job's steps", () => {
  /** Publishes `steps` as the progress an earlier run of queued job `jobId` left (its worker died). */
  async function leftByEarlierRun(
    env: JobsEnv,
    jobId: string,
    plan: Plan,
    steps: StepRecord[],
  ): Promise<void> {
    const job = await env.queue.queue.getJob(jobId);
    const at = env.clock.now();
    await job?.updateProgress({
      ...queuedProgress(jobId, jobData(plan, at), { startedAt: at, attempt: 1, updatedAt: at }),
      steps,
    });
  }

  it("a job retried three times keeps one entry per step, and its queueing is its first attempt's", async () => {
    const env = await setupJobs(cleanup, {
      attempts: 4,
      faults: { switchErrors: [rollbackFault(503), rollbackFault(503), rollbackFault(503)] },
    });
    await env.startWorker();
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 4 });
    expect(final?.steps.map((s) => [s.step, s.state])).toEqual([
      ['queued', 'done'],
      ['validating', 'done'],
      ['switching', 'done'],
      ['verifying', 'done'],
      ['done', 'done'],
    ]);
    // Every state the attempts published stays as bounded: one entry per step.
    for (const p of env.reporter.of(jobId))
      expect(new Set(p.steps.map((s) => s.step)).size).toBe(p.steps.length);
    // Queued until the first attempt took the job, not through three attempts and their backoffs.
    const first = env.reporter.of(jobId).find((p) => p.attempt === 1);
    expect(final?.steps[0]).toEqual(first?.steps[0]);
    expect(final?.steps[0]?.endedAt).toBeLessThan(final?.steps[1]?.startedAt ?? 0);
    expect(env.platform.switchCalls).toBe(4);
  });

  it('a step an earlier attempt failed says in the final state that it was retried, not that it is retrying', async () => {
    const env = await setupJobs(cleanup, { attempts: 4 });
    // The first request fails (retried), and meanwhile a push goes live: the retry ends overtaken
    // (failed, as the first request may have switched).
    const { platform } = lostAnswers(env, [rollbackFault(503)], {
      first: 'lost',
      meanwhile: async () => {
        await env.local.push({ environment: 'env0' });
        await env.clock.advance(3_000);
        await env.local.settle();
      },
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'failed', code: 'plan_stale', attempt: 2 });
    const said = 'The platform answered 503 Service Unavailable to the rollback request.';
    // While the retry was to come, the failed step said so.
    const retrying = env.reporter.of(jobId).find((p) => p.outcome === undefined && p.code !== undefined);
    expect(retrying?.steps.find((s) => s.step === 'switching')?.detail).toBe(
      `${said} (attempt 1 of 4; retrying)`,
    );
    // The final state, carrying that step, promises nothing: it says what happened.
    expect(final?.steps.find((s) => s.step === 'switching')).toMatchObject({
      state: 'failed',
      detail: `${said} (attempt 1 of 4 failed; retried)`,
    });
    expect(JSON.stringify(final)).not.toMatch(/retrying/);
    // So does every message's final state.
    const reported = env.reporter.of(jobId).filter((p) => p.outcome !== undefined);
    expect(reported.length).toBeGreaterThan(0);
    for (const p of reported) expect(JSON.stringify(p.steps)).not.toMatch(/retrying/);
  });

  it('a step whose earlier run stopped before asking the platform is left out: the resumed run never reached it', async () => {
    const env = await setupJobs(cleanup);
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    // The earlier run published `reactivating` and died before its fence: no started marker is stored.
    const at = env.clock.now();
    await leftByEarlierRun(env, jobId, plan, [
      { step: 'queued', state: 'done', startedAt: at, endedAt: at },
      { step: 'validating', state: 'done', startedAt: at, endedAt: at },
      { step: 'reactivating', state: 'running', startedAt: at },
    ]);
    // Meanwhile a push went live on env0: the resumed run finds the plan stale.
    await env.local.push({ environment: 'env0' });
    await env.clock.advance(3_000);
    await env.local.settle();
    await env.startWorker();

    const final = await env.queue.waitForEnd(jobId);

    expect(final?.outcome).toBe('stale');
    expect(final?.steps.map((s) => [s.step, s.state])).toEqual([
      ['queued', 'done'],
      ['validating', 'failed'],
    ]);
    expect(env.platform.switchCalls).toBe(0);
  });

  it('a step whose operation the platform reports failed (or forgot) ends failed, saying so, when the resumed run decides afresh', async () => {
    const env = await setupJobs(cleanup);
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    // The earlier run was reactivating the target when it died; the platform forgot that operation
    // since (the local platform restarted), and a push went live on env0.
    const at = env.clock.now();
    await leftByEarlierRun(env, jobId, plan, [
      { step: 'queued', state: 'done', startedAt: at, endedAt: at },
      { step: 'validating', state: 'done', startedAt: at, endedAt: at },
      { step: 'reactivating', state: 'running', startedAt: at },
    ]);
    const forgotten: OperationRef = {
      id: 'op_forgotten',
      action: 'rollback',
      environment: 'env0',
      targetId: plan.target.id,
      startedAt: at,
    };
    await env.redis.set(
      switchKeys(env.queue.prefix, env.queueName).operation(jobId),
      JSON.stringify(forgotten),
    );
    await env.local.push({ environment: 'env0' });
    await env.clock.advance(3_000);
    await env.local.settle();
    await env.startWorker();

    const final = await env.queue.waitForEnd(jobId);

    expect(final?.outcome).toBe('stale');
    expect(final?.steps.find((s) => s.step === 'reactivating')).toMatchObject({
      state: 'failed',
      startedAt: at,
      detail:
        'Interrupted: the platform reports the operation of this rollback (op_forgotten) failed, or does not know it; a later run decided afresh.',
    });
    // An operation that did not switch is not the job's end.
    expect(final?.operationId).toBeUndefined();
    expect(env.platform.switchCalls).toBe(0);
  });

  it('a switch an earlier run was on when it died, which the platform finished since, is done, not skipped', async () => {
    const env = await setupJobs(cleanup);
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    // The earlier run asked the platform to switch, stored the operation and died following it; the
    // platform finished it.
    const ref = await env.local.rollback({
      environment: 'env0',
      targetId: plan.target.id,
      requestedBy: 'alice',
    });
    await env.local.settle();
    await env.redis.set(switchKeys(env.queue.prefix, env.queueName).operation(jobId), JSON.stringify(ref));
    const at = env.clock.now();
    await leftByEarlierRun(env, jobId, plan, [
      { step: 'queued', state: 'done', startedAt: at, endedAt: at },
      { step: 'validating', state: 'done', startedAt: at, endedAt: at },
      { step: 'switching', state: 'running', startedAt: at },
    ]);
    await env.startWorker();

    const final = await env.queue.waitForEnd(jobId);

    expect(final?.outcome).toBe('succeeded');
    expect(final?.steps.find((s) => s.step === 'switching')).toMatchObject({
      state: 'done',
      startedAt: at,
      detail: RESUMED_AFTER_STALL_DETAIL,
    });
    // The final state names the operation the earlier run started, though this run followed nothing.
    expect(final?.operationId).toBe(ref.id);
    expect(env.platform.switchCalls).toBe(0);
  });

  it("a retry that waits for its environment shows its earlier attempt's steps, and says it waits on its next step", async () => {
    const env = await setupJobs(cleanup, {
      faults: {
        switchErrors: [rollbackFault(503)],
      },
    });
    // A long backoff: the test lets the retry run once another switch holds env0.
    const worker = await env.startWorker({
      retry: { baseDelayMs: 60_000, maxDelayMs: 60_000 },
      lockRetryMs: 20,
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const jobId = jobIdForPlan(plan.id);
    const backingOff = new Promise<void>((resolve) =>
      worker.worker.on('failed', (job) => {
        if (job?.id === jobId) resolve();
      }),
    );
    await env.queue.enqueue(jobData(plan, env.clock.now()));
    const failed = await env.reporter.waitFor((p) => p.jobId === jobId && p.code !== undefined);
    await backingOff;
    await env.redis.set(switchKeys(env.queue.prefix, env.queueName).lock('env0'), 'sw_other:1', 'PX', 60_000);
    await (await env.queue.queue.getJob(jobId))?.promote();

    const waiting = await env.reporter.waitFor(
      (p) => p.jobId === jobId && p.steps.some((s) => s.detail?.startsWith('Waiting') === true),
    );
    const [queued, , switching] = failed.steps;
    expect(waiting.steps).toEqual([
      queued,
      {
        step: 'validating',
        state: 'running',
        startedAt: expect.any(Number),
        detail: 'Waiting: another env0 switch is running (job sw_other).',
      },
      switching,
    ]);
    await env.redis.del(switchKeys(env.queue.prefix, env.queueName).lock('env0'));
    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 2 });
    expect(final?.steps.map((s) => [s.step, s.state])).toEqual([
      ['queued', 'done'],
      ['validating', 'done'],
      ['switching', 'done'],
      ['verifying', 'done'],
      ['done', 'done'],
    ]);
    expect(final?.steps[0]).toEqual(queued);
  });

  it('a reactivation an earlier run was on goes on while the platform still has its operation pending', async () => {
    const env = await setupJobs(cleanup);
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    // The earlier run asked for the rollback and died reactivating; the platform's first answers say
    // the operation is still pending.
    const ref = await env.local.rollback({
      environment: 'env0',
      targetId: plan.target.id,
      requestedBy: 'alice',
    });
    await env.redis.set(switchKeys(env.queue.prefix, env.queueName).operation(jobId), JSON.stringify(ref));
    const at = env.clock.now();
    await leftByEarlierRun(env, jobId, plan, [
      { step: 'queued', state: 'done', startedAt: at, endedAt: at },
      { step: 'validating', state: 'done', startedAt: at, endedAt: at },
      { step: 'reactivating', state: 'running', startedAt: at },
    ]);
    let reads = 0;
    const pastPending = deferred();
    await env.startWorker({
      platform: Object.assign(Object.create(env.platform) as DeployPlatform, {
        operation: async (r: OperationRef): Promise<OperationStatus> => {
          if (++reads <= 2) return { id: r.id, state: 'pending', updatedAt: env.clock.now() };
          pastPending.resolve();
          return env.platform.operation(r);
        },
      }),
    });
    await pastPending.promise;
    await env.reporter.waitFor((p) => p.jobId === jobId && p.steps[1]?.state === 'done');

    // While pending, then reactivating, the job shows the reactivation going on, not a switch.
    for (const p of env.reporter.of(jobId)) {
      expect(p.steps.map((s) => s.step)).toEqual(['queued', 'validating', 'reactivating']);
      expect(p.steps[2]).toMatchObject({ state: 'running', startedAt: at });
    }
    await env.clock.advance(REACTIVATION_MS);
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('succeeded');
    expect(final?.steps.find((s) => s.step === 'reactivating')).toMatchObject({
      state: 'done',
      startedAt: at,
      detail: RESUMED_AFTER_STALL_DETAIL,
    });
    expect(env.platform.switchCalls).toBe(0);
  });

  it('a resumed run shows one running step while it validates: the step the earlier run was on, not a second one', async () => {
    const env = await setupJobs(cleanup);
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    // The earlier run asked for the rollback, stored the operation and died reactivating.
    const ref = await env.local.rollback({
      environment: 'env0',
      targetId: plan.target.id,
      requestedBy: 'alice',
    });
    await env.redis.set(switchKeys(env.queue.prefix, env.queueName).operation(jobId), JSON.stringify(ref));
    const at = env.clock.now();
    await leftByEarlierRun(env, jobId, plan, [
      { step: 'queued', state: 'done', startedAt: at, endedAt: at },
      { step: 'validating', state: 'done', startedAt: at, endedAt: at },
      { step: 'reactivating', state: 'running', startedAt: at },
    ]);
    // The resumed run's validation waits on its platform read until its first state is seen.
    const validated = deferred();
    await env.startWorker({
      platform: Object.assign(Object.create(env.platform) as DeployPlatform, {
        snapshot: async (environment: string) => {
          await validated.promise;
          return env.platform.snapshot(environment);
        },
      }),
    });

    const validating = await env.reporter.waitFor((p) => p.jobId === jobId);
    validated.resolve();
    expect(validating.steps).toEqual([
      { step: 'queued', state: 'done', startedAt: at, endedAt: at },
      { step: 'validating', state: 'done', startedAt: at, endedAt: at },
      { step: 'reactivating', state: 'running', startedAt: at, detail: RESUMED_AFTER_STALL_DETAIL },
    ]);
    await env.reporter.waitFor((p) => p.jobId === jobId && p.steps[1]?.detail?.includes('Resuming') === true);
    await env.clock.advance(REACTIVATION_MS);
    const final = await env.queue.waitForEnd(jobId);

    expect(final?.outcome).toBe('succeeded');
    for (const p of env.reporter.of(jobId))
      expect(p.steps.filter((s) => s.state === 'running').length).toBeLessThanOrEqual(1);
    // Once validated, the resumed run's own `validating` is published, saying it follows the operation.
    expect(final?.steps.find((s) => s.step === 'validating')).toMatchObject({
      state: 'done',
      detail: `Resuming the rollback started by an earlier attempt (operation ${ref.id}).`,
    });
  });

  /**
   * `env.platform`, whose first operation read finds the platform unreachable (what the local
   * platform's client throws for a request that got no answer); meanwhile `meanwhile` runs, as the
   * platform goes on without the attempt watching.
   */
  function unreachableOnce(env: JobsEnv, meanwhile: () => Promise<void>): DeployPlatform {
    let reads = 0;
    return Object.assign(Object.create(env.platform) as DeployPlatform, {
      operation: async (ref: OperationRef): Promise<OperationStatus> => {
        if (++reads > 1) return env.platform.operation(ref);
        await meanwhile();
        throw new PlatformHttpError(
          0,
          'POST',
          'http://127.0.0.1:1/_switchyard/operations/status',
          undefined,
          'fetch failed',
          { retry: true, code: 'platform_unavailable' },
        );
      },
    });
  }

  const unreachable =
    'The platform could not be reached for a request (POST /_switchyard/operations/status).';

  it('a reactivation an attempt could not follow, which the platform finished meanwhile, reads done when the retry finds the switch done', async () => {
    const env = await setupJobs(cleanup);
    // The first attempt cannot read its operation; meanwhile the platform reactivates the target
    // and switches.
    await env.startWorker({
      platform: unreachableOnce(env, async () => {
        await env.clock.advance(REACTIVATION_MS);
        await env.local.settle();
      }),
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 2 });
    const first = env.reporter.of(jobId).find((p) => p.attempt === 1 && p.code !== undefined);
    const reactivating = first?.steps.find((s) => s.step === 'reactivating');
    expect(reactivating).toMatchObject({
      state: 'failed',
      detail: `${unreachable} (attempt 1 of 4; retrying)`,
    });
    // The same entry, from its start, done: what the first attempt met stays in its detail.
    expect(final?.steps.find((s) => s.step === 'reactivating')).toMatchObject({
      state: 'done',
      startedAt: reactivating?.startedAt,
      detail: `${unreachable} (attempt 1 of 4 could not follow it; the platform finished it)`,
    });
    expect(final?.steps.map((s) => [s.step, s.state])).toEqual([
      ['queued', 'done'],
      ['validating', 'done'],
      ['reactivating', 'done'],
      ['switching', 'skipped'],
      ['verifying', 'done'],
      ['done', 'done'],
    ]);
    expect(env.platform.switchCalls).toBe(1);
  });

  it('a reactivation an attempt could not follow goes on from its start when the retry finds the platform still on it, then reads done', async () => {
    const env = await setupJobs(cleanup);
    await env.startWorker({ platform: unreachableOnce(env, async () => undefined) });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const taken = await env.reporter.waitFor(
      (p) =>
        p.jobId === jobId &&
        p.attempt === 2 &&
        p.steps.some((s) => s.state === 'running' && s.step === 'reactivating'),
    );
    const first = env.reporter.of(jobId).find((p) => p.attempt === 1 && p.code !== undefined);
    const startedAt = first?.steps.find((s) => s.step === 'reactivating')?.startedAt;
    expect(taken.steps.find((s) => s.step === 'reactivating')).toEqual({
      step: 'reactivating',
      state: 'running',
      startedAt,
      detail: `${unreachable} (attempt 1 of 4 could not follow it; a later attempt took it up)`,
    });

    await env.clock.advance(REACTIVATION_MS);
    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 2 });
    expect(final?.steps.find((s) => s.step === 'reactivating')).toMatchObject({ state: 'done', startedAt });
    expect(final?.steps.map((s) => [s.step, s.state])).toEqual([
      ['queued', 'done'],
      ['validating', 'done'],
      ['reactivating', 'done'],
      ['switching', 'done'],
      ['verifying', 'done'],
      ['done', 'done'],
    ]);
    expect(env.platform.switchCalls).toBe(1);
  });

  it('a reactivation an attempt could not follow, whose operation the platform reports failed meanwhile, stays failed', async () => {
    const env = await setupJobs(cleanup);
    // While the first attempt cannot read its operation, a push goes live on env0: the platform
    // fails the rollback (the environment moved under it).
    await env.startWorker({
      platform: unreachableOnce(env, async () => {
        await env.local.push({ environment: 'env0' });
        await env.clock.advance(3_000);
        await env.clock.advance(REACTIVATION_MS);
        await env.local.settle();
      }),
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'stale', attempt: 2 });
    expect(final?.steps.find((s) => s.step === 'reactivating')).toMatchObject({
      state: 'failed',
      detail: `${unreachable} (attempt 1 of 4 failed; retried)`,
    });
    expect(env.platform.switchCalls).toBe(1);
  });

  it('a reactivation whose request got no answer, which the platform did, reads done when the retry finds the switch done', async () => {
    const env = await setupJobs(cleanup);
    // The platform reactivates the target and switches; the answer to the request times out.
    const { platform, calls } = lostAnswers(env, [rollbackFault(408)], {
      meanwhile: async () => {
        await env.clock.advance(REACTIVATION_MS);
        await env.local.settle();
      },
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 2 });
    const first = env.reporter.of(jobId).find((p) => p.attempt === 1 && p.code !== undefined);
    const said = 'The platform answered 408 Request Timeout to the rollback request.';
    const reactivating = first?.steps.find((s) => s.step === 'reactivating');
    expect(reactivating).toMatchObject({
      state: 'failed',
      detail: `${said} (attempt 1 of 4; retrying)`,
      failure: 'unanswered',
    });
    // The same entry, from its start, done: what the first attempt met stays in its detail.
    expect(final?.steps.find((s) => s.step === 'reactivating')).toMatchObject({
      state: 'done',
      startedAt: reactivating?.startedAt,
      detail: `${said} (attempt 1 of 4: the request failed, but the platform did it)`,
    });
    expect(final?.steps.map((s) => [s.step, s.state])).toEqual([
      ['queued', 'done'],
      ['validating', 'done'],
      ['reactivating', 'done'],
      ['switching', 'skipped'],
      ['verifying', 'done'],
      ['done', 'done'],
    ]);
    expect(calls()).toBe(1);
  });

  it("a reactivation whose retried request the platform refused stays failed, though the first request's switch landed", async () => {
    const env = await setupJobs(cleanup);
    // The first request's answer times out before the platform is done; the retry asks again and is
    // refused (429), while the platform finishes the first request's switch.
    const { platform, calls } = lostAnswers(
      env,
      [
        rollbackFault(408),
        new PlatformHttpError(429, 'POST', 'http://platform.test/rollback', 'rate_limited', 'slow down'),
      ],
      {
        meanwhile: async (call) => {
          if (call < 2) return;
          await env.clock.advance(REACTIVATION_MS);
          await env.local.settle();
        },
      },
    );
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 3 });
    expect(final?.steps.find((s) => s.step === 'reactivating')).toMatchObject({
      state: 'failed',
      detail:
        'The platform answered 429 Too Many Requests (rate_limited) to the rollback request. (attempt 2 of 4 failed; retried)',
    });
    expect(calls()).toBe(2);
  });

  it("a reactivation whose retried request's operation the platform reports failed stays failed; the first request's switch, which landed, is the job's own", async () => {
    const env = await setupJobs(cleanup);
    const failed: OperationRef = {
      id: 'op_failed',
      action: 'rollback',
      environment: 'env0',
      targetId: seedIds(0).standby,
      startedAt: env.clock.now(),
    };
    // The first request's answer times out before the platform is done; the retry asks again and
    // gets an operation the platform reports failed, while it finishes the first request's switch.
    const { platform: lost, calls } = lostAnswers(env, [rollbackFault(408)]);
    let requests = 0;
    const platform: DeployPlatform = Object.assign(Object.create(lost) as DeployPlatform, {
      rollback: async (r: SwitchRequest): Promise<OperationRef> => {
        requests++;
        if (calls() === 0) return lost.rollback(r);
        await env.clock.advance(REACTIVATION_MS);
        await env.local.settle();
        return failed;
      },
      operation: async (ref: OperationRef): Promise<OperationStatus> =>
        ref.id === failed.id
          ? {
              id: ref.id,
              state: 'failed',
              updatedAt: env.clock.now(),
              error: { code: 'switch_failed', message: 'the switch failed', retryable: true },
            }
          : env.platform.operation(ref),
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    // The switch found is the first request's, this job's own: never "another switch, not this one".
    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 3 });
    expect(final?.message).not.toContain('not this one');
    expect(final?.steps.find((s) => s.step === 'reactivating')).toMatchObject({
      state: 'failed',
      detail: `The platform could not rollback env0 to ${seedIds(0).standby}: the switch failed (switch_failed). (attempt 2 of 4 failed; retried)`,
    });
    expect(final?.steps.find((s) => s.step === 'switching')).toMatchObject({
      state: 'skipped',
      detail: expect.stringContaining('an earlier attempt did it'),
    });
    // Nothing asked a third time.
    expect(requests).toBe(2);
  });

  /**
   * Runs a job whose earlier attempt failed its reactivation with `failed` (its switch request got no
   * usable answer, so only the started marker is stored) while the platform did that switch; returns
   * the job's final state.
   */
  async function retriedAfterFailedReactivation(
    env: JobsEnv,
    failed: Pick<StepRecord, 'detail' | 'failure'>,
  ): Promise<Progress | undefined> {
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const data = jobData(plan, env.clock.now());
    const { jobId } = await env.queue.enqueue(data);
    const at = env.clock.now();
    await leftByEarlierRun(env, jobId, plan, [
      { step: 'queued', state: 'done', startedAt: at, endedAt: at },
      { step: 'validating', state: 'done', startedAt: at, endedAt: at },
      { step: 'reactivating', state: 'failed', startedAt: at, endedAt: at, ...failed },
    ]);
    await env.redis.set(
      switchKeys(env.queue.prefix, env.queueName).operation(jobId),
      JSON.stringify({ started: 'earlier-attempt', at }),
    );
    // The earlier request, sent as the job sends it (its requester's display name): the local
    // platform records who asked, and a switch by anyone else is not this job's.
    await env.local.rollback({
      environment: 'env0',
      targetId: plan.target.id,
      requestedBy: data.requestedBy.displayName,
    });
    await env.clock.advance(REACTIVATION_MS);
    await env.local.settle();
    await env.startWorker();
    return env.queue.waitForEnd(jobId);
  }

  it('a step whose request got no answer is told by its stored failure kind, whatever its sentence says', async () => {
    const env = await setupJobs(cleanup);
    const said = 'No answer came back for the rollback request (reworded).';

    const final = await retriedAfterFailedReactivation(env, {
      detail: `${said} (attempt 1 of 4; retrying)`,
      failure: 'unanswered',
    });

    expect(final?.outcome).toBe('succeeded');
    expect(final?.steps.find((s) => s.step === 'reactivating')).toMatchObject({
      state: 'done',
      detail: `${said} (attempt 1 of 4: the request failed, but the platform did it)`,
    });
    expect(final?.steps.find((s) => s.step === 'reactivating')?.failure).toBeUndefined();
    // The resumed job asked the platform nothing: the switch found is the earlier request's.
    expect(env.platform.switchCalls).toBe(0);
  });

  it("a refused request stays failed by its stored failure kind, though its sentence reads like a lost answer's", async () => {
    const env = await setupJobs(cleanup);
    const said = 'The platform answered 503 Service Unavailable to the rollback request.';

    const final = await retriedAfterFailedReactivation(env, {
      detail: `${said} (attempt 1 of 4; retrying)`,
      failure: 'refused',
    });

    expect(final?.outcome).toBe('succeeded');
    expect(final?.steps.find((s) => s.step === 'reactivating')).toMatchObject({
      state: 'failed',
      failure: 'refused',
      detail: `${said} (attempt 1 of 4 failed; retried)`,
    });
  });

  it('a step written without a failure kind (by an older worker) is still told by its sentence', async () => {
    const env = await setupJobs(cleanup);
    const said = 'The platform did not answer the rollback request in time.';

    const final = await retriedAfterFailedReactivation(env, { detail: `${said} (attempt 1 of 4; retrying)` });

    expect(final?.outcome).toBe('succeeded');
    expect(final?.steps.find((s) => s.step === 'reactivating')).toMatchObject({
      state: 'done',
      detail: `${said} (attempt 1 of 4: the request failed, but the platform did it)`,
    });
  });

  it('a job given up after too many stalls while a resumed run validated leaves no step running', async () => {
    const env = await setupJobs(cleanup);
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    // The last run was validating while the reactivation an earlier run followed still ran (both
    // running), and its worker stopped answering once too often.
    const at = env.clock.now();
    await leftByEarlierRun(env, jobId, plan, [
      { step: 'queued', state: 'done', startedAt: at, endedAt: at },
      { step: 'validating', state: 'running', startedAt: at },
      { step: 'reactivating', state: 'running', startedAt: at, detail: RESUMED_AFTER_STALL_DETAIL },
    ]);
    await env.redis.hset(env.queue.queue.toKey(jobId), 'stc', String(MAX_STALLS + 1));
    await env.startWorker();

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'failed', code: 'job_stalled' });
    expect(final?.steps.map((s) => [s.step, s.state])).toEqual([
      ['queued', 'done'],
      ['validating', 'failed'],
      ['reactivating', 'failed'],
    ]);
  });

  it("takes up no progress that does not parse, nor another job's: the job starts afresh", async () => {
    const env = await setupJobs(cleanup);
    const unreadable = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const other = await planFor(env.local, 'env1', 'rollback', env.clock.now());
    const j1 = await env.queue.enqueue(jobData(unreadable, env.clock.now()));
    const j2 = await env.queue.enqueue(jobData(other, env.clock.now()));
    await (await env.queue.queue.getJob(j1.jobId))?.updateProgress({
      jobId: j1.jobId,
      planId: unreadable.id,
      steps: 'verifying',
    });
    // Another job's steps (a job id reused by hand, an old record): a running verification.
    const at = env.clock.now() - 60_000;
    await leftByEarlierRun(env, j2.jobId, other, [
      { step: 'queued', state: 'done', startedAt: at, endedAt: at },
      { step: 'validating', state: 'done', startedAt: at, endedAt: at },
      { step: 'verifying', state: 'running', startedAt: at },
    ]);
    const job2 = await env.queue.queue.getJob(j2.jobId);
    await job2?.updateProgress({ ...(job2.progress as Progress), jobId: 'sw_someone_else' });
    await env.startWorker();

    for (const jobId of [j1.jobId, j2.jobId]) {
      const final = await env.queue.waitForEnd(jobId);
      expect(final?.outcome).toBe('succeeded');
      expect(final?.steps.map((s) => s.step)).toEqual([
        'queued',
        'validating',
        'switching',
        'verifying',
        'done',
      ]);
      expect(final?.steps.find((s) => s.step === 'verifying')?.startedAt).not.toBe(at);
    }
  });
});
