/**
 * Alert payload parsers, one per webhook source, each a zod schema at the edge plus a mapping onto
 * NormalizedAlert. Formats follow the vendors' documentation:
 * - Alertmanager webhook_config payload, version "4" (groupKey, status, alerts[], commonLabels, …);
 * - Grafana unified-alerting webhook contact point (same grouping, plus title/message/orgId/values);
 * - Datadog Webhooks integration default payload and its `$VARIABLES` (id, title, body, date, tags,
 *   alert_transition, alert_type, alert_id, aggreg_key, alert_cycle_key, link, …);
 * - Sentry integration-platform issue alerts (`event_alert`, action `triggered`, data.event), metric
 *   alerts (`metric_alert`, action `critical` / `warning` / `resolved`, data.metric_alert) and issue
 *   webhooks (`issue`, data.issue): `resolved` resolves, `created` / `assigned` / `archived` /
 *   `unresolved` are accepted and give no alert (they carry no environment; see sentryAlerts);
 * - PagerDuty v3 webhooks (event.event_type incident.triggered / reopened / resolved, event.data incident);
 * - the generic JSON shape documented in docs/alerts.md.
 * A bad payload is a refusal value naming the field, e.g. `alerts[0].startsAt: expected an ISO date`.
 */
import { z } from 'zod';
import { ok, RefusalCode, type Result, refuse } from '../domain/result.js';
import { assertNever } from '../domain/types.js';
import { valueAt } from '../zod-issues.js';
import { AlertSource, type AlertStatus, type NormalizedAlert, normalizedAlert } from './types.js';

/** Options every parser takes. */
export interface ParseOptions {
  /** Unix ms the payload was received: the start time when the sender gives none. */
  readonly now: number;
}

/**
 * Most alerts one generic payload may carry (a larger one is refused), and most members of an
 * Alertmanager / Grafana group that are read: a larger group is accepted (its body is bounded by
 * `alerts.maxBodyBytes`) and its further members are not examined. They share the group key, so they
 * are the same incident; refusing them would lose the suggestion, as Alertmanager does not retry a 4xx.
 */
export const MAX_ALERTS_PER_PAYLOAD = 1_000;
const MAX_TITLE = 300;
const MAX_TEXT = 4_000;

const ISO_DATE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i;

const isoDate = z
  .string({ error: 'expected an ISO date' })
  .refine((s) => ISO_DATE.test(s) && Number.isFinite(Date.parse(s)), 'expected an ISO date');

/** Unix time as number or digit string; seconds are accepted and scaled (values below 10^11). */
const epochMs = z
  .union([z.number(), z.string().regex(/^\d{1,16}$/, 'expected epoch milliseconds')], {
    error: 'expected epoch milliseconds',
  })
  .transform((v) => {
    const n = typeof v === 'number' ? v : Number(v);
    return n < 1e11 ? n * 1000 : n;
  })
  .refine((n) => Number.isFinite(n) && n >= 0, 'expected epoch milliseconds');

const labelMap = z.record(z.string(), z.string({ error: 'expected a string label value' }));
const idLike = z.union([z.string().min(1), z.number()], { error: 'expected an id' }).transform(String);

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value;
}

function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out || '(root)';
}

const ARTICLE: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  object: 'an object',
  array: 'an array',
  boolean: 'a boolean',
  record: 'an object',
  tuple: 'an array',
};

/** One line per zod issue: `alerts[0].startsAt: expected an ISO date`. Capped at five issues. */
export function formatAlertIssues(error: z.ZodError, input: unknown, prefix: readonly PropertyKey[] = []) {
  const lines = error.issues.slice(0, 5).map((issue) => {
    const path = [...prefix, ...issue.path];
    const value = valueAt(input, issue.path);
    let message = issue.message;
    if (issue.code === 'invalid_type' && !message.startsWith('expected')) {
      const expected = ARTICLE[issue.expected] ?? issue.expected;
      message =
        value === undefined
          ? `required, expected ${expected}`
          : `expected ${expected}, got ${describe(value)}`;
    } else if (issue.code === 'invalid_value' && !message.startsWith('expected')) {
      message = `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(value) ?? 'nothing'}`;
    } else if (issue.code === 'unrecognized_keys') {
      message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    }
    return `${pathText(path)}: ${message}`;
  });
  const more = error.issues.length > 5 ? ` (and ${error.issues.length - 5} more)` : '';
  return lines.join('; ') + more;
}

function invalid<T>(message: string, source: string): Result<T> {
  return refuse(RefusalCode.invalidInput, message, { source });
}

function check<S extends z.ZodType>(
  schema: S,
  body: unknown,
  source: string,
  prefix: readonly PropertyKey[] = [],
): Result<z.output<S>> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return ok(parsed.data);
  return invalid(formatAlertIssues(parsed.error, body, prefix), source);
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function lowerKeys(
  ...records: readonly (Readonly<Record<string, string>> | undefined)[]
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const record of records) {
    if (!record) continue;
    for (const [k, v] of Object.entries(record)) out[k.toLowerCase()] = v;
  }
  return out;
}

function textOf(
  parts: readonly (string | undefined | null)[],
  labels: Readonly<Record<string, string>>,
): string {
  const labelText = Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return clip(
    [...parts.filter((p): p is string => typeof p === 'string' && p !== ''), labelText].join('\n'),
    MAX_TEXT,
  );
}

// ---------------------------------------------------------------- Alertmanager and Grafana (grouped)

const groupedAlert = z.object({
  status: z.enum(['firing', 'resolved']),
  labels: labelMap,
  annotations: labelMap.default({}),
  startsAt: isoDate,
  endsAt: isoDate.optional(),
  generatorURL: z.string().optional(),
  fingerprint: z.string().optional(),
  // Grafana only
  dashboardURL: z.string().optional(),
  panelURL: z.string().optional(),
});

const groupedBase = {
  status: z.enum(['firing', 'resolved']),
  receiver: z.string().optional(),
  groupLabels: labelMap.default({}),
  commonLabels: labelMap.default({}),
  commonAnnotations: labelMap.default({}),
  externalURL: z.string().optional(),
  truncatedAlerts: z.number().int().nonnegative().optional(),
  // Members are checked one by one (groupedAlerts), the first MAX_ALERTS_PER_PAYLOAD only.
  alerts: z.array(z.unknown()),
};

const alertmanagerPayload = z.object({
  ...groupedBase,
  version: z.literal('4', { error: 'expected "4" (Alertmanager webhook version 4)' }),
  groupKey: z.string({ error: 'expected a string' }).min(1, 'expected a non-empty group key'),
});

const grafanaPayload = z.object({
  ...groupedBase,
  version: z.string().optional(),
  groupKey: z.string().optional(),
  orgId: z.number().optional(),
  title: z.string().optional(),
  state: z.string().optional(),
  message: z.string().optional(),
});

type GroupedPayload = z.output<typeof alertmanagerPayload> | z.output<typeof grafanaPayload>;

function groupedAlerts(
  source: 'alertmanager' | 'grafana',
  payload: GroupedPayload,
  opts: ParseOptions,
): Result<NormalizedAlert[]> {
  const out: NormalizedAlert[] = [];
  for (const [i, member] of payload.alerts.slice(0, MAX_ALERTS_PER_PAYLOAD).entries()) {
    const parsed = check(groupedAlert, member, source, ['alerts', i]);
    if (!parsed.ok) return parsed;
    const alert = parsed.value;
    // A member that resolved while its group still fires says nothing about the incident.
    if (payload.status === 'firing' && alert.status === 'resolved') continue;
    const labels = lowerKeys(payload.commonLabels, alert.labels);
    const annotations = lowerKeys(payload.commonAnnotations, alert.annotations);
    const name = labels.alertname;
    const summary = annotations.summary ?? annotations.title;
    const title = clip(
      name && summary
        ? `${name}: ${summary}`
        : (summary ?? name ?? ('title' in payload ? payload.title : undefined) ?? `${source} alert`),
      MAX_TITLE,
    );
    const startedAt = Date.parse(alert.startsAt);
    const url = [alert.panelURL, alert.dashboardURL, alert.generatorURL].find(
      (u) => u !== undefined && u !== '',
    );
    out.push(
      normalizedAlert({
        source,
        status: alert.status,
        title,
        severity: labels.severity ?? labels.priority,
        fingerprint: payload.groupKey || alert.fingerprint,
        startedAt: Number.isFinite(startedAt) && startedAt > 0 ? startedAt : opts.now,
        labels,
        url,
        text: textOf([title, annotations.description, annotations.message], labels),
      }),
    );
  }
  // The members of a group are one incident, handled in order: the first claims it and is the one
  // correlated with deployments. The incident started when its earliest member did, whatever order
  // the sender listed them in (a stable sort keeps the sender's order among equal times).
  out.sort((a, b) => a.startedAt - b.startedAt);
  return ok(out);
}

// ---------------------------------------------------------------- Datadog

const datadogPayload = z
  .object({
    id: idLike.optional(),
    title: z.string().optional(),
    body: z.string().optional(),
    event_type: z.string().optional(),
    date: epochMs.optional(),
    last_updated: epochMs.optional(),
    alert_id: idLike.optional(),
    alert_title: z.string().optional(),
    alert_transition: z.string().optional(),
    alert_type: z.string().optional(),
    alert_status: z.string().optional(),
    alert_priority: z.string().optional(),
    alert_metric: z.string().optional(),
    alert_scope: z.string().optional(),
    alert_cycle_key: idLike.optional(),
    aggreg_key: idLike.optional(),
    link: z.string().optional(),
    priority: z.string().optional(),
    hostname: z.string().optional(),
    host_name: z.string().optional(),
    tags: z
      .union([z.string(), z.array(z.string())], { error: 'expected "$TAGS" (comma-separated) or a list' })
      .optional(),
  })
  .refine((d) => Boolean(d.title?.trim() || d.alert_title?.trim()), {
    path: ['title'],
    message: 'expected the event title ($EVENT_TITLE) or alert_title',
  });

/** `env:production, service:api` → { env: 'production', service: 'api' }. */
export function parseDatadogTags(tags: string | readonly string[] | undefined): Record<string, string> {
  const list = typeof tags === 'string' ? tags.split(',') : (tags ?? []);
  const out: Record<string, string> = {};
  for (const raw of list) {
    const tag = raw.trim();
    const at = tag.indexOf(':');
    if (at <= 0) continue;
    out[tag.slice(0, at).toLowerCase()] = tag.slice(at + 1).trim();
  }
  return out;
}

/** The bracketed tags a Datadog event title starts with: `[P1] [Recovered on {host:a}] x` → both. */
const DATADOG_LEADING_TAGS = /^\s*((?:\[[^\]\n]*\]\s*)+)/;
/**
 * A Datadog transition as it appears in `$ALERT_TRANSITION` and in `$EVENT_TITLE`'s status tag:
 * Triggered / Re-Triggered, Warn / Re-Warn, No Data / Re-No Data, Renotify, Recovered, optionally
 * `on {scope}` (multi-alert monitors), and the `Alert Recovery` / `Warn Recovery` transition types of
 * Datadog's monitor events. Group 1 is the transition.
 */
const DATADOG_TRANSITION =
  /^(?:re-)?(triggered|warn|no data|renotify|recovered|recovery|(?:alert|warn(?:ing)?|no data) recovery)(?:\s+on\s+.*)?$/i;

function isRecovery(transition: string): boolean {
  const t = DATADOG_TRANSITION.exec(transition.trim().replace(/\s+/g, ' '))?.[1]?.toLowerCase();
  return t !== undefined && (t.startsWith('recover') || t.endsWith('recovery'));
}

/**
 * True when the title's status tag says the monitor recovered. The status tag is the first leading
 * bracketed tag naming a transition, wherever it sits among them (`[P1] [Recovered] x`); tags after
 * it belong to the monitor's name.
 */
export function datadogTitleRecovered(title: string | undefined): boolean {
  const lead = DATADOG_LEADING_TAGS.exec(title ?? '')?.[1];
  if (!lead) return false;
  for (const m of lead.matchAll(/\[([^\]\n]*)\]/g)) {
    const tag = (m[1] ?? '').trim().replace(/\s+/g, ' ');
    if (DATADOG_TRANSITION.test(tag)) return isRecovery(tag);
  }
  return false;
}

function datadogStatus(d: z.output<typeof datadogPayload>): AlertStatus {
  if (isRecovery(d.alert_transition ?? '')) return 'resolved';
  if (d.alert_type?.trim().toLowerCase() === 'success') return 'resolved';
  if (datadogTitleRecovered(d.title) || datadogTitleRecovered(d.alert_title)) return 'resolved';
  return 'firing';
}

function datadogAlerts(d: z.output<typeof datadogPayload>, opts: ParseOptions): NormalizedAlert[] {
  const labels = lowerKeys(parseDatadogTags(d.alert_scope), parseDatadogTags(d.tags));
  const host = d.hostname ?? d.host_name;
  if (host && labels.host === undefined) labels.host = host;
  const title = clip((d.alert_title?.trim() || d.title?.trim()) ?? 'Datadog alert', MAX_TITLE);
  return [
    normalizedAlert({
      source: 'datadog',
      status: datadogStatus(d),
      title,
      severity: d.alert_priority || d.priority || d.alert_type,
      fingerprint: d.alert_cycle_key || d.aggreg_key || d.alert_id,
      startedAt: d.date ?? d.last_updated ?? opts.now,
      labels,
      url: d.link,
      text: textOf([d.title, d.body, d.alert_status, d.alert_metric], labels),
    }),
  ];
}

// ---------------------------------------------------------------- Sentry

const sentryTag = z.tuple([z.string(), z.union([z.string(), z.null()])], {
  error: 'expected a [key, value] pair',
});

const sentryEvent = z.object({
  event_id: z.string().optional(),
  issue_id: idLike,
  title: z.string({ error: 'expected a string' }),
  level: z.string().optional(),
  datetime: isoDate.optional(),
  timestamp: z.number().optional(),
  web_url: z.string().optional(),
  url: z.string().optional(),
  environment: z.string().nullable().optional(),
  project: z.union([z.number(), z.string()]).optional(),
  release: z.string().nullable().optional(),
  culprit: z.string().nullable().optional(),
  message: z.string().nullable().optional(),
  tags: z.array(sentryTag).default([]),
});

const sentryTriggered = z.object({
  action: z.literal('triggered'),
  data: z.object({
    event: sentryEvent,
    triggered_rule: z.string().optional(),
    issue_alert: z.object({ title: z.string().optional() }).optional(),
  }),
});

const sentryResolved = z.object({
  action: z.literal('resolved'),
  data: z.object({
    issue: z.object({
      id: idLike,
      title: z.string({ error: 'expected a string' }),
      level: z.string().optional(),
      firstSeen: isoDate.optional(),
      permalink: z.string().nullable().optional(),
      web_url: z.string().optional(),
      project: z.object({ slug: z.string().optional(), name: z.string().optional() }).optional(),
    }),
  }),
});

/**
 * A metric alert (`Sentry-Hook-Resource: metric_alert`, Alert Rule Action): `critical` and `warning`
 * while the rule's incident is open, `resolved` when it closes. data.metric_alert is the incident.
 */
const sentryMetricAlert = z.object({
  action: z.enum(['critical', 'warning', 'resolved']),
  data: z.object({
    metric_alert: z.object({
      id: idLike,
      identifier: idLike.optional(),
      title: z.string().optional(),
      date_started: isoDate.optional(),
      date_detected: isoDate.optional(),
      date_created: isoDate.optional(),
      projects: z.array(z.string()).optional(),
      alert_rule: z
        .object({
          id: idLike.optional(),
          name: z.string().optional(),
          environment: z.string().nullable().optional(),
          projects: z.array(z.string()).optional(),
          query: z.string().optional(),
          aggregate: z.string().optional(),
        })
        .optional(),
    }),
    description_title: z.string().optional(),
    description_text: z.string().optional(),
    web_url: z.string().optional(),
  }),
});

/** Issue webhook actions (`Sentry-Hook-Resource: issue`) that are accepted and give no alert. */
const SENTRY_ISSUE_IGNORED = ['created', 'assigned', 'archived', 'ignored', 'unresolved'] as const;

const sentryIssueIgnored = z.object({
  action: z.enum(SENTRY_ISSUE_IGNORED),
  data: z.object({ issue: z.object({ id: idLike }) }),
});

function sentryMetricAlerts(body: unknown, opts: ParseOptions): Result<NormalizedAlert[]> {
  const parsed = check(sentryMetricAlert, body, 'sentry');
  if (!parsed.ok) return parsed;
  const { action, data } = parsed.value;
  const incident = data.metric_alert;
  const rule = incident.alert_rule;
  const labels: Record<string, string> = {};
  if (rule?.environment) labels.environment = rule.environment;
  const projects = rule?.projects ?? incident.projects ?? [];
  if (projects.length > 0) labels.project = projects.join(',');
  // "Critical: Too many errors" / "Resolved: Too many errors": the rule's name reads the same in both.
  const described = data.description_title?.replace(/^\s*(critical|warning|resolved)\s*:\s*/i, '');
  const title = clip(rule?.name || described || incident.title || 'Sentry metric alert', MAX_TITLE);
  const started = incident.date_started ?? incident.date_detected ?? incident.date_created;
  return ok([
    normalizedAlert({
      source: 'sentry',
      status: action === 'resolved' ? 'resolved' : 'firing',
      title,
      severity: action === 'resolved' ? undefined : action,
      // Its own namespace: a metric alert incident id is not an issue id.
      fingerprint: `metric_alert:${incident.id}`,
      startedAt: started ? Date.parse(started) : opts.now,
      labels,
      url: data.web_url,
      text: textOf([title, data.description_text, rule?.query, rule?.aggregate], labels),
    }),
  ]);
}

/**
 * Sentry's deliveries, told apart by their documented shape (the parser sees the body only):
 * - data.metric_alert: a metric alert, `critical` / `warning` (firing) or `resolved`;
 * - `triggered` with data.event: an issue alert (firing; the event carries the environment tag);
 * - `resolved` with data.issue: the issue was resolved;
 * - `created` / `assigned` / `archived` (`ignored`) / `unresolved` with data.issue: accepted, no alert.
 *   An issue webhook carries no environment, so only alertMatchers could place it, which could turn a
 *   staging issue into a production suggestion; and subscribing to the issue resource would make every
 *   new issue of every project a candidate, past the filters of the user's alert rules. New issues and
 *   regressions reach Switchyard as issue alerts instead ("A new issue is created", "The issue changes
 *   state from resolved to unresolved"), with the event's environment.
 */
function sentryAlerts(body: unknown, opts: ParseOptions): Result<NormalizedAlert[]> {
  const action = valueAt(body, ['action']);
  if (valueAt(body, ['data', 'metric_alert']) !== undefined) return sentryMetricAlerts(body, opts);
  if (action === 'triggered') {
    const parsed = check(sentryTriggered, body, 'sentry');
    if (!parsed.ok) return parsed;
    const { event, triggered_rule: rule } = parsed.value.data;
    const tags: Record<string, string> = {};
    for (const [k, v] of event.tags) if (v !== null) tags[k.toLowerCase()] = v;
    if (event.environment && tags.environment === undefined) tags.environment = event.environment;
    if (event.project !== undefined) tags.project = String(event.project);
    if (event.release) tags.release = event.release;
    const fromDate = event.datetime ? Date.parse(event.datetime) : undefined;
    const startedAt =
      fromDate ?? (event.timestamp === undefined ? opts.now : Math.round(event.timestamp * 1000));
    const title = clip(event.title, MAX_TITLE);
    return ok([
      normalizedAlert({
        source: 'sentry',
        status: 'firing',
        title,
        severity: event.level,
        fingerprint: event.issue_id,
        startedAt,
        labels: tags,
        url: event.web_url,
        text: textOf([title, event.culprit, event.message, rule], tags),
      }),
    ]);
  }
  if (action === 'resolved') {
    const parsed = check(sentryResolved, body, 'sentry');
    if (!parsed.ok) return parsed;
    const issue = parsed.value.data.issue;
    const labels: Record<string, string> = {};
    if (issue.project?.slug) labels.project = issue.project.slug;
    const title = clip(issue.title, MAX_TITLE);
    return ok([
      normalizedAlert({
        source: 'sentry',
        status: 'resolved',
        title,
        severity: issue.level,
        fingerprint: issue.id,
        startedAt: issue.firstSeen ? Date.parse(issue.firstSeen) : opts.now,
        labels,
        url: issue.web_url ?? issue.permalink ?? undefined,
        text: textOf([title], labels),
      }),
    ]);
  }
  if ((SENTRY_ISSUE_IGNORED as readonly unknown[]).includes(action)) {
    const parsed = check(sentryIssueIgnored, body, 'sentry');
    return parsed.ok ? ok([]) : parsed;
  }
  return invalid(
    `action: expected "triggered" (issue alert), "critical", "warning" or "resolved" (metric alert, with data.metric_alert) or an issue webhook action (${['resolved', ...SENTRY_ISSUE_IGNORED].map((a) => `"${a}"`).join(', ')}), got ${JSON.stringify(action) ?? 'nothing'}`,
    'sentry',
  );
}

// ---------------------------------------------------------------- PagerDuty v3

const pagerdutyEnvelope = z.object({
  event: z.object({
    id: z.string().optional(),
    event_type: z.string({ error: 'expected a string' }).min(1),
    resource_type: z.string().optional(),
    occurred_at: isoDate.optional(),
    data: z.unknown(),
  }),
});

const pagerdutyIncident = z.object({
  id: z.string({ error: 'expected a string' }).min(1),
  type: z.string().optional(),
  title: z.string({ error: 'expected a string' }),
  html_url: z.string().optional(),
  status: z.string().optional(),
  urgency: z.string().optional(),
  number: z.number().optional(),
  created_at: isoDate.optional(),
  incident_key: z.string().nullable().optional(),
  service: z.object({ id: z.string().optional(), summary: z.string().optional() }).nullable().optional(),
  priority: z.object({ summary: z.string().optional() }).nullable().optional(),
});

/** PagerDuty event types that carry an incident Switchyard acts on; others are accepted and ignored. */
const PAGERDUTY_STATUS: Readonly<Record<string, AlertStatus>> = {
  'incident.triggered': 'firing',
  'incident.reopened': 'firing',
  'incident.resolved': 'resolved',
};

function pagerdutyAlerts(body: unknown, opts: ParseOptions): Result<NormalizedAlert[]> {
  const envelope = check(pagerdutyEnvelope, body, 'pagerduty');
  if (!envelope.ok) return envelope;
  const event = envelope.value.event;
  const status = PAGERDUTY_STATUS[event.event_type];
  if (status === undefined) return ok([]);
  const incident = check(pagerdutyIncident, event.data, 'pagerduty', ['event', 'data']);
  if (!incident.ok) return incident;
  const d = incident.value;
  const labels: Record<string, string> = {};
  if (d.service?.summary) labels.service = d.service.summary;
  if (d.urgency) labels.urgency = d.urgency;
  if (d.priority?.summary) labels.priority = d.priority.summary;
  // A reopened incident started again when it reopened; created_at is its first occurrence, which
  // would correlate it with an older deployment (or none).
  const started =
    event.event_type === 'incident.reopened'
      ? (event.occurred_at ?? d.created_at)
      : (d.created_at ?? event.occurred_at);
  const title = clip(d.title, MAX_TITLE);
  return ok([
    normalizedAlert({
      source: 'pagerduty',
      status,
      title,
      severity: d.priority?.summary ?? d.urgency,
      fingerprint: d.id,
      startedAt: started ? Date.parse(started) : opts.now,
      labels,
      url: d.html_url,
      text: textOf([title], labels),
    }),
  ]);
}

// ---------------------------------------------------------------- generic

/** The documented generic JSON shape (docs/alerts.md). Unknown keys are refused to catch typos. */
export const genericAlertSchema = z.strictObject({
  environment: z.string().trim().min(1).optional(),
  title: z.string({ error: 'expected a string' }).trim().min(1, 'expected a non-empty title'),
  status: z.enum(['firing', 'resolved']).default('firing'),
  severity: z.string().optional(),
  fingerprint: z.string().trim().min(1).max(512).optional(),
  url: z.string().optional(),
  startedAt: z.union([isoDate, epochMs], { error: 'expected an ISO date or epoch milliseconds' }).optional(),
  service: z.string().optional(),
  text: z.string().optional(),
  labels: labelMap.optional(),
});
export type GenericAlert = z.input<typeof genericAlertSchema>;

function genericAlerts(body: unknown, opts: ParseOptions): Result<NormalizedAlert[]> {
  const items = Array.isArray(body) ? body : [body];
  if (items.length > MAX_ALERTS_PER_PAYLOAD) {
    return invalid(`(root): expected at most ${MAX_ALERTS_PER_PAYLOAD} alerts per payload`, 'generic');
  }
  const out: NormalizedAlert[] = [];
  for (const [i, item] of items.entries()) {
    const parsed = check(genericAlertSchema, item, 'generic', Array.isArray(body) ? [i] : []);
    if (!parsed.ok) return parsed;
    const g = parsed.value;
    const labels = lowerKeys(g.labels);
    if (g.environment) labels.environment = g.environment;
    if (g.service) labels.service = g.service;
    const startedAt =
      g.startedAt === undefined
        ? opts.now
        : typeof g.startedAt === 'number'
          ? g.startedAt
          : Date.parse(g.startedAt);
    const title = clip(g.title, MAX_TITLE);
    out.push(
      normalizedAlert({
        source: 'generic',
        status: g.status,
        title,
        severity: g.severity,
        fingerprint: g.fingerprint,
        startedAt,
        labels,
        url: g.url,
        text: textOf([title, g.text], labels),
      }),
    );
  }
  return ok(out);
}

// ---------------------------------------------------------------- per-source parsers

/** A parser of one source's JSON-decoded body. */
export type AlertParser = (body: unknown, opts: ParseOptions) => Result<NormalizedAlert[]>;

/** Alertmanager webhook version 4: one alert per firing member, keyed by the group key. */
export const parseAlertmanager: AlertParser = (body, opts) => {
  const parsed = check(alertmanagerPayload, body, 'alertmanager');
  return parsed.ok ? groupedAlerts('alertmanager', parsed.value, opts) : parsed;
};

/** Grafana unified-alerting webhook contact point. */
export const parseGrafana: AlertParser = (body, opts) => {
  const parsed = check(grafanaPayload, body, 'grafana');
  return parsed.ok ? groupedAlerts('grafana', parsed.value, opts) : parsed;
};

/** Datadog Webhooks integration payload (default template or one using its `$VARIABLES`). */
export const parseDatadog: AlertParser = (body, opts) => {
  const parsed = check(datadogPayload, body, 'datadog');
  return parsed.ok ? ok(datadogAlerts(parsed.value, opts)) : parsed;
};

/** Sentry issue alert (`triggered`), metric alert, or issue webhook (see sentryAlerts). */
export const parseSentry: AlertParser = sentryAlerts;

/** PagerDuty v3 webhook; event types other than triggered/reopened/resolved give no alert. */
export const parsePagerDuty: AlertParser = pagerdutyAlerts;

/** The documented generic JSON shape: one object or an array of them. */
export const parseGeneric: AlertParser = genericAlerts;

/** Every source's parser. */
export const alertParsers: Readonly<Record<AlertSource, AlertParser>> = {
  alertmanager: parseAlertmanager,
  grafana: parseGrafana,
  datadog: parseDatadog,
  sentry: parseSentry,
  pagerduty: parsePagerDuty,
  generic: parseGeneric,
};

// ---------------------------------------------------------------- entry point

/**
 * Parses one webhook body (already JSON-decoded) from `source` into normalized alerts. A payload that
 * carries nothing to act on (a PagerDuty acknowledgement, a ping) gives an empty list; a malformed one
 * gives an `invalid_input` refusal whose message names the field.
 */
export function parseAlertPayload(
  source: AlertSource,
  body: unknown,
  opts: ParseOptions,
): Result<NormalizedAlert[]> {
  if (body === null || typeof body !== 'object' || (Array.isArray(body) && source !== 'generic')) {
    return invalid(`(root): expected a JSON object, got ${describe(body)}`, source);
  }
  switch (source) {
    case AlertSource.alertmanager:
    case AlertSource.grafana:
    case AlertSource.datadog:
    case AlertSource.sentry:
    case AlertSource.pagerduty:
    case AlertSource.generic:
      return alertParsers[source](body, opts);
    default:
      return assertNever(source, 'alert source');
  }
}
