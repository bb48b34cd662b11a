/**
 * Edge tests (found by mutation testing) of src/queue.ts (enqueue claim/dedupe, joining an existing job, replacing an
 * ended one): behaviour no other test pinned down. Real Redis, a fresh queue per test.
 */

import type { Job } from 'bullmq';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PlatformHttpError } from '../../src/errors.js';
import type { MessageRef } from '../../src/progress.js';
import {
  EnvironmentLock,
  jobIdForPlan,
  lockOwner,
  progressOf,
  queuedProgress,
  switchBackoffDelay,
  switchKeys,
  withAttached,
} from '../../src/queue.js';
import { Cleanup, jobData, planFor } from '../jobs/fixtures/harness.js';
import { setupJobs } from '../jobs/fixtures/setup.js';
import { uniqueName } from '../support/redis.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe('SwitchQueue.enqueue', () => {
  it('joins a job still queued when the same plan is enqueued again after the dedupe window: one requested entry', async () => {
    const env = await setupJobs(cleanup);
    // No worker: the job stays queued (as behind a long wait for its environment).
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    const first = await env.queue.enqueue(jobData(plan, now));
    expect(first.joined).toBe(false);
    // The window passed (its marker expired) while the job still waits.
    await env.redis.del(switchKeys(env.queue.prefix, env.queueName).enqueued(first.jobId));

    const again = await env.queue.enqueue(jobData(plan, now));

    expect(again).toEqual({ jobId: jobIdForPlan(plan.id), joined: true });
    const counts = await env.queue.queue.getJobCounts();
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(1);
    expect((await env.audit.recent('env0', 10)).map((e) => e.event)).toEqual(['requested']);
  });

  it('restarts the dedupe window when a request replaces a failed job inside it: its double delivery joins the new job', async () => {
    const env = await setupJobs(cleanup, {
      faults: {
        switchErrors: [
          new PlatformHttpError(404, 'POST', 'http://platform.test/rollback', 'nf', 'not found'),
        ],
      },
    });
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    const first = await env.queue.enqueue(jobData(plan, now));
    const worker = await env.startWorker();
    expect((await env.queue.waitForEnd(first.jobId))?.outcome).toBe('failed');
    await worker.close();
    const failedAt = (await env.queue.queue.getJob(first.jobId))?.finishedOn ?? 0;
    const marker = switchKeys(env.queue.prefix, env.queueName).enqueued(first.jobId);
    // Most of the first request's window has passed when it is asked again.
    await env.redis.pexpire(marker, 1_000);
    const again = jobData(plan, failedAt + 1_000);
    expect(await env.queue.enqueue(again)).toEqual({ jobId: first.jobId, joined: false });
    // The new request's window runs from now (30 s), not from the first request's.
    expect(await env.redis.pttl(marker)).toBeGreaterThan(20_000);
    // A retried delivery of the new request joins its job.
    expect(await env.queue.enqueue(again)).toEqual({ jobId: first.jobId, joined: true });
  });

  it('lets the next enqueue create the job when the add of the request that won the claim failed', async () => {
    const env = await setupJobs(cleanup);
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    const add = vi.spyOn(env.queue.queue, 'add').mockRejectedValueOnce(new Error('connection reset'));
    await expect(env.queue.enqueue(jobData(plan, now))).rejects.toThrow('connection reset');
    add.mockRestore();
    expect(await env.queue.queue.getJob(jobIdForPlan(plan.id))).toBeUndefined();

    // The click is retried: it creates the job (not "joined" a job nobody made) and is audited.
    const retried = await env.queue.enqueue(jobData(plan, now));

    expect(retried).toEqual({ jobId: jobIdForPlan(plan.id), joined: false });
    expect((await env.audit.recent('env0', 10)).map((e) => e.event)).toEqual(['requested']);
  });

  it('keeps the chat messages attached to a job only as long as finished jobs are kept (they expire)', async () => {
    const env = await setupJobs(cleanup);
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    const { jobId } = await env.queue.enqueue(jobData(plan, now));
    const ref: MessageRef = { surface: 'slack', channel: 'C1', messageId: '1.2' };
    expect(await env.queue.addMessages(jobId, [ref])).toBe(true);
    const ttl = await env.redis.pttl(switchKeys(env.queue.prefix, env.queueName).messages(jobId));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(7 * 86_400_000);
  });

  it('never waits less than its own backoff for a platform Retry-After shorter than it', () => {
    const policy = { baseDelayMs: 1_000, maxDelayMs: 30_000 };
    // Third attempt: 4 s exponential, 2 s to 4 s with jitter; the platform asked for 100 ms.
    const err = { context: { retryAfterMs: 100 } };
    expect(switchBackoffDelay(3, policy, err, () => 0)).toBe(2_000);
    expect(switchBackoffDelay(3, policy, err, () => 1)).toBe(4_000);
  });
});

describe('job messages and progress', () => {
  it('rejects waitForEnd when the job has not ended within its timeout (it does not pass a waiting job off as its end)', async () => {
    const env = await setupJobs(cleanup);
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    // No worker: the job stays queued.
    const { jobId } = await env.queue.enqueue(jobData(plan, now));
    await expect(env.queue.waitForEnd(jobId, 50)).rejects.toThrow();
  });

  it('reports to a message attached again under its own ref only once', () => {
    const own = { surface: 'console', channel: 'ops', messageId: 'm-1' } as const;
    const other = { surface: 'slack', channel: 'C1', messageId: '1.2' } as const;
    const attached = [JSON.stringify(own), JSON.stringify(other), JSON.stringify(other)];
    expect(withAttached([own], attached)).toEqual([own, other]);
  });

  it("reads a completed job's final state from its return value when its last progress write is older", async () => {
    const env = await setupJobs(cleanup);
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    const data = jobData(plan, now);
    const jobId = jobIdForPlan(plan.id);
    const running = queuedProgress(jobId, data, { startedAt: now, attempt: 1, updatedAt: now });
    const final = { ...running, outcome: 'succeeded' as const, message: 'Rolled back.', updatedAt: now + 1 };
    const job = { id: jobId, data, timestamp: now, progress: running, returnvalue: final } as unknown as Job;
    expect(progressOf(job, jobId)).toEqual(final);
  });
});

describe('EnvironmentLock: an environment kept for a retry', () => {
  it("is handed over only by the attempt holding it, and taken over only by the same job's next run", async () => {
    const env = await setupJobs(cleanup);
    const keys = switchKeys('bull', uniqueName('lock'));
    const lock = new EnvironmentLock(env.redis, keys, 10_000);
    cleanup.add(() =>
      env.redis.del(
        keys.lock('production'),
        keys.run('job-a'),
        keys.run('job-b'),
        keys.waiters('production'),
      ),
    );
    const run = (jobId: string, createdAt: number) => ({ jobId, createdAt, attempt: 2, stalls: 0 });
    const a1 = lockOwner('job-a', 'a1');
    const reservation = `job-a:retry-${1000}`;
    expect((await lock.acquireAndRead('production', a1, 'k', 's', run('job-a', 1000))).acquired).toBe(true);
    // Another attempt's hand-over does nothing.
    expect(await lock.handOver('production', lockOwner('job-b', 'b1'), 'job-b:retry-1', 60_000)).toBe(false);
    expect(await lock.handOver('production', a1, reservation, 60_000)).toBe(true);
    expect(await env.redis.get(keys.lock('production'))).toBe(reservation);
    expect(await env.redis.pttl(keys.lock('production'))).toBeGreaterThan(50_000);

    // Another job waits, as for a running switch; so does a later job with the same id (another
    // creation time: the reservation's job was removed and the plan asked for again).
    const b1 = lockOwner('job-b', 'b1');
    expect(await lock.acquireAndRead('production', b1, 'k', 's', run('job-b', 1000))).toEqual({
      acquired: false,
      holder: 'job-a',
      owner: reservation,
    });
    const later = await lock.acquireAndRead(
      'production',
      lockOwner('job-a', 'x1'),
      'k',
      's',
      run('job-a', 2000),
    );
    expect(later.acquired).toBe(false);
    // The same job's next attempt takes it over, under its own attempt's value and the lock's TTL.
    const a2 = lockOwner('job-a', 'a2');
    expect((await lock.acquireAndRead('production', a2, 'k', 's', run('job-a', 1000))).acquired).toBe(true);
    expect(await env.redis.get(keys.lock('production'))).toBe(a2);
    expect(await env.redis.pttl(keys.lock('production'))).toBeLessThanOrEqual(10_000);
    expect(await lock.release('production', a2)).toBe(true);
  });
});
