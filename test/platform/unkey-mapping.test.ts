/**
 * Unit tests of the pure Unkey → domain mapping: every status, the rolled-back signal, hostname
 * stickiness and the schemas' handling of documented and newer answer shapes.
 */
import { describe, expect, it } from 'vitest';
import {
  branchSlug,
  classifyDomains,
  classifyHostname,
  isRolledBack,
  mapStatus,
  toDeployment,
} from '../../src/platform/unkey/mapping.js';
import {
  type UnkeyDeployment,
  UnkeyDeploymentSchema,
  unkeyDeploymentStatuses,
} from '../../src/platform/unkey/schemas.js';

function dep(over: Partial<UnkeyDeployment> = {}): UnkeyDeployment {
  return {
    id: 'd_abc123',
    status: 'ready',
    isCurrent: false,
    environment: 'production',
    app: 'api',
    project: 'acme',
    git: { commitSha: '9f2c1a7d3b0000000000', branch: 'feature/Login_Page' },
    availableActions: [],
    regions: [],
    domains: [],
    createdAt: 1_000,
    ...over,
  };
}

describe('mapStatus', () => {
  it('maps every documented Unkey status', () => {
    const expected: Record<(typeof unkeyDeploymentStatuses)[number], string> = {
      pending: 'building',
      starting: 'building',
      building: 'building',
      deploying: 'building',
      network: 'building',
      finalizing: 'building',
      awaiting_approval: 'building',
      ready: 'ready',
      failed: 'failed',
      cancelled: 'failed',
      skipped: 'failed',
      stopped: 'stopped',
      superseded: 'failed',
    };
    for (const status of unkeyDeploymentStatuses) {
      // The current deployment: `ready` means serving whatever Unkey offers on it.
      expect(mapStatus({ status, availableActions: [], isCurrent: true }), status).toBe(expected[status]);
    }
  });

  it('maps a status Unkey adds later to building (never a target), naming the status', () => {
    for (const isCurrent of [true, false]) {
      const d = dep({ status: 'hibernating', isCurrent, availableActions: ['promote', 'rollback'] });
      expect(mapStatus(d)).toBe('building');
      const mapped = toDeployment(d, 'production');
      expect(mapped.status).toBe('building');
      expect(mapped.readyAt).toBeUndefined();
      expect(mapped.statusReason).toContain('Unkey reports status "hibernating"');
    }
  });

  it('superseded is a queued build replaced by a newer commit: failed, never standby or stopped', () => {
    for (const availableActions of [[], ['promote', 'rollback']] as const) {
      expect(
        mapStatus({ status: 'superseded', availableActions: [...availableActions], isCurrent: false }),
      ).toBe('failed');
    }
  });

  it('a ready deployment Unkey offers no rollback, promote or stop on is being shut down: stopped, with why', () => {
    // actions.go: a non-current production deployment offers promote+rollback exactly while it is ready,
    // its desired state is running and the app has a current deployment; a preview one offers stop.
    const shuttingDown = dep({ status: 'ready', isCurrent: false, availableActions: [] });
    expect(mapStatus(shuttingDown)).toBe('stopped');
    const mapped = toDeployment(shuttingDown, 'production');
    expect(mapped.status).toBe('stopped');
    expect(mapped.statusReason).toMatch(/Unkey offers no rollback or promote to it right now/);
    expect(mapped.statusReason).toMatch(/30 minutes/);
    expect(mapped.statusReason).toMatch(/deployment_not_ready/);

    expect(mapStatus(dep({ availableActions: ['promote', 'rollback'] }))).toBe('ready');
    expect(mapStatus(dep({ environment: 'preview', availableActions: ['stop'] }))).toBe('ready');
    expect(mapStatus(dep({ isCurrent: true, availableActions: [] }))).toBe('ready');
    expect(
      toDeployment(dep({ availableActions: ['promote', 'rollback'] }), 'p').statusReason,
    ).toBeUndefined();
    // Unkey also offers nothing while its production app has no current deployment: nothing tells
    // "shutting down" apart from that, so the caller says when the actions mean "running".
    expect(mapStatus(shuttingDown, false)).toBe('ready');
  });

  it('a stopped production deployment says Unkey does not start it again', () => {
    const stopped = toDeployment(dep({ status: 'stopped', availableActions: [] }), 'production');
    expect(stopped.status).toBe('stopped');
    expect(stopped.statusReason).toMatch(/does not start a production deployment again/);
    // A stopped preview deployment can be started on Unkey (`start`): no production reason.
    const preview = toDeployment(dep({ status: 'stopped', availableActions: ['start'] }), 'preview');
    expect(preview.statusReason).toBeUndefined();
  });
});

describe('isRolledBack', () => {
  it('is true exactly when the current deployment offers promote', () => {
    expect(isRolledBack(dep({ isCurrent: true, availableActions: ['promote'] }))).toBe(true);
    expect(isRolledBack(dep({ isCurrent: true, availableActions: [] }))).toBe(false);
    expect(isRolledBack(dep({ isCurrent: false, availableActions: ['promote', 'rollback'] }))).toBe(false);
    expect(isRolledBack(undefined)).toBe(false);
  });
});

describe('hostname stickiness', () => {
  const d = dep();
  it('custom domains are live', () => {
    expect(classifyHostname('api.acme.com', d)).toEqual({ stickiness: 'live' });
  });
  it('per-commit hostnames never move', () => {
    expect(classifyHostname('acme-git-9f2c1a7-acme.unkey.app', d)).toEqual({ stickiness: 'deployment' });
  });
  it('branch hostnames follow the branch', () => {
    expect(branchSlug('feature/Login_Page')).toBe('feature-login-page');
    expect(classifyHostname('acme-git-feature-login-page-acme.unkey.app', d)).toEqual({
      stickiness: 'branch',
      branch: 'feature/Login_Page',
    });
  });
  it('environment hostnames move with the environment', () => {
    expect(classifyHostname('acme-production-acme.unkey.app', d)).toEqual({ stickiness: 'environment' });
  });
  it('a hostname naming the deployment id is bound to it', () => {
    expect(classifyHostname('acme-d-abc123-acme.unkey.app', d)).toEqual({ stickiness: 'deployment' });
  });
  it('undecided system hostnames: live on the current deployment unless every deployment has one', () => {
    const current = dep({ id: 'd_cur', isCurrent: true, domains: ['acme-acme.unkey.app'] });
    const older = dep({ id: 'd_old', domains: ['acme-git-9f2c1a7-acme.unkey.app'] });
    expect(classifyDomains([current, older], 'production')[0]?.stickiness).toBe('live');
    const olderWithOwn = dep({ id: 'd_old', domains: ['acme-x1y2-acme.unkey.app'] });
    expect(classifyDomains([current, olderWithOwn], 'production').map((x) => x.stickiness)).toEqual([
      'deployment',
      'deployment',
    ]);
  });
});

describe('toDeployment', () => {
  it('maps git and docker deployments', () => {
    expect(
      toDeployment(dep({ updatedAt: 2_000, availableActions: ['promote', 'rollback'] }), 'prod'),
    ).toEqual({
      id: 'd_abc123',
      projectId: 'acme',
      environment: 'prod',
      branch: 'feature/Login_Page',
      commit: { sha: '9f2c1a7d3b0000000000', message: '', author: '' },
      createdAt: 1_000,
      readyAt: 2_000,
      status: 'ready',
    });
    const { git: _git, ...noGit } = dep({ status: 'building' });
    const docker = toDeployment({ ...noGit, docker: { image: 'ghcr.io/acme/api:v1.2.3' } }, 'prod');
    expect(docker.commit).toEqual({ sha: 'v1.2.3', message: 'ghcr.io/acme/api:v1.2.3', author: '' });
    expect(docker.branch).toBe('');
    expect(docker.readyAt).toBeUndefined();
  });
});

describe('UnkeyDeploymentSchema', () => {
  it('accepts documented string domains and newer {domain} objects', () => {
    const parsed = UnkeyDeploymentSchema.parse({
      ...dep(),
      domains: ['a.unkey.app', { domain: 'b.example.com', type: 'custom', status: 'active' }],
      runtime: { vCpus: 0.25 },
    });
    expect(parsed.domains).toEqual(['a.unkey.app', 'b.example.com']);
  });

  it('names the field that does not match', () => {
    const r = UnkeyDeploymentSchema.safeParse({ ...dep(), availableActions: [42] });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['availableActions', 0]);
    const s = UnkeyDeploymentSchema.safeParse({ ...dep(), status: '' });
    expect(s.success).toBe(false);
    expect(s.error?.issues[0]?.path).toEqual(['status']);
  });

  it('accepts a status and actions Unkey adds later instead of failing the page; unknown actions are ignored', () => {
    const parsed = UnkeyDeploymentSchema.parse({
      ...dep(),
      status: 'queued',
      availableActions: ['rollback', 'redeploy', 'promote'],
    });
    expect(parsed.status).toBe('queued');
    expect(parsed.availableActions).toEqual(['rollback', 'promote']);
    expect(parsed.ignoredActions).toEqual(['redeploy']);
    // Only unknown actions: nothing is offered, so they signal nothing (not running, not rolled back).
    const onlyNew = UnkeyDeploymentSchema.parse({ ...dep(), isCurrent: true, availableActions: ['pause'] });
    expect(onlyNew.availableActions).toEqual([]);
    expect(isRolledBack(onlyNew)).toBe(false);
    expect(UnkeyDeploymentSchema.parse(dep()).ignoredActions).toBeUndefined();
  });
});
