import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/audit.js';
import { buildPlan, type Plan } from '../../src/domain/plan.js';
import type { Deployment, EnvironmentSnapshot, LiveEntry } from '../../src/domain/types.js';
import { planSchema } from '../../src/plan-store.js';
import type { Actor, Progress } from '../../src/progress.js';
import { formatTime, plainText } from '../../src/views/format.js';
import {
  type AlertContext,
  type AuditEntryLike,
  confirmationView,
  deploymentsView,
  noticeView,
  progressView,
  usageView,
} from '../../src/views/model.js';
import type { MessageView, ViewBlock } from '../../src/views/types.js';
import {
  cancelledEntries,
  history,
  openEntries,
  refusedClick,
  type SwitchSpec,
  switchEntries,
  withoutStage,
} from '../views/audit-entries.js';
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
  const alerts: Actor = { surface: 'system', userId: 'switchyard-alerts', displayName: 'Switchyard alerts' };

  it("a promote of another branch's deployment than the one the environment deploys says which, through the stored plan", () => {
    const HINT = 'dep_6 is from branch hotfix-checkout, not main.';
    const base = snapshot({ rolledBack: true });
    /** The promote of dep_6 as the plan store keeps it, on `base` with the given branches. */
    const promote = (branch: string, productionBranch: string | undefined) => {
      const snap: EnvironmentSnapshot = {
        ...base,
        environment: {
          ...base.environment,
          ...(productionBranch === undefined ? {} : { productionBranch }),
        },
        deployments: base.deployments.map((d) => (d.id === 'dep_6' ? { ...d, branch } : d)),
      };
      const r = buildPlan(snap, { action: 'promote', target: 'dep_6', now: NOW });
      if (!r.ok) throw new Error(r.refusal.message);
      return planSchema.parse(JSON.parse(JSON.stringify(r.value))) as Plan;
    };
    const off = promote('hotfix-checkout', 'main');
    expect(off.usualBranch).toBe('main');
    const v = confirmationView(off, { state: 'pending', now: NOW, requestedBy: alice });
    expect(blocksOf(v, 'context').map((b) => plainText(b.spans))).toContain(HINT);
    // Its own branch's deployment, or an environment whose usual branch the platform does not say
    // (Unkey): no hint.
    for (const p of [promote('main', 'main'), promote('hotfix-checkout', undefined)]) {
      expect(p.usualBranch).toBeUndefined();
      expect(viewText(confirmationView(p, { state: 'pending', now: NOW, requestedBy: alice }))).not.toContain(
        'is from branch',
      );
    }
  });

  it('a command that joined an alert suggestion names who asked for it too, not only the alert', () => {
    const p = plan('rollback');
    const v = confirmationView(p, { state: 'pending', now: NOW, requestedBy: alerts, alsoAskedBy: [alice] });
    expect(viewText(v)).toContain('Suggested by Switchyard alerts; asked for by Alice');
    const joined = confirmationView(p, {
      state: 'pending',
      now: NOW,
      requestedBy: alice,
      alsoAskedBy: [bob],
    });
    expect(viewText(joined)).toContain('Requested by Alice; also asked for by Bob');
  });

  it('a plan made while another switch of the environment runs says so at its top', () => {
    const p = plan('rollback');
    const runningSwitch = {
      action: 'rollback' as const,
      targetId: 'dep_cfe6961',
      requestedBy: alice,
      startedAt: NOW - 5_000,
    };
    const v = confirmationView(p, { state: 'pending', now: NOW, requestedBy: bob, runningSwitch });
    expect(plainText(v.blocks[0]?.type === 'text' ? v.blocks[0].spans : [])).toBe(
      'A rollback to dep_cfe6961 is running now (started 11:59:55 UTC, by Alice): this plan waits for it and will be out of date if it changes what is live on production.',
    );
    const queued = confirmationView(p, {
      state: 'pending',
      now: NOW,
      requestedBy: bob,
      runningSwitch: { action: 'promote', targetId: 'dep_9', requestedBy: alice },
    });
    expect(viewText(queued)).toContain('A promote to dep_9 is queued now (by Alice): this plan waits for it');
    // Once the plan is closed the warning no longer applies.
    expect(viewText(confirmationView(p, { state: 'cancelled', now: NOW, runningSwitch }))).not.toContain(
      'dep_cfe6961',
    );
  });

  it('a dismissed suggestion says alerts will not suggest it again, and that /rollback still offers it', () => {
    const p = plan('rollback');
    const v = confirmationView(p, {
      state: 'cancelled',
      now: NOW,
      requestedBy: alerts,
      cancelledBy: alice,
      dismissed: true,
    });
    expect(v.title).toBe(`Dismissed: roll back production to ${p.target.id}`);
    expect(viewText(v)).toContain(
      'Dismissed by Alice: alerts of this incident will not suggest this rollback again; /rollback production still offers it. Nothing changed.',
    );
  });

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

  it('a cancelled, stale or expired plan says the rolled-back state it read was so when it was made, not that it holds now', () => {
    // model.ts confirmationView(): the rolled-back banner, the older/newer line and the promote line
    // read as current on a plan overtaken since (automatic deploys resumed, traffic moved); a
    // cancelled plan can no longer run either.
    const promote = plan('promote', { rolledBack: true });
    const rollback = plan('rollback', { rolledBack: true, target: 'dep_6' });
    const resume = plan('promote', { rolledBack: true, target: 'dep_2' });
    for (const state of ['cancelled', 'stale', 'expired'] as const) {
      const staleReason = 'production changed since this plan was made: dep_2 was promoted since.';
      const p = viewText(confirmationView(promote, { state, now: NOW, staleReason }));
      expect(p).toContain('When this plan was made, production was rolled back (to dep_2).');
      expect(p).not.toContain('is rolled back');
      expect(p).not.toContain('get no domains until a promote');
      expect(p).not.toContain('restores automatic domain assignment');
      const r = viewText(confirmationView(rollback, { state, now: NOW, staleReason }));
      expect(r).toContain('When this plan was made, production was already rolled back (to dep_2).');
      expect(r).not.toContain('is already rolled back');
      expect(r).not.toContain('Rolling back again keeps automatic deploys off');
      expect(r).toContain(
        'dep_6 was pushed after dep_2, the deployment live when this plan was made: this rollback would have moved production to a newer deployment.',
      );
      expect(r).not.toContain('live now');
      const older = viewText(confirmationView(plan('promote', { target: 'dep_2' }), { state, now: NOW }));
      expect(older).toContain(
        'dep_2 was pushed before dep_3, the deployment live when this plan was made: this promote would have moved production to an older deployment.',
      );
      const s = viewText(confirmationView(resume, { state, now: NOW, staleReason }));
      expect(s).toContain('No domain would move: dep_2 served production when this plan was made.');
      expect(s).not.toContain('already serves');
    }
    // An open plan still says how things are.
    const open = viewText(confirmationView(promote, { state: 'pending', now: NOW }));
    expect(open).toContain('production is rolled back (to dep_2): new pushes create deployments');
  });
});

describe('alert suggestion', () => {
  const base: AlertContext = {
    source: 'grafana',
    title: 'High 5xx on checkout',
    startedAt: NOW - 30 * MIN,
    resolved: false,
  };

  it('a deployment that went live within a second of the alert starting says so, not "0 seconds before" or "after"', () => {
    // model.ts alertBlocks(): a push from the same second read "went live 0 seconds before".
    for (const at of [base.startedAt, base.startedAt - 999, base.startedAt + 400]) {
      const v = confirmationView(plan('rollback'), {
        state: 'pending',
        now: NOW,
        alert: { ...base, wentLive: { deploymentId: 'dep_3', at } },
      });
      expect(viewText(v)).toContain('dep_3 went live within a second of the start of this alert.');
      expect(viewText(v)).not.toContain('seconds');
    }
    // A second or more apart, the order and the time are said.
    const before = confirmationView(plan('rollback'), {
      state: 'pending',
      now: NOW,
      alert: { ...base, wentLive: { deploymentId: 'dep_3', at: base.startedAt - 1_000 } },
    });
    expect(viewText(before)).toContain('dep_3 went live 1 second before this alert started.');
    const after = confirmationView(plan('rollback'), {
      state: 'pending',
      now: NOW,
      alert: { ...base, wentLive: { deploymentId: 'dep_3', at: base.startedAt + 2_000 } },
    });
    expect(viewText(after)).toContain('dep_3 went live 2 seconds after this alert started.');
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

  it('alerts only estimated are counted "about", in the list and in a resolution, never as an exact number', () => {
    const v = confirmationView(plan('rollback'), {
      state: 'pending',
      now: NOW,
      alert: { ...base, resolved: true, othersMore: 2, othersMoreFiring: 0, othersUntracked: 40 },
    });
    expect(blocksOf(v, 'list').find((l) => l.label.includes('more alert'))?.label).toBe(
      'about 42 more alerts on this deployment (0 still firing, and about 40 whose state is not tracked)',
    );
    expect(viewText(v)).toContain('…and about 42 more, not listed');
    expect(viewText(v)).toContain('All of about 43 alerts resolved');
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

describe('alert suggestion of missing data', () => {
  const base: AlertContext = {
    source: 'datadog',
    title: 'API heartbeat',
    startedAt: NOW - 30 * MIN,
    resolved: false,
  };
  const lines = (v: MessageView) =>
    v.blocks.flatMap((b) =>
      b.type === 'text'
        ? [plainText(b.spans)]
        : b.type === 'list'
          ? b.items.map((it) => plainText(it.spans))
          : [],
    );

  it('an alert whose query returned nothing says so on its line, in the list of more alerts and in the notification', () => {
    const v = confirmationView(plan('rollback'), {
      state: 'pending',
      now: NOW,
      alert: {
        ...base,
        missingData: true,
        wentLive: { deploymentId: 'dep_3', at: base.startedAt - 7 * MIN },
        others: [
          {
            source: 'grafana',
            title: 'DatasourceNoData: Checkout',
            startedAt: NOW - 29 * MIN,
            resolved: false,
            missingData: true,
          },
          { source: 'grafana', title: 'Latency', startedAt: NOW - 28 * MIN, resolved: false },
        ],
      },
    });
    expect(lines(v)).toEqual(
      expect.arrayContaining([
        `Alert from datadog: API heartbeat (no data: its query returned nothing; the service may have stopped reporting) — started ${formatTime(base.startedAt)}. dep_3 went live 7 minutes before this alert started.`,
        `grafana: DatasourceNoData: Checkout (no data) — started ${formatTime(NOW - 29 * MIN)}`,
        `grafana: Latency — started ${formatTime(NOW - 28 * MIN)}`,
      ]),
    );
    expect(v.summary).toMatch(/^Alert from datadog: API heartbeat \(no data\)\. Roll back /);
    // An alert with data reads as before.
    const plain = confirmationView(plan('rollback'), { state: 'pending', now: NOW, alert: base });
    expect(lines(plain)[0]).toMatch(/^Alert from datadog: API heartbeat — started /);
    expect(viewText(plain)).not.toContain('no data');
  });
});

describe('progressView', () => {
  it("a succeeded switch shows the worker's note, not its message (the record, which repeats the title and the domains)", () => {
    const p = plan('rollback');
    const v = progressView(
      progress(p, {
        outcome: 'succeeded',
        message: 'Rolled back production to dep_2: its 1 domain answers from it (demo.example.com → dep_2).',
        note: 'Its 1 domain answers from it. Automatic deploys were resumed since.',
        traffic: [{ hostname: 'demo.example.com', deploymentId: 'dep_2', ok: true }],
      }),
      p,
    );
    expect(viewText(v)).toContain('Its 1 domain answers from it. Automatic deploys were resumed since.');
    expect(viewText(v)).not.toContain('answers from it (');
    // The note says what became of automatic deploys, as the worker found them: no general sentence
    // claiming production is rolled back beside it.
    expect(viewText(v)).not.toContain('is now rolled back');
  });

  it("a failure the platform completed later shows the job's end in a neutral block (the update above is the warning)", () => {
    const p = plan('rollback');
    const v = progressView(progress(p, { outcome: 'failed', message: 'Timed out.' }), p, { at: NOW + HOUR });
    const end = blocksOf(v, 'text').find((b) => b.spans.some((s) => s.text.startsWith('When the job ended')));
    expect(end?.tone).toBe('neutral');
    expect(v.tone).toBe('warning');
  });

  // A message is edited only when the job reports: an elapsed time froze at the last report ("2 ms"
  // for a 30 s reactivation, "13 ms" for a queue wait of 14 s), reading as stuck or done.
  it('a running step says when it started, the same at every report; a done step its duration', () => {
    const p = plan('rollback');
    const steps: Progress['steps'] = [
      { step: 'queued', state: 'done', startedAt: NOW, endedAt: NOW + 13 },
      { step: 'validating', state: 'done', startedAt: NOW + 13, endedAt: NOW + 5_013 },
      { step: 'reactivating', state: 'running', startedAt: NOW + 5_013, detail: 'dep_2 is in standby.' },
    ];
    const at = (updatedAt: number) =>
      blocksOf(progressView(progress(p, { steps, updatedAt }), p), 'steps')[0]?.steps.map(
        (s) => `${s.step}:${s.duration ?? ''}`,
      );
    const first = at(NOW + 5_015);
    expect(first).toEqual([
      'queued:13 ms',
      'validating:5.0 s',
      'reactivating:since 12:00:05 UTC',
      'switching:',
      'verifying:',
      'done:',
    ]);
    expect(at(NOW + 35_000)).toEqual(first);
  });

  it('a queued job waiting for another switch says since when it waits', () => {
    const p = plan('rollback');
    const waiting = progress(p, {
      steps: [
        {
          step: 'queued',
          state: 'running',
          startedAt: NOW + 1_500,
          detail: 'Waiting: another production switch is running (job sw_a3cf).',
        },
      ],
      updatedAt: NOW + 1_513,
    });
    const [queued] = blocksOf(progressView(waiting, p), 'steps')[0]?.steps ?? [];
    expect(queued).toMatchObject({ state: 'running', duration: 'since 12:00:01 UTC' });
  });

  it('a running step that started on another UTC day than the report names its date', () => {
    const p = plan('rollback');
    const start = NOW - 12 * HOUR - 10_000; // 2026-11-28 23:59:50 UTC
    const v = progressView(
      progress(p, {
        steps: [{ step: 'queued', state: 'running', startedAt: start }],
        updatedAt: NOW - 12 * HOUR + 20_000,
      }),
      p,
    );
    expect(blocksOf(v, 'steps')[0]?.steps[0]?.duration).toBe('since 2026-11-28 23:59:50 UTC');
  });

  it('a step left running in a job that ended is measured to the end, not shown as still going', () => {
    const p = plan('rollback');
    const v = progressView(
      progress(p, {
        outcome: 'failed',
        message: 'Timed out.',
        steps: [{ step: 'queued', state: 'running', startedAt: NOW }],
        updatedAt: NOW + 12_000,
      }),
      p,
    );
    expect(blocksOf(v, 'steps')[0]?.steps[0]?.duration).toBe('12 s');
  });

  it('a successful final message says each thing once, and when it ended', () => {
    const p = plan('rollback');
    const v = progressView(
      progress(p, {
        outcome: 'succeeded',
        // As the worker writes them (jobs/switch-processor.ts successMessage).
        message:
          'Rolled back production to dep_2: both domains answer from it (demo.example.com → dep_2, shop-1.example.com → dep_2). Automatic deploys are paused until a deployment is promoted.',
        note: 'Both domains answer from it. Automatic deploys are paused until a deployment is promoted.',
        traffic: [
          { hostname: 'demo.example.com', deploymentId: 'dep_2', ok: true },
          { hostname: 'shop-1.example.com', deploymentId: 'dep_2', ok: true },
        ],
        updatedAt: NOW + 61_000,
      }),
      p,
    );
    const body = v.blocks.map((b) => JSON.stringify(b)).join('\n');
    const count = (text: string) => body.split(text).length - 1;
    expect(count('demo.example.com')).toBe(1);
    expect(count('shop-1.example.com')).toBe(1);
    expect(count('paused') + count('rolled back')).toBe(1);
    expect(viewText(v)).toContain('Traffic is on dep_2 as of 2026-11-29 12:01 UTC, when the job ended.');
    expect(viewText(v)).toContain('Both domains answer from it.');
  });

  it('a resume of automatic deploys says what its platform step does, and that no domain moved once', () => {
    const p = plan('promote', { rolledBack: true, target: 'dep_2' });
    const steps: Progress['steps'] = [
      { step: 'queued', state: 'done', startedAt: NOW, endedAt: NOW + 10 },
      { step: 'validating', state: 'done', startedAt: NOW + 10, endedAt: NOW + 11 },
      { step: 'switching', state: 'done', startedAt: NOW + 11, endedAt: NOW + 514 },
      {
        step: 'verifying',
        state: 'done',
        startedAt: NOW + 514,
        endedAt: NOW + 515,
        detail: 'No domain moves: nothing to verify.',
      },
      { step: 'done', state: 'done', startedAt: NOW + 515, endedAt: NOW + 515 },
    ];
    const note =
      'dep_2 stays live and no domain moved. Automatic deploys resume with the next successful deployment.';
    for (const v of [
      progressView(progress(p, { steps, outcome: 'succeeded', note }), p),
      // As reporters render it, without the plan.
      progressView(progress(p, { steps, outcome: 'succeeded', note })),
      progressView(progress(p, { steps: steps.slice(0, 2), updatedAt: NOW + 11 })),
    ]) {
      const labels = blocksOf(v, 'steps')[0]?.steps.map((s) => s.label);
      expect(labels).toContain('Resuming automatic deploys');
      expect(labels).not.toContain('Switching domains');
    }
    const done = progressView(progress(p, { steps, outcome: 'succeeded', note }), p);
    expect(viewText(done).match(/no domain moved/gi)).toHaveLength(1);
    expect(blocksOf(done, 'list')).toHaveLength(0);
    // A rollback keeps "Switching domains".
    const rb = plan('rollback');
    expect(blocksOf(progressView(progress(rb), rb), 'steps')[0]?.steps.map((s) => s.label)).toContain(
      'Switching domains',
    );
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

  const carol: Actor = { surface: 'slack', userId: 'U0CAROL', displayName: 'carol' };
  /** The lines of the view's list labelled `label…`, as plain text. */
  const lines = (v: MessageView, label: string) =>
    blocksOf(v, 'list')
      .find((l) => l.label.startsWith(label))
      ?.items.map((it) => plainText(it.spans));
  /** The history part of a view of production (dep_3 live) with `liveHistory` and `audit`. */
  const viewOf = (
    liveHistory: EnvironmentSnapshot['liveHistory'],
    audit: readonly AuditEntryLike[],
    over: Partial<Parameters<typeof deploymentsView>[1]> = {},
  ) => {
    const s = { ...snapshot(), liveHistory };
    return deploymentsView(s, opts(s, { audit, ...over }));
  };
  const rollback = (at: number, planId: string, more: Partial<SwitchSpec> = {}) =>
    switchEntries({
      at,
      planId,
      targetId: 'dep_2',
      fromId: 'dep_3',
      asked: alice,
      confirmed: alice,
      ...more,
    });
  const movedTo = (since: number, by?: string): LiveEntry => ({
    deploymentId: 'dep_2',
    since,
    via: 'rollback',
    ...(by === undefined ? {} : { by }),
  });
  const live: LiveEntry = { deploymentId: 'dep_3', since: NOW - 5 * HOUR, via: 'deploy' };

  it('refused clicks are listed newest first whatever order they are read in', () => {
    const s = snapshot();
    const refusals = [
      refusedClick(NOW - 5 * MIN, alice, 'forbidden', 'old'),
      refusedClick(NOW - MIN, bob, 'forbidden', 'new'),
    ];
    const v = deploymentsView(s, opts(s, { refusals }));
    expect(lines(v, 'Refused clicks')?.map((l) => l.slice(0, 20))).toEqual([
      formatTime(NOW - MIN),
      formatTime(NOW - 5 * MIN),
    ]);
  });

  it('groups entries in the order they were written, not by their times: a worker clock behind the bot’s still makes one line', () => {
    // The worker's clock is 10 minutes behind: its started and succeeded read as written before the
    // request and the approval that came first.
    const entries = rollback(NOW - 20 * MIN, 'p_1').map((e) =>
      e.event === 'started' || e.event === 'succeeded' ? { ...e, at: e.at - 10 * MIN } : e,
    );
    const v = viewOf([], entries);
    expect(lines(v, 'Switches')).toEqual([
      `${formatTime(NOW - 20 * MIN + 2 * MIN + 1000 - 10 * MIN)} · rollback dep_3 → dep_2 · succeeded · by Alice`,
    ]);
    expect(lines(v, 'Other requests')).toBeUndefined();
  });

  it('the same switch asked for again (one plan id) is a line of its own per request', () => {
    const v = viewOf(
      [],
      history(
        rollback(NOW - 60 * MIN, 'p_same', { end: 'failed', code: 'verify_timeout' }),
        // Asked for in words of another version: the first request's end tells the two apart.
        rollback(NOW - 30 * MIN, 'p_same').map((e) =>
          e.event === 'requested' ? { ...withoutStage(e), message: 'rollback requested' } : e,
        ),
        // Asked for again with no end of the last request read (its record was replaced): two requests.
        openEntries({ at: NOW - 20 * MIN, planId: 'p_open', targetId: 'dep_1', fromId: 'dep_3', asked: bob }),
        openEntries({
          at: NOW - 10 * MIN,
          planId: 'p_open',
          targetId: 'dep_1',
          fromId: 'dep_3',
          asked: alice,
        }),
      ),
    );
    expect(lines(v, 'Switches')).toEqual([
      `${formatTime(NOW - 28 * MIN)} · rollback dep_3 → dep_2 · succeeded · by Alice`,
      `${formatTime(NOW - 58 * MIN)} · rollback dep_3 → dep_2 · failed (verify_timeout) · by Alice`,
    ]);
    expect(lines(v, 'Other requests')).toEqual([
      `${formatTime(NOW - 10 * MIN)} · rollback dep_3 → dep_1 · waiting for confirmation · asked by Alice`,
      `${formatTime(NOW - 20 * MIN)} · rollback dep_3 → dep_1 · replaced by a later request for the same switch · asked by Bob`,
    ]);
  });

  it("tells requests, confirms and alerts apart by the entries' stage, whatever their words; older entries by Flow's words", () => {
    const entries = history(
      rollback(NOW - 60 * MIN, 'p_again', { end: 'failed', code: 'verify_timeout' }),
      switchEntries({
        at: NOW - 30 * MIN,
        planId: 'p_again',
        targetId: 'dep_2',
        fromId: 'dep_3',
        alert: { title: 'Errors up on checkout', source: 'grafana' },
        confirmed: alice,
        approved: bob,
      }),
    );
    const expected = [
      `${formatTime(NOW - 30 * MIN + 3 * MIN + 1000)} · rollback dep_3 → dep_2 · succeeded · by Alice, approved by Bob · alert "Errors up on checkout"`,
      `${formatTime(NOW - 58 * MIN)} · rollback dep_3 → dep_2 · failed (verify_timeout) · by Alice`,
    ];
    expect(lines(viewOf([], entries), 'Switches')).toEqual(expected);
    // Words no version wrote: the stage alone tells the second request from a confirm of the first.
    const reworded = entries.map((e) => (e.event === 'requested' ? { ...e, message: 'in other words' } : e));
    expect(lines(viewOf([], reworded), 'Switches')).toEqual(expected);
    // As versions before `stage` wrote them: Flow's words.
    expect(lines(viewOf([], entries.map(withoutStage)), 'Switches')).toEqual(expected);
  });

  it("says each switch's outcome as its entries record it", () => {
    const v = viewOf(
      [],
      history(
        rollback(NOW - 50 * MIN, 'p_stale', { end: 'refused', code: 'plan_stale' }),
        rollback(NOW - 40 * MIN, 'p_running', { end: 'running' }),
        rollback(NOW - 30 * MIN, 'p_queued', { end: 'queued', approved: bob }),
        switchEntries({
          at: NOW - 20 * MIN,
          action: 'promote',
          planId: 'p_resume',
          targetId: 'dep_3',
          fromId: 'dep_3',
          asked: bob,
          confirmed: bob,
        }),
      ),
    );
    expect(lines(v, 'Switches')).toEqual([
      `${formatTime(NOW - 18 * MIN)} · resume automatic deploys on dep_3 · succeeded · by Bob`,
      `${formatTime(NOW - 28 * MIN)} · rollback dep_3 → dep_2 · queued · by Alice, approved by Bob`,
      `${formatTime(NOW - 39 * MIN)} · rollback dep_3 → dep_2 · running · by Alice`,
      `${formatTime(NOW - 48 * MIN)} · rollback dep_3 → dep_2 · not run: plan out of date (plan_stale) · by Alice`,
    ]);
  });

  it('a request that did not switch says what became of it, naming only who its entries name', () => {
    const base = { targetId: 'dep_2', fromId: 'dep_3' } as const;
    const approved = (at: number, planId: string) => rollback(at, planId, { end: 'queued' });
    const failedQueueing = (at: number, planId: string): AuditEntry => ({
      at,
      environment: 'production',
      action: 'rollback',
      event: 'failed',
      actor: alice,
      planId,
      jobId: `sw_${planId}`,
      ...base,
      code: 'enqueue_failed',
      message: 'the rollback to dep_2 confirmed by Alice could not be queued (redis went away); …',
    });
    const expiry = (at: number, planId: string): AuditEntry => ({
      at,
      environment: 'production',
      action: 'rollback',
      event: 'cancelled',
      planId,
      ...base,
      code: 'expired',
      message: 'expired at …',
    });
    const v = viewOf(
      [],
      history(
        [
          ...approved(NOW - 90 * MIN, 'p_lapsed'),
          failedQueueing(NOW - 88 * MIN, 'p_lapsed'),
          expiry(NOW - 30 * MIN, 'p_lapsed'),
        ],
        [...approved(NOW - 80 * MIN, 'p_abandoned'), expiry(NOW - 20 * MIN, 'p_abandoned')],
        [...approved(NOW - 15 * MIN, 'p_retry'), failedQueueing(NOW - 13.5 * MIN, 'p_retry')],
        cancelledEntries({
          at: NOW - 12 * MIN,
          planId: 'p_dismissed',
          ...base,
          alert: { title: 'Errors', source: 'grafana' },
          by: bob,
          dismissed: true,
        }),
        [
          ...openEntries({ at: NOW - 10 * MIN, planId: 'p_stale', ...base, asked: bob }),
          {
            ...expiry(NOW - 8 * MIN, 'p_stale'),
            event: 'refused',
            actor: alice,
            code: 'plan_stale',
            message: 'Traffic moved…',
          },
        ],
        // Out of date for another reason than traffic moving: said by its headline.
        [
          ...openEntries({ at: NOW - 9 * MIN, planId: 'p_stopped', ...base, asked: bob }),
          {
            ...expiry(NOW - 7 * MIN, 'p_stopped'),
            event: 'refused',
            actor: alice,
            code: 'target_stopped',
            message: 'dep_2 is stopped…',
          },
        ],
        // A dismiss of one message of a plan leaves the plan open.
        [
          ...openEntries({ at: NOW - 6 * MIN, planId: 'p_copy', ...base, asked: bob }),
          {
            ...expiry(NOW - 5 * MIN, 'p_copy'),
            actor: alice,
            code: 'copy_dismissed',
            message: 'Alice dismissed one message…',
          },
        ],
        // An entry of no request this version knows.
        [
          {
            at: NOW - 4 * MIN,
            environment: 'production',
            action: 'rollback',
            event: 'failed',
            actor: carol,
            jobId: 'sw_x',
          },
        ],
      ),
      { otherLimit: 10 },
    );
    expect(lines(v, 'Switches')).toEqual([]);
    expect(lines(v, 'Other requests')).toEqual([
      `${formatTime(NOW - 4 * MIN)} · failed by carol`,
      `${formatTime(NOW - 5 * MIN)} · rollback dep_3 → dep_2 · waiting for confirmation · asked by Bob`,
      `${formatTime(NOW - 7 * MIN)} · rollback dep_3 → dep_2 · out of date when Alice clicked: target stopped (target_stopped), nothing changed · asked by Bob`,
      `${formatTime(NOW - 8 * MIN)} · rollback dep_3 → dep_2 · out of date when Alice clicked, nothing changed · asked by Bob`,
      `${formatTime(NOW - 10 * MIN)} · rollback dep_3 → dep_2 · dismissed by Bob · alert "Errors"`,
      `${formatTime(NOW - 14 * MIN)} · rollback dep_3 → dep_2 · not queued (enqueue_failed): open again · asked by Alice`,
      `${formatTime(NOW - 20 * MIN)} · rollback dep_3 → dep_2 · expired before it was queued · asked and confirmed by Alice`,
      `${formatTime(NOW - 30 * MIN)} · rollback dep_3 → dep_2 · expired after its queueing failed · asked by Alice`,
    ]);
  });

  it("a move is Switchyard's when one of its switches made it, within the clocks' minute; else outside Switchyard", () => {
    const started = NOW - 30 * MIN + 1000;
    // The platform's clock 40 s behind the worker's: its move reads as made before the switch started.
    const own = viewOf([live, movedTo(started - 40_000, 'Alice')], rollback(NOW - 31 * MIN, 'p_1'));
    expect(lines(own, 'Switches')).toEqual([
      `${formatTime(NOW - 29 * MIN)} · rollback dep_3 → dep_2 · succeeded · by Alice`,
      `${formatTime(live.since)} · dep_3 went live · automatic deploy by the platform`,
    ]);
    // Two minutes before the switch started: someone else's move, and the platform does not say whose.
    const before = viewOf([live, movedTo(started - 2 * MIN)], rollback(NOW - 31 * MIN, 'p_1'));
    expect(lines(before, 'Switches')?.[1]).toBe(
      `${formatTime(started - 2 * MIN)} · rollback dep_3 → dep_2 · outside Switchyard (the platform does not say by whom)`,
    );
  });

  it('a switch explains one move at most, and never one it did not ask the platform for', () => {
    const twice = viewOf(
      [
        live,
        movedTo(NOW - 29 * MIN, 'Alice'),
        { ...live, since: NOW - 25 * MIN, via: 'promote', by: 'bob' },
        movedTo(NOW - 20 * MIN, 'eve'),
      ],
      rollback(NOW - 31 * MIN, 'p_1'),
    );
    expect(lines(twice, 'Switches')?.slice(0, 3)).toEqual([
      `${formatTime(NOW - 20 * MIN)} · rollback dep_3 → dep_2 · outside Switchyard, by eve (as the platform records it)`,
      `${formatTime(NOW - 25 * MIN)} · promote dep_2 → dep_3 · outside Switchyard, by bob (as the platform records it)`,
      `${formatTime(NOW - 29 * MIN)} · rollback dep_3 → dep_2 · succeeded · by Alice`,
    ]);
    // Refused by the worker (out of date when its turn came): it asked the platform nothing.
    const refused = viewOf(
      [live, movedTo(NOW - 25 * MIN, 'eve')],
      rollback(NOW - 31 * MIN, 'p_1', { end: 'refused', code: 'plan_stale' }),
    );
    expect(lines(refused, 'Switches')?.[0]).toBe(
      `${formatTime(NOW - 25 * MIN)} · rollback dep_3 → dep_2 · outside Switchyard, by eve (as the platform records it)`,
    );
    // Failed before the move: the platform (or someone) completed it after Switchyard said it failed.
    const late = viewOf(
      [live, movedTo(NOW - 10 * MIN, 'Alice')],
      rollback(NOW - 31 * MIN, 'p_1', { end: 'failed', code: 'platform_timeout' }),
    );
    expect(lines(late, 'Switches')?.slice(0, 2)).toEqual([
      `${formatTime(NOW - 10 * MIN)} · rollback dep_3 → dep_2 · on the platform after Switchyard's rollback to it failed, by Alice (as the platform records it)`,
      `${formatTime(NOW - 29 * MIN)} · rollback dep_3 → dep_2 · failed (platform_timeout) · by Alice`,
    ]);
  });

  it('judges moves only as far back as the history read reaches', () => {
    const older: LiveEntry = { ...movedTo(NOW - 3 * HOUR, 'eve') };
    const audit = rollback(NOW - 31 * MIN, 'p_1');
    // The whole history read: nothing of Switchyard's that long ago, so it was outside Switchyard.
    expect(lines(viewOf([live, older], audit), 'Switches')).toContain(
      `${formatTime(NOW - 3 * HOUR)} · rollback dep_3 → dep_2 · outside Switchyard, by eve (as the platform records it)`,
    );
    // Only the newest entries read: whose it was cannot be told, so it is not listed.
    const cut = viewOf([live, older], audit, { auditTruncated: true });
    expect(lines(cut, 'Switches')).toEqual([
      `${formatTime(NOW - 29 * MIN)} · rollback dep_3 → dep_2 · succeeded · by Alice`,
    ]);
    expect(
      viewOf([], [], { auditTruncated: true }).blocks.find(
        (b) => b.type === 'list' && b.label === 'Switches',
      ),
    ).toMatchObject({
      items: [],
      empty: 'No switch among the newest history entries read.',
    });
  });

  it("on Redis's clock, when the audit says when Redis wrote its entries, a worker's clock does not move its switch", () => {
    // Redis's clock 5 s ahead of this process's (which the platform's moves are on); the worker's
    // entries are stamped with its own clock, `workerAheadMs` off.
    const redisAheadMs = 5_000;
    const onRedis = { redisAheadMs };
    const written = (entries: readonly AuditEntry[], workerAheadMs: number) =>
      entries.map((e) => ({
        ...e,
        writtenAt: e.at + redisAheadMs,
        ...(e.event === 'started' || e.event === 'succeeded' ? { at: e.at + workerAheadMs } : {}),
      }));
    const started = NOW - 30 * MIN + 1000;
    // The platform moved traffic 20 s after the worker started: a worker 90 s ahead read as starting
    // after it, one 2 h behind as starting before the hour that explains it.
    for (const workerAheadMs of [90_000, -2 * HOUR]) {
      const v = viewOf(
        [live, movedTo(started + 20_000, 'Alice')],
        written(rollback(NOW - 31 * MIN, 'p_1'), workerAheadMs),
        onRedis,
      );
      expect(lines(v, 'Switches')?.[0]).toBe(
        `${formatTime(NOW - 29 * MIN + 1000 + workerAheadMs)} · rollback dep_3 → dep_2 · succeeded · by Alice`,
      );
      expect(lines(v, 'Switches')?.join('\n')).not.toContain('outside Switchyard');
    }
    // A move 9 minutes before the switch started was someone else's, though a worker 10 minutes behind
    // stamped its start before it.
    const before = viewOf(
      [live, movedTo(started - 9 * MIN, 'eve')],
      written(rollback(NOW - 31 * MIN, 'p_1'), -10 * MIN),
      onRedis,
    );
    expect(lines(before, 'Switches')).toContain(
      `${formatTime(started - 9 * MIN)} · rollback dep_3 → dep_2 · outside Switchyard, by eve (as the platform records it)`,
    );
  });

  it("a read cut short between a switch's start and its end still counts the move it made as its own", () => {
    const audit = rollback(NOW - 31 * MIN, 'p_1');
    const started = NOW - 30 * MIN + 1000;
    // The platform moved traffic 20 s after the worker started; the worker's end, 40 s later, is the
    // oldest entry read: the move is within the span the read covers, its start is not.
    const v = viewOf([live, movedTo(started + 20_000, 'Alice')], audit.slice(0, 1), { auditTruncated: true });
    expect(lines(v, 'Switches')).toEqual([
      `${formatTime(NOW - 29 * MIN + 1000)} · rollback dep_3 → dep_2 · succeeded · by Alice`,
    ]);
  });

  it('consecutive automatic deploys share one line naming the first and the last', () => {
    const deploys: LiveEntry[] = ['dep_a', 'dep_b', 'dep_c', 'dep_d', 'dep_e'].map((id, k) => ({
      deploymentId: id,
      since: NOW - (10 - k) * HOUR,
      via: 'deploy',
    }));
    const back = { ...movedTo(NOW - 8.5 * HOUR), deploymentId: 'dep_a' };
    const v = viewOf([...deploys.slice(0, 2), back, ...deploys.slice(2)], []);
    expect(lines(v, 'Switches')).toEqual([
      `${formatTime(NOW - 8 * HOUR)} to ${formatTime(NOW - 6 * HOUR)} · dep_c → dep_d → dep_e went live in turn · 3 automatic deploys by the platform`,
      `${formatTime(NOW - 8.5 * HOUR)} · rollback dep_b → dep_a · outside Switchyard (the platform does not say by whom)`,
      `${formatTime(NOW - 10 * HOUR)} to ${formatTime(NOW - 9 * HOUR)} · dep_a → dep_b went live in turn · 2 automatic deploys by the platform`,
    ]);
    expect(lines(viewOf(deploys, []), 'Switches')).toEqual([
      `${formatTime(NOW - 10 * HOUR)} to ${formatTime(NOW - 6 * HOUR)} · dep_a → … 3 more … → dep_e went live in turn · 5 automatic deploys by the platform`,
    ]);
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

describe('what the platform does not say is left out (Unkey: a sha and a branch, no message or author)', () => {
  const s = snapshot({ shaOnly: true });
  const dep3 = s.deployments.find((x) => x.id === 'dep_3') as Deployment;
  const ready = (deployment: Deployment) =>
    plainText(
      noticeView(
        { type: 'deployment.ready', environment: 'production', deployment, live: false },
        { now: NOW },
      ).blocks.flatMap((b) => (b.type === 'text' ? b.spans : [])),
    );

  it('a notice names the deployment by sha and branch, with no filler and no dangling separator', () => {
    expect(ready(dep3)).toContain('dep_3 (de3abcd main)');
    expect(ready(dep3)).not.toMatch(/no commit message| — \)|: \)/);
    // Either one known: only that one.
    expect(ready({ ...dep3, commit: { ...dep3.commit, message: 'fix: typo' } })).toContain(
      'dep_3 (de3abcd main: fix: typo)',
    );
    expect(ready({ ...dep3, commit: { ...dep3.commit, author: 'Carol' } })).toContain(
      'dep_3 (de3abcd main — Carol)',
    );
  });

  it("a card has no message or author, and a usage line ends at the deployment's status", () => {
    const v = deploymentsView(s, { routing: routingOf(s), audit: [], now: NOW });
    for (const row of blocksOf(v, 'rows')[0]?.rows ?? []) {
      expect(row.card, row.card.id).not.toHaveProperty('message');
      expect(row.card, row.card.id).not.toHaveProperty('author');
    }
    const usage = usageView('rollback', ['production'], s.deployments);
    const lines = blocksOf(usage, 'list')[0]?.items.map((it) => plainText(it.spans)) ?? [];
    expect(lines).toContain('dep_3 de3abcd main · ready');
  });
});
