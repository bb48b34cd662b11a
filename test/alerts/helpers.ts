/** Shared fixtures for the alert tests: an environment snapshot with a known live history. */

import { AlertDedupe, type AlertDedupeOptions } from '../../src/alerts/dedupe.js';
import {
  type ActiveJobs,
  AlertService,
  compositeSink,
  type LinkJobInput,
  type ResolvedInput,
  type SuggestionInput,
  type SuggestionSink,
  type SurfaceName,
} from '../../src/alerts/service.js';
import { type NormalizedAlert, normalizedAlert } from '../../src/alerts/types.js';
import { AuditLog } from '../../src/audit.js';
import { ChatService } from '../../src/chat.js';
import { type ChatPoster, suggestionSink } from '../../src/chat-sinks.js';
import { ManualClock } from '../../src/clock.js';
import { type Config, fileConfigSchema, parseEnv } from '../../src/config.js';
import type { Deployment, EnvironmentSnapshot, LiveEntry } from '../../src/domain/types.js';
import { PermanentChatError } from '../../src/errors.js';
import { Flow, type FlowQueue } from '../../src/flow.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { type PlanRecord, PlanStore } from '../../src/plan-store.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import type { DeployPlatform } from '../../src/platform/port.js';
import { UnkeyPlatform } from '../../src/platform/unkey/adapter.js';
import { VercelPlatform } from '../../src/platform/vercel/adapter.js';
import type { MessageRef } from '../../src/progress.js';
import { createRedis, deleteKeys, type RedisClient, scanKeys } from '../../src/redis.js';
import type { MessageView } from '../../src/views/types.js';
import { VercelFakeServer } from '../fakes/vercel-server.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { startAcmeUnkey } from '../support/unkey.js';

export const MINUTE = 60_000;

function deployment(id: string, createdAt: number, status: Deployment['status'] = 'ready'): Deployment {
  return {
    id,
    projectId: 'proj_1',
    environment: 'production',
    branch: 'main',
    commit: {
      sha: `${id.replace(/[^a-f0-9]/g, '')}${'0'.repeat(40)}`.slice(0, 40),
      message: id,
      author: 'ana',
    },
    createdAt,
    readyAt: createdAt + MINUTE,
    status,
  };
}

/**
 * production: dep_a (live 3 days ago), dep_b (live 1 day ago), dep_c (current, live `liveAgoMs` before
 * `now`). The default rollback target is dep_b.
 */
export function productionSnapshot(
  now: number,
  liveAgoMs = 7 * MINUTE,
  slug = 'production',
): EnvironmentSnapshot {
  const cSince = now - liveAgoMs;
  const deployments = [
    deployment('dep_c', cSince - 2 * MINUTE),
    deployment('dep_b', now - 1_440 * MINUTE - 2 * MINUTE, 'standby'),
    deployment('dep_a', now - 4_320 * MINUTE - 2 * MINUTE, 'standby'),
  ].map((d) => ({ ...d, environment: slug }));
  const liveHistory: LiveEntry[] = [
    { deploymentId: 'dep_a', since: now - 4_320 * MINUTE, via: 'deploy' },
    { deploymentId: 'dep_b', since: now - 1_440 * MINUTE, via: 'deploy' },
    { deploymentId: 'dep_c', since: cSince, via: 'deploy' },
  ];
  return {
    project: { id: 'proj_1', name: 'shop' },
    environment: {
      slug,
      kind: 'production',
      projectId: 'proj_1',
      rolledBack: false,
      currentDeploymentId: 'dep_c',
    },
    deployments,
    domains: [{ hostname: 'shop.example.com', stickiness: 'live', environment: slug, deploymentId: 'dep_c' }],
    liveHistory,
    readAt: now,
  };
}

/** A SuggestionSink that records every call (the real chat sinks belong to the Slack/Discord surfaces). */
export class RecordingSink implements SuggestionSink {
  readonly suggestions: SuggestionInput[] = [];
  readonly resolvedCalls: { refs: readonly MessageRef[]; input: ResolvedInput }[] = [];
  readonly links: LinkJobInput[] = [];
  /** Plan ids whose suggestions were rendered again (`refresh`). */
  readonly refreshes: string[] = [];
  /**
   * Each `refresh` with what the real sink would edit (the plan's undismissed suggestion messages while
   * the plan is not enqueued) and the plan's alerts then. Needs `flow` (createHarness sets it).
   */
  readonly refreshCalls: { planId: string; refs: MessageRef[]; alerts: NonNullable<PlanRecord['alerts']> }[] =
    [];
  flow: Flow | undefined;
  /** How many of the next `refresh` calls throw like a chat API outage (they are not recorded). */
  failRefresh = 0;
  /** When set, `suggest` waits for it (to race a RESOLVED alert against posting). */
  gate: Promise<void> | undefined;
  /** When true, `suggest` throws like a chat API outage. */
  failing = false;
  /** When true, `suggest` throws like a chat refusal no retry can change (the bot left the channel). */
  refusing = false;
  /** How many of the next `resolved` calls throw like a chat API outage (they are not recorded). */
  failResolved = 0;
  private counter = 0;

  async suggest(input: SuggestionInput): Promise<MessageRef[]> {
    this.suggestions.push(input);
    if (this.gate) await this.gate;
    if (this.failing) throw new Error('chat API unavailable');
    if (this.refusing) throw new PermanentChatError(new Error('not_in_channel'));
    return input.destinations.map((d) => ({
      surface: d.surface,
      channel: d.channel,
      messageId: `msg-${++this.counter}`,
      ...(d.threadId === undefined ? {} : { threadId: d.threadId }),
    }));
  }

  async resolved(refs: readonly MessageRef[], input: ResolvedInput): Promise<void> {
    if (this.failResolved > 0) {
      this.failResolved -= 1;
      throw new Error('chat API unavailable');
    }
    this.resolvedCalls.push({ refs, input });
  }

  async refresh(planId: string): Promise<void> {
    if (this.failRefresh > 0) {
      this.failRefresh -= 1;
      throw new Error('chat API unavailable');
    }
    this.refreshes.push(planId);
    const record = await this.flow?.get(planId);
    if (record === undefined) return;
    const refs =
      record.state === 'enqueued'
        ? []
        : (record.suggestions ?? []).flatMap((x) =>
            x.ref === undefined || x.dismissed === true ? [] : [x.ref],
          );
    this.refreshCalls.push({ planId, refs, alerts: record.alerts ?? [] });
  }

  async linkRunningJob(input: LinkJobInput): Promise<MessageRef[]> {
    this.links.push(input);
    return input.destinations.map((d) => ({ surface: d.surface, channel: d.channel, messageId: 'link-1' }));
  }
}

/** The demo's production went live 40 minutes before the ManualClock's start: an alert 33 minutes ago is 7 minutes after. */
export const DEMO_SENTENCE =
  'dep_4kq9wz went live 7 minutes before this alert started — roll back to dep_3hd7xa?';

export interface Harness {
  readonly clock: ManualClock;
  readonly platform: LocalPlatform;
  readonly flow: Flow;
  readonly plans: PlanStore;
  readonly sink: RecordingSink;
  readonly dedupe: AlertDedupe;
  readonly metrics: Metrics;
  readonly redis: RedisClient;
  readonly config: Config;
  readonly service: AlertService;
  readonly jobs: { active: { jobId: string; planId: string } | undefined } & ActiveJobs;
  /** With `memoryChat`: the real ChatService and in-memory Slack and Discord the real sinks post to. */
  readonly chat: ChatService;
  readonly slack: MemoryPoster;
  readonly discord: MemoryPoster;
  /** With `memoryChat`: awaited right after each plan read the sinks make (to pause an edit there). */
  afterSinkGet: (() => Promise<void>) | undefined;
  /** A firing generic alert for production, started 33 minutes ago (7 minutes after the go-live). */
  alert(fields?: Partial<NormalizedAlert>): NormalizedAlert;
  close(): Promise<void>;
}

/** A chat surface in memory: posts and edits land in `messages` (newest view and every version). */
export class MemoryPoster implements ChatPoster {
  readonly messages = new Map<string, { ref: MessageRef; view: MessageView; history: MessageView[] }>();
  /** How many of the next posts fail like an API outage. */
  failPost = 0;
  /** Awaited before each post (to hold it). */
  beforePost: (() => Promise<void>) | undefined;
  /** Awaited before each edit lands (to hold it). */
  beforeUpdate: ((ref: MessageRef) => Promise<void>) | undefined;
  /**
   * Channel names and their ids, as Slack resolves them: a post naming a channel (`#alerts`) lands in
   * the channel and answers with its id; an edit must name the channel by id (else channel_not_found).
   */
  readonly channelIds = new Map<string, string>();
  private n = 0;
  constructor(readonly surface: SurfaceName) {}
  async post(channel: string, view: MessageView, opts: { threadId?: string } = {}): Promise<MessageRef> {
    if (this.beforePost) await this.beforePost();
    if (this.failPost > 0) {
      this.failPost -= 1;
      throw new Error(`${this.surface} API unavailable`);
    }
    const ref: MessageRef = {
      surface: this.surface,
      channel: this.channelIds.get(channel) ?? channel,
      messageId: `${this.surface}-${++this.n}`,
      ...(opts.threadId === undefined ? {} : { threadId: opts.threadId }),
    };
    this.messages.set(ref.messageId, { ref, view, history: [view] });
    return ref;
  }
  async update(ref: MessageRef, view: MessageView): Promise<void> {
    if (this.beforeUpdate) await this.beforeUpdate(ref);
    if (this.channelIds.has(ref.channel)) throw new Error(`channel_not_found: ${ref.channel}`);
    this.apply(ref, view);
  }
  /** Shows `view` on the message, as a surface does with a click's `update`. */
  apply(ref: MessageRef, view: MessageView): void {
    const m = this.messages.get(ref.messageId);
    if (!m) throw new Error(`no message ${ref.messageId}`);
    m.view = view;
    m.history.push(view);
  }
  inChannel(channel: string): { ref: MessageRef; view: MessageView }[] {
    return [...this.messages.values()].filter((m) => m.ref.channel === channel);
  }
}

/** Everything a person reads in a view, as one string. */
export function viewText(view: MessageView | undefined): string {
  return JSON.stringify(view ?? null);
}

/** The labels of a view's buttons. */
export function buttonLabels(view: MessageView | undefined): string[] {
  return (view?.buttons ?? []).map((b) => b.label);
}

/** Flow's switch queue in the alert tests: it refuses to enqueue (they never confirm a plan). */
const NEVER_ENQUEUES: FlowQueue = {
  async enqueue() {
    throw new Error('the alert tests never confirm a plan');
  },
};

/** Real Redis, the local platform's demo project, the real Flow and PlanStore, a recording sink. */
export async function createHarness(
  opts: {
    file?: Record<string, unknown>;
    env?: Record<string, string>;
    dedupe?: AlertDedupeOptions;
    /** Post through the real suggestion sinks to in-memory Slack/Discord (these surfaces) instead. */
    memoryChat?: readonly SurfaceName[];
    /** With `memoryChat`: posters the real sinks use instead of the in-memory ones (a real SlackPoster). */
    posters?: { readonly slack?: ChatPoster; readonly discord?: ChatPoster };
    /** Flow's switch queue (default: one that refuses to enqueue: the alert tests never confirm). */
    queue?: FlowQueue;
  } = {},
): Promise<Harness> {
  const clock = new ManualClock();
  const prefix = uniqueName('alerts');
  const redis = createRedis(redisUrl());
  const platform = await LocalPlatform.open({ clock, maintenance: false });
  const file = fileConfigSchema.parse(
    opts.file ?? {
      environments: {
        production: { channels: { slack: 'C0ALERTS', discord: '123456789012' }, alertMatchers: ['checkout'] },
        preview: {},
      },
    },
  );
  const config: Config = { env: parseEnv(opts.env ?? {}), file, platform: 'local' };
  const plans = new PlanStore({ redis, prefix: `${prefix}:`, clock });
  const flow = new Flow({
    platform,
    queue: opts.queue ?? NEVER_ENQUEUES,
    plans,
    audit: new AuditLog(redis, { prefix }),
    config,
    clock,
    // As handlers/app.ts wires it: a replaced plan's suggestions are shown closed.
    onPlanReplaced: (old) => service.closeSuggestions(old),
  });
  const sink = new RecordingSink();
  sink.flow = flow;
  const chat = new ChatService({ flow, clock, onPlanClosed: (id) => service.refreshSuggestions(id) });
  const slack = new MemoryPoster('slack');
  const discord = new MemoryPoster('discord');
  const hooks = { afterSinkGet: undefined as (() => Promise<void>) | undefined };
  // The sinks read plans through this view of Flow, so a test can hold an edit right after its read.
  const sinkFlow = new Proxy(flow, {
    get(target, prop, receiver) {
      if (prop === 'get')
        return async (id: string) => {
          const record = await target.get(id);
          if (hooks.afterSinkGet) await hooks.afterSinkGet();
          return record;
        };
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const memory = opts.memoryChat;
  const chosen: SuggestionSink = memory
    ? compositeSink({
        ...(memory.includes('slack')
          ? { slack: suggestionSink(opts.posters?.slack ?? slack, chat, sinkFlow) }
          : {}),
        ...(memory.includes('discord')
          ? { discord: suggestionSink(opts.posters?.discord ?? discord, chat, sinkFlow) }
          : {}),
      })
    : sink;
  const dedupe = new AlertDedupe(redis, { prefix, ...opts.dedupe });
  const metrics = createMetrics();
  const jobs = {
    active: undefined as { jobId: string; planId: string } | undefined,
    async activeForEnvironment(environment: string) {
      return environment === 'production' ? this.active : undefined;
    },
  };
  const service = new AlertService({
    platform,
    flow,
    sink: chosen,
    dedupe,
    config,
    jobs,
    clock,
    metrics,
    ...(memory ? { surfaces: memory } : {}),
  });
  return {
    chat,
    slack,
    discord,
    get afterSinkGet() {
      return hooks.afterSinkGet;
    },
    set afterSinkGet(f: (() => Promise<void>) | undefined) {
      hooks.afterSinkGet = f;
    },
    alert(fields: Partial<NormalizedAlert> = {}) {
      return normalizedAlert({
        source: 'generic',
        status: 'firing',
        title: 'Checkout 5xx above 5%',
        fingerprint: 'incident-1',
        startedAt: clock.now() - 33 * MINUTE,
        labels: { env: 'production' },
        text: '',
        ...fields,
      });
    },
    clock,
    platform,
    flow,
    plans,
    sink,
    dedupe,
    metrics,
    redis,
    config,
    service,
    jobs,
    async close() {
      await platform.close();
      await deleteKeys(redis, await scanKeys(redis, `${prefix}*`));
      redis.disconnect();
    },
  };
}

/** Current value of `switchyard_alerts_total{source,outcome}`. */
export async function alertCount(metrics: Metrics, outcome: string, source?: string): Promise<number> {
  const data = await metrics.alerts.get();
  return data.values
    .filter((v) => v.labels.outcome === outcome && (source === undefined || v.labels.source === source))
    .reduce((sum, v) => sum + v.value, 0);
}

/**
 * The real AlertService, Flow and PlanStore (real Redis) over `platform`, e.g. Unkey or Vercel against
 * their fake servers, with a recording sink and production's alerts going to `C0ALERTS` on Slack.
 */
export function alertServiceOn(
  platform: DeployPlatform,
  clock: ManualClock,
  platformName: Config['platform'],
): { service: AlertService; sink: RecordingSink; flow: Flow; audit: AuditLog; close(): Promise<void> } {
  const prefix = uniqueName('alerts-remote');
  const redis = createRedis(redisUrl());
  const file = fileConfigSchema.parse({
    environments: { production: { channels: { slack: 'C0ALERTS' }, alertMatchers: ['checkout'] } },
  });
  const config: Config = { env: parseEnv({}), file, platform: platformName };
  const plans = new PlanStore({ redis, prefix: `${prefix}:`, clock });
  const audit = new AuditLog(redis, { prefix });
  const flow = new Flow({ platform, queue: NEVER_ENQUEUES, plans, audit, config, clock });
  const sink = new RecordingSink();
  sink.flow = flow;
  const dedupe = new AlertDedupe(redis, { prefix });
  const service = new AlertService({ platform, flow, sink, dedupe, config, clock, surfaces: ['slack'] });
  return {
    service,
    sink,
    flow,
    audit,
    async close() {
      await service.idle();
      await deleteKeys(redis, await scanKeys(redis, `${prefix}*`));
      redis.disconnect();
    },
  };
}

/**
 * Production on the fake Unkey (`acme/api`) after an automatic deploy, and the UnkeyPlatform reading it,
 * on one ManualClock: d1 live since long ago; d2 pushed, built for 3 minutes, then ready (live)
 * `liveAgoMs` before the clock's time. Both are closed by `closers`.
 */
export async function unkeyAfterAutoDeploy(
  closers: (() => Promise<void>)[],
  opts: { readonly key: string; readonly liveAgoMs: number } & Omit<
    Parameters<typeof startAcmeUnkey>[1],
    'clock'
  >,
) {
  const { key, liveAgoMs, ...fake } = opts;
  const prod = { project: 'acme', app: 'api', environment: 'production' } as const;
  const clock = new ManualClock();
  const server = await startAcmeUnkey(key, { clock, ...fake });
  closers.push(() => server.close());
  const d1 = server.push({ ...prod, branch: 'main' });
  await clock.advance(3 * 60 * MINUTE);
  const d2 = server.push({ ...prod, branch: 'main', status: 'building' });
  await clock.advance(3 * MINUTE);
  server.setStatus(d2, 'ready');
  await clock.advance(liveAgoMs);
  const platform = new UnkeyPlatform({
    environments: { production: prod },
    client: { baseUrl: server.url, rootKey: key, clock, timeoutMs: 5_000, maxRetries: 0 },
    clock,
  });
  closers.push(() => platform.close());
  return { clock, server, platform, d1, d2 };
}

/**
 * Production of the fake Vercel's project `acme-web` (shop.acme.com, a personal token) after an
 * automatic deploy, and the VercelPlatform reading it, on one ManualClock: d1 live since long ago; d2
 * built for 3 minutes, then ready (live) `liveAgoMs` before the clock's time. Both are closed by
 * `closers`.
 */
export async function vercelAfterAutoDeploy(
  closers: (() => Promise<void>)[],
  opts: { readonly token: string; readonly liveAgoMs: number; readonly aliasJobReads?: number },
) {
  const { token, liveAgoMs, ...fake } = opts;
  const clock = new ManualClock();
  const server = await VercelFakeServer.start({ clock, tokens: { [token]: ['personal'] }, ...fake });
  closers.push(() => server.close());
  const projectId = server.addProject({ name: 'acme-web', domains: [{ name: 'shop.acme.com' }] });
  const d1 = server.deploy({ project: projectId });
  await clock.advance(3 * 60 * MINUTE);
  const d2 = server.deploy({ project: projectId, readyState: 'BUILDING' });
  await clock.advance(3 * MINUTE);
  server.setReadyState(d2, 'READY');
  await clock.advance(liveAgoMs);
  const platform = new VercelPlatform({
    project: 'acme-web',
    client: { baseUrl: server.url, token, timeoutMs: 5_000, maxRetries: 0 },
    clock,
  });
  closers.push(() => platform.close());
  return { clock, server, platform, projectId, d1, d2 };
}
