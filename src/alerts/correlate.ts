/**
 * Correlation: which deployment went live most recently before an alert started, and is that recent
 * enough (the window, default 60 minutes) to suggest rolling it back? Pure: a function of the
 * environment snapshot (its `liveHistory`), the alert's start time and the window. The rollback target
 * is the domain's default (`defaultRollbackTarget`), the same one `/rollback <env>` would pick.
 *
 * On a platform that keeps no live history (Unkey, Vercel: `liveHistory` empty, `derivedLive` set), only
 * the current deployment's going live can be known, and only sometimes (src/platform/live-history.ts):
 * `correlateDerived` suggests only what that knowledge makes certain, and otherwise says what the
 * platform does not tell. There the default target also reads Switchyard's own record (`own`, from its
 * audit: src/domain/own-record.ts), as Flow's plans do, so a suggestion names the deployment
 * `/rollback <env>` would then propose.
 */
import type { OwnRecord } from '../domain/own-record.js';
import { defaultRollbackTarget } from '../domain/plan.js';
import type { Deployment, DerivedLive, EnvironmentSnapshot, LiveEntry } from '../domain/types.js';

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

/**
 * A gap past the correlation window, in words that say it is past it: whole minutes are floored, so
 * 60 min 30 s would read "60 minutes" next to "outside the 60 minutes correlation window".
 */
function pastWindow(gap: number, windowMs: number): string {
  const words = describeGap(gap);
  return words === describeGap(windowMs) ? `more than ${words}` : words;
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
 * rollback target exists. `own`: Switchyard's own record of the environment (Flow's `ownRecord`), which
 * the default target reads on a platform without live history.
 */
export function correlate(
  snapshot: EnvironmentSnapshot,
  alertStartedAt: number,
  windowMs: number = DEFAULT_CORRELATION_WINDOW_MS,
  own?: OwnRecord,
): Correlation {
  if (snapshot.derivedLive !== undefined && snapshot.liveHistory.length === 0) {
    return correlateDerived(snapshot, snapshot.derivedLive, alertStartedAt, windowMs, own);
  }
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
      sentence: `${culprit.id} went live ${pastWindow(gap, windowMs)} before this alert started, outside the ${describeGap(windowMs)} correlation window; no rollback suggested.`,
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

/**
 * `correlate` on a platform without live history. `derived.current` says how the current deployment went
 * live, within [notBefore, notAfter]; what went live before it is unknown, so an alert that started
 * before it went live is not explained. A suggestion needs certainty on every count: the deployment went
 * live before the alert started (notAfter), inside the window even at the earliest (notBefore), by a
 * deploy or a promote, and the default rollback target is the deployment the platform's state says was
 * live right before it (else the suggestion could name one rolled back from earlier).
 */
function correlateDerived(
  snapshot: EnvironmentSnapshot,
  derived: DerivedLive,
  alertStartedAt: number,
  windowMs: number,
  own: OwnRecord | undefined,
): Correlation {
  const env = snapshot.environment.slug;
  const platform = derived.platform;
  const currentId = snapshot.environment.currentDeploymentId;
  if (currentId === undefined) {
    return { kind: 'none', reason: `${env} has no current deployment, so there is nothing to roll back.` };
  }
  // Naming a deployment to go back to is up to a person; preview environments are not switched there.
  const hint = snapshot.environment.kind === 'production' ? `; /rollback ${env} if one is needed` : '';
  const live = derived.current;
  const culprit = snapshot.deployments.find((d) => d.id === currentId);
  if (live === undefined || live.deploymentId !== currentId || culprit === undefined) {
    const why = derived.unknown ?? `${platform} keeps no live history`;
    return {
      kind: 'none',
      reason: `${platform} does not say when ${currentId} went live (${why}), so no rollback is suggested${hint}.`,
    };
  }
  if (live.notBefore > alertStartedAt) {
    const after = describeGap(live.notBefore - alertStartedAt);
    const what =
      live.via === 'rollback'
        ? `${env} was rolled back to ${culprit.id} ${after} after this alert started`
        : `${culprit.id} went live ${after} after this alert started`;
    return {
      kind: 'none',
      reason: `${what}, and ${platform} does not say what was live before it; no rollback is suggested.`,
    };
  }
  if (live.via === 'rollback') {
    // As with a full history: the deployment rolled back to is a person's known-good choice.
    return {
      kind: 'none',
      reason: `${env} was rolled back to ${culprit.id} ${describeGap(alertStartedAt - live.notBefore)} before this alert started; no further rollback is suggested (if ${culprit.id} is bad too, /rollback ${env} <deployment>).`,
    };
  }
  if (live.notAfter > alertStartedAt) {
    return {
      kind: 'none',
      reason: `${platform} does not say whether ${culprit.id} went live before or after this alert started, so no rollback is suggested${hint}.`,
    };
  }
  // The shortest it can have been live when the alert started, and the longest.
  const gap = alertStartedAt - live.notAfter;
  const longest = alertStartedAt - live.notBefore;
  const exact = describeGap(gap) === describeGap(longest);
  const when = `${culprit.id} went live ${exact ? '' : 'at least '}${describeGap(gap)} before this alert started`;
  if (gap > windowMs) {
    return {
      kind: 'outside_window',
      culprit,
      wentLiveAt: live.notAfter,
      minutesBefore: Math.floor(gap / 60_000),
      sentence: `${culprit.id} went live ${exact ? '' : 'at least '}${pastWindow(gap, windowMs)} before this alert started, outside the ${describeGap(windowMs)} correlation window; no rollback suggested.`,
    };
  }
  if (longest > windowMs) {
    return {
      kind: 'none',
      reason: `${platform} does not say exactly when ${culprit.id} went live (${describeGap(gap)} to ${describeGap(longest)} before this alert started), so it may be outside the ${describeGap(windowMs)} correlation window; no rollback is suggested${hint}.`,
    };
  }
  const target = defaultRollbackTarget(snapshot, own);
  if (!target.ok) return { kind: 'none', reason: `${when}, but ${target.refusal.message}` };
  if (live.previous === undefined) {
    return {
      kind: 'none',
      reason: `${when}, but ${platform} does not say which deployment was live before it, so no rollback is suggested${hint}.`,
    };
  }
  if (live.previous !== target.value.id) {
    return {
      kind: 'none',
      reason: `${when}, replacing ${live.previous}, not ${target.value.id} (the deployment /rollback ${env} would go back to), so no rollback is suggested; /rollback ${env} <deployment> to choose one.`,
    };
  }
  return {
    kind: 'suggest',
    culprit,
    target: target.value,
    wentLiveAt: live.notAfter,
    via: live.via,
    minutesBefore: Math.floor(gap / 60_000),
    sentence: `${when} — roll back to ${target.value.id}?`,
  };
}
