/**
 * What every Slack handler shares: its dependencies, the zod schemas of the Slack payloads it reads
 * (slash command fields, `block_actions` fields), and the three ways a handler answers — a message in
 * the channel (`chat.postMessage`, then attached to the plan so progress edits it), an ephemeral reply
 * through the `response_url`, and an edit of the clicked message (through the reporter's paced lane).
 * Faults become a short ephemeral message with the error code: never a stack trace, never silence.
 */
import type { RespondFn } from '@slack/bolt';
import { ErrorCode, type WebClient } from '@slack/web-api';
import { z } from 'zod';
import type { ChatService } from '../../src/chat.js';
import type { Flow } from '../../src/flow.js';
import type { Logger } from '../../src/log.js';
import type { Metrics } from '../../src/metrics.js';
import type { MessageRef } from '../../src/progress.js';
import { renderSlack } from '../../src/views/slack.js';
import type { MessageView } from '../../src/views/types.js';
import { describeIssues as describeZodIssues } from '../../src/zod-issues.js';
import type { UserGroupResolver } from './groups.js';
import { classifySlackError, type SlackReporter } from './reporter.js';
import type { WorkQueue } from './work.js';

/** A message seen in a channel the bot is in (alert watching). */
export interface ChannelMessage {
  readonly channel: string;
  readonly ts: string;
  /** The parent's ts when the message is a reply in a thread (Slack's `thread_ts`). */
  readonly threadTs?: string;
  readonly text: string;
  readonly user?: string;
  readonly botId?: string;
  readonly username?: string;
}

/** Dependencies of the Slack handlers. */
export interface SlackHandlerDeps {
  readonly chat: ChatService;
  readonly flow: Pick<Flow, 'jobReported'>;
  readonly reporter: SlackReporter;
  readonly groups: UserGroupResolver;
  /** Runs the after-ack work with bounded concurrency. */
  readonly work: WorkQueue;
  /**
   * The Web API client posts go through (`createPosterClient`): it fails at once on a 429 and never
   * sends a call again by itself, so a post's tries are `postInTurns`'s, none of them waiting in a slot.
   */
  readonly posts: WebClient;
  readonly metrics: Pick<Metrics, 'commands' | 'clicks' | 'chatApiErrors'>;
  readonly logger: Logger;
  /** Alert watching: called for each new message in a channel the bot was invited to. */
  readonly onChannelMessage?: (message: ChannelMessage) => Promise<void>;
}

const id = (what: string) => z.string({ error: `expected ${what}` }).min(1, `expected ${what}`);

/** The slash command fields handlers use (Slack sends more; they are ignored). */
export const slashCommandSchema = z.object({
  command: id('the command name'),
  text: z.string({ error: 'expected the command text' }),
  user_id: id('the user id'),
  user_name: z.string().optional(),
  channel_id: id('the channel id'),
  /** `directmessage` in a DM, `mpdm-…` in a group DM, else the channel's name (`privategroup` when Slack hides it). */
  channel_name: z.string().optional(),
});
export type SlashCommand = z.infer<typeof slashCommandSchema>;

/** The `block_actions` fields handlers use. */
export const blockActionSchema = z.object({
  type: z.literal('block_actions'),
  user: z.object({ id: id('the user id'), username: z.string().optional(), name: z.string().optional() }),
  container: z.object({
    channel_id: id('the channel id'),
    message_ts: id('the message ts'),
    is_ephemeral: z.boolean().optional(),
    /** Set when the clicked message is in a thread (its parent's ts; a parent's own ts on a parent). */
    thread_ts: z.string().min(1).optional(),
  }),
  /** The clicked message; `thread_ts` as for the container. */
  message: z.object({ thread_ts: z.string().min(1).optional() }).optional(),
  actions: z.array(z.object({ action_id: id('an action_id') })).min(1, 'expected one action'),
});
export type BlockAction = z.infer<typeof blockActionSchema>;

/** "field: expectation" for the first problems of a parsed payload, and how many more. */
export function describeIssues(error: z.ZodError): string {
  return describeZodIssues(error, '(payload)');
}

/** A fault as a view (shared by every surface: src/views/fault.ts). */
export { faultView } from '../../src/views/fault.js';

/** Said at once when the after-ack backlog is full (nothing was planned or switched). */
export function busyView(): MessageView {
  const summary =
    'Switchyard is handling a burst of requests right now and did not take this one. Nothing was changed; try again in a few seconds.';
  return {
    kind: 'refusal',
    tone: 'warning',
    title: 'Busy, try again',
    summary,
    blocks: [{ type: 'text', spans: [{ text: summary }] }],
    buttons: [],
    ephemeral: true,
  };
}

/** Sends a view only the user sees, through the response URL. Never throws (logs instead). */
export async function replyEphemeral(
  deps: Pick<SlackHandlerDeps, 'logger' | 'metrics'>,
  respond: RespondFn,
  view: MessageView,
): Promise<void> {
  // People by name, like every message that is not an edit (see `SlackRenderOptions.mentions`): Slack
  // does not say whether a mention in an ephemeral notifies, and one rule is easier to keep true.
  const { text, blocks } = renderSlack(view, { mentions: false });
  try {
    await respond({ response_type: 'ephemeral', replace_original: false, text, blocks });
  } catch (e) {
    deps.metrics.chatApiErrors.inc({ surface: 'slack', method: 'response_url', code: 'request_failed' });
    deps.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'slack ephemeral reply failed');
  }
}

/**
 * Slack's error code of a failed Web API call, `ratelimited` for a 429 (Slack answers one with
 * `ratelimited`; the SDK's error for it carries no code of Slack's), or a generic label.
 */
export function slackErrorCode(e: unknown): string {
  const err = e as { code?: unknown; data?: { error?: unknown } };
  if (err.code === ErrorCode.RateLimitedError) return 'ratelimited';
  const code = err.data?.error;
  return typeof code === 'string' ? code : 'request_failed';
}

/** Tries of one post in all, while Slack refuses it before posting it (see `postFailure`). */
export const POST_TRIES = 3;
/**
 * The longest `Retry-After` a post waits out before its next try; after a longer one it is not tried
 * again (the person, or the poster's caller, is told when to try again instead of waiting unanswered).
 */
export const POST_RETRY_AFTER_MAX_MS = 10_000;
/** Pause before the next try of a post Slack's 5xx or a refused connection stopped; doubled each try. */
export const POST_FAULT_PAUSE_MS = 500;

/**
 * Network failures raised before a request went out (no connection, no address): Slack never saw it.
 * Anything else that ends a call without an answer (a time-out, a connection reset) may come after
 * Slack took the request.
 */
const UNSENT_NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Slack's errors after which "it's possible some aspect of the operation succeeded" (its docs). */
const MAYBE_DONE_ERRORS: ReadonlySet<string> = new Set(['internal_error', 'fatal_error']);

/**
 * Why a post may have been made although it failed, for a person or a log line: no answer in time,
 * or Slack's error that may come after part of the call was done.
 */
export function maybePostedReason(code: string): string {
  return MAYBE_DONE_ERRORS.has(code)
    ? `Slack answered ${code}, which it may send after part of the call was done`
    : 'Slack did not answer when Switchyard posted the message';
}

/** The start of the WARN line for a post that may have been made (`maybePostedReason`). */
export function maybePostedLine(code: string): string {
  return MAYBE_DONE_ERRORS.has(code)
    ? `slack chat.postMessage answered ${code}, which Slack may send after part of the call was done`
    : 'slack chat.postMessage got no answer';
}

/** What a failed `chat.postMessage` try means for the post (see `postFailure`). */
export interface PostFailure {
  /** Slack's error code; `ratelimited`; `timeout` (no answer in time); else `request_failed`. */
  readonly code: string;
  /** Try it again after this long: Slack surely did not post it, and tries are left. */
  readonly retryInMs?: number;
  /**
   * Slack may have posted it: the call got no answer (a time-out, a connection lost after the request
   * went), or Slack answered `internal_error`/`fatal_error`. Never sent again, since Slack has no idempotency key for posts: a second try could post
   * it twice, the first copy late and attached to nothing.
   */
  readonly maybePosted?: true;
  /** For a 429: the seconds Slack asked to wait (what a person is told). */
  readonly retryAfterS?: number;
  /**
   * Whether trying the post again later may succeed (the poster's callers retry): a rate limit, a 5xx,
   * no connection, Slack's `internal_error`; not a refusal, and not a post Slack may have made.
   */
  readonly transient: boolean;
}

/**
 * Why try number `tried` of a `chat.postMessage` failed, and whether to try again (made with
 * `createPosterClient`, which neither waits out a 429 nor retries by itself). Slack has no
 * idempotency key for posts, so only a try Slack surely did not post is sent again: a 429, an HTTP
 * 5xx, a connection that could not be made.
 */
export function postFailure(e: unknown, tried: number): PostFailure {
  const err = (e ?? {}) as { code?: unknown; retryAfter?: unknown; statusCode?: unknown; original?: unknown };
  const left = tried < POST_TRIES;
  const pause = POST_FAULT_PAUSE_MS * 2 ** (tried - 1);
  switch (err.code) {
    case ErrorCode.RateLimitedError: {
      const seconds = typeof err.retryAfter === 'number' && err.retryAfter >= 0 ? err.retryAfter : 1;
      const wait = seconds * 1000;
      return {
        code: 'ratelimited',
        retryAfterS: seconds,
        transient: true,
        ...(left && wait <= POST_RETRY_AFTER_MAX_MS ? { retryInMs: wait } : {}),
      };
    }
    case ErrorCode.HTTPError: {
      // Answered, so not posted; a 4xx other than 429 is the request refused as sent (a proxy).
      const fault = typeof err.statusCode === 'number' && err.statusCode >= 500;
      return { code: 'request_failed', transient: fault, ...(fault && left ? { retryInMs: pause } : {}) };
    }
    case ErrorCode.RequestError: {
      const o = err.original as { name?: unknown; code?: unknown; cause?: { code?: unknown } } | undefined;
      const network = o?.cause?.code ?? o?.code;
      if (typeof network === 'string' && UNSENT_NETWORK_CODES.has(network))
        return { code: 'request_failed', transient: true, ...(left ? { retryInMs: pause } : {}) };
      return {
        code: o?.name === 'TimeoutError' ? 'timeout' : 'request_failed',
        maybePosted: true,
        transient: false,
      };
    }
    default: {
      // Slack's answer (`not_in_channel`, …), or something unknown. Its `internal_error` and
      // `fatal_error` may come after part of the call was done (Slack's docs for both): the message may
      // have been posted, so it is never sent again, here or by the poster's callers.
      const code = slackErrorCode(e);
      if (MAYBE_DONE_ERRORS.has(code)) return { code, maybePosted: true, transient: false };
      return { code, transient: classifySlackError(e).failure.kind !== 'permanent' };
    }
  }
}

/**
 * What a message ref needs of Slack's answer to `chat.postMessage`: the message's `ts`, and the id of
 * the channel it went to. `chat.postMessage` takes a channel id or a channel name (`#alerts`,
 * `alerts`) and answers with the id; every later call on the message (`chat.update`) takes the id only
 * (a name gets `channel_not_found`). Slack always answers with the channel; without one, the channel
 * asked for is all there is to go by.
 */
export const postedMessageSchema = z.object({
  ts: z.string({ error: 'expected the message ts' }).min(1, 'expected the message ts'),
  channel: z.string().min(1).optional(),
});

/**
 * The ref of a message Slack answered a `chat.postMessage` to `channel` with (see
 * `postedMessageSchema`), or the problem with the answer.
 */
export function postedRef(
  channel: string,
  answer: unknown,
  threadTs?: string,
): { ok: true; ref: MessageRef } | { ok: false; issues: string } {
  const parsed = postedMessageSchema.safeParse(answer);
  if (!parsed.success) return { ok: false, issues: describeIssues(parsed.error) };
  return {
    ok: true,
    ref: {
      surface: 'slack',
      channel: parsed.data.channel ?? channel,
      messageId: parsed.data.ts,
      ...(threadTs === undefined ? {} : { threadId: threadTs }),
    },
  };
}

/** What became of a post: the message's ref, or why there is none (see `PostFailure`). */
export type Posted = { ok: true; ref: MessageRef } | ({ ok: false } & PostFailure);

/**
 * Posts a view to the channel (as a reply in the thread `threadTs` when given) and, for a
 * confirmation, attaches the message to its plan so the switch's progress edits it; when that switch
 * has ended already (the message joined it as it ended), its final state is put on the message here.
 * One try (`tried`: its number): returns the message ref (with the channel id Slack answered with), or
 * why it failed (e.g. `not_in_channel`) and whether to try again (`postFailure`).
 */
export async function postView(
  deps: Pick<SlackHandlerDeps, 'chat' | 'reporter' | 'work' | 'logger' | 'metrics'>,
  client: WebClient,
  channel: string,
  view: MessageView,
  planId?: string,
  threadTs?: string,
  tried = 1,
): Promise<Posted> {
  // Posted: people by name, never as mentions. Slack has no `allowed_mentions`: a mention in a post
  // notifies that person, so a /deployments would ping everyone in its recent activity, and a request
  // joining someone's plan would ping them. The edits that follow (progress, a click's view) mention.
  const { text, blocks } = renderSlack(view, { mentions: false });
  let ref: MessageRef;
  try {
    const res = await client.chat.postMessage({
      channel,
      text,
      blocks,
      ...(threadTs === undefined ? {} : { thread_ts: threadTs }),
    });
    const posted = postedRef(channel, res, threadTs);
    if (!posted.ok) {
      deps.logger.warn({ channel, issues: posted.issues }, 'slack chat.postMessage answer unreadable');
      return { ok: false, code: 'no_ts', transient: false };
    }
    ref = posted.ref;
  } catch (e) {
    const failure = postFailure(e, tried);
    const { code } = failure;
    deps.metrics.chatApiErrors.inc({ surface: 'slack', method: 'chat.postMessage', code });
    if (failure.maybePosted)
      deps.logger.warn(
        { channel, code, err: e instanceof Error ? e.message : String(e) },
        `${maybePostedLine(failure.code)}: the message may still appear in the channel, late and followed by nothing (no progress edits); not sent again, so it is not posted twice`,
      );
    else
      deps.logger.warn(
        {
          channel,
          code,
          tried,
          ...(failure.retryInMs === undefined ? {} : { retryInMs: failure.retryInMs }),
        },
        failure.retryInMs === undefined
          ? 'slack chat.postMessage failed'
          : 'slack chat.postMessage failed; trying again',
      );
    return { ok: false, ...failure };
  }
  if (planId !== undefined) {
    const ended = await deps.chat.attach(planId, ref);
    // Delivered in the background, on the message's lane, as its final state (see `WorkQueue.track`).
    if (ended !== undefined)
      deps.work.track(deps.reporter.report(ended, [ref]), 'final state of a late message');
  }
  return { ok: true, ref };
}

/** A post a handler makes: where, what, and the plan the message is to follow. */
export interface PostRequest {
  readonly channel: string;
  readonly view: MessageView;
  readonly planId?: string;
  readonly threadTs?: string;
}

/**
 * Posts (`postView`, through `deps.posts`) and hands what became of it to `done`. The first try runs
 * in the caller's work slot. A try Slack surely did not post (a 429, a 5xx, no connection) is tried
 * again as a new task of the work queue once its `Retry-After` (or a short pause) has passed, up to
 * POST_TRIES in all: no slot is held while it waits, so posts sitting out Slack's rate limit never
 * stall the clicks and commands behind them. `fault` gets what a later try throws (the first try's
 * errors reach the caller).
 */
export async function postInTurns(
  deps: Pick<SlackHandlerDeps, 'chat' | 'reporter' | 'work' | 'logger' | 'metrics' | 'posts'>,
  post: PostRequest,
  done: (posted: Posted) => Promise<void>,
  fault: (e: unknown) => Promise<void>,
  tried = 1,
): Promise<void> {
  const posted = await postView(deps, deps.posts, post.channel, post.view, post.planId, post.threadTs, tried);
  if (!posted.ok && posted.retryInMs !== undefined) {
    deps.work.later(posted.retryInMs, () => postInTurns(deps, post, done, fault, tried + 1).catch(fault));
    return;
  }
  await done(posted);
}

/** Where a command was typed, as the slash command payload says. */
export interface CommandChannel {
  readonly id: string;
  readonly name?: string;
}

/**
 * Whether `channel` is a direct message (`D…`, channel_name `directmessage`) or a group DM (channel_name
 * `mpdm-…`): Slack lets people run an app's slash commands there, but the bot is no member and cannot
 * be invited.
 */
export function isDirectMessage(channel: CommandChannel): boolean {
  return (
    channel.id.startsWith('D') ||
    channel.name === 'directmessage' ||
    channel.name?.startsWith('mpdm-') === true
  );
}

/**
 * What to tell the user when the bot could not post in their channel (`channel`: where the command was
 * typed, when known): Slack's refusal; that Slack is limiting Switchyard's posts (try again in the
 * seconds it asked for); or, for a post that got no answer, that it may still appear. In a direct
 * message there is no one to invite the bot: run the command in a channel it is in instead.
 */
export function cannotPostView(
  failure: string | Pick<PostFailure, 'code' | 'retryAfterS' | 'maybePosted'>,
  view: MessageView,
  channel?: CommandChannel,
): MessageView {
  const f = typeof failure === 'string' ? { code: failure } : failure;
  const notThere = f.code === 'not_in_channel' || f.code === 'channel_not_found';
  let title = 'Could not post in this channel';
  let hint: string;
  if (f.maybePosted === true) {
    title = MAYBE_DONE_ERRORS.has(f.code) ? 'Slack answered with an error' : 'Slack did not answer';
    hint =
      `${maybePostedReason(f.code)}. It was not sent again, so that it is not posted twice: it may still appear here, late, ` +
      'but Switchyard will not update it by itself (its buttons still work). If it has not appeared in a minute, try again. Nothing was changed.';
  } else if (f.code === 'ratelimited') {
    title = 'Slack is limiting messages';
    hint = `Slack is limiting how fast Switchyard may post right now, so the message was not posted. Nothing was changed; try again in ${Math.max(1, Math.ceil(f.retryAfterS ?? 1))} s.`;
  } else if (!notThere) hint = `Slack refused the message (${f.code}).`;
  else if (channel !== undefined && isDirectMessage(channel))
    hint =
      'Switchyard cannot post in direct messages, so nobody else would see the confirmation or its progress. Run the command in a channel Switchyard was invited to (the incident channel, say).';
  else
    hint =
      'Switchyard is not in this channel. Invite it with `/invite @switchyard` and run the command again, so everyone here sees the confirmation and its progress.';
  return {
    ...view,
    kind: 'refusal',
    tone: 'warning',
    title,
    summary: hint,
    blocks: [{ type: 'text', spans: [{ text: hint }] }],
    buttons: [],
    ephemeral: true,
  };
}
