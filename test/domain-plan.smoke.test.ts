import { describe, expect, it } from 'vitest';
import { buildPlan } from '../src/domain/plan.js';
import type { EnvironmentSnapshot } from '../src/domain/types.js';

const snap: EnvironmentSnapshot = {
  project: { id: 'p1', name: 'demo' },
  environment: {
    slug: 'production',
    kind: 'production',
    projectId: 'p1',
    rolledBack: false,
    currentDeploymentId: 'd3',
  },
  deployments: [
    {
      id: 'd3',
      projectId: 'p1',
      environment: 'production',
      branch: 'main',
      commit: { sha: 'c'.repeat(40), message: 'three', author: 'a' },
      createdAt: 3,
      readyAt: 3,
      status: 'ready',
    },
    {
      id: 'd2',
      projectId: 'p1',
      environment: 'production',
      branch: 'main',
      commit: { sha: 'b'.repeat(40), message: 'two', author: 'a' },
      createdAt: 2,
      readyAt: 2,
      status: 'standby',
    },
  ],
  domains: [
    { hostname: 'app.example.com', stickiness: 'live', environment: 'production', deploymentId: 'd3' },
  ],
  liveHistory: [
    { deploymentId: 'd2', since: 2, via: 'deploy' },
    { deploymentId: 'd3', since: 3, via: 'deploy' },
  ],
  readAt: 10,
};

describe('buildPlan smoke', () => {
  it('rolls back to the previously live deployment', () => {
    const r = buildPlan(snap, { action: 'rollback', now: 10 });
    expect(r.ok && r.value.target.id).toBe('d2');
    expect(r.ok && r.value.targetStandby).toBe(true);
  });
});
