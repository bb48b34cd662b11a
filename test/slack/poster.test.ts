import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPosterClient, SlackPostError, SlackPoster } from '../../handlers/slack/poster.js';
import { createReporterClient, type SlackMessage, SlackReporter } from '../../handlers/slack/reporter.js';
import { textView } from '../../src/chat-sinks.js';
import type { MessageRef, Progress } from '../../src/progress.js';
import { person, t } from '../../src/views/format.js';
import type { MessageView } from '../../src/views/types.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { ObservedClock } from '../support/observed-clock.js';
import { SlackFront } from './faulty-front.js';

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

/** Texts of the chat.update calls that reached the fake (and went through). */
function delivered(): string[] {
  return fake
    .callsOf('chat.update')
    .filter((c) => c.response.ok === true)
    .map((c) => String(c.args.text));
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

const shown = () => fake.message('C0PROD', ref.messageId)?.text;

describe('SlackPoster.post: a channel given by name', () => {
  it("names the message's channel by the id Slack answered with, so its edits (ids only) reach it", async () => {
    const byName = await poster.post('#incidents', textView('Alert on production', ['It fires.'], 'warning'));
    expect(byName.channel).toBe('C0PROD');
    await poster.update(byName, textView('Alert on production', ['It is resolved.'], 'success'));
    expect(fake.callsOf('chat.update').map((c) => [c.args.channel, c.response.ok])).toEqual([
      ['C0PROD', true],
    ]);
    expect(JSON.stringify(fake.message('C0PROD', byName.messageId)?.blocks)).toContain('It is resolved.');
  });
});

describe('SlackPoster: people in a post are named, in an edit mentioned', () => {
  it('post (chat.postMessage notifies whoever it mentions) names alice; update (chat.update) mentions her', async () => {
    const view = (line: string): MessageView => ({
      ...textView('Alert on production', []),
      blocks: [
        {
          type: 'text',
          spans: [t(`${line} `), person({ surface: 'slack', userId: 'U0ALICE', displayName: 'alice' })],
        },
      ],
    });
    const posted = await poster.post('C0PROD', view('Suggested to'));
    const post = fake.callsOf('chat.postMessage').at(-1);
    expect(JSON.stringify(post?.args.blocks)).toContain('Suggested to alice');
    expect(JSON.stringify(post?.args)).not.toContain('<@');
    await poster.update(posted, view('Edited for'));
    expect(JSON.stringify(fake.message('C0PROD', posted.messageId)?.blocks)).toContain(
      'Edited for <@U0ALICE>',
    );
  });
});

describe('SlackPoster.update: a failed edit rejects', () => {
  it("after Slack's 5xx outlasted the lane's retry: a transient SlackPostError, retryable", async () => {
    front.fail('chat.update', 2);
    const backoff = clock.sleepOf(2000);
    const update = outcomeOf(poster.update(ref, textView('Resolved', ['The alert resolved.'], 'success')));
    await backoff; // the first try failed; the one retry waits the lane's backoff on the clock
    await clock.advance(2000);
    const error = await update;
    expect(error).toBeInstanceOf(SlackPostError);
    expect(error).toMatchObject({ method: 'chat.update', channel: 'C0PROD', slackCode: 'http_error' });
    expect(poster.retryable(error)).toBe(true);
    expect(front.faulted).toEqual(['chat.update', 'chat.update']);
    expect(shown()).toBe('Alert on production');
  });

  it('a single 5xx is retried inside the lane: update resolves once the retry went through', async () => {
    front.fail('chat.update', 1);
    const backoff = clock.sleepOf(2000);
    const update = poster.update(ref, textView('Resolved', ['The alert resolved.'], 'success'));
    await backoff;
    await clock.advance(2000);
    await expect(update).resolves.toBeUndefined();
    expect(shown()).toBe('Resolved');
  });

  it("at once, without a retry, on an HTTP 4xx other than 429 (a proxy's 403): not retryable", async () => {
    front.fail('chat.update', 2, { status: 403, body: { ok: false, error: 'forbidden' } });
    // A transient fault would wait the lane's 2 s backoff for its retry: that wait is the failure here.
    const backoff = clock.sleepOf(2000).then(() => 'waited for a retry');
    const update = outcomeOf(poster.update(ref, textView('Resolved', ['The alert resolved.'], 'success')));
    const error = await Promise.race([update, backoff]);
    expect(error).toMatchObject({ name: 'SlackPostError', slackCode: 'http_error', transient: false });
    expect(poster.retryable(error)).toBe(false);
    expect(front.faulted).toEqual(['chat.update']);
    expect(shown()).toBe('Alert on production');
  });

  it('at once, without a retry, when Slack refuses it (message_not_found, channel_not_found): not retryable', async () => {
    const gone: MessageRef = { ...ref, messageId: '1.999999' };
    const missing = await outcomeOf(poster.update(gone, textView('Resolved', [], 'success')));
    expect(missing).toMatchObject({
      name: 'SlackPostError',
      slackCode: 'message_not_found',
      transient: false,
    });
    expect(poster.retryable(missing)).toBe(false);

    fake.channels.delete('C0PROD'); // archived or deleted since the post
    const noChannel = await outcomeOf(poster.update(ref, textView('Resolved', [], 'success')));
    expect(noChannel).toMatchObject({ slackCode: 'channel_not_found', transient: false });
    expect(poster.retryable(noChannel)).toBe(false);
    expect(fake.callsOf('chat.update').map((c) => c.response.error)).toEqual([
      'message_not_found',
      'channel_not_found',
    ]);
  });
});

describe('SlackPoster.update: coalescing and final states', () => {
  it('an edit replaced by a newer one before it went out settles as the newer one does: delivered', async () => {
    await poster.update(ref, textView('One', []));
    const paced = clock.sleepOf(1000);
    const two = outcomeOf(poster.update(ref, textView('Two', [])));
    const three = outcomeOf(poster.update(ref, textView('Three', [])));
    await paced;
    await clock.advance(1000);
    expect([await two, await three]).toEqual(['resolved', 'resolved']);
    expect(delivered()).toEqual(['One', 'Three']);
  });

  it('… and failed: both callers hear that the newer edit was refused', async () => {
    await poster.update(ref, textView('One', []));
    const paced = clock.sleepOf(1000);
    const two = outcomeOf(poster.update(ref, textView('Two', [])));
    const three = outcomeOf(poster.update(ref, textView('Three', [])));
    await paced;
    fake.channels.delete('C0PROD');
    await clock.advance(1000);
    const [a, b] = [await two, await three];
    expect(a).toMatchObject({ slackCode: 'channel_not_found' });
    expect(b).toMatchObject({ slackCode: 'channel_not_found' });
    expect(fake.callsOf('chat.update').map((c) => c.args.text)).toEqual(['One', 'Three']);
  });

  it('an edit refused while a newer one waits follows the newer one, which Slack took', async () => {
    // The first edit is in flight when the second is queued; Slack refuses the first (its blocks),
    // then shows the second: the message shows what the first caller's edit was replaced by.
    front.fail('chat.update', 1, { status: 200, body: { ok: false, error: 'invalid_blocks' } });
    const first = outcomeOf(poster.update(ref, textView('First', [])));
    const second = outcomeOf(poster.update(ref, textView('Second', [])));
    expect([await first, await second]).toEqual(['resolved', 'resolved']);
    expect(delivered()).toEqual(['Second']);
  });

  it('an edit after the final state of a switch resolves without editing (the outcome stays)', async () => {
    await reporter.report(progress('succeeded'), [ref]);
    await expect(poster.update(ref, textView('Resolved', [], 'success'))).resolves.toBeUndefined();
    await reporter.flush();
    expect(delivered()).toEqual(['traffic is on dep_b (succeeded)']);
  });

  it("an edit that supersedes the switch's progress is made over its final state, after it", async () => {
    await reporter.report(progress('failed'), [ref]);
    const update = textView('Failed, then completed by the platform', [], 'warning');
    const paced = clock.sleepOf(1000);
    const done = poster.update(ref, update, { supersedesProgress: { at: clock.now() } });
    await paced; // edits of one message are paced: the next goes a second after the final state
    await clock.advance(1000);
    await done;
    expect(delivered()).toEqual(['traffic is on dep_b (failed)', 'Failed, then completed by the platform']);
  });

  it('an edit replaced by the final state settles as the final state does', async () => {
    await poster.update(ref, textView('One', []));
    const paced = clock.sleepOf(1000);
    const update = outcomeOf(poster.update(ref, textView('Resolved', [], 'success')));
    await paced;
    const final = reporter.report(progress('failed'), [ref]);
    await clock.advance(1000);
    await final;
    expect(await update).toBe('resolved');
    expect(delivered()).toEqual(['One', 'traffic is on dep_b (failed)']);
  });
});

describe('edits that must not reject still never do', () => {
  it('progress reports and click edits resolve on a 5xx and on a refusal, and a non-final state is not retried', async () => {
    front.fail('chat.update', 1);
    await expect(reporter.report(progress(), [ref])).resolves.toBeUndefined();
    await reporter.flush();
    expect(front.faulted).toEqual(['chat.update']); // given up at once, as before
    const gone: MessageRef = { ...ref, messageId: '1.999999' };
    await expect(reporter.edit(gone, message('Confirmed'))).resolves.toBeUndefined();
    await expect(reporter.report(progress('succeeded'), [gone])).resolves.toBeUndefined();
    front.fail('chat.update', 1);
    const click = reporter.edit({ ...ref }, message('Confirmed'));
    await expect(click).resolves.toBeUndefined();
    expect(front.faulted).toEqual(['chat.update', 'chat.update']);
  });
});

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
