/**
 * Switch job benchmark, all figures measured in the same run on the same Redis:
 *   1. bare BullMQ: `queue.add` → processor ran → job completed (a no-op processor), sequential;
 *   2. the platform's own switch time: LocalPlatform rollback/promote called directly, its operation
 *      polled and every affected domain probed until it answers from the target (what any caller
 *      must wait for, with the same poll interval the worker uses);
 *   3. Switchyard: `SwitchQueue.enqueue` → worker (environment lock, re-validation, platform call,
 *      operation follow, traffic verification, progress, audit) → job completed, sequential;
 *   4. throughput: 10 environments switching at once, rounds of rollback/promote.
 * Prints p50/p99 of each, the overhead ratio (Switchyard − platform) / bare (target ≤ 1.5) and
 * switches/s. Uses REDIS_URL, else spawns a private redis-server. Asserts nothing; bounded runtime.
 *
 *   npx tsx bench/jobs.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { startSwitchWorker } from '../jobs/switch-worker.js';
import { AuditLog } from '../src/audit.js';
import { systemClock } from '../src/clock.js';
import { loadConfig } from '../src/config.js';
import { buildPlan } from '../src/domain/plan.js';
import type { PlanAction } from '../src/domain/types.js';
import { type Logger, silentLogger } from '../src/log.js';
import { LocalPlatform } from '../src/platform/local/platform.js';
import type { Progress, Reporter } from '../src/progress.js';
import { jobIdForPlan, SwitchQueue, switchJobFromPlan } from '../src/queue.js';
import { createRedis } from '../src/redis.js';
import { spawnRedis } from '../src/redis-server.js';
import { jobsSeed, seedIds } from '../test/jobs/fixtures/seed.js';

export interface JobsBenchOptions {
  readonly redisUrl?: string;
  /** Sequential round trips per latency phase. */
  readonly iterations?: number;
  /** Environments switching at once in the throughput phase. */
  readonly environments?: number;
  /** Throughput rounds (each switches every environment once). */
  readonly rounds?: number;
  /** Operation poll / probe interval of the worker and of the platform baseline. */
  readonly pollMs?: number;
  readonly log?: (line: string) => void;
  /** Worker logger (default silent). */
  readonly debugLogger?: Logger;
}

export interface Latency {
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
}

export interface JobsBenchResult {
  readonly bare: Latency;
  readonly platform: Latency;
  readonly switchyard: Latency;
  /** (Switchyard p50 − platform p50) / bare p50. */
  readonly overheadRatioP50: number;
  /** (Switchyard p99 − platform p99) / bare p99. */
  readonly overheadRatioP99: number;
  /** Switchyard p50 / (1.5 × bare p50 + platform p50): ≤ 1 meets the target. */
  readonly targetFactor: number;
  readonly throughputPerSec: number;
  readonly parallelRoundMs: Latency;
}

function stats(samples: number[]): Latency {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { p50: at(0.5), p99: at(0.99), mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length) };
}

const fmt = (ms: number) => `${ms.toFixed(2)} ms`;

const nullReporter: Reporter = { report: async () => undefined };

/** Runs the benchmark and prints the figures; returns them too. */
export async function runJobsBench(opts: JobsBenchOptions = {}): Promise<JobsBenchResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const iterations = opts.iterations ?? 200;
  const envCount = opts.environments ?? 10;
  const rounds = opts.rounds ?? 20;
  const pollMs = opts.pollMs ?? 2;
  let spawned: Awaited<ReturnType<typeof spawnRedis>> | undefined;
  let dir: string | undefined;
  let url = opts.redisUrl;
  if (!url) {
    dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-jobs-'));
    spawned = await spawnRedis({ dir });
    url = spawned.url;
  }
  const redisUrl = url;
  const tag = `bench-${process.pid}-${Date.now().toString(36)}`;
  const closers: (() => Promise<unknown>)[] = [];
  try {
    // ---------------------------------------------------------------- 1. bare BullMQ
    const bareName = `${tag}-bare`;
    const bareConn = createRedis(redisUrl);
    const bareQueue = new Queue(bareName, { connection: bareConn });
    const bareWorkerConn = createRedis(redisUrl);
    const bareWorker = new Worker(bareName, async () => 'ok', {
      connection: bareWorkerConn,
      concurrency: 10,
    });
    closers.push(async () => {
      await bareWorker.close();
      bareWorkerConn.disconnect();
      await bareQueue.obliterate({ force: true });
      await bareQueue.close();
      bareConn.disconnect();
    });
    await bareWorker.waitUntilReady();
    const bareDone = new Map<string, () => void>();
    bareWorker.on('completed', (job) => bareDone.get(job.id ?? '')?.());
    const bareSamples: number[] = [];
    for (let i = 0; i < iterations + 20; i++) {
      const id = `b${i}`;
      const done = new Promise<void>((resolve) => bareDone.set(id, resolve));
      const t0 = performance.now();
      await bareQueue.add('noop', { i }, { jobId: id });
      await done;
      if (i >= 20) bareSamples.push(performance.now() - t0);
    }
    const bare = stats(bareSamples);

    // ---------------------------------------------------------------- the platform
    const platform = await LocalPlatform.open({
      clock: systemClock,
      seed: jobsSeed(envCount, Date.now()),
      maintenance: false,
    });
    closers.push(() => platform.close());
    const nextAction = async (env: string, i: number) => {
      // Alternate: rollback to the previous deployment, then promote the original back.
      const idx = Number(env.slice(3));
      const action: PlanAction = i % 2 === 0 ? 'rollback' : 'promote';
      const ids = seedIds(idx);
      const target = action === 'rollback' ? ids.previous : ids.current;
      const snap = await platform.snapshot(env);
      const res = buildPlan(snap, { action, now: Date.now(), target });
      if (!res.ok) throw new Error(`bench plan refused: ${res.refusal.message}`);
      return res.value;
    };

    // ---------------------------------------------------------------- 2. platform switch time
    const platformSamples: number[] = [];
    for (let i = 0; i < iterations; i++) {
      const plan = await nextAction('env0', i);
      const t0 = performance.now();
      const req = { environment: plan.environment, targetId: plan.target.id };
      const ref = plan.action === 'rollback' ? await platform.rollback(req) : await platform.promote(req);
      for (;;) {
        const st = await platform.operation(ref);
        if (st.state === 'succeeded') break;
        if (st.state === 'failed') throw new Error(`platform switch failed: ${st.error?.message}`);
        await systemClock.sleep(pollMs);
      }
      for (const d of plan.affectedDomains) {
        for (;;) {
          const p = await platform.probe(d.hostname);
          if (p.deploymentId === plan.target.id) break;
          await systemClock.sleep(pollMs);
        }
      }
      platformSamples.push(performance.now() - t0);
    }
    const platformLatency = stats(platformSamples);

    // ---------------------------------------------------------------- 3. Switchyard round trip
    const queueName = `${tag}-switch`;
    const auditRedis = createRedis(redisUrl);
    const audit = new AuditLog(auditRedis, { prefix: tag });
    // The bench repeats identical plans back to back (rollback, promote, rollback…): no dedupe window.
    // As in the app: Flow audits requests, the worker audits the rest.
    const queue = new SwitchQueue({ redisUrl, queueName, dedupeWindowMs: 1 });
    const handle = startSwitchWorker({
      redisUrl,
      queueName,
      platform,
      reporter: nullReporter,
      clock: systemClock,
      verify: { timeoutMs: 10_000, intervalMs: pollMs },
      lockDurationMs: 30_000,
      concurrency: envCount,
      logger: opts.debugLogger ?? silentLogger,
      audit,
    });
    closers.push(async () => {
      await handle.close();
      await queue.obliterate();
      await queue.close();
      for (let i = 0; i < envCount; i++) await auditRedis.del(audit.key(`env${i}`));
      auditRedis.disconnect();
    });
    await handle.worker.waitUntilReady();
    const done = new Map<string, (p: Progress) => void>();
    handle.worker.on('completed', (job, result: Progress) => done.get(job.id ?? '')?.(result));
    const failed = new Map<string, (e: Error) => void>();
    handle.worker.on('failed', (job, err) => {
      if (job && err.name === 'UnrecoverableError') failed.get(job.id ?? '')?.(err);
    });
    const switchOnce = async (env: string, i: number): Promise<number> => {
      const plan = await nextAction(env, i);
      const data = switchJobFromPlan(plan, {
        requestedBy: { surface: 'console', userId: 'bench', displayName: 'Bench' },
        requestedAt: Date.now(),
      });
      const jobId = jobIdForPlan(plan.id);
      const finished = new Promise<Progress>((resolve, reject) => {
        done.set(jobId, resolve);
        failed.set(jobId, reject);
      });
      const t0 = performance.now();
      await queue.enqueue(data);
      const result = await finished;
      done.delete(jobId);
      failed.delete(jobId);
      if (result.outcome !== 'succeeded') throw new Error(`switch ${jobId} ended ${result.outcome}`);
      return performance.now() - t0;
    };
    const syxSamples: number[] = [];
    // Start after the platform phase's last action so the alternation stays valid.
    for (let i = 0; i < iterations + 10; i++) {
      const ms = await switchOnce('env0', iterations + i);
      if (i >= 10) syxSamples.push(ms);
    }
    const switchyard = stats(syxSamples);

    // ---------------------------------------------------------------- 4. throughput
    const roundSamples: number[] = [];
    const envs = Array.from({ length: envCount }, (_, i) => `env${i}`);
    const tStart = performance.now();
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      // env0 has done an even number of switches so far, like the others: all are in the same phase.
      await Promise.all(envs.map((env) => switchOnce(env, env === 'env0' ? 2 * iterations + 10 + r : r)));
      roundSamples.push(performance.now() - t0);
    }
    const totalMs = performance.now() - tStart;
    const throughputPerSec = (rounds * envCount * 1000) / totalMs;

    const result: JobsBenchResult = {
      bare,
      platform: platformLatency,
      switchyard,
      overheadRatioP50: (switchyard.p50 - platformLatency.p50) / bare.p50,
      overheadRatioP99: (switchyard.p99 - platformLatency.p99) / bare.p99,
      targetFactor: switchyard.p50 / (1.5 * bare.p50 + platformLatency.p50),
      throughputPerSec,
      parallelRoundMs: stats(roundSamples),
    };
    log(`switch jobs bench (${iterations} sequential round trips each, poll interval ${pollMs} ms)`);
    log(`  bare BullMQ add → completed         p50 ${fmt(bare.p50)}  p99 ${fmt(bare.p99)}`);
    log(
      `  platform's own switch (call → op succeeded → domains answer)  p50 ${fmt(platformLatency.p50)}  p99 ${fmt(platformLatency.p99)}`,
    );
    log(
      `  Switchyard enqueue → verified → completed  p50 ${fmt(switchyard.p50)}  p99 ${fmt(switchyard.p99)}`,
    );
    log(
      `  overhead ratio (Switchyard − platform) / bare: p50 ${result.overheadRatioP50.toFixed(2)}×  p99 ${result.overheadRatioP99.toFixed(2)}×  (target ≤ 1.5×)`,
    );
    log(
      `  Switchyard p50 / (1.5 × bare + platform) = ${result.targetFactor.toFixed(2)} (≤ 1 meets the target)`,
    );
    log(
      `  throughput: ${envCount} environments switching at once, ${rounds} rounds: ${throughputPerSec.toFixed(1)} switches/s; round p50 ${fmt(result.parallelRoundMs.p50)} p99 ${fmt(result.parallelRoundMs.p99)}`,
    );
    return result;
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await spawned?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  let redisUrl: string | undefined;
  try {
    redisUrl = loadConfig().env.REDIS_URL;
  } catch {
    redisUrl = undefined;
  }
  runJobsBench(redisUrl ? { redisUrl } : {}).catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
