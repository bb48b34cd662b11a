/**
 * Notices on the Vercel adapter (against the fake Vercel server, real Redis, ManualClock): events come
 * from polling, each one to a single replica, and Vercel keeps no live history. What its state tells of
 * how the current deployment went live (its record of the last rollback or promote, and the
 * deployments: `derivedLive`) says how a rolled-back period ended when no event this replica received
 * does.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit.js';
import { ManualClock } from '../../src/clock.js';
import { type Config, fileConfigSchema, parseEnv } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { type NoticeService, startNotices } from '../../src/notices.js';
import { VercelPlatform } from '../../src/platform/vercel/adapter.js';
import { createRedis, deleteKeys, type RedisClient, scanKeys } from '../../src/redis.js';
import { VercelFakeServer } from '../fakes/vercel-server.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { idleAll, nth, PolledReplica, RecordingPoster } from './world.js';

const TOKEN = 'vcp_noticesTestToken0123456789abcd';
const MIN = 60_000;
const RECHECK = 15 * MIN;

let clock: ManualClock;
let server: VercelFakeServer;
let projectId: string;
let prefix: string;
let redis: RedisClient;
const replicas: PolledReplica[] = [];
const services: NoticeService[] = [];

beforeEach(async () => {
  clock = new ManualClock();
  prefix = uniqueName('notices-vercel');
  redis = createRedis(redisUrl());
  server = await VercelFakeServer.start({ clock, tokens: { [TOKEN]: ['personal'] } });
  projectId = server.addProject({ name: 'acme-web', domains: [{ name: 'shop.acme.com' }] });
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
    new VercelPlatform({
      project: 'acme-web',
      // The clock jumps minutes while a check's requests are under way: their time limit (on that
      // clock) must not run out meanwhile (the fake answers at once).
      client: { baseUrl: server.url, token: TOKEN, timeoutMs: 24 * 60 * MIN, maxRetries: 0 },
      clock,
      events: { redis, keyPrefix: `${prefix}:poll` },
    }),
  );
  replicas.push(r);
  return r;
}

const config: Config = {
  env: parseEnv({ SLACK_ALERT_CHANNEL: 'C0ALERTS' }),
  file: fileConfigSchema.parse({ environments: { production: { notices: { reminderEvery: '4h' } } } }),
  platform: 'vercel',
};

async function notices(platform: PolledReplica, poster: RecordingPoster): Promise<NoticeService> {
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
  });
  services.push(s);
  await s.idle();
  return s;
}

/** A rollback or promote made on Vercel's dashboard (its alias job runs to the end). */
async function onDashboard(r: PolledReplica, action: 'rollback' | 'promote', targetId: string) {
  const ref = await r[action]({ environment: 'production', targetId });
  server.finishAliasJob(projectId);
  expect((await r.operation(ref)).state).toBe('succeeded');
}

describe('notices on Vercel (polled events, no live history)', () => {
  it('a dashboard resume, then an automatic deploy another replica polled: closed as that deploy, not as a promote', async () => {
    const d1 = server.deploy({ project: projectId });
    await clock.advance(60 * MIN);
    server.deploy({ project: projectId });
    await clock.advance(10 * MIN);
    // `b` runs the notices; `a` is another replica whose notices service is not running (stopping):
    // what its poll reports reaches no notices service.
    const a = replica();
    const b = replica();
    const poster = new RecordingPoster('slack', clock);
    const nb = await notices(b, poster);
    const pump = async () => {
      const events = await b.pump();
      await idleAll([nb]);
      return events;
    };
    expect(await pump()).toEqual([]); // baseline

    await onDashboard(b, 'rollback', d1);
    expect((await pump()).map((e) => e.type)).toEqual(['traffic.moved']);
    const d3 = server.deploy({ project: projectId });
    await pump();
    const offer = poster.posts.filter((p) => p.view.title === `${d3} is ready but not live`);
    expect(offer).toHaveLength(1);

    // Five minutes on, resumed on the dashboard (a promote of d1: nothing moves, no event). Four
    // minutes later a push goes live by itself; `a`'s poll reports it. (Both before `b`'s next check.)
    await clock.advance(5 * MIN);
    await onDashboard(b, 'promote', d1);
    expect(await pump()).toEqual([]);
    await clock.advance(4 * MIN);
    const d4 = server.deploy({ project: projectId });
    expect((await a.pump()).filter((e) => e.type === 'traffic.moved')).toMatchObject([
      { from: d1, to: d4, via: 'deploy' },
    ]);
    expect(poster.updates).toEqual([]);

    // `b`'s next check finds the period over, and Vercel's state says how.
    await clock.advance(RECHECK);
    await idleAll([nb]);
    const closed = poster.editsOf(nth(offer, 0));
    expect(closed.map((v) => v.summary)).toEqual([
      `${d3} did not go live: automatic deploys resumed on production; ${d1} stayed live until ${d4} went live by an automatic deploy.`,
    ]);
  });

  it('the deployment offered promoted, then an automatic deploy, both polled by another replica: it went live', async () => {
    const d1 = server.deploy({ project: projectId });
    await clock.advance(60 * MIN);
    server.deploy({ project: projectId });
    await clock.advance(10 * MIN);
    const a = replica();
    const b = replica();
    const poster = new RecordingPoster('slack', clock);
    const nb = await notices(b, poster);
    const pump = async () => {
      await b.pump();
      await idleAll([nb]);
    };
    await pump(); // baseline
    await onDashboard(b, 'rollback', d1);
    await pump();
    const d3 = server.deploy({ project: projectId });
    await pump();
    const offer = poster.posts.filter((p) => p.view.title === `${d3} is ready but not live`);
    expect(offer).toHaveLength(1);

    // d3 promoted on the dashboard, and four minutes later a push goes live by itself: `a`'s polls
    // report both. Vercel's state says d3 was live before the push: d3 went live (d1 did not stay).
    await clock.advance(5 * MIN);
    await onDashboard(b, 'promote', d3);
    expect((await a.pump()).filter((e) => e.type === 'traffic.moved')).toMatchObject([{ to: d3 }]);
    await clock.advance(4 * MIN);
    const d4 = server.deploy({ project: projectId });
    expect((await a.pump()).filter((e) => e.type === 'traffic.moved')).toMatchObject([{ to: d4 }]);

    await clock.advance(RECHECK);
    await idleAll([nb]);
    expect(poster.editsOf(nth(offer, 0)).map((v) => v.summary)).toEqual([
      `${d3} went live on production (promoted).`,
    ]);
  });
});
