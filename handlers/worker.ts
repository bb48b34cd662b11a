/**
 * `npm run worker`: a standalone switch worker that also edits chat messages. `jobs/worker-main.ts`
 * runs the worker without any chat SDK (it logs progress and publishes it to BullMQ); this entry point
 * adds the Slack and Discord progress reporters from the same env vars the bot uses, so operators can
 * run M workers beside N bot replicas and every confirmation message still follows its switch.
 * Console messages live in the bot process that posted them; it edits them from the progress this
 * worker publishes (docs/jobs.md, "Scaling out"), so bot replicas can run with `SWITCHYARD_WORKER=off`.
 */
import { runWorker } from '../jobs/worker-main.js';
import { createLogger } from '../src/log.js';
import { loadConfigOrExit } from './cli.js';
import { chatReporters } from './reporters.js';

async function main(): Promise<void> {
  const config = loadConfigOrExit('switchyard worker');
  const logger = createLogger({ level: config.env.LOG_LEVEL });
  const running = await runWorker({
    argv: process.argv.slice(2),
    config,
    logger,
    reporter: chatReporters(config, logger),
  }).catch((e: unknown) => {
    logger.fatal({ err: e }, `worker could not start: ${(e as Error).message}`);
    process.exit(1);
  });
  const shutdown = (signal: string) => {
    logger.info({ signal }, 'shutting down: finishing the active switch');
    running.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

void main();
