/**
 * The Slack ChatPoster (src/chat-sinks.ts): how alert suggestions and deployment notices reach Slack
 * without a command — a new message in a channel (threaded when asked) with `chat.postMessage`, and
 * later edits through the reporter's paced lane (so they never overtake a switch's progress). An edit
 * the lane gave up rejects `update` (its callers retry: a webhook RESOLVED answers 503, a notice's
 * closing edit is tried again), classified by `retryable` like a failed post. A post is tried again
 * only when Slack surely did not post it (`postFailure`: a 429, a 5xx, no connection); one that got no
 * answer may be in the channel already, so it is never sent again, here or by the callers.
 */
import type { WebClient } from '@slack/web-api';
import type { ChatPoster, UpdateOptions } from '../../src/chat-sinks.js';
import { type Clock, systemClock } from '../../src/clock.js';
import { type Logger, silentLogger } from '../../src/log.js';
import type { MessageRef } from '../../src/progress.js';
import { renderSlack } from '../../src/views/slack.js';
import type { MessageView } from '../../src/views/types.js';
import { maybePostedLine, maybePostedReason, postedRef, postFailure } from './context.js';
import { SlackEditError, type SlackReporter, slackClient } from './reporter.js';

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
    /** Said after the code and channel (what a reader of the alert's answer needs to know). */
    note?: string,
    /**
     * A post Slack may have made although it failed (no answer in time, a connection dropped after the
     * request went, Slack's `internal_error` / `fatal_error`): its callers must not post it again, nor
     * let a later alert of the same incident do so (src/alerts/service.ts reads this property, through
     * the PermanentChatError that wraps it).
     */
    readonly maybePosted = false,
  ) {
    super(
      `SlackPostError[${slackCode}] ${method} channel=${channel}${note === undefined ? '' : `: ${note}`}`,
      cause === undefined ? {} : { cause },
    );
  }
}

/**
 * The Web API client posts go through, the handlers' and the poster's: it fails at once on a 429
 * instead of waiting out the `Retry-After` itself (inside a handler's work slot, that wait held up
 * the clicks and commands behind it), and never sends a call again by itself (it would re-send a post
 * that timed out, which Slack may have made: Slack has no idempotency key for posts). The tries are
 * the caller's (`postFailure`); a call that hangs is given up after `timeoutMs`.
 */
export function createPosterClient(token: string, apiUrl?: string, timeoutMs?: number): WebClient {
  return slackClient(token, { apiUrl, timeoutMs, rejectRateLimitedCalls: true, retryConfig: { retries: 0 } });
}

export interface SlackPosterOptions {
  /** Times the waits between tries of a post. */
  readonly clock?: Clock;
  readonly logger?: Logger;
  /**
   * Aborted when Switchyard stops: a post waiting between tries (a `Retry-After` of up to 10 s, twice)
   * fails at once, as a transient failure, instead of holding shutdown.
   */
  readonly signal?: AbortSignal;
}

/** Posts and edits Slack messages for the alert and notice sinks. */
export class SlackPoster implements ChatPoster {
  readonly surface = 'slack' as const;

  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly signal: AbortSignal | undefined;

  constructor(
    private readonly client: WebClient,
    private readonly reporter: SlackReporter,
    opts: SlackPosterOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger ?? silentLogger;
    this.signal = opts.signal;
  }

  /**
   * Posts the view in `channel` (a channel id, or a name such as `#alerts`, as `chat.postMessage`
   * takes either). The ref names the channel by the id Slack answered with: edits (`chat.update`)
   * take ids only. A try Slack surely did not post (a 429, a 5xx, no connection) is made again after
   * its `Retry-After` or a short pause, up to POST_TRIES in all; a rate limit that outlasts them (or
   * asks for more than POST_RETRY_AFTER_MAX_MS) is a transient `ratelimited` SlackPostError, its
   * caller retries later. A try that got no answer (`timeout`) may have been posted: it is not made
   * again, and the error is not retryable (a retry could post the message twice). Once `signal` is
   * aborted (shutdown), a wait between tries ends at once with the try's transient error.
   */
  async post(channel: string, view: MessageView, opts: { threadId?: string } = {}): Promise<MessageRef> {
    // Posted: people by name, never as mentions (Slack notifies everyone mentioned in a post).
    const { text, blocks } = renderSlack(view, { mentions: false });
    let answer: unknown;
    for (let tried = 1; ; tried += 1) {
      try {
        answer = await this.client.chat.postMessage({
          channel,
          text,
          blocks,
          ...(opts.threadId === undefined ? {} : { thread_ts: opts.threadId }),
        });
        break;
      } catch (e) {
        const failure = postFailure(e, tried);
        if (failure.retryInMs !== undefined) {
          const waited = await this.clock.sleep(failure.retryInMs, this.signal).then(
            () => true,
            () => false,
          );
          if (waited) continue;
          // Stopping: Slack surely did not post it, so its caller may try it again later.
          throw new SlackPostError(
            'chat.postMessage',
            channel,
            failure.code,
            true,
            e,
            'Switchyard is stopping, so it was not tried again',
          );
        }
        if (failure.maybePosted === undefined)
          throw new SlackPostError('chat.postMessage', channel, failure.code, failure.transient, e);
        this.logger.warn(
          { channel, code: failure.code, err: e instanceof Error ? e.message : String(e) },
          `${maybePostedLine(failure.code)}: the message may still appear in the channel, late and followed by nothing; not sent again, so it is not posted twice`,
        );
        throw new SlackPostError(
          'chat.postMessage',
          channel,
          failure.code,
          false,
          e,
          `${maybePostedReason(failure.code)}; the message may still appear, late, so it was not sent again`,
          true,
        );
      }
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

  /**
   * A refusal (`channel_not_found`, `not_in_channel`, `invalid_auth`, …) is final, and so is a post
   * that got no answer (it may be in the channel); faults and rate limits may pass.
   */
  retryable(error: unknown): boolean {
    return error instanceof SlackPostError && error.transient;
  }
}
