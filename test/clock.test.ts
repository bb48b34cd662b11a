/**
 * The injected clocks: ManualClock wakes sleepers in time order as it advances, rejects an aborted
 * sleep, and lets go of the signal when a sleep ends normally (a long-lived signal, such as the local
 * platform's, must not collect one listener per sleep); the system clock does the same. Elapsed time
 * is read from a clock's monotonic reading, which a step of the wall clock does not move.
 */
import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type Clock, ManualClock, monotonicNow, systemClock } from '../src/clock.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('ManualClock', () => {
  it('wakes sleepers in time order as it advances, and only those due', async () => {
    const clock = new ManualClock(1_000);
    const woke: string[] = [];
    const a = clock.sleep(300).then(() => woke.push(`a@${clock.now()}`));
    const b = clock.sleep(100).then(() => woke.push(`b@${clock.now()}`));
    const c = clock.sleep(900).then(() => woke.push(`c@${clock.now()}`));
    await clock.advance(500);
    await Promise.all([a, b]);
    expect(woke).toEqual(['b@1100', 'a@1300']);
    expect(clock.pending).toBe(1);
    await clock.advance(400);
    await c;
    expect(woke.at(-1)).toBe('c@1900');
    expect(clock.now()).toBe(1_900);
  });

  it('rejects an aborted sleep with the reason and forgets it', async () => {
    const clock = new ManualClock();
    const ctl = new AbortController();
    const sleeping = clock.sleep(1_000, ctl.signal);
    ctl.abort(new Error('stop'));
    await expect(sleeping).rejects.toThrow('stop');
    expect(clock.pending).toBe(0);
    await expect(clock.sleep(10, ctl.signal)).rejects.toThrow('stop');
  });

  it('removes its abort listener when a sleep ends normally', async () => {
    const clock = new ManualClock();
    const ctl = new AbortController();
    for (let i = 0; i < 50; i++) {
      const s = clock.sleep(10, ctl.signal);
      await clock.advance(10);
      await s;
    }
    expect(getEventListeners(ctl.signal, 'abort')).toHaveLength(0);
  });
});

describe('systemClock', () => {
  it('removes its abort listener when a sleep ends normally', async () => {
    const ctl = new AbortController();
    await systemClock.sleep(1, ctl.signal);
    await systemClock.sleep(1, ctl.signal);
    expect(getEventListeners(ctl.signal, 'abort')).toHaveLength(0);
  });
});

describe('monotonic readings (elapsed time)', () => {
  it("the system clock's is the process's monotonic clock, not the wall clock an NTP step moves", () => {
    vi.spyOn(performance, 'now').mockReturnValue(1_234.5);
    const wall = vi.spyOn(Date, 'now').mockReturnValue(Date.UTC(2030, 0, 1));
    expect(systemClock.monotonic?.()).toBe(1_234.5);
    expect(monotonicNow(systemClock)).toBe(1_234.5);
    // The wall clock steps an hour forward: the monotonic reading does not follow it.
    wall.mockReturnValue(Date.UTC(2030, 0, 1, 1));
    expect(monotonicNow(systemClock)).toBe(1_234.5);
    expect(systemClock.now()).toBe(Date.UTC(2030, 0, 1, 1));
  });

  it("a ManualClock's is its own time, so that tests measure elapsed time deterministically", async () => {
    const clock = new ManualClock(10_000);
    expect(monotonicNow(clock)).toBe(10_000);
    await clock.advance(2_500);
    expect(monotonicNow(clock)).toBe(12_500);
  });

  it('a clock without one (a wrapper shifting now()) is measured by performance.now()', () => {
    vi.spyOn(performance, 'now').mockReturnValue(42);
    const shifted: Clock = { now: () => Date.now() + 60_000, sleep: systemClock.sleep };
    expect(monotonicNow(shifted)).toBe(42);
  });
});
