/**
 * Edge cases of VercelPlatform (src/platform/vercel/adapter.ts) against the fake Vercel server:
 * behaviour no other test pinned down (preview's current deployment and rolled-back flag, a deployment
 * of a disabled preview, a domain with no alias yet in `routing`, which alias job is the operation's,
 * the operation timeout of a job still pending and its boundary).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PlatformHttpError } from '../../src/errors.js';
import type { OperationRef } from '../../src/platform/port.js';
import { rollbackDescription, VercelPlatform } from '../../src/platform/vercel/adapter.js';
import { SleepRecordingClock } from '../fakes/unkey-server.js';
import { VercelFakeServer } from '../fakes/vercel-server.js';

const TOKEN = 'vcp_mutantAdapterToken0123456789ab';
const TIMEOUT_MS = 3 * 60_000;

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** fetch that shows every alias job Vercel reports in progress as still `pending` (Vercel's queue is slow). */
const pendingJobs: typeof fetch = async (input, init) => {
  const res = await fetch(input, init);
  if (!/\/v9\/projects\/[^/?]+(\?|$)/.test(String(input))) return res;
  const body = (await res.json()) as { lastAliasRequest?: { jobStatus: string } };
  if (body.lastAliasRequest?.jobStatus === 'in-progress') body.lastAliasRequest.jobStatus = 'pending';
  return new Response(JSON.stringify(body), {
    status: res.status,
    headers: { 'content-type': 'application/json' },
  });
};

async function setup(
  opts: {
    preview?: boolean;
    fetch?: typeof fetch;
    domains?: { name: string; gitBranch?: string }[];
    maxRetries?: number;
  } = {},
) {
  const clock = new SleepRecordingClock();
  const server = await VercelFakeServer.start({ clock, tokens: { [TOKEN]: ['personal'] } });
  closers.push(() => server.close());
  const projectId = server.addProject({
    name: 'acme-web',
    domains: [
      { name: 'shop.acme.com' },
      { name: 'staging.acme.com', gitBranch: 'staging' },
      ...(opts.domains ?? []),
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
    client: {
      baseUrl: server.url,
      token: TOKEN,
      timeoutMs: 5_000,
      maxRetries: opts.maxRetries ?? 0,
      random: () => 0.5,
      ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }),
    },
    clock,
    ...(opts.preview === undefined ? {} : { preview: opts.preview }),
  });
  closers.push(() => platform.close());
  return { clock, server, platform, projectId, d1, d2, p1 };
}

describe('VercelPlatform reads', () => {
  it("takes preview's current deployment to be its newest READY one, not a newer build", async () => {
    const { server, platform, projectId, p1 } = await setup();
    const building = server.deploy({
      project: projectId,
      target: 'preview',
      branch: 'feature',
      readyState: 'BUILDING',
    });
    const snap = await platform.snapshot('preview');
    expect(snap.deployments.map((d) => d.id)).toEqual([building, p1]);
    expect(snap.environment.currentDeploymentId).toBe(p1);
  });

  it('never shows preview as rolled back, even while production is', async () => {
    const { clock, server, platform, projectId, d1 } = await setup();
    const ref = await platform.rollback({ environment: 'production', targetId: d1 });
    server.finishAliasJob(projectId);
    expect((await platform.operation(ref)).state).toBe('succeeded');
    await clock.advance(1_000);
    expect((await platform.snapshot('production')).environment.rolledBack).toBe(true);
    expect((await platform.snapshot('preview')).environment.rolledBack).toBe(false);
  });

  it('does not give out a preview deployment when preview is turned off', async () => {
    const { platform, d1, p1 } = await setup({ preview: false });
    expect(await platform.getDeployment(p1)).toBeUndefined();
    expect((await platform.getDeployment(d1))?.environment).toBe('production');
  });

  it('routes a domain Vercel has no alias for (404) to no deployment instead of failing', async () => {
    // A branch domain whose branch never deployed: Vercel's alias table has nothing for it yet.
    const { platform, p1 } = await setup({ domains: [{ name: 'dev.acme.com', gitBranch: 'dev' }] });
    const routes = await platform.routing('preview');
    expect([...routes].sort((a, b) => a.hostname.localeCompare(b.hostname))).toEqual([
      { hostname: 'dev.acme.com', stickiness: 'branch', environment: 'preview' },
      { hostname: 'staging.acme.com', stickiness: 'branch', environment: 'preview', deploymentId: p1 },
    ]);
  });
});

describe('VercelPlatform operations', () => {
  it.each(['rollback', 'promote'] as const)(
    'does not send a %s again after a 5xx (an alias job may have started)',
    async (action) => {
      const { clock, server, platform, projectId, d1 } = await setup({ maxRetries: 2 });
      const prefix = action === 'rollback' ? '/v1/projects' : '/v10/projects';
      server.fault({ kind: 'status', status: 503, method: 'POST', path: prefix });
      const e = await clock.drive(
        platform[action]({ environment: 'production', targetId: d1 }).then(
          () => undefined,
          (err: unknown) => err,
        ),
        5_000,
      );
      expect(e).toBeInstanceOf(PlatformHttpError);
      expect((e as PlatformHttpError).retry).toBe(true);
      expect(server.switchRequests()).toHaveLength(1);
      expect(server.productionOf(projectId)).not.toBe(d1);
    },
  );

  it("does not take the last rollback to the target for a promote's own alias job", async () => {
    const { clock, server, platform, projectId, d1 } = await setup();
    const rollback = await platform.rollback({ environment: 'production', targetId: d1 });
    server.finishAliasJob(projectId);
    expect((await platform.operation(rollback)).state).toBe('succeeded');
    // A promote of d1 (resuming automatic deploys) started 10 s later, its alias job not on record yet:
    // the succeeded rollback to d1 is not its job, and production is still rolled back.
    await clock.advance(10_000);
    const promote: OperationRef = {
      id: 'vercel_promote_mutant',
      action: 'promote',
      environment: 'production',
      targetId: d1,
      startedAt: clock.now(),
    };
    expect((await platform.operation(promote)).state).toBe('pending');
  });

  it("takes a failed alias job for its own when Vercel's clock is behind Switchyard's (within the skew)", async () => {
    const { server, platform, projectId, d1 } = await setup();
    const ref = await platform.rollback({ environment: 'production', targetId: d1 });
    server.finishAliasJob(projectId, 'failed');
    // The same switch, as seen by a Switchyard whose clock runs 30 s ahead of Vercel's.
    const skewed: OperationRef = { ...ref, startedAt: ref.startedAt + 30_000 };
    expect(await platform.operation(skewed)).toMatchObject({
      state: 'failed',
      error: { code: 'alias_job_failed' },
    });
  });

  it('fails an operation whose alias job is still pending after the timeout, saying it may still complete', async () => {
    const { clock, platform, d1 } = await setup({ fetch: pendingJobs });
    const ref = await platform.rollback({ environment: 'production', targetId: d1 });
    expect((await platform.operation(ref)).state).toBe('pending');
    await clock.advance(TIMEOUT_MS + 1);
    const op = await platform.operation(ref);
    expect(op).toMatchObject({
      state: 'failed',
      error: { code: 'operation_timeout', mayStillComplete: true },
    });
    expect(op.error?.message).toContain('Vercel still reports it pending');
  });

  it('fails an operation on timeout only once more than operationTimeoutMs has passed', async () => {
    const { clock, platform, d1 } = await setup();
    const ref = await platform.rollback({ environment: 'production', targetId: d1 });
    await clock.advance(TIMEOUT_MS);
    expect((await platform.operation(ref)).state).toBe('switching');
    await clock.advance(1);
    expect(await platform.operation(ref)).toMatchObject({
      state: 'failed',
      error: { code: 'operation_timeout', mayStillComplete: true },
    });
  });

  it('fails an operation whose alias job never shows on the project once the timeout has passed', async () => {
    const { clock, platform, d1 } = await setup();
    // A rollback Switchyard asked for whose alias job Vercel never recorded (no lastAliasRequest at all).
    const ref: OperationRef = {
      id: 'vercel_rollback_mutant',
      action: 'rollback',
      environment: 'production',
      targetId: d1,
      startedAt: clock.now(),
    };
    expect((await platform.operation(ref)).state).toBe('pending');
    await clock.advance(TIMEOUT_MS + 1);
    const op = await platform.operation(ref);
    expect(op).toMatchObject({
      state: 'failed',
      error: { code: 'operation_timeout', mayStillComplete: true },
    });
    expect(op.error?.message).not.toContain('Vercel still reports it');
  });
});

describe('rollbackDescription', () => {
  it('keeps a name that exactly fills the 250 characters whole, and shortens one a character longer', () => {
    const room = 250 - 'Rollback requested by '.length - ' via Switchyard'.length;
    const exact = rollbackDescription('a'.repeat(room));
    expect(exact).toBe(`Rollback requested by ${'a'.repeat(room)} via Switchyard`);
    expect(exact).toHaveLength(250);
    const longer = rollbackDescription('a'.repeat(room + 1));
    expect(longer).toBe(`Rollback requested by ${'a'.repeat(room - 1)}… via Switchyard`);
    expect(longer).toHaveLength(250);
  });
});
