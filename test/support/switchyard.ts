/**
 * Starts a whole Switchyard in the test process (real Redis from the global setup, the local platform
 * with its router, queue, worker and console on free ports), under a fresh namespace.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RunningSwitchyard, type SurfaceFactory, startSwitchyard } from '../../handlers/app.js';
import type { Clock } from '../../src/clock.js';
import { type Config, fileConfigSchema, parseEnv } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { redisUrl, uniqueName } from './redis.js';

export interface TestSwitchyard extends RunningSwitchyard {
  readonly baseUrl: string;
  readonly config: Config;
  close(): Promise<void>;
}

export async function startTestSwitchyard(
  opts: {
    env?: Record<string, string>;
    file?: unknown;
    factories?: readonly SurfaceFactory[];
    /** The app's clock (plans' expiry, the local platform's timers); the system clock by default. */
    clock?: Clock;
  } = {},
): Promise<TestSwitchyard> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sy-app-'));
  const env = parseEnv({
    PORT: '0',
    LOCAL_ROUTER_PORT: '0',
    REDIS_URL: redisUrl(),
    LOG_LEVEL: 'silent',
    ...opts.env,
  });
  const file = fileConfigSchema.parse(
    opts.file ?? { local: { reactivationTime: '200ms', buildTime: '300ms' } },
  );
  const config: Config = { env, file, platform: env.PLATFORM ?? file.platform };
  const running = await startSwitchyard(
    {
      config,
      logger: silentLogger,
      dataDir,
      namespace: uniqueName('sy'),
      ...(opts.clock === undefined ? {} : { clock: opts.clock }),
    },
    opts.factories ?? [],
  );
  return {
    ...running,
    config,
    baseUrl: `http://127.0.0.1:${running.port}`,
    async close() {
      await running.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
