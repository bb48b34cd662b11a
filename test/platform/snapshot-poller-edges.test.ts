/**
 * the snapshot-diffing event poller (src/platform/snapshot-poller.ts): `diffStates`
 * cases no test held (a move while staying rolled back, the previous current no longer listed, a first
 * current deployment, event order), and the poller through the Unkey adapter against the fake Unkey
 * and a real Redis (a listener that throws, the last unsubscribe stopping the loop, a failure that
 * changes kind warned again).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, type Logger } from '../../src/log.js';
import type { PlatformEvent } from '../../src/platform/port.js';
import { diffStates, type PolledState } from '../../src/platform/snapshot-poller.js';
import { UnkeyPlatform } from '../../src/platform/unkey/adapter.js';
import { createRedis, type RedisClient } from '../../src/redis.js';
import { SleepRecordingClock, UnkeyFakeServer } from '../fakes/unkey-server.js';
import { LogLines } from '../jobs/fixtures/logs.js';
import { redisUrl, uniqueName } from '../support/redis.js';

describe('diffStates', () => {
  const state = (
    current: string | null,
    rolledBack: boolean,
    deployments: Record<string, number>,
  ): PolledState => ({
    current,
    rolledBack,
    deployments: Object.fromEntries(
      Object.entries(deployments).map(([id, createdAt]) => [id, { status: 'ready' as const, createdAt }]),
    ),
  });

  it('calls a move that leaves the environment rolled back (a rollback further back) a rollback', () => {
    const prev = state('b', true, { a: 1, b: 2, c: 3 });
    const next = state('a', true, { a: 1, b: 2, c: 3 });
    expect(diffStates('prod', prev, next, 9)).toEqual([
      { type: 'traffic.moved', environment: 'prod', from: 'b', to: 'a', via: 'rollback', at: 9 },
    ]);
  });

  it('dates the previous current deployment from the stored state when the platform no longer lists it', () => {
    // Vercel reads the current deployment on its own when it is older than the pages read: once traffic
    // left it, it is not listed any more. Moving to an older deployment is still a promote.
    const prev = state('x', false, { a: 1, x: 5, n: 9 });
    const next = state('a', false, { a: 1, n: 9 });
    expect(diffStates('prod', prev, next, 9)).toEqual([
      { type: 'traffic.moved', environment: 'prod', from: 'x', to: 'a', via: 'promote', at: 9 },
    ]);
  });

  it('reports the first current deployment of an environment that had none, without a `from`', () => {
    const prev = state(null, false, { a: 1 });
    const next = state('a', false, { a: 1 });
    expect(diffStates('prod', prev, next, 9)).toEqual([
      { type: 'traffic.moved', environment: 'prod', to: 'a', via: 'deploy', at: 9 },
    ]);
  });

  it('emits the status events of several deployments oldest first, whatever order they were listed in', () => {
    const prev = state('a', false, { a: 1 });
    // Listed newest first, as the platforms answer.
    const next = state('a', false, { c: 3, b: 2, a: 1 });
    expect(
      diffStates('prod', prev, next, 9).map((e) => (e as { deploymentId?: string }).deploymentId),
    ).toEqual(['b', 'c']);
  });
});

const KEY = 'unkey_3ZmutantPollerRootKey01234567';
const TIMEOUT = 5_000;
const INTERVAL = 15_000;
const prodEnv = { project: 'acme', app: 'api', environment: 'production' } as const;

let clock: SleepRecordingClock;
let server: UnkeyFakeServer;
let prefix: string;
const redises: RedisClient[] = [];
const platforms: UnkeyPlatform[] = [];
let d3: string;

function replica(logger?: Logger): UnkeyPlatform {
  const redis = createRedis(redisUrl());
  redises.push(redis);
  const p = new UnkeyPlatform({
    environments: { production: prodEnv },
    client: { baseUrl: server.url, rootKey: KEY, clock, timeoutMs: TIMEOUT, random: () => 0.5 },
    clock,
    events: { redis, keyPrefix: prefix, intervalMs: INTERVAL },
    ...(logger === undefined ? {} : { logger }),
  });
  platforms.push(p);
  return p;
}

function strip(events: PlatformEvent[]): unknown[] {
  return events.map(({ at: _at, ...rest }) => rest);
}

/** Lets the poll loop's I/O run until `done` holds (the test's timeout bounds the wait). */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise<void>((r) => setImmediate(r));
}

/** The poll loop's sleeps between rounds so far. */
const intervalSleeps = () => clock.sleeps.filter((ms) => ms === INTERVAL).length;

beforeEach(async () => {
  clock = new SleepRecordingClock();
  prefix = uniqueName('mutant-poll');
  server = await UnkeyFakeServer.start({
    clock,
    rootKeys: { [KEY]: ['environment.*.read_deployment'] },
  });
  server.push({ ...prodEnv, branch: 'main' });
  await clock.advance(1_000);
  d3 = server.push({ ...prodEnv, branch: 'main' });
});

afterEach(async () => {
  for (const p of platforms.splice(0)) await p.close();
  for (const r of redises.splice(0)) r.disconnect();
  await server.close();
});

describe('SnapshotEventPoller', () => {
  it('delivers every event to the other listeners when one listener throws, and logs it', async () => {
    const lines = new LogLines();
    const a = replica(createLogger({ level: 'debug', pretty: false, destination: lines }));
    const subscribe = a.subscribe;
    if (!subscribe) throw new Error('subscribe missing');
    const seen: PlatformEvent[] = [];
    const offThrowing = subscribe(() => {
      throw new Error('listener bug');
    });
    const off = subscribe((e) => seen.push(e));
    await until(() => intervalSleeps() === 1); // baseline recorded, sleeping until the next round
    const d4 = server.push({ ...prodEnv, branch: 'main' });
    const failedPoll = () => lines.parsed.some((l) => String(l.msg).includes('polling production fails'));
    await clock.advance(INTERVAL);
    // The next round done: both events delivered, or the round failed.
    await until(() => seen.length === 2 || failedPoll());
    expect(strip(seen)).toEqual([
      { type: 'deployment.ready', environment: 'production', deploymentId: d4 },
      { type: 'traffic.moved', environment: 'production', from: d3, to: d4, via: 'deploy' },
    ]);
    expect(lines.parsed.filter((l) => l.msg === 'unkey: event listener threw')).toHaveLength(2);
    expect(failedPoll()).toBe(false);
    offThrowing();
    off();
  });

  it('stops polling when the last listener unsubscribes', async () => {
    const a = replica();
    const subscribe = a.subscribe;
    if (!subscribe) throw new Error('subscribe missing');
    const unsubscribe = subscribe(() => undefined);
    await until(() => intervalSleeps() === 1);
    unsubscribe();
    // The loop's sleep is cut short at once (a bounded wait: a loop still running never stops sleeping).
    for (let i = 0; i < 1_000 && clock.parked(TIMEOUT).length > 0; i++) {
      await new Promise<void>((r) => setImmediate(r));
    }
    expect(clock.parked(TIMEOUT)).toEqual([]);
    const reads = server.requests.length;
    await clock.advance(INTERVAL * 3);
    for (let i = 0; i < 200; i++) await new Promise<void>((r) => setImmediate(r));
    expect(server.requests.length).toBe(reads);
  });

  it('warns again when a failing poll fails another way (no answer, then a refused key)', async () => {
    const lines = new LogLines();
    const a = replica(createLogger({ level: 'debug', pretty: false, destination: lines }));
    const poller = a.eventPoller;
    if (!poller) throw new Error('events not configured');
    expect(await poller.pollOnce()).toEqual([]);
    const warned = (from: number) =>
      lines.parsed
        .slice(from)
        .filter((l) => l.levelName === 'warn' && String(l.msg).includes('polling production fails'));

    // Unkey answers 503 to every attempt of one poll (1 + 3 retries): unreachable.
    server.fault({ kind: 'status', status: 503, code: 'service_unavailable' }, 4);
    const from = lines.parsed.length;
    expect(await clock.drive(poller.pollOnce(), TIMEOUT)).toEqual([]);
    expect(warned(from).map((l) => l.msg)).toEqual([
      expect.stringContaining("check that unkey's API answers"),
    ]);

    // Still failing, now with the key refused: another thing to do, said at once.
    server.fault({ kind: 'status', status: 401, code: 'unauthorized' });
    const refused = lines.parsed.length;
    expect(await poller.pollOnce()).toEqual([]);
    expect(warned(refused).map((l) => l.msg)).toEqual([
      expect.stringMatching(/What to do: Unkey rejected the root key \(401 unauthorized\)/),
    ]);
  });
});
