/**
 * A standalone switch worker process: `npx tsx jobs/worker-main.ts [flags]`. Operators run M of these
 * beside the bot replicas (all sharing one Redis); the crash tests run them as child processes. It
 * checks the Redis settings BullMQ needs (loud warning, no crash), warns as loudly when its config
 * file would have it refuse every switch, or every switch of an environment (`allowListWarnings` in
 * src/permissions.ts: on a real platform, no allow list, say no SWITCHYARD_CONFIG at all), connects to
 * the deploy platform, runs the worker and shuts down gracefully on SIGTERM/SIGINT (finish or hand
 * back the active switch).
 *
 * Env vars (read through src/config.ts): REDIS_URL (required: workers share the bot's Redis or Redis
 * Cluster; on a cluster `--prefix` is hash-tagged as the bot's namespace is, `switchyard` → `{switchyard}`),
 * LOG_LEVEL, SWITCHYARD_CONFIG (verify timeout/interval/operationTimeout, and the environments' allow lists
 * and two-person rule, by which each queued switch's people are judged again when its turn comes: the
 * bot's file), PLATFORM, LOCAL_ROUTER_PORT, UNKEY_*.
 * Flags: --queue, --prefix, --concurrency, --lock-duration, --stalled-interval, --lock-retry,
 * --shutdown-timeout, --verify-timeout, --verify-interval, --operation-timeout, --retry-base, --retry-max (durations such
 * as `500ms`, `30s`, `2m`, or plain milliseconds, each within its range: --lock-duration from 1s,
 * --verify-interval from 10ms, …, all at most 2^31-1 ms), --platform-url (the local platform's router
 * address, http:// or https://; default where the bot's router listens: http://$HOST:$LOCAL_ROUTER_PORT,
 * 127.0.0.1 for HOST=0.0.0.0, [::1] for HOST=::), --metrics-port (off by default: the port of an HTTP
 * server answering `GET /metrics`, the Prometheus text of the switches this worker ran, and
 * `GET /healthz`; 0 for any free port) and --metrics-host (where it listens, default 127.0.0.1).
 *
 * Exit codes: 0 after a graceful stop (SIGTERM/SIGINT: the active switch finishes or is handed back),
 * 2 for a configuration error (a bad flag, a missing REDIS_URL, a --metrics-port already in use:
 * "configuration error" on stderr), 1 when it cannot start otherwise; a second signal exits at once
 * with 128 + its number (130 for Ctrl-C).
 *
 * Progress: published as BullMQ job progress (any bot replica can follow it with
 * `SwitchQueue.onProgress`). Chat edits need a Reporter: `runWorker({ reporter })` takes one; run
 * directly, the process logs each progress step instead.
 */
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { AuditLog } from '../src/audit.js';
import { systemClock } from '../src/clock.js';
import {
  type Config,
  durationRange,
  httpUrl,
  isListenHost,
  loadConfig,
  localHttpUrl,
  parseDuration,
  parseFlags,
} from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { HttpServer, sendJson, sendText } from '../src/http.js';
import { createLogger, type Logger } from '../src/log.js';
import { createMetrics, type Metrics } from '../src/metrics.js';
import { allowListWarnings } from '../src/permissions.js';
import { LocalPlatformClient } from '../src/platform/local/client.js';
import type { DeployPlatform } from '../src/platform/port.js';
import { createUnkeyPlatform } from '../src/platform/unkey/adapter.js';
import { createVercelPlatform } from '../src/platform/vercel/adapter.js';
import type { MessageRef, Progress, Reporter, Surface } from '../src/progress.js';
import { DEFAULT_SWITCH_PREFIX, DEFAULT_SWITCH_QUEUE } from '../src/queue.js';
import {
  certificateRefusal,
  closeRedis,
  createRedis,
  createRequestRedis,
  type RedisAnswerWatch,
  redactRedisUrl,
  watchRedis,
} from '../src/redis.js';
import { checkRedis, clusterMismatch } from '../src/redis-check.js';
import { isClusterUrl, keyNamespace } from '../src/redis-url.js';
import { type SwitchWorker, type SwitchWorkerOptions, startSwitchWorker } from './switch-worker.js';

/** A duration flag of at least `minMs` (0 would spin a poll or expire a lock at once) and at most 2^31-1 ms. */
function duration(minMs: number) {
  const range = durationRange(minMs);
  return z
    .string()
    .regex(/^\d+(ms|s|m|h)?$/, 'expected a duration such as 500ms, 30s or 2m, or milliseconds')
    .transform((v) => (/^\d+$/.test(v) ? Number(v) : parseDuration(v)))
    .refine(range.check, range.message);
}

/** Command-line flags of a worker process. */
export const workerArgsSchema = z.object({
  queue: z.string().min(1).default(DEFAULT_SWITCH_QUEUE),
  prefix: z.string().min(1).default(DEFAULT_SWITCH_PREFIX),
  concurrency: z.coerce.number().int('expected a whole number').min(1).max(256).default(10),
  'lock-duration': duration(1_000).default(30_000),
  'stalled-interval': duration(100).optional(),
  'lock-retry': duration(10).optional(),
  'shutdown-timeout': duration(0).default(25_000),
  'verify-timeout': duration(1_000).optional(),
  'verify-interval': duration(10).optional(),
  'operation-timeout': duration(1_000).optional(),
  'retry-base': duration(10).optional(),
  'retry-max': duration(10).optional(),
  /** The local platform's address (its router's), http:// or https:// only. */
  'platform-url': httpUrl('http://127.0.0.1:8080').optional(),
  /** Where `GET /metrics` and `GET /healthz` answer; no HTTP server without it. */
  'metrics-port': z
    .string()
    .regex(/^\d{1,5}$/, 'expected a port number (decimal digits, 0-65535; 0 for any free port)')
    .transform(Number)
    .refine((n) => n <= 65535, 'expected a port between 0 and 65535')
    .optional(),
  /** The address the metrics server listens on (loopback unless told otherwise: it has no login). */
  'metrics-host': z
    .string()
    .refine(isListenHost, 'expected an IP address (IPv6 with or without brackets) or a host name')
    .optional(),
});
export type WorkerArgs = z.infer<typeof workerArgsSchema>;

/** Parses argv (without node and script); throws ConfigError naming the flag and the expectation. */
export function parseWorkerArgs(argv: readonly string[]): WorkerArgs {
  const args = parseFlags(argv, workerArgsSchema, 'string', 'Invalid worker flags: ');
  if (args['metrics-host'] !== undefined && args['metrics-port'] === undefined) {
    throw new ConfigError(
      `Invalid worker flags: --metrics-host: got "${args['metrics-host']}" without --metrics-port, expected --metrics-port too (the metrics server is off without it)`,
      { key: '--metrics-host' },
    );
  }
  return args;
}

/** Where the metrics server listens when `--metrics-host` is not given. */
export const DEFAULT_METRICS_HOST = '127.0.0.1';

/**
 * The worker's metrics server: `GET /metrics` (Prometheus text of `metrics`, the registry the worker
 * counts into) and `GET /healthz`. A listen error that a flag can fix (the port in use, a privileged
 * port, an address not of this machine) is a ConfigError naming the flag.
 */
export async function serveWorkerMetrics(
  metrics: Metrics,
  port: number,
  host: string,
  logger: Logger,
): Promise<{ readonly server: HttpServer; readonly port: number }> {
  const server = new HttpServer((e) => logger.error({ err: e }, 'metrics request failed'));
  server.route('GET', '/healthz', (_req, res) => sendJson(res, 200, { ok: true }));
  server.route('GET', '/metrics', async (_req, res) => {
    sendText(res, 200, await metrics.registry.metrics(), metrics.registry.contentType);
  });
  try {
    return { server, port: await server.listen(port, host.replace(/^\[(.*)\]$/, '$1')) };
  } catch (e) {
    const problem = metricsListenProblem(e, port, host);
    if (problem) throw problem;
    throw e;
  }
}

/** A listen error of the metrics server as a ConfigError naming the flag to change; else undefined. */
function metricsListenProblem(e: unknown, port: number, host: string): ConfigError | undefined {
  const where = `${host}:${port}`;
  switch ((e as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE':
      return new ConfigError(
        `--metrics-port: got ${port}, but ${where} is already in use by another process; expected a free port (or stop that process)`,
        { key: '--metrics-port' },
      );
    case 'EACCES':
      return new ConfigError(
        `--metrics-port: got ${port}, but this user may not listen on ${where} (ports below 1024 need privileges); expected a port from 1024`,
        { key: '--metrics-port' },
      );
    case 'EADDRNOTAVAIL':
      return new ConfigError(
        `--metrics-host: got "${host}", expected an address of this machine (cannot listen on ${where})`,
        { key: '--metrics-host' },
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ConfigError(`--metrics-host: got "${host}", expected a host name that resolves`, {
        key: '--metrics-host',
      });
    default:
      return undefined;
  }
}

/** Where the bot's local platform router answers, from the bot's own HOST and LOCAL_ROUTER_PORT. */
export function defaultPlatformUrl(config: Config): string {
  return localHttpUrl(config.env.HOST, config.env.LOCAL_ROUTER_PORT, '');
}

/** The deploy platform this worker acts on. */
export function platformFor(config: Config, args: WorkerArgs, logger: Logger): DeployPlatform {
  switch (config.platform) {
    case 'local':
      // The local platform lives in the bot process; a separate worker reaches it over HTTP, where the
      // bot's router listens (HOST, as the bot reads it; a wildcard HOST through loopback).
      if (args['platform-url'] === undefined && config.env.LOCAL_ROUTER_PORT === 0) {
        // Port 0 lets the bot's router take any free port, which this worker cannot know: without
        // this it would report ready and then fail every switch it takes.
        throw new ConfigError(
          'LOCAL_ROUTER_PORT: got 0 (any free port), expected the port the bot\'s router listens on: a separate worker reaches the local platform there. Give the worker --platform-url http://<host>:<port> with the address the bot printed at start ("Local router: …"), or give the bot a fixed LOCAL_ROUTER_PORT',
          { key: 'LOCAL_ROUTER_PORT' },
        );
      }
      return new LocalPlatformClient({
        baseUrl: args['platform-url'] ?? defaultPlatformUrl(config),
      });
    case 'unkey':
      return createUnkeyPlatform(config, { logger });
    case 'vercel':
      return createVercelPlatform(config, { logger });
    default: {
      const never: never = config.platform;
      throw new ConfigError(`PLATFORM: unknown platform ${String(never)}`);
    }
  }
}

/** A Reporter that logs each progress update (a worker process without chat credentials). */
export function logReporter(logger: Logger): Reporter {
  return {
    async report(progress: Progress) {
      const running = progress.steps.find((s) => s.state === 'running');
      logger.info(
        {
          jobId: progress.jobId,
          environment: progress.environment,
          step: running?.step,
          outcome: progress.outcome,
        },
        progress.message ?? `${progress.action} ${progress.environment}: ${running?.step ?? 'waiting'}`,
      );
    },
  };
}

/** How many (job, surface) pairs `unreportedWarning` remembers having warned about. */
const MAX_WARNED = 10_000;

/**
 * Says once per job and surface that this process cannot edit a job's messages on that surface (they
 * stay on their last view), counting it in `switchyard_progress_unreported_total`; `message` words the
 * fix. Console messages are not for a worker to edit: every bot process edits its own from published
 * progress. The oldest of MAX_WARNED (job, surface) pairs is forgotten first.
 */
export function unreportedWarning(
  logger: Logger,
  metrics: Pick<Metrics, 'progressUnreported'> | undefined,
  message: (surface: Exclude<Surface, 'console'>, progress: Progress) => string,
): (surface: Surface, progress: Progress, refs: readonly MessageRef[]) => void {
  const warned = new Set<string>();
  return (surface, progress, refs) => {
    if (surface === 'console') return;
    const key = `${surface}|${progress.jobId}`;
    if (warned.has(key)) return;
    warned.add(key);
    if (warned.size > MAX_WARNED) warned.delete(warned.values().next().value as string);
    metrics?.progressUnreported.inc({ surface });
    logger.warn(
      {
        surface,
        jobId: progress.jobId,
        planId: progress.planId,
        messages: refs.map((r) => ({ channel: r.channel, messageId: r.messageId })),
      },
      message(surface, progress),
    );
  };
}

/**
 * The reporter of a worker run without chat reporters (`jobs/worker-main.ts` itself): logs each state
 * (`logReporter`), and warns once per job whose Slack or Discord messages it cannot edit: only the
 * worker running a job edits those, so they would stay on "confirmed, starting" while traffic moved,
 * without a word.
 */
export function chatlessReporter(logger: Logger, metrics?: Pick<Metrics, 'progressUnreported'>): Reporter {
  const log = logReporter(logger);
  const unreported = unreportedWarning(
    logger,
    metrics,
    (surface, progress) =>
      `this worker cannot edit the ${surface} messages of job ${progress.jobId}: jobs/worker-main.ts runs without chat reporters, so they stay on their last view. Run workers with npm run worker (handlers/worker.ts) and ${surface === 'slack' ? 'SLACK_BOT_TOKEN' : 'DISCORD_TOKEN'}`,
  );
  return {
    async report(progress, messages) {
      await log.report(progress, messages);
      for (const surface of new Set(messages.map((m) => m.surface)))
        unreported(
          surface,
          progress,
          messages.filter((m) => m.surface === surface),
        );
    },
  };
}

/** Overrides for `runWorker` (defaults: config from env vars, platform from config, log reporter). */
export interface RunWorkerOptions {
  readonly argv?: readonly string[];
  readonly config?: Config;
  readonly logger?: Logger;
  readonly reporter?: Reporter;
  readonly platform?: DeployPlatform;
  readonly metrics?: Metrics;
  /**
   * Aborted when the process is told to stop during start-up (`npm run worker`'s first signal): the
   * waits on Redis (it may be unreachable: a wrong REDIS_URL, Redis not up yet) end there, what was
   * started is closed without waiting for Redis, and runWorker rejects with a `WorkerStartAborted`.
   */
  readonly signal?: AbortSignal;
  /**
   * Starts the switch worker with the options the flags and the config file make (default
   * `startSwitchWorker`); tests wrap it to see those options.
   */
  readonly startWorker?: (opts: SwitchWorkerOptions) => SwitchWorker;
  /** How often the Redis watchdog PINGs, and how long a PING may go unanswered (src/redis.ts `watchRedis`). */
  readonly redisWatch?: Pick<RedisAnswerWatch, 'intervalMs' | 'timeoutMs'>;
}

/** runWorker's rejection when its `signal` aborted during start-up: nothing is left running. */
export class WorkerStartAborted extends Error {
  constructor() {
    super('worker start-up stopped: told to stop before the worker was ready');
    this.name = 'WorkerStartAborted';
  }
}

/**
 * `work`, or a WorkerStartAborted as soon as `signal` aborts. The commands of a patient Redis
 * connection wait for Redis however long it takes; `work` is left behind and settles when the caller
 * drops the connection (its rejection is observed here, never unhandled).
 */
function unlessAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new WorkerStartAborted());
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    if (signal.aborted) onAbort();
  });
}

/** A worker started by `runWorker`. */
export interface RunningWorker {
  readonly handle: SwitchWorker;
  /**
   * What it warned of at start (logged at warn): switches its config will refuse (`allowListWarnings`),
   * then Redis settings that lose switches (`checkRedis`).
   */
  readonly warnings: readonly string[];
  /** The port `GET /metrics` and `GET /healthz` answer on (`--metrics-port`); undefined without it. */
  readonly metricsPort: number | undefined;
  /** Graceful stop: stop taking jobs, finish or hand back the active one, close everything. */
  stop(): Promise<void>;
}

/** Starts a worker from flags and configuration; resolves once it takes jobs. */
export async function runWorker(opts: RunWorkerOptions = {}): Promise<RunningWorker> {
  const config = opts.config ?? loadConfig();
  const logger = opts.logger ?? createLogger({ level: config.env.LOG_LEVEL });
  const args = parseWorkerArgs(opts.argv ?? []);
  const redisUrl = config.env.REDIS_URL;
  if (redisUrl === undefined) {
    throw new ConfigError(
      'REDIS_URL: got nothing, expected the Redis the bot uses (redis://host:port, or redis+cluster://host:port,… for a Redis Cluster); a separate worker must share it',
      { key: 'REDIS_URL' },
    );
  }
  // Process metrics too when they are served (the bot's /metrics has them as well).
  const metrics = opts.metrics ?? createMetrics({ defaults: args['metrics-port'] !== undefined });
  const metricsHost = args['metrics-host'] ?? DEFAULT_METRICS_HOST;
  // Listening first: a port in use is a configuration error, found before anything else is started.
  const served =
    args['metrics-port'] === undefined
      ? undefined
      : await serveWorkerMetrics(metrics, args['metrics-port'], metricsHost, logger);
  // Said at once, before any wait on Redis: a worker that will refuse every switch it takes (or every
  // switch of an environment) starts all the same, and nobody would otherwise know until a person's
  // rollback is refused mid-incident.
  const refusing = allowListWarnings(config);
  for (const w of refusing) logger.warn({ permissions: 'allow_list' }, `SWITCHES WILL BE REFUSED: ${w}`);
  // A worker waits for Redis (it may start before Redis does), saying so once instead of hanging silently.
  const redis = createRedis(redisUrl);
  // The watchdog's own fail-fast connection: the worker's commands all wait for Redis, and a Redis that
  // hangs (stopped, cut off by a partition) fires no connection event, so nothing else would say it.
  const probe = createRequestRedis(redisUrl);
  probe.on('error', () => undefined); // the patient connection's events report an unreachable Redis
  const watch = watchRedis(redis, logger, 'redis', { probe, ...opts.redisWatch });
  const unwatch = () => {
    watch.stop();
    probe.disconnect();
  };
  let handle: SwitchWorker | undefined;
  let platform: DeployPlatform | undefined;
  let warnings: string[];
  try {
    // Each wait on Redis ends at a stop signal: "shutdown does not wait for Redis" holds during
    // start-up too, or a worker started before its Redis ignores SIGTERM until it is killed. It also
    // ends when TLS refuses Redis's certificate: no reconnection can fix that, so waiting for Redis
    // would only say "reconnecting" for good.
    const refused = certificateRefusal(redis, `Redis at ${redactRedisUrl(redisUrl)} (REDIS_URL)`);
    const waitFor = <T>(work: Promise<T>) =>
      unlessAborted(
        Promise.race([
          work,
          refused.promise.then((e) => {
            throw e;
          }),
        ]),
        opts.signal,
      );
    let redisWarnings: string[];
    let prefix: string;
    try {
      const mismatch = await waitFor(clusterMismatch(redis));
      if (mismatch !== undefined) throw new ConfigError(mismatch, { key: 'REDIS_URL' });
      // The bot's namespace rule (handlers/app.ts): on a cluster, one hash slot.
      prefix = keyNamespace(args.prefix, isClusterUrl(redisUrl));
      redisWarnings = (await waitFor(checkRedis(redis))).map((w) => w.message);
    } finally {
      refused.stop();
    }
    for (const w of redisWarnings) logger.warn({ redis: 'settings' }, `REDIS WILL LOSE SWITCHES: ${w}`);
    warnings = [...refusing, ...redisWarnings];
    platform = opts.platform ?? platformFor(config, args, logger);
    handle = (opts.startWorker ?? startSwitchWorker)({
      redisUrl,
      queueName: args.queue,
      prefix,
      platform,
      reporter: opts.reporter ?? chatlessReporter(logger, metrics),
      clock: systemClock,
      verify: {
        timeoutMs: args['verify-timeout'] ?? config.file.verify.timeout,
        intervalMs: args['verify-interval'] ?? config.file.verify.interval,
      },
      operationTimeoutMs: args['operation-timeout'] ?? config.file.verify.operationTimeout,
      lockDurationMs: args['lock-duration'],
      ...(args['stalled-interval'] === undefined ? {} : { stalledIntervalMs: args['stalled-interval'] }),
      ...(args['lock-retry'] === undefined ? {} : { lockRetryMs: args['lock-retry'] }),
      shutdownTimeoutMs: args['shutdown-timeout'],
      retry: {
        ...(args['retry-base'] === undefined ? {} : { baseDelayMs: args['retry-base'] }),
        ...(args['retry-max'] === undefined ? {} : { maxDelayMs: args['retry-max'] }),
      },
      concurrency: args.concurrency,
      logger,
      metrics,
      audit: new AuditLog(redis, { prefix }),
      // A switch queued under an older config (the bot restarted since the click) runs only if the
      // people it names are still permitted by this one.
      permissions: { config },
    });
    await unlessAborted(handle.worker.waitUntilReady(), opts.signal);
    logger.info(
      {
        queue: args.queue,
        prefix,
        concurrency: args.concurrency,
        platform: platform.name,
        ...(served ? { metrics: localHttpUrl(metricsHost, served.port, '/metrics') } : {}),
      },
      'switch worker ready',
    );
  } catch (e) {
    if (e instanceof WorkerStartAborted) logger.info('start-up stopped before the worker was ready');
    // Nothing started may outlive a failed start (the metrics port above all: a retry would find it
    // taken). None of these waits for Redis: a connection that is not ready is dropped.
    await handle?.close().catch(() => undefined);
    if (opts.platform === undefined) await platform?.close().catch(() => undefined);
    unwatch();
    await closeRedis(redis);
    await served?.server.close();
    throw e;
  }
  const started = handle;
  const startedPlatform = platform;
  let stopping: Promise<void> | undefined;
  return {
    handle: started,
    warnings,
    metricsPort: served?.port,
    stop() {
      stopping ??= (async () => {
        await started.close();
        await startedPlatform.close().catch(() => undefined);
        unwatch();
        await closeRedis(redis);
        // Last: the counts of the switch that finished during shutdown can still be scraped meanwhile.
        await served?.server.close();
      })();
      return stopping;
    },
  };
}

async function main(): Promise<void> {
  // LOG_LEVEL as configured; a bad configuration is reported by runWorker below.
  let level: Config['env']['LOG_LEVEL'] | undefined;
  try {
    level = loadConfig().env.LOG_LEVEL;
  } catch {
    level = undefined;
  }
  const logger = createLogger(level === undefined ? {} : { level });
  let running: RunningWorker;
  try {
    running = await runWorker({ argv: process.argv.slice(2), logger });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`switchyard worker: configuration error\n  ${e.message}\n`);
      process.exit(2);
    }
    // The message only: an error's other fields may carry a URL with its password.
    logger.fatal({ code: (e as { code?: unknown }).code }, (e as Error).message);
    process.exit(1);
  }
  process.send?.({ type: 'ready', pid: process.pid });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      if (signal === 'disconnect') return; // the parent went away while the worker is stopping anyway
      // A second signal: at once, without waiting for the active switch (its lock expires, and another
      // worker takes the switch over).
      logger.warn(
        { signal },
        'forced shutdown: second signal; exiting without waiting for the active switch',
      );
      process.exit(signal === 'SIGTERM' ? 143 : 130);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing the active switch');
    running.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        logger.error({ err: e }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // A parent that goes away (IPC closed) means shut down too, so test runs leave no orphans.
  process.once('disconnect', () => shutdown('disconnect'));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) void main();
