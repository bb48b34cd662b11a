/**
 * One way to say what a zod parse found wrong when the input is Switchyard's own or a platform's data
 * (job data, stored plans, platform events, chat payloads): `path: message` per issue, joined with `; `.
 * Inputs typed by people use richer formatters that also show the value received: `formatIssues` in
 * config.ts (env vars and the config file) and `formatAlertIssues` in alerts/parsers.ts (webhooks).
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

/** `a.b: expected a string; c: required` — `root` names an issue about the whole value. */
export function describeIssues(error: z.ZodError, root = '(root)'): string {
  return issueLines(error, root).join('; ');
}

/** One `path: message` line per issue (for structured logs). */
export function issueLines(error: z.ZodError, root = '(root)'): string[] {
  return error.issues.map((i) => `${i.path.map(String).join('.') || root}: ${i.message}`);
}
