/**
 * SlackReporter's shared chat.update budget (handlers/slack/reporter.ts, UpdateBudget) around 429s: the
 * longest Retry-After met holds every lane, and a turn given back (a view dropped by its skipIf) never
 * lets a call out before a Retry-After met meanwhile has passed. Runs on an ObservedClock with a client
 * that answers at once, so everything due has run once a clock move returns.
 */
import type { WebClient } from '@slack/web-api';
import { describe, expect, it } from 'vitest';
import { classifySlackError, type SlackMessage, SlackReporter } from '../../handlers/slack/reporter.js';
import type { MessageRef, Progress } from '../../src/progress.js';
import { ObservedClock } from '../support/observed-clock.js';

/** Slack's rate-limit error as @slack/web-api throws it with rejectRateLimitedCalls. */
function rateLimited(seconds: number): Error {
  return Object.assign(new Error(`A rate limit was exceeded (url: chat.update, retry-after: ${seconds})`), {
    code: 'slack_webapi_rate_limited_error',
    retryAfter: seconds,
  });
}

/**
 * A Web API client answering chat.update at once, noting each call on the clock; `limits` answers the
 * first call for a message ts with a 429 of that many seconds.
 */
function scriptedClient(clock: ObservedClock, limits: Record<string, number>) {
  const calls: { at: number; ts: string; text: string; ok: boolean }[] = [];
  const client = {
    chat: {
      update: (args: { ts: string; text: string }) => {
        const seconds = limits[args.ts];
        if (seconds !== undefined) {
          delete limits[args.ts];
          calls.push({ at: clock.now(), ts: args.ts, text: args.text, ok: false });
          return Promise.reject(rateLimited(seconds));
        }
        calls.push({ at: clock.now(), ts: args.ts, text: args.text, ok: true });
        return Promise.resolve({ ok: true });
      },
    },
  } as unknown as WebClient;
  return { client, calls };
}

function render(p: Progress): SlackMessage {
  const text = `${p.environment}: ${p.steps.at(-1)?.detail ?? ''}`;
  return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] };
}

function progress(clock: ObservedClock, env: string, state: string): Progress {
  return {
    jobId: `job-${env}`,
    planId: 'plan_0123456789abcdef01234567',
    action: 'rollback',
    environment: env,
    targetId: 'dep_b',
    fromId: 'dep_a',
    requestedBy: { surface: 'slack', userId: 'U0ALICE', displayName: 'alice' },
    steps: [{ step: 'verifying', state: 'running', startedAt: clock.now(), detail: state }],
    traffic: [],
    attempt: 1,
    updatedAt: clock.now(),
  };
}

function refOf(i: number): MessageRef {
  return { surface: 'slack', channel: 'C0PROD', messageId: `1700000000.${String(i).padStart(6, '0')}` };
}

/** Lets pending promise callbacks run. */
async function turns(n = 10): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

describe('SlackReporter budget and 429s', () => {
  it('a shorter Retry-After met right after a longer one does not end the longer pause', async () => {
    const clock = new ObservedClock();
    const { client, calls } = scriptedClient(clock, { [refOf(0).messageId]: 30, [refOf(1).messageId]: 5 });
    const reporter = new SlackReporter({ client, render, clock, minIntervalMs: 0 });
    const start = clock.now();
    // Two messages' edits go out at once (the burst); Slack answers 429 with 30 s, then with 5 s.
    await reporter.report(progress(clock, 'envA', 'switching'), [refOf(0)]);
    await reporter.report(progress(clock, 'envB', 'switching'), [refOf(1)]);
    await turns();
    expect(calls.map((c) => c.ok)).toEqual([false, false]);
    // Slack asked for 30 s: nothing goes out before then, whatever the second 429 said.
    await clock.advance(29_999);
    await turns();
    expect(calls.filter((c) => c.at - start < 30_000)).toHaveLength(2);
    await clock.advance(10_000);
    await reporter.flush();
    expect(calls.filter((c) => c.ok).map((c) => c.at - start >= 30_000)).toEqual([true, true]);
  });

  it('a turn given back by a view dropped while a 429 arrived does not let the next call out before its Retry-After', async () => {
    const clock = new ObservedClock();
    const { client, calls } = scriptedClient(clock, { [refOf(1).messageId]: 30 });
    const reporter = new SlackReporter({ client, render, clock, minIntervalMs: 0 });
    const start = clock.now();
    // A click's view takes its turn, then asks its guard (a Redis check that takes a moment)…
    let guard: (skip: boolean) => void = () => {};
    const asked = new Promise<boolean>((resolve) => {
      guard = resolve;
    });
    const view = reporter.edit(refOf(0), { text: 'Confirmed', blocks: [] }, { skipIf: () => asked });
    await turns();
    // …meanwhile another message's edit meets a 429 with Retry-After: 30…
    await reporter.report(progress(clock, 'envB', 'switching'), [refOf(1)]);
    await turns();
    expect(calls.map((c) => c.ok)).toEqual([false]);
    // …then the guard drops the view: its turn goes back to the budget.
    guard(true);
    await view;
    // A third message reports: it waits for the Retry-After like everyone else.
    await reporter.report(progress(clock, 'envC', 'switching'), [refOf(2)]);
    for (let t = 0; t < 29_000; t += 1_000) {
      await clock.advance(1_000);
      await turns();
    }
    await clock.advance(999);
    await turns();
    expect(calls.filter((c) => c.at - start < 30_000).map((c) => c.ok)).toEqual([false]);
    await clock.advance(10_000);
    await reporter.flush();
    expect(calls.filter((c) => c.ok)).toHaveLength(2);
  });

  it("classifies Slack's service_unavailable as a fault that may pass, like internal_error and fatal_error", () => {
    const platform = (error: string) =>
      Object.assign(new Error(`An API error occurred: ${error}`), {
        code: 'slack_webapi_platform_error',
        data: { ok: false, error },
      });
    for (const code of ['service_unavailable', 'internal_error', 'fatal_error']) {
      expect(classifySlackError(platform(code))).toEqual({ failure: { kind: 'transient' }, code });
    }
    expect(classifySlackError(platform('message_not_found'))).toEqual({
      failure: { kind: 'permanent' },
      code: 'message_not_found',
    });
  });

  it('a final state stamped before the newest intermediate state queued is still delivered (never dropped as stale)', async () => {
    const clock = new ObservedClock();
    const { client, calls } = scriptedClient(clock, {});
    const reporter = new SlackReporter({ client, render, clock, minIntervalMs: 0 });
    const ref = refOf(0);
    // The job's end was read (stamped) a moment before a late intermediate snapshot was queued here.
    const ended: Progress = {
      ...progress(clock, 'envA', 'done'),
      outcome: 'succeeded',
      message: 'envA: switched',
      steps: [{ step: 'verifying', state: 'done', startedAt: clock.now(), detail: 'done' }],
    };
    await clock.advance(1_000);
    await reporter.report(progress(clock, 'envA', 'verifying'), [ref]);
    await reporter.report(ended, [ref]);
    await reporter.flush();
    expect(calls.map((c) => c.text).at(-1)).toBe('envA: done');
    expect(reporter.isFinal(ref)).toBe(true);
  });
});
