import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { buildPlan, type Plan } from '../../src/domain/plan.js';
import { SwitchyardError } from '../../src/errors.js';
import {
  MAX_ALERTS_PER_PLAN,
  MAX_CLICKED_MESSAGES_PER_PLAN,
  MAX_MESSAGES_PER_PLAN,
  MAX_REPLANS_PER_PLAN,
  PlanState,
  PlanStore,
  PlanUnreadableError,
  SUGGESTION_CLAIM_LEASE_MS,
} from '../../src/plan-store.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import type { MessageRef } from '../../src/progress.js';
import { createRedis, deleteKeys, type RedisClient, scanKeys } from '../../src/redis.js';
import { CapturedLog } from '../support/captured-log.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { alice, bob } from './actors.js';

let redis: RedisClient;
let clock: ManualClock;
let prefix: string;
let store: PlanStore;
let plan: Plan;

beforeEach(async () => {
  redis = createRedis(redisUrl());
  clock = new ManualClock();
  prefix = `${uniqueName('plans')}:`;
  store = new PlanStore({ redis, prefix, clock, ttlMs: 60_000, retainMs: 120_000 });
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

const msg: MessageRef = { surface: 'slack', channel: 'C0INCIDENT', messageId: '1700000000.000100' };

describe('PlanStore', () => {
  it('stores a plan and reads back the same, validated record', async () => {
    const { record, created } = await store.create({ plan, requestedBy: alice, messages: [msg] });
    expect(created).toBe(true);
    expect(record.state).toBe(PlanState.pending);
    expect(record.plan).toEqual(plan);
    expect(record.requestedBy).toEqual(alice);
    expect(record.messages).toEqual([msg]);
    expect(record.expiresAt).toBe(clock.now() + 60_000);
    expect(await store.get(plan.id)).toEqual(record);
    expect(await store.get('plan_unknown')).toBeUndefined();
  });

  it('keeps the record ttl + retention in Redis', async () => {
    await store.create({ plan, requestedBy: alice });
    const pttl = await redis.pttl(`${prefix}plan:${plan.id}`);
    expect(pttl).toBeGreaterThan(170_000);
    expect(pttl).toBeLessThanOrEqual(180_000);
  });

  it('joins a live record for the same plan id and replaces a finished one', async () => {
    await store.create({ plan, requestedBy: alice });
    const other: MessageRef = { surface: 'discord', channel: '123456789012', messageId: '987654321098' };
    const joined = await store.create({ plan, requestedBy: bob, messages: [other] });
    expect(joined.created).toBe(false);
    expect(joined.record.requestedBy).toEqual(alice);
    expect(joined.record.messages).toEqual([other]);

    await store.transition(plan.id, [PlanState.pending], PlanState.cancelled, { cancelledBy: alice });
    const fresh = await store.create({ plan, requestedBy: bob });
    expect(fresh.created).toBe(true);
    expect(fresh.record.state).toBe(PlanState.pending);
    expect(fresh.record.requestedBy).toEqual(bob);
    expect(fresh.record.cancelledBy).toBeUndefined();
    expect(fresh.record.messages).toEqual([]);
  });

  it('replaces an open record past its expiry', async () => {
    await store.create({ plan, requestedBy: alice });
    await clock.advance(60_000);
    const again = await store.create({ plan, requestedBy: bob });
    expect(again.created).toBe(true);
    expect(again.record.requestedBy).toEqual(bob);
  });

  it('a request joining an open plan restarts its time: expiresAt, expiry index and key lifetime, in one step', async () => {
    const key = `${prefix}plan:${plan.id}`;
    const made = clock.now();
    await store.create({ plan, requestedBy: alice });
    await clock.advance(50_000); // 10 s before its time runs out
    // The key's lifetime counts in Redis's time, not this clock's: shortened by hand for the 50 s.
    await redis.pexpire(key, 5_000);
    const joined = await store.create({ plan, requestedBy: bob });
    expect(joined.created).toBe(false);
    expect(joined.record.requestedBy).toEqual(alice);
    expect(joined.record.createdAt).toBe(made);
    expect(joined.record.expiresAt).toBe(clock.now() + 60_000);
    expect((await store.get(plan.id))?.expiresAt).toBe(clock.now() + 60_000);
    expect(await redis.pttl(key)).toBeGreaterThan(170_000); // its ttl + retention again
    expect(await store.dueToExpire(made + 60_000, 10)).toEqual([]);
    expect(await store.dueToExpire(clock.now() + 60_000, 10)).toEqual([plan.id]);
    // Still open 10 s after its first minute, and joined, not replaced.
    await clock.advance(10_000);
    const again = await store.create({ plan, requestedBy: alice });
    expect(again.created).toBe(false);
    expect(again.record.expiresAt).toBe(clock.now() + 60_000);
  });

  it('a request joining an enqueued plan leaves its time as it is (its switch is under way)', async () => {
    const { record } = await store.create({ plan, requestedBy: alice });
    await store.transition(plan.id, [PlanState.pending], PlanState.enqueued, { jobId: 'job-1' });
    await clock.advance(50_000);
    const joined = await store.create({ plan, requestedBy: bob });
    expect(joined.created).toBe(false);
    expect(joined.record.expiresAt).toBe(record.expiresAt);
    expect(await store.dueToExpire(record.expiresAt, 10)).toEqual([plan.id]);
  });

  it('an alert grouped into an open plan restarts its time, as a request joining it does', async () => {
    const key = `${prefix}plan:${plan.id}`;
    const { record } = await store.create({ plan, requestedBy: alice });
    await clock.advance(50_000);
    await redis.pexpire(key, 5_000);
    const alert = { source: 'generic', title: 'p99 above 2 s', status: 'firing' as const, startedAt: 1 };
    expect(await store.groupAlert(plan.id, 'a1', alert, ['slack:C0ALERTS'])).toBeDefined();
    expect((await store.get(plan.id))?.expiresAt).toBe(clock.now() + 60_000);
    expect(await redis.pttl(key)).toBeGreaterThan(170_000);
    expect(await store.dueToExpire(record.expiresAt, 10)).toEqual([]);
    expect(await store.dueToExpire(clock.now() + 60_000, 10)).toEqual([plan.id]);
  });

  it('does not expire a plan whose time a request restarted after it was read (a replica whose clock is behind)', async () => {
    const made = clock.now();
    await store.create({ plan, requestedBy: alice });
    await clock.advance(60_000);
    const read = await store.get(plan.id); // the sweep's read: past its time here
    expect(read !== undefined && clock.now() >= read.expiresAt).toBe(true);
    // Another replica, its clock 1 s behind, joins the plan in between: still open there.
    const behind = new PlanStore({ redis, prefix, clock: new ManualClock(made + 59_000), ttlMs: 60_000 });
    expect((await behind.create({ plan, requestedBy: bob })).created).toBe(false);
    const moved = await store.transition(plan.id, [PlanState.pending], PlanState.expired, {}, [], {
      ...(read === undefined ? {} : { expect: read }),
    });
    expect(moved).toMatchObject({ ok: false, changed: true, record: { state: PlanState.pending } });
    expect((await store.get(plan.id))?.state).toBe(PlanState.pending);
  });

  it('lets one caller take the showing of an expired record, and none of an open or replaced one', async () => {
    const { record } = await store.create({ plan, requestedBy: alice });
    expect(await store.takeExpiryShown(record)).toBe(false); // open
    await clock.advance(60_000);
    const expired = await store.transition(plan.id, [PlanState.pending], PlanState.expired);
    if (!expired.ok) throw new Error('not expired');
    const taken = await Promise.all(Array.from({ length: 10 }, () => store.takeExpiryShown(expired.record)));
    expect(taken.filter(Boolean)).toHaveLength(1);
    expect((await store.get(plan.id))?.expiryShownAt).toBe(clock.now());
    // A new request replaced it: the new record is not the one read (nor expired).
    const fresh = await store.create({ plan, requestedBy: bob });
    expect(fresh.created).toBe(true);
    expect(fresh.record.expiryShownAt).toBeUndefined();
    expect(await store.takeExpiryShown(expired.record)).toBe(false);
  });

  it('lets exactly one of 50 concurrent transitions win', async () => {
    await store.create({ plan, requestedBy: alice });
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        store.transition(plan.id, [PlanState.pending], PlanState.enqueued, {
          confirmedBy: { ...alice, userId: `U${i}` },
        }),
      ),
    );
    const winners = results.filter((r) => r.ok);
    expect(winners).toHaveLength(1);
    const after = await store.get(plan.id);
    expect(after?.state).toBe(PlanState.enqueued);
    expect(after?.confirmedBy).toEqual(winners[0]?.record?.confirmedBy);
    for (const r of results.filter((x) => !x.ok)) expect(r.record?.state).toBe(PlanState.enqueued);
  });

  it('refuses a transition from a state not listed and reports the state that holds', async () => {
    await store.create({ plan, requestedBy: alice });
    await store.transition(plan.id, [PlanState.pending], PlanState.stale, {
      refusal: { code: 'plan_stale', message: 'moved' },
    });
    const r = await store.transition(plan.id, [PlanState.pending], PlanState.enqueued);
    expect(r.ok).toBe(false);
    expect(r.record?.state).toBe(PlanState.stale);
    expect(r.record?.refusal).toEqual({ code: 'plan_stale', message: 'moved' });
    expect(
      (await store.transition('plan_missing', [PlanState.pending], PlanState.enqueued)).record,
    ).toBeUndefined();
  });

  it('expires a plan past its time instead of moving it to enqueued or awaiting approval, in the same step', async () => {
    await store.create({ plan, requestedBy: alice });
    await clock.advance(60_000);
    // the caller read the record before expiresAt; the move itself comes after it
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        store.transition(
          plan.id,
          [PlanState.pending],
          i % 2 === 0 ? PlanState.enqueued : PlanState.awaitingApproval,
          {
            confirmedBy: bob,
          },
        ),
      ),
    );
    expect(results.filter((r) => r.ok)).toEqual([]);
    // exactly one caller expired it (and may audit that); the others find it expired
    expect(results.filter((r) => !r.ok && r.expired === true)).toHaveLength(1);
    for (const r of results) expect(r.record?.state).toBe(PlanState.expired);
    const after = await store.get(plan.id);
    expect(after?.state).toBe(PlanState.expired);
    expect(after?.confirmedBy).toBeUndefined();
    expect(after?.updatedAt).toBe(clock.now());
  });

  it('records the state a plan expired from, however it expired; a new request under the id starts without it', async () => {
    // Views say why a plan expired from this, not from the two-person rule in force when they render.
    const expiredFrom = async (
      from: PlanState,
      expire: (id: string) => Promise<unknown>,
    ): Promise<PlanState | undefined> => {
      await store.create({ plan, requestedBy: alice });
      if (from !== PlanState.pending)
        await store.transition(plan.id, [PlanState.pending], from, { confirmedBy: alice });
      await clock.advance(60_000);
      await expire(plan.id);
      const after = await store.get(plan.id);
      expect(after?.state).toBe(PlanState.expired);
      return after?.expiredFrom;
    };
    // an open plan past its time, moved to expired (a click, a sweep, /deployments)
    const OPEN = [PlanState.pending, PlanState.awaitingApproval];
    const sweep = (id: string) => store.transition(id, OPEN, PlanState.expired);
    expect(await expiredFrom(PlanState.pending, sweep)).toBe(PlanState.pending);
    expect(await expiredFrom(PlanState.awaitingApproval, sweep)).toBe(PlanState.awaitingApproval);
    // a click's move to enqueued that found it past its time (the script expires it instead)
    const late = (id: string) =>
      store.transition(id, OPEN, PlanState.enqueued, { approvedBy: bob }).then((r) => {
        expect(r).toMatchObject({ ok: false, expired: true });
      });
    expect(await expiredFrom(PlanState.awaitingApproval, late)).toBe(PlanState.awaitingApproval);
    expect(await expiredFrom(PlanState.pending, late)).toBe(PlanState.pending);
    // a claim that never got its job, settled past the plan's time
    const settled = (id: string) => store.transition(id, [PlanState.enqueued], PlanState.expired);
    expect(await expiredFrom(PlanState.enqueued, settled)).toBe(PlanState.enqueued);
    const fresh = await store.create({ plan, requestedBy: bob });
    expect(fresh.created).toBe(true);
    expect(fresh.record.expiredFrom).toBeUndefined();
  });

  it('moves a plan one millisecond before its expiry, and never expires an enqueued one', async () => {
    await store.create({ plan, requestedBy: alice });
    await clock.advance(59_999);
    const moved = await store.transition(plan.id, [PlanState.pending], PlanState.enqueued, {
      confirmedBy: bob,
    });
    expect(moved.ok).toBe(true);
    await clock.advance(10_000);
    const withJob = await store.transition(plan.id, [PlanState.enqueued], PlanState.enqueued, {
      jobId: 'sw_1',
    });
    expect(withJob.ok).toBe(true);
    expect(withJob.record?.jobId).toBe('sw_1');
  });

  it('stores the memberships a confirmer acted through', async () => {
    await store.create({ plan, requestedBy: alice });
    const r = await store.transition(plan.id, [PlanState.pending], PlanState.awaitingApproval, {
      confirmedBy: alice,
      confirmedVia: { groups: ['S0ONCALL'] },
    });
    expect(r.record?.confirmedVia).toEqual({ groups: ['S0ONCALL'] });
    expect((await store.get(plan.id))?.confirmedVia).toEqual({ groups: ['S0ONCALL'] });
  });

  it('removes fields on a transition back (undo of a claim)', async () => {
    await store.create({ plan, requestedBy: alice });
    await store.transition(plan.id, [PlanState.pending], PlanState.enqueued, { confirmedBy: bob });
    const back = await store.transition(plan.id, [PlanState.enqueued], PlanState.pending, {}, [
      'confirmedBy',
    ]);
    expect(back.ok).toBe(true);
    expect(back.record?.confirmedBy).toBeUndefined();
  });

  it('moves a record only while it is the one read: not after it moved, nor once a new request replaced it', async () => {
    const { record } = await store.create({ plan, requestedBy: alice });
    expect(record.generation).toEqual(expect.any(String));
    // The record moves on after it was read (someone confirmed it): a move decided on the read loses.
    const confirmed = await store.transition(plan.id, [PlanState.pending], PlanState.awaitingApproval, {
      confirmedBy: bob,
    });
    expect(confirmed.ok && confirmed.record.revision).toBe((record.revision ?? 0) + 1);
    const late = await store.transition(
      plan.id,
      [PlanState.pending, PlanState.awaitingApproval],
      PlanState.cancelled,
      {},
      [],
      {
        expect: record,
      },
    );
    expect(late).toMatchObject({ ok: false, changed: true, record: { state: PlanState.awaitingApproval } });
    // A new request replaces a finished record under the same id, in the same state as the one read.
    if (!confirmed.ok) throw new Error('not moved');
    await store.transition(plan.id, [PlanState.awaitingApproval], PlanState.cancelled);
    const again = await store.create({ plan, requestedBy: bob });
    expect(again.created).toBe(true);
    expect(again.record.generation).not.toBe(record.generation);
    await store.transition(plan.id, [PlanState.pending], PlanState.awaitingApproval, { confirmedBy: bob });
    const replaced = await store.transition(
      plan.id,
      [PlanState.awaitingApproval],
      PlanState.enqueued,
      {},
      [],
      {
        expect: confirmed.record,
      },
    );
    expect(replaced).toMatchObject({ ok: false, changed: true });
    expect((await store.get(plan.id))?.state).toBe(PlanState.awaitingApproval);
    // The record read now moves.
    const now = await store.get(plan.id);
    if (now === undefined) throw new Error('gone');
    expect(
      (
        await store.transition(plan.id, [PlanState.awaitingApproval], PlanState.enqueued, {}, [], {
          expect: now,
        })
      ).ok,
    ).toBe(true);
  });

  it('records a dismissal with the cancel it belongs to, and only when the cancel happens', async () => {
    const { record } = await store.create({ plan, requestedBy: alice });
    await store.transition(plan.id, [PlanState.pending], PlanState.cancelled, { cancelledBy: alice });
    const lost = await store.transition(
      plan.id,
      [PlanState.pending],
      PlanState.cancelled,
      { cancelledBy: bob },
      [],
      {
        expect: record,
        dismissal: { by: 'Bob', at: clock.now() },
      },
    );
    expect(lost.ok).toBe(false);
    expect(await store.dismissal(plan.id)).toBeUndefined();
    const again = await store.create({ plan, requestedBy: alice });
    const won = await store.transition(
      plan.id,
      [PlanState.pending],
      PlanState.cancelled,
      { cancelledBy: bob },
      [],
      {
        expect: again.record,
        dismissal: { by: 'Bob', at: clock.now() },
      },
    );
    expect(won.ok).toBe(true);
    expect(await store.dismissal(plan.id)).toEqual({ by: 'Bob', at: clock.now() });
    const pttl = await redis.pttl(`${prefix}dismissed:${plan.id}`);
    expect(pttl).toBeGreaterThan(170_000);
  });

  it('dismisses one message only while the record is the one read', async () => {
    const { record } = await store.create({
      plan,
      requestedBy: alice,
      messages: [msg, { ...msg, messageId: '2.2' }],
    });
    await store.transition(plan.id, [PlanState.pending], PlanState.awaitingApproval, { confirmedBy: bob });
    expect(await store.dismissMessage(plan.id, msg, 'Ana', [], record)).toBe('changed');
    const now = await store.get(plan.id);
    expect(await store.dismissMessage(plan.id, msg, 'Ana', [], now)).toBe(1);
  });

  it('attaches messages idempotently and never resurrects a missing plan', async () => {
    await store.create({ plan, requestedBy: alice });
    expect(await store.attachMessage(plan.id, msg)).toBe(true);
    expect(await store.attachMessage(plan.id, msg)).toBe(true);
    expect((await store.get(plan.id))?.messages).toEqual([msg]);
    expect(await store.attachMessage('plan_missing', msg)).toBe(false);
    expect(await redis.exists(`${prefix}plan:plan_missing`)).toBe(0);
  });

  it('follows at most MAX_MESSAGES_PER_PLAN messages, so repeated requests cannot grow a plan without bound', async () => {
    await store.create({ plan, requestedBy: alice });
    const refs: MessageRef[] = Array.from({ length: MAX_MESSAGES_PER_PLAN + 5 }, (_, i) => ({
      surface: 'slack',
      channel: 'C0PROD',
      messageId: `1700000000.${String(i).padStart(6, '0')}`,
    }));
    const attached = await Promise.all(refs.map((r) => store.attachMessage(plan.id, r)));
    expect(attached.filter(Boolean)).toHaveLength(MAX_MESSAGES_PER_PLAN);
    expect((await store.get(plan.id))?.messages).toHaveLength(MAX_MESSAGES_PER_PLAN);
    // a message already followed is still accepted (idempotent), the cap only refuses new ones
    const first = (await store.get(plan.id))?.messages[0];
    if (!first) throw new Error('no message');
    expect(await store.attachMessage(plan.id, first)).toBe(true);
  });

  it('lets a clicked message past MAX_MESSAGES_PER_PLAN, up to MAX_CLICKED_MESSAGES_PER_PLAN, and no further', async () => {
    await store.create({ plan, requestedBy: alice });
    const ref = (i: number): MessageRef => ({
      surface: 'slack',
      channel: 'C0PROD',
      messageId: `1700000000.${String(i).padStart(6, '0')}`,
    });
    for (let i = 0; i < MAX_MESSAGES_PER_PLAN; i++)
      expect(await store.attachMessage(plan.id, ref(i))).toBe(true);
    // Full for a message merely posted…
    expect(await store.attachMessage(plan.id, ref(1000))).toBe(false);
    // …not for one someone clicked, up to the hard ceiling.
    const extra = MAX_CLICKED_MESSAGES_PER_PLAN - MAX_MESSAGES_PER_PLAN;
    expect(extra).toBeGreaterThan(0);
    for (let i = 0; i < extra; i++)
      expect(await store.attachMessage(plan.id, ref(2000 + i), { clicked: true })).toBe(true);
    expect(await store.attachMessage(plan.id, ref(3000), { clicked: true })).toBe(false);
    const messages = (await store.get(plan.id))?.messages ?? [];
    expect(messages).toHaveLength(MAX_CLICKED_MESSAGES_PER_PLAN);
    expect(messages).toContainEqual(ref(2000));
    expect(messages).not.toContainEqual(ref(1000));
    // A switch job carries every one of them in its data (src/queue.ts: at most 50 message refs).
    expect(MAX_CLICKED_MESSAGES_PER_PLAN).toBeLessThanOrEqual(50);
  });

  it('refuses a corrupt record with an error naming the field', async () => {
    await store.create({ plan, requestedBy: alice });
    await redis.hset(
      `${prefix}plan:${plan.id}`,
      'requestedBy',
      JSON.stringify({ surface: 'irc', userId: 'x' }),
    );
    const err = await store.get(plan.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwitchyardError);
    expect((err as SwitchyardError).message).toMatch(/requestedBy\.surface/);
    await redis.hset(`${prefix}plan:${plan.id}`, 'plan', '{not json');
    await expect(store.get(plan.id)).rejects.toThrow(/field plan/);
  });

  it('skips a message ref it cannot read, saying so once: the rest of the record reads', async () => {
    const log = new CapturedLog();
    const logged = new PlanStore({
      redis,
      prefix,
      clock,
      ttlMs: 60_000,
      retainMs: 120_000,
      logger: log.logger,
    });
    const { record } = await logged.create({ plan, requestedBy: alice, messages: [msg] });
    const junk = { ref: { surface: 'slack', channel: 'C1', messageId: '' }, at: 1 };
    await redis.hset(`${prefix}plan:${plan.id}`, 'msg:slack:C1:', JSON.stringify(junk), 'msg:x', '{not json');

    expect(await logged.get(plan.id)).toEqual(record);
    expect(await logged.get(plan.id)).toEqual(record);
    const said = log.lines.filter((l) => l.msg === 'plan record: unreadable message ref skipped');
    const byField = said
      .map((l) => [l.level, l.planId, String(l.field), l.problem])
      .sort((a, b) => String(a[2]).localeCompare(String(b[2])));
    expect(byField).toEqual([
      [40, plan.id, 'msg:slack:C1:', 'ref.messageId: Too small: expected string to have >=1 characters'],
      [40, plan.id, 'msg:x', 'not JSON'],
    ]);
    // The record still moves, and still follows its readable message.
    expect((await logged.transition(plan.id, [PlanState.pending], PlanState.cancelled)).ok).toBe(true);
    expect((await logged.get(plan.id))?.messages).toEqual([msg]);
  });

  it('an unreadable record says what is wrong in words, never as zod JSON, and names the field and the record it read', async () => {
    const { record } = await store.create({ plan, requestedBy: alice });
    await redis.hset(`${prefix}plan:${plan.id}`, 'sg:slack:C1', '{"alertId":"","at":"x"}');
    const err = await store.get(plan.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PlanUnreadableError);
    const e = err as PlanUnreadableError;
    expect(e.code).toBe('internal');
    expect(e.field).toBe('sg:slack:C1');
    expect(e.problem).toBe(
      'field sg:slack:C1: alertId: Too small: expected string to have >=1 characters; at: Invalid input: expected number, received string',
    );
    expect(e.message).toBe(`Plan ${plan.id} in Redis is unreadable: ${e.problem}`);
    expect(e.seen).toEqual({ generation: record.generation, revision: '0' });
  });

  it('a request replaces the unreadable record it names, whatever its state; one made meanwhile is joined', async () => {
    await store.create({ plan, requestedBy: alice });
    // Still pending (live), but its plan cannot be read.
    await redis.hset(`${prefix}plan:${plan.id}`, 'plan', '{"id":');
    const seen = ((await store.get(plan.id).catch((e: unknown) => e)) as PlanUnreadableError).seen;
    await expect(store.create({ plan, requestedBy: bob })).rejects.toBeInstanceOf(PlanUnreadableError);

    const replaced = await store.create({ plan, requestedBy: bob, replaceUnreadable: seen });
    expect(replaced).toMatchObject({ created: true, record: { state: PlanState.pending, requestedBy: bob } });
    expect(replaced.record.generation).not.toBe(seen.generation);
    // A second request that found the same unreadable record joins the one made since.
    const late = await store.create({ plan, requestedBy: alice, replaceUnreadable: seen });
    expect(late).toEqual({ created: false, record: replaced.record });

    // A hash without any state (left by hand) is no record: a request replaces it too.
    await redis.del(`${prefix}plan:${plan.id}`);
    await redis.hset(`${prefix}plan:${plan.id}`, 'junk', '1');
    const fresh = await store.create({ plan, requestedBy: alice });
    expect(fresh.created).toBe(true);
    expect(await redis.hexists(`${prefix}plan:${plan.id}`, 'junk')).toBe(0);
  });
});

describe('PlanStore: the alerts of a suggested plan and its suggestion per destination', () => {
  const alertOf = (title: string) => ({ source: 'generic', title, status: 'firing' as const, startedAt: 1 });
  const ref = (messageId: string): MessageRef => ({ surface: 'slack', channel: 'C0ALERTS', messageId });

  it('50 concurrent alerts claim each destination once; every alert is listed, in the order it joined', async () => {
    await store.create({ plan, requestedBy: alice });
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        store.groupAlert(plan.id, `a${i}`, alertOf(`alert ${i}`), ['slack:C0ALERTS', 'console:console']),
      ),
    );
    for (const slot of ['slack:C0ALERTS', 'console:console']) {
      const claims = results.filter((r) => r?.slots.find((s) => s.slot === slot)?.claimed === true);
      expect(claims).toHaveLength(1);
    }
    const record = await store.get(plan.id);
    expect(record?.alerts?.map((a) => a.id)).toEqual(Array.from({ length: 50 }, (_, i) => `a${i}`));
    expect(record?.alertsVersion).toBe(50);
    // A claimed slot without a message yet is reported as such to the others.
    const later = await store.groupAlert(plan.id, 'a0', alertOf('alert 0'), ['slack:C0ALERTS']);
    expect(later?.slots[0]).toMatchObject({ claimed: false, suggestion: { alertId: 'a0' } });
    expect(later?.slots[0]?.claimed === false && later.slots[0].suggestion.ref).toBeUndefined();
    expect(later?.version).toBe(50); // listed already: no change
  });

  it('lists at most MAX_ALERTS_PER_PLAN alerts and counts the rest', async () => {
    await store.create({ plan, requestedBy: alice });
    for (let i = 0; i < MAX_ALERTS_PER_PLAN + 3; i++)
      await store.groupAlert(plan.id, `a${i}`, alertOf(`${i}`), []);
    const record = await store.get(plan.id);
    expect(record?.alerts).toHaveLength(MAX_ALERTS_PER_PLAN);
    expect(record?.alertsMore).toBe(3);
  });

  it('records the posted message, frees a slot whose post failed, and never one that has a message', async () => {
    await store.create({ plan, requestedBy: alice });
    const first = await store.groupAlert(plan.id, 'a1', alertOf('one'), ['slack:C0ALERTS', 'discord:42']);
    expect(first?.slots.map((s) => s.claimed)).toEqual([true, true]);
    expect(await store.suggestionPosted(plan.id, 'slack:C0ALERTS', 'a1', ref('1.1'))).toBe(1);
    await store.releaseSuggestion(plan.id, 'discord:42');
    await store.releaseSuggestion(plan.id, 'slack:C0ALERTS'); // has its message: kept
    const second = await store.groupAlert(plan.id, 'a2', alertOf('two'), ['slack:C0ALERTS', 'discord:42']);
    expect(second?.slots[0]).toMatchObject({
      claimed: false,
      suggestion: { alertId: 'a1', ref: ref('1.1') },
    });
    expect(second?.slots[1]?.claimed).toBe(true);
    // A slot that is gone (released) cannot be given a message.
    await store.releaseSuggestion(plan.id, 'discord:42');
    expect(await store.suggestionPosted(plan.id, 'discord:42', 'a2', ref('9.9'))).toBeUndefined();
    // Dismissed on its only message: no other message offers the plan.
    expect(await store.dismissMessage(plan.id, ref('1.1'), 'Ana')).toBe(0);
    expect((await store.get(plan.id))?.suggestions).toEqual([
      {
        slot: 'slack:C0ALERTS',
        alertId: 'a1',
        at: clock.now(),
        ref: ref('1.1'),
        dismissed: true,
        dismissedBy: 'Ana',
      },
    ]);
  });

  it('resolves a listed alert once; the same alert firing again is firing again', async () => {
    await store.create({ plan, requestedBy: alice });
    await store.groupAlert(plan.id, 'a1', alertOf('one'), []);
    expect(await store.resolveAlert(plan.id, 'unknown', clock.now())).toBeUndefined();
    clock.advance(1_000);
    expect(await store.resolveAlert(plan.id, 'a1', clock.now())).toBe(PlanState.pending);
    const resolvedAt = clock.now();
    clock.advance(1_000);
    expect(await store.resolveAlert(plan.id, 'a1', clock.now())).toBe(PlanState.pending);
    let record = await store.get(plan.id);
    expect(record?.alerts?.[0]?.resolvedAt).toBe(resolvedAt);
    expect(record?.alertsVersion).toBe(2);
    await store.groupAlert(plan.id, 'a1', alertOf('one'), []);
    record = await store.get(plan.id);
    expect(record?.alerts?.[0]?.resolvedAt).toBeUndefined();
    expect(record?.alertsVersion).toBe(3);
  });

  it('a closed record points at the fresh plans made from it under other ids: newest last, at most MAX_REPLANS_PER_PLAN, only on the record meant', async () => {
    expect(await store.markReplanned(plan.id, '', 'plan_fresh1')).toBe(false); // no record
    const { record } = await store.create({ plan, requestedBy: alice });
    const generation = record.generation ?? '';
    expect(await store.markReplanned(plan.id, 'another-generation', 'plan_fresh1')).toBe(false);
    expect((await store.get(plan.id))?.replannedAs).toBeUndefined();
    expect(await store.markReplanned(plan.id, generation, 'plan_fresh1')).toBe(true);
    clock.advance(1_000);
    expect(await store.markReplanned(plan.id, generation, 'plan_fresh2')).toBe(true);
    clock.advance(1_000);
    // The first one asked for again (the platform moved back): it is the newest now.
    expect(await store.markReplanned(plan.id, generation, 'plan_fresh1')).toBe(true);
    expect((await store.get(plan.id))?.replannedAs).toEqual(['plan_fresh2', 'plan_fresh1']);
    for (let i = 3; i <= MAX_REPLANS_PER_PLAN + 2; i++) {
      clock.advance(1_000);
      await store.markReplanned(plan.id, generation, `plan_fresh${i}`);
    }
    const kept = (await store.get(plan.id))?.replannedAs;
    expect(kept).toHaveLength(MAX_REPLANS_PER_PLAN);
    expect(kept?.at(-1)).toBe(`plan_fresh${MAX_REPLANS_PER_PLAN + 2}`);
    expect(kept).not.toContain('plan_fresh2');
    await expect(store.markReplanned(plan.id, generation, 'not a plan id')).rejects.toThrow(
      'expected a plan id',
    );
    // A new request replacing the record starts without pointers.
    clock.advance(60_001);
    await store.create({ plan, requestedBy: bob });
    expect((await store.get(plan.id))?.replannedAs).toBeUndefined();
  });

  it("a claim's lease runs on Redis's clock: a replica whose clock is ahead does not take over a slot claimed a moment ago", async () => {
    // Two replicas on one Redis; the second one's clock is 150 s ahead of the first's (and of Redis's).
    const ahead = { now: () => clock.now() + 150_000, sleep: clock.sleep.bind(clock) };
    expect(150_000).toBeGreaterThan(SUGGESTION_CLAIM_LEASE_MS);
    // (Plans live an hour here: the clock ahead must not see this one expired.)
    const mine = new PlanStore({ redis, prefix, clock, ttlMs: 3_600_000 });
    const other = new PlanStore({ redis, prefix, clock: ahead, ttlMs: 3_600_000 });
    const { record } = await mine.create({ plan, requestedBy: alice });
    const first = await mine.groupAlert(plan.id, 'a1', alertOf('one'), ['slack:C0ALERTS']);
    expect(first?.slots[0]?.claimed).toBe(true);
    // Its post is under way: the other replica's alert sees the slot taken, and so does its "Make a
    // fresh plan" click.
    const second = await other.groupAlert(plan.id, 'a2', alertOf('two'), ['slack:C0ALERTS']);
    expect(second?.slots[0]?.claimed).toBe(false);
    const carried = await other.carryAlerts(plan.id, record.generation ?? '', [], {
      slot: 'slack:C0ALERTS',
      alertId: 'a2',
    });
    expect(carried?.claimed).toBe(false);
  });

  it("a claim whose lease ran out on Redis's clock is taken over, even by a replica whose clock is behind", async () => {
    const { record } = await store.create({ plan, requestedBy: alice });
    // A claim made SUGGESTION_CLAIM_LEASE_MS ago by Redis's clock, whose `at` (its poster's clock) reads
    // now: its poster died; the caller's clock says nothing about how long ago that was.
    const [seconds, micros] = await redis.time();
    const redisNow = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const stale = (alertId: string) =>
      JSON.stringify({ claimedAt: redisNow - SUGGESTION_CLAIM_LEASE_MS - 1_000, alertId, at: clock.now() });
    const key = `${prefix}plan:${plan.id}`;
    await redis.hset(key, 'sg:slack:C0ALERTS', stale('a0'), 'sg:discord:42', stale('a0'));
    const taken = await store.groupAlert(plan.id, 'a1', alertOf('one'), ['slack:C0ALERTS']);
    expect(taken?.slots[0]?.claimed).toBe(true);
    const carried = await store.carryAlerts(plan.id, record.generation ?? '', [], {
      slot: 'discord:42',
      alertId: 'a1',
    });
    expect(carried?.claimed).toBe(true);
    // Claimed afresh: the next alert sees both taken.
    const next = await store.groupAlert(plan.id, 'a2', alertOf('two'), ['slack:C0ALERTS', 'discord:42']);
    expect(next?.slots.map((s) => s.claimed)).toEqual([false, false]);
  });

  it('groups nothing into a plan that is not open any more', async () => {
    expect(await store.groupAlert(plan.id, 'a1', alertOf('one'), ['slack:C0ALERTS'])).toBeUndefined();
    await store.create({ plan, requestedBy: alice });
    clock.advance(60_001); // past expiresAt
    expect(await store.groupAlert(plan.id, 'a1', alertOf('one'), ['slack:C0ALERTS'])).toBeUndefined();
    await store.create({ plan, requestedBy: alice }); // a fresh request replaces the lapsed record
    await store.transition(plan.id, [PlanState.pending], PlanState.enqueued, { jobId: 'job-1' });
    expect(await store.groupAlert(plan.id, 'a1', alertOf('one'), ['slack:C0ALERTS'])).toBeUndefined();
    expect((await store.get(plan.id))?.alerts).toBeUndefined();
  });
});
