/**
 * jobs/worker-main.ts without a child process (but one: the exit code of a busy --metrics-port): flags
 * parsed with clear messages, REDIS_URL required, an in-process run against the real Redis and
 * LocalPlatform that takes a job and stops gracefully, judges queued switches by its own config file
 * (and warns at start when that file has it refuse them: a real platform, no allow list), its metrics served on --metrics-port, and what
 * it logs while its Redis is away or hangs. And `npm run worker` (handlers/worker.ts) checking its chat tokens
 * at start-up as `npm start` does, against the fake Slack and Discord (in process, and as the process),
 * and stopping there, without starting the worker, when told to stop during that check.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { discordTokenRejected } from '../../handlers/discord/client.js';
import { chatReporters } from '../../handlers/reporters.js';
import { createSlackApp } from '../../handlers/slack/app.js';
import {
  BLOCKING_RECONNECT_WAIT_MS,
  type SwitchWorkerOptions,
  startSwitchWorker,
} from '../../jobs/switch-worker.js';
import {
  chatlessReporter,
  defaultPlatformUrl,
  logReporter,
  parseWorkerArgs,
  platformFor,
  runWorker,
  WorkerStartAborted,
} from '../../jobs/worker-main.js';
import { ManualClock } from '../../src/clock.js';
import { type Config, fileConfigSchema, loadConfig, parseEnv } from '../../src/config.js';
import { ConfigError, PlatformHttpError } from '../../src/errors.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { allowListWarnings } from '../../src/permissions.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import { jobIdForPlan, SwitchQueue } from '../../src/queue.js';
import { createRedis } from '../../src/redis.js';
import { checkRedis } from '../../src/redis-check.js';
import { type SpawnedRedis, spawnRedis } from '../../src/redis-server.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/server.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { killStarted, run, waitFor } from '../start/children/procs.js';
import { CapturedLog } from '../support/captured-log.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { openTestQueue } from '../support/switch-worker.js';
import { Cleanup, jobData, planFor } from './fixtures/harness.js';
import { type LogLine, LogLines } from './fixtures/logs.js';
import { jobsSeed } from './fixtures/seed.js';
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
    expect(() => parseWorkerArgs(['--operation-timeout', '500ms'])).toThrow(
      /--operation-timeout: got "500ms", expected a duration from 1s/,
    );
    expect(parseWorkerArgs(['--operation-timeout', '20m'])['operation-timeout']).toBe(1_200_000);
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

  it('refuses the bot\'s "any free port" router (LOCAL_ROUTER_PORT=0) without --platform-url, naming the key and the fix', () => {
    const config = {
      env: parseEnv({ LOCAL_ROUTER_PORT: '0' }),
      file: fileConfigSchema.parse({}),
      platform: 'local' as const,
    };
    let thrown: unknown;
    try {
      platformFor(config, parseWorkerArgs([]), silentLogger);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).message).toMatch(
      /^LOCAL_ROUTER_PORT: got 0 \(any free port\).*--platform-url/,
    );
    // With the bot's address given, the worker reaches it there.
    expect(() =>
      platformFor(config, parseWorkerArgs(['--platform-url', 'http://127.0.0.1:41234']), silentLogger),
    ).not.toThrow();
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

  /** runWorker on `env`'s queue with `config` and `flags`: the options it started the switch worker with. */
  async function workerOptionsFor(env: JobsEnv, config: Config, flags: readonly string[]) {
    let given: SwitchWorkerOptions | undefined;
    const running = await runWorker({
      config,
      logger: silentLogger,
      platform: env.platform,
      reporter: env.reporter,
      argv: ['--queue', env.queueName, ...flags],
      startWorker: (opts) => {
        given = opts;
        return startSwitchWorker(opts);
      },
    });
    cleanup.add(() => running.stop());
    if (given === undefined) throw new Error('runWorker started no switch worker');
    return given;
  }

  /** The config file's verification limits, none of them the defaults. */
  const verifyFile = { verify: { timeout: '45s', interval: 250, operationTimeout: '90s' } };

  it('hands the switch worker what its flags say, over the config file: verification, operation timeout, locks, backoff bounds', async () => {
    const env = await setupJobs(cleanup);
    const config = { ...configWithRedis(), file: fileConfigSchema.parse(verifyFile) };
    const given = await workerOptionsFor(env, config, [
      ...['--verify-timeout', '7s', '--verify-interval', '70ms', '--operation-timeout', '3m'],
      ...['--lock-retry', '250ms', '--retry-base', '20ms', '--retry-max', '2s'],
      ...['--lock-duration', '4s', '--stalled-interval', '900ms', '--shutdown-timeout', '1500ms'],
      ...['--concurrency', '3'],
    ]);
    expect(given).toMatchObject({
      verify: { timeoutMs: 7_000, intervalMs: 70 },
      operationTimeoutMs: 180_000,
      lockRetryMs: 250,
      retry: { baseDelayMs: 20, maxDelayMs: 2_000 },
      lockDurationMs: 4_000,
      stalledIntervalMs: 900,
      shutdownTimeoutMs: 1_500,
      concurrency: 3,
    });
  });

  it("without those flags: the config file's verification limits and operation timeout, the worker's own lock retry and backoff", async () => {
    const env = await setupJobs(cleanup);
    const config = { ...configWithRedis(), file: fileConfigSchema.parse(verifyFile) };
    const given = await workerOptionsFor(env, config, []);
    expect(given.verify).toEqual({ timeoutMs: 45_000, intervalMs: 250 });
    expect(given.operationTimeoutMs).toBe(90_000);
    // Left out, so that startSwitchWorker's defaults apply (1 s; 1 s doubling to at most 30 s).
    expect('lockRetryMs' in given).toBe(false);
    expect(given.retry).toEqual({});
  });

  it("a failed attempt backs off by --retry-base and --retry-max, not by the delay the bot's queue wrote on the job", async () => {
    const env = await setupJobs(cleanup, {
      faults: {
        switchErrors: [
          new PlatformHttpError(503, 'POST', 'http://platform.test/rollback', undefined, 'down'),
        ],
      },
    });
    // The test queue, as the bot's does, writes its own base delay on every job: 5 ms here.
    const running = await runWorkerOn(env, ['--retry-base', '2m', '--retry-max', '20m']);
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now);
    const jobId = jobIdForPlan(plan.id);
    // BullMQ emits `failed` once the job is delayed for its retry.
    const failed = new Promise<void>((resolve) =>
      running.handle.worker.on('failed', (job) => {
        if (job?.id === jobId) resolve();
      }),
    );
    await env.queue.enqueue(jobData(plan, now));
    await failed;
    expect(await env.queue.queue.getJobState(jobId)).toBe('delayed');
    // The first retry waits half to all of min(--retry-max, --retry-base) (equal jitter): 1 to 2
    // minutes. The job's 5 ms would be milliseconds, the default 30 s cap at most 30 s.
    const delay = (await env.queue.queue.getJob(jobId))?.delay;
    expect(delay).toBeGreaterThanOrEqual(60_000);
    expect(delay).toBeLessThanOrEqual(120_000);
  });

  it('warns at start of Redis settings that lose switches (no AOF): logged at warn, returned after the allow-list warnings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-worker-no-aof-'));
    const server = await spawnRedis({ dir: join(dir, 'redis'), aof: false });
    cleanup.add(async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const clock = new ManualClock();
    const local = await LocalPlatform.open({ clock, seed: jobsSeed(1, clock.now()), maintenance: false });
    cleanup.add(() => local.close());
    const log = new CapturedLog('info');
    // On Vercel without a config file the worker will refuse every switch too.
    const config = {
      env: parseEnv({ REDIS_URL: server.url, PLATFORM: 'vercel', VERCEL_TOKEN: 't', VERCEL_PROJECT: 'p' }),
      file: fileConfigSchema.parse({}),
      platform: 'vercel' as const,
    };
    const running = await runWorker({
      config,
      logger: log.logger,
      platform: local,
      argv: ['--queue', uniqueName('switch')],
    });
    cleanup.add(() => running.stop());
    const refusing = allowListWarnings(config);
    expect(refusing).toHaveLength(1);
    const noAof =
      'Redis runs without AOF (appendonly no): a Redis restart loses queued and running switches. Set appendonly yes.';
    expect(running.warnings).toEqual([...refusing, noAof]);
    const warned = log.lines.filter((l) => l.level === 40);
    expect(warned.map((l) => [l.msg, l.permissions ?? l.redis])).toEqual([
      [`SWITCHES WILL BE REFUSED: ${refusing[0]}`, 'allow_list'],
      [`REDIS WILL LOSE SWITCHES: ${noAof}`, 'settings'],
    ]);
  });

  it('judges a queued switch by its own config file: a confirmer it does not permit gets nothing switched', async () => {
    const env = await setupJobs(cleanup);
    // The config this worker loaded (SWITCHYARD_CONFIG) lets only u-bob act on env0; alice confirmed
    // the rollback under an older one.
    const config = {
      ...configWithRedis(),
      file: fileConfigSchema.parse({ environments: { env0: { allow: { console: { users: ['u-bob'] } } } } }),
    };
    const running = await runWorker({
      config,
      logger: silentLogger,
      platform: env.platform,
      reporter: env.reporter,
      argv: ['--queue', env.queueName],
    });
    cleanup.add(() => running.stop());
    const final = await rollbackEnv0(env);
    expect(final).toMatchObject({ outcome: 'refused', code: 'forbidden' });
    expect(final?.message).toContain('Alice (u-alice) is no longer permitted on env0');
    expect(env.platform.switchCalls).toBe(0);
  });

  it('on a real platform without SWITCHYARD_CONFIG: warns loudly at start that it will refuse every switch (no allow list)', async () => {
    const env = await setupJobs(cleanup);
    const log = new CapturedLog('info');
    // A worker on Vercel can start on env vars alone: no config file, so no allow list anywhere.
    const config = {
      env: parseEnv({ REDIS_URL: redisUrl(), PLATFORM: 'vercel', VERCEL_TOKEN: 't', VERCEL_PROJECT: 'p' }),
      file: fileConfigSchema.parse({}),
      platform: 'vercel' as const,
    };
    const running = await runWorker({
      config,
      logger: log.logger,
      platform: env.platform,
      reporter: env.reporter,
      argv: ['--queue', env.queueName],
    });
    cleanup.add(() => running.stop());
    const refusing =
      'SWITCHYARD_CONFIG is not set (no config file), and on the vercel platform nobody is permitted on an environment without an allow list: this worker will refuse every switch it takes (forbidden, nothing switched). Give it the config file the bots run with (SWITCHYARD_CONFIG), whose environments.<name>.allow lists who may act.';
    // Returned first among its warnings (the Redis settings' follow), and logged at warn.
    expect(running.warnings).toEqual([refusing, ...(await checkRedis(env.redis)).map((w) => w.message)]);
    const warned = log.lines.filter((l) => l.level === 40 && l.permissions === 'allow_list');
    expect(warned.map((l) => l.msg)).toEqual([`SWITCHES WILL BE REFUSED: ${refusing}`]);
    // Said before the worker is ready, not when the first switch is refused.
    const warnedAt = log.lines.findIndex((l) => l.permissions === 'allow_list');
    expect(log.lines.findIndex((l) => l.msg === 'switch worker ready')).toBeGreaterThan(warnedAt);

    // As it said: the first switch it takes is refused, nothing switched.
    const final = await rollbackEnv0(env);
    expect({ outcome: final?.outcome, code: final?.code }).toEqual({ outcome: 'refused', code: 'forbidden' });
    expect(env.platform.switchCalls).toBe(0);
  });

  it('warns of the environments its config file names without an allow list, on a real platform only', () => {
    const env = parseEnv({ REDIS_URL: redisUrl(), SWITCHYARD_CONFIG: '/etc/switchyard.yml' });
    const allow = { console: { users: ['u-alice'] } };
    const file = (environments: unknown) => fileConfigSchema.parse({ environments });
    const on = (platform: 'local' | 'unkey' | 'vercel', environments: unknown) =>
      allowListWarnings({ env, file: file(environments), platform });

    expect(on('unkey', { production: { allow }, staging: {}, preview: { twoPersonRule: true } })).toEqual([
      'environments staging, preview have no allow list in the config file (SWITCHYARD_CONFIG=/etc/switchyard.yml), and on the unkey platform nobody is permitted on an environment without an allow list: this worker will refuse every switch of staging or preview (forbidden, nothing switched). Add environments.<name>.allow for each to the file the bots and workers share.',
    ]);
    expect(on('vercel', { production: { allow }, staging: {} })).toEqual([
      'environment staging has no allow list in the config file (SWITCHYARD_CONFIG=/etc/switchyard.yml), and on the vercel platform nobody is permitted on an environment without an allow list: this worker will refuse every switch of staging (forbidden, nothing switched). Add environments.staging.allow to the file the bots and workers share.',
    ]);
    // A file naming environments, none with an allow list: every switch.
    expect(on('unkey', { staging: { twoPersonRule: true } })).toEqual([
      'the config file (SWITCHYARD_CONFIG=/etc/switchyard.yml) gives no environment an allow list, and on the unkey platform nobody is permitted on an environment without an allow list: this worker will refuse every switch it takes (forbidden, nothing switched). Give it the config file the bots run with (SWITCHYARD_CONFIG), whose environments.<name>.allow lists who may act.',
    ]);
    // Every named environment has one: nothing to say (one the file does not name cannot be known here).
    expect(on('unkey', { production: { allow } })).toEqual([]);
    // The local platform lets everyone act where there is no allow list: no warning.
    expect(on('local', {})).toEqual([]);
    expect(on('local', { production: { allow }, staging: {} })).toEqual([]);
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

  it('run without chat reporters, warns once per job whose Slack or Discord messages it cannot edit, and counts it', async () => {
    const warns: string[] = [];
    const logger = silentLogger.child({});
    logger.warn = ((_obj: unknown, msg?: string) => {
      warns.push(msg ?? '');
    }) as typeof logger.warn;
    const metrics = createMetrics();
    const reporter = chatlessReporter(logger, metrics);
    const state = (jobId: string) => ({
      jobId,
      planId: 'plan_1',
      action: 'rollback' as const,
      environment: 'production',
      targetId: 'dep_1',
      fromId: 'dep_2',
      requestedBy: { surface: 'console' as const, userId: 'u', displayName: 'U' },
      steps: [{ step: 'switching' as const, state: 'running' as const, startedAt: 1 }],
      traffic: [],
      attempt: 1,
      updatedAt: 1,
    });
    const slack = { surface: 'slack' as const, channel: 'C1', messageId: '1.2' };
    const discord = { surface: 'discord' as const, channel: '42', messageId: '43' };
    const console_ = { surface: 'console' as const, channel: 'console', messageId: 'm1' };
    await reporter.report(state('sw_1'), [slack, console_]);
    await reporter.report(state('sw_1'), [slack, console_]);
    await reporter.report(state('sw_2'), [discord]);
    await reporter.report(state('sw_3'), [console_]);
    expect(warns).toEqual([
      'this worker cannot edit the slack messages of job sw_1: jobs/worker-main.ts runs without chat reporters, so they stay on their last view. Run workers with npm run worker (handlers/worker.ts) and SLACK_BOT_TOKEN',
      'this worker cannot edit the discord messages of job sw_2: jobs/worker-main.ts runs without chat reporters, so they stay on their last view. Run workers with npm run worker (handlers/worker.ts) and DISCORD_TOKEN',
    ]);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/switchyard_progress_unreported_total\{surface="slack"\} 1/);
    expect(text).toMatch(/switchyard_progress_unreported_total\{surface="discord"\} 1/);
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

  it('stops when Redis is back but the connection it waits for jobs on is still between reconnection attempts', async () => {
    // ioredis waits up to 2 s between reconnection attempts: the blocking connection (BZPOPMIN) can still
    // be waiting when Redis is back and the worker is told to stop (a loaded machine). Its next attempt is
    // pushed a minute away here, so the stop surely comes while it waits: BullMQ's graceful close would
    // wait for an `end` it never emits. The worker waits for it a little, then closes without it.
    const dir = mkdtempSync(join(tmpdir(), 'sy-worker-backoff-'));
    const server = await spawnRedis({ dir: join(dir, 'redis') });
    cleanup.add(async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const running = await runWorker({
      config: configWithRedis(server.url),
      logger: silentLogger,
      argv: ['--queue', uniqueName('switch')],
    });
    cleanup.add(() => running.stop());
    const blocking = (await running.handle.worker.getBackend().blockingClient) as unknown as {
      status: string;
      options: { retryStrategy?: () => number };
      disconnect(reconnect?: boolean): void;
    };
    blocking.options.retryStrategy = () => 60_000;
    blocking.disconnect(true); // as if Redis dropped it: closed, then a reconnection attempt scheduled
    await vi.waitFor(() => expect(blocking.status).toBe('reconnecting'));

    const started = Date.now();
    await running.stop();
    expect(Date.now() - started).toBeLessThan(BLOCKING_RECONNECT_WAIT_MS + 5_000);
  });
});

describe('while its Redis hangs (SIGSTOP: its connections stay open, nothing answers)', () => {
  /** A private redis-server, resumed after the test if it is left stopped. */
  async function hangingRedis() {
    const dir = mkdtempSync(join(tmpdir(), 'sy-worker-hang-'));
    const server = await spawnRedis({ dir: join(dir, 'redis') });
    const pid = server.pid;
    if (pid === undefined) throw new Error('redis-server has no pid');
    cleanup.add(async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    return {
      url: server.url,
      pause() {
        process.kill(pid, 'SIGSTOP');
        // Run before the worker's stop (cleanups run last added first): a stopped Redis holds it up.
        cleanup.add(async () => {
          process.kill(pid, 'SIGCONT');
        });
      },
      resume() {
        process.kill(pid, 'SIGCONT');
      },
    };
  }

  /** The lines at warn and above, then the watchdog's INFO, as `level connection: message`. */
  const loud = (lines: LogLines, from = 0) =>
    lines.parsed
      .slice(from)
      .filter((l) => l.level >= 40 || l.msg === 'Redis is answering again')
      .map((l) => `${l.levelName} ${String(l.connection)}: ${l.msg}`);

  it('the worker says once that Redis is not answering, and once that it answers again', async () => {
    const redis = await hangingRedis();
    const lines = new LogLines();
    const logger = createLogger({ level: 'debug', pretty: false, destination: lines });
    const running = await runWorker({
      config: configWithRedis(redis.url),
      logger,
      argv: ['--queue', uniqueName('switch')],
      redisWatch: { intervalMs: 50, timeoutMs: 200 },
    });
    cleanup.add(() => running.stop());
    const from = lines.parsed.length;

    redis.pause();
    await lines.until((all) => all.slice(from).some((l) => l.level >= 40));
    redis.resume();
    await lines.until((all) => all.slice(from).some((l) => l.msg === 'Redis is answering again'));
    expect(loud(lines, from)).toEqual([
      'warn redis: Redis is not answering (no reply to PING within 200 ms); waiting for it',
      'info redis: Redis is answering again',
    ]);
  });

  it('a worker started on a Redis that hangs says so while it waits, and starts once Redis answers', async () => {
    const redis = await hangingRedis();
    redis.pause();
    const lines = new LogLines();
    const logger = createLogger({ level: 'debug', pretty: false, destination: lines });
    const started = runWorker({
      config: configWithRedis(redis.url),
      logger,
      argv: ['--queue', uniqueName('switch')],
      redisWatch: { intervalMs: 50, timeoutMs: 200 },
    });
    void started.then(
      (running) => cleanup.add(() => running.stop()),
      () => undefined,
    );
    await lines.until((all) => all.some((l) => l.msg.startsWith('Redis is not answering')));
    redis.resume();
    await started;
    expect(loud(lines)).toEqual([
      'warn redis: Redis is not answering (no reply to the connection set-up within 200 ms); waiting for it',
      'info redis: Redis is answering again',
    ]);
    expect(lines.parsed.map((l) => l.msg)).toContain('switch worker ready');
  });
});

describe('npm run worker: the chat tokens at start-up, checked as npm start checks them', () => {
  afterEach(() => killStarted());

  async function fakes(): Promise<{ slack: FakeSlack; discord: FakeDiscord }> {
    const slack = await new FakeSlack().start();
    cleanup.add(() => slack.close());
    const discord = await startFakeDiscord();
    cleanup.add(() => discord.close());
    return { slack, discord };
  }

  /** A loopback port nothing listens on (a chat service that cannot be reached: ECONNREFUSED). */
  async function closedPort(): Promise<number> {
    const server = createServer();
    const port = await new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
    );
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }

  /** `handlers/worker.ts` as `npm run worker` runs it, on fresh queue and prefix names. */
  function worker(env: Record<string, string>) {
    return run(['handlers/worker.ts', '--queue', uniqueName('q'), '--prefix', uniqueName('p')], {
      REDIS_URL: redisUrl(),
      LOG_LEVEL: 'info',
      ...env,
    });
  }

  /** The exit code, or `ready` if the worker said "switch worker ready" first. */
  function exitOrReady(r: ReturnType<typeof run>): Promise<number | null | 'ready'> {
    return Promise.race([
      r.exited,
      waitFor(r, /switch worker ready/).then(
        () => 'ready' as const,
        () => r.exited,
      ),
    ]);
  }

  it('a SLACK_BOT_TOKEN Slack rejects is refused with the bot process’s own message', async () => {
    const { slack } = await fakes();
    const env = {
      SLACK_BOT_TOKEN: 'xoxb-1234-5678-wrongwrongwrong',
      SLACK_SIGNING_SECRET: 'secret',
      SLACK_API_URL: slack.apiUrl,
    };
    const refused = await chatReporters(loadConfig(env), silentLogger)
      .start()
      .then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    expect(refused).toBeInstanceOf(ConfigError);
    expect(refused?.message).toMatch(/^SLACK_BOT_TOKEN: Slack rejected the bot token \(invalid_auth\)/);
    // The same words as npm start's check (handlers/slack/app.ts), so the two cannot drift apart.
    const redis = createRedis(redisUrl());
    cleanup.add(() => redis.quit());
    const bot = createSlackApp(
      {
        botToken: env.SLACK_BOT_TOKEN,
        signingSecret: 'secret',
        apiUrl: slack.apiUrl,
        redis,
        logger: silentLogger,
      },
      () => undefined,
    );
    cleanup.add(() => bot.stop());
    const botRefused = await bot.start().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(refused?.message).toBe(botRefused?.message);
    expect(slack.callsOf('auth.test').map((c) => c.response.error)).toEqual(['invalid_auth', 'invalid_auth']);
  });

  it('a DISCORD_TOKEN Discord rejects is refused as with DISCORD_GATEWAY=off (GET /users/@me)', async () => {
    const { discord } = await fakes();
    const chat = chatReporters(
      loadConfig({
        DISCORD_TOKEN: 'wrong-token',
        DISCORD_APPLICATION_ID: discord.applicationId,
        DISCORD_API_URL: discord.apiUrl,
      }),
      silentLogger,
    );
    cleanup.add(() => chat.stop());
    await expect(chat.start()).rejects.toThrow(discordTokenRejected('401 Unauthorized').message);
    expect(discord.calls.map((c) => `${c.method} ${c.path} ${c.status}`)).toEqual(['GET /users/@me 401']);
  });

  it('accepted tokens, and chat services that cannot be reached, let it start (the latter logged, naming the variable)', async () => {
    const { slack, discord } = await fakes();
    const good = chatReporters(
      loadConfig({
        SLACK_BOT_TOKEN: slack.token,
        SLACK_SIGNING_SECRET: 'secret',
        SLACK_API_URL: slack.apiUrl,
        DISCORD_TOKEN: discord.token,
        DISCORD_APPLICATION_ID: discord.applicationId,
        DISCORD_API_URL: discord.apiUrl,
      }),
      silentLogger,
    );
    cleanup.add(() => good.stop());
    await good.start();
    expect(slack.callsOf('auth.test').map((c) => c.response.ok)).toEqual([true]);
    expect(discord.calls.map((c) => `${c.method} ${c.path} ${c.status}`)).toEqual(['GET /users/@me 200']);

    const port = await closedPort();
    const log = new CapturedLog('info');
    const away = chatReporters(
      loadConfig({
        SLACK_BOT_TOKEN: slack.token,
        SLACK_SIGNING_SECRET: 'secret',
        SLACK_API_URL: `http://127.0.0.1:${port}/api/`,
        DISCORD_TOKEN: discord.token,
        DISCORD_APPLICATION_ID: discord.applicationId,
        DISCORD_API_URL: `http://127.0.0.1:${port}/api`,
      }),
      log.logger,
    );
    cleanup.add(() => away.stop());
    await away.start();
    // Both checks run at once: in whichever order they end.
    const errors = log.lines
      .filter((l) => l.level >= 50)
      .map((l) => l.msg)
      .sort();
    expect(errors).toEqual([
      expect.stringMatching(/^discord: could not check DISCORD_TOKEN \(.*ECONNREFUSED.*\)/),
      expect.stringMatching(
        /^slack: could not check SLACK_BOT_TOKEN \(ECONNREFUSED\); the worker starts anyway/,
      ),
    ]);
  });

  it('the process: a rejected SLACK_BOT_TOKEN or DISCORD_TOKEN is a configuration error naming it (exit 2), before the worker is ready', async () => {
    const { slack, discord } = await fakes();
    const slackRun = worker({
      SLACK_BOT_TOKEN: 'xoxb-1234-5678-wrongwrongwrong',
      SLACK_SIGNING_SECRET: 'secret',
      SLACK_API_URL: slack.apiUrl,
    });
    const discordRun = worker({
      DISCORD_TOKEN: 'wrong-token',
      DISCORD_APPLICATION_ID: discord.applicationId,
      DISCORD_API_URL: discord.apiUrl,
    });
    expect(await exitOrReady(slackRun)).toBe(2);
    expect(slackRun.out()).toMatch(
      /switchyard worker: configuration error\s+SLACK_BOT_TOKEN: Slack rejected the bot token \(invalid_auth\)/,
    );
    expect(slackRun.out()).not.toContain('switch worker ready');
    expect(await exitOrReady(discordRun)).toBe(2);
    expect(discordRun.out()).toMatch(
      /switchyard worker: configuration error\s+DISCORD_TOKEN: Discord rejected the bot token \(401 Unauthorized\)/,
    );
    expect(discordRun.out()).not.toContain('switch worker ready');
  });

  /**
   * A Slack Web API that accepts connections and never answers (the token check waits its whole
   * `waitMs`); `reached` resolves once the first request's connection arrived.
   */
  async function silentSlack(): Promise<{ apiUrl: string; reached: Promise<void> }> {
    let arrived!: () => void;
    const reached = new Promise<void>((resolve) => (arrived = resolve));
    const sockets: Socket[] = [];
    const server = createServer((socket) => {
      sockets.push(socket);
      arrived();
    });
    const port = await new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
    );
    cleanup.add(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    return { apiUrl: `http://127.0.0.1:${port}/api/`, reached };
  }

  it('told to stop during the token check, start() ends at once without the answer, and logs no failed check', async () => {
    const slack = await silentSlack();
    const log = new CapturedLog('info');
    const chat = chatReporters(
      loadConfig({
        SLACK_BOT_TOKEN: 'xoxb-1234-5678-unanswered',
        SLACK_SIGNING_SECRET: 'secret',
        SLACK_API_URL: slack.apiUrl,
      }),
      log.logger,
      undefined,
      // Longer than the test's timeout: start() may end only through the signal.
      { slackWaitMs: 600_000 },
    );
    cleanup.add(() => chat.stop());
    const stopping = new AbortController();
    const started = chat.start(stopping.signal);
    await slack.reached;
    stopping.abort();
    await started;
    expect(log.lines.filter((l) => l.level >= 40)).toEqual([]);
  });

  it('the process: a SIGTERM during the token check stops it there (exit 0): it never starts the worker, and a queued switch stays queued', async () => {
    const clock = new ManualClock();
    const local = await LocalPlatform.open({ clock, seed: jobsSeed(1, clock.now()), maintenance: false });
    cleanup.add(() => local.close());
    const queueName = uniqueName('q');
    const prefix = uniqueName('p');
    const queue = await openTestQueue(cleanup, { queueName, prefix });
    const now = clock.now();
    const { jobId } = await queue.enqueue(jobData(await planFor(local, 'env0', 'rollback', now), now));
    const slack = await silentSlack();
    const r = run(['handlers/worker.ts', '--queue', queueName, '--prefix', prefix], {
      REDIS_URL: redisUrl(),
      LOG_LEVEL: 'info',
      SLACK_BOT_TOKEN: 'xoxb-1234-5678-unanswered',
      SLACK_SIGNING_SECRET: 'secret',
      SLACK_API_URL: slack.apiUrl,
    });
    // Inside its token check: auth.test reached the Slack that does not answer.
    await slack.reached;
    r.child.kill('SIGTERM');
    expect(await r.exited).toBe(0);
    expect(r.out()).toMatch(/shutting down/);
    expect(r.out()).not.toContain('switch worker ready');
    expect(r.out()).not.toContain('could not check SLACK_BOT_TOKEN');
    // Still waiting for a worker: the one told to stop never took it.
    const progress = await queue.progress(jobId);
    expect(progress?.steps.map((s) => `${s.step}:${s.state}`)).toEqual(['queued:running']);
  });

  it('the process: Slack and Discord unreachable, it starts all the same (switches must run during a chat outage)', async () => {
    const port = await closedPort();
    const r = worker({
      SLACK_BOT_TOKEN: 'xoxb-1234-5678-unchecked',
      SLACK_SIGNING_SECRET: 'secret',
      SLACK_API_URL: `http://127.0.0.1:${port}/api/`,
      DISCORD_TOKEN: 'unchecked-token',
      DISCORD_APPLICATION_ID: '123456789012345678',
      DISCORD_API_URL: `http://127.0.0.1:${port}/api`,
    });
    await waitFor(r, /switch worker ready/);
    expect(r.out()).toContain('could not check SLACK_BOT_TOKEN');
    expect(r.out()).toContain('could not check DISCORD_TOKEN');
  });
});

describe('told to stop while start-up waits for an unreachable Redis', () => {
  afterEach(() => killStarted());

  /** A loopback port nothing listens on: a Redis that refuses every connection (ECONNREFUSED). */
  async function refusingPort(): Promise<number> {
    const server = createServer();
    const port = await new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
    );
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }

  /** runWorker on `url` with a stop signal; resolves once it logged that Redis is unreachable. */
  async function waitingFor(url: string, flags: readonly string[] = []) {
    const lines = new LogLines();
    const logger = createLogger({ level: 'debug', pretty: false, destination: lines });
    const stopping = new AbortController();
    const started = runWorker({
      config: configWithRedis(url),
      logger,
      argv: ['--queue', uniqueName('switch'), ...flags],
      signal: stopping.signal,
    }).then(
      (running) => {
        cleanup.add(() => running.stop());
        return running;
      },
      (e: unknown) => e,
    );
    await lines.until((all) => all.some((l) => l.msg === 'Redis is unreachable; reconnecting'));
    return { lines, stopping, started };
  }

  it('runWorker ends at the signal, closing what it started (its metrics port too)', async () => {
    const port = await refusingPort();
    const metricsPort = await refusingPort();
    const { lines, stopping, started } = await waitingFor(`redis://127.0.0.1:${port}`, [
      '--metrics-port',
      String(metricsPort),
    ]);
    // Serving while it waits (listening comes first)...
    expect((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status).toBe(200);
    stopping.abort();
    expect(await started).toBeInstanceOf(WorkerStartAborted);
    // ...and closed once start-up stopped: nothing outlives it.
    await expect(fetch(`http://127.0.0.1:${metricsPort}/healthz`)).rejects.toThrow();
    expect(lines.parsed.map((l) => l.msg)).toContain('start-up stopped before the worker was ready');
    expect(lines.parsed.map((l) => l.msg)).not.toContain('switch worker ready');
  });

  it('runWorker ends at the signal on an unreachable Redis Cluster too', async () => {
    const port = await refusingPort();
    const { stopping, started } = await waitingFor(`redis+cluster://127.0.0.1:${port}`);
    stopping.abort();
    expect(await started).toBeInstanceOf(WorkerStartAborted);
  });

  // The timeout is longer than handleSignals' 40 s limit, so that a worker ignoring the signal fails on
  // its exit code and log rather than on the test's timeout.
  it('the process: a SIGTERM stops it there (exit 0, "stopped"), without waiting for Redis or forcing the exit', {
    timeout: 60_000,
  }, async () => {
    const port = await refusingPort();
    const r = run(['handlers/worker.ts', '--queue', uniqueName('q'), '--prefix', uniqueName('p')], {
      REDIS_URL: `redis://127.0.0.1:${port}`,
      LOG_LEVEL: 'info',
    });
    await waitFor(r, /Redis is unreachable; reconnecting/);
    r.child.kill('SIGTERM');
    const code = await r.exited;
    expect({
      code,
      forced: /shutdown took longer/.test(r.out()),
      stopped: /start-up stopped before the worker was ready[\s\S]*"stopped"/.test(r.out()),
      ready: r.out().includes('switch worker ready'),
    }).toEqual({ code: 0, forced: false, stopped: true, ready: false });
  });
});
