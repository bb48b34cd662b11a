/**
 * Dismiss on an alert suggestion. One plan serves every request for the same switch, so when the plan
 * also shows on other messages (another incident's suggestion, a person's own /rollback), Dismiss
 * closes that message only: everyone else's Rollback button keeps working. A suggestion alone cancels
 * its plan, as before.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ChatService } from '../../src/chat.js';
import { alice, bob, createHarness, type Harness, system } from './harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** An alert suggestion's plan for production, and a ChatService to click its buttons. */
async function suggestion() {
  h = await createHarness();
  const chat = new ChatService({ flow: h.flow, clock: h.clock });
  const alert = {
    source: 'grafana',
    title: 'p99 latency',
    startedAt: h.clock.now(),
    status: 'firing' as const,
  };
  const planned = await h.flow.plan(system, 'rollback', 'production', undefined, { alert });
  if (!planned.ok) throw new Error(planned.refusal.message);
  return { harness: h, chat, planned };
}

describe('Dismiss', () => {
  it('closes only its own message while the plan shows elsewhere; the other Rollback still works', async () => {
    const { harness, chat, planned } = await suggestion();
    const id = planned.plan.id;
    await harness.flow.attachMessage(id, { surface: 'slack', channel: 'C0ALERTS', messageId: '1.000001' });
    await harness.flow.attachMessage(id, { surface: 'slack', channel: 'C0INCIDENTS', messageId: '1.000002' });

    const dismissed = await chat.click(bob, `sy1:dismiss:${id}`);
    expect(dismissed.outcome).toBe('dismissed');
    expect(dismissed.update?.summary).toMatch(/^Dismissed by Bob: this suggestion is closed\./);
    expect((await harness.flow.get(id))?.state).toBe('pending');

    const confirmed = await chat.click(alice, `sy1:confirm:${id}`);
    expect(confirmed.outcome).toBe('enqueued');
  });

  it('audits the dismissal of one message, naming who dismissed it; the plan stays open', async () => {
    const { harness, chat, planned } = await suggestion();
    const id = planned.plan.id;
    const alerts = { surface: 'slack' as const, channel: 'C0ALERTS', messageId: '1.000001' };
    await harness.flow.attachMessage(id, alerts);
    await harness.flow.attachMessage(id, { surface: 'slack', channel: 'C0INCIDENTS', messageId: '1.000002' });

    expect((await chat.click(bob, `sy1:dismiss:${id}`, alerts)).outcome).toBe('dismissed');
    const latest = (await harness.audit.recent('production', 1))[0];
    expect(latest).toMatchObject({ event: 'cancelled', code: 'copy_dismissed', actor: bob, planId: id });
    expect(latest?.message).toBe(
      'Bob dismissed one message showing the rollback to dep_3hd7xa (slack C0ALERTS); it stays open on 1 other message',
    );
    expect((await harness.flow.get(id))?.state).toBe('pending');
    expect(await harness.plans.dismissal(id)).toBeUndefined();
  });

  it('refuses (and audits) a Dismiss by someone neither involved nor permitted, changing nothing', async () => {
    h = await createHarness({ environments: { production: { allow: { slack: { users: ['U0ALICE'] } } } } });
    const chat = new ChatService({ flow: h.flow, clock: h.clock });
    const planned = await h.flow.plan(system, 'rollback', 'production', undefined, {
      alert: { source: 'grafana', title: 'p99 latency' },
    });
    if (!planned.ok) throw new Error(planned.refusal.message);
    const id = planned.plan.id;
    const alerts = { surface: 'slack' as const, channel: 'C0ALERTS', messageId: '1.000001' };
    await h.flow.attachMessage(id, alerts);
    await h.flow.attachMessage(id, { surface: 'slack', channel: 'C0INCIDENTS', messageId: '1.000002' });
    const before = await h.flow.get(id);
    expect((await chat.click(bob, `sy1:dismiss:${id}`, alerts)).outcome).toBe('refused');
    expect(await h.flow.get(id)).toEqual(before);
    expect((await h.audit.recent('production', 1))[0]).toMatchObject({
      event: 'refused',
      actor: bob,
      code: 'forbidden',
    });
  });

  it('cancels a plan that shows on this suggestion only, as before', async () => {
    const { harness, chat, planned } = await suggestion();
    await harness.flow.attachMessage(planned.plan.id, {
      surface: 'slack',
      channel: 'C0ALERTS',
      messageId: '1.000001',
    });
    const dismissed = await chat.click(bob, `sy1:dismiss:${planned.plan.id}`);
    expect(dismissed.outcome).toBe('cancelled');
    expect((await harness.flow.get(planned.plan.id))?.state).toBe('cancelled');
  });
});
