/**
 * The Unkey adapter inside the real switch flow: a plan from an Unkey snapshot, a BullMQ job on the real
 * Redis, the real worker calling rollbackDeployment on the fake Unkey server, following the operation
 * until the target is current, verifying traffic through `routing`, and a refusal from Unkey, or a
 * switch made in Unkey's dashboard that overtakes the job's, ending the job without retries.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type Clock, ManualClock, systemClock } from '../../src/clock.js';
import { buildPlan } from '../../src/domain/plan.js';
import { UnkeyPlatform } from '../../src/platform/unkey/adapter.js';
import { jobIdForPlan, type SwitchQueue, switchKeys } from '../../src/queue.js';
import { createRedis } from '../../src/redis.js';
import type { UnkeyFakeServer } from '../fakes/unkey-server.js';
import { Cleanup, jobData, RecordingReporter } from '../jobs/fixtures/harness.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { openTestQueue, QUICK_RETRIES, startTestWorker } from '../support/switch-worker.js';
import { startAcmeUnkey } from '../support/unkey.js';

const KEY = 'unkey_3ZjobTestRootKey0123456789abcd';
const SWITCH_DELAY = 1_000;
const prodEnv = { project: 'acme', app: 'api', environment: 'production' } as const;

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** The adapter's clock: real time plus an offset a test moves (past Unkey's 5-minute operation timeout). */
function offsetClock(): Clock & { offset: number } {
  const clock = { offset: 0, now: () => Date.now() + clock.offset, sleep: systemClock.sleep };
  return clock;
}

async function setup(opts: { platformClock?: Clock } = {}) {
  // The fake's switches wait on this clock; the worker polls on real time (5 ms), never sleeping in tests.
  const unkeyClock = new ManualClock();
  const server = await startAcmeUnkey(KEY, { clock: unkeyClock, switchDelayMs: SWITCH_DELAY });
  cleanup.add(() => server.close());
  const d1 = server.push({ ...prodEnv, branch: 'main' });
  await unkeyClock.advance(60_000);
  const d2 = server.push({ ...prodEnv, branch: 'main' });
  const platform = new UnkeyPlatform({
    environments: { production: prodEnv },
    client: { baseUrl: server.url, rootKey: KEY, timeoutMs: 5_000 },
    clock: opts.platformClock ?? systemClock,
  });
  cleanup.add(() => platform.close());
  const queueName = uniqueName('unkey-switch');
  const queue = await openTestQueue(cleanup, {
    queueName,
    retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 },
  });
  const reporter = new RecordingReporter();
  await startTestWorker(cleanup, { queueName, platform, reporter, ...QUICK_RETRIES });
  return { unkeyClock, server, platform, queue, reporter, d1, d2 };
}

/**
 * The job's end, or `following` when the worker polled Unkey for `polls` more getDeployment reads
 * first: a job that keeps following an operation that can no longer finish (it would only end at
 * the operation timeout) fails the test on an event, not on a timer.
 */
async function endOrStillFollowing(
  queue: SwitchQueue,
  server: UnkeyFakeServer,
  jobId: string,
  polls = 20,
): Promise<Awaited<ReturnType<SwitchQueue['waitForEnd']>> | 'following'> {
  const seen = server.requests.filter((r) => r.endpoint === 'deployments.getDeployment').length;
  return Promise.race([
    queue.waitForEnd(jobId),
    server.waitForEndpoint('deployments.getDeployment', seen + polls).then(() => 'following' as const),
  ]);
}

describe('Unkey adapter in a switch job', () => {
  it('rolls back, follows the operation, verifies every affected domain', async () => {
    const { unkeyClock, server, platform, queue, reporter, d1, d2 } = await setup();
    const snap = await platform.snapshot('production');
    const plan = buildPlan(snap, { action: 'rollback', now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    expect(plan.value.target.id).toBe(d1);
    expect(plan.value.current.id).toBe(d2);

    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    await reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    await server.waitForEndpoint('deployments.rollbackDeployment');
    expect(server.currentOf('acme', 'api')).toBe(d2);
    await unkeyClock.advance(SWITCH_DELAY);
    const final = await queue.waitForEnd(jobId);

    expect(final?.outcome).toBe('succeeded');
    expect(final?.traffic.map((t) => t.hostname).sort()).toEqual(
      plan.value.affectedDomains.map((d) => d.hostname).sort(),
    );
    expect(final?.traffic.every((t) => t.ok && t.deploymentId === d1)).toBe(true);
    expect(server.isRolledBack('acme', 'api')).toBe(true);
    expect(server.requests.filter((r) => r.endpoint === 'deployments.rollbackDeployment')).toHaveLength(1);
  });

  it('refuses up front, without calling Unkey, a target Unkey started shutting down after the plan', async () => {
    const { unkeyClock, server, platform, queue, d1 } = await setup();
    const plan = buildPlan(await platform.snapshot('production'), { action: 'rollback', now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    expect(plan.value.target.id).toBe(d1);
    // Unkey stops a replaced production deployment 30 minutes after it stopped serving.
    await unkeyClock.advance(30 * 60_000);
    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    const final = await queue.waitForEnd(jobId);
    expect(final?.outcome).not.toBe('succeeded');
    expect(final?.message).toContain('Unkey offers no rollback or promote to it right now');
    expect(server.requests.some((r) => r.endpoint === 'deployments.rollbackDeployment')).toBe(false);
  });

  it('ends the job on an Unkey refusal without retrying it', async () => {
    const { server, platform, queue, d1 } = await setup();
    const snap = await platform.snapshot('production');
    const plan = buildPlan(snap, { action: 'rollback', target: d1, now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    server.setPrecondition('The workspace has no active Compute plan.');
    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    const final = await queue.waitForEnd(jobId);
    expect(final?.outcome).not.toBe('succeeded');
    expect(final?.message).toContain('The workspace has no active Compute plan.');
    expect(final?.message).not.toContain(KEY);
    expect(server.requests.filter((r) => r.endpoint === 'deployments.rollbackDeployment')).toHaveLength(1);
  });

  it('ends a rollback overtaken by a dashboard rollback at once, as failed (operation_superseded), without retrying', async () => {
    const { unkeyClock, server, platform, queue, reporter, d1, d2 } = await setup();
    await unkeyClock.advance(60_000);
    const d3 = server.push({ ...prodEnv, branch: 'main' });
    const plan = buildPlan(await platform.snapshot('production'), { action: 'rollback', now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    expect([plan.value.current.id, plan.value.target.id]).toEqual([d3, d2]);

    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    await reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    // While Unkey is still switching, someone rolls back to d1 in Unkey's dashboard, and that workflow
    // runs first; then ours finds its source (d3) no longer current and switches nothing.
    server.switchNow('rollback', d1);
    await unkeyClock.advance(SWITCH_DELAY);
    const final = await endOrStillFollowing(queue, server, jobId);

    expect(final).not.toBe('following');
    if (final === 'following') return;
    expect(final).toMatchObject({ outcome: 'failed', code: 'platform_operation_failed', attempt: 1 });
    expect(final?.message).toContain('(operation_superseded)');
    expect(final?.message).toContain(`${d1} became the current deployment of production (rolled back)`);
    expect(final?.message).toContain('another switch outside Switchyard');
    expect(server.currentOf('acme', 'api')).toBe(d1);
    // Not retried: a second rollback would override the newer switch a person made.
    expect(server.requests.filter((r) => r.endpoint === 'deployments.rollbackDeployment')).toHaveLength(1);
  });

  it('a worker resuming the job keeps the stored source and ends an overtaken rollback at once', async () => {
    const { unkeyClock, server, platform, queue, d1, d2 } = await setup();
    await unkeyClock.advance(60_000);
    const d3 = server.push({ ...prodEnv, branch: 'main' });
    const plan = buildPlan(await platform.snapshot('production'), { action: 'rollback', now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    expect(plan.value.target.id).toBe(d2);
    // An earlier attempt asked Unkey to roll back and stored the operation (as JSON), then its worker died.
    const ref = await platform.rollback({ environment: 'production', targetId: d2, expectedCurrent: d3 });
    expect(ref.fromId).toBe(d3);
    const redis = createRedis(redisUrl());
    cleanup.add(() => redis.quit());
    await redis.set(
      switchKeys(queue.prefix, queue.queueName).operation(jobIdForPlan(plan.value.id)),
      JSON.stringify(ref),
    );
    server.switchNow('rollback', d1);

    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    const final = await endOrStillFollowing(queue, server, jobId);

    expect(final).not.toBe('following');
    if (final === 'following') return;
    // The platform reports the stored operation failed: the job decides afresh and finds the plan stale.
    expect(final).toMatchObject({ outcome: 'stale', attempt: 1 });
    expect(final?.message).toContain(d1);
    expect(server.requests.filter((r) => r.endpoint === 'deployments.rollbackDeployment')).toHaveLength(1);
  });
  it('a switch Unkey has not finished at the operation timeout ends failed, may still complete, not retried', async () => {
    const clock = offsetClock();
    const { unkeyClock, server, platform, queue, reporter, d1, d2 } = await setup({ platformClock: clock });
    const plan = buildPlan(await platform.snapshot('production'), { action: 'rollback', now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    expect(plan.value.target.id).toBe(d1);

    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    await reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    // Unkey accepted the rollback and is still switching (its switch waits on `unkeyClock`) when the
    // adapter's 5 minutes pass.
    clock.offset = 5 * 60_000 + 1_000;
    const final = await endOrStillFollowing(queue, server, jobId);

    expect(final).not.toBe('following');
    if (final === 'following') return;
    expect(final).toMatchObject({ outcome: 'failed', code: 'platform_operation_failed', attempt: 1 });
    expect(final?.message).toContain('(operation_timeout)');
    // Unkey has not given up on it: the message must not say the rollback could not be done.
    expect(final?.message).not.toContain('could not rollback');
    expect(final?.message).toContain(
      'The platform may have started this rollback and may still complete it: check where traffic is before trying again.',
    );
    expect(final?.message).toContain('as not finished (operation_timeout)');
    expect(final?.message).toContain(`production is serving ${d2}.`);
    // Not retried: a second rollback would be another switch.
    expect(server.requests.filter((r) => r.endpoint === 'deployments.rollbackDeployment')).toHaveLength(1);
    // Unkey completes it after all, as the message warned.
    await unkeyClock.advance(SWITCH_DELAY);
    expect((await platform.snapshot('production')).environment.currentDeploymentId).toBe(d1);
  });

  it('a worker resuming the job after the operation timeout neither follows nor starts the switch again', async () => {
    const clock = offsetClock();
    const { unkeyClock, server, platform, queue, d1, d2 } = await setup({ platformClock: clock });
    const plan = buildPlan(await platform.snapshot('production'), { action: 'rollback', now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    expect(plan.value.target.id).toBe(d1);
    // An earlier attempt asked Unkey to roll back and stored the operation, then its worker died; the
    // job is resumed more than 5 minutes later, while Unkey is still switching.
    const ref = await platform.rollback({ environment: 'production', targetId: d1, expectedCurrent: d2 });
    const redis = createRedis(redisUrl());
    cleanup.add(() => redis.quit());
    await redis.set(
      switchKeys(queue.prefix, queue.queueName).operation(jobIdForPlan(plan.value.id)),
      JSON.stringify(ref),
    );
    clock.offset = 5 * 60_000 + 1_000;

    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    const final = await endOrStillFollowing(queue, server, jobId);

    expect(final).not.toBe('following');
    if (final === 'following') return;
    expect(final).toMatchObject({ outcome: 'failed', code: 'platform_operation_failed', attempt: 1 });
    expect(final?.message).toContain('may still complete it');
    expect(server.requests.filter((r) => r.endpoint === 'deployments.rollbackDeployment')).toHaveLength(1);
    await unkeyClock.advance(SWITCH_DELAY);
    expect((await platform.snapshot('production')).environment.currentDeploymentId).toBe(d1);
  });
});
