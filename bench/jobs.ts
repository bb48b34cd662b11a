/**
 * Switch job benchmark, all figures measured in the same run on the same Redis:
 *   1. bare BullMQ: `queue.add` → processor ran → job completed (a no-op processor), sequential;
 *   2. the platform's own switch time: LocalPlatform rollback/promote called directly, its operation
 *      polled and every affected domain probed until it answers from the target (what any caller
 *      must wait for, with the same poll interval the worker uses);
 *   3. Switchyard: `SwitchQueue.enqueue` → worker (environment lock, re-validation, platform call,
 *      operation follow, traffic verification, progress, audit) → job completed, sequential: with new
 *      plans (rollback; push and promote), and with the same plans repeated (each replaces its
 *      ended job);
 *   4. the ideal switch job: a bare BullMQ job whose processor takes a lock and runs the platform's
 *      switch as in 2 (no re-validation, progress, audit or claim), the floor of the ratio here;
 *   5. throughput: 10 environments switching at once, rounds of rollback/promote.
 * The sequential measurements run in interleaved blocks, so a shared machine's drift hits all alike.
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
import { buildPlan, type Plan } from '../src/domain/plan.js';
import type { PlanAction } from '../src/domain/types.js';
import { type Logger, silentLogger } from '../src/log.js';
import { LocalPlatform } from '../src/platform/local/platform.js';
import type { Progress, Reporter } from '../src/progress.js';
import { SwitchQueue, switchJobFromPlan } from '../src/queue.js';
import { createRedis } from '../src/redis.js';
import { spawnRedis } from '../src/redis-server.js';
import { jobsSeed } from '../test/jobs/fixtures/seed.js';

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
  /** New plans (rollback, then push and promote the new deployment: every plan id differs). */
  readonly switchyard: Latency;
  /** The same two plans over and over (each replaces the ended job of the same plan). */
  readonly repeat: Latency;
  /** The ideal switch job: a bare BullMQ job taking a lock and running the platform's switch. */
  readonly ideal: Latency;
  /** (ideal p50 − platform p50) / bare p50: the floor of the overhead ratio on this machine. */
  readonly idealOverheadRatioP50: number;
  /** (Switchyard p50 − platform p50) / bare p50, new plans. */
  readonly overheadRatioP50: number;
  /** (Switchyard p99 − platform p99) / bare p99, new plans. */
  readonly overheadRatioP99: number;
  readonly repeatOverheadRatioP50: number;
  readonly repeatOverheadRatioP99: number;
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

/**
 * How an environment's next plan is chosen. `new`: rollback to the previous deployment, then push a
 * new one (untimed) and promote it: the usual incident path, every plan id new. `repeat`: rollback to
 * the previous deployment, promote the original back, and so on: the same two plan ids again and again.
 */
type PlanMode = 'new' | 'repeat';

/** Produces an environment's next plan (`PlanMode`); keeps the rollback/promote alternation valid. */
class PlanDriver {
  private step = 0;
  private original: string | undefined;
  constructor(
    private readonly platform: LocalPlatform,
    private readonly env: string,
    private readonly mode: PlanMode,
  ) {}

  async next(): Promise<Plan> {
    const action: PlanAction = this.step++ % 2 === 0 ? 'rollback' : 'promote';
    let target: string | undefined;
    if (action === 'rollback') {
      this.original = (await this.platform.snapshot(this.env)).environment.currentDeploymentId;
    } else if (this.mode === 'repeat') {
      target = this.original;
    } else {
      target = await this.pushReady();
    }
    const snap = await this.platform.snapshot(this.env);
    const res = buildPlan(snap, { action, now: Date.now(), ...(target === undefined ? {} : { target }) });
    if (!res.ok) throw new Error(`bench plan refused: ${res.refusal.message}`);
    return res.value;
  }

  /** Pushes a deployment and waits until it is ready (the environment is rolled back: it takes no domain). */
  private async pushReady(): Promise<string> {
    let off: (() => void) | undefined;
    let id = '';
    const ready = new Promise<void>((resolve, reject) => {
      off = this.platform.subscribe((e) => {
        if (e.type === 'deployment.ready' && e.deploymentId === id) resolve();
        if (e.type === 'deployment.failed' && e.deploymentId === id)
          reject(new Error(`bench push ${id} failed`));
      });
    });
    try {
      id = (await this.platform.push({ environment: this.env, message: 'bench push' })).id;
      await ready;
      return id;
    } finally {
      off?.();
    }
  }
}

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
    // ---------------------------------------------------------------- bare BullMQ
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
    let bareSeq = 0;
    const bareOnce = async (): Promise<number> => {
      const id = `b${bareSeq++}`;
      const done = new Promise<void>((resolve) => bareDone.set(id, resolve));
      const t0 = performance.now();
      await bareQueue.add('noop', { i: bareSeq }, { jobId: id });
      await done;
      bareDone.delete(id);
      return performance.now() - t0;
    };

    // ---------------------------------------------------------------- the platform
    // Environments: 0 the platform baseline, 1 Switchyard with new plans, 2 Switchyard repeating one
    // pair of plans, 3 the ideal job, 4.. the throughput phase.
    const platform = await LocalPlatform.open({
      clock: systemClock,
      seed: jobsSeed(4 + envCount, Date.now()),
      maintenance: false,
      buildTimeMs: 0,
    });
    closers.push(() => platform.close());
    const drivers = new Map<string, PlanDriver>();
    const driver = (env: string, mode: PlanMode) => {
      let d = drivers.get(env);
      if (!d) {
        d = new PlanDriver(platform, env, mode);
        drivers.set(env, d);
      }
      return d;
    };

    // The platform's own switch: call, follow its operation, probe every domain until it answers from
    // the target (what any caller must wait for, with the worker's poll interval).
    const platformSwitch = async (plan: Plan): Promise<void> => {
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
    };
    const platformOnce = async (): Promise<number> => {
      const plan = await driver('env0', 'new').next();
      const t0 = performance.now();
      await platformSwitch(plan);
      return performance.now() - t0;
    };

    // ---------------------------------------------------------------- the ideal switch job
    // A bare BullMQ job whose processor takes an environment lock (one EVAL) and runs the platform's
    // switch as above: no re-validation, progress, audit or claim. The floor of any queued switch here.
    const idealName = `${tag}-ideal`;
    const idealConn = createRedis(redisUrl);
    const idealQueue = new Queue(idealName, { connection: idealConn });
    const idealWorkerConn = createRedis(redisUrl);
    const idealPlans = new Map<string, Plan>();
    const idealLock = `${tag}:ideal-lock`;
    const idealWorker = new Worker(
      idealName,
      async (job) => {
        await idealWorkerConn.set(idealLock, job.id ?? '', 'PX', 30_000, 'NX');
        const plan = idealPlans.get(job.id ?? '');
        if (plan) await platformSwitch(plan);
        void idealWorkerConn.del(idealLock);
        return 'ok';
      },
      { connection: idealWorkerConn, concurrency: 10 },
    );
    idealWorker.on('error', () => undefined);
    closers.push(async () => {
      await idealWorker.close();
      idealWorkerConn.disconnect();
      await idealQueue.obliterate({ force: true });
      await idealQueue.close();
      idealConn.disconnect();
    });
    await idealWorker.waitUntilReady();
    const idealDone = new Map<string, () => void>();
    idealWorker.on('completed', (job) => idealDone.get(job.id ?? '')?.());
    let idealSeq = 0;
    const idealOnce = async (): Promise<number> => {
      const plan = await driver('env3', 'new').next();
      const id = `i${idealSeq++}`;
      idealPlans.set(id, plan);
      const done = new Promise<void>((resolve) => idealDone.set(id, resolve));
      const t0 = performance.now();
      await idealQueue.add('switch', { planId: plan.id }, { jobId: id });
      await done;
      idealDone.delete(id);
      idealPlans.delete(id);
      return performance.now() - t0;
    };

    // ---------------------------------------------------------------- Switchyard
    const queueName = `${tag}-switch`;
    const auditRedis = createRedis(redisUrl);
    const audit = new AuditLog(auditRedis, { prefix: tag });
    // The repeat mode asks for identical plans back to back (rollback, promote, rollback…): no dedupe
    // window, so each is a new request that replaces the ended job of the same plan.
    // As in the app: Flow audits requests, the worker audits the rest.
    // As the bot process opens it: fail-fast (src/redis.ts), so an outage refuses a request at once.
    const queue = new SwitchQueue({ redisUrl, queueName, dedupeWindowMs: 1, failFast: true });
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
      for (let i = 0; i < 4 + envCount; i++) await auditRedis.del(audit.key(`env${i}`));
      auditRedis.disconnect();
    });
    await handle.worker.waitUntilReady();
    const done = new Map<string, (p: Progress) => void>();
    const failed = new Map<string, (e: Error) => void>();
    const byPlan = (job: { data: unknown }) =>
      typeof job.data === 'object' && job.data !== null && 'planId' in job.data
        ? String(job.data.planId)
        : '';
    handle.worker.on('completed', (job, result: Progress) => done.get(byPlan(job))?.(result));
    handle.worker.on('failed', (job, err) => {
      if (job && err.name === 'UnrecoverableError') failed.get(byPlan(job))?.(err);
    });
    const switchOnce = async (env: string, mode: PlanMode): Promise<number> => {
      const plan = await driver(env, mode).next();
      const data = switchJobFromPlan(plan, {
        requestedBy: { surface: 'console', userId: 'bench', displayName: 'Bench' },
        requestedAt: Date.now(),
      });
      const finished = new Promise<Progress>((resolve, reject) => {
        done.set(plan.id, resolve);
        failed.set(plan.id, reject);
      });
      const t0 = performance.now();
      await queue.enqueue(data);
      const result = await finished;
      done.delete(plan.id);
      failed.delete(plan.id);
      if (result.outcome !== 'succeeded') throw new Error(`switch of ${plan.id} ended ${result.outcome}`);
      return performance.now() - t0;
    };

    // ---------------------------------------------------------------- sequential latency, interleaved
    // Blocks of each measurement in turn, so that drift in a shared machine's load hits all alike.
    const bareSamples: number[] = [];
    const platformSamples: number[] = [];
    const idealSamples: number[] = [];
    const freshSamples: number[] = [];
    const repeatSamples: number[] = [];
    const perBlock = Math.max(1, Math.min(20, iterations));
    const blocks = Math.max(1, Math.ceil(iterations / perBlock));
    for (let b = -1; b < blocks; b++) {
      // Block -1 warms every path up and is not counted.
      const keep = (into: number[], ms: number) => {
        if (b >= 0) into.push(ms);
      };
      for (let i = 0; i < perBlock; i++) keep(bareSamples, await bareOnce());
      for (let i = 0; i < perBlock; i++) keep(platformSamples, await platformOnce());
      for (let i = 0; i < perBlock; i++) keep(idealSamples, await idealOnce());
      for (let i = 0; i < perBlock; i++) keep(freshSamples, await switchOnce('env1', 'new'));
      for (let i = 0; i < perBlock; i++) keep(repeatSamples, await switchOnce('env2', 'repeat'));
    }
    const bare = stats(bareSamples);
    const platformLatency = stats(platformSamples);
    const ideal = stats(idealSamples);
    const switchyard = stats(freshSamples);
    const repeat = stats(repeatSamples);

    // ---------------------------------------------------------------- throughput
    const roundSamples: number[] = [];
    const envs = Array.from({ length: envCount }, (_, i) => `env${4 + i}`);
    const tStart = performance.now();
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      await Promise.all(envs.map((env) => switchOnce(env, 'repeat')));
      roundSamples.push(performance.now() - t0);
    }
    const totalMs = performance.now() - tStart;
    const throughputPerSec = (rounds * envCount * 1000) / totalMs;

    const overhead = (syx: Latency) => ({
      p50: (syx.p50 - platformLatency.p50) / bare.p50,
      p99: (syx.p99 - platformLatency.p99) / bare.p99,
    });
    const result: JobsBenchResult = {
      bare,
      platform: platformLatency,
      switchyard,
      repeat,
      overheadRatioP50: overhead(switchyard).p50,
      overheadRatioP99: overhead(switchyard).p99,
      repeatOverheadRatioP50: overhead(repeat).p50,
      repeatOverheadRatioP99: overhead(repeat).p99,
      ideal,
      idealOverheadRatioP50: overhead(ideal).p50,
      targetFactor: switchyard.p50 / (1.5 * bare.p50 + platformLatency.p50),
      throughputPerSec,
      parallelRoundMs: stats(roundSamples),
    };
    log(
      `switch jobs bench (${blocks * perBlock} sequential round trips each, in interleaved blocks of ${perBlock}; poll interval ${pollMs} ms)`,
    );
    log(
      `  bare BullMQ add → completed                                    p50 ${fmt(bare.p50)}  p99 ${fmt(bare.p99)}`,
    );
    log(
      `  platform's own switch (call → op succeeded → domains answer)  p50 ${fmt(platformLatency.p50)}  p99 ${fmt(platformLatency.p99)}`,
    );
    log(
      `  ideal switch job (bare job + lock + the platform's switch)    p50 ${fmt(ideal.p50)}  p99 ${fmt(ideal.p99)}`,
    );
    log(
      `    its overhead ratio (ideal − platform) / bare: p50 ${result.idealOverheadRatioP50.toFixed(2)}×  (the floor here: no re-validation, progress, audit or claim)`,
    );
    log(
      `  Switchyard enqueue → verified → completed, new plans          p50 ${fmt(switchyard.p50)}  p99 ${fmt(switchyard.p99)}`,
    );
    log(
      `    overhead ratio (Switchyard − platform) / bare: p50 ${result.overheadRatioP50.toFixed(2)}×  p99 ${result.overheadRatioP99.toFixed(2)}×  (target ≤ 1.5×)`,
    );
    log(
      `  … the same plan again (replaces its ended job)              p50 ${fmt(repeat.p50)}  p99 ${fmt(repeat.p99)}`,
    );
    log(
      `    overhead ratio (Switchyard − platform) / bare: p50 ${result.repeatOverheadRatioP50.toFixed(2)}×  p99 ${result.repeatOverheadRatioP99.toFixed(2)}×  (target ≤ 1.5×)`,
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
