/**
 * Text helpers shared by the view model and the renderers: durations, timestamps, span builders,
 * and length-safe truncation. Pure; times are passed in (never read from the system clock).
 */
import type { PersonSurface, Rich, Span, UsageArg, ViewBlock } from './types.js';

/** A plain span. */
export function t(text: string): Span {
  return { text };
}

/** A bold span. */
export function b(text: string): Span {
  return { text, style: 'bold' };
}

/** A code span (ids, shas, hostnames). */
export function c(text: string): Span {
  return { text, style: 'code' };
}

/** An italic span. */
export function i(text: string): Span {
  return { text, style: 'italic' };
}

/** Anyone a message names: an actor (src/progress.ts) or an older record's display name alone. */
export interface PersonLike {
  readonly displayName: string;
  readonly surface?: PersonSurface;
  readonly userId?: string;
  /** Discord's unique username (`Actor.username`), when recorded. */
  readonly username?: string | undefined;
}

/**
 * A person span: their display name, with their surface and id when known (renderers then show a
 * mention, see `Span.person`) and their Discord username when recorded; `fallback` when nobody is given.
 */
export function person(a: PersonLike | undefined, fallback = 'someone'): Span {
  if (a === undefined) return { text: fallback };
  if (a.surface === undefined || a.userId === undefined || a.userId === '') return { text: a.displayName };
  const username = shownUsername(a.displayName, a.username);
  return {
    text: a.displayName,
    person: { surface: a.surface, userId: a.userId, ...(username === undefined ? {} : { username }) },
  };
}

/**
 * The username to show beside `displayName`: only when one is recorded and differs from it. A Discord
 * mention renders the server nickname, which any member sets ("alice"); the username is unique, so an
 * impostor reads "@alice (@mallory)" while the real alice, whose name is her username, reads "@alice".
 */
function shownUsername(displayName: string, username: string | undefined): string | undefined {
  return username === undefined || username === '' || username === displayName ? undefined : username;
}

/**
 * A person as plain text, for places where no mention renders (the Approve dialog, titles, summaries):
 * the display name, with the username when it differs ("alice (@mallory)", see `shownUsername`).
 */
export function personName(a: PersonLike | undefined, fallback = 'someone'): string {
  if (a === undefined) return fallback;
  const username = shownUsername(a.displayName, a.username);
  return username === undefined ? a.displayName : `${a.displayName} (@${username})`;
}

const SURFACE_LABEL: Readonly<Record<Exclude<PersonSurface, 'system'>, string>> = {
  slack: 'Slack',
  discord: 'Discord',
  console: 'the console',
};

/**
 * A span's text as plain text on `surface`: a person of another surface gets theirs said ("alice (on
 * Discord)", or "alice (@mallory on Discord)" with a username that differs from the name), as their
 * name means nothing there and may be someone else's here; Switchyard's own actors (`system`) keep
 * their name, people of `surface` their name with the username that differs ("alice (@mallory)":
 * where a renderer could not write a mention).
 */
export function personLabel(s: Span, surface: Exclude<PersonSurface, 'system'>): string {
  const p = s.person;
  if (p === undefined || p.surface === 'system') return s.text;
  if (p.surface === surface) return p.username === undefined ? s.text : `${s.text} (@${p.username})`;
  return `${s.text} (${p.username === undefined ? '' : `@${p.username} `}on ${SURFACE_LABEL[p.surface]})`;
}

/** Concatenates the raw text of spans (plain-text fallbacks, tests). */
export function plainText(spans: Rich): string {
  return spans.map((s) => s.text).join('');
}

function unit(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Duration for sentences: "45 seconds", "7 minutes", "2 hours 5 minutes", "3 days 4 hours". */
export function longDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return unit(s, 'second');
  const m = Math.floor(s / 60);
  if (m < 60) return unit(m, 'minute');
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 === 0 ? unit(h, 'hour') : `${unit(h, 'hour')} ${unit(m % 60, 'minute')}`;
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? unit(d, 'day') : `${unit(d, 'day')} ${unit(h % 24, 'hour')}`;
}

/**
 * Duration for step timings: "350 ms", "1.2 s", "12 s", "3 min 5 s", "1 h 2 min". Each unit is chosen
 * after rounding to its precision, so a value rounds up into the next form rather than past the
 * current one: 9.96 s reads "10 s" (not "10.0 s"), 59.96 s "1 min" (not "60 s").
 */
export function shortDuration(ms: number): string {
  const v = Math.max(0, Math.round(ms));
  if (v < 1000) return `${v} ms`;
  const tenths = Math.round(v / 100);
  if (tenths < 100) return `${(tenths / 10).toFixed(1)} s`;
  const totalS = Math.round(v / 1000);
  if (totalS < 60) return `${totalS} s`;
  const m = Math.floor(totalS / 60);
  if (m < 60) return totalS % 60 === 0 ? `${m} min` : `${m} min ${totalS % 60} s`;
  const h = Math.floor(m / 60);
  return m % 60 === 0 ? `${h} h` : `${h} h ${m % 60} min`;
}

/** Absolute time in UTC, the same on every surface: "2026-11-29 12:00 UTC". */
export function formatTime(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/**
 * Cuts `text` to at most `max` characters (UTF-16 units, as the chat APIs count), ending in "…" when
 * cut, without splitting a surrogate pair.
 */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  if (max <= 1) return '…'.slice(0, max);
  let end = max - 1;
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…`;
}

/** One white-space character, as `\s` matches in a regular expression. */
const SPACE = /\s/;

/** A text cut into its leading white space, what lies between, and its trailing white space. */
export interface SpaceSplit {
  readonly lead: string;
  readonly core: string;
  readonly tail: string;
}

/**
 * Splits off `text`'s leading and trailing white space (all of it white space: `lead` holds it, `core`
 * and `tail` are empty). The renderers wrap only the core in a markdown marker. Found by scanning in
 * from both ends, once each: a regular expression with a lazy middle, `^(\s*)([\s\S]*?)(\s*)$`, tries
 * the trailing group at every position and rescans each run of spaces inside the text, which took
 * seconds on one long span.
 */
export function splitSpace(text: string): SpaceSplit {
  let start = 0;
  while (start < text.length && SPACE.test(text.charAt(start))) start += 1;
  let end = text.length;
  while (end > start && SPACE.test(text.charAt(end - 1))) end -= 1;
  return { lead: text.slice(0, start), core: text.slice(start, end), tail: text.slice(end) };
}

/**
 * First line of a commit message, trimmed and capped for display; '' when there is none (an Unkey
 * deployment carries its sha only), which callers leave out rather than show a filler.
 */
export function commitSubject(message: string, max = 150): string {
  const first = message.split(/\r?\n/, 1)[0] ?? '';
  return truncate(first.trim(), max);
}

/**
 * Renders list items one line each, keeping only as many as fit `maxItems` and `budget` characters
 * (counting `used` already spent), and ends with `more(rest, total)` whenever anything is left out —
 * never a silent cut. Every renderer collapses long lists through this.
 */
export function fitLines<T>(
  items: readonly T[],
  render: (item: T) => string,
  opts: { budget: number; used?: number; maxItems: number; more: (rest: number, total: number) => string },
): string[] {
  const lines: string[] = [];
  let used = opts.used ?? 0;
  for (const item of items) {
    if (lines.length >= opts.maxItems) break;
    const line = render(item);
    if (used + line.length + 1 > opts.budget) break;
    lines.push(line);
    used += line.length + 1;
  }
  const rest = items.length - lines.length;
  if (rest > 0) lines.push(opts.more(rest, items.length));
  return lines;
}

/**
 * The line that ends a list `fitLines` cut, before a surface sets it in italics: "…and 3 more (18 in
 * total)", or "…and 3 more" when the items are only the latest of a history read in part (`latest`):
 * their count is no total.
 */
export function moreLine(rest: number, total: number, latest = false): string {
  return latest ? `…and ${rest} more` : `…and ${rest} more (${total} in total)`;
}

/** The usage line of a slash command: `/rollback <environment> [deployment-id]`. */
export function usageLine(command: string, args: readonly UsageArg[]): string {
  return `/${command} ${args.map((a) => (a.required ? `<${a.placeholder}>` : `[${a.placeholder}]`)).join(' ')}`;
}

/**
 * The line under a limited deployment list: "Showing 10 of 25 deployments (…)", or, when the platform
 * adapter stopped reading at its limit, "Showing 10 of the 500 deployments read (…); more exist": 500 is
 * then only how many were read.
 */
export function shownOf(block: Extract<ViewBlock, { type: 'rows' }>): string {
  const which = '(the most recent and the live one)';
  return block.truncated
    ? `Showing ${block.rows.length} of the ${block.total} deployments read ${which}; more exist.`
    : `Showing ${block.rows.length} of ${block.total} deployments ${which}.`;
}
