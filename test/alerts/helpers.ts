/** Shared fixtures for the alert tests: an environment snapshot with a known live history. */
import type { Deployment, EnvironmentSnapshot, LiveEntry } from '../../src/domain/types.js';

export const MINUTE = 60_000;

function deployment(id: string, createdAt: number, status: Deployment['status'] = 'ready'): Deployment {
  return {
    id,
    projectId: 'proj_1',
    environment: 'production',
    branch: 'main',
    commit: {
      sha: `${id.replace(/[^a-f0-9]/g, '')}${'0'.repeat(40)}`.slice(0, 40),
      message: id,
      author: 'ana',
    },
    createdAt,
    readyAt: createdAt + MINUTE,
    status,
  };
}

/**
 * production: dep_a (live 3 days ago), dep_b (live 1 day ago), dep_c (current, live `liveAgoMs` before
 * `now`). The default rollback target is dep_b.
 */
export function productionSnapshot(
  now: number,
  liveAgoMs = 7 * MINUTE,
  slug = 'production',
): EnvironmentSnapshot {
  const cSince = now - liveAgoMs;
  const deployments = [
    deployment('dep_c', cSince - 2 * MINUTE),
    deployment('dep_b', now - 1_440 * MINUTE - 2 * MINUTE, 'standby'),
    deployment('dep_a', now - 4_320 * MINUTE - 2 * MINUTE, 'standby'),
  ].map((d) => ({ ...d, environment: slug }));
  const liveHistory: LiveEntry[] = [
    { deploymentId: 'dep_a', since: now - 4_320 * MINUTE, via: 'deploy' },
    { deploymentId: 'dep_b', since: now - 1_440 * MINUTE, via: 'deploy' },
    { deploymentId: 'dep_c', since: cSince, via: 'deploy' },
  ];
  return {
    project: { id: 'proj_1', name: 'shop' },
    environment: {
      slug,
      kind: 'production',
      projectId: 'proj_1',
      rolledBack: false,
      currentDeploymentId: 'dep_c',
    },
    deployments,
    domains: [{ hostname: 'shop.example.com', stickiness: 'live', environment: slug, deploymentId: 'dep_c' }],
    liveHistory,
    readAt: now,
  };
}
