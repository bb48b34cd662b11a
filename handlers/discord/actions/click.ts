/**
 * The shared body of every Switchyard button: acknowledge within Discord's 3 s with a deferred
 * update (the clicked message stays as it is until we edit it), ask ChatService what the click means
 * (permission, two-person rule, stale plan and idempotent confirm are Flow's rules, exactly as in
 * Slack), then apply the answer: edit the clicked bot message with the bot token, tell only the
 * clicker (ephemeral follow-up), and/or post a fresh plan in the channel.
 */
import { type ButtonInteraction, MessageFlags } from 'discord.js';
import { progressStamp } from '../../../src/progress.js';
import type { ActionKind } from '../../../src/views/actions.js';
import { renderDiscord } from '../../../src/views/discord.js';
import { faultView, logCommandFault } from '../../../src/views/fault.js';
import {
  actingUser,
  attachPosted,
  cannotPostHere,
  type DiscordDeps,
  editBody,
  ephemeralBody,
  showEnded,
} from '../context.js';

/** A button handler for some action kinds (one per file in this folder). */
export interface DiscordAction {
  readonly kinds: readonly ActionKind[];
  handle(deps: DiscordDeps, interaction: ButtonInteraction): Promise<void>;
}

/**
 * After an edit of the clicked message landed: a worker in another process may have delivered the
 * job's final state before it (this process's lane cannot order against that worker's edits); once it
 * has, a job that ended meanwhile gets its outcome back on the message.
 */
async function restoreEnded(
  deps: DiscordDeps,
  channelId: string,
  messageId: string,
  jobId: string,
): Promise<void> {
  if (deps.messages.isFinal(channelId, messageId)) return; // this process delivered the end, after it
  const ended = await deps.chat.endedProgress(jobId);
  if (ended) await showEnded(deps, channelId, messageId, ended);
}

/** Handles a click (see the module header). Never throws. */
export async function runClick(
  deps: DiscordDeps,
  interaction: ButtonInteraction,
  label: string,
): Promise<void> {
  let outcome = 'error';
  try {
    await interaction.deferUpdate();
    const reply = await deps.chat.click(actingUser(interaction), interaction.customId, {
      surface: 'discord',
      channel: interaction.channelId,
      messageId: interaction.message.id,
    });
    outcome = reply.outcome;
    const channelId = interaction.channelId;
    const clicked = interaction.message;
    if (reply.update !== undefined) {
      if (clicked.flags.has(MessageFlags.Ephemeral)) {
        // Only the interaction webhook can edit an ephemeral message.
        await interaction.editReply(editBody(reply.update));
      } else if (reply.ended !== undefined) {
        // The job had already ended: its outcome is the message's final state.
        await showEnded(deps, channelId, clicked.id, reply.ended);
      } else if (reply.progress !== undefined) {
        // The message follows the job only from this click on (its plan did not list it): the job's
        // progress so far, as a progress state ordered with the job's own edits by its stamp — not a
        // view, which progress the job reported to its other messages only would drop. A state its
        // worker did not report goes below anything the worker reports (`progressStamp`: the lane drops
        // a state, even a final one, stamped before the newest it has).
        await deps.messages.edit(channelId, clicked.id, renderDiscord(reply.update), {
          kind: 'progress',
          at: progressStamp(reply.progress),
          final: false,
        });
        await restoreEnded(deps, channelId, clicked.id, reply.progress.jobId);
      } else {
        // The view yields to the job's progress: dropped when the job (whose worker may run in another
        // process) has reported by the time it goes out, as on Slack. The "waiting for a second
        // person" view yields to the job the approval makes (another replica may take the approval).
        const jobId = reply.jobId ?? reply.approvalJobId;
        let skipped = false;
        const skipIf =
          jobId === undefined
            ? undefined
            : async () => {
                skipped = await deps.flow.jobReported(jobId);
                return skipped;
              };
        await deps.messages.edit(channelId, clicked.id, renderDiscord(reply.update), {
          kind: 'view',
          ...(skipIf === undefined ? {} : { skipIf }),
        });
        // A view that did not go out covered nothing.
        if (jobId !== undefined && !skipped) await restoreEnded(deps, channelId, clicked.id, jobId);
      }
    }
    if (reply.ephemeral !== undefined) await interaction.followUp(ephemeralBody(reply.ephemeral));
    if (reply.post !== undefined) {
      const { planId } = reply.post;
      let posted: Awaited<ReturnType<DiscordDeps['messages']['post']>>;
      try {
        posted = await deps.messages.post(channelId, renderDiscord(reply.post.view));
      } catch (e) {
        // Nothing was posted: a "Make a fresh plan" answer's reserved suggestion slot is freed (else
        // the plan's next alert in this channel would wait for a message that never comes).
        if (planId !== undefined)
          await deps.chat.postFailed(planId, { surface: 'discord', channel: channelId });
        throw e;
      }
      if (planId !== undefined) await attachPosted(deps, planId, channelId, posted.id);
    }
  } catch (e) {
    // Said as on Slack (the shared fault view), only to the clicker, the raw error staying in the log;
    // a channel the bot may not post in (the answer's fresh plan) says what to grant, as a command does.
    const noAccess = cannotPostHere(e);
    if (noAccess === undefined)
      logCommandFault(
        deps.logger,
        e,
        { action: label, interactionId: interaction.id },
        'discord button failed',
      );
    const body =
      noAccess === undefined
        ? ephemeralBody(faultView(e, 'handle this click'))
        : { content: noAccess, flags: MessageFlags.Ephemeral as const };
    await (interaction.deferred || interaction.replied
      ? interaction.followUp(body)
      : interaction.reply(body)
    ).catch(() => undefined);
  } finally {
    deps.metrics?.clicks.inc({ surface: 'discord', action: label, outcome });
  }
}
