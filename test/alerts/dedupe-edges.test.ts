/**
 * Storm control (src/alerts/dedupe.ts) on the real Redis: expiries, keys and replaced records no other
 * test of the area pinned. Each test fails on one small change the area's
 * tests let through.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AlertDedupe } from '../../src/alerts/dedupe.js';
import { buildPlan } from '../../src/domain/plan.js';
import { type PlanRecord, planRecordSchema } from '../../src/plan-store.js';
import { createRedis, type RedisClient } from '../../src/redis.js';
import { MINUTE, productionSnapshot } from '../alerts/helpers.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const HOUR = 60 * MINUTE;

const clients: RedisClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.quit();
});

function setup(opts: { incidentTtlMs?: number; resolvedTtlMs?: number; anonymousWindowMs?: number } = {}) {
  const redis = createRedis(redisUrl());
  clients.push(redis);
  const prefix = uniqueName('dedupe');
  return { redis, prefix, dedupe: new AlertDedupe(redis, { prefix, ...opts }) };
}

const fingerprinted = { environment: 'production', source: 'generic', fingerprint: 'incident-1' };
const anonymous = { environment: 'production', source: 'generic' };

describe('incident expiries', () => {
  it('a repeat of a fingerprint-less alert does not slide its window; a fingerprinted repeat extends the incident', async () => {
    const { redis, dedupe } = setup({ incidentTtlMs: 6 * HOUR, anonymousWindowMs: 10 * MINUTE });
    expect(await dedupe.claim(anonymous, NOW)).toEqual({ claimed: true });
    expect(await dedupe.claim(fingerprinted, NOW)).toEqual({ claimed: true });
    // both have aged to one minute left
    await redis.pexpire(dedupe.key(anonymous), MINUTE);
    await redis.pexpire(dedupe.key(fingerprinted), MINUTE);
    expect((await dedupe.claim(anonymous, NOW + 9 * MINUTE)).claimed).toBe(false);
    expect((await dedupe.claim(fingerprinted, NOW + 9 * MINUTE)).claimed).toBe(false);
    expect(await redis.pttl(dedupe.key(anonymous))).toBeLessThanOrEqual(MINUTE);
    expect(await redis.pttl(dedupe.key(fingerprinted))).toBeGreaterThan(5 * HOUR);
  });

  it('a resolution shortens the incident to resolvedTtlMs, and never lengthens it', async () => {
    const { redis, dedupe } = setup({ incidentTtlMs: 6 * HOUR, resolvedTtlMs: 10 * MINUTE });
    await dedupe.claim(fingerprinted, NOW);
    await dedupe.complete(fingerprinted, { state: 'posted', refs: [] });
    await dedupe.resolve(fingerprinted, NOW + MINUTE);
    const ttl = await redis.pttl(dedupe.key(fingerprinted));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(10 * MINUTE);

    const other = { ...fingerprinted, fingerprint: 'incident-2' };
    await dedupe.claim(other, NOW);
    await redis.pexpire(dedupe.key(other), MINUTE);
    await dedupe.resolve(other, NOW + MINUTE);
    expect(await redis.pttl(dedupe.key(other))).toBeLessThanOrEqual(MINUTE);
  });

  it('completing an incident whose record is gone (expired, released) does not bring it back without expiry', async () => {
    const { redis, dedupe } = setup();
    await dedupe.claim(fingerprinted, NOW);
    await dedupe.release(fingerprinted);
    expect(await dedupe.complete(fingerprinted, { state: 'posted', refs: [] })).toEqual({
      resolvedMeanwhile: false,
    });
    expect(await redis.exists(dedupe.key(fingerprinted))).toBe(0);
    expect(await dedupe.get(fingerprinted)).toBeUndefined();
  });
});

describe('resolution edits', () => {
  it('a repeated RESOLVED takes the edit over only after the edit failed', async () => {
    const { dedupe } = setup();
    await dedupe.claim(fingerprinted, NOW);
    await dedupe.complete(fingerprinted, { state: 'posted', refs: [], planId: 'plan_1' });
    expect(await dedupe.resolve(fingerprinted, NOW)).toMatchObject({
      resolved: true,
      resolvedEdit: 'pending',
    });
    // the first resolver is still editing: a repeat gets nothing
    expect(await dedupe.resolve(fingerprinted, NOW)).toBeUndefined();
    await dedupe.resolvedEdited(fingerprinted, false);
    expect(await dedupe.resolve(fingerprinted, NOW)).toMatchObject({
      planId: 'plan_1',
      resolvedEdit: 'pending',
    });
    await dedupe.resolvedEdited(fingerprinted, true);
    expect(await dedupe.resolve(fingerprinted, NOW)).toBeUndefined();
  });

  it('the outcome of an edit is not written onto a new occurrence of the incident', async () => {
    const { dedupe } = setup();
    await dedupe.claim(fingerprinted, NOW);
    await dedupe.resolve(fingerprinted, NOW);
    // fires again before the edit reports: a new occurrence, claimed afresh
    expect(await dedupe.claim(fingerprinted, NOW + MINUTE)).toEqual({ claimed: true });
    await dedupe.resolvedEdited(fingerprinted, false);
    const record = await dedupe.get(fingerprinted);
    expect(record).toMatchObject({ state: 'pending', resolved: false });
    expect(record?.resolvedEdit).toBeUndefined();
  });
});

describe('incident keys', () => {
  it('an empty fingerprint is no fingerprint: the environment window', () => {
    const { dedupe } = setup();
    expect(dedupe.key({ ...anonymous, fingerprint: '' })).toBe(dedupe.key(anonymous));
  });

  it('one fingerprint from two sources is two incidents', async () => {
    const { dedupe } = setup();
    expect(dedupe.key({ ...fingerprinted, source: 'sentry' })).not.toBe(
      dedupe.key({ ...fingerprinted, source: 'datadog' }),
    );
    expect(await dedupe.claim({ ...fingerprinted, source: 'sentry' }, NOW)).toEqual({ claimed: true });
    expect(await dedupe.claim({ ...fingerprinted, source: 'datadog' }, NOW)).toEqual({ claimed: true });
  });

  it('a post is claimed once per place, not once overall', async () => {
    const { dedupe } = setup();
    expect(await dedupe.claimPost('link', 'job-1', 'slack:C0ALERTS', MINUTE)).toBe(true);
    expect(await dedupe.claimPost('link', 'job-1', 'slack:C0ALERTS', MINUTE)).toBe(false);
    expect(await dedupe.claimPost('link', 'job-1', 'discord:123', MINUTE)).toBe(true);
  });
});

/** A finished plan record listing alerts `a1` and `a2`, made at `createdAt`. */
function record(
  createdAt: number,
  alerts: { id: string; resolvedAt?: number }[] = [{ id: 'a1' }, { id: 'a2' }],
): PlanRecord {
  const built = buildPlan(productionSnapshot(NOW), { action: 'rollback', now: createdAt });
  if (!built.ok) throw new Error(built.refusal.message);
  return planRecordSchema.parse({
    plan: built.value,
    state: 'expired',
    requestedBy: { surface: 'system', userId: 'switchyard-alerts', displayName: 'Switchyard alerts' },
    messages: [],
    alerts: alerts.map((a) => ({
      id: a.id,
      alert: { source: 'generic', title: a.id },
      at: createdAt,
      ...(a.resolvedAt === undefined ? {} : { resolvedAt: a.resolvedAt }),
    })),
    createdAt,
    updatedAt: createdAt,
    expiresAt: createdAt + HOUR,
    generation: `g${createdAt}`,
  });
}

describe('replaced plan records', () => {
  it('keeps the newest five records of a plan id, each kept for the incident lifetime', async () => {
    const { redis, prefix, dedupe } = setup({ incidentTtlMs: 6 * HOUR });
    const ids: string[] = [];
    for (let i = 1; i <= 7; i++) ids.push(await dedupe.keepReplaced(record(NOW + i * MINUTE)));
    const planId = record(NOW).plan.id;
    const kept = await Promise.all(ids.map(async (id) => (await dedupe.replaced(planId, id)) !== undefined));
    expect(kept).toEqual([false, false, true, true, true, true, true]);
    const ttl = await redis.pttl(`${prefix}:replaced:${encodeURIComponent(planId)}`);
    expect(ttl).toBeGreaterThan(5 * HOUR);
    expect(ttl).toBeLessThanOrEqual(6 * HOUR);
  });

  it('the first resolution of an alert stands, a resolution the record already had is kept, and the stamp changes per resolved alert', async () => {
    const { dedupe } = setup();
    const old = record(NOW, [{ id: 'a1' }, { id: 'a2' }, { id: 'a3', resolvedAt: NOW + 1 }]);
    const id = await dedupe.keepReplaced(old);
    const planId = old.plan.id;
    expect(await dedupe.resolveReplaced(planId, 'a1', NOW + 10)).toEqual([id]);
    const first = await dedupe.replaced(planId, id);
    // a retried RESOLVED does not move the time
    expect(await dedupe.resolveReplaced(planId, 'a1', NOW + 20)).toEqual([id]);
    expect(await dedupe.resolveReplaced(planId, 'a3', NOW + 30)).toEqual([id]);
    const seen = await dedupe.replaced(planId, id);
    expect(seen?.record.alerts?.map((a) => [a.id, a.resolvedAt])).toEqual([
      ['a1', NOW + 10],
      ['a2', undefined],
      ['a3', NOW + 1],
    ]);
    expect(seen?.stamp).not.toBe(first?.stamp);
    await dedupe.resolveReplaced(planId, 'a2', NOW + 40);
    expect((await dedupe.replaced(planId, id))?.stamp).not.toBe(seen?.stamp);
  });
});
