/**
 * `message.channels` and `message.groups` (alert watching): new messages in public and private channels
 * the bot was invited to (both arrive as a `message` event; a private channel's says `channel_type:
 * "group"`, which changes nothing here) go to the alert watcher when one is wired (`onChannelMessage`),
 * with the text of their attachments (what alert bots such as Alertmanager post). Only new content is
 * read (see CONTENT_SUBTYPES): edits, deletions, joins and Slack's own notices (topic, purpose or name
 * changed, a pin, …) are skipped, and so are the bot's own messages; retries were already deduplicated
 * on `event_id` by the app middleware.
 */
import type { App } from '@slack/bolt';
import { z } from 'zod';
import type { SlackHandlerDeps } from '../context.js';

const channelMessageSchema = z.object({
  type: z.literal('message'),
  subtype: z.string().optional(),
  channel: z.string().min(1),
  ts: z.string().min(1),
  thread_ts: z.string().min(1).optional(),
  text: z.string().default(''),
  user: z.string().optional(),
  bot_id: z.string().optional(),
  username: z.string().optional(),
  // Alert bots (Alertmanager, Grafana, Datadog incoming webhooks) often put everything here, text ''.
  attachments: z
    .array(
      z.looseObject({
        pretext: z.string().optional(),
        title: z.string().optional(),
        text: z.string().optional(),
        fallback: z.string().optional(),
      }),
    )
    .optional()
    .catch(undefined),
});

/**
 * What the message says: its text, then each attachment's pretext, title and text (its fallback when
 * it has none of those), one per line — so an attachment-only alert reads like a typed one.
 */
export function messageText(m: z.infer<typeof channelMessageSchema>): string {
  const lines = [m.text];
  for (const a of m.attachments ?? []) {
    const parts = [a.pretext, a.title, a.text].filter((x): x is string => x !== undefined && x !== '');
    lines.push(...(parts.length > 0 ? parts : a.fallback === undefined ? [] : [a.fallback]));
  }
  return lines.filter((l) => l.trim() !== '').join('\n');
}

/**
 * The message subtypes that are new content someone posted: none (a person, or an app with a bot
 * token), `bot_message` (incoming webhooks and alert bots), `thread_broadcast` (a reply also sent to
 * the channel), `file_share` (a message with a file) and `me_message` (`/me`). Every other subtype is
 * a change (`message_changed`, `message_deleted`, `message_replied`) or a notice Slack writes itself
 * (`channel_join`, `channel_topic`, `channel_purpose`, `channel_name`, `pinned_item`, `bot_add`, …,
 * and any added later), whose text quotes a topic or name rather than being an alert: an allow-list.
 */
export const CONTENT_SUBTYPES: ReadonlySet<string> = new Set([
  'bot_message',
  'thread_broadcast',
  'file_share',
  'me_message',
]);

/** Registers the `message` event listener. */
export function register(app: App, deps: SlackHandlerDeps): void {
  const watch = deps.onChannelMessage;
  if (watch === undefined) return;
  app.event('message', async ({ event, context }) => {
    const parsed = channelMessageSchema.safeParse(event);
    if (!parsed.success) return;
    const m = parsed.data;
    if (m.subtype !== undefined && !CONTENT_SUBTYPES.has(m.subtype)) return;
    if (m.bot_id !== undefined && m.bot_id === context.botId) return;
    try {
      await watch({
        channel: m.channel,
        ts: m.ts,
        // A thread's parent carries thread_ts equal to its own ts: only replies have a parent.
        ...(m.thread_ts === undefined || m.thread_ts === m.ts ? {} : { threadTs: m.thread_ts }),
        text: messageText(m),
        ...(m.user === undefined ? {} : { user: m.user }),
        ...(m.bot_id === undefined ? {} : { botId: m.bot_id }),
        ...(m.username === undefined ? {} : { username: m.username }),
      });
    } catch (e) {
      deps.logger.error({ err: e, channel: m.channel }, 'alert watcher failed on a Slack message');
    }
  });
}
