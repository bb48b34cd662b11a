/**
 * Builds the view model (src/views/types.ts) of every Switchyard chat message from domain values:
 * the rollback/promote confirmation, job progress, the /deployments list, refusals, usage, and the
 * deployment-event notices of issue 9. Pure functions; time comes in as `now` (or the progress
 * snapshot's own `updatedAt`). The model keeps every affected domain; renderers collapse.
 */

import type { Plan } from '../domain/plan.js';
import { newestFirstRank, shortSha } from '../domain/plan.js';
import { type Refusal, RefusalCode } from '../domain/result.js';
import { assertNever, type Deployment, type EnvironmentSnapshot, type PlanAction } from '../domain/types.js';
import type { Route } from '../platform/port.js';
import { type Actor, type Progress, platformStep, type StepName, type StepRecord } from '../progress.js';
import { type Action, tryEncodeAction } from './actions.js';
import {
  b,
  c,
  commitSubject,
  formatTime,
  i,
  longDuration,
  type PersonLike,
  person,
  personName,
  plainText,
  shortDuration,
  t,
  truncate,
  usageLine,
} from './format.js';
import { type AuditEntryLike, historyLists, refusedClickItem } from './history.js';
import type {
  ButtonStyle,
  ButtonView,
  ConfirmDialogView,
  DeploymentCard,
  DeploymentRow,
  ListItem,
  MessageView,
  Rich,
  Span,
  StepView,
  Tone,
  UsageArg,
  ViewBlock,
} from './types.js';

/** Where a confirmation message is in its life. */
export const ConfirmationState = {
  pending: 'pending',
  awaitingApproval: 'awaiting_approval',
  enqueued: 'enqueued',
  cancelled: 'cancelled',
  stale: 'stale',
  expired: 'expired',
} as const;
export type ConfirmationState = (typeof ConfirmationState)[keyof typeof ConfirmationState];

/** The alert a suggested rollback answers (issue 7). */
export interface AlertContext {
  /** `grafana`, `alertmanager`, `slack`, … */
  readonly source: string;
  /** Alert title (user-controlled text). */
  readonly title: string;
  /** Unix ms. */
  readonly startedAt: number;
  /** The deployment that went live before the alert; defaults to the plan's current deployment. */
  readonly wentLive?: { readonly deploymentId: string; readonly at: number };
  /** Every alert of the suggestion has resolved (the action is optional now). */
  readonly resolved: boolean;
  readonly resolvedAt?: number;
  /**
   * The other alerts that pointed at the same switch (a storm shows as one suggestion listing them),
   * oldest first; `othersMore` counts those beyond the list.
   */
  readonly others?: readonly OtherAlert[];
  readonly othersMore?: number;
  /** How many of `othersMore` still fire (default: all of them). */
  readonly othersMoreFiring?: number;
  /**
   * About how many more beyond `othersMore`: an estimate, whose resolutions are not tracked (a plan
   * counts its first alerts one by one, src/plan-store.ts MAX_COUNTED_ALERTS_PER_PLAN). Shown as
   * "about", never as an exact count, and never counted as still firing or resolved.
   */
  readonly othersUntracked?: number;
  /** This alert resolved while others still fire (`resolved` is then false). */
  readonly selfResolved?: boolean;
  /** The alert's link (an http(s) URL its sender gave), shown as text: Slack and Discord link it. */
  readonly url?: string;
  /** The alert says its query returned no data (Datadog's No Data, Grafana's DatasourceNoData). */
  readonly missingData?: boolean;
}

/** Another alert listed on a suggestion. */
export interface OtherAlert {
  readonly source: string;
  readonly title: string;
  /** Unix ms. */
  readonly startedAt: number;
  readonly resolved: boolean;
  /** The alert says its query returned no data. */
  readonly missingData?: boolean;
}

/** Everything a confirmation view needs besides the plan. */
export interface ConfirmationContext {
  readonly state: ConfirmationState;
  /**
   * Unix ms: when the view is rendered. The cards' "live for …" and "created … ago" are as of the plan
   * (`plan.createdAt`) whenever it is rendered; when they would read differently at `now`, the view
   * says as of when.
   */
  readonly now: number;
  readonly requestedBy?: Actor;
  /**
   * Who clicked confirm, when someone did (two-person rule: the request then awaits approval). Tells an
   * expired plan that lapsed waiting for approval (with `requiresApproval`), or whose confirm or approval
   * was never queued (without it, or with `approvedBy`), from one nobody confirmed.
   */
  readonly confirmedBy?: Actor;
  /**
   * Who typed the command, when someone else confirmed it (`requestedBy` is then the confirmer): a
   * person, never the alert bot. Under the two-person rule neither may approve, so the "waiting for
   * approval" message and its Approve dialog name both.
   */
  readonly askedBy?: Actor;
  /**
   * People who asked for this same plan after it was requested (their command joined it: a plan asked
   * for twice is one plan), oldest first: the reply under their command names them, not only the
   * first asker (an alert, say). Recorded to be shown only: they may still confirm or approve.
   */
  readonly alsoAskedBy?: readonly Actor[];
  /**
   * A switch of the environment queued or running when this plan was made (another plan's): said at
   * the top of a pending plan, which waits for it and is out of date if it moves traffic.
   */
  readonly runningSwitch?: ActiveJobLike;
  /**
   * The cancel was a Dismiss of the alert suggestion that silences it: alerts of the incident stop
   * suggesting this switch (a person's /rollback still offers it).
   */
  readonly dismissed?: boolean;
  readonly approvedBy?: Actor;
  readonly cancelledBy?: Actor;
  readonly alert?: AlertContext;
  /** What changed when `state` is `stale` (e.g. a `plan_stale` refusal message). */
  readonly staleReason?: string;
  /**
   * The environment needs a second person (two-person rule, as in force now): said up front while
   * pending. On an expired plan with a confirmer, it says the plan lapsed waiting for approval, as its
   * record tells (src/flow.ts `expiredAwaitingApproval`), not the rule in force when it is rendered.
   */
  readonly requiresApproval?: boolean;
}

export type { AuditEntryLike } from './history.js';

/** A switch currently running in the environment. */
export interface ActiveJobLike {
  readonly action: PlanAction;
  readonly targetId: string;
  /** Named by mention when the job carries the surface and id. */
  readonly requestedBy?: PersonLike;
  /** Unix ms. */
  readonly startedAt?: number;
}

/** Inputs of the /deployments view besides the snapshot. */
export interface DeploymentsViewOptions {
  /** Router state: which deployment serves each domain now. */
  readonly routing: readonly Route[];
  /**
   * The environment's audit entries read, newest first as `AuditLog.recent` gives them (the order
   * they were written): grouped into one line per switch or request (src/views/history.ts).
   */
  readonly audit: readonly AuditEntryLike[];
  /**
   * `audit` is only the newest part of a longer history (the read stopped at its limit): a move of the
   * platform's live history older than its oldest entry is not listed, as whether Switchyard made it
   * cannot be told. Default false: `audit` is the whole history.
   */
  readonly auditTruncated?: boolean;
  /**
   * How far Redis's clock was ahead of this process's (negative: behind) when `audit` was read, when
   * its entries say when Redis wrote them (`writtenAt`): the platform's moves are then told from
   * Switchyard's switches on Redis's clock, one for every writer, whatever a worker's clock says.
   * Without it, by the entries' own times (their writers' clocks).
   */
  readonly redisAheadMs?: number;
  /**
   * The newest refused clicks, listed apart from the history (`audit`): anyone who sees a message can
   * press its buttons, and their refusals must never take the lines that say who rolled back.
   */
  readonly refusals?: readonly AuditEntryLike[];
  readonly now: number;
  readonly activeJob?: ActiveJobLike;
  /** Most recent deployments to list (default 10). The current deployment is always listed. */
  readonly limit?: number;
  /** Lines of switches (and moves outside Switchyard) to list, newest first (default 5). */
  readonly switchLimit?: number;
  /** Lines of other requests (cancelled, expired, out of date, open) to list (default 4). */
  readonly otherLimit?: number;
}

/** A deployment, or just its id when nothing more is known. */
export type DeploymentRef = Deployment | { readonly id: string };

/** Deployment and traffic events announced in chat (issue 9). */
export type NoticeEvent =
  | {
      readonly type: 'deployment.ready';
      readonly environment: string;
      readonly deployment: Deployment;
      readonly live: boolean;
    }
  | {
      readonly type: 'deployment.failed';
      readonly environment: string;
      readonly deployment: Deployment;
      readonly reason?: string;
    }
  | {
      readonly type: 'traffic.moved';
      readonly environment: string;
      readonly from?: DeploymentRef;
      readonly to: DeploymentRef;
      readonly via: 'deploy' | 'rollback' | 'promote';
      readonly by?: string;
    }
  | {
      readonly type: 'ready.not_live';
      readonly environment: string;
      readonly deployment: Deployment;
      readonly rolledBackTo: DeploymentRef;
      readonly rolledBackAt?: number;
      readonly rolledBackBy?: string;
    }
  | {
      readonly type: 'rolled_back.reminder';
      readonly environment: string;
      readonly current: DeploymentRef;
      /** Unix ms when the environment was rolled back. */
      readonly since: number;
      readonly by?: string;
      /** Newest ready deployment waiting for a promote, if any. */
      readonly waiting?: Deployment;
    };

/** The slash commands that have a usage message. */
export type UsageCommand = 'rollback' | 'promote' | 'deployments';

// ───────────────────────────── shared pieces ─────────────────────────────

const CONFIRM_DIALOG_LIMITS = { title: 100, text: 300, button: 30 } as const;

function dialog(title: string, text: string, confirm: string, deny: string): ConfirmDialogView {
  return {
    title: truncate(title, CONFIRM_DIALOG_LIMITS.title),
    text: truncate(text, CONFIRM_DIALOG_LIMITS.text),
    confirm: truncate(confirm, CONFIRM_DIALOG_LIMITS.button),
    deny: truncate(deny, CONFIRM_DIALOG_LIMITS.button),
  };
}

/** Makes a button, or undefined when its action cannot be encoded (the caller says so). */
function button(
  label: string,
  action: Action,
  style: ButtonStyle,
  confirm?: ConfirmDialogView,
): ButtonView | undefined {
  const id = tryEncodeAction(action);
  if (!id.ok) return undefined;
  return {
    label,
    action,
    actionId: id.value,
    style,
    ...(confirm === undefined ? {} : { confirm }),
  };
}

function present<T>(xs: readonly (T | undefined)[]): T[] {
  return xs.filter((x): x is T => x !== undefined);
}

function isFull(d: DeploymentRef): d is Deployment {
  return 'commit' in d;
}

const STATUS_LABEL: Readonly<Record<Deployment['status'], string>> = {
  building: 'building',
  ready: 'ready',
  failed: 'failed',
  standby: 'standby',
  stopped: 'stopped',
};

/**
 * The card of one deployment. `liveSince` adds "live for …"; `now` adds the age: both as of `now`, so
 * a card in a message that is edited later is built with the moment the message describes, not the
 * edit's (see `confirmationView`).
 */
export function deploymentCard(d: Deployment, opts: { now: number; liveSince?: number }): DeploymentCard {
  const notes: string[] = [];
  if (d.status === 'standby') notes.push('in standby: reactivation takes longer');
  if (d.status === 'stopped') notes.push('stopped: cannot take traffic again');
  const message = commitSubject(d.commit.message);
  const author = d.commit.author.trim();
  return {
    id: d.id,
    shortSha: shortSha(d.commit.sha),
    branch: d.branch,
    ...(message === '' ? {} : { message }),
    ...(author === '' ? {} : { author }),
    status: STATUS_LABEL[d.status],
    ...(opts.liveSince === undefined ? {} : { live: `live for ${longDuration(opts.now - opts.liveSince)}` }),
    age: `created ${longDuration(opts.now - d.createdAt)} ago`,
    notes,
  };
}

/** Progress verbs for the header: running and succeeded. */
function verbs(plan: { action: PlanAction; resumesAutoDeploys: boolean }) {
  if (plan.action === 'rollback') return { doing: 'Rolling back', done: 'Rolled back' } as const;
  if (plan.resumesAutoDeploys) {
    return { doing: 'Resuming automatic deploys', done: 'Resumed automatic deploys' } as const;
  }
  return { doing: 'Promoting', done: 'Promoted' } as const;
}

/** "roll back production to dep_y" / "promote dep_y on production" / "resume automatic deploys on production". */
function phrase(action: PlanAction, environment: string, targetId: string, resumes: boolean): string {
  if (action === 'rollback') return `roll back ${environment} to ${targetId}`;
  if (resumes) return `resume automatic deploys on ${environment}`;
  return `promote ${targetId} on ${environment}`;
}

function capitalize(s: string): string {
  return s.length === 0 ? s : `${s.charAt(0).toUpperCase()}${s.slice(1)}`;
}

function domainItem(hostname: string, stickiness: string, branch: string | undefined): ListItem {
  const suffix =
    stickiness === 'live'
      ? ''
      : stickiness === 'branch'
        ? ` · branch domain (${branch ?? '?'})`
        : ` · ${stickiness} domain`;
  return { spans: suffix === '' ? [c(hostname)] : [c(hostname), t(suffix)] };
}

// ───────────────────────────── confirmation ─────────────────────────────

/** People named one by one among those who also asked; the rest are counted. */
const ALSO_ASKED_SHOWN = 3;

/**
 * "Requested by alice; also asked for by bob" / "Suggested by Switchyard alerts; asked for by alice":
 * a command that joined an open plan is answered with that plan, which must not read as someone
 * else's request only (an alert's, say).
 */
function askedSpans(requester: Actor, ctx: ConfirmationContext): Span[] {
  const bySystem = requester.surface === 'system';
  const also = (ctx.alsoAskedBy ?? []).filter((a) => a.surface !== 'system');
  const shown = also.slice(0, ALSO_ASKED_SHOWN);
  const more = also.length - shown.length;
  const names = shown.flatMap((a, k) => [
    ...(k === 0 ? [] : [t(k === shown.length - 1 && more === 0 ? ' and ' : ', ')]),
    person(a),
  ]);
  return [
    t(bySystem ? 'Suggested by ' : 'Requested by '),
    person(requester),
    ...(shown.length === 0
      ? []
      : [
          t(bySystem ? '; asked for by ' : '; also asked for by '),
          ...names,
          ...(more > 0 ? [t(` and ${more} more`)] : []),
        ]),
  ];
}

function primaryButton(plan: Plan, ctx: ConfirmationContext): ButtonView | undefined {
  const optional = ctx.alert?.resolved === true ? ' (optional)' : '';
  const n = plan.affectedDomains.length;
  const domains = `${n} domain${n === 1 ? '' : 's'}`;
  const standby = plan.targetStandby ? ' The target is in standby: reactivation takes longer.' : '';
  const ref = { kind: 'confirm', ref: plan.id } as const;
  if (plan.action === 'rollback') {
    return button(
      `Rollback to target version${optional}`,
      ref,
      'danger',
      dialog(
        `Roll back ${plan.environment} to ${plan.target.id}?`,
        `${domains} will point to ${plan.target.id} (${shortSha(plan.target.commit.sha)}) instead of ${plan.current.id}.${standby} New pushes will not get the domains until someone promotes.`,
        'Roll back',
        'Keep current',
      ),
    );
  }
  if (plan.resumesAutoDeploys) {
    return button(
      `Resume automatic deploys${optional}`,
      ref,
      'primary',
      dialog(
        `Resume automatic deploys on ${plan.environment}?`,
        `No domain moves: ${plan.target.id} keeps serving. The next successful deployment from a push takes the domains again.`,
        'Resume',
        'Stay rolled back',
      ),
    );
  }
  return button(
    `Promote to target version${optional}`,
    ref,
    'primary',
    dialog(
      `Promote ${plan.target.id} on ${plan.environment}?`,
      `${domains} will point to ${plan.target.id} (${shortSha(plan.target.commit.sha)}) instead of ${plan.current.id}.${standby} Automatic domain assignment for new pushes is restored.`,
      'Promote',
      'Keep current',
    ),
  );
}

/** After the title of an alert that says its query returned no data. */
const MISSING_DATA_MARK = ' (no data: its query returned nothing; the service may have stopped reporting)';

/** MISSING_DATA_MARK where a line has no room for it: the other alerts' list, a notification's summary. */
const MISSING_DATA_SHORT = ' (no data)';

function alertBlocks(plan: Plan, alert: AlertContext, state: ConfirmationState): ViewBlock[] {
  const blocks: ViewBlock[] = [];
  // A missing-data alert crossed no threshold: its data stopped, which a crashed service (or broken
  // instrumentation) does too. Said, so the reader knows what kind of symptom it is.
  const head: Span[] = [
    b(`Alert from ${alert.source}: `),
    t(alert.title),
    ...(alert.missingData === true ? [i(MISSING_DATA_MARK)] : []),
    t(` — started ${formatTime(alert.startedAt)}.`),
  ];
  const wentLive =
    alert.wentLive ??
    (plan.currentLiveSince === undefined
      ? undefined
      : { deploymentId: plan.current.id, at: plan.currentLiveSince });
  if (wentLive !== undefined) {
    const gap = alert.startedAt - wentLive.at;
    // Under a second apart ("0 seconds before"), neither order is worth stating: the platform's and
    // the alert source's clocks do not agree that closely.
    head.push(
      t(' '),
      c(wentLive.deploymentId),
      Math.abs(gap) < 1000
        ? t(' went live within a second of the start of this alert.')
        : gap > 0
          ? t(` went live ${longDuration(gap)} before this alert started.`)
          : t(` went live ${longDuration(-gap)} after this alert started.`),
    );
  }
  if (alert.selfResolved === true && !alert.resolved) head.push(t(' It has resolved.'));
  blocks.push({ type: 'text', spans: head, tone: alert.resolved ? 'neutral' : 'warning' });
  if (alert.url !== undefined) blocks.push({ type: 'context', spans: [t('Alert: '), t(alert.url)] });
  const others = alert.others ?? [];
  const more = alert.othersMore ?? 0;
  const untracked = alert.othersUntracked ?? 0;
  if (others.length > 0 || more > 0 || untracked > 0) {
    const n = others.length + more + untracked;
    const firing = others.filter((o) => !o.resolved).length + (alert.othersMoreFiring ?? more);
    // Past the alerts counted one by one only an estimate is kept: its count is "about", and whether
    // those resolved is not known (so neither "all resolved" nor a firing count includes them).
    const label =
      untracked > 0
        ? `about ${n} more alerts on this deployment (${firing} still firing, and about ${untracked} whose state is not tracked)`
        : `${n} more alert${n === 1 ? '' : 's'} on this deployment (${firing === 0 ? 'all resolved' : `${firing} still firing`})`;
    const unlisted = more + untracked;
    blocks.push({
      type: 'list',
      label,
      items: [
        ...others.map(
          (o): ListItem => ({
            spans: [
              b(`${o.source}: `),
              t(o.title),
              ...(o.missingData === true ? [i(MISSING_DATA_SHORT)] : []),
              t(` — started ${formatTime(o.startedAt)}${o.resolved ? ' · resolved' : ''}`),
            ],
          }),
        ),
        ...(unlisted > 0
          ? [{ spans: [i(`…and ${untracked > 0 ? 'about ' : ''}${unlisted} more, not listed`)] }]
          : []),
      ],
    });
  }
  if (alert.resolved) {
    const when = alert.resolvedAt === undefined ? '' : ` at ${formatTime(alert.resolvedAt)}`;
    const total = others.length + more + untracked + 1;
    const which =
      total === 1 ? 'The alert resolved' : `All ${untracked > 0 ? 'of about ' : ''}${total} alerts resolved`;
    // Only a plan that can still be confirmed has a rollback below to call optional: a closed one
    // (expired, cancelled, out of date, confirmed) offers none.
    const open = state === 'pending' || state === 'awaiting_approval';
    blocks.push({
      type: 'text',
      spans: [b(which), t(open ? `${when}. The ${plan.action} below is optional now.` : `${when}.`)],
      tone: 'success',
    });
  }
  return blocks;
}

/**
 * The confirmation message for a rollback or promote plan, in every state of its life: pending
 * (confirm/cancel), awaiting approval (two-person rule), enqueued, cancelled, stale (offers a fresh
 * plan) and expired. With `ctx.alert` it is the alert suggestion of issue 7 (adds Dismiss).
 */
export function confirmationView(plan: Plan, ctx: ConfirmationContext): MessageView {
  const what = phrase(plan.action, plan.environment, plan.target.id, plan.resumesAutoDeploys);
  const blocks: ViewBlock[] = [];
  // Another switch of the environment queued or running as this plan was made: said first, so nobody
  // takes the plan for a second way to do what is already under way. Confirming it is safe (it waits
  // for the environment, then is judged again), but it does nothing useful if that switch lands.
  const running = ctx.runningSwitch;
  if (running !== undefined && (ctx.state === 'pending' || ctx.state === 'awaiting_approval')) {
    const when =
      running.startedAt === undefined
        ? ' is queued now'
        : ` is running now (started ${clockTime(running.startedAt, ctx.now)}`;
    blocks.push({
      type: 'text',
      tone: 'warning',
      spans: [
        b(`A ${running.action} to `),
        c(running.targetId),
        b(when),
        ...(running.requestedBy === undefined
          ? [t(running.startedAt === undefined ? '' : ')')]
          : [t(running.startedAt === undefined ? ' (by ' : ', by '), person(running.requestedBy), t(')')]),
        t(
          `: this plan waits for it and will be out of date if it changes what is live on ${plan.environment}.`,
        ),
      ],
    });
  }
  if (ctx.alert !== undefined) blocks.push(...alertBlocks(plan, ctx.alert, ctx.state));

  // A cancelled, stale or expired plan can no longer run, and what it read may no longer hold (traffic
  // moved, automatic deploys resumed since): its lines about the environment's state say they are as
  // of the plan, and those about what it would do go. The cards keep their labels and as-of line below.
  const closed = ctx.state === 'cancelled' || ctx.state === 'stale' || ctx.state === 'expired';

  if (plan.rolledBack && closed) {
    blocks.push({
      type: 'text',
      spans: [
        t('When this plan was made, '),
        b(`${plan.environment} was ${plan.action === 'rollback' ? 'already ' : ''}rolled back`),
        t(' (to '),
        c(plan.current.id),
        t(').'),
      ],
    });
  } else if (plan.rolledBack) {
    blocks.push({
      type: 'text',
      tone: 'warning',
      spans:
        plan.action === 'rollback'
          ? [
              b(`${plan.environment} is already rolled back`),
              t(' (to '),
              c(plan.current.id),
              t('). Rolling back again keeps automatic deploys off until someone promotes.'),
            ]
          : [
              b(`${plan.environment} is rolled back`),
              t(' (to '),
              c(plan.current.id),
              t('): new pushes create deployments but get no domains until a promote.'),
            ],
    });
  }

  // The cards' ages are as of the plan (`plan.createdAt`, when it read the state the whole message
  // shows), not of this render: the message is edited long after it was posted (cancelled, expired by
  // the sweep, an alert resolving) while Slack and Discord still show it as posted then, and ages
  // recomputed at the edit would date the deployments earlier than they were. One view serves every
  // message of the plan (a request joining it later posts a fresh one): when the ages would read
  // differently now, a line says as of when.
  const cards = (at: number) => ({
    current: deploymentCard(plan.current, {
      now: at,
      ...(plan.currentLiveSince === undefined ? {} : { liveSince: plan.currentLiveSince }),
    }),
    target: deploymentCard(plan.target, { now: at }),
  });
  const asOfPlan = cards(plan.createdAt);
  const asOfNow = cards(ctx.now);
  const aged =
    asOfPlan.current.live !== asOfNow.current.live ||
    asOfPlan.current.age !== asOfNow.current.age ||
    (!plan.resumesAutoDeploys && asOfPlan.target.age !== asOfNow.target.age);

  blocks.push({ type: 'deployment', label: 'Current deployment', card: asOfPlan.current });

  if (plan.resumesAutoDeploys) {
    blocks.push({
      type: 'text',
      spans: closed
        ? [
            b('No domain would move: '),
            c(plan.target.id),
            t(` served ${plan.environment} when this plan was made.`),
          ]
        : [b('No domain moves: '), c(plan.target.id), t(` already serves ${plan.environment}.`)],
    });
  } else {
    blocks.push({
      type: 'list',
      label: `Affected domains (${plan.affectedDomains.length})`,
      items: plan.affectedDomains.map((d) => domainItem(d.hostname, d.stickiness, d.branch)),
      empty: 'No domain points to the current deployment, so no domain moves.',
    });
    blocks.push({ type: 'deployment', label: 'Target deployment', card: asOfPlan.target });
  }
  if (plan.usualBranch !== undefined) {
    blocks.push({
      type: 'context',
      spans: [c(plan.target.id), t(` is from branch ${plan.target.branch}, not ${plan.usualBranch}.`)],
    });
  }
  if (aged) {
    blocks.push({
      type: 'context',
      spans: [t(`Deployment ages as of ${formatTime(plan.createdAt)}, when this plan was made.`)],
    });
  }

  // A switch to a deployment pushed before the live one (a promote) or after it (a rollback) is not
  // what its name suggests: said, so nobody moves production back to an old build by mistake.
  if (!plan.resumesAutoDeploys && plan.target.createdAt !== plan.current.createdAt) {
    const older = plan.target.createdAt < plan.current.createdAt;
    if (older === (plan.action === 'promote')) {
      blocks.push({
        type: 'text',
        tone: 'warning',
        spans: [
          c(plan.target.id),
          t(` was pushed ${older ? 'before' : 'after'} `),
          c(plan.current.id),
          t(
            closed
              ? ', the deployment live when this plan was made: this '
              : ', the deployment live now: this ',
          ),
          b(
            `${plan.action} ${closed ? 'would have moved' : 'moves'} ${plan.environment} to ${older ? 'an older' : 'a newer'} deployment`,
          ),
          t('.'),
        ],
      });
    }
  }

  // A rollback back to a deployment Switchyard rolled away from (on a platform without live history,
  // the default when no other older deployment is left): said, so nobody restores a known-bad build
  // unawares.
  if (plan.targetRolledBackFrom === true) {
    blocks.push({
      type: 'text',
      tone: 'warning',
      spans: [
        t(`Switchyard rolled ${plan.environment} back from `),
        c(plan.target.id),
        t(' before: this '),
        b(`rollback ${closed ? 'would have returned' : 'returns'} ${plan.environment} to it`),
        t('.'),
      ],
    });
  }

  if (plan.action === 'promote' && !closed) {
    blocks.push({
      type: 'text',
      spans: [
        t(
          plan.resumesAutoDeploys
            ? 'This restores automatic domain assignment: the next successful deployment from a push takes the domains again.'
            : plan.rolledBack
              ? 'Promoting restores automatic domain assignment for new pushes: the next successful deployment takes the domains again.'
              : `${plan.environment} is not rolled back: automatic domain assignment stays on, and the next successful deployment from a push takes the domains.`,
        ),
      ],
    });
  }

  const buttons: (ButtonView | undefined)[] = [];
  let title: string;
  let tone: Tone;
  let summary: string;
  const cancelButton = () => button('Cancel', { kind: 'cancel', ref: plan.id }, 'default');
  // In the message text people are person spans (a mention on their own surface): display names are
  // chosen by anyone (a Discord nickname "alice", a Slack Connect partner's handle "alice"), and the
  // approvers decide on who asked. The Approve dialog is plain text: names (with a Discord username
  // that differs from the name, `personName`), the message above identifies.
  const requester = ctx.requestedBy;

  switch (ctx.state) {
    case 'pending': {
      title = `${capitalize(what)}?`;
      tone = 'warning';
      summary = `${capitalize(what)}? ${plan.affectedDomains.length} domain(s) affected; current is ${plan.current.id}.`;
      // A suggestion's notification (the summary is the text chat services notify with) says which
      // alert it answers: otherwise it reads as someone's typed /rollback.
      if (ctx.alert !== undefined)
        summary = `${ctx.alert.resolved ? 'Resolved' : 'Alert'} from ${ctx.alert.source}: ${truncate(ctx.alert.title, 120)}${ctx.alert.missingData === true ? MISSING_DATA_SHORT : ''}. ${summary}`;
      if (requester !== undefined) blocks.push({ type: 'context', spans: askedSpans(requester, ctx) });
      if (ctx.requiresApproval === true) {
        blocks.push({
          type: 'context',
          spans: [
            t(`${plan.environment} needs two people: after the confirm click, a second person must approve.`),
          ],
        });
      }
      buttons.push(primaryButton(plan, ctx), cancelButton());
      if (ctx.alert !== undefined)
        buttons.push(button('Dismiss', { kind: 'dismiss', ref: plan.id }, 'default'));
      break;
    }
    case 'awaiting_approval': {
      title = `Waiting for approval: ${what}`;
      tone = 'warning';
      // The person who typed the command cannot approve what someone else confirmed either (Flow's
      // self_approval): name both, or the asker reads the message as theirs to approve.
      const asker = ctx.askedBy;
      const both = asker !== undefined && requester !== undefined;
      summary = both
        ? `${capitalize(what)}: waiting for approval by someone other than ${personName(asker)} and ${personName(requester)}.`
        : `${capitalize(what)}: waiting for approval by a second person.`;
      // Confirmed under a two-person rule turned off since (config edited, restart): one permitted
      // person suffices now, and Approve queues the switch whoever permitted clicks it (Flow's
      // approveFrom). "Not X" would send the confirmer away from the one button that works.
      const ruleOff = ctx.requiresApproval === false;
      if (ruleOff) summary = `${capitalize(what)}: confirmed; one more click on Approve queues it.`;
      blocks.push({
        type: 'text',
        tone: 'info',
        spans: ruleOff
          ? [
              t('Requested by '),
              person(asker ?? requester, 'someone'),
              ...(both ? [t(', confirmed by '), person(requester)] : []),
              t('. '),
              b(`${plan.environment} no longer needs a second person`),
              t(
                ' (its two-person rule was turned off since this was confirmed): anyone permitted may click Approve to queue it, whoever asked or confirmed it.',
              ),
            ]
          : both
            ? [
                // Neither may approve, so the approver is a third person: "a second person" misleads.
                t('Requested by '),
                person(asker),
                t(', confirmed by '),
                person(requester),
                t('. '),
                b('Waiting for approval'),
                t(' by someone other than '),
                person(asker),
                t(' and '),
                person(requester),
                t('.'),
              ]
            : [
                t('Requested by '),
                person(requester),
                t('. '),
                b('Waiting for approval by a second person'),
                t(' (not '),
                person(requester, 'the requester'),
                t(').'),
              ],
      });
      buttons.push(
        button(
          'Approve',
          { kind: 'approve', ref: plan.id },
          plan.action === 'rollback' ? 'danger' : 'primary',
          dialog(
            `Approve: ${what}?`,
            `${
              both
                ? `${personName(asker)} asked to ${what} and ${personName(requester)} confirmed it`
                : `${personName(requester, 'Someone')} asked to ${what}`
            }. ${plan.affectedDomains.length} domain(s) move to ${plan.target.id}.`,
            'Approve',
            'Not yet',
          ),
        ),
        cancelButton(),
      );
      break;
    }
    case 'enqueued': {
      title = `Confirmed: ${what}`;
      tone = 'info';
      summary = `${capitalize(what)}: confirmed, starting.`;
      const who = [
        t('Confirmed by '),
        person(requester),
        ...(ctx.approvedBy === undefined ? [] : [t(', approved by '), person(ctx.approvedBy)]),
        t('. Progress follows in this message.'),
      ];
      blocks.push({ type: 'context', spans: who });
      break;
    }
    case 'cancelled': {
      // A Dismiss did more than cancel: alerts of the incident stop suggesting this switch. Said, or
      // the next alert's silence reads as a fault.
      const dismissed = ctx.dismissed === true;
      title = `${dismissed ? 'Dismissed' : 'Cancelled'}: ${what}`;
      tone = 'neutral';
      summary = `${dismissed ? 'Dismissed' : 'Cancelled'}: ${what}. Nothing changed.`;
      blocks.push({
        type: 'text',
        spans: dismissed
          ? [
              t('Dismissed by '),
              person(ctx.cancelledBy ?? ctx.requestedBy),
              t(
                `: alerts of this incident will not suggest this ${plan.action} again; /${plan.action} ${plan.environment} still offers it. Nothing changed.`,
              ),
            ]
          : [t('Cancelled by '), person(ctx.cancelledBy ?? ctx.requestedBy), t('. Nothing changed.')],
      });
      break;
    }
    case 'stale': {
      title = `Out of date: ${what}`;
      tone = 'warning';
      summary = `Out of date: ${what}. Nothing changed.`;
      blocks.push({
        type: 'text',
        tone: 'warning',
        spans: [
          b('This plan is out of date. '),
          t(ctx.staleReason ?? `Traffic on ${plan.environment} moved since this plan was made.`),
          t(' Nothing was changed.'),
        ],
      });
      buttons.push(button('Make a fresh plan', { kind: 'replan', ref: plan.id }, 'primary'));
      break;
    }
    case 'expired': {
      title = `Expired: ${what}`;
      tone = 'neutral';
      summary = `Expired: ${what}. Nothing changed.`;
      // A confirm waits for approval only under the two-person rule (`requiresApproval`: the record
      // says it expired waiting for one). Otherwise (or once approved), a confirmer on an expired plan
      // means its click claimed the switch but the queueing never finished (the enqueue failed and so
      // did the undo of the claim), as the audit entry says.
      const confirmer = ctx.confirmedBy;
      const why: Span[] =
        confirmer === undefined
          ? [t('This plan expired before anyone confirmed it.')]
          : ctx.approvedBy !== undefined
            ? [
                t('This plan expired before its switch was queued: '),
                person(confirmer),
                t(' confirmed it and '),
                person(ctx.approvedBy),
                t(' approved it, but its queueing did not finish.'),
              ]
            : ctx.requiresApproval === true
              ? [
                  t('This plan expired waiting for approval: '),
                  person(confirmer),
                  t(' confirmed it, but no second person approved it in time.'),
                ]
              : [
                  t('This plan expired before its switch was queued: '),
                  person(confirmer),
                  t(' confirmed it, but its queueing did not finish.'),
                ];
      blocks.push({
        type: 'text',
        spans: [...why, t(` Nothing changed. Make a fresh plan below, or run /${plan.action} again.`)],
      });
      // As on a stale plan: the way back to the same switch is one click (anyone may ask for a plan;
      // the fresh plan goes through every check again).
      buttons.push(button('Make a fresh plan', { kind: 'replan', ref: plan.id }, 'primary'));
      break;
    }
    default:
      return assertNever(ctx.state, 'confirmation state');
  }

  return { kind: 'confirmation', tone, title, summary, blocks, buttons: present(buttons), ephemeral: false };
}

// ───────────────────────────── progress ─────────────────────────────

const STEP_ORDER: readonly StepName[] = [
  'queued',
  'validating',
  'reactivating',
  'switching',
  'verifying',
  'done',
];

const STEP_LABEL: Readonly<Record<StepName, string>> = {
  queued: 'Queued',
  validating: 'Validating the plan',
  reactivating: 'Reactivating standby target',
  switching: 'Switching domains',
  verifying: 'Verifying traffic',
  done: 'Done',
};

/**
 * A resume of automatic deploys moves no domain: its platform call (a promote of the deployment
 * already live) only turns automatic deploys back on, so its step says that rather than "Switching
 * domains" with a duration that reads as domains moving.
 */
const RESUME_SWITCH_LABEL = 'Resuming automatic deploys';

/**
 * A time of day in UTC to the second, "06:07:05 UTC" (as `formatTime`, which says minutes and the
 * date), with the date in front when it falls on another UTC day than `day` ("2026-11-28 23:59:50
 * UTC"): for times within a message whose day the chat shows beside it.
 */
function clockTime(ms: number, day: number): string {
  const iso = new Date(ms).toISOString();
  const clock = `${iso.slice(11, 19)} UTC`;
  return iso.slice(0, 10) === new Date(day).toISOString().slice(0, 10)
    ? clock
    : `${iso.slice(0, 10)} ${clock}`;
}

function stepView(
  name: StepName,
  record: StepRecord | undefined,
  progress: Progress,
  resumes: boolean,
): StepView {
  const label = name === 'switching' && resumes ? RESUME_SWITCH_LABEL : STEP_LABEL[name];
  if (record !== undefined) {
    // A message is edited only when the job reports progress, so a running step's elapsed time would
    // freeze at its last report ("2 ms" for a whole reactivation) and read as stuck or done: it says
    // when it started instead. A step left running in a job that ended is measured to that end.
    const running = record.state === 'running' && progress.outcome === undefined;
    const end = record.endedAt ?? progress.updatedAt;
    return {
      step: name,
      label,
      state: record.state,
      duration: running
        ? `since ${clockTime(record.startedAt, progress.updatedAt)}`
        : shortDuration(end - record.startedAt),
      ...(record.detail === undefined ? {} : { detail: record.detail }),
    };
  }
  if (name === 'done' && progress.outcome === 'succeeded') return { step: name, label, state: 'done' };
  return { step: name, label, state: progress.outcome === undefined ? 'pending' : 'not_reached' };
}

/**
 * Whether a switch has a reactivation step: the target was in standby when the worker validated the
 * plan (`progress.targetStandby`), else when the plan was made. Unknown (neither says, e.g. a reporter
 * rendering a job that has not been validated yet) counts as no: a step that may not apply is left out
 * rather than shown as pending or "not reached" (a running target is never reactivated). The step is
 * shown anyway once the worker recorded it.
 */
function reactivationApplies(progress: Progress, plan: Plan | undefined): boolean {
  return progress.targetStandby ?? plan?.targetStandby ?? false;
}

/**
 * A switch that landed and was then overtaken while being verified: another switch (or a deploy) moved
 * the environment on (jobs/switch-processor.ts `verifyTraffic`). It ended `failed` (it did switch, so it
 * is neither `stale` nor `refused`) with the code of a plan overtaken by traffic moves, `plan_stale`: no
 * fault to look into, so it reads as a warning, and a fresh plan is offered as for a stale one.
 */
function overtaken(progress: Progress): boolean {
  return progress.outcome === 'failed' && progress.code === RefusalCode.planStale;
}

/**
 * Whether an overtaken job's switch is known done, as its worker says (`switchLanded`). A job whose
 * earlier request got no answer before traffic moved on (jobs/switch-processor.ts
 * `askedThenMovedMessage`) may not have switched: its title says overtaken, its message what is known.
 * Progress published before that field is read from its steps: none of its platform steps ended
 * otherwise (a step a worker never published reads as done there, hence the field).
 */
function switchLanded(progress: Progress): boolean {
  if (progress.switchLanded !== undefined) return progress.switchLanded;
  return !progress.steps.some((s) => platformStep(s.step) && s.state !== 'done' && s.state !== 'skipped');
}

function outcomeTitle(progress: Progress, v: ReturnType<typeof verbs>, resumes: boolean): string {
  const target = `${progress.environment} to ${progress.targetId}`;
  const noun = resumes
    ? `Resuming automatic deploys on ${progress.environment}`
    : progress.action === 'rollback'
      ? `Rollback of ${target}`
      : `Promote of ${progress.targetId} on ${progress.environment}`;
  switch (progress.outcome) {
    case undefined:
      return resumes
        ? `${v.doing} on ${progress.environment}`
        : progress.action === 'rollback'
          ? `${v.doing} ${target}`
          : `${v.doing} ${progress.targetId} on ${progress.environment}`;
    case 'succeeded':
      return resumes
        ? `${v.done} on ${progress.environment}`
        : progress.action === 'rollback'
          ? `${v.done} ${target}`
          : `${v.done} ${progress.targetId} on ${progress.environment}`;
    case 'failed':
      if (!overtaken(progress)) return `${noun} failed`;
      return switchLanded(progress) ? `${noun} done, then overtaken` : `${noun} overtaken`;
    case 'refused':
      return `${noun} refused`;
    case 'stale':
      return `${noun} not done: plan out of date`;
    case 'cancelled':
      return `${noun} cancelled`;
    default:
      return assertNever(progress.outcome, 'outcome');
  }
}

/**
 * One item per domain, those not on the target first (in their order, then the others): a long list
 * cut to "…and N more" never hides the domain that did not move.
 */
function trafficItems(progress: Progress): ListItem[] {
  const ordered = [...progress.traffic.filter((r) => !r.ok), ...progress.traffic.filter((r) => r.ok)];
  return ordered.map((r) => ({
    spans: [c(r.hostname), t(' → '), r.deploymentId === undefined ? i('unknown') : c(r.deploymentId)],
    state: r.ok ? 'ok' : 'bad',
  }));
}

/**
 * What became of a switch after its job ended `failed`: the platform completed it after the job had
 * given up (an operation still under way at the adapter's timeout, a standby target reactivating for
 * longer than the worker waits, an answer lost). The deployment notices add it to the job's final view
 * when they see the move (src/notices.ts); it is the platform's word: Switchyard verified nothing.
 */
export interface LaterCompletion {
  /** When the platform moved traffic to the switch's target (the traffic move event's time). */
  readonly at: number;
}

/** The update line of a failed switch the platform completed later (`LaterCompletion`). */
function laterSpans(progress: Progress, later: LaterCompletion, resumes: boolean): Span[] {
  const noun = resumes ? 'resume of automatic deploys' : progress.action;
  return [
    b(`Update ${formatTime(later.at)}: `),
    t(`the platform completed this ${noun} after the job had given up; ${progress.environment} is serving `),
    c(progress.targetId),
    t(
      `. Reported by the platform, not verified by Switchyard: check /deployments ${progress.environment} before acting on it.`,
    ),
  ];
}

/**
 * The progress message of a switch job, edited in place through every step to the final state: who
 * confirmed and approved, each step with its state and duration (a running one with when it started),
 * and at the end where traffic was when the job ended, saying when (`progress.updatedAt`): the final
 * message is read long after. Time comes from the progress only, so renders are reproducible.
 * `later` (a `failed` job only) says the platform completed the switch after the job had given up:
 * an update line first, the title says so, and the job's own end reads as of when it ended.
 */
export function progressView(progress: Progress, plan?: Plan, later?: LaterCompletion): MessageView {
  const resumes =
    plan?.resumesAutoDeploys ?? (progress.action === 'promote' && progress.fromId === progress.targetId);
  const v = verbs({ action: progress.action, resumesAutoDeploys: resumes });
  // Only a failure can be completed later (a refusal or a stale plan never had the platform switch).
  const completed = progress.outcome === 'failed' && !overtaken(progress) ? later : undefined;
  const ended = outcomeTitle(progress, v, resumes);
  const title = completed === undefined ? ended : `${ended}, then completed by the platform`;
  const blocks: ViewBlock[] = [];
  // First: people look at the job's message before any notice, and its end below no longer holds.
  const update = completed === undefined ? undefined : laterSpans(progress, completed, resumes);
  if (update !== undefined) blocks.push({ type: 'text', tone: 'warning', spans: update });

  const who: Rich = [
    t('Confirmed by '),
    person(progress.requestedBy),
    ...(progress.approvedBy === undefined ? [] : [t(' · approved by '), person(progress.approvedBy)]),
    t(' · from '),
    c(progress.fromId),
    ...(progress.attempt > 1 ? [t(` · attempt ${progress.attempt}`)] : []),
  ];
  blocks.push({ type: 'context', spans: who });

  const byName = new Map<StepName, StepRecord>();
  for (const r of progress.steps) byName.set(r.step, r);
  const steps = STEP_ORDER.filter(
    (n) => n !== 'reactivating' || byName.has(n) || reactivationApplies(progress, plan),
  ).map((n) => stepView(n, byName.get(n), progress, resumes));
  blocks.push({ type: 'steps', steps });

  let tone: Tone = 'info';
  let summary = `${title}…`;
  const buttons: (ButtonView | undefined)[] = [];
  switch (progress.outcome) {
    case undefined:
      break;
    case 'succeeded': {
      tone = 'success';
      summary = `${title}. Traffic is on ${progress.targetId}.`;
      // Read long after, like a failure's end: it says when, not "now".
      blocks.push({
        type: 'text',
        tone: 'success',
        spans: [
          b('Traffic is on '),
          c(progress.targetId),
          t(` as of ${formatTime(progress.updatedAt)}, when the job ended.`),
        ],
      });
      // The worker's `note` says how traffic was checked and what became of automatic deploys, as it
      // found them (they may have been resumed since an earlier attempt's rollback). Its `message` is
      // the record (audit, logs): it names the domains the list below shows and repeats the title, so
      // it is not shown. Progress without a note (published before it) gets the general sentence.
      const note =
        progress.note ??
        (progress.action === 'rollback'
          ? `${progress.environment} is now rolled back: new pushes create deployments but get no domains until someone promotes.`
          : 'Automatic deploys are on again: the next successful deployment from a push takes the domains.');
      blocks.push({ type: 'text', spans: [t(note)] });
      // No domain moved (a resume of automatic deploys): the note says so, and an empty list would
      // say it a third time.
      if (progress.traffic.length > 0 || progress.note === undefined) {
        blocks.push({
          type: 'list',
          label: `Domains (${progress.traffic.length})`,
          items: trafficItems(progress),
          empty: 'No domain moved.',
        });
      }
      break;
    }
    case 'failed':
    case 'refused':
    case 'stale':
    case 'cancelled': {
      tone =
        progress.outcome === 'failed' && !overtaken(progress)
          ? completed === undefined
            ? 'danger'
            : 'warning'
          : progress.outcome === 'cancelled'
            ? 'neutral'
            : 'warning';
      const state =
        progress.message ??
        `Traffic state after the job: check /deployments ${progress.environment} (the job ended with ${progress.outcome}).`;
      // The job's end is final: the message keeps saying it long after traffic moved on (read the next
      // morning, after others switched production), so it says as of when, never "now". Completed
      // later: the update above says when the platform moved traffic, and the end follows as it was.
      const label =
        completed === undefined
          ? `When the job ended (${formatTime(progress.updatedAt)}): `
          : 'When the job ended: ';
      summary =
        update === undefined
          ? `${title}. ${label}${state}`
          : `${title}. ${plainText(update)} ${label}${state}`;
      blocks.push({
        type: 'text',
        tone: completed === undefined ? tone : 'neutral',
        spans: [b(label), t(state)],
      });
      if (progress.code !== undefined)
        blocks.push({ type: 'context', spans: [t('Code: '), c(progress.code)] });
      if (progress.traffic.length > 0) {
        blocks.push({ type: 'list', label: trafficLabel(progress), items: trafficItems(progress) });
      }
      if (progress.outcome === 'stale' || overtaken(progress))
        buttons.push(button('Make a fresh plan', { kind: 'replan', ref: progress.planId }, 'primary'));
      break;
    }
    default:
      return assertNever(progress.outcome, 'outcome');
  }

  return { kind: 'progress', tone, title, summary, blocks, buttons: present(buttons), ephemeral: false };
}

/**
 * "Where traffic was when the job ended (3)", or "(1 of 3 not on the target)" when some domain is not
 * on it: a job's end only (the text above it says when), as it was then, not where traffic is now.
 */
function trafficLabel(progress: Progress): string {
  const total = progress.traffic.length;
  const off = progress.traffic.filter((r) => !r.ok).length;
  const where = 'Where traffic was when the job ended';
  return off === 0 ? `${where} (${total})` : `${where} (${off} of ${total} not on the target)`;
}

// ───────────────────────────── /deployments ─────────────────────────────

/** The newest `limit` deployments of an environment, plus its current one when it is older (always shown). */
export function listedDeployments(snapshot: EnvironmentSnapshot, limit: number): Deployment[] {
  const listed = snapshot.deployments.slice(0, limit);
  const currentId = snapshot.environment.currentDeploymentId;
  const current = snapshot.deployments.find((d) => d.id === currentId);
  if (current !== undefined && !listed.includes(current)) listed.push(current);
  return listed;
}

/**
 * The /deployments list: recent deployments with status, the live one, standby markers, a rolled-back
 * banner (since when, by whom), a running switch, where each domain routes, Rollback/Promote buttons on
 * eligible rows (hidden while a switch runs), then the history: the latest switches one line each
 * (with the moves the platform's live history records outside Switchyard), other requests, and the
 * newest refused clicks (src/views/history.ts).
 */
export function deploymentsView(snapshot: EnvironmentSnapshot, opts: DeploymentsViewOptions): MessageView {
  const env = snapshot.environment;
  const now = opts.now;
  const limit = Math.max(1, opts.limit ?? 10);
  const current = snapshot.deployments.find((d) => d.id === env.currentDeploymentId);
  const blocks: ViewBlock[] = [];

  if (env.rolledBack) {
    const since = env.rolledBackAt;
    blocks.push({
      type: 'text',
      tone: 'warning',
      spans: [
        b(`${env.slug} is rolled back`),
        ...(current === undefined ? [] : [t(' to '), c(current.id)]),
        ...(since === undefined ? [] : [t(` since ${formatTime(since)} (${longDuration(now - since)} ago)`)]),
        ...(env.rolledBackBy === undefined ? [] : [t(` by ${env.rolledBackBy}`)]),
        t('. New pushes create deployments but get no domains until someone promotes.'),
      ],
    });
  }
  if (opts.activeJob !== undefined) {
    const j = opts.activeJob;
    blocks.push({
      type: 'text',
      tone: 'info',
      spans: [
        b(`A ${j.action} to `),
        c(j.targetId),
        b(' is running'),
        ...(j.requestedBy === undefined ? [] : [t(' (requested by '), person(j.requestedBy), t(')')]),
        ...(j.startedAt === undefined ? [] : [t(`, started ${longDuration(now - j.startedAt)} ago`)]),
        // This message is a snapshot, never edited when the switch ends: it says when it was true,
        // and how to get the buttons back rather than promising they come back here.
        t(
          `, as of ${clockTime(now, now)} when this list was read. Buttons are hidden while it runs: run /deployments ${env.slug} again once it ends.`,
        ),
      ],
    });
  }

  const serving = new Map<string, number>();
  for (const r of opts.routing) {
    if (r.deploymentId !== undefined) serving.set(r.deploymentId, (serving.get(r.deploymentId) ?? 0) + 1);
  }

  const listed = listedDeployments(snapshot, limit);
  const rankOf = newestFirstRank(snapshot);
  const currentLiveSince = (() => {
    for (let k = snapshot.liveHistory.length - 1; k >= 0; k--) {
      const e = snapshot.liveHistory[k];
      if (e !== undefined && e.deploymentId === current?.id) return e.since;
    }
    return undefined;
  })();

  // While rolled back: the deployment the latest rollback moved traffic away from (the live history's
  // entry before it), which is most likely the bad one. It is not offered as the way forward (a
  // default button, not the primary one), and says what it is. Unknown without a live history.
  const rolledAwayFrom = (() => {
    if (!env.rolledBack) return undefined;
    const h = snapshot.liveHistory;
    for (let k = h.length - 1; k > 0; k--) {
      if (h[k]?.via === 'rollback') return h[k - 1]?.deploymentId;
    }
    return undefined;
  })();

  const rows: DeploymentRow[] = listed.map((d) => {
    const isCurrent = d.id === current?.id;
    const awayFrom = !isCurrent && d.id === rolledAwayFrom;
    const markers: string[] = [];
    if (isCurrent) markers.push('live');
    if (isCurrent && env.rolledBack) markers.push('rolled back');
    if (d.status !== 'ready') markers.push(d.status);
    // Newer by the snapshot's order (newest first, the platform's own order of creation), never by
    // `createdAt`: a wall clock that stepped back, or two pushes in one millisecond, would misorder
    // them, and plans (src/domain/plan.ts) and the platform go by this order.
    const newerThanCurrent = current !== undefined && rankOf(d) < rankOf(current);
    if (env.rolledBack && !isCurrent && d.status === 'ready' && newerThanCurrent)
      // "rolled back" alone read as if this deployment were the one rolled back: it is held back.
      markers.push(
        awayFrom ? 'not live: rolled back from' : `not live: held back (${env.slug} is rolled back)`,
      );

    const wanted: { label: string; action: Action; style: ButtonStyle }[] = [];
    if (opts.activeJob === undefined && current !== undefined) {
      const ref = { environment: env.slug, deploymentId: d.id };
      if (isCurrent && env.rolledBack) {
        wanted.push({
          label: 'Resume automatic deploys',
          action: { kind: 'promote', ref },
          style: 'primary',
        });
      } else if (env.rolledBack && !isCurrent && d.status === 'ready' && newerThanCurrent) {
        wanted.push({
          label: truncate(`Promote ${d.id}`, 75),
          action: { kind: 'promote', ref },
          style: awayFrom ? 'default' : 'primary',
        });
      } else if (!isCurrent && (d.status === 'ready' || d.status === 'standby')) {
        wanted.push({
          label: truncate(`Rollback to ${d.id}`, 75),
          action: { kind: 'rollback_to', ref },
          style: 'default',
        });
      }
    }
    const buttons = present(wanted.map((w) => button(w.label, w.action, w.style)));
    const card = deploymentCard(d, {
      now,
      ...(isCurrent && currentLiveSince !== undefined ? { liveSince: currentLiveSince } : {}),
    });
    const served = serving.get(d.id);
    return {
      card,
      markers,
      ...(served === undefined ? {} : { servesDomains: served }),
      buttons,
      ...(buttons.length < wanted.length
        ? {
            buttonNote: `No button: the id of ${d.id} does not fit a button; type /${wanted[0]?.action.kind === 'promote' ? 'promote' : 'rollback'} with it instead.`,
          }
        : {}),
    };
  });

  // An adapter that stopped reading at its limit (deploymentsTruncated) read the newest deployments
  // only: how many it read is not the environment's total, and is never said as one.
  const truncated = snapshot.deploymentsTruncated === true;
  const read = snapshot.deployments.length;
  blocks.push({ type: 'rows', rows, total: read, ...(truncated ? { truncated } : {}) });
  if (read === 0) {
    blocks.push({
      type: 'text',
      spans: [
        t(
          truncated
            ? `No deployment of ${env.slug} among the newest deployments read; the platform has more.`
            : `No deployments in ${env.slug} yet.`,
        ),
      ],
    });
  }

  const routes = opts.routing.filter((r) => r.environment === env.slug);
  blocks.push({
    type: 'list',
    label: `Domains (${routes.length})`,
    items: routes.map((r) => ({
      spans: [c(r.hostname), t(' → '), r.deploymentId === undefined ? i('nothing') : c(r.deploymentId)],
    })),
    empty: 'No domains.',
  });

  // The history read is a window of it (Flow's recentAudit), not its size: labels say how many of
  // the lines are shown ("latest 5"), never a total.
  const truncatedAudit = opts.auditTruncated === true;
  // Any code an entry holds: one this version does not know reads "Not done" (refusalTitle).
  const headline = (code: string) => refusalTitle(code as RefusalCode);
  const history = historyLists({
    audit: opts.audit,
    liveHistory: snapshot.liveHistory,
    auditTruncated: truncatedAudit,
    ...(opts.redisAheadMs === undefined ? {} : { redisAheadMs: opts.redisAheadMs }),
    refusalTitle: headline,
  });
  const latest = (label: string, items: readonly ListItem[], max: number) => {
    const shown = items.slice(0, Math.max(0, max));
    const cut = items.length > shown.length;
    // (`latest`: a renderer collapsing them says "…and N more", never their count as a total.)
    return {
      label: cut ? `${label} (latest ${shown.length})` : label,
      items: shown,
      ...(cut || truncatedAudit ? { latest: true } : {}),
    };
  };
  blocks.push({
    type: 'list',
    ...latest('Switches', history.switches, opts.switchLimit ?? 5),
    empty: truncatedAudit ? 'No switch among the newest history entries read.' : 'No switch recorded yet.',
  });
  if (history.others.length > 0) {
    blocks.push({
      type: 'list',
      ...latest('Other requests', history.others, opts.otherLimit ?? 4),
      empty: '',
    });
  }
  const refusals = [...(opts.refusals ?? [])].sort((a, z) => z.at - a.at);
  if (refusals.length > 0) {
    blocks.push({
      type: 'list',
      label: `Refused clicks (latest ${refusals.length})`,
      items: refusals.map((e) => refusedClickItem(e, headline)),
      latest: true,
      empty: '',
    });
  }

  const title = `Deployments · ${env.slug} (${snapshot.project.name})`;
  const summary = `${env.slug}: ${current === undefined ? 'nothing live' : `${current.id} is live`}${env.rolledBack ? ' (rolled back)' : ''}; ${truncated ? `${read}+ deployments` : `${read} deployment(s)`}.`;
  return {
    kind: 'deployments',
    tone: env.rolledBack ? 'warning' : 'neutral',
    title,
    summary,
    blocks,
    buttons: [],
    ephemeral: false,
  };
}

// ───────────────────────────── refusal & usage ─────────────────────────────

/**
 * Headline per refusal code. Partial on purpose: other modules add codes (platform adapters did), and a
 * new code must still render, with the generic headline, rather than break every surface.
 */
const REFUSAL_TITLE: Readonly<Partial<Record<RefusalCode, string>>> = {
  [RefusalCode.unknownEnvironment]: 'Unknown environment',
  [RefusalCode.unknownDeployment]: 'Unknown deployment',
  [RefusalCode.targetIsCurrent]: 'Already live',
  [RefusalCode.targetNotReady]: 'Target not ready',
  [RefusalCode.targetStopped]: 'Target stopped',
  [RefusalCode.targetWrongEnvironment]: 'Wrong environment',
  [RefusalCode.noCurrentDeployment]: 'Nothing live',
  [RefusalCode.noRollbackTarget]: 'Nothing to roll back to',
  [RefusalCode.planStale]: 'Plan out of date',
  [RefusalCode.notProduction]: 'Not a production environment',
  [RefusalCode.forbidden]: 'Not allowed',
  [RefusalCode.selfApproval]: 'Someone else must approve',
  [RefusalCode.operationInProgress]: 'A switch is already running',
  [RefusalCode.invalidInput]: 'Invalid input',
  [RefusalCode.tooManyDomains]: 'Too many domains for one switch',
  [RefusalCode.unsupportedDomain]: 'A domain Switchyard cannot verify',
};

function refusalTitle(code: RefusalCode): string {
  return REFUSAL_TITLE[code] ?? 'Not done';
}

/** What a usage message needs: the command, valid environments, recent deployments. */
export interface UsageInput {
  readonly command: UsageCommand;
  readonly validEnvironments: readonly string[];
  readonly recentDeployments?: readonly Deployment[];
}

const USAGE: Readonly<Record<UsageCommand, { args: readonly UsageArg[]; about: string }>> = {
  rollback: {
    args: [
      { name: 'environment', placeholder: 'environment', required: true },
      { name: 'deployment', placeholder: 'deployment-id', required: false },
    ],
    about:
      'Rolls an environment back to an earlier deployment (default: the one live before the current one). You confirm before anything moves.',
  },
  promote: {
    args: [{ name: 'target', placeholder: 'deployment-id | environment', required: true }],
    about:
      'Moves the domains to a deployment and restores automatic deploys (given an environment: its newest ready deployment; while rolled back, one ready since the rollback, never the one rolled back from, else it only resumes automatic deploys). You confirm before anything moves.',
  },
  deployments: {
    args: [{ name: 'environment', placeholder: 'environment', required: true }],
    about: 'Lists recent deployments, which one is live, and the rolled-back state.',
  },
};

/** "Valid environments: production, preview", for usage. */
function validEnvironmentsBlock(validEnvironments: readonly string[]): ViewBlock {
  return {
    type: 'text',
    spans: [
      b('Valid environments: '),
      ...(validEnvironments.length === 0
        ? [t('none configured')]
        : validEnvironments.flatMap((e, k) => (k === 0 ? [c(e)] : [t(', '), c(e)]))),
    ],
  };
}

function usageBlocks(u: UsageInput): ViewBlock[] {
  const spec = USAGE[u.command];
  const blocks: ViewBlock[] = [
    { type: 'usage', command: u.command, args: spec.args },
    { type: 'text', spans: [t(spec.about)] },
    validEnvironmentsBlock(u.validEnvironments),
  ];
  if (u.recentDeployments !== undefined && u.command !== 'deployments') {
    blocks.push({
      type: 'list',
      label: 'Recent deployments',
      items: u.recentDeployments.map((d) => {
        const subject = commitSubject(d.commit.message, 80);
        return {
          spans: [
            c(d.id),
            t(' '),
            c(shortSha(d.commit.sha)),
            t(` ${d.branch} · ${d.status}`),
            ...(subject === '' ? [] : [t(` · ${subject}`)]),
          ],
        };
      }),
      empty: 'No deployments yet.',
    });
  }
  return blocks;
}

/** A refusal (a rule's "no"), shown only to the person who asked; optionally with the command's usage. */
export function refusalView(refusal: Refusal, usage?: UsageInput): MessageView {
  const title = refusalTitle(refusal.code);
  // "Unknown environment: Unknown environment "staging"…" says it twice: a message that starts with
  // the title is the summary as it is.
  const repeats = refusal.message.toLowerCase().startsWith(title.toLowerCase());
  return {
    kind: 'refusal',
    tone: 'warning',
    title,
    summary: repeats ? refusal.message : `${title}: ${refusal.message}`,
    blocks: [
      { type: 'text', spans: [t(refusal.message)], tone: 'warning' },
      { type: 'context', spans: [t('Nothing was changed. Code: '), c(refusal.code)] },
      ...(usage === undefined ? [] : usageBlocks(usage)),
    ],
    buttons: [],
    ephemeral: true,
  };
}

/** Usage of a command with the valid environments (and recent deployments), for no or bad arguments. */
export function usageView(
  command: UsageCommand,
  validEnvironments: readonly string[],
  recentDeployments?: readonly Deployment[],
): MessageView {
  const input: UsageInput = {
    command,
    validEnvironments,
    ...(recentDeployments === undefined ? {} : { recentDeployments }),
  };
  return {
    kind: 'usage',
    tone: 'info',
    title: `How to use /${command}`,
    summary: `Usage: ${usageLine(command, USAGE[command].args)}`,
    blocks: usageBlocks(input),
    buttons: [],
    ephemeral: true,
  };
}

/**
 * Every command with its usage and the valid environments: the answer to `/help`, and to a command
 * Switchyard does not have, which `problem` names first (with the command it looks like, if any).
 */
export function commandsView(validEnvironments: readonly string[], problem?: string): MessageView {
  const commands = Object.keys(USAGE) as UsageCommand[];
  const list = commands.map((command) => usageLine(command, USAGE[command].args)).join(' · ');
  return {
    kind: 'usage',
    tone: problem === undefined ? 'info' : 'warning',
    title: problem === undefined ? 'Switchyard commands' : 'Unknown command',
    summary: problem === undefined ? `Commands: ${list}` : `${problem} Commands: ${list}`,
    blocks: [
      ...(problem === undefined
        ? []
        : [{ type: 'text' as const, tone: 'warning' as const, spans: [t(problem)] }]),
      ...commands.flatMap((command): ViewBlock[] => [
        { type: 'usage', command, args: USAGE[command].args },
        { type: 'text', spans: [t(USAGE[command].about)] },
      ]),
      validEnvironmentsBlock(validEnvironments),
    ],
    buttons: [],
    ephemeral: true,
  };
}

// ───────────────────────────── notices (issue 9) ─────────────────────────────

/**
 * A deployment as `id (sha branch: subject — author)`, leaving out what the platform does not say (an
 * Unkey deployment: `id (sha branch)`), or just its id when that is all there is.
 */
export function deploymentSpans(d: DeploymentRef): Span[] {
  if (!isFull(d)) return [c(d.id)];
  const sha = shortSha(d.commit.sha);
  const subject = commitSubject(d.commit.message, 100);
  const author = d.commit.author.trim();
  const inside: Span[] = [
    ...(sha === '' ? [] : [c(sha)]),
    ...(d.branch === '' ? [] : [t(sha === '' ? d.branch : ` ${d.branch}`)]),
  ];
  if (subject !== '') inside.push(t(inside.length === 0 ? subject : `: ${subject}`));
  if (author !== '') inside.push(t(inside.length === 0 ? author : ` — ${author}`));
  return inside.length === 0 ? [c(d.id)] : [c(d.id), t(' ('), ...inside, t(')')];
}

/**
 * A compact notice for a deployment or traffic event: deployment ready or failed, traffic moved outside
 * Switchyard, a deployment ready but not live while rolled back (with Promote), and the periodic
 * "still rolled back" reminder (with Promote or Resume).
 */
export function noticeView(event: NoticeEvent, opts: { now: number }): MessageView {
  const env = event.environment;
  switch (event.type) {
    case 'deployment.ready': {
      const title = event.live
        ? `${event.deployment.id} is live on ${env}`
        : `${event.deployment.id} is ready on ${env}`;
      return notice('success', title, `${title}.`, [
        {
          type: 'text',
          spans: [
            ...deploymentSpans(event.deployment),
            t(event.live ? ' is ready and serving.' : ' is ready.'),
          ],
        },
      ]);
    }
    case 'deployment.failed': {
      const title = `${event.deployment.id} failed on ${env}`;
      return notice('danger', title, `${title}.`, [
        {
          type: 'text',
          spans: [
            ...deploymentSpans(event.deployment),
            t(' failed to build or start.'),
            ...(event.reason === undefined ? [] : [t(' '), t(event.reason)]),
            t(' Traffic did not move.'),
          ],
        },
      ]);
    }
    case 'traffic.moved': {
      const how =
        event.via === 'deploy'
          ? 'an automatic deploy'
          : event.via === 'rollback'
            ? 'a rollback'
            : 'a promote';
      const title = `Traffic on ${env} moved to ${event.to.id}`;
      return notice('warning', title, `${title} outside Switchyard.`, [
        {
          type: 'text',
          spans: [
            b(`${env} now serves `),
            ...deploymentSpans(event.to),
            ...(event.from === undefined ? [] : [t(', before: '), c(event.from.id)]),
            t(
              `. This happened outside Switchyard (${how}${event.by === undefined ? '' : ` by ${event.by}`}, e.g. from the dashboard or API).`,
            ),
          ],
        },
      ]);
    }
    case 'ready.not_live': {
      const title = `${event.deployment.id} is ready but not live`;
      const btn = button(
        truncate(`Promote ${event.deployment.id}`, 75),
        { kind: 'promote', ref: { environment: env, deploymentId: event.deployment.id } },
        'primary',
      );
      return notice(
        'warning',
        title,
        `${event.deployment.id} is ready but not live: ${env} is rolled back to ${event.rolledBackTo.id}.`,
        [
          {
            type: 'text',
            spans: [
              ...deploymentSpans(event.deployment),
              t(' is ready '),
              b('but not live'),
              t(`: ${env} is rolled back to `),
              c(event.rolledBackTo.id),
              t('.'),
            ],
          },
          ...rolledBackContext(event.rolledBackAt, event.rolledBackBy, opts.now),
          { type: 'text', spans: [t('Promote it to move the domains and turn automatic deploys back on.')] },
        ],
        present([btn]),
      );
    }
    case 'rolled_back.reminder': {
      const title = `${env} is still rolled back to ${event.current.id}`;
      const waiting = event.waiting;
      const btn =
        waiting === undefined
          ? button(
              'Resume automatic deploys',
              { kind: 'promote', ref: { environment: env, deploymentId: event.current.id } },
              'primary',
            )
          : button(
              truncate(`Promote ${waiting.id}`, 75),
              { kind: 'promote', ref: { environment: env, deploymentId: waiting.id } },
              'primary',
            );
      const blocks: ViewBlock[] = [
        {
          type: 'text',
          spans: [
            b(`${env} has been rolled back to `),
            c(event.current.id),
            b(` for ${longDuration(opts.now - event.since)}`),
            t(` (since ${formatTime(event.since)}${event.by === undefined ? '' : `, by ${event.by}`}).`),
            t(' New pushes get no domains until someone promotes.'),
          ],
        },
      ];
      if (waiting !== undefined) {
        blocks.push({ type: 'text', spans: [t('Waiting to go live: '), ...deploymentSpans(waiting)] });
      }
      return notice(
        'warning',
        title,
        `${title} (for ${longDuration(opts.now - event.since)}).`,
        blocks,
        present([btn]),
      );
    }
    default:
      return assertNever(event, 'notice event');
  }
}

function rolledBackContext(at: number | undefined, by: string | undefined, now: number): ViewBlock[] {
  if (at === undefined && by === undefined) return [];
  return [
    {
      type: 'context',
      spans: [
        t('Rolled back'),
        ...(at === undefined ? [] : [t(` since ${formatTime(at)} (${longDuration(now - at)} ago)`)]),
        ...(by === undefined ? [] : [t(` by ${by}`)]),
      ],
    },
  ];
}

/**
 * How a rolled-back period ended, as far as the platform (its history, its events) and the audit tell:
 * `at` and `by` are absent when nothing says them. `uncertain`: only the state after the end is known,
 * not which deployments were live during the period (a platform without history, and an audit that
 * could not be read or holds a switch that did not succeed), so a "ready but not live" notice is not
 * said to have not gone live.
 */
export type RolledBackEnd =
  | {
      /** Traffic moved to `to`, and automatic deploys are on again. */
      readonly kind: 'promoted';
      readonly to: string;
      readonly at?: number;
      readonly by?: string;
      readonly uncertain?: true;
    }
  | {
      /** Automatic deploys are on again and the deployment rolled back to stayed live (no domain moved). */
      readonly kind: 'resumed';
      readonly at?: number;
      readonly by?: string;
      readonly uncertain?: true;
      /**
       * Seen only once it had happened too: `deployed` then went live by an automatic deploy, taking over
       * from the deployment rolled back to (which is no longer live).
       */
      readonly deployed?: string;
    }
  | {
      /** Rolled back again, to `to` (possibly the same deployment): a new rolled-back period began. */
      readonly kind: 'rolled_back';
      readonly to: string;
      readonly at?: number;
      readonly by?: string;
      readonly uncertain?: true;
    }
  | {
      /**
       * No longer rolled back, and nothing tells how: `live` is the deployment live now (absent: none
       * is), which a promote or an automatic deploy after a resume may have put there.
       */
      readonly kind: 'over';
      readonly live?: string;
    };

/** A "ready but not live" notice or a rolled-back reminder whose rolled-back period is over. */
export type ClosedNotice =
  | {
      readonly type: 'ready.not_live';
      readonly environment: string;
      readonly deployment: DeploymentRef;
      readonly rolledBackTo: DeploymentRef;
      readonly end: RolledBackEnd;
    }
  | {
      readonly type: 'rolled_back.reminder';
      readonly environment: string;
      readonly current: DeploymentRef;
      /** Unix ms when the environment was rolled back (as the reminder said). */
      readonly since: number;
      readonly by?: string;
      readonly end: RolledBackEnd;
    };

/** " at 2026-11-29 12:03 UTC by Alice", or the part of it that is known. */
function whenBy(at: number | undefined, by: string | undefined): string {
  return `${at === undefined ? '' : ` at ${formatTime(at)}`}${by === undefined ? '' : ` by ${by}`}`;
}

/** `to` as a time of day when it falls on the same UTC date as `from` (ranges read shorter). */
function rangeEnd(from: number, to: number): string {
  const full = formatTime(to);
  return formatTime(from).slice(0, 10) === full.slice(0, 10) ? full.slice(11) : full;
}

/** What ended a rolled-back period, as spans after "<env> was …" ("promoted to dep_z", …). */
function endSpans(end: RolledBackEnd, environment: string, rolledBackTo: string): Span[] {
  switch (end.kind) {
    case 'promoted':
      return [b('promoted to '), c(end.to)];
    case 'resumed':
      return [b('automatic deploys resumed')];
    case 'rolled_back':
      return end.to === rolledBackTo
        ? [b('rolled back again to '), c(end.to)]
        : [b('rolled back to '), c(end.to)];
    case 'over':
      return [
        t(`${environment} is `),
        b('no longer rolled back'),
        ...(end.live === undefined ? [] : [t('; '), c(end.live), t(' is live')]),
      ];
    default:
      return assertNever(end, 'rolled-back end');
  }
}

/** What followed a resume before it was seen (`deployed`), as spans after the end: "; then dep_z went live…". */
function deployedSpans(end: RolledBackEnd): Span[] {
  if (end.kind !== 'resumed' || end.deployed === undefined) return [];
  return [t('; then '), c(end.deployed), t(' went live by an automatic deploy')];
}

/**
 * The closed view of a "ready but not live" notice or a reminder once the rolled-back period it was
 * posted in is over (promoted, automatic deploys resumed, or rolled back again): what happened, in one
 * line, without buttons (they would act on a state that is gone).
 */
export function closedNoticeView(closed: ClosedNotice): MessageView {
  const env = closed.environment;
  const end = closed.end;
  const at = end.kind === 'over' ? undefined : end.at;
  const by = end.kind === 'over' ? undefined : end.by;
  switch (closed.type) {
    case 'ready.not_live': {
      const id = closed.deployment.id;
      const was: ViewBlock = {
        type: 'context',
        spans: [
          t(`Was ready but not live while ${env} was rolled back to `),
          c(closed.rolledBackTo.id),
          t('.'),
        ],
      };
      if ((end.kind === 'promoted' || end.kind === 'rolled_back') && end.to === id) {
        const how = end.kind === 'promoted' ? 'promoted' : 'rolled back to it';
        const title = `${id} went live on ${env}`;
        return notice('success', title, `${title} (${how}${whenBy(at, by)}).`, [
          {
            type: 'text',
            spans: [
              ...deploymentSpans(closed.deployment),
              t(' went live: '),
              b(how),
              t(`${whenBy(at, by)}.`),
            ],
          },
          was,
        ]);
      }
      const rolledBackTo = closed.rolledBackTo.id;
      if (end.kind === 'over' || end.uncertain === true) {
        // Nothing says whether it went live during the period: say how the period ended, no more.
        const how: Span[] =
          end.kind === 'over'
            ? end.live === undefined
              ? []
              : [t('; '), c(end.live), t(' is live')]
            : end.kind === 'resumed'
              ? [
                  t(': '),
                  ...endSpans(end, env, rolledBackTo),
                  t(` on ${env}${whenBy(at, by)}; `),
                  ...(end.deployed === undefined
                    ? [c(rolledBackTo), t(' is live')]
                    : [t('then '), c(end.deployed), t(' went live by an automatic deploy')]),
                ]
              : [t(`: ${env} was `), ...endSpans(end, env, rolledBackTo), t(whenBy(at, by))];
        const title = `${id}: the rollback of ${env} ended`;
        const ended: Span[] = [t(`the rollback of ${env} to `), c(rolledBackTo), t(' ended'), ...how];
        return notice('neutral', title, `${id}: ${plainText(ended)}.`, [
          { type: 'text', spans: [...deploymentSpans(closed.deployment), t(': '), ...ended, t('.')] },
          was,
        ]);
      }
      const reason: Span[] =
        end.kind === 'resumed'
          ? [
              ...endSpans(end, env, rolledBackTo),
              t(` on ${env}${whenBy(at, by)}; `),
              c(rolledBackTo),
              t(' stayed live'),
              ...(end.deployed === undefined
                ? []
                : [t(' until '), c(end.deployed), t(' went live by an automatic deploy')]),
            ]
          : [t(`${env} was `), ...endSpans(end, env, rolledBackTo), t(whenBy(at, by))];
      return notice(
        'neutral',
        `${id} did not go live on ${env}`,
        `${id} did not go live: ${plainText(reason)}.`,
        [
          {
            type: 'text',
            spans: [...deploymentSpans(closed.deployment), t(' did not go live: '), ...reason, t('.')],
          },
          was,
        ],
      );
    }
    case 'rolled_back.reminder': {
      const id = closed.current.id;
      const title = `${env} was rolled back to ${id}`;
      const range =
        at === undefined
          ? `from ${formatTime(closed.since)}`
          : `from ${formatTime(closed.since)} to ${rangeEnd(closed.since, at)} (${longDuration(at - closed.since)})`;
      const ended = endSpans(end, env, id);
      const then = deployedSpans(end);
      return notice('neutral', title, `${title} ${range} (${plainText([...ended, ...then])}).`, [
        {
          type: 'text',
          spans: [
            b(`${env} was rolled back to `),
            c(id),
            t(` ${range}${closed.by === undefined ? '' : `, by ${closed.by}`}. Ended: `),
            ...ended,
            ...(by === undefined ? [] : [t(` by ${by}`)]),
            ...then,
            t('.'),
          ],
        },
      ]);
    }
    default:
      return assertNever(closed, 'closed notice');
  }
}

function notice(
  tone: Tone,
  title: string,
  summary: string,
  blocks: ViewBlock[],
  buttons: ButtonView[] = [],
): MessageView {
  return { kind: 'notice', tone, title, summary, blocks, buttons, ephemeral: false };
}
