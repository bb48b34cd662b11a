/**
 * Pure mapping from Vercel's project, deployment and domain objects to Switchyard's domain values:
 * readyState → status, a deployment's environment (`production`/`preview`), the rolled-back state,
 * domain stickiness and the Deployment shape. No I/O; the adapter feeds it parsed API answers. The
 * reasoning behind each choice is in docs/vercel.md ("How Vercel state is read").
 */
import type { Deployment, DeploymentStatus, Domain, DomainStickiness } from '../../domain/types.js';
import type { LastSwitch, ReadyWindow } from '../live-history.js';
import {
  type KnownVercelReadyState,
  type VercelDeployment,
  type VercelProject,
  type VercelProjectDomain,
  type VercelReadyState,
  vercelReadyStates,
} from './schemas.js';

/** The apex of the hostnames Vercel gives projects and deployments. */
export const VERCEL_APEX = 'vercel.app';

/** The two Switchyard environments of a Vercel project. */
export const VercelEnvironment = { production: 'production', preview: 'preview' } as const;
export type VercelEnvironment = (typeof VercelEnvironment)[keyof typeof VercelEnvironment];

/** True for the readyStates Vercel documents (see `vercelReadyStates`). */
export function isKnownReadyState(state: string): state is KnownVercelReadyState {
  return (vercelReadyStates as readonly string[]).includes(state);
}

/**
 * Vercel `readyState` → Switchyard status. Vercel has no standby: a production deployment that no
 * longer serves stays READY and can take traffic again at once, so `standby` never occurs.
 * - BLOCKED: Vercel holds the deployment back (e.g. until the commit author is authorized or its checks
 *   pass); it never became ready and may still build: `building`, like QUEUED.
 * - DELETED: gone; the adapter leaves such deployments out, `stopped` is only for completeness.
 * - any other (a state added after this was written): `building`, which no plan switches to and no
 *   notice announces; the adapter logs it once.
 */
export function mapReadyState(state: VercelReadyState): DeploymentStatus {
  switch (state) {
    case 'READY':
      return 'ready';
    case 'QUEUED':
    case 'INITIALIZING':
    case 'BUILDING':
    case 'BLOCKED':
      return 'building';
    case 'ERROR':
    case 'CANCELED':
      return 'failed';
    case 'DELETED':
      return 'stopped';
    default:
      return 'building';
  }
}

/** Vercel's own words for a state whose status alone does not explain why it cannot take traffic. */
function statusReasonOf(state: VercelReadyState): string | undefined {
  if (state === 'BLOCKED') {
    return 'Vercel blocked it (for example until the commit author is authorized or its checks pass), so it never became ready.';
  }
  if (state === 'DELETED') return 'Vercel deleted it.';
  if (!isKnownReadyState(state)) {
    return `Vercel reports readyState "${state}", which Switchyard does not know, so it is treated as not ready.`;
  }
  return undefined;
}

/** The Switchyard environment of a deployment: `target: "production"` or else preview. */
export function environmentOf(d: Pick<VercelDeployment, 'target'>): VercelEnvironment {
  return d.target === 'production' ? 'production' : 'preview';
}

/** True while production is rolled back: Vercel stops auto-assigning custom domains until a promote. */
export function isRolledBack(project: Pick<VercelProject, 'autoAssignCustomDomains'>): boolean {
  return project.autoAssignCustomDomains === false;
}

/**
 * The project's last rollback or promote (`lastAliasRequest`) as live-history evidence: Vercel's own
 * record of which deployment it moved production to, from which, and when that was requested.
 */
export function lastSwitchOf(project: Pick<VercelProject, 'lastAliasRequest'>): LastSwitch | undefined {
  const job = project.lastAliasRequest ?? undefined;
  if (job === undefined) return undefined;
  const from = job.fromDeploymentId ?? undefined;
  return {
    via: job.type,
    ...(from === undefined ? {} : { from }),
    to: job.toDeploymentId,
    succeeded: job.jobStatus === 'succeeded',
    requestedAt: job.requestedAt,
  };
}

/**
 * When a Vercel deployment became ready: exactly its `ready` time, which Vercel sets once; without one,
 * no earlier than its creation and no later than `readAt`. Undefined for a deployment not listed.
 */
export function vercelReadyWindow(
  d: Pick<VercelDeployment, 'createdAt' | 'ready'> | undefined,
  readAt: number,
): ReadyWindow | undefined {
  if (d === undefined) return undefined;
  if (d.ready !== undefined) return { notBefore: d.ready, notAfter: d.ready };
  return { notBefore: d.createdAt, notAfter: Math.max(d.createdAt, readAt) };
}

/** The deployment serving production (`targets.production.id`), if any. */
export function currentProductionId(project: Pick<VercelProject, 'targets'>): string | undefined {
  return project.targets?.production?.id ?? undefined;
}

/** Git branch of a deployment from its git metadata (GitHub, GitLab or Bitbucket), else empty. */
export function branchOf(d: Pick<VercelDeployment, 'meta'>): string {
  return d.meta.githubCommitRef ?? d.meta.gitlabCommitRef ?? d.meta.bitbucketCommitRef ?? '';
}

/** Commit of a deployment from its git metadata; empty fields when it was not deployed from git. */
export function commitOf(d: Pick<VercelDeployment, 'meta'>): Deployment['commit'] {
  const m = d.meta;
  return {
    sha: m.githubCommitSha ?? m.gitlabCommitSha ?? m.bitbucketCommitSha ?? '',
    message: m.githubCommitMessage ?? m.gitlabCommitMessage ?? m.bitbucketCommitMessage ?? '',
    author:
      m.githubCommitAuthorName ??
      m.githubCommitAuthorLogin ??
      m.gitlabCommitAuthorName ??
      m.bitbucketCommitAuthorName ??
      '',
  };
}

/** Vercel deployment → domain Deployment (`readyAt` from `ready`, else `createdAt` once READY). */
export function toDeployment(d: VercelDeployment, projectId: string): Deployment {
  const status = mapReadyState(d.readyState);
  const readyAt = status === 'ready' ? (d.ready ?? d.createdAt) : undefined;
  const reason = statusReasonOf(d.readyState);
  return {
    id: d.id,
    projectId: d.projectId ?? projectId,
    environment: environmentOf(d),
    branch: branchOf(d),
    commit: commitOf(d),
    createdAt: d.createdAt,
    ...(readyAt === undefined ? {} : { readyAt }),
    status,
    ...(reason === undefined ? {} : { statusReason: reason }),
  };
}

/**
 * How one project domain is used; `undefined` for domains Switchyard leaves alone: redirects,
 * custom-environment domains, and domains still awaiting verification (`verified: false`), which Vercel
 * "will not use as an alias on this project until the challenge in verification is completed": they
 * serve no deployment and no rollback or promote moves them.
 */
export function classifyDomain(
  domain: Pick<VercelProjectDomain, 'name' | 'redirect' | 'gitBranch' | 'customEnvironmentId' | 'verified'>,
  productionBranch: string | undefined,
  apex: string = VERCEL_APEX,
):
  | {
      readonly environment: VercelEnvironment;
      readonly stickiness: DomainStickiness;
      readonly branch?: string;
    }
  | undefined {
  // An unverified domain is no alias yet; a redirecting domain serves no deployment; a custom-environment
  // domain is outside both environments.
  if (domain.verified === false) return undefined;
  if (typeof domain.redirect === 'string' && domain.redirect !== '') return undefined;
  if (typeof domain.customEnvironmentId === 'string' && domain.customEnvironmentId !== '') return undefined;
  const branch = domain.gitBranch ?? undefined;
  if (branch !== undefined && branch !== '' && branch !== productionBranch) {
    return { environment: 'preview', stickiness: 'branch', branch };
  }
  const host = domain.name.toLowerCase().replace(/\.$/, '');
  if (host.endsWith(`.${apex.toLowerCase()}`))
    return { environment: 'production', stickiness: 'environment' };
  return { environment: 'production', stickiness: 'live' };
}

/**
 * The domains of one Switchyard environment and the deployment each points to: production domains
 * point to the current production deployment; a preview branch domain points to the newest READY
 * preview deployment of its branch (none when the branch has none).
 */
export function classifyDomains(
  domains: readonly VercelProjectDomain[],
  environment: VercelEnvironment,
  opts: {
    readonly currentProductionId: string | undefined;
    readonly previewDeployments: readonly VercelDeployment[];
    readonly productionBranch?: string;
    readonly apex?: string;
  },
): Domain[] {
  const out: Domain[] = [];
  const seen = new Set<string>();
  for (const domain of domains) {
    const cls = classifyDomain(domain, opts.productionBranch, opts.apex);
    if (cls === undefined || cls.environment !== environment) continue;
    const key = domain.name.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    let deploymentId: string | undefined;
    if (cls.environment === 'production') deploymentId = opts.currentProductionId;
    else {
      deploymentId = [...opts.previewDeployments]
        .filter((d) => d.readyState === 'READY' && branchOf(d) === cls.branch)
        .sort((a, b) => b.createdAt - a.createdAt)[0]?.id;
    }
    out.push({
      hostname: domain.name,
      stickiness: cls.stickiness,
      environment,
      ...(cls.branch === undefined ? {} : { branch: cls.branch }),
      ...(deploymentId === undefined ? {} : { deploymentId }),
    });
  }
  return out;
}
