/**
 * The Slack ChatPoster (src/chat-sinks.ts): how alert suggestions and deployment notices reach Slack
 * without a command — a new message in a channel (threaded when asked) with `chat.postMessage`, and
 * later edits through the reporter's paced lane (so they never overtake a switch's progress). An edit
 * the lane gave up rejects `update` (its callers retry: a webhook RESOLVED answers 503, a notice's
 * closing edit is tried again), classified by `retryable` like a failed post.
 */
import type { WebClient } from '@slack/web-api';
import type { ChatPoster, UpdateOptions } from '../../src/chat-sinks.js';
import type { MessageRef } from '../../src/progress.js';
import { renderSlack } from '../../src/views/slack.js';
import type { MessageView } from '../../src/views/types.js';
import { postedRef, slackErrorCode } from './context.js';
import {
  classifySlackError,
  SLACK_INTERACTIVE_RETRIES,
  SlackEditError,
  type SlackReporter,
  slackClient,
} from './reporter.js';

/**
 * Thrown when Slack refuses a post or an edit (`chat.update`); names the method, channel and Slack's
 * error code (STYLE 4).
 */
export class SlackPostError extends Error {
  override readonly name = 'SlackPostError';
  constructor(
    readonly method: string,
    readonly channel: string,
    readonly slackCode: string,
    /** Whether trying again later may succeed (rate limit, Slack's 5xx, a network fault). */
    readonly transient = false,
    cause?: unknown,
  ) {
    super(`SlackPostError[${slackCode}] ${method} channel=${channel}`, cause === undefined ? {} : { cause });
  }
}

/**
 * The Web API client the poster uses: a failed post is retried twice within seconds, not for the
 * SDK's default half hour, so one stuck post never holds up the notices and suggestions behind it; the
 * notices service retries a transient failure itself, later and in the background. Rate limits are
 * still waited out as Slack's `Retry-After` says; a call that hangs is given up after `timeoutMs`.
 */
export function createPosterClient(token: string, apiUrl?: string, timeoutMs?: number): WebClient {
  return slackClient(token, { apiUrl, timeoutMs, retryConfig: SLACK_INTERACTIVE_RETRIES });
}

/** Posts and edits Slack messages for the alert and notice sinks. */
export class SlackPoster implements ChatPoster {
  readonly surface = 'slack' as const;

  constructor(
    private readonly client: WebClient,
    private readonly reporter: SlackReporter,
  ) {}

  /**
   * Posts the view in `channel` (a channel id, or a name such as `#alerts`, as `chat.postMessage`
   * takes either). The ref names the channel by the id Slack answered with: edits (`chat.update`)
   * take ids only.
   */
  async post(channel: string, view: MessageView, opts: { threadId?: string } = {}): Promise<MessageRef> {
    // Posted: people by name, never as mentions (Slack notifies everyone mentioned in a post).
    const { text, blocks } = renderSlack(view, { mentions: false });
    let answer: unknown;
    try {
      answer = await this.client.chat.postMessage({
        channel,
        text,
        blocks,
        ...(opts.threadId === undefined ? {} : { thread_ts: opts.threadId }),
      });
    } catch (e) {
      const transient = classifySlackError(e).failure.kind !== 'permanent';
      throw new SlackPostError('chat.postMessage', channel, slackErrorCode(e), transient, e);
    }
    const posted = postedRef(channel, answer, opts.threadId);
    if (!posted.ok) throw new SlackPostError('chat.postMessage', channel, 'no_ts');
    return posted.ref;
  }

  /**
   * Edits the message through the reporter's lane. Resolves once Slack shows this view (or a newer
   * state queued for the message after it), or when the edit was dropped because the message shows a
   * switch's final state. Rejects with a SlackPostError when the edit was given up: transient after a
   * network fault, a 5xx or a rate limit that outlasted the lane's wait, final when Slack refused it
   * (`message_not_found`, `cant_update_message`, `channel_not_found`, …).
   */
  async update(ref: MessageRef, view: MessageView, opts: UpdateOptions = {}): Promise<void> {
    try {
      // An edit: people as mentions, which Slack does not notify for an edit.
      await this.reporter.edit(ref, renderSlack(view, { mentions: true }), {
        rejectOnFailure: true,
        // Queued as a final state: it goes out after the job's own final state, never dropped for it.
        ...(opts.supersedesProgress === undefined ? {} : { final: true }),
      });
    } catch (e) {
      if (!(e instanceof SlackEditError)) throw e;
      throw new SlackPostError('chat.update', ref.channel, e.slackCode, e.transient, e);
    }
  }

  /** A refusal (`channel_not_found`, `not_in_channel`, `invalid_auth`, …) is final; faults may pass. */
  retryable(error: unknown): boolean {
    return error instanceof SlackPostError && error.transient;
  }
}
