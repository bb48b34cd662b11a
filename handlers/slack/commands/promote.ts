/** `/promote <deployment-id | environment>`: posts a promote confirmation; promoting restores automatic domain assignment. */
import type { App } from '@slack/bolt';
import type { SlackHandlerDeps } from '../context.js';
import { runCommand } from './run.js';

/** Registers `/promote`. */
export function register(app: App, deps: SlackHandlerDeps): void {
  app.command('/promote', (args) => runCommand(deps, 'promote', args));
}
