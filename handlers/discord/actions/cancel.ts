/** "Cancel" on a confirmation and "Dismiss" on an alert suggestion: ChatService.click → Flow.cancel. */
import { type DiscordAction, runClick } from './click.js';

export const cancelAction: DiscordAction = {
  kinds: ['cancel', 'dismiss'],
  handle: (deps, interaction) => runClick(deps, interaction, 'cancel'),
};
