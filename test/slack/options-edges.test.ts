/**
 * startSlack (handlers/slack/index.ts) hands its options on, which no other test noticed dropped (each
 * then falls back to its default): `progressIntervalMs` spaces one message's progress edits,
 * `workConcurrency` bounds the after-ack tasks, and `callTimeoutMs` bounds the poster's posts, the
 * reporter's edits and the replies to response URLs (10 s each without it). Real surface over the fake
 * Slack (test/fakes/slack/world.ts; test/slack/bot.ts where the surface runs on a ManualClock).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { textView } from '../../src/chat-sinks.js';
import { ManualClock, systemClock, within } from '../../src/clock.js';
import type { MessageRef } from '../../src/progress.js';
import { startWorld, WORLD_CHANNEL, type World, type WorldOptions } from '../fakes/slack/world.js';
import { progressFixture } from '../support/progress.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { startBot } from './bot.js';

const closers: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function world(opts: Partial<WorldOptions> = {}): Promise<World> {
  const w = await startWorld({ redisUrl: redisUrl(), name: uniqueName('slack-opt'), worker: false, ...opts });
  closers.push(() => w.close());
  return w;
}

/** Well under the 10 s a call may take without `callTimeoutMs`, well over what the tests' calls take. */
const BOUND_MS = 5_000;

/** Whether `work` settled within BOUND_MS. */
function settlesInBound(work: Promise<unknown>): Promise<boolean> {
  return within(
    systemClock,
    BOUND_MS,
    work.then(() => true),
    false,
  );
}

/** Replies to response URLs given up so far (counted by the handlers). */
async function failedReplies(w: World): Promise<number> {
  const { values } = await w.metrics.chatApiErrors.get();
  return values.filter((v) => v.labels.method === 'response_url').reduce((n, v) => n + v.value, 0);
}

const alert = textView('Alert on production', ['It fires.'], 'warning');

describe('startSlack options', () => {
  it('progressIntervalMs spaces the edits of one message: the next state waits that long, not the default 1 s', async () => {
    const clock = new ManualClock();
    const b = await startBot({ clock, add: (close) => closers.push(close), progressIntervalMs: 5_000 });
    const ref: MessageRef = await b.surface.poster.post(WORLD_CHANNEL, alert);
    const edits = () => b.fake.callsOf('chat.update').filter((c) => c.args.ts === ref.messageId).length;
    const steps = [{ step: 'switching' as const, state: 'running' as const, startedAt: 1 }];
    await b.surface.reporter.report(progressFixture({ steps, updatedAt: 1 }), [ref]);
    await b.surface.reporter.flush();
    expect(edits()).toBe(1);

    // The next state waits on the surface's clock for the rest of the interval.
    await b.surface.reporter.report(progressFixture({ steps, updatedAt: 2, message: 'second' }), [ref]);
    expect(clock.pending).toBe(1);
    await clock.advance(1_000);
    expect(clock.pending).toBe(1);
    expect(edits()).toBe(1);
    await clock.advance(4_000);
    await b.surface.reporter.flush();
    expect(edits()).toBe(2);
  });

  it('workConcurrency bounds the after-ack tasks: with 1, a command waits for the task before it', async () => {
    const w = await world({ workConcurrency: 1, callTimeoutMs: 1_000 });
    // The first command's reply hangs until callTimeoutMs gives it up.
    w.fake.stall('response_url', 1);
    await w.requests.command({ command: '/rollback', text: 'nowhere' });
    await vi.waitFor(() => expect(w.fake.stalled('response_url')).toBe(1), { timeout: 5_000, interval: 5 });
    await w.requests.command({ command: '/rollback', text: 'elsewhere' });
    await w.fake.waitForResponse((r) => JSON.stringify(r.body).includes('elsewhere'));
    // Its task ran once the first one had given its reply up, not beside it (8 at once by default).
    expect(await failedReplies(w)).toBe(1);
  });

  it("callTimeoutMs bounds the poster's posts: a post Slack holds is given up within it (and not sent again: Slack may have posted it)", async () => {
    const w = await world({ callTimeoutMs: 200 });
    w.fake.stall('chat.postMessage', 1);
    const posted = w.surface.poster.post(WORLD_CHANNEL, alert).catch((e: unknown) => e);
    expect(await settlesInBound(posted)).toBe(true);
    expect(await posted).toMatchObject({ name: 'SlackPostError', slackCode: 'timeout', transient: false });
    expect(w.fake.stalled('chat.postMessage')).toBe(1);
    expect(w.fake.callsOf('chat.postMessage')).toEqual([]);
  });

  it("callTimeoutMs bounds the reporter's edits: a final state whose edit Slack holds is sent again at once", async () => {
    const w = await world({ callTimeoutMs: 200 });
    const ref = await w.surface.poster.post(WORLD_CHANNEL, alert);
    w.fake.stall('chat.update', 1);
    const final = progressFixture({
      steps: [{ step: 'switching', state: 'done', startedAt: 1, endedAt: 2 }],
      outcome: 'succeeded',
      updatedAt: 2,
    });
    // report() waits for a final state to reach Slack (up to 10 s, as long as an unbounded edit would hang).
    expect(await settlesInBound(w.surface.reporter.report(final, [ref]))).toBe(true);
    expect(w.fake.stalled('chat.update')).toBe(1);
    expect(w.fake.message(ref.channel, ref.messageId)?.versions).toHaveLength(2);
  });

  it('callTimeoutMs bounds the replies to a response URL: a reply Slack holds is given up within it', async () => {
    const w = await world({ callTimeoutMs: 200 });
    w.fake.stall('response_url', 1);
    await w.requests.command({ command: '/rollback', text: 'nowhere' });
    expect(await settlesInBound(w.surface.idle())).toBe(true);
    expect(w.fake.stalled('response_url')).toBe(1);
    expect(await failedReplies(w)).toBe(1);
  });
});
