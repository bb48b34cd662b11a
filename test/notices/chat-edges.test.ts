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
