/**
 * `npm start`: loads the configuration, starts Switchyard (embedded defaults when no chat credentials
 * are set), prints where everything is, and shuts down cleanly on SIGINT/SIGTERM — the spawned Redis and
 * every upstream server included.
 */
import { resolve } from 'node:path';
import { createLogger } from '../src/log.js';
import { redactRedisUrl } from '../src/redis.js';
import { startSwitchyard } from './app.js';
import { loadConfigOrExit } from './cli.js';
import { surfaceFactories } from './surfaces.js';

async function main(): Promise<void> {
  const config = loadConfigOrExit('switchyard');
  const logger = createLogger({ level: config.env.LOG_LEVEL });
  const dataDir = resolve(config.env.SWITCHYARD_DATA_DIR ?? '.data');
  let running: Awaited<ReturnType<typeof startSwitchyard>>;
  try {
    running = await startSwitchyard({ config, logger, dataDir, installRedis: true }, surfaceFactories);
  } catch (e) {
    logger.fatal({ err: e }, `switchyard could not start: ${(e as Error).message}`);
    process.exitCode = 1;
    return;
  }
  const lines = [
    '',
    'Switchyard is running.',
    running.consoleUrl ? `  Console:        ${running.consoleUrl}` : undefined,
    `  Health:         http://${config.env.HOST}:${running.port}/healthz  ·  /readyz  ·  /metrics`,
    `  Alert webhooks: http://${config.env.HOST}:${running.port}/webhooks/alerts/<source>`,
    running.surfaces.includes('slack')
      ? `  Slack:          http://${config.env.HOST}:${running.port}/slack/events`
      : undefined,
    running.routerPort !== undefined
      ? `  Local router:   http://127.0.0.1:${running.routerPort}/ (try: curl -H 'Host: shop.localhost' http://127.0.0.1:${running.routerPort}/)`
      : undefined,
    `  Platform:       ${running.platform.name}   Surfaces: ${running.surfaces.join(', ')}   Redis: ${redactRedisUrl(running.redisUrl)}`,
    running.workerRunning
      ? undefined
      : '  Worker:         none here (SWITCHYARD_WORKER=off); switches wait for a separate worker (npm run worker)',
    '  Press Ctrl-C to stop.',
    '',
  ].filter((l): l is string => l !== undefined);
  process.stdout.write(`${lines.join('\n')}\n`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.error('shutdown took longer than 40s; exiting');
      process.exit(1);
    }, 40_000);
    force.unref();
    await running.stop();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

void main();
