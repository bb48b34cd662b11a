/**
 * Switch workers as separate processes (jobs/worker-main.ts run with tsx) against the real local
 * platform served over HTTP: two worker processes serialize switches of one environment while other
 * environments proceed; `kill -9` of a worker mid-switch is recovered by another worker with exactly
 * one switch on the platform; SIGTERM lets the active switch finish before the process exits.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SwitchQueue } from '../../src/queue.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { Cleanup, jobData, ProgressLog, planFor } from './fixtures/harness.js';
import { type ServedPlatform, servePlatform } from './fixtures/platform-server.js';
import { seedIds } from './fixtures/seed.js';
import { spawnWorker } from './fixtures/worker-process.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const FAST = [
  '--lock-duration',
  '1000',
  '--stalled-interval',
  '300',
  '--verify-interval',
  '20',
  '--verify-timeout',
  '10s',
  '--lock-retry',
  '200',
  '--retry-base',
  '20',
  '--retry-max',
  '200',
];

async function setup(): Promise<{
  platform: ServedPlatform;
  queue: SwitchQueue;
  queueName: string;
  log: ProgressLog;
}> {
  const platform = await servePlatform(cleanup);
  const queueName = uniqueName('procs');
  const queue = new SwitchQueue({
    redisUrl: redisUrl(),
    queueName,
    retry: { baseDelayMs: 20, maxDelayMs: 200 },
  });
  cleanup.add(() => queue.close());
  cleanup.add(() => queue.obliterate());
  await queue.waitUntilReady();
  const log = await ProgressLog.follow(queue, cleanup);
  return { platform, queue, queueName, log };
}

function worker(queueName: string, platform: ServedPlatform, flags: readonly string[] = []) {
  return spawnWorker(cleanup, {
    redisUrl: redisUrl(),
    platformUrl: platform.url,
    queueName,
    flags: [...FAST, ...flags],
  });
}

describe('worker processes', () => {
  it('serialize switches of one environment across two processes while another environment proceeds', async () => {
    const { platform, queue, queueName, log } = await setup();
    const [w1, w2] = await Promise.all([
      worker(queueName, platform, ['--concurrency', '1']),
      worker(queueName, platform, ['--concurrency', '1']),
    ]);
    const now = platform.clock.now();
    const slow = await planFor(platform.local, 'env0', 'rollback', now, seedIds(0).standby);
    const competing = await planFor(platform.local, 'env0', 'rollback', now);
    const elsewhere = await planFor(platform.local, 'env1', 'rollback', now);

    const j1 = await queue.enqueue(jobData(slow, now));
    await log.waitFor((p) => p.jobId === j1.jobId && p.operationId !== undefined);
    const j2 = await queue.enqueue(jobData(competing, now));
    const j3 = await queue.enqueue(jobData(elsewhere, now));

    // env1 finishes while env0's switch is still reactivating its standby target.
    expect((await queue.waitForEnd(j3.jobId))?.outcome).toBe('succeeded');
    await log.waitFor((p) => p.jobId === j2.jobId && p.steps[0]?.detail?.startsWith('Waiting') === true);
    expect((await queue.progress(j1.jobId))?.outcome).toBeUndefined();
    expect(await queue.activeForEnvironment('env0')).toEqual({
      jobId: j1.jobId,
      planId: slow.id,
      environment: 'env0',
      action: slow.action,
      targetId: slow.target.id,
      requestedBy: { surface: 'console', userId: 'u-alice', displayName: 'Alice' },
      startedAt: expect.any(Number),
    });

    await platform.clock.untilSleeping();
    await platform.clock.advance(5_000);
    const first = await queue.waitForEnd(j1.jobId);
    const second = await queue.waitForEnd(j2.jobId);
    expect(first?.outcome).toBe('succeeded');
    expect(second?.outcome).toBe('stale');
    expect(second?.message).toContain(`now serves ${slow.target.id}`);
    // The second plan was validated only after the first switch was verified and done.
    const firstDone = first?.steps.find((s) => s.step === 'done')?.endedAt ?? Number.POSITIVE_INFINITY;
    const secondValidating = second?.steps.find((s) => s.step === 'validating')?.startedAt ?? 0;
    expect(secondValidating).toBeGreaterThanOrEqual(firstDone);
    expect(platform.switchCalls()).toBe(2);
    expect(platform.moves()).toBe(2);
    // Both processes took part (each runs one job at a time and env0 held one of them).
    const processedBy = await Promise.all(
      [j1, j3].map(async (j) => (await queue.queue.getJob(j.jobId))?.processedBy),
    );
    expect(new Set(processedBy)).toEqual(new Set([`switchyard-${w1.pid}`, `switchyard-${w2.pid}`]));
  });

  it('recovers a switch after kill -9 of its worker mid-switch, switching exactly once', async () => {
    const { platform, queue, queueName, log } = await setup();
    const victim = await worker(queueName, platform);
    const now = platform.clock.now();
    const plan = await planFor(platform.local, 'env0', 'rollback', now, seedIds(0).standby);
    const { jobId } = await queue.enqueue(jobData(plan, now));
    await log.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);

    victim.child.kill('SIGKILL');
    expect((await victim.exited).signal).toBe('SIGKILL');
    expect(await queue.queue.getJobState(jobId)).toBe('active');

    // A new worker picks the job up once its lock expires, and follows the same platform operation.
    await worker(queueName, platform);
    await log.waitFor((p) => p.jobId === jobId && p.steps[1]?.detail?.includes('Resuming') === true);
    await platform.clock.untilSleeping();
    await platform.clock.advance(5_000);
    const final = await queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('succeeded');
    expect(final?.traffic.every((t) => t.ok && t.deploymentId === plan.target.id)).toBe(true);
    expect(platform.switchCalls()).toBe(1);
    expect(platform.moves()).toBe(1);
    const job = await queue.queue.getJob(jobId);
    expect(job?.stalledCounter).toBeGreaterThanOrEqual(1);
  });

  it('after kill -9, when the platform finished meanwhile, verifies without switching again', async () => {
    const { platform, queue, queueName, log } = await setup();
    const victim = await worker(queueName, platform);
    const now = platform.clock.now();
    const plan = await planFor(platform.local, 'env1', 'rollback', now, seedIds(1).standby);
    const { jobId } = await queue.enqueue(jobData(plan, now));
    await log.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    victim.child.kill('SIGKILL');
    await victim.exited;
    await platform.clock.untilSleeping();
    await platform.clock.advance(5_000);
    expect((await platform.local.snapshot('env1')).environment.currentDeploymentId).toBe(plan.target.id);

    await worker(queueName, platform);
    const final = await queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('succeeded');
    expect(final?.steps.find((s) => s.step === 'switching')?.state).toBe('skipped');
    expect(platform.switchCalls()).toBe(1);
    expect(platform.moves()).toBe(1);
  });

  it('on SIGTERM finishes the active switch, then exits 0', async () => {
    const { platform, queue, queueName, log } = await setup();
    const w = await worker(queueName, platform);
    const now = platform.clock.now();
    const plan = await planFor(platform.local, 'env0', 'rollback', now, seedIds(0).standby);
    const { jobId } = await queue.enqueue(jobData(plan, now));
    await log.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    w.child.kill('SIGTERM');
    await platform.clock.untilSleeping();
    await platform.clock.advance(5_000);
    expect(await w.exited).toEqual({ code: 0, signal: null });
    expect((await queue.progress(jobId))?.outcome).toBe('succeeded');
    expect(platform.switchCalls()).toBe(1);
  });
});
