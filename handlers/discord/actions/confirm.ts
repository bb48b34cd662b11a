/** "Rollback to target version" / "Promote to target version": ChatService.click → Flow.confirm. */
import { type DiscordAction, runClick } from './click.js';

export const confirmAction: DiscordAction = {
  kinds: ['confirm'],
  handle: (deps, interaction) => runClick(deps, interaction, 'confirm'),
};
