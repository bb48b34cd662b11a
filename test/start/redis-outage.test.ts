/**
 * Redis goes away during an incident. A whole Switchyard (console, local platform, worker) on a Redis
 * of its own, which the test stops and starts again:
 *   - `/readyz` says so at once (503 naming Redis) instead of hanging;
 *   - a command and an alert webhook are refused at once with a message naming Redis, and a refused
 *     request does nothing later: nothing it tried is sent once Redis is back;
 *   - once Redis is back, everything works again without a restart, through a whole rollback;
 *   - shutting down while Redis is unreachable does not wait for it.
 * A Redis that hangs (SIGSTOP) instead: the watchdog of `watchRedis` says so once and once that it
 * answers again, one PING outstanding at a time, and adds nothing to a real outage; `/readyz` names it.
 * And the fail-fast connection itself (`createRequestRedis`) against a real redis-server.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  READY_CHECK_MS,
  type RunningSwitchyard,
  type StartOptions,
  startSwitchyard,
} from '../../handlers/app.js';
import type { ConsoleEntry } from '../../handlers/console/surface.js';
import { faultView } from '../../handlers/slack/context.js';
import { type Config, fileConfigSchema, parseEnv } from '../../src/config.js';
import { asSwitchyardError, SwitchyardError } from '../../src/errors.js';
import { type Logger, silentLogger } from '../../src/log.js';
import { SwitchQueue } from '../../src/queue.js';
import {
  createRedis,
  createRequestRedis,
  type RedisClient,
  redisReady,
  watchRedis,
} from '../../src/redis.js';
import { type SpawnedRedis, spawnRedis } from '../../src/redis-server.js';
import { CapturedLog } from '../support/captured-log.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
});

/**
 * A redis-server in its own directory that can be stopped and started again on the same socket, or
 * made to hang (SIGSTOP: its connections stay open and nothing answers) and resumed (SIGCONT). A test
 * that fails while it hangs leaves it resumed.
 */
async function ownRedis(): Promise<{
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  pause(): void;
  resume(): void;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'sy-outage-'));
  let server: SpawnedRedis | undefined = await spawnRedis({ dir: join(dir, 'redis') });
  const url = server.url;
  closers.push(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    url,
    async stop() {
      await server?.stop();
      server = undefined;
    },
    async start() {
      server = await spawnRedis({ dir: join(dir, 'redis') });
      expect(server.url).toBe(url);
    },
    pause() {
      const pid = server?.pid;
      if (pid === undefined) throw new Error('no redis-server to pause');
      process.kill(pid, 'SIGSTOP');
      // Before anything else is closed: a stopped Redis would hold up their shutdown.
      closers.push(async () => {
        process.kill(pid, 'SIGCONT');
      });
    },
    resume() {
      const pid = server?.pid;
      if (pid !== undefined) process.kill(pid, 'SIGCONT');
    },
  };
}

async function app(
  redisUrl: string,
  local: Record<string, string> = { reactivationTime: '200ms', buildTime: '300ms' },
  logger: Logger = silentLogger,
  redisWatch: StartOptions['redisWatch'] = {},
  more: Pick<StartOptions, 'planExpirySweepMs'> = {},
): Promise<RunningSwitchyard & { base: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sy-outage-app-'));
  const env = parseEnv({ PORT: '0', LOCAL_ROUTER_PORT: '0', REDIS_URL: redisUrl, LOG_LEVEL: 'silent' });
  const file = fileConfigSchema.parse({ local });
  const config: Config = { env, file, platform: 'local' };
  const running = await startSwitchyard({
    config,
    logger,
    dataDir,
    namespace: 'outage',
    redisWatch,
    ...more,
  });
  closers.push(async () => {
    await running.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return Object.assign(running, { base: `http://127.0.0.1:${running.port}` });
}

async function post(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function ready(base: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${base}/readyz`);
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** Resolves with `p`, or fails the test when it has not settled within `ms` (a hang, not a speed check). */
async function settlesWithin<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, hung]);
  } finally {
    clearTimeout(timer);
  }
}

async function timeline(sy: { base: string }, user: string): Promise<ConsoleEntry[]> {
  const res = await fetch(`${sy.base}/console/api/timeline?user=${user}`);
  return ((await res.json()) as { entries: ConsoleEntry[] }).entries;
}

/** Types `/rollback production` in the console as alice and confirms it. */
async function confirmRollback(sy: { base: string }): Promise<{ jobId: string; messageId: string }> {
  const planned = await post(`${sy.base}/console/api/command`, {
    user: 'alice',
    text: '/rollback production',
  });
  expect(planned.status).toBe(200);
  const messageId = String(planned.json.messageId);
  const entry = (await timeline(sy, 'alice')).find((e) => e.id === messageId);
  const confirm = entry?.message?.buttons.find((b) => b.actionId.startsWith('sy1:confirm:'));
  if (!confirm) throw new Error(`no confirm button on ${JSON.stringify(entry)}`);
  const clicked = await post(`${sy.base}/console/api/action`, {
    user: 'alice',
    actionId: confirm.actionId,
    messageId,
  });
  expect(clicked.json.outcome).toBe('enqueued');
  return { jobId: String(clicked.json.jobId), messageId };
}

/** Polls `/readyz` (the app reconnects on its own schedule) until it answers 200. */
async function untilReady(base: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await ready(base)).status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('/readyz never answered 200 after Redis came back');
}

describe('Switchyard while Redis is unreachable', () => {
  it('refuses at once naming Redis, does nothing later, and works again once Redis is back', async () => {
    const redis = await ownRedis();
    const sy = await app(redis.url);
    expect((await ready(sy.base)).status).toBe(200);

    await redis.stop();
    const down = await settlesWithin(ready(sy.base), 5_000, '/readyz');
    expect(down.status).toBe(503);
    expect(down.json.problems).toEqual([expect.stringMatching(/^redis: unreachable/)]);

    const command = await settlesWithin(
      post(`${sy.base}/console/api/command`, { user: 'alice', text: '/rollback production' }),
      8_000,
      'the console command',
    );
    expect(command.status).toBe(503);
    expect(command.json).toMatchObject({ error: 'redis_unavailable' });
    expect(String(command.json.message)).toMatch(/cannot reach its Redis.*nothing was done/);

    const alert = await settlesWithin(
      post(`${sy.base}/webhooks/alerts/generic`, {
        title: 'Checkout 5xx',
        environment: 'production',
        status: 'firing',
      }),
      8_000,
      'the alert webhook',
    );
    expect(alert.status).toBe(503);
    expect(alert.json).toMatchObject({ error: 'redis_unavailable' });
    expect(String(alert.json.message)).toMatch(/cannot reach its Redis/);

    await redis.start();
    await untilReady(sy.base);
    // The refused command left no plan behind: nothing it tried went out after the reconnection.
    const probe = createRequestRedis(redis.url);
    closers.push(async () => probe.disconnect());
    await redisReady(probe);
    expect(await probe.keys('outage:plan*')).toEqual([]);
    expect(await probe.xlen('outage:audit:production')).toBe(0);

    // Everything works again: plan, confirm, switch, verified.
    const { jobId } = await confirmRollback(sy);
    const jobs = new SwitchQueue({ redisUrl: redis.url, queueName: sy.queueName, prefix: sy.namespace });
    closers.push(() => jobs.close());
    const final = await jobs.waitForEnd(jobId, 30_000);
    expect(final?.outcome).toBe('succeeded');
  });

  it('a switch running when Redis goes away finishes once Redis is back', async () => {
    const redis = await ownRedis();
    // The default rollback target of the demo, dep_3hd7xa, is in standby: reactivating it takes 1.5 s.
    const sy = await app(redis.url, { reactivationTime: '1500ms', buildTime: '300ms' });
    const jobs = new SwitchQueue({ redisUrl: redis.url, queueName: sy.queueName, prefix: sy.namespace });
    closers.push(() => jobs.close());
    const { jobId, messageId } = await confirmRollback(sy);
    let reactivating = false;
    for (let i = 0; i < 400 && !reactivating; i++) {
      const p = await jobs.progress(jobId);
      reactivating = p?.steps.some((st) => st.step === 'reactivating' && st.state === 'running') ?? false;
      if (!reactivating) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(reactivating).toBe(true);
    const moved = new Promise<void>((resolve) => {
      const off = sy.platform.subscribe?.((e) => {
        if (e.type === 'traffic.moved' && e.to === 'dep_3hd7xa') {
          off?.();
          resolve();
        }
      });
    });

    await redis.stop();
    await moved; // the platform finished the switch while Redis was away
    await redis.start();
    const final = await jobs.waitForEnd(jobId, 60_000);
    expect(final).toMatchObject({ outcome: 'succeeded' });
    expect(final?.traffic.every((t) => t.ok && t.deploymentId === 'dep_3hd7xa')).toBe(true);
    expect(final?.attempt).toBe(1); // not retried, not recovered: the same attempt carried on
    // the console message, edited from the followed progress (which may arrive just after the job's
    // completion), shows it too
    let shown = '';
    for (let i = 0; i < 200 && !shown.includes('Traffic is on dep_3hd7xa'); i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 25));
      shown = JSON.stringify((await timeline(sy, 'alice')).find((e) => e.id === messageId)?.message);
    }
    expect(shown).toContain('Traffic is on dep_3hd7xa');
  });

  it('shuts down without waiting for Redis to come back', async () => {
    const redis = await ownRedis();
    const sy = await app(redis.url);
    await redis.stop();
    await settlesWithin(sy.stop(), 10_000, 'stop()');
  });

  it('shuts down without waiting for Redis when a deployment notice fell due during the outage', async () => {
    const redis = await ownRedis();
    const { logger, lines } = new CapturedLog();
    const sy = await app(redis.url, undefined, logger);
    await redis.stop();
    // The platform goes on while Redis is away: a push builds and goes live. The notices service
    // subscribed at start-up, before this listener, so it holds the event by the time this resolves,
    // and handles it with commands that wait for Redis.
    const live = new Promise<void>((resolve) => {
      const off = sy.platform.subscribe?.((e) => {
        if (e.type === 'traffic.moved' && e.environment === 'preview' && e.via === 'deploy') {
          off?.();
          resolve();
        }
      });
    });
    const pushed = await post(`${sy.base}/console/api/push`, { environment: 'preview', branch: 'feature-x' });
    expect(pushed.status).toBe(201);
    await live;

    const stopped = sy.stop();
    try {
      await settlesWithin(stopped, 10_000, 'stop()');
    } catch (e) {
      // Let the stuck shutdown end (Redis back) so the next tests get a clean slate, then fail.
      await redis.start();
      await stopped;
      throw e;
    }
    // What the shutdown left undone is said once, not once per event or check cut off.
    const warned = lines.filter((l) => l.level === 40 && /notices/.test(String(l.msg)));
    expect(warned.map((l) => l.msg)).toEqual([
      expect.stringMatching(
        /^Redis is unreachable: stopping notices without waiting .*: [1-9]\d* platform event\(s\) still being handled/,
      ),
    ]);
    expect(
      lines.filter((l) => l.msg === 'notice failed' || l.msg === 'reminder check failed; retrying'),
    ).toEqual([]);
  });
});

/** How many PINGs Redis has run (INFO commandstats), asked on `admin`. */
async function pingsRun(admin: RedisClient): Promise<number> {
  return Number(/cmdstat_ping:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0);
}

/** A patient connection watched by `watchRedis` with a fail-fast probe; closed after the test. */
async function watched(url: string, log: CapturedLog, intervalMs: number, timeoutMs: number) {
  const client = createRedis(url);
  const probe = createRequestRedis(url);
  probe.on('error', () => undefined);
  const watch = watchRedis(client, log.logger, 'redis', { probe, intervalMs, timeoutMs });
  closers.push(async () => {
    watch.stop();
    client.disconnect();
    probe.disconnect();
  });
  await Promise.all([redisReady(client), redisReady(probe)]);
  return { client, probe, watch };
}

/** The lines at info and above, as `level message`. */
function said(log: CapturedLog): string[] {
  return log.lines.filter((l) => l.level >= 30).map((l) => `${l.level} ${l.msg}`);
}

describe('a Redis that hangs (SIGSTOP: its connections stay open, nothing answers)', () => {
  it('the watchdog says once that Redis is not answering and once that it answers again, one PING outstanding at a time', async () => {
    const redis = await ownRedis();
    const log = new CapturedLog('debug');
    const { watch } = await watched(redis.url, log, 20, 100);
    const admin = createRedis(redis.url);
    closers.push(async () => admin.disconnect());
    const before = await pingsRun(admin);

    redis.pause();
    const [warned] = await log.waitFor((l) => l.level === 40);
    expect(warned).toMatchObject({
      connection: 'redis',
      timeoutMs: 100,
      msg: 'Redis is not answering (no reply to PING within 100 ms); waiting for it',
    });
    expect(watch.notAnswering()).toBe('not answering (no reply to PING within 100 ms)');
    // Five more rounds while it hangs, each waiting for the same unanswered PING.
    await log.waitFor((l) => l.msg === 'Redis is still not answering', 5);

    redis.resume();
    await log.waitFor((l) => l.msg === 'Redis is answering again');
    watch.stop();
    expect(watch.notAnswering()).toBeUndefined();
    expect(said(log)).toEqual([
      '40 Redis is not answering (no reply to PING within 100 ms); waiting for it',
      '30 Redis is answering again',
    ]);
    // The one PING that hung (and at most one sent just before the pause): never one per round.
    expect((await pingsRun(admin)) - before).toBeLessThanOrEqual(2);
  });

  it('a Redis that goes away is said unreachable by the connection events alone: the watchdog adds no warning', async () => {
    const redis = await ownRedis();
    const log = new CapturedLog('debug');
    const { probe } = await watched(redis.url, log, 10, 100);
    await redis.stop();
    await log.waitFor((l) => l.msg === 'Redis is unreachable; reconnecting');
    // Dozens of rounds of the watchdog meanwhile: the probe's fifth reconnection attempt is ~750 ms on.
    await new Promise<void>((resolve) => {
      let attempts = 0;
      const attempt = () => {
        if (++attempts < 5) return;
        probe.off('reconnecting', attempt);
        resolve();
      };
      probe.on('reconnecting', attempt);
    });
    await redis.start();
    await log.waitFor((l) => l.msg === 'Redis is reachable again');
    expect(said(log)).toEqual(['40 Redis is unreachable; reconnecting', '30 Redis is reachable again']);
  });

  it('Switchyard says so once in its log and in /readyz at once, and once that Redis answers again', async () => {
    const redis = await ownRedis();
    const log = new CapturedLog();
    const sy = await app(redis.url, undefined, log.logger, { intervalMs: 50, timeoutMs: 200 });
    expect((await ready(sy.base)).status).toBe(200);

    redis.pause();
    const [warned] = await settlesWithin(
      log.waitFor((l) => /^Redis is/.test(l.msg)),
      10_000,
      'the warning',
    );
    expect(warned).toMatchObject({
      level: 40,
      connection: 'redis',
      msg: 'Redis is not answering (no reply to PING within 200 ms); waiting for it',
    });
    const asked = Date.now();
    const hung = await ready(sy.base);
    expect(hung.status).toBe(503);
    expect(hung.json.problems).toEqual(['redis: not answering (no reply to PING within 200 ms)']);
    // From what the watchdog found: at once, not after its own deadline.
    expect(Date.now() - asked).toBeLessThan(READY_CHECK_MS);

    redis.resume();
    await log.waitFor((l) => l.msg === 'Redis is answering again');
    await untilReady(sy.base);
    expect(log.lines.filter((l) => /^Redis is/.test(l.msg)).map((l) => `${l.level} ${l.msg}`)).toEqual([
      '40 Redis is not answering (no reply to PING within 200 ms); waiting for it',
      '30 Redis is answering again',
    ]);
  });

  it('a plan-expiry sweep the hang cuts off adds no second warning: it and its recovery are said at debug', async () => {
    const redis = await ownRedis();
    const log = new CapturedLog('debug');
    const sy = await app(
      redis.url,
      undefined,
      log.logger,
      { intervalMs: 50, timeoutMs: 200 },
      { planExpirySweepMs: 50 },
    );
    expect((await ready(sy.base)).status).toBe(200);

    redis.pause();
    // A sweep's read on the fail-fast connection times out (its command time-out) while Redis hangs.
    const [failed] = await settlesWithin(
      log.waitFor((l) => l.msg.startsWith('could not look for expired plans')),
      15_000,
      'the failed sweep',
    );
    expect(failed).toMatchObject({ level: 20, err: { message: 'Command timed out' } });
    redis.resume();
    await settlesWithin(
      log.waitFor((l) => l.msg === 'looking for expired plans works again'),
      10_000,
      'a sweep that works again',
    );

    expect(log.lines.filter((l) => /expired plans/.test(l.msg)).map((l) => `${l.level} ${l.msg}`)).toEqual([
      `20 ${failed?.msg}`,
      '20 looking for expired plans works again',
    ]);
    // The hang's one warning is the watchdog's.
    expect(log.lines.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual([
      'Redis is not answering (no reply to PING within 200 ms); waiting for it',
    ]);
  });

  it('/readyz names a Redis that does not answer within its deadline, before the watchdog has said so', async () => {
    const redis = await ownRedis();
    const sy = await app(redis.url); // the watchdog's defaults: 5 s without a reply
    redis.pause();
    const hung = await settlesWithin(ready(sy.base), READY_CHECK_MS + 2_000, '/readyz');
    expect(hung.status).toBe(503);
    expect(hung.json.problems).toEqual([
      `redis: not answering (no reply to PING within ${READY_CHECK_MS} ms)`,
    ]);
  });
});

describe('starting without Redis', () => {
  it('fails with a message naming REDIS_URL (password hidden) instead of waiting forever', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sy-outage-app-'));
    closers.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const env = parseEnv({
      PORT: '0',
      LOCAL_ROUTER_PORT: '0',
      REDIS_URL: 'redis://switchyard:s3cret@127.0.0.1:1',
      LOG_LEVEL: 'silent',
    });
    const config: Config = { env, file: fileConfigSchema.parse({}), platform: 'local' };
    const started = startSwitchyard({ config, logger: silentLogger, dataDir, redisTimeoutMs: 300 });
    const err = await settlesWithin(
      started.then(
        () => undefined,
        (e: unknown) => e,
      ),
      10_000,
      'start-up',
    );
    expect(err).toMatchObject({ code: 'redis_unavailable' });
    const message = (err as Error).message;
    expect(message).toContain('Redis at redis://switchyard:***@127.0.0.1:1 (REDIS_URL) did not become ready');
    expect(message).toContain('ECONNREFUSED');
    expect(message).not.toContain('s3cret');
  });
});

describe('the fail-fast Redis connection', () => {
  it('fails at once while Redis is down, never sends a refused command later, and recovers', async () => {
    const redis = await ownRedis();
    const client = createRequestRedis(redis.url);
    client.on('error', () => undefined);
    closers.push(async () => client.disconnect());
    await redisReady(client);
    await client.set('kept', '1');

    await redis.stop();
    const refused = await settlesWithin(
      client.set('refused', '1').catch((e: unknown) => e),
      5_000,
      'a command while Redis is down',
    );
    const err = asSwitchyardError(refused);
    expect(err).toBeInstanceOf(SwitchyardError);
    expect(err.code).toBe('redis_unavailable');
    expect(err.retry).toBe(true);
    expect(err.message).toMatch(/cannot reach its Redis/);

    await redis.start();
    await redisReady(client, 15_000);
    expect(await client.get('kept')).toBe('1'); // AOF: the data survived the restart
    expect(await client.exists('refused')).toBe(0);
  });

  it('reads plainly in chat', () => {
    const view = faultView(
      new Error("Stream isn't writeable and enableOfflineQueue options is false"),
      'run /rollback',
    );
    expect(view.summary).toBe(
      'Switchyard could not run /rollback (its Redis is unreachable). It may work if you try again in a moment.',
    );
  });

  it('tells a Redis outage from other errors', () => {
    expect(asSwitchyardError(new Error('Command timed out')).code).toBe('redis_unavailable');
    expect(asSwitchyardError(new Error('Connection is closed.')).code).toBe('redis_unavailable');
    // a socket error of the deploy platform's API is not a Redis outage
    expect(asSwitchyardError(new Error('connect ECONNREFUSED 10.0.0.1:443')).code).toBe('internal');
    expect(asSwitchyardError(new Error('WRONGTYPE Operation against a key')).code).toBe('internal');
    expect(asSwitchyardError(new TypeError('x is undefined')).code).toBe('internal');
  });
});
