/**
 * Pure mapping from Unkey's deployment objects to Switchyard's domain values: lifecycle status,
 * rolled-back state, domain stickiness and the Deployment shape. No I/O; the adapter feeds it parsed
 * API answers. The reasoning behind each choice is in docs/unkey.md ("How Unkey state is read").
 */
import type { Deployment, DeploymentStatus, Domain, DomainStickiness } from '../../domain/types.js';
import type { UnkeyDeployment } from './schemas.js';

/** The apex of Unkey's system hostnames (`<project>-<environment>-<workspace>.unkey.app`). */
export const UNKEY_APEX = 'unkey.app';

/**
 * Unkey stops a production deployment this long after an automatic deploy (or a promote) replaced it
 * (`svc/ctrl/worker/deploy`: the deploy and promote workflows schedule its desired state to stopped).
 */
export const UNKEY_STOPS_REPLACED_AFTER_MS = 30 * 60_000;

/**
 * When an Unkey deployment became ready, as far as Unkey says: no earlier than its creation, no later
 * than `updatedAt`. Unkey has no ready time; `updatedAt` is "when the deployment was last updated", which
 * is when it turned ready only until something writes the deployment again: every status or
 * desired-state change does (at fc99b6b, for a current deployment, a workspace suspended and resumed;
 * for a replaced one, its scheduled stop), so `updatedAt` can lie long after the deployment went live,
 * never before. Without `updatedAt`, `readAt` (the deployment is ready now) bounds it. Undefined for a
 * deployment Unkey did not list.
 */
export function unkeyReadyWindow(
  d: Pick<UnkeyDeployment, 'createdAt' | 'updatedAt'> | undefined,
  readAt: number,
): { readonly notBefore: number; readonly notAfter: number } | undefined {
  if (d === undefined) return undefined;
  return { notBefore: d.createdAt, notAfter: Math.max(d.createdAt, d.updatedAt ?? readAt) };
}

/** Why a deployment Unkey still reports `ready` cannot take traffic now (shown in refusals). */
export const SHUTTING_DOWN_REASON =
  "Unkey offers no rollback or promote to it right now: it still reports ready, but Unkey is shutting it down. Unkey stops a production deployment 30 minutes after it stopped serving (its docs call this standby), and Unkey's API does not start a production deployment again, so Unkey would refuse the switch (412 deployment_not_ready).";

/** Why a stopped production deployment cannot take traffic again. */
export const STOPPED_REASON =
  "Unkey stopped it, and Unkey's API does not start a production deployment again (no rollback, promote or start is offered on it).";

/**
 * Unkey status → Switchyard status, with Unkey's reason when the status alone does not say it.
 * - `ready` is only what Unkey's status column says; whether Unkey will switch to it is in
 *   `availableActions`, computed like its rollback/promote checks (actions.go): a non-current production
 *   deployment offers `promote` and `rollback` exactly while it is ready, its desired state is running and
 *   the app has a current deployment; a preview one offers `stop` while running. A ready, non-current
 *   deployment that offers none of them is being shut down (desired state stopped): Unkey refuses a
 *   rollback to it (deployment_not_ready) and cannot start it again, so it is `stopped` here.
 *   `actionsMeanRunning` is false when nothing tells that apart from a production app without any current
 *   deployment (Unkey then offers nothing on any deployment): it stays `ready`.
 * - `superseded` is a queued build Unkey dropped because a newer commit of the branch arrived before it
 *   ran (never built, never served): `failed`, like `skipped` and `cancelled`.
 * - any other status (one Unkey adds later): `building` with a reason naming Unkey's status, so it is
 *   never a default or accepted target; the adapter logs each such status once.
 */
export function describeStatus(
  d: Pick<UnkeyDeployment, 'status' | 'availableActions' | 'isCurrent'>,
  actionsMeanRunning = true,
): { readonly status: DeploymentStatus; readonly reason?: string } {
  switch (d.status) {
    case 'ready': {
      const running =
        d.isCurrent ||
        !actionsMeanRunning ||
        d.availableActions.some((a) => a === 'rollback' || a === 'promote' || a === 'stop');
      return running ? { status: 'ready' } : { status: 'stopped', reason: SHUTTING_DOWN_REASON };
    }
    case 'pending':
    case 'starting':
    case 'building':
    case 'deploying':
    case 'network':
    case 'finalizing':
    case 'awaiting_approval':
      return { status: 'building' };
    case 'failed':
    case 'cancelled':
    case 'skipped':
    case 'superseded':
      return { status: 'failed' };
    case 'stopped':
      // A preview deployment offers `start`; a production one is never started again.
      return d.availableActions.includes('start')
        ? { status: 'stopped' }
        : { status: 'stopped', reason: STOPPED_REASON };
    default:
      // A status Unkey added after fc99b6b: nothing says the deployment can take traffic, so it is shown
      // as not ready yet (no plan switches to it, no notice announces it), with Unkey's word for it.
      return { status: 'building', reason: unknownStatusReason(d.status) };
  }
}

/** Why a deployment in a status Switchyard does not know is not offered as a target. */
export function unknownStatusReason(status: string): string {
  return `Unkey reports status "${status}", which Switchyard does not know, so it is treated as not ready (not switchable).`;
}

/** Unkey status → Switchyard status (see `describeStatus`). */
export function mapStatus(
  d: Pick<UnkeyDeployment, 'status' | 'availableActions' | 'isCurrent'>,
  actionsMeanRunning = true,
): DeploymentStatus {
  return describeStatus(d, actionsMeanRunning).status;
}

/**
 * Whether `availableActions` on the deployments of one environment can be read as "running or not"
 * (see `describeStatus`): true when one of them is current or offers a switch (a production app with a
 * current deployment), or offers `stop`/`start` (a preview environment); false when nothing rules out a
 * production app that has no current deployment.
 */
export function actionsMeanRunning(
  deployments: readonly Pick<UnkeyDeployment, 'isCurrent' | 'availableActions'>[],
): boolean {
  return deployments.some((d) => d.isCurrent || d.availableActions.length > 0);
}

/**
 * The EnvironmentKind of the environment these deployments belong to, from what Unkey's deployment
 * objects show: only production deployments can be current or offer promote/rollback; only preview ones
 * offer stop/start. Undefined when none of them says (e.g. no deployment yet).
 */
export function environmentKindOf(
  deployments: readonly Pick<UnkeyDeployment, 'isCurrent' | 'availableActions'>[],
): 'production' | 'preview' | undefined {
  for (const d of deployments) {
    if (d.isCurrent || d.availableActions.some((a) => a === 'promote' || a === 'rollback')) {
      return 'production';
    }
    if (d.availableActions.some((a) => a === 'stop' || a === 'start')) return 'preview';
  }
  return undefined;
}

/**
 * True when the app is rolled back. Unkey has no field for it: the current deployment offers `promote`
 * exactly while the app is rolled back (promoting it confirms the rollback).
 */
export function isRolledBack(
  current: Pick<UnkeyDeployment, 'isCurrent' | 'availableActions'> | undefined,
): boolean {
  return current?.isCurrent === true && current.availableActions.includes('promote');
}

/** Unkey's branch slug: non-alphanumerics become single hyphens, lower case, at most 80 characters. */
export function branchSlug(branch: string): string {
  return branch
    .trim()
    .replace(/[^a-zA-Z0-9]+/g, ' ')
    .trim()
    .replace(/\s+/g, '-')
    .toLowerCase()
    .slice(0, 80)
    .replace(/-+$/, '');
}

/** Result of classifying one hostname of one deployment. */
export interface HostnameClass {
  /** `undefined`: a system hostname matching no known pattern (decided by `classifyDomains`). */
  readonly stickiness: DomainStickiness | undefined;
  readonly branch?: string;
}

/**
 * Classifies a hostname from Unkey's hostname patterns:
 * - not under the apex (`unkey.app`): a custom domain → `live`;
 * - `<project>-git-<sha7>-…`: the per-commit domain → `deployment` (never moves);
 * - `<project>-git-<branch-slug>-…`: the branch domain → `branch`;
 * - `<project>-<environment>-…`: the environment domain → `environment`;
 * - a label containing the deployment id → `deployment`;
 * - anything else: undecided here (see `classifyDomains`).
 */
export function classifyHostname(
  hostname: string,
  d: Pick<UnkeyDeployment, 'id' | 'project' | 'environment' | 'git'>,
  apex: string = UNKEY_APEX,
): HostnameClass {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  const suffix = `.${apex.toLowerCase()}`;
  if (!host.endsWith(suffix)) return { stickiness: 'live' };
  const label = host.slice(0, -suffix.length);
  const sha = d.git?.commitSha.toLowerCase().slice(0, 7);
  if (sha !== undefined && sha.length > 0 && new RegExp(`(^|-)git-${escapeRegExp(sha)}(-|$)`).test(label)) {
    return { stickiness: 'deployment' };
  }
  const branch = d.git?.branch;
  if (branch !== undefined && branch !== '') {
    const slug = branchSlug(branch);
    if (slug !== '' && new RegExp(`(^|-)git-${escapeRegExp(slug)}(-|$)`).test(label)) {
      return { stickiness: 'branch', branch };
    }
  }
  const env = d.environment.toLowerCase();
  const project = d.project.toLowerCase();
  if (env !== '' && (label.startsWith(`${project}-${env}-`) || label === `${project}-${env}`)) {
    return { stickiness: 'environment' };
  }
  const id = d.id.toLowerCase();
  if (label.includes(id) || label.includes(id.replace(/_/g, '-'))) return { stickiness: 'deployment' };
  return { stickiness: undefined };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Every hostname of an environment's deployments as domain values (each hostname points to the
 * deployment that lists it). Undecided system hostnames are settled with a cross-deployment signal:
 * per-deployment hostnames exist on every deployment, while the project's live hostname sits only on
 * the current one. So when any non-current deployment carries an undecided hostname, undecided
 * hostnames are per-deployment (`deployment`); otherwise the current deployment's are `live`.
 */
export function classifyDomains(
  deployments: readonly UnkeyDeployment[],
  environmentSlug: string,
  apex: string = UNKEY_APEX,
): Domain[] {
  const rows = deployments.flatMap((d) =>
    d.domains.map((hostname) => ({ d, hostname, cls: classifyHostname(hostname, d, apex) })),
  );
  const perDeploymentPattern = rows.some((r) => r.cls.stickiness === undefined && !r.d.isCurrent);
  const seen = new Set<string>();
  const domains: Domain[] = [];
  for (const { d, hostname, cls } of rows) {
    const key = hostname.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    const stickiness: DomainStickiness =
      cls.stickiness ?? (d.isCurrent && !perDeploymentPattern ? 'live' : 'deployment');
    domains.push({
      hostname,
      stickiness,
      environment: environmentSlug,
      ...(cls.branch === undefined ? {} : { branch: cls.branch }),
      deploymentId: d.id,
    });
  }
  return domains;
}

/** Commit-ish identity of a deployment: git sha, else the image tag or digest, else empty. */
function commitOf(d: UnkeyDeployment): Deployment['commit'] {
  if (d.git) return { sha: d.git.commitSha, message: '', author: '' };
  if (d.docker) {
    const image = d.docker.image;
    const at = image.lastIndexOf('@');
    const colon = image.lastIndexOf(':');
    const slash = image.lastIndexOf('/');
    const ref = at >= 0 ? image.slice(at + 1) : colon > slash ? image.slice(colon + 1) : image;
    return { sha: ref, message: image, author: '' };
  }
  return { sha: '', message: '', author: '' };
}

/**
 * Unkey deployment → domain Deployment in the Switchyard environment `environmentSlug`. `readyAt` is
 * approximated by `updatedAt` (Unkey does not report when a deployment became ready; see
 * `unkeyReadyWindow` for why that is only an upper bound). `actionsMeanRunning`: see `describeStatus`.
 */
export function toDeployment(
  d: UnkeyDeployment,
  environmentSlug: string,
  actionsMeanRunning = true,
): Deployment {
  const { status, reason } = describeStatus(d, actionsMeanRunning);
  const readyAt = status === 'ready' || status === 'standby' ? (d.updatedAt ?? d.createdAt) : undefined;
  return {
    id: d.id,
    projectId: d.project,
    environment: environmentSlug,
    branch: d.git?.branch ?? '',
    commit: commitOf(d),
    createdAt: d.createdAt,
    ...(readyAt === undefined ? {} : { readyAt }),
    status,
    ...(reason === undefined ? {} : { statusReason: reason }),
  };
}
