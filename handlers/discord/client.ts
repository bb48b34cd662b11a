/**
 * The Discord connection: a discord.js v14 `Client` on the gateway with the intents Switchyard needs,
 * and the surface object the process starts and stops. Intents: Guilds (channels and roles),
 * GuildMessages and the privileged MessageContent (reading alert messages posted by other bots in
 * watched channels; docs/discord.md explains enabling it). `DISCORD_API_URL` overrides the REST
 * base; the gateway URL then comes from that API's `GET /gateway/bot`, so a local Discord (the test
 * fake) can stand in for discord.com with the SDK unmodified.
 *
 * Reconnects are discord.js's job (resume, or identify again when the session is gone); this module
 * makes them observable, guarantees an interaction is handled at most once per process even if a
 * gateway replays it (see `InteractionDeduper`), and catches watched alert channels up after every
 * NEW session — a resume replays what was missed, a new session does not (see ./watch.ts).
 */
import { Client, Events, GatewayDispatchEvents, GatewayIntentBits, type Interaction } from 'discord.js';
import { type Clock, systemClock } from '../../src/clock.js';
import type { Logger } from '../../src/log.js';
import { silentLogger } from '../../src/log.js';
import {
  type ChannelMessage,
  ChannelWatch,
  type ChannelWatchLimits,
  gatewayMessage,
  MemoryWatchStore,
  type WatchStore,
} from './watch.js';

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

/** Watched alert channels and how they are caught up after a new gateway session. */
export interface DiscordWatchOptions extends ChannelWatchLimits {
  /** Channel ids (`alerts.watch.discord`). */
  readonly channels: readonly string[];
  /** Where the last seen message per channel and handled message ids are kept; default in memory. */
  readonly store?: WatchStore;
  /** What "now" is for the catch-up window; default the system clock. */
  readonly clock?: Clock;
}

export interface DiscordSurfaceOptions extends DiscordClientOptions {
  /** Called once per distinct interaction (replays are dropped before this). */
  readonly onInteraction?: (interaction: Interaction) => Promise<void>;
  /**
   * Called once per distinct guild message not written by this bot (alert watching, issue 7), live
   * from the gateway or, for watched channels, read back after a new gateway session (`watch`).
   * Content is present because the MessageContent intent is requested.
   */
  readonly onMessage?: (message: ChannelMessage) => Promise<void>;
  /** Watched channels to catch up after a new session (see ./watch.ts). None: live messages only. */
  readonly watch?: DiscordWatchOptions;
}

/** A connected (or connectable) Discord surface. */
export interface DiscordSurface {
  readonly client: Client;
  /** Logs in and resolves once the gateway session is READY (guilds received). */
  start(): Promise<void>;
  /** Closes the gateway connection and REST timers. */
  stop(): Promise<void>;
  /**
   * Resolves once the watched channels are caught up after the latest new gateway session (call it
   * after the session is ready: a catch-up is due from READY until it has run).
   */
  caughtUp(): Promise<void>;
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
  const handleMessage = opts.onMessage;
  const watch = new ChannelWatch({
    ...opts.watch,
    channels: handleMessage === undefined ? [] : (opts.watch?.channels ?? []),
    rest: client.rest,
    store: opts.watch?.store ?? new MemoryWatchStore(),
    clock: opts.watch?.clock ?? systemClock,
    logger: log,
    seen: new InteractionDeduper(),
    botUserId: () => client.user?.id,
    handle: (message) => handleMessage?.(message) ?? Promise.resolve(),
  });
  // READY starts a new session (first connect, op 9, a resume refused): nothing is replayed into it,
  // so watched channels are read back once the shard is ready. Emitted before any later dispatch is
  // handled, so live messages of the new session wait for the catch-up. A RESUMED session replays.
  client.ws.on(GatewayDispatchEvents.Ready, () => watch.sessionStarted());
  client.on(Events.ShardReady, () => watch.catchUp());
  client.on(Events.ShardResume, () => watch.catchUp());
  client.on(Events.MessageCreate, (message) => {
    if (!handleMessage || message.author.id === client.user?.id || !message.inGuild()) return;
    watch
      .live(gatewayMessage(message))
      .catch((e: unknown) =>
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
      watch.stop();
      await client.destroy();
    },
    caughtUp: () => watch.settled(),
  };
}
