/**
 * The Unkey Deploy adapter of the DeployPlatform port: reads deployments through Unkey's API v2
 * (listDeployments with cursor paging, getDeployment), maps them to domain values, starts rollbacks and
 * promotions (202, asynchronous) and follows them by polling getDeployment until the target is current
 * (or another switch outside Switchyard made a third deployment current: see `overtakenBy`).
 * Unkey's refusals become RefusalErrors (src/platform/unkey/refusals.ts). Unkey has no per-request
 * deployment header we know of, so there is no `probe`: verification relies on `routing`.
 */
import type { z } from 'zod';
import type { Clock } from '../../clock.js';
import { systemClock } from '../../clock.js';
import type { Config } from '../../config.js';
import { RefusalCode } from '../../domain/result.js';
import type { Deployment, EnvironmentSnapshot, PlanAction } from '../../domain/types.js';
import { ConfigError, RefusalError } from '../../errors.js';
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
import { UnkeyClient, type UnkeyClientOptions } from './client.js';
import {
  actionsMeanRunning,
  classifyDomains,
  describeStatus,
  environmentKindOf,
  isRolledBack,
  toDeployment,
  UNKEY_APEX,
  UNKEY_STOPS_REPLACED_AFTER_MS,
  unkeyReadyWindow,
} from './mapping.js';
import { type RefusalContext, toRefusal, type UnkeyEndpoint } from './refusals.js';
import {
  AcceptedResponseSchema,
  GetDeploymentResponseSchema,
  isKnownStatus,
  type ListDeploymentsRequest,
  ListDeploymentsResponseSchema,
  type UnkeyDeployment,
} from './schemas.js';

/** Where one Switchyard environment lives in Unkey (slugs or ids; slugs when `app` is omitted). */
export interface UnkeyEnvironmentMapping {
  readonly project: string;
  /**
   * Needed when the project has more than one app. Without it the adapter finds the app once, from the
   * project's deployments in `environment` (see `resolveApp`), and then lists with all three filters.
   */
  readonly app?: string;
  readonly environment: string;
}

export interface UnkeyPlatformOptions {
  /** Switchyard environment slug → Unkey project/app/environment, in display order. */
  readonly environments: Readonly<Record<string, UnkeyEnvironmentMapping>>;
  /** The HTTP client (or the options to build one). */
  readonly client: UnkeyClient | UnkeyClientOptions;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Page size of listDeployments (1–100). */
  readonly pageSize?: number;
  /** Upper bound of deployments read per snapshot (stops paging). */
  readonly maxDeployments?: number;
  /** An operation whose target is not current after this long is reported failed. */
  readonly operationTimeoutMs?: number;
  /** Apex of Unkey's system hostnames (custom domains are everything else). */
  readonly apex?: string;
  /** Deployment events by polling (`subscribe`); absent: the adapter offers no `subscribe`. */
  readonly events?: PollingEvents;
}

/** Defaults of the adapter's tunables. */
export const unkeyPlatformDefaults = {
  pageSize: 100,
  maxDeployments: 500,
  operationTimeoutMs: 5 * 60_000,
  apex: UNKEY_APEX,
} as const satisfies Required<
  Pick<UnkeyPlatformOptions, 'pageSize' | 'maxDeployments' | 'operationTimeoutMs' | 'apex'>
>;

/** Slugs of the Unkey project/app/environment as Unkey reports them on deployments. */
interface Identity {
  readonly project: string;
  readonly app: string;
  readonly environment: string;
}

/** DeployPlatform over Unkey Deploy's public API v2. */
export class UnkeyPlatform implements DeployPlatform {
  readonly name = 'unkey';
  private readonly client: UnkeyClient;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly environments: ReadonlyMap<string, UnkeyEnvironmentMapping>;
  private readonly identities = new Map<string, Identity>();
  /** Environment slug → the app slug found for a mapping without `app` (see `resolveApp`). */
  private readonly resolvedApps = new Map<string, string>();
  /** Statuses and actions Unkey sent that Switchyard does not know, already logged (each once). */
  private readonly unknownValues = new Set<string>();
  private readonly pageSize: number;
  private readonly maxDeployments: number;
  private readonly operationTimeoutMs: number;
  private readonly apex: string;
  private readonly poller: SnapshotEventPoller | undefined;
  /** Present when `events` is configured: deployment events found by polling (issue 9). */
  readonly subscribe?: (listener: (event: PlatformEvent) => void) => () => void;

  constructor(options: UnkeyPlatformOptions) {
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.client =
      options.client instanceof UnkeyClient
        ? options.client
        : new UnkeyClient({ clock: this.clock, logger: this.logger, ...options.client });
    this.environments = new Map(Object.entries(options.environments));
    this.pageSize = Math.min(100, Math.max(1, options.pageSize ?? unkeyPlatformDefaults.pageSize));
    this.maxDeployments = Math.max(1, options.maxDeployments ?? unkeyPlatformDefaults.maxDeployments);
    this.operationTimeoutMs = options.operationTimeoutMs ?? unkeyPlatformDefaults.operationTimeoutMs;
    this.apex = options.apex ?? unkeyPlatformDefaults.apex;
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
    return [...this.environments.keys()];
  }

  async snapshot(environment: string): Promise<EnvironmentSnapshot> {
    const mapping = this.mappingOf(environment);
    const { deployments: raw, truncated } = await this.listEnvironment(environment, mapping);
    const first = raw[0];
    if (first)
      this.identities.set(environment, {
        project: first.project,
        app: first.app,
        environment: first.environment,
      });
    const current = raw.find((d) => d.isCurrent);
    // Unkey's deployment objects carry no EnvironmentKind; their actions and `isCurrent` tell it, and the
    // slug `production` is the fallback when no deployment says (see docs/unkey.md).
    const kind =
      environmentKindOf(raw) ?? (unkeyEnvOf(first, mapping) === 'production' ? 'production' : 'preview');
    // Only meaningful when the listing stopped at maxDeployments with more left unread.
    if (current === undefined && kind === 'production' && truncated) {
      this.logger.warn(
        { environment, read: raw.length, maxDeployments: this.maxDeployments },
        'unkey: no current deployment among the deployments read; raise maxDeployments if one exists',
      );
    }
    const projectId = first?.project ?? mapping.project;
    const running = actionsMeanRunning(raw);
    const readAt = this.clock.now();
    const env = {
      slug: environment,
      kind,
      projectId,
      rolledBack: isRolledBack(current),
      ...(current === undefined ? {} : { currentDeploymentId: current.id }),
    };
    const deployments = raw.map((d) => toDeployment(d, environment, running));
    const byId = new Map(raw.map((d) => [d.id, d]));
    return {
      project: { id: projectId, name: projectId },
      environment: env,
      deployments,
      domains: classifyDomains(raw, environment, this.apex),
      // Unkey's API exposes no live history (docs/unkey.md "History"); what its state tells instead:
      liveHistory: [],
      derivedLive: deriveLive({
        platform: 'Unkey',
        environment: env,
        deployments,
        readAt,
        readyWindow: (d) => unkeyReadyWindow(byId.get(d.id), readAt),
        stopsReplacedAfterMs: UNKEY_STOPS_REPLACED_AFTER_MS,
      }),
      readAt,
      // Paging stopped at maxDeployments with more left: the deployments read are not all of them.
      ...(truncated ? { deploymentsTruncated: true as const } : {}),
    };
  }

  async getDeployment(id: string): Promise<Deployment | undefined> {
    let d: UnkeyDeployment;
    try {
      d = await this.fetchDeployment(id);
    } catch (e) {
      if (e instanceof RefusalError && e.code === RefusalCode.unknownDeployment) return undefined;
      throw e;
    }
    const environment = await this.environmentOf(d);
    return environment === undefined ? undefined : toDeployment(d, environment);
  }

  async routing(environment: string, snapshot?: EnvironmentSnapshot): Promise<readonly Route[]> {
    // Unkey tells routing only through the deployments' domains, i.e. a snapshot: one the caller just
    // read of this environment (`/deployments`) says it already, and reading again would page through
    // every deployment a second time. Without one (the verification of a switch), read fresh.
    const snap =
      snapshot !== undefined && snapshot.environment.slug === environment
        ? snapshot
        : await this.snapshot(environment);
    return snap.domains.map((d) => ({
      hostname: d.hostname,
      stickiness: d.stickiness,
      environment: d.environment,
      ...(d.deploymentId === undefined ? {} : { deploymentId: d.deploymentId }),
    }));
  }

  rollback(request: SwitchRequest): Promise<OperationRef> {
    return this.switchTo('rollback', request);
  }

  promote(request: SwitchRequest): Promise<OperationRef> {
    return this.switchTo('promote', request);
  }

  async operation(ref: OperationRef): Promise<OperationStatus> {
    const now = this.clock.now();
    let d: UnkeyDeployment;
    try {
      d = await this.fetchDeployment(ref.targetId);
    } catch (e) {
      if (e instanceof RefusalError && e.code === RefusalCode.unknownDeployment) {
        return {
          id: ref.id,
          state: 'failed',
          error: { code: 'deployment_not_found', message: e.message },
          updatedAt: now,
        };
      }
      throw e;
    }
    const offersPromote = d.availableActions.includes('promote');
    const done = d.isCurrent && (ref.action === 'rollback' ? offersPromote : !offersPromote);
    if (done) return { id: ref.id, state: 'succeeded', updatedAt: now };
    // The app has a current deployment (the switch started from it), so the actions mean "running".
    const { status, reason } = describeStatus(d, true);
    if (status === 'failed' || status === 'stopped') {
      const why =
        reason ??
        `${d.id} is ${d.status} on Unkey${d.error ? ` (${d.error.code}: ${d.error.message})` : ''}, so it cannot take traffic.`;
      return {
        id: ref.id,
        state: 'failed',
        error: {
          code: `target_${status}`,
          message: `${reason === undefined ? '' : `${d.id}: `}${why} The ${ref.action} did not complete.`,
        },
        updatedAt: now,
      };
    }
    // Another switch outside Switchyard (a rollback or promote in Unkey's dashboard, a deploy going
    // live) made a third deployment current: waiting cannot make this one finish. Fail now, not at the
    // timeout.
    const overtaken = await this.overtakenBy(ref, d);
    if (overtaken !== undefined) {
      return {
        id: ref.id,
        state: 'failed',
        error: { code: 'operation_superseded', message: supersededMessage(ref, overtaken) },
        updatedAt: now,
      };
    }
    if (now - ref.startedAt > this.operationTimeoutMs) {
      // Switchyard stops waiting, but nothing says the switch will not happen: the target can still
      // take traffic and nothing overtook it, so Unkey may yet make it current. Not definitive
      // (`mayStillComplete`): the job ends saying so, and is not retried (that would switch again).
      return {
        id: ref.id,
        state: 'failed',
        error: {
          code: 'operation_timeout',
          message: `${d.id} did not become the current deployment of ${ref.environment} within ${Math.round(this.operationTimeoutMs / 1000)} s of the ${ref.action}; check the Unkey dashboard.`,
          mayStillComplete: true,
        },
        updatedAt: now,
      };
    }
    // Unkey has no standby it reactivates (see docs/unkey.md): a switch in flight is just switching.
    return { id: ref.id, state: 'switching', updatedAt: now };
  }

  /**
   * Lists one deployment of every configured environment, at once: a mapping that names a project,
   * app or environment Unkey does not know fails readiness whichever environment it is (each failure
   * is said, one line per environment), not only the first one's.
   */
  async health(): Promise<void> {
    const entries = [...this.environments.entries()];
    const checks = await Promise.allSettled(
      entries.map(([environment, mapping]) =>
        this.call(
          'deployments.listDeployments',
          { limit: 1, ...this.filterOf(mapping) } satisfies ListDeploymentsRequest,
          ListDeploymentsResponseSchema,
          true,
          { environment, mapping },
        ),
      ),
    );
    const failed = checks.flatMap((c, i) =>
      c.status === 'rejected' ? [{ environment: entries[i]?.[0], e: c.reason }] : [],
    );
    const [first] = failed;
    if (first === undefined) return;
    if (failed.length === 1) throw first.e;
    const messages = [...new Set(failed.map((f) => (f.e instanceof Error ? f.e.message : String(f.e))))];
    // One error for the caller to read: the first's kind (its code, whether to retry), every message.
    const err = first.e instanceof Error ? first.e : new Error(String(first.e));
    err.message = messages.join('; ');
    throw err;
  }

  async close(): Promise<void> {
    await this.poller?.stop();
    this.identities.clear();
    this.resolvedApps.clear();
  }

  // -- internals ------------------------------------------------------------------------------

  private mappingOf(environment: string): UnkeyEnvironmentMapping {
    const mapping = this.environments.get(environment);
    if (mapping === undefined) {
      const valid = [...this.environments.keys()];
      throw new RefusalError({
        code: RefusalCode.unknownEnvironment,
        message: `Unknown environment "${environment}". Valid environments: ${valid.join(', ') || 'none configured (add environments.<slug>.unkey to the config)'}.`,
        context: { input: environment, valid },
      });
    }
    return mapping;
  }

  private filterOf(
    mapping: UnkeyEnvironmentMapping,
  ): Pick<ListDeploymentsRequest, 'project' | 'app' | 'environment'> {
    // Unkey nests filters: `environment` requires both `project` and `app`.
    return mapping.app === undefined
      ? { project: mapping.project }
      : { project: mapping.project, app: mapping.app, environment: mapping.environment };
  }

  /**
   * The full project/app/environment filter of an environment, resolving the app first when the mapping
   * has none; undefined when no deployment of the environment was found to tell the app. `truncated`:
   * the search for the app stopped at `maxDeployments` with deployments left unread.
   */
  private async environmentFilter(
    environment: string,
    mapping: UnkeyEnvironmentMapping,
  ): Promise<{
    readonly filter: Pick<ListDeploymentsRequest, 'project' | 'app' | 'environment'> | undefined;
    readonly truncated: boolean;
  }> {
    if (mapping.app !== undefined) return { filter: this.filterOf(mapping), truncated: false };
    const { app, truncated } = await this.resolveApp(environment, mapping);
    return {
      filter:
        app === undefined ? undefined : { project: mapping.project, app, environment: mapping.environment },
      truncated,
    };
  }

  /**
   * The app of a mapping without `app`. Unkey's `environment` filter needs `app`, so the project's
   * deployments are listed (newest first, all environments, up to `maxDeployments`) and the apps of those
   * in `mapping.environment` collected: one app is remembered for this environment (the project is not
   * listed again), several stop with a ConfigError naming them, none leaves it unresolved (tried again
   * on the next read). The whole window is read once, so a second app is found even when the first one
   * deployed more recently.
   */
  private async resolveApp(
    environment: string,
    mapping: UnkeyEnvironmentMapping,
  ): Promise<{ readonly app: string | undefined; readonly truncated: boolean }> {
    const known = this.resolvedApps.get(environment);
    if (known !== undefined) return { app: known, truncated: false };
    const apps = new Set<string>();
    const { truncated } = await this.pageThrough(environment, mapping, this.filterOf(mapping), (page) => {
      for (const d of page) if (d.environment === mapping.environment) apps.add(d.app);
    });
    if (apps.size > 1) {
      throw new ConfigError(
        `environments.${environment}.unkey.app: got nothing, expected one of ${[...apps].join(', ')} (project "${mapping.project}" has several apps in environment "${mapping.environment}")`,
        { environment, apps: [...apps] },
      );
    }
    const [app] = apps;
    if (app === undefined) return { app: undefined, truncated };
    this.resolvedApps.set(environment, app);
    this.logger.info(
      { environment, project: mapping.project, app, unkeyEnvironment: mapping.environment },
      'unkey: found the app of an environment mapped without one',
    );
    return { app, truncated: false };
  }

  /**
   * Reads listDeployments pages with `filter`, newest first, following cursors until the last page or
   * `maxDeployments` deployments; `truncated` when it stopped with more left.
   */
  private async pageThrough(
    environment: string,
    mapping: UnkeyEnvironmentMapping,
    filter: Pick<ListDeploymentsRequest, 'project' | 'app' | 'environment'>,
    onPage: (page: readonly UnkeyDeployment[]) => void,
  ): Promise<{ readonly scanned: number; readonly truncated: boolean }> {
    const seenCursors = new Set<string>();
    let cursor: string | undefined;
    let scanned = 0;
    for (;;) {
      const body: ListDeploymentsRequest = {
        ...filter,
        limit: this.pageSize,
        ...(cursor === undefined ? {} : { cursor }),
      };
      const page = await this.call('deployments.listDeployments', body, ListDeploymentsResponseSchema, true, {
        environment,
        mapping,
      });
      scanned += page.data.length;
      for (const d of page.data) this.noteUnknown(d);
      onPage(page.data);
      const next = page.pagination.cursor;
      if (!page.pagination.hasMore || next === undefined || seenCursors.has(next)) {
        return { scanned, truncated: false };
      }
      if (scanned >= this.maxDeployments) {
        this.logger.warn(
          { environment, scanned },
          'unkey: stopped paging deployments at the configured maximum',
        );
        return { scanned, truncated: true };
      }
      seenCursors.add(next);
      cursor = next;
    }
  }

  /**
   * Deployments of one environment, newest first, following cursors up to `maxDeployments`, always
   * filtered by project, app and environment on Unkey's side (so other environments never use up the
   * window). `truncated`: paging stopped at the maximum with more left (or, without `app`, the app
   * could not be found within it).
   */
  private async listEnvironment(
    environment: string,
    mapping: UnkeyEnvironmentMapping,
  ): Promise<{ readonly deployments: UnkeyDeployment[]; readonly truncated: boolean }> {
    const { filter, truncated: unresolved } = await this.environmentFilter(environment, mapping);
    if (filter === undefined) return { deployments: [], truncated: unresolved };
    const out: UnkeyDeployment[] = [];
    const { truncated } = await this.pageThrough(environment, mapping, filter, (page) => {
      for (const d of page) {
        // A queued build a newer commit replaced before it ran: it never built or served, and Unkey's
        // dashboard does not show it as failed, so it is not listed (no plan, no "failed" notice).
        if (d.status === 'superseded') continue;
        out.push(d);
      }
    });
    out.sort((a, b) => b.createdAt - a.createdAt);
    return { deployments: out, truncated };
  }

  /** Logs, once per value, a status or action Unkey sent that Switchyard does not know. */
  private noteUnknown(d: UnkeyDeployment): void {
    if (!isKnownStatus(d.status) && !this.unknownValues.has(`status:${d.status}`)) {
      this.unknownValues.add(`status:${d.status}`);
      this.logger.warn(
        { status: d.status, deployment: d.id },
        'unkey: unknown deployment status, treated as not ready (building) until Switchyard knows it',
      );
    }
    for (const action of d.ignoredActions ?? []) {
      if (this.unknownValues.has(`action:${action}`)) continue;
      this.unknownValues.add(`action:${action}`);
      this.logger.warn({ action, deployment: d.id }, 'unkey: unknown available action, ignored');
    }
  }

  private async fetchDeployment(id: string): Promise<UnkeyDeployment> {
    const res = await this.call(
      'deployments.getDeployment',
      { deploymentId: id },
      GetDeploymentResponseSchema,
      true,
      {
        deploymentId: id,
      },
    );
    this.noteUnknown(res.data);
    return res.data;
  }

  /** The Switchyard environment a deployment belongs to, or undefined when none is configured for it. */
  private async environmentOf(d: UnkeyDeployment): Promise<string | undefined> {
    for (const [slug, mapping] of this.environments) {
      const id = await this.identityOf(slug, mapping);
      if (
        d.project === id.project &&
        (id.app === '' || d.app === id.app) &&
        d.environment === id.environment
      ) {
        return slug;
      }
    }
    return undefined;
  }

  /**
   * The slugs Unkey reports for an environment's deployments. The mapping may name ids or slugs; one
   * listed deployment tells the slugs (cached). Without `app`, the app is resolved first (see
   * `resolveApp`); an empty app means "not known yet" (no deployment of the environment found).
   */
  private async identityOf(environment: string, mapping: UnkeyEnvironmentMapping): Promise<Identity> {
    const known = this.identities.get(environment);
    if (known) return known;
    const { filter } = await this.environmentFilter(environment, mapping);
    const page =
      filter === undefined
        ? undefined
        : await this.call(
            'deployments.listDeployments',
            { ...filter, limit: 1 },
            ListDeploymentsResponseSchema,
            true,
            { environment, mapping },
          );
    const first = page?.data[0];
    if (first) {
      const identity = { project: first.project, app: first.app, environment: first.environment };
      this.identities.set(environment, identity);
      return identity;
    }
    return {
      project: mapping.project,
      app: filter?.app ?? '',
      environment: mapping.environment,
    };
  }

  /**
   * The deployment that became current instead of `target` after the operation `ref` started from
   * `ref.fromId`, or undefined while nothing says so: the target is current, the source still is, no
   * deployment is, or the ref does not know its source (a ref stored before `fromId` existed: it then
   * runs until the timeout, as before). The source is read first (one getDeployment) and the
   * environment listed only when the source is no longer current, which also catches this switch
   * completing between the two reads (the target is then current).
   */
  private async overtakenBy(
    ref: OperationRef,
    target: UnkeyDeployment,
  ): Promise<UnkeyDeployment | undefined> {
    const from = ref.fromId;
    if (from === undefined || target.isCurrent) return undefined;
    try {
      if (from !== ref.targetId && (await this.isCurrent(from))) return undefined;
      const mapping = this.mappingOf(ref.environment);
      const { deployments } = await this.listEnvironment(ref.environment, mapping);
      const current = deployments.find((d) => d.isCurrent);
      if (current === undefined || current.id === ref.targetId || current.id === from) return undefined;
      return current;
    } catch (e) {
      // Only a shortcut past the timeout: a read that fails here says nothing about the switch (the
      // target was just read), so the operation goes on as switching and the next poll looks again.
      this.logger.warn(
        { err: e, operation: ref.id, environment: ref.environment },
        'unkey: could not check whether another switch overtook the operation; still following it',
      );
      return undefined;
    }
  }

  /** Whether deployment `id` is current now (false when Unkey no longer knows it). */
  private async isCurrent(id: string): Promise<boolean> {
    try {
      return (await this.fetchDeployment(id)).isCurrent;
    } catch (e) {
      if (e instanceof RefusalError && e.code === RefusalCode.unknownDeployment) return false;
      throw e;
    }
  }

  /**
   * The app's current deployment right after Unkey accepted a switch: Unkey rolls back from the
   * deployment current when it accepts the request, and its workflow then switches nothing if that
   * one is no longer current (rollback_handler.go, "source deployment is not the current deployment").
   * Read after the 202, not before, so that a deploy going live just before the request is taken for
   * the source it is (a read before would mistake it for another switch). When the read fails (the
   * switch is accepted, so it must not fail the call) or finds none, what the plan was checked against.
   *
   * The read can come too late: Unkey's workflow may already have run (a rollback is "instant"), and
   * the target is then current. The source is no longer visible, so it is what the plan was checked
   * against — except for a promote of the current deployment (resuming automatic deploys), which
   * starts from its own target. The source never is the target otherwise: `supersededMessage` takes
   * `fromId === targetId` of a promote for one that resumes automatic deploys.
   */
  private async currentAfterAccept(
    action: PlanAction,
    request: SwitchRequest,
    mapping: UnkeyEnvironmentMapping,
  ): Promise<string | undefined> {
    try {
      const { deployments } = await this.listEnvironment(request.environment, mapping);
      const current = deployments.find((d) => d.isCurrent);
      if (current !== undefined && current.id !== request.targetId) return current.id;
      if (current !== undefined) {
        // Without `expectedCurrent` a promote of the deployment that is current is taken for what it
        // most likely is (resuming automatic deploys); a rollback's source is then unknown.
        const resumes =
          action === 'promote' && (request.expectedCurrent ?? request.targetId) === request.targetId;
        return resumes ? current.id : request.expectedCurrent;
      }
    } catch (e) {
      this.logger.warn(
        { err: e, environment: request.environment, target: request.targetId },
        'unkey: could not read the current deployment after a switch was accepted; following it from the planned one',
      );
    }
    return request.expectedCurrent;
  }

  private async switchTo(action: PlanAction, request: SwitchRequest): Promise<OperationRef> {
    const mapping = this.mappingOf(request.environment);
    // Unkey derives the app from the target: make sure the target is in this environment, so a
    // mistyped id can never switch another app's traffic.
    const target = await this.fetchDeployment(request.targetId);
    const identity = await this.identityOf(request.environment, mapping);
    const belongs =
      target.project === identity.project &&
      (identity.app === '' || target.app === identity.app) &&
      target.environment === identity.environment;
    if (!belongs) {
      throw new RefusalError({
        code: RefusalCode.targetWrongEnvironment,
        message: `${target.id} belongs to Unkey ${target.project}/${target.app}/${target.environment}, not to ${request.environment} (${identity.project}/${identity.app || '*'}/${identity.environment}). A ${action} only moves traffic within one environment.`,
        context: { target: target.id, environment: request.environment },
      });
    }
    const endpoint: UnkeyEndpoint =
      action === 'rollback' ? 'deployments.rollbackDeployment' : 'deployments.promoteDeployment';
    const startedAt = this.clock.now();
    const res = await this.call(endpoint, { deploymentId: request.targetId }, AcceptedResponseSchema, false, {
      deploymentId: request.targetId,
      environment: request.environment,
      mapping,
    });
    this.logger.info(
      {
        action,
        environment: request.environment,
        target: request.targetId,
        requestId: res.meta.requestId,
        by: request.requestedBy,
      },
      `unkey: ${action} accepted`,
    );
    const fromId = await this.currentAfterAccept(action, request, mapping);
    return {
      id: `unkey_${action}_${res.meta.requestId}`,
      action,
      environment: request.environment,
      targetId: request.targetId,
      startedAt,
      ...(fromId === undefined ? {} : { fromId }),
    };
  }

  private async call<S extends z.ZodType>(
    endpoint: UnkeyEndpoint,
    body: unknown,
    schema: S,
    idempotent: boolean,
    ctx: Omit<RefusalContext, 'endpoint'>,
  ): Promise<z.infer<S>> {
    try {
      return await this.client.call(endpoint, body, schema, { idempotent });
    } catch (e) {
      throw toRefusal(e, { endpoint, ...ctx });
    }
  }
}

/** Why an operation failed because `current` became current instead of its target (`operation_superseded`). */
function supersededMessage(ref: OperationRef, current: UnkeyDeployment): string {
  // Only a promote of the current deployment starts from its own target (see `currentAfterAccept`).
  const resuming = ref.action === 'promote' && ref.fromId === ref.targetId;
  const what = resuming
    ? `this promote of ${ref.targetId} (resuming automatic deploys)`
    : `this ${ref.action} to ${ref.targetId} started from ${ref.fromId}`;
  // Unkey's rollback workflow stops when its source is no longer current; its promote has no such
  // check, so a promote Unkey has not run yet may still take traffic back. Unkey does not say whether
  // the workflow ran (a fast one may have served before the other switch replaced it).
  const after =
    ref.action === 'rollback'
      ? `${ref.targetId} does not serve now: either this rollback ran and that switch then replaced ${ref.targetId}, or it never ran (Unkey does not carry out a rollback once the deployment it started from no longer serves).`
      : `${ref.targetId} does not serve now, but Unkey's promote does not check which deployment it replaces: if Unkey has not run this one yet, it may still make ${ref.targetId} current.`;
  return `${current.id} became the current deployment of ${ref.environment}${isRolledBack(current) ? ' (rolled back)' : ''} after ${what}: another switch outside Switchyard (one made in Unkey's dashboard, or a deploy going live) overtook it. ${after} Check the Unkey dashboard before switching again.`;
}

function unkeyEnvOf(first: UnkeyDeployment | undefined, mapping: UnkeyEnvironmentMapping): string {
  return first?.environment ?? mapping.environment;
}

/** Dependencies the composition root passes to `createUnkeyPlatform`. */
export interface UnkeyPlatformDeps {
  readonly fetch?: typeof fetch;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Enables `subscribe` (deployment events by polling, state in this Redis). */
  readonly events?: UnkeyPlatformOptions['events'];
  /** Overrides of the adapter and client tunables. */
  readonly tuning?: Partial<
    Pick<UnkeyPlatformOptions, 'pageSize' | 'maxDeployments' | 'operationTimeoutMs' | 'apex'> &
      Pick<UnkeyClientOptions, 'timeoutMs' | 'maxRetries' | 'baseDelayMs' | 'maxDelayMs' | 'maxRetryAfterMs'>
  >;
}

/**
 * Builds the Unkey adapter from the loaded configuration (`platform: unkey`): `UNKEY_ROOT_KEY`,
 * `UNKEY_API_URL` and every `environments.<slug>.unkey` mapping. Throws ConfigError when the root key
 * or every mapping is missing.
 */
export function createUnkeyPlatform(config: Config, deps: UnkeyPlatformDeps = {}): UnkeyPlatform {
  const rootKey = config.env.UNKEY_ROOT_KEY;
  if (rootKey === undefined) {
    throw new ConfigError(
      'UNKEY_ROOT_KEY: got nothing, expected an Unkey root key when the platform is unkey',
      {
        key: 'UNKEY_ROOT_KEY',
      },
    );
  }
  const environments: Record<string, UnkeyEnvironmentMapping> = {};
  for (const [slug, env] of Object.entries(config.file.environments)) {
    if (env.unkey === undefined) continue;
    environments[slug] = {
      project: env.unkey.project,
      environment: env.unkey.environment,
      ...(env.unkey.app === undefined ? {} : { app: env.unkey.app }),
    };
  }
  if (Object.keys(environments).length === 0) {
    throw new ConfigError(
      'environments: got no environment with an "unkey" mapping, expected at least one such as environments.production.unkey: {project: my-project, app: api, environment: production}',
      { key: 'environments' },
    );
  }
  const tuning = deps.tuning ?? {};
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? silentLogger;
  const client = new UnkeyClient({
    baseUrl: config.env.UNKEY_API_URL,
    rootKey,
    clock,
    logger,
    ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
    ...pickDefined(tuning, ['timeoutMs', 'maxRetries', 'baseDelayMs', 'maxDelayMs', 'maxRetryAfterMs']),
  });
  return new UnkeyPlatform({
    environments,
    client,
    clock,
    logger,
    ...pickDefined(tuning, ['pageSize', 'maxDeployments', 'operationTimeoutMs', 'apex']),
    ...(deps.events === undefined ? {} : { events: deps.events }),
  });
}
