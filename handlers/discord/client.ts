/**
 * The Discord connection: a discord.js v14 `Client` on the gateway with the intents Switchyard needs,
 * and the surface object the process starts and stops. Intents: Guilds (channels and roles),
 * GuildMessages and the privileged MessageContent (reading alert messages posted by other bots in
 * watched channels; docs/discord.md explains enabling it). `DISCORD_API_URL` overrides the REST
 * base; the gateway URL then comes from that API's `GET /gateway/bot`, so a local Discord (the test
 * fake) can stand in for discord.com with the SDK unmodified.
 *
 * Reconnects are discord.js's job (resume, or identify again when the session is gone); this module
 * only makes them observable and guarantees an interaction is handled at most once per process even
 * if a gateway replays it (see `InteractionDeduper`).
 */
import { Client, Events, GatewayIntentBits, type Interaction, type Message } from 'discord.js';
import type { Logger } from '../../src/log.js';
import { silentLogger } from '../../src/log.js';

/** Intents requested at IDENTIFY. MessageContent is privileged: enable it in the developer portal. */
export const DISCORD_INTENTS = [
  GatewayIntentBits.Guilds,
  GatewayIntentBits.GuildMessages,
  GatewayIntentBits.MessageContent,
] as const;

export interface DiscordClientOptions {
  /** Bot token (`DISCORD_TOKEN`). */
  readonly token: string;
  /** REST base such as `https://discord.com/api` (`DISCORD_API_URL`); default discord.com. */
  readonly apiUrl?: string;
  readonly logger?: Logger;
}

/** Creates (does not connect) a discord.js client configured for Switchyard. */
export function createDiscordClient(opts: DiscordClientOptions): Client {
  const client = new Client({
    intents: [...DISCORD_INTENTS],
    ...(opts.apiUrl === undefined ? {} : { rest: { api: opts.apiUrl } }),
    // Switchyard never needs to mention anyone; a rendered name can never ping a role by accident.
    allowedMentions: { parse: [] },
  });
  const log = opts.logger ?? silentLogger;
  client.on(Events.ShardResume, (shardId, replayed) =>
    log.info({ shardId, replayed }, 'discord gateway resumed'),
  );
  client.on(Events.ShardReconnecting, (shardId) => log.warn({ shardId }, 'discord gateway reconnecting'));
  client.on(Events.ShardDisconnect, (event, shardId) =>
    log.error({ shardId, code: event.code }, 'discord gateway disconnected for good'),
  );
  client.on(Events.Error, (error) => log.error({ err: error.message }, 'discord client error'));
  return client;
}

/**
 * Remembers recently handled interaction ids so a replayed INTERACTION_CREATE (a gateway resume that
 * re-sends an event the bot already processed) is not handled twice. Bounded: the oldest ids are
 * forgotten first; Discord rejects a second answer to the same interaction anyway after 3 s.
 */
export class InteractionDeduper {
  private readonly seen = new Set<string>();

  constructor(private readonly capacity = 5_000) {}

  /** True the first time `id` is offered, false afterwards. */
  first(id: string): boolean {
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    if (this.seen.size > this.capacity) {
      const oldest = this.seen.values().next();
      if (!oldest.done) this.seen.delete(oldest.value);
    }
    return true;
  }
}

export interface DiscordSurfaceOptions extends DiscordClientOptions {
  /** Called once per distinct interaction (replays are dropped before this). */
  readonly onInteraction?: (interaction: Interaction) => Promise<void>;
  /**
   * Called once per distinct guild message not written by this bot (alert watching, issue 7).
   * Content is present because the MessageContent intent is requested.
   */
  readonly onMessage?: (message: Message) => Promise<void>;
}

/** A connected (or connectable) Discord surface. */
export interface DiscordSurface {
  readonly client: Client;
  /** Logs in and resolves once the gateway session is READY (guilds received). */
  start(): Promise<void>;
  /** Closes the gateway connection and REST timers. */
  stop(): Promise<void>;
}

/**
 * Creates the Discord surface: a client whose interactions go to `onInteraction` exactly once each.
 * The command/button routing lives in handlers/discord/index.ts, which supplies `onInteraction`.
 */
export function createDiscordSurface(opts: DiscordSurfaceOptions): DiscordSurface {
  const client = createDiscordClient(opts);
  const log = opts.logger ?? silentLogger;
  const deduper = new InteractionDeduper();
  client.on(Events.InteractionCreate, (interaction) => {
    if (!deduper.first(interaction.id)) {
      log.warn({ interactionId: interaction.id }, 'discord interaction delivered twice; ignored');
      return;
    }
    const handle = opts.onInteraction;
    if (!handle) return;
    handle(interaction).catch((e: unknown) =>
      log.error(
        { err: (e as Error).message, interactionId: interaction.id },
        'discord interaction handler failed',
      ),
    );
  });
  const seenMessages = new InteractionDeduper();
  client.on(Events.MessageCreate, (message) => {
    const handle = opts.onMessage;
    if (!handle || message.author.id === client.user?.id || !message.inGuild()) return;
    if (!seenMessages.first(message.id)) return;
    handle(message).catch((e: unknown) =>
      log.error({ err: (e as Error).message, messageId: message.id }, 'discord message handler failed'),
    );
  });
  return {
    client,
    async start() {
      const ready = new Promise<void>((resolve) => client.once(Events.ClientReady, () => resolve()));
      await client.login(opts.token);
      await ready;
      log.info({ user: client.user?.tag, guilds: client.guilds.cache.size }, 'discord connected');
    },
    async stop() {
      await client.destroy();
    },
  };
}
