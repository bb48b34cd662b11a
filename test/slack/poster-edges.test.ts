/**
 * handlers/slack/poster.ts: a chat.postMessage Slack refuses (not_in_channel,
 * channel_not_found) is a final SlackPostError the notices service must not retry, while a network
 * fault, Slack's internal_error or a rate limit is transient and retryable; an answer without a ts is
 * a final `no_ts` error.
 */
import type { WebClient } from '@slack/web-api';
import { describe, expect, it } from 'vitest';
import { SlackPostError, SlackPoster } from '../../handlers/slack/poster.js';
import type { SlackReporter } from '../../handlers/slack/reporter.js';
import { textView } from '../../src/chat-sinks.js';

/** @slack/web-api's error for an answer `{ ok: false, error: code }`. */
const platformError = (code: string) =>
  Object.assign(new Error(`An API error occurred: ${code}`), {
    code: 'slack_webapi_platform_error',
    data: { ok: false, error: code },
  });

/** @slack/web-api's error for a request that got no answer (a reset connection, a timeout). */
const requestError = () =>
  Object.assign(new Error('A request error occurred: read ECONNRESET'), {
    code: 'slack_webapi_request_error',
  });

const rateLimited = () =>
  Object.assign(new Error('A rate limit was exceeded (url: chat.postMessage, retry-after: 30)'), {
    code: 'slack_webapi_rate_limited_error',
    retryAfter: 30,
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
      });
      expect(poster.retryable(error)).toBe(false);
    }
  });

  it("a post lost to a network fault, Slack's internal_error or a rate limit is transient: retryable", async () => {
    for (const fault of [requestError, () => platformError('internal_error'), rateLimited]) {
      const poster = posterAnswering(async () => {
        throw fault();
      });
      const error = await failureOf(poster);
      expect(error).toMatchObject({ name: 'SlackPostError', method: 'chat.postMessage', transient: true });
      expect(poster.retryable(error)).toBe(true);
    }
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
