/**
 * Switchyard's own record of an environment, for platforms that keep no live history (Unkey, Vercel):
 * what its audit log (src/audit.ts) says of the rollbacks and promotes it carried out, read against the
 * platform's state now. Pure. Flow reads the audit and hands the result to `buildPlan` and to alert
 * correlation (src/alerts/correlate.ts), so `/rollback`, `/promote` and a suggestion follow one set of
 * facts:
 * - the deployments Switchyard rolled back from, which a default rollback target avoids;
 * - the deployment live right before the current one, when Switchyard's last switch and the deployments
 *   that became ready since leave no other possibility;
 * - since when the environment is rolled back, when Switchyard's own rollback is what rolled it back.
 * A move made outside Switchyard (the platform's dashboard or CLI) is in no audit. So nothing is claimed
 * that the platform's state contradicts: the domain (src/domain/plan.ts) drops a deployment live before
 * that the platform's state (`derivedLive`) names otherwise, and a rolled-back period the platform dates
 * later than Switchyard's rollback is not Switchyard's.
 */
import type { Deployment, EnvironmentSnapshot } from './types.js';

/** One succeeded switch of Switchyard's (an audit entry of event `succeeded`). */
export interface OwnSwitch {
  readonly action: 'rollback' | 'promote';
  /** The deployment current when the switch was planned (absent in entries that do not say). */
  readonly fromId?: string;
  readonly targetId: string;
  /** Unix ms: when the switch was recorded as succeeded (after traffic moved). */
  readonly at: number;
  /** Who asked Switchyard for it, as messages name people (absent when the entry does not say). */
  readonly by?: string;
}

/** What Switchyard's own switches tell of an environment its platform keeps no live history of. */
export interface OwnRecord {
  /**
   * Deployments Switchyard rolled the environment back from, unless a later switch of its own went
   * back to them (a person then chose them again). Never a default rollback target while another
   * older ready deployment exists.
   */
  readonly rolledBackFrom: ReadonlySet<string>;
  /** The deployment live right before the current one, when Switchyard's switches say so for certain. */
  readonly liveBefore?: string;
  /**
   * Unix ms: when the rolled-back period began, when a rollback of Switchyard's began it (the first of a
   * chain of its rollbacks, each further back: `Environment.rolledBackSince`).
   */
  readonly rolledBackSince?: number;
  /**
   * Unix ms: when Switchyard rolled the environment back to the current deployment, with
   * `rolledBackSince` (the last rollback of that chain: `Environment.rolledBackAt`).
   */
  readonly rolledBackAt?: number;
  /** Who asked for the rollback of `rolledBackAt` (when its entry says): `Environment.rolledBackBy`. */
  readonly rolledBackBy?: string;
}

/**
 * Whether `snapshot` comes from a platform that keeps no live history (Unkey, Vercel: `liveHistory`
 * empty, `derivedLive` set): only then does Switchyard's own record stand in for it. A platform with a
 * history (the local one) is read as it is.
 */
export function keepsNoLiveHistory(snapshot: EnvironmentSnapshot): boolean {
  return snapshot.liveHistory.length === 0 && snapshot.derivedLive !== undefined;
}

/** Statuses of a deployment that was ready at some point, so may have served. */
function wasReady(d: Deployment): boolean {
  return d.status === 'ready' || d.status === 'standby' || d.status === 'stopped';
}

/**
 * What `switches` (Switchyard's succeeded switches of `snapshot`'s environment, oldest first) tell of
 * the environment as `snapshot` shows it.
 */
export function ownRecordOf(snapshot: EnvironmentSnapshot, switches: readonly OwnSwitch[]): OwnRecord {
  const rolledBackFrom = new Set<string>();
  for (const s of switches) {
    rolledBackFrom.delete(s.targetId);
    if (s.action === 'rollback' && s.fromId !== undefined && s.fromId !== s.targetId) {
      rolledBackFrom.add(s.fromId);
    }
  }
  const env = snapshot.environment;
  const currentId = env.currentDeploymentId;
  if (currentId === undefined) return { rolledBackFrom };
  if (env.rolledBack) {
    const began = rollbackThatBegan(snapshot, currentId, switches);
    if (began === undefined) return { rolledBackFrom };
    const last = began.last;
    return {
      rolledBackFrom,
      rolledBackSince: began.first.at,
      rolledBackAt: last.at,
      ...(last.by === undefined ? {} : { rolledBackBy: last.by }),
    };
  }
  const before = liveBefore(snapshot, currentId, switches);
  return before === undefined ? { rolledBackFrom } : { rolledBackFrom, liveBefore: before };
}

/**
 * The deployment live right before `currentId`, from Switchyard's last switch (the newest of
 * `switches`), when it is certain; the environment is not rolled back. Only a promote leaves automatic
 * deploys on, so only after one can the current deployment be explained without a move outside
 * Switchyard:
 * - the promote went to the current deployment (from another): the one it came from, as long as no
 *   other deployment became ready since (it would have gone live by an automatic deploy);
 * - the current deployment was pushed after the promote: it went live by an automatic deploy when it
 *   became ready, replacing the promote's target, as long as it is the only deployment that became
 *   ready since.
 * "Became ready since": a `readyAt` at or after the switch, or none (the platform does not say; Unkey's
 * is an upper bound, so a deployment it wrote again since counts too: then nothing is claimed), unless
 * Switchyard's own switches had it serving or switched to by then (it was ready before).
 */
function liveBefore(
  snapshot: EnvironmentSnapshot,
  currentId: string,
  switches: readonly OwnSwitch[],
): string | undefined {
  const last = switches.at(-1);
  if (last?.action !== 'promote') return undefined;
  const readyBefore = new Set(
    switches.flatMap((s) => (s.fromId === undefined ? [s.targetId] : [s.fromId, s.targetId])),
  );
  const quietSince = snapshot.deployments.every(
    (d) =>
      d.id === currentId ||
      readyBefore.has(d.id) ||
      !wasReady(d) ||
      (d.readyAt !== undefined && d.readyAt < last.at),
  );
  if (!quietSince) return undefined;
  if (last.targetId === currentId) {
    // A promote of the current deployment to itself only resumed automatic deploys: it says nothing
    // of what was live before.
    return last.fromId === currentId ? undefined : last.fromId;
  }
  const current = snapshot.deployments.find((d) => d.id === currentId);
  return current === undefined || current.createdAt < last.at ? undefined : last.targetId;
}

/**
 * The rollback of Switchyard's that began the rolled-back period of `snapshot`'s environment (`first`),
 * and its last one (`last`, to the current deployment), when one did: its last switch is a rollback to
 * the current deployment (no promote of its own since), and the platform does not date a move to the
 * current deployment after it (`derivedLive`: a rollback outside Switchyard since). A chain of its
 * rollbacks, each from the deployment the one before went to, is one period (a second rollback further
 * back continues it), dated by the first.
 */
function rollbackThatBegan(
  snapshot: EnvironmentSnapshot,
  currentId: string,
  switches: readonly OwnSwitch[],
): { readonly first: OwnSwitch; readonly last: OwnSwitch } | undefined {
  const last = switches.at(-1);
  if (last === undefined || last.action !== 'rollback' || last.targetId !== currentId) return undefined;
  const platform = snapshot.derivedLive?.current;
  if (platform?.deploymentId === currentId && platform.notBefore > last.at) return undefined;
  let first = last;
  for (let i = switches.length - 2; i >= 0; i--) {
    const s = switches[i];
    if (
      s === undefined ||
      s.action !== 'rollback' ||
      first.fromId === undefined ||
      s.targetId !== first.fromId
    )
      break;
    first = s;
  }
  return { first, last };
}
