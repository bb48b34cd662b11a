/**
 * Child of test/redis/tls.test.ts: Switchyard's own Redis code against the REDIS_URL it is given, in a
 * process of its own so that NODE_EXTRA_CA_CERTS (which Node reads only at start-up) decides whether
 * the test CA is trusted. As start-up does (handlers/app.ts): a patient and a fail-fast connection, the
 * wait for Redis (`redisReady`), `clusterMismatch` and `checkRedis`; then one rollback through a fresh
 * switch queue (argv[2]) and a worker on the LocalPlatform. Prints `{"warnings","outcome","live"}` as
 * one JSON line and exits 0; anything failing ends it with an error instead.
 */
import { startSwitchWorker } from '../../jobs/switch-worker.js';
import { systemClock } from '../../src/clock.js';
import { parseEnv } from '../../src/config.js';
import { buildPlan } from '../../src/domain/plan.js';
import { silentLogger } from '../../src/log.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import { SwitchQueue, switchJobFromPlan } from '../../src/queue.js';
import { closeRedis, createRedis, createRequestRedis, redisReady } from '../../src/redis.js';
import { checkRedis, clusterMismatch } from '../../src/redis-check.js';
import { jobsSeed } from '../jobs/fixtures/seed.js';

const url = parseEnv(process.env).REDIS_URL;
const queueName = process.argv[2];
if (url === undefined || queueName === undefined) throw new Error('usage: REDIS_URL=… tls-child.ts <queue>');

const redis = createRedis(url);
const requestRedis = createRequestRedis(url);
await redisReady(requestRedis, 10_000, 'Redis (REDIS_URL)');
const mismatch = await clusterMismatch(requestRedis);
if (mismatch !== undefined) throw new Error(mismatch);
const warnings = (await checkRedis(redis)).map((w) => w.code);

const local = await LocalPlatform.open({
  clock: systemClock,
  seed: jobsSeed(1, systemClock.now()),
  maintenance: false,
});
const worker = startSwitchWorker({
  redisUrl: url,
  queueName,
  platform: local,
  reporter: { report: () => Promise.resolve() },
  clock: systemClock,
  verify: { timeoutMs: 5_000, intervalMs: 5 },
  lockDurationMs: 5_000,
  concurrency: 1,
  logger: silentLogger,
});
await worker.worker.waitUntilReady();
const queue = new SwitchQueue({ redisUrl: url, queueName });
await queue.waitUntilReady();

const now = systemClock.now();
const plan = buildPlan(await local.snapshot('env0'), { action: 'rollback', now });
if (!plan.ok) throw new Error(`plan refused: ${plan.refusal.message}`);
const { jobId } = await queue.enqueue(
  switchJobFromPlan(plan.value, {
    requestedBy: { surface: 'console', userId: 'u-tls', displayName: 'TLS test' },
    messages: [{ surface: 'console', channel: 'ops', messageId: 'm-tls' }],
    requestedAt: now,
  }),
);
const final = await queue.waitForEnd(jobId, 20_000);
const live = (await local.snapshot('env0')).environment.currentDeploymentId;

await queue.obliterate();
await queue.close();
await worker.close();
await local.close();
await closeRedis(requestRedis);
await closeRedis(redis);
process.stdout.write(`${JSON.stringify({ warnings, outcome: final?.outcome, live })}\n`);
