/**
 * The interaction service every surface calls (Slack, Discord, the console, alert suggestions), so the
 * rules of the flow exist once: plan → confirm (permission, two-person rule, freshness, idempotent
 * enqueue) → approve / cancel / replan, the `/deployments` view's data and the deployments an
 * autocomplete offers. Surfaces stay thin: parse, call Flow, render the returned value, reply.
 *
 * Every method returns a value for user-level outcomes (unknown environment, forbidden, stale plan,
 * expired, self-approval…) and throws only for faults (Redis or the platform unreachable), which the
 * surface wraps once at its edge. A refused action changes nothing: no state transition, nothing
 * enqueued; only an audit entry saying who was refused and why, once per person, plan and reason
 * however often they click (`AuditLog.appendRefusal`: apart from the history, which refusals never
 * evict).
 *
 * Concurrency: state lives in the PlanStore (Redis) and every move is one atomic compare-and-set, so any
 * number of replicas handling the same click make one transition and one job. A click decides on the
 * record it read (who asked and who confirmed, permission, self-approval, freshness, expiry), and its
 * move names that record (`expect`: generation and revision): if the plan moved or was replaced by a new
 * request meanwhile, nothing is set, and the click reads the record again and decides afresh on it (a
 * double click is told it joined the same job; a permission that only held for the old record is
 * refused). A decision never lands on a record it did not check.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { type AuditEntry, clipMessage, type RefusalAppend, type RefusalEntry } from './audit.js';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import type { Config } from './config.js';
import { keepsNoLiveHistory, type OwnRecord } from './domain/own-record.js';
import {
  buildPlan,
  checkFresh,
  checkTarget,
  idList,
  isAlreadyDone,
  looksLikeDeploymentRef,
  matchDeployments,
  type Plan,
  type PlanExpectation,
  resolveDeployment,
  resolveEnvironment,
} from './domain/plan.js';
import { type Refusal, RefusalCode } from './domain/result.js';
import { closest } from './domain/spelling.js';
import { assertNever, type Deployment, type EnvironmentSnapshot, PlanAction } from './domain/types.js';
import { RefusalError, SwitchyardError } from './errors.js';
import type { Logger } from './log.js';
import { silentLogger } from './log.js';
import { ownRecordFromAudit } from './own-record-audit.js';
import {
  type ActingUser,
  canAct,
  linkedClause,
  sameActor,
  samePerson,
  twoPersonRuleOn,
  unknownEnvironmentKeys,
} from './permissions.js';
import {
  type AlertContext,
  type AlertGroup,
  OPEN_STATES,
  PLAN_ID_PATTERN,
  type PlanPatch,
  type PlanRecord,
  PlanState,
  type PlanStore,
  PlanUnreadableError,
  type TransitionResult,
} from './plan-store.js';
import type { DeployPlatform, Route } from './platform/port.js';
import {
  type Actor,
  actorSchema,
  type Grant,
  type MessageRef,
  messageRefSchema,
  type Progress,
  progressReported,
} from './progress.js';
import {
  type ActiveSwitch,
  type EnqueueResult,
  jobDataIssues,
  jobIdForPlan,
  messageRefKey,
  type SwitchJobInput,
  switchJobSchema,
} from './queue.js';
import { personName } from './views/format.js';

/** What Flow hands the switch queue: `switchJobSchema`'s input (src/queue.ts). */
export type SwitchJobRequest = SwitchJobInput;

/** The part of `SwitchQueue` (src/queue.ts) Flow uses; tests may pass any object of this shape. */
export interface FlowQueue {
  /** Idempotent per plan id: every enqueue of one plan lands on one job; the caller learns if it joined. */
  enqueue(data: SwitchJobRequest): Promise<EnqueueResult>;
  /** Attaches more chat messages to an enqueued job (a surface posting after the click). */
  addMessages?(jobId: string, refs: readonly MessageRef[]): Promise<boolean>;
  /** A job's progress; an `outcome` means it ended. */
  progress?(jobId: string): Promise<Progress | undefined>;
  /**
   * Whether a job ended for good (BullMQ `completed` or `failed`) even when its progress cannot say so
   * (its data or progress unreadable by this version); a queue without it is asked `progress` only.
   */
  ended?(jobId: string): Promise<boolean>;
  /** The waiting or running switch of an environment, for `/deployments`. */
  activeForEnvironment?(environment: string): Promise<ActiveSwitch | undefined>;
}

/** One audit entry (`auditEntrySchema`, src/audit.ts). */
export type FlowAuditEntry = AuditEntry;

/** An entry of the `/deployments` history: with the time Redis wrote it, when the audit says. */
export type HistoryEntry = FlowAuditEntry & { readonly writtenAt?: number };

/** The `/deployments` history read (`Flow.historyWindow`). */
interface HistoryWindow {
  readonly entries: readonly HistoryEntry[];
  readonly complete: boolean;
  /** Redis's clock less Flow's at the read, when the entries say when Redis wrote them. */
  readonly redisAheadMs?: number;
}

/** The part of `AuditLog` (src/audit.ts) Flow uses. */
export interface FlowAudit {
  append(entry: FlowAuditEntry): Promise<unknown>;
  /** Most recent entries of an environment, newest first. */
  recent(environment: string, limit: number): Promise<readonly FlowAuditEntry[]>;
  /**
   * `recent`, with the time Redis wrote each entry and Redis's time at the read (one clock for every
   * writer: `/deployments` matches the platform's moves to switches on it, whatever the worker's clock
   * says), saying whether the read reached the oldest entry kept (`/deployments` judges moves outside
   * Switchyard only as far back as it read). Without it, entries are compared by their writers' times,
   * and a read that came back short is the whole history.
   */
  recentWindow?(
    environment: string,
    limit: number,
  ): Promise<{
    readonly entries: readonly { readonly entry: FlowAuditEntry; readonly writtenAt: number }[];
    /** Redis's time at the read, on the clock `writtenAt` is on. */
    readonly readAt: number;
    readonly complete: boolean;
  }>;
  /**
   * Records a refused click once per person, plan generation and code within a window, apart from the
   * history; an audit log without it is given refusals with `append`.
   */
  appendRefusal?(entry: RefusalEntry, generation?: string): Promise<RefusalAppend>;
  /** Most recent refused clicks of an environment (`appendRefusal`), newest first. */
  refusals?(environment: string, limit: number): Promise<readonly FlowAuditEntry[]>;
}

export interface FlowOptions {
  readonly platform: DeployPlatform;
  readonly queue: FlowQueue;
  readonly plans: PlanStore;
  readonly audit: FlowAudit;
  readonly config: Pick<Config, 'platform' | 'file'>;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /**
   * How many of an environment's newest audit entries `/deployments` reads (one read): a switch
   * writes up to six, and the view groups them into one line per switch (src/views/history.ts), so
   * the window must hold the last several switches among expiries and cancelled requests.
   */
  readonly recentAudit?: number;
  /**
   * How many refused clicks `/deployments` reads beside the history, at most: however many there are,
   * the history's newest entries stay in view.
   */
  readonly recentRefusals?: number;
  /**
   * How long `deploymentChoices` (autocomplete) answers from an environment's last snapshot, in ms of
   * `clock`. 0: every call reads (concurrent calls still share one read).
   */
  readonly choicesCacheMs?: number;
  /**
   * Called with a finished plan record (expired, cancelled, stale, or enqueued whose job ended) that a
   * new request for the same switch replaced, when it had alert suggestions: their messages can then
   * be shown closed (the new plan's messages are new ones).
   */
  readonly onPlanReplaced?: (old: PlanRecord) => void;
}

/** Defaults for Flow's optional options (STYLE 6). */
export const flowDefaults = {
  clock: systemClock,
  logger: silentLogger,
  recentAudit: 300,
  recentRefusals: 2,
  // Typing an id in Discord's autocomplete sends a request every few keystrokes: a burst shares one
  // platform read, and a switch shows up in the choices at most this late.
  choicesCacheMs: 5_000,
} as const satisfies Required<
  Pick<FlowOptions, 'clock' | 'logger' | 'recentAudit' | 'recentRefusals' | 'choicesCacheMs'>
>;

/** Extra inputs of `plan`. */
export interface PlanOptions {
  /** Chat messages already showing the plan (usually attached later with `attachMessage`). */
  readonly messages?: readonly MessageRef[];
  /** The alert this plan answers (suggestions requested by the system actor). */
  readonly alert?: AlertContext;
  /**
   * Refuse (`suggestion_dismissed`) when someone dismissed the alert suggestion of this very switch
   * (same plan id: same current deployment, target and domains), for as long as its record is kept:
   * alerts then stop suggesting it. People asking with /rollback are never refused this way.
   */
  readonly unlessDismissed?: boolean;
  /**
   * The person who asked for this fresh plan of an alert's suggestion ("Make a fresh plan"): the plan
   * stays the alert's (its asker the system, so the person may still confirm or approve it under the
   * two-person rule), and the audit's words name them.
   */
  readonly refreshedBy?: Actor;
}

/** Result of `plan` / `replan`. `created` is false when the same switch was already asked for. */
export type PlanOutcome =
  | { readonly ok: true; readonly plan: Plan; readonly record: PlanRecord; readonly created: boolean }
  | { readonly ok: false; readonly refusal: Refusal };

/** What the environment looks like now, when a plan turned out stale. */
export interface CurrentState {
  readonly deploymentId: string | undefined;
  readonly deployment: Deployment | undefined;
  readonly rolledBack: boolean;
}

/** Result of `confirm` and `approve`. */
export type ClickOutcome =
  | {
      readonly status: 'enqueued';
      readonly jobId: string;
      /**
       * False for exactly the one click that moved the plan to `enqueued`; true for every other click
       * (double clicks, retried deliveries, other replicas), which joined that job.
       */
      readonly joined: boolean;
      readonly record: PlanRecord;
    }
  | { readonly status: 'awaiting_approval'; readonly record: PlanRecord }
  | { readonly status: 'refused'; readonly refusal: Refusal; readonly record: PlanRecord | undefined }
  | {
      readonly status: 'stale';
      readonly refusal: Refusal;
      readonly current: CurrentState;
      readonly record: PlanRecord;
    }
  | {
      readonly status: 'expired';
      readonly planId: string;
      readonly message: string;
      readonly record: PlanRecord | undefined;
    }
  | { readonly status: 'cancelled'; readonly record: PlanRecord };

/** Result of `cancel`: like a click, plus `running` when the switch was already enqueued. */
export type CancelOutcome =
  | Exclude<ClickOutcome, { status: 'enqueued' } | { status: 'awaiting_approval' }>
  | {
      readonly status: 'running';
      /** Absent in the moment between the winning click's claim and its job id being stored. */
      readonly jobId?: string;
      readonly message: string;
      readonly record: PlanRecord;
    };

/** Result of `attach`. */
export interface AttachOutcome {
  /** False when the plan is gone (or follows as many messages as it may). */
  readonly attached: boolean;
  /** The job the message now follows: the plan is enqueued and its job's id stored. */
  readonly jobId?: string;
}

/** Data of the `/deployments` view. */
export type DeploymentsOutcome =
  | {
      readonly ok: true;
      readonly environment: string;
      readonly snapshot: EnvironmentSnapshot;
      readonly routes: readonly Route[];
      /** The history (requested, approved, started, succeeded, failed, cancelled…), newest first. */
      readonly recent: readonly HistoryEntry[];
      /** `recent` filled the read (`recentAudit`): older entries may exist that were not read. */
      readonly recentTruncated: boolean;
      /**
       * How far Redis's clock was ahead of Flow's (negative: behind) when `recent` was read, when its
       * entries say when Redis wrote them (`writtenAt`): a live history move's time plus this is its
       * time on Redis's clock.
       */
      readonly redisAheadMs?: number;
      /** The newest refused clicks (a list of their own: they never take a history line). */
      readonly refusals: readonly FlowAuditEntry[];
      /** The switch waiting or running for this environment, when the queue can tell. */
      readonly active: ActiveSwitch | undefined;
    }
  | { readonly ok: false; readonly refusal: Refusal };

/** Data of the deployment choices an autocomplete offers (`deploymentChoices`). */
export type DeploymentChoicesOutcome =
  | {
      readonly ok: true;
      readonly environment: string;
      /** Newest first, as the platform's snapshot lists them. */
      readonly deployments: readonly Deployment[];
      readonly currentDeploymentId: string | undefined;
    }
  | { readonly ok: false; readonly refusal: Refusal };

/**
 * The longest a snapshot read still in flight is shared with later `deploymentChoices` calls: past it
 * (a read hung beyond any adapter's request timeout), the next call reads afresh instead of waiting on
 * it for ever.
 */
const SHARED_READ_MAX_MS = 60_000;

/** Recent deployments of each environment a "neither an environment nor a deployment" refusal names. */
const RECENT_PER_ENVIRONMENT = 5;

/** One environment's snapshot read shared by `deploymentChoices` calls (see `sharedSnapshot`). */
interface SharedRead {
  readonly read: Promise<SnapshotOutcome>;
  /** `clock` time after which the read is not reused. */
  expiresAt: number;
}

type SnapshotOutcome = { ok: true; value: EnvironmentSnapshot } | { ok: false; refusal: Refusal };

/** Plans `/deployments` checks for expiry at most (`Flow.expireListed`); the sweep expires the rest. */
const EXPIRY_CHECKS_MAX = 5;

/** Plans a sweep expires at most (`Flow.expireDue`); the rest wait for the next sweep. */
const EXPIRE_SWEEP_LIMIT = 100;

/** An alert's id in a plan's alert list (PlanStore's `alertIdSchema`). */
const ALERT_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Code of the `failed` audit entry of an approval that could not be queued (the plan is open again). */
export const ENQUEUE_FAILED = 'enqueue_failed';

/** Code of the `cancelled` audit entry of a Dismiss that closed one of the plan's messages only. */
export const COPY_DISMISSED = 'copy_dismissed';

/**
 * How long after its claim (open → enqueued) a plan may lack a job id before the claim counts as
 * abandoned: far longer than the winning click takes (a few fail-fast Redis commands, each bounded by
 * 5 s), so only a winner whose process died in between, whose enqueue and undo both failed (Redis
 * went away), or whose job was queued but whose write of the job id failed (and no read in its process
 * stored it since, see `UnstoredJob`), is noticed. The next read of the plan then settles it (see
 * `settleAbandoned`): a job that exists has its id stored.
 */
const ORPHANED_CLAIM_MS = 60_000;

/**
 * A job this process queued for a claim whose id it could not write on the plan right after (Redis
 * failed on that one write): the switch is queued, so the click was answered as such, and the id is
 * written by the next read of the plan in this process (`load`, `jobProgress`, `attach`), on exactly
 * that claim (a record that moved on since is not this claim's any more). Other processes, which
 * cannot tell the job from one of the plan's past under the same id, store it once the claim counts
 * as abandoned (`settleAbandoned`, after ORPHANED_CLAIM_MS).
 */
interface UnstoredJob {
  readonly jobId: string;
  /** Which record the claim is (its `generation` and `revision`, see PlanStore's `expect`). */
  readonly generation: string | undefined;
  readonly revision: number;
  /** `clock` time the write failed (entries past ORPHANED_CLAIM_MS are left to `settleAbandoned`). */
  readonly at: number;
}

/**
 * A click by the person whose own claim is still without a job this long after it was made is a retry
 * of that claim, not a double click: its first click was answered with an error (Redis stalled and
 * the claim's write ran once it resumed), so it settles the claim at once instead of joining a job
 * that does not exist. Longer than a double click; shorter than a retry after a 5 s command timeout.
 */
const OWN_CLAIM_RETRY_MS = 3_000;

/**
 * How many times one click decides again because the plan moved under it before giving up (each time
 * means someone else's click moved it first).
 */
const MAX_REDECISIONS = 8;

/** An actor as surfaces pass it: the person plus the memberships they resolved. */
const actingUserSchema = actorSchema.extend({
  groups: z.array(z.string().min(1)).max(1000).optional(),
  uncheckedGroups: z.array(z.string().min(1)).max(1000).optional(),
  /** Groups the chat service refused to list for good (`RejectedGroup`, src/permissions.ts). */
  rejectedGroups: z
    .array(
      z.object({
        group: z.string().min(1),
        code: z.string().min(1),
        problem: z.string().min(1).max(1000),
      }),
    )
    .max(1000)
    .optional(),
  roles: z.array(z.string().min(1)).max(1000).optional(),
});

/**
 * What a re-read of the platform says about a plan: `stale` only from what the platform shows
 * (checkFresh, isAlreadyDone); `refused` when the platform would not answer (Switchyard's credentials
 * rejected, a platform precondition…), which says nothing about the plan and changes nothing.
 */
type Freshness =
  | { readonly kind: 'fresh' }
  | { readonly kind: 'stale'; readonly refusal: Refusal; readonly current: CurrentState }
  | { readonly kind: 'refused'; readonly refusal: Refusal };

/** Outcome of `dismissCopy`. */
export type DismissCopyOutcome =
  /** This message is closed; the plan stays open on its other messages (audited). */
  | { readonly status: 'dismissed'; readonly record: PlanRecord }
  | { readonly status: 'refused'; readonly refusal: Refusal; readonly record: PlanRecord | undefined }
  /** The plan shows nowhere else, or is not open: Dismiss acts on the whole plan (`dismiss`). */
  | { readonly status: 'whole' };

function invalid(message: string, context: Record<string, unknown>): Refusal {
  return { code: RefusalCode.invalidInput, message, context };
}

/** The surface-independent interaction service (see the module header). */
export class Flow {
  private readonly platform: DeployPlatform;
  private readonly queue: FlowQueue;
  private readonly plans: PlanStore;
  private readonly audit: FlowAudit;
  private readonly config: Pick<Config, 'platform' | 'file'>;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly recentAudit: number;
  private readonly recentRefusals: number;
  private readonly onPlanReplaced: ((old: PlanRecord) => void) | undefined;
  private readonly choicesCacheMs: number;
  /** Snapshot reads `deploymentChoices` shares, per environment slug (see `sharedSnapshot`). */
  private readonly choiceReads = new Map<string, SharedRead>();
  /** Whether the config's environment keys were compared with the platform's (see `slugs`). */
  private keysChecked = false;
  /** Per plan id, the job this process queued whose id is not written on the plan yet (`UnstoredJob`). */
  private readonly unstoredJobs = new Map<string, UnstoredJob>();

  constructor(options: FlowOptions) {
    this.platform = options.platform;
    this.queue = options.queue;
    this.plans = options.plans;
    this.audit = options.audit;
    this.config = options.config;
    this.clock = options.clock ?? flowDefaults.clock;
    this.logger = options.logger ?? flowDefaults.logger;
    this.recentAudit = options.recentAudit ?? flowDefaults.recentAudit;
    this.recentRefusals = options.recentRefusals ?? flowDefaults.recentRefusals;
    this.onPlanReplaced = options.onPlanReplaced;
    this.choicesCacheMs = options.choicesCacheMs ?? flowDefaults.choicesCacheMs;
  }

  /** Slugs of the environments Switchyard may act on, in display order. */
  async environments(): Promise<readonly string[]> {
    return this.slugs();
  }

  /**
   * The platform's environments. The first time they are known, the config's `environments` keys are
   * compared with them: a key naming no environment (a typo such as `prod:`) has an allow list and a
   * two-person rule that apply to nothing, which on the local platform leaves the environment meant open
   * to everyone. Each such key is logged loudly (once per Flow); nothing else changes.
   */
  private async slugs(): Promise<readonly string[]> {
    const slugs = await this.platform.listEnvironments();
    if (!this.keysChecked) {
      this.keysChecked = true;
      for (const unknown of unknownEnvironmentKeys(this.config, slugs)) {
        const log = unknown.leavesOpen.length > 0 ? this.logger.error : this.logger.warn;
        log.call(this.logger, { key: unknown.key, environments: [...slugs] }, unknown.message);
      }
    }
    return slugs;
  }

  /** Whether a second person must approve switches of `environment`. */
  twoPersonRule(environment: string): boolean {
    return twoPersonRuleOn(this.config, environment);
  }

  /**
   * Makes (or joins) a plan for `action` on the environment the user typed, to show as a confirmation.
   * `targetRef` is a deployment id, unique id prefix or commit sha prefix; absent: the default target.
   * For `promote`, `environmentInput` may instead name a deployment (`/promote dep_123`).
   * Anyone may ask for a plan; permission is checked when someone acts on it.
   */
  async plan(
    actorInput: ActingUser,
    action: PlanAction,
    environmentInput: string,
    targetRef?: string,
    opts: PlanOptions = {},
  ): Promise<PlanOutcome> {
    const actor = this.parseActor(actorInput);
    if (!actor.ok) return actor;
    if (action !== PlanAction.rollback && action !== PlanAction.promote) {
      return {
        ok: false,
        refusal: invalid(`Unknown action "${String(action)}": expected rollback or promote.`, { action }),
      };
    }
    const messages: MessageRef[] = [];
    for (const ref of opts.messages ?? []) {
      const parsed = messageRefSchema.safeParse(ref);
      if (!parsed.success) {
        return { ok: false, refusal: invalid(`Invalid message reference: ${parsed.error.message}`, {}) };
      }
      messages.push(parsed.data);
    }
    const slugs = await this.slugs();
    let environment: string;
    let target = targetRef?.trim() === '' ? undefined : targetRef?.trim();
    const resolved = resolveEnvironment(slugs, environmentInput);
    if (resolved.ok) {
      environment = resolved.value;
    } else if (action === PlanAction.promote && target === undefined && environmentInput.trim() !== '') {
      const found = await this.findDeployment(slugs, environmentInput.trim());
      if (!found.ok) return found;
      environment = found.deployment.environment;
      target = found.deployment.id;
    } else {
      return resolved;
    }
    // `/promote production`: the newest ready deployment, whatever it is when a fresh plan is made.
    const byEnvironment = action === PlanAction.promote && target === undefined;
    const snapshot = await this.snapshot(environment);
    if (!snapshot.ok) return snapshot;
    const own = await this.ownRecord(snapshot.value);
    const built = buildPlan(snapshot.value, {
      action,
      ...(target === undefined ? {} : { target }),
      now: this.clock.now(),
      ...(own === undefined ? {} : { ownRecord: own }),
    });
    if (!built.ok) {
      // A deployment id this environment does not know may be one of another environment's: say so,
      // rather than that it does not exist.
      if (built.refusal.code === RefusalCode.unknownDeployment && target !== undefined) {
        const elsewhere = await this.platform.getDeployment(target).catch(() => undefined);
        const wrong = elsewhere === undefined ? null : checkTarget(snapshot.value, action, elsewhere);
        if (wrong?.code === RefusalCode.targetWrongEnvironment) return { ok: false, refusal: wrong };
      }
      return built;
    }
    // Read through `load`, so a lapsed open plan of this id is expired (and audited) before the new
    // request replaces it, and a claim abandoned without a job is settled (open again, or expired)
    // rather than joined as if its switch were queued.
    const dismissal = opts.unlessDismissed === true ? await this.plans.dismissal(built.value.id) : undefined;
    if (dismissal !== undefined) {
      const by = dismissal.by;
      const at = new Date(dismissal.at).toISOString().slice(0, 16).replace('T', ' ');
      return {
        ok: false,
        refusal: {
          code: RefusalCode.suggestionDismissed,
          message: `${by} dismissed the suggestion to ${action === PlanAction.rollback ? 'roll back' : 'promote'} ${environment} to ${built.value.target.id} (${at} UTC), so alerts no longer suggest it; /${action} ${environment} still offers it.`,
          context: { planId: built.value.id, dismissedAt: dismissal.at },
        },
      };
    }
    // A record under this plan id that cannot be read (a field another version wrote, or one edited by
    // hand) is replaced by this request, as a finished one would be: plan ids being deterministic, it
    // would otherwise refuse every request for the same switch until its key expired (a day or more).
    let previous: PlanRecord | undefined;
    let unreadable: PlanUnreadableError | undefined;
    try {
      previous = await this.load(built.value.id);
    } catch (e) {
      if (!(e instanceof PlanUnreadableError)) throw e;
      unreadable = e;
      this.logger.warn(
        { err: e, planId: e.planId, field: e.field, problem: e.problem },
        'plan record in Redis is unreadable: a new request replaces it',
      );
    }
    // The same switch asked for again after its job ended without success (the platform state did
    // not change, so the plan id is the same): start over instead of joining the failed job.
    const ended =
      previous?.state === 'enqueued' && previous.jobId !== undefined
        ? await this.jobEnded(previous.jobId)
        : false;
    const live =
      previous !== undefined &&
      (OPEN_STATES.includes(previous.state) || (previous.state === PlanState.enqueued && !ended));
    if (!live) {
      const running = await this.runningSwitchOf(built.value);
      if (running !== undefined) {
        for (const ref of messages) await this.attachMessage(running.plan.id, ref);
        const record = (await this.plans.get(running.plan.id)) ?? running;
        return { ok: true, plan: record.plan, record, created: false };
      }
    }
    const { record, created } = await this.plans.create({
      plan: built.value,
      requestedBy: actor.value,
      messages,
      ...(opts.alert === undefined ? {} : { alert: opts.alert }),
      ...(byEnvironment ? { targetFrom: 'environment' as const } : {}),
      ...(ended ? { replaceEnqueued: true } : {}),
      ...(unreadable === undefined ? {} : { replaceUnreadable: unreadable.seen }),
    });
    if (created && previous !== undefined && (previous.suggestions?.length ?? 0) > 0)
      this.onPlanReplaced?.(previous);
    // A person's command that joined someone else's open plan (an alert's suggestion, another
    // person's request): remembered, so the plan names them too rather than only its first asker.
    // Shown only: the two-person rule goes by who asked first and who confirmed (docs/permissions.md).
    const asker = stripMembership(actor.value);
    if (
      !created &&
      OPEN_STATES.includes(record.state) &&
      asker.surface !== 'system' &&
      !sameActor(asker, record.requestedBy) &&
      (record.confirmedBy === undefined || !sameActor(asker, record.confirmedBy)) &&
      (await this.plans.noteAlsoAsked(record, asker))
    ) {
      const noted = (await this.plans.get(record.plan.id)) ?? record;
      return { ok: true, plan: noted.plan, record: noted, created };
    }
    if (!created && opts.alert !== undefined && record.requestedBy.surface !== 'system') {
      // An alert joins a person's request: from now on it is no longer theirs alone to withdraw (see
      // `cancelRefusal`). Listed at once, under the id the alert service lists it by when it posts the
      // suggestion (a no-op then), so no click in between finds the plan the asker's alone. Not open
      // any more (confirmed meanwhile): nothing is listed, and no cancel applies anyway.
      const listed = await this.plans.groupAlert(record.plan.id, alertIdOf(opts.alert), opts.alert, []);
      if (listed !== undefined) {
        const joined = (await this.plans.get(record.plan.id)) ?? record;
        return { ok: true, plan: joined.plan, record: joined, created };
      }
    }
    if (created) {
      await this.record(record, 'requested', actor.value, {
        ...(opts.alert
          ? {
              stage: 'suggested' as const,
              alert: { title: clipMessage(opts.alert.title, 500), source: opts.alert.source.slice(0, 100) },
            }
          : { stage: 'asked' as const }),
        message: opts.alert
          ? `suggested after alert "${opts.alert.title}" (${opts.alert.source})${opts.refreshedBy === undefined ? '' : `; a fresh plan asked for by ${personName(opts.refreshedBy)}`}`
          : `asked for a ${record.plan.action} to ${record.plan.target.id}`,
      });
    }
    return { ok: true, plan: record.plan, record, created };
  }

  /**
   * Whether job `jobId` ended: its progress has an outcome, or else the queue says it is finished for
   * good (a job whose data or progress this version cannot read has no outcome to read: without this,
   * every request for the same switch would join the dead job until its record expired).
   */
  private async jobEnded(jobId: string): Promise<boolean> {
    if ((await this.queue.progress?.(jobId))?.outcome !== undefined) return true;
    return (await this.queue.ended?.(jobId)) === true;
  }

  /**
   * The enqueued plan of the same switch (action, target, current deployment, rolled-back flag) whose
   * job is waiting or running in the environment, when its plan id differs from `plan`'s: the switch
   * itself changes facts the plan id covers (it reactivates a standby target, moves branch domains)
   * before traffic moves, and a request in that window should see the switch under way, not a second
   * plan for it. Undefined when the queue cannot tell.
   */
  private async runningSwitchOf(plan: Plan): Promise<PlanRecord | undefined> {
    const active = await this.queue.activeForEnvironment?.(plan.environment);
    if (active === undefined || active.planId === plan.id) return undefined;
    if (active.action !== plan.action || active.targetId !== plan.target.id) return undefined;
    if (!PLAN_ID_PATTERN.test(active.planId)) return undefined;
    const record = await this.plans.get(active.planId);
    if (record?.state !== PlanState.enqueued) return undefined;
    const p = record.plan;
    const same =
      p.projectId === plan.projectId &&
      p.expectedCurrent === plan.expectedCurrent &&
      p.expectedRolledBack === plan.expectedRolledBack;
    return same ? record : undefined;
  }

  /**
   * Remembers a chat message showing the plan (posted after `plan` returned), so progress edits it too.
   * When the switch is already enqueued, the message is handed to the job as well. False when the plan
   * is gone. A malformed ref (a surface bug, never user input) throws the zod error naming the field.
   */
  async attachMessage(planId: string, ref: MessageRef): Promise<boolean> {
    return (await this.attach(planId, ref)).attached;
  }

  /**
   * `attachMessage`, also saying which job the message now follows (`jobId`: the plan is enqueued and
   * its job's id stored), so that the surface can show the switch's end itself when the job has ended
   * already: its worker reads the job's messages for the last time as it ends, and one request serves
   * every request for the same switch, so a `/rollback` typed while the switch runs is posted, and
   * attached, whenever its post returns, possibly after that.
   *
   * A message attached between the winning click's claim and its job id being stored (the job being
   * added meanwhile) is handed to the job under the id the job gets (derived from the plan's), and by
   * the winner once the job exists (`enqueueFrom`): it reaches the job either way.
   *
   * `clicked`: the message is one a person just clicked (ChatService), which follows its switch even
   * when the plan already follows MAX_MESSAGES_PER_PLAN messages, up to MAX_CLICKED_MESSAGES_PER_PLAN
   * (see PlanStore.attachMessage); a message merely posted for the plan stops at the cap.
   */
  async attach(
    planId: string,
    ref: MessageRef,
    opts: { readonly clicked?: boolean } = {},
  ): Promise<AttachOutcome> {
    if (!PLAN_ID_PATTERN.test(planId)) return { attached: false };
    const parsed = messageRefSchema.parse(ref);
    const attached = await this.plans.attachMessage(planId, parsed, { clicked: opts.clicked === true });
    if (!attached) return { attached: false };
    const read = await this.plans.get(planId);
    const record = read === undefined ? undefined : await this.withOwnJob(read);
    if (record?.state !== PlanState.enqueued) return { attached: true };
    await this.queue.addMessages?.(record.jobId ?? jobIdForPlan(planId), [parsed]);
    return record.jobId === undefined ? { attached: true } : { attached: true, jobId: record.jobId };
  }

  /**
   * Alert suggestions (src/alerts/service.ts): lists the alert on the open plan and claims each
   * destination's suggestion slot that has none. Undefined when the plan is not open (see
   * PlanStore.groupAlert).
   */
  async groupAlert(
    planId: string,
    alertId: string,
    alert: AlertContext,
    slots: readonly string[],
  ): Promise<AlertGroup | undefined> {
    if (!PLAN_ID_PATTERN.test(planId)) return undefined;
    return this.plans.groupAlert(planId, alertId, alert, slots);
  }

  /** Records the message posted for a claimed suggestion slot; the plan's alertsVersion now. */
  async suggestionPosted(
    planId: string,
    slot: string,
    alertId: string,
    ref: MessageRef,
  ): Promise<number | undefined> {
    if (!PLAN_ID_PATTERN.test(planId)) return undefined;
    return this.plans.suggestionPosted(planId, slot, alertId, messageRefSchema.parse(ref));
  }

  /** Frees a suggestion slot whose post failed. */
  async releaseSuggestion(planId: string, slot: string): Promise<void> {
    if (PLAN_ID_PATTERN.test(planId)) await this.plans.releaseSuggestion(planId, slot);
  }

  /** Takes an alert off the plan (its suggestion could not be posted). */
  async unlistAlert(planId: string, alertId: string): Promise<void> {
    if (PLAN_ID_PATTERN.test(planId)) await this.plans.unlistAlert(planId, alertId);
  }

  /** Marks an alert the plan lists resolved: the plan's state, or undefined when it does not list it. */
  async resolveAlert(planId: string, alertId: string, at: number): Promise<PlanState | undefined> {
    if (!PLAN_ID_PATTERN.test(planId)) return undefined;
    return this.plans.resolveAlert(planId, alertId, at);
  }

  /**
   * The fresh plans made from this closed one under other plan ids that took its alerts over
   * (`PlanRecord.replannedAs`, see `replan`), oldest first; none for an unknown or unreadable record.
   */
  async replannedAs(planId: string): Promise<readonly string[]> {
    if (!PLAN_ID_PATTERN.test(planId)) return [];
    const record = await this.readableRecord(planId);
    return (record?.replannedAs ?? []).filter((id) => PLAN_ID_PATTERN.test(id));
  }

  /** The plan's record as it is now (an open plan past its time is reported, and stored, as expired). */
  async get(planId: string): Promise<PlanRecord | undefined> {
    if (!PLAN_ID_PATTERN.test(planId)) return undefined;
    return this.load(planId);
  }

  /**
   * The confirm click. Checks permission (refused: audited, nothing changes), then the plan's state:
   * enqueued → the same job (`joined`); open → re-reads the platform (stale: what changed), then either
   * waits for a second person (two-person rule) or enqueues exactly once.
   */
  async confirm(actorInput: ActingUser, planId: string): Promise<ClickOutcome> {
    const start = await this.begin(actorInput, planId);
    if (start.done) return start.outcome;
    const { actor, record } = start;
    const permission = canAct(actor, record.plan.environment, { config: this.config });
    if (!permission.ok) return this.refused(record, actor, permission.refusal);
    return this.confirmFrom(actor, record);
  }

  /**
   * The approve click (two-person rule): a permitted person other than the one who confirmed (and the
   * one who asked) approves; the switch is then enqueued with `approvedBy`. Self-approval is refused
   * and changes nothing, while the rule is in force: turned off since the confirm, any permitted
   * person's Approve queues the switch (see `approveFrom`).
   */
  async approve(actorInput: ActingUser, planId: string): Promise<ClickOutcome> {
    const start = await this.begin(actorInput, planId);
    if (start.done) return start.outcome;
    const { actor, record } = start;
    const permission = canAct(actor, record.plan.environment, { config: this.config });
    if (!permission.ok) return this.refused(record, actor, permission.refusal);
    return this.approveFrom(actor, record);
  }

  /**
   * The cancel (or dismiss) click: the person who asked, the person who confirmed, or anyone permitted
   * on the environment. After the switch was enqueued, says it is already running.
   */
  async cancel(
    actorInput: ActingUser,
    planId: string,
    verb: 'cancelled' | 'dismissed' = 'cancelled',
  ): Promise<CancelOutcome> {
    const start = await this.begin(actorInput, planId);
    if (start.done) return start.outcome;
    return this.cancelFrom(start.actor, start.record, verb);
  }

  /**
   * Why `actorInput` may not dismiss (cancel) this plan, or undefined when they may: the same rule as
   * Cancel (the person who asked, the confirmer, or someone permitted on the environment).
   */
  async dismissRefusal(actorInput: ActingUser, planId: string): Promise<Refusal | undefined> {
    const start = await this.begin(actorInput, planId);
    if (start.done) return start.outcome.status === 'refused' ? start.outcome.refusal : undefined;
    return this.cancelRefusal(start.actor, start.record);
  }

  /**
   * Dismiss on one of several messages showing the plan (an alert suggestion while the plan also shows
   * elsewhere: another incident's suggestion, a person's own /rollback): closes that message only, so
   * the others keep working. The same people may do it as may cancel (a refusal is audited and changes
   * nothing). `message` is the clicked message: it is marked dismissed and the messages still offering
   * the plan are counted (those on `ignoreSurfaces` not), in one step, on the record the permission was
   * checked on. When the surface cannot say which message was clicked, nothing is marked and the plan
   * must show on more than one message. Audited as `cancelled` with code `copy_dismissed` (the plan
   * itself stays open). `whole` when the plan shows nowhere else, or is not open: Dismiss then acts on
   * the plan (`dismiss`), which answers as a Cancel would.
   */
  async dismissCopy(
    actorInput: ActingUser,
    planId: string,
    message: MessageRef | undefined,
    ignoreSurfaces: readonly string[] = [],
  ): Promise<DismissCopyOutcome> {
    const start = await this.begin(actorInput, planId);
    if (start.done) return start.outcome.status === 'refused' ? start.outcome : { status: 'whole' };
    const { actor } = start;
    const ref = message === undefined ? undefined : messageRefSchema.parse(message);
    let record: PlanRecord | undefined = start.record;
    for (let tries = 0; record !== undefined; tries++) {
      if (!OPEN_STATES.includes(record.state)) return { status: 'whole' };
      // Marking a suggestion message dismissed silences later alerts there (they are listed, not
      // shown): that needs permission, whoever asked or confirmed.
      const silences = ref !== undefined && (record.suggestions ?? []).some((x) => sameRef(x.ref, ref));
      const refusal =
        this.cancelRefusal(actor, record) ?? (silences ? this.silenceRefusal(actor, record) : undefined);
      if (refusal !== undefined) return this.refused(record, actor, refusal);
      if (tries > MAX_REDECISIONS) return this.keptChanging(actor, record);
      let others = record.messages.length - 1;
      if (ref !== undefined) {
        const offering = await this.plans.dismissMessage(
          planId,
          ref,
          personName(actor),
          ignoreSurfaces,
          record,
        );
        if (offering === 'changed') {
          // Someone moved the plan after it was read: decide again on the record as it is now.
          record = await this.load(planId);
          continue;
        }
        others = offering ?? 0;
      }
      if (others < 1) return { status: 'whole' };
      const p = record.plan;
      const where = ref === undefined ? '' : ` (${ref.surface} ${ref.channel})`;
      await this.record(record, 'cancelled', actor, {
        code: COPY_DISMISSED,
        message: `${personName(actor)} dismissed one message showing the ${p.action} to ${p.target.id}${where}; it stays open on ${others} other message${others === 1 ? '' : 's'}`,
      });
      return { status: 'dismissed', record: (await this.plans.get(planId)) ?? record };
    }
    return { status: 'whole' };
  }

  /** Dismisses an alert suggestion: a cancel, recorded as dismissed. */
  async dismiss(actorInput: ActingUser, planId: string): Promise<CancelOutcome> {
    return this.cancel(actorInput, planId, 'dismissed');
  }

  /**
   * Why `actor` may not cancel (or dismiss) `record`, or undefined when they may. The person who asked
   * may withdraw their request without being permitted on the environment, but only while it is theirs
   * alone: once someone else confirmed it (a plan asked for twice is one plan, so that is often someone
   * who asked for it too), or an alert asked for it too (`answersAlert`: its suggestion, in the
   * incident channel, is the same plan), only the confirmer or a permitted person may cancel it.
   * Checked on the record the cancel then moves (see `cancelFrom`).
   */
  private cancelRefusal(actor: ActingUser, record: PlanRecord): Refusal | undefined {
    if (this.involved(actor, record)) return undefined;
    const permission = canAct(actor, record.plan.environment, { config: this.config });
    if (permission.ok) return undefined;
    if (!sameActor(actor, record.requestedBy) || !answersAlert(record)) return permission.refusal;
    // The asker, refused only because an alert joined: say so, or "I asked for it" stays a puzzle.
    const p = record.plan;
    return {
      ...permission.refusal,
      message: `An alert suggests this same ${p.action} of ${p.environment}, so it is no longer only your request: cancelling or dismissing it would close the alert's suggestion for everyone, which needs permission on ${p.environment}. Nothing was changed. ${permission.refusal.message}`,
      context: { ...permission.refusal.context, alertJoined: true },
    };
  }

  /**
   * Why `actor` may not silence alerts for `record` (record a dismissal, or mark one of its suggestion
   * messages dismissed), or undefined when they may: only someone permitted on the environment now,
   * whoever asked or confirmed (a dismissal outlives the plan: alerts stop suggesting the switch).
   */
  private silenceRefusal(actor: ActingUser, record: PlanRecord): Refusal | undefined {
    const permission = canAct(actor, record.plan.environment, { config: this.config });
    return permission.ok ? undefined : permission.refusal;
  }

  /**
   * Whether `actor` is the confirmer, or the one who asked while it is theirs alone: nobody else
   * confirmed it and no alert asked for it too (see `cancelRefusal`).
   */
  private involved(actor: ActingUser, record: PlanRecord): boolean {
    const confirmer = record.confirmedBy;
    return (
      (confirmer !== undefined && sameActor(actor, confirmer)) ||
      (sameActor(actor, record.requestedBy) &&
        !answersAlert(record) &&
        (confirmer === undefined || sameActor(confirmer, record.requestedBy)))
    );
  }

  /**
   * A fresh plan for the same action, environment and target (after a stale or expired one; a promote
   * asked for by its environment finds its newest ready deployment again: `targetFrom`). An alert
   * suggestion's fresh plan is a fresh suggestion: it lists the alerts the closed record listed, as
   * they stand (resolved or firing), so that their later resolutions mark it too (the alert service
   * resolves an incident on the plan id it was suggested under, and on the fresh plans a closed record
   * points at: when the platform moved since, the fresh plan has another id, `followedBy`), and it
   * claims a suggestion slot for the message the click is about to post, which ChatService records once
   * it is posted (or frees when the post failed): from then on the message is that channel's
   * suggestion, edited when its alerts resolve or join, as any other. The slot is the one the clicked
   * message (`clicked`) held on the closed record: the place the alerts are posted to, named as their
   * destination names it (Slack's `slack:#alerts` when the alert channel is configured by name, while
   * the click names the channel by its id); `suggestIn` (`surface:channel`, the click's channel) only
   * when the clicked message held none. `suggestIn` on the answer: the slot chosen, and whether this
   * call claimed it (else another message of the plan is there or being posted there).
   */
  async replan(
    actorInput: ActingUser,
    planId: string,
    opts: { readonly clicked?: MessageRef; readonly suggestIn?: string } = {},
  ): Promise<PlanOutcome & { readonly suggestIn?: { readonly slot: string; readonly claimed: boolean } }> {
    if (!PLAN_ID_PATTERN.test(planId)) {
      return { ok: false, refusal: invalid(`Invalid plan id "${planId}".`, { planId }) };
    }
    let record: PlanRecord | undefined;
    try {
      record = await this.plans.get(planId);
    } catch (e) {
      if (e instanceof PlanUnreadableError) return { ok: false, refusal: this.unreadableRefusal(e) };
      throw e;
    }
    if (record === undefined) {
      return {
        ok: false,
        refusal: invalid(`Plan ${planId} is no longer known; ask for a new one with /rollback or /promote.`, {
          planId,
        }),
      };
    }
    const p = record.plan;
    // A fresh plan of an alert's suggestion stays the alert's: the person who clicked did not ask for
    // the switch (the alert did), so, as on any suggestion, they may confirm or approve it (a click
    // making them its asker refused their Approve as self-approval, and named them as the asker).
    const clicker = this.parseActor(actorInput);
    if (!clicker.ok) return clicker;
    // Also a person's request an alert joined (it lists the alert and holds its suggestion): its asker
    // stays that person, never the one who clicked.
    const alert = record.alert ?? record.alerts?.[0]?.alert;
    const keepAsker =
      alert !== undefined && (record.requestedBy.surface === 'system' || answersAlert(record));
    // The same target, except for a promote asked for by its environment: its newest ready deployment
    // now (kept, the target could be older than what went live since, and the fresh plan would move
    // the environment back to it). A rollback keeps its target: the deployment live before the current
    // one may now be the very one that was rolled away from.
    const sameTarget =
      p.action === PlanAction.promote && record.targetFrom === 'environment' ? undefined : p.target.id;
    const out = await this.plan(
      keepAsker ? record.requestedBy : actorInput,
      p.action,
      p.environment,
      sameTarget,
      {
        ...(alert === undefined ? {} : { alert }),
        ...(keepAsker ? { refreshedBy: stripMembership(clicker.value) } : {}),
      },
    );
    const alerts = record.alerts ?? [];
    if (!out.ok || alerts.length === 0 || !OPEN_STATES.includes(out.record.state)) return out;
    // Listed on the record made (or joined) just now; not on another one made since under the same id.
    const first = alerts.find((a) => a.id === record.alert?.id) ?? alerts[0];
    const clicked = opts.clicked;
    const held =
      clicked === undefined
        ? undefined
        : record.suggestions?.find(
            (s) => s.ref?.surface === clicked.surface && s.ref.messageId === clicked.messageId,
          )?.slot;
    const suggestIn = held ?? opts.suggestIn?.trim();
    const slot = suggestIn === undefined || suggestIn === '' || first === undefined ? undefined : suggestIn;
    const carried = await this.plans.carryAlerts(
      out.plan.id,
      out.record.generation ?? '',
      alerts,
      slot === undefined || first === undefined ? undefined : { slot, alertId: first.id },
    );
    if (carried === undefined) return out;
    if (out.plan.id !== planId) await this.followedBy(record, out.plan.id);
    const now = (await this.plans.get(out.plan.id)) ?? out.record;
    return {
      ...out,
      plan: now.plan,
      record: now,
      ...(slot === undefined ? {} : { suggestIn: { slot, claimed: carried.claimed } }),
    };
  }

  /**
   * The platform moved since `closed` was made, so its fresh plan (`freshId`, which now lists its
   * alerts) is another plan id, while the alert service resolves an incident on the plan id it was
   * suggested under: the closed record points at the fresh plan (`replannedAs`), which the alert
   * service follows, so a resolution marks the fresh suggestion too and a repeat names it. An alert
   * that resolved on the closed record after `replan` read it, seen by a resolution that did not find
   * the pointer yet, is marked on the fresh plan here: the pointer is written first, then the closed
   * record read again, so each such resolution is seen by one side or the other (across replicas too).
   */
  private async followedBy(closed: PlanRecord, freshId: string): Promise<void> {
    const planId = closed.plan.id;
    if (!(await this.plans.markReplanned(planId, closed.generation ?? '', freshId))) return;
    const again = await this.readableRecord(planId);
    if (again === undefined || again.generation !== closed.generation) return;
    const before = new Map((closed.alerts ?? []).map((a) => [a.id, a.resolvedAt]));
    for (const a of again.alerts ?? []) {
      if (a.resolvedAt !== undefined && before.get(a.id) === undefined)
        await this.plans.resolveAlert(freshId, a.id, a.resolvedAt);
    }
  }

  /**
   * The switch waiting or running for `environment`, when the queue can tell (an alert for an
   * environment that is already switching links to it instead of suggesting another switch).
   */
  async activeSwitch(environment: string): Promise<ActiveSwitch | undefined> {
    return this.queue.activeForEnvironment ? this.queue.activeForEnvironment(environment) : undefined;
  }

  /** The deployment serving `environment` now (undefined: none, or the platform could not say). */
  async currentDeployment(environment: string): Promise<string | undefined> {
    try {
      return (await this.platform.snapshot(environment)).environment.currentDeploymentId;
    } catch {
      return undefined;
    }
  }

  /**
   * A switch job's progress as its worker last published it, when the job is its plan's switch as the
   * plan stands now (undefined: unknown job, no queue, or a job of the plan's past). A job's id is
   * derived from its plan's, so it names every job the plan ever had: the same switch asked for again
   * after its job ended without success is a new request under the same plan id (see `plan`), and the
   * ended job says nothing about that request until the request's own job replaced it (the plan is then
   * enqueued with the job's id stored). A plan whose record is gone (past its retention) cannot tell:
   * the job's progress stands.
   */
  async jobProgress(jobId: string): Promise<Progress | undefined> {
    if (!this.queue.progress) return undefined;
    const progress = await this.queue.progress(jobId);
    if (progress === undefined || !PLAN_ID_PATTERN.test(progress.planId)) return progress;
    // A plan record that cannot be read cannot tell either: the job's progress stands.
    const read = await this.readableRecord(progress.planId);
    // (A claim whose job this process queued but could not write on it yet is that job's: see `ownJob`.)
    const record = read === undefined ? undefined : await this.withOwnJob(read);
    if (record === undefined) return progress;
    return record.state === PlanState.enqueued && record.jobId === jobId ? progress : undefined;
  }

  /**
   * Whether job `jobId` has reported progress of its own or ended (`progressReported`): a click's
   * "Confirmed…" view would cover it now, whatever process runs the job.
   */
  async jobReported(jobId: string): Promise<boolean> {
    const progress = await this.jobProgress(jobId);
    return progress !== undefined && progressReported(progress);
  }

  /** The `/deployments` view's data: snapshot, routing, recent audit entries and the running switch. */
  async deployments(environmentInput: string): Promise<DeploymentsOutcome> {
    const slugs = await this.slugs();
    const resolved = resolveEnvironment(slugs, environmentInput);
    if (!resolved.ok) return resolved;
    const environment = resolved.value;
    const snapshot = await this.snapshot(environment);
    if (!snapshot.ok) return snapshot;
    const [routes, listed, active, refusals] = await Promise.all([
      // The snapshot just read: an adapter deriving routing from one (Unkey) does not read it again.
      this.platform.routing(environment, snapshot.value),
      this.historyWindow(environment),
      this.activeSwitch(environment),
      // A few refused clicks beside the history, never in place of it: anyone who sees a confirmation
      // can press it, and their refusals must not hide who rolled back.
      this.recentRefusals > 0 && this.audit.refusals !== undefined
        ? this.audit.refusals(environment, this.recentRefusals)
        : [],
    ]);
    const history = (await this.expireListed(listed.entries))
      ? await this.historyWindow(environment)
      : listed;
    return {
      ok: true,
      environment,
      snapshot: withOwnRollback(snapshot.value, history.entries),
      routes,
      recent: history.entries,
      recentTruncated: !history.complete,
      ...(history.redisAheadMs === undefined ? {} : { redisAheadMs: history.redisAheadMs }),
      refusals,
      active,
    };
  }

  /**
   * The newest `recentAudit` entries of an environment, whether they are all it keeps, and (when the
   * audit says when Redis wrote them) how far Redis's clock is from this process's.
   */
  private async historyWindow(environment: string): Promise<HistoryWindow> {
    if (this.audit.recentWindow !== undefined) {
      const read = await this.audit.recentWindow(environment, this.recentAudit);
      // This process's time, read as Redis's came back: the local platform (in this process) stamps
      // its live history with this clock, so a move's time plus the difference is on Redis's clock,
      // the one the entries were written on (a platform with its own clock is taken as keeping time
      // with this one, as the notices take it).
      const now = this.clock.now();
      return {
        entries: read.entries.map(({ entry, writtenAt }) => ({ ...entry, writtenAt })),
        complete: read.complete,
        redisAheadMs: read.readAt - now,
      };
    }
    const entries = await this.audit.recent(environment, this.recentAudit);
    return { entries, complete: entries.length < this.recentAudit };
  }

  /**
   * The deployments of an environment to offer as choices (autocomplete): one platform snapshot and
   * nothing else — no routing (on Vercel one alias read per domain), audit log or queue, which the
   * choices do not show. Called on every keystroke, so the read is shared (see `sharedSnapshot`): the
   * choices may be up to `choicesCacheMs` old, which a choice list can afford and a plan never relies
   * on (planning and confirming read the platform afresh).
   */
  async deploymentChoices(environmentInput: string): Promise<DeploymentChoicesOutcome> {
    const slugs = await this.slugs();
    const resolved = resolveEnvironment(slugs, environmentInput);
    if (!resolved.ok) return resolved;
    const environment = resolved.value;
    const snapshot = await this.sharedSnapshot(environment);
    if (!snapshot.ok) return snapshot;
    return {
      ok: true,
      environment,
      deployments: snapshot.value.deployments,
      currentDeploymentId: snapshot.value.environment.currentDeploymentId,
    };
  }

  /**
   * `environment`'s snapshot for `deploymentChoices`: calls while a read is in flight join it (a burst
   * of keystrokes makes one platform read), and a read that succeeded is reused for `choicesCacheMs`
   * after it came back. A failed read (a fault or a refusal) is not kept: the next call reads again.
   */
  private sharedSnapshot(environment: string): Promise<SnapshotOutcome> {
    const now = this.clock.now();
    const shared = this.choiceReads.get(environment);
    if (shared !== undefined && now < shared.expiresAt) return shared.read;
    const read = this.snapshot(environment);
    const entry: SharedRead = { read, expiresAt: now + SHARED_READ_MAX_MS };
    this.choiceReads.set(environment, entry);
    const forget = (): void => {
      if (this.choiceReads.get(environment) === entry) this.choiceReads.delete(environment);
    };
    read.then((outcome) => {
      if (!outcome.ok) forget();
      else entry.expiresAt = this.clock.now() + this.choicesCacheMs;
    }, forget);
    return read;
  }

  /**
   * Expires the open plans whose time ran out by now (see `PlanStore.dueToExpire`), as a read of each
   * would (`load`): each moves to `expired` and is audited once, as a click on it would have done.
   * Returns the expired records whose messages this call is to show so: of any number of replicas
   * sweeping at once, exactly one shows each (`PlanStore.takeExpiryShown`), whoever expired it. That
   * includes a plan expired by a read in the seconds before the sweep (a `/deployments`, a suggestion
   * refresh, a new request for the same switch), which edits no message itself. A plan expired by a
   * click is shown by that click (ChatService) and not marked so (the click's outcome does not say
   * whether its surface shows it): the sweep then edits its messages once more, with the same view.
   * A plan clicked, enqueued or asked for again meanwhile (its time restarted) is left as it is. At
   * most `limit` plans per call.
   */
  async expireDue(limit = EXPIRE_SWEEP_LIMIT): Promise<PlanRecord[]> {
    const now = this.clock.now();
    const due = await this.plans.dueToExpire(now, limit);
    const expired: PlanRecord[] = [];
    // Taken off the index once dealt with; a plan Redis failed on stays for the next sweep.
    const handled: string[] = [];
    for (const planId of due) {
      try {
        const record = PLAN_ID_PATTERN.test(planId) ? await this.load(planId) : undefined;
        // A claim without its job id that is still under way (`load` settles an abandoned one: its job
        // found after all, open again, or expired) stays on the index for the next sweep, and so does
        // an open plan past its time that kept moving under `load` (it is expired at the next sweep).
        if (record?.state === PlanState.enqueued && record.jobId === undefined) continue;
        if (record !== undefined && OPEN_STATES.includes(record.state) && now >= record.expiresAt) continue;
        if (record?.state === PlanState.expired && (await this.plans.takeExpiryShown(record)))
          expired.push(record);
        handled.push(planId);
      } catch (e) {
        // An unreadable record stays unreadable: it is not tried again every sweep.
        if (e instanceof SwitchyardError && e.code === 'internal') handled.push(planId);
        this.logger.warn({ err: e, planId }, 'could not expire a plan whose time ran out');
      }
    }
    await this.plans.forgetDue(handled, now);
    return expired;
  }

  /**
   * Plans expire when read or swept (`expireDue`). So that an unanswered request does not stay the
   * last word of `/deployments` ("waiting for a second permitted person to approve") after it lapsed,
   * the plans whose latest listed entry is `requested` (or an approval that could not be queued, after
   * which the plan is open again, or one of its messages dismissed, or a claim whose job never came)
   * are read through `load`, which expires (and audits) those past their time. True when one expired,
   * so the caller reads the audit again. The newest `EXPIRY_CHECKS_MAX` such plans only: the history
   * read is long, and each check is a read of Redis; an older one is expired by the sweep
   * (`expireDue`) as any plan past its time.
   */
  private async expireListed(entries: readonly FlowAuditEntry[]): Promise<boolean> {
    const latest = new Map<string, FlowAuditEntry>();
    for (const e of entries) {
      if (e.planId !== undefined && !latest.has(e.planId)) latest.set(e.planId, e);
    }
    let expired = false;
    let checks = 0;
    for (const [planId, e] of latest) {
      const open =
        e.event === 'requested' ||
        e.event === 'approved' || // a claim whose job never came (see `settleAbandoned`)
        (e.event === 'failed' && e.code === ENQUEUE_FAILED) ||
        (e.event === 'cancelled' && e.code === COPY_DISMISSED);
      if (!open || !PLAN_ID_PATTERN.test(planId)) continue;
      if (++checks > EXPIRY_CHECKS_MAX) break;
      // An unreadable record is left as it is (the next request for its switch replaces it): it must
      // not keep `/deployments` from answering.
      const before = await this.readableRecord(planId);
      if (before === undefined) continue;
      if (!OPEN_STATES.includes(before.state) && !this.abandoned(before)) continue;
      if (this.clock.now() < before.expiresAt) continue;
      if ((await this.load(planId))?.state === PlanState.expired) expired = true;
    }
    return expired;
  }

  // ── internals ────────────────────────────────────────────────────────────────────────────────

  private parseActor(input: ActingUser): { ok: true; value: ActingUser } | { ok: false; refusal: Refusal } {
    const parsed = actingUserSchema.safeParse(input);
    if (!parsed.success) {
      const fields = parsed.error.issues.map((i) => i.path.map(String).join('.') || '(actor)').join(', ');
      return { ok: false, refusal: invalid(`Invalid actor: ${fields} missing or malformed.`, { fields }) };
    }
    const { groups, uncheckedGroups, rejectedGroups, roles, ...actor } = parsed.data;
    return {
      ok: true,
      value: {
        ...actor,
        ...(groups === undefined ? {} : { groups }),
        ...(uncheckedGroups === undefined ? {} : { uncheckedGroups }),
        ...(rejectedGroups === undefined ? {} : { rejectedGroups }),
        ...(roles === undefined ? {} : { roles }),
      },
    };
  }

  /**
   * Common start of a click: validates the input, loads the record (expiring it when due) and settles
   * the outcomes that need neither permission nor platform: unknown/expired plans, cancelled and stale
   * ones. Returns the open or enqueued record otherwise.
   */
  private async begin(
    actorInput: ActingUser,
    planId: string,
  ): Promise<
    | { done: true; outcome: Exclude<ClickOutcome, { status: 'enqueued' } | { status: 'awaiting_approval' }> }
    | { done: false; actor: ActingUser; record: PlanRecord }
  > {
    const actor = this.parseActor(actorInput);
    if (!actor.ok)
      return { done: true, outcome: { status: 'refused', refusal: actor.refusal, record: undefined } };
    if (!PLAN_ID_PATTERN.test(planId)) {
      return {
        done: true,
        outcome: {
          status: 'refused',
          refusal: invalid(`Invalid plan id "${planId}": expected letters, digits, _ or -.`, { planId }),
          record: undefined,
        },
      };
    }
    let record: PlanRecord | undefined;
    try {
      record = await this.load(planId);
    } catch (e) {
      if (!(e instanceof PlanUnreadableError)) throw e;
      this.logger.warn(
        { err: e, planId, field: e.field, problem: e.problem },
        'click on a plan whose record in Redis is unreadable: refused',
      );
      return {
        done: true,
        outcome: { status: 'refused', refusal: this.unreadableRefusal(e), record: undefined },
      };
    }
    if (record === undefined) {
      return {
        done: true,
        outcome: {
          status: 'expired',
          planId,
          message:
            'This plan is no longer known (it expired). Ask for a fresh one with /rollback or /promote.',
          record: undefined,
        },
      };
    }
    switch (record.state) {
      case PlanState.expired:
        return { done: true, outcome: this.expiredOutcome(record) };
      case PlanState.cancelled:
        return { done: true, outcome: { status: 'cancelled', record } };
      case PlanState.stale:
        return { done: true, outcome: await this.staleOutcome(record) };
      case PlanState.pending:
      case PlanState.awaitingApproval:
      case PlanState.enqueued:
        return { done: false, actor: actor.value, record };
      default:
        return assertNever(record.state, 'plan state');
    }
  }

  /**
   * Reads a record, settling it first: an open plan past its time moves to `expired` (audited once), a
   * claim whose job this process queued gets the job id it could not write then (`ownJob`), a claim
   * abandoned without a job is settled (`settleAbandoned`). Each move names the record read; when
   * it moved meanwhile, the record as it is then is settled instead.
   */
  private async load(planId: string): Promise<PlanRecord | undefined> {
    let record = await this.plans.get(planId);
    for (let tries = 0; record !== undefined && tries <= MAX_REDECISIONS; tries++) {
      let moved: TransitionResult;
      const own = this.ownJob(record);
      if (OPEN_STATES.includes(record.state) && this.clock.now() >= record.expiresAt) {
        moved = await this.plans.transition(planId, OPEN_STATES, PlanState.expired, {}, [], {
          expect: record,
        });
        if (moved.ok) await this.recordExpiry(moved.record);
      } else if (own !== undefined) {
        moved = await this.storeOwnJob(record, own);
      } else if (this.abandoned(record)) {
        moved = await this.settleAbandoned(record);
      } else {
        return record;
      }
      if (moved.ok) return moved.record;
      record = moved.record;
    }
    return record;
  }

  /**
   * Whether `record` is a claim (open → enqueued) that never got its job id, for longer than a winning
   * click takes: the winner's enqueue failed and so did the undo of its claim (Redis went away for
   * both), its process died between the claim and storing the job id, or its write of the job id failed
   * and no read in its process wrote it since (`UnstoredJob`).
   */
  private abandoned(record: PlanRecord): boolean {
    return (
      record.state === PlanState.enqueued &&
      record.jobId === undefined &&
      this.clock.now() - record.updatedAt >= ORPHANED_CLAIM_MS
    );
  }

  /**
   * Settles an abandoned claim (see `abandoned`), which must not stay "being queued" for the record's
   * whole retention, nor be queued later by a click that checked nothing:
   * - its job exists after all (the winner died after enqueueing, or could not write the job id): the
   *   job id is stored;
   * - past the plan's time: `expired` (audited), as an open plan would be;
   * - otherwise the claim is undone as its winner would have: the plan is open again (`pending`, or
   *   `awaiting_approval` without the approver for an approval), audited as `failed`
   *   (`enqueue_failed`). The next confirm or approve is then a click like any other: permission,
   *   two-person rule, a fresh platform read, and an `approved` entry naming whoever clicked.
   * Each move names the record read.
   */
  private async settleAbandoned(record: PlanRecord): Promise<TransitionResult> {
    const p = record.plan;
    const jobId = jobIdForPlan(p.id);
    const expect = { expect: record };
    // (A queue that cannot tell counts as having no job: the next enqueue of the plan joins any job
    // there is anyway, its id being derived from the plan id.)
    if ((await this.queue.progress?.(jobId)) !== undefined) return this.writeJobId(record, jobId);
    if (this.clock.now() >= record.expiresAt) {
      const moved = await this.plans.transition(
        p.id,
        [PlanState.enqueued],
        PlanState.expired,
        {},
        [],
        expect,
      );
      const by = record.approvedBy ?? record.confirmedBy ?? record.requestedBy;
      if (moved.ok) await this.recordExpiry(moved.record, by);
      return moved;
    }
    const approval = record.approvedBy !== undefined;
    const moved = approval
      ? await this.plans.transition(
          p.id,
          [PlanState.enqueued],
          PlanState.awaitingApproval,
          {},
          ['approvedBy', 'approvedVia'],
          expect,
        )
      : await this.plans.transition(
          p.id,
          [PlanState.enqueued],
          PlanState.pending,
          {},
          ['confirmedBy', 'confirmedVia'],
          expect,
        );
    if (moved.ok) {
      const by = record.approvedBy ?? record.confirmedBy;
      await this.record(moved.record, 'failed', undefined, {
        jobId,
        code: ENQUEUE_FAILED,
        message: `the ${p.action} to ${p.target.id} ${approval ? 'approved' : 'confirmed'}${by === undefined ? '' : ` by ${personName(by)}`} was never queued (no job ${Math.round((this.clock.now() - record.updatedAt) / 1000)} s after the click); the plan is open again: ${approval ? 'approve' : 'confirm'} again to retry`,
      });
    }
    return moved;
  }

  /** After a transition: when it found the plan past its time (and expired it), audits that once. */
  private async noteExpiry(result: TransitionResult): Promise<void> {
    if (!result.ok && result.expired === true && result.record !== undefined) {
      await this.recordExpiry(result.record);
    }
  }

  /**
   * The audit entry of a plan that expired: without it, a request's last entry would stay
   * "requested" (or "waiting for a second permitted person to approve") forever. The audit log has no
   * `expired` event, so it is written as `cancelled` with code `expired`, without an actor (nobody
   * cancelled it: time ran out).
   */
  private async recordExpiry(record: PlanRecord, abandoned?: Actor): Promise<void> {
    const p = record.plan;
    // A plan's time counts from when it was last asked for (a joining request or alert restarts it),
    // not from when its record was made: the store's time, as the click's answer says.
    const minutes = Math.round(this.plans.ttlMs / 60_000);
    const at = utc(record.expiresAt);
    const message =
      abandoned !== undefined
        ? `expired at ${at}: the ${p.action} to ${p.target.id} ${record.approvedBy === undefined ? 'confirmed' : 'approved'} by ${personName(abandoned)} was never queued (its queueing did not finish) and the plan's ${minutes} minutes ran out; nothing was changed`
        : record.confirmedBy !== undefined
          ? `expired at ${at}: the ${p.action} to ${p.target.id} confirmed by ${personName(record.confirmedBy)} was not approved by a second permitted person before the plan's ${minutes} minutes (since it was last asked for) ran out; nothing was changed`
          : `expired at ${at}: nobody confirmed the ${p.action} to ${p.target.id} within ${minutes} minutes; nothing was changed`;
    await this.record(record, 'cancelled', undefined, { code: 'expired', message });
  }

  /** The plan's record as the store reads it, a record that cannot be read reading as absent. */
  private async readableRecord(planId: string): Promise<PlanRecord | undefined> {
    return this.plans.get(planId).catch((e: unknown) => {
      if (e instanceof PlanUnreadableError) return undefined;
      throw e;
    });
  }

  /**
   * The answer to a click (or a fresh-plan request) on a plan whose record cannot be read: what is
   * wrong, that nothing changed, and how to get a working plan (a new request for the same switch
   * replaces the unreadable record, see `plan`).
   */
  private unreadableRefusal(e: PlanUnreadableError): Refusal {
    return invalid(
      `This plan cannot be acted on: Switchyard's record of it in Redis is unreadable (${clipMessage(e.problem, 300)}); it was written by another version or edited by hand. Nothing was changed. Ask for a fresh plan with /rollback or /promote: it replaces this one.`,
      { planId: e.planId, ...(e.field === undefined ? {} : { field: e.field }) },
    );
  }

  private expiredOutcome(record: PlanRecord): ClickOutcome & { status: 'expired' } {
    // The store's time, not the record's span: a request or alert joining a plan restarts its time, so
    // expiresAt - createdAt may be longer than a plan is valid for.
    const minutes = Math.round(this.plans.ttlMs / 60_000);
    const valid = `plans are valid for ${minutes} minutes after they were last asked for`;
    // A two-person plan that was confirmed expired waiting for its approval, or a confirm's claim whose
    // queueing never finished: "not acted on" would read as if nobody had confirmed it, so say what
    // happened, as the record tells (nothing was switched either way).
    const confirmer = record.confirmedBy;
    const message =
      confirmer !== undefined && this.expiredAwaitingApproval(record)
        ? `This plan expired at ${utc(record.expiresAt)} (${valid}) waiting for a second permitted person to approve the ${record.plan.action} ${personName(confirmer)} confirmed; nothing was switched. Ask for a fresh plan.`
        : confirmer !== undefined
          ? `This plan expired at ${utc(record.expiresAt)} (${valid}) before its switch was queued: the ${record.plan.action} ${record.approvedBy === undefined ? `${personName(confirmer)} confirmed` : `${personName(record.approvedBy)} approved`} was never queued (its queueing did not finish); nothing was switched. Ask for a fresh plan.`
          : `This plan expired (${valid}) and was not acted on. Ask for a fresh plan.`;
    return { status: 'expired', planId: record.plan.id, message, record };
  }

  private async staleOutcome(record: PlanRecord): Promise<ClickOutcome & { status: 'stale' }> {
    const refusal: Refusal = record.refusal ?? {
      code: RefusalCode.planStale,
      message: `${record.plan.environment} changed since this plan was made. Ask for a fresh plan.`,
    };
    const snap = await this.snapshot(record.plan.environment);
    const current = snap.ok ? currentOf(snap.value) : unknownCurrent();
    return { status: 'stale', refusal, current, record };
  }

  /**
   * Dispatches a confirm on the record's current state (also after the plan moved under the click:
   * `tries` counts those re-decisions).
   */
  private async confirmFrom(actor: ActingUser, record: PlanRecord, tries = 0): Promise<ClickOutcome> {
    switch (record.state) {
      case PlanState.enqueued: {
        const retaken = await this.retakeOwnClaim(actor, record, tries);
        if (retaken !== undefined) return this.confirmFrom(actor, retaken, tries + 1);
        return this.joined(record);
      }
      case PlanState.awaitingApproval:
        return { status: 'awaiting_approval', record };
      case PlanState.cancelled:
        return { status: 'cancelled', record };
      case PlanState.stale:
        return this.staleOutcome(record);
      case PlanState.expired:
        return this.expiredOutcome(record);
      case PlanState.pending:
        break;
      default:
        return assertNever(record.state, 'plan state');
    }
    if (tries > MAX_REDECISIONS) return this.keptChanging(actor, record);
    const fresh = await this.freshness(record.plan);
    if (fresh.kind === 'refused') return this.refused(record, actor, fresh.refusal);
    if (fresh.kind === 'stale') return this.markStale(actor, record, fresh, 'confirm', tries);
    if (this.twoPersonRule(record.plan.environment)) {
      const via = this.grantOf(actor, record.plan.environment);
      const moved = await this.plans.transition(
        record.plan.id,
        [PlanState.pending],
        PlanState.awaitingApproval,
        {
          confirmedBy: stripMembership(actor),
          ...(via === undefined ? {} : { confirmedVia: via }),
        },
        [],
        { expect: record },
      );
      await this.noteExpiry(moved);
      if (!moved.ok) return this.afterLostRace(actor, record.plan.id, 'confirm', tries);
      await this.record(moved.record, 'requested', actor, {
        stage: 'confirmed',
        message: `confirmed by ${personName(actor)}; waiting for a second permitted person to approve`,
      });
      return { status: 'awaiting_approval', record: moved.record };
    }
    const via = this.grantOf(actor, record.plan.environment);
    return this.enqueueFrom(
      actor,
      record,
      [PlanState.pending],
      { confirmedBy: stripMembership(actor), ...(via === undefined ? {} : { confirmedVia: via }) },
      tries,
    );
  }

  /**
   * Dispatches an approve on the record's current state. Self-approval, the confirmer's permission and
   * freshness are decided on `record`, and the claim moves only that record: when the plan moved or
   * was replaced meanwhile (say the request was withdrawn and the approver asked for the same switch
   * and confirmed it himself), the approval is decided again on the record as it is then.
   */
  private async approveFrom(actor: ActingUser, record: PlanRecord, tries = 0): Promise<ClickOutcome> {
    switch (record.state) {
      case PlanState.enqueued: {
        const retaken = await this.retakeOwnClaim(actor, record, tries);
        if (retaken !== undefined) return this.approveFrom(actor, retaken, tries + 1);
        return this.joined(record);
      }
      case PlanState.pending:
        return {
          status: 'refused',
          refusal: invalid(
            `Nothing to approve yet: this ${record.plan.action} of ${record.plan.environment} has not been confirmed.`,
            { planId: record.plan.id, state: record.state },
          ),
          record,
        };
      case PlanState.cancelled:
        return { status: 'cancelled', record };
      case PlanState.stale:
        return this.staleOutcome(record);
      case PlanState.expired:
        return this.expiredOutcome(record);
      case PlanState.awaitingApproval:
        break;
      default:
        return assertNever(record.state, 'plan state');
    }
    const asked = record.confirmedBy ?? record.requestedBy;
    // One person, also across surfaces where the config's `people` links their accounts.
    const selfAs = samePerson(actor, asked, this.config)
      ? asked
      : record.requestedBy.surface !== 'system' && samePerson(actor, record.requestedBy, this.config)
        ? record.requestedBy
        : undefined;
    // The two-person rule is the one in force at the click, not at the confirm: a request confirmed
    // under it can outlive a config change (plans survive restarts for their hour). Turned off since,
    // one permitted person suffices, and the Approve its message offers (its only way forward) must
    // not refuse the confirmer with a rule that no longer holds: it queues the switch.
    const twoPersons = this.twoPersonRule(record.plan.environment);
    // The confirmer's own click records no approver (that would claim a second person); anyone else
    // who clicks did approve someone else's confirmation, and is recorded as the approver.
    const byConfirmer =
      record.confirmedBy !== undefined && samePerson(actor, record.confirmedBy, this.config);
    if (selfAs !== undefined && twoPersons) {
      return this.refused(record, actor, {
        code: RefusalCode.selfApproval,
        message: this.selfApprovalMessage(actor, selfAs, record),
        context: { planId: record.plan.id, environment: record.plan.environment },
      });
    }
    // (The confirmer's own account clicking was judged just now, with the memberships its click
    // carries. A linked account of theirs was judged as itself: the switch is queued in the name of
    // the confirmer's account, which must still be permitted too.)
    const ownAccount = record.confirmedBy !== undefined && sameActor(actor, record.confirmedBy);
    const confirmer = ownAccount ? undefined : this.confirmerNotPermitted(record);
    if (confirmer !== undefined) return this.refused(record, actor, confirmer);
    if (tries > MAX_REDECISIONS) return this.keptChanging(actor, record);
    const fresh = await this.freshness(record.plan);
    if (fresh.kind === 'refused') return this.refused(record, actor, fresh.refusal);
    if (fresh.kind === 'stale') return this.markStale(actor, record, fresh, 'approve', tries);
    const via = this.grantOf(actor, record.plan.environment);
    return this.enqueueFrom(
      actor,
      record,
      [PlanState.awaitingApproval],
      !twoPersons && byConfirmer
        ? {}
        : { approvedBy: stripMembership(actor), ...(via === undefined ? {} : { approvedVia: via }) },
      tries,
    );
  }

  /**
   * A `self_approval` refusal's words, by what the clicker did (asked for the switch, or confirmed
   * it): "cannot approve their own request" puzzled an asker whom someone else confirmed. When the
   * asker and the confirmer are two people, only a third may approve; if nobody else is around, the
   * way out under the same rule is a request one of them asks for and confirms alone, which the
   * other may then approve (only its asker and confirmer are barred).
   */
  private selfApprovalMessage(actor: ActingUser, selfAs: Actor, record: PlanRecord): string {
    const p = record.plan;
    const env = p.environment;
    const who = `${personName(actor)}${linkedClause(actor, selfAs, this.config)}`;
    const confirmer = record.confirmedBy ?? record.requestedBy;
    const asker = record.requestedBy.surface === 'system' ? undefined : record.requestedBy;
    const two = asker !== undefined && !samePerson(asker, confirmer, this.config);
    const rule = `(${env}'s two-person rule)`;
    if (!two)
      return `${who} ${asker === undefined ? '' : 'asked for and '}confirmed this ${p.action} of ${env}, so someone other than ${personName(confirmer)} must approve it ${rule}.`;
    const isAsker = samePerson(selfAs, asker, this.config);
    const did = isAsker
      ? `asked for this ${p.action} of ${env} and ${personName(confirmer)} confirmed it`
      : `confirmed this ${p.action} of ${env}, which ${personName(asker)} asked for`;
    const again =
      p.action === PlanAction.rollback ? `/rollback ${env} ${p.target.id}` : `/promote ${p.target.id}`;
    return `${who} ${did}, so someone other than ${personName(asker)} and ${personName(confirmer)} must approve it ${rule}. If nobody else is around: Cancel it, then one of you asks again (${again}) and confirms it alone, and the other approves.`;
  }

  /**
   * Whether the expired `record` lapsed waiting for a second person's approval, rather than being a
   * claim whose queueing never finished (or a plan nobody confirmed). Decided on the record, by the
   * state it expired from, never by the two-person rule in force when it is shown: that may have been
   * turned off over a request waiting for approval, or on over a single person's claim. A record
   * expired by an earlier version (no `expiredFrom`) is judged by the rule in force, as it was then;
   * one shown expired before its move to `expired` (past its time, not yet settled) by its state.
   */
  expiredAwaitingApproval(record: PlanRecord): boolean {
    if (record.confirmedBy === undefined || record.approvedBy !== undefined) return false;
    const from = record.state === PlanState.expired ? record.expiredFrom : record.state;
    if (from !== undefined) return from === PlanState.awaitingApproval;
    return this.twoPersonRule(record.plan.environment);
  }

  /**
   * The two-person rule needs two people permitted *now*: the approval queues the switch in the
   * confirmer's name (`requestedBy`), and plans live an hour and survive restarts, so the confirmer is
   * checked again against the current config, with the memberships that let them confirm. A refusal
   * when they are no longer permitted; undefined when they are.
   */
  private confirmerNotPermitted(record: PlanRecord): Refusal | undefined {
    const confirmer = record.confirmedBy;
    if (confirmer === undefined) return undefined;
    const env = record.plan.environment;
    const still = canAct({ ...confirmer, ...(record.confirmedVia ?? {}) }, env, { config: this.config });
    if (still.ok) return undefined;
    // (An environment that lost its allow list on a real platform refuses the approver first.)
    return {
      code: RefusalCode.forbidden,
      message: `This ${record.plan.action} of ${env} cannot be approved: ${mention(confirmer)}, who confirmed it, is no longer on ${env}'s allow list, and a switch is only queued in the name of a person permitted now. Cancel this request and ask for a fresh plan for a permitted person to confirm.`,
      context: {
        planId: record.plan.id,
        environment: env,
        reason: 'confirmer_not_permitted',
        confirmer: { surface: confirmer.surface, userId: confirmer.userId },
      },
    };
  }

  /**
   * The memberships of `actor` on `environment`'s allow list (stored with a confirm or an approval, and
   * handed to the switch job: see `Grant`).
   */
  private grantOf(actor: ActingUser, environment: string): Grant | undefined {
    const allow = this.config.file.environments[environment]?.allow;
    if (allow === undefined) return undefined;
    const groups =
      actor.surface === 'slack' ? (actor.groups ?? []).filter((g) => allow.slack.groups.includes(g)) : [];
    const roles =
      actor.surface === 'discord' ? (actor.roles ?? []).filter((r) => allow.discord.roles.includes(r)) : [];
    if (groups.length === 0 && roles.length === 0) return undefined;
    return {
      ...(groups.length === 0 ? {} : { groups: [...new Set(groups)] }),
      ...(roles.length === 0 ? {} : { roles: [...new Set(roles)] }),
    };
  }

  /**
   * A cancel (or dismiss) on the record's current state. Who may cancel is decided on `record`, and the
   * move names it: when the plan moved meanwhile (a permitted person confirmed it after an unpermitted
   * asker's click read it), the cancel is decided again on the record as it is then. A dismissal is
   * remembered in the same step as the cancel, so an alert handled in between never finds the plan
   * cancelled and not yet dismissed, and a dismiss that lost to someone else's cancel leaves none.
   */
  private async cancelFrom(
    actor: ActingUser,
    record: PlanRecord,
    verb: 'cancelled' | 'dismissed',
    tries = 0,
  ): Promise<CancelOutcome> {
    switch (record.state) {
      case PlanState.enqueued:
      case PlanState.pending:
      case PlanState.awaitingApproval: {
        const refusal = this.cancelRefusal(actor, record);
        if (refusal !== undefined) return this.refused(record, actor, refusal);
        break;
      }
      case PlanState.cancelled:
      case PlanState.stale:
      case PlanState.expired:
        break;
      default:
        return assertNever(record.state, 'plan state');
    }
    switch (record.state) {
      case PlanState.enqueued: {
        // A cancel never enqueues: before the winning click stored the job id, its enqueue may still
        // fail and undo the claim, and a job made here would then run for a plan shown as pending.
        const jobId = record.jobId;
        return {
          status: 'running',
          ...(jobId === undefined ? {} : { jobId }),
          message: `Too late to cancel: this ${record.plan.action} of ${record.plan.environment} is already ${jobId === undefined ? 'being queued' : `queued or running (job ${jobId})`}.`,
          record,
        };
      }
      case PlanState.cancelled:
        return { status: 'cancelled', record };
      case PlanState.stale:
        return this.staleOutcome(record);
      case PlanState.expired:
        return this.expiredOutcome(record);
      case PlanState.pending:
      case PlanState.awaitingApproval:
        break;
      default:
        return assertNever(record.state, 'plan state');
    }
    if (tries > MAX_REDECISIONS) return this.keptChanging(actor, record);
    // A dismissal silences alerts for the switch (for as long as its record is kept), so it is
    // recorded only for someone permitted on the environment: the one who asked, withdrawing their own
    // request (no alert asked for it), or a confirmer no longer on the allow list, only cancels.
    const dismissal = verb === 'dismissed' && this.silenceRefusal(actor, record) === undefined;
    const at = this.clock.now();
    const moved = await this.plans.transition(
      record.plan.id,
      OPEN_STATES,
      PlanState.cancelled,
      // On the record too, so every message of the plan says alerts will not suggest it again.
      { cancelledBy: stripMembership(actor), ...(dismissal ? { dismissedAt: at } : {}) },
      [],
      {
        expect: record,
        ...(dismissal ? { dismissal: { by: personName(actor), at } } : {}),
      },
    );
    if (!moved.ok) {
      const now = await this.load(record.plan.id);
      if (now === undefined) return this.goneOutcome(record.plan.id);
      return this.cancelFrom(actor, now, verb, tries + 1);
    }
    const p = record.plan;
    await this.record(moved.record, 'cancelled', actor, {
      message:
        verb === 'dismissed' && !dismissal
          ? `${personName(actor)} cancelled the ${p.action} to ${p.target.id} (a dismiss by someone not permitted on ${p.environment}: alerts may still suggest it)`
          : `${personName(actor)} ${verb} the ${p.action} to ${p.target.id}`,
    });
    return { status: 'cancelled', record: moved.record };
  }

  /**
   * Claims the plan (open → enqueued, one winner, only the record decided on), audits the approval,
   * then enqueues. The `approved` entry is written before the job exists: a worker appends `started` as
   * soon as it holds the environment, which may well come before this process hears back from the
   * queue, and the history must read in the order things happened. The claim makes this click the one
   * winner, so there is exactly one `approved` per approval however many clicks race. If enqueueing
   * fails the claim is undone so the click can be retried, a `failed` entry (code `enqueue_failed`)
   * says the approval was not queued, and the fault is rethrown. If the undo fails too (Redis went
   * away), the claim is left without a job: the next read of the plan after ORPHANED_CLAIM_MS settles
   * it (`settleAbandoned`). Once the enqueue succeeded nothing is thrown any more: the switch will run,
   * so the click is answered `enqueued` even when writing the job id on the plan fails (`storeJobId`:
   * the next read writes it).
   */
  private async enqueueFrom(
    actor: ActingUser,
    record: PlanRecord,
    from: readonly PlanState[],
    patch: PlanPatch,
    tries: number,
  ): Promise<ClickOutcome> {
    // Job data the queue would refuse (a plan stored before buildPlan refused such plans, say one
    // moving more domains than a switch verifies) is refused before the claim: a refused click changes
    // nothing (no `approved` entry, the plan stays open), and says which field and what was expected.
    const unqueueable = this.jobDataRefusal(record, patch);
    if (unqueueable !== undefined) return this.refused(record, actor, unqueueable);
    const claimed = await this.plans.transition(record.plan.id, from, PlanState.enqueued, patch, [], {
      expect: record,
    });
    await this.noteExpiry(claimed);
    // Which click this is: an approve moves a request waiting for approval (with or without an
    // approver: see approveFrom), a confirm an open plan.
    const click = from.includes(PlanState.awaitingApproval) ? 'approve' : 'confirm';
    if (!claimed.ok) return this.afterLostRace(actor, record.plan.id, click, tries);
    const mine = { expect: claimed.record };
    const p = claimed.record.plan;
    const jobId = jobIdForPlan(p.id);
    await this.record(claimed.record, 'approved', actor, {
      jobId,
      message: patch.approvedBy
        ? `${personName(actor)} approved the ${p.action} requested by ${personName(claimed.record.confirmedBy ?? claimed.record.requestedBy)}`
        : click === 'approve'
          ? `${personName(actor)} queued the ${p.action} to ${p.target.id} they confirmed, with no second person: ${p.environment}'s two-person rule was turned off since`
          : `${personName(actor)} confirmed the ${p.action} to ${p.target.id}`,
    });
    let result: EnqueueResult;
    const data = this.jobData(claimed.record);
    try {
      result = await this.queue.enqueue(data);
    } catch (e) {
      const back = from[0] ?? PlanState.pending;
      const undone = await this.plans
        .transition(
          p.id,
          [PlanState.enqueued],
          back,
          {},
          // Exactly what the claim set (an approval by the confirmer set nothing: the confirmer stays).
          (Object.keys(patch) as (keyof PlanPatch)[]).filter((f) => patch[f] !== undefined),
          mine,
        )
        .then(
          (r) => r.ok,
          (undoError: unknown) => {
            this.logger.error(
              { err: undoError, planId: p.id },
              'undo of claim failed: the plan stays claimed without a job until its next read after the orphan threshold',
            );
            return false;
          },
        );
      // The queue refusing the data (its schema, checked above already: a queue of another version)
      // is said in words, never as zod's JSON, and answered as a refusal: retrying cannot help.
      const zodError = e instanceof z.ZodError ? e : undefined;
      const refusedData = zodError === undefined ? undefined : this.jobRefusal(p, zodError, data);
      const reason =
        zodError === undefined
          ? (e instanceof Error ? e.message : String(e)).slice(0, 300)
          : jobDataIssues(zodError, data);
      await this.record(claimed.record, 'failed', actor, {
        jobId,
        code: ENQUEUE_FAILED,
        message: `the ${p.action} to ${p.target.id} ${patch.approvedBy !== undefined ? 'approved' : 'confirmed'} by ${personName(actor)} could not be queued (${reason})${refusedData !== undefined ? '; the queue refuses this switch as planned, so retrying cannot help: ask for a fresh plan' : undone ? `; the plan is open again: ${click} again to retry` : ''}`,
      });
      if (refusedData !== undefined) {
        const now = undone ? await this.plans.get(p.id).catch(() => undefined) : undefined;
        return { status: 'refused', refusal: refusedData, record: now ?? claimed.record };
      }
      throw e;
    }
    // From here on the switch is queued and will run: nothing that fails below may make the click's
    // answer a fault ("nothing was switched"), so every step catches its own faults.
    if (result.jobId !== jobId)
      this.logger.warn(
        { planId: p.id, jobId: result.jobId, audited: jobId },
        'queue answered another job id',
      );
    const withJob = await this.storeJobId(claimed.record, result.jobId);
    await this.handOverLateMessages(p.id, result.jobId, claimed.record, withJob);
    const final = withJob ?? claimed.record;
    this.logger.info(
      {
        planId: p.id,
        jobId: result.jobId,
        queueJoined: result.joined,
        environment: p.environment,
      },
      'switch enqueued',
    );
    // This click won the claim, so it is the one that made the job, even when a racing click reached
    // the queue's idempotent enqueue first (see `joined`); the queue's own answer is only logged.
    return { status: 'enqueued', jobId: result.jobId, joined: false, record: final };
  }

  /**
   * Writes the id of the job just queued for `claim` on the plan (only on that claim: see `enqueueFrom`).
   * The stored record, or undefined when the plan moved on meanwhile (logged) or the write failed. A
   * failed write is logged and remembered (`UnstoredJob`), never thrown: the switch is queued, and the
   * click's answer must say so; the next read of the plan writes it.
   */
  private async storeJobId(claim: PlanRecord, jobId: string): Promise<PlanRecord | undefined> {
    const planId = claim.plan.id;
    try {
      const moved = await this.writeJobId(claim, jobId);
      if (moved.ok) return moved.record;
      this.logger.warn(
        { planId, jobId, state: moved.record?.state },
        'plan changed before its job id was stored',
      );
      return undefined;
    } catch (e) {
      const now = this.clock.now();
      // Entries this old are settled by any read anyway (`settleAbandoned`): not kept for ever.
      for (const [id, old] of this.unstoredJobs)
        if (now - old.at >= ORPHANED_CLAIM_MS) this.unstoredJobs.delete(id);
      this.unstoredJobs.set(planId, {
        jobId,
        generation: claim.generation,
        revision: claim.revision ?? 0,
        at: now,
      });
      this.logger.warn(
        { err: e, planId, jobId },
        'switch queued, but its job id could not be stored on the plan: the next read of the plan stores it',
      );
      return undefined;
    }
  }

  /**
   * The job this process queued for `record`'s claim and could not write on it (`UnstoredJob`), while
   * `record` is still that claim without a job id; undefined otherwise (the entry is dropped once the
   * plan moved on: its id stored by another read, the claim settled, the plan replaced).
   */
  private ownJob(record: PlanRecord): string | undefined {
    const own = this.unstoredJobs.get(record.plan.id);
    if (own === undefined) return undefined;
    const same =
      record.state === PlanState.enqueued &&
      record.jobId === undefined &&
      record.generation === own.generation &&
      (record.revision ?? 0) === own.revision;
    if (same) return own.jobId;
    this.unstoredJobs.delete(record.plan.id);
    return undefined;
  }

  /**
   * Writes `jobId` (this process's job for the claim, see `ownJob`) on `record`, only that record. When
   * Redis fails again, the record as read with the job id set: this process knows the job is the
   * claim's, and the next read tries the write again.
   */
  private async storeOwnJob(record: PlanRecord, jobId: string): Promise<TransitionResult> {
    const planId = record.plan.id;
    try {
      const moved = await this.writeJobId(record, jobId);
      this.unstoredJobs.delete(planId);
      if (moved.ok) this.logger.info({ planId, jobId }, 'job id of the queued switch stored on its plan');
      return moved;
    } catch (e) {
      this.logger.warn(
        { err: e, planId, jobId },
        'job id of a queued switch still not stored on its plan: the next read tries again',
      );
      return { ok: true, record: { ...record, jobId } };
    }
  }

  /** Writes `jobId` on the claim `record` (enqueued, no job id yet), only while it is that record. */
  private writeJobId(record: PlanRecord, jobId: string): Promise<TransitionResult> {
    return this.plans.transition(record.plan.id, [PlanState.enqueued], PlanState.enqueued, { jobId }, [], {
      expect: record,
    });
  }

  /** `record`, with the job id this process could not write on it written now (see `ownJob`). */
  private async withOwnJob(record: PlanRecord): Promise<PlanRecord | undefined> {
    const jobId = this.ownJob(record);
    if (jobId === undefined) return record;
    return (await this.storeOwnJob(record, jobId)).record;
  }

  /**
   * Hands the job the plan's messages that its data lacks: those attached after the claim (a
   * `/rollback` for the same switch posted meanwhile, on any replica), whose attach ran before the job
   * existed (or while the id still named an ended job of the plan's past, whose messages the enqueue
   * cleared), and any beyond the job data's first 50. An attach that ran after the job existed handed
   * its message over itself (see `attach`). A failure is logged: the switch is queued, and the click's
   * answer must say so.
   */
  private async handOverLateMessages(
    planId: string,
    jobId: string,
    claimed: PlanRecord,
    stored: PlanRecord | undefined,
  ): Promise<void> {
    if (!this.queue.addMessages) return;
    try {
      const sent = new Set(this.jobData(claimed).messages.map(messageRefKey));
      const now = stored ?? (await this.plans.get(planId));
      const late = (now?.messages ?? []).filter((m) => !sent.has(messageRefKey(m)));
      if (late.length > 0) await this.queue.addMessages(jobId, late);
    } catch (e) {
      this.logger.warn(
        { err: e, planId, jobId },
        'messages attached while the switch was queued could not be handed to its job',
      );
    }
  }

  /**
   * A click whose move found the plan changed since it was read (another click moved it, or a new
   * request replaced it): reads it again (settling it, see `load`) and decides afresh.
   */
  private async afterLostRace(
    actor: ActingUser,
    planId: string,
    click: 'confirm' | 'approve',
    tries: number,
  ): Promise<ClickOutcome> {
    const now = await this.load(planId);
    if (now === undefined) return this.goneOutcome(planId);
    return click === 'confirm'
      ? this.confirmFrom(actor, now, tries + 1)
      : this.approveFrom(actor, now, tries + 1);
  }

  private goneOutcome(planId: string): ClickOutcome & { status: 'expired' } {
    return {
      status: 'expired',
      planId,
      message: 'This plan is no longer known (it expired). Ask for a fresh one with /rollback or /promote.',
      record: undefined,
    };
  }

  /**
   * A refusal for a click that kept finding the plan changed under it (MAX_REDECISIONS times): it did
   * nothing, rather than act on a record it did not check.
   */
  private keptChanging(actor: ActingUser, record: PlanRecord): Promise<ClickOutcome & { status: 'refused' }> {
    return this.refused(record, actor, {
      code: RefusalCode.operationInProgress,
      message: `This ${record.plan.action} of ${record.plan.environment} kept changing while your click was handled (others were acting on it), so your click did nothing. Look at the message again, and click again if it is still needed.`,
      context: { planId: record.plan.id, state: record.state },
    });
  }

  /**
   * The clicker's own claim, still without a job `OWN_CLAIM_RETRY_MS` after it was made, clicked
   * again: settled now (`settleAbandoned`: the job's id stored if the job exists after all, else the
   * claim undone or expired), and the settled record returned for the click to be decided on like any
   * other (every check again). Undefined when that does not apply: the click joins.
   */
  private async retakeOwnClaim(
    actor: ActingUser,
    record: PlanRecord,
    tries: number,
  ): Promise<PlanRecord | undefined> {
    if (record.jobId !== undefined || tries > MAX_REDECISIONS) return undefined;
    const claimant = record.approvedBy ?? record.confirmedBy;
    if (claimant === undefined || !sameActor(actor, claimant)) return undefined;
    if (this.clock.now() - record.updatedAt < OWN_CLAIM_RETRY_MS) return undefined;
    const moved = await this.settleAbandoned(record);
    return moved.record;
  }

  /**
   * An enqueued plan clicked again: the same job, joined. Until the winner stores the job id, this
   * answers with the id the job gets (derived from the plan id) and never enqueues: a job made here
   * could start before the winner's `approved` entry, and would run for a plan shown as open again if
   * the winner's enqueue failed and undid the claim. A claim left without a job id for longer than a
   * winner can take never reaches this: reading the plan settles it first (`load`, `settleAbandoned`).
   */
  private joined(record: PlanRecord): ClickOutcome {
    return { status: 'enqueued', jobId: record.jobId ?? jobIdForPlan(record.plan.id), joined: true, record };
  }

  /**
   * Marks the plan stale (what the platform shows changed since it was made), only the record the
   * freshness was read for; when it moved meanwhile, the click is decided again on it.
   */
  private async markStale(
    actor: ActingUser,
    record: PlanRecord,
    fresh: Freshness & { kind: 'stale' },
    click: 'confirm' | 'approve',
    tries: number,
  ): Promise<ClickOutcome> {
    const moved = await this.plans.transition(
      record.plan.id,
      OPEN_STATES,
      PlanState.stale,
      { refusal: fresh.refusal },
      [],
      { expect: record },
    );
    if (!moved.ok) {
      if (moved.record === undefined) return this.goneOutcome(record.plan.id);
      if (moved.record.state === PlanState.stale)
        return {
          status: 'stale',
          refusal: moved.record.refusal ?? fresh.refusal,
          current: fresh.current,
          record: moved.record,
        };
      return this.afterLostRace(actor, record.plan.id, click, tries);
    }
    await this.record(moved.record, 'refused', actor, {
      code: fresh.refusal.code,
      message: fresh.refusal.message,
    });
    return { status: 'stale', refusal: fresh.refusal, current: fresh.current, record: moved.record };
  }

  /**
   * A refused click: audited once per person, plan generation and code within the audit's window (a
   * repeat is counted: anyone who sees a confirmation can press it, as often as they like), logged
   * every time; nothing else changes.
   */
  private async refused(
    record: PlanRecord,
    actor: ActingUser,
    refusal: Refusal,
  ): Promise<ClickOutcome & { status: 'refused' }> {
    const audited = await this.recordRefusal(record, actor, refusal);
    this.logger.info(
      {
        planId: record.plan.id,
        environment: record.plan.environment,
        code: refusal.code,
        userId: actor.userId,
        ...(audited === undefined ? {} : { audited: audited.written, times: audited.count }),
      },
      'click refused',
    );
    return { status: 'refused', refusal, record };
  }

  /**
   * Audits a refused click through `appendRefusal` (once per person, plan generation and code), or
   * `append` for an audit log without it. A failing audit log is logged, never allowed to change the
   * outcome.
   */
  private async recordRefusal(
    record: PlanRecord,
    actor: ActingUser,
    refusal: Refusal,
  ): Promise<RefusalAppend | undefined> {
    const extra = { code: refusal.code, message: refusal.message };
    if (this.audit.appendRefusal === undefined) {
      await this.record(record, 'refused', actor, extra);
      return undefined;
    }
    const entry = { ...this.entryOf(record, 'refused', actor, extra), actor: stripMembership(actor) };
    try {
      return await this.audit.appendRefusal(
        { ...entry, event: 'refused', planId: record.plan.id, code: refusal.code },
        record.generation,
      );
    } catch (e) {
      this.logger.warn({ err: e, planId: record.plan.id, event: 'refused' }, 'audit append failed');
      return undefined;
    }
  }

  /**
   * Re-reads the platform: has traffic moved (or the switch already happened) since the plan? Only
   * what the platform shows makes a plan stale (checkFresh, isAlreadyDone). A snapshot the platform
   * refuses (Switchyard's key rejected or lacking a permission, a precondition of its own) says
   * nothing about the plan: the click is refused and the plan left as it is.
   */
  private async freshness(plan: Plan): Promise<Freshness> {
    const snap = await this.snapshot(plan.environment);
    if (!snap.ok) return { kind: 'refused', refusal: snap.refusal };
    const expectation: PlanExpectation = {
      action: plan.action,
      // A plan of another project (the configuration now names another platform or project) is
      // stale as such: its deployment ids say nothing about the environment read now.
      projectId: plan.projectId,
      environment: plan.environment,
      targetId: plan.target.id,
      expectedCurrent: plan.expectedCurrent,
      expectedRolledBack: plan.expectedRolledBack,
      // What the person saw: a domain added or no longer affected makes the plan stale (it changes what
      // moves). A target that went to standby meanwhile does not: the switch is the same, the job
      // reactivates the target first and says so (making people confirm, and approve, again in an
      // incident would cost more than the slower start).
      affectedHostnames: plan.affectedDomains.map((d) => d.hostname),
    };
    const current = currentOf(snap.value);
    if (isAlreadyDone(expectation, snap.value)) {
      return {
        kind: 'stale',
        refusal: {
          code: RefusalCode.planStale,
          message: `Already done: ${plan.environment} is ${plan.action === 'rollback' ? 'rolled back to' : 'promoted to'} ${plan.target.id}. Nothing to do.`,
          context: { environment: plan.environment, current: plan.target.id, alreadyDone: true },
        },
        current,
      };
    }
    const check = checkFresh(expectation, snap.value, { platform: this.platform.name });
    if (!check.ok) return { kind: 'stale', refusal: check.refusal, current };
    return { kind: 'fresh' };
  }

  /**
   * What Switchyard's own audit says of `snapshot`'s environment that its platform keeps no record of
   * (src/domain/own-record.ts): the deployments it rolled back from, the one live before the current
   * one and since when the environment is rolled back, as far as its succeeded switches among the
   * newest `recentAudit` entries tell. Plans' default targets and alert correlation read it. Undefined,
   * without reading the audit, for a platform with live history (the local one), which is read instead.
   */
  async ownRecord(snapshot: EnvironmentSnapshot): Promise<OwnRecord | undefined> {
    if (!keepsNoLiveHistory(snapshot)) return undefined;
    return ownRecordFromAudit(snapshot, await this.audit.recent(snapshot.environment.slug, this.recentAudit));
  }

  /** A platform snapshot; a platform refusal (unknown environment…) becomes a value. */
  private async snapshot(environment: string): Promise<SnapshotOutcome> {
    try {
      return { ok: true, value: await this.platform.snapshot(environment) };
    } catch (e) {
      if (e instanceof RefusalError) return { ok: false, refusal: e.refusal };
      throw e;
    }
  }

  /**
   * `/promote dep_x`: finds the deployment in any environment. A word that names neither is refused
   * saying so, with the valid environments and each one's recent deployments (never cut silently),
   * as an unknown deployment when it reads as one (`looksLikeDeploymentRef`), else as an unknown
   * environment; a prefix matching several deployments of one environment says which.
   */
  private async findDeployment(
    slugs: readonly string[],
    ref: string,
  ): Promise<{ ok: true; deployment: Deployment } | { ok: false; refusal: Refusal }> {
    const exact = await this.platform.getDeployment(ref);
    if (exact !== undefined && slugs.includes(exact.environment)) return { ok: true, deployment: exact };
    const matches: Deployment[] = [];
    const recent: string[] = [];
    const listed: string[] = [];
    const seen: Deployment[] = [];
    // Per environment, its own answer for a prefix matching several of its deployments.
    let ambiguous: Refusal | undefined;
    for (const slug of slugs) {
      const snap = await this.snapshot(slug);
      if (!snap.ok) continue;
      const deployments = snap.value.deployments;
      seen.push(...deployments);
      recent.push(...deployments.slice(0, RECENT_PER_ENVIRONMENT).map((d) => d.id));
      const ids = idList(
        deployments.map((d) => d.id),
        RECENT_PER_ENVIRONMENT,
        snap.value.deploymentsTruncated === true,
      );
      listed.push(`${ids || 'none'} (${slug})`);
      const found = matchDeployments(snap.value, ref);
      matches.push(...found);
      if (found.length > 1) {
        const r = resolveDeployment(snap.value, ref);
        if (!r.ok) ambiguous = r.refusal;
      }
    }
    if (matches.length === 1 && matches[0]) return { ok: true, deployment: matches[0] };
    if (matches.length > 1) {
      const environments = new Set(matches.map((d) => d.environment));
      if (environments.size === 1 && ambiguous !== undefined) return { ok: false, refusal: ambiguous };
      return {
        ok: false,
        refusal: {
          code: RefusalCode.unknownDeployment,
          message: `"${ref}" matches ${matches.length} deployments in ${environments.size} environments (${idList(
            matches.map((d) => `${d.id} in ${d.environment}`),
            10,
          )}); give more characters, or the full id.`,
          context: { input: ref, valid: [...slugs], recent, matches: matches.map((d) => d.id) },
        },
      };
    }
    const deploymentLike = looksLikeDeploymentRef(ref, seen);
    // A typo of an environment (`prodution`) is named, never acted on.
    const near = deploymentLike ? undefined : closest(ref, slugs);
    return {
      ok: false,
      refusal: {
        code: deploymentLike ? RefusalCode.unknownDeployment : RefusalCode.unknownEnvironment,
        message: `"${ref}" is neither an environment nor a deployment.${near === undefined ? '' : ` Did you mean ${near}?`} Valid environments: ${slugs.join(', ') || 'none'}. Recent deployments: ${listed.join('; ') || 'none'}.`,
        context: { input: ref, valid: [...slugs], recent, matches: [] },
      },
    };
  }

  /**
   * Why the switch job of `record` (with the click's `patch`) would be refused by the queue's schema
   * (`switchJobSchema`, src/queue.ts), as a refusal naming each field and what was expected; undefined
   * when it is valid.
   */
  private jobDataRefusal(record: PlanRecord, patch: PlanPatch): Refusal | undefined {
    const data = this.jobData(record, patch);
    const parsed = switchJobSchema.safeParse(data);
    return parsed.success ? undefined : this.jobRefusal(record.plan, parsed.error, data);
  }

  /** The refusal of a switch job whose data the queue's schema refuses (`error`). */
  private jobRefusal(plan: Plan, error: z.ZodError, data: SwitchJobRequest): Refusal {
    return invalid(
      `This ${plan.action} of ${plan.environment} cannot be queued: ${jobDataIssues(error, data)}. Nothing was changed. Ask for a fresh plan with /${plan.action} ${plan.environment}.`,
      {
        planId: plan.id,
        fields: [...new Set(error.issues.map((i) => i.path.map(String).join('.') || '(job)'))].slice(0, 20),
      },
    );
  }

  /**
   * The data of the plan's switch job. `patch`: who the click records (the confirmer, the approver),
   * for data checked before the claim that stores them.
   */
  private jobData(
    record: PlanRecord,
    patch: Pick<PlanPatch, 'confirmedBy' | 'confirmedVia' | 'approvedBy' | 'approvedVia'> = {},
  ): SwitchJobRequest {
    const p = record.plan;
    const confirmedBy = patch.confirmedBy ?? record.confirmedBy;
    const approvedBy = patch.approvedBy ?? record.approvedBy;
    // What let each of them in at their click (nothing for a person let in by their user id): the
    // worker judging the queued switch again counts only these memberships as held. A job without a
    // recorded confirmer (none is queued so) says nothing, and is judged as jobs of earlier versions.
    const requestedVia: Grant | undefined =
      patch.confirmedBy !== undefined ? patch.confirmedVia : record.confirmedVia;
    const approvedVia: Grant | undefined =
      approvedBy === undefined
        ? undefined
        : patch.approvedBy !== undefined
          ? patch.approvedVia
          : record.approvedVia;
    return {
      action: p.action,
      planId: p.id,
      projectId: p.projectId,
      environment: p.environment,
      targetId: p.target.id,
      expectedCurrent: p.expectedCurrent,
      expectedRolledBack: p.expectedRolledBack,
      domains: p.affectedDomains.map((d) => d.hostname),
      requestedBy: confirmedBy ?? record.requestedBy,
      ...(approvedBy === undefined ? {} : { approvedBy }),
      ...(confirmedBy === undefined
        ? {}
        : {
            grants: {
              ...(requestedVia === undefined ? {} : { requestedBy: requestedVia }),
              ...(approvedVia === undefined ? {} : { approvedBy: approvedVia }),
            },
          }),
      messages: record.messages.slice(0, 50),
      requestedAt: this.clock.now(),
      // The request this job is for: the record (a new request for the switch is a new generation)
      // and the claim that queues it (each confirm or approval that claims bumps the revision). The
      // queue joins an ended job of this very request (a late duplicate) and replaces one of another
      // request (asked again, say after a failure) by this id, not by comparing this host's clock
      // with the worker's. Records stored before generations existed say nothing (`requestedAt` then).
      ...(record.generation === undefined
        ? {}
        : { requestId: `${record.generation}.${record.revision ?? 0}` }),
    };
  }

  /** Appends an audit entry; a failing audit log is logged, never allowed to change the outcome. */
  private async record(
    record: PlanRecord,
    event: FlowAuditEntry['event'],
    actor: ActingUser | undefined,
    extra: AuditExtra,
  ): Promise<void> {
    const entry = this.entryOf(record, event, actor, extra);
    try {
      await this.audit.append(entry);
    } catch (e) {
      this.logger.warn({ err: e, planId: record.plan.id, event }, 'audit append failed');
    }
  }

  /** The audit entry of `event` on `record` by `actor`, now. */
  private entryOf(
    record: PlanRecord,
    event: FlowAuditEntry['event'],
    actor: ActingUser | undefined,
    extra: AuditExtra,
  ): FlowAuditEntry {
    const p = record.plan;
    return {
      at: this.clock.now(),
      environment: p.environment,
      action: p.action,
      event,
      ...(actor === undefined ? {} : { actor: stripMembership(actor) }),
      planId: p.id,
      targetId: p.target.id,
      fromId: p.expectedCurrent,
      ...(extra.code === undefined ? {} : { code: extra.code }),
      ...(extra.message === undefined ? {} : { message: extra.message.slice(0, 2000) }),
      ...(extra.jobId === undefined ? {} : { jobId: extra.jobId }),
      ...(extra.stage === undefined ? {} : { stage: extra.stage }),
      ...(extra.alert === undefined ? {} : { alert: extra.alert }),
    };
  }
}

/** What an entry says beyond who, when and what (see `auditEntrySchema`). */
type AuditExtra = Pick<FlowAuditEntry, 'code' | 'message' | 'jobId' | 'stage' | 'alert'>;

/**
 * `snapshot` with its rolled-back banner's "since" and "by" from Switchyard's own record, when its
 * platform (Unkey, Vercel) does not say them and Switchyard's rollback began the period: read as the
 * local platform says them (its latest rollback, and the period's start for `rolledBackSince`).
 */
function withOwnRollback(snapshot: EnvironmentSnapshot, entries: readonly AuditEntry[]): EnvironmentSnapshot {
  const env = snapshot.environment;
  if (!env.rolledBack || env.rolledBackAt !== undefined || !keepsNoLiveHistory(snapshot)) return snapshot;
  const own = ownRecordFromAudit(snapshot, entries);
  if (own.rolledBackSince === undefined || own.rolledBackAt === undefined) return snapshot;
  return {
    ...snapshot,
    environment: {
      ...env,
      rolledBackAt: own.rolledBackAt,
      rolledBackSince: env.rolledBackSince ?? own.rolledBackSince,
      ...(env.rolledBackBy === undefined && own.rolledBackBy !== undefined
        ? { rolledBackBy: own.rolledBackBy }
        : {}),
    },
  };
}

/** How permission refusals name a person: display name and id. */
function mention(actor: Actor): string {
  return actor.displayName === actor.userId ? actor.userId : `${actor.displayName} (${actor.userId})`;
}

/** Unix ms as the views show times: `2026-11-29 12:00 UTC`. */
function utc(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/**
 * The id an alert is listed under on a plan: the one the alert service gave it (`AlertContext.id`,
 * derived from its incident), else one derived from what identifies the alert.
 */
function alertIdOf(alert: AlertContext): string {
  if (alert.id !== undefined && ALERT_ID.test(alert.id)) return alert.id;
  const key = JSON.stringify([alert.source, alert.fingerprint ?? null, alert.title, alert.startedAt ?? null]);
  return createHash('sha256').update(key).digest('base64url').slice(0, 16);
}

/**
 * Whether an alert asked for the plan too: it was made for one (`alert`: an alert's plan, or a fresh
 * plan of one), lists one (`alerts`, `alertsMore`: an alert joined it, see `plan`), or has an alert
 * suggestion message (`suggestions`). Its suggestion then shows the plan in the incident channel, so
 * the request is no longer only the asker's to withdraw (see `Flow.cancelRefusal`).
 */
function answersAlert(record: PlanRecord): boolean {
  return (
    record.alert !== undefined ||
    (record.alerts?.length ?? 0) > 0 ||
    (record.alertsMore ?? 0) > 0 ||
    (record.suggestions?.length ?? 0) > 0
  );
}

function sameRef(a: MessageRef | undefined, b: MessageRef): boolean {
  return a !== undefined && a.surface === b.surface && a.channel === b.channel && a.messageId === b.messageId;
}

function stripMembership(actor: ActingUser): Actor {
  return {
    surface: actor.surface,
    userId: actor.userId,
    displayName: actor.displayName,
    // A Discord user's unique name: shown beside a nickname anyone can set (views: people).
    ...(actor.username === undefined ? {} : { username: actor.username }),
  };
}

function currentOf(snapshot: EnvironmentSnapshot): CurrentState {
  const id = snapshot.environment.currentDeploymentId;
  return {
    deploymentId: id,
    deployment: id === undefined ? undefined : snapshot.deployments.find((d) => d.id === id),
    rolledBack: snapshot.environment.rolledBack,
  };
}

function unknownCurrent(): CurrentState {
  return { deploymentId: undefined, deployment: undefined, rolledBack: false };
}
