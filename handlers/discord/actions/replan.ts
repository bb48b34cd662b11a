/** "Make a fresh plan" on a stale or failed plan: ChatService.click → Flow.replan, posted anew. */
import { type DiscordAction, runClick } from './click.js';

export const replanAction: DiscordAction = {
  kinds: ['replan'],
  handle: (deps, interaction) => runClick(deps, interaction, 'replan'),
};
