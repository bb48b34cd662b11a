/**
 * Deployment events by polling, for platforms that push none a customer-side bot can receive (Unkey,
 * Vercel): at a fixed interval each environment is read, diffed against the last state stored in Redis, and the
 * differences are emitted as PlatformEvents. The stored state is replaced with a compare-and-set, and
 * only the replica whose write wins emits, so events are not duplicated across replicas or restarts.
 * The first poll of an environment with no stored state records a baseline and emits nothing.
 */

import type { Clock } from '../clock.js';
import type { DeploymentStatus, EnvironmentSnapshot } from '../domain/types.js';
import { type Logger, silentLogger } from '../log.js';
import type { RedisClient } from '../redis.js';
import type { DeployPlatform, PlatformEvent } from './port.js';

/** What the poller remembers per environment. */
export interface PolledState {
  readonly current: string | null;
  readonly rolledBack: boolean;
  /** Deployment id → status and creation time. */
  readonly deployments: Readonly<
    Record<string, { readonly status: DeploymentStatus; readonly createdAt: number }>
  >;
}

export interface SnapshotPollerOptions {
  /** Log prefix: the platform polled (`unkey`, `vercel`). */
  readonly platform: string;
  readonly redis: RedisClient;
  /** Prefix of the Redis keys (`<prefix>:<environment>`); share it between replicas of one deployment. */
  readonly keyPrefix: string;
  readonly intervalMs: number;
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly environments: () => Promise<readonly string[]>;
  readonly snapshot: (environment: string) => Promise<EnvironmentSnapshot>;
}

/** The `events` option of a remote adapter (Unkey, Vercel): where and how often to poll. */
export interface PollingEvents {
  readonly redis: RedisClient;
  /** Poll interval (ms); default 15 s. */
  readonly intervalMs?: number;
  /** Redis key prefix shared by every replica; default `switchyard:<platform>:poll`. */
  readonly keyPrefix?: string;
}

/**
 * The poller of a remote adapter's `events` option, with the defaults every adapter shares: it polls
 * the adapter's own `listEnvironments` and `snapshot`.
 */
export function pollerFor(
  adapter: Pick<DeployPlatform, 'name' | 'listEnvironments' | 'snapshot'>,
  events: PollingEvents,
  opts: Pick<SnapshotPollerOptions, 'clock' | 'logger'>,
): SnapshotEventPoller {
  return new SnapshotEventPoller({
    platform: adapter.name,
    redis: events.redis,
    keyPrefix: events.keyPrefix ?? `switchyard:${adapter.name}:poll`,
    intervalMs: events.intervalMs ?? 15_000,
    environments: () => adapter.listEnvironments(),
    snapshot: (environment) => adapter.snapshot(environment),
    ...opts,
  });
}

// Replaces the stored state only if it is still what this replica read ('' = absent).
const CAS = `
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

/** Reduces a snapshot to the state the poller diffs. */
export function stateOf(snap: EnvironmentSnapshot): PolledState {
  const deployments: Record<string, { status: DeploymentStatus; createdAt: number }> = {};
  for (const d of snap.deployments) deployments[d.id] = { status: d.status, createdAt: d.createdAt };
  return {
    current: snap.environment.currentDeploymentId ?? null,
    rolledBack: snap.environment.rolledBack,
    deployments,
  };
}

const STATUS_EVENT = {
  building: 'deployment.building',
  ready: 'deployment.ready',
  failed: 'deployment.failed',
  standby: 'deployment.standby',
  stopped: 'deployment.stopped',
} as const satisfies Record<DeploymentStatus, string>;

/**
 * The events between two states of one environment. A current deployment that changes is
 * `traffic.moved`: `rollback` when the environment became rolled back, `promote` when it stopped being
 * rolled back or traffic moved to a deployment older than the previous one, else `deploy` (a promote
 * of a newer deployment outside the rolled-back state cannot be told apart from an automatic deploy).
 */
export function diffStates(
  environment: string,
  prev: PolledState,
  next: PolledState,
  at: number,
): PlatformEvent[] {
  const events: PlatformEvent[] = [];
  const ids = Object.keys(next.deployments).sort(
    (a, b) => (next.deployments[a]?.createdAt ?? 0) - (next.deployments[b]?.createdAt ?? 0),
  );
  for (const id of ids) {
    const now = next.deployments[id];
    if (now === undefined) continue;
    if (prev.deployments[id]?.status === now.status) continue;
    events.push({ type: STATUS_EVENT[now.status], environment, deploymentId: id, at });
  }
  if (next.current !== null && next.current !== prev.current) {
    let via: 'deploy' | 'rollback' | 'promote';
    if (next.rolledBack) via = 'rollback';
    else if (prev.rolledBack) via = 'promote';
    else {
      const before =
        prev.current === null
          ? undefined
          : (next.deployments[prev.current] ?? prev.deployments[prev.current]);
      const after = next.deployments[next.current];
      via =
        before !== undefined && after !== undefined && after.createdAt < before.createdAt
          ? 'promote'
          : 'deploy';
    }
    events.push({
      type: 'traffic.moved',
      environment,
      ...(prev.current === null ? {} : { from: prev.current }),
      to: next.current,
      via,
      at,
    });
  }
  return events;
}

/** Polls environments and emits their deployment events to listeners. */
export class SnapshotEventPoller {
  private readonly listeners = new Set<(event: PlatformEvent) => void>();
  private readonly logger: Logger;
  private loop: { readonly stop: AbortController; readonly done: Promise<void> } | undefined;

  constructor(private readonly opts: SnapshotPollerOptions) {
    this.logger = opts.logger ?? silentLogger;
  }

  /** Adds a listener; polling runs while at least one listener is subscribed. */
  subscribe(listener: (event: PlatformEvent) => void): () => void {
    this.listeners.add(listener);
    if (!this.loop) this.start();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) void this.stop();
    };
  }

  /** One round over every environment; resolves with the events this replica emitted. */
  async pollOnce(): Promise<PlatformEvent[]> {
    const emitted: PlatformEvent[] = [];
    for (const environment of await this.opts.environments()) {
      try {
        emitted.push(...(await this.pollEnvironment(environment)));
      } catch (e) {
        this.logger.warn(
          { environment, err: e instanceof Error ? e.message : String(e) },
          `${this.opts.platform}: poll failed`,
        );
      }
    }
    return emitted;
  }

  /** Stops polling and waits for the current round to finish. */
  async stop(): Promise<void> {
    const loop = this.loop;
    this.loop = undefined;
    if (!loop) return;
    loop.stop.abort();
    await loop.done;
  }

  private start(): void {
    const stop = new AbortController();
    const done = (async () => {
      while (!stop.signal.aborted) {
        await this.pollOnce();
        try {
          await this.opts.clock.sleep(this.opts.intervalMs, stop.signal);
        } catch {
          return;
        }
      }
    })();
    this.loop = { stop, done };
  }

  private async pollEnvironment(environment: string): Promise<PlatformEvent[]> {
    const key = `${this.opts.keyPrefix}:${environment}`;
    const stored = await this.opts.redis.get(key);
    const next = stateOf(await this.opts.snapshot(environment));
    const nextText = JSON.stringify(next);
    if (stored === nextText) return [];
    const won = await this.opts.redis.eval(CAS, 1, key, stored ?? '', nextText);
    if (won !== 1) return [];
    if (stored === null) return [];
    const prev = JSON.parse(stored) as PolledState;
    const events = diffStates(environment, prev, next, this.opts.clock.now());
    for (const event of events) {
      for (const listener of this.listeners) {
        try {
          listener(event);
        } catch (e) {
          this.logger.error(
            { err: e instanceof Error ? e.message : String(e) },
            `${this.opts.platform}: event listener threw`,
          );
        }
      }
    }
    return events;
  }
}
