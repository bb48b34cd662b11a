/**
 * Vitest global setup: when REDIS_URL is unset, starts a private redis-server (unix socket, temp dir)
 * for the whole run and stops it afterwards. Tests read the URL with `inject('redisUrl')`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { spawnRedis } from '../../src/redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const existing = process.env.REDIS_URL;
  if (existing) {
    project.provide('redisUrl', existing);
    return async () => {};
  }
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-redis-'));
  const redis = await spawnRedis({ dir, aof: false });
  project.provide('redisUrl', redis.url);
  return async () => {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}
