/**
 * Coming up against a Discord that rejects the configuration, cannot be reached, or does not become
 * ready (handlers/discord/client.ts, DiscordConnection), with the real discord.js client and the fake
 * Discord. A rejected token, a disallowed intent or another close Discord says not to reconnect after
 * (4010-4013) stops start-up — or, later, the connection — with a message saying what to do; otherwise
 * start-up goes on within its bound and the bot keeps connecting in the background, with backoff, until
 * it is ready or stopped. IDENTIFYs are spent sparingly: a held READY is waited for, not answered with
 * a new IDENTIFY every 15 s, and the daily budget of them is never used up. Tests wait on events (fake
 * traffic, log lines), never on sleeps.
 */
import { Events, type Interaction } from 'discord.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createDiscordSurface,
  type DiscordStartupOptions,
  type DiscordSurface,
  discordStartupDefaults,
  READY_TIMEOUT_MS,
} from '../../handlers/discord/client.js';
import { ConfigError } from '../../src/errors.js';
import type { GatewayEvent } from '../fakes/discord/gateway.js';
import { CallbackType, CloseCode } from '../fakes/discord/protocol.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/server.js';
import { CapturedLog } from '../support/captured-log.js';

const ERROR = 50;
const WARN = 40;

function nextGatewayEvent<K extends GatewayEvent['kind']>(
  fake: FakeDiscord,
  kind: K,
  match: (e: Extract<GatewayEvent, { kind: K }>) => boolean = () => true,
): Promise<Extract<GatewayEvent, { kind: K }>> {
  return new Promise((resolve) => {
    const on = (e: GatewayEvent) => {
      if (e.kind === kind && match(e as Extract<GatewayEvent, { kind: K }>)) {
        fake.gateway.events.off('event', on);
        resolve(e as Extract<GatewayEvent, { kind: K }>);
      }
    };
    fake.gateway.events.on('event', on);
  });
}

/**
 * `work`, or a rejection when it has not settled within `ms` — a guard, so that a start-up or stop
 * that hangs (what these tests are about) fails the test with a reason instead of its timeout.
 */
async function settlesWithin<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Timers keeping the process alive (`process.getActiveResourcesInfo`). Compared as "not more than
 * before": undici's own coarse timer may be running before and gone after.
 */
function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/** Short retries so a test sees several within milliseconds. */
const FAST: Partial<DiscordStartupOptions> = { retryMinMs: 20, retryMaxMs: 100 };

describe('discord start-up when Discord rejects, cannot be reached or is not ready', () => {
  let fake: FakeDiscord;
  let surface: DiscordSurface | undefined;
  let log: CapturedLog;
  const handled: Interaction[] = [];

  async function fakeDiscord(opts: Parameters<typeof startFakeDiscord>[0] = {}): Promise<FakeDiscord> {
    const f = await startFakeDiscord(opts);
    f.commands.set(f.guildId, [
      {
        id: '1300000000000000001',
        application_id: f.applicationId,
        guild_id: f.guildId,
        name: 'deployments',
        description: 'List deployments',
        type: 1,
        version: '1',
        options: [{ type: 3, name: 'environment', description: 'env', required: true }],
      },
    ]);
    return f;
  }

  beforeEach(async () => {
    fake = await fakeDiscord();
    log = new CapturedLog('debug');
    handled.length = 0;
  });

  afterEach(async () => {
    await surface?.stop();
    surface = undefined;
    await fake.close();
  });

  function connect(
    opts: { token?: string; startup?: Partial<DiscordStartupOptions>; watched?: boolean } = {},
  ): DiscordSurface {
    surface = createDiscordSurface({
      token: opts.token ?? fake.token,
      apiUrl: fake.apiUrl,
      logger: log.logger,
      startup: opts.startup ?? {},
      onInteraction: async (interaction) => {
        handled.push(interaction);
        if (interaction.isChatInputCommand()) await interaction.reply({ content: 'pong' });
      },
      // Watched channels make the bot read message content: it then asks for MessageContent.
      ...(opts.watched === true
        ? { onMessage: async () => undefined, watch: { channels: [fake.channels.alerts] } }
        : {}),
    });
    return surface;
  }

  /** Runs /deployments as a member and resolves with the bot's answer. */
  async function slashIsAnswered(): Promise<string | undefined> {
    const sent = fake.slash({
      command: 'deployments',
      options: [{ name: 'environment', value: 'production' }],
      user: fake.user('alice'),
    });
    const callback = await fake.waitForCallback(sent);
    expect(handled.map((i) => i.id)).toContain(sent.id);
    return callback.type === CallbackType.channelMessageWithSource
      ? (callback.data.content ?? undefined)
      : undefined;
  }

  it('a token Discord rejects (401 at gateway discovery) stops start-up with a message naming DISCORD_TOKEN', async () => {
    const s = connect({ token: 'not-the-token' });
    const error = await settlesWithin(s.start(), 10_000, 'start()').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/^DISCORD_TOKEN: Discord rejected the bot token/);
    expect((error as Error).message).toMatch(/Reset Token/);
    expect(s.status()).toEqual({ state: 'rejected', problem: expect.stringMatching(/DISCORD_TOKEN/) });
    expect(log.lines.some((l) => l.level === ERROR && l.msg === (error as Error).message)).toBe(true);
    // Not retried: a wrong token does not become right by asking again.
    expect(fake.calls.filter((c) => c.path === '/gateway/bot')).toHaveLength(1);
    expect(fake.gateway.sessionId).toBeUndefined();
  });

  it('a token the gateway rejects (close 4004 Authentication failed) stops start-up naming DISCORD_TOKEN', async () => {
    fake.gateway.closeNextIdentify(CloseCode.authenticationFailed, 'Authentication failed');
    const s = connect();
    const closed = nextGatewayEvent(fake, 'close', (e) => e.code === CloseCode.authenticationFailed);
    const error = await settlesWithin(s.start(), 10_000, 'start()').then(
      () => undefined,
      (e: unknown) => e,
    );
    await closed;
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(
      /^DISCORD_TOKEN: Discord rejected the bot token \(gateway close 4004/,
    );
    expect(s.status().state).toBe('rejected');
  });

  it('the Message Content intent not enabled (close 4014) stops start-up saying which intent to turn on', async () => {
    await fake.close();
    fake = await fakeDiscord({ privilegedIntents: 0 });
    const s = connect({ watched: true });
    const error = await settlesWithin(s.start(), 10_000, 'start()').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/close code 4014/);
    expect(message).toMatch(/Message Content Intent/);
    expect(message).toMatch(/Privileged Gateway Intents/);
    expect(s.status()).toEqual({
      state: 'rejected',
      problem: expect.stringMatching(/Message Content Intent is not enabled/),
    });
  });

  it('Discord unreachable at start: start-up goes on within the bound, retries back off, and the bot connects and answers once Discord is back', async () => {
    await fake.goOffline();
    const waitMs = 5_000;
    const s = connect({ startup: { ...FAST, waitMs } });
    const began = Date.now();
    await settlesWithin(s.start(), waitMs + 2_000, 'start()');
    expect(Date.now() - began).toBeLessThan(waitMs);
    expect(s.status()).toEqual({
      state: 'waiting',
      problem: expect.stringMatching(/ECONNREFUSED/),
      attempts: expect.any(Number),
    });
    const notConnected = log.lines.find((l) => l.level === ERROR);
    expect(notConnected?.msg).toMatch(/not connected yet .*ECONNREFUSED.*keeps trying to connect/);

    // Keeps trying in the background, each pause twice the last, up to the cap.
    const retries = await log.waitFor((l) => l.level === WARN && /cannot connect/.test(l.msg), 5);
    expect(retries.map((l) => l.retryInMs)).toEqual([20, 40, 80, 100, 100]);

    await fake.goOnline();
    await settlesWithin(s.ready(), 10_000, 'ready()');
    expect(s.status()).toEqual({ state: 'ready' });
    expect(log.lines.some((l) => l.msg === 'discord connected')).toBe(true);
    // The client that finally connected has every handler: a slash command is routed and answered.
    expect(await slashIsAnswered()).toBe('pong');
  });

  it('gateway never sends READY: start-up goes on after the bound, and the bot connects when READY comes', async () => {
    fake.gateway.holdReady();
    const waitMs = 300;
    const s = connect({ startup: { ...FAST, waitMs } });
    const held = nextGatewayEvent(fake, 'identify', (e) => e.held === true);
    const began = Date.now();
    await settlesWithin(s.start(), waitMs + 5_000, 'start()');
    expect(Date.now() - began).toBeGreaterThanOrEqual(waitMs - 5);
    await held;
    expect(s.status()).toEqual({
      state: 'waiting',
      problem: expect.stringMatching(/no READY from the gateway within 300 ms/),
      attempts: 1,
    });
    expect(log.lines.find((l) => l.level === ERROR)?.msg).toMatch(/not connected yet/);

    fake.gateway.releaseReady();
    await settlesWithin(s.ready(), 10_000, 'ready()');
    expect(s.status()).toEqual({ state: 'ready' });
    expect(await slashIsAnswered()).toBe('pong');
  });

  it('a token reset while connected (close 4004) turns the status to rejected with the message', async () => {
    const s = connect({ startup: FAST });
    await settlesWithin(s.start(), 10_000, 'start()');
    expect(s.status()).toEqual({ state: 'ready' });
    const rejected = log.waitFor((l) => l.level === ERROR && /^DISCORD_TOKEN:/.test(l.msg));
    fake.gateway.drop({ code: CloseCode.authenticationFailed });
    await rejected;
    expect(s.status()).toEqual({ state: 'rejected', problem: expect.stringMatching(/DISCORD_TOKEN.*4004/) });
  });

  it.each([
    [CloseCode.invalidShard, 'Invalid shard', /bug in Switchyard: please report it/],
    [CloseCode.shardingRequired, 'Sharding required', /too many servers .*Switchyard does not shard/],
    [CloseCode.invalidApiVersion, 'Invalid API version', /upgrade Switchyard/],
    [CloseCode.invalidIntents, 'Invalid intent\\(s\\)', /bug in Switchyard: please report it/],
  ])(
    'close %i at IDENTIFY (Discord: do not reconnect) stops start-up saying what to do, and is not retried',
    async (code, name, todo) => {
      // Answered the same way at every IDENTIFY, as Discord would.
      for (let i = 0; i < 5; i++) fake.gateway.closeNextIdentify(code, 'refused');
      const connects: GatewayEvent[] = [];
      fake.gateway.events.on('event', (e: GatewayEvent) => e.kind === 'connect' && connects.push(e));
      const s = connect({ startup: { ...FAST, waitMs: 5_000 } });
      const error = await settlesWithin(s.start(), 10_000, 'start()').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ConfigError);
      const message = (error as Error).message;
      expect(message).toMatch(new RegExp(`close code ${code} \\(${name}\\)`));
      expect(message).toMatch(todo);
      expect(s.status()).toEqual({
        state: 'rejected',
        problem: expect.stringMatching(new RegExp(`${code} ${name}`)),
      });
      expect(log.lines.some((l) => l.level === ERROR && l.msg === message)).toBe(true);
      // Rejected, so no retry is scheduled: one login, one connection.
      expect(fake.calls.filter((c) => c.path === '/gateway/bot')).toHaveLength(1);
      expect(connects).toHaveLength(1);
      await expect(s.ready()).rejects.toBe(error);
    },
  );

  it.each([
    [CloseCode.shardingRequired, /too many servers/],
    [CloseCode.disallowedIntents, /Message Content Intent/],
  ])(
    'while connected, a new session refused with close %i turns the status to rejected, and the bot stops connecting',
    async (code, says) => {
      const s = connect({ startup: FAST, watched: true });
      await settlesWithin(s.start(), 10_000, 'start()');
      expect(s.status()).toEqual({ state: 'ready' });
      for (let i = 0; i < 5; i++) fake.gateway.closeNextIdentify(code, 'refused');
      const refused = nextGatewayEvent(fake, 'close', (e) => e.code === code);
      const rejected = log.waitFor((l) => l.level === ERROR && new RegExp(`close code ${code}`).test(l.msg));
      // The session ends (op 9, not resumable): a new one needs an IDENTIFY, which Discord refuses.
      // discord.js spaces IDENTIFYs 5 s apart, so this test takes ~5 s.
      fake.gateway.invalidSession(false);
      await refused;
      const [line] = await rejected;
      expect(line?.msg).toMatch(says);
      expect(s.status()).toEqual({ state: 'rejected', problem: expect.stringContaining(String(code)) });
      await expect(s.ready()).rejects.toThrow(new RegExp(`close code ${code}`));
    },
    20_000,
  );

  it("while the gateway holds READY, the bot waits for it 10 minutes before identifying again (not discord.js's 15 s)", async () => {
    fake.gateway.holdReady();
    const s = connect({ startup: { ...FAST, waitMs: 100 } });
    // @discordjs/ws says how long it waits for READY after its IDENTIFY.
    const readyWait = new Promise<string>((resolve) =>
      s.client.on(Events.Debug, (m) => {
        const wait = /Waiting for event ready (.*)$/m.exec(m);
        if (wait?.[1]) resolve(wait[1]);
      }),
    );
    const held = nextGatewayEvent(fake, 'identify', (e) => e.held === true);
    await settlesWithin(s.start(), 5_000, 'start()');
    await held;
    expect(await readyWait).toBe(`for ${READY_TIMEOUT_MS}ms`);
    expect(READY_TIMEOUT_MS).toBeGreaterThanOrEqual(10 * 60_000);
    fake.gateway.releaseReady();
    await settlesWithin(s.ready(), 10_000, 'ready()');
  });

  it('stops identifying while only the reserve of the daily session starts is left, says so, and connects again once Discord renews them', async () => {
    await fake.close();
    const reserve = discordStartupDefaults.sessionStartReserve;
    // One IDENTIFY left above the reserve; Discord renews them in 5 s.
    fake = await fakeDiscord({
      sessionStartLimit: { total: 1000, remaining: reserve + 1, resetAfterMs: 5_000 },
    });
    const s = connect({ startup: FAST });
    await settlesWithin(s.start(), 4_000, 'start()');
    expect(s.status()).toEqual({ state: 'ready' });
    expect(fake.sessionStartsRemaining).toBe(reserve);

    const heldBack = log.waitFor((l) => l.level === ERROR && /gateway session starts/.test(l.msg));
    const identified = nextGatewayEvent(fake, 'identify');
    // The session ends (op 9, not resumable): a new one would need an IDENTIFY.
    fake.gateway.invalidSession(false);
    const first = await Promise.race([
      heldBack.then(() => 'held back'),
      identified.then(() => 'identified again'),
    ]);
    expect(first).toBe('held back');
    const [line] = await heldBack;
    expect(fake.sessionStartsRemaining).toBe(reserve);
    expect(line?.msg).toMatch(
      new RegExp(
        `only ${reserve} of the bot's 1000 gateway session starts \\(IDENTIFY\\) are left .*resets the bot token`,
      ),
    );
    expect(s.status()).toEqual({
      state: 'waiting',
      problem: expect.stringMatching(/gateway session starts/),
      attempts: 1,
    });

    // Renewed: the next login identifies, and the new client answers commands.
    await identified;
    await settlesWithin(s.ready(), 10_000, 'ready() after the renewal');
    expect(fake.sessionStartsRemaining).toBe(999);
    expect(await slashIsAnswered()).toBe('pong');
    // It waited for the renewal instead of trying (and saying so) again with its short backoff.
    expect(log.lines.filter((l) => /gateway session starts/.test(l.msg))).toHaveLength(1);
  }, 20_000);

  it('stop() while retrying with backoff resolves and leaves no timer or connection behind', async () => {
    await fake.goOffline();
    const timersBefore = activeTimers();
    const s = connect({ startup: { ...FAST, waitMs: 5_000 } });
    await settlesWithin(s.start(), 7_000, 'start()');
    await log.waitFor((l) => l.level === WARN && /cannot connect/.test(l.msg), 3);
    await settlesWithin(s.stop(), 5_000, 'stop()');
    surface = undefined;
    expect(activeTimers()).toBeLessThanOrEqual(timersBefore);
    const attempts = s.status();
    await expect(s.ready()).rejects.toThrow(/stopped/);
    // Discord comes back after the stop: nobody connects to it.
    const connects: GatewayEvent[] = [];
    fake.gateway.events.on('event', (e: GatewayEvent) => e.kind === 'connect' && connects.push(e));
    await fake.goOnline();
    expect(s.status()).toEqual(attempts);
    expect(connects).toEqual([]);
  });

  it('stop() while the gateway holds READY resolves, closes the connection and does not reconnect', async () => {
    fake.gateway.holdReady();
    const timersBefore = activeTimers();
    const s = connect({ startup: { ...FAST, waitMs: 100 } });
    const held = nextGatewayEvent(fake, 'identify', (e) => e.held === true);
    await settlesWithin(s.start(), 5_000, 'start()');
    await held;
    const closed = nextGatewayEvent(fake, 'close', (e) => e.by === 'client');
    const reconnects: GatewayEvent[] = [];
    fake.gateway.events.on('event', (e: GatewayEvent) => e.kind === 'connect' && reconnects.push(e));
    const client = s.client;
    await settlesWithin(s.stop(), 5_000, 'stop()');
    surface = undefined;
    await closed;
    expect(fake.gateway.connected).toBe(false);
    // discord.js schedules its own reconnect 500 ms after a destroy that raced its READY wait; stop()
    // waits longer than that, so a reconnect would have shown by now.
    expect(reconnects).toEqual([]);
    expect(activeTimers()).toBeLessThanOrEqual(timersBefore);
    expect(client.isReady()).toBe(false);
  });
});
