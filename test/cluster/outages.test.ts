/**
 * The two kinds of cluster connection (src/redis.ts) through outages of one master, on a private
 * cluster (its nodes are killed and paused, which the shared one of the other test files must not see),
 * and the watchdog of `watchRedis` naming a master that hangs:
 *   - patient: a command waits for a master that is away for seconds (a restart, the time a replica
 *     takes to be promoted), as on one patient Redis, instead of being given up after ~1 s of redirections;
 *   - fail-fast: a command refused (it timed out) while its node connection was still opening never
 *     reaches Redis afterwards, when the connection opens.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisUnavailable } from '../../src/errors.js';
import {
  closeRedis,
  createRedis,
  createRequestRedis,
  type RedisClient,
  redisReady,
  watchRedis,
} from '../../src/redis.js';
import { CapturedLog } from '../support/captured-log.js';
import { startRedisCluster, type TestRedisCluster } from '../support/redis-cluster.js';

let cluster: TestRedisCluster;
beforeAll(async () => {
  // A small accept queue: a paused node then leaves a new connection opening (see `pause` below).
  cluster = await startRedisCluster({ tcpBacklog: 1 });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

/** A key served by master `index`. */
async function keyOn(index: number, label: string): Promise<string> {
  const [first, last] = cluster.nodes[index]?.slots ?? [0, -1];
  for (let i = 0; ; i++) {
    const key = `{${label}${i}}:k`;
    const slot = Number(await cluster.admin(index).call('CLUSTER', 'KEYSLOT', key));
    if (slot >= first && slot <= last) return key;
  }
}

/** Resolves once `check` holds (every 20 ms); rejects after `ms`. */
async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The status of `client`'s connection to master `index`, if it has one. */
function nodeStatus(client: RedisClient, index: number): string | undefined {
  if (!('nodes' in client)) throw new Error('expected a cluster client');
  const port = cluster.nodes[index]?.port;
  return client.nodes('master').find((n) => n.options.port === port)?.status;
}

describe('a fail-fast cluster connection', () => {
  it('never runs later a command it refused while its node connection was still opening', async () => {
    // commandTimeout: 500 ms instead of 5 s, to keep the test short.
    const c = createRequestRedis(cluster.url, { commandTimeout: 500 });
    c.on('error', () => undefined);
    try {
      await redisReady(c);
      // A master this client has no open connection to yet (its ready check opened one at most).
      const index = [0, 1, 2].find((i) => nodeStatus(c, i) === 'wait');
      if (index === undefined) throw new Error('every node connection is open already');
      const key = await keyOn(index, 'late');
      // The node stops, and a few connections fill its accept queue: the kernel drops the SYN of the
      // client's connection, which stays opening (as behind a lossy network) until the node resumes.
      cluster.pause(index);
      const fillers: Socket[] = [];
      let error: unknown;
      try {
        for (let i = 0; i < 4; i++)
          fillers.push(connect(cluster.nodes[index]?.port ?? 0, '127.0.0.1').on('error', () => undefined));
        await new Promise((r) => setTimeout(r, 100));
        const set = c.set(key, 'refused').then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(nodeStatus(c, index)).toBe('connecting');
        error = await set;
      } finally {
        cluster.resume(index);
      }
      for (const f of fillers) f.destroy();
      expect((error as Error | undefined)?.message).toBe('Command timed out');
      expect(redisUnavailable(error)?.code).toBe('redis_unavailable');
      // The connection opens now; the refused SET must not be written on it.
      await until('the node connection to open', () => nodeStatus(c, index) === 'ready');
      expect(await c.get(key)).toBeNull();
      expect(await cluster.admin(index).exists(key)).toBe(0);
    } finally {
      await closeRedis(c);
    }
  });
});

describe('a patient cluster connection, a master away for 3 seconds', () => {
  it('waits for it and then runs the command, as a patient connection to one Redis does', async () => {
    const c = createRedis(cluster.url);
    c.on('error', () => undefined);
    try {
      // Two keys of master 0: one read, one written while it is down (the order of the two retried
      // commands is not kept, as it is not by two connections to one Redis).
      const readKey = await keyOn(0, 'patient-read');
      const writeKey = await keyOn(0, 'patient-write');
      await c.set(readKey, 'before');
      expect(await c.get(readKey)).toBe('before');

      await cluster.kill(0);
      const started = Date.now();
      const outcome = (p: Promise<unknown>) =>
        p.then(
          (value) => ({ ok: true, value }),
          (e: unknown) => ({ ok: false, error: (e as Error).message, ms: Date.now() - started }),
        );
      const read = outcome(c.get(readKey));
      const write = outcome(c.set(writeKey, 'after'));
      await new Promise((r) => setTimeout(r, 3_000));
      await cluster.restart(0);
      // The value read is gone with the master (no persistence in the test cluster).
      expect(await read).toEqual({ ok: true, value: null });
      expect(await write).toEqual({ ok: true, value: 'OK' });
      expect(await c.get(writeKey)).toBe('after');
    } finally {
      await closeRedis(c);
    }
  }, 40_000);
});

describe('a master that hangs (SIGSTOP: its connections stay open, nothing answers)', () => {
  it('the watchdog PINGs each master, names the one that does not answer, and says once that it answers again', async () => {
    const client = createRedis(cluster.url);
    const probe = createRequestRedis(cluster.url);
    client.on('error', () => undefined);
    probe.on('error', () => undefined);
    const log = new CapturedLog('debug');
    const watch = watchRedis(client, log.logger, 'redis', { probe, intervalMs: 50, timeoutMs: 300 });
    try {
      await Promise.all([redisReady(client), redisReady(probe)]);
      // Its first rounds open the probe's connection to every master, the ones it sent nothing to too.
      await until('a connection to every master', () =>
        [0, 1, 2].every((i) => nodeStatus(probe, i) === 'ready'),
      );
      const hung = `127.0.0.1:${cluster.nodes[1]?.port}`;
      cluster.pause(1);
      try {
        const [warned] = await log.waitFor((l) => l.level === 40);
        expect(warned).toMatchObject({
          connection: 'redis',
          nodes: [hung],
          msg: `Redis is not answering (no reply to PING within 300 ms from ${hung}); waiting for it`,
        });
        expect(watch.notAnswering()).toBe(`not answering (no reply to PING within 300 ms from ${hung})`);
      } finally {
        cluster.resume(1);
      }
      await log.waitFor((l) => l.msg === 'Redis is answering again');
      expect(log.lines.filter((l) => l.level >= 30).map((l) => l.msg)).toEqual([
        `Redis is not answering (no reply to PING within 300 ms from ${hung}); waiting for it`,
        'Redis is answering again',
      ]);
    } finally {
      watch.stop();
      client.disconnect();
      probe.disconnect();
    }
  });
});
