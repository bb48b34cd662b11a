/**
 * The rolled-back state in chat: a push while rolled back is announced "ready but not live" with a
 * Promote button that goes through the normal confirmation flow (ChatService, Flow, permissions, the
 * real queue and worker); reminders every `reminderEvery` on the ManualClock, held outside working
 * hours, stopping once someone promotes; `/deployments` says since when and by whom.
 */

import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/audit.js';
import { buildPlan } from '../../src/domain/plan.js';
import type { ActingUser } from '../../src/permissions.js';
import type { MessageRef } from '../../src/progress.js';
import { longDuration, plainText } from '../../src/views/format.js';
import type { MessageView } from '../../src/views/types.js';
import { BUILD_MS, createWorld, HOUR, nth, viewText, WaitingReporter, type World } from './world.js';

const alice: ActingUser = { surface: 'slack', userId: 'U0ALICE', displayName: 'Alice' };
const bob: ActingUser = { surface: 'slack', userId: 'U0BOB', displayName: 'Bob' };

const message: MessageRef = { surface: 'slack', channel: 'C0ALERTS', messageId: '1700000000.000100' };

let w: World | undefined;

afterEach(async () => {
  await w?.close();
  w = undefined;
});

function buttonId(view: MessageView, kind: string): string {
  const button = view.buttons.find((b) => b.action.kind === kind);
  if (!button) throw new Error(`no ${kind} button in "${view.title}"`);
  return button.actionId;
}

function reminders(world: World) {
  return world.slack.posts.filter((p) => p.view.title.startsWith('production is still rolled back'));
}

describe('rolled back: promote offer and reminders', () => {
  it('offers Promote for a push while rolled back; the click plans, permissions apply, the promote stops reminders', async () => {
    w = await createWorld({
      environments: { production: { allow: { slack: { users: ['U0ALICE'] } } } },
    });
    const n = await w.notices();
    const reporter = new WaitingReporter();
    await w.worker(reporter);
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Dana (dashboard)');
    const fresh = await w.pushAndBuild('production', [n], { message: 'Fix the checkout' });

    const offer = nth(w.slack.posts, 1).view;
    expect(offer.title).toBe(`${fresh.id} is ready but not live`);
    expect(offer.summary).toBe(`${fresh.id} is ready but not live: production is rolled back to dep_3hd7xa.`);
    expect(viewText(offer)).toContain('by Dana (dashboard)');
    expect(offer.buttons.map((b) => b.label)).toEqual([`Promote ${fresh.id}`]);

    // Anyone may ask for the plan; the confirmation view is the normal one.
    const planned = await w.chat.click(bob, buttonId(offer, 'promote'));
    expect(planned.outcome).toBe('planned');
    const confirmation = planned.post?.view;
    if (!confirmation) throw new Error('expected a confirmation to post');
    expect(confirmation.kind).toBe('confirmation');
    expect(confirmation.title).toBe(`Promote ${fresh.id} on production?`);
    // The surface posts it and attaches the posted message, as every surface does.
    await w.flow.attachMessage(planned.post?.planId ?? '', message);

    // Bob is not on production's allow list: his confirm is refused and nothing changes.
    const refused = await w.chat.click(bob, buttonId(confirmation, 'confirm'));
    expect(refused.outcome).toBe('refused');
    expect((await w.platform.snapshot('production')).environment.rolledBack).toBe(true);

    const confirmed = await w.chat.click(alice, buttonId(confirmation, 'confirm'));
    expect(confirmed.outcome).toBe('enqueued');
    const done = await reporter.waitFor((p) => p.outcome !== undefined);
    expect(done.outcome).toBe('succeeded');
    await n.idle();

    const snap = await w.platform.snapshot('production');
    expect(snap.environment.rolledBack).toBe(false);
    expect(snap.environment.currentDeploymentId).toBe(fresh.id);
    // The job reports its own promote: no "moved outside Switchyard" notice for it.
    expect(w.slack.posts).toHaveLength(2);
    expect(n.outcomes).toContainEqual(
      expect.objectContaining({
        status: 'skipped',
        reason: expect.stringMatching(/^moved by Switchyard job/),
      }),
    );
    // Promoted: no reminder comes any more.
    for (let i = 0; i < 4; i++) await w.advance(4 * HOUR, [n]);
    expect(reminders(w)).toHaveLength(0);
  });

  it('reminds every reminderEvery while rolled back and stops once someone promotes', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const n = await w.notices();
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const since = w.clock.now();

    await w.advance(4 * HOUR - 1, [n]);
    expect(reminders(w)).toHaveLength(0);
    await w.advance(1, [n]);
    expect(reminders(w).map((p) => p.at)).toEqual([since + 4 * HOUR]);
    const first = nth(reminders(w), 0).view;
    expect(first.title).toBe('production is still rolled back to dep_3hd7xa');
    expect(viewText(first)).toContain('for 4 hours');
    // Nothing newer is waiting: the button resumes automatic deploys on the current deployment.
    expect(first.buttons.map((b) => b.actionId)).toEqual(['sy1:promote:production:dep_3hd7xa']);

    // A push while rolled back: the next reminder offers it.
    const fresh = await w.pushAndBuild('production', [n]);
    await w.advance(4 * HOUR - BUILD_MS, [n]);
    expect(reminders(w).map((p) => p.at)).toEqual([since + 4 * HOUR, since + 8 * HOUR]);
    const second = nth(reminders(w), 1).view;
    expect(second.buttons.map((b) => b.label)).toEqual([`Promote ${fresh.id}`]);
    expect(viewText(second)).toContain(`Waiting to go live: ${fresh.id}`);

    await w.switchDirectly('promote', 'production', fresh.id, [n]);
    for (let i = 0; i < 3; i++) await w.advance(4 * HOUR, [n]);
    expect(reminders(w)).toHaveLength(2);
    // The dashboard promote itself is announced as a move outside Switchyard.
    expect(w.slack.titles()).toContain(`Traffic on production moved to ${fresh.id}`);
  });

  it('a fix pushed while rolled back is still offered after a second rollback further back', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const n = await w.notices();
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fix = await w.pushAndBuild('production', [n], { message: 'Fix the checkout' });
    // dep_3hd7xa proves bad too: rolled back further, past the fix's readiness.
    await w.switchDirectly('rollback', 'production', 'dep_2mc5ty', [n]);
    expect((await w.platform.snapshot('production')).environment.currentDeploymentId).toBe('dep_2mc5ty');

    await w.advance(4 * HOUR, [n]);
    const last = reminders(w).at(-1)?.view;
    if (!last) throw new Error('expected a reminder');
    expect(viewText(last)).toContain(`Waiting to go live: ${fix.id}`);
    expect(last.buttons.map((b) => b.label)).toEqual([`Promote ${fix.id}`]);
  });

  it('a reminder never offers a deployment rolled away from in the period, nor one older than the current one (as /promote)', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const n = await w.notices();
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const first = await w.pushAndBuild('production', [n], { message: 'First fix attempt' });
    const second = await w.pushAndBuild('production', [n], { message: 'Second fix attempt' });
    // The second attempt is tried while staying rolled back (a rollback to it): the first is older.
    await w.switchDirectly('rollback', 'production', second.id, [n]);
    await w.advance(4 * HOUR, [n]);
    const tried = reminders(w).at(-1)?.view;
    if (!tried) throw new Error('expected a reminder');
    expect(viewText(tried)).not.toContain('Waiting to go live');
    expect(tried.buttons.map((b) => b.actionId)).toEqual([`sy1:promote:production:${second.id}`]);

    // It proves bad too: rolled back again. The one rolled away from is not offered; the first
    // attempt, never live and newer than dep_3hd7xa, is (as /promote's default picks it).
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    await w.advance(4 * HOUR, [n]);
    const again = reminders(w).at(-1)?.view;
    if (!again || again === tried) throw new Error('expected a new reminder');
    expect(viewText(again)).not.toContain(`Waiting to go live: ${second.id}`);
    expect(viewText(again)).toContain(`Waiting to go live: ${first.id}`);
    const plan = buildPlan(await w.platform.snapshot('production'), {
      action: 'promote',
      now: w.clock.now(),
    });
    expect(plan.ok && plan.value.target.id).toBe(first.id);
  });

  it('a push while rolled back is offered even when the clock stepped back before it (newer by push order)', async () => {
    w = await createWorld();
    const n = await w.notices();
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const current = await w.platform.getDeployment('dep_3hd7xa');
    // The wall clock steps back to before the deployment production is rolled back to was made.
    w.clock.set((current?.createdAt ?? 0) - 60_000);
    const fresh = await w.pushAndBuild('production', [n]);
    expect(fresh.createdAt).toBeLessThan(current?.createdAt ?? 0);
    expect(w.slack.titles()).toContain(`${fresh.id} is ready but not live`);
  });

  it('a reminder still offers the waiting deployment once the 30-minute rule put it in standby', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const n = await w.notices();
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    // 31 minutes later the platform's time rule runs (maintenance is off in the test world)
    await w.advance(31 * 60_000, [n]);
    w.platform.maintain();
    await w.advance(1, [n]);
    expect((await w.platform.getDeployment(fresh.id))?.status).toBe('standby');
    expect((await w.platform.snapshot('production')).environment.rolledBack).toBe(true);

    await w.advance(4 * HOUR, [n]);
    const reminders = w.slack.posts.filter((p) => p.view.title.startsWith('production is still rolled back'));
    const first = nth(reminders, 0).view;
    expect(viewText(first)).toContain(`Waiting to go live: ${fresh.id}`);
    expect(first.buttons.map((b) => b.label)).toEqual([`Promote ${fresh.id}`]);
  });

  it('holds reminders outside working hours and posts the latest one when they begin', async () => {
    w = await createWorld({
      environments: { production: { notices: { reminderEvery: '4h', workingHoursUtc: [9, 17] } } },
    });
    const n = await w.notices();
    // The ManualClock starts at 12:00 UTC.
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const since = w.clock.now();
    const nextDay9 = Date.UTC(2026, 10, 30, 9, 0, 0);
    const to = (t: number) => w?.advance(t - (w?.clock.now() ?? t), [n]);

    await to(since + 4 * HOUR); // 16:00 — within hours
    await to(since + 8 * HOUR); // 20:00 — held
    await to(since + 12 * HOUR); // 00:00 — held
    await to(nextDay9 - 1);
    expect(reminders(w).map((p) => p.at)).toEqual([since + 4 * HOUR]);
    await to(nextDay9); // working hours begin: one reminder for the latest slot, not one per held slot
    await to(since + 24 * HOUR); // 12:00 — the regular rhythm again
    await to(since + 28 * HOUR); // 16:00
    await to(since + 32 * HOUR); // 20:00 — held again
    expect(reminders(w).map((p) => p.at)).toEqual([
      since + 4 * HOUR,
      nextDay9,
      since + 24 * HOUR,
      since + 28 * HOUR,
    ]);
    expect(viewText(nth(reminders(w), 1).view)).toContain(`for ${longDuration(nextDay9 - since)}`);
  });

  it('a deployment of another branch is not offered while rolled back (it would not have gone live)', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const n = await w.notices();
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const feature = await w.pushAndBuild('production', [n], { branch: 'feature-x' });
    await w.advance(4 * HOUR, [n]);

    const [moved, ready, reminder] = w.slack.posts.map((p) => p.view);
    expect(moved?.title).toBe('Traffic on production moved to dep_3hd7xa');
    expect(ready?.title).toBe(`${feature.id} is ready on production`);
    expect(ready?.buttons).toEqual([]);
    expect(reminder?.buttons.map((b) => b.actionId)).toEqual(['sy1:promote:production:dep_3hd7xa']);
  });

  it('a reminderEvery of 0 turns reminders off; the promote offer still comes', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: 0 } } } });
    const n = await w.notices();
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    for (let i = 0; i < 3; i++) await w.advance(4 * HOUR, [n]);
    expect(w.slack.titles()).toEqual([
      'Traffic on production moved to dep_3hd7xa',
      `${fresh.id} is ready but not live`,
    ]);
  });

  // One plan always makes the same job id: each run of it writes its own `started` entry, and each run
  // explains the move it made (the audit here is the worker's, as the job would write it). With the
  // worker's clock a little ahead of the event source's, the run that made a move starts "after" it and
  // an older run of the same job "before" it: every run is tried, best first.
  it.each([
    { skew: 0, clocks: 'one clock' },
    { skew: 2_000, clocks: "the worker's clock 2 s ahead of the event source" },
  ])(
    'the same switch run again by Switchyard (back and forth) is never announced as a move outside it ($clocks)',
    async ({ skew }) => {
      w = await createWorld();
      const world = w;
      const entries: AuditEntry[] = [];
      const started = (jobId: string, action: 'rollback' | 'promote', targetId: string) =>
        entries.unshift({
          at: world.clock.now() + skew,
          environment: 'production',
          action,
          event: 'started',
          jobId,
          targetId,
        });
      const n = await w.notices({ audit: { recent: async () => entries } });
      for (let i = 0; i < 3; i++) {
        started('sw_back', 'rollback', 'dep_3hd7xa');
        await w.advance(1_000, [n]);
        await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Alice');
        started('sw_forth', 'promote', 'dep_4kq9wz');
        await w.advance(1_000, [n]);
        await w.switchDirectly('promote', 'production', 'dep_4kq9wz', [n], 'Alice');
      }
      expect(w.slack.titles().filter((t) => t.startsWith('Traffic on production moved'))).toEqual([]);
      expect(
        n.outcomes.filter((o) => o.status === 'skipped' && o.reason.startsWith('moved by Switchyard job')),
      ).toHaveLength(6);
      // A move no run explains is still announced.
      await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Dana (dashboard)');
      expect(w.slack.titles().at(-1)).toBe('Traffic on production moved to dep_3hd7xa');
    },
  );

  it('a rollback by a Switchyard job is not re-announced; /deployments shows since when and by whom', async () => {
    w = await createWorld();
    const n = await w.notices();
    const reporter = new WaitingReporter();
    await w.worker(reporter);
    // Two pushes, so the rollback target is a running (not standby) deployment.
    const older = await w.pushAndBuild('production', [n]);
    const newer = await w.pushAndBuild('production', [n]);
    const planned = await w.flow.plan(alice, 'rollback', 'production');
    if (!planned.ok) throw new Error(planned.refusal.message);
    expect(planned.plan.target.id).toBe(older.id);
    await w.flow.attachMessage(planned.plan.id, message);
    const confirmed = await w.flow.confirm(alice, planned.plan.id);
    expect(confirmed.status).toBe('enqueued');
    const done = await reporter.waitFor((p) => p.outcome !== undefined);
    expect(done.outcome).toBe('succeeded');
    const rolledBackAt = w.clock.now();
    await n.idle();

    expect(w.slack.titles()).toEqual([
      `${older.id} is live on production`,
      `${newer.id} is live on production`,
    ]);
    expect(n.outcomes).toContainEqual(
      expect.objectContaining({
        status: 'skipped',
        reason: expect.stringMatching(/^moved by Switchyard job/),
      }),
    );

    // Still within the hour in which the job's audit entry explains a move to the same target.
    await w.advance(30 * 60_000, [n]);
    const reply = await w.chat.command(alice, 'deployments', ['production']);
    const head = reply.view.blocks.find((b) => b.type === 'text');
    const text = head?.type === 'text' ? plainText(head.spans) : '';
    const when = new Date(rolledBackAt).toISOString();
    expect(text).toContain(`production is rolled back to ${older.id}`);
    expect(text).toContain(`since ${when.slice(0, 10)} ${when.slice(11, 16)} UTC (30 minutes ago) by Alice`);

    // The same move made again on the dashboard (after a dashboard promote) is announced: each job
    // explains one move only.
    await w.switchDirectly('promote', 'production', newer.id, [n]);
    await w.switchDirectly('rollback', 'production', older.id, [n]);
    expect(w.slack.titles().slice(2)).toEqual([
      `Traffic on production moved to ${newer.id}`,
      `Traffic on production moved to ${older.id}`,
    ]);
  });
});
