/**
 * One way to say what a zod parse found wrong when the input is Switchyard's own or a platform's data
 * (job data, stored plans, platform events, chat payloads): `path: message` per issue, joined with `; `.
 * Inputs typed by people use richer formatters that also show the value received: `formatIssues` in
 * config.ts (env vars and the config file, with `expectation` below wording each issue) and
 * `formatAlertIssues` in alerts/parsers.ts (webhooks).
 */
import type { z } from 'zod';

/** The value at an issue's `path` inside the parsed `root` (what was received there), if any. */
export function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

/**
 * Most problems `describeIssues` names; the rest are counted. A payload with a 5,000-item list of bad
 * entries is refused in a line, not echoed back whole (to a person, or into a log line).
 */
const NAMED_ISSUES = 5;

/** `a.b: expected a string; c: required` — `root` names an issue about the whole value. */
export function describeIssues(error: z.ZodError, root = '(root)'): string {
  const lines = issueLines(error, root);
  const more = lines.length - NAMED_ISSUES;
  return more > 0 ? `${lines.slice(0, NAMED_ISSUES).join('; ')}; and ${more} more` : lines.join('; ');
}

/** One `path: message` line per issue (for structured logs). */
export function issueLines(error: z.ZodError, root = '(root)'): string[] {
  return error.issues.map((i) => `${i.path.map(String).join('.') || root}: ${i.message}`);
}

/**
 * zod's own English (its default messages: `Invalid option: expected one of "a"|"b"`, `Too small:
 * expected number to be >=0`, `Invalid input: expected int, received number`), as opposed to a message a
 * schema gives. Only these are reworded by `expectation`; a schema's own message is kept as written.
 */
const ZOD_WORDING = /^(Invalid\b|Too (small|big):|Unrecognized keys?:)/;

/** zod's type names (`issue.expected`) as a person would say them about a config value. */
const TYPE_WORDS: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  bigint: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  tuple: 'a list',
  set: 'a list',
  object: 'a mapping',
  record: 'a mapping',
  map: 'a mapping',
  date: 'a date',
  null: 'null',
};

/** A value zod names (an enum option, a literal): a plain word as it is, anything else JSON-quoted. */
function shown(value: unknown): string {
  if (typeof value === 'string') return /^[\w.-]+$/.test(value) ? value : JSON.stringify(value);
  return typeof value === 'bigint' ? `${value}` : (JSON.stringify(value) ?? String(value));
}

/** `a number at least 1`, `a list of at most 2 items`, `a non-empty string`: one bound of a size. */
function bound(origin: string, side: 'min' | 'max', limit: number | bigint, inclusive = true): string {
  const n = Number(limit);
  if (origin === 'string' && side === 'min' && inclusive && n === 1) return 'a non-empty string';
  const plural = (unit: string) => `${unit}${n === 1 ? '' : 's'}`;
  if (origin === 'string' || origin === 'array' || origin === 'set') {
    const words =
      side === 'min' ? (inclusive ? 'at least' : 'more than') : inclusive ? 'at most' : 'fewer than';
    return origin === 'string'
      ? `a string of ${words} ${n} ${plural('character')}`
      : `a list of ${words} ${n} ${plural('item')}`;
  }
  const words =
    side === 'min' ? (inclusive ? 'at least' : 'greater than') : inclusive ? 'at most' : 'less than';
  return `${origin === 'date' ? 'a date' : 'a number'} ${words} ${origin === 'date' ? new Date(n).toISOString() : n}`;
}

/**
 * What an issue expected, in words that follow "got <value>, ": the schema's own message when it gave
 * one, else zod's default reworded from the issue's details (`expected one of trace, debug, …`,
 * `expected a number at least 0`, `expected a whole number`), never zod's English with its "received
 * number" (the value is shown beside it already) or its `>=`.
 */
export function expectation(issue: z.core.$ZodIssue): string {
  if (!ZOD_WORDING.test(issue.message)) return issue.message;
  switch (issue.code) {
    case 'invalid_type':
      return `expected ${TYPE_WORDS[issue.expected] ?? issue.expected}`;
    case 'invalid_value':
      return issue.values.length === 1
        ? `expected ${shown(issue.values[0])}`
        : `expected one of ${issue.values.map(shown).join(', ')}`;
    case 'too_small':
      return `expected ${bound(issue.origin, 'min', issue.minimum, issue.inclusive)}`;
    case 'too_big':
      return `expected ${bound(issue.origin, 'max', issue.maximum, issue.inclusive)}`;
    case 'invalid_format': {
      const f = issue as z.core.$ZodIssueInvalidStringFormat & {
        prefix?: string;
        suffix?: string;
        includes?: string;
      };
      if (f.format === 'regex' && f.pattern !== undefined) return `expected a string matching ${f.pattern}`;
      if (f.format === 'starts_with') return `expected a string starting with ${JSON.stringify(f.prefix)}`;
      if (f.format === 'ends_with') return `expected a string ending with ${JSON.stringify(f.suffix)}`;
      if (f.format === 'includes') return `expected a string containing ${JSON.stringify(f.includes)}`;
      return `expected a valid ${f.format}`;
    }
    case 'not_multiple_of':
      return `expected a multiple of ${issue.divisor}`;
    case 'unrecognized_keys':
      // A key as written, clipped: a 5,000-character key is not echoed back whole.
      return `expected only known keys (${issue.keys
        .slice(0, 8)
        .map((k) => JSON.stringify(k.length > 40 ? `${k.slice(0, 39)}…` : k))
        .join(
          ', ',
        )}${issue.keys.length > 8 ? ', …' : ''} ${issue.keys.length === 1 ? 'is not one' : 'are not'}: misspelt?)`;
    case 'invalid_union': {
      // One option per accepted type (number | string): say which types; deeper mismatches are vaguer.
      const types = issue.errors.map((errs) =>
        errs.length === 1 && errs[0]?.code === 'invalid_type' && errs[0].path.length === 0
          ? TYPE_WORDS[errs[0].expected]
          : undefined,
      );
      return types.every((t) => t !== undefined) && types.length > 0
        ? `expected ${[...new Set(types)].join(' or ')}`
        : 'expected one of the accepted forms';
    }
    case 'invalid_key':
      return `expected a valid key${issue.issues[0] ? `: ${expectation(issue.issues[0])}` : ''}`;
    case 'invalid_element':
      return `expected valid entries${issue.issues[0] ? `: ${expectation(issue.issues[0])}` : ''}`;
    default:
      // `Invalid input` alone: a refinement without a message of its own
      return issue.message === 'Invalid input'
        ? 'expected a valid value'
        : issue.message.replace(/^Invalid input: /, '');
  }
}
