/**
 * `npm start`: loads the configuration, starts Switchyard (embedded defaults when no chat credentials
 * are set), prints where everything is, and shuts down cleanly on SIGINT/SIGTERM — the spawned Redis and
 * every upstream server included.
 *
 * The signal handlers are installed before start-up: a signal while Switchyard is still starting lets
 * start-up settle, then stops whatever it started (the private redis-server included). A second signal
 * forces the exit at once (exit 130 on Ctrl-C), still stopping the private redis-server with SIGTERM so
 * that it writes its AOF. A configuration problem found during start-up (a port already in use, a
 * REDIS_URL naming a cluster node) ends it like a bad value: `configuration error`, exit 2.
 */
import { resolve } from 'node:path';
import { SHUTDOWN_TIMEOUT_MS } from '../jobs/switch-worker.js';
import { type Config, localHttpUrl } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { createLogger } from '../src/log.js';
import { redactRedisUrl } from '../src/redis.js';
import { beginRedisShutdown, stopSpawnedRedis } from '../src/redis-server.js';
import { type RunningSwitchyard, startSwitchyard } from './app.js';
import { exitWithConfigError, handleSignals, listenProblem, loadConfigOrExit, safeError } from './cli.js';
import { surfaceFactories } from './surfaces.js';

const PROGRAM = 'switchyard';

/** The start-up banner: where everything answers, with addresses built from the bound ones. */
function banner(config: Config, running: RunningSwitchyard): string {
  const { HOST } = config.env;
  const http = (path: string) => localHttpUrl(HOST, running.port, path);
  const router = running.routerPort === undefined ? undefined : localHttpUrl(HOST, running.routerPort);
  const lines = [
    '',
    'Switchyard is running.',
    running.consoleUrl ? `  Console:        ${running.consoleUrl}` : undefined,
    `  Health:         ${http('/healthz')}  ·  /readyz  ·  /metrics`,
    `  Alert webhooks: ${http('/webhooks/alerts/<source>')}`,
    running.surfaces.includes('slack') ? `  Slack:          ${http('/slack/events')}` : undefined,
    router !== undefined
      ? `  Local router:   ${router} (try: curl -H 'Host: shop.localhost' ${router})`
      : undefined,
    `  Platform:       ${running.platform.name}   Surfaces: ${running.surfaces.join(', ')}   Redis: ${redactRedisUrl(running.redisUrl)}`,
    running.workerRunning
      ? undefined
      : '  Worker:         none here (SWITCHYARD_WORKER=off); switches wait for a separate worker (npm run worker)',
    // What one Ctrl-C does to a switch under way (jobs/switch-worker.ts `close`): it is waited for, up to
    // the worker's shutdown timeout, then handed back to the queue, which the next start resumes.
    running.workerRunning
      ? `  Ctrl-C stops: a running switch gets ${SHUTDOWN_TIMEOUT_MS / 1000} s to finish, else the next start resumes it. Twice: stop now.`
      : '  Press Ctrl-C to stop.',
    '',
  ].filter((l): l is string => l !== undefined);
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const config = loadConfigOrExit(PROGRAM);
  const logger = createLogger({ level: config.env.LOG_LEVEL });
  const dataDir = resolve(config.env.SWITCHYARD_DATA_DIR ?? '.data');

  // Settles with the running Switchyard, or undefined when start-up failed (its own cleanups ran).
  let startupError: unknown;
  const startup: Promise<RunningSwitchyard | undefined> = startSwitchyard(
    { config, logger, dataDir, installRedis: true },
    surfaceFactories,
  ).catch((e: unknown) => {
    startupError = e;
    return undefined;
  });

  // Before start-up finishes: a signal during start-up must stop what it already started.
  const signals = handleSignals({
    logger,
    graceful: async () => {
      // From now on the private redis-server exiting is expected (no restart, no "unexpected exit").
      beginRedisShutdown();
      const running = await startup;
      await running?.stop();
    },
    forced: () => stopSpawnedRedis(),
  });

  const running = await startup;
  if (signals.signal !== undefined) return; // the signal handler stops it and exits
  if (running === undefined) {
    const problem =
      listenProblem(startupError, config.env) ??
      (startupError instanceof ConfigError ? startupError : undefined);
    if (problem !== undefined) exitWithConfigError(PROGRAM, problem);
    const message = safeError(startupError).message;
    logger.fatal({ err: safeError(startupError) }, `switchyard could not start: ${message}`);
    process.exit(1);
  }
  process.stdout.write(banner(config, running));
}

void main();
