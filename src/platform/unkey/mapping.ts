/**
 * Pure mapping from Unkey's deployment objects to Switchyard's domain values: lifecycle status,
 * rolled-back state, domain stickiness and the Deployment shape. No I/O; the adapter feeds it parsed
 * API answers. The reasoning behind each choice is in docs/unkey.md ("How Unkey state is read").
 */
import {
  assertNever,
  type Deployment,
  type DeploymentStatus,
  type Domain,
  type DomainStickiness,
} from '../../domain/types.js';
import type { UnkeyDeployment } from './schemas.js';

/** The apex of Unkey's system hostnames (`<project>-<environment>-<workspace>.unkey.app`). */
export const UNKEY_APEX = 'unkey.app';

/**
 * Unkey status → Switchyard status.
 * - `superseded` is a production deployment that no longer serves: when Unkey still offers `rollback` on
 *   it, it can take traffic again (after reactivation), which is what Switchyard calls `standby`; when it
 *   offers nothing it cannot come back, i.e. `stopped`.
 */
export function mapStatus(d: Pick<UnkeyDeployment, 'status' | 'availableActions'>): DeploymentStatus {
  switch (d.status) {
    case 'ready':
      return 'ready';
    case 'pending':
    case 'starting':
    case 'building':
    case 'deploying':
    case 'network':
    case 'finalizing':
    case 'awaiting_approval':
      return 'building';
    case 'failed':
    case 'cancelled':
    case 'skipped':
      return 'failed';
    case 'stopped':
      return 'stopped';
    case 'superseded':
      return d.availableActions.includes('rollback') ? 'standby' : 'stopped';
    default:
      return assertNever(d.status, 'Unkey deployment status');
  }
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
 * approximated by `updatedAt` (Unkey does not report when a deployment became ready).
 */
export function toDeployment(d: UnkeyDeployment, environmentSlug: string): Deployment {
  const status = mapStatus(d);
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
  };
}
