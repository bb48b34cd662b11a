/**
 * ChatService: what every chat surface does with a slash command or a button click, once. It turns
 * command text and action ids into Flow calls and Flow outcomes into view models, and says how to show
 * them (a new channel message, an edit of the clicked message, or a reply only the clicker sees).
 * Surfaces (Slack, Discord, the console) stay thin: they parse their SDK's payload, call this, render
 * the MessageView with their renderer and send it.
 */

import { suggestionSlot } from './alerts/service.js';
import { type ChatPoster, textView } from './chat-sinks.js';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import type { Plan } from './domain/plan.js';
import { type Refusal, RefusalCode } from './domain/result.js';
import { closest } from './domain/spelling.js';
import { assertNever, type Deployment } from './domain/types.js';
import { redisUnavailable } from './errors.js';
import type { ClickOutcome, Flow, PlanOptions } from './flow.js';
import { type Logger, silentLogger } from './log.js';
import { type ActingUser, sameActor } from './permissions.js';
import { type PlanRecord, SUGGESTION_CLAIM_LEASE_MS } from './plan-store.js';
import type { MessageRef, Progress, Surface } from './progress.js';
import { type ActiveSwitch, jobIdForPlan, messageRefKey } from './queue.js';
import { parseAction } from './views/actions.js';
import { t, truncate } from './views/format.js';
import {
  type AlertContext,
  type ConfirmationState,
  commandsView,
  confirmationView,
  deploymentsView,
  progressView,
  refusalView,
  type UsageCommand,
  usageView,
} from './views/model.js';
import type { MessageView } from './views/types.js';

export const COMMANDS = ['rollback', 'promote', 'deployments'] as const;
export type CommandName = (typeof COMMANDS)[number];

/** How a reply is shown. */
export type Visibility = 'channel' | 'ephemeral';

/** A message to post. `planId` is set for confirmations, so the surface can attach the posted message. */
export interface ChatReply {
  readonly view: MessageView;
  readonly visibility: Visibility;
  readonly planId?: string;
}

/** What to do after a click. Any combination may be set. */
export interface ClickReply {
  /** Replace the clicked message with this view. */
  readonly update?: MessageView;
  /** Tell only the clicker. */
  readonly ephemeral?: MessageView;
  /** Post a new message (a fresh plan). */
  readonly post?: ChatReply;
  /** Set when a switch job was enqueued or joined. */
  readonly jobId?: string;
  /**
   * Set with the "waiting for a second person" view (`awaiting_approval`): the job the approval will
   * make (its id is derived from the plan's). Another person's Approve, handled by another replica,
   * may enqueue it and a worker elsewhere may show its progress, even its end, before this view lands:
   * the surface treats the view as it treats a "Confirmed…" one (`jobId`), yielding to the job's
   * progress and putting its final state back if it ended by the time the view landed.
   */
  readonly approvalJobId?: string;
  /**
   * The job's final progress when it had already ended by the time of the answer (`update` then shows
   * it): the surface delivers it as the message's final state, so no later edit can paint over it.
   */
  readonly ended?: Progress;
  /**
   * The job's progress as it stands (not ended), when this click made the clicked message follow the
   * job only now (the plan did not list it: see `ChatService.follow`); `update` then shows it. The job
   * may have reported before, to its other messages only, and its worker reads the job's messages
   * again only at a later step (after a whole standby reactivation, say): a "Confirmed…" view, which
   * yields to progress already reported, would be dropped and leave the message offering the plan.
   * The surface shows it on the message's edit lane as a state the job's own later states replace
   * (Discord and the console order it with them by `updatedAt`), not as a view that yields to
   * progress, and — as after a view — puts the job's end back if it ended before the edit landed.
   */
  readonly progress?: Progress;
  /** Metrics label: enqueued, joined, awaiting_approval, refused, stale, expired, cancelled, planned, invalid. */
  readonly outcome: string;
}

export interface ChatServiceOptions {
  readonly flow: Flow;
  readonly clock?: Clock;
  /**
   * Called when a click closed a plan (cancelled, dismissed, found stale or expired), so its other
   * messages (alert suggestions on other surfaces) can be shown closed too.
   */
  readonly onPlanClosed?: (planId: string) => void;
  /**
   * Called when a click's confirm made a plan wait for a second person's approval, so its alert
   * suggestions on every surface say so too (and offer Approve instead of the confirm button).
   */
  readonly onPlanAwaitingApproval?: (planId: string) => void;
  /**
   * Each surface's poster (Slack, Discord, the console), as this process started them: a click that
   * closes a plan or makes it wait for approval shows that on the plan's other messages through them
   * (see `showOnOtherMessages`). A function: the surfaces start after the ChatService they use.
   */
  readonly posters?: () => Partial<Record<Surface, ChatPoster>>;
  /** Where failed edits of a plan's other messages are logged. */
  readonly logger?: Logger;
}

/**
 * How many times the plan's other messages are edited again while the plan keeps moving under the
 * edits (see `showOnOtherMessages`).
 */
const OTHER_MESSAGES_ROUNDS = 5;

/** What a click showed on its message, to be shown on the plan's other messages too. */
interface Shown {
  readonly record: PlanRecord;
  readonly view: MessageView;
  readonly clicked: MessageRef | undefined;
}

/** A "Make a fresh plan" click's answer being posted (see `ChatService.freshSuggestions`). */
interface FreshSuggestion {
  /** The suggestion slot the fresh plan reserved for it. */
  readonly slot: string;
  /** When the slot was claimed (its lease runs from then). */
  readonly at: number;
  /** The plan's alertsVersion the click's view was rendered from. */
  readonly version: number;
  /** How many of this process's clicks are posting it there. */
  readonly posting: number;
  /** Whether one of them claimed the slot (else another message of the plan holds it). */
  readonly claimed: boolean;
}

/** The key of a fresh suggestion: its plan and where the surface posts it (`surface:channel`). */
function freshKey(planId: string, where: { readonly surface: Surface; readonly channel: string }): string {
  return `${planId}|${suggestionSlot({ surface: where.surface, channel: where.channel })}`;
}

/**
 * Splits command text into arguments (whitespace separated). Formatting and quotes around a word are
 * dropped: Slack may wrap text in formatting, and chat clients turn typed quotes into curly ones
 * (`“production”`); no environment slug or deployment id contains either.
 */
export function commandArgs(text: string): string[] {
  // Invisible characters pasted along with an id go: format characters (zero-width spaces, a
  // byte-order mark) and controls other than whitespace.
  const visible = [...text.replace(/\p{Cf}/gu, '')]
    .filter((ch) => {
      const code = ch.charCodeAt(0);
      return (code >= 32 && code !== 127) || (code >= 9 && code <= 13); // keep tab, newlines, \v, \f
    })
    .join('');
  return visible
    .replace(/[`*"'\u2018\u2019\u201C\u201D\u00AB\u00BB]/g, ' ')
    .trim()
    .split(/\s+/)
    .filter((a) => a.length > 0);
}

/** The plan store's alert record as the confirmation view wants it. */
/** Longest alert link a suggestion shows (a longer one is not shown: a cut link leads nowhere). */
const MAX_ALERT_LINK = 500;

/**
 * The alert's link (the sender's `url`, Alertmanager's `generatorURL`, Datadog's `$LINK`, …) when it is
 * an http(s) URL a person can open: anything else a sender put there (javascript:, a relative path,
 * text) is not shown.
 */
function alertLink(url: string | undefined): string | undefined {
  if (url === undefined || url.length > MAX_ALERT_LINK) return undefined;
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'https:' || parsed.protocol === 'http:' ? parsed.href : undefined;
  } catch {
    return undefined;
  }
}

function alertView(
  a: NonNullable<PlanRecord['alert']>,
  fallbackStart: number,
  resolved?: boolean,
): AlertContext {
  const link = alertLink(a.url);
  return {
    source: a.source,
    title: a.title,
    startedAt: a.startedAt ?? fallbackStart,
    resolved: resolved ?? a.status === 'resolved',
    ...(a.missingData === true ? { missingData: true } : {}),
    ...(link === undefined ? {} : { url: link }),
    ...(a.suspectDeploymentId !== undefined && a.suspectLiveSince !== undefined
      ? { wentLive: { deploymentId: a.suspectDeploymentId, at: a.suspectLiveSince } }
      : {}),
  };
}

/**
 * The alert part of a confirmation: the message's own alert first (`primaryId`, else the one the plan
 * was made for), then every other alert the plan lists. The suggestion is resolved when every listed
 * and counted alert has, and no alert is only estimated (`alertsUntracked`: their resolutions are not
 * tracked, so they keep it firing).
 */
function alertsView(
  record: PlanRecord,
  primaryId: string | undefined,
  override: NonNullable<PlanRecord['alert']> | undefined,
  resolvedOverride: boolean | undefined,
  alone = false,
): AlertContext | undefined {
  const listed = record.alerts ?? [];
  const wanted = primaryId ?? override?.id ?? record.alert?.id;
  const own = listed.find((a) => a.id === wanted);
  const alert = own?.alert ?? override ?? record.alert ?? listed[0]?.alert;
  if (alert === undefined) return undefined;
  if (listed.length === 0) return alertView(alert, record.createdAt, resolvedOverride);
  const ownId = own?.id ?? alert.id;
  const others = listed.filter((a) => a.id !== ownId);
  const more = record.alertsMore ?? 0;
  const moreFiring = record.alertsMoreFiring ?? more;
  const untracked = record.alertsUntracked ?? 0;
  const selfResolved = own === undefined ? alert.status === 'resolved' : own.resolvedAt !== undefined;
  const all =
    selfResolved && moreFiring === 0 && untracked === 0 && others.every((a) => a.resolvedAt !== undefined);
  const lastResolved = Math.max(...listed.map((a) => a.resolvedAt ?? 0));
  // With a list, what resolved is the list's to say (an override would mark firing alerts resolved).
  return {
    ...alertView(alert, record.createdAt, all),
    ...(all && lastResolved > 0 ? { resolvedAt: lastResolved } : {}),
    ...(others.length > 0 && !alone
      ? {
          others: others.map((a) => ({
            source: a.alert.source,
            title: a.alert.title,
            startedAt: a.alert.startedAt ?? a.at,
            resolved: a.resolvedAt !== undefined,
            ...(a.alert.missingData === true ? { missingData: true } : {}),
          })),
        }
      : {}),
    ...(more > 0 && !alone ? { othersMore: more, othersMoreFiring: moreFiring } : {}),
    ...(untracked > 0 && !alone ? { othersUntracked: untracked } : {}),
    ...(selfResolved && !all ? { selfResolved: true } : {}),
  };
}

/** An alert suggestion closed by Dismiss while its plan stays open on other messages. */
export function dismissedView(p: Plan, by: string): MessageView {
  const text = `Dismissed by ${by}: this suggestion is closed. The ${p.action} of ${p.environment} to ${p.target.id} stays open on its other messages; nothing changed.`;
  const view = textView(`Dismissed: ${p.action} ${p.environment} to ${p.target.id}`, [text], 'neutral');
  return { ...view, summary: text };
}

export class ChatService {
  private readonly flow: Flow;
  private readonly clock: Clock;

  private readonly onPlanClosed: ((planId: string) => void) | undefined;
  private readonly onPlanAwaitingApproval: ((planId: string) => void) | undefined;
  private readonly posters: (() => Partial<Record<Surface, ChatPoster>>) | undefined;
  private readonly logger: Logger;
  /**
   * Per plan: the background run showing its state on its other messages, and what to show once that
   * run is done (the newest click's; the ones in between are skipped: each shows the whole state).
   */
  private readonly showing = new Map<string, { next: Shown | undefined; done: Promise<void> }>();
  /**
   * The fresh suggestions "Make a fresh plan" clicks are posting, by `plan id|surface:channel` (where
   * the surface posts the click's answer: the clicked message's channel, as the click names it) → the
   * suggestion slot the fresh plan reserved for it (Flow.replan's `suggestIn`, which may name the
   * channel otherwise: `slack:#alerts`), when it was claimed, the alertsVersion the click's view was
   * rendered from, how many of this process's clicks are posting there, and whether one of them claimed
   * the slot (else another message holds it). The first message attached is recorded as that slot's
   * suggestion (`attach`); a post that failed is reported (`postFailed`), and when none is left to come
   * the slot is freed. Only this process's clicks: the surface that answered the click posts and
   * attaches in this process. Entries of posts that never came are dropped once their claim's lease is
   * over (the slot is then anyone's).
   */
  private readonly freshSuggestions = new Map<string, FreshSuggestion>();

  constructor(opts: ChatServiceOptions) {
    this.flow = opts.flow;
    this.clock = opts.clock ?? systemClock;
    this.onPlanClosed = opts.onPlanClosed;
    this.onPlanAwaitingApproval = opts.onPlanAwaitingApproval;
    this.posters = opts.posters;
    this.logger = opts.logger ?? silentLogger;
  }

  /**
   * Expires the plans whose hour ran out with nobody clicking (`Flow.expireDue`: audited, once across
   * replicas) and shows each expired on every message it lists, as a click on it would have (its alert
   * suggestions through `onPlanClosed`): a message no longer offers a plan's buttons for hours after
   * the plan lapsed. That includes a plan a read expired just before (a `/deployments`, a new request),
   * which showed nothing; each plan is shown by one replica's sweep. The edits go on in the background
   * (`idle` waits for them). Returns the plans shown expired.
   */
  async expireDue(): Promise<PlanRecord[]> {
    const expired = await this.flow.expireDue();
    for (const record of expired) {
      this.onPlanClosed?.(record.plan.id);
      this.showOnOtherMessages({ record, view: this.confirmation(record), clicked: undefined });
    }
    return expired;
  }

  /**
   * Runs `expireDue` every `intervalMs` of the clock until the returned function is called (which
   * waits for a sweep under way). A sweep that fails is logged once, not every round, and tried again
   * at the next; so is the first that works again. At warn, but at debug while the failure is only
   * that Redis cannot be reached or does not answer: the Redis watchdog or the connection's events
   * already say that once per outage (docs/jobs.md), and a second warning would add nothing.
   */
  sweepExpired(intervalMs: number): () => Promise<void> {
    const stop = new AbortController();
    // The level the sweeps failing since the last one that worked were logged at (none: it works).
    let failing: 'debug' | 'warn' | undefined;
    const loop = (async () => {
      for (;;) {
        try {
          await this.clock.sleep(intervalMs, stop.signal);
        } catch {
          return;
        }
        try {
          await this.expireDue();
          if (failing === 'warn') this.logger.info({}, 'looking for expired plans works again');
          else if (failing === 'debug') this.logger.debug({}, 'looking for expired plans works again');
          failing = undefined;
        } catch (e) {
          // A failure other than Redis is worth a warning, also after a Redis one was logged at debug.
          const level = redisUnavailable(e) === undefined ? 'warn' : 'debug';
          if (failing === undefined || (level === 'warn' && failing === 'debug')) {
            this.logger[level](
              { err: e },
              'could not look for expired plans: their messages keep their buttons (a click still says they expired) until a later sweep succeeds',
            );
            failing = level;
          }
        }
      }
    })();
    return async () => {
      stop.abort();
      await loop;
    };
  }

  /** Resolves once no edit of a plan's other messages is under way (shutdown; tests). */
  async idle(): Promise<void> {
    while (this.showing.size > 0) await Promise.all([...this.showing.values()].map((r) => r.done));
  }

  private async usage(command: UsageCommand, refusal?: Refusal): Promise<ChatReply> {
    const validEnvironments = await this.flow.environments();
    const view = refusal
      ? refusalView(refusal, { command, validEnvironments })
      : usageView(command, validEnvironments);
    return { view, visibility: 'ephemeral' };
  }

  /**
   * Usage for a command given more words than it takes (`extra`, after `used`), saying first which
   * words were too many: plain usage left people guessing what was wrong with
   * `/rollback production dep_x checkout is broken`.
   */
  private async tooManyWords(
    command: UsageCommand,
    takes: string,
    used: readonly string[],
    extra: readonly string[],
    hint = '',
  ): Promise<ChatReply> {
    const words = truncate(extra.join(' '), 100);
    return this.withProblem(
      await this.usage(command),
      `/${command} takes ${takes}: "${words}" after "${truncate(used.join(' '), 100)}" is ${extra.length === 1 ? 'one word' : `${extra.length} words`} too many, so nothing was done.${hint}`,
    );
  }

  /**
   * Usage for a Discord option given several words (`/rollback environment:"production dep_1"`):
   * says which option held too many, since the person never typed the words as Slack's text reads
   * them. Nothing is planned from such an option: `production dep_1` is never split into two.
   */
  async optionTooManyWords(
    command: UsageCommand,
    option: string,
    takes: string,
    words: readonly string[],
    hint = '',
  ): Promise<ChatReply> {
    return this.withProblem(
      await this.usage(command),
      `The ${option} option of /${command} takes ${takes}: "${truncate(words.join(' '), 100)}" is ${words.length} words, so nothing was done.${hint}`,
    );
  }

  /** A usage reply led by the problem that made it (a warning block, and first in the summary). */
  private withProblem(reply: ChatReply, problem: string): ChatReply {
    return {
      ...reply,
      view: {
        ...reply.view,
        summary: `${problem} ${reply.view.summary}`,
        blocks: [{ type: 'text', tone: 'warning', spans: [t(problem)] }, ...reply.view.blocks],
      },
    };
  }

  /** The confirmation view of a plan record in its current state. */
  confirmation(
    record: PlanRecord,
    override?: {
      state?: ConfirmationState;
      staleReason?: string;
      alertResolved?: boolean;
      /** The alert this message is about (an alert suggestion for a plan another request made). */
      alert?: NonNullable<PlanRecord['alert']>;
      /** The listed alert (PlanAlert id) this message is about; shown first. */
      alertId?: string;
      /**
       * Show that alert only, not the plan's other alerts: a thread suggestion recorded by an earlier
       * version under a slot of its own (`surface:channel:thread`, see chat-sinks).
       */
      alone?: boolean;
      /** A switch of the environment queued or running as the plan was asked for (another plan's). */
      runningSwitch?: ActiveSwitch;
    },
  ): MessageView {
    const alert = alertsView(
      record,
      override?.alertId,
      override?.alert,
      override?.alertResolved,
      override?.alone,
    );
    const state = override?.state ?? (record.state as ConfirmationState);
    return confirmationView(record.plan as Plan, {
      state,
      // The render's time: the cards stay as of the plan, and say so once this differs (the view may
      // edit a message posted long before, or be posted for a request that joined the plan later).
      now: this.clock.now(),
      requestedBy: record.confirmedBy ?? record.requestedBy,
      ...(record.confirmedBy ? { confirmedBy: record.confirmedBy } : {}),
      // The asker too when someone else confirmed: under the two-person rule neither may approve
      // (Flow's self_approval). Not the alert bot: it asks, but never clicks.
      ...(record.confirmedBy !== undefined &&
      record.requestedBy.surface !== 'system' &&
      !sameActor(record.requestedBy, record.confirmedBy)
        ? { askedBy: record.requestedBy }
        : {}),
      // Said up front on an open plan: the rule in force decides its next click. On an expired one,
      // whether it lapsed waiting for approval is the record's (the state it expired from): the rule
      // may have been turned off or on since, and the message must say what happened to it.
      requiresApproval:
        state === 'expired'
          ? this.flow.expiredAwaitingApproval(record)
          : this.flow.twoPersonRule(record.plan.environment),
      ...(record.approvedBy ? { approvedBy: record.approvedBy } : {}),
      ...(record.cancelledBy ? { cancelledBy: record.cancelledBy } : {}),
      ...(record.dismissedAt === undefined ? {} : { dismissed: true }),
      ...(record.alsoAskedBy === undefined ? {} : { alsoAskedBy: record.alsoAskedBy }),
      ...(override?.runningSwitch === undefined ? {} : { runningSwitch: override.runningSwitch }),
      ...(alert ? { alert } : {}),
      ...((override?.staleReason ?? record.refusal?.message)
        ? { staleReason: override?.staleReason ?? record.refusal?.message ?? '' }
        : {}),
    });
  }

  /**
   * A slash command. `args` are the words after the command (`/rollback production dep_1` →
   * ['production', 'dep_1']). Never throws for user mistakes: bad input gets usage with valid values.
   */
  async command(
    actor: ActingUser,
    name: string,
    args: readonly string[],
    opts: PlanOptions = {},
  ): Promise<ChatReply> {
    switch (name.toLowerCase()) {
      case 'rollback': {
        const [env, target, ...rest] = args;
        if (env === undefined) return this.usage('rollback');
        if (rest.length > 0)
          return this.tooManyWords(
            'rollback',
            'an environment and at most one deployment',
            args.slice(0, 2),
            rest,
            ' To say why, write it in a message of its own.',
          );
        return this.planReply(actor, 'rollback', env, target, opts);
      }
      case 'promote': {
        // One argument, a deployment or an environment, as the usage line, Slack's usage_hint and
        // Discord's single `target` option offer it. A second word is a mistake to answer with usage:
        // taken as `<environment> <deployment>` it planned a form no surface shows, and `<deployment>
        // <word>` called the deployment an unknown environment.
        const [ref, ...rest] = args;
        if (ref === undefined) return this.usage('promote');
        if (rest.length > 0)
          return this.tooManyWords(
            'promote',
            'one word, a deployment or an environment',
            [ref],
            rest,
            ' Give only the deployment, or only the environment.',
          );
        return this.planReply(actor, 'promote', ref, undefined, opts);
      }
      case 'deployments': {
        const [env, ...rest] = args;
        if (env === undefined) return this.usage('deployments');
        if (rest.length > 0) return this.tooManyWords('deployments', 'one word, an environment', [env], rest);
        const out = await this.flow.deployments(env);
        if (!out.ok) return this.usage('deployments', out.refusal);
        // Whole entries: the view groups them by plan and job into one line per switch, and names
        // people by their whole actor (surface and id), not by a display name anyone can choose.
        const view = deploymentsView(out.snapshot, {
          routing: out.routes,
          audit: out.recent,
          auditTruncated: out.recentTruncated,
          ...(out.redisAheadMs === undefined ? {} : { redisAheadMs: out.redisAheadMs }),
          refusals: out.refusals,
          now: this.clock.now(),
          ...(out.active === undefined ? {} : { activeJob: out.active }),
        });
        return { view, visibility: 'channel' };
      }
      case 'help':
        return { view: commandsView(await this.flow.environments()), visibility: 'ephemeral' };
      default: {
        // Every command's usage, as for bad arguments; a near miss (`/rolback`) is named, not run.
        const near = closest(name, COMMANDS);
        const problem =
          name === ''
            ? 'A command goes right after the "/".'
            : `"/${truncate(name, 40)}" is not a Switchyard command.${near === undefined ? '' : ` Did you mean /${near}?`}`;
        return { view: commandsView(await this.flow.environments(), problem), visibility: 'ephemeral' };
      }
    }
  }

  private async planReply(
    actor: ActingUser,
    action: 'rollback' | 'promote',
    envOrRef: string,
    target: string | undefined,
    opts: PlanOptions,
    clicked = false,
  ): Promise<ChatReply> {
    const out = await this.flow.plan(actor, action, envOrRef, target, opts);
    // An old /deployments button (Resume automatic deploys, Promote) for the deployment serving the
    // environment, which is no longer rolled back: nothing is left to do, and `target_is_current`
    // with the /promote usage read as a mistyped command.
    if (!out.ok && clicked && action === 'promote' && out.refusal.code === RefusalCode.targetIsCurrent) {
      return {
        view: refusalView({
          ...out.refusal,
          message: `Automatic deploys are already on for ${envOrRef}: nothing to resume. ${target ?? 'Its deployment'} serves it, so there is nothing to promote either.`,
        }),
        visibility: 'ephemeral',
      };
    }
    if (!out.ok) {
      const recent = await this.recentFor(envOrRef);
      const validEnvironments = await this.flow.environments();
      return {
        view: refusalView(out.refusal, {
          command: action,
          validEnvironments,
          ...(recent ? { recentDeployments: recent } : {}),
        }),
        visibility: 'ephemeral',
      };
    }
    // Another switch of the environment under way: the plan says so at its top, or it reads as a
    // second way to do what is already happening. (A request for that very switch joins it instead,
    // and is shown as it.)
    const running =
      out.record.state === 'pending' || out.record.state === 'awaiting_approval'
        ? await this.flow.activeSwitch(out.plan.environment).catch(() => undefined)
        : undefined;
    const other = running !== undefined && running.planId !== out.plan.id ? running : undefined;
    return {
      view: this.confirmation(out.record, other === undefined ? undefined : { runningSwitch: other }),
      visibility: 'channel',
      planId: out.plan.id,
    };
  }

  private async recentFor(envInput: string): Promise<readonly Deployment[] | undefined> {
    const out = await this.flow.deployments(envInput);
    return out.ok ? out.snapshot.deployments.slice(0, 8) : undefined;
  }

  /**
   * A button click with the action id the surface received, on `message` (the clicked message, when
   * the surface knows it: Dismiss then closes that message only, see `dismissOnly`).
   */
  async click(actor: ActingUser, actionId: string, message?: MessageRef): Promise<ClickReply> {
    const parsed = parseAction(actionId);
    if (!parsed.ok) return { ephemeral: refusalView(parsed.refusal), outcome: 'invalid' };
    const action = parsed.value;
    switch (action.kind) {
      case 'confirm':
        return this.clickOutcome(await this.flow.confirm(actor, action.ref), message);
      case 'approve':
        return this.clickOutcome(await this.flow.approve(actor, action.ref), message);
      case 'cancel':
      case 'dismiss': {
        if (action.kind === 'dismiss') {
          const shared = await this.dismissOnly(actor, action.ref, message);
          if (shared) return shared;
        }
        const out =
          action.kind === 'dismiss'
            ? await this.flow.dismiss(actor, action.ref)
            : await this.flow.cancel(actor, action.ref);
        if (out.status === 'running') return this.tooLate(out, message);
        return this.clickOutcome(out, message);
      }
      case 'replan': {
        // The fresh plan of an alert suggestion is a fresh suggestion in the clicked message's channel,
        // where the surface posts the answer: it reserves the slot the clicked message held (or, when it
        // held none, the click's channel's) for it (see `attach`, `postFailed`).
        const out = await this.flow.replan(
          actor,
          action.ref,
          message === undefined
            ? {}
            : {
                clicked: message,
                suggestIn: suggestionSlot({ surface: message.surface, channel: message.channel }),
              },
        );
        if (!out.ok) return { ephemeral: refusalView(out.refusal), outcome: 'refused' };
        const slot = out.suggestIn?.slot;
        const claim = out.record.suggestions?.find((s) => s.slot === slot && s.ref === undefined);
        if (message !== undefined && slot !== undefined && claim !== undefined)
          this.expectFreshSuggestion(out.plan.id, message, {
            slot,
            at: claim.at,
            version: out.record.alertsVersion ?? 0,
            claimed: out.suggestIn?.claimed === true,
          });
        return {
          post: { view: this.confirmation(out.record), visibility: 'channel', planId: out.plan.id },
          outcome: 'planned',
        };
      }
      case 'rollback_to':
      case 'promote': {
        const kind = action.kind === 'rollback_to' ? 'rollback' : 'promote';
        const reply = await this.planReply(
          actor,
          kind,
          action.ref.environment,
          action.ref.deploymentId,
          {},
          true,
        );
        return reply.visibility === 'ephemeral'
          ? { ephemeral: reply.view, outcome: 'refused' }
          : { post: reply, outcome: 'planned' };
      }
      default:
        return assertNever(action, 'action');
    }
  }

  /**
   * Attaches a message the surface posted for a plan (a confirmation: `ChatReply.planId`) so the
   * switch's progress edits it. Returns the switch's final progress when its job has ended already: a
   * request joins the switch under way (one plan serves every request for the same switch), and its
   * message, attached once its post returned, may come after the worker read the job's messages for
   * the last time. The surface then shows that end on the message itself, as the message's final state.
   * Undefined otherwise (the plan open, the switch still running, or the plan gone).
   */
  async attach(planId: string, ref: MessageRef): Promise<Progress | undefined> {
    const out = await this.flow.attach(planId, ref);
    // The answer to a "Make a fresh plan" click of this process: the suggestion of the slot its plan
    // reserved for it (named as the alerts' destination names it, not as the posted ref does).
    const fresh = freshKey(planId, ref);
    const expected = this.freshSuggestions.get(fresh);
    this.freshSuggestions.delete(fresh);
    if (out.attached && expected !== undefined)
      await this.freshSuggestionPosted(planId, expected.slot, ref, expected.version);
    if (!out.attached || out.jobId === undefined) return undefined;
    // What the switch did, even if traffic moved again since: the message was posted as this switch's
    // ("progress follows"), and this is what followed. Redis failing here leaves the message as posted.
    const progress = await this.flow.jobProgress(out.jobId).catch(() => undefined);
    return progress?.outcome === undefined ? undefined : progress;
  }

  /**
   * A surface could not post the answer to a click (`ClickReply.post`) of plan `planId` in `where` (the
   * clicked message's channel, where it posts the answer): Slack refused it (a 429, an error answer),
   * Discord's post threw. When that answer was a "Make a fresh plan" click's fresh suggestion and no
   * other click of this process is still posting it there, the suggestion slot its plan reserved for it
   * is freed at once: else the plan's next alert there would find the place taken by a message that
   * never comes, and be bounced (a webhook answered 503, a chat alert's retries spent) until the
   * reservation's lease (SUGGESTION_CLAIM_LEASE_MS) ran out. A click that did not claim the slot (another
   * message of the plan holds it, or is being posted there) frees nothing. Never throws: the surface is
   * already telling the clicker that the post failed.
   */
  async postFailed(
    planId: string,
    where: { readonly surface: Surface; readonly channel: string },
  ): Promise<void> {
    const key = freshKey(planId, where);
    const entry = this.freshSuggestions.get(key);
    if (entry === undefined) return;
    if (entry.posting > 1) {
      this.freshSuggestions.set(key, { ...entry, posting: entry.posting - 1 });
      return;
    }
    this.freshSuggestions.delete(key);
    // Past its lease the slot is anyone's: an alert may have claimed it since, and is posting there.
    if (!entry.claimed || entry.at <= this.clock.now() - SUGGESTION_CLAIM_LEASE_MS) return;
    await this.flow
      .releaseSuggestion(planId, entry.slot)
      .catch((e: unknown) =>
        this.logger.warn(
          { err: e, planId, slot: entry.slot },
          'could not free the suggestion slot of a fresh plan whose post failed',
        ),
      );
  }

  /** Remembers the slot a "Make a fresh plan" click reserved, until its message is attached. */
  private expectFreshSuggestion(
    planId: string,
    where: MessageRef,
    fresh: {
      readonly slot: string;
      readonly at: number;
      readonly version: number;
      readonly claimed: boolean;
    },
  ): void {
    const now = this.clock.now();
    for (const [key, entry] of this.freshSuggestions) {
      if (entry.at <= now - SUGGESTION_CLAIM_LEASE_MS) this.freshSuggestions.delete(key);
    }
    const key = freshKey(planId, where);
    const before = this.freshSuggestions.get(key);
    // Two clicks at once on one message: the first message attached is the suggestion; the slot is
    // freed only when every post failed.
    this.freshSuggestions.set(
      key,
      before?.slot === fresh.slot
        ? { ...fresh, claimed: before.claimed || fresh.claimed, posting: before.posting + 1 }
        : { ...fresh, posting: 1 },
    );
  }

  /**
   * Records the message a "Make a fresh plan" click posted as the suggestion of its claimed slot, so
   * the alert service's edits (an alert resolving or joining, the plan closing) reach it. When the
   * plan's alerts changed while it was being posted (an edit meanwhile skipped it: it had no message
   * yet), it is shown as the plan is now, through its surface's poster.
   */
  private async freshSuggestionPosted(
    planId: string,
    slot: string,
    ref: MessageRef,
    renderedVersion: number,
  ): Promise<void> {
    const claim = (await this.flow.get(planId))?.suggestions?.find((s) => s.slot === slot);
    if (claim === undefined || claim.ref !== undefined) return; // taken over meanwhile: a plain message
    const version = await this.flow.suggestionPosted(planId, slot, claim.alertId, ref);
    if (version === undefined || version === renderedVersion) return;
    const record = await this.flow.get(planId);
    const poster = this.posters?.()[ref.surface];
    if (record === undefined || poster === undefined) return;
    // A confirmed plan's messages show its switch (its job edits them, this one included).
    if (record.state === 'enqueued') return;
    await poster
      .update(ref, this.confirmation(record, { alertId: claim.alertId }))
      .catch((e: unknown) =>
        this.logger.warn({ err: e, planId }, 'could not show the fresh suggestion as its plan is now'),
      );
  }

  /**
   * The job's progress if it has ended (a late double click, or a switch faster than the answer to
   * the click), so the clicked message shows the outcome rather than "Confirmed… progress follows".
   * A surface whose edit of the clicked message may land after the worker's final edit (the worker
   * runs in another process) asks again once its edit is delivered. Never throws.
   */
  async endedProgress(jobId: string): Promise<Progress | undefined> {
    const ended = await this.endedJob(jobId);
    return ended?.outdated === undefined ? ended?.progress : undefined;
  }

  /**
   * The job's final progress if it has ended, and — when traffic has moved since (another switch) —
   * why that final state is no longer true: a late click on an old message must not show "Traffic is on
   * X" while it is elsewhere. Never throws.
   */
  private async endedJob(jobId: string): Promise<{ progress: Progress; outdated?: string } | undefined> {
    let progress: Progress | undefined;
    try {
      progress = await this.flow.jobProgress(jobId);
    } catch {
      return undefined; // Redis unreachable: the confirmation view stands; the worker's edit follows
    }
    if (progress?.outcome === undefined) return undefined;
    const outdated = await this.outdated(progress);
    return outdated === undefined ? { progress } : { progress, outdated };
  }

  /** Why the final state `progress` (of an ended job) is no longer true, if traffic moved since. */
  private async outdated(progress: Progress): Promise<string | undefined> {
    if (progress.outcome === undefined) return undefined;
    const current = await this.flow.currentDeployment(progress.environment);
    // Where the job left traffic: on its target when it succeeded; otherwise where its verification
    // last saw every domain, or where it started from.
    const seen = new Set(
      progress.traffic.flatMap((t) => (t.deploymentId === undefined ? [] : [t.deploymentId])),
    );
    const leftOn =
      progress.outcome === 'succeeded' ? progress.targetId : seen.size === 1 ? [...seen][0] : progress.fromId;
    if (current === undefined || current === leftOn) return undefined;
    const ran = `This ${progress.action} already ran (${progress.outcome.replaceAll('_', ' ')}, ${new Date(progress.updatedAt).toISOString().slice(0, 16).replace('T', ' ')} UTC)`;
    return `${ran}; ${progress.environment} now serves ${current}.`;
  }

  /**
   * Dismiss on an alert suggestion whose plan also shows on other messages (one plan serves every
   * request for the same switch: other incidents' suggestions, a person's own /rollback): closes this
   * message only (Flow.dismissCopy: permission, audit). Cancelling the plan would turn everyone else's
   * Rollback button into "cancelled". Undefined when the plan shows nowhere else (then Dismiss cancels
   * it, as it always did).
   */
  private async dismissOnly(
    actor: ActingUser,
    planId: string,
    message: MessageRef | undefined,
  ): Promise<ClickReply | undefined> {
    // The clicked message is marked dismissed and the messages still offering the plan counted in one
    // step (two people dismissing two copies at once: the last one cancels). The console's copies do
    // not count: it shows every suggestion, whether anyone reads it or not.
    const out = await this.flow.dismissCopy(actor, planId, message, ['console']);
    switch (out.status) {
      case 'refused':
        return { ephemeral: refusalView(out.refusal), outcome: 'refused' };
      case 'whole':
        return undefined;
      case 'dismissed':
        return { update: dismissedView(out.record.plan, actor.displayName), outcome: 'dismissed' };
      default:
        return assertNever(out, 'dismiss outcome');
    }
  }

  /**
   * Makes the clicked message follow the switch its click started, joined or awaits approval for (or,
   * for a Cancel or Dismiss, found already running), like the plan's other messages. It may not be one
   * of them: its attach when it was posted failed (a Redis blip: the poster was told the command
   * failed, and the message kept its working buttons), or the plan already followed
   * MAX_MESSAGES_PER_PLAN messages when it was posted. A clicked message passes that cap (up to
   * MAX_CLICKED_MESSAGES_PER_PLAN: see PlanStore.attachMessage), since without this nothing would edit
   * it after the click's own view: it would say "Progress follows in this message", or still offer the
   * plan, while its switch moved production. Flow.attach hands a message attached after the job was
   * made to the job, even when the job has ended (the caller then shows the end: see the `enqueued`
   * case). A message the plan lists already is followed already. A failure leaves the message as it
   * was: the switch is queued (or awaits its approval), and the click's answer must say so, not that
   * the click failed. True when this call attached the message: the job's progress so far went to its
   * other messages only (see `following`).
   */
  private async follow(record: PlanRecord, message: MessageRef | undefined): Promise<boolean> {
    if (message === undefined) return false;
    const key = messageRefKey(message);
    if (record.messages.some((m) => messageRefKey(m) === key)) return false;
    const out = await this.flow.attach(record.plan.id, message, { clicked: true }).catch(() => undefined);
    return out?.attached === true;
  }

  /**
   * How the clicked message shows the switch it follows now (job `jobId`, read once, after `follow`
   * attached it, so no older than anything the job reported without it): the job's end when it has
   * ended, or `outdated` when traffic has moved since (the message keeps what it shows: that end is no
   * longer true); the job's progress so far when `follow` only now attached the message (`attached`:
   * the job reported to its other messages only, see `ClickReply.progress`); else "Confirmed…", which
   * yields to the job's progress. Redis unable to tell: "Confirmed…" (the job's next report edits it).
   */
  private async following(
    record: PlanRecord,
    jobId: string,
    attached: boolean,
  ): Promise<{ readonly outdated: string } | Pick<ClickReply, 'update' | 'progress' | 'ended'>> {
    const progress = await this.flow.jobProgress(jobId).catch(() => undefined);
    if (progress?.outcome !== undefined) {
      const outdated = await this.outdated(progress);
      return outdated !== undefined ? { outdated } : { update: progressView(progress), ended: progress };
    }
    if (attached && progress !== undefined) return { update: progressView(progress), progress };
    return { update: this.confirmation(record, { state: 'enqueued' }) };
  }

  /**
   * A Cancel or Dismiss too late: the switch is queued or running. The clicker is told so; the clicked
   * message, which still offered the plan (the plan may not list it: see `follow`), follows the switch
   * from now on and shows it as a Confirm joining it would: "Confirmed…", yielding to the job's
   * progress (the progress so far, when the plan did not list the message: see `following`), or the
   * job's end when it has ended already. A job that ended with traffic moved elsewhere since leaves
   * the message as it is (that end is no longer true: the clicker's answer is enough).
   */
  private async tooLate(
    out: Extract<Awaited<ReturnType<Flow['cancel']>>, { status: 'running' }>,
    message: MessageRef | undefined,
  ): Promise<ClickReply> {
    const ephemeral = refusalView({ code: RefusalCode.operationInProgress, message: out.message });
    // Before its job id is stored the job may not exist yet: the attach hands the message to it anyway
    // (Flow.attach), and its progress edits the message.
    const attached = await this.follow(out.record, message);
    if (out.jobId === undefined) return { ephemeral, outcome: 'running' };
    const reply = { ephemeral, jobId: out.jobId, outcome: 'running' } as const;
    const shown = await this.following(out.record, out.jobId, attached);
    return 'outdated' in shown ? reply : { ...reply, ...shown };
  }

  /**
   * The answer to a click, and — when the click closed the plan (cancelled, stale, expired) or made it
   * wait for approval — the same view on the plan's other messages, in the background (see
   * `showOnOtherMessages`), and its alert suggestions refreshed (the hooks).
   */
  private async clickOutcome(
    out: ClickOutcome | Exclude<Awaited<ReturnType<Flow['cancel']>>, { status: 'running' }>,
    message?: MessageRef,
  ): Promise<ClickReply> {
    const planId = out.record?.plan.id;
    const closed = out.status === 'cancelled' || out.status === 'stale' || out.status === 'expired';
    if (closed && planId !== undefined) this.onPlanClosed?.(planId);
    if (out.status === 'awaiting_approval' && planId !== undefined) this.onPlanAwaitingApproval?.(planId);
    const reply = await this.clickReply(out, message);
    if (
      (closed || out.status === 'awaiting_approval') &&
      out.record !== undefined &&
      reply.update !== undefined
    )
      this.showOnOtherMessages({ record: out.record, view: reply.update, clicked: message });
    return reply;
  }

  private async clickReply(
    out: ClickOutcome | Exclude<Awaited<ReturnType<Flow['cancel']>>, { status: 'running' }>,
    message: MessageRef | undefined,
  ): Promise<ClickReply> {
    switch (out.status) {
      case 'enqueued': {
        const outcome = out.joined ? 'joined' : 'enqueued';
        // Attached before the job's end is read: a job that ends after this reports its final state to
        // the message itself (its worker reads the job's messages again once it has written its end);
        // one that ended before is caught here and its end shown with the click's answer.
        const attached = await this.follow(out.record, message);
        const shown = await this.following(out.record, out.jobId, attached);
        if ('outdated' in shown) {
          // Its job ran before and traffic has moved since: the message keeps the record of what that
          // switch did; only the clicker is told it is history now (no job id: nothing is restored).
          return {
            ephemeral: refusalView({
              code: RefusalCode.planStale,
              message: `${shown.outdated} Ask for a fresh plan with /${out.record.plan.action} ${out.record.plan.environment}.`,
            }),
            outcome: 'stale',
          };
        }
        return { ...shown, jobId: out.jobId, outcome };
      }
      case 'awaiting_approval':
        // Listed on the plan, the message is handed to the job the approval makes (from any message).
        await this.follow(out.record, message);
        return {
          update: this.confirmation(out.record, { state: 'awaiting_approval' }),
          approvalJobId: jobIdForPlan(out.record.plan.id),
          outcome: 'awaiting_approval',
        };
      case 'refused':
        return { ephemeral: refusalView(out.refusal), outcome: 'refused' };
      case 'stale':
        return {
          update: this.confirmation(out.record, { state: 'stale', staleReason: out.refusal.message }),
          outcome: 'stale',
        };
      case 'expired':
        return out.record
          ? { update: this.confirmation(out.record, { state: 'expired' }), outcome: 'expired' }
          : {
              ephemeral: refusalView({ code: RefusalCode.planStale, message: out.message }),
              outcome: 'expired',
            };
      case 'cancelled':
        return { update: this.confirmation(out.record, { state: 'cancelled' }), outcome: 'cancelled' };
      default:
        return assertNever(out, 'click outcome');
    }
  }

  /**
   * Shows what a click showed on its message (the plan cancelled, out of date or expired, or waiting
   * for approval) on every other message the plan lists: one plan serves every request for the same
   * switch, and a message left as it was would offer a closed plan, or say "Waiting for approval"
   * with an Approve button after the request was withdrawn. In the background: the click's answer
   * never waits for it, and a failed edit is logged. Edited through each surface's poster, which
   * edits any message by its ref (Slack `chat.update` and Discord's REST edit, on the message's lane,
   * ordered with the switch's progress), so messages another replica posted are edited too — except
   * the console's, which live in the memory of the process that posted them. Not edited here: the
   * clicked message (the click's own answer updates it) and the plan's alert suggestions (shown with
   * their own alert, or dismissed: `onPlanClosed` and `onPlanAwaitingApproval` refresh them). One run
   * per plan at a time; a click meanwhile is shown once that run is done.
   */
  private showOnOtherMessages(shown: Shown): void {
    if (this.posters === undefined) return;
    const planId = shown.record.plan.id;
    const running = this.showing.get(planId);
    if (running) {
      running.next = shown;
      return;
    }
    const entry: { next: Shown | undefined; done: Promise<void> } = { next: shown, done: Promise.resolve() };
    entry.done = (async () => {
      try {
        for (let next = entry.next; next !== undefined; next = entry.next) {
          entry.next = undefined;
          await this.showRounds(next).catch((e: unknown) =>
            this.logger.warn({ err: e, planId }, "could not show the plan's state on its other messages"),
          );
        }
      } finally {
        this.showing.delete(planId);
      }
    })();
    this.showing.set(planId, entry);
  }

  /**
   * Edits the plan's other messages with the click's view, then reads the plan again: when it moved
   * meanwhile (another click, here or on another replica, and our edits may have landed after that
   * click's), every message of it, the clicked one included (its answer showed the earlier state), is
   * edited again with the state it is in now. A plan enqueued since shows its switch: the job's
   * reporter edits its messages, so only a switch that has ended is shown here (an edit of ours may have
   * landed over its final state). A new request for the same switch made since is another plan (its
   * messages are its own): the closed plan's messages keep what they were shown.
   */
  private async showRounds(shown: Shown): Promise<void> {
    let record = shown.record;
    let view = shown.view;
    let except = shown.clicked;
    for (let round = 0; round < OTHER_MESSAGES_ROUNDS; round++) {
      await this.editListed(record, view, except);
      const now = await this.flow.get(record.plan.id);
      if (now === undefined || now.generation !== record.generation) return;
      if (now.state === record.state && (now.revision ?? 0) === (record.revision ?? 0)) return;
      if (now.state === 'enqueued') {
        const progress =
          now.jobId === undefined ? undefined : await this.flow.jobProgress(now.jobId).catch(() => undefined);
        if (progress?.outcome === undefined) return;
        view = progressView(progress);
      } else {
        view = this.confirmation(now);
      }
      record = now;
      except = undefined;
    }
  }

  /**
   * Edits each message `record` lists with `view`, but `except` and the alert suggestions, each
   * surface on its own (a slow one never holds up the others). Never throws: failures are logged.
   */
  private async editListed(
    record: PlanRecord,
    view: MessageView,
    except: MessageRef | undefined,
  ): Promise<void> {
    const posters = this.posters?.() ?? {};
    const skip = new Set((record.suggestions ?? []).flatMap((s) => (s.ref ? [messageRefKey(s.ref)] : [])));
    if (except !== undefined) skip.add(messageRefKey(except));
    const bySurface = new Map<Surface, MessageRef[]>();
    for (const ref of record.messages) {
      if (skip.has(messageRefKey(ref))) continue;
      bySurface.set(ref.surface, [...(bySurface.get(ref.surface) ?? []), ref]);
    }
    const planId = record.plan.id;
    await Promise.all(
      [...bySurface].map(async ([surface, refs]) => {
        const poster = posters[surface];
        if (poster === undefined) {
          this.logger.warn(
            { planId, surface, messages: refs.map((r) => ({ channel: r.channel, messageId: r.messageId })) },
            `this process has no ${surface} poster: the plan's ${surface} messages keep showing its earlier state`,
          );
          return;
        }
        for (const ref of refs) {
          try {
            await poster.update(ref, view);
          } catch (e) {
            this.logger.warn(
              { err: e, planId, surface, channel: ref.channel, messageId: ref.messageId },
              "could not show the plan's state on one of its other messages",
            );
          }
        }
      }),
    );
  }
}
