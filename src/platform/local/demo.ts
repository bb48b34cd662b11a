/**
 * The built-in demo project of the embedded local platform: `production` (with a custom domain, the
 * environment domain, the `main` branch domain and per-deployment domains) and `preview`, with enough
 * history that `/rollback production` has a real target. Hostnames end in `.localhost`, which browsers
 * and curl resolve to 127.0.0.1, so `http://shop.localhost:8080/` reaches the local router.
 */
import { createHash } from 'node:crypto';
import type { LocalDeployment, LocalState } from './state.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

function sha(seed: string): string {
  return createHash('sha1').update(seed).digest('hex');
}

/** A fresh demo state with times relative to `now`. */
export function demoState(now: number): LocalState {
  const projectId = 'proj_acme';
  const dep = (
    id: string,
    environment: string,
    branch: string,
    message: string,
    author: string,
    ageMs: number,
    extra: Partial<LocalDeployment> = {},
  ): LocalDeployment => ({
    id,
    projectId,
    environment,
    branch,
    commit: { sha: sha(id), message, author },
    createdAt: now - ageMs,
    readyAt: now - ageMs + 2 * MIN,
    status: 'ready',
    ...extra,
  });
  const deployments: LocalDeployment[] = [
    dep(
      'dep_4kq9wz',
      'production',
      'main',
      'Switch checkout to the new pricing API',
      'Priya Raman',
      42 * MIN,
    ),
    dep('dep_3hd7xa', 'production', 'main', 'Cache product pages for 60s', 'Tom Becker', 5 * HOUR, {
      stoppedServingAt: now - 40 * MIN,
    }),
    dep('dep_2mc5ty', 'production', 'main', 'Upgrade Node to 20.20', 'Ana Souza', 26 * HOUR, {
      stoppedServingAt: now - 5 * HOUR + 2 * MIN,
    }),
    dep('dep_1ab3cd', 'production', 'main', 'Initial storefront', 'Priya Raman', 72 * HOUR, {
      stoppedServingAt: now - 26 * HOUR + 2 * MIN,
    }),
    dep('dep_p2fe8r', 'preview', 'feature-search', 'Search: typo tolerance', 'Tom Becker', 90 * MIN),
    dep('dep_p1rw4n', 'preview', 'feature-search', 'Search: first version', 'Tom Becker', 8 * HOUR, {
      stoppedServingAt: now - 90 * MIN + 2 * MIN,
      lastRequestAt: now - 7 * HOUR,
    }),
  ];
  const current = 'dep_4kq9wz';
  return {
    version: 1,
    project: { id: projectId, name: 'acme-shop' },
    environments: [
      {
        slug: 'production',
        kind: 'production',
        projectId,
        productionBranch: 'main',
        rolledBack: false,
        currentDeploymentId: current,
      },
      { slug: 'preview', kind: 'preview', projectId, rolledBack: false, currentDeploymentId: 'dep_p2fe8r' },
    ],
    deployments,
    domains: [
      { hostname: 'shop.localhost', stickiness: 'live', environment: 'production', deploymentId: current },
      {
        hostname: 'www.shop.localhost',
        stickiness: 'live',
        environment: 'production',
        deploymentId: current,
      },
      {
        hostname: 'production.acme.localhost',
        stickiness: 'environment',
        environment: 'production',
        deploymentId: current,
      },
      {
        hostname: 'main.acme.localhost',
        stickiness: 'branch',
        environment: 'production',
        branch: 'main',
        deploymentId: current,
      },
      ...deployments.map((d) => ({
        hostname: `${d.id.replace(/_/g, '-')}.acme.localhost`,
        stickiness: 'deployment' as const,
        environment: d.environment,
        deploymentId: d.id,
      })),
      {
        hostname: 'preview.acme.localhost',
        stickiness: 'environment',
        environment: 'preview',
        deploymentId: 'dep_p2fe8r',
      },
      {
        hostname: 'feature-search.acme.localhost',
        stickiness: 'branch',
        environment: 'preview',
        branch: 'feature-search',
        deploymentId: 'dep_p2fe8r',
      },
    ],
    liveHistory: {
      production: [
        { deploymentId: 'dep_1ab3cd', since: now - 72 * HOUR + 2 * MIN, via: 'deploy' },
        { deploymentId: 'dep_2mc5ty', since: now - 26 * HOUR + 2 * MIN, via: 'deploy' },
        { deploymentId: 'dep_3hd7xa', since: now - 5 * HOUR + 2 * MIN, via: 'deploy' },
        { deploymentId: current, since: now - 40 * MIN, via: 'deploy' },
      ],
      preview: [
        { deploymentId: 'dep_p1rw4n', since: now - 8 * HOUR + 2 * MIN, via: 'deploy' },
        { deploymentId: 'dep_p2fe8r', since: now - 90 * MIN + 2 * MIN, via: 'deploy' },
      ],
    },
    seq: 0,
    operations: [],
  };
}
