/**
 * Notices that must not go wrong when something in between fails or changes: a traffic move whose
 * lookups fail is still announced; a retried notice about a rolled-back state is dropped once that
 * state is over; a platform that keeps no rollback time (Unkey) counts a second rollback from its start.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { DeployPlatform } from '../../src/platform/port.js';
import { createWorld, FlakyPoster, HOUR, type World } from './world.js';

let w: World | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

describe('notices when something fails or changes in between', () => {
  it('a retried "still rolled back" reminder is dropped once the environment was promoted', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const flaky = new FlakyPoster('slack', w.clock, 0);
    const n = await w.notices({ posters: [flaky], postRetryMs: 5_000 });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    // the rollback's own "traffic moved" notice must not eat the fault: let it post first
    flaky.posts.length = 0;
    await w.advance(4 * HOUR - 1, [n]);
    flaky.fails = 1;
    await w.advance(1, [n]); // reminder slot 1: first attempt fails (503)
    expect(flaky.posts).toHaveLength(0);
    // someone promotes right away
    await w.switchDirectly('promote', 'production', 'dep_4kq9wz', [n]);
    expect((await w.platform.snapshot('production')).environment.rolledBack).toBe(false);
    await w.advance(10_000, [n]); // the retry is due
    const titles = flaky.titles();
    expect(titles.filter((t) => t.startsWith('production is still rolled back'))).toEqual([]);
    expect(n.outcomes.some((o) => o.status === 'skipped' && o.reason.includes('no longer rolled back'))).toBe(
      true,
    );
    expect(await w.redis.zcard(`${w.prefix}:notices:retries`)).toBe(0);
  });

  it('a retried reminder is dropped when the environment was promoted and rolled back again to the same deployment', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const flaky = new FlakyPoster('slack', w.clock, 0);
    const n = await w.notices({ posters: [flaky], postRetryMs: 5_000 });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    flaky.posts.length = 0;
    await w.advance(4 * HOUR - 1, [n]);
    flaky.fails = 1;
    await w.advance(1, [n]); // reminder slot 1 of the first period: its first attempt fails
    expect(flaky.posts).toHaveLength(0);
    // promoted, then rolled back again to the same deployment: a new period, not 4 hours old
    await w.switchDirectly('promote', 'production', 'dep_4kq9wz', [n]);
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    await w.advance(10_000, [n]); // the old reminder's retry is due
    expect(flaky.titles().filter((t) => t.startsWith('production is still rolled back'))).toEqual([]);
    expect(n.outcomes.some((o) => o.status === 'skipped' && o.reason.includes('rolled-back period'))).toBe(
      true,
    );
  });

  it('a dashboard move is announced even when the audit read fails (its claim is already taken)', async () => {
    w = await createWorld();
    const world = w;
    let failOnce = true;
    const audit = {
      recent: async (env: string, limit?: number) => {
        if (failOnce) {
          failOnce = false;
          throw new Error('Redis: connection reset');
        }
        return world.audit.recent(env, limit);
      },
    };
    const n = await w.notices({ audit });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Dana (dashboard)');
    expect(w.slack.titles()).toContain('Traffic on production moved to dep_3hd7xa');
    expect(failOnce).toBe(false);
  });

  it('without rolledBackAt (Unkey), a second rollback to the same deployment counts from its own start', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const inner = w.platform;
    // the platform does not say since when it is rolled back, nor keeps a rollback history (Unkey)
    const platform: DeployPlatform = new Proxy(inner, {
      get(target, prop, recv) {
        const v = Reflect.get(target, prop, recv);
        if (prop === 'snapshot')
          return async (env: string) => {
            const s = await target.snapshot(env);
            const { rolledBackAt: _a, rolledBackBy: _b, ...environment } = s.environment;
            return { ...s, environment, liveHistory: s.liveHistory.filter((h) => h.via !== 'rollback') };
          };
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const n = await w.notices({ platform });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    await w.switchDirectly('promote', 'production', 'dep_4kq9wz', [n]);
    await w.advance(2 * 24 * HOUR, [n]);
    const before = w.slack.posts.length;
    // two days later production is rolled back to the same known-good deployment again
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const since2 = w.clock.now();
    const reminders = w.slack.posts
      .slice(before)
      .filter((p) => p.view.title.startsWith('production is still rolled back'));
    expect(reminders).toEqual([]); // nothing at once: the first reminder is due 4 h after this rollback
    await w.advance(4 * HOUR, [n]);
    const next = w.slack.posts
      .slice(before)
      .filter((p) => p.view.title.startsWith('production is still rolled back'));
    expect(next.map((p) => p.at - since2)).toEqual([4 * HOUR]);
  });
});
