/**
 * A plan's hour counts from when it was last asked for: a new incident grouped into an open alert
 * suggestion, or a person's /rollback joining the alert's plan, near the end of the hour restarts it,
 * so the expiry sweep (ChatService.expireDue) does not show it expired seconds later, nor are the new
 * incident's re-sends deduplicated against a plan that lapsed at once. Real Redis, Flow, PlanStore,
 * AlertService and suggestion sinks on a ManualClock; in-memory Slack.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { buttonLabels, createHarness, type Harness, MINUTE, viewText } from '../alerts/helpers.js';
import { alice } from './actors.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const slackOnly = { environments: { production: { channels: { slack: 'C0ALERTS' } }, preview: {} } };

describe('a plan joined near the end of its hour', () => {
  it('a new incident grouped into the suggestion 10 s before its hour runs out is offered for another hour', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const start = h.clock.now();
    const [first] = await h.service.handle([h.alert({ fingerprint: 'incident-1' })]);
    expect(first?.outcome).toBe('suggested');
    await h.service.idle();

    await h.clock.advance(60 * MINUTE - 10_000); // a second incident of the same bad deploy
    const [grouped] = await h.service.handle([
      h.alert({ fingerprint: 'incident-2', title: 'Checkout p99 above 2 s', startedAt: start - 30 * MINUTE }),
    ]);
    expect(grouped?.outcome).toBe('grouped');
    await h.service.idle();
    const planId = grouped?.planId ?? '';
    expect((await h.flow.get(planId))?.expiresAt).toBe(h.clock.now() + 60 * MINUTE);

    await h.clock.advance(15_000); // 5 s after the first incident's hour: the sweep
    expect(await h.chat.expireDue()).toEqual([]);
    await h.chat.idle();
    await h.service.idle();
    const [msg] = h.slack.inChannel('C0ALERTS');
    expect(msg?.view.title).toMatch(/^Roll back production/);
    expect(buttonLabels(msg?.view).some((l) => /^Rollback/.test(l))).toBe(true);
    expect(viewText(msg?.view)).toContain('Checkout p99 above 2 s');

    // An hour after the second incident joined, nobody having clicked: shown expired.
    await h.clock.advance(60 * MINUTE - 15_000);
    expect((await h.chat.expireDue()).map((r) => r.plan.id)).toEqual([planId]);
    await h.chat.idle();
    await h.service.idle();
    expect(h.slack.inChannel('C0ALERTS')[0]?.view.title).toMatch(/^Expired:/);
  });

  it('a person’s /rollback joining the alert’s plan 10 s before its hour ends gets a full hour too', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const [first] = await h.service.handle([h.alert({ fingerprint: 'incident-1' })]);
    expect(first?.outcome).toBe('suggested');
    await h.service.idle();

    await h.clock.advance(60 * MINUTE - 10_000);
    const asked = await h.flow.plan(alice, 'rollback', 'production', undefined, {
      messages: [{ surface: 'slack', channel: 'C0OPS', messageId: 'typed-1' }],
    });
    if (!asked.ok) throw new Error(asked.refusal.message);
    expect(asked.plan.id).toBe(first?.planId);
    expect(asked.record.messages.map((m) => m.messageId)).toContain('typed-1'); // joined the alert's plan
    expect(asked.record.expiresAt).toBe(h.clock.now() + 60 * MINUTE);

    await h.clock.advance(15_000); // 5 s after the alert's hour: the sweep
    expect(await h.chat.expireDue()).toEqual([]);
    expect((await h.flow.get(asked.plan.id))?.state).toBe('pending');
  });
});
