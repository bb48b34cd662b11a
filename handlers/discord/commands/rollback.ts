/** `/rollback environment:<env> [deployment:<id>]`: a rollback confirmation posted in the channel. */
import type { DiscordCommand } from './run.js';
import { option, runCommand } from './run.js';

export const rollbackCommand: DiscordCommand = {
  name: 'rollback',
  execute(deps, interaction) {
    const environment = option(interaction, 'environment');
    const deployment = option(interaction, 'deployment');
    // A missing environment reaches ChatService as no argument, which answers with usage.
    const args = [environment, deployment].filter((a): a is string => a !== undefined);
    return runCommand(deps, interaction, 'rollback', environment === undefined ? [] : args);
  },
};
