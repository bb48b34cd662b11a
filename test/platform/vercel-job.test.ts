/**
 * The Vercel adapter inside the real switch flow: a plan from a Vercel snapshot, a BullMQ job on the
 * real Redis, the real worker calling the rollback endpoint of the fake Vercel server, following the
 * alias job through lastAliasRequest, verifying traffic through `routing` (Vercel's alias table, so a
 * domain the alias job left behind fails the verification, naming it); a 409 (another alias job
 * running) retried until it goes through, and one still answered to the last attempt (`refused`, or
 * `failed` "may still complete" when an earlier attempt's lost rollback started that alias job); and a
 * Vercel refusal ending the job without retries.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AUDIT_MESSAGE_MAX, AuditLog } from '../../src/audit.js';
import { type Clock, systemClock } from '../../src/clock.js';
import { buildPlan } from '../../src/domain/plan.js';
import { PlatformHttpError } from '../../src/errors.js';
import type { DeployPlatform, SwitchRequest } from '../../src/platform/port.js';
import { VercelPlatform } from '../../src/platform/vercel/adapter.js';
import { createRedis } from '../../src/redis.js';
import { escapeDiscord, renderDiscord } from '../../src/views/discord.js';
import { progressView } from '../../src/views/model.js';
import { renderSlack } from '../../src/views/slack.js';
import { VercelFakeServer } from '../fakes/vercel-server.js';
import { Cleanup, jobData, RecordingReporter } from '../jobs/fixtures/harness.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { openTestQueue, startTestWorker } from '../support/switch-worker.js';

const TOKEN = 'vcp_jobTestToken0123456789abcdef';
const TEAM = 'team_acme123';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

async function setup(
  opts: {
    verifyTimeoutMs?: number;
    domains?: readonly { name: string; verified?: boolean }[];
    audit?: AuditLog;
    /** Attempts of a job (default 5). */
    attempts?: number;
    /** What the worker calls instead of the adapter itself (e.g. one losing an answer). */
    wrap?: (platform: VercelPlatform) => DeployPlatform;
    /** The adapter's clock (default: real time). */
    platformClock?: Clock;
  } = {},
) {
  // Alias jobs finish only when the test says so; the worker polls on real time (5 ms), never sleeping in tests.
  const server = await VercelFakeServer.start({ clock: systemClock, tokens: { [TOKEN]: [TEAM] } });
  cleanup.add(() => server.close());
  const projectId = server.addProject({
    name: 'acme-web',
    teamId: TEAM,
    domains: opts.domains ?? [{ name: 'shop.acme.com' }],
  });
  const d1 = server.deploy({ project: projectId });
  const d2 = server.deploy({ project: projectId });
  const platform = new VercelPlatform({
    project: 'acme-web',
    client: { baseUrl: server.url, token: TOKEN, teamId: TEAM, timeoutMs: 5_000 },
    clock: opts.platformClock ?? systemClock,
  });
  cleanup.add(() => platform.close());
  const queueName = uniqueName('vercel-switch');
  const queue = await openTestQueue(cleanup, {
    queueName,
    retry: { attempts: opts.attempts ?? 5, baseDelayMs: 20, maxDelayMs: 50 },
  });
  const reporter = new RecordingReporter();
  await startTestWorker(cleanup, {
    queueName,
    platform: opts.wrap?.(platform) ?? platform,
    reporter,
    verify: { timeoutMs: opts.verifyTimeoutMs ?? 5_000, intervalMs: 5 },
    retry: { baseDelayMs: 20, maxDelayMs: 50 },
    lockRetryMs: 200,
    ...(opts.audit === undefined ? {} : { audit: opts.audit }),
  });
  return { server, platform, queue, reporter, projectId, d1, d2 };
}

describe('Vercel adapter in a switch job', () => {
  it('rolls back, follows the alias job, verifies every affected domain', async () => {
    const { server, platform, queue, reporter, projectId, d1, d2 } = await setup();
    const snap = await platform.snapshot('production');
    const plan = buildPlan(snap, { action: 'rollback', now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    expect(plan.value.target.id).toBe(d1);
    expect(plan.value.current.id).toBe(d2);
    expect(plan.value.targetStandby).toBe(false);

    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    await reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    await server.waitForRequest((r) => r.method === 'POST');
    expect(server.productionOf(projectId)).toBe(d2);
    server.finishAliasJob(projectId);
    const final = await queue.waitForEnd(jobId);

    expect(final?.outcome).toBe('succeeded');
    expect(final?.traffic.map((t) => t.hostname).sort()).toEqual(['acme-web.vercel.app', 'shop.acme.com']);
    expect(final?.traffic.every((t) => t.ok && t.deploymentId === d1)).toBe(true);
    expect(server.isRolledBack(projectId)).toBe(true);
    expect(server.switchRequests()).toHaveLength(1);
    // Vercel's documented rollback endpoint, with the requester in its `description`.
    expect(server.switchRequests()[0]?.path).toBe(`/v1/projects/${projectId}/rollback/${d1}`);
    expect(server.switchRequests()[0]?.query.description).toBe('Rollback requested by Alice via Switchyard');
  });

  it('does not report success when the alias job leaves a domain on the old deployment', async () => {
    const { server, platform, queue, reporter, projectId, d1, d2 } = await setup({ verifyTimeoutMs: 300 });
    const snap = await platform.snapshot('production');
    const plan = buildPlan(snap, { action: 'rollback', target: d1, now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    await reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    // The alias job "succeeds" and targets.production moves, but shop.acme.com still points to d2.
    server.leaveAliasBehind(projectId, 'shop.acme.com');
    server.finishAliasJob(projectId);
    const final = await queue.waitForEnd(jobId);

    expect(server.productionOf(projectId)).toBe(d1);
    expect(final?.outcome).toBe('failed');
    expect(final?.code).toBe('verify_timeout');
    expect(final?.message).toContain(`shop.acme.com → ${d2}`);
    const traffic = new Map(final?.traffic.map((t) => [t.hostname, t]));
    expect(traffic.get('shop.acme.com')).toMatchObject({ ok: false, deploymentId: d2 });
    expect(traffic.get('acme-web.vercel.app')).toMatchObject({ ok: true, deploymentId: d1 });
    expect(final?.steps.find((s) => s.step === 'verifying')?.state).toBe('failed');
  });

  it('a verify_timeout over 250 of 300 domains says where traffic is now before naming a few of them', async () => {
    // Review case: every domain not on the target was listed (17 482 characters) before "production is
    // serving …", which Slack's 3000-character sections, Discord's 4096-character description and the
    // audit entry's 2000 characters all cut off.
    const redis = createRedis(redisUrl());
    cleanup.add(() => redis.quit());
    const audit = new AuditLog(redis, { prefix: uniqueName('vercel-audit') });
    const names = Array.from(
      { length: 300 },
      (_, k) => `shop-${String(k).padStart(3, '0')}.customer-domain.example.com`,
    );
    const { server, platform, queue, reporter, projectId, d1, d2 } = await setup({
      verifyTimeoutMs: 300,
      domains: names.map((name) => ({ name })),
      audit,
    });
    const snap = await platform.snapshot('production');
    const plan = buildPlan(snap, { action: 'rollback', target: d1, now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    await reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    for (const n of names.slice(0, 250)) server.leaveAliasBehind(projectId, n);
    server.finishAliasJob(projectId);
    const final = await queue.waitForEnd(jobId);
    if (final === undefined) throw new Error('the job did not end');

    expect(final.code).toBe('verify_timeout');
    // Every domain is in the traffic list; the message counts them, says where traffic is, then names five.
    expect(final.traffic.filter((t) => !t.ok)).toHaveLength(250);
    const where = `production is serving ${d1} (rolled back: automatic deploys paused).`;
    expect(final.message).toMatch(
      new RegExp(
        `^The platform reports the rollback done, but after 0s its routing still sends 250 of \\d+ domains elsewhere than ${d1}\\. ${where.replace(/[().]/g, '\\$&')} Not on ${d1}: `,
      ),
    );
    expect(final.message?.match(/ → /g)).toHaveLength(5);
    expect(final.message).toContain(`customer-domain.example.com → ${d2}, … and 245 more.`);
    expect(final.message?.length).toBeLessThan(AUDIT_MESSAGE_MAX);
    // The verifying step's detail names the same five.
    const detail = final.steps.find((s) => s.step === 'verifying')?.detail ?? '';
    expect(detail.match(/ → /g)).toHaveLength(5);
    expect(detail).toMatch(/, … and 245 more\.$/);

    const view = progressView(final, plan.value);
    expect(JSON.stringify(renderSlack(view).blocks)).toContain(where);
    expect(renderDiscord(view).embeds[0]?.description).toContain(escapeDiscord(where));
    const entry = (await audit.recent('production', 5)).find((e) => e.event === 'failed');
    expect(entry?.message).toBe(final.message);
  });

  it('succeeds on a project with a domain awaiting verification: it has no alias and is not waited for', async () => {
    // Review case: an unverified domain was planned as moving, routing found no alias for it, and the
    // job ended in verify_timeout although production had switched.
    const { server, platform, queue, reporter, projectId, d1 } = await setup({
      verifyTimeoutMs: 2_000,
      domains: [{ name: 'shop.acme.com' }, { name: 'pending.acme.com', verified: false }],
    });
    const snap = await platform.snapshot('production');
    const plan = buildPlan(snap, { action: 'rollback', target: d1, now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    expect(plan.value.affectedDomains.map((d) => d.hostname).sort()).toEqual([
      'acme-web.vercel.app',
      'shop.acme.com',
    ]);
    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    await reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    server.finishAliasJob(projectId);
    const final = await queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('succeeded');
    expect(final?.traffic.map((t) => t.hostname).sort()).toEqual(['acme-web.vercel.app', 'shop.acme.com']);
    expect(server.productionOf(projectId)).toBe(d1);
  });

  it('rolls back a project with a wildcard domain (*.acme.com): queued, switched, verified from its alias', async () => {
    const { server, platform, queue, reporter, projectId, d1 } = await setup({
      domains: [{ name: 'acme.com' }, { name: '*.acme.com' }],
    });
    const snap = await platform.snapshot('production');
    const plan = buildPlan(snap, { action: 'rollback', target: d1, now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    expect(plan.value.affectedDomains.map((d) => d.hostname)).toContain('*.acme.com');
    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    await reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    server.finishAliasJob(projectId);
    const final = await queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('succeeded');
    // Verified from Vercel's alias table: the wildcard's own alias (`GET /v4/aliases/*.acme.com`).
    expect(final?.traffic.find((t) => t.hostname === '*.acme.com')).toEqual({
      hostname: '*.acme.com',
      ok: true,
      deploymentId: d1,
    });
    expect(server.requests.some((r) => r.method === 'GET' && r.path === '/v4/aliases/*.acme.com')).toBe(true);
    expect(server.productionOf(projectId)).toBe(d1);
  });

  it('a wildcard domain the alias job left on the old deployment fails verification, named', async () => {
    const { server, platform, queue, reporter, projectId, d1, d2 } = await setup({
      verifyTimeoutMs: 300,
      domains: [{ name: 'acme.com' }, { name: '*.acme.com' }],
    });
    const snap = await platform.snapshot('production');
    const plan = buildPlan(snap, { action: 'rollback', target: d1, now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    await reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    server.leaveAliasBehind(projectId, '*.acme.com');
    server.finishAliasJob(projectId);
    const final = await queue.waitForEnd(jobId);
    expect(final?.code).toBe('verify_timeout');
    expect(final?.message).toContain(`*.acme.com → ${d2}`);
    expect(final?.traffic.find((t) => t.hostname === '*.acme.com')).toMatchObject({
      ok: false,
      deploymentId: d2,
    });
  });

  it('retries after a 409 while another alias job runs, then switches once it is done', async () => {
    const { server, platform, queue, projectId, d1, d2 } = await setup();
    const snap = await platform.snapshot('production');
    const plan = buildPlan(snap, { action: 'rollback', target: d1, now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    // Someone promotes the current deployment from the dashboard: an alias job is running.
    await platform.promote({ environment: 'production', targetId: d2 });
    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    await server.waitForRequest((r) => r.method === 'POST' && r.path.includes('/rollback/'));
    server.finishAliasJob(projectId);
    await server.waitForRequest(() => server.jobOf(projectId)?.type === 'rollback');
    server.finishAliasJob(projectId);
    const final = await queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('succeeded');
    expect(server.productionOf(projectId)).toBe(d1);
    const rollbacks = server.switchRequests().filter((r) => r.path.includes('/rollback/'));
    expect(rollbacks.length).toBeGreaterThanOrEqual(2);
  });

  it('a last attempt that meets the alias job of its own lost rollback is failed, may still complete, not refused', async () => {
    // The first rollback POST reaches Vercel (its alias job starts) but its answer is lost: a 504 from
    // a proxy in between, as retryable as a timeout, so the switch may have started.
    let lost = false;
    const { server, platform, queue, reporter, projectId, d1, d2 } = await setup({
      attempts: 3,
      wrap: (vercel) =>
        Object.assign(Object.create(vercel) as DeployPlatform, {
          rollback: async (r: SwitchRequest) => {
            const ref = await vercel.rollback(r);
            if (lost) return ref;
            lost = true;
            throw new PlatformHttpError(
              504,
              'POST',
              `${server.url}/v1/projects/x/rollback/${r.targetId}`,
              undefined,
              'gateway timeout',
            );
          },
        }),
    });
    const snap = await platform.snapshot('production');
    const plan = buildPlan(snap, { action: 'rollback', target: d1, now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    // Every later attempt gets 409: Vercel is still running the alias job of the first one.
    const final = await queue.waitForEnd(jobId);
    expect(server.switchRequests()).toHaveLength(3);
    expect(final?.attempt).toBe(3);
    expect(final?.code).toBe('operation_in_progress');
    // `refused` would say Vercel did not switch; it may well: the first request's alias job runs on.
    expect(final?.outcome).toBe('failed');
    expect(progressView(final as NonNullable<typeof final>, plan.value).title).not.toContain('refused');
    expect(final?.message).toContain('(409 ');
    expect(final?.message).toContain(
      'The platform may have started this rollback and may still complete it: check where traffic is before trying again.',
    );
    expect(final?.message).toContain(`production is serving ${d2}.`);
    // No retry is promised by the last attempt; the attempts before it said they retried.
    expect(final?.message).not.toMatch(/tried again|retrying/);
    const retried = reporter
      .of(jobId)
      .filter((p) => p.attempt < 3)
      .flatMap((p) => p.steps.filter((s) => s.step === 'switching' && s.state === 'failed'));
    expect(retried.map((s) => s.detail?.match(/\(attempt \d of 3; retrying\)$/)?.[0])).toContain(
      '(attempt 2 of 3; retrying)',
    );
    expect(final?.steps.find((s) => s.step === 'switching')?.detail).not.toMatch(/tried again|retrying/);
    // Vercel finishes that alias job: production is rolled back after all, as the message warned.
    server.finishAliasJob(projectId);
    expect(server.productionOf(projectId)).toBe(d1);
  });

  it("an alias job still in progress at Vercel's 3-minute timeout ends the job failed, may still complete, not retried", async () => {
    // The adapter's clock: real time plus an offset the test moves past the operation timeout.
    const clock = { offset: 0, now: () => Date.now() + clock.offset, sleep: systemClock.sleep };
    const { server, platform, queue, reporter, projectId, d1, d2 } = await setup({ platformClock: clock });
    const snap = await platform.snapshot('production');
    const plan = buildPlan(snap, { action: 'rollback', target: d1, now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    await reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    // Vercel is still moving the aliases (a big project) when the 3 minutes pass.
    clock.offset = 3 * 60_000 + 1_000;
    const final = await queue.waitForEnd(jobId);
    expect(server.jobOf(projectId)?.jobStatus).toMatch(/pending|in-progress/);
    expect(final).toMatchObject({ outcome: 'failed', code: 'platform_operation_failed', attempt: 1 });
    expect(final?.message).toContain('(operation_timeout)');
    // Vercel has not given up: not "could not rollback", and the switch may still complete.
    expect(final?.message).not.toContain('could not rollback');
    expect(final?.message).toMatch(/Vercel still reports it (pending|in progress)/);
    expect(final?.message).toContain(
      'The platform may have started this rollback and may still complete it: check where traffic is before trying again.',
    );
    expect(final?.message).toContain('as not finished (operation_timeout)');
    expect(final?.message).toContain(`production is serving ${d2}.`);
    // Not retried: another rollback request would be another switch.
    expect(server.switchRequests()).toHaveLength(1);
    // Vercel finishes the alias job: production is rolled back after all, as the message warned.
    server.finishAliasJob(projectId);
    expect(server.productionOf(projectId)).toBe(d1);
  });

  it('a last attempt that still meets another alias job is refused, promising no retry', async () => {
    const { server, platform, queue, projectId, d1, d2 } = await setup({ attempts: 2 });
    const snap = await platform.snapshot('production');
    const plan = buildPlan(snap, { action: 'rollback', target: d1, now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    // Someone promotes the current deployment from the dashboard; its alias job runs throughout.
    await platform.promote({ environment: 'production', targetId: d2 });
    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    const final = await queue.waitForEnd(jobId);
    expect(server.switchRequests().filter((r) => r.path.includes('/rollback/'))).toHaveLength(2);
    // This job's requests were all refused: nothing of it can still complete.
    expect(final?.outcome).toBe('refused');
    expect(final?.code).toBe('operation_in_progress');
    expect(final?.message).toContain('Vercel is still moving the domains of project acme-web');
    expect(final?.message).not.toMatch(/tried again|retrying|may still complete/);
    expect(final?.message).toContain(`production is serving ${d2}.`);
    server.finishAliasJob(projectId);
    expect(server.productionOf(projectId)).toBe(d2);
  });

  it('ends the job on a Vercel refusal without retrying it', async () => {
    const { server, platform, queue, projectId, d1, d2 } = await setup();
    const snap = await platform.snapshot('production');
    const plan = buildPlan(snap, { action: 'rollback', target: d1, now: Date.now() });
    if (!plan.ok) throw new Error(plan.refusal.message);
    server.setRefusal({
      code: 'rollback_not_allowed',
      message: 'Hobby teams can only roll back to the previous production deployment.',
    });
    const { jobId } = await queue.enqueue(jobData(plan.value, Date.now()));
    const final = await queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('refused');
    expect(final?.message).toContain('Hobby teams can only roll back');
    expect(final?.message).not.toContain(TOKEN);
    expect(server.switchRequests()).toHaveLength(1);
    expect(server.productionOf(projectId)).toBe(d2);
  });
});
