/**
 * Contract tests of UnkeyPlatform against the stateful fake Unkey v2 server: snapshot mapping, paging,
 * rollback/promote followed to completion, the rolled-back state, every documented error mapped to a
 * refusal (without the root key in any message), and a plan built from an Unkey snapshot.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { buildPlan } from '../../src/domain/plan.js';
import { ConfigError, PlatformHttpError, RefusalError } from '../../src/errors.js';
import { createLogger, type Logger } from '../../src/log.js';
import { createUnkeyPlatform, UnkeyPlatform } from '../../src/platform/unkey/adapter.js';
import { SleepRecordingClock, UnkeyFakeServer } from '../fakes/unkey-server.js';
import { pushMainDeployments, startAcmeUnkey } from '../support/unkey.js';

const KEY = 'unkey_3ZadapterTestRootKey0123456789';
const READ_ONLY = 'unkey_3ZreadOnlyRootKey0123456789';
const NO_PERMS = 'unkey_3ZnoPermissionRootKey01234567';
const UNKNOWN = 'unkey_3ZunknownRootKey0123456789abc';
const SECRETS = [KEY, READ_ONLY, NO_PERMS, UNKNOWN];
const TIMEOUT = 5_000;
const SWITCH_DELAY = 1_000;
/** Unkey stops a replaced production deployment this long after it stopped serving. */
const STOP_AFTER = 30 * 60_000;
const DRAIN = 60_000;

const prodEnv = { project: 'acme', app: 'api', environment: 'production' } as const;
const previewEnv = { project: 'acme', app: 'api', environment: 'preview' } as const;

let clock: SleepRecordingClock;
let server: UnkeyFakeServer;
let platform: UnkeyPlatform;
let d1: string;
let d2: string;
let d3: string;

function makePlatform(rootKey: string, extra: Partial<ConstructorParameters<typeof UnkeyPlatform>[0]> = {}) {
  return new UnkeyPlatform({
    environments: { production: prodEnv, preview: previewEnv },
    client: { baseUrl: server.url, rootKey, clock, timeoutMs: TIMEOUT, maxRetries: 2, random: () => 0.5 },
    clock,
    ...extra,
  });
}

beforeEach(async () => {
  clock = new SleepRecordingClock();
  server = await startAcmeUnkey(KEY, {
    clock,
    switchDelayMs: SWITCH_DELAY,
    stopAfterMs: STOP_AFTER,
    drainMs: DRAIN,
    otherKeys: { [READ_ONLY]: ['environment.*.read_deployment'], [NO_PERMS]: [] },
  });
  [d1, d2, d3] = (await pushMainDeployments(server, clock, 3)) as [string, string, string];
  platform = makePlatform(KEY);
});

afterEach(async () => {
  await platform.close();
  await server.close();
});

/** The deployment as the fake Unkey API answers it (getDeployment's `data`). */
async function fetchWire(id: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${server.url}/v2/deployments.getDeployment`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ deploymentId: id }),
  });
  return ((await res.json()) as { data: Record<string, unknown> }).data;
}

/** Awaits a promise expected to reject with a RefusalError and checks no secret leaks into it. */
async function refusal(p: Promise<unknown>): Promise<RefusalError> {
  const e = await clock.drive(
    p.then(
      () => undefined,
      (err: unknown) => err,
    ),
    TIMEOUT,
  );
  expect(e).toBeInstanceOf(RefusalError);
  const r = e as RefusalError;
  for (const secret of SECRETS) {
    expect(r.message).not.toContain(secret);
    expect(JSON.stringify(r.context)).not.toContain(secret);
  }
  expect(r.retry).toBe(false);
  return r;
}

/** A logger whose JSON lines (warn and up) land in `lines`. */
function captureLogger(lines: string[]): Logger {
  return createLogger({
    pretty: false,
    level: 'info',
    destination: { write: (l: string) => lines.push(l) } as never,
  });
}

/**
 * fetch that adds to the fake's answers what a newer Unkey could send: one more deployment (`dep_queued`)
 * in a status fc99b6b does not document, and an undocumented action on deployment `withAction`.
 */
function withNewerValues(withAction: string): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init);
    const url = String(input);
    if (!url.endsWith('deployments.listDeployments') && !url.endsWith('deployments.getDeployment'))
      return res;
    const body = (await res.json()) as { data: Record<string, unknown>[] | Record<string, unknown> };
    const rows = Array.isArray(body.data) ? body.data : [body.data];
    for (const d of rows) {
      if (d.id === withAction) d.availableActions = [...(d.availableActions as string[]), 'redeploy'];
    }
    const first = rows[0];
    if (Array.isArray(body.data) && first) {
      body.data.unshift({
        ...first,
        id: 'dep_queued',
        isCurrent: false,
        status: 'queued',
        availableActions: [],
        domains: [],
        createdAt: Number(first.createdAt) + 1,
      });
    }
    return new Response(JSON.stringify(body), {
      status: res.status,
      headers: { 'content-type': 'application/json' },
    });
  };
}

describe('UnkeyPlatform reads', () => {
  it('lists the configured environments', async () => {
    expect(await platform.listEnvironments()).toEqual(['production', 'preview']);
  });

  it('maps a snapshot: current deployment, statuses, domains and their stickiness', async () => {
    const snap = await platform.snapshot('production');
    expect(snap.project).toEqual({ id: 'acme', name: 'acme' });
    expect(snap.environment).toEqual({
      slug: 'production',
      kind: 'production',
      projectId: 'acme',
      rolledBack: false,
      currentDeploymentId: d3,
    });
    expect(snap.deployments.map((d) => d.id)).toEqual([d3, d2, d1]);
    expect(snap.deployments.map((d) => d.status)).toEqual(['ready', 'ready', 'ready']);
    const first = snap.deployments[0];
    expect(first?.branch).toBe('main');
    expect(first?.commit.sha).toBe(`ccccccc${'3'.repeat(33)}`);
    expect(first?.environment).toBe('production');
    const byHost = Object.fromEntries(snap.domains.map((d) => [d.hostname, d]));
    expect(byHost['api.acme.com']).toMatchObject({ stickiness: 'live', deploymentId: d3 });
    expect(byHost['acme-production-acme.unkey.app']).toMatchObject({
      stickiness: 'environment',
      deploymentId: d3,
    });
    expect(byHost['acme-git-main-acme.unkey.app']).toMatchObject({
      stickiness: 'branch',
      branch: 'main',
      deploymentId: d3,
    });
    expect(byHost['acme-git-ccccccc-acme.unkey.app']).toMatchObject({
      stickiness: 'deployment',
      deploymentId: d3,
    });
    expect(byHost['acme-git-aaaaaaa-acme.unkey.app']).toMatchObject({
      stickiness: 'deployment',
      deploymentId: d1,
    });
    expect(snap.liveHistory).toEqual([]);
    expect(snap.readAt).toBe(clock.now());
  });

  it('follows cursors page by page and stops at the configured maximum', async () => {
    for (let i = 0; i < 4; i++) server.push({ ...prodEnv, branch: `feature-${i}`, status: 'building' });
    platform = makePlatform(KEY, { pageSize: 2 });
    const snap = await platform.snapshot('production');
    expect(snap.deployments).toHaveLength(7);
    const lists = server.requests.filter((r) => r.endpoint === 'deployments.listDeployments');
    expect(lists).toHaveLength(4);
    expect(lists[0]?.body).toEqual({ ...prodEnv, limit: 2 });
    expect(lists[1]?.body).toMatchObject({ ...prodEnv, limit: 2, cursor: expect.any(String) });
    expect(snap.deployments.filter((d) => d.status === 'building')).toHaveLength(4);

    const capped = makePlatform(KEY, { pageSize: 2, maxDeployments: 3 });
    const before = server.requests.length;
    const partial = await capped.snapshot('production');
    expect(partial.deployments).toHaveLength(4);
    expect(server.requests.length - before).toBe(2);
  });

  it('says when it stopped at maxDeployments with more left (deploymentsTruncated), not when it read them all', async () => {
    // Review case: with 1 200 deployments /deployments said "Showing 10 of 500 deployments": the read
    // limit presented as the environment's total.
    const all = makePlatform(KEY, { pageSize: 2, maxDeployments: 3 });
    const whole = await all.snapshot('production');
    // Exactly as many as the maximum, none left: all were read.
    expect(whole.deployments).toHaveLength(3);
    expect(whole.deploymentsTruncated).toBeUndefined();
    // Five: paging stops after the second page of two (4 read, at least the maximum) with one left.
    server.push({ ...prodEnv, branch: 'feature-x' });
    server.push({ ...prodEnv, branch: 'feature-y' });
    const partial = await all.snapshot('production');
    expect(partial.deployments).toHaveLength(4);
    expect(partial.deploymentsTruncated).toBe(true);
    await all.close();
  });

  it('without `app`, finds the app once and then lists the environment with all three filters', async () => {
    server.push({ ...previewEnv, branch: 'feature-x' });
    const noApp = makePlatform(KEY, {
      environments: { production: { project: 'acme', environment: 'production' } },
    });
    const before = server.requests.length;
    const snap = await noApp.snapshot('production');
    expect(snap.deployments.map((d) => d.id)).toEqual([d3, d2, d1]);
    expect(snap.environment.currentDeploymentId).toBe(d3);
    const lists = () =>
      server.requests.slice(before).filter((r) => r.endpoint === 'deployments.listDeployments');
    // One project-wide list to find the app, then the environment's own list.
    expect(lists().map((r) => r.body)).toEqual([
      { project: 'acme', limit: 100 },
      { ...prodEnv, limit: 100 },
    ]);
    // The app is remembered: the next read lists the environment only.
    await noApp.snapshot('production');
    expect(lists().map((r) => r.body)).toHaveLength(3);
    expect(lists().at(-1)?.body).toEqual({ ...prodEnv, limit: 100 });
    // A switch checks the target against the resolved app.
    expect((await noApp.getDeployment(d2))?.environment).toBe('production');
    await noApp.close();
  });

  it('without `app`, newer deployments of another environment do not push the current one out of the window', async () => {
    // Review case: the project-wide list was capped at maxDeployments before the environment was
    // filtered out of it, so a busy preview environment hid production's current deployment.
    for (let i = 0; i < 12; i++) {
      await clock.advance(1_000);
      server.push({ ...previewEnv, branch: `feature-${i}` });
    }
    const lines: string[] = [];
    const noApp = makePlatform(KEY, {
      environments: { production: { project: 'acme', environment: 'production' } },
      pageSize: 5,
      maxDeployments: 20,
      logger: captureLogger(lines),
    });
    const snap = await noApp.snapshot('production');
    expect(snap.environment.currentDeploymentId).toBe(d3);
    expect(snap.deployments.map((d) => d.id)).toEqual([d3, d2, d1]);
    expect(server.requests.at(-1)?.body).toEqual({ ...prodEnv, limit: 5 });
    expect(lines.filter((l) => l.includes('no current deployment'))).toEqual([]);
    await noApp.close();
  });

  it('without `app`, warns (raise maxDeployments) when no deployment of the environment is within the window', async () => {
    for (let i = 0; i < 12; i++) {
      await clock.advance(1_000);
      server.push({ ...previewEnv, branch: `feature-${i}` });
    }
    const lines: string[] = [];
    const noApp = makePlatform(KEY, {
      environments: { production: { project: 'acme', environment: 'production' } },
      pageSize: 5,
      maxDeployments: 10,
      logger: captureLogger(lines),
    });
    const snap = await noApp.snapshot('production');
    expect(snap.environment.currentDeploymentId).toBeUndefined();
    expect(snap.deployments).toEqual([]);
    // No deployment of it among those read, but more are left: not "none".
    expect(snap.deploymentsTruncated).toBe(true);
    const warned = lines.filter((l) => l.includes('no current deployment among the deployments read'));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toContain('raise maxDeployments');
    // Not resolved: the next read looks for the app again (and finds it once the window allows).
    const wider = makePlatform(KEY, {
      environments: { production: { project: 'acme', environment: 'production' } },
      pageSize: 5,
      maxDeployments: 20,
    });
    expect((await wider.snapshot('production')).environment.currentDeploymentId).toBe(d3);
    await noApp.close();
    await wider.close();
  });

  it('with `app`, warns about a missing current deployment only when paging stopped at the maximum', async () => {
    const lines: string[] = [];
    server.unsetCurrent('acme', 'api');
    const all = makePlatform(KEY, { maxDeployments: 3, logger: captureLogger(lines) });
    expect((await all.snapshot('production')).deployments).toHaveLength(3);
    expect((await all.snapshot('production')).environment.currentDeploymentId).toBeUndefined();
    // All three were read (as many as the maximum, none left): there is no current deployment to find,
    // so no "raise maxDeployments".
    expect(lines.filter((l) => l.includes('no current deployment'))).toEqual([]);
    const capped = makePlatform(KEY, { pageSize: 1, maxDeployments: 2, logger: captureLogger(lines) });
    await capped.snapshot('production');
    expect(lines.filter((l) => l.includes('no current deployment'))).toHaveLength(1);
    await all.close();
    await capped.close();
  });

  it('without `app`, stops with a ConfigError naming the apps when several deploy to the environment', async () => {
    await clock.advance(1_000);
    server.push({ project: 'acme', app: 'web', environment: 'production', branch: 'main' });
    const noApp = makePlatform(KEY, {
      environments: { production: { project: 'acme', environment: 'production' } },
    });
    const e = await noApp.snapshot('production').then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).message).toContain('environments.production.unkey.app');
    expect((e as ConfigError).message).toMatch(/web, api|api, web/);
    await noApp.close();
  });

  it('survives a status and an action Unkey adds later: not ready, ignored, logged once', async () => {
    const lines: string[] = [];
    const added = makePlatform(KEY, {
      client: {
        baseUrl: server.url,
        rootKey: KEY,
        clock,
        timeoutMs: TIMEOUT,
        maxRetries: 0,
        // Unkey answers one more deployment in a status (and d2 with an action) added after fc99b6b.
        fetch: withNewerValues(d2),
      },
      logger: captureLogger(lines),
    });
    const snap = await added.snapshot('production');
    expect(snap.environment.currentDeploymentId).toBe(d3);
    const byId = new Map(snap.deployments.map((d) => [d.id, d]));
    expect(byId.get('dep_queued')).toMatchObject({ status: 'building' });
    expect(byId.get('dep_queued')?.statusReason).toContain('Unkey reports status "queued"');
    // The unknown action is ignored: d2 is still a ready rollback target, d3 still not rolled back.
    expect(byId.get(d2)?.status).toBe('ready');
    expect(snap.environment.rolledBack).toBe(false);
    const plan = buildPlan(snap, { action: 'rollback', now: clock.now() });
    expect(plan.ok && plan.value.target.id).toBe(d2);
    const named = buildPlan(snap, { action: 'rollback', target: 'dep_queued', now: clock.now() });
    expect(!named.ok && named.refusal.code).toBe('target_not_ready');
    expect(!named.ok && named.refusal.message).toContain('"queued"');
    await added.snapshot('production');
    expect(lines.filter((l) => l.includes('unknown deployment status'))).toHaveLength(1);
    expect(lines.filter((l) => l.includes('unknown available action'))).toHaveLength(1);
    await added.close();
  });

  it('maps a preview environment: no current deployment, environment domain follows the newest', async () => {
    const p1 = server.push({ ...previewEnv, branch: 'feature-x' });
    const snap = await platform.snapshot('preview');
    expect(snap.environment.kind).toBe('preview');
    expect(snap.environment.currentDeploymentId).toBeUndefined();
    expect(snap.domains).toContainEqual(
      expect.objectContaining({
        hostname: 'acme-preview-acme.unkey.app',
        stickiness: 'environment',
        deploymentId: p1,
      }),
    );
  });

  it('gets one deployment, and undefined for an unknown one', async () => {
    const d = await platform.getDeployment(d2);
    expect(d).toMatchObject({ id: d2, environment: 'production', status: 'ready', projectId: 'acme' });
    expect(await platform.getDeployment('dep_9999')).toBeUndefined();
  });

  it('routes every hostname of the environment to its deployment', async () => {
    const routes = await platform.routing('production');
    expect(routes).toContainEqual({
      hostname: 'api.acme.com',
      stickiness: 'live',
      environment: 'production',
      deploymentId: d3,
    });
  });

  it('routes from a snapshot of the environment it is given without listing again; any other, it reads', async () => {
    const snap = await platform.snapshot('production');
    const lists = () => server.requests.filter((r) => r.endpoint === 'deployments.listDeployments').length;
    const before = lists();
    const routes = await platform.routing('production', snap);
    expect(lists()).toBe(before);
    expect(routes).toEqual(await platform.routing('production'));
    expect(lists()).toBeGreaterThan(before);

    // A snapshot of another environment is no answer for this one: read this one.
    server.push({ ...previewEnv, branch: 'feature-x' });
    const preview = await platform.snapshot('preview');
    const afterPreview = lists();
    expect(await platform.routing('production', preview)).toEqual(routes);
    expect(lists()).toBeGreaterThan(afterPreview);
  });

  it('refuses an environment that is not configured', async () => {
    const r = await refusal(platform.snapshot('staging'));
    expect(r.code).toBe('unknown_environment');
    expect(r.message).toContain('Valid environments: production, preview');
  });

  it("reports a replaced production deployment ready for 30 minutes, then stopped with Unkey's reason", async () => {
    // d2 stopped serving when d3 went live, 60 s ago; d1 two minutes ago.
    let snap = await platform.snapshot('production');
    expect(snap.deployments.map((d) => d.status)).toEqual(['ready', 'ready', 'ready']);
    // 30 minutes after d2 was replaced Unkey shuts it down: still `ready` on Unkey, offering nothing.
    await clock.advance(STOP_AFTER - 60_000);
    const wire = await fetchWire(d2);
    expect(wire).toMatchObject({ status: 'ready', availableActions: [] });
    snap = await platform.snapshot('production');
    const byId = new Map(snap.deployments.map((d) => [d.id, d]));
    expect(byId.get(d3)?.status).toBe('ready');
    expect(byId.get(d2)?.status).toBe('stopped');
    expect(byId.get(d2)?.statusReason).toContain('Unkey offers no rollback or promote to it right now');
    // Once its instances are gone Unkey says `stopped` too.
    await clock.advance(DRAIN);
    expect(await fetchWire(d2)).toMatchObject({ status: 'stopped', availableActions: [] });
    snap = await platform.snapshot('production');
    expect(snap.deployments.map((d) => d.status)).toEqual(['ready', 'stopped', 'stopped']);
    expect(snap.deployments.some((d) => d.status === 'standby')).toBe(false);
  });

  it('infers the environment kind from the deployments, not from the slug `production`', async () => {
    const live = await UnkeyFakeServer.start({
      clock,
      environmentKinds: { live: 'production', production: 'preview' },
      rootKeys: { [KEY]: ['environment.*.read_deployment', 'environment.*.rollback_deployment'] },
    });
    try {
      const env = { project: 'acme', app: 'api', environment: 'live' } as const;
      const odd = { project: 'acme', app: 'api', environment: 'production' } as const;
      const l1 = live.push({ ...env, branch: 'main' });
      await clock.advance(60_000);
      live.push({ ...env, branch: 'main' });
      live.push({ ...odd, branch: 'main' });
      const p = new UnkeyPlatform({
        environments: { prod: env, odd },
        client: { baseUrl: live.url, rootKey: KEY, clock, timeoutMs: TIMEOUT, maxRetries: 0 },
        clock,
      });
      const snap = await p.snapshot('prod');
      expect(snap.environment.kind).toBe('production');
      expect(buildPlan(snap, { action: 'rollback', now: clock.now() })).toMatchObject({
        ok: true,
        value: { environmentKind: 'production', target: { id: l1 } },
      });
      expect((await p.snapshot('odd')).environment.kind).toBe('preview');
      await p.close();
    } finally {
      await live.close();
    }
  });

  it('does not list a queued build a newer commit superseded (no failed or stopped deployment)', async () => {
    const queued = server.push({ ...prodEnv, branch: 'main', status: 'pending' });
    let snap = await platform.snapshot('production');
    expect(snap.deployments.find((d) => d.id === queued)?.status).toBe('building');
    const newer = server.push({ ...prodEnv, branch: 'main', status: 'pending' });
    expect(await fetchWire(queued)).toMatchObject({ status: 'superseded', availableActions: [] });
    snap = await platform.snapshot('production');
    expect(snap.deployments.map((d) => d.id)).toEqual([newer, d3, d2, d1]);
    // Read on its own it is a build that never ran: failed, never standby or stopped.
    expect(await platform.getDeployment(queued)).toMatchObject({ id: queued, status: 'failed' });
  });

  it('passes health with a cheap list, and fails it with the reason', async () => {
    const from = server.requests.length;
    await platform.health();
    expect(server.requests.slice(from).map((r) => r.body)).toContainEqual({ ...prodEnv, limit: 1 });
    const r = await refusal(makePlatform(UNKNOWN).health());
    expect(r.code).toBe('platform_unauthorized');
  });

  it("checks every environment's mapping for health, not only the first one's, and names each that fails", async () => {
    const from = server.requests.length;
    await makePlatform(KEY).health();
    expect(server.requests.slice(from).map((r) => r.body)).toEqual(
      expect.arrayContaining([
        { ...prodEnv, limit: 1 },
        { ...previewEnv, limit: 1 },
      ]),
    );
    const misspelled = (environment: string) => ({ ...previewEnv, environment });
    const one = await makePlatform(KEY, {
      environments: { production: prodEnv, preview: misspelled('previw') },
    })
      .health()
      .then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    expect(one?.message).toContain('previw');
    const two = await makePlatform(KEY, {
      environments: { production: { ...prodEnv, environment: 'prodction' }, preview: misspelled('previw') },
    })
      .health()
      .then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    expect(two?.message).toContain('prodction');
    expect(two?.message).toContain('previw');
  });
});

describe('UnkeyPlatform derived live history (Unkey exposes none)', () => {
  it('keeps liveHistory empty and derives how an automatic deploy made the current deployment live', async () => {
    // d1..d3 were pushed a minute apart; 31 minutes on, Unkey stopped d1 and d2, and d4 is pushed.
    await clock.advance(STOP_AFTER + DRAIN);
    const d4 = server.push({ ...prodEnv, branch: 'main', status: 'building' });
    const created = clock.now();
    await clock.advance(3 * 60_000);
    server.setStatus(d4, 'ready');
    await clock.advance(5 * 60_000);
    const snap = await platform.snapshot('production');
    expect(snap.deployments.map((d) => [d.id, d.status])).toEqual([
      [d4, 'ready'],
      [d3, 'ready'],
      [d2, 'stopped'],
      [d1, 'stopped'],
    ]);
    expect(snap.liveHistory).toEqual([]);
    // Unkey says when it was created and last updated (its readyAt), not when it became ready.
    expect(snap.derivedLive).toEqual({
      platform: 'Unkey',
      current: {
        deploymentId: d4,
        via: 'deploy',
        notBefore: created,
        notAfter: created + 3 * 60_000,
        previous: d3,
      },
    });
    // The default rollback target is the same as without it: the newest ready one before the current.
    const plan = buildPlan(snap, { action: 'rollback', now: clock.now() });
    expect(plan.ok && plan.value.target.id).toBe(d3);
  });

  it('claims nothing where Unkey does not tell: deploys within 30 minutes of each other, rolled back, preview', async () => {
    // d1, d2 and d3 deployed a minute apart: d1 and d2 both still run (Unkey stops each 30 minutes
    // after it was replaced), as they would after a rollback and a promote of a newer deployment; the
    // state does not tell which it was, and says both.
    const snap = await platform.snapshot('production');
    expect(snap.derivedLive).toEqual({
      platform: 'Unkey',
      unknown: `${d2} and ${d1} still run, as they do after automatic deploys within the last 30 minutes and after a rollback and a promote, which Unkey's state does not tell apart, so it may have been promoted`,
    });
    const ref = await platform.rollback({ environment: 'production', targetId: d2 });
    await clock.advance(SWITCH_DELAY);
    expect((await platform.operation(ref)).state).toBe('succeeded');
    expect((await platform.snapshot('production')).derivedLive).toEqual({
      platform: 'Unkey',
      unknown: 'production is rolled back to it, and Unkey does not say since when',
    });
    server.push({ ...previewEnv, branch: 'feature' });
    expect((await platform.snapshot('preview')).derivedLive?.unknown).toBe(
      'preview has no current deployment',
    );
  });
});

describe('UnkeyPlatform rollback and promote', () => {
  it('rolls back: 202, then the operation succeeds once the target is current and rolled back', async () => {
    const before = await platform.snapshot('production');
    const plan = buildPlan(before, { action: 'rollback', now: clock.now() });
    expect(plan.ok).toBe(true);
    if (!plan.ok) return;
    expect(plan.value.target.id).toBe(d2);
    expect(plan.value.current.id).toBe(d3);
    expect(plan.value.affectedDomains.map((d) => d.hostname).sort()).toEqual([
      'acme-git-main-acme.unkey.app',
      'acme-production-acme.unkey.app',
      'api.acme.com',
    ]);

    const ref = await platform.rollback({ environment: 'production', targetId: plan.value.target.id });
    // `fromId`: the deployment Unkey rolls back from (current when it accepted the request).
    expect(ref).toMatchObject({
      action: 'rollback',
      environment: 'production',
      targetId: d2,
      startedAt: clock.now(),
      fromId: d3,
    });
    expect(ref.id).toMatch(/^unkey_rollback_req_/);
    expect(server.requests.filter((r) => r.endpoint === 'deployments.rollbackDeployment')).toMatchObject([
      { body: { deploymentId: d2 } },
    ]);

    expect((await platform.operation(ref)).state).toBe('switching');
    await clock.advance(SWITCH_DELAY);
    expect((await platform.operation(ref)).state).toBe('succeeded');

    const after = await platform.snapshot('production');
    expect(after.environment.rolledBack).toBe(true);
    expect(after.environment.currentDeploymentId).toBe(d2);
    expect(after.domains.find((d) => d.hostname === 'api.acme.com')?.deploymentId).toBe(d2);

    const promotePlan = buildPlan(after, { action: 'promote', target: d2, now: clock.now() });
    expect(promotePlan.ok && promotePlan.value.resumesAutoDeploys).toBe(true);
  });

  it('gives a push made while rolled back no live domain, and a promote clears the state', async () => {
    const ref = await platform.rollback({ environment: 'production', targetId: d2 });
    await clock.advance(SWITCH_DELAY);
    expect((await platform.operation(ref)).state).toBe('succeeded');

    const d4 = server.push({ ...prodEnv, branch: 'main', sha: `ddddddd${'4'.repeat(33)}` });
    const rolled = await platform.snapshot('production');
    expect(rolled.environment.currentDeploymentId).toBe(d2);
    expect(rolled.environment.rolledBack).toBe(true);
    const d4Domains = rolled.domains.filter((d) => d.deploymentId === d4);
    expect(d4Domains.map((d) => d.stickiness)).toEqual(['deployment']);
    expect(rolled.deployments[0]).toMatchObject({ id: d4, status: 'ready' });

    const promote = await platform.promote({ environment: 'production', targetId: d4 });
    expect((await platform.operation(promote)).state).toBe('switching');
    await clock.advance(SWITCH_DELAY);
    expect((await platform.operation(promote)).state).toBe('succeeded');
    const promoted = await platform.snapshot('production');
    expect(promoted.environment).toMatchObject({ rolledBack: false, currentDeploymentId: d4 });
    expect(promoted.domains.find((d) => d.hostname === 'api.acme.com')?.deploymentId).toBe(d4);

    // Automatic assignment is back: the next push goes live by itself.
    const d5 = server.push({ ...prodEnv, branch: 'main', sha: `eeeeeee${'5'.repeat(33)}` });
    const next = await platform.snapshot('production');
    expect(next.environment.currentDeploymentId).toBe(d5);
  });

  it('promoting the current deployment while rolled back confirms the rollback', async () => {
    const ref = await platform.rollback({ environment: 'production', targetId: d1 });
    await clock.advance(SWITCH_DELAY);
    await platform.operation(ref);
    const promote = await platform.promote({ environment: 'production', targetId: d1, expectedCurrent: d1 });
    // It starts from its own target, which stays current throughout: never taken for another switch.
    expect(promote.fromId).toBe(d1);
    expect((await platform.operation(promote)).state).toBe('switching');
    await clock.advance(SWITCH_DELAY);
    expect((await platform.operation(promote)).state).toBe('succeeded');
    expect(server.isRolledBack('acme', 'api')).toBe(false);
    expect(server.currentOf('acme', 'api')).toBe(d1);
  });

  it('rolls back to a replaced deployment within the 30 minutes Unkey keeps it running', async () => {
    await clock.advance(STOP_AFTER - 2 * 60_000);
    const plan = buildPlan(await platform.snapshot('production'), { action: 'rollback', now: clock.now() });
    expect(plan.ok && plan.value.target.id).toBe(d2);
    expect(plan.ok && plan.value.targetStandby).toBe(false);
    const ref = await platform.rollback({ environment: 'production', targetId: d2 });
    await clock.advance(SWITCH_DELAY);
    expect((await platform.operation(ref)).state).toBe('succeeded');
    // The rollback cleared d2's scheduled stop: it keeps serving past its 30 minutes.
    await clock.advance(STOP_AFTER);
    const snap = await platform.snapshot('production');
    expect(snap.environment).toMatchObject({ currentDeploymentId: d2, rolledBack: true });
    expect(snap.deployments.find((d) => d.id === d2)?.status).toBe('ready');
  });

  it('after 30 minutes: not the default target, a plan naming it is refused up front, and Unkey answers 412', async () => {
    // d2 was replaced 30 minutes ago: Unkey is shutting it down (still `ready`); d1, a minute earlier, is stopped.
    await clock.advance(STOP_AFTER - 60_000);
    expect(await fetchWire(d2)).toMatchObject({ status: 'ready', availableActions: [] });
    expect(await fetchWire(d1)).toMatchObject({ status: 'stopped', availableActions: [] });
    const snap = await platform.snapshot('production');
    // Neither older deployment is switchable any more: no default target rather than a 412 later.
    const def = buildPlan(snap, { action: 'rollback', now: clock.now() });
    expect(!def.ok && def.refusal.code).toBe('no_rollback_target');
    const named = buildPlan(snap, { action: 'rollback', target: d2, now: clock.now() });
    expect(!named.ok && named.refusal.code).toBe('target_stopped');
    expect(!named.ok && named.refusal.message).toContain(
      'Unkey offers no rollback or promote to it right now',
    );
    expect(!named.ok && named.refusal.message).toContain('does not start a production deployment again');
    const promote = buildPlan(snap, { action: 'promote', target: d1, now: clock.now() });
    expect(!promote.ok && promote.refusal.code).toBe('target_stopped');
    expect(!promote.ok && promote.refusal.message).toContain('Unkey stopped it');
    expect(server.requests.some((r) => r.endpoint === 'deployments.rollbackDeployment')).toBe(false);
    // Unkey itself refuses it (deploygate targetCore: the desired state is no longer running).
    const r = await refusal(platform.rollback({ environment: 'production', targetId: d2 }));
    expect(r.code).toBe('target_not_ready');
    expect(r.context).toMatchObject({ status: 412, platformCode: 'deployment_not_ready' });
    // A newer deployment replaced now is the default target again.
    const d4 = server.push({ ...prodEnv, branch: 'main' });
    const fresh = buildPlan(await platform.snapshot('production'), { action: 'rollback', now: clock.now() });
    expect(fresh.ok && [fresh.value.current.id, fresh.value.target.id]).toEqual([d4, d3]);
  });

  it("fails the operation with Unkey's reason when the target starts shutting down mid-switch", async () => {
    const ref = await platform.rollback({ environment: 'production', targetId: d2 });
    server.drain(d2);
    const op = await platform.operation(ref);
    expect(op.state).toBe('failed');
    expect(op.error?.code).toBe('target_stopped');
    expect(op.error?.message).toContain('Unkey offers no rollback or promote to it right now');
    await clock.advance(SWITCH_DELAY);
    // Unkey's workflow re-validates the target and does not switch to it.
    expect(server.currentOf('acme', 'api')).toBe(d3);
  });

  it('fails the operation when the target stops, and when it takes too long', async () => {
    const ref = await platform.rollback({ environment: 'production', targetId: d2 });
    server.setStatus(d2, 'stopped');
    const stopped = await platform.operation(ref);
    expect(stopped.state).toBe('failed');
    expect(stopped.error?.code).toBe('target_stopped');

    const slow = makePlatform(KEY, { operationTimeoutMs: 500 });
    const ref2 = await slow.rollback({ environment: 'production', targetId: d1 });
    await clock.advance(600);
    const late = await slow.operation(ref2);
    expect(late.state).toBe('failed');
    expect(late.error?.code).toBe('operation_timeout');
  });

  it('fails a rollback at once (operation_superseded) when a dashboard rollback makes another deployment current', async () => {
    const ref = await platform.rollback({ environment: 'production', targetId: d2, expectedCurrent: d3 });
    expect(ref.fromId).toBe(d3);
    expect((await platform.operation(ref)).state).toBe('switching');
    // Someone rolls back to d1 in Unkey's dashboard; that workflow runs before ours.
    server.switchNow('rollback', d1);
    const op = await platform.operation(ref);
    expect(op.state).toBe('failed');
    expect(op.error?.code).toBe('operation_superseded');
    expect(op.error?.message).toContain(`${d1} became the current deployment of production (rolled back)`);
    expect(op.error?.message).toContain(`after this rollback to ${d2} started from ${d3}`);
    expect(op.error?.message).toContain('another switch outside Switchyard');
    expect(op.error?.retryable).toBeUndefined();
    // Far below operationTimeoutMs: Unkey's workflow finds its source no longer current and switches
    // nothing, so d2 never becomes current.
    await clock.advance(SWITCH_DELAY);
    expect(server.currentOf('acme', 'api')).toBe(d1);
    expect((await platform.operation(ref)).error?.code).toBe('operation_superseded');
    // A ref stored without `fromId` (before it existed) is followed as before: until the timeout.
    const { fromId: _, ...legacy } = ref;
    expect((await platform.operation(legacy)).state).toBe('switching');
  });

  it('fails a rollback as operation_superseded when a deploy goes live before Unkey runs it', async () => {
    const ref = await platform.rollback({ environment: 'production', targetId: d1, expectedCurrent: d3 });
    // Not rolled back yet: a finished build goes live by itself.
    const d4 = server.push({ ...prodEnv, branch: 'main', sha: `ddddddd${'4'.repeat(33)}` });
    expect(server.currentOf('acme', 'api')).toBe(d4);
    // The check is only a shortcut past the timeout: while Unkey fails to list, the switch is followed on.
    server.fault({ kind: 'status', status: 503, endpoint: 'deployments.listDeployments' }, 3);
    expect((await clock.drive(platform.operation(ref), TIMEOUT)).state).toBe('switching');
    const op = await platform.operation(ref);
    expect(op).toMatchObject({ state: 'failed', error: { code: 'operation_superseded' } });
    expect(op.error?.message).toContain(
      `${d4} became the current deployment of production after this rollback`,
    );
    await clock.advance(SWITCH_DELAY);
    expect(server.currentOf('acme', 'api')).toBe(d4);
  });

  it('takes a deploy that went live just before Unkey accepted the rollback for its source, not for another switch', async () => {
    // The plan saw d3; d4 went live in the moment before the request, so Unkey rolls back from d4.
    const d4 = server.push({ ...prodEnv, branch: 'main', sha: `ddddddd${'4'.repeat(33)}` });
    const ref = await platform.rollback({ environment: 'production', targetId: d2, expectedCurrent: d3 });
    expect(ref.fromId).toBe(d4);
    expect((await platform.operation(ref)).state).toBe('switching');
    await clock.advance(SWITCH_DELAY);
    expect((await platform.operation(ref)).state).toBe('succeeded');
  });

  it('fails a promote resuming automatic deploys when another rollback replaces its target, and says Unkey may still run it', async () => {
    const rollback = await platform.rollback({ environment: 'production', targetId: d2 });
    await clock.advance(SWITCH_DELAY);
    expect((await platform.operation(rollback)).state).toBe('succeeded');
    const promote = await platform.promote({ environment: 'production', targetId: d2, expectedCurrent: d2 });
    server.switchNow('rollback', d1);
    const op = await platform.operation(promote);
    expect(op).toMatchObject({ state: 'failed', error: { code: 'operation_superseded' } });
    expect(op.error?.message).toContain(
      `${d1} became the current deployment of production (rolled back) after this promote of ${d2} (resuming automatic deploys)`,
    );
    expect(op.error?.message).toContain(`if Unkey has not run this one yet, it may still make ${d2} current`);
  });

  /** The same Unkey and deployments, but its rollback and promote workflows run right after the 202. */
  async function instantSwitches(): Promise<void> {
    await platform.close();
    await server.close();
    server = await startAcmeUnkey(KEY, {
      clock,
      switchDelayMs: 0, // done before the adapter lists the environment after the 202
    });
    [d1, d2, d3] = (await pushMainDeployments(server, clock, 3)) as [string, string, string];
    platform = makePlatform(KEY);
  }

  it('a rollback Unkey ran before the adapter looked starts from what the plan saw; overtaken then, it is not told as a promote resuming deploys', async () => {
    await instantSwitches();
    const ref = await platform.rollback({ environment: 'production', targetId: d2, expectedCurrent: d3 });
    expect(server.currentOf('acme', 'api')).toBe(d2); // already carried out when the adapter listed
    // Its source is what was current when Unkey accepted it, not its own target.
    expect(ref.fromId).toBe(d3);
    // Someone rolls back further in Unkey's dashboard before Switchyard's first poll.
    server.switchNow('rollback', d1);
    const op = await platform.operation(ref);
    expect(op).toMatchObject({ state: 'failed', error: { code: 'operation_superseded' } });
    const m = op.error?.message ?? '';
    expect(m).toContain(
      `${d1} became the current deployment of production (rolled back) after this rollback to ${d2} started from ${d3}`,
    );
    expect(m).not.toContain('this promote');
    expect(m).not.toContain('resuming automatic deploys');
    // Unkey does not say whether it ran (here it did): the message does not claim it did not.
    expect(m).toContain(`either this rollback ran and that switch then replaced ${d2}, or it never ran`);
  });

  it('a promote Unkey ran before the adapter looked starts from what the plan saw; only a promote of the current deployment starts from its target', async () => {
    await instantSwitches();
    const rollback = await platform.rollback({
      environment: 'production',
      targetId: d1,
      expectedCurrent: d3,
    });
    expect((await platform.operation(rollback)).state).toBe('succeeded');
    const promote = await platform.promote({ environment: 'production', targetId: d3, expectedCurrent: d1 });
    expect(server.currentOf('acme', 'api')).toBe(d3);
    expect(promote.fromId).toBe(d1);
    server.switchNow('rollback', d2);
    const op = await platform.operation(promote);
    expect(op.error?.code).toBe('operation_superseded');
    expect(op.error?.message).toContain(`after this promote to ${d3} started from ${d1}`);
    expect(op.error?.message).not.toContain('resuming automatic deploys');
    // Promoting the deployment that is current (rolled back to d2): it resumes automatic deploys.
    const resume = await platform.promote({ environment: 'production', targetId: d2, expectedCurrent: d2 });
    expect(resume.fromId).toBe(d2);
    expect((await platform.operation(resume)).state).toBe('succeeded');
  });

  it('refuses a target from another environment before calling Unkey', async () => {
    const p1 = server.push({ ...previewEnv, branch: 'feature-x' });
    const r = await refusal(platform.rollback({ environment: 'production', targetId: p1 }));
    expect(r.code).toBe('target_wrong_environment');
    expect(server.requests.some((q) => q.endpoint === 'deployments.rollbackDeployment')).toBe(false);
  });
});

describe('UnkeyPlatform error mapping', () => {
  it('deployment_not_production → "Unkey rolls back production environments only"', async () => {
    const p1 = server.push({ ...previewEnv, branch: 'feature-x' });
    const r = await refusal(platform.rollback({ environment: 'preview', targetId: p1 }));
    expect(r.code).toBe('not_production');
    expect(r.message).toContain('Unkey rolls back production environments only');
    expect(r.context).toMatchObject({ status: 412, platformCode: 'deployment_not_production' });
  });

  it('deployment_not_ready for a building target and for one shutting down', async () => {
    const building = server.push({ ...prodEnv, branch: 'main', status: 'building' });
    const r = await refusal(platform.rollback({ environment: 'production', targetId: building }));
    expect(r.code).toBe('target_not_ready');
    expect(r.message).toContain('deployment_not_ready');
    server.drain(d1);
    const r2 = await refusal(platform.rollback({ environment: 'production', targetId: d1 }));
    expect(r2.code).toBe('target_not_ready');
  });

  it("checks the rules in Unkey's order: readiness before environment", async () => {
    const building = server.push({ ...previewEnv, branch: 'feature-x', status: 'building' });
    const r = await refusal(platform.rollback({ environment: 'preview', targetId: building }));
    expect(r.code).toBe('target_not_ready');
    const ready = server.push({ ...previewEnv, branch: 'feature-y' });
    const r2 = await refusal(platform.promote({ environment: 'preview', targetId: ready }));
    expect(r2.code).toBe('not_production');
  });

  it('deployment_is_current', async () => {
    const r = await refusal(platform.rollback({ environment: 'production', targetId: d3 }));
    expect(r.code).toBe('target_is_current');
    expect(r.message).toContain('already the current deployment');
  });

  it('deployment_no_current', async () => {
    server.unsetCurrent('acme', 'api');
    const r = await refusal(platform.promote({ environment: 'production', targetId: d2 }));
    expect(r.code).toBe('no_current_deployment');
    expect(r.message).toContain('no current deployment');
  });

  it("precondition_failed carries Unkey's explanation", async () => {
    server.setPrecondition('The workspace has no active Compute plan.');
    const r = await refusal(platform.rollback({ environment: 'production', targetId: d2 }));
    expect(r.code).toBe('platform_precondition');
    expect(r.message).toContain('The workspace has no active Compute plan.');
  });

  it('404 deployment_not_found says missing OR missing permission', async () => {
    const r = await refusal(platform.rollback({ environment: 'production', targetId: 'dep_9999' }));
    expect(r.code).toBe('unknown_deployment');
    expect(r.message).toContain('does not exist');
    expect(r.message).toContain('environment.*.read_deployment');

    const readOnly = makePlatform(READ_ONLY);
    const r2 = await refusal(readOnly.rollback({ environment: 'production', targetId: d2 }));
    expect(r2.code).toBe('unknown_deployment');
    expect(r2.message).toContain('environment.*.rollback_deployment');
    const r3 = await refusal(readOnly.promote({ environment: 'production', targetId: d2 }));
    expect(r3.message).toContain('environment.*.promote_deployment');
    await readOnly.close();
  });

  it('401 says the root key is rejected and which permissions it needs', async () => {
    const bad = makePlatform(UNKNOWN);
    const r = await refusal(bad.snapshot('production'));
    expect(r.code).toBe('platform_unauthorized');
    expect(r.message).toContain('environment.*.rollback_deployment');
    expect(r.message).toContain('environment.*.promote_deployment');
    expect(r.message).toContain('environment.*.read_deployment');
  });

  it('403 names the missing permission', async () => {
    const r = await refusal(makePlatform(NO_PERMS).snapshot('production'));
    expect(r.code).toBe('platform_forbidden');
    expect(r.message).toContain('environment.*.read_deployment');
  });

  it('400 validation errors are invalid input', async () => {
    const r = await refusal(platform.rollback({ environment: 'production', targetId: 'x!' }));
    expect(r.code).toBe('invalid_input');
    expect(r.message).toContain('deployments.getDeployment');
  });

  it('404 for a mapped project that does not exist names the config key', async () => {
    const wrong = makePlatform(KEY, { environments: { production: { ...prodEnv, project: 'nope' } } });
    const r = await refusal(wrong.snapshot('production'));
    expect(r.code).toBe('unknown_environment');
    expect(r.message).toContain('environments.production.unkey');
    expect(r.message).toContain('project "nope"');
  });

  it('429 and 5xx are retried; when they persist they stay retryable faults, not refusals', async () => {
    server.fault({ kind: 'status', status: 503, endpoint: 'deployments.listDeployments' });
    server.fault({ kind: 'status', status: 429, retryAfter: '1', endpoint: 'deployments.listDeployments' });
    const snap = await clock.drive(platform.snapshot('production'), TIMEOUT);
    expect(snap.environment.currentDeploymentId).toBe(d3);

    server.fault({ kind: 'status', status: 502 }, 3);
    const e = await clock.drive(
      platform.snapshot('production').then(
        () => undefined,
        (err: unknown) => err,
      ),
      TIMEOUT,
    );
    expect(e).toBeInstanceOf(PlatformHttpError);
    expect((e as PlatformHttpError).retry).toBe(true);
    expect((e as PlatformHttpError).message).not.toContain(KEY);
  });

  it('a 408 answer to a rollback is a retryable fault, not a refusal, and is not sent twice', async () => {
    server.fault({ kind: 'status', status: 408, endpoint: 'deployments.rollbackDeployment' });
    const e = await clock.drive(
      platform.rollback({ environment: 'production', targetId: d2 }).then(
        () => undefined,
        (err: unknown) => err,
      ),
      TIMEOUT,
    );
    expect(e).toBeInstanceOf(PlatformHttpError);
    expect((e as PlatformHttpError).retry).toBe(true);
    expect(server.requests.filter((r) => r.endpoint === 'deployments.rollbackDeployment')).toHaveLength(1);
  });

  it('a timed-out rollback is a retryable fault and is not sent twice', async () => {
    server.fault({ kind: 'hang', endpoint: 'deployments.rollbackDeployment' });
    const outcome = platform.rollback({ environment: 'production', targetId: d2 }).then(
      () => undefined,
      (err: unknown) => err,
    );
    await server.waitForEndpoint('deployments.rollbackDeployment');
    await clock.advance(TIMEOUT);
    const e = await outcome;
    expect(e).toBeInstanceOf(PlatformHttpError);
    expect((e as PlatformHttpError).code).toBe('platform_timeout');
    expect(server.requests.filter((r) => r.endpoint === 'deployments.rollbackDeployment')).toHaveLength(1);
  });
});

describe('createUnkeyPlatform', () => {
  it('builds the adapter from env vars and the YAML mapping', async () => {
    const yaml = [
      'platform: unkey',
      'environments:',
      '  production:',
      '    unkey: { project: acme, app: api, environment: production }',
      '  preview:',
      '    unkey: { project: acme, app: api, environment: preview }',
      '  local-only: {}',
    ].join('\n');
    const config = loadConfig(
      { UNKEY_ROOT_KEY: KEY, UNKEY_API_URL: server.url, SWITCHYARD_CONFIG: '/etc/switchyard.yml' },
      () => yaml,
    );
    const p = createUnkeyPlatform(config, { clock, tuning: { timeoutMs: TIMEOUT } });
    expect(p.name).toBe('unkey');
    expect(await p.listEnvironments()).toEqual(['production', 'preview']);
    expect((await p.snapshot('production')).environment.currentDeploymentId).toBe(d3);
    await p.close();
  });

  it('refuses a configuration without any unkey mapping', () => {
    const config = loadConfig({ UNKEY_ROOT_KEY: KEY, PLATFORM: 'unkey' }, () => '');
    expect(() => createUnkeyPlatform(config)).toThrow(
      /environments: got no environment with an "unkey" mapping/,
    );
  });
});
