/**
 * A state on a Slack message's lane keeps its own retry policy, whoever waits on it: a progress state
 * or a click's edit that replaced a poster `update` still pending (which asked to hear of failures)
 * is given up at once on a 5xx, as it always was, instead of holding the lane for a 2 s backoff and
 * sending again. The real SlackReporter and SlackPoster against the fake Slack Web API behind a front
 * that can answer 5xx, on a manual clock that announces its sleeps.
 */
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPosterClient, SlackPoster } from '../../handlers/slack/poster.js';
import { createReporterClient, type SlackMessage, SlackReporter } from '../../handlers/slack/reporter.js';
import { textView } from '../../src/chat-sinks.js';
import { ManualClock } from '../../src/clock.js';
import type { MessageRef, Progress } from '../../src/progress.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { SlackFront } from './faulty-front.js';

/** A manual clock that announces each sleep, so a test advances time only once something waits. */
class ObservedClock extends ManualClock {
  readonly events = new EventEmitter();
  override sleep(ms: number, signal?: AbortSignal): Promise<void> {
    const p = super.sleep(ms, signal);
    this.events.emit('sleep', ms);
    return p;
  }

  /** Resolves when something starts sleeping for exactly `ms`. */
  sleepOf(ms: number): Promise<number> {
    return new Promise((resolve) => {
      const on = (n: number) => {
        if (n !== ms) return;
        this.events.off('sleep', on);
        resolve(n);
      };
      this.events.on('sleep', on);
    });
  }
}

let fake: FakeSlack;
let front: SlackFront;
let clock: ObservedClock;
let reporter: SlackReporter;
let poster: SlackPoster;
let ref: MessageRef;

beforeEach(async () => {
  clock = new ObservedClock();
  fake = await new FakeSlack({ clock }).start();
  front = await SlackFront.start(fake);
  reporter = new SlackReporter({
    client: createReporterClient(fake.token, front.apiUrl),
    render: (p) => message(p.message ?? `step ${p.steps.at(-1)?.step ?? 'none'}`),
    clock,
  });
  poster = new SlackPoster(createPosterClient(fake.token, front.apiUrl), reporter);
  ref = await poster.post('C0PROD', textView('Alert on production', ['It fires.'], 'warning'));
});

afterEach(async () => {
  await reporter.flush();
  await front.close();
  await fake.close();
});

function message(text: string): SlackMessage {
  return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] };
}

function progress(outcome?: Progress['outcome']): Progress {
  return {
    jobId: 'job1',
    planId: 'plan_0123456789abcdef01234567',
    action: 'rollback',
    environment: 'production',
    targetId: 'dep_b',
    fromId: 'dep_a',
    requestedBy: { surface: 'slack', userId: 'U0ALICE', displayName: 'alice' },
    steps: [{ step: outcome ? 'done' : 'switching', state: outcome ? 'done' : 'running', startedAt: 0 }],
    ...(outcome === undefined ? {} : { outcome, message: `traffic is on dep_b (${outcome})` }),
    traffic: [],
    attempt: 1,
    updatedAt: clock.now(),
  };
}

/** What the update promise came to: 'resolved', or the error it rejected with. */
async function outcomeOf(p: Promise<void>): Promise<'resolved' | unknown> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return e;
  }
}

describe('Slack lane: progress and click edits keep their pacing when a poster update shares the lane', () => {
  /** After the failed call: 'given up' when the lane goes idle, 'retried' when it sleeps a backoff to retry. */
  async function afterFailure(): Promise<'given up' | 'retried'> {
    const retry = clock.sleepOf(2000).then(() => 'retried' as const);
    const idle = reporter.flush().then(() => 'given up' as const);
    const first = await Promise.race([retry, idle]);
    if (first === 'retried') {
      await clock.advance(2000); // let the retry go out, so the lane ends
      await reporter.flush();
    }
    return first;
  }

  it('a non-final progress state that replaced a pending poster update is given up at once on a 5xx (as before), not retried', async () => {
    await poster.update(ref, textView('One', []));
    const paced = clock.sleepOf(1000);
    const update = outcomeOf(poster.update(ref, textView('Resolved', [], 'success')));
    await paced;
    // The job's progress arrives while the poster's edit waits its turn: it replaces it.
    const report = reporter.report(progress(), [ref]);
    front.fail('chat.update', 1);
    await clock.advance(1000);
    await report;
    const what = await afterFailure();
    await update;
    // A non-final progress state is never retried after a 5xx (it stays given up).
    expect(what).toBe('given up');
    expect(fake.callsOf('chat.update').map((c) => String(c.args.text))).toEqual(['One']);
  });

  it('a click edit (reporter.edit) that coalesced with a poster update is given up at once on a 5xx, as before', async () => {
    await poster.update(ref, textView('One', []));
    const paced = clock.sleepOf(1000);
    const update = outcomeOf(poster.update(ref, textView('Resolved', [], 'success')));
    await paced;
    const click = reporter.edit(ref, message('Cancelled by alice'));
    front.fail('chat.update', 1);
    await clock.advance(1000);
    const what = await afterFailure();
    await click;
    await update;
    expect(what).toBe('given up');
    expect(fake.callsOf('chat.update').map((c) => String(c.args.text))).toEqual(['One']);
  });
});
