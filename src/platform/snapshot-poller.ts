/**
 * Deployment events by polling, for platforms that push none a customer-side bot can receive (Unkey,
 * Vercel): at a fixed interval each environment is read, diffed against the last state stored in Redis, and the
 * differences are emitted as PlatformEvents. The stored state is replaced with a compare-and-set, and
 * only the replica whose write wins emits, so events are not duplicated across replicas or restarts.
 * The first poll of an environment with no stored state records a baseline and emits nothing.
 * A platform outage is logged when an environment's polling starts failing (what failed and what to
 * check) and when it works again, not at every poll (nor at every HTTP retry inside one).
 */

import type { Clock } from '../clock.js';
import type { DeploymentStatus, EnvironmentSnapshot } from '../domain/types.js';
import { SwitchyardError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import type { RedisClient } from '../redis.js';
import { quietRetries } from './http-client.js';
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

/**
 * What a failed poll says to check: `unreachable` when the platform did not answer or answered with a
 * fault of its own (timeouts, network errors, 5xx, 429: retryable), `refused:<code>` when it refused
 * (a rejected token, an unknown project: the adapter's refusal says what to set), `other` else.
 */
function pollFailureOf(e: unknown): string {
  if (!(e instanceof SwitchyardError)) return 'other';
  return e.retry ? 'unreachable' : `refused:${e.code}`;
}

/** An environment whose polling fails: since when (clock ms), how many polls in a row, and why. */
interface Failing {
  readonly since: number;
  polls: number;
  failure: string;
}

/** Polls environments and emits their deployment events to listeners. */
export class SnapshotEventPoller {
  private readonly listeners = new Set<(event: PlatformEvent) => void>();
  private readonly logger: Logger;
  private loop: { readonly stop: AbortController; readonly done: Promise<void> } | undefined;
  private readonly failing = new Map<string, Failing>();

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
        this.succeeded(environment);
      } catch (e) {
        this.failed(environment, e);
      }
    }
    return emitted;
  }

  /**
   * A failed poll of `environment`: the first of a series is a warning saying what failed and what to
   * check (again when the reason changes kind, e.g. from no answer to a refused token); the next ones,
   * while it keeps failing the same way, only debug lines.
   */
  private failed(environment: string, e: unknown): void {
    const reason = e instanceof Error ? e.message : String(e);
    const failure = pollFailureOf(e);
    const known = this.failing.get(environment);
    if (known) known.polls++;
    if (known && known.failure === failure) {
      this.logger.debug(
        { environment, reason, failedPolls: known.polls },
        `${this.opts.platform}: polling ${environment} still fails`,
      );
      return;
    }
    if (known) known.failure = failure;
    else this.failing.set(environment, { since: this.opts.clock.now(), polls: 1, failure });
    const { platform } = this.opts;
    // A refusal already says what to set (the adapters word it so); anything else gets a pointer.
    const check =
      failure === 'unreachable'
        ? `check that ${platform}'s API answers from this host (network, DNS, proxy) and ${platform}'s status`
        : failure === 'other'
          ? `the reason says what failed (not an answer of ${platform}'s)`
          : reason;
    this.logger.warn(
      { environment, reason },
      `${platform}: polling ${environment} fails, so its deployment events (and notices) wait until it works again (tried every ${Math.round(this.opts.intervalMs / 1000)}s; a line says when it does). What to do: ${check}`,
    );
  }

  /** A successful poll of `environment`: says so once if it had been failing. */
  private succeeded(environment: string): void {
    const known = this.failing.get(environment);
    if (!known) return;
    this.failing.delete(environment);
    this.logger.info(
      { environment, failedPolls: known.polls, failingForMs: this.opts.clock.now() - known.since },
      `${this.opts.platform}: polling ${environment} works again after ${known.polls} failed ${known.polls === 1 ? 'poll' : 'polls'}`,
    );
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
    // Its retries at debug: a failing poll is said once, by `failed` (only the read: the listeners'
    // own requests keep theirs).
    const next = stateOf(await quietRetries(() => this.opts.snapshot(environment)));
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
