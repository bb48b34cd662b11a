/**
 * `followProgress` (handlers/follow.ts) on a real queue: progress published as BullMQ job progress
 * reaches each bot replica's console, and each replica edits only the console messages it holds;
 * Slack/Discord refs are never handed to a follower; one job's updates are delivered in published
 * order, and when several wait only the newest is delivered.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConsoleSurface } from '../../handlers/console/surface.js';
import { followProgress } from '../../handlers/follow.js';
import { silentLogger } from '../../src/log.js';
import type { MessageRef, Progress } from '../../src/progress.js';
import { SwitchQueue } from '../../src/queue.js';
import { progressView } from '../../src/views/model.js';
import { RecordingReporter } from '../jobs/fixtures/harness.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function openQueue(): Promise<SwitchQueue> {
  const queue = new SwitchQueue({ redisUrl: redisUrl(), queueName: uniqueName('follow') });
  closers.push(async () => {
    await queue.obliterate();
    await queue.close();
  });
  await queue.waitUntilReady();
  return queue;
}

const requestedBy = { surface: 'console', userId: 'alice', displayName: 'alice' } as const;

async function enqueue(queue: SwitchQueue, messages: MessageRef[]): Promise<string> {
  const { jobId } = await queue.enqueue({
    action: 'rollback',
    planId: uniqueName('plan').replace(/[^A-Za-z0-9_-]/g, '_'),
    projectId: 'proj_acme',
    environment: 'production',
    targetId: 'dep_3hd7xa',
    expectedCurrent: 'dep_4kq9wz',
    expectedRolledBack: false,
    domains: ['shop.localhost'],
    requestedBy,
    messages,
    requestedAt: Date.now(),
  });
  return jobId;
}

let tick = 1_800_000_000_000;
function state(jobId: string, step: 'validating' | 'switching' | 'done'): Progress {
  const at = ++tick;
  const order = ['validating', 'switching', 'done'] as const;
  const upTo = order.slice(0, order.indexOf(step) + 1);
  const finished = step === 'done';
  return {
    jobId,
    planId: 'p',
    action: 'rollback',
    environment: 'production',
    targetId: 'dep_3hd7xa',
    fromId: 'dep_4kq9wz',
    requestedBy,
    steps: upTo.map((s) => ({
      step: s,
      state: s === step && !finished ? 'running' : 'done',
      startedAt: at,
      ...(s === step && !finished ? {} : { endedAt: at }),
    })),
    ...(finished ? { outcome: 'succeeded' as const, message: 'Rolled back production.' } : {}),
    traffic: finished ? [{ hostname: 'shop.localhost', deploymentId: 'dep_3hd7xa', ok: true }] : [],
    attempt: 1,
    updatedAt: at,
  };
}

/** Publishes progress the way a worker does: BullMQ job progress. */
async function publish(queue: SwitchQueue, progress: Progress): Promise<void> {
  const job = await queue.queue.getJob(progress.jobId);
  if (!job) throw new Error(`no job ${progress.jobId}`);
  await job.updateProgress(progress);
}

/** Resolves when the console entry `id` is edited into a message containing `text`. */
function edited(surface: ConsoleSurface, id: string, text: string): Promise<void> {
  return new Promise((resolve) => {
    const check = () => JSON.stringify(surface.get(id)?.message ?? {}).includes(text);
    if (check()) return resolve();
    const off = surface.onEntry((e) => {
      if (e.id === id && check()) {
        off();
        resolve();
      }
    });
  });
}

describe('followProgress', () => {
  it('edits, in each replica, only the console messages it holds; never hands over Slack refs', async () => {
    const queue = await openQueue();
    const a = new ConsoleSurface();
    const b = new ConsoleSurface();
    const placeholder = progressView(state('sw_x', 'validating'));
    const refA = a.postView(placeholder);
    const refB = b.postView(placeholder);
    const slackRef: MessageRef = { surface: 'slack', channel: 'C0PROD', messageId: '1700000000.000100' };
    const jobId = await enqueue(queue, [refA, slackRef]);
    expect(await queue.addMessages(jobId, [refB])).toBe(true);

    const recorded = new RecordingReporter();
    for (const reporter of [a, b, recorded]) {
      const follower = await followProgress({ queue, surface: 'console', reporter, logger: silentLogger });
      closers.push(() => follower.stop());
    }
    const entriesA = a.timeline().length;
    const entriesB = b.timeline().length;
    let foreignEdits = 0;
    a.onEntry((e) => {
      if (e.id !== refA.messageId) foreignEdits++;
    });
    b.onEntry((e) => {
      if (e.id !== refB.messageId) foreignEdits++;
    });

    await publish(queue, state(jobId, 'switching'));
    await publish(queue, state(jobId, 'done'));
    await Promise.all([
      edited(a, refA.messageId, 'Traffic is on'),
      edited(b, refB.messageId, 'Traffic is on'),
      recorded.waitFor((p) => p.outcome === 'succeeded'),
    ]);

    expect(a.timeline()).toHaveLength(entriesA);
    expect(b.timeline()).toHaveLength(entriesB);
    expect(foreignEdits).toBe(0);
    expect(a.get(refA.messageId)?.editedAt).toBeDefined();
    for (const r of recorded.reports) {
      expect(r.messages.every((m) => m.surface === 'console')).toBe(true);
      expect(r.messages).toEqual(expect.arrayContaining([refA, refB]));
    }
  });

  it('delivers one job in published order and skips states overtaken while a delivery was under way', async () => {
    const queue = await openQueue();
    const ref: MessageRef = { surface: 'console', channel: 'console', messageId: 'm_follow_1' };
    const jobId = await enqueue(queue, [ref]);

    // A reporter whose first delivery waits until the test lets it go.
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started: () => void = () => undefined;
    const firstStarted = new Promise<void>((resolve) => {
      started = resolve;
    });
    const delivered = new RecordingReporter();
    const slow = {
      async report(progress: Progress, messages: readonly MessageRef[]): Promise<void> {
        await delivered.report(progress, messages);
        if (delivered.reports.length === 1) {
          started();
          await gate;
        }
      },
    };
    const follower = await followProgress({
      queue,
      surface: 'console',
      reporter: slow,
      logger: silentLogger,
    });
    closers.push(() => follower.stop());
    // Both listeners of the one queue receive each event together: when `witness` has a state, the
    // slow follower has it queued too.
    const witness = new RecordingReporter();
    const witnessFollower = await followProgress({
      queue,
      surface: 'console',
      reporter: witness,
      logger: silentLogger,
    });
    closers.push(() => witnessFollower.stop());

    const first = state(jobId, 'validating');
    const middle = state(jobId, 'switching');
    const last = state(jobId, 'done');
    await publish(queue, first);
    await firstStarted;
    await publish(queue, middle);
    await publish(queue, last);
    await witness.waitFor((p) => p.updatedAt === last.updatedAt);
    release();
    await delivered.waitFor((p) => p.updatedAt === last.updatedAt);

    expect(delivered.of(jobId).map((p) => p.updatedAt)).toEqual([first.updatedAt, last.updatedAt]);
  });
});
