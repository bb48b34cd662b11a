/**
 * Deployment notices (issue 9): follows the deploy platform's events (`DeployPlatform.subscribe`) and
 * posts compact notices to each environment's channels on every chat surface — a deployment became
 * ready (or failed, went to standby, was stopped), traffic moved outside Switchyard — and, while an
 * environment is rolled back, announces new deployments as "ready but not live" with a Promote button
 * and reminds the channel every `reminderEvery` (held outside `workingHoursUtc`) until someone promotes.
 *
 * Exactly once across replicas and restarts: every notice is claimed with one Redis `SET NX PX` on a
 * key made of environment, notice type, deployment and event time (or reminder slot) before it is
 * posted, so whichever replica claims it posts it and every other replica (or a restarted process
 * receiving the same event again) skips it. Reminders are derived from state, not kept in memory: slot
 * n of a rolled-back environment is due at `rolledBackAt + n × reminderEvery`, so a restarted process
 * computes the same slots and the claims stop it from repeating one.
 *
 * A traffic move made by a Switchyard job is reported in the job's own message and is not announced
 * again: the switch processor writes a `started` audit entry (action, target, job id) before it calls
 * the platform, so a `traffic.moved` whose `via`/`to` match such an entry of the same environment within
 * `switchyardWindowMs` is the job's; each job explains at most one move (claimed per job id). Anything
 * else moved by a rollback or promote happened outside Switchyard (the dashboard or the API). A move to
 * the target of a run whose job had already ended `failed` completes that switch: it is announced as
 * such, and the job's own messages (which say it failed) are edited to say so too (`jobUpdates`). A
 * move seen longer than `jobMoveSeenWithinMs` after a run ended `succeeded` is announced too, saying
 * that it is that switch seen late or the same switch made again (a polled platform never sees a switch
 * undone before its next poll).
 *
 * A "ready but not live" notice and a reminder describe one rolled-back period (the environment rolled
 * back to one deployment since one time). Once posted, each message's ref is kept in Redis under its
 * period; when a replica sees the period over (the environment promoted, automatic deploys resumed, or
 * rolled back again: from a platform event, a reminder check or the periodic recheck), it closes the
 * period: one Lua script moves each kept ref, at most once across replicas, into the pending posts as an
 * edit to a closed view without buttons, so edits share the posts' lease, retries and restart safety.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { AuditEntry, WrittenEntries } from './audit.js';
import type { ChatPoster } from './chat-sinks.js';
import { type Clock, systemClock, within } from './clock.js';
import { type Config, type EnvironmentConfig, environmentConfigSchema } from './config.js';
import { keepsNoLiveHistory, type OwnRecord } from './domain/own-record.js';
import { newestFirstRank, pushedSinceRollback } from './domain/plan.js';
import { RefusalCode } from './domain/result.js';
import {
  assertNever,
  type Deployment,
  type EnvironmentKind,
  type EnvironmentSnapshot,
} from './domain/types.js';
import { hasCode } from './errors.js';
import { type Logger, silentLogger } from './log.js';
import type { Metrics } from './metrics.js';
import { ownRecordFromAudit } from './own-record-audit.js';
import type { DeployPlatform, PlatformEvent } from './platform/port.js';
import { type MessageRef, messageRefSchema, type Progress } from './progress.js';
import { definedOnly, type SwitchQueue } from './queue.js';
import { type RedisClient, redisAnswers } from './redis.js';
import { b, c, formatTime, longDuration, t } from './views/format.js';
import {
  type ClosedNotice,
  closedNoticeView,
  deploymentSpans,
  type NoticeEvent,
  noticeView,
  progressView,
  type RolledBackEnd,
} from './views/model.js';
import type { MessageView, Span, ViewBlock } from './views/types.js';
import { issueLines } from './zod-issues.js';

/**
 * Platform refusals that last until someone changes a setting (a rejected root key or token, a missing
 * permission): trying again cannot help, so a check failing with one says so once, not on every retry.
 */
const STANDING_REFUSALS: readonly RefusalCode[] = [
  RefusalCode.platformUnauthorized,
  RefusalCode.platformForbidden,
];

/** The code of a standing platform refusal (a `RefusalError`, matched by name and code), else undefined. */
function standingRefusal(e: unknown): RefusalCode | undefined {
  if (!(e instanceof Error) || e.name !== 'RefusalError') return undefined;
  return STANDING_REFUSALS.find((code) => hasCode(e, code));
}

/** What was announced (the `kind` label of `switchyard_notices_total`). */
export const NoticeKind = {
  ready: 'ready',
  readyNotLive: 'ready_not_live',
  failed: 'failed',
  trafficMoved: 'traffic_moved',
  standby: 'standby',
  stopped: 'stopped',
  reminder: 'reminder',
} as const;
export type NoticeKind = (typeof NoticeKind)[keyof typeof NoticeKind];

/** What the service did with one event or reminder slot (for logs and tests). */
export type NoticeOutcome =
  | {
      readonly status: 'posted';
      readonly environment: string;
      readonly kind: NoticeKind;
      readonly key: string;
      readonly refs: readonly MessageRef[];
      /** Surfaces whose post failed with a fault that may pass: each is tried again later. */
      readonly retrying?: readonly ChatPoster['surface'][];
      /** Set on a retried post: which attempt delivered it (2 is the first retry). */
      readonly attempt?: number;
    }
  | {
      /** Posting to one surface failed for good: a refusal (no access, unknown channel) or attempts ran out. */
      readonly status: 'post_failed';
      readonly environment: string;
      readonly kind: NoticeKind;
      readonly key: string;
      readonly surface: ChatPoster['surface'];
      readonly attempts: number;
      readonly error: string;
    }
  | {
      /**
       * A "ready but not live" notice or a reminder was edited into its closed view: its rolled-back
       * period is over (`key` is the notice's claim key, `ref` the message edited).
       */
      readonly status: 'closed';
      readonly environment: string;
      readonly kind: NoticeKind;
      readonly key: string;
      readonly ref: MessageRef;
      /** Set on a retried edit: which attempt made it (2 is the first retry). */
      readonly attempt?: number;
    }
  | {
      /** Closing one message failed for good (refused, attempts ran out): it keeps its old text. */
      readonly status: 'close_failed';
      readonly environment: string;
      readonly kind: NoticeKind;
      readonly key: string;
      readonly surface: ChatPoster['surface'];
      readonly attempts: number;
      readonly error: string;
    }
  | {
      /**
       * A message of a Switchyard job that had ended failed was edited to say that the platform
       * completed its switch afterwards (`key` is the traffic move notice's claim key, `ref` the
       * message edited). `again`: the same edit made once more later (see `jobUpdateAgainMs`).
       */
      readonly status: 'job_updated';
      readonly environment: string;
      readonly kind: NoticeKind;
      readonly key: string;
      readonly jobId: string;
      readonly ref: MessageRef;
      readonly again?: true;
      /** Set on a retried edit: which attempt made it (2 is the first retry). */
      readonly attempt?: number;
    }
  | {
      /** Updating one message of such a job failed for good (refused, attempts ran out). */
      readonly status: 'job_update_failed';
      readonly environment: string;
      readonly kind: NoticeKind;
      readonly key: string;
      readonly jobId: string;
      readonly surface: ChatPoster['surface'];
      readonly attempts: number;
      readonly error: string;
    }
  | {
      /** Another replica, or this service before a restart, already claimed this notice. */
      readonly status: 'duplicate';
      readonly environment: string;
      readonly kind: NoticeKind;
      readonly key: string;
    }
  | {
      /** Nothing to announce (notices off, event not selected, a Switchyard job's move, …). */
      readonly status: 'skipped';
      readonly environment: string;
      readonly reason: string;
      readonly event?: PlatformEvent;
    };

/**
 * The audit reads the service needs (src/audit.ts `AuditLog` satisfies it). `recent` gives an
 * environment's newest entries newest first, in the order they were written (a job's runs are told
 * apart by that order). `recentWritten`, when given, gives the same entries with the time Redis wrote
 * each and the time Redis read them (one clock for every writer): a traffic move is matched to a job by
 * those, whatever the skew between the worker that wrote its entries and the process that saw the move.
 * Without it, by the entries' `at` (the writers' clocks) and the event's.
 */
export interface NoticeAudit {
  recent(environment: string, limit?: number): Promise<AuditEntry[]>;
  recentWritten?(environment: string, limit?: number): Promise<WrittenEntries>;
}

/**
 * The switch queue reads the service needs to update a failed job's messages when the platform
 * completes its switch afterwards: the job's message refs and its final progress.
 */
export type NoticeJobs = Pick<SwitchQueue, 'messages' | 'progress'>;

export interface NoticesOptions {
  readonly platform: DeployPlatform;
  readonly redis: RedisClient;
  /** One poster per chat surface; each gets the environment's channel for its surface. */
  readonly posters: readonly ChatPoster[];
  /** Per-environment notice settings and channels; `env` gives the fallback alert channels. */
  readonly config: Pick<Config, 'env' | 'file'>;
  /** Tells a Switchyard job's traffic move from one made on the dashboard. */
  readonly audit: NoticeAudit;
  /**
   * The switch queue: when the platform completes a switch whose job had ended failed, the job's own
   * messages are edited to say so (its final view with an update line). Without it only the traffic
   * move notice says so.
   */
  readonly jobs?: NoticeJobs;
  /**
   * Such an update of a job's message is made again this long after it was first made (default 2
   * minutes; 0: once only): the worker's own final edit of the message, held up on its way to the chat
   * API (a rate limit, retries) past the job's end, may land after the update and cover it.
   */
  readonly jobUpdateAgainMs?: number;
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly metrics?: Pick<Metrics, 'notices' | 'noticesFailed'>;
  /** Prefix of the Redis keys (`<prefix>:claim:…`); share it between replicas of one installation. */
  readonly prefix?: string;
  /** How long a claim on an event notice is kept (default 7 days). */
  readonly claimTtlMs?: number;
  /**
   * How far back a job's `started` audit entry explains a traffic move (default 1 hour; on Redis's
   * clock when the audit says when it wrote each entry: see `NoticeAudit.recentWritten`).
   */
  readonly switchyardWindowMs?: number;
  /**
   * How long after a run ended `succeeded` a move to its target is still taken for its own (default 2
   * minutes, on the same clock as `switchyardWindowMs`). The job ends once it saw its switch done, so
   * its move has happened by then and is seen at the latest by the next poll of a polled platform: one
   * poll interval (15 s by default), plus a poll round slowed by the platform's retries and time
   * limits, plus the minute of clock skew allowed between the worker and the event's source when the
   * audit does not say when Redis wrote each entry. A move seen later is another switch (the job's was
   * undone before a poll saw it, then made again outside Switchyard) or the job's own seen late (no
   * replica polled meanwhile): it is announced, saying both (`seenLateNoticeView`).
   */
  readonly jobMoveSeenWithinMs?: number;
  /**
   * A `deployment.ready` for a deployment whose `readyAt` is older than this is a standby deployment
   * being reactivated (by a rollback to it), not a new deployment: no notice (default 10 minutes).
   */
  readonly reactivationGraceMs?: number;
  /** Wait before retrying a reminder check that failed (platform or Redis down; default 1 minute). */
  readonly retryMs?: number;
  /**
   * Check each environment again at least this often (default 5 minutes; 0: only when a traffic event
   * arrives or a reminder is due). Polled platforms deliver each event to one replica only, and some
   * platforms deliver none: this lets every replica notice a rollback and take its share of the
   * reminders, and notice its end (resuming automatic deploys sends no event) to close its notices.
   */
  readonly recheckMs?: number;
  /**
   * Posting a notice to a surface is retried when it failed with a fault that may pass (the chat API
   * down or answering 5xx after the SDK's own retries; `ChatPoster.retryable` decides): up to
   * `postAttempts` attempts in all, waiting `postRetryMs` doubling to at most `postRetryMaxMs` between
   * them (defaults 6, 5 s, 2 min: waits of 5, 10, 20, 40 and 80 s, about 2.5 minutes in all). Only the
   * failed surface is posted again.
   */
  readonly postAttempts?: number;
  readonly postRetryMs?: number;
  readonly postRetryMaxMs?: number;
  /**
   * How often to look for retries scheduled by another replica or before a restart (default 30 s; a
   * retry this process schedules itself is taken on time).
   */
  readonly retryPollMs?: number;
  /**
   * How long an attempt in progress holds its pending post (default 5 minutes): every attempt, the
   * first included, is kept in Redis first and is due again this long after it started, so a process
   * that dies mid-post leaves the notice to the next process or replica. Longer than any post takes
   * (the chat clients' own time limits and retries), so a slow post is not taken twice.
   */
  readonly postLeaseMs?: number;
  /**
   * At most this many posted messages of one rolled-back period are kept for closing (default 500);
   * beyond it the oldest are forgotten (left as they are when the period ends) and a warning is logged.
   */
  readonly maxOpenNotices?: number;
  /**
   * How long `stop()` waits for the events being handled and the checks and posts under way (default
   * 10 s, real time: a shutdown deadline is about the operator's wait). While Redis is unreachable it
   * does not wait at all: that work waits for Redis, for as long as the outage lasts.
   */
  readonly stopTimeoutMs?: number;
  /** Called with every outcome (tests, debugging). */
  readonly onOutcome?: (outcome: NoticeOutcome) => void;
}

/** Defaults of the optional options (STYLE 6). */
export const noticesDefaults = {
  prefix: 'switchyard:notices',
  claimTtlMs: 7 * 86_400_000,
  switchyardWindowMs: 3_600_000,
  jobMoveSeenWithinMs: 2 * 60_000,
  reactivationGraceMs: 10 * 60_000,
  retryMs: 60_000,
  recheckMs: 5 * 60_000,
  postAttempts: 6,
  postRetryMs: 5_000,
  postRetryMaxMs: 120_000,
  retryPollMs: 30_000,
  postLeaseMs: 5 * 60_000,
  maxOpenNotices: 500,
  stopTimeoutMs: 10_000,
  jobUpdateAgainMs: 2 * 60_000,
} as const satisfies Required<
  Pick<
    NoticesOptions,
    | 'prefix'
    | 'claimTtlMs'
    | 'switchyardWindowMs'
    | 'jobMoveSeenWithinMs'
    | 'reactivationGraceMs'
    | 'retryMs'
    | 'recheckMs'
    | 'postAttempts'
    | 'postRetryMs'
    | 'postRetryMaxMs'
    | 'retryPollMs'
    | 'postLeaseMs'
    | 'maxOpenNotices'
    | 'stopTimeoutMs'
    | 'jobUpdateAgainMs'
  >
>;

/** A running notices service. */
export interface NoticeService {
  /**
   * Unsubscribes, stops the reminder loops and waits for notices being posted: at most `stopTimeoutMs`,
   * and not at all while Redis is unreachable (what it did not wait for is logged once).
   */
  stop(): Promise<void>;
  /**
   * Resolves once every received event is handled and every reminder loop is parked on the clock
   * (tests: `await clock.advance(ms); await notices.idle()`).
   */
  idle(): Promise<void>;
}

const SLUG = z.string().min(1).max(200);
/** The latest time a `Date` can hold (±8.64e15 ms): a time beyond it cannot be written in a view. */
const MAX_TIME = 8_640_000_000_000_000;
/** A time read at an edge (events, Redis): an integer a `Date` can hold, so every view can write it. */
const AT = z.number().int().nonnegative().max(MAX_TIME);

/** Whether `at` is a time `AT` accepts (for times no schema read: the platform's, the audit's). */
function isTime(at: number | undefined): at is number {
  return at !== undefined && AT.safeParse(at).success;
}

/** `{ at }` when `at` is a time, else nothing (a view leaves out what no source says validly). */
function atIf(at: number | undefined): { at?: number } {
  return isTime(at) ? { at } : {};
}

/** Platform events are parsed before use: an adapter's malformed event is logged and skipped. */
export const platformEventSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.enum([
      'deployment.building',
      'deployment.ready',
      'deployment.failed',
      'deployment.standby',
      'deployment.stopped',
    ]),
    environment: SLUG,
    deploymentId: SLUG,
    at: AT,
  }),
  z.object({
    type: z.literal('traffic.moved'),
    environment: SLUG,
    from: SLUG.optional(),
    to: SLUG,
    via: z.enum(['deploy', 'rollback', 'promote']),
    at: AT,
  }),
]);

/** The channel each surface posts an environment's notices to (undefined: that surface is skipped). */
export function noticeChannel(
  surface: ChatPoster['surface'],
  environment: EnvironmentConfig,
  env: Pick<Config['env'], 'SLACK_ALERT_CHANNEL' | 'DISCORD_ALERT_CHANNEL'>,
): string | undefined {
  switch (surface) {
    case 'slack':
      return environment.channels.slack ?? env.SLACK_ALERT_CHANNEL;
    case 'discord':
      return environment.channels.discord ?? env.DISCORD_ALERT_CHANNEL;
    case 'console':
      return environment.channels.console ?? 'console';
    default:
      return assertNever(surface, 'surface');
  }
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/**
 * Whether `at` falls within the UTC working hours `[start, end)`. `start > end` wraps midnight
 * (`[22, 6]` is the night shift); `start === end` means all day.
 */
export function inWorkingHours(at: number, hours: readonly [number, number]): boolean {
  const [start, end] = hours;
  if (start === end) return true;
  const h = new Date(at).getUTCHours();
  return start < end ? h >= start && h < end : h >= start || h < end;
}

/** Milliseconds from `at` until working hours next begin (0 when `at` is within them). */
export function untilWorkingHours(at: number, hours: readonly [number, number]): number {
  if (inWorkingHours(at, hours)) return 0;
  const dayStart = at - (at % DAY);
  let next = dayStart + hours[0] * HOUR;
  if (next <= at) next += DAY;
  return next - at;
}

/**
 * When reminder slot `n` (1, 2, …) of an environment rolled back at `since` is due, and which slot is
 * current at `now` (0: none yet).
 */
export function reminderSlot(since: number, every: number, now: number): { current: number; nextAt: number } {
  const current = Math.max(0, Math.floor((now - since) / every));
  return { current, nextAt: since + (current + 1) * every };
}

/**
 * Where a deployment that went to standby stands in its environment, read right after the event: what
 * its standby notice may promise depends on it.
 */
export interface StandbyPlace {
  readonly kind: EnvironmentKind;
  /** It is the environment's current deployment (a rollback to it means nothing). */
  readonly current: boolean;
  /** Hostnames that point to it (its own deployment domain included). */
  readonly domains: readonly string[];
}

/** Hostnames a standby notice lists before "…and N more". */
const STANDBY_DOMAINS_SHOWN = 5;

/**
 * What is true of a deployment in standby, by where it stands (`StandbyPlace`): a production one serves
 * nothing until a rollback reactivates it; a preview one went idle but keeps its domains, and the next
 * request to one of them wakes it; a rollback means something only for one that is not current.
 * Unknown place (the snapshot could not be read): only what holds everywhere.
 */
function standbySpans(environment: string, place: StandbyPlace | undefined): Span[] {
  const rollback = ' A rollback to it still works but takes longer (it is reactivated first).';
  if (place === undefined) return [t(': it takes longer to serve again (reactivation).')];
  const shown = place.domains.slice(0, STANDBY_DOMAINS_SHOWN);
  const more = place.domains.length - shown.length;
  const domains: Span[] = [
    ...shown.flatMap((h, k) => (k === 0 ? [c(h)] : [t(', '), c(h)])),
    ...(more > 0 ? [t(`, …and ${more} more`)] : []),
  ];
  if (place.kind === 'preview') {
    if (place.domains.length === 0) {
      return [
        t(': it went idle (no requests) and is not running now.'),
        ...(place.current ? [] : [t(rollback)]),
      ];
    }
    return [
      t(': it went idle (no requests) and is not running now, but it still holds '),
      t(place.domains.length === 1 ? 'its domain ' : 'its domains '),
      ...domains,
      t(
        place.domains.length === 1
          ? ': the next request to it wakes it, and that request waits a little longer.'
          : ': the next request to one of them wakes it, and that request waits a little longer.',
      ),
      ...(place.current ? [] : [t(rollback)]),
    ];
  }
  if (place.current) {
    // Not a state the local platform puts production in (the deployment serving it never idles);
    // said as it is, without a rollback to it that would mean nothing.
    return [
      t(`: it is still ${environment}'s current deployment`),
      ...(place.domains.length === 0 ? [] : [t(' and holds '), ...domains]),
      t(', but is not running now.'),
    ];
  }
  return [t(': it serves nothing now.'), t(rollback)];
}

/**
 * The notice of a deployment going to standby or being stopped (not in the shared view model). `place`:
 * where a standby deployment stands now (undefined when it could not be read).
 */
export function lifecycleNoticeView(
  type: 'deployment.standby' | 'deployment.stopped',
  environment: string,
  deployment: Deployment,
  place?: StandbyPlace,
): MessageView {
  const standby = type === 'deployment.standby';
  const title = standby
    ? `${deployment.id} went to standby on ${environment}`
    : `${deployment.id} was stopped on ${environment}`;
  const spans: Span[] = standby
    ? [...deploymentSpans(deployment), t(' is '), b('in standby'), ...standbySpans(environment, place)]
    : [
        ...deploymentSpans(deployment),
        t(' was '),
        b('stopped'),
        t(': it can no longer take traffic, so nothing can roll back to it.'),
      ];
  return {
    kind: 'notice',
    tone: standby ? 'neutral' : 'warning',
    title,
    summary: `${title}.`,
    blocks: [{ type: 'text', spans }],
    buttons: [],
    ephemeral: false,
  };
}

/**
 * A Switchyard run whose job ended `failed` before a traffic move to its target (the audit's `started`
 * and `failed` entries): the move completes what its message reported failed.
 */
export interface LateRun {
  readonly jobId: string;
  readonly action: 'rollback' | 'promote';
  readonly targetId: string;
  /** When the run started (its first `started` entry: one is written per attempt). */
  readonly startedAt: number;
  /** When the job ended failed (its `failed` entry). */
  readonly failedAt: number;
  /** Who asked Switchyard for the switch (the entry's actor). */
  readonly by?: string;
}

/**
 * The notice of a traffic move that completes a switch Switchyard reported failed (`LateRun`): the job
 * gave up (a standby target reactivating for longer than the worker waits, an operation the platform
 * had not finished, a lost answer) and the platform finished the switch afterwards, or it was made again
 * by hand. The job's own message said it failed and where traffic was then, so this says where
 * traffic is now, and which job's failure it overrides. `messageUpdated`: the job's messages are being
 * edited to say so too (see `NoticesOptions.jobs`); else they still show only the failure.
 */
export function lateCompletionNoticeView(
  move: Extract<NoticeEvent, { type: 'traffic.moved' }>,
  run: LateRun,
  opts: { readonly messageUpdated?: boolean } = {},
): MessageView {
  const env = move.environment;
  const title = `Traffic on ${env} moved to ${move.to.id}`;
  const asked = run.by === undefined ? 'asked Switchyard for' : `${run.by} asked Switchyard for`;
  // Who made the move, when the platform records someone other than the person who asked the job.
  const other = move.by !== undefined && move.by !== run.by ? move.by : undefined;
  return {
    kind: 'notice',
    tone: 'warning',
    title,
    summary: `${title}: this completes the ${run.action} Switchyard reported failed.`,
    blocks: [
      servesBlock(move),
      {
        type: 'text',
        spans: [
          b(`This completes the ${run.action} Switchyard reported failed`),
          t(`: the ${run.action} to `),
          c(run.targetId),
          t(` that ${asked} (job `),
          c(run.jobId),
          t(
            `) ended failed at ${formatTime(run.failedAt)}, and the switch went through after the job had given up${other === undefined ? '' : ` (the platform records a ${move.via} by ${other})`}.`,
          ),
        ],
      },
      {
        type: 'context',
        spans: [
          t(
            opts.messageUpdated === true
              ? `The job's own message keeps its failure and where traffic was then, with an update saying this.`
              : `The job's own message still shows its failure and where traffic was then.`,
          ),
        ],
      },
    ],
    buttons: [],
    ephemeral: false,
  };
}

/** "production now serves dep_y (…), before: dep_x." — the first line of a traffic move's notice. */
function servesBlock(move: Extract<NoticeEvent, { type: 'traffic.moved' }>): ViewBlock {
  const env = move.environment;
  return {
    type: 'text',
    spans: [
      b(`${env} now serves `),
      ...deploymentSpans(move.to),
      ...(move.from === undefined ? [] : [t(', before: '), c(move.from.id)]),
      t('.'),
    ],
  };
}

/**
 * A Switchyard run whose job ended `succeeded` well before a traffic move to its target was seen (longer
 * than `jobMoveSeenWithinMs`): the move is that run's switch seen late, or the same switch made again
 * outside Switchyard after the run's was undone before a poll of the platform saw it.
 */
export interface SeenLateRun {
  readonly jobId: string;
  readonly action: 'rollback' | 'promote';
  readonly targetId: string;
  /** When the job ended succeeded (its `succeeded` entry's own time, as messages show times). */
  readonly succeededAt: number;
  /** How long after that the move was seen (on the clock the two were compared on). */
  readonly seenAfterMs: number;
  /** Who asked Switchyard for the switch (the entry's actor). */
  readonly by?: string;
}

/**
 * The notice of a traffic move seen long after a Switchyard run to the same target succeeded
 * (`SeenLateRun`). The run's own message reported that switch; whether this move is it, seen late (no
 * poll saw it sooner), or the same switch made again by hand after the run's was undone between two
 * polls, nothing tells: both are said, so neither a dashboard move goes unsaid nor Switchyard's own
 * switch is called one made outside it.
 */
export function seenLateNoticeView(
  move: Extract<NoticeEvent, { type: 'traffic.moved' }>,
  run: SeenLateRun,
): MessageView {
  const env = move.environment;
  const title = `Traffic on ${env} moved to ${move.to.id}`;
  const asked = run.by === undefined ? 'asked for' : `${run.by} asked for`;
  const after = longDuration(run.seenAfterMs);
  return {
    kind: 'notice',
    tone: 'warning',
    title,
    summary: `${title}, seen ${after} after Switchyard's ${run.action} to it succeeded: that ${run.action} seen late, or the same switch made again outside Switchyard.`,
    blocks: [
      servesBlock(move),
      {
        type: 'text',
        spans: [
          b(`Seen ${after} after Switchyard's ${run.action} to it succeeded`),
          t(`: the ${run.action} to `),
          c(run.targetId),
          t(` that ${asked} (job `),
          c(run.jobId),
          t(
            `) succeeded at ${formatTime(run.succeededAt)}. Either this is that ${run.action}, seen late (no poll of the platform saw it sooner), or that ${run.action} was undone before the next poll and the same switch was made again outside Switchyard (${move.by === undefined ? 'e.g. from the dashboard or API' : `the platform records a ${move.via} by ${move.by}`}).`,
          ),
        ],
      },
    ],
    buttons: [],
    ephemeral: false,
  };
}

/** A post kept in Redis until it is done (`attempt` is the number of the next, or current, one). */
interface PendingPost {
  readonly environment: string;
  readonly kind: NoticeKind;
  readonly key: string;
  readonly surface: ChatPoster['surface'];
  readonly channel: string;
  readonly view: MessageView;
  readonly attempt: number;
  /** Clock time of the first attempt. */
  readonly since: number;
  /**
   * A notice about a state (a reminder that the environment is still rolled back, a deployment held
   * back by the rollback) is only true while that state lasts: a retry finds it over (a promote came
   * in meanwhile) and drops the post instead of announcing something no longer so.
   */
  readonly holdsWhile?: HoldsWhile;
  /** A notice that stays open until its rolled-back period ends: kept for closing once posted. */
  readonly opens?: Opens;
  /**
   * Set on an edit: the message to edit (`view` is what it is to show). A closing edit of a posted
   * notice, or, with `jobUpdate`, the update of a failed switch job's message.
   */
  readonly edit?: MessageRef;
  /** An edit of a job's message saying the platform completed its failed switch afterwards. */
  readonly jobUpdate?: JobUpdate;
}

/** The job whose message an edit updates (see `Notices.jobUpdates`). */
interface JobUpdate {
  readonly jobId: string;
  /**
   * The `updatedAt` of the job's final progress the view was made from: a job whose progress reads
   * otherwise when the edit is made (tried again, made again) ran again since, and its messages are the
   * newer run's to show; the edit is dropped.
   */
  readonly endedAt: number;
  /** Make the edit once more this long after it was made (`jobUpdateAgainMs`); absent: once only. */
  readonly againMs?: number;
  /** Set on that edit made once more. */
  readonly again?: true;
}

/**
 * The state a notice describes: `environment` rolled back to `rolledBackTo`, in the rolled-back period
 * that began at `since` when the platform says when (its `rolledBackAt`): a promote and a new rollback
 * to the same deployment is another period, whose notices are its own.
 */
interface HoldsWhile {
  readonly rolledBackTo: string;
  readonly since?: number | undefined;
}

/**
 * One rolled-back period of an environment: rolled back to `to` since `since` (the platform's
 * `rolledBackAt`, else the rollback entry of its history, else the time kept when a replica first saw
 * it: see `Notices.rolledBackPeriod`).
 */
interface Period {
  readonly to: string;
  readonly since: number;
}

/** What a posted "ready but not live" notice or reminder needs kept to be closed later. */
interface Opens {
  readonly period: Period;
  /** "Ready but not live": the deployment offered. */
  readonly deployment?: Deployment;
  /** Reminder: who rolled back, as it said. */
  readonly by?: string;
  /** Reminder: since when it said the environment is rolled back, when not the period's key time. */
  readonly said?: number;
}

/** A posted message kept until its period ends (a member of `open:<env>:<to>:<since>`). */
interface OpenNotice {
  readonly id: string;
  readonly kind: NoticeKind;
  /** The notice's claim key. */
  readonly key: string;
  readonly ref: MessageRef;
  readonly opens: Opens;
}

/** A pending post as kept: its sorted-set member (what `ZREM` needs) and what it says. */
interface Kept {
  readonly member: string;
  readonly entry: PendingPost;
}

/**
 * Takes a due pending post for one attempt: moves its due time a lease ahead, only if it is still due
 * (another replica may have taken it since it was read), as `ARGV[4]` when given (the entry held by the
 * replica taking it, on its clock: see `holderNow`). KEYS[1] the set; ARGV member, now on the clock of
 * the replica holding it, lease end, member to keep it as ('': the same). Returns 1 when taken, 0 when
 * gone, -1 when not due (yet, or again: another replica took it).
 */
const TAKE = `
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due then return 0 end
if tonumber(due) > tonumber(ARGV[2]) then return -1 end
if ARGV[4] ~= '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1`;

/**
 * The time on the clock of the replica whose word (`beat`: "<its time> <ms kept>", kept that long) is
 * KEYS[1]: the time it gave plus what elapsed since on Redis's clock (the word's expiry runs on it);
 * ARGV[1] (the caller's time) when it gave none (stopped, gone, an older version).
 */
const HOLDER_NOW = `
local beat = redis.call('GET', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if not beat or left < 0 then return tonumber(ARGV[1]) end
local clock, kept = string.match(beat, '^(%d+) (%d+)$')
if not clock then return tonumber(ARGV[1]) end
return tonumber(clock) + math.max(0, tonumber(kept) - left)`;

/**
 * A pending post older than this is dropped (and reported as failed): a notice hours late misleads
 * more than it helps, and one that no running replica can post (its surface is no longer configured)
 * must not sit in Redis for good.
 */
export const PENDING_POST_MAX_AGE_MS = 60 * 60_000;

const periodSchema = z.object({ to: SLUG, since: AT });

/** How many of an environment's newest audit entries its own record is read from (Flow's default). */
const OWN_RECORD_AUDIT = 300;

/** A deployment kept with an open notice (read back for its closed view). */
const deploymentSchema = z.object({
  id: SLUG,
  projectId: z.string(),
  environment: z.string(),
  branch: z.string(),
  commit: z.object({ sha: z.string(), message: z.string(), author: z.string() }),
  createdAt: AT,
  readyAt: AT.optional(),
  status: z.enum(['building', 'ready', 'failed', 'standby', 'stopped']),
  statusReason: z.string().optional(),
});

const opensSchema = z.object({
  period: periodSchema,
  deployment: deploymentSchema.optional(),
  by: z.string().optional(),
  said: AT.optional(),
});

const openNoticeSchema = z.object({
  id: z.string().min(1),
  kind: z.enum(Object.values(NoticeKind) as [NoticeKind, ...NoticeKind[]]),
  key: z.string().min(1),
  ref: messageRefSchema,
  opens: opensSchema,
});

/** How a period ended, kept in its `ended:` marker for a message posted after it closed. */
const endFacts = { at: AT.optional(), by: z.string().optional(), uncertain: z.literal(true).optional() };
const endSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('promoted'), to: SLUG, ...endFacts }),
  z.object({ kind: z.literal('resumed'), deployed: SLUG.optional(), ...endFacts }),
  z.object({ kind: z.literal('rolled_back'), to: SLUG, ...endFacts }),
  z.object({ kind: z.literal('over'), live: SLUG.optional() }),
]);

/** Pending posts are read back from Redis (another replica, an earlier version): parsed at the edge. */
const pendingPostSchema = z.object({
  environment: SLUG,
  kind: z.enum(Object.values(NoticeKind) as [NoticeKind, ...NoticeKind[]]),
  key: z.string().min(1),
  surface: z.enum(['slack', 'discord', 'console']),
  channel: z.string().min(1),
  view: z.looseObject({ kind: z.string(), title: z.string(), blocks: z.array(z.unknown()) }),
  attempt: z.number().int().min(1),
  since: AT,
  /** The replica that kept it: its due time, lease and `since` are on that replica's clock. */
  holder: z.string().min(1).max(64).optional(),
  holdsWhile: z.object({ rolledBackTo: z.string().min(1), since: z.number().optional() }).optional(),
  opens: opensSchema.optional(),
  edit: messageRefSchema.optional(),
  jobUpdate: z
    .object({
      jobId: z.string().min(1),
      endedAt: AT,
      againMs: z.number().int().positive().optional(),
      again: z.literal(true).optional(),
    })
    .optional(),
});

/**
 * The first time an environment was seen rolled back to a deployment (`firstSeenRolledBack`): sets it to
 * now unless it holds a valid time, drops the other deployments' times (the environment is rolled back
 * to this one now: a later rollback to another starts afresh), refreshes the expiry. KEYS: the hash.
 * ARGV: deployment, now, ttl, latest valid time. Returns the time kept (a string).
 */
const FIRST_SEEN = `
local v = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
if not v or v <= 0 or v > tonumber(ARGV[4]) or v ~= math.floor(v) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if f ~= ARGV[1] then redis.call('HDEL', KEYS[1], f) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('HGET', KEYS[1], ARGV[1])`;

/**
 * Starts a new first-seen time when the period of the kept one has ended: sets the deployment's time to
 * now only if it still holds the time read and that period's end marker exists (two replicas agree on
 * one new time). KEYS: the hash, the end marker. ARGV: deployment, time read, now. Returns the time kept.
 */
const RESEEN = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
return redis.call('HGET', KEYS[1], ARGV[1])`;

/**
 * Keeps a posted message for closing, unless its period has ended already (then returns how, so the
 * caller closes it at once). KEYS: the period's open set, the environment's period index, the period's
 * end marker. ARGV: member, posted at, period member, since, ttl, cap. Returns the end (a string), or
 * whether the period is newly listed (1/0) and how many of the oldest messages the cap pushed out.
 */
const REMEMBER = `
local ended = redis.call('GET', KEYS[3])
if ended then return ended end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local listed = redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[6])
if over > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1) else over = 0 end
return {listed, over}`;

/**
 * Closes a period's messages: each kept message still there is removed and its edit added to the
 * pending posts, in one step, so each is edited by one replica only and none is lost if the process
 * dies right after. KEYS: the period's open set, the period index, the end marker, the pending posts.
 * ARGV: end, ttl, period member, then (kept member, edit member, due) per message. Returns the
 * (1-based) numbers of the messages this call took.
 */
const CLOSE = `
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2], 'NX')
local taken = {}
for i = 4, #ARGV, 3 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[4], ARGV[i + 2], ARGV[i + 1])
    table.insert(taken, (i - 1) / 3)
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[3]) end
return taken`;

/**
 * Whether closing a period failed for its data (what Redis holds cannot be read or shown: a parse or
 * view error, a key of another type), which trying again cannot change; anything else (Redis
 * unreachable, read-only during a failover, a timeout) may pass.
 */
function brokenData(e: unknown): boolean {
  if (
    e instanceof z.ZodError ||
    e instanceof RangeError ||
    e instanceof TypeError ||
    e instanceof SyntaxError
  )
    return true;
  return e instanceof Error && /^WRONGTYPE /.test(e.message);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

interface Prepared {
  readonly kind: NoticeKind;
  readonly key: string;
  readonly view: MessageView;
  /** What must still hold for a retry of it to be posted (see `PendingPost.holdsWhile`). */
  readonly holdsWhile?: HoldsWhile;
  /** Kept for closing once posted (see `PendingPost.opens`). */
  readonly opens?: Opens;
  /** The claim is already held (traffic moves are claimed before the job lookup). */
  readonly claimed?: boolean;
  /** Edits of a failed job's messages, made with the notice (see `Notices.jobUpdates`). */
  readonly jobEdits?: readonly PendingPost[];
}

/** Starts the notices service: subscribes to the platform and starts one reminder loop per environment. */
export async function startNotices(opts: NoticesOptions): Promise<NoticeService> {
  const service = new Notices(opts);
  await service.start();
  return service;
}

class Notices implements NoticeService {
  private readonly platform: DeployPlatform;
  private readonly redis: RedisClient;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly prefix: string;
  private readonly claimTtlMs: number;
  private readonly windowMs: number;
  private readonly seenWithinMs: number;
  private readonly graceMs: number;
  private readonly retryMs: number;
  private readonly recheckMs: number;
  private readonly postAttempts: number;
  private readonly postRetryMs: number;
  private readonly postRetryMaxMs: number;
  private readonly retryPollMs: number;
  private readonly postLeaseMs: number;
  private readonly maxOpen: number;
  private readonly stopTimeoutMs: number;
  private readonly jobUpdateAgainMs: number;
  /**
   * The last traffic move each environment's events reported to this process: when a period ends by a
   * move the platform's history does not record (Unkey, Vercel), it tells when, and how (a poller
   * reports a deployment newer than the one before taking over outside a rolled-back state as an
   * automatic deploy).
   */
  private readonly moves = new Map<
    string,
    { readonly from?: string; readonly to: string; readonly via: string; readonly at: number }
  >();
  /** The loop that tries failed posts again (`retryRound`); woken when this process adds one. */
  private retries: { wake: AbortController; done: Promise<void> } | undefined;
  /** The loop that gives this replica's clock time in Redis (`beat`). */
  private beats: { wake: AbortController; done: Promise<void> } | undefined;
  private readonly replica = randomBytes(4).toString('hex');
  private readonly stopping = new AbortController();
  private readonly loops = new Map<string, { wake: AbortController; done: Promise<void> }>();
  /** Per environment, the standing platform refusal its reminder checks fail with, once said. */
  private readonly refusedChecks = new Map<string, RefusalCode>();
  private unsubscribe: (() => void) | undefined;
  private chain: Promise<void> = Promise.resolve();
  private busy = 0;
  /**
   * Pending-post members whose attempt this process is making (or is about to make, in order): its own
   * retry rounds leave them alone even once their lease ended, so a post slower than the lease is not
   * made again by the process still making it (another replica, which cannot know, may take it).
   */
  private readonly attempting = new Set<string>();
  /** Platform events received and not yet handled (what a shutdown that does not wait drops). */
  private eventsPending = 0;
  /**
   * Set when `stop()` returned without waiting for the work under way: that work then fails as the
   * connections close, which is logged once by `stop()`, not once more per event or check.
   */
  private abandoned = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: NoticesOptions) {
    this.platform = opts.platform;
    this.redis = opts.redis;
    this.clock = opts.clock;
    this.log = opts.logger ?? silentLogger;
    this.prefix = opts.prefix ?? noticesDefaults.prefix;
    this.claimTtlMs = opts.claimTtlMs ?? noticesDefaults.claimTtlMs;
    this.windowMs = opts.switchyardWindowMs ?? noticesDefaults.switchyardWindowMs;
    this.seenWithinMs = Math.max(0, opts.jobMoveSeenWithinMs ?? noticesDefaults.jobMoveSeenWithinMs);
    this.graceMs = opts.reactivationGraceMs ?? noticesDefaults.reactivationGraceMs;
    this.retryMs = opts.retryMs ?? noticesDefaults.retryMs;
    this.recheckMs = opts.recheckMs ?? noticesDefaults.recheckMs;
    this.postAttempts = Math.max(1, opts.postAttempts ?? noticesDefaults.postAttempts);
    this.postRetryMs = opts.postRetryMs ?? noticesDefaults.postRetryMs;
    this.postRetryMaxMs = opts.postRetryMaxMs ?? noticesDefaults.postRetryMaxMs;
    this.retryPollMs = opts.retryPollMs ?? noticesDefaults.retryPollMs;
    this.postLeaseMs = Math.max(1, opts.postLeaseMs ?? noticesDefaults.postLeaseMs);
    this.maxOpen = Math.max(1, opts.maxOpenNotices ?? noticesDefaults.maxOpenNotices);
    this.stopTimeoutMs = Math.max(0, opts.stopTimeoutMs ?? noticesDefaults.stopTimeoutMs);
    this.jobUpdateAgainMs = Math.max(0, opts.jobUpdateAgainMs ?? noticesDefaults.jobUpdateAgainMs);
  }

  async start(): Promise<void> {
    // First, so this replica's word of its clock is in Redis before any post it keeps (one connection:
    // in order).
    const beats = { wake: new AbortController(), done: Promise.resolve() };
    this.beats = beats;
    beats.done = this.parkedLoop(
      beats,
      async () => {
        await this.beat();
        return this.beatMs();
      },
      (err) =>
        this.log.debug(
          { err },
          "notices: could not give this replica's clock time; other replicas judge its pending posts on their own clocks meanwhile",
        ),
    );
    if (this.platform.subscribe) {
      this.unsubscribe = this.platform.subscribe((event) => this.receive(event));
    } else {
      this.log.warn(
        { platform: this.platform.name },
        'the platform emits no deployment events: only rolled-back reminders run',
      );
    }
    for (const env of await this.platform.listEnvironments()) this.ensureLoop(env);
    const retries = { wake: new AbortController(), done: Promise.resolve() };
    this.retries = retries;
    retries.done = this.parkedLoop(
      retries,
      () => this.retryRound(),
      (err) => this.log.warn({ err }, 'notice retries: could not read the pending posts; trying again'),
    );
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.stopping.abort();
    const settled = Promise.allSettled([
      this.chain,
      ...[...this.loops.values()].map((l) => l.done),
      this.retries?.done,
      this.beats?.done,
    ]).then(() => true);
    // Other replicas then judge what this one left pending on their own clocks at once (a word of its
    // clock would tell them a time that no longer moves on). Not waited for: a shutdown does not wait
    // for Redis; sent once the beat loop gave its last word (parked, it ends at once), even while a post
    // still hangs (it is left to them).
    void this.beats?.done.then(() =>
      this.redis
        .del(this.clockKey(this.replica))
        .catch((err: unknown) =>
          this.log.debug({ err }, "notices: could not remove this replica's clock time"),
        ),
    );
    // The work under way (events being handled, a check, a post) runs its Redis commands on the patient
    // connection, which waits for Redis to come back: while Redis is unreachable, waiting for it would
    // hold the shutdown for as long as the outage lasts ("shutdown does not wait for Redis").
    // Parked loops (nothing under way) end at once, so they are still waited for.
    if (this.busy > 0 && !(await redisAnswers(this.redis))) {
      this.abandon('Redis is unreachable: stopping notices without waiting for the work under way');
      return;
    }
    if (await within(systemClock, this.stopTimeoutMs, settled, false)) return;
    this.abandon(
      `notices: stopping without waiting longer than ${this.stopTimeoutMs} ms for the work under way`,
    );
  }

  /**
   * Gives up on the work under way at shutdown: logs once what is dropped. An event whose notice was
   * not claimed and kept yet is lost (no event source delivers it again). A post already kept in Redis
   * is made by the next process once its lease ends; a reminder or a closing edit is found again by the
   * next check of any replica.
   */
  private abandon(message: string): void {
    this.abandoned = true;
    this.log.warn(
      { eventsDropped: this.eventsPending, inProgress: this.busy },
      `${message}: ${this.eventsPending} platform event(s) still being handled; a deployment notice not posted yet is lost, unless its post was kept in Redis (the next process makes it once its lease ends)`,
    );
  }

  idle(): Promise<void> {
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.checkIdle();
    });
  }

  // ── bookkeeping ───────────────────────────────────────────────────────────────────────────────

  private enter(): void {
    this.busy += 1;
  }

  private leave(): void {
    this.busy -= 1;
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.busy > 0 || this.idleWaiters.length === 0) return;
    // A loop woken by an aborted sleep re-enters within a few microtasks: confirm after they ran.
    setImmediate(() => {
      if (this.busy > 0) return;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    });
  }

  private outcome(o: NoticeOutcome): void {
    if (o.status === 'post_failed')
      this.opts.metrics?.noticesFailed.inc({ surface: o.surface, kind: o.kind });
    try {
      this.opts.onOutcome?.(o);
    } catch (e) {
      this.log.warn({ err: e }, 'notice outcome listener failed');
    }
  }

  private settings(environment: string): EnvironmentConfig {
    return (
      this.opts.config.file.environments[environment] ??
      // An environment without configuration gets the defaults (on; ready, failed, traffic_moved).
      environmentConfigSchema.parse({})
    );
  }

  private key(...parts: (string | number)[]): string {
    return `${this.prefix}:${parts.join(':')}`;
  }

  private async claim(key: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(key, this.replica, 'PX', Math.max(1, Math.round(ttlMs)), 'NX')) === 'OK';
  }

  // ── events ────────────────────────────────────────────────────────────────────────────────────

  private receive(raw: PlatformEvent): void {
    if (this.stopping.signal.aborted) return;
    const parsed = platformEventSchema.safeParse(raw);
    if (!parsed.success) {
      this.log.warn({ issues: issueLines(parsed.error) }, 'ignored a malformed platform event');
      return;
    }
    const event = parsed.data as PlatformEvent;
    // How old the event is as it reaches this process, on this process's clock (see `auditAround`).
    const age = Math.max(0, this.clock.now() - event.at);
    this.enter();
    this.eventsPending += 1;
    this.chain = this.chain
      // After a shutdown that stopped waiting (`abandon`, which counted it as dropped), nothing more starts.
      .then(() => (this.abandoned ? undefined : this.handle(event, age)))
      .catch((e: unknown) => {
        const context = { err: e, event: event.type, environment: event.environment };
        if (this.abandoned) this.log.debug(context, 'notice dropped at shutdown');
        else this.log.warn(context, 'notice failed');
      })
      .finally(() => {
        this.eventsPending -= 1;
        this.leave();
      });
  }

  private async handle(event: PlatformEvent, age: number): Promise<void> {
    const env = event.environment;
    this.ensureLoop(env);
    // A traffic move may start or end the rolled-back state: re-evaluate the reminders (and close the
    // notices of a rolled-back period that ended).
    if (event.type === 'traffic.moved') {
      this.moves.set(env, {
        ...(event.from === undefined ? {} : { from: event.from }),
        to: event.to,
        via: event.via,
        at: event.at,
      });
      this.loops.get(env)?.wake.abort();
    }
    const settings = this.settings(env).notices;
    const skip = (reason: string): undefined => {
      this.outcome({ status: 'skipped', environment: env, reason, event });
      return undefined;
    };
    if (!settings.enabled) {
      skip('notices are off for this environment');
      return;
    }
    const prepared = await this.prepare(event, settings.events, skip, age);
    if (prepared) await this.post(env, prepared);
  }

  private async prepare(
    event: PlatformEvent,
    selected: readonly string[],
    skip: (reason: string) => undefined,
    age: number,
  ): Promise<Prepared | undefined> {
    const env = event.environment;
    const now = this.clock.now();
    switch (event.type) {
      case 'deployment.building':
        return skip('building is not announced');
      case 'deployment.ready': {
        if (!selected.includes('ready')) return skip('ready is not selected');
        const snap = await this.platform.snapshot(env);
        const dep = snap.deployments.find((d) => d.id === event.deploymentId);
        if (!dep) return skip(`unknown deployment ${event.deploymentId}`);
        if (dep.readyAt !== undefined && event.at - dep.readyAt > this.graceMs) {
          return skip('a standby deployment reactivated, not a new deployment');
        }
        const key = this.key('claim', env, event.type, dep.id, event.at);
        const currentId = snap.environment.currentDeploymentId;
        if (snap.environment.rolledBack && currentId === dep.id) {
          // Reactivated as the rollback target: the traffic move (or the job's message) says it.
          return skip(`the deployment ${env} is rolled back to`);
        }
        const current = snap.deployments.find((d) => d.id === currentId);
        // Only a deployment that would have gone live without the rollback (same branch) is offered.
        const held = current === undefined || current.branch === dep.branch;
        if (snap.environment.rolledBack && currentId !== undefined && currentId !== dep.id && held) {
          // Older or newer by the platform's own order (newest first), not by clock time: a clock
          // stepped back, or two pushes in one millisecond, would misorder them.
          const rank = newestFirstRank(snap);
          if (current && rank(dep) >= rank(current)) {
            return skip(`older than the deployment ${env} is rolled back to`);
          }
          const rb = rolledBackInfo(snap);
          const { since, said, by } = await this.rolledBackPeriod(env, snap, currentId, rb);
          const notice: NoticeEvent = {
            type: 'ready.not_live',
            environment: env,
            deployment: dep,
            rolledBackTo: current ?? { id: currentId },
            ...(said === undefined ? {} : { rolledBackAt: said }),
            ...(by === undefined ? {} : { rolledBackBy: by }),
          };
          return {
            kind: NoticeKind.readyNotLive,
            key,
            view: noticeView(notice, { now }),
            holdsWhile: { rolledBackTo: currentId, ...(rb.at === undefined ? {} : { since: rb.at }) },
            opens: { period: { to: currentId, since }, deployment: dep },
          };
        }
        const notice: NoticeEvent = {
          type: 'deployment.ready',
          environment: env,
          deployment: dep,
          live: currentId === dep.id,
        };
        return { kind: NoticeKind.ready, key, view: noticeView(notice, { now }) };
      }
      case 'deployment.failed': {
        if (!selected.includes('failed')) return skip('failed is not selected');
        const dep = await this.platform.getDeployment(event.deploymentId);
        if (!dep) return skip(`unknown deployment ${event.deploymentId}`);
        return {
          kind: NoticeKind.failed,
          key: this.key('claim', env, event.type, dep.id, event.at),
          view: noticeView({ type: 'deployment.failed', environment: env, deployment: dep }, { now }),
        };
      }
      case 'deployment.standby':
      case 'deployment.stopped': {
        const name = event.type === 'deployment.standby' ? 'standby' : 'stopped';
        if (!selected.includes(name)) return skip(`${name} is not selected`);
        // What a standby deployment's notice may promise depends on where it stands (a current preview
        // deployment keeps its domains and wakes on a request; a rollback to it means nothing). Without
        // the snapshot, the notice says only what holds everywhere.
        const snap =
          event.type === 'deployment.standby'
            ? await this.platform.snapshot(env).catch(() => undefined)
            : undefined;
        // The snapshot lists the deployment: one platform read, not two. Read alone when the snapshot
        // could not be (or does not list it: a platform may list only its newest deployments).
        const dep =
          snap?.deployments.find((d) => d.id === event.deploymentId) ??
          (await this.platform.getDeployment(event.deploymentId));
        if (!dep) return skip(`unknown deployment ${event.deploymentId}`);
        const place: StandbyPlace | undefined =
          snap === undefined
            ? undefined
            : {
                kind: snap.environment.kind,
                current: snap.environment.currentDeploymentId === dep.id,
                domains: snap.domains.filter((d) => d.deploymentId === dep.id).map((d) => d.hostname),
              };
        return {
          kind: name === 'standby' ? NoticeKind.standby : NoticeKind.stopped,
          key: this.key('claim', env, event.type, dep.id, event.at),
          view: lifecycleNoticeView(event.type, env, dep, place),
        };
      }
      case 'traffic.moved': {
        if (event.via === 'deploy') return skip('an automatic deploy (the ready notice says it is live)');
        if (!selected.includes('traffic_moved')) return skip('traffic_moved is not selected');
        const key = this.key('claim', env, event.type, event.to, event.at);
        // Decide once: only the replica holding the claim looks for the job that made the move.
        if (!(await this.claim(key, this.claimTtlMs))) {
          this.outcome({ status: 'duplicate', environment: env, kind: NoticeKind.trafficMoved, key });
          return undefined;
        }
        // The claim is held: from here no failed lookup may drop the notice (a polled platform delivers
        // this event to one replica, once). Without the audit, the move is announced unattributed (a
        // job's own message also reports it); without the deployments, by their ids.
        const found = await this.switchyardJob(event, age).catch((e: unknown) => {
          this.log.warn(
            { err: e, environment: env },
            'traffic move: could not read the audit; announcing it',
          );
          return undefined;
        });
        if (found?.explained !== undefined)
          return skip(`moved by Switchyard job ${found.explained} (reported in its message)`);
        const late = found?.late;
        if (late !== undefined) {
          this.log.info(
            { environment: env, jobId: late.jobId, to: event.to, failedAt: late.failedAt },
            'traffic move completes a switch whose Switchyard job had ended failed: announcing it',
          );
        }
        const seenLate = found?.seenLate;
        if (seenLate !== undefined) {
          this.log.info(
            { environment: env, jobId: seenLate.jobId, to: event.to, seenAfterMs: seenLate.seenAfterMs },
            'traffic move seen long after a Switchyard switch to the same target succeeded: announcing it',
          );
        }
        const [to, from, snap] = await Promise.all([
          this.platform.getDeployment(event.to).catch(() => undefined),
          event.from === undefined
            ? Promise.resolve(undefined)
            : this.platform.getDeployment(event.from).catch(() => undefined),
          this.platform.snapshot(env).catch(() => undefined),
        ]);
        // Who did it, when the platform keeps it: the newest history entry, if it is this move.
        const last = snap?.liveHistory.at(-1);
        const by = last?.deploymentId === event.to && last.via === event.via ? last.by : undefined;
        const notice: NoticeEvent & { type: 'traffic.moved' } = {
          type: 'traffic.moved',
          environment: env,
          to: to ?? { id: event.to },
          ...(event.from === undefined ? {} : { from: from ?? { id: event.from } }),
          via: event.via,
          ...(by === undefined ? {} : { by }),
        };
        if (seenLate !== undefined)
          return {
            kind: NoticeKind.trafficMoved,
            key,
            view: seenLateNoticeView(notice, seenLate),
            claimed: true,
          };
        if (late === undefined)
          return { kind: NoticeKind.trafficMoved, key, view: noticeView(notice, { now }), claimed: true };
        // The job's own messages still say it failed, and where traffic was then: they get an update.
        const jobEdits = await this.jobUpdates(env, key, late, event.at);
        const view = lateCompletionNoticeView(notice, late, { messageUpdated: jobEdits.length > 0 });
        return {
          kind: NoticeKind.trafficMoved,
          key,
          view,
          claimed: true,
          ...(jobEdits.length > 0 ? { jobEdits } : {}),
        };
      }
      default:
        return assertNever(event, 'platform event');
    }
  }

  /**
   * Which Switchyard run the audit says made this move (see the header): `explained`, the job whose run
   * explains it (its own message reports it); else `late`, a run to the same target that had already
   * ended `failed` when the move came (its message says it failed: the move must be announced as
   * completing it); else `seenLate`, a run to the same target that ended `succeeded` longer than
   * `jobMoveSeenWithinMs` before the move was seen; else nothing (a move outside Switchyard).
   */
  private async switchyardJob(
    event: Extract<PlatformEvent, { type: 'traffic.moved' }>,
    age: number,
  ): Promise<
    { readonly explained?: string; readonly late?: LateRun; readonly seenLate?: SeenLateRun } | undefined
  > {
    const { entries, when, movedAt } = await this.auditAround(event, age);
    // The switch processor writes a `started` entry per *attempt* (a retry, a run resumed after its
    // worker stopped), and one plan always makes the same job id, so a switch asked for again (back and
    // forth) is the same job run again. A *run* is a job's `started` entries up to the job's next end
    // (`succeeded`, `failed`, `refused`), in the order the stream holds them (the order they were
    // written, whichever worker's clock stamped them): every attempt of it shares that end, which
    // decides for all of them. An earlier attempt is never a run of its own that "explains" a move
    // made after the job gave up. `started` entries with no end after them yet (a run under way)
    // cannot be told apart as retries or runs again: each is taken as a run of its own.
    // A run explains a move when one of its `started` entries is the newest at or before the move, else
    // (a minute of clock skew between the worker and the event's source) the first one just after it.
    // A run that ended `refused` (stale included) never had the platform switch: the worker ends a job
    // that way only before any attempt called the platform (a refusal after the platform was asked to
    // switch is a failure). Such a run explains no move, even one to its target soon after (a person
    // doing by hand what it did not).
    // A run that ended `failed` explains a move made before its `failed` entry (the move is in the
    // final message, e.g. a verification that timed out), never one after it: its message said it
    // failed and where traffic was then, so a later move to its target (the platform finishing a
    // switch the job gave up on, or the same switch made again by hand) is announced, saying that it
    // completes what Switchyard reported failed. The two times come from different clocks (the
    // worker's, the event source's): a move at the very time of the failure still counts as the run's.
    // A run that ended `succeeded` had seen its switch done by its end, so its move is seen by then, or
    // at the next poll of a polled platform (`jobMoveSeenWithinMs`). A move seen later is not taken for
    // it silently: a switch undone on the dashboard before the next poll is never seen, and then the
    // same switch made by hand any time within the window would be credited to the run and told to
    // nobody. It is announced, saying it may be the run's seen late (`seenLate`).
    // Times here are `when` (an entry's) and `movedAt` (the move's): on Redis's clock when the audit
    // says when it wrote each entry (see `auditAround`), so no worker's clock skew moves them.
    const ends: readonly AuditEntry['event'][] = ['succeeded', 'failed', 'refused'];
    const runs: {
      readonly jobId: string;
      readonly starts: readonly AuditEntry[];
      readonly end?: AuditEntry;
    }[] = [];
    const open = new Map<string, AuditEntry[]>();
    // `recent` is newest first: oldest first here, so each end closes the starts written before it.
    for (const e of [...entries].reverse()) {
      if (e.jobId === undefined) continue;
      if (e.event === 'started') open.set(e.jobId, [...(open.get(e.jobId) ?? []), e]);
      else if (ends.includes(e.event)) {
        const starts = open.get(e.jobId);
        // An end whose run began before the entries read (or a second end of one run) decides nothing.
        if (starts !== undefined) runs.push({ jobId: e.jobId, starts, end: e });
        open.delete(e.jobId);
      }
    }
    for (const [jobId, starts] of open) for (const start of starts) runs.push({ jobId, starts: [start] });
    // Best first: the newest start at or before the move, then older ones, then those just after it
    // (skew), nearest first.
    const rank = (at: number) => (at <= movedAt ? movedAt - at : this.windowMs + (at - movedAt));
    const explaining: {
      readonly jobId: string;
      readonly starts: readonly AuditEntry[];
      readonly rank: number;
    }[] = [];
    const late: { readonly run: LateRun; readonly starts: readonly AuditEntry[] }[] = [];
    const seenLate: { readonly run: SeenLateRun; readonly starts: readonly AuditEntry[] }[] = [];
    for (const { jobId, starts, end } of runs) {
      const matching = starts.filter(
        (e) =>
          e.action === event.via &&
          e.targetId === event.to &&
          when(e) >= movedAt - this.windowMs &&
          when(e) <= movedAt + 60_000,
      );
      const first = starts[0];
      const match = matching[0];
      if (match === undefined || first === undefined || end?.event === 'refused') continue;
      if (end?.event === 'failed' && when(end) < movedAt) {
        const by = end.actor?.displayName ?? first.actor?.displayName;
        late.push({
          run: {
            jobId,
            action: match.action,
            targetId: event.to,
            startedAt: first.at,
            failedAt: end.at,
            ...(by === undefined ? {} : { by }),
          },
          starts,
        });
        continue;
      }
      if (end?.event === 'succeeded' && movedAt - when(end) > this.seenWithinMs) {
        const by = end.actor?.displayName ?? first.actor?.displayName;
        seenLate.push({
          run: {
            jobId,
            action: match.action,
            targetId: event.to,
            succeededAt: end.at,
            seenAfterMs: movedAt - when(end),
            ...(by === undefined ? {} : { by }),
          },
          starts,
        });
        continue;
      }
      explaining.push({ jobId, starts, rank: Math.min(...matching.map((e) => rank(when(e)))) });
    }
    // A run whose claim is taken explained another move: try the next.
    for (const run of explaining.sort((a, b) => a.rank - b.rank)) {
      if (await this.claimRun(event.environment, run.jobId, run.starts)) return { explained: run.jobId };
    }
    // Completed after its job gave up: the run that failed last before the move. Claimed like a run
    // that explains a move, so one failed run is said to be completed by one move only (the same
    // switch made again later is an ordinary move outside Switchyard).
    for (const { run, starts } of late.sort((a, b) => b.run.failedAt - a.run.failedAt)) {
      if (await this.claimRun(event.environment, run.jobId, starts)) return { late: run };
    }
    // Claimed too, so one such run is named by one move only (the one seen first after it).
    for (const { run, starts } of seenLate.sort((a, b) => a.run.seenAfterMs - b.run.seenAfterMs)) {
      if (await this.claimRun(event.environment, run.jobId, starts)) return { seenLate: run };
    }
    return undefined;
  }

  /**
   * The environment's recent audit entries around a traffic move, and the times to compare: `when(e)`,
   * when an entry was written, and `movedAt`, when the move was seen. The worker stamps an entry's `at`
   * with its own clock and the event source (the local platform in the bot, the poller of a bot
   * replica) stamps the event's with its own: with a worker a minute and a half ahead, its `started`
   * entry would read as written after the move it made, and the job's own move be announced as one
   * outside Switchyard. So both are taken on Redis's clock when the audit tells (`recentWritten`): an
   * entry's stream id is stamped by the Redis that holds the stream, and the move is placed at the
   * read less `age`, how old the event was when it reached this process (this process's clock, read
   * as it arrived: the clock that stamped it, for the local platform and the pollers, which run in
   * this process and hand a move over as they see it; an event delivered again arrives old). The
   * events waiting before it are not counted (they are handled in order, at once): a start written
   * while it waited counts as before the move, as one a minute after the event's time did. Not the
   * event's age at the read: then the wait would be measured on this process's clock and placed on
   * Redis's, which need not keep pace with it (an injected clock). Else the entries' and the event's
   * own times.
   */
  private async auditAround(
    event: Extract<PlatformEvent, { type: 'traffic.moved' }>,
    age: number,
  ): Promise<{
    readonly entries: readonly AuditEntry[];
    readonly when: (e: AuditEntry) => number;
    readonly movedAt: number;
  }> {
    const audit = this.opts.audit;
    if (audit.recentWritten === undefined) {
      const entries = await audit.recent(event.environment, 100);
      return { entries, when: (e) => e.at, movedAt: event.at };
    }
    const read = await audit.recentWritten(event.environment, 100);
    const written = new Map(read.entries.map((w) => [w.entry, w.writtenAt]));
    return {
      entries: read.entries.map((w) => w.entry),
      when: (e) => written.get(e) ?? e.at,
      movedAt: read.readAt - age,
    };
  }

  /**
   * Claims a run for one move: the `explained:<env>:<job id>:<started>` key of each of its `started`
   * entries (one per attempt), all of them, so that a move explained by an attempt while the run was
   * under way (then taken as a run of its own) also uses up the whole run once it has ended. True only
   * when none was taken: a run of which any attempt explained a move explains no other.
   */
  private async claimRun(
    environment: string,
    jobId: string,
    starts: readonly AuditEntry[],
  ): Promise<boolean> {
    let all = true;
    for (const at of new Set(starts.map((s) => s.at))) {
      if (!(await this.claim(this.key('explained', environment, jobId, at), this.claimTtlMs))) all = false;
    }
    return all;
  }

  /**
   * The edits that update the messages of a switch job that ended failed (`late`) once the platform
   * completed its switch (moved at `movedAt`): its final view with an update line first, one edit per
   * message, on every surface it has messages on. Made by the replica that claimed the run (its
   * `explained:` key), so once across replicas, and kept in Redis like posts (leased, retried). None
   * without the switch queue, when the job or its messages cannot be read (its messages keep the
   * failure; the notice still says it was completed), or when the job's progress is not the end of
   * that run (it ran again since: its messages show the newer run).
   */
  private async jobUpdates(
    environment: string,
    key: string,
    late: LateRun,
    movedAt: number,
  ): Promise<PendingPost[]> {
    const jobs = this.opts.jobs;
    if (jobs === undefined) return [];
    const context = { environment, jobId: late.jobId };
    let progress: Progress | undefined;
    let refs: MessageRef[] | undefined;
    try {
      [progress, refs] = await Promise.all([jobs.progress(late.jobId), jobs.messages(late.jobId)]);
    } catch (e) {
      this.log.warn(
        { ...context, err: e },
        "traffic move completes a failed switch: could not read its job; the job's messages keep their failure",
      );
      return [];
    }
    if (progress === undefined || refs === undefined || refs.length === 0) {
      this.log.info(context, 'traffic move completes a failed switch: its job or its messages are gone');
      return [];
    }
    // The final progress is written before the `failed` entry, by the same worker clock: a later one
    // (or another outcome) is a run of the same job since, whose messages are not this run's to update.
    if (progress.outcome !== 'failed' || progress.updatedAt > late.failedAt) {
      this.log.info(
        { ...context, outcome: progress.outcome, updatedAt: progress.updatedAt, failedAt: late.failedAt },
        'traffic move completes a failed switch: its job ran again since; its messages are left to that run',
      );
      return [];
    }
    const view = progressView(progress, undefined, { at: movedAt });
    const since = this.clock.now();
    const jobUpdate: JobUpdate = {
      jobId: late.jobId,
      endedAt: progress.updatedAt,
      ...(this.jobUpdateAgainMs > 0 ? { againMs: this.jobUpdateAgainMs } : {}),
    };
    return refs.map((ref) => ({
      environment,
      kind: NoticeKind.trafficMoved,
      key,
      surface: ref.surface,
      channel: ref.channel,
      view,
      attempt: 1,
      since,
      edit: ref,
      jobUpdate,
    }));
  }

  /**
   * Claims and posts one notice to the environment's channel on every surface. The posts are kept in
   * Redis before the first attempt (`keep`), so a process that dies mid-post leaves them to another.
   */
  private async post(environment: string, p: Prepared, ttlMs = this.claimTtlMs): Promise<void> {
    const key = p.key;
    if (p.claimed !== true && !(await this.claim(key, ttlMs))) {
      this.outcome({ status: 'duplicate', environment, kind: p.kind, key });
      return;
    }
    const settings = this.settings(environment);
    const since = this.clock.now();
    const targets: { poster: ChatPoster; entry: PendingPost }[] = [];
    for (const poster of this.opts.posters) {
      const channel = noticeChannel(poster.surface, settings, this.opts.config.env);
      if (channel === undefined) continue;
      const entry = { environment, kind: p.kind, key, surface: poster.surface, channel, view: p.view };
      const holds = p.holdsWhile === undefined ? {} : { holdsWhile: p.holdsWhile };
      const opens = p.opens === undefined ? {} : { opens: p.opens };
      targets.push({ poster, entry: { ...entry, ...holds, ...opens, attempt: 1, since } });
    }
    // A failed job's messages updated with the notice: kept in the same call (one replica makes them,
    // or the next one after the lease if this one dies), made once the notice is out.
    const jobEdits = p.jobEdits ?? [];
    const keptAll = await this.keep([...targets.map((t) => t.entry), ...jobEdits]);
    const kept = keptAll?.slice(0, targets.length);
    const keptEdits =
      keptAll?.slice(targets.length) ?? jobEdits.map((entry) => ({ member: undefined, entry }));
    const refs: MessageRef[] = [];
    const retrying: ChatPoster['surface'][] = [];
    await this.attemptingAll(kept ?? [], async () => {
      for (const [i, { poster, entry }] of targets.entries()) {
        const sent = await this.postTo(environment, p, poster, entry.channel, 1);
        const settled = await this.settle(kept?.[i] ?? { member: undefined, entry }, sent, true);
        if (sent === 'retry' && settled) retrying.push(poster.surface);
        else if (sent !== 'retry' && sent !== undefined) {
          refs.push(sent);
          if (entry.opens !== undefined) await this.remember(entry, sent, p.kind !== NoticeKind.reminder);
        }
      }
    });
    this.outcome({
      status: 'posted',
      environment,
      kind: p.kind,
      key,
      refs,
      ...(retrying.length > 0 ? { retrying } : {}),
    });
    await this.attemptEdits(keptEdits);
  }

  /**
   * One attempt at posting a notice to one surface: the message ref, 'retry' when the fault may pass
   * and attempts are left, or undefined when this surface gave up (reported as `post_failed`).
   */
  private async postTo(
    environment: string,
    p: Prepared,
    poster: ChatPoster,
    channel: string,
    attempt: number,
  ): Promise<MessageRef | 'retry' | undefined> {
    try {
      // Every attempt, on any replica, names the same post: a surface that can (Discord) answers the
      // message an earlier attempt posted although its answer was lost, instead of posting it again.
      const ref = await poster.post(channel, p.view, { key: `${p.key}:${poster.surface}:${channel}` });
      this.opts.metrics?.notices.inc({ surface: poster.surface, kind: p.kind });
      return ref;
    } catch (e) {
      const again = attempt < this.postAttempts && (poster.retryable?.(e) ?? true);
      const error = e instanceof Error ? e.message : String(e);
      this.log.warn(
        { err: e, surface: poster.surface, channel, kind: p.kind, attempt },
        again ? 'posting a notice failed; will retry' : 'posting a notice failed; giving up',
      );
      if (again) return 'retry';
      this.outcome({
        status: 'post_failed',
        environment,
        kind: p.kind,
        key: p.key,
        surface: poster.surface,
        attempts: attempt,
        error,
      });
      return undefined;
    }
  }

  // ── retries ───────────────────────────────────────────────────────────────────────────────────
  //
  // Every post is kept in Redis (a sorted set by due time) until it is done: before its first attempt
  // it is written with a due time a lease ahead, and an attempt that failed with a fault that may pass
  // replaces it with the next attempt, due after its backoff. A due entry is taken for an attempt by
  // moving its due time a lease ahead (`TAKE`, atomic), by this process or, after a restart, by any
  // replica with a poster for that surface. So one surface's outage neither holds up the notices behind
  // it, nor loses the notice when the process stops or dies mid-post, nor posts it again on the surfaces
  // that took it; a process that dies after posting but before removing the entry posts it twice.

  private retryKey(): string {
    return this.key('retries');
  }

  /** An entry as kept, held by this replica: its due time and `since` are on this replica's clock. */
  private member(entry: PendingPost): string {
    return JSON.stringify({ ...entry, holder: this.replica, id: randomBytes(6).toString('hex') });
  }

  private clockKey(replica: string): string {
    return this.key('clock', replica);
  }

  /** How often this replica gives its clock's time (`beat`): several times per lease and per poll. */
  private beatMs(): number {
    return Math.max(1, Math.min(this.retryPollMs, Math.floor(this.postLeaseMs / 4)));
  }

  /**
   * Gives this replica's clock time in Redis, kept a few beats (a replica gone stops giving it), so
   * another replica can tell when an entry this one holds is due on this clock (`holderNow`): the time
   * and how long it is kept, so the time left tells on Redis's clock how long ago it was given.
   */
  private async beat(): Promise<void> {
    const keptMs = 4 * this.beatMs();
    await this.redis.set(
      this.clockKey(this.replica),
      `${Math.round(this.clock.now())} ${keptMs}`,
      'PX',
      keptMs,
    );
  }

  /**
   * The time now on the clock of the replica that holds a pending entry: every time kept with it (due,
   * lease end, `since`) is on that clock, and another replica's clock may be minutes off (one ahead
   * would take a post still being made, or drop a retry as an hour old). This replica's own clock for
   * its own entries; else the holder's last word of its time plus what elapsed on Redis's clock since;
   * this replica's clock when the holder gives none (stopped, gone, an entry of an older version).
   */
  private async holderNow(holder: string | undefined): Promise<number> {
    const now = this.clock.now();
    if (holder === undefined || holder === this.replica) return now;
    const res = Number(await this.redis.eval(HOLDER_NOW, 1, this.clockKey(holder), Math.round(now)));
    return Number.isFinite(res) ? res : now;
  }

  /** The wait before attempt `attempt` (2 is the first retry): `postRetryMs` doubling, capped. */
  private backoff(attempt: number): number {
    return Math.max(1, Math.min(this.postRetryMaxMs, this.postRetryMs * 2 ** (attempt - 2)));
  }

  /**
   * Keeps first attempts about to be made, due again a lease from now (in case this process dies
   * mid-post); one for a surface this replica has no poster for (a job's message edited) is due at once,
   * for a replica that has. Undefined when Redis refused them (the posts still go, without that safety).
   */
  private async keep(entries: readonly PendingPost[]): Promise<Kept[] | undefined> {
    if (entries.length === 0) return [];
    const kept = entries.map((entry) => ({ member: this.member(entry), entry }));
    const now = this.clock.now();
    const due = (e: PendingPost) => (this.hasPoster(e.surface) ? now + this.postLeaseMs : now);
    try {
      await this.redis.zadd(this.retryKey(), ...kept.flatMap((k) => [due(k.entry), k.member]));
      return kept;
    } catch (e) {
      this.log.warn({ err: e }, 'could not keep a notice before posting it; posting it anyway');
      return undefined;
    }
  }

  /**
   * Settles an attempt at a kept post: removes the entry when the post is done (sent, or given up), or
   * replaces it with the next attempt after its backoff ('retry'; `wake` the retry loop). Returns false
   * when a retry could not be kept, in which case the notice is lost for that surface.
   */
  private async settle(
    kept: { member: string | undefined; entry: PendingPost },
    sent: MessageRef | 'retry' | undefined,
    wake: boolean,
  ): Promise<boolean> {
    const key = this.retryKey();
    const { member, entry } = kept;
    const againMs = entry.jobUpdate?.againMs;
    if (sent !== 'retry' && sent !== undefined && againMs !== undefined && entry.jobUpdate !== undefined) {
      // A job's message updated: the same edit once more later, in case the worker's own final edit,
      // held up on its way to the chat API, lands after this one (see `jobUpdateAgainMs`).
      const { againMs: _, ...rest } = entry.jobUpdate;
      const now = this.clock.now();
      const again: PendingPost = { ...entry, attempt: 1, since: now, jobUpdate: { ...rest, again: true } };
      try {
        await this.replace(member, again, now + againMs, wake);
      } catch (e) {
        // Left as it was: the entry this edit holds (if kept) makes it again once its lease ends.
        this.log.warn(
          { err: e, surface: entry.surface, jobId: entry.jobUpdate.jobId },
          "could not schedule the job message's update to be made again",
        );
      }
      return true;
    }
    if (sent !== 'retry') {
      if (member === undefined) return true;
      try {
        await this.redis.zrem(key, member);
      } catch (e) {
        this.log.warn(
          { err: e, surface: entry.surface, kind: entry.kind },
          sent === undefined
            ? 'could not drop a notice given up; it will be tried again once its lease ends'
            : entry.edit === undefined
              ? 'could not mark a notice as posted; it will be posted again once its lease ends'
              : 'could not mark a closing edit as made; it will be made again once its lease ends',
        );
      }
      return true;
    }
    const next = { ...entry, attempt: entry.attempt + 1 };
    try {
      await this.replace(member, next, this.clock.now() + this.backoff(next.attempt), wake);
      return true;
    } catch (e) {
      if (member !== undefined) {
        // The entry this attempt holds is still there: it is due again when its lease ends.
        this.log.warn(
          { err: e, surface: entry.surface, kind: entry.kind },
          'could not schedule a notice retry; it will be tried again once its lease ends',
        );
        return true;
      }
      this.log.warn(
        { err: e, surface: entry.surface, kind: entry.kind },
        entry.edit === undefined
          ? 'could not keep a failed notice for a retry; it is lost for this surface'
          : 'could not keep a failed closing edit for a retry; the message keeps its old text',
      );
      this.gaveUp(
        entry,
        entry.attempt,
        `not kept for a retry: ${e instanceof Error ? e.message : String(e)}`,
      );
      return false;
    }
  }

  /**
   * Replaces the kept entry `member` (if kept) with `next`, due at `dueAt`, in one transaction (`wake`
   * the retry loop); throws when Redis did not take it (the old entry then stays as it was).
   */
  private async replace(
    member: string | undefined,
    next: PendingPost,
    dueAt: number,
    wake: boolean,
  ): Promise<void> {
    const key = this.retryKey();
    const tx = this.redis.multi();
    if (member !== undefined) tx.zrem(key, member);
    tx.zadd(key, dueAt, this.member(next));
    const res = await tx.exec();
    const failed = res?.find(([err]) => err !== null)?.[0];
    if (res === null || failed) throw failed ?? new Error('the transaction was discarded');
    if (wake) this.retries?.wake.abort();
  }

  /** Whether the state a notice describes still holds (a failed read: assume it does, and post). */
  private async stillHolds(environment: string, holds: HoldsWhile): Promise<boolean> {
    const snap = await this.platform.snapshot(environment).catch(() => undefined);
    if (snap === undefined) return true;
    const env = snap.environment;
    if (!env.rolledBack || env.currentDeploymentId !== holds.rolledBackTo) return false;
    const at = rolledBackInfo(snap).at;
    return holds.since === undefined || at === undefined || at === holds.since;
  }

  /**
   * Whether a job's progress is still the end its messages' update was made from (a failed read, or a
   * replica without the queue: assume it is, and edit).
   */
  private async sameRun(update: JobUpdate): Promise<boolean> {
    const jobs = this.opts.jobs;
    if (jobs === undefined) return true;
    const progress = await jobs.progress(update.jobId).catch(() => null);
    if (progress === null) return true;
    return progress !== undefined && progress.updatedAt === update.endedAt;
  }

  /**
   * Takes a due entry for one attempt: its due time moves a lease ahead, on this replica's clock (an
   * entry another replica held becomes this one's, `since` moved onto this clock: `as`). 'taken',
   * 'gone', or 'not_due' on the clock of the replica holding it (`now`).
   */
  private async take(
    member: string,
    now: number,
    as: string | undefined,
  ): Promise<'taken' | 'gone' | 'not_due'> {
    const leaseEnd = this.clock.now() + this.postLeaseMs;
    const res = await this.redis.eval(TAKE, 1, this.retryKey(), member, now, leaseEnd, as ?? '');
    return res === 1 ? 'taken' : res === -1 ? 'not_due' : 'gone';
  }

  /**
   * Posts every due retry this process can post; returns how long to wait for the next round ('now':
   * one of its own became due during this round).
   */
  private async retryRound(): Promise<number | 'now'> {
    const key = this.retryKey();
    let notOurs = 0;
    // Pages of due entries. Every entry this round acts on leaves the due range (taken under a lease,
    // posted, dropped); only those for surfaces this replica has no poster for stay, so the next page
    // starts after them: they cannot hide this replica's own entries behind them.
    for (let page = 0; page < 20 && !this.stopping.signal.aborted; page++) {
      const due = await this.redis.zrangebyscore(key, '-inf', this.clock.now(), 'LIMIT', notOurs, 50);
      await this.retryPage(key, due, () => {
        notOurs += 1;
      });
      if (due.length < 50) break;
    }
    const [, score] = await this.redis.zrange(key, 0, 0, 'WITHSCORES');
    const nextIn = score === undefined ? Number.POSITIVE_INFINITY : Number(score) - this.clock.now();
    if (nextIn > 0) return Math.min(nextIn, this.retryPollMs);
    // Due now: ours (it became due while this round ran) goes at once; one only another replica can
    // post (no poster for its surface here) is looked at again at the usual pace.
    return notOurs > 0 ? this.retryPollMs : 'now';
  }

  /** One page of due entries: each posted, retried, dropped, or left for another replica (`notOurs`). */
  private async retryPage(key: string, due: readonly string[], notOurs: () => void): Promise<void> {
    for (const found of due) {
      if (this.stopping.signal.aborted) break;
      const parsed = pendingPostSchema.safeParse(parseJson(found));
      if (!parsed.success) {
        this.log.warn({ issues: issueLines(parsed.error) }, 'dropped a malformed pending notice');
        await this.redis.zrem(key, found);
        continue;
      }
      // The view is one this service wrote (`keep`, `settle`); its outline is checked above.
      const { holdsWhile, opens, edit, jobUpdate, holder, ...data } = parsed.data;
      const kept: PendingPost = {
        ...data,
        view: data.view as unknown as MessageView,
        ...(holdsWhile === undefined ? {} : { holdsWhile }),
        ...(opens === undefined ? {} : { opens: parseOpens(opens) }),
        ...(edit === undefined ? {} : { edit: definedOnly(edit) }),
        ...(jobUpdate === undefined ? {} : { jobUpdate: definedOnly(jobUpdate) }),
      };
      // Its times are on the clock of the replica that holds it: compared with that clock's time.
      const now = await this.holderNow(holder);
      if (now - kept.since > PENDING_POST_MAX_AGE_MS) {
        if ((await this.redis.zrem(key, found)) === 1) {
          const edit = kept.edit !== undefined;
          this.log.warn(
            { surface: kept.surface, kind: kept.kind, environment: kept.environment },
            kept.jobUpdate !== undefined
              ? "dropped an update of a job's message nobody could make within an hour"
              : edit
                ? 'dropped a closing edit nobody could make within an hour'
                : 'dropped a notice nobody could post within an hour',
          );
          this.gaveUp(
            kept,
            kept.attempt - 1,
            `not ${edit ? 'edited' : 'posted'} within an hour (no replica with a poster for this surface took it)`,
          );
        }
        continue;
      }
      const poster = this.opts.posters.find((p) => p.surface === kept.surface);
      if (!poster || this.attempting.has(found)) {
        // another replica posts to that surface; or this process is still making this attempt (a post
        // slower than its lease): not again from here
        notOurs();
        continue;
      }
      // Another replica's entry becomes this one's when taken: kept anew on this replica's clock.
      const ours = holder === undefined || holder === this.replica;
      const pending: PendingPost = ours
        ? kept
        : { ...kept, since: Math.max(0, kept.since + (this.clock.now() - now)) };
      const as = ours ? undefined : this.member(pending);
      const taken = await this.take(found, now, as);
      if (taken === 'gone') continue; // another replica made it
      if (taken === 'not_due') {
        // Not due on the clock of the replica holding it (this one's is ahead), or another replica took
        // it meanwhile: looked at again at the usual pace.
        notOurs();
        continue;
      }
      const member = as ?? found;
      if (pending.jobUpdate !== undefined && !(await this.sameRun(pending.jobUpdate))) {
        await this.redis.zrem(key, member);
        this.outcome({
          status: 'skipped',
          environment: pending.environment,
          reason: `an update of job ${pending.jobUpdate.jobId}'s message: the job ran again since (its messages show that run)`,
        });
        continue;
      }
      if (pending.edit !== undefined) {
        const edited = await this.editTo(pending, poster);
        await this.settle({ member, entry: pending }, edited, false);
        if (edited !== 'retry' && edited !== undefined) this.editedOutcome(pending, true);
        continue;
      }
      if (
        pending.holdsWhile !== undefined &&
        !(await this.stillHolds(pending.environment, pending.holdsWhile))
      ) {
        await this.redis.zrem(key, member);
        this.outcome({
          status: 'skipped',
          environment: pending.environment,
          reason: `a retry of a ${pending.kind} notice: ${pending.environment} is no longer rolled back to ${pending.holdsWhile.rolledBackTo}${pending.holdsWhile.since === undefined ? '' : ' in the rolled-back period the notice is about'}`,
        });
        continue;
      }
      const p = { kind: pending.kind, key: pending.key, view: pending.view };
      const sent = await this.postTo(pending.environment, p, poster, pending.channel, pending.attempt);
      // Not woken: this round reads the next due time after it (another round would read nothing).
      await this.settle({ member, entry: pending }, sent, false);
      if (sent !== 'retry' && sent !== undefined) {
        this.outcome({
          status: 'posted',
          environment: pending.environment,
          kind: pending.kind,
          key: pending.key,
          refs: [sent],
          attempt: pending.attempt,
        });
        if (pending.opens !== undefined) await this.remember(pending, sent, true);
      }
    }
  }

  // ── reminders ─────────────────────────────────────────────────────────────────────────────────

  private ensureLoop(environment: string): void {
    if (this.loops.has(environment) || this.stopping.signal.aborted) return;
    const entry = { wake: new AbortController(), done: Promise.resolve() };
    this.loops.set(environment, entry);
    entry.done = this.parkedLoop(
      entry,
      async () => {
        // The next check is due at a clock time: a check that fell due while this one ran runs at once.
        const at = await this.environmentStep(environment);
        this.checkWorks(environment);
        if (at === undefined) return undefined;
        const wait = at - this.clock.now();
        return wait > 0 ? wait : 'now';
      },
      (err) => this.checkFailed(environment, err),
    );
  }

  /**
   * A failed reminder check. A standing platform refusal (a rejected root key, a missing permission)
   * is said once per kind, at WARN without a stack: its message says what to set, and the retries
   * every `retryMs` would repeat it for as long as nobody does (they log at debug). Other faults (the
   * platform or Redis not answering) pass and are logged as they come.
   */
  private checkFailed(environment: string, err: unknown): void {
    const code = standingRefusal(err);
    if (code === undefined) {
      this.log.warn({ err, environment }, 'reminder check failed; retrying');
      return;
    }
    const reason = err instanceof Error ? err.message : String(err);
    if (this.refusedChecks.get(environment) === code) {
      this.log.debug({ environment, code, reason }, `reminder check of ${environment} still refused`);
      return;
    }
    this.refusedChecks.set(environment, code);
    this.log.warn(
      { environment, code, reason },
      `${this.platform.name}: the reminder check of ${environment} is refused (${code}), so its rolled-back reminders wait until it works again (tried every ${Math.round(this.retryMs / 1000)}s; a line says when it does). What to do: ${reason}`,
    );
  }

  /** A reminder check that worked: says so once if it had been refused. */
  private checkWorks(environment: string): void {
    if (!this.refusedChecks.delete(environment)) return;
    this.log.info({ environment }, `${this.platform.name}: the reminder check of ${environment} works again`);
  }

  /**
   * Runs `step` until stopping, parked on the clock between steps (not busy, so `idle()` resolves).
   * A step returns how long to wait before the next, 'now' for another at once, or undefined to wait
   * until woken (or `recheckMs`, when set); a failed step is tried again after `retryMs`. Aborting
   * `entry.wake` ends a wait early.
   */
  private async parkedLoop(
    entry: { wake: AbortController },
    step: () => Promise<number | 'now' | undefined>,
    failed: (err: unknown) => void,
  ): Promise<void> {
    while (!this.stopping.signal.aborted) {
      entry.wake = new AbortController();
      this.enter();
      let waitMs: number | 'now' | undefined;
      try {
        waitMs = await step();
      } catch (e) {
        // A step cut off by a shutdown that stopped waiting (`abandon` logged it) is no failure to report.
        if (this.abandoned) this.log.debug({ err: e }, 'notice check dropped at shutdown');
        else failed(e);
        waitMs = this.retryMs;
      } finally {
        this.leave();
      }
      if (waitMs === 'now') continue;
      const signal = AbortSignal.any([entry.wake.signal, this.stopping.signal]);
      try {
        if (waitMs === undefined && this.recheckMs > 0) waitMs = this.recheckMs;
        if (waitMs === undefined) {
          // Nothing to wait for on the clock until something wakes the loop.
          await new Promise<void>((_, reject) => {
            if (signal.aborted) reject(signal.reason);
            else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
          });
        } else {
          await this.clock.sleep(Math.max(1, waitMs), signal);
        }
      } catch {
        // woken early (a traffic move, a retry scheduled here) or stopping: the loop condition decides
      }
    }
  }

  /**
   * One check of an environment: closes the notices of rolled-back periods that are over, then posts
   * the reminder that is due. Returns when the next check is due, or undefined when not rolled back (the
   * loop then waits `recheckMs`, or a traffic event). While rolled back it checks at least every
   * `recheckMs`: resuming automatic deploys moves no traffic, so no event says it.
   */
  private async environmentStep(environment: string): Promise<number | undefined> {
    const settings = this.settings(environment).notices;
    const reminders = settings.enabled && settings.reminderEvery > 0;
    const open = await this.openPeriods(environment);
    if (!reminders && open.length === 0) return undefined;
    const snap = await this.platform.snapshot(environment);
    const currentId = snap.environment.currentDeploymentId;
    if (currentId === undefined) {
      // A read without a current deployment (an Unkey page that missed it, a platform hiccup) says
      // nothing about the rollback: nothing is closed or forgotten until a read shows one.
      if (open.length > 0) {
        this.log.debug(
          { environment },
          'no current deployment in the snapshot: open notices left as they are',
        );
      }
      return undefined;
    }
    if (!snap.environment.rolledBack) {
      await this.closeEnded(environment, open, snap, undefined);
      // The rollback is over: a later one (even to the same deployment) starts its own count.
      await this.redis.del(this.key('rolled-back-seen', environment));
      return undefined;
    }
    const rb = rolledBackInfo(snap);
    const { since, said, by, began } = await this.rolledBackPeriod(environment, snap, currentId, rb);
    await this.closeEnded(environment, open, snap, { to: currentId, since });
    if (!reminders) return undefined;
    const every = settings.reminderEvery;
    const now = this.clock.now();
    const recheck = (at: number) => (this.recheckMs > 0 ? Math.min(at, now + this.recheckMs) : at);
    const slot = reminderSlot(since, every, now);
    if (slot.current < 1) return recheck(slot.nextAt);
    const hours = settings.workingHoursUtc;
    if (hours !== undefined && !inWorkingHours(now, hours)) {
      // Held: at the start of working hours the latest due slot is posted (once).
      return recheck(now + untilWorkingHours(now, hours));
    }
    const key = this.key('claim', environment, 'reminder', currentId, since, slot.current);
    const current = snap.deployments.find((d) => d.id === currentId);
    // Waiting: the newest deployment that became ready since the environment was rolled back (not the
    // one rolled back from): from the start of the rolled-back period, so a second rollback further
    // back does not hide a fix pushed after the first (`rolledBackSince`).
    // In standby too: a production deployment that gets no domains goes to standby after 30 minutes
    // (seed), long before the first reminder; a promote reactivates it.
    // By `/promote`'s own rule (pushedSinceRollback): never a deployment that was live (one
    // rolled back from within the period), and only one newer than the current deployment (the
    // platform's order, newest first), else a second rollback to a fix would offer an older one.
    const periodStart = Math.min(
      since,
      said ?? since,
      began ?? since,
      snap.environment.rolledBackSince ?? since,
    );
    const pushed = pushedSinceRollback(snap, currentId, periodStart);
    const waiting = snap.deployments.find(
      (d) => pushed(d) && (current === undefined || d.branch === current.branch),
    );
    const notice: NoticeEvent = {
      type: 'rolled_back.reminder',
      environment,
      current: current ?? { id: currentId },
      since: said ?? since,
      ...(by === undefined ? {} : { by }),
      ...(waiting === undefined ? {} : { waiting }),
    };
    await this.post(
      environment,
      {
        kind: NoticeKind.reminder,
        key,
        view: noticeView(notice, { now }),
        holdsWhile: { rolledBackTo: currentId, ...(rb.at === undefined ? {} : { since: rb.at }) },
        opens: {
          period: { to: currentId, since },
          ...(said === undefined || said === since ? {} : { said }),
          ...(by === undefined ? {} : { by }),
        },
      },
      Math.max(this.claimTtlMs, 2 * every),
    );
    return recheck(slot.nextAt);
  }

  /**
   * When a platform does not say since when an environment is rolled back (Unkey, Vercel), the first
   * time any replica saw it rolled back to this deployment stands in (kept in Redis, so restarts agree).
   * One hash per environment, field per deployment rolled back to: a read that finds it rolled back to
   * `currentId` drops the other deployments' fields, and the hash is cleared once the environment is
   * seen not rolled back, so a later rollback to the same deployment (A → B → A, or A, resumed, A)
   * counts from its own start. A first-seen time whose period was closed already (its `ended:` marker
   * exists: a replica saw that period end, a read that no check of this replica saw) is replaced by
   * now: the period that was closed is over, this is a new one. `own`: when Switchyard's own rollback
   * began the period (its audit), which a period first seen now is kept as instead of now.
   */
  private async firstSeenRolledBack(environment: string, currentId: string, own?: number): Promise<number> {
    const key = this.key('rolled-back-seen', environment);
    const now = this.clock.now();
    const began = own ?? now;
    const seen = await this.redis.eval(FIRST_SEEN, 1, key, currentId, began, this.claimTtlMs, MAX_TIME);
    const since = Number(seen);
    if (typeof seen !== 'string' || !isTime(since)) return began;
    const ended = this.endedKey(environment, { to: currentId, since });
    if ((await this.redis.exists(ended)) === 0) return since;
    // Switchyard's rollback after the period that ended began this one; an older one did not.
    const anew = own !== undefined && own > since ? own : now;
    const fresh = Number(await this.redis.eval(RESEEN, 2, key, ended, currentId, seen, anew));
    return isTime(fresh) && fresh > 0 ? fresh : anew;
  }

  /**
   * The rolled-back period of `snap`'s environment (rolled back to `currentId`): `since` keys it (its
   * notices' claims and closing, its reminder slots), `said` and `by` are what its notices say. The
   * platform's word (`rb`) when it has one. Else (Unkey, Vercel) Switchyard's own record of its audit,
   * as `/promote` and `/deployments` read it, when a rollback of Switchyard's began the period; else
   * the first time a replica saw it (a rollback on the dashboard). A period is keyed once, by the time
   * kept when it was first seen (`firstSeenRolledBack`): one first seen before its rollback's audit
   * entry was written, or by a version that did not read the audit, keeps its key (changing it would
   * post its reminders again and close its notices as if it had ended); its notices still say the
   * audit's time. `began`: when Switchyard's chain of rollbacks began the rolled-back period, for the
   * reminder's "waiting" deployment.
   */
  private async rolledBackPeriod(
    environment: string,
    snap: EnvironmentSnapshot,
    currentId: string,
    rb: { at?: number; by?: string },
  ): Promise<{ since: number; said?: number; by?: string; began?: number }> {
    const who = (by: string | undefined) => (by === undefined ? {} : { by });
    if (rb.at !== undefined) return { since: rb.at, said: rb.at, ...who(rb.by) };
    const own = keepsNoLiveHistory(snap) ? await this.ownRecord(environment, snap) : undefined;
    // As the local platform says it: the rollback to the current deployment (a second rollback further
    // back is its own period's key, as there), and when the chain of them began (`began`, for what
    // became ready since).
    const said = own?.rolledBackAt;
    const since = await this.firstSeenRolledBack(environment, currentId, said);
    return {
      since,
      ...(said === undefined ? {} : { said }),
      ...who(rb.by ?? (said === undefined ? undefined : own?.rolledBackBy)),
      ...(said === undefined || own?.rolledBackSince === undefined ? {} : { began: own.rolledBackSince }),
    };
  }

  /** Switchyard's own record of the environment; undefined when the audit cannot be read (logged). */
  private async ownRecord(environment: string, snap: EnvironmentSnapshot): Promise<OwnRecord | undefined> {
    try {
      return ownRecordFromAudit(snap, await this.opts.audit.recent(environment, OWN_RECORD_AUDIT));
    } catch (e) {
      this.log.warn(
        { err: e, environment },
        'rolled-back notices: could not read the audit; counting from the first time the rollback was seen',
      );
      return undefined;
    }
  }

  // ── closing ───────────────────────────────────────────────────────────────────────────────────
  //
  // Every posted "ready but not live" notice and reminder is kept (`remember`) in the sorted set of its
  // period, `open:<env>:<to>:<since>`, listed in `open-periods:<env>`; both expire `claimTtlMs` after
  // the last message kept or the last check that found the period still current, and a period keeps at
  // most `maxOpen` messages. A check that finds a listed period over (`closeEnded`) closes it: it works
  // out how the period ended (`endOf`), then CLOSE moves each kept message into the pending posts as an
  // edit to its closed view, atomically and only if the message is still kept, so each message is
  // edited once across replicas, and an edit is never lost between the two. The edit is then made like
  // a post: attempted at once, retried with backoff when the fault may pass, taken by another replica
  // after the lease if this process dies. The end is also written to `ended:<env>:<to>:<since>`: a
  // message posted after its period closed (a post in flight, a retry) is closed at once when kept.

  private openKey(environment: string, period: Period): string {
    return this.key('open', environment, period.to, period.since);
  }

  private periodsKey(environment: string): string {
    return this.key('open-periods', environment);
  }

  private endedKey(environment: string, period: Period): string {
    return this.key('ended', environment, period.to, period.since);
  }

  /** The periods of an environment with messages kept for closing. */
  private async openPeriods(environment: string): Promise<Period[]> {
    const members = await this.redis.zrange(this.periodsKey(environment), 0, -1);
    const periods: Period[] = [];
    for (const member of members) {
      const parsed = periodSchema.safeParse(parseJson(member));
      if (parsed.success) periods.push(parsed.data);
      else {
        this.log.warn({ environment }, 'dropped a malformed rolled-back period');
        await this.redis.zrem(this.periodsKey(environment), member);
      }
    }
    return periods;
  }

  /**
   * Keeps a posted message for closing; closes it at once if its period was closed meanwhile. `wake`:
   * a period newly listed is checked at once (it may have ended while the message was posted), unless
   * the caller is the environment's check itself.
   */
  private async remember(entry: PendingPost, ref: MessageRef, wake: boolean): Promise<void> {
    const opens = entry.opens;
    if (opens === undefined) return;
    const { environment, kind } = entry;
    const period = opens.period;
    const record: OpenNotice = { id: randomBytes(6).toString('hex'), kind, key: entry.key, ref, opens };
    let res: unknown;
    try {
      res = await this.redis.eval(
        REMEMBER,
        3,
        this.openKey(environment, period),
        this.periodsKey(environment),
        this.endedKey(environment, period),
        JSON.stringify(record),
        this.clock.now(),
        periodMember(period),
        period.since,
        this.claimTtlMs,
        this.maxOpen,
      );
    } catch (e) {
      this.log.warn(
        { err: e, environment, kind, surface: ref.surface },
        'could not keep a posted notice for closing; it stays as posted when the rollback ends',
      );
      return;
    }
    if (Array.isArray(res)) {
      const [listed, forgotten] = res as [number, number];
      if (forgotten > 0) {
        this.log.warn(
          { environment, forgotten, max: this.maxOpen },
          'too many notices in one rolled-back period: the oldest will not be closed when it ends',
        );
      }
      if (listed === 1 && wake) this.loops.get(environment)?.wake.abort();
      return;
    }
    if (typeof res !== 'string') return;
    // The period ended while this message was being posted: close it now.
    try {
      const end = parseEnd(res) ?? { kind: 'over' };
      const edit = this.closingEdit(environment, record, end);
      const kept = await this.keep([edit]);
      await this.attemptEdits([{ member: kept?.[0]?.member, entry: edit }]);
    } catch (e) {
      this.log.warn(
        { err: e, environment, kind, surface: ref.surface },
        'could not close a notice posted after its rolled-back period ended; it stays as posted',
      );
    }
  }

  /**
   * Closes the kept messages of every listed period that is not `current` (undefined: the environment
   * is not rolled back), and keeps the current one's for as long as it lasts. A period whose closing
   * fails (data read back that no view can show, a bug) is logged and dropped, its messages left as
   * posted: one bad period must not stop the other periods' closing, nor the reminders, for days.
   */
  private async closeEnded(
    environment: string,
    open: readonly Period[],
    snap: EnvironmentSnapshot,
    current: Period | undefined,
  ): Promise<void> {
    for (const period of open) {
      if (current !== undefined && period.to === current.to && period.since === current.since) {
        await this.redis
          .multi()
          .pexpire(this.openKey(environment, period), this.claimTtlMs)
          .pexpire(this.periodsKey(environment), this.claimTtlMs)
          .exec();
        continue;
      }
      try {
        await this.closePeriod(environment, period, snap, current);
      } catch (e) {
        if (!brokenData(e)) {
          // A fault that may pass (Redis failing over, a timeout): the period stays listed and the
          // next check closes it.
          this.log.warn(
            { err: e, environment, rolledBackTo: period.to, since: period.since },
            'could not close the notices of a rolled-back period that ended; trying again at the next check',
          );
          continue;
        }
        this.log.warn(
          { err: e, environment, rolledBackTo: period.to, since: period.since },
          'could not close the notices of a rolled-back period that ended; dropped it, its messages stay as posted',
        );
        await this.redis
          .multi()
          .zrem(this.periodsKey(environment), periodMember(period))
          .del(this.openKey(environment, period))
          .exec()
          .catch((err: unknown) =>
            this.log.warn({ err, environment }, 'could not drop a rolled-back period'),
          );
      }
    }
  }

  private async closePeriod(
    environment: string,
    period: Period,
    snap: EnvironmentSnapshot,
    current: Period | undefined,
  ): Promise<void> {
    const openKey = this.openKey(environment, period);
    const endedKey = this.endedKey(environment, period);
    const members = await this.redis.zrange(openKey, 0, -1);
    const records: { member: string; record: OpenNotice }[] = [];
    for (const member of members) {
      const record = parseOpenNotice(member);
      if (record === undefined) {
        this.log.warn({ environment }, 'dropped a malformed kept notice');
        await this.redis.zrem(openKey, member);
        continue;
      }
      records.push({ member, record });
    }
    // Closed before (a message kept since): say what was said then.
    const stored = await this.redis.get(endedKey);
    const offered = new Set(records.flatMap(({ record }) => record.opens.deployment?.id ?? []));
    const end =
      (stored === null ? undefined : parseEnd(stored)) ??
      (await this.endOf(environment, period, snap, current, offered));
    const now = this.clock.now();
    const edits: { member: string; entry: PendingPost; ours: boolean }[] = [];
    const args: (string | number)[] = [];
    for (const { member, record } of records) {
      const entry = this.closingEdit(environment, record, end);
      const ours = this.opts.posters.some((p) => p.surface === entry.surface);
      const edit = { member: this.member(entry), entry, ours };
      edits.push(edit);
      // An edit for a surface this replica has no poster for is due at once, for a replica that has.
      args.push(member, edit.member, ours ? now + this.postLeaseMs : now);
    }
    const taken: PendingPost[] = [];
    const mine: Kept[] = [];
    // In batches, so one call stays small however many messages a long rollback left.
    for (let i = 0; i === 0 || i < edits.length; i += CLOSE_BATCH) {
      const res = (await this.redis.eval(
        CLOSE,
        4,
        openKey,
        this.periodsKey(environment),
        endedKey,
        this.retryKey(),
        JSON.stringify(end),
        this.claimTtlMs,
        periodMember(period),
        ...args.slice(3 * i, 3 * (i + CLOSE_BATCH)),
      )) as number[];
      for (const n of res) {
        const edit = edits[i + n - 1];
        if (edit === undefined) continue;
        taken.push(edit.entry);
        if (edit.ours) mine.push({ member: edit.member, entry: edit.entry });
      }
    }
    if (taken.length > 0) {
      this.log.info(
        { environment, rolledBackTo: period.to, since: period.since, end: end.kind, messages: taken.length },
        'closing the notices of a rolled-back period that ended',
      );
    }
    await this.attemptEdits(mine);
  }

  /** The edit that closes a kept message (its first attempt). */
  private closingEdit(environment: string, record: OpenNotice, end: RolledBackEnd): PendingPost {
    const { period, deployment, by, said } = record.opens;
    const closed: ClosedNotice =
      record.kind === NoticeKind.reminder || deployment === undefined
        ? {
            type: 'rolled_back.reminder',
            environment,
            current: { id: period.to },
            since: said ?? period.since,
            ...(by === undefined ? {} : { by }),
            end,
          }
        : { type: 'ready.not_live', environment, deployment, rolledBackTo: { id: period.to }, end };
    return {
      environment,
      kind: record.kind,
      key: record.key,
      surface: record.ref.surface,
      channel: record.ref.channel,
      view: closedNoticeView(closed),
      attempt: 1,
      since: this.clock.now(),
      edit: record.ref,
    };
  }

  /** First attempts at kept edits (each entry is due again a lease later, should this process die). */
  private async attemptEdits(
    kept: readonly { member: string | undefined; entry: PendingPost }[],
  ): Promise<void> {
    await this.attemptingAll(kept, async () => {
      for (const k of kept) {
        const poster = this.opts.posters.find((p) => p.surface === k.entry.surface);
        if (!poster) continue;
        const edited = await this.editTo(k.entry, poster);
        await this.settle(k, edited, true);
        if (edited !== 'retry' && edited !== undefined) this.editedOutcome(k.entry, false);
      }
    });
  }

  private hasPoster(surface: ChatPoster['surface']): boolean {
    return this.opts.posters.some((p) => p.surface === surface);
  }

  /** Runs `attempts` with the kept members marked as this process's own attempts (`attempting`). */
  private async attemptingAll(
    kept: readonly { member: string | undefined }[],
    attempts: () => Promise<void>,
  ): Promise<void> {
    const members = kept.flatMap((k) => (k.member === undefined ? [] : [k.member]));
    for (const m of members) this.attempting.add(m);
    try {
      await attempts();
    } finally {
      for (const m of members) this.attempting.delete(m);
    }
  }

  /**
   * One attempt at an edit (a closing edit, a job's message updated): the ref, 'retry' when the fault
   * may pass, undefined when given up.
   */
  private async editTo(entry: PendingPost, poster: ChatPoster): Promise<MessageRef | 'retry' | undefined> {
    const ref = entry.edit;
    if (ref === undefined) return undefined;
    try {
      // A job's message update comes after the job's final state (which the surface would otherwise
      // keep, dropping a later view): it supersedes it.
      await poster.update(
        ref,
        entry.view,
        entry.jobUpdate === undefined ? {} : { supersedesProgress: { at: this.clock.now() } },
      );
      return ref;
    } catch (e) {
      const again = entry.attempt < this.postAttempts && (poster.retryable?.(e) ?? true);
      const what = entry.jobUpdate === undefined ? 'closing a notice' : "updating a job's message";
      this.log.warn(
        { err: e, surface: poster.surface, channel: ref.channel, kind: entry.kind, attempt: entry.attempt },
        again ? `${what} failed; will retry` : `${what} failed; giving up`,
      );
      if (again) return 'retry';
      this.gaveUp(entry, entry.attempt, e instanceof Error ? e.message : String(e));
      return undefined;
    }
  }

  /** Reports an edit made: a notice closed, or a job's message updated. */
  private editedOutcome(entry: PendingPost, retried: boolean): void {
    if (entry.edit === undefined) return;
    if (entry.jobUpdate !== undefined) {
      this.outcome({
        status: 'job_updated',
        environment: entry.environment,
        kind: entry.kind,
        key: entry.key,
        jobId: entry.jobUpdate.jobId,
        ref: entry.edit,
        // The same edit made once more later (`settle` schedules it).
        ...(entry.jobUpdate.again === true ? { again: true as const } : {}),
        ...(retried ? { attempt: entry.attempt } : {}),
      });
      return;
    }
    this.outcome({
      status: 'closed',
      environment: entry.environment,
      kind: entry.kind,
      key: entry.key,
      ref: entry.edit,
      ...(retried ? { attempt: entry.attempt } : {}),
    });
  }

  /** Reports a post or an edit given up on its surface. */
  private gaveUp(entry: PendingPost, attempts: number, error: string): void {
    if (entry.jobUpdate !== undefined) {
      this.outcome({
        status: 'job_update_failed',
        environment: entry.environment,
        kind: entry.kind,
        key: entry.key,
        jobId: entry.jobUpdate.jobId,
        surface: entry.surface,
        attempts,
        error,
      });
      return;
    }
    this.outcome({
      status: entry.edit === undefined ? 'post_failed' : 'close_failed',
      environment: entry.environment,
      kind: entry.kind,
      key: entry.key,
      surface: entry.surface,
      attempts,
      error,
    });
  }

  /**
   * How a rolled-back period ended: the platform's history (the entry after the period's rollback); on
   * a platform without history, the earliest of Switchyard's own switches (the audit) that succeeded
   * after the period began; else the state now, with the time of the traffic move this process saw and
   * who the audit says asked Switchyard for it. Nothing is filled in that no source says; without
   * history, a switch Switchyard started that did not succeed, or an audit that cannot be read, leaves
   * unknown what was live during the period (`uncertain`). A deployment live now that is not the one
   * rolled back to went live by a promote when something says so (the platform's record, the move this
   * process saw, or it was offered as ready but not live during the period: such a one goes live by no
   * automatic deploy); by an automatic deploy after a resume when something says that (`replacedByDeploy`);
   * else how is not known, and the end says only that the period is over and which one is live.
   * `offered`: the deployments the period's "ready but not live" notices offered.
   */
  private async endOf(
    environment: string,
    period: Period,
    snap: EnvironmentSnapshot,
    current: Period | undefined,
    offered: ReadonlySet<string>,
  ): Promise<RolledBackEnd> {
    const history = snap.liveHistory;
    if (history.length > 0) {
      const own = history.findLastIndex(
        (h) => h.via === 'rollback' && h.deploymentId === period.to && h.since === period.since,
      );
      const next = own >= 0 ? history[own + 1] : history.find((h) => h.since > period.since);
      if (next !== undefined) {
        const who = next.by === undefined ? {} : { by: next.by };
        const at = atIf(next.since);
        if (next.via === 'promote') return { kind: 'promoted', to: next.deploymentId, ...at, ...who };
        if (next.via === 'rollback') return { kind: 'rolled_back', to: next.deploymentId, ...at, ...who };
        // An automatic deploy took the domains: automatic deploys were resumed before it (the history
        // does not say when; a resume moves nothing).
        const entries = await this.auditEntries(environment);
        return {
          kind: 'resumed',
          ...audited(entries, 'promote', period.to, period.since),
          deployed: next.deploymentId,
        };
      }
    }
    const entries = await this.auditEntries(environment);
    // Without history, the state seen now is all the platform says: a deployment promoted and rolled
    // back from within one poll looks like one never live. Switchyard's own switches are in the audit.
    const told = history.length === 0 ? auditedEnd(entries, period) : undefined;
    const to = snap.environment.currentDeploymentId;
    // When the deployment live now went live by an automatic deploy: the one it took over from.
    const before = this.replacedByDeploy(environment, snap, period);
    // Taken over by an automatic deploy from the deployment rolled back to: automatic deploys were
    // resumed before it (the period's end). Never one the period offered: ready while rolled back, it
    // went live by no automatic deploy (a promote after the resume, between two polls).
    const deployed =
      to !== undefined && before === period.to && !offered.has(to) ? { deployed: to } : undefined;
    if (told !== undefined && told !== 'uncertain') {
      // Resumed through Switchyard, and a deploy went live since (before a check saw the resume).
      return told.kind === 'resumed' && deployed !== undefined ? { ...told, ...deployed } : told;
    }
    const unsure = told === 'uncertain' ? { uncertain: true as const } : {};
    const move = this.moves.get(environment);
    const moved = (to: string, via: string) =>
      move !== undefined && move.to === to && move.via === via && move.at >= period.since;
    const movedAt = (to: string, via: string) => (moved(to, via) && move !== undefined ? atIf(move.at) : {});
    if (current !== undefined) {
      // Rolled back again (to another deployment, or anew), and no history says it.
      const rb = rolledBackInfo(snap);
      return {
        kind: 'rolled_back',
        to: current.to,
        ...audited(entries, 'rollback', current.to, period.since),
        ...movedAt(current.to, 'rollback'),
        ...atIf(rb.at),
        ...(rb.by === undefined ? {} : { by: rb.by }),
        ...unsure,
      };
    }
    if (to === undefined) return { kind: 'over' };
    const byAudit = audited(entries, 'promote', to, period.since);
    if (to === period.to) return { kind: 'resumed', ...byAudit, ...unsure };
    if (deployed !== undefined) {
      return {
        kind: 'resumed',
        ...audited(entries, 'promote', period.to, period.since),
        ...deployed,
        ...unsure,
      };
    }
    if (before !== undefined && offered.has(before) && !offered.has(to)) {
      // Taken over from a deployment the period offered: that one went live, by a promote (nothing
      // else puts live a deployment that was ready while rolled back). One offered that is live now is
      // said to be promoted (below), whatever served before it.
      return {
        kind: 'promoted',
        to: before,
        ...audited(entries, 'promote', before, period.since),
        ...unsure,
      };
    }
    const derived = snap.derivedLive?.current;
    const promoted =
      offered.has(to) ||
      byAudit.at !== undefined ||
      moved(to, 'promote') ||
      (derived?.deploymentId === to && derived.via === 'promote');
    if (!promoted) return { kind: 'over', live: to };
    return { kind: 'promoted', to, ...byAudit, ...movedAt(to, 'promote'), ...unsure };
  }

  /**
   * When the deployment live now went live by an automatic deploy, the deployment live right before it:
   * as the platform's state tells (`derivedLive`: not rolled back, the newest deployment ever ready, with
   * what served before it), or as the move this process saw tells (a poll that saw another deployment
   * live and not rolled back, then this newer one taking over: what the poller reports as an automatic
   * deploy). Undefined when nothing says so, while rolled back, or when the deployment live now is the
   * one the period was rolled back to.
   */
  private replacedByDeploy(
    environment: string,
    snap: EnvironmentSnapshot,
    period: Period,
  ): string | undefined {
    const to = snap.environment.currentDeploymentId;
    if (snap.environment.rolledBack || to === undefined || to === period.to) return undefined;
    const derived = snap.derivedLive?.current;
    if (derived?.deploymentId === to && derived.via === 'deploy' && derived.previous !== undefined) {
      return derived.previous;
    }
    const move = this.moves.get(environment);
    if (move?.to === to && move.via === 'deploy' && move.at >= period.since) return move.from;
    return undefined;
  }

  /** The environment's recent audit entries; undefined when the audit cannot be read (logged). */
  private async auditEntries(environment: string): Promise<readonly AuditEntry[] | undefined> {
    try {
      return await this.opts.audit.recent(environment, 100);
    } catch (e) {
      this.log.warn({ err: e, environment }, 'closing notices: could not read the audit; closing without it');
      return undefined;
    }
  }
}

/**
 * Who asked Switchyard for a switch to `targetId` after `after`, and when it succeeded, as the audit
 * says: both from the earliest `succeeded` entry only (a job that started and failed did not make the
 * switch, whoever made it later); empty when the audit says nothing, or could not be read.
 */
function audited(
  entries: readonly AuditEntry[] | undefined,
  action: 'rollback' | 'promote',
  targetId: string,
  after: number,
): { at?: number; by?: string } {
  const succeeded = (entries ?? [])
    .filter((e) => e.event === 'succeeded' && e.action === action && e.targetId === targetId && e.at >= after)
    .sort((a, b) => a.at - b.at)[0];
  const by = succeeded?.actor?.displayName;
  return { ...atIf(succeeded?.at), ...(by === undefined ? {} : { by }) };
}

/**
 * How a period ended, as the audit tells on a platform without history: the earliest of Switchyard's
 * switches that succeeded after the period began (not the period's own rollback), or 'uncertain' when
 * the audit cannot be read or a switch started since then without succeeding (it may have moved
 * traffic before it failed, or be under way), or undefined when Switchyard switched nothing since.
 */
function auditedEnd(
  entries: readonly AuditEntry[] | undefined,
  period: Period,
): RolledBackEnd | 'uncertain' | undefined {
  if (entries === undefined) return 'uncertain';
  const since = entries
    .filter(
      (e) =>
        e.at >= period.since &&
        e.targetId !== undefined &&
        !(e.action === 'rollback' && e.targetId === period.to),
    )
    .sort((a, b) => a.at - b.at);
  const first = since.find((e) => e.event === 'succeeded');
  if (first === undefined || first.targetId === undefined) {
    return since.some((e) => e.event === 'started') ? 'uncertain' : undefined;
  }
  const by = first.actor?.displayName;
  const facts = { ...atIf(first.at), ...(by === undefined ? {} : { by }) };
  if (first.action === 'rollback') return { kind: 'rolled_back', to: first.targetId, ...facts };
  if (first.targetId === period.to) return { kind: 'resumed', ...facts };
  return { kind: 'promoted', to: first.targetId, ...facts };
}

/** A period as a member of `open-periods:<env>` (one spelling, whatever object it came from). */
function periodMember(period: Period): string {
  return JSON.stringify({ to: period.to, since: period.since });
}

/** Kept edits made per CLOSE call. */
const CLOSE_BATCH = 50;

function parseOpens(o: z.infer<typeof opensSchema>): Opens {
  return {
    period: o.period,
    ...(o.deployment === undefined ? {} : { deployment: definedOnly(o.deployment) }),
    ...(o.by === undefined ? {} : { by: o.by }),
    ...(o.said === undefined ? {} : { said: o.said }),
  };
}

/** A kept message read back (undefined: malformed, or a "ready but not live" without its deployment). */
function parseOpenNotice(member: string): OpenNotice | undefined {
  const parsed = openNoticeSchema.safeParse(parseJson(member));
  if (!parsed.success) return undefined;
  const { ref, opens, ...rest } = parsed.data;
  if (rest.kind === NoticeKind.readyNotLive && opens.deployment === undefined) return undefined;
  return { ...rest, ref: definedOnly(ref), opens: parseOpens(opens) };
}

function parseEnd(text: string): RolledBackEnd | undefined {
  const parsed = endSchema.safeParse(parseJson(text));
  return parsed.success ? definedOnly(parsed.data) : undefined;
}

/** Since when and by whom the environment is rolled back: the platform's fields, else its history. */
function rolledBackInfo(snap: EnvironmentSnapshot): { at?: number; by?: string } {
  const env = snap.environment;
  const entry = snap.liveHistory.findLast(
    (h) => h.via === 'rollback' && h.deploymentId === env.currentDeploymentId,
  );
  const at = isTime(env.rolledBackAt) ? env.rolledBackAt : entry?.since;
  const by = env.rolledBackBy ?? entry?.by;
  return { ...atIf(at), ...(by === undefined ? {} : { by }) };
}
