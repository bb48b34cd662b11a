/**
 * Every state of every view, built from real plans, for the renderer tests: each renderer must accept
 * all of them within its platform's rules.
 */
import type { EnvironmentSnapshot } from '../../src/domain/types.js';
import type { Route } from '../../src/platform/port.js';
import type { Actor } from '../../src/progress.js';
import {
  type ConfirmationState,
  confirmationView,
  deploymentsView,
  noticeView,
  progressView,
  refusalView,
  usageView,
} from '../../src/views/model.js';
import type { MessageView } from '../../src/views/types.js';
import { expiredEntries, history, refusedClick, switchEntries } from './audit-entries.js';
import { alice, bob, NOW, plan, progress, snapshot } from './fixtures.js';

const MIN = 60_000;

export function routingOf(s: EnvironmentSnapshot): Route[] {
  return s.domains.map((d) => ({
    hostname: d.hostname,
    stickiness: d.stickiness,
    environment: d.environment,
    ...(d.deploymentId === undefined ? {} : { deploymentId: d.deploymentId }),
  }));
}

const STATES: readonly ConfirmationState[] = [
  'pending',
  'awaiting_approval',
  'enqueued',
  'cancelled',
  'stale',
  'expired',
];

/** [name, view] for every view and state; `liveDomains` makes the big variant. */
export function catalog(liveDomains = 2): [string, MessageView][] {
  const out: [string, MessageView][] = [];
  const plans = {
    rollback: plan('rollback', { liveDomains }),
    rollbackAgain: plan('rollback', { rolledBack: true, liveDomains }),
    promote: plan('promote', { rolledBack: true, liveDomains }),
    resume: plan('promote', { rolledBack: true, target: 'dep_2', liveDomains }),
  };
  for (const [name, p] of Object.entries(plans)) {
    for (const state of STATES) {
      out.push([
        `confirmation ${name} ${state}`,
        confirmationView(p, {
          state,
          now: NOW,
          requestedBy: alice,
          ...(state === 'enqueued' ? { approvedBy: bob } : {}),
          ...(state === 'cancelled' ? { cancelledBy: bob } : {}),
          ...(state === 'stale' ? { staleReason: 'production now serves dep_6, not dep_3.' } : {}),
        }),
      ]);
    }
  }
  const alert = {
    source: 'alertmanager',
    title: 'HighErrorRate <!here> @everyone',
    startedAt: NOW - 30 * MIN,
    resolved: false,
  };
  out.push(['alert suggestion', confirmationView(plans.rollback, { state: 'pending', now: NOW, alert })]);
  out.push([
    'confirmation two-person pending',
    confirmationView(plans.rollback, {
      state: 'pending',
      now: NOW,
      requestedBy: alice,
      requiresApproval: true,
    }),
  ]);
  out.push([
    'confirmation two-person awaiting approval, asked by another',
    confirmationView(plans.rollback, {
      state: 'awaiting_approval',
      now: NOW,
      requestedBy: bob,
      confirmedBy: bob,
      askedBy: alice,
      requiresApproval: true,
    }),
  ]);
  out.push([
    'confirmation two-person expired awaiting approval',
    confirmationView(plans.rollback, {
      state: 'expired',
      now: NOW,
      requestedBy: alice,
      confirmedBy: alice,
      requiresApproval: true,
    }),
  ]);
  out.push([
    'alert suggestion resolved',
    confirmationView(plans.rollback, {
      state: 'pending',
      now: NOW,
      alert: { ...alert, resolved: true, resolvedAt: NOW },
    }),
  ]);

  const p = plans.rollback;
  const traffic = p.affectedDomains.map((d, k) => ({
    hostname: d.hostname,
    deploymentId: k % 7 === 0 ? 'dep_3' : 'dep_2',
    ok: k % 7 !== 0,
  }));
  out.push(['progress running', progressView(progress(p), p)]);
  out.push(['progress running approved', progressView(progress(p, { approvedBy: bob, attempt: 3 }), p)]);
  out.push([
    'progress succeeded',
    progressView(
      progress(p, {
        outcome: 'succeeded',
        traffic: traffic.map((x) => ({ ...x, deploymentId: 'dep_2', ok: true })),
      }),
      p,
    ),
  ]);
  out.push([
    'progress failed',
    progressView(
      progress(p, { outcome: 'failed', code: 'verify_timeout', message: 'Production is split.', traffic }),
      p,
    ),
  ]);
  out.push([
    'progress failed, then completed by the platform',
    progressView(
      progress(p, { outcome: 'failed', code: 'verify_timeout', message: 'Production is split.', traffic }),
      p,
      { at: NOW + 7 * MIN },
    ),
  ]);
  out.push([
    'progress refused',
    progressView(progress(p, { outcome: 'refused', code: 'forbidden', message: 'Nothing moved.' }), p),
  ]);
  out.push([
    'progress stale',
    progressView(progress(p, { outcome: 'stale', message: 'production now serves dep_6.' }), p),
  ]);
  out.push(['progress cancelled', progressView(progress(p, { outcome: 'cancelled' }), p)]);
  out.push(['progress resume', progressView(progress(plans.resume, { outcome: 'succeeded' }), plans.resume)]);

  // A long incident: switches with two people, Discord mentions and usernames, hostile names and alert
  // titles, expiries, and moves the platform recorded outside Switchyard.
  const hostile: Actor = {
    surface: 'discord',
    userId: '112233445566778899',
    displayName: 'Alice <!channel> @everyone',
    username: 'alice*_~',
  };
  const approver: Actor = {
    surface: 'discord',
    userId: '998877665544332211',
    displayName: 'bob',
    username: 'bobby',
  };
  const audit = history(
    ...Array.from({ length: 8 }, (_, k) =>
      switchEntries({
        at: NOW - (k + 1) * 20 * MIN,
        planId: `p_${k}`,
        targetId: `dep_${'x'.repeat(30)}`,
        fromId: `dep_${'y'.repeat(30)}`,
        alert: { title: `*bold* @everyone <!channel> ${'x'.repeat(100)}`, source: 'generic' },
        confirmed: hostile,
        approved: approver,
        ...(k % 3 === 1 ? { end: 'failed', code: 'verify_timeout' } : {}),
      }),
    ),
    ...Array.from({ length: 6 }, (_, k) =>
      expiredEntries({
        at: NOW - (k + 1) * 15 * MIN,
        planId: `x_${k}`,
        targetId: 'dep_1',
        fromId: 'dep_2',
        asked: hostile,
        confirmed: approver,
      }),
    ),
  );
  const refusals = [
    refusedClick(NOW - MIN, hostile, 'forbidden', 'You may not …'),
    refusedClick(NOW - 2 * MIN, approver, 'self_approval', 'bob cannot approve …'),
  ];
  const outside = (s: EnvironmentSnapshot): EnvironmentSnapshot => ({
    ...s,
    liveHistory: [
      ...s.liveHistory,
      { deploymentId: 'dep_2', since: NOW - 2 * MIN, via: 'rollback', by: '<!channel> @everyone *x*' },
    ],
  });
  const normal = snapshot({ liveDomains });
  const rolled = snapshot({ rolledBack: true, liveDomains });
  out.push(['deployments', deploymentsView(normal, { routing: routingOf(normal), audit: [], now: NOW })]);
  out.push([
    'deployments rolled back',
    deploymentsView(outside(rolled), { routing: routingOf(rolled), audit, refusals, now: NOW }),
  ]);
  out.push([
    'deployments active job',
    deploymentsView(rolled, {
      routing: routingOf(rolled),
      audit,
      now: NOW,
      activeJob: { action: 'promote', targetId: 'dep_6' },
    }),
  ]);
  const many = snapshot({ extraDeployments: 40, liveDomains });
  out.push([
    'deployments long',
    deploymentsView(outside(many), {
      routing: routingOf(many),
      audit,
      refusals,
      now: NOW,
      limit: 40,
      switchLimit: 8,
      otherLimit: 6,
    }),
  ]);

  out.push(['refusal', refusalView({ code: 'forbidden', message: 'You may not act on production.' })]);
  out.push([
    'refusal with usage',
    refusalView(
      { code: 'unknown_environment', message: 'Unknown environment "prd".' },
      {
        command: 'rollback',
        validEnvironments: ['production', 'preview'],
        recentDeployments: normal.deployments,
      },
    ),
  ]);
  out.push(['usage rollback', usageView('rollback', ['production', 'preview'], normal.deployments)]);
  out.push(['usage promote', usageView('promote', ['production'], normal.deployments)]);
  out.push(['usage deployments', usageView('deployments', [])]);

  const d = (id: string) => {
    const found = rolled.deployments.find((x) => x.id === id);
    if (!found) throw new Error(id);
    return found;
  };
  const now = { now: NOW };
  out.push([
    'notice ready',
    noticeView(
      { type: 'deployment.ready', environment: 'production', deployment: d('dep_6'), live: true },
      now,
    ),
  ]);
  out.push([
    'notice failed',
    noticeView({ type: 'deployment.failed', environment: 'production', deployment: d('dep_4') }, now),
  ]);
  out.push([
    'notice moved',
    noticeView({ type: 'traffic.moved', environment: 'production', to: d('dep_3'), via: 'deploy' }, now),
  ]);
  out.push([
    'notice ready not live',
    noticeView(
      {
        type: 'ready.not_live',
        environment: 'production',
        deployment: d('dep_6'),
        rolledBackTo: d('dep_2'),
        rolledBackAt: NOW - 180 * MIN,
        rolledBackBy: 'Alice',
      },
      now,
    ),
  ]);
  out.push([
    'notice reminder',
    noticeView(
      {
        type: 'rolled_back.reminder',
        environment: 'production',
        current: d('dep_2'),
        since: NOW - 240 * MIN,
        by: 'Alice',
        waiting: d('dep_6'),
      },
      now,
    ),
  ]);
  return out;
}
