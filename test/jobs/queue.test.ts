/**
 * The producer side and the pieces beside it, on the real Redis: idempotent enqueue under 50
 * concurrent callers, input validation, progress of a job not yet started, following a job from a
 * second surface, activeForEnvironment, the environment lock, the backoff curve, the audit stream and
 * the Redis settings check.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AUDIT_MESSAGE_MAX, AuditLog, auditLogDefaults, type RefusalEntry } from '../../src/audit.js';
import { ManualClock } from '../../src/clock.js';
import { MAX_SWITCH_DOMAINS } from '../../src/domain/plan.js';
import { PlatformHttpError } from '../../src/errors.js';
import {
  EnvironmentLock,
  jobIdForPlan,
  lockOwner,
  MAX_SWITCH_RETRY_AFTER_MS,
  SwitchQueue,
  switchBackoffDelay,
  switchJobSchema,
  switchKeys,
} from '../../src/queue.js';
import { createRedis, deleteKeys, scanKeys } from '../../src/redis.js';
import { checkRedis } from '../../src/redis-check.js';
import { spawnRedis } from '../../src/redis-server.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { Cleanup, jobData, planFor } from './fixtures/harness.js';
import { setupJobs } from './fixtures/setup.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

function redis() {
  const r = createRedis(redisUrl());
  cleanup.add(() => r.quit());
  return r;
}

describe('SwitchQueue.enqueue', () => {
  it('makes exactly one job from 50 concurrent enqueues of one plan; 49 callers join it', async () => {
    const env = await setupJobs(cleanup);
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    const data = jobData(plan, now);
    // Separate producers, as from several bot replicas.
    const producers = Array.from({ length: 5 }, () => {
      const q = new SwitchQueue({ redisUrl: redisUrl(), queueName: env.queueName, audit: env.audit });
      cleanup.add(() => q.close());
      return q;
    });
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (producers[i % producers.length] ?? env.queue).enqueue(data)),
    );
    expect(new Set(results.map((r) => r.jobId))).toEqual(new Set([jobIdForPlan(plan.id)]));
    expect(results.filter((r) => !r.joined)).toHaveLength(1);
    expect(results.filter((r) => r.joined)).toHaveLength(49);
    const counts = await env.queue.queue.getJobCounts();
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(1);
    expect((await env.audit.recent('env0', 10)).map((e) => e.event)).toEqual(['requested']);

    // A different plan is a different job.
    const other = await planFor(env.local, 'env1', 'rollback', now);
    const r2 = await env.queue.enqueue(jobData(other, now));
    expect(r2.joined).toBe(false);
    expect(r2.jobId).not.toBe(results[0]?.jobId);
  });

  it('joins a finished job within the dedupe window and replaces it after (the same state again)', async () => {
    const env = await setupJobs(cleanup);
    await env.startWorker();
    const now = env.clock.now();
    // A first rollback and promote back: the promote gives main's newest deployment its branch's domain
    // (the seed has none), so only from then on does a rollback and promote back return to the very
    // state a plan was made from.
    const warmup = await planFor(env.local, 'env0', 'rollback', now);
    const warmupJob = await env.queue.enqueue(jobData(warmup, now));
    expect((await env.queue.waitForEnd(warmupJob.jobId))?.outcome).toBe('succeeded');
    const warmupBack = await planFor(env.local, 'env0', 'promote', now, warmup.current.id);
    const warmupBackJob = await env.queue.enqueue(jobData(warmupBack, now));
    expect((await env.queue.waitForEnd(warmupBackJob.jobId))?.outcome).toBe('succeeded');

    const rollback = await planFor(env.local, 'env0', 'rollback', now);
    expect(rollback.affectedDomains.map((d) => d.stickiness)).toContain('branch');
    const first = await env.queue.enqueue(jobData(rollback, now));
    expect((await env.queue.waitForEnd(first.jobId))?.outcome).toBe('succeeded');
    // A late double click within the window joins the finished job: nothing runs again.
    expect(await env.queue.enqueue(jobData(rollback, now))).toEqual({ jobId: first.jobId, joined: true });

    // Promote back: env0 is in the very state the rollback plan was made from.
    const promote = await planFor(env.local, 'env0', 'promote', now, rollback.current.id);
    const back = await env.queue.enqueue(jobData(promote, now));
    expect((await env.queue.waitForEnd(back.jobId))?.outcome).toBe('succeeded');
    const again = await planFor(env.local, 'env0', 'rollback', now);
    expect(again.id).toBe(rollback.id);

    // After the window the identical plan is a new request: a fresh job that really switches.
    const shortWindow = new SwitchQueue({
      redisUrl: redisUrl(),
      queueName: env.queueName,
      dedupeWindowMs: 1,
    });
    cleanup.add(() => shortWindow.close());
    // The window passed: simulated by dropping the marker the first enqueue set.
    await env.redis.del(switchKeys(env.queue.prefix, env.queueName).enqueued(first.jobId));
    const second = await shortWindow.enqueue(jobData(again, now));
    expect(second).toEqual({ jobId: first.jobId, joined: false });
    const final = await env.queue.waitForEnd(second.jobId);
    expect(final?.outcome).toBe('succeeded');
    expect(final?.steps.find((s) => s.step === 'switching')?.state).toBe('done');
    const snap = await env.local.snapshot('env0');
    expect(snap.liveHistory.filter((h) => h.via === 'rollback')).toHaveLength(3);
  });

  it('makes one new job from 50 concurrent re-requests of a plan whose job failed; 49 join it', async () => {
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
    // No worker while the requests race: the new job must still be the one they all asked for when
    // they are counted (a job that ended again would be a later request's to replace).
    await worker.close();
    const failedAt = (await env.queue.queue.getJob(first.jobId))?.finishedOn;
    expect(failedAt).toBeGreaterThan(0);
    // Asked again after the failure: double clicks, retried deliveries, several bot replicas.
    const again = jobData(plan, (failedAt ?? 0) + 1_000);
    const producers = Array.from({ length: 5 }, () => {
      const q = new SwitchQueue({ redisUrl: redisUrl(), queueName: env.queueName, audit: env.audit });
      cleanup.add(() => q.close());
      return q;
    });
    await Promise.all(producers.map((p) => p.waitUntilReady()));
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (producers[i % producers.length] ?? env.queue).enqueue(again)),
    );
    expect(new Set(results.map((r) => r.jobId))).toEqual(new Set([first.jobId]));
    expect(results.filter((r) => !r.joined)).toHaveLength(1);
    expect(results.filter((r) => r.joined)).toHaveLength(49);
    // One job: the new request's, waiting; the failed one is gone.
    const counts = await env.queue.queue.getJobCounts();
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(1);
    expect(counts.waiting).toBe(1);
    const job = await env.queue.queue.getJob(first.jobId);
    expect(job?.data.requestedAt).toBe(again.requestedAt);
    expect(job?.finishedOn).toBeUndefined();
    expect(job?.attemptsMade).toBe(0);
    expect((await env.audit.recent('env0', 100)).filter((e) => e.event === 'requested')).toHaveLength(2);
    // A later request while the new job waits (or runs) joins it.
    expect(await env.queue.enqueue(jobData(plan, (failedAt ?? 0) + 5_000))).toEqual({
      jobId: first.jobId,
      joined: true,
    });
    // The new job is a sound BullMQ job: a worker runs it to the end, and this time it switches.
    await env.startWorker();
    const final = await env.queue.waitForEnd(first.jobId);
    expect(final?.outcome).toBe('succeeded');
    expect(final?.steps.find((s) => s.step === 'switching')?.state).toBe('done');
  });

  it("an ended job is joined by its own request and replaced by another by their request ids, whatever the hosts' clocks say", async () => {
    const env = await setupJobs(cleanup, {
      faults: {
        switchErrors: [
          new PlatformHttpError(404, 'POST', 'http://platform.test/rollback', 'nf', 'not found'),
        ],
      },
    });
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    const first = await env.queue.enqueue({ ...jobData(plan, now), requestId: 'gen-one.1' });
    const worker = await env.startWorker();
    expect((await env.queue.waitForEnd(first.jobId))?.outcome).toBe('failed');
    await worker.close();
    const failedAt = (await env.queue.queue.getJob(first.jobId))?.finishedOn ?? 0;
    expect(failedAt).toBeGreaterThan(0);
    const state = async () => {
      const job = await env.queue.queue.getJob(first.jobId);
      return { state: await job?.getState(), requestId: job?.data.requestId };
    };
    // A late duplicate of the same request (a retried delivery, a second replica), stamped by a clock
    // ahead of the worker's: it joins the failed job, inside the window and after it.
    const late = { ...jobData(plan, failedAt + 60_000), requestId: 'gen-one.1' };
    expect(await env.queue.enqueue(late)).toEqual({ jobId: first.jobId, joined: true });
    await env.redis.del(switchKeys(env.queue.prefix, env.queueName).enqueued(first.jobId));
    expect(await env.queue.enqueue(late)).toEqual({ jobId: first.jobId, joined: true });
    expect(await state()).toEqual({ state: 'failed', requestId: 'gen-one.1' });
    // Another request (asked again after the failure), stamped by a bot clock 20 s behind the worker's,
    // so before the failure by the clocks: it replaces the failed job.
    const again = { ...jobData(plan, failedAt - 20_000), requestId: 'gen-two.1' };
    expect(await env.queue.enqueue(again)).toEqual({ jobId: first.jobId, joined: false });
    expect(await state()).toEqual({ state: 'waiting', requestId: 'gen-two.1' });
    // and its own duplicates join the new job
    expect(await env.queue.enqueue(again)).toEqual({ jobId: first.jobId, joined: true });
    const counts = await env.queue.queue.getJobCounts();
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(1);
  });

  it('replaces a completed job once when 50 requests of its plan come after the window', async () => {
    const env = await setupJobs(cleanup);
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    const first = await env.queue.enqueue(jobData(plan, now));
    const worker = await env.startWorker();
    expect((await env.queue.waitForEnd(first.jobId))?.outcome).toBe('succeeded');
    await worker.close();
    // The window passed: simulated by dropping the marker the first enqueue set.
    await env.redis.del(switchKeys(env.queue.prefix, env.queueName).enqueued(first.jobId));
    const results = await Promise.all(
      Array.from({ length: 50 }, () => env.queue.enqueue(jobData(plan, now))),
    );
    expect(results.filter((r) => !r.joined)).toEqual([{ jobId: first.jobId, joined: false }]);
    const counts = await env.queue.queue.getJobCounts();
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(1);
    expect(counts.waiting).toBe(1);
    expect((await env.audit.recent('env0', 100)).filter((e) => e.event === 'requested')).toHaveLength(2);
  });

  it('derives hex job ids without ":" that BullMQ accepts', () => {
    const id = jobIdForPlan('plan_0123456789abcdef01234567');
    expect(id).toMatch(/^sw_[0-9a-f]{32}$/);
    expect(jobIdForPlan('plan_0123456789abcdef01234567')).toBe(id);
    expect(jobIdForPlan('plan_0123456789abcdef01234568')).not.toBe(id);
  });

  it('rejects bad job data naming the field, and enqueues nothing', async () => {
    const env = await setupJobs(cleanup);
    const now = env.clock.now();
    const data = jobData(await planFor(env.local, 'env0', 'rollback', now), now);
    await expect(env.queue.enqueue({ ...data, planId: 'plan:with:colons' })).rejects.toThrow(/planId/);
    await expect(env.queue.enqueue({ ...data, domains: ['not a host'] })).rejects.toThrow(/hostname/);
    const counts = await env.queue.queue.getJobCounts();
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(0);
  });

  it('accepts what buildPlan plans: a wildcard leftmost label, and as many domains as a plan may move', async () => {
    const env = await setupJobs(cleanup);
    const now = env.clock.now();
    const data = jobData(await planFor(env.local, 'env0', 'rollback', now), now);
    // Vercel lists wildcard project domains; a plan moving one must be queued.
    expect(switchJobSchema.parse({ ...data, domains: ['*.acme.com', 'acme.com'] }).domains).toEqual([
      '*.acme.com',
      'acme.com',
    ]);
    const most = Array.from({ length: MAX_SWITCH_DOMAINS }, (_, k) => `shop-${k}.example.com`);
    expect(switchJobSchema.parse({ ...data, domains: most }).domains).toHaveLength(MAX_SWITCH_DOMAINS);
    // Beyond the limit buildPlan refuses too; the queue's message names the field and the limit.
    await expect(env.queue.enqueue({ ...data, domains: [...most, 'one-more.example.com'] })).rejects.toThrow(
      `expected at most ${MAX_SWITCH_DOMAINS} domains (Switchyard verifies at most ${MAX_SWITCH_DOMAINS} per switch)`,
    );
    await expect(env.queue.enqueue({ ...data, domains: ['api.*.acme.com'] })).rejects.toThrow(
      /wildcard only as the leftmost label/,
    );
    const { jobId } = await env.queue.enqueue({ ...data, domains: ['*.acme.com'] });
    expect((await env.queue.queue.getJob(jobId))?.data.domains).toEqual(['*.acme.com']);
  });

  it('reports a job not yet started as queued, finds it for its environment, and follows more messages', async () => {
    const env = await setupJobs(cleanup);
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    // A Discord member nicknamed "alice": /deployments names who asked by mention and username (not
    // by the nickname alone), so the running switch carries the whole actor.
    const requester = {
      surface: 'discord',
      userId: '112233445566778899',
      displayName: 'alice',
      username: 'mallory',
    } as const;
    const { jobId } = await env.queue.enqueue(jobData(plan, now, requester));
    const p = await env.queue.progress(jobId);
    expect(p?.steps).toEqual([{ step: 'queued', state: 'running', startedAt: expect.any(Number) }]);
    expect(p?.planId).toBe(plan.id);
    expect(await env.queue.progress('sw_unknown')).toBeUndefined();
    // waiting for a worker: no start time yet
    expect(await env.queue.activeForEnvironment('env0')).toEqual({
      jobId,
      planId: plan.id,
      environment: 'env0',
      action: 'rollback',
      targetId: plan.target.id,
      requestedBy: requester,
    });
    expect(await env.queue.activeForEnvironment('env1')).toBeUndefined();

    // A second surface follows the same job: its message gets the progress too.
    const slackRef = { surface: 'slack', channel: 'C1', messageId: '1700000000.000100' } as const;
    expect(await env.queue.addMessages(jobId, [slackRef])).toBe(true);
    expect(await env.queue.addMessages('sw_unknown', [slackRef])).toBe(false);
    await env.startWorker();
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('succeeded');
    const last = env.reporter.reports.at(-1);
    expect(last?.messages).toContainEqual(slackRef);
    expect(last?.messages).toContainEqual({ surface: 'console', channel: 'ops', messageId: 'm-1' });
    expect(await env.queue.activeForEnvironment('env0')).toBeUndefined();
  });

  it('publishes progress to followers in other processes through BullMQ events', async () => {
    const env = await setupJobs(cleanup);
    const seen: string[] = [];
    const stop = await env.queue.onProgress((p) => {
      const running = p.steps.find((s) => s.state === 'running');
      seen.push(p.outcome ?? running?.step ?? '?');
    });
    cleanup.add(async () => stop());
    await env.startWorker();
    const now = env.clock.now();
    const { jobId } = await env.queue.enqueue(
      jobData(await planFor(env.local, 'env0', 'rollback', now), now),
    );
    await env.queue.waitForEnd(jobId);
    // The completed event can overtake the last progress event on the stream reader; wait for it.
    await new Promise<void>((resolve) => {
      if (seen.includes('succeeded')) resolve();
      else
        void env.queue.onProgress((p) => {
          if (p.outcome === 'succeeded') resolve();
        });
    });
    expect(seen[0]).toBe('validating');
    expect(seen).toContain('switching');
    expect(seen).toContain('verifying');
    expect(seen.at(-1)).toBe('succeeded');
  });
});

describe('SwitchQueue.waitingCounts', () => {
  it('counts a switch parked behind another switch of its environment as lock, not as waiting or delayed', async () => {
    const env = await setupJobs(cleanup);
    // One minute between looks: the parked switch stays in BullMQ's delayed set while the test reads.
    await env.startWorker({ lockRetryMs: 60_000 });
    const keys = switchKeys(env.queue.prefix, env.queueName);
    // Another switch of env0 holds the environment.
    await env.redis.set(keys.lock('env0'), lockOwner('sw_other', 'a'), 'PX', 60_000);
    cleanup.add(() => env.redis.del(keys.lock('env0')));
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    const { jobId } = await env.queue.enqueue(jobData(plan, now));
    await env.reporter.waitFor(
      (p) => p.jobId === jobId && p.steps[0]?.detail?.startsWith('Waiting') === true,
    );
    // It parks (BullMQ `delayed`) right after saying so.
    await vi.waitFor(async () => expect(await env.queue.queue.getJobState(jobId)).toBe('delayed'), {
      timeout: 10_000,
    });
    expect(await env.queue.waitingCounts()).toEqual({ waiting: 0, delayed: 0, lock: 1 });

    // A switch delayed for a retry's backoff stays `delayed`, also one that parked for the lock before
    // its failed attempt (it has made one more attempt since it parked).
    const backoff = await env.queue.queue.add(
      'switch',
      { backoff: true },
      { jobId: 'sw_backoff', delay: 3_600_000 },
    );
    cleanup.add(() => backoff.remove());
    expect(await env.queue.waitingCounts()).toEqual({ waiting: 0, delayed: 1, lock: 1 });
    const lock = new EnvironmentLock(env.redis, keys, 5_000);
    await lock.park('env1', { jobId: 'sw_backoff', createdAt: backoff.timestamp, attemptsMade: 0 }, now);
    expect(await env.queue.waitingCounts()).toEqual({ waiting: 0, delayed: 0, lock: 2 });
    await env.redis.hset(keys.job('sw_backoff'), 'atm', '1');
    expect(await env.queue.waitingCounts()).toEqual({ waiting: 0, delayed: 1, lock: 1 });
  });
});

describe('EnvironmentLock', () => {
  it('admits one attempt per environment, lets the same attempt re-enter, and releases only for it', async () => {
    const r = redis();
    const keys = switchKeys('bull', uniqueName('lock'));
    const lock = new EnvironmentLock(r, keys, 10_000);
    cleanup.add(() => r.del(keys.lock('production'), keys.lock('staging'), keys.waiters('production')));
    const a = lockOwner('job-a', 'a1');
    const b = lockOwner('job-b', 'b1');
    expect(await lock.acquire('production', a)).toEqual({ acquired: true });
    expect(await lock.acquire('production', b)).toEqual({ acquired: false, holder: 'job-a', owner: a });
    expect(await lock.acquire('staging', b)).toEqual({ acquired: true });
    // The same attempt asking again re-enters its own lock.
    expect(await lock.acquire('production', a)).toEqual({ acquired: true });
    expect(await lock.release('production', b)).toBe(false);
    expect(await lock.renew('production', b)).toEqual({ held: false, jobLockHeld: true });
    expect(await lock.renew('production', a)).toEqual({ held: true, jobLockHeld: true });
    expect(await r.pttl(keys.lock('production'))).toBeGreaterThan(9_000);
    expect(await lock.holder('production')).toBe('job-a');
    await lock.addWaiter('production', 'job-c', 2);
    await lock.addWaiter('production', 'job-b', 1);
    expect(await lock.waiters('production')).toEqual(['job-b', 'job-c']);
    expect(await lock.release('production', a)).toBe(true);
    expect(await lock.holder('production')).toBeUndefined();
    expect(await lock.acquire('production', b)).toEqual({ acquired: true });
  });

  it('keeps a second attempt of the same job out while the first holds the environment', async () => {
    // A job re-delivered after a stall (its first attempt still running) is a second attempt: it waits
    // like any other job, the first one's renewals say it still holds the environment, and the second
    // one's release cannot free it.
    const r = redis();
    const keys = switchKeys('bull', uniqueName('lock'));
    const lock = new EnvironmentLock(r, keys, 10_000);
    cleanup.add(() => r.del(keys.lock('production')));
    const first = lockOwner('sw_1', 'first');
    const second = lockOwner('sw_1', 'second');
    expect((await lock.acquire('production', first)).acquired).toBe(true);
    expect(await lock.acquire('production', second)).toEqual({
      acquired: false,
      holder: 'sw_1',
      owner: first,
    });
    expect((await lock.renew('production', first)).held).toBe(true);
    expect(await lock.release('production', second)).toBe(false);
    expect((await lock.acquire('production', lockOwner('sw_OTHER', 'x'))).acquired).toBe(false);
    expect(await lock.release('production', first)).toBe(true);
    expect((await lock.acquire('production', second)).acquired).toBe(true);
  });

  it("checks and extends the attempt's BullMQ job lock with each renewal, and fences with both", async () => {
    const r = redis();
    const keys = switchKeys('bull', uniqueName('lock'));
    const lock = new EnvironmentLock(r, keys, 10_000);
    const jobLock = { key: keys.jobLock('sw_1'), token: 'worker-1:0' };
    const op = keys.operation('sw_1');
    cleanup.add(() => r.del(keys.lock('production'), jobLock.key, op));
    expect(jobLock.key).toBe(`bull:${keys.base.split(':')[1]}:sw_1:lock`);
    const owner = lockOwner('sw_1', 'a1');
    await lock.acquire('production', owner);
    await r.set(jobLock.key, jobLock.token, 'PX', 1_000);
    expect(await lock.renew('production', owner, jobLock)).toEqual({ held: true, jobLockHeld: true });
    expect(await r.pttl(jobLock.key)).toBeGreaterThan(9_000);
    // The fence writes the marker only when both locks are held, and only once.
    expect(await lock.fence('production', owner, jobLock, op, 'm1', 60_000)).toEqual({
      held: true,
      jobLockHeld: true,
      written: true,
    });
    expect(await lock.fence('production', owner, jobLock, op, 'm2', 60_000)).toMatchObject({
      written: false,
    });
    expect(await r.get(op)).toBe('m1');
    expect(await lock.deleteIf(op, 'm2')).toBe(false);
    expect(await lock.deleteIf(op, 'm1')).toBe(true);
    // BullMQ handed the job to another attempt (another token): this one learns it lost the job.
    await r.set(jobLock.key, 'worker-2:0', 'PX', 10_000);
    expect(await lock.renew('production', owner, jobLock)).toEqual({ held: true, jobLockHeld: false });
    expect(await lock.fence('production', owner, jobLock, op, 'm3', 60_000)).toEqual({
      held: true,
      jobLockHeld: false,
      written: false,
    });
    expect(await r.get(op)).toBeNull();
    // The environment lock expired: the fence says so too, and writes nothing.
    await r.del(keys.lock('production'));
    await r.set(jobLock.key, jobLock.token);
    expect(await lock.fence('production', owner, jobLock, op, 'm4', 60_000)).toEqual({
      held: false,
      jobLockHeld: true,
      written: false,
    });
    expect(await r.get(op)).toBeNull();
  });

  it('expires when its owner stops renewing (a killed worker)', async () => {
    const r = redis();
    const keys = switchKeys('bull', uniqueName('lock'));
    const lock = new EnvironmentLock(r, keys, 5_000);
    cleanup.add(() => r.del(keys.lock('production')));
    await lock.acquire('production', 'job-a');
    const ttl = await r.pttl(keys.lock('production'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(5_000);
  });
});

describe('switchBackoffDelay', () => {
  const policy = { baseDelayMs: 1_000, maxDelayMs: 30_000 };
  it('grows exponentially with jitter between half and all of the delay, capped', () => {
    expect(switchBackoffDelay(1, policy, undefined, () => 0)).toBe(500);
    expect(switchBackoffDelay(1, policy, undefined, () => 1)).toBe(1_000);
    expect(switchBackoffDelay(3, policy, undefined, () => 0)).toBe(2_000);
    expect(switchBackoffDelay(3, policy, undefined, () => 1)).toBe(4_000);
    expect(switchBackoffDelay(20, policy, undefined, () => 1)).toBe(30_000);
    const samples = new Set(Array.from({ length: 20 }, () => switchBackoffDelay(4, policy)));
    expect(samples.size).toBeGreaterThan(1);
    for (const s of samples) expect(s).toBeGreaterThanOrEqual(4_000);
  });

  it("honours the platform's Retry-After when longer", () => {
    const err = { context: { retryAfterMs: 7_000 } };
    expect(switchBackoffDelay(1, policy, err, () => 0)).toBe(7_000);
  });

  it("honours a platform's Retry-After beyond maxDelayMs (one the HTTP client left to the job), up to 5 min", () => {
    // The HTTP client waits out up to 60 s itself and throws a longer one: retried sooner, the job's
    // next attempt would be refused again inside the rate-limit window.
    const limited = new PlatformHttpError(
      429,
      'POST',
      'https://api.unkey.com/v2/deployments.rollbackDeployment',
      'rate_limited',
      'slow down',
      { retry: true, retryAfterMs: 120_000 },
    );
    expect(switchBackoffDelay(1, policy, limited, () => 0)).toBe(120_000);
    expect(switchBackoffDelay(6, policy, limited, () => 1)).toBe(120_000);
    // A bogus one (hours) cannot park a confirmed switch for good.
    expect(MAX_SWITCH_RETRY_AFTER_MS).toBe(300_000);
    expect(switchBackoffDelay(1, policy, { context: { retryAfterMs: 7_200_000 } }, () => 0)).toBe(300_000);
    // An operator's longer maxDelayMs still bounds it.
    const patient = { baseDelayMs: 1_000, maxDelayMs: 600_000 };
    expect(switchBackoffDelay(1, patient, { context: { retryAfterMs: 7_200_000 } }, () => 0)).toBe(600_000);
  });
});

describe('AuditLog', () => {
  it('appends entries per environment and lists them newest first, bounded', async () => {
    const r = redis();
    const clock = new ManualClock();
    const audit = new AuditLog(r, { prefix: uniqueName('audit'), maxLen: 10 });
    cleanup.add(() => r.del(audit.key('production'), audit.key('preview')));
    const actor = { surface: 'slack', userId: 'U1', displayName: 'Ana' } as const;
    for (let i = 0; i < 250; i++) {
      await audit.append({
        at: clock.now() + i,
        environment: 'production',
        action: 'rollback',
        event: i % 2 === 0 ? 'requested' : 'approved',
        actor,
        planId: `plan_${i}`,
      });
    }
    await audit.append({
      at: clock.now(),
      environment: 'preview',
      action: 'promote',
      event: 'refused',
      code: 'forbidden',
      message: 'not allowed',
    });
    const recent = await audit.recent('production', 3);
    expect(recent.map((e) => e.planId)).toEqual(['plan_249', 'plan_248', 'plan_247']);
    expect(recent[0]).toMatchObject({ event: 'approved', actor, environment: 'production' });
    // Bounded: MAXLEN ~ trims whole nodes, so a little more than maxLen may remain, never all 250.
    expect(await r.xlen(audit.key('production'))).toBeLessThan(250);
    expect(await audit.recent('preview', 10)).toEqual([
      {
        at: clock.now(),
        environment: 'preview',
        action: 'promote',
        event: 'refused',
        code: 'forbidden',
        message: 'not allowed',
      },
    ]);
    expect(await audit.recent('nowhere', 10)).toEqual([]);
  });

  it('clips a message longer than an entry keeps instead of dropping the entry', async () => {
    const r = redis();
    const audit = new AuditLog(r, { prefix: uniqueName('audit') });
    cleanup.add(() => r.del(audit.key('production')));
    const long = `Rolled back production: ${'customer.example.test → dep_1, '.repeat(200)}`;
    expect(long.length).toBeGreaterThan(AUDIT_MESSAGE_MAX);
    await audit.append({
      at: 1,
      environment: 'production',
      action: 'rollback',
      event: 'succeeded',
      message: long,
    });
    const [entry] = await audit.recent('production', 1);
    expect(entry?.event).toBe('succeeded');
    expect(entry?.message).toHaveLength(AUDIT_MESSAGE_MAX);
    expect(entry?.message?.endsWith('…')).toBe(true);
    expect(long.startsWith(entry?.message?.slice(0, -1) ?? '?')).toBe(true);
  });

  it('records a refused click once per person, plan generation and code, counts repeats, and never in the history', async () => {
    const r = redis();
    const audit = new AuditLog(r, { prefix: uniqueName('audit'), maxLen: 10, refusalsMaxLen: 10 });
    cleanup.add(async () => {
      await deleteKeys(r, [
        audit.key('production'),
        ...(await scanKeys(r, `${audit.refusalsKey('production')}*`)),
      ]);
    });
    const mallory = { surface: 'slack', userId: 'U0MALLORY', displayName: 'mallory' } as const;
    const refusal = (over: Partial<RefusalEntry> = {}): RefusalEntry => ({
      at: 1,
      environment: 'production',
      action: 'rollback',
      event: 'refused',
      actor: mallory,
      planId: 'plan_a',
      code: 'forbidden',
      message: 'not on the allow list',
      ...over,
    });
    await audit.append({
      at: 1,
      environment: 'production',
      action: 'rollback',
      event: 'succeeded',
      jobId: 'sw_1',
    });

    const first = await audit.appendRefusal(refusal(), 'gen1');
    expect(first).toMatchObject({ written: true, count: 1 });
    for (let n = 2; n <= 105; n++) {
      expect(await audit.appendRefusal(refusal({ at: n }), 'gen1')).toEqual({
        written: false,
        id: first.id,
        count: n,
      });
    }
    // The marker lives for the window from the first refusal (the default: an hour, as long as a plan).
    const [marker] = await scanKeys(r, `${audit.refusalsKey('production')}:*`);
    const ttl = await r.pttl(marker ?? '');
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(auditLogDefaults.refusalWindowMs);
    // Another code, another generation of the plan, another plan or another person: recorded too.
    expect((await audit.appendRefusal(refusal({ code: 'self_approval' }), 'gen1')).written).toBe(true);
    expect((await audit.appendRefusal(refusal(), 'gen2')).written).toBe(true);
    expect((await audit.appendRefusal(refusal({ planId: 'plan_b' }), 'gen1')).written).toBe(true);
    expect(
      (await audit.appendRefusal(refusal({ actor: { ...mallory, userId: 'U0EVE' } }), 'gen1')).written,
    ).toBe(true);
    expect(
      (await audit.refusals('production', 10)).map((e) => `${e.planId}:${e.code}:${e.actor?.userId}`),
    ).toEqual([
      'plan_a:forbidden:U0EVE',
      'plan_b:forbidden:U0MALLORY',
      'plan_a:forbidden:U0MALLORY',
      'plan_a:self_approval:U0MALLORY',
      'plan_a:forbidden:U0MALLORY',
    ]);

    // However many distinct refusals come (many people, many plans), they trim only older refusals:
    // the history keeps every entry it had.
    for (let i = 0; i < 300; i++) await audit.appendRefusal(refusal({ planId: `plan_${i}` }), 'gen1');
    expect(await r.xlen(audit.refusalsKey('production'))).toBeLessThan(300);
    expect(await audit.recent('production', 100)).toEqual([
      { at: 1, environment: 'production', action: 'rollback', event: 'succeeded', jobId: 'sw_1' },
    ]);
    // A refusal without who or why cannot be recorded once per person and reason: refused by name.
    await expect(
      audit.appendRefusal({ ...refusal(), actor: undefined } as unknown as RefusalEntry),
    ).rejects.toThrow(/actor/);
  });

  it('refuses a malformed entry naming the field, and skips unparsable stored entries', async () => {
    const r = redis();
    const audit = new AuditLog(r, { prefix: uniqueName('audit') });
    cleanup.add(() => r.del(audit.key('production')));
    await expect(
      audit.append({ at: 1, environment: 'production', action: 'rollback', event: 'exploded' as 'failed' }),
    ).rejects.toThrow(/event/);
    await r.xadd(audit.key('production'), '*', 'e', '{not json');
    await r.xadd(audit.key('production'), '*', 'e', JSON.stringify({ at: 'yesterday' }));
    await audit.append({ at: 5, environment: 'production', action: 'rollback', event: 'started' });
    expect((await audit.recent('production', 10)).map((e) => e.event)).toEqual(['started']);
  });
});

describe('checkRedis', () => {
  it('passes a noeviction Redis with AOF, and warns loudly when AOF is off or eviction is on', async () => {
    // A private redis-server: changing CONFIG on the shared test Redis would race other test files.
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-redis-check-'));
    const own = await spawnRedis({ dir, aof: true });
    cleanup.add(async () => {
      await own.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const r = createRedis(own.url);
    cleanup.add(() => r.quit());
    expect(await checkRedis(r)).toEqual([]);

    await r.call('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru');
    await r.call('CONFIG', 'SET', 'appendonly', 'no');
    const warnings = await checkRedis(r);
    expect(warnings.map((w) => w.code)).toEqual(['eviction_policy', 'aof_off']);
    expect(warnings[0]?.message).toContain('allkeys-lru');

    const plain = createRedis(own.url, { maxRetriesPerRequest: 3 });
    cleanup.add(() => plain.quit());
    expect((await checkRedis(plain)).map((w) => w.code)).toContain('retries_per_request');
  });
});
