/**
 * Hand-made environment snapshots and real plans (built with `buildPlan`) for the view tests: a
 * normal production with a standby previous deployment, the same environment rolled back with a
 * newer push waiting, and a 400-domain variant. One commit message is hostile on purpose.
 */
import { buildPlan, type Plan } from '../../src/domain/plan.js';
import type { Deployment, Domain, EnvironmentSnapshot, PlanAction } from '../../src/domain/types.js';
import type { Actor, Progress } from '../../src/progress.js';
import type { DeploymentCard, MessageView, Rich } from '../../src/views/types.js';

export const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);
const MIN = 60_000;
const HOUR = 60 * MIN;

/** A commit message that tries everything: Slack mentions/links, Discord mentions/markdown, HTML. */
export const HOSTILE =
  'fix: <!channel> @everyone <@U123> <#C42> & <https://evil.example|x> *b* _i_ ~s~ `t` ||s|| [l](https://e.x) # h <b>h</b> <t:0:R> \\ end';

export const alice: Actor = { surface: 'slack', userId: 'U1', displayName: 'Alice' };
export const bob: Actor = { surface: 'slack', userId: 'U2', displayName: 'Bob' };

function dep(
  id: string,
  status: Deployment['status'],
  createdAt: number,
  message: string,
  extra: Partial<Deployment> = {},
): Deployment {
  return {
    id,
    projectId: 'proj_1',
    environment: 'production',
    branch: 'main',
    commit: {
      sha: `${id.replace(/[^0-9a-f]/g, '')}abcdef0123456789abcdef0123456789`.slice(0, 40).padEnd(40, 'a'),
      message,
      author: 'Carol',
    },
    createdAt,
    ...(status === 'building' || status === 'failed' ? {} : { readyAt: createdAt + 2 * MIN }),
    status,
    ...extra,
  };
}

export interface SnapshotOptions {
  readonly rolledBack?: boolean;
  /** Number of live domains (default 2). */
  readonly liveDomains?: number;
  /** Extra deployments appended (for long lists). */
  readonly extraDeployments?: number;
  /** Deployments as Unkey gives them: sha and branch, no commit message or author (`shaOnly`). */
  readonly shaOnly?: boolean;
}

/**
 * Production of project "demo". Normal: dep_3 live since 37 min before NOW (hostile message), dep_2
 * standby (live before it), dep_1 stopped, dep_4 failed, dep_5 building.
 * Rolled back: dep_2 live again (rolled back by Alice 3 h ago), dep_3 and dep_6 ready but not live.
 */
export function snapshot(opts: SnapshotOptions = {}): EnvironmentSnapshot {
  if (opts.shaOnly === true) return shaOnly(snapshot({ ...opts, shaOnly: false }));
  const rolledBack = opts.rolledBack ?? false;
  const d1 = dep('dep_1', rolledBack ? 'standby' : 'stopped', NOW - 30 * HOUR, 'initial import');
  const d2 = dep('dep_2', rolledBack ? 'ready' : 'standby', NOW - 5 * HOUR, 'feat: checkout v2\n\nlong body');
  const d3 = dep('dep_3', 'ready', NOW - 40 * MIN, HOSTILE);
  const d4 = dep('dep_4', 'failed', NOW - 20 * MIN, 'wip: broken build');
  const d5 = dep('dep_5', 'building', NOW - 2 * MIN, 'fix: typo');
  const d6 = dep('dep_6', 'ready', NOW - 10 * MIN, 'fix: the real fix');
  const base = rolledBack ? [d6, d5, d4, d3, d2, d1] : [d5, d4, d3, d2, d1];
  const extra: Deployment[] = [];
  for (let k = 0; k < (opts.extraDeployments ?? 0); k++) {
    extra.push(dep(`dep_old${k}`, 'standby', NOW - 40 * HOUR - k * HOUR, `old change ${k}`));
  }
  const current = rolledBack ? 'dep_2' : 'dep_3';
  const domains: Domain[] = [];
  const n = opts.liveDomains ?? 2;
  for (let k = 0; k < n; k++) {
    domains.push({
      hostname: k === 0 ? 'demo.example.com' : `shop-${k}.example.com`,
      stickiness: 'live',
      environment: 'production',
      deploymentId: current,
    });
  }
  domains.push(
    {
      hostname: 'production.demo.switchyard.local',
      stickiness: 'environment',
      environment: 'production',
      deploymentId: current,
    },
    {
      hostname: 'main.demo.switchyard.local',
      stickiness: 'branch',
      branch: 'main',
      environment: 'production',
      deploymentId: current,
    },
    {
      hostname: 'dep-3.demo.switchyard.local',
      stickiness: 'deployment',
      environment: 'production',
      deploymentId: 'dep_3',
    },
  );
  return {
    project: { id: 'proj_1', name: 'demo' },
    environment: {
      slug: 'production',
      kind: 'production',
      projectId: 'proj_1',
      rolledBack,
      currentDeploymentId: current,
      ...(rolledBack ? { rolledBackAt: NOW - 3 * HOUR, rolledBackBy: 'Alice' } : {}),
    },
    deployments: [...base, ...extra],
    domains,
    liveHistory: rolledBack
      ? [
          { deploymentId: 'dep_1', since: NOW - 30 * HOUR, via: 'deploy' },
          { deploymentId: 'dep_2', since: NOW - 5 * HOUR, via: 'deploy' },
          { deploymentId: 'dep_3', since: NOW - 37 * MIN - 3 * HOUR, via: 'deploy' },
          { deploymentId: 'dep_2', since: NOW - 3 * HOUR, via: 'rollback', by: 'Alice' },
        ]
      : [
          { deploymentId: 'dep_1', since: NOW - 30 * HOUR, via: 'deploy' },
          { deploymentId: 'dep_2', since: NOW - 5 * HOUR, via: 'deploy' },
          { deploymentId: 'dep_3', since: NOW - 37 * MIN, via: 'deploy' },
        ],
    readAt: NOW,
  };
}

/**
 * `s` as Unkey gives it: a git deployment carries its sha (and branch) only, no commit message or
 * author (src/platform/unkey/mapping.ts).
 */
export function shaOnly(s: EnvironmentSnapshot): EnvironmentSnapshot {
  return {
    ...s,
    deployments: s.deployments.map((d) => ({ ...d, commit: { ...d.commit, message: '', author: '' } })),
  };
}

/** A real plan; fails the test loudly when the fixture does not plan. */
export function plan(action: PlanAction, opts: SnapshotOptions & { target?: string } = {}): Plan {
  const r = buildPlan(snapshot(opts), {
    action,
    now: NOW,
    ...(opts.target === undefined ? {} : { target: opts.target }),
  });
  if (!r.ok) throw new Error(`fixture did not plan: ${r.refusal.message}`);
  return r.value;
}

/** A progress snapshot for `p` with the given steps done and an optional outcome. */
export function progress(p: Plan, over: Partial<Progress> = {}): Progress {
  return {
    jobId: `job_${p.id}`,
    planId: p.id,
    action: p.action,
    environment: p.environment,
    targetId: p.target.id,
    fromId: p.current.id,
    requestedBy: alice,
    steps: [
      { step: 'queued', state: 'done', startedAt: NOW, endedAt: NOW + 120 },
      { step: 'validating', state: 'done', startedAt: NOW + 120, endedAt: NOW + 1320 },
      { step: 'reactivating', state: 'running', startedAt: NOW + 1320 },
    ],
    traffic: [],
    attempt: 1,
    updatedAt: NOW + 13_320,
    ...over,
  };
}

/** All raw text of a view (title, blocks, buttons), for content assertions. */
export function viewText(view: MessageView): string {
  const out: string[] = [view.title, view.summary];
  const spans = (r: Rich) => r.map((s) => s.text).join('');
  const card = (c: DeploymentCard) =>
    [
      c.id,
      c.shortSha,
      c.branch,
      c.message ?? '',
      c.author ?? '',
      c.status,
      c.live ?? '',
      c.age ?? '',
      ...c.notes,
    ].join(' | ');
  for (const b of view.blocks) {
    switch (b.type) {
      case 'text':
      case 'context':
        out.push(spans(b.spans));
        break;
      case 'deployment':
        out.push(`${b.label}: ${card(b.card)}`);
        break;
      case 'list':
        out.push(
          b.label,
          ...b.items.map((it) => spans(it.spans)),
          b.items.length === 0 ? (b.empty ?? '') : '',
        );
        break;
      case 'steps':
        out.push(...b.steps.map((s) => `${s.label} ${s.state} ${s.duration ?? ''} ${s.detail ?? ''}`));
        break;
      case 'rows':
        for (const r of b.rows) {
          out.push(`${card(r.card)} [${r.markers.join(',')}] ${r.buttons.map((x) => x.label).join(',')}`);
        }
        break;
      case 'usage':
        out.push(`/${b.command} ${b.args.map((a) => a.placeholder).join(' ')}`);
        break;
    }
  }
  out.push(...view.buttons.map((x) => `[${x.label}]`));
  return out.join('\n');
}
