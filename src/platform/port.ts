/**
 * The DeployPlatform port (STYLE 5): the few operations Switchyard needs from a deploy platform.
 * Adapters: local/ (embedded, the default and the test backend), unkey/, vercel/. Jobs and handlers
 * only ever see this interface.
 *
 * Contract:
 * - Reads return domain values (src/domain/types.ts); times are Unix ms.
 * - `rollback`/`promote` start an operation and return at once; `operation` observes it until it is
 *   `succeeded` or `failed`. A platform-side "no" throws a RefusalError (retry=false); a fault throws a
 *   SwitchyardError/PlatformHttpError whose `retry` says whether trying again may help.
 * - Acting twice is harmless only because callers re-read `snapshot` first; adapters need not dedupe.
 */
import type { Deployment, DomainStickiness, EnvironmentSnapshot, PlanAction } from '../domain/types.js';

export interface SwitchRequest {
  readonly environment: string;
  readonly targetId: string;
  /** Display name or id of the person on whose behalf the switch runs (kept in platform history). */
  readonly requestedBy?: string;
  /**
   * The id of the Switchyard switch job making the request, for a platform that records it with the
   * switch (the local one, on its live-history entry): display names are not unique, so a job tells
   * its own switch from another job's by this id. Other platforms ignore it.
   */
  readonly jobId?: string;
  /**
   * What the plan was checked against, for a platform that can refuse atomically when the environment
   * moved since (a push that went live in the moment between the last check and this call would
   * otherwise be switched away unseen): the deployment serving it, and its rolled-back state. A
   * platform that cannot check them ignores them (Switchyard re-checks right before calling).
   */
  readonly expectedCurrent?: string;
  readonly expectedRolledBack?: boolean;
}

export interface OperationRef {
  readonly id: string;
  readonly action: PlanAction;
  readonly environment: string;
  readonly targetId: string;
  /** Unix ms. */
  readonly startedAt: number;
  /**
   * The deployment the switch started from (serving the environment when the platform accepted it),
   * when the adapter knows it. An adapter that follows a switch by watching its target (Unkey) tells
   * by it a switch still under way (this one still serves) from one another switch overtook (a third
   * deployment serves). Refs are stored as JSON and read back by a worker resuming the job; one
   * without it is followed as before (until the target serves or the operation times out).
   */
  readonly fromId?: string;
}

export const OperationState = {
  pending: 'pending',
  reactivating: 'reactivating',
  switching: 'switching',
  succeeded: 'succeeded',
  failed: 'failed',
} as const;
export type OperationState = (typeof OperationState)[keyof typeof OperationState];

export interface OperationStatus {
  readonly id: string;
  readonly state: OperationState;
  readonly error?: {
    readonly code: string;
    readonly message: string;
    /**
     * The operation failed without switching anything, for a reason that passes (the platform
     * restarted or shut down mid-way): the same switch asked again later may succeed, so a job
     * retries it (with backoff) instead of failing. Absent: a failure of the switch itself, final.
     */
    readonly retryable?: boolean;
    /**
     * The failure is not definitive: the adapter stopped waiting (its own operation timeout) while the
     * platform still reported the switch pending or under way, so it may still complete. A job ends
     * `failed` without retrying (a retry would start another switch) and says the switch may still
     * complete. Absent: the platform itself says the switch ended without taking effect.
     */
    readonly mayStillComplete?: boolean;
  };
  /** Unix ms. */
  readonly updatedAt: number;
}

/** Where a hostname sends traffic now, as the platform's router sees it. */
export interface Route {
  readonly hostname: string;
  readonly stickiness: DomainStickiness;
  readonly environment: string;
  readonly deploymentId?: string;
}

/** What answered a probe of a hostname. */
export interface ProbeResult {
  readonly hostname: string;
  /** Deployment that answered (e.g. the router's `x-deployment-id`), or undefined when unknown. */
  readonly deploymentId?: string;
  readonly status?: number;
  readonly error?: string;
}

/** Deployment lifecycle and traffic events (issue 9), emitted by platforms that can observe them. */
export type PlatformEvent =
  | {
      readonly type:
        | 'deployment.building'
        | 'deployment.ready'
        | 'deployment.failed'
        | 'deployment.standby'
        | 'deployment.stopped';
      readonly environment: string;
      readonly deploymentId: string;
      readonly at: number;
    }
  | {
      readonly type: 'traffic.moved';
      readonly environment: string;
      readonly from?: string;
      readonly to: string;
      readonly via: 'deploy' | 'rollback' | 'promote';
      readonly at: number;
    };

export interface DeployPlatform {
  /** Adapter name for messages and metrics: `local`, `unkey`, `vercel`. */
  readonly name: string;
  /** Slugs of the environments Switchyard may act on, in display order. */
  listEnvironments(): Promise<readonly string[]>;
  /**
   * One consistent read of an environment. Deployments newest first, in the platform's own order of
   * creation: plans tell older from newer by their place in this list, not by `createdAt` (the local
   * platform orders by push order, which a wall-clock step back does not change; Unkey and Vercel by
   * their `createdAt`, keeping their API's newest-first order for ties).
   */
  snapshot(environment: string): Promise<EnvironmentSnapshot>;
  getDeployment(id: string): Promise<Deployment | undefined>;
  /**
   * Every domain of the environment and the deployment it routes to now. `snapshot`: a snapshot of
   * this environment the caller just read; an adapter that derives routing from its snapshot (Unkey)
   * uses it instead of reading again; others ignore it. A caller that must see routing as it is now
   * (the verification of a switch) passes none.
   */
  routing(environment: string, snapshot?: EnvironmentSnapshot): Promise<readonly Route[]>;
  rollback(request: SwitchRequest): Promise<OperationRef>;
  promote(request: SwitchRequest): Promise<OperationRef>;
  operation(ref: OperationRef): Promise<OperationStatus>;
  /**
   * Asks the hostname who serves it (verification of a switch). Adapters without a way to reach
   * the traffic may omit it; verification then relies on `routing`.
   */
  probe?(hostname: string, signal?: AbortSignal): Promise<ProbeResult>;
  /** Resolves when the platform is reachable (readiness); throws with the reason otherwise. */
  health(): Promise<void>;
  /** Subscribes to lifecycle events where the platform pushes them; returns the unsubscribe function. */
  subscribe?(listener: (event: PlatformEvent) => void): () => void;
  /** Releases sockets, timers and child servers. */
  close(): Promise<void>;
}
