/**
 * A switch Switchyard runs again (same plan, same job id) while the worker's clock is a little ahead
 * of the event source's: the run that made the move starts "after" it, an older run of the same job
 * "before" it. Every run is tried, best first, so the move is still explained and not announced.
 */
import { afterEach, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/audit.js';
import { createWorld, type World } from './world.js';

let w: World | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

it('back and forth with the worker clock 2 s ahead of the event source: no false "outside Switchyard" notice', async () => {
  w = await createWorld();
  const world = w;
  const entries: AuditEntry[] = [];
  const SKEW = 2_000; // the worker's clock runs 2 s ahead (well inside the 60 s allowance)
  const started = (jobId: string, action: 'rollback' | 'promote', targetId: string) =>
    entries.unshift({
      at: world.clock.now() + SKEW,
      environment: 'production',
      action,
      event: 'started',
      jobId,
      targetId,
    });
  const n = await w.notices({ audit: { recent: async () => entries } });
  for (let i = 0; i < 2; i++) {
    started('sw_back', 'rollback', 'dep_3hd7xa');
    await w.advance(1_000, [n]);
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Alice');
    started('sw_forth', 'promote', 'dep_4kq9wz');
    await w.advance(1_000, [n]);
    await w.switchDirectly('promote', 'production', 'dep_4kq9wz', [n], 'Alice');
  }
  expect(w.slack.titles().filter((t) => t.startsWith('Traffic on production moved'))).toEqual([]);
});
