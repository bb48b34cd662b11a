/**
 * What a switch can carry, through Flow on the real LocalPlatform, PlanStore, AuditLog and SwitchQueue:
 * an environment with more affected domains than one switch verifies is refused when planning (no
 * button is ever offered), exactly as many is planned, confirmed and queued, and a plan stored before
 * planning refused it is refused on confirm in words, changing nothing (no `approved` entry, no job,
 * the plan still open): never a thrown ZodError ("Something went wrong") nor zod's JSON in the audit.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit.js';
import { ManualClock } from '../../src/clock.js';
import { buildPlan, MAX_SWITCH_DOMAINS, type Plan, planDomains, planId } from '../../src/domain/plan.js';
import { Flow } from '../../src/flow.js';
import { PlanState, PlanStore } from '../../src/plan-store.js';
import { demoState } from '../../src/platform/local/demo.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import { SwitchQueue } from '../../src/queue.js';
import { createRedis, deleteKeys, scanKeys } from '../../src/redis.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { alice, testConfig } from './actors.js';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** The demo project with production's rollback moving `total` domains (its own plus custom ones). */
async function setup(total: number) {
  const clock = new ManualClock();
  // How many domains the demo's own production rollback moves (live, environment and branch domains).
  const demo = await LocalPlatform.open({ clock, maintenance: false, seed: demoState(clock.now()) });
  const own = await demo
    .snapshot('production')
    .then((snap) => buildPlan(snap, { action: 'rollback', now: 0 }));
  await demo.close();
  if (!own.ok) throw new Error(own.refusal.message);
  const seed = demoState(clock.now());
  const current = own.value.current.id;
  for (let k = 0; k < total - own.value.affectedDomains.length; k++) {
    seed.domains.push({
      hostname: `shop-${k}.example.com`,
      stickiness: 'live',
      environment: 'production',
      deploymentId: current,
    });
  }
  const prefix = uniqueName('limits');
  const redis = createRedis(redisUrl());
  const platform = await LocalPlatform.open({ clock, maintenance: false, seed });
  const plans = new PlanStore({ redis, prefix: `${prefix}:`, clock });
  const audit = new AuditLog(redis, { prefix });
  const queue = new SwitchQueue({ redisUrl: redisUrl(), queueName: uniqueName('switch'), clock });
  await queue.waitUntilReady();
  closers.push(async () => {
    await queue.obliterate();
    await queue.close();
    await platform.close();
    await deleteKeys(redis, await scanKeys(redis, `${prefix}*`));
    await redis.quit();
  });
  const flow = new Flow({ platform, queue, plans, audit, config: testConfig(), clock });
  const jobCount = async () => Object.values(await queue.queue.getJobCounts()).reduce((a, b) => a + b, 0);
  return { flow, platform, plans, audit, queue, clock, jobCount };
}

describe('a switch moves at most MAX_SWITCH_DOMAINS domains', () => {
  it('/rollback of an environment with more is refused when planning, naming how many and the limit; nothing stored', async () => {
    const x = await setup(612);
    const o = await x.flow.plan(alice, 'rollback', 'production');
    expect(o.ok).toBe(false);
    if (o.ok) return;
    expect(o.refusal.code).toBe('too_many_domains');
    expect(o.refusal.message).toBe(
      `production has 612 affected domains; Switchyard verifies at most ${MAX_SWITCH_DOMAINS} per switch, so it cannot roll back production. Use the deploy platform's own rollback (its dashboard or CLI) for production instead.`,
    );
    expect(await x.audit.recent('production', 10)).toEqual([]);
    expect(await x.jobCount()).toBe(0);
  });

  it('an environment with exactly as many is planned, confirmed and queued with every domain', async () => {
    const x = await setup(MAX_SWITCH_DOMAINS);
    const o = await x.flow.plan(alice, 'rollback', 'production');
    if (!o.ok) throw new Error(o.refusal.message);
    expect(o.plan.affectedDomains).toHaveLength(MAX_SWITCH_DOMAINS);
    const c = await x.flow.confirm(alice, o.plan.id);
    if (c.status !== 'enqueued') throw new Error(`expected enqueued, got ${c.status}`);
    expect((await x.queue.queue.getJob(c.jobId))?.data.domains).toHaveLength(MAX_SWITCH_DOMAINS);
  });

  it('a plan stored before planning refused it is refused on confirm in words: no approved entry, no job, still open', async () => {
    const x = await setup(605);
    // The plan as Switchyard built it before buildPlan refused such plans (it is still in Redis after
    // an upgrade, its Rollback button still shown): every affected domain, unchanged on the platform.
    const snap = await x.platform.snapshot('production');
    const few = buildPlan(
      { ...snap, domains: snap.domains.filter((d) => !d.hostname.startsWith('shop-')) },
      { action: 'rollback', now: x.clock.now() },
    );
    if (!few.ok) throw new Error(few.refusal.message);
    const domains = planDomains(snap, 'rollback', few.value.target.id, few.value.current.id);
    expect(domains).toHaveLength(605);
    const old: Plan = {
      ...few.value,
      affectedDomains: domains,
      id: planId({
        action: 'rollback',
        projectId: few.value.projectId,
        environment: 'production',
        expectedCurrent: few.value.expectedCurrent,
        target: few.value.target.id,
        rolledBack: false,
        targetStandby: few.value.targetStandby,
        domains: domains.map((d) => d.hostname),
      }),
    };
    await x.plans.create({ plan: old, requestedBy: alice });

    const c = await x.flow.confirm(alice, old.id);
    expect(c.status).toBe('refused');
    if (c.status !== 'refused') return;
    const message = `This rollback of production cannot be queued: domains: got 605 items, expected at most ${MAX_SWITCH_DOMAINS} domains (Switchyard verifies at most ${MAX_SWITCH_DOMAINS} per switch). Nothing was changed. Ask for a fresh plan with /rollback production.`;
    expect(c.refusal).toMatchObject({ code: 'invalid_input', message, context: { fields: ['domains'] } });
    // A refused click changes nothing: the plan is still open, nothing is queued, and the audit has the
    // refusal in words (no `approved` entry before it, no zod JSON).
    expect((await x.flow.get(old.id))?.state).toBe(PlanState.pending);
    expect(await x.jobCount()).toBe(0);
    expect(await x.audit.recent('production', 10)).toEqual([]);
    const audit = await x.audit.refusals('production', 10);
    expect(audit.map((e) => `${e.event}:${e.code ?? ''}`)).toEqual(['refused:invalid_input']);
    expect(audit[0]).toMatchObject({ actor: alice, planId: old.id, message });

    // Asking again gets the plan-time refusal, which says what to do.
    const again = await x.flow.plan(alice, 'rollback', 'production');
    expect(!again.ok && again.refusal.code).toBe('too_many_domains');
  });
});
