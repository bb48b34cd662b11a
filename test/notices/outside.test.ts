/**
 * A rollback done by hand (the platform's dashboard, its CLI) is announced as traffic moving outside
 * Switchyard, even when a Switchyard job for the same target ran shortly before and ended without
 * switching (stale or refused): only a run that may have had the platform switch explains a move.
 */
import { afterEach, expect, it } from 'vitest';
import type { ActingUser } from '../../src/permissions.js';
import { createWorld, WaitingReporter, type World } from './world.js';

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
