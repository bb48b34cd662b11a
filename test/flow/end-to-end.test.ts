/**
 * The whole flow behind every surface, on real parts: Flow plans and confirms, the real SwitchQueue
 * takes the job, the real switch worker runs it against the embedded LocalPlatform, and traffic ends
 * on the target; the chat message attached to the plan receives the progress.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type SwitchWorker, startSwitchWorker } from '../../jobs/switch-worker.js';
import { systemClock } from '../../src/clock.js';
import { PlatformHttpError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import type { DeployPlatform } from '../../src/platform/port.js';
import type { MessageRef, Reporter } from '../../src/progress.js';
import { RecordingReporter, withFaults } from '../jobs/fixtures/harness.js';
import { redisUrl } from '../support/redis.js';
import { alice, bob, createHarness, type Harness } from './harness.js';

let h: Harness | undefined;
let worker: SwitchWorker | undefined;

afterEach(async () => {
  await worker?.close();
  worker = undefined;
  await h?.close();
  h = undefined;
});

/** A real switch worker on the harness's queue. */
async function startWorker(
  harness: Harness,
  platform: DeployPlatform,
  reporter: Reporter,
): Promise<SwitchWorker> {
  const started = startSwitchWorker({
    redisUrl: redisUrl(),
    queueName: harness.switchQueue.queueName,
    platform,
    reporter,
    clock: systemClock,
    verify: { timeoutMs: 10_000, intervalMs: 5 },
    lockDurationMs: 10_000,
    concurrency: 1,
    logger: silentLogger,
    audit: harness.audit,
  });
  await started.worker.waitUntilReady();
  return started;
}

const msg: MessageRef = { surface: 'slack', channel: 'C0INCIDENT', messageId: '1700000000.000200' };

describe('Flow end to end', () => {
  it('two-person rollback: plan, confirm, approve, worker switches traffic, progress reaches the message', async () => {
    h = await createHarness({ environments: { production: { twoPersonRule: true } } });
    const reporter = new RecordingReporter();
    worker = await startWorker(h, h.platform, reporter);

    const planned = await h.flow.plan(alice, 'rollback', 'production');
    if (!planned.ok) throw new Error(planned.refusal.message);
    await h.flow.attachMessage(planned.plan.id, msg);
    expect((await h.flow.confirm(alice, planned.plan.id)).status).toBe('awaiting_approval');
    const approved = await h.flow.approve(bob, planned.plan.id);
    if (approved.status !== 'enqueued') throw new Error(`expected enqueued, got ${approved.status}`);

    // The target is in standby: the platform reactivates it on its (manual) clock. Advance that
    // clock whenever the platform is parked on it, until the job reports its outcome.
    let ended = false;
    const outcome = reporter
      .waitFor((p) => p.outcome !== undefined)
      .finally(() => {
        ended = true;
      });
    while (!ended) {
      if (h.clock.pending > 0) await h.clock.advance(1_000);
      else await new Promise<void>((r) => setImmediate(r));
    }
    const done = await outcome;

    expect(done.outcome).toBe('succeeded');
    expect(done.requestedBy).toEqual(alice);
    expect(done.approvedBy).toEqual(bob);
    expect(done.steps.map((st) => st.step)).toContain('reactivating');
    expect(done.traffic.length).toBe(planned.plan.affectedDomains.length);
    expect(done.traffic.every((t) => t.ok && t.deploymentId === 'dep_3hd7xa')).toBe(true);
    expect(reporter.reports.every((r) => r.messages.some((m) => m.messageId === msg.messageId))).toBe(true);

    const snap = await h.platform.snapshot('production');
    expect(snap.environment.currentDeploymentId).toBe('dep_3hd7xa');
    expect(snap.environment.rolledBack).toBe(true);

    // a late double click joins the finished job instead of switching again
    const again = await h.flow.approve(bob, planned.plan.id);
    expect(again).toMatchObject({ status: 'enqueued', jobId: approved.jobId, joined: true });
    expect(await h.jobs()).toHaveLength(1);

    // the environment's audit tells the story, newest first
    const events = (await h.audit.recent('production', 20)).map((e) => e.event);
    expect(events[0]).toBe('succeeded');
    expect(events).toContain('started');
    expect(events.slice(-2)).toEqual(['requested', 'requested']);
  });
});

/**
 * The same switch asked for again right after its job failed, by a bot host whose clock is
 * `botBehindMs` behind the worker host's (BullMQ stamps the job's `finishedOn` on the worker).
 */
async function askAgainAfterFailure(botBehindMs: number): Promise<void> {
  h = await createHarness();
  h.clock.set(Date.now() - botBehindMs);
  const reporter = new RecordingReporter();
  // the platform refuses the first switch (a 4xx: not retried), then works again
  const platform = withFaults(h.platform, {
    switchErrors: [
      new PlatformHttpError(400, 'POST', 'http://platform/rollback', 'bad_request', 'rejected for the test', {
        retry: false,
      }),
    ],
  });
  worker = await startWorker(h, platform, reporter);

  const first = await h.flow.plan(alice, 'rollback', 'production', 'dep_3hd7xa');
  if (!first.ok) throw new Error(first.refusal.message);
  await h.flow.attachMessage(first.plan.id, msg);
  const confirmed = await h.flow.confirm(alice, first.plan.id);
  if (confirmed.status !== 'enqueued') throw new Error(`expected enqueued, got ${confirmed.status}`);
  const failed = await reporter.waitFor((p) => p.outcome !== undefined);
  expect(failed.outcome).not.toBe('succeeded');
  expect((await h.platform.snapshot('production')).environment.currentDeploymentId).toBe('dep_4kq9wz');

  // the same request (same state, so the same plan id) is a new attempt, a second later by the bot's
  // clock: inside the queue's dedupe window, and (with the skew) before the failure by the worker's
  await h.switchQueue.waitForEnd(confirmed.jobId);
  const failedOn = (await h.switchQueue.queue.getJob(confirmed.jobId))?.finishedOn;
  h.clock.set(Date.now() - botBehindMs + 1_000);
  const again = await h.flow.plan(alice, 'rollback', 'production', 'dep_3hd7xa');
  if (!again.ok) throw new Error(again.refusal.message);
  expect(again.plan.id).toBe(first.plan.id);
  expect(again.created).toBe(true);
  expect(again.record.state).toBe('pending');
  await h.flow.attachMessage(again.plan.id, msg);
  const reconfirmed = await h.flow.confirm(alice, again.plan.id);
  expect(reconfirmed).toMatchObject({ status: 'enqueued', joined: false });
  // a new job for this request, not the failed one
  const job = await h.switchQueue.queue.getJob(confirmed.jobId);
  expect({ state: await job?.getState(), finishedOn: job?.finishedOn }).not.toEqual({
    state: 'failed',
    finishedOn: failedOn,
  });

  const harness = h;
  let ended = false;
  const outcome = reporter
    .waitFor((p) => p.outcome === 'succeeded')
    .finally(() => {
      ended = true;
    });
  while (!ended) {
    if (harness.clock.pending > 0) await harness.clock.advance(1_000);
    else await new Promise<void>((r) => setImmediate(r));
  }
  await outcome;
  expect((await h.platform.snapshot('production')).environment.currentDeploymentId).toBe('dep_3hd7xa');
}

describe('Flow after a failed switch', () => {
  it('asking again for the same switch after its job failed runs a new job instead of joining the failed one', async () => {
    await askAgainAfterFailure(0);
  });

  it("asking again from a bot whose clock is 20 s behind the worker's still runs a new job", async () => {
    // The queue tells the new request from a late duplicate of the failed one by their request ids,
    // not by comparing the bot's requestedAt with the worker's finishedOn.
    await askAgainAfterFailure(20_000);
  });
});
