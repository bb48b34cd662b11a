/** "Approve" (two-person rule): a second permitted person, not the requester, lets the switch run. */
import type { App, BlockAction } from '@slack/bolt';
import { actionIdPattern } from '../../../src/views/actions.js';
import type { SlackHandlerDeps } from '../context.js';
import { type ActionArgs, runAction } from './run.js';

/** Registers clicks on `approve` buttons. */
export function register(app: App, deps: SlackHandlerDeps): void {
  app.action<BlockAction>(
    { type: 'block_actions', action_id: actionIdPattern('approve') },
    (args: ActionArgs) => runAction(deps, 'approve', args),
  );
}
