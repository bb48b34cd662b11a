/**
 * The optional chat surfaces `npm start` knows about. Each factory returns undefined when its
 * credentials are not configured; otherwise it hands the composition root its Reporter (progress
 * edits), its ChatPoster (alert suggestions and notices) and its lifecycle. Messages in watched
 * channels are turned into alerts here (src/alerts/chat.ts) and handed to the AlertService.
 */
import { parseChatAlert } from '../src/alerts/chat.js';
import type { ChatPoster } from '../src/chat-sinks.js';
import { renderDiscord } from '../src/views/discord.js';
import { describeConnection, type SurfaceContext, type SurfaceFactory, type SurfaceHandle } from './app.js';
import {
  createDiscordBotFromConfig,
  createDiscordRestBotFromConfig,
  DISCORD_REST_ONLY,
} from './discord/index.js';
import { type DiscordMessages, discordRetryable } from './discord/messages.js';
import type { ChannelMessage } from './discord/watch.js';
import { slackSurface } from './slack/surface.js';

/**
 * What a Discord message says: its content, then each embed's title, description and fields, one per
 * line. Alert bots (Alertmanager's and Grafana's Discord integrations) post embeds with no content.
 */
export function discordMessageText(message: Pick<ChannelMessage, 'content' | 'embeds'>): string {
  const lines = [message.content];
  for (const e of message.embeds) {
    lines.push(e.title ?? '', e.description ?? '');
    for (const f of e.fields) lines.push(`${f.name}: ${f.value}`);
  }
  return lines.filter((l) => l.trim() !== '').join('\n');
}

/**
 * The Discord ChatPoster (alert suggestions and notices) over the bot's messages. `update` edits
 * through the message's lane (ordered with the switch's progress) and rejects with the REST error
 * when the edit failed, so its callers can retry (`retryable`: a 5xx, 429 or network fault may pass;
 * a 4xx refusal such as Unknown Message is final). An edit the lane drops because the message shows
 * a switch's progress resolves.
 */
export function discordPoster(messages: DiscordMessages): ChatPoster {
  return {
    surface: 'discord',
    // A suggestion for an alert from chat replies to the alert message (Discord has no thread_ts).
    async post(channel, view, opts = {}) {
      const posted = await messages.post(channel, renderDiscord(view), {
        ...(opts.threadId === undefined ? {} : { replyTo: opts.threadId }),
        // The same logical post (a notice's retry) gets the same nonce: Discord answers its message.
        ...(opts.key === undefined ? {} : { key: opts.key }),
      });
      return { surface: 'discord', channel, messageId: posted.id };
    },
    update: (ref, view, opts = {}) =>
      messages.edit(
        ref.channel,
        ref.messageId,
        renderDiscord(view),
        // Superseding the job's progress: ordered as its latest final state, so never dropped for it.
        opts.supersedesProgress === undefined
          ? { kind: 'view' }
          : { kind: 'progress', at: opts.supersedesProgress.at, final: true },
        { rejectOnFailure: true },
      ),
    retryable: discordRetryable,
  };
}

/**
 * Discord when DISCORD_TOKEN is set: the gateway bot, or with `DISCORD_GATEWAY=off` the REST-only bot
 * (no session: it takes no commands, clicks or watched-channel messages, but its Reporter and poster
 * reach Discord, so this process's worker edits the Discord messages of the switches it runs and its
 * alert suggestions and notices reach Discord; see README "Architecture").
 */
export const discordSurface: SurfaceFactory = async (
  ctx: SurfaceContext,
): Promise<SurfaceHandle | undefined> => {
  if (ctx.config.env.DISCORD_GATEWAY === 'off') {
    const rest = createDiscordRestBotFromConfig(ctx.config, { logger: ctx.logger, metrics: ctx.metrics });
    if (!rest) return undefined;
    return {
      surface: 'discord',
      reporter: rest.reporter,
      poster: discordPoster(rest.messages),
      start: () => rest.start(),
      stop: () => rest.stop(),
      connection: () => DISCORD_REST_ONLY,
    };
  }
  const bot = createDiscordBotFromConfig(ctx.config, {
    chat: ctx.chat,
    flow: ctx.flow,
    clock: ctx.clock,
    logger: ctx.logger,
    metrics: ctx.metrics,
    // Watched channels (alerts.watch.discord) are caught up after a new gateway session or a restart,
    // from the last message seen, kept in Redis (handlers/discord/watch.ts).
    watch: { redis: ctx.redis, keyPrefix: `${ctx.namespace}:` },
    onMessage: async (message) => {
      // A thread (a forum post, or a thread started under a message) is watched when the channel it
      // lives in is (`watchedAs`); the suggestion still replies in the thread itself.
      const alert = parseChatAlert(discordMessageText(message), message.watchedAs, 'discord', ctx.config, {
        at: message.createdTimestamp,
      });
      if (!alert) return;
      await ctx
        .alerts()
        ?.handleChat([alert], { surface: 'discord', channel: message.channelId, messageId: message.id });
    },
  });
  if (!bot) return undefined;
  return {
    surface: 'discord',
    reporter: bot.reporter,
    poster: discordPoster(bot.messages),
    start: () => bot.start(),
    stop: () => bot.stop(),
    connection: () => describeConnection(bot.status()),
  };
};

export const surfaceFactories: readonly SurfaceFactory[] = [slackSurface, discordSurface];
