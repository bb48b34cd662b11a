/**
 * Traffic router benchmark (issue 2). In one process, with the same client, concurrency and request
 * count, measured in the same run and interleaved (direct, router, direct, router, …; median round):
 *   - requests/s, p50/p99 latency and process CPU per request hitting one upstream directly (the
 *     baseline) and through the TrafficRouter (Host routing + proxy hop), and their ratios — for an
 *     upstream that does no work at saturation (the hop is the whole difference: the worst case), and for
 *     one with a fixed service time at a load that leaves CPU to spare (closer to a real application);
 *   - the no-work scenario again with the load generator in a worker thread, so that client and router
 *     do not share one event loop (the baseline measured the same way);
 *   - failed requests across back-and-forth switches under load (route swaps only, then switches that
 *     also start the target and drain + stop the old upstream).
 * Prints figures; asserts nothing; bounded in count and per-measurement time.
 *
 *   npx tsx bench/router.ts
 */
import { once } from 'node:events';
import { Agent, request } from 'node:http';
import { pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { type DeploymentInfo, TrafficRouter } from '../src/platform/local/router.js';

const HOST = 'app.example.com';
const A: DeploymentInfo = { id: 'dpl_bench_a', branch: 'main', commit: { sha: 'aaaaaaa' } };
const B: DeploymentInfo = { id: 'dpl_bench_b', branch: 'main', commit: { sha: 'bbbbbbb' } };

export interface RouterBenchOptions {
  /** Requests per measurement (each of direct and router, per round). */
  readonly requests?: number;
  /** Requests kept in flight by the client in the no-work scenario. */
  readonly concurrency?: number;
  /** Interleaved rounds; the reported figure is the median round. */
  readonly rounds?: number;
  /** Service time of the upstream in the second scenario (real time, ms). */
  readonly serviceMs?: number;
  /**
   * Requests in flight in the second scenario: low enough not to saturate the CPU, so the figure shows
   * the latency the hop adds to a request (the first scenario shows the CPU it costs).
   */
  readonly serviceConcurrency?: number;
  /** Clients looping during the switch phases. */
  readonly switchWorkers?: number;
  /** Back-and-forth switches that only swap the route table. */
  readonly switches?: number;
  /** Switches that also start the target and drain + stop the old upstream (each warms a new pool). */
  readonly drainedSwitches?: number;
  /** Upper bound of one measurement (real time, ms); it stops early and reports what it completed. */
  readonly measureDeadlineMs?: number;
  /**
   * Also run the no-work scenario with the load generator in a worker thread (its own event loop), so
   * client and router no longer compete for one loop; the baseline is measured the same way.
   */
  readonly threadedClient?: boolean;
  readonly log?: (line: string) => void;
}

const defaults = {
  requests: 5_000,
  concurrency: 32,
  rounds: 3,
  serviceMs: 5,
  serviceConcurrency: 8,
  switchWorkers: 200,
  switches: 50,
  drainedSwitches: 20,
  measureDeadlineMs: 2_500,
  threadedClient: true,
  log: (line: string) => console.log(line),
} as const satisfies Required<RouterBenchOptions>;

interface Measure {
  /** Process CPU (user + system) per completed request, µs: client + upstream (+ router). */
  readonly cpuUs: number;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly completed: number;
  readonly failed: number;
}

/** GET / with the Host header over a keep-alive agent; resolves with status and x-deployment-id. */
function get(port: number, agent: Agent): Promise<{ status: number; id: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host: HOST }, agent }, (res) => {
      const raw = res.headers['x-deployment-id'];
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, id: Array.isArray(raw) ? raw[0] : raw }));
      res.resume();
    });
    req.on('error', reject);
    req.end();
  });
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

/** A measurement's request: where, how many, how many in flight, and its time bound. */
interface MeasureJob {
  readonly port: number;
  readonly n: number;
  readonly concurrency: number;
  readonly deadlineMs: number;
}

/** Closed loop: `concurrency` workers share `n` requests; latency of each, total rate, CPU per request. */
async function measure({ port, n, concurrency, deadlineMs }: MeasureJob): Promise<Measure> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies = new Float64Array(n);
  let issued = 0;
  let completed = 0;
  let failed = 0;
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  const deadline = started + deadlineMs;
  const worker = async () => {
    while (issued < n && performance.now() < deadline) {
      issued++;
      const t0 = performance.now();
      try {
        const r = await get(port, agent);
        if (r.status !== 200) failed++;
      } catch {
        failed++;
      }
      latencies[completed++] = performance.now() - t0;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  agent.destroy();
  const sorted = latencies.subarray(0, completed).sort();
  return {
    cpuUs: (cpu.user + cpu.system) / Math.max(1, completed),
    rps: completed / seconds,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    completed,
    failed,
  };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

type Measurer = (job: MeasureJob) => Promise<Measure>;

/**
 * A load generator in a worker thread: the same `measure` loop on its own event loop. CPU per request
 * is still the whole process's (client thread included), taken around the job in the main thread.
 */
async function threadedMeasurer(): Promise<{ measure: Measurer; close: () => Promise<void> }> {
  // The worker runs this same file; it registers tsx's loader first (a worker inherits no loader hooks).
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const self = JSON.stringify(import.meta.url);
  const worker = new Worker(`import(${tsx}).then((api) => { api.register(); return import(${self}); });`, {
    eval: true,
  });
  await once(worker, 'online');
  const measureInWorker: Measurer = async (job) => {
    const cpu0 = process.cpuUsage();
    worker.postMessage(job);
    const [m] = (await once(worker, 'message')) as [Measure];
    const cpu = process.cpuUsage(cpu0);
    return { ...m, cpuUs: (cpu.user + cpu.system) / Math.max(1, m.completed) };
  };
  return {
    measure: measureInWorker,
    close: async () => {
      await worker.terminate();
    },
  };
}

/** Interleaved direct/router rounds against one upstream; the median of each figure. */
async function compare(
  routerPort: number,
  upstreamPort: number,
  concurrency: number,
  o: Required<RouterBenchOptions>,
  run: Measurer = measure,
): Promise<{ direct: Measure; routed: Measure }> {
  const job = (port: number, n: number): MeasureJob => ({
    port,
    n,
    concurrency,
    deadlineMs: o.measureDeadlineMs,
  });
  // warm both paths (JIT, pools) before measuring
  const warm = Math.min(1_000, o.requests);
  await run(job(upstreamPort, warm));
  await run(job(routerPort, warm));
  const direct: Measure[] = [];
  const routed: Measure[] = [];
  for (let i = 0; i < o.rounds; i++) {
    direct.push(await run(job(upstreamPort, o.requests)));
    routed.push(await run(job(routerPort, o.requests)));
  }
  const pick = (ms: Measure[]): Measure => ({
    cpuUs: median(ms.map((m) => m.cpuUs)),
    rps: median(ms.map((m) => m.rps)),
    p50: median(ms.map((m) => m.p50)),
    p99: median(ms.map((m) => m.p99)),
    completed: ms.reduce((s, m) => s + m.completed, 0),
    failed: ms.reduce((s, m) => s + m.failed, 0),
  });
  return { direct: pick(direct), routed: pick(routed) };
}

/**
 * Loops `workers` clients through the router while switching `switches` times (each switch waits for
 * `workers` more answers, so traffic is flowing at every switch); counts failed requests: errors,
 * non-200, or an answer from neither deployment.
 */
async function switchesUnderLoad(
  router: TrafficRouter,
  port: number,
  workers: number,
  switches: number,
  drainOld: boolean,
): Promise<{ requests: number; failed: number; seconds: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: workers });
  const allowed = new Set([A.id, B.id]);
  let answered = 0;
  let failed = 0;
  let stop = false;
  let waiter: { at: number; resolve: () => void } | undefined;
  const note = () => {
    answered++;
    if (waiter !== undefined && answered >= waiter.at) {
      const w = waiter;
      waiter = undefined;
      w.resolve();
    }
  };
  const worker = async () => {
    while (!stop) {
      try {
        const r = await get(port, agent);
        if (r.status !== 200 || r.id === undefined || !allowed.has(r.id)) failed++;
      } catch {
        failed++;
      }
      note();
    }
  };
  const started = performance.now();
  const running = Array.from({ length: workers }, worker);
  let current = router.currentRoutes().get(HOST) === B.id ? B : A;
  for (let i = 0; i < switches; i++) {
    await new Promise<void>((resolve) => {
      waiter = { at: answered + workers, resolve };
    });
    const next = current === A ? B : A;
    if (drainOld) await router.startUpstream(next);
    router.applyRoutes(new Map([[HOST, next.id]]));
    if (drainOld) await router.stopUpstream(current.id);
    current = next;
  }
  stop = true;
  await Promise.all(running);
  agent.destroy();
  return { requests: answered, failed, seconds: (performance.now() - started) / 1000 };
}

const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

function report(
  log: (line: string) => void,
  label: string,
  r: { direct: Measure; routed: Measure },
): Record<string, number> {
  const rpsRatio = r.direct.rps / r.routed.rps;
  const p50Ratio = r.routed.p50 / r.direct.p50;
  const p99Ratio = r.routed.p99 / r.direct.p99;
  const cpuRatio = r.routed.cpuUs / r.direct.cpuUs;
  const line = (name: string, m: Measure) =>
    `    ${name} : ${fmt(m.rps, 0).padStart(6)} req/s  p50 ${fmt(m.p50, 3)} ms  p99 ${fmt(m.p99, 3)} ms  ` +
    `cpu ${fmt(m.cpuUs, 1)} µs/req  failed ${m.failed}`;
  const met = rpsRatio <= 1.3 && p50Ratio <= 1.3 ? 'met' : 'NOT met';
  log(`  ${label}`);
  log(line('direct', r.direct));
  log(line('router', r.routed));
  log(
    `    ratio  : req/s ${fmt(rpsRatio)}x  p50 ${fmt(p50Ratio)}x  p99 ${fmt(p99Ratio)}x  ` +
      `cpu/req ${fmt(cpuRatio)}x  (target ≤ 1.3 on req/s and p50: ${met})`,
  );
  return {
    direct_rps: r.direct.rps,
    router_rps: r.routed.rps,
    direct_p50_ms: r.direct.p50,
    router_p50_ms: r.routed.p50,
    direct_p99_ms: r.direct.p99,
    router_p99_ms: r.routed.p99,
    direct_cpu_us: r.direct.cpuUs,
    router_cpu_us: r.routed.cpuUs,
    rps_ratio: rpsRatio,
    p50_ratio: p50Ratio,
    p99_ratio: p99Ratio,
    cpu_ratio: cpuRatio,
    failed: r.direct.failed + r.routed.failed,
  };
}

/** Runs the benchmark; prints figures and returns them flat (for bench/run.ts). */
export async function runRouterBench(options: RouterBenchOptions = {}): Promise<Record<string, number>> {
  const o: Required<RouterBenchOptions> = { ...defaults, ...options };
  const log = o.log;
  const figures: Record<string, number> = {};
  const started = performance.now();
  log(
    `router bench: ${o.requests} requests × ${o.rounds} interleaved rounds (direct, router, …), ` +
      'median round; one process, the same client for both',
  );

  const empty = new TrafficRouter({ port: 0 });
  const slow = new TrafficRouter({ port: 0 });
  try {
    await empty.startUpstream(A);
    const emptyUp = empty.upstreamPort(A.id);
    if (emptyUp === undefined) throw new Error('upstream did not start');
    empty.applyRoutes(new Map([[HOST, A.id]]));
    const emptyPort = await empty.listen();
    const r1 = await compare(emptyPort, emptyUp, o.concurrency, o);
    const f1 = report(
      log,
      `upstream doing no work, ${o.concurrency} in flight (the hop is the whole difference: worst case):`,
      r1,
    );
    for (const [k, v] of Object.entries(f1)) figures[`empty_${k}`] = v;

    if (o.threadedClient) {
      const threaded = await threadedMeasurer();
      try {
        const r1t = await compare(emptyPort, emptyUp, o.concurrency, o, threaded.measure);
        const f1t = report(
          log,
          `upstream doing no work, ${o.concurrency} in flight, load generator in a worker thread ` +
            '(router + upstream on the main loop):',
          r1t,
        );
        for (const [k, v] of Object.entries(f1t)) figures[`empty_threaded_${k}`] = v;
      } finally {
        await threaded.close();
      }
    }

    await slow.startUpstream(A, { delayMs: o.serviceMs });
    const slowUp = slow.upstreamPort(A.id);
    if (slowUp === undefined) throw new Error('upstream did not start');
    slow.applyRoutes(new Map([[HOST, A.id]]));
    const slowPort = await slow.listen();
    const r2 = await compare(slowPort, slowUp, o.serviceConcurrency, o);
    const f2 = report(
      log,
      `upstream with a ${o.serviceMs} ms service time, ${o.serviceConcurrency} in flight:`,
      r2,
    );
    for (const [k, v] of Object.entries(f2)) figures[`service_${k}`] = v;
    figures.service_ms = o.serviceMs;
  } finally {
    await Promise.all([empty.close(), slow.close()]);
  }

  const switching = new TrafficRouter({ port: 0 });
  try {
    await switching.startUpstream(A);
    await switching.startUpstream(B);
    switching.applyRoutes(new Map([[HOST, A.id]]));
    const port = await switching.listen();
    const plain = await switchesUnderLoad(switching, port, o.switchWorkers, o.switches, false);
    const drained = await switchesUnderLoad(switching, port, o.switchWorkers, o.drainedSwitches, true);
    log(`  switches under load (${o.switchWorkers} clients looping):`);
    log(
      `    ${o.switches} route swaps A⇄B: ${plain.requests} requests, ${plain.failed} failed ` +
        `(${fmt(plain.seconds, 1)} s)`,
    );
    log(
      `    ${o.drainedSwitches} swaps that start the target and drain + stop the old upstream: ` +
        `${drained.requests} requests, ${drained.failed} failed (${fmt(drained.seconds, 1)} s)`,
    );
    figures.switches = o.switches + o.drainedSwitches;
    figures.switch_requests = plain.requests + drained.requests;
    figures.switch_failed = plain.failed + drained.failed;
  } finally {
    await switching.close();
  }
  figures.seconds = (performance.now() - started) / 1000;
  log(`  total ${fmt(figures.seconds, 1)} s`);
  return figures;
}

// As the load generator of `threadedMeasurer`: measure each job posted by the main thread.
if (!isMainThread && parentPort !== null) {
  const port = parentPort;
  port.on('message', (job: MeasureJob) => {
    measure(job).then(
      (m) => port.postMessage(m),
      (e: unknown) => port.postMessage({ error: String(e) }),
    );
  });
}

const invokedDirectly =
  isMainThread && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  runRouterBench().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
