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

/** Where a normalized alert came from: a webhook source or a watched chat channel. */
export type AlertOrigin = AlertSource | 'chat';

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
    labels: fields.labels,
    ...(url ? { url } : {}),
    text: fields.text,
  };
}
