/**
 * handlers/slack/poster.ts: a chat.postMessage Slack refuses (not_in_channel,
 * channel_not_found) is a final SlackPostError the notices service must not retry, while Slack's
 * internal_error is transient and retryable; an answer without a ts is a final `no_ts` error. Through
 * the real client against the fake Slack: a post Slack keeps rate-limiting is tried again after each
 * Retry-After, then a transient `ratelimited` error; a refused connection is tried again after short
 * pauses; a post Slack does not answer in time is never sent again (it may be posted) and is final.
 */
import { createServer } from 'node:net';
import type { WebClient } from '@slack/web-api';
import { afterEach, describe, expect, it } from 'vitest';
import { createPosterClient, SlackPostError, SlackPoster } from '../../handlers/slack/poster.js';
import type { SlackReporter } from '../../handlers/slack/reporter.js';
import { textView } from '../../src/chat-sinks.js';
import type { Clock } from '../../src/clock.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { CapturedLog } from '../support/captured-log.js';
import { SlackFront } from './faulty-front.js';

/** @slack/web-api's error for an answer `{ ok: false, error: code }`. */
const platformError = (code: string) =>
  Object.assign(new Error(`An API error occurred: ${code}`), {
    code: 'slack_webapi_platform_error',
    data: { ok: false, error: code },
  });

function posterAnswering(answer: () => Promise<unknown>): SlackPoster {
  const client = { chat: { postMessage: answer } } as unknown as WebClient;
  return new SlackPoster(client, {} as SlackReporter);
}

async function failureOf(poster: SlackPoster): Promise<unknown> {
  try {
    await poster.post('C0ALERTS', textView('Alert on production', ['It fires.'], 'warning'));
  } catch (e) {
    return e;
  }
  throw new Error('post resolved');
}

describe('SlackPoster.post failures', () => {
  it('a post Slack refuses (not_in_channel, channel_not_found) is final: not retryable', async () => {
    for (const code of ['not_in_channel', 'channel_not_found']) {
      const poster = posterAnswering(async () => {
        throw platformError(code);
      });
      const error = await failureOf(poster);
      expect(error).toBeInstanceOf(SlackPostError);
      expect(error).toMatchObject({
        method: 'chat.postMessage',
        channel: 'C0ALERTS',
        slackCode: code,
        transient: false,
        maybePosted: false,
      });
      expect(poster.retryable(error)).toBe(false);
    }
  });

  it("Slack's service_unavailable is transient: retryable (internal_error is not: see below)", async () => {
    const poster = posterAnswering(async () => {
      throw platformError('service_unavailable');
    });
    const error = await failureOf(poster);
    expect(error).toMatchObject({ name: 'SlackPostError', method: 'chat.postMessage', transient: true });
    expect(poster.retryable(error)).toBe(true);
  });

  it('an answer without a ts is a final no_ts error', async () => {
    const poster = posterAnswering(async () => ({ ok: true, channel: 'C0ALERTS' }));
    const error = await failureOf(poster);
    expect(error).toMatchObject({ name: 'SlackPostError', slackCode: 'no_ts', transient: false });
    expect(poster.retryable(error)).toBe(false);
  });

  it('only a SlackPostError is judged retryable (any other error is not)', () => {
    const poster = posterAnswering(async () => ({ ok: true, ts: '1.1' }));
    expect(poster.retryable(Object.assign(new Error('x'), { transient: true }))).toBe(false);
    expect(poster.retryable(new SlackPostError('chat.postMessage', 'C0ALERTS', 'ratelimited', true))).toBe(
      true,
    );
  });
});

const fakes: FakeSlack[] = [];
const fronts: SlackFront[] = [];
afterEach(async () => {
  for (const f of fronts.splice(0)) await f.close();
  for (const f of fakes.splice(0)) await f.close();
});

async function fakeSlack(): Promise<FakeSlack> {
  const fake = await new FakeSlack({ channels: { C0ALERTS: 'alerts' } }).start();
  fakes.push(fake);
  return fake;
}

/** A clock whose sleeps end at once and are recorded: the waits between a post's tries. */
function recordingClock(): Clock & { readonly slept: number[] } {
  const slept: number[] = [];
  return {
    slept,
    now: () => Date.now(),
    sleep: async (ms: number) => {
      slept.push(ms);
    },
  };
}

/** A local port nothing listens on: a connection to it is refused. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('SlackPoster.post through the real client, against the fake Slack', () => {
  it("a post Slack keeps rate-limiting is tried three times, after each Retry-After, then fails as a transient 'ratelimited'", async () => {
    const fake = await fakeSlack();
    const clock = recordingClock();
    const poster = new SlackPoster(createPosterClient(fake.token, fake.apiUrl), {} as SlackReporter, {
      clock,
    });
    fake.rateLimit('chat.postMessage', 2, 3);
    const error = await failureOf(poster);
    expect(error).toBeInstanceOf(SlackPostError);
    expect(error).toMatchObject({ slackCode: 'ratelimited', transient: true });
    expect(poster.retryable(error)).toBe(true);
    expect(clock.slept).toEqual([2_000, 2_000]);
    expect(fake.callsOf('chat.postMessage').map((c) => c.status)).toEqual([429, 429, 429]);
  });

  it('a post Slack rate-limits twice, then takes, is posted once, after each Retry-After', async () => {
    const fake = await fakeSlack();
    const clock = recordingClock();
    const poster = new SlackPoster(createPosterClient(fake.token, fake.apiUrl), {} as SlackReporter, {
      clock,
    });
    fake.rateLimit('chat.postMessage', 1, 2);
    const ref = await poster.post('C0ALERTS', textView('Alert on production', ['It fires.'], 'warning'));
    expect(fake.message('C0ALERTS', ref.messageId)?.text).toContain('Alert on production');
    expect(clock.slept).toEqual([1_000, 1_000]);
    expect(fake.callsOf('chat.postMessage').map((c) => c.status)).toEqual([429, 429, 200]);
  });

  it('a refused connection (nothing was sent) is tried again after short pauses, then fails as transient', async () => {
    const clock = recordingClock();
    const poster = new SlackPoster(
      createPosterClient('xoxb-test', `http://127.0.0.1:${await closedPort()}/api/`),
      {} as SlackReporter,
      { clock },
    );
    const error = await failureOf(poster);
    expect(error).toMatchObject({ slackCode: 'request_failed', transient: true });
    expect(poster.retryable(error)).toBe(true);
    expect(clock.slept).toEqual([500, 1_000]);
  });

  it('a post Slack answers with an HTTP 5xx (answered: not posted) is tried again after 0.5 s, then 1 s, and posted once', async () => {
    const fake = await fakeSlack();
    const front = await SlackFront.start(fake);
    fronts.push(front);
    const clock = recordingClock();
    const poster = new SlackPoster(createPosterClient(fake.token, front.apiUrl), {} as SlackReporter, {
      clock,
    });
    front.fail('chat.postMessage', 2);
    const ref = await poster.post('C0ALERTS', textView('Alert on production', ['It fires.'], 'warning'));
    expect(fake.message('C0ALERTS', ref.messageId)?.text).toContain('Alert on production');
    expect(front.faulted).toEqual(['chat.postMessage', 'chat.postMessage']);
    expect(fake.callsOf('chat.postMessage')).toHaveLength(1);
    expect(clock.slept).toEqual([500, 1_000]);
    // A 5xx on every try: a transient failure its caller retries later.
    front.fail('chat.postMessage', 3);
    const error = await failureOf(poster);
    expect(error).toMatchObject({ slackCode: 'request_failed', transient: true, maybePosted: false });
    expect(poster.retryable(error)).toBe(true);
    expect(front.faulted).toHaveLength(5);
    expect(clock.slept).toEqual([500, 1_000, 500, 1_000]);
    expect(fake.callsOf('chat.postMessage')).toHaveLength(1);
  });

  it('a post Slack answers internal_error or fatal_error (part of the call may be done, Slack says) is not sent again and fails as final', async () => {
    for (const code of ['internal_error', 'fatal_error']) {
      const fake = await fakeSlack();
      const log = new CapturedLog('warn');
      const clock = recordingClock();
      const poster = new SlackPoster(createPosterClient(fake.token, fake.apiUrl), {} as SlackReporter, {
        clock,
        logger: log.logger,
      });
      fake.refuse('chat.postMessage', code);
      const error = await failureOf(poster);
      expect(error).toMatchObject({ slackCode: code, transient: false, maybePosted: true });
      expect(poster.retryable(error)).toBe(false);
      expect((error as Error).message).toContain(
        `Slack answered ${code}, which it may send after part of the call was done`,
      );
      expect(fake.callsOf('chat.postMessage')).toHaveLength(1);
      expect(clock.slept).toEqual([]);
      expect(
        log.lines.filter((l) => l.msg.startsWith(`slack chat.postMessage answered ${code}`)),
      ).toMatchObject([{ level: 40, channel: 'C0ALERTS', code }]);
    }
  });

  it('a post Slack does not answer in time is not sent again, fails as final (it may be posted), and a warning names the channel', async () => {
    const fake = await fakeSlack();
    const log = new CapturedLog('warn');
    const clock = recordingClock();
    const poster = new SlackPoster(createPosterClient(fake.token, fake.apiUrl, 300), {} as SlackReporter, {
      clock,
      logger: log.logger,
    });
    const held = fake.hold('chat.postMessage');
    const failed = failureOf(poster);
    await held.abandoned;
    const error = await failed;
    expect(error).toMatchObject({ slackCode: 'timeout', transient: false, maybePosted: true });
    expect(poster.retryable(error)).toBe(false);
    expect((error as Error).message).toContain(
      'the message may still appear, late, so it was not sent again',
    );
    // Slack took it after all: one message.
    held.release();
    await fake.waitForCall('chat.postMessage', (c) => c.response.ok === true);
    expect(fake.callsOf('chat.postMessage')).toHaveLength(1);
    expect(clock.slept).toEqual([]);
    expect(log.lines.filter((l) => /got no answer/.test(l.msg))).toMatchObject([
      { level: 40, channel: 'C0ALERTS', code: 'timeout' },
    ]);
  });
});
