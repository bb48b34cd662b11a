/**
 * Correlation: which deployment went live most recently before an alert started, and is that recent
 * enough (the window, default 60 minutes) to suggest rolling it back? Pure: a function of the
 * environment snapshot (its `liveHistory`), the alert's start time and the window. The rollback target
 * is the domain's default (`defaultRollbackTarget`), the same one `/rollback <env>` would pick.
 */
import { defaultRollbackTarget } from '../domain/plan.js';
import type { Deployment, EnvironmentSnapshot, LiveEntry } from '../domain/types.js';

export const DEFAULT_CORRELATION_WINDOW_MS = 60 * 60_000;

export type Correlation =
  /** The culprit went live inside the window and is still current: suggest rolling back to `target`. */
  | {
      readonly kind: 'suggest';
      readonly culprit: Deployment;
      readonly target: Deployment;
      readonly wentLiveAt: number;
      readonly via: LiveEntry['via'];
      /** Whole minutes between going live and the alert starting. */
      readonly minutesBefore: number;
      readonly sentence: string;
    }
  /** The latest deployment went live before the window: at most a note without a button. */
  | {
      readonly kind: 'outside_window';
      readonly culprit: Deployment;
      readonly wentLiveAt: number;
      readonly minutesBefore: number;
      readonly sentence: string;
    }
  /** Nothing to suggest; `reason` says why in one sentence. */
  | { readonly kind: 'none'; readonly reason: string };

/** "7 minutes", "1 minute", "less than a minute", "3 hours 5 minutes". */
export function describeGap(ms: number): string {
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 1) return 'less than a minute';
  if (minutes < 120) return `${minutes} minute${minutes === 1 ? '' : 's'}`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest === 0 ? `${hours} hours` : `${hours} hours ${rest} minute${rest === 1 ? '' : 's'}`;
}

/** The live-history entry that started most recently at or before `at`, if any. */
export function liveAt(snapshot: EnvironmentSnapshot, at: number): LiveEntry | undefined {
  let best: LiveEntry | undefined;
  for (const entry of snapshot.liveHistory) {
    if (entry.since <= at && (best === undefined || entry.since >= best.since)) best = entry;
  }
  return best;
}

/**
 * Correlates an alert that started at `alertStartedAt` (Unix ms) with the environment's deployments.
 * Suggests only when the deployment that went live last before the alert is still the current one
 * (otherwise traffic has already moved and a suggestion would be stale), went live by a deploy or a
 * promote (one rolled back to is the known-good choice of a person: no cascade of rollbacks), and a
 * rollback target exists.
 */
export function correlate(
  snapshot: EnvironmentSnapshot,
  alertStartedAt: number,
  windowMs: number = DEFAULT_CORRELATION_WINDOW_MS,
): Correlation {
  const env = snapshot.environment.slug;
  const entry = liveAt(snapshot, alertStartedAt);
  if (!entry) {
    return { kind: 'none', reason: `No deployment of ${env} went live before this alert started.` };
  }
  const culprit = snapshot.deployments.find((d) => d.id === entry.deploymentId);
  if (!culprit) {
    return {
      kind: 'none',
      reason: `${entry.deploymentId} went live before this alert but is no longer listed.`,
    };
  }
  const gap = Math.max(0, alertStartedAt - entry.since);
  const minutesBefore = Math.floor(gap / 60_000);
  const when = `${culprit.id} went live ${describeGap(gap)} before this alert started`;
  if (snapshot.environment.currentDeploymentId !== culprit.id) {
    return {
      kind: 'none',
      reason: `${when}, but ${env} now serves ${snapshot.environment.currentDeploymentId ?? 'nothing'}.`,
    };
  }
  if (entry.via === 'rollback') {
    // It went live again by a rollback: the known-good deployment someone chose, not a new release. An
    // alert now is most likely the tail of the incident that rollback answered; offering to roll back
    // further would make a rollback cascade. Nothing is suggested: a person decides.
    return {
      kind: 'none',
      reason: `${env} was rolled back to ${culprit.id} ${describeGap(gap)} before this alert started; no further rollback is suggested (if ${culprit.id} is bad too, /rollback ${env} <deployment>).`,
    };
  }
  if (gap > windowMs) {
    return {
      kind: 'outside_window',
      culprit,
      wentLiveAt: entry.since,
      minutesBefore,
      sentence: `${when}, outside the ${describeGap(windowMs)} correlation window; no rollback suggested.`,
    };
  }
  const target = defaultRollbackTarget(snapshot);
  if (!target.ok) return { kind: 'none', reason: `${when}, but ${target.refusal.message}` };
  return {
    kind: 'suggest',
    culprit,
    target: target.value,
    wentLiveAt: entry.since,
    via: entry.via,
    minutesBefore,
    sentence: `${when} — roll back to ${target.value.id}?`,
  };
}
