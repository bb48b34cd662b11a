/** `/deployments <environment>`: posts recent deployments, the live one, standby markers and Rollback/Promote buttons. */
import type { App } from '@slack/bolt';
import type { SlackHandlerDeps } from '../context.js';
import { runCommand } from './run.js';

/** Registers `/deployments`. */
export function register(app: App, deps: SlackHandlerDeps): void {
  app.command('/deployments', (args) => runCommand(deps, 'deployments', args));
}
