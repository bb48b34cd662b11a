/** "Dismiss" on an alert suggestion: closes the suggested plan without acting. */
import type { App, BlockAction } from '@slack/bolt';
import { actionIdPattern } from '../../../src/views/actions.js';
import type { SlackHandlerDeps } from '../context.js';
import { type ActionArgs, runAction } from './run.js';

/** Registers clicks on `dismiss` buttons. */
export function register(app: App, deps: SlackHandlerDeps): void {
  app.action<BlockAction>(
    { type: 'block_actions', action_id: actionIdPattern('dismiss') },
    (args: ActionArgs) => runAction(deps, 'dismiss', args),
  );
}
