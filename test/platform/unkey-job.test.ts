/**
 * The Unkey adapter inside the real switch flow: a plan from an Unkey snapshot, a BullMQ job on the real
 * Redis, the real worker calling rollbackDeployment on the fake Unkey server, following the operation
 * until the target is current, verifying traffic through `routing`, and a refusal from Unkey ending the
 * job without retries.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock, systemClock } from '../../src/clock.js';
import { buildPlan } from '../../src/domain/plan.js';
import { UnkeyPlatform } from '../../src/platform/unkey/adapter.js';
import { Cleanup, jobData, RecordingReporter } from '../jobs/fixtures/harness.js';
import { uniqueName } from '../support/redis.js';
import { openTestQueue, QUICK_RETRIES, startTestWorker } from '../support/switch-worker.js';
import { startAcmeUnkey } from '../support/unkey.js';

const KEY = 'unkey_3ZjobTestRootKey0123456789abcd';
const SWITCH_DELAY = 1_000;
const prodEnv = { project: 'acme', app: 'api', environment: 'production' } as const;

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

async function setup() {
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
    clock: systemClock,
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
});
