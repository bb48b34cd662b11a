/**
 * The embedded local platform against every sentence of seed-rollbacks.txt, on a ManualClock.
 */

import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { buildPlan } from '../../src/domain/plan.js';
import { RefusalError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { LocalPlatformClient } from '../../src/platform/local/client.js';
import { demoState } from '../../src/platform/local/demo.js';
import { createLocalApi } from '../../src/platform/local/http-api.js';
import {
  DEPLOYMENTS_KEPT,
  LIVE_HISTORY_KEPT,
  LocalPlatform,
  OPERATIONS_KEPT,
  PREVIEW_IDLE_MS,
  STANDBY_AFTER_MS,
  type TrafficPlane,
} from '../../src/platform/local/platform.js';
import { probe, TrafficRouter } from '../../src/platform/local/router.js';
import type { LocalDeployment, LocalState } from '../../src/platform/local/state.js';
import type { OperationRef, PlatformEvent } from '../../src/platform/port.js';
import { jobIdForPlan, switchKeys } from '../../src/queue.js';
import { createRedis } from '../../src/redis.js';
import { Cleanup, jobData, planFor, RecordingReporter } from '../jobs/fixtures/harness.js';
import { ObservableClock } from '../jobs/fixtures/platform-server.js';
import { jobsSeed, seedIds } from '../jobs/fixtures/seed.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { openTestQueue, QUICK_RETRIES, startTestWorker } from '../support/switch-worker.js';
import { startTestSwitchyard } from '../support/switchyard.js';

const MIN = 60_000;
let platform: LocalPlatform | undefined;

afterEach(async () => {
  await platform?.close();
  platform = undefined;
});

async function open(clock = new ManualClock(), extra: { stateFile?: string } = {}) {
  platform = await LocalPlatform.open({ clock, buildTimeMs: 3000, reactivationTimeMs: 1500, ...extra });
  return { platform, clock };
}

async function finish(p: LocalPlatform, clock: ManualClock, ref: OperationRef): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const status = await p.operation(ref);
    if (status.state === 'succeeded' || status.state === 'failed') return status.state;
    await clock.advance(500);
    await new Promise((r) => setImmediate(r));
  }
  throw new Error('operation did not finish');
}

describe('LocalPlatform demo project', () => {
  it('loads production and preview with a current deployment and domains of every stickiness', async () => {
    const { platform: p } = await open();
    expect(await p.listEnvironments()).toEqual(['production', 'preview']);
    const snap = await p.snapshot('production');
    expect(snap.environment.currentDeploymentId).toBe('dep_4kq9wz');
    expect(snap.deployments.length).toBeGreaterThanOrEqual(4);
    expect(new Set(snap.domains.map((d) => d.stickiness))).toEqual(
      new Set(['live', 'environment', 'branch', 'deployment']),
    );
  });

  it('moves production deployments that stopped serving more than 30 minutes ago to standby', async () => {
    const { platform: p } = await open();
    const snap = await p.snapshot('production');
    // dep_3hd7xa stopped serving 40 minutes ago in the demo
    expect(snap.deployments.find((d) => d.id === 'dep_3hd7xa')?.status).toBe('standby');
    expect(snap.deployments.find((d) => d.id === 'dep_4kq9wz')?.status).toBe('ready');
  });
});

describe('rollback (seed: atomic switch, rolled-back state)', () => {
  it('reassigns the environment and branch domains to the target, reactivating a standby target first', async () => {
    const { platform: p, clock } = await open();
    const snap = await p.snapshot('production');
    const plan = buildPlan(snap, { action: 'rollback', now: clock.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    expect(plan.value.target.id).toBe('dep_3hd7xa');
    expect(plan.value.targetStandby).toBe(true);
    const ref = await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa', requestedBy: 'alice' });
    expect((await p.operation(ref)).state).toBe('reactivating');
    expect(await finish(p, clock, ref)).toBe('succeeded');
    const after = await p.snapshot('production');
    expect(after.environment.currentDeploymentId).toBe('dep_3hd7xa');
    expect(after.environment.rolledBack).toBe(true);
    expect(after.environment.rolledBackBy).toBe('alice');
    const routes = await p.routing('production');
    for (const r of routes) {
      if (r.stickiness === 'live' || r.stickiness === 'environment' || r.stickiness === 'branch')
        expect(r.deploymentId).toBe('dep_3hd7xa');
    }
    // deployment-bound domains never move
    expect(routes.find((r) => r.hostname === 'dep-4kq9wz.acme.localhost')?.deploymentId).toBe('dep_4kq9wz');
    expect(after.deployments.find((d) => d.id === 'dep_3hd7xa')?.status).toBe('ready');
  });

  it('only the environment where the rollback was triggered is rolled back', async () => {
    const { platform: p, clock } = await open();
    await finish(p, clock, await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' }));
    expect((await p.snapshot('preview')).environment.rolledBack).toBe(false);
  });

  it('a new push while rolled back becomes ready but gets no domains; promote restores normal behaviour', async () => {
    const { platform: p, clock } = await open();
    await finish(p, clock, await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' }));
    const pushed = await p.push({ environment: 'production', branch: 'main', message: 'fix' });
    expect(pushed.status).toBe('building');
    await clock.advance(3000);
    await p.settle();
    const snap = await p.snapshot('production');
    expect(snap.deployments.find((d) => d.id === pushed.id)?.status).toBe('ready');
    expect(snap.environment.currentDeploymentId).toBe('dep_3hd7xa');
    expect(snap.domains.filter((d) => d.deploymentId === pushed.id).map((d) => d.stickiness)).toEqual([
      'deployment',
    ]);
    // promote the new deployment: domains move, rolled-back state cleared
    await finish(p, clock, await p.promote({ environment: 'production', targetId: pushed.id }));
    const promoted = await p.snapshot('production');
    expect(promoted.environment.rolledBack).toBe(false);
    expect(promoted.environment.currentDeploymentId).toBe(pushed.id);
    // after promoting, the next successful deployment from a push automatically receives traffic again
    const next = await p.push({ environment: 'production', branch: 'main' });
    await clock.advance(3000);
    await p.settle();
    expect((await p.snapshot('production')).environment.currentDeploymentId).toBe(next.id);
  });

  it('promote of the current deployment while rolled back resumes automatic deploys without moving a domain', async () => {
    const { platform: p, clock } = await open();
    await finish(p, clock, await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' }));
    const before = await p.routing('production');
    const events: PlatformEvent[] = [];
    p.subscribe((e) => events.push(e));
    await finish(p, clock, await p.promote({ environment: 'production', targetId: 'dep_3hd7xa' }));
    expect(await p.routing('production')).toEqual(before);
    expect((await p.snapshot('production')).environment.rolledBack).toBe(false);
    expect(events.filter((e) => e.type === 'traffic.moved')).toEqual([]);
  });

  it('refuses what the platform refuses: current target, building target, stopped target, wrong environment', async () => {
    const { platform: p, clock } = await open();
    await expect(p.rollback({ environment: 'production', targetId: 'dep_4kq9wz' })).rejects.toMatchObject({
      code: 'target_is_current',
    });
    const building = await p.push({ environment: 'production' });
    await expect(p.rollback({ environment: 'production', targetId: building.id })).rejects.toMatchObject({
      code: 'target_not_ready',
    });
    await p.stop('dep_1ab3cd');
    await expect(p.rollback({ environment: 'production', targetId: 'dep_1ab3cd' })).rejects.toMatchObject({
      code: 'target_stopped',
    });
    await expect(p.rollback({ environment: 'production', targetId: 'dep_p2fe8r' })).rejects.toBeInstanceOf(
      RefusalError,
    );
    await expect(p.promote({ environment: 'production', targetId: 'dep_4kq9wz' })).rejects.toMatchObject({
      code: 'target_is_current',
    });
    await clock.advance(3000);
  });

  it('a refused switch changes nothing', async () => {
    const { platform: p } = await open();
    const before = p.dump();
    await expect(p.rollback({ environment: 'production', targetId: 'dep_4kq9wz' })).rejects.toBeInstanceOf(
      RefusalError,
    );
    expect(p.dump()).toEqual(before);
  });

  it('a second switch of the same environment while one runs is answered as a retryable operation in progress', async () => {
    const { platform: p, clock } = await open();
    const ref = await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' });
    await expect(p.rollback({ environment: 'production', targetId: 'dep_2mc5ty' })).rejects.toMatchObject({
      code: 'operation_in_progress',
      retry: true,
    });
    await finish(p, clock, ref);
  });
});

describe('time rules', () => {
  it('the previous production deployment moves to standby 30 minutes after it stopped serving', async () => {
    const { platform: p, clock } = await open();
    const pushed = await p.push({ environment: 'production' });
    await clock.advance(3000);
    await p.settle();
    expect((await p.getDeployment('dep_4kq9wz'))?.status).toBe('ready');
    await clock.advance(STANDBY_AFTER_MS - 3 * MIN);
    expect((await p.getDeployment('dep_4kq9wz'))?.status).toBe('ready');
    await clock.advance(4 * MIN);
    expect((await p.getDeployment('dep_4kq9wz'))?.status).toBe('standby');
    expect((await p.getDeployment(pushed.id))?.status).toBe('ready');
  });

  it('preview deployments stay running until idle for six hours, then go to standby', async () => {
    const { platform: p, clock } = await open();
    expect((await p.getDeployment('dep_p1rw4n'))?.status).toBe('standby'); // idle 7 h in the demo
    const first = await p.push({ environment: 'preview', branch: 'feature-x' });
    await clock.advance(3000);
    await p.settle();
    const second = await p.push({ environment: 'preview', branch: 'feature-x' });
    await clock.advance(3000);
    await p.settle();
    // the second took the feature-x branch domain; the first holds nothing but keeps running
    expect((await p.getDeployment(first.id))?.status).toBe('ready');
    await clock.advance(PREVIEW_IDLE_MS - 10 * MIN);
    expect((await p.getDeployment(first.id))?.status).toBe('ready');
    await clock.advance(20 * MIN);
    expect((await p.getDeployment(first.id))?.status).toBe('standby');
    // the one holding the branch domain had no request either: it idles too (a request wakes it)
    expect((await p.getDeployment(second.id))?.status).toBe('standby');
    // production's serving deployment never idles, however long without a request
    expect((await p.getDeployment('dep_4kq9wz'))?.status).toBe('ready');
    expect(await p.wake('dep_4kq9wz')).toBe(false);
  });
});

describe('preview idle rule with the router (wake on request)', () => {
  let router: TrafficRouter | undefined;
  afterEach(async () => {
    await router?.close();
    router = undefined;
  });

  /** The demo platform on a ManualClock behind a real router that wakes its deployments. */
  async function openWithRouter() {
    const clock = new ManualClock();
    let local: LocalPlatform | undefined;
    router = new TrafficRouter({
      clock,
      warmSockets: 1,
      wake: (id) => local?.wake(id) ?? Promise.resolve(false),
    });
    const port = await router.listen();
    local = await LocalPlatform.open({ clock, traffic: router, buildTimeMs: 3000, reactivationTimeMs: 1500 });
    platform = local;
    return { clock, local, port, router };
  }

  /** Yields until code under test parks one more sleep on the clock (a wake-up started). */
  async function parked(clock: ManualClock, before: number): Promise<void> {
    for (let i = 0; i < 100_000 && clock.pending === before; i++) await new Promise((r) => setImmediate(r));
    expect(clock.pending).toBe(before + 1);
  }

  it('a request held while its deployment wakes is answered 503 at once when the operator stops the deployment during the wake-up, not after the drain time-out', async () => {
    // platform.ts wake(): it waited for its own stop of the upstream it had just started, whose drain
    // (router.ts) waits for the requests held for that very wake-up: both waited for drainTimeoutMs.
    const clock = new ManualClock();
    let local: LocalPlatform | undefined;
    const r = new TrafficRouter({
      clock,
      warmSockets: 1,
      drainTimeoutMs: 600_000,
      wake: (id) => local?.wake(id) ?? Promise.resolve(false),
    });
    router = r;
    const port = await r.listen();
    // The operator stops the deployment while its upstream starts for the wake-up.
    const traffic: TrafficPlane = {
      applyRoutes: (routes) => r.applyRoutes(routes),
      startUpstream: (d) => {
        const started = r.startUpstream(d);
        void local?.stop(d.id).catch(() => undefined);
        return started;
      },
      stopUpstream: (id) => r.stopUpstream(id),
      upstreamStats: (id) => r.upstreamStats(id),
    };
    local = await LocalPlatform.open({ clock, traffic, buildTimeMs: 3000, reactivationTimeMs: 1500 });
    platform = local;
    // An older preview deployment in standby, reached on its own domain (not its environment's current
    // deployment, which the operator may not stop).
    expect((await local.getDeployment('dep_p1rw4n'))?.status).toBe('standby');

    const sleepers = clock.pending;
    const answer = new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, path: '/', headers: { host: 'dep-p1rw4n.acme.localhost' }, agent: false },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res));
        },
      );
      req.on('error', reject);
      req.end();
    });
    await parked(clock, sleepers);
    await clock.advance(1500);

    const res = await answer;
    expect(res.statusCode).toBe(503);
    expect((await local.getDeployment('dep_p1rw4n'))?.status).toBe('stopped');
    await local.settle();
    expect(r.runningUpstreams()).not.toContain('dep_p1rw4n');
    expect(r.stats()).toMatchObject({ inFlight: 0 });
  });

  it('holds a request with a body while the deployment wakes and streams it through intact; a client that gives up is let go', async () => {
    const { clock, local, port } = await openWithRouter();
    await clock.advance(PREVIEW_IDLE_MS + 10 * MIN);
    await local.settle();
    expect((await local.getDeployment('dep_p2fe8r'))?.status).toBe('standby');

    // A client that gives up while the deployment wakes: the wake-up goes on, nothing breaks.
    const sleepers = clock.pending;
    const abandoned = new AbortController();
    const gaveUp = new Promise<unknown>((resolve) => {
      const req = httpRequest({
        host: '127.0.0.1',
        port,
        path: '/',
        headers: { host: 'preview.acme.localhost' },
        agent: false,
        signal: abandoned.signal,
      });
      req.on('error', resolve);
      req.on('response', () => resolve('answered'));
      req.end();
    });
    await parked(clock, sleepers);
    abandoned.abort();
    expect(await gaveUp).toBeInstanceOf(Error);

    // A POST arrives meanwhile: held, then echoed whole by the woken deployment.
    const body = Buffer.alloc(256 * 1024, 7);
    const echoed = new Promise<{ status: number; id: string | undefined; body: Buffer }>(
      (resolve, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: '/upload',
            headers: { host: 'preview.acme.localhost', 'content-length': String(body.length) },
            agent: false,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                id: res.headers['x-deployment-id'] as string | undefined,
                body: Buffer.concat(chunks),
              }),
            );
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(body);
      },
    );
    await clock.advance(1500);
    const reply = await echoed;
    expect(reply.status).toBe(200);
    expect(reply.id).toBe('dep_p2fe8r');
    expect(reply.body.equals(body)).toBe(true);
  });

  it('idles a preview deployment holding domains after six hours without a request; the next request wakes it and is answered by it', async () => {
    const { clock, local, port, router: traffic } = await openWithRouter();
    const host = 'preview.acme.localhost';
    expect((await get(port, host)).deploymentId).toBe('dep_p2fe8r');

    // A request now and then keeps it running; Switchyard's own probes are not requests.
    await clock.advance(PREVIEW_IDLE_MS - 30 * MIN);
    expect((await get(port, host)).status).toBe(200);
    await clock.advance(PREVIEW_IDLE_MS - 30 * MIN);
    expect(await probe(port, host)).toEqual({ status: 200, deploymentId: 'dep_p2fe8r' });
    expect((await local.getDeployment('dep_p2fe8r'))?.status).toBe('ready');
    // Six hours without one: standby, upstream stopped, still on its domains.
    await clock.advance(40 * MIN);
    await local.settle();
    expect((await local.getDeployment('dep_p2fe8r'))?.status).toBe('standby');
    expect(traffic.runningUpstreams()).not.toContain('dep_p2fe8r');
    expect((await local.snapshot('preview')).environment.currentDeploymentId).toBe('dep_p2fe8r');
    // A probe (the console's domain panel, verification) does not wake it.
    const sleepers = clock.pending;
    expect(await probe(port, host)).toEqual({ status: 503, deploymentId: undefined });
    expect(clock.pending).toBe(sleepers);

    // Two requests arrive: both are held while it wakes (one wake-up), then answered by it.
    const first = get(port, host);
    const second = get(port, 'feature-search.acme.localhost');
    await parked(clock, sleepers);
    await clock.advance(1500);
    expect(await first).toEqual({ status: 200, deploymentId: 'dep_p2fe8r' });
    expect(await second).toEqual({ status: 200, deploymentId: 'dep_p2fe8r' });
    expect((await local.getDeployment('dep_p2fe8r'))?.status).toBe('ready');
    expect(traffic.upstreamStats('dep_p2fe8r')).toMatchObject({ total: 2 });
    // A production deployment in standby does not wake on a request to its deployment domain.
    const standbyProd = await get(port, 'dep-3hd7xa.acme.localhost');
    expect(standbyProd.status).toBe(503);
    expect((await local.getDeployment('dep_3hd7xa'))?.status).toBe('standby');
  });
});

/** A plain GET through the router (a visitor, not a Switchyard probe): status and x-deployment-id. */
function get(port: number, host: string): Promise<{ status: number; deploymentId: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path: '/', headers: { host }, agent: false },
      (res) => {
        res.resume();
        res.on('end', () => {
          const id = res.headers['x-deployment-id'];
          resolve({
            status: res.statusCode ?? 0,
            deploymentId: typeof id === 'string' && id !== 'none' ? id : undefined,
          });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('persistence', () => {
  it('state survives a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-local-'));
    const stateFile = join(dir, 'state.json');
    const clock = new ManualClock();
    const first = await LocalPlatform.open({ clock, stateFile, reactivationTimeMs: 10 });
    await finish(first, clock, await first.rollback({ environment: 'production', targetId: 'dep_3hd7xa' }));
    await first.close();
    platform = await LocalPlatform.open({ clock, stateFile });
    const snap = await platform.snapshot('production');
    expect(snap.environment.rolledBack).toBe(true);
    expect(snap.environment.currentDeploymentId).toBe('dep_3hd7xa');
  });

  it('a push gets a deployment domain like its siblings, and a project name that is no hostname label still reloads', async () => {
    const { platform: demo, clock } = await open();
    const pushed = await demo.push({ environment: 'production' });
    const hosts = (await demo.snapshot('production')).domains.filter((d) => d.stickiness === 'deployment');
    // the demo's deployment domains are dep-<id>.acme.localhost: a push's is named the same way
    expect(hosts.find((d) => d.deploymentId === pushed.id)?.hostname).toBe(
      `${pushed.id.replace(/_/g, '-')}.acme.localhost`,
    );
    await demo.close();
    platform = undefined;

    // a project of its own, named as people name projects, with no deployment domain to copy
    const dir = mkdtempSync(join(tmpdir(), 'sy-local-'));
    const stateFile = join(dir, 'state.json');
    const seed = demoState(clock.now());
    seed.project.name = 'Acme Shop_EU';
    seed.domains = seed.domains.filter((d) => d.stickiness !== 'deployment');
    const first = await LocalPlatform.open({ clock, stateFile, seed, buildTimeMs: 10 });
    const own = await first.push({ environment: 'production' });
    await clock.advance(10);
    await first.settle();
    const ownHost = (await first.snapshot('production')).domains.find(
      (d) => d.deploymentId === own.id && d.stickiness === 'deployment',
    );
    expect(ownHost?.hostname).toBe(`${own.id.replace(/_/g, '-')}.acme-shop-eu.localhost`);
    await first.close();
    // the state file it wrote loads again
    platform = await LocalPlatform.open({ clock, stateFile });
    expect((await platform.snapshot('production')).deployments.some((d) => d.id === own.id)).toBe(true);
  });
});

/** A promise with its resolve function (tests open gates and wait for events with it). */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/**
 * The real router behind a TrafficPlane whose startUpstream can be held at a gate for one deployment:
 * `gate(id)` returns `reached` (the platform asked to start it) and `open()` (let the start go on), so a
 * test can act exactly while the platform awaits that start.
 */
function gatedPlane(real: TrafficRouter) {
  const gates = new Map<string, { reached: () => void; opened: Promise<void> }>();
  const plane: TrafficPlane = {
    applyRoutes: (routes) => real.applyRoutes(routes),
    startUpstream: async (info) => {
      const gate = gates.get(info.id);
      if (gate !== undefined) {
        gates.delete(info.id);
        gate.reached();
        await gate.opened;
      }
      await real.startUpstream(info);
    },
    stopUpstream: (id) => real.stopUpstream(id),
    upstreamStats: (id) => real.upstreamStats(id),
    probe: (hostname, signal) => real.probe(hostname, signal),
  };
  const gate = (id: string) => {
    const reached = deferred();
    const opened = deferred();
    gates.set(id, { reached: reached.resolve, opened: opened.promise });
    return { reached: reached.promise, open: opened.resolve };
  };
  return { plane, gate };
}

describe('re-checks after every await', () => {
  let router: TrafficRouter | undefined;
  afterEach(async () => {
    await platform?.close();
    platform = undefined;
    await router?.close();
    router = undefined;
  });

  async function openGated(clock = new ManualClock()) {
    router = new TrafficRouter({ clock, warmSockets: 1 });
    await router.listen();
    const { plane, gate } = gatedPlane(router);
    platform = await LocalPlatform.open({
      clock,
      traffic: plane,
      buildTimeMs: 3000,
      reactivationTimeMs: 1500,
    });
    const events: PlatformEvent[] = [];
    platform.subscribe((e) => events.push(e));
    return { p: platform, clock, gate, router, events };
  }

  /** Yields until code under test parks one more sleep on the clock. */
  async function parked(clock: ManualClock, before: number): Promise<void> {
    for (let i = 0; i < 100_000 && clock.pending === before; i++) await new Promise((r) => setImmediate(r));
    expect(clock.pending).toBe(before + 1);
  }

  it('a rollback target stopped by the operator while it reactivates stays stopped: the switch fails and puts nothing live', async () => {
    const { p, clock, router: traffic, events } = await openGated();
    expect((await p.getDeployment('dep_3hd7xa'))?.status).toBe('standby');
    const sleepers = clock.pending;
    const ref = await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' });
    await parked(clock, sleepers); // upstream started, waiting out the reactivation time
    expect(traffic.runningUpstreams()).toContain('dep_3hd7xa');

    expect((await p.stop('dep_3hd7xa')).status).toBe('stopped');
    expect(traffic.runningUpstreams()).not.toContain('dep_3hd7xa');
    expect(await finish(p, clock, ref)).toBe('failed');
    expect((await p.operation(ref)).error?.code).toBe('target_stopped');
    const after = await p.snapshot('production');
    expect(after.environment.currentDeploymentId).toBe('dep_4kq9wz');
    expect(after.environment.rolledBack).toBe(false);
    expect(after.deployments.find((d) => d.id === 'dep_3hd7xa')?.status).toBe('stopped');
    expect(traffic.runningUpstreams()).not.toContain('dep_3hd7xa');
    expect(await probe(traffic.port ?? 0, 'shop.localhost')).toEqual({
      status: 200,
      deploymentId: 'dep_4kq9wz',
    });
    expect(events.filter((e) => e.type === 'traffic.moved' || e.type === 'deployment.ready')).toEqual([]);
  });

  it('a rollback target stopped while its upstream is still starting: the switch stops the upstream it started', async () => {
    const { p, clock, gate, router: traffic } = await openGated();
    const start = gate('dep_3hd7xa');
    const ref = await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' });
    await start.reached;
    await p.stop('dep_3hd7xa');
    start.open();
    expect(await finish(p, clock, ref)).toBe('failed');
    expect((await p.operation(ref)).error?.code).toBe('target_stopped');
    expect(traffic.runningUpstreams()).not.toContain('dep_3hd7xa');
    expect((await p.getDeployment('dep_3hd7xa'))?.status).toBe('stopped');
    expect((await p.snapshot('production')).environment.currentDeploymentId).toBe('dep_4kq9wz');
  });

  it('a rollback fails when a push went live while its target reactivated, and leaves the target in standby', async () => {
    const { p, clock, router: traffic } = await openGated();
    const pushed = await p.push({ environment: 'production', message: 'fix forward' }); // ready at +3000
    await clock.advance(2000);
    const sleepers = clock.pending;
    const ref = await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' }); // ready at +3500
    await parked(clock, sleepers);
    const live = new Promise<void>((resolve) =>
      p.subscribe((e) => {
        if (e.type === 'traffic.moved' && e.to === pushed.id) resolve();
      }),
    );
    await clock.advance(1000);
    await live; // the push went live while the target reactivates
    expect((await p.snapshot('production')).environment.currentDeploymentId).toBe(pushed.id);
    expect(await finish(p, clock, ref)).toBe('failed');
    expect((await p.operation(ref)).error?.code).toBe('plan_stale');
    const after = await p.snapshot('production');
    expect(after.environment.currentDeploymentId).toBe(pushed.id);
    expect(after.environment.rolledBack).toBe(false);
    expect(after.deployments.find((d) => d.id === 'dep_3hd7xa')?.status).toBe('standby');
    expect(traffic.runningUpstreams()).not.toContain('dep_3hd7xa');
  });

  it('a build stopped by the operator while its upstream starts stays stopped and takes no domain', async () => {
    const { p, clock, gate, router: traffic, events } = await openGated();
    const pushed = await p.push({ environment: 'production' });
    const start = gate(pushed.id);
    await clock.advance(3000);
    await start.reached;
    await p.stop(pushed.id);
    start.open();
    await p.settle();
    expect((await p.getDeployment(pushed.id))?.status).toBe('stopped');
    expect((await p.snapshot('production')).environment.currentDeploymentId).toBe('dep_4kq9wz');
    expect((await p.routing('production')).filter((r) => r.deploymentId === pushed.id)).toEqual([
      expect.objectContaining({ stickiness: 'deployment' }),
    ]);
    expect(traffic.runningUpstreams()).not.toContain(pushed.id);
    expect(events.filter((e) => e.type === 'deployment.ready' || e.type === 'traffic.moved')).toEqual([]);
  });

  it('a preview deployment stopped while a request wakes it stays stopped', async () => {
    const { p, clock, gate, router: traffic } = await openGated();
    expect((await p.getDeployment('dep_p1rw4n'))?.status).toBe('standby');
    const start = gate('dep_p1rw4n');
    const sleepers = clock.pending;
    const woken = p.wake('dep_p1rw4n');
    await parked(clock, sleepers);
    await clock.advance(1500);
    await start.reached;
    await p.stop('dep_p1rw4n');
    start.open();
    expect(await woken).toBe(false);
    expect((await p.getDeployment('dep_p1rw4n'))?.status).toBe('stopped');
    expect(traffic.runningUpstreams()).not.toContain('dep_p1rw4n');
  });

  it('two racing pushes of one branch: the newer stays live when the older finishes starting last', async () => {
    const { p, clock, gate, router: traffic } = await openGated();
    const older = await p.push({ environment: 'production', message: 'older' });
    const slowStart = gate(older.id);
    await clock.advance(1000);
    const newer = await p.push({ environment: 'production', message: 'newer' });
    const newerLive = new Promise<void>((resolve) =>
      p.subscribe((e) => {
        if (e.type === 'traffic.moved' && e.to === newer.id) resolve();
      }),
    );
    await clock.advance(3000); // both builds done; the older's upstream start is held
    await slowStart.reached;
    await newerLive;
    expect((await p.snapshot('production')).environment.currentDeploymentId).toBe(newer.id);

    slowStart.open();
    await p.settle();
    const snap = await p.snapshot('production');
    expect(snap.environment.currentDeploymentId).toBe(newer.id);
    expect(snap.deployments.find((d) => d.id === older.id)?.status).toBe('ready');
    expect(snap.domains.filter((d) => d.deploymentId === older.id).map((d) => d.stickiness)).toEqual([
      'deployment',
    ]);
    expect(snap.liveHistory.at(-1)?.deploymentId).toBe(newer.id);
    expect(await probe(traffic.port ?? 0, 'shop.localhost')).toEqual({ status: 200, deploymentId: newer.id });
    // superseded, it serves nothing: standby 30 minutes later like any deployment that stopped serving
    expect(p.dump().deployments.find((d) => d.id === older.id)?.stoppedServingAt).toBe(clock.now());
  });
});

describe('serving and idle bookkeeping', () => {
  it('production: a deployment that loses its branch domain to a newer push goes to standby 30 minutes later, not at the next tick', async () => {
    const clock = new ManualClock();
    const seed = demoState(clock.now());
    const base = seed.deployments[0];
    if (base === undefined) throw new Error('demo has no deployment');
    seed.deployments.push({
      ...base,
      id: 'dep_feat01',
      branch: 'feature-a',
      commit: { sha: 'f'.repeat(40), message: 'feature a', author: 'x' },
      createdAt: clock.now() - 3 * 60 * MIN,
      readyAt: clock.now() - 3 * 60 * MIN,
      status: 'ready',
    });
    seed.domains.push({
      hostname: 'feature-a.acme.localhost',
      stickiness: 'branch',
      environment: 'production',
      branch: 'feature-a',
      deploymentId: 'dep_feat01',
    });
    platform = await LocalPlatform.open({ clock, seed, buildTimeMs: 3000, reactivationTimeMs: 1500 });
    const p = platform;
    expect((await p.getDeployment('dep_feat01'))?.status).toBe('ready'); // serving its branch domain
    const pushed = await p.push({ environment: 'production', branch: 'feature-a' });
    await clock.advance(3000);
    await p.settle();
    const routes = await p.routing('production');
    expect(routes.find((r) => r.hostname === 'feature-a.acme.localhost')?.deploymentId).toBe(pushed.id);
    expect(p.dump().deployments.find((d) => d.id === 'dep_feat01')?.stoppedServingAt).toBe(clock.now());
    await clock.advance(2 * MIN); // a maintenance tick or two later
    expect((await p.getDeployment('dep_feat01'))?.status).toBe('ready');
    await clock.advance(STANDBY_AFTER_MS - 3 * MIN);
    expect((await p.getDeployment('dep_feat01'))?.status).toBe('ready');
    await clock.advance(2 * MIN);
    expect((await p.getDeployment('dep_feat01'))?.status).toBe('standby');
    expect((await p.getDeployment(pushed.id))?.status).toBe('ready');
  });

  it('preview: requests counted for the six-hour rule reach the state file within a maintenance tick (an unclean restart keeps them)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-local-'));
    const stateFile = join(dir, 'state.json');
    const clock = new ManualClock();
    const router = new TrafficRouter({ clock, warmSockets: 1 });
    try {
      const port = await router.listen();
      platform = await LocalPlatform.open({
        clock,
        stateFile,
        traffic: router,
        buildTimeMs: 3000,
        reactivationTimeMs: 1500,
      });
      const onDisk = () =>
        (JSON.parse(readFileSync(stateFile, 'utf8')) as LocalState).deployments.find(
          (d) => d.id === 'dep_p2fe8r',
        )?.lastRequestAt;
      // A visitor every hour for six hours: dep_p2fe8r is far from idle.
      for (let h = 0; h < 6; h++) {
        expect((await get(port, 'preview.acme.localhost')).status).toBe(200);
        const visitedAt = clock.now();
        await clock.advance(60 * MIN);
        expect(onDisk()).toBe(visitedAt);
      }
      expect((await platform.getDeployment('dep_p2fe8r'))?.status).toBe('ready');
      // The process dies here (no close()): a restart reads the state file as it is on disk.
      const crashed = join(dir, 'crashed.json');
      copyFileSync(stateFile, crashed);
      const restarted = await LocalPlatform.open({ clock, stateFile: crashed, maintenance: false });
      try {
        // Last request one hour ago: still running.
        expect((await restarted.getDeployment('dep_p2fe8r'))?.status).toBe('ready');
      } finally {
        await restarted.close();
      }
    } finally {
      await platform?.close();
      platform = undefined;
      await router.close();
    }
  });
});

describe('idle bookkeeping across a clean shutdown', () => {
  it('preview: a request shortly before a clean shutdown counts for the six-hour idle rule after the restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-local-'));
    const stateFile = join(dir, 'state.json');
    const clock = new ManualClock();
    const router = new TrafficRouter({ clock, warmSockets: 1 });
    try {
      const port = await router.listen();
      const first = await LocalPlatform.open({ clock, stateFile, traffic: router, reactivationTimeMs: 1500 });
      // dep_p2fe8r serves preview and has had no request for 88 minutes. 4h30m later (a maintenance
      // tick has just run: whole minutes) a visitor comes, 1h58m before it would idle.
      await clock.advance(270 * MIN);
      expect((await get(port, 'preview.acme.localhost')).deploymentId).toBe('dep_p2fe8r');
      const visitedAt = clock.now();
      // 30 seconds later, before the next tick, Switchyard stops cleanly: the platform closes first,
      // then the router (handlers/app.ts).
      await clock.advance(30_000);
      await first.close();
      const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as LocalState;
      expect(saved.deployments.find((d) => d.id === 'dep_p2fe8r')?.lastRequestAt).toBe(visitedAt);
      await clock.advance(2 * MIN);
      platform = await LocalPlatform.open({ clock, stateFile, reactivationTimeMs: 1500 });
      // Visited 2.5 minutes ago: far from six hours idle.
      expect((await platform.getDeployment('dep_p2fe8r'))?.status).toBe('ready');
      await clock.advance(PREVIEW_IDLE_MS - 5 * MIN);
      expect((await platform.getDeployment('dep_p2fe8r'))?.status).toBe('ready');
      await clock.advance(5 * MIN);
      expect((await platform.getDeployment('dep_p2fe8r'))?.status).toBe('standby');
    } finally {
      await platform?.close();
      platform = undefined;
      await router.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('switch refusals, and branch domains across a switch', () => {
  it('refuses a deployment of another environment as such, and an unknown one listing recent ids', async () => {
    const { platform: p } = await open();
    // dep_p2fe8r exists: it is preview's
    await expect(p.rollback({ environment: 'production', targetId: 'dep_p2fe8r' })).rejects.toMatchObject({
      refusal: { code: 'target_wrong_environment' },
    });
    await expect(p.rollback({ environment: 'production', targetId: 'dep_nope' })).rejects.toMatchObject({
      refusal: { code: 'unknown_deployment', message: expect.stringContaining('dep_4kq9wz, dep_3hd7xa') },
    });
    expect((await p.snapshot('production')).environment.currentDeploymentId).toBe('dep_4kq9wz');
  });

  it('refuses a switch whose expectation no longer holds, atomically, as plan_stale; changes nothing', async () => {
    const { platform: p, clock } = await open();
    // a push went live after the plan was checked
    const pushed = await p.push({ environment: 'production' });
    await clock.advance(3000);
    await p.settle();
    await expect(
      p.rollback({ environment: 'production', targetId: 'dep_3hd7xa', expectedCurrent: 'dep_4kq9wz' }),
    ).rejects.toMatchObject({ refusal: { code: 'plan_stale', message: expect.stringContaining(pushed.id) } });
    await expect(
      p.rollback({
        environment: 'production',
        targetId: 'dep_3hd7xa',
        expectedCurrent: pushed.id,
        expectedRolledBack: true,
      }),
    ).rejects.toMatchObject({ refusal: { code: 'plan_stale' } });
    expect((await p.snapshot('production')).environment.currentDeploymentId).toBe(pushed.id);
    // as expected: it goes ahead
    const ref = await p.rollback({
      environment: 'production',
      targetId: 'dep_4kq9wz',
      expectedCurrent: pushed.id,
      expectedRolledBack: false,
    });
    expect(await finish(p, clock, ref)).toBe('succeeded');
  });

  it("a branch domain stays on its own branch when the environment switches to another branch's deployment", async () => {
    const { platform: p, clock } = await open();
    // preview: dep_p2fe8r (feature-search) is current and holds feature-search.acme.localhost
    const x = await p.push({ environment: 'preview', branch: 'feature-x' });
    await clock.advance(3000);
    await p.settle();
    expect((await p.snapshot('preview')).environment.currentDeploymentId).toBe(x.id);
    expect(await finish(p, clock, await p.rollback({ environment: 'preview', targetId: 'dep_p2fe8r' }))).toBe(
      'succeeded',
    );
    const plan = buildPlan(await p.snapshot('preview'), {
      action: 'promote',
      target: x.id,
      now: clock.now(),
    });
    if (!plan.ok) throw new Error(plan.refusal.message);
    expect(plan.value.affectedDomains.map((d) => d.hostname)).toEqual(['preview.acme.localhost']);
    expect(await finish(p, clock, await p.promote({ environment: 'preview', targetId: x.id }))).toBe(
      'succeeded',
    );
    const routes = new Map((await p.routing('preview')).map((r) => [r.hostname, r.deploymentId]));
    expect(routes.get('preview.acme.localhost')).toBe(x.id);
    expect(routes.get('feature-search.acme.localhost')).toBe('dep_p2fe8r');
    // the branch's first deployment got the branch's own domain, beside the others
    expect(routes.get('feature-x.acme.localhost')).toBe(x.id);
  });

  it('a seed naming a current deployment, a history entry or a hostname wrongly stops start-up naming the key', async () => {
    const clock = new ManualClock();
    const typo = demoState(clock.now());
    typo.environments[0] = {
      ...(typo.environments[0] as LocalState['environments'][number]),
      currentDeploymentId: 'dep_typo99',
    };
    await expect(LocalPlatform.open({ clock, seed: typo })).rejects.toThrow(
      /environments\[0\]\.currentDeploymentId: got "dep_typo99"/,
    );
    const elsewhere = demoState(clock.now());
    elsewhere.environments[0] = {
      ...(elsewhere.environments[0] as LocalState['environments'][number]),
      currentDeploymentId: 'dep_p2fe8r',
    };
    await expect(LocalPlatform.open({ clock, seed: elsewhere })).rejects.toThrow(/a deployment of preview/);
    const history = demoState(clock.now());
    history.liveHistory.production?.push({ deploymentId: 'dep_gone', since: clock.now(), via: 'deploy' });
    await expect(LocalPlatform.open({ clock, seed: history })).rejects.toThrow(
      /liveHistory\.production\[4\]\.deploymentId: got "dep_gone"/,
    );
    const twice = demoState(clock.now());
    twice.domains.push({
      ...(twice.domains[0] as LocalState['domains'][number]),
      deploymentId: 'dep_3hd7xa',
    });
    await expect(LocalPlatform.open({ clock, seed: twice })).rejects.toThrow(
      /shop\.localhost is listed twice/,
    );
  });

  it("production's current deployment never goes to standby, even with no domain but its own", async () => {
    const clock = new ManualClock();
    const seed = demoState(clock.now());
    seed.domains = seed.domains.filter(
      (d) => d.environment !== 'production' || d.stickiness === 'deployment',
    );
    platform = await LocalPlatform.open({ clock, seed });
    await clock.advance(STANDBY_AFTER_MS + 2 * MIN);
    expect((await platform.getDeployment('dep_4kq9wz'))?.status).toBe('ready');
    // a previous one still does
    expect((await platform.getDeployment('dep_3hd7xa'))?.status).toBe('standby');
  });

  it('a target that goes to standby while its switch is pending is reactivated first, never switched to asleep', async () => {
    const { platform: p, clock } = await open();
    await finish(p, clock, await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' }));
    await finish(p, clock, await p.promote({ environment: 'production', targetId: 'dep_4kq9wz' }));
    await clock.advance(STANDBY_AFTER_MS - 30_000);
    expect((await p.getDeployment('dep_3hd7xa'))?.status).toBe('ready');
    clock.set(clock.now() + 60_000); // past 30 minutes, the tick not run yet
    const ref = await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' });
    expect(p.maintain()).toContain('dep_3hd7xa'); // the tick lands while the switch is pending
    const states: string[] = [];
    for (let i = 0; i < 100 && !['succeeded', 'failed'].includes(states.at(-1) ?? ''); i++) {
      await new Promise((r) => setImmediate(r));
      states.push((await p.operation(ref)).state);
      await clock.advance(100);
    }
    expect(states).toContain('reactivating');
    expect(states.at(-1)).toBe('succeeded');
    const after = await p.snapshot('production');
    expect(after.environment.currentDeploymentId).toBe('dep_3hd7xa');
    expect(after.deployments.find((d) => d.id === 'dep_3hd7xa')?.status).toBe('ready');
  });

  it('a state file that cannot be written is logged once and written again later; the time rules go on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-local-'));
    const stateDir = join(dir, 'data');
    mkdirSync(stateDir);
    const stateFile = join(stateDir, 'state.json');
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const logger = createLogger({ level: 'info', pretty: false, destination });
    const clock = new ManualClock();
    platform = await LocalPlatform.open({ clock, stateFile, buildTimeMs: 3000, logger });
    const p = platform;
    const first = await p.push({ environment: 'production' });
    await clock.advance(3000);
    await p.settle();
    // the data directory goes away (a careless cleanup, a full disk): writes fail for a while
    rmSync(stateDir, { recursive: true, force: true });
    writeFileSync(stateDir, 'not a directory');
    await clock.advance(STANDBY_AFTER_MS + 2 * MIN); // dep_4kq9wz goes to standby: that tick cannot persist
    expect((await p.getDeployment('dep_4kq9wz'))?.status).toBe('standby');
    expect(p.stateUnsaved).toBe(true);
    // a switch meanwhile still succeeds: traffic moved, whatever the disk says
    expect(
      await finish(p, clock, await p.rollback({ environment: 'production', targetId: 'dep_4kq9wz' })),
    ).toBe('succeeded');
    await clock.advance(2 * MIN);
    expect(lines.filter((l) => l.includes('could not write its state file'))).toHaveLength(1);
    // writes work again: the next tick writes everything, and the rules still run
    rmSync(stateDir, { force: true });
    mkdirSync(stateDir);
    await clock.advance(2 * MIN);
    expect(p.stateUnsaved).toBe(false);
    expect(lines.some((l) => l.includes('state file written again'))).toBe(true);
    const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as LocalState;
    expect(saved.environments.find((e) => e.slug === 'production')?.currentDeploymentId).toBe('dep_4kq9wz');
    await clock.advance(STANDBY_AFTER_MS + 2 * MIN);
    expect((await p.getDeployment(first.id))?.status).toBe('standby');
  });
});

describe('operations across a restart', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  function tmpDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'sy-local-ops-'));
    dirs.push(dir);
    return dir;
  }

  it('a switch whose process dies right after it landed reads succeeded after the restart, written with the switch', async () => {
    const dir = tmpDir();
    const stateFile = join(dir, 'state.json');
    const crashed = join(dir, 'crashed.json');
    const clock = new ManualClock();
    platform = await LocalPlatform.open({ clock, stateFile, reactivationTimeMs: 10, maintenance: false });
    const p = platform;
    // The state file as it is on disk the moment traffic moved (the process could die right there):
    // the switch and its operation's outcome are one write.
    p.subscribe((e) => {
      if (e.type === 'traffic.moved') copyFileSync(stateFile, crashed);
    });
    const ref = await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa', requestedBy: 'alice' });
    expect(await finish(p, clock, ref)).toBe('succeeded');
    const before = await p.operation(ref);

    const restarted = await LocalPlatform.open({ clock, stateFile: crashed, maintenance: false });
    try {
      expect((await restarted.snapshot('production')).environment.currentDeploymentId).toBe('dep_3hd7xa');
      // A job resumed after the restart asks about its operation: it did this switch.
      expect(await restarted.operation(ref)).toEqual(before);
    } finally {
      await restarted.close();
    }
    // A clean close keeps it too.
    await p.close();
    platform = await LocalPlatform.open({ clock, stateFile, maintenance: false });
    expect(await platform.operation(ref)).toEqual(before);
  });

  it('a switch cut off by a crash while reactivating reads failed, interrupted, after the restart; nothing was switched', async () => {
    const dir = tmpDir();
    const stateFile = join(dir, 'state.json');
    const crashed = join(dir, 'crashed.json');
    const clock = new ManualClock();
    platform = await LocalPlatform.open({ clock, stateFile, reactivationTimeMs: 1500 });
    const p = platform;
    expect((await p.getDeployment('dep_3hd7xa'))?.status).toBe('standby');
    const sleepers = clock.pending;
    const ref = await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' });
    for (let i = 0; i < 1000 && clock.pending === sleepers; i++) await new Promise((r) => setImmediate(r));
    expect((await p.operation(ref)).state).toBe('reactivating'); // waiting out the reactivation time
    // The process dies here (no close()): a restart reads the state file as it is on disk.
    copyFileSync(stateFile, crashed);

    const restarted = await LocalPlatform.open({ clock, stateFile: crashed, reactivationTimeMs: 1500 });
    try {
      const status = await restarted.operation(ref);
      // It switched nothing and the same switch asked again may go through: a job following it retries.
      expect(status).toMatchObject({
        id: ref.id,
        state: 'failed',
        error: { code: 'interrupted', retryable: true },
      });
      // Written to the state file as such (a second restart reads it the same).
      const saved = JSON.parse(readFileSync(crashed, 'utf8')) as LocalState;
      expect(saved.operations.find((o) => o.id === ref.id)?.error?.retryable).toBe(true);
      expect(status.error?.message).toMatch(
        /interrupted by a restart of the local platform while reactivating dep_3hd7xa; the rollback did not take effect: nothing was switched/,
      );
      const snap = await restarted.snapshot('production');
      expect(snap.environment.currentDeploymentId).toBe('dep_4kq9wz');
      expect(snap.environment.rolledBack).toBe(false);
      expect(snap.deployments.find((d) => d.id === 'dep_3hd7xa')?.status).toBe('standby');
      // Deciding afresh works: the environment is not left busy, the rollback can be asked again.
      const again = await restarted.rollback({ environment: 'production', targetId: 'dep_3hd7xa' });
      expect(await finish(restarted, clock, again)).toBe('succeeded');
      expect((await restarted.snapshot('production')).environment.currentDeploymentId).toBe('dep_3hd7xa');
      // The interrupted one still reads failed: it was not this one that switched.
      expect((await restarted.operation(ref)).state).toBe('failed');
    } finally {
      await restarted.close();
    }
  });

  it('a switch cut off by a clean shutdown reads failed after the restart, saying nothing was switched', async () => {
    const stateFile = join(tmpDir(), 'state.json');
    const clock = new ManualClock();
    const first = await LocalPlatform.open({ clock, stateFile, reactivationTimeMs: 1500 });
    const sleepers = clock.pending;
    const ref = await first.rollback({ environment: 'production', targetId: 'dep_3hd7xa' });
    for (let i = 0; i < 1000 && clock.pending === sleepers; i++) await new Promise((r) => setImmediate(r));
    await first.close();
    platform = await LocalPlatform.open({ clock, stateFile, reactivationTimeMs: 1500 });
    expect(await platform.operation(ref)).toMatchObject({
      state: 'failed',
      error: {
        code: 'platform_unavailable',
        message: 'the local platform shut down before the rollback took effect: nothing was switched',
        retryable: true,
      },
    });
    expect((await platform.snapshot('production')).environment.currentDeploymentId).toBe('dep_4kq9wz');
  });

  it(`keeps the last ${OPERATIONS_KEPT} operations in the state file; an older one reads unknown`, async () => {
    const stateFile = join(tmpDir(), 'state.json');
    const clock = new ManualClock();
    platform = await LocalPlatform.open({ clock, stateFile, reactivationTimeMs: 0, maintenance: false });
    const p = platform;
    const refs: OperationRef[] = [];
    // Back and forth between two deployments: a rollback to dep_3hd7xa, a promote of dep_4kq9wz.
    for (let i = 0; refs.length < OPERATIONS_KEPT + 2; i++) {
      const ref =
        i % 2 === 0
          ? await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' })
          : await p.promote({ environment: 'production', targetId: 'dep_4kq9wz' });
      expect(await finish(p, clock, ref)).toBe('succeeded');
      refs.push(ref);
    }
    const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as LocalState;
    expect(saved.operations.map((o) => o.id)).toEqual(refs.slice(2).map((r) => r.id));
    await p.close();
    platform = await LocalPlatform.open({ clock, stateFile, maintenance: false });
    await expect(platform.operation(refs[1] as OperationRef)).rejects.toThrow(/unknown operation/);
    expect((await platform.operation(refs[2] as OperationRef)).state).toBe('succeeded');
    expect((await platform.operation(refs.at(-1) as OperationRef)).state).toBe('succeeded');
  });

  it('a state file written before operations and push order were kept still loads, and pushes go on', async () => {
    const dir = tmpDir();
    const stateFile = join(dir, 'state.json');
    const clock = new ManualClock();
    const old: Record<string, unknown> = { ...demoState(clock.now()), seq: 3 };
    delete old.operations;
    writeFileSync(stateFile, JSON.stringify(old));
    platform = await LocalPlatform.open({ clock, stateFile, buildTimeMs: 3000, maintenance: false });
    expect(platform.dump().operations).toEqual([]);
    const pushed = await platform.push({ environment: 'production' });
    expect(platform.dump().deployments.find((d) => d.id === pushed.id)?.pushSeq).toBe(4);
    await clock.advance(3000);
    await platform.settle();
    expect((await platform.snapshot('production')).environment.currentDeploymentId).toBe(pushed.id);
  });

  it('an operation error written before `retryable` existed still loads and reads as final; a wrong one names the key', async () => {
    const stateFile = join(tmpDir(), 'state.json');
    const clock = new ManualClock();
    const old = demoState(clock.now());
    const failed = {
      id: 'op_old',
      action: 'rollback',
      environment: 'production',
      targetId: 'dep_3hd7xa',
      startedAt: clock.now(),
      state: 'failed',
      updatedAt: clock.now(),
      error: { code: 'internal', message: 'boom' },
    } as const;
    old.operations.push(failed);
    writeFileSync(stateFile, JSON.stringify(old));
    platform = await LocalPlatform.open({ clock, stateFile, maintenance: false });
    const status = await platform.operation(failed);
    expect(status.error).toEqual({ code: 'internal', message: 'boom' });
    expect(status.error && 'retryable' in status.error).toBe(false);
    await platform.close();
    platform = undefined;
    const bad = {
      ...demoState(clock.now()),
      operations: [{ ...failed, error: { ...failed.error, retryable: 'yes' } }],
    };
    await expect(LocalPlatform.open({ clock, seed: bad })).rejects.toThrow(/operations\.0\.error\.retryable/);
  });

  it('a state file whose operation or push order does not add up stops start-up naming the key', async () => {
    const clock = new ManualClock();
    const ahead = demoState(clock.now());
    ahead.deployments[1] = { ...(ahead.deployments[1] as LocalDeployment), pushSeq: 7 };
    await expect(LocalPlatform.open({ clock, seed: ahead })).rejects.toThrow(
      /deployments\[1\]\.pushSeq: got 7, expected at most seq \(0\)/,
    );
    const lost = demoState(clock.now());
    const op = {
      id: 'op_1',
      action: 'rollback',
      environment: 'staging',
      targetId: 'dep_3hd7xa',
      startedAt: clock.now(),
      state: 'succeeded',
      updatedAt: clock.now(),
    } as const;
    lost.operations.push(op);
    await expect(LocalPlatform.open({ clock, seed: lost })).rejects.toThrow(
      /operations\[0\]\.environment: names unknown environment "staging"/,
    );
    const bad = {
      ...demoState(clock.now()),
      operations: [{ ...op, environment: 'production', state: 'done' }],
    };
    await expect(LocalPlatform.open({ clock, seed: bad })).rejects.toThrow(
      /operations\.0\.state: got "done", expected one of pending, reactivating, switching, succeeded, failed/,
    );
  });
});

describe('push order, not the clock', () => {
  it('a push made after the clock stepped back still goes live', async () => {
    const clock = new ManualClock();
    platform = await LocalPlatform.open({ clock, buildTimeMs: 3000, maintenance: false });
    const p = platform;
    const a = await p.push({ environment: 'production', message: 'A' });
    await clock.advance(3000);
    await p.settle();
    expect((await p.snapshot('production')).environment.currentDeploymentId).toBe(a.id);
    clock.set(clock.now() - 10 * MIN); // the host clock was 10 minutes fast; NTP steps it back
    const b = await p.push({ environment: 'production', message: 'B' });
    expect(b.createdAt).toBeLessThan(a.createdAt);
    await clock.advance(3000);
    await p.settle();
    const snap = await p.snapshot('production');
    expect(snap.environment.currentDeploymentId).toBe(b.id);
    expect(snap.domains.find((d) => d.hostname === 'shop.localhost')?.deploymentId).toBe(b.id);
    // the main branch domain follows the newest push too
    expect(snap.domains.find((d) => d.stickiness === 'branch' && d.branch === 'main')?.deploymentId).toBe(
      b.id,
    );
  });

  it('a push after a restart and a step back goes live over one pushed before the restart, and over seeded ones', async () => {
    const stateFile = join(mkdtempSync(join(tmpdir(), 'sy-local-')), 'state.json');
    try {
      const clock = new ManualClock();
      // The demo's deployments carry no push order (seeded): dep_4kq9wz was created 42 minutes ago.
      const first = await LocalPlatform.open({ clock, stateFile, buildTimeMs: 3000, maintenance: false });
      clock.set(clock.now() - 60 * MIN);
      const a = await first.push({ environment: 'production', message: 'A' });
      await clock.advance(3000);
      await first.settle();
      expect((await first.snapshot('production')).environment.currentDeploymentId).toBe(a.id);
      await first.close();
      platform = await LocalPlatform.open({ clock, stateFile, buildTimeMs: 3000, maintenance: false });
      clock.set(clock.now() - 10 * MIN);
      const b = await platform.push({ environment: 'production', message: 'B' });
      await clock.advance(3000);
      await platform.settle();
      expect((await platform.snapshot('production')).environment.currentDeploymentId).toBe(b.id);
    } finally {
      rmSync(dirname(stateFile), { recursive: true, force: true });
    }
  });
});

describe('snapshots in push order: default plans agree with the platform', () => {
  /** Pushes and builds one production deployment; the clock is left where the caller set it. */
  async function built(p: LocalPlatform, clock: ManualClock, message: string): Promise<string> {
    const d = await p.push({ environment: 'production', message });
    await clock.advance(3000);
    await p.settle();
    return d.id;
  }

  it('after the wall clock stepped back: newest first by push order; rollback goes back to A, promote finds nothing newer than B', async () => {
    const clock = new ManualClock();
    platform = await LocalPlatform.open({ clock, buildTimeMs: 3000, maintenance: false });
    const p = platform;
    const a = await built(p, clock, 'A');
    clock.set(clock.now() - 10 * MIN); // NTP steps the clock back
    const b = await built(p, clock, 'B');
    const snap = await p.snapshot('production');
    expect(snap.environment.currentDeploymentId).toBe(b); // the platform: push order
    expect(snap.deployments.slice(0, 2).map((d) => d.id)).toEqual([b, a]);
    const rollback = buildPlan(snap, { action: 'rollback', now: clock.now() });
    expect(rollback.ok ? rollback.value.target.id : rollback.refusal.code).toBe(a);
    const promote = buildPlan(snap, { action: 'promote', now: clock.now() });
    expect(promote.ok ? promote.value.target.id : promote.refusal.code).toBe('target_is_current');
  });

  it('two pushes in the same millisecond: the second is newest, as the platform put it live', async () => {
    const clock = new ManualClock();
    platform = await LocalPlatform.open({ clock, buildTimeMs: 3000, maintenance: false });
    const p = platform;
    const a = (await p.push({ environment: 'production', message: 'A' })).id;
    const b = (await p.push({ environment: 'production', message: 'B' })).id;
    await clock.advance(3000);
    await p.settle();
    const snap = await p.snapshot('production');
    expect(snap.environment.currentDeploymentId).toBe(b);
    expect(snap.deployments.slice(0, 2).map((d) => d.id)).toEqual([b, a]);
    const rollback = buildPlan(snap, { action: 'rollback', now: clock.now() });
    expect(rollback.ok ? rollback.value.target.id : rollback.refusal.code).toBe(a);
    const promote = buildPlan(snap, { action: 'promote', now: clock.now() });
    expect(promote.ok ? promote.value.target.id : promote.refusal.code).toBe('target_is_current');
  });
});

describe('promote and rollback periods, own domains, listeners', () => {
  let router: TrafficRouter | undefined;
  afterEach(async () => {
    await router?.close();
    router = undefined;
  });

  /** Pushes and builds one deployment. */
  async function built(p: LocalPlatform, clock: ManualClock, environment: string, branch: string) {
    const d = await p.push({ environment, branch });
    await clock.advance(3000);
    await p.settle();
    return d.id;
  }

  /** Plans by default (as /rollback and /promote do) and runs the switch to its end. */
  async function switchByDefault(
    p: LocalPlatform,
    clock: ManualClock,
    action: 'rollback' | 'promote',
    environment: string,
  ) {
    const plan = buildPlan(await p.snapshot(environment), { action, now: clock.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    const ref = await p[action]({ environment, targetId: plan.value.target.id });
    expect(await finish(p, clock, ref)).toBe('succeeded');
    return plan.value;
  }

  it("preview: promoting the fix pushed while rolled back moves its branch's domain to it too", async () => {
    const { platform: p, clock } = await open();
    const x1 = await built(p, clock, 'preview', 'feat-a'); // live
    const y1 = await built(p, clock, 'preview', 'feat-b'); // live, takes feat-b's domain; the bad one
    const routes = async () => new Map((await p.routing('preview')).map((r) => [r.hostname, r.deploymentId]));
    expect((await routes()).get('feat-b.acme.localhost')).toBe(y1);
    expect((await switchByDefault(p, clock, 'rollback', 'preview')).target.id).toBe(x1);
    // a branch domain serves its own branch: feat-b's stays on y1 while rolled back to feat-a's x1
    expect((await routes()).get('feat-b.acme.localhost')).toBe(y1);
    const y2 = await built(p, clock, 'preview', 'feat-b'); // the fix: no domains while rolled back
    expect((await routes()).get('feat-b.acme.localhost')).toBe(y1);
    const promoted = await switchByDefault(p, clock, 'promote', 'preview');
    expect(promoted.target.id).toBe(y2);
    expect(promoted.affectedDomains.map((d) => d.hostname).sort()).toEqual([
      'feat-b.acme.localhost',
      'preview.acme.localhost',
    ]);
    const after = await routes();
    expect(after.get('preview.acme.localhost')).toBe(y2);
    expect(after.get('feat-b.acme.localhost')).toBe(y2);
    expect(after.get('feat-a.acme.localhost')).toBe(x1);
  });

  it("a new branch pushed while rolled back gets only its own domain; promoting it gives it the branch's domain, which answers from it", async () => {
    const clock = new ManualClock();
    router = new TrafficRouter({ clock, warmSockets: 1 });
    const port = await router.listen();
    platform = await LocalPlatform.open({
      clock,
      traffic: router,
      buildTimeMs: 3000,
      reactivationTimeMs: 1500,
      maintenance: false,
    });
    const p = platform;
    await finish(p, clock, await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' }));
    const hotfix = await built(p, clock, 'production', 'hotfix-checkout');
    const own = `${hotfix.replace(/_/g, '-')}.acme.localhost`;
    const branchHost = 'hotfix-checkout.acme.localhost';
    // While rolled back the push gets no domain but its own, not even its brand-new branch's.
    expect(await probe(port, own)).toEqual({ status: 200, deploymentId: hotfix });
    expect((await probe(port, branchHost)).status).toBe(404);
    expect((await p.routing('production')).filter((r) => r.deploymentId === hotfix)).toEqual([
      { hostname: own, stickiness: 'deployment', environment: 'production', deploymentId: hotfix },
    ]);
    // The plan says the promote puts another branch than production's own live.
    const plan = buildPlan(await p.snapshot('production'), { action: 'promote', now: clock.now() });
    expect(plan.ok && [plan.value.target.id, plan.value.usualBranch]).toEqual([hotfix, 'main']);
    await finish(p, clock, await p.promote({ environment: 'production', targetId: hotfix }));
    expect((await p.snapshot('production')).domains.find((d) => d.hostname === branchHost)).toEqual({
      hostname: branchHost,
      stickiness: 'branch',
      environment: 'production',
      branch: 'hotfix-checkout',
      deploymentId: hotfix,
    });
    for (const host of ['shop.localhost', 'production.acme.localhost', branchHost])
      expect(await probe(port, host)).toEqual({ status: 200, deploymentId: hotfix });
    // main's branch domain stays on main's deployment: it serves its own branch.
    expect((await probe(port, 'main.acme.localhost')).deploymentId).toBe('dep_3hd7xa');
  });

  it("a pushed deployment's own domain answers 503 through the router while it builds and after its build failed, never 404", async () => {
    const clock = new ManualClock();
    let local: LocalPlatform | undefined;
    router = new TrafficRouter({
      clock,
      warmSockets: 1,
      wake: (id) => local?.wake(id) ?? Promise.resolve(false),
    });
    const port = await router.listen();
    local = await LocalPlatform.open({ clock, traffic: router, buildTimeMs: 3000, maintenance: false });
    platform = local;
    const own = (id: string) => `${id.replace(/_/g, '-')}.acme.localhost`;
    const failing = await local.push({ environment: 'production', fail: true });
    expect((await probe(port, own(failing.id))).status).toBe(503);
    await clock.advance(3000);
    await local.settle();
    expect((await local.getDeployment(failing.id))?.status).toBe('failed');
    expect((await probe(port, own(failing.id))).status).toBe(503);
    const good = await local.push({ environment: 'production' });
    expect((await probe(port, own(good.id))).status).toBe(503);
    await clock.advance(3000);
    await local.settle();
    expect(await probe(port, own(good.id))).toEqual({ status: 200, deploymentId: good.id });
  });

  it('a fix pushed while rolled back stays the default promote after a second rollback further back', async () => {
    const { platform: p, clock } = await open();
    const a0 = await built(p, clock, 'production', 'main');
    const a = await built(p, clock, 'production', 'main');
    await built(p, clock, 'production', 'main'); // B: live, bad
    expect((await switchByDefault(p, clock, 'rollback', 'production')).target.id).toBe(a);
    const firstRollback = (await p.snapshot('production')).environment.rolledBackAt;
    await clock.advance(5 * MIN);
    const fix = await built(p, clock, 'production', 'main'); // ready while rolled back: no domains
    await clock.advance(5 * MIN);
    // A turns out bad too: rolled back further while the fix waits
    expect((await switchByDefault(p, clock, 'rollback', 'production')).target.id).toBe(a0);
    const snap = await p.snapshot('production');
    expect(snap.environment.rolledBackSince).toBe(firstRollback);
    expect(snap.environment.rolledBackAt).toBeGreaterThan(firstRollback ?? Number.POSITIVE_INFINITY);
    const plan = buildPlan(snap, { action: 'promote', now: clock.now() });
    expect(plan.ok ? plan.value.target.id : plan.refusal.code).toBe(fix);
    // the promote ends the period: a later rollback begins a new one
    await switchByDefault(p, clock, 'promote', 'production');
    expect((await p.snapshot('production')).environment.rolledBackSince).toBeUndefined();
    await clock.advance(MIN);
    await switchByDefault(p, clock, 'rollback', 'production');
    const again = (await p.snapshot('production')).environment;
    expect(again.rolledBackSince).toBe(again.rolledBackAt);
  });

  it('eleven builds at once make node warn of no listener leak (every sleep shares the abort signal)', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const { platform: p, clock } = await open();
      // the maintenance loop and eleven builds, all asleep on the clock at once
      for (let i = 0; i < 11; i++) await p.push({ environment: 'production' });
      expect(clock.pending).toBe(12);
      // node emits its warning on the next tick of the listener's addition
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => w.includes('MaxListenersExceeded'))).toEqual([]);
  });
});

describe('bounded history', () => {
  const DAY = 24 * 60 * MIN;
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  /** A TrafficPlane that records the last routing table and which upstreams run (and were stopped). */
  function recordingPlane() {
    const running = new Set<string>();
    const stopped = new Set<string>();
    let routes: ReadonlyMap<string, string> = new Map();
    const plane: TrafficPlane = {
      applyRoutes: (next) => {
        routes = new Map(next);
      },
      startUpstream: async (d) => {
        running.add(d.id);
      },
      stopUpstream: async (id) => {
        if (running.delete(id)) stopped.add(id);
      },
      upstreamStats: () => undefined,
    };
    return { plane, running, stopped, routed: () => new Set(routes.values()) };
  }

  /**
   * Pushes `n` deployments of `branch`, each ready (build time 1 ms) before the next push. Waits for
   * each one's `deployment.ready`, not for all background work: a switch may be waiting on the clock.
   */
  async function pushBuilt(
    p: LocalPlatform,
    clock: ManualClock,
    n: number,
    environment: string,
    branch: string,
  ): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const { id } = await p.push({ environment, branch });
      const ready = new Promise<void>((resolve) => {
        const off = p.subscribe((e) => {
          if (e.type === 'deployment.ready' && e.deploymentId === id) {
            off();
            resolve();
          }
        });
      });
      await clock.advance(1);
      await ready;
      ids.push(id);
    }
    return ids;
  }

  const idsOf = (p: LocalPlatform, environment: string) =>
    p
      .dump()
      .deployments.filter((d) => d.environment === environment)
      .map((d) => d.id);

  it(`keeps the newest ${DEPLOYMENTS_KEPT} deployments of an environment and those in use; the others go with their own domain and upstream`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-local-'));
    dirs.push(dir);
    const stateFile = join(dir, 'state.json');
    const clock = new ManualClock();
    const traffic = recordingPlane();
    platform = await LocalPlatform.open({
      clock,
      stateFile,
      buildTimeMs: 1,
      maintenance: false,
      traffic: traffic.plane,
    });
    const p = platform;
    const production = idsOf(p, 'production');
    const first = await pushBuilt(p, clock, 2 * DEPLOYMENTS_KEPT, 'preview', 'main');
    // dep_p2fe8r's branch, feature-search, is none of the newest pushes' and it left the live history:
    // its branch domain lingers while the deployment runs (the seed: until idle six hours).
    expect(idsOf(p, 'preview')).toContain('dep_p2fe8r');
    const afterFirst = idsOf(p, 'preview');
    const second = await pushBuilt(p, clock, 2 * DEPLOYMENTS_KEPT, 'preview', 'main');
    const state = p.dump();
    const kept = idsOf(p, 'preview');
    // Bounded: as many after 200 pushes as after 100.
    expect(kept.length).toBe(afterFirst.length);
    // The newest pushes, plus the one pushed before them, still in the live history (its newest entries
    // only) at the last push, and dep_p2fe8r, still on its lingering branch domain.
    expect(state.liveHistory.preview).toHaveLength(LIVE_HISTORY_KEPT);
    expect(new Set(kept)).toEqual(new Set([...second.slice(-(DEPLOYMENTS_KEPT + 1)), 'dep_p2fe8r']));
    expect(
      state.domains.filter((d) => d.hostname === 'feature-search.acme.localhost').map((d) => d.deploymentId),
    ).toEqual(['dep_p2fe8r']);
    // A dropped deployment's own domain went with it, no route names it, its upstream was stopped.
    const dropped = [...first, ...second].filter((id) => !kept.includes(id));
    expect(dropped.length).toBeGreaterThanOrEqual(3 * DEPLOYMENTS_KEPT - 2);
    const routed = traffic.routed();
    for (const id of dropped) {
      expect(state.domains.filter((d) => d.deploymentId === id)).toEqual([]);
      expect(routed.has(id)).toBe(false);
      expect(traffic.stopped.has(id)).toBe(true);
    }
    expect([...traffic.running].filter((id) => !state.deployments.some((d) => d.id === id))).toEqual([]);
    // Every kept deployment keeps its own domain; the other environment is untouched.
    for (const id of second.slice(-DEPLOYMENTS_KEPT)) {
      expect(state.domains.some((d) => d.deploymentId === id && d.stickiness === 'deployment')).toBe(true);
    }
    expect(idsOf(p, 'production')).toEqual(production);
    // Six hours without a request: dep_p2fe8r idled out, and its lingering domain went with it at that
    // tick, as did the deployment the live history no longer names.
    await clock.advance(PREVIEW_IDLE_MS);
    p.maintain();
    const idled = idsOf(p, 'preview');
    expect(new Set(idled)).toEqual(new Set(second.slice(-DEPLOYMENTS_KEPT)));
    expect(p.dump().domains.filter((d) => d.hostname === 'feature-search.acme.localhost')).toEqual([]);
    expect(traffic.stopped.has('dep_p2fe8r')).toBe(true);
    expect(idsOf(p, 'production')).toEqual(production);
    // The state file holds the same, and loads again.
    await p.close();
    const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as LocalState;
    expect(saved.deployments.filter((d) => d.environment === 'preview').map((d) => d.id)).toEqual(idled);
    platform = await LocalPlatform.open({ clock, stateFile, maintenance: false });
    expect(idsOf(platform, 'preview')).toEqual(idled);
  });

  it('never drops a deployment in use: current, holding a domain, in the live history, building, or the target of a switch under way', async () => {
    const clock = new ManualClock();
    const traffic = recordingPlane();
    platform = await LocalPlatform.open({
      clock,
      buildTimeMs: 1,
      reactivationTimeMs: DAY,
      maintenance: false,
      traffic: traffic.plane,
    });
    const p = platform;
    // x holds its branch's domain; y lost its branch's domain to y2 and holds only its own.
    const [x] = await pushBuilt(p, clock, 1, 'production', 'feature-x');
    const [y, y2] = await pushBuilt(p, clock, 2, 'production', 'feature-y');
    // Rolled back to dep_3hd7xa: pushes from now on take no domain and leave the live history as is.
    const rollback = await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' });
    await clock.advance(DAY);
    await p.settle();
    expect((await p.operation(rollback)).state).toBe('succeeded');
    await clock.advance(STANDBY_AFTER_MS);
    p.maintain();
    expect((await p.getDeployment(y ?? ''))?.status).toBe('standby');
    // A promote of y waits a day for its reactivation: y is in use only as that switch's target.
    const promote = await p.promote({ environment: 'production', targetId: y ?? '' });
    expect((await p.operation(promote)).state).toBe('reactivating');

    // Held by their branch domains while their branches are among the newest pushes.
    const early = await pushBuilt(p, clock, DEPLOYMENTS_KEPT - 4, 'production', 'main');
    expect(idsOf(p, 'production')).toEqual(expect.arrayContaining([x, y2, early[0]]));
    const mains = [...early, ...(await pushBuilt(p, clock, 14, 'production', 'main'))];
    // y2 keeps its branch domain, feature-y being the branch of the promote under way (a promote of
    // its newest deployment moves it).
    const inUse = ['dep_3hd7xa', 'dep_4kq9wz', 'dep_2mc5ty', 'dep_1ab3cd', y, y2];
    let kept = idsOf(p, 'production');
    expect(kept).toEqual(expect.arrayContaining([...inUse, ...mains.slice(-DEPLOYMENTS_KEPT)]));
    // feature-x is no longer among the newest pushes: its branch domain lingers while x runs, no longer
    // serving, so x is a previous deployment: 30 minutes later it is in standby, and the domain goes
    // with x.
    expect(kept).toContain(x);
    await clock.advance(STANDBY_AFTER_MS);
    p.maintain();
    kept = idsOf(p, 'production');
    expect(kept).not.toContain(x);
    const branchDomains = p.dump().domains.filter((d) => d.stickiness === 'branch');
    expect(branchDomains.filter((d) => d.environment === 'production').map((d) => d.branch)).toEqual([
      'main',
      'feature-y',
    ]);
    // The oldest pushes, not in use, went.
    expect(mains.slice(0, 10).filter((id) => kept.includes(id))).toEqual([]);
    expect(kept).toHaveLength(inUse.length + DEPLOYMENTS_KEPT);

    // Builds under way are never dropped, however many: the ready pushes before them go instead.
    const building: string[] = [];
    for (let i = 0; i < DEPLOYMENTS_KEPT + 10; i++) {
      building.push((await p.push({ environment: 'production', branch: 'main' })).id);
    }
    kept = idsOf(p, 'production');
    expect(kept).toEqual(expect.arrayContaining([...inUse, ...building]));
    expect(mains.filter((id) => kept.includes(id))).toEqual([]);

    // The switch under way still lands on its target.
    await clock.advance(DAY);
    await p.settle();
    expect((await p.operation(promote)).state).toBe('succeeded');
    expect((await p.snapshot('production')).environment.currentDeploymentId).toBe(y);
  });

  /** Pushes one deployment from each branch `prefix-from` … `prefix-to`, each ready before the next. */
  async function pushBranches(
    p: LocalPlatform,
    clock: ManualClock,
    environment: string,
    prefix: string,
    from: number,
    to: number,
  ): Promise<Map<string, string>> {
    const ids = new Map<string, string>();
    for (let i = from; i <= to; i++) {
      const [id] = await pushBuilt(p, clock, 1, environment, `${prefix}-${i}`);
      if (id !== undefined) ids.set(`${prefix}-${i}`, id);
    }
    return ids;
  }

  const branchesWithDomains = (p: LocalPlatform, environment: string) =>
    p
      .dump()
      .domains.filter((d) => d.environment === environment && d.stickiness === 'branch')
      .map((d) => d.branch ?? '')
      .sort();
  const names = (prefix: string, from: number, to: number) =>
    Array.from({ length: to - from + 1 }, (_, i) => `${prefix}-${from + i}`);

  it(`keeps the domains of the branches among an environment's newest ${DEPLOYMENTS_KEPT} pushes and those a rollback needs: 200 branches keep no more than 100`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-local-'));
    dirs.push(dir);
    const stateFile = join(dir, 'state.json');
    const clock = new ManualClock();
    const traffic = recordingPlane();
    platform = await LocalPlatform.open({
      clock,
      stateFile,
      buildTimeMs: 1,
      reactivationTimeMs: 1,
      maintenance: false,
      traffic: traffic.plane,
    });
    const p = platform;
    // A branch pushed out of the newest pushes keeps its domain while its deployment runs (a preview
    // one until idle six hours; a production one, no longer serving, until its standby 30 minutes
    // later): the bound is measured once nothing was used for six hours.
    const idle = async () => {
      await clock.advance(PREVIEW_IDLE_MS);
      p.maintain();
    };
    // Production: hotfix branches never go live, each gets its branch's domain; preview: every push of
    // a new branch goes live, with its branch's domain.
    await pushBranches(p, clock, 'production', 'hotfix', 1, 100);
    await pushBranches(p, clock, 'preview', 'feature', 1, 100);
    await idle();
    const at100 = p.dump();
    const fileAt100 = statSync(stateFile).size;
    await pushBranches(p, clock, 'production', 'hotfix', 101, 200);
    const features = await pushBranches(p, clock, 'preview', 'feature', 101, 200);
    // None of the branches pushed since lost its domain: each deployment runs (the seed's rules).
    expect(branchesWithDomains(p, 'preview')).toEqual(names('feature', 101, 200).sort());
    await idle();
    let state = p.dump();
    expect(state.domains.length).toBe(at100.domains.length);
    expect(state.deployments.length).toBe(at100.deployments.length);
    expect(traffic.running.size).toBeLessThanOrEqual(state.deployments.length);
    expect(statSync(stateFile).size).toBeLessThan(fileAt100 * 1.1);
    // The newest branches keep their domains; main's points at production's current deployment (a
    // rollback moves it) and stays although no recent push is of main.
    expect(branchesWithDomains(p, 'production')).toEqual(['main', ...names('hotfix', 151, 200)].sort());
    // feature-151 to 200's deployments are in the live history (feature-150's entry went at the last
    // push, and its domain at the tick, its deployment idle).
    expect(branchesWithDomains(p, 'preview')).toEqual(names('feature', 151, 200).sort());
    for (const d of state.domains.filter(
      (x) => x.stickiness === 'branch' && x.branch?.startsWith('hotfix-'),
    )) {
      expect(state.deployments.find((x) => x.id === d.deploymentId)?.branch).toBe(d.branch);
    }

    // A rollback to production's default target keeps what it needs: the target, and main's domain
    // to move with the live and environment ones.
    const plan = buildPlan(await p.snapshot('production'), { action: 'rollback', now: clock.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    expect(plan.value.target.id).toBe('dep_3hd7xa');
    expect(plan.value.affectedDomains.map((d) => d.hostname).sort()).toEqual(
      ['main.acme.localhost', 'production.acme.localhost', 'shop.localhost', 'www.shop.localhost'].sort(),
    );
    expect(
      await finish(p, clock, await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' })),
    ).toBe('succeeded');
    expect(
      (await p.routing('production')).find((r) => r.hostname === 'main.acme.localhost')?.deploymentId,
    ).toBe('dep_3hd7xa');

    // Preview rolled back to feature-160's deployment; 60 new branches pushed meanwhile get no domain
    // (seed), and push the older branches out of the newest pushes. The deployments the live history
    // names keep theirs (feature-152 to 200; feature-151's entry was the one trimmed), as does the
    // current one: each is a rollback (or promote) target, whose branch domain moves back with it.
    const d160 = features.get('feature-160') ?? '';
    const d200 = features.get('feature-200') ?? '';
    expect(await finish(p, clock, await p.rollback({ environment: 'preview', targetId: d160 }))).toBe(
      'succeeded',
    );
    await pushBranches(p, clock, 'preview', 'late', 1, 60);
    expect(branchesWithDomains(p, 'preview')).toEqual(names('feature', 152, 200).sort());
    const promote = buildPlan(await p.snapshot('preview'), {
      action: 'promote',
      target: d200,
      now: clock.now(),
    });
    if (!promote.ok) throw new Error(promote.refusal.message);
    expect(await finish(p, clock, await p.promote({ environment: 'preview', targetId: d200 }))).toBe(
      'succeeded',
    );
    const routes = new Map((await p.routing('preview')).map((r) => [r.hostname, r.deploymentId]));
    expect(routes.get('preview.acme.localhost')).toBe(d200);
    expect(routes.get('feature-200.acme.localhost')).toBe(d200);
    expect(routes.get('feature-160.acme.localhost')).toBe(d160);
    state = p.dump();
    expect(state.deployments.filter((d) => d.environment === 'preview').length).toBeLessThanOrEqual(
      DEPLOYMENTS_KEPT + LIVE_HISTORY_KEPT,
    );
    // A restart loads the bounded state, dropping feature-152's domain: the promote's live-history
    // entry pushed out the last one naming its deployment.
    await p.close();
    platform = await LocalPlatform.open({ clock, stateFile, maintenance: false });
    expect(branchesWithDomains(platform, 'preview')).toEqual(names('feature', 153, 200).sort());
  });

  it('preview branches through the real router: running upstreams stay bounded, only the deployments serving an environment keep a warm pool, and a switch target is warmed before the swap', async () => {
    const clock = new ManualClock();
    let local: LocalPlatform | undefined;
    const warmSockets = 4;
    const router = new TrafficRouter({
      clock,
      warmSockets,
      wake: (id) => local?.wake(id) ?? Promise.resolve(false),
    });
    try {
      const port = await router.listen();
      local = await LocalPlatform.open({
        clock,
        buildTimeMs: 1,
        reactivationTimeMs: 1,
        maintenance: false,
        traffic: router,
      });
      platform = local;
      const p = local;
      const features = await pushBranches(p, clock, 'preview', 'feature', 1, 80);
      await p.settle();
      const running = router.runningUpstreams();
      // Every branch just pushed runs (the seed: until idle six hours; those beyond the newest pushes
      // on their lingering domain), as do the demo's dep_p2fe8r and production's current one.
      expect(running.length).toBe(80 + 2);
      const sockets = () => running.reduce((n, id) => n + (router.upstreamStats(id)?.poolSockets ?? 0), 0);
      // The pools the branch deployments had while they served preview's domain close once idle.
      for (let i = 0; i < 100_000 && sockets() > 2 * warmSockets; i++)
        await new Promise((r) => setImmediate(r));
      const serving = new Set(['dep_4kq9wz', features.get('feature-80')]);
      for (const id of running) {
        expect([id, router.upstreamStats(id)?.pool]).toEqual([id, serving.has(id) ? 'warm' : 'lean']);
      }
      // A warm pool for each environment's current deployment, nothing held open for the others.
      expect(sockets()).toBe(2 * warmSockets);
      // A lean deployment still answers on its branch's domain (a connection opened on demand).
      const d79 = features.get('feature-79') ?? '';
      expect(await probe(port, 'feature-79.acme.localhost')).toEqual({ status: 200, deploymentId: d79 });

      // Rolled back to feature-79's deployment: its pool is warm when the domains move to it.
      let atSwap: unknown;
      const off = p.subscribe((e) => {
        if (e.type !== 'traffic.moved') return;
        const stats = router.upstreamStats(e.to);
        atSwap = { pool: stats?.pool, open: (stats?.poolSockets ?? 0) >= warmSockets };
      });
      expect(await finish(p, clock, await p.rollback({ environment: 'preview', targetId: d79 }))).toBe(
        'succeeded',
      );
      off();
      expect(atSwap).toEqual({ pool: 'warm', open: true });
      await p.settle();
      // and the deployment it replaced no longer needs one.
      expect(router.upstreamStats(features.get('feature-80') ?? '')?.pool).toBe('lean');
      expect(await probe(port, 'preview.acme.localhost')).toEqual({ status: 200, deploymentId: d79 });

      // Six hours without a request: every preview deployment idled out, and the lingering branch
      // domains went with theirs. What runs is production's current deployment only.
      await clock.advance(PREVIEW_IDLE_MS);
      p.maintain();
      await p.settle();
      expect(router.runningUpstreams()).toEqual(['dep_4kq9wz']);
      expect(branchesWithDomains(p, 'preview').length).toBeLessThanOrEqual(DEPLOYMENTS_KEPT);
      expect(idsOf(p, 'preview').length).toBeLessThanOrEqual(DEPLOYMENTS_KEPT + 1);
    } finally {
      await platform?.close();
      platform = undefined;
      await router.close();
    }
  });

  it(`preview: a branch pushed out of the newest ${DEPLOYMENTS_KEPT} pushes keeps its domain and serves while it is used within six hours; idle six hours, its domain goes and is not woken`, async () => {
    const HOUR = 60 * MIN;
    const clock = new ManualClock();
    let local: LocalPlatform | undefined;
    const router = new TrafficRouter({
      clock,
      warmSockets: 1,
      wake: (id) => local?.wake(id) ?? Promise.resolve(false),
    });
    try {
      const port = await router.listen();
      local = await LocalPlatform.open({
        clock,
        buildTimeMs: 1,
        reactivationTimeMs: 1,
        maintenance: false,
        traffic: router,
      });
      platform = local;
      const p = local;
      const [old] = await pushBuilt(p, clock, 1, 'preview', 'feature-old');
      // 60 newer branches over six hours; someone uses feature-old every hour meanwhile.
      let newer = new Map<string, string>();
      for (let hour = 1; hour <= 6; hour++) {
        newer = await pushBranches(p, clock, 'preview', `h${hour}`, 1, 10);
        await clock.advance(HOUR);
        expect(await get(port, 'feature-old.acme.localhost')).toEqual({ status: 200, deploymentId: old });
        p.maintain();
      }
      // Out of the newest pushes and of the live history, still running and serving its domain.
      expect(branchesWithDomains(p, 'preview')).toContain('feature-old');
      expect((await p.getDeployment(old ?? ''))?.status).toBe('ready');
      expect(p.dump().liveHistory.preview?.some((e) => e.deploymentId === old)).toBe(false);

      // Then six hours with no request: it idles out, and its domain goes at that tick with it (404,
      // never woken); a branch among the newest pushes that idled out too keeps its domain and wakes.
      await clock.advance(PREVIEW_IDLE_MS);
      expect(p.maintain()).toContain(old);
      expect(branchesWithDomains(p, 'preview')).not.toContain('feature-old');
      expect(await p.getDeployment(old ?? '')).toBeUndefined();
      expect(await get(port, 'feature-old.acme.localhost')).toEqual({ status: 404, deploymentId: undefined });
      await p.settle();
      expect(router.runningUpstreams()).not.toContain(old);
      const recent = newer.get('h6-10') ?? '';
      expect((await p.getDeployment(recent))?.status).toBe('standby');
      const sleepers = clock.pending;
      const woken = get(port, 'h6-10.acme.localhost');
      // Held while its wake-up waits on the clock.
      for (let i = 0; i < 100_000 && clock.pending === sleepers; i++)
        await new Promise((r) => setImmediate(r));
      await clock.advance(1);
      expect(await woken).toEqual({ status: 200, deploymentId: recent });
    } finally {
      await platform?.close();
      platform = undefined;
      await router.close();
    }
  });

  it('never drops a preview deployment while a request wakes it', async () => {
    const clock = new ManualClock();
    platform = await LocalPlatform.open({
      clock,
      buildTimeMs: 1,
      reactivationTimeMs: DAY,
      maintenance: false,
      traffic: recordingPlane().plane,
    });
    const p = platform;
    const [w] = await pushBuilt(p, clock, 1, 'preview', 'main');
    await clock.advance(PREVIEW_IDLE_MS);
    p.maintain();
    expect((await p.getDeployment(w ?? ''))?.status).toBe('standby');
    const woken = p.wake(w ?? '');
    // Pushed over (no domain but its own, out of the live history): only the wake-up keeps it.
    const mains = await pushBuilt(p, clock, DEPLOYMENTS_KEPT + 10, 'preview', 'main');
    const kept = idsOf(p, 'preview');
    expect(kept).toContain(w);
    // while older pushes not in use went
    expect(mains.slice(0, 9).filter((id) => kept.includes(id))).toEqual([]);
    await clock.advance(DAY);
    expect(await woken).toBe(true);
    expect((await p.getDeployment(w ?? ''))?.status).toBe('ready');
  });

  it('a state file that grew before deployments were dropped is brought within bounds at start-up, starting no dropped upstream', async () => {
    const clock = new ManualClock();
    const seed = demoState(clock.now());
    const old: string[] = [];
    for (let i = 1; i <= 2 * DEPLOYMENTS_KEPT; i++) {
      const id = `dep_old${i}`;
      old.push(id);
      seed.deployments.push({
        id,
        projectId: 'proj_acme',
        environment: 'preview',
        branch: 'main',
        commit: { sha: i.toString(16).padStart(8, '0'), message: `Push #${i}`, author: 'ci' },
        createdAt: clock.now() - (300 - i) * MIN,
        readyAt: clock.now() - (300 - i) * MIN,
        status: 'ready',
        pushSeq: i,
      });
      seed.domains.push({
        hostname: `dep-old${i}.acme.localhost`,
        stickiness: 'deployment',
        environment: 'preview',
        deploymentId: id,
      });
    }
    seed.seq = old.length;
    // The oldest is current with no domain but its own, and no live-history entry (a state can say so).
    const preview = seed.environments.find((e) => e.slug === 'preview');
    if (preview === undefined) throw new Error('no preview in the demo');
    preview.currentDeploymentId = 'dep_old1';
    const traffic = recordingPlane();
    platform = await LocalPlatform.open({ clock, seed, maintenance: false, traffic: traffic.plane });
    const kept = idsOf(platform, 'preview');
    // dep_p2fe8r holds domains; dep_p1rw4n is in the live history.
    expect(new Set(kept)).toEqual(
      new Set([...old.slice(-DEPLOYMENTS_KEPT), 'dep_old1', 'dep_p2fe8r', 'dep_p1rw4n']),
    );
    expect(traffic.running.has('dep_old1')).toBe(true);
    const dropped = old.slice(1, -DEPLOYMENTS_KEPT);
    expect(dropped.filter((id) => traffic.running.has(id) || traffic.stopped.has(id))).toEqual([]);
    expect(dropped.filter((id) => traffic.routed().has(id))).toEqual([]);
    expect(platform.dump().domains.filter((d) => dropped.includes(d.deploymentId ?? ''))).toEqual([]);
  });
});

describe('start-up: the router opens with its routes in place', () => {
  /** A port free on 127.0.0.1 a moment ago (the router must listen on a port known before it opens). */
  async function freePort(): Promise<number> {
    const server = createNetServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }

  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('after a restart, from the moment the port accepts connections, a live domain is answered by its deployment, never 404 unknown_host', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-local-'));
    dirs.push(dir);
    const stateFile = join(dir, 'state.json');
    // The demo plus 30 running preview deployments: their upstreams take a while to start.
    const now = Date.now();
    const seed = demoState(now);
    for (let i = 1; i <= 30; i++) {
      seed.deployments.push({
        id: `dep_start${i}`,
        projectId: 'proj_acme',
        environment: 'preview',
        branch: `start-${i}`,
        commit: { sha: i.toString(16).padStart(8, '0'), message: `Push #${i}`, author: 'ci' },
        createdAt: now - MIN,
        readyAt: now - MIN,
        status: 'ready',
      });
    }
    const file = { local: { seed, stateFile, reactivationTime: '200ms', buildTime: '300ms' } };
    // A first run writes the state file the restart loads.
    await (await startTestSwitchyard({ file })).close();
    const port = await freePort();
    const answers: number[] = [];
    let started = false;
    let gaveUp = false;
    let after = 0;
    // A visitor asking again and again from before start-up until well after the router opened.
    const visitor = (async () => {
      while (!gaveUp && (!started || after < 20)) {
        try {
          const { status } = await get(port, 'shop.localhost');
          answers.push(status);
          if (started) after++;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ECONNREFUSED') throw e;
          await new Promise((r) => setImmediate(r));
        }
      }
    })();
    const app = await startTestSwitchyard({
      env: { LOCAL_ROUTER_PORT: String(port) },
      file,
    }).finally(() => {
      started = true;
    });
    try {
      await visitor;
      expect(app.routerPort).toBe(port);
      expect(answers.filter((s) => s !== 200)).toEqual([]);
      expect(answers.length).toBeGreaterThanOrEqual(20);
    } finally {
      gaveUp = true;
      await visitor.catch(() => undefined);
      await app.close();
    }
  });
  it('the platform installs its routes once the upstreams it starts run: a router already listening never answers a live domain 503 meanwhile', async () => {
    // The demo: loading it puts production's old deployments in standby (a route change) first.
    const calls: string[] = [];
    const plane: TrafficPlane = {
      applyRoutes: () => calls.push('routes'),
      startUpstream: async (d) => {
        calls.push(`start ${d.id}`);
      },
      stopUpstream: async () => undefined,
      upstreamStats: () => undefined,
    };
    platform = await LocalPlatform.open({ clock: new ManualClock(), maintenance: false, traffic: plane });
    expect(calls.filter((c) => c.startsWith('start')).length).toBeGreaterThan(0);
    expect(calls.indexOf('routes')).toBe(calls.length - 1);
  });
});

describe('a switch job resumed after a local platform restart', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  /**
   * The job's first attempt asked the platform to switch and stored the operation ref (what the
   * processor does), then the process stopped. Returns what a worker on the restarted platform needs.
   */
  async function beforeRestart(crashAt: 'pending' | 'succeeded') {
    const dir = mkdtempSync(join(tmpdir(), 'sy-local-job-'));
    cleanup.add(async () => rmSync(dir, { recursive: true, force: true }));
    const stateFile = join(dir, 'state.json');
    const crashed = join(dir, 'crashed.json');
    const clock = new ManualClock();
    const first = await LocalPlatform.open({
      clock,
      seed: jobsSeed(1, clock.now()),
      stateFile,
      maintenance: false,
    });
    cleanup.add(() => first.close());
    const plan = await planFor(first, 'env0', 'rollback', clock.now());
    const data = jobData(plan, clock.now());
    const ref = await first.rollback({
      environment: 'env0',
      targetId: plan.target.id,
      requestedBy: 'Alice',
      expectedCurrent: data.expectedCurrent,
      expectedRolledBack: data.expectedRolledBack,
    });
    if (crashAt === 'succeeded') expect(await finish(first, clock, ref)).toBe('succeeded');
    // The process dies here: a restart reads the state file as it is on disk.
    copyFileSync(stateFile, crashed);
    const second = await LocalPlatform.open({ clock, stateFile: crashed, maintenance: false });
    cleanup.add(() => second.close());

    const queueName = uniqueName('local-switch');
    const queue = await openTestQueue(cleanup, {
      queueName,
      retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 },
    });
    const redis = createRedis(redisUrl());
    cleanup.add(() => redis.quit());
    await redis.set(
      switchKeys(queue.prefix, queueName).operation(jobIdForPlan(plan.id)),
      JSON.stringify(ref),
    );
    return { second, plan, data, queue, queueName };
  }

  async function resume(env: Awaited<ReturnType<typeof beforeRestart>>) {
    await startTestWorker(cleanup, {
      queueName: env.queueName,
      platform: env.second,
      reporter: new RecordingReporter(),
      ...QUICK_RETRIES,
    });
    // Delivered again (as after a stalled worker) with its stored operation ref.
    await env.queue.enqueue(env.data);
    return env.queue.waitForEnd(jobIdForPlan(env.plan.id));
  }

  it('a switch that landed before the restart is reported as this job’s, not "through another switch"', async () => {
    const env = await beforeRestart('succeeded');
    expect((await env.second.snapshot('env0')).environment.currentDeploymentId).toBe(env.plan.target.id);
    const final = await resume(env);
    expect(final?.outcome).toBe('succeeded');
    expect(final?.message ?? '').not.toMatch(/another switch|Nothing was done/);
    expect((await env.second.snapshot('env0')).environment.currentDeploymentId).toBe(env.plan.target.id);
  });

  it('a switch cut off by the restart is decided afresh: the job switches, once, and says so', async () => {
    const env = await beforeRestart('pending');
    expect((await env.second.snapshot('env0')).environment.currentDeploymentId).toBe(
      env.data.expectedCurrent,
    );
    const final = await resume(env);
    expect(final?.outcome).toBe('succeeded');
    expect(final?.message ?? '').not.toMatch(/another switch|Nothing was done/);
    const snap = await env.second.snapshot('env0');
    expect(snap.environment.currentDeploymentId).toBe(env.plan.target.id);
    expect(snap.environment.rolledBack).toBe(true);
    expect(snap.liveHistory.filter((e) => e.via === 'rollback')).toHaveLength(1);
  });
});

describe('a local platform restarted while a worker follows its switch (retryable operations)', () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  /**
   * The platform behind the router's operator API, as a separate worker reaches it (LocalPlatformClient
   * over HTTP), and a restart of it: requests that arrive meanwhile wait for the restarted platform
   * (as a client retrying its connection would reach it), so the worker sees only what the platform
   * says about its operation afterwards.
   */
  async function served() {
    const dir = mkdtempSync(join(tmpdir(), 'sy-local-retry-'));
    cleanup.add(async () => rmSync(dir, { recursive: true, force: true }));
    const stateFile = join(dir, 'state.json');
    const clock = new ObservableClock();
    let api: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.writeHead(503).end();
    let gate: Promise<void> = Promise.resolve();
    const router = new TrafficRouter({
      port: 0,
      drainTimeoutMs: 1_000,
      operator: (req, res) => {
        void gate.then(() => api(req, res));
      },
    });
    cleanup.add(() => router.close());
    const traffic: TrafficPlane = {
      applyRoutes: (routes) => router.applyRoutes(routes),
      startUpstream: async (d) => {
        await router.startUpstream(d);
      },
      stopUpstream: (id) => router.stopUpstream(id),
      upstreamStats: () => undefined,
    };
    const open = (file: string) =>
      LocalPlatform.open({ clock, stateFile: file, maintenance: false, reactivationTimeMs: 5_000, traffic });
    writeFileSync(stateFile, JSON.stringify(jobsSeed(1, clock.now())));
    const first = await open(stateFile);
    cleanup.add(() => first.close());
    api = createLocalApi(first);
    const port = await router.listen();
    return {
      clock,
      stateFile,
      first,
      client: new LocalPlatformClient({ baseUrl: `http://127.0.0.1:${port}` }),
      /** Stops `first` (cleanly, or as a crash: the restart reads the file as it was) and opens it again. */
      async restart(how: 'crash' | 'shutdown'): Promise<LocalPlatform> {
        let reopen!: () => void;
        gate = new Promise((r) => {
          reopen = r;
        });
        const crashed = join(dir, 'crashed.json');
        if (how === 'crash') copyFileSync(stateFile, crashed);
        await first.close();
        const second = await open(how === 'crash' ? crashed : stateFile);
        cleanup.add(() => second.close());
        api = createLocalApi(second);
        reopen();
        return second;
      },
    };
  }

  it.each([
    ['crash', 'interrupted'],
    ['shutdown', 'platform_unavailable'],
  ] as const)(
    'restarted mid-reactivation (%s): the worker over HTTP retries, and the switch lands once, saying so',
    async (how, code) => {
      const env = await served();
      const queueName = uniqueName('local-retry');
      const queue = await openTestQueue(cleanup, {
        queueName,
        retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 },
      });
      const reporter = new RecordingReporter();
      await startTestWorker(cleanup, { queueName, platform: env.client, reporter, ...QUICK_RETRIES });

      // A rollback to a standby deployment: the platform reactivates it first (5 s on its clock).
      const target = seedIds(0).standby;
      const plan = await planFor(env.client, 'env0', 'rollback', env.clock.now(), target);
      const { jobId } = await queue.enqueue(jobData(plan, env.clock.now()));
      const following = await reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
      await env.clock.untilSleeping();
      const ref = env.first.dump().operations.find((o) => o.id === following.operationId);
      expect(ref?.state).toBe('reactivating');

      const second = await env.restart(how);
      let moves = 0;
      const off = second.subscribe((e) => {
        if (e.type === 'traffic.moved') moves++;
      });
      cleanup.add(async () => off());
      // The worker's next attempt asks the restarted platform again: let its reactivation time pass. A
      // job that took the failure as final ends instead (and nothing sleeps on the clock).
      const ended = queue.waitForEnd(jobId);
      const next = await Promise.race([
        env.clock.untilSleeping().then(() => 'asked again' as const),
        ended.then(() => 'ended' as const),
      ]);
      if (next === 'asked again') await env.clock.advance(5_000);
      const final = await ended;

      expect(final).toMatchObject({ outcome: 'succeeded', attempt: 2 });
      expect(final?.message ?? '').not.toMatch(/another switch|Nothing was done/);
      const failedFirst = reporter.of(jobId).find((p) => p.attempt === 1 && p.code !== undefined);
      expect(failedFirst?.code).toBe('platform_operation_failed');
      expect(failedFirst?.steps.at(-1)?.detail).toContain('nothing was switched');
      expect(failedFirst?.steps.at(-1)?.detail).toContain('retrying');
      const snap = await second.snapshot('env0');
      expect(snap.environment.currentDeploymentId).toBe(target);
      expect(snap.environment.rolledBack).toBe(true);
      expect(snap.liveHistory.filter((e) => e.via === 'rollback')).toHaveLength(1);
      expect(moves).toBe(1);
      // What the worker read over HTTP: the first operation failed, retryable (the client keeps it).
      const first = await env.client.operation({
        id: following.operationId as string,
        action: 'rollback',
        environment: 'env0',
        targetId: target,
        startedAt: ref?.startedAt ?? 0,
      });
      expect(first).toMatchObject({ state: 'failed', error: { code, retryable: true } });
    },
  );
});
