/** `/deployments environment:<env>`: the deployments list (with row buttons) posted in the channel. */
import type { DiscordCommand } from './run.js';
import { oneWordOption, runCommand } from './run.js';

export const deploymentsCommand: DiscordCommand = {
  name: 'deployments',
  execute(deps, interaction) {
    // One word; several are answered with usage naming the option, none with usage.
    const { words, problem } = oneWordOption(interaction, 'environment', 'one word, an environment');
    return runCommand(deps, interaction, 'deployments', problem === undefined ? words : [], problem);
  },
};
