/** "Rollback to target version" / "Promote": the requester confirms the plan (Flow checks permission, freshness, two-person rule; enqueues once). */
import type { App, BlockAction } from '@slack/bolt';
import { actionIdPattern } from '../../../src/views/actions.js';
import type { SlackHandlerDeps } from '../context.js';
import { type ActionArgs, runAction } from './run.js';

/** Registers clicks on `confirm` buttons. */
export function register(app: App, deps: SlackHandlerDeps): void {
  app.action<BlockAction>(
    { type: 'block_actions', action_id: actionIdPattern('confirm') },
    (args: ActionArgs) => runAction(deps, 'confirm', args),
  );
}
