/**
 * Deployment events of the Unkey adapter by polling, against the fake Unkey server and a real Redis:
 * events are emitted once across replicas and restarts, and the subscribe loop runs on the clock.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, type Logger } from '../../src/log.js';
import type { PlatformEvent } from '../../src/platform/port.js';
import { diffStates, type PolledState } from '../../src/platform/snapshot-poller.js';
import { UnkeyPlatform } from '../../src/platform/unkey/adapter.js';
import { createRedis, type RedisClient } from '../../src/redis.js';
import { SleepRecordingClock, UnkeyFakeServer } from '../fakes/unkey-server.js';
import { type LogLine, LogLines } from '../jobs/fixtures/logs.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const KEY = 'unkey_3ZpollerTestRootKey0123456789';
const TIMEOUT = 5_000;
const INTERVAL = 15_000;
const prodEnv = { project: 'acme', app: 'api', environment: 'production' } as const;

let clock: SleepRecordingClock;
let server: UnkeyFakeServer;
let prefix: string;
const redises: RedisClient[] = [];
const platforms: UnkeyPlatform[] = [];
let d2: string;
let d3: string;

function replica(logger?: Logger): UnkeyPlatform {
  const redis = createRedis(redisUrl());
  redises.push(redis);
  const p = new UnkeyPlatform({
    environments: { production: prodEnv },
    client: { baseUrl: server.url, rootKey: KEY, clock, timeoutMs: TIMEOUT },
    clock,
    events: { redis, keyPrefix: prefix, intervalMs: INTERVAL },
    ...(logger === undefined ? {} : { logger }),
  });
  platforms.push(p);
  return p;
}

function poll(p: UnkeyPlatform): Promise<PlatformEvent[]> {
  const poller = p.eventPoller;
  if (!poller) throw new Error('events not configured');
  return poller.pollOnce();
}

function strip(events: PlatformEvent[]): unknown[] {
  return events.map(({ at: _at, ...rest }) => rest);
}

beforeEach(async () => {
  clock = new SleepRecordingClock();
  prefix = uniqueName('unkey-poll');
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
  server.push({ ...prodEnv, branch: 'main' });
  await clock.advance(1_000);
  d2 = server.push({ ...prodEnv, branch: 'main' });
  await clock.advance(1_000);
  d3 = server.push({ ...prodEnv, branch: 'main' });
});

afterEach(async () => {
  for (const p of platforms.splice(0)) await p.close();
  for (const r of redises.splice(0)) r.disconnect();
  await server.close();
});

describe('Unkey event poller', () => {
  it('emits each change once across two replicas and after a restart', async () => {
    const a = replica();
    const b = replica();
    expect(await poll(a)).toEqual([]);
    expect(await poll(b)).toEqual([]);

    const d4 = server.push({ ...prodEnv, branch: 'main' });
    const first = (await Promise.all([poll(a), poll(b)])).flat();
    expect(strip(first)).toEqual([
      { type: 'deployment.ready', environment: 'production', deploymentId: d4 },
      { type: 'traffic.moved', environment: 'production', from: d3, to: d4, via: 'deploy' },
    ]);

    const ref = await a.rollback({ environment: 'production', targetId: d2 });
    await clock.advance(1_000);
    expect((await a.operation(ref)).state).toBe('succeeded');
    const rolled = (await Promise.all([poll(b), poll(a)])).flat();
    expect(strip(rolled)).toEqual([
      { type: 'traffic.moved', environment: 'production', from: d4, to: d2, via: 'rollback' },
    ]);

    // A restarted replica finds the stored state and repeats nothing.
    const c = replica();
    expect(await poll(c)).toEqual([]);

    // A push while rolled back becomes ready but takes no traffic.
    const d5 = server.push({ ...prodEnv, branch: 'main', status: 'building' });
    expect(strip(await poll(c))).toEqual([
      { type: 'deployment.building', environment: 'production', deploymentId: d5 },
    ]);
    server.setStatus(d5, 'ready');
    expect(strip(await poll(a))).toEqual([
      { type: 'deployment.ready', environment: 'production', deploymentId: d5 },
    ]);

    const promote = await b.promote({ environment: 'production', targetId: d5 });
    await clock.advance(1_000);
    expect((await b.operation(promote)).state).toBe('succeeded');
    const promoted = (await Promise.all([poll(a), poll(b), poll(c)])).flat();
    expect(strip(promoted)).toEqual([
      { type: 'traffic.moved', environment: 'production', from: d2, to: d5, via: 'promote' },
    ]);
  });

  it('a superseded queued build emits nothing; a replaced deployment is stopped after 30 minutes, never standby', async () => {
    const a = replica();
    expect(await poll(a)).toEqual([]);
    const queued = server.push({ ...prodEnv, branch: 'main', status: 'pending' });
    expect(strip(await poll(a))).toEqual([
      { type: 'deployment.building', environment: 'production', deploymentId: queued },
    ]);
    // A newer push supersedes the queued build before it ran: no failed, stopped or standby event.
    const newer = server.push({ ...prodEnv, branch: 'main', status: 'pending' });
    expect(strip(await poll(a))).toEqual([
      { type: 'deployment.building', environment: 'production', deploymentId: newer },
    ]);
    // d2 stopped serving when d3 went live: Unkey shuts it down 30 minutes later.
    await clock.advance(30 * 60_000);
    const events = strip(await poll(a));
    expect(events).toContainEqual({
      type: 'deployment.stopped',
      environment: 'production',
      deploymentId: d2,
    });
    expect(events.some((e) => (e as { type: string }).type === 'deployment.standby')).toBe(false);
    expect(events.some((e) => (e as { deploymentId?: string }).deploymentId === queued)).toBe(false);
  });

  it('logs an outage when polling starts failing and when it works again, not at every poll or retry', async () => {
    const lines = new LogLines();
    const a = replica(createLogger({ level: 'debug', pretty: false, destination: lines }));
    expect(await poll(a)).toEqual([]);
    const said = (from: number) =>
      lines.parsed.slice(from).map((l: LogLine) => `${l.levelName}: ${l.msg}`.slice(0, 60));
    const loud = (from: number) => lines.parsed.slice(from).filter((l) => l.level >= 30);

    // Unkey answers 503 to every request of three polls (each read tried 1 + 3 times).
    server.fault({ kind: 'status', status: 503, code: 'service_unavailable' }, 12);
    const from = lines.parsed.length;
    for (let i = 0; i < 3; i++) expect(await clock.drive(poll(a), TIMEOUT)).toEqual([]);
    expect(loud(from).map((l) => [l.levelName, l.environment, l.msg])).toEqual([
      [
        'warn',
        'production',
        "unkey: polling production fails, so its deployment events (and notices) wait until it works again (tried every 15s; a line says when it does). What to do: check that unkey's API answers from this host (network, DNS, proxy) and unkey's status",
      ],
    ]);
    expect(String(loud(from)[0]?.reason)).toMatch(/^PlatformHttpError\[service_unavailable\] 503 POST /);
    // The retries inside the polls, and the polls that failed again, are debug lines.
    expect(said(from).filter((l) => l.startsWith('debug: unkey: retrying'))).toHaveLength(9);
    expect(
      said(from).filter((l) => l.startsWith('debug: unkey: polling production still fails')),
    ).toHaveLength(2);

    // Unkey answers again: said once.
    const back = lines.parsed.length;
    expect(await poll(a)).toEqual([]);
    expect(await poll(a)).toEqual([]);
    expect(loud(back).map((l) => [l.levelName, l.msg, l.failedPolls])).toEqual([
      ['info', 'unkey: polling production works again after 3 failed polls', 3],
    ]);

    // A refused key is another thing to do: said at once, in the words of the refusal.
    server.fault({ kind: 'status', status: 401, code: 'unauthorized' }, 2);
    const refused = lines.parsed.length;
    expect(await poll(a)).toEqual([]);
    expect(await poll(a)).toEqual([]);
    expect(loud(refused).map((l) => l.msg)).toEqual([
      expect.stringMatching(
        /^unkey: polling production fails, .* What to do: Unkey rejected the root key \(401 unauthorized\): .*Set UNKEY_ROOT_KEY to a root key with /,
      ),
    ]);
  });

  it('subscribe polls on the clock and unsubscribe stops it', async () => {
    const a = replica();
    const subscribe = a.subscribe;
    if (!subscribe) throw new Error('subscribe missing');
    const seen: PlatformEvent[] = [];
    let notify: (() => void) | undefined;
    const unsubscribe = subscribe((e) => {
      seen.push(e);
      if (seen.length === 2) notify?.();
    });
    const parked = async () => {
      while (clock.parked(TIMEOUT).length === 0) await new Promise<void>((r) => setImmediate(r));
    };
    await parked(); // baseline poll done, sleeping until the next round
    const d4 = server.push({ ...prodEnv, branch: 'main' });
    const two = new Promise<void>((resolve) => {
      notify = resolve;
    });
    await clock.advance(INTERVAL);
    await two;
    expect(strip(seen)).toEqual([
      { type: 'deployment.ready', environment: 'production', deploymentId: d4 },
      { type: 'traffic.moved', environment: 'production', from: d3, to: d4, via: 'deploy' },
    ]);
    await parked();
    unsubscribe();
    await a.eventPoller?.stop();
    expect(clock.parked(TIMEOUT)).toEqual([]);
  });
});

describe('diffStates', () => {
  const base: PolledState = {
    current: 'a',
    rolledBack: false,
    deployments: { a: { status: 'ready', createdAt: 1 }, b: { status: 'ready', createdAt: 2 } },
  };

  it('reports status changes and a promote to an older deployment', () => {
    const next: PolledState = {
      current: 'a',
      rolledBack: false,
      deployments: { a: { status: 'ready', createdAt: 1 }, b: { status: 'standby', createdAt: 2 } },
    };
    expect(diffStates('prod', base, next, 5)).toEqual([
      { type: 'deployment.standby', environment: 'prod', deploymentId: 'b', at: 5 },
    ]);
    const moved = diffStates('prod', { ...base, current: 'b' }, base, 6);
    expect(moved).toEqual([
      { type: 'traffic.moved', environment: 'prod', from: 'b', to: 'a', via: 'promote', at: 6 },
    ]);
  });

  it('reports nothing when nothing changed', () => {
    expect(diffStates('prod', base, base, 1)).toEqual([]);
  });
});
