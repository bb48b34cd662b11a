/** "Cancel": withdraws a pending or awaiting-approval plan; too late once the switch is queued. */
import type { App, BlockAction } from '@slack/bolt';
import { actionIdPattern } from '../../../src/views/actions.js';
import type { SlackHandlerDeps } from '../context.js';
import { type ActionArgs, runAction } from './run.js';

/** Registers clicks on `cancel` buttons. */
export function register(app: App, deps: SlackHandlerDeps): void {
  app.action<BlockAction>(
    { type: 'block_actions', action_id: actionIdPattern('cancel') },
    (args: ActionArgs) => runAction(deps, 'cancel', args),
  );
}
