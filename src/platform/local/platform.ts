/**
 * The embedded local platform: a real deploy platform in one process, honouring every sentence of
 * seed-rollbacks.txt. It owns projects, environments, deployments, domains and live history (persisted
 * to a JSON file), runs one upstream HTTP server per running deployment behind a real router (the
 * TrafficPlane), and applies the lifecycle rules on an injected clock:
 * - rollback: standby target reactivated first, then every affected domain reassigned in ONE routing
 *   swap; the previous deployment keeps serving its in-flight requests (drain) — no dropped requests;
 *   the environment enters the rolled-back state.
 * - rolled back: new pushes still build and become ready but get no domains (but their own); promote
 *   restores this, and gives the promoted deployment its branch's domain if the branch has none yet.
 * - production: a deployment that stopped serving goes to standby after 30 minutes (upstream stopped).
 * - preview: a deployment not holding domains stays running until idle (zero requests) for six hours.
 * Platform-side rules (ready target, not current, …) are enforced here too, as a real platform would.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter, setMaxListeners } from 'node:events';
import type { Clock } from '../../clock.js';
import { checkTarget, isNewestOfBranch, planDomains } from '../../domain/plan.js';
import { RefusalCode } from '../../domain/result.js';
import type { Deployment, Domain, EnvironmentSnapshot, LiveEntry, PlanAction } from '../../domain/types.js';
import { RefusalError, SwitchyardError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log.js';
import type {
  DeployPlatform,
  OperationRef,
  OperationStatus,
  PlatformEvent,
  ProbeResult,
  Route,
  SwitchRequest,
} from '../port.js';
import { demoState } from './demo.js';
import {
  type LocalDeployment,
  type LocalOperation,
  type LocalState,
  parseLocalState,
  readStateFile,
  writeStateFile,
} from './state.js';

export const STANDBY_AFTER_MS = 30 * 60_000;
export const PREVIEW_IDLE_MS = 6 * 60 * 60_000;
const MAINTENANCE_EVERY_MS = 60_000;
/**
 * How many finished switch operations the state file keeps (the newest; one still running is never
 * dropped). A job resumed after a restart asks about its own operation, nearly always one of the last
 * few; an operation dropped from the list reads "unknown", which the job handles as a platform that
 * forgot it (it decides afresh). 200 switches are far more than any restart leaves a job behind.
 */
export const OPERATIONS_KEPT = 200;
/**
 * How many deployments of each environment the local platform keeps: the newest, by push order. A
 * demo fed by CI pushes for months would otherwise keep every deployment and its own `dep-<id>` domain
 * for good, and with them the state file (written whole on every change), every snapshot and the
 * console panel. Beyond these, a deployment is kept for as long as something still needs it: it is
 * the environment's current one, holds a domain other than its own (live, environment or branch),
 * appears in the live history, is building or waking, or is the target of a switch not finished yet.
 * The others go, with their own domain, and their upstream is stopped. A constant, not a config key:
 * 50 is far more than a rollback ever reaches back to.
 *
 * The same number bounds branch domains, which would otherwise keep a deployment each for good (CI
 * pushing every feature branch: 2000 branches kept 2000 deployments, their running upstreams and a
 * state file of 1.8 MB). A branch keeps its domain while one of the environment's newest
 * DEPLOYMENTS_KEPT pushes is of that branch, or while the domain points at a deployment pinned
 * otherwise (the current one, one in the live history, waking or the target of an unfinished switch:
 * a branch domain pointing at the current deployment is one a rollback moves). Beyond that the domain
 * lingers: it stays for as long as its deployment runs, never taken from a deployment that still
 * serves it (the seed: a preview deployment stays running until idle for six hours), and goes once the
 * deployment no longer runs; the deployment then falls under the rule above. How long it runs is the
 * seed's own rules: a preview deployment until six hours without a request; in production a lingering
 * domain does not count as serving, so its deployment is a previous one and goes to standby 30
 * minutes after it stopped serving (at the latest 30 minutes after its branch left the newest
 * pushes). A lingering domain whose deployment idled out is removed, not woken (see lingeringDomains):
 * the branch's next push outside a rolled-back period gets the domain again.
 */
export const DEPLOYMENTS_KEPT = 50;

/**
 * How many live-history entries each environment keeps (the newest): every deployment they name is
 * kept (see DEPLOYMENTS_KEPT), so this bounds those too. Enough for any rollback decision, which reads
 * the entries back from the current deployment's.
 */
export const LIVE_HISTORY_KEPT = 50;
/** The error of an operation that was still running when the process stopped without closing. */
export const INTERRUPTED_CODE = 'interrupted';

/**
 * How the router keeps connections to a running deployment (router.ts `UpstreamPool`): `warm` for one
 * that serves, or is about to serve, a live or environment domain (its connections are open before
 * traffic moves to it); `lean` for one reached only by its own domain and perhaps its branch's.
 */
export type UpstreamPool = 'warm' | 'lean';

/** What the platform needs from the traffic router (src/platform/local/router.ts implements it). */
export interface TrafficPlane {
  applyRoutes(routes: ReadonlyMap<string, string>): void;
  /** Starts a deployment's upstream; `pool` as above (a plane may keep one kind for all). */
  startUpstream(info: Deployment, options?: { pool?: UpstreamPool }): Promise<void>;
  /**
   * Changes a running deployment's pool; resolves once it is in place (a warm one with its connections
   * open). Optional: a plane without it keeps the pool each upstream was started with.
   */
  resizeUpstream?(id: string, pool: UpstreamPool): Promise<void>;
  stopUpstream(id: string): Promise<void>;
  upstreamStats(
    id: string,
  ):
    | { inFlight: number; total: number; lastRequestAt?: number | undefined; routedInFlight?: number }
    | undefined;
  probe?(hostname: string, signal?: AbortSignal): Promise<ProbeResult>;
}

export interface LocalPlatformOptions {
  readonly clock: Clock;
  /** Initial state when no state file exists (default: the demo project). */
  readonly seed?: unknown;
  /** Where state persists across restarts; absent keeps it in memory only. */
  readonly stateFile?: string;
  readonly buildTimeMs?: number;
  readonly reactivationTimeMs?: number;
  readonly traffic?: TrafficPlane;
  /** Run the standby/idle maintenance loop on the clock (default true). */
  readonly maintenance?: boolean;
  /** Where a failed state write is reported (the platform goes on, and writes again every tick). */
  readonly logger?: Logger;
}

/** What a switch was planned against: the environment's state when it was accepted. */
interface SwitchBasis {
  readonly currentDeploymentId: string | undefined;
  readonly rolledBack: boolean;
}

/**
 * Who asked for a switch, as its live-history entry records it: the request's `requestedBy` (`by`) and
 * the id of the Switchyard job that sent it (`jobId`, how a job knows its own switch).
 */
interface SwitchAsker {
  readonly by: string | undefined;
  readonly jobId: string | undefined;
}

export interface PushRequest {
  readonly environment: string;
  readonly branch?: string;
  readonly message?: string;
  readonly author?: string;
  /** Make the build fail (operator surface: "make a build fail"). */
  readonly fail?: boolean;
}

/** `text` as one hostname label: lowercase letters, digits and inner dashes, at most 63 characters. */
function hostLabel(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63)
    .replace(/-+$/, '');
}

/**
 * Push order of two deployments: negative when `a` was pushed before `b`. Decided by `pushSeq`, never
 * by the clock, which can step backwards (an NTP step) and make a newer push look older. Every
 * deployment with a `pushSeq` was pushed after every one without (seeded, or from a state file older
 * than `pushSeq`); those are ordered by creation time, then by their place in the state (`place`:
 * pushes are appended).
 */
function comparePushOrder(
  a: LocalDeployment,
  b: LocalDeployment,
  place: (d: LocalDeployment) => number,
): number {
  if (a.pushSeq !== undefined || b.pushSeq !== undefined) {
    if (a.pushSeq === undefined) return -1;
    if (b.pushSeq === undefined) return 1;
    if (a.pushSeq !== b.pushSeq) return a.pushSeq - b.pushSeq;
  } else if (a.createdAt !== b.createdAt) return a.createdAt - b.createdAt;
  return place(a) - place(b);
}

/** The embedded, default DeployPlatform. */
export class LocalPlatform implements DeployPlatform {
  readonly name = 'local';
  private state: LocalState;
  private readonly clock: Clock;
  private readonly opts: LocalPlatformOptions;
  private readonly events = new EventEmitter();
  private readonly busy = new Set<string>();
  private readonly abort = new AbortController();
  private readonly background = new Set<Promise<unknown>>();
  /** Preview deployments being woken by a request, by id. */
  private readonly waking = new Map<string, Promise<boolean>>();
  /** The pool this platform last asked the router to keep for each deployment it started (see warmIds). */
  private readonly pools = new Map<string, UpstreamPool>();
  private routesKey = '';
  private maintenanceDone: Promise<void> = Promise.resolve();
  /** True while the state file is behind the state in memory (a write failed; every tick retries). */
  private unsaved = false;

  private constructor(opts: LocalPlatformOptions, state: LocalState) {
    this.opts = opts;
    this.clock = opts.clock;
    this.state = state;
    this.events.setMaxListeners(100);
    // Every build, wake-up, reactivation and the maintenance loop sleeps on this one signal, each
    // adding an abort listener for as long as it waits: a burst of eleven pushes would make node warn
    // of a leak ("11 abort listeners added to [AbortSignal]") where there is none. The listeners are
    // bounded by the work in progress and each is removed when its sleep ends.
    setMaxListeners(0, this.abort.signal);
  }

  /** Loads the state file (or the seed, or the demo), starts upstreams and the maintenance loop. */
  static async open(opts: LocalPlatformOptions): Promise<LocalPlatform> {
    const fromFile = opts.stateFile ? readStateFile(opts.stateFile) : undefined;
    const state =
      fromFile ??
      (opts.seed !== undefined ? parseLocalState(opts.seed, 'local.seed') : demoState(opts.clock.now()));
    const platform = new LocalPlatform(opts, state);
    platform.endInterruptedOperations();
    // A state file written before deployments were pruned (or a large seed) is brought within bounds
    // before any upstream starts; the routes are published below.
    platform.pruneDeployments();
    // The routes are published once the upstreams below run, never before: a router already listening
    // would answer a live domain 503 meanwhile.
    platform.maintainOnce(false);
    const warm = platform.warmIds();
    for (const d of platform.state.deployments) {
      if (d.status === 'ready') await platform.startUpstream(d, warm.has(d.id) ? 'warm' : 'lean');
      // A build interrupted by a restart is finished (or failed) from where it stood.
      if (d.status === 'building') platform.scheduleBuild(d.id);
    }
    platform.publishRoutes();
    if (opts.stateFile) writeStateFile(opts.stateFile, platform.state);
    if (opts.maintenance !== false) platform.maintenanceDone = platform.maintenanceLoop();
    return platform;
  }

  // ---------------------------------------------------------------- reads

  async listEnvironments(): Promise<readonly string[]> {
    return this.state.environments.map((e) => e.slug);
  }

  async snapshot(environment: string): Promise<EnvironmentSnapshot> {
    const env = this.env(environment);
    const deployments = this.newestFirst(env.slug).map((d) => this.toDeployment(d));
    return {
      project: { ...this.state.project },
      environment: {
        slug: env.slug,
        kind: env.kind,
        projectId: env.projectId,
        rolledBack: env.rolledBack,
        ...(env.rolledBackAt === undefined ? {} : { rolledBackAt: env.rolledBackAt }),
        ...(env.rolledBackBy === undefined ? {} : { rolledBackBy: env.rolledBackBy }),
        ...(env.rolledBackSince === undefined ? {} : { rolledBackSince: env.rolledBackSince }),
        ...(env.currentDeploymentId === undefined ? {} : { currentDeploymentId: env.currentDeploymentId }),
        ...(env.productionBranch === undefined ? {} : { productionBranch: env.productionBranch }),
      },
      deployments,
      domains: this.state.domains.filter((d) => d.environment === env.slug).map((d) => this.toDomain(d)),
      liveHistory: this.history(env.slug),
      readAt: this.clock.now(),
    };
  }

  async getDeployment(id: string): Promise<Deployment | undefined> {
    const d = this.state.deployments.find((x) => x.id === id);
    return d ? this.toDeployment(d) : undefined;
  }

  async routing(environment: string): Promise<readonly Route[]> {
    const env = this.env(environment);
    return this.state.domains
      .filter((d) => d.environment === env.slug)
      .map((d) => ({
        hostname: d.hostname,
        stickiness: d.stickiness,
        environment: d.environment,
        ...(d.deploymentId === undefined ? {} : { deploymentId: d.deploymentId }),
      }));
  }

  /** The whole state (console panel, operator API). */
  dump(): LocalState {
    return structuredClone(this.state);
  }

  async health(): Promise<void> {
    if (this.abort.signal.aborted)
      throw new SwitchyardError('platform_unavailable', 'local platform is closed', { retry: true });
  }

  subscribe(listener: (event: PlatformEvent) => void): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }

  probe(hostname: string, signal?: AbortSignal): Promise<ProbeResult> {
    if (this.opts.traffic?.probe) return this.opts.traffic.probe(hostname, signal);
    // Without a router, answer from the routing table (what the router would serve).
    const dom = this.state.domains.find((d) => d.hostname === hostname);
    const dep = dom?.deploymentId ? this.state.deployments.find((d) => d.id === dom.deploymentId) : undefined;
    if (!dom) return Promise.resolve({ hostname, status: 404 });
    if (dep?.status !== 'ready') return Promise.resolve({ hostname, status: 503 });
    return Promise.resolve({ hostname, status: 200, deploymentId: dep.id });
  }

  // ---------------------------------------------------------------- switches

  async rollback(request: SwitchRequest): Promise<OperationRef> {
    return this.startSwitch('rollback', request);
  }

  async promote(request: SwitchRequest): Promise<OperationRef> {
    return this.startSwitch('promote', request);
  }

  async operation(ref: OperationRef): Promise<OperationStatus> {
    const op = this.state.operations.find((o) => o.id === ref.id);
    if (!op) {
      throw new SwitchyardError(
        'platform_http',
        `unknown operation ${ref.id} (the local platform keeps its last ${OPERATIONS_KEPT} operations)`,
        { retry: false, context: { operation: ref.id } },
      );
    }
    const error = op.error;
    return {
      id: op.id,
      state: op.state,
      updatedAt: op.updatedAt,
      ...(error === undefined
        ? {}
        : {
            error: {
              code: error.code,
              message: error.message,
              ...(error.retryable === undefined ? {} : { retryable: error.retryable }),
            },
          }),
    };
  }

  /**
   * At start-up: an operation the state file shows still running was cut off by the process stopping
   * (a crash, a kill; a clean close ends its operations first). Its switch did not take effect: the
   * switch and its operation's `succeeded` are written in one state write (applySwitch), so a file
   * that holds the switch never shows its operation running. It failed, and says why; and that the
   * failure passes (`retryable`): the same switch asked again now may go through, so a job following
   * it retries instead of failing for good.
   */
  private endInterruptedOperations(): void {
    const now = this.clock.now();
    for (const op of this.state.operations) {
      if (op.state === 'succeeded' || op.state === 'failed') continue;
      const stage = op.state === 'reactivating' ? `while reactivating ${op.targetId}` : 'before it switched';
      op.error = {
        code: INTERRUPTED_CODE,
        message: `interrupted by a restart of the local platform ${stage}; the ${op.action} did not take effect: nothing was switched`,
        retryable: true,
      };
      op.state = 'failed';
      op.updatedAt = now;
    }
  }

  private async startSwitch(action: PlanAction, request: SwitchRequest): Promise<OperationRef> {
    const snap = await this.snapshot(request.environment);
    // Looked up project-wide: another environment's deployment is refused as that (checkTarget).
    const found = this.state.deployments.find((d) => d.id === request.targetId);
    const target = found === undefined ? undefined : this.toDeployment(found);
    if (!target) {
      const valid = snap.deployments.slice(0, 10).map((d) => d.id);
      throw new RefusalError({
        code: RefusalCode.unknownDeployment,
        message: `No deployment ${request.targetId} in ${snap.environment.slug} (the local platform keeps the newest ${DEPLOYMENTS_KEPT} of each environment, and those still in use). Recent deployments: ${valid.join(', ') || 'none'}.`,
        context: { target: request.targetId, valid },
      });
    }
    const refusal = checkTarget(snap, action, target);
    if (refusal) throw new RefusalError(refusal);
    const env = snap.environment;
    if (
      (request.expectedCurrent !== undefined && env.currentDeploymentId !== request.expectedCurrent) ||
      (request.expectedRolledBack !== undefined && env.rolledBack !== request.expectedRolledBack)
    ) {
      throw new RefusalError({
        code: RefusalCode.planStale,
        message:
          `${env.slug} changed since the ${action} to ${target.id} was checked (now serving ` +
          `${env.currentDeploymentId ?? 'nothing'}${env.rolledBack ? ', rolled back' : ''}); nothing was switched. Plan it again.`,
        context: {
          environment: env.slug,
          ...(env.currentDeploymentId === undefined ? {} : { current: env.currentDeploymentId }),
        },
      });
    }
    if (this.busy.has(snap.environment.slug)) {
      throw new SwitchyardError(
        'operation_in_progress',
        `another switch of ${snap.environment.slug} is in progress`,
        {
          retry: true,
          context: { environment: snap.environment.slug },
        },
      );
    }
    this.busy.add(snap.environment.slug);
    const now = this.clock.now();
    const ref: OperationRef = {
      id: `op_${randomBytes(6).toString('hex')}`,
      action,
      environment: snap.environment.slug,
      targetId: target.id,
      startedAt: now,
    };
    this.state.operations.push({ ...ref, state: 'pending', updatedAt: now });
    this.pruneOperations();
    // Written before the switch runs: a restart from here on finds the operation (failed, interrupted).
    this.persist();
    const basis: SwitchBasis = {
      currentDeploymentId: snap.environment.currentDeploymentId,
      rolledBack: snap.environment.rolledBack,
    };
    this.track(
      this.runSwitch(ref, { by: request.requestedBy, jobId: request.jobId }, basis).finally(() => {
        this.busy.delete(ref.environment);
      }),
    );
    return ref;
  }

  /** Sets an operation's state in memory only (applySwitch writes it with the switch). */
  private markOp(
    ref: OperationRef,
    state: OperationStatus['state'],
    error?: { code: string; message: string; retryable?: boolean },
  ): void {
    const op = this.state.operations.find((o) => o.id === ref.id);
    // Never dropped while it runs (pruneOperations keeps unfinished ones); recreated if edited away.
    const record: LocalOperation = op ?? { ...ref, state, updatedAt: this.clock.now() };
    if (op === undefined) this.state.operations.push(record);
    record.state = state;
    record.updatedAt = this.clock.now();
    record.error = error === undefined ? undefined : { ...error };
  }

  /** Sets an operation's state and writes it: a restart then reads the operation as it stands. */
  private setOp(
    ref: OperationRef,
    state: OperationStatus['state'],
    error?: { code: string; message: string; retryable?: boolean },
  ): void {
    this.markOp(ref, state, error);
    // A failed switch's target, warmed for it, goes back to the pool it needs (see warmIds).
    if (state === 'failed') this.adjustPools();
    this.persist();
  }

  /** Keeps the newest OPERATIONS_KEPT operations; one not finished yet is never dropped. */
  private pruneOperations(): void {
    let excess = this.state.operations.length - OPERATIONS_KEPT;
    if (excess <= 0) return;
    this.state.operations = this.state.operations.filter((op) => {
      if (excess > 0 && (op.state === 'succeeded' || op.state === 'failed')) {
        excess -= 1;
        return false;
      }
      return true;
    });
  }

  /**
   * Runs an accepted switch. Every await (starting a standby target's upstream, the reactivation time,
   * a turn of the loop) is followed by a re-check of what the switch depends on: the target still
   * standby or ready (an operator may have stopped it meanwhile) and the environment as it was when the
   * switch was accepted (a push may have gone live). When that moved, the operation fails and the
   * upstream this switch started is stopped again; the final check and the switch itself run in one
   * synchronous step.
   */
  private async runSwitch(ref: OperationRef, asker: SwitchAsker, basis: SwitchBasis): Promise<void> {
    const target = this.state.deployments.find((d) => d.id === ref.targetId);
    if (target === undefined) {
      this.setOp(ref, 'failed', { code: RefusalCode.unknownDeployment, message: 'target vanished' });
      return;
    }
    let started = false;
    try {
      if (target.status !== 'standby') {
        // Let observers see `pending` before the switch lands, as on a remote platform.
        await new Promise<void>((r) => setImmediate(r));
        if (await this.switchFailed(ref, basis, started)) return;
        // A running target reached only by its own and branch domains has a lean pool: its connections
        // are opened before any domain moves to it, as for a target started below (warmIds keeps it
        // warm until the switch ends).
        if (target.status === 'ready' && this.pools.get(target.id) !== 'warm') {
          this.pools.set(target.id, 'warm');
          await this.opts.traffic?.resizeUpstream?.(target.id, 'warm');
          if (await this.switchFailed(ref, basis, started)) return;
        }
      }
      // Checked after that turn too: the 30-minute rule may have put a ready target in standby
      // meanwhile, and a switch must never point domains at a deployment with no upstream.
      if (target.status === 'standby') {
        this.setOp(ref, 'reactivating');
        started = true;
        await this.startUpstream(target, 'warm');
        if (await this.switchFailed(ref, basis, started)) return;
        await this.clock.sleep(this.opts.reactivationTimeMs ?? 1500, this.abort.signal);
        if (await this.switchFailed(ref, basis, started)) return;
        // A request may have woken it meanwhile (preview): then it is ready already.
        if (target.status === 'standby') {
          target.status = 'ready';
          target.stoppedServingAt = undefined;
          target.lastRequestAt = this.clock.now();
          this.emit({
            type: 'deployment.ready',
            environment: target.environment,
            deploymentId: target.id,
            at: this.clock.now(),
          });
        }
      }
      this.markOp(ref, 'switching');
      // Marks the operation succeeded in the same state write as the switch itself.
      this.applySwitch(ref, asker);
    } catch (e) {
      if (started && target.status !== 'ready') await this.stopStartedUpstream(target.id);
      if (this.abort.signal.aborted) {
        // What threw is an await before the switch (the reactivation wait, the upstream start): the
        // switch itself is one synchronous step, and it did not run. Asked again once the platform is
        // back, it may go through: retryable.
        this.setOp(ref, 'failed', {
          code: 'platform_unavailable',
          message: `the local platform shut down before the ${ref.action} took effect: nothing was switched`,
          retryable: true,
        });
        return;
      }
      this.setOp(ref, 'failed', { code: 'internal', message: (e as Error).message });
    }
  }

  /**
   * After an await of runSwitch: whether the switch can no longer go ahead, in which case the operation
   * is marked failed (and the upstream it started stopped, unless the target is ready by other means).
   */
  private async switchFailed(ref: OperationRef, basis: SwitchBasis, started: boolean): Promise<boolean> {
    const refusal = this.switchRefusal(ref, basis);
    if (refusal === undefined) return false;
    const target = this.state.deployments.find((d) => d.id === ref.targetId);
    if (started && target?.status !== 'ready') await this.stopStartedUpstream(ref.targetId);
    this.setOp(ref, 'failed', refusal);
    return true;
  }

  /** Why the switch `ref` cannot go ahead now (synchronous: the caller acts in the same step). */
  private switchRefusal(
    ref: OperationRef,
    basis: SwitchBasis,
  ): { code: string; message: string } | undefined {
    const snap = this.snapshotSync(ref.environment);
    const target = snap.deployments.find((d) => d.id === ref.targetId);
    if (target === undefined) return { code: RefusalCode.unknownDeployment, message: 'target vanished' };
    const refusal = checkTarget(snap, ref.action, target);
    if (refusal) return { code: refusal.code, message: refusal.message };
    const env = snap.environment;
    if (env.currentDeploymentId !== basis.currentDeploymentId || env.rolledBack !== basis.rolledBack) {
      return {
        code: RefusalCode.planStale,
        message:
          `${env.slug} changed while the ${ref.action} to ${ref.targetId} was under way (now serving ` +
          `${env.currentDeploymentId ?? 'nothing'}${env.rolledBack ? ', rolled back' : ''}); nothing was switched. Plan it again.`,
      };
    }
    return undefined;
  }

  /** Stops an upstream this platform started for a start-up that did not go through. Never throws. */
  private async stopStartedUpstream(id: string): Promise<void> {
    try {
      await this.opts.traffic?.stopUpstream(id);
    } catch {
      // best effort: the router is closing or the upstream is gone already
    }
  }

  /**
   * The atomic part of a switch: every affected domain reassigned in one state change and one route
   * swap, written to the state file together with the operation's `succeeded` (so that after a restart
   * the operation reads succeeded exactly when the switch is in the file).
   */
  private applySwitch(ref: OperationRef, asker: SwitchAsker): void {
    const { action, environment, targetId } = ref;
    const { by, jobId } = asker;
    const env = this.env(environment);
    const now = this.clock.now();
    const previous = env.currentDeploymentId;
    const resume = action === 'promote' && previous === targetId;
    if (!resume && previous !== undefined) {
      // The plan's own rule (planDomains), on the state as it is now: what a plan listed is what moves.
      const snapDomains = planDomains(this.snapshotSync(environment), action, targetId, previous);
      const moving = new Set(snapDomains.map((d) => d.hostname));
      const serving = this.servingIds();
      this.state.domains = this.state.domains.map((d) =>
        moving.has(d.hostname) ? { ...d, deploymentId: targetId } : d,
      );
      this.markServingChanges(serving, now);
      const prev = this.state.deployments.find((d) => d.id === previous);
      if (prev) prev.stoppedServingAt = now;
      env.currentDeploymentId = targetId;
      this.pushHistory(environment, {
        deploymentId: targetId,
        since: now,
        via: action,
        ...(by ? { by } : {}),
        ...(jobId ? { jobId } : {}),
      });
    }
    if (action === 'rollback') {
      // A second rollback (further back) continues the rolled-back period the first one began: a fix
      // that became ready since then stays the default promote (defaultPromoteTarget). A state file
      // written before `rolledBackSince` existed dates the period from its last rollback.
      env.rolledBackSince = env.rolledBack ? (env.rolledBackSince ?? env.rolledBackAt ?? now) : now;
      env.rolledBack = true;
      env.rolledBackAt = now;
      env.rolledBackBy = by;
    } else {
      env.rolledBack = false;
      env.rolledBackAt = undefined;
      env.rolledBackBy = undefined;
      env.rolledBackSince = undefined;
      // A branch first pushed while the environment was rolled back has no domain yet: a push in that
      // period gets only its own (a new branch's domain would be assigned to a push all the same, and
      // the branch's later pushes in the period could not move it: it would name the branch while
      // serving a stale push of it). The promote restores normal behaviour, so the promoted deployment
      // gets its branch's domain now, as its push would have, when it is its branch's newest ready
      // deployment (the rule by which planDomains moves an existing branch domain to it).
      const target = this.state.deployments.find((d) => d.id === targetId);
      if (target !== undefined && isNewestOfBranch(this.snapshotSync(environment), this.toDeployment(target)))
        this.addBranchDomain(target);
    }
    this.markOp(ref, 'succeeded');
    this.publishRoutes();
    this.persist();
    if (!resume) {
      this.emit({
        type: 'traffic.moved',
        environment,
        ...(previous === undefined ? {} : { from: previous }),
        to: targetId,
        via: action,
        at: now,
      });
    }
  }

  // ---------------------------------------------------------------- pushes and lifecycle

  /** Simulates a push: a new deployment that builds, then becomes ready (or fails). */
  async push(request: PushRequest): Promise<Deployment> {
    const env = this.env(request.environment);
    const now = this.clock.now();
    const branch = request.branch ?? env.productionBranch ?? 'main';
    this.state.seq += 1;
    const id = `dep_${randomBytes(4).toString('hex').slice(0, 6)}${this.state.seq.toString(36)}`;
    const d: LocalDeployment = {
      id,
      projectId: env.projectId,
      environment: env.slug,
      branch,
      commit: {
        sha: randomBytes(20).toString('hex'),
        message: request.message ?? `Push #${this.state.seq} to ${branch}`,
        author: request.author ?? 'switchyard-demo',
      },
      createdAt: now,
      status: 'building',
      buildFails: request.fail === true,
      buildDoneAt: now + (this.opts.buildTimeMs ?? 3000),
      pushSeq: this.state.seq,
    };
    this.state.deployments.push(d);
    this.state.domains.push({
      hostname: `${id.replace(/_/g, '-')}.${this.deploymentDomainSuffix()}`.toLowerCase(),
      stickiness: 'deployment',
      environment: env.slug,
      deploymentId: id,
    });
    this.pruneDeployments();
    // Always: its own domain routes from now on, so while it builds it answers 503
    // (deployment_unavailable), not 404 unknown_host (docs/router.md); pruned domains stop routing.
    this.publishRoutes();
    this.persist();
    this.emit({ type: 'deployment.building', environment: env.slug, deploymentId: id, at: now });
    this.scheduleBuild(id);
    return this.toDeployment(d);
  }

  /**
   * Gives `d` its branch's domain (`feature-x.<suffix>`) when the branch has none in `d`'s environment
   * yet and the hostname is free; returns the hostname when it was added. Called when a build becomes
   * ready outside a rolled-back period, and by a promote (applySwitch).
   */
  private addBranchDomain(d: LocalDeployment): string | undefined {
    const label = hostLabel(d.branch);
    if (label === '') return undefined;
    const hostname = `${label}.${this.deploymentDomainSuffix()}`;
    const taken = this.state.domains.some(
      (dom) =>
        dom.hostname === hostname ||
        (dom.environment === d.environment && dom.stickiness === 'branch' && dom.branch === d.branch),
    );
    if (taken) return undefined;
    this.state.domains.push({
      hostname,
      stickiness: 'branch',
      environment: d.environment,
      branch: d.branch,
      deploymentId: d.id,
    });
    return hostname;
  }

  /**
   * Where a new deployment's own domain lives: beside its siblings' (`dep-<id>.<suffix>`, the suffix of
   * an existing deployment domain), else under the project's name made into a hostname label, so that
   * the state file it is written to always loads again (a name like "Acme Shop" is no hostname).
   */
  private deploymentDomainSuffix(): string {
    const sibling = this.state.domains.find((d) => d.stickiness === 'deployment');
    const dot = sibling?.hostname.indexOf('.') ?? -1;
    if (sibling !== undefined && dot > 0) return sibling.hostname.slice(dot + 1);
    return `${hostLabel(this.state.project.name) || 'project'}.localhost`;
  }

  private scheduleBuild(id: string): void {
    const d = this.dep(id);
    const wait = Math.max(0, (d.buildDoneAt ?? this.clock.now()) - this.clock.now());
    this.track(
      this.clock
        .sleep(wait, this.abort.signal)
        .then(() => this.finishBuild(id))
        .catch(() => {}),
    );
  }

  private async finishBuild(id: string): Promise<void> {
    const d = this.dep(id);
    if (d.status !== 'building') return;
    if (d.buildFails) {
      d.status = 'failed';
      // Its own domain keeps routing and answers 503 (no upstream), as it did while it built.
      this.publishRoutes();
      this.persist();
      this.emit({
        type: 'deployment.failed',
        environment: d.environment,
        deploymentId: id,
        at: this.clock.now(),
      });
      return;
    }
    // Warm when it is to take the live and environment domains, lean otherwise (see warmIds).
    let pool: UpstreamPool = this.goesLive(d) ? 'warm' : 'lean';
    await this.startUpstream(d, pool);
    // The await let other work run. An operator may have stopped this deployment meanwhile; and what
    // it takes is decided from the state as it is now, not as it was before the start.
    for (;;) {
      if (d.status !== 'building') {
        await this.stopStartedUpstream(id);
        return;
      }
      if (pool === 'warm' || !this.goesLive(d)) break;
      // It goes live after all (a promote ended the rolled-back state meanwhile): warmed first.
      pool = 'warm';
      this.pools.set(id, pool);
      await this.opts.traffic?.resizeUpstream?.(id, pool);
    }
    const now = this.clock.now();
    d.status = 'ready';
    d.readyAt = now;
    d.lastRequestAt = now;
    this.emit({ type: 'deployment.ready', environment: d.environment, deploymentId: id, at: now });
    const env = this.env(d.environment);
    if (env.rolledBack) {
      // Seed: new pushes still create deployments, but domains don't get reassigned automatically.
      // Not even a new branch's own branch domain: a domain handed to a push is one assigned by the
      // push, which the rolled-back state stops whatever the domain; and a later push of the branch in
      // this period could not move it, so it would claim to serve the branch while serving an old push
      // of it. The deployment's own domain serves it meanwhile; a promote of it adds the branch domain
      // (applySwitch), and so does the branch's next push once the environment is promoted.
      d.stoppedServingAt = now;
      this.publishRoutes();
      this.persist();
      return;
    }
    // Two racing pushes: a build finishing after a newer push already went live must not take its
    // domains back; it becomes ready without them, like a superseded deployment.
    const newer = (holder: string | undefined) => holder !== undefined && this.pushedAfter(holder, d);
    const previous = env.currentDeploymentId;
    const goesLive = this.goesLive(d);
    const moved: string[] = [];
    const serving = this.servingIds();
    this.state.domains = this.state.domains.map((dom) => {
      if (dom.environment !== env.slug) return dom;
      const takes =
        ((dom.stickiness === 'live' || dom.stickiness === 'environment') && goesLive) ||
        (dom.stickiness === 'branch' && dom.branch === d.branch && !newer(dom.deploymentId));
      if (!takes) return dom;
      moved.push(dom.hostname);
      return { ...dom, deploymentId: id };
    });
    // A branch's first deployment in this environment gets the branch's own domain
    // (`feature-x.acme.localhost`), which then follows the branch's newest deployment.
    const branchHost = this.addBranchDomain(d);
    if (branchHost !== undefined) moved.push(branchHost);
    // Whoever lost its last domain here (a branch domain too) stopped serving now: in production the
    // 30-minute standby timer starts from this moment.
    this.markServingChanges(serving, now);
    if (goesLive) {
      if (previous !== undefined && previous !== id) {
        const prev = this.state.deployments.find((x) => x.id === previous);
        if (prev) prev.stoppedServingAt = now;
      }
      env.currentDeploymentId = id;
      this.pushHistory(env.slug, { deploymentId: id, since: now, via: 'deploy' });
    } else if (moved.length === 0) {
      d.stoppedServingAt = now;
    }
    this.publishRoutes();
    this.persist();
    if (goesLive) {
      this.emit({
        type: 'traffic.moved',
        environment: env.slug,
        ...(previous ? { from: previous } : {}),
        to: id,
        via: 'deploy',
        at: now,
      });
    }
  }

  /** Stops a deployment for good (operator surface); it can no longer take traffic. */
  async stop(id: string): Promise<Deployment> {
    const d = this.dep(id);
    const env = this.env(d.environment);
    if (env.currentDeploymentId === id) {
      throw new RefusalError({
        code: RefusalCode.targetIsCurrent,
        message: `${id} is serving ${env.slug}; roll back or promote another deployment before stopping it.`,
      });
    }
    // Stopped at once, before any await: a switch, build or wake-up in progress sees it at its next
    // re-check and gives up instead of bringing it back.
    if (d.status !== 'failed') d.status = 'stopped';
    this.publishRoutes();
    this.persist();
    // Whatever runs (or is starting: a reactivation, a build, a wake-up) is drained and stopped.
    await this.opts.traffic?.stopUpstream(id);
    this.emit({
      type: 'deployment.stopped',
      environment: d.environment,
      deploymentId: id,
      at: this.clock.now(),
    });
    return this.toDeployment(d);
  }

  /**
   * Applies the time rules once: production deployments not serving for 30 minutes go to standby;
   * preview deployments idle for six hours go to standby. Drops what is no longer needed before and
   * after (pruneDeployments: a lingering branch domain goes with its deployment's standby). Returns
   * the ids moved to standby.
   */
  maintain(): string[] {
    return this.maintainOnce(true);
  }

  /** maintain, publishing the routes when `publish` (not at start-up, before the upstreams run). */
  private maintainOnce(publish: boolean): string[] {
    const now = this.clock.now();
    const moved: string[] = [];
    const sawTraffic = this.recordTraffic();
    // First the bounds: a production deployment whose branch domain began lingering since the last
    // push starts its 30 minutes here (see DEPLOYMENTS_KEPT).
    let pruned = this.pruneDeployments();
    const serving = this.servingIds();
    for (const d of this.state.deployments) {
      if (d.status !== 'ready') continue;
      const stats = this.opts.traffic?.upstreamStats(d.id);
      const env = this.env(d.environment);
      // Production: the deployment serving the environment never idles (seed: "previous deployments
      // move to standby"). Preview: every deployment, serving or not, idles after six hours without a
      // request; one that holds a domain is woken by the next request to it (`wake`).
      if (env.kind === 'production' && serving.has(d.id)) continue;
      const due =
        env.kind === 'production'
          ? now - (d.stoppedServingAt ?? d.readyAt ?? d.createdAt) >= STANDBY_AFTER_MS
          : now - (d.lastRequestAt ?? d.readyAt ?? d.createdAt) >= PREVIEW_IDLE_MS;
      // A deployment still answering requests is not idle, whatever the clock says.
      if (!due || stats?.inFlight || stats?.routedInFlight) continue;
      d.status = 'standby';
      moved.push(d.id);
      this.track(this.opts.traffic?.stopUpstream(d.id) ?? Promise.resolve());
      this.emit({ type: 'deployment.standby', environment: d.environment, deploymentId: d.id, at: now });
    }
    // A lingering branch domain whose deployment just went to standby goes now, in the same step: a
    // request never wakes a deployment only it still held.
    if (moved.length > 0) pruned = this.pruneDeployments() || pruned;
    if (publish) this.publishRoutes();
    // Traffic seen since the last tick is persisted too (at most one write per tick), so that a
    // restart after a crash does not find a visited preview deployment idle for hours.
    if (moved.length > 0 || pruned || sawTraffic || this.unsaved) this.persist();
    return moved;
  }

  /**
   * Copies the router's time of the last request to each running deployment into the state (the
   * six-hour idle rule reads it from there, and a restart from the state file). Returns whether any
   * deployment saw a request since the last copy.
   */
  private recordTraffic(): boolean {
    let sawTraffic = false;
    for (const d of this.state.deployments) {
      if (d.status !== 'ready') continue;
      const last = this.opts.traffic?.upstreamStats(d.id)?.lastRequestAt;
      if (last !== undefined && (d.lastRequestAt ?? 0) < last) {
        d.lastRequestAt = last;
        sawTraffic = true;
      }
    }
    return sawTraffic;
  }

  /**
   * Wakes a preview deployment that the six-hour idle rule put in standby, because a request arrived
   * for one of its domains (the router holds that request meanwhile): after the reactivation time its
   * upstream starts and it is ready again, on the same domains. Concurrent calls share one wake-up.
   * Resolves true once it runs; false for anything else (a production deployment in standby comes back
   * only through a rollback; building, failed and stopped deployments do not wake).
   */
  wake(id: string): Promise<boolean> {
    const pending = this.waking.get(id);
    if (pending) return pending;
    const d = this.state.deployments.find((x) => x.id === id);
    if (d?.status !== 'standby' || this.env(d.environment).kind !== 'preview' || this.abort.signal.aborted) {
      return Promise.resolve(false);
    }
    const run = (async () => {
      try {
        await this.clock.sleep(this.opts.reactivationTimeMs ?? 1500, this.abort.signal);
        if (d.status !== 'standby') return d.status === 'ready';
        await this.startUpstream(d, this.warmIds().has(d.id) ? 'warm' : 'lean');
        // The start let other work run: stopped by the operator meanwhile (stop its upstream again),
        // or made ready by a rollback to it (nothing left to do).
        if (d.status !== 'standby') {
          if (d.status === 'ready') return true;
          // Not waited for: the router's drain of this upstream waits for the requests held for this
          // very wake-up, which are answered only once it resolves.
          this.track(this.stopStartedUpstream(d.id));
          return false;
        }
        const now = this.clock.now();
        d.status = 'ready';
        d.lastRequestAt = now;
        this.persist();
        this.emit({ type: 'deployment.ready', environment: d.environment, deploymentId: d.id, at: now });
        return true;
      } catch {
        return false;
      } finally {
        this.waking.delete(id);
      }
    })();
    this.waking.set(id, run);
    this.track(run);
    return run;
  }

  private async maintenanceLoop(): Promise<void> {
    while (!this.abort.signal.aborted) {
      try {
        await this.clock.sleep(MAINTENANCE_EVERY_MS, this.abort.signal);
      } catch {
        return;
      }
      try {
        this.maintain();
      } catch (e) {
        // One bad tick must not end the loop: the time rules would silently stop for good.
        (this.opts.logger ?? silentLogger).error({ err: e }, 'local platform: maintenance tick failed');
      }
    }
  }

  /** Waits for background work (builds, switches) started so far; for tests and shutdown. */
  async settle(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  async close(): Promise<void> {
    this.abort.abort(new Error('local platform closed'));
    await Promise.allSettled([...this.background, this.maintenanceDone]);
    // Requests since the last maintenance tick (up to a minute of them) would otherwise be lost to the
    // idle rule after a restart. The router is still open here: Switchyard closes it after the platform
    // (handlers/app.ts), so its counts are still there to read.
    this.recordTraffic();
    this.persist();
  }

  // ---------------------------------------------------------------- helpers

  private track(p: Promise<unknown>): void {
    const tracked = p.catch(() => {}).finally(() => this.background.delete(tracked));
    this.background.add(tracked);
  }

  private emit(event: PlatformEvent): void {
    this.events.emit('event', event);
  }

  private env(slug: string) {
    const env = this.state.environments.find((e) => e.slug === slug);
    if (!env) {
      throw new RefusalError({
        code: RefusalCode.unknownEnvironment,
        message: `Unknown environment "${slug}". Valid environments: ${this.state.environments.map((e) => e.slug).join(', ')}.`,
        context: { input: slug, valid: this.state.environments.map((e) => e.slug) },
      });
    }
    return env;
  }

  private dep(id: string): LocalDeployment {
    const d = this.state.deployments.find((x) => x.id === id);
    if (!d) {
      throw new RefusalError({
        code: RefusalCode.unknownDeployment,
        message: `No deployment ${id}.`,
        context: { input: id },
      });
    }
    return d;
  }

  private snapshotSync(environment: string): EnvironmentSnapshot {
    const env = this.env(environment);
    return {
      project: this.state.project,
      environment: {
        slug: env.slug,
        kind: env.kind,
        projectId: env.projectId,
        rolledBack: env.rolledBack,
        ...(env.currentDeploymentId === undefined ? {} : { currentDeploymentId: env.currentDeploymentId }),
        ...(env.productionBranch === undefined ? {} : { productionBranch: env.productionBranch }),
      },
      deployments: this.newestFirst(env.slug).map((d) => this.toDeployment(d)),
      domains: this.state.domains.filter((d) => d.environment === env.slug).map((d) => this.toDomain(d)),
      liveHistory: this.history(env.slug),
      readAt: this.clock.now(),
    };
  }

  /**
   * Deployments serving: each environment's current deployment (whatever domains it has), and any
   * holding a domain that is not its own deployment domain, nor a lingering branch domain (kept only
   * while its deployment runs: see DEPLOYMENTS_KEPT).
   */
  private servingIds(): Set<string> {
    const ids = new Set<string>();
    for (const env of this.state.environments) {
      if (env.currentDeploymentId !== undefined) ids.add(env.currentDeploymentId);
    }
    const lingering = this.lingeringDomains(this.pinnedIds());
    for (const dom of this.state.domains) {
      if (dom.stickiness !== 'deployment' && dom.deploymentId !== undefined && !lingering.has(dom.hostname))
        ids.add(dom.deploymentId);
    }
    return ids;
  }

  /**
   * After domains moved: a deployment that served before (`before`) and holds no such domain now
   * stopped serving at `now`; one that serves now and did not before is serving again.
   */
  private markServingChanges(before: ReadonlySet<string>, now: number): void {
    const after = this.servingIds();
    for (const d of this.state.deployments) {
      if (before.has(d.id) && !after.has(d.id)) d.stoppedServingAt = now;
      else if (!before.has(d.id) && after.has(d.id)) d.stoppedServingAt = undefined;
    }
  }

  /**
   * The environment's deployments, newest first by push order (comparePushOrder), as every snapshot
   * lists them (the port's contract): plans tell older from newer by this order, so they agree with
   * what this platform puts live, whatever the wall clock said.
   */
  private newestFirst(environment: string): LocalDeployment[] {
    const index = new Map(this.state.deployments.map((d, i) => [d, i]));
    const place = (d: LocalDeployment) => index.get(d) ?? 0;
    return this.state.deployments
      .filter((d) => d.environment === environment)
      .sort((a, b) => comparePushOrder(b, a, place));
  }

  /**
   * Whether `d`, once built, takes its environment's live and environment domains: the environment is
   * not rolled back, `d` is of its production branch (any branch when it has none), and the current
   * deployment was not pushed after it.
   */
  private goesLive(d: LocalDeployment): boolean {
    const env = this.env(d.environment);
    if (env.rolledBack) return false;
    if (env.productionBranch !== undefined && env.productionBranch !== d.branch) return false;
    const current = env.currentDeploymentId;
    return current === undefined || !this.pushedAfter(current, d);
  }

  /** Whether deployment `id` was pushed after `d` (see comparePushOrder). */
  private pushedAfter(id: string, d: LocalDeployment): boolean {
    if (id === d.id) return false;
    const x = this.state.deployments.find((y) => y.id === id);
    if (x === undefined) return false;
    return comparePushOrder(x, d, (y) => this.state.deployments.indexOf(y)) > 0;
  }

  /**
   * Drops the deployments no longer needed (see DEPLOYMENTS_KEPT), with their own domains, and stops
   * their upstreams; trims the live history to LIVE_HISTORY_KEPT first, since the deployments it names
   * are kept, and drops the lingering branch domains whose deployment no longer runs. The caller
   * publishes the routes (the pruned own domains no longer route) and writes the state. Returns
   * whether anything changed.
   */
  private pruneDeployments(): boolean {
    let changed = false;
    for (const [slug, entries] of Object.entries(this.state.liveHistory)) {
      if (entries.length > LIVE_HISTORY_KEPT) {
        this.state.liveHistory[slug] = entries.slice(-LIVE_HISTORY_KEPT);
        changed = true;
      }
    }
    const pinned = this.pinnedIds();
    if (this.pruneBranchDomains(pinned)) changed = true;
    const inUse = new Set(pinned);
    for (const dom of this.state.domains) {
      // Its own per-deployment domain goes with it; any other domain keeps it.
      if (dom.stickiness !== 'deployment' && dom.deploymentId !== undefined) inUse.add(dom.deploymentId);
    }
    const pruned = new Set<string>();
    for (const env of this.state.environments) {
      const own = this.newestFirst(env.slug);
      if (own.length <= DEPLOYMENTS_KEPT) continue;
      for (const d of own.slice(DEPLOYMENTS_KEPT)) {
        if (d.status !== 'building' && !inUse.has(d.id)) pruned.add(d.id);
      }
    }
    if (pruned.size === 0) return changed;
    this.state.deployments = this.state.deployments.filter((d) => !pruned.has(d.id));
    // Only per-deployment domains can still point at a pruned deployment (any other keeps it).
    this.state.domains = this.state.domains.filter(
      (dom) => dom.deploymentId === undefined || !pruned.has(dom.deploymentId),
    );
    // Drained like any stopped deployment: a request already on its way still gets its answer.
    for (const id of pruned) {
      this.pools.delete(id);
      this.track(this.opts.traffic?.stopUpstream(id) ?? Promise.resolve());
    }
    return true;
  }

  /**
   * Deployments kept whatever their age and domains: each environment's current one, those the live
   * history names (a rollback's default targets), those waking, and the target of every switch not
   * finished yet (its plan named it).
   */
  private pinnedIds(): Set<string> {
    const ids = new Set<string>(this.waking.keys());
    for (const env of this.state.environments) {
      if (env.currentDeploymentId !== undefined) ids.add(env.currentDeploymentId);
    }
    for (const entries of Object.values(this.state.liveHistory)) {
      for (const e of entries) ids.add(e.deploymentId);
    }
    for (const op of this.state.operations) {
      if (op.state !== 'succeeded' && op.state !== 'failed') ids.add(op.targetId);
    }
    return ids;
  }

  /**
   * The hostnames of the lingering branch domains (see DEPLOYMENTS_KEPT): of a branch none of whose
   * pushes is among its environment's newest DEPLOYMENTS_KEPT, nor the branch of a switch's target not
   * finished yet (a promote moves it: what its plan listed stays), pointing at a deployment not
   * `pinned`. A branch domain pointing at nothing (a seed's, waiting for the branch's first push) holds
   * nothing and never lingers.
   */
  private lingeringDomains(pinned: ReadonlySet<string>): Set<string> {
    const recent = new Map<string, Set<string>>();
    for (const env of this.state.environments) {
      const newest = this.newestFirst(env.slug).slice(0, DEPLOYMENTS_KEPT);
      recent.set(env.slug, new Set(newest.map((d) => d.branch)));
    }
    for (const op of this.state.operations) {
      if (op.state === 'succeeded' || op.state === 'failed') continue;
      const target = this.state.deployments.find((d) => d.id === op.targetId);
      if (target !== undefined) recent.get(target.environment)?.add(target.branch);
    }
    const hostnames = new Set<string>();
    for (const dom of this.state.domains) {
      if (
        dom.stickiness === 'branch' &&
        dom.branch !== undefined &&
        dom.deploymentId !== undefined &&
        !pinned.has(dom.deploymentId) &&
        recent.get(dom.environment)?.has(dom.branch) === false
      )
        hostnames.add(dom.hostname);
    }
    return hostnames;
  }

  /**
   * Drops every lingering branch domain (see lingeringDomains) whose deployment no longer runs: a
   * preview one idled out, one in standby or stopped. One whose deployment runs stays; in production
   * it no longer counts as serving (servingIds), so its deployment's 30 minutes start now if they had
   * not started. Returns whether anything changed.
   */
  private pruneBranchDomains(pinned: ReadonlySet<string>): boolean {
    const lingering = this.lingeringDomains(pinned);
    if (lingering.size === 0) return false;
    const running = new Set(this.state.deployments.filter((d) => d.status === 'ready').map((d) => d.id));
    const before = this.state.domains.length;
    this.state.domains = this.state.domains.filter(
      (dom) => !lingering.has(dom.hostname) || running.has(dom.deploymentId ?? ''),
    );
    let changed = this.state.domains.length !== before;
    const serving = this.servingIds();
    const now = this.clock.now();
    for (const dom of this.state.domains) {
      if (!lingering.has(dom.hostname) || serving.has(dom.deploymentId ?? '')) continue;
      const d = this.state.deployments.find((x) => x.id === dom.deploymentId);
      if (d === undefined || d.stoppedServingAt !== undefined) continue;
      d.stoppedServingAt = now;
      changed = true;
    }
    return changed;
  }

  private history(environment: string): LiveEntry[] {
    return (this.state.liveHistory[environment] ?? []).map((e) => ({
      deploymentId: e.deploymentId,
      since: e.since,
      via: e.via,
      ...(e.by === undefined ? {} : { by: e.by }),
      ...(e.jobId === undefined ? {} : { jobId: e.jobId }),
    }));
  }

  private pushHistory(environment: string, entry: LiveEntry): void {
    const list = this.state.liveHistory[environment] ?? [];
    list.push(entry);
    // Bounded (LIVE_HISTORY_KEPT): enough for any rollback decision.
    this.state.liveHistory[environment] = list.slice(-LIVE_HISTORY_KEPT);
  }

  /** Sends the routing table to the router when it changed (one atomic swap). */
  private publishRoutes(): void {
    // Every assigned domain is routed; one whose deployment is not running (building, failed, standby,
    // stopped) gets the router's honest 503 rather than an "unknown host" 404.
    const routes = new Map<string, string>();
    for (const d of this.state.domains) {
      if (d.deploymentId !== undefined) routes.set(d.hostname, d.deploymentId);
    }
    const key = JSON.stringify([...routes]);
    if (key !== this.routesKey) {
      this.routesKey = key;
      this.opts.traffic?.applyRoutes(routes);
    }
    // After the swap: a deployment that lost its live and environment domains no longer needs a warm
    // pool (its requests under way finish on the old one).
    this.adjustPools();
  }

  /**
   * Deployments whose upstream keeps a warm pool (see UpstreamPool): each environment's current one,
   * those holding a live or environment domain, and the target of every switch not finished yet (it
   * is about to take them: runSwitch warms it before the swap). The others, reached only by their own
   * domain and perhaps their branch's, keep a lean one: a preview environment keeps every recent
   * branch's deployment running for hours, and a warm pool each is 32 file descriptors.
   */
  private warmIds(): Set<string> {
    const ids = new Set<string>();
    for (const env of this.state.environments) {
      if (env.currentDeploymentId !== undefined) ids.add(env.currentDeploymentId);
    }
    for (const dom of this.state.domains) {
      if ((dom.stickiness === 'live' || dom.stickiness === 'environment') && dom.deploymentId !== undefined)
        ids.add(dom.deploymentId);
    }
    for (const op of this.state.operations) {
      if (op.state !== 'succeeded' && op.state !== 'failed') ids.add(op.targetId);
    }
    return ids;
  }

  /** Starts a deployment's upstream with `pool` (remembered: adjustPools resizes it from there). */
  private startUpstream(d: LocalDeployment, pool: UpstreamPool): Promise<void> {
    this.pools.set(d.id, pool);
    return (
      this.opts.traffic?.startUpstream(this.toDeployment({ ...d, status: 'ready' }), { pool }) ??
      Promise.resolve()
    );
  }

  /** Asks the router to resize each running deployment's pool that is not the one it needs now. */
  private adjustPools(): void {
    const traffic = this.opts.traffic;
    if (traffic?.resizeUpstream === undefined) return;
    const warm = this.warmIds();
    for (const d of this.state.deployments) {
      if (d.status !== 'ready') continue;
      const pool: UpstreamPool = warm.has(d.id) ? 'warm' : 'lean';
      if (this.pools.get(d.id) === pool) continue;
      this.pools.set(d.id, pool);
      this.track(traffic.resizeUpstream(d.id, pool));
    }
  }

  /**
   * Writes the state file. A failed write (disk full, the data directory gone) never fails what
   * changed the state: traffic has already moved, and the state in memory is the truth. It is logged
   * once, and every maintenance tick writes again until a write succeeds.
   */
  private persist(): void {
    const file = this.opts.stateFile;
    if (file === undefined) return;
    const log = this.opts.logger ?? silentLogger;
    try {
      writeStateFile(file, this.state);
      if (this.unsaved) log.info({ stateFile: file }, 'local platform: state file written again');
      this.unsaved = false;
    } catch (e) {
      if (!this.unsaved) {
        log.error(
          { err: e, stateFile: file },
          'local platform: could not write its state file; a restart now would lose changes since the last write (retrying every minute)',
        );
      }
      this.unsaved = true;
    }
  }

  /** Whether the state file is behind the state in memory (a write failed and no retry succeeded). */
  get stateUnsaved(): boolean {
    return this.unsaved;
  }

  private toDeployment(d: LocalDeployment): Deployment {
    return {
      id: d.id,
      projectId: d.projectId,
      environment: d.environment,
      branch: d.branch,
      commit: { ...d.commit },
      createdAt: d.createdAt,
      ...(d.readyAt === undefined ? {} : { readyAt: d.readyAt }),
      status: d.status,
    };
  }

  private toDomain(d: LocalState['domains'][number]): Domain {
    return {
      hostname: d.hostname,
      stickiness: d.stickiness,
      environment: d.environment,
      ...(d.branch === undefined ? {} : { branch: d.branch }),
      ...(d.deploymentId === undefined ? {} : { deploymentId: d.deploymentId }),
    };
  }
}
