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
    expect((await h.audit.refusals('production', 1))[0]).toMatchObject({
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

describe('an unpermitted asker once an alert asked for the same switch', () => {
  const onlyAlice = { production: { allow: { slack: { users: ['U0ALICE'] } } } };
  const incidents = { surface: 'slack' as const, channel: 'C0INCIDENTS', messageId: '1.000002' };
  const alertOf = (title: string, startedAt: number) => ({
    source: 'grafana',
    title,
    startedAt,
    status: 'firing' as const,
  });

  /** Bob (not on production's allow list) asks first; an alert then suggests the same switch. */
  async function bobThenAlert(opts: { bobsMessage?: boolean } = {}) {
    h = await createHarness({ environments: onlyAlice });
    const chat = new ChatService({ flow: h.flow, clock: h.clock });
    const asked = await h.flow.plan(bob, 'rollback', 'production');
    if (!asked.ok) throw new Error(asked.refusal.message);
    const id = asked.plan.id;
    const own = { surface: 'slack' as const, channel: 'C0DEV', messageId: '1.000001' };
    if (opts.bobsMessage === true) await h.flow.attachMessage(id, own);
    const suggested = await h.flow.plan(system, 'rollback', 'production', undefined, {
      alert: alertOf('p99 latency', h.clock.now()),
      unlessDismissed: true,
    });
    expect(suggested.ok && suggested.plan.id).toBe(id);
    await h.flow.attachMessage(id, incidents);
    return { harness: h, chat, id, own };
  }

  it("cannot Dismiss the alert's suggestion: nothing is cancelled, no dismissal, later alerts still suggest", async () => {
    const { harness, chat, id } = await bobThenAlert();
    const out = await chat.click(bob, `sy1:dismiss:${id}`, incidents);
    const later = await harness.flow.plan(system, 'rollback', 'production', undefined, {
      alert: alertOf('error rate 12%', harness.clock.now()),
      unlessDismissed: true,
    });
    expect({
      outcome: out.outcome,
      state: (await harness.flow.get(id))?.state,
      dismissal: (await harness.plans.dismissal(id)) ?? null,
      laterAlertSuggests: later.ok ? later.plan.id : later.refusal.code,
    }).toEqual({ outcome: 'refused', state: 'pending', dismissal: null, laterAlertSuggests: id });
    expect((await harness.audit.refusals('production', 1))[0]).toMatchObject({
      event: 'refused',
      actor: bob,
      code: 'forbidden',
    });
  });

  it('cannot Dismiss its copy in the incident channel while his own message shows the plan too', async () => {
    const { harness, chat, id } = await bobThenAlert({ bobsMessage: true });
    const before = await harness.flow.get(id);
    expect((await chat.click(bob, `sy1:dismiss:${id}`, incidents)).outcome).toBe('refused');
    expect(await harness.flow.get(id)).toEqual(before);
  });

  it("cannot Cancel it from his own message (that would close the alert's suggestion everywhere), and is told why", async () => {
    const { harness, chat, id, own } = await bobThenAlert({ bobsMessage: true });
    const out = await chat.click(bob, `sy1:cancel:${id}`, own);
    expect(out.outcome).toBe('refused');
    expect(JSON.stringify(out.ephemeral)).toContain(
      'An alert suggests this same rollback of production, so it is no longer only your request',
    );
    expect((await harness.flow.get(id))?.state).toBe('pending');
    // A permitted person still decides: Alice may cancel (or confirm) it.
    expect((await harness.flow.cancel(alice, id)).status).toBe('cancelled');
  });

  it('may still withdraw the request while no alert asked for it, and again once the alert left it (never shown)', async () => {
    h = await createHarness({ environments: onlyAlice });
    const asked = await h.flow.plan(bob, 'rollback', 'production');
    if (!asked.ok) throw new Error(asked.refusal.message);
    const id = asked.plan.id;
    const alert = { ...alertOf('p99 latency', h.clock.now()), id: 'incident-1' };
    await h.flow.plan(system, 'rollback', 'production', undefined, { alert, unlessDismissed: true });
    expect((await h.flow.cancel(bob, id)).status).toBe('refused');
    // Its suggestion could not be posted anywhere: the alert service takes it off the plan.
    await h.flow.unlistAlert(id, 'incident-1');
    expect((await h.flow.cancel(bob, id)).status).toBe('cancelled');
  });

  it('a Dismiss of his own request (no alert asked for it) withdraws it but silences no alert', async () => {
    h = await createHarness({ environments: onlyAlice });
    const asked = await h.flow.plan(bob, 'rollback', 'production');
    if (!asked.ok) throw new Error(asked.refusal.message);
    const id = asked.plan.id;
    expect((await h.flow.dismiss(bob, id)).status).toBe('cancelled');
    expect(await h.plans.dismissal(id)).toBeUndefined();
    const later = await h.flow.plan(system, 'rollback', 'production', undefined, {
      alert: alertOf('p99 latency', h.clock.now()),
      unlessDismissed: true,
    });
    expect(later.ok).toBe(true);
    expect((await h.audit.recent('production', 2))[1]?.message).toBe(
      'Bob cancelled the rollback to dep_3hd7xa (a dismiss by someone not permitted on production: alerts may still suggest it)',
    );
  });
});
