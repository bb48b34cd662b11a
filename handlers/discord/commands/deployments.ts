/** `/deployments environment:<env>`: the deployments list (with row buttons) posted in the channel. */
import type { DiscordCommand } from './run.js';
import { option, runCommand } from './run.js';

export const deploymentsCommand: DiscordCommand = {
  name: 'deployments',
  execute(deps, interaction) {
    const environment = option(interaction, 'environment');
    return runCommand(deps, interaction, 'deployments', environment === undefined ? [] : [environment]);
  },
};
