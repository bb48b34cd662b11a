/**
 * Maps an alert to the environment it is about. In order:
 * 1. environment labels/tags (`env`, `environment`, OpenTelemetry's `deployment.environment.name` and
 *    its Prometheus form `deployment_environment_name`, `deployment_environment`,
 *    `deployment.environment`; Datadog `env:production` tags and the Sentry `environment` tag arrive here as labels), resolved
 *    exactly, through common aliases (`prd`, `live`, `stg`, …) or as a unique prefix (`prod` →
 *    `production`; not for alerts read from chat messages, whose environment must be exact or an
 *    alias). An environment label naming no known environment leaves the alert unmapped: a
 *    matcher must not turn a staging alert into a production one;
 * 2. a `service` label equal to an environment slug;
 * 3. the per-environment `alertMatchers` from the config (plain case-insensitive substrings or
 *    `/regex/flags`) applied to the title, text and label values. Exactly one environment must match.
 * Pure; unmapped alerts are counted by the caller.
 */
import { resolveEnvironment } from '../domain/plan.js';
import type { NormalizedAlert } from './types.js';

/** One compiled `alertMatchers` entry. */
export type Matcher =
  | { readonly kind: 'substring'; readonly source: string; readonly needle: string }
  | { readonly kind: 'regex'; readonly source: string; readonly re: RegExp };

/** Matchers per environment slug. */
export type CompiledMatchers = ReadonlyMap<string, readonly Matcher[]>;

export type MappingResult =
  | {
      readonly ok: true;
      readonly environment: string;
      /**
       * What named it: an environment label, a `service` label equal to its name, or an
       * `alertMatchers` entry. A matcher only guesses where an alert belongs (the caller does not use it
       * to place a resolution whose incident it can find by key).
       */
      readonly by: 'label' | 'service' | 'matcher';
      readonly via: string;
    }
  | { readonly ok: false; readonly reason: string };

/**
 * Label keys that name an environment, most specific first. OpenTelemetry's resource attribute is
 * `deployment.environment.name` (stable; `deployment.environment` is its deprecated name), which
 * Prometheus' OTLP translation writes as the label `deployment_environment_name`.
 */
export const ENVIRONMENT_LABELS = [
  'env',
  'environment',
  'deployment.environment.name',
  'deployment_environment_name',
  'deployment_environment',
  'deployment.environment',
] as const;

const ALIASES: Readonly<Record<string, readonly string[]>> = {
  production: ['prod', 'prd', 'live', 'production'],
  staging: ['stg', 'stage', 'staging'],
  development: ['dev', 'develop', 'development'],
  preview: ['preview', 'pr'],
};

/** Compiles `alertMatchers` entries: `/regex/flags` becomes a RegExp, anything else a substring. */
export function compileMatcher(pattern: string): Matcher {
  const m = /^\/(.+)\/([a-z]*)$/s.exec(pattern);
  if (m?.[1] !== undefined) {
    try {
      // g and y make test() stateful across calls; they mean nothing for a match anyway.
      const flags = (m[2] ?? '').replace(/[gy]/g, '');
      return { kind: 'regex', source: pattern, re: new RegExp(m[1], flags) };
    } catch {
      // An invalid regex is matched literally rather than silently never matching.
    }
  }
  return { kind: 'substring', source: pattern, needle: pattern.toLowerCase() };
}

/** Compiles every environment's matchers from the config's `environments` section. */
export function compileMatchers(
  environments: Readonly<Record<string, { readonly alertMatchers?: readonly string[] }>>,
): CompiledMatchers {
  const out = new Map<string, readonly Matcher[]>();
  for (const [slug, cfg] of Object.entries(environments)) {
    out.set(slug, (cfg.alertMatchers ?? []).map(compileMatcher));
  }
  return out;
}

/**
 * Resolves an environment name written exactly (case-insensitive) or as a common alias whose canonical
 * name is known (`prd` → `production`); never as a prefix. What chat messages are read with: a word
 * such as `[product]` or `(pre)` is not an environment.
 */
export function resolveEnvironmentExact(slugs: readonly string[], input: string): string | undefined {
  const wanted = input.trim().toLowerCase();
  if (wanted === '') return undefined;
  const exact = slugs.find((s) => s.toLowerCase() === wanted);
  if (exact) return exact;
  for (const [canonical, aliases] of Object.entries(ALIASES)) {
    if (!aliases.includes(wanted)) continue;
    const known = slugs.find((s) => s.toLowerCase() === canonical);
    if (known) return known;
  }
  return undefined;
}

/**
 * Resolves an environment name as tools write it in labels: exact (case-insensitive), a common alias
 * whose canonical name is known (`prd` → `production`), or a unique prefix (`prod` → `production`).
 */
export function resolveEnvironmentName(slugs: readonly string[], input: string): string | undefined {
  const wanted = input.trim().toLowerCase();
  if (wanted === '') return undefined;
  const known = resolveEnvironmentExact(slugs, wanted);
  if (known) return known;
  const resolved = resolveEnvironment(slugs, wanted);
  return resolved.ok ? resolved.value : undefined;
}

/** Alerts read from chat messages: free text, where a prefix is too weak to name an environment. */
function fromChat(alert: NormalizedAlert): boolean {
  return alert.source === 'slack' || alert.source === 'discord' || alert.source === 'console';
}

function matches(matcher: Matcher, haystack: string, lowerHaystack: string): boolean {
  return matcher.kind === 'regex' ? matcher.re.test(haystack) : lowerHaystack.includes(matcher.needle);
}

/** Maps one alert to an environment of `slugs`, or says why not. */
export function mapAlert(
  alert: NormalizedAlert,
  slugs: readonly string[],
  matchers: CompiledMatchers,
): MappingResult {
  for (const key of ENVIRONMENT_LABELS) {
    const value = alert.labels[key];
    if (value === undefined || value.trim() === '') continue;
    const env = fromChat(alert)
      ? resolveEnvironmentExact(slugs, value)
      : resolveEnvironmentName(slugs, value);
    if (env) return { ok: true, environment: env, by: 'label', via: `label ${key}=${value}` };
    // A chat message naming several environments carries them all (`staging,production`): which
    // one it is about cannot be told, so it suggests none rather than the first.
    const named = value.split(',').filter((v) => v.trim() !== '');
    if (named.length > 1) {
      return {
        ok: false,
        reason: `label ${key}=${value} names several environments (${named.join(', ')}); an alert must name one`,
      };
    }
    return {
      ok: false,
      reason: `label ${key}=${value} names no known environment (known: ${slugs.join(', ') || 'none'})`,
    };
  }
  const service = alert.labels.service;
  if (service) {
    const env = slugs.find((s) => s.toLowerCase() === service.trim().toLowerCase());
    if (env) return { ok: true, environment: env, by: 'service', via: `label service=${service}` };
  }
  const haystack = [alert.title, alert.text, ...Object.values(alert.labels)].join('\n');
  const lower = haystack.toLowerCase();
  const hits: { env: string; matcher: Matcher }[] = [];
  for (const slug of slugs) {
    const hit = (matchers.get(slug) ?? []).find((m) => matches(m, haystack, lower));
    if (hit) hits.push({ env: slug, matcher: hit });
  }
  const only = hits[0];
  if (hits.length === 1 && only)
    return { ok: true, environment: only.env, by: 'matcher', via: `matcher ${only.matcher.source}` };
  if (hits.length > 1) {
    return {
      ok: false,
      reason: `matchers of several environments match (${hits.map((h) => h.env).join(', ')})`,
    };
  }
  return { ok: false, reason: 'no environment label and no alertMatchers entry matches' };
}
