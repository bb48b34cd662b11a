import { defineConfig } from 'vitest/config';

/**
 * Two projects. `redis`: every test, on a private single Redis (test/support/global-setup.ts, or
 * REDIS_URL). `cluster`: the tests of cross-process state again, unchanged, on a real 3-master Redis
 * Cluster (test/support/cluster-setup.ts), plus the cluster-only tests in test/cluster/.
 */
const CLUSTER_FILES = [
  'test/cluster/**/*.test.ts',
  // enqueue dedupe, the environment lock, audit
  'test/jobs/queue.test.ts',
  // full switches through the real worker: progress, audit entries, lock, retries
  'test/jobs/switch.test.ts',
  'test/jobs/attempts.test.ts',
  // plans and their transitions; Flow on them
  'test/flow/plan-store.test.ts',
  'test/flow/flow.test.ts',
  // alert dedupe claims
  'test/alerts/service.test.ts',
  // notices' claims and retry queue, across replicas
  'test/notices/replicas.test.ts',
  'test/notices/retry.test.ts',
  // Redis's clock read with the audit stream (one MULTI), leases on the holder's clock
  'test/notices/skew.test.ts',
  // platform pollers' shared snapshots
  'test/platform/unkey-poller.test.ts',
  // Slack Events API dedupe across replicas
  'test/slack/app.test.ts',
  // the whole app (handlers/app.ts; test/cluster/ adds a separate worker, jobs/worker-main.ts)
  'test/console/api.test.ts',
  // bot replicas following progress published by workers (BullMQ QueueEvents)
  'test/start/follow.test.ts',
];

const shared = {
  testTimeout: 30_000,
  hookTimeout: 30_000,
  pool: 'forks',
} as const;

export default defineConfig({
  test: {
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        test: {
          ...shared,
          name: 'redis',
          include: ['test/**/*.test.ts'],
          exclude: ['test/cluster/**'],
          globalSetup: ['test/support/global-setup.ts'],
        },
      },
      {
        test: {
          ...shared,
          name: 'cluster',
          include: CLUSTER_FILES,
          globalSetup: ['test/support/cluster-setup.ts'],
        },
      },
    ],
  },
});
