/**
 * Every plan rule, pure: target resolution, the platform's checks in order, default targets, affected
 * domains, plan ids and freshness.
 */
import { describe, expect, it } from 'vitest';
import {
  affectedDomains,
  buildPlan,
  checkFresh,
  checkSwitchDomains,
  checkTarget,
  defaultPromoteTarget,
  defaultRollbackTarget,
  isAlreadyDone,
  isSwitchHostname,
  MAX_SWITCH_DOMAINS,
  planId,
  resolveDeployment,
  resolveEnvironment,
} from '../../src/domain/plan.js';
import type { Deployment, DeploymentStatus, EnvironmentSnapshot, LiveEntry } from '../../src/domain/types.js';
import { deriveLive } from '../../src/platform/live-history.js';

const H = 3_600_000;
function dep(
  id: string,
  createdAt: number,
  status: DeploymentStatus = 'ready',
  environment = 'production',
): Deployment {
  return {
    id,
    projectId: 'p',
    environment,
    branch: 'main',
    commit: {
      sha: `${id.replace(/[^0-9a-f]/g, 'a')}${'0'.repeat(40)}`.slice(0, 40),
      message: `commit ${id}`,
      author: 'dev',
    },
    createdAt,
    ...(status === 'building' || status === 'failed' ? {} : { readyAt: createdAt + 1 }),
    status,
  };
}

function snapshot(
  over: Partial<{
    deployments: Deployment[];
    current: string | undefined;
    rolledBack: boolean;
    history: LiveEntry[];
  }> = {},
): EnvironmentSnapshot {
  const deployments = over.deployments ?? [
    dep('d4', 4 * H),
    dep('d3', 3 * H, 'standby'),
    dep('d2', 2 * H, 'standby'),
    dep('d1', 1 * H, 'stopped'),
  ];
  const current = 'current' in over ? over.current : 'd4';
  return {
    project: { id: 'p', name: 'shop' },
    environment: {
      slug: 'production',
      kind: 'production',
      projectId: 'p',
      rolledBack: over.rolledBack ?? false,
      ...(current === undefined ? {} : { currentDeploymentId: current }),
    },
    deployments: [...deployments].sort((a, b) => b.createdAt - a.createdAt),
    domains: [
      {
        hostname: 'shop.example.com',
        stickiness: 'live',
        environment: 'production',
        ...(current ? { deploymentId: current } : {}),
      },
      {
        hostname: 'production.shop.app',
        stickiness: 'environment',
        environment: 'production',
        ...(current ? { deploymentId: current } : {}),
      },
      {
        hostname: 'main.shop.app',
        stickiness: 'branch',
        environment: 'production',
        branch: 'main',
        ...(current ? { deploymentId: current } : {}),
      },
      {
        hostname: 'feature.shop.app',
        stickiness: 'branch',
        environment: 'production',
        branch: 'feature',
        deploymentId: 'd2',
      },
      { hostname: 'd4.shop.app', stickiness: 'deployment', environment: 'production', deploymentId: 'd4' },
      { hostname: 'preview.shop.app', stickiness: 'environment', environment: 'preview', deploymentId: 'px' },
    ],
    liveHistory: over.history ?? [
      { deploymentId: 'd1', since: 1 * H, via: 'deploy' },
      { deploymentId: 'd2', since: 2 * H, via: 'deploy' },
      { deploymentId: 'd3', since: 3 * H, via: 'deploy' },
      { deploymentId: 'd4', since: 4 * H, via: 'deploy' },
    ],
    readAt: 5 * H,
  };
}

describe('resolveEnvironment', () => {
  it('matches exactly, case-insensitively, or by unique prefix', () => {
    expect(resolveEnvironment(['production', 'preview'], 'Production')).toEqual({
      ok: true,
      value: 'production',
    });
    expect(resolveEnvironment(['production', 'preview'], 'prod')).toEqual({ ok: true, value: 'production' });
  });
  it('refuses unknown or ambiguous input listing the valid environments', () => {
    const r = resolveEnvironment(['production', 'preview'], 'pr');
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.refusal.code).toBe('unknown_environment');
      expect(r.refusal.message).toContain('production, preview');
    }
    const s = resolveEnvironment(['production'], 'staging');
    expect(!s.ok && s.refusal.message).toContain('Unknown environment "staging"');
  });
});

describe('resolveDeployment', () => {
  const snap = snapshot();
  it('accepts a full id, a unique id prefix or a commit sha prefix', () => {
    expect(resolveDeployment(snap, 'd3')).toMatchObject({ ok: true, value: { id: 'd3' } });
    const sha = snap.deployments.find((d) => d.id === 'd2')?.commit.sha.slice(0, 9) ?? '';
    expect(resolveDeployment(snap, sha)).toMatchObject({ ok: true, value: { id: 'd2' } });
  });
  it('refuses ambiguous and unknown references, listing recent ids', () => {
    const amb = resolveDeployment(snap, 'd');
    expect(!amb.ok && amb.refusal.message).toMatch(/matches 4 deployments/);
    const unk = resolveDeployment(snap, 'dep_zzz');
    expect(!unk.ok && unk.refusal.code).toBe('unknown_deployment');
    expect(!unk.ok && unk.refusal.message).toContain('d4, d3, d2, d1');
  });
  it('a full sha shared by a redeploy asks for an id, not for more characters', () => {
    const a = dep('d5', 5 * H);
    const redeploy = { ...dep('d6', 6 * H), commit: a.commit };
    const s = snapshot({ deployments: [redeploy, a, dep('d4', 4 * H)], current: 'd6' });
    const r = resolveDeployment(s, a.commit.sha);
    expect(!r.ok && r.refusal.message).toMatch(/matches 2 deployments .*same commit, so name one by its id/);
    const byPrefix = resolveDeployment(s, 'd');
    expect(!byPrefix.ok && byPrefix.refusal.message).toMatch(/give more characters/);
  });
});

describe('checkTarget (the platform rules, in order)', () => {
  it('refuses a target of another environment', () => {
    const other = dep('px', 5 * H, 'ready', 'preview');
    expect(checkTarget(snapshot(), 'rollback', other)?.code).toBe('target_wrong_environment');
  });
  it('refuses a building target as not ready, a failed one as failed', () => {
    expect(checkTarget(snapshot(), 'rollback', dep('b', 1, 'building'))?.code).toBe('target_not_ready');
    expect(checkTarget(snapshot(), 'rollback', dep('f', 1, 'failed'))?.code).toBe('target_not_ready');
  });
  it('refuses a stopped target: it cannot be started again', () => {
    const r = checkTarget(snapshot(), 'rollback', dep('d1', H, 'stopped'));
    expect(r?.code).toBe('target_stopped');
    expect(r?.message).toContain('cannot be started again');
  });
  it("refuses a target the platform withholds now in the platform's own words (statusReason)", () => {
    const reason =
      'Unkey offers no rollback or promote to it right now: Unkey is shutting it down and does not start it again.';
    const withheld: Deployment = { ...dep('d3', 3 * H, 'stopped'), statusReason: reason };
    const r = checkTarget(snapshot(), 'rollback', withheld);
    expect(r?.code).toBe('target_stopped');
    expect(r?.message).toContain(reason);
    expect(r?.message).toContain('d3');
    const blocked: Deployment = {
      ...dep('b', 3 * H, 'building'),
      statusReason: 'Vercel blocked it until its checks pass.',
    };
    const nr = checkTarget(snapshot(), 'rollback', blocked);
    expect(nr?.code).toBe('target_not_ready');
    expect(nr?.message).toContain('Vercel blocked it until its checks pass.');
    const p = buildPlan(snapshot({ deployments: [dep('d4', 4 * H), withheld] }), {
      action: 'rollback',
      now: 1,
    });
    expect(!p.ok && p.refusal.code).toBe('no_rollback_target');
  });
  it('accepts a standby target (reactivation takes longer)', () => {
    expect(checkTarget(snapshot(), 'rollback', dep('d3', 3 * H, 'standby'))).toBeNull();
  });
  it('refuses when the environment has no current deployment', () => {
    expect(checkTarget(snapshot({ current: undefined }), 'rollback', dep('d3', 3 * H, 'standby'))?.code).toBe(
      'no_current_deployment',
    );
  });
  it('refuses the current deployment, except promote while rolled back', () => {
    expect(checkTarget(snapshot(), 'rollback', dep('d4', 4 * H))?.code).toBe('target_is_current');
    expect(checkTarget(snapshot(), 'promote', dep('d4', 4 * H))?.code).toBe('target_is_current');
    expect(checkTarget(snapshot({ rolledBack: true }), 'rollback', dep('d4', 4 * H))?.code).toBe(
      'target_is_current',
    );
    expect(checkTarget(snapshot({ rolledBack: true }), 'promote', dep('d4', 4 * H))).toBeNull();
  });
});

describe('default targets', () => {
  it('rollback defaults to the deployment live before the current one', () => {
    expect(defaultRollbackTarget(snapshot())).toMatchObject({ ok: true, value: { id: 'd3' } });
  });
  it('after a rollback, a second rollback keeps going back instead of returning to the bad deployment', () => {
    const snap = snapshot({
      current: 'd3',
      rolledBack: true,
      deployments: [dep('d4', 4 * H), dep('d3', 3 * H), dep('d2', 2 * H, 'standby'), dep('d1', H, 'stopped')],
      history: [
        { deploymentId: 'd2', since: 2 * H, via: 'deploy' },
        { deploymentId: 'd3', since: 3 * H, via: 'deploy' },
        { deploymentId: 'd4', since: 4 * H, via: 'deploy' },
        { deploymentId: 'd3', since: 4.5 * H, via: 'rollback' },
      ],
    });
    expect(defaultRollbackTarget(snap)).toMatchObject({ ok: true, value: { id: 'd2' } });
  });
  it('skips stopped deployments and falls back to the newest ready older one without history', () => {
    const snap = snapshot({
      history: [],
      deployments: [dep('d4', 4 * H), dep('d3', 3 * H, 'failed'), dep('d2', 2 * H), dep('d1', H)],
    });
    expect(defaultRollbackTarget(snap)).toMatchObject({ ok: true, value: { id: 'd2' } });
    const onlyStopped = snapshot({
      deployments: [dep('d4', 4 * H), dep('d3', 3 * H, 'stopped')],
      history: [
        { deploymentId: 'd3', since: 3 * H, via: 'deploy' },
        { deploymentId: 'd4', since: 4 * H, via: 'deploy' },
      ],
    });
    const r = defaultRollbackTarget(onlyStopped);
    expect(!r.ok && r.refusal.code).toBe('no_rollback_target');
  });
  it('rolled back to the oldest deployment: nothing older, and the refusal names the way back (promote)', () => {
    const snap = snapshot({
      deployments: [dep('d4', 4 * H), dep('d1', 1 * H)],
      current: 'd1',
      rolledBack: true,
      history: [
        { deploymentId: 'd1', since: 1 * H, via: 'deploy' },
        { deploymentId: 'd4', since: 4 * H, via: 'deploy' },
        { deploymentId: 'd1', since: 5 * H, via: 'rollback' },
      ],
    });
    const r = defaultRollbackTarget(snap);
    expect(!r.ok && r.refusal.code).toBe('no_rollback_target');
    expect(!r.ok && r.refusal.message).toContain('To go back to d4 (live before it), use /promote d4.');
  });
  it('promote defaults to the newest ready deployment', () => {
    const snap = snapshot({
      current: 'd4',
      deployments: [dep('d6', 6 * H, 'building'), dep('d5', 5 * H), dep('d4', 4 * H)],
    });
    expect(defaultPromoteTarget(snap)).toMatchObject({ ok: true, value: { id: 'd5' } });
  });

  it('while rolled back, promote never defaults to the deployment rolled back from: a fix pushed since, else resume', () => {
    // d4 went bad; production was rolled back to d3 at 4.5 h
    const history: LiveEntry[] = [
      { deploymentId: 'd3', since: 3 * H, via: 'deploy' },
      { deploymentId: 'd4', since: 4 * H, via: 'deploy' },
      { deploymentId: 'd3', since: 4.5 * H, via: 'rollback' },
    ];
    const rolledBack = (deployments: Deployment[]) => {
      const snap = snapshot({ rolledBack: true, current: 'd3', deployments, history });
      return { ...snap, environment: { ...snap.environment, rolledBackAt: 4.5 * H } };
    };
    // nothing new: the default is the current deployment (resume automatic deploys, no domain moves)
    const none = rolledBack([dep('d5', 5 * H, 'building'), dep('d4', 4 * H), dep('d3', 3 * H)]);
    expect(defaultPromoteTarget(none)).toMatchObject({ ok: true, value: { id: 'd3' } });
    const resume = buildPlan(none, { action: 'promote', now: 5 * H });
    if (!resume.ok) throw new Error(resume.refusal.message);
    expect(resume.value.affectedDomains).toEqual([]);
    // a fix that became ready after the rollback is the default
    const fixed = rolledBack([dep('d5', 5 * H), dep('d4', 4 * H), dep('d3', 3 * H)]);
    expect(defaultPromoteTarget(fixed)).toMatchObject({ ok: true, value: { id: 'd5' } });
    // the bad one can still be promoted by name
    expect(buildPlan(fixed, { action: 'promote', target: 'd4', now: 5 * H })).toMatchObject({
      ok: true,
      value: { target: { id: 'd4' } },
    });
    // without rolledBackAt (a platform that does not say when), the live history alone rules d4 out
    const { rolledBackAt: _, ...untimed } = none.environment;
    const noTime = { ...none, environment: untimed };
    expect(defaultPromoteTarget(noTime)).toMatchObject({ ok: true, value: { id: 'd3' } });
  });

  it('while rolled back on a platform that says neither when nor what was live (Unkey, Vercel), promote defaults to resume, never to a newer deployment', () => {
    // d4 went bad and production was rolled back to d3; d5, a fix, became ready since. Without the
    // rollback's time or a live history nothing tells d4 (rolled back from) and d5 (the fix) apart.
    const snap = snapshot({
      rolledBack: true,
      current: 'd3',
      deployments: [dep('d5', 5 * H), dep('d4', 4 * H), dep('d3', 3 * H)],
      history: [],
    });
    const { rolledBackAt: _, ...untimed } = snap.environment;
    const unkeyLike = { ...snap, environment: untimed };
    expect(defaultPromoteTarget(unkeyLike)).toMatchObject({ ok: true, value: { id: 'd3' } });
    const plan = buildPlan(unkeyLike, { action: 'promote', now: 6 * H });
    if (!plan.ok) throw new Error(plan.refusal.message);
    expect(plan.value.affectedDomains).toEqual([]);
    // Named, the fix is promoted.
    expect(buildPlan(unkeyLike, { action: 'promote', target: 'd5', now: 6 * H })).toMatchObject({
      ok: true,
      value: { target: { id: 'd5' } },
    });
  });
});

describe('older and newer: the order the platform lists (newest first), never createdAt', () => {
  // The platform put b live after a (push order), but the wall clock had stepped back in between: b
  // was created "before" a. Or both were pushed in one millisecond. The snapshot lists b first.
  const a = dep('a1', 4 * H);
  const history: LiveEntry[] = [
    { deploymentId: 'a1', since: 4 * H, via: 'deploy' },
    { deploymentId: 'b1', since: 4 * H + 1, via: 'deploy' },
  ];
  const listed = (b: Deployment): EnvironmentSnapshot => {
    const snap = snapshot({ current: 'b1', history });
    return { ...snap, deployments: [b, a] };
  };
  const cases = {
    'after the wall clock stepped back': dep('b1', 4 * H - 10_000),
    'two pushes in one millisecond': dep('b1', 4 * H),
  };
  for (const [name, b] of Object.entries(cases)) {
    it(`${name}: rollback goes back to the one listed after the current one, promote finds nothing newer`, () => {
      const snap = listed(b);
      expect(defaultRollbackTarget(snap)).toMatchObject({ ok: true, value: { id: 'a1' } });
      expect(defaultPromoteTarget(snap)).toMatchObject({ ok: true, value: { id: 'b1' } });
      const promote = buildPlan(snap, { action: 'promote', now: 5 * H });
      expect(!promote.ok && promote.refusal.code).toBe('target_is_current');
      const rollback = buildPlan(snap, { action: 'rollback', now: 5 * H });
      expect(rollback.ok && rollback.value.target.id).toBe('a1');
    });
  }

  it('while rolled back, a fix listed newer than the current deployment is the default promote whatever its createdAt', () => {
    // b1 went bad; rolled back to a1 at 5 h; the fix f1 was pushed after the rollback but the clock
    // had stepped back below a1's createdAt.
    const fix = { ...dep('f1', 4 * H - 20_000), readyAt: 5.5 * H };
    const snap = snapshot({
      current: 'a1',
      rolledBack: true,
      history: [...history, { deploymentId: 'a1', since: 5 * H, via: 'rollback' }],
    });
    const rolledBack: EnvironmentSnapshot = {
      ...snap,
      environment: { ...snap.environment, rolledBackAt: 5 * H },
      deployments: [fix, dep('b1', 4 * H - 10_000), a],
    };
    expect(defaultPromoteTarget(rolledBack)).toMatchObject({ ok: true, value: { id: 'f1' } });
  });
});

describe('a fix pushed while rolled back, then a second rollback', () => {
  // d5 went bad: rolled back to d4 at 5.5 h. d6, a fix, became ready at 6 h (no domains: rolled back).
  // d4 turned out bad too: rolled back further, to d3, at 6.5 h. The period began at 5.5 h.
  const history: LiveEntry[] = [
    { deploymentId: 'd3', since: 3 * H, via: 'deploy' },
    { deploymentId: 'd4', since: 4 * H, via: 'deploy' },
    { deploymentId: 'd5', since: 5 * H, via: 'deploy' },
    { deploymentId: 'd4', since: 5.5 * H, via: 'rollback' },
    { deploymentId: 'd3', since: 6.5 * H, via: 'rollback' },
  ];
  const fix = { ...dep('d6', 5.9 * H), readyAt: 6 * H };
  const base = snapshot({
    current: 'd3',
    rolledBack: true,
    deployments: [fix, dep('d5', 5 * H), dep('d4', 4 * H), dep('d3', 3 * H)],
    history,
  });

  it('the fix stays the default promote: "since the environment was rolled back" is the start of the period', () => {
    const snap: EnvironmentSnapshot = {
      ...base,
      environment: { ...base.environment, rolledBackAt: 6.5 * H, rolledBackSince: 5.5 * H },
    };
    expect(defaultPromoteTarget(snap)).toMatchObject({ ok: true, value: { id: 'd6' } });
    const plan = buildPlan(snap, { action: 'promote', now: 7 * H });
    expect(plan.ok && plan.value.resumesAutoDeploys).toBe(false);
    // never the deployments rolled back from (both were live)
    const noFix = { ...snap, deployments: snap.deployments.filter((d) => d.id !== 'd6') };
    expect(defaultPromoteTarget(noFix)).toMatchObject({ ok: true, value: { id: 'd3' } });
  });

  it('a platform that says only when it was last rolled back: measured from then (a fix ready before it is named)', () => {
    const snap: EnvironmentSnapshot = {
      ...base,
      environment: { ...base.environment, rolledBackAt: 6.5 * H },
    };
    expect(defaultPromoteTarget(snap)).toMatchObject({ ok: true, value: { id: 'd3' } });
  });
});

describe('affected domains', () => {
  it('are the live and environment domains plus branch domains on the current deployment; never deployment domains or other environments', () => {
    expect(affectedDomains(snapshot(), 'd4', 'main').map((d) => d.hostname)).toEqual([
      'shop.example.com',
      'production.shop.app',
      'main.shop.app',
    ]);
  });

  it("leave a branch domain on its own branch's deployment when the target is another branch's", () => {
    const other = { ...dep('d5', 5 * H), branch: 'feature' };
    const snap = snapshot({ deployments: [other, dep('d4', 4 * H), dep('d3', 3 * H)] });
    expect(affectedDomains(snap, 'd4', 'feature').map((d) => d.hostname)).toEqual([
      'shop.example.com',
      'production.shop.app',
    ]);
    // and so does a plan to that deployment
    const r = buildPlan(snap, { action: 'promote', target: 'd5', now: 6 * H });
    if (!r.ok) throw new Error(r.refusal.message);
    expect(r.value.affectedDomains.map((d) => d.hostname)).not.toContain('main.shop.app');
  });
});

describe("a promote moves the target's own branch domain when the target is its branch's newest", () => {
  // Preview-like: d4 (main) is current after a rollback from y1 (feature), whose branch domain stayed on
  // y1 (a branch domain serves its own branch). y2, the fix of feature, was pushed while rolled back:
  // no domains. The branch domain must follow feature's newest deployment once it is promoted.
  const y1 = { ...dep('y1', 5 * H), branch: 'feature' };
  const y2 = { ...dep('y2', 6 * H), branch: 'feature' };
  const base = snapshot({
    current: 'd4',
    rolledBack: true,
    deployments: [y2, y1, dep('d4', 4 * H), dep('d3', 3 * H)],
    history: [
      { deploymentId: 'd4', since: 4 * H, via: 'deploy' },
      { deploymentId: 'y1', since: 5 * H, via: 'deploy' },
      { deploymentId: 'd4', since: 5.5 * H, via: 'rollback' },
    ],
  });
  const snap: EnvironmentSnapshot = {
    ...base,
    environment: { ...base.environment, rolledBackAt: 5.5 * H },
    domains: base.domains.map((d) => (d.hostname === 'feature.shop.app' ? { ...d, deploymentId: 'y1' } : d)),
  };
  const moved = (action: 'rollback' | 'promote', target?: string, on = snap) => {
    const r = buildPlan(on, { action, now: 7 * H, ...(target === undefined ? {} : { target }) });
    if (!r.ok) throw new Error(r.refusal.message);
    return { target: r.value.target.id, hosts: r.value.affectedDomains.map((d) => d.hostname) };
  };

  it('the default promote (the fix) lists the branch domain among the affected domains', () => {
    expect(moved('promote')).toEqual({
      target: 'y2',
      hosts: ['shop.example.com', 'production.shop.app', 'feature.shop.app'],
    });
    // the plan and its freshness check agree on it
    expect(
      checkFresh(
        {
          action: 'promote',
          environment: 'production',
          targetId: 'y2',
          expectedCurrent: 'd4',
          expectedRolledBack: true,
          affectedHostnames: ['shop.example.com', 'production.shop.app', 'feature.shop.app'],
        },
        snap,
      ).ok,
    ).toBe(true);
  });

  it("not for an older deployment of the branch, not on a rollback, and not another branch's domain", () => {
    // the branch domain on another deployment of its branch (d2): only the branch's newest takes it
    const elsewhere: EnvironmentSnapshot = { ...snap, domains: base.domains };
    expect(elsewhere.domains.find((d) => d.hostname === 'feature.shop.app')?.deploymentId).toBe('d2');
    expect(moved('promote', 'y1', elsewhere).hosts).not.toContain('feature.shop.app');
    expect(moved('promote', 'y2', elsewhere).hosts).toContain('feature.shop.app');
    expect(moved('rollback', 'y2').hosts).not.toContain('feature.shop.app');
    expect(moved('promote').hosts).not.toContain('main.shop.app');
  });
});

describe('buildPlan', () => {
  it('lists current, affected domains, target, standby and expectations', () => {
    const r = buildPlan(snapshot(), { action: 'rollback', now: 5 * H });
    if (!r.ok) throw new Error(r.refusal.message);
    const p = r.value;
    expect(p.current.id).toBe('d4');
    expect(p.target.id).toBe('d3');
    expect(p.targetStandby).toBe(true);
    expect(p.rolledBack).toBe(false);
    expect(p.expectedCurrent).toBe('d4');
    expect(p.currentLiveSince).toBe(4 * H);
    expect(p.affectedDomains).toHaveLength(3);
    expect(p.id).toMatch(/^plan_[0-9a-f]{24}$/);
  });
  it('gives the same id for the same action on the same state, a different one otherwise', () => {
    const a = buildPlan(snapshot(), { action: 'rollback', now: 1 });
    const b = buildPlan(snapshot(), { action: 'rollback', now: 2 });
    const c = buildPlan(snapshot(), { action: 'rollback', target: 'd2', now: 1 });
    expect(a.ok && b.ok && a.value.id === b.value.id).toBe(true);
    expect(a.ok && c.ok && a.value.id !== c.value.id).toBe(true);
    const parts = {
      action: 'promote' as const,
      projectId: 'p',
      environment: 'e',
      expectedCurrent: 'x',
      target: 'y',
      rolledBack: true,
      targetStandby: false,
      domains: ['a.example.com', 'b.example.com'],
    };
    expect(planId(parts)).not.toEqual(planId({ ...parts, rolledBack: false }));
    expect(planId(parts)).not.toEqual(planId({ ...parts, targetStandby: true }));
    expect(planId(parts)).not.toEqual(planId({ ...parts, domains: ['a.example.com'] }));
    // the order in which the platform lists domains does not matter
    expect(planId(parts)).toEqual(planId({ ...parts, domains: ['b.example.com', 'a.example.com'] }));
  });
  it('gives a new id when the target went to standby or the affected domains changed since', () => {
    const ready = snapshot({ deployments: [dep('d4', 4 * H), dep('d3', 3 * H, 'ready')] });
    const standby = snapshot({ deployments: [dep('d4', 4 * H), dep('d3', 3 * H, 'standby')] });
    const withDomain: EnvironmentSnapshot = {
      ...standby,
      domains: [
        ...standby.domains,
        { hostname: 'api.shop.app', stickiness: 'live', environment: 'production', deploymentId: 'd4' },
      ],
    };
    const ids = [ready, standby, withDomain].map((snap) => {
      const r = buildPlan(snap, { action: 'rollback', target: 'd3', now: 1 });
      if (!r.ok) throw new Error(r.refusal.message);
      return r.value.id;
    });
    expect(new Set(ids).size).toBe(3);
    // the same facts listed in another order are the same plan
    const shuffled = { ...withDomain, domains: [...withDomain.domains].reverse() };
    const again = buildPlan(shuffled, { action: 'rollback', target: 'd3', now: 2 });
    expect(again.ok && again.value.id).toBe(ids[2]);
  });
  it('promote of the current deployment while rolled back resumes automatic deploys and moves no domain', () => {
    const r = buildPlan(snapshot({ rolledBack: true }), { action: 'promote', target: 'd4', now: 1 });
    if (!r.ok) throw new Error(r.refusal.message);
    expect(r.value.resumesAutoDeploys).toBe(true);
    expect(r.value.affectedDomains).toEqual([]);
  });
  it('passes refusals through as values', () => {
    const r = buildPlan(snapshot(), { action: 'rollback', target: 'd1', now: 1 });
    expect(!r.ok && r.refusal.code).toBe('target_stopped');
  });
});

describe('what a switch can carry: the plan refuses what its job could not queue', () => {
  /** The default snapshot plus `extra` live domains of production (on the current deployment). */
  function withLive(extra: readonly string[]): EnvironmentSnapshot {
    const base = snapshot({ deployments: [dep('d4', 4 * H), dep('d3', 3 * H)] });
    return {
      ...base,
      domains: [
        ...base.domains,
        ...extra.map((hostname) => ({
          hostname,
          stickiness: 'live' as const,
          environment: 'production',
          deploymentId: 'd4',
        })),
      ],
    };
  }
  /** Live hostnames so that a rollback of `withLive` moves `total` domains (3 move already). */
  const hosts = (total: number) => Array.from({ length: total - 3 }, (_, k) => `shop-${k}.example.com`);

  it(`refuses a plan moving more than ${MAX_SWITCH_DOMAINS} domains (too_many_domains), naming how many and the limit`, () => {
    const r = buildPlan(withLive(hosts(612)), { action: 'rollback', now: 1 });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.refusal).toEqual({
      code: 'too_many_domains',
      message: `production has 612 affected domains; Switchyard verifies at most ${MAX_SWITCH_DOMAINS} per switch, so it cannot roll back production. Use the deploy platform's own rollback (its dashboard or CLI) for production instead.`,
      context: { environment: 'production', domains: 612, max: MAX_SWITCH_DOMAINS },
    });
    // A promote moving as many is refused alike; one that only resumes automatic deploys moves none.
    const many = { ...withLive(hosts(612)), environment: { ...withLive([]).environment, rolledBack: true } };
    const promote = buildPlan(many, { action: 'promote', target: 'd3', now: 1 });
    expect(!promote.ok && promote.refusal.code).toBe('too_many_domains');
    expect(buildPlan(many, { action: 'promote', target: 'd4', now: 1 }).ok).toBe(true);
  });

  it(`plans exactly ${MAX_SWITCH_DOMAINS} domains`, () => {
    const r = buildPlan(withLive(hosts(MAX_SWITCH_DOMAINS)), { action: 'rollback', now: 1 });
    if (!r.ok) throw new Error(r.refusal.message);
    expect(r.value.affectedDomains).toHaveLength(MAX_SWITCH_DOMAINS);
  });

  it('plans a wildcard domain (*.acme.com), as Vercel lists it', () => {
    const r = buildPlan(withLive(['*.acme.com']), { action: 'rollback', now: 1 });
    if (!r.ok) throw new Error(r.refusal.message);
    expect(r.value.affectedDomains.map((d) => d.hostname)).toContain('*.acme.com');
  });

  it('refuses a domain name the switch job cannot carry (unsupported_domain), naming it and what is accepted', () => {
    const r = buildPlan(withLive(['api.*.acme.com', 'ok.acme.com']), { action: 'rollback', now: 1 });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.refusal.code).toBe('unsupported_domain');
    expect(r.refusal.message).toBe(
      `production has a domain Switchyard cannot verify: "api.*.acme.com"; expected a hostname such as app.example.com (a wildcard only as the leftmost label: *.example.com). Use the deploy platform's own rollback (its dashboard or CLI) for production instead.`,
    );
  });

  it('accepts hostnames with a port and a leftmost wildcard label only', () => {
    const accepted = ['app.example.com', 'shop.localhost:8080', '*.acme.com', '*.acme.com:443', 'acme.com.'];
    const refused = ['', '*', '*.', '**.acme.com', 'a.*.acme.com', '*acme.com', 'under_score.com', 'a b.com'];
    expect(accepted.filter((h) => !isSwitchHostname(h))).toEqual([]);
    expect(refused.filter((h) => isSwitchHostname(h))).toEqual([]);
    expect(isSwitchHostname(`${'a'.repeat(249)}.com`)).toBe(true);
    expect(isSwitchHostname(`${'a'.repeat(250)}.com`)).toBe(false);
    expect(checkSwitchDomains('production', 'promote', ['*.acme.com'])).toBeNull();
  });
});

describe('freshness', () => {
  const expectation = {
    action: 'rollback' as const,
    environment: 'production',
    targetId: 'd3',
    expectedCurrent: 'd4',
    expectedRolledBack: false,
  };
  it('accepts an unchanged environment', () => {
    expect(checkFresh(expectation, snapshot()).ok).toBe(true);
  });
  it('is stale when traffic moved, saying where it is now', () => {
    const r = checkFresh(expectation, snapshot({ current: 'd2' }));
    expect(!r.ok && r.refusal.code).toBe('plan_stale');
    expect(!r.ok && r.refusal.message).toContain('now serves d2');
  });
  it('is stale when the rolled-back state flipped', () => {
    const r = checkFresh(expectation, snapshot({ rolledBack: true }));
    expect(!r.ok && r.refusal.code).toBe('plan_stale');
  });
  it('refuses a target that was stopped since', () => {
    const r = checkFresh(
      expectation,
      snapshot({ deployments: [dep('d4', 4 * H), dep('d3', 3 * H, 'stopped')] }),
    );
    expect(!r.ok && r.refusal.code).toBe('target_stopped');
  });
  describe('with the facts a plan showed', () => {
    const shown = {
      ...expectation,
      targetStandby: true,
      affectedHostnames: ['shop.example.com', 'production.shop.app', 'main.shop.app'],
    };
    it('accepts an unchanged environment', () => {
      expect(checkFresh(shown, snapshot()).ok).toBe(true);
      // without them (a job's expectation) the extra facts are not checked
      expect(
        checkFresh(expectation, snapshot({ deployments: [dep('d4', 4 * H), dep('d3', 3 * H)] })).ok,
      ).toBe(true);
    });
    it('is stale when the target went to standby, saying it takes longer', () => {
      const r = checkFresh(
        { ...shown, targetStandby: false },
        snapshot({ deployments: [dep('d4', 4 * H), dep('d3', 3 * H, 'standby')] }),
      );
      expect(!r.ok && r.refusal.code).toBe('plan_stale');
      expect(!r.ok && r.refusal.message).toBe(
        'production changed since this plan was made: d3 went to standby, so it has to be reactivated first, which takes longer. Ask for a fresh plan.',
      );
      expect(!r.ok && r.refusal.context).toMatchObject({ targetStandby: true });
    });
    it('is stale when the target left standby', () => {
      const r = checkFresh(shown, snapshot({ deployments: [dep('d4', 4 * H), dep('d3', 3 * H, 'ready')] }));
      expect(!r.ok && r.refusal.message).toContain('d3 is no longer in standby');
    });
    it('is stale when a domain was added or no longer moves, naming them', () => {
      const base = snapshot();
      const changed: EnvironmentSnapshot = {
        ...base,
        domains: [
          ...base.domains.filter((d) => d.hostname !== 'main.shop.app'),
          { hostname: 'api.shop.app', stickiness: 'live', environment: 'production', deploymentId: 'd4' },
        ],
      };
      const r = checkFresh(shown, changed);
      expect(!r.ok && r.refusal.code).toBe('plan_stale');
      expect(!r.ok && r.refusal.message).toBe(
        'production changed since this plan was made: the rollback would now also move api.shop.app; the rollback would no longer move main.shop.app. Ask for a fresh plan.',
      );
      expect(!r.ok && r.refusal.context).toMatchObject({
        addedDomains: ['api.shop.app'],
        removedDomains: ['main.shop.app'],
      });
    });
    it('a promote that only resumes automatic deploys moves no domain, then and now', () => {
      const resume = {
        action: 'promote' as const,
        environment: 'production',
        targetId: 'd4',
        expectedCurrent: 'd4',
        expectedRolledBack: true,
        targetStandby: false,
        affectedHostnames: [],
      };
      expect(checkFresh(resume, snapshot({ rolledBack: true })).ok).toBe(true);
    });
  });
  describe('a plan of another project (PLATFORM or the project changed in the configuration since)', () => {
    // The same environment slug on another platform: its deployments are other ids (d2 current here
    // says nothing about this plan's d4), and one of them may even carry the plan's target's id.
    const elsewhere = (over: Parameters<typeof snapshot>[0] = {}): EnvironmentSnapshot => ({
      ...snapshot(over),
      project: { id: 'acme', name: 'acme' },
    });
    const ofP = { ...expectation, projectId: 'p' };
    it('is stale as such, naming both projects and the platform read, not "traffic moved"', () => {
      const r = checkFresh(ofP, elsewhere({ current: 'd2' }), { platform: 'unkey' });
      expect(!r.ok && r.refusal.code).toBe('plan_stale');
      expect(!r.ok && r.refusal.message).toBe(
        'This plan was made for project p; Switchyard now acts on project acme on the unkey platform (its platform or project was changed in the configuration since), whose production is not the environment this plan showed. Ask for a fresh plan.',
      );
      expect(!r.ok && r.refusal.context).toEqual({
        environment: 'production',
        expectedProject: 'p',
        project: 'acme',
        platform: 'unkey',
      });
      // Even where the deployment ids happen to agree: nothing there is this plan's.
      const same = checkFresh(ofP, elsewhere());
      expect(!same.ok && same.refusal.message).toMatch(
        /^This plan was made for project p; Switchyard now acts on project acme \(/,
      );
    });
    it('is not "already done" by another project whose current deployment has the target\'s id', () => {
      expect(isAlreadyDone(ofP, elsewhere({ current: 'd3', rolledBack: true }))).toBe(false);
      expect(isAlreadyDone(ofP, snapshot({ current: 'd3', rolledBack: true }))).toBe(true);
    });
    it('is fresh in its own project, and unchecked without a project (a job of an earlier version)', () => {
      expect(checkFresh(ofP, snapshot(), { platform: 'local' }).ok).toBe(true);
      expect(checkFresh(expectation, elsewhere()).ok).toBe(true);
    });
  });
  it('recognises a plan whose result is already in place', () => {
    expect(isAlreadyDone(expectation, snapshot({ current: 'd3', rolledBack: true }))).toBe(true);
    expect(isAlreadyDone(expectation, snapshot())).toBe(false);
    expect(
      isAlreadyDone({ ...expectation, action: 'promote' }, snapshot({ current: 'd3', rolledBack: true })),
    ).toBe(false);
  });
});

describe('a platform without live history (Unkey, Vercel): the derived knowledge changes no default', () => {
  // Production on such a platform: d5 deployed over d4 (d3 older, d2 stopped); no history.
  const states = {
    deployed: snapshot({
      history: [],
      current: 'd5',
      deployments: [dep('d5', 5 * H), dep('d4', 4 * H), dep('d3', 3 * H), dep('d2', 2 * H, 'stopped')],
    }),
    rolledBack: snapshot({
      history: [],
      current: 'd4',
      rolledBack: true,
      deployments: [dep('d6', 6 * H), dep('d5', 5 * H), dep('d4', 4 * H), dep('d3', 3 * H)],
    }),
    promotedOlder: snapshot({
      history: [],
      current: 'd3',
      deployments: [dep('d5', 5 * H), dep('d4', 4 * H), dep('d3', 3 * H), dep('d2', 2 * H)],
    }),
  };
  const readyWindow = (d: Deployment) =>
    d.readyAt === undefined ? undefined : { notBefore: d.readyAt, notAfter: d.readyAt };
  /** What such a platform derives from `plain`'s deployments. */
  const derivedFrom = (plain: EnvironmentSnapshot) =>
    deriveLive({
      platform: 'Unkey',
      environment: plain.environment,
      deployments: plain.deployments,
      readAt: plain.readAt,
      readyWindow,
    });

  for (const [name, plain] of Object.entries(states)) {
    it(`${name}: the same default rollback and promote targets and plans as without it`, () => {
      const derived = derivedFrom(plain);
      const withDerived: EnvironmentSnapshot = { ...plain, derivedLive: derived };
      expect(defaultRollbackTarget(withDerived)).toEqual(defaultRollbackTarget(plain));
      expect(defaultPromoteTarget(withDerived)).toEqual(defaultPromoteTarget(plain));
      for (const action of ['rollback', 'promote'] as const) {
        expect(buildPlan(withDerived, { action, now: 6 * H })).toEqual(
          buildPlan(plain, { action, now: 6 * H }),
        );
      }
      // Even read as a one-entry history, what is derived would not move the default rollback target.
      const entry = derived.current;
      const asHistory: EnvironmentSnapshot = {
        ...plain,
        liveHistory:
          entry === undefined
            ? []
            : [{ deploymentId: entry.deploymentId, since: entry.notAfter, via: entry.via }],
      };
      expect(defaultRollbackTarget(asHistory)).toEqual(defaultRollbackTarget(plain));
    });
  }

  it('the deployed state derives a deploy entry, so the comparison above is not vacuous', () => {
    const plain = states.deployed;
    const derived = derivedFrom(plain);
    expect(derived.current).toMatchObject({ deploymentId: 'd5', via: 'deploy', previous: 'd4' });
    expect(defaultRollbackTarget(plain)).toMatchObject({ ok: true, value: { id: 'd4' } });
  });
});
