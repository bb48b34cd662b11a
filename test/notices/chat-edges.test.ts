/**
 * ChatService (src/chat.ts): behaviour no other test pinned down (each test here passes on the
 * real code and fails on one small mutation of it).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ChatService } from '../../src/chat.js';
import type { Flow } from '../../src/flow.js';
import type { ActingUser } from '../../src/permissions.js';
import type { PlanAlert, PlanRecord } from '../../src/plan-store.js';
import type { MessageRef, Progress } from '../../src/progress.js';
import { createWorld, type World } from '../notices/world.js';
import { viewText } from '../views/fixtures.js';

const alice: ActingUser = { surface: 'slack', userId: 'U0ALICE', displayName: 'Alice' };
let w: World | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

describe('commands', () => {
  it('/rollback with a word after the deployment gets usage, never a plan', async () => {
    // chat.ts command(): `rest.length > 0` for rollback.
    w = await createWorld();
    const reply = await w.chat.command(alice, 'rollback', ['production', 'dep_3hd7xa', 'now']);
    expect(reply.visibility).toBe('ephemeral');
    expect(reply.view.kind).toBe('usage');
    expect(reply.view.title).toBe('How to use /rollback');
    expect(reply.planId).toBeUndefined();
  });

  it('words after the arguments are named as the problem, above the usage', async () => {
    // chat.ts command(): extra words got the plain usage, which does not say what was wrong.
    w = await createWorld();
    const rollback = await w.chat.command(alice, 'rollback', [
      'production',
      'dep_2mc5ty',
      'checkout',
      'is',
      'broken',
    ]);
    const problem =
      '/rollback takes an environment and at most one deployment: "checkout is broken" after "production dep_2mc5ty" is 3 words too many, so nothing was done. To say why, write it in a message of its own.';
    expect(rollback.view.blocks[0]).toEqual({
      type: 'text',
      tone: 'warning',
      spans: [{ text: problem }],
    });
    expect(rollback.view.summary).toBe(`${problem} Usage: /rollback <environment> [deployment-id]`);
    expect(rollback.planId).toBeUndefined();
    const promote = await w.chat.command(alice, 'promote', ['production', 'dep_4kq9wz']);
    expect(viewText(promote.view)).toContain(
      '/promote takes one word, a deployment or an environment: "dep_4kq9wz" after "production" is one word too many, so nothing was done. Give only the deployment, or only the environment.',
    );
    const list = await w.chat.command(alice, 'deployments', ['production', 'preview']);
    expect(list.view.kind).toBe('usage');
    expect(viewText(list.view)).toContain(
      '/deployments takes one word, an environment: "preview" after "production" is one word too many',
    );
  });

  it('/promote of a word that is neither an environment nor a deployment says so, titled by what it looks like', async () => {
    // flow.ts findDeployment(): `/promote dep_nope` was titled "Unknown environment".
    w = await createWorld();
    const neither =
      '"dep_nope" is neither an environment nor a deployment. Valid environments: production, preview. Recent deployments: dep_4kq9wz, dep_3hd7xa, dep_2mc5ty, dep_1ab3cd (production); dep_p2fe8r, dep_p1rw4n (preview).';
    const byId = await w.chat.command(alice, 'promote', ['dep_nope']);
    expect(byId.view.title).toBe('Unknown deployment');
    expect(viewText(byId.view)).toContain(neither);
    expect(viewText(byId.view)).toContain('Code: unknown_deployment');
    const bySha = await w.flow.plan(alice, 'promote', 'abcdef1234');
    expect(!bySha.ok && bySha.refusal.code).toBe('unknown_deployment');
    const byName = await w.flow.plan(alice, 'promote', 'staging');
    expect(!byName.ok && byName.refusal).toMatchObject({
      code: 'unknown_environment',
      message: neither.replace('dep_nope', 'staging'),
    });
  });

  it('/promote of a prefix several deployments share says which, not that it is neither', async () => {
    // flow.ts findDeployment(): an ambiguous prefix read as no deployment at all.
    w = await createWorld();
    const preview = await w.flow.plan(alice, 'promote', 'dep_p');
    expect(!preview.ok && preview.refusal).toEqual({
      code: 'unknown_deployment',
      message: '"dep_p" matches 2 deployments in preview (dep_p2fe8r, dep_p1rw4n); give more characters.',
      context: expect.anything(),
    });
    const both = await w.flow.plan(alice, 'promote', 'dep_');
    expect(!both.ok && both.refusal.message).toBe(
      '"dep_" matches 6 deployments in 2 environments (dep_4kq9wz in production, dep_3hd7xa in production, dep_2mc5ty in production, dep_1ab3cd in production, dep_p2fe8r in preview, dep_p1rw4n in preview); give more characters, or the full id.',
    );
  });

  it('/promote of a failed build says the build failed and what to do', async () => {
    // plan.ts checkTarget() said "… is failed, not ready" (its code stays target_not_ready).
    w = await createWorld();
    const failed = await w.pushAndBuild('production', [], { fail: true });
    const reply = await w.chat.command(alice, 'promote', [failed.id]);
    expect(reply.view.title).toBe('Target not ready');
    expect(viewText(reply.view)).toContain(
      'failed, so it will never be ready to take traffic. Push a fix, or pick a ready or standby deployment (/deployments production lists them).',
    );
    expect(viewText(reply.view)).not.toContain('is failed, not ready');
  });
});

describe('attach', () => {
  it("a message attached while the plan's switch is still running gets no final state to show", async () => {
    // chat.ts attach(): only an ended job's progress (`outcome` set) is returned.
    const running: Progress = {
      jobId: 'sw_running',
      planId: 'plan_running',
      action: 'rollback',
      environment: 'production',
      targetId: 'dep_3hd7xa',
      fromId: 'dep_4kq9wz',
      requestedBy: alice,
      steps: [{ step: 'switching', state: 'running', startedAt: 1_000 }],
      traffic: [],
      attempt: 1,
      updatedAt: 1_000,
    };
    const flow = {
      attach: async () => ({ attached: true, jobId: 'sw_running' }),
      jobProgress: async () => running,
    } as unknown as Flow;
    const chat = new ChatService({ flow });
    const ref: MessageRef = { surface: 'slack', channel: 'C0ALERTS', messageId: '1700000000.000700' };
    expect(await chat.attach('plan_running', ref)).toBeUndefined();
  });
});

describe('endedProgress', () => {
  it("a job's end is shown when the platform cannot tell where traffic is now (not called outdated)", async () => {
    // chat.ts outdated(): `current === undefined` says nothing about traffic having moved.
    const ended: Progress = {
      jobId: 'sw_done',
      planId: 'plan_done',
      action: 'rollback',
      environment: 'production',
      targetId: 'dep_3hd7xa',
      fromId: 'dep_4kq9wz',
      requestedBy: alice,
      steps: [{ step: 'switching', state: 'done', startedAt: 1_000, endedAt: 2_000 }],
      outcome: 'succeeded',
      traffic: [],
      attempt: 1,
      updatedAt: 2_000,
    };
    const flow = {
      jobProgress: async () => ended,
      currentDeployment: async () => undefined,
    } as unknown as Flow;
    const chat = new ChatService({ flow });
    expect(await chat.endedProgress('sw_done')).toEqual(ended);
  });
});

describe('confirmation: the alerts of a suggestion', () => {
  it('alerts beyond the listed ones still firing keep the suggestion firing, though every listed one resolved', async () => {
    // chat.ts alertsView(): `moreFiring === 0` is part of "all resolved".
    w = await createWorld();
    const planned = await w.flow.plan(alice, 'rollback', 'production');
    if (!planned.ok) throw new Error(planned.refusal.message);
    const record = (await w.flow.get(planned.plan.id)) as PlanRecord;
    const now = w.clock.now();
    const listed: PlanAlert[] = Array.from({ length: 3 }, (_, i) => ({
      id: `a${i}`,
      alert: { id: `a${i}`, source: 'webhook', title: `Error rate high (${i})`, status: 'firing' },
      at: now,
      resolvedAt: now + 1_000,
    }));
    const chat = w.chat;
    const shown = (moreFiring: number) =>
      chat.confirmation(
        { ...record, alerts: listed, alertsMore: 2, alertsMoreFiring: moreFiring },
        { alertId: 'a0' },
      );
    // Two more alerts than the list holds, one of them still firing: the suggestion is not resolved
    // (its rollback is not "optional").
    expect(viewText(shown(1))).not.toContain('optional');
    expect(viewText(shown(1))).toContain('4 more alerts on this deployment (1 still firing)');
    // Both of them resolved too: the rollback is optional now.
    expect(viewText(shown(0))).toContain(
      'All 5 alerts resolved at 2026-11-29 12:00 UTC. The rollback below is optional now.',
    );
  });
});
