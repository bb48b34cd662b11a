/** Test helpers for the real Redis (or Redis Cluster, in the `cluster` project) started by the global setup. */
import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { isClusterUrl, keyNamespace } from '../../src/redis-url.js';

/** URL of the Redis for this test run. */
export function redisUrl(): string {
  return inject('redisUrl');
}

/** Whether this run's Redis is a Redis Cluster (the `cluster` project). */
export function onCluster(): boolean {
  return isClusterUrl(redisUrl());
}

/**
 * A queue/key prefix unique to one test (STYLE 9: fresh queue per test). On a cluster it is hash-tagged
 * (`{q-…}`), as Switchyard tags its namespace there, so that the keys under it share one slot.
 */
export function uniqueName(label = 'q'): string {
  return keyNamespace(`${label}-${randomUUID().slice(0, 12)}`, onCluster());
}
