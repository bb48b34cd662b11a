import type { WebClient } from '@slack/web-api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createReporterClient, type SlackMessage, SlackReporter } from '../../handlers/slack/reporter.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import type { MessageRef, Progress } from '../../src/progress.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { ObservedClock } from '../support/observed-clock.js';

let fake: FakeSlack;
let clock: ObservedClock;
let metrics: Metrics;
let reporter: SlackReporter;
let ref: MessageRef;

function progress(step: Progress['steps'][number]['step'], outcome?: Progress['outcome']): Progress {
  return {
    jobId: 'job1',
    planId: 'plan_0123456789abcdef01234567',
    action: 'rollback',
    environment: 'production',
    targetId: 'dep_b',
    fromId: 'dep_a',
    requestedBy: { surface: 'slack', userId: 'U0ALICE', displayName: 'alice' },
    steps: [{ step, state: outcome ? 'done' : 'running', startedAt: clock.now() }],
    ...(outcome === undefined ? {} : { outcome, message: `traffic is on dep_b (${outcome})` }),
    traffic: [],
    attempt: 1,
    updatedAt: clock.now(),
  };
}

/** A minimal renderer so these tests read the pacing, not the view (the real view is in e2e). */
function render(p: Progress): SlackMessage {
  const text = p.message ?? `step ${p.steps.at(-1)?.step ?? 'none'}`;
  return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] };
}

function updates(): string[] {
  return fake
    .callsOf('chat.update')
    .filter((c) => c.response.ok === true)
    .map((c) => String(c.args.text));
}

beforeEach(async () => {
  clock = new ObservedClock();
  fake = await new FakeSlack({ clock }).start();
  metrics = createMetrics();
  reporter = new SlackReporter({
    client: createReporterClient(fake.token, fake.apiUrl),
    render,
    clock,
    metrics,
  });
  const posted = await createReporterClient(fake.token, fake.apiUrl).chat.postMessage({
    channel: 'C0PROD',
    text: 'plan',
  });
  ref = { surface: 'slack', channel: 'C0PROD', messageId: String(posted.ts) };
});

afterEach(async () => {
  await reporter.flush();
  await fake.close();
});

async function errorCount(code: string): Promise<number> {
  const m = await metrics.chatApiErrors.get();
  return m.values.filter((v) => v.labels.code === code).reduce((a, v) => a + v.value, 0);
}

describe('SlackReporter', () => {
  it('coalesces a burst: first state at once, then only the latest, and the final state delivered', async () => {
    const slept = clock.sleepOf(1000);
    await reporter.report(progress('queued'), [ref]);
    await reporter.report(progress('validating'), [ref]);
    await reporter.report(progress('switching'), [ref]);
    await fake.waitForCall('chat.update', (c) => c.args.text === 'step queued');
    await slept;
    await reporter.report(progress('verifying'), [ref]);
    const final = reporter.report(progress('done', 'succeeded'), [ref]);
    await clock.advance(1000);
    await final;
    expect(updates()).toEqual(['step queued', 'traffic is on dep_b (succeeded)']);
    expect(fake.message('C0PROD', ref.messageId)?.text).toBe('traffic is on dep_b (succeeded)');
  });

  it('spaces updates of one message at least 1 s apart on the clock', async () => {
    await reporter.report(progress('queued'), [ref]);
    await fake.waitForCall('chat.update', (c) => c.args.text === 'step queued');
    for (const step of ['validating', 'switching', 'verifying'] as const) {
      const slept = clock.sleepOf(1000);
      await reporter.report(progress(step), [ref]);
      await slept;
      await clock.advance(1000);
      await fake.waitForCall('chat.update', (c) => c.args.text === `step ${step}`);
    }
    const times = fake.callsOf('chat.update').map((c) => c.at);
    for (let i = 1; i < times.length; i++)
      expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBeGreaterThanOrEqual(1000);
    expect(updates()).toEqual(['step queued', 'step validating', 'step switching', 'step verifying']);
  });

  it('honours a 429 Retry-After and still delivers the final state', async () => {
    fake.rateLimit('chat.update', 7);
    const slept = clock.sleepOf(7000);
    const final = reporter.report(progress('done', 'succeeded'), [ref]);
    await slept;
    expect(updates()).toEqual([]);
    await clock.advance(7000);
    await final;
    expect(updates()).toEqual(['traffic is on dep_b (succeeded)']);
    expect(await errorCount('ratelimited')).toBe(1);
  });

  it('returns to the job after finalWaitMs while a long Retry-After delays the final state', async () => {
    fake.rateLimit('chat.update', 60);
    const slept = clock.sleepOf(60_000);
    const final = reporter.report(progress('done', 'succeeded'), [ref]);
    await slept;
    // The job is released after 10 s (the default cap) although Slack asked for 60 s.
    await clock.advance(10_000);
    await final;
    expect(updates()).toEqual([]);
    await clock.advance(50_000);
    await reporter.flush();
    expect(updates()).toEqual(['traffic is on dep_b (succeeded)']);
  });

  it('counts and logs a failure without throwing into the job', async () => {
    const gone: MessageRef = { surface: 'slack', channel: 'C0PROD', messageId: '1.999999' };
    await expect(reporter.report(progress('done', 'failed'), [gone])).resolves.toBeUndefined();
    expect(await errorCount('message_not_found')).toBe(1);
    const wrongChannel: MessageRef = { surface: 'slack', channel: 'C0GONE', messageId: ref.messageId };
    await expect(reporter.report(progress('done', 'failed'), [wrongChannel])).resolves.toBeUndefined();
    expect(await errorCount('channel_not_found')).toBe(1);
  });

  it('drops an edit that arrives after the final state (it would overwrite the outcome)', async () => {
    await reporter.report(progress('done', 'succeeded'), [ref]);
    await reporter.edit(ref, { text: 'late confirmation view', blocks: [] });
    await reporter.flush();
    expect(updates()).toEqual(['traffic is on dep_b (succeeded)']);
  });

  it('drops an edit that arrives while the final state is still on its way (it would overwrite it)', async () => {
    // A client whose first chat.update (the final state) is answered only on `release`.
    const sent: string[] = [];
    let release = () => {};
    const client = {
      chat: {
        update: (args: { text: string }) => {
          sent.push(args.text);
          if (sent.length > 1) return Promise.resolve({ ok: true });
          return new Promise((resolve) => {
            release = () => resolve({ ok: true });
          });
        },
      },
    } as unknown as WebClient;
    const held = new SlackReporter({ client, render, clock, minIntervalMs: 0 });
    const final = held.report(progress('done', 'succeeded'), [ref]);
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(sent).toEqual(['traffic is on dep_b (succeeded)']); // in flight
    // a double click's "Confirmed…" view, while the final update is in flight
    const click = held.edit(ref, { text: 'Confirmed: progress follows', blocks: [] });
    release();
    await Promise.all([final, click]);
    await held.flush();
    expect(sent).toEqual(['traffic is on dep_b (succeeded)']);
  });

  it('a final state whose update failed is retried, not replaced by an edit that arrived meanwhile', async () => {
    const timed = new SlackReporter({
      client: createReporterClient(fake.token, fake.apiUrl, 200),
      render,
      clock,
      metrics,
    });
    fake.stall('chat.update', 1); // hangs: given up after 200 ms, then retried on the clock
    const retrying = clock.sleepOf(2000);
    const final = timed.report(progress('done', 'succeeded'), [ref]);
    const click = timed.edit(ref, { text: 'Confirmed: progress follows', blocks: [] });
    await retrying;
    await clock.advance(2000);
    await Promise.all([final, click]);
    await timed.flush();
    expect(updates()).toEqual(['traffic is on dep_b (succeeded)']);
    expect(fake.message('C0PROD', ref.messageId)?.text).toBe('traffic is on dep_b (succeeded)');
  });

  it('renders the real progress view by default', async () => {
    const real = new SlackReporter({ client: createReporterClient(fake.token, fake.apiUrl), clock });
    await real.report(progress('done', 'succeeded'), [ref]);
    const call = await fake.waitForCall('chat.update');
    expect(call.response.ok).toBe(true);
    expect(Array.isArray(call.args.blocks)).toBe(true);
  });

  it('gives up a call that hangs and delivers the final state on the next attempt', async () => {
    // A Web API that accepts the call and never answers: without a timeout the final state (and the
    // job waiting for it) would wait forever.
    const timed = new SlackReporter({
      client: createReporterClient(fake.token, fake.apiUrl, 200),
      render,
      clock,
      metrics,
    });
    fake.stall('chat.update', 1);
    const retrying = clock.sleepOf(2000);
    const final = timed.report(progress('done', 'succeeded'), [ref]);
    await retrying; // the hung call was given up (200 ms, real time); the retry waits on the clock
    expect(fake.stalled('chat.update')).toBe(1);
    expect(updates()).toEqual([]);
    await clock.advance(2000);
    await final;
    expect(updates()).toEqual(['traffic is on dep_b (succeeded)']);
    expect(await errorCount('request_error')).toBe(1);
  });

  it('ignores messages of other surfaces', async () => {
    await reporter.report(progress('done', 'succeeded'), [
      { surface: 'discord', channel: '123456', messageId: '42' },
    ]);
    expect(fake.callsOf('chat.update')).toEqual([]);
  });
});

describe('SlackReporter: click views and progress on one message', () => {
  /** `progress(step)` stamped `at` ms after the clock's start. */
  const at = (step: Progress['steps'][number]['step'], ms: number): Progress => ({
    ...progress(step),
    updatedAt: clock.now() + ms,
  });

  it('a view that yields to progress is dropped once a progress state of the message was queued here', async () => {
    // The job's worker (in this process) reported before the click's "Confirmed…" view was queued.
    await reporter.report(at('validating', 1), [ref]);
    await expect(
      reporter.edit(ref, { text: 'Confirmed: progress follows', blocks: [] }, { yieldsToProgress: true }),
    ).resolves.toBeUndefined();
    await reporter.flush();
    expect(updates()).toEqual(['step validating']);
    // An edit that does not yield (an alert suggestion's, say) still goes through the lane as before.
    const slept = clock.sleepOf(1000);
    const other = reporter.edit(ref, { text: 'other view', blocks: [] });
    await slept;
    await clock.advance(1000);
    await other;
    expect(updates()).toEqual(['step validating', 'other view']);
  });

  it('a view queued before any progress still goes out, and progress follows it', async () => {
    const view = reporter.edit(
      ref,
      { text: 'Confirmed: progress follows', blocks: [] },
      { yieldsToProgress: true },
    );
    await view;
    const slept = clock.sleepOf(1000);
    await reporter.report(at('validating', 1), [ref]);
    await slept;
    await clock.advance(1000);
    await reporter.flush();
    expect(updates()).toEqual(['Confirmed: progress follows', 'step validating']);
  });

  it('an older progress snapshot never replaces a newer one queued here', async () => {
    await reporter.report(at('switching', 5), [ref]);
    await reporter.report(at('validating', 2), [ref]); // read late, e.g. from Redis
    await reporter.flush();
    expect(updates()).toEqual(['step switching']);
  });

  it('a view whose skipIf guard answers true when its turn comes is dropped; a guard that fails lets it go', async () => {
    // held back by a 429, then asked again when its turn comes: the job reported meanwhile
    fake.rateLimit('chat.update', 7, 1);
    const slept = clock.sleepOf(7000);
    let reportedElsewhere = false;
    const view = reporter.edit(
      ref,
      { text: 'Confirmed: progress follows', blocks: [] },
      { yieldsToProgress: true, skipIf: async () => reportedElsewhere },
    );
    await slept;
    reportedElsewhere = true;
    await clock.advance(7000);
    await view;
    expect(updates()).toEqual([]);
    // a guard that cannot tell (Redis down) does not keep the view back
    const other = await createReporterClient(fake.token, fake.apiUrl).chat.postMessage({
      channel: 'C0PROD',
      text: 'plan 2',
    });
    const ref2 = { ...ref, messageId: String(other.ts) };
    await reporter.edit(
      ref2,
      { text: 'Confirmed again', blocks: [] },
      {
        skipIf: async () => {
          throw new Error('redis down');
        },
      },
    );
    expect(updates()).toContain('Confirmed again');
  });
});
