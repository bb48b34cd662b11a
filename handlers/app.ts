/**
 * The composition root: builds every part from the configuration and wires them together — Redis
 * (spawned when REDIS_URL is unset), the deploy platform (embedded local platform with its router, or
 * Unkey), the switch queue and worker, Flow, the chat surfaces (console, Slack, Discord), alert webhooks,
 * deployment notices, and health/readiness/metrics on the one HTTP port. `stop()` shuts everything down
 * in reverse order: no orphan process, no lost job.
 *
 * Progress reaches chat along two paths (docs/jobs.md, "Scaling out"): the worker running a job edits
 * its Slack and Discord messages through its own Reporter (this process's worker, or `npm run worker`),
 * built from the surfaces started here (so every process whose worker is on needs each surface's
 * token; Discord without a second gateway session: `DISCORD_GATEWAY=off`), and every bot process
 * follows all jobs' published progress to edit its console messages, which exist only in its memory.
 * With `SWITCHYARD_WORKER=off` the process runs no worker at all.
 */
import { join } from 'node:path';
import { type SwitchWorker, startSwitchWorker } from '../jobs/switch-worker.js';
import { AlertDedupe } from '../src/alerts/dedupe.js';
import { parseAlertPayload } from '../src/alerts/parsers.js';
import { AlertService, compositeSink, type SuggestionSink } from '../src/alerts/service.js';
import { AuditLog } from '../src/audit.js';
import { ChatService } from '../src/chat.js';
import { type ChatPoster, suggestionSink } from '../src/chat-sinks.js';
import { type Clock, systemClock, within } from '../src/clock.js';
import { type Config, consoleEnabled, localHttpUrl } from '../src/config.js';
import { ConfigError, redisUnavailable } from '../src/errors.js';
import { Flow } from '../src/flow.js';
import { HttpServer, sendJson, sendText } from '../src/http.js';
import { type Logger, maskCredentials } from '../src/log.js';
import { createMetrics, type Metrics } from '../src/metrics.js';
import { startNotices } from '../src/notices.js';
import { PlanStore } from '../src/plan-store.js';
import { createLocalApi } from '../src/platform/local/http-api.js';
import { LocalPlatform, type TrafficPlane } from '../src/platform/local/platform.js';
import { TrafficRouter } from '../src/platform/local/router.js';
import type { DeployPlatform } from '../src/platform/port.js';
import { createUnkeyPlatform } from '../src/platform/unkey/adapter.js';
import { createVercelPlatform } from '../src/platform/vercel/adapter.js';
import type { Reporter, Surface } from '../src/progress.js';
import { SwitchQueue } from '../src/queue.js';
import {
  createRedis,
  createRequestRedis,
  type RedisAnswerWatch,
  type RedisClient,
  redactRedisUrl,
  redisReady,
  watchRedis,
} from '../src/redis.js';
import { checkRedis, clusterMismatch } from '../src/redis-check.js';
import { type SpawnedRedis, spawnRedis } from '../src/redis-server.js';
import { isClusterUrl, keyNamespace } from '../src/redis-url.js';
import { registerConsole } from './console/routes.js';
import { ConsoleSurface } from './console/surface.js';
import { followProgress } from './follow.js';
import { compositeReporter } from './reporters.js';
import { registerAlertWebhooks } from './webhooks/alerts.js';

export const QUEUE_NAME = 'switchyard-switch';

/** How long `/readyz` waits for Redis and the platform before it reports them as not answering. */
export const READY_CHECK_MS = 2_000;
/**
 * How often each bot process looks for plans whose hour ran out unclicked, to show them expired: a
 * lapsed plan keeps its buttons at most this long (a click meanwhile says it expired). One sorted-set
 * read per sweep.
 */
export const PLAN_EXPIRY_SWEEP_MS = 15_000;

/** What `/readyz` says about the worker of a process started with `SWITCHYARD_WORKER=off`. */
export const WORKER_OFF = 'not run here (SWITCHYARD_WORKER=off)';

export interface StartOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Where the spawned Redis and the local platform's state live. */
  readonly dataDir: string;
  /** Install redis-server with apt when missing (root on Debian). */
  readonly installRedis?: boolean;
  readonly metrics?: Metrics;
  /**
   * Prefix of every Redis key and queue name (tests and several installations sharing one Redis);
   * default `switchyard`. On a Redis Cluster it is hash-tagged (`{switchyard}`) unless it carries a tag.
   */
  readonly namespace?: string;
  /** How long start-up waits for Redis to accept connections before it fails (default 10 s). */
  readonly redisTimeoutMs?: number;
  /** How often the Redis watchdog PINGs, and how long a PING may go unanswered (src/redis.ts `watchRedis`). */
  readonly redisWatch?: Pick<RedisAnswerWatch, 'intervalMs' | 'timeoutMs'>;
  /** How often to look for expired plans (default `PLAN_EXPIRY_SWEEP_MS`; tests make it short). */
  readonly planExpirySweepMs?: number;
}

export interface RunningSwitchyard {
  readonly port: number;
  readonly routerPort: number | undefined;
  readonly redisUrl: string;
  /**
   * Redis key prefix and BullMQ prefix of the switch queue (what a separate worker's `--prefix` must be;
   * hash-tagged on a Redis Cluster, where a worker given the untagged name tags it the same way).
   */
  readonly namespace: string;
  /** The switch queue's name (what a separate worker's `--queue` must be). */
  readonly queueName: string;
  /** Whether this process runs a switch worker (`SWITCHYARD_WORKER`). */
  readonly workerRunning: boolean;
  readonly consoleUrl: string | undefined;
  readonly platform: DeployPlatform;
  readonly flow: Flow;
  /** What every surface does with commands and clicks (`idle()`: its background edits are done). */
  readonly chat: ChatService;
  readonly surfaces: readonly string[];
  stop(): Promise<void>;
}

/** Optional surfaces register themselves through this hook (Slack, Discord). */
export interface SurfaceContext {
  readonly config: Config;
  /** Prefix of Redis keys (see StartOptions.namespace); surfaces put their own keys under it. */
  readonly namespace: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: Clock;
  readonly http: HttpServer;
  readonly redis: RedisClient;
  readonly redisUrl: string;
  readonly flow: Flow;
  readonly chat: ChatService;
  readonly platform: DeployPlatform;
  readonly queue: SwitchQueue;
  readonly alerts: () => AlertService | undefined;
}

export interface SurfaceHandle {
  readonly surface: Surface;
  readonly reporter?: Reporter;
  readonly poster?: ChatPoster;
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Whether the surface is connected to its chat service now: `connected`, or what it is waiting for
   * (shown by /readyz; a surface that cannot reach its chat service keeps retrying by itself).
   */
  connection?(): string;
}

/** `connection()`'s text for a surface status shaped like Slack's and Discord's (ready / waiting / rejected). */
export function describeConnection(status: { readonly state: string; readonly problem?: string }): string {
  return status.state === 'ready' ? 'connected' : `${status.state}: ${status.problem ?? 'unknown'}`;
}

export type SurfaceFactory = (ctx: SurfaceContext) => Promise<SurfaceHandle | undefined>;

/**
 * Chat surfaces the configuration names channels on (`SLACK_ALERT_CHANNEL`, `DISCORD_ALERT_CHANNEL`,
 * `environments.<env>.channels`) that this process has not started: with several replicas, one
 * without a surface's token posts nothing there for the webhooks it receives and the notices it
 * claims (another replica does not make up for it), so start-up warns.
 */
export function unpostedSurfaces(
  config: Pick<Config, 'env' | 'file'>,
  started: readonly string[],
): { readonly surface: 'slack' | 'discord'; readonly token: string; readonly keys: string[] }[] {
  const out: { surface: 'slack' | 'discord'; token: string; keys: string[] }[] = [];
  for (const [surface, token, envKey] of [
    ['slack', 'SLACK_BOT_TOKEN', 'SLACK_ALERT_CHANNEL'],
    ['discord', 'DISCORD_TOKEN', 'DISCORD_ALERT_CHANNEL'],
  ] as const) {
    if (started.includes(surface)) continue;
    const keys = [
      ...(config.env[envKey] === undefined ? [] : [envKey]),
      ...Object.entries(config.file.environments).flatMap(([name, e]) =>
        e.channels[surface] === undefined ? [] : [`environments.${name}.channels.${surface}`],
      ),
    ];
    if (keys.length > 0) out.push({ surface, token, keys });
  }
  return out;
}

/** Starts Switchyard; resolves once it is ready to take commands. */
export async function startSwitchyard(
  opts: StartOptions,
  surfaceFactories: readonly SurfaceFactory[] = [],
): Promise<RunningSwitchyard> {
  const { config, logger } = opts;
  const env = config.env;
  const consoleOn = consoleEnabled(env, config.platform);
  const clock = opts.clock ?? systemClock;
  const metrics = opts.metrics ?? createMetrics({ defaults: true });
  const name = opts.namespace ?? 'switchyard';
  const queueName = name === 'switchyard' ? QUEUE_NAME : `${name.replace(/[{}]/g, '')}-switch`;
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (e) {
        logger.warn({ err: e }, 'shutdown step failed');
      }
    }
    cleanups.length = 0;
  };

  try {
    // Redis
    let spawned: SpawnedRedis | undefined;
    let redisUrl = env.REDIS_URL;
    if (!redisUrl) {
      spawned = await spawnRedis({
        dir: join(opts.dataDir, 'redis'),
        installIfMissing: opts.installRedis ?? false,
        log: (line) => logger.info(line),
        warn: (line) => logger.error(line),
      });
      redisUrl = spawned.url;
      cleanups.push(() => spawned?.stop() ?? Promise.resolve());
      logger.info({ redis: redisUrl, aof: true }, 'started a private redis-server');
    }
    // Two connections (src/redis.ts): a patient one for background work that must survive a blip
    // (notices, platform pollers, the in-process worker's audit entries), and a fail-fast one for what
    // answers a person or a sender (commands, clicks, webhooks, /readyz), so that an unreachable Redis
    // gets a prompt "try again" instead of a request that hangs until Redis is back.
    const redis = createRedis(redisUrl);
    const requestRedis = createRequestRedis(redisUrl);
    // A Redis that hangs (stopped, cut off by a partition) fires no connection event: the watchdog
    // PINGs it on the fail-fast connection and says so (and /readyz at once).
    const watch = watchRedis(redis, logger, 'redis', { probe: requestRedis, ...opts.redisWatch });
    cleanups.push(async () => {
      watch.stop();
      redis.disconnect();
      requestRedis.disconnect();
    });
    requestRedis.on('error', () => undefined); // each failed command reports it; /readyz shows the state
    await redisReady(
      requestRedis,
      opts.redisTimeoutMs ?? 10_000,
      `Redis at ${redactRedisUrl(redisUrl)}${env.REDIS_URL ? ' (REDIS_URL)' : ''}`,
    );
    const mismatch = await clusterMismatch(requestRedis);
    if (mismatch !== undefined) throw new ConfigError(mismatch, { key: 'REDIS_URL' });
    for (const w of await checkRedis(redis)) logger.warn({ redisWarning: w }, `Redis: ${w.message}`);
    // Every key under one namespace; on a cluster one hash slot (src/redis-url.ts).
    const ns = keyNamespace(name, isClusterUrl(redisUrl));

    // Deploy platform
    let platform: DeployPlatform;
    let routerPort: number | undefined;
    let local: LocalPlatform | undefined;
    if (config.platform === 'local') {
      let api:
        | ((req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void)
        | undefined;
      const router = new TrafficRouter({
        port: env.LOCAL_ROUTER_PORT,
        host: env.HOST,
        clock,
        operator: (req, res) => {
          if (api) api(req, res);
          else sendJson(res, 503, { error: 'starting', message: 'local platform is starting' });
        },
        // A request to a preview deployment idled by the six-hour rule wakes it.
        wake: (id) => local?.wake(id) ?? Promise.resolve(false),
      });
      cleanups.push(() => router.close());
      const traffic: TrafficPlane = router;
      local = await LocalPlatform.open({
        clock,
        stateFile: config.file.local.stateFile ?? join(opts.dataDir, 'local-platform.json'),
        ...(config.file.local.seed === undefined ? {} : { seed: config.file.local.seed }),
        buildTimeMs: config.file.local.buildTime,
        reactivationTimeMs: config.file.local.reactivationTime,
        traffic,
        logger,
      });
      cleanups.push(() => local?.close() ?? Promise.resolve());
      api = createLocalApi(local);
      // Only now, with the state loaded, every running deployment's upstream started and the routes
      // installed: a router listening sooner told visitors a live domain was unknown (404) while the
      // platform started.
      routerPort = await router.listen();
      platform = local;
    } else if (config.platform === 'unkey') {
      platform = createUnkeyPlatform(config, {
        clock,
        logger,
        events: { redis, keyPrefix: `${ns}:unkey:poll` },
      });
      cleanups.push(() => platform.close());
    } else {
      platform = createVercelPlatform(config, {
        clock,
        logger,
        events: { redis, keyPrefix: `${ns}:vercel:poll` },
      });
      cleanups.push(() => platform.close());
    }

    // Queue, plans, audit, flow
    const audit = new AuditLog(requestRedis, { prefix: ns });
    const workerAudit = new AuditLog(redis, { prefix: ns });
    // Flow audits requests itself; the queue's own `requested` entry would duplicate it.
    const queue = new SwitchQueue({ redisUrl, queueName, prefix: ns, clock, logger, failFast: true });
    cleanups.push(() => queue.close());
    const plans = new PlanStore({ redis: requestRedis, clock, prefix: `${ns}:`, logger });
    let alertService: AlertService | undefined;
    const flow = new Flow({
      platform,
      queue,
      plans,
      audit,
      config,
      clock,
      logger,
      // A finished plan replaced by a new request for the same switch: its suggestions say closed.
      onPlanReplaced: (old) => alertService?.closeSuggestions(old),
    });
    // Every surface's poster, filled in as the surfaces start below.
    const posters: Partial<Record<Surface, ChatPoster>> = {};
    // A plan closed by a click (cancelled, dismissed, stale, expired), or made to wait for approval:
    // its other messages (through the posters) and its alert suggestions on every surface say so, not
    // only the message clicked.
    const chat = new ChatService({
      flow,
      clock,
      logger,
      posters: () => posters,
      onPlanClosed: (planId) => alertService?.refreshSuggestions(planId),
      onPlanAwaitingApproval: (planId) => alertService?.refreshSuggestions(planId),
    });
    const http = new HttpServer((e, req) => {
      // Redis down or not answering is an outage the Redis connections report (once, not per request):
      // each refused request is a WARN line with the reason, not an ERROR with a stack trace.
      const unreachable = redisUnavailable(e);
      if (unreachable)
        logger.warn(
          { method: req.method, url: req.url, reason: (e as Error).message },
          `request refused: ${unreachable.message}`,
        );
      else logger.error({ err: e, method: req.method, url: req.url }, 'request failed');
    }, config.file.http);

    // Surfaces
    const reporters: Partial<Record<Surface, Reporter>> = {};
    const sinks: Partial<Record<Surface, SuggestionSink>> = {};
    const surfaces: string[] = [];
    let consoleSurface: ConsoleSurface | undefined;
    if (consoleOn) {
      consoleSurface = new ConsoleSurface({ clock, planLookup: async (id) => (await flow.get(id))?.plan });
      // Console messages are edited from followed progress (below), whichever worker runs the job.
      const follower = await followProgress({ queue, surface: 'console', reporter: consoleSurface, logger });
      cleanups.push(() => follower.stop());
      posters.console = consoleSurface.poster();
      sinks.console = suggestionSink(posters.console, chat, flow);
      surfaces.push('console');
    }
    const ctx: SurfaceContext = {
      config,
      namespace: ns,
      logger,
      metrics,
      clock,
      http,
      redis: requestRedis,
      redisUrl,
      flow,
      chat,
      platform,
      queue,
      alerts: () => alertService,
    };
    const handles: SurfaceHandle[] = [];
    for (const factory of surfaceFactories) {
      const handle = await factory(ctx);
      if (!handle) continue;
      handles.push(handle);
      surfaces.push(handle.surface);
      if (handle.reporter) reporters[handle.surface] = handle.reporter;
      if (handle.poster) {
        posters[handle.surface] = handle.poster;
        sinks[handle.surface] = suggestionSink(handle.poster, chat, flow);
      }
    }

    for (const missing of unpostedSurfaces(config, surfaces)) {
      logger.warn(
        { surface: missing.surface, configured: missing.keys },
        `${missing.keys.join(', ')} name ${missing.surface} channels, but this process has no ${missing.token}: alert suggestions for the webhooks it receives and deployment notices it claims are not posted to ${missing.surface}. Give it ${missing.token}${missing.surface === 'discord' ? ' (with DISCORD_GATEWAY=off on every replica but the one whose gateway is on)' : ''}`,
      );
    }

    // Alerts
    const dedupe = new AlertDedupe(requestRedis, { prefix: `${ns}:alerts` });
    alertService = new AlertService({
      platform,
      flow,
      sink: compositeSink(sinks),
      dedupe,
      config,
      jobs: queue,
      defaultChannels: { console: 'console' },
      surfaces: surfaces.filter((s): s is Surface => s === 'slack' || s === 'discord' || s === 'console'),
      clock,
      metrics,
      log: logger,
    });
    registerAlertWebhooks(http, { intake: alertService, config, metrics, log: logger, clock });
    const alertsToClose = alertService;
    cleanups.push(async () => alertsToClose.close());

    // Worker: edits Slack and Discord messages of the jobs it runs (the console follows progress instead).
    let worker: SwitchWorker | undefined;
    if (env.SWITCHYARD_WORKER === 'on') {
      const started = startSwitchWorker({
        redisUrl,
        queueName,
        prefix: ns,
        platform,
        // Only the surfaces started here: a job's messages on another surface are left unedited, and
        // compositeReporter says so (once per job) with the fix.
        reporter: compositeReporter(reporters, logger, { metrics }),
        clock,
        verify: { timeoutMs: config.file.verify.timeout, intervalMs: config.file.verify.interval },
        operationTimeoutMs: config.file.verify.operationTimeout,
        lockDurationMs: 30_000,
        concurrency: 4,
        logger,
        metrics,
        audit: workerAudit,
        // A switch queued under an older config (confirmed before a restart, or while no worker ran)
        // runs only if the people it names are still permitted by this one.
        permissions: { config },
      });
      cleanups.push(() => started.close());
      await started.worker.waitUntilReady();
      worker = started;
    } else {
      logger.info(
        { queue: queueName, prefix: ns },
        'SWITCHYARD_WORKER=off: this process runs no switch worker; switches wait for a separate worker (npm run worker)',
      );
    }

    // Console
    let closeConsole: (() => void) | undefined;
    if (consoleSurface) {
      const service = alertService;
      const consoleRoutes = registerConsole(http, {
        surface: consoleSurface,
        ...(env.SWITCHYARD_CONSOLE_TOKEN === undefined ? {} : { token: env.SWITCHYARD_CONSOLE_TOKEN }),
        chat,
        flow,
        platform,
        clock,
        logger,
        metrics,
        ...(local
          ? {
              push: (req: {
                environment: string;
                branch?: string;
                message?: string;
                author?: string;
                fail?: boolean;
              }) => local.push(req),
            }
          : {}),
        fireAlert: async (environment, title) => {
          // One incident per deployment live when it is pressed: pressed again, it is deduplicated; once
          // another deployment went live, it is a new incident (a fingerprint per environment alone made
          // every press for 6 hours a duplicate of the first, even after that one was dismissed). When
          // the platform cannot say (an unknown environment, the platform unreachable), the name alone.
          const live = await platform.snapshot(environment).then(
            (s) => s.environment.currentDeploymentId,
            () => undefined,
          );
          const fingerprint =
            live === undefined ? `console-${environment}` : `console-${environment}-${live}`;
          const parsed = parseAlertPayload(
            'generic',
            { environment, title, status: 'firing', fingerprint },
            {
              now: clock.now(),
            },
          );
          if (!parsed.ok) return [{ outcome: 'invalid', detail: parsed.refusal.message }];
          return await service.handle(parsed.value);
        },
      });
      closeConsole = () => consoleRoutes.close();
      cleanups.push(async () => consoleRoutes.close());
    }

    // Operations
    http.route('GET', '/healthz', (_req, res) => sendJson(res, 200, { ok: true }));
    // With no worker here, confirmed switches wait for one elsewhere (`npm run worker`). None connected
    // to this queue (never started, crashed, given another --queue or --prefix) leaves every switch at
    // "queued" while nothing else looks wrong: /readyz says so, naming the fix, as a warning (not a 503:
    // this replica still serves commands, clicks and webhooks, and a load balancer taking every replica
    // out while workers restart would refuse what they can do); switchyard_switches_waiting alerts.
    const defaultQueue = queueName === QUEUE_NAME && name === 'switchyard';
    const noWorkerConnected = `no switch worker is connected to queue ${queueName} (prefix ${ns}): start one (npm run worker${defaultQueue ? '' : ` -- --queue ${queueName} --prefix ${name}`}, with the same REDIS_URL) or set SWITCHYARD_WORKER=on`;
    /**
     * How many switch workers are connected to the queue, asked only when this process runs none: a
     * number, or why it is not known (reported, not a problem: Redis unreachable is the redis check's,
     * and a Redis that refuses CLIENT LIST cannot tell).
     */
    const connectedWorkers = async (): Promise<number | string | undefined> => {
      if (worker) return undefined;
      const counted = queue.workersCount().then(
        (n) => n ?? 'unknown (Redis does not list its clients)',
        (e: unknown) => `unknown (${maskCredentials(e instanceof Error ? e.message : String(e))})`,
      );
      return await within(
        systemClock,
        READY_CHECK_MS,
        counted,
        `unknown (no answer within ${READY_CHECK_MS} ms)`,
      );
    };
    http.route('GET', '/readyz', async (_req, res) => {
      // Answers within READY_CHECK_MS whatever is down: a probe that hangs is a problem, not a wait.
      const problems: string[] = [];
      let workers: number | string | undefined;
      const check = async (
        name: string,
        probe: () => Promise<unknown>,
        late = `no answer within ${READY_CHECK_MS} ms`,
      ) => {
        // Masked: /readyz answers without a login, and an error may quote a URL with its credentials.
        const answered = probe().then(
          () => undefined,
          (e: unknown) => maskCredentials(e instanceof Error ? e.message : String(e)),
        );
        // Real time, not the injected clock: a readiness deadline is about the caller's wait.
        const problem = await within(systemClock, READY_CHECK_MS, answered, late);
        if (problem !== undefined) problems.push(`${name}: ${problem}`);
      };
      await Promise.all([
        check(
          'redis',
          async () => {
            // Known from the watchdog already: said at once, without another PING for Redis to ignore.
            const hung = watch.notAnswering();
            if (hung !== undefined) throw new Error(hung);
            if (requestRedis.status !== 'ready')
              throw new Error(`unreachable (connection ${requestRedis.status})`);
            const pong = await requestRedis.ping().catch((e: unknown) => {
              // The connection may still read `ready` for a moment after the server went away.
              throw redisUnavailable(e) ? new Error(`unreachable (${(e as Error).message})`) : e;
            });
            if (pong !== 'PONG') throw new Error('no PONG');
          },
          `not answering (no reply to PING within ${READY_CHECK_MS} ms)`,
        ),
        check(`platform ${platform.name}`, () => platform.health()),
        connectedWorkers().then((n) => {
          workers = n;
        }),
      ]);
      if (worker && !worker.worker.isRunning()) problems.push('worker: not running');
      const warnings = workers === 0 ? [`worker: ${noWorkerConnected}`] : [];
      const workerState = worker ? 'running' : WORKER_OFF;
      // Reported, not a readiness problem: this process still serves the console, webhooks and the
      // other surfaces, and a restart would not bring a chat service back (the surface retries itself).
      const chat = Object.fromEntries(
        handles.flatMap((h) => (h.connection ? [[h.surface, h.connection()] as const] : [])),
      );
      const detail = {
        worker: workerState,
        ...(workers === undefined ? {} : { workersConnected: workers }),
        ...(warnings.length > 0 ? { warnings } : {}),
        ...(Object.keys(chat).length > 0 ? { chat } : {}),
      };
      if (problems.length > 0) sendJson(res, 503, { ok: false, problems, ...detail });
      else sendJson(res, 200, { ok: true, platform: platform.name, surfaces, ...detail });
    });
    http.route('GET', '/metrics', async (_req, res) => {
      // Switches waiting for a worker, read from the queue at each scrape (a few counts in two round
      // trips, on the fail-fast connection, bounded like /readyz). When the queue cannot be read the
      // series are left out rather than showing a stale figure. Switches parked behind another switch
      // of their environment have their own state: a worker took them, so alerting on `waiting` and
      // `delayed` never fires for two switches of one environment that overlap.
      const counts = await within(
        systemClock,
        READY_CHECK_MS,
        queue.waitingCounts().catch(() => undefined),
        undefined,
      );
      metrics.switchesWaiting.reset();
      if (counts) {
        metrics.switchesWaiting.set({ state: 'waiting' }, counts.waiting);
        metrics.switchesWaiting.set({ state: 'delayed' }, counts.delayed);
        metrics.switchesWaiting.set({ state: 'lock' }, counts.lock);
      }
      sendText(res, 200, await metrics.registry.metrics(), metrics.registry.contentType);
    });

    for (const h of handles) {
      // Registered first: a surface whose start fails (a rejected token) is still stopped on the way out.
      cleanups.push(() => h.stop());
      await h.start();
    }
    // Edits of a plan's other messages still under way finish before the surfaces stop.
    cleanups.push(() => chat.idle());
    // Plans whose hour ran out with nobody clicking are shown expired on their messages (their buttons
    // go), by whichever replica's sweep finds them first.
    cleanups.push(chat.sweepExpired(opts.planExpirySweepMs ?? PLAN_EXPIRY_SWEEP_MS));

    // Deployment notices (issue 9): every surface's poster, claimed once per notice in Redis. They read
    // a failed switch job's messages and final progress (to update them when the platform completes the
    // switch afterwards) on the patient connection, like the rest of their background work: `queue` is
    // fail-fast, for requests.
    const noticeJobs = new SwitchQueue({ redisUrl, queueName, prefix: ns, clock, logger, connection: redis });
    cleanups.push(() => noticeJobs.close());
    const notices = await startNotices({
      platform,
      redis,
      posters: [
        ...(consoleSurface ? [consoleSurface.poster()] : []),
        ...handles.flatMap((h) => (h.poster ? [h.poster] : [])),
      ],
      config,
      audit: workerAudit,
      jobs: noticeJobs,
      clock,
      logger,
      metrics,
      prefix: `${ns}:notices`,
    });
    cleanups.push(() => notices.stop());

    const port = await http.listen(env.PORT, env.HOST);
    cleanups.push(async () => {
      // End the console's event streams first: open browser tabs would keep the server from closing.
      closeConsole?.();
      await http.close();
    });
    return {
      port,
      routerPort,
      redisUrl,
      namespace: ns,
      queueName,
      workerRunning: worker !== undefined,
      // Printed for the operator: the bound address, bracketed when IPv6, loopback for a wildcard one.
      consoleUrl: consoleSurface ? localHttpUrl(env.HOST, port) : undefined,
      platform,
      flow,
      chat,
      surfaces,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
