/**
 * Notices on the Unkey adapter (against the fake Unkey server, real Redis, ManualClock): events come
 * from polling, each one to a single replica (the poller's compare-and-set), and Unkey does not say
 * since when an environment is rolled back. Two bot replicas still post every notice and reminder
 * exactly once: the replica that missed the rollback event finds it on its periodic recheck and counts
 * reminders from the same first-seen time, kept in Redis.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit.js';
import { type Config, fileConfigSchema, parseEnv } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { type NoticeAudit, type NoticeOutcome, type NoticeService, startNotices } from '../../src/notices.js';
import type { ActingUser } from '../../src/permissions.js';
import type { DeployPlatform, OperationRef } from '../../src/platform/port.js';
import { UnkeyPlatform } from '../../src/platform/unkey/adapter.js';
import { createRedis, deleteKeys, type RedisClient, scanKeys } from '../../src/redis.js';
import { formatTime } from '../../src/views/format.js';
import { SleepRecordingClock, UnkeyFakeServer } from '../fakes/unkey-server.js';
import { CapturedLog } from '../support/captured-log.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { HOUR, idleAll, nth, PolledReplica, RecordingPoster, viewText } from './world.js';

const KEY = 'unkey_3ZnoticesTestRootKey0123456789';
const prodEnv = { project: 'acme', app: 'api', environment: 'production' } as const;
const RECHECK = 15 * 60_000;

let clock: SleepRecordingClock;
let server: UnkeyFakeServer;
let prefix: string;
let redis: RedisClient;
const replicas: PolledReplica[] = [];
const services: NoticeService[] = [];

beforeEach(async () => {
  clock = new SleepRecordingClock();
  prefix = uniqueName('notices-unkey');
  redis = createRedis(redisUrl());
  server = await UnkeyFakeServer.start({
    clock,
    switchDelayMs: 1_000,
    rootKeys: {
      [KEY]: [
        'environment.*.read_deployment',
        'environment.*.rollback_deployment',
        'environment.*.promote_deployment',
      ],
    },
  });
});

afterEach(async () => {
  for (const s of services.splice(0)) await s.stop();
  for (const r of replicas.splice(0)) await r.close();
  await server.close();
  await deleteKeys(redis, await scanKeys(redis, `${prefix}*`));
  await redis.quit();
});

function replica(): PolledReplica {
  const r = new PolledReplica(
    new UnkeyPlatform({
      environments: { production: prodEnv },
      client: { baseUrl: server.url, rootKey: KEY, clock, timeoutMs: 5_000 },
      clock,
      events: { redis, keyPrefix: `${prefix}:poll` },
    }),
  );
  replicas.push(r);
  return r;
}

const config: Config = {
  env: parseEnv({ SLACK_ALERT_CHANNEL: 'C0ALERTS' }),
  file: fileConfigSchema.parse({
    platform: 'unkey',
    environments: { production: { unkey: prodEnv, notices: { reminderEvery: '4h' } } },
  }),
  platform: 'unkey',
};

async function notices(
  platform: DeployPlatform,
  poster: RecordingPoster,
  onOutcome?: (o: NoticeOutcome) => void,
  audit: NoticeAudit = new AuditLog(redis, { prefix }),
): Promise<NoticeService> {
  const s = await startNotices({
    platform,
    redis,
    posters: [poster],
    config,
    audit,
    clock,
    logger: silentLogger,
    prefix: `${prefix}:notices`,
    recheckMs: RECHECK,
    ...(onOutcome === undefined ? {} : { onOutcome }),
  });
  services.push(s);
  await s.idle();
  return s;
}

async function switched(r: PolledReplica, ref: OperationRef): Promise<void> {
  await clock.advance(1_000);
  expect((await r.operation(ref)).state).toBe('succeeded');
}

describe('notices on Unkey (polled events, two replicas)', () => {
  it('announces a dashboard rollback, offers the push made while rolled back, reminds once per slot, stops after a promote', async () => {
    server.push({ ...prodEnv, branch: 'main' });
    await clock.advance(1_000);
    const d2 = server.push({ ...prodEnv, branch: 'main' });
    await clock.advance(1_000);
    const d3 = server.push({ ...prodEnv, branch: 'main' });
    const a = replica();
    const b = replica();
    const poster = new RecordingPoster('slack', clock);
    const start = clock.now();
    const na = await notices(a, poster);
    const nb = await notices(b, poster);
    const both = [na, nb];
    const pumpBoth = async () => {
      const events = (await Promise.all([a.pump(), b.pump()])).flat();
      await idleAll(both);
      return events;
    };
    expect(await pumpBoth()).toEqual([]); // baseline

    // Someone rolls back on the dashboard; only one replica's poll reports it (here: a, polling first).
    await switched(a, await a.rollback({ environment: 'production', targetId: d2 }));
    const moved = await a.pump();
    expect(await b.pump()).toEqual([]);
    await idleAll(both);
    expect(moved.map((e) => e.type)).toEqual(['traffic.moved']);
    const firstSeen = clock.now();
    expect(poster.titles()).toEqual([`Traffic on production moved to ${d2}`]);
    expect(d3).not.toBe(d2);

    // A push while rolled back: ready but not live, with Promote.
    const d5 = server.push({ ...prodEnv, branch: 'main', status: 'building' });
    await pumpBoth();
    server.setStatus(d5, 'ready');
    await pumpBoth();
    expect(poster.titles().slice(1)).toEqual([`${d5} is ready but not live`]);
    expect(poster.posts[1]?.view.buttons.map((x) => x.actionId)).toEqual([`sy1:promote:production:${d5}`]);

    // The replica that missed the event finds the rolled-back state on its recheck.
    await clock.advance(start + RECHECK - clock.now());
    await idleAll(both);
    // Both replicas are due at the same slot; one posts it.
    await clock.advance(firstSeen + 4 * HOUR - clock.now());
    await idleAll(both);
    // The replica that saw the event goes away: the other one keeps reminding.
    await na.stop();
    await clock.advance(4 * HOUR);
    await idleAll([nb]);
    const reminders = poster.posts.filter((p) => p.view.title === `production is still rolled back to ${d2}`);
    expect(reminders.map((p) => p.at)).toEqual([firstSeen + 4 * HOUR, firstSeen + 8 * HOUR]);
    expect(reminders[0]?.view.buttons.map((x) => x.label)).toEqual([`Promote ${d5}`]);

    // Promoted on the dashboard: announced, and no more reminders.
    await switched(b, await b.promote({ environment: 'production', targetId: d5 }));
    // Only b runs now. (Deployments replaced over 30 minutes ago were stopped meanwhile: not selected.)
    expect((await b.pump()).map((e) => e.type)).toContain('traffic.moved');
    await idleAll([nb]);
    expect(poster.titles().at(-1)).toBe(`Traffic on production moved to ${d5}`);
    const before = poster.posts.length;
    // Step by recheck interval, so every poll of Unkey completes before the clock moves on.
    while (clock.now() < firstSeen + 12 * HOUR) {
      await clock.advance(RECHECK);
      await idleAll([nb]);
    }
    expect(poster.posts).toHaveLength(before);
  });

  it('closes the "ready but not live" notice once the replica whose poll saw the promote handles it (no history: the event says when)', async () => {
    server.push({ ...prodEnv, branch: 'main' });
    await clock.advance(1_000);
    const d2 = server.push({ ...prodEnv, branch: 'main' });
    await clock.advance(1_000);
    server.push({ ...prodEnv, branch: 'main' });
    const a = replica();
    const b = replica();
    const poster = new RecordingPoster('slack', clock);
    const outcomes: NoticeOutcome[] = [];
    const na = await notices(a, poster, (o) => outcomes.push(o));
    const nb = await notices(b, poster, (o) => outcomes.push(o));
    const both = [na, nb];
    const pumpBoth = async () => {
      await Promise.all([a.pump(), b.pump()]);
      await idleAll(both);
    };
    await pumpBoth(); // baseline

    await switched(a, await a.rollback({ environment: 'production', targetId: d2 }));
    await a.pump();
    await idleAll(both);
    const d5 = server.push({ ...prodEnv, branch: 'main', status: 'building' });
    await pumpBoth();
    server.setStatus(d5, 'ready');
    await pumpBoth();
    const offer = poster.posts.find((p) => p.view.title === `${d5} is ready but not live`);
    if (!offer) throw new Error('expected the offer');

    // Promoted on the dashboard; only b's poll reports it. Unkey keeps no history and says nobody.
    await switched(b, await b.promote({ environment: 'production', targetId: d5 }));
    const seenAt = clock.now();
    expect((await b.pump()).map((e) => e.type)).toContain('traffic.moved');
    await idleAll(both);
    expect(poster.updates.map((u) => [u.ref, u.view.title, u.view.summary])).toEqual([
      [
        offer.ref,
        `${d5} went live on production`,
        `${d5} went live on production (promoted at ${formatTime(seenAt)}).`,
      ],
    ]);
    expect(poster.updates[0]?.view.buttons).toEqual([]);

    // The other replica's recheck finds nothing left to close.
    await clock.advance(RECHECK);
    await idleAll(both);
    await clock.advance(RECHECK);
    await idleAll(both);
    expect(poster.updates).toHaveLength(1);
    expect(outcomes.filter((o) => o.status === 'closed')).toHaveLength(1);
  });
});

describe("since when and by whom, from Switchyard's own record (as /promote and /deployments read it)", () => {
  const alice: ActingUser = { surface: 'slack', userId: 'U0ALICE', displayName: 'Alice' };

  /** What Switchyard's switch job writes once its rollback from `fromId` to `targetId` succeeded. */
  const rolledBack = (fromId: string, targetId: string, actor: ActingUser = alice, at = clock.now()) =>
    new AuditLog(redis, { prefix }).append({
      at,
      environment: 'production',
      action: 'rollback',
      event: 'succeeded',
      actor,
      planId: 'plan_1',
      jobId: 'job_1',
      fromId,
      targetId,
    });

  /** Three deployments of main, the newest live; one replica polling Unkey. */
  async function production(): Promise<{ d1: string; d2: string; d3: string; a: PolledReplica }> {
    const d1 = server.push({ ...prodEnv, branch: 'main' });
    await clock.advance(1_000);
    const d2 = server.push({ ...prodEnv, branch: 'main' });
    await clock.advance(1_000);
    const d3 = server.push({ ...prodEnv, branch: 'main' });
    return { d1, d2, d3, a: replica() };
  }

  /** Pushes to main and lets the replica's polls see it build and become ready. */
  async function pushReady(a: PolledReplica, n: NoticeService): Promise<string> {
    const d = server.push({ ...prodEnv, branch: 'main', status: 'building' });
    await a.pump();
    await idleAll([n]);
    server.setStatus(d, 'ready');
    await a.pump();
    await idleAll([n]);
    return d;
  }

  /** Advances the clock to `end` by recheck intervals, so each check finishes before the clock moves on. */
  async function until(end: number, services: readonly NoticeService[]): Promise<void> {
    while (clock.now() < end) {
      await clock.advance(Math.min(RECHECK, end - clock.now()));
      await idleAll(services);
    }
  }

  /** The one post titled `title`. */
  function titled(poster: RecordingPoster, title: string) {
    const found = poster.posts.filter((p) => p.view.title === title);
    expect(found, title).toHaveLength(1);
    return nth(found, 0);
  }

  it('a bot started 20 minutes after Switchyard rolled back counts reminders from the rollback and names who asked', async () => {
    // notices.ts: the reminder counted from the first time a replica saw the rollback and named no one.
    const { d2, d3, a } = await production();
    await switched(a, await a.rollback({ environment: 'production', targetId: d2 }));
    const rolledAt = clock.now();
    await rolledBack(d3, d2);
    await clock.advance(20 * 60_000);
    const poster = new RecordingPoster('slack', clock);
    const n = await notices(a, poster);
    expect(await a.pump()).toEqual([]); // the poll starts from the state it finds: rolled back

    const d5 = await pushReady(a, n);
    const offer = viewText(titled(poster, `${d5} is ready but not live`).view);
    expect(offer).toContain(`Rolled back since ${formatTime(rolledAt)} (`);
    expect(offer).toContain(' by Alice');

    await until(rolledAt + 4 * HOUR, [n]);
    await until(rolledAt + 4 * HOUR + RECHECK, [n]);
    const reminder = titled(poster, `production is still rolled back to ${d2}`);
    expect(reminder.at).toBe(rolledAt + 4 * HOUR);
    expect(viewText(reminder.view)).toContain(`(since ${formatTime(rolledAt)}, by Alice).`);
  });

  it('a period first seen before its rollback was read from the audit keeps its key across a restart: nothing closed or reminded again', async () => {
    // notices.ts rolledBackPeriod(): keyed by the audit's time once it is read, the period a replica
    // opened by its first-seen time would be closed as "rolled back again" and reminded on its own slots.
    const { d2, d3, a } = await production();
    await switched(a, await a.rollback({ environment: 'production', targetId: d2 }));
    const rolledAt = clock.now();
    await rolledBack(d3, d2);
    await clock.advance(10 * 60_000);
    // The first bot cannot read the audit (or is a version that did not): it counts from now.
    const poster = new RecordingPoster('slack', clock);
    const unread: NoticeAudit = { recent: () => Promise.reject(new Error('audit unavailable')) };
    const first = await notices(a, poster, undefined, unread);
    const seenAt = clock.now();
    expect(await a.pump()).toEqual([]);
    const d5 = await pushReady(a, first);
    const offer = titled(poster, `${d5} is ready but not live`);
    await first.stop();

    // Restarted 30 minutes later, reading the audit.
    await clock.advance(30 * 60_000);
    const second = await notices(a, poster);
    await until(seenAt + 4 * HOUR, [second]);
    await until(seenAt + 4 * HOUR + RECHECK, [second]);
    expect(poster.updates, 'a notice of the open period was closed').toEqual([]);
    const reminder = titled(poster, `production is still rolled back to ${d2}`);
    expect(reminder.at).toBe(seenAt + 4 * HOUR);
    expect(viewText(reminder.view)).toContain(`(since ${formatTime(rolledAt)}, by Alice).`);

    // Promoted: both close, and the reminder keeps saying since when it was rolled back.
    await switched(a, await a.promote({ environment: 'production', targetId: d5 }));
    await a.pump();
    await idleAll([second]);
    expect(poster.editsOf(offer).map((v) => v.title)).toEqual([`${d5} went live on production`]);
    const closed = poster.editsOf(reminder);
    expect(closed).toHaveLength(1);
    expect(nth(closed, 0).summary).toContain(`rolled back to ${d2} from ${formatTime(rolledAt)} to `);
  });
  it('a second rollback further back is its own period, reminded from that rollback and naming who asked for it', async () => {
    // notices.ts rolledBackPeriod(): the own record's period start (the first rollback) keyed the second
    // rollback's period, so its first reminder came 20 minutes early, naming the first rollback's asker
    // and time (the local platform counts from the second rollback).
    const bob: ActingUser = { surface: 'slack', userId: 'U0BOB', displayName: 'Bob' };
    const { d1, d2, d3, a } = await production();
    const poster = new RecordingPoster('slack', clock);
    const n = await notices(a, poster);
    await switched(a, await a.rollback({ environment: 'production', targetId: d2 }));
    await rolledBack(d3, d2);
    await a.pump();
    await idleAll([n]);
    // Twenty minutes later, further back (Unkey stops a production deployment 30 minutes after it
    // stopped serving: d1 still runs).
    await until(clock.now() + 20 * 60_000, [n]);

    await switched(a, await a.rollback({ environment: 'production', targetId: d1 }));
    const againAt = clock.now();
    await rolledBack(d2, d1, bob);
    await a.pump();
    await idleAll([n]);
    await until(againAt + 4 * HOUR - RECHECK, [n]);
    const title = `production is still rolled back to ${d1}`;
    expect(poster.posts.filter((p) => p.view.title === title)).toEqual([]);
    await until(againAt + 4 * HOUR + RECHECK, [n]);
    const reminder = titled(poster, title);
    expect(reminder.at).toBe(againAt + 4 * HOUR);
    expect(viewText(reminder.view)).toContain(`(since ${formatTime(againAt)}, by Bob).`);
  });
});

describe('reminder checks Unkey refuses (a bad root key)', () => {
  const RETRY = 60_000;
  /** Notices logging into `log`, on `platform`; the reminder check runs at start and every RETRY on failure. */
  async function noticesLogging(platform: DeployPlatform, log: CapturedLog): Promise<NoticeService> {
    const s = await startNotices({
      platform,
      redis,
      posters: [new RecordingPoster('slack', clock)],
      config,
      audit: new AuditLog(redis, { prefix }),
      clock,
      logger: log.logger,
      prefix: `${prefix}:notices`,
      recheckMs: RECHECK,
      retryMs: RETRY,
    });
    services.push(s);
    await s.idle();
    return s;
  }
  const warnings = (log: CapturedLog) => log.lines.filter((l) => l.level >= 40);

  it('are said once, at WARN without a stack, naming UNKEY_ROOT_KEY, not on every retry', async () => {
    server.push({ ...prodEnv, branch: 'main' });
    const wrong = new PolledReplica(
      new UnkeyPlatform({
        environments: { production: prodEnv },
        client: {
          baseUrl: server.url,
          rootKey: 'unkey_3ZwrongRootKey0000000000000000',
          clock,
          timeoutMs: 5_000,
        },
        clock,
        events: { redis, keyPrefix: `${prefix}:poll` },
      }),
    );
    replicas.push(wrong);
    const log = new CapturedLog('debug');
    const s = await noticesLogging(wrong, log);
    for (let i = 0; i < 5; i++) {
      await clock.advance(RETRY);
      await s.idle();
    }
    // Six checks were refused: the platform was asked each time.
    expect(
      server.requests.filter((r) => r.endpoint === 'deployments.listDeployments').length,
    ).toBeGreaterThanOrEqual(6);
    const [warning, ...more] = warnings(log);
    expect(more).toEqual([]);
    expect(warning).toMatchObject({ level: 40, environment: 'production', code: 'platform_unauthorized' });
    expect(warning?.msg).toContain('reminder check of production is refused (platform_unauthorized)');
    expect(warning?.msg).toContain('Set UNKEY_ROOT_KEY');
    expect(warning).not.toHaveProperty('err');
    expect(log.lines.filter((l) => /still refused/.test(l.msg))).toHaveLength(5);
  });

  it('a refusal of another kind is said again, and a check that works again says so', async () => {
    server.push({ ...prodEnv, branch: 'main' });
    const r = replica();
    const log = new CapturedLog();
    const unauthorized = { kind: 'status', status: 401, code: 'authentication/key_not_found' } as const;
    server.fault(unauthorized, 3);
    const s = await noticesLogging(r, log);
    for (let i = 0; i < 2; i++) {
      await clock.advance(RETRY);
      await s.idle();
    }
    // Now the key lacks a permission (403), twice; then the check works.
    server.fault({ kind: 'status', status: 403, code: 'authorization/insufficient_permissions' }, 2);
    for (let i = 0; i < 3; i++) {
      await clock.advance(RETRY);
      await s.idle();
    }
    expect(warnings(log).map((l) => l.code)).toEqual(['platform_unauthorized', 'platform_forbidden']);
    expect(log.lines.filter((l) => l.level < 40).map((l) => [l.level, l.msg])).toEqual([
      [30, 'unkey: the reminder check of production works again'],
    ]);
  });
});
