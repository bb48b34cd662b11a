/**
 * The notices tests' world: a real Redis (fresh key prefix per test), the real embedded LocalPlatform
 * on a ManualClock, the real AuditLog, PlanStore, SwitchQueue, Flow and ChatService, and a recording
 * ChatPoster (the ConsoleSurface is used where the console is under test). `startNotices` instances
 * started through the world are stopped by `close()`.
 */
import { type SwitchWorker, type SwitchWorkerOptions, startSwitchWorker } from '../../jobs/switch-worker.js';
import { AuditLog } from '../../src/audit.js';
import { ChatService } from '../../src/chat.js';
import type { ChatPoster } from '../../src/chat-sinks.js';
import { type Clock, ManualClock, systemClock } from '../../src/clock.js';
import { type Config, fileConfigSchema, parseEnv } from '../../src/config.js';
import type { Deployment, EnvironmentSnapshot } from '../../src/domain/types.js';
import { Flow } from '../../src/flow.js';
import { silentLogger } from '../../src/log.js';
import {
  type NoticeOutcome,
  type NoticeService,
  type NoticesOptions,
  startNotices,
} from '../../src/notices.js';
import { PlanStore } from '../../src/plan-store.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import type { DeployPlatform, OperationRef, PlatformEvent } from '../../src/platform/port.js';
import type { SnapshotEventPoller } from '../../src/platform/snapshot-poller.js';
import type { MessageRef, Progress, Reporter } from '../../src/progress.js';
import { SwitchQueue } from '../../src/queue.js';
import { createRedis, deleteKeys, type RedisClient, scanKeys } from '../../src/redis.js';
import { plainText } from '../../src/views/format.js';
import type { MessageView } from '../../src/views/types.js';
import { redisUrl, uniqueName } from '../support/redis.js';

export const BUILD_MS = 60_000;
export const HOUR = 3_600_000;

/** A post as a chat surface received it. */
export interface RecordedPost {
  readonly channel: string;
  readonly view: MessageView;
  readonly ref: MessageRef;
  /** Clock time of the post. */
  readonly at: number;
}

/** An edit as a chat surface received it. */
export interface RecordedUpdate {
  readonly ref: MessageRef;
  readonly view: MessageView;
  /** Clock time of the edit. */
  readonly at: number;
}

/** A ChatPoster that records what it is asked to post and edit. */
export class RecordingPoster implements ChatPoster {
  readonly posts: RecordedPost[] = [];
  readonly updates: RecordedUpdate[] = [];
  private n = 0;
  private waiters: { count: number; resolve: () => void }[] = [];

  constructor(
    readonly surface: ChatPoster['surface'],
    private readonly clock: Clock,
  ) {}

  async post(channel: string, view: MessageView): Promise<MessageRef> {
    this.n += 1;
    const ref: MessageRef = { surface: this.surface, channel, messageId: `${this.surface}-${this.n}` };
    this.posts.push({ channel, view, ref, at: this.clock.now() });
    return ref;
  }

  async update(ref: MessageRef, view: MessageView): Promise<void> {
    this.updates.push({ ref, view, at: this.clock.now() });
    for (const w of this.waiters.filter((x) => this.updates.length >= x.count)) w.resolve();
    this.waiters = this.waiters.filter((x) => this.updates.length < x.count);
  }

  titles(): string[] {
    return this.posts.map((p) => p.view.title);
  }

  /** Resolves once `count` edits were received (for code that runs while a notice hangs). */
  updated(count: number): Promise<void> {
    if (this.updates.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  /** The edits of the message posted as `post`, oldest first. */
  editsOf(post: RecordedPost): MessageView[] {
    return this.updates.filter((u) => u.ref.messageId === post.ref.messageId).map((u) => u.view);
  }
}

/** A recording poster whose next `fails` posts fail with a fault that may pass (a 503 from the chat API). */
export class FlakyPoster extends RecordingPoster {
  constructor(
    surface: ChatPoster['surface'],
    at: Clock,
    public fails: number,
  ) {
    super(surface, at);
  }
  override async post(channel: string, view: MessageView): Promise<MessageRef> {
    if (this.fails > 0) {
      this.fails -= 1;
      throw new Error('503 from the chat API');
    }
    return super.post(channel, view);
  }
  retryable(): boolean {
    return true;
  }
}

/** The i-th element, or a thrown error naming what is missing. */
export function nth<T>(xs: readonly T[], i: number): T {
  const x = xs[i];
  if (x === undefined) throw new Error(`expected an element at ${i}, got ${xs.length} element(s)`);
  return x;
}

/** All text of a view (title and every span), for assertions on what a person reads. */
export function viewText(view: MessageView): string {
  const parts = [view.title];
  for (const block of view.blocks) {
    if (block.type === 'text' || block.type === 'context') parts.push(plainText(block.spans));
  }
  return parts.join('\n');
}

/** A notices service plus the outcomes it reported. */
export interface StartedNotices extends NoticeService {
  readonly outcomes: NoticeOutcome[];
}

/**
 * Relays a platform's events to its own listeners and can deliver recorded events again — what an
 * event source re-delivering after a restart looks like to the notices service.
 */
export class RelayPlatform implements DeployPlatform {
  readonly name: string;
  readonly seen: PlatformEvent[] = [];
  private readonly listeners = new Set<(e: PlatformEvent) => void>();
  private readonly off: () => void;

  constructor(private readonly inner: LocalPlatform) {
    this.name = inner.name;
    this.off = inner.subscribe((e) => {
      this.seen.push(e);
      for (const l of this.listeners) l(e);
    });
  }

  replay(events: readonly PlatformEvent[]): void {
    for (const e of events) for (const l of this.listeners) l(e);
  }

  listEnvironments = () => this.inner.listEnvironments();
  snapshot = (env: string) => this.inner.snapshot(env);
  getDeployment = (id: string) => this.inner.getDeployment(id);
  routing = (env: string) => this.inner.routing(env);
  rollback = (r: Parameters<DeployPlatform['rollback']>[0]) => this.inner.rollback(r);
  promote = (r: Parameters<DeployPlatform['promote']>[0]) => this.inner.promote(r);
  operation = (ref: OperationRef) => this.inner.operation(ref);
  health = () => this.inner.health();
  subscribe(listener: (e: PlatformEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  async close(): Promise<void> {
    this.off();
  }
}

/**
 * A replica of a polled adapter (Unkey, Vercel) whose poll rounds the test runs (deterministic), relaying
 * the events it emits to its listeners.
 */
export class PolledReplica implements DeployPlatform {
  readonly name: string;
  private readonly listeners = new Set<(e: PlatformEvent) => void>();

  constructor(readonly inner: DeployPlatform & { readonly eventPoller: SnapshotEventPoller | undefined }) {
    this.name = inner.name;
  }

  async pump(): Promise<PlatformEvent[]> {
    const poller = this.inner.eventPoller;
    if (!poller) throw new Error('events not configured');
    const events = await poller.pollOnce();
    for (const e of events) for (const l of this.listeners) l(e);
    return events;
  }

  listEnvironments = () => this.inner.listEnvironments();
  snapshot = (env: string) => this.inner.snapshot(env);
  getDeployment = (id: string) => this.inner.getDeployment(id);
  routing = (env: string) => this.inner.routing(env);
  rollback = (r: Parameters<DeployPlatform['rollback']>[0]) => this.inner.rollback(r);
  promote = (r: Parameters<DeployPlatform['promote']>[0]) => this.inner.promote(r);
  operation = (ref: OperationRef) => this.inner.operation(ref);
  health = () => this.inner.health();
  subscribe(listener: (e: PlatformEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  close = () => this.inner.close();
}

/** Resolves progress waiters as the worker reports. */
export class WaitingReporter implements Reporter {
  readonly reports: Progress[] = [];
  private waiters: { match: (p: Progress) => boolean; resolve: (p: Progress) => void }[] = [];

  async report(progress: Progress): Promise<void> {
    this.reports.push(progress);
    for (const w of [...this.waiters]) {
      if (w.match(progress)) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve(progress);
      }
    }
  }

  waitFor(match: (p: Progress) => boolean): Promise<Progress> {
    const seen = this.reports.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
}

export interface World {
  readonly clock: ManualClock;
  readonly platform: LocalPlatform;
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly audit: AuditLog;
  readonly flow: Flow;
  /** The queue `flow` enqueues switches on (e.g. `waitForEnd`: the job's last audit entry is written). */
  readonly queue: SwitchQueue;
  readonly chat: ChatService;
  readonly config: Config;
  readonly slack: RecordingPoster;
  /** Starts a notices service on this world's Redis prefix (posting to `slack` unless told otherwise). */
  notices(over?: Partial<NoticesOptions>): Promise<StartedNotices>;
  /**
   * Starts a switch worker whose time readings follow the manual clock (its waits are real and short);
   * `over` replaces some of its options (e.g. the platform it calls).
   */
  worker(reporter: Reporter, over?: Partial<SwitchWorkerOptions>): Promise<SwitchWorker>;
  /** Pushes to `environment`, lets the build finish on the clock, and waits until `notices` are idle. */
  pushAndBuild(
    environment: string,
    services: readonly NoticeService[],
    opts?: { fail?: boolean; message?: string; branch?: string },
  ): Promise<Deployment>;
  /** Switches the platform directly (as the dashboard would) and waits until `services` are idle. */
  switchDirectly(
    action: 'rollback' | 'promote',
    environment: string,
    targetId: string,
    services: readonly NoticeService[],
    by?: string,
  ): Promise<void>;
  /** Advances the clock and waits until `services` are idle. */
  advance(ms: number, services: readonly NoticeService[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * The world's platform as Unkey and Vercel look to the notices service: no `rolledBackAt`/`By`, no
 * history. `hold()` keeps its events back (a poll that has not run yet; `hold(false)` lets them through
 * again), `held` lists those kept back, `deliver` hands one over (what the poll then reports),
 * `missCurrent` makes reads miss the current deployment (an Unkey page without it: not rolled back,
 * nothing current).
 */
export function unkeyLike(world: World) {
  const inner = world.platform;
  const listeners = new Set<(e: PlatformEvent) => void>();
  const state = { holding: false, missing: false };
  const held: PlatformEvent[] = [];
  world.platform.subscribe((e) => {
    if (state.holding) held.push(e);
    else for (const l of listeners) l(e);
  });
  const platform: DeployPlatform = {
    name: 'unkey',
    listEnvironments: () => inner.listEnvironments(),
    async snapshot(env: string): Promise<EnvironmentSnapshot> {
      const snap = await inner.snapshot(env);
      const { rolledBackAt: _at, rolledBackBy: _by, currentDeploymentId, ...environment } = snap.environment;
      if (state.missing)
        return { ...snap, environment: { ...environment, rolledBack: false }, liveHistory: [] };
      return {
        ...snap,
        environment: {
          ...environment,
          ...(currentDeploymentId === undefined ? {} : { currentDeploymentId }),
        },
        liveHistory: [],
      };
    },
    getDeployment: (id) => inner.getDeployment(id),
    routing: (env) => inner.routing(env),
    rollback: (r) => inner.rollback(r),
    promote: (r) => inner.promote(r),
    operation: (ref) => inner.operation(ref),
    health: () => inner.health(),
    subscribe(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    close: async () => undefined,
  };
  return {
    platform,
    held,
    hold: (on = true) => {
      state.holding = on;
    },
    deliver: (e: PlatformEvent) => {
      for (const l of listeners) l(e);
    },
    missCurrent: (missing: boolean) => {
      state.missing = missing;
    },
  };
}

export async function idleAll(services: readonly NoticeService[]): Promise<void> {
  // Twice: a notice handled by one service may wake another's loop (shared Redis, shared platform).
  for (let i = 0; i < 2; i++) await Promise.all(services.map((s) => s.idle()));
}

export async function createWorld(
  opts: { environments?: Record<string, unknown>; env?: Record<string, string> } = {},
): Promise<World> {
  const clock = new ManualClock();
  const prefix = uniqueName('notices');
  const redis = createRedis(redisUrl());
  const platform = await LocalPlatform.open({
    clock,
    maintenance: false,
    buildTimeMs: BUILD_MS,
    reactivationTimeMs: 1_000,
  });
  const env = parseEnv({ REDIS_URL: redisUrl(), SLACK_ALERT_CHANNEL: 'C0ALERTS', ...opts.env });
  const file = fileConfigSchema.parse({ environments: opts.environments ?? {} });
  const config: Config = { env, file, platform: 'local' };
  const audit = new AuditLog(redis, { prefix });
  const plans = new PlanStore({ redis, prefix: `${prefix}:`, clock });
  const queue = new SwitchQueue({ redisUrl: redisUrl(), queueName: uniqueName('switch'), clock });
  await queue.waitUntilReady();
  const flow = new Flow({ platform, queue, plans, audit, config, clock });
  const chat = new ChatService({ flow, clock });
  const slack = new RecordingPoster('slack', clock);
  const started: NoticeService[] = [];
  const workers: SwitchWorker[] = [];

  const advance = async (ms: number, services: readonly NoticeService[]) => {
    await clock.advance(ms);
    await platform.settle();
    await idleAll(services);
  };

  return {
    clock,
    platform,
    redis,
    prefix,
    audit,
    flow,
    queue,
    chat,
    config,
    slack,
    async notices(over = {}) {
      const outcomes: NoticeOutcome[] = [];
      const service = await startNotices({
        platform,
        redis,
        posters: [slack],
        config,
        audit,
        clock,
        logger: silentLogger,
        prefix: `${prefix}:notices`,
        onOutcome: (o) => outcomes.push(o),
        ...over,
      });
      started.push(service);
      await service.idle();
      return Object.assign(service, { outcomes });
    },
    async worker(reporter, over = {}) {
      const worker = startSwitchWorker({
        redisUrl: redisUrl(),
        queueName: queue.queueName,
        platform,
        reporter,
        clock: { now: () => clock.now(), sleep: systemClock.sleep },
        verify: { timeoutMs: 10_000, intervalMs: 5 },
        lockDurationMs: 10_000,
        concurrency: 1,
        logger: silentLogger,
        audit,
        ...over,
      });
      workers.push(worker);
      await worker.worker.waitUntilReady();
      return worker;
    },
    async pushAndBuild(environment, services, o = {}) {
      const d = await platform.push({
        environment,
        ...(o.fail === undefined ? {} : { fail: o.fail }),
        ...(o.message === undefined ? {} : { message: o.message }),
        ...(o.branch === undefined ? {} : { branch: o.branch }),
      });
      await advance(BUILD_MS, services);
      return d;
    },
    async switchDirectly(action, environment, targetId, services, by = 'Dana (dashboard)') {
      const ref =
        action === 'rollback'
          ? await platform.rollback({ environment, targetId, requestedBy: by })
          : await platform.promote({ environment, targetId, requestedBy: by });
      for (;;) {
        const status = await platform.operation(ref);
        if (status.state === 'succeeded') break;
        if (status.state === 'failed') throw new Error(`switch failed: ${status.error?.message ?? ''}`);
        // A standby target is reactivated on the manual clock (reminder loops sleep on it too).
        if (status.state === 'reactivating') await clock.advance(1_000);
        else await new Promise<void>((r) => setImmediate(r));
      }
      await idleAll(services);
    },
    advance,
    async close() {
      for (const s of started) await s.stop();
      for (const w of workers) await w.close();
      await queue.obliterate();
      await queue.close();
      await platform.close();
      await deleteKeys(redis, await scanKeys(redis, `${prefix}*`));
      await redis.quit();
    },
  };
}
