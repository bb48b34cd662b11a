/**
 * Alerts from messages in watched Slack and Discord channels (`alerts.watch.slack` / `.discord`), from
 * alert bots or people. A message is an alert when it says so: a leading status tag (`[FIRING:2]`,
 * `[FIRING:2, RESOLVED:1]`, `[RESOLVED]`, `[P1] [Triggered]`, `Recovered: X`, …) decides; otherwise a
 * resolved word ("resolved", "recovered", not negated as in "not resolved" / "no recovery yet") makes
 * it resolved, and a firing word ("firing", "down", "5xx", …) firing. The environment comes from
 * patterns like `env=production`, `environment: prod`, `[prod]`, `(production)` (an exact name or an
 * alias, never a prefix: `[product]` is no environment), else from the per-environment
 * `alertMatchers` later in mapping; a message naming several environments (a grouped notification
 * listing `env = staging` and `env = production`) is mapped to none of them. Bot titles such as
 * `[FIRING:2] HighLatency` / `[RESOLVED] HighLatency` and `Triggered: X` / `Recovered: X`, after any
 * leading emoji (`:rotating_light:`, 🔥), give a fingerprint, so the resolved message finds the
 * suggestion of the firing one. A firing message that re-sends an alert (Datadog's `Re-Triggered: X`,
 * `[Re-Triggered] X`, `[P1] [Renotify] X`, read as the Datadog webhook reads its title) is marked a
 * re-notification: it is posted when re-sent, not when the alert started. Missing data is read as the
 * webhooks read it: a message saying a query returned nothing (Datadog's `[No Data]` / `[Re-No Data]`,
 * Grafana's `DatasourceNoData`) is an alert marked `missingData`, correlated as any other; one saying a
 * rule's query failed (Grafana's `DatasourceError`) carries why it is no evidence of a bad deploy
 * (`noEvidence`, the webhook's detail): the service answers it `ignored`, as the webhook does. Pure.
 */
import { createHash } from 'node:crypto';
import type { Config } from '../config.js';
import { resolveEnvironmentExact } from './mapping.js';
import {
  datadogTitleNoData,
  datadogTitleRenotified,
  grafanaQueryErrorDetail,
  isDatadogRenotification,
  isGrafanaNoData,
  isGrafanaQueryError,
} from './parsers.js';
import { type AlertStatus, type NormalizedAlert, normalizedAlert } from './types.js';

const MAX_TEXT = 4_000;

const RESOLVED_WORDS =
  /(\[resolved\]|\b(resolved|recovered|recovery|back to normal|all clear|is back up|no longer firing)\b|✅|:white_check_mark:)/i;
/** "not resolved", "no recovery yet", "hasn't been resolved", "not back to normal": no resolution. */
const NEGATED_RESOLUTION =
  /\b(?:not|no|never|without|yet to|(?:is|are|was|were|has|have|had|did)n['’`]?t)\s+(?:(?:yet|been|be|fully|really|completely|quite|even)\s+)*(?:resolved|recovered|recover|recovery|back to normal|all clear|back up)\b/gi;
const FIRING_WORDS =
  /(\[firing(:\d+)?\]|\b(firing|triggered|alert(ing)?|down|outage|incident|errors?|failing|failed|failures?|critical|degraded|5\d\d|5xx|latency|timeouts?|crash(ing|ed)?)\b|🔥|🚨|:rotating_light:|:fire:)/i;

const ENV_ASSIGN = /\b(?:env|environment)\s*([=:])(\s*)["'`]?([A-Za-z0-9][A-Za-z0-9_.-]*)/gi;
/** What may follow a label-like `environment: qa`: the end of its line or clause, not more prose. */
const ENDS_VALUE = /^["'`]?[ \t]*(?:$|[\r\n,;)\]|])/;
const BRACKETED = /[[(]([A-Za-z][A-Za-z0-9_-]{1,40})[\])]/g;
const ENV_WORDS = new Set([
  'prod',
  'prd',
  'production',
  'live',
  'staging',
  'stg',
  'stage',
  'dev',
  'development',
  'preview',
]);

// Alertmanager's `[FIRING:2]` / `[RESOLVED]`, Grafana's `[FIRING:2, RESOLVED:1]` (a group that still
// fires while some of its alerts resolved), and `Triggered: X` / `Recovered: X`.
const BOT_TITLE =
  /^\s*(?:\[(FIRING(?::\d+)?(?:\s*,\s*RESOLVED(?::\d+)?)?|RESOLVED(?::\d+)?)\]|(Triggered|Re-Triggered|Recovered|Resolved)\s*:)\s*(.+)$/i;

/**
 * Emoji a first line may start with before its status tag: Slack `:shortcodes:`, Discord custom emoji
 * (`<:name:id>`, which `plain` turns into `:name:id`) and Unicode pictographs (with variation
 * selectors, skin tones, ZWJ sequences and flags).
 */
const LEADING_EMOJI =
  /^(?:\s*(?::[a-z0-9_+'-]+:(?:\d{15,21})?|\p{Regional_Indicator}{2}|\p{Extended_Pictographic}(?:\uFE0F|\p{Emoji_Modifier}|\u200D\p{Extended_Pictographic})*\uFE0F?))+\s*/iu;

/** A first line (already `plain`) without the emoji it starts with. */
function withoutLeadingEmoji(line: string): string {
  return line.replace(LEADING_EMOJI, '');
}

/** The bracketed tags a first line starts with: `[P1] [Triggered] X` → `P1`, `Triggered`. */
const LEADING_TAGS = /^\s*((?:\[[^\]\n]*\]\s*)+)/;
const FIRING_TAG =
  /^(?:firing(?::\d+)?(?:\s*,\s*resolved(?::\d+)?)?|(?:re-)?triggered(?:\s+on\s+.*)?|alert(?:ing)?|critical|(?:re-)?warn(?:ing)?|(?:re-)?no data(?:\s+on\s+.*)?|problem)$/i;
const RESOLVED_TAG = /^(?:resolved(?::\d+)?|recovered(?:\s+on\s+.*)?|(?:alert |warn )?recovery|ok)$/i;

/** The status a first line's leading tag gives, if any: the first tag that is a status decides. */
function leadingStatus(firstLine: string): AlertStatus | undefined {
  const bot = BOT_TITLE.exec(firstLine);
  const tag = (bot?.[1] ?? bot?.[2] ?? '').toLowerCase();
  if (tag) return tag.startsWith('resolved') || tag.startsWith('recovered') ? 'resolved' : 'firing';
  const lead = LEADING_TAGS.exec(firstLine)?.[1];
  if (!lead) return undefined;
  for (const m of lead.matchAll(/\[([^\]\n]*)\]/g)) {
    const word = (m[1] ?? '').trim().replace(/\s+/g, ' ');
    if (FIRING_TAG.test(word)) return 'firing';
    if (RESOLVED_TAG.test(word)) return 'resolved';
  }
  return undefined;
}

/**
 * Removes Slack/Discord markup so titles read as plain text: bold, italics, strike and code marks go,
 * but an emoji `:shortcode:` keeps its underscores (`:rotating_light:`).
 */
function plain(text: string): string {
  return text
    .replace(/<([^|>]+)\|([^>]+)>/g, '$2')
    .replace(/<([^>]+)>/g, '$1')
    .replace(/(:[a-z0-9_+'-]+:)|[*_~`]+/gi, (_m, shortcode: string | undefined) => shortcode ?? '')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * Whether a first line (already `plain`, without its leading emoji) re-sends an alert: a bot title's
 * status (`Re-Triggered: X`) decides, else its Datadog status tag (`[P1] [Re-Triggered on {host:a}]
 * X`, `[Renotify] X`), with the transitions the Datadog parser knows.
 */
function renotified(firstLine: string): boolean {
  const bot = BOT_TITLE.exec(firstLine);
  if (bot) return bot[2] !== undefined && isDatadogRenotification(bot[2]);
  return datadogTitleRenotified(firstLine);
}

/** `alertname = X`, `alertname: X`, `alertname="X"`: the alert names a message lists (Grafana's body). */
const ALERTNAME = /\balertname\s*[=:]\s*["'`]?([A-Za-z0-9_:.-]+)/gi;
/** `rulename = X` (Grafana's label naming the rule of a `DatasourceError`), to its line's end. */
const RULENAME = /\brulename\s*[=:]\s*["'`]?([^"'`\n]+)/i;

/**
 * What a message says of missing data, as the webhooks' senders say it (see parsers.ts). Grafana's
 * alerts count when every alert name the message lists is one of its own (a message listing another
 * alert is about that one too), or, listing none, when its title starts with one:
 * - `noEvidence`, the webhook's detail, whatever the status: Grafana's `DatasourceError` (the rule's
 *   query failed: about the monitoring, not the app);
 * - `missingData` when firing: a Datadog `[No Data]` / `[Re-No Data]` status tag, or Grafana's
 *   `DatasourceNoData` (also beside a `DatasourceError`): the query returned nothing.
 */
function missingData(
  text: string,
  headline: string,
  title: string,
  status: AlertStatus,
): { readonly missingData?: true; readonly noEvidence?: string } {
  if (status === 'firing' && datadogTitleNoData(headline)) return { missingData: true };
  const listed = [...text.matchAll(ALERTNAME)].map((m) => m[1] ?? '');
  const names =
    listed.length > 0 ? listed : [/^\s*(DatasourceNoData|DatasourceError)\b/i.exec(title)?.[1] ?? ''];
  if (!names.every((n) => isGrafanaNoData(n) || isGrafanaQueryError(n))) return {};
  if (names.every(isGrafanaQueryError))
    return { noEvidence: grafanaQueryErrorDetail(names[0] ?? '', RULENAME.exec(text)?.[1]?.trim()) };
  return status === 'firing' ? { missingData: true } : {};
}

/**
 * The alert's status: a leading tag of its first non-blank line (a template's leading newline is no
 * line of its own: the title and incident come from the same line), else the words of the whole text.
 */
function statusOf(text: string): AlertStatus | undefined {
  const first = text.split('\n').find((l) => l.trim() !== '') ?? '';
  const tagged = leadingStatus(withoutLeadingEmoji(plain(first)));
  if (tagged) return tagged;
  if (RESOLVED_WORDS.test(text.replace(NEGATED_RESOLUTION, ' '))) return 'resolved';
  if (FIRING_WORDS.test(text)) return 'firing';
  return undefined;
}

/**
 * The environments a message names, distinct, in the order written: each `env=`/`environment:` value
 * and each bracketed `[prod]`/`(production)` word, resolved exactly or as an alias. An assigned name no
 * environment has (`env=qa`) counts too — the alert then stays unmapped rather than matched — when it
 * is written like a label: `env=qa`, `env:qa`, or `environment: qa` ending its line or clause; `env:
 * the checkout service is down` is prose, not an environment named "the".
 */
function environmentsOf(text: string, known: readonly string[]): string[] {
  const named: { at: number; name: string }[] = [];
  const add = (at: number, name: string) => named.push({ at, name });
  for (const m of text.matchAll(ENV_ASSIGN)) {
    const [whole, separator, space, raw = ''] = m;
    const value = raw.replace(/[._-]+$/, ''); // `env: production.` ends a sentence
    if (value === '') continue;
    const resolved = resolveEnvironmentExact(known, value);
    if (resolved) add(m.index, resolved);
    else if (ENV_WORDS.has(value.toLowerCase())) add(m.index, value);
    else if (separator === '=' || space === '' || ENDS_VALUE.test(text.slice(m.index + whole.length)))
      add(m.index, value);
  }
  for (const m of text.matchAll(BRACKETED)) {
    const word = m[1];
    if (!word) continue;
    // Exact or alias only: `[product]`, `(pre)`, `(st)` merely start like an environment.
    const resolved = resolveEnvironmentExact(known, word);
    if (resolved) add(m.index, resolved);
    else if (ENV_WORDS.has(word.toLowerCase())) add(m.index, word);
  }
  const distinct = new Map<string, string>();
  for (const { name } of named.sort((a, b) => a.at - b.at)) {
    if (!distinct.has(name.toLowerCase())) distinct.set(name.toLowerCase(), name);
  }
  return [...distinct.values()];
}

export interface ChatAlertOptions {
  /** Unix ms the message was posted (its start time). Default: now. */
  readonly at?: number;
}

/**
 * Reads a message from a watched channel as an alert, or returns undefined when the channel is not
 * watched or the message does not look like an alert. `config.file.environments` supplies the names
 * `[prod]`-style tags are resolved against.
 */
export function parseChatAlert(
  text: string,
  channel: string,
  surface: 'slack' | 'discord',
  config: Pick<Config, 'file'>,
  opts: ChatAlertOptions = {},
): NormalizedAlert | undefined {
  if (!config.file.alerts.watch[surface].includes(channel)) return undefined;
  const body = text.slice(0, MAX_TEXT);
  const status = statusOf(body);
  if (status === undefined) return undefined;
  const firstLine = plain(body.split('\n').find((l) => l.trim() !== '') ?? '');
  const labels: Record<string, string> = {};
  // One environment named: the label. Several (a notification grouping the alerts of staging and
  // production): all of them, which names no one environment, so mapping leaves the alert unmapped
  // (as for a webhook, exactly one environment must match) and no matcher picks one either.
  const envs = environmentsOf(body, Object.keys(config.file.environments));
  if (envs.length > 0) labels.env = envs.join(',');
  const headline = withoutLeadingEmoji(firstLine);
  const bot = BOT_TITLE.exec(headline);
  const botTitle = bot?.[3]?.trim();
  const fingerprint = botTitle
    ? createHash('sha256')
        .update(`${surface}\u0000${channel}\u0000${botTitle.toLowerCase()}`)
        .digest('hex')
        .slice(0, 32)
    : undefined;
  return normalizedAlert({
    source: surface,
    status,
    title: (botTitle ?? firstLine).slice(0, 300) || 'Alert message',
    fingerprint,
    // When the message was posted. Of a re-notification, that is when the alert was re-sent (the
    // message says nothing of when it started): marked, so the service does not correlate it.
    startedAt: opts.at ?? Date.now(),
    renotification: status === 'firing' && renotified(headline),
    ...missingData(body.split('\n').map(plain).join('\n'), headline, botTitle ?? headline, status),
    labels,
    text: plain(body),
  });
}
