/**
 * Switch jobs end to end in one process: real Redis, a fresh queue per test, the real LocalPlatform.
 * Covers the exact progress sequence (running and standby targets), stale plans (a target made live by
 * another switch included), refusals and 4xx as non-retryable, retry-then-success, a stored operation
 * that cannot be read for a while or is unknown, the audit trail (with many domains too) and metrics,
 * a platform 408 as retryable, jobs waiting for their environment (woken by a release, never out of a
 * retry's backoff, and no waiter any more once they ran), and graceful shutdown (finish, or hand back
 * with a neutral state and resume the same platform operation without a second switch, audited as
 * resumed; a stuck chat reporter cannot hold the worker's close up), and jobs whose data the schema
 * refuses (ended without running, saying what an earlier attempt of the job asked the platform for).
 */
import { Job } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { HANDED_BACK_DETAIL, RESUMED_AFTER_HAND_BACK_DETAIL } from '../../jobs/switch-processor.js';
import type { SwitchWorker } from '../../jobs/switch-worker.js';
import { AUDIT_MESSAGE_MAX, AuditLog } from '../../src/audit.js';
import { type Clock, ManualClock, systemClock } from '../../src/clock.js';
import { type Plan, SWITCH_HOSTNAME_EXPECTED } from '../../src/domain/plan.js';
import { PlatformHttpError, RefusalError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { JsonHttpClient } from '../../src/platform/http-client.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import type {
  DeployPlatform,
  OperationRef,
  OperationStatus,
  SwitchRequest,
} from '../../src/platform/port.js';
import type { MessageRef, Progress } from '../../src/progress.js';
import { EnvironmentLock, jobIdForPlan, queuedProgress, SwitchQueue, switchKeys } from '../../src/queue.js';
import { createRedis } from '../../src/redis.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { openTestQueue, QUICK_RETRIES, startTestWorker } from '../support/switch-worker.js';
import {
  Cleanup,
  deferred,
  jobData,
  planFor,
  RecordingReporter,
  timeoutGuard,
  transitions,
} from './fixtures/harness.js';
import { type LogLine, LogLines } from './fixtures/logs.js';
import { jobsSeed, seedDomains, seedIds } from './fixtures/seed.js';
import { type JobsEnv, REACTIVATION_MS, setupJobs } from './fixtures/setup.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

async function rollbacksOn(env: JobsEnv, environment: string): Promise<number> {
  const snap = await env.local.snapshot(environment);
  return snap.liveHistory.filter((h) => h.via === 'rollback').length;
}

async function startedMessages(env: JobsEnv, environment: string): Promise<(string | undefined)[]> {
  return (await env.audit.recent(environment, 50))
    .filter((e) => e.event === 'started')
    .map((e) => e.message)
    .reverse();
}

/**
 * The system clock, moved forward by `step()`: time a platform call took, without waiting for it (the
 * worker's sleeps are real ones).
 */
class SteppingClock implements Clock {
  private offset = 0;
  now(): number {
    return Date.now() + this.offset;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return systemClock.sleep(ms, signal);
  }
  step(ms: number): void {
    this.offset += ms;
  }
}

/** `inner`, whose next `failures` snapshots each take `ms` of `clock` time and then answer 503. */
function slowFailingSnapshots(
  inner: DeployPlatform,
  clock: SteppingClock,
  failures: number,
  ms: number,
): DeployPlatform {
  let left = failures;
  return Object.assign(Object.create(inner) as DeployPlatform, {
    snapshot: async (environment: string) => {
      if (left <= 0) return inner.snapshot(environment);
      left--;
      clock.step(ms);
      throw new PlatformHttpError(503, 'GET', 'http://platform.test/snapshot', undefined, 'unavailable');
    },
  });
}

/** The log lines of one job, as `<level> <outcome>/<code>[ with err]: <message start>`. */
function endLines(lines: readonly LogLine[], jobId: string): string[] {
  return lines
    .filter((l) => l.jobId === jobId && l.outcome !== undefined)
    .map(
      (l) =>
        `${l.levelName} ${String(l.outcome)}/${String(l.code)}${l.err === undefined ? '' : ' with err'}: ${l.msg.slice(0, 30)}`,
    );
}

async function jobCount(env: JobsEnv, value: string): Promise<number> {
  const m = await env.metrics.jobs.get();
  return m.values.filter((v) => v.labels.outcome === value).reduce((n, v) => n + v.value, 0);
}

describe('switch job', () => {
  it('rolls back through the exact progress sequence and verifies every domain', async () => {
    const env = await setupJobs(cleanup);
    await env.startWorker();
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    expect(plan.target.id).toBe(seedIds(0).previous);

    const { jobId, joined } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    expect(joined).toBe(false);
    const final = await env.queue.waitForEnd(jobId);

    expect(final?.outcome).toBe('succeeded');
    expect(transitions(env.reporter.of(jobId))).toEqual([
      'queued:done',
      'validating:running',
      'validating:done',
      'switching:running',
      'switching:done',
      'verifying:running',
      'verifying:done',
      'done:done',
    ]);
    expect(final?.steps.map((s) => s.step)).toEqual([
      'queued',
      'validating',
      'switching',
      'verifying',
      'done',
    ]);
    // The target was running: every state from validation on says reactivation does not apply.
    for (const p of env.reporter.of(jobId)) {
      if (p.steps.some((s) => s.step === 'switching')) expect(p.targetStandby).toBe(false);
    }
    expect(final?.targetStandby).toBe(false);
    for (const s of final?.steps ?? []) {
      expect(s.endedAt).toBeGreaterThanOrEqual(s.startedAt);
    }
    expect(final?.traffic).toEqual(
      seedDomains(0).map((hostname) => ({ hostname, deploymentId: plan.target.id, ok: true })),
    );
    expect(final?.message).toContain(`Rolled back env0 to ${plan.target.id}`);
    expect(final?.message).toContain('app.env0.test → ');
    // The Reporter got the chat message ref; BullMQ progress holds the same final object.
    expect(env.reporter.reports.at(-1)?.messages).toEqual([
      { surface: 'console', channel: 'ops', messageId: 'm-1' },
    ]);
    expect(env.reporter.of(jobId).at(-1)).toEqual(final);

    const snap = await env.local.snapshot('env0');
    expect(snap.environment.currentDeploymentId).toBe(plan.target.id);
    expect(snap.environment.rolledBack).toBe(true);
    expect(await rollbacksOn(env, 'env0')).toBe(1);

    const audit = await env.audit.recent('env0', 10);
    expect(audit.map((a) => a.event)).toEqual(['succeeded', 'started', 'requested']);
    expect(audit[0]).toMatchObject({
      jobId,
      planId: plan.id,
      targetId: plan.target.id,
      actor: { userId: 'u-alice' },
    });
    expect(await jobCount(env, 'succeeded')).toBe(1);
    const hist = await env.metrics.switchDuration.get();
    expect(hist.values.find((v) => v.metricName?.endsWith('_count'))?.value).toBe(1);
  });

  it('reports reactivating when the target is in standby, and only then', async () => {
    const env = await setupJobs(cleanup);
    await env.startWorker();
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    expect(plan.targetStandby).toBe(true);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    // The platform holds the target in reactivation until its clock moves.
    expect(await rollbacksOn(env, 'env0')).toBe(0);
    await env.clock.advance(REACTIVATION_MS);
    const final = await env.queue.waitForEnd(jobId);

    expect(final?.outcome).toBe('succeeded');
    expect(transitions(env.reporter.of(jobId))).toEqual([
      'queued:done',
      'validating:running',
      'validating:done',
      'reactivating:running',
      'reactivating:done',
      'switching:running',
      'switching:done',
      'verifying:running',
      'verifying:done',
      'done:done',
    ]);
    // From the reactivating step on, the progress says the target was in standby.
    for (const p of env.reporter.of(jobId)) {
      if (p.steps.some((s) => s.step === 'reactivating')) expect(p.targetStandby).toBe(true);
    }
    expect(final?.targetStandby).toBe(true);
    expect(final?.traffic.every((t) => t.deploymentId === plan.target.id && t.ok)).toBe(true);
  });

  it('gives a message attached while the switch runs every later state, the final one included', async () => {
    const env = await setupJobs(cleanup);
    await env.startWorker();
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);

    // Another surface starts following while the target is being reactivated.
    const slackRef = { surface: 'slack', channel: 'C9', messageId: '1700000000.000900' } as const;
    expect(await env.queue.addMessages(jobId, [slackRef])).toBe(true);
    await env.clock.advance(REACTIVATION_MS);
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('succeeded');
    // The attached message may get the final state just after the job completes: wait for it.
    await env.reporter.waitForReport(
      (r) => r.progress.outcome === 'succeeded' && r.messages.some((m) => m.messageId === slackRef.messageId),
    );
    const toSlack = env.reporter.reports.filter((r) =>
      r.messages.some((m) => m.messageId === slackRef.messageId),
    );
    expect(toSlack.at(-1)?.progress).toEqual(final);
    // The message the job started with got the final state exactly once.
    const toConsole = env.reporter.reports.filter(
      (r) => r.progress.outcome === 'succeeded' && r.messages.some((m) => m.messageId === 'm-1'),
    );
    expect(toConsole).toHaveLength(1);
    // progress() of the completed job is its final state.
    expect(await env.queue.progress(jobId)).toEqual(final);
  });

  it('promotes after a rollback, and a promote that only resumes deploys verifies nothing', async () => {
    const env = await setupJobs(cleanup);
    await env.startWorker();
    const rb = await planFor(env.local, 'env1', 'rollback', env.clock.now());
    const first = await env.queue.enqueue(jobData(rb, env.clock.now()));
    expect((await env.queue.waitForEnd(first.jobId))?.outcome).toBe('succeeded');

    // Promote the rolled-back current deployment: no domain moves, automatic deploys resume.
    const resume = await planFor(env.local, 'env1', 'promote', env.clock.now(), rb.target.id);
    expect(resume.resumesAutoDeploys).toBe(true);
    const second = await env.queue.enqueue(jobData(resume, env.clock.now()));
    const final = await env.queue.waitForEnd(second.jobId);
    expect(final?.outcome).toBe('succeeded');
    expect(final?.traffic).toEqual([]);
    expect(final?.message).toContain('Automatic deploys resume');
    // Only this promote leaves the same deployment live.
    expect(final?.message).toContain(`${rb.target.id} stays live and no domain moved.`);
    expect((await env.local.snapshot('env1')).environment.rolledBack).toBe(false);
  });

  it('a switch that moves no domain still says its target became the current deployment', async () => {
    const clock = new ManualClock();
    const seed = jobsSeed(1, clock.now()) as { domains: unknown[] };
    seed.domains = []; // production with no live or environment domain (only per-deployment URLs)
    const local = await LocalPlatform.open({ clock, seed, maintenance: false, reactivationTimeMs: 10 });
    cleanup.add(() => local.close());
    const queueName = uniqueName('switch-no-domain');
    const queue = await openTestQueue(cleanup, {
      queueName,
      retry: { attempts: 1, baseDelayMs: 5, maxDelayMs: 20 },
    });
    await startTestWorker(cleanup, {
      queueName,
      platform: local,
      reporter: new RecordingReporter(),
      ...QUICK_RETRIES,
    });
    const ids = seedIds(0);

    const rb = await planFor(local, 'env0', 'rollback', clock.now());
    expect(rb.target.id).toBe(ids.previous);
    expect(rb.affectedDomains).toEqual([]);
    const rolledBack = await queue.waitForEnd((await queue.enqueue(jobData(rb, clock.now()))).jobId);
    expect(rolledBack?.outcome).toBe('succeeded');
    expect((await local.snapshot('env0')).environment.currentDeploymentId).toBe(ids.previous);
    // It was not live before this rollback: it did not "stay" live.
    expect(rolledBack?.message).toBe(
      `Rolled back env0: ${ids.previous} is now the current deployment; no domain moved (env0 has no domain that follows it). Automatic deploys are paused until a deployment is promoted.`,
    );

    // A promote of another deployment than the current one, the one rolled back from, likewise.
    const pr = await planFor(local, 'env0', 'promote', clock.now(), ids.current);
    expect(pr.affectedDomains).toEqual([]);
    const promoted = await queue.waitForEnd((await queue.enqueue(jobData(pr, clock.now()))).jobId);
    expect(promoted?.outcome).toBe('succeeded');
    expect((await local.snapshot('env0')).environment.currentDeploymentId).toBe(ids.current);
    expect(promoted?.message).toBe(
      `Promoted env0: ${ids.current} is now the current deployment; no domain moved (env0 has no domain that follows it). Automatic deploys resume with the next successful deployment.`,
    );
  });

  it('ends a plan made stale by another switch as plan_stale, without switching', async () => {
    const env = await setupJobs(cleanup);
    const lines = new LogLines();
    await env.startWorker({ logger: createLogger({ level: 'info', pretty: false, destination: lines }) });
    const now = env.clock.now();
    const a = await planFor(env.local, 'env0', 'rollback', now);
    const b = await planFor(env.local, 'env0', 'rollback', now, seedIds(0).standby);
    const ja = await env.queue.enqueue(jobData(a, now));
    expect((await env.queue.waitForEnd(ja.jobId))?.outcome).toBe('succeeded');

    const jb = await env.queue.enqueue(jobData(b, now));
    const final = await env.queue.waitForEnd(jb.jobId);
    expect(final?.outcome).toBe('stale');
    expect(final?.code).toBe('plan_stale');
    expect(final?.message).toContain(`now serves ${a.target.id}`);
    expect(transitions(env.reporter.of(jb.jobId))).toEqual([
      'queued:done',
      'validating:running',
      'validating:failed',
    ]);
    const job = await env.queue.queue.getJob(jb.jobId);
    expect(job?.failedReason).toMatch(/^plan_stale: Traffic moved/);
    expect(job?.attemptsMade).toBe(1);
    expect(env.platform.switchCalls).toBe(1);
    expect(await rollbacksOn(env, 'env0')).toBe(1);
    expect((await env.audit.recent('env0', 1))[0]).toMatchObject({ event: 'refused', code: 'plan_stale' });
    expect(await jobCount(env, 'stale')).toBe(1);
    // An expected end: said at info, in words, without a stack trace; nothing of the job at warn.
    expect(endLines(lines.parsed, jb.jobId)).toEqual([
      'info stale/plan_stale: Traffic moved since this plan ',
    ]);
    expect(lines.parsed.filter((l) => l.jobId === jb.jobId && l.level >= 40)).toEqual([]);
  });

  it('ends a job queued for another project (the platform or project changed in the config since) as stale, saying so, not "traffic moved"', async () => {
    const env = await setupJobs(cleanup);
    await env.startWorker();
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    const project = (await env.local.snapshot('env0')).project.id;
    // Made on another platform: its deployment ids may even differ from this one's current.
    const data = { ...jobData(plan, now), projectId: 'proj_gone', expectedCurrent: 'dep_elsewhere' };
    const { jobId } = await env.queue.enqueue(data);
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('stale');
    expect(final?.code).toBe('plan_stale');
    expect(final?.message).toMatch(
      new RegExp(
        `^This plan was made for project proj_gone; Switchyard now acts on project ${project}.* on the ${env.platform.name} platform`,
      ),
    );
    expect(final?.message).not.toContain('Traffic moved');
    expect(env.platform.switchCalls).toBe(0);
  });

  it('ends as stale, without switching, when the domains that would move are not those the plan showed', async () => {
    const env = await setupJobs(cleanup);
    await env.startWorker();
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    const data = jobData(plan, now);
    const [kept, ...others] = data.domains;
    expect(others.length).toBeGreaterThan(0);
    // What the approvers saw: one domain (the others were added to the environment since).
    const { jobId } = await env.queue.enqueue({ ...data, domains: kept === undefined ? [] : [kept] });
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('stale');
    expect(final?.code).toBe('plan_stale');
    expect(final?.message).toBe(
      `env0 changed since this plan was made: the rollback would now also move ${[...others].sort().join(', ')}. Ask for a fresh plan. env0 is serving ${seedIds(0).current}. Nothing was done.`,
    );
    expect(env.platform.switchCalls).toBe(0);
    expect(await rollbacksOn(env, 'env0')).toBe(0);
    expect((await env.audit.recent('env0', 1))[0]).toMatchObject({ event: 'refused', code: 'plan_stale' });
  });

  it('fails at once, without retrying, on a refusal and on a platform 4xx', async () => {
    const env = await setupJobs(cleanup, {
      faults: {
        switchErrors: [
          new PlatformHttpError(
            404,
            'POST',
            'http://platform.test/v2/deployments.rollbackDeployment',
            'deployment_not_found',
            'not found',
            {},
          ),
        ],
      },
    });
    const lines = new LogLines();
    await env.startWorker({ logger: createLogger({ level: 'info', pretty: false, destination: lines }) });
    const now = env.clock.now();

    // A 4xx from the platform: non-retryable, the job fails on its first attempt.
    const p0 = await planFor(env.local, 'env0', 'rollback', now);
    const j0 = await env.queue.enqueue(jobData(p0, now));
    const f0 = await env.queue.waitForEnd(j0.jobId);
    expect(f0?.outcome).toBe('failed');
    expect(f0?.code).toBe('platform_http');
    expect(f0?.message).toContain(
      'The platform answered 404 Not Found (deployment_not_found) to the rollback request.',
    );
    expect(f0?.message).not.toContain('may still complete');
    expect(f0?.message).toContain(`env0 is serving ${seedIds(0).current}`);
    expect((await env.queue.queue.getJob(j0.jobId))?.attemptsMade).toBe(1);

    // A refusal: the target was stopped after the plan was made.
    const p1 = await planFor(env.local, 'env1', 'rollback', now, seedIds(1).standby);
    await env.local.stop(seedIds(1).standby);
    const j1 = await env.queue.enqueue(jobData(p1, now));
    const f1 = await env.queue.waitForEnd(j1.jobId);
    expect(f1?.outcome).toBe('refused');
    expect(f1?.code).toBe('target_stopped');
    const job1 = await env.queue.queue.getJob(j1.jobId);
    expect(job1?.failedReason).toMatch(/^target_stopped: /);
    expect(job1?.attemptsMade).toBe(1);
    expect(env.platform.switchCalls).toBe(1);
    expect(await rollbacksOn(env, 'env0')).toBe(0);
    expect(await rollbacksOn(env, 'env1')).toBe(0);
    // A failure is a warning with what failed (its stack too); a refusal an expected end, at info.
    expect(endLines(lines.parsed, j0.jobId)).toEqual([
      'warn failed/platform_http with err: The platform answered 404 Not ',
    ]);
    expect(endLines(lines.parsed, j1.jobId)).toEqual([
      `info refused/target_stopped: ${f1?.message?.slice(0, 30)}`,
    ]);
  });

  it('retries a 5xx and "operation in progress" with backoff and then succeeds', async () => {
    const env = await setupJobs(cleanup, {
      faults: {
        switchErrors: [
          new PlatformHttpError(503, 'POST', 'http://platform.test/rollback', undefined, 'unavailable'),
          new RefusalError({
            code: 'operation_in_progress',
            message: 'another switch of env0 is in progress',
          }),
        ],
      },
    });
    await env.startWorker();
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);

    expect(final?.outcome).toBe('succeeded');
    expect(final?.attempt).toBe(3);
    const reports = env.reporter.of(jobId);
    // Each attempt's failure (a later attempt shows it too, as what happened, until it switches).
    const failedAttempts = reports.filter(
      (p) => p.code !== undefined && p.steps.some((s) => s.step === 'switching' && s.state === 'failed'),
    );
    expect(new Set(failedAttempts.map((p) => p.attempt))).toEqual(new Set([1, 2]));
    expect(failedAttempts[0]?.steps.at(-1)?.detail).toContain('retrying');
    expect(env.platform.switchCalls).toBe(3);
    expect(await rollbacksOn(env, 'env0')).toBe(1);
    // BullMQ counts the successful attempt too.
    expect((await env.queue.queue.getJob(jobId))?.attemptsMade).toBe(3);
  });

  it('counts the duration of a retried switch from its first attempt: every attempt and backoff', async () => {
    const env = await setupJobs(cleanup);
    const clock = new SteppingClock();
    // Two attempts each spend 30 s on a platform that then answers 503; the third switches.
    await env.startWorker({ clock, platform: slowFailingSnapshots(env.platform, clock, 2, 30_000) });
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    const { jobId } = await env.queue.enqueue(jobData(plan, now));
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('succeeded');
    expect(final?.attempt).toBe(3);
    const observed = (await env.metrics.switchDuration.get()).values.filter(
      (v) => v.labels.action === 'rollback' && v.labels.outcome === 'succeeded',
    );
    expect(observed.find((v) => v.metricName?.endsWith('_count'))?.value).toBe(1);
    // At least the 60 s the first two attempts took (the last one alone took well under a second).
    expect(observed.find((v) => v.metricName?.endsWith('_sum'))?.value).toBeGreaterThanOrEqual(60);
    expect(observed.find((v) => v.metricName?.endsWith('_sum'))?.value).toBeLessThan(120);
  });

  it('gives up after the last attempt of a retryable failure with outcome failed', async () => {
    const err = () =>
      new PlatformHttpError(503, 'POST', 'http://platform.test/rollback', undefined, 'unavailable');
    const env = await setupJobs(cleanup, { attempts: 2, faults: { switchErrors: [err(), err(), err()] } });
    await env.startWorker();
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('failed');
    expect(final?.attempt).toBe(2);
    expect(final?.code).toBe('platform_http');
    expect(env.platform.switchCalls).toBe(2);
  });
});

describe('switch job edge cases', () => {
  it('wakes a plan waiting for its environment as soon as the running switch releases it', async () => {
    const env = await setupJobs(cleanup);
    // A one-minute re-check delay: only the release wake-up can finish this test in time.
    await env.startWorker({ lockRetryMs: 60_000 });
    const now = env.clock.now();
    const slow = await planFor(env.local, 'env0', 'rollback', now, seedIds(0).standby);
    const competing = await planFor(env.local, 'env0', 'rollback', now);
    const j1 = await env.queue.enqueue(jobData(slow, now));
    await env.reporter.waitFor((p) => p.jobId === j1.jobId && p.operationId !== undefined);
    const j2 = await env.queue.enqueue(jobData(competing, now));
    const waiting = await env.reporter.waitFor(
      (p) => p.jobId === j2.jobId && p.steps[0]?.detail?.startsWith('Waiting') === true,
    );
    expect(waiting.steps[0]?.detail).toContain(j1.jobId);
    await env.clock.advance(REACTIVATION_MS);
    expect((await env.queue.waitForEnd(j1.jobId))?.outcome).toBe('succeeded');
    const second = await env.queue.waitForEnd(j2.jobId);
    expect(second?.outcome).toBe('stale');
    expect(env.platform.switchCalls).toBe(1);
  });

  it('fails with verify_timeout naming where each domain is answered from when traffic does not follow', async () => {
    const env = await setupJobs(cleanup);
    // Fault: the live domain keeps answering from the old deployment (e.g. a stale edge cache).
    const stuck = seedDomains(0)[0] ?? '';
    const platform = {
      ...env.platform,
      probe: async (hostname: string) =>
        hostname === stuck
          ? { hostname, status: 200, deploymentId: seedIds(0).current }
          : env.local.probe(hostname),
    };
    await env.startWorker({ platform, verify: { timeoutMs: 100, intervalMs: 5 } });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('failed');
    expect(final?.code).toBe('verify_timeout');
    expect(final?.traffic).toEqual([
      { hostname: stuck, deploymentId: seedIds(0).current, ok: false },
      { hostname: seedDomains(0)[1], deploymentId: plan.target.id, ok: true },
    ]);
    expect(final?.message).toContain(`${stuck} → ${seedIds(0).current}`);
    expect(final?.message).toContain(`env0 is serving ${plan.target.id}`);
    expect(final?.steps.at(-1)).toMatchObject({ step: 'verifying', state: 'failed' });
  });

  it('keeps switching when the reporter throws', async () => {
    const env = await setupJobs(cleanup);
    await env.startWorker({
      reporter: {
        report: async () => {
          throw new Error('chat API down');
        },
      },
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    expect((await env.queue.waitForEnd(jobId))?.outcome).toBe('succeeded');
  });

  it('ends as stale, truthfully, when the target was made live by another switch, not by this job', async () => {
    const env = await setupJobs(cleanup);
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    // Before this plan's turn, someone rolls env0 back to the same target on the platform itself.
    const moved = new Promise<void>((resolve) => {
      const off = env.local.subscribe((e) => {
        if (e.type === 'traffic.moved' && e.to === plan.target.id) {
          off();
          resolve();
        }
      });
    });
    await env.local.rollback({ environment: 'env0', targetId: plan.target.id, requestedBy: 'Bob' });
    await moved;

    await env.startWorker();
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('stale');
    expect(final?.code).toBe('plan_stale');
    expect(final?.message).toBe(
      `Traffic moved since this plan was made: env0 now serves ${plan.target.id} (rolled back), the target of this rollback, through another switch, not this one. env0 is serving ${plan.target.id} (rolled back: automatic deploys paused). Nothing was done.`,
    );
    expect(final?.steps.some((s) => s.step === 'switching')).toBe(false);
    expect(env.platform.switchCalls).toBe(0);
    expect((await env.audit.recent('env0', 1))[0]).toMatchObject({ event: 'refused', code: 'plan_stale' });
  });

  it('keeps a stored operation it cannot read for a moment (503) and follows it, never starting a second switch', async () => {
    const env = await setupJobs(cleanup, { attempts: 6 });
    let reads = 0;
    let readableNow!: () => void;
    const readable = new Promise<void>((resolve) => {
      readableNow = resolve;
    });
    // The platform's operation endpoint answers 503 twice: the first attempt's first poll, and the
    // second attempt's read of the operation the first one started.
    await env.startWorker({
      platform: {
        ...env.platform,
        operation: (ref: OperationRef): Promise<OperationStatus> => {
          reads++;
          if (reads <= 2) {
            return Promise.reject(
              new PlatformHttpError(503, 'POST', 'http://platform.test/op', undefined, 'unavailable'),
            );
          }
          readableNow();
          return env.local.operation(ref);
        },
      },
    });
    // Standby target: the operation stays in `reactivating` until the platform's clock moves.
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    await Promise.race([readable, env.queue.waitForEnd(jobId)]);
    await env.clock.advance(REACTIVATION_MS);
    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 3 });
    const second = env.reporter.of(jobId).find((p) => p.attempt === 2 && p.code !== undefined);
    expect(second?.steps.find((s) => s.step === 'validating')?.detail).toContain(
      'it is kept and followed once the platform answers',
    );
    expect(env.platform.switchCalls).toBe(1);
    expect(await rollbacksOn(env, 'env0')).toBe(1);
  });

  it('the last attempt that cannot read the stored operation words the platform error and promises no follow-up', async () => {
    const env = await setupJobs(cleanup, { attempts: 3 });
    // The platform accepts the rollback, then its operation endpoint answers 503 for longer than the
    // job's attempts last.
    const unavailable = () =>
      new PlatformHttpError(503, 'POST', 'http://platform.test/v2/operation', undefined, 'unavailable');
    await env.startWorker({
      platform: { ...env.platform, operation: () => Promise.reject(unavailable()) },
    });
    // Standby target: the platform does not finish the switch while the job runs.
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'failed', attempt: 3 });
    expect(env.platform.switchCalls).toBe(1);
    const opId = env.reporter.of(jobId).find((p) => p.operationId !== undefined)?.operationId;
    expect(opId).toBeDefined();
    const unread = `The platform answered 503 Service Unavailable to a request (POST /v2/operation), so the state of operation ${opId}, which an earlier attempt of this rollback started, could not be read`;
    // A retried attempt says the operation is kept and followed by the next one...
    const second = env.reporter.of(jobId).find((p) => p.attempt === 2 && p.code !== undefined);
    expect(second?.steps.find((s) => s.step === 'validating')?.detail).toBe(
      `${unread}; it is kept and followed once the platform answers, never started twice. (attempt 2 of 3; retrying)`,
    );
    // ...the last one, which nothing follows, says the switch may still complete: the platform error in
    // words, the raw error (with its URL) only in the logs.
    expect(final?.message).toBe(
      `${unread}. The platform may have started this rollback and may still complete it: check where traffic is before trying again. env0 is serving ${plan.expectedCurrent}.`,
    );
    expect(final?.steps.find((s) => s.step === 'validating')?.detail).toBe(`${unread}.`);
  });

  it('an operation the platform reports failed but retryable (it restarted mid-way) is retried, and the next attempt switches', async () => {
    const env = await setupJobs(cleanup, { attempts: 3 });
    let calls = 0;
    // The platform accepted the first rollback and restarted before it took effect: that operation
    // reads failed, retryable, and nothing was switched. Asked again, it switches.
    await env.startWorker({
      platform: {
        ...env.platform,
        rollback: async (r: Parameters<typeof env.local.rollback>[0]): Promise<OperationRef> => {
          calls++;
          if (calls > 1) return env.local.rollback(r);
          return {
            id: 'op_lost',
            action: 'rollback',
            environment: r.environment,
            targetId: r.targetId,
            startedAt: env.clock.now(),
          };
        },
        operation: async (ref: OperationRef): Promise<OperationStatus> =>
          ref.id === 'op_lost'
            ? {
                id: ref.id,
                state: 'failed',
                updatedAt: env.clock.now(),
                error: { code: 'interrupted', message: 'interrupted by a restart', retryable: true },
              }
            : env.local.operation(ref),
      },
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).previous);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 2 });
    const first = env.reporter.of(jobId).find((p) => p.attempt === 1 && p.code !== undefined);
    expect(first?.code).toBe('platform_operation_failed');
    expect(first?.steps.at(-1)?.detail).toContain('interrupted by a restart');
    expect(first?.steps.at(-1)?.detail).toContain('retrying');
    expect(calls).toBe(2);
    expect(await rollbacksOn(env, 'env0')).toBe(1);
  });

  it('an operation the platform reports failed (not retryable) ends the job at once', async () => {
    const env = await setupJobs(cleanup, { attempts: 3 });
    await env.startWorker({
      platform: {
        ...env.platform,
        operation: async (ref: OperationRef): Promise<OperationStatus> => ({
          id: ref.id,
          state: 'failed',
          updatedAt: env.clock.now(),
          error: { code: 'quota', message: 'the project is over its quota' },
        }),
      },
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).previous);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect(final).toMatchObject({ outcome: 'failed', attempt: 1, code: 'platform_operation_failed' });
    expect(final?.message).toContain('the project is over its quota (quota)');
    expect(env.platform.switchCalls).toBe(1);
  });

  it('when an earlier attempt asked for the switch without an answer and traffic moved on since, ends failed (plan_stale) saying what the live history tells', async () => {
    const env = await setupJobs(cleanup);
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const jobId = jobIdForPlan(plan.id);
    // An earlier attempt of this job passed the fence (its started marker) and died before storing
    // the operation; meanwhile someone switched env0 to a third deployment.
    const marker = JSON.stringify({ started: `${jobId}:gone`, at: env.clock.now() });
    await env.redis.set(switchKeys(env.queue.prefix, env.queueName).operation(jobId), marker);
    const snap = await env.local.snapshot('env0');
    const third = snap.deployments.find(
      (d) =>
        d.id !== plan.target.id && d.id !== snap.environment.currentDeploymentId && d.status === 'standby',
    );
    if (!third) throw new Error('the seed has no standby deployment');
    const moved = new Promise<void>((resolve) => {
      const off = env.local.subscribe((e) => {
        if (e.type === 'traffic.moved' && e.to === third.id) {
          off();
          resolve();
        }
      });
    });
    await env.local.rollback({ environment: 'env0', targetId: third.id, requestedBy: 'Bob' });
    await env.clock.advance(REACTIVATION_MS); // it is in standby: reactivated on the clock
    await moved;

    await env.startWorker();
    await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    // Not `stale`: that would say the platform did not switch for this job, and it may have.
    expect(final).toMatchObject({ outcome: 'failed', code: 'plan_stale' });
    expect(final?.message).toBe(
      `An earlier attempt of this rollback asked the platform to switch env0 to ${plan.target.id}, and no answer to that request reached this job (it was lost, or that attempt's worker stopped first). As far as the platform's live history tells, the switch did not take effect: ${plan.target.id} has not gone live through a rollback since this one was asked for, and traffic has moved since: Traffic moved since this plan was made: env0 now serves ${third.id}, not ${plan.expectedCurrent}. Ask for a fresh plan. This job does nothing more. env0 is serving ${third.id} (rolled back: automatic deploys paused).`,
    );
    expect((await env.audit.recent('env0', 1))[0]).toMatchObject({ event: 'failed', code: 'plan_stale' });
    expect(env.platform.switchCalls).toBe(0);
  });

  it('a job whose earlier attempt published success but lost its completion ends at once, switching and counting nothing again', async () => {
    const env = await setupJobs(cleanup);
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    // What the earlier attempt published as its final state (its own completion never reached BullMQ).
    const job = await env.queue.queue.getJob(jobId);
    const done = {
      ...queuedProgress(jobId, jobData(plan, env.clock.now()), {
        startedAt: env.clock.now(),
        attempt: 1,
        updatedAt: env.clock.now(),
      }),
      outcome: 'succeeded' as const,
      message: `Rolled back env0 to ${plan.target.id}.`,
    };
    await job?.updateProgress(done);
    await env.startWorker();
    const final = await env.queue.waitForEnd(jobId);
    expect(final).toMatchObject({ outcome: 'succeeded', message: `Rolled back env0 to ${plan.target.id}.` });
    expect(env.platform.switchCalls).toBe(0);
    expect(env.reporter.of(jobId)).toEqual([]);
    const jobs = await env.metrics.jobs.get();
    expect(jobs.values.reduce((a, v) => a + v.value, 0)).toBe(0);
  });

  it('discards a stored operation the platform definitely does not know, and decides afresh', async () => {
    const env = await setupJobs(cleanup);
    await env.startWorker();
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const jobId = jobIdForPlan(plan.id);
    // An operation of an earlier attempt that the platform forgot (the local platform restarted).
    const gone: OperationRef = {
      id: 'op_forgotten',
      action: 'rollback',
      environment: 'env0',
      targetId: plan.target.id,
      startedAt: env.clock.now(),
    };
    await env.redis.set(switchKeys(env.queue.prefix, env.queueName).operation(jobId), JSON.stringify(gone));
    await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 1 });
    expect(final?.operationId).not.toBe('op_forgotten');
    expect(env.platform.switchCalls).toBe(1);
  });

  it('ends a queued job whose data the schema refuses (another version wrote it) with a final state naming the field: published, audited, counted, logged; not retried, and nothing switched', async () => {
    const env = await setupJobs(cleanup);
    const log = new LogLines();
    await env.startWorker({ logger: createLogger({ level: 'info', pretty: false, destination: log }) });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    // A newer bot queued a domain this worker's schema refuses (a rolling upgrade), or someone edited
    // the job by hand: the queue's own enqueue would refuse it, so it is added as BullMQ stored it.
    const data = { ...jobData(plan, env.clock.now()), domains: ['api.acme.test/v2'] };
    const jobId = jobIdForPlan(plan.id);
    await env.queue.queue.add('switch', data, { jobId });

    const ended = await env.queue.waitForEnd(jobId);
    const final = await env.reporter.waitFor((p) => p.jobId === jobId && p.outcome !== undefined);
    expect(ended).toEqual(final);
    expect(final).toMatchObject({
      outcome: 'failed',
      code: 'invalid_input',
      planId: plan.id,
      action: 'rollback',
      environment: 'env0',
      targetId: plan.target.id,
      fromId: seedIds(0).current,
      requestedBy: data.requestedBy,
    });
    expect(final.message).toBe(
      `This rollback of env0 cannot run: its job data is not what this version of Switchyard reads (domains.0: got "api.acme.test/v2", ${SWITCH_HOSTNAME_EXPECTED}); another version wrote it (during an upgrade) or it was edited by hand. Nothing was done. env0 is serving ${seedIds(0).current}.`,
    );
    expect(final.steps).toMatchObject([{ step: 'queued', state: 'failed' }]);
    // Told to the job's own chat message, and readable by any replica following the job.
    expect(env.reporter.reports.find((r) => r.progress === final)?.messages).toEqual(data.messages);
    expect(await env.queue.messages(jobId)).toEqual(data.messages);
    expect(await env.queue.progress(jobId)).toEqual(final);
    expect(await env.queue.ended(jobId)).toBe(true);
    const job = await env.queue.queue.getJob(jobId);
    expect(await job?.getState()).toBe('failed');
    expect(job?.attemptsMade).toBe(1);
    expect(job?.failedReason).toBe(`invalid_input: ${final.message}`);

    const audit = await env.audit.recent('env0', 10);
    expect(audit.map((e) => [e.event, e.code, e.message, e.planId, e.actor])).toEqual([
      ['failed', 'invalid_input', final.message, plan.id, data.requestedBy],
    ]);
    const counted = (await env.metrics.jobs.get()).values.filter((v) => v.value > 0);
    expect(counted.map((v) => [v.labels, v.value])).toEqual([[{ action: 'rollback', outcome: 'failed' }, 1]]);
    expect(log.parsed.filter((l) => l.level === 50).map((l) => [l.msg, l.jobId, l.code])).toEqual([
      [final.message, jobId, 'invalid_input'],
    ]);
    expect(env.platform.switchCalls).toBe(0);
  });

  it('ends a job whose data names an action and environment but little else, saying so', async () => {
    const env = await setupJobs(cleanup);
    await env.startWorker();
    await env.queue.queue.add('switch', { action: 'rollback', environment: 'env0' }, { jobId: 'sw_bad' });
    const final = await env.queue.waitForEnd('sw_bad');
    expect(final).toMatchObject({ outcome: 'failed', code: 'invalid_input', environment: 'env0' });
    expect(final?.message).toMatch(
      /^This rollback of env0 cannot run: its job data is not what this version of Switchyard reads \(planId: expected a string; projectId: expected a string; targetId: expected a string; and 6 more\)/,
    );
    expect((await env.queue.queue.getJob('sw_bad'))?.failedReason).toBe(`invalid_input: ${final?.message}`);
    expect((await env.audit.recent('env0', 10)).map((e) => [e.event, e.code])).toEqual([
      ['failed', 'invalid_input'],
    ]);
    expect(env.platform.switchCalls).toBe(0);
  });

  it('fails a job whose data does not even name its environment, naming the fields, without retrying', async () => {
    const env = await setupJobs(cleanup);
    const log = new LogLines();
    await env.startWorker({ logger: createLogger({ level: 'info', pretty: false, destination: log }) });
    const job = await env.queue.queue.add('switch', { action: 'rollback' }, { jobId: 'sw_bad' });
    expect(await env.queue.waitForEnd(job.id ?? '')).toBeUndefined();
    const failed = (await env.queue.queue.getJob('sw_bad'))?.failedReason;
    expect(failed).toMatch(
      /^invalid_input: Switch job sw_bad cannot run: its data is not a switch this version of Switchyard reads \(planId: expected a string; .*environment: expected a string/,
    );
    expect(log.parsed.filter((l) => l.level === 50).map((l) => `${l.code}: ${l.msg}`)).toEqual([failed]);
    expect(await env.queue.ended('sw_bad')).toBe(true);
    expect(env.platform.switchCalls).toBe(0);
  });

  // A newer worker's attempt asked the platform to switch and stored its operation under the job's
  // operation key (as runLocked does), then stalled or was killed; an older worker whose schema refuses
  // the job's data took the job over. Its end must tell what that attempt asked for, not "Nothing was
  // done", and switch nothing itself.
  describe('unreadable job data after an earlier attempt asked the platform to switch', () => {
    /** Rolls env0 back to `targetId` on the platform, as that earlier attempt did, storing its operation. */
    async function earlierRollback(env: JobsEnv, jobId: string, targetId: string): Promise<OperationRef> {
      const ref = await env.local.rollback({
        environment: 'env0',
        targetId,
        requestedBy: 'Alice',
        expectedCurrent: seedIds(0).current,
        expectedRolledBack: false,
      });
      await env.redis.set(switchKeys(env.queue.prefix, env.queueName).operation(jobId), JSON.stringify(ref));
      return ref;
    }

    /** Resolves once the platform moved env0's traffic. */
    function trafficMoved(env: JobsEnv): Promise<void> {
      return new Promise((resolve) => {
        const off = env.local.subscribe((event) => {
          if (event.type !== 'traffic.moved' || event.environment !== 'env0') return;
          off();
          resolve();
        });
      });
    }

    /** Queues the plan's job with data this worker's schema refuses, and waits for its end. */
    async function endUnreadable(env: JobsEnv, plan: Plan): Promise<Progress | undefined> {
      const data = { ...jobData(plan, env.clock.now()), domains: ['api.acme.test/v2'] };
      await env.queue.queue.add('switch', data, { jobId: jobIdForPlan(plan.id) });
      return env.queue.waitForEnd(jobIdForPlan(plan.id));
    }

    const unreadable = `This rollback of env0 cannot run: its job data is not what this version of Switchyard reads (domains.0: got "api.acme.test/v2", ${SWITCH_HOSTNAME_EXPECTED}); another version wrote it (during an upgrade) or it was edited by hand.`;

    it('the platform finished that rollback: says so, and that traffic is on its target', async () => {
      const env = await setupJobs(cleanup);
      await env.startWorker();
      const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
      const moved = trafficMoved(env);
      const ref = await earlierRollback(env, jobIdForPlan(plan.id), plan.target.id);
      await moved;

      const final = await endUnreadable(env, plan);
      expect(final).toMatchObject({ outcome: 'failed', code: 'invalid_input', operationId: ref.id });
      expect(final?.message).toBe(
        `${unreadable} An earlier attempt of this job asked the platform to roll env0 back to ${plan.target.id}, and the platform reports that operation (${ref.id}) done; traffic on it was not verified. env0 is serving ${plan.target.id} (rolled back: automatic deploys paused). That is the target of this rollback.`,
      );
      expect((await env.audit.recent('env0', 10)).map((e) => [e.event, e.code, e.message])).toEqual([
        ['failed', 'invalid_input', final?.message],
      ]);
      expect(env.platform.switchCalls).toBe(0);
      expect(await rollbacksOn(env, 'env0')).toBe(1);
    });

    it('that rollback still runs on the platform: says it may still complete, and it does', async () => {
      const env = await setupJobs(cleanup);
      await env.startWorker();
      // A standby target: the platform reactivates it first, on the test's clock.
      const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
      const ref = await earlierRollback(env, jobIdForPlan(plan.id), plan.target.id);

      const final = await endUnreadable(env, plan);
      expect(final).toMatchObject({ outcome: 'failed', code: 'invalid_input', operationId: ref.id });
      expect(final?.message).toBe(
        `${unreadable} An earlier attempt of this job asked the platform to roll env0 back to ${plan.target.id}, and the platform reports that operation (${ref.id}) as reactivating: it may still complete, check where traffic is before trying again. env0 is serving ${seedIds(0).current}.`,
      );
      // The platform's operation completes on its own; this job switched nothing itself.
      const moved = trafficMoved(env);
      await env.clock.advance(REACTIVATION_MS);
      await moved;
      expect((await env.local.snapshot('env0')).environment.currentDeploymentId).toBe(plan.target.id);
      expect(env.platform.switchCalls).toBe(0);
      expect(await rollbacksOn(env, 'env0')).toBe(1);
    });

    it('that rollback failed on the platform: says so', async () => {
      const env = await setupJobs(cleanup);
      await env.startWorker();
      const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
      const ref = await earlierRollback(env, jobIdForPlan(plan.id), plan.target.id);
      // Its target stopped while it was being reactivated: the platform gives the rollback up.
      await env.local.stop(plan.target.id);
      await env.clock.advance(REACTIVATION_MS);
      expect((await env.local.operation(ref)).state).toBe('failed');

      const final = await endUnreadable(env, plan);
      expect(final?.message).toBe(
        `${unreadable} An earlier attempt of this job asked the platform to roll env0 back to ${plan.target.id}, and the platform reports that operation (${ref.id}) as failed (target_stopped). env0 is serving ${seedIds(0).current}.`,
      );
      expect(env.platform.switchCalls).toBe(0);
    });

    it('data without a readable environment: the logged end says what the platform reports of that rollback', async () => {
      const env = await setupJobs(cleanup);
      await env.startWorker();
      const moved = trafficMoved(env);
      const ref = await earlierRollback(env, 'sw_bad', seedIds(0).previous);
      await moved;
      await env.queue.queue.add('switch', { action: 'rollback' }, { jobId: 'sw_bad' });
      expect(await env.queue.waitForEnd('sw_bad')).toBeUndefined();
      const failed = (await env.queue.queue.getJob('sw_bad'))?.failedReason;
      expect(failed).toMatch(/^invalid_input: Switch job sw_bad cannot run: /);
      expect(failed).toMatch(
        /its end cannot be shown or audited\. An earlier attempt of this job asked the platform to roll env0 back to dep_e0p2, and the platform reports that operation \(op_\w+\) done; traffic on it was not verified\.$/,
      );
      expect(failed).toContain(ref.id);
      expect(env.platform.switchCalls).toBe(0);
    });

    it('only a started marker (no operation yet): says the switch may still complete', async () => {
      const env = await setupJobs(cleanup);
      await env.startWorker();
      const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
      const jobId = jobIdForPlan(plan.id);
      // What runLocked stores right before calling rollback/promote, before the platform answered.
      const marker = JSON.stringify({ started: 'sw_other:abc', at: env.clock.now() });
      await env.redis.set(switchKeys(env.queue.prefix, env.queueName).operation(jobId), marker);

      const final = await endUnreadable(env, plan);
      expect(final).toMatchObject({ outcome: 'failed', code: 'invalid_input' });
      expect(final?.operationId).toBeUndefined();
      expect(final?.message).toBe(
        `${unreadable} An earlier attempt of this job asked the platform to switch env0 and it may still complete: check where traffic is before trying again. env0 is serving ${seedIds(0).current}.`,
      );
      expect(env.platform.switchCalls).toBe(0);
    });
  });
});

describe('a platform 408 (request timeout)', () => {
  it('is retryable in the platform HTTP client: a read is sent again, a write is thrown retryable', async () => {
    const answers = [408, 200, 408];
    const seen: string[] = [];
    const client = new JsonHttpClient({
      platform: 'test',
      secret: 'sekret',
      headers: {},
      describeError: (status) => ({ code: undefined, detail: `HTTP ${status}` }),
      baseDelayMs: 1,
      maxDelayMs: 1,
      fetch: (async (_url: string | URL | Request, init?: RequestInit) => {
        seen.push(init?.method ?? 'GET');
        const status = answers.shift() ?? 500;
        return new Response(status === 200 ? '{"ok":true}' : 'timeout', { status });
      }) as typeof fetch,
    });
    const schema = z.object({ ok: z.boolean() });
    const read = await client.request(
      { method: 'GET', url: 'http://platform.test/read', idempotent: true, logFields: {} },
      schema,
    );
    expect(read).toEqual({ ok: true });
    const write = await client
      .request(
        { method: 'POST', url: 'http://platform.test/rollback', idempotent: false, logFields: {} },
        schema,
      )
      .catch((e: unknown) => e);
    expect(write).toBeInstanceOf(PlatformHttpError);
    expect(write).toMatchObject({ status: 408, retry: true });
    // The read went out twice; the write once (its outcome is unknown: the job re-reads state first).
    expect(seen).toEqual(['GET', 'GET', 'POST']);
  });

  it('is retried by the switch job, which then succeeds, switching once', async () => {
    const env = await setupJobs(cleanup, {
      faults: {
        switchErrors: [
          // As a client that does not classify 408 itself reports it (retry: false).
          new PlatformHttpError(408, 'POST', 'http://platform.test/rollback', undefined, 'request timeout', {
            retry: false,
          }),
        ],
      },
    });
    await env.startWorker();
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 2 });
    const failed = env.reporter.of(jobId).find((p) => p.attempt === 1 && p.code !== undefined);
    expect(failed?.steps.at(-1)?.detail).toContain('(attempt 1 of 4; retrying)');
    expect(env.platform.switchCalls).toBe(2);
    expect(await rollbacksOn(env, 'env0')).toBe(1);
  });
});

describe('jobs waiting for their environment', () => {
  /** Holds `environment` as another switch would, so that the next job for it parks and waits. */
  async function holdEnvironment(env: JobsEnv, environment: string) {
    const keys = switchKeys(env.queue.prefix, env.queueName);
    const lock = new EnvironmentLock(env.redis, keys, 60_000);
    expect((await lock.acquire(environment, 'sw_other:1')).acquired).toBe(true);
    return { lock, keys, release: () => lock.release(environment, 'sw_other:1') };
  }

  function isWaiting(jobId: string) {
    return (p: Progress) => p.jobId === jobId && p.steps[0]?.detail?.startsWith('Waiting') === true;
  }

  /** A queue whose retries back off for a minute (the worker's bound too): only a wake-up could cut it. */
  async function slowRetryQueue(env: JobsEnv): Promise<SwitchQueue> {
    const queue = new SwitchQueue({
      redisUrl: redisUrl(),
      queueName: env.queueName,
      retry: { attempts: 4, baseDelayMs: 60_000, maxDelayMs: 60_000 },
    });
    cleanup.add(() => queue.close());
    await queue.waitUntilReady();
    return queue;
  }

  /**
   * Jobs whose first platform call fails with a 429 and then back off for a minute (the queue's and
   * the worker's retry delays), with a one-minute lock re-check: nothing runs until the test says so.
   */
  async function backingOffOnce() {
    const env = await setupJobs(cleanup, {
      faults: {
        // A 429 started nothing: the failed attempt frees env0 for the other jobs (a 503 may have
        // started a switch, and would keep env0 for the retry).
        switchErrors: [
          new PlatformHttpError(429, 'POST', 'http://platform.test/rollback', undefined, 'slow down'),
        ],
      },
    });
    const queue = await slowRetryQueue(env);
    const worker = await env.startWorker({
      lockRetryMs: 60_000,
      retry: { baseDelayMs: 60_000, maxDelayMs: 60_000 },
    });
    return { env, queue, worker };
  }

  /** Resolves at the worker's first `failed` event for `jobId` (BullMQ has moved it to delayed). */
  function firstFailure(worker: SwitchWorker, jobId: string): Promise<void> {
    return new Promise<void>((resolve) =>
      worker.worker.on('failed', (job) => {
        if (job?.id === jobId) resolve();
      }),
    );
  }

  it('a job that waited and then took the lock on a later delivery is no waiter any more', async () => {
    const env = await setupJobs(cleanup);
    // A one-minute re-check delay: the job runs only when the test promotes it.
    await env.startWorker({ lockRetryMs: 60_000 });
    const held = await holdEnvironment(env, 'env0');
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    await env.reporter.waitFor(isWaiting(jobId));
    expect(await held.lock.waiters('env0')).toEqual([jobId]);

    // The holder lets go and wakes it (as a finishing switch does): it takes the lock at its first try.
    await held.release();
    await (await env.queue.queue.getJob(jobId))?.promote();
    expect((await env.queue.waitForEnd(jobId))?.outcome).toBe('succeeded');
    expect(await held.lock.waiters('env0')).toEqual([]);
    expect(await env.redis.hget(held.keys.run(jobId), 'parked')).toBeNull();
  });

  it('a release of the environment does not cut short the retry backoff of a job that once waited for it', async () => {
    const { env, queue, worker } = await backingOffOnce();
    const held = await holdEnvironment(env, 'env0');
    const planA = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const a = await queue.enqueue(jobData(planA, env.clock.now()));
    await env.reporter.waitFor(isWaiting(a.jobId));

    // A takes the lock on its next delivery; its attempt fails with the 429 and backs off for a minute
    // (the worker's `failed` event comes once BullMQ has moved it to delayed).
    const failedOnce = firstFailure(worker, a.jobId);
    await held.release();
    await (await queue.queue.getJob(a.jobId))?.promote();
    await failedOnce;
    expect(await queue.queue.getJobState(a.jobId)).toBe('delayed');

    // Another plan for env0 that ends at once (stale): its release wakes env0's waiters.
    const planB = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const b = await queue.enqueue({ ...jobData(planB, env.clock.now()), expectedCurrent: 'dep_gone' });
    expect((await queue.waitForEnd(b.jobId))?.outcome).toBe('stale');
    // close() waits for the wake-ups that release sent: after it, A is still backing off.
    await worker.close();
    expect(await queue.queue.getJobState(a.jobId)).toBe('delayed');
    expect(await held.lock.waiters('env0')).toEqual([]);
  });

  it('a wake-up never promotes a job delayed for a retry backoff, even one still listed as a waiter', async () => {
    const { env, queue, worker } = await backingOffOnce();
    const planA = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const jobA = jobIdForPlan(planA.id);
    const failedOnce = firstFailure(worker, jobA);
    const a = await queue.enqueue(jobData(planA, env.clock.now()));
    await failedOnce;
    expect(await queue.queue.getJobState(a.jobId)).toBe('delayed');
    // A stale registration (e.g. left by a fault after the job joined the waiters): A is listed.
    const keys = switchKeys(queue.prefix, env.queueName);
    const lock = new EnvironmentLock(env.redis, keys, 60_000);
    await lock.addWaiter('env0', a.jobId, env.clock.now());

    const planB = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const b = await queue.enqueue({ ...jobData(planB, env.clock.now()), expectedCurrent: 'dep_gone' });
    expect((await queue.waitForEnd(b.jobId))?.outcome).toBe('stale');
    await worker.close();
    expect(await queue.queue.getJobState(a.jobId)).toBe('delayed');
    // The wake-up found it was not waiting for the lock and took it off the list.
    expect(await lock.waiters('env0')).toEqual([]);
  });
});

describe('audit of a switch with many domains', () => {
  it('a 42-domain rollback names five domains in its message and succeeded entry, counting the rest', async () => {
    const clock = new ManualClock();
    const seed = jobsSeed(1, clock.now()) as { domains: unknown[] };
    for (let i = 0; i < 40; i++) {
      seed.domains.push({
        hostname: `customer-${i}.example-tenant-domain.test`,
        stickiness: 'environment',
        environment: 'env0',
        deploymentId: seedIds(0).current,
      });
    }
    const local = await LocalPlatform.open({ clock, seed, maintenance: false });
    cleanup.add(() => local.close());
    const redis = createRedis(redisUrl());
    cleanup.add(() => redis.quit());
    const audit = new AuditLog(redis, { prefix: uniqueName('audit') });
    const queueName = uniqueName('switch');
    const queue = new SwitchQueue({ redisUrl: redisUrl(), queueName, audit });
    cleanup.add(() => queue.close());
    cleanup.add(() => queue.obliterate());
    const worker = await startTestWorker(cleanup, {
      queueName,
      platform: local,
      reporter: new RecordingReporter(),
      audit,
    });

    const plan = await planFor(local, 'env0', 'rollback', clock.now());
    expect(plan.affectedDomains).toHaveLength(42);
    const { jobId } = await queue.enqueue(jobData(plan, clock.now()));
    const final = await queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('succeeded');
    // Every domain is in the traffic list (the view shows it); the sentence names five of them.
    expect(final?.traffic).toHaveLength(42);
    const said = final?.message ?? '';
    expect(said).toMatch(
      new RegExp(
        `^Rolled back env0 to ${plan.target.id}: all 42 domains answer from it \\(app\\.env0\\.test → `,
      ),
    );
    expect(said.match(/ → /g)).toHaveLength(5);
    expect(said).toMatch(
      /, … and 37 more\)\. Automatic deploys are paused until a deployment is promoted\.$/,
    );
    // The worker's close waits for the audit entry it sent after the job completed.
    await worker.close();

    const entries = await audit.recent('env0', 10);
    expect(entries.map((a) => a.event)).toEqual(['succeeded', 'started', 'requested']);
    // The audit entry keeps the whole sentence, as said in chat.
    expect(entries[0]?.message).toBe(said);
    expect(said.length).toBeLessThanOrEqual(AUDIT_MESSAGE_MAX);
  });

  it('a stale plan naming many long hostnames keeps where traffic is now in its message, step and audit entry', async () => {
    // The plan's domains changed by 12 hostnames of ~200 characters: the reason names ten of them
    // (src/domain/plan.ts), more than an audit entry keeps, and where traffic is now came after it.
    const clock = new ManualClock();
    const seed = jobsSeed(1, clock.now()) as { domains: unknown[] };
    const long = (i: number) => `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.tenant-${i}.test`;
    for (let i = 0; i < 12; i++) {
      seed.domains.push({
        hostname: long(i),
        stickiness: 'environment',
        environment: 'env0',
        deploymentId: seedIds(0).current,
      });
    }
    const local = await LocalPlatform.open({ clock, seed, maintenance: false });
    cleanup.add(() => local.close());
    const redis = createRedis(redisUrl());
    cleanup.add(() => redis.quit());
    const audit = new AuditLog(redis, { prefix: uniqueName('audit') });
    const queueName = uniqueName('switch');
    const queue = new SwitchQueue({ redisUrl: redisUrl(), queueName, audit });
    cleanup.add(() => queue.close());
    cleanup.add(() => queue.obliterate());
    const worker = await startTestWorker(cleanup, {
      queueName,
      platform: local,
      reporter: new RecordingReporter(),
      audit,
    });

    const plan = await planFor(local, 'env0', 'rollback', clock.now());
    const data = jobData(plan, clock.now());
    // The job carries the domains its approvers saw: not the 12 long ones.
    const { jobId } = await queue.enqueue({ ...data, domains: [...seedDomains(0)] });
    const final = await queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('stale');
    const said = final?.message ?? '';
    expect(said).toMatch(/^env0 changed since this plan was made: the rollback would now also move a{60}\./);
    expect(said).toMatch(new RegExp(`… env0 is serving ${seedIds(0).current}\\. Nothing was done\\.$`));
    expect(said.length).toBeLessThanOrEqual(AUDIT_MESSAGE_MAX);
    const step = final?.steps.find((st) => st.state === 'failed');
    expect(step?.detail?.length).toBeLessThanOrEqual(1000);
    expect(step?.detail).toMatch(/^env0 changed since this plan was made: .*…$/);
    await worker.close();
    const entry = (await audit.recent('env0', 10)).find((e) => e.event === 'refused');
    expect(entry?.message).toBe(said);
  });
});

describe('graceful shutdown', () => {
  it('stops taking jobs and lets the active switch finish', async () => {
    const env = await setupJobs(cleanup);
    // One switch at a time: the worker is not waiting for another job when shutdown begins (with a
    // free slot, a job added just as close() is called can still be taken by the blocking read
    // already under way, and is then finished too).
    const handle = await env.startWorker({ concurrency: 1 });
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now, seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, now));
    await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);

    const closed = handle.close();
    let isClosed = false;
    void closed.then(() => {
      isClosed = true;
    });
    const other = await env.queue.enqueue(jobData(await planFor(env.local, 'env1', 'rollback', now), now));
    expect(isClosed).toBe(false);
    await env.clock.advance(REACTIVATION_MS);
    await closed;

    expect((await env.queue.progress(jobId))?.outcome).toBe('succeeded');
    // The job enqueued during shutdown was not taken.
    expect(await env.queue.queue.getJobState(other.jobId)).toBe('waiting');
  });

  it('hands the active switch back when shutdown runs out of time; another worker resumes it without switching twice', async () => {
    const env = await setupJobs(cleanup);
    const first = await env.startWorker({ shutdownTimeoutMs: 20 });
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now, seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, now));
    await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);

    await first.close();
    expect(await env.queue.queue.getJobState(jobId)).toBe('waiting');
    expect(env.platform.switchCalls).toBe(1);

    await env.startWorker();
    await env.reporter.waitFor(
      (p) =>
        p.jobId === jobId && p.steps[1]?.detail?.includes('Resuming') === true && p.operationId !== undefined,
    );
    await env.clock.advance(REACTIVATION_MS);
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('succeeded');
    expect(env.platform.switchCalls).toBe(1);
    expect(await rollbacksOn(env, 'env0')).toBe(1);
  });

  it('a switch handed back shows a neutral state, not a failure, and its resumed run is audited as resumed', async () => {
    const env = await setupJobs(cleanup);
    const first = await env.startWorker({ shutdownTimeoutMs: 20 });
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now, seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, now));
    await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    await first.close();

    // Chat and BullMQ progress: the step it was on is still running, says it was handed back, and
    // nothing failed (no error code, no attempt used).
    const handedBack = env.reporter.of(jobId).at(-1);
    expect(handedBack?.steps.some((s) => s.state === 'failed')).toBe(false);
    expect(handedBack?.code).toBeUndefined();
    expect(handedBack?.outcome).toBeUndefined();
    expect(handedBack?.attempt).toBe(1);
    expect(handedBack?.steps.at(-1)).toMatchObject({
      step: 'reactivating',
      state: 'running',
      detail: HANDED_BACK_DETAIL,
    });
    expect(await env.queue.progress(jobId)).toEqual(handedBack);

    await env.startWorker();
    await env.reporter.waitFor(
      (p) =>
        p.jobId === jobId && p.steps[1]?.detail?.includes('Resuming') === true && p.operationId !== undefined,
    );
    await env.clock.advance(REACTIVATION_MS);
    const final = await env.queue.waitForEnd(jobId);
    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 1 });
    // Two runs, two distinct `started` entries: the second says it resumed a handed-back switch.
    expect(await startedMessages(env, 'env0')).toEqual([
      undefined,
      'resumed after a worker shutting down handed it back (attempt 1, run 2)',
    ]);
  });

  it("a switch handed back while reactivating shows the first run's steps once resumed: its queueing, and the reactivation going on from its first start", async () => {
    const env = await setupJobs(cleanup);
    const first = await env.startWorker({ shutdownTimeoutMs: 20 });
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now, seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, now));
    await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    await first.close();
    const handedBack = await env.queue.progress(jobId);
    const [queued, , reactivating] = handedBack?.steps ?? [];
    expect(reactivating).toMatchObject({
      step: 'reactivating',
      state: 'running',
      detail: HANDED_BACK_DETAIL,
    });

    const lines = new LogLines();
    await env.startWorker({ logger: createLogger({ level: 'info', pretty: false, destination: lines }) });
    const resumed = await env.reporter.waitFor(
      (p) =>
        p.jobId === jobId && p.steps[1]?.detail?.includes('Resuming') === true && p.operationId !== undefined,
    );
    // The resuming worker's log says it took a switch over, and how far the first run got.
    await lines.until((ls) =>
      ls.some((l) => l.msg === 'resuming a switch a worker shutting down handed back'),
    );
    expect(lines.parsed.find((l) => l.msg.startsWith('resuming a switch'))).toMatchObject({
      levelName: 'info',
      resumed: true,
      platformAsked: true,
      steps: 'queued:done,validating:done,reactivating:running',
    });
    // One entry per step: the reactivation the first run started goes on, it is not added twice.
    expect(resumed.steps.map((s) => [s.step, s.state])).toEqual([
      ['queued', 'done'],
      ['validating', 'done'],
      ['reactivating', 'running'],
    ]);
    expect(resumed.steps[2]).toMatchObject({
      startedAt: reactivating?.startedAt,
      detail: RESUMED_AFTER_HAND_BACK_DETAIL,
    });
    await env.clock.advance(REACTIVATION_MS);
    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 1 });
    expect(final?.steps.map((s) => [s.step, s.state])).toEqual([
      ['queued', 'done'],
      ['validating', 'done'],
      ['reactivating', 'done'],
      ['switching', 'done'],
      ['verifying', 'done'],
      ['done', 'done'],
    ]);
    // Queued until the first run took the job, not through that run and the hand-back.
    expect(final?.steps[0]).toEqual(queued);
    // The reactivation runs from when the first run asked for it, and says it was handed back.
    expect(final?.steps[2]).toMatchObject({
      startedAt: reactivating?.startedAt,
      detail: RESUMED_AFTER_HAND_BACK_DETAIL,
    });
    expect(env.platform.switchCalls).toBe(1);
  });

  it('a message attached after the release read its messages, but before the final state was written, still gets the final state', async () => {
    const env = await setupJobs(cleanup);
    const handle = await env.startWorker();
    const straggler: MessageRef = { surface: 'slack', channel: 'C7', messageId: '1700000000.000700' };
    // Lands exactly in the window: the worker's release has read the job's messages, and the final
    // state is about to be written (a surface attaching then sees no end yet, so it shows none itself).
    const original = Job.prototype.updateProgress;
    let attached = false;
    const patched = async function (this: Job, progress: unknown) {
      if (!attached && (progress as Progress).outcome !== undefined) {
        attached = true;
        await env.queue.addMessages(String(this.id), [straggler]);
      }
      return original.call(this, progress as object);
    };
    Job.prototype.updateProgress = patched as typeof original;
    cleanup.add(async () => {
      Job.prototype.updateProgress = original;
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    expect((await env.queue.waitForEnd(jobId))?.outcome).toBe('succeeded');
    // Closing waits for what the finished switch left running.
    await handle.close();
    expect(attached).toBe(true);
    const toStraggler = env.reporter.reports.filter((r) =>
      r.messages.some((m) => m.messageId === straggler.messageId),
    );
    expect(toStraggler.map((r) => r.progress.outcome)).toEqual(['succeeded']);
  });

  it('a stuck chat reporter cannot hold the worker close up past the shutdown timeout', async () => {
    const env = await setupJobs(cleanup);
    const late: MessageRef = { surface: 'slack', channel: 'C9', messageId: '1700000000.000900' };
    const stuck = deferred();
    // The chat API never answers the final state's edit of the message attached during the switch.
    const handle = await env.startWorker({
      shutdownTimeoutMs: 300,
      reporter: {
        report: (progress, messages) => {
          if (progress.outcome !== undefined && messages.some((m) => m.messageId === late.messageId)) {
            stuck.resolve();
            return new Promise<void>(() => undefined);
          }
          return env.reporter.report(progress, messages);
        },
      },
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    expect(await env.queue.addMessages(jobId, [late])).toBe(true);
    await env.clock.advance(REACTIVATION_MS);
    await stuck.promise;

    expect(
      await Promise.race([handle.close().then(() => 'closed'), timeoutGuard(10_000, 'still closing')]),
    ).toBe('closed');
    // The switch itself completed: its final state is the job's.
    expect((await env.queue.progress(jobId))?.outcome).toBe('succeeded');
  });
});

describe('what a failed or stale switch says at its end is true of the platform', () => {
  const revoked = () =>
    new RefusalError({
      code: 'platform_unauthorized',
      message: 'Unkey rejected the root key (401 key_not_found): set UNKEY_ROOT_KEY.',
    });

  it('a refusal while following a switch the platform accepted ends failed (not refused) and says it may still complete', async () => {
    const env = await setupJobs(cleanup, { attempts: 1 });
    // The platform accepts the rollback; then the key is revoked before the job sees it finish.
    await env.startWorker({
      platform: { ...env.platform, operation: () => Promise.reject(revoked()) },
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('failed');
    expect(final?.code).toBe('platform_unauthorized');
    expect(final?.message).toContain('Unkey rejected the root key');
    expect(final?.message).toContain(
      'The platform may have started this rollback and may still complete it: check where traffic is before trying again.',
    );
    expect((await env.audit.recent('env0', 1))[0]).toMatchObject({ event: 'failed' });
  });

  it('a refusal of the switch request itself is still refused', async () => {
    const env = await setupJobs(cleanup, { attempts: 1, faults: { switchErrors: [revoked()] } });
    await env.startWorker();
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('refused');
    expect(final?.message).not.toContain('may still complete');
  });

  it('a refusal while verifying a switch the platform reported done says the switch was done', async () => {
    const env = await setupJobs(cleanup, { attempts: 1 });
    // No probe: verification reads the platform's routing, and the key is revoked by then.
    const { probe: _, ...unprobed } = env.platform;
    await env.startWorker({ platform: { ...unprobed, routing: () => Promise.reject(revoked()) } });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('failed');
    expect(final?.message).toMatch(
      /^The platform reports this rollback done, but traffic could not be verified: Unkey rejected the root key/,
    );
  });

  it('a switch an earlier attempt saw done, whose later attempt cannot read the platform at all, ends saying it was done', async () => {
    const env = await setupJobs(cleanup, { attempts: 2 });
    const unavailable = (path: string) =>
      new PlatformHttpError(503, 'POST', `http://platform.test${path}`, undefined, 'unavailable');
    // The first attempt sees the operation succeed; from its first routing read on, every read of
    // where traffic is (routing, snapshots) answers 503 until the job's attempts run out. The
    // operation itself still reads succeeded.
    let down = false;
    const { probe: _, ...unprobed } = env.platform;
    await env.startWorker({
      platform: {
        ...unprobed,
        snapshot: (environment: string) =>
          down ? Promise.reject(unavailable('/v2/snapshot')) : env.platform.snapshot(environment),
        routing: () => {
          down = true;
          return Promise.reject(unavailable('/v2/routing'));
        },
      },
    });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'failed', attempt: 2 });
    expect(env.platform.switchCalls).toBe(1);
    expect((await env.local.snapshot('env0')).environment.currentDeploymentId).toBe(plan.target.id);
    // Not "may have started ... may still complete" beside "reports the operation as succeeded".
    expect(final?.message).toBe(
      'The platform reports this rollback done, but traffic could not be verified: The platform answered 503 Service Unavailable to a request (POST /v2/snapshot). Where traffic is now could not be read from the platform: check it there.',
    );
  });

  it('verified through the platform routing (no probe), the success says the platform routes the domains, not that they answer', async () => {
    const env = await setupJobs(cleanup);
    const { probe: _, ...unprobed } = env.platform;
    await env.startWorker({ platform: unprobed });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('succeeded');
    expect(final?.message).toMatch(
      new RegExp(
        `^Rolled back env0 to ${plan.target.id}: the platform routes (its 1 domain|both domains|all \\d+ domains) to it \\(`,
      ),
    );
    expect(final?.message).not.toMatch(/answers? from it/);
    // The chat's sentence says so too (its list of domains shows no check of its own).
    expect(final?.note).toMatch(/^The platform routes (its 1 domain|both domains|all \d+ domains) to it\./);
  });

  const http502 = () =>
    new PlatformHttpError(502, 'POST', 'http://platform.test/rollback', undefined, 'bad gateway');

  it('last attempt, a 5xx from a platform that had started the rollback: says it may still complete, in words', async () => {
    const env = await setupJobs(cleanup, { attempts: 1 });
    const platform = {
      ...env.platform,
      rollback: async (r: Parameters<typeof env.local.rollback>[0]) => {
        await env.local.rollback(r); // the platform acted...
        throw http502(); // ...but its answer was lost as a 502
      },
    };
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('failed');
    expect(final?.message).toBe(
      `The platform answered 502 Bad Gateway to the rollback request. The platform may have started this rollback and may still complete it: check where traffic is before trying again. env0 is serving ${seedIds(0).current}.`,
    );
    expect(final?.steps.at(-1)?.detail).toBe(
      'The platform answered 502 Bad Gateway to the rollback request.',
    );
    // And it does: the standby target finishes reactivating and goes live.
    await env.clock.advance(REACTIVATION_MS);
    expect((await env.local.snapshot('env0')).environment.currentDeploymentId).toBe(seedIds(0).standby);
  });

  it('last attempt, an operation that did not finish in time: says it may still complete and its state', async () => {
    const env = await setupJobs(cleanup, { attempts: 1 });
    await env.startWorker({ operationTimeoutMs: 50 });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now(), seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('failed');
    expect(final?.code).toBe('platform_timeout');
    expect(final?.message).toContain(
      'The platform may have started this rollback and may still complete it: check where traffic is before trying again.',
    );
    expect(final?.message).toContain(
      `The platform reports the operation it started (${final?.operationId}) as reactivating.`,
    );
    expect(final?.message).toMatch(new RegExp(`env0 is serving ${seedIds(0).current}\\.$`));
  });

  it('last attempt, the platform unreadable at the end: says where traffic is could not be read', async () => {
    const env = await setupJobs(cleanup, { attempts: 1 });
    let snapshots = 0;
    const platform = {
      ...env.platform,
      snapshot: (e: string) => (++snapshots === 1 ? env.local.snapshot(e) : Promise.reject(http502())),
      rollback: () => Promise.reject(http502()),
    };
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('failed');
    expect(final?.message).toBe(
      'The platform answered 502 Bad Gateway to the rollback request. The platform may have started this rollback and may still complete it: check where traffic is before trying again. Where traffic is now could not be read from the platform: check it there.',
    );
  });

  it('verification probes every domain each round: one flapping back to the old deployment is not "on the target"', async () => {
    const env = await setupJobs(cleanup);
    const [a, b] = seedDomains(0) as [string, string];
    const target = seedIds(0).previous;
    const old = seedIds(0).current;
    const calls = new Map<string, number>();
    // Edges still propagating: a answers the target once, then the old deployment; b the other way round.
    const answer = (h: string): string => {
      const n = (calls.get(h) ?? 0) + 1;
      calls.set(h, n);
      if (h === a) return n === 1 ? target : old;
      return n === 1 ? old : target;
    };
    const platform = {
      ...env.platform,
      probe: async (hostname: string) => ({ hostname, status: 200, deploymentId: answer(hostname) }),
    };
    await env.startWorker({ platform, verify: { timeoutMs: 100, intervalMs: 5 } });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('failed');
    expect(final?.code).toBe('verify_timeout');
    // The last full round: a on the old deployment, b on the target; the message names only a.
    expect(final?.traffic).toEqual([
      { hostname: a, deploymentId: old, ok: false },
      { hostname: b, deploymentId: target, ok: true },
    ]);
    expect(final?.message).toBe(
      `The platform reports the rollback done, but after 0s 1 of 2 domains does not answer from ${target}. env0 is serving ${target} (rolled back: automatic deploys paused). Not on ${target}: ${a} → ${old}.`,
    );
    expect(final?.message).not.toContain(`${b} →`);
  });

  it('verification: a domain that stops answering after answering from the target is not "on the target"', async () => {
    const env = await setupJobs(cleanup);
    const [a] = seedDomains(0) as [string, string];
    let probesOfA = 0;
    const platform = {
      ...env.platform,
      probe: async (hostname: string) => {
        if (hostname === a && ++probesOfA > 1) throw new Error('connection reset');
        return {
          hostname,
          status: 200,
          deploymentId: hostname === a ? seedIds(0).previous : seedIds(0).current,
        };
      },
    };
    await env.startWorker({ platform, verify: { timeoutMs: 100, intervalMs: 5 } });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.code).toBe('verify_timeout');
    expect(final?.traffic.find((t) => t.hostname === a)).toEqual({ hostname: a, ok: false });
    expect(final?.message).toContain(
      `2 of 2 domains do not answer from ${plan.target.id}. env0 is serving ${plan.target.id} (rolled back: automatic deploys paused). Not on ${plan.target.id}: ${a} → no answer,`,
    );
  });

  it('a stale plan (its domains changed) says where traffic is now and that nothing was done', async () => {
    const env = await setupJobs(cleanup);
    await env.startWorker();
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    const data = jobData(plan, now);
    const { jobId } = await env.queue.enqueue({ ...data, domains: data.domains.slice(0, 1) });
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('stale');
    expect(final?.message).toMatch(
      new RegExp(`env0 is serving ${seedIds(0).current}\\. Nothing was done\\.$`),
    );
    expect(env.platform.switchCalls).toBe(0);
  });
});

describe("a job's own switch in the live history", () => {
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

  it("asks again when the target was put live and undone by another job's switch in the name of a person of the same display name", async () => {
    // jobs/switch-processor.ts ownEntry told its own switch by the requester's display name only: another
    // Alice's rollback to the same target (another job: another job id), then Erin's promote back, read
    // as this job's unanswered request taking effect and being undone, and the job ended without asking.
    const env = await setupJobs(cleanup);
    const ids = seedIds(0);
    let calls = 0;
    const platform: DeployPlatform = Object.assign(Object.create(env.platform) as DeployPlatform, {
      rollback: async (r: SwitchRequest): Promise<OperationRef> => {
        calls++;
        if (calls > 1) return env.platform.rollback(r);
        // The request never reaches the platform (a 502 from a proxy); before the retry another job in
        // the name of another Alice rolls back to the same target, and Erin promotes the planned
        // deployment back.
        await untilSucceeded(
          env,
          await env.local.rollback({
            environment: 'env0',
            targetId: ids.previous,
            requestedBy: 'Alice',
            jobId: 'sw_another_job',
          }),
          1_000,
        );
        await env.clock.advance(1_000);
        await untilSucceeded(
          env,
          await env.local.promote({ environment: 'env0', targetId: ids.current, requestedBy: 'Erin' }),
        );
        throw new PlatformHttpError(502, 'POST', 'http://platform.test/rollback', undefined, 'bad gateway');
      },
    });
    await env.startWorker({ platform });
    const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
    const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));

    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'succeeded', attempt: 2 });
    expect(calls).toBe(2);
    const history = (await env.local.snapshot('env0')).liveHistory;
    expect(history.at(-3)).toMatchObject({
      deploymentId: ids.previous,
      by: 'Alice',
      jobId: 'sw_another_job',
    });
    // This job's switch, recorded with its own id.
    expect(history.at(-1)).toMatchObject({ deploymentId: ids.previous, via: 'rollback', by: 'Alice', jobId });
  });
});
