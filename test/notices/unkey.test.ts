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
import { type NoticeOutcome, type NoticeService, startNotices } from '../../src/notices.js';
import type { DeployPlatform, OperationRef } from '../../src/platform/port.js';
import { UnkeyPlatform } from '../../src/platform/unkey/adapter.js';
import { createRedis, deleteKeys, type RedisClient, scanKeys } from '../../src/redis.js';
import { formatTime } from '../../src/views/format.js';
import { SleepRecordingClock, UnkeyFakeServer } from '../fakes/unkey-server.js';
import { CapturedLog } from '../support/captured-log.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { HOUR, idleAll, PolledReplica, RecordingPoster } from './world.js';

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
): Promise<NoticeService> {
  const s = await startNotices({
    platform,
    redis,
    posters: [poster],
    config,
    audit: new AuditLog(redis, { prefix }),
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
