/**
 * Clicks whose edit of the clicked message waits on Slack (a Retry-After): other commands go on,
 * shutdown waits for the edit for a while (SHUTDOWN_FLUSH_MS), not for good, and a held "Confirmed…"
 * view never paints over the progress a worker elsewhere showed meanwhile; commands whose post waits
 * out a 429 hold no slot either (a click behind them is carried out at once), a post Slack keeps
 * rate-limiting is answered "try again in N s", and one Slack does not answer in time is not sent again;
 * and the "Make a fresh plan" click's answer (in the clicked message's thread; refused by Slack).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createReporterClient, SlackReporter } from '../../handlers/slack/reporter.js';
import { startSwitchWorker } from '../../jobs/switch-worker.js';
import { ChatService } from '../../src/chat.js';
import { type ManualClock, systemClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import type { LocalPlatform } from '../../src/platform/local/platform.js';
import type { DeployPlatform } from '../../src/platform/port.js';
import { buttonsOf, postSigned } from '../fakes/slack/requests.js';
import { startWorld, WORLD_CHANNEL, WORLD_SECRET } from '../fakes/slack/world.js';
import { CapturedLog } from '../support/captured-log.js';
import { ObservedClock } from '../support/observed-clock.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { buttonOf, confirmation, settled, startBot } from './bot.js';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
}, 60_000);

/** A gate the test opens: the platform's rollback waits for it (a switch held at its running step). */
function gatedRollback(local: LocalPlatform): { platform: DeployPlatform; open: () => void } {
  let open = () => {};
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const platform: DeployPlatform = {
    name: local.name,
    listEnvironments: () => local.listEnvironments(),
    snapshot: (env) => local.snapshot(env),
    getDeployment: (id) => local.getDeployment(id),
    routing: (env) => local.routing(env),
    rollback: async (r) => {
      await gate;
      return local.rollback(r);
    },
    promote: (r) => local.promote(r),
    operation: (r) => local.operation(r),
    probe: (h, s) => local.probe(h, s),
    health: () => local.health(),
    close: () => local.close(),
  };
  return { platform, open };
}

/**
 * The bot process (test/slack/bot.ts) with its platform's rollback gated, and a switch worker in
 * another process the test may start (`npm run worker`: its own reporter, on the system clock).
 */
async function bot(clock: ManualClock) {
  let gate: ReturnType<typeof gatedRollback> | undefined;
  const b = await startBot({
    clock,
    add: (close) => closers.push(close),
    name: 'slack-clicks',
    platform: (local) => {
      gate = gatedRollback(local);
      return gate.platform;
    },
  });
  if (gate === undefined) throw new Error('the platform was not wrapped');
  const gated = gate;
  // Before the bot stops: a switch held at the gate goes on.
  closers.push(async () => gated.open());
  const startWorker = async () => {
    const reporter = new SlackReporter({
      client: createReporterClient(b.fake.token, b.fake.apiUrl),
      minIntervalMs: 0,
    });
    const worker = startSwitchWorker({
      redisUrl: redisUrl(),
      queueName: b.name,
      platform: b.platform,
      reporter,
      clock: systemClock,
      verify: { timeoutMs: 5_000, intervalMs: 5 },
      lockDurationMs: 5_000,
      concurrency: 1,
      logger: silentLogger,
      audit: b.audit,
    });
    closers.push(async () => {
      gated.open();
      await worker.close();
      await reporter.flush();
    });
    await worker.worker.waitUntilReady();
    return { worker, reporter };
  };
  return { ...b, gate: gated, startWorker };
}

const HOUR_MS = 3_600_000;

describe('clicks whose edit waits for Slack', () => {
  it('eight clicks sitting out a chat.update Retry-After stall no command; shutdown still waits for their edits', async () => {
    const clock = new ObservedClock(Date.now());
    const b = await bot(clock);
    const { post, ts } = await confirmation(b);
    const cancel = buttonOf(post, 'sy1:cancel:');
    // Slack rate-limits the first chat.update for an hour (on the bot's reporter clock).
    b.fake.rateLimit('chat.update', 3600, 1);
    const limited = clock.sleepOf(HOUR_MS);
    for (let k = 0; k < 8; k++) {
      await b.requests.click({ actionId: cancel, messageTs: ts, userId: 'U0ALICE', userName: 'alice' });
    }
    await limited;
    // The eight after-ack slots are free: a command typed now gets its message at once.
    const before = b.fake.callsOf('chat.postMessage').length;
    const ack = await b.requests.command({
      command: '/deployments',
      text: 'production',
      userId: 'U0BOB',
      userName: 'bob',
    });
    expect(ack.status).toBe(200);
    const listed = await b.fake.waitForCall(
      'chat.postMessage',
      (c) => b.fake.callsOf('chat.postMessage').indexOf(c) >= before,
    );
    expect(listed.response.ok).toBe(true);
    // The clicks' edit is still owed to the message, and shutdown waits for it.
    const idle = b.surface.idle();
    expect(await settled(idle)).toBe(false);
    expect(b.fake.callsOf('chat.update').map((c) => c.status)).toEqual([429]);
    await clock.advance(HOUR_MS);
    await idle;
    expect(b.fake.callsOf('chat.update').map((c) => c.status)).toEqual([429, 200]);
    expect(String(b.fake.message(WORLD_CHANNEL, ts)?.text)).toMatch(/^Cancelled/);
  });

  it('a "Confirmed" view held back until a worker elsewhere has edited the message is dropped, not painted over its progress', async () => {
    const clock = new ObservedClock(Date.now());
    const b = await bot(clock);
    const { post, ts } = await confirmation(b);
    // The bot's edit of the clicked message is held back by a 429 until the bot's clock moves.
    b.fake.rateLimit('chat.update', 3600, 1);
    const limited = clock.sleepOf(HOUR_MS);
    await b.requests.click({
      actionId: buttonOf(post, 'sy1:confirm:'),
      messageTs: ts,
      userId: 'U0ALICE',
      userName: 'alice',
    });
    await limited;
    // Meanwhile a worker in another process runs the job up to the platform call (held) and edits the
    // message with its progress.
    const worker = await b.startWorker();
    const running = await b.fake.waitForCall(
      'chat.update',
      (c) =>
        c.args.ts === ts &&
        c.response.ok === true &&
        /(Reactivating standby target|Switching domains)[^\\]*\(running\)/.test(
          JSON.stringify(c.args.blocks),
        ),
    );
    await worker.reporter.flush(); // the worker's last edit before the held platform call has landed
    // Now the bot's lane may send its "Confirmed…" view again: it asks Redis first, finds that the job
    // has reported, and drops the view.
    const from = b.fake.callsOf('chat.update').length;
    await clock.advance(HOUR_MS);
    await b.surface.idle();
    const later = b.fake.callsOf('chat.update').slice(from);
    expect(later.filter((c) => /confirmed, starting/.test(String(c.args.text)))).toEqual([]);
    expect(b.fake.message(WORLD_CHANNEL, ts)?.text).toBe(running.args.text);
    // The job goes on to its end, shown by the worker.
    b.gate.open();
    await b.fake.waitForCall(
      'chat.update',
      (c) => c.args.ts === ts && /Traffic is on/.test(String(c.args.text)),
      15_000,
    );
  });
});

describe("posts waiting out Slack's rate limit, and posts Slack does not answer", () => {
  /** Bob lists production: a post to the channel. */
  const bob = { command: '/deployments', text: 'production', userId: 'U0BOB', userName: 'bob' };

  it('eight commands whose post meets a 429 hold no slot while they wait: a Confirm click behind them is carried out at once, then each is posted once', async () => {
    const clock = new ObservedClock(Date.now());
    const b = await bot(clock);
    closers.push(() => clock.advance(HOUR_MS));
    const { post, ts } = await confirmation(b);
    // Slack rate-limits the next eight posts, asking for 3 s (on the bot's clock).
    b.fake.rateLimit('chat.postMessage', 3, 8);
    for (let k = 0; k < 8; k++) await b.requests.command(bob);
    const limited = () => b.fake.callsOf('chat.postMessage').filter((c) => c.status === 429).length;
    await b.fake.waitForCall('chat.postMessage', () => limited() === 8);
    await b.requests.click({
      actionId: buttonOf(post, 'sy1:confirm:'),
      messageTs: ts,
      userId: 'U0ALICE',
      userName: 'alice',
    });
    // The click's edit lands while every post still waits out its Retry-After (on the old code the
    // eight held the eight slots while the client slept, and the click came after their tries).
    await b.fake.waitForCall('chat.update', (c) => c.args.ts === ts && c.response.ok === true);
    expect(b.fake.callsOf('chat.postMessage')).toHaveLength(1 + 8);
    // The posts waiting for their turn are still owed: idle() waits for them.
    const idle = b.surface.idle();
    expect(await settled(idle)).toBe(false);
    await clock.advance(3_000);
    await idle;
    expect(b.fake.callsOf('chat.postMessage').map((c) => c.status)).toEqual([
      200,
      ...Array<number>(8).fill(429),
      ...Array<number>(8).fill(200),
    ]);
    expect(b.fake.responses).toEqual([]);
  });

  it('a post Slack keeps rate-limiting is tried three times, after each Retry-After, then its sender is told to try again in that many seconds; counted as ratelimited', async () => {
    const clock = new ObservedClock(Date.now());
    const b = await startBot({ clock, add: (close) => closers.push(close), name: 'slack-post-429' });
    closers.push(() => clock.advance(HOUR_MS));
    b.fake.rateLimit('chat.postMessage', 2, 3);
    let waiting = clock.sleepOf(2_000);
    await b.requests.command({
      command: '/rollback',
      text: 'production',
      userId: 'U0ALICE',
      userName: 'alice',
    });
    for (let k = 0; k < 2; k++) {
      await waiting;
      waiting = clock.sleepOf(2_000);
      await clock.advance(2_000);
    }
    const told = await b.fake.waitForResponse();
    expect(told.body.text).toBe(
      'Slack is limiting how fast Switchyard may post right now, so the message was not posted. Nothing was changed; try again in 2 s.',
    );
    await b.surface.idle();
    expect(b.fake.callsOf('chat.postMessage').map((c) => c.status)).toEqual([429, 429, 429]);
    const errors = (await b.metrics.chatApiErrors.get()).values.map(
      (v) => `${v.labels.method}:${v.labels.code}:${v.value}`,
    );
    expect(errors).toEqual(['chat.postMessage:ratelimited:3']);
  }, 15_000);

  it('a post Slack does not answer in time is not sent again: its sender is told it may appear late, and a warning names the channel', async () => {
    const log = new CapturedLog('warn');
    const clock = new ObservedClock(Date.now());
    const b = await startBot({
      clock,
      add: (close) => closers.push(close),
      name: 'slack-post-slow',
      callTimeoutMs: 300,
      logger: log.logger,
    });
    closers.push(() => clock.advance(HOUR_MS));
    const held = b.fake.hold('chat.postMessage');
    await b.requests.command({
      command: '/rollback',
      text: 'production',
      userId: 'U0ALICE',
      userName: 'alice',
    });
    await held.reached;
    await held.abandoned;
    // On the old code the client sent it again: a second message, and nobody was told anything.
    const told = await b.fake.waitForResponse();
    expect(String(told.body.text)).toMatch(
      /^Slack did not answer when Switchyard posted the message\. It was not sent again, so that it is not posted twice: it may still appear here, late/,
    );
    // Slack took it after all: the message appears, once.
    held.release();
    await b.fake.waitForCall('chat.postMessage', (c) => c.status === 200);
    await b.surface.idle();
    expect(b.fake.callsOf('chat.postMessage')).toHaveLength(1);
    const [warning] = await log.waitFor((l) => /chat\.postMessage got no answer/.test(l.msg));
    expect(warning).toMatchObject({ level: 40, channel: WORLD_CHANNEL, code: 'timeout' });
  });
});

describe('Slack surface stop() and a click edit held by a Retry-After', () => {
  /** handlers/slack/index.ts SHUTDOWN_FLUSH_MS. */
  const SHUTDOWN_FLUSH_MS = 10_000;

  it('gives up waiting for a click edit held by a long Retry-After after SHUTDOWN_FLUSH_MS, like other queued edits', async () => {
    const clock = new ObservedClock(Date.now());
    const b = await bot(clock);
    // Whatever the test leaves waiting on the bot's clock (the Retry-After) is let through before the
    // bot stops again.
    closers.push(() => clock.advance(2 * HOUR_MS));
    const { post, ts } = await confirmation(b);
    // Slack rate-limits the clicked message's edit for an hour.
    b.fake.rateLimit('chat.update', 3600, 1);
    const limited = clock.sleepOf(HOUR_MS);
    await b.requests.click({
      actionId: buttonOf(post, 'sy1:cancel:'),
      messageTs: ts,
      userId: 'U0ALICE',
      userName: 'alice',
    });
    await limited;
    // Shutdown: the edit is waited for SHUTDOWN_FLUSH_MS on the bot's clock, not for the hour.
    const stopping = b.surface.stop();
    for (let waited = 0; waited < SHUTDOWN_FLUSH_MS; waited += 1_000) {
      await settled(stopping);
      await clock.advance(1_000);
    }
    // Past the deadline it ends (on the old code it waited out the hour: this test then timed out).
    await expect(stopping).resolves.toBeUndefined();
  }, 15_000);

  it('waits for a click edit held by a Retry-After shorter than SHUTDOWN_FLUSH_MS, and it is delivered', async () => {
    const clock = new ObservedClock(Date.now());
    const b = await bot(clock);
    closers.push(() => clock.advance(2 * HOUR_MS));
    const { post, ts } = await confirmation(b);
    // Slack rate-limits the clicked message's edit for 5 s (half the shutdown wait).
    b.fake.rateLimit('chat.update', 5, 1);
    const limited = clock.sleepOf(5_000);
    await b.requests.click({
      actionId: buttonOf(post, 'sy1:cancel:'),
      messageTs: ts,
      userId: 'U0ALICE',
      userName: 'alice',
    });
    await limited;
    const stopping = b.surface.stop();
    for (let waited = 0; waited < 5_000; waited += 1_000) {
      expect(await settled(stopping)).toBe(false);
      await clock.advance(1_000);
    }
    await expect(stopping).resolves.toBeUndefined();
    const edits = b.fake.callsOf('chat.update').filter((c) => c.args.ts === ts && c.response.ok === true);
    expect(edits.map((c) => String(c.args.text)).join('\n')).toMatch(/[Cc]ancel/);
  }, 15_000);
});

describe('Make a fresh plan in a thread', () => {
  it('posts the fresh plan in the thread of the clicked message', async () => {
    const w = await startWorld({ redisUrl: redisUrl(), name: uniqueName('slack-thread'), worker: false });
    closers.push(() => w.close());
    const before = w.fake.callsOf('chat.postMessage').length;
    await w.requests.command({
      command: '/rollback',
      text: 'production',
      userId: 'U0ALICE',
      userName: 'alice',
    });
    const post = await w.fake.waitForCall('chat.postMessage', (c) => c.response.ok === true);
    const planId = buttonOf(post, 'sy1:confirm:').split(':')[2];
    // A suggestion replying in an alert's thread: Slack sends the thread's ts with the click.
    const parent = '1700000000.000100';
    const { payload } = w.requests.blockActionPayload({
      actionId: `sy1:replan:${planId}`,
      messageTs: String(post.response.ts),
      userId: 'U0ALICE',
      userName: 'alice',
    });
    const threaded = {
      ...payload,
      container: { ...(payload.container as object), thread_ts: parent },
      message: { ...(payload.message as object), thread_ts: parent },
    };
    const res = await postSigned(
      w.requests.url,
      WORLD_SECRET,
      new URLSearchParams({ payload: JSON.stringify(threaded) }).toString(),
      'application/x-www-form-urlencoded',
    );
    expect(res.status).toBe(200);
    const fresh = await w.fake.waitForCall(
      'chat.postMessage',
      (c) => c.response.ok === true && w.fake.callsOf('chat.postMessage').indexOf(c) > before,
    );
    expect(fresh.args.thread_ts).toBe(parent);
    expect(buttonsOf(fresh.args.blocks as unknown[]).some((b) => b.actionId.startsWith('sy1:confirm:'))).toBe(
      true,
    );
  });

  it('a click on a message in the channel (or a thread parent) posts in the channel', async () => {
    const w = await startWorld({ redisUrl: redisUrl(), name: uniqueName('slack-thread'), worker: false });
    closers.push(() => w.close());
    await w.requests.command({
      command: '/rollback',
      text: 'production',
      userId: 'U0ALICE',
      userName: 'alice',
    });
    const post = await w.fake.waitForCall('chat.postMessage', (c) => c.response.ok === true);
    const ts = String(post.response.ts);
    const planId = buttonOf(post, 'sy1:confirm:').split(':')[2];
    const { payload } = w.requests.blockActionPayload({
      actionId: `sy1:replan:${planId}`,
      messageTs: ts,
      userId: 'U0ALICE',
      userName: 'alice',
    });
    // The confirmation got replies: it is a thread's parent (thread_ts = its own ts).
    const parent = { ...payload, container: { ...(payload.container as object), thread_ts: ts } };
    const before = w.fake.callsOf('chat.postMessage').length;
    await postSigned(
      w.requests.url,
      WORLD_SECRET,
      new URLSearchParams({ payload: JSON.stringify(parent) }).toString(),
      'application/x-www-form-urlencoded',
    );
    const fresh = await w.fake.waitForCall(
      'chat.postMessage',
      (c) => c.response.ok === true && w.fake.callsOf('chat.postMessage').indexOf(c) >= before,
    );
    expect(fresh.args.thread_ts).toBeUndefined();
  });
});

describe('Make a fresh plan whose answer Slack refuses', () => {
  it("tells ChatService (postFailed: the plan and the click's channel), so the suggestion slot its fresh plan reserved is freed, and tells the clicker", async () => {
    const w = await startWorld({ redisUrl: redisUrl(), name: uniqueName('slack-fresh-fail'), worker: false });
    closers.push(() => w.close());
    await w.requests.command({
      command: '/rollback',
      text: 'production',
      userId: 'U0ALICE',
      userName: 'alice',
    });
    const post = await w.fake.waitForCall('chat.postMessage', (c) => c.response.ok === true);
    const planId = buttonOf(post, 'sy1:confirm:').split(':')[2] ?? '';
    const postFailed = vi.spyOn(ChatService.prototype, 'postFailed');
    closers.push(async () => postFailed.mockRestore());
    // Slack refuses the answer's post (as it answers a channel the bot was removed from).
    w.fake.refuse('chat.postMessage', 'channel_not_found');
    const { responseUrl } = await w.requests.click({
      actionId: `sy1:replan:${planId}`,
      messageTs: String(post.response.ts),
      userId: 'U0ALICE',
      userName: 'alice',
    });
    const urlId = responseUrl.split('/').at(-2);
    const answer = await w.fake.waitForResponse((r) => r.id === urlId);
    expect(JSON.stringify(answer.body)).toContain('Could not post in this channel');
    // Told before the clicker is.
    expect(postFailed.mock.calls).toEqual([[planId, { surface: 'slack', channel: WORLD_CHANNEL }]]);
  });
});
