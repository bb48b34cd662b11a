/**
 * Several Slack bot replicas (HTTP mode) the way a scaled-out deployment runs them: each its own HTTP
 * server, Redis connection, Flow, PlanStore, queue producer and Slack surface, all on one Redis
 * namespace, one fake Slack and one deploy platform (the embedded LocalPlatform standing in for a
 * remote one every replica reaches), with the switch worker in another process (`npm run worker`: its
 * own Slack reporter). Each replica reaches Slack through its own HoldingProxy, so a test can make one
 * replica's call to Slack land late.
 */
import { type SlackSurface, startSlack } from '../../handlers/slack/index.js';
import { createReporterClient, SlackReporter } from '../../handlers/slack/reporter.js';
import { type SwitchWorker, startSwitchWorker } from '../../jobs/switch-worker.js';
import { AuditLog } from '../../src/audit.js';
import { ChatService } from '../../src/chat.js';
import { systemClock } from '../../src/clock.js';
import { fileConfigSchema } from '../../src/config.js';
import { Flow, type FlowQueue } from '../../src/flow.js';
import { HttpServer } from '../../src/http.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { PlanStore } from '../../src/plan-store.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import type { DeployPlatform } from '../../src/platform/port.js';
import { SwitchQueue } from '../../src/queue.js';
import { createRedis } from '../../src/redis.js';
import { SlackRequests } from '../fakes/slack/requests.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { HoldingProxy } from '../support/holding-proxy.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { testWorkerOptions } from '../support/switch-worker.js';

export const REPLICAS_SECRET = 'replicas-signing-secret';
export const REPLICAS_CHANNEL = 'C0PROD';

export interface Replica {
  readonly flow: Flow;
  /** This replica's queue producer (unwrapped). */
  readonly queue: SwitchQueue;
  readonly surface: SlackSurface;
  /** Signed Slack requests (commands, clicks) delivered to this replica. */
  readonly requests: SlackRequests;
  /** Between this replica and Slack. */
  readonly proxy: HoldingProxy;
}

export interface Replicas {
  readonly fake: FakeSlack;
  /** A bot replica (no worker: SWITCHYARD_WORKER=off). `queue` wraps what its Flow enqueues with. */
  replica(opts?: { queue?: (real: SwitchQueue) => FlowQueue }): Promise<Replica>;
  /** A switch worker in a process of its own, editing Slack with its own reporter. */
  worker(): Promise<SwitchWorker>;
  close(): Promise<void>;
}

export async function startReplicas(
  opts: {
    /** The config file's `environments`. */
    environments?: Record<string, unknown>;
    /** What every replica and the worker see of the platform (e.g. a switch held at a gate). */
    platform?: (local: LocalPlatform) => DeployPlatform;
  } = {},
): Promise<Replicas> {
  const closers: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  };
  try {
    const name = uniqueName('slack-replicas');
    const fake = await new FakeSlack({ channels: { [REPLICAS_CHANNEL]: 'incidents' } }).start();
    closers.push(() => fake.close());
    const local = await LocalPlatform.open({
      clock: systemClock,
      maintenance: false,
      reactivationTimeMs: 20,
    });
    closers.push(() => local.close());
    const platform = opts.platform ? opts.platform(local) : local;
    const config = {
      platform: 'local' as const,
      file: fileConfigSchema.parse({ platform: 'local', environments: opts.environments ?? {} }),
    };
    const cleanup = new SwitchQueue({ redisUrl: redisUrl(), queueName: name });
    closers.push(async () => {
      await cleanup.obliterate();
      await cleanup.close();
    });

    const replica = async (ropts: { queue?: (real: SwitchQueue) => FlowQueue } = {}): Promise<Replica> => {
      const redis = createRedis(redisUrl());
      closers.push(() => redis.quit());
      const audit = new AuditLog(redis, { prefix: name });
      const plans = new PlanStore({ redis, prefix: `${name}:`, clock: systemClock });
      const queue = new SwitchQueue({ redisUrl: redisUrl(), queueName: name, audit });
      closers.push(() => queue.close());
      await queue.waitUntilReady();
      const flow = new Flow({
        platform,
        queue: ropts.queue ? ropts.queue(queue) : queue,
        plans,
        audit,
        config,
        clock: systemClock,
        logger: silentLogger,
      });
      const proxy = await HoldingProxy.start(fake.apiUrl);
      closers.push(() => proxy.close());
      const http = new HttpServer();
      const surface = startSlack({
        botToken: fake.token,
        signingSecret: REPLICAS_SECRET,
        http,
        apiUrl: proxy.rebase(fake.apiUrl),
        redis,
        keyPrefix: `${name}:`,
        flow,
        chat: new ChatService({ flow, clock: systemClock }),
        config,
        metrics: createMetrics(),
        logger: silentLogger,
        progressIntervalMs: 0,
      });
      const port = await http.listen(0);
      closers.push(async () => {
        await surface.stop();
        await http.close();
      });
      await surface.slack.start();
      // First thing at close: held calls go on, so that stopping the surface does not wait for them.
      closers.push(async () => proxy.releaseAll());
      const requests = new SlackRequests(`http://127.0.0.1:${port}/slack/events`, REPLICAS_SECRET, fake);
      return { flow, queue, surface, requests, proxy };
    };

    const worker = async (): Promise<SwitchWorker> => {
      const redis = createRedis(redisUrl());
      closers.push(() => redis.quit());
      const reporter = new SlackReporter({
        client: createReporterClient(fake.token, fake.apiUrl),
        minIntervalMs: 0,
      });
      const started = startSwitchWorker(
        testWorkerOptions({
          queueName: name,
          platform,
          reporter,
          audit: new AuditLog(redis, { prefix: name }),
          retry: { baseDelayMs: 5, maxDelayMs: 20 },
          lockRetryMs: 50,
        }),
      );
      closers.push(async () => {
        await started.close();
        await reporter.flush();
      });
      await started.worker.waitUntilReady();
      return started;
    };

    return { fake, replica, worker, close };
  } catch (e) {
    await close();
    throw e;
  }
}
