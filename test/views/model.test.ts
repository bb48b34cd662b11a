import { describe, expect, it } from 'vitest';
import { discordReporterDefaults } from '../../handlers/discord/reporter.js';
import { slackReporterDefaults } from '../../handlers/slack/reporter.js';
import { buildPlan } from '../../src/domain/plan.js';
import type { EnvironmentSnapshot } from '../../src/domain/types.js';
import type { Actor, Progress } from '../../src/progress.js';
import { parseAction } from '../../src/views/actions.js';
import { renderConsole } from '../../src/views/console.js';
import { renderDiscord } from '../../src/views/discord.js';
import { formatTime, plainText } from '../../src/views/format.js';
import {
  type ConfirmationState,
  confirmationView,
  deploymentsView,
  listedDeployments,
  noticeView,
  progressView,
  refusalView,
  usageView,
} from '../../src/views/model.js';
import { renderSlack } from '../../src/views/slack.js';
import type { ButtonView, MessageView, ViewBlock } from '../../src/views/types.js';
import {
  cancelledEntries,
  expiredEntries,
  history,
  openEntries,
  refusedClick,
  switchEntries,
} from './audit-entries.js';
import { alice, bob, HOSTILE, NOW, plan, progress, snapshot, viewText } from './fixtures.js';

const MIN = 60_000;

function blocksOf<T extends ViewBlock['type']>(
  view: MessageView,
  type: T,
): Extract<ViewBlock, { type: T }>[] {
  return view.blocks.filter((b): b is Extract<ViewBlock, { type: T }> => b.type === type);
}

function labels(buttons: readonly ButtonView[]): string[] {
  return buttons.map((b) => b.label);
}

function routingOf(s: EnvironmentSnapshot) {
  return s.domains.map((d) => ({
    hostname: d.hostname,
    stickiness: d.stickiness,
    environment: d.environment,
    ...(d.deploymentId === undefined ? {} : { deploymentId: d.deploymentId }),
  }));
}

describe('confirmationView', () => {
  it('pending rollback lists current, every affected domain and the standby target', () => {
    const p = plan('rollback');
    const v = confirmationView(p, { state: 'pending', now: NOW, requestedBy: alice });
    expect(v.kind).toBe('confirmation');
    expect(v.title).toBe('Roll back production to dep_2?');
    const [current, target] = blocksOf(v, 'deployment');
    expect(current?.label).toBe('Current deployment');
    expect(current?.card).toMatchObject({
      id: 'dep_3',
      shortSha: p.current.commit.sha.slice(0, 7),
      author: 'Carol',
    });
    expect(current?.card.live).toBe('live for 37 minutes');
    expect(current?.card.message).toBe(HOSTILE);
    expect(target?.label).toBe('Target deployment');
    expect(target?.card).toMatchObject({ id: 'dep_2', status: 'standby', message: 'feat: checkout v2' });
    expect(target?.card.notes).toContain('in standby: reactivation takes longer');
    const [domains] = blocksOf(v, 'list');
    expect(domains?.label).toBe('Affected domains (4)');
    expect(domains?.items.map((i) => i.spans[0]?.text)).toEqual([
      'demo.example.com',
      'shop-1.example.com',
      'production.demo.switchyard.local',
      'main.demo.switchyard.local',
    ]);
    expect(viewText(v)).not.toContain('dep-3.demo.switchyard.local');
    expect(viewText(v)).not.toContain('rolled back');
    expect(labels(v.buttons)).toEqual(['Rollback to target version', 'Cancel']);
    const [confirm, cancel] = v.buttons;
    expect(confirm?.style).toBe('danger');
    expect(confirm?.confirm?.title).toBe('Roll back production to dep_2?');
    expect(confirm?.confirm?.text).toContain('reactivation takes longer');
    expect(parseAction(confirm?.actionId)).toEqual({ ok: true, value: { kind: 'confirm', ref: p.id } });
    expect(parseAction(cancel?.actionId)).toEqual({ ok: true, value: { kind: 'cancel', ref: p.id } });
    expect(viewText(v)).toContain('Requested by Alice');
    expect(v.ephemeral).toBe(false);
  });

  it('rollback while already rolled back says so', () => {
    const p = plan('rollback', { rolledBack: true });
    expect(p.target.id).toBe('dep_1');
    const v = confirmationView(p, { state: 'pending', now: NOW });
    expect(viewText(v)).toContain('production is already rolled back (to dep_2)');
  });

  it('promote says it restores automatic domain assignment', () => {
    const p = plan('promote', { rolledBack: true });
    expect(p.target.id).toBe('dep_6');
    const v = confirmationView(p, { state: 'pending', now: NOW });
    expect(v.title).toBe('Promote dep_6 on production?');
    expect(viewText(v)).toContain('restores automatic domain assignment for new pushes');
    expect(viewText(v)).toContain('production is rolled back (to dep_2)');
    expect(labels(v.buttons)).toEqual(['Promote to target version', 'Cancel']);
    expect(v.buttons[0]?.style).toBe('primary');
  });

  it('a promote to a deployment older than the live one, or a rollback to a newer one, says so', () => {
    const warning = 'was pushed';
    const back = confirmationView(plan('promote', { target: 'dep_2' }), { state: 'pending', now: NOW });
    expect(viewText(back)).toContain(
      'dep_2 was pushed before dep_3, the deployment live now: this promote moves production to an older deployment.',
    );
    // Not rolled back: automatic deploys are on already.
    expect(viewText(back)).toContain('production is not rolled back: automatic domain assignment stays on');
    expect(viewText(back)).not.toContain('restores automatic domain assignment');
    const forward = confirmationView(plan('rollback', { rolledBack: true, target: 'dep_6' }), {
      state: 'pending',
      now: NOW,
    });
    expect(viewText(forward)).toContain(
      'dep_6 was pushed after dep_2, the deployment live now: this rollback moves production to a newer deployment.',
    );
    // The usual directions say nothing.
    expect(viewText(confirmationView(plan('rollback'), { state: 'pending', now: NOW }))).not.toContain(
      warning,
    );
    expect(
      viewText(confirmationView(plan('promote', { rolledBack: true }), { state: 'pending', now: NOW })),
    ).not.toContain(warning);
  });

  it('promote of the current deployment while rolled back reads "Resume automatic deploys"', () => {
    const p = plan('promote', { rolledBack: true, target: 'dep_2' });
    expect(p.resumesAutoDeploys).toBe(true);
    const v = confirmationView(p, { state: 'pending', now: NOW });
    expect(v.title).toBe('Resume automatic deploys on production?');
    expect(viewText(v)).toContain('No domain moves: dep_2 already serves production.');
    expect(blocksOf(v, 'list')).toHaveLength(0);
    expect(labels(v.buttons)).toEqual(['Resume automatic deploys', 'Cancel']);
  });

  it('pending says up front when a second person must approve', () => {
    const v = confirmationView(plan('rollback'), {
      state: 'pending',
      now: NOW,
      requestedBy: alice,
      requiresApproval: true,
    });
    expect(viewText(v)).toContain(
      'production needs two people: after the confirm click, a second person must approve.',
    );
    expect(viewText(confirmationView(plan('rollback'), { state: 'pending', now: NOW }))).not.toContain(
      'two people',
    );
  });

  it('awaiting approval names who must not approve', () => {
    const p = plan('rollback');
    const v = confirmationView(p, { state: 'awaiting_approval', now: NOW, requestedBy: alice });
    expect(v.title).toBe('Waiting for approval: roll back production to dep_2');
    expect(viewText(v)).toContain('Waiting for approval by a second person (not Alice).');
    expect(labels(v.buttons)).toEqual(['Approve', 'Cancel']);
    expect(parseAction(v.buttons[0]?.actionId)).toEqual({ ok: true, value: { kind: 'approve', ref: p.id } });
    expect(v.buttons[0]?.confirm?.text).toContain('Alice asked to roll back production to dep_2');
  });

  it('awaiting approval names the asker too when someone else confirmed (neither may approve), on every surface', () => {
    const p = plan('rollback');
    // Alice typed the command, Bob confirmed: requestedBy is the confirmer, askedBy the asker.
    const v = confirmationView(p, {
      state: 'awaiting_approval',
      now: NOW,
      requestedBy: bob,
      confirmedBy: bob,
      askedBy: alice,
      requiresApproval: true,
    });
    const said =
      'Requested by Alice, confirmed by Bob. Waiting for approval by someone other than Alice and Bob.';
    expect(viewText(v)).toContain(said);
    expect(v.buttons[0]?.confirm?.text).toBe(
      'Alice asked to roll back production to dep_2 and Bob confirmed it. 4 domain(s) move to dep_2.',
    );
    // One view model: Slack (its dialog too), Discord and the console all say it.
    const slack = renderSlack(v, { mentions: true });
    expect(JSON.stringify(slack.blocks)).toContain('by someone other than <@U1> and <@U2>.');
    expect(JSON.stringify(slack.blocks)).toContain('Alice asked to roll back production to dep_2 and Bob');
    expect(renderDiscord(v).embeds[0]?.description).toContain(
      'Requested by Alice \\(on Slack\\), confirmed by Bob \\(on Slack\\). **Waiting for approval** by someone other than Alice \\(on Slack\\) and Bob \\(on Slack\\).',
    );
    const console = renderConsole(v);
    expect(
      console.blocks
        .flatMap((b) => ('spans' in b ? b.spans : []))
        .map((x) => x.text)
        .join(''),
    ).toContain('Requested by Alice (on Slack), confirmed by Bob (on Slack). ');
    expect(console.buttons[0]?.confirm?.text).toContain('Alice asked to roll back');
  });

  it('awaiting approval under a two-person rule turned off since says Approve queues it, not "(not Alice)"', () => {
    const p = plan('rollback');
    const v = confirmationView(p, {
      state: 'awaiting_approval',
      now: NOW,
      requestedBy: alice,
      confirmedBy: alice,
      requiresApproval: false,
    });
    expect(viewText(v)).toContain(
      'Requested by Alice. production no longer needs a second person (its two-person rule was turned off since this was confirmed): anyone permitted may click Approve to queue it, whoever asked or confirmed it.',
    );
    expect(viewText(v)).not.toContain('Waiting for approval by a second person');
    expect(v.summary).toBe('Roll back production to dep_2: confirmed; one more click on Approve queues it.');
    expect(v.buttons.map((b) => parseAction(b.actionId))).toEqual([
      { ok: true, value: { kind: 'approve', ref: p.id } },
      { ok: true, value: { kind: 'cancel', ref: p.id } },
    ]);
    // someone else confirmed what Alice asked for: both named
    const both = confirmationView(p, {
      state: 'awaiting_approval',
      now: NOW,
      requestedBy: bob,
      confirmedBy: bob,
      askedBy: alice,
      requiresApproval: false,
    });
    expect(viewText(both)).toContain('Requested by Alice, confirmed by Bob. production no longer needs');
  });

  it('enqueued and cancelled have no buttons and say who', () => {
    const p = plan('rollback');
    const enq = confirmationView(p, { state: 'enqueued', now: NOW, requestedBy: alice, approvedBy: bob });
    expect(enq.buttons).toHaveLength(0);
    expect(enq.title).toBe('Confirmed: roll back production to dep_2');
    expect(viewText(enq)).toContain('Confirmed by Alice, approved by Bob. Progress follows in this message.');
    const can = confirmationView(p, { state: 'cancelled', now: NOW, requestedBy: alice, cancelledBy: bob });
    expect(can.buttons).toHaveLength(0);
    expect(viewText(can)).toContain('Cancelled by Bob. Nothing changed.');
  });

  it('stale says what changed and offers a fresh plan', () => {
    const p = plan('rollback');
    const v = confirmationView(p, {
      state: 'stale',
      now: NOW,
      staleReason: 'Traffic moved since this plan was made: production now serves dep_6, not dep_3.',
    });
    expect(viewText(v)).toContain('production now serves dep_6, not dep_3. Nothing was changed.');
    expect(labels(v.buttons)).toEqual(['Make a fresh plan']);
    expect(parseAction(v.buttons[0]?.actionId)).toEqual({ ok: true, value: { kind: 'replan', ref: p.id } });
  });

  it('expired says how to start again and offers a fresh plan, as a stale one does', () => {
    const p = plan('rollback');
    const v = confirmationView(p, { state: 'expired', now: NOW });
    expect(viewText(v)).toContain('This plan expired before anyone confirmed it.');
    expect(viewText(v)).toContain('Make a fresh plan below, or run /rollback again.');
    expect(labels(v.buttons)).toEqual(['Make a fresh plan']);
    expect(parseAction(v.buttons[0]?.actionId)).toEqual({ ok: true, value: { kind: 'replan', ref: p.id } });
    // An expired alert suggestion offers the same button (no confirm, no Dismiss): the on-call
    // engineer of a still-firing alert gets back to the rollback in one click.
    const alert = {
      source: 'grafana',
      title: 'High 5xx on checkout',
      startedAt: NOW - 30 * MIN,
      resolved: false,
    };
    const suggestion = confirmationView(p, { state: 'expired', now: NOW, alert });
    expect(labels(suggestion.buttons)).toEqual(['Make a fresh plan']);
    expect(parseAction(suggestion.buttons[0]?.actionId)).toEqual({
      ok: true,
      value: { kind: 'replan', ref: p.id },
    });
  });

  it('expired after a confirm (two-person rule) says it lapsed waiting for approval, naming the confirmer', () => {
    const v = confirmationView(plan('rollback'), {
      state: 'expired',
      now: NOW,
      requestedBy: alice,
      confirmedBy: alice,
      requiresApproval: true,
    });
    const text = viewText(v);
    expect(text).not.toContain('before anyone confirmed it');
    expect(text).toContain(
      'This plan expired waiting for approval: Alice confirmed it, but no second person approved it in time. Nothing changed. Make a fresh plan below, or run /rollback again.',
    );
    expect(labels(v.buttons)).toEqual(['Make a fresh plan']);
  });

  it('expired after a confirm that was never queued (no two-person rule) says so, not that it waited for approval', () => {
    // The confirm claimed the switch; its enqueue failed and so did the undo of the claim.
    const v = confirmationView(plan('rollback'), {
      state: 'expired',
      now: NOW,
      requestedBy: alice,
      confirmedBy: alice,
      requiresApproval: false,
    });
    const text = viewText(v);
    expect(text).not.toContain('waiting for approval');
    expect(text).not.toContain('no second person');
    expect(text).toContain(
      'This plan expired before its switch was queued: Alice confirmed it, but its queueing did not finish. Nothing changed. Make a fresh plan below, or run /rollback again.',
    );
    expect(labels(v.buttons)).toEqual(['Make a fresh plan']);
  });

  it('expired after an approval that was never queued (two-person rule) names both, not a missing approval', () => {
    const v = confirmationView(plan('rollback'), {
      state: 'expired',
      now: NOW,
      requestedBy: alice,
      confirmedBy: alice,
      approvedBy: bob,
      requiresApproval: true,
    });
    const text = viewText(v);
    expect(text).not.toContain('no second person');
    expect(text).toContain(
      'This plan expired before its switch was queued: Alice confirmed it and Bob approved it, but its queueing did not finish. Nothing changed.',
    );
  });

  it('alert suggestion correlates and adds Dismiss; resolved keeps the button as optional', () => {
    const p = plan('rollback');
    const alert = {
      source: 'grafana',
      title: 'High 5xx on checkout',
      startedAt: NOW - 30 * MIN,
      resolved: false,
    };
    const v = confirmationView(p, { state: 'pending', now: NOW, alert });
    expect(viewText(v)).toContain('Alert from grafana: High 5xx on checkout');
    expect(viewText(v)).toContain('dep_3 went live 7 minutes before this alert started.');
    expect(labels(v.buttons)).toEqual(['Rollback to target version', 'Cancel', 'Dismiss']);
    expect(parseAction(v.buttons[2]?.actionId)).toEqual({ ok: true, value: { kind: 'dismiss', ref: p.id } });

    const resolved = confirmationView(p, {
      state: 'pending',
      now: NOW,
      alert: {
        ...alert,
        resolved: true,
        resolvedAt: NOW - MIN,
        wentLive: { deploymentId: 'dep_3', at: NOW - 45 * MIN },
      },
    });
    expect(labels(resolved.buttons)).toEqual(['Rollback to target version (optional)', 'Cancel', 'Dismiss']);
    expect(viewText(resolved)).toContain(
      'The alert resolved at 2026-11-29 11:59 UTC. The rollback below is optional now.',
    );
    expect(viewText(resolved)).toContain('dep_3 went live 15 minutes before this alert started.');
  });

  it('a closed suggestion whose alerts resolved says so plainly: there is no rollback below to call optional', () => {
    const p = plan('rollback');
    const alert = {
      source: 'grafana',
      title: 'High 5xx on checkout',
      startedAt: NOW - 30 * MIN,
      resolved: true,
      resolvedAt: NOW - MIN,
    };
    for (const state of ['expired', 'cancelled', 'stale', 'enqueued'] as const) {
      const v = confirmationView(p, { state, now: NOW, requestedBy: alice, cancelledBy: bob, alert });
      expect(viewText(v), state).toContain('The alert resolved at 2026-11-29 11:59 UTC.');
      expect(viewText(v), state).not.toContain('optional');
    }
    for (const state of ['pending', 'awaiting_approval'] as const) {
      const v = confirmationView(p, { state, now: NOW, requestedBy: alice, alert });
      expect(viewText(v), state).toContain(
        'The alert resolved at 2026-11-29 11:59 UTC. The rollback below is optional now.',
      );
    }
  });

  it('the cards stay as of the plan when the message is rendered later (an edit an hour on), and say as of when', () => {
    // Posted when the plan was made: no "as of" line, ages as of then.
    const p = plan('rollback');
    const cardsOf = (v: MessageView) => blocksOf(v, 'deployment').map((d) => d.card);
    const posted = confirmationView(p, { state: 'pending', now: NOW, requestedBy: alice });
    expect(cardsOf(posted).map((c) => [c.live, c.age])).toEqual([
      ['live for 37 minutes', 'created 40 minutes ago'],
      [undefined, 'created 5 hours ago'],
    ]);
    expect(viewText(posted)).not.toContain('as of');
    // The same message edited an hour and a half later (expired by the sweep, cancelled): Slack and
    // Discord still show it as posted at NOW, so its cards must not have aged by the wait.
    const later = NOW + 90 * MIN;
    for (const state of ['expired', 'cancelled', 'stale', 'awaiting_approval', 'enqueued'] as const) {
      const edited = confirmationView(p, { state, now: later, requestedBy: alice, cancelledBy: bob });
      expect(cardsOf(edited), state).toEqual(cardsOf(posted));
      expect(viewText(edited), state).toContain(
        `Deployment ages as of ${formatTime(p.createdAt)}, when this plan was made.`,
      );
      expect(viewText(edited), state).not.toMatch(/live for 2 hours|live for 1 hour/);
    }
    // A request joining the plan 30 minutes on posts a fresh message with the plan's view: ages as of
    // the plan, saying as of when (never ages 30 minutes old as if they were the post's).
    const joined = confirmationView(p, { state: 'pending', now: NOW + 30 * MIN, requestedBy: alice });
    expect(cardsOf(joined)).toEqual(cardsOf(posted));
    expect(viewText(joined)).toContain(`Deployment ages as of ${formatTime(NOW)}, when this plan was made.`);
    // Every surface shows the line.
    expect(JSON.stringify(renderSlack(joined).blocks)).toContain('Deployment ages as of');
    expect(JSON.stringify(renderDiscord(joined).embeds)).toContain('Deployment ages as of');
    expect(JSON.stringify(renderConsole(joined).blocks)).toContain('Deployment ages as of');
  });

  it('says as of when only once the ages would read differently: a render seconds later reads the same', () => {
    const p = plan('rollback');
    const soon = confirmationView(p, { state: 'cancelled', now: NOW + 20_000, cancelledBy: bob });
    expect(viewText(soon)).not.toContain('as of');
    const resumed = plan('promote', { rolledBack: true, target: 'dep_2' });
    expect(resumed.resumesAutoDeploys).toBe(true);
    // Only the current card shows: its ages decide (rolled back to dep_2 3 hours before NOW).
    const edited = confirmationView(resumed, { state: 'expired', now: NOW + 2 * 60 * MIN });
    expect(blocksOf(edited, 'deployment').map((d) => d.card.live)).toEqual(['live for 3 hours']);
    expect(viewText(edited)).toContain(`Deployment ages as of ${formatTime(NOW)}, when this plan was made.`);
  });

  it('keeps every one of 400 affected domains in the model', () => {
    const p = plan('rollback', { liveDomains: 398 });
    expect(p.affectedDomains).toHaveLength(400);
    const v = confirmationView(p, { state: 'pending', now: NOW });
    const [list] = blocksOf(v, 'list');
    expect(list?.label).toBe('Affected domains (400)');
    expect(list?.items).toHaveLength(400);
  });

  it('keeps confirm dialogs within Slack limits even with very long ids', () => {
    const s = snapshot();
    const long = 'x'.repeat(90);
    const big: EnvironmentSnapshot = {
      ...s,
      environment: { ...s.environment, slug: `production-${long}`, currentDeploymentId: `dep_3_${long}` },
      deployments: s.deployments.map((d) => ({
        ...d,
        environment: `production-${long}`,
        id: `${d.id}_${long}`,
      })),
      domains: s.domains.map((d) => ({
        ...d,
        environment: `production-${long}`,
        ...(d.deploymentId === undefined ? {} : { deploymentId: `${d.deploymentId}_${long}` }),
      })),
      liveHistory: s.liveHistory.map((h) => ({ ...h, deploymentId: `${h.deploymentId}_${long}` })),
    };
    const r = buildPlan(big, { action: 'rollback', now: NOW });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    for (const state of ['pending', 'awaiting_approval'] as const) {
      const v = confirmationView(r.value, { state, now: NOW, requestedBy: alice });
      for (const b of v.buttons) {
        if (b.confirm === undefined) continue;
        expect(b.confirm.title.length).toBeLessThanOrEqual(100);
        expect(b.confirm.text.length).toBeLessThanOrEqual(300);
        expect(b.confirm.title.endsWith('…')).toBe(true);
      }
    }
  });

  it('covers every state', () => {
    const states: ConfirmationState[] = [
      'pending',
      'awaiting_approval',
      'enqueued',
      'cancelled',
      'stale',
      'expired',
    ];
    const titles = states.map((state) => confirmationView(plan('rollback'), { state, now: NOW }).title);
    expect(new Set(titles).size).toBe(states.length);
  });
});

describe('progressView', () => {
  it('running: header, who confirmed, each step with state and duration (when it started while running)', () => {
    const p = plan('rollback');
    const v = progressView(progress(p, { approvedBy: bob }), p);
    expect(v.title).toBe('Rolling back production to dep_2');
    expect(v.tone).toBe('info');
    expect(viewText(v)).toContain('Confirmed by Alice · approved by Bob · from dep_3');
    const [steps] = blocksOf(v, 'steps');
    expect(steps?.steps.map((s) => [s.step, s.state, s.duration ?? ''])).toEqual([
      ['queued', 'done', '120 ms'],
      ['validating', 'done', '1.2 s'],
      ['reactivating', 'running', 'since 12:00:01 UTC'],
      ['switching', 'pending', ''],
      ['verifying', 'pending', ''],
      ['done', 'pending', ''],
    ]);
    expect(v.buttons).toHaveLength(0);
  });

  it('leaves reactivation out for a running target and shows the attempt', () => {
    const p = plan('promote', { rolledBack: true });
    const v = progressView(
      progress(p, {
        attempt: 2,
        steps: [{ step: 'switching', state: 'running', startedAt: NOW, detail: 'moving 4 domains' }],
        updatedAt: NOW + 3 * MIN + 5000,
      }),
      p,
    );
    expect(v.title).toBe('Promoting dep_6 on production');
    const [steps] = blocksOf(v, 'steps');
    expect(steps?.steps.map((s) => s.step)).toEqual([
      'queued',
      'validating',
      'switching',
      'verifying',
      'done',
    ]);
    expect(steps?.steps.find((s) => s.step === 'switching')).toMatchObject({
      duration: 'since 12:00:00 UTC',
      detail: 'moving 4 domains',
    });
    expect(viewText(v)).toContain('attempt 2');
  });

  it('succeeded: traffic is on the target with per-domain results', () => {
    const p = plan('rollback');
    const v = progressView(
      progress(p, {
        outcome: 'succeeded',
        traffic: [
          { hostname: 'demo.example.com', deploymentId: 'dep_2', ok: true },
          { hostname: 'shop-1.example.com', deploymentId: 'dep_2', ok: true },
        ],
      }),
      p,
    );
    expect(v.title).toBe('Rolled back production to dep_2');
    expect(v.tone).toBe('success');
    expect(viewText(v)).toContain('Traffic is on dep_2 as of 2026-11-29 12:00 UTC, when the job ended.');
    expect(viewText(v)).toContain('production is now rolled back');
    const [list] = blocksOf(v, 'list');
    expect(list?.label).toBe('Domains (2)');
    expect(list?.items.every((i) => i.state === 'ok')).toBe(true);
    const [steps] = blocksOf(v, 'steps');
    expect(steps?.steps.at(-1)?.state).toBe('done');
    expect(steps?.steps.find((s) => s.step === 'switching')?.state).toBe('not_reached');
  });

  it('failed: says what state production was in when the job ended, and when', () => {
    const p = plan('rollback');
    const v = progressView(
      progress(p, {
        outcome: 'failed',
        code: 'verify_timeout',
        message: 'Traffic did not settle: demo.example.com still answers from dep_3. Production is split.',
        traffic: [
          { hostname: 'demo.example.com', deploymentId: 'dep_3', ok: false },
          { hostname: 'shop-1.example.com', ok: false },
        ],
      }),
      p,
    );
    expect(v.title).toBe('Rollback of production to dep_2 failed');
    expect(v.tone).toBe('danger');
    expect(viewText(v)).toContain(
      `When the job ended (${formatTime(NOW + 13_320)}): Traffic did not settle: demo.example.com still answers from dep_3.`,
    );
    expect(viewText(v)).toContain('Code: verify_timeout');
    const [list] = blocksOf(v, 'list');
    expect(list?.label).toBe('Where traffic was when the job ended (2 of 2 not on the target)');
    expect(viewText(v)).toContain('shop-1.example.com → unknown');
  });

  /** The steps of a job that asked the platform to switch, the `switching` step ended `state`. */
  const switched = (state: 'done' | 'failed'): Progress['steps'] => [
    { step: 'queued', state: 'done', startedAt: NOW, endedAt: NOW + 120 },
    { step: 'validating', state: 'done', startedAt: NOW + 120, endedAt: NOW + 1320 },
    { step: 'switching', state, startedAt: NOW + 1320, endedAt: NOW + 2320 },
  ];

  it('overtaken after a request that got no answer (its switching step failed): overtaken, not "done"', () => {
    // src/views/model.ts outcomeTitle: every failed plan_stale read "done, then overtaken", though the
    // job's earlier request may not have switched (jobs/switch-processor.ts askedThenMovedMessage).
    const p = plan('rollback');
    const message =
      "An earlier attempt of this rollback asked the platform to switch production to dep_2, and no answer to that request reached this job (it was lost, or that attempt's worker stopped first); the switch may have taken effect, but traffic has moved since. This job does nothing more.";
    const v = progressView(
      progress(p, { outcome: 'failed', code: 'plan_stale', message, steps: switched('failed') }),
      p,
    );
    expect(v.title).toBe('Rollback of production to dep_2 overtaken');
    expect(v.tone).toBe('warning');
    expect(viewText(v)).toContain(message);
    expect(parseAction(v.buttons[0]?.actionId)).toEqual({ ok: true, value: { kind: 'replan', ref: p.id } });
  });

  it("titles an overtaken end by its worker's switchLanded, not by its steps; the steps only for progress without it", () => {
    // src/views/model.ts switchLanded inferred "known done" from the steps alone: a `switching` step
    // its worker never published (or one left out) read as done. The worker now says it.
    const p = plan('rollback');
    const overtakenEnd = { outcome: 'failed', code: 'plan_stale', message: 'Overtaken.' } as const;
    // No switching step published, and the worker says its switch is not known landed.
    const unpublished = switched('done').filter((s) => s.step !== 'switching');
    const notLanded = progressView(
      progress(p, { ...overtakenEnd, steps: unpublished, switchLanded: false }),
      p,
    );
    expect(notLanded.title).toBe('Rollback of production to dep_2 overtaken');
    // Known landed: said so even when a step reads otherwise.
    const landed = progressView(
      progress(p, { ...overtakenEnd, steps: switched('failed'), switchLanded: true }),
      p,
    );
    expect(landed.title).toBe('Rollback of production to dep_2 done, then overtaken');
    // Progress published before the field: read from the steps, as before.
    expect(progressView(progress(p, { ...overtakenEnd, steps: unpublished }), p).title).toBe(
      'Rollback of production to dep_2 done, then overtaken',
    );
    expect(progressView(progress(p, { ...overtakenEnd, steps: switched('failed') }), p).title).toBe(
      'Rollback of production to dep_2 overtaken',
    );
  });

  it('overtaken while verifying (failed, plan_stale): done, then overtaken, a warning with a fresh plan', () => {
    const p = plan('rollback');
    const message =
      'Rolled back production to dep_2; then, before traffic on it was verified, traffic moved on to dep_1 through another switch (a promote by Dana), not this one. This job does nothing more. production is serving dep_1.';
    const v = progressView(
      progress(p, {
        outcome: 'failed',
        code: 'plan_stale',
        message,
        steps: switched('done'),
        traffic: [{ hostname: 'demo.example.com', deploymentId: 'dep_1', ok: false }],
      }),
      p,
    );
    expect(v.title).toBe('Rollback of production to dep_2 done, then overtaken');
    expect(v.tone).toBe('warning');
    const end = `When the job ended (${formatTime(NOW + 13_320)}): ${message}`;
    expect(v.summary).toBe(`Rollback of production to dep_2 done, then overtaken. ${end}`);
    expect(viewText(v)).toContain(end);
    expect(parseAction(v.buttons[0]?.actionId)).toEqual({ ok: true, value: { kind: 'replan', ref: p.id } });
    // Any other failure stays a failure.
    const failed = progressView(progress(p, { outcome: 'failed', code: 'verify_timeout' }), p);
    expect(failed.title).toBe('Rollback of production to dep_2 failed');
    expect(failed.tone).toBe('danger');
    expect(failed.buttons).toHaveLength(0);
  });

  it('failed, then completed by the platform: an update line first, the end as it was when the job ended', () => {
    const p = plan('rollback');
    const message =
      'The platform did not finish the rollback of production to dep_2 in time. The platform may have started this rollback and may still complete it: check where traffic is before trying again. production is serving dep_3.';
    const ended = progress(p, {
      outcome: 'failed',
      code: 'platform_operation_failed',
      message,
      traffic: [{ hostname: 'demo.example.com', deploymentId: 'dep_3', ok: false }],
    });
    const movedAt = NOW + 7 * MIN;
    const update = `Update ${formatTime(movedAt)}: the platform completed this rollback after the job had given up; production is serving dep_2. Reported by the platform, not verified by Switchyard: check /deployments production before acting on it.`;
    const v = progressView(ended, p, { at: movedAt });
    expect(v.title).toBe('Rollback of production to dep_2 failed, then completed by the platform');
    expect(v.tone).toBe('warning');
    // First thing read: the update (the end below it no longer holds).
    const first = v.blocks[0];
    expect(first?.type === 'text' ? plainText(first.spans) : first?.type).toBe(update);
    expect(v.summary).toBe(`${v.title}. ${update} When the job ended: ${message}`);
    expect(viewText(v)).toContain(`When the job ended: ${message}`);
    expect(viewText(v)).not.toContain('Now: ');
    expect(blocksOf(v, 'list')[0]?.label).toBe(
      'Where traffic was when the job ended (1 of 1 not on the target)',
    );
    // Once in the message, and every surface shows it.
    expect(viewText(progressView(ended, p, { at: movedAt })).split(update)).toHaveLength(3); // block, summary
    for (const text of [
      JSON.stringify(renderSlack(v).blocks),
      JSON.stringify(renderDiscord(v).embeds),
      JSON.stringify(renderConsole(v).blocks),
    ]) {
      expect(text).toContain('the platform completed this rollback after the job had given up');
    }
    // A resume of automatic deploys says so.
    const pr = plan('promote', { rolledBack: true, target: 'dep_2' });
    const resumed = progressView(progress(pr, { outcome: 'failed', message }), pr, { at: movedAt });
    expect(viewText(resumed)).toContain('the platform completed this resume of automatic deploys after');
  });

  it('a later completion is shown only on a failure that did not switch', () => {
    const p = plan('rollback');
    const later = { at: NOW + 7 * MIN };
    for (const over of [
      { outcome: 'refused', code: 'forbidden' },
      { outcome: 'stale', message: 'production now serves dep_6.' },
      { outcome: 'failed', code: 'plan_stale', message: 'Done, then overtaken.' },
      { outcome: 'succeeded' },
      {},
    ] as const) {
      const v = progressView(progress(p, over), p, later);
      expect(v, JSON.stringify(over)).toEqual(progressView(progress(p, over), p));
    }
  });

  it('stale offers a fresh plan; refused and cancelled say nothing moved', () => {
    const p = plan('rollback');
    const stale = progressView(progress(p, { outcome: 'stale', message: 'production now serves dep_6.' }), p);
    expect(stale.title).toBe('Rollback of production to dep_2 not done: plan out of date');
    expect(parseAction(stale.buttons[0]?.actionId)).toEqual({
      ok: true,
      value: { kind: 'replan', ref: p.id },
    });
    const refused = progressView(progress(p, { outcome: 'refused', code: 'forbidden' }), p);
    expect(refused.title).toBe('Rollback of production to dep_2 refused');
    expect(viewText(refused)).toContain('check /deployments production');
    const cancelled = progressView(
      progress(p, { outcome: 'cancelled', message: 'Cancelled before the switch.' }),
      p,
    );
    expect(cancelled.tone).toBe('neutral');
    expect(cancelled.title).toBe('Rollback of production to dep_2 cancelled');
  });

  it('a final message says as of when it ended, never "now": read the next morning it still holds', () => {
    const p = plan('rollback');
    const ended = NOW + 95_000;
    const traffic = [{ hostname: 'demo.example.com', deploymentId: 'dep_3', ok: false }];
    for (const outcome of ['failed', 'refused', 'stale', 'cancelled'] as const) {
      const v = progressView(
        progress(p, { outcome, message: 'production is serving dep_3.', traffic, updatedAt: ended }),
        p,
      );
      const end = `When the job ended (${formatTime(ended)}): production is serving dep_3.`;
      expect(viewText(v), outcome).toContain(end);
      expect(v.summary, outcome).toContain(end);
      expect(blocksOf(v, 'list')[0]?.label, outcome).toBe(
        'Where traffic was when the job ended (1 of 1 not on the target)',
      );
      expect(viewText(v), outcome).not.toMatch(/\bNow: |traffic is now/);
      // Discord escapes the date's hyphens and the parentheses: look for the time of day.
      for (const text of [JSON.stringify(renderSlack(v)), JSON.stringify(renderDiscord(v).embeds)]) {
        expect(text, outcome).toContain('12:01 UTC');
        expect(text, outcome).not.toMatch(/Now:|traffic is now/);
      }
    }
    // While the job runs nothing claims where traffic ended up.
    const running = progressView(progress(p, { traffic, updatedAt: ended }), p);
    expect(viewText(running)).not.toContain('When the job ended');
  });

  it('resume of automatic deploys without the plan', () => {
    const p = plan('promote', { rolledBack: true, target: 'dep_2' });
    const v = progressView(progress(p, { steps: [] }));
    expect(v.title).toBe('Resuming automatic deploys on production');
    const done = progressView(progress(p, { outcome: 'succeeded' }));
    expect(done.title).toBe('Resumed automatic deploys on production');
    expect(progressView(progress(p, { outcome: 'failed' })).title).toBe(
      'Resuming automatic deploys on production failed',
    );
    const pr = plan('promote', { rolledBack: true });
    expect(progressView(progress(pr, { outcome: 'refused' }), pr).title).toBe(
      'Promote of dep_6 on production refused',
    );
    expect(progressView(progress(pr, { outcome: 'succeeded' }), pr).title).toBe(
      'Promoted dep_6 on production',
    );
    expect(viewText(done)).toContain('Automatic deploys are on again');
  });
});

describe('progressView: the reactivation step (only when it applies)', () => {
  /** Every step of a switch to a running target, done (no reactivation recorded: it never ran). */
  const ran: Progress['steps'] = [
    { step: 'queued', state: 'done', startedAt: NOW, endedAt: NOW + 10 },
    { step: 'validating', state: 'done', startedAt: NOW + 10, endedAt: NOW + 200 },
    { step: 'switching', state: 'done', startedAt: NOW + 200, endedAt: NOW + 900 },
    { step: 'verifying', state: 'done', startedAt: NOW + 900, endedAt: NOW + 1500 },
    { step: 'done', state: 'done', startedAt: NOW + 1500, endedAt: NOW + 1500 },
  ];
  const stepsOf = (v: MessageView) => blocksOf(v, 'steps')[0]?.steps.map((s) => `${s.step}:${s.state}`);

  it('a successful switch to a running target, rendered without the plan (as reporters do), has no reactivation step', () => {
    const p = plan('promote', { rolledBack: true });
    const done = progress(p, {
      steps: ran,
      targetStandby: false,
      outcome: 'succeeded',
      traffic: [{ hostname: 'demo.example.com', deploymentId: p.target.id, ok: true }],
    });
    expect(stepsOf(progressView(done))).toEqual([
      'queued:done',
      'validating:done',
      'switching:done',
      'verifying:done',
      'done:done',
    ]);
    expect(viewText(progressView(done))).not.toContain('Reactivating');
    // As each surface shows it: the Slack and Discord reporters (no plan), the console (with it).
    expect(JSON.stringify(slackReporterDefaults.render(done))).not.toContain('Reactivating');
    expect(JSON.stringify(discordReporterDefaults.render(done))).not.toContain('Reactivating');
    expect(JSON.stringify(renderConsole(progressView(done, p)))).not.toContain('Reactivating');
    expect(JSON.stringify(slackReporterDefaults.render(done))).toContain('Verifying traffic');
  });

  it('while running, and when a switch ends before validation says (unknown), it is left out rather than pending or "not reached"', () => {
    const p = plan('rollback');
    const queued = progress(p, { steps: [{ step: 'queued', state: 'running', startedAt: NOW }] });
    expect(stepsOf(progressView(queued))).toEqual([
      'queued:running',
      'validating:pending',
      'switching:pending',
      'verifying:pending',
      'done:pending',
    ]);
    const stale = progress(p, {
      steps: [
        { step: 'queued', state: 'done', startedAt: NOW, endedAt: NOW + 10 },
        { step: 'validating', state: 'failed', startedAt: NOW + 10, endedAt: NOW + 20 },
      ],
      outcome: 'stale',
    });
    expect(viewText(progressView(stale))).not.toContain('Reactivating');
  });

  it('a standby target shows it pending until it runs, and "not reached" when the switch ended first', () => {
    const p = plan('rollback');
    const validating = progress(p, {
      steps: [
        { step: 'queued', state: 'done', startedAt: NOW, endedAt: NOW + 10 },
        { step: 'validating', state: 'running', startedAt: NOW + 10 },
      ],
      targetStandby: true,
    });
    expect(stepsOf(progressView(validating))).toContain('reactivating:pending');
    const failed = progress(p, {
      steps: [
        { step: 'queued', state: 'done', startedAt: NOW, endedAt: NOW + 10 },
        { step: 'validating', state: 'failed', startedAt: NOW + 10, endedAt: NOW + 20 },
      ],
      targetStandby: true,
      outcome: 'failed',
    });
    expect(stepsOf(progressView(failed))).toContain('reactivating:not_reached');
  });

  it("the worker's finding wins over the plan's; a recorded step is always shown", () => {
    const standbyPlan = { ...plan('rollback'), targetStandby: true };
    const running = progress(standbyPlan, {
      steps: [{ step: 'switching', state: 'running', startedAt: NOW }],
      targetStandby: false,
    });
    expect(stepsOf(progressView(running, standbyPlan))).not.toContain('reactivating:pending');
    // Without the worker's finding, the plan says (the console renders with the plan).
    const { targetStandby: _, ...unknown } = running;
    expect(stepsOf(progressView(unknown, standbyPlan))).toContain('reactivating:pending');
    expect(stepsOf(progressView(unknown, { ...standbyPlan, targetStandby: false }))).not.toContain(
      'reactivating:pending',
    );
    // A recorded step (a resumed job following the platform) is shown whatever the flag says.
    const recorded = progress(standbyPlan, { targetStandby: false });
    expect(stepsOf(progressView(recorded))).toContain('reactivating:running');
  });
});

describe('deploymentsView', () => {
  const carol: Actor = { surface: 'slack', userId: 'U3', displayName: 'Carol' };
  /** The lines of the view's list labelled `label…`, as plain text. */
  const lines = (v: MessageView, label: string) =>
    blocksOf(v, 'list')
      .find((l) => l.label.startsWith(label))
      ?.items.map((it) => plainText(it.spans));
  const at = (hh: number, mm: number, ss = 0) => Date.UTC(2026, 10, 29, hh, mm, ss);

  it('lists recent deployments with status, live marker and row buttons', () => {
    const s = snapshot();
    const v = deploymentsView(s, { routing: routingOf(s), audit: [], now: NOW });
    const [rows] = blocksOf(v, 'rows');
    const table = rows?.rows.map((r) => [
      r.card.id,
      r.markers.join(','),
      labels(r.buttons).join(','),
      r.servesDomains,
    ]);
    expect(table).toEqual([
      ['dep_5', 'building', '', undefined],
      ['dep_4', 'failed', '', undefined],
      ['dep_3', 'live', '', 5],
      ['dep_2', 'standby', 'Rollback to dep_2', undefined],
      ['dep_1', 'stopped', '', undefined],
    ]);
    const row2 = rows?.rows[3]?.buttons[0];
    expect(parseAction(row2?.actionId)).toEqual({
      ok: true,
      value: { kind: 'rollback_to', ref: { environment: 'production', deploymentId: 'dep_2' } },
    });
    expect(rows?.rows[2]?.card.live).toBe('live for 37 minutes');
    expect(viewText(v)).not.toContain('rolled back');
    // No Switchyard switch yet: what went live is the platform's automatic deploys, one line.
    expect(lines(v, 'Switches')).toEqual([
      '2026-11-28 06:00 UTC to 2026-11-29 11:23 UTC · dep_1 → dep_2 → dep_3 went live in turn · 3 automatic deploys by the platform',
    ]);
    expect(v.title).toBe('Deployments · production (demo)');
  });

  it('rolled back: banner with since and by, Promote on newer ready rows, Resume on the current one', () => {
    const s = snapshot({ rolledBack: true });
    const v = deploymentsView(s, { routing: routingOf(s), audit: [], now: NOW });
    expect(v.tone).toBe('warning');
    expect(viewText(v)).toContain(
      'production is rolled back to dep_2 since 2026-11-29 09:00 UTC (3 hours ago) by Alice. New pushes create deployments but get no domains until someone promotes.',
    );
    const [rows] = blocksOf(v, 'rows');
    const table = rows?.rows.map((r) => [r.card.id, r.markers.join(','), labels(r.buttons).join(',')]);
    expect(table).toEqual([
      ['dep_6', 'not live: held back (production is rolled back)', 'Promote dep_6'],
      ['dep_5', 'building', ''],
      ['dep_4', 'failed', ''],
      ['dep_3', 'not live: rolled back from', 'Promote dep_3'],
      ['dep_2', 'live,rolled back', 'Resume automatic deploys'],
      ['dep_1', 'standby', 'Rollback to dep_1'],
    ]);
    // dep_3 is what the rollback left (the live history's entry before it): its Promote is not the
    // way forward offered first; the fix pushed since (dep_6) is.
    expect(rows?.rows[0]?.buttons[0]?.style).toBe('primary');
    expect(rows?.rows[3]?.buttons[0]?.style).toBe('default');
    expect(parseAction(rows?.rows[4]?.buttons[0]?.actionId)).toEqual({
      ok: true,
      value: { kind: 'promote', ref: { environment: 'production', deploymentId: 'dep_2' } },
    });
  });

  // An incident as the audit ran it (two-person rule on): an alert's rollback, a promote made on the
  // platform's own dashboard, a second rollback, then requests that expired, one cancelled, one open.
  // A switch writes five entries: the view listed the five newest entries, all noise, and no switch.
  const incident = () => {
    const s0 = snapshot({ rolledBack: true });
    const s: EnvironmentSnapshot = {
      ...s0,
      environment: { ...s0.environment, rolledBackAt: at(10, 32, 30), rolledBackBy: 'Alice' },
      liveHistory: [
        { deploymentId: 'dep_2', since: at(7, 0), via: 'deploy' },
        { deploymentId: 'dep_3', since: at(8, 23), via: 'deploy' },
        // Switchyard's own rollbacks, as the platform records them (by the confirmer's name)…
        { deploymentId: 'dep_2', since: at(9, 2, 30), via: 'rollback', by: 'Alice' },
        // …and a promote made on the platform's dashboard.
        { deploymentId: 'dep_3', since: at(10, 0), via: 'promote', by: 'mallory' },
        { deploymentId: 'dep_2', since: at(10, 32, 30), via: 'rollback', by: 'Alice' },
      ],
    };
    const audit = history(
      switchEntries({
        at: at(9, 0),
        planId: 'p_first',
        targetId: 'dep_2',
        fromId: 'dep_3',
        alert: { title: 'Checkout 5xx above 2%', source: 'alertmanager' },
        confirmed: alice,
        approved: bob,
      }),
      switchEntries({
        at: at(10, 30),
        planId: 'p_second',
        targetId: 'dep_2',
        fromId: 'dep_3',
        asked: carol,
        confirmed: alice,
        approved: bob,
      }),
      expiredEntries({
        at: at(10, 40),
        action: 'promote',
        planId: 'p_promote',
        targetId: 'dep_6',
        fromId: 'dep_2',
        asked: bob,
      }),
      expiredEntries({
        at: at(10, 45),
        planId: 'p_back',
        targetId: 'dep_1',
        fromId: 'dep_2',
        asked: alice,
        confirmed: alice,
      }),
      // The same promote asked for again (the same state: the same plan id), still open.
      openEntries({
        at: at(11, 50),
        action: 'promote',
        planId: 'p_promote',
        targetId: 'dep_6',
        fromId: 'dep_2',
        asked: bob,
      }),
      cancelledEntries({
        at: at(11, 52),
        planId: 'p_again',
        targetId: 'dep_1',
        fromId: 'dep_2',
        asked: carol,
        by: bob,
      }),
    );
    return { s, audit };
  };

  it('lists the latest switches one line each (outcome, who asked, confirmed and approved, the alert), then the other requests', () => {
    const { s, audit } = incident();
    const v = deploymentsView(s, { routing: routingOf(s), audit, now: NOW });
    expect(lines(v, 'Switches')).toEqual([
      '2026-11-29 10:33 UTC · rollback dep_3 → dep_2 · succeeded · asked by Carol, confirmed by Alice, approved by Bob',
      '2026-11-29 10:00 UTC · promote dep_2 → dep_3 · outside Switchyard, by mallory (as the platform records it)',
      '2026-11-29 09:03 UTC · rollback dep_3 → dep_2 · succeeded · by Alice, approved by Bob · alert "Checkout 5xx above 2%"',
      '2026-11-29 07:00 UTC to 2026-11-29 08:23 UTC · dep_2 → dep_3 went live in turn · 2 automatic deploys by the platform',
    ]);
    const switches = blocksOf(v, 'list').find((l) => l.label.startsWith('Switches'));
    expect(switches?.label).toBe('Switches');
    expect(switches?.items.map((it) => it.state)).toEqual(['ok', undefined, 'ok', undefined]);
    // An expiry names nobody (time ran out) and is never called a cancel.
    expect(lines(v, 'Other requests')).toEqual([
      '2026-11-29 11:54 UTC · rollback dep_2 → dep_1 · cancelled by Bob · asked by Carol',
      '2026-11-29 11:50 UTC · promote dep_2 → dep_6 · waiting for confirmation · asked by Bob',
      '2026-11-29 11:45 UTC · rollback dep_2 → dep_1 · expired waiting for approval · asked and confirmed by Alice',
      '2026-11-29 11:40 UTC · promote dep_2 → dep_6 · expired: nobody confirmed it · asked by Bob',
    ]);
    // The job's long final message and the audit's sentences stay out of the lines.
    expect(viewText(v)).not.toContain('final message');
    expect(viewText(v)).not.toContain('nothing was changed');
  });

  it('keeps the latest switches in view however many entries each wrote, and says how many it shows', () => {
    // (No live history: the switches alone.)
    const s = { ...snapshot(), liveHistory: [] };
    const audit = history(
      ...Array.from({ length: 8 }, (_, k) =>
        switchEntries({
          at: NOW - (8 - k) * 10 * MIN,
          planId: `p_${k}`,
          targetId: 'dep_2',
          fromId: 'dep_3',
          asked: alice,
          confirmed: alice,
          approved: bob,
        }),
      ),
      ...Array.from({ length: 10 }, (_, k) =>
        expiredEntries({
          at: NOW - (100 - k) * MIN,
          planId: `x_${k}`,
          targetId: 'dep_1',
          fromId: 'dep_3',
          asked: bob,
        }),
      ),
    );
    const v = deploymentsView(s, { routing: routingOf(s), audit, now: NOW });
    const switches = blocksOf(v, 'list').find((l) => l.label.startsWith('Switches'));
    // The window read is not the history's size: how many lines are shown, never a total.
    expect(switches?.label).toBe('Switches (latest 5)');
    expect(switches?.items.map((it) => plainText(it.spans).slice(0, 20))).toEqual(
      [7, 6, 5, 4, 3].map((k) => formatTime(NOW - (8 - k) * 10 * MIN + 3 * MIN + 1000)),
    );
    expect(blocksOf(v, 'list').find((l) => l.label.startsWith('Other requests'))?.label).toBe(
      'Other requests (latest 4)',
    );
    const fewer = deploymentsView(s, {
      routing: routingOf(s),
      audit,
      now: NOW,
      switchLimit: 2,
      otherLimit: 1,
    });
    expect(lines(fewer, 'Switches')).toHaveLength(2);
    expect(lines(fewer, 'Other requests')).toHaveLength(1);
  });

  it('lists refused clicks apart from the history, briefly: who was refused on what, and why in a few words', () => {
    const { s, audit } = incident();
    const mallory: Actor = { surface: 'slack', userId: 'U0MALLORY', displayName: 'Mallory' };
    // What the refused person was told: addressed to them, with a YAML snippet for an operator.
    const told =
      'You may not roll back production: your Slack user id U0MALLORY is not on production\'s allow list. Ask someone who is.\nenvironments:\n  production:\n    allow:\n      slack:\n        users: ["U0MALLORY"]';
    const refusals = [
      refusedClick(NOW - 20_000, mallory, 'self_approval', 'Mallory cannot approve their own request: …'),
      refusedClick(NOW - 10_000, mallory, 'forbidden', told),
    ];
    const v = deploymentsView(s, { routing: routingOf(s), audit, refusals, now: NOW });
    expect(blocksOf(v, 'list').find((l) => l.label.startsWith('Refused clicks'))?.label).toBe(
      'Refused clicks (latest 2)',
    );
    expect(lines(v, 'Refused clicks')).toEqual([
      '2026-11-29 11:59 UTC · rollback to dep_2 · refused a click by Mallory: not allowed (forbidden)',
      '2026-11-29 11:59 UTC · rollback to dep_2 · refused a click by Mallory: someone else must approve (self_approval)',
    ]);
    expect(viewText(v)).not.toContain('your Slack user id');
    expect(viewText(v)).not.toContain('Ask someone who is');
    expect(viewText(v)).not.toContain('environments:');
    // They never take a line of the history.
    expect(lines(v, 'Switches')).toHaveLength(4);
    // None: no block at all.
    const quiet = deploymentsView(s, { routing: routingOf(s), audit, refusals: [], now: NOW });
    expect(blocksOf(quiet, 'list').some((l) => l.label.startsWith('Refused clicks'))).toBe(false);
  });

  it('tells newer from older by the snapshot order (newest first), not by createdAt', () => {
    // The platform lists newest first in its own order of creation; plans go by that order. Here the
    // wall clock stepped back: dep_6, pushed after the rollback to dep_2, carries an older createdAt,
    // and dep_1 (pushed long before) a later one. Promote belongs to dep_6, a rollback to dep_1.
    const base = snapshot({ rolledBack: true });
    const s: EnvironmentSnapshot = {
      ...base,
      deployments: base.deployments.map((d) =>
        d.id === 'dep_6'
          ? { ...d, createdAt: NOW - 6 * 60 * MIN }
          : d.id === 'dep_1'
            ? { ...d, status: 'ready', createdAt: NOW - MIN }
            : d,
      ),
    };
    const v = deploymentsView(s, { routing: routingOf(s), audit: [], now: NOW });
    const [rows] = blocksOf(v, 'rows');
    const table = rows?.rows.map((r) => [r.card.id, r.markers.join(','), labels(r.buttons).join(',')]);
    expect(table).toEqual([
      ['dep_6', 'not live: held back (production is rolled back)', 'Promote dep_6'],
      ['dep_5', 'building', ''],
      ['dep_4', 'failed', ''],
      ['dep_3', 'not live: rolled back from', 'Promote dep_3'],
      ['dep_2', 'live,rolled back', 'Resume automatic deploys'],
      ['dep_1', '', 'Rollback to dep_1'],
    ]);
  });

  it('hides buttons while a switch runs and says so', () => {
    const s = snapshot({ rolledBack: true });
    const v = deploymentsView(s, {
      routing: [],
      audit: [],
      now: NOW,
      activeJob: {
        action: 'promote',
        targetId: 'dep_6',
        requestedBy: { displayName: 'Bob' },
        startedAt: NOW - 2 * MIN,
      },
    });
    const [rows] = blocksOf(v, 'rows');
    expect(rows?.rows.every((r) => r.buttons.length === 0)).toBe(true);
    // A snapshot, never edited when the switch ends: it says as of when, and no longer promises the
    // buttons come back on it.
    expect(viewText(v)).toContain(
      'A promote to dep_6 is running (requested by Bob), started 2 minutes ago, as of 12:00:00 UTC when this list was read. Buttons are hidden while it runs: run /deployments production again once it ends.',
    );
    expect(viewText(v)).not.toContain('Buttons come back');
  });

  it('limits to recent deployments but always lists the live one, with the total', () => {
    const s = snapshot({ extraDeployments: 20 });
    const v = deploymentsView(s, { routing: [], audit: [], now: NOW, limit: 2 });
    const [rows] = blocksOf(v, 'rows');
    expect(rows?.rows.map((r) => r.card.id)).toEqual(['dep_5', 'dep_4', 'dep_3']);
    expect(rows?.total).toBe(25);
  });

  it("does not give the platform's read limit as the total when the adapter stopped reading there", () => {
    // Review case: 1 200 deployments on Unkey/Vercel read as "Showing 10 of 500 deployments" and
    // "500 deployment(s)": 500 is the adapters' maxDeployments.
    const s = snapshot({ extraDeployments: 20 });
    const whole = deploymentsView(s, { routing: [], audit: [], now: NOW });
    expect(whole.summary).toBe('production: dep_3 is live; 25 deployment(s).');
    expect(blocksOf(whole, 'rows')[0]?.truncated).toBeUndefined();
    expect(JSON.stringify(renderSlack(whole))).toContain(
      'Showing 10 of 25 deployments (the most recent and the live one).',
    );

    const cut = deploymentsView({ ...s, deploymentsTruncated: true }, { routing: [], audit: [], now: NOW });
    expect(cut.summary).toBe('production: dep_3 is live; 25+ deployments.');
    const [rows] = blocksOf(cut, 'rows');
    expect(rows).toMatchObject({ total: 25, truncated: true });
    const said = 'Showing 10 of the 25 deployments read (the most recent and the live one); more exist.';
    expect(JSON.stringify(renderSlack(cut))).toContain(said);
    expect(renderDiscord(cut).embeds[0]?.description).toContain(`*${said}*`);
    expect(renderConsole(cut).blocks.find((b) => b.type === 'rows')).toMatchObject({
      total: 25,
      truncated: true,
    });
    // All of them shown, but more left unread: still said.
    const few = deploymentsView(
      { ...snapshot(), deploymentsTruncated: true },
      { routing: [], audit: [], now: NOW },
    );
    expect(JSON.stringify(renderSlack(few))).toContain(
      'Showing 5 of the 5 deployments read (the most recent and the live one); more exist.',
    );
    // None of this environment among those read: not "none yet".
    const none = deploymentsView(
      { ...snapshot(), deployments: [], deploymentsTruncated: true },
      { routing: [], audit: [], now: NOW },
    );
    expect(viewText(none)).toContain(
      'No deployment of production among the newest deployments read; the platform has more.',
    );
    expect(viewText(none)).not.toContain('No deployments in production yet.');
  });

  it('explains a row whose id does not fit a button', () => {
    const s = snapshot();
    const longId = `dep_${'z'.repeat(80)}`;
    const withLong: EnvironmentSnapshot = {
      ...s,
      deployments: s.deployments.map((d) => (d.id === 'dep_2' ? { ...d, id: longId } : d)),
    };
    const v = deploymentsView(withLong, { routing: [], audit: [], now: NOW });
    const row = blocksOf(v, 'rows')[0]?.rows.find((r) => r.card.id === longId);
    expect(row?.buttons).toHaveLength(0);
    expect(row?.buttonNote).toContain('does not fit a button; type /rollback with it instead');
  });
});

describe('refusalView and usageView', () => {
  it('refusal is ephemeral with a headline, the message and the code', () => {
    const v = refusalView({
      code: 'forbidden',
      message: 'You may not act on production. Ask #ops to add you.',
    });
    expect(v.ephemeral).toBe(true);
    expect(v.title).toBe('Not allowed');
    expect(viewText(v)).toContain('You may not act on production. Ask #ops to add you.');
    expect(viewText(v)).toContain('Nothing was changed. Code: forbidden');
    expect(v.buttons).toHaveLength(0);
  });

  it('the summary says the headline once: not again when the message starts with it', () => {
    const unknown = refusalView({
      code: 'unknown_environment',
      message: 'Unknown environment "staging". Valid: production.',
    });
    expect(unknown.title).toBe('Unknown environment');
    expect(unknown.summary).toBe('Unknown environment "staging". Valid: production.');
    const forbidden = refusalView({ code: 'forbidden', message: 'You may not act on production.' });
    expect(forbidden.summary).toBe('Not allowed: You may not act on production.');
  });

  it('refusal with usage lists valid environments and recent deployments', () => {
    const s = snapshot();
    const v = refusalView(
      { code: 'unknown_environment', message: 'Unknown environment "prd".' },
      {
        command: 'rollback',
        validEnvironments: ['production', 'preview'],
        recentDeployments: s.deployments.slice(0, 3),
      },
    );
    expect(v.title).toBe('Unknown environment');
    expect(blocksOf(v, 'usage')[0]).toMatchObject({ command: 'rollback' });
    expect(viewText(v)).toContain('Valid environments: production, preview');
    expect(viewText(v)).toContain('dep_5');
  });

  it.each([
    ['too_many_domains', 'Too many domains for one switch'],
    ['unsupported_domain', 'A domain Switchyard cannot verify'],
  ] as const)('a plan Switchyard cannot queue (%s) has a headline saying why', (code, title) => {
    const v = refusalView({ code, message: 'production has 612 affected domains; …' });
    expect(v.title).toBe(title);
  });

  it('a refusal code without a headline still renders', () => {
    const v = refusalView({ code: 'platform_forbidden', message: 'The root key lacks rollback_deployment.' });
    expect(v.title).toBe('Not done');
  });

  it.each(['rollback', 'promote', 'deployments'] as const)('usage of /%s', (command) => {
    const v = usageView(command, ['production'], snapshot().deployments);
    expect(v.ephemeral).toBe(true);
    expect(v.title).toBe(`How to use /${command}`);
    const usage = blocksOf(v, 'usage')[0];
    expect(usage?.command).toBe(command);
    expect(usage?.args[0]?.required).toBe(true);
    expect(viewText(v)).toContain('Valid environments: production');
    expect(blocksOf(v, 'list')).toHaveLength(command === 'deployments' ? 0 : 1);
  });

  it('usage says when no environment is configured', () => {
    expect(viewText(usageView('rollback', []))).toContain('Valid environments: none configured');
    expect(usageView('rollback', []).summary).toBe('Usage: /rollback <environment> [deployment-id]');
  });
});

describe('noticeView', () => {
  const s = snapshot({ rolledBack: true });
  const dep = (id: string) => {
    const d = s.deployments.find((x) => x.id === id);
    if (!d) throw new Error(id);
    return d;
  };

  it('deployment ready and failed', () => {
    const ready = noticeView(
      { type: 'deployment.ready', environment: 'production', deployment: dep('dep_6'), live: true },
      { now: NOW },
    );
    expect(ready.title).toBe('dep_6 is live on production');
    expect(ready.tone).toBe('success');
    const failed = noticeView(
      {
        type: 'deployment.failed',
        environment: 'production',
        deployment: dep('dep_4'),
        reason: 'build step exited 1',
      },
      { now: NOW },
    );
    expect(failed.title).toBe('dep_4 failed on production');
    expect(viewText(failed)).toContain('failed to build or start. build step exited 1 Traffic did not move.');
  });

  it('traffic moved outside Switchyard', () => {
    const v = noticeView(
      {
        type: 'traffic.moved',
        environment: 'production',
        from: { id: 'dep_3' },
        to: dep('dep_2'),
        via: 'rollback',
        by: 'dashboard user',
      },
      { now: NOW },
    );
    expect(v.title).toBe('Traffic on production moved to dep_2');
    expect(viewText(v)).toContain(
      'before: dep_3. This happened outside Switchyard (a rollback by dashboard user',
    );
  });

  it('ready but not live while rolled back offers Promote', () => {
    const v = noticeView(
      {
        type: 'ready.not_live',
        environment: 'production',
        deployment: dep('dep_6'),
        rolledBackTo: dep('dep_2'),
        rolledBackAt: NOW - 3 * 60 * MIN,
        rolledBackBy: 'Alice',
      },
      { now: NOW },
    );
    expect(v.summary).toBe('dep_6 is ready but not live: production is rolled back to dep_2.');
    expect(viewText(v)).toContain('Rolled back since 2026-11-29 09:00 UTC (3 hours ago) by Alice');
    expect(labels(v.buttons)).toEqual(['Promote dep_6']);
    expect(parseAction(v.buttons[0]?.actionId)).toEqual({
      ok: true,
      value: { kind: 'promote', ref: { environment: 'production', deploymentId: 'dep_6' } },
    });
  });

  it('reminder says for how long, since when and by whom', () => {
    const base = {
      type: 'rolled_back.reminder',
      environment: 'production',
      current: { id: 'dep_2' },
      since: NOW - 4 * 60 * MIN,
      by: 'Alice',
    } as const;
    const v = noticeView(base, { now: NOW });
    expect(viewText(v)).toContain(
      'production has been rolled back to dep_2 for 4 hours (since 2026-11-29 08:00 UTC, by Alice).',
    );
    expect(labels(v.buttons)).toEqual(['Resume automatic deploys']);
    const waiting = noticeView({ ...base, waiting: dep('dep_6') }, { now: NOW });
    expect(labels(waiting.buttons)).toEqual(['Promote dep_6']);
    expect(viewText(waiting)).toContain('Waiting to go live: dep_6');
  });
});

describe('listedDeployments', () => {
  it('lists the newest ones and always the current one, however many came after it', () => {
    const s = snapshot({ rolledBack: true }); // current: dep_2, with four newer deployments
    expect(listedDeployments(s, 2).map((d) => d.id)).toEqual(['dep_6', 'dep_5', 'dep_2']);
    expect(listedDeployments(s, 10).map((d) => d.id)).toEqual(s.deployments.map((d) => d.id));
  });
});

describe('people are identified by their surface id, not by a display name anyone can choose', () => {
  // Two different people with the same display name "alice": a Slack Connect partner's handle, and a
  // Discord member who set the server nickname "alice". Permission checks match ids; the messages must too.
  const partnerAlice: Actor = { surface: 'slack', userId: 'U0PARTNERALICE', displayName: 'alice' };
  const ourAlice: Actor = { surface: 'slack', userId: 'U0ALICE', displayName: 'alice' };
  const carol: Actor = { surface: 'slack', userId: 'U0CAROL', displayName: 'carol' };
  const mallory: Actor = { surface: 'discord', userId: '112233445566778899', displayName: 'alice' };
  const dcarol: Actor = { surface: 'discord', userId: '998877665544332211', displayName: 'carol' };
  const waiting = (asker: Actor, confirmer: Actor) =>
    confirmationView(plan('rollback'), {
      state: 'awaiting_approval',
      now: NOW,
      requestedBy: confirmer,
      confirmedBy: confirmer,
      askedBy: asker,
      requiresApproval: true,
    });
  const slackText = (v: MessageView) => JSON.stringify(renderSlack(v, { mentions: true }).blocks);

  it('Slack: the approval prompt mentions the asker and confirmer by id (<@U…>), telling two alices apart', () => {
    const v = waiting(partnerAlice, carol);
    const text = slackText(v);
    expect(text).toContain(
      'Requested by <@U0PARTNERALICE>, confirmed by <@U0CAROL>. *Waiting for approval* by someone other than <@U0PARTNERALICE> and <@U0CAROL>.',
    );
    expect(text).not.toContain('Requested by alice');
    // Our own alice asking reads differently: the mention is of another person.
    expect(slackText(waiting(ourAlice, carol))).toContain('Requested by <@U0ALICE>,');
    // Plain-text places cannot mention: the Approve dialog (plain_text, as Slack documents it), the
    // header and the notification text keep the display names; the message above identifies them.
    expect(v.buttons[0]?.confirm?.text).toMatch(
      /^alice asked to roll back production to dep_2 and carol confirmed it\./,
    );
    expect(renderSlack(v).text).not.toContain('<@');
  });

  it('Discord: the approval prompt mentions the asker by id (<@id>), not by the nickname, and never pings', () => {
    const v = waiting(mallory, dcarol);
    const m = renderDiscord(v);
    expect(m.embeds[0]?.description).toContain(
      'Requested by <@112233445566778899>, confirmed by <@998877665544332211>. **Waiting for approval** by someone other than <@112233445566778899> and <@998877665544332211>.',
    );
    expect(m.embeds[0]?.description).not.toContain('Requested by alice');
    expect(m.embeds[0]?.title).not.toContain('<@');
    expect(m.allowed_mentions).toEqual({ parse: [] });
    expect(m.allowedMentions).toEqual({ parse: [] });
  });

  it('Discord: a nicknamed impostor reads with their unique username after the mention, the real alice without', () => {
    // Discord shows <@id> with the member's server nickname: mallory nicknamed "alice" reads "@alice".
    // Her username (unique on Discord) follows whenever it differs from the name shown.
    const impostor: Actor = { ...mallory, username: 'mallory' };
    const realAlice: Actor = {
      surface: 'discord',
      userId: '556677889900112233',
      displayName: 'alice',
      username: 'alice',
    };
    const carolU: Actor = { ...dcarol, username: 'carol_ops' };
    const v = waiting(impostor, carolU);
    const m = renderDiscord(v);
    expect(m.embeds[0]?.description).toContain(
      'Requested by <@112233445566778899> \\(\\@mallory\\), confirmed by <@998877665544332211> \\(\\@carol\\_ops\\). **Waiting for approval** by someone other than <@112233445566778899> \\(\\@mallory\\) and <@998877665544332211> \\(\\@carol\\_ops\\).',
    );
    expect(m.embeds[0]?.title).not.toContain('mallory');
    expect(m.allowedMentions).toEqual({ parse: [] });
    // The real alice's username is her name: the mention alone.
    const real = renderDiscord(waiting(realAlice, carolU)).embeds[0]?.description;
    expect(real).toContain('Requested by <@556677889900112233>, confirmed by');
    expect(real).not.toContain('\\@alice');
    // Plain text (the Approve dialog, which Slack and the console show): the name with the username.
    expect(v.buttons[0]?.confirm?.text).toMatch(
      /^alice \(@mallory\) asked to roll back production to dep_2 and carol \(@carol_ops\) confirmed it\./,
    );
    expect(waiting(realAlice, dcarol).buttons[0]?.confirm?.text).toMatch(
      /^alice asked to roll back production to dep_2 and carol confirmed it\./,
    );
    // Other surfaces name her with the username and where she is.
    const other = waiting(impostor, carol);
    expect(slackText(other)).toContain('Requested by alice (@mallory on Discord), confirmed by <@U0CAROL>.');
    expect(
      renderConsole(other)
        .blocks.flatMap((b) => ('spans' in b ? b.spans : []))
        .map((x) => x.text)
        .join(''),
    ).toContain('Requested by alice (@mallory on Discord), confirmed by carol (on Slack).');
    // Progress and the pending prompt too.
    const prog = progressView(progress(plan('rollback'), { requestedBy: impostor, approvedBy: dcarol }));
    expect(renderDiscord(prog).embeds[0]?.description).toContain(
      'Confirmed by <@112233445566778899> \\(\\@mallory\\) · approved by <@998877665544332211> · from',
    );
    const pending = confirmationView(plan('rollback'), { state: 'pending', now: NOW, requestedBy: impostor });
    expect(renderDiscord(pending).embeds[0]?.description).toContain(
      '*Requested by <@112233445566778899> \\(\\@mallory\\)*',
    );
  });

  it('a person of another surface is named saying where they are, on every surface; the alert bot by name', () => {
    const v = waiting(mallory, carol);
    // On Slack: the Discord asker cannot be mentioned (a Discord id means nothing there).
    expect(slackText(v)).toContain('Requested by alice (on Discord), confirmed by <@U0CAROL>.');
    // On Discord: the Slack confirmer likewise.
    expect(renderDiscord(v).embeds[0]?.description).toContain(
      'Requested by <@112233445566778899>, confirmed by carol \\(on Slack\\).',
    );
    // The console has no mentions: names, with the surface of each.
    const c = renderConsole(v);
    expect(
      c.blocks
        .flatMap((b) => ('spans' in b ? b.spans : []))
        .map((x) => x.text)
        .join(''),
    ).toContain('Requested by alice (on Discord), confirmed by carol (on Slack).');
    const bot: Actor = { surface: 'system', userId: 'switchyard-alerts', displayName: 'Switchyard alerts' };
    const p = plan('rollback');
    const enq = confirmationView(p, { state: 'enqueued', now: NOW, requestedBy: bot });
    expect(slackText(enq)).toContain('Confirmed by Switchyard alerts. Progress follows');
    expect(renderDiscord(enq).embeds[0]?.description).toContain(
      'Confirmed by Switchyard alerts. Progress follows',
    );
  });

  it('a display name or id that is not what its surface issues is never turned into markup', () => {
    const hostile: Actor = { surface: 'slack', userId: 'U1>|<!channel', displayName: '<!channel> *x*' };
    const v = confirmationView(plan('rollback'), { state: 'pending', now: NOW, requestedBy: hostile });
    const text = slackText(v);
    expect(text).not.toContain('<!channel');
    expect(text).toContain('Requested by &lt;!channel&gt; *x*');
    const dhostile: Actor = { surface: 'discord', userId: '12<@&99>', displayName: '@everyone' };
    const d = renderDiscord(
      confirmationView(plan('rollback'), { state: 'pending', now: NOW, requestedBy: dhostile }),
    );
    expect(d.embeds[0]?.description).toContain('Requested by \\@everyone');
    expect(d.embeds[0]?.description).not.toContain('<@');
  });

  it('confirmed, approved, cancelled, expired and progress name people by mention', () => {
    const p = plan('rollback');
    expect(
      slackText(
        confirmationView(p, { state: 'enqueued', now: NOW, requestedBy: partnerAlice, approvedBy: carol }),
      ),
    ).toContain('Confirmed by <@U0PARTNERALICE>, approved by <@U0CAROL>. Progress follows in this message.');
    expect(
      slackText(
        confirmationView(p, { state: 'cancelled', now: NOW, requestedBy: carol, cancelledBy: partnerAlice }),
      ),
    ).toContain('Cancelled by <@U0PARTNERALICE>. Nothing changed.');
    expect(
      slackText(
        confirmationView(p, {
          state: 'expired',
          now: NOW,
          requestedBy: partnerAlice,
          confirmedBy: partnerAlice,
          requiresApproval: true,
        }),
      ),
    ).toContain(
      'This plan expired waiting for approval: <@U0PARTNERALICE> confirmed it, but no second person',
    );
    expect(
      slackText(
        confirmationView(p, {
          state: 'expired',
          now: NOW,
          requestedBy: partnerAlice,
          confirmedBy: partnerAlice,
          approvedBy: carol,
        }),
      ),
    ).toContain('queued: <@U0PARTNERALICE> confirmed it and <@U0CAROL> approved it, but');
    const prog = progressView(progress(p, { requestedBy: mallory, approvedBy: dcarol }));
    expect(renderDiscord(prog).embeds[0]?.description).toContain(
      'Confirmed by <@112233445566778899> · approved by <@998877665544332211> · from',
    );
  });

  it('/deployments: the history and the running switch mention who acted when the surface and id are known (Slack: where the renderer is asked for mentions, i.e. edits)', () => {
    const s = snapshot();
    const v = deploymentsView(s, {
      routing: routingOf(s),
      audit: history(
        switchEntries({
          at: NOW - 10 * MIN,
          planId: 'p_1',
          targetId: 'dep_2',
          fromId: 'dep_3',
          asked: partnerAlice,
          confirmed: partnerAlice,
          approved: mallory,
          end: 'running',
        }),
        // An entry with the display name alone (nothing else known) stays a name.
        [
          {
            at: NOW - 30 * MIN,
            environment: 'production',
            action: 'rollback',
            event: 'cancelled',
            actor: { surface: 'slack', userId: '', displayName: 'dave' },
          },
        ],
      ),
      now: NOW,
      activeJob: { action: 'rollback', targetId: 'dep_2', requestedBy: partnerAlice },
    });
    const text = slackText(v);
    expect(text).toContain('*running* · by <@U0PARTNERALICE>, approved by alice (on Discord)');
    expect(text).toContain('*cancelled* by dave');
    expect(text).toContain('(requested by <@U0PARTNERALICE>)');
    const switches = renderDiscord(v).embeds[0]?.fields?.find((f) => f.name.startsWith('Switches'));
    expect(switches?.value).toContain('approved by <@112233445566778899>');
  });

  it('/deployments: the running switch and the history name a Discord person with the username that differs', () => {
    const s = snapshot();
    const impostor: Actor = { ...mallory, username: 'mallory' };
    const v = deploymentsView(s, {
      routing: routingOf(s),
      audit: switchEntries({
        at: NOW - 5 * MIN,
        planId: 'p_1',
        targetId: 'dep_2',
        fromId: 'dep_3',
        asked: impostor,
        confirmed: impostor,
        end: 'queued',
      }),
      now: NOW,
      activeJob: { action: 'rollback', targetId: 'dep_2', requestedBy: impostor },
    });
    const d = renderDiscord(v).embeds[0];
    expect(d?.description).toContain(
      '**is running** \\(requested by <@112233445566778899> \\(\\@mallory\\)\\)',
    );
    expect(d?.fields?.find((f) => f.name.startsWith('Switches'))?.value).toContain(
      '**queued** · by <@112233445566778899> \\(\\@mallory\\)',
    );
    expect(slackText(v)).toContain('(requested by alice (@mallory on Discord))');
  });
});
