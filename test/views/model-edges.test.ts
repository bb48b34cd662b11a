import { describe, expect, it } from 'vitest';
import type { Plan } from '../../src/domain/plan.js';
import type { Deployment } from '../../src/domain/types.js';
import {
  type AlertContext,
  type AuditEntryLike,
  confirmationView,
  deploymentsView,
  noticeView,
  progressView,
} from '../../src/views/model.js';
import type { MessageView, ViewBlock } from '../../src/views/types.js';
import { alice, bob, NOW, plan, progress, snapshot, viewText } from '../views/fixtures.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

function blocksOf<T extends ViewBlock['type']>(
  view: MessageView,
  type: T,
): Extract<ViewBlock, { type: T }>[] {
  return view.blocks.filter((b): b is Extract<ViewBlock, { type: T }> => b.type === type);
}

function routingOf(s: ReturnType<typeof snapshot>) {
  return s.domains.map((d) => ({
    hostname: d.hostname,
    stickiness: d.stickiness,
    environment: d.environment,
    ...(d.deploymentId === undefined ? {} : { deploymentId: d.deploymentId }),
  }));
}

/** A rollback plan with its cards' times replaced (ages as of `plan.createdAt`). */
function agedPlan(over: { current: number; target: number; liveSince?: number }): Plan {
  const p = plan('rollback');
  const { currentLiveSince: _drop, ...rest } = p;
  return {
    ...rest,
    current: { ...p.current, createdAt: over.current },
    target: { ...p.target, createdAt: over.target },
    ...(over.liveSince === undefined ? {} : { currentLiveSince: over.liveSince }),
  } as Plan;
}

const AS_OF = 'Deployment ages as of';

describe('confirmationView', () => {
  it('the rollback confirm dialog says the domains move to the target instead of the current deployment', () => {
    const p = plan('rollback');
    const v = confirmationView(p, { state: 'pending', now: NOW, requestedBy: alice });
    const text = v.buttons[0]?.confirm?.text ?? '';
    expect(text).toContain(`will point to ${p.target.id} (`);
    expect(text).toContain(`instead of ${p.current.id}.`);
  });

  it('a live domain is listed by its hostname alone (no stickiness suffix)', () => {
    const p = plan('rollback');
    const v = confirmationView(p, { state: 'pending', now: NOW });
    const list = blocksOf(v, 'list').find((l) => l.label.startsWith('Affected domains'));
    expect(list?.items[0]?.spans).toEqual([{ text: 'demo.example.com', style: 'code' }]);
  });

  it('says as of when when only the current deployment\'s "live for" would read differently', () => {
    const p = agedPlan({ current: NOW - 2 * DAY, target: NOW - 3 * DAY, liveSince: NOW - 37 * MIN });
    const v = confirmationView(p, { state: 'expired', now: p.createdAt + MIN });
    expect(viewText(v)).toContain(AS_OF);
  });

  it("says as of when when only the current deployment's age would read differently", () => {
    const p = agedPlan({ current: NOW - 10 * MIN, target: NOW - 3 * DAY });
    const v = confirmationView(p, { state: 'expired', now: p.createdAt + MIN });
    expect(viewText(v)).toContain(AS_OF);
  });

  it("says as of when when only the target's age would read differently", () => {
    const p = agedPlan({ current: NOW - 2 * DAY, target: NOW - 10 * MIN });
    const v = confirmationView(p, { state: 'expired', now: p.createdAt + MIN });
    expect(viewText(v)).toContain(AS_OF);
  });

  it('the Approve button of a rollback is styled danger, of a promote primary', () => {
    const rb = confirmationView(plan('rollback'), {
      state: 'awaiting_approval',
      now: NOW,
      requestedBy: alice,
      requiresApproval: true,
    });
    expect(rb.buttons.find((b) => b.label === 'Approve')?.style).toBe('danger');
    const pr = confirmationView(plan('promote', { rolledBack: true }), {
      state: 'awaiting_approval',
      now: NOW,
      requestedBy: alice,
      requiresApproval: true,
    });
    expect(pr.buttons.find((b) => b.label === 'Approve')?.style).toBe('primary');
  });

  it('an expired plan with a confirmer but no two-person rule recorded says its queueing did not finish, not "waiting for approval"', () => {
    const v = confirmationView(plan('rollback'), { state: 'expired', now: NOW, confirmedBy: alice });
    expect(viewText(v)).toContain(
      'This plan expired before its switch was queued: Alice confirmed it, but its queueing did not finish.',
    );
    expect(viewText(v)).not.toContain('waiting for approval');
  });
});

describe('alert suggestion', () => {
  const base: AlertContext = {
    source: 'grafana',
    title: 'High 5xx on checkout',
    startedAt: NOW - 30 * MIN,
    resolved: false,
  };

  it('a deployment that went live the very moment the alert started reads "0 seconds before", not "after"', () => {
    const v = confirmationView(plan('rollback'), {
      state: 'pending',
      now: NOW,
      alert: { ...base, wentLive: { deploymentId: 'dep_3', at: base.startedAt } },
    });
    expect(viewText(v)).toContain('dep_3 went live 0 seconds before this alert started.');
  });

  it('unlisted other alerts count as still firing unless told otherwise', () => {
    const v = confirmationView(plan('rollback'), {
      state: 'pending',
      now: NOW,
      alert: { ...base, othersMore: 3 },
    });
    const list = blocksOf(v, 'list').find((l) => l.label.includes('more alert'));
    expect(list?.label).toBe('3 more alerts on this deployment (3 still firing)');
  });

  it('two alerts that both resolved read "All 2 alerts resolved", and the alert line turns neutral', () => {
    const v = confirmationView(plan('rollback'), {
      state: 'pending',
      now: NOW,
      alert: {
        ...base,
        resolved: true,
        resolvedAt: NOW - MIN,
        selfResolved: true,
        others: [{ source: 'grafana', title: 'Latency', startedAt: NOW - 29 * MIN, resolved: true }],
      },
    });
    expect(viewText(v)).toContain('All 2 alerts resolved at 2026-11-29 11:59 UTC.');
    const head = blocksOf(v, 'text')[0];
    expect(head?.tone).toBe('neutral');
    // every alert resolved: said once, below, not again as "It has resolved." on the alert line
    expect(viewText(v)).not.toContain('It has resolved.');
  });
});

describe('progressView', () => {
  it("a succeeded switch shows the job's message", () => {
    const p = plan('rollback');
    const v = progressView(
      progress(p, {
        outcome: 'succeeded',
        message: 'Traffic verified on 2 of 2 domains.',
        traffic: [{ hostname: 'demo.example.com', deploymentId: 'dep_2', ok: true }],
      }),
      p,
    );
    expect(viewText(v)).toContain('Traffic verified on 2 of 2 domains.');
  });

  it("a failure the platform completed later shows the job's end in a neutral block (the update above is the warning)", () => {
    const p = plan('rollback');
    const v = progressView(progress(p, { outcome: 'failed', message: 'Timed out.' }), p, { at: NOW + HOUR });
    const end = blocksOf(v, 'text').find((b) => b.spans.some((s) => s.text.startsWith('When the job ended')));
    expect(end?.tone).toBe('neutral');
    expect(v.tone).toBe('warning');
  });
});

describe('deploymentsView', () => {
  const opts = (
    s: ReturnType<typeof snapshot>,
    over: Partial<Parameters<typeof deploymentsView>[1]> = {},
  ) => ({
    routing: routingOf(s),
    audit: [],
    now: NOW,
    ...over,
  });

  it('a stopped deployment says it cannot take traffic again', () => {
    const s = snapshot();
    const v = deploymentsView(s, opts(s));
    const row = blocksOf(v, 'rows')[0]?.rows.find((r) => r.card.id === 'dep_1');
    expect(row?.card.notes).toContain('stopped: cannot take traffic again');
  });

  it('only the current deployment says "live for", counted from when it last went live', () => {
    const s = snapshot({ rolledBack: true });
    const v = deploymentsView(s, opts(s));
    const rows = blocksOf(v, 'rows')[0]?.rows ?? [];
    // dep_2 was live from 5 h ago, then again since the rollback 3 h ago
    expect(rows.find((r) => r.card.id === 'dep_2')?.card.live).toBe('live for 3 hours');
    for (const r of rows.filter((x) => x.card.id !== 'dep_2')) expect(r.card.live, r.card.id).toBeUndefined();
  });

  it('a Promote row whose id does not fit a button says to type /promote', () => {
    const s = snapshot({ rolledBack: true });
    const long = `dep_${'x'.repeat(80)}`;
    const first = s.deployments[0] as Deployment;
    const withLong = {
      ...s,
      deployments: [{ ...first, id: long, createdAt: NOW - MIN }, ...s.deployments],
    };
    const v = deploymentsView(withLong, opts(withLong));
    const row = blocksOf(v, 'rows')[0]?.rows.find((r) => r.card.id === long);
    expect(row?.buttons).toEqual([]);
    expect(row?.buttonNote).toContain('type /promote with it instead');
  });

  it('recent activity and refused clicks are listed newest first whatever order they are read in', () => {
    const s = snapshot();
    const audit: AuditEntryLike[] = [1, 2, 3, 4, 5, 6].map((k) => ({
      at: NOW - (7 - k) * MIN,
      event: `event_${k}`,
    }));
    const refusals: AuditEntryLike[] = [
      { at: NOW - 5 * MIN, event: 'refused_old' },
      { at: NOW - MIN, event: 'refused_new' },
    ];
    const v = deploymentsView(s, opts(s, { audit, refusals }));
    const lists = blocksOf(v, 'list');
    const activity = lists.find((l) => l.label.startsWith('Recent activity'));
    expect(activity?.items.map((it) => it.spans[1]?.text)).toEqual([
      'event_6',
      'event_5',
      'event_4',
      'event_3',
      'event_2',
    ]);
    const refused = lists.find((l) => l.label.startsWith('Refused clicks'));
    expect(refused?.items.map((it) => it.spans[1]?.text)).toEqual(['refused_new', 'refused_old']);
  });
});

describe('noticeView', () => {
  it('a ready deployment that is not live is "ready", never "serving"', () => {
    const s = snapshot();
    const d = s.deployments.find((x) => x.id === 'dep_3') as Deployment;
    const v = noticeView(
      { type: 'deployment.ready', environment: 'production', deployment: d, live: false },
      { now: NOW },
    );
    expect(viewText(v)).toContain('is ready.');
    expect(viewText(v)).not.toContain('serving');
  });

  it('"ready but not live" says who rolled back even when the time is not known', () => {
    const s = snapshot({ rolledBack: true });
    const d = s.deployments.find((x) => x.id === 'dep_6') as Deployment;
    const v = noticeView(
      {
        type: 'ready.not_live',
        environment: 'production',
        deployment: d,
        rolledBackTo: { id: 'dep_2' },
        rolledBackBy: 'Alice',
      },
      { now: NOW },
    );
    expect(viewText(v)).toContain('Rolled back by Alice');
  });
});

void bob;
