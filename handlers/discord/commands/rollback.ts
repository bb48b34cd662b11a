/** `/rollback environment:<env> [deployment:<id>]`: a rollback confirmation posted in the channel. */
import type { DiscordCommand } from './run.js';
import { oneWordOption, runCommand } from './run.js';

export const rollbackCommand: DiscordCommand = {
  name: 'rollback',
  execute(deps, interaction) {
    // One word each, as Slack reads `/rollback <environment> [<deployment>]`. An option of several
    // words is answered with usage naming it: an environment option `production dep_1` is never taken
    // for both. A missing environment reaches ChatService as no argument (usage).
    const environment = oneWordOption(
      interaction,
      'environment',
      'one word, an environment',
      ' Give a deployment in the deployment option; to say why, write it in a message of its own.',
    );
    const deployment = oneWordOption(
      interaction,
      'deployment',
      'one word, a deployment id',
      ' To say why, write it in a message of its own.',
    );
    const problem = environment.problem ?? deployment.problem;
    const args = problem === undefined ? [...environment.words, ...deployment.words] : [];
    return runCommand(deps, interaction, 'rollback', args, problem);
  },
};
