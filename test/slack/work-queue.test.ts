/**
 * WorkQueue (handlers/slack/work.ts): the concurrency bound is exact, a task waiting for a slot starts
 * when a running one ends (without a later `run` to wake the queue), and a concurrency below 1 still
 * runs tasks one at a time.
 */
import { describe, expect, it } from 'vitest';
import { WorkQueue } from '../../handlers/slack/work.js';

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
