/**
 * Plans: the pure function from an environment snapshot to "what a rollback or promote would do".
 * A plan lists the current deployment, every affected domain and the target (the three things the
 * platform's own confirmation dialog shows) and carries `expectedCurrent` so that a plan made stale by a
 * newer switch is refused instead of acted on. Rules mirror the platform's server-side checks in order:
 * target exists and belongs here, target is ready (or in standby), environment has a current deployment,
 * target is not already current (for promote, skipped while rolled back: that promote resumes deploys).
 * Last, Switchyard's own: the domains that move are ones a switch job can carry and verify
 * (`checkSwitchDomains`), so a plan someone can confirm can always be queued.
 */
import { createHash } from 'node:crypto';
import { keepsNoLiveHistory, type OwnRecord } from './own-record.js';
import { ok, type Refusal, RefusalCode, type Result, refuse } from './result.js';
import { closest } from './spelling.js';
import {
  assertNever,
  type Deployment,
  type Domain,
  type EnvironmentKind,
  type EnvironmentSnapshot,
  type PlanAction,
} from './types.js';

export interface Plan {
  /** Deterministic: the same action on the same state gives the same id (safe as a BullMQ job id). */
  readonly id: string;
  readonly action: PlanAction;
  readonly projectId: string;
  readonly environment: string;
  readonly environmentKind: EnvironmentKind;
  readonly current: Deployment;
  /** Unix ms since the current deployment has held the live domains, when the platform knows. */
  readonly currentLiveSince?: number;
  readonly target: Deployment;
  /** Domains that will point to the target once the switch is done. Empty when nothing moves. */
  readonly affectedDomains: readonly Domain[];
  /** The target is in standby: it is reactivated first, which takes longer than a running target. */
  readonly targetStandby: boolean;
  /** The environment is rolled back right now (before this plan runs). */
  readonly rolledBack: boolean;
  /** Promote of the current deployment while rolled back: no domain moves, automatic deploys resume. */
  readonly resumesAutoDeploys: boolean;
  /**
   * A rollback to a deployment Switchyard rolled this environment back from before (its own record,
   * `OwnRecord.rolledBackFrom`, on a platform without live history): the confirmation says so.
   */
  readonly targetRolledBackFrom?: true;
  /**
   * The branch the environment normally deploys (`Environment.productionBranch`), set only when the
   * target is from another branch: the confirmation says so, since moving production to a hotfix
   * branch's build is easy to do unawares.
   */
  readonly usualBranch?: string;
  /** The deployment that must still be current when the plan is acted on. */
  readonly expectedCurrent: string;
  /** The rolled-back flag that must still hold when the plan is acted on. */
  readonly expectedRolledBack: boolean;
  /** Unix ms. */
  readonly createdAt: number;
}

export interface PlanRequest {
  readonly action: PlanAction;
  /**
   * Deployment reference (id, unique id prefix, or commit sha prefix). Absent: rollback picks the
   * deployment live before the current one; promote picks the newest ready deployment.
   */
  readonly target?: string;
  readonly now: number;
  /**
   * Switchyard's own record of the environment (src/domain/own-record.ts), which stands in for the live
   * history a platform does not keep (Unkey, Vercel). Ignored for a snapshot with live history.
   */
  readonly ownRecord?: OwnRecord;
}

const SHORT_SHA = 7;

/** Short form of a commit sha for display. */
export function shortSha(sha: string): string {
  return sha.slice(0, SHORT_SHA);
}

/** Deployments a rollback may target: running or in standby. */
export function isSwitchable(d: Deployment): boolean {
  return d.status === 'ready' || d.status === 'standby';
}

function describe(d: Deployment): string {
  return `${d.id} (${shortSha(d.commit.sha)} ${d.branch})`;
}

function listIds(deployments: readonly Deployment[], max = 10): string[] {
  return deployments.slice(0, max).map((d) => d.id);
}

/**
 * Ids for a sentence: the first `max`, then "…and N more" when some were left out, since a list is
 * never cut silently. `truncated`: the platform listed only some of the environment's deployments
 * (`deploymentsTruncated`), so the number left out is a lower bound ("…and 490+ more"). Empty when
 * there are none (the caller says "none" its own way).
 */
export function idList(ids: readonly string[], max: number, truncated = false): string {
  const shown = ids.slice(0, max);
  const more = ids.length - shown.length;
  if (more <= 0 && !truncated) return shown.join(', ');
  const rest = more <= 0 ? 'more not listed' : `${more}${truncated ? '+' : ''} more`;
  return shown.length === 0 ? rest : `${shown.join(', ')}, …and ${rest}`;
}

/**
 * The deployments of this snapshot a reference may mean: the one whose id it is, else every one whose
 * id starts with it or whose commit sha does (from 7 characters on). One match resolves it.
 */
export function matchDeployments(snapshot: EnvironmentSnapshot, ref: string): Deployment[] {
  const wanted = ref.trim();
  const all = snapshot.deployments;
  const exact = all.find((d) => d.id === wanted);
  if (exact) return [exact];
  const lower = wanted.toLowerCase();
  const byPrefix = all.filter((d) => d.id.toLowerCase().startsWith(lower));
  const bySha =
    lower.length >= SHORT_SHA ? all.filter((d) => d.commit.sha.toLowerCase().startsWith(lower)) : [];
  return [...new Set([...byPrefix, ...bySha])];
}

/**
 * Finds the deployment a user referred to in this environment's snapshot. Accepts a full id, a unique
 * id prefix, or a commit sha prefix of at least 7 characters. Refusals list valid recent ids.
 */
export function resolveDeployment(snapshot: EnvironmentSnapshot, ref: string): Result<Deployment> {
  const wanted = ref.trim();
  const all = snapshot.deployments;
  const matches = matchDeployments(snapshot, wanted);
  if (matches.length === 1 && matches[0]) return ok(matches[0]);
  const valid = listIds(all);
  const truncated = snapshot.deploymentsTruncated === true;
  if (matches.length > 1) {
    // Several deployments of one commit (a redeploy): no longer sha prefix can tell them apart.
    const oneCommit = new Set(matches.map((d) => d.commit.sha.toLowerCase())).size === 1;
    const hint = oneCommit
      ? 'they were built from the same commit, so name one by its id'
      : 'give more characters';
    return refuse(
      RefusalCode.unknownDeployment,
      `"${wanted}" matches ${matches.length} deployments in ${snapshot.environment.slug} (${idList(
        matches.map((d) => d.id),
        5,
      )}); ${hint}.`,
      { input: wanted, matches: listIds(matches), valid },
    );
  }
  return refuse(
    RefusalCode.unknownDeployment,
    `No deployment "${wanted}" in ${snapshot.environment.slug}. Recent deployments: ${
      idList(
        all.map((d) => d.id),
        10,
        truncated,
      ) || 'none'
    }.`,
    { input: wanted, valid },
  );
}

/**
 * Whether a word that named no environment reads as a deployment reference: it starts with a prefix
 * the given deployments' ids have up to their first "_" (`dep_`, Vercel's `dpl_`), or it is a hex
 * string of at least 7 characters (a commit sha prefix). Only for choosing a refusal's code and title.
 */
export function looksLikeDeploymentRef(word: string, deployments: readonly Deployment[]): boolean {
  const lower = word.trim().toLowerCase();
  if (lower.length >= SHORT_SHA && /^[0-9a-f]+$/.test(lower)) return true;
  return deployments.some((d) => {
    const cut = d.id.indexOf('_');
    return cut > 0 && lower.startsWith(d.id.slice(0, cut + 1).toLowerCase());
  });
}

/**
 * Resolves an environment the user typed against the known slugs: exact (case-insensitive), then a
 * unique prefix (`prod` → `production`).
 */
export function resolveEnvironment(slugs: readonly string[], input: string): Result<string> {
  const wanted = input.trim().toLowerCase();
  const exact = slugs.find((s) => s.toLowerCase() === wanted);
  if (exact) return ok(exact);
  const prefixed = wanted.length > 0 ? slugs.filter((s) => s.toLowerCase().startsWith(wanted)) : [];
  if (prefixed.length === 1 && prefixed[0]) return ok(prefixed[0]);
  // A typo (`prodution`) is named, never acted on: the person types the command again.
  const near = closest(input, slugs);
  return refuse(
    RefusalCode.unknownEnvironment,
    `Unknown environment "${input.trim()}".${near === undefined ? '' : ` Did you mean ${near}?`} Valid environments: ${slugs.join(', ') || 'none configured'}.`,
    { input: input.trim(), valid: [...slugs] },
  );
}

/** Checks that `target` can be switched to in this environment; the platform's rules, in its order. */
export function checkTarget(
  snapshot: EnvironmentSnapshot,
  action: PlanAction,
  target: Deployment,
): Refusal | null {
  const env = snapshot.environment;
  if (target.environment !== env.slug) {
    return {
      code: RefusalCode.targetWrongEnvironment,
      message: `${target.id} belongs to ${target.environment}, not ${env.slug}. A ${action} only moves traffic within one environment.`,
      context: { target: target.id, targetEnvironment: target.environment, environment: env.slug },
    };
  }
  const reason = target.statusReason === undefined ? '' : ` ${target.statusReason}`;
  if (target.status === 'failed') {
    // The code of every target that cannot take traffic yet or ever (stable), in words that say a
    // failed build never becomes ready, and what can be done instead.
    return {
      code: RefusalCode.targetNotReady,
      message: `The build of ${describe(target)} failed, so it will never be ready to take traffic.${reason} Push a fix, or pick a ready or standby deployment (/deployments ${env.slug} lists them).`,
      context: { target: target.id, status: target.status },
    };
  }
  if (target.status === 'building') {
    return {
      code: RefusalCode.targetNotReady,
      message: `${describe(target)} is ${target.status}, not ready: only a ready or standby deployment can take traffic.${reason}`,
      context: { target: target.id, status: target.status },
    };
  }
  if (target.status === 'stopped') {
    return {
      code: RefusalCode.targetStopped,
      message:
        reason === ''
          ? `${describe(target)} is stopped and cannot be started again, so it cannot take traffic. Pick a ready or standby deployment.`
          : `${describe(target)} cannot take traffic now.${reason} Pick a ready or standby deployment.`,
      context: { target: target.id, status: target.status },
    };
  }
  const currentId = env.currentDeploymentId;
  if (currentId === undefined) {
    return {
      code: RefusalCode.noCurrentDeployment,
      message: `${env.slug} has no current deployment, so there is nothing to ${action} from.`,
      context: { environment: env.slug },
    };
  }
  if (target.id === currentId && !(action === 'promote' && env.rolledBack)) {
    return {
      code: RefusalCode.targetIsCurrent,
      message: `${describe(target)} is already serving ${env.slug}.`,
      context: { target: target.id },
    };
  }
  return null;
}

/** When the current deployment took the live domains (latest history entry naming it). */
export function liveSince(snapshot: EnvironmentSnapshot, deploymentId: string): number | undefined {
  for (let i = snapshot.liveHistory.length - 1; i >= 0; i--) {
    const entry = snapshot.liveHistory[i];
    if (entry?.deploymentId === deploymentId) return entry.since;
  }
  return undefined;
}

/**
 * Newest-first place of each deployment: its index in `snapshot.deployments`, which every platform
 * lists newest first in its own order of creation (the DeployPlatform port's contract; the local
 * platform by push order). Plans tell older from newer by this, never by comparing `createdAt`: the
 * platform decides which push is newest by its own order (the local one goes live by push order even
 * after the wall clock stepped back, or for two pushes in one millisecond), and a plan that compared
 * clocks would then disagree with it. A deployment not listed ranks as oldest.
 */
export function newestFirstRank(snapshot: EnvironmentSnapshot): (d: Deployment) => number {
  const rank = new Map<string, number>();
  for (const [i, d] of snapshot.deployments.entries()) if (!rank.has(d.id)) rank.set(d.id, i);
  return (d) => rank.get(d.id) ?? Number.POSITIVE_INFINITY;
}

/** `own`, when it applies to `snapshot` (a platform without live history); else undefined. */
function ownRecordFor(snapshot: EnvironmentSnapshot, own: OwnRecord | undefined): OwnRecord | undefined {
  return own !== undefined && keepsNoLiveHistory(snapshot) ? own : undefined;
}

/**
 * The deployments live before `currentId`, latest first. From the platform's live history (the entries
 * before the current deployment's latest); on a platform without one, the one deployment its state
 * (`derivedLive`) or Switchyard's own record (`own`) says was live right before, when they do not
 * disagree (when they do, something moved outside what either saw: neither is taken).
 */
function liveBeforeCurrent(
  snapshot: EnvironmentSnapshot,
  currentId: string,
  own: OwnRecord | undefined,
): string[] {
  const history = snapshot.liveHistory;
  if (history.length === 0) {
    const derived = snapshot.derivedLive?.current;
    const platformSays = derived?.deploymentId === currentId ? derived.previous : undefined;
    const ownSays = own?.liveBefore;
    if (platformSays !== undefined && ownSays !== undefined && platformSays !== ownSays) return [];
    const said = platformSays ?? ownSays;
    return said === undefined ? [] : [said];
  }
  let end = history.length;
  for (let i = history.length - 1; i >= 0; i--) {
    if (history[i]?.deploymentId === currentId) {
      end = i;
      break;
    }
  }
  return history
    .slice(0, end)
    .reverse()
    .map((h) => h.deploymentId);
}

/**
 * Default rollback target: the deployment that was live before the current one and is older than it
 * (so a second rollback keeps going back instead of returning to the bad deployment); else the newest
 * switchable deployment older than the current one. Older and newer: by the snapshot's order
 * (`newestFirstRank`). On a platform without live history, "live before" is what its state and
 * Switchyard's own record (`own`) tell for certain, and a deployment Switchyard rolled back from is
 * passed over while another older one is switchable (with none other, it is the target, and the plan
 * says so: `Plan.targetRolledBackFrom`).
 */
export function defaultRollbackTarget(snapshot: EnvironmentSnapshot, own?: OwnRecord): Result<Deployment> {
  const env = snapshot.environment;
  const current = snapshot.deployments.find((d) => d.id === env.currentDeploymentId);
  if (!current) {
    return refuse(
      RefusalCode.noCurrentDeployment,
      `${env.slug} has no current deployment, so there is nothing to roll back from.`,
      {
        environment: env.slug,
      },
    );
  }
  const record = ownRecordFor(snapshot, own);
  const avoided = (d: Deployment) => record?.rolledBackFrom.has(d.id) === true;
  const byId = new Map(snapshot.deployments.map((d) => [d.id, d]));
  const rank = newestFirstRank(snapshot);
  const usable = (d: Deployment) => d.id !== current.id && rank(d) > rank(current) && isSwitchable(d);
  const before = liveBeforeCurrent(snapshot, current.id, record);
  for (const id of before) {
    const candidate = byId.get(id);
    if (candidate && usable(candidate) && !avoided(candidate)) return ok(candidate);
  }
  // Newest first already: the first older switchable one is the newest of them.
  const older = snapshot.deployments.filter(usable);
  const chosen = older.find((d) => !avoided(d)) ?? older[0];
  if (chosen) return ok(chosen);
  // Nothing older: the deployment live before this one is newer (this is already a rollback). Going
  // back to it is a promote, which also ends the rolled-back state: say so.
  const newer = before
    .map((id) => byId.get(id))
    .find((d) => d !== undefined && d.id !== current.id && isSwitchable(d));
  const hint =
    newer === undefined ? '' : ` To go back to ${newer.id} (live before it), use /promote ${newer.id}.`;
  return refuse(
    RefusalCode.noRollbackTarget,
    `${env.slug} has no ready or standby deployment older than ${current.id} to roll back to.${hint}`,
    {
      environment: env.slug,
      current: current.id,
      ...(newer === undefined ? {} : { liveBefore: newer.id }),
    },
  );
}

/**
 * Whether a deployment is a fix pushed while `snapshot`'s environment is rolled back to `currentId`:
 * switchable, not the current one, newer than it (by the snapshot's order, when the current one is
 * listed), never live (not one rolled away from), and ready at or after `since`. `/promote`'s default
 * (defaultPromoteTarget) and the rolled-back reminder (src/notices.ts) judge by this one rule.
 */
export function pushedSinceRollback(
  snapshot: EnvironmentSnapshot,
  currentId: string,
  since: number,
): (d: Deployment) => boolean {
  const current = snapshot.deployments.find((d) => d.id === currentId);
  const rank = newestFirstRank(snapshot);
  const wasLive = new Set(snapshot.liveHistory.map((h) => h.deploymentId));
  return (d) =>
    isSwitchable(d) &&
    d.id !== currentId &&
    (current === undefined || rank(d) < rank(current)) &&
    !wasLive.has(d.id) &&
    (d.readyAt ?? d.createdAt) >= since;
}

/**
 * Default promote target: the newest ready (or standby) deployment of the environment. While the
 * environment is rolled back, never the deployment it was rolled back from: the newest deployment that
 * is newer than the current one, was never live, and became ready since the environment was rolled
 * back (a fix pushed since: measured from the start of the rolled-back period, `rolledBackSince`, so a
 * second rollback further back does not hide a fix that became ready after the first); with none, or
 * when the platform does not say when it was rolled back, the current deployment (promoting it resumes
 * automatic deploys and moves no domain). Going back to a deployment that was rolled away from takes
 * naming it. Newest and newer: by the snapshot's order (`newestFirstRank`). On a platform that does not
 * say since when the environment is rolled back (Unkey, Vercel), Switchyard's own record (`own`) does
 * when its own rollback began the period.
 */
export function defaultPromoteTarget(snapshot: EnvironmentSnapshot, own?: OwnRecord): Result<Deployment> {
  const env = snapshot.environment;
  // Newest first already (the snapshot's order).
  const switchable = snapshot.deployments.filter((d) => d.environment === env.slug && isSwitchable(d));
  const current = snapshot.deployments.find((d) => d.id === env.currentDeploymentId);
  if (env.rolledBack && current !== undefined) {
    const record = ownRecordFor(snapshot, own);
    const since = env.rolledBackSince ?? env.rolledBackAt ?? record?.rolledBackSince;
    // Without a time, a fix pushed since cannot be told from the deployment rolled back from: both are
    // ready and newer than the current one. Resume, never guess: a fix is promoted by name (the notice
    // of its push offers it).
    if (since === undefined) return ok(current);
    // Such a platform has no live history to tell a deployment rolled back from by (and Unkey's
    // `readyAt` moves when it writes a deployment again): Switchyard's record names its own.
    const pushed = pushedSinceRollback(snapshot, current.id, since);
    return ok(switchable.find((d) => pushed(d) && record?.rolledBackFrom.has(d.id) !== true) ?? current);
  }
  const newest = switchable[0];
  if (newest) return ok(newest);
  return refuse(
    RefusalCode.unknownDeployment,
    `${snapshot.environment.slug} has no ready deployment to promote.`,
    {
      environment: snapshot.environment.slug,
      valid: listIds(snapshot.deployments),
    },
  );
}

/**
 * Domains a switch from `currentId` to a deployment of `targetBranch` moves: every live and
 * environment domain of the environment, plus branch domains that point at the current deployment
 * (the seed: "reassigns the environment and branch domains") and follow the target's branch: a
 * branch domain serves its own branch's code, so switching a preview environment to another branch's
 * deployment leaves the current branch's domain where it is. Deployment-bound domains never move.
 */
export function affectedDomains(
  snapshot: EnvironmentSnapshot,
  currentId: string,
  targetBranch: string | undefined,
): Domain[] {
  return snapshot.domains.filter((d) => {
    if (d.environment !== snapshot.environment.slug) return false;
    switch (d.stickiness) {
      case 'live':
      case 'environment':
        return true;
      case 'branch':
        return (
          d.deploymentId === currentId &&
          (d.branch === undefined || targetBranch === undefined || d.branch === targetBranch)
        );
      case 'deployment':
        return false;
      default:
        return assertNever(d.stickiness, 'domain stickiness');
    }
  });
}

/**
 * Whether `target` is the newest ready (or standby) deployment of its branch in its environment, by
 * the snapshot's order (newest first).
 */
export function isNewestOfBranch(snapshot: EnvironmentSnapshot, target: Deployment): boolean {
  const newest = snapshot.deployments.find(
    (d) => d.environment === target.environment && d.branch === target.branch && isSwitchable(d),
  );
  return newest?.id === target.id;
}

/**
 * The domains a plan moves: none when a promote of the current deployment only resumes automatic
 * deploys, else `affectedDomains`; a promote also moves the target's own branch domain to it when the
 * target is its branch's newest ready deployment. That domain follows the branch's newest deployment
 * and is frozen while the environment is rolled back, so a fix pushed meanwhile has not got it (it may
 * still point at the deployment rolled back from, on another branch than the one rolled back to); the
 * promote ends the freeze (the seed: "reassigns domains to point to it and restores normal behavior").
 * One function for buildPlan, checkFresh and the local platform's switch, so a plan, its freshness
 * check and the switch can never disagree about what moves.
 */
export function planDomains(
  snapshot: EnvironmentSnapshot,
  action: PlanAction,
  targetId: string,
  currentId: string,
): Domain[] {
  if (action === 'promote' && targetId === currentId) return [];
  const target = snapshot.deployments.find((d) => d.id === targetId);
  const moving = affectedDomains(snapshot, currentId, target?.branch);
  if (action !== 'promote' || target === undefined || !isNewestOfBranch(snapshot, target)) return moving;
  const hostnames = new Set(moving.map((d) => d.hostname));
  return snapshot.domains.filter(
    (d) =>
      hostnames.has(d.hostname) ||
      (d.environment === snapshot.environment.slug &&
        d.stickiness === 'branch' &&
        d.branch === target.branch &&
        d.deploymentId !== target.id),
  );
}

/**
 * Most domains one switch moves and verifies. One bound for the plan and its job: buildPlan refuses a
 * plan that would move more (`too_many_domains`) before any button is offered, and the switch job's
 * schema (src/queue.ts `switchJobSchema.domains`) accepts at most this many, so a plan someone can
 * confirm can always be queued. Verification reads every domain each round (on Vercel and Unkey one
 * routing read per domain), and the job carries them all in its data and its progress, hence a bound.
 */
export const MAX_SWITCH_DOMAINS = 500;

/** Longest hostname a switch carries (DNS: 253 characters). */
export const MAX_SWITCH_HOSTNAME_LENGTH = 253;

/**
 * A hostname a switch carries and verifies: letters, digits, dots and dashes, optionally `:port`; a
 * wildcard (`*.acme.com`, which Vercel supports) only as the whole leftmost label. One pattern for the
 * plan (`isSwitchHostname`) and the switch job's schema (src/queue.ts).
 */
export const SWITCH_HOSTNAME = /^(?:\*\.(?=[A-Za-z0-9-]))?[A-Za-z0-9.-]+(?::\d+)?$/;

/** What `SWITCH_HOSTNAME` expects, in the words of refusals and of the job schema's message. */
export const SWITCH_HOSTNAME_EXPECTED =
  'expected a hostname such as app.example.com (a wildcard only as the leftmost label: *.example.com)';

/** Whether a switch can carry and verify `hostname` (see `SWITCH_HOSTNAME`). */
export function isSwitchHostname(hostname: string): boolean {
  return (
    hostname.length >= 1 && hostname.length <= MAX_SWITCH_HOSTNAME_LENGTH && SWITCH_HOSTNAME.test(hostname)
  );
}

/**
 * Whether a switch moving `hostnames` can be queued: at most `MAX_SWITCH_DOMAINS` of them, each one
 * `isSwitchHostname`. A refusal says how many there are (or which names) and what Switchyard accepts;
 * the switch itself stays possible on the platform directly.
 */
export function checkSwitchDomains(
  environment: string,
  action: PlanAction,
  hostnames: readonly string[],
): Refusal | null {
  const verb = action === 'rollback' ? 'roll back' : 'promote';
  const elsewhere = `Use the deploy platform's own ${action} (its dashboard or CLI) for ${environment} instead.`;
  if (hostnames.length > MAX_SWITCH_DOMAINS) {
    return {
      code: RefusalCode.tooManyDomains,
      message: `${environment} has ${hostnames.length} affected domains; Switchyard verifies at most ${MAX_SWITCH_DOMAINS} per switch, so it cannot ${verb} ${environment}. ${elsewhere}`,
      context: { environment, domains: hostnames.length, max: MAX_SWITCH_DOMAINS },
    };
  }
  const bad = hostnames.filter((h) => !isSwitchHostname(h));
  if (bad.length > 0) {
    const named = nameHosts(bad.map((h) => JSON.stringify(h.length > 80 ? `${h.slice(0, 79)}…` : h)));
    return {
      code: RefusalCode.unsupportedDomain,
      message: `${environment} has ${bad.length === 1 ? 'a domain' : `${bad.length} domains`} Switchyard cannot verify: ${named}; ${SWITCH_HOSTNAME_EXPECTED}. ${elsewhere}`,
      context: { environment, hostnames: bad.slice(0, 10) },
    };
  }
  return null;
}

/**
 * Deterministic plan id; hex only so it is a valid BullMQ custom job id (no `:`).
 *
 * Besides the switch itself (action, environment, current deployment, target, rolled-back flag) it
 * covers every fact the confirmation shows that can change while traffic stays put: whether the target
 * is in standby, and the hostnames that move (sorted, so their order does not matter). The same request
 * on an unchanged world gives the same id, so double clicks, retried deliveries and several replicas
 * join one plan; a request after one of those facts changed is a new plan showing the facts as they
 * are now, and the old plan's confirm is refused as stale by `checkFresh`.
 */
export function planId(parts: {
  action: PlanAction;
  projectId: string;
  environment: string;
  expectedCurrent: string;
  target: string;
  rolledBack: boolean;
  targetStandby: boolean;
  domains: readonly string[];
}): string {
  const h = createHash('sha256')
    .update(
      [
        parts.action,
        parts.projectId,
        parts.environment,
        parts.expectedCurrent,
        parts.target,
        String(parts.rolledBack),
        String(parts.targetStandby),
        [...parts.domains].sort().join('\u0001'),
      ].join('\u0000'),
    )
    .digest('hex');
  return `plan_${h.slice(0, 24)}`;
}

/** Builds a rollback or promote plan, or says why not. */
export function buildPlan(snapshot: EnvironmentSnapshot, request: PlanRequest): Result<Plan> {
  const env = snapshot.environment;
  let target: Deployment;
  if (request.target !== undefined && request.target.trim() !== '') {
    const resolved = resolveDeployment(snapshot, request.target);
    if (!resolved.ok) return resolved;
    target = resolved.value;
  } else {
    const chosen =
      request.action === 'rollback'
        ? defaultRollbackTarget(snapshot, request.ownRecord)
        : defaultPromoteTarget(snapshot, request.ownRecord);
    if (!chosen.ok) return chosen;
    target = chosen.value;
  }
  const refusal = checkTarget(snapshot, request.action, target);
  if (refusal) return { ok: false, refusal };
  const current = snapshot.deployments.find((d) => d.id === env.currentDeploymentId);
  if (!current) {
    return refuse(RefusalCode.noCurrentDeployment, `${env.slug} has no current deployment.`, {
      environment: env.slug,
    });
  }
  const resumesAutoDeploys = request.action === 'promote' && target.id === current.id;
  const since = liveSince(snapshot, current.id);
  const domains = planDomains(snapshot, request.action, target.id, current.id);
  // What the switch job would refuse is refused here, before anyone is offered a button to confirm it.
  const unqueueable = checkSwitchDomains(
    env.slug,
    request.action,
    domains.map((d) => d.hostname),
  );
  if (unqueueable) return { ok: false, refusal: unqueueable };
  const targetStandby = target.status === 'standby';
  const targetRolledBackFrom =
    request.action === 'rollback' &&
    ownRecordFor(snapshot, request.ownRecord)?.rolledBackFrom.has(target.id) === true;
  const plan: Plan = {
    id: planId({
      action: request.action,
      projectId: snapshot.project.id,
      environment: env.slug,
      expectedCurrent: current.id,
      target: target.id,
      rolledBack: env.rolledBack,
      targetStandby,
      domains: domains.map((d) => d.hostname),
    }),
    action: request.action,
    projectId: snapshot.project.id,
    environment: env.slug,
    environmentKind: env.kind,
    current,
    ...(since === undefined ? {} : { currentLiveSince: since }),
    target,
    affectedDomains: domains,
    targetStandby,
    rolledBack: env.rolledBack,
    resumesAutoDeploys,
    ...(targetRolledBackFrom ? { targetRolledBackFrom: true as const } : {}),
    ...(env.productionBranch === undefined || env.productionBranch === target.branch
      ? {}
      : { usualBranch: env.productionBranch }),
    expectedCurrent: current.id,
    expectedRolledBack: env.rolledBack,
    createdAt: request.now,
  };
  return ok(plan);
}

/** The minimal facts of a plan that must hold for it to be acted on (what jobs carry). */
export interface PlanExpectation {
  readonly action: PlanAction;
  /**
   * The project the plan was made for (`Plan.projectId`). Given, a snapshot of another project (the
   * platform or project in the configuration changed since, say `PLATFORM` local → unkey) is stale;
   * absent, not checked.
   */
  readonly projectId?: string;
  readonly environment: string;
  readonly targetId: string;
  readonly expectedCurrent: string;
  readonly expectedRolledBack: boolean;
  /**
   * What the plan showed about the target: in standby (reactivated first, which takes longer) or
   * running. Given (a confirm or approve of a plan someone saw), a change is stale; absent, not checked.
   */
  readonly targetStandby?: boolean;
  /**
   * The hostnames the plan showed as affected. Given, a domain added or no longer affected since is
   * stale; absent, not checked.
   */
  readonly affectedHostnames?: readonly string[];
}

/** How many hostnames a stale message names before it counts the rest. */
const NAMED_DOMAINS = 10;

function nameHosts(hosts: readonly string[]): string {
  const named = hosts.slice(0, NAMED_DOMAINS).join(', ');
  return hosts.length > NAMED_DOMAINS ? `${named} and ${hosts.length - NAMED_DOMAINS} more` : named;
}

/** True when the platform already shows the result of the plan (a retried or recovered job). */
export function isAlreadyDone(expect: PlanExpectation, snapshot: EnvironmentSnapshot): boolean {
  // Another project's environment says nothing about this plan, whatever its deployment ids.
  if (otherProject(expect, snapshot) !== undefined) return false;
  const env = snapshot.environment;
  if (env.currentDeploymentId !== expect.targetId) return false;
  return expect.action === 'rollback' ? env.rolledBack : !env.rolledBack;
}

/**
 * The refusal of a plan made for another project than the snapshot's: the configuration now points
 * Switchyard at another platform or project (an edit and a restart while the plan was open). Its
 * deployment ids mean nothing there, so "traffic moved" would be false: nothing moved, the plan is
 * about something Switchyard no longer acts on. Undefined when the projects agree (or none is given).
 */
function otherProject(
  expect: PlanExpectation,
  snapshot: EnvironmentSnapshot,
  platform?: string,
): Refusal | undefined {
  const project = snapshot.project;
  if (expect.projectId === undefined || expect.projectId === project.id) return undefined;
  const named = project.name !== project.id ? `${project.id} (${project.name})` : project.id;
  const on = platform === undefined ? '' : ` on the ${platform} platform`;
  return {
    code: RefusalCode.planStale,
    message: `This plan was made for project ${expect.projectId}; Switchyard now acts on project ${named}${on} (its platform or project was changed in the configuration since), whose ${snapshot.environment.slug} is not the environment this plan showed. Ask for a fresh plan.`,
    context: {
      environment: snapshot.environment.slug,
      expectedProject: expect.projectId,
      project: project.id,
      ...(platform === undefined ? {} : { platform }),
    },
  };
}

/**
 * Re-validates a plan against fresh state. Stale when it was made for another project (the platform
 * or project in the configuration changed since), when traffic moved (another deployment is current)
 * or the rolled-back state flipped since the plan was made; the target's own checks follow (gone, not
 * ready, stopped). With `targetStandby` / `affectedHostnames` in the expectation, a plan whose shown
 * facts no longer hold (the target went to standby or left it; a domain was added or no longer moves)
 * is stale too. The message says what changed. `reader.platform`: the platform the snapshot was read
 * from (`DeployPlatform.name`), named when the plan is another project's.
 */
export function checkFresh(
  expect: PlanExpectation,
  snapshot: EnvironmentSnapshot,
  reader: { readonly platform?: string } = {},
): Result<Deployment> {
  const env = snapshot.environment;
  const other = otherProject(expect, snapshot, reader.platform);
  if (other !== undefined) return { ok: false, refusal: other };
  if (env.currentDeploymentId !== expect.expectedCurrent) {
    return refuse(
      RefusalCode.planStale,
      `Traffic moved since this plan was made: ${env.slug} now serves ${env.currentDeploymentId ?? 'nothing'}, not ${expect.expectedCurrent}. Ask for a fresh plan.`,
      {
        environment: env.slug,
        expectedCurrent: expect.expectedCurrent,
        current: env.currentDeploymentId ?? null,
      },
    );
  }
  if (env.rolledBack !== expect.expectedRolledBack) {
    return refuse(
      RefusalCode.planStale,
      `${env.slug} was ${env.rolledBack ? 'rolled back' : 'promoted'} since this plan was made. Ask for a fresh plan.`,
      { environment: env.slug, rolledBack: env.rolledBack },
    );
  }
  const target = snapshot.deployments.find((d) => d.id === expect.targetId);
  if (!target) {
    return refuse(RefusalCode.unknownDeployment, `${expect.targetId} no longer exists in ${env.slug}.`, {
      target: expect.targetId,
    });
  }
  const refusal = checkTarget(snapshot, expect.action, target);
  if (refusal) return { ok: false, refusal };
  const changes: string[] = [];
  const context: Record<string, unknown> = { environment: env.slug, target: target.id };
  const standby = target.status === 'standby';
  if (expect.targetStandby !== undefined && standby !== expect.targetStandby) {
    changes.push(
      standby
        ? `${target.id} went to standby, so it has to be reactivated first, which takes longer`
        : `${target.id} is no longer in standby (the plan said it would be reactivated first)`,
    );
    context.targetStandby = standby;
  }
  if (expect.affectedHostnames !== undefined) {
    const shown = new Set(expect.affectedHostnames);
    const now = planDomains(snapshot, expect.action, target.id, expect.expectedCurrent).map(
      (d) => d.hostname,
    );
    const nowSet = new Set(now);
    const added = now.filter((h) => !shown.has(h)).sort();
    const removed = [...shown].filter((h) => !nowSet.has(h)).sort();
    if (added.length > 0) changes.push(`the ${expect.action} would now also move ${nameHosts(added)}`);
    if (removed.length > 0) changes.push(`the ${expect.action} would no longer move ${nameHosts(removed)}`);
    if (added.length > 0 || removed.length > 0) {
      context.addedDomains = added.slice(0, 100);
      context.removedDomains = removed.slice(0, 100);
    }
  }
  if (changes.length > 0) {
    return refuse(
      RefusalCode.planStale,
      `${env.slug} changed since this plan was made: ${changes.join('; ')}. Ask for a fresh plan.`,
      context,
    );
  }
  return ok(target);
}
