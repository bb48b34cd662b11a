/**
 * `message.channels` (alert watching): new messages in channels the bot was invited to go to the
 * alert watcher when one is wired (`onChannelMessage`). Edits, deletions and the bot's own messages
 * are skipped; retries were already deduplicated on `event_id` by the app middleware.
 */
import type { App } from '@slack/bolt';
import { z } from 'zod';
import type { SlackHandlerDeps } from '../context.js';

const channelMessageSchema = z.object({
  type: z.literal('message'),
  subtype: z.string().optional(),
  channel: z.string().min(1),
  ts: z.string().min(1),
  text: z.string().default(''),
  user: z.string().optional(),
  bot_id: z.string().optional(),
  username: z.string().optional(),
});

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
        text: m.text,
        ...(m.user === undefined ? {} : { user: m.user }),
        ...(m.bot_id === undefined ? {} : { botId: m.bot_id }),
        ...(m.username === undefined ? {} : { username: m.username }),
      });
    } catch (e) {
      deps.logger.error({ err: e, channel: m.channel }, 'alert watcher failed on a Slack message');
    }
  });
}
