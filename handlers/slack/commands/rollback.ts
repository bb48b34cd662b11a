/** `/rollback <environment> [deployment-id]`: posts a rollback confirmation (current, affected domains, target) to the channel. */
import type { App } from '@slack/bolt';
import type { SlackHandlerDeps } from '../context.js';
import { runCommand } from './run.js';

/** Registers `/rollback`. */
export function register(app: App, deps: SlackHandlerDeps): void {
  app.command('/rollback', (args) => runCommand(deps, 'rollback', args));
}
