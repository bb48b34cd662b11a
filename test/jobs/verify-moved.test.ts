/**
 * A switch made outside Switchyard (the platform's dashboard or API) while a job verifies its own: the
 * job stops verifying within a few rounds, long before `verify.timeoutMs`, and ends `failed` with
 * `plan_stale` saying both facts (its switch landed; traffic then moved on, or went back, through
 * another switch), audited and counted once, logged at info and not retried; notices keep crediting
 * the job with its own move and announce the hand move. A hand switch away and back to the target
 * between two rounds still ends succeeded, and a snapshot read that fails does not end verification.
 *
 * Real Redis, the real LocalPlatform (on the harness's ManualClock) and a worker on its own observed
 * ManualClock: each verification round runs when the test advances it one interval. The router is
 * held on the old deployment (edges still propagating) unless a test lets it answer as the platform
 * routes.
 */
import { afterEach, expect, it } from 'vitest';
import { fileConfigSchema, parseEnv } from '../../src/config.js';
import { PlatformHttpError } from '../../src/errors.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { startNotices } from '../../src/notices.js';
import type { DeployPlatform, OperationRef, PlatformEvent, SwitchRequest } from '../../src/platform/port.js';
import type { Progress } from '../../src/progress.js';
import { idleAll, RecordingPoster, RelayPlatform } from '../notices/world.js';
import { ObservedClock } from '../support/observed-clock.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { Cleanup, jobData, planFor } from './fixtures/harness.js';
import { type LogLine, LogLines } from './fixtures/logs.js';
import { seedDomains, seedIds } from './fixtures/seed.js';
import { type JobsEnv, REACTIVATION_MS, setupJobs } from './fixtures/setup.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const INTERVAL = 500;
const TIMEOUT = 120_000;
const ids = seedIds(0);

interface Verifying {
  readonly env: JobsEnv;
  /** The worker's clock (the platform keeps `env.clock`). */
  readonly clock: ObservedClock;
  /** While set, every domain answers from this deployment whatever the platform routes. */
  readonly router: { held: string | undefined };
  /**
   * While `failing`, the worker's snapshot reads fail with a 503; while `lagging`, they show env0 as it
   * was before the job's switch (a platform whose state lags behind the switch it reported done).
   */
  readonly snapshots: { failing: boolean; lagging: boolean };
  readonly lines: LogLines;
}

/** Resolves once `ref` has ended on the local platform (a standby target reactivated on its clock). */
async function settled(env: JobsEnv, ref: OperationRef): Promise<OperationRef> {
  for (;;) {
    const status = await env.local.operation(ref);
    if (status.state === 'succeeded' || status.state === 'failed') return ref;
    if (status.state === 'reactivating') await env.clock.advance(REACTIVATION_MS);
    else await new Promise<void>((r) => setImmediate(r));
  }
}

/**
 * A worker verifying every `INTERVAL` for up to `TIMEOUT` on its own manual clock. Its platform answers
 * a switch request once the switch is done (the job's first operation poll finds it succeeded, so only
 * verification sleeps on the clock), its router is held on the deployment live before the job's switch,
 * and its snapshot reads fail or lag while told to.
 */
async function verifying(): Promise<Verifying> {
  const env = await setupJobs(cleanup);
  const clock = new ObservedClock();
  const router: { held: string | undefined } = { held: ids.current };
  const snapshots = { failing: false, lagging: false };
  const platform: DeployPlatform = {
    ...env.platform,
    rollback: async (r: SwitchRequest) => settled(env, await env.platform.rollback(r)),
    promote: async (r: SwitchRequest) => settled(env, await env.platform.promote(r)),
    snapshot: async (environment: string) => {
      if (snapshots.failing)
        throw new PlatformHttpError(503, 'GET', 'http://platform.test/snapshot', undefined, 'unavailable');
      const snap = await env.platform.snapshot(environment);
      if (!snapshots.lagging) return snap;
      return {
        ...snap,
        environment: { ...snap.environment, currentDeploymentId: ids.current, rolledBack: false },
      };
    },
    probe: async (hostname: string, signal?: AbortSignal) =>
      router.held === undefined
        ? env.local.probe(hostname, signal)
        : { hostname, status: 200, deploymentId: router.held },
  };
  const lines = new LogLines();
  await env.startWorker({
    platform,
    clock,
    verify: { timeoutMs: TIMEOUT, intervalMs: INTERVAL },
    // Longer than any time these tests advance the worker's clock: its lock renewals keep up.
    lockDurationMs: 60_000,
    // A job still verifying when a test ends (a failed assertion) is handed back at once at cleanup.
    shutdownTimeoutMs: 1_000,
    logger: createLogger({ level: 'info', pretty: false, destination: lines }),
  });
  return { env, clock, router, snapshots, lines };
}

interface Running {
  readonly jobId: string;
  /** Settles once the job ended (its final progress). */
  readonly ended: Promise<Progress | undefined>;
  /** Whether it has ended. */
  done(): boolean;
  /** The worker's clock when verification slept after its first round. */
  readonly verifiedFrom: number;
}

/** Enqueues a rollback of env0 to its previous deployment; resolves once its first round of verification ran. */
async function rollbackUntilVerifying(t: Verifying): Promise<Running> {
  const plan = await planFor(t.env.local, 'env0', 'rollback', t.env.clock.now());
  expect(plan.target.id).toBe(ids.previous);
  const firstSleep = t.clock.sleepOf(INTERVAL);
  const { jobId } = await t.env.queue.enqueue(jobData(plan, t.env.clock.now()));
  let ended = false;
  const end = t.env.queue.waitForEnd(jobId);
  void end.then(() => {
    ended = true;
  });
  await Promise.race([firstSleep, end]);
  // The first round's detail (published after its snapshot read) says both domains are off the target.
  if (!ended)
    await t.env.reporter.waitFor(
      (p) =>
        p.jobId === jobId &&
        p.steps.some(
          (s) => s.step === 'verifying' && s.detail === `0 of 2 domains answer from ${ids.previous}.`,
        ),
    );
  return { jobId, ended: end, done: () => ended, verifiedFrom: t.clock.now() };
}

/** Runs one more round of verification: resolves once the job sleeps again, or has ended. */
async function round(t: Verifying, job: Running): Promise<void> {
  const slept = t.clock.sleepOf(INTERVAL);
  await t.clock.advance(INTERVAL);
  await Promise.race([slept, job.ended]);
}

/** Runs up to `max` rounds, fewer once the job ended; resolves to how many ran. */
async function rounds(t: Verifying, job: Running, max: number): Promise<number> {
  let n = 0;
  while (n < max && !job.done()) {
    await round(t, job);
    n += 1;
  }
  return n;
}

/** Switches env0 on the platform itself, as its dashboard or operator API would. */
async function byHand(t: Verifying, action: 'rollback' | 'promote', targetId: string): Promise<void> {
  const request = { environment: 'env0', targetId, requestedBy: 'Dana' };
  const ref =
    action === 'rollback' ? await t.env.local.rollback(request) : await t.env.local.promote(request);
  const status = await t.env.local.operation(await settled(t.env, ref));
  expect(status.state).toBe('succeeded');
}

/** The log lines of one job that end it, as `<level> <outcome>/<code>[ with err]`. */
function endLines(lines: readonly LogLine[], jobId: string): string[] {
  return lines
    .filter((l) => l.jobId === jobId && l.outcome !== undefined)
    .map(
      (l) => `${l.levelName} ${String(l.outcome)}/${String(l.code)}${l.err === undefined ? '' : ' with err'}`,
    );
}

async function failedCount(env: JobsEnv): Promise<number> {
  const m = await env.metrics.jobs.get();
  return m.values.filter((v) => v.labels.outcome === 'failed').reduce((n, v) => n + v.value, 0);
}

it('a hand rollback to a third deployment while verifying ends the job in the next round: overtaken, said in full, audited once, not retried', async () => {
  const t = await verifying();
  const job = await rollbackUntilVerifying(t);
  // On the dashboard, Dana rolls env0 back further, to the standby deployment; the router follows.
  await byHand(t, 'rollback', ids.standby);
  t.router.held = undefined;

  expect(await rounds(t, job, 1)).toBe(1);
  expect(job.done()).toBe(true);
  const final = await job.ended;
  // One interval of a two-minute verification.
  expect(t.clock.now() - job.verifiedFrom).toBe(INTERVAL);
  expect(final?.outcome).toBe('failed');
  expect(final?.code).toBe('plan_stale');
  const message = `Rolled back env0 to ${ids.previous}; then, before traffic on it was verified, traffic moved on to ${ids.standby} through another switch (a rollback by Dana), not this one. This job does nothing more. env0 is serving ${ids.standby} (rolled back: automatic deploys paused).`;
  expect(final?.message).toBe(message);
  expect(final?.traffic).toEqual(
    seedDomains(0).map((hostname) => ({ hostname, deploymentId: ids.standby, ok: false })),
  );
  expect(final?.steps.at(-1)).toMatchObject({ step: 'verifying', state: 'failed' });

  // Audited and counted once, as a failure (the switch landed: never `refused`), and not retried.
  const entries = (await t.env.audit.recent('env0', 10)).filter((e) => e.jobId === job.jobId).reverse();
  expect(entries.map((e) => e.event)).toEqual(['requested', 'started', 'failed']);
  expect(entries[2]).toMatchObject({ code: 'plan_stale', message, targetId: ids.previous });
  const bull = await t.env.queue.queue.getJob(job.jobId);
  expect(bull?.attemptsMade).toBe(1);
  expect(await bull?.getState()).toBe('failed');
  expect(t.env.platform.switchCalls).toBe(1);
  expect(await failedCount(t.env)).toBe(1);
  // An expected end (someone moved traffic on), said at info without a stack; nothing at warn.
  expect(endLines(t.lines.parsed, job.jobId)).toEqual(['info failed/plan_stale']);
  expect(t.lines.parsed.filter((l) => l.jobId === job.jobId && l.level >= 40)).toEqual([]);
});

it('a hand promote back to the source while verifying (router still on the source) ends the job within a few rounds', async () => {
  const t = await verifying();
  const job = await rollbackUntilVerifying(t);
  // Dana undoes the rollback on the dashboard; the edges never left the source.
  await byHand(t, 'promote', ids.current);

  const ran = await rounds(t, job, 3);
  expect(job.done()).toBe(true);
  expect(t.clock.now() - job.verifiedFrom).toBe(ran * INTERVAL);
  const final = await job.ended;
  expect(final?.outcome).toBe('failed');
  expect(final?.code).toBe('plan_stale');
  expect(final?.message).toBe(
    `Rolled back env0 to ${ids.previous}; then, before traffic on it was verified, traffic went back to ${ids.current} (the deployment this rollback moved it from) through another switch (a promote by Dana), not this one. This job does nothing more. env0 is serving ${ids.current}.`,
  );
  const entries = (await t.env.audit.recent('env0', 10)).filter((e) => e.jobId === job.jobId).reverse();
  expect(entries.map((e) => e.event)).toEqual(['requested', 'started', 'failed']);
  expect((await t.env.queue.queue.getJob(job.jobId))?.attemptsMade).toBe(1);
});

it('a hand switch away and back to the target between two rounds: verification goes on and succeeds', async () => {
  const t = await verifying();
  const job = await rollbackUntilVerifying(t);
  await byHand(t, 'promote', ids.current);
  await byHand(t, 'rollback', ids.previous);
  // Rounds that read the snapshot again (it shows the target live) go on verifying.
  expect(await rounds(t, job, 4)).toBe(4);
  expect(job.done()).toBe(false);
  t.router.held = undefined;
  expect(await rounds(t, job, 1)).toBe(1);
  const final = await job.ended;
  expect(final?.outcome).toBe('succeeded');
  expect(final?.traffic).toEqual(
    seedDomains(0).map((hostname) => ({ hostname, deploymentId: ids.previous, ok: true })),
  );
});

it('a snapshot still showing the source after the switch (the platform lagging behind it) is not taken for a hand rollback', async () => {
  const t = await verifying();
  t.snapshots.lagging = true;
  const job = await rollbackUntilVerifying(t);
  // The first read and the fourth round's show the source: verification goes on.
  expect(await rounds(t, job, 3)).toBe(3);
  expect(job.done()).toBe(false);
  t.snapshots.lagging = false;
  t.router.held = undefined;
  expect(await rounds(t, job, 1)).toBe(1);
  expect((await job.ended)?.outcome).toBe('succeeded');
});

it('snapshot reads that fail while verifying do not end it; the next read that answers does', async () => {
  const t = await verifying();
  const job = await rollbackUntilVerifying(t);
  t.snapshots.failing = true;
  // Dana moves traffic on to a third deployment; the router still answers the source, so only a
  // snapshot read can tell, and the next one (fourth round) fails.
  await byHand(t, 'rollback', ids.standby);
  expect(await rounds(t, job, 3)).toBe(3);
  expect(job.done()).toBe(false);
  t.snapshots.failing = false;
  const ran = await rounds(t, job, 4);
  expect(job.done()).toBe(true);
  expect(ran).toBeLessThanOrEqual(4);
  const final = await job.ended;
  expect(final?.outcome).toBe('failed');
  expect(final?.code).toBe('plan_stale');
  expect(final?.message).toMatch(
    new RegExp(
      `^Rolled back env0 to ${ids.previous}; then, before traffic on it was verified, traffic moved on to ${ids.standby} through another switch \\(a rollback by Dana\\), not this one\\.`,
    ),
  );
});

it('notices credit the overtaken job with its own move and announce the hand move as made outside Switchyard', async () => {
  const t = await verifying();
  // Records the platform's events, to hand them to a notices service that hears of them late (a
  // polled platform, or a replica restarted): after the job ended.
  const relay = new RelayPlatform(t.env.local);
  cleanup.add(() => relay.close());
  const job = await rollbackUntilVerifying(t);
  await byHand(t, 'rollback', ids.standby);
  t.router.held = undefined;
  expect(await rounds(t, job, 1)).toBe(1);
  expect(job.done()).toBe(true);
  expect((await job.ended)?.code).toBe('plan_stale');

  const slack = new RecordingPoster('slack', t.env.clock);
  const outcomes: { status: string; reason?: string }[] = [];
  const notices = await startNotices({
    platform: relay,
    redis: t.env.redis,
    posters: [slack],
    config: {
      env: parseEnv({ REDIS_URL: redisUrl(), SLACK_ALERT_CHANNEL: 'C0ALERTS' }),
      file: fileConfigSchema.parse({ environments: {} }),
    },
    audit: t.env.audit,
    clock: t.env.clock,
    logger: silentLogger,
    prefix: uniqueName('notices'),
    onOutcome: (o) => outcomes.push(o),
  });
  cleanup.add(() => notices.stop());
  const moves = relay.seen.filter(
    (e): e is Extract<PlatformEvent, { type: 'traffic.moved' }> => e.type === 'traffic.moved',
  );
  expect(moves.map((e) => [e.to, e.via])).toEqual([
    [ids.previous, 'rollback'],
    [ids.standby, 'rollback'],
  ]);
  relay.replay(moves);
  await idleAll([notices]);
  expect(outcomes.filter((o) => o.reason?.startsWith(`moved by Switchyard job ${job.jobId}`))).toHaveLength(
    1,
  );
  expect(slack.titles()).toEqual([`Traffic on env0 moved to ${ids.standby}`]);
});
