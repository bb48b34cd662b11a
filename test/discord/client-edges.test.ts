/**
 * handlers/discord/client.ts, the connection state after the session was READY, which no other test
 * pins down (real discord.js client against the fake Discord): a reconnect turns the status to
 * `waiting` (so /readyz says so), a resumed or re-identified session turns it back to `ready` — also
 * after a zombied connection (heartbeats not acknowledged), op 7 Reconnect or op 9 with `d: true`, all
 * resumed — and commands are answered again, and a stopped surface no longer says `ready`; a direct
 * message is never passed on as a channel message;
 * and the deduper of interactions and messages forgets the oldest ids first, once over its capacity.
 */
import { Events, GatewayDispatchEvents } from 'discord.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createDiscordSurface,
  type DiscordConnectionStatus,
  type DiscordSurface,
  InteractionDeduper,
} from '../../handlers/discord/client.js';
import { SessionStartBudget } from '../../handlers/discord/session-starts.js';
import type { ChannelMessage } from '../../handlers/discord/watch.js';
import { ManualClock } from '../../src/clock.js';
import type { GatewayEvent } from '../fakes/discord/gateway.js';
import { CallbackType } from '../fakes/discord/protocol.js';
import { type FakeDiscord, makeSnowflake, startFakeDiscord } from '../fakes/discord/server.js';
import { CapturedLog } from '../support/captured-log.js';

function nextGatewayEvent<K extends GatewayEvent['kind']>(fake: FakeDiscord, kind: K): Promise<unknown> {
  return new Promise((resolve) => {
    const on = (e: GatewayEvent) => {
      if (e.kind !== kind) return;
      fake.gateway.events.off('event', on);
      resolve(e);
    };
    fake.gateway.events.on('event', on);
  });
}

describe('discord surface against the fake Discord: connection state across a reconnect, messages read', () => {
  let fake: FakeDiscord;
  let surface: DiscordSurface | undefined;
  let log: CapturedLog;

  beforeEach(async () => {
    fake = await startFakeDiscord();
    log = new CapturedLog('debug');
  });

  afterEach(async () => {
    await surface?.stop();
    surface = undefined;
    await fake.close();
  });

  function connect(): DiscordSurface {
    surface = createDiscordSurface({ token: fake.token, apiUrl: fake.apiUrl, logger: log.logger });
    return surface;
  }

  /** A surface that answers /deployments with "pong" (and, with `onMessage`, watches the alerts channel). */
  function connectAnswering(
    opts: { onMessage?: (id: string, content: string) => void } = {},
  ): DiscordSurface {
    fake.commands.set(fake.guildId, [
      {
        id: '1300000000000000001',
        application_id: fake.applicationId,
        guild_id: fake.guildId,
        name: 'deployments',
        description: 'List deployments',
        type: 1,
        version: '1',
        options: [{ type: 3, name: 'environment', description: 'env', required: true }],
      },
    ]);
    surface = createDiscordSurface({
      token: fake.token,
      apiUrl: fake.apiUrl,
      logger: log.logger,
      onInteraction: async (i) => {
        if (i.isChatInputCommand()) await i.reply({ content: 'pong' });
      },
      ...(opts.onMessage === undefined
        ? {}
        : {
            onMessage: async (m: ChannelMessage) => opts.onMessage?.(m.id, m.content),
            watch: { channels: [fake.channels.alerts] },
          }),
    });
    return surface;
  }

  /** Runs /deployments and resolves with the bot's answer. */
  async function answer(): Promise<unknown> {
    const sent = fake.slash({
      command: 'deployments',
      options: [{ name: 'environment', value: 'production' }],
      user: fake.user('alice'),
    });
    const callback = await fake.waitForCallback(sent);
    return callback.type === CallbackType.channelMessageWithSource ? callback.data.content : callback;
  }

  /** The status seen right after the client emitted `event` (listeners run in order: ours is last). */
  function statusOn(
    s: DiscordSurface,
    event: Events.ShardReconnecting | Events.ShardResume | Events.ShardReady,
  ) {
    return new Promise<DiscordConnectionStatus>((resolve) => s.client.once(event, () => resolve(s.status())));
  }

  it('a dropped connection says waiting while discord.js reconnects, and ready once resumed', async () => {
    const s = connect();
    await s.start();
    expect(s.status()).toEqual({ state: 'ready' });
    const reconnecting = statusOn(s, Events.ShardReconnecting);
    const resumed = statusOn(s, Events.ShardResume);
    fake.gateway.drop({ code: 4000 });
    expect(await reconnecting).toEqual({
      state: 'waiting',
      problem: 'gateway connection lost; reconnecting',
      attempts: 1,
    });
    expect(await resumed).toEqual({ state: 'ready' });
    expect(log.lines.filter((l) => l.msg === 'discord reconnected')).toHaveLength(1);
    expect(s.client.isReady()).toBe(true);
  });

  it('a session that could not be resumed is ready again once the new session is READY', async () => {
    const s = connect();
    await s.start();
    const invalid = nextGatewayEvent(fake, 'invalid_session');
    const reconnecting = statusOn(s, Events.ShardReconnecting);
    // discord.js spaces identifies 5 s apart (its identify throttle), so this test takes ~5 s.
    const ready = statusOn(s, Events.ShardReady);
    fake.gateway.invalidateSession();
    fake.gateway.drop({ code: 4000 });
    await invalid;
    expect((await reconnecting).state).toBe('waiting');
    expect(await ready).toEqual({ state: 'ready' });
  }, 20_000);

  it('a zombied connection (heartbeats not acknowledged) is closed and resumed: waiting, then ready, and commands are answered', async () => {
    await fake.close();
    fake = await startFakeDiscord({ heartbeatIntervalMs: 200 });
    const s = connectAnswering();
    await s.start();
    const sessionId = fake.gateway.sessionId;
    const closed = nextGatewayEvent(fake, 'close');
    const resumed = nextGatewayEvent(fake, 'resume');
    const reconnecting = statusOn(s, Events.ShardReconnecting);
    const back = statusOn(s, Events.ShardResume);
    fake.gateway.stopAcking();
    // discord.js closes it when a heartbeat is due and the last one was not acknowledged.
    expect(await closed).toMatchObject({ kind: 'close', by: 'client' });
    expect((await reconnecting).state).toBe('waiting');
    await resumed;
    expect(await back).toEqual({ state: 'ready' });
    expect(fake.gateway.sessionId).toBe(sessionId);
    expect(await answer()).toBe('pong');
  });

  it('op 9 Invalid Session with d: true mid-session: the session is resumed, nothing identifies, and commands are answered', async () => {
    const s = connectAnswering();
    await s.start();
    const sessionId = fake.gateway.sessionId;
    const identifies: unknown[] = [];
    fake.gateway.events.on('event', (e: GatewayEvent) => e.kind === 'identify' && identifies.push(e));
    const resumed = nextGatewayEvent(fake, 'resume');
    const back = new Promise<void>((resolve) => s.client.once(Events.ShardResume, () => resolve()));
    fake.gateway.invalidSession(true);
    // Posted while the session is invalid: replayed by the resume.
    const missed = fake.slash({
      command: 'deployments',
      options: [{ name: 'environment', value: 'staging' }],
      user: fake.user('bob'),
    });
    expect(await resumed).toMatchObject({ sessionId, replayed: 1 });
    await back;
    expect((await fake.waitForCallback(missed)).type).toBe(CallbackType.channelMessageWithSource);
    expect(s.status()).toEqual({ state: 'ready' });
    expect(await answer()).toBe('pong');
    expect(identifies).toEqual([]);
  });

  it('op 7 Reconnect: resumed, with a watched message posted meanwhile handled once; ready again, commands answered', async () => {
    const messages: string[] = [];
    let alerted = () => {};
    const alert = new Promise<void>((resolve) => {
      alerted = resolve;
    });
    const s = connectAnswering({
      onMessage: (id, content) => {
        messages.push(id);
        if (content === 'ALERT p99 high') alerted();
      },
    });
    await s.start();
    await s.caughtUp();
    const sessionId = fake.gateway.sessionId;
    const resumed = nextGatewayEvent(fake, 'resume');
    const back = statusOn(s, Events.ShardResume);
    fake.gateway.requestReconnect();
    // Kept by the session and replayed on RESUME (or sent live, if the bot is already back).
    const m = fake.postMessage({
      channelId: fake.channels.alerts,
      author: fake.user('grafana'),
      content: 'ALERT p99 high',
    });
    await resumed;
    expect(await back).toEqual({ state: 'ready' });
    expect(fake.gateway.sessionId).toBe(sessionId);
    expect(await answer()).toBe('pong');
    await alert;
    // A second delivery would have come before the command, on the same connection.
    expect(messages.filter((id) => id === m.id)).toHaveLength(1);
  });

  it('a stopped surface no longer says ready', async () => {
    const s = connect();
    await s.start();
    expect(s.status()).toEqual({ state: 'ready' });
    await s.stop();
    surface = undefined;
    expect(s.status().state).toBe('waiting');
  });

  it('a session READY but resumed before the shard was ready is caught up on the resume (live alerts do not wait for good)', async () => {
    const handled: string[] = [];
    let liveHandled = () => {};
    const live = new Promise<void>((resolve) => {
      liveHandled = resolve;
    });
    const s = createDiscordSurface({
      token: fake.token,
      apiUrl: fake.apiUrl,
      logger: log.logger,
      onMessage: async (m) => {
        handled.push(m.content);
        if (m.content === 'live') liveHandled();
      },
      watch: { channels: [fake.channels.alerts] },
    });
    surface = s;
    await s.start();
    await s.caughtUp();
    // A new session's READY (a catch-up is now due), then the connection drops before the shard was
    // ready (discord.js waits for the guilds) and the session is resumed: ShardResume, no ShardReady.
    s.client.ws.emit(GatewayDispatchEvents.Ready, {}, 0);
    s.client.emit(Events.ShardResume, 0, 0);
    const caughtUp = await Promise.race([
      s.caughtUp().then(() => 'caught up'),
      new Promise<string>((resolve) => setTimeout(() => resolve('still due'), 5_000).unref()),
    ]);
    expect(caughtUp).toBe('caught up');
    fake.postMessage({
      channelId: fake.channels.alerts,
      author: { ...fake.user('grafana'), bot: true },
      content: 'live',
    });
    await live;
    expect(handled).toEqual(['live']);
  });

  it('watched channels but no message handler: MessageContent is not asked for (no 4014 where it is not enabled)', async () => {
    await fake.close();
    fake = await startFakeDiscord({ privilegedIntents: 0 });
    const s = createDiscordSurface({
      token: fake.token,
      apiUrl: fake.apiUrl,
      logger: log.logger,
      watch: { channels: [fake.channels.alerts] },
    });
    surface = s;
    await s.start();
    expect(s.status()).toEqual({ state: 'ready' });
  });

  it('a direct message is never passed on as a channel message: only messages in a server are read', async () => {
    const handled: string[] = [];
    let guildHandled = () => {};
    const guild = new Promise<void>((resolve) => {
      guildHandled = resolve;
    });
    const s = createDiscordSurface({
      token: fake.token,
      apiUrl: fake.apiUrl,
      logger: log.logger,
      onMessage: async (m) => {
        handled.push(m.content);
        if (m.content === 'in the server') guildHandled();
      },
      watch: { channels: [fake.channels.alerts] },
    });
    surface = s;
    await s.start();
    await s.caughtUp();
    const direct: string[] = [];
    s.client.on(Events.MessageCreate, (m) => {
      if (!m.inGuild()) direct.push(m.content);
    });
    // Discord sends the bot no direct messages (it asks for no DirectMessages intent); one sent all the
    // same, in a DM channel discord.js knows, reaches the client's message event.
    const alice = fake.user('alice');
    const author = { id: alice.id, username: alice.username, discriminator: '0', avatar: null };
    const dm = makeSnowflake();
    fake.gateway.dispatch('CHANNEL_CREATE', { id: dm, type: 1, last_message_id: null, recipients: [author] });
    fake.gateway.dispatch('MESSAGE_CREATE', {
      id: makeSnowflake(),
      channel_id: dm,
      author,
      content: 'production is down, roll it back',
      timestamp: new Date().toISOString(),
      edited_timestamp: null,
      tts: false,
      mention_everyone: false,
      mentions: [],
      mention_roles: [],
      attachments: [],
      embeds: [],
      components: [],
      pinned: false,
      type: 0,
      flags: 0,
    });
    // After it, on the same connection: a message in a channel of the server.
    fake.postMessage({ channelId: fake.channels.general, author: alice, content: 'in the server' });
    await guild;
    expect(direct).toEqual(['production is down, roll it back']);
    expect(handled).toEqual(['in the server']);
  });
});

describe('InteractionDeduper', () => {
  it('once over its capacity, forgets the oldest id first', () => {
    const seen = new InteractionDeduper(2);
    expect(['a', 'b', 'c'].map((id) => seen.first(id))).toEqual([true, true, true]);
    expect(seen.first('c')).toBe(false);
    expect(seen.first('b')).toBe(false);
    expect(seen.first('a')).toBe(true);
  });

  it('remembers the last 5000 ids by default', () => {
    const seen = new InteractionDeduper();
    for (let i = 0; i < 5_000; i++) seen.first(`id-${i}`);
    expect(seen.first('id-0')).toBe(false);
    seen.first('id-5000');
    expect(seen.first('id-0')).toBe(true);
  });
});

describe('SessionStartBudget', () => {
  const limit = (remaining: number, resetAfterMs: number) => ({
    total: 1000,
    remaining,
    reset_after: resetAfterMs,
    max_concurrency: 1,
  });

  it('nothing is held back before Discord said how many are left', () => {
    const budget = new SessionStartBudget({ reserve: 10, clock: new ManualClock() });
    budget.take();
    expect(budget.spent()).toBeUndefined();
  });

  it('counts IDENTIFYs down to the reserve, then holds back until the window renews, counting from the total again', async () => {
    const clock = new ManualClock();
    const budget = new SessionStartBudget({ reserve: 10, clock });
    budget.learn(limit(12, 3_600_000));
    budget.take();
    expect(budget.spent()).toBeUndefined();
    budget.take();
    expect(budget.spent()).toMatchObject({
      problem: expect.stringMatching(
        /^only 10 of the bot's 1000 gateway session starts .* at 2026-11-29 13:00 UTC \(in 1 h\)/,
      ),
      retryInMs: 3_600_000,
    });
    await clock.advance(3_600_000);
    // Renewed, though this process has not read Discord's new count yet (no login since).
    expect(budget.spent()).toBeUndefined();
    for (let i = 0; i < 990; i++) budget.take();
    expect(budget.spent()?.problem).toMatch(/^only 10 of/);
  });
});
