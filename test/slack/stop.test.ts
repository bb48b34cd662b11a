/**
 * startSlack's lifecycle (handlers/slack/index.ts): `stop()` waits for queued Slack edits "for a while,
 * not for good" (SHUTDOWN_FLUSH_MS): a click's edit held by a short Retry-After is delivered, one held
 * by a long one is given up; and it closes the Socket Mode connection (Slack would otherwise keep
 * delivering commands and clicks to a process that closed its queue and Redis).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type SlackSurface, startSlack } from '../../handlers/slack/index.js';
import { AuditLog } from '../../src/audit.js';
import { ChatService } from '../../src/chat.js';
import { systemClock } from '../../src/clock.js';
import { fileConfigSchema } from '../../src/config.js';
import { Flow } from '../../src/flow.js';
import { HttpServer } from '../../src/http.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { PlanStore } from '../../src/plan-store.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import { SwitchQueue } from '../../src/queue.js';
import { createRedis } from '../../src/redis.js';
import { buttonsOf, SlackRequests } from '../fakes/slack/requests.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { startWorld, WORLD_CHANNEL, WORLD_SECRET, type World } from '../fakes/slack/world.js';
import { ObservedClock } from '../support/observed-clock.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const closers: (() => Promise<unknown>)[] = [];
const worlds: World[] = [];
afterEach(async () => {
  for (const w of worlds.splice(0)) await w.close();
  for (const c of closers.splice(0).reverse()) await c();
}, 60_000);

/** The fake's open Socket Mode connections (FakeSlack keeps them private). */
const openSockets = (w: World) => (w.fake as unknown as { sockets: Set<unknown> }).sockets.size;

const HOUR_MS = 3_600_000;
/** handlers/slack/index.ts SHUTDOWN_FLUSH_MS. */
const SHUTDOWN_FLUSH_MS = 10_000;

/** Whether `p` has settled once pending callbacks ran (no wall-clock wait). */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
  return done;
}

/** The bot process (no worker): the real Slack surface on `clock` over the fake Slack. */
async function bot(clock: ObservedClock) {
  const name = uniqueName('slack-stop');
  const fake = await new FakeSlack({ channels: { [WORLD_CHANNEL]: 'incidents' } }).start();
  closers.push(() => fake.close());
  const redis = createRedis(redisUrl());
  closers.push(() => redis.quit());
  const local = await LocalPlatform.open({ clock: systemClock, maintenance: false, reactivationTimeMs: 20 });
  closers.push(() => local.close());
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
    platform: local,
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
    // Whatever the test left waiting on the bot's clock (a Retry-After) is let through first.
    await clock.advance(2 * HOUR_MS);
    await surface.stop();
    await http.close();
  });
  await surface.slack.start();
  const requests = new SlackRequests(`http://127.0.0.1:${port}/slack/events`, WORLD_SECRET, fake);
  return { fake, requests, surface };
}

describe('Slack surface stop()', () => {
  it('gives up waiting for a click edit held by a long Retry-After after SHUTDOWN_FLUSH_MS, like other queued edits', async () => {
    const clock = new ObservedClock(Date.now());
    const b = await bot(clock);
    await b.requests.command({
      command: '/rollback',
      text: 'production',
      userId: 'U0ALICE',
      userName: 'alice',
    });
    const post = await b.fake.waitForCall('chat.postMessage', (c) => c.response.ok === true);
    const ts = String(post.response.ts);
    const cancel = buttonsOf(post.args.blocks as unknown[]).find((x) => x.actionId.startsWith('sy1:cancel:'));
    expect(cancel).toBeDefined();
    // Slack rate-limits the clicked message's edit for an hour.
    b.fake.rateLimit('chat.update', 3600, 1);
    const limited = clock.sleepOf(HOUR_MS);
    await b.requests.click({
      actionId: String(cancel?.actionId),
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

  it('closes the Socket Mode connection', async () => {
    const w = await startWorld({ redisUrl: redisUrl(), name: uniqueName('slack-stop-sm'), socketMode: true });
    worlds.push(w);
    await w.fake.socketConnected();
    expect(openSockets(w)).toBe(1);
    await w.surface.stop();
    await vi.waitFor(() => expect(openSockets(w)).toBe(0), { timeout: 5_000, interval: 20 });
  });

  it('waits for a click edit held by a Retry-After shorter than SHUTDOWN_FLUSH_MS, and it is delivered', async () => {
    const clock = new ObservedClock(Date.now());
    const b = await bot(clock);
    await b.requests.command({
      command: '/rollback',
      text: 'production',
      userId: 'U0ALICE',
      userName: 'alice',
    });
    const post = await b.fake.waitForCall('chat.postMessage', (c) => c.response.ok === true);
    const ts = String(post.response.ts);
    const cancel = buttonsOf(post.args.blocks as unknown[]).find((x) => x.actionId.startsWith('sy1:cancel:'));
    expect(cancel).toBeDefined();
    // Slack rate-limits the clicked message's edit for 5 s (half the shutdown wait).
    b.fake.rateLimit('chat.update', 5, 1);
    const limited = clock.sleepOf(5_000);
    await b.requests.click({
      actionId: String(cancel?.actionId),
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
