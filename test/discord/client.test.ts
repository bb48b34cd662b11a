/**
 * The real discord.js client against the fake Discord: login (gateway discovery through
 * DISCORD_API_URL, IDENTIFY with Switchyard's intents, READY, GUILD_CREATE), heartbeats, and
 * reconnects (close 4000, abrupt terminate, invalid session) without handling an interaction twice.
 * The privileged MessageContent intent is asked for only when there are watched channels to read.
 */
import { Client, Events, GatewayIntentBits, type Interaction } from 'discord.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDiscordSurface, type DiscordSurface } from '../../handlers/discord/client.js';
import { actingUser } from '../../handlers/discord/context.js';
import { createDiscordBotFromConfig } from '../../handlers/discord/index.js';
import type { ChatService } from '../../src/chat.js';
import { parseEnv } from '../../src/config.js';
import type { Flow } from '../../src/flow.js';
import type { GatewayEvent } from '../fakes/discord/gateway.js';
import { Intent } from '../fakes/discord/protocol.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/server.js';

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

describe('discord client against the fake Discord', () => {
  let fake: FakeDiscord;
  let surface: DiscordSurface | undefined;
  const handled: Interaction[] = [];
  const messages: string[] = [];

  beforeEach(async () => {
    fake = await startFakeDiscord();
    handled.length = 0;
    messages.length = 0;
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
  });

  afterEach(async () => {
    await surface?.stop();
    surface = undefined;
    await fake.close();
  });

  /** A surface watching the alerts channel (so reading message content), unless `watched` is false. */
  function connect(token = fake.token, watched = true): DiscordSurface {
    surface = createDiscordSurface({
      token,
      apiUrl: fake.apiUrl,
      onInteraction: async (i) => {
        handled.push(i);
      },
      onMessage: async (m) => {
        messages.push(m.id);
      },
      watch: { channels: watched ? [fake.channels.alerts] : [] },
    });
    return surface;
  }

  it('logs in through /gateway/bot, identifies with the Switchyard intents and caches the guild', async () => {
    const identified = nextGatewayEvent(fake, 'identify');
    const s = connect();
    await s.start();
    const identify = await identified;
    expect(identify.intents & Intent.guilds).toBe(Intent.guilds);
    expect(identify.intents & Intent.guildMessages).toBe(Intent.guildMessages);
    expect(identify.intents & Intent.messageContent).toBe(Intent.messageContent);
    expect(fake.calls.some((c) => c.method === 'GET' && c.path === '/gateway/bot')).toBe(true);
    expect(fake.calls.find((c) => c.path === '/gateway/bot')?.authorization).toBe(`Bot ${fake.token}`);
    expect(s.client.user?.id).toBe(fake.applicationId);
    const guild = s.client.guilds.cache.get(fake.guildId);
    expect(guild?.channels.cache.has(fake.channels.ops)).toBe(true);
    expect(guild?.roles.cache.has(fake.roles.deployers)).toBe(true);
  });

  it('negotiates JSON without transport compression (what discord.js uses without zlib-sync)', async () => {
    const connected = nextGatewayEvent(fake, 'connect');
    await connect().start();
    const c = await connected;
    expect(c.query).toEqual({ v: '10', encoding: 'json' });
  });

  it('answers a heartbeat request and the fake acknowledges it', async () => {
    await connect().start();
    const beat = nextGatewayEvent(fake, 'heartbeat');
    fake.gateway.requestHeartbeat();
    const e = await beat;
    expect(e.seq).toBe(fake.gateway.dispatched.at(-1)?.s);
  });

  it('delivers an INTERACTION_CREATE to the handler once', async () => {
    await connect().start();
    const user = fake.user('alice');
    const got = new Promise<Interaction>((resolve) =>
      surface?.client.once(Events.InteractionCreate, resolve),
    );
    const sent = fake.slash({
      command: 'deployments',
      options: [{ name: 'environment', value: 'production' }],
      user,
    });
    const interaction = await got;
    expect(interaction.id).toBe(sent.id);
    expect(interaction.isChatInputCommand() && interaction.options.getString('environment')).toBe(
      'production',
    );
  });

  it('resumes after close code 4000 and replays what was missed exactly once', async () => {
    const s = connect();
    await s.start();
    const sessionId = fake.gateway.sessionId;
    const user = fake.user('bob');
    const resumed = nextGatewayEvent(fake, 'resume');
    const shardResumed = new Promise<number>((resolve) =>
      s.client.once(Events.ShardResume, (_id, n) => resolve(n)),
    );
    fake.gateway.drop({ code: 4000 });
    // Dispatched while the bot is away: kept by the session and replayed on RESUME.
    const missed = fake.slash({
      command: 'deployments',
      options: [{ name: 'environment', value: 'staging' }],
      user,
    });
    const r = await resumed;
    expect(r.sessionId).toBe(sessionId);
    expect(r.replayed).toBe(1);
    await shardResumed;
    await new Promise<void>((resolve) => {
      if (handled.some((i) => i.id === missed.id)) resolve();
      else s.client.on(Events.InteractionCreate, (i) => i.id === missed.id && resolve());
    });
    expect(handled.filter((i) => i.id === missed.id)).toHaveLength(1);
    // Only one IDENTIFY happened: the session was resumed, not replaced.
    expect(fake.gateway.sessionId).toBe(sessionId);
  });

  it('resumes on the resume_gateway_url after an abrupt disconnect (1006)', async () => {
    const s = connect();
    await s.start();
    const reconnect = nextGatewayEvent(fake, 'connect');
    const resumed = nextGatewayEvent(fake, 'resume');
    fake.gateway.drop({ terminate: true });
    expect((await reconnect).path).toBe('/resume');
    await resumed;
    await new Promise<void>((resolve) => s.client.once(Events.ShardResume, () => resolve()));
    const user = fake.user('carol');
    const after = fake.slash({
      command: 'deployments',
      options: [{ name: 'environment', value: 'production' }],
      user,
    });
    await new Promise<void>((resolve) =>
      s.client.on(Events.InteractionCreate, (i) => i.id === after.id && resolve()),
    );
    expect(handled.map((i) => i.id)).toEqual([after.id]);
  });

  it('identifies again when the session can no longer be resumed', async () => {
    const s = connect();
    await s.start();
    const first = fake.gateway.sessionId;
    const invalid = nextGatewayEvent(fake, 'invalid_session');
    const identified = nextGatewayEvent(fake, 'identify');
    // discord.js spaces identifies 5 s apart (its identify throttle), so this test takes ~5 s.
    const ready = new Promise<void>((resolve) => s.client.once(Events.ShardReady, () => resolve()));
    fake.gateway.invalidateSession();
    fake.gateway.drop({ code: 4000 });
    await invalid;
    await identified;
    await ready;
    expect(fake.gateway.sessionId).not.toBe(first);
    expect(fake.gateway.connected).toBe(true);
  });

  it('handles a gateway that re-sends an interaction it already delivered only once', async () => {
    const s = connect();
    await s.start();
    const user = fake.user('dave');
    const i = fake.slash({
      command: 'deployments',
      options: [{ name: 'environment', value: 'production' }],
      user,
    });
    await new Promise<void>((resolve) =>
      s.client.on(Events.InteractionCreate, (x) => x.id === i.id && resolve()),
    );
    // A misbehaving (or replaying) gateway dispatches the same interaction again.
    fake.gateway.dispatch('INTERACTION_CREATE', i.payload);
    const marker = fake.slash({
      command: 'deployments',
      options: [{ name: 'environment', value: 'staging' }],
      user,
    });
    await new Promise<void>((resolve) => {
      if (handled.some((x) => x.id === marker.id)) resolve();
      else s.client.on(Events.InteractionCreate, (x) => x.id === marker.id && resolve());
    });
    expect(handled.map((x) => x.id)).toEqual([i.id, marker.id]);
  });

  it('rejects a wrong token at login', async () => {
    const s = connect('not-the-token');
    await expect(s.start()).rejects.toThrow(/token/i);
  });

  it('fails loudly when the MessageContent intent is not enabled for the application', async () => {
    await fake.close();
    fake = await startFakeDiscord({ privilegedIntents: 0 });
    const s = connect();
    const closed = nextGatewayEvent(fake, 'close', (e) => e.code === 4014);
    void s.start().catch(() => undefined);
    expect((await closed).code).toBe(4014);
  });

  it('keeps no message, author or member in its caches, and still knows the roles of a member it never cached', async () => {
    // handlers/discord/client.ts makeCache: discord.js's defaults keep 200 messages per channel and
    // every author as a user and a member, without limit, none of which Switchyard reads.
    const s = connect();
    await s.start();
    const alerter = { ...fake.user('grafana'), bot: true };
    const posted = new Promise<void>((resolve) =>
      s.client.on(Events.MessageCreate, (m) => {
        if (m.author.id === alerter.id) resolve();
      }),
    );
    fake.postMessage({ channelId: fake.channels.alerts, author: alerter, content: '[FIRING] HighErrorRate' });
    await posted;
    const alice = fake.user('alice');
    const got = new Promise<Interaction>((resolve) => s.client.once(Events.InteractionCreate, resolve));
    fake.slash({
      command: 'deployments',
      options: [{ name: 'environment', value: 'production' }],
      user: alice,
      roles: [fake.roles.deployers],
    });
    const interaction = await got;
    const guild = s.client.guilds.cache.get(fake.guildId);
    const alerts = guild?.channels.cache.get(fake.channels.alerts);
    expect({
      messages: alerts?.isTextBased() ? alerts.messages.cache.size : 'no channel',
      users: [alerter.id, alice.id].filter((id) => s.client.users.cache.has(id)),
      members: [alerter.id, alice.id].filter((id) => guild?.members.cache.has(id)),
      // What the permission check is given (context.ts actingUser): the member built from the
      // interaction, its roles found in the guild's role cache.
      acting: actingUser(interaction),
    }).toEqual({
      messages: 0,
      users: [],
      members: [],
      acting: expect.objectContaining({
        userId: alice.id,
        displayName: 'alice',
        roles: expect.arrayContaining([fake.roles.deployers, fake.roles.everyone]),
      }),
    });
  });

  it('without watched channels, does not ask for MessageContent: a commands-only bot connects where it is not enabled', async () => {
    await fake.close();
    fake = await startFakeDiscord({ privilegedIntents: 0 });
    const identified = nextGatewayEvent(fake, 'identify');
    const s = connect(fake.token, false);
    await s.start();
    const identify = await identified;
    expect(identify.intents & Intent.messageContent).toBe(0);
    expect(identify.intents & Intent.guilds).toBe(Intent.guilds);
    expect(s.status().state).toBe('ready');
  });

  it('receives MESSAGE_CREATE with content from other bots in a guild channel (MessageContent)', async () => {
    const s = connect();
    await s.start();
    const alerter = { ...fake.user('grafana'), bot: true };
    const got = new Promise<{ content: string; channelId: string; bot: boolean }>((resolve) =>
      s.client.on(Events.MessageCreate, (m) => {
        if (m.author.id === alerter.id)
          resolve({ content: m.content, channelId: m.channelId, bot: m.author.bot });
      }),
    );
    fake.postMessage({
      channelId: fake.channels.alerts,
      author: alerter,
      content: '[FIRING] HighErrorRate production',
    });
    expect(await got).toEqual({
      content: '[FIRING] HighErrorRate production',
      channelId: fake.channels.alerts,
      bot: true,
    });
  });

  it('without the MessageContent intent, message content arrives empty (as on Discord)', async () => {
    const plain = new Client({
      intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages],
      rest: { api: fake.apiUrl },
    });
    try {
      const ready = new Promise<void>((resolve) => plain.once(Events.ClientReady, () => resolve()));
      await plain.login(fake.token);
      await ready;
      const author = fake.user('someone');
      const got = new Promise<string>((resolve) => plain.on(Events.MessageCreate, (m) => resolve(m.content)));
      fake.postMessage({ channelId: fake.channels.alerts, author, content: 'secret text' });
      expect(await got).toBe('');
    } finally {
      await plain.destroy();
    }
  });

  it('creates no Discord bot when DISCORD_TOKEN is not set', () => {
    const env = parseEnv({});
    const chat = {} as ChatService;
    const flow = {} as Flow;
    expect(createDiscordBotFromConfig({ env }, { chat, flow })).toBeUndefined();
  });
});
