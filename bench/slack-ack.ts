/**
 * Slack ack benchmark: latency from sending a correctly signed `/rollback production` to receiving
 * Slack's required HTTP 200 (the ack), with 200 requests in flight, for
 *   - the baseline: a bare Bolt app (same HTTPReceiver on the same shared HTTP server) that only acks;
 *   - Switchyard: the real Slack surface (ack first, then Flow.plan on the LocalPlatform, the plan in
 *     Redis, chat.postMessage to the fake Slack Web API, attach) — all in this one process;
 * measured in the same run, interleaved, with p50/p99 and their ratio (target ≤ 1.2). Then an open-loop
 * ramp of request rates against Switchyard reporting the highest rate whose ack p99 stays under 1 s.
 * Uses REDIS_URL, else spawns a private redis-server. Prints figures; asserts nothing; bounded (< 60 s).
 *
 *   npx tsx bench/slack-ack.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createSlackApp } from '../handlers/slack/app.js';
import { parseEnv } from '../src/config.js';
import { HttpServer } from '../src/http.js';
import { silentLogger } from '../src/log.js';
import { createRedis } from '../src/redis.js';
import { spawnRedis } from '../src/redis-server.js';
import { postSigned, SlackRequests } from '../test/fakes/slack/requests.js';
import { startWorld, WORLD_SECRET } from '../test/fakes/slack/world.js';

export interface SlackAckBenchOptions {
  readonly redisUrl?: string;
  /** Requests per measured round (each round runs baseline then Switchyard). */
  readonly requests?: number;
  readonly inFlight?: number;
  readonly rounds?: number;
  /** Open-loop rates (requests/s) tried in the ramp, and how long each lasts. */
  readonly rates?: readonly number[];
  readonly rateSeconds?: number;
  readonly log?: (line: string) => void;
}

export interface Latency {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly n: number;
  readonly non200: number;
}

export interface SlackAckBenchResult {
  readonly baseline: Latency;
  readonly switchyard: Latency;
  readonly p50Ratio: number;
  readonly p99Ratio: number;
  /** Rate → ack p99 (ms) of the ramp. */
  readonly ramp: readonly { rate: number; achieved: number; p99: number; non200: number }[];
  /** Highest tried rate whose ack p99 stayed under 1 s. */
  readonly maxRateUnder1s: number;
}

const DEFAULTS = {
  requests: 500,
  inFlight: 200,
  rounds: 4,
  rates: [200, 400, 800, 1_600],
  rateSeconds: 1,
} as const;

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

function summarize(samples: readonly number[], non200: number): Latency {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? Number.NaN,
    n: sorted.length,
    non200,
  };
}

/** Sends `total` signed commands keeping `inFlight` outstanding; returns per-request ack latency. */
async function closedLoop(
  send: () => Promise<{ status: number; ms: number }>,
  total: number,
  inFlight: number,
): Promise<{ samples: number[]; non200: number }> {
  const samples: number[] = [];
  let non200 = 0;
  let next = 0;
  const lane = async () => {
    while (next < total) {
      next += 1;
      const r = await send();
      if (Number.isFinite(r.ms)) samples.push(r.ms);
      if (r.status !== 200) non200 += 1;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return { samples, non200 };
}

/** Fires requests at a fixed rate regardless of answers (open loop); returns latencies. */
async function openLoop(
  send: () => Promise<{ status: number; ms: number }>,
  rate: number,
  seconds: number,
): Promise<{ samples: number[]; non200: number; achieved: number }> {
  const total = Math.round(rate * seconds);
  const samples: number[] = [];
  let non200 = 0;
  const started = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    // Pacing the sender is the point of an open-loop load generator (not a test sleep).
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(
      send().then((r) => {
        if (Number.isFinite(r.ms)) samples.push(r.ms);
        if (r.status !== 200) non200 += 1;
      }),
    );
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - started) / 1000;
  return { samples, non200, achieved: total / elapsed };
}

/** Runs the benchmark (see the module header) and prints its figures. */
export async function runSlackAckBench(opts: SlackAckBenchOptions = {}): Promise<SlackAckBenchResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const requests = opts.requests ?? DEFAULTS.requests;
  const inFlight = opts.inFlight ?? DEFAULTS.inFlight;
  const rounds = opts.rounds ?? DEFAULTS.rounds;
  const rates = opts.rates ?? DEFAULTS.rates;
  const rateSeconds = opts.rateSeconds ?? DEFAULTS.rateSeconds;

  let dir: string | undefined;
  let spawned: Awaited<ReturnType<typeof spawnRedis>> | undefined;
  let redisUrl = opts.redisUrl;
  if (redisUrl === undefined) {
    dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-slack-'));
    spawned = await spawnRedis({ dir, aof: false });
    redisUrl = spawned.url;
  }
  const name = `bench-slack-${process.pid}-${Date.now().toString(36)}`;
  const world = await startWorld({ redisUrl, name, worker: false });
  // The baseline: the same receiver setup, on its own shared HTTP server, whose command only acks.
  const baseRedis = createRedis(redisUrl);
  const baseHttp = new HttpServer();
  createSlackApp(
    {
      botToken: world.fake.token,
      signingSecret: WORLD_SECRET,
      apiUrl: world.fake.apiUrl,
      http: baseHttp,
      redis: baseRedis,
      keyPrefix: `${name}-base:`,
      logger: silentLogger,
    },
    (app) => {
      app.command('/rollback', async ({ ack }) => {
        await ack();
      });
    },
  );
  const basePort = await baseHttp.listen(0);
  // A fresh keep-alive pool per phase: sockets idle across a pause may be closed by the server.
  let agent = new Agent({ keepAlive: true, maxSockets: inFlight });
  const freshAgent = () => {
    agent.destroy();
    agent = new Agent({ keepAlive: true, maxSockets: inFlight });
  };
  const full = world.requests;
  const base = new SlackRequests(`http://127.0.0.1:${basePort}/slack/events`, WORLD_SECRET, world.fake);
  const sender = (r: SlackRequests) => () => {
    const { body } = r.slashCommandBody({ command: '/rollback', text: 'production' });
    return postSigned(r.url, WORLD_SECRET, body, 'application/x-www-form-urlencoded', { agent }).catch(
      // A failed request counts as a non-200 answer (status 0), with the time it took to fail.
      () => ({ status: 0, ms: Number.NaN }),
    );
  };

  /**
   * Every request of the run asks for the same plan, so its record would collect thousands of
   * attached messages (no real channel does that); reset plan records between phases so each phase
   * measures the same work.
   */
  const resetPlans = async () => {
    const keys = await baseRedis.keys(`${name}:plan:*`);
    if (keys.length > 0) await baseRedis.del(...keys);
  };
  /** A fresh keep-alive pool, its sockets opened by a warm-up burst, the backlog drained. */
  const warm = async (r: SlackRequests) => {
    freshAgent();
    await closedLoop(sender(r), inFlight, inFlight);
    await world.surface.idle();
    await resetPlans();
  };

  try {
    log(
      `slack ack: ${requests} signed /rollback production per round, ${inFlight} in flight, ${rounds} rounds`,
    );
    // Warm-up: JIT, auth.test, connections, the plan record.
    await closedLoop(sender(base), 200, 50);
    await closedLoop(sender(full), 200, 50);
    await world.surface.idle();
    await resetPlans();
    const baseSamples: number[] = [];
    const fullSamples: number[] = [];
    let baseBad = 0;
    let fullBad = 0;
    const measureBase = async () => {
      await warm(base);
      const t = performance.now();
      const b = await closedLoop(sender(base), requests, inFlight);
      baseSamples.push(...b.samples);
      baseBad += b.non200;
      return performance.now() - t;
    };
    const measureFull = async () => {
      await warm(full);
      const t = performance.now();
      const f = await closedLoop(sender(full), requests, inFlight);
      fullSamples.push(...f.samples);
      fullBad += f.non200;
      const acked = performance.now();
      // Let the phase's after-ack work (plans, posts) finish so phases do not overlap.
      await world.surface.idle();
      const drained = performance.now();
      await resetPlans();
      return { ackMs: acked - t, drainMs: drained - acked };
    };
    for (let round = 0; round < rounds; round++) {
      // Alternate the order (A B, B A, …) so neither side always runs after the other's garbage.
      let baseMs: number;
      let fullRun: { ackMs: number; drainMs: number };
      if (round % 2 === 0) {
        baseMs = await measureBase();
        fullRun = await measureFull();
      } else {
        fullRun = await measureFull();
        baseMs = await measureBase();
      }
      log(
        `  round ${round + 1}: ${requests} acks in ${baseMs.toFixed(0)} ms (bare) vs ${fullRun.ackMs.toFixed(0)} ms (Switchyard); its after-ack work (plan, post, attach) finished ${fullRun.drainMs.toFixed(0)} ms later`,
      );
    }
    const baseline = summarize(baseSamples, baseBad);
    const switchyard = summarize(fullSamples, fullBad);
    const p50Ratio = switchyard.p50 / baseline.p50;
    const p99Ratio = switchyard.p99 / baseline.p99;
    const fmt = (l: Latency) =>
      `p50 ${l.p50.toFixed(1)} ms  p99 ${l.p99.toFixed(1)} ms  max ${l.max.toFixed(1)} ms  (n=${l.n}, non-200=${l.non200})`;
    log(`  bare Bolt (ack only): ${fmt(baseline)}`);
    log(`  Switchyard /rollback: ${fmt(switchyard)}`);
    log(`  ratio p50 ${p50Ratio.toFixed(2)}  p99 ${p99Ratio.toFixed(2)}  (target ≤ 1.2)`);
    log(`  confirmations posted: ${world.fake.callsOf('chat.postMessage').length}`);

    const ramp: { rate: number; achieved: number; p99: number; non200: number }[] = [];
    let maxRateUnder1s = 0;
    log(`open-loop ramp against Switchyard (${rateSeconds} s per rate):`);
    for (const rate of rates) {
      await warm(full);
      const r = await openLoop(sender(full), rate, rateSeconds);
      const l = summarize(r.samples, r.non200);
      ramp.push({ rate, achieved: r.achieved, p99: l.p99, non200: r.non200 });
      log(
        `  ${String(rate).padStart(5)} req/s offered (${r.achieved.toFixed(0)} sent/s): p50 ${l.p50.toFixed(1)} ms  p99 ${l.p99.toFixed(1)} ms  non-200 ${r.non200}`,
      );
      await world.surface.idle();
      await resetPlans();
      if (l.p99 < 1000 && r.non200 === 0) maxRateUnder1s = rate;
      else break;
    }
    log(`  highest rate with ack p99 < 1 s: ${maxRateUnder1s} req/s (of the rates tried)`);
    return { baseline, switchyard, p50Ratio, p99Ratio, ramp, maxRateUnder1s };
  } finally {
    agent.destroy();
    await baseHttp.close();
    await baseRedis.quit();
    await world.close();
    if (spawned) await spawned.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const env = parseEnv(process.env);
  runSlackAckBench(env.REDIS_URL === undefined ? {} : { redisUrl: env.REDIS_URL })
    .then(() => process.exit(0))
    .catch((e: unknown) => {
      console.error(e);
      process.exit(1);
    });
}
