/**
 * The pure Vercel → Switchyard mapping: readyState → status (no standby on Vercel), a deployment's
 * environment, the rolled-back flag, git metadata → commit, and which domains count as live,
 * environment and branch domains and the deployment each points to.
 */
import { describe, expect, it } from 'vitest';
import {
  branchOf,
  classifyDomain,
  classifyDomains,
  commitOf,
  currentProductionId,
  environmentOf,
  isKnownReadyState,
  isRolledBack,
  mapReadyState,
  toDeployment,
} from '../../src/platform/vercel/mapping.js';
import {
  AliasResponseSchema,
  aliasFromResponse,
  GetDeploymentResponseSchema,
  ListDeploymentsResponseSchema,
  type VercelDeployment,
  type VercelProjectDomain,
  vercelReadyStates,
} from '../../src/platform/vercel/schemas.js';

function dep(p: Partial<VercelDeployment> & { id: string }): VercelDeployment {
  return {
    url: `${p.id}.vercel.app`,
    readyState: 'READY',
    target: 'production',
    createdAt: 1_000,
    meta: {},
    ...p,
  };
}

function domain(name: string, p: Partial<VercelProjectDomain> = {}): VercelProjectDomain {
  return { name, apexName: name, projectId: 'prj_1', verified: true, ...p };
}

describe('mapReadyState', () => {
  it('maps every documented readyState; a live one is never standby or stopped', () => {
    const mapped = Object.fromEntries(vercelReadyStates.map((s) => [s, mapReadyState(s)]));
    expect(mapped).toEqual({
      QUEUED: 'building',
      BUILDING: 'building',
      INITIALIZING: 'building',
      // Blocked (e.g. waiting for the commit author to be authorized or for checks): it never became
      // ready and may still build, like a queued one.
      BLOCKED: 'building',
      READY: 'ready',
      ERROR: 'failed',
      CANCELED: 'failed',
      // Gone; the adapter does not list deleted deployments at all.
      DELETED: 'stopped',
    });
  });

  it('maps a readyState Vercel adds later to a safe status that no plan switches to', () => {
    expect(mapReadyState('ARCHIVED')).toBe('building');
    expect(isKnownReadyState('ARCHIVED')).toBe(false);
    expect(isKnownReadyState('BLOCKED')).toBe(true);
    const d = toDeployment(dep({ id: 'dpl_new', readyState: 'ARCHIVED' }), 'p');
    expect(d.status).toBe('building');
    expect(d.readyAt).toBeUndefined();
    expect(d.statusReason).toContain('"ARCHIVED"');
    expect(toDeployment(dep({ id: 'dpl_b', readyState: 'BLOCKED' }), 'p').statusReason).toContain(
      'Vercel blocked it',
    );
  });
});

describe('deployment list schema', () => {
  const listed = (state: string) => ({
    uid: `dpl_${state}`,
    url: `x-${state}.vercel.app`,
    created: 1_000,
    state,
    readyState: state,
    target: 'production',
    type: 'LAMBDAS',
  });
  it('accepts BLOCKED, DELETED and states it does not know instead of failing the whole page', () => {
    const page = ListDeploymentsResponseSchema.parse({
      deployments: ['READY', 'BLOCKED', 'DELETED', 'SOMETHING_NEW'].map(listed),
      pagination: { count: 4, next: null, prev: null },
    });
    expect(page.deployments.map((d) => d.readyState)).toEqual([
      'READY',
      'BLOCKED',
      'DELETED',
      'SOMETHING_NEW',
    ]);
    expect(
      GetDeploymentResponseSchema.parse({
        id: 'dpl_b',
        url: 'b.vercel.app',
        readyState: 'BLOCKED',
        projectId: 'prj_1',
        createdAt: 1,
      }).readyState,
    ).toBe('BLOCKED');
  });
});

describe('project state', () => {
  it('is rolled back only while autoAssignCustomDomains is false (absent means not rolled back)', () => {
    expect(isRolledBack({ autoAssignCustomDomains: false })).toBe(true);
    expect(isRolledBack({ autoAssignCustomDomains: true })).toBe(false);
    expect(isRolledBack({})).toBe(false);
  });

  it('reads the current production deployment from targets.production', () => {
    expect(currentProductionId({ targets: { production: { id: 'dpl_a' } } })).toBe('dpl_a');
    expect(currentProductionId({ targets: { production: null } })).toBeUndefined();
    expect(currentProductionId({ targets: null })).toBeUndefined();
    expect(currentProductionId({})).toBeUndefined();
  });

  it('puts target production in production and everything else in preview', () => {
    expect(environmentOf({ target: 'production' })).toBe('production');
    expect(environmentOf({ target: null })).toBe('preview');
    expect(environmentOf({ target: 'staging' })).toBe('preview');
  });
});

describe('toDeployment', () => {
  it('takes the commit from GitHub metadata and readyAt from ready', () => {
    const d = toDeployment(
      dep({
        id: 'dpl_a',
        createdAt: 1_000,
        ready: 1_500,
        meta: {
          githubCommitSha: 'abc1234def',
          githubCommitMessage: 'Fix checkout',
          githubCommitAuthorName: 'Ada',
          githubCommitAuthorLogin: 'ada',
          githubCommitRef: 'main',
        },
      }),
      'prj_1',
    );
    expect(d).toEqual({
      id: 'dpl_a',
      projectId: 'prj_1',
      environment: 'production',
      branch: 'main',
      commit: { sha: 'abc1234def', message: 'Fix checkout', author: 'Ada' },
      createdAt: 1_000,
      readyAt: 1_500,
      status: 'ready',
    });
  });

  it('falls back to the login, other git providers, and empty fields', () => {
    expect(commitOf({ meta: { githubCommitSha: 's', githubCommitAuthorLogin: 'ada' } }).author).toBe('ada');
    expect(commitOf({ meta: { gitlabCommitSha: 'g1', gitlabCommitRef: 'dev' } }).sha).toBe('g1');
    expect(branchOf({ meta: { gitlabCommitRef: 'dev' } })).toBe('dev');
    expect(commitOf({ meta: {} })).toEqual({ sha: '', message: '', author: '' });
  });

  it('has no readyAt while building or after an error', () => {
    expect(toDeployment(dep({ id: 'b', readyState: 'BUILDING' }), 'p').readyAt).toBeUndefined();
    expect(toDeployment(dep({ id: 'e', readyState: 'ERROR' }), 'p')).toMatchObject({ status: 'failed' });
    expect(toDeployment(dep({ id: 'r' }), 'p').readyAt).toBe(1_000);
  });
});

describe('domains', () => {
  it('classifies custom, vercel.app, branch, redirect and custom-environment domains', () => {
    expect(classifyDomain(domain('shop.acme.com'), 'main')).toEqual({
      environment: 'production',
      stickiness: 'live',
    });
    expect(classifyDomain(domain('acme-web.vercel.app'), 'main')).toEqual({
      environment: 'production',
      stickiness: 'environment',
    });
    expect(classifyDomain(domain('staging.acme.com', { gitBranch: 'staging' }), 'main')).toEqual({
      environment: 'preview',
      stickiness: 'branch',
      branch: 'staging',
    });
    // A domain bound to the production branch is a production domain.
    expect(classifyDomain(domain('www.acme.com', { gitBranch: 'main' }), 'main')?.environment).toBe(
      'production',
    );
    expect(classifyDomain(domain('acme.com', { redirect: 'www.acme.com' }), 'main')).toBeUndefined();
    expect(classifyDomain(domain('qa.acme.com', { customEnvironmentId: 'env_1' }), 'main')).toBeUndefined();
  });

  it('leaves out domains awaiting verification: Vercel uses them as no alias until verified', () => {
    for (const d of [
      domain('pending.acme.com', { verified: false }),
      domain('acme-web-pending.vercel.app', { verified: false }),
      domain('qa.acme.com', { gitBranch: 'qa', verified: false }),
    ]) {
      expect(classifyDomain(d, 'main'), d.name).toBeUndefined();
    }
    const opts = { currentProductionId: 'dpl_cur', previewDeployments: [], productionBranch: 'main' };
    expect(
      classifyDomains(
        [domain('shop.acme.com'), domain('pending.acme.com', { verified: false })],
        'production',
        opts,
      ).map((d) => d.hostname),
    ).toEqual(['shop.acme.com']);
  });

  it('points production domains at the current deployment and branch domains at their newest ready one', () => {
    const all = [
      domain('shop.acme.com'),
      domain('acme-web.vercel.app'),
      domain('SHOP.acme.com'),
      domain('staging.acme.com', { gitBranch: 'staging' }),
      domain('nobody.acme.com', { gitBranch: 'gone' }),
    ];
    const previews = [
      dep({ id: 'p_old', target: null, createdAt: 1, meta: { githubCommitRef: 'staging' } }),
      dep({ id: 'p_new', target: null, createdAt: 3, meta: { githubCommitRef: 'staging' } }),
      dep({
        id: 'p_building',
        target: null,
        createdAt: 5,
        readyState: 'BUILDING',
        meta: { githubCommitRef: 'staging' },
      }),
    ];
    const opts = { currentProductionId: 'dpl_cur', previewDeployments: previews, productionBranch: 'main' };
    expect(classifyDomains(all, 'production', opts)).toEqual([
      { hostname: 'shop.acme.com', stickiness: 'live', environment: 'production', deploymentId: 'dpl_cur' },
      {
        hostname: 'acme-web.vercel.app',
        stickiness: 'environment',
        environment: 'production',
        deploymentId: 'dpl_cur',
      },
    ]);
    expect(classifyDomains(all, 'preview', opts)).toEqual([
      {
        hostname: 'staging.acme.com',
        stickiness: 'branch',
        environment: 'preview',
        branch: 'staging',
        deploymentId: 'p_new',
      },
      { hostname: 'nobody.acme.com', stickiness: 'branch', environment: 'preview', branch: 'gone' },
    ]);
  });
});

describe('alias answer', () => {
  const one = { alias: 'shop.acme.com', uid: 'a_1', deploymentId: 'dpl_1', projectId: 'prj_1', created: 'x' };
  it('accepts the documented object and an array of one; picks the requested name', () => {
    expect(aliasFromResponse(AliasResponseSchema.parse(one), 'shop.acme.com')?.deploymentId).toBe('dpl_1');
    expect(aliasFromResponse(AliasResponseSchema.parse([one]), 'shop.acme.com')?.deploymentId).toBe('dpl_1');
    expect(aliasFromResponse(AliasResponseSchema.parse([one]), 'SHOP.acme.com.')?.deploymentId).toBe('dpl_1');
    const two = [{ ...one, alias: 'www.acme.com', deploymentId: 'dpl_0' }, one];
    expect(aliasFromResponse(AliasResponseSchema.parse(two), 'shop.acme.com')?.deploymentId).toBe('dpl_1');
    expect(aliasFromResponse(AliasResponseSchema.parse(two), 'api.acme.com')).toBeUndefined();
    expect(aliasFromResponse(AliasResponseSchema.parse([]), 'shop.acme.com')).toBeUndefined();
    // A redirect has no deployment.
    expect(
      aliasFromResponse(AliasResponseSchema.parse({ ...one, deploymentId: null }), 'shop.acme.com')
        ?.deploymentId,
    ).toBeNull();
  });

  it('still rejects an answer of neither shape', () => {
    expect(AliasResponseSchema.safeParse({ alias: 'shop.acme.com' }).success).toBe(false);
    expect(AliasResponseSchema.safeParse([{ uid: 'a_1' }]).success).toBe(false);
  });
});
