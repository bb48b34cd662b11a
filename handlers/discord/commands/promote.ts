/** `/promote target:<deployment or environment>`: a promote confirmation posted in the channel. */
import type { DiscordCommand } from './run.js';
import { oneWordOption, runCommand } from './run.js';

export const promoteCommand: DiscordCommand = {
  name: 'promote',
  execute(deps, interaction) {
    // One word, as Slack reads `/promote <deployment or environment>`; several are answered with
    // usage naming the option. None: ChatService answers with usage.
    const { words, problem } = oneWordOption(
      interaction,
      'target',
      'one word, a deployment or an environment',
      ' Give only the deployment, or only the environment.',
    );
    return runCommand(deps, interaction, 'promote', problem === undefined ? words : [], problem);
  },
};
