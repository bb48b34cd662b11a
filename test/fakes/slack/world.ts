/**
 * One whole Slack deployment of Switchyard in a process, for end-to-end tests and the ack benchmark:
 * the fake Slack Web API, the REAL Bolt app mounted on the shared HTTP server, real Redis, the real
 * switch queue and worker, the real LocalPlatform (or a wrapper of it), Flow, and a signed-request
 * sender. `close()` stops everything in reverse order.
 */
import type { ChannelMessage } from '../../../handlers/slack/context.js';
import { type SlackSurface, startSlack } from '../../../handlers/slack/index.js';
import { type SwitchWorker, startSwitchWorker } from '../../../jobs/switch-worker.js';
import { AuditLog } from '../../../src/audit.js';
import { systemClock } from '../../../src/clock.js';
import { type Config, fileConfigSchema } from '../../../src/config.js';
import { Flow } from '../../../src/flow.js';
import { HttpServer } from '../../../src/http.js';
import { type Logger, silentLogger } from '../../../src/log.js';
import { createMetrics, type Metrics } from '../../../src/metrics.js';
import { PlanStore } from '../../../src/plan-store.js';
import { LocalPlatform } from '../../../src/platform/local/platform.js';
import type { DeployPlatform } from '../../../src/platform/port.js';
import { SwitchQueue } from '../../../src/queue.js';
import { createRedis, type RedisClient } from '../../../src/redis.js';
import { SlackRequests } from './requests.js';
import { FakeSlack, type FakeSlackOptions } from './server.js';

export const WORLD_SECRET = 'world-signing-secret';
export const WORLD_CHANNEL = 'C0PROD';

export interface World {
  readonly fake: FakeSlack;
  readonly requests: SlackRequests;
  readonly platform: LocalPlatform;
  readonly flow: Flow;
  readonly queue: SwitchQueue;
  readonly surface: SlackSurface;
  readonly metrics: Metrics;
  readonly redis: RedisClient;
  readonly http: HttpServer;
  close(): Promise<void>;
}

export interface WorldOptions {
  readonly redisUrl: string;
  /** A fresh name per world (queue, key prefixes). */
  readonly name: string;
  /** The `environments` part of the config file. */
  readonly environments?: Record<string, unknown>;
  readonly platformName?: Config['platform'];
  /** Wraps the LocalPlatform that Flow and the worker see (slow or faulty platforms). */
  readonly wrapPlatform?: (local: LocalPlatform) => DeployPlatform;
  readonly fake?: FakeSlackOptions;
  readonly worker?: boolean;
  readonly onChannelMessage?: (message: ChannelMessage) => Promise<void>;
  readonly logger?: Logger;
  readonly progressIntervalMs?: number;
  /** Connect over Socket Mode (app-level token) instead of mounting the HTTP receiver. */
  readonly socketMode?: boolean;
  /** How long one call to the fake Slack may take (default: the app's 10 s). */
  readonly callTimeoutMs?: number;
  /** After-ack tasks running at once (default: the surface's 8). */
  readonly workConcurrency?: number;
}

/** Starts a world (see the module header). */
export async function startWorld(opts: WorldOptions): Promise<World> {
  const closers: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const c of closers.splice(0).reverse()) await c();
  };
  try {
    const fake = await new FakeSlack({
      usergroups: { S0OPS: ['U0CAROL'] },
      // The bot was invited to this channel only; posting elsewhere fails like Slack does.
      channels: { [WORLD_CHANNEL]: 'incidents' },
      ...opts.fake,
    }).start();
    closers.push(() => fake.close());
    const redis = createRedis(opts.redisUrl);
    closers.push(() => redis.quit());
    const local = await LocalPlatform.open({
      clock: systemClock,
      maintenance: false,
      reactivationTimeMs: 20,
    });
    closers.push(() => local.close());
    const platform = opts.wrapPlatform ? opts.wrapPlatform(local) : local;
    const audit = new AuditLog(redis, { prefix: opts.name });
    const plans = new PlanStore({ redis, prefix: `${opts.name}:`, clock: systemClock });
    const queue = new SwitchQueue({
      redisUrl: opts.redisUrl,
      queueName: opts.name,
      audit,
      retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 },
    });
    closers.push(async () => {
      await queue.obliterate();
      await queue.close();
    });
    await queue.waitUntilReady();
    const platformName = opts.platformName ?? 'local';
    const config = {
      platform: platformName,
      file: fileConfigSchema.parse({ platform: platformName, environments: opts.environments ?? {} }),
    };
    const logger = opts.logger ?? silentLogger;
    const flow = new Flow({ platform, queue, plans, audit, config, clock: systemClock, logger });
    const metrics = createMetrics();
    const http = new HttpServer();
    const surface = startSlack({
      botToken: fake.token,
      ...(opts.socketMode === true ? { appToken: fake.appToken } : { signingSecret: WORLD_SECRET, http }),
      apiUrl: fake.apiUrl,
      redis,
      keyPrefix: `${opts.name}:`,
      flow,
      config,
      metrics,
      logger,
      progressIntervalMs: opts.progressIntervalMs ?? 0,
      ...(opts.onChannelMessage === undefined ? {} : { onChannelMessage: opts.onChannelMessage }),
      ...(opts.callTimeoutMs === undefined ? {} : { callTimeoutMs: opts.callTimeoutMs }),
      ...(opts.workConcurrency === undefined ? {} : { workConcurrency: opts.workConcurrency }),
    });
    const port = await http.listen(0);
    closers.push(async () => {
      await surface.stop();
      await http.close();
    });
    await surface.slack.start();
    if (opts.worker !== false) {
      const worker: SwitchWorker = startSwitchWorker({
        redisUrl: opts.redisUrl,
        queueName: opts.name,
        platform,
        reporter: surface.reporter,
        clock: systemClock,
        verify: { timeoutMs: 5_000, intervalMs: 5 },
        lockDurationMs: 5_000,
        concurrency: 2,
        logger,
        metrics,
        audit,
        retry: { baseDelayMs: 5, maxDelayMs: 20 },
        lockRetryMs: 50,
      });
      closers.push(() => worker.close());
      await worker.worker.waitUntilReady();
    }
    const requests = new SlackRequests(`http://127.0.0.1:${port}/slack/events`, WORLD_SECRET, fake);
    return { fake, requests, platform: local, flow, queue, surface, metrics, redis, http, close };
  } catch (e) {
    await close();
    throw e;
  }
}
