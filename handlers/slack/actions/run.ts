/**
 * The one path of every button click: ack at once, parse the `block_actions` payload with zod, resolve
 * the clicker's configured user groups (for the allow lists), ask the ChatService (which calls Flow:
 * permission, two-person rule, freshness, idempotent enqueue) and carry out its reply — edit the clicked
 * message (through the reporter's paced lane, so it never overtakes the job's progress), tell only the
 * clicker (refusals), or post a fresh plan (in the clicked message's thread, when it is in one). Faults
 * end in an ephemeral message, not silence.
 *
 * The edit of the clicked message is queued on the reporter's lane and followed in the background
 * (`WorkQueue.track`), not awaited in the work slot: under Slack's rate limits the lane may wait out a
 * long `Retry-After`, and eight such clicks would otherwise hold every slot and stall later commands.
 * Its failures are logged by the reporter; shutdown (`idle()`) still waits for it.
 */
import type {
  AllMiddlewareArgs,
  BlockAction as BoltBlockAction,
  SlackActionMiddlewareArgs,
} from '@slack/bolt';
import type { ActingUser } from '../../../src/permissions.js';
import type { MessageRef } from '../../../src/progress.js';
import type { ActionKind } from '../../../src/views/actions.js';
import { logCommandFault } from '../../../src/views/fault.js';
import { progressView } from '../../../src/views/model.js';
import { renderSlack } from '../../../src/views/slack.js';
import {
  type BlockAction,
  blockActionSchema,
  busyView,
  cannotPostView,
  describeIssues,
  faultView,
  postInTurns,
  replyEphemeral,
  type SlackHandlerDeps,
} from '../context.js';

export type ActionArgs = SlackActionMiddlewareArgs<BoltBlockAction> & AllMiddlewareArgs;

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
  const failed = async (e: unknown) => {
    count('error');
    logCommandFault(deps.logger, e, { action: kind, userId: body.user.id }, 'slack click failed');
    await replyEphemeral(deps, args.respond, faultView(e, 'handle this click'));
  };
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
      if (!deps.reporter.isFinal(clicked))
        deps.work.track(deps.reporter.report(reply.ended, [clicked]), 'click edit');
    } else if (reply.progress && body.container.is_ephemeral !== true) {
      // The message follows the job only from this click on (its plan did not list it): it shows the
      // job's progress so far, on the message's lane, where the job's own states queued after it
      // replace it — not as a view yielding to progress, which the job already reported to its other
      // messages only and which would drop it. Not through `report`: an intermediate state's delivery
      // is not awaited there, and once this one has landed, an end a worker elsewhere delivered before
      // it is put back.
      const { jobId } = reply.progress;
      deps.work.track(
        deps.reporter
          .edit(clicked, renderSlack(progressView(reply.progress), { mentions: true }))
          .then(() => restoreEnded(deps, jobId, clicked)),
        'click edit',
      );
    } else if (reply.update && body.container.is_ephemeral !== true) {
      // Queued now (the lane keeps it in order with the job's progress), delivered in the background.
      // A view yields to progress: once the job reported through this process, it is not shown. The
      // "waiting for a second person" view yields to the job the approval makes (another replica may
      // take the approval, and a worker elsewhere run the switch, before this edit lands).
      const jobId = reply.jobId ?? reply.approvalJobId;
      // …and to progress a worker in another process published before this edit went out; a view
      // that did not go out covered nothing, so there is nothing to restore after it.
      let skipped = false;
      const skipIf = async (id: string) => {
        skipped = await deps.flow.jobReported(id);
        return skipped;
      };
      // An edit: people as mentions (the approval prompt names who asked and who confirmed by id), which
      // Slack does not notify for an edit; a post (`postView`) names them without.
      const edited = deps.reporter.edit(clicked, renderSlack(reply.update, { mentions: true }), {
        yieldsToProgress: true,
        ...(jobId === undefined ? {} : { skipIf: () => skipIf(jobId) }),
      });
      deps.work.track(
        jobId === undefined
          ? edited
          : edited.then(() => (skipped ? undefined : restoreEnded(deps, jobId, clicked))),
        'click edit',
      );
    }
    if (reply.ephemeral) work.push(replyEphemeral(deps, args.respond, reply.ephemeral));
    if (reply.post) {
      const { view, planId } = reply.post;
      const thread = threadOf(body);
      const post = {
        channel,
        view,
        ...(planId === undefined ? {} : { planId }),
        ...(thread === undefined ? {} : { threadTs: thread }),
      };
      // A post Slack rate-limits is tried again later, holding no work slot meanwhile (postInTurns).
      work.push(
        postInTurns(
          deps,
          post,
          async (posted) => {
            if (posted.ok) return;
            // Nothing was posted (or, after a time-out, nothing that will be attached): a "Make a fresh
            // plan" answer's reserved suggestion slot is freed (else the plan's next alert in this
            // channel would wait for a message that never comes).
            if (planId !== undefined) await deps.chat.postFailed(planId, { surface: 'slack', channel });
            await replyEphemeral(deps, args.respond, cannotPostView(posted, view));
          },
          failed,
        ),
      );
    }
    await Promise.all(work);
  } catch (e) {
    await failed(e);
  }
}

/** The thread the clicked message is a reply in (undefined for a channel message or a thread's parent). */
function threadOf(body: BlockAction): string | undefined {
  const thread = body.container.thread_ts ?? body.message?.thread_ts;
  return thread === undefined || thread === body.container.message_ts ? undefined : thread;
}

/**
 * After a click's view (or the progress it carried) went out and landed: if the job has ended by now,
 * its final state may have landed before the view (its worker runs in another process, whose edits
 * this lane cannot order against): show it again. A job not ended yet edits the message after this (a
 * worker writes each state to Redis before editing chat), so its final state lands on top of the view;
 * a view that did not go out (`skipIf`: the job had reported already) covered nothing. Re-showing an
 * intermediate state here would race the worker's next edits and could land after its final one, so it
 * is not done: an intermediate state the view covered in the moment between the check and its landing
 * stays covered until the worker's next edit, at most until its final one.
 */
async function restoreEnded(deps: SlackHandlerDeps, jobId: string, clicked: MessageRef): Promise<void> {
  if (deps.reporter.isFinal(clicked)) return; // this process delivered the end (ordered after the view)
  const ended = await deps.chat.endedProgress(jobId).catch(() => undefined);
  if (ended) await deps.reporter.report(ended, [clicked]);
}
