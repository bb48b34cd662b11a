/**
 * Edge tests (found by mutation testing) of src/plan-store.ts (expiry, the expiry index, carryAlerts): behaviour no
 * other test pinned down. Real Redis, a fresh prefix per test, a ManualClock.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { buildPlan, type Plan } from '../../src/domain/plan.js';
import {
  MAX_ALERTS_PER_PLAN,
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
