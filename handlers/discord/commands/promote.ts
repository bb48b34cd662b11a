/** `/promote target:<deployment or environment>`: a promote confirmation posted in the channel. */
import type { DiscordCommand } from './run.js';
import { optionWords, runCommand } from './run.js';

export const promoteCommand: DiscordCommand = {
  name: 'promote',
  execute(deps, interaction) {
    // None or several words: ChatService answers with usage, as for Slack's `/promote` text.
    return runCommand(deps, interaction, 'promote', optionWords(interaction, 'target'));
  },
};
