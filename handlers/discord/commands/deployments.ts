/** `/deployments environment:<env>`: the deployments list (with row buttons) posted in the channel. */
import type { DiscordCommand } from './run.js';
import { optionWords, runCommand } from './run.js';

export const deploymentsCommand: DiscordCommand = {
  name: 'deployments',
  execute(deps, interaction) {
    // None or several words: ChatService answers with usage, as for Slack's `/deployments` text.
    return runCommand(deps, interaction, 'deployments', optionWords(interaction, 'environment'));
  },
};
