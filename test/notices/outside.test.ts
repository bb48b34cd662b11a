/**
 * A rollback done by hand (the platform's dashboard, its CLI) is announced as traffic moving outside
 * Switchyard, even when a Switchyard job for the same target ran shortly before and ended without
 * switching (stale or refused): only a run that may have had the platform switch explains a move. A run
 * that ended failed explains only a move made before its end: a move to its target after it (the
 * platform finishing a switch the job gave up on) is announced as completing the failed switch.
 */
import { afterEach, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/audit.js';
import type { ActingUser } from '../../src/permissions.js';
import type { DeployPlatform, OperationRef, OperationStatus } from '../../src/platform/port.js';
import { formatTime } from '../../src/views/format.js';
import { createWorld, nth, viewText, WaitingReporter, type World } from './world.js';

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
