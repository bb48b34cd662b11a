/**
 * The SlackReporter's chat.update budget. Slack applies its rate limits per API method per app per
 * workspace (chat.update: Tier 3, 50+ a minute), so every message's edits draw on one budget, a 429
 * holds them all, and a 429 is a wait, not a failed try: a final state outlives a storm of short
 * Retry-Afters. Everything runs on an ObservedClock: a test moves time only once something waits on it.
 */
import type { WebClient } from '@slack/web-api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  classifySlackError,
  createReporterClient,
  SlackEditError,
  type SlackMessage,
  SlackReporter,
  type SlackReporterOptions,
} from '../../handlers/slack/reporter.js';
import type { MessageRef, Progress } from '../../src/progress.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { ObservedClock } from '../support/observed-clock.js';
import { SLACK_503, SlackFront } from './faulty-front.js';

let fake: FakeSlack;
let front: SlackFront;
let clock: ObservedClock;

beforeEach(async () => {
  clock = new ObservedClock();
  fake = await new FakeSlack({ clock }).start();
  front = await SlackFront.start(fake);
});

afterEach(async () => {
  await front.close();
  await fake.close();
});

/** `state` of message `env`'s switch (final with an outcome), stamped now. */
function progress(env: string, state: string, outcome?: Progress['outcome']): Progress {
  return {
    jobId: `job-${env}`,
    planId: 'plan_0123456789abcdef01234567',
    action: 'rollback',
    environment: env,
    targetId: 'dep_b',
    fromId: 'dep_a',
    requestedBy: { surface: 'slack', userId: 'U0ALICE', displayName: 'alice' },
    steps: [
      { step: 'verifying', state: outcome ? 'done' : 'running', startedAt: clock.now(), detail: state },
    ],
    ...(outcome === undefined ? {} : { outcome, message: `${env}: ${state}` }),
    traffic: [],
    attempt: 1,
    updatedAt: clock.now(),
  };
}

/** A minimal renderer so these tests read the pacing, not the view. */
function render(p: Progress): SlackMessage {
  const text = p.message ?? `${p.environment}: ${p.steps.at(-1)?.detail ?? ''}`;
  return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] };
}

function reporterOver(apiUrl: string, opts: Partial<SlackReporterOptions> = {}): SlackReporter {
  return new SlackReporter({ client: createReporterClient(fake.token, apiUrl), render, clock, ...opts });
}

async function post(channel = 'C0PROD'): Promise<MessageRef> {
  const posted = await createReporterClient(fake.token, fake.apiUrl).chat.postMessage({
    channel,
    text: 'plan',
  });
  return { surface: 'slack', channel, messageId: String(posted.ts) };
}

/** chat.update calls that reached the fake: when (ms after `from`), which message, with what. */
function updates(from: number): { at: number; ts: string; text: string; ok: boolean }[] {
  return fake.callsOf('chat.update').map((c) => ({
    at: c.at - from,
    ts: String(c.args.ts),
    text: String(c.args.text),
    ok: c.response.ok === true,
  }));
}

/**
 * A Web API client that answers every chat.update at once (no network), noting when it was called on
 * the clock: with it, everything the reporter does between two clock moves has run once the move
 * returns (ManualClock lets woken code run before waking the next sleeper).
 */
function instantClient(): { client: WebClient; calls: { at: number; ts: string; text: string }[] } {
  const calls: { at: number; ts: string; text: string }[] = [];
  const client = {
    chat: {
      update: (args: { ts: string; text: string }) => {
        calls.push({ at: clock.now(), ts: args.ts, text: args.text });
        return Promise.resolve({ ok: true });
      },
    },
  } as unknown as WebClient;
  return { client, calls };
}

function refOf(i: number): MessageRef {
  return { surface: 'slack', channel: 'C0PROD', messageId: `1700000000.${String(i).padStart(6, '0')}` };
}

describe('SlackReporter: one chat.update budget for every message', () => {
  it('ten messages verifying at once make about 50 chat.update calls a minute in all, not one a second each', async () => {
    const { client, calls } = instantClient();
    const reporter = new SlackReporter({ client, render, clock });
    const refs = Array.from({ length: 10 }, (_, i) => refOf(i));
    const start = clock.now();
    // Each environment's verification reports a change every second for a minute.
    for (let s = 0; s < 60; s++) {
      for (const [i, ref] of refs.entries())
        await reporter.report(progress(`env${i}`, `${s % 12} of 12`), [ref]);
      await clock.advance(1000);
    }
    const inFirstMinute = calls.filter((c) => c.at - start < 60_000);
    // The burst (10), then one call per 1.2 s: at most 10 + 50 in the minute, and the budget is used.
    expect(inFirstMinute.length).toBeLessThanOrEqual(60);
    expect(inFirstMinute.length).toBeGreaterThanOrEqual(55);
    // Every message still ends on its final state (each lane kept only its latest state meanwhile).
    const finals = refs.map((ref, i) => reporter.report(progress(`env${i}`, 'done', 'succeeded'), [ref]));
    const idle = reporter.flush();
    while (calls.filter((c) => c.text.endsWith(': done')).length < refs.length) await clock.advance(1200);
    await Promise.all(finals);
    await idle;
    for (const ref of refs)
      expect(calls.filter((c) => c.ts === ref.messageId).at(-1)?.text).toMatch(/: done$/);
  });

  it('when the budget is short, final states go before intermediate ones', async () => {
    const { client, calls } = instantClient();
    const reporter = new SlackReporter({ client, render, clock });
    const refs = Array.from({ length: 10 }, (_, i) => refOf(i));
    const start = clock.now();
    // The burst goes at once: one state on each of ten messages.
    for (const [i, ref] of refs.entries()) await reporter.report(progress(`env${i}`, 'switching'), [ref]);
    await reporter.flush();
    expect(calls).toHaveLength(10);
    await clock.advance(1000); // past every message's own spacing; the budget has no call left yet
    // Five messages report a step, then the five others their outcome: all wait for the budget.
    for (const [i, ref] of refs.slice(0, 5).entries())
      await reporter.report(progress(`env${i}`, 'verifying'), [ref]);
    const finals = refs
      .slice(5)
      .map((ref, i) => reporter.report(progress(`env${i + 5}`, 'done', 'succeeded'), [ref]));
    expect(calls).toHaveLength(10);
    const idle = reporter.flush();
    while (calls.length < 20) await clock.advance(1200);
    await Promise.all(finals);
    await idle;
    const after = calls.slice(10);
    // The outcomes went first, in the order asked, then the steps; one call per 1.2 s.
    expect(after.map((c) => c.text)).toEqual([
      'env5: done',
      'env6: done',
      'env7: done',
      'env8: done',
      'env9: done',
      'env0: verifying',
      'env1: verifying',
      'env2: verifying',
      'env3: verifying',
      'env4: verifying',
    ]);
    expect(after.map((c) => c.at - start)).toEqual([
      1200, 2400, 3600, 4800, 6000, 7200, 8400, 9600, 10800, 12000,
    ]);
  });

  it('a single switch on its own is not slowed: each step goes out on its message spacing', async () => {
    const { client, calls } = instantClient();
    const reporter = new SlackReporter({ client, render, clock });
    const ref = refOf(1);
    const start = clock.now();
    for (let s = 0; s < 12; s++) {
      // Whether the lane went idle (its edit sent) or waited on the clock for anything.
      const slept = new Promise<string>((resolve) => clock.events.once('sleep', () => resolve('waited')));
      await reporter.report(progress('production', `step ${s}`), [ref]);
      expect(await Promise.race([reporter.flush().then(() => 'sent'), slept])).toBe('sent');
      await clock.advance(1000);
    }
    expect(calls.map((c) => c.at - start)).toEqual(Array.from({ length: 12 }, (_, s) => s * 1000));
  });

  it('a click view (skipIf) and a poster edit (rejectOnFailure) wait their turn in the same budget', async () => {
    const { client, calls } = instantClient();
    const reporter = new SlackReporter({ client, render, clock });
    const start = clock.now();
    for (let i = 0; i < 10; i++) await reporter.report(progress(`env${i}`, 'switching'), [refOf(i)]);
    await reporter.flush();
    expect(calls).toHaveLength(10);
    // A "Confirmed…" view whose job reports elsewhere meanwhile, and an alert suggestion's edit.
    let reportedElsewhere = false;
    let asked = 0;
    const view = reporter.edit(
      refOf(10),
      { text: 'Confirmed: progress follows', blocks: [] },
      {
        yieldsToProgress: true,
        skipIf: async () => {
          asked += 1;
          return reportedElsewhere;
        },
      },
    );
    const edit = reporter.edit(refOf(11), { text: 'Resolved', blocks: [] }, { rejectOnFailure: true });
    expect(calls).toHaveLength(10);
    expect(asked).toBe(0); // asked when its turn comes, not before
    reportedElsewhere = true;
    await clock.advance(1200);
    await view;
    expect(asked).toBe(1);
    await clock.advance(1200);
    await expect(edit).resolves.toBeUndefined();
    await reporter.flush();
    expect(calls.slice(10).map((c) => ({ text: c.text, at: c.at - start }))).toEqual([
      { text: 'Resolved', at: 2400 },
    ]);
  });

  it("a 429 on one message's edit holds every message's edits for its Retry-After; its final state then goes first", async () => {
    const reporter = reporterOver(fake.apiUrl);
    const a = await post();
    const others = [await post(), await post(), await post()];
    const start = clock.now();
    fake.rateLimit('chat.update', 30, 1);
    const limited = clock.sleepOf(30_000);
    const final = reporter.report(progress('envA', 'done', 'succeeded'), [a]);
    await limited; // A's outcome met the 429 and waits 30 s
    // 5 s later three other messages report: they wait for the same 30 s, without calling.
    await clock.advance(5000);
    const held = clock.sleepOf(25_000).then(() => 'held');
    const called = fake
      .waitForCall('chat.update', (c) => c.args.text === 'env0: switching')
      .then(
        () => 'called',
        () => 'never called',
      );
    for (const [i, ref] of others.entries()) await reporter.report(progress(`env${i}`, 'switching'), [ref]);
    expect(await Promise.race([held, called])).toBe('held');
    expect(updates(start).map((u) => u.at)).toEqual([0]);
    // Once the Retry-After has passed: one call (A's outcome first), then the steady rate.
    await clock.advance(25_000);
    await fake.waitForCall('chat.update', (c) => c.response.ok === true);
    await final;
    for (let k = 0; k < others.length; k++) {
      await clock.advance(1200);
      await fake.waitForCall('chat.update', (c) => c.args.text === `env${k}: switching`);
    }
    await reporter.flush();
    expect(updates(start).map((u) => ({ at: u.at, text: u.text, ok: u.ok }))).toEqual([
      { at: 0, text: 'envA: done', ok: false },
      { at: 30_000, text: 'envA: done', ok: true },
      { at: 31_200, text: 'env0: switching', ok: true },
      { at: 32_400, text: 'env1: switching', ok: true },
      { at: 33_600, text: 'env2: switching', ok: true },
    ]);
  });

  it('refuses a budget that cannot work, naming the option', () => {
    const { client } = instantClient();
    expect(() => new SlackReporter({ client, updatesPerMinute: 0 })).toThrow(/updatesPerMinute/);
    expect(() => new SlackReporter({ client, updateBurst: 0.5 })).toThrow(/updateBurst/);
  });
});

/**
 * The next pause the reporter takes on the clock (ms), or 'idle' once it has nothing left to do (its
 * state delivered or given up). Subscribe before the reporter can get there (before moving the clock).
 */
function nextPause(reporter: SlackReporter): Promise<number | 'idle'> {
  return Promise.race([
    new Promise<number>((resolve) => clock.events.once('sleep', resolve)),
    reporter.flush().then(() => 'idle' as const),
  ]);
}

/**
 * Drives a 429 storm: each time the reporter waits out a Retry-After of `retryAfterMs`, the clock moves
 * on by that much, until the reporter stops waiting (delivered or given up: `reporter.flush()`). `stop`
 * ends the storm when it returns true (given the ms since `start`). Returns how many waits there were.
 */
async function rideStorm(
  reporter: SlackReporter,
  retryAfterMs: number,
  start: number,
  stop: (elapsed: number) => boolean = () => false,
): Promise<number> {
  let waits = 0;
  // Subscribed before the reporter can get to the wait (its call is still on its way to the fake).
  let waiting = clock.sleepOf(retryAfterMs);
  for (;;) {
    const step = await Promise.race([
      waiting.then(() => 'waits' as const),
      reporter.flush().then(() => 'idle' as const),
    ]);
    if (step === 'idle') return waits;
    waits += 1;
    if (stop(clock.now() + retryAfterMs - start)) fake.rateLimit('chat.update', retryAfterMs / 1000, 0);
    waiting = clock.sleepOf(retryAfterMs);
    await clock.advance(retryAfterMs);
  }
}

describe('SlackReporter: a 429 is a wait, not a failed try', () => {
  it('a final state outlives a 30 s storm of 429s answered with Retry-After: 1', async () => {
    const reporter = reporterOver(fake.apiUrl);
    const ref = await post();
    const start = clock.now();
    fake.rateLimit('chat.update', 1, 1_000_000);
    const final = reporter.report(progress('production', 'done', 'succeeded'), [ref]);
    const waits = await rideStorm(reporter, 1000, start, (elapsed) => elapsed >= 30_000);
    await final;
    const calls = updates(start);
    expect(waits).toBe(30);
    expect(calls.filter((c) => !c.ok)).toHaveLength(30);
    expect(calls.filter((c) => c.ok)).toEqual([
      { at: 30_000, ts: ref.messageId, text: 'production: done', ok: true },
    ]);
    expect(fake.message('C0PROD', ref.messageId)?.text).toBe('production: done');
  });

  it('a final state is given up only once it has been rate limited for finalRateLimitWaitMs', async () => {
    const reporter = reporterOver(fake.apiUrl, { finalRateLimitWaitMs: 20_000 });
    const ref = await post();
    const start = clock.now();
    fake.rateLimit('chat.update', 2, 1_000_000);
    const final = reporter.report(progress('production', 'done', 'succeeded'), [ref]);
    await rideStorm(reporter, 2000, start);
    await final;
    // Tries every 2 s while under 20 s of 429s; the one at 20 s is the last.
    expect(updates(start).map((c) => c.at)).toEqual(Array.from({ length: 11 }, (_, k) => k * 2000));
    expect(fake.message('C0PROD', ref.messageId)?.text).toBe('plan');
  });

  it('the default bound for a final state is 30 minutes of 429s', async () => {
    const reporter = reporterOver(fake.apiUrl);
    const ref = await post();
    const start = clock.now();
    fake.rateLimit('chat.update', 60, 1_000_000);
    const final = reporter.report(progress('production', 'done', 'succeeded'), [ref]);
    await rideStorm(reporter, 60_000, start);
    await final;
    const calls = updates(start);
    expect(calls.at(-1)?.at).toBe(30 * 60_000);
    expect(calls).toHaveLength(31);
  });

  it('an edit whose caller hears of failures waits out 429s for rateLimitWaitMs, then rejects as transient', async () => {
    const reporter = reporterOver(fake.apiUrl, { rateLimitWaitMs: 8000 });
    const ref = await post();
    const start = clock.now();
    fake.rateLimit('chat.update', 1, 1_000_000);
    const edit = reporter.edit(ref, { text: 'Resolved', blocks: [] }, { rejectOnFailure: true });
    const outcome = edit.then(
      () => undefined,
      (e: unknown) => e,
    );
    await rideStorm(reporter, 1000, start);
    const error = await outcome;
    expect(error).toBeInstanceOf(SlackEditError);
    expect(error).toMatchObject({ slackCode: 'ratelimited', transient: true });
    expect(updates(start).map((c) => c.at)).toEqual(Array.from({ length: 9 }, (_, k) => k * 1000));
  });

  it("a final state rides out Slack's 5xx like a 429: pauses double from 2 s to a minute, and it lands once Slack is back", async () => {
    const reporter = reporterOver(front.apiUrl);
    const ref = await post();
    const start = clock.now();
    front.fail('chat.update', 1_000, SLACK_503); // Slack is down for chat.update
    const final = reporter.report(progress('production', 'done', 'succeeded'), [ref]);
    // Subscribed after report() (whose own 10 s wait is already on the clock), before the first answer.
    let next = nextPause(reporter);
    const pauses: number[] = [];
    for (;;) {
      const pause = await next;
      if (pause === 'idle') break;
      pauses.push(pause);
      // Slack is back after three minutes of 503s: the try after this pause goes through.
      if (clock.now() - start >= 3 * 60_000 - pause) front.heal('chat.update');
      next = nextPause(reporter);
      await clock.advance(pause);
    }
    await final;
    expect(pauses).toEqual([2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
    expect(front.faulted.filter((m) => m === 'chat.update')).toHaveLength(7);
    expect(updates(start)).toEqual([{ at: 182_000, ts: ref.messageId, text: 'production: done', ok: true }]);
    expect(fake.message('C0PROD', ref.messageId)?.text).toBe('production: done');
  });

  it('a final state Slack keeps failing (fatal_error) is given up once it has failed for finalRateLimitWaitMs', async () => {
    const reporter = reporterOver(front.apiUrl, { finalRateLimitWaitMs: 5 * 60_000 });
    const ref = await post();
    const start = clock.now();
    front.fail('chat.update', 1_000, { status: 200, body: { ok: false, error: 'fatal_error' } });
    const final = reporter.report(progress('production', 'done', 'succeeded'), [ref]);
    let next = nextPause(reporter);
    const pauses: number[] = [];
    for (;;) {
      const pause = await next;
      if (pause === 'idle') break;
      pauses.push(pause);
      next = nextPause(reporter);
      await clock.advance(pause);
    }
    await final;
    // Tries at 0, 2, 6, 14, 30, 62, 122, 182, 242 and 302 s: the one after 5 minutes of failures is the last.
    expect(pauses).toEqual([2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000, 60_000]);
    expect(front.faulted.filter((m) => m === 'chat.update')).toHaveLength(10);
    expect(clock.now() - start).toBe(302_000);
    expect(fake.message('C0PROD', ref.messageId)?.text).toBe('plan');
  });

  it('a final state met by an HTTP 4xx other than 429 (a refusal, not an outage) is given up at once, not retried for 30 minutes', async () => {
    const reporter = reporterOver(front.apiUrl);
    for (const status of [400, 403, 404]) {
      const ref = await post();
      front.fail('chat.update', 1_000, { status, body: { ok: false, error: 'refused' } });
      const final = reporter.report(progress('production', 'done', 'succeeded'), [ref]);
      // Given up without a pause: the next thing the lane does is go idle, not wait 2 s for a retry.
      expect(await nextPause(reporter), `HTTP ${status}`).toBe('idle');
      await final;
      front.heal('chat.update');
      expect(fake.message('C0PROD', ref.messageId)?.text).toBe('plan');
    }
    expect(front.faulted.filter((m) => m === 'chat.update')).toHaveLength(3);
  });

  it("classifies Slack's answers: 4xx (but 429) and refusals are final; 5xx, a 429 without Retry-After, fatal_error and network faults may pass", () => {
    const http = (statusCode: number) => ({ code: 'slack_webapi_http_error', statusCode });
    for (const status of [400, 401, 403, 404, 413])
      expect(classifySlackError(http(status))).toEqual({
        failure: { kind: 'permanent' },
        code: 'http_error',
      });
    for (const status of [429, 500, 502, 503, 504])
      expect(classifySlackError(http(status))).toEqual({
        failure: { kind: 'transient' },
        code: 'http_error',
      });
    expect(classifySlackError({ code: 'slack_webapi_request_error' }).failure.kind).toBe('transient');
    expect(
      classifySlackError({ code: 'slack_webapi_platform_error', data: { error: 'fatal_error' } }).failure
        .kind,
    ).toBe('transient');
    expect(
      classifySlackError({ code: 'slack_webapi_platform_error', data: { error: 'message_not_found' } })
        .failure.kind,
    ).toBe('permanent');
  });

  it('a final edit whose caller hears of failures (a poster superseding progress) keeps its updateAttempts tries on a fault', async () => {
    const reporter = reporterOver(front.apiUrl);
    const ref = await post();
    front.fail('chat.update', 1_000, SLACK_503);
    const edit = reporter.edit(ref, { text: 'Resolved', blocks: [] }, { final: true, rejectOnFailure: true });
    const outcome = edit.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(await nextPause(reporter)).toBe(2000);
    const after = nextPause(reporter);
    await clock.advance(2000);
    expect(await after).toBe('idle');
    // Its caller (the notices' retry, a webhook sender) tries again later; the lane does not hold it.
    expect(await outcome).toMatchObject({ name: 'SlackEditError', transient: true });
    expect(front.faulted.filter((m) => m === 'chat.update')).toHaveLength(2);
  });
});
