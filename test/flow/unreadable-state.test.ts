/**
 * State in Redis that this version cannot read (written by another Switchyard version during a rolling
 * upgrade, or edited by hand) never wedges an environment: plan ids being deterministic (same platform
 * state, same id), an unreadable plan record or a dead job would otherwise answer every
 * `/rollback production` of that state for a day or more.
 *
 * - A switch job whose data the worker's schema refuses ends `failed`, told and audited; and a job
 *   BullMQ failed whose data and progress cannot be read at all (an older worker) still counts as ended:
 *   the same switch asked for again is a fresh plan, not the dead job.
 * - A plan record with an unreadable field: a junk message ref is skipped; any other unreadable field
 *   makes the next request for the switch replace the record (logged, naming the field), and a click on
 *   the unreadable plan is refused in words naming the problem, never as an internal error.
 */
import { UnrecoverableError, Worker } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { startSwitchWorker } from '../../jobs/switch-worker.js';
import { AuditLog } from '../../src/audit.js';
import { systemClock } from '../../src/clock.js';
import { Flow, type PlanOutcome } from '../../src/flow.js';
import { silentLogger } from '../../src/log.js';
import { PlanState } from '../../src/plan-store.js';
import type { MessageRef } from '../../src/progress.js';
import { createRedis } from '../../src/redis.js';
import { RecordingReporter } from '../jobs/fixtures/harness.js';
import { CapturedLog } from '../support/captured-log.js';
import { redisUrl } from '../support/redis.js';
import { alice, bob, createHarness, type Harness, testConfig } from './harness.js';

let h: Harness | undefined;
const closers: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  closers.length = 0;
  await h?.close();
  h = undefined;
});

async function setup(): Promise<Harness> {
  h = await createHarness();
  // Job timestamps (BullMQ's) and the plans' requests (this clock) are compared when a request replaces
  // an ended job: both on the wall clock here.
  h.clock.set(Date.now());
  return h;
}

function planned(o: PlanOutcome) {
  if (!o.ok) throw new Error(`expected a plan, got ${o.refusal.code}: ${o.refusal.message}`);
  return o;
}

const msg: MessageRef = { surface: 'console', channel: 'ops', messageId: 'm1' };

/** Confirms a fresh plan of `/rollback production` by alice and returns its plan and job ids. */
async function queued(x: Harness): Promise<{ planId: string; jobId: string }> {
  const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
  await x.flow.attachMessage(o.plan.id, msg);
  const c = await x.flow.confirm(alice, o.plan.id);
  if (c.status !== 'enqueued') throw new Error(`expected enqueued, got ${c.status}`);
  return { planId: o.plan.id, jobId: c.jobId };
}

/** Writes job data this version's schema refuses (a wildcard path another version would accept). */
async function breakJobData(x: Harness, jobId: string): Promise<void> {
  const key = x.switchQueue.queue.toKey(jobId);
  const data = JSON.parse((await x.redis.hget(key, 'data')) ?? '{}') as Record<string, unknown>;
  await x.redis.hset(key, 'data', JSON.stringify({ ...data, domains: ['api.acme.com/v2'] }));
}

/** A plan's hash in Redis. */
function planKey(x: Harness, planId: string): string {
  return `${x.prefix}:plan:${planId}`;
}

/** Flow on the harness's parts, logging to `log`. */
function flowLoggingTo(x: Harness, log: CapturedLog): Flow {
  return new Flow({
    platform: x.platform,
    queue: x.switchQueue,
    plans: x.plans,
    audit: x.audit,
    config: testConfig(),
    clock: x.clock,
    logger: log.logger,
  });
}

describe('a switch job whose data this version cannot read', () => {
  it('ends failed, told to its message and audited, and the same switch asked for again is a fresh plan', async () => {
    const x = await setup();
    const { planId, jobId } = await queued(x);
    await breakJobData(x, jobId);

    const reporter = new RecordingReporter();
    const workerRedis = createRedis(redisUrl());
    closers.push(() => workerRedis.quit());
    const worker = startSwitchWorker({
      redisUrl: redisUrl(),
      queueName: x.switchQueue.queueName,
      platform: x.platform,
      reporter,
      clock: systemClock,
      verify: { timeoutMs: 5_000, intervalMs: 5 },
      lockDurationMs: 5_000,
      concurrency: 1,
      logger: silentLogger,
      audit: new AuditLog(workerRedis, { prefix: x.prefix }),
    });
    closers.push(() => worker.close());
    await worker.worker.waitUntilReady();
    const final = await x.switchQueue.waitForEnd(jobId, 10_000);

    expect(final).toMatchObject({ outcome: 'failed', code: 'invalid_input', planId });
    expect(final?.message).toMatch(
      /^This rollback of production cannot run: .*domains\.0: got "api\.acme\.com\/v2"/,
    );
    expect(reporter.reports.map((r) => [r.progress.outcome, r.messages])).toEqual([['failed', [msg]]]);
    expect(await x.flow.jobProgress(jobId)).toEqual(final);
    expect((await x.audit.recent('production', 10)).map((e) => [e.event, e.code])).toEqual([
      ['failed', 'invalid_input'],
      ['approved', undefined],
      ['requested', undefined],
    ]);

    const again = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expect(again).toMatchObject({
      created: true,
      plan: { id: planId },
      record: { state: PlanState.pending },
    });
    expect(again.record.jobId).toBeUndefined();
  });

  it('failed by BullMQ without any state (an older worker): the job counts as ended, and asking again makes a fresh plan whose confirm replaces it', async () => {
    const x = await setup();
    const { planId, jobId } = await queued(x);
    await breakJobData(x, jobId);
    // An older worker that refuses the data and says nothing: BullMQ fails the job, no progress.
    const oldRedis = createRedis(redisUrl());
    closers.push(() => oldRedis.quit());
    const old = new Worker(
      x.switchQueue.queueName,
      async () => {
        throw new UnrecoverableError('invalid_input: job data is not a switch');
      },
      { connection: oldRedis, prefix: x.switchQueue.prefix },
    );
    closers.push(() => old.close());
    expect(await x.switchQueue.waitForEnd(jobId, 10_000)).toBeUndefined();
    expect(await x.switchQueue.ended(jobId)).toBe(true);
    await old.close();

    const again = planned(await x.flow.plan(bob, 'rollback', 'production'));
    expect(again).toMatchObject({
      created: true,
      plan: { id: planId },
      record: { state: PlanState.pending },
    });
    expect(again.record.requestedBy).toEqual(bob);
    // A request made after the job ended replaces it with a job of its own.
    x.clock.advance(60_000);
    const c = await x.flow.confirm(alice, planId);
    expect(c).toMatchObject({ status: 'enqueued', jobId, joined: false });
    expect(await x.switchQueue.ended(jobId)).toBe(false);
    expect((await x.switchQueue.queue.getJob(jobId))?.data).toMatchObject({
      planId,
      requestedAt: x.clock.now(),
    });
  });
});

describe('a plan record with a field this version cannot read', () => {
  it('a junk message ref is skipped: the plan reads, joins and confirms; once it expired, a fresh plan replaces it', async () => {
    const x = await setup();
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    await x.flow.attachMessage(o.plan.id, msg);
    await x.redis.hset(
      planKey(x, o.plan.id),
      'msg:slack|C1|',
      '{"ref":{"surface":"slack","channel":"C1","messageId":""},"at":1}',
    );
    const joined = planned(await x.flow.plan(bob, 'rollback', 'production'));
    expect(joined).toMatchObject({ created: false, record: { state: PlanState.pending, messages: [msg] } });

    x.clock.advance(2 * 3_600_000);
    const fresh = planned(await x.flow.plan(bob, 'rollback', 'production'));
    expect(fresh).toMatchObject({ created: true, plan: { id: o.plan.id }, record: { requestedBy: bob } });
    expect((await x.flow.confirm(bob, o.plan.id)).status).toBe('enqueued');
  });

  it('a hand-edited state: the next request replaces the record, logged naming the field', async () => {
    const x = await setup();
    const log = new CapturedLog();
    const flow = flowLoggingTo(x, log);
    const o = planned(await flow.plan(alice, 'rollback', 'production'));
    await x.redis.hset(planKey(x, o.plan.id), 'state', 'done');

    const again = planned(await flow.plan(bob, 'rollback', 'production'));
    expect(again).toMatchObject({
      created: true,
      plan: { id: o.plan.id },
      record: { state: PlanState.pending },
    });
    expect(again.record.requestedBy).toEqual(bob);
    expect(again.record.generation).not.toBe(o.record.generation);
    const said = log.lines.filter((l) => l.msg.includes('unreadable'));
    expect(said.map((l) => [l.level, l.planId, l.field])).toEqual([[40, o.plan.id, 'state']]);
    expect((await flow.confirm(bob, o.plan.id)).status).toBe('enqueued');
  });

  it('an unreadable plan that is still pending is replaced too, by exactly one of two requests at once', async () => {
    const x = await setup();
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    await x.redis.hset(planKey(x, o.plan.id), 'plan', '{"id":');

    const [a, b] = await Promise.all([
      x.flow.plan(alice, 'rollback', 'production'),
      x.flow.plan(bob, 'rollback', 'production'),
    ]);
    const both = [planned(a), planned(b)];
    expect(both.map((p) => p.created).sort()).toEqual([false, true]);
    expect(new Set(both.map((p) => p.record.generation)).size).toBe(1);
    expect(both[0]?.record.plan).toEqual(o.plan);
    expect(await x.plans.get(o.plan.id)).toMatchObject({ state: PlanState.pending, plan: o.plan });
  });

  it('a click on the unreadable plan is refused in words naming the problem, changing nothing; a fresh plan then confirms', async () => {
    const x = await setup();
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    const key = planKey(x, o.plan.id);
    await x.redis.hset(key, 'state', 'done');
    const before = await x.redis.hgetall(key);

    for (const click of [
      () => x.flow.confirm(alice, o.plan.id),
      () => x.flow.approve(bob, o.plan.id),
      () => x.flow.cancel(alice, o.plan.id),
    ]) {
      const out = await click();
      expect(out).toMatchObject({ status: 'refused', refusal: { code: 'invalid_input' } });
      if (out.status !== 'refused') throw new Error('not refused');
      expect(out.refusal.message).toMatch(
        /^This plan cannot be acted on: Switchyard's record of it in Redis is unreadable \(state: Invalid option: expected one of .*\); it was written by another version or edited by hand\. Nothing was changed\. Ask for a fresh plan with \/rollback or \/promote: it replaces this one\.$/,
      );
      expect(out.refusal.message).not.toMatch(/internal|"code"/);
    }
    const replan = await x.flow.replan(alice, o.plan.id);
    expect(replan).toMatchObject({ ok: false, refusal: { code: 'invalid_input' } });
    expect(await x.redis.hgetall(key)).toEqual(before);
    expect(await x.switchQueue.queue.getJobCounts()).toMatchObject({ waiting: 0, active: 0 });

    planned(await x.flow.plan(alice, 'rollback', 'production'));
    expect((await x.flow.confirm(alice, o.plan.id)).status).toBe('enqueued');
  });

  it('/deployments still answers while the latest audit entry names an unreadable plan', async () => {
    const x = await setup();
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    await x.redis.hset(planKey(x, o.plan.id), 'expiresAt', 'soon');
    x.clock.advance(2 * 3_600_000);
    const view = await x.flow.deployments('production');
    expect(view.ok).toBe(true);
    expect(view.ok && view.recent.map((e) => [e.event, e.planId])).toEqual([['requested', o.plan.id]]);
  });
});
