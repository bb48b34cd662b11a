/**
 * The switch queue: the one BullMQ queue every chat surface enqueues rollbacks and promotes on.
 * Owns the job data schema (`switchJobSchema`), the job id derived from the plan id (idempotent
 * enqueue: 50 concurrent enqueues of one plan make one job and 49 callers learn they joined it), the
 * Redis key layout shared with the worker (environment lock, waiters, operation refs, extra message
 * refs), the retry policy (exponential backoff with jitter) and read access to a job's progress.
 * BullMQ is imported only here, in src/queue-*.ts and in jobs/ (DESIGN.md).
 */
import { createHash } from 'node:crypto';
import { type Job, Queue, QueueEvents } from 'bullmq';
import { z } from 'zod';
import type { AuditLog } from './audit.js';
import { type Clock, systemClock, within } from './clock.js';
import {
  MAX_SWITCH_DOMAINS,
  MAX_SWITCH_HOSTNAME_LENGTH,
  type Plan,
  SWITCH_HOSTNAME,
  SWITCH_HOSTNAME_EXPECTED,
} from './domain/plan.js';
import type { Logger } from './log.js';
import { silentLogger } from './log.js';
import { PLAN_ID_PATTERN } from './plan-store.js';
import {
  type Actor,
  actorSchema,
  grantSchema,
  type MessageRef,
  messageRefSchema,
  type Progress,
  progressSchema,
} from './progress.js';
import { EnvironmentLock, switchKeys } from './queue-keys.js';
import {
  closeRedis,
  createRedis,
  createRequestRedis,
  deleteKeys,
  isCluster,
  type RedisClient,
  redisAnswers,
  redisOutageLog,
  scanKeys,
} from './redis.js';
import { keyNamespace } from './redis-url.js';
import { expectation, valueAt } from './zod-issues.js';

export {
  EnvironmentLock,
  type JobLock,
  lockOwner,
  ownerJobId,
  type SwitchKeys,
  switchKeys,
} from './queue-keys.js';

/**
 * The enqueue claim, in one round trip: SET NX of the enqueue marker, whether the job exists, and
 * whether an existing job has ended and must be replaced by this request. The replacement is decided
 * and made here, atomically: the ended job is deleted in this script (with its operation ref and extra
 * message refs), so the add the caller pipelines right behind the claim creates the new job. Exactly
 * one request replaces a given ended job: every claim after it finds the new job (queued or running),
 * or no job yet (its add then creates it or joins the one just created), and joins. Returns
 * {created, replaced}.
 * KEYS: marker, job hash, completed set, failed set, operation ref, message refs, then BullMQ's keys
 * of the job (logs, dependencies, processed, failed children, unsuccessful children), events stream,
 * queue meta.
 * ARGV: plan id, dedupe window ms, job id, requestedAt (ms), request id ('' when the data has none).
 * - Job queued or running: join it (double clicks, retried deliveries, a long wait beyond the window).
 * - Job ended, and both it and this enqueue name their request (`requestId`): the same request again
 *   (a late duplicate of the click that made it) joins, never running a switch twice; another request
 *   (the same switch asked for again, say after it failed) replaces it, inside the window or after.
 *   No clocks are compared: the request ids say it.
 * - Job ended, either without a request id (a job or a caller of an earlier version): marker won, the
 *   same plan again after the window, a new request: replace. Marker lost: replaced only when the job
 *   ended before this request was made (requestedAt, stamped by the requesting host, against BullMQ's
 *   finishedOn, stamped by the worker's: hosts' clocks that disagree decide wrongly, hence the ids).
 *   Otherwise join (a double click or retried delivery inside the window).
 * The deletion is BullMQ's own removal of a finished job without parent, children or deduplication id
 * (removeJobWithChildren in bullmq 6.7: ZREM from its set, DEL of the job's keys, a `removed` event),
 * which is what a switch job is; an ended job is never locked, so nothing else can hold it.
 */
const CLAIM_ENQUEUE = `
local won = 0
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then won = 1 end
if redis.call('EXISTS', KEYS[2]) == 0 then return {won, 0} end
local prev = 'completed'
local ended = redis.call('ZSCORE', KEYS[3], ARGV[3])
if not ended then
  prev = 'failed'
  ended = redis.call('ZSCORE', KEYS[4], ARGV[3])
end
if not ended then return {0, 0} end
local same = nil
if ARGV[5] ~= '' then
  local decoded, data = pcall(cjson.decode, redis.call('HGET', KEYS[2], 'data') or '')
  if decoded and type(data) == 'table' and type(data['requestId']) == 'string' then
    same = data['requestId'] == ARGV[5]
  end
end
if same == true then return {0, 0} end
if won == 0 then
  if same == nil then
    local finishedOn = tonumber(redis.call('HGET', KEYS[2], 'finishedOn'))
    if not finishedOn or tonumber(ARGV[4]) <= finishedOn then return {0, 0} end
  end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('DEL', KEYS[2], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11])
redis.call('DEL', KEYS[5], KEYS[6])
local maxEvents = redis.call('HGET', KEYS[13], 'opts.maxLenEvents') or 10000
redis.call('XADD', KEYS[12], 'MAXLEN', '~', maxEvents, '*', 'event', 'removed', 'jobId', ARGV[3], 'prev', prev)
return {1, 1}
`;

/** Queue name the bot and standalone workers use unless told otherwise. */
export const DEFAULT_SWITCH_QUEUE = 'switchyard-switch';

/** BullMQ key prefix the bot and standalone workers use unless told otherwise. */
export const DEFAULT_SWITCH_PREFIX = 'switchyard';

/** Job name of every switch job (the action is in the data). */
export const SWITCH_JOB_NAME = 'switch';

/** Name of the custom backoff strategy the worker registers (exponential with jitter). */
export const SWITCH_BACKOFF = 'switchyard';

/**
 * A hostname of the switch: the pattern and bounds buildPlan checks (src/domain/plan.ts), so a plan
 * someone could confirm is never data this schema refuses (wildcards such as `*.acme.com` included).
 */
const hostname = z
  .string()
  .min(1)
  .max(MAX_SWITCH_HOSTNAME_LENGTH)
  .regex(SWITCH_HOSTNAME, SWITCH_HOSTNAME_EXPECTED);

/** Data of a switch job. Parsed when enqueued and again when processed (it crosses processes). */
export const switchJobSchema = z.object({
  action: z.enum(['rollback', 'promote']),
  planId: z.string().regex(PLAN_ID_PATTERN, 'expected a plan id of letters, digits, _ or -'),
  projectId: z.string().min(1),
  environment: z.string().min(1).max(100),
  targetId: z.string().min(1),
  expectedCurrent: z.string().min(1),
  expectedRolledBack: z.boolean(),
  /**
   * Hostnames to verify; empty for a promote that only resumes automatic deploys. At most
   * `MAX_SWITCH_DOMAINS`, the bound buildPlan refuses beyond.
   */
  domains: z
    .array(hostname)
    .max(
      MAX_SWITCH_DOMAINS,
      `expected at most ${MAX_SWITCH_DOMAINS} domains (Switchyard verifies at most ${MAX_SWITCH_DOMAINS} per switch)`,
    ),
  requestedBy: actorSchema,
  approvedBy: actorSchema.optional(),
  /**
   * What let `requestedBy` and `approvedBy` act at their clicks: those of their Slack user groups (or
   * Discord roles) that were on the environment's allow list then (`Grant`; none for a person let in
   * by their user id). The worker judging a queued switch again by its own config
   * (src/permissions.ts `queuedSwitchRefusal`) counts only these as held, so a group or role taken off
   * the allow list since the click no longer lets the switch through. Absent in jobs queued by
   * versions before it: every listed group or role then counts as held.
   */
  grants: z.object({ requestedBy: grantSchema.optional(), approvedBy: grantSchema.optional() }).optional(),
  /** Chat messages to keep updated with progress. */
  messages: z.array(messageRefSchema).max(50),
  /**
   * Unix ms, by the requesting host's clock: compared with the worker host's `finishedOn` only for
   * an enqueue without `requestId` (see CLAIM_ENQUEUE).
   */
  requestedAt: z.number().int().nonnegative(),
  /**
   * Which request this job is for (src/flow.ts: the plan record's generation and the revision of the
   * click's claim, new with every confirm or approval that queues the switch). An enqueue of an ended
   * job's plan with the same id is a late duplicate of that request and joins it; with another id it
   * is a new request and replaces it (see CLAIM_ENQUEUE). Absent: decided by `requestedAt`.
   */
  requestId: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,200}$/, 'expected 1-200 letters, digits, _ . : or -')
    .optional(),
});
export type SwitchJobData = z.infer<typeof switchJobSchema>;
/** What callers pass in (defaults not yet applied). */
export type SwitchJobInput = z.input<typeof switchJobSchema>;

/** How many of a job's data problems a message names before it counts the rest. */
const NAMED_ISSUES = 3;

/**
 * What the queue's schema found wrong with a switch job's `data`, in words: per issue the field, what
 * it got (a short string, or a list's length) and what was expected (`domains: got 612 items, expected
 * at most 500 domains …`), the first few named and the rest counted. Said when a click's plan cannot be
 * queued (src/flow.ts) and when a worker refuses a queued job's data (jobs/switch-processor.ts).
 */
export function jobDataIssues(error: z.ZodError, data: unknown): string {
  const lines = error.issues.map((issue) => {
    const field = issue.path.map(String).join('.') || '(job)';
    const got = valueAt(data, issue.path);
    const shown =
      typeof got === 'string'
        ? `got ${JSON.stringify(got.length > 80 ? `${got.slice(0, 79)}…` : got)}, `
        : Array.isArray(got)
          ? `got ${got.length} item${got.length === 1 ? '' : 's'}, `
          : '';
    return `${field}: ${shown}${expectation(issue)}`;
  });
  const named = lines.slice(0, NAMED_ISSUES).join('; ');
  return lines.length > NAMED_ISSUES ? `${named}; and ${lines.length - NAMED_ISSUES} more` : named;
}

/**
 * What can still be read of job data that `switchJobSchema` refuses (written by another Switchyard
 * version during a rolling upgrade, or edited by hand): each field checked on its own against the
 * schema, one that fails left out; the message refs one by one, an unreadable one skipped. Enough for
 * the worker to tell the people following the job, and the audit log, that it cannot run and why.
 */
export interface ReadableJobData {
  readonly action?: SwitchJobData['action'];
  readonly planId?: string;
  readonly environment?: string;
  readonly targetId?: string;
  readonly expectedCurrent?: string;
  readonly requestedBy?: Actor;
  readonly approvedBy?: Actor;
  readonly requestedAt?: number;
  readonly messages: MessageRef[];
}

/** The fields of `raw` that `switchJobSchema` accepts one by one (see `ReadableJobData`). */
export function readableJobData(raw: unknown): ReadableJobData {
  const obj = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : {};
  const shape = switchJobSchema.shape;
  const pick = <T>(schema: z.ZodType<T>, value: unknown): T | undefined => {
    const r = schema.safeParse(value);
    return r.success ? r.data : undefined;
  };
  const refs = Array.isArray(obj.messages) ? obj.messages : [];
  const messages = refs
    .flatMap((m) => {
      const r = messageRefSchema.safeParse(m);
      return r.success ? [r.data] : [];
    })
    .slice(0, 50);
  return {
    messages,
    ...definedOnly({
      action: pick(shape.action, obj.action),
      planId: pick(shape.planId, obj.planId),
      environment: pick(shape.environment, obj.environment),
      targetId: pick(shape.targetId, obj.targetId),
      expectedCurrent: pick(shape.expectedCurrent, obj.expectedCurrent),
      requestedBy: pick(actorSchema, obj.requestedBy),
      approvedBy: pick(actorSchema, obj.approvedBy),
      requestedAt: pick(shape.requestedAt, obj.requestedAt),
    }),
  };
}

/**
 * `o` without its undefined properties (optional properties are left out, never set to undefined: zod's
 * optional output vs exactOptionalPropertyTypes).
 */
export function definedOnly<T extends object>(o: T): DefinedOnly<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as DefinedOnly<T>;
}

/** `T` with the properties that may be undefined made optional instead (what `definedOnly` returns). */
export type DefinedOnly<T> = { [K in keyof T as undefined extends T[K] ? never : K]: T[K] } & {
  [K in keyof T as undefined extends T[K] ? K : never]?: Exclude<T[K], undefined>;
};

/** A switch waiting or running in an environment (`SwitchQueue.activeForEnvironment`). */
export interface ActiveSwitch {
  readonly jobId: string;
  readonly planId: string;
  readonly environment: string;
  readonly action: SwitchJobData['action'];
  readonly targetId: string;
  /**
   * Who asked for it, as the job records them (surface, id, display name, Discord username): views
   * name them by mention, not by a display name anyone can choose.
   */
  readonly requestedBy: Actor;
  /** When a worker started it (Unix ms); absent while it waits for its turn. */
  readonly startedAt?: number;
}

function activeSwitchOf(job: Job): ActiveSwitch | undefined {
  const data = switchJobSchema.safeParse(job.data);
  if (!data.success || !job.id) return undefined;
  const d = data.data;
  return {
    jobId: job.id,
    planId: d.planId,
    environment: d.environment,
    action: d.action,
    targetId: d.targetId,
    requestedBy: d.requestedBy,
    ...(job.processedOn ? { startedAt: job.processedOn } : {}),
  };
}

/** Job data for a confirmed plan (what a confirm handler enqueues). */
export function switchJobFromPlan(
  plan: Plan,
  who: {
    requestedBy: Actor;
    approvedBy?: Actor;
    messages?: readonly MessageRef[];
    requestedAt: number;
  },
): SwitchJobData {
  return switchJobSchema.parse({
    action: plan.action,
    planId: plan.id,
    projectId: plan.projectId,
    environment: plan.environment,
    targetId: plan.target.id,
    expectedCurrent: plan.expectedCurrent,
    expectedRolledBack: plan.expectedRolledBack,
    domains: plan.affectedDomains.map((d) => d.hostname),
    requestedBy: who.requestedBy,
    ...(who.approvedBy === undefined ? {} : { approvedBy: who.approvedBy }),
    messages: [...(who.messages ?? [])],
    requestedAt: who.requestedAt,
  });
}

/**
 * A job's chat messages: those in its data plus those attached later (`addMessages`, stored as JSON
 * strings in a Redis set), deduplicated; unreadable entries are skipped.
 */
export function jobMessages(jobData: unknown, attached: readonly string[]): MessageRef[] {
  const data = switchJobSchema.safeParse(jobData);
  // Data the schema refuses still names its messages: they show how the job ended (its worker tells
  // them it could not run, see jobs/switch-processor.ts).
  return withAttached(data.success ? data.data.messages : readableJobData(jobData).messages, attached);
}

/** Identity of a chat message ref (surface, channel, message id). */
export function messageRefKey(r: MessageRef): string {
  return `${r.surface}|${r.channel}|${r.messageId}`;
}

/** `own` refs plus the `attached` ones (JSON strings), deduplicated; unreadable entries are skipped. */
export function withAttached(own: readonly MessageRef[], attached: readonly string[]): MessageRef[] {
  const out: MessageRef[] = [...own];
  const seen = new Set(out.map(messageRefKey));
  for (const raw of attached) {
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      continue;
    }
    const ref = messageRefSchema.safeParse(json);
    if (!ref.success) continue;
    const k = messageRefKey(ref.data);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(ref.data);
  }
  return out;
}

/** The job id for a plan: hex derived from the plan id, never containing `:` nor all digits. */
export function jobIdForPlan(planId: string): string {
  return `sw_${createHash('sha256').update(planId).digest('hex').slice(0, 32)}`;
}

/** Retry policy of switch jobs. */
export interface RetryPolicy {
  /** Total attempts including the first. */
  readonly attempts: number;
  /** First retry delay; doubles per attempt. */
  readonly baseDelayMs: number;
  /** Upper bound of one delay. */
  readonly maxDelayMs: number;
}

/** Default retry policy: 6 attempts, 1 s doubling to at most 30 s. */
export const defaultRetryPolicy = {
  attempts: 6,
  baseDelayMs: 1_000,
  maxDelayMs: 30_000,
} as const satisfies RetryPolicy;

/**
 * The longest platform Retry-After a switch job waits out before its next attempt (5 min), beyond
 * `maxDelayMs`. The platform HTTP client waits out a Retry-After of up to 60 s itself and leaves a
 * longer one to the job's backoff: an attempt made before the time the platform asked for is refused
 * again (429), burning the job's attempts inside the rate-limit window. Bounded all the same, so that
 * a bogus header (hours) cannot park a confirmed switch for good.
 */
export const MAX_SWITCH_RETRY_AFTER_MS = 5 * 60_000;

/**
 * Exponential backoff with "equal jitter": half the exponential delay fixed, half random, capped at
 * `maxDelayMs`. Honours a platform's Retry-After (`context.retryAfterMs` of the error) when longer,
 * up to `MAX_SWITCH_RETRY_AFTER_MS` (or `maxDelayMs`, if that is longer).
 */
export function switchBackoffDelay(
  attemptsMade: number,
  policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>,
  err?: unknown,
  random: () => number = Math.random,
): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attemptsMade - 1));
  const jittered = Math.round(exp / 2 + random() * (exp / 2));
  const retryAfter = retryAfterOf(err);
  const retryAfterCap = Math.max(policy.maxDelayMs, MAX_SWITCH_RETRY_AFTER_MS);
  return retryAfter === undefined ? jittered : Math.max(jittered, Math.min(retryAfter, retryAfterCap));
}

function retryAfterOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('context' in err)) return undefined;
  const ctx = (err as { context: unknown }).context;
  if (typeof ctx !== 'object' || ctx === null) return undefined;
  const v = (ctx as Record<string, unknown>).retryAfterMs;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** Options of `SwitchQueue`. */
export interface SwitchQueueOptions {
  readonly redisUrl: string;
  readonly queueName: string;
  /**
   * BullMQ key prefix (default `switchyard`). On a Redis Cluster it is hash-tagged unless it already
   * carries a tag (`switchyard` → `{switchyard}`, src/redis-url.ts `keyNamespace`): BullMQ's scripts
   * and Switchyard's own (the enqueue claim, the environment lock) touch several keys at once, which
   * must share one slot. `SwitchQueue.prefix` is the prefix in force.
   */
  readonly prefix?: string;
  /** Reuse a connection instead of opening one (it is not closed by `close()`). */
  readonly connection?: RedisClient;
  /**
   * Open a fail-fast connection (`createRequestRedis`): while Redis is unreachable an enqueue or a
   * progress read fails at once with `redis_unavailable` instead of waiting for Redis (bot processes;
   * the default is the patient kind).
   */
  readonly failFast?: boolean;
  readonly retry?: Partial<RetryPolicy>;
  /** How long finished jobs are kept for `progress()` and `waitForEnd()` (default 7 days). */
  readonly keepMs?: number;
  /**
   * Enqueues of one plan always join its job while it is queued or running. Once it finished, an
   * enqueue naming its request (`requestId`) joins it when that is the job's own request and replaces
   * it otherwise, at any time. Without request ids: within this window after the first enqueue
   * (default 30 s) they join it (late double clicks, retried deliveries) unless made after it ended;
   * later, the same plan id means the environment is back in the same state and this is a new
   * request: the finished job is replaced. Re-running is harmless either way: the processor re-reads
   * the platform and never switches twice.
   */
  readonly dedupeWindowMs?: number;
  /** Appends `requested` when a new job is created (handlers log approvals and refusals). */
  readonly audit?: AuditLog;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

const DAY = 86_400_000;

/** `SwitchQueue.waitingCounts`: switches no worker has started, and those parked for their environment. */
export interface WaitingCounts {
  /** Waiting for a worker (BullMQ `waiting` and `prioritized`). */
  readonly waiting: number;
  /** Delayed until a retry's backoff is over (BullMQ `delayed`, lock waiters left out). */
  readonly delayed: number;
  /** Taken by a worker and parked behind another switch of the same environment (BullMQ `delayed` too). */
  readonly lock: number;
}

/** How many delayed jobs `waitingCounts` reads to tell lock waiters from retries (a bound per scrape). */
const WAITING_COUNT_SCAN = 1000;

/** Result of an enqueue: the job id and whether an existing job for the same plan was joined. */
export interface EnqueueResult {
  readonly jobId: string;
  readonly joined: boolean;
}

/**
 * Producer side of the switch queue: enqueue (idempotent per plan), read progress, find the switch
 * running for an environment, attach more chat messages to a running job.
 */
export class SwitchQueue {
  readonly queueName: string;
  readonly prefix: string;
  readonly queue: Queue;
  private readonly redis: RedisClient;
  private readonly ownsRedis: boolean;
  private readonly keys: ReturnType<typeof switchKeys>;
  private readonly lock: EnvironmentLock;
  private readonly retry: RetryPolicy;
  private readonly keepMs: number;
  private readonly dedupeWindowMs: number;
  private readonly audit: AuditLog | undefined;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly redisUrl: string;
  private readonly listeners = new Set<(progress: Progress) => void>();
  private eventsReady: Promise<QueueEvents> | undefined;
  private eventsRedis: RedisClient | undefined;

  constructor(opts: SwitchQueueOptions) {
    this.queueName = opts.queueName;
    this.redisUrl = opts.redisUrl;
    this.ownsRedis = opts.connection === undefined;
    this.redis =
      opts.connection ?? (opts.failFast ? createRequestRedis(opts.redisUrl) : createRedis(opts.redisUrl));
    this.prefix = keyNamespace(opts.prefix ?? DEFAULT_SWITCH_PREFIX, isCluster(this.redis));
    this.keys = switchKeys(this.prefix, this.queueName);
    this.lock = new EnvironmentLock(this.redis, this.keys, 1);
    this.retry = { ...defaultRetryPolicy, ...opts.retry };
    this.keepMs = opts.keepMs ?? 7 * DAY;
    this.dedupeWindowMs = opts.dedupeWindowMs ?? 30_000;
    this.audit = opts.audit;
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger ?? silentLogger;
    this.queue = new Queue(this.queueName, {
      connection: this.redis,
      prefix: this.prefix,
      defaultJobOptions: {
        attempts: this.retry.attempts,
        backoff: { type: SWITCH_BACKOFF, delay: this.retry.baseDelayMs },
        removeOnComplete: { age: Math.ceil(this.keepMs / 1000), count: 5000 },
        removeOnFail: { age: Math.ceil(this.keepMs / 1000), count: 5000 },
      },
    });
    // Without a listener BullMQ prints every reconnection attempt while Redis is down; a failed call
    // reports its own error to its caller.
    this.queue.on('error', (err) => this.logger.debug({ err }, 'switch queue connection error'));
  }

  /** Resolves once the Redis connection is ready. */
  async waitUntilReady(): Promise<void> {
    await this.queue.waitUntilReady();
  }

  /**
   * Enqueues a switch. The job id is derived from the plan id, so every enqueue of the same plan
   * (double clicks, retried deliveries, several bot replicas) within the dedupe window lands on one
   * job; exactly one caller gets `joined: false`. Throws a zod error naming the field when `data` is
   * invalid.
   */
  async enqueue(input: SwitchJobInput): Promise<EnqueueResult> {
    const data = switchJobSchema.parse(input);
    const jobId = jobIdForPlan(data.planId);
    const marker = this.keys.enqueued(jobId);
    const add = () =>
      this.queue.add(SWITCH_JOB_NAME, data, {
        jobId,
        backoff: { type: SWITCH_BACKOFF, delay: this.retry.baseDelayMs },
      });
    // SET NX decides who created the job; everyone still calls add (idempotent by job id), so a
    // creator that died between the two steps cannot lose the job for the others. The claim (a plain
    // EVAL, never resent after NOSCRIPT) is written to the connection before the add, so both go out
    // in one round trip and Redis runs the claim first: when the claim finds no job, that add is the
    // one that creates it (or joins a concurrent creator's); when it finds a running one, the add is a
    // no-op. An ended job that this request replaces is deleted by the claim itself, so the add right
    // behind it makes the new job: one request decides, however many ask at once, and nothing is left
    // half done for another caller to trip on (a claim whose add then fails leaves no job; the next
    // enqueue makes it).
    const jobKey = this.queue.toKey(jobId);
    const claim = this.redis.eval(
      CLAIM_ENQUEUE,
      13,
      marker,
      jobKey,
      this.queue.toKey('completed'),
      this.queue.toKey('failed'),
      this.keys.operation(jobId),
      this.keys.messages(jobId),
      `${jobKey}:logs`,
      `${jobKey}:dependencies`,
      `${jobKey}:processed`,
      `${jobKey}:failed`,
      `${jobKey}:unsuccessful`,
      this.queue.toKey('events'),
      this.queue.toKey('meta'),
      data.planId,
      this.dedupeWindowMs,
      jobId,
      data.requestedAt,
      data.requestId ?? '',
    ) as Promise<[number, number]>;
    // The add's failure is a value (never an unobserved rejection, whatever the claim does).
    const added = add().then(
      () => undefined,
      (e: unknown) => e,
    );
    const [[won, replaced], addError] = await Promise.all([claim, added]);
    const created = won === 1;
    if (addError !== undefined) {
      if (created) await this.redis.del(marker).catch(() => undefined);
      throw addError;
    }
    if (created) {
      this.logger.info(
        {
          jobId,
          planId: data.planId,
          environment: data.environment,
          action: data.action,
          replaced: replaced === 1,
        },
        'switch enqueued',
      );
      await this.audit
        ?.append({
          at: this.clock.now(),
          environment: data.environment,
          action: data.action,
          event: 'requested',
          actor: data.requestedBy,
          planId: data.planId,
          jobId,
          targetId: data.targetId,
          fromId: data.expectedCurrent,
        })
        .catch((e: unknown) => this.logger.warn({ err: e, jobId }, 'audit append failed'));
    } else {
      this.logger.debug({ jobId, planId: data.planId }, 'switch enqueue joined an existing job');
    }
    return { jobId, joined: !created };
  }

  /** Attaches more chat messages to a job (a second surface following it); returns false when unknown. */
  async addMessages(jobId: string, refs: readonly MessageRef[]): Promise<boolean> {
    const job = await this.queue.getJob(jobId);
    if (!job) return false;
    const parsed = z.array(messageRefSchema).parse(refs);
    if (parsed.length === 0) return true;
    const key = this.keys.messages(jobId);
    await this.redis
      .multi()
      .sadd(key, ...parsed.map((r) => JSON.stringify(r)))
      .pexpire(key, this.keepMs)
      .exec();
    return true;
  }

  /**
   * Every chat message following a job: the refs in its data plus those attached later with
   * `addMessages`, without duplicates (what the worker's Reporter is given). Undefined when the job
   * is unknown; malformed stored refs are skipped.
   */
  async messages(jobId: string): Promise<MessageRef[] | undefined> {
    const [job, extra] = await Promise.all([
      this.queue.getJob(jobId),
      this.redis.smembers(this.keys.messages(jobId)),
    ]);
    if (!job) return undefined;
    return jobMessages(job.data, extra);
  }

  /** The job's current progress; a job not yet started reports `queued` running. */
  async progress(jobId: string): Promise<Progress | undefined> {
    const job = await this.queue.getJob(jobId);
    if (!job) return undefined;
    return progressOf(job, jobId);
  }

  /**
   * Whether the job has ended for good (BullMQ `completed` or `failed`), whatever its data and progress
   * say: a job whose data this version cannot read, failed before any state was published (by an older
   * worker, or by BullMQ itself), has no progress to tell its end by (`progressOf`). False when the job
   * is unknown, or still waiting, running or backing off before a retry.
   */
  async ended(jobId: string): Promise<boolean> {
    const state = await this.queue.getJobState(jobId);
    return state === 'completed' || state === 'failed';
  }

  /**
   * How many switch workers are connected to this queue now, in any process (this one's worker,
   * `npm run worker`): BullMQ names each worker's connection after the prefix and queue, and counts them
   * in Redis' client list (on a Redis Cluster, on the node where most are). Undefined when Redis cannot
   * tell: it refuses CLIENT LIST (some managed services, or an ACL without it).
   */
  async workersCount(): Promise<number | undefined> {
    try {
      const workers = await this.queue.getWorkers();
      // BullMQ's answer when the command is unknown (it names the first service found without it).
      if (workers.some((w) => w.name === 'GCP does not support client list')) return undefined;
      return workers.length;
    } catch (e) {
      if (e instanceof Error && /NOPERM|unknown command/i.test(e.message)) return undefined;
      throw e;
    }
  }

  /**
   * Switches enqueued that no worker has started: `waiting` for a worker (prioritized included),
   * `delayed` until a retry's backoff is over; and apart from them, `lock`: switches a worker took and
   * parked behind another switch of the same environment. BullMQ holds both kinds in its delayed set,
   * so the delayed jobs are told apart as a wake-up tells them apart (`EnvironmentLock.parkedAmong`):
   * an ordinary wait for the environment is never counted as a switch no worker has started. Two round
   * trips (the counts and the delayed ids, then two reads per delayed job); past
   * `WAITING_COUNT_SCAN` delayed jobs the rest are counted as `delayed` unread.
   */
  async waitingCounts(): Promise<WaitingCounts> {
    const [c, delayedIds] = await Promise.all([
      this.queue.getJobCounts('waiting', 'prioritized', 'delayed'),
      this.redis.zrange(this.keys.delayed, 0, WAITING_COUNT_SCAN - 1),
    ]);
    const lock = await this.lock.parkedAmong(delayedIds);
    return {
      waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
      // The count and the ids are two reads: a job that left the set in between is never negative.
      delayed: Math.max(0, (c.delayed ?? 0) - lock),
      lock,
    };
  }

  /** The waiting or running switch of an environment, if any (the one running first). */
  async activeForEnvironment(environment: string): Promise<ActiveSwitch | undefined> {
    const holder = await this.lock.holder(environment);
    if (holder) {
      const job = await this.queue.getJob(holder);
      const active = job ? activeSwitchOf(job) : undefined;
      if (active) return active;
    }
    const jobs = await this.queue.getJobs(['active', 'waiting', 'prioritized', 'delayed'], 0, 500, true);
    for (const job of jobs) {
      const active = activeSwitchOf(job);
      if (active?.environment === environment) return active;
    }
    return undefined;
  }

  private queueEvents(): Promise<QueueEvents> {
    this.eventsReady ??= (async () => {
      const eventsRedis = createRedis(this.redisUrl);
      this.eventsRedis = eventsRedis;
      // BullMQ reads events on a duplicate of this connection and reports its errors (below); this
      // one only keeps ioredis from printing every reconnection attempt while Redis is down.
      eventsRedis.on('error', () => undefined);
      // Events are read from the stream's newest entry as it is now, not from `$` at BullMQ's first
      // XREAD: that one is sent only once its own connection is set up (on a cluster after discovering
      // the slots, on a node connection of its own), so an event published after `onProgress`
      // resolved could come before it and be missed.
      const [newest] = await eventsRedis.xrevrange(this.queue.toKey('events'), '+', '-', 'COUNT', 1);
      const events = new QueueEvents(this.queueName, {
        connection: eventsRedis,
        prefix: this.prefix,
        lastEventId: newest?.[0] ?? '0-0',
      });
      // Every reconnection attempt of its connection reports an error while Redis is down: said once
      // when Redis goes away and once when it is back.
      const outage = redisOutageLog(this.logger, 'queue events');
      events.getBackend().on('ready', () => outage.ready());
      events.on('error', (err) => {
        if (!outage.error(err)) this.logger.warn({ err }, 'queue events error');
      });
      events.on('progress', ({ data }) => {
        const parsed = progressSchema.safeParse(data);
        if (!parsed.success) return;
        for (const listener of this.listeners) listener(parsed.data);
      });
      await events.waitUntilReady();
      return events;
    })();
    return this.eventsReady;
  }

  /**
   * Follows every job's progress as any worker publishes it (a surface in one process following a
   * switch running in another). Resolves once subscribed; call the returned function to stop.
   */
  async onProgress(listener: (progress: Progress) => void): Promise<() => void> {
    this.listeners.add(listener);
    await this.queueEvents();
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Waits until the job has ended (succeeded or failed for good) and returns its final progress;
   * undefined when the job does not exist. Rejects when `timeoutMs` passes first.
   */
  async waitForEnd(jobId: string, timeoutMs = 120_000): Promise<Progress | undefined> {
    const events = await this.queueEvents();
    const job = await this.queue.getJob(jobId);
    if (!job) return undefined;
    try {
      await job.waitUntilFinished(events, timeoutMs);
    } catch (e) {
      const state = await job.getState();
      if (state !== 'failed') throw e;
    }
    return this.progress(jobId);
  }

  /** Removes every job and Switchyard key of this queue (tests and operators resetting a queue). */
  async obliterate(): Promise<void> {
    await this.queue.obliterate({ force: true });
    // On a cluster, on every master (scanKeys): a keyless SCAN would reach one node only.
    await deleteKeys(this.redis, await scanKeys(this.redis, `${this.keys.base}*`));
  }

  /**
   * Closes the queue and the connections it opened. Bounded even while Redis is unreachable: a
   * connection that is not ready is dropped instead of waiting to send QUIT.
   */
  async close(): Promise<void> {
    this.listeners.clear();
    if (this.eventsReady) {
      const events = await this.eventsReady.catch(() => undefined);
      // QueueEvents reads on its own duplicate of eventsRedis; a graceful close sends QUIT on it, which
      // would wait for Redis to come back.
      // (BullMQ's disconnect also waits for an `end` event that a connection between two reconnection
      // attempts never emits: it is given a second, by which time the connection is dropped.)
      if (this.eventsRedis && (await redisAnswers(this.eventsRedis)))
        await events?.close().catch(() => undefined);
      else if (events)
        await within(
          systemClock,
          1_000,
          events.disconnect().catch(() => undefined),
          undefined,
        );
      await closeRedis(this.eventsRedis);
    }
    if (this.ownsRedis && !(await redisAnswers(this.redis))) this.redis.disconnect();
    await this.queue.close().catch(() => undefined);
    if (this.ownsRedis) await closeRedis(this.redis);
  }
}

/**
 * Reads a job's progress: a completed job's final state, else the published object, or a synthesized
 * `queued` state before the first.
 */
export function progressOf(job: Job, jobId: string): Progress | undefined {
  // A completed job's return value is its final state (its last progress write may land just after).
  const returned = progressSchema.safeParse(job.returnvalue);
  if (returned.success && returned.data.outcome !== undefined) return returned.data;
  const published = progressSchema.safeParse(job.progress);
  if (published.success) return published.data;
  const data = switchJobSchema.safeParse(job.data);
  if (!data.success) return undefined;
  return queuedProgress(jobId, data.data, { startedAt: job.timestamp, attempt: 1, updatedAt: job.timestamp });
}

/** A switch's progress before any step: `queued`, running since `startedAt`. */
export function queuedProgress(
  jobId: string,
  data: Pick<
    SwitchJobData,
    'planId' | 'action' | 'environment' | 'targetId' | 'expectedCurrent' | 'requestedBy' | 'approvedBy'
  >,
  at: { readonly startedAt: number; readonly attempt: number; readonly updatedAt: number },
): Progress {
  return {
    jobId,
    planId: data.planId,
    action: data.action,
    environment: data.environment,
    targetId: data.targetId,
    fromId: data.expectedCurrent,
    requestedBy: data.requestedBy,
    ...(data.approvedBy === undefined ? {} : { approvedBy: data.approvedBy }),
    steps: [{ step: 'queued', state: 'running', startedAt: at.startedAt }],
    traffic: [],
    attempt: at.attempt,
    updatedAt: at.updatedAt,
  };
}
