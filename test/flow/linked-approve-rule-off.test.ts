/**
 * The two-person rule turned off since a confirm, and the confirmer's linked account (the config's
 * `people`) clicking Approve: it counts as the confirmer's own click (no approver recorded), but the
 * switch is queued in the name of the confirmer's account, so that account must still be permitted:
 * taken off the allow list, the click is refused (`confirmer_not_permitted`) and nothing is queued, as
 * for any other approver.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import { fileConfigSchema } from '../../src/config.js';
import type { ClickOutcome, PlanOutcome } from '../../src/flow.js';
import { Flow } from '../../src/flow.js';
import { alice, carol, createHarness, dave, type Harness } from '../flow/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function planned(o: PlanOutcome) {
  if (!o.ok) throw new Error(`expected a plan, got ${o.refusal.code}: ${o.refusal.message}`);
  return o;
}

function flowWith(x: Harness, config: Pick<Config, 'platform' | 'file'>): Flow {
  return new Flow({
    platform: x.platform,
    queue: x.switchQueue,
    plans: x.plans,
    audit: x.audit,
    config,
    clock: x.clock,
  });
}

function config(environments: Record<string, unknown>): Pick<Config, 'platform' | 'file'> {
  return {
    platform: 'unkey',
    file: fileConfigSchema.parse({
      platform: 'unkey',
      environments,
      // Alice's Slack account and the Discord account "Dave" are one person's.
      people: [{ name: 'Alice', slack: alice.userId, discord: dave.userId }],
    }),
  };
}

describe("the rule turned off, and the confirmer's linked account clicks Approve", () => {
  it('refuses (confirmer no longer permitted) as for any other approver, instead of queueing in the name of an account off the allow list', async () => {
    h = await createHarness({ platform: 'unkey' });
    const x = h;
    // At the confirm: the rule on, Alice listed on Slack.
    const before = flowWith(
      x,
      config({
        production: {
          twoPersonRule: true,
          allow: { slack: { users: [alice.userId, carol.userId] }, discord: { users: [dave.userId] } },
        },
      }),
    );
    const o = planned(await before.plan(alice, 'rollback', 'production'));
    expect((await before.confirm(alice, o.plan.id)).status).toBe('awaiting_approval');

    // Edited and restarted: the rule off, and Alice's Slack account taken off the allow list.
    const after = flowWith(
      x,
      config({
        production: {
          twoPersonRule: false,
          allow: { slack: { users: [carol.userId] }, discord: { users: [dave.userId] } },
        },
      }),
    );
    // Control: any other permitted person's Approve is refused, naming the confirmer; nothing changes.
    const byCarol: ClickOutcome = await after.approve(carol, o.plan.id);
    expect(byCarol.status).toBe('refused');

    // The confirmer's linked Discord account: the same rule must apply (its own permission was judged,
    // not the confirmer's account in whose name the switch would be queued).
    const byTwin: ClickOutcome = await after.approve(dave, o.plan.id);
    const jobs = await x.jobs();
    expect({
      status: byTwin.status,
      reason: byTwin.status === 'refused' ? byTwin.refusal.context?.reason : undefined,
      jobsQueuedInNameOf: jobs.map((j) => j.requestedBy.userId),
    }).toEqual({ status: 'refused', reason: 'confirmer_not_permitted', jobsQueuedInNameOf: [] });
  });
});
