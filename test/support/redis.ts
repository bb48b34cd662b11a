/** Test helpers for the real Redis started by the global setup. */
import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';

/** URL of the Redis for this test run. */
export function redisUrl(): string {
  return inject('redisUrl');
}

/** A queue/key prefix unique to one test (STYLE 9: fresh queue per test). */
export function uniqueName(label = 'q'): string {
  return `${label}-${randomUUID().slice(0, 12)}`;
}
