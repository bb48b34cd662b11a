/**
 * The deployment domain: projects, environments, deployments and domains as Switchyard sees them,
 * independent of any deploy platform. Pure data; every platform adapter maps its own shapes onto these.
 */

/** Lifecycle of a deployment as far as rollbacks care. */
export const DeploymentStatus = {
  building: 'building',
  ready: 'ready',
  failed: 'failed',
  /** Production deployment that stopped serving more than 30 minutes ago: usable for rollback, slower. */
  standby: 'standby',
  /** No longer running and cannot be started again (instant rollback impossible). */
  stopped: 'stopped',
} as const;
export type DeploymentStatus = (typeof DeploymentStatus)[keyof typeof DeploymentStatus];

export const EnvironmentKind = { production: 'production', preview: 'preview' } as const;
export type EnvironmentKind = (typeof EnvironmentKind)[keyof typeof EnvironmentKind];

/**
 * How a domain follows deployments.
 * - `live`: custom domains and the project's live domain; move on rollback/promote and on a normal deploy.
 * - `environment`: the environment's own domain; moves like `live`.
 * - `branch`: follows the branch's newest deployment (frozen while the environment is rolled back).
 * - `deployment`: bound to one deployment forever; never moves.
 */
export const DomainStickiness = {
  live: 'live',
  environment: 'environment',
  branch: 'branch',
  deployment: 'deployment',
} as const;
export type DomainStickiness = (typeof DomainStickiness)[keyof typeof DomainStickiness];

export const PlanAction = { rollback: 'rollback', promote: 'promote' } as const;
export type PlanAction = (typeof PlanAction)[keyof typeof PlanAction];

export interface Project {
  readonly id: string;
  readonly name: string;
}

export interface Commit {
  readonly sha: string;
  readonly message: string;
  readonly author: string;
}

export interface Deployment {
  readonly id: string;
  readonly projectId: string;
  /** Slug of the environment this deployment belongs to. */
  readonly environment: string;
  readonly branch: string;
  readonly commit: Commit;
  /** Unix ms. */
  readonly createdAt: number;
  /** Unix ms when it became ready; absent while building or when it failed. */
  readonly readyAt?: number;
  readonly status: DeploymentStatus;
  /**
   * The platform's own explanation when `status` alone does not say why the deployment cannot take
   * traffic now (e.g. Unkey still reports it ready but is shutting it down). Shown in refusals.
   */
  readonly statusReason?: string;
}

export interface Domain {
  readonly hostname: string;
  readonly stickiness: DomainStickiness;
  readonly environment: string;
  /** For `branch` domains: the branch they follow. */
  readonly branch?: string;
  /** Deployment the domain points to now (absent when nothing serves it yet). */
  readonly deploymentId?: string;
}

/** One entry of an environment's live history: `deploymentId` held the live domains from `since`. */
export interface LiveEntry {
  readonly deploymentId: string;
  /** Unix ms. */
  readonly since: number;
  /** Who or what put it live: `deploy` (automatic), `rollback`, `promote`. */
  readonly via: 'deploy' | 'rollback' | 'promote';
  readonly by?: string;
  /**
   * The Switchyard switch job that asked for it (`SwitchRequest.jobId`), where the platform records it
   * (the local one; absent in entries of older state files): how a job knows its own switch, since
   * `by` is a display name that two people can share. Never shown.
   */
  readonly jobId?: string;
}

export interface Environment {
  readonly slug: string;
  readonly kind: EnvironmentKind;
  readonly projectId: string;
  /** True after a rollback until a promote: new deployments get no live/environment/branch domains. */
  readonly rolledBack: boolean;
  /** When and by whom the environment was rolled back (while `rolledBack`): its latest rollback. */
  readonly rolledBackAt?: number;
  readonly rolledBackBy?: string;
  /**
   * When the rolled-back period began (while `rolledBack`): the first rollback since the environment
   * was last promoted. Equal to `rolledBackAt` after one rollback; earlier after a second rollback
   * further back, which moves `rolledBackAt` but continues the period. Absent when the platform does
   * not say (plans then read `rolledBackAt`).
   */
  readonly rolledBackSince?: number;
  readonly currentDeploymentId?: string;
  /**
   * The branch whose pushes go live in this environment (the local platform's `productionBranch`,
   * Vercel's production branch), when the platform says. Absent when it does not (Unkey), or when any
   * branch's push goes live.
   */
  readonly productionBranch?: string;
}

/** Everything a plan needs to know about one environment, read at one moment. */
export interface EnvironmentSnapshot {
  readonly project: Project;
  readonly environment: Environment;
  /**
   * Newest first, in the platform's own order of creation (the local platform: push order, whatever
   * the wall clock said). Plans tell older from newer by this order, not by `createdAt`.
   */
  readonly deployments: readonly Deployment[];
  readonly domains: readonly Domain[];
  /** Oldest first; may be empty when the platform keeps no history. */
  readonly liveHistory: readonly LiveEntry[];
  /**
   * Present on platforms that keep no live history (Unkey, Vercel; `liveHistory` is then empty): how
   * the current deployment went live as far as the platform's state alone tells. Kept apart from
   * `liveHistory`, which plans, views and notices read as the platform's own record; read where a
   * claim made from the state is wanted: alert correlation, the default targets, and how a notice's
   * rolled-back period ended (src/notices.ts).
   */
  readonly derivedLive?: DerivedLive;
  /**
   * Set when the adapter stopped listing deployments at its read limit (`maxDeployments`, 500 by
   * default) with more left on the platform: `deployments` holds the newest ones read (plus the
   * current one when it is older), so their number is not the environment's total. Views then say
   * "500+ deployments" and "of the 500 deployments read". Absent when every deployment was read.
   */
  readonly deploymentsTruncated?: true;
  /** Unix ms at which the snapshot was taken. */
  readonly readAt: number;
}

/**
 * What a platform without live history tells of how the environment's current deployment went live
 * (worked out by src/platform/live-history.ts). Either `current` or `unknown` is set.
 */
export interface DerivedLive {
  /** The platform's name in messages ("Unkey", "Vercel"). */
  readonly platform: string;
  /** How the current deployment went live, when the platform's state tells it for certain. */
  readonly current?: {
    readonly deploymentId: string;
    readonly via: LiveEntry['via'];
    /** Unix ms: it went live no earlier than this… */
    readonly notBefore: number;
    /** …and no later than this (equal when the platform says exactly when). */
    readonly notAfter: number;
    /** The deployment that was live right before it, when the platform's state tells it. */
    readonly previous?: string;
  };
  /**
   * Why the platform's state does not tell how the current deployment went live: one clause, e.g.
   * "it is older than dep_x, so it was promoted or rolled back to".
   */
  readonly unknown?: string;
}

/** Exhaustiveness helper for switches over unions. */
export function assertNever(value: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(value)}`);
}
