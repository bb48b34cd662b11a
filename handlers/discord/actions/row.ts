/**
 * Row buttons of `/deployments` and notices ("Rollback to this", "Promote"): the id carries an
 * environment and a deployment; ChatService builds a fresh plan, posted as a new confirmation.
 */
import { type DiscordAction, runClick } from './click.js';

export const rowAction: DiscordAction = {
  kinds: ['rollback_to', 'promote'],
  handle: (deps, interaction) => runClick(deps, interaction, 'row'),
};
