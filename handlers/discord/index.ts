/**
 * The Discord surface, wired: routes each interaction (slash command, autocomplete, button) to its
 * handler file, and builds the bot — client, bot-owned message poster/editor and the progress Reporter
 * for the switch worker. With DISCORD_GUILD_ID set, an interaction from any other server (or a direct
 * message) is answered "not set up for this server" and goes no further; unset, start-up warns that
 * any server the bot is added to can use it. Handlers are thin: parse the interaction, call
 * ChatService/Flow, render with src/views/discord.ts, reply. A process with `DISCORD_GATEWAY=off` (and `npm run worker`)
 * builds the REST-only bot instead (`createDiscordRestBot`): the same poster/editor and Reporter, no
 * gateway session.
 */
import { DiscordAPIError, type Interaction, MessageFlags, type REST, Routes } from 'discord.js';
import type { ChatService } from '../../src/chat.js';
import { type Clock, systemClock, within } from '../../src/clock.js';
import type { Config } from '../../src/config.js';
import type { Flow } from '../../src/flow.js';
import { type Logger, silentLogger } from '../../src/log.js';
import type { Metrics } from '../../src/metrics.js';
import type { RedisClient } from '../../src/redis.js';
import { parseAction } from '../../src/views/actions.js';
import { duration } from '../connection.js';
import { approveAction } from './actions/approve.js';
import { cancelAction } from './actions/cancel.js';
import { type DiscordAction, runClick } from './actions/click.js';
import { confirmAction } from './actions/confirm.js';
import { replanAction } from './actions/replan.js';
import { rowAction } from './actions/row.js';
import { handleAutocomplete } from './autocomplete.js';
import {
  createDiscordRest,
  createDiscordSurface,
  type DiscordConnectionStatus,
  type DiscordStartupOptions,
  type DiscordSurface,
  discordStartupDefaults,
  discordTokenRejected,
} from './client.js';
import { deploymentsCommand } from './commands/deployments.js';
import { promoteCommand } from './commands/promote.js';
import { rollbackCommand } from './commands/rollback.js';
import type { DiscordCommand } from './commands/run.js';
import type { DiscordDeps } from './context.js';
import { DiscordMessages } from './messages.js';
import { DiscordReporter } from './reporter.js';
import { type ChannelMessage, type ChannelWatchLimits, RedisWatchStore } from './watch.js';

export type { DiscordDeps } from './context.js';

const COMMANDS: readonly DiscordCommand[] = [rollbackCommand, promoteCommand, deploymentsCommand];

/**
 * "Dismiss" on an alert suggestion: handled like Cancel (ChatService.click tells them apart), counted
 * under its own metrics label. Listed before `cancelAction`, which also accepts it.
 */
const dismissAction: DiscordAction = {
  kinds: ['dismiss'],
  handle: (deps, interaction) => runClick(deps, interaction, 'dismiss'),
};

const ACTIONS: readonly DiscordAction[] = [
  confirmAction,
  approveAction,
  dismissAction,
  cancelAction,
  replanAction,
  rowAction,
];

/** What a person is told in a server (or a direct message) Switchyard is not set up for. */
export const NOT_THIS_SERVER =
  'Switchyard is not set up for this server, so it does nothing here. Nothing was changed.';

/**
 * Answers an interaction from outside the configured server (DISCORD_GUILD_ID), doing nothing else: a
 * command or click is told so, only its sender sees it; an autocomplete offers nothing.
 */
async function refuseOtherServer(deps: DiscordDeps, interaction: Interaction): Promise<void> {
  deps.logger.warn(
    { guildId: interaction.guildId, userId: interaction.user.id, type: interaction.type },
    'discord: refused an interaction from a server other than DISCORD_GUILD_ID (or a direct message); nothing was done',
  );
  if (interaction.isAutocomplete()) {
    await interaction.respond([]);
    return;
  }
  if (interaction.isRepliable())
    await interaction.reply({ content: NOT_THIS_SERVER, flags: MessageFlags.Ephemeral });
}

/** Returns the interaction router for these dependencies (what the client calls per interaction). */
export function register(deps: DiscordDeps): (interaction: Interaction) => Promise<void> {
  return async (interaction) => {
    // Anyone in another server the bot was added to (Public Bot on) could otherwise run it there.
    if (deps.guildId !== undefined && interaction.guildId !== deps.guildId)
      return refuseOtherServer(deps, interaction);
    if (interaction.isAutocomplete()) return handleAutocomplete(deps, interaction);
    if (interaction.isChatInputCommand()) {
      const command = COMMANDS.find((c) => c.name === interaction.commandName);
      if (command) return command.execute(deps, interaction);
      await interaction.reply({
        content: `Unknown command /${interaction.commandName}. Commands: ${COMMANDS.map((c) => `/${c.name}`).join(', ')}. Run npm run discord:register to refresh them.`,
        flags: MessageFlags.Ephemeral,
      });
      return;
    }
    if (interaction.isButton()) {
      const parsed = parseAction(interaction.customId);
      const action = parsed.ok ? ACTIONS.find((a) => a.kinds.includes(parsed.value.kind)) : undefined;
      // Malformed ids still get an answer within 3 s: ChatService explains what was expected.
      if (action) return action.handle(deps, interaction);
      return runClick(deps, interaction, 'invalid');
    }
  };
}

export interface DiscordBotOptions {
  readonly token: string;
  /** `DISCORD_API_URL` (REST base); the gateway URL then comes from its `/gateway/bot`. */
  readonly apiUrl?: string;
  readonly chat: ChatService;
  readonly flow: Flow;
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly metrics?: Pick<Metrics, 'commands' | 'clicks' | 'chatApiErrors'>;
  readonly autocompleteBudgetMs?: number;
  /** Guild messages from others (alert watching); see `DiscordSurfaceOptions.onMessage`. */
  readonly onMessage?: (message: ChannelMessage) => Promise<void>;
  /** Watched alert channels, caught up after every new gateway session (see ./watch.ts). */
  readonly watch?: DiscordBotWatch;
  /** Start-up when Discord is slow or unreachable (defaults: `discordStartupDefaults` in ./client.ts). */
  readonly startup?: Partial<DiscordStartupOptions>;
  /**
   * `DISCORD_GUILD_ID`: the one server Switchyard acts in (interactions from any other are refused).
   * Unset: any server the bot is added to can use it, which start-up warns about.
   */
  readonly guildId?: string;
}

/** Watched channels and where what was seen in them is remembered. */
export interface DiscordBotWatch extends ChannelWatchLimits {
  /** Channel ids; `createDiscordBotFromConfig` takes `alerts.watch.discord` when absent. */
  readonly channels?: readonly string[];
  /** Keeps the last seen message per channel across restarts; without it, only in memory. */
  readonly redis?: RedisClient;
  /** Prefix of those Redis keys (default `switchyard:`). */
  readonly keyPrefix?: string;
}

/** Defaults (STYLE 6). */
export const discordBotDefaults = {
  clock: systemClock,
  logger: silentLogger,
  autocompleteBudgetMs: 2_000,
} as const satisfies Required<Pick<DiscordBotOptions, 'clock' | 'logger' | 'autocompleteBudgetMs'>>;

/** The Discord bot: gateway surface, message editor and the Reporter for the switch worker. */
export interface DiscordBot {
  readonly surface: DiscordSurface;
  readonly messages: DiscordMessages;
  readonly reporter: DiscordReporter;
  /**
   * Connects; resolves once connected or after `startup.waitMs` at most (then keeps connecting in the
   * background). Rejects with a ConfigError when Discord rejects DISCORD_TOKEN or the Message Content
   * intent is not enabled.
   */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Where the gateway connection stands (`ready`, `waiting` with the problem, or `rejected`). */
  status(): DiscordConnectionStatus;
  /** Resolves once connected (see `DiscordSurface.ready`). */
  ready(): Promise<void>;
}

/** Builds the Discord bot (not yet connected: call `start`). */
export function createDiscordBot(opts: DiscordBotOptions): DiscordBot {
  const logger = (opts.logger ?? discordBotDefaults.logger).child({ surface: 'discord' });
  let route: ((interaction: Interaction) => Promise<void>) | undefined;
  const { channels, redis, keyPrefix, ...limits } = opts.watch ?? {};
  const surface = createDiscordSurface({
    token: opts.token,
    ...(opts.apiUrl === undefined ? {} : { apiUrl: opts.apiUrl }),
    logger,
    onInteraction: (interaction) => route?.(interaction) ?? Promise.resolve(),
    ...(opts.onMessage === undefined ? {} : { onMessage: opts.onMessage }),
    ...(opts.startup === undefined ? {} : { startup: opts.startup }),
    watch: {
      ...limits,
      channels: channels ?? [],
      clock: opts.clock ?? discordBotDefaults.clock,
      ...(redis === undefined ? {} : { store: new RedisWatchStore(redis, keyPrefix) }),
    },
  });
  const messages = new DiscordMessages({
    // The surface's own REST: it outlives the discord.js clients (a new one per login).
    rest: surface.rest,
    logger,
    ...(opts.metrics === undefined ? {} : { metrics: opts.metrics }),
  });
  route = register({
    chat: opts.chat,
    flow: opts.flow,
    messages,
    clock: opts.clock ?? discordBotDefaults.clock,
    logger,
    autocompleteBudgetMs: opts.autocompleteBudgetMs ?? discordBotDefaults.autocompleteBudgetMs,
    ...(opts.metrics === undefined ? {} : { metrics: opts.metrics }),
    ...(opts.guildId === undefined ? {} : { guildId: opts.guildId }),
  });
  const reporter = new DiscordReporter({ messages, logger });
  let warned = false;
  return {
    surface,
    messages,
    reporter,
    start: () => {
      if (opts.guildId === undefined && !warned) {
        warned = true;
        logger.warn(
          { key: 'DISCORD_GUILD_ID' },
          'discord: DISCORD_GUILD_ID is not set, so any server the bot is added to can use Switchyard: anyone there can run /deployments, /rollback and /promote and see deployments and their history (what they may switch is still up to the allow lists). Set DISCORD_GUILD_ID to your server id, and turn Public Bot off in the Developer Portal (Bot page).',
        );
      }
      return surface.start();
    },
    stop: () => surface.stop(),
    status: () => surface.status(),
    ready: () => surface.ready(),
  };
}

/**
 * The Discord bot as configured by env vars (`DISCORD_TOKEN`, `DISCORD_API_URL`, `DISCORD_GUILD_ID`),
 * or undefined when no token is set (Discord not in use). The watched channels are `alerts.watch.discord` of the config
 * file unless `deps.watch.channels` says otherwise. The process wiring calls this, then `start()` it
 * and hands `reporter` to the switch worker (routed by `surface: 'discord'`).
 */
export function createDiscordBotFromConfig(
  config: Pick<Config, 'env'> & Partial<Pick<Config, 'file'>>,
  deps: Omit<DiscordBotOptions, 'token' | 'apiUrl'>,
): DiscordBot | undefined {
  const token = config.env.DISCORD_TOKEN;
  if (token === undefined) return undefined;
  const apiUrl = config.env.DISCORD_API_URL;
  const guildId = config.env.DISCORD_GUILD_ID;
  const watch: DiscordBotWatch = {
    ...deps.watch,
    channels: deps.watch?.channels ?? config.file?.alerts.watch.discord ?? [],
  };
  return createDiscordBot({
    ...deps,
    watch,
    token,
    ...(apiUrl === undefined ? {} : { apiUrl }),
    ...(guildId === undefined ? {} : { guildId }),
  });
}

/** What `/readyz` says about Discord in a process started with `DISCORD_GATEWAY=off`. */
export const DISCORD_REST_ONLY = 'rest only (DISCORD_GATEWAY=off)';

export interface DiscordRestBotOptions {
  readonly token: string;
  /** `DISCORD_API_URL` (REST base). */
  readonly apiUrl?: string;
  readonly logger?: Logger;
  readonly metrics?: Pick<Metrics, 'chatApiErrors'>;
  /** How long `start()` waits for Discord to answer the token check (default: the gateway's `waitMs`). */
  readonly startupWaitMs?: number;
}

/**
 * Discord without a gateway session (`DISCORD_GATEWAY=off`, and `npm run worker`): the bot's REST with
 * its token, its message poster/editor and the progress Reporter. It receives nothing (no commands,
 * clicks or watched-channel messages: those reach the one process whose gateway is on), but edits the
 * Discord messages of the switches its worker runs and posts alert suggestions and notices, so that
 * every replica's worker and posters reach Discord whichever replica took the job, webhook or notice.
 */
export interface DiscordRestBot {
  readonly rest: REST;
  readonly messages: DiscordMessages;
  readonly reporter: DiscordReporter;
  /**
   * Checks the token (`GET /users/@me`), waiting `startupWaitMs` at most. Rejects with a ConfigError
   * when Discord rejects DISCORD_TOKEN, as the gateway bot does; a Discord that cannot be reached or
   * does not answer in time lets start-up go on (logged): edits and posts are tried when they come.
   */
  start(): Promise<void>;
  /**
   * Clears the REST client's timers (REST keeps working: the worker's `close()` flushes its last edits
   * after the surfaces stopped, through the Reporter's `flush`).
   */
  stop(): Promise<void>;
}

/** Builds the REST-only Discord bot (see DiscordRestBot); `start` checks its token. */
export function createDiscordRestBot(opts: DiscordRestBotOptions): DiscordRestBot {
  const logger = (opts.logger ?? discordBotDefaults.logger).child({ surface: 'discord' });
  const rest = createDiscordRest(opts.token, opts.apiUrl);
  const messages = new DiscordMessages({
    rest,
    logger,
    ...(opts.metrics === undefined ? {} : { metrics: opts.metrics }),
  });
  const reporter = new DiscordReporter({ messages, logger });
  const waitMs = opts.startupWaitMs ?? discordStartupDefaults.waitMs;
  return {
    rest,
    messages,
    reporter,
    async start() {
      const checked = rest.get(Routes.user('@me')).then(
        () => ({ ok: true }) as const,
        (e: unknown) => ({ ok: false, error: e }) as const,
      );
      // Real time, not an injected clock: this bounds a wait on the network.
      const answer = await within(systemClock, waitMs, checked, undefined);
      if (answer?.ok === true) {
        logger.info(
          {},
          `discord: ${DISCORD_REST_ONLY}: no gateway session here (commands, clicks and watched channels go to the replica with DISCORD_GATEWAY=on); this process edits and posts Discord messages over REST`,
        );
        return;
      }
      if (answer !== undefined && answer.error instanceof DiscordAPIError && answer.error.status === 401) {
        throw discordTokenRejected('401 Unauthorized');
      }
      const problem =
        answer === undefined
          ? `no answer within ${duration(waitMs)}`
          : answer.error instanceof Error
            ? answer.error.message
            : String(answer.error);
      logger.error(
        { problem, apiUrl: opts.apiUrl },
        `discord: could not check DISCORD_TOKEN (${problem}); Switchyard starts anyway (${DISCORD_REST_ONLY}), and its Discord edits and posts go out when Discord answers`,
      );
    },
    async stop() {
      rest.clearHashSweeper();
      rest.clearHandlerSweeper();
    },
  };
}

/**
 * The REST-only Discord bot as configured by env vars (`DISCORD_TOKEN`, `DISCORD_API_URL`), or
 * undefined when no token is set.
 */
export function createDiscordRestBotFromConfig(
  config: Pick<Config, 'env'>,
  deps: Omit<DiscordRestBotOptions, 'token' | 'apiUrl'> = {},
): DiscordRestBot | undefined {
  const token = config.env.DISCORD_TOKEN;
  if (token === undefined) return undefined;
  const apiUrl = config.env.DISCORD_API_URL;
  return createDiscordRestBot({ ...deps, token, ...(apiUrl === undefined ? {} : { apiUrl }) });
}
