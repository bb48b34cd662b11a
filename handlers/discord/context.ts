/**
 * What every Discord handler shares: the dependencies (ChatService and Flow from src, the bot-owned
 * message poster/editor, metrics), who is acting (user id, display name, username and guild role ids
 * taken from the interaction's member — the permission input of src/permissions.ts), and rendering a
 * view for an interaction reply versus a channel message.
 */
import {
  type BaseInteraction,
  DiscordAPIError,
  GuildMember,
  type InteractionEditReplyOptions,
  type InteractionReplyOptions,
  MessageFlags,
} from 'discord.js';
import type { ChatService } from '../../src/chat.js';
import type { Clock } from '../../src/clock.js';
import type { Flow } from '../../src/flow.js';
import type { Logger } from '../../src/log.js';
import type { Metrics } from '../../src/metrics.js';
import type { ActingUser } from '../../src/permissions.js';
import type { MessageRef, Progress } from '../../src/progress.js';
import { renderDiscord } from '../../src/views/discord.js';
import { progressView } from '../../src/views/model.js';
import type { MessageView } from '../../src/views/types.js';
import type { DiscordMessages } from './messages.js';

/** Dependencies of the Discord handlers. */
export interface DiscordDeps {
  readonly chat: ChatService;
  readonly flow: Flow;
  readonly messages: DiscordMessages;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics?: Pick<Metrics, 'commands' | 'clicks' | 'chatApiErrors'>;
  /** Longest an autocomplete may take before answering with what is known (Discord allows 3 s). */
  readonly autocompleteBudgetMs: number;
  /**
   * `DISCORD_GUILD_ID`: the one server Switchyard acts in; interactions from any other (and from
   * direct messages) are refused. Unset: every server the bot is in.
   */
  readonly guildId?: string;
}

/**
 * The acting person: Discord user id, display name (the server nickname when set), unique username and
 * the member's guild role ids. The username goes along because messages name people by `<@id>`, which
 * Discord shows with the nickname every member sets for themselves: the views add the username
 * wherever it differs from that name, so an impostor nicknamed "alice" reads "@alice (@mallory)".
 */
export function actingUser(interaction: BaseInteraction): ActingUser {
  const user = interaction.user;
  const member = interaction.member;
  let roles: string[] = [];
  let displayName = user.globalName ?? user.username;
  if (member instanceof GuildMember) {
    roles = [...member.roles.cache.keys()];
    displayName = member.displayName;
  } else if (member !== null) {
    roles = [...member.roles];
    displayName = member.nick ?? displayName;
  }
  // Every member of a server holds its @everyone role, whose id is the server's: an allow list naming
  // it ("Copy Role ID" on @everyone) opens the environment to the whole server. The interaction's own
  // role list leaves it out (discord.js's member cache includes it): added here either way, once.
  const guildId = interaction.guildId;
  if (guildId !== null && member !== null && !roles.includes(guildId)) roles.push(guildId);
  // Unique since Discord's 2023 username change (legacy names with a discriminator are migrated).
  const username = user.username;
  return {
    surface: 'discord',
    userId: user.id,
    displayName,
    ...(username === '' ? {} : { username }),
    roles,
  };
}

/** A Discord message reference for Flow (so progress edits the message). */
export function messageRef(channelId: string, messageId: string): MessageRef {
  return { surface: 'discord', channel: channelId, messageId };
}

/** A view as an ephemeral interaction reply or follow-up (only the person who acted sees it). */
export function ephemeralBody(view: MessageView): InteractionReplyOptions {
  const m = renderDiscord(view);
  return {
    embeds: m.embeds,
    components: m.components,
    allowedMentions: { parse: [] },
    flags: MessageFlags.Ephemeral,
  };
}

/** JSON codes of "the bot may not post here": Missing Access, Missing Permissions (docs: JSON error codes). */
const NO_ACCESS = new Set([50001, 50013]);

/**
 * What to tell the person when Discord refused a post because the bot may not post in the channel
 * (what to grant, in words); undefined for any other error.
 */
export function cannotPostHere(e: unknown): string | undefined {
  if (!(e instanceof DiscordAPIError) || typeof e.code !== 'number' || !NO_ACCESS.has(e.code))
    return undefined;
  return `I cannot post in this channel (${e.message}). Give the Switchyard bot the View Channel, Send Messages and Embed Links permissions here, or use another channel. Nothing was changed.`;
}

/** A view as the edit of a deferred reply (its visibility was fixed when it was deferred). */
export function editBody(view: MessageView): InteractionEditReplyOptions {
  const m = renderDiscord(view);
  return { content: '', embeds: m.embeds, components: m.components, allowedMentions: { parse: [] } };
}

/** Jump link to a message (what a person clicks to get to the posted confirmation). */
export function messageLink(guildId: string | null, channelId: string, messageId: string): string {
  return `https://discord.com/channels/${guildId ?? '@me'}/${channelId}/${messageId}`;
}

/** Makes an ended job's outcome the message's final state (unless this process already did). */
export async function showEnded(
  deps: Pick<DiscordDeps, 'messages'>,
  channelId: string,
  messageId: string,
  ended: Progress,
): Promise<void> {
  if (deps.messages.isFinal(channelId, messageId)) return;
  await deps.messages.edit(channelId, messageId, renderDiscord(progressView(ended)), {
    kind: 'progress',
    at: ended.updatedAt,
    final: true,
  });
}

/**
 * Attaches a posted confirmation to its plan so the switch's progress edits it; when that switch has
 * ended already (the message joined it as it ended, after its worker read the job's messages for the
 * last time), puts its final state on the message here.
 */
export async function attachPosted(
  deps: Pick<DiscordDeps, 'chat' | 'messages'>,
  planId: string,
  channelId: string,
  messageId: string,
): Promise<void> {
  const ended = await deps.chat.attach(planId, messageRef(channelId, messageId));
  if (ended !== undefined) await showEnded(deps, channelId, messageId, ended);
}
