/**
 * The Vercel adapter of the DeployPlatform port. One Vercel project gives two Switchyard environments:
 * `production` (current = `targets.production`, rolled back while `autoAssignCustomDomains` is false)
 * and, unless disabled, a read-only `preview`. Rollback (`POST /v1/projects/{id}/rollback/{deployment}`,
 * with a `description` naming the requester) and promote (`POST /v10/projects/{id}/promote/{deployment}`)
 * start an alias job that is followed through the project's `lastAliasRequest`. Vercel's refusals
 * become RefusalErrors (src/platform/vercel/refusals.ts). Vercel offers no per-request deployment
 * header we can read, so there is no `probe`: verification relies on `routing`, which asks Vercel's
 * alias table where each domain points (`GET /v4/aliases/{domain}`): observed, not inferred from
 * `targets.production`.
 */
import type { z } from 'zod';
import type { Clock } from '../../clock.js';
import { systemClock } from '../../clock.js';
import type { Config } from '../../config.js';
import { RefusalCode } from '../../domain/result.js';
import type { Deployment, EnvironmentSnapshot, PlanAction } from '../../domain/types.js';
import { ConfigError, PlatformHttpError, RefusalError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log.js';
import { pickDefined } from '../http-client.js';
import { deriveLive } from '../live-history.js';
import type {
  DeployPlatform,
  OperationRef,
  OperationStatus,
  PlatformEvent,
  Route,
  SwitchRequest,
} from '../port.js';
import { type PollingEvents, pollerFor, type SnapshotEventPoller } from '../snapshot-poller.js';
import { type HttpMethod, VercelClient, type VercelClientOptions } from './client.js';
import {
  classifyDomains,
  currentProductionId,
  environmentOf,
  isKnownReadyState,
  isRolledBack,
  lastSwitchOf,
  toDeployment,
  VERCEL_APEX,
  VercelEnvironment,
  vercelReadyWindow,
} from './mapping.js';
import { type RefusalContext, toRefusal, type VercelCall } from './refusals.js';
import {
  AcceptedResponseSchema,
  AliasResponseSchema,
  aliasFromResponse,
  GetDeploymentResponseSchema,
  ListDeploymentsResponseSchema,
  ProjectDomainsResponseSchema,
  ProjectSchema,
  type VercelDeployment,
  type VercelProject,
  type VercelProjectDomain,
} from './schemas.js';

/** Alias reads `routing` keeps in flight at once. */
const ALIAS_READS_AT_ONCE = 8;

/** Longest rollback `description` sent (Vercel's CLI caps the rollback description at 250). */
const MAX_DESCRIPTION_LENGTH = 250;

export interface VercelPlatformOptions {
  /** The Vercel project id or name (`vercel.project` / `VERCEL_PROJECT`). */
  readonly project: string;
  /** Offer the read-only `preview` environment (default true). */
  readonly preview?: boolean;
  /** The HTTP client (or the options to build one). */
  readonly client: VercelClient | VercelClientOptions;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Page size of the list endpoints (1–100). */
  readonly pageSize?: number;
  /** Upper bound of deployments read per snapshot (stops paging). */
  readonly maxDeployments?: number;
  /** An alias job not finished this long after it was requested is reported failed (the CLI's 3 min). */
  readonly operationTimeoutMs?: number;
  /**
   * How far Vercel's `lastAliasRequest.requestedAt` may lie before the operation's `startedAt` and still
   * be taken as this operation's job (clock skew between Switchyard and Vercel).
   */
  readonly clockSkewMs?: number;
  /** Apex of Vercel's own hostnames (custom domains are everything else). */
  readonly apex?: string;
  /** Deployment events by polling (`subscribe`); absent: the adapter offers no `subscribe`. */
  readonly events?: PollingEvents;
}

/** Defaults of the adapter's tunables. */
export const vercelPlatformDefaults = {
  pageSize: 100,
  maxDeployments: 500,
  operationTimeoutMs: 3 * 60_000,
  clockSkewMs: 60_000,
  apex: VERCEL_APEX,
  /** The Vercel CLI polls an alias job every 250 ms; `verify.interval: 250ms` matches it. */
  pollIntervalMs: 250,
} as const;

/** DeployPlatform over Vercel's public REST API. */
export class VercelPlatform implements DeployPlatform {
  readonly name = 'vercel';
  private readonly client: VercelClient;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly project: string;
  private readonly teamId: string | undefined;
  private readonly environments: readonly VercelEnvironment[];
  private readonly pageSize: number;
  private readonly maxDeployments: number;
  private readonly operationTimeoutMs: number;
  private readonly clockSkewMs: number;
  private readonly apex: string;
  private readonly poller: SnapshotEventPoller | undefined;
  /** readyStates Vercel sent that Switchyard does not know, already logged (each is logged once). */
  private readonly unknownStates = new Set<string>();
  /** Project domains seen awaiting verification, already logged (each is logged once). */
  private readonly unverifiedDomains = new Set<string>();
  /** Present when `events` is configured: deployment events found by polling (issue 9). */
  readonly subscribe?: (listener: (event: PlatformEvent) => void) => () => void;

  constructor(options: VercelPlatformOptions) {
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.client =
      options.client instanceof VercelClient
        ? options.client
        : new VercelClient({ clock: this.clock, logger: this.logger, ...options.client });
    this.teamId = this.client.teamId;
    this.project = options.project;
    this.environments =
      options.preview === false
        ? [VercelEnvironment.production]
        : [VercelEnvironment.production, VercelEnvironment.preview];
    this.pageSize = Math.min(100, Math.max(1, options.pageSize ?? vercelPlatformDefaults.pageSize));
    this.maxDeployments = Math.max(1, options.maxDeployments ?? vercelPlatformDefaults.maxDeployments);
    this.operationTimeoutMs = options.operationTimeoutMs ?? vercelPlatformDefaults.operationTimeoutMs;
    this.clockSkewMs = options.clockSkewMs ?? vercelPlatformDefaults.clockSkewMs;
    this.apex = options.apex ?? vercelPlatformDefaults.apex;
    const events = options.events;
    if (events !== undefined) {
      const poller = pollerFor(this, events, { clock: this.clock, logger: this.logger });
      this.poller = poller;
      this.subscribe = (listener) => poller.subscribe(listener);
    }
  }

  /** The event poller when `events` is configured (tests call `pollOnce` to poll deterministically). */
  get eventPoller(): SnapshotEventPoller | undefined {
    return this.poller;
  }

  async listEnvironments(): Promise<readonly string[]> {
    return [...this.environments];
  }

  async snapshot(environment: string): Promise<EnvironmentSnapshot> {
    const env = this.environmentOf(environment);
    const project = await this.readProject();
    const [listed, domains] = await Promise.all([
      this.listDeployments(project.id, env),
      this.listDomains(project.id),
    ]);
    const raw = [...listed.deployments];
    let currentId: string | undefined;
    if (env === 'production') {
      currentId = currentProductionId(project);
      // The current deployment may be older than the pages read: read it so plans always know it.
      if (currentId !== undefined && !raw.some((d) => d.id === currentId)) {
        const current = await this.fetchDeployment(currentId).catch((e: unknown) => {
          if (e instanceof RefusalError && e.code === RefusalCode.unknownDeployment) return undefined;
          throw e;
        });
        if (current && current.readyState !== 'DELETED') raw.push(current);
      }
    } else {
      currentId = raw.find((d) => d.readyState === 'READY')?.id;
    }
    raw.sort((a, b) => b.createdAt - a.createdAt);
    const productionBranch = project.link?.productionBranch;
    const readAt = this.clock.now();
    const snapshotEnv = {
      slug: env,
      kind: env === 'production' ? ('production' as const) : ('preview' as const),
      projectId: project.id,
      rolledBack: env === 'production' && isRolledBack(project),
      ...(currentId === undefined ? {} : { currentDeploymentId: currentId }),
      // Vercel's production branch is production's alone: a preview takes every other branch.
      ...(env === 'production' && productionBranch !== undefined ? { productionBranch } : {}),
    };
    const deployments = raw.map((d) => this.toDeployment(d, project.id));
    const byId = new Map(raw.map((d) => [d.id, d]));
    const lastSwitch = lastSwitchOf(project);
    return {
      project: { id: project.id, name: project.name },
      environment: snapshotEnv,
      deployments,
      domains: classifyDomains(domains, env, {
        currentProductionId: currentProductionId(project),
        previewDeployments: env === 'preview' ? raw : [],
        ...(productionBranch === undefined ? {} : { productionBranch }),
        apex: this.apex,
      }),
      // Vercel exposes no live history (docs/vercel.md); what its state tells instead, with the last
      // alias job (a rollback or promote) as its own record of when that one went live:
      liveHistory: [],
      derivedLive: deriveLive({
        platform: 'Vercel',
        environment: snapshotEnv,
        deployments,
        readAt,
        readyWindow: (d) => vercelReadyWindow(byId.get(d.id), readAt),
        ...(lastSwitch === undefined ? {} : { lastSwitch }),
        switchTakesAtMostMs: this.operationTimeoutMs,
      }),
      readAt,
      // Paging stopped at maxDeployments with more left: the deployments read are not all of them.
      ...(listed.truncated ? { deploymentsTruncated: true as const } : {}),
    };
  }

  async getDeployment(id: string): Promise<Deployment | undefined> {
    let d: VercelDeployment;
    try {
      d = await this.fetchDeployment(id);
    } catch (e) {
      if (e instanceof RefusalError && e.code === RefusalCode.unknownDeployment) return undefined;
      throw e;
    }
    if (d.readyState === 'DELETED') return undefined;
    const project = await this.readProject();
    if (d.projectId !== undefined && d.projectId !== project.id) return undefined;
    if (!this.environments.includes(environmentOf(d))) return undefined;
    return this.toDeployment(d, project.id);
  }

  /** `toDeployment`, logging once each readyState Vercel sent that Switchyard does not know. */
  private toDeployment(d: VercelDeployment, projectId: string): Deployment {
    if (!isKnownReadyState(d.readyState) && !this.unknownStates.has(d.readyState)) {
      this.unknownStates.add(d.readyState);
      this.logger.warn(
        { readyState: d.readyState, deployment: d.id },
        'vercel: unknown readyState, treated as not ready (building) until Switchyard knows it',
      );
    }
    return toDeployment(d, projectId);
  }

  /**
   * Where each domain of the environment points now, as Vercel's alias table says: the project and its
   * domains, then one `GET /v4/aliases/{domain}?projectId=…` per domain (at most `ALIAS_READS_AT_ONCE` at a time). A domain
   * an alias job left on the old deployment shows that deployment, so verification catches it; a domain
   * with no alias (not assigned yet, or a redirect) has none.
   */
  async routing(environment: string): Promise<readonly Route[]> {
    const env = this.environmentOf(environment);
    // Which domains belong to the environment needs the project and its domains, not its deployments:
    // where each points comes from the alias table below.
    const project = await this.readProject();
    const productionBranch = project.link?.productionBranch;
    const domains = classifyDomains(await this.listDomains(project.id), env, {
      currentProductionId: undefined,
      previewDeployments: [],
      ...(productionBranch === undefined ? {} : { productionBranch }),
      apex: this.apex,
    });
    const out: Route[] = new Array<Route>(domains.length);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < domains.length; i = next++) {
        const d = domains[i];
        if (d === undefined) continue;
        const deploymentId = await this.aliasTarget(project.id, d.hostname);
        out[i] = {
          hostname: d.hostname,
          stickiness: d.stickiness,
          environment: d.environment,
          ...(deploymentId === undefined ? {} : { deploymentId }),
        };
      }
    };
    await Promise.all(Array.from({ length: Math.min(ALIAS_READS_AT_ONCE, domains.length) }, worker));
    return out;
  }

  /** The deployment `hostname` points to in Vercel's alias table (undefined: no alias, or a redirect). */
  private async aliasTarget(projectId: string, hostname: string): Promise<string | undefined> {
    try {
      const res = await this.client.call(
        {
          method: 'GET',
          path: `/v4/aliases/${encodeURIComponent(hostname)}`,
          query: { projectId },
          idempotent: true,
        },
        AliasResponseSchema,
      );
      return aliasFromResponse(res, hostname)?.deploymentId ?? undefined;
    } catch (e) {
      if (e instanceof PlatformHttpError && e.status === 404) return undefined;
      throw toRefusal(e, {
        call: 'read alias',
        project: this.project,
        ...(this.teamId === undefined ? {} : { teamId: this.teamId }),
      });
    }
  }

  rollback(request: SwitchRequest): Promise<OperationRef> {
    return this.switchTo('rollback', request);
  }

  promote(request: SwitchRequest): Promise<OperationRef> {
    return this.switchTo('promote', request);
  }

  async operation(ref: OperationRef): Promise<OperationStatus> {
    const project = await this.readProject();
    const now = this.clock.now();
    const current = currentProductionId(project);
    const rolledBack = isRolledBack(project);
    const job = project.lastAliasRequest ?? undefined;
    const ours =
      job !== undefined &&
      job.toDeploymentId === ref.targetId &&
      job.type === ref.action &&
      job.requestedAt >= ref.startedAt - this.clockSkewMs;
    const timedOut = now - ref.startedAt > this.operationTimeoutMs;
    // Past the timeout Switchyard stops waiting, but Vercel has not given up: its alias job (still
    // pending or in progress, or not on record yet) may well finish the switch after this. Not
    // definitive (`mayStillComplete`): the job ends saying so, and is not retried (that would request
    // another switch).
    const timeout = (jobState?: string): OperationStatus => ({
      id: ref.id,
      state: 'failed',
      error: {
        code: 'operation_timeout',
        message: `Vercel's alias job did not make ${ref.targetId} serve ${ref.environment} within ${Math.round(this.operationTimeoutMs / 1000)} s of the ${ref.action}${jobState === undefined ? '' : ` (Vercel still reports it ${jobState})`}; check the project's deployments on Vercel (or \`vercel rollback status\`).`,
        mayStillComplete: true,
      },
      updatedAt: now,
    });
    if (ours) {
      switch (job.jobStatus) {
        case 'succeeded':
          return { id: ref.id, state: 'succeeded', updatedAt: now };
        case 'failed':
          return {
            id: ref.id,
            state: 'failed',
            error: {
              code: 'alias_job_failed',
              message: `Vercel's alias job for the ${ref.action} to ${ref.targetId} failed: not every domain of ${project.name} could be moved${job.fromDeploymentId ? ` from ${job.fromDeploymentId}` : ''}. \`vercel rollback status ${project.name}\` lists the domains that failed.`,
            },
            updatedAt: now,
          };
        case 'skipped':
          if (current === ref.targetId) return { id: ref.id, state: 'succeeded', updatedAt: now };
          return {
            id: ref.id,
            state: 'failed',
            error: {
              code: 'alias_job_skipped',
              message: `Vercel skipped the ${ref.action} to ${ref.targetId} and production serves ${current ?? 'nothing'}, so the ${ref.action} did not happen (usually a newer rollback or promote replaced it).`,
            },
            updatedAt: now,
          };
        case 'pending':
          return timedOut ? timeout('pending') : { id: ref.id, state: 'pending', updatedAt: now };
        case 'in-progress':
          return timedOut ? timeout('in progress') : { id: ref.id, state: 'switching', updatedAt: now };
        default:
          return job.jobStatus satisfies never;
      }
    }
    // No job of ours on record (not yet visible, or replaced): judge by the project's state.
    const done = current === ref.targetId && (ref.action === 'rollback' ? rolledBack : !rolledBack);
    if (done) return { id: ref.id, state: 'succeeded', updatedAt: now };
    // Someone else's rollback or promote was requested after ours (later than any clock skew allows
    // for): Vercel records one alias job per project, the last one requested, so ours was replaced and
    // waiting cannot make it finish. Fail now rather than at the timeout.
    if (job !== undefined && job.requestedAt > ref.startedAt + this.clockSkewMs) {
      return {
        id: ref.id,
        state: 'failed',
        error: {
          code: 'alias_job_superseded',
          message: `Another ${job.type} (to ${job.toDeploymentId}, ${job.jobStatus}) was requested on Vercel after this ${ref.action} to ${ref.targetId} started and replaced it: production serves ${current ?? 'nothing'}${rolledBack ? ' (rolled back)' : ''}. Check the project's deployments on Vercel before switching again.`,
        },
        updatedAt: now,
      };
    }
    return timedOut ? timeout() : { id: ref.id, state: 'pending', updatedAt: now };
  }

  async health(): Promise<void> {
    await this.readProject();
  }

  async close(): Promise<void> {
    await this.poller?.stop();
  }

  // -- internals ------------------------------------------------------------------------------

  private environmentOf(environment: string): VercelEnvironment {
    const found = this.environments.find((e) => e === environment);
    if (found === undefined) {
      throw new RefusalError({
        code: RefusalCode.unknownEnvironment,
        message: `Unknown environment "${environment}". Valid environments: ${this.environments.join(', ')}.`,
        context: { input: environment, valid: [...this.environments] },
      });
    }
    return found;
  }

  private readProject(): Promise<VercelProject> {
    return this.call(
      'read project',
      { method: 'GET', path: `/v9/projects/${encodeURIComponent(this.project)}` },
      ProjectSchema,
      true,
      {},
    );
  }

  /**
   * Deployments of one target, newest first, following `pagination.next` up to `maxDeployments`;
   * `truncated` when it stopped there with more pages left.
   */
  private async listDeployments(
    projectId: string,
    env: VercelEnvironment,
  ): Promise<{ readonly deployments: VercelDeployment[]; readonly truncated: boolean }> {
    const out: VercelDeployment[] = [];
    let truncated = false;
    await paginate(
      async (until) => {
        const page = await this.call(
          'list deployments',
          {
            method: 'GET',
            path: '/v6/deployments',
            query: { projectId, target: env, limit: this.pageSize, until },
          },
          ListDeploymentsResponseSchema,
          true,
          { environment: env },
        );
        for (const d of page.deployments) {
          // A deleted deployment is gone: it can never take traffic and is not shown.
          if (d.readyState === 'DELETED') continue;
          // Keep only this environment even if Vercel ignored the target filter.
          if (environmentOf(d) === env && !out.some((o) => o.id === d.id)) out.push(d);
        }
        return { count: page.deployments.length, next: page.pagination.next };
      },
      () => {
        if (out.length < this.maxDeployments) return false;
        this.logger.warn(
          { environment: env, read: out.length },
          'vercel: stopped paging deployments at the maximum',
        );
        truncated = true;
        return true;
      },
    );
    return { deployments: out, truncated };
  }

  private async listDomains(projectId: string): Promise<VercelProjectDomain[]> {
    const out: VercelProjectDomain[] = [];
    await paginate(async (until) => {
      const page = await this.call(
        'list domains',
        {
          method: 'GET',
          path: `/v9/projects/${encodeURIComponent(projectId)}/domains`,
          query: { limit: this.pageSize, until },
        },
        ProjectDomainsResponseSchema,
        true,
        {},
      );
      out.push(...page.domains);
      return { count: page.domains.length, next: page.pagination?.next ?? null };
    });
    for (const d of out) {
      const key = d.name.toLowerCase();
      if (d.verified !== false || this.unverifiedDomains.has(key)) continue;
      this.unverifiedDomains.add(key);
      this.logger.warn(
        { domain: d.name, project: this.project },
        'vercel: project domain awaiting verification; Vercel serves no deployment on it until it is verified, so it is left out of plans and routing',
      );
    }
    return out;
  }

  private fetchDeployment(id: string): Promise<VercelDeployment> {
    return this.call(
      'read deployment',
      { method: 'GET', path: `/v13/deployments/${encodeURIComponent(id)}` },
      GetDeploymentResponseSchema,
      true,
      { deploymentId: id },
    );
  }

  private async switchTo(action: PlanAction, request: SwitchRequest): Promise<OperationRef> {
    const env = this.environmentOf(request.environment);
    if (env !== 'production') {
      throw new RefusalError({
        code: RefusalCode.notProduction,
        message: `Vercel's Instant Rollback and promote move production domains only, so ${request.environment} cannot be ${action === 'rollback' ? 'rolled back' : 'promoted'}: each preview branch domain follows its branch's newest deployment. Push a fix (or revert) to the branch instead.`,
        context: { environment: request.environment, target: request.targetId },
      });
    }
    const project = await this.readProject();
    // Vercel takes the project from the URL: make sure the target is a production deployment of this
    // project, so a mistyped id never switches another project or promotes a preview build.
    const target = await this.fetchDeployment(request.targetId);
    if (target.readyState === 'DELETED') {
      throw new RefusalError({
        code: RefusalCode.unknownDeployment,
        message: `${target.id} was deleted on Vercel, so it cannot take traffic again. Pick a ready production deployment.`,
        context: { target: target.id, environment: request.environment },
      });
    }
    if (target.projectId !== undefined && target.projectId !== project.id) {
      throw new RefusalError({
        code: RefusalCode.targetWrongEnvironment,
        message: `${target.id} belongs to another Vercel project (${target.projectId}), not to ${project.name}. A ${action} only moves traffic within one project.`,
        context: { target: target.id, environment: request.environment },
      });
    }
    if (environmentOf(target) !== 'production') {
      throw new RefusalError({
        code: RefusalCode.targetWrongEnvironment,
        message: `${target.id} is a preview deployment of ${project.name}, not a production one. Promoting it on Vercel would rebuild it for production, which is not an instant switch; pick a production deployment.`,
        context: { target: target.id, environment: request.environment },
      });
    }
    // Rollback: Vercel's documented endpoint, whose `description` ("the reason for the rollback") is
    // kept with the rollback on Vercel; promote takes no description.
    const path =
      action === 'rollback'
        ? `/v1/projects/${encodeURIComponent(project.id)}/rollback/${encodeURIComponent(target.id)}`
        : `/v10/projects/${encodeURIComponent(project.id)}/promote/${encodeURIComponent(target.id)}`;
    const query = action === 'rollback' ? { description: rollbackDescription(request.requestedBy) } : {};
    const startedAt = this.clock.now();
    await this.call(action, { method: 'POST', path, query, body: {} }, AcceptedResponseSchema, false, {
      deploymentId: target.id,
      environment: request.environment,
    });
    this.logger.info(
      { action, environment: request.environment, target: target.id, by: request.requestedBy },
      `vercel: ${action} accepted`,
    );
    return {
      id: `vercel_${action}_${target.id}_${startedAt}`,
      action,
      environment: request.environment,
      targetId: target.id,
      startedAt,
    };
  }

  private async call<S extends z.ZodType>(
    call: VercelCall,
    request: {
      method: HttpMethod;
      path: string;
      query?: Record<string, string | number | undefined>;
      body?: unknown;
    },
    schema: S,
    idempotent: boolean,
    ctx: Omit<RefusalContext, 'call' | 'project' | 'teamId'>,
  ): Promise<z.infer<S>> {
    try {
      return await this.client.call({ ...request, idempotent }, schema);
    } catch (e) {
      throw toRefusal(e, {
        call,
        project: this.project,
        ...(this.teamId === undefined ? {} : { teamId: this.teamId }),
        ...ctx,
      });
    }
  }
}

/** Dependencies the composition root passes to `createVercelPlatform`. */
export interface VercelPlatformDeps {
  readonly fetch?: typeof fetch;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Enables `subscribe` (deployment events by polling, state in this Redis). */
  readonly events?: VercelPlatformOptions['events'];
  /** Overrides of the adapter and client tunables. */
  readonly tuning?: Partial<
    Pick<
      VercelPlatformOptions,
      'pageSize' | 'maxDeployments' | 'operationTimeoutMs' | 'clockSkewMs' | 'apex'
    > &
      Pick<VercelClientOptions, 'timeoutMs' | 'maxRetries' | 'baseDelayMs' | 'maxDelayMs' | 'maxRetryAfterMs'>
  >;
}

/**
 * Builds the Vercel adapter from the loaded configuration (`platform: vercel`): `VERCEL_TOKEN`,
 * `VERCEL_TEAM_ID`, `VERCEL_API_URL` and the project (`VERCEL_PROJECT`, else `vercel.project` in the
 * config file). Throws ConfigError naming the key when the token or the project is missing.
 */
export function createVercelPlatform(config: Config, deps: VercelPlatformDeps = {}): VercelPlatform {
  const token = config.env.VERCEL_TOKEN;
  if (token === undefined) {
    throw new ConfigError('VERCEL_TOKEN: got nothing, expected a Vercel token when the platform is vercel', {
      key: 'VERCEL_TOKEN',
    });
  }
  const project = config.env.VERCEL_PROJECT ?? config.file.vercel?.project;
  if (project === undefined) {
    throw new ConfigError(
      'vercel.project: got nothing, expected the Vercel project id or name (vercel: {project: my-app} in the config file, or VERCEL_PROJECT) when the platform is vercel',
      { key: 'vercel.project' },
    );
  }
  const tuning = deps.tuning ?? {};
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? silentLogger;
  const teamId = config.env.VERCEL_TEAM_ID;
  const client = new VercelClient({
    baseUrl: config.env.VERCEL_API_URL,
    token,
    clock,
    logger,
    ...(teamId === undefined ? {} : { teamId }),
    ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
    ...pickDefined(tuning, ['timeoutMs', 'maxRetries', 'baseDelayMs', 'maxDelayMs', 'maxRetryAfterMs']),
  });
  return new VercelPlatform({
    project,
    preview: config.file.vercel?.preview ?? true,
    client,
    clock,
    logger,
    ...pickDefined(tuning, ['pageSize', 'maxDeployments', 'operationTimeoutMs', 'clockSkewMs', 'apex']),
    ...(deps.events === undefined ? {} : { events: deps.events }),
  });
}

/**
 * The `description` of a rollback Switchyard requests (Vercel keeps it as the reason for the rollback),
 * naming who asked for it; at most `MAX_DESCRIPTION_LENGTH` characters.
 */
export function rollbackDescription(requestedBy: string | undefined): string {
  const by = requestedBy?.replace(/\s+/g, ' ').trim() ?? '';
  if (by === '') return 'Rollback requested via Switchyard';
  const [head, tail] = ['Rollback requested by ', ' via Switchyard'];
  const room = MAX_DESCRIPTION_LENGTH - head.length - tail.length;
  return `${head}${by.length <= room ? by : `${by.slice(0, room - 1)}…`}${tail}`;
}

/**
 * Follows Vercel's pagination: reads a page (`until` the previous page's `pagination.next`), until a
 * page is the last (no `next`), empty, or repeats a cursor, or `enough()` says so after a page that
 * has a next one.
 */
async function paginate(
  readPage: (until: number | undefined) => Promise<{ count: number; next: number | null }>,
  enough: () => boolean = () => false,
): Promise<void> {
  const seen = new Set<number>();
  let until: number | undefined;
  for (;;) {
    const { count, next } = await readPage(until);
    if (next === null || count === 0 || seen.has(next)) return;
    if (enough()) return;
    seen.add(next);
    until = next;
  }
}
