/** `/rollback environment:<env> [deployment:<id>]`: a rollback confirmation posted in the channel. */
import type { DiscordCommand } from './run.js';
import { optionWords, runCommand } from './run.js';

export const rollbackCommand: DiscordCommand = {
  name: 'rollback',
  execute(deps, interaction) {
    const environment = optionWords(interaction, 'environment');
    const deployment = optionWords(interaction, 'deployment');
    // One word each, as Slack reads `/rollback <environment> [<deployment>]`. An option of several
    // words is answered with usage naming it: an environment option `production dep_1` is never taken
    // for both. A missing environment reaches ChatService as no argument (usage).
    if (environment.length > 1)
      return runCommand(deps, interaction, 'rollback', [], {
        option: 'environment',
        takes: 'one word, an environment',
        words: environment,
        hint: ' Give the deployment in the deployment option.',
      });
    if (deployment.length > 1)
      return runCommand(deps, interaction, 'rollback', [], {
        option: 'deployment',
        takes: 'one word, a deployment id',
        words: deployment,
        hint: ' To say why, write it in a message of its own.',
      });
    return runCommand(deps, interaction, 'rollback', [...environment, ...deployment]);
  },
};
