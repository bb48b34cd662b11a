/**
 * jobs/worker-main.ts without a child process (but one: the exit code of a busy --metrics-port): flags
 * parsed with clear messages, REDIS_URL required, an in-process run against the real Redis and
 * LocalPlatform that takes a job and stops gracefully, its metrics served on --metrics-port, and what
 * it logs while its Redis is away.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultPlatformUrl, logReporter, parseWorkerArgs, runWorker } from '../../jobs/worker-main.js';
import { fileConfigSchema, parseEnv } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { SwitchQueue } from '../../src/queue.js';
import { checkRedis } from '../../src/redis-check.js';
import { type SpawnedRedis, spawnRedis } from '../../src/redis-server.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { Cleanup, jobData, planFor } from './fixtures/harness.js';
import { type LogLine, LogLines } from './fixtures/logs.js';
import { type JobsEnv, setupJobs } from './fixtures/setup.js';
import { spawnWorker } from './fixtures/worker-process.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** The worker's configuration: REDIS_URL (the test Redis unless given), nothing else. */
function configWithRedis(url = redisUrl()) {
  return { env: parseEnv({ REDIS_URL: url }), file: fileConfigSchema.parse({}), platform: 'local' as const };
}

/** runWorker on `env`'s queue, platform and reporter, with `flags`; stopped by `cleanup`. */
async function runWorkerOn(env: JobsEnv, flags: readonly string[]) {
  const running = await runWorker({
    config: configWithRedis(),
    logger: silentLogger,
    platform: env.platform,
    reporter: env.reporter,
    argv: ['--queue', env.queueName, ...flags],
  });
  cleanup.add(() => running.stop());
  return running;
}

/** Enqueues a rollback of env0 and resolves with how its job ended. */
async function rollbackEnv0(env: JobsEnv) {
  const now = env.clock.now();
  const { jobId } = await env.queue.enqueue(jobData(await planFor(env.local, 'env0', 'rollback', now), now));
  return env.queue.waitForEnd(jobId);
}

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

  it('takes --metrics-port as a port, and --metrics-host only with it', () => {
    const none = parseWorkerArgs([]);
    expect([none['metrics-port'], none['metrics-host']]).toEqual([undefined, undefined]);
    expect(parseWorkerArgs(['--metrics-port', '9464', '--metrics-host', '::1'])).toMatchObject({
      'metrics-port': 9464,
      'metrics-host': '::1',
    });
    expect(() => parseWorkerArgs(['--metrics-port', 'http'])).toThrow(
      /--metrics-port: got "http", expected a port/,
    );
    expect(() => parseWorkerArgs(['--metrics-port', '70000'])).toThrow(/--metrics-port: .*0 and 65535/);
    expect(() => parseWorkerArgs(['--metrics-port', '9464', '--metrics-host', 'no such host!'])).toThrow(
      /--metrics-host: got "no such host!", expected an IP address/,
    );
    expect(() => parseWorkerArgs(['--metrics-host', '0.0.0.0'])).toThrow(
      /--metrics-host: got "0.0.0.0" without --metrics-port/,
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
    const running = await runWorkerOn(env, ['--verify-interval', '10']);
    // Whatever the Redis settings, the worker warns (loudly) instead of refusing to start.
    expect(running.warnings).toEqual((await checkRedis(env.redis)).map((w) => w.message));
    expect((await rollbackEnv0(env))?.outcome).toBe('succeeded');
    await running.stop();
    expect(running.handle.worker.isRunning()).toBe(false);
  });

  it('serves the metrics of the switches it ran on --metrics-port, and closes it when it stops', async () => {
    const env = await setupJobs(cleanup);
    const running = await runWorkerOn(env, ['--verify-interval', '10', '--metrics-port', '0']);
    const port = running.metricsPort;
    expect(port).toBeGreaterThan(0);
    const base = `http://127.0.0.1:${port}`;
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ ok: true });
    expect((await rollbackEnv0(env))?.outcome).toBe('succeeded');
    const res = await fetch(`${base}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toContain('switchyard_jobs_total{action="rollback",outcome="succeeded"} 1');
    expect(text).toContain(
      'switchyard_switch_duration_seconds_count{action="rollback",outcome="succeeded"} 1',
    );
    // The process metrics too, as on the bot's /metrics.
    expect(text).toContain('switchyard_process_cpu_seconds_total');
    await running.stop();
    await expect(fetch(`${base}/metrics`)).rejects.toThrow();
  });

  it('serves no metrics without --metrics-port', async () => {
    const env = await setupJobs(cleanup);
    const running = await runWorker({
      config: configWithRedis(),
      logger: silentLogger,
      platform: env.platform,
      argv: ['--queue', env.queueName],
    });
    cleanup.add(() => running.stop());
    expect(running.metricsPort).toBeUndefined();
  });

  it('refuses a --metrics-port in use as a configuration error naming the flag (exit 2)', async () => {
    const busy = createServer();
    const port = await new Promise<number>((resolve) =>
      busy.listen(0, '127.0.0.1', () => resolve((busy.address() as { port: number }).port)),
    );
    cleanup.add(() => new Promise<void>((resolve) => busy.close(() => resolve())));
    const config = configWithRedis();
    const refused = await runWorker({
      config,
      logger: silentLogger,
      argv: ['--queue', uniqueName('switch'), '--metrics-port', String(port)],
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as Error).message).toBe(
      `--metrics-port: got ${port}, but 127.0.0.1:${port} is already in use by another process; expected a free port (or stop that process)`,
    );
    // The process: "configuration error" naming the flag, exit code 2.
    const started = spawnWorker(cleanup, {
      redisUrl: redisUrl(),
      platformUrl: 'http://127.0.0.1:9',
      queueName: uniqueName('switch'),
      flags: ['--metrics-port', String(port)],
    });
    await expect(started).rejects.toThrow(
      new RegExp(
        `code 2, .*configuration error\\s+--metrics-port: got ${port}, but 127\\.0\\.0\\.1:${port} is already in use`,
        's',
      ),
    );
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

describe('while its Redis is down', () => {
  it('the worker and the queue events say so once per connection, and once that it is back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-worker-outage-'));
    let server: SpawnedRedis | undefined = await spawnRedis({ dir: join(dir, 'redis') });
    cleanup.add(async () => {
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const url = server.url;
    const lines = new LogLines();
    const logger = createLogger({ level: 'debug', pretty: false, destination: lines });
    const queueName = uniqueName('switch');
    const running = await runWorker({
      config: configWithRedis(url),
      logger,
      argv: ['--queue', queueName],
    });
    cleanup.add(() => running.stop());
    // A bot process follows every job's progress (BullMQ QueueEvents, on a connection of its own).
    const queue = new SwitchQueue({ redisUrl: url, queueName, logger });
    cleanup.add(() => queue.close());
    await queue.onProgress(() => undefined);

    const from = lines.parsed.length;
    await server.stop();
    server = undefined;
    // Each failed reconnection attempt of each connection reaches the logger: wait for a dozen.
    const failures = (all: readonly LogLine[]) =>
      all.slice(from).filter((l) => /ENOENT|ECONNREFUSED/.test(JSON.stringify(l.err ?? ''))).length;
    await lines.until((all) => failures(all) >= 12);
    const loud = (start: number) =>
      lines.parsed
        .slice(start)
        .filter((l) => l.level >= 40)
        .map((l) => `${l.levelName} ${String(l.connection)}: ${l.msg}`)
        .sort();
    expect(loud(from)).toEqual([
      'warn queue events: Redis is unreachable; reconnecting',
      'warn redis: Redis is unreachable; reconnecting',
      'warn switch worker: Redis is unreachable; reconnecting',
    ]);

    const back = lines.parsed.length;
    server = await spawnRedis({ dir: join(dir, 'redis') });
    const reachable = (all: readonly LogLine[]) =>
      all
        .slice(back)
        .filter((l) => l.msg === 'Redis is reachable again')
        .map((l) => String(l.connection))
        .sort();
    await lines.until((all) => reachable(all).length >= 3);
    expect(reachable(lines.parsed)).toEqual(['queue events', 'redis', 'switch worker']);
    expect(loud(back)).toEqual([]);
  });
});
