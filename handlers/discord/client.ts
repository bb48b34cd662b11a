/**
 * The Discord connection: a discord.js v14 `Client` on the gateway with the intents Switchyard needs,
 * and the surface object the process starts and stops. Intents: Guilds (channels and roles),
 * GuildMessages and, only when watched channels are configured, the privileged MessageContent (reading
 * alert messages posted by other bots in watched channels; docs/discord.md explains enabling it).
 * A bot used for commands and buttons only does not ask for it, so it needs no privileged intent. `DISCORD_API_URL` overrides the REST
 * base; the gateway URL then comes from that API's `GET /gateway/bot`, so a local Discord (the test
 * fake) can stand in for discord.com with the SDK unmodified.
 *
 * Reconnects are discord.js's job (resume, or identify again when the session is gone); this module
 * makes them observable, guarantees an interaction is handled at most once per process even if a
 * gateway replays it (see `InteractionDeduper`), and catches watched alert channels up after every
 * NEW session — a resume replays what was missed, a new session does not (see ./watch.ts).
 *
 * Coming up (DiscordConnection below). Discord must never stop or hang the process, which also serves
 * Slack, the console and alert webhooks — often during an incident, when Discord may be down too.
 * `start()` waits at most `startup.waitMs` for the gateway session to be READY. A gateway close that
 * Discord's close-code table marks "do not reconnect" stops start-up (or, later, the connection) with a
 * ConfigError saying what to do: a token Discord rejects (401 at gateway discovery, close 4004), the
 * Message Content intent not enabled (4014), too many servers for one connection (4011 — Switchyard does
 * not shard), and 4010/4012/4013, which only a Switchyard bug or an outdated discord.js would cause.
 * Retrying these would only spend IDENTIFYs. A Discord that cannot be reached, or does not send READY,
 * lets start-up go on: an error is logged, `status()` says `waiting` and why, and the bot keeps
 * connecting in the background (discord.js's own reconnects within a login; a fresh login with
 * backoff, doubling up to `startup.retryMaxMs`, after a failed one) until it is ready or stopped.
 *
 * Every new session spends one of Discord's daily IDENTIFYs, and spending them all gets the bot token
 * reset. So the wait for READY after an IDENTIFY is long (see READY_TIMEOUT_MS), and IDENTIFYs stop
 * while only a reserve is left, until Discord renews them (./session-starts.ts).
 *
 * Why a fresh Client per login: discord.js 14 cannot log in again after a failed login — `login()`
 * destroys the client when it fails, and a destroyed client stays destroyed (`ws.destroyed` is never
 * reset: `isReady()` stays false and a later `destroy()` no longer closes the new connection). And why
 * clients are guarded (`abandoned`): destroying a client whose shard is waiting for HELLO or READY
 * races with @discordjs/ws's own timeout handling — `destroy()` never resolves and the shard reconnects
 * 500 ms later; a login whose gateway discovery answers after `destroy()` still opens its connection.
 * A guarded client that was given up never opens another connection, and its `destroy()` is awaited
 * only briefly.
 */
import { SimpleShardingStrategy, type WebSocketManager } from '@discordjs/ws';
import {
  Client,
  DiscordjsErrorCodes,
  Events,
  GatewayCloseCodes,
  GatewayDispatchEvents,
  GatewayIntentBits,
  type Interaction,
  Options,
  REST,
} from 'discord.js';
import { type Clock, systemClock, within } from '../../src/clock.js';
import { normalizeDiscordToken } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import { silentLogger } from '../../src/log.js';
import { type ConnectionStatus, duration, SurfaceConnection } from '../connection.js';
import { budgetedIdentifyThrottler, SessionStartBudget, type SessionStartsSpent } from './session-starts.js';
import {
  type ChannelMessage,
  ChannelWatch,
  type ChannelWatchLimits,
  gatewayMessage,
  isContentMessage,
  MemoryWatchStore,
  type WatchStore,
} from './watch.js';

/** Intents requested at IDENTIFY. MessageContent is privileged: enable it in the developer portal. */
export const DISCORD_INTENTS = [
  GatewayIntentBits.Guilds,
  GatewayIntentBits.GuildMessages,
  GatewayIntentBits.MessageContent,
] as const;

/** DISCORD_INTENTS, without the privileged MessageContent when no message content is read. */
export function discordIntents(messageContent: boolean): GatewayIntentBits[] {
  return DISCORD_INTENTS.filter((i) => messageContent || i !== GatewayIntentBits.MessageContent);
}

export interface DiscordClientOptions {
  /** Bot token (`DISCORD_TOKEN`). */
  readonly token: string;
  /**
   * Whether to ask for the privileged MessageContent intent (default true). `createDiscordSurface`
   * asks for it only when it has watched channels to read.
   */
  readonly messageContent?: boolean;
  /** REST base such as `https://discord.com/api` (`DISCORD_API_URL`); default discord.com. */
  readonly apiUrl?: string;
  readonly logger?: Logger;
}

// discord.js's own sharding strategy (@discordjs/ws, pinned to the version discord.js depends on, so
// both load one copy), built through discord.js's documented `ws.buildStrategy` option so the client
// can be guarded.

/**
 * How long a shard waits for READY after its IDENTIFY before it gives the connection up and identifies
 * again on a new one. @discordjs/ws waits 15 s; against a gateway that accepts IDENTIFY but is slow to
 * start sessions (an outage), that is a new IDENTIFY every ~15.5 s, some 230 an hour, and Discord
 * resets the token after 1000 a day. Discord's advice for an outage is to keep heartbeating and wait:
 * "the Gateway will eventually respond and issue a session". So the wait is long, not none: a dead
 * connection is not what it guards against — heartbeats that are not acknowledged already close it
 * (zombie detection) and it resumes or identifies on a new one —, only an IDENTIFY the gateway lost on
 * a live connection, and that is worth one IDENTIFY every 10 minutes at most (144 a day).
 */
export const READY_TIMEOUT_MS = 10 * 60_000;

/**
 * discord.js's default sharding strategy, except that once `abandoned()` is true no shard opens a
 * connection again: every (re)connect of a shard first asks for its session (`retrieveSessionInfo`),
 * and an abandoned client's request never answers. See the module header for why. It also sets the
 * READY wait (READY_TIMEOUT_MS), an option of @discordjs/ws's manager that discord.js does not pass on.
 */
function guardedStrategy(manager: WebSocketManager, abandoned: () => boolean) {
  const options = manager.options as {
    retrieveSessionInfo: (shardId: number) => unknown;
    readyTimeout: number | null;
  };
  const retrieve = options.retrieveSessionInfo;
  options.retrieveSessionInfo = (shardId) =>
    abandoned() ? new Promise<never>(() => undefined) : retrieve(shardId);
  options.readyTimeout = READY_TIMEOUT_MS;
  return new SimpleShardingStrategy(manager);
}

/** Counting the client's IDENTIFYs against Discord's daily budget (./session-starts.ts). */
export interface DiscordSessionStarts {
  readonly budget: SessionStartBudget;
  /** The budget allows no IDENTIFY now: the client holds it back until it is given up. */
  readonly spent: (spent: SessionStartsSpent) => void;
}

/**
 * Creates (does not connect) a discord.js client configured for Switchyard. Once `abandoned()` returns
 * true the client never opens a gateway connection again (see `guardedStrategy`). With
 * `sessionStarts`, its IDENTIFYs are counted and held back once the budget is spent.
 */
export function createDiscordClient(
  opts: DiscordClientOptions,
  abandoned: () => boolean = () => false,
  sessionStarts?: DiscordSessionStarts,
): Client {
  const client = new Client({
    intents: discordIntents(opts.messageContent ?? true),
    ...(opts.apiUrl === undefined ? {} : { rest: { api: opts.apiUrl } }),
    // Switchyard never needs to mention anyone; a rendered name can never ping a role by accident.
    allowedMentions: { parse: [] },
    // discord.js's default caches keep 200 messages (with content) per channel it sees and every author
    // as a user and a member, without limit: a busy server's worth of memory that Switchyard never
    // reads. Messages are posted, edited and read back over REST (./messages.ts, ./watch.ts) and a
    // message event is handled from its payload; the acting person and their roles come from each
    // interaction's payload (./context.ts: a member built from it, its roles looked up in the guild's
    // role cache, which stays whole, as do guilds and channels). So none of these are kept, except the
    // bot's own user and member, which discord.js itself consults.
    makeCache: Options.cacheWithLimits({
      ...Options.DefaultMakeCacheSettings,
      MessageManager: 0,
      GuildMemberManager: { maxSize: 0, keepOverLimit: (m) => m.id === m.client.user?.id },
      UserManager: { maxSize: 0, keepOverLimit: (u) => u.id === u.client.user?.id },
    }),
    ws: {
      buildStrategy: (manager) => guardedStrategy(manager, abandoned),
      ...(sessionStarts === undefined
        ? {}
        : {
            buildIdentifyThrottler: (manager: WebSocketManager) =>
              budgetedIdentifyThrottler(manager, sessionStarts.budget, sessionStarts.spent),
          }),
    },
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
  /** Start-up and reconnecting when Discord cannot be reached (defaults: `discordStartupDefaults`). */
  readonly startup?: Partial<DiscordStartupOptions>;
}

/** How the Discord connection comes up when Discord is slow or unreachable (see the module header). */
export interface DiscordStartupOptions {
  /** How long `start()` waits for a READY gateway session before start-up goes on without Discord. */
  readonly waitMs: number;
  /** First pause before logging in again after a failed login; doubles up to `retryMaxMs`. */
  readonly retryMinMs: number;
  readonly retryMaxMs: number;
  /**
   * Gateway session starts (IDENTIFYs) kept unused: none is sent while only these are left of
   * Discord's daily budget (see ./session-starts.ts).
   */
  readonly sessionStartReserve: number;
}

/** Defaults (STYLE 6). */
export const discordStartupDefaults: DiscordStartupOptions = {
  waitMs: 15_000,
  retryMinMs: 1_000,
  retryMaxMs: 60_000,
  sessionStartReserve: 10,
};

/**
 * How long giving up a client waits for discord.js's `destroy()`, which never resolves when the shard
 * was waiting for HELLO or READY (the socket is closed all the same).
 */
const DESTROY_WAIT_MS = 1_000;

/**
 * Where the connection to Discord stands, for logs, `/readyz` and tests. `ready`: the gateway session
 * is READY (or resumed); `waiting`: not connected (yet, or again) — `problem` says why, and it keeps
 * trying; `rejected`: Discord refused the connection in a way it says not to retry (token, intents,
 * sharding; see `closeFailure`) — an operator must act and restart; `problem` says what.
 */
export type DiscordConnectionStatus = ConnectionStatus;

/** A connected (or connectable) Discord surface. */
export interface DiscordSurface {
  /** The current discord.js client (a new one replaces it after a failed login). */
  readonly client: Client;
  /**
   * REST with the bot token for messages the bot posts and edits and for reading channels back; it
   * outlives the clients, so it works whatever the gateway connection is doing.
   */
  readonly rest: REST;
  /**
   * Logs in and resolves once the gateway session is READY, or after `startup.waitMs` at most (Discord
   * not reachable or not ready: it keeps connecting in the background). Rejects with a ConfigError
   * when Discord rejects the token (DISCORD_TOKEN) or the Message Content intent is not enabled.
   */
  start(): Promise<void>;
  /** Stops connecting, closes the gateway connection and REST timers. */
  stop(): Promise<void>;
  /** Where the connection stands (see DiscordConnectionStatus). */
  status(): DiscordConnectionStatus;
  /** Resolves once connected; rejects when Discord rejected the configuration or the surface stopped. */
  ready(): Promise<void>;
  /**
   * Resolves once the watched channels are caught up after the latest new gateway session (call it
   * after the session is ready: a catch-up is due from READY until it has run).
   */
  caughtUp(): Promise<void>;
}

/** Why a login ended without a READY session. */
type Failure =
  | { readonly kind: 'rejected'; readonly error: ConfigError; readonly problem: string }
  | {
      readonly kind: 'unavailable';
      readonly problem: string;
      /** Not before this (the session start budget renews then), whatever the backoff says. */
      readonly notBeforeMs?: number;
    };

type Outcome = { readonly kind: 'ready' } | { readonly kind: 'stopped' } | Failure;

/**
 * The start-up error for a bot token Discord rejected (`problem`: how it said so); `then`: what to do
 * once the token is replaced.
 */
export function discordTokenRejected(problem: string, then = 'restart Switchyard'): ConfigError {
  return new ConfigError(
    `DISCORD_TOKEN: Discord rejected the bot token (${problem}). Open https://discord.com/developers/applications, choose the application, Bot → Reset Token, put the new token in DISCORD_TOKEN and ${then}.`,
    { key: 'DISCORD_TOKEN', problem },
  );
}

function tokenRejected(problem: string): Failure {
  return {
    kind: 'rejected',
    problem: `DISCORD_TOKEN rejected by Discord (${problem})`,
    error: discordTokenRejected(problem),
  };
}

function intentRejected(): Failure {
  const problem = 'gateway close 4014 Disallowed intent(s): the Message Content Intent is not enabled';
  return {
    kind: 'rejected',
    problem,
    error: new ConfigError(
      'Discord refused the gateway connection with close code 4014 (Disallowed intent(s)): the privileged Message Content Intent is not enabled for this bot. Open https://discord.com/developers/applications, choose the application, Bot → Privileged Gateway Intents, turn on "Message Content Intent", save and restart Switchyard (bots in 100 or more servers need Discord\'s approval for it; see docs/discord.md).',
      { setting: 'Message Content Intent', code: GatewayCloseCodes.DisallowedIntents },
    ),
  };
}

/**
 * Gateway closes Discord says not to reconnect after, other than 4004 and 4014 (docs: opcodes and
 * status codes, gateway close event codes), with what the operator can do. Each would come back at
 * every IDENTIFY, so retrying only spends the daily budget of them.
 */
const CLOSES_NOT_RETRIED: Readonly<Record<number, { readonly name: string; readonly todo: string }>> = {
  [GatewayCloseCodes.InvalidShard]: {
    name: 'Invalid shard',
    todo: 'Switchyard connects as a single shard (shard 0 of 1), always a valid one, so this is a bug in Switchyard: please report it with this log',
  },
  [GatewayCloseCodes.ShardingRequired]: {
    name: 'Sharding required',
    todo: 'the bot is in too many servers for one gateway connection (Discord requires sharding from 2,500 servers), and Switchyard does not shard. Use a bot application of its own for Switchyard, or remove this bot from the servers it does not need to be in, then restart Switchyard',
  },
  [GatewayCloseCodes.InvalidAPIVersion]: {
    name: 'Invalid API version',
    todo: "Discord no longer accepts the gateway version of this Switchyard's discord.js: upgrade Switchyard",
  },
  [GatewayCloseCodes.InvalidIntents]: {
    name: 'Invalid intent(s)',
    todo: 'Discord did not accept the intents value Switchyard sent, which is a bug in Switchyard: please report it with this log',
  },
};

/** A gateway close discord.js does not recover from (it emits ShardDisconnect for those only). */
function closeFailure(code: number): Failure {
  if (code === GatewayCloseCodes.AuthenticationFailed) {
    return tokenRejected('gateway close 4004 Authentication failed');
  }
  if (code === GatewayCloseCodes.DisallowedIntents) return intentRejected();
  const notRetried = CLOSES_NOT_RETRIED[code];
  if (notRetried) {
    const problem = `gateway close ${code} ${notRetried.name}`;
    return {
      kind: 'rejected',
      problem,
      error: new ConfigError(
        `Discord refused the gateway connection with close code ${code} (${notRetried.name}), which it says not to reconnect after; Switchyard stops connecting to Discord: ${notRetried.todo}.`,
        { code, problem },
      ),
    };
  }
  const name = (GatewayCloseCodes as Record<number, string | undefined>)[code];
  return { kind: 'unavailable', problem: `gateway closed with ${code}${name ? ` ${name}` : ''}` };
}

/**
 * @discordjs/ws rejects the first connect with these errors for the closes it does not recover from
 * (discord.js also emits ShardDisconnect for them, usually first).
 */
const LOGIN_CLOSE_ERRORS: Readonly<Record<string, number>> = {
  'Authentication failed': GatewayCloseCodes.AuthenticationFailed,
  'Invalid shard': GatewayCloseCodes.InvalidShard,
  'Sharding is required': GatewayCloseCodes.ShardingRequired,
  'Used an invalid API version': GatewayCloseCodes.InvalidAPIVersion,
  'Used invalid intents': GatewayCloseCodes.InvalidIntents,
  'Used disallowed intents': GatewayCloseCodes.DisallowedIntents,
};

/** Why `client.login()` rejected. */
function loginFailure(e: unknown): Failure {
  const err = (e ?? {}) as { code?: unknown; message?: unknown };
  // discord.js's error for a 401 from GET /gateway/bot (the token is checked before the gateway).
  if (err.code === DiscordjsErrorCodes.TokenInvalid) return tokenRejected('401 Unauthorized');
  const code = typeof err.message === 'string' ? LOGIN_CLOSE_ERRORS[err.message] : undefined;
  if (code !== undefined) return closeFailure(code);
  return { kind: 'unavailable', problem: e instanceof Error ? e.message : String(e) };
}

/** The session start budget is spent: not before it renews. */
function budgetFailure(spent: SessionStartsSpent): Failure {
  return { kind: 'unavailable', problem: spent.problem, notBeforeMs: spent.retryInMs };
}

/**
 * Logs in (one attempt at a time, each with a fresh client — see the module header), tracks the
 * connection state, and retries with backoff until ready, rejected or stopped. Never throws into the
 * process outside `start()`. The state, waiters, backoff and retry loop are SurfaceConnection's
 * (../connection.ts); the logins, clients and close codes are here.
 */
class DiscordConnection {
  private readonly conn: SurfaceConnection;
  private current: Client;
  /** Whether `current` has been logged in already (a client logs in once). */
  private used = false;
  private readonly abandoned = new WeakSet<Client>();
  /** Ends the running attempt (stop). */
  private settle: ((outcome: Outcome) => void) | undefined;
  /** Discord's daily IDENTIFYs, counted across the clients of every login. */
  private readonly sessionStarts: SessionStartBudget;

  constructor(
    private readonly deps: {
      readonly client: DiscordClientOptions;
      readonly startup: DiscordStartupOptions;
      readonly logger: Logger;
      /** Applies Switchyard's handlers (interactions, messages, catch-up) to a new client. */
      readonly wire: (client: Client) => void;
    },
  ) {
    const { retryMinMs, retryMaxMs, sessionStartReserve } = deps.startup;
    this.sessionStarts = new SessionStartBudget({ reserve: sessionStartReserve, clock: systemClock });
    this.conn = new SurfaceConnection({
      retryMinMs,
      retryMaxMs,
      problem: 'not started',
      attempt: () => this.run(),
    });
    this.current = this.newClient();
  }

  get client(): Client {
    return this.current;
  }

  status(): DiscordConnectionStatus {
    return this.conn.status();
  }

  ready(): Promise<void> {
    return this.conn.ready();
  }

  async start(): Promise<void> {
    const { waitMs } = this.deps.startup;
    await this.conn.start(waitMs);
    if (this.conn.state === 'ready' || this.conn.stopped) return;
    if (this.conn.attempting) this.conn.problem = `no READY from the gateway within ${duration(waitMs)}`;
    const { problem, attempts } = this.conn;
    this.deps.logger.error(
      { problem, attempts, apiUrl: this.deps.client.apiUrl },
      `discord: not connected yet (${problem}); Switchyard starts without Discord and keeps trying to connect in the background`,
    );
  }

  async stop(): Promise<void> {
    this.conn.stop(new Error('discord: stopped before the connection was ready'));
    this.settle?.({ kind: 'stopped' });
    await this.conn.attempt(); // stopped: joins the login in flight, if any, and begins none
    await this.dispose(this.current);
    if (this.conn.state === 'ready') this.conn.lost('stopped');
  }

  private newClient(): Client {
    const client = createDiscordClient(this.deps.client, () => this.abandoned.has(client), {
      budget: this.sessionStarts,
      spent: (spent) => this.sessionStartsSpent(client, spent),
    });
    this.deps.wire(client);
    // After the session was READY: discord.js resumes or identifies again by itself; the state follows.
    const live = () => client === this.current && !this.conn.attempting && !this.conn.stopped;
    client.on(Events.ShardReconnecting, () => {
      if (!live() || this.conn.state !== 'ready') return;
      this.conn.lost('gateway connection lost; reconnecting');
    });
    const back = () => {
      if (!live() || this.conn.state !== 'waiting') return;
      this.conn.succeeded();
      this.deps.logger.info({}, 'discord reconnected');
    };
    client.on(Events.ShardResume, back);
    client.on(Events.ShardReady, back);
    client.on(Events.ShardDisconnect, (event) => {
      if (live()) this.lost(client, closeFailure(event.code));
    });
    return client;
  }

  /** One login (SurfaceConnection runs one at a time); never rejects. */
  private async run(): Promise<void> {
    // No login at all while the budget is spent: it would open a connection only to hold it idle.
    const spent = this.sessionStarts.spent();
    if (spent) {
      this.failed(budgetFailure(spent));
      return;
    }
    if (this.used) this.current = this.newClient();
    this.used = true;
    const client = this.current;
    this.conn.problem = 'connecting';
    const outcome = await new Promise<Outcome>((resolve) => {
      this.settle = resolve;
      client.once(Events.ClientReady, () => resolve({ kind: 'ready' }));
      client.on(Events.ShardDisconnect, (event) => resolve(closeFailure(event.code)));
      client.login(this.deps.client.token).catch((e: unknown) => resolve(loginFailure(e)));
    });
    this.settle = undefined;
    if (outcome.kind === 'stopped' || this.conn.stopped) return; // stop() gives the client up
    if (outcome.kind === 'ready') {
      this.conn.succeeded();
      this.deps.logger.info(
        { user: client.user?.tag, guilds: client.guilds.cache.size, attempts: this.conn.attempts },
        'discord connected',
      );
      return;
    }
    await this.dispose(client);
    this.failed(outcome);
  }

  /**
   * `client` is about to IDENTIFY but the budget is spent: it is given up (its connection closes, no
   * IDENTIFY is sent) and the next login waits until the budget renews.
   */
  private sessionStartsSpent(client: Client, spent: SessionStartsSpent): void {
    if (client !== this.current || this.abandoned.has(client) || this.conn.stopped) return;
    const failure = budgetFailure(spent);
    if (this.conn.attempting) this.settle?.(failure);
    else this.lost(client, failure);
  }

  /** The READY session ended for good (discord.js will not reconnect this client). */
  private lost(client: Client, failure: Failure): void {
    void this.dispose(client);
    this.conn.lost(failure.problem);
    this.failed(failure);
  }

  private failed(failure: Failure): void {
    if (failure.kind === 'rejected') {
      this.conn.rejected(failure.problem, failure.error);
      this.deps.logger.error({ problem: failure.problem }, failure.error.message);
      return;
    }
    const retryInMs = this.conn.unavailable(failure.problem, failure.notBeforeMs);
    if (retryInMs === undefined) return; // stopped
    if (failure.notBeforeMs !== undefined) {
      this.deps.logger.error(
        { problem: failure.problem, attempt: this.conn.attempts, retryInMs },
        `discord: not connecting: ${failure.problem} (see "Start-up when Discord is down or misconfigured" in docs/discord.md)`,
      );
      return;
    }
    this.deps.logger.warn(
      { problem: failure.problem, attempt: this.conn.attempts, retryInMs, apiUrl: this.deps.client.apiUrl },
      `discord: cannot connect (${failure.problem}); trying again in ${duration(retryInMs)}`,
    );
  }

  /** Gives a client up: it never connects again; its `destroy()` is awaited briefly (module header). */
  private async dispose(client: Client): Promise<void> {
    this.abandoned.add(client);
    await within(
      systemClock,
      DESTROY_WAIT_MS,
      client.destroy().catch(() => undefined),
      undefined,
    );
  }
}

/** Options of `createDiscordRest` beyond the token and API base. */
export interface DiscordRestOptions {
  /**
   * How long a request waits for its answer before discord.js gives up on it and sends it again (up to
   * its `retries`, 3); default discord.js's 15 s. A message create sent again is not posted twice (see
   * ./messages.ts). Tests shorten it.
   */
  readonly timeoutMs?: number;
}

/**
 * discord.js REST with the bot token (`DISCORD_TOKEN`, normalised) and `DISCORD_API_URL` when set: what
 * the bot posts, edits and reads channels with, with or without a gateway session (a process with
 * `DISCORD_GATEWAY=off`, `npm run worker`). Its sweeper timers are unref'd; `stop` clears them.
 */
export function createDiscordRest(token: string, apiUrl?: string, opts: DiscordRestOptions = {}): REST {
  return new REST({
    ...(apiUrl === undefined ? {} : { api: apiUrl }),
    ...(opts.timeoutMs === undefined ? {} : { timeout: opts.timeoutMs }),
  }).setToken(normalizeDiscordToken(token));
}

/**
 * Creates the Discord surface: a client whose interactions go to `onInteraction` exactly once each.
 * The command/button routing lives in handlers/discord/index.ts, which supplies `onInteraction`.
 */
export function createDiscordSurface(opts: DiscordSurfaceOptions): DiscordSurface {
  const log = opts.logger ?? silentLogger;
  const deduper = new InteractionDeduper();
  // DISCORD_TOKEN is normalised when the config is parsed; a token handed in directly is too.
  const token = normalizeDiscordToken(opts.token);
  const rest = createDiscordRest(token, opts.apiUrl);
  const handleMessage = opts.onMessage;
  // Message content is read only in watched channels (alert watching): without any, the privileged
  // MessageContent intent is not requested, so a commands-only bot needs no privileged intent.
  const messageContent = handleMessage !== undefined && (opts.watch?.channels ?? []).length > 0;
  let connection: DiscordConnection | undefined;
  const watch = new ChannelWatch({
    ...opts.watch,
    channels: handleMessage === undefined ? [] : (opts.watch?.channels ?? []),
    rest,
    store: opts.watch?.store ?? new MemoryWatchStore(),
    clock: opts.watch?.clock ?? systemClock,
    logger: log,
    seen: new InteractionDeduper(),
    botUserId: () => connection?.client.user?.id,
    handle: (message) => handleMessage?.(message) ?? Promise.resolve(),
  });
  /** Everything Switchyard hangs on a client; applied to every client a new login uses. */
  const wire = (client: Client): void => {
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
    // READY starts a new session (first connect, op 9, a resume refused, a new client): nothing is
    // replayed into it, so watched channels are read back once the shard is ready. Emitted before any
    // later dispatch is handled, so live messages of the new session wait for the catch-up. A RESUMED
    // session replays.
    client.ws.on(GatewayDispatchEvents.Ready, () => watch.sessionStarted());
    client.on(Events.ShardReady, () => watch.catchUp());
    client.on(Events.ShardResume, () => watch.catchUp());
    client.on(Events.MessageCreate, (message) => {
      if (!handleMessage || message.author.id === client.user?.id || !message.inGuild()) return;
      // Discord's own notices (a thread created, a pin, …) are not alerts (see ./watch.ts).
      if (!isContentMessage(message.type)) return;
      watch
        .live(gatewayMessage(message))
        .catch((e: unknown) =>
          log.error({ err: (e as Error).message, messageId: message.id }, 'discord message handler failed'),
        );
    });
  };
  const conn = new DiscordConnection({
    client: { ...opts, token, messageContent },
    startup: { ...discordStartupDefaults, ...opts.startup },
    logger: log,
    wire,
  });
  connection = conn;
  return {
    get client() {
      return conn.client;
    },
    rest,
    start: () => conn.start(),
    async stop() {
      watch.stop();
      await conn.stop();
      rest.clearHashSweeper();
      rest.clearHandlerSweeper();
    },
    status: () => conn.status(),
    ready: () => conn.ready(),
    caughtUp: () => watch.settled(),
  };
}
