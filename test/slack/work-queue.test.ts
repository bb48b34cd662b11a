/**
 * WorkQueue (handlers/slack/work.ts): the concurrency bound is exact, a task waiting for a slot starts
 * when a running one ends (without a later `run` to wake the queue), a concurrency below 1 still
 * runs tasks one at a time, and a task handed to `later` holds no slot while it waits but counts in
 * the backlog's bound and for `idle()`.
 */
import { describe, expect, it } from 'vitest';
import { WorkQueue } from '../../handlers/slack/work.js';
import { ManualClock } from '../../src/clock.js';

/** Lets scheduled callbacks (setImmediate, promise continuations) run a few turns. */
async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

/** A task that records its start and waits until the test releases it. */
function heldTask(name: string, started: string[]) {
  let release: () => void = () => {};
  const held = new Promise<void>((r) => {
    release = r;
  });
  return {
    task: async () => {
      started.push(name);
      await held;
    },
    release: () => release(),
  };
}

describe('WorkQueue concurrency', () => {
  it('never runs more tasks at once than its concurrency', async () => {
    const work = new WorkQueue({ concurrency: 2 });
    const started: string[] = [];
    const tasks = ['a', 'b', 'c'].map((n) => heldTask(n, started));
    for (const t of tasks) expect(work.run(t.task)).toBe(true);
    await turns();
    expect(started).toEqual(['a', 'b']);
    tasks[0]?.release();
    await turns();
    expect(started).toEqual(['a', 'b', 'c']);
    for (const t of tasks) t.release();
    await work.idle();
  });

  it('starts a waiting task when a running one ends, with no later run() to wake the queue', async () => {
    const work = new WorkQueue({ concurrency: 1 });
    const started: string[] = [];
    const a = heldTask('a', started);
    const b = heldTask('b', started);
    work.run(a.task);
    await turns();
    work.run(b.task);
    // b's own wake-up has come and gone while a holds the only slot.
    await turns();
    expect(started).toEqual(['a']);
    a.release();
    await turns();
    expect(started).toEqual(['a', 'b']);
    b.release();
    await work.idle();
    expect(work.size).toBe(0);
  });

  it('a concurrency below 1 still runs tasks, one at a time', async () => {
    const work = new WorkQueue({ concurrency: 0 });
    const started: string[] = [];
    const a = heldTask('a', started);
    const b = heldTask('b', started);
    work.run(a.task);
    work.run(b.task);
    await turns();
    expect(started).toEqual(['a']);
    a.release();
    b.release();
    await turns();
    expect(started).toEqual(['a', 'b']);
    await work.idle();
  });
});

describe('WorkQueue.later', () => {
  it('a task waiting for its time counts in the backlog: run refuses past maxPending, and idle() waits for it', async () => {
    const clock = new ManualClock();
    const work = new WorkQueue({ concurrency: 1, maxPending: 1, clock });
    const started: string[] = [];
    const later = heldTask('later', started);
    work.later(3_000, later.task);
    expect(work.run(heldTask('refused', started).task)).toBe(false);
    let idle = false;
    const idled = work.idle().then(() => {
      idle = true;
    });
    await turns();
    expect(idle).toBe(false);
    await clock.advance(3_000);
    await turns();
    expect(started).toEqual(['later']);
    later.release();
    await idled;
    // Its time has come and it ran: the backlog takes tasks again.
    const next = heldTask('next', started);
    expect(work.run(next.task)).toBe(true);
    next.release();
    await work.idle();
  });

  it('a waiting task holds no slot: a task run meanwhile starts at once', async () => {
    const clock = new ManualClock();
    const work = new WorkQueue({ concurrency: 1, clock });
    const started: string[] = [];
    const later = heldTask('later', started);
    const now = heldTask('now', started);
    work.later(3_000, later.task);
    expect(work.run(now.task)).toBe(true);
    await turns();
    expect(started).toEqual(['now']);
    now.release();
    await clock.advance(3_000);
    await turns();
    expect(started).toEqual(['now', 'later']);
    later.release();
    await work.idle();
  });
});
