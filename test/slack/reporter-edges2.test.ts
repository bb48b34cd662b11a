/**
 * SlackReporter (handlers/slack/reporter.ts) memories and ordering no other test pins down: how long a
 * message that showed its final state (or was sent a progress state) remembers it, that an idle lane
 * keeps its spacing until its window has passed, that a view dropped by its guard settles as the newer
 * state that replaced it, and that a call given back to the shared budget does not let a newcomer
 * overtake lanes already waiting their turn. Runs on an ObservedClock with a scripted client.
 */
import type { WebClient } from '@slack/web-api';
import { describe, expect, it } from 'vitest';
import { classifySlackError, type SlackMessage, SlackReporter } from '../../handlers/slack/reporter.js';
import type { MessageRef, Progress } from '../../src/progress.js';
import { ObservedClock } from '../support/observed-clock.js';

const MINUTE = 60_000;

/** Slack's rate-limit error as @slack/web-api throws it with rejectRateLimitedCalls. */
function rateLimited(seconds: number): Error {
  return Object.assign(new Error(`A rate limit was exceeded (url: chat.update, retry-after: ${seconds})`), {
    code: 'slack_webapi_rate_limited_error',
    retryAfter: seconds,
  });
}

/** Slack's 503 as @slack/web-api throws it (a fault that may pass). */
function unavailable(): Error {
  return Object.assign(new Error('An HTTP protocol error occurred: statusCode = 503'), {
    code: 'slack_webapi_http_error',
    statusCode: 503,
  });
}

type Answer = 'ok' | Error | Promise<void> | (() => Promise<Error | undefined>);

/**
 * A Web API client answering chat.update from a script per message ts (then 'ok'): an Error rejects, a
 * promise holds the call until it settles. Each call is noted with the clock's time.
 */
function scriptedClient(clock: ObservedClock, script: Record<string, Answer[]> = {}) {
  const calls: { at: number; ts: string; text: string }[] = [];
  const client = {
    chat: {
      update: async (args: { ts: string; text: string }) => {
        calls.push({ at: clock.now(), ts: args.ts, text: args.text });
        const answer = script[args.ts]?.shift() ?? 'ok';
        if (answer instanceof Error) throw answer;
        if (typeof answer === 'function') {
          const error = await answer();
          if (error !== undefined) throw error;
        } else if (answer !== 'ok') await answer;
        return { ok: true };
      },
    },
  } as unknown as WebClient;
  return { client, calls };
}

function render(p: Progress): SlackMessage {
  const text = `${p.environment}: ${p.steps.at(-1)?.detail ?? ''}`;
  return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] };
}

function progress(clock: ObservedClock, env: string, state: string, updatedAt = clock.now()): Progress {
  return {
    jobId: `job-${env}`,
    planId: 'plan_0123456789abcdef01234567',
    action: 'rollback',
    environment: env,
    targetId: 'dep_b',
    fromId: 'dep_a',
    requestedBy: { surface: 'slack', userId: 'U0ALICE', displayName: 'alice' },
    steps: [{ step: 'verifying', state: 'running', startedAt: updatedAt, detail: state }],
    traffic: [],
    attempt: 1,
    updatedAt,
  };
}

function ended(clock: ObservedClock, env: string): Progress {
  return {
    ...progress(clock, env, 'done'),
    outcome: 'succeeded',
    message: `${env}: switched`,
    steps: [{ step: 'verifying', state: 'done', startedAt: clock.now(), detail: 'done' }],
  };
}

function refOf(i: number): MessageRef {
  return { surface: 'slack', channel: 'C0PROD', messageId: `1700000000.${String(i).padStart(6, '0')}` };
}

/** Lets pending promise callbacks run. */
async function turns(n = 10): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

/** A promise and its resolver. */
function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open: (value: T) => void = () => {};
  const promise = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

describe('SlackReporter: how long a message remembers its final state', () => {
  it('refuses a late non-final edit for 30 minutes after the final state went out, not only while it is queued', async () => {
    const clock = new ObservedClock();
    const { client, calls } = scriptedClient(clock);
    const reporter = new SlackReporter({ client, render, clock, minIntervalMs: 0 });
    const ref = refOf(0);
    await reporter.report(ended(clock, 'envA'), [ref]);
    await reporter.flush();
    expect(calls.map((c) => c.text)).toEqual(['envA: done']);
    // 29 minutes later a click's view (a replica that was slow to answer) would paint over the outcome.
    await clock.advance(29 * MINUTE);
    await reporter.edit(ref, { text: 'Confirmed: progress follows', blocks: [] });
    await reporter.flush();
    expect(calls.map((c) => c.text)).toEqual(['envA: done']);
    expect(reporter.isFinal(ref)).toBe(true);
    // The memory is bounded: past 30 minutes the message is editable again.
    await clock.advance(MINUTE + 1);
    await reporter.edit(ref, { text: 'a later edit', blocks: [] });
    await reporter.flush();
    expect(calls.map((c) => c.text)).toEqual(['envA: done', 'a later edit']);
  });

  it('counts the 30 minutes from the delivery of a final state that a long Retry-After held back', async () => {
    const clock = new ObservedClock();
    const ref = refOf(0);
    // Slack answers the final state with a 429 of 20 minutes; it lands then.
    const { client, calls } = scriptedClient(clock, { [ref.messageId]: [rateLimited(20 * 60)] });
    const reporter = new SlackReporter({ client, render, clock, minIntervalMs: 0 });
    const start = clock.now();
    void reporter.report(ended(clock, 'envA'), [ref]);
    await turns();
    await clock.advance(20 * MINUTE);
    await reporter.flush();
    expect(calls.map((c) => [c.at - start, c.text])).toEqual([
      [0, 'envA: done'],
      [20 * MINUTE, 'envA: done'],
    ]);
    // 35 minutes after it was queued, 15 after it landed: a late view is still refused.
    await clock.advance(15 * MINUTE);
    await reporter.edit(ref, { text: 'Confirmed: progress follows', blocks: [] });
    await reporter.flush();
    expect(calls).toHaveLength(2);
    expect(reporter.isFinal(ref)).toBe(true);
  });
});

describe('SlackReporter: how long a message remembers the newest progress state', () => {
  it('an older snapshot or a view yielding to progress is still refused 10 minutes after the newer state went out', async () => {
    const clock = new ObservedClock();
    const { client, calls } = scriptedClient(clock);
    const reporter = new SlackReporter({ client, render, clock, minIntervalMs: 0 });
    const ref = refOf(0);
    const readEarlier = clock.now();
    await clock.advance(1_000);
    await reporter.report(progress(clock, 'envA', 'verifying'), [ref]);
    await reporter.flush();
    await clock.advance(10 * MINUTE);
    // A re-read snapshot stamped before the one shown, and a click's view: neither replaces it.
    await reporter.report(progress(clock, 'envA', 'switching', readEarlier), [ref]);
    await reporter.edit(ref, { text: 'Confirmed: progress follows', blocks: [] }, { yieldsToProgress: true });
    await reporter.flush();
    expect(calls.map((c) => c.text)).toEqual(['envA: verifying']);
  });
});

describe('SlackReporter: an idle lane keeps its spacing', () => {
  it("another message's edit does not cut short this message's spacing after its last edit", async () => {
    const clock = new ObservedClock();
    const { client, calls } = scriptedClient(clock);
    const reporter = new SlackReporter({ client, render, clock, minIntervalMs: 1_000 });
    const start = clock.now();
    await reporter.edit(refOf(0), { text: 'A1', blocks: [] });
    await reporter.edit(refOf(1), { text: 'B1', blocks: [] });
    await clock.advance(100);
    const second = reporter.edit(refOf(0), { text: 'A2', blocks: [] });
    await turns();
    await clock.advance(900);
    await second;
    expect(calls.map((c) => [c.text, c.at - start])).toEqual([
      ['A1', 0],
      ['B1', 0],
      ['A2', 1_000],
    ]);
  });
});

describe('SlackReporter: a view dropped by its guard', () => {
  it('settles as the newer state queued during its guard does: when that one lands, not before', async () => {
    const clock = new ObservedClock();
    const ref = refOf(0);
    const held = gate();
    const { client, calls } = scriptedClient(clock, { [ref.messageId]: [held.promise] });
    const reporter = new SlackReporter({ client, render, clock, minIntervalMs: 0 });
    const guard = gate<boolean>();
    let settled = false;
    const view = reporter
      .edit(ref, { text: 'Confirmed', blocks: [] }, { skipIf: () => guard.promise })
      .then(() => {
        settled = true;
      });
    await turns();
    // While the guard asks Redis, the job's progress is queued on the same lane…
    await reporter.report(progress(clock, 'envA', 'switching'), [ref]);
    // …then the guard drops the view; the progress state goes out and Slack takes its time.
    guard.open(true);
    await turns();
    expect(calls.map((c) => c.text)).toEqual(['envA: switching']);
    expect(settled).toBe(false);
    held.open();
    await view;
    expect(settled).toBe(true);
  });
});

describe('SlackReporter: the shared budget serves waiting lanes in turn', () => {
  it('a call given back by a dropped view does not let a newcomer overtake a lane already waiting', async () => {
    const clock = new ObservedClock();
    const { client, calls } = scriptedClient(clock);
    // One call a second, no burst: the view's call uses the budget, the next lane waits a second.
    const reporter = new SlackReporter({
      client,
      render,
      clock,
      minIntervalMs: 0,
      updatesPerMinute: 60,
      updateBurst: 1,
    });
    const guard = gate<boolean>();
    const view = reporter.edit(refOf(0), { text: 'Confirmed', blocks: [] }, { skipIf: () => guard.promise });
    await turns();
    await reporter.report(progress(clock, 'envB', 'switching'), [refOf(1)]);
    await turns();
    // The view is dropped (its call is given back), then a third message reports.
    guard.open(true);
    await view;
    await reporter.report(progress(clock, 'envC', 'switching'), [refOf(2)]);
    await turns();
    for (let i = 0; i < 3; i++) {
      await clock.advance(1_000);
      await turns();
    }
    await reporter.flush();
    // envB waited first: it goes first.
    expect(calls.map((c) => c.text)).toEqual(['envB: switching', 'envC: switching']);
  });
});

describe('SlackReporter: how long a final state rides out faults', () => {
  it('a final state Slack keeps failing is tried last at exactly finalRateLimitWaitMs after its first failure', async () => {
    const clock = new ObservedClock();
    const ref = refOf(0);
    const fatal = () =>
      Object.assign(new Error('An API error occurred: fatal_error'), {
        code: 'slack_webapi_platform_error',
        data: { ok: false, error: 'fatal_error' },
      });
    const { client, calls } = scriptedClient(clock, { [ref.messageId]: Array.from({ length: 20 }, fatal) });
    // Tries at 0, 2, 6, 14, 30 and 62 s (pauses doubling from 2 s): the one at 62 s is the last.
    const reporter = new SlackReporter({
      client,
      render,
      clock,
      minIntervalMs: 1_000,
      finalRateLimitWaitMs: 62_000,
    });
    const start = clock.now();
    void reporter.report(ended(clock, 'envA'), [ref]);
    for (let i = 0; i < 200; i++) {
      await turns();
      await clock.advance(1_000);
    }
    await reporter.flush();
    expect(calls.map((c) => c.at - start)).toEqual([0, 2_000, 6_000, 14_000, 30_000, 62_000]);
  });
});

describe('SlackReporter: the tries of an edit whose caller hears of failures', () => {
  /** An answer that holds the call until `release` is called, then fails it with Slack's 503. */
  function heldFault() {
    const held = gate();
    const answer = async () => {
      await held.promise;
      return unavailable();
    };
    return { answer, release: () => held.open() };
  }

  it('an edit given up after its tries does not use up the tries of the newer edit queued meanwhile', async () => {
    const clock = new ObservedClock();
    const ref = refOf(0);
    const first = heldFault();
    const second = heldFault();
    const third = heldFault();
    // Slack fails three calls (each held until the test has queued the next edit), then is back.
    const { client, calls } = scriptedClient(clock, {
      [ref.messageId]: [first.answer, second.answer, third.answer],
    });
    const reporter = new SlackReporter({ client, render, clock, minIntervalMs: 1_000 });
    const settled = (p: Promise<void>) =>
      p.then(
        () => 'delivered',
        (e: unknown) => (e instanceof Error ? e.name : 'error'),
      );
    const a = settled(reporter.edit(ref, { text: 'A', blocks: [] }, { rejectOnFailure: true }));
    await turns();
    const b = settled(reporter.edit(ref, { text: 'B', blocks: [] }, { rejectOnFailure: true }));
    first.release(); // A fails: B, newer, carries its caller
    await turns();
    await clock.advance(2_000);
    await turns();
    const c = settled(reporter.edit(ref, { text: 'C', blocks: [] }, { rejectOnFailure: true }));
    second.release(); // B fails a second time: given up; C, newer, carries both callers
    await turns();
    await clock.advance(1_000);
    await turns();
    third.release(); // C's first fault: it gets its second try, which Slack takes
    await turns();
    await clock.advance(2_000);
    await reporter.flush();
    expect(calls.map((call) => call.text)).toEqual(['A', 'B', 'C', 'C']);
    expect(await Promise.all([a, b, c])).toEqual(['delivered', 'delivered', 'delivered']);
  });

  it('a fault that a retry got past does not count against the next edit of the message', async () => {
    const clock = new ObservedClock();
    const ref = refOf(0);
    const retried = gate();
    const { client, calls } = scriptedClient(clock, {
      // A: a 503, then its retry held until B is queued, then taken; B: a 503, then taken.
      [ref.messageId]: [unavailable(), retried.promise, unavailable()],
    });
    const reporter = new SlackReporter({ client, render, clock, minIntervalMs: 1_000 });
    const a = reporter.edit(ref, { text: 'A', blocks: [] }, { rejectOnFailure: true });
    await turns();
    await clock.advance(2_000);
    await turns();
    const b = reporter.edit(ref, { text: 'B', blocks: [] }, { rejectOnFailure: true });
    retried.open();
    await a;
    await turns();
    await clock.advance(1_000); // B's first try (a 503)
    await turns();
    await clock.advance(2_000); // …and its second, which Slack takes
    await expect(b).resolves.toBeUndefined();
    expect(calls.map((call) => call.text)).toEqual(['A', 'A', 'B', 'B']);
  });
});

describe('SlackReporter: pauses after a 429', () => {
  it('a 429 with Retry-After: 0 is tried again after the message spacing, not at once', async () => {
    const clock = new ObservedClock();
    const ref = refOf(0);
    const { client, calls } = scriptedClient(clock, { [ref.messageId]: [rateLimited(0)] });
    const reporter = new SlackReporter({ client, render, clock, minIntervalMs: 1_000 });
    const start = clock.now();
    void reporter.report(ended(clock, 'envA'), [ref]);
    await turns();
    expect(calls.map((c) => c.at - start)).toEqual([0]);
    await clock.advance(1_000);
    await reporter.flush();
    expect(calls.map((c) => c.at - start)).toEqual([0, 1_000]);
  });

  it('a 429 whose Retry-After Slack left out pauses for one second', () => {
    const error = Object.assign(new Error('A rate limit was exceeded'), {
      code: 'slack_webapi_rate_limited_error',
    });
    expect(classifySlackError(error)).toEqual({
      failure: { kind: 'ratelimited', retryAfterMs: 1_000 },
      code: 'ratelimited',
    });
  });
});

describe('SlackReporter: flush', () => {
  it('waits for every message being edited, not only the first one to finish', async () => {
    const clock = new ObservedClock();
    const held = gate();
    const { client } = scriptedClient(clock, { [refOf(1).messageId]: [held.promise] });
    const reporter = new SlackReporter({ client, render, clock, minIntervalMs: 0 });
    const quick = reporter.edit(refOf(0), { text: 'A', blocks: [] });
    void reporter.edit(refOf(1), { text: 'B', blocks: [] });
    let flushed = false;
    const flush = reporter.flush().then(() => {
      flushed = true;
    });
    await quick;
    await turns();
    expect(flushed).toBe(false);
    held.open();
    await flush;
    expect(flushed).toBe(true);
  });
});

describe('SlackReporter: two final states of one message', () => {
  it("an edit that supersedes progress, queued while the job's final state waits, is made after it, not dropped", async () => {
    const clock = new ObservedClock();
    const { client, calls } = scriptedClient(clock);
    const reporter = new SlackReporter({ client, render, clock, minIntervalMs: 1_000 });
    const ref = refOf(0);
    await reporter.report(progress(clock, 'envA', 'switching'), [ref]);
    // The job's end waits for the message spacing; a notice's closing edit (final) is queued behind it.
    void reporter.report(ended(clock, 'envA'), [ref]);
    const closing = reporter.edit(
      ref,
      { text: 'Resolved: superseded', blocks: [] },
      { final: true, rejectOnFailure: true },
    );
    await turns();
    await clock.advance(1_000);
    await closing;
    await reporter.flush();
    expect(calls.map((c) => c.text).at(-1)).toBe('Resolved: superseded');
  });
});
