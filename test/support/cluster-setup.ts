/**
 * Vitest global setup of the `cluster` project (vitest.config.ts): starts a 3-master Redis Cluster for
 * the whole run (test/support/redis-cluster.ts) and stops it afterwards. Tests read its URL
 * (`redis+cluster://…`) with `inject('redisUrl')`, like the single Redis of the default project, so
 * the same test files run against either. A run that is interrupted (Ctrl-C, SIGTERM) still ends the
 * nodes, and one killed outright has them reaped by the next run (test/support/redis-cluster.ts).
 */
import type { TestProject } from 'vitest/node';
import { startRedisCluster } from './redis-cluster.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cluster = await startRedisCluster();
  project.provide('redisUrl', cluster.url);
  return () => cluster.stop();
}
