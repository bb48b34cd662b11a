/**
 * Plan rules no other test pinned (found by mutation testing). Each test fails on one small change of
 * src/domain/plan.ts that the area's tests let through.
 */
import { describe, expect, it } from 'vitest';
import { type OwnSwitch, ownRecordOf } from '../../src/domain/own-record.js';
import {
  buildPlan,
  checkFresh,
  checkTarget,
  defaultPromoteTarget,
  defaultRollbackTarget,
  isAlreadyDone,
  resolveDeployment,
  resolveEnvironment,
} from '../../src/domain/plan.js';
import type {
  Deployment,
  DeploymentStatus,
  DerivedLive,
  Domain,
  EnvironmentSnapshot,
  LiveEntry,
} from '../../src/domain/types.js';

const H = 3_600_000;

function dep(
  id: string,
  createdAt: number,
  over: Partial<Omit<Deployment, 'id' | 'createdAt'>> & { status?: DeploymentStatus } = {},
): Deployment {
  const status = over.status ?? 'ready';
  return {
    id,
    projectId: 'p',
    environment: 'production',
    branch: 'main',
    commit: { sha: `${'0'.repeat(40)}`, message: `commit ${id}`, author: 'dev' },
    createdAt,
    ...(status === 'building' || status === 'failed' ? {} : { readyAt: createdAt + 1 }),
    ...over,
    status,
  };
}

function sha(prefix: string): Deployment['commit'] {
  return { sha: `${prefix}${'0'.repeat(40)}`.slice(0, 40), message: 'commit', author: 'dev' };
}

/** A production snapshot; `deployments` newest first (the platform's order). */
function snapshot(over: {
  deployments: Deployment[];
  current?: string;
  rolledBack?: boolean;
  rolledBackSince?: number;
  rolledBackAt?: number;
  history?: LiveEntry[];
  domains?: Domain[];
  /** A platform without live history (Unkey, Vercel) sets it. */
  derived?: DerivedLive;
}): EnvironmentSnapshot {
  return {
    project: { id: 'p', name: 'shop' },
    environment: {
      slug: 'production',
      kind: 'production',
      projectId: 'p',
      rolledBack: over.rolledBack ?? false,
      ...(over.current === undefined ? {} : { currentDeploymentId: over.current }),
      ...(over.rolledBackSince === undefined ? {} : { rolledBackSince: over.rolledBackSince }),
      ...(over.rolledBackAt === undefined ? {} : { rolledBackAt: over.rolledBackAt }),
    },
    deployments: over.deployments,
    domains: over.domains ?? [
      {
        hostname: 'shop.example.com',
        stickiness: 'live',
        environment: 'production',
        ...(over.current === undefined ? {} : { deploymentId: over.current }),
      },
    ],
    liveHistory: over.history ?? [],
    ...(over.derived === undefined ? {} : { derivedLive: over.derived }),
    readAt: 100 * H,
  };
}

describe('resolveDeployment: the short sha a plan shows names its deployment (found by mutation testing)', () => {
  it('a 7-character commit sha prefix (the short form plans display) resolves', () => {
    const s = snapshot({
      deployments: [
        dep('dep_b', 2 * H, { commit: sha('1234567abc') }),
        dep('dep_a', 1 * H, { commit: sha('7654321abc') }),
      ],
      current: 'dep_b',
    });
    expect(resolveDeployment(s, '7654321')).toMatchObject({ ok: true, value: { id: 'dep_a' } });
    // six characters are too few to be a sha reference
    expect(resolveDeployment(s, '765432').ok).toBe(false);
  });

  it('a reference matching one deployment by both its id and its sha is that deployment, not "2 deployments"', () => {
    const s = snapshot({
      deployments: [
        dep('abcdef12', 2 * H, { commit: sha('abcdef1234') }),
        dep('dep_a', 1 * H, { commit: sha('99') }),
      ],
      current: 'dep_a',
    });
    expect(resolveDeployment(s, 'abcdef1')).toMatchObject({ ok: true, value: { id: 'abcdef12' } });
  });
});

describe('resolveEnvironment (found by mutation testing)', () => {
  it('an exact name wins over its being a prefix of another environment', () => {
    expect(resolveEnvironment(['staging-eu', 'staging'], 'staging')).toEqual({ ok: true, value: 'staging' });
    expect(resolveEnvironment(['staging-eu', 'staging'], 'STAGING')).toEqual({ ok: true, value: 'staging' });
  });

  it('refuses blank input even when there is a single environment', () => {
    const r = resolveEnvironment(['production'], '  ');
    expect(r.ok).toBe(false);
    expect(!r.ok && r.refusal.code).toBe('unknown_environment');
  });
});

describe('resolveEnvironment: a mistyped environment is refused naming the one it looks like', () => {
  const refusal = (slugs: readonly string[], input: string) => {
    const r = resolveEnvironment(slugs, input);
    return r.ok ? `resolved to ${r.value}` : r.refusal.message;
  };
  const slugs = ['production', 'preview', 'qa'];

  it('within two edits (a letter missing, two swapped, another case): "Did you mean …?", never acted on', () => {
    expect(refusal(slugs, 'prodution')).toBe(
      'Unknown environment "prodution". Did you mean production? Valid environments: production, preview, qa.',
    );
    expect(refusal(slugs, 'PORDUCTION')).toContain('Did you mean production?');
    expect(refusal(slugs, 'previwe')).toContain('Did you mean preview?');
  });

  it('no guess past two edits, for a short name changed by half, or when two are as near', () => {
    expect(refusal(slugs, 'staging')).toBe(
      'Unknown environment "staging". Valid environments: production, preview, qa.',
    );
    expect(refusal(slugs, 'produxxxon')).not.toContain('Did you mean');
    expect(refusal(slugs, 'xa')).not.toContain('Did you mean');
    expect(refusal(['eu-1', 'eu-2', 'us-1'], 'eu-3')).not.toContain('Did you mean');
    expect(refusal(['staging-eu1', 'staging-us1'], 'staging-eu2')).toContain('Did you mean staging-eu1?');
  });
});

describe('rolled back to the oldest deployment: the way back the refusal names (found by mutation testing)', () => {
  // Live in turn: d2 (deploy), d3 (deploy), then d1 (a rollback naming it). Nothing is older than d1.
  const history: LiveEntry[] = [
    { deploymentId: 'd2', since: 2 * H, via: 'deploy' },
    { deploymentId: 'd3', since: 3 * H, via: 'deploy' },
    { deploymentId: 'd1', since: 4 * H, via: 'rollback' },
  ];

  it('names the deployment live right before the current one, not an earlier one', () => {
    const s = snapshot({
      deployments: [dep('d3', 3 * H), dep('d2', 2 * H), dep('d1', 1 * H)],
      current: 'd1',
      rolledBack: true,
      history,
    });
    const r = defaultRollbackTarget(s);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.refusal.code).toBe('no_rollback_target');
    expect(r.refusal.message).toContain('use /promote d3.');
    expect(r.refusal.context).toMatchObject({ liveBefore: 'd3' });
  });

  it('never names a stopped deployment (a promote of it would be refused): the one before it instead', () => {
    const s = snapshot({
      deployments: [dep('d3', 3 * H, { status: 'stopped' }), dep('d2', 2 * H), dep('d1', 1 * H)],
      current: 'd1',
      rolledBack: true,
      history,
    });
    const r = defaultRollbackTarget(s);
    expect(!r.ok && r.refusal.message).toContain('use /promote d2.');
    expect(!r.ok && r.refusal.context).toMatchObject({ liveBefore: 'd2' });
  });
});

describe('promote while rolled back: the default never goes further back (found by mutation testing)', () => {
  it('a deployment older than the current one that became ready during the rollback is not the fix: resume', () => {
    // d1 was pushed before d2 but its build finished only after production was rolled back to d2.
    const s = snapshot({
      deployments: [dep('d3', 3 * H), dep('d2', 2 * H), { ...dep('d1', 1 * H), readyAt: 5 * H }],
      current: 'd2',
      rolledBack: true,
      rolledBackSince: 4 * H,
      history: [
        { deploymentId: 'd2', since: 2 * H, via: 'deploy' },
        { deploymentId: 'd3', since: 3 * H, via: 'deploy' },
        { deploymentId: 'd2', since: 4 * H, via: 'rollback' },
      ],
    });
    expect(defaultPromoteTarget(s)).toMatchObject({ ok: true, value: { id: 'd2' } });
    const plan = buildPlan(s, { action: 'promote', now: 6 * H });
    expect(plan.ok && plan.value.resumesAutoDeploys).toBe(true);
  });
});

describe('promote while rolled back: never the deployment rolled back from, even one made during the rollback (found by mutation testing)', () => {
  it('a fix that went live during the rollback and was rolled back from again is not the default: resume', () => {
    // Rolled back from d3 to d2 at 4h; the fix d4 (ready at 5h) was switched to by name, then rolled
    // back from as well: d4 is the deployment rolled back from, not a fix nobody tried.
    const s = snapshot({
      deployments: [dep('d4', 5 * H - 1), dep('d3', 3 * H), dep('d2', 2 * H)],
      current: 'd2',
      rolledBack: true,
      rolledBackSince: 4 * H,
      history: [
        { deploymentId: 'd2', since: 2 * H, via: 'deploy' },
        { deploymentId: 'd3', since: 3 * H, via: 'deploy' },
        { deploymentId: 'd2', since: 4 * H, via: 'rollback' },
        { deploymentId: 'd4', since: 5.5 * H, via: 'rollback' },
        { deploymentId: 'd2', since: 6 * H, via: 'rollback' },
      ],
    });
    expect(defaultPromoteTarget(s)).toMatchObject({ ok: true, value: { id: 'd2' } });
  });
});

describe('promote while rolled back: "became ready since the rollback" (found by mutation testing)', () => {
  // Rolled back from d3 to d2 at 4h.
  const history: LiveEntry[] = [
    { deploymentId: 'd2', since: 2 * H, via: 'deploy' },
    { deploymentId: 'd3', since: 3 * H, via: 'deploy' },
    { deploymentId: 'd2', since: 4 * H, via: 'rollback' },
  ];
  const rolledBack = (fix: Deployment) =>
    snapshot({
      deployments: [fix, dep('d3', 3 * H), dep('d2', 2 * H)],
      current: 'd2',
      rolledBack: true,
      rolledBackSince: 4 * H,
      history,
    });

  it('counts a fix pushed before the rollback whose build finished after it (readyAt, not createdAt)', () => {
    const fix = { ...dep('d4', 3.5 * H), readyAt: 4.5 * H };
    expect(defaultPromoteTarget(rolledBack(fix))).toMatchObject({ ok: true, value: { id: 'd4' } });
  });

  it('counts a fix that became ready in the very millisecond of the rollback', () => {
    const fix = { ...dep('d4', 3.5 * H), readyAt: 4 * H };
    expect(defaultPromoteTarget(rolledBack(fix))).toMatchObject({ ok: true, value: { id: 'd4' } });
  });

  it('not one that was ready before the rollback (it was there to choose, and was not)', () => {
    const old = { ...dep('d4', 3.5 * H), readyAt: 4 * H - 1 };
    expect(defaultPromoteTarget(rolledBack(old))).toMatchObject({ ok: true, value: { id: 'd2' } });
  });
});

describe("the default promote is one of the environment's own deployments (found by mutation testing)", () => {
  it("skips another environment's deployment a snapshot lists (defensive: adapters list one environment)", () => {
    const s = snapshot({
      deployments: [dep('px', 5 * H, { environment: 'preview' }), dep('d4', 4 * H), dep('d3', 3 * H)],
      current: 'd3',
      history: [{ deploymentId: 'd3', since: 3 * H, via: 'deploy' }],
    });
    expect(defaultPromoteTarget(s)).toMatchObject({ ok: true, value: { id: 'd4' } });
    expect(buildPlan(s, { action: 'promote', now: 6 * H })).toMatchObject({
      ok: true,
      value: { target: { id: 'd4' } },
    });
  });
});

describe('affected domains: a branch domain whose branch is not known (found by mutation testing)', () => {
  it('moves with the current deployment (a local state file may leave out its branch)', () => {
    const s = snapshot({
      deployments: [dep('d2', 2 * H), dep('d1', 1 * H, { branch: 'release' })],
      current: 'd2',
      history: [
        { deploymentId: 'd1', since: 1 * H, via: 'deploy' },
        { deploymentId: 'd2', since: 2 * H, via: 'deploy' },
      ],
      domains: [
        { hostname: 'shop.example.com', stickiness: 'live', environment: 'production', deploymentId: 'd2' },
        { hostname: 'next.shop.app', stickiness: 'branch', environment: 'production', deploymentId: 'd2' },
      ],
    });
    const plan = buildPlan(s, { action: 'rollback', now: 3 * H });
    expect(plan.ok && plan.value.affectedDomains.map((d) => d.hostname)).toEqual([
      'shop.example.com',
      'next.shop.app',
    ]);
  });
});

describe("a promote moves its branch's domain when the target is the branch's newest ready deployment (found by mutation testing)", () => {
  // Rolled back from y1 (feature) to d4 (main); y1's branch domain stayed on y1. y2, feature's fix, is
  // ready; y3, pushed after it, is still building (or failed) and cannot take traffic.
  const feature = (id: string, at: number, status: DeploymentStatus = 'ready') =>
    dep(id, at, { branch: 'feature', status });
  const rolledBack = (y3: Deployment, featureDomainOn = 'y1') =>
    snapshot({
      deployments: [y3, feature('y2', 6 * H), feature('y1', 5 * H), dep('d4', 4 * H)],
      current: 'd4',
      rolledBack: true,
      rolledBackSince: 5.5 * H,
      history: [
        { deploymentId: 'd4', since: 4 * H, via: 'deploy' },
        { deploymentId: 'y1', since: 5 * H, via: 'deploy' },
        { deploymentId: 'd4', since: 5.5 * H, via: 'rollback' },
      ],
      domains: [
        { hostname: 'shop.example.com', stickiness: 'live', environment: 'production', deploymentId: 'd4' },
        {
          hostname: 'feature.shop.app',
          stickiness: 'branch',
          environment: 'production',
          branch: 'feature',
          deploymentId: featureDomainOn,
        },
      ],
    });
  const hosts = (s: EnvironmentSnapshot) => {
    const r = buildPlan(s, { action: 'promote', target: 'y2', now: 8 * H });
    if (!r.ok) throw new Error(r.refusal.message);
    return r.value.affectedDomains.map((d) => d.hostname);
  };

  it.each(['building', 'failed'] as const)(
    'a newer %s deployment of the branch does not keep the domain from the fix',
    (status) => {
      expect(hosts(rolledBack(feature('y3', 7 * H, status)))).toEqual([
        'shop.example.com',
        'feature.shop.app',
      ]);
    },
  );

  it('a branch domain already on the target is not listed as moving', () => {
    expect(hosts(rolledBack(feature('y3', 7 * H, 'building'), 'y2'))).toEqual(['shop.example.com']);
  });

  it("never another environment's domain of the same branch", () => {
    const s = rolledBack(feature('y3', 7 * H, 'building'));
    const withPreview: EnvironmentSnapshot = {
      ...s,
      domains: [
        ...s.domains,
        {
          hostname: 'feature.preview.shop.app',
          stickiness: 'branch',
          environment: 'preview',
          branch: 'feature',
          deploymentId: 'px',
        },
      ],
    };
    expect(hosts(withPreview)).toEqual(['shop.example.com', 'feature.shop.app']);
  });
});

describe('buildPlan: a blank target reference is no reference (found by mutation testing)', () => {
  it('plans the default target instead of refusing "matches every deployment"', () => {
    const s = snapshot({
      deployments: [dep('d2', 2 * H), dep('d1', 1 * H)],
      current: 'd2',
      history: [
        { deploymentId: 'd1', since: 1 * H, via: 'deploy' },
        { deploymentId: 'd2', since: 2 * H, via: 'deploy' },
      ],
    });
    expect(buildPlan(s, { action: 'rollback', target: '  ', now: 3 * H })).toMatchObject({
      ok: true,
      value: { target: { id: 'd1' } },
    });
  });
});

describe('a plan made while rolled back expects the environment to still be rolled back (found by mutation testing)', () => {
  it('its own expectation passes the freshness check, and a promote meanwhile makes it stale', () => {
    const s = snapshot({
      deployments: [dep('d3', 3 * H), dep('d2', 2 * H), dep('d1', 1 * H)],
      current: 'd2',
      rolledBack: true,
      rolledBackSince: 4 * H,
      history: [
        { deploymentId: 'd2', since: 2 * H, via: 'deploy' },
        { deploymentId: 'd3', since: 3 * H, via: 'deploy' },
        { deploymentId: 'd2', since: 4 * H, via: 'rollback' },
      ],
    });
    for (const action of ['rollback', 'promote'] as const) {
      const built = buildPlan(s, { action, now: 5 * H });
      if (!built.ok) throw new Error(built.refusal.message);
      const plan = built.value;
      expect(plan.expectedRolledBack).toBe(true);
      const expectation = {
        action,
        environment: plan.environment,
        targetId: plan.target.id,
        expectedCurrent: plan.expectedCurrent,
        expectedRolledBack: plan.expectedRolledBack,
      };
      expect(checkFresh(expectation, s).ok).toBe(true);
      const promoted = { ...s, environment: { ...s.environment, rolledBack: false } };
      expect(checkFresh(expectation, promoted)).toMatchObject({ ok: false, refusal: { code: 'plan_stale' } });
    }
  });
});

describe('isAlreadyDone: a rollback is done only while the environment is rolled back (found by mutation testing)', () => {
  it('a rollback whose target is current but was promoted since (not rolled back) is not done', () => {
    const expect_ = {
      action: 'rollback' as const,
      environment: 'production',
      targetId: 'd2',
      expectedCurrent: 'd3',
      expectedRolledBack: false,
    };
    const promoted = snapshot({ deployments: [dep('d3', 3 * H), dep('d2', 2 * H)], current: 'd2' });
    expect(isAlreadyDone(expect_, promoted)).toBe(false);
    expect(
      isAlreadyDone(expect_, { ...promoted, environment: { ...promoted.environment, rolledBack: true } }),
    ).toBe(true);
  });
});

describe('lists of deployment ids in refusals are never cut silently', () => {
  // plan.ts resolveDeployment(): `listIds(matches, 5)` named 5 of 6 matches, and "Recent deployments"
  // 10 of however many, without a word.
  const many = (n: number) =>
    Array.from({ length: n }, (_, k) =>
      dep(`dep_${String(n - k).padStart(2, '0')}`, (n - k) * H, { commit: sha(`a${n - k}`) }),
    );

  it('a prefix matching 6 deployments names 5 and says one more', () => {
    const s = snapshot({ deployments: many(6), current: 'dep_06' });
    const r = resolveDeployment(s, 'dep_');
    expect(!r.ok && r.refusal.message).toBe(
      '"dep_" matches 6 deployments in production (dep_06, dep_05, dep_04, dep_03, dep_02, …and 1 more); give more characters.',
    );
  });

  it('an unknown deployment names the 10 newest and how many more there are (a lower bound when the platform listed only some)', () => {
    const s = snapshot({ deployments: many(12), current: 'dep_12' });
    const r = resolveDeployment(s, 'dep_nope');
    expect(!r.ok && r.refusal.message).toBe(
      'No deployment "dep_nope" in production. Recent deployments: dep_12, dep_11, dep_10, dep_09, dep_08, dep_07, dep_06, dep_05, dep_04, dep_03, …and 2 more.',
    );
    const cut = resolveDeployment({ ...s, deploymentsTruncated: true }, 'dep_nope');
    expect(!cut.ok && cut.refusal.message).toContain('dep_03, …and 2+ more.');
    // Exactly 10: nothing left out, nothing added.
    const ten = resolveDeployment(snapshot({ deployments: many(10), current: 'dep_10' }), 'dep_nope');
    expect(!ten.ok && ten.refusal.message).toMatch(/dep_01\.$/);
  });
});

describe('a failed build is refused as failed, not as "not ready"', () => {
  it('says the build failed and what to do, with its own code', () => {
    // plan.ts checkTarget(): "dep_x … is failed, not ready" for a build that never will be.
    const s = snapshot({
      deployments: [dep('dep_b', 2 * H, { status: 'failed' }), dep('dep_a', H)],
      current: 'dep_a',
    });
    const r = checkTarget(s, 'promote', dep('dep_b', 2 * H, { status: 'failed' }));
    expect(r?.code).toBe('target_not_ready');
    expect(r?.message).toBe(
      'The build of dep_b (0000000 main) failed, so it will never be ready to take traffic. Push a fix, or pick a ready or standby deployment (/deployments production lists them).',
    );
    expect(r?.message).not.toContain('not ready');
    // A build still running is "not ready" (it may become ready).
    expect(checkTarget(s, 'promote', dep('dep_c', 3 * H, { status: 'building' }))?.code).toBe(
      'target_not_ready',
    );
  });
});

describe("a platform without live history: Switchyard's own record stands in for it", () => {
  // Unkey or Vercel: no live history, and the platform's state tells nothing of how d4 went live.
  const unknown: DerivedLive = { platform: 'Unkey', unknown: 'it may have been promoted' };
  const rollback = (fromId: string, targetId: string, at: number): OwnSwitch => ({
    action: 'rollback',
    fromId,
    targetId,
    at,
  });
  const promote = (fromId: string, targetId: string, at: number): OwnSwitch => ({
    action: 'promote',
    fromId,
    targetId,
    at,
  });

  it('a plan on a platform with live history ignores the record (the local platform plans as it did)', () => {
    const s = snapshot({
      deployments: [dep('d3', 3 * H), dep('d2', 2 * H), dep('d1', 1 * H)],
      current: 'd3',
      history: [
        { deploymentId: 'd2', since: 2 * H, via: 'deploy' },
        { deploymentId: 'd3', since: 3 * H, via: 'deploy' },
      ],
      derived: unknown,
    });
    const ownRecord = { rolledBackFrom: new Set(['d2']), liveBefore: 'd1' };
    const plan = buildPlan(s, { action: 'rollback', now: 4 * H, ownRecord });
    expect(plan.ok && plan.value.target.id).toBe('d2');
    expect(plan.ok && plan.value.targetRolledBackFrom).toBeUndefined();
  });

  it('a push that became ready after the resume, before the current one, leaves "live before" unclaimed: the newest older one', () => {
    // Rolled back from d2 to d1, resumed on d1 at 4h; d3 and then d4 were pushed and went live in turn.
    const s = snapshot({
      deployments: [dep('d4', 6 * H), dep('d3', 5 * H), dep('d2', 2 * H), dep('d1', 1 * H)],
      current: 'd4',
      derived: unknown,
    });
    const own = ownRecordOf(s, [rollback('d2', 'd1', 3 * H), promote('d1', 'd1', 4 * H)]);
    expect(own.liveBefore).toBeUndefined();
    const plan = buildPlan(s, { action: 'rollback', now: 7 * H, ownRecord: own });
    expect(plan.ok && plan.value.target.id).toBe('d3');
  });

  it('after a resume, a push going live went live replacing the deployment resumed on, though the platform dates the one rolled back from later', () => {
    // Rolled back from d2 to d1 at 3h; d3 pushed while rolled back (ready at 4h, never live); resumed
    // on d1 at 5h; Unkey wrote d2 again at 5.5h; d4 pushed at 6h went live.
    const s = snapshot({
      deployments: [
        dep('d4', 6 * H),
        { ...dep('d3', 3.5 * H), readyAt: 4 * H },
        { ...dep('d2', 2 * H), readyAt: 5.5 * H },
        dep('d1', 1 * H),
      ],
      current: 'd4',
      derived: unknown,
    });
    const own = ownRecordOf(s, [rollback('d2', 'd1', 3 * H), promote('d1', 'd1', 5 * H)]);
    expect(own.liveBefore).toBe('d1');
    const plan = buildPlan(s, { action: 'rollback', now: 7 * H, ownRecord: own });
    expect(plan.ok && plan.value.target.id).toBe('d1');
  });

  it("a promote of Switchyard's to the current deployment says what was live before it", () => {
    // Rolled back from d3 to d1 (by name) at 4h; the fix d4 promoted from d1 at 6h.
    const s = snapshot({
      deployments: [dep('d4', 5 * H), dep('d3', 3 * H), dep('d2', 2 * H), dep('d1', 1 * H)],
      current: 'd4',
      derived: unknown,
    });
    const own = ownRecordOf(s, [rollback('d3', 'd1', 4 * H), promote('d1', 'd4', 6 * H)]);
    expect(own.liveBefore).toBe('d1');
    const plan = buildPlan(s, { action: 'rollback', now: 7 * H, ownRecord: own });
    expect(plan.ok && plan.value.target.id).toBe('d1');
  });

  it("a current deployment pushed before Switchyard's last promote went live by a move outside Switchyard: nothing claimed", () => {
    // Rolled back from d3 to d0 (by name) at 4h, resumed on d0 at 5h; d2 (pushed at 2h) is current
    // now: someone promoted it in the dashboard.
    const s = snapshot({
      deployments: [dep('d3', 3 * H), dep('d2', 2 * H), dep('d1', 1 * H), dep('d0', 0.5 * H)],
      current: 'd2',
      derived: unknown,
    });
    const own = ownRecordOf(s, [rollback('d3', 'd0', 4 * H), promote('d0', 'd0', 5 * H)]);
    expect(own.liveBefore).toBeUndefined();
    const plan = buildPlan(s, { action: 'rollback', now: 7 * H, ownRecord: own });
    expect(plan.ok && plan.value.target.id).toBe('d1');
  });

  it('the platform naming another deployment live before than the record does leaves it unclaimed', () => {
    // The record says d4 went live after Switchyard resumed on d0; Vercel says it replaced d1 (a move
    // outside Switchyard): neither is taken, but the newest older deployment not rolled back from.
    const s = snapshot({
      deployments: [
        dep('d4', 6 * H),
        dep('d3', 3 * H),
        dep('d2', 2 * H),
        dep('d1', 1 * H),
        dep('d0', 0.5 * H),
      ],
      current: 'd4',
      derived: {
        platform: 'Vercel',
        current: { deploymentId: 'd4', via: 'deploy', notBefore: 6 * H, notAfter: 6 * H, previous: 'd1' },
      },
    });
    const own = { rolledBackFrom: new Set(['d3']), liveBefore: 'd0' };
    const plan = buildPlan(s, { action: 'rollback', now: 7 * H, ownRecord: own });
    expect(plan.ok && plan.value.target.id).toBe('d2');
    // Agreeing, they are taken.
    expect(defaultRollbackTarget(s, { ...own, liveBefore: 'd1' })).toMatchObject({
      ok: true,
      value: { id: 'd1' },
    });
  });

  it("a second rollback of Switchyard's further back continues the period: a fix ready between the two is found", () => {
    // Rolled back from d3 to d2 at 4h, from d2 to d1 at 6h; the fix d4 became ready at 5h.
    const s = snapshot({
      deployments: [dep('d4', 5 * H - 1), dep('d3', 3 * H), dep('d2', 2 * H), dep('d1', 1 * H)],
      current: 'd1',
      rolledBack: true,
      derived: unknown,
    });
    const own = ownRecordOf(s, [rollback('d3', 'd2', 4 * H), rollback('d2', 'd1', 6 * H)]);
    expect(own.rolledBackSince).toBe(4 * H);
    // Rolled back to d1 at 6h, as a platform's `rolledBackAt` says it (reminders count from it).
    expect(own.rolledBackAt).toBe(6 * H);
    const plan = buildPlan(s, { action: 'promote', now: 7 * H, ownRecord: own });
    expect(plan.ok && plan.value.target.id).toBe('d4');
  });

  it("a rollback the platform dates after Switchyard's is not Switchyard's: promote resumes", () => {
    // Vercel's last alias job rolled production back to d1 at 5h, after Switchyard's at 4h (someone
    // promoted and rolled back in the dashboard since): since when is not Switchyard's to say.
    const s = snapshot({
      deployments: [dep('d3', 4.5 * H), dep('d2', 2 * H), dep('d1', 1 * H)],
      current: 'd1',
      rolledBack: true,
      derived: {
        platform: 'Vercel',
        current: { deploymentId: 'd1', via: 'rollback', notBefore: 5 * H, notAfter: 5 * H, previous: 'd3' },
      },
    });
    const own = ownRecordOf(s, [rollback('d2', 'd1', 4 * H)]);
    expect(own.rolledBackSince).toBeUndefined();
    const plan = buildPlan(s, { action: 'promote', now: 6 * H, ownRecord: own });
    expect(plan.ok && plan.value.resumesAutoDeploys).toBe(true);
  });

  it('promote while rolled back: the deployment rolled back from is not the fix, though the platform dates it ready since', () => {
    // Switchyard rolled back from d2 to d1 at 4h; Unkey wrote d2 again at 5h (its `readyAt` is
    // `updatedAt`, an upper bound), so d2 reads as ready since the rollback, like a fix.
    const s = snapshot({
      deployments: [{ ...dep('d2', 2 * H), readyAt: 5 * H }, dep('d1', 1 * H)],
      current: 'd1',
      rolledBack: true,
      derived: unknown,
    });
    const own = ownRecordOf(s, [rollback('d2', 'd1', 4 * H)]);
    expect(own.rolledBackSince).toBe(4 * H);
    const plan = buildPlan(s, { action: 'promote', now: 6 * H, ownRecord: own });
    expect(plan.ok && plan.value.resumesAutoDeploys).toBe(true);
  });

  it('a deployment Switchyard switched to again since it rolled back from it is no longer passed over', () => {
    // Rolled back from d2, then promoted d2 again (a person judged it good); d3 went live after it.
    const s = snapshot({
      deployments: [dep('d3', 6 * H), dep('d2', 2 * H), dep('d1', 1 * H)],
      current: 'd3',
      derived: unknown,
    });
    const own = ownRecordOf(s, [rollback('d2', 'd1', 3 * H), promote('d1', 'd2', 4 * H)]);
    expect([...own.rolledBackFrom]).toEqual([]);
    expect(own.liveBefore).toBe('d2');
    const plan = buildPlan(s, { action: 'rollback', now: 7 * H, ownRecord: own });
    expect(plan.ok && plan.value.target.id).toBe('d2');
  });
});
