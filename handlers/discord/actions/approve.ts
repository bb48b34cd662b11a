/** "Approve" (two-person rule, a second permitted person): ChatService.click → Flow.approve. */
import { type DiscordAction, runClick } from './click.js';

export const approveAction: DiscordAction = {
  kinds: ['approve'],
  handle: (deps, interaction) => runClick(deps, interaction, 'approve'),
};
