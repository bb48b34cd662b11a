import { afterEach, describe, expect, it, vi } from 'vitest';
import { type SlackSurface, startSlack } from '../../handlers/slack/index.js';
import { createReporterClient, SlackReporter } from '../../handlers/slack/reporter.js';
import { startSwitchWorker } from '../../jobs/switch-worker.js';
import { AuditLog } from '../../src/audit.js';
import { ChatService } from '../../src/chat.js';
import { type ManualClock, systemClock } from '../../src/clock.js';
import { fileConfigSchema } from '../../src/config.js';
import { Flow } from '../../src/flow.js';
import { HttpServer } from '../../src/http.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { PlanStore } from '../../src/plan-store.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import type { DeployPlatform } from '../../src/platform/port.js';
import { SwitchQueue } from '../../src/queue.js';
import { createRedis } from '../../src/redis.js';
import { buttonsOf, postSigned, SlackRequests } from '../fakes/slack/requests.js';
import { FakeSlack, type RecordedCall } from '../fakes/slack/server.js';
import { startWorld, WORLD_CHANNEL, WORLD_SECRET } from '../fakes/slack/world.js';
import { ObservedClock } from '../support/observed-clock.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
}, 60_000);

/** Whether `p` has settled once pending callbacks ran (no wall-clock wait). */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => {
    done = true;
  });
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
  return done;
}

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
 * The bot process: the real Slack surface (its reporter and user-group cache on `clock`) over the fake
 * Slack, real Redis, queue, Flow and LocalPlatform; no worker (SWITCHYARD_WORKER=off).
 */
async function bot(clock: ManualClock) {
  const name = uniqueName('slack-clicks');
  const fake = await new FakeSlack({ channels: { [WORLD_CHANNEL]: 'incidents' } }).start();
  closers.push(() => fake.close());
  const redis = createRedis(redisUrl());
  closers.push(() => redis.quit());
  const local = await LocalPlatform.open({ clock: systemClock, maintenance: false, reactivationTimeMs: 20 });
  closers.push(() => local.close());
  const gate = gatedRollback(local);
  closers.push(async () => gate.open());
  const audit = new AuditLog(redis, { prefix: name });
  const plans = new PlanStore({ redis, prefix: `${name}:`, clock: systemClock });
  const queue = new SwitchQueue({ redisUrl: redisUrl(), queueName: name, audit });
  closers.push(async () => {
    await queue.obliterate();
    await queue.close();
  });
  await queue.waitUntilReady();
  const config = {
    platform: 'local' as const,
    file: fileConfigSchema.parse({ platform: 'local', environments: {} }),
  };
  const flow = new Flow({
    platform: gate.platform,
    queue,
    plans,
    audit,
    config,
    clock: systemClock,
    logger: silentLogger,
  });
  const http = new HttpServer();
  const surface: SlackSurface = startSlack({
    botToken: fake.token,
    signingSecret: WORLD_SECRET,
    http,
    apiUrl: fake.apiUrl,
    redis,
    keyPrefix: `${name}:`,
    flow,
    chat: new ChatService({ flow, clock: systemClock }),
    config,
    metrics: createMetrics(),
    logger: silentLogger,
    clock,
    progressIntervalMs: 0,
  });
  const port = await http.listen(0);
  closers.push(async () => {
    await surface.stop();
    await http.close();
  });
  await surface.slack.start();
  const requests = new SlackRequests(`http://127.0.0.1:${port}/slack/events`, WORLD_SECRET, fake);
  /** A switch worker in another process: its own reporter (system clock), the gated platform. */
  const startWorker = async () => {
    const reporter = new SlackReporter({
      client: createReporterClient(fake.token, fake.apiUrl),
      minIntervalMs: 0,
    });
    const worker = startSwitchWorker({
      redisUrl: redisUrl(),
      queueName: name,
      platform: gate.platform,
      reporter,
      clock: systemClock,
      verify: { timeoutMs: 5_000, intervalMs: 5 },
      lockDurationMs: 5_000,
      concurrency: 1,
      logger: silentLogger,
      audit,
    });
    closers.push(async () => {
      gate.open();
      await worker.close();
      await reporter.flush();
    });
    await worker.worker.waitUntilReady();
    return { worker, reporter };
  };
  return { fake, requests, surface, queue, gate, startWorker };
}

async function confirmation(b: Awaited<ReturnType<typeof bot>>, command = '/rollback', text = 'production') {
  const before = b.fake.callsOf('chat.postMessage').length;
  await b.requests.command({ command, text, userId: 'U0ALICE', userName: 'alice' });
  const post = await b.fake.waitForCall(
    'chat.postMessage',
    (c) => c.response.ok === true && b.fake.callsOf('chat.postMessage').indexOf(c) >= before,
  );
  return { post, ts: String(post.response.ts) };
}

function buttonOf(post: RecordedCall, prefix: string): string {
  const found = buttonsOf(post.args.blocks as unknown[]).find((b) => b.actionId.startsWith(prefix));
  if (!found) throw new Error(`no ${prefix} button`);
  return found.actionId;
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
