/**
 * The Slack ChatPoster (src/chat-sinks.ts): how alert suggestions and deployment notices reach Slack
 * without a command — a new message in a channel (threaded when asked) with `chat.postMessage`, and
 * later edits through the reporter's paced lane (so they never overtake a switch's progress).
 */
import type { WebClient } from '@slack/web-api';
import type { ChatPoster } from '../../src/chat-sinks.js';
import type { MessageRef } from '../../src/progress.js';
import { renderSlack } from '../../src/views/slack.js';
import type { MessageView } from '../../src/views/types.js';
import { slackErrorCode } from './context.js';
import type { SlackReporter } from './reporter.js';

/** Thrown when Slack refuses a post; names the method, channel and Slack's error code (STYLE 4). */
export class SlackPostError extends Error {
  override readonly name = 'SlackPostError';
  constructor(
    readonly method: string,
    readonly channel: string,
    readonly slackCode: string,
  ) {
    super(`SlackPostError[${slackCode}] ${method} channel=${channel}`);
  }
}

/** Posts and edits Slack messages for the alert and notice sinks. */
export class SlackPoster implements ChatPoster {
  readonly surface = 'slack' as const;

  constructor(
    private readonly client: WebClient,
    private readonly reporter: SlackReporter,
  ) {}

  async post(channel: string, view: MessageView, opts: { threadId?: string } = {}): Promise<MessageRef> {
    const { text, blocks } = renderSlack(view);
    let ts: unknown;
    try {
      const res = await this.client.chat.postMessage({
        channel,
        text,
        blocks,
        ...(opts.threadId === undefined ? {} : { thread_ts: opts.threadId }),
      });
      ts = res.ts;
    } catch (e) {
      throw new SlackPostError('chat.postMessage', channel, slackErrorCode(e));
    }
    if (typeof ts !== 'string') throw new SlackPostError('chat.postMessage', channel, 'no_ts');
    return {
      surface: 'slack',
      channel,
      messageId: ts,
      ...(opts.threadId === undefined ? {} : { threadId: opts.threadId }),
    };
  }

  async update(ref: MessageRef, view: MessageView): Promise<void> {
    await this.reporter.edit(ref, renderSlack(view));
  }
}
