/**
 * Row buttons of `/deployments` and deployment notices: "Rollback" to a listed deployment and
 * "Promote" (or "Resume automatic deploys") — each click posts a fresh confirmation for that target.
 */
import type { App, BlockAction } from '@slack/bolt';
import { actionIdPattern, DeploymentActionKind } from '../../../src/views/actions.js';
import type { SlackHandlerDeps } from '../context.js';
import { type ActionArgs, runAction } from './run.js';

/** Registers clicks on `rollback_to` and `promote` row buttons. */
export function register(app: App, deps: SlackHandlerDeps): void {
  for (const kind of Object.values(DeploymentActionKind)) {
    app.action<BlockAction>({ type: 'block_actions', action_id: actionIdPattern(kind) }, (args: ActionArgs) =>
      runAction(deps, kind, args),
    );
  }
}
