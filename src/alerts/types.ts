/**
 * Alert vocabulary shared by the parsers, mapping, correlation, dedupe and the alert service: the one
 * normalized shape every source (Alertmanager, Grafana, Datadog, Sentry, PagerDuty, generic JSON, chat
 * messages) is turned into, and the list of webhook sources. Pure types and tiny helpers; no I/O.
 */

/** Webhook sources accepted at `POST /webhooks/alerts/:source`. */
export const AlertSource = {
  alertmanager: 'alertmanager',
  grafana: 'grafana',
  datadog: 'datadog',
  sentry: 'sentry',
  pagerduty: 'pagerduty',
  generic: 'generic',
} as const;
export type AlertSource = (typeof AlertSource)[keyof typeof AlertSource];

/** Every webhook source, in documentation order. */
export const ALERT_SOURCES: readonly AlertSource[] = Object.values(AlertSource);

/** Where a normalized alert came from: a webhook source or a watched chat channel's surface. */
export type AlertOrigin = AlertSource | 'slack' | 'discord' | 'console';

/** True when `value` names a webhook source. */
export function isAlertSource(value: string): value is AlertSource {
  return (ALERT_SOURCES as readonly string[]).includes(value);
}

export const AlertStatus = { firing: 'firing', resolved: 'resolved' } as const;
export type AlertStatus = (typeof AlertStatus)[keyof typeof AlertStatus];

/** One alert, whatever sent it. A grouped payload (Alertmanager, Grafana) yields several. */
export interface NormalizedAlert {
  readonly source: AlertOrigin;
  readonly status: AlertStatus;
  readonly title: string;
  readonly severity?: string;
  /**
   * The incident key: Alertmanager/Grafana group key, Datadog alert cycle / aggregation key, Sentry
   * issue id, PagerDuty incident id, or the sender's fingerprint. Absent when the sender gives none;
   * storm control then falls back to a time window per environment.
   */
  readonly fingerprint?: string;
  /** Unix ms when the problem started (the sender's start time, else when it was received). */
  readonly startedAt: number;
  /**
   * The sender re-sent an alert it had sent before (a Datadog `[Re-Triggered]` / Renotify): its
   * `startedAt` is when it was re-sent, not when the problem started, so it is never correlated with
   * deployments (a repeat of a known incident is deduplicated as any repeat is).
   */
  readonly renotification?: true;
  /**
   * The alert says its query returned no data (Datadog's `No Data`, Grafana's `DatasourceNoData`). It is
   * correlated as any alert: a deploy that crashes a service or breaks its instrumentation stops its
   * data. What shows it says so: the service may have stopped reporting, not crossed a threshold.
   */
  readonly missingData?: true;
  /**
   * Why the alert is no evidence of a bad deployment, when it says so itself (a chat message saying a
   * rule's query failed: Grafana's `DatasourceError`, about the monitoring, not the app): it is answered
   * `ignored` with this detail and nothing is suggested. (A webhook delivery lists such alerts as
   * ignored instead.)
   */
  readonly noEvidence?: string;
  /** Labels / tags, lower-cased keys (`env`, `environment`, `service`, …). */
  readonly labels: Readonly<Record<string, string>>;
  readonly url?: string;
  /** Free text the per-environment matchers are applied to (title, description, summary). */
  readonly text: string;
}

/** Builds a NormalizedAlert, dropping optional fields that are empty. */
export function normalizedAlert(fields: {
  source: AlertOrigin;
  status: AlertStatus;
  title: string;
  severity?: string | undefined;
  fingerprint?: string | undefined;
  startedAt: number;
  renotification?: boolean | undefined;
  missingData?: boolean | undefined;
  noEvidence?: string | undefined;
  labels: Record<string, string>;
  url?: string | undefined;
  text: string;
}): NormalizedAlert {
  const severity = fields.severity?.trim();
  const fingerprint = fields.fingerprint?.trim();
  const url = fields.url?.trim();
  return {
    source: fields.source,
    status: fields.status,
    title: fields.title.trim() || '(untitled alert)',
    ...(severity ? { severity } : {}),
    ...(fingerprint ? { fingerprint } : {}),
    startedAt: fields.startedAt,
    ...(fields.renotification === true ? { renotification: true as const } : {}),
    ...(fields.missingData === true ? { missingData: true as const } : {}),
    ...(fields.noEvidence ? { noEvidence: fields.noEvidence } : {}),
    labels: fields.labels,
    ...(url ? { url } : {}),
    text: fields.text,
  };
}

/** What happened to one alert (also the `outcome` label of `switchyard_alerts_total`). */
export const AlertOutcome = {
  /** A rollback suggestion with buttons was posted. */
  suggested: 'suggested',
  /** The incident already has a suggestion (storm control). */
  deduplicated: 'deduplicated',
  /**
   * Another incident already has a suggestion for the same rollback in the same place: the alert was
   * added to that message instead of posting another one (storm control across incidents).
   */
  grouped: 'grouped',
  /** No environment could be named from labels, tags or matchers. */
  unmapped: 'unmapped',
  /** The latest deployment went live before the correlation window (a note may have been posted). */
  outsideWindow: 'outside_window',
  /**
   * No deployment went live before the alert started, or there is nothing to roll back to, or the
   * alert is a re-notification (its start time is unknown) of an incident with no record.
   */
  noCorrelation: 'no_correlation',
  /** The environment is already switching: the alert was linked to the running job. */
  linkedJob: 'linked_job',
  /** A resolved alert edited its suggestion. */
  resolved: 'resolved',
  /** A resolved alert with no suggestion to edit. */
  resolvedUnknown: 'resolved_unknown',
  /**
   * Accepted and not acted on, with the reason in `detail`: a delivery that is not an alert (a Sentry
   * comment or installation webhook, …), a Sentry issue resolved only in a future release (its error
   * is still live in the deployment running now), an alert saying a rule's query failed (Grafana's
   * DatasourceError, by webhook or chat message), or a member of an Alertmanager / Grafana group that
   * resolved while other members of the group still fire in the same environment.
   */
  ignored: 'ignored',
  /**
   * Someone dismissed the suggestion of this same rollback (same current deployment and target):
   * nothing is posted again for it.
   */
  dismissed: 'dismissed',
  /**
   * Still being handled when the webhook's answer was due (the chat service or the platform is slow,
   * see `AlertService.handleWebhook`): it goes on in the background. A webhook answer only; the alert is
   * counted with the outcome it ends with.
   */
  pending: 'pending',
  /** The plan was refused (stale, not ready, …); nothing was posted. */
  refused: 'refused',
  /** No channel is configured for the environment. */
  noDestination: 'no_destination',
  /**
   * Posting the suggestion (or editing it for a RESOLVED) failed: the incident is free to be
   * suggested again, or its edit to be retried. The webhook answers 503 so the sender retries.
   */
  failed: 'failed',
} as const;
export type AlertOutcome = (typeof AlertOutcome)[keyof typeof AlertOutcome];

/** The result of handling one alert, as returned in the webhook's 202 summary. */
export interface AlertResult {
  readonly title: string;
  readonly status: AlertStatus;
  readonly fingerprint?: string;
  readonly environment?: string;
  readonly outcome: AlertOutcome;
  /** One sentence: the suggestion, the refusal, or why nothing was posted. */
  readonly detail?: string;
  readonly planId?: string;
  readonly jobId?: string;
  /**
   * With outcome `failed`: whether trying again may help (the chat API down, a 5xx). False when the
   * chat service refused for good (the bot is not in the channel, the message was deleted): a webhook
   * sender is then not asked to retry (it would fail the same way, forever).
   */
  readonly retry?: boolean;
}

/** A chat message an alert came from; suggestions are threaded under it. */
export interface ChatOrigin {
  readonly surface: 'slack' | 'discord' | 'console';
  readonly channel: string;
  /** Slack `ts` / Discord message id of the alert message. */
  readonly messageId: string;
  /** Set when the alert message itself sits in a thread. */
  readonly threadId?: string;
}

/** What the webhook handler and chat listeners hand alerts to (the AlertService). */
export interface AlertIntake {
  handle(alerts: readonly NormalizedAlert[], origin?: ChatOrigin): Promise<AlertResult[]>;
  /**
   * `handle` for one webhook delivery from `source`, answered within the time its sender waits:
   * alerts still being handled then are answered `pending` and finished in the background. Without
   * it, the webhook waits for `handle`.
   */
  handleWebhook?(source: AlertSource, alerts: readonly NormalizedAlert[]): Promise<AlertResult[]>;
}
