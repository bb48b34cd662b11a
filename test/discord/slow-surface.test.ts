/**
 * One chat surface never holds up another: the composite Reporter (handlers/reporters.ts) hands each
 * state to every surface on its own, and the Discord reporter neither waits for intermediate edits nor
 * longer than its `finalWaitMs` for the final one. End to end: a switch shown in Slack and in Discord,
 * with Discord answering edits only when the test lets it — Slack still gets every state up to the
 * final one, and the job completes once Discord's final wait ran out (on a manual clock).
 */
import type { REST } from 'discord.js';
import { afterEach, describe, expect, it } from 'vitest';
import { DiscordMessages } from '../../handlers/discord/messages.js';
import { DiscordReporter } from '../../handlers/discord/reporter.js';
import { compositeReporter } from '../../handlers/reporters.js';
import { startSwitchWorker } from '../../jobs/switch-worker.js';
import { AuditLog } from '../../src/audit.js';
import { ManualClock, systemClock } from '../../src/clock.js';
import { type Logger, silentLogger } from '../../src/log.js';
import type { MessageRef, Progress, Reporter } from '../../src/progress.js';
import { buttonsOf } from '../fakes/slack/requests.js';
import { startWorld, type World } from '../fakes/slack/world.js';
import { progressFixture } from '../support/progress.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);

function state(n: number, outcome?: 'succeeded'): Progress {
  return progressFixture({
    requestedBy: { surface: 'slack', userId: 'U1', displayName: 'alice' },
    steps: [{ step: 'switching', state: outcome ? 'done' : 'running', startedAt: T0, detail: `state ${n}` }],
    ...(outcome === undefined ? {} : { outcome }),
    attempt: 1,
    updatedAt: T0 + n,
  });
}

/** A reporter that records what it got and settles each report only when the test says so. */
function gatedReporter() {
  const got: { detail: string | undefined; release: () => void; settled: boolean }[] = [];
  const reporter: Reporter = {
    report: (progress) =>
      new Promise<void>((resolve) => {
        const entry = {
          detail: progress.steps[0]?.detail,
          settled: false,
          release: () => {
            entry.settled = true;
            resolve();
          },
        };
        got.push(entry);
      }),
  };
  return { reporter, got };
}

/** A reporter that takes every state at once and records it. */
function recordingReporter() {
  const got: (string | undefined)[] = [];
  const reporter: Reporter = {
    report: async (progress) => {
      got.push(progress.steps[0]?.detail);
    },
  };
  return { reporter, got };
}

/** Whether `p` has settled once pending callbacks ran (no wall-clock wait). */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => {
    done = true;
  });
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
  return done;
}

const refs: MessageRef[] = [
  { surface: 'slack', channel: 'C1', messageId: '1700000000.000100' },
  { surface: 'discord', channel: '100000000000000001', messageId: '100000000000000002' },
];

describe('compositeReporter', () => {
  it('a surface that has not settled a report holds up neither the other surface nor the job', async () => {
    const slow = gatedReporter();
    const fast = recordingReporter();
    const composite = compositeReporter({ discord: slow.reporter, slack: fast.reporter }, silentLogger);
    for (const n of [1, 2, 3]) expect(await settled(composite.report(state(n), refs))).toBe(true);
    const final = composite.report(state(4, 'succeeded'), refs);
    // Slack has every state, the final one included, while Discord still sits on the first.
    await settled(final);
    expect(fast.got).toEqual(['state 1', 'state 2', 'state 3', 'state 4']);
    expect(slow.got.map((g) => g.detail)).toEqual(['state 1']);
    // A final state is settled once every surface settled it (each bounds that wait itself).
    expect(await settled(final)).toBe(false);
    // Discord gets its states in order, each after the previous one settled.
    for (let i = 0; i < 4; i++) {
      slow.got[i]?.release();
      await settled(Promise.resolve());
    }
    expect(slow.got.map((g) => g.detail)).toEqual(['state 1', 'state 2', 'state 3', 'state 4']);
    expect(await settled(final)).toBe(true);
  });

  it('a failing surface is logged and the other one still gets the state', async () => {
    const warned: unknown[] = [];
    const logger = { ...silentLogger, warn: (o: unknown) => void warned.push(o) } as unknown as Logger;
    const fast = recordingReporter();
    const failing: Reporter = { report: async () => Promise.reject(new Error('boom')) };
    const composite = compositeReporter({ discord: failing, slack: fast.reporter }, logger);
    await composite.report(state(1, 'succeeded'), refs);
    expect(fast.got).toEqual(['state 1']);
    expect(warned).toEqual([expect.objectContaining({ surface: 'discord', jobId: 'sw_1' })]);
  });
});

/**
 * A switch shown in Slack and in a Discord that answers edits only when the test lets it: runs until
 * Slack shows the final state, and returns the held Discord edits and the job.
 */
async function switchWithSlowDiscord(opts: { readonly shutdownTimeoutMs?: number } = {}) {
  const name = uniqueName('slow-discord');
  const w: World = await startWorld({ redisUrl: redisUrl(), name, worker: false });
  closers.push(() => w.close());
  // Discord takes every edit and answers none until the test lets it.
  const held: (() => void)[] = [];
  const patches: string[] = [];
  const rest = {
    patch: (_route: string, opts: { body: unknown }) =>
      new Promise((resolve) => {
        patches.push(JSON.stringify(opts.body));
        held.push(() => resolve({}));
      }),
    post: async () => ({ id: '1' }),
  } as unknown as REST;
  closers.push(async () => {
    for (const release of held.splice(0)) release();
  });
  const discordClock = new ManualClock(Date.now());
  const discord = new DiscordReporter({
    messages: new DiscordMessages({ rest }),
    clock: discordClock,
    finalWaitMs: 10_000,
  });
  const worker = startSwitchWorker({
    redisUrl: redisUrl(),
    queueName: name,
    platform: w.platform,
    reporter: compositeReporter({ slack: w.surface.reporter, discord }, silentLogger),
    clock: systemClock,
    verify: { timeoutMs: 5_000, intervalMs: 5 },
    lockDurationMs: 5_000,
    concurrency: 2,
    logger: silentLogger,
    metrics: w.metrics,
    audit: new AuditLog(w.redis, { prefix: name }),
    retry: { baseDelayMs: 5, maxDelayMs: 20 },
    lockRetryMs: 50,
    ...(opts.shutdownTimeoutMs === undefined ? {} : { shutdownTimeoutMs: opts.shutdownTimeoutMs }),
  });
  closers.push(() => worker.close());
  await worker.worker.waitUntilReady();

  await w.requests.command({
    command: '/rollback',
    text: 'production',
    userId: 'U0ALICE',
    userName: 'alice',
  });
  const post = await w.fake.waitForCall('chat.postMessage', (c) => c.response.ok === true);
  const ts = String(post.response.ts);
  const confirm = buttonsOf(post.args.blocks as unknown[]).find((b) => b.actionId.startsWith('sy1:confirm:'));
  const planId = String(confirm?.actionId.split(':')[2]);
  // The same plan is also shown in a Discord channel (an alert suggestion there, say).
  await w.flow.attachMessage(planId, {
    surface: 'discord',
    channel: '100000000000000001',
    messageId: '100000000000000002',
  });
  await w.requests.click({
    actionId: String(confirm?.actionId),
    messageTs: ts,
    userId: 'U0ALICE',
    userName: 'alice',
  });

  const final = await w.fake.waitForCall(
    'chat.update',
    (c) => c.args.ts === ts && /Traffic is on/.test(String(c.args.text)),
  );
  expect(final.response.ok).toBe(true);
  const jobId = (await w.queue.queue.getJobs(['active', 'completed', 'waiting', 'delayed']))[0]?.id ?? '';
  return { w, worker, discord, discordClock, held, patches, jobId };
}

/** Runs the job past Discord's final wait (on Discord's clock) to its completion. */
async function completeAfterFinalWait(s: Awaited<ReturnType<typeof switchWithSlowDiscord>>) {
  while (s.discordClock.pending === 0) await new Promise<void>((r) => setImmediate(r));
  expect(await s.w.queue.queue.getJobState(s.jobId)).toBe('active');
  await s.discordClock.advance(10_000);
  expect((await s.w.queue.waitForEnd(s.jobId, 10_000))?.outcome).toBe('succeeded');
}

describe('a switch shown in Slack and in a slow Discord', () => {
  it("Slack gets the final state while Discord has not answered an edit; the job ends after Discord's final wait", async () => {
    const s = await switchWithSlowDiscord();
    // Discord has been sent one edit and answered none: Slack's progress never waited for it.
    expect(s.patches).toHaveLength(1);
    expect(s.held).toHaveLength(1);
    // The job waits for Discord's final state at most finalWaitMs (on Discord's clock), then completes.
    await completeAfterFinalWait(s);
    // Discord answers at last: the final state, queued behind the edit it held, goes out next.
    const flushed = s.discord.flush();
    while (!(await settled(flushed))) for (const release of s.held.splice(0)) release();
    expect(s.patches).toHaveLength(2);
    expect(s.patches[1]).toContain('Traffic is on');
  });

  it('a worker shutting down waits for the final Discord edit its job stopped waiting for', async () => {
    const s = await switchWithSlowDiscord({ shutdownTimeoutMs: 60_000 });
    await completeAfterFinalWait(s);
    const closed = s.worker.close();
    // Discord still holds the first edit; the final one is queued behind it: close() waits.
    expect(await settled(closed)).toBe(false);
    for (const release of s.held.splice(0)) release();
    while (s.patches.length < 2) await new Promise<void>((r) => setImmediate(r));
    expect(await settled(closed)).toBe(false);
    expect(s.patches[1]).toContain('Traffic is on');
    for (const release of s.held.splice(0)) release();
    await closed;
  });

  it('a Discord that never answers holds a shutting-down worker up no longer than its shutdown timeout', async () => {
    const s = await switchWithSlowDiscord({ shutdownTimeoutMs: 200 });
    await completeAfterFinalWait(s);
    expect(
      await Promise.race([
        s.worker.close().then(() => 'closed'),
        new Promise<string>((r) => setTimeout(() => r('still closing'), 10_000)),
      ]),
    ).toBe('closed');
    expect(s.patches).toHaveLength(1);
  });
});
