/**
 * Alert pipeline benchmark: alerts/s for parse (JSON + zod), parse + map, and parse + map + dedupe
 * (the atomic Redis claim), as ratios against parse alone measured in the same run; then memory
 * (heapUsed, RSS, Redis used_memory, live incident keys) after 100,000 alerts across 1,000 incidents
 * whose records expire, to show memory stays bounded. Uses REDIS_URL, else spawns a private
 * redis-server. Prints figures; asserts nothing. Bounded runtime (well under 60 s).
 *
 *   npx tsx bench/alerts.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AlertDedupe } from '../src/alerts/dedupe.js';
import { compileMatchers, mapAlert } from '../src/alerts/mapping.js';
import { parseAlertPayload } from '../src/alerts/parsers.js';
import type { NormalizedAlert } from '../src/alerts/types.js';
import { parseEnv } from '../src/config.js';
import { createRedis } from '../src/redis.js';
import { spawnRedis } from '../src/redis-server.js';

export interface AlertsBenchOptions {
  readonly redisUrl?: string;
  /** Alerts per throughput phase. */
  readonly throughputAlerts?: number;
  /** Alerts and incidents of the memory phase. */
  readonly memoryAlerts?: number;
  readonly incidents?: number;
  /** Incident record TTL in the memory phase (short, so old incidents expire during the run). */
  readonly incidentTtlMs?: number;
  /** Concurrent claims in flight. */
  readonly concurrency?: number;
  readonly log?: (line: string) => void;
}

export interface AlertsBenchResult {
  readonly parsePerSec: number;
  readonly parseMapPerSec: number;
  readonly parseMapDedupePerSec: number;
  readonly mapRatio: number;
  readonly dedupeRatio: number;
  readonly memory: {
    readonly alerts: number;
    readonly incidents: number;
    readonly suggestionsClaimed: number;
    readonly heapUsedBeforeMb: number;
    readonly heapUsedAfterMb: number;
    readonly rssBeforeMb: number;
    readonly rssAfterMb: number;
    readonly redisUsedBeforeMb: number;
    readonly redisUsedAfterMb: number;
    readonly liveIncidentKeys: number;
    readonly seconds: number;
  };
}

const SLUGS = ['production', 'staging', 'preview'];
const MATCHERS = compileMatchers({
  production: { alertMatchers: ['checkout', '/\\bapi-[0-9]+\\b/i'] },
  staging: { alertMatchers: ['stg-'] },
  preview: { alertMatchers: [] },
});
const START = Date.UTC(2026, 10, 29, 12);

/** An Alertmanager v4 payload with one alert of incident `incident`. */
function payload(incident: number, i: number): string {
  return JSON.stringify({
    version: '4',
    groupKey: `{}:{alertname="HighErrorRate", incident="${incident}"}`,
    status: 'firing',
    receiver: 'switchyard',
    groupLabels: { alertname: 'HighErrorRate' },
    commonLabels: {
      alertname: 'HighErrorRate',
      env: i % 10 === 0 ? 'prod' : 'production',
      severity: 'critical',
    },
    commonAnnotations: { summary: 'checkout 5xx above 5%' },
    externalURL: 'http://alertmanager.example.org:9093',
    alerts: [
      {
        status: 'firing',
        labels: { alertname: 'HighErrorRate', env: 'production', instance: `api-${i % 50}:9100` },
        annotations: {
          summary: 'checkout 5xx above 5%',
          description: 'The error ratio is above 5% for 5 minutes.',
        },
        startsAt: new Date(START + i).toISOString(),
        endsAt: '0001-01-01T00:00:00Z',
        generatorURL: 'http://prometheus.example.org:9090/graph',
        fingerprint: (incident * 7919 + i).toString(16),
      },
    ],
  });
}

function parseOne(body: string): NormalizedAlert[] {
  const parsed = parseAlertPayload('alertmanager', JSON.parse(body), { now: START });
  if (!parsed.ok) throw new Error(parsed.refusal.message);
  return parsed.value;
}

const mb = (bytes: number) => Math.round((bytes / 1_048_576) * 10) / 10;

async function redisUsedBytes(redis: ReturnType<typeof createRedis>): Promise<number> {
  const info = await redis.info('memory');
  const m = /used_memory:(\d+)/.exec(info);
  return m?.[1] ? Number(m[1]) : 0;
}

async function countKeys(redis: ReturnType<typeof createRedis>, match: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000);
    cursor = next;
    n += keys.length;
  } while (cursor !== '0');
  return n;
}

/** Runs the benchmark and prints its figures; returns them too. */
export async function runAlertsBench(opts: AlertsBenchOptions = {}): Promise<AlertsBenchResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const n = opts.throughputAlerts ?? 20_000;
  const memoryAlerts = opts.memoryAlerts ?? 100_000;
  const incidents = opts.incidents ?? 1_000;
  const ttl = opts.incidentTtlMs ?? 1_000;
  const concurrency = opts.concurrency ?? 256;

  let spawned: Awaited<ReturnType<typeof spawnRedis>> | undefined;
  let dir: string | undefined;
  let url = opts.redisUrl;
  if (!url) {
    dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-redis-'));
    spawned = await spawnRedis({ dir, aof: false });
    url = spawned.url;
  }
  const redis = createRedis(url);
  const prefix = `bench-alerts-${process.pid}-${Date.now()}`;
  try {
    const bodies = Array.from({ length: 1_000 }, (_, i) => payload(i % 100, i));

    // Warm-up so the JIT has compiled the hot paths before timing.
    for (let i = 0; i < 2_000; i++) parseOne(bodies[i % bodies.length] ?? '');

    let t = performance.now();
    for (let i = 0; i < n; i++) parseOne(bodies[i % bodies.length] ?? '');
    const parsePerSec = n / ((performance.now() - t) / 1000);

    t = performance.now();
    let mapped = 0;
    for (let i = 0; i < n; i++) {
      for (const a of parseOne(bodies[i % bodies.length] ?? ''))
        if (mapAlert(a, SLUGS, MATCHERS).ok) mapped++;
    }
    const parseMapPerSec = n / ((performance.now() - t) / 1000);
    if (mapped !== n) throw new Error(`mapping failed for ${n - mapped} alerts`);

    const throughputDedupe = new AlertDedupe(redis, { prefix: `${prefix}:t`, incidentTtlMs: 60_000 });
    t = performance.now();
    let claimed = 0;
    for (let start = 0; start < n; start += concurrency) {
      const batch: Promise<void>[] = [];
      for (let i = start; i < Math.min(n, start + concurrency); i++) {
        batch.push(
          (async () => {
            for (const a of parseOne(bodies[i % bodies.length] ?? '')) {
              const m = mapAlert(a, SLUGS, MATCHERS);
              if (!m.ok) continue;
              const c = await throughputDedupe.claim(
                {
                  environment: m.environment,
                  source: a.source,
                  ...(a.fingerprint ? { fingerprint: a.fingerprint } : {}),
                },
                START,
              );
              if (c.claimed) claimed++;
            }
          })(),
        );
      }
      await Promise.all(batch);
    }
    const parseMapDedupePerSec = n / ((performance.now() - t) / 1000);
    if (claimed !== 100) throw new Error(`expected 100 claims (100 incidents), got ${claimed}`);

    // Memory: 100,000 alerts across 1,000 incidents arriving one incident after another; records
    // expire `ttl` after their claim, so only recent incidents stay in Redis.
    const memDedupe = new AlertDedupe(redis, { prefix: `${prefix}:m`, incidentTtlMs: ttl });
    const perIncident = Math.ceil(memoryAlerts / incidents);
    const memBodies = Array.from({ length: perIncident }, (_, i) => i);
    global.gc?.();
    const before = process.memoryUsage();
    const redisBefore = await redisUsedBytes(redis);
    const t0 = performance.now();
    let suggestions = 0;
    let done = 0;
    for (let incident = 0; incident < incidents && done < memoryAlerts; incident++) {
      const body = payload(incident, incident);
      const count = Math.min(perIncident, memoryAlerts - done);
      for (let start = 0; start < count; start += concurrency) {
        const slice = memBodies.slice(start, Math.min(count, start + concurrency));
        await Promise.all(
          slice.map(async () => {
            for (const a of parseOne(body)) {
              const m = mapAlert(a, SLUGS, MATCHERS);
              if (!m.ok) continue;
              const c = await memDedupe.claim(
                {
                  environment: m.environment,
                  source: a.source,
                  ...(a.fingerprint ? { fingerprint: a.fingerprint } : {}),
                },
                START,
              );
              if (c.claimed) suggestions++;
            }
          }),
        );
      }
      done += count;
    }
    const seconds = (performance.now() - t0) / 1000;
    global.gc?.();
    const after = process.memoryUsage();
    const redisAfter = await redisUsedBytes(redis);
    const live = await countKeys(redis, `${prefix}:m:*`);

    const result: AlertsBenchResult = {
      parsePerSec: Math.round(parsePerSec),
      parseMapPerSec: Math.round(parseMapPerSec),
      parseMapDedupePerSec: Math.round(parseMapDedupePerSec),
      mapRatio: Math.round((parseMapPerSec / parsePerSec) * 100) / 100,
      dedupeRatio: Math.round((parseMapDedupePerSec / parsePerSec) * 100) / 100,
      memory: {
        alerts: done,
        incidents,
        suggestionsClaimed: suggestions,
        heapUsedBeforeMb: mb(before.heapUsed),
        heapUsedAfterMb: mb(after.heapUsed),
        rssBeforeMb: mb(before.rss),
        rssAfterMb: mb(after.rss),
        redisUsedBeforeMb: mb(redisBefore),
        redisUsedAfterMb: mb(redisAfter),
        liveIncidentKeys: live,
        seconds: Math.round(seconds * 10) / 10,
      },
    };
    log('alerts bench (Alertmanager v4 payloads, one alert each)');
    log(
      `  parse (JSON + zod)            ${result.parsePerSec.toLocaleString('en')} alerts/s  (baseline 1.00)`,
    );
    log(
      `  parse + map                   ${result.parseMapPerSec.toLocaleString('en')} alerts/s  (${result.mapRatio.toFixed(2)} x baseline)`,
    );
    log(
      `  parse + map + Redis dedupe    ${result.parseMapDedupePerSec.toLocaleString('en')} alerts/s  (${result.dedupeRatio.toFixed(2)} x baseline, ${concurrency} in flight)`,
    );
    const m = result.memory;
    log(
      `memory after ${m.alerts.toLocaleString('en')} alerts across ${m.incidents} incidents (record TTL ${ttl} ms, ${m.seconds} s)`,
    );
    log(`  suggestions claimed           ${m.suggestionsClaimed} (one per incident)`);
    log(`  heapUsed                      ${m.heapUsedBeforeMb} MB -> ${m.heapUsedAfterMb} MB`);
    log(`  RSS                           ${m.rssBeforeMb} MB -> ${m.rssAfterMb} MB`);
    log(`  Redis used_memory             ${m.redisUsedBeforeMb} MB -> ${m.redisUsedAfterMb} MB`);
    log(`  incident records still live   ${m.liveIncidentKeys} of ${m.incidents} (older ones expired)`);
    return result;
  } finally {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
    for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
    redis.disconnect();
    await spawned?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // Through the config module, like the other benches: a bad REDIS_URL is named, not half-used.
  const env = parseEnv(process.env);
  runAlertsBench(env.REDIS_URL === undefined ? {} : { redisUrl: env.REDIS_URL }).catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
