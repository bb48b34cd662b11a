/**
 * src/redis-check.ts on one Redis: a Redis that forbids CONFIG (a managed one) or
 * answers it oddly gets one "could not read" warning, never a crash nor a warning about a setting it
 * did not report; and the single-Redis URL pointing at a cluster node is refused, while INFO failing
 * or a Redis without cluster mode is not.
 */
import { describe, expect, it } from 'vitest';
import { createRedis } from '../../src/redis.js';
import { checkRedis, clusterMismatch } from '../../src/redis-check.js';

/**
 * A real ioredis client (never connected: lazyConnect) whose CONFIG and INFO answers the test decides.
 */
function fakeRedis(answers: { config?: (name: string) => Promise<unknown>; info?: () => Promise<string> }) {
  const r = createRedis('redis://127.0.0.1:1', { lazyConnect: true });
  r.call = (async (command: string, ...args: string[]) => {
    if (command !== 'CONFIG' || args[0] !== 'GET') throw new Error(`unexpected ${command}`);
    if (!answers.config) throw new Error('no CONFIG');
    return answers.config(args[1] ?? '');
  }) as never;
  r.info = (async () => {
    if (!answers.info) throw new Error('no INFO');
    return answers.info();
  }) as never;
  return r;
}

describe('checkRedis on a Redis that does not tell', () => {
  it('a Redis forbidding CONFIG gets one config_unavailable warning quoting its error, no crash', async () => {
    const r = fakeRedis({
      config: async () => {
        throw new Error("ERR unknown command 'CONFIG'");
      },
    });
    const warnings = await checkRedis(r);
    expect(warnings.map((w) => w.code)).toEqual(['config_unavailable']);
    expect(warnings[0]?.message).toContain("(ERR unknown command 'CONFIG')");
    expect(warnings[0]?.message).toContain(
      'make sure maxmemory-policy is noeviction and persistence (AOF) is on,',
    );
    expect(warnings[0]?.message).not.toContain('every master');
  });

  it('a setting it answers with nothing (an empty CONFIG GET reply) raises no warning about that setting', async () => {
    const r = fakeRedis({ config: async () => [] });
    expect(await checkRedis(r)).toEqual([]);
  });

  it('warns once per problem: a volatile policy by name, and AOF off', async () => {
    const r = fakeRedis({
      config: async (name) => (name === 'maxmemory-policy' ? [name, 'volatile-lru'] : [name, 'no']),
    });
    const warnings = await checkRedis(r);
    expect(warnings.map((w) => w.code)).toEqual(['eviction_policy', 'aof_off']);
    expect(warnings[0]?.message).toMatch(/^Redis maxmemory-policy is "volatile-lru"/);
    expect(warnings[1]?.message).toMatch(/^Redis runs without AOF/);
  });
});

describe('checkRedis on the connection itself', () => {
  it('warns for maxRetriesPerRequest 0 too (BullMQ workers need null: no limit)', async () => {
    const r = createRedis('redis://127.0.0.1:1', { lazyConnect: true, maxRetriesPerRequest: 0 });
    r.call = (async (_c: string, _g: string, name: string) => [
      name,
      name === 'appendonly' ? 'yes' : 'noeviction',
    ]) as never;
    expect((await checkRedis(r)).map((w) => w.code)).toEqual(['retries_per_request']);
  });
});

describe('clusterMismatch', () => {
  it('refuses a redis:// URL to a node of a cluster, naming the URL to write', async () => {
    const r = fakeRedis({ info: async () => '# Cluster\r\ncluster_enabled:1\r\n' });
    expect(await clusterMismatch(r)).toMatch(
      /^REDIS_URL: points at a node of a Redis Cluster, expected redis\+cluster:\/\//,
    );
  });

  it('takes a Redis without cluster mode, and one whose INFO fails (other checks report that)', async () => {
    expect(
      await clusterMismatch(fakeRedis({ info: async () => '# Cluster\r\ncluster_enabled:0\r\n' })),
    ).toBeUndefined();
    expect(await clusterMismatch(fakeRedis({}))).toBeUndefined();
  });
});
