/**
 * startSlack's stop() and clicks already acked: the after-ack work of a click (its permission check,
 * the platform read, the enqueue of its switch) is carried out before stop() returns and the app
 * closes the worker, the queue and Redis, however long it takes (Slack does not send an acked
 * interaction again); only edits waiting on Slack's pacing are given up after SHUTDOWN_FLUSH_MS.
 */
import { afterEach, describe, expect, it } from 'vitest';
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
import type { DeployPlatform } from '../../src/platform/port.js';
import { SwitchQueue } from '../../src/queue.js';
import { createRedis } from '../../src/redis.js';
import { buttonsOf, SlackRequests } from '../fakes/slack/requests.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { WORLD_CHANNEL, WORLD_SECRET } from '../fakes/slack/world.js';
import { gate } from '../support/gate.js';
import { ObservedClock } from '../support/observed-clock.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
}, 60_000);

const HOUR_MS = 3_600_000;
/** handlers/slack/index.ts SHUTDOWN_FLUSH_MS. */
const SHUTDOWN_FLUSH_MS = 10_000;

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

describe('Slack stop() and an acked click still being handled', () => {
  it('does not return (letting the app close queue and Redis) while an acked confirm click has not queued its switch yet', async () => {
    const clock = new ObservedClock(Date.now());
    const name = uniqueName('rv11-stop');
    const fake = await new FakeSlack({ channels: { [WORLD_CHANNEL]: 'incidents' } }).start();
    closers.push(() => fake.close());
    const redis = createRedis(redisUrl());
    closers.push(() => redis.quit());
    const local = await LocalPlatform.open({
      clock: systemClock,
      maintenance: false,
      reactivationTimeMs: 20,
    });
    closers.push(() => local.close());
    // The platform read of the click's freshness check is held (a slow Unkey/Vercel API).
    const held = gate();
    let armed = false;
    const platform = Object.assign(Object.create(local) as DeployPlatform, {
      snapshot: async (environment: string) => {
        if (armed) {
          armed = false;
          await held.wait();
        }
        return local.snapshot(environment);
      },
    });
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
      platform,
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
    let stopping: Promise<void> | undefined;
    closers.push(async () => {
      held.open();
      await clock.advance(2 * HOUR_MS);
      await surface.idle(); // the held click finishes before the queue and Redis close
      await (stopping ?? surface.stop());
      await http.close();
    });
    await surface.slack.start();
    const requests = new SlackRequests(`http://127.0.0.1:${port}/slack/events`, WORLD_SECRET, fake);

    await requests.command({
      command: '/rollback',
      text: 'production',
      userId: 'U0ALICE',
      userName: 'alice',
    });
    const post = await fake.waitForCall('chat.postMessage', (c) => c.response.ok === true);
    const confirm = buttonsOf(post.args.blocks as unknown[]).find((x) =>
      x.actionId.startsWith('sy1:confirm:'),
    );
    expect(confirm).toBeDefined();

    armed = true;
    const ack = await requests.click({
      actionId: String(confirm?.actionId),
      messageTs: String(post.response.ts),
      userId: 'U0ALICE',
      userName: 'alice',
    });
    expect(ack.status).toBe(200); // Slack has its ack: it will not send this click again
    await held.reached; // the click's task is under way, before its enqueue

    stopping = surface.stop();
    for (let waited = 0; waited <= SHUTDOWN_FLUSH_MS; waited += 1_000) {
      await settled(stopping);
      await clock.advance(1_000);
    }
    const returned = await settled(stopping);
    const jobsWhenStopReturned = (await queue.waitingCounts()).waiting;
    // stop() returned with the acked click's switch not queued: the app's next cleanups close the
    // worker, the queue and Redis, and the click is lost.
    expect({ stopReturned: returned, jobsQueued: jobsWhenStopReturned }).toEqual({
      stopReturned: false,
      jobsQueued: 0,
    });
  }, 30_000);
});
