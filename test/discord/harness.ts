/**
 * End-to-end set-up for the Discord tests: the fake Discord (commands registered with the real
 * registration code), the real discord.js bot built by createDiscordBot, and the real core behind it —
 * Redis (fresh prefixes and queue per test), PlanStore, AuditLog, Flow, ChatService, SwitchQueue, a
 * switch worker reporting through the Discord Reporter (the bot's, or with `separateWorker` one of its
 * own, as in another process), and the embedded LocalPlatform on a ManualClock (a standby target stays
 * in `reactivating` until the test advances time). With `proxy`, the bot reaches Discord's REST API
 * through a HoldingProxy, so a test can make one of its calls land or answer late.
 */
import { REST } from 'discord.js';
import { afterEach } from 'vitest';
import { registerCommands } from '../../handlers/discord/commands.js';
import { createDiscordBotFromConfig, type DiscordBot } from '../../handlers/discord/index.js';
import { DiscordMessages } from '../../handlers/discord/messages.js';
import { DiscordReporter } from '../../handlers/discord/reporter.js';
import { discordPoster } from '../../handlers/surfaces.js';
import { type SwitchWorker, startSwitchWorker } from '../../jobs/switch-worker.js';
import { AuditLog } from '../../src/audit.js';
import { ChatService } from '../../src/chat.js';
import type { ChatPoster } from '../../src/chat-sinks.js';
import { ManualClock, systemClock } from '../../src/clock.js';
import { fileConfigSchema, parseEnv } from '../../src/config.js';
import type { EnvironmentSnapshot } from '../../src/domain/types.js';
import { PlatformHttpError } from '../../src/errors.js';
import { Flow } from '../../src/flow.js';
import { type Logger, silentLogger } from '../../src/log.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { PlanStore } from '../../src/plan-store.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import type { DeployPlatform, OperationRef, SwitchRequest } from '../../src/platform/port.js';
import { SwitchQueue } from '../../src/queue.js';
import { createRedis, type RedisClient } from '../../src/redis.js';
import type { FakeInteraction, FakeUser, RestCall, StoredMessage } from '../fakes/discord/server.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/server.js';
import { HoldingProxy } from '../support/holding-proxy.js';
import { redisUrl, uniqueName } from '../support/redis.js';

export const REACTIVATION_MS = 1_000;

export interface DiscordE2E {
  readonly fake: FakeDiscord;
  readonly bot: DiscordBot;
  readonly clock: ManualClock;
  readonly platform: LocalPlatform;
  /** What the bot's Flow reads through (can be held to simulate a slow platform). */
  readonly held: HeldPlatform;
  readonly flow: Flow;
  /** The ChatService behind the bot (`idle()`: its background edits of a plan's other messages done). */
  readonly chat: ChatService;
  /** The plan store behind `flow` (fault injection). */
  readonly plans: PlanStore;
  readonly queue: SwitchQueue;
  readonly audit: AuditLog;
  readonly metrics: Metrics;
  readonly worker: SwitchWorker;
  /** A member holding the deployers role (allowed on every environment). */
  readonly alice: FakeUser;
  /** A second deployer (approves under the two-person rule). */
  readonly carol: FakeUser;
  /** A member with only the viewers role (not allowed). */
  readonly bob: FakeUser;
  /** Between the bot and Discord's REST API, with `proxy: true`. */
  readonly proxy: HoldingProxy | undefined;
  close(): Promise<void>;
}

export interface E2EOptions {
  /** Environments that need a second person's approval. */
  readonly twoPerson?: readonly string[];
  /** People allowed by user id (in addition to the deployers role). */
  readonly allowUsers?: readonly ('alice' | 'bob' | 'carol')[];
  /** The bot reaches Discord's REST API through a HoldingProxy (`DiscordE2E.proxy`). */
  readonly proxy?: boolean;
  /**
   * The switch worker runs as in another process (`npm run worker`, or a replica's): it edits Discord
   * messages with its own REST client and message lanes, straight to Discord, not through the bot's.
   */
  readonly separateWorker?: boolean;
  /** Roles on the allow list instead of the deployers role (e.g. the server's @everyone role). */
  readonly allowRoles?: (fake: FakeDiscord) => readonly string[];
  /**
   * What the bot's Flow reads instead of the embedded LocalPlatform (e.g. a Vercel adapter on the fake
   * Vercel API, for tests of what a command reads). The switch worker still runs on the LocalPlatform,
   * so only tests that switch nothing pass one; the test closes it.
   */
  readonly platform?: DeployPlatform;
  /**
   * The ChatService edits through the bot's poster, as the app wires it (handlers/app.ts): a click that
   * closes a plan or makes it wait for approval is shown on the plan's other messages too.
   */
  readonly posters?: boolean;
  /** DISCORD_GUILD_ID names the fake's server: interactions from any other are refused. */
  readonly configuredGuild?: boolean;
  /** The bot's logger (default: silent). */
  readonly logger?: Logger;
}

/** The reads `HeldPlatform` can hold. */
export type HeldRead = 'listEnvironments' | 'snapshot';
/** The reads `HeldPlatform` counts. */
export type CountedRead = HeldRead | 'getDeployment' | 'routing';

/**
 * The platform as the bot's Flow sees it: the LocalPlatform (or the platform `E2EOptions.platform`
 * names), except that reads can be held (a slow platform API) until the test lets them through, and
 * that the reads are counted.
 */
export class HeldPlatform implements DeployPlatform {
  readonly name: string;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  private held: readonly HeldRead[] = [];
  /** Reads currently waiting at the gate. */
  waiting = 0;
  /** Reads asked for so far (held ones included), by operation. */
  readonly reads = { listEnvironments: 0, snapshot: 0, getDeployment: 0, routing: 0 };
  private readonly readWaiters: { read: CountedRead; count: number; resolve: () => void }[] = [];

  constructor(private readonly inner: DeployPlatform) {
    this.name = inner.name;
  }

  /** Holds the `reads` asked for from now on (every read the gate knows by default) until `release()`. */
  hold(reads: readonly HeldRead[] = ['listEnvironments', 'snapshot']): void {
    this.held = reads;
    this.gate = new Promise<void>((resolve) => {
      this.open = resolve;
    });
  }

  release(): void {
    this.open?.();
    this.gate = undefined;
  }

  /** Resolves once `count` reads of `read` were asked for in all (held ones included). */
  whenRead(read: CountedRead, count: number): Promise<void> {
    if (this.reads[read] >= count) return Promise.resolve();
    return new Promise((resolve) => this.readWaiters.push({ read, count, resolve }));
  }

  private counted(read: CountedRead): void {
    this.reads[read] += 1;
    for (const w of [...this.readWaiters]) {
      if (w.read !== read || this.reads[read] < w.count) continue;
      this.readWaiters.splice(this.readWaiters.indexOf(w), 1);
      w.resolve();
    }
  }

  private async pass(read: HeldRead): Promise<void> {
    this.counted(read);
    if (!this.gate || !this.held.includes(read)) return;
    this.waiting += 1;
    await this.gate;
    this.waiting -= 1;
  }

  async listEnvironments() {
    await this.pass('listEnvironments');
    return this.inner.listEnvironments();
  }
  async snapshot(environment: string) {
    await this.pass('snapshot');
    return this.inner.snapshot(environment);
  }
  getDeployment(id: string) {
    this.counted('getDeployment');
    return this.inner.getDeployment(id);
  }
  routing(environment: string, snapshot?: EnvironmentSnapshot) {
    this.counted('routing');
    return this.inner.routing(environment, snapshot);
  }
  rollback(request: SwitchRequest) {
    return this.inner.rollback(request);
  }
  promote(request: SwitchRequest) {
    return this.inner.promote(request);
  }
  operation(ref: OperationRef) {
    return this.inner.operation(ref);
  }
  health() {
    return this.inner.health();
  }
  async close() {}
}

/** Registers Switchyard's slash commands on the fake Discord, as `npm run discord:register` does. */
export function registerCommandsOn(fake: FakeDiscord): ReturnType<typeof registerCommands> {
  return registerCommands({
    token: fake.token,
    applicationId: fake.applicationId,
    guildId: fake.guildId,
    apiUrl: fake.apiUrl,
  });
}

/** Starts everything; `close()` in afterEach. */
export async function startDiscordE2E(opts: E2EOptions = {}): Promise<DiscordE2E> {
  const closers: (() => Promise<unknown>)[] = [];
  try {
    const fake = await startFakeDiscord();
    closers.push(() => fake.close());
    await registerCommandsOn(fake);
    const clock = new ManualClock(Date.now());
    const platform = await LocalPlatform.open({
      clock,
      maintenance: false,
      reactivationTimeMs: REACTIVATION_MS,
    });
    closers.push(() => platform.close());
    const redis: RedisClient = createRedis(redisUrl());
    closers.push(() => redis.quit());
    const prefix = uniqueName('discord');
    const plans = new PlanStore({ redis, prefix: `${prefix}:`, clock });
    const audit = new AuditLog(redis, { prefix });
    const queue = new SwitchQueue({
      redisUrl: redisUrl(),
      queueName: uniqueName('switch'),
      audit,
      retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 },
    });
    closers.push(async () => {
      await queue.obliterate();
      await queue.close();
    });
    await queue.waitUntilReady();
    const people = { alice: fake.user('alice'), bob: fake.user('bob'), carol: fake.user('carol') };
    const allow = {
      discord: {
        roles: opts.allowRoles ? [...opts.allowRoles(fake)] : [fake.roles.deployers],
        users: (opts.allowUsers ?? []).map((name) => people[name].id),
      },
    };
    const environments = Object.fromEntries(
      ['production', 'preview'].map((env) => [
        env,
        { allow, twoPersonRule: (opts.twoPerson ?? []).includes(env) },
      ]),
    );
    // A real platform is the strict case (no allow list means nobody), so permissions really apply.
    const config = {
      platform: 'local' as const,
      file: fileConfigSchema.parse({ platform: 'local', environments }),
    };
    const held = new HeldPlatform(opts.platform ?? platform);
    const flow = new Flow({ platform: held, queue, plans, audit, config, clock });
    const posters: { discord?: ChatPoster } = {};
    const chat = new ChatService({
      flow,
      clock,
      ...(opts.posters === true ? { posters: () => posters } : {}),
    });
    const metrics = createMetrics();
    const proxy = opts.proxy === true ? await HoldingProxy.start(fake.apiUrl) : undefined;
    if (proxy) closers.push(() => proxy.close());
    // Built the way the process builds it: from env vars parsed by src/config.ts.
    const discordEnv = parseEnv({
      DISCORD_TOKEN: fake.token,
      DISCORD_APPLICATION_ID: fake.applicationId,
      DISCORD_API_URL: proxy ? proxy.rebase(fake.apiUrl) : fake.apiUrl,
      ...(opts.configuredGuild === true ? { DISCORD_GUILD_ID: fake.guildId } : {}),
    });
    const bot = createDiscordBotFromConfig(
      { env: discordEnv },
      { chat, flow, clock, metrics, ...(opts.logger === undefined ? {} : { logger: opts.logger }) },
    );
    if (!bot) throw new Error('DISCORD_TOKEN set but no bot was created');
    posters.discord = discordPoster(bot.messages);
    closers.push(() => bot.stop());
    await bot.start();
    const separate =
      opts.separateWorker === true
        ? new DiscordReporter({
            messages: new DiscordMessages({ rest: new REST({ api: fake.apiUrl }).setToken(fake.token) }),
          })
        : undefined;
    const worker = startSwitchWorker({
      redisUrl: redisUrl(),
      queueName: queue.queueName,
      platform,
      reporter: separate ?? bot.reporter,
      clock: systemClock,
      verify: { timeoutMs: 5_000, intervalMs: 5 },
      lockDurationMs: 5_000,
      concurrency: 2,
      logger: silentLogger,
      metrics,
      audit,
      retry: { baseDelayMs: 5, maxDelayMs: 20 },
      lockRetryMs: 200,
    });
    closers.push(async () => {
      await worker.close();
      await separate?.flush();
    });
    await worker.worker.waitUntilReady();
    // First thing at close: calls held at the proxy go on, so that nothing stopping waits for them.
    if (proxy) closers.push(async () => proxy.releaseAll());
    const { alice, bob, carol } = people;
    return {
      fake,
      bot,
      clock,
      platform,
      held,
      flow,
      chat,
      plans,
      queue,
      audit,
      metrics,
      worker,
      alice,
      carol,
      bob,
      proxy,
      async close() {
        for (const close of closers.reverse()) await close().catch(() => undefined);
      },
    };
  } catch (e) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    throw e;
  }
}

/**
 * What a test file calls to start everything (`startDiscordE2E`): registers an afterEach that closes
 * what the test started.
 */
export function startPerTest(): (opts?: E2EOptions) => Promise<DiscordE2E> {
  let env: DiscordE2E | undefined;
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });
  return async (opts = {}) => {
    env = await startDiscordE2E(opts);
    return env;
  };
}

/** `/command name:value` typed in the ops channel by `user` (a deployer unless `roles` says otherwise). */
export function slash(
  e: DiscordE2E,
  command: string,
  options: Record<string, string>,
  user = e.alice,
  roles: readonly string[] = [e.fake.roles.deployers],
): FakeInteraction {
  return e.fake.slash({
    command,
    options: Object.entries(options).map(([name, value]) => ({ name, value })),
    user,
    roles,
  });
}

/** The bot's edit of interaction `i`'s deferred reply (its `@original` message), from call `from` on. */
export function originalEdited(e: DiscordE2E, i: FakeInteraction, from = 0): Promise<RestCall> {
  return e.fake.waitForRequest(
    (c) =>
      c.method === 'PATCH' && c.path === `/webhooks/${e.fake.applicationId}/${i.token}/messages/@original`,
    { from },
  );
}

/** A follow-up message the bot sent on interaction `i` (an ephemeral note), from call `from` on. */
export function followUp(e: DiscordE2E, i: FakeInteraction, from = 0): Promise<RestCall> {
  return e.fake.waitForRequest(
    (c) => c.method === 'POST' && c.path === `/webhooks/${e.fake.applicationId}/${i.token}`,
    { from },
  );
}

/** The stored message a recorded webhook POST created, if any. */
export function messageOf(e: DiscordE2E, call: RestCall): StoredMessage | undefined {
  return e.fake.messages.get(String((call.response as { id: string }).id));
}

/** What stands for a message the fake did not store, so that `textOf` reads it as empty. */
export const NO_MESSAGE = { content: '', embeds: [] };

/** Clicks `label` as `user` without waiting for anything. */
export function press(
  e: DiscordE2E,
  message: StoredMessage,
  label: string,
  user = e.alice,
  roles: readonly string[] = [e.fake.roles.deployers],
): FakeInteraction {
  return e.fake.click({ messageId: message.id, customId: buttonId(message, label), user, roles });
}

/** The text a person sees in a stored message: content, embed titles, descriptions and fields. */
export function textOf(m: { content: string; embeds: readonly Record<string, unknown>[] }): string {
  const parts = [m.content];
  for (const e of m.embeds) {
    parts.push(String(e.title ?? ''), String(e.description ?? ''));
    for (const f of (e.fields as { name: string; value: string }[] | undefined) ?? [])
      parts.push(f.name, f.value);
  }
  // Undo the renderer's markdown escaping so assertions read naturally.
  return parts.join('\n').replace(/\\(.)/g, '$1');
}

/** Buttons of a stored message. */
export function buttonsOf(m: StoredMessage): { label: string; custom_id: string; style: number }[] {
  return m.components.flatMap(
    (row) => (row.components as { label: string; custom_id: string; style: number }[] | undefined) ?? [],
  );
}

/** The custom id of the button whose label starts with `label`. */
export function buttonId(m: StoredMessage, label: string): string {
  const b = buttonsOf(m).find((x) => x.label.startsWith(label));
  if (!b)
    throw new Error(
      `no "${label}" button; buttons: ${buttonsOf(m)
        .map((x) => x.label)
        .join(', ')}`,
    );
  return b.custom_id;
}

/** Resolves with the message once a PATCH of it (from `from`) leaves it satisfying `match`. */
export async function waitForMessage(
  fake: FakeDiscord,
  messageId: string,
  match: (text: string, m: StoredMessage) => boolean,
  from = 0,
): Promise<StoredMessage> {
  const check = (): StoredMessage | undefined => {
    const m = fake.messages.get(messageId);
    return m && match(textOf(m), m) ? m : undefined;
  };
  const now = check();
  if (now) return now;
  await fake.waitForRequest(
    (c: RestCall) =>
      c.path.endsWith(`/messages/${messageId}`) && c.method === 'PATCH' && check() !== undefined,
    { from },
  );
  const done = check();
  if (!done) throw new Error('message changed again before it could be read');
  return done;
}

/** Waits for the bot to post a channel message (from call index `from`) and returns it. */
export async function waitForPost(fake: FakeDiscord, channelId: string, from = 0): Promise<StoredMessage> {
  const call = await fake.waitForRequest(
    (c) => c.method === 'POST' && c.path === `/channels/${channelId}/messages` && c.status === 200,
    { from },
  );
  const id = (call.response as { id?: unknown } | null)?.id;
  const m = typeof id === 'string' ? fake.messages.get(id) : undefined;
  if (!m) throw new Error('posted message not stored');
  return m;
}

/**
 * Advances the clock by `ms` once something is parked on it (the platform reactivating a standby
 * target registers its sleep a moment after the job reports the step). Yields to the event loop
 * between checks instead of sleeping.
 */
export async function advanceWhenParked(clock: ManualClock, ms: number, maxTurns = 100_000): Promise<void> {
  for (let turn = 0; clock.pending === 0; turn++) {
    if (turn >= maxTurns) throw new Error('nothing parked on the clock');
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  await clock.advance(ms);
}

/** The deploy platform unreachable, as the HTTP client reports it: what a command or click may meet. */
export function platformUnreachable(): PlatformHttpError {
  return new PlatformHttpError(
    0,
    'GET',
    'http://127.0.0.1:9/v2/deployments.listDeployments',
    'network_error',
    'connect ECONNREFUSED 127.0.0.1:9',
    { retry: true, code: 'platform_unavailable' },
  );
}
