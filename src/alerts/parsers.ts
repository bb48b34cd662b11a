/**
 * Alert payload parsers, one per webhook source, each a zod schema at the edge plus a mapping onto
 * NormalizedAlert. Formats follow the vendors' documentation:
 * - Alertmanager webhook_config payload, version "4" (groupKey, status, alerts[], commonLabels, …);
 * - Grafana unified-alerting webhook contact point (same grouping, plus title/message/orgId/values);
 * - Datadog Webhooks integration default payload and its `$VARIABLES` (id, title, body, date, tags,
 *   alert_transition, alert_type, alert_id, aggreg_key, alert_cycle_key, link, …);
 * - Sentry integration-platform issue alerts (`event_alert`, action `triggered`, data.event), metric
 *   alerts (`metric_alert`, action `critical` / `warning` / `resolved`, data.metric_alert) and issue
 *   webhooks (`issue`, data.issue): `resolved` resolves (unless in a release or commit still to
 *   come: its `data.resolution_type`, see resolvedLater),
 *   `created` / `assigned` / `archived` / `unresolved` are accepted and ignored (they carry no
 *   environment), as are other resources (`Sentry-Hook-Resource`: comment, installation, …; see
 *   sentryAlerts);
 * - PagerDuty v3 webhooks (event.event_type incident.triggered / reopened / resolved, event.data incident);
 * - the generic JSON shape documented in docs/alerts.md.
 * A bad payload is a refusal value naming the field, e.g. `alerts[0].startsAt: expected an ISO date, got "yesterday"`.
 * What a delivery carries that is not acted on (a Sentry comment webhook, …) is listed with the reason
 * (`AlertDelivery.ignored`), answered 202 with outcome `ignored`.
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
  /**
   * A Sentry delivery's `Sentry-Hook-Resource` header (`event_alert`, `metric_alert`, `issue`,
   * `installation`, `comment`, `error`, …): what the body is about. Without it the body's shape decides.
   */
  readonly sentryResource?: string | undefined;
}

/**
 * Something a delivery carried that is accepted (202) and not acted on, and why: the webhook answers
 * it with outcome `ignored` (a sender does not retry a 4xx, so refusing it would gain nothing).
 */
export interface IgnoredItem {
  readonly title: string;
  readonly status?: AlertStatus;
  readonly fingerprint?: string;
  /** Why nothing is done with it (the answer's `detail`). */
  readonly detail: string;
}

/** What one delivery carries: the alerts to handle, and what is accepted and ignored. */
export interface AlertDelivery {
  readonly alerts: NormalizedAlert[];
  readonly ignored: IgnoredItem[];
}

function delivery(alerts: NormalizedAlert[], ignored: IgnoredItem[] = []): AlertDelivery {
  return { alerts, ignored };
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

/** Most characters of a received value (or of a key) a refusal shows. */
const MAX_SHOWN = 100;
/** Most levels of arrays and objects a refusal shows of a received value: deeper ones are `[…]`, `{…}`. */
const MAX_SHOWN_DEPTH = 3;

/**
 * A received value as a refusal shows it: JSON-like, at most MAX_SHOWN characters (clipped with `…`)
 * and MAX_SHOWN_DEPTH levels deep, `nothing` for a missing one. It never throws: JSON.stringify throws
 * a RangeError on a deeply nested value (`[[[[…]]]]` from a sender), which would turn a bad payload
 * into a 500 that Alertmanager and Datadog retry forever; and a sender's 200 KB value is not echoed
 * back whole. Every refusal of the parsers shows received values through this.
 */
export function shownValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  let out = '';
  // Stops the walk once the text is long enough to be clipped: a huge array or object is not visited.
  const full = () => out.length > MAX_SHOWN;
  const walk = (v: unknown, depth: number): void => {
    if (full()) return;
    if (typeof v === 'string') {
      out += JSON.stringify(v.length > MAX_SHOWN ? v.slice(0, MAX_SHOWN + 1) : v);
    } else if (v === null || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') {
      out += String(v);
    } else if (Array.isArray(v)) {
      if (v.length > 0 && depth >= MAX_SHOWN_DEPTH) out += '[…]';
      else {
        out += '[';
        for (let i = 0; i < v.length && !full(); i++) {
          if (i > 0) out += ',';
          walk(v[i] ?? null, depth + 1);
        }
        out += ']';
      }
    } else if (typeof v === 'object') {
      const keys = Object.keys(v as object);
      if (keys.length > 0 && depth >= MAX_SHOWN_DEPTH) out += '{…}';
      else {
        out += '{';
        for (let i = 0; i < keys.length && !full(); i++) {
          const key = keys[i] ?? '';
          if (i > 0) out += ',';
          out += `${JSON.stringify(key.length > MAX_SHOWN ? key.slice(0, MAX_SHOWN + 1) : key)}:`;
          walk((v as Record<string, unknown>)[key], depth + 1);
        }
        out += '}';
      }
    } else out += typeof v;
  };
  try {
    walk(value, 0);
  } catch {
    // Not a JSON-decoded value (a getter or proxy that throws): its kind only.
    return describe(value);
  }
  return clip(out, MAX_SHOWN);
}

/** `alerts[0].labels.env`; a key longer than MAX_SHOWN (a sender's label name) is clipped. */
function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else {
      const name = clip(String(key), MAX_SHOWN);
      out += out === '' ? name : `.${name}`;
    }
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

/** One line per zod issue: `alerts[0].startsAt: expected an ISO date, got "yesterday"`. Capped at five issues. */
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
          : `expected ${expected}, got ${shownValue(value)}`;
    } else if (message.startsWith('expected') && !message.includes(', got ') && value !== undefined) {
      // A schema's own wording (`expected an ISO date`): the value received beside it, as for the others.
      message = `${message}, got ${shownValue(value)}`;
    } else if (issue.code === 'invalid_value' && !message.startsWith('expected')) {
      message = `expected one of ${issue.values.map((v) => shownValue(v)).join(', ')}, got ${shownValue(value)}`;
    } else if (issue.code === 'unrecognized_keys') {
      // A sender's keys: the first few, each clipped.
      const shown = issue.keys.slice(0, 5).map((k) => shownValue(k));
      const others = issue.keys.length > 5 ? ` (and ${issue.keys.length - 5} more)` : '';
      message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${shown.join(', ')}${others}`;
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

/**
 * True when `alertname` is the alert Grafana raises itself, with the rule's labels, when a rule's query
 * fails (`DatasourceError`: the datasource is down, erroring or timing out). That is about the
 * monitoring, not the app: no evidence of a bad deploy. (An Alertmanager fed by Grafana passes it on.)
 * Also read from chat messages.
 */
export function isGrafanaQueryError(alertname: string): boolean {
  return alertname.trim().toLowerCase() === 'datasourceerror';
}

/**
 * True when `alertname` is the alert Grafana raises when a rule's query returns nothing
 * (`DatasourceNoData`). A service that crashed or lost its instrumentation stops its data, so it is
 * read as a firing alert, marked `missingData`. Also read from chat messages.
 */
export function isGrafanaNoData(alertname: string): boolean {
  return alertname.trim().toLowerCase() === 'datasourcenodata';
}

/**
 * Why a Grafana `DatasourceError` is not acted on (its outcome `ignored`'s detail), by webhook or as a
 * message in a watched channel.
 */
export function grafanaQueryErrorDetail(alertname: string, rulename?: string): string {
  return `${alertname} says the rule${rulename ? ` "${clip(rulename, 100)}"` : ''} could not query its datasource (an error or a time-out), not that the deployment is bad: no rollback is suggested for it.`;
}

function groupedAlerts(
  source: 'alertmanager' | 'grafana',
  payload: GroupedPayload,
  opts: ParseOptions,
): Result<AlertDelivery> {
  const out: NormalizedAlert[] = [];
  const ignored: IgnoredItem[] = [];
  const sender = source === 'grafana' ? 'Grafana' : 'Alertmanager';
  const fingerprint = payload.groupKey || undefined;
  const plural = (n: number) => (n === 1 ? '' : 's');
  // Members the sender left out (`max_alerts`) were never seen: the answer says so (senders show it in
  // their delivery logs). They share the group's incident, but an environment only they name gets nothing.
  const truncated = payload.truncatedAlerts ?? 0;
  if (truncated > 0) {
    ignored.push({
      title: `${truncated} more alert${plural(truncated)} of this group`,
      ...(fingerprint === undefined ? {} : { fingerprint }),
      detail: `${sender} left ${truncated} alert${plural(truncated)} of this group out of the notification (max_alerts; truncatedAlerts: ${truncated}): Switchyard never saw them. They share the group's incident; an environment that only they name ${payload.status === 'resolved' ? 'is not marked resolved' : 'gets no suggestion'} by this notification.`,
    });
  }
  const unread = payload.alerts.length - MAX_ALERTS_PER_PAYLOAD;
  if (unread > 0) {
    ignored.push({
      title: `${unread} more alert${plural(unread)} of this group`,
      ...(fingerprint === undefined ? {} : { fingerprint }),
      detail: `Only the first ${MAX_ALERTS_PER_PAYLOAD.toLocaleString('en-US')} alerts of a notification are read: ${unread === 1 ? 'this one shares' : `these ${unread} share`} the group's incident and ${unread === 1 ? 'was' : 'were'} not examined.`,
    });
  }
  // Every member is here: none left out by the sender (`max_alerts`: truncatedAlerts) or past the ones
  // read here.
  const complete = truncated === 0 && unread <= 0;
  for (const [i, member] of payload.alerts.slice(0, MAX_ALERTS_PER_PAYLOAD).entries()) {
    const parsed = check(groupedAlert, member, source, ['alerts', i]);
    if (!parsed.ok) return parsed;
    const alert = parsed.value;
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
    const memberKey = payload.groupKey || alert.fingerprint;
    const skip = (detail: string) =>
      ignored.push({ title, status: alert.status, ...(memberKey ? { fingerprint: memberKey } : {}), detail });
    if (name !== undefined && isGrafanaQueryError(name)) {
      skip(grafanaQueryErrorDetail(name, labels.rulename));
      continue;
    }
    // A member that resolved while its group still fires is kept: a group may span environments, and
    // the incident is per environment and group. The service decides (it maps environments): the
    // incident of an environment none of whose members of this payload still fires has resolved. Of
    // an incomplete group, the members left out may still fire there: its resolved members are left
    // out too (the incident resolves with the group).
    if (!complete && payload.status === 'firing' && alert.status === 'resolved') {
      skip(
        "This notification leaves members of its group out, so whether others still fire in this alert's environment cannot be told: its incident resolves with the group.",
      );
      continue;
    }
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
        fingerprint: memberKey,
        startedAt: Number.isFinite(startedAt) && startedAt > 0 ? startedAt : opts.now,
        missingData: alert.status === 'firing' && name !== undefined && isGrafanaNoData(name),
        labels,
        url,
        text: textOf([title, annotations.description, annotations.message], labels),
      }),
    );
  }
  // The members of a group are one incident, handled in order: the first firing one claims it and is
  // the one correlated with deployments. The incident started when its earliest firing member did,
  // whatever order the sender listed them in (a stable sort keeps the sender's order among equal
  // times). Resolved members come after the firing ones.
  out.sort(
    (a, b) => Number(a.status === 'resolved') - Number(b.status === 'resolved') || a.startedAt - b.startedAt,
  );
  return ok(delivery(out, ignored));
}

// ---------------------------------------------------------------- Datadog

/**
 * Datadog renders a variable that has no value as "" (`$ALERT_CYCLE_KEY` of an event that is not a
 * monitor alert, `$TAGS[env]` of an event without that tag, an empty `$DATE`, …). Such a field is
 * absent: refusing it would lose the alert, as Datadog does not retry a 4xx.
 */
function withoutEmptyStrings(body: unknown): unknown {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return body;
  return Object.fromEntries(
    Object.entries(body).filter(([, v]) => !(typeof v === 'string' && v.trim() === '')),
  );
}

const datadogObject = z
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

const datadogPayload = z.preprocess(withoutEmptyStrings, datadogObject);

/**
 * `env:production, service:api` → { env: 'production', service: 'api' }. A key given several values
 * keeps them all, comma-separated (`env:staging,env:production` → { env: 'staging,production' }): an
 * alert naming several environments then maps to none, rather than to whichever came last.
 */
export function parseDatadogTags(tags: string | readonly string[] | undefined): Record<string, string> {
  const list = typeof tags === 'string' ? tags.split(',') : (tags ?? []);
  const values = new Map<string, string[]>();
  for (const raw of list) {
    const tag = raw.trim();
    const at = tag.indexOf(':');
    if (at <= 0) continue;
    const key = tag.slice(0, at).toLowerCase();
    const value = tag.slice(at + 1).trim();
    const seen = values.get(key);
    if (seen === undefined) values.set(key, [value]);
    else if (!seen.includes(value)) seen.push(value);
  }
  return Object.fromEntries([...values].map(([k, v]) => [k, v.join(',')]));
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

/** A title's status tag, what came before it, and the title after it (the monitor's name). */
interface DatadogTitleParts {
  /** The leading tags before the status tag (a priority such as `[P1]`), with their spacing. */
  readonly before: string;
  /** The status tag's transition without its scope: `Triggered`, `Recovered`, … */
  readonly transition: string;
  /** The scope of a multi-alert monitor's status tag (`host:web-1` of `[Triggered on {host:web-1}]`). */
  readonly scope?: string;
  /** What follows the status tag. */
  readonly rest: string;
}

/**
 * Splits a title at its status tag: the first leading bracketed tag naming a transition, wherever it
 * sits among them (`[P1] [Recovered] x`); tags after it belong to the monitor's name. Undefined when
 * the title has none.
 */
function datadogTitleParts(title: string): DatadogTitleParts | undefined {
  const lead = DATADOG_LEADING_TAGS.exec(title)?.[1];
  if (!lead) return undefined;
  // The leading tags start after the title's leading spaces.
  const offset = title.length - title.trimStart().length;
  for (const m of lead.matchAll(/\[([^\]\n]*)\]\s*/g)) {
    const tag = (m[1] ?? '').trim().replace(/\s+/g, ' ');
    if (!DATADOG_TRANSITION.test(tag)) continue;
    const at = offset + (m.index ?? 0);
    const on = /^(.*?)\s+on\s+(.*)$/i.exec(tag);
    const scope = on?.[2]?.replace(/^\{(.*)\}$/s, '$1').trim();
    return {
      before: title.slice(0, at),
      transition: on?.[1] ?? tag,
      ...(scope ? { scope } : {}),
      rest: title.slice(at + m[0].length).trim(),
    };
  }
  return undefined;
}

/**
 * A Datadog title as Switchyard shows it, and the incident key of a payload without one: the title
 * without its status tag, so `[Triggered] x` and `[Recovered] x` of one monitor share the key (and a
 * multi-alert monitor's `[Triggered on {host:a}] x` and `[Recovered on {host:a}] x` share theirs,
 * apart from host b's). Priority tags before the status tag are shown but not part of the key.
 */
export function datadogTitle(title: string): { readonly display: string; readonly key: string } {
  const collapse = (t: string) => t.trim().replace(/\s+/g, ' ');
  const parts = datadogTitleParts(title);
  if (parts === undefined) return { display: collapse(title), key: `title:${collapse(title)}` };
  const name = parts.rest === '' ? parts.transition : parts.rest;
  const display = collapse(`${parts.before}${name}${parts.scope === undefined ? '' : ` (${parts.scope})`}`);
  const key = `title:${parts.scope === undefined ? '' : `{${collapse(parts.scope)}} `}${collapse(name)}`;
  return { display, key };
}

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
  const parts = datadogTitleParts(title ?? '');
  return parts !== undefined && isRecovery(parts.transition);
}

/**
 * True when the transition re-sends an alert (`Re-Triggered`, `Re-Warn`, `Re-No Data`, `Renotify`: a
 * monitor's renotify interval). Datadog dates such an event ($DATE) when it was re-sent, not when the
 * alert started, and its Slack integration posts it then. Exported for chat messages
 * (`Re-Triggered: X`), so both read the transitions alike.
 */
export function isDatadogRenotification(transition: string): boolean {
  const text = transition.trim().replace(/\s+/g, ' ');
  const t = DATADOG_TRANSITION.exec(text)?.[1]?.toLowerCase();
  if (t === undefined || isRecovery(text)) return false;
  return t === 'renotify' || /^re-/i.test(text);
}

/**
 * True when the title's status tag re-sends an alert (`[Re-Triggered] x`, `[P1] [Renotify on {host:a}]
 * x`). The status tag is the first leading bracketed tag naming a transition, as for
 * `datadogTitleRecovered`. Also read from chat messages (Datadog's Slack integration posts the title).
 */
export function datadogTitleRenotified(title: string | undefined): boolean {
  const parts = datadogTitleParts(title ?? '');
  return parts !== undefined && isDatadogRenotification(parts.transition);
}

/**
 * Whether the event re-sends an alert: `$ALERT_TRANSITION` decides when it names a transition, else
 * the title's status tag (the default payload: `[Re-Triggered] …`, `[P1] [Renotify on {host:a}] …`).
 */
function datadogRenotified(d: z.output<typeof datadogPayload>): boolean {
  const transition = d.alert_transition?.trim().replace(/\s+/g, ' ') ?? '';
  if (DATADOG_TRANSITION.test(transition)) return isDatadogRenotification(transition);
  return [d.title, d.alert_title].some(datadogTitleRenotified);
}

function isNoData(transition: string): boolean {
  return (
    !isRecovery(transition) &&
    DATADOG_TRANSITION.exec(transition.trim().replace(/\s+/g, ' '))?.[1]?.toLowerCase() === 'no data'
  );
}

/**
 * True when the title's status tag is a "No Data" transition (`[No Data] x`, `[P2] [Re-No Data on
 * {host:a}] x`), found as for `datadogTitleRecovered`. Also read from chat messages.
 */
export function datadogTitleNoData(title: string | undefined): boolean {
  const parts = datadogTitleParts(title ?? '');
  return parts !== undefined && isNoData(parts.transition);
}

/**
 * Whether the event is a "No Data" transition (`No Data`, `Re-No Data`, in `$ALERT_TRANSITION`, else
 * the title's status tag): the monitor's query returned nothing. A deploy that crashes a service or
 * breaks its instrumentation does that (monitors with notify_no_data watch for it), so it is a firing
 * alert, marked `missingData`.
 */
function datadogNoData(d: z.output<typeof datadogPayload>): boolean {
  const transition = d.alert_transition?.trim().replace(/\s+/g, ' ') ?? '';
  if (DATADOG_TRANSITION.test(transition)) return isNoData(transition);
  return [d.title, d.alert_title].some(datadogTitleNoData);
}

/**
 * The tags of the group that triggered a multi-alert monitor: `$ALERT_SCOPE`, else the scope of the
 * title's status tag (`[Triggered on {env:production,service:api}] …`, all the default payload says).
 */
function datadogScope(d: z.output<typeof datadogPayload>): Record<string, string> {
  const scope = parseDatadogTags(d.alert_scope);
  if (Object.keys(scope).length > 0) return scope;
  for (const title of [d.title, d.alert_title]) {
    const inTitle = parseDatadogTags(datadogTitleParts(title ?? '')?.scope);
    if (Object.keys(inTitle).length > 0) return inTitle;
  }
  return {};
}

function datadogStatus(d: z.output<typeof datadogPayload>): AlertStatus {
  if (isRecovery(d.alert_transition ?? '')) return 'resolved';
  if (d.alert_type?.trim().toLowerCase() === 'success') return 'resolved';
  if (datadogTitleRecovered(d.title) || datadogTitleRecovered(d.alert_title)) return 'resolved';
  return 'firing';
}

function datadogAlerts(d: z.output<typeof datadogPayload>, opts: ParseOptions): AlertDelivery {
  // The triggering group's own tags name its environment: `$TAGS` also carries the monitor's tags and
  // may name other environments (`env:staging,env:production`), which would turn a staging group's
  // alert into production's. A key the scope does not name comes from `$TAGS`.
  const labels = lowerKeys(parseDatadogTags(d.tags), datadogScope(d));
  const host = d.hostname ?? d.host_name;
  if (host && labels.host === undefined) labels.host = host;
  // The status tag is dropped from what is shown: the suggestion lists the alert, and says itself
  // whether it still fires. Without an incident key, the title without its status tag is the key.
  const named = datadogTitle((d.alert_title?.trim() || d.title?.trim()) ?? 'Datadog alert');
  const title = clip(named.display || 'Datadog alert', MAX_TITLE);
  const status = datadogStatus(d);
  const fingerprint = d.alert_cycle_key || d.aggreg_key || d.alert_id || clip(named.key, 512);
  return delivery([
    normalizedAlert({
      source: 'datadog',
      status,
      title,
      severity: d.alert_priority || d.priority || d.alert_type,
      fingerprint,
      // $DATE is when this event was sent. Of a re-notification, that is not when the alert started
      // (which no variable gives): marked, so the service does not correlate it.
      startedAt: d.date ?? d.last_updated ?? opts.now,
      renotification: status === 'firing' && datadogRenotified(d),
      missingData: status === 'firing' && datadogNoData(d),
      labels,
      url: d.link,
      text: textOf([d.title, d.body, d.alert_status, d.alert_metric], labels),
    }),
  ]);
}

// ---------------------------------------------------------------- Sentry

const sentryTag = z.tuple(
  [z.string(), z.union([z.string(), z.null()], { error: 'expected a string or null' })],
  {
    error: 'expected a [key, value] pair',
  },
);

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
  project: z.union([z.number(), z.string()], { error: 'expected a number or a string' }).optional(),
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
    // How it was resolved (Sentry's issue_resolved signal): now (`now`, `autoresolve`), or in a release
    // or commit still to come (see resolvedLater).
    resolution_type: z.string().nullable().optional(),
    issue: z.object({
      id: idLike,
      title: z.string({ error: 'expected a string' }),
      level: z.string().optional(),
      firstSeen: isoDate.optional(),
      permalink: z.string().nullable().optional(),
      web_url: z.string().optional(),
      project: z.object({ slug: z.string().optional(), name: z.string().optional() }).optional(),
      statusDetails: z
        .object({
          inNextRelease: z.unknown().optional(),
          inUpcomingRelease: z.unknown().optional(),
          inRelease: z.unknown().optional(),
          inCommit: z.unknown().optional(),
        })
        .nullable()
        .optional(),
    }),
  }),
});

type SentryStatusDetails = NonNullable<z.output<typeof sentryResolved>['data']['issue']['statusDetails']>;

/**
 * Sentry's `resolution_type` values (its issue_resolved signal) that name a fix still to come, as
 * "Sentry resolves this issue …" ends:
 * - `in_next_release`, `in_upcoming_release`: a release after the current one carries the fix;
 * - `in_release` ("in the current release"): the newest release Sentry knows carries it, which need not
 *   be the deployment running;
 * - `in_commit`: a person named the commit that fixes it;
 * - `with_commit`: Sentry found a commit saying it fixes the issue ("Fixes SHOP-123"), when a
 *   repository integration records the pushed commit or when a release's commits are set (mostly as
 *   that release is built, before its deploy).
 * Both commit types come when the fix exists as a commit, normally before it is live. Read as resolved,
 * the suggestion would say the alert resolved while the running deployment still fails (and, for a
 * release's commits, Sentry counts errors of older releases as still resolved: no regression alert
 * would correct it). Read as a fix to come when it already went live, the suggestion keeps asking, but
 * a confirm then finds its plan stale and switches nothing. So they are fixes to come.
 */
const SENTRY_RESOLVED_LATER: ReadonlyMap<string, string> = new Map([
  ['in_next_release', 'in the next release'],
  ['in_upcoming_release', 'in the upcoming release'],
  ['in_release', 'in the current release'],
  ['in_commit', 'in a commit'],
  ['with_commit', 'by a commit'],
]);

/**
 * Sentry's `resolution_type` values that resolve the issue now, whatever the statusDetails say: `now`
 * ("Resolve") and `autoresolve` (Sentry resolved it itself: no event for the project's auto-resolve
 * age).
 */
const SENTRY_RESOLVED_NOW: readonly string[] = ['now', 'autoresolve'];

/**
 * When a resolution names a release or commit still to come, a sentence saying so; else undefined.
 * Such an issue's fix is not known to be live in the deployment running now. Sentry says how it was
 * resolved in `resolution_type`: the types of SENTRY_RESOLVED_NOW resolve now, those of
 * SENTRY_RESOLVED_LATER wait for their fix. Without one (an older Sentry), or with a type not known
 * here (one Sentry adds), the statusDetails decide (inNextRelease, inUpcomingRelease, inRelease,
 * inCommit; none: resolved now). For "Resolve in the upcoming release" they carry only the actor,
 * which is why a known resolution type comes first.
 */
function resolvedLater(
  resolutionType: string | null | undefined,
  details: SentryStatusDetails | null | undefined,
): string | undefined {
  const text = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v) : undefined);
  const given = (v: unknown) => v !== undefined && v !== null && v !== false;
  const release = text(details?.inRelease);
  const commit = details?.inCommit;
  const commitId = given(commit)
    ? (text(commit) ??
      (typeof commit === 'object' ? text((commit as Record<string, unknown>).commit) : undefined))
    : undefined;
  const type = resolutionType?.trim().toLowerCase() ?? '';
  if (SENTRY_RESOLVED_NOW.includes(type)) return undefined;
  const later = SENTRY_RESOLVED_LATER.get(type);
  if (later !== undefined) {
    if (type === 'in_release' && release) return `in release ${release}`;
    if ((type === 'in_commit' || type === 'with_commit') && commitId) return `in commit ${commitId}`;
    return later;
  }
  if (!details) return undefined;
  if (given(details.inNextRelease)) return 'in the next release';
  if (given(details.inUpcomingRelease)) return 'in the upcoming release';
  if (release) return `in release ${release}`;
  if (given(commit)) return commitId ? `in commit ${commitId}` : 'in a commit';
  return undefined;
}

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
  data: z.object({ issue: z.object({ id: idLike, title: z.string().optional() }) }),
});

/** `Sentry-Hook-Resource` values whose deliveries may be alerts; the others are accepted and ignored. */
const SENTRY_ALERT_RESOURCES: readonly string[] = ['event_alert', 'metric_alert', 'issue'];

/** The keys of `data` that name a resource other than an alert (comment, installation, error). */
const SENTRY_OTHER_DATA = ['comment', 'installation', 'error'] as const;

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
 * Sentry's deliveries. The `Sentry-Hook-Resource` header (`opts.sentryResource`) names the resource:
 * one other than `event_alert`, `metric_alert` and `issue` (`installation`, `comment`, `error`,
 * `activity_alert`, …) is not an alert and is ignored. Then the documented shape decides (without the
 * header as well, where a data.comment / data.installation / data.error body is ignored too):
 * - data.metric_alert: a metric alert, `critical` / `warning` (firing) or `resolved`;
 * - `triggered` with data.event: an issue alert (firing; the event carries the environment tag);
 *   `triggered` with data.issue and no event (an activity alert) is ignored: no environment;
 * - `resolved` with data.issue: the issue was resolved, unless Sentry resolves it in a release or
 *   commit still to come (`data.resolution_type` in_next_release, in_upcoming_release, in_release,
 *   in_commit or with_commit; without a type known here, statusDetails' inNextRelease,
 *   inUpcomingRelease, inRelease, inCommit): ignored, as its fix is not known to be live in the
 *   deployment running now;
 * - `created` / `assigned` / `archived` (`ignored`) / `unresolved` with data.issue (or any other action
 *   of the issue resource): ignored. An issue webhook carries no environment, so only alertMatchers could place it, which could turn a
 *   staging issue into a production suggestion; and subscribing to the issue resource would make every
 *   new issue of every project a candidate, past the filters of the user's alert rules. New issues and
 *   regressions reach Switchyard as issue alerts instead ("A new issue is created", "The issue changes
 *   state from resolved to unresolved"), with the event's environment.
 */
function sentryAlerts(body: unknown, opts: ParseOptions): Result<AlertDelivery> {
  const action = valueAt(body, ['action']);
  // Both are echoed in the answer: bounded.
  const actionText = clip(typeof action === 'string' ? action : shownValue(action), 64);
  const resource = clip(opts.sentryResource?.trim().toLowerCase() ?? '', 64) || undefined;
  const ignore = (title: string, detail: string, more: Omit<IgnoredItem, 'title' | 'detail'> = {}) =>
    ok(delivery([], [{ title, ...more, detail }]));
  // The header names what the body is about: a comment, an installation, an error event… are not
  // alerts. Accepted, so Sentry does not count them as failed deliveries.
  if (resource !== undefined && !SENTRY_ALERT_RESOURCES.includes(resource)) {
    return ignore(
      `Sentry ${resource} "${actionText}"`,
      `Sentry-Hook-Resource "${resource}" is not an alert: accepted and ignored.`,
    );
  }
  if (valueAt(body, ['data', 'metric_alert']) !== undefined) {
    const parsed = sentryMetricAlerts(body, opts);
    return parsed.ok ? ok(delivery(parsed.value)) : parsed;
  }
  if (resource === undefined) {
    const other = SENTRY_OTHER_DATA.find((k) => valueAt(body, ['data', k]) !== undefined);
    if (
      other !== undefined &&
      valueAt(body, ['data', 'issue']) === undefined &&
      valueAt(body, ['data', 'event']) === undefined
    )
      return ignore(
        `Sentry ${other} "${actionText}"`,
        `A Sentry ${other} webhook is not an alert: accepted and ignored.`,
      );
  }
  if (action === 'triggered') {
    // An alert on issue activity carries the issue but no event, so no environment (see below).
    const issueId = valueAt(body, ['data', 'issue', 'id']);
    if (
      valueAt(body, ['data', 'event']) === undefined &&
      (typeof issueId === 'string' || typeof issueId === 'number')
    ) {
      const title = valueAt(body, ['data', 'issue', 'title']);
      return ignore(
        typeof title === 'string' && title.trim() !== '' ? clip(title, MAX_TITLE) : `Sentry issue ${issueId}`,
        'An activity alert carries the issue but no event, so no environment: accepted and ignored. Use an issue alert rule, whose deliveries carry the event and its environment.',
        { fingerprint: String(issueId) },
      );
    }
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
    return ok(
      delivery([
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
      ]),
    );
  }
  if (action === 'resolved') {
    const parsed = check(sentryResolved, body, 'sentry');
    if (!parsed.ok) return parsed;
    const issue = parsed.value.data.issue;
    const labels: Record<string, string> = {};
    if (issue.project?.slug) labels.project = issue.project.slug;
    const title = clip(issue.title, MAX_TITLE);
    const later = resolvedLater(parsed.value.data.resolution_type, issue.statusDetails);
    if (later !== undefined) {
      return ignore(
        title,
        `Sentry resolves this issue ${later}: its fix is not known to be live in the deployment running now, so its suggestion is not marked resolved.`,
        { status: 'resolved', fingerprint: issue.id },
      );
    }
    return ok(
      delivery([
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
      ]),
    );
  }
  const known = (SENTRY_ISSUE_IGNORED as readonly unknown[]).includes(action);
  if (known || resource === 'issue') {
    // A known action is checked (a malformed body is named); another action of the issue resource
    // (one Sentry added since) is accepted as well.
    if (known) {
      const parsed = check(sentryIssueIgnored, body, 'sentry');
      if (!parsed.ok) return parsed;
    }
    const id = valueAt(body, ['data', 'issue', 'id']);
    const title = valueAt(body, ['data', 'issue', 'title']);
    return ignore(
      typeof title === 'string' && title.trim() !== ''
        ? clip(title, MAX_TITLE)
        : `Sentry issue webhook "${actionText}"`,
      `An issue webhook ("${actionText}") carries no environment: accepted and ignored. New issues and regressions come through issue alert rules, with their environment.`,
      typeof id === 'string' || typeof id === 'number' ? { fingerprint: String(id) } : {},
    );
  }
  return invalid(
    `action: expected "triggered" (issue alert), "critical", "warning" or "resolved" (metric alert, with data.metric_alert) or an issue webhook action (${['resolved', ...SENTRY_ISSUE_IGNORED].map((a) => `"${a}"`).join(', ')}), got ${shownValue(action)}`,
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
export type AlertParser = (body: unknown, opts: ParseOptions) => Result<AlertDelivery>;

/** Alerts only: nothing of the delivery is ignored. */
function alertsOnly(parsed: Result<NormalizedAlert[]>): Result<AlertDelivery> {
  return parsed.ok ? ok(delivery(parsed.value)) : parsed;
}

/** Alertmanager webhook version 4: one alert per member (firing or resolved), keyed by the group key. */
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
export const parsePagerDuty: AlertParser = (body, opts) => alertsOnly(pagerdutyAlerts(body, opts));

/** The documented generic JSON shape: one object or an array of them. */
export const parseGeneric: AlertParser = (body, opts) => alertsOnly(genericAlerts(body, opts));

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
 * Parses one webhook body (already JSON-decoded) from `source`: the alerts to handle, and what is
 * accepted and not acted on (a Sentry comment webhook, an issue resolved in the next release, …) with
 * the reason. A payload that carries nothing to act on (a PagerDuty acknowledgement, a ping) gives
 * empty lists; a malformed one gives an `invalid_input` refusal whose message names the field.
 */
export function parseAlertDelivery(
  source: AlertSource,
  body: unknown,
  opts: ParseOptions,
): Result<AlertDelivery> {
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

/** `parseAlertDelivery`'s alerts only (what is ignored is dropped). */
export function parseAlertPayload(
  source: AlertSource,
  body: unknown,
  opts: ParseOptions,
): Result<NormalizedAlert[]> {
  const parsed = parseAlertDelivery(source, body, opts);
  return parsed.ok ? ok(parsed.value.alerts) : parsed;
}
