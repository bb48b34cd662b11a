/** `/deployments environment:<env>`: the deployments list (with row buttons) posted in the channel. */
import type { DiscordCommand } from './run.js';
import { optionWords, runCommand } from './run.js';

export const deploymentsCommand: DiscordCommand = {
  name: 'deployments',
  execute(deps, interaction) {
    // One word; several are answered with usage naming the option, none with usage.
    const environment = optionWords(interaction, 'environment');
    if (environment.length > 1)
      return runCommand(deps, interaction, 'deployments', [], {
        option: 'environment',
        takes: 'one word, an environment',
        words: environment,
      });
    return runCommand(deps, interaction, 'deployments', environment);
  },
};
