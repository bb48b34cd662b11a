/** `/promote target:<deployment or environment>`: a promote confirmation posted in the channel. */
import type { DiscordCommand } from './run.js';
import { option, runCommand } from './run.js';

export const promoteCommand: DiscordCommand = {
  name: 'promote',
  execute(deps, interaction) {
    const target = option(interaction, 'target');
    return runCommand(deps, interaction, 'promote', target === undefined ? [] : [target]);
  },
};
