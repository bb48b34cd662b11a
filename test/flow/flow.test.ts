import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startSwitchWorker } from '../../jobs/switch-worker.js';
import { AuditLog } from '../../src/audit.js';
import { ChatService } from '../../src/chat.js';
import { ManualClock, systemClock } from '../../src/clock.js';
import { type Config, fileConfigSchema } from '../../src/config.js';
import type { Domain, EnvironmentSnapshot } from '../../src/domain/types.js';
import { RefusalError } from '../../src/errors.js';
import type { ClickOutcome, PlanOutcome } from '../../src/flow.js';
import { Flow, flowDefaults } from '../../src/flow.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { PlanState, PlanStore } from '../../src/plan-store.js';
import type { DeployPlatform } from '../../src/platform/port.js';
import { UnkeyPlatform } from '../../src/platform/unkey/adapter.js';
import type { MessageRef, Progress } from '../../src/progress.js';
import { jobIdForPlan, SwitchQueue } from '../../src/queue.js';
import { createRedis, scanKeys } from '../../src/redis.js';
import { encodeAction } from '../../src/views/actions.js';
import { plainText } from '../../src/views/format.js';
import { confirmationView } from '../../src/views/model.js';
import { RecordingReporter } from '../jobs/fixtures/harness.js';
import { CapturedLog } from '../support/captured-log.js';
import { gate } from '../support/gate.js';
import { redisUrl } from '../support/redis.js';
import { startAcmeUnkey } from '../support/unkey.js';
import { viewText } from '../views/fixtures.js';
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

/**
 * The harness's platform with `edit` applied to every snapshot (a change the embedded platform cannot
 * make on demand: a domain added, a target reactivated by a running switch) and, with `onSnapshot`,
 * something done while a snapshot is read (a slow remote API).
 */
function editedPlatform(
  x: Harness,
  edit: (s: EnvironmentSnapshot) => EnvironmentSnapshot,
  onSnapshot?: () => Promise<void>,
): DeployPlatform {
  return new Proxy(x.platform, {
    get(target, prop, receiver) {
      if (prop === 'snapshot') {
        return async (environment: string) => {
          const snap = edit(await target.snapshot(environment));
          await onSnapshot?.();
          return snap;
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Another Flow on the harness's Redis, queue and clock: another platform view or config (a restart). */
/** The harness's Flow options (to build a Flow with some of them changed). */
function flowParts(x: Harness) {
  return {
    platform: x.platform,
    queue: x.switchQueue,
    plans: x.plans,
    audit: x.audit,
    config: testConfig(),
    clock: x.clock,
  };
}

function flowWith(
  x: Harness,
  over: { platform?: DeployPlatform; config?: Pick<Config, 'platform' | 'file'> } = {},
): Flow {
  return new Flow({
    platform: over.platform ?? x.platform,
    queue: x.switchQueue,
    plans: x.plans,
    audit: x.audit,
    config: over.config ?? testConfig(),
    clock: x.clock,
  });
}

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

  it("a person's /rollback that joined an alert's suggestion is recorded and shown beside it, and changes no rule", async () => {
    const x = await setup({ environments: { production: { ...allowProd.production, twoPersonRule: true } } });
    const chat = new ChatService({ flow: x.flow, clock: x.clock });
    const suggested = planned(await x.flow.plan(system, 'rollback', 'production'));
    const reply = await chat.command(alice, 'rollback', ['production']);
    expect(reply.planId).toBe(suggested.plan.id);
    expect(viewText(reply.view)).toContain('Suggested by Switchyard; asked for by Alice');
    await x.flow.plan(bob, 'rollback', 'production');
    await x.flow.plan(alice, 'rollback', 'production');
    const record = await x.flow.get(suggested.plan.id);
    expect(record?.requestedBy).toEqual(system);
    expect(record?.alsoAskedBy).toEqual([alice, bob]);
    expect(viewText(chat.confirmation(record ?? suggested.record))).toContain(
      'Suggested by Switchyard; asked for by Alice and Bob',
    );
    // Shown only: Bob confirms, and Alice, who asked too, may still approve (docs/permissions.md).
    expectStatus(await x.flow.confirm(bob, suggested.plan.id), 'awaiting_approval');
    expectStatus(await x.flow.approve(alice, suggested.plan.id), 'enqueued');
  });

  it('a plan made while another switch of the environment is queued says so at its top', async () => {
    const x = await setup();
    const chat = new ChatService({ flow: x.flow, clock: x.clock });
    const first = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expectStatus(await x.flow.confirm(alice, first.plan.id), 'enqueued');
    const other = await chat.command(bob, 'rollback', ['production', 'dep_2mc5ty']);
    expect(other.planId).not.toBe(first.plan.id);
    const top = other.view.blocks[0];
    expect(top?.type === 'text' ? top.spans.map((s) => s.text).join('') : top?.type).toBe(
      `A rollback to ${first.plan.target.id} is queued now (by Alice): this plan waits for it and will be out of date if it changes what is live on production.`,
    );
    // The same switch asked for again joins the queued one, shown as it: no warning about itself.
    const same = await chat.command(bob, 'rollback', ['production']);
    expect(same.planId).toBe(first.plan.id);
    expect(viewText(same.view)).not.toContain('is queued now');
  });

  it('an old Resume automatic deploys button, clicked once the environment is no longer rolled back, says nothing is left to resume', async () => {
    const x = await setup();
    const chat = new ChatService({ flow: x.flow, clock: x.clock });
    const current = (await x.flow.currentDeployment('production')) ?? '';
    const out = await chat.click(
      alice,
      encodeAction({ kind: 'promote', ref: { environment: 'production', deploymentId: current } }),
    );
    expect(out.outcome).toBe('refused');
    expect(out.ephemeral?.summary).toBe(
      `Already live: Automatic deploys are already on for production: nothing to resume. ${current} serves it, so there is nothing to promote either.`,
    );
    // Not the /promote usage, which read as a mistyped command.
    expect(out.ephemeral?.blocks.some((b) => b.type === 'usage')).toBe(false);
    // A typed /promote of the live deployment still gets its usage.
    const typed = await chat.command(alice, 'promote', [current]);
    expect(typed.view.blocks.some((b) => b.type === 'usage')).toBe(true);
  });

  it('an unknown environment lists the valid ones and stores nothing', async () => {
    const x = await setup();
    const o = await x.flow.plan(alice, 'rollback', 'staging');
    expect(o.ok).toBe(false);
    if (o.ok) return;
    expect(o.refusal.code).toBe('unknown_environment');
    expect(o.refusal.message).toContain('Valid environments: production, preview');
    expect(await scanKeys(x.redis, `${x.prefix}*`)).toEqual([]);
  });

  it('an unknown deployment lists recent ones', async () => {
    const x = await setup();
    const o = await x.flow.plan(alice, 'rollback', 'production', 'dep_nope');
    expect(o.ok).toBe(false);
    if (o.ok) return;
    expect(o.refusal.code).toBe('unknown_deployment');
    expect(o.refusal.message).toContain('dep_4kq9wz, dep_3hd7xa, dep_2mc5ty, dep_1ab3cd');
  });

  it('a deployment of another environment is refused as such, not as unknown, and nothing is stored', async () => {
    const x = await setup();
    // dep_p2fe8r exists: it is preview's
    const o = await x.flow.plan(alice, 'rollback', 'production', 'dep_p2fe8r');
    expect(o.ok).toBe(false);
    if (o.ok) return;
    expect(o.refusal.code).toBe('target_wrong_environment');
    expect(o.refusal.message).toContain('dep_p2fe8r belongs to preview, not production');
    expect(await scanKeys(x.redis, `${x.prefix}*`)).toEqual([]);
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

  it('/promote takes one argument: a second word gets usage, never a plan or "Unknown environment"', async () => {
    const x = await setup();
    await switchDirectly(x, 'rollback', 'production', 'dep_3hd7xa');
    const chat = new ChatService({ flow: x.flow, clock: x.clock });
    // Both orders of the two-word form no surface offers (usage line, Slack usage_hint, Discord's one
    // `target` option): `<environment> <deployment>` planned silently, `<deployment> <environment>`
    // said the deployment was an unknown environment.
    for (const args of [
      ['production', 'dep_4kq9wz'],
      ['dep_4kq9wz', 'production'],
    ]) {
      const reply = await chat.command(alice, 'promote', args);
      expect({ args, kind: reply.view.kind, visibility: reply.visibility, planId: reply.planId }).toEqual({
        args,
        kind: 'usage',
        visibility: 'ephemeral',
        planId: undefined,
      });
      expect(reply.view.summary).toMatch(
        /too many, so nothing was done\. .* Usage: \/promote <deployment-id \| environment>$/,
      );
    }
    expect(await scanKeys(x.redis, `${x.prefix}*`)).toEqual([]);
    // the one-word forms still plan
    expect((await chat.command(alice, 'promote', ['dep_4kq9wz'])).planId).toBeDefined();
    expect((await chat.command(alice, 'promote', ['production'])).planId).toBeDefined();
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

  it('a request after the target went to standby is a new plan saying so; the plan shown before still confirms', async () => {
    const x = await setup();
    // a fresh deployment goes live, so the previous one (the default rollback target) is running
    await x.platform.push({ environment: 'production' });
    for (let i = 0; i < 200 && x.clock.pending > 0; i++) await x.clock.advance(1_000);
    await x.platform.settle();
    const first = planned(await x.flow.plan(bob, 'rollback', 'production'));
    expect(first.plan.target.status).toBe('ready');
    expect(first.plan.targetStandby).toBe(false);

    // 31 minutes later the target has gone to standby (the platform's rule)
    await x.clock.advance(31 * 60_000);
    x.platform.maintain();
    const second = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expect(second.created).toBe(true);
    expect(second.plan.id).not.toBe(first.plan.id);
    expect(second.plan.target.id).toBe(first.plan.target.id);
    expect(second.record.plan.targetStandby).toBe(true);
    const shown = confirmationView(second.record.plan, { state: 'pending', now: x.clock.now() });
    expect(viewText(shown)).toContain('reactivation takes longer');

    // the same request on the same world joins the new plan
    const third = planned(await x.flow.plan(carol, 'rollback', 'production'));
    expect(third.created).toBe(false);
    expect(third.plan.id).toBe(second.plan.id);

    // the message posted first said "ready": its confirm still goes (the same switch; the job
    // reactivates the target first and reports that step), rather than sending people round again
    expectStatus(await x.flow.confirm(bob, first.plan.id), 'enqueued');
    expect(await x.jobs()).toHaveLength(1);
  });

  it('a request after a domain was added is a new plan listing it, and its job moves it', async () => {
    const x = await setup();
    let added: Domain[] = [];
    const platform = editedPlatform(x, (snap) => ({ ...snap, domains: [...snap.domains, ...added] }));
    const flow = flowWith(x, { platform });
    const first = planned(await flow.plan(alice, 'rollback', 'production'));
    added = [
      {
        hostname: 'api.shop.localhost',
        stickiness: 'live',
        environment: 'production',
        deploymentId: 'dep_4kq9wz',
      },
    ];
    const second = planned(await flow.plan(bob, 'rollback', 'production'));
    expect(second.created).toBe(true);
    expect(second.plan.id).not.toBe(first.plan.id);
    expect(second.plan.affectedDomains.map((d) => d.hostname)).toContain('api.shop.localhost');
    const shown = confirmationView(second.record.plan, { state: 'pending', now: x.clock.now() });
    expect(viewText(shown)).toContain('Affected domains (5)');

    const s = expectStatus(await flow.confirm(alice, first.plan.id), 'stale');
    expect(s.refusal.message).toContain('would now also move api.shop.localhost');
    const e = expectStatus(await flow.confirm(alice, second.plan.id), 'enqueued');
    expect((await x.job(e.jobId))?.domains).toContain('api.shop.localhost');
    expect(await x.jobs()).toHaveLength(1);
  });

  it('a request while the same switch is queued joins it, even once the switch reactivated its target', async () => {
    const x = await setup();
    let reactivated = false;
    const platform = editedPlatform(x, (snap) =>
      reactivated
        ? {
            ...snap,
            deployments: snap.deployments.map((d) => (d.id === 'dep_3hd7xa' ? { ...d, status: 'ready' } : d)),
          }
        : snap,
    );
    const flow = flowWith(x, { platform });
    const o = planned(await flow.plan(alice, 'rollback', 'production'));
    expect(o.plan.targetStandby).toBe(true);
    const e = expectStatus(await flow.confirm(alice, o.plan.id), 'enqueued');
    // the worker has reactivated the target; traffic has not moved yet
    reactivated = true;
    const again = planned(
      await flow.plan(bob, 'rollback', 'production', undefined, { messages: [slackMsg] }),
    );
    expect(again.created).toBe(false);
    expect(again.plan.id).toBe(o.plan.id);
    expect(again.record.state).toBe(PlanState.enqueued);
    expect(again.record.jobId).toBe(e.jobId);
    expect(again.record.messages).toEqual([slackMsg]);
    expect(await x.jobs()).toHaveLength(1);
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

  it("an alert suggestion shows the alert's http(s) link, and its notification text names the alert", async () => {
    const x = await setup();
    const chat = new ChatService({ flow: x.flow, clock: x.clock });
    const link = 'https://grafana.example.com/d/checkout?from=now-1h&to=now';
    const alert = { source: 'grafana', title: 'p99 latency', url: link };
    const o = planned(await x.flow.plan(system, 'rollback', 'production', undefined, { alert }));
    const view = chat.confirmation(o.record);
    expect(viewText(view)).toContain(`Alert: ${link}`);
    expect(view.summary).toMatch(/^Alert from grafana: p99 latency\. Roll back production to /);
    // What is not an http(s) URL a person can open is not shown.
    for (const url of ['javascript:alert(1)', '/d/checkout', 'not a link']) {
      const record = { ...o.record, alert: { ...alert, url } };
      expect(viewText(chat.confirmation(record))).not.toContain('Alert: ');
    }
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

describe('Flow.replan of an alert suggestion after the platform moved (the fresh plan has another id)', () => {
  const alert = {
    id: 'a1',
    source: 'generic',
    title: 'Checkout 5xx',
    status: 'firing' as const,
    startedAt: 1,
  };

  /** An alert's suggestion listing `a1` that expired unclicked; with `move`, then a deploy went live. */
  async function expiredSuggestion(x: Harness, move: boolean) {
    const o = planned(await x.flow.plan(system, 'rollback', 'production', 'dep_3hd7xa', { alert }));
    expect(await x.plans.groupAlert(o.plan.id, 'a1', alert, [])).toBeDefined();
    await x.clock.advance(3_600_000 + 1_000);
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.expired);
    if (move) {
      const pushed = await x.platform.push({ environment: 'production' });
      for (let i = 0; i < 200 && x.clock.pending > 0; i++) await x.clock.advance(1_000);
      await x.platform.settle();
      expect((await x.platform.snapshot('production')).environment.currentDeploymentId).toBe(pushed.id);
    }
    return o;
  }

  it('the closed record points at the fresh plan, which lists its alerts; a fresh plan under the same id points nowhere', async () => {
    const x = await setup();
    const o = await expiredSuggestion(x, true);
    const fresh = planned(await x.flow.replan(alice, o.plan.id));
    expect(fresh.plan.id).not.toBe(o.plan.id);
    expect(fresh.record.alerts?.map((a) => a.id)).toEqual(['a1']);
    expect((await x.flow.get(o.plan.id))?.replannedAs).toEqual([fresh.plan.id]);
    expect(await x.flow.replannedAs(o.plan.id)).toEqual([fresh.plan.id]);
    expect(await x.flow.replannedAs(fresh.plan.id)).toEqual([]);

    const y = await expiredSuggestion(x, false);
    const same = planned(await x.flow.replan(alice, y.plan.id));
    expect(same.plan.id).toBe(y.plan.id);
    expect(await x.flow.replannedAs(y.plan.id)).toEqual([]);
  });

  it('an alert that resolved on the closed record while its fresh plan was being made (the resolution found no pointer yet) is resolved on the fresh plan too', async () => {
    const x = await setup();
    const o = await expiredSuggestion(x, true);
    const real = x.plans.carryAlerts.bind(x.plans);
    let resolvedAt: number | undefined;
    x.plans.carryAlerts = async (...args) => {
      // Another replica's RESOLVED marks the closed record now, after replan read it, and looks for
      // the closed record's fresh plans before the pointer is written: it finds none.
      resolvedAt = x.clock.now();
      expect(await x.plans.resolveAlert(o.plan.id, 'a1', resolvedAt)).toBe(PlanState.expired);
      expect(await x.flow.replannedAs(o.plan.id)).toEqual([]);
      return real(...args);
    };
    const fresh = planned(await x.flow.replan(alice, o.plan.id));
    expect(fresh.plan.id).not.toBe(o.plan.id);
    expect(resolvedAt).toBeDefined();
    expect(fresh.record.alerts?.map((a) => ({ id: a.id, resolvedAt: a.resolvedAt }))).toEqual([
      { id: 'a1', resolvedAt },
    ]);
  });
});

describe('Flow.replan of a promote', () => {
  /** A push that builds and takes its state (live, or held back while rolled back). */
  async function pushed(x: Harness): Promise<string> {
    const d = await x.platform.push({ environment: 'production' });
    for (let i = 0; i < 200 && x.clock.pending > 0; i++) await x.clock.advance(1_000);
    await x.platform.settle();
    return d.id;
  }
  async function switched(x: Harness, action: 'rollback' | 'promote', targetId: string): Promise<void> {
    const req = { environment: 'production', targetId };
    await (action === 'rollback' ? x.platform.rollback(req) : x.platform.promote(req));
    for (let i = 0; i < 200 && x.clock.pending > 0; i++) await x.clock.advance(1_000);
    await x.platform.settle();
  }

  it('asked for by its environment, a fresh plan finds the newest ready deployment again: never one older than what went live since', async () => {
    const x = await setup();
    await switched(x, 'rollback', 'dep_3hd7xa');
    const fix = await pushed(x); // held back: production is rolled back
    const o = planned(await x.flow.plan(alice, 'promote', 'production'));
    expect(o.plan.target.id).toBe(fix);
    // Bob promotes the fix himself; a newer push then goes live on its own.
    await switched(x, 'promote', fix);
    const newer = await pushed(x);
    expect((await x.platform.snapshot('production')).environment.currentDeploymentId).toBe(newer);
    expect(expectStatus(await x.flow.confirm(alice, o.plan.id), 'stale').refusal.code).toBe('plan_stale');
    // "Make a fresh plan": not a promote of the older fix, which would move production back.
    const fresh = await x.flow.replan(alice, o.plan.id);
    expect(fresh.ok ? fresh.plan.target.id : fresh.refusal.code).toBe('target_is_current');
  });

  it('asked for by its environment by someone joining a plan asked for by id, a fresh plan finds the newest again', async () => {
    const x = await setup();
    await switched(x, 'rollback', 'dep_3hd7xa');
    const fix = await pushed(x);
    const byId = planned(await x.flow.plan(alice, 'promote', fix));
    const byEnv = planned(await x.flow.plan(bob, 'promote', 'production'));
    expect(byEnv.plan.id).toBe(byId.plan.id);
    expect(byEnv.created).toBe(false);
    await switched(x, 'promote', fix);
    await pushed(x);
    expect(expectStatus(await x.flow.confirm(bob, byEnv.plan.id), 'stale').refusal.code).toBe('plan_stale');
    // Bob asked for "production": his fresh plan must not move production back to the older fix.
    const fresh = await x.flow.replan(bob, byEnv.plan.id);
    expect(fresh.ok ? fresh.plan.target.id : fresh.refusal.code).toBe('target_is_current');
  });

  it('asked for by a deployment id, a fresh plan keeps that deployment', async () => {
    const x = await setup();
    await switched(x, 'rollback', 'dep_3hd7xa');
    const fix = await pushed(x);
    const o = planned(await x.flow.plan(alice, 'promote', fix));
    await pushed(x); // another push, held back too: the plan is not stale, but let it expire
    await x.clock.advance(3_600_000 + 1_000);
    const fresh = planned(await x.flow.replan(alice, o.plan.id));
    expect(fresh.plan.target.id).toBe(fix);
  });
});

describe('Flow.confirm', () => {
  it('keeps a Discord confirmer’s unique username on the plan, the job and the audit (shown beside a nickname)', async () => {
    const x = await setup();
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    const nicknamed = {
      surface: 'discord' as const,
      userId: '222222222222222222',
      displayName: 'alice',
      username: 'mallory',
    };
    const e = expectStatus(await x.flow.confirm(nicknamed, o.plan.id), 'enqueued');
    expect(e.record.confirmedBy).toEqual(nicknamed);
    expect((await x.job(e.jobId))?.requestedBy).toEqual(nicknamed);
    const audit = await x.audit.recent('production', 5);
    const approved = audit.find((a) => a.event === 'approved');
    expect(approved?.actor).toEqual(nicknamed);
    // The entry's words name the unique username beside the nickname too.
    expect(approved?.message).toMatch(/^alice \(@mallory\) confirmed the rollback/);
  });

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
      // bob is let in by his user id (no allow list on the local platform): no group or role
      grants: {},
      messages: [slackMsg],
      requestedAt: x.clock.now(),
      // This request: the record's generation and the revision of the confirm's claim.
      requestId: expect.stringMatching(new RegExp(`^${e.record.generation}\\.\\d+$`)),
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
    // Audited apart from the history (which says only that a plan was asked for).
    const refusals = await x.audit.refusals('production', 10);
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({
      event: 'refused',
      actor: carol,
      code: 'forbidden',
      planId: o.plan.id,
    });
    expect((await x.audit.recent('production', 10)).map((e) => e.event)).toEqual(['requested']);
    // Discord member with a permitted role may act on the same plan
    const d = expectStatus(await x.flow.confirm({ ...dave, roles: ['333333333333'] }, o.plan.id), 'enqueued');
    expect((await x.job(d.jobId))?.requestedBy).toEqual(dave);
  });

  it('a person pressing a button they may not press is audited once per plan and reason, apart from the history', async () => {
    const x = await setup({ environments: allowProd, platform: 'unkey' });
    const log = new CapturedLog();
    const flow = new Flow({
      platform: x.platform,
      queue: x.switchQueue,
      plans: x.plans,
      audit: x.audit,
      config: testConfig(allowProd, 'unkey'),
      clock: x.clock,
      logger: log.logger,
    });
    const o = planned(await flow.plan(alice, 'rollback', 'production'));
    // Carol (a partner in a shared channel, on no allow list) presses Confirm again and again.
    const CLICKS = 105;
    for (let n = 0; n < CLICKS; n++) {
      expect(expectStatus(await flow.confirm(carol, o.plan.id), 'refused').refusal.code).toBe('forbidden');
    }
    // A Discord member without a permitted role, once.
    expectStatus(await flow.confirm(dave, o.plan.id), 'refused');
    expectStatus(await flow.confirm(alice, o.plan.id), 'enqueued');

    // The history holds what happened, and only that: no refusal can push it out of a reader's window
    // (/deployments, the notices' 100 newest) or out of the stream's bound.
    expect((await x.audit.recent('production', 200)).map((e) => `${e.event}:${e.actor?.userId}`)).toEqual([
      'approved:U0ALICE',
      'requested:U0ALICE',
    ]);
    // Each person's refusal is recorded once; every click was answered and logged, repeats counted.
    expect(
      (await x.audit.refusals('production', 200)).map((e) => `${e.event}:${e.actor?.userId}:${e.code}`),
    ).toEqual([`refused:${dave.userId}:forbidden`, 'refused:U0CAROL:forbidden']);
    const carols = log.lines.filter((l) => l.msg === 'click refused' && l.userId === carol.userId);
    expect(carols).toHaveLength(CLICKS);
    expect(carols.map((l) => l.audited)).toEqual([true, ...Array(CLICKS - 1).fill(false)]);
    expect(carols.at(-1)?.times).toBe(CLICKS);

    // /deployments shows the history, with at most a few refusals beside it (never in its place).
    const d = await flow.deployments('production');
    if (!d.ok) throw new Error(d.refusal.message);
    expect(d.recent.map((e) => `${e.event}:${e.actor?.userId}`)).toEqual([
      'approved:U0ALICE',
      'requested:U0ALICE',
    ]);
    expect(d.refusals.map((e) => `${e.event}:${e.actor?.userId}`)).toEqual([
      `refused:${dave.userId}`,
      'refused:U0CAROL',
    ]);
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

  it('a plan made on another platform (PLATFORM local → unkey, restart) is refused as such, not as "traffic moved"', async () => {
    const allowAlice = { production: { allow: { slack: { users: ['U0ALICE'] } } } };
    const x = await setup({ environments: allowAlice });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expect(o.plan.projectId).toBe('proj_acme');
    const key = 'unkey_3ZflowPlatformSwitchRootKey0123';
    const env = { project: 'acme', app: 'api', environment: 'production' } as const;
    const unkeyClock = new ManualClock();
    const server = await startAcmeUnkey(key, { clock: unkeyClock });
    const platform = new UnkeyPlatform({
      environments: { production: env },
      client: { baseUrl: server.url, rootKey: key, timeoutMs: 5_000 },
      clock: unkeyClock,
    });
    try {
      for (let i = 0; i < 3; i++) {
        server.push({ ...env, branch: 'main' });
        await unkeyClock.advance(60_000);
      }
      const unkey = flowWith(x, { platform, config: testConfig(allowAlice, 'unkey') });
      const chat = new ChatService({ flow: unkey, clock: x.clock });
      const reply = await chat.click(alice, `sy1:confirm:${o.plan.id}`);
      expect(await x.jobs()).toEqual([]);
      const s = expectStatus(await unkey.confirm(alice, o.plan.id), 'stale');
      expect(s.refusal).toMatchObject({
        code: 'plan_stale',
        message:
          'This plan was made for project proj_acme; Switchyard now acts on project acme on the unkey platform (its platform or project was changed in the configuration since), whose production is not the environment this plan showed. Ask for a fresh plan.',
        context: { expectedProject: 'proj_acme', project: 'acme', platform: 'unkey' },
      });
      expect(s.record.state).toBe(PlanState.stale);
      const text = reply.update ? viewText(reply.update) : '';
      expect(text).toContain('This plan was made for project proj_acme');
      expect(text).not.toContain('Traffic moved');
      // a fresh plan is one of the platform in force
      const fresh = planned(await unkey.plan(alice, 'rollback', 'production'));
      expect(fresh.plan.projectId).toBe('acme');
    } finally {
      await platform.close();
      await server.close();
    }
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

  it('a plan joined near the end of its hour is audited, when it expires, with the plan time a click states (not the span since it was made)', async () => {
    const x = await setup();
    const first = planned(await x.flow.plan(alice, 'rollback', 'production'));
    await x.clock.advance(3_600_000 - 10_000);
    expect(planned(await x.flow.plan(bob, 'rollback', 'production')).created).toBe(false); // restarts the hour
    await x.clock.advance(3_600_000 + 1_000);
    expect((await x.flow.expireDue()).map((r) => r.plan.id)).toEqual([first.plan.id]);
    const click = expectStatus(await x.flow.confirm(alice, first.plan.id), 'expired');
    expect(click.message).toContain('valid for 60 minutes');
    const expiry = (await x.audit.recent('production', 10)).find((a) => a.code === 'expired');
    expect(expiry?.message).toContain('within 60 minutes');
  });

  it('a confirm whose platform read outlasts the plan is expired, not queued, and the expiry is audited', async () => {
    const x = await setup({ ttlMs: 60_000 });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    await x.clock.advance(59_999);
    // a platform whose snapshot takes 5 s (a remote API): the plan's time runs out meanwhile
    const slow = flowWith(x, {
      platform: editedPlatform(
        x,
        (snap) => snap,
        () => x.clock.advance(5_000),
      ),
    });
    const e = expectStatus(await slow.confirm(alice, o.plan.id), 'expired');
    expect(e.record?.state).toBe(PlanState.expired);
    expect(e.record?.confirmedBy).toBeUndefined();
    expect(await x.jobs()).toEqual([]);
    const audit = await x.audit.recent('production', 10);
    expect(audit.map((a) => `${a.event}:${a.code ?? ''}`)).toEqual(['cancelled:expired', 'requested:']);
    expect(audit[0]?.actor).toBeUndefined();
    expect(audit[0]?.message).toContain('nobody confirmed the rollback to dep_3hd7xa within 1 minutes');
  });

  it('writes which request each requested entry is: asked, suggested (with its alert) or confirmed', async () => {
    const x = await setup({ environments: { production: { twoPersonRule: true } } });
    const asked = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expectStatus(await x.flow.confirm(alice, asked.plan.id), 'awaiting_approval');
    await x.flow.cancel(alice, asked.plan.id);
    planned(
      await x.flow.plan(system, 'rollback', 'production', 'dep_2mc5ty', {
        alert: { source: 'grafana', title: 'p99 latency' },
      }),
    );
    const requested = (await x.audit.recent('production', 10)).filter((e) => e.event === 'requested');
    expect(requested.map((e) => [e.stage, e.alert])).toEqual([
      ['suggested', { title: 'p99 latency', source: 'grafana' }],
      ['confirmed', undefined],
      ['asked', undefined],
    ]);
  });

  it('a two-person confirm whose platform read outlasts the plan is expired, not awaiting approval', async () => {
    const x = await setup({ ttlMs: 60_000, environments: { production: { twoPersonRule: true } } });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    await x.clock.advance(59_999);
    const slow = flowWith(x, {
      platform: editedPlatform(
        x,
        (snap) => snap,
        () => x.clock.advance(5_000),
      ),
      config: testConfig({ production: { twoPersonRule: true } }),
    });
    expectStatus(await slow.confirm(alice, o.plan.id), 'expired');
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.expired);
  });

  it('a queue failure undoes the claim so the click can be retried, and the audit says so', async () => {
    let failures = 1;
    const x = await setup({
      ttlMs: 60_000,
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
    expect(await x.jobs()).toEqual([]);
    // The confirm was audited before enqueueing; the entry after it says it was not queued.
    const audit = await x.audit.recent('production', 10);
    expect(audit.map((e) => `${e.event}:${e.code ?? ''}`)).toEqual([
      'failed:enqueue_failed',
      'approved:',
      'requested:',
    ]);
    expect(audit[0]).toMatchObject({ actor: alice, planId: o.plan.id, jobId: audit[1]?.jobId });
    expect(audit[0]?.message).toBe(
      'the rollback to dep_3hd7xa confirmed by Alice could not be queued (redis went away); the plan is open again: confirm again to retry',
    );
    const e = expectStatus(await x.flow.confirm(alice, o.plan.id), 'enqueued');
    expect(e.joined).toBe(false);
    expect(await x.jobs()).toHaveLength(1);
    expect((await x.audit.recent('production', 10)).map((a) => a.event)).toEqual([
      'approved',
      'failed',
      'approved',
      'requested',
    ]);
  });

  it('a queue refusing the job data (its schema) is a refusal in words, never a thrown ZodError; the claim is undone', async () => {
    // A queue whose schema refuses what this Flow's accepts (a producer of another version): its zod
    // error must reach the person as the field and what was expected, and the audit likewise.
    const stricter = z.object({ domains: z.array(z.string()).max(1) });
    const x = await setup({
      queue: (real) => ({
        async enqueue(data) {
          stricter.parse(data);
          return real.enqueue(data);
        },
      }),
    });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    const n = o.plan.affectedDomains.length;
    expect(n).toBeGreaterThan(1);
    const r = expectStatus(await x.flow.confirm(alice, o.plan.id), 'refused');
    const issue = `domains: got ${n} items, expected a list of at most 1 item`;
    expect(r.refusal).toMatchObject({
      code: 'invalid_input',
      message: `This rollback of production cannot be queued: ${issue}. Nothing was changed. Ask for a fresh plan with /rollback production.`,
    });
    expect(r.record?.state).toBe(PlanState.pending);
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.pending);
    expect(await x.jobs()).toEqual([]);
    const audit = await x.audit.recent('production', 10);
    expect(audit.map((e) => `${e.event}:${e.code ?? ''}`)).toEqual([
      'failed:enqueue_failed',
      'approved:',
      'requested:',
    ]);
    expect(audit[0]?.message).toBe(
      `the rollback to dep_3hd7xa confirmed by Alice could not be queued (${issue}); the queue refuses this switch as planned, so retrying cannot help: ask for a fresh plan`,
    );
  });

  it('a confirm that could not be queued and then lapses is audited as expired when /deployments is read', async () => {
    const x = await setup({
      ttlMs: 60_000,
      queue: () => ({
        enqueue: () => Promise.reject(new Error('redis went away')),
      }),
    });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    await expect(x.flow.confirm(alice, o.plan.id)).rejects.toThrow('redis went away');
    await x.clock.advance(60_000);
    const d = await x.flow.deployments('production');
    if (!d.ok) throw new Error(d.refusal.message);
    expect(d.recent.map((e) => `${e.event}:${e.code ?? ''}`)).toEqual([
      'cancelled:expired',
      'failed:enqueue_failed',
      'approved:',
      'requested:',
    ]);
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.expired);
  });

  it('lists the confirm (approved) before the worker started, however late the queue answers', async () => {
    const reporter = new RecordingReporter();
    const x = await setup({
      queue: (real) => ({
        enqueue: async (data) => {
          const r = await real.enqueue(data);
          // The answer reaches this process late: the worker has already begun the switch.
          await reporter.waitFor((p) => p.jobId === r.jobId && p.steps.some((s) => s.step === 'validating'));
          return r;
        },
        progress: (id) => real.progress(id),
      }),
    });
    x.clock.set(Date.now());
    const workerRedis = createRedis(redisUrl());
    const worker = startSwitchWorker({
      redisUrl: redisUrl(),
      queueName: x.switchQueue.queueName,
      platform: x.platform,
      reporter,
      clock: systemClock,
      verify: { timeoutMs: 10_000, intervalMs: 5 },
      lockDurationMs: 10_000,
      concurrency: 1,
      logger: silentLogger,
      audit: new AuditLog(workerRedis, { prefix: x.prefix }),
    });
    try {
      await worker.worker.waitUntilReady();
      const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
      // (The worker reports to the messages following the job.)
      await x.flow.attachMessage(o.plan.id, { surface: 'console', channel: 'ops', messageId: 'm1' });
      const e = expectStatus(await x.flow.confirm(alice, o.plan.id), 'enqueued');
      // The local platform's operation moves on the harness's manual clock.
      let ended = false;
      const done = reporter
        .waitFor((p) => p.jobId === e.jobId && p.outcome !== undefined)
        .finally(() => {
          ended = true;
        });
      while (!ended) {
        if (x.clock.pending > 0) await x.clock.advance(1_000);
        else await new Promise<void>((r) => setImmediate(r));
      }
      expect((await done).outcome).toBe('succeeded');
    } finally {
      await worker.close();
      await workerRedis.quit();
    }
    const order = (await x.audit.recent('production', 100)).reverse().map((a) => a.event);
    expect(order).toEqual(['requested', 'approved', 'started', 'succeeded']);
  });

  it('a click racing the winning confirm gets its job id but makes no job ahead of the approval', async () => {
    let entered!: () => void;
    const claimed = new Promise<void>((resolve) => {
      entered = resolve;
    });
    let release!: () => void;
    let calls = 0;
    const x = await setup({
      queue: (real) => ({
        enqueue(data) {
          calls += 1;
          if (calls > 1) return real.enqueue(data);
          entered();
          return new Promise<void>((resolve) => {
            release = resolve;
          }).then(() => real.enqueue(data));
        },
      }),
    });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    const confirming = x.flow.confirm(alice, o.plan.id);
    await claimed; // the winner claimed the plan and audited the approval; the queue has not answered
    expect((await x.audit.recent('production', 10)).map((e) => e.event)).toEqual(['approved', 'requested']);
    const late = expectStatus(await x.flow.confirm(bob, o.plan.id), 'enqueued');
    expect(late.joined).toBe(true);
    expect(calls).toBe(1);
    expect(await x.jobs()).toEqual([]);
    release();
    const won = expectStatus(await confirming, 'enqueued');
    expect(won).toMatchObject({ joined: false, jobId: late.jobId });
    expect(await x.jobs()).toHaveLength(1);
    expect((await x.audit.recent('production', 10)).filter((e) => e.event === 'approved')).toHaveLength(1);
  });

  it('a message attached while the winning confirm is still queueing the switch reaches its job', async () => {
    const queueing = gate();
    const x = await setup({
      queue: (real) => ({
        enqueue: async (data) => {
          await queueing.wait();
          return real.enqueue(data);
        },
        addMessages: (jobId, refs) => real.addMessages(jobId, refs),
        progress: (jobId) => real.progress(jobId),
      }),
    });
    const o = planned(
      await x.flow.plan(alice, 'rollback', 'production', undefined, { messages: [slackMsg] }),
    );
    const confirming = x.flow.confirm(alice, o.plan.id);
    await queueing.reached; // claimed and audited; the job is being added, its id not stored yet
    // Bob's /rollback for the same switch, posted on another replica, is attached now.
    const bobs: MessageRef = { surface: 'slack', channel: 'C0INCIDENT', messageId: '1700000000.000200' };
    expect(await x.flow.attachMessage(o.plan.id, bobs)).toBe(true);
    queueing.open();
    const e = expectStatus(await confirming, 'enqueued');
    // The job follows both messages: its worker edits Bob's message too.
    expect(await x.switchQueue.messages(e.jobId)).toEqual(expect.arrayContaining([slackMsg, bobs]));
    // A message attached after the job id is stored is handed over by the attach itself.
    const carols: MessageRef = { surface: 'discord', channel: '223344556677889900', messageId: '3' };
    expect(await x.flow.attach(o.plan.id, carols)).toEqual({ attached: true, jobId: e.jobId });
    expect(await x.switchQueue.messages(e.jobId)).toEqual(expect.arrayContaining([slackMsg, bobs, carols]));
  });

  it('a plan id nobody knows reads as expired', async () => {
    const x = await setup();
    const e = expectStatus(await x.flow.confirm(alice, 'plan_000000000000000000000000'), 'expired');
    expect(e.record).toBeUndefined();
  });
});

/**
 * A Flow on the harness's Redis, queue and clock (logging to `log`) whose first `times` writes of a job
 * id on a plan fail as a dropped Redis connection does; `failed()` counts them.
 */
function jobIdWritesFail(x: Harness, times: number, log: CapturedLog): { flow: Flow; failed: () => number } {
  let failed = 0;
  const plans = overriding(x.plans, 'transition', (transition) => (planId, from, to, patch, ...rest) => {
    if (patch?.jobId !== undefined && failed < times) {
      failed += 1;
      return Promise.reject(new Error('Connection is closed.'));
    }
    return transition(planId, from, to, patch, ...rest);
  });
  const flow = new Flow({
    platform: x.platform,
    queue: x.switchQueue,
    plans,
    audit: x.audit,
    config: testConfig(),
    clock: x.clock,
    logger: log.logger,
  });
  return { flow, failed: () => failed };
}

describe('a switch queued whose job id could not be written on its plan (Redis failed right after the enqueue)', () => {
  it('the click is answered as queued, never as a fault, and the next read stores the job id', async () => {
    const x = await setup();
    const log = new CapturedLog();
    const { flow, failed } = jobIdWritesFail(x, 1, log);
    const o = planned(await flow.plan(alice, 'rollback', 'production'));
    const e = expectStatus(await flow.confirm(alice, o.plan.id), 'enqueued');
    expect(failed()).toBe(1);
    expect(e).toMatchObject({ joined: false, jobId: jobIdForPlan(o.plan.id) });
    expect(await x.jobs()).toHaveLength(1);
    // Logged at warn with the plan and the job; the approval was queued, so no `failed` entry.
    expect(
      log.lines.filter((l) => l.level === 40).map((l) => ({ msg: l.msg, planId: l.planId, jobId: l.jobId })),
    ).toEqual([{ msg: expect.stringContaining('could not be stored'), planId: o.plan.id, jobId: e.jobId }]);
    expect((await x.audit.recent('production', 10)).map((a) => a.event)).toEqual(['approved', 'requested']);
    expect((await x.plans.get(o.plan.id))?.jobId).toBeUndefined();
    // The next read of the plan in this process (a click, a /rollback, a progress lookup) stores it.
    const read = await flow.get(o.plan.id);
    expect({ state: read?.state, jobId: read?.jobId }).toEqual({ state: PlanState.enqueued, jobId: e.jobId });
    expect((await x.plans.get(o.plan.id))?.jobId).toBe(e.jobId);
    const again = expectStatus(await flow.confirm(bob, o.plan.id), 'enqueued');
    expect(again).toMatchObject({ joined: true, jobId: e.jobId });
    expect(await x.jobs()).toHaveLength(1);
  });

  it("until it is stored, the job's progress is the plan's in this process, and a message attached meanwhile follows the job", async () => {
    const x = await setup();
    const { flow, failed } = jobIdWritesFail(x, 2, new CapturedLog());
    const o = planned(await flow.plan(alice, 'rollback', 'production'));
    const e = expectStatus(await flow.confirm(alice, o.plan.id), 'enqueued');
    // The write fails again when the click's answer reads the job's progress: it is still this plan's.
    expect(await flow.jobProgress(e.jobId)).toMatchObject({ jobId: e.jobId, planId: o.plan.id });
    expect(failed()).toBe(2);
    expect((await x.plans.get(o.plan.id))?.jobId).toBeUndefined();
    // A /rollback joining the switch, posted now, follows the job and learns which one (id stored now).
    expect(await flow.attach(o.plan.id, slackMsg)).toEqual({ attached: true, jobId: e.jobId });
    expect(await x.switchQueue.messages(e.jobId)).toContainEqual(slackMsg);
    expect((await x.plans.get(o.plan.id))?.jobId).toBe(e.jobId);
  });

  it('another replica, which cannot tell the job is this claim’s, joins it and stores its id once the claim counts as abandoned', async () => {
    const x = await setup();
    const { flow } = jobIdWritesFail(x, 1, new CapturedLog());
    const o = planned(await flow.plan(alice, 'rollback', 'production'));
    const e = expectStatus(await flow.confirm(alice, o.plan.id), 'enqueued');
    const other = flowWith(x);
    const joined = expectStatus(await other.confirm(bob, o.plan.id), 'enqueued');
    expect(joined).toMatchObject({ joined: true, jobId: e.jobId });
    expect((await other.get(o.plan.id))?.jobId).toBeUndefined();
    await x.clock.advance(60_000);
    expect((await other.get(o.plan.id))?.jobId).toBe(e.jobId);
    expect(await x.jobs()).toHaveLength(1);
  });
});

describe('two-person rule', () => {
  const twoPerson = { production: { ...allowProd.production, twoPersonRule: true } };

  it('a click on a confirmed plan that expired waiting for approval says so (not "was not acted on")', async () => {
    const x = await setup({ environments: twoPerson, platform: 'unkey', ttlMs: 60_000 });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
    await x.clock.advance(60_000);
    const late = expectStatus(await x.flow.approve(bob, o.plan.id), 'expired');
    expect(late.message).toBe(
      `This plan expired at ${new Date(late.record?.expiresAt ?? 0).toISOString().slice(0, 16).replace('T', ' ')} UTC (plans are valid for 1 minutes after they were last asked for) waiting for a second permitted person to approve the rollback Alice confirmed; nothing was switched. Ask for a fresh plan.`,
    );
    expect(expectStatus(await x.flow.confirm(carol, o.plan.id), 'expired').message).toBe(late.message);
    expect(await x.jobs()).toEqual([]);
  });

  it('each self-approval is told by what the clicker did, names the third person needed, and the way out it offers works', async () => {
    const x = await setup({ environments: twoPerson, platform: 'unkey' });
    const o = planned(await x.flow.plan(bob, 'rollback', 'production'));
    expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
    const wayOut = `If nobody else is around: Cancel it, then one of you asks again (/rollback production ${o.plan.target.id}) and confirms it alone, and the other approves.`;
    const confirmer = expectStatus(await x.flow.approve(alice, o.plan.id), 'refused');
    expect(confirmer.refusal).toMatchObject({
      code: 'self_approval',
      message: `Alice confirmed this rollback of production, which Bob asked for, so someone other than Bob and Alice must approve it (production's two-person rule). ${wayOut}`,
    });
    // Bob only asked: told so, not that it is "their own request" to approve.
    const asker = expectStatus(await x.flow.approve(bob, o.plan.id), 'refused');
    expect(asker.refusal).toMatchObject({
      code: 'self_approval',
      message: `Bob asked for this rollback of production and Alice confirmed it, so someone other than Bob and Alice must approve it (production's two-person rule). ${wayOut}`,
    });
    expect(await x.jobs()).toEqual([]);
    // The way out, under the same rule: a request Alice asks for and confirms alone, Bob approves.
    expect((await x.flow.cancel(bob, o.plan.id)).status).toBe('cancelled');
    const again = planned(await x.flow.plan(alice, 'rollback', 'production', o.plan.target.id));
    expectStatus(await x.flow.confirm(alice, again.plan.id), 'awaiting_approval');
    const alone = expectStatus(await x.flow.approve(alice, again.plan.id), 'refused');
    expect(alone.refusal.message).toBe(
      "Alice asked for and confirmed this rollback of production, so someone other than Alice must approve it (production's two-person rule).",
    );
    expectStatus(await x.flow.approve(bob, again.plan.id), 'enqueued');
    expect(await x.jobs()).toHaveLength(1);
  });

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
    expect(events).toEqual(['approved:U0BOB:', 'requested:U0ALICE:', 'requested:U0ALICE:']);
    const refusals = (await x.audit.refusals('production', 20)).map(
      (e) => `${e.event}:${e.actor?.userId}:${e.code ?? ''}`,
    );
    expect(refusals).toEqual(['refused:U0CAROL:forbidden', 'refused:U0ALICE:self_approval']);
  });

  it('approval is refused when the confirmer is no longer permitted (config changed since the confirm)', async () => {
    const both = { production: { twoPersonRule: true, allow: { slack: { users: ['U0ALICE', 'U0BOB'] } } } };
    const x = await setup({ environments: both, platform: 'unkey' });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
    const before = await x.flow.get(o.plan.id);
    // Alice is removed from the allow list (config change and restart; the plan lives on in Redis)
    const onlyBob = { production: { twoPersonRule: true, allow: { slack: { users: ['U0BOB'] } } } };
    const restarted = flowWith(x, { config: testConfig(onlyBob, 'unkey') });
    const r = expectStatus(await restarted.approve(bob, o.plan.id), 'refused');
    expect(r.refusal.code).toBe('forbidden');
    expect(r.refusal.message).toContain(
      "Alice (U0ALICE), who confirmed it, is no longer on production's allow list",
    );
    expect(r.refusal.context).toMatchObject({ reason: 'confirmer_not_permitted' });
    expect(await x.jobs()).toEqual([]);
    expect(await x.flow.get(o.plan.id)).toEqual(before);
    expect((await x.audit.refusals('production', 1))[0]).toMatchObject({
      event: 'refused',
      actor: bob,
      code: 'forbidden',
    });
    // with Alice listed again the same approval goes through
    expectStatus(await x.flow.approve(bob, o.plan.id), 'enqueued');
  });

  it('a confirmer let in by a Slack user group or a Discord role stays approvable while it is listed', async () => {
    const listed = {
      production: {
        twoPersonRule: true,
        allow: { slack: { users: ['U0BOB'], groups: ['S0ONCALL'] }, discord: { roles: ['333333333333'] } },
      },
    };
    const x = await setup({ environments: listed, platform: 'unkey' });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expectStatus(
      await x.flow.confirm({ ...alice, groups: ['S0ONCALL', 'S0OTHER'] }, o.plan.id),
      'awaiting_approval',
    );
    expect((await x.flow.get(o.plan.id))?.confirmedVia).toEqual({ groups: ['S0ONCALL'] });
    // the group is taken off the allow list: Alice confirmed through it only
    const ungrouped = flowWith(x, {
      config: testConfig(
        { production: { twoPersonRule: true, allow: { slack: { users: ['U0BOB'] } } } },
        'unkey',
      ),
    });
    expectStatus(await ungrouped.approve(bob, o.plan.id), 'refused');
    expect(await x.jobs()).toEqual([]);
    const ok = expectStatus(await x.flow.approve(bob, o.plan.id), 'enqueued');
    expect((await x.job(ok.jobId))?.requestedBy).toEqual(alice);
    // the job records what let each of them in: Alice's listed group; Bob came by his user id
    expect((await x.job(ok.jobId))?.grants).toEqual({ requestedBy: { groups: ['S0ONCALL'] } });

    // a Discord confirmer through a role, approved by a listed Slack user
    await switchDirectly(x, 'rollback', 'production', 'dep_3hd7xa');
    const d = planned(await x.flow.plan(dave, 'rollback', 'production'));
    expectStatus(await x.flow.confirm({ ...dave, roles: ['333333333333'] }, d.plan.id), 'awaiting_approval');
    const e = expectStatus(
      await x.flow.approve({ ...carol, groups: ['S0ONCALL', 'S0ONCALL'] }, d.plan.id),
      'enqueued',
    );
    expect((await x.job(e.jobId))?.grants).toEqual({
      requestedBy: { roles: ['333333333333'] },
      approvedBy: { groups: ['S0ONCALL'] },
    });
    expect((await x.flow.get(d.plan.id))?.approvedVia).toEqual({ groups: ['S0ONCALL'] });
  });

  it('a one-person confirm records in the job what let the confirmer in (a listed group or role, or nothing beyond the user id)', async () => {
    const listed = {
      production: {
        allow: { slack: { users: ['U0BOB'], groups: ['S0ONCALL'] }, discord: { roles: ['333333333333'] } },
      },
    };
    const x = await setup({ environments: listed, platform: 'unkey' });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    const a = expectStatus(
      await x.flow.confirm({ ...alice, groups: ['S0OTHER', 'S0ONCALL'] }, o.plan.id),
      'enqueued',
    );
    expect((await x.job(a.jobId))?.grants).toEqual({ requestedBy: { groups: ['S0ONCALL'] } });
    expect((await x.job(a.jobId))?.requestedBy).toEqual(alice);

    await switchDirectly(x, 'rollback', 'production', 'dep_3hd7xa');
    const b = planned(await x.flow.plan(bob, 'rollback', 'production'));
    const byId = expectStatus(await x.flow.confirm(bob, b.plan.id), 'enqueued');
    expect((await x.job(byId.jobId))?.grants).toEqual({});
  });

  it("one person's linked accounts (the config's people) cannot approve each other's requests; unlinked accounts can", async () => {
    const environments = {
      production: {
        twoPersonRule: true,
        allow: { slack: { users: ['U0ALICE', 'U0BOB'] }, discord: { roles: ['333333333333'] } },
      },
    };
    const x = await setup({ environments, platform: 'unkey' });
    // Alice's Slack account and Dave's Discord account are one person's (a second account, say).
    const linked = flowWith(x, {
      config: {
        platform: 'unkey',
        file: fileConfigSchema.parse({
          platform: 'unkey',
          environments,
          people: [{ name: 'Alice', slack: 'U0ALICE', discord: dave.userId }],
        }),
      },
    });
    const o = planned(await linked.plan(alice, 'rollback', 'production'));
    expectStatus(await linked.confirm(alice, o.plan.id), 'awaiting_approval');
    const before = await linked.get(o.plan.id);
    const r = expectStatus(await linked.approve({ ...dave, roles: ['333333333333'] }, o.plan.id), 'refused');
    expect(r.refusal.code).toBe('self_approval');
    expect(r.refusal.message).toBe(
      `Dave (the config's people.0 (Alice) links discord ${dave.userId} and slack U0ALICE as one person) asked for and confirmed this rollback of production, so someone other than Alice must approve it (production's two-person rule).`,
    );
    expect(await x.jobs()).toEqual([]);
    expect(await linked.get(o.plan.id)).toEqual(before);
    // Without the link the two accounts are two people (the default): the approval queues the switch.
    const e = expectStatus(await x.flow.approve({ ...dave, roles: ['333333333333'] }, o.plan.id), 'enqueued');
    expect((await x.job(e.jobId))?.approvedBy).toEqual(dave);
  });

  it('the linked account of the person who typed the command cannot approve it either, when someone else confirmed', async () => {
    const environments = {
      production: {
        twoPersonRule: true,
        allow: { slack: { users: ['U0ALICE', 'U0BOB'] }, discord: { users: [dave.userId] } },
      },
    };
    const x = await setup({ environments, platform: 'unkey' });
    const linked = flowWith(x, {
      config: {
        platform: 'unkey',
        file: fileConfigSchema.parse({
          platform: 'unkey',
          environments,
          people: [{ slack: 'U0ALICE', discord: dave.userId }],
        }),
      },
    });
    const o = planned(await linked.plan(alice, 'rollback', 'production'));
    expectStatus(await linked.confirm(bob, o.plan.id), 'awaiting_approval');
    const r = expectStatus(await linked.approve(dave, o.plan.id), 'refused');
    expect(r.refusal.code).toBe('self_approval');
    expect(r.refusal.message).toContain(
      `(the config's people.0 links discord ${dave.userId} and slack U0ALICE as one person)`,
    );
    expect(await x.jobs()).toEqual([]);
  });

  it('a request that lapses awaiting approval is audited as expired on the next click', async () => {
    const both = { production: { twoPersonRule: true, allow: { slack: { users: ['U0ALICE', 'U0BOB'] } } } };
    const x = await setup({ environments: both, ttlMs: 60_000 });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
    await x.clock.advance(60_000);
    expectStatus(await x.flow.approve(bob, o.plan.id), 'expired');
    // more clicks do not audit it again
    expectStatus(await x.flow.approve(bob, o.plan.id), 'expired');
    const audit = await x.audit.recent('production', 10);
    expect(audit.map((a) => `${a.event}:${a.code ?? ''}`)).toEqual([
      'cancelled:expired',
      'requested:',
      'requested:',
    ]);
    expect(audit[0]?.message).toMatch(
      /^expired at \d{4}-\d\d-\d\d \d\d:\d\d UTC: the rollback to dep_3hd7xa confirmed by Alice was not approved by a second permitted person before the plan's 1 minutes \(since it was last asked for\) ran out; nothing was changed$/,
    );
    // the chat message says it lapsed waiting for approval, not that nobody confirmed it
    const chat = new ChatService({ flow: x.flow, clock: x.clock });
    const reply = await chat.click(bob, `sy1:approve:${o.plan.id}`);
    expect(reply.outcome).toBe('expired');
    const text = reply.update ? viewText(reply.update) : '';
    expect(text).toContain('This plan expired waiting for approval: Alice confirmed it');
    expect(text).not.toContain('before anyone confirmed it');
  });

  it('a request that lapses unanswered is audited as expired when /deployments is read, once', async () => {
    const both = { production: { twoPersonRule: true, allow: { slack: { users: ['U0ALICE', 'U0BOB'] } } } };
    const x = await setup({ environments: both, ttlMs: 60_000 });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
    const waiting = await x.flow.deployments('production');
    expect(waiting.ok && waiting.recent[0]?.message).toContain('waiting for a second permitted person');
    await x.clock.advance(60_000);
    const d = await x.flow.deployments('production');
    if (!d.ok) throw new Error(d.refusal.message);
    expect(d.recent[0]).toMatchObject({ event: 'cancelled', code: 'expired', planId: o.plan.id });
    expect(d.recent[0]?.message).toContain('was not approved by a second permitted person');
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.expired);
    const again = await x.flow.deployments('production');
    expect(again.ok && again.recent.filter((e) => e.code === 'expired')).toHaveLength(1);
    // the same switch asked for again starts a new request after the expiry entry
    planned(await x.flow.plan(bob, 'rollback', 'production'));
    expect((await x.audit.recent('production', 2)).map((e) => `${e.event}:${e.code ?? ''}`)).toEqual([
      'requested:',
      'cancelled:expired',
    ]);
  });

  it('a lapsed request asked for again is audited as expired before the new request', async () => {
    const x = await setup({ ttlMs: 60_000 });
    planned(await x.flow.plan(alice, 'rollback', 'production'));
    await x.clock.advance(60_000);
    const again = planned(await x.flow.plan(bob, 'rollback', 'production'));
    expect(again.created).toBe(true);
    expect((await x.audit.recent('production', 10)).map((e) => `${e.event}:${e.code ?? ''}`)).toEqual([
      'requested:',
      'cancelled:expired',
      'requested:',
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

  it("the same switch asked for again after its job failed: the failed job says nothing about the new request's views", async () => {
    // The queue reports the first job as failed (the platform refused the switch; nothing moved, so the
    // same switch asked for again has the same plan id, and its job the same id).
    const failed = new Map<string, Progress>();
    const x = await setup({
      environments: twoPerson,
      queue: (real) => ({
        enqueue: (data) => real.enqueue(data),
        addMessages: (jobId, refs) => real.addMessages(jobId, refs),
        progress: async (jobId) => failed.get(jobId) ?? real.progress(jobId),
      }),
    });
    const chat = new ChatService({ flow: x.flow, clock: x.clock });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
    const first = expectStatus(await x.flow.approve(bob, o.plan.id), 'enqueued');
    const queued = await x.switchQueue.progress(first.jobId);
    if (queued === undefined) throw new Error('no job');
    failed.set(first.jobId, { ...queued, outcome: 'failed', message: 'The platform refused.' });
    expect(await x.flow.jobReported(first.jobId)).toBe(true);

    const again = planned(await x.flow.plan(dave, 'rollback', 'production'));
    expect(again).toMatchObject({ created: true, plan: { id: o.plan.id } });
    const reply = await chat.click(alice, `sy1:confirm:${o.plan.id}`);
    expect(reply.outcome).toBe('awaiting_approval');
    // The "waiting for a second person" view yields to the job the approval will make: that job has
    // the failed job's id, but until the approval makes it, nothing has reported and nothing ended.
    expect(await x.flow.jobReported(first.jobId)).toBe(false);
    expect(await x.flow.jobProgress(first.jobId)).toBeUndefined();
    expect(await chat.endedProgress(first.jobId)).toBeUndefined();
    expect(reply.approvalJobId).toBe(first.jobId);
  });

  describe('turned off (config edited, bot restarted) while a request waits for approval', () => {
    const both = { slack: { users: ['U0ALICE', 'U0BOB'] } };
    const ruleOn = { production: { twoPersonRule: true, allow: both } };
    const ruleOff = { production: { twoPersonRule: false, allow: both } };

    it("the confirmer's Approve queues the switch in her name alone, not refused with a rule no longer in force", async () => {
      const x = await setup({ environments: ruleOn, platform: 'unkey' });
      const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
      expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
      // under the rule her own Approve is refused, and says why
      const self = expectStatus(await x.flow.approve(alice, o.plan.id), 'refused');
      expect(self.refusal.code).toBe('self_approval');

      const off = flowWith(x, { config: testConfig(ruleOff, 'unkey') });
      // Its message, shown again after the restart, says Approve now queues it, Alice's click included.
      const waiting = await off.get(o.plan.id);
      if (waiting === undefined) throw new Error('plan gone');
      const shown = viewText(new ChatService({ flow: off, clock: x.clock }).confirmation(waiting));
      expect(shown).toContain('production no longer needs a second person');
      expect(shown).not.toContain('Waiting for approval by a second person');
      const e = expectStatus(await off.approve(alice, o.plan.id), 'enqueued');
      expect(e.joined).toBe(false);
      // recorded as what it is: her confirmation, no approver (no second person is claimed)
      expect({ confirmedBy: e.record.confirmedBy, approvedBy: e.record.approvedBy }).toEqual({
        confirmedBy: alice,
        approvedBy: undefined,
      });
      const job = await x.job(e.jobId);
      expect({ requestedBy: job?.requestedBy, approvedBy: job?.approvedBy }).toEqual({
        requestedBy: alice,
        approvedBy: undefined,
      });
      expect((await x.audit.recent('production', 1))[0]).toMatchObject({
        event: 'approved',
        actor: alice,
        jobId: e.jobId,
        message:
          "Alice queued the rollback to dep_3hd7xa they confirmed, with no second person: production's two-person rule was turned off since",
      });
      // a double click joins
      expect(expectStatus(await off.approve(alice, o.plan.id), 'enqueued').joined).toBe(true);
      expect(await x.jobs()).toHaveLength(1);
    });

    it("a colleague's Approve is still recorded as an approval; the confirmer's whose queueing fails keeps the request waiting", async () => {
      const x = await setup({ environments: ruleOn, platform: 'unkey' });
      const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
      expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
      const broken = new Flow({
        platform: x.platform,
        queue: { enqueue: () => Promise.reject(new Error('redis went away')) },
        plans: x.plans,
        audit: x.audit,
        config: testConfig(ruleOff, 'unkey'),
        clock: x.clock,
      });
      await expect(broken.approve(alice, o.plan.id)).rejects.toThrow('redis went away');
      // the claim is undone to what it was: waiting for approval, her confirmation kept
      const back = await x.flow.get(o.plan.id);
      expect({ state: back?.state, confirmedBy: back?.confirmedBy }).toEqual({
        state: PlanState.awaitingApproval,
        confirmedBy: alice,
      });
      expect((await x.audit.recent('production', 1))[0]?.message).toBe(
        'the rollback to dep_3hd7xa confirmed by Alice could not be queued (redis went away); the plan is open again: approve again to retry',
      );
      const off = flowWith(x, { config: testConfig(ruleOff, 'unkey') });
      const e = expectStatus(await off.approve(bob, o.plan.id), 'enqueued');
      expect(e.record.approvedBy).toEqual(bob);
      expect((await x.job(e.jobId))?.approvedBy).toEqual(bob);
    });

    it('a request that expired waiting for approval says so after the rule was turned off', async () => {
      const x = await setup({ environments: ruleOn, platform: 'unkey', ttlMs: 60_000 });
      const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
      expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
      const off = flowWith(x, { config: testConfig(ruleOff, 'unkey') });
      await x.clock.advance(60_000);
      const chat = new ChatService({ flow: off, clock: x.clock });
      const reply = await chat.click(bob, `sy1:approve:${o.plan.id}`);
      expect(reply.outcome).toBe('expired');
      const text = reply.update ? viewText(reply.update) : '';
      expect(text).toContain('This plan expired waiting for approval: Alice confirmed it');
      expect(text).not.toContain('its queueing did not finish');
      expect(expectStatus(await off.approve(bob, o.plan.id), 'expired').message).toContain(
        'waiting for a second permitted person to approve the rollback Alice confirmed',
      );
      // and so does the sweep's rendering, whenever it comes
      expect(
        viewText(chat.confirmation((await off.get(o.plan.id)) ?? o.record, { state: 'expired' })),
      ).toContain('This plan expired waiting for approval');
    });
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

  it('a cancel while the winning confirm is still enqueueing makes no job of its own', async () => {
    let entered!: () => void;
    const claimed = new Promise<void>((resolve) => {
      entered = resolve;
    });
    let fail!: (e: Error) => void;
    let calls = 0;
    const x = await setup({
      queue: (real) => ({
        enqueue(data) {
          calls += 1;
          if (calls > 1) return real.enqueue(data);
          entered();
          return new Promise((_, reject) => {
            fail = reject;
          });
        },
      }),
    });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    const confirming = x.flow.confirm(alice, o.plan.id);
    await claimed; // the plan is claimed (enqueued, no job id yet); the queue has not answered
    const c = await x.flow.cancel(bob, o.plan.id);
    expect(c.status).toBe('running');
    if (c.status === 'running') {
      expect(c.jobId).toBeUndefined();
      expect(c.message).toContain('already being queued');
    }
    // the winner's enqueue fails: its claim is undone, and no job exists for the pending plan
    fail(new Error('redis went away'));
    await expect(confirming).rejects.toThrow('redis went away');
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.pending);
    expect(calls).toBe(1);
    expect(await x.jobs()).toEqual([]);
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
  it('/deployments reads the history in one read and says whether it reached the oldest entry kept', async () => {
    const x = await setup();
    const flow = new Flow({ ...flowParts(x), recentAudit: 4 });
    const entry = (k: number) => ({
      at: x.clock.now() + k,
      environment: 'production',
      action: 'rollback' as const,
      event: 'requested' as const,
      message: `entry ${k}`,
    });
    for (let k = 0; k < 4; k++) await x.audit.append(entry(k));
    const whole = await flow.deployments('production');
    if (!whole.ok) throw new Error(whole.refusal.message);
    // Four read, as many as asked for: older ones may exist that were not read.
    expect(whole.recent.map((e) => e.message)).toEqual(['entry 3', 'entry 2', 'entry 1', 'entry 0']);
    expect(whole.recentTruncated).toBe(true);
    // With when Redis wrote each (its stream id), and how far Redis's clock is from Flow's (the
    // harness's clock stands still at its own date; Redis keeps the real time).
    const ids = await x.redis.xrevrange(x.audit.key('production'), '+', '-');
    expect(whole.recent.map((e) => e.writtenAt)).toEqual(ids.map(([id]) => Number(id.split('-')[0])));
    expect(whole.redisAheadMs).toBeGreaterThanOrEqual(Date.now() - 60_000 - x.clock.now());
    expect(whole.redisAheadMs).toBeLessThanOrEqual(Date.now() + 60_000 - x.clock.now());
    const short = await new Flow({ ...flowParts(x), recentAudit: 5 }).deployments('production');
    expect(short.ok && short.recentTruncated).toBe(false);
    // An audit log without `recentWindow`: a read that came back short is the whole history.
    const plain = { append: x.audit.append.bind(x.audit), recent: x.audit.recent.bind(x.audit) };
    const old = await new Flow({ ...flowParts(x), audit: plain, recentAudit: 5 }).deployments('production');
    expect(old.ok && old.recentTruncated).toBe(false);
    // (Nor does it say when Redis wrote the entries: they are compared by their writers' times.)
    if (!old.ok) throw new Error(old.refusal.message);
    expect(old.redisAheadMs).toBeUndefined();
    expect(old.recent.map((e) => e.writtenAt)).toEqual([undefined, undefined, undefined, undefined]);
    const full = await new Flow({ ...flowParts(x), audit: plain, recentAudit: 4 }).deployments('production');
    expect(full.ok && full.recentTruncated).toBe(true);
  });

  it('/deployments lists a move outside Switchyard only when the history read reaches back to it', async () => {
    const x = await setup();
    await switchDirectly(x, 'rollback', 'production', 'dep_3hd7xa');
    await x.clock.advance(5 * 60_000);
    for (let k = 0; k < 3; k++) {
      await x.audit.append({
        at: x.clock.now() + k,
        environment: 'production',
        action: 'rollback',
        event: 'requested',
        planId: `p_later_${k}`,
        targetId: 'dep_2mc5ty',
        message: 'asked for a rollback to dep_2mc5ty',
      });
    }
    const switches = async (recentAudit: number) => {
      const chat = new ChatService({ flow: new Flow({ ...flowParts(x), recentAudit }), clock: x.clock });
      const reply = await chat.command(alice, 'deployments', ['production']);
      return reply.view.blocks.flatMap((b) =>
        b.type === 'list' && b.label.startsWith('Switches') ? b.items.map((it) => plainText(it.spans)) : [],
      );
    };
    const outside = expect.stringContaining(
      'rollback dep_4kq9wz → dep_3hd7xa · outside Switchyard, by someone else (as the platform records it)',
    );
    // The whole history read: nothing of Switchyard's made that move.
    expect(await switches(4)).toContainEqual(outside);
    // Its three newest entries only, all later than the move: whose it was cannot be told.
    expect(await switches(3)).not.toContainEqual(outside);
  });

  it('a plan made stale by a change other than traffic moving (its target stopped) is listed as out of date, not waiting for confirmation', async () => {
    // Flow's markStale records the click with the refusal's own code (target_stopped), not plan_stale.
    const x = await setup();
    const o = planned(await x.flow.plan(alice, 'rollback', 'production', 'dep_2mc5ty'));
    await x.platform.stop('dep_2mc5ty');
    const s = expectStatus(await x.flow.confirm(bob, o.plan.id), 'stale');
    expect(s.refusal.code).toBe('target_stopped');
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.stale);

    const reply = await new ChatService({ flow: x.flow, clock: x.clock }).command(alice, 'deployments', [
      'production',
    ]);
    const others = reply.view.blocks.flatMap((b) =>
      b.type === 'list' && b.label.startsWith('Other requests')
        ? b.items.map((it) => plainText(it.spans))
        : [],
    );
    expect(others).toEqual([
      expect.stringMatching(
        / UTC · rollback dep_4kq9wz → dep_2mc5ty · out of date when Bob clicked: target stopped \(target_stopped\), nothing changed · asked by Alice$/,
      ),
    ]);
  });

  it('/deployments reads at most five plans for expiry, the newest (the sweep expires any plan past its time)', async () => {
    const x = await setup();
    const read: string[] = [];
    const plans = new Proxy(x.plans, {
      get(target, prop, receiver) {
        if (prop === 'get') {
          return (planId: string) => {
            read.push(planId);
            return target.get(planId);
          };
        }
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const flow = new Flow({ ...flowParts(x), plans });
    // Eight requests whose plans look open in the history (their records are gone).
    for (let k = 0; k < 8; k++) {
      await x.audit.append({
        at: x.clock.now() + k,
        environment: 'production',
        action: 'rollback',
        event: 'requested',
        planId: `p_gone_${k}`,
        targetId: 'dep_3hd7xa',
        message: 'asked for a rollback to dep_3hd7xa',
      });
    }
    expect((await flow.deployments('production')).ok).toBe(true);
    expect(read.filter((id) => id.startsWith('p_gone_'))).toEqual([
      'p_gone_7',
      'p_gone_6',
      'p_gone_5',
      'p_gone_4',
      'p_gone_3',
    ]);
  });

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

  it('on Unkey lists the environment once: routing comes from the snapshot just read, not a second listing', async () => {
    const x = await setup();
    const key = 'unkey_3ZflowDeploymentsRootKey012345';
    const env = { project: 'acme', app: 'api', environment: 'production' } as const;
    const unkeyClock = new ManualClock();
    const server = await startAcmeUnkey(key, { clock: unkeyClock });
    const platform = new UnkeyPlatform({
      environments: { production: env },
      client: { baseUrl: server.url, rootKey: key, timeoutMs: 5_000 },
      clock: unkeyClock,
      pageSize: 5,
    });
    try {
      // 12 deployments at 5 a page: one listing is 3 listDeployments pages.
      for (let i = 0; i < 12; i++) {
        server.push({ ...env, branch: 'main' });
        await unkeyClock.advance(60_000);
      }
      const lists = () => server.requests.filter((r) => r.endpoint === 'deployments.listDeployments').length;
      const flow = flowWith(x, { platform, config: testConfig({}, 'unkey') });
      const before = lists();
      const d = await flow.deployments('production');
      if (!d.ok) throw new Error(`expected the view, got ${d.refusal.code}: ${d.refusal.message}`);
      expect(d.snapshot.deployments).toHaveLength(12);
      expect(lists() - before).toBe(3);
      // The same routes a fresh read gives (nothing moved in between).
      expect(d.routes).toEqual(await platform.routing('production'));
      expect(d.routes.find((r) => r.hostname === 'api.acme.com')?.deploymentId).toBe(
        d.snapshot.environment.currentDeploymentId,
      );
    } finally {
      await platform.close();
      await server.close();
    }
  });
});

/**
 * `target` with `name` replaced by `impl` (given the original, bound): fault injection and
 * interleavings on the harness's real objects.
 */
function overriding<T extends object, K extends keyof T>(
  target: T,
  name: K,
  impl: (original: T[K]) => T[K],
): T {
  const original = (target[name] as (...a: unknown[]) => unknown).bind(target) as T[K];
  const replaced = impl(original);
  return new Proxy(target, {
    get(t, prop, receiver) {
      if (prop === name) return replaced;
      const value = Reflect.get(t, prop, receiver);
      return typeof value === 'function' ? value.bind(t) : value;
    },
  });
}

/** Runs `during` once, the first time `fn` is called, after it returned its value (a slow read). */
function onceAfter<A extends unknown[], R>(
  fn: (...a: A) => Promise<R>,
  during: () => Promise<void>,
): (...a: A) => Promise<R> {
  let done = false;
  return async (...a: A) => {
    const value = await fn(...a);
    if (!done) {
      done = true;
      await during();
    }
    return value;
  };
}

/**
 * Alice confirms production's default rollback; the queue and then the undo of her claim both fail
 * (Redis went away for both), so the plan is left `enqueued` with no job. Returns the plan id.
 */
async function orphanedConfirm(x: Harness, config = testConfig()): Promise<string> {
  let undoFails = true;
  const plans = overriding(x.plans, 'transition', (transition) => (planId, from, to, ...rest) => {
    if (undoFails && from.length === 1 && from[0] === PlanState.enqueued && to !== PlanState.enqueued) {
      undoFails = false;
      return Promise.reject(new Error('redis went away'));
    }
    return transition(planId, from, to, ...rest);
  });
  const broken = new Flow({
    platform: x.platform,
    queue: { enqueue: () => Promise.reject(new Error('redis went away')) },
    plans,
    audit: x.audit,
    config,
    clock: x.clock,
  });
  const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
  await expect(broken.confirm(alice, o.plan.id)).rejects.toThrow('redis went away');
  const left = await x.plans.get(o.plan.id);
  expect({ state: left?.state, jobId: left?.jobId }).toEqual({ state: PlanState.enqueued, jobId: undefined });
  return o.plan.id;
}

describe('a claim left without a job (the queue and the undo failed, or the process died)', () => {
  it('a new /rollback for the same switch offers Confirm again, not the dead claim', async () => {
    const x = await setup();
    const planId = await orphanedConfirm(x);
    await x.clock.advance(5 * 60_000);
    expect(await x.jobs()).toEqual([]);

    const chat = new ChatService({ flow: x.flow, clock: x.clock });
    const reply = await chat.command(bob, 'rollback', ['production']);
    expect(reply.planId).toBe(planId);
    expect(reply.view.buttons.map((b) => b.action.kind)).toEqual(['confirm', 'cancel']);
    const record = await x.flow.get(planId);
    expect(record?.state).toBe(PlanState.pending);
    expect(record?.confirmedBy).toBeUndefined();
    const audit = await x.audit.recent('production', 10);
    expect(audit.map((e) => `${e.event}:${e.code ?? ''}`)).toEqual([
      'failed:enqueue_failed',
      'failed:enqueue_failed',
      'approved:',
      'requested:',
    ]);
    expect(audit[0]?.message).toBe(
      'the rollback to dep_3hd7xa confirmed by Alice was never queued (no job 300 s after the click); the plan is open again: confirm again to retry',
    );
  });

  it('a claim younger than a winner can take is still joined, never undone', async () => {
    const x = await setup();
    const planId = await orphanedConfirm(x);
    await x.clock.advance(59_000);
    const e = expectStatus(await x.flow.confirm(bob, planId), 'enqueued');
    expect(e.joined).toBe(true);
    expect((await x.flow.get(planId))?.state).toBe(PlanState.enqueued);
    expect(await x.jobs()).toEqual([]);
  });

  it("the confirmer's own retry a few seconds later (told their click failed) queues the switch, not a job that does not exist", async () => {
    const x = await setup();
    const planId = await orphanedConfirm(x);
    // a double click by the confirmer, or anyone's click, stays joined while a winner may be at work
    await x.clock.advance(1_000);
    expect(expectStatus(await x.flow.confirm(alice, planId), 'enqueued').joined).toBe(true);
    expect(await x.jobs()).toEqual([]);
    // Alice was answered with an error and clicks again: her own claim is settled and she confirms anew
    await x.clock.advance(4_000);
    const e = expectStatus(await x.flow.confirm(alice, planId), 'enqueued');
    expect(e.joined).toBe(false);
    expect((await x.jobs()).length).toBe(1);
    const record = await x.flow.get(planId);
    expect({ state: record?.state, jobId: record?.jobId }).toEqual({
      state: PlanState.enqueued,
      jobId: e.jobId,
    });
    const audit = await x.audit.recent('production', 3);
    expect(audit.map((a) => `${a.event}:${a.code ?? ''}`)).toEqual([
      'approved:',
      'failed:enqueue_failed',
      'failed:enqueue_failed',
    ]);
    // someone else's click meanwhile would have joined: only the claimant's own retry retakes it
  });

  it('an old Confirm clicked hours after the plan expired is told it expired, and nothing is queued', async () => {
    const x = await setup({ ttlMs: 60 * 60_000 });
    const planId = await orphanedConfirm(x);
    await x.clock.advance(4 * 60 * 60_000);
    const r = expectStatus(await x.flow.confirm(bob, planId), 'expired');
    expect(r.record?.state).toBe(PlanState.expired);
    expect(await x.jobs()).toEqual([]);
    const latest = (await x.audit.recent('production', 1))[0];
    expect(latest).toMatchObject({ event: 'cancelled', code: 'expired' });
    expect(latest?.actor).toBeUndefined();
    expect(latest?.message).toContain('confirmed by Alice was never queued');
  });

  it('expired under a two-person rule turned on since, it says its queueing did not finish, not that it awaited approval', async () => {
    const x = await setup({ ttlMs: 60 * 60_000 });
    const planId = await orphanedConfirm(x);
    // The operator turns the rule on and restarts; the single person's claim never got its job.
    const on = flowWith(x, { config: testConfig({ production: { twoPersonRule: true } }) });
    await x.clock.advance(2 * 60 * 60_000);
    const chat = new ChatService({ flow: on, clock: x.clock });
    const reply = await chat.click(bob, `sy1:confirm:${planId}`);
    expect(reply.outcome).toBe('expired');
    const text = reply.update ? viewText(reply.update) : '';
    expect(text).toContain(
      'This plan expired before its switch was queued: Alice confirmed it, but its queueing did not finish.',
    );
    expect(text).not.toContain('waiting for approval');
    const r = expectStatus(await on.confirm(bob, planId), 'expired');
    expect(r.message).toContain(
      'before its switch was queued: the rollback Alice confirmed was never queued',
    );
    expect(r.message).not.toContain('approve');
    expect((await x.audit.recent('production', 1))[0]?.message).toContain(
      'confirmed by Alice was never queued',
    );
  });

  it('a Confirm on it within the hour re-checks the platform and audits the clicker', async () => {
    const x = await setup();
    const planId = await orphanedConfirm(x);
    await x.clock.advance(2 * 60_000);
    const e = expectStatus(await x.flow.confirm(bob, planId), 'enqueued');
    expect(e.joined).toBe(false);
    expect(e.record.confirmedBy).toEqual(bob);
    expect((await x.job(e.jobId))?.requestedBy).toEqual(bob);
    expect((await x.audit.recent('production', 1))[0]).toMatchObject({
      event: 'approved',
      actor: bob,
      jobId: e.jobId,
    });
  });

  it('a Confirm on it after traffic moved is stale, not queued', async () => {
    const x = await setup();
    const planId = await orphanedConfirm(x);
    await x.clock.advance(2 * 60_000);
    await switchDirectly(x, 'rollback', 'production', 'dep_2mc5ty');
    expectStatus(await x.flow.confirm(bob, planId), 'stale');
    expect(await x.jobs()).toEqual([]);
  });

  it('it can be cancelled', async () => {
    const x = await setup();
    const planId = await orphanedConfirm(x);
    await x.clock.advance(2 * 60_000);
    expect((await x.flow.cancel(alice, planId)).status).toBe('cancelled');
    expect((await x.flow.get(planId))?.state).toBe(PlanState.cancelled);
    expect(await x.jobs()).toEqual([]);
  });

  it('an approval left without a job is open for approval again, the confirmer kept', async () => {
    const env = { production: { twoPersonRule: true, allow: { slack: { users: ['U0ALICE', 'U0BOB'] } } } };
    const x = await setup({ environments: env, platform: 'unkey' });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
    let undoFails = true;
    const plans = overriding(x.plans, 'transition', (transition) => (planId, from, to, ...rest) => {
      if (undoFails && from[0] === PlanState.enqueued && to === PlanState.awaitingApproval) {
        undoFails = false;
        return Promise.reject(new Error('redis went away'));
      }
      return transition(planId, from, to, ...rest);
    });
    const broken = new Flow({
      platform: x.platform,
      queue: { enqueue: () => Promise.reject(new Error('redis went away')) },
      plans,
      audit: x.audit,
      config: testConfig(env, 'unkey'),
      clock: x.clock,
    });
    await expect(broken.approve(bob, o.plan.id)).rejects.toThrow('redis went away');
    await x.clock.advance(2 * 60_000);
    const again = await x.flow.get(o.plan.id);
    expect(again?.state).toBe(PlanState.awaitingApproval);
    expect(again?.confirmedBy).toEqual(alice);
    expect(again?.approvedBy).toBeUndefined();
    expectStatus(await x.flow.approve(alice, o.plan.id), 'refused');
    const ok = expectStatus(await x.flow.approve(bob, o.plan.id), 'enqueued');
    expect(await x.job(ok.jobId)).toMatchObject({ requestedBy: alice, approvedBy: bob });
  });

  it('a job made before its winner died is adopted: its id is stored, nothing is queued twice', async () => {
    const x = await setup();
    let die!: () => void;
    const died = new Promise<void>((resolve) => {
      die = resolve;
    });
    const plans = overriding(x.plans, 'transition', (transition) => (planId, from, to, patch, ...rest) => {
      // The winner's process dies right after the queue answered, before it stores the job id.
      if (patch?.jobId !== undefined) {
        die();
        return new Promise(() => undefined);
      }
      return transition(planId, from, to, patch, ...rest);
    });
    const dying = new Flow({
      platform: x.platform,
      queue: x.switchQueue,
      plans,
      audit: x.audit,
      config: testConfig(),
      clock: x.clock,
    });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    void dying.confirm(alice, o.plan.id);
    await died;
    expect(await x.jobs()).toHaveLength(1);
    await x.clock.advance(2 * 60_000);
    const again = planned(await x.flow.plan(bob, 'rollback', 'production'));
    expect(again.created).toBe(false);
    expect(again.record.state).toBe(PlanState.enqueued);
    expect(again.record.jobId).toBe(jobIdForPlan(o.plan.id));
    expect(await x.jobs()).toHaveLength(1);
  });
});

describe('a click acts only on the record it decided on', () => {
  const both = { production: { twoPersonRule: true, allow: { slack: { users: ['U0ALICE', 'U0BOB'] } } } };

  it('an approval decided on a request never approves the new request its approver confirmed meanwhile', async () => {
    const x = await setup({ environments: both, platform: 'unkey' });
    const config = testConfig(both, 'unkey');
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');

    // Bob approves Alice's request. While his approval reads the platform, Alice withdraws it, and Bob
    // asks for the same switch himself and confirms it (the same plan id, a new request).
    const platform = overriding(x.platform, 'snapshot', (snapshot) =>
      onceAfter(snapshot, async () => {
        expect((await x.flow.cancel(alice, o.plan.id)).status).toBe('cancelled');
        const again = planned(await x.flow.plan(bob, 'rollback', 'production'));
        expect(again.plan.id).toBe(o.plan.id);
        expectStatus(await x.flow.confirm(bob, o.plan.id), 'awaiting_approval');
      }),
    );
    const r = expectStatus(await flowWith(x, { platform, config }).approve(bob, o.plan.id), 'refused');
    expect(r.refusal.code).toBe('self_approval');
    expect(await x.jobs()).toEqual([]);
    const record = await x.flow.get(o.plan.id);
    expect(record?.state).toBe(PlanState.awaitingApproval);
    expect(record?.confirmedBy).toEqual(bob);
    expect(record?.approvedBy).toBeUndefined();
    expect((await x.audit.recent('production', 20)).filter((e) => e.event === 'approved')).toEqual([]);
  });

  it('an unpermitted asker cannot cancel a request a permitted person confirmed while the cancel was handled', async () => {
    const x = await setup({ environments: both });
    const o = planned(await x.flow.plan(carol, 'rollback', 'production'));
    expect(planned(await x.flow.plan(alice, 'rollback', 'production')).plan.id).toBe(o.plan.id);
    // Carol clicks Cancel; another replica handles Alice's Confirm right after Carol's click read the plan.
    const plans = overriding(x.plans, 'get', (get) =>
      onceAfter(get, async () => {
        expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
      }),
    );
    const cancelling = new Flow({
      platform: x.platform,
      queue: x.switchQueue,
      plans,
      audit: x.audit,
      config: testConfig(both),
      clock: x.clock,
    });
    const r = await cancelling.cancel(carol, o.plan.id);
    expect(r.status).toBe('refused');
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.awaitingApproval);
  });

  it('the same holds for Dismiss, and no dismissal is left in the refused person’s name', async () => {
    const x = await setup({ environments: both });
    const o = planned(await x.flow.plan(carol, 'rollback', 'production'));
    planned(await x.flow.plan(alice, 'rollback', 'production'));
    const plans = overriding(x.plans, 'get', (get) =>
      onceAfter(get, async () => {
        expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
      }),
    );
    const dismissing = new Flow({
      platform: x.platform,
      queue: x.switchQueue,
      plans,
      audit: x.audit,
      config: testConfig(both),
      clock: x.clock,
    });
    expect((await dismissing.dismiss(carol, o.plan.id)).status).toBe('refused');
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.awaitingApproval);
    expect(await x.plans.dismissal(o.plan.id)).toBeUndefined();
  });

  it('a Dismiss that loses to another person’s Cancel leaves no dismissal in the dismisser’s name', async () => {
    const x = await setup();
    const o = planned(
      await x.flow.plan(system, 'rollback', 'production', undefined, {
        alert: { source: 'grafana', title: 'p99 latency' },
      }),
    );
    const plans = overriding(x.plans, 'get', (get) =>
      onceAfter(get, async () => {
        expect((await x.flow.cancel(alice, o.plan.id)).status).toBe('cancelled');
      }),
    );
    const dismissing = new Flow({
      platform: x.platform,
      queue: x.switchQueue,
      plans,
      audit: x.audit,
      config: testConfig(),
      clock: x.clock,
    });
    const r = await dismissing.dismiss(bob, o.plan.id);
    expect(r.status).toBe('cancelled');
    if (r.status === 'cancelled') expect(r.record.cancelledBy).toEqual(alice);
    expect(await x.plans.dismissal(o.plan.id)).toBeUndefined();
    // Alerts still suggest the switch: nobody dismissed it.
    const suggested = await x.flow.plan(system, 'rollback', 'production', undefined, {
      alert: { source: 'grafana', title: 'p99 latency' },
      unlessDismissed: true,
    });
    expect(suggested.ok).toBe(true);
  });

  it('a confirmer taken off the allow list since may still cancel, but silences no alert', async () => {
    const both = { production: { twoPersonRule: true, allow: { slack: { users: ['U0ALICE', 'U0BOB'] } } } };
    const x = await setup({ environments: both });
    const o = planned(
      await x.flow.plan(system, 'rollback', 'production', undefined, {
        alert: { source: 'grafana', title: 'p99 latency' },
      }),
    );
    expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
    // The config changed: Alice is no longer on the allow list.
    const later = flowWith(x, {
      config: testConfig({ production: { twoPersonRule: true, allow: { slack: { users: ['U0BOB'] } } } }),
    });
    expect((await later.dismiss(alice, o.plan.id)).status).toBe('cancelled');
    expect(await x.plans.dismissal(o.plan.id)).toBeUndefined();
    expect(
      (
        await later.plan(system, 'rollback', 'production', undefined, {
          alert: { source: 'grafana', title: 'error rate' },
          unlessDismissed: true,
        })
      ).ok,
    ).toBe(true);
  });

  it('a Dismiss that wins records the dismissal with the cancel, in one step', async () => {
    const x = await setup();
    const o = planned(
      await x.flow.plan(system, 'rollback', 'production', undefined, {
        alert: { source: 'grafana', title: 'p99 latency' },
      }),
    );
    expect((await x.flow.dismiss(bob, o.plan.id)).status).toBe('cancelled');
    expect(await x.plans.dismissal(o.plan.id)).toEqual({ by: 'Bob', at: x.clock.now() });
  });
});

describe('a platform refusal while a click re-reads the platform', () => {
  const both = { production: { twoPersonRule: true, allow: { slack: { users: ['U0ALICE', 'U0BOB'] } } } };
  const rejecting = (x: Harness) => {
    let refuse = true;
    return overriding(x.platform, 'snapshot', (snapshot) => async (environment) => {
      if (refuse) {
        refuse = false;
        throw new RefusalError({
          code: 'platform_unauthorized',
          message: 'Unkey rejected the root key (401 unauthorized). Set UNKEY_ROOT_KEY to a valid key.',
        });
      }
      return snapshot(environment);
    });
  };

  it('an approval is refused and the request keeps waiting for approval; it goes through once the key works', async () => {
    const x = await setup({ environments: both, platform: 'unkey' });
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    expectStatus(await x.flow.confirm(alice, o.plan.id), 'awaiting_approval');
    const before = await x.flow.get(o.plan.id);
    const flow = flowWith(x, { platform: rejecting(x), config: testConfig(both, 'unkey') });
    const r = expectStatus(await flow.approve(bob, o.plan.id), 'refused');
    expect(r.refusal.code).toBe('platform_unauthorized');
    expect(await x.flow.get(o.plan.id)).toEqual(before);
    expect((await x.audit.refusals('production', 1))[0]).toMatchObject({
      event: 'refused',
      actor: bob,
      code: 'platform_unauthorized',
    });
    expectStatus(await flow.approve(bob, o.plan.id), 'enqueued');
  });

  it('a confirm is refused and the plan stays pending', async () => {
    const x = await setup();
    const o = planned(await x.flow.plan(alice, 'rollback', 'production'));
    const flow = flowWith(x, { platform: rejecting(x) });
    expectStatus(await flow.confirm(alice, o.plan.id), 'refused');
    expect((await x.flow.get(o.plan.id))?.state).toBe(PlanState.pending);
    expect(await x.jobs()).toEqual([]);
    expectStatus(await flow.confirm(alice, o.plan.id), 'enqueued');
  });
});

describe('an allow list naming an environment the platform does not have', () => {
  it('is logged loudly, once, naming the key', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const x = await setup();
    const flow = new Flow({
      platform: x.platform,
      queue: x.switchQueue,
      plans: x.plans,
      audit: x.audit,
      config: testConfig({ prod: { allow: { slack: { users: ['U0ALICE'] } } } }),
      clock: x.clock,
      logger: createLogger({ level: 'info', pretty: false, destination }),
    });
    await flow.environments();
    planned(await flow.plan(alice, 'rollback', 'production'));
    const warned = lines.map((l) => JSON.parse(l) as { level: number; msg: string; key?: string });
    expect(warned).toHaveLength(1);
    expect(warned[0]?.level).toBeGreaterThanOrEqual(40);
    expect(warned[0]?.key).toBe('environments.prod');
    expect(warned[0]?.msg).toContain('environments.prod');
    expect(warned[0]?.msg).toContain('production, preview');
    expect(warned[0]?.msg).toContain('everyone may act on production');
  });
});

describe('Flow.deploymentChoices', () => {
  /**
   * A Flow over the harness's platform that counts its snapshot reads; `during` runs in each read
   * (its number, from 1), to make one fail or hang.
   */
  function countingFlow(x: Harness, during?: (read: number) => Promise<void>) {
    const reads = { snapshot: 0, routing: 0 };
    const counting = editedPlatform(
      x,
      (s) => s,
      async () => {
        reads.snapshot += 1;
        await during?.(reads.snapshot);
      },
    );
    const platform = new Proxy(counting, {
      get(target, prop, receiver) {
        if (prop === 'routing') {
          return (environment: string, snapshot?: EnvironmentSnapshot) => {
            reads.routing += 1;
            return target.routing(environment, snapshot);
          };
        }
        return Reflect.get(target, prop, receiver);
      },
    });
    return { flow: flowWith(x, { platform }), reads };
  }

  function choices(o: Awaited<ReturnType<Flow['deploymentChoices']>>) {
    if (!o.ok) throw new Error(`expected choices, got ${o.refusal.code}: ${o.refusal.message}`);
    return o;
  }

  it('offers the deployments of one snapshot, reused for choicesCacheMs of the clock, then read again', async () => {
    const x = await setup();
    const { flow, reads } = countingFlow(x);
    const before = await x.platform.snapshot('production');
    const first = choices(await flow.deploymentChoices('prod'));
    expect(first.environment).toBe('production');
    expect(first.deployments.map((d) => d.id)).toEqual(before.deployments.map((d) => d.id));
    expect(first.currentDeploymentId).toBe(before.environment.currentDeploymentId);
    expect(reads).toEqual({ snapshot: 1, routing: 0 });

    // Someone switches meanwhile: the choices may be that late (a plan never relies on them)…
    const target = 'dep_3hd7xa';
    expect(before.environment.currentDeploymentId).not.toBe(target);
    const t0 = x.clock.now();
    await switchDirectly(x, 'rollback', 'production', target);
    const elapsed = x.clock.now() - t0;
    expect(elapsed).toBeLessThan(flowDefaults.choicesCacheMs);
    const cached = choices(await flow.deploymentChoices('production'));
    expect(cached.currentDeploymentId).toBe(before.environment.currentDeploymentId);
    expect(reads.snapshot).toBe(1);

    // …and no later: past choicesCacheMs the next call reads again and shows the switch.
    await x.clock.advance(flowDefaults.choicesCacheMs - elapsed);
    const fresh = choices(await flow.deploymentChoices('production'));
    expect(fresh.currentDeploymentId).toBe(target);
    expect(reads).toEqual({ snapshot: 2, routing: 0 });
  });

  it('concurrent calls share one read; a failed read is not kept, so the next call reads again', async () => {
    const x = await setup();
    const held = gate();
    const { flow, reads } = countingFlow(x, async (read) => {
      if (read > 1) return;
      await held.wait();
      throw new Error('platform unreachable');
    });
    const burst = [flow.deploymentChoices('production'), flow.deploymentChoices('production')];
    await held.reached;
    const third = flow.deploymentChoices('production');
    held.open();
    for (const outcome of await Promise.allSettled([...burst, third]))
      expect(outcome).toMatchObject({ status: 'rejected', reason: { message: 'platform unreachable' } });
    expect(reads.snapshot).toBe(1);
    // The clock has not moved: only the failure makes the next call read again.
    expect(choices(await flow.deploymentChoices('production')).deployments.length).toBeGreaterThan(0);
    expect(reads.snapshot).toBe(2);
  });

  it('a read that hangs for a minute is no longer waited on by later calls', async () => {
    const x = await setup();
    const hung = gate();
    const { flow, reads } = countingFlow(x, async (read) => {
      if (read === 1) await hung.wait();
    });
    const first = flow.deploymentChoices('production');
    await hung.reached;
    await x.clock.advance(59_999);
    const joined = flow.deploymentChoices('production');
    await x.clock.advance(1);
    const fresh = choices(await flow.deploymentChoices('production'));
    expect(fresh.deployments.length).toBeGreaterThan(0);
    expect(reads.snapshot).toBe(2);
    hung.open();
    expect(choices(await first).deployments).toEqual(choices(await joined).deployments);
  });

  it('an unknown environment is a refusal naming the valid ones, and reads no snapshot', async () => {
    const x = await setup();
    const { flow, reads } = countingFlow(x);
    const out = await flow.deploymentChoices('nope');
    expect(out).toMatchObject({ ok: false, refusal: { code: 'unknown_environment' } });
    if (!out.ok) expect(out.refusal.message).toContain('production');
    expect(reads.snapshot).toBe(0);
  });
});
