/**
 * Flow on platforms that keep no live history (Unkey, Vercel, against their fakes): Switchyard's own
 * audit stands in for the history the platform does not keep (src/domain/own-record.ts). The switches
 * are carried out on the platform and recorded in the real audit log as the switch worker records its
 * own (jobs/switch-processor.ts `auditEntry`: a `succeeded` entry from the plan's current deployment
 * to its target, at the worker's time), with one ManualClock for the fake, the adapter and Flow.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Plan } from '../../src/domain/plan.js';
import { Flow, type PlanOutcome } from '../../src/flow.js';
import type { DeployPlatform } from '../../src/platform/port.js';
import { UnkeyPlatform } from '../../src/platform/unkey/adapter.js';
import { VercelPlatform } from '../../src/platform/vercel/adapter.js';
import { confirmationView } from '../../src/views/model.js';
import type { UnkeyFakeServer } from '../fakes/unkey-server.js';
import { VercelFakeServer } from '../fakes/vercel-server.js';
import { pushMainDeployments, startAcmeUnkey } from '../support/unkey.js';
import { viewText } from '../views/fixtures.js';
import { alice, createHarness, type Harness, testConfig } from './harness.js';

const MINUTE = 60_000;
const SWITCH_DELAY = 1_000;
const UNKEY_KEY = 'unkey_3ZflowOwnRecordRootKey01234567';
const VERCEL_TOKEN = 'vcp_flowOwnRecordToken0123456789abcd';
const prodEnv = { project: 'acme', app: 'api', environment: 'production' } as const;

let h: Harness | undefined;
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await h?.close();
  h = undefined;
});

function planned(o: PlanOutcome): Plan {
  if (!o.ok) throw new Error(`expected a plan, got ${o.refusal.code}: ${o.refusal.message}`);
  return o.plan;
}

/** A Flow on the harness's Redis and clock over `platform`. */
function flowOn(x: Harness, platform: DeployPlatform, name: 'unkey' | 'vercel'): Flow {
  return new Flow({
    platform,
    queue: x.switchQueue,
    plans: x.plans,
    audit: x.audit,
    config: testConfig({}, name),
    clock: x.clock,
  });
}

/** Records `plan` as carried out, as the switch worker does once its switch succeeded. */
async function recordSucceeded(x: Harness, plan: Plan): Promise<void> {
  await x.audit.append({
    at: x.clock.now(),
    environment: plan.environment,
    action: plan.action,
    event: 'succeeded',
    actor: { surface: alice.surface, userId: alice.userId, displayName: alice.displayName },
    planId: plan.id,
    jobId: `job_${plan.id}`,
    targetId: plan.target.id,
    fromId: plan.expectedCurrent,
    message: `${plan.action} to ${plan.target.id} done`,
  });
}

/** Production of the fake Unkey (`acme/api`) on the harness's clock: good, then bad (live). */
async function unkey() {
  const x = await createHarness();
  h = x;
  const server = await startAcmeUnkey(UNKEY_KEY, { clock: x.clock, switchDelayMs: SWITCH_DELAY });
  closers.push(() => server.close());
  const platform = new UnkeyPlatform({
    environments: { production: prodEnv },
    client: { baseUrl: server.url, rootKey: UNKEY_KEY, clock: x.clock, timeoutMs: 5_000, maxRetries: 0 },
    clock: x.clock,
  });
  closers.push(() => platform.close());
  const [good, bad] = (await pushMainDeployments(server, x.clock, 2)) as [string, string];
  const flow = flowOn(x, platform, 'unkey');
  /** Plans `action` by Flow, carries it out on Unkey and records it: the plan. */
  const carryOut = async (action: 'rollback' | 'promote', target?: string): Promise<Plan> => {
    const plan = planned(await flow.plan(alice, action, 'production', target));
    const ref = await platform[action]({ environment: 'production', targetId: plan.target.id });
    await x.clock.advance(SWITCH_DELAY);
    expect((await platform.operation(ref)).state).toBe('succeeded');
    await recordSucceeded(x, plan);
    return plan;
  };
  return { x, server, platform, flow, carryOut, good, bad };
}

function push(server: UnkeyFakeServer): string {
  return server.push({ ...prodEnv, branch: 'main' });
}

/** Production of the fake Vercel's project `acme-web` on the harness's clock: good, then bad (live). */
async function vercel() {
  const x = await createHarness();
  h = x;
  const server = await VercelFakeServer.start({ clock: x.clock, tokens: { [VERCEL_TOKEN]: ['personal'] } });
  closers.push(() => server.close());
  const projectId = server.addProject({ name: 'acme-web', domains: [{ name: 'shop.acme.com' }] });
  const good = server.deploy({ project: projectId });
  await x.clock.advance(MINUTE);
  const bad = server.deploy({ project: projectId });
  await x.clock.advance(MINUTE);
  const platform = new VercelPlatform({
    project: 'acme-web',
    client: { baseUrl: server.url, token: VERCEL_TOKEN, timeoutMs: 5_000, maxRetries: 0 },
    clock: x.clock,
  });
  closers.push(() => platform.close());
  const flow = flowOn(x, platform, 'vercel');
  const carryOut = async (action: 'rollback' | 'promote', target?: string): Promise<Plan> => {
    const plan = planned(await flow.plan(alice, action, 'production', target));
    const ref = await platform[action]({ environment: 'production', targetId: plan.target.id });
    server.finishAliasJob(projectId);
    expect((await platform.operation(ref)).state).toBe('succeeded');
    await x.clock.advance(SWITCH_DELAY);
    await recordSucceeded(x, plan);
    return plan;
  };
  return { x, server, projectId, platform, flow, carryOut, good, bad };
}

describe("default targets on Unkey read Switchyard's own record", () => {
  it('rollback: after rolling back from bad, resuming on good and a push going live, goes back to good (live before it), not to bad', async () => {
    const { x, server, platform, flow, carryOut, good, bad } = await unkey();
    expect((await carryOut('rollback')).target.id).toBe(good);
    const resume = await carryOut('promote');
    expect(resume.resumesAutoDeploys).toBe(true);
    await x.clock.advance(5 * MINUTE);
    const next = push(server); // goes live automatically
    const snap = await platform.snapshot('production');
    expect(snap.environment.currentDeploymentId).toBe(next);
    // Unkey still runs the bad deployment: a rollback schedules no stop for the one it leaves.
    expect(snap.deployments.find((d) => d.id === bad)?.status).toBe('ready');
    const plan = planned(await flow.plan(alice, 'rollback', 'production'));
    expect(plan.target.id).toBe(good);
    expect(plan.targetRolledBackFrom).toBeUndefined();
  });

  it("/deployments: the rolled-back banner says since when and by whom, from Switchyard's own rollback (Unkey says neither)", async () => {
    const { x, platform, flow, carryOut } = await unkey();
    expect((await platform.snapshot('production')).environment.rolledBackAt).toBeUndefined();
    await carryOut('rollback');
    const rolledBackAt = x.clock.now();
    await x.clock.advance(10 * MINUTE);
    const out = await flow.deployments('production');
    if (!out.ok) throw new Error(out.refusal.message);
    expect(out.snapshot.environment).toMatchObject({
      rolledBack: true,
      rolledBackAt,
      rolledBackBy: 'Alice',
      rolledBackSince: rolledBackAt,
    });
  });

  it('promote while rolled back: a fix pushed since Switchyard rolled back is the default, not a resume', async () => {
    const { x, server, flow, carryOut, good, bad } = await unkey();
    expect((await carryOut('rollback')).target.id).toBe(good);
    await x.clock.advance(MINUTE);
    const fix = push(server); // rolled back: it gets no domain
    await x.clock.advance(MINUTE);
    const plan = planned(await flow.plan(alice, 'promote', 'production'));
    expect(plan.rolledBack).toBe(true);
    expect(plan.target.id).toBe(fix);
    expect(plan.target.id).not.toBe(bad);
    expect(plan.resumesAutoDeploys).toBe(false);
  });

  it('rollback: when only the deployment rolled back from is left older, it is the target and the confirmation says so', async () => {
    const { x, server, platform, flow, carryOut, good, bad } = await unkey();
    await carryOut('rollback');
    await x.clock.advance(MINUTE);
    const fix = push(server);
    await x.clock.advance(MINUTE);
    expect((await carryOut('promote')).target.id).toBe(fix);
    // Unkey stops good 30 minutes after the promote left it; bad, left by a rollback, keeps running.
    await x.clock.advance(31 * MINUTE);
    const snap = await platform.snapshot('production');
    expect(snap.deployments.filter((d) => d.status === 'ready').map((d) => d.id)).toEqual([fix, bad]);
    expect(snap.deployments.find((d) => d.id === good)?.status).toBe('stopped');
    const plan = planned(await flow.plan(alice, 'rollback', 'production'));
    expect(plan.target.id).toBe(bad);
    expect(plan.targetRolledBackFrom).toBe(true);
    const text = viewText(confirmationView(plan, { state: 'pending', now: x.clock.now() }));
    expect(text).toContain(
      `Switchyard rolled production back from ${bad} before: this rollback returns production to it.`,
    );
  });
});

describe("default targets on Vercel read Switchyard's own record", () => {
  it('rollback: after rolling back from bad, a push while rolled back, resuming on good and a push going live, goes back to good, not to the push that was never live', async () => {
    const { x, server, projectId, platform, flow, carryOut, good } = await vercel();
    expect((await carryOut('rollback')).target.id).toBe(good);
    const neverLive = server.deploy({ project: projectId });
    await x.clock.advance(MINUTE);
    // Resume automatic deploys on good, by name: the default would be the push since, as a fix.
    expect((await carryOut('promote', good)).resumesAutoDeploys).toBe(true);
    await x.clock.advance(MINUTE);
    const next = server.deploy({ project: projectId });
    await x.clock.advance(MINUTE);
    const snap = await platform.snapshot('production');
    expect(snap.environment).toMatchObject({ currentDeploymentId: next, rolledBack: false });
    expect(snap.deployments.find((d) => d.id === neverLive)?.status).toBe('ready');
    expect(planned(await flow.plan(alice, 'rollback', 'production')).target.id).toBe(good);
  });

  it('promote while rolled back: a fix pushed since Switchyard rolled back is the default, not a resume', async () => {
    const { x, server, projectId, flow, carryOut, good } = await vercel();
    expect((await carryOut('rollback')).target.id).toBe(good);
    await x.clock.advance(MINUTE);
    const fix = server.deploy({ project: projectId });
    await x.clock.advance(MINUTE);
    const plan = planned(await flow.plan(alice, 'promote', 'production'));
    expect(plan.rolledBack).toBe(true);
    expect(plan.target.id).toBe(fix);
  });
});
