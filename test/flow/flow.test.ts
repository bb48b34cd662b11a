import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit.js';
import type { ClickOutcome, PlanOutcome } from '../../src/flow.js';
import { Flow } from '../../src/flow.js';
import { PlanState, PlanStore } from '../../src/plan-store.js';
import type { MessageRef } from '../../src/progress.js';
import { SwitchQueue } from '../../src/queue.js';
import { createRedis } from '../../src/redis.js';
import { redisUrl } from '../support/redis.js';
import {
  alice,
  bob,
  carol,
  createHarness,
  dave,
  type Harness,
  type HarnessOptions,
  switchDirectly,
  system,
  testConfig,
} from './harness.js';

let h: Harness | undefined;

afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function setup(opts: HarnessOptions = {}): Promise<Harness> {
  h = await createHarness(opts);
  return h;
}

function planned(o: PlanOutcome) {
  if (!o.ok) throw new Error(`expected a plan, got ${o.refusal.code}: ${o.refusal.message}`);
  return o;
}

function expectStatus<S extends ClickOutcome['status']>(
  o: ClickOutcome,
  status: S,
): ClickOutcome & { status: S } {
  expect(o.status).toBe(status);
  return o as ClickOutcome & { status: S };
}

const slackMsg: MessageRef = { surface: 'slack', channel: 'C0INCIDENT', messageId: '1700000000.000100' };

/** Allow lists used by the permission tests: alice and bob on Slack, role 333… on Discord. */
const allowProd = {
  production: {
    allow: { slack: { users: ['U0ALICE', 'U0BOB'] }, discord: { roles: ['333333333333'] } },
  },
};

describe('Flow.plan', () => {
  it('plans the default rollback of production with current, domains and target', async () => {
    const x = await setup();
    const o = planned(await x.flow.plan(alice, 'rollback', 'prod'));
    expect(o.created).toBe(true);
    expect(o.plan.environment).toBe('production');
    expect(o.plan.current.id).toBe('dep_4kq9wz');
    expect(o.plan.target.id).toBe('dep_3hd7xa');
    expect(o.plan.targetStandby).toBe(true);
    expect(o.plan.affectedDomains.map((d) => d.hostname).sort()).toEqual([
      'main.acme.localhost',
      'production.acme.localhost',
      'shop.localhost',
      'www.shop.localhost',
    ]);
    expect(o.record.state).toBe(PlanState.pending);
    expect(await x.flow.get(o.plan.id)).toEqual(o.record);
    const audit = await x.audit.recent('production', 10);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      event: 'requested',
      actor: alice,
      planId: o.plan.id,
      targetId: 'dep_3hd7xa',
    });
  });

  it('an unknown environment lists the valid ones and stores nothing', async () => {
    const x = await setup();
    const o = await x.flow.plan(alice, 'rollback', 'staging');
    expect(o.ok).toBe(false);
    if (o.ok) return;
    expect(o.refusal.code).toBe('unknown_environment');
    expect(o.refusal.message).toContain('Valid environments: production, preview');
    expect(await x.redis.keys(`${x.prefix}*`)).toEqual([]);
  });

  it('an unknown deployment lists recent ones', async () => {
    const x = await setup();
    const o = await x.flow.plan(alice, 'rollback', 'production', 'dep_nope');
    expect(o.ok).toBe(false);
    if (o.ok) return;
    expect(o.refusal.code).toBe('unknown_deployment');
    expect(o.refusal.message).toContain('dep_4kq9wz, dep_3hd7xa, dep_2mc5ty, dep_1ab3cd');
  });

  it('/promote accepts a deployment id in place of the environment', async () => {
    const x = await setup();
    await switchDirectly(x, 'rollback', 'production', 'dep_3hd7xa');
    const o = planned(await x.flow.plan(alice, 'promote', 'dep_4kq9wz'));
    expect(o.plan.environment).toBe('production');
    expect(o.plan.target.id).toBe('dep_4kq9wz');
    const neither = await x.flow.plan(alice, 'promote', 'zzz');
    expect(neither.ok).toBe(false);
    if (!neither.ok) {
      expect(neither.refusal.message).toContain('neither an environment nor a deployment');
      expect(neither.refusal.message).toContain('production, preview');
    }
  });

  it('a second request for the same switch joins the same plan', async () => {
    const x = await setup();
    const first = planned(await x.flow.plan(alice, 'rollback', 'production'));
    const second = planned(
      await x.flow.plan(bob, 'rollback', 'production', undefined, { messages: [slackMsg] }),
    );
    expect(second.created).toBe(false);
    expect(second.plan.id).toBe(first.plan.id);
    expect(second.record.requestedBy).toEqual(alice);
    expect(second.record.messages).toEqual([slackMsg]);
    expect((await x.audit.recent('production', 10)).filter((e) => e.event === 'requested')).toHaveLength(1);
  });

  it('alert suggestions are requested by the system actor and carry the alert', async () => {
    const x = await setup();
    const alert = {
      source: 'alertmanager',
      title: 'HighErrorRate',
      fingerprint: 'abc123',
      status: 'firing' as const,
    };
    const o = planned(await x.flow.plan(system, 'rollback', 'production', undefined, { alert }));
    expect(o.record.alert).toEqual(alert);
    expect(o.record.requestedBy).toEqual(system);
    // the system proposes, a person decides
    const c = expectStatus(await x.flow.confirm(system, o.plan.id), 'refused');
    expect(c.refusal.code).toBe('forbidden');
    const e = expectStatus(await x.flow.confirm(alice, o.plan.id), 'enqueued');
    expect((await x.job(e.jobId))?.requestedBy).toEqual(alice);
  });

  it('an alert suggestion can be dismissed by a permitted person', async () => {
    const x = await setup();
    const alert = { source: 'grafana', title: 'p99 latency' };
    const o = planned(await x.flow.plan(system, 'rollback', 'production', undefined, { alert }));
    const d = await x.flow.dismiss(bob, o.plan.id);
    expect(d.status).toBe('cancelled');
    const audit = await x.audit.recent('production', 10);
    expect(audit[0]).toMatchObject({ event: 'cancelled', actor: bob });
    expect(audit[0]?.message).toContain('dismissed');
    expect(audit[1]?.message).toContain('grafana');
  });

  it('bad input is a refusal naming what was wrong', async () => {
    const x = await setup();
    const o = await x.flow.plan({ surface: 'slack', userId: '', displayName: 'x' }, 'rollback', 'production');
    expect(o.ok).toBe(false);
    if (!o.ok) expect(o.refusal.message).toContain('userId');
    const groups = 'S0ONCALL' as unknown as string[];
    const g = expectStatus(await x.flow.confirm({ ...alice, groups }, 'plan_0123abcd'), 'refused');
    expect(g.refusal.message).toContain('groups');
    const c = expectStatus(await x.flow.confirm(alice, 'plan:../../etc'), 'refused');
    expect(c.refusal.code).toBe('invalid_input');
  });
});

describe('Flow.confirm', () => {
  it('enqueues the job with everything the worker needs and audits the confirm', async () => {
    const x = await setup();
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expect(await x.flow.attachMessage(o.plan.id, slackMsg)).toBe(true);
    const e = expectStatus(await x.flow.confirm(bob, o.plan.id), 'enqueued');
    expect(e.joined).toBe(false);
    expect(e.record.state).toBe(PlanState.enqueued);
    expect(e.record.jobId).toBe(e.jobId);
    expect(e.record.confirmedBy).toEqual(bob);
    const job = await x.job(e.jobId);
    expect(job).toEqual({
      action: 'rollback',
      planId: o.plan.id,
      projectId: 'proj_acme',
      environment: 'production',
      targetId: 'dep_3hd7xa',
      expectedCurrent: 'dep_4kq9wz',
      expectedRolledBack: false,
      domains: o.plan.affectedDomains.map((d) => d.hostname),
      requestedBy: bob,
      messages: [slackMsg],
      requestedAt: x.clock.now(),
    });
    const audit = await x.audit.recent('production', 10);
    expect(audit[0]).toMatchObject({ event: 'approved', actor: bob, jobId: e.jobId });
  });

  it('50 concurrent confirms make one job; everyone gets the same job id', async () => {
    const x = await setup();
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    const results = await Promise.all(Array.from({ length: 50 }, () => x.flow.confirm(alice, o.plan.id)));
    const jobIds = new Set<string>();
    let created = 0;
    for (const r of results) {
      const e = expectStatus(r, 'enqueued');
      jobIds.add(e.jobId);
      if (!e.joined) created += 1;
    }
    expect(created).toBe(1);
    expect(jobIds.size).toBe(1);
    expect(await x.jobs()).toHaveLength(1);
    expect((await x.audit.recent('production', 100)).filter((e) => e.event === 'approved')).toHaveLength(1);
    // a retried delivery later joins the same job
    const again = expectStatus(await x.flow.confirm(alice, o.plan.id), 'enqueued');
    expect(again).toMatchObject({ joined: true, jobId: [...jobIds][0] });
  });

  it('two replicas (own Redis connections, own queue producers) handling the same clicks make one job', async () => {
    const x = await setup();
    const redis2 = createRedis(redisUrl());
    const queue2 = new SwitchQueue({ redisUrl: redisUrl(), queueName: x.switchQueue.queueName });
    try {
      const replica = new Flow({
        platform: x.platform,
        queue: queue2,
        plans: new PlanStore({ redis: redis2, prefix: `${x.prefix}:`, clock: x.clock }),
        audit: new AuditLog(redis2, { prefix: x.prefix }),
        config: testConfig(),
        clock: x.clock,
      });
      const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? x.flow : replica).confirm(alice, o.plan.id)),
      );
      expect(results.filter((r) => r.status === 'enqueued' && !r.joined)).toHaveLength(1);
      expect(new Set(results.map((r) => (r.status === 'enqueued' ? r.jobId : r.status)))).toHaveProperty(
        'size',
        1,
      );
      expect(await x.jobs()).toHaveLength(1);
      expect(await replica.get(o.plan.id)).toEqual(await x.flow.get(o.plan.id));
    } finally {
      await queue2.close();
      await redis2.quit();
    }
  });

  it('a refused click changes nothing: no transition, nothing enqueued, one audit entry', async () => {
    const x = await setup({ environments: allowProd, platform: 'unkey' });
    const o = planned(await x.flow.plan(carol, 'rollback', 'production'));
    const before = await x.flow.get(o.plan.id);
    const r = expectStatus(await x.flow.confirm(carol, o.plan.id), 'refused');
    expect(r.refusal.code).toBe('forbidden');
    expect(r.refusal.message).toContain('environments.production.allow.slack.users');
    expect(await x.flow.get(o.plan.id)).toEqual(before);
    expect(await x.jobs()).toEqual([]);
    const audit = await x.audit.recent('production', 10);
    expect(audit[0]).toMatchObject({ event: 'refused', actor: carol, code: 'forbidden', planId: o.plan.id });
    // Discord member with a permitted role may act on the same plan
    const d = expectStatus(await x.flow.confirm({ ...dave, roles: ['333333333333'] }, o.plan.id), 'enqueued');
    expect((await x.job(d.jobId))?.requestedBy).toEqual(dave);
  });

  it('a real platform without an allow list refuses and says how to configure one', async () => {
    const x = await setup({ platform: 'vercel' });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    const r = expectStatus(await x.flow.confirm(alice, o.plan.id), 'refused');
    expect(r.refusal.message).toContain('has no allow list');
    expect(r.refusal.message).toMatch(
      /environments:\n {2}production:\n {4}allow:\n {6}slack:\n {8}users: \["U0ALICE"\]/,
    );
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.pending);
  });

  it('a plan made stale by a rollback elsewhere is not acted on and says what changed', async () => {
    const x = await setup();
    const o = planned(await x.flow.plan(alice, 'rollback', 'production', 'dep_2mc5ty'));
    await switchDirectly(x, 'rollback', 'production', 'dep_3hd7xa');
    const s = expectStatus(await x.flow.confirm(alice, o.plan.id), 'stale');
    expect(s.refusal.code).toBe('plan_stale');
    expect(s.refusal.message).toContain('now serves dep_3hd7xa, not dep_4kq9wz');
    expect(s.current).toMatchObject({ deploymentId: 'dep_3hd7xa', rolledBack: true });
    expect(s.current.deployment?.id).toBe('dep_3hd7xa');
    expect(s.record.state).toBe(PlanState.stale);
    expect(await x.jobs()).toEqual([]);
    // clicking again keeps saying stale
    expectStatus(await x.flow.confirm(bob, o.plan.id), 'stale');
    // a fresh plan for the same target starts from the new state
    const fresh = planned(await x.flow.replan(alice, o.plan.id));
    expect(fresh.plan.id).not.toBe(o.plan.id);
    expect(fresh.plan.current.id).toBe('dep_3hd7xa');
    expect(fresh.plan.target.id).toBe('dep_2mc5ty');
    expect(fresh.plan.rolledBack).toBe(true);
    expectStatus(await x.flow.confirm(alice, fresh.plan.id), 'enqueued');
  });

  it('a plan already carried out elsewhere is stale ("already done")', async () => {
    const x = await setup();
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    await switchDirectly(x, 'rollback', 'production', o.plan.target.id);
    const s = expectStatus(await x.flow.confirm(alice, o.plan.id), 'stale');
    expect(s.refusal.message).toMatch(/^Already done/);
    expect(s.refusal.context).toMatchObject({ alreadyDone: true });
    expect(await x.jobs()).toEqual([]);
  });

  it('an expired plan is not acted on', async () => {
    const x = await setup({ ttlMs: 60_000 });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    await x.clock.advance(59_999);
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.pending);
    await x.clock.advance(1);
    const e = expectStatus(await x.flow.confirm(alice, o.plan.id), 'expired');
    expect(e.message).toContain('expired');
    expect(e.record?.state).toBe(PlanState.expired);
    expect(await x.jobs()).toEqual([]);
    expect(expectStatus(await x.flow.approve(bob, o.plan.id), 'expired').planId).toBe(o.plan.id);
    // a new request for the same switch starts a new record
    const again = planned(await x.flow.plan(bob, 'rollback', 'production'));
    expect(again.created).toBe(true);
    expect(again.record.state).toBe(PlanState.pending);
  });

  it('a queue failure undoes the claim so the click can be retried', async () => {
    let failures = 1;
    const x = await setup({
      queue: (real) => ({
        async enqueue(data) {
          if (failures > 0) {
            failures -= 1;
            throw new Error('redis went away');
          }
          return real.enqueue(data);
        },
      }),
    });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    await expect(x.flow.confirm(alice, o.plan.id)).rejects.toThrow('redis went away');
    const after = await x.flow.get(o.plan.id);
    expect(after?.state).toBe(PlanState.pending);
    expect(after?.confirmedBy).toBeUndefined();
    expect((await x.audit.recent('production', 10)).map((e) => e.event)).toEqual(['requested']);
    const e = expectStatus(await x.flow.confirm(alice, o.plan.id), 'enqueued');
    expect(e.joined).toBe(false);
    expect(await x.jobs()).toHaveLength(1);
  });

  it('a plan id nobody knows reads as expired', async () => {
    const x = await setup();
    const e = expectStatus(await x.flow.confirm(alice, 'plan_000000000000000000000000'), 'expired');
    expect(e.record).toBeUndefined();
  });
});

describe('two-person rule', () => {
  const twoPerson = { production: { ...allowProd.production, twoPersonRule: true } };

  it('requester confirms, cannot approve; an unlisted person cannot approve; a second permitted person can', async () => {
    const x = await setup({ environments: twoPerson, platform: 'unkey' });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    const waiting = expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
    expect(waiting.record.confirmedBy).toEqual(alice);
    expect(await x.jobs()).toEqual([]);

    const before = await x.flow.get(o.plan.id);
    const self = expectStatus(await x.flow.approve(alice, o.plan.id), 'refused');
    expect(self.refusal.code).toBe('self_approval');
    expect(await x.flow.get(o.plan.id)).toEqual(before);

    const outsider = expectStatus(await x.flow.approve(carol, o.plan.id), 'refused');
    expect(outsider.refusal.code).toBe('forbidden');
    expect(await x.flow.get(o.plan.id)).toEqual(before);
    expect(await x.jobs()).toEqual([]);

    // confirming again while waiting keeps waiting
    expectStatus(await x.flow.confirm(bob, o.plan.id), 'awaiting_approval');

    const ok = expectStatus(await x.flow.approve(bob, o.plan.id), 'enqueued');
    expect(ok.joined).toBe(false);
    expect(ok.record.approvedBy).toEqual(bob);
    const job = await x.job(ok.jobId);
    expect(job?.requestedBy).toEqual(alice);
    expect(job?.approvedBy).toEqual(bob);
    // a second approve click joins
    expect(expectStatus(await x.flow.approve(bob, o.plan.id), 'enqueued').joined).toBe(true);

    const events = (await x.audit.recent('production', 20)).map(
      (e) => `${e.event}:${e.actor?.userId}:${e.code ?? ''}`,
    );
    expect(events).toEqual([
      'approved:U0BOB:',
      'refused:U0CAROL:forbidden',
      'refused:U0ALICE:self_approval',
      'requested:U0ALICE:',
      'requested:U0ALICE:',
    ]);
  });

  it('approving before anyone confirmed is refused and changes nothing', async () => {
    const x = await setup({ environments: twoPerson, platform: 'unkey' });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    const r = expectStatus(await x.flow.approve(bob, o.plan.id), 'refused');
    expect(r.refusal.code).toBe('invalid_input');
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.pending);
  });

  it('concurrent approvals by two permitted people make one job', async () => {
    const x = await setup({
      environments: {
        production: { twoPersonRule: true, allow: { slack: { users: ['U0ALICE', 'U0BOB', 'U0CAROL'] } } },
      },
    });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
    const results = await Promise.all([
      ...Array.from({ length: 25 }, () => x.flow.approve(bob, o.plan.id)),
      ...Array.from({ length: 25 }, () => x.flow.approve(carol, o.plan.id)),
    ]);
    expect(results.filter((r) => r.status !== 'enqueued')).toEqual([]);
    expect(results.filter((r) => r.status === 'enqueued' && !r.joined)).toHaveLength(1);
    expect(await x.jobs()).toHaveLength(1);
  });

  it('a plan that went stale while waiting for approval is not enqueued', async () => {
    const x = await setup({ environments: twoPerson });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
    await switchDirectly(x, 'rollback', 'production', 'dep_2mc5ty');
    const s = expectStatus(await x.flow.approve(bob, o.plan.id), 'stale');
    expect(s.current.deploymentId).toBe('dep_2mc5ty');
    expect(await x.jobs()).toEqual([]);
  });
});

describe('Flow.cancel', () => {
  it('the requester cancels; later clicks see it cancelled; nothing is enqueued', async () => {
    const x = await setup({ environments: allowProd, platform: 'unkey' });
    const o = planned(await x.flow.plan(carol, 'rollback', 'production'));
    // carol is not on the allow list but asked for it, so she may withdraw it
    const c = await x.flow.cancel(carol, o.plan.id);
    expect(c.status).toBe('cancelled');
    if (c.status === 'cancelled') expect(c.record.cancelledBy).toEqual(carol);
    expectStatus(await x.flow.confirm(alice, o.plan.id), 'cancelled');
    expect((await x.flow.cancel(alice, o.plan.id)).status).toBe('cancelled');
    expect(await x.jobs()).toEqual([]);
    const audit = await x.audit.recent('production', 10);
    expect(audit[0]).toMatchObject({ event: 'cancelled', actor: carol });
  });

  it('someone neither involved nor permitted cannot cancel', async () => {
    const x = await setup({ environments: allowProd, platform: 'unkey' });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    const r = await x.flow.cancel(carol, o.plan.id);
    expect(r.status).toBe('refused');
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.pending);
    // a permitted person who did not ask may cancel (dismissing an alert suggestion, say)
    expect((await x.flow.cancel(bob, o.plan.id)).status).toBe('cancelled');
  });

  it('the requester who is not permitted cannot cancel once someone else confirmed (two-person rule)', async () => {
    const x = await setup({ environments: { production: { ...allowProd.production, twoPersonRule: true } } });
    // carol (not permitted) asks; alice (permitted) asks for the same switch: one plan, carol's
    const o = planned(await x.flow.plan(carol, 'rollback', 'production'));
    expect(planned(await x.flow.plan(alice, 'rollback', 'production')).plan.id).toBe(o.plan.id);
    expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
    const r = await x.flow.cancel(carol, o.plan.id);
    expect(r.status).toBe('refused');
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.awaitingApproval);
    // the confirmer may still withdraw it
    expect((await x.flow.cancel(alice, o.plan.id)).status).toBe('cancelled');
  });

  it('a cancel after enqueue says the switch is already running', async () => {
    const x = await setup();
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    const e = expectStatus(await x.flow.confirm(alice, o.plan.id), 'enqueued');
    const c = await x.flow.cancel(alice, o.plan.id);
    expect(c.status).toBe('running');
    if (c.status === 'running') {
      expect(c.jobId).toBe(e.jobId);
      expect(c.message).toContain('already queued or running');
    }
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.enqueued);
  });

  it('cancel and confirm racing: exactly one wins', async () => {
    const x = await setup();
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    const [c, e] = await Promise.all([x.flow.cancel(alice, o.plan.id), x.flow.confirm(bob, o.plan.id)]);
    const state = (await x.flow.get(o.plan.id))?.state;
    if (state === PlanState.cancelled) {
      expect(c.status).toBe('cancelled');
      expect(e.status).toBe('cancelled');
      expect(await x.jobs()).toEqual([]);
    } else {
      expect(state).toBe(PlanState.enqueued);
      expect(e.status).toBe('enqueued');
      expect(c.status).toBe('running');
      expect(await x.jobs()).toHaveLength(1);
    }
  });
});

describe('Flow.deployments', () => {
  it('returns the snapshot, routing and recent audit of the environment', async () => {
    const x = await setup();
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    await x.flow.cancel(alice, o.plan.id);
    const d = await x.flow.deployments('prod');
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.environment).toBe('production');
    expect(d.snapshot.environment.currentDeploymentId).toBe('dep_4kq9wz');
    expect(d.routes.find((r) => r.hostname === 'shop.localhost')?.deploymentId).toBe('dep_4kq9wz');
    expect(d.recent.map((e) => e.event)).toEqual(['cancelled', 'requested']);
    expect(d.active).toBeUndefined();
    const bad = await x.flow.deployments('nope');
    expect(bad.ok).toBe(false);
  });
});
