/**
 * What every Slack handler shares: its dependencies, the zod schemas of the Slack payloads it reads
 * (slash command fields, `block_actions` fields), and the three ways a handler answers — a message in
 * the channel (`chat.postMessage`, then attached to the plan so progress edits it), an ephemeral reply
 * through the `response_url`, and an edit of the clicked message (through the reporter's paced lane).
 * Faults become a short ephemeral message with the error code: never a stack trace, never silence.
 */
import type { RespondFn } from '@slack/bolt';
import type { WebClient } from '@slack/web-api';
import { z } from 'zod';
import type { ChatService } from '../../src/chat.js';
import { asSwitchyardError } from '../../src/errors.js';
import type { Flow } from '../../src/flow.js';
import type { Logger } from '../../src/log.js';
import type { Metrics } from '../../src/metrics.js';
import type { MessageRef } from '../../src/progress.js';
import { renderSlack } from '../../src/views/slack.js';
import type { MessageView } from '../../src/views/types.js';
import { describeIssues as describeZodIssues } from '../../src/zod-issues.js';
import type { UserGroupResolver } from './groups.js';
import type { SlackReporter } from './reporter.js';
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

/** "field: expectation" for each problem of a parsed payload. */
export function describeIssues(error: z.ZodError): string {
  return describeZodIssues(error, '(payload)');
}

/**
 * A fault as a view: what failed, its code, and that nothing was half-done. "Nothing was switched"
 * holds because a click whose switch was queued never ends in a fault: Flow answers it as queued
 * whatever fails after the enqueue (see `Flow.enqueueFrom`, docs/jobs.md "When Redis is unreachable").
 */
export function faultView(e: unknown, doing: string): MessageView {
  const err = asSwitchyardError(e);
  const retry = err.retry ? ' It may work if you try again in a moment.' : '';
  const reason = err.code === 'redis_unavailable' ? 'its Redis is unreachable' : err.code;
  const summary = `Switchyard could not ${doing} (${reason}).${retry}`;
  return {
    kind: 'refusal',
    tone: 'danger',
    title: 'Something went wrong',
    summary,
    blocks: [
      { type: 'text', spans: [{ text: summary }] },
      {
        type: 'context',
        spans: [{ text: 'Nothing was switched by this request. The error is in the Switchyard logs.' }],
      },
    ],
    buttons: [],
    ephemeral: true,
  };
}

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

/** Slack's error code of a failed Web API call, or a generic label. */
export function slackErrorCode(e: unknown): string {
  const code = (e as { data?: { error?: unknown } }).data?.error;
  return typeof code === 'string' ? code : 'request_failed';
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

/**
 * Posts a view to the channel (as a reply in the thread `threadTs` when given) and, for a
 * confirmation, attaches the message to its plan so the switch's progress edits it; when that switch
 * has ended already (the message joined it as it ended), its final state is put on the message here.
 * Returns the message ref (with the channel id Slack answered with), or the Slack error code (e.g.
 * `not_in_channel`).
 */
export async function postView(
  deps: Pick<SlackHandlerDeps, 'chat' | 'reporter' | 'work' | 'logger' | 'metrics'>,
  client: WebClient,
  channel: string,
  view: MessageView,
  planId?: string,
  threadTs?: string,
): Promise<{ ok: true; ref: MessageRef } | { ok: false; code: string }> {
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
      return { ok: false, code: 'no_ts' };
    }
    ref = posted.ref;
  } catch (e) {
    const code = slackErrorCode(e);
    deps.metrics.chatApiErrors.inc({ surface: 'slack', method: 'chat.postMessage', code });
    deps.logger.warn({ channel, code }, 'slack chat.postMessage failed');
    return { ok: false, code };
  }
  if (planId !== undefined) {
    const ended = await deps.chat.attach(planId, ref);
    // Delivered in the background, on the message's lane, as its final state (see `WorkQueue.track`).
    if (ended !== undefined)
      deps.work.track(deps.reporter.report(ended, [ref]), 'final state of a late message');
  }
  return { ok: true, ref };
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
 * What to tell the user when the bot cannot post in their channel (`channel`: where the command was
 * typed, when known). In a direct message there is no one to invite the bot: run the command in a
 * channel it is in instead.
 */
export function cannotPostView(code: string, view: MessageView, channel?: CommandChannel): MessageView {
  const notThere = code === 'not_in_channel' || code === 'channel_not_found';
  const hint = !notThere
    ? `Slack refused the message (${code}).`
    : channel !== undefined && isDirectMessage(channel)
      ? 'Switchyard cannot post in direct messages, so nobody else would see the confirmation or its progress. Run the command in a channel Switchyard was invited to (the incident channel, say).'
      : 'Switchyard is not in this channel. Invite it with `/invite @switchyard` and run the command again, so everyone here sees the confirmation and its progress.';
  return {
    ...view,
    kind: 'refusal',
    tone: 'warning',
    title: 'Could not post in this channel',
    summary: hint,
    blocks: [{ type: 'text', spans: [{ text: hint }] }],
    buttons: [],
    ephemeral: true,
  };
}
