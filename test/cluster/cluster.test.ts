/**
 * Switchyard on a real 3-master Redis Cluster (the `cluster` project's global setup), beyond the
 * existing tests that run there unchanged: a whole installation with its default namespace and a
 * separate worker keeps every key in one hash slot, on one node; what the hash tag prevents really fails
 * on a cluster (CROSSSLOT); the start-up check reads every master; a URL of the wrong kind is refused or
 * explained; the fail-fast connection fails at once when the cluster cannot be reached.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningSwitchyard, startSwitchyard } from '../../handlers/app.js';
import { runWorker } from '../../jobs/worker-main.js';
import { type Config, fileConfigSchema, parseEnv } from '../../src/config.js';
import { asSwitchyardError, ConfigError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { LocalPlatformClient } from '../../src/platform/local/client.js';
import { EnvironmentLock, SwitchQueue, switchKeys } from '../../src/queue.js';
import {
  closeRedis,
  createRedis,
  createRequestRedis,
  deleteKeys,
  masters,
  nodeAddress,
  type RedisClient,
  redisReady,
} from '../../src/redis.js';
import { checkRedis, clusterMismatch } from '../../src/redis-check.js';
import { keyNamespace, parseClusterUrl } from '../../src/redis-url.js';
import { redisUrl } from '../support/redis.js';
import { startRedisNode } from '../support/redis-cluster.js';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

function client(): RedisClient {
  const c = createRedis(redisUrl());
  closers.push(() => closeRedis(c));
  return c;
}

/** A plain connection to the cluster's node at `port` (its own answers, no redirection). */
function nodeUrl(port: number): string {
  const { password } = parseClusterUrl(redisUrl());
  return `redis://:${password ?? ''}@127.0.0.1:${port}`;
}

function config(env: Record<string, string>): Config {
  const parsed = parseEnv({ PORT: '0', LOCAL_ROUTER_PORT: '0', LOG_LEVEL: 'silent', ...env });
  const file = fileConfigSchema.parse({ local: { reactivationTime: '200ms', buildTime: '300ms' } });
  return { env: parsed, file, platform: 'local' };
}

async function post(base: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBeLessThan(300);
  return (await res.json()) as Record<string, unknown>;
}

/** Types `/rollback production` in the console and confirms it; returns the job id. */
async function rollbackProduction(sy: RunningSwitchyard): Promise<string> {
  const base = `http://127.0.0.1:${sy.port}`;
  const command = await post(base, '/console/api/command', { user: 'alice', text: '/rollback production' });
  const res = await fetch(`${base}/console/api/timeline?user=alice`);
  const { entries } = (await res.json()) as {
    entries: { id: string; message?: { buttons: { actionId: string }[] } }[];
  };
  const entry = entries.find((e) => e.id === command.messageId);
  const confirm = entry?.message?.buttons.find((b) => b.actionId.startsWith('sy1:confirm:'));
  if (!confirm) throw new Error(`no confirm button on ${JSON.stringify(entry)}`);
  const clicked = await post(base, '/console/api/action', {
    user: 'alice',
    actionId: confirm.actionId,
    messageId: command.messageId,
  });
  expect(clicked.outcome).toBe('enqueued');
  return String(clicked.jobId);
}

describe('an installation on a Redis Cluster', () => {
  it('keeps every key in one hash slot, on one node: the bot with its default namespace and a worker given the untagged --prefix', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sy-cluster-'));
    closers.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const cfg = config({ REDIS_URL: redisUrl(), SWITCHYARD_WORKER: 'off' });
    // No namespace option: what `npm start` uses.
    const sy = await startSwitchyard({ config: cfg, logger: silentLogger, dataDir });
    closers.push(() => sy.stop());
    expect(sy.namespace).toBe('{switchyard}');
    expect(sy.queueName).toBe('switchyard-switch');
    if (sy.routerPort === undefined) throw new Error('the local platform runs a router');
    // `npm run worker` with the default --queue and --prefix (`switchyard`, untagged).
    const worker = await runWorker({
      argv: ['--verify-interval', '20'],
      config: cfg,
      logger: silentLogger,
      platform: new LocalPlatformClient({ baseUrl: `http://127.0.0.1:${sy.routerPort}` }),
    });
    closers.push(() => worker.stop());
    const queue = new SwitchQueue({ redisUrl: redisUrl(), queueName: 'switchyard-switch' });
    closers.push(() => queue.close());
    expect(queue.prefix).toBe('{switchyard}');

    const jobId = await rollbackProduction(sy);
    const ended = await queue.waitForEnd(jobId, 20_000);
    expect(ended?.outcome).toBe('succeeded');
    const alert = await post(`http://127.0.0.1:${sy.port}`, '/console/api/alert', {
      environment: 'preview',
      title: 'Preview 5xx',
    });
    expect(alert.outcome).toBeDefined();

    const redis = client();
    const ours = (key: string) => /^\{switchyard\}:(switchyard-switch|plan|audit|alerts|notices):/.test(key);
    const byNode = new Map<string, string[]>();
    for (const node of await masters(redis)) {
      let cursor = '0';
      const keys: string[] = [];
      do {
        const [next, found] = await node.scan(cursor, 'MATCH', '{switchyard}:*', 'COUNT', 500);
        cursor = next;
        keys.push(...found.filter(ours));
      } while (cursor !== '0');
      if (keys.length > 0) byNode.set(nodeAddress(node), keys);
    }
    closers.push(() => queue.obliterate());
    closers.push(async () => deleteKeys(redis, [...byNode.values()].flat()));
    expect([...byNode.keys()]).toHaveLength(1);
    const keys = [...byNode.values()].flat();
    const base = '{switchyard}:switchyard-switch:';
    expect(keys).toEqual(
      expect.arrayContaining([
        `${base}${jobId}`,
        `${base}events`,
        `${base}completed`,
        `${base}sy:enq:${jobId}`,
        '{switchyard}:audit:production',
        expect.stringMatching(/^\{switchyard\}:plan:/),
        expect.stringMatching(/^\{switchyard\}:alerts:/),
      ]),
    );
    const slot = await redis.cluster('KEYSLOT', 'switchyard');
    const slots = await Promise.all(keys.map((k) => redis.cluster('KEYSLOT', k)));
    expect(new Set(slots)).toEqual(new Set([slot]));
    // The audit log shows the switch the separate worker ran.
    const audit = await redis.xrevrange('{switchyard}:audit:production', '+', '-');
    expect(audit.map(([, fields]) => JSON.parse(fields[1] ?? '{}').event)).toEqual(
      expect.arrayContaining(['requested', 'started', 'succeeded']),
    );
  });
});

describe('what the hash tag prevents', () => {
  it('fails on a cluster: the lock scripts and BullMQ across slots (CROSSSLOT); the same names tagged work', async () => {
    const redis = client();
    const name = `lock-${randomUUID().slice(0, 8)}`;
    const untagged = switchKeys('bull', name);
    const lock = new EnvironmentLock(redis, untagged, 5_000);
    await expect(lock.releaseAndRead('production', 'job:1', untagged.messages('job'))).rejects.toThrow(
      /CROSSSLOT/,
    );
    const tagged = switchKeys(keyNamespace('bull', true), name);
    const tagLock = new EnvironmentLock(redis, tagged, 5_000);
    expect(await tagLock.acquire('production', 'job:1')).toEqual({ acquired: true });
    expect(await tagLock.releaseAndRead('production', 'job:1', tagged.messages('job'))).toEqual({
      waiters: [],
      members: [],
    });

    const prefix = `plain-${randomUUID().slice(0, 8)}`;
    const bare = new Queue('q', { connection: redis, prefix });
    closers.push(() => bare.close());
    await expect(bare.add('x', {})).rejects.toThrow(/CROSSSLOT/);
    // SwitchQueue tags the same prefix itself on a cluster.
    const queue = new SwitchQueue({ redisUrl: redisUrl(), queueName: 'q', prefix });
    closers.push(() => queue.close());
    closers.push(() => queue.obliterate());
    expect(queue.prefix).toBe(`{${prefix}}`);
    const added = await queue.queue.add('x', {});
    expect(added.id).toBeDefined();
  });
});

describe('the start-up check on a cluster', () => {
  it('reads noeviction and AOF on every master and names the nodes a warning is about', async () => {
    const redis = client();
    const { seeds } = parseClusterUrl(redisUrl());
    const [first, second] = seeds;
    if (!first || !second) throw new Error('the test cluster has three masters');
    // One master with an evicting policy, for the duration of this test.
    const admin = createRedis(nodeUrl(second.port));
    closers.push(() => closeRedis(admin));
    await admin.call('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru');
    closers.push(() => admin.call('CONFIG', 'SET', 'maxmemory-policy', 'noeviction'));

    const warnings = await checkRedis(redis);
    const evicting = warnings.filter((w) => w.code === 'eviction_policy');
    expect(evicting).toHaveLength(1);
    expect(evicting[0]?.message).toContain(`Redis Cluster node 127.0.0.1:${second.port} maxmemory-policy`);
    expect(evicting[0]?.message).not.toContain(`127.0.0.1:${first.port}`);
    // The test cluster runs without AOF: every master is named.
    const aof = warnings.find((w) => w.code === 'aof_off');
    for (const s of seeds) expect(aof?.message).toContain(`127.0.0.1:${s.port}`);
    expect(warnings.some((w) => w.code === 'retries_per_request')).toBe(false);
    // A fail-fast connection is not fit for BullMQ workers: said for a cluster as for one Redis.
    const request = createRequestRedis(redisUrl());
    closers.push(() => closeRedis(request));
    await redisReady(request);
    expect((await checkRedis(request)).map((w) => w.code)).toContain('retries_per_request');
  });
});

describe('a URL of the wrong kind', () => {
  it('refuses redis:// pointing at a cluster node, in the bot and in a worker, naming REDIS_URL', async () => {
    const { seeds } = parseClusterUrl(redisUrl());
    const url = nodeUrl(seeds[0]?.port ?? 0);
    const plain = createRequestRedis(url);
    closers.push(() => closeRedis(plain));
    await redisReady(plain);
    expect(await clusterMismatch(plain)).toMatch(/^REDIS_URL: points at a node of a Redis Cluster/);

    const dataDir = mkdtempSync(join(tmpdir(), 'sy-cluster-'));
    closers.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const cfg = config({ REDIS_URL: url });
    const started = startSwitchyard({ config: cfg, logger: silentLogger, dataDir, namespace: 'mismatch' });
    await expect(started).rejects.toThrow(ConfigError);
    await expect(started).rejects.toThrow(
      /REDIS_URL: points at a node of a Redis Cluster.*redis\+cluster:\/\//,
    );
    await expect(runWorker({ config: cfg, logger: silentLogger })).rejects.toThrow(
      /REDIS_URL: points at a node of a Redis Cluster/,
    );
  });

  it('says why redis+cluster:// to a Redis without cluster mode never becomes ready, without the password', async () => {
    const node = await startRedisNode();
    closers.push(() => node.stop());
    const url = `redis+cluster://:${node.password}@127.0.0.1:${node.port}`;
    const c = createRequestRedis(url);
    closers.push(() => closeRedis(c));
    c.on('error', () => undefined);
    const ready = redisReady(c, 1_000, 'Redis at redis+cluster://***@…');
    await expect(ready).rejects.toThrow(/cluster support disabled/);
    await expect(ready).rejects.not.toThrow(node.password);
  });
});

describe('the fail-fast connection to a cluster', () => {
  it('refuses an enqueue at once as redis_unavailable while no seed node answers', async () => {
    // A port nothing listens on any more.
    const node = await startRedisNode();
    const deadPort = node.port;
    await node.stop();
    const queue = new SwitchQueue({
      redisUrl: `redis+cluster://127.0.0.1:${deadPort}`,
      queueName: 'unreachable',
      failFast: true,
    });
    closers.push(() => queue.close());
    const started = Date.now();
    const enqueue = queue.enqueue({
      action: 'rollback',
      planId: 'plan_unreachable',
      projectId: 'proj_acme',
      environment: 'production',
      targetId: 'dep_3hd7xa',
      expectedCurrent: 'dep_4kq9wz',
      expectedRolledBack: false,
      domains: ['shop.localhost'],
      requestedBy: { surface: 'console', userId: 'alice', displayName: 'alice' },
      messages: [],
      requestedAt: Date.now(),
    });
    const error = await enqueue.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(asSwitchyardError(error).code).toBe('redis_unavailable');
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
