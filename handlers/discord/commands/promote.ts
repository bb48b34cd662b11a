/** `/promote target:<deployment or environment>`: a promote confirmation posted in the channel. */
import type { DiscordCommand } from './run.js';
import { optionWords, runCommand } from './run.js';

export const promoteCommand: DiscordCommand = {
  name: 'promote',
  execute(deps, interaction) {
    // One word, as Slack reads `/promote <deployment or environment>`; several are answered with
    // usage naming the option. None: ChatService answers with usage.
    const target = optionWords(interaction, 'target');
    if (target.length > 1)
      return runCommand(deps, interaction, 'promote', [], {
        option: 'target',
        takes: 'one word, a deployment or an environment',
        words: target,
        hint: ' Give only the deployment, or only the environment.',
      });
    return runCommand(deps, interaction, 'promote', target);
  },
};
