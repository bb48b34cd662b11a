/**
 * The one path of every slash command: ack at once (Slack's 3-second deadline, whatever the platform's
 * speed), parse the payload with zod, ask the ChatService (which calls Flow) for the reply, render it
 * for Slack and send it — a confirmation or list visible to the channel (`chat.postMessage`, attached
 * to its plan; a post Slack rate-limits is tried again later without holding a work slot: see
 * `postInTurns`), usage and refusals only to the user. Faults end in an ephemeral message, not silence.
 */
import type { AllMiddlewareArgs, SlackCommandMiddlewareArgs } from '@slack/bolt';
import { type CommandName, commandArgs } from '../../../src/chat.js';
import { CommandOutcome, commandReplyOutcome } from '../../../src/metrics.js';
import type { ActingUser } from '../../../src/permissions.js';
import { commandFaultView, logCommandFault } from '../../../src/views/fault.js';
import {
  busyView,
  cannotPostView,
  describeIssues,
  postInTurns,
  replyEphemeral,
  type SlackHandlerDeps,
  slashCommandSchema,
} from '../context.js';

export type CommandArgs = SlackCommandMiddlewareArgs & AllMiddlewareArgs;

/** Handles one slash command invocation: ack now, the rest after (see the module header). */
export async function runCommand(
  deps: SlackHandlerDeps,
  name: CommandName,
  args: CommandArgs,
): Promise<void> {
  const accepted = deps.work.run(() => afterAck(deps, name, args));
  await args.ack();
  if (!accepted) {
    deps.metrics.commands.inc({ surface: 'slack', command: name, outcome: CommandOutcome.busy });
    await replyEphemeral(deps, args.respond, busyView());
  }
}

async function afterAck(deps: SlackHandlerDeps, name: CommandName, args: CommandArgs): Promise<void> {
  const count = (outcome: CommandOutcome) =>
    deps.metrics.commands.inc({ surface: 'slack', command: name, outcome });
  const parsed = slashCommandSchema.safeParse(args.command);
  if (!parsed.success) {
    count(CommandOutcome.invalid);
    deps.logger.warn(
      { command: name, issues: describeIssues(parsed.error) },
      'malformed slash command payload',
    );
    await replyEphemeral(deps, args.respond, {
      kind: 'refusal',
      tone: 'warning',
      title: 'Could not read this command',
      summary: `Slack sent a command Switchyard could not read: ${describeIssues(parsed.error)}.`,
      blocks: [{ type: 'text', spans: [{ text: describeIssues(parsed.error) }] }],
      buttons: [],
      ephemeral: true,
    });
    return;
  }
  const command = parsed.data;
  const actor: ActingUser = {
    surface: 'slack',
    userId: command.user_id,
    displayName: command.user_name && command.user_name !== '' ? command.user_name : command.user_id,
  };
  const failed = async (e: unknown) => {
    count(CommandOutcome.error);
    logCommandFault(deps.logger, e, { command: name, userId: command.user_id }, 'slash command failed');
    await replyEphemeral(deps, args.respond, commandFaultView(e, name));
  };
  try {
    const reply = await deps.chat.command(actor, name, commandArgs(command.text));
    if (reply.visibility === 'ephemeral') {
      count(commandReplyOutcome(reply));
      await replyEphemeral(deps, args.respond, reply.view);
      return;
    }
    const post = {
      channel: command.channel_id,
      view: reply.view,
      ...(reply.planId === undefined ? {} : { planId: reply.planId }),
    };
    // A post Slack rate-limits is tried again later, holding no work slot meanwhile (postInTurns).
    await postInTurns(
      deps,
      post,
      async (posted) => {
        if (posted.ok) {
          count(commandReplyOutcome(reply));
          return;
        }
        count(CommandOutcome.notPosted);
        const where = {
          id: command.channel_id,
          ...(command.channel_name === undefined ? {} : { name: command.channel_name }),
        };
        await replyEphemeral(deps, args.respond, cannotPostView(posted, reply.view, where));
      },
      failed,
    );
  } catch (e) {
    await failed(e);
  }
}
