/**
 * The Slack side of the Reporter port (src/progress.ts): a switch job's progress edits the original
 * message(s) with `chat.update`. It owns pacing against Slack's rate limit for `chat.update`, which
 * Slack applies per API method per app per workspace (Tier 3, 50+ a minute), not per message: updates
 * are coalesced per message (the latest state wins; intermediate states may be skipped) and sent at
 * most about once per second per message, and every edit of every message draws on one shared budget
 * (`UpdateBudget`: about 50 a minute with a small burst), final states first when it runs short. A 429
 * is honoured with its `Retry-After`, and holds every message's edits, not only the one that met it; it
 * is waited out, not counted as a failed try, so the final state is delivered once the storm passes
 * (given up only after `finalRateLimitWaitMs` of 429s). A final state rides out Slack's 5xx and network
 * faults the same way (retried with pauses growing to `FINAL_FAULT_PAUSE_MAX_MS`, for as long): an
 * outage of a few minutes must not leave the message saying the switch is still running. Chat API
 * failures are logged and counted (`switchyard_chat_api_errors_total`), never thrown into the job. An
 * edit whose caller must know that it failed (the ChatPoster's `update`: handlers/slack/poster.ts) asks
 * for `rejectOnFailure`.
 */
import { LogLevel, WebClient, type WebClientOptions } from '@slack/web-api';
import { z } from 'zod';
import { type Clock, systemClock, within } from '../../src/clock.js';
import { type Logger, silentLogger } from '../../src/log.js';
import type { Metrics } from '../../src/metrics.js';
import type { MessageRef, Progress, Reporter } from '../../src/progress.js';
import { progressView } from '../../src/views/model.js';
import { renderSlack, type SlackMessage } from '../../src/views/slack.js';
import { describeIssues } from '../../src/zod-issues.js';

export type { SlackMessage };

export interface SlackReporterOptions {
  /** A Web API client that rejects rate-limited calls instead of sleeping (see `createReporterClient`). */
  readonly client: WebClient;
  /**
   * Progress → message; default: the progress view model rendered for Slack, people as mentions (an
   * edit: see `SlackRenderOptions.mentions`).
   */
  readonly render?: (progress: Progress) => SlackMessage;
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly metrics?: Pick<Metrics, 'chatApiErrors'>;
  /** Minimum spacing of two updates of one message. */
  readonly minIntervalMs?: number;
  /**
   * `chat.update` calls a minute this reporter makes across all messages (the shared budget's steady
   * rate), and how many may go at once after a quiet spell (its burst).
   */
  readonly updatesPerMinute?: number;
  readonly updateBurst?: number;
  /**
   * Attempts for an edit made with `rejectOnFailure` on a network fault or a 5xx (a 429 is waited out,
   * like every edit) before its caller hears of the failure.
   */
  readonly updateAttempts?: number;
  /**
   * How long a final state is retried after each 429's Retry-After, or after a transient fault (a 5xx,
   * `fatal_error`, `service_unavailable`, a network fault or time-out): once it has been failing for
   * this long (counted from its first failure), the next failure gives it up. A final state edited with
   * `rejectOnFailure` gets `updateAttempts` on a fault instead (its caller retries by itself).
   */
  readonly finalRateLimitWaitMs?: number;
  /** The same for every other edit (an intermediate state, a click's view, a poster's edit). */
  readonly rateLimitWaitMs?: number;
  /**
   * Longest time `report` waits for a final state to reach Slack before returning to the job; the
   * delivery itself carries on in the background (a long Retry-After never holds a worker).
   */
  readonly finalWaitMs?: number;
}

/** How long a message that showed its final state refuses non-final edits (late, out-of-order ones). */
const FINAL_MEMORY_MS = 30 * 60_000;

/**
 * The longest pause between two tries of a final state that met a transient fault: the lane's backoff
 * doubles from twice `minIntervalMs` up to this, so a Slack that is down for half an hour sees about
 * one call a minute per message, not a storm, and one that is back is used within a minute.
 */
export const FINAL_FAULT_PAUSE_MAX_MS = 60_000;

/** Defaults (STYLE 6). */
export const slackReporterDefaults = {
  clock: systemClock,
  logger: silentLogger,
  minIntervalMs: 1000,
  // Slack's limits apply "per API method per app per workspace"; chat.update is a Tier 3 method, "50+
  // per minute", where "sporadic bursts are welcome" (https://docs.slack.dev/apis/web-api/rate-limits).
  // So 50 a minute for the whole reporter (one bot token, one workspace), with a burst of 10: a single
  // switch's steps, or a few switches starting together, go out at once after a quiet spell.
  updatesPerMinute: 50,
  updateBurst: 10,
  // One retry, after the lane's backoff (2 s at the default spacing): it absorbs a single 5xx or
  // network blip, as the SDK's own retries do for a post. Not more: every caller of `update` retries
  // later by itself (a webhook sender on the 503, the notices' backoff, the next refresh), and a sender
  // waits for the answer while the lane retries (each try may take up to SLACK_CALL_TIMEOUT_MS).
  updateAttempts: 2,
  // A final state waits out 429s, and Slack's 5xx or network faults, as long as the reporter remembers
  // the message is final (a storm of Retry-After answers is Slack asking for patience, an outage of a
  // few minutes is common during an incident, and a dropped final state would leave the message saying
  // the switch is still running, for good). Anything else gives up after a few minutes: an
  // intermediate state is superseded anyway, and a poster's caller retries by itself (a webhook sender
  // on the 503, the notices' backoff), so it should hear of the failure before long.
  finalRateLimitWaitMs: FINAL_MEMORY_MS,
  rateLimitWaitMs: 5 * 60_000,
  finalWaitMs: 10_000,
  // Every state is an edit (`chat.update`): Slack people as mentions, which an edit does not notify.
  render: (progress: Progress): SlackMessage => renderSlack(progressView(progress), { mentions: true }),
} as const satisfies Required<
  Pick<
    SlackReporterOptions,
    | 'clock'
    | 'logger'
    | 'minIntervalMs'
    | 'updatesPerMinute'
    | 'updateBurst'
    | 'updateAttempts'
    | 'finalRateLimitWaitMs'
    | 'rateLimitWaitMs'
    | 'finalWaitMs'
    | 'render'
  >
>;

/**
 * How long one Slack Web API call may take before it is given up as a transient failure. The SDK's
 * default is no limit: a Slack API that accepts the connection and hangs would hold a message's
 * progress (and the job waiting for its final state) forever.
 */
export const SLACK_CALL_TIMEOUT_MS = 10_000;

/**
 * Retries of a Web API call someone is waiting for (Bolt's client: a click's user-group lookup, the
 * token check): twice within a few seconds. The SDK's default (10 retries over about 30 minutes) would
 * leave a person without an answer and hold up everything queued behind the call. Posts are not made
 * with it: the SDK re-sends a call that timed out, which may post a message twice (see
 * `createPosterClient`).
 */
export const SLACK_INTERACTIVE_RETRIES = {
  retries: 2,
  factor: 2,
  minTimeout: 500,
  maxTimeout: 2_000,
  randomize: true,
} as const;

/** A Web API client of Switchyard's own: a time limit on every call, failures logged by the caller. */
export function slackClient(
  token: string,
  opts: Pick<WebClientOptions, 'retryConfig' | 'rejectRateLimitedCalls'> & {
    readonly apiUrl?: string | undefined;
    readonly timeoutMs?: number | undefined;
  },
): WebClient {
  return new WebClient(token, {
    ...(opts.apiUrl === undefined ? {} : { slackApiUrl: opts.apiUrl }),
    ...(opts.rejectRateLimitedCalls === undefined
      ? {}
      : { rejectRateLimitedCalls: opts.rejectRateLimitedCalls }),
    ...(opts.retryConfig === undefined ? {} : { retryConfig: opts.retryConfig }),
    timeout: opts.timeoutMs ?? SLACK_CALL_TIMEOUT_MS,
    // Failures are logged by the caller, as JSON with the rest (the SDK would print its own lines).
    logLevel: LogLevel.ERROR,
  });
}

/** A Web API client suited to the reporter: no internal sleeping on 429 and no hidden retries. */
export function createReporterClient(token: string, apiUrl?: string, timeoutMs?: number): WebClient {
  return slackClient(token, { apiUrl, timeoutMs, rejectRateLimitedCalls: true, retryConfig: { retries: 0 } });
}

/**
 * Why an edit made with `rejectOnFailure` was given up: Slack's error code, and whether trying again
 * later may pass (a network fault, a 5xx, a rate limit) or Slack refused it for good
 * (`message_not_found`, `cant_update_message`, `channel_not_found`, …).
 */
export class SlackEditError extends Error {
  override readonly name = 'SlackEditError';
  constructor(
    readonly channel: string,
    readonly ts: string,
    readonly slackCode: string,
    readonly transient: boolean,
    cause?: unknown,
  ) {
    super(
      `SlackEditError[${slackCode}] chat.update channel=${channel} ts=${ts}`,
      cause === undefined ? {} : { cause },
    );
  }
}

/** Options of `SlackReporter.edit`. */
export interface SlackEditOptions {
  /**
   * The edit is a view that a switch's progress supersedes (a click's "Confirmed…" or "Awaiting
   * approval" view): dropped (resolves at once) once a progress state of this message was queued here,
   * so it never paints over progress the job already reported through this reporter.
   */
  readonly yieldsToProgress?: boolean;
  /**
   * Asked right before the edit goes out (after any pacing wait): true drops it (it resolves). For a
   * view that progress supersedes when that progress comes from another process (a worker elsewhere,
   * whose edits this reporter cannot order against): the caller checks whether the job has reported
   * since. A guard that throws lets the edit go out.
   */
  readonly skipIf?: () => Promise<boolean>;
  /**
   * Reject with a SlackEditError when the edit (or the newer state that replaced it in the lane) was
   * given up, instead of resolving; such an edit is also retried once on a transient failure
   * (`updateAttempts`). An edit dropped because the message shows its final state still resolves.
   */
  readonly rejectOnFailure?: boolean;
  /**
   * The edit is a final state of the message, like a job's end: queued after any state before it and
   * never dropped because the message showed its final state (`ChatPoster.update`'s
   * `supersedesProgress`).
   */
  readonly final?: boolean;
}

/** A caller waiting for a state: `reject` only when it asked to hear of a failure. */
interface Waiter {
  readonly resolve: () => void;
  readonly reject?: (error: SlackEditError) => void;
}

interface Pending {
  readonly message: SlackMessage;
  readonly final: boolean;
  /**
   * Whether this state itself was asked for with `rejectOnFailure` (it then gets `updateAttempts` tries
   * on a fault). Decided by the state, not by the waiters riding on it: a progress or click state that
   * replaced a poster's edit keeps its own pacing (given up at once on a fault, as always).
   */
  readonly retryFaults: boolean;
  /** SlackEditOptions.skipIf of this state, if any. */
  readonly skipIf?: (() => Promise<boolean>) | undefined;
  /** Settled when this state (or a newer one that replaced it) was delivered or given up on. */
  readonly waiters: Waiter[];
  /**
   * When Slack first failed this state: with a 429, or for a final state that waits faults out (not
   * `retryFaults`), with any transient fault too. Its wait is bounded from then.
   */
  failingSince?: number;
}

interface Lane {
  readonly key: string;
  readonly channel: string;
  readonly ts: string;
  pending: Pending | undefined;
  nextAllowedAt: number;
  running: boolean;
}

/** Reads a lane's pending state afresh (it changes across awaits; keeps TS from narrowing it away). */
function pendingOf(lane: Lane): Pending | undefined {
  return lane.pending;
}

const budgetSchema = z.object({
  updatesPerMinute: z.number().finite().positive('expected a number of calls a minute above 0'),
  updateBurst: z.number().int('expected a whole number of calls').min(1, 'expected at least 1 call'),
});

/**
 * The `chat.update` budget every lane of a reporter draws on before each call: Slack counts the calls
 * of a method per app per workspace, whichever message they edit. A token bucket in the form of a
 * virtual schedule (GCRA): `due` is when the budget would be back to full; a call may go while it is
 * at most `burst - 1` spacings ahead of now. A 429 pauses every lane until its Retry-After has passed
 * and restarts the bucket from a single call then (Slack says the budget is spent, perhaps by another
 * process with the same token: a full burst right after the pause would likely meet the next 429).
 * Lanes that must wait are served in turn, a lane holding a final state first.
 */
class UpdateBudget {
  private readonly spacingMs: number;
  private due = Number.NEGATIVE_INFINITY;
  private resumeAt = Number.NEGATIVE_INFINITY;
  private readonly waiting: { readonly lane: Lane; readonly grant: () => void }[] = [];
  private serving = false;

  constructor(
    private readonly clock: Clock,
    perMinute: number,
    private readonly burst: number,
  ) {
    this.spacingMs = 60_000 / perMinute;
  }

  /**
   * A call for `lane`, counted against the budget: granted now (undefined: no await, so the lane takes
   * its state out at once, as without a budget) when nobody is waiting and the budget allows it, else a
   * promise that resolves when it is this lane's turn.
   */
  take(lane: Lane): Promise<void> | undefined {
    if (this.waiting.length === 0 && this.readyAt() <= this.clock.now()) {
      this.spend();
      return undefined;
    }
    return new Promise((grant) => {
      this.waiting.push({ lane, grant });
      if (!this.serving) void this.serve();
    });
  }

  /**
   * A call taken but not made (its state was dropped right before it went out). Never earlier than a
   * pause allows: a 429 met by another lane meanwhile still holds.
   */
  giveBack(): void {
    this.due = Math.max(this.due - this.spacingMs, this.resumeAt + (this.burst - 1) * this.spacingMs);
  }

  /**
   * Slack answered 429: nobody calls until its Retry-After has passed (the latest one asked for, when
   * several lanes meet 429s), then one call, then the steady rate: the schedule starts again from there,
   * whatever it said before, since Slack has just told where the workspace's budget stands.
   */
  pause(retryAfterMs: number): void {
    this.resumeAt = Math.max(this.resumeAt, this.clock.now() + retryAfterMs);
    this.due = this.resumeAt + (this.burst - 1) * this.spacingMs;
  }

  private readyAt(): number {
    return this.due - (this.burst - 1) * this.spacingMs;
  }

  private spend(): void {
    this.due = Math.max(this.due, this.clock.now()) + this.spacingMs;
  }

  private async serve(): Promise<void> {
    this.serving = true;
    try {
      while (this.waiting.length > 0) {
        // Re-read after every wait: a 429 met meanwhile may have pushed the schedule back.
        const wait = this.readyAt() - this.clock.now();
        if (wait > 0) {
          await this.clock.sleep(Math.ceil(wait));
          continue;
        }
        const final = this.waiting.findIndex((w) => w.lane.pending?.final === true);
        const [next] = this.waiting.splice(Math.max(final, 0), 1);
        this.spend();
        next?.grant();
      }
    } finally {
      this.serving = false;
    }
  }
}

type Failure = { kind: 'ratelimited'; retryAfterMs: number } | { kind: 'transient' } | { kind: 'permanent' };

/**
 * How a Slack Web API error should be handled: wait (429), try again later (5xx, `fatal_error`, a
 * network fault or time-out) or give up (Slack's refusals, and any other HTTP 4xx).
 */
export function classifySlackError(e: unknown): { failure: Failure; code: string } {
  const err = e as { code?: unknown; retryAfter?: unknown; statusCode?: unknown; data?: { error?: unknown } };
  if (err.code === 'slack_webapi_rate_limited_error') {
    const seconds = typeof err.retryAfter === 'number' ? err.retryAfter : 1;
    return { failure: { kind: 'ratelimited', retryAfterMs: seconds * 1000 }, code: 'ratelimited' };
  }
  if (err.code === 'slack_webapi_platform_error') {
    const code = typeof err.data?.error === 'string' ? err.data.error : 'platform_error';
    const transient = code === 'internal_error' || code === 'fatal_error' || code === 'service_unavailable';
    return { failure: transient ? { kind: 'transient' } : { kind: 'permanent' }, code };
  }
  if (err.code === 'slack_webapi_http_error' && isRefusalStatus(err.statusCode)) {
    // An HTTP 4xx is the request refused as it was sent (a proxy at SLACK_API_URL that forbids it, a
    // path that is not there, …): sent again it meets the same answer, so a final state is not retried
    // for half an hour, nor a poster's edit once, and the poster's caller hears it is final.
    return { failure: { kind: 'permanent' }, code: 'http_error' };
  }
  if (err.code === 'slack_webapi_request_error' || err.code === 'slack_webapi_http_error') {
    return { failure: { kind: 'transient' }, code: String(err.code).replace('slack_webapi_', '') };
  }
  return { failure: { kind: 'permanent' }, code: 'unknown' };
}

/**
 * Whether an HTTP status is a 4xx other than 429 (a rate limit, waited out: the SDK turns a 429 with a
 * Retry-After into its own error; one without stays transient).
 */
function isRefusalStatus(status: unknown): boolean {
  return typeof status === 'number' && status >= 400 && status < 500 && status !== 429;
}

/** Edits Slack messages through a switch's progress (see the module header). */
export class SlackReporter implements Reporter {
  private readonly client: WebClient;
  private readonly render: (progress: Progress) => SlackMessage;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly metrics: Pick<Metrics, 'chatApiErrors'> | undefined;
  private readonly minIntervalMs: number;
  private readonly updateAttempts: number;
  private readonly finalRateLimitWaitMs: number;
  private readonly rateLimitWaitMs: number;
  private readonly finalWaitMs: number;
  /** One budget for every message this reporter edits (Slack's limit is per method and workspace). */
  private readonly budget: UpdateBudget;
  private readonly lanes = new Map<string, Lane>();
  private readonly idle = new Set<() => void>();
  /** Messages whose final state is queued or went out, with when: later non-final edits are dropped. */
  private readonly finalized = new Map<string, number>();
  /**
   * Messages a progress state was queued for: that state's stamp (`Progress.updatedAt`), and when it was
   * queued. An older snapshot never replaces a newer one, and views that yield to progress are dropped.
   */
  private readonly progressed = new Map<string, { readonly at: number; readonly seen: number }>();

  constructor(opts: SlackReporterOptions) {
    this.client = opts.client;
    this.render = opts.render ?? slackReporterDefaults.render;
    this.clock = opts.clock ?? slackReporterDefaults.clock;
    this.logger = opts.logger ?? slackReporterDefaults.logger;
    this.metrics = opts.metrics;
    this.minIntervalMs = opts.minIntervalMs ?? slackReporterDefaults.minIntervalMs;
    this.updateAttempts = opts.updateAttempts ?? slackReporterDefaults.updateAttempts;
    this.finalRateLimitWaitMs = opts.finalRateLimitWaitMs ?? slackReporterDefaults.finalRateLimitWaitMs;
    this.rateLimitWaitMs = opts.rateLimitWaitMs ?? slackReporterDefaults.rateLimitWaitMs;
    this.finalWaitMs = opts.finalWaitMs ?? slackReporterDefaults.finalWaitMs;
    const budget = budgetSchema.safeParse({
      updatesPerMinute: opts.updatesPerMinute ?? slackReporterDefaults.updatesPerMinute,
      updateBurst: opts.updateBurst ?? slackReporterDefaults.updateBurst,
    });
    if (!budget.success) throw new Error(`SlackReporter options: ${describeIssues(budget.error)}`);
    this.budget = new UpdateBudget(this.clock, budget.data.updatesPerMinute, budget.data.updateBurst);
  }

  /**
   * Schedules an edit of every Slack message in `messages`. Intermediate states return at once (the
   * job is never slowed by chat pacing); the final state (an `outcome` is set) resolves once delivered
   * or given up on. Never rejects.
   */
  async report(progress: Progress, messages: readonly MessageRef[]): Promise<void> {
    const delivered = this.queueProgress(progress, messages);
    if (progress.outcome === undefined) return;
    await within(
      this.clock,
      this.finalWaitMs,
      Promise.all(delivered).then(() => undefined),
      undefined,
    );
  }

  /** Queues a progress state on each Slack message's lane; the promises settle as `enqueue`'s do. */
  private queueProgress(progress: Progress, messages: readonly MessageRef[]): Promise<void>[] {
    const slack = messages.filter((m) => m.surface === 'slack');
    if (slack.length === 0) return [];
    let message: SlackMessage;
    try {
      message = this.render(progress);
    } catch (e) {
      this.logger.error({ err: e, jobId: progress.jobId }, 'slack progress render failed');
      this.metrics?.chatApiErrors.inc({ surface: 'slack', method: 'render', code: 'render_failed' });
      return [];
    }
    const final = progress.outcome !== undefined;
    return slack.map((ref) => {
      const key = `${ref.channel}/${ref.messageId}`;
      const newest = this.progressed.get(key);
      // An older snapshot (a late or re-read state) never replaces a newer one queued here.
      if (!final && newest !== undefined && progress.updatedAt < newest.at) return Promise.resolve();
      if (newest === undefined || progress.updatedAt >= newest.at)
        this.progressed.set(key, { at: progress.updatedAt, seen: this.clock.now() });
      return this.enqueue(ref, message, final);
    });
  }

  /**
   * Edits one message through the same paced lane as progress (so a click handler's edit and the
   * job's progress never overtake each other). Dropped (resolves at once) when the message already
   * shows a final state. When a newer state replaces it before it went out, it settles as that state
   * does. Resolves when delivered or given up on and never rejects, unless `rejectOnFailure` is set:
   * then a given-up edit rejects with a SlackEditError (see SlackEditOptions).
   */
  edit(ref: MessageRef, message: SlackMessage, opts: SlackEditOptions = {}): Promise<void> {
    if (opts.yieldsToProgress === true && this.progressed.has(`${ref.channel}/${ref.messageId}`)) {
      return Promise.resolve();
    }
    return this.enqueue(ref, message, opts.final === true, opts.rejectOnFailure === true, opts.skipIf);
  }

  /** Whether a final state of this message was queued or delivered here (later edits are dropped). */
  isFinal(ref: MessageRef): boolean {
    return this.finalized.has(`${ref.channel}/${ref.messageId}`);
  }

  /** Resolves when no update is pending or in flight (shutdown, tests). */
  flush(): Promise<void> {
    if (![...this.lanes.values()].some((l) => l.running)) return Promise.resolve();
    return new Promise((resolve) => this.idle.add(resolve));
  }

  private enqueue(
    ref: MessageRef,
    message: SlackMessage,
    final: boolean,
    rejectOnFailure = false,
    skipIf?: () => Promise<boolean>,
  ): Promise<void> {
    const key = `${ref.channel}/${ref.messageId}`;
    this.prune(key);
    // From the moment a final state is queued, later non-final edits (a late progress state, a
    // click's "Confirmed…" view) are dropped: sent after it, or instead of it on a retry, they would
    // leave the message saying the switch is still under way.
    if (!final && this.finalized.has(key)) return Promise.resolve();
    if (final) this.finalized.set(key, this.clock.now());
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = {
        key,
        channel: ref.channel,
        ts: ref.messageId,
        pending: undefined,
        nextAllowedAt: 0,
        running: false,
      };
      this.lanes.set(key, lane);
    }
    const waiters = lane.pending?.waiters ?? [];
    // A final state is never replaced by a non-final one (a late intermediate report).
    const keep = lane.pending?.final === true && !final ? lane.pending : undefined;
    const done = new Promise<void>((resolve, reject) =>
      waiters.push(rejectOnFailure ? { resolve, reject } : { resolve }),
    );
    lane.pending = keep ?? { message, final, waiters, retryFaults: rejectOnFailure, skipIf };
    if (!lane.running) void this.drain(lane);
    return done;
  }

  /** Forgets idle lanes whose pacing window has passed (bounded memory across many jobs). */
  private prune(except: string): void {
    const now = this.clock.now();
    for (const [key, at] of this.finalized) if (now - at > FINAL_MEMORY_MS) this.finalized.delete(key);
    for (const [key, p] of this.progressed) if (now - p.seen > FINAL_MEMORY_MS) this.progressed.delete(key);
    for (const [key, lane] of this.lanes) {
      if (key !== except && !lane.running && !lane.pending && lane.nextAllowedAt <= now)
        this.lanes.delete(key);
    }
  }

  private async drain(lane: Lane): Promise<void> {
    lane.running = true;
    try {
      // Network faults and 5xx of the states in hand (a 429 is no fault: it is waited out).
      let faults = 0;
      while (lane.pending) {
        // This message's own spacing (or the Retry-After it met), then the shared budget (which also
        // holds every lane while a 429 met by any of them is waited out).
        for (let wait = lane.nextAllowedAt - this.clock.now(); wait > 0; ) {
          await this.clock.sleep(wait);
          wait = lane.nextAllowedAt - this.clock.now();
        }
        const turn = this.budget.take(lane);
        if (turn !== undefined) await turn;
        const current = lane.pending;
        if (!current) {
          this.budget.giveBack();
          break;
        }
        lane.pending = undefined;
        if (current.skipIf !== undefined && (await current.skipIf().catch(() => false))) {
          // Superseded meanwhile (its guard says so): a newer state queued during the check carries on.
          this.budget.giveBack();
          const newer = pendingOf(lane);
          if (newer) newer.waiters.push(...current.waiters);
          else for (const w of current.waiters) w.resolve();
          continue;
        }
        const outcome = await this.send(lane, current.message);
        if (current.final) this.finalized.set(lane.key, this.clock.now());
        if (outcome.ok) {
          faults = 0;
          lane.nextAllowedAt = this.clock.now() + this.minIntervalMs;
          for (const w of current.waiters) w.resolve();
          continue;
        }
        const { failure } = outcome;
        let retry: boolean;
        let backoff: number;
        if (failure.kind === 'ratelimited') {
          // Wait, not a failed try: Slack tells when to come back, and a storm of short Retry-Afters
          // must not use up the tries of a final state. Bounded by time instead, from the first 429.
          this.budget.pause(failure.retryAfterMs);
          const now = this.clock.now();
          current.failingSince ??= now;
          const bound = current.final ? this.finalRateLimitWaitMs : this.rateLimitWaitMs;
          retry = now - current.failingSince < bound;
          backoff = failure.retryAfterMs;
        } else {
          faults += 1;
          backoff = Math.min(this.minIntervalMs * 2 ** faults, FINAL_FAULT_PAUSE_MAX_MS);
          if (failure.kind !== 'transient') retry = false;
          else if (current.retryFaults) {
            // An edit whose caller hears of a failure (`rejectOnFailure`) gets `updateAttempts` tries:
            // its caller retries later by itself, and may be waiting for the answer.
            retry = faults < this.updateAttempts;
          } else if (current.final) {
            // A final state is waited out like a 429 (bounded by time from its first failure, the
            // pause capped): counted tries would be used up within a minute of a Slack outage, and the
            // message would say the switch is still running, for good. Anything else is superseded by
            // the next state anyway.
            const now = this.clock.now();
            current.failingSince ??= now;
            retry = now - current.failingSince < this.finalRateLimitWaitMs;
          } else retry = false;
        }
        if (retry) {
          // Put the state back unless a newer one arrived meanwhile (the newer one carries its waiters).
          const newer = pendingOf(lane);
          if (newer) newer.waiters.push(...current.waiters);
          else lane.pending = current;
          lane.nextAllowedAt = this.clock.now() + Math.max(backoff, this.minIntervalMs);
          continue;
        }
        faults = 0;
        this.logger.warn(
          { channel: lane.channel, ts: lane.ts, final: current.final, code: outcome.code },
          'slack progress update given up',
        );
        const error = new SlackEditError(
          lane.channel,
          lane.ts,
          outcome.code,
          failure.kind !== 'permanent',
          outcome.error,
        );
        // A newer state queued meanwhile replaces this one: a caller that hears of failures follows
        // its outcome (the message is to show that state now). The others resolve, as they always did.
        const newer = pendingOf(lane);
        for (const w of current.waiters) {
          if (w.reject === undefined) w.resolve();
          else if (newer) newer.waiters.push(w);
          else w.reject(error);
        }
      }
    } finally {
      lane.running = false;
      if (![...this.lanes.values()].some((l) => l.running)) {
        for (const resolve of this.idle) resolve();
        this.idle.clear();
      }
    }
  }

  private async send(
    lane: Lane,
    message: SlackMessage,
  ): Promise<{ ok: true } | { ok: false; failure: Failure; code: string; error: unknown }> {
    try {
      await this.client.chat.update({
        channel: lane.channel,
        ts: lane.ts,
        text: message.text,
        blocks: message.blocks,
      });
      return { ok: true };
    } catch (e) {
      const { failure, code } = classifySlackError(e);
      this.metrics?.chatApiErrors.inc({ surface: 'slack', method: 'chat.update', code });
      this.logger.warn(
        { channel: lane.channel, ts: lane.ts, code, err: e instanceof Error ? e.message : String(e) },
        'slack chat.update failed',
      );
      return { ok: false, failure, code, error: e };
    }
  }
}
