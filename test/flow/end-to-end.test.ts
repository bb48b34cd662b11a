/**
 * The whole flow behind every surface, on real parts: Flow plans and confirms, the real SwitchQueue
 * takes the job, the real switch worker runs it against the embedded LocalPlatform, and traffic ends
 * on the target; the chat message attached to the plan receives the progress.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type SwitchWorker, startSwitchWorker } from '../../jobs/switch-worker.js';
import { ChatService } from '../../src/chat.js';
import { type Clock, systemClock } from '../../src/clock.js';
import { PlatformHttpError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import type { DeployPlatform } from '../../src/platform/port.js';
import type { MessageRef, Progress, Reporter } from '../../src/progress.js';
import { plainText } from '../../src/views/format.js';
import { RecordingReporter, withFaults } from '../jobs/fixtures/harness.js';
import { redisUrl } from '../support/redis.js';
import { alice, bob, carol, createHarness, type Harness, switchDirectly } from './harness.js';

let h: Harness | undefined;
let worker: SwitchWorker | undefined;

afterEach(async () => {
  await worker?.close();
  worker = undefined;
  await h?.close();
  h = undefined;
});

/** A real switch worker on the harness's queue (on the real clock unless given the harness's). */
async function startWorker(
  harness: Harness,
  platform: DeployPlatform,
  reporter: Reporter,
  clock: Clock = systemClock,
): Promise<SwitchWorker> {
  const started = startSwitchWorker({
    redisUrl: redisUrl(),
    queueName: harness.switchQueue.queueName,
    platform,
    reporter,
    clock,
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

describe('/deployments after an incident', () => {
  /** Runs the harness's clock until the worker reports the end of a job, after report `from`. */
  async function toEnd(harness: Harness, reporter: RecordingReporter, from: number): Promise<Progress> {
    let ended = false;
    const end = reporter
      .waitForReport((r) => reporter.reports.indexOf(r) >= from && r.progress.outcome !== undefined)
      .finally(() => {
        ended = true;
      });
    while (!ended) {
      if (harness.clock.pending > 0) await harness.clock.advance(1_000);
      else await new Promise<void>((r) => setImmediate(r));
    }
    return end;
  }

  it('lists each switch on one line with the move made on the platform between them, apart from the requests that did not switch', async () => {
    h = await createHarness({
      environments: {
        production: { twoPersonRule: true, allow: { slack: { users: ['U0ALICE', 'U0BOB'] } } },
      },
      // (Short: the test moves the bot's clock by hand while Redis's, which the history matches moves
      // on, runs on; hosts' clocks keep pace, so these jumps must stay well within its minute.)
      ttlMs: 10_000,
    });
    const x = h;
    x.clock.set(Date.now());
    const reporter = new RecordingReporter();
    // One clock for the bot, the worker and the platform, as on hosts whose clocks agree.
    worker = await startWorker(x, x.platform, reporter, x.clock);
    const rollBack = async () => {
      const planned = await x.flow.plan(alice, 'rollback', 'production');
      if (!planned.ok) throw new Error(planned.refusal.message);
      // (A job reports its progress to the messages showing it.)
      await x.flow.attachMessage(planned.plan.id, msg);
      expect((await x.flow.confirm(alice, planned.plan.id)).status).toBe('awaiting_approval');
      const from = reporter.reports.length;
      expect((await x.flow.approve(bob, planned.plan.id)).status).toBe('enqueued');
      expect((await toEnd(x, reporter, from)).outcome).toBe('succeeded');
      await x.clock.advance(1_000);
    };

    // Two rollbacks (the same switch: one plan id), and between them a promote made on the platform.
    await rollBack();
    await switchDirectly(x, 'promote', 'production', 'dep_4kq9wz');
    await x.clock.advance(1_000);
    await rollBack();
    // Then requests that did not switch: one refused to Carol and left to expire, one confirmed and
    // left waiting for approval until it expired, one cancelled.
    const promote = await x.flow.plan(bob, 'promote', 'production');
    if (!promote.ok) throw new Error(promote.refusal.message);
    expect((await x.flow.confirm(carol, promote.plan.id)).status).toBe('refused');
    const back = await x.flow.plan(alice, 'rollback', 'production', 'dep_2mc5ty');
    if (!back.ok) throw new Error(back.refusal.message);
    expect((await x.flow.confirm(alice, back.plan.id)).status).toBe('awaiting_approval');
    await x.clock.advance(11_000);
    const other = await x.flow.plan(bob, 'rollback', 'production', 'dep_1ab3cd');
    if (!other.ok) throw new Error(other.refusal.message);
    expect((await x.flow.cancel(bob, other.plan.id)).status).toBe('cancelled');

    const reply = await new ChatService({ flow: x.flow, clock: x.clock }).command(alice, 'deployments', [
      'production',
    ]);
    const list = (label: string) =>
      reply.view.blocks.flatMap((b) =>
        b.type === 'list' && b.label.startsWith(label) ? b.items.map((it) => plainText(it.spans)) : [],
      );
    // Each line's time (20 characters and " · ") aside.
    const untimed = (lines: string[]) => lines.map((l) => l.replace(/^\d{4}-\d\d-\d\d \d\d:\d\d UTC · /, ''));
    expect(untimed(list('Switches'))).toEqual([
      'rollback dep_4kq9wz → dep_3hd7xa · succeeded · by Alice, approved by Bob',
      'promote dep_3hd7xa → dep_4kq9wz · outside Switchyard, by someone else (as the platform records it)',
      'rollback dep_4kq9wz → dep_3hd7xa · succeeded · by Alice, approved by Bob',
      expect.stringMatching(
        / UTC · dep_1ab3cd → … 2 more … → dep_4kq9wz went live in turn · 4 automatic deploys by the platform$/,
      ),
    ]);
    // (The expiries are recorded when /deployments finds them, here after the cancel: the sweep that
    // finds them within seconds of their time does not run in this test.)
    expect(untimed(list('Other requests'))).toEqual([
      'resume automatic deploys on dep_3hd7xa · expired: nobody confirmed it · asked by Bob',
      'rollback dep_3hd7xa → dep_2mc5ty · expired waiting for approval · asked and confirmed by Alice',
      'rollback dep_3hd7xa → dep_1ab3cd · cancelled by Bob',
    ]);
    expect(untimed(list('Refused clicks'))).toEqual([
      'resume automatic deploys on dep_3hd7xa · refused a click by Carol: not allowed (forbidden)',
    ]);
  });

  it.each([
    { workerAheadMs: 90_000, redisAheadMs: 0, clocks: 'a worker 90 s ahead' },
    { workerAheadMs: -2 * 3_600_000, redisAheadMs: 0, clocks: 'a worker 2 h behind' },
    // (The bot's and the worker's clocks agree: this pins the move's time being put on Redis's clock.)
    { workerAheadMs: 0, redisAheadMs: 3 * 3_600_000, clocks: "Redis's clock 3 h ahead of every other" },
  ])(
    "does not call Switchyard's own rollback a move outside it ($clocks)",
    async ({ workerAheadMs, redisAheadMs }) => {
      h = await createHarness();
      const x = h;
      // The bot's clock (the local platform's too) against Redis's real one.
      x.clock.set(Date.now() - redisAheadMs);
      const reporter = new RecordingReporter();
      const workerClock: Clock = {
        now: () => x.clock.now() + workerAheadMs,
        sleep: (ms, signal) => x.clock.sleep(ms, signal),
      };
      worker = await startWorker(x, x.platform, reporter, workerClock);
      const planned = await x.flow.plan(alice, 'rollback', 'production');
      if (!planned.ok) throw new Error(planned.refusal.message);
      await x.flow.attachMessage(planned.plan.id, msg);
      expect((await x.flow.confirm(alice, planned.plan.id)).status).toBe('enqueued');
      expect((await toEnd(x, reporter, 0)).outcome).toBe('succeeded');

      const reply = await new ChatService({ flow: x.flow, clock: x.clock }).command(alice, 'deployments', [
        'production',
      ]);
      const switches = reply.view.blocks.flatMap((b) =>
        b.type === 'list' && b.label.startsWith('Switches') ? b.items.map((it) => plainText(it.spans)) : [],
      );
      expect(switches.join('\n')).not.toContain('outside Switchyard');
      expect(switches[0]).toMatch(/ UTC · rollback dep_4kq9wz → dep_3hd7xa · succeeded · by Alice$/);
    },
  );
});
