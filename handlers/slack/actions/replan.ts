/** "Fresh plan": after a stale or expired plan, posts a new confirmation for the same action and target. */
import type { App, BlockAction } from '@slack/bolt';
import { actionIdPattern } from '../../../src/views/actions.js';
import type { SlackHandlerDeps } from '../context.js';
import { type ActionArgs, runAction } from './run.js';

/** Registers clicks on `replan` buttons. */
export function register(app: App, deps: SlackHandlerDeps): void {
  app.action<BlockAction>(
    { type: 'block_actions', action_id: actionIdPattern('replan') },
    (args: ActionArgs) => runAction(deps, 'replan', args),
  );
}
