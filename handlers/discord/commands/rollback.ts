/** `/rollback environment:<env> [deployment:<id>]`: a rollback confirmation posted in the channel. */
import type { DiscordCommand } from './run.js';
import { optionWords, runCommand } from './run.js';

export const rollbackCommand: DiscordCommand = {
  name: 'rollback',
  execute(deps, interaction) {
    const environment = optionWords(interaction, 'environment');
    const deployment = optionWords(interaction, 'deployment');
    // One word each, as Slack reads `/rollback <environment> [<deployment>]`. A missing environment, or
    // an option of several words, reaches ChatService as no argument, which answers with usage (an
    // environment option `production dep_1` is not taken for both).
    const args = environment.length === 1 && deployment.length <= 1 ? [...environment, ...deployment] : [];
    return runCommand(deps, interaction, 'rollback', args);
  },
};
