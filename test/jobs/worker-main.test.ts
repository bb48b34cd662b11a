/**
 * jobs/worker-main.ts without a child process: flags parsed with clear messages, REDIS_URL required,
 * and an in-process run against the real Redis and LocalPlatform that takes a job and stops gracefully.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { defaultPlatformUrl, logReporter, parseWorkerArgs, runWorker } from '../../jobs/worker-main.js';
import { fileConfigSchema, parseEnv } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { checkRedis } from '../../src/redis-check.js';
import { redisUrl } from '../support/redis.js';
import { Cleanup, jobData, planFor } from './fixtures/harness.js';
import { setupJobs } from './fixtures/setup.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe('worker-main flags', () => {
  it('parses durations and numbers, with defaults', () => {
    const a = parseWorkerArgs(['--lock-duration', '2s', '--stalled-interval', '500', '--concurrency', '3']);
    expect(a['lock-duration']).toBe(2_000);
    expect(a['stalled-interval']).toBe(500);
    expect(a.concurrency).toBe(3);
    expect(a.queue).toBe('switchyard-switch');
    expect(a['shutdown-timeout']).toBe(25_000);
  });

  it('names the bad flag and what was expected', () => {
    expect(() => parseWorkerArgs(['--concurrency', 'lots'])).toThrow(/--concurrency: got "lots"/);
    expect(() => parseWorkerArgs(['--lock-duration', 'soon'])).toThrow(
      /--lock-duration: got "soon", expected a duration/,
    );
    expect(() => parseWorkerArgs(['--platform-url', 'nowhere'])).toThrow(/--platform-url/);
    expect(() => parseWorkerArgs(['--colour', 'blue'])).toThrow(/Known flags: --queue/);
  });

  it('refuses durations out of their range: 0 would spin or expire at once, over 2^31-1 ms a timer fires at once', () => {
    expect(() => parseWorkerArgs(['--verify-interval', '0'])).toThrow(
      /--verify-interval: got "0", expected a duration from 10ms to 2147483647ms/,
    );
    expect(() => parseWorkerArgs(['--lock-duration', '0'])).toThrow(
      /--lock-duration: got "0", expected a duration from 1s/,
    );
    expect(() => parseWorkerArgs(['--lock-duration', '500ms'])).toThrow(/--lock-duration/);
    expect(() => parseWorkerArgs(['--verify-timeout', '2147483648'])).toThrow(
      /--verify-timeout: .*2147483647ms/,
    );
    expect(() => parseWorkerArgs(['--retry-max', '999h'])).toThrow(/--retry-max/);
    expect(() => parseWorkerArgs(['--stalled-interval', '0'])).toThrow(/--stalled-interval/);
    expect(parseWorkerArgs(['--shutdown-timeout', '0', '--verify-interval', '10'])).toMatchObject({
      'shutdown-timeout': 0,
      'verify-interval': 10,
    });
  });

  it('takes an http(s) --platform-url only', () => {
    for (const url of [
      '127.0.0.1:8080',
      'localhost:8080/',
      'ftp://127.0.0.1:8080',
      'mailto:ops@example.com',
    ]) {
      expect(() => parseWorkerArgs(['--platform-url', url]), url).toThrow(
        /--platform-url: got .*expected an http:\/\/ or https:\/\/ URL/,
      );
    }
    expect(parseWorkerArgs(['--platform-url', 'http://[::1]:8080'])['platform-url']).toBe(
      'http://[::1]:8080',
    );
  });

  it("defaults --platform-url to where the bot's router listens (HOST, LOCAL_ROUTER_PORT)", () => {
    const at = (env: Record<string, string>) =>
      defaultPlatformUrl({ env: parseEnv(env), file: fileConfigSchema.parse({}), platform: 'local' });
    expect(at({})).toBe('http://127.0.0.1:8080');
    expect(at({ HOST: '::1', LOCAL_ROUTER_PORT: '9090' })).toBe('http://[::1]:9090');
    expect(at({ HOST: '0.0.0.0' })).toBe('http://127.0.0.1:8080');
    expect(at({ HOST: '::' })).toBe('http://[::1]:8080');
    expect(at({ HOST: '10.1.2.3' })).toBe('http://10.1.2.3:8080');
  });
});

describe('runWorker', () => {
  it('refuses to start without REDIS_URL, naming it', async () => {
    const config = { env: parseEnv({}), file: fileConfigSchema.parse({}), platform: 'local' as const };
    await expect(runWorker({ config, logger: silentLogger, argv: [] })).rejects.toThrow(
      /^REDIS_URL: got nothing/,
    );
  });

  it('runs a switch in process and stops gracefully', async () => {
    const env = await setupJobs(cleanup);
    const config = {
      env: parseEnv({ REDIS_URL: redisUrl() }),
      file: fileConfigSchema.parse({}),
      platform: 'local' as const,
    };
    const running = await runWorker({
      config,
      logger: silentLogger,
      platform: env.platform,
      reporter: env.reporter,
      argv: ['--queue', env.queueName, '--verify-interval', '10'],
    });
    cleanup.add(() => running.stop());
    // Whatever the Redis settings, the worker warns (loudly) instead of refusing to start.
    expect(running.warnings).toEqual((await checkRedis(env.redis)).map((w) => w.message));
    const now = env.clock.now();
    const { jobId } = await env.queue.enqueue(
      jobData(await planFor(env.local, 'env0', 'rollback', now), now),
    );
    expect((await env.queue.waitForEnd(jobId))?.outcome).toBe('succeeded');
    await running.stop();
    expect(running.handle.worker.isRunning()).toBe(false);
  });

  it('logs progress when it has no chat reporter', async () => {
    const lines: string[] = [];
    const logger = silentLogger.child({});
    logger.info = ((_obj: unknown, msg?: string) => {
      lines.push(msg ?? '');
    }) as typeof logger.info;
    await logReporter(logger).report(
      {
        jobId: 'sw_1',
        planId: 'plan_1',
        action: 'rollback',
        environment: 'production',
        targetId: 'dep_1',
        fromId: 'dep_2',
        requestedBy: { surface: 'console', userId: 'u', displayName: 'U' },
        steps: [{ step: 'switching', state: 'running', startedAt: 1 }],
        traffic: [],
        attempt: 1,
        updatedAt: 1,
      },
      [],
    );
    expect(lines).toEqual(['rollback production: switching']);
  });
});
