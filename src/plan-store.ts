/**
 * Plans waiting for a click, held in Redis so that any bot replica can handle any click.
 *
 * One hash per plan id (`<prefix>plan:<id>`): the plan (JSON, zod-validated on every read), who asked,
 * the state, who confirmed/approved/cancelled, the job id, why it went stale, the alert it answers and
 * the chat messages showing it (one hash field per message, so attaching is atomic and idempotent).
 * An alert-suggested plan also keeps the alerts that pointed at it and its suggestion message per
 * destination (a channel, or a thread of one), so a storm of alerts for the same switch shows as one
 * message listing them, not one message per alert. Bounded however long the storm: the first 50 are
 * listed (one field per incident, and when each resolved), the next 1,000 counted by id with their
 * resolutions in a key of their own (`<prefix>plan-counted:<id>`), and any beyond only estimated (a
 * HyperLogLog, `<prefix>plan-untracked:<id>`), their counts kept as fields of the hash. A closed
 * one whose alerts a fresh plan of another id took over ("Make a fresh plan" after the platform moved)
 * points at that plan (`replannedAs`), so those alerts' incidents follow it.
 *
 * State machine (every move is one Lua script, so two replicas handling the same click, or 50
 * concurrent confirms, produce exactly one transition):
 *
 *   pending ──► awaiting_approval ──► enqueued
 *      │  └─────────────────────────────► enqueued
 *      └──► cancelled | stale | expired   (also from awaiting_approval)
 *
 * A plan may be acted on for `ttlMs` (default 1 h) after it was last asked for (`expiresAt`): made, or
 * joined by another request or an alert while open, which restarts its time (a person typing the
 * command 10 s before the hour ran out must not see their own confirmation expire seconds later, nor a
 * new incident be offered a rollback that lapses at once); its record is kept `retainMs` longer so
 * surfaces can still render "expired" and offer a fresh plan. Expiry is enforced in the same script as
 * the move to `awaiting_approval` or `enqueued`: a plan past `expiresAt` at the time of that move
 * becomes `expired` instead, however long the caller took between reading and acting.
 * Plan ids are deterministic (same action on the same platform state → same id), so asking twice for
 * the same switch joins the live record instead of creating a second one; a finished record
 * (cancelled, stale, expired) is replaced by the new request.
 *
 * Because a record can be replaced under the same id, and moves while a click is being decided (a
 * platform read takes a while), every record carries its `generation` (new with every record made) and
 * `revision` (bumped by every transition). A caller that decided on a record it read passes it as
 * `expect`: the move then happens only if the record is still that one, unchanged, in the same script;
 * otherwise nothing is set and the caller gets the record as it is now (`changed`), to decide again.
 */

import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import type { Plan } from './domain/plan.js';
import { type Refusal, RefusalCode } from './domain/result.js';
import { SwitchyardError } from './errors.js';
import { type Logger, silentLogger } from './log.js';
import {
  type Actor,
  actorSchema,
  type Grant,
  grantSchema,
  type MessageRef,
  messageRefSchema,
} from './progress.js';
import type { RedisClient } from './redis.js';
import { createRedis } from './redis.js';
import { describeIssues } from './zod-issues.js';

/** Where a plan is in its life. */
export const PlanState = {
  pending: 'pending',
  awaitingApproval: 'awaiting_approval',
  enqueued: 'enqueued',
  cancelled: 'cancelled',
  stale: 'stale',
  expired: 'expired',
} as const;
export type PlanState = (typeof PlanState)[keyof typeof PlanState];

const planStates = [
  PlanState.pending,
  PlanState.awaitingApproval,
  PlanState.enqueued,
  PlanState.cancelled,
  PlanState.stale,
  PlanState.expired,
] as const;

/** States in which a plan can still be clicked on. */
export const OPEN_STATES: readonly PlanState[] = [PlanState.pending, PlanState.awaitingApproval];

const commitSchema = z.object({ sha: z.string(), message: z.string(), author: z.string() });

const deploymentSchema = z.object({
  id: z.string().min(1),
  projectId: z.string(),
  environment: z.string(),
  branch: z.string(),
  commit: commitSchema,
  createdAt: z.number(),
  readyAt: z.number().exactOptional(),
  status: z.enum(['building', 'ready', 'failed', 'standby', 'stopped']),
});

const domainSchema = z.object({
  hostname: z.string().min(1),
  stickiness: z.enum(['live', 'environment', 'branch', 'deployment']),
  environment: z.string(),
  branch: z.string().exactOptional(),
  deploymentId: z.string().exactOptional(),
});

/** A stored plan (src/domain/plan.ts `Plan`), checked on read. */
export const planSchema = z.object({
  id: z.string().min(1),
  action: z.enum(['rollback', 'promote']),
  projectId: z.string(),
  environment: z.string().min(1),
  environmentKind: z.enum(['production', 'preview']),
  current: deploymentSchema,
  currentLiveSince: z.number().exactOptional(),
  target: deploymentSchema,
  affectedDomains: z.array(domainSchema),
  targetStandby: z.boolean(),
  rolledBack: z.boolean(),
  resumesAutoDeploys: z.boolean(),
  targetRolledBackFrom: z.literal(true).exactOptional(),
  usualBranch: z.string().exactOptional(),
  expectedCurrent: z.string(),
  expectedRolledBack: z.boolean(),
  createdAt: z.number(),
});

const refusalSchema = z.object({
  code: z.enum(Object.values(RefusalCode) as [RefusalCode, ...RefusalCode[]]),
  message: z.string(),
  context: z.record(z.string(), z.unknown()).exactOptional(),
});

/** What an alert suggestion carries, so the confirmation can say why it was offered. */
export const alertContextSchema = z.object({
  /** The incident's id in the plan's alert list (`PlanAlert.id`), when the alert service listed it. */
  id: z.string().min(1).exactOptional(),
  /** `alertmanager`, `grafana`, `slack`, … */
  source: z.string().min(1),
  title: z.string(),
  fingerprint: z.string().exactOptional(),
  url: z.string().exactOptional(),
  /** Unix ms the alert started firing. */
  startedAt: z.number().exactOptional(),
  status: z.enum(['firing', 'resolved']).exactOptional(),
  /** The alert says its query returned no data (Datadog's No Data, Grafana's DatasourceNoData). */
  missingData: z.literal(true).exactOptional(),
  /** The deployment that went live shortly before the alert (the suspect). */
  suspectDeploymentId: z.string().exactOptional(),
  /** Unix ms the suspect went live. */
  suspectLiveSince: z.number().exactOptional(),
});
export type AlertContext = z.infer<typeof alertContextSchema>;

/** One alert that pointed at the plan (an incident of it), and when it resolved. */
export const planAlertSchema = z.object({
  /** Stable per incident (the alert service derives it from the incident key). */
  id: z.string().min(1),
  alert: alertContextSchema,
  /** Unix ms it joined the plan. */
  at: z.number(),
  /** Unix ms its RESOLVED arrived. */
  resolvedAt: z.number().exactOptional(),
});
export type PlanAlert = z.infer<typeof planAlertSchema>;

/**
 * The alert suggestion shown in one destination (`slot`: `surface:channel`; a chat alert's suggestion
 * is posted in its thread but holds its channel's slot, so later alerts there are listed on it. Records
 * written by earlier versions may still hold `surface:channel:thread` slots). Without `ref` it is still
 * being posted.
 */
export const planSuggestionSchema = z.object({
  slot: z.string().min(1),
  /** The alert the message was posted for (shown first). */
  alertId: z.string().min(1),
  at: z.number(),
  ref: messageRefSchema.exactOptional(),
  /** Someone dismissed this message (the plan stays open on its other messages). */
  dismissed: z.boolean().exactOptional(),
  /** Who dismissed it (a display name), so the message can be shown dismissed again. */
  dismissedBy: z.string().exactOptional(),
});
export type PlanSuggestion = z.infer<typeof planSuggestionSchema>;

/**
 * A plan id: 1-128 letters, digits, _ or -. The one pattern for it: what Flow accepts as a plan id, what
 * a switch job names (src/queue.ts `switchJobSchema`) and what another record names (`planIdSchema`).
 */
export const PLAN_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** A plan id as another record names it (`replannedAs`): what Flow accepts as a plan id. */
const planIdSchema = z.string().regex(PLAN_ID_PATTERN, 'expected a plan id: 1-128 letters, digits, _ or -');

/** An alert's id in a plan (the alert service derives it from the incident key). */
const alertIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected 1-64 letters, digits, _ or -');

/** Who dismissed a plan's alert suggestion, and when (Unix ms). */
const dismissalSchema = z.object({ by: z.string(), at: z.number() });
export type Dismissal = z.infer<typeof dismissalSchema>;

/** What `groupAlert` did: the plan's alertsVersion after it, and each destination's slot. */
export interface AlertGroup {
  readonly version: number;
  readonly slots: readonly SuggestionSlot[];
  /** How many suggestion slots the plan has in all (these and those of other places). */
  readonly total: number;
}

/** What `groupAlert` found for each destination. */
export type SuggestionSlot =
  /** Nobody had posted there: the caller posts, then calls `suggestionPosted` (or `releaseSuggestion`). */
  | { readonly slot: string; readonly claimed: true }
  /** A suggestion is there (or being posted: no ref yet); the caller edits it instead of posting. */
  | { readonly slot: string; readonly claimed: false; readonly suggestion: PlanSuggestion };

const storedMessageSchema = z.object({ ref: messageRefSchema, at: z.number() });

/** Everything known about one plan: the plan itself and what people did with it. */
export const planRecordSchema = z.object({
  plan: planSchema,
  state: z.enum(planStates),
  requestedBy: actorSchema,
  /** Whoever clicked confirm (with the two-person rule, the person whose request awaits approval). */
  confirmedBy: actorSchema.exactOptional(),
  /** The confirmer's memberships that were on the allow list at the confirm (`Grant`). */
  confirmedVia: grantSchema.exactOptional(),
  approvedBy: actorSchema.exactOptional(),
  /** The approver's memberships that were on the allow list at the approval (`Grant`). */
  approvedVia: grantSchema.exactOptional(),
  cancelledBy: actorSchema.exactOptional(),
  /**
   * Unix ms the cancel was a Dismiss that silenced alerts for the switch (a dismissal was stored with
   * it, see `dismissal`): its messages say alerts will not suggest it again.
   */
  dismissedAt: z.number().exactOptional(),
  jobId: z.string().exactOptional(),
  /** Why the plan went stale (what changed), when it did. */
  refusal: refusalSchema.exactOptional(),
  alert: alertContextSchema.exactOptional(),
  /**
   * `environment`: a promote asked for by its environment (`/promote production`, no deployment named),
   * whose target is the environment's newest ready deployment: a fresh plan (`Flow.replan`) finds it
   * again rather than keeping a target that may be older than what went live since.
   */
  targetFrom: z.literal('environment').exactOptional(),
  messages: z.array(messageRefSchema),
  /** Every alert that pointed at the plan, oldest first (at most MAX_ALERTS_PER_PLAN). */
  alerts: z.array(planAlertSchema).exactOptional(),
  /**
   * Alerts beyond MAX_ALERTS_PER_PLAN: counted by id (each one once, its resolution tracked) but not
   * listed; at most MAX_COUNTED_ALERTS_PER_PLAN. An exact count.
   */
  alertsMore: z.number().exactOptional(),
  /** How many of those still fire (exact). */
  alertsMoreFiring: z.number().exactOptional(),
  /**
   * Alerts beyond those counted by id: about how many (an estimate, within a few percent: a
   * HyperLogLog of their ids, so a repeat is not counted again), never listed, their resolutions not
   * tracked (they keep the suggestion firing). Absent while there are none.
   */
  alertsUntracked: z.number().exactOptional(),
  /** Bumped by every change of `alerts` (a suggestion posted with an older one is edited again). */
  alertsVersion: z.number().exactOptional(),
  /** The alert suggestion messages, one per destination. */
  suggestions: z.array(planSuggestionSchema).exactOptional(),
  /** Unix ms. */
  createdAt: z.number(),
  updatedAt: z.number(),
  /** Unix ms after which the plan can no longer be acted on. */
  expiresAt: z.number(),
  /**
   * Random, new with every record made under this plan id (a new request replacing a finished one is
   * another generation). Absent only on records stored before it existed.
   */
  generation: z.string().exactOptional(),
  /** Bumped by every transition of this record (absent: 0). */
  revision: z.number().exactOptional(),
  /**
   * The state the plan expired from, set by the move to `expired` (absent on records that expired
   * under an earlier version): `awaiting_approval` lapsed waiting for a second person's approval,
   * `enqueued` was a claim whose queueing never finished, `pending` nobody confirmed. Views say why it
   * expired from this, not from the two-person rule in force when they render (it may have changed).
   */
  expiredFrom: z.enum(planStates).exactOptional(),
  /**
   * Unix ms the expiry sweep took it on itself to show this expired plan expired on its messages
   * (`takeExpiryShown`): one sweep, on one replica, does, however the plan expired.
   */
  expiryShownAt: z.number().exactOptional(),
  /**
   * The fresh plans made from this closed one with "Make a fresh plan" under another plan id (the
   * platform moved in between), which took its alerts over (`markReplanned`), oldest first; at most
   * MAX_REPLANS_PER_PLAN. The alert service follows them: an incident suggested under this plan id
   * resolves, and is shown, on those plans too.
   */
  replannedAs: z.array(z.string().min(1)).exactOptional(),
  /**
   * People who asked for this plan while it was open after `requestedBy` did (their command joined
   * it), oldest first; at most MAX_ALSO_ASKED. Shown only ("asked for by alice" under an alert's
   * suggestion): the two-person rule does not count them (docs/permissions.md).
   */
  alsoAskedBy: z.array(actorSchema).exactOptional(),
});
export type PlanRecord = z.infer<typeof planRecordSchema>;

/** Which record a decision was taken on (see the module header): pass the record read. */
export type PlanRevision = Pick<PlanRecord, 'generation' | 'revision'>;

/** Fields a transition may set besides the state. */
export interface PlanPatch {
  readonly confirmedBy?: Actor;
  readonly confirmedVia?: Grant;
  readonly approvedBy?: Actor;
  readonly approvedVia?: Grant;
  readonly cancelledBy?: Actor;
  readonly dismissedAt?: number;
  readonly jobId?: string;
  readonly refusal?: Refusal;
}
type PatchField = keyof PlanPatch;

/** Conditions and side effects of a transition besides the state. */
export interface TransitionOptions {
  /**
   * Move only while the record is still this one (same generation, same revision): a decision taken
   * on a record read earlier never lands on a record that moved since or replaced it. When it did,
   * nothing is set and the result is `{ ok: false, changed: true, record }` with the record as it is.
   */
  readonly expect?: PlanRevision;
  /**
   * Who dismissed the plan's alert suggestion: remembered (see `dismissal`) in the same step as the
   * move, and only when the move happens.
   */
  readonly dismissal?: Dismissal;
}

/** Outcome of an attempted transition. */
export type TransitionResult =
  | { readonly ok: true; readonly record: PlanRecord }
  /**
   * The plan was not in an allowed state; `record` is the state that won (undefined when gone).
   * `expired` is set for exactly the one call that found an open plan past `expiresAt` on its way to
   * `awaiting_approval` or `enqueued` and moved it to `expired` instead.
   */
  | {
      readonly ok: false;
      readonly record: PlanRecord | undefined;
      readonly expired?: true;
      /** The state allowed the move, but the record was not the one expected (`TransitionOptions.expect`). */
      readonly changed?: true;
    };

export interface PlanStoreOptions {
  /** A connected ioredis client (not closed by the store) … */
  readonly redis?: RedisClient;
  /** … or a URL for a connection the store opens and closes itself. */
  readonly url?: string;
  /** Key prefix; tests use `uniqueName()`. */
  readonly prefix?: string;
  /** How long a plan may be acted on after it was made. */
  readonly ttlMs?: number;
  /** How long a record is kept after its plan expired, for rendering and fresh plans. */
  readonly retainMs?: number;
  readonly clock?: Clock;
  /** Where an unreadable message ref skipped on read is said (once per plan and field). */
  readonly logger?: Logger;
}

/**
 * A plan record in Redis that cannot be read (a field another version wrote, or one edited by hand):
 * `field` names the (first) field to blame, `problem` says what is wrong in words, naming it. Code
 * `internal` (a fault, not a person's request). `seen` is the record's own `generation` and `revision`
 * as stored (raw, '' when absent), so that a new request can replace exactly this record
 * (`PlanStore.create`'s `replaceUnreadable`) and never one made meanwhile.
 */
export class PlanUnreadableError extends SwitchyardError {
  override readonly name = 'PlanUnreadableError';
  constructor(
    readonly planId: string,
    readonly field: string | undefined,
    readonly problem: string,
    readonly seen: UnreadableRecord,
  ) {
    super('internal', `Plan ${planId} in Redis is unreadable: ${problem}`, {
      context: { planId, ...(field === undefined ? {} : { field }) },
    });
  }
}

/** The unreadable record a replacement replaces: its `generation` and `revision` as stored ('' if none). */
export interface UnreadableRecord {
  readonly generation: string;
  readonly revision: string;
}

/** How many skipped message refs a store remembers having logged (then it starts over). */
const LOGGED_SKIPS_MAX = 1000;

/** Defaults for the store's options (STYLE 6). */
export const planStoreDefaults = {
  prefix: 'switchyard:',
  ttlMs: 3_600_000,
  retainMs: 86_400_000,
} as const satisfies Required<Pick<PlanStoreOptions, 'prefix' | 'ttlMs' | 'retainMs'>>;

const MESSAGE_FIELD = 'msg:';
const ALERT_FIELD = 'al:';
const ALERT_RESOLVED_FIELD = 'ar:';
const ALERT_SEQ_FIELD = 'aq:';
/**
 * An alert beyond MAX_ALERTS_PER_PLAN as records written by earlier versions count it: its id only (its
 * resolution is `ar:` like any other's). Read, and kept up to date, but no longer written: counted ids
 * are kept in a key of their own now (`alertKeys`).
 */
const ALERT_OVER_FIELD = 'ao:';
const SUGGESTION_FIELD = 'sg:';
/** A fresh plan made from this one under another id (`rp:<plan id>`, when: Unix ms): `markReplanned`. */
const REPLANNED_FIELD = 'rp:';
/** A person who also asked for the plan (`alsoAskedBy`): `ab:<surface>:<userId>` → {actor, at}. */
const ASKED_FIELD = 'ab:';
/**
 * The alert counts a record keeps as fields (ALERT_COUNTS_LUA, ADD_ALERT_LUA): read into
 * `alertsMore`, `alertsMoreFiring` and `alertsUntracked`, not record fields themselves.
 */
const COUNT_FIELDS = new Set(['alertsListed', 'alertsCounted', 'alertsCountedResolved', 'alertsUntracked']);
const JSON_FIELDS = new Set([
  'plan',
  'requestedBy',
  'confirmedBy',
  'confirmedVia',
  'approvedBy',
  'approvedVia',
  'cancelledBy',
  'refusal',
  'alert',
]);
const NUMBER_FIELDS = new Set([
  'createdAt',
  'updatedAt',
  'expiresAt',
  'alertsVersion',
  'revision',
  'expiryShownAt',
  'dismissedAt',
]);

/**
 * Creates a record unless a live one exists. Live: enqueued, or pending/awaiting approval and not past
 * `expiresAt`. Returns 1 and the new hash when created, 0 and the existing hash when joined (or just
 * {0} with ARGV[10] '1': the caller reads the record again anyway, after attaching its messages). A
 * created record's plan id goes into the expiry index (a sorted set scored by `expiresAt`, see
 * `dueToExpire`), replacing the score of an earlier record of the same id; the keys of the record it
 * replaced (its counted alerts, KEYS[2] and KEYS[3]) go with it. Joining an open record restarts its
 * time: its `expiresAt` becomes at least ARGV[4], with its index score and its keys' lifetime, in this
 * step (an enqueued one is left as it is: its switch is under way). An unreadable record named by
 * ARGV[6..8] is replaced whatever its state, and so is a hash without a state (no record can be read
 * from it).
 * KEYS[1] record; KEYS[2], KEYS[3] its counted alerts (ADD_ALERT_LUA); KEYS[4] expiry index; ARGV[1]
 * now; ARGV[2] key ttl ms; ARGV[3] '1' when an enqueued record whose job has ended may be replaced (the
 * same switch asked for again after it failed); ARGV[4] expiresAt; ARGV[5] plan id; ARGV[6] '1' when
 * the record may be one found unreadable: replaced while its generation and revision are still ARGV[7]
 * and ARGV[8] (as stored; '' when absent); ARGV[9] `targetFrom` of this request, or '': also set on a
 * record joined (whoever asked for the plan by its environment makes its fresh plan find the newest
 * deployment again); ARGV[10] '1' when a joined record need not be returned; ARGV[11..] field, value
 * pairs.
 */
const CREATE_SCRIPT = `
local state = redis.call('HGET', KEYS[1], 'state')
local unreadable = ARGV[6] == '1' and redis.call('EXISTS', KEYS[1]) == 1
  and (redis.call('HGET', KEYS[1], 'generation') or '') == ARGV[7]
  and (redis.call('HGET', KEYS[1], 'revision') or '') == ARGV[8]
if state and not unreadable then
  local exp = tonumber(redis.call('HGET', KEYS[1], 'expiresAt')) or 0
  local live = (state == 'enqueued' and ARGV[3] ~= '1') or ((state == 'pending' or state == 'awaiting_approval') and exp > tonumber(ARGV[1]))
  if live then
    if state ~= 'enqueued' and exp < tonumber(ARGV[4]) then
      redis.call('HSET', KEYS[1], 'expiresAt', ARGV[4])
      redis.call('PEXPIRE', KEYS[1], ARGV[2])
      redis.call('PEXPIRE', KEYS[2], ARGV[2])
      redis.call('PEXPIRE', KEYS[3], ARGV[2])
      redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5])
    end
    if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'targetFrom', ARGV[9]) end
    if ARGV[10] == '1' then return {0, {}} end
    return {0, redis.call('HGETALL', KEYS[1])}
  end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], unpack(ARGV, 11))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5])
return {1, redis.call('HGETALL', KEYS[1])}
`;

/**
 * Takes plan ids off the expiry index once they have been dealt with, each only while its score is
 * still at most ARGV[1] (a record made since under the same id put a later one: it stays).
 * KEYS[1] expiry index; ARGV[1] the time they were due by; ARGV[2..] plan ids. Returns how many went.
 */
const FORGET_DUE_SCRIPT = `
local n = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[1]) then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return n
`;

/**
 * Marks an expired record as being shown expired, once: KEYS[1] record; ARGV[1] the generation the
 * caller read ('' when absent); ARGV[2] now. Returns 1 for the one call that marked it, 0 when it was
 * marked before, is not `expired`, or is another record (a new request replaced it) or gone.
 */
const EXPIRY_SHOWN_SCRIPT = `
if redis.call('HGET', KEYS[1], 'state') ~= 'expired' then return 0 end
if (redis.call('HGET', KEYS[1], 'generation') or '') ~= ARGV[1] then return 0 end
return redis.call('HSETNX', KEYS[1], 'expiryShownAt', ARGV[2])
`;

/**
 * Compare-and-set of the state. KEYS[1] record; KEYS[2] the plan's dismissal key. ARGV[1] allowed
 * current states (comma separated); ARGV[2] new state; ARGV[3] fields to delete (comma separated, may
 * be empty); ARGV[4] the time of the move (Unix ms) when expiry is enforced (or, for a move to
 * `expired`, checked: see below), else empty; ARGV[5] '1' when the record must still be the one read:
 * generation ARGV[6] and revision ARGV[7]; ARGV[8] a dismissal (JSON) to store at KEYS[2] for ARGV[9]
 * ms with the move, or empty; ARGV[10..] field, value pairs to set. Returns {1, hash} when moved,
 * {0, hash} when the state did not allow it, {3, hash} when the record is not the one read, {2, hash}
 * when the plan was open but past `expiresAt` at ARGV[4] (it is now `expired`; nothing else was set
 * but `expiredFrom`), {-1} when gone. Every move (and expiry) bumps `revision`; every move to
 * `expired` records the state it expired from (`expiredFrom`).
 * A move of an open plan to `expired` at ARGV[4] happens only while it is past `expiresAt` then, else
 * {3, hash}: a request or alert joining the plan restarts its time (CREATE_SCRIPT, GROUP_SCRIPT) without
 * a new revision, so a decision to expire it, taken on the record read just before, is out of date.
 */
const TRANSITION_SCRIPT = `
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {-1, {}} end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == state then allowed = true end
end
if not allowed then return {0, redis.call('HGETALL', KEYS[1])} end
if ARGV[5] == '1' then
  local gen = redis.call('HGET', KEYS[1], 'generation') or ''
  local rev = tonumber(redis.call('HGET', KEYS[1], 'revision')) or 0
  if gen ~= ARGV[6] or rev ~= tonumber(ARGV[7]) then return {3, redis.call('HGETALL', KEYS[1])} end
end
if ARGV[4] ~= '' and (state == 'pending' or state == 'awaiting_approval') then
  local exp = tonumber(redis.call('HGET', KEYS[1], 'expiresAt')) or 0
  if ARGV[2] == 'expired' then
    if exp > tonumber(ARGV[4]) then return {3, redis.call('HGETALL', KEYS[1])} end
  elseif exp <= tonumber(ARGV[4]) then
    redis.call('HSET', KEYS[1], 'state', 'expired', 'updatedAt', ARGV[4], 'expiredFrom', state)
    redis.call('HINCRBY', KEYS[1], 'revision', 1)
    return {2, redis.call('HGETALL', KEYS[1])}
  end
end
for f in string.gmatch(ARGV[3], '[^,]+') do
  redis.call('HDEL', KEYS[1], f)
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], unpack(ARGV, 10))
if ARGV[2] == 'expired' then redis.call('HSET', KEYS[1], 'expiredFrom', state) end
redis.call('HINCRBY', KEYS[1], 'revision', 1)
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[2], ARGV[8], 'PX', ARGV[9])
end
return {1, redis.call('HGETALL', KEYS[1])}
`;

/** Moves that act on a plan (and so must not happen after it expired). */
const ACTING_STATES: readonly PlanState[] = [PlanState.awaitingApproval, PlanState.enqueued];

/**
 * How many chat messages one plan follows at most. The same request repeated (every `/rollback
 * production` of one state joins one plan) must not grow a record without bound, and a switch job
 * carries at most 50 message refs.
 */
export const MAX_MESSAGES_PER_PLAN = 40;

/**
 * How many messages a plan follows at most counting the messages someone clicked past
 * MAX_MESSAGES_PER_PLAN (`attachMessage`'s `clicked`): a message a person clicked (its Rollback, Approve,
 * or a Cancel that found the switch running) must show that switch to its end, which matters more than
 * the cap; dropping an older message instead would only leave that one stale. Still a hard bound, and
 * no more than a switch job's data carries (50 message refs, src/queue.ts).
 */
export const MAX_CLICKED_MESSAGES_PER_PLAN = MAX_MESSAGES_PER_PLAN + 10;

/**
 * Adds a message field only when the record exists (never resurrects an evicted plan) and holds fewer
 * than ARGV[3] messages. Returns 1 when attached (or already there), 0 when the record is gone, 2 when
 * it is full.
 */
const ATTACH_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
local n = 0
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, string.len(ARGV[4])) == ARGV[4] then n = n + 1 end
end
if n >= tonumber(ARGV[3]) then return 2 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`;

/** People a record remembers as having also asked for it (`alsoAskedBy`); later ones are not added. */
export const MAX_ALSO_ASKED = 10;

/**
 * Adds an asker field (ARGV[1] → ARGV[2]) only to the record of generation ARGV[3] while it is open
 * (pending or awaiting approval), once per person, and while it holds fewer than ARGV[4] of them
 * (fields starting ARGV[5]). Returns 1 when added, 0 otherwise.
 */
const ASKED_SCRIPT = `
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'pending' and state ~= 'awaiting_approval' then return 0 end
if (redis.call('HGET', KEYS[1], 'generation') or '') ~= ARGV[3] then return 0 end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local n = 0
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, string.len(ARGV[5])) == ARGV[5] then n = n + 1 end
end
if n >= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`;

/**
 * How long a claimed suggestion slot may stay without its message before another alert takes it over
 * (its poster died or hung: a post is bounded well below this by the chat clients' own timeouts),
 * counted on Redis's clock (CLAIM_LEASE_LUA), so replicas' clocks need not agree.
 */
export const SUGGESTION_CLAIM_LEASE_MS = 120_000;

/**
 * The claim lease, on Redis's clock (TIME), never a replica's: GROUP_SCRIPT and CARRY_ALERTS_SCRIPT
 * stamp a claim `claimedAt` (Unix ms on Redis's clock) and take it over once that is the lease old. A
 * replica whose clock runs ahead thus does not take over a claim another made a moment ago (two posts
 * of one plan in one channel), nor does one whose clock is behind wait past the lease for a poster that
 * died. A claim stored without `claimedAt` (by an older Switchyard) is judged as it was then: its `at`
 * against the caller's now. TIME is not deterministic, which is allowed: Redis (5 and later, and always
 * from 7) replicates a script by its effects, so replicas and the AOF get the HSET with the stamp.
 * `claimSlot(field, json, now, lease)`: claims the record's (KEYS[1]) slot `field` with `json`, stamped,
 * unless it holds a message or a claim within its lease (`now`: the caller's, for old claims only);
 * returns what the slot holds, or nil when it was claimed now.
 */
const CLAIM_LEASE_LUA = `
local redisTime = redis.call('TIME')
local redisNow = tonumber(redisTime[1]) * 1000 + math.floor(tonumber(redisTime[2]) / 1000)
local function stamped(json)
  local ms = string.format('%.0f', redisNow)
  if json == '{}' then return '{"claimedAt":' .. ms .. '}' end
  return '{"claimedAt":' .. ms .. ',' .. string.sub(json, 2)
end
local function leaseOver(d, now, lease)
  if d.claimedAt ~= nil then return (tonumber(d.claimedAt) or 0) <= redisNow - lease end
  return (tonumber(d.at) or 0) <= now - lease
end
local function claimSlot(field, json, now, lease)
  local v = redis.call('HGET', KEYS[1], field)
  if v then
    local ok, d = pcall(cjson.decode, v)
    if ok and type(d) == 'table' and d.ref == nil and leaseOver(d, now, lease) then v = nil end
  end
  if v then return v end
  redis.call('HSET', KEYS[1], field, stamped(json))
  return nil
end
`;

/** How many alerts one plan lists; later ones are counted (`alertsMore`). */
export const MAX_ALERTS_PER_PLAN = 50;

/**
 * How many alerts beyond the listed ones a plan counts by id (`alertsMore`: each once, its resolution
 * tracked); later ones only add to an estimate (`alertsUntracked`). A storm of alerts of distinct
 * incidents for one deploy (one plan) would otherwise grow the plan's keys by an id per alert without
 * bound, and every alert would cost Redis time in proportion, at the moment Redis is needed most.
 */
export const MAX_COUNTED_ALERTS_PER_PLAN = 1_000;

/**
 * The plan's alert counts (KEYS[1] record), kept as fields so that adding an alert never scans the
 * record: `alertsListed` (its `al:` fields), `alertsCounted` (ids in KEYS[2], plus the `ao:` fields of
 * a record written before KEYS[2] existed) and `alertsCountedResolved` (those of them resolved).
 * `alertCounts()` returns listed and counted; a record without the fields (made before them, or with no
 * alert yet) is counted once from its fields, and the counts stored.
 */
const ALERT_COUNTS_LUA = `
local function alertCounts()
  local listed = redis.call('HGET', KEYS[1], 'alertsListed')
  if listed then return tonumber(listed) or 0, tonumber(redis.call('HGET', KEYS[1], 'alertsCounted')) or 0 end
  local fields = redis.call('HKEYS', KEYS[1])
  local has = {}
  for _, f in ipairs(fields) do has[f] = true end
  local l, c, r = 0, 0, 0
  for _, f in ipairs(fields) do
    local kind = string.sub(f, 1, 3)
    if kind == 'al:' then l = l + 1 end
    if kind == 'ao:' then
      c = c + 1
      if has['ar:' .. string.sub(f, 4)] then r = r + 1 end
    end
  end
  redis.call('HSET', KEYS[1], 'alertsListed', l, 'alertsCounted', c, 'alertsCountedResolved', r)
  return l, c
end
`;

/**
 * The rule for adding an alert to a record, shared by GROUP_SCRIPT and CARRY_ALERTS_SCRIPT. KEYS[1]
 * record; KEYS[2] the ids it counts (a hash: id → '' while firing, else when it resolved, Unix ms);
 * KEYS[3] a HyperLogLog of the ids beyond those. Both live and die with the record (`keepWithRecord`
 * gives them its lifetime whenever they are written; CREATE_SCRIPT deletes them with it).
 * `alertTier(id)`: where the record has the alert: 'listed' (`al:`), 'counted' (KEYS[2], or an `ao:`
 * field of an older record: 'legacy'), or nil (beyond: not known one by one).
 * `addAlert(id, json, max, maxCounted)`, for an alert the record has not got (`max`:
 * MAX_ALERTS_PER_PLAN, `maxCounted`: MAX_COUNTED_ALERTS_PER_PLAN): lists it (`al:`, with its place
 * `aq:`) while fewer than `max` are listed, else counts it by id while fewer than `maxCounted` are,
 * else adds it to the HyperLogLog, whose estimate becomes `alertsUntracked`: an id it holds already
 * leaves it as it is (a repeat is not counted again; a new id may, rarely, change nothing either,
 * which is the estimate's error). Moves `alertsVersion` on when the record changed; returns the tier
 * it went to ('listed', 'counted' or 'untracked'), or nil when nothing changed.
 * `setResolved(id, tier, at)` and `setFiring(id, tier)` mark a listed or counted alert (of `tier`)
 * resolved, or firing again, keeping `alertsCountedResolved` and moving `alertsVersion` on when that
 * changed anything; true when it did. (Call `alertCounts()` first: a record counted from its fields
 * then already counts what they change.)
 */
const ADD_ALERT_LUA = `${ALERT_COUNTS_LUA}
local function keepWithRecord()
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[2], ttl)
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
end
local function alertTier(id)
  if redis.call('HEXISTS', KEYS[1], 'al:' .. id) == 1 then return 'listed' end
  if redis.call('HEXISTS', KEYS[2], id) == 1 then return 'counted' end
  if redis.call('HEXISTS', KEYS[1], 'ao:' .. id) == 1 then return 'legacy' end
  return nil
end
local function addAlert(id, json, max, maxCounted)
  local listed, counted = alertCounts()
  if listed < max then
    local version = redis.call('HINCRBY', KEYS[1], 'alertsVersion', 1)
    redis.call('HSET', KEYS[1], 'al:' .. id, json, 'aq:' .. id, version)
    redis.call('HINCRBY', KEYS[1], 'alertsListed', 1)
    return 'listed'
  end
  if counted < maxCounted then
    redis.call('HSET', KEYS[2], id, '')
    redis.call('HINCRBY', KEYS[1], 'alertsCounted', 1)
    redis.call('HINCRBY', KEYS[1], 'alertsVersion', 1)
    keepWithRecord()
    return 'counted'
  end
  if redis.call('PFADD', KEYS[3], id) == 0 then return nil end
  redis.call('HSET', KEYS[1], 'alertsUntracked', redis.call('PFCOUNT', KEYS[3]))
  redis.call('HINCRBY', KEYS[1], 'alertsVersion', 1)
  keepWithRecord()
  return 'untracked'
end
local function setResolved(id, tier, at)
  if tier == 'counted' then
    if redis.call('HGET', KEYS[2], id) ~= '' then return false end
    redis.call('HSET', KEYS[2], id, at)
  elseif redis.call('HSETNX', KEYS[1], 'ar:' .. id, at) == 0 then
    return false
  end
  if tier ~= 'listed' then redis.call('HINCRBY', KEYS[1], 'alertsCountedResolved', 1) end
  redis.call('HINCRBY', KEYS[1], 'alertsVersion', 1)
  return true
end
local function setFiring(id, tier)
  if tier == 'counted' then
    local v = redis.call('HGET', KEYS[2], id)
    if v == '' or not v then return false end
    redis.call('HSET', KEYS[2], id, '')
  elseif redis.call('HDEL', KEYS[1], 'ar:' .. id) == 0 then
    return false
  end
  if tier ~= 'listed' then redis.call('HINCRBY', KEYS[1], 'alertsCountedResolved', -1) end
  redis.call('HINCRBY', KEYS[1], 'alertsVersion', 1)
  return true
end
`;

/**
 * Adds an alert to an open plan and claims the suggestion slot of each destination. KEYS[1] record;
 * KEYS[2], KEYS[3] its counted ids and the estimate beyond them (ADD_ALERT_LUA); KEYS[4] expiry index;
 * ARGV[1] now; ARGV[2] the alert's id; ARGV[3] its JSON; ARGV[4] MAX_ALERTS_PER_PLAN; ARGV[5] the JSON
 * of a claimed slot; ARGV[6] the claim lease (ms: a claim without a message that old on Redis's clock
 * is taken over, its poster having died or hung: CLAIM_LEASE_LUA); ARGV[7] the plan's `expiresAt` from
 * now (now + ttl); ARGV[8] the key's lifetime from now (ttl + retention, ms); ARGV[9] the plan id;
 * ARGV[10] MAX_COUNTED_ALERTS_PER_PLAN; ARGV[11..] slot fields. Returns {-1} when the record is gone,
 * {0} when the plan is not open (enqueued, ended, past `expiresAt`), else {1, alertsVersion, how many
 * suggestion slots the plan has, slot value or '' (claimed now) per slot field}. The alert restarts the
 * plan's time, as a request joining it does (CREATE_SCRIPT): `expiresAt` becomes at least ARGV[7], with
 * its index score and its keys' lifetime, so an incident grouped into a suggestion is offered for an
 * hour, not for whatever was left of the first incident's. An alert is listed, counted or estimated
 * (ADD_ALERT_LUA); one already there is not added again, and one listed or counted that had resolved
 * and fires again is firing again.
 */
const GROUP_SCRIPT = `${CLAIM_LEASE_LUA}${ADD_ALERT_LUA}
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {-1} end
local exp = tonumber(redis.call('HGET', KEYS[1], 'expiresAt')) or 0
if (state ~= 'pending' and state ~= 'awaiting_approval') or exp <= tonumber(ARGV[1]) then return {0} end
if exp < tonumber(ARGV[7]) then
  redis.call('HSET', KEYS[1], 'expiresAt', ARGV[7])
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
  redis.call('PEXPIRE', KEYS[3], ARGV[8])
  redis.call('ZADD', KEYS[4], ARGV[7], ARGV[9])
end
local id = ARGV[2]
local tier = alertTier(id)
if tier then
  alertCounts()
  setFiring(id, tier)
else
  addAlert(id, ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[10]))
end
local out = {1, tonumber(redis.call('HGET', KEYS[1], 'alertsVersion')) or 0, 0}
for i = 11, #ARGV do
  table.insert(out, claimSlot(ARGV[i], ARGV[5], tonumber(ARGV[1]), tonumber(ARGV[6])) or '')
end
local slots = 0
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 3) == 'sg:' then slots = slots + 1 end
end
out[3] = slots
return out
`;

/**
 * Updates a suggestion slot that exists (KEYS[1] record; ARGV[1] slot field; ARGV[2] its new JSON).
 * Returns the plan's alertsVersion, or -1 when the slot (or the record) is gone.
 */
const SLOT_SET_SCRIPT = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return tonumber(redis.call('HGET', KEYS[1], 'alertsVersion')) or 0
`;

/** Frees a slot whose post failed: only while it has no message (KEYS[1] record; ARGV[1] slot field). */
const SLOT_RELEASE_SCRIPT = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local ok, d = pcall(cjson.decode, v)
if ok and type(d) == 'table' and d.ref == nil then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
`;

/**
 * Takes an alert off the plan (its suggestion could not be posted). KEYS[1..3] as in ADD_ALERT_LUA;
 * ARGV[1] its id. One only estimated (beyond the counted ones) stays in the estimate: a HyperLogLog
 * cannot forget an id, and its sender's retry is then not counted again. Returns 1 when taken off.
 */
const UNLIST_SCRIPT = `${ADD_ALERT_LUA}
local id = ARGV[1]
local tier = alertTier(id)
if not tier then return 0 end
alertCounts()
if tier == 'listed' then
  redis.call('HDEL', KEYS[1], 'al:' .. id, 'aq:' .. id, 'ar:' .. id)
  redis.call('HINCRBY', KEYS[1], 'alertsListed', -1)
else
  local resolved
  if tier == 'counted' then
    resolved = redis.call('HGET', KEYS[2], id) ~= ''
    redis.call('HDEL', KEYS[2], id)
  else
    resolved = redis.call('HDEL', KEYS[1], 'ar:' .. id) == 1
    redis.call('HDEL', KEYS[1], 'ao:' .. id)
  end
  redis.call('HINCRBY', KEYS[1], 'alertsCounted', -1)
  if resolved then redis.call('HINCRBY', KEYS[1], 'alertsCountedResolved', -1) end
end
redis.call('HINCRBY', KEYS[1], 'alertsVersion', 1)
return 1
`;

/**
 * Marks a listed or counted alert resolved (KEYS[1..3] as in ADD_ALERT_LUA; ARGV[1] its id; ARGV[2]
 * when). Returns the plan's state when the plan has the alert (resolved now or before), false when
 * not, nor for one only estimated (beyond MAX_COUNTED_ALERTS_PER_PLAN: its resolution is not tracked).
 */
const ALERT_RESOLVE_SCRIPT = `${ADD_ALERT_LUA}
local id = ARGV[1]
local tier = alertTier(id)
if not tier then return false end
alertCounts()
setResolved(id, tier, ARGV[2])
return redis.call('HGET', KEYS[1], 'state')
`;

/**
 * Lists on a fresh record the alerts of the record it replaced ("Make a fresh plan": the same rollback,
 * showing the same alerts), with their resolutions, and claims a suggestion slot for the message about
 * to be posted (as GROUP_SCRIPT claims one), in one step: no render sees half the list. KEYS[1..3] as
 * in ADD_ALERT_LUA; ARGV[1] now; ARGV[2] the generation of the record to list them on; ARGV[3]
 * MAX_ALERTS_PER_PLAN; ARGV[4] the slot field to claim, or ''; ARGV[5] the claimed slot's JSON;
 * ARGV[6] the claim lease (ms, on Redis's clock: CLAIM_LEASE_LUA); ARGV[7] MAX_COUNTED_ALERTS_PER_PLAN;
 * ARGV[8..] per alert: its id, its JSON, when it resolved ('' when it still fires). An alert the record
 * has already (listed or counted) is left as the record says: what happened to it since is newer.
 * Returns {0} when the plan is not open or not that record, else {1, alertsVersion, 1 when the slot was
 * claimed}.
 */
const CARRY_ALERTS_SCRIPT = `${CLAIM_LEASE_LUA}${ADD_ALERT_LUA}
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'pending' and state ~= 'awaiting_approval' then return {0} end
if (redis.call('HGET', KEYS[1], 'generation') or '') ~= ARGV[2] then return {0} end
if (tonumber(redis.call('HGET', KEYS[1], 'expiresAt')) or 0) <= tonumber(ARGV[1]) then return {0} end
for i = 8, #ARGV, 3 do
  local id = ARGV[i]
  if not alertTier(id) then
    local tier = addAlert(id, ARGV[i + 1], tonumber(ARGV[3]), tonumber(ARGV[7]))
    if ARGV[i + 2] ~= '' and (tier == 'listed' or tier == 'counted') then setResolved(id, tier, ARGV[i + 2]) end
  end
end
local claimed = 0
if ARGV[4] ~= '' and not claimSlot(ARGV[4], ARGV[5], tonumber(ARGV[1]), tonumber(ARGV[6])) then
  claimed = 1
end
return {1, tonumber(redis.call('HGET', KEYS[1], 'alertsVersion')) or 0, claimed}
`;

/** How many fresh plans under other ids one closed plan points at (`replannedAs`); the oldest go first. */
export const MAX_REPLANS_PER_PLAN = 5;

/**
 * Records on a closed record that a fresh plan of another id took its alerts over. KEYS[1] record;
 * ARGV[1] the generation of the record meant ('' when absent); ARGV[2] the field (`rp:<plan id>`);
 * ARGV[3] now; ARGV[4] MAX_REPLANS_PER_PLAN. The same fresh plan again moves its time (the newest
 * points last); past the maximum the oldest is dropped. Returns 1 when recorded, 0 when the record is
 * gone or another one (a new request replaced it).
 */
const REPLANNED_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if (redis.call('HGET', KEYS[1], 'generation') or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
local fields = redis.call('HGETALL', KEYS[1])
local kept = {}
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 3) == 'rp:' then table.insert(kept, {fields[i], tonumber(fields[i + 1]) or 0}) end
end
table.sort(kept, function(a, b) return a[2] < b[2] or (a[2] == b[2] and a[1] < b[1]) end)
for i = 1, #kept - tonumber(ARGV[4]) do
  if kept[i][1] ~= ARGV[2] then redis.call('HDEL', KEYS[1], kept[i][1]) end
end
return 1
`;

/**
 * Dismiss on one suggestion message, in one step: marks its slot dismissed (bumping alertsVersion)
 * and counts the plan's messages that still offer it: not the clicked one, not dismissed ones, not on
 * the ignored surfaces. Two people dismissing two copies at once thus find out which was the last.
 * KEYS[1] record; ARGV[1..3] the clicked message (surface, channel, message id); ARGV[4] who;
 * ARGV[5] ignored surfaces (comma separated); ARGV[6] '1' when the record must still be the one read:
 * generation ARGV[7], revision ARGV[8]. Returns -1 when the plan is not open, -2 when it is not the
 * record read (nothing marked), else the count.
 */
const DISMISS_SCRIPT = `
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'pending' and state ~= 'awaiting_approval' then return -1 end
if ARGV[6] == '1' then
  local gen = redis.call('HGET', KEYS[1], 'generation') or ''
  local rev = tonumber(redis.call('HGET', KEYS[1], 'revision')) or 0
  if gen ~= ARGV[7] or rev ~= tonumber(ARGV[8]) then return -2 end
end
local fields = redis.call('HGETALL', KEYS[1])
local dismissed = {}
local function same(r)
  return r.surface == ARGV[1] and r.channel == ARGV[2] and r.messageId == ARGV[3]
end
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 3) == 'sg:' then
    local ok, d = pcall(cjson.decode, fields[i + 1])
    if ok and type(d) == 'table' and type(d.ref) == 'table' then
      if same(d.ref) and d.dismissed ~= true then
        d.dismissed = true
        d.dismissedBy = ARGV[4]
        redis.call('HSET', KEYS[1], fields[i], cjson.encode(d))
        redis.call('HINCRBY', KEYS[1], 'alertsVersion', 1)
      end
      if d.dismissed == true then
        dismissed[d.ref.surface .. '|' .. d.ref.channel .. '|' .. d.ref.messageId] = true
      end
    end
  end
end
local n = 0
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 4) == 'msg:' then
    local ok, m = pcall(cjson.decode, fields[i + 1])
    if ok and type(m) == 'table' and type(m.ref) == 'table' then
      local r = m.ref
      local key = r.surface .. '|' .. r.channel .. '|' .. r.messageId
      local ignored = string.find(',' .. ARGV[5] .. ',', ',' .. r.surface .. ',', 1, true)
      if not same(r) and not dismissed[key] and not ignored then n = n + 1 end
    end
  end
end
return n
`;

function messageField(ref: MessageRef): string {
  return `${MESSAGE_FIELD}${ref.surface}:${ref.channel}:${ref.messageId}`;
}

/** Plans and their state in Redis, with atomic transitions. */
export class PlanStore {
  readonly ttlMs: number;
  readonly retainMs: number;
  private readonly redis: RedisClient;
  private readonly ownsRedis: boolean;
  private readonly prefix: string;
  private readonly clock: Clock;
  private readonly logger: Logger;
  /** Skipped message refs already logged (`<plan id> <field>`), so a record read often says it once. */
  private readonly loggedSkips = new Set<string>();

  constructor(options: PlanStoreOptions) {
    if (options.redis) {
      this.redis = options.redis;
      this.ownsRedis = false;
    } else if (options.url) {
      this.redis = createRedis(options.url);
      this.ownsRedis = true;
    } else {
      throw new SwitchyardError('internal', 'PlanStore needs either a redis client or a url');
    }
    this.prefix = options.prefix ?? planStoreDefaults.prefix;
    this.ttlMs = options.ttlMs ?? planStoreDefaults.ttlMs;
    this.retainMs = options.retainMs ?? planStoreDefaults.retainMs;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
  }

  private key(planId: string): string {
    return `${this.prefix}plan:${planId}`;
  }

  /**
   * The keys of a plan record's alerts beyond the listed ones, in the order the scripts take them after
   * the record (ADD_ALERT_LUA): the ids it counts, and the estimate of those beyond. Keys of their own,
   * so that reading or joining the record never carries them; in the record's hash slot on a cluster
   * (the prefix carries the hash tag, docs/jobs.md).
   */
  private alertKeys(planId: string): [string, string] {
    return [`${this.prefix}plan-counted:${planId}`, `${this.prefix}plan-untracked:${planId}`];
  }

  /**
   * The expiry index: the plan ids whose time has not run out, or ran out since the last sweep, scored
   * by their `expiresAt` (moved on by a request or alert joining the plan).
   */
  private expiringKey(): string {
    return `${this.prefix}plans:expiring`;
  }

  /**
   * Stores a new plan as `pending`, or joins the live record of the same plan id (a second request for
   * the same switch on the same state), restarting an open one's time (`expiresAt` at least `ttlMs` from
   * now). `created` says which happened.
   */
  async create(input: {
    readonly plan: Plan;
    readonly requestedBy: Actor;
    readonly messages?: readonly MessageRef[];
    readonly alert?: AlertContext;
    /** See the record's `targetFrom`. */
    readonly targetFrom?: 'environment';
    /** The enqueued record's job has ended (failed, refused, stale): a new request starts over. */
    readonly replaceEnqueued?: boolean;
    /**
     * The record under this plan id was found unreadable (`PlanUnreadableError.seen`): it is replaced,
     * whatever its state, unless another record was made meanwhile (that one is joined as usual).
     */
    readonly replaceUnreadable?: UnreadableRecord;
  }): Promise<{ readonly record: PlanRecord; readonly created: boolean }> {
    const now = this.clock.now();
    const fields: string[] = [
      'plan',
      JSON.stringify(planSchema.parse(input.plan)),
      'state',
      PlanState.pending,
      'requestedBy',
      JSON.stringify(actorSchema.parse(input.requestedBy)),
      'createdAt',
      String(now),
      'updatedAt',
      String(now),
      'expiresAt',
      String(now + this.ttlMs),
      'generation',
      randomUUID(),
      'revision',
      '0',
    ];
    if (input.alert !== undefined)
      fields.push('alert', JSON.stringify(alertContextSchema.parse(input.alert)));
    if (input.targetFrom !== undefined) fields.push('targetFrom', input.targetFrom);
    for (const ref of input.messages ?? []) fields.push(...this.messageEntry(ref, now));
    const key = this.key(input.plan.id);
    // Joining with messages to attach reads the record again after attaching them: the join answers
    // without it then (one read of the record, not two).
    const rereads = input.messages !== undefined && input.messages.length > 0;
    const raw = await this.redis.eval(
      CREATE_SCRIPT,
      4,
      key,
      ...this.alertKeys(input.plan.id),
      this.expiringKey(),
      String(now),
      String(this.ttlMs + this.retainMs),
      input.replaceEnqueued === true ? '1' : '0',
      String(now + this.ttlMs),
      input.plan.id,
      input.replaceUnreadable === undefined ? '0' : '1',
      input.replaceUnreadable?.generation ?? '',
      input.replaceUnreadable?.revision ?? '',
      input.targetFrom ?? '',
      rereads ? '1' : '0',
      ...fields,
    );
    const [created, hash] = this.scriptReply(raw, input.plan.id);
    if (created !== 1 && rereads) {
      for (const ref of input.messages ?? []) await this.attachMessage(input.plan.id, ref);
      const joined = await this.get(input.plan.id);
      if (joined === undefined) throw this.corrupt(input.plan.id, 'record vanished while being joined');
      return { record: joined, created: false };
    }
    const record = this.decode(hash, input.plan.id);
    if (record === undefined) throw this.corrupt(input.plan.id, 'record vanished while being created');
    return { record, created: created === 1 };
  }

  /**
   * Remembers that `actor` asked for the open record `record` too (their request joined it), to be
   * named beside its asker. Nothing when the record moved on (another generation, no longer open),
   * already names them, or names MAX_ALSO_ASKED people. True when added.
   */
  async noteAlsoAsked(record: PlanRecord, actor: Actor): Promise<boolean> {
    const a = actorSchema.parse(actor);
    const n = await this.redis.eval(
      ASKED_SCRIPT,
      1,
      this.key(record.plan.id),
      `${ASKED_FIELD}${a.surface}:${a.userId}`,
      JSON.stringify({ actor: a, at: this.clock.now() }),
      record.generation ?? '',
      String(MAX_ALSO_ASKED),
      ASKED_FIELD,
    );
    return n === 1;
  }

  /**
   * Up to `limit` plan ids whose time ran out by `now` (their `expiresAt`, from the expiry index), oldest
   * first, whatever their state: the caller reads each record and lets the index `forgetDue` them.
   * Plans expire when they are read; this is how a sweep finds the ones nobody reads.
   */
  async dueToExpire(now: number, limit: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.expiringKey(), '-inf', String(now), 'LIMIT', 0, limit);
  }

  /**
   * Claims the showing of an expired plan on its messages: true for exactly one call per record (of any
   * number of replicas' sweeps), false when it was claimed before, or the record under this id is not
   * `expired` or not the one read (`record`'s generation) any more.
   */
  async takeExpiryShown(record: PlanRecord): Promise<boolean> {
    const n = await this.redis.eval(
      EXPIRY_SHOWN_SCRIPT,
      1,
      this.key(record.plan.id),
      record.generation ?? '',
      String(this.clock.now()),
    );
    return n === 1;
  }

  /** Takes `planIds` off the expiry index, unless one was made again since with a later expiry. */
  async forgetDue(planIds: readonly string[], now: number): Promise<void> {
    if (planIds.length === 0) return;
    await this.redis.eval(FORGET_DUE_SCRIPT, 1, this.expiringKey(), String(now), ...planIds);
  }

  /** The record of a plan, or undefined when it never existed or its retention ran out. */
  async get(planId: string): Promise<PlanRecord | undefined> {
    const hash = await this.redis.hgetall(this.key(planId));
    return this.decode(this.pairs(hash), planId);
  }

  /**
   * Moves the plan from one of `from` to `to`, setting `patch` and removing `remove`, atomically.
   * Exactly one of any number of concurrent callers with the same `from` succeeds. A move from an open
   * state to `awaiting_approval` or `enqueued` also checks `expiresAt` against this call's time, in the
   * same script: a plan past it becomes `expired` instead (`{ ok: false, expired: true }`). A move of an
   * open plan to `expired` happens only while it is past `expiresAt` at this call's time (else
   * `{ ok: false, changed: true }`: a request or alert joined it since and restarted its time). With
   * `opts.expect`, only the record read moves (see TransitionOptions).
   */
  async transition(
    planId: string,
    from: readonly PlanState[],
    to: PlanState,
    patch: PlanPatch = {},
    remove: readonly PatchField[] = [],
    opts: TransitionOptions = {},
  ): Promise<TransitionResult> {
    const now = String(this.clock.now());
    const fields: string[] = ['updatedAt', now];
    for (const [name, value] of Object.entries(patch)) {
      if (value === undefined) continue;
      fields.push(name, typeof value === 'string' ? value : JSON.stringify(value));
    }
    const dismissal =
      opts.dismissal === undefined ? '' : JSON.stringify(dismissalSchema.parse(opts.dismissal));
    const raw = await this.redis.eval(
      TRANSITION_SCRIPT,
      2,
      this.key(planId),
      this.dismissedKey(planId),
      from.join(','),
      to,
      remove.join(','),
      ACTING_STATES.includes(to) || to === PlanState.expired ? now : '',
      ...this.expectArgs(opts.expect),
      dismissal,
      String(this.ttlMs + this.retainMs),
      ...fields,
    );
    const [moved, hash] = this.scriptReply(raw, planId);
    const record = this.decode(hash, planId);
    if (moved === 1) {
      if (record === undefined) throw this.corrupt(planId, 'record vanished during a transition');
      return { ok: true, record };
    }
    if (moved === 2) return { ok: false, record, expired: true };
    if (moved === 3) return { ok: false, record, changed: true };
    return { ok: false, record };
  }

  /** The script arguments saying which record must still be there ('1', generation, revision), or not. */
  private expectArgs(expect: PlanRevision | undefined): [string, string, string] {
    if (expect === undefined) return ['0', '', '0'];
    return ['1', expect.generation ?? '', String(expect.revision ?? 0)];
  }

  /**
   * Records a chat message showing the plan (so progress can edit it). Idempotent per message;
   * false when the plan is gone or already follows MAX_MESSAGES_PER_PLAN messages
   * (MAX_CLICKED_MESSAGES_PER_PLAN with `clicked`: the message is one a person just clicked).
   */
  async attachMessage(
    planId: string,
    ref: MessageRef,
    opts: { readonly clicked?: boolean } = {},
  ): Promise<boolean> {
    const [field, value] = this.messageEntry(messageRefSchema.parse(ref), this.clock.now());
    const max = opts.clicked === true ? MAX_CLICKED_MESSAGES_PER_PLAN : MAX_MESSAGES_PER_PLAN;
    const n = await this.redis.eval(
      ATTACH_SCRIPT,
      1,
      this.key(planId),
      field,
      value,
      String(max),
      MESSAGE_FIELD,
    );
    return n === 1;
  }

  /**
   * Lists `alert` on the open plan (once per `alertId`) and claims the suggestion of each destination
   * slot that has none: see SuggestionSlot. Restarts the plan's time (`expiresAt` at least `ttlMs` from
   * now). Undefined when the plan is gone or not open any more (it was confirmed, ended, or is past its
   * time): there is nothing to group into then.
   */
  async groupAlert(
    planId: string,
    alertId: string,
    alert: AlertContext,
    slots: readonly string[],
  ): Promise<AlertGroup | undefined> {
    const now = this.clock.now();
    const entry = planAlertSchema.parse({ id: alertIdSchema.parse(alertId), alert, at: now });
    const { slot: _, ...claimed } = planSuggestionSchema.parse({ slot: '-', alertId, at: now });
    const raw = await this.redis.eval(
      GROUP_SCRIPT,
      4,
      this.key(planId),
      ...this.alertKeys(planId),
      this.expiringKey(),
      String(now),
      alertId,
      JSON.stringify({ alert: entry.alert, at: entry.at }),
      String(MAX_ALERTS_PER_PLAN),
      JSON.stringify(claimed),
      String(SUGGESTION_CLAIM_LEASE_MS),
      String(now + this.ttlMs),
      String(this.ttlMs + this.retainMs),
      planId,
      String(MAX_COUNTED_ALERTS_PER_PLAN),
      ...slots.map((slot) => `${SUGGESTION_FIELD}${slot}`),
    );
    if (!Array.isArray(raw) || raw[0] !== 1) return undefined;
    const version = Number(raw[1]);
    const total = Number(raw[2]);
    const out: SuggestionSlot[] = slots.map((slot, i) => {
      const value = String(raw[i + 3] ?? '');
      if (value === '') return { slot, claimed: true };
      return { slot, claimed: false, suggestion: this.suggestion(slot, value, planId) };
    });
    return { version, slots: out, total };
  }

  /**
   * Records the message posted for a claimed slot. Returns the plan's alertsVersion now (compare it
   * with the one the message was rendered from), or undefined when the slot or the plan is gone.
   */
  async suggestionPosted(
    planId: string,
    slot: string,
    alertId: string,
    ref: MessageRef,
  ): Promise<number | undefined> {
    return this.setSlot(planId, { slot, alertId, at: this.clock.now(), ref: messageRefSchema.parse(ref) });
  }

  private async setSlot(planId: string, suggestion: PlanSuggestion): Promise<number | undefined> {
    const { slot, ...stored } = planSuggestionSchema.parse(suggestion);
    const n = await this.redis.eval(
      SLOT_SET_SCRIPT,
      1,
      this.key(planId),
      `${SUGGESTION_FIELD}${slot}`,
      JSON.stringify(stored),
    );
    return typeof n === 'number' && n >= 0 ? n : undefined;
  }

  /** Frees a claimed slot whose post failed, so the next alert posts there. */
  async releaseSuggestion(planId: string, slot: string): Promise<void> {
    await this.redis.eval(SLOT_RELEASE_SCRIPT, 1, this.key(planId), `${SUGGESTION_FIELD}${slot}`);
  }

  /**
   * Takes an alert off the plan (its suggestion could not be posted: its sender tries again). One only
   * estimated (`alertsUntracked`) stays in the estimate, and its sender's retry is not counted again.
   */
  async unlistAlert(planId: string, alertId: string): Promise<void> {
    await this.redis.eval(
      UNLIST_SCRIPT,
      3,
      this.key(planId),
      ...this.alertKeys(planId),
      alertIdSchema.parse(alertId),
    );
  }

  /**
   * Marks an alert of the plan (listed or counted) resolved at `at`. Returns the plan's state then (an
   * enqueued plan's messages show its switch, not the list), or undefined when the plan does not have
   * the alert (a plan made again under the same id since, or one that never listed alerts), nor for one
   * only estimated (`alertsUntracked`: resolutions of those are not tracked).
   */
  async resolveAlert(planId: string, alertId: string, at: number): Promise<PlanState | undefined> {
    const state = await this.redis.eval(
      ALERT_RESOLVE_SCRIPT,
      3,
      this.key(planId),
      ...this.alertKeys(planId),
      alertIdSchema.parse(alertId),
      String(at),
    );
    return typeof state === 'string' && (planStates as readonly string[]).includes(state)
      ? (state as PlanState)
      : undefined;
  }

  /**
   * A fresh plan made from a closed one ("Make a fresh plan", Flow.replan): lists `alerts` (the closed
   * record's, with their resolutions) on the record of generation `generation`, and with `slot` claims
   * that suggestion slot for the message the click posts (shown first: `slot.alertId`), unless the plan
   * has a suggestion there already. In one step (see CARRY_ALERTS_SCRIPT). Undefined when the plan is
   * not open or another record replaced that one; else the plan's alertsVersion and whether the slot
   * was claimed (the caller then records the posted message, `suggestionPosted`, or frees the slot,
   * `releaseSuggestion`, when the post failed: ChatService `attach` and `postFailed`).
   */
  async carryAlerts(
    planId: string,
    generation: string,
    alerts: readonly PlanAlert[],
    slot?: { readonly slot: string; readonly alertId: string },
  ): Promise<{ readonly version: number; readonly claimed: boolean } | undefined> {
    const now = this.clock.now();
    const args: string[] = [];
    for (const a of alerts) {
      const entry = planAlertSchema.parse({ ...a, id: alertIdSchema.parse(a.id) });
      args.push(
        entry.id,
        JSON.stringify({ alert: entry.alert, at: entry.at }),
        entry.resolvedAt === undefined ? '' : String(entry.resolvedAt),
      );
    }
    const claim =
      slot === undefined
        ? undefined
        : planSuggestionSchema.parse({
            slot: slot.slot,
            alertId: alertIdSchema.parse(slot.alertId),
            at: now,
          });
    const { slot: _, ...claimed } = claim ?? { slot: '' };
    const raw = await this.redis.eval(
      CARRY_ALERTS_SCRIPT,
      3,
      this.key(planId),
      ...this.alertKeys(planId),
      String(now),
      generation,
      String(MAX_ALERTS_PER_PLAN),
      claim === undefined ? '' : `${SUGGESTION_FIELD}${claim.slot}`,
      JSON.stringify(claimed),
      String(SUGGESTION_CLAIM_LEASE_MS),
      String(MAX_COUNTED_ALERTS_PER_PLAN),
      ...args,
    );
    if (!Array.isArray(raw) || raw[0] !== 1) return undefined;
    return { version: Number(raw[1]), claimed: raw[2] === 1 };
  }

  /**
   * Records on the closed record `planId` of generation `generation` that the fresh plan `freshId` (made
   * from it with "Make a fresh plan" under another id, the platform having moved) took its alerts over:
   * see `replannedAs`. False when that record is gone or was replaced.
   */
  async markReplanned(planId: string, generation: string, freshId: string): Promise<boolean> {
    const fresh = planIdSchema.parse(freshId);
    const n = await this.redis.eval(
      REPLANNED_SCRIPT,
      1,
      this.key(planId),
      generation,
      `${REPLANNED_FIELD}${fresh}`,
      String(this.clock.now()),
      String(MAX_REPLANS_PER_PLAN),
    );
    return n === 1;
  }

  /**
   * Dismiss on one of the plan's messages: marks it dismissed by `by` (when it is a suggestion) and
   * returns how many other messages still offer the plan (those on `ignoreSurfaces` not counted), in
   * one step; undefined when the plan is not open; `changed` (nothing marked) when `expect` is given
   * and the record is no longer that one.
   */
  async dismissMessage(
    planId: string,
    ref: MessageRef,
    by: string,
    ignoreSurfaces: readonly string[] = [],
    expect?: PlanRevision,
  ): Promise<number | 'changed' | undefined> {
    const r = messageRefSchema.parse(ref);
    const n = await this.redis.eval(
      DISMISS_SCRIPT,
      1,
      this.key(planId),
      r.surface,
      r.channel,
      r.messageId,
      by,
      ignoreSurfaces.join(','),
      ...this.expectArgs(expect),
    );
    if (n === -2) return 'changed';
    return typeof n === 'number' && n >= 0 ? n : undefined;
  }

  /**
   * Who dismissed the alert suggestion of this plan id, and when; undefined when nobody did. Recorded
   * by the cancel that dismissed it (`TransitionOptions.dismissal`) in a key of its own, kept as long
   * as a record is: a person's later request for the same switch replaces the plan's record, not this.
   */
  async dismissal(planId: string): Promise<Dismissal | undefined> {
    const raw = await this.redis.get(this.dismissedKey(planId));
    if (raw === null) return undefined;
    try {
      return dismissalSchema.parse(JSON.parse(raw));
    } catch (e) {
      throw this.corrupt(planId, `dismissal: ${problemOf(e)}`);
    }
  }

  private dismissedKey(planId: string): string {
    return `${this.prefix}dismissed:${planId}`;
  }

  private suggestion(slot: string, value: string, planId: string): PlanSuggestion {
    try {
      return planSuggestionSchema.parse({ ...JSON.parse(value), slot });
    } catch (e) {
      throw this.corrupt(planId, `field ${SUGGESTION_FIELD}${slot}: ${problemOf(e)}`);
    }
  }

  /** Closes the Redis connection when the store opened it. */
  async close(): Promise<void> {
    if (this.ownsRedis) await this.redis.quit();
  }

  private messageEntry(ref: MessageRef, at: number): [string, string] {
    return [messageField(ref), JSON.stringify({ ref, at })];
  }

  private scriptReply(raw: unknown, planId: string): [number, string[]] {
    if (!Array.isArray(raw) || typeof raw[0] !== 'number' || !Array.isArray(raw[1])) {
      throw this.corrupt(planId, `unexpected script reply ${JSON.stringify(raw)}`);
    }
    return [raw[0], raw[1].map(String)];
  }

  private pairs(hash: Record<string, string>): string[] {
    return Object.entries(hash).flat();
  }

  private corrupt(planId: string, detail: string): SwitchyardError {
    return new SwitchyardError('internal', `Plan ${planId} in Redis is unreadable: ${detail}`, {
      context: { planId },
    });
  }

  /** The record in `flat` cannot be read: `problem` (naming `field`, the first one to blame). */
  private unreadable(
    flat: readonly string[],
    planId: string,
    field: string | undefined,
    problem: string,
  ): PlanUnreadableError {
    const stored = (name: string): string => {
      for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i] === name) return flat[i + 1] ?? '';
      return '';
    };
    return new PlanUnreadableError(planId, field, problem, {
      generation: stored('generation'),
      revision: stored('revision'),
    });
  }

  /**
   * A message ref of the record that cannot be read is skipped (the plan still reads, and its other
   * messages still follow it), said once per plan and field: one junk entry must not make the whole
   * record unreadable, which would refuse every request for the same switch until the key expired.
   */
  private skipMessage(planId: string, field: string, problem: string): void {
    const key = `${planId} ${field}`;
    if (this.loggedSkips.has(key)) return;
    if (this.loggedSkips.size >= LOGGED_SKIPS_MAX) this.loggedSkips.clear();
    this.loggedSkips.add(key);
    this.logger.warn({ planId, field, problem }, 'plan record: unreadable message ref skipped');
  }

  /** Turns a flat HGETALL reply into a validated record; undefined for an empty hash. */
  private decode(flat: readonly string[], planId: string): PlanRecord | undefined {
    if (flat.length === 0) return undefined;
    const out: Record<string, unknown> = {};
    const messages: { ref: unknown; at: number; field: string }[] = [];
    const alerts = new Map<string, Record<string, unknown>>();
    const resolvedAt = new Map<string, number>();
    const seq = new Map<string, number>();
    const over: string[] = [];
    const suggestions: PlanSuggestion[] = [];
    const replanned: { id: string; at: number }[] = [];
    const asked: { actor: unknown; at: number; field: string }[] = [];
    const counts = new Map<string, number>();
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const field = flat[i] ?? '';
      const value = flat[i + 1] ?? '';
      if (field.startsWith(MESSAGE_FIELD)) {
        const json = parseJson(value);
        const m = json.ok ? storedMessageSchema.safeParse(json.value) : undefined;
        if (m?.success) messages.push({ ref: m.data.ref, at: m.data.at, field });
        else this.skipMessage(planId, field, m === undefined ? 'not JSON' : describeIssues(m.error));
        continue;
      }
      try {
        if (field.startsWith(ALERT_FIELD)) {
          alerts.set(field.slice(ALERT_FIELD.length), JSON.parse(value) as Record<string, unknown>);
        } else if (field.startsWith(ALERT_OVER_FIELD)) {
          over.push(field.slice(ALERT_OVER_FIELD.length));
        } else if (field.startsWith(ALERT_SEQ_FIELD)) {
          seq.set(field.slice(ALERT_SEQ_FIELD.length), Number(value));
        } else if (field.startsWith(ALERT_RESOLVED_FIELD)) {
          resolvedAt.set(field.slice(ALERT_RESOLVED_FIELD.length), Number(value));
        } else if (field.startsWith(SUGGESTION_FIELD)) {
          const slot = field.slice(SUGGESTION_FIELD.length);
          suggestions.push(planSuggestionSchema.parse({ ...JSON.parse(value), slot }));
        } else if (field.startsWith(ASKED_FIELD)) {
          const a = JSON.parse(value) as { actor?: unknown; at?: unknown };
          asked.push({ actor: a.actor, at: Number(a.at) || 0, field });
        } else if (field.startsWith(REPLANNED_FIELD)) {
          replanned.push({ id: field.slice(REPLANNED_FIELD.length), at: Number(value) || 0 });
        } else if (COUNT_FIELDS.has(field)) {
          counts.set(field, Number(value));
        } else if (JSON_FIELDS.has(field)) {
          out[field] = JSON.parse(value);
        } else if (NUMBER_FIELDS.has(field)) {
          out[field] = Number(value);
        } else {
          out[field] = value;
        }
      } catch (e) {
        throw this.unreadable(flat, planId, field, `field ${field}: ${problemOf(e)}`);
      }
    }
    messages.sort((a, b) => a.at - b.at || a.field.localeCompare(b.field));
    out.messages = messages.map((m) => m.ref);
    if (alerts.size > 0) {
      out.alerts = [...alerts]
        .map(([id, a]) => {
          const at = resolvedAt.get(id);
          return { ...a, id, ...(at === undefined ? {} : { resolvedAt: at }) } as {
            id: string;
            at?: unknown;
          };
        })
        // In the order they joined (the list's sequence), whatever the clocks said.
        .sort((a, b) => (seq.get(a.id) ?? 0) - (seq.get(b.id) ?? 0) || Number(a.at) - Number(b.at));
    }
    // The counts kept as fields; a record written before they were has its `ao:` fields counted here.
    const counted = counts.get('alertsCounted');
    const more = counted ?? over.length;
    const moreResolved =
      counted === undefined
        ? over.filter((id) => resolvedAt.has(id)).length
        : (counts.get('alertsCountedResolved') ?? 0);
    if (more > 0) {
      out.alertsMore = more;
      out.alertsMoreFiring = more - moreResolved;
    }
    const untracked = counts.get('alertsUntracked') ?? 0;
    if (untracked > 0) out.alertsUntracked = untracked;
    if (suggestions.length > 0)
      out.suggestions = suggestions.sort((a, b) => a.at - b.at || a.slot.localeCompare(b.slot));
    if (asked.length > 0)
      out.alsoAskedBy = asked
        .sort((a, b) => a.at - b.at || a.field.localeCompare(b.field))
        .map((a) => a.actor);
    if (replanned.length > 0)
      out.replannedAs = replanned.sort((a, b) => a.at - b.at || a.id.localeCompare(b.id)).map((r) => r.id);
    const parsed = planRecordSchema.safeParse(out);
    if (!parsed.success) {
      const first = parsed.error.issues[0]?.path[0];
      throw this.unreadable(
        flat,
        planId,
        first === undefined ? undefined : String(first),
        describeIssues(parsed.error),
      );
    }
    return parsed.data;
  }
}

/** `raw` parsed as JSON, if it is JSON. */
function parseJson(raw: string): { readonly ok: true; readonly value: unknown } | { readonly ok: false } {
  try {
    return { ok: true, value: JSON.parse(raw) };
  } catch {
    return { ok: false };
  }
}

/** What is wrong with a field, in words: a zod error's issues (never its JSON), else the error's message. */
function problemOf(e: unknown): string {
  if (e instanceof z.ZodError) return describeIssues(e);
  return e instanceof Error ? e.message : String(e);
}
