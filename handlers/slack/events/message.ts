/**
 * `message.channels` (alert watching): new messages in channels the bot was invited to go to the
 * alert watcher when one is wired (`onChannelMessage`), with the text of their attachments (what alert
 * bots such as Alertmanager post). Edits, deletions and the bot's own messages are skipped; retries
 * were already deduplicated on `event_id` by the app middleware.
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

/** Subtypes that are not new content (edits, deletions, joins…); bot_message stays (alert bots post so). */
const SKIP = new Set([
  'message_changed',
  'message_deleted',
  'channel_join',
  'channel_leave',
  'message_replied',
]);

/** Registers the `message` event listener. */
export function register(app: App, deps: SlackHandlerDeps): void {
  const watch = deps.onChannelMessage;
  if (watch === undefined) return;
  app.event('message', async ({ event, context }) => {
    const parsed = channelMessageSchema.safeParse(event);
    if (!parsed.success) return;
    const m = parsed.data;
    if (m.subtype !== undefined && SKIP.has(m.subtype)) return;
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
