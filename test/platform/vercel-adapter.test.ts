/**
 * The Vercel adapter against the fake Vercel server: snapshots (production and preview, paging, teamId),
 * rollback → rolled-back state → promote restores auto-assignment, operation states from
 * lastAliasRequest, refusals (preview, wrong target, Vercel's 4xx), 409 as the retryable
 * `operation_in_progress`, and the configuration the factory requires.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isRetryable } from '../../jobs/switch-processor.js';
import { parseWorkerArgs, platformFor } from '../../jobs/worker-main.js';
import { ManualClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { affectedDomains, buildPlan } from '../../src/domain/plan.js';
import { ConfigError, RefusalError, SwitchyardError } from '../../src/errors.js';
import { createLogger, type Logger, silentLogger } from '../../src/log.js';
import type { OperationRef } from '../../src/platform/port.js';
import {
  createVercelPlatform,
  rollbackDescription,
  VercelPlatform,
} from '../../src/platform/vercel/adapter.js';
import { type FakeReadyState, VercelFakeServer } from '../fakes/vercel-server.js';

const TOKEN = 'vcp_adapterTestToken0123456789abcd';
const TEAM = 'team_acme123';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function setup(
  opts: {
    aliasJobReads?: number;
    pageSize?: number;
    maxDeployments?: number;
    aliasShape?: 'object' | 'array';
    logger?: Logger;
  } = {},
) {
  const clock = new ManualClock();
  const server = await VercelFakeServer.start({
    clock,
    tokens: { [TOKEN]: [TEAM] },
    ...(opts.aliasJobReads === undefined ? {} : { aliasJobReads: opts.aliasJobReads }),
    ...(opts.aliasShape === undefined ? {} : { aliasShape: opts.aliasShape }),
  });
  closers.push(() => server.close());
  const projectId = server.addProject({
    name: 'acme-web',
    teamId: TEAM,
    domains: [
      { name: 'shop.acme.com' },
      { name: 'acme.com', redirect: 'shop.acme.com' },
      { name: 'staging.acme.com', gitBranch: 'staging' },
      // Added to the project but awaiting its DNS/TXT verification: Vercel uses it as no alias yet.
      { name: 'pending.acme.com', verified: false },
      { name: 'qa.acme.com', gitBranch: 'staging', verified: false },
    ],
  });
  const d1 = server.deploy({ project: projectId, message: 'First' });
  await clock.advance(60_000);
  const p1 = server.deploy({ project: projectId, target: 'preview', branch: 'staging' });
  await clock.advance(60_000);
  const d2 = server.deploy({ project: projectId, message: 'Second' });
  await clock.advance(60_000);
  const platform = new VercelPlatform({
    project: 'acme-web',
    client: { baseUrl: server.url, token: TOKEN, teamId: TEAM, timeoutMs: 5_000, maxRetries: 0 },
    clock,
    ...(opts.pageSize === undefined ? {} : { pageSize: opts.pageSize }),
    ...(opts.maxDeployments === undefined ? {} : { maxDeployments: opts.maxDeployments }),
    ...(opts.logger === undefined ? {} : { logger: opts.logger }),
  });
  closers.push(() => platform.close());
  return { clock, server, platform, projectId, d1, d2, p1 };
}

async function rejection(p: Promise<unknown>): Promise<SwitchyardError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(SwitchyardError);
  return e as SwitchyardError;
}

describe('VercelPlatform reads', () => {
  it('snapshots production: current from targets.production, live and environment domains, teamId everywhere', async () => {
    const { server, platform, projectId, d1, d2 } = await setup();
    expect(await platform.listEnvironments()).toEqual(['production', 'preview']);
    const snap = await platform.snapshot('production');
    expect(snap.project).toEqual({ id: projectId, name: 'acme-web' });
    expect(snap.environment).toEqual({
      slug: 'production',
      kind: 'production',
      projectId,
      rolledBack: false,
      currentDeploymentId: d2,
      productionBranch: 'main',
    });
    expect(snap.deployments.map((d) => d.id)).toEqual([d2, d1]);
    expect(snap.deployments[0]).toMatchObject({ status: 'ready', branch: 'main', environment: 'production' });
    expect(snap.deployments[0]?.commit.message).toBe('Second');
    expect(snap.domains.map((d) => [d.hostname, d.stickiness, d.deploymentId])).toEqual([
      ['shop.acme.com', 'live', d2],
      ['acme-web.vercel.app', 'environment', d2],
    ]);
    expect(snap.liveHistory).toEqual([]);
    expect(server.requests.length).toBeGreaterThanOrEqual(3);
    expect(server.requests.every((r) => r.query.teamId === TEAM)).toBe(true);
    expect(server.requests.find((r) => r.path === '/v6/deployments')?.query).toMatchObject({
      projectId,
      target: 'production',
    });
  });

  it('snapshots the read-only preview environment: newest ready preview deployment, branch domains', async () => {
    const { platform, p1 } = await setup();
    const snap = await platform.snapshot('preview');
    expect(snap.environment).toMatchObject({ kind: 'preview', rolledBack: false, currentDeploymentId: p1 });
    expect(snap.deployments.map((d) => d.id)).toEqual([p1]);
    expect(snap.domains).toEqual([
      {
        hostname: 'staging.acme.com',
        stickiness: 'branch',
        environment: 'preview',
        branch: 'staging',
        deploymentId: p1,
      },
    ]);
  });

  it('pages deployments with until = pagination.next', async () => {
    const { clock, server, platform, projectId } = await setup({ pageSize: 2 });
    for (let i = 0; i < 3; i++) {
      await clock.advance(1_000);
      server.deploy({ project: projectId });
    }
    const snap = await platform.snapshot('production');
    expect(snap.deployments).toHaveLength(5);
    const created = snap.deployments.map((d) => d.createdAt);
    expect(created).toEqual([...created].sort((a, b) => b - a));
    const lists = server.requests.filter((r) => r.path === '/v6/deployments');
    expect(lists).toHaveLength(3);
    expect(lists[0]?.query.until).toBeUndefined();
    expect(Number(lists[1]?.query.until)).toBe(snap.deployments[1]?.createdAt);
  });

  it('stops at maxDeployments but still reads the current deployment when it is older', async () => {
    const { clock, server, platform, projectId, d1 } = await setup({ pageSize: 2, maxDeployments: 2 });
    await platform.rollback({ environment: 'production', targetId: d1 });
    server.finishAliasJob(projectId);
    for (let i = 0; i < 3; i++) {
      await clock.advance(1_000);
      server.deploy({ project: projectId });
    }
    const snap = await platform.snapshot('production');
    expect(snap.environment).toMatchObject({ currentDeploymentId: d1, rolledBack: true });
    expect(snap.deployments.map((d) => d.id)).toContain(d1);
    expect(snap.deployments).toHaveLength(3);
    expect(server.requests.some((r) => r.path === `/v13/deployments/${d1}`)).toBe(true);
  });

  it('says when it stopped at maxDeployments with more left (deploymentsTruncated), not when it read them all', async () => {
    // Review case: with 1 200 deployments /deployments said "Showing 10 of 500 deployments": the read
    // limit presented as the environment's total.
    const { clock, server, platform, projectId } = await setup({ pageSize: 2, maxDeployments: 4 });
    for (let i = 0; i < 2; i++) {
      await clock.advance(1_000);
      server.deploy({ project: projectId });
    }
    // Exactly as many as the maximum, none left: all were read.
    const all = await platform.snapshot('production');
    expect(all.deployments).toHaveLength(4);
    expect(all.deploymentsTruncated).toBeUndefined();
    await clock.advance(1_000);
    server.deploy({ project: projectId });
    const capped = await platform.snapshot('production');
    expect(capped.deployments).toHaveLength(4);
    expect(capped.deploymentsTruncated).toBe(true);
  });

  it('leaves domains awaiting verification out of snapshots, plans and routing (Vercel uses them as no alias)', async () => {
    const lines: string[] = [];
    const logger = createLogger({
      pretty: false,
      level: 'warn',
      destination: { write: (l: string) => lines.push(l) } as never,
    });
    const { clock, server, platform, projectId, d1, d2 } = await setup({ logger });
    // The domain list says so, and Vercel's alias table has no alias for either domain.
    const listed = await fetch(`${server.url}/v9/projects/${projectId}/domains?teamId=${TEAM}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const wire = (await listed.json()) as { domains: { name: string; verified: boolean }[] };
    expect(
      wire.domains
        .filter((d) => !d.verified)
        .map((d) => d.name)
        .sort(),
    ).toEqual(['pending.acme.com', 'qa.acme.com']);
    const alias = await fetch(
      `${server.url}/v4/aliases/pending.acme.com?projectId=${projectId}&teamId=${TEAM}`,
      {
        headers: { authorization: `Bearer ${TOKEN}` },
      },
    );
    expect(alias.status).toBe(404);

    const snap = await platform.snapshot('production');
    expect(snap.domains.map((d) => d.hostname)).toEqual(['shop.acme.com', 'acme-web.vercel.app']);
    expect(affectedDomains(snap, d2, undefined).map((d) => d.hostname)).not.toContain('pending.acme.com');
    const plan = buildPlan(snap, { action: 'rollback', now: clock.now() });
    expect(plan.ok && plan.value.affectedDomains.map((d) => d.hostname)).toEqual([
      'shop.acme.com',
      'acme-web.vercel.app',
    ]);
    expect((await platform.routing('production')).map((r) => r.hostname)).toEqual([
      'shop.acme.com',
      'acme-web.vercel.app',
    ]);
    expect((await platform.snapshot('preview')).domains.map((d) => d.hostname)).toEqual(['staging.acme.com']);
    expect((await platform.routing('preview')).map((r) => r.hostname)).toEqual(['staging.acme.com']);
    // Each such domain is logged once, however often it is read.
    expect(lines.filter((l) => l.includes('pending.acme.com'))).toHaveLength(1);
    expect(lines.filter((l) => l.includes('qa.acme.com'))).toHaveLength(1);
    expect(lines[0]).toContain('awaiting verification');

    // A rollback moves the verified domains; the unverified one still points nowhere.
    await platform.rollback({ environment: 'production', targetId: d1 });
    server.finishAliasJob(projectId);
    expect((await platform.routing('production')).every((r) => r.deploymentId === d1)).toBe(true);
    // Once verified, Vercel uses it as an alias of production, and Switchyard plans and verifies it.
    server.verifyDomain(projectId, 'pending.acme.com');
    expect((await platform.routing('production')).find((r) => r.hostname === 'pending.acme.com')).toEqual({
      hostname: 'pending.acme.com',
      stickiness: 'live',
      environment: 'production',
      deploymentId: d1,
    });
  });

  it("reads Vercel's alias answer as one object (API reference) or as an array of one (SDK reference)", async () => {
    const { server, platform, d2 } = await setup({ aliasShape: 'array' });
    const before = server.requests.length;
    expect((await platform.routing('production')).map((r) => [r.hostname, r.deploymentId])).toEqual([
      ['shop.acme.com', d2],
      ['acme-web.vercel.app', d2],
    ]);
    const read = server.requests.slice(before).find((r) => r.path.startsWith('/v4/aliases/'));
    const raw = await fetch(`${server.url}${read?.path}?teamId=${TEAM}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(Array.isArray(await raw.json())).toBe(true);
  });

  it('getDeployment returns this project’s deployments and undefined for unknown ones', async () => {
    const { server, platform, d1 } = await setup();
    expect(await platform.getDeployment(d1)).toMatchObject({
      id: d1,
      environment: 'production',
      status: 'ready',
    });
    expect(await platform.getDeployment('dpl_nope')).toBeUndefined();
    const other = server.addProject({ name: 'other', teamId: TEAM });
    expect(await platform.getDeployment(server.deploy({ project: other }))).toBeUndefined();
  });

  it('lists BLOCKED deployments as not ready, leaves DELETED ones out, and survives states it does not know', async () => {
    const { clock, server, platform, projectId, d1, d2 } = await setup();
    const lines: string[] = [];
    const logged = new VercelPlatform({
      project: 'acme-web',
      client: { baseUrl: server.url, token: TOKEN, teamId: TEAM, timeoutMs: 5_000, maxRetries: 0 },
      clock,
      logger: createLogger({
        pretty: false,
        level: 'warn',
        destination: { write: (l: string) => lines.push(l) } as never,
      }),
    });
    closers.push(() => logged.close());
    await clock.advance(1_000);
    const blocked = server.deploy({ project: projectId, readyState: 'BLOCKED' });
    await clock.advance(1_000);
    // A failed deployment someone deleted (Vercel does not delete the current production deployment).
    const deleted = server.deploy({ project: projectId, readyState: 'ERROR' });
    server.setReadyState(deleted, 'DELETED');
    await clock.advance(1_000);
    // A state Vercel may add after this was written (the fake sends what it is given).
    const future = server.deploy({ project: projectId, readyState: 'ARCHIVED' as FakeReadyState });
    const snap = await logged.snapshot('production');
    expect(snap.deployments.map((d) => [d.id, d.status])).toEqual([
      [future, 'building'],
      [blocked, 'building'],
      [d2, 'ready'],
      [d1, 'ready'],
    ]);
    expect(snap.environment.currentDeploymentId).toBe(d2);
    const plan = buildPlan(snap, { action: 'rollback', now: clock.now() });
    expect(plan.ok && plan.value.target.id).toBe(d1);
    const named = buildPlan(snap, { action: 'promote', target: blocked, now: clock.now() });
    expect(!named.ok && named.refusal.code).toBe('target_not_ready');
    expect(!named.ok && named.refusal.message).toContain('Vercel blocked it');
    await logged.snapshot('production');
    const warnings = lines.filter((l) => l.includes('ARCHIVED'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('unknown readyState');
    // A deleted deployment is gone: not found when read on its own.
    expect(await platform.getDeployment(deleted)).toBeUndefined();
    expect(await platform.getDeployment(blocked)).toMatchObject({ id: blocked, status: 'building' });
  });

  it('refuses an unknown environment and reports an unknown project naming vercel.project', async () => {
    const { server, platform } = await setup();
    const e = await rejection(platform.snapshot('staging'));
    expect(e.code).toBe('unknown_environment');
    expect(e.message).toContain('production, preview');
    const missing = new VercelPlatform({
      project: 'nope',
      client: { baseUrl: server.url, token: TOKEN, teamId: TEAM, maxRetries: 0 },
    });
    const e2 = await rejection(missing.health());
    expect(e2).toBeInstanceOf(RefusalError);
    expect(e2.code).toBe('unknown_environment');
    expect(e2.message).toContain('vercel.project');
    await expect(platform.health()).resolves.toBeUndefined();
  });

  it('turns a token Vercel calls invalid into platform_unauthorized naming VERCEL_TOKEN, without the token in the message', async () => {
    const { server } = await setup();
    const bad = new VercelPlatform({
      project: 'acme-web',
      client: { baseUrl: server.url, token: 'vcp_badToken000000000000', teamId: TEAM, maxRetries: 0 },
    });
    const e = await rejection(bad.snapshot('production'));
    expect(e.code).toBe('platform_unauthorized');
    expect(e.message).toContain(
      'Vercel rejected the token as invalid (403 forbidden: Not authorized (invalidToken: true))',
    );
    expect(e.message).toContain('Set VERCEL_TOKEN to a valid access token with access to team team_acme123.');
    expect(e.message).not.toContain('vcp_badToken000000000000');
  });

  it('turns a valid token without access to the team into platform_forbidden, naming the scope and the setting', async () => {
    const { server } = await setup();
    const other = new VercelPlatform({
      project: 'acme-web',
      client: { baseUrl: server.url, token: TOKEN, teamId: 'team_other0000', maxRetries: 0 },
    });
    const e = await rejection(other.snapshot('production'));
    expect(e.code).toBe('platform_forbidden');
    expect(e.message).toContain(
      'The token (VERCEL_TOKEN) may be invalid or expired, or lack access to team team_other0000.',
    );
  });
});

describe('VercelPlatform derived live history (Vercel exposes none)', () => {
  it('keeps liveHistory empty and derives how the current deployment went live: its ready time, its alias job', async () => {
    const { clock, server, platform, projectId, d1, d2 } = await setup();
    const snap = await platform.snapshot('production');
    expect(snap.liveHistory).toEqual([]);
    const ready = snap.deployments.find((d) => d.id === d2)?.readyAt ?? 0;
    expect(snap.derivedLive).toEqual({
      platform: 'Vercel',
      current: { deploymentId: d2, via: 'deploy', notBefore: ready, notAfter: ready, previous: d1 },
    });
    // The default rollback target is the same as without it.
    const plan = buildPlan(snap, { action: 'rollback', now: clock.now() });
    expect(plan.ok && plan.value.target.id).toBe(d1);

    // The rollback's alias job is Vercel's own record of when d1 went live again, and from which.
    const requestedAt = clock.now();
    await platform.rollback({ environment: 'production', targetId: d1 });
    await clock.advance(1_000);
    server.finishAliasJob(projectId);
    const rolled = await platform.snapshot('production');
    expect(rolled.derivedLive).toEqual({
      platform: 'Vercel',
      current: {
        deploymentId: d1,
        via: 'rollback',
        notBefore: requestedAt,
        notAfter: clock.now(),
        previous: d2,
      },
    });
    const again = buildPlan(rolled, { action: 'rollback', now: clock.now() });
    expect(again).toMatchObject({ ok: false, refusal: { code: 'no_rollback_target' } });
  });

  it('claims nothing where Vercel does not tell: automatic deploys resumed on a deployment rolled back to, preview', async () => {
    const { clock, server, platform, projectId, d1 } = await setup();
    await platform.rollback({ environment: 'production', targetId: d1 });
    server.finishAliasJob(projectId);
    await clock.advance(60_000);
    await platform.promote({ environment: 'production', targetId: d1 });
    server.finishAliasJob(projectId);
    const resumed = await platform.snapshot('production');
    expect(resumed.environment).toMatchObject({ currentDeploymentId: d1, rolledBack: false });
    expect(resumed.derivedLive).toEqual({
      platform: 'Vercel',
      unknown: 'it was rolled back or promoted to, and Vercel does not say when',
    });
    expect((await platform.snapshot('preview')).derivedLive?.unknown).toBe(
      'Vercel keeps no live history, and preview is not a production environment',
    );
  });
});

describe('VercelPlatform switches', () => {
  it('refuses to switch to a deployment Vercel reports DELETED, without calling the switch endpoint', async () => {
    const { server, platform, projectId, d1 } = await setup();
    const deletedBody = {
      id: d1,
      url: 'acme-web-deleted.vercel.app',
      readyState: 'DELETED',
      target: 'production',
      projectId,
      createdAt: 1,
    };
    server.fault({ kind: 'body', status: 200, body: deletedBody, method: 'GET', path: '/v13/deployments/' });
    const e = await rejection(platform.rollback({ environment: 'production', targetId: d1 }));
    expect(e.code).toBe('unknown_deployment');
    expect(e.message).toContain('deleted on Vercel');
    expect(server.switchRequests()).toEqual([]);
    server.fault({ kind: 'body', status: 200, body: deletedBody, method: 'GET', path: '/v13/deployments/' });
    expect(await platform.getDeployment(d1)).toBeUndefined();
  });

  it('rolls back (rolled-back state, new deploys not assigned), then a promote restores auto-assignment', async () => {
    const { server, platform, projectId, d1, d2 } = await setup();
    const ref = await platform.rollback({ environment: 'production', targetId: d1, requestedBy: 'Ada' });
    expect(ref).toMatchObject({ action: 'rollback', environment: 'production', targetId: d1 });
    const post = server.switchRequests()[0];
    // Vercel's documented rollback endpoint; its `description` names who asked, via Switchyard.
    expect(post?.path).toBe(`/v1/projects/${projectId}/rollback/${d1}`);
    expect(post?.body).toEqual({});
    expect(post?.query.teamId).toBe(TEAM);
    expect(post?.query.description).toBe('Rollback requested by Ada via Switchyard');
    expect(server.jobOf(projectId)?.description).toBe('Rollback requested by Ada via Switchyard');

    expect((await platform.operation(ref)).state).toBe('switching');
    expect((await platform.routing('production')).every((r) => r.deploymentId === d2)).toBe(true);
    server.finishAliasJob(projectId);
    expect((await platform.operation(ref)).state).toBe('succeeded');

    let snap = await platform.snapshot('production');
    expect(snap.environment).toMatchObject({ rolledBack: true, currentDeploymentId: d1 });
    expect((await platform.routing('production')).map((r) => [r.hostname, r.deploymentId])).toEqual([
      ['shop.acme.com', d1],
      ['acme-web.vercel.app', d1],
    ]);
    const d3 = server.deploy({ project: projectId, message: 'Third' });
    snap = await platform.snapshot('production');
    expect(snap.environment.currentDeploymentId).toBe(d1);
    expect(snap.deployments[0]?.id).toBe(d3);

    const promote = await platform.promote({ environment: 'production', targetId: d3, requestedBy: 'Ada' });
    expect(server.switchRequests()[1]?.path).toBe(`/v10/projects/${projectId}/promote/${d3}`);
    // Vercel's promote takes no description.
    expect(server.switchRequests()[1]?.query.description).toBeUndefined();
    server.finishAliasJob(projectId);
    expect((await platform.operation(promote)).state).toBe('succeeded');
    snap = await platform.snapshot('production');
    expect(snap.environment).toMatchObject({ rolledBack: false, currentDeploymentId: d3 });
    const d4 = server.deploy({ project: projectId });
    expect((await platform.snapshot('production')).environment.currentDeploymentId).toBe(d4);
  });

  it("routes by Vercel's alias table: a domain an alias job left behind shows its old deployment", async () => {
    const { server, platform, projectId, d1, d2, p1 } = await setup();
    const before = server.requests.length;
    expect((await platform.routing('production')).map((r) => [r.hostname, r.deploymentId])).toEqual([
      ['shop.acme.com', d2],
      ['acme-web.vercel.app', d2],
    ]);
    const reads = server.requests.slice(before).filter((r) => r.path.startsWith('/v4/aliases/'));
    expect(reads.map((r) => r.path).sort()).toEqual([
      '/v4/aliases/acme-web.vercel.app',
      '/v4/aliases/shop.acme.com',
    ]);
    expect(reads.every((r) => r.query.projectId === projectId && r.query.teamId === TEAM)).toBe(true);
    // Routing reads the project, its domains and the aliases: not the deployments.
    expect(server.requests.slice(before).some((r) => r.path === '/v6/deployments')).toBe(false);
    // The branch domain follows its branch's newest ready deployment.
    expect(
      (await platform.routing('preview')).find((r) => r.hostname === 'staging.acme.com')?.deploymentId,
    ).toBe(p1);

    server.leaveAliasBehind(projectId, 'shop.acme.com');
    await platform.rollback({ environment: 'production', targetId: d1 });
    server.finishAliasJob(projectId);
    // targets.production moved, so the snapshot says d1 everywhere; the alias table says otherwise.
    expect((await platform.snapshot('production')).environment.currentDeploymentId).toBe(d1);
    expect((await platform.routing('production')).map((r) => [r.hostname, r.deploymentId])).toEqual([
      ['shop.acme.com', d2],
      ['acme-web.vercel.app', d1],
    ]);
  });

  it('follows lastAliasRequest: pending → switching → succeeded after the configured reads', async () => {
    const { server, platform, projectId, d1, d2 } = await setup({ aliasJobReads: 3 });
    const ref = await platform.rollback({ environment: 'production', targetId: d1 });
    // Vercel may answer before the job has started: a documented `pending` job is reported as pending.
    server.fault({
      kind: 'body',
      status: 200,
      method: 'GET',
      path: `/v9/projects/`,
      body: {
        id: projectId,
        name: 'acme-web',
        autoAssignCustomDomains: true,
        targets: { production: { id: d2 } },
        lastAliasRequest: {
          fromDeploymentId: d2,
          toDeploymentId: d1,
          jobStatus: 'pending',
          requestedAt: ref.startedAt,
          type: 'rollback',
        },
      },
    });
    expect((await platform.operation(ref)).state).toBe('pending');
    expect((await platform.operation(ref)).state).toBe('switching');
    expect((await platform.operation(ref)).state).toBe('switching');
    expect((await platform.operation(ref)).state).toBe('succeeded');
  });

  it('reports a failed alias job, a skipped one whose target is not current, and a timeout', async () => {
    const { clock, server, platform, projectId, d1 } = await setup();
    const ref = await platform.rollback({ environment: 'production', targetId: d1 });
    server.finishAliasJob(projectId, 'failed');
    const failed = await platform.operation(ref);
    expect(failed.state).toBe('failed');
    expect(failed.error?.code).toBe('alias_job_failed');
    expect(failed.error?.message).toContain('vercel rollback status acme-web');

    const ref2 = await platform.rollback({ environment: 'production', targetId: d1 });
    server.finishAliasJob(projectId, 'skipped');
    expect((await platform.operation(ref2)).error?.code).toBe('alias_job_skipped');

    const ref3 = await platform.rollback({ environment: 'production', targetId: d1 });
    expect((await platform.operation(ref3)).state).toBe('switching');
    await clock.advance(3 * 60_000 + 1);
    const late = await platform.operation(ref3);
    expect(late.state).toBe('failed');
    expect(late.error?.code).toBe('operation_timeout');
  });

  it('judges by project state when no job of its own is on record', async () => {
    const { server, platform, projectId, d1 } = await setup();
    const ref = await platform.rollback({ environment: 'production', targetId: d1 });
    server.finishAliasJob(projectId);
    // A ref whose job is not the last one recorded (e.g. Vercel replaced it): rolled back to d1 = done.
    const foreign: OperationRef = { ...ref, id: 'x', startedAt: ref.startedAt + 10 * 60_000 };
    expect((await platform.operation(foreign)).state).toBe('succeeded');
    const promoteRef: OperationRef = { ...foreign, action: 'promote' };
    expect((await platform.operation(promoteRef)).state).toBe('pending');
  });

  it('fails an operation another rollback or promote replaced, without waiting for the timeout', async () => {
    const { clock, server, platform, projectId, d1, d2 } = await setup();
    const ref = await platform.rollback({ environment: 'production', targetId: d1 });
    server.finishAliasJob(projectId);
    // Someone promotes d2 from Vercel's dashboard 30 s later: within the clock skew Switchyard allows
    // between itself and Vercel, so it could still be a job from before ours. Not judged yet.
    await clock.advance(30_000);
    await platform.promote({ environment: 'production', targetId: d2 });
    server.finishAliasJob(projectId);
    expect((await platform.operation(ref)).state).toBe('pending');
    // Two minutes in (before the 3-minute timeout) another promote is unmistakably after ours.
    await clock.advance(90_000);
    await platform.promote({ environment: 'production', targetId: d2 });
    const replaced = await platform.operation(ref);
    expect(replaced.state).toBe('failed');
    expect(replaced.error?.code).toBe('alias_job_superseded');
    expect(replaced.error?.message).toContain(`Another promote (to ${d2}, in-progress)`);
    expect(replaced.error?.message).toContain(`this rollback to ${d1}`);
    // A job of ours on record still decides, and a job requested before ours does not replace it.
    server.finishAliasJob(projectId);
    const ours = await platform.rollback({ environment: 'production', targetId: d1 });
    expect((await platform.operation(ours)).state).toBe('switching');
    const startedLater: OperationRef = { ...ours, id: 'y', startedAt: ours.startedAt + 10 * 60_000 };
    expect((await platform.operation(startedLater)).state).toBe('pending');
  });

  it('describes a rollback by who asked for it, within the 250 characters Vercel keeps', () => {
    expect(rollbackDescription('Ada Lovelace')).toBe('Rollback requested by Ada Lovelace via Switchyard');
    expect(rollbackDescription(undefined)).toBe('Rollback requested via Switchyard');
    expect(rollbackDescription('  \n ')).toBe('Rollback requested via Switchyard');
    const long = rollbackDescription('x'.repeat(400));
    expect(long).toHaveLength(250);
    expect(long.endsWith('… via Switchyard')).toBe(true);
  });

  it('answers 409 (alias job running) with the retryable operation_in_progress', async () => {
    const { server, platform, d1, d2 } = await setup();
    await platform.rollback({ environment: 'production', targetId: d1 });
    const e = await rejection(platform.promote({ environment: 'production', targetId: d2 }));
    expect(e).not.toBeInstanceOf(RefusalError);
    expect(e.code).toBe('operation_in_progress');
    expect(e.retry).toBe(true);
    expect(isRetryable(e)).toBe(true);
    expect(e.message).toContain('409');
    expect(server.switchRequests()).toHaveLength(2);
  });

  it('answers a 408 to a promote with a retryable fault, not a refusal, and sends it once', async () => {
    const { server, platform, d2 } = await setup();
    server.fault({ kind: 'status', status: 408, method: 'POST', path: '/v10/projects/' });
    const e = await rejection(platform.promote({ environment: 'production', targetId: d2 }));
    expect(e).not.toBeInstanceOf(RefusalError);
    expect(e.retry).toBe(true);
    expect(isRetryable(e)).toBe(true);
    expect(server.switchRequests()).toHaveLength(1);
  });

  it('refuses a preview switch without calling Vercel, and wrong or unknown targets', async () => {
    const { server, platform, p1 } = await setup();
    const e = await rejection(platform.rollback({ environment: 'preview', targetId: p1 }));
    expect(e.code).toBe('not_production');
    expect(e.message).toContain('production domains only');
    const e2 = await rejection(platform.promote({ environment: 'preview', targetId: p1 }));
    expect(e2.code).toBe('not_production');

    const e3 = await rejection(platform.promote({ environment: 'production', targetId: p1 }));
    expect(e3.code).toBe('target_wrong_environment');
    expect(e3.message).toContain('preview deployment');

    const other = server.addProject({ name: 'other', teamId: TEAM });
    const e4 = await rejection(
      platform.rollback({ environment: 'production', targetId: server.deploy({ project: other }) }),
    );
    expect(e4.code).toBe('target_wrong_environment');

    const e5 = await rejection(platform.rollback({ environment: 'production', targetId: 'dpl_missing' }));
    expect(e5.code).toBe('unknown_deployment');
    expect(server.switchRequests()).toHaveLength(0);
  });

  it("turns Vercel's 400 into platform_precondition carrying Vercel's code and message; nothing changes", async () => {
    const { server, platform, projectId, d1, d2 } = await setup();
    server.setRefusal({
      code: 'rollback_not_allowed',
      message: 'Hobby teams can only roll back to the previous production deployment.',
    });
    const e = await rejection(platform.rollback({ environment: 'production', targetId: d1 }));
    expect(e).toBeInstanceOf(RefusalError);
    expect(e.code).toBe('platform_precondition');
    expect(e.retry).toBe(false);
    expect(e.message).toContain('rollback_not_allowed');
    expect(e.message).toContain('Hobby teams can only roll back');
    expect(server.productionOf(projectId)).toBe(d2);
    expect(server.isRolledBack(projectId)).toBe(false);
  });
});

describe('createVercelPlatform and config', () => {
  const base = { PLATFORM: 'vercel', VERCEL_TOKEN: TOKEN };

  it('requires the project: a ConfigError names vercel.project', () => {
    expect(() => loadConfig(base)).toThrow(ConfigError);
    expect(() => loadConfig(base)).toThrow(/vercel\.project: got nothing/);
    expect(() => loadConfig({ PLATFORM: 'vercel' })).toThrow(/VERCEL_TOKEN/);
  });

  it('takes the project from VERCEL_PROJECT (over the file) or from vercel.project in the file', () => {
    const yaml = 'platform: vercel\nvercel:\n  project: from-file\n  preview: false\n';
    const files = (p: string) => {
      if (p !== '/cfg.yml') throw new Error('unexpected path');
      return yaml;
    };
    const fromFile = loadConfig({ VERCEL_TOKEN: TOKEN, SWITCHYARD_CONFIG: '/cfg.yml' }, files);
    expect(fromFile.platform).toBe('vercel');
    expect(fromFile.file.vercel).toEqual({ project: 'from-file', preview: false });
    const both = loadConfig({ ...base, VERCEL_PROJECT: 'from-env', SWITCHYARD_CONFIG: '/cfg.yml' }, files);
    expect(both.env.VERCEL_PROJECT).toBe('from-env');
    expect(() =>
      loadConfig({ ...base, SWITCHYARD_CONFIG: '/cfg.yml' }, () => 'vercel:\n  project: ""\n'),
    ).toThrow(/vercel\.project: got "", expected a Vercel project id or name/);
    expect(() =>
      loadConfig({ ...base, SWITCHYARD_CONFIG: '/cfg.yml' }, () => 'vercel:\n  team: x\n'),
    ).toThrow(/vercel/);
  });

  it('builds an adapter that uses the token, team, base URL and project from the config', async () => {
    const clock = new ManualClock();
    const server = await VercelFakeServer.start({ clock, tokens: { [TOKEN]: [TEAM] } });
    closers.push(() => server.close());
    const projectId = server.addProject({ name: 'acme-web', teamId: TEAM });
    server.deploy({ project: projectId });
    const config = loadConfig({
      ...base,
      VERCEL_PROJECT: 'acme-web',
      VERCEL_TEAM_ID: TEAM,
      VERCEL_API_URL: server.url,
    });
    const platform = createVercelPlatform(config, { clock });
    closers.push(() => platform.close());
    expect(platform.name).toBe('vercel');
    const snap = await platform.snapshot('production');
    expect(snap.project.id).toBe(projectId);
    const noProject = { ...config, env: { ...config.env, VERCEL_PROJECT: undefined } };
    expect(() => createVercelPlatform(noProject)).toThrow(/vercel\.project/);
    const noToken = { ...config, env: { ...config.env, VERCEL_TOKEN: undefined } };
    expect(() => createVercelPlatform(noToken)).toThrow(/VERCEL_TOKEN/);
    const previewOff = createVercelPlatform(
      { ...config, file: { ...config.file, vercel: { project: 'acme-web', preview: false } } },
      { clock },
    );
    expect(await previewOff.listEnvironments()).toEqual(['production']);
  });

  it('is what a separate worker process builds for PLATFORM=vercel', async () => {
    const config = loadConfig({ ...base, VERCEL_PROJECT: 'acme-web' });
    const platform = platformFor(config, parseWorkerArgs([]), silentLogger);
    closers.push(() => platform.close());
    expect(platform).toBeInstanceOf(VercelPlatform);
    expect(platform.name).toBe('vercel');
  });
});
