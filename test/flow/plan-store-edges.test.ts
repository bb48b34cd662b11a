/**
 * Edge tests (found by mutation testing) of src/plan-store.ts (expiry, the expiry index, carryAlerts): behaviour no
 * other test pinned down. Real Redis, a fresh prefix per test, a ManualClock.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { buildPlan, type Plan } from '../../src/domain/plan.js';
import {
  MAX_ALERTS_PER_PLAN,
  MAX_COUNTED_ALERTS_PER_PLAN,
  type PlanAlert,
  PlanState,
  PlanStore,
  SUGGESTION_CLAIM_LEASE_MS,
} from '../../src/plan-store.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import type { MessageRef } from '../../src/progress.js';
import { createRedis, deleteKeys, type RedisClient, scanKeys } from '../../src/redis.js';
import { alice, bob } from '../flow/actors.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const TTL = 60_000;

let redis: RedisClient;
let clock: ManualClock;
let prefix: string;
let store: PlanStore;
let plan: Plan;

beforeEach(async () => {
  redis = createRedis(redisUrl());
  clock = new ManualClock();
  prefix = `${uniqueName('plans')}:`;
  store = new PlanStore({ redis, prefix, clock, ttlMs: TTL, retainMs: 120_000 });
  const platform = await LocalPlatform.open({ clock, maintenance: false });
  const built = buildPlan(await platform.snapshot('production'), { action: 'rollback', now: clock.now() });
  await platform.close();
  if (!built.ok) throw new Error(built.refusal.message);
  plan = built.value;
});

afterEach(async () => {
  await deleteKeys(redis, await scanKeys(redis, `${prefix}*`));
  await redis.quit();
});

function alertAt(id: string, at: number): PlanAlert {
  return { id, alert: { source: 'webhook', title: `Error rate high (${id})` }, at };
}

describe('PlanStore', () => {
  it('keeps a plan in the expiry index when a request restarted its time after the sweep read it', async () => {
    await store.create({ plan, requestedBy: alice });
    await clock.advance(TTL);
    const due = await store.dueToExpire(clock.now(), 100);
    expect(due).toEqual([plan.id]);
    // Meanwhile a request replaces the expired record: a new time, a new index entry.
    const fresh = await store.create({ plan, requestedBy: bob });
    expect(fresh.created).toBe(true);

    // The sweep forgets what it read as due: not the entry the new request made.
    await store.forgetDue(due, clock.now());

    expect(await store.dueToExpire(clock.now() + TTL, 100)).toEqual([plan.id]);
  });

  it('lets the showing of an expired record be taken only for that record, not for the one that replaced it', async () => {
    const first = await store.create({ plan, requestedBy: alice });
    await clock.advance(TTL);
    const expired = await store.transition(plan.id, [PlanState.pending], PlanState.expired);
    expect(expired.ok).toBe(true);
    const second = await store.create({ plan, requestedBy: bob });
    expect(second.created).toBe(true);
    await clock.advance(TTL);
    const expiredAgain = await store.transition(plan.id, [PlanState.pending], PlanState.expired);
    expect(expiredAgain.ok).toBe(true);

    // A replica still holding the first record cannot take the second one's showing.
    expect(await store.takeExpiryShown(first.record)).toBe(false);
    expect(await store.takeExpiryShown(second.record)).toBe(true);
  });

  it('carries alerts only into the record they were read with, not into one that replaced it', async () => {
    const first = await store.create({ plan, requestedBy: alice });
    await store.transition(plan.id, [PlanState.pending], PlanState.cancelled, { cancelledBy: alice });
    const second = await store.create({ plan, requestedBy: bob });
    expect(second.record.generation).not.toBe(first.record.generation);

    const carried = await store.carryAlerts(plan.id, first.record.generation ?? '', [
      alertAt('a1', clock.now()),
    ]);

    expect(carried).toBeUndefined();
    expect((await store.get(plan.id))?.alerts).toBeUndefined();
  });

  it('carries no alert into a plan past its time that the sweep has not expired yet', async () => {
    const { record } = await store.create({ plan, requestedBy: alice });
    await clock.advance(TTL);

    const carried = await store.carryAlerts(plan.id, record.generation ?? '', [alertAt('a1', clock.now())]);

    expect(carried).toBeUndefined();
    expect((await store.get(plan.id))?.alerts).toBeUndefined();
  });

  it('carries at most MAX_ALERTS_PER_PLAN alerts into a plan and counts the rest', async () => {
    const { record } = await store.create({ plan, requestedBy: alice });
    const alerts = Array.from({ length: MAX_ALERTS_PER_PLAN + 5 }, (_, i) =>
      alertAt(`a${i}`, clock.now() + i),
    );

    expect(await store.carryAlerts(plan.id, record.generation ?? '', alerts)).toBeDefined();

    const after = await store.get(plan.id);
    expect(after?.alerts).toHaveLength(MAX_ALERTS_PER_PLAN);
    expect(after?.alertsMore).toBe(5);
  });

  it('carries a resolved alert as resolved, not as firing again', async () => {
    const { record } = await store.create({ plan, requestedBy: alice });
    const resolvedAt = clock.now() - 1_000;

    await store.carryAlerts(plan.id, record.generation ?? '', [
      { ...alertAt('a1', clock.now() - 5_000), resolvedAt },
    ]);

    expect((await store.get(plan.id))?.alerts).toEqual([expect.objectContaining({ id: 'a1', resolvedAt })]);
  });

  it('never claims again a suggestion slot whose suggestion was posted, however old it is', async () => {
    // A plan that lives longer than the claim lease.
    store = new PlanStore({ redis, prefix, clock, ttlMs: 10 * SUGGESTION_CLAIM_LEASE_MS, retainMs: 120_000 });
    const { record } = await store.create({ plan, requestedBy: alice });
    const gen = record.generation ?? '';
    const slot = { slot: 'slack:C0ALERTS', alertId: 'a1' };
    const first = await store.carryAlerts(plan.id, gen, [alertAt('a1', clock.now())], slot);
    expect(first?.claimed).toBe(true);
    const posted: MessageRef = { surface: 'slack', channel: 'C0ALERTS', messageId: '1700000000.000200' };
    expect(await store.suggestionPosted(plan.id, slot.slot, 'a1', posted)).toBeDefined();
    // Past the claim lease (a claim without a message is taken again then; a posted one never).
    await clock.advance(SUGGESTION_CLAIM_LEASE_MS + 1);

    const again = await store.carryAlerts(plan.id, gen, [alertAt('a2', clock.now())], {
      ...slot,
      alertId: 'a2',
    });

    expect(again?.claimed).toBe(false);
    expect((await store.get(plan.id))?.suggestions).toEqual([
      expect.objectContaining({ slot: slot.slot, alertId: 'a1', ref: posted }),
    ]);
  });

  it('carries alerts into a plan awaiting approval (it is still open)', async () => {
    const { record } = await store.create({ plan, requestedBy: alice });
    const waiting = await store.transition(plan.id, [PlanState.pending], PlanState.awaitingApproval, {
      confirmedBy: alice,
    });
    expect(waiting.ok).toBe(true);

    const carried = await store.carryAlerts(plan.id, record.generation ?? '', [alertAt('a1', clock.now())]);

    expect(carried).toBeDefined();
    expect((await store.get(plan.id))?.alerts?.map((a) => a.id)).toEqual(['a1']);
  });

  it('groups no alert into a plan at the very millisecond its time runs out', async () => {
    await store.create({ plan, requestedBy: alice });
    await clock.advance(TTL);

    expect(await store.groupAlert(plan.id, 'a1', alertAt('a1', clock.now()).alert, [])).toBeUndefined();
    expect((await store.get(plan.id))?.alerts).toBeUndefined();
  });

  it('counts a resolved alert beyond the listed ones as resolved, not as still firing', async () => {
    await store.create({ plan, requestedBy: alice });
    for (let i = 0; i < MAX_ALERTS_PER_PLAN + 2; i++)
      await store.groupAlert(plan.id, `a${i}`, alertAt(`a${i}`, clock.now()).alert, []);
    await store.resolveAlert(plan.id, `a${MAX_ALERTS_PER_PLAN}`, clock.now());

    const record = await store.get(plan.id);
    expect(record?.alertsMore).toBe(2);
    expect(record?.alertsMoreFiring).toBe(1);
  });

  it('counts the other messages left to a dismissal without those on surfaces it is told to ignore', async () => {
    const slack: MessageRef = { surface: 'slack', channel: 'C0INCIDENT', messageId: '1700000000.000100' };
    const onConsole: MessageRef = { surface: 'console', channel: 'ops', messageId: 'm-1' };
    const discord: MessageRef = { surface: 'discord', channel: '123456789012', messageId: '987654321098' };
    await store.create({ plan, requestedBy: alice, messages: [slack, onConsole, discord] });

    expect(await store.dismissMessage(plan.id, slack, 'Ana', ['console'])).toBe(1);
    expect(await store.dismissMessage(plan.id, slack, 'Ana', ['console', 'discord'])).toBe(0);
  });

  it('moves the alerts version on when an alert is taken off a plan (views re-render the list)', async () => {
    await store.create({ plan, requestedBy: alice });
    await store.groupAlert(plan.id, 'a1', alertAt('a1', clock.now()).alert, []);
    const before = (await store.get(plan.id))?.alertsVersion ?? 0;

    await store.unlistAlert(plan.id, 'a1');

    const after = await store.get(plan.id);
    expect(after?.alerts).toBeUndefined();
    expect(after?.alertsVersion).toBeGreaterThan(before);
  });
});

describe('PlanStore: a storm of alerts of distinct incidents on one plan', () => {
  /** The alerts a plan knows one by one: listed, then counted by id. */
  const TRACKED = MAX_ALERTS_PER_PLAN + MAX_COUNTED_ALERTS_PER_PLAN;
  const countedKey = () => `${prefix}plan-counted:${plan.id}`;
  const untrackedKey = () => `${prefix}plan-untracked:${plan.id}`;

  /** Groups alerts `s<from>` … `s<to - 1>` into the plan, one after the other (as webhooks would). */
  async function storm(from: number, to: number): Promise<void> {
    for (let i = from; i < to; i++) {
      const group = await store.groupAlert(plan.id, `s${i}`, alertAt(`s${i}`, clock.now()).alert, []);
      if (group === undefined) throw new Error(`alert s${i} was not grouped`);
    }
  }

  /** What a view is given about the alerts (and the version that makes it render again). */
  async function counts() {
    const r = await store.get(plan.id);
    return {
      listed: r?.alerts?.length,
      more: r?.alertsMore,
      moreFiring: r?.alertsMoreFiring,
      untracked: r?.alertsUntracked,
      version: r?.alertsVersion,
    };
  }

  it('3,000 alerts: 50 listed, 1,000 counted, the rest estimated, in keys that stop growing, and a join reads a bounded record', async () => {
    await store.create({ plan, requestedBy: alice });
    await storm(0, 1_500);
    const fieldsThen = await redis.hlen(`${prefix}plan:${plan.id}`);
    await storm(1_500, 3_000);

    const record = await store.get(plan.id);
    expect(record?.alerts?.map((a) => a.id)).toEqual(
      Array.from({ length: MAX_ALERTS_PER_PLAN }, (_, i) => `s${i}`),
    );
    expect(record?.alertsMore).toBe(MAX_COUNTED_ALERTS_PER_PLAN);
    expect(record?.alertsMoreFiring).toBe(MAX_COUNTED_ALERTS_PER_PLAN);
    // An estimate (a HyperLogLog): close, not necessarily exact.
    const beyond = 3_000 - TRACKED;
    expect(Math.abs((record?.alertsUntracked ?? 0) - beyond)).toBeLessThanOrEqual(beyond * 0.03);
    // The record's own hash holds the listed alerts and counts: the 1,500 later alerts added nothing.
    const fields = await redis.hlen(`${prefix}plan:${plan.id}`);
    expect(fields).toBe(fieldsThen);
    expect(fields).toBeLessThan(2 * MAX_ALERTS_PER_PLAN + 30);
    expect(await redis.hlen(countedKey())).toBe(MAX_COUNTED_ALERTS_PER_PLAN);
    expect(Number(await redis.call('MEMORY', 'USAGE', untrackedKey()))).toBeLessThan(16_000);
    // Its keys live as long as the record.
    const ttl = await redis.pttl(`${prefix}plan:${plan.id}`);
    for (const key of [countedKey(), untrackedKey()])
      expect(Math.abs((await redis.pttl(key)) - ttl)).toBeLessThan(5_000);

    // A request for the same switch joins it, with its message, and reads it as it is.
    const ref: MessageRef = { surface: 'slack', channel: 'C0OPS', messageId: '1700000000.000200' };
    const joined = await store.create({ plan, requestedBy: bob, messages: [ref] });
    expect(joined.created).toBe(false);
    expect(joined.record.messages).toEqual([ref]);
    expect(joined.record.alertsMore).toBe(MAX_COUNTED_ALERTS_PER_PLAN);
    expect(joined.record.alertsUntracked).toBe(record?.alertsUntracked);
  });

  it('a repeated alert is not counted again, listed, counted or estimated', async () => {
    await store.create({ plan, requestedBy: alice });
    await storm(0, TRACKED + 200);
    const before = await counts();
    expect(before.untracked).toBeGreaterThan(0);

    await storm(0, TRACKED + 200);

    expect(await counts()).toEqual(before);
  });

  it('a counted alert resolves and fires again one by one; an estimated one is not tracked', async () => {
    await store.create({ plan, requestedBy: alice });
    await storm(0, TRACKED + 100);
    const counted = `s${MAX_ALERTS_PER_PLAN + 10}`;
    const estimated = `s${TRACKED + 50}`;

    expect(await store.resolveAlert(plan.id, counted, clock.now())).toBe(PlanState.pending);
    expect(await store.resolveAlert(plan.id, counted, clock.now() + 1)).toBe(PlanState.pending);
    const resolved = await counts();
    expect(resolved.moreFiring).toBe(MAX_COUNTED_ALERTS_PER_PLAN - 1);

    // Its resolution is not tracked: nothing changes, and the caller is told the plan does not track it.
    expect(await store.resolveAlert(plan.id, estimated, clock.now())).toBeUndefined();
    expect(await counts()).toEqual(resolved);

    await store.groupAlert(plan.id, counted, alertAt(counted, clock.now()).alert, []);
    expect((await counts()).moreFiring).toBe(MAX_COUNTED_ALERTS_PER_PLAN);

    await store.resolveAlert(plan.id, counted, clock.now());
    await store.unlistAlert(plan.id, counted);
    const unlisted = await counts();
    expect({ more: unlisted.more, moreFiring: unlisted.moreFiring }).toEqual({
      more: MAX_COUNTED_ALERTS_PER_PLAN - 1,
      moreFiring: MAX_COUNTED_ALERTS_PER_PLAN - 1,
    });
  });

  it('a record whose extra alerts an earlier version counted in its own fields (ao:) is counted from them, once', async () => {
    await store.create({ plan, requestedBy: alice });
    const key = `${prefix}plan:${plan.id}`;
    // As an earlier Switchyard wrote it: 50 listed, two counted in the hash, one of them resolved.
    const listed = Array.from({ length: MAX_ALERTS_PER_PLAN }, (_, i) => [
      `al:l${i}`,
      JSON.stringify({ alert: alertAt(`l${i}`, 1).alert, at: 1 }),
      `aq:l${i}`,
      String(i + 1),
    ]).flat();
    await redis.hset(key, ...listed, 'alertsVersion', '60', 'ao:o1', '1', 'ao:o2', '1', 'ar:o2', '5');
    expect(await counts()).toMatchObject({ listed: MAX_ALERTS_PER_PLAN, more: 2, moreFiring: 1 });

    await store.groupAlert(plan.id, 'n1', alertAt('n1', clock.now()).alert, []);
    expect(await counts()).toMatchObject({ listed: MAX_ALERTS_PER_PLAN, more: 3, moreFiring: 2 });
    await store.resolveAlert(plan.id, 'o1', clock.now());
    expect(await counts()).toMatchObject({ more: 3, moreFiring: 1 });
    await store.groupAlert(plan.id, 'o2', alertAt('o2', clock.now()).alert, []); // fires again
    expect(await counts()).toMatchObject({ more: 3, moreFiring: 2 });
    await store.unlistAlert(plan.id, 'o1');
    expect(await counts()).toMatchObject({ listed: MAX_ALERTS_PER_PLAN, more: 2, moreFiring: 2 });
  });

  it("an alert or a request that restarts the plan's time restarts that of its counted alerts too", async () => {
    await store.create({ plan, requestedBy: alice });
    await storm(0, TRACKED + 10);
    const keys = [`${prefix}plan:${plan.id}`, countedKey(), untrackedKey()];
    const lifetimes = async () => Promise.all(keys.map((k) => redis.pttl(k)));
    // As if most of their lifetime had passed.
    const nearlyOver = async () => {
      for (const k of keys) await redis.pexpire(k, 10_000);
    };

    await nearlyOver();
    await clock.advance(TTL / 2);
    await store.groupAlert(plan.id, 's0', alertAt('s0', clock.now()).alert, []);
    for (const t of await lifetimes()) expect(t).toBeGreaterThan(TTL);

    await nearlyOver();
    await clock.advance(TTL / 2);
    expect((await store.create({ plan, requestedBy: bob })).created).toBe(false);
    for (const t of await lifetimes()) expect(t).toBeGreaterThan(TTL);
  });

  it('a new record under the plan id starts without the counted alerts of the one it replaced', async () => {
    await store.create({ plan, requestedBy: alice });
    await storm(0, TRACKED + 10);
    await store.transition(plan.id, [PlanState.pending], PlanState.cancelled, { cancelledBy: alice });

    const fresh = await store.create({ plan, requestedBy: bob });

    expect(fresh.created).toBe(true);
    expect(await redis.exists(countedKey(), untrackedKey())).toBe(0);
    await store.groupAlert(plan.id, `s${MAX_ALERTS_PER_PLAN + 1}`, alertAt('x', clock.now()).alert, []);
    expect(await counts()).toMatchObject({ listed: 1, more: undefined, untracked: undefined });
  });
});
