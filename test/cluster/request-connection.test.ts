/**
 * The fail-fast cluster connection (src/redis.ts `createRequestRedis`) with every node up: ioredis opens
 * node connections lazily, on the first command for a node, and a command for a node whose connection
 * is still opening must wait for it, not be refused as "Redis is unreachable". The first requests after
 * a start (or after a node connection was re-opened) are the ones that meet this: several at once,
 * an enqueue (its claim and BullMQ's add go out together), a burst of console commands.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cluster } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { startSwitchyard } from '../../handlers/app.js';
import { fileConfigSchema, parseEnv } from '../../src/config.js';
import { asSwitchyardError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { SwitchQueue } from '../../src/queue.js';
import {
  closeRedis,
  createRedis,
  createRequestRedis,
  deleteKeys,
  isCluster,
  type RedisClient,
  redisReady,
  scanKeys,
} from '../../src/redis.js';
import { parseClusterUrl } from '../../src/redis-url.js';
import { redisUrl } from '../support/redis.js';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

function requestClient(): Cluster {
  const c = createRequestRedis(redisUrl());
  c.on('error', () => undefined);
  closers.push(() => closeRedis(c));
  if (!isCluster(c)) throw new Error('expected a cluster client');
  return c;
}

/** Deletes every key under `namespace` when the test ends. */
function cleanUp(namespace: string): void {
  closers.push(async () => {
    const redis: RedisClient = createRedis(redisUrl());
    try {
      await deleteKeys(redis, await scanKeys(redis, `${namespace}:*`));
    } finally {
      await closeRedis(redis);
    }
  });
}

/**
 * The port of the master serving `key`, asked on `admin` (another connection: a CLUSTER command on the
 * client under test would open one of its node connections).
 */
async function ownerPort(admin: RedisClient, key: string): Promise<number> {
  const slot = Number(await admin.call('CLUSTER', 'KEYSLOT', key));
  const ranges = (await admin.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
  const range = ranges.find(([first, last]) => slot >= first && slot <= last);
  if (!range) throw new Error(`no master serves slot ${slot}`);
  return range[2][1];
}

function job(planId: string) {
  return {
    action: 'rollback' as const,
    planId,
    projectId: 'proj_acme',
    environment: 'production',
    targetId: 'dep_3hd7xa',
    expectedCurrent: 'dep_4kq9wz',
    expectedRolledBack: false,
    domains: ['shop.localhost'],
    requestedBy: { surface: 'console' as const, userId: 'alice', displayName: 'alice' },
    messages: [],
    requestedAt: Date.now(),
  };
}

describe('a fail-fast cluster connection, every node up', () => {
  it('answers concurrent commands to every master on a freshly ready client', async () => {
    const admin = createRedis(redisUrl());
    closers.push(() => closeRedis(admin));
    const { seeds } = parseClusterUrl(redisUrl());
    // Keys of many slots, at least three on every master (random keys alone missed a master now and
    // then: 12 of them leave one of three masters unhit about once in 40 runs).
    const keys: string[] = [];
    const perMaster = new Map<number, number>();
    for (
      let i = 0;
      i < 1000 && (perMaster.size < seeds.length || [...perMaster.values()].some((n) => n < 3));
      i++
    ) {
      const key = `{fresh-${randomUUID().slice(0, 8)}-${i}}:k`;
      const port = await ownerPort(admin, key);
      if ((perMaster.get(port) ?? 0) >= 3) continue;
      perMaster.set(port, (perMaster.get(port) ?? 0) + 1);
      keys.push(key);
    }
    expect(perMaster.size).toBe(seeds.length);
    const c = requestClient();
    await redisReady(c);
    // At most one node connection is open (the ready check's).
    const waiting = c.nodes('master').filter((n) => n.status === 'wait');
    expect(waiting.length).toBeGreaterThan(0);
    // Two commands per key, all at once.
    const results = await Promise.allSettled(keys.flatMap((k) => [c.get(k), c.exists(k)]));
    const failed = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
    expect(failed).toEqual([]);
    expect(c.nodes('master').every((n) => n.status === 'ready')).toBe(true);
  });

  it('accepts the first enqueue, its claim and add sent together while the node connection opens', async () => {
    const { seeds } = parseClusterUrl(redisUrl());
    const admin = createRedis(redisUrl());
    closers.push(() => closeRedis(admin));
    const opening = new Set<number>();
    const errors: string[] = [];
    // Namespaces of different slots, until every master has served one whose connection was not open.
    // Each try hits a given master with an unopened connection with probability about 2/9 (its slot,
    // and not the node the ready check happened to open): 100 tries leave it unhit about once in 10^11
    // (30 did once in a few hundred runs).
    for (let i = 0; i < 100 && opening.size < seeds.length; i++) {
      const prefix = `enq-${randomUUID().slice(0, 8)}`;
      const queue = new SwitchQueue({ redisUrl: redisUrl(), queueName: 'first', prefix, failFast: true });
      cleanUp(queue.prefix);
      closers.push(() => queue.close());
      await queue.waitUntilReady();
      // The connection enqueue uses.
      const client = (queue as unknown as { redis: Cluster }).redis;
      const port = await ownerPort(admin, queue.prefix);
      const node = client.nodes('master').find((n) => n.options.port === port);
      if (node === undefined || node.status === 'ready') continue;
      opening.add(port);
      await queue.enqueue(job(`plan_first_${i}`)).then(
        (r) => expect(r.joined).toBe(false),
        (e: unknown) =>
          errors.push(`${queue.prefix}: ${asSwitchyardError(e).message} (${(e as Error).message})`),
      );
    }
    expect(opening.size).toBe(seeds.length);
    expect(errors).toEqual([]);
  });
});

describe('the bot on a cluster, just started', () => {
  it('answers every one of a burst of concurrent /rollback commands without blaming Redis', async () => {
    const refused: string[] = [];
    // Several installations: their namespaces hash to different masters.
    for (let i = 0; i < 4; i++) {
      const dataDir = mkdtempSync(join(tmpdir(), 'sy-burst-'));
      closers.push(async () => rmSync(dataDir, { recursive: true, force: true }));
      const env = parseEnv({
        PORT: '0',
        LOCAL_ROUTER_PORT: '0',
        LOG_LEVEL: 'silent',
        REDIS_URL: redisUrl(),
        SWITCHYARD_WORKER: 'off',
      });
      const config = { env, file: fileConfigSchema.parse({}), platform: 'local' as const };
      const namespace = `burst-${randomUUID().slice(0, 8)}`;
      const sy = await startSwitchyard({ config, logger: silentLogger, dataDir, namespace });
      cleanUp(sy.namespace);
      closers.push(() => sy.stop());
      const base = `http://127.0.0.1:${sy.port}`;
      const answers = await Promise.all(
        Array.from({ length: 6 }, (_, k) =>
          fetch(`${base}/console/api/command`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ user: `user${k}`, text: '/rollback production' }),
          }).then(async (r) => ({ status: r.status, body: await r.text() })),
        ),
      );
      for (const a of answers)
        if (a.status >= 300 || /Redis/i.test(a.body)) refused.push(`${sy.namespace}: ${a.status} ${a.body}`);
    }
    expect(refused).toEqual([]);
  }, 60_000);
});
