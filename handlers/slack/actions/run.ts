/**
 * The one path of every button click: ack at once, parse the `block_actions` payload with zod, resolve
 * the clicker's configured user groups (for the allow lists), ask the ChatService (which calls Flow:
 * permission, two-person rule, freshness, idempotent enqueue) and carry out its reply — edit the clicked
 * message (through the reporter's paced lane, so it never overtakes the job's progress), tell only the
 * clicker (refusals), or post a fresh plan. Faults end in an ephemeral message, not silence.
 */
import type { AllMiddlewareArgs, BlockAction, SlackActionMiddlewareArgs } from '@slack/bolt';
import type { ActingUser } from '../../../src/permissions.js';
import type { MessageRef } from '../../../src/progress.js';
import type { ActionKind } from '../../../src/views/actions.js';
import { renderSlack } from '../../../src/views/slack.js';
import {
  blockActionSchema,
  busyView,
  cannotPostView,
  describeIssues,
  faultView,
  postView,
  replyEphemeral,
  type SlackHandlerDeps,
} from '../context.js';

export type ActionArgs = SlackActionMiddlewareArgs<BlockAction> & AllMiddlewareArgs;

/** Handles one click on a Switchyard button of `kind`: ack now, the rest after (see the module header). */
export async function runAction(deps: SlackHandlerDeps, kind: ActionKind, args: ActionArgs): Promise<void> {
  const accepted = deps.work.run(() => afterAck(deps, kind, args));
  await args.ack();
  if (!accepted) {
    deps.metrics.clicks.inc({ surface: 'slack', action: kind, outcome: 'busy' });
    await replyEphemeral(deps, args.respond, busyView());
  }
}

async function afterAck(deps: SlackHandlerDeps, kind: ActionKind, args: ActionArgs): Promise<void> {
  const count = (outcome: string) => deps.metrics.clicks.inc({ surface: 'slack', action: kind, outcome });
  const parsed = blockActionSchema.safeParse(args.body);
  if (!parsed.success) {
    count('invalid');
    deps.logger.warn(
      { action: kind, issues: describeIssues(parsed.error) },
      'malformed block_actions payload',
    );
    await replyEphemeral(
      deps,
      args.respond,
      faultView(new Error(describeIssues(parsed.error)), 'read this click'),
    );
    return;
  }
  const body = parsed.data;
  const [action] = body.actions;
  if (action === undefined) return;
  const channel = body.container.channel_id;
  const clicked: MessageRef = { surface: 'slack', channel, messageId: body.container.message_ts };
  try {
    const actor: ActingUser = {
      surface: 'slack',
      userId: body.user.id,
      displayName: body.user.username ?? body.user.name ?? body.user.id,
      ...(await deps.groups.groupsOf(body.user.id)),
    };
    const reply = await deps.chat.click(actor, action.action_id, clicked);
    count(reply.outcome);
    const work: Promise<void>[] = [];
    if (reply.ended && body.container.is_ephemeral !== true) {
      // The job had already ended: its outcome is the message's final state.
      if (!deps.reporter.isFinal(clicked)) work.push(deps.reporter.report(reply.ended, [clicked]));
    } else if (reply.update && body.container.is_ephemeral !== true) {
      const edited = deps.reporter.edit(clicked, renderSlack(reply.update));
      // A worker in another process may have delivered the final state before this edit landed:
      // once it has, a job that ended meanwhile gets its outcome back on the message.
      const jobId = reply.jobId;
      work.push(jobId === undefined ? edited : edited.then(() => restoreEnded(deps, jobId, clicked)));
    }
    if (reply.ephemeral) work.push(replyEphemeral(deps, args.respond, reply.ephemeral));
    if (reply.post) {
      const view = reply.post.view;
      work.push(
        postView(deps, args.client, channel, view, reply.post.planId).then(async (posted) => {
          if (!posted.ok) await replyEphemeral(deps, args.respond, cannotPostView(posted.code, view));
        }),
      );
    }
    await Promise.all(work);
  } catch (e) {
    count('error');
    deps.logger.error({ err: e, action: kind, userId: body.user.id }, 'slack click failed');
    await replyEphemeral(deps, args.respond, faultView(e, 'handle this click'));
  }
}

/** After a click's edit: if the job has ended, make its outcome the message's final state. */
async function restoreEnded(deps: SlackHandlerDeps, jobId: string, clicked: MessageRef): Promise<void> {
  if (deps.reporter.isFinal(clicked)) return; // this process delivered it (ordered after the edit)
  const ended = await deps.chat.endedProgress(jobId);
  if (ended) await deps.reporter.report(ended, [clicked]);
}
