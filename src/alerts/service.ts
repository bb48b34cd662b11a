/**
 * The alert service: map → dedupe → correlate → suggest, for alerts from webhooks and watched chat
 * channels. It owns the decision of what to post and where; chat surfaces own how (the
 * SuggestionSink port, implemented by the Slack, Discord and console surfaces). The plan the
 * suggestion's buttons act on comes from Flow (`flow.plan` with the system actor and the alert as
 * context), so confirming a suggestion is exactly confirming a `/rollback`.
 *
 * Per alert: unmapped → counted and ignored; RESOLVED → edits the incident's suggestion once (a group
 * member only once no member of its payload fires in its environment; without an environment label, in
 * every environment the incident alerted in, whatever alertMatchers guess); FIRING →
 * one atomic claim per environment and incident (storm control), then either a link to the switch
 * already running for the environment, or a correlation with the deployment that went live before the
 * alert started: a suggestion inside the window, a note (or nothing) outside it, nothing when there is
 * no culprit or no target. Where: threaded under the alert message when it came from chat, else the
 * environment's `channels.<surface>`, falling back to SLACK_ALERT_CHANNEL / DISCORD_ALERT_CHANNEL.
 * One suggestion message per plan and channel (see `suggestionSlot`): a chat alert whose rollback
 * already has one in its channel, top level or in any thread, is listed on it instead of answered in
 * its own thread.
 */

import { createHash } from 'node:crypto';
import type { Clock } from '../clock.js';
import { systemClock, within } from '../clock.js';
import type { Config } from '../config.js';
import type { OwnRecord } from '../domain/own-record.js';
import type { Plan } from '../domain/plan.js';
import { type Refusal, RefusalCode } from '../domain/result.js';
import { assertNever, type EnvironmentSnapshot } from '../domain/types.js';
import { isPermanentChatError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import type { Metrics } from '../metrics.js';
import {
  type AlertContext,
  type AlertGroup,
  MAX_ALERTS_PER_PLAN,
  MAX_COUNTED_ALERTS_PER_PLAN,
  type PlanRecord,
  type PlanSuggestion,
  SUGGESTION_CLAIM_LEASE_MS,
} from '../plan-store.js';
import type { DeployPlatform } from '../platform/port.js';
import type { Actor, MessageRef } from '../progress.js';
import type { RedisClient } from '../redis.js';
import { type Correlation, correlate, describeGap } from './correlate.js';
import { AlertDedupe, type AlertDedupeOptions, type IncidentKey, IncidentState } from './dedupe.js';
import { type CompiledMatchers, compileMatchers, type MappingResult, mapAlert } from './mapping.js';
import {
  type AlertIntake,
  AlertOutcome,
  type AlertResult,
  type AlertSource,
  type ChatOrigin,
  type NormalizedAlert,
} from './types.js';

export { parseChatAlert } from './chat.js';

export type SurfaceName = 'slack' | 'discord' | 'console';

/** A channel (optionally a thread) to post in. */
export interface SuggestionDestination {
  readonly surface: SurfaceName;
  readonly channel: string;
  /**
   * Thread under this message (Slack thread_ts / Discord message id) when the alert came from chat. Where
   * the message goes only: the channel is the place (`suggestionSlot`).
   */
  readonly threadId?: string;
}

/** What a chat surface renders for an alert. */
export interface SuggestionInput {
  /** `suggestion`: the rollback confirmation view plus Dismiss. `note`: text only, no button. */
  readonly kind: 'suggestion' | 'note';
  readonly environment: string;
  readonly alert: NormalizedAlert;
  /** e.g. "dep_x went live 7 minutes before this alert started — roll back to dep_y?" */
  readonly sentence: string;
  /** The plan the buttons act on (always present for `suggestion`). */
  readonly plan?: Plan;
  /**
   * This alert as the suggestion shows it. One plan serves every request for the same switch, so the
   * plan's own alert may be another incident's (or none, when a person asked first).
   */
  readonly alertContext?: AlertContext;
  /**
   * The alert's id in the plan's alert list, when the plan lists its alerts: the message shows this
   * alert first and the plan's other alerts after it.
   */
  readonly alertId?: string;
  readonly correlation: Correlation;
  readonly destinations: readonly SuggestionDestination[];
}

/** What a chat surface needs to mark a suggestion resolved (the button stays, labelled optional). */
export interface ResolvedInput {
  readonly environment: string;
  /** The RESOLVED alert. */
  readonly alert: NormalizedAlert;
  readonly planId?: string;
  /** The sentence the suggestion showed. */
  readonly sentence?: string;
}

/** How long one place shows one link to a running job (longer than any switch runs). */
const LINK_ONCE_MS = 60 * 60_000;
/** How long one place shows one "outside the correlation window" note about a deployment. */
const NOTE_ONCE_MS = 6 * 60 * 60_000;

/** Why a re-notification of an incident with no record is not correlated (outcome no_correlation). */
export const RENOTIFICATION_REASON =
  'A re-notification does not say when the alert started, and this incident has no record of its first alert (expired, or never received), so no deployment is blamed for it.';

/**
 * Said after what the answer (and a note) tells of an alert marked `missingData` (Datadog's No Data,
 * Grafana's DatasourceNoData): it is correlated as any alert, but no threshold was crossed, so whoever
 * reads it knows what kind of symptom it is.
 */
export const MISSING_DATA_DETAIL =
  "(No data: the alert's query returned nothing; the service may have stopped reporting.)";

/** An alert for an environment that is already switching: point at the running job instead. */
export interface LinkJobInput {
  readonly environment: string;
  readonly alert: NormalizedAlert;
  readonly jobId: string;
  readonly planId: string;
  readonly destinations: readonly SuggestionDestination[];
}

/**
 * The port chat surfaces implement to show alert suggestions. Each returns the refs of the messages
 * it posted (its own surface only) and throws when it could not post at all.
 */
export interface SuggestionSink {
  /**
   * Posts one message per destination of the sink's surface and returns their refs in the order of
   * those destinations (`postedBySlot` pairs them by that order). A ref's channel is the one the chat
   * service answered with, which may differ from the destination's (a name answered with an id).
   */
  suggest(input: SuggestionInput): Promise<MessageRef[]>;
  /** Edits the messages of a suggestion to say the alert resolved. */
  resolved(refs: readonly MessageRef[], input: ResolvedInput): Promise<void>;
  /**
   * Renders the plan's suggestion messages again (`PlanRecord.suggestions`) from the plan as stored:
   * its alert list changed (another alert joined, one resolved). A confirmed plan's messages show the
   * switch and are left alone; so is a dismissed message.
   */
  refresh?(planId: string, opts?: RefreshOptions): Promise<void>;
  /**
   * Shows the suggestion messages of a finished plan record closed (a new request for the same switch
   * replaced it; its messages would otherwise keep their buttons). Its dismissed messages are left.
   */
  close?(old: PlanRecord): Promise<void>;
  /** Posts a short link to the switch already running; optional (without it nothing is posted). */
  linkRunningJob?(input: LinkJobInput): Promise<MessageRef[]>;
}

/** What `SuggestionSink.refresh` is asked to do besides editing. */
export interface RefreshOptions {
  /** The alert that changed (its own thread suggestion of an older record is edited too). */
  readonly alertId?: string;
  /**
   * Hears of each edit the sink made, once it is known how it went: the message, and the failure when
   * the edit did not land (a PermanentChatError when the chat service refused it for good: the message
   * or its channel is gone, or no longer reachable with this bot). A message refused for good shows no
   * alert any more (see `AlertService.postGrouped`).
   */
  readonly edited?: (ref: MessageRef, failure?: unknown) => void;
}

/** The part of Flow (src/flow.ts) the alert service uses. */
export interface AlertFlow {
  plan(
    actor: Actor,
    action: 'rollback',
    environmentInput: string,
    targetRef?: string,
    opts?: { readonly alert?: AlertContext; readonly unlessDismissed?: boolean },
  ): Promise<{ readonly ok: true; readonly plan: Plan } | { readonly ok: false; readonly refusal: Refusal }>;
  /**
   * Switchyard's own record of the snapshot's environment (Flow's `ownRecord`): correlation picks the
   * rollback target with it, as the plan then does.
   */
  ownRecord?(snapshot: EnvironmentSnapshot): Promise<OwnRecord | undefined>;
  /** Remembers a message showing the plan so the switch's progress edits it too. */
  attachMessage?(planId: string, ref: MessageRef): Promise<boolean>;
  /**
   * The plan's alert list and suggestion slots (src/plan-store.ts): with these, alerts of different
   * incidents that point at the same switch share one suggestion message per destination.
   */
  groupAlert?(
    planId: string,
    alertId: string,
    alert: AlertContext,
    slots: readonly string[],
  ): Promise<AlertGroup | undefined>;
  suggestionPosted?(
    planId: string,
    slot: string,
    alertId: string,
    ref: MessageRef,
  ): Promise<number | undefined>;
  releaseSuggestion?(planId: string, slot: string): Promise<void>;
  /**
   * The plan's record as it is now (an open plan past its time reads as expired), with its suggestion
   * slots.
   */
  get?(planId: string): Promise<
    | {
        readonly state: string;
        readonly suggestions?: readonly PlanSuggestion[];
        /** The fresh plans made from it under other ids (see `replannedAs`). */
        readonly replannedAs?: readonly string[];
        /** About how many alerts it counts beyond those it tracks one by one (PlanRecord). */
        readonly alertsUntracked?: number;
        /** What it would do, to name it in words (a plan id appears on no message). */
        readonly plan?: {
          readonly action: string;
          readonly environment: string;
          readonly target: { readonly id: string };
        };
        readonly cancelledBy?: { readonly displayName: string };
        /** Set when its cancel was a Dismiss that silenced alerts for it. */
        readonly dismissedAt?: number;
      }
    | undefined
  >;
  /**
   * The fresh plans made from this closed one under other plan ids ("Make a fresh plan" after the
   * platform moved), which took its alerts over, oldest first: its incidents follow them.
   */
  replannedAs?(planId: string): Promise<readonly string[]>;
  /** The plan's state when it lists the alert (now marked resolved), else undefined. */
  resolveAlert?(planId: string, alertId: string, at: number): Promise<string | undefined>;
  unlistAlert?(planId: string, alertId: string): Promise<void>;
}

/**
 * The suggestion slot of a destination: one suggestion message per plan and channel. A thread is where
 * a chat alert's suggestion goes, not a place of its own: a storm of alert messages in one watched
 * channel (each its own thread) would otherwise post one suggestion per alert, far past what a chat
 * service allows in one channel (Slack: about one message a second). So the first alert of a rollback
 * in a channel posts (in its thread, or at the top level for a webhook), and every later one, from
 * chat or a webhook, is listed on that message. (Plans recorded before this have thread slots,
 * `surface:channel:thread`; those are left as they are.)
 */
export function suggestionSlot(d: SuggestionDestination): string {
  return `${d.surface}:${d.channel}`;
}

/**
 * The message a sink posted for each of `destinations`, by slot. A ref names its channel as the chat
 * service answered the post: Slack answers a channel given by name (`#alerts`, as SLACK_ALERT_CHANNEL
 * or `channels.slack` may say) with its id (`C0ALERTS`), so a ref is matched to its destination by
 * surface and position (a sink answers one ref per destination of its surface, in their order: see
 * `SuggestionSink.suggest`), not by channel. A surface that answered with a different number of refs
 * than it had destinations is matched by channel only: a destination none of its refs names gets no
 * message, and its slot is freed.
 */
export function postedBySlot(
  destinations: readonly SuggestionDestination[],
  refs: readonly MessageRef[],
): Map<string, MessageRef> {
  const out = new Map<string, MessageRef>();
  for (const surface of new Set(destinations.map((d) => d.surface))) {
    const ds = destinations.filter((d) => d.surface === surface);
    const rs = refs.filter((r) => r.surface === surface);
    for (const [i, d] of ds.entries()) {
      const ref = rs.length === ds.length ? rs[i] : rs.find((r) => r.channel === d.channel);
      if (ref !== undefined) out.set(suggestionSlot(d), ref);
    }
  }
  return out;
}

/** The part of the switch queue (src/queue.ts) the alert service uses. */
export interface ActiveJobs {
  activeForEnvironment(environment: string): Promise<{ jobId: string; planId: string } | undefined>;
}

/** The actor alert suggestions are requested by. */
export const ALERT_ACTOR: Actor = {
  surface: 'system',
  userId: 'switchyard-alerts',
  displayName: 'Switchyard alerts',
};

export interface AlertServiceOptions {
  readonly platform: Pick<DeployPlatform, 'listEnvironments' | 'snapshot'>;
  readonly flow: AlertFlow;
  readonly sink: SuggestionSink;
  readonly dedupe: AlertDedupe;
  readonly config: Pick<Config, 'env' | 'file'>;
  /** The switch queue; without it, alerts are never linked to running jobs. */
  readonly jobs?: ActiveJobs;
  /** Last-resort channels per surface (the console has one channel and needs no configuration). */
  readonly defaultChannels?: Partial<Record<SurfaceName, string>>;
  /** Surfaces that are connected; destinations on other surfaces are not used. Default: all. */
  readonly surfaces?: readonly SurfaceName[];
  readonly clock?: Clock;
  readonly metrics?: Metrics;
  readonly log?: Logger;
  /**
   * First wait before an alert read from a chat message is handled again after its suggestion could
   * not be posted (default 5 s; then 4× and 16× that: three more tries within about two minutes).
   */
  readonly chatRetryMs?: number;
}

/** How many more times `handleChat` tries an alert whose suggestion could not be posted. */
export const CHAT_ALERT_RETRIES = 3;

/**
 * How long each webhook sender is kept waiting for its answer (`handleWebhook`), well inside what it
 * waits: Sentry 1 s (1,000 timeouts in 24 hours unsubscribe the integration), PagerDuty 5 s (three
 * dropped deliveries disable the subscription for 24 hours), Alertmanager `group_interval` (at least
 * 10 s), Datadog 15 s, Grafana 30 s; a generic sender is answered as Alertmanager is. A delivery not
 * handled by then is answered with what is known, and finished in the background. Datadog's leaves
 * room past Slack's 10 s call time-out (SLACK_CALL_TIMEOUT_MS), so that a post Slack does not answer
 * is answered `failed` (retry: false) rather than `pending`, and 3 s short of its 15 s.
 */
export const ANSWER_BUDGET_MS = {
  alertmanager: 8_000,
  grafana: 20_000,
  datadog: 12_000,
  sentry: 700,
  pagerduty: 4_000,
  generic: 8_000,
} as const satisfies Record<AlertSource, number>;

/**
 * Most webhook deliveries finished in the background at once: past it, a delivery is answered when
 * handled, as before (its sender may time out and send it again, which deduplicates), so a slow chat
 * service cannot pile up unbounded work.
 */
export const MAX_LATE_DELIVERIES = 100;

/** The detail of an alert still being handled when its answer was due (outcome `pending`). */
export const PENDING_DETAIL =
  'Still being handled when the answer was due (the chat service or the deploy platform is slow): its outcome is logged and counted once known. If it fails in a way a retry may fix, Switchyard tries the delivery again itself (after 5 s, 20 s and 80 s, unless it is shutting down); a failure no retry can fix (the chat service refused, or Slack did not answer the post, which may have gone through) is only logged.';

/**
 * The detail of a `pending` alert in an answer that also holds a failure a retry may fix: that answer
 * is a 503, and the sender's retry of the delivery handles it again.
 */
export const PENDING_SENDER_RETRIES_DETAIL =
  'Still being handled when the answer was due (the chat service or the deploy platform is slow): its outcome is logged and counted once known. Another alert of this delivery failed, so the delivery is answered 503 and its sender sends it again; Switchyard does not retry it itself.';

/** How far `handle` got: the results of the alerts handled so far, and how many those are. */
interface Progress {
  readonly results: AlertResult[];
  handled: number;
  mapped: readonly MappingResult[] | undefined;
}

const ALL_SURFACES: readonly SurfaceName[] = ['slack', 'discord', 'console'];

/** A message's identity (its place and id), to tell messages apart. */
function refKey(ref: MessageRef): string {
  return `${ref.surface}|${ref.channel}|${ref.messageId}`;
}

/**
 * A caller waiting for a plan's messages to be edited (`AlertService.editNow`): which of its messages
 * are still to be edited, and which of those the chat service refused for good.
 */
interface EditWatch {
  readonly pending: Set<string>;
  readonly gone: Set<string>;
  readonly settle: (gone: ReadonlySet<string>) => void;
}

/** A message that showed the plan in one of an alert's destinations. */
interface ListedMessage {
  readonly destination: SuggestionDestination;
  readonly ref: MessageRef;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The incident of `alert` in `environment`: its fingerprint within its source (or the time window). */
function incidentOf(alert: NormalizedAlert, environment: string): IncidentKey {
  return {
    environment,
    source: alert.source,
    ...(alert.fingerprint === undefined ? {} : { fingerprint: alert.fingerprint }),
  };
}

/** Alerts whose payload is one group's members (sharing the group key): Alertmanager and Grafana. */
function isGrouped(alert: NormalizedAlert): boolean {
  return alert.source === 'alertmanager' || alert.source === 'grafana';
}

/** Orchestrates alert handling (see the module header). */
export class AlertService implements AlertIntake {
  private readonly matchers: CompiledMatchers;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly surfaces: readonly SurfaceName[];

  private readonly chatRetryMs: number;
  private readonly closing = new AbortController();
  /**
   * Alerts waiting to be handled again (`handleChat`; a webhook delivery answered before it was handled
   * whose handling then failed), and how many are being handled now.
   */
  private readonly retries = new Set<Promise<void>>();
  private retrying = 0;
  /** Webhook deliveries answered before they were handled, being finished (see `handleWebhook`). */
  private readonly late = new Set<Promise<void>>();
  /** Suggestion posts under way in this process, by `planId|slot`: true once posted, false if not. */
  private readonly posting = new Map<string, Promise<boolean>>();
  /** Background edits of a plan's suggestions (see `scheduleRefresh`). */
  private readonly refreshing = new Map<
    string,
    { again: boolean; done: Promise<void>; watches: Set<EditWatch> }
  >();

  constructor(private readonly opts: AlertServiceOptions) {
    this.matchers = compileMatchers(opts.config.file.environments);
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silentLogger;
    this.surfaces = opts.surfaces ?? ALL_SURFACES;
    this.chatRetryMs = opts.chatRetryMs ?? 5_000;
  }

  /**
   * `handle` for alerts read from a chat message. A webhook sender retries a delivery that failed; a
   * chat message is not delivered again. So an alert whose suggestion could not be posted (the chat API
   * down, a Redis blip) is handled again here, in the background, after `chatRetryMs`, 4× and 16× that.
   * Handling again is safe: a suggestion that did go out meanwhile makes the retry a duplicate.
   */
  async handleChat(alerts: readonly NormalizedAlert[], origin: ChatOrigin): Promise<AlertResult[]> {
    const { results, again } = await this.tryOnce(alerts, origin, 0);
    if (again.length > 0) this.handleLater(again, origin, 1);
    return results;
  }

  /**
   * One try at alerts: the results, and the alerts to try again (posting failed, or a fault). Chat
   * alerts are tried one at a time (the alerts of a chat message are no group); a webhook delivery
   * (no `origin`) as a whole, as its sender would send it again.
   */
  private async tryOnce(
    alerts: readonly NormalizedAlert[],
    origin: ChatOrigin | undefined,
    retry: number,
  ): Promise<{ results: AlertResult[]; again: NormalizedAlert[] }> {
    // An alert may have several results (a resolution without environment, one per environment), and
    // it is tried again when any of them failed.
    const results: AlertResult[] = [];
    const again: NormalizedAlert[] = [];
    for (const batch of origin === undefined ? [alerts] : alerts.map((a) => [a])) {
      let mine: AlertResult[] | undefined;
      try {
        mine = await this.handle(batch, origin);
      } catch (e) {
        this.log.warn(
          { err: e, retry, source: batch[0]?.source, alerts: batch.map((a) => a.title) },
          `alerts: handling ${origin ? 'a chat alert' : 'a delivery'} failed`,
        );
      }
      if (mine === undefined || mine.some(retryable)) again.push(...batch);
      results.push(...(mine ?? []));
    }
    return { results, again };
  }

  private handleLater(
    alerts: readonly NormalizedAlert[],
    origin: ChatOrigin | undefined,
    retry: number,
  ): void {
    if (retry > CHAT_ALERT_RETRIES || this.closing.signal.aborted) {
      if (retry > CHAT_ALERT_RETRIES)
        this.log.warn(
          { alerts: alerts.map((a) => a.title) },
          `alerts: gave up suggesting for ${origin ? 'a chat alert' : 'a delivery answered before it was handled'}`,
        );
      return;
    }
    const task = (async () => {
      try {
        await this.clock.sleep(this.chatRetryMs * 4 ** (retry - 1), this.closing.signal);
      } catch {
        return; // closing
      }
      this.retrying += 1;
      try {
        const { again } = await this.tryOnce(alerts, origin, retry);
        if (again.length > 0) this.handleLater(again, origin, retry + 1);
      } finally {
        this.retrying -= 1;
      }
    })();
    this.retries.add(task);
    void task.finally(() => this.retries.delete(task));
  }

  /**
   * `handle` for a webhook delivery, answered within its sender's time (`ANSWER_BUDGET_MS`): a sender
   * that times out counts the delivery as failed and sends it again, and Sentry and PagerDuty turn a
   * webhook off after enough of them. What is handled by then is answered with its outcome; the
   * alerts still being handled (a chat post or the platform is slow) with outcome `pending`, and
   * finished in the background, at most MAX_LATE_DELIVERIES at a time (waited for by `idle` and
   * `close`). Its sender got a 2xx and will not retry it: a failure a retry may fix then is tried again
   * here, as for chat alerts (`handleChat`), until shutdown. Not when the answer already held such a
   * failure: the webhook answers that 503, and the sender sends the delivery again itself. A fault
   * before the answer throws, as `handle` does.
   */
  async handleWebhook(source: AlertSource, alerts: readonly NormalizedAlert[]): Promise<AlertResult[]> {
    return this.handleWithin(alerts, ANSWER_BUDGET_MS[source]);
  }

  /** `handleWebhook` with a time budget of `budgetMs`. */
  async handleWithin(alerts: readonly NormalizedAlert[], budgetMs: number): Promise<AlertResult[]> {
    if (alerts.length === 0) return [];
    if (this.late.size >= MAX_LATE_DELIVERIES) {
      this.log.warn(
        { late: this.late.size },
        'alerts: too many deliveries are still being handled after their answer; this one is answered once handled',
      );
      return this.handle(alerts);
    }
    const progress: Progress = { results: [], handled: 0, mapped: undefined };
    const work = this.handleInto(alerts, undefined, progress);
    // A fault before the answer is passed on (the sender is answered 503 and retries).
    const finished = work.then(() => true);
    const done = await within(this.clock, budgetMs, finished, false);
    if (done) return progress.results;
    // Answered now with what is known; the rest goes on. An answer holding a failure a retry may fix
    // is answered 503 by the webhook (`retryable`): its sender sends the whole delivery again, so
    // Switchyard does not retry it itself as well (it would be handled, and counted, once more).
    const senderRetries = progress.results.some(retryable);
    const answer = [
      ...progress.results,
      ...alerts.slice(progress.handled).map((alert, i): AlertResult => {
        const m = progress.mapped?.[progress.handled + i];
        return {
          title: alert.title,
          status: alert.status,
          ...(alert.fingerprint === undefined ? {} : { fingerprint: alert.fingerprint }),
          ...(m?.ok === true ? { environment: m.environment } : {}),
          outcome: AlertOutcome.pending,
          detail: senderRetries ? PENDING_SENDER_RETRIES_DETAIL : PENDING_DETAIL,
        };
      }),
    ];
    const task = work
      .then(
        (results) => {
          const failed = results.some(retryable);
          const again = failed && !senderRetries;
          this.log[failed ? 'warn' : 'info'](
            { alerts: results.map((r) => ({ title: r.title, outcome: r.outcome, detail: r.detail })) },
            again
              ? 'alerts: a delivery answered before it was handled failed; trying it again'
              : failed
                ? 'alerts: a delivery answered before it was handled failed; its sender was answered 503 and sends it again'
                : 'alerts: handled a delivery after its answer',
          );
          if (again) this.handleLater(alerts, undefined, 1);
        },
        (e: unknown) => {
          this.log.warn(
            { err: e, source: alerts[0]?.source, alerts: alerts.map((a) => a.title) },
            senderRetries
              ? 'alerts: a delivery answered before it was handled failed; its sender was answered 503 and sends it again'
              : 'alerts: a delivery answered before it was handled failed; trying it again',
          );
          if (!senderRetries) this.handleLater(alerts, undefined, 1);
        },
      )
      .finally(() => this.late.delete(task));
    this.late.add(task);
    return answer;
  }

  /**
   * Resolves once no chat-alert retry is running: each is done or parked on the clock (tests:
   * `await clock.advance(ms); await service.retriesSettled()`).
   */
  async retriesSettled(): Promise<void> {
    for (;;) {
      // let retries woken by the clock start before looking
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.retrying === 0) return;
      await Promise.race([...this.retries]);
    }
  }

  /**
   * Drops retries still waiting, and lets background work finish — edits of suggestions, deliveries
   * answered before they were handled — for at most `timeoutMs` (an edit left undone only leaves a
   * message listing fewer alerts; a delivery left unfinished keeps its incident claimed until its record
   * expires).
   */
  async close(timeoutMs = 5_000): Promise<void> {
    this.closing.abort();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.idle(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }

  /**
   * Handles alerts in order and says what happened to each: one result per alert, except a
   * resolution that names no environment (a Sentry issue webhook), which has one per environment it
   * resolved in. `origin` is the chat message they came from (suggestions are threaded under it).
   * Throws only for faults (Redis, the platform), after giving up any incident it had claimed, so a
   * retried delivery starts clean.
   *
   * `alerts` is one delivery. The members of an Alertmanager / Grafana group (one payload, one group
   * key) may span environments, and each environment has its own incident: a member that resolved
   * resolves its environment's incident only when no firing member of the payload maps to that
   * environment; otherwise it is answered `ignored` (the incident still fires there).
   *
   * Counts each alert given once in `switchyard_alerts_total` (a resolution without environment once
   * per environment it resolved in): a handled one with its outcome; when handling throws, the alert it
   * was handling and those after it, never handled, as `failed` (the caller's delivery fails as a whole,
   * and its sender retries it). Callers count nothing more for them.
   */
  async handle(alerts: readonly NormalizedAlert[], origin?: ChatOrigin): Promise<AlertResult[]> {
    if (alerts.length === 0) return [];
    return this.handleInto(alerts, origin, { results: [], handled: 0, mapped: undefined });
  }

  /** `handle`, telling `progress` how far it got as it goes (what `handleWithin` answers with). */
  private async handleInto(
    alerts: readonly NormalizedAlert[],
    origin: ChatOrigin | undefined,
    progress: Progress,
  ): Promise<AlertResult[]> {
    try {
      const slugs = await this.opts.platform.listEnvironments();
      const mapped = alerts.map((alert) => mapAlert(alert, slugs, this.matchers));
      progress.mapped = mapped;
      const stillFiring = new Set<string>();
      for (const [i, alert] of alerts.entries()) {
        const m = mapped[i];
        if (alert.status !== 'firing' || !m?.ok || !isGrouped(alert) || alert.fingerprint === undefined)
          continue;
        stillFiring.add(this.opts.dedupe.key(incidentOf(alert, m.environment)));
      }
      for (const [i, alert] of alerts.entries()) {
        const m = mapped[i] ?? mapAlert(alert, slugs, this.matchers);
        progress.results.push(...(await this.handleOne(alert, m, slugs, origin, stillFiring)));
        progress.handled = i + 1;
      }
      return progress.results;
    } catch (e) {
      // the alert being handled and those after it
      for (const alert of alerts.slice(progress.handled))
        this.opts.metrics?.alerts.inc({ source: alert.source, outcome: AlertOutcome.failed });
      throw e;
    }
  }

  /** Where suggestions for `environment` go (see the module header). */
  destinations(environment: string, origin?: ChatOrigin): SuggestionDestination[] {
    if (origin)
      return [
        { surface: origin.surface, channel: origin.channel, threadId: origin.threadId ?? origin.messageId },
      ];
    const channels = this.opts.config.file.environments[environment]?.channels;
    const env = this.opts.config.env;
    const wanted: Record<SurfaceName, string | undefined> = {
      slack: channels?.slack ?? env.SLACK_ALERT_CHANNEL,
      discord: channels?.discord ?? env.DISCORD_ALERT_CHANNEL,
      console: channels?.console ?? this.opts.defaultChannels?.console,
    };
    const out: SuggestionDestination[] = [];
    for (const surface of this.surfaces) {
      const channel = wanted[surface];
      if (channel) out.push({ surface, channel });
    }
    return out;
  }

  private finish(
    alert: NormalizedAlert,
    result: Omit<AlertResult, 'title' | 'status' | 'fingerprint'>,
  ): AlertResult {
    this.opts.metrics?.alerts.inc({ source: alert.source, outcome: result.outcome });
    return {
      title: alert.title,
      status: alert.status,
      ...(alert.fingerprint === undefined ? {} : { fingerprint: alert.fingerprint }),
      ...result,
    };
  }

  private async handleOne(
    alert: NormalizedAlert,
    mapped: MappingResult,
    slugs: readonly string[],
    origin: ChatOrigin | undefined,
    stillFiring: ReadonlySet<string>,
  ): Promise<AlertResult[]> {
    // A chat message saying a rule's query failed: answered as the webhook answers the same alert.
    if (alert.noEvidence !== undefined)
      return [this.finish(alert, { outcome: AlertOutcome.ignored, detail: alert.noEvidence })];
    // Some resolutions carry no environment (a Sentry issue webhook): the incident key finds it, in
    // every environment the incident alerted in (one Sentry issue spans environments). An alertMatchers
    // entry that happens to match its title does not place it: that is a guess, which would resolve
    // an environment the incident never alerted in while the one it did alert in keeps asking to roll
    // back. Only when the key is found nowhere does the matcher's environment answer (resolved_unknown
    // there). A group member is left to its own mapping: its group's firing members were placed the
    // same way, and decide whether its environment's incident still fires (see `handle`).
    const unplaced = !mapped.ok || (mapped.by === 'matcher' && !isGrouped(alert));
    if (unplaced && alert.status === 'resolved' && alert.fingerprint !== undefined) {
      const results: AlertResult[] = [];
      for (const environment of slugs) {
        const incident = incidentOf(alert, environment);
        if (await this.opts.dedupe.get(incident)) results.push(await this.resolve(alert, incident));
      }
      if (results.length > 0) return results;
    }
    if (!mapped.ok) return [this.finish(alert, { outcome: AlertOutcome.unmapped, detail: mapped.reason })];
    const environment = mapped.environment;
    const incident = incidentOf(alert, environment);
    if (alert.status === 'resolved') {
      if (isGrouped(alert) && stillFiring.has(this.opts.dedupe.key(incident))) {
        return [
          this.finish(alert, {
            environment,
            outcome: AlertOutcome.ignored,
            detail: `Other alerts of this group still fire in ${environment}: its incident resolves when none does.`,
          }),
        ];
      }
      return [await this.resolve(alert, incident)];
    }
    return [await this.handleFiring(alert, environment, incident, origin)];
  }

  private async handleFiring(
    alert: NormalizedAlert,
    environment: string,
    incident: IncidentKey,
    origin: ChatOrigin | undefined,
  ): Promise<AlertResult> {
    const claim = await this.opts.dedupe.claim(incident, this.clock.now());
    if (!claim.claimed) {
      const suggested = claim.record?.planId;
      let planIds = suggested === undefined ? [] : [suggested];
      // One read of the plan serves both the pointers and the answer's detail (a repeat is frequent:
      // Alertmanager's repeat_interval, Sentry's per-event webhooks); a failed read is only a detail.
      const read =
        suggested === undefined ? undefined : await this.opts.flow.get?.(suggested).catch(() => undefined);
      if (suggested !== undefined && claim.record?.alertId !== undefined) {
        // The incident follows the fresh plans made from its plan under other ids: the newest is the
        // suggestion it has now. (Only a detail: a failed read leaves it at the plan it was suggested
        // under.)
        if ((read?.replannedAs?.length ?? 0) > 0)
          planIds = await this.withReplans(suggested, async () => undefined)
            .then((plans) => plans.map((p) => p.planId))
            .catch((e: unknown) => {
              this.log.warn(
                { err: e, planId: suggested },
                'alerts: could not read the fresh plans of a plan',
              );
              return [suggested];
            });
        // A replaced record that lists this incident is kept while the incident keeps firing, so its
        // message still shows it resolved when it does (see `closeSuggestions`).
        for (const id of planIds) {
          await this.opts.dedupe
            .touchReplaced(id)
            .catch((e: unknown) =>
              this.log.warn({ err: e, planId: id }, 'alerts: could not keep a replaced plan record'),
            );
        }
      }
      const planId = planIds.at(-1);
      return this.finish(alert, {
        environment,
        outcome: AlertOutcome.deduplicated,
        detail: planId
          ? await this.duplicateDetail(planId, environment, planId === suggested ? read : undefined)
          : 'An earlier alert of this incident was already answered, and no suggestion was made for it then; none is made now.',
        ...(planId === undefined ? {} : { planId }),
      });
    }
    try {
      return await this.act(alert, environment, incident, origin);
    } catch (e) {
      await this.opts.dedupe.release(incident).catch(() => undefined);
      throw e;
    }
  }

  /**
   * What a repeat of an incident with a suggestion is told. A suggestion whose plan expired unclicked
   * offers nothing any more, and the incident is not suggested again while it keeps firing: say so,
   * and how to get the rollback back, rather than point at it as if it were waiting.
   */
  private async duplicateDetail(
    planId: string,
    environment: string,
    read?: Awaited<ReturnType<NonNullable<AlertFlow['get']>>>,
  ): Promise<string> {
    // The answer is only a detail: a failed read leaves it as it was, never fails the alert.
    const record = read ?? (await this.opts.flow.get?.(planId).catch(() => undefined));
    // Named by what it would do, as its message is titled: a plan id appears on no message.
    const p = record?.plan;
    const what =
      p === undefined
        ? 'This incident already has a suggestion'
        : `This incident already has a suggestion, to ${p.action === 'rollback' ? `roll back ${p.environment} to ${p.target.id}` : `promote ${p.target.id} on ${p.environment}`},`;
    const again = `/${p?.action ?? 'rollback'} ${environment}`;
    switch (record?.state) {
      case 'expired':
        return `${what} but its plan expired unused (nothing was switched): a fresh plan can be asked for with "Make a fresh plan" on its message or ${again}.`;
      case 'cancelled':
        return record.dismissedAt !== undefined
          ? `${what} but ${record.cancelledBy?.displayName ?? 'someone'} dismissed it: alerts of this incident do not suggest it again; ${again} still offers it.`
          : `${what} but ${record.cancelledBy?.displayName ?? 'someone'} cancelled it (nothing was switched); ${again} offers it again.`;
      case 'enqueued':
        return `${what} and it was confirmed: its switch is queued, running or done (its message follows it; /deployments ${environment} shows it).`;
      case 'stale':
        return `${what} but it is out of date (${environment} changed since): "Make a fresh plan" on its message, or ${again}.`;
      case undefined:
        return p === undefined ? `${what} (${planId}).` : `${what.slice(0, -1)}.`;
      default:
        return `${what.slice(0, -1)}: see its message.`;
    }
  }

  private async act(
    alert: NormalizedAlert,
    environment: string,
    incident: IncidentKey,
    origin: ChatOrigin | undefined,
  ): Promise<AlertResult> {
    const { dedupe, sink } = this.opts;
    const destinations = this.destinations(environment, origin);

    const active = await this.opts.jobs?.activeForEnvironment(environment);
    if (active) {
      let refs: MessageRef[] = [];
      if (sink.linkRunningJob && destinations.length > 0) {
        // One link per running job and place: alerts keep firing while the rollback runs, and a storm
        // of incidents would otherwise post a link each (far past a chat service's per-channel rate).
        const fresh = await this.claimPlaces('link', active.jobId, destinations, LINK_ONCE_MS);
        if (fresh.length > 0) {
          try {
            refs = await sink.linkRunningJob({ environment, alert, ...active, destinations: fresh });
          } catch (e) {
            this.log.warn({ err: e, environment }, 'alerts: could not post the running-job link');
            await this.releasePlaces('link', active.jobId, fresh);
          }
        }
      }
      await dedupe.complete(incident, {
        state: IncidentState.linked,
        refs,
        jobId: active.jobId,
        planId: active.planId,
      });
      return this.finish(alert, {
        environment,
        outcome: AlertOutcome.linkedJob,
        detail: `${environment} is already switching (job ${active.jobId}).`,
        jobId: active.jobId,
        planId: active.planId,
      });
    }

    const resent =
      alert.renotification === true ? RENOTIFICATION_REASON : this.resentLate(alert, environment);
    if (resent !== undefined) {
      // A re-notification claimed the incident: no record of it was left (expired after its latest
      // alert, or its first notification never came). A Datadog one's start time is when it was
      // re-sent, so correlating it would blame whatever went live shortly before that, long after the
      // alert began; an Alertmanager one's is the first notification's, already handled then. The
      // incident is kept (skipped): its further re-notifications stay quiet.
      await dedupe.complete(incident, { state: IncidentState.skipped });
      return this.finish(alert, { environment, outcome: AlertOutcome.noCorrelation, detail: resent });
    }

    // What is said of the alert, marked when it says its query returned nothing.
    const said = (sentence: string) =>
      alert.missingData === true ? `${sentence} ${MISSING_DATA_DETAIL}` : sentence;
    const snapshot = await this.opts.platform.snapshot(environment);
    const own = await this.opts.flow.ownRecord?.(snapshot);
    const correlation = correlate(
      snapshot,
      alert.startedAt,
      this.opts.config.file.alerts.correlationWindow,
      own,
    );
    switch (correlation.kind) {
      case 'none':
        await dedupe.complete(incident, { state: IncidentState.skipped });
        return this.finish(alert, {
          environment,
          outcome: AlertOutcome.noCorrelation,
          detail: correlation.reason,
        });
      case 'outside_window': {
        if (this.opts.config.file.alerts.outsideWindow === 'note' && destinations.length > 0) {
          // One note per deployment and place: every incident of a storm would say the same thing.
          const culprit = correlation.culprit.id;
          const fresh = await this.claimPlaces('note', culprit, destinations, NOTE_ONCE_MS);
          const input: SuggestionInput = {
            kind: 'note',
            environment,
            alert,
            sentence: said(correlation.sentence),
            correlation,
            destinations: fresh,
          };
          const posted =
            fresh.length === 0
              ? await dedupe
                  .complete(incident, { state: IncidentState.skipped })
                  .then(() => ({ ok: true }) as const)
              : await this.post(incident, input);
          if (!posted.ok) {
            // A note that may be in the channel keeps its places: another incident would post it again.
            if (posted.maybePosted !== true) await this.releasePlaces('note', culprit, fresh);
            return this.finish(alert, {
              environment,
              outcome: AlertOutcome.failed,
              detail: posted.detail,
              retry: posted.retry,
            });
          }
        } else {
          await dedupe.complete(incident, { state: IncidentState.skipped });
        }
        return this.finish(alert, {
          environment,
          outcome: AlertOutcome.outsideWindow,
          detail: said(correlation.sentence),
        });
      }
      case 'suggest': {
        if (destinations.length === 0) {
          await dedupe.complete(incident, { state: IncidentState.skipped });
          return this.finish(alert, {
            environment,
            outcome: AlertOutcome.noDestination,
            detail: `No alert channel for ${environment}: set environments.${environment}.channels or SLACK_ALERT_CHANNEL / DISCORD_ALERT_CHANNEL.`,
          });
        }
        const alertId = this.alertId(incident);
        const context: AlertContext = {
          id: alertId,
          source: alert.source,
          title: alert.title,
          ...(alert.fingerprint === undefined ? {} : { fingerprint: alert.fingerprint }),
          ...(alert.url === undefined ? {} : { url: alert.url }),
          startedAt: alert.startedAt,
          status: alert.status,
          ...(alert.missingData === true ? { missingData: true as const } : {}),
          suspectDeploymentId: correlation.culprit.id,
          suspectLiveSince: correlation.wentLiveAt,
        };
        // A plan that closed between being made and the alert joining it (confirmed, dismissed,
        // cancelled, expired at that instant) is asked for once more: a fresh plan, or the refusal.
        let posted: Awaited<ReturnType<AlertService['post']>> | undefined;
        let plan: Plan | undefined;
        for (let round = 0; posted === undefined; round++) {
          const planned = await this.opts.flow.plan(
            ALERT_ACTOR,
            'rollback',
            environment,
            correlation.target.id,
            { alert: context, unlessDismissed: true },
          );
          if (!planned.ok) {
            await dedupe.complete(incident, { state: IncidentState.skipped });
            return this.finish(alert, {
              environment,
              outcome:
                planned.refusal.code === RefusalCode.suggestionDismissed
                  ? AlertOutcome.dismissed
                  : AlertOutcome.refused,
              detail: planned.refusal.message,
            });
          }
          plan = planned.plan;
          const input: SuggestionInput = {
            kind: 'suggestion',
            environment,
            alert,
            sentence: said(correlation.sentence),
            plan,
            alertContext: context,
            correlation,
            destinations,
          };
          const grouped = await this.postGrouped(incident, input, plan.id, alertId, context);
          if (grouped !== 'closed') posted = grouped ?? (await this.post(incident, input));
          // Closed again (confirmed: the plan asked for again is its switch, whose job edits what shows
          // it): post as before.
          else if (round > 0) posted = await this.post(incident, input);
        }
        if (plan === undefined) throw new Error('unreachable: a plan was made');
        if (!posted.ok) {
          return this.finish(alert, {
            environment,
            outcome: AlertOutcome.failed,
            detail: posted.detail,
            planId: plan.id,
            retry: posted.retry,
          });
        }
        if ('dismissed' in posted && posted.dismissed === true) {
          return this.finish(alert, {
            environment,
            outcome: AlertOutcome.dismissed,
            detail: `Someone dismissed the suggestion to roll back to ${correlation.target.id} here (${plan.id}); this alert is listed on it but not shown.`,
            planId: plan.id,
          });
        }
        if (posted.grouped === true) {
          return this.finish(alert, {
            environment,
            outcome: AlertOutcome.grouped,
            detail: said(
              `Added to the open suggestion to roll back to ${correlation.target.id} (${plan.id}).`,
            ),
            planId: plan.id,
          });
        }
        return this.finish(alert, {
          environment,
          outcome: AlertOutcome.suggested,
          detail: said(correlation.sentence),
          planId: plan.id,
        });
      }
      default:
        return assertNever(correlation, 'correlation');
    }
  }

  /**
   * The plan an incident was suggested under and the fresh plans made from it under other ids since
   * ("Make a fresh plan" after the platform moved: `AlertFlow.replannedAs`), and from those in turn,
   * oldest first, at most REPLAN_HOPS plans. `visit` runs on each plan before its pointers are read:
   * a resolution marks a plan first, so a fresh plan made meanwhile either is found here or finds the
   * resolution on the plan it was made from (Flow's `followedBy` reads it after writing its pointer).
   */
  private async withReplans<T>(
    planId: string,
    visit: (planId: string) => Promise<T>,
  ): Promise<{ readonly planId: string; readonly value: T }[]> {
    const out: { planId: string; value: T }[] = [];
    const todo = [planId];
    const seen = new Set<string>();
    for (let id = todo.shift(); id !== undefined && out.length < REPLAN_HOPS; id = todo.shift()) {
      if (seen.has(id)) continue;
      seen.add(id);
      out.push({ planId: id, value: await visit(id) });
      todo.push(...((await this.opts.flow.replannedAs?.(id)) ?? []));
    }
    return out;
  }

  /**
   * Why a grouped alert (Alertmanager, Grafana) that claimed its incident is taken as a re-notification:
   * it started longer ago than an incident record lives. Such a sender re-sends a group that keeps
   * firing every `repeat_interval` with its first start time, and a record lives `incidentTtlMs` after
   * the incident's latest alert; so a group seen before and re-sent after its record expired is
   * always this old, and would otherwise be suggested a second time. (An alert first delivered this
   * late, after the sender could not reach Switchyard for that long, is taken as one too.) Undefined
   * for any other alert.
   */
  private resentLate(alert: NormalizedAlert, environment: string): string | undefined {
    const age = this.clock.now() - alert.startedAt;
    const lifetime = this.opts.dedupe.incidentTtlMs;
    if (!isGrouped(alert) || age <= lifetime) return undefined;
    const sender = alert.source === 'grafana' ? 'Grafana' : 'Alertmanager';
    return `This alert started ${describeGap(age)} ago, longer than an incident is remembered (${describeGap(lifetime)} after its latest alert): ${sender} re-sends a group that keeps firing with its first start time, so this is taken as a re-notification of an incident handled then, and no deployment is blamed for it now. /rollback ${environment} if one is needed.`;
  }

  /**
   * Whether one of these plans counts alerts only as an estimate (`alertsUntracked`): an incident it
   * does not track one by one may be among them. A plan that cannot be read is not one.
   */
  private async estimatedOn(planIds: readonly string[]): Promise<boolean> {
    for (const id of planIds) {
      const plan = await this.opts.flow.get?.(id).catch(() => undefined);
      if ((plan?.alertsUntracked ?? 0) > 0) return true;
    }
    return false;
  }

  /** How long an incident's record lives, in words (what keeps deduplicating its alerts). */
  private recordLife(incident: IncidentKey): string {
    return incident.fingerprint
      ? `${describeGap(this.opts.dedupe.incidentTtlMs)} after its latest alert`
      : "the window its environment's alerts without a fingerprint share";
  }

  /** The incident's id in a plan's alert list: stable per incident, bounded, any characters. */
  private alertId(incident: IncidentKey): string {
    return createHash('sha256').update(this.opts.dedupe.key(incident)).digest('base64url').slice(0, 16);
  }

  /**
   * Storm control across incidents: lists the alert on its plan and posts a suggestion only where the
   * plan has none yet (per destination slot); where it has one, that message is edited (in the
   * background, see `scheduleRefresh`) to list this alert too. `closed` when the plan is not open any
   * more; undefined when it cannot list alerts (a Flow or sink without it): the caller posts as before.
   */
  private async postGrouped(
    incident: IncidentKey,
    input: SuggestionInput,
    planId: string,
    alertId: string,
    context: AlertContext,
  ): Promise<{ ok: true; grouped: boolean; dismissed?: boolean } | FailedPost | 'closed' | undefined> {
    const { flow, sink, dedupe } = this.opts;
    if (!flow.groupAlert || !flow.suggestionPosted || !flow.releaseSuggestion || !sink.refresh)
      return undefined;
    const slots = input.destinations.map(suggestionSlot);
    let group = await flow.groupAlert(planId, alertId, context, slots);
    if (group === undefined) return 'closed';
    // A slot this process is posting to right now: wait for that post. If it failed, the slot is free
    // again and this alert claims it (its list includes the alert that failed to post, until that one's
    // sender retries).
    const inflight = group.slots.flatMap((s) =>
      !s.claimed && s.suggestion.ref === undefined ? (this.posting.get(`${planId}|${s.slot}`) ?? []) : [],
    );
    if (inflight.length > 0) {
      await Promise.all(inflight);
      // Read the slots again: the message that post made, or the slot it freed (claimed now).
      const again = await flow.groupAlert(planId, alertId, context, slots);
      if (again === undefined) return 'closed';
      group = again;
    }
    const claimed = input.destinations.filter((_, i) => group.slots[i]?.claimed === true);
    const others = group.slots.flatMap((s) => (s.claimed ? [] : [s.suggestion]));
    // Messages that show this alert once edited (a dismissed one no longer shows the plan's alerts).
    const listed: ListedMessage[] = input.destinations.flatMap((destination, i) => {
      const s = group.slots[i];
      return s?.claimed === false && s.suggestion.ref !== undefined && s.suggestion.dismissed !== true
        ? [{ destination, ref: s.suggestion.ref }]
        : [];
    });
    let existing = listed.map((l) => l.ref);
    let refs: MessageRef[] = [];
    let changed = false;
    let failure: unknown;
    if (claimed.length > 0) {
      const settle = this.registerPosts(planId, claimed);
      const recorded = new Set<string>();
      try {
        try {
          refs = await sink.suggest({ ...input, alertId, destinations: claimed });
        } catch (e) {
          failure = e;
        }
        // A sink posts one message per destination; a surface that failed while another posted (see
        // compositeSink) leaves its destination without one: free it for the next alert.
        const posted = postedBySlot(claimed, refs);
        for (const d of claimed) {
          const slot = suggestionSlot(d);
          const ref = posted.get(slot);
          if (ref === undefined) continue;
          await flow.attachMessage?.(planId, ref);
          const version = await flow.suggestionPosted(planId, slot, alertId, ref);
          recorded.add(slot);
          // Another alert joined while this one was being posted: the message shows an older list.
          if (version !== undefined && version !== group.version) changed = true;
        }
      } finally {
        // Whatever happened (a Redis blip included), a slot left without its message is freed (else it
        // would wait for its lease), and whoever waits on this post learns how it went.
        for (const d of claimed) {
          const slot = suggestionSlot(d);
          if (!recorded.has(slot)) await flow.releaseSuggestion(planId, slot).catch(() => undefined);
          settle(slot, recorded.has(slot));
        }
      }
    }
    if (listed.length > 0) {
      // A message recorded in a place is not yet a place where the alert is shown: it may have been
      // deleted, or be in a channel or workspace this bot no longer reaches (SLACK_BOT_TOKEN swapped
      // for another workspace's with the channel named alike). Each edit of it would be refused, and
      // the alert, answered `grouped`, shown nowhere. So the alert waits for an edit of each (shared
      // with the other alerts joining meanwhile; one listing it follows) and posts afresh where the chat
      // service refused it for good; a transient failure (5xx, rate limit) leaves the message as it is.
      // Bounded: a sender waits for its answer (Alertmanager's webhook times out after 10 s, then
      // sends again); an edit still under way then (Slack rate limiting it) goes on in the background,
      // and a message it finds gone is posted again by the next alert that joins.
      const gone = await within(this.clock, GROUPED_EDIT_WAIT_MS, this.editNow(planId, existing), NONE_GONE);
      const lost = listed.filter((l) => gone.has(refKey(l.ref)));
      if (lost.length > 0) {
        existing = existing.filter((r) => !gone.has(refKey(r)));
        const again = await this.repost(planId, input, alertId, group.version, lost);
        refs = [...refs, ...again.refs];
        existing = [...existing, ...again.shown];
        failure ??= again.failure;
        changed ||= again.changed;
      }
    }
    if (failure !== undefined) {
      this.log.warn(
        { err: failure, environment: input.environment },
        'alerts: could not post the suggestion',
      );
    }
    const shown = refs.length + existing.length;
    if (shown === 0 && claimed.length === 0 && others.some((s) => s.dismissed === true)) {
      // Every message of this rollback in these places was dismissed: the alert is listed on the plan
      // (its other messages, if any, show it) but nothing here shows it.
      await dedupe.complete(incident, { state: IncidentState.skipped, planId, alertId });
      return { ok: true, grouped: false, dismissed: true };
    }
    if (shown === 0 && failure !== undefined && mayHavePosted(failure)) {
      // The post may be in the channel all the same (Slack did not answer it): the incident stays
      // claimed and listed on the plan, so a later notification of it does not post it a second time;
      // its slot was freed above (no message is known there), for another incident to post in.
      const { resolvedMeanwhile } = await dedupe.complete(incident, {
        state: IncidentState.skipped,
        planId,
        alertId,
      });
      if (resolvedMeanwhile) await this.resolvedWhilePosting(incident, planId, alertId);
      return maybePostedFailed(failure, resolvedMeanwhile, this.recordLife(incident));
    }
    if (shown === 0) {
      // Shown nowhere (the post failed, or another replica is still posting, or died doing it): the
      // alert leaves the plan's list, and its sender is asked to try again.
      await flow.unlistAlert?.(planId, alertId);
      const { resolvedMeanwhile } = await dedupe.release(incident);
      const e =
        failure ??
        new Error(
          claimed.length === 0
            ? // Taken by a post under way: another replica's alert, or the answer to a "Make a fresh
              // plan" click (its claim looks the same).
              'the suggestion is still being posted (by another Switchyard, or as the answer to a "Make a fresh plan" click); try again'
            : 'no message was posted',
        );
      return postFailed(e, resolvedMeanwhile);
    }
    // Messages of the plan other than the ones just posted (here or in other places) list this alert
    // too (the edit `editNow` waited for already does); so do those posted while another alert joined.
    if ((listed.length === 0 && group.total > claimed.length) || changed) this.scheduleRefresh(planId);
    const { resolvedMeanwhile } = await dedupe.complete(incident, {
      state: IncidentState.posted,
      refs: [...refs, ...existing],
      sentence: input.sentence,
      planId,
      alertId,
    });
    if (resolvedMeanwhile) await this.resolvedWhilePosting(incident, planId, alertId);
    return { ok: true, grouped: refs.length === 0 };
  }

  /**
   * Posts the suggestion afresh in the places whose message the chat service refused for good (`lost`):
   * such a message shows no alert. One caller posts per lost message, across replicas and this
   * process's alerts alike (`claimPost` on that message, for the claim lease, on Redis's clock), and
   * only while its slot still records it; the new message then replaces it in the slot. The others
   * wait for this process's post, if it is one, and read the slot again: the alert is shown on the
   * message there now, if any (else not here: another replica is still posting, and the sender is asked
   * to try again). `refs`: the messages posted; `shown`: the messages others posted meanwhile;
   * `changed`: those show an older list than the plan's (edit them again).
   */
  private async repost(
    planId: string,
    input: SuggestionInput,
    alertId: string,
    version: number,
    lost: readonly ListedMessage[],
  ): Promise<{ refs: MessageRef[]; shown: MessageRef[]; failure?: unknown; changed: boolean }> {
    const { flow, sink, dedupe } = this.opts;
    const shown: MessageRef[] = [];
    const mine: ListedMessage[] = [];
    let changed = false;
    const claimOf = (l: ListedMessage) => `${planId}|${refKey(l.ref)}`;
    // What a slot records now: another message than the lost one shows the alert once edited. (A Flow
    // that cannot say is taken to record the lost one still.)
    const current = async (
      l: ListedMessage,
    ): Promise<Pick<PlanSuggestion, 'ref' | 'dismissed'> | undefined> => {
      if (flow.get === undefined) return { ref: l.ref };
      const record = await flow.get(planId);
      return record?.suggestions?.find((s) => s.slot === suggestionSlot(l.destination));
    };
    for (const l of lost) {
      const slot = suggestionSlot(l.destination);
      this.log.warn(
        { planId, slot, ref: l.ref },
        'alerts: the chat service refused to edit the suggestion for good (deleted, or out of reach): posting it again',
      );
      const key = `${planId}|${slot}`;
      const claimedHere = await dedupe.claimPost('repost', claimOf(l), slot, SUGGESTION_CLAIM_LEASE_MS);
      if (!claimedHere) await this.posting.get(key);
      const now = await current(l);
      if (now?.ref !== undefined && now.dismissed !== true && refKey(now.ref) !== refKey(l.ref)) {
        // Posted again by another alert (here or on another replica) meanwhile.
        shown.push(now.ref);
        changed = true;
      } else if (claimedHere && now?.ref !== undefined && now.dismissed !== true) {
        mine.push(l);
      } else if (claimedHere) {
        // No message to replace there now (dismissed meanwhile, or the record was made again).
        await dedupe.releasePost('repost', claimOf(l), slot).catch(() => undefined);
      }
    }
    if (mine.length === 0 || !flow.suggestionPosted) return { refs: [], shown, changed };
    const destinations = mine.map((l) => l.destination);
    const settle = this.registerPosts(planId, destinations);
    let refs: MessageRef[] = [];
    let failure: unknown;
    const recorded = new Set<string>();
    try {
      try {
        refs = await sink.suggest({ ...input, alertId, destinations });
      } catch (e) {
        failure = e;
      }
      const posted = postedBySlot(destinations, refs);
      for (const l of mine) {
        const slot = suggestionSlot(l.destination);
        const ref = posted.get(slot);
        if (ref === undefined) continue;
        recorded.add(slot);
        await flow.attachMessage?.(planId, ref);
        const now = await flow.suggestionPosted(planId, slot, alertId, ref);
        if (now !== undefined && now !== version) changed = true;
      }
    } finally {
      for (const l of mine) {
        const slot = suggestionSlot(l.destination);
        // Not posted: the next alert tries again.
        if (!recorded.has(slot)) await dedupe.releasePost('repost', claimOf(l), slot).catch(() => undefined);
        settle(slot, recorded.has(slot));
      }
    }
    return { refs, shown, changed, ...(failure === undefined ? {} : { failure }) };
  }

  /**
   * Registers this process's posts of a plan's suggestions in `destinations` (`posting`: an alert that
   * joins meanwhile waits for them). The returned `settle` tells a slot's waiters whether its message
   * was recorded, and forgets the post.
   */
  private registerPosts(
    planId: string,
    destinations: readonly SuggestionDestination[],
  ): (slot: string, posted: boolean) => void {
    const done = new Map<string, { promise: Promise<boolean>; resolve: (posted: boolean) => void }>();
    for (const d of destinations) {
      let resolve!: (posted: boolean) => void;
      const promise = new Promise<boolean>((r) => {
        resolve = r;
      });
      const key = `${planId}|${suggestionSlot(d)}`;
      done.set(key, { promise, resolve });
      this.posting.set(key, promise);
    }
    return (slot, posted) => {
      const key = `${planId}|${slot}`;
      const entry = done.get(key);
      entry?.resolve(posted);
      if (this.posting.get(key) === entry?.promise) this.posting.delete(key);
    };
  }

  /**
   * Edits a plan's suggestion messages in the background, at most one run per plan at a time: a change
   * while one runs makes it run once more, so a storm of alerts makes a few edits, not one per alert.
   * (The sink's `refresh` itself edits again when the plan changes under an edit, which covers other
   * replicas.) With `watch`, the caller hears how its messages' next edits went (see `editNow`).
   */
  private scheduleRefresh(planId: string, watch?: EditWatch): void {
    const running = this.refreshing.get(planId);
    if (running) {
      running.again = true;
      if (watch) running.watches.add(watch);
      return;
    }
    const entry = {
      again: true,
      done: Promise.resolve(),
      watches: new Set<EditWatch>(watch === undefined ? [] : [watch]),
    };
    // A watch learns how each of its messages' next edit went, and ends with the first run that started
    // after it at the latest (a message that run did not edit is not the plan's any more, or not shown).
    const edited = (ref: MessageRef, failure?: unknown) => {
      const key = refKey(ref);
      for (const w of entry.watches) {
        if (!w.pending.delete(key)) continue;
        if (isPermanentChatError(failure)) w.gone.add(key);
        if (w.pending.size === 0) {
          entry.watches.delete(w);
          w.settle(w.gone);
        }
      }
    };
    entry.done = (async () => {
      try {
        while (entry.again) {
          entry.again = false;
          const covered = [...entry.watches];
          await this.refreshLogged(planId, { edited });
          for (const w of covered) {
            entry.watches.delete(w);
            w.settle(w.gone);
          }
        }
      } finally {
        for (const w of entry.watches) w.settle(w.gone);
        this.refreshing.delete(planId);
      }
    })();
    this.refreshing.set(planId, entry);
  }

  /**
   * Edits the plan's suggestion messages now, as `scheduleRefresh` does (one run per plan at a time, a
   * storm's edits shared), and resolves once each of `refs` was edited after this call (or the run
   * that started after it ended without editing it), with those the chat service refused for good.
   */
  private editNow(planId: string, refs: readonly MessageRef[]): Promise<ReadonlySet<string>> {
    return new Promise((settle) => {
      this.scheduleRefresh(planId, { pending: new Set(refs.map(refKey)), gone: new Set(), settle });
    });
  }

  /**
   * Shows a plan's suggestions as they must be now, in the background (a click closed the plan: its
   * suggestions on other surfaces say so too).
   */
  refreshSuggestions(planId: string): void {
    this.scheduleRefresh(planId);
  }

  /**
   * Shows the suggestions of a plan record a new request replaced closed, in the background (Flow's
   * `onPlanReplaced`).
   */
  closeSuggestions(old: PlanRecord): void {
    const close = this.opts.sink.close;
    if (close === undefined) return;
    const key = `replaced:${old.plan.id}:${old.createdAt}`;
    if (this.refreshing.has(key)) return;
    const entry = { again: false, done: Promise.resolve(), watches: new Set<EditWatch>() };
    entry.done = (async () => {
      // The new record does not list the old one's alerts: keep the old record, so an alert of it that
      // resolves later shows resolved on these closed messages (`resolve`). A confirmed plan's messages
      // show its switch, and a later RESOLVED leaves those alone anyway.
      const listed = old.state !== 'enqueued' && (old.alerts?.length ?? 0) > 0;
      const kept = listed
        ? await this.opts.dedupe.keepReplaced(old).catch((e: unknown) => {
            this.log.warn({ err: e, planId: old.plan.id }, 'alerts: could not keep a replaced plan record');
            return undefined;
          })
        : undefined;
      await (kept === undefined ? close(old) : this.closeReplaced(old.plan.id, kept, old));
    })()
      .catch((e: unknown) =>
        this.log.warn({ err: e, planId: old.plan.id }, 'alerts: could not close a replaced suggestion'),
      )
      .finally(() => this.refreshing.delete(key));
    this.refreshing.set(key, entry);
  }

  /**
   * Shows the messages of a replaced plan record (kept under `id` by `keepReplaced`) closed, with its
   * alerts' resolutions since. A resolution that lands while the edit is under way (another incident of
   * the record, or the edit made on replacing it) makes it edit again, so the last edit shows every
   * resolution. Throws when an edit failed.
   */
  private async closeReplaced(planId: string, id: string, fallback?: PlanRecord): Promise<void> {
    const close = this.opts.sink.close;
    if (close === undefined) return;
    let seen = await this.opts.dedupe.replaced(planId, id);
    if (seen === undefined) {
      if (fallback !== undefined) await close(fallback);
      return;
    }
    for (let round = 0; round < REPLACED_EDIT_ROUNDS; round++) {
      await close(seen.record);
      // The read after an edit is the next round's record: nothing to read twice.
      const now = await this.opts.dedupe.replaced(planId, id);
      if (now === undefined || now.stamp === seen.stamp) return;
      seen = now;
    }
  }

  /**
   * Resolves once no background edit of a suggestion is running, nor a webhook delivery answered before
   * it was handled (tests; shutdown).
   */
  async idle(): Promise<void> {
    while (this.refreshing.size > 0 || this.late.size > 0)
      await Promise.all([...[...this.refreshing.values()].map((r) => r.done), ...this.late]);
  }

  /**
   * Renders a plan's suggestion messages again (see SuggestionSink.refresh; `alertId`: the alert that
   * changed, whose own thread suggestion of an older record, see `suggestionSlot`, is edited too).
   * Throws when an edit failed.
   */
  private async refresh(planId: string, opts: RefreshOptions = {}): Promise<void> {
    await this.opts.sink.refresh?.(planId, opts);
  }

  /** `refresh`, with a failed edit logged (the next change of the list edits again). */
  private async refreshLogged(planId: string, opts: RefreshOptions = {}): Promise<boolean> {
    try {
      await this.refresh(planId, opts);
      return true;
    } catch (e) {
      this.log.warn({ err: e, planId }, 'alerts: could not edit the suggestion');
      return false;
    }
  }

  /**
   * Marks a listed alert resolved and edits the plan's suggestions. Undefined when the plan does not
   * list it (gone, or made before alerts were listed); else whether the edit landed.
   */
  private async resolveListed(planId: string, alertId: string): Promise<boolean | undefined> {
    const state = await this.opts.flow.resolveAlert?.(planId, alertId, this.clock.now());
    if (state === undefined) return undefined;
    return this.refreshLogged(planId, { alertId });
  }

  /** The destinations where this process claimed posting the `kind` message about `id` (see claimPost). */
  private async claimPlaces(
    kind: string,
    id: string,
    destinations: readonly SuggestionDestination[],
    ttlMs: number,
  ): Promise<SuggestionDestination[]> {
    const fresh: SuggestionDestination[] = [];
    for (const d of destinations) {
      if (await this.opts.dedupe.claimPost(kind, id, suggestionSlot(d), ttlMs)) fresh.push(d);
    }
    return fresh;
  }

  /** Gives `claimPlaces` claims back after a failed post: the next alert tries again. */
  private async releasePlaces(
    kind: string,
    id: string,
    destinations: readonly SuggestionDestination[],
  ): Promise<void> {
    for (const d of destinations) {
      await this.opts.dedupe.releasePost(kind, id, suggestionSlot(d)).catch(() => undefined);
    }
  }

  /** Posts a suggestion or note, records it on the incident, and applies a RESOLVED that raced it. */
  private async post(
    incident: IncidentKey,
    input: SuggestionInput,
  ): Promise<{ ok: true; grouped?: boolean } | FailedPost> {
    let refs: MessageRef[];
    try {
      refs = await this.opts.sink.suggest(input);
    } catch (e) {
      this.log.warn({ err: e, environment: input.environment }, 'alerts: could not post the suggestion');
      if (mayHavePosted(e)) {
        // It may be in the channel: kept claimed, so a later notification of the incident does not
        // post it a second time.
        const planId = input.plan?.id;
        const { resolvedMeanwhile } = await this.opts.dedupe.complete(incident, {
          state: IncidentState.skipped,
          ...(planId === undefined ? {} : { planId }),
        });
        return maybePostedFailed(e, resolvedMeanwhile, this.recordLife(incident));
      }
      const { resolvedMeanwhile } = await this.opts.dedupe.release(incident);
      return postFailed(e, resolvedMeanwhile);
    }
    const planId = input.plan?.id;
    if (planId !== undefined && this.opts.flow.attachMessage) {
      for (const ref of refs) await this.opts.flow.attachMessage(planId, ref);
    }
    const { resolvedMeanwhile } = await this.opts.dedupe.complete(incident, {
      state: IncidentState.posted,
      refs,
      sentence: input.sentence,
      ...(planId === undefined ? {} : { planId }),
    });
    if (resolvedMeanwhile) {
      // The RESOLVED that raced the post was already answered; if this edit fails, the record says so
      // and a repeated RESOLVED edits again.
      let edited = true;
      if (refs.length > 0) {
        try {
          await this.opts.sink.resolved(refs, {
            environment: input.environment,
            alert: { ...input.alert, status: 'resolved' },
            sentence: input.sentence,
            ...(planId === undefined ? {} : { planId }),
          });
        } catch (e) {
          edited = false;
          this.log.warn({ err: e }, 'alerts: could not mark the suggestion resolved');
        }
      }
      await this.recordResolvedEdit(incident, edited);
    }
    return { ok: true };
  }

  /** The incident resolved while its suggestion was being posted: its listing is marked resolved. */
  private async resolvedWhilePosting(incident: IncidentKey, planId: string, alertId: string): Promise<void> {
    await this.recordResolvedEdit(incident, (await this.resolveListed(planId, alertId)) === true);
  }

  /** Records whether the incident's resolved edit landed; a failure to record it is only logged. */
  private async recordResolvedEdit(incident: IncidentKey, edited: boolean): Promise<void> {
    await this.opts.dedupe
      .resolvedEdited(incident, edited)
      .catch((e: unknown) => this.log.warn({ err: e }, 'alerts: could not record the resolved edit'));
  }

  private async resolve(alert: NormalizedAlert, incident: IncidentKey): Promise<AlertResult> {
    const environment = incident.environment;
    const record = await this.opts.dedupe.resolve(incident, this.clock.now());
    if (!record) {
      return this.finish(alert, {
        environment,
        outcome: AlertOutcome.resolvedUnknown,
        detail: 'No open suggestion for this incident.',
      });
    }
    const suggested = record.planId;
    let planState: string | undefined;
    let replaced: readonly string[] = [];
    let estimated = false;
    // The plan the incident's suggestion is now on: the one it was suggested under, or the newest fresh
    // plan made from it under another id (the platform moved before "Make a fresh plan" was clicked).
    let planId = suggested;
    // Still being posted: the claimant edits the suggestion as soon as it exists (see `post`).
    if (record.state !== IncidentState.pending) {
      // A plan that lists its alerts marks this one and renders its suggestions again; a suggestion
      // recorded before plans listed alerts (or a note) is edited through its message refs.
      // The plan was made again since (a new record under the same id): the incident's messages
      // include those of the old record, shown closed when it was replaced. They show the old record
      // again, this alert marked resolved; never the new record, whose buttons would land on a message
      // that said the plan was closed. The new record lists the alert too when it was made with "Make
      // a fresh plan" (Flow.replan): then its suggestion is edited as well. So is that of a fresh plan
      // made after the platform moved, under another id (`withReplans`), and the closed one's.
      const alertId = record.alertId;
      const now = this.clock.now();
      const plans =
        suggested !== undefined && alertId !== undefined
          ? await this.withReplans(suggested, async (id) => ({
              state: await this.opts.flow.resolveAlert?.(id, alertId, now),
              replaced: await this.opts.dedupe.resolveReplaced(id, alertId, now),
            }))
          : [];
      const listing = plans.filter((p) => p.value.state !== undefined);
      const current = listing.at(-1);
      planState = current?.value.state;
      if (current !== undefined) planId = current.planId;
      replaced = plans.flatMap((p) => p.value.replaced);
      // Not on any plan's list nor counted by id: it may be one a plan only estimates (past its first
      // alerts), whose resolution is not tracked; that plan was not made again, so say which it is.
      if (alertId !== undefined && listing.length === 0 && replaced.length === 0)
        estimated = await this.estimatedOn(plans.map((p) => p.planId));
      // Only a suggestion recorded before plans listed their alerts is edited through its refs: those
      // messages may now show other incidents' alerts (or a plan made again under the same id).
      const legacy = alertId === undefined;
      const edits = [
        // (listing is empty without alertId: plans are only walked with one)
        ...(alertId === undefined ? [] : listing.map((p) => () => this.refresh(p.planId, { alertId }))),
        ...plans.flatMap((p) => p.value.replaced.map((id) => () => this.closeReplaced(p.planId, id))),
      ];
      const edit =
        edits.length > 0
          ? async () => {
              // Every message is tried; the first failure is thrown at the end.
              const failures: unknown[] = [];
              for (const one of edits) await one().catch((e: unknown) => failures.push(e));
              if (failures.length > 0) throw failures[0];
            }
          : legacy && record.refs.length > 0
            ? () =>
                this.opts.sink.resolved(record.refs, {
                  environment,
                  alert,
                  ...(suggested === undefined ? {} : { planId: suggested }),
                  ...(record.sentence === undefined ? {} : { sentence: record.sentence }),
                })
            : undefined;
      try {
        await edit?.();
      } catch (e) {
        this.log.warn({ err: e, environment }, 'alerts: could not mark the suggestion resolved');
        // Leaves the edit to the sender's retry (a 503 for a webhook, `handleChat` for chat).
        await this.opts.dedupe.resolvedEdited(incident, false);
        return this.finish(alert, {
          environment,
          outcome: AlertOutcome.failed,
          detail: `Editing the suggestion failed: ${errorText(e)}`,
          ...(planId === undefined ? {} : { planId }),
          retry: !isPermanentChatError(e),
        });
      }
      await this.opts.dedupe.resolvedEdited(incident, true);
    }
    return this.finish(alert, {
      environment,
      outcome: AlertOutcome.resolved,
      detail:
        record.state === IncidentState.pending
          ? 'Resolved while the suggestion was being posted; it will say so.'
          : planState === 'enqueued'
            ? 'Resolved. The suggestion was confirmed: its message shows the switch.'
            : planState !== undefined
              ? 'The suggestion now lists the alert as resolved.'
              : replaced.length > 0
                ? 'Resolved. Its suggestion was closed (the plan was made again since); it now shows the alert resolved.'
                : estimated
                  ? `Resolved. Its suggestion counts the alerts beyond its first ${MAX_ALERTS_PER_PLAN + MAX_COUNTED_ALERTS_PER_PLAN} only as an estimate, without their resolutions, so nothing was edited.`
                  : record.alertId !== undefined
                    ? 'Resolved; its suggestion is closed (the plan was made again since), so nothing was edited.'
                    : record.refs.length > 0
                      ? 'The suggestion now says the alert resolved.'
                      : 'Resolved; Switchyard knows of no message of it to edit.',
      ...(planId === undefined ? {} : { planId }),
    });
  }
}

/** How many times a replaced record's messages are edited again while its alerts keep resolving. */
const REPLACED_EDIT_ROUNDS = 10;

/**
 * How many plans an incident follows (the plan it was suggested under and fresh plans made from it
 * under other ids, see `withReplans`): each "Make a fresh plan" after the platform moved adds one.
 */
const REPLAN_HOPS = 10;

/** A failure that trying again may fix (the webhook answers it 503: its sender retries). */
function retryable(r: AlertResult): boolean {
  return r.outcome === AlertOutcome.failed && r.retry !== false;
}

/** A suggestion or note that could not be posted (see `postFailed`, `maybePostedFailed`). */
interface FailedPost {
  readonly ok: false;
  readonly detail: string;
  readonly retry: boolean;
  /** It may have been posted all the same: the incident stays claimed. */
  readonly maybePosted?: true;
}

/**
 * Whether a failed post may have gone through all the same: the error, or one it wraps (`cause`: a
 * PermanentChatError wraps the poster's error), says `maybePosted: true`, as the Slack poster's
 * SlackPostError does when Slack did not answer the post or answered `internal_error` / `fatal_error`.
 * Slack has no idempotency key for posts, so such a post is never made again: not by a retry, nor for
 * a later notification of the same incident.
 */
function mayHavePosted(e: unknown): boolean {
  let at: unknown = e;
  for (let depth = 0; depth < 5 && typeof at === 'object' && at !== null; depth++) {
    if ((at as { maybePosted?: unknown }).maybePosted === true) return true;
    at = (at as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * The answer to a firing alert whose suggestion may have been posted although its post failed (see
 * `mayHavePosted`): not retried, and its incident stays claimed while its record lives (`life`, in
 * words), so its later notifications are deduplicated.
 */
function maybePostedFailed(e: unknown, resolvedMeanwhile: boolean, life: string): FailedPost {
  if (resolvedMeanwhile) return { ...postFailed(e, true), maybePosted: true };
  return {
    ok: false,
    detail: `Posting the suggestion failed: ${errorText(e)}. The incident stays claimed so that it is not posted a second time: its later notifications are answered deduplicated while its record lives (${life}).`,
    retry: false,
    maybePosted: true,
  };
}

/**
 * The answer to a firing alert whose suggestion could not be posted: its sender is asked to retry
 * (unless the chat service refused for good), except when the incident resolved while it was being
 * posted: a retry would offer a rollback for an incident that is over.
 */
function postFailed(e: unknown, resolvedMeanwhile: boolean): FailedPost {
  return resolvedMeanwhile
    ? {
        ok: false,
        detail: `Posting the suggestion failed (${errorText(e)}), and the incident resolved meanwhile: nothing is suggested for it.`,
        retry: false,
      }
    : {
        ok: false,
        detail: `Posting the suggestion failed: ${errorText(e)}`,
        retry: !isPermanentChatError(e),
      };
}

/**
 * How long an alert joining a suggestion waits for the edit of its messages before it is answered
 * `grouped` anyway (see `postGrouped`): inside most webhook senders' timeouts (a sender that waits less,
 * Sentry, PagerDuty, is answered `pending` when its own budget runs out: `ANSWER_BUDGET_MS`).
 */
const GROUPED_EDIT_WAIT_MS = 5_000;
const NONE_GONE: ReadonlySet<string> = new Set();

/**
 * One sink over several surfaces: each destination goes to its surface's sink, each ref back to the
 * sink that posted it. Fails only when every involved surface failed.
 */
export function compositeSink(sinks: Partial<Record<SurfaceName, SuggestionSink>>): SuggestionSink {
  const entries = () => Object.entries(sinks) as [SurfaceName, SuggestionSink][];
  const settle = async <T>(calls: Promise<T>[]): Promise<T[]> => {
    const settled = await Promise.allSettled(calls);
    const ok = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failures = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason] : []));
    // A surface that may have posted is the failure told: its post must not be made again.
    if (failures.length > 0 && ok.length === 0) throw failures.find(mayHavePosted) ?? failures[0];
    return ok;
  };
  // Edits are idempotent: one that failed on one surface while another surface's went through is worth
  // trying again (the sender's retry edits both again), unless that surface refused it for good.
  const settleEdits = async (calls: Promise<void>[]): Promise<void> => {
    const failures = (await Promise.allSettled(calls)).flatMap((r) =>
      r.status === 'rejected' ? [r.reason] : [],
    );
    if (failures.length === 0) return;
    const transient = failures.find((e) => !isPermanentChatError(e));
    if (transient !== undefined) throw transient;
    if (failures.length === calls.length) throw failures[0];
  };
  return {
    async suggest(input) {
      const calls = entries()
        .map(([surface, sink]) => ({
          sink,
          destinations: input.destinations.filter((d) => d.surface === surface),
        }))
        .filter((c) => c.destinations.length > 0)
        .map((c) => c.sink.suggest({ ...input, destinations: c.destinations }));
      return (await settle(calls)).flat();
    },
    async resolved(refs, input) {
      const calls = entries()
        .map(([surface, sink]) => ({ sink, refs: refs.filter((r) => r.surface === surface) }))
        .filter((c) => c.refs.length > 0)
        .map((c) => c.sink.resolved(c.refs, input));
      await settleEdits(calls);
    },
    async close(old) {
      await settleEdits(entries().flatMap(([, sink]) => (sink.close ? [sink.close(old)] : [])));
    },
    async refresh(planId, opts) {
      await settleEdits(entries().flatMap(([, sink]) => (sink.refresh ? [sink.refresh(planId, opts)] : [])));
    },
    async linkRunningJob(input) {
      const calls = entries()
        .map(([surface, sink]) => ({
          sink,
          destinations: input.destinations.filter((d) => d.surface === surface),
        }))
        .filter((c) => c.destinations.length > 0 && c.sink.linkRunningJob !== undefined)
        .map(
          (c) => c.sink.linkRunningJob?.({ ...input, destinations: c.destinations }) ?? Promise.resolve([]),
        );
      return (await settle(calls)).flat();
    },
  };
}

/**
 * Builds the AlertService for the process (what `src/main.ts` wires): Redis-backed storm control on
 * `redis` (an existing connection, not closed here) and the given surfaces' sinks.
 */
export function createAlertService(
  deps: Omit<AlertServiceOptions, 'dedupe' | 'sink'> & {
    readonly redis: RedisClient;
    readonly sinks: Partial<Record<SurfaceName, SuggestionSink>>;
    readonly dedupe?: AlertDedupeOptions;
  },
): AlertService {
  const { redis, sinks, dedupe, ...rest } = deps;
  const surfaces = rest.surfaces ?? (Object.keys(sinks) as SurfaceName[]);
  return new AlertService({
    ...rest,
    surfaces,
    sink: compositeSink(sinks),
    dedupe: new AlertDedupe(redis, dedupe),
  });
}
