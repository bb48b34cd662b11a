/**
 * A rollback done by hand (the platform's dashboard, its CLI) is announced as traffic moving outside
 * Switchyard, even when a Switchyard job for the same target ran shortly before and ended without
 * switching (stale or refused): only a run that may have had the platform switch explains a move. A run
 * that ended failed explains only a move made before its end: a move to its target after it (the
 * platform finishing a switch the job gave up on) is announced as completing the failed switch, and the
 * job's own message gets an update saying so.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConsoleSurface } from '../../handlers/console/surface.js';
import type { AuditEntry } from '../../src/audit.js';
import { textView } from '../../src/chat-sinks.js';
import { PlatformHttpError } from '../../src/errors.js';
import { type NoticeOutcome, noticesDefaults } from '../../src/notices.js';
import type { ActingUser } from '../../src/permissions.js';
import type {
  DeployPlatform,
  OperationRef,
  OperationStatus,
  SwitchRequest,
} from '../../src/platform/port.js';
import type { MessageRef, Progress, Reporter } from '../../src/progress.js';
import { jobIdForPlan } from '../../src/queue.js';
import { formatTime } from '../../src/views/format.js';
import { progressView } from '../../src/views/model.js';
import type { MessageView } from '../../src/views/types.js';
import {
  createWorld,
  nth,
  RecordingPoster,
  type StartedNotices,
  unkeyLike,
  viewText,
  WaitingReporter,
  type World,
} from './world.js';

const alice: ActingUser = { surface: 'slack', userId: 'U0ALICE', displayName: 'Alice' };
let w: World | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

it('a dashboard rollback after a Switchyard rollback that ended stale (nothing done) is announced', async () => {
  w = await createWorld();
  const n = await w.notices();
  const older = await w.pushAndBuild('production', [n]);
  await w.pushAndBuild('production', [n]);
  const planned = await w.flow.plan(alice, 'rollback', 'production');
  if (!planned.ok) throw new Error(planned.refusal.message);
  expect(planned.plan.target.id).toBe(older.id);
  await w.flow.attachMessage(planned.plan.id, {
    surface: 'slack',
    channel: 'C0ALERTS',
    messageId: '1700000000.000100',
  });
  const confirmed = await w.flow.confirm(alice, planned.plan.id);
  expect(confirmed.status).toBe('enqueued');
  // Before a worker takes the job, a push goes live: the job will find its plan stale.
  const newest = await w.pushAndBuild('production', [n]);
  expect((await w.platform.snapshot('production')).environment.currentDeploymentId).toBe(newest.id);
  const reporter = new WaitingReporter();
  await w.worker(reporter);
  const done = await reporter.waitFor((p) => p.outcome !== undefined);
  expect(done.outcome).toBe('stale');
  expect(done.message).toContain('Nothing was done');

  // Ten minutes later the on-call rolls back to the same target on the dashboard.
  await w.advance(10 * 60_000, [n]);
  await w.switchDirectly('rollback', 'production', older.id, [n], 'Dana (dashboard)');
  // Nobody in chat was told: Switchyard's stale job (which did nothing) is credited with the move.
  const skippedAsJob = n.outcomes.filter(
    (o) => o.status === 'skipped' && o.reason.startsWith('moved by Switchyard job'),
  );
  expect(skippedAsJob).toEqual([]);
  expect(w.slack.titles()).toContain(`Traffic on production moved to ${older.id}`);
});

it('a rollback the platform completes after its job ended failed ("may still complete") is announced as completing it', async () => {
  w = await createWorld();
  const n = await w.notices();
  const older = await w.pushAndBuild('production', [n]);
  const newer = await w.pushAndBuild('production', [n]);
  // 31 minutes later the older deployment is in standby: rolling back to it reactivates it first.
  await w.advance(31 * 60_000, [n]);
  w.platform.maintain();
  expect((await w.platform.getDeployment(older.id))?.status).toBe('standby');
  const planned = await w.flow.plan(alice, 'rollback', 'production');
  if (!planned.ok) throw new Error(planned.refusal.message);
  expect(planned.plan.target.id).toBe(older.id);
  await w.flow.attachMessage(planned.plan.id, {
    surface: 'slack',
    channel: 'C0ALERTS',
    messageId: '1700000000.000100',
  });
  expect((await w.flow.confirm(alice, planned.plan.id)).status).toBe('enqueued');

  // The worker's platform stops waiting while the target is still reactivating, as Unkey's and
  // Vercel's adapters do at their operation timeout: not definitive, the platform goes on.
  const world = w;
  const platform = Object.assign(Object.create(world.platform) as DeployPlatform, {
    operation: async (ref: OperationRef): Promise<OperationStatus> => {
      const status = await world.platform.operation(ref);
      if (status.state === 'succeeded' || status.state === 'failed') return status;
      return {
        id: ref.id,
        state: 'failed',
        error: {
          code: 'operation_timeout',
          message: 'still reactivating at the timeout',
          mayStillComplete: true,
        },
        updatedAt: world.clock.now(),
      };
    },
  });
  const reporter = new WaitingReporter();
  await w.worker(reporter, { platform });
  const done = await reporter.waitFor((p) => p.outcome !== undefined);
  expect(done.outcome).toBe('failed');
  expect(done.message).toContain('may still complete');
  expect(done.message).toContain(`production is serving ${newer.id}`);
  // The job has ended: its `failed` audit entry is written (at the clock's time now).
  await w.queue.waitForEnd(done.jobId);
  const failedAt = w.clock.now();

  // The platform finishes reactivating and switches: production is on the older deployment now.
  await w.advance(2_000, [n]);
  expect((await w.platform.snapshot('production')).environment.currentDeploymentId).toBe(older.id);

  // Not taken for a move the job's message reported (it says failed, serving the newer one).
  expect(
    n.outcomes.filter((o) => o.status === 'skipped' && o.reason.startsWith('moved by Switchyard job')),
  ).toEqual([]);
  const moved = w.slack.posts.filter((p) => p.view.title === `Traffic on production moved to ${older.id}`);
  expect(moved).toHaveLength(1);
  const text = viewText(nth(moved, 0).view);
  expect(text).toContain('This completes the rollback Switchyard reported failed');
  expect(text).toContain(`the rollback to ${older.id} that Alice asked Switchyard for (job ${done.jobId})`);
  expect(text).toContain(`ended failed at ${formatTime(failedAt)}`);
  expect(text).not.toContain('outside Switchyard');
});

// Each attempt of a job writes its own `started` entry: the earlier attempts' entries have no end of
// their own, the job's end (here `failed`) is theirs too.
it('a retried rollback whose answer was lost (5xx) and that ended failed is announced as completed when the platform finishes it, and its message is updated', async () => {
  w = await createWorld();
  const world = w;
  const n = await w.notices({ jobs: w.queue });
  const older = await w.pushAndBuild('production', [n]);
  const newer = await w.pushAndBuild('production', [n]);
  await w.advance(31 * 60_000, [n]);
  w.platform.maintain();
  expect((await w.platform.getDeployment(older.id))?.status).toBe('standby');
  const planned = await w.flow.plan(alice, 'rollback', 'production');
  if (!planned.ok) throw new Error(planned.refusal.message);
  expect(planned.plan.target.id).toBe(older.id);
  const jobMessage: MessageRef = { surface: 'slack', channel: 'C0ALERTS', messageId: '1700000000.000900' };
  await w.flow.attachMessage(planned.plan.id, jobMessage);
  expect((await w.flow.confirm(alice, planned.plan.id)).status).toBe('enqueued');

  // The platform's gateway fails: the first rollback request reaches the platform (it starts
  // reactivating the target) but its answer is a 502; every later request gets a 503.
  let calls = 0;
  const platform = Object.assign(Object.create(world.platform) as DeployPlatform, {
    rollback: async (request: SwitchRequest): Promise<OperationRef> => {
      calls++;
      if (calls === 1) await world.platform.rollback(request);
      // Time passes between attempts (the backoff): 100 ms each, well within the 1 s reactivation.
      await world.clock.advance(100);
      throw new PlatformHttpError(
        calls === 1 ? 502 : 503,
        'POST',
        'http://platform.test/rollback',
        undefined,
        'gateway',
        {
          retry: true,
        },
      );
    },
  });
  await w.worker(new WaitingReporter(), { platform, retry: { baseDelayMs: 5, maxDelayMs: 20 } });
  const done = await w.queue.waitForEnd(jobIdForPlan(planned.plan.id));
  if (done === undefined) throw new Error('the switch job is gone');
  expect(done.outcome).toBe('failed');
  expect(done.attempt).toBeGreaterThan(1);
  expect(done.message).toContain('may still complete');
  expect(done.message).toContain(`production is serving ${newer.id}`);
  // One `started` entry per attempt, and one end: the job's `failed`.
  const own = (await w.audit.recent('production', 100)).filter((e) => e.jobId === done.jobId);
  expect(own.filter((e) => e.event === 'started').length).toBe(done.attempt);
  expect(own.filter((e) => e.event === 'failed')).toHaveLength(1);

  // The platform finishes reactivating and switches: production is on the older deployment now.
  await w.advance(2_000, [n]);
  const snap = await w.platform.snapshot('production');
  expect(snap.environment.currentDeploymentId).toBe(older.id);
  const movedAt = snap.liveHistory.at(-1)?.since ?? Number.NaN;

  // Not credited to the job (an earlier attempt's `started` entry) as a move its message reported.
  expect(
    n.outcomes.filter((o) => o.status === 'skipped' && o.reason.startsWith('moved by Switchyard job')),
  ).toEqual([]);
  const moved = w.slack.posts.filter((p) => p.view.title === `Traffic on production moved to ${older.id}`);
  expect(moved).toHaveLength(1);
  const text = viewText(nth(moved, 0).view);
  expect(text).toContain('This completes the rollback Switchyard reported failed');
  expect(text).toContain(`(job ${done.jobId})`);
  // The job's message, which said it failed, says the platform completed it.
  const edits = world.slack.updates.filter((u) => u.ref.messageId === jobMessage.messageId);
  expect(edits.map((u) => u.view.title)).toContain(
    `Rollback of production to ${older.id} failed, then completed by the platform`,
  );
  expect(viewText(nth(edits, edits.length - 1).view)).toContain(updateLine(movedAt, older.id));
});

it('a run of several attempts explains one move only: a move explained while it was under way uses it up, also once it has ended', async () => {
  w = await createWorld();
  const world = w;
  const entries: AuditEntry[] = [];
  const entry = (event: AuditEntry['event'], jobId: string, targetId: string, at: number): void => {
    entries.unshift({
      at,
      environment: 'production',
      action: 'rollback',
      event,
      jobId,
      targetId,
      actor: alice,
    });
  };
  const n = await w.notices({ audit: { recent: async () => entries } });
  const older = await w.pushAndBuild('production', [n]);
  const newer = await w.pushAndBuild('production', [n]);
  const skippedAs = (jobId: string) =>
    n.outcomes.filter(
      (o) => o.status === 'skipped' && o.reason.startsWith(`moved by Switchyard job ${jobId}`),
    );
  const movedTitles = () =>
    w?.slack.titles().filter((t) => t.startsWith('Traffic on production moved')) ?? [];

  // Job A: a first attempt, then a retry that switches and succeeds. The move is in its message.
  entry('started', 'sw_a', older.id, world.clock.now());
  await w.advance(1_000, [n]);
  entry('started', 'sw_a', older.id, world.clock.now());
  await w.switchDirectly('rollback', 'production', older.id, [n], 'Alice');
  entry('succeeded', 'sw_a', older.id, world.clock.now());
  expect(skippedAs('sw_a')).toHaveLength(1);
  expect(movedTitles()).toEqual([]);
  // The same switch made again by hand (after a promote back) is announced: the first attempt's
  // entry is the same run, not one that explains another move.
  await w.advance(1_000, [n]);
  await w.switchDirectly('promote', 'production', newer.id, [n]);
  await w.switchDirectly('rollback', 'production', older.id, [n]);
  expect(skippedAs('sw_a')).toHaveLength(1);
  expect(movedTitles()).toEqual([
    `Traffic on production moved to ${newer.id}`,
    `Traffic on production moved to ${older.id}`,
  ]);

  // Job B: the move comes during its second attempt (explained while the run is under way), then the
  // job ends failed (say, its verification). A later move to its target by hand is an ordinary move,
  // not one completing the failure: the run's move is already in its message.
  await w.advance(1_000, [n]);
  await w.switchDirectly('promote', 'production', newer.id, [n]);
  entry('started', 'sw_b', older.id, world.clock.now());
  await w.advance(1_000, [n]);
  entry('started', 'sw_b', older.id, world.clock.now());
  await w.switchDirectly('rollback', 'production', older.id, [n], 'Alice');
  expect(skippedAs('sw_b')).toHaveLength(1);
  entry('failed', 'sw_b', older.id, world.clock.now());
  await w.advance(1_000, [n]);
  await w.switchDirectly('promote', 'production', newer.id, [n]);
  await w.switchDirectly('rollback', 'production', older.id, [n]);
  expect(skippedAs('sw_b')).toHaveLength(1);
  const last = nth(w.slack.posts, w.slack.posts.length - 1);
  expect(last.view.title).toBe(`Traffic on production moved to ${older.id}`);
  expect(viewText(last.view)).toContain('outside Switchyard');
  expect(viewText(last.view)).not.toContain('reported failed');
});

it('a failed run explains a move made before it failed; one after it is announced, and the run completes one move only', async () => {
  w = await createWorld();
  const world = w;
  const entries: AuditEntry[] = [];
  const entry = (event: AuditEntry['event'], jobId: string, targetId: string, at: number): void => {
    entries.unshift({
      at,
      environment: 'production',
      action: 'rollback',
      event,
      jobId,
      targetId,
      actor: alice,
    });
  };
  const n = await w.notices({ audit: { recent: async () => entries } });
  const older = await w.pushAndBuild('production', [n]);
  const newer = await w.pushAndBuild('production', [n]);

  // Job A switched (the move), then failed (say, its verification): the move is in its message.
  entry('started', 'sw_a', older.id, world.clock.now());
  entry('failed', 'sw_a', older.id, world.clock.now() + 1_000);
  await w.switchDirectly('rollback', 'production', older.id, [n], 'Alice');
  expect(
    n.outcomes.filter((o) => o.status === 'skipped' && o.reason.startsWith('moved by Switchyard job sw_a')),
  ).toHaveLength(1);
  expect(w.slack.titles().filter((t) => t.startsWith('Traffic on production moved'))).toEqual([]);

  // Back to the newer one by hand: announced.
  await w.advance(2_000, [n]);
  await w.switchDirectly('promote', 'production', newer.id, [n], 'Dana (dashboard)');
  expect(w.slack.titles().at(-1)).toBe(`Traffic on production moved to ${newer.id}`);

  // Job B failed; the same rollback goes through a second later: it completes job B's.
  entry('started', 'sw_b', older.id, world.clock.now());
  entry('failed', 'sw_b', older.id, world.clock.now());
  await w.advance(1_000, [n]);
  await w.switchDirectly('rollback', 'production', older.id, [n], 'Alice');
  const completing = nth(w.slack.posts, w.slack.posts.length - 1);
  expect(completing.view.title).toBe(`Traffic on production moved to ${older.id}`);
  expect(viewText(completing.view)).toContain('This completes the rollback Switchyard reported failed');
  expect(viewText(completing.view)).toContain('(job sw_b)');

  // The same rollback made again later is an ordinary move outside Switchyard: job B completed once.
  await w.advance(1_000, [n]);
  await w.switchDirectly('promote', 'production', newer.id, [n], 'Dana (dashboard)');
  await w.switchDirectly('rollback', 'production', older.id, [n], 'Dana (dashboard)');
  const again = nth(w.slack.posts, w.slack.posts.length - 1);
  expect(again.view.title).toBe(`Traffic on production moved to ${older.id}`);
  expect(viewText(again.view)).toContain('outside Switchyard');
  expect(viewText(again.view)).not.toContain('reported failed');
});

const ofStatus = <S extends NoticeOutcome['status']>(outcomes: readonly NoticeOutcome[], status: S) =>
  outcomes.filter((o): o is Extract<NoticeOutcome, { status: S }> => o.status === status);

/**
 * A rollback to a standby deployment confirmed in chat (its message `message`), whose job ends failed
 * ("may still complete"): the worker's platform stops waiting while the target is still reactivating,
 * as Unkey's and Vercel's adapters do at their operation timeout. Then the platform finishes and
 * switches. Returns the deployments, the job's final progress and when the platform moved traffic.
 */
async function completedAfterFailure(
  world: World,
  services: readonly StartedNotices[],
  message: MessageRef,
  reporter: Reporter,
) {
  const older = await world.pushAndBuild('production', services);
  const newer = await world.pushAndBuild('production', services);
  await world.advance(31 * 60_000, services);
  world.platform.maintain();
  expect((await world.platform.getDeployment(older.id))?.status).toBe('standby');
  const planned = await world.flow.plan(alice, 'rollback', 'production');
  if (!planned.ok) throw new Error(planned.refusal.message);
  await world.flow.attachMessage(planned.plan.id, message);
  expect((await world.flow.confirm(alice, planned.plan.id)).status).toBe('enqueued');
  const platform = Object.assign(Object.create(world.platform) as DeployPlatform, {
    operation: async (ref: OperationRef): Promise<OperationStatus> => {
      const status = await world.platform.operation(ref);
      if (status.state === 'succeeded' || status.state === 'failed') return status;
      return {
        id: ref.id,
        state: 'failed',
        error: {
          code: 'operation_timeout',
          message: 'still reactivating at the timeout',
          mayStillComplete: true,
        },
        updatedAt: world.clock.now(),
      };
    },
  });
  await world.worker(reporter, { platform });
  // The job has ended: its `failed` audit entry is written.
  const done = await world.queue.waitForEnd(jobIdForPlan(planned.plan.id));
  if (done === undefined) throw new Error('the switch job is gone');
  expect(done.outcome).toBe('failed');
  expect(done.message).toContain(`production is serving ${newer.id}`);
  // The platform finishes reactivating and switches.
  await world.advance(2_000, services);
  const snap = await world.platform.snapshot('production');
  expect(snap.environment.currentDeploymentId).toBe(older.id);
  const movedAt = snap.liveHistory.at(-1)?.since ?? Number.NaN;
  return { older, newer, done, movedAt };
}

/** The update line a failed rollback's message gets once the platform completed it. */
const updateLine = (movedAt: number, target: string) =>
  `Update ${formatTime(movedAt)}: the platform completed this rollback after the job had given up; production is serving ${target}.`;

it("the job's own message gets an update saying the platform completed the switch: once across two replicas, and made again later", async () => {
  w = await createWorld();
  const world = w;
  const a = await w.notices({ jobs: w.queue });
  const b = await w.notices({ jobs: w.queue });
  const both = [a, b];
  const jobMessage: MessageRef = { surface: 'slack', channel: 'C0ALERTS', messageId: '1700000000.000300' };
  const { older, newer, done, movedAt } = await completedAfterFailure(
    w,
    both,
    jobMessage,
    new WaitingReporter(),
  );
  const edits = () => world.slack.updates.filter((u) => u.ref.messageId === jobMessage.messageId);

  expect(edits()).toHaveLength(1);
  const updated = nth(edits(), 0).view;
  expect(updated.title).toBe(`Rollback of production to ${older.id} failed, then completed by the platform`);
  const text = viewText(updated);
  expect(text.split(updateLine(movedAt, older.id))).toHaveLength(2);
  expect(text).toContain('Reported by the platform, not verified by Switchyard');
  // The job's own end is still there, as of when it ended.
  expect(text).toContain(`When the job ended: ${done.message}`);
  expect(text).toContain(`production is serving ${newer.id}`);
  // One replica made it (the one that claimed the run), and the notice says the message is updated.
  expect([a, b].map((n) => ofStatus(n.outcomes, 'job_updated').length).sort()).toEqual([0, 1]);
  const moved = world.slack.posts.filter(
    (p) => p.view.title === `Traffic on production moved to ${older.id}`,
  );
  expect(moved).toHaveLength(1);
  expect(viewText(nth(moved, 0).view)).toContain('with an update saying this');

  // The worker's own final edit, held up on its way to the chat API, lands after the update: the
  // update is made once more, `jobUpdateAgainMs` later, and only once more.
  await world.slack.update(jobMessage, progressView(done));
  for (let i = 0; i < 5; i++) await w.advance(noticesDefaults.jobUpdateAgainMs / 4, both);
  expect(edits()).toHaveLength(3);
  expect(viewText(nth(edits(), 2).view)).toBe(text);
  const again = [...a.outcomes, ...b.outcomes].filter((o) => o.status === 'job_updated' && o.again === true);
  expect(again).toHaveLength(1);
  for (let i = 0; i < 5; i++) await w.advance(noticesDefaults.jobUpdateAgainMs / 2, both);
  expect(edits()).toHaveLength(3);
});

it('a console message of the job shows the update where its progress was shown (one process: worker, console and notices)', async () => {
  w = await createWorld();
  const surface = new ConsoleSurface({ clock: w.clock });
  const n = await w.notices({ jobs: w.queue, posters: [surface.poster()] });
  const jobMessage = surface.postView(textView('Rollback of production', ['Confirm?']));
  const waiting = new WaitingReporter();
  const reporter: Reporter = {
    async report(progress: Progress, refs: readonly MessageRef[]) {
      await surface.report(progress, refs);
      await waiting.report(progress);
    },
  };
  const { older, movedAt } = await completedAfterFailure(w, [n], jobMessage, reporter);
  const entry = surface.get(jobMessage.messageId);
  expect(entry?.message?.title).toBe(
    `Rollback of production to ${older.id} failed, then completed by the platform`,
  );
  const shown = JSON.stringify(entry?.message?.blocks);
  expect(shown).toContain(`Update ${formatTime(movedAt)}: `);
  expect(shown).toContain(
    'the platform completed this rollback after the job had given up; production is serving ',
  );
  expect(ofStatus(n.outcomes, 'job_updated').map((o) => o.ref)).toEqual([jobMessage]);
});

/** A recording poster whose first `failures` edits fail (a fault that may pass). */
class FlakyEdits extends RecordingPoster {
  failures = 1;
  readonly tried: MessageRef[] = [];
  override async update(ref: MessageRef, view: MessageView): Promise<void> {
    this.tried.push(ref);
    if (this.failures > 0) {
      this.failures -= 1;
      throw new Error('chat API unreachable');
    }
    return super.update(ref, view);
  }
}

it('a job that ran again since is not updated, neither at once nor when a failed edit is tried again', async () => {
  w = await createWorld();
  const world = w;
  const entries: AuditEntry[] = [];
  const entry = (event: AuditEntry['event'], jobId: string, targetId: string, at: number): void => {
    entries.unshift({
      at,
      environment: 'production',
      action: 'rollback',
      event,
      jobId,
      targetId,
      actor: alice,
    });
  };
  const message: MessageRef = { surface: 'slack', channel: 'C0ALERTS', messageId: '1700000000.000400' };
  // The jobs' final progress, as the queue reads it (per job id).
  const progress = new Map<string, Progress>();
  const ended = (jobId: string, targetId: string, at: number): Progress => ({
    jobId,
    planId: `plan_${jobId}`,
    action: 'rollback',
    environment: 'production',
    targetId,
    fromId: 'dep_from',
    requestedBy: alice,
    steps: [{ step: 'switching', state: 'failed', startedAt: at - 1_000, endedAt: at }],
    outcome: 'failed',
    code: 'platform_operation_failed',
    message: 'The platform may still complete it.',
    traffic: [],
    attempt: 1,
    updatedAt: at,
  });
  const poster = new FlakyEdits('slack', w.clock);
  const n = await w.notices({
    audit: { recent: async () => entries },
    jobs: { progress: async (id) => progress.get(id), messages: async () => [message] },
    posters: [poster],
    postRetryMs: 5_000,
  });
  const older = await w.pushAndBuild('production', [n]);
  const newer = await w.pushAndBuild('production', [n]);

  // Job A failed, and ran again since (its progress is a later run's): its message is not touched.
  progress.set('sw_a', { ...ended('sw_a', older.id, world.clock.now() + 5_000), outcome: 'succeeded' });
  entry('started', 'sw_a', older.id, world.clock.now());
  entry('failed', 'sw_a', older.id, world.clock.now());
  await w.advance(1_000, [n]);
  await w.switchDirectly('rollback', 'production', older.id, [n], 'Alice');
  expect(viewText(nth(poster.posts, poster.posts.length - 1).view)).toContain('(job sw_a)');
  expect(viewText(nth(poster.posts, poster.posts.length - 1).view)).toContain('still shows its failure');
  expect(poster.tried).toEqual([]);

  // Job B failed; its first edit meets a fault, and before it is tried again the job runs again.
  await w.switchDirectly('promote', 'production', newer.id, [n]);
  progress.set('sw_b', ended('sw_b', older.id, world.clock.now()));
  entry('started', 'sw_b', older.id, world.clock.now());
  entry('failed', 'sw_b', older.id, world.clock.now());
  await w.advance(1_000, [n]);
  await w.switchDirectly('rollback', 'production', older.id, [n], 'Alice');
  expect(poster.tried).toEqual([message]);
  progress.set('sw_b', { ...ended('sw_b', older.id, world.clock.now()), outcome: 'succeeded' });
  await w.advance(5_000, [n]);
  expect(poster.tried).toEqual([message]);
  expect(poster.updates).toEqual([]);
  expect(
    n.outcomes.filter(
      (o) => o.status === 'skipped' && o.reason.includes('job sw_b') && o.reason.includes('ran again since'),
    ),
  ).toHaveLength(1);
});

// A polled platform (Unkey, Vercel) sees the state at each poll: a Switchyard switch undone on the
// dashboard before the next poll is never seen, so its run stays unclaimed. The audit is read by the
// entries' and the event's own times here, both on the test's clock (Redis's own clock, which the
// audit's write times are on, does not follow the test's minutes).
describe('a Switchyard run that ended succeeded, on a polled platform', () => {
  const onTestClock = (world: World) => ({
    recent: (environment: string, limit?: number) => world.audit.recent(environment, limit),
  });

  /** Rolls production back to `target` through Switchyard; resolves once the job's end is written. */
  async function rollbackThroughSwitchyard(world: World, target: string): Promise<string> {
    const planned = await world.flow.plan(alice, 'rollback', 'production');
    if (!planned.ok) throw new Error(planned.refusal.message);
    expect(planned.plan.target.id).toBe(target);
    await world.flow.attachMessage(planned.plan.id, {
      surface: 'slack',
      channel: 'C0ALERTS',
      messageId: '1700000000.000100',
    });
    expect((await world.flow.confirm(alice, planned.plan.id)).status).toBe('enqueued');
    await world.worker(new WaitingReporter());
    const done = await world.queue.waitForEnd(jobIdForPlan(planned.plan.id));
    expect(done?.outcome).toBe('succeeded');
    return jobIdForPlan(planned.plan.id);
  }

  it('a dashboard rollback made after the run was undone between two polls is announced, naming the run it may be', async () => {
    w = await createWorld();
    const u = unkeyLike(w);
    const n = await w.notices({ platform: u.platform, audit: onTestClock(w) });
    const older = await w.pushAndBuild('production', [n]);
    const newer = await w.pushAndBuild('production', [n]);

    // Between two polls: Alice's rollback through Switchyard, and someone promoting the newer
    // deployment back on the dashboard seconds later. The next poll sees production as it was.
    u.hold();
    const jobId = await rollbackThroughSwitchyard(w, older.id);
    const succeededAt = w.clock.now();
    await w.switchDirectly('promote', 'production', newer.id, [n]);
    u.hold(false);

    // Twenty minutes on, someone rolls back to the older deployment on the dashboard.
    await w.advance(20 * 60_000, [n]);
    await w.switchDirectly('rollback', 'production', older.id, [n], 'Dana (dashboard)');
    expect(
      n.outcomes.filter((o) => o.status === 'skipped' && o.reason.startsWith('moved by Switchyard job')),
    ).toEqual([]);
    const moved = w.slack.posts.filter((p) => p.view.title === `Traffic on production moved to ${older.id}`);
    expect(moved).toHaveLength(1);
    const view = nth(moved, 0).view;
    expect(view.summary).toBe(
      `Traffic on production moved to ${older.id}, seen 20 minutes after Switchyard's rollback to it succeeded: that rollback seen late, or the same switch made again outside Switchyard.`,
    );
    expect(viewText(view)).toContain(
      `the rollback to ${older.id} that Alice asked for (job ${jobId}) succeeded at ${formatTime(succeededAt)}. Either this is that rollback, seen late`,
    );

    // The run is named once: the same rollback made again later is an ordinary move outside Switchyard.
    await w.advance(60_000, [n]);
    await w.switchDirectly('promote', 'production', newer.id, [n]);
    await w.advance(60_000, [n]);
    await w.switchDirectly('rollback', 'production', older.id, [n]);
    const again = w.slack.posts.filter((p) => p.view.title === `Traffic on production moved to ${older.id}`);
    expect(again).toHaveLength(2);
    expect(nth(again, 1).view.summary).toBe(`Traffic on production moved to ${older.id} outside Switchyard.`);
  });

  it("the run's own move, seen by the poll after its job ended, is the job's: not announced", async () => {
    w = await createWorld();
    const u = unkeyLike(w);
    const n = await w.notices({ platform: u.platform, audit: onTestClock(w) });
    const older = await w.pushAndBuild('production', [n]);
    await w.pushAndBuild('production', [n]);

    u.hold();
    const jobId = await rollbackThroughSwitchyard(w, older.id);
    // The next poll, 15 s after the job ended, sees the rollback (and stamps it with its own time).
    await w.advance(15_000, [n]);
    u.hold(false);
    const moves = u.held.splice(0).filter((e) => e.type === 'traffic.moved');
    expect(moves.map((e) => e.type === 'traffic.moved' && e.to)).toEqual([older.id]);
    for (const e of moves) u.deliver({ ...e, at: w.clock.now() });
    await w.advance(0, [n]);

    expect(
      n.outcomes.filter((o) => o.status === 'skipped').map((o) => o.status === 'skipped' && o.reason),
    ).toContain(`moved by Switchyard job ${jobId} (reported in its message)`);
    expect(w.slack.titles().filter((t) => t.startsWith('Traffic on production moved'))).toEqual([]);
  });
});
