/**
 * `npm run worker`: a standalone switch worker that also edits chat messages. `jobs/worker-main.ts`
 * runs the worker without any chat SDK (it logs progress and publishes it to BullMQ); this entry point
 * adds the Slack and Discord progress reporters from the same env vars the bot uses (Discord over REST
 * only, as a bot process with DISCORD_GATEWAY=off: a worker never opens a gateway session), so
 * operators can run M workers beside N bot replicas and every confirmation message still follows its
 * switch.
 * Console messages live in the bot process that posted them; it edits them from the progress this
 * worker publishes (docs/jobs.md, "Scaling out"), so bot replicas can run with `SWITCHYARD_WORKER=off`.
 *
 * Start-up checks the chat tokens as `npm start` does (handlers/reporters.ts, `WorkerChat.start`): a
 * token Slack or Discord rejects stops it with a message naming SLACK_BOT_TOKEN or DISCORD_TOKEN (exit
 * 2); a chat service that cannot be reached is logged, and the worker starts (switches must run during
 * a chat outage).
 *
 * Signals as in `npm start` (handlers/cli.ts): installed before start-up; the first one finishes the
 * active switch (one received during the token check, or while start-up waits for an unreachable
 * Redis, ends start-up there and exits 0: the worker never starts), a second one exits at once (130 on
 * Ctrl-C). A bad flag, a missing REDIS_URL, a chat token its service rejects or a `--metrics-port`
 * already in use is a configuration error (exit 2).
 * With `--metrics-port` the worker serves its metrics (`GET /metrics`, `GET /healthz`): the bot's
 * /metrics counts only the switches of its own worker.
 */
import { type RunningWorker, runWorker } from '../jobs/worker-main.js';
import { ConfigError } from '../src/errors.js';
import { createLogger } from '../src/log.js';
import { createMetrics } from '../src/metrics.js';
import { exitWithConfigError, handleSignals, loadConfigOrExit, safeError } from './cli.js';
import { chatReporters } from './reporters.js';

const PROGRAM = 'switchyard worker';

async function main(): Promise<void> {
  const config = loadConfigOrExit(PROGRAM);
  const logger = createLogger({ level: config.env.LOG_LEVEL });
  // One registry for the worker and its chat reporters (chat API errors, messages it cannot edit),
  // with the process metrics as the bot's: served on `--metrics-port` (jobs/worker-main.ts).
  const metrics = createMetrics({ defaults: true });
  const chat = chatReporters(config, logger, metrics);
  let startupError: unknown;
  // Aborted by the first signal: a worker told to stop while it checks its tokens (up to 15 s when a
  // chat service does not answer) or while it waits for Redis (for ever when Redis is down: a wrong
  // REDIS_URL, Redis not up yet) stops there, and never starts taking switches.
  const stopping = new AbortController();
  // The chat tokens first, as `npm start` checks them: a token a chat service rejects stops start-up
  // naming the variable before the worker takes a switch whose messages it could not edit.
  const startup: Promise<RunningWorker | undefined> = chat
    .start(stopping.signal)
    .then(() =>
      stopping.signal.aborted
        ? undefined
        : runWorker({
            argv: process.argv.slice(2),
            config,
            logger,
            reporter: chat,
            metrics,
            signal: stopping.signal,
          }),
    )
    .catch((e: unknown) => {
      startupError = e;
      return undefined;
    });
  const signals = handleSignals({
    logger,
    message: 'shutting down: finishing the active switch',
    graceful: async () => {
      stopping.abort();
      // Start-up ends at once on the abort (runWorker drops what it started without waiting for
      // Redis): only a worker that did start has a switch to finish.
      const running = await startup;
      await running?.stop();
      await chat.stop();
    },
  });
  const running = await startup;
  if (running !== undefined || signals.signal !== undefined) return;
  if (startupError instanceof ConfigError) exitWithConfigError(PROGRAM, startupError);
  logger.fatal(
    { err: safeError(startupError) },
    `worker could not start: ${safeError(startupError).message}`,
  );
  process.exit(1);
}

void main();
