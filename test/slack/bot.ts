/**
 * The bot process as a test drives it: the real Slack surface (startSlack: its reporter and user-group
 * cache on the test's clock) over the fake Slack, a real Redis, queue, Flow and LocalPlatform, and no
 * switch worker (SWITCHYARD_WORKER=off; a test starts one when it needs it). Shared by the tests of
 * clicks' edits and of stop().
 */
import { type SlackSurface, startSlack } from '../../handlers/slack/index.js';
import { AuditLog } from '../../src/audit.js';
import { ChatService } from '../../src/chat.js';
import { type Clock, systemClock } from '../../src/clock.js';
import { fileConfigSchema } from '../../src/config.js';
import { Flow } from '../../src/flow.js';
import { HttpServer } from '../../src/http.js';
import { type Logger, silentLogger } from '../../src/log.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { PlanStore } from '../../src/plan-store.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import type { DeployPlatform } from '../../src/platform/port.js';
import { SwitchQueue } from '../../src/queue.js';
import { createRedis } from '../../src/redis.js';
import { buttonsOf, SlackRequests } from '../fakes/slack/requests.js';
import { FakeSlack, type RecordedCall } from '../fakes/slack/server.js';
import { WORLD_CHANNEL, WORLD_SECRET } from '../fakes/slack/world.js';
import { redisUrl, uniqueName } from '../support/redis.js';

export interface Bot {
  readonly fake: FakeSlack;
  readonly requests: SlackRequests;
  readonly surface: SlackSurface;
  readonly queue: SwitchQueue;
  readonly local: LocalPlatform;
  /** The platform the bot's Flow uses (`local`, or what `platform` made of it). */
  readonly platform: DeployPlatform;
  readonly audit: AuditLog;
  /** The queue's name (a worker the test starts uses it), also the Redis key prefix. */
  readonly name: string;
  readonly metrics: Metrics;
}

export interface BotOptions {
  /** The surface's clock (reporter pacing, user-group cache); the rest runs on the system clock. */
  readonly clock: Clock;
  /** Registers a cleanup; the test file runs them in reverse order after each test. */
  readonly add: (close: () => Promise<unknown>) => void;
  /** What the bot's Flow sees of the local platform (a wrapper holding a call, say). */
  readonly platform?: (local: LocalPlatform) => DeployPlatform;
  readonly name?: string;
  /** Spacing of one message's progress edits, on `clock` (default 0: every state goes out at once). */
  readonly progressIntervalMs?: number;
  /** How long one call to the fake Slack may take (default: the app's 10 s). */
  readonly callTimeoutMs?: number;
  /** The bot's logger (default: silent). */
  readonly logger?: Logger;
}

export async function startBot(opts: BotOptions): Promise<Bot> {
  const name = uniqueName(opts.name ?? 'slack-bot');
  const fake = await new FakeSlack({ channels: { [WORLD_CHANNEL]: 'incidents' } }).start();
  opts.add(() => fake.close());
  const redis = createRedis(redisUrl());
  opts.add(() => redis.quit());
  const local = await LocalPlatform.open({ clock: systemClock, maintenance: false, reactivationTimeMs: 20 });
  opts.add(() => local.close());
  const platform = opts.platform?.(local) ?? local;
  const audit = new AuditLog(redis, { prefix: name });
  const plans = new PlanStore({ redis, prefix: `${name}:`, clock: systemClock });
  const queue = new SwitchQueue({ redisUrl: redisUrl(), queueName: name, audit });
  opts.add(async () => {
    await queue.obliterate();
    await queue.close();
  });
  await queue.waitUntilReady();
  const config = {
    platform: 'local' as const,
    file: fileConfigSchema.parse({ platform: 'local', environments: {} }),
  };
  const flow = new Flow({ platform, queue, plans, audit, config, clock: systemClock, logger: silentLogger });
  const http = new HttpServer();
  const metrics = createMetrics();
  const surface = startSlack({
    botToken: fake.token,
    signingSecret: WORLD_SECRET,
    http,
    apiUrl: fake.apiUrl,
    redis,
    keyPrefix: `${name}:`,
    flow,
    chat: new ChatService({ flow, clock: systemClock }),
    config,
    metrics,
    logger: opts.logger ?? silentLogger,
    clock: opts.clock,
    progressIntervalMs: opts.progressIntervalMs ?? 0,
    ...(opts.callTimeoutMs === undefined ? {} : { callTimeoutMs: opts.callTimeoutMs }),
  });
  const port = await http.listen(0);
  opts.add(async () => {
    await surface.stop();
    await http.close();
  });
  await surface.slack.start();
  const requests = new SlackRequests(`http://127.0.0.1:${port}/slack/events`, WORLD_SECRET, fake);
  return { fake, requests, surface, queue, local, platform, audit, name, metrics };
}

/** Alice types `command text`; the confirmation message Slack then holds (its post and `ts`). */
export async function confirmation(
  b: Pick<Bot, 'fake' | 'requests'>,
  command = '/rollback',
  text = 'production',
): Promise<{ post: RecordedCall; ts: string }> {
  const before = b.fake.callsOf('chat.postMessage').length;
  await b.requests.command({ command, text, userId: 'U0ALICE', userName: 'alice' });
  const post = await b.fake.waitForCall(
    'chat.postMessage',
    (c) => c.response.ok === true && b.fake.callsOf('chat.postMessage').indexOf(c) >= before,
  );
  return { post, ts: String(post.response.ts) };
}

/** The action id of the posted message's button whose id starts with `prefix` (`sy1:cancel:`, …). */
export function buttonOf(post: RecordedCall, prefix: string): string {
  const found = buttonsOf(post.args.blocks as unknown[]).find((b) => b.actionId.startsWith(prefix));
  if (!found) throw new Error(`no ${prefix} button`);
  return found.actionId;
}

/** Whether `p` has settled (either way) once pending callbacks ran (no wall-clock wait). */
export async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  const mark = () => {
    done = true;
  };
  void p.then(mark, mark);
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
  return done;
}
