/**
 * The shared body of the three slash commands: answer Discord at once (an ephemeral deferral, so
 * platform reads may take longer than 3 s), ask ChatService (src/chat.ts) exactly as Slack and the
 * console do, then either show the refusal/usage only to the person who typed it, or post the result
 * as a channel message owned by the bot (so progress can edit it with the bot token for as long as
 * the switch takes) and attach that message to the plan.
 */
import { type AutocompleteInteraction, type ChatInputCommandInteraction, MessageFlags } from 'discord.js';
import { type CommandName, commandArgs } from '../../../src/chat.js';
import { CommandOutcome, commandReplyOutcome } from '../../../src/metrics.js';
import { renderDiscord } from '../../../src/views/discord.js';
import { commandFaultView, logCommandFault } from '../../../src/views/fault.js';
import {
  actingUser,
  attachPosted,
  cannotPostHere,
  type DiscordDeps,
  editBody,
  ephemeralBody,
  messageLink,
} from '../context.js';

/** A Discord slash command handler (one per file in this folder). */
export interface DiscordCommand {
  readonly name: CommandName;
  execute(deps: DiscordDeps, interaction: ChatInputCommandInteraction): Promise<void>;
}

/** An option given several words where it takes one: answered with usage naming the option. */
export interface OptionProblem {
  readonly option: string;
  /** What the option takes, e.g. "one word, an environment". */
  readonly takes: string;
  readonly words: readonly string[];
  readonly hint?: string;
}

/**
 * Runs `/name args…` for the interaction (see the module header), or answers `problem` with usage
 * and nothing else. Never throws.
 */
export async function runCommand(
  deps: DiscordDeps,
  interaction: ChatInputCommandInteraction,
  name: CommandName,
  args: readonly string[],
  problem?: OptionProblem,
): Promise<void> {
  let outcome: CommandOutcome = CommandOutcome.error;
  try {
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    const reply = problem
      ? await deps.chat.optionTooManyWords(name, problem.option, problem.takes, problem.words, problem.hint)
      : await deps.chat.command(actingUser(interaction), name, args);
    if (reply.visibility === 'ephemeral') {
      outcome = commandReplyOutcome(reply);
      await interaction.editReply(editBody(reply.view));
      return;
    }
    const channelId = interaction.channelId;
    let posted: { id: string };
    try {
      posted = await deps.messages.post(channelId, renderDiscord(reply.view));
    } catch (e) {
      const noAccess = cannotPostHere(e);
      if (noAccess === undefined) throw e;
      outcome = CommandOutcome.notPosted;
      await interaction.editReply({ content: noAccess });
      return;
    }
    if (reply.planId !== undefined) await attachPosted(deps, reply.planId, channelId, posted.id);
    outcome = commandReplyOutcome(reply);
    await interaction.editReply({
      content: `Posted in this channel: ${messageLink(interaction.guildId, channelId, posted.id)}`,
    });
  } catch (e) {
    // Said as on Slack and the console (the shared fault view, in words and with its code); the raw
    // error stays in the log: a platform outage as a WARN line, anything else as an ERROR.
    logCommandFault(
      deps.logger,
      e,
      { command: name, interactionId: interaction.id },
      'discord command failed',
    );
    const view = commandFaultView(e, name);
    await (interaction.deferred || interaction.replied
      ? interaction.editReply(editBody(view))
      : interaction.reply(ephemeralBody(view))
    ).catch(() => undefined);
  } finally {
    deps.metrics?.commands.inc({ surface: 'discord', command: name, outcome });
  }
}

/**
 * A string option that takes one word: its words (none when absent or blank), and the problem to
 * answer instead of running the command when it holds several (`runCommand`'s `problem`).
 */
export function oneWordOption(
  interaction: Pick<ChatInputCommandInteraction, 'options'>,
  option: string,
  takes: string,
  hint?: string,
): { readonly words: string[]; readonly problem?: OptionProblem } {
  const words = optionWords(interaction, option);
  if (words.length <= 1) return { words };
  return { words, problem: { option, takes, words, ...(hint === undefined ? {} : { hint }) } };
}

/**
 * A string option's words, read as Slack and the console read command text (commandArgs): invisible
 * characters pasted with an id (a zero-width space, a byte-order mark), controls, quotes and backticks
 * dropped, so an id pasted from a message works on every surface alike. None when absent or blank;
 * several when the value holds several words, which the command answers with usage naming the option
 * (`OptionProblem`), as Slack names extra words.
 * Autocomplete reads the options typed so far the same way (handlers/discord/autocomplete.ts).
 */
export function optionWords(
  interaction: Pick<ChatInputCommandInteraction | AutocompleteInteraction, 'options'>,
  name: string,
): string[] {
  return commandArgs(interaction.options.getString(name) ?? '');
}
