/**
 * Exactly once across bot replicas and restarts: two notices services subscribed to the same
 * platform (two replicas) post each notice and each reminder once; a new service on the same Redis
 * (a restart) neither repeats the current reminder slot nor re-posts events delivered again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { inWorkingHours, reminderSlot, untilWorkingHours } from '../../src/notices.js';
import { createWorld, HOUR, idleAll, RelayPlatform, type World } from './world.js';

let w: World | undefined;

afterEach(async () => {
  await w?.close();
  w = undefined;
});

const reminderCount = (world: World) =>
  world.slack.posts.filter((p) => p.view.title.startsWith('production is still rolled back')).length;

describe('notices across replicas and restarts', () => {
  it('two replicas on one platform post every notice and reminder once', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const a = await w.notices();
    const b = await w.notices();
    const both = [a, b];

    const failed = await w.pushAndBuild('production', both, { fail: true });
    const live = await w.pushAndBuild('production', both);
    await w.switchDirectly('rollback', 'production', 'dep_4kq9wz', both);
    const waiting = await w.pushAndBuild('production', both);
    for (let i = 0; i < 3; i++) await w.advance(4 * HOUR, both);

    expect(w.slack.titles()).toEqual([
      `${failed.id} failed on production`,
      `${live.id} is live on production`,
      'Traffic on production moved to dep_4kq9wz',
      `${waiting.id} is ready but not live`,
      'production is still rolled back to dep_4kq9wz',
      'production is still rolled back to dep_4kq9wz',
      'production is still rolled back to dep_4kq9wz',
    ]);
    // Each notice was claimed by exactly one of the two replicas; the other saw a duplicate.
    const posted = [...a.outcomes, ...b.outcomes].filter((o) => o.status === 'posted');
    const duplicates = [...a.outcomes, ...b.outcomes].filter((o) => o.status === 'duplicate');
    expect(posted).toHaveLength(7);
    expect(new Set(posted.map((o) => o.status === 'posted' && o.key)).size).toBe(7);
    expect(duplicates.length).toBeGreaterThanOrEqual(7);
  });

  it('a restart neither repeats the current reminder nor re-posts events delivered again', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const relay = new RelayPlatform(w.platform);
    const before = await w.notices({ platform: relay });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [before]);
    const fresh = await w.pushAndBuild('production', [before]);
    await w.advance(4 * HOUR - 60_000, [before]);
    expect(reminderCount(w)).toBe(1);
    const postedBefore = w.slack.posts.length;
    await before.stop();

    // The restarted process: same Redis, same platform; its source delivers the old events again.
    const after = await w.notices({ platform: relay });
    relay.replay(relay.seen);
    await idleAll([after]);
    expect(w.slack.posts).toHaveLength(postedBefore);
    expect(after.outcomes.filter((o) => o.status === 'posted')).toHaveLength(0);
    expect(
      after.outcomes.filter((o) => o.status === 'duplicate').map((o) => o.status === 'duplicate' && o.kind),
    ).toEqual(expect.arrayContaining(['traffic_moved', 'ready_not_live', 'reminder']));

    // The next slot comes once, from the restarted process.
    await w.advance(4 * HOUR, [after]);
    expect(reminderCount(w)).toBe(2);
    expect(w.slack.titles().filter((t) => t === `${fresh.id} is ready but not live`)).toHaveLength(1);
  });

  it('a restart while rolled back for longer than one interval posts the missed slot once, then keeps the rhythm', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const first = await w.notices();
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [first]);
    const since = w.clock.now();
    await first.stop();
    // Down for 9 hours: slots 1 (4h) and 2 (8h) passed unseen.
    await w.advance(9 * HOUR, []);
    const second = await w.notices();
    await idleAll([second]);
    expect(
      w.slack.posts.filter((p) => p.view.title.startsWith('production is still')).map((p) => p.at),
    ).toEqual([since + 9 * HOUR]);
    await w.advance(3 * HOUR, [second]);
    expect(reminderCount(w)).toBe(2);
    expect(w.slack.posts.at(-1)?.at).toBe(since + 12 * HOUR);
  });
});

describe('reminder schedule arithmetic', () => {
  const day = Date.UTC(2026, 10, 29);
  it('computes the current slot and the next due time from rolledBackAt', () => {
    expect(reminderSlot(1_000, 100, 1_050)).toEqual({ current: 0, nextAt: 1_100 });
    expect(reminderSlot(1_000, 100, 1_100)).toEqual({ current: 1, nextAt: 1_200 });
    expect(reminderSlot(1_000, 100, 1_399)).toEqual({ current: 3, nextAt: 1_400 });
    // a rolledBackAt slightly in the future (clock skew) is no slot yet
    expect(reminderSlot(1_000, 100, 990)).toEqual({ current: 0, nextAt: 1_100 });
  });

  it('working hours: plain, wrapping midnight, and all day', () => {
    expect(inWorkingHours(day + 8 * HOUR, [9, 17])).toBe(false);
    expect(inWorkingHours(day + 9 * HOUR, [9, 17])).toBe(true);
    expect(inWorkingHours(day + 17 * HOUR, [9, 17])).toBe(false);
    expect(untilWorkingHours(day + 18 * HOUR, [9, 17])).toBe(15 * HOUR);
    expect(untilWorkingHours(day + 7 * HOUR, [9, 17])).toBe(2 * HOUR);
    expect(untilWorkingHours(day + 10 * HOUR, [9, 17])).toBe(0);
    expect(inWorkingHours(day + 23 * HOUR, [22, 6])).toBe(true);
    expect(inWorkingHours(day + 3 * HOUR, [22, 6])).toBe(true);
    expect(untilWorkingHours(day + 12 * HOUR, [22, 6])).toBe(10 * HOUR);
    expect(inWorkingHours(day + 3 * HOUR, [0, 24])).toBe(true);
    expect(inWorkingHours(day + 3 * HOUR, [5, 5])).toBe(true);
  });
});
