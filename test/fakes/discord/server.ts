/**
 * A local fake Discord for tests, written from the documented API v10: a REST API under `/api/v10`
 * (gateway discovery, current user/application, application command registration, interaction
 * callbacks, interaction webhooks, channel messages) and the gateway WebSocket (./gateway.ts) on the
 * same port. The real discord.js client runs against it unmodified (`rest: { api: fake.apiUrl }`).
 *
 * Faithful where it matters to Switchyard: `Authorization: Bot <token>` is checked on bot routes,
 * every response carries rate-limit headers whose `X-RateLimit-Remaining` counts down per bucket (route
 * and top-level resource) within a window, past which a request is answered 429 without effect; 429s
 * can be injected per route (scope `user` or `shared`) or global, with `Retry-After` in whole seconds
 * and `retry_after` a float as Discord sends them; `GET /gateway/bot` reports the session start limit,
 * which every IDENTIFY uses up (past it, Discord resets the bot token); bodies are validated against Discord's documented
 * limits (errors answer 400 with code 50035 like Discord), an interaction can be acknowledged once
 * and only within 3 s, interaction tokens can be expired (15 min on Discord) so tests prove progress
 * edits use the bot token, and buttons can only be clicked when they exist and are enabled. A message
 * create with `nonce` and `enforce_nonce: true` is checked for uniqueness per author within a window
 * (`NONCE_WINDOW_MS`, on the fake's clock): a second create with the nonce answers the first message,
 * creating and dispatching nothing. A request's answer can be held (`hold`) so that a client times out
 * and sends it again while the request has taken effect.
 *
 * Tests wait on recorded traffic (`waitForRequest`, `gateway.events`), never on sleeps.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { z } from 'zod';
import { type Clock, systemClock } from '../../../src/clock.js';
import { FakeGateway } from './gateway.js';
import {
  bulkCommandsSchema,
  type Callback,
  CallbackType,
  ChannelType,
  ComponentType,
  callbackSchema,
  channelMessagesQuerySchema,
  ErrorCode,
  InteractionType,
  type MessageBody,
  MessageFlag,
  messageBodySchema,
  PRIVILEGED_INTENTS,
} from './protocol.js';

const DISCORD_EPOCH = 1_420_070_400_000n;
let increment = 0n;

/** A snowflake for `now` (docs: reference#snowflakes). */
export function makeSnowflake(now = Date.now()): string {
  increment = (increment + 1n) & 0xfffn;
  return (((BigInt(now) - DISCORD_EPOCH) << 22n) | (1n << 17n) | increment).toString();
}

type Json = Record<string, unknown>;

/** One REST request as the fake saw it. */
export interface RestCall {
  readonly index: number;
  readonly method: string;
  /** Path below `/api/v10`, e.g. `/channels/123/messages`. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly body: unknown;
  readonly authorization: string | undefined;
  readonly status: number;
  /** The JSON the fake answered with (null for 204). */
  readonly response: unknown;
  /** Unix ms when the request arrived. */
  readonly at: number;
}

export interface FakeUser {
  readonly id: string;
  readonly username: string;
}

/** A stored message (channel message, interaction response or follow-up). */
export interface StoredMessage {
  id: string;
  channel_id: string;
  guild_id?: string;
  author: Json;
  content: string;
  embeds: Json[];
  components: Json[];
  flags: number;
  type: number;
  timestamp: string;
  edited_timestamp: string | null;
  webhook_id?: string;
  application_id?: string;
  /** The nonce it was created with (`nonce` of the create), as given. */
  nonce?: string | number;
  /** Every version of the message body, oldest first (creation then each edit). */
  history: { content: string; embeds: Json[]; components: Json[]; flags: number }[];
}

/** An interaction dispatched to the bot and what it answered. */
export interface FakeInteraction {
  readonly id: string;
  readonly token: string;
  readonly type: number;
  readonly payload: Json;
  readonly createdAt: number;
  /** The callback, once answered. */
  callback?: Callback;
  respondedAt?: number;
  /** The original response message (type 4/5 callbacks). */
  originalId?: string;
  /** Set by `expireInteractionTokens()`: webhook calls with this token fail like after 15 minutes. */
  expired: boolean;
  /** The message a component was clicked on. */
  readonly messageId?: string;
}

export interface StoredCommand extends Json {
  id: string;
  application_id: string;
  guild_id?: string;
  name: string;
  version: string;
}

export interface FakeDiscordOptions {
  readonly token?: string;
  readonly applicationId?: string;
  readonly heartbeatIntervalMs?: number;
  /** Privileged intents the developer portal has enabled (default: MessageContent and members). */
  readonly privilegedIntents?: number;
  /** How long an interaction may wait for its initial response (Discord: 3 s). */
  readonly interactionDeadlineMs?: number;
  /**
   * The session start limit `GET /gateway/bot` reports (docs: gateway, session start limit object):
   * default 1000 a day, all remaining. Every IDENTIFY takes one; once none remain, the next IDENTIFY
   * resets the bot token (every session closes with 4004; REST answers 401), as Discord does.
   */
  readonly sessionStartLimit?: {
    readonly total?: number;
    readonly remaining?: number;
    readonly resetAfterMs?: number;
  };
  /**
   * Requests each rate-limit bucket (route and top-level resource) takes per window; past it, 429.
   * Default 50 a second: generous, so only a test that lowers it meets the limit.
   */
  readonly routeLimit?: { readonly limit: number; readonly windowMs: number };
  /**
   * The clock the nonce window (`NONCE_WINDOW_MS`) runs on (default the system clock). Only that:
   * rate-limit windows and the interaction deadline are real waits the SDK makes.
   */
  readonly clock?: Pick<Clock, 'now'>;
}

/**
 * How long a message nonce sent with `enforce_nonce: true` stays unique per author. Discord (Create
 * Message): "it will be checked for uniqueness in the past few minutes"; the fake takes five.
 */
export const NONCE_WINDOW_MS = 5 * 60_000;

/**
 * Answers the fake holds back (`FakeDiscord.hold`, a test control, not Discord behaviour: a Discord that
 * is slow to answer, or whose answer is lost). Each held request takes effect when it arrives (a message
 * is created, dispatched and recorded in `calls`); only its answer waits for `release()`.
 */
export interface HeldAnswers {
  /** Resolves once `count` (default 1) of the held requests have arrived and taken effect. */
  reached(count?: number): Promise<void>;
  /** Resolves once the client gave up on `count` (default 1) of them (closed the request unanswered). */
  abandoned(count?: number): Promise<void>;
  /** Writes the held answers; a matching request still to come is no longer held. */
  release(): void;
}

/** Scope of a 429 (docs: rate limits, `X-RateLimit-Scope`). */
export type RateLimitScope = 'user' | 'shared' | 'global';

/** Discord's session start window: the budget resets a day after it began. */
const SESSION_START_WINDOW_MS = 24 * 60 * 60 * 1000;

interface Hold {
  readonly method: string;
  readonly path: RegExp;
  remaining: number;
  arrived: number;
  abandoned: number;
  readonly gate: Promise<void>;
  /** Emits `change` when `arrived` or `abandoned` grew. */
  readonly changes: EventEmitter;
}

interface Injected {
  readonly method: string;
  readonly path: RegExp;
  readonly status: number;
  readonly body: Json;
  readonly headers: Readonly<Record<string, string>>;
  remaining: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
    readonly errors?: Json,
  ) {
    super(message);
  }
}

const PERMISSIONS_ALL = '2251799813685247';

function flatten(issues: readonly z.core.$ZodIssue[]): Json {
  const errors: Json = {};
  for (const issue of issues) {
    const key = issue.path.map(String).join('.') || '_root';
    errors[key] = { _errors: [{ code: 'BASE_TYPE_INVALID', message: issue.message }] };
  }
  return errors;
}

/** The fake Discord. Create with `startFakeDiscord()`. */
export class FakeDiscord {
  readonly token: string;
  readonly applicationId: string;
  readonly botUser: FakeUser & Json;
  readonly guildId = makeSnowflake();
  /** Channels of the test guild by name. */
  readonly channels: Readonly<Record<'ops' | 'alerts' | 'general', string>> = {
    ops: makeSnowflake(),
    alerts: makeSnowflake(),
    general: makeSnowflake(),
  };
  /** Roles of the test guild by name. */
  readonly roles: Readonly<Record<'everyone' | 'deployers' | 'viewers', string>>;
  readonly calls: RestCall[] = [];
  readonly events = new EventEmitter();
  readonly messages = new Map<string, StoredMessage>();
  /** Threads created with `createThread`, by id: the channel (or forum) each was started in. */
  readonly threads = new Map<string, { readonly parentId: string; readonly name: string }>();
  readonly interactions = new Map<string, FakeInteraction>();
  /** Registered commands: key `global` or a guild id. */
  readonly commands = new Map<string, StoredCommand[]>();
  readonly gateway: FakeGateway;
  private readonly injected: Injected[] = [];
  private readonly server: Server;
  private port = 0;
  private listening = false;
  private readonly deadlineMs: number;
  /** The session start budget (`GET /gateway/bot`), used up by IDENTIFYs. */
  private readonly sessionStarts: { total: number; remaining: number; resetAt: number };
  /** Set once an IDENTIFY came with no session start left: the bot token no longer works. */
  private tokenReset = false;
  private readonly routeLimit: { readonly limit: number; readonly windowMs: number };
  /** Requests per rate-limit bucket in its current window. */
  private readonly buckets = new Map<string, { count: number; resetAt: number }>();
  private readonly clock: Pick<Clock, 'now'>;
  /** Nonces of messages created with `enforce_nonce`, by author and nonce: the message and when. */
  private readonly nonces = new Map<string, { readonly messageId: string; readonly at: number }>();
  private readonly holds: Hold[] = [];
  /** Releases every hold (close): no answer waits for good. */
  private readonly releases: (() => void)[] = [];

  constructor(opts: FakeDiscordOptions = {}) {
    this.token = opts.token ?? `fake.${Math.random().toString(36).slice(2)}.bot-token`;
    this.applicationId = opts.applicationId ?? makeSnowflake();
    this.deadlineMs = opts.interactionDeadlineMs ?? 3_000;
    const total = opts.sessionStartLimit?.total ?? 1000;
    this.sessionStarts = {
      total,
      remaining: opts.sessionStartLimit?.remaining ?? total,
      resetAt: Date.now() + (opts.sessionStartLimit?.resetAfterMs ?? SESSION_START_WINDOW_MS),
    };
    this.routeLimit = opts.routeLimit ?? { limit: 50, windowMs: 1000 };
    this.clock = opts.clock ?? systemClock;
    this.botUser = {
      id: this.applicationId,
      username: 'switchyard',
      discriminator: '0',
      global_name: 'Switchyard',
      avatar: null,
      bot: true,
      verified: true,
      flags: 0,
    };
    this.roles = { everyone: this.guildId, deployers: makeSnowflake(), viewers: makeSnowflake() };
    this.gateway = new FakeGateway(
      {
        token: this.token,
        sessionStart: () => this.sessionStart(),
        tokenReset: () => this.tokenReset,
        user: this.botUser,
        application: { id: this.applicationId, flags: 0 },
        guilds: () => [this.guildObject()],
      },
      {
        heartbeatIntervalMs: opts.heartbeatIntervalMs ?? 41_250,
        privilegedIntents: opts.privilegedIntents ?? PRIVILEGED_INTENTS,
        url: () => this.gatewayUrl,
      },
    );
    this.server = createServer((req, res) => {
      void this.handle(req, res);
    });
    this.server.on('upgrade', (req, socket, head) => this.gateway.handleUpgrade(req, socket, head));
  }

  /** REST base to give discord.js (`rest.api`): `http://127.0.0.1:PORT/api`. */
  get apiUrl(): string {
    return `http://127.0.0.1:${this.port}/api`;
  }

  /** Gateway URL returned by `GET /gateway/bot`. */
  get gatewayUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** Listens on `port` (default: a free one). */
  async listen(port = 0): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.listening = true;
    return this;
  }

  /**
   * Takes the fake off the network, as when discord.com cannot be reached: its port stops listening,
   * so REST requests and gateway connections are refused (ECONNREFUSED), and open gateway connections
   * drop without a close frame (the bot sees 1006). `goOnline()` brings it back on the same port.
   */
  async goOffline(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    this.gateway.terminateAll();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Puts the fake back on the network, on the port it had (same `apiUrl`). */
  async goOnline(): Promise<void> {
    if (!this.listening) await this.listen(this.port);
  }

  async close(): Promise<void> {
    // Held answers are written into connections closed below, so that no handler waits for good.
    for (const release of this.releases.splice(0)) release();
    await this.gateway.close();
    if (!this.listening) return;
    this.listening = false;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---------------------------------------------------------------- session starts

  /** The session start budget now, renewed once its window has passed. */
  private sessionStartLimit(): { total: number; remaining: number; resetAt: number } {
    const now = Date.now();
    if (now >= this.sessionStarts.resetAt) {
      this.sessionStarts.remaining = this.sessionStarts.total;
      this.sessionStarts.resetAt = now + SESSION_START_WINDOW_MS;
    }
    return this.sessionStarts;
  }

  /** Session starts left in the current window (what `GET /gateway/bot` says as `remaining`). */
  get sessionStartsRemaining(): number {
    return this.sessionStartLimit().remaining;
  }

  /** An IDENTIFY: takes a session start; false when none was left (the token is then reset). */
  private sessionStart(): boolean {
    const limit = this.sessionStartLimit();
    if (this.tokenReset) return false;
    if (limit.remaining <= 0) {
      this.tokenReset = true;
      return false;
    }
    limit.remaining -= 1;
    return true;
  }

  /** Ends the session start window now: the budget is full again (as when Discord's day is over). */
  renewSessionStarts(): void {
    this.sessionStarts.resetAt = Date.now();
  }

  // ---------------------------------------------------------------- the guild

  /** A guild member object for `user` with `roles` (role ids). */
  member(user: FakeUser, roles: readonly string[] = []): Json {
    return {
      user: {
        id: user.id,
        username: user.username,
        global_name: user.username,
        discriminator: '0',
        avatar: null,
      },
      roles: [...roles],
      nick: null,
      avatar: null,
      joined_at: '2026-01-01T00:00:00.000Z',
      premium_since: null,
      deaf: false,
      mute: false,
      flags: 0,
      pending: false,
      communication_disabled_until: null,
      permissions: PERMISSIONS_ALL,
    };
  }

  /** A new guild user (not the bot). */
  user(username: string): FakeUser {
    return { id: makeSnowflake(), username };
  }

  private channelObject(name: keyof FakeDiscord['channels']): Json {
    return {
      id: this.channels[name],
      type: ChannelType.guildText,
      guild_id: this.guildId,
      name,
      position: Object.keys(this.channels).indexOf(name),
      permission_overwrites: [],
      parent_id: null,
      topic: null,
      nsfw: false,
      last_message_id: null,
      rate_limit_per_user: 0,
      flags: 0,
    };
  }

  /** The channel object of a public thread (`type` 11), as in THREAD_CREATE and GET /channels/{id}. */
  private threadObject(id: string, created = false): Json {
    const thread = this.threads.get(id);
    return {
      id,
      type: ChannelType.publicThread,
      guild_id: this.guildId,
      parent_id: thread?.parentId ?? null,
      owner_id: this.botUser.id,
      name: thread?.name ?? '',
      last_message_id: null,
      message_count: 0,
      member_count: 1,
      rate_limit_per_user: 0,
      flags: 0,
      total_message_sent: 0,
      thread_metadata: {
        archived: false,
        auto_archive_duration: 1440,
        archive_timestamp: new Date().toISOString(),
        locked: false,
      },
      ...(created ? { newly_created: true } : {}),
    };
  }

  /**
   * Starts a public thread in `parentId` (a text channel, or a forum post) as another member would,
   * and sends THREAD_CREATE to the bot. Messages are then posted to the thread's own channel id.
   */
  createThread(parentId: string, name: string): string {
    const id = makeSnowflake();
    this.threads.set(id, { parentId, name });
    this.gateway.dispatch('THREAD_CREATE', this.threadObject(id, true));
    return id;
  }

  private roleObject(name: string, id: string, position: number): Json {
    return {
      id,
      name,
      color: 0,
      colors: { primary_color: 0, secondary_color: null, tertiary_color: null },
      hoist: false,
      icon: null,
      unicode_emoji: null,
      position,
      permissions: name === '@everyone' ? '1024' : PERMISSIONS_ALL,
      managed: false,
      mentionable: false,
      flags: 0,
    };
  }

  /** The GUILD_CREATE payload of the test guild. */
  guildObject(): Json {
    return {
      id: this.guildId,
      name: 'Switchyard Test Guild',
      icon: null,
      splash: null,
      discovery_splash: null,
      owner_id: makeSnowflake(),
      afk_channel_id: null,
      afk_timeout: 300,
      verification_level: 0,
      default_message_notifications: 0,
      explicit_content_filter: 0,
      roles: [
        this.roleObject('@everyone', this.roles.everyone, 0),
        this.roleObject('deployers', this.roles.deployers, 1),
        this.roleObject('viewers', this.roles.viewers, 2),
      ],
      emojis: [],
      stickers: [],
      features: [],
      mfa_level: 0,
      application_id: null,
      system_channel_id: null,
      system_channel_flags: 0,
      rules_channel_id: null,
      vanity_url_code: null,
      description: null,
      banner: null,
      premium_tier: 0,
      preferred_locale: 'en-US',
      public_updates_channel_id: null,
      nsfw_level: 0,
      premium_progress_bar_enabled: false,
      safety_alerts_channel_id: null,
      joined_at: '2026-01-01T00:00:00.000Z',
      large: false,
      unavailable: false,
      member_count: 2,
      voice_states: [],
      members: [this.member(this.botUser)],
      channels: (Object.keys(this.channels) as (keyof FakeDiscord['channels'])[]).map((n) =>
        this.channelObject(n),
      ),
      threads: [],
      presences: [],
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
    };
  }

  // ---------------------------------------------------------------- driving the bot

  /** The registered command named `name` (guild commands first), or undefined. */
  command(name: string): StoredCommand | undefined {
    return (
      this.commands.get(this.guildId)?.find((c) => c.name === name) ??
      this.commands.get('global')?.find((c) => c.name === name)
    );
  }

  private baseInteraction(
    type: number,
    who: { user: FakeUser; roles?: readonly string[]; channelId?: string; guildId?: string },
  ): {
    id: string;
    token: string;
    payload: Json;
  } {
    const id = makeSnowflake();
    const token = `aW50ZXJhY3Rpb24.${id}.${Math.random().toString(36).slice(2)}`;
    // Another server the bot was added to: a channel of its own there.
    const guildId = who.guildId ?? this.guildId;
    const elsewhere = guildId !== this.guildId;
    const channelId = who.channelId ?? (elsewhere ? makeSnowflake() : this.channels.ops);
    const channelName =
      (Object.entries(this.channels) as [keyof FakeDiscord['channels'], string][]).find(
        ([, cid]) => cid === channelId,
      )?.[0] ?? 'ops';
    const channel = this.channelObject(channelName);
    return {
      id,
      token,
      payload: {
        id,
        application_id: this.applicationId,
        type,
        guild_id: guildId,
        guild: { id: guildId, locale: 'en-US', features: [] },
        channel: elsewhere ? { ...channel, id: channelId, guild_id: guildId } : channel,
        channel_id: channelId,
        member: this.member(who.user, who.roles ?? []),
        token,
        version: 1,
        app_permissions: PERMISSIONS_ALL,
        locale: 'en-US',
        guild_locale: 'en-US',
        entitlements: [],
        authorizing_integration_owners: { '0': guildId },
        context: 0,
        attachment_size_limit: 26_214_400,
      },
    };
  }

  private record(interaction: FakeInteraction): FakeInteraction {
    this.interactions.set(interaction.id, interaction);
    this.gateway.dispatch('INTERACTION_CREATE', interaction.payload);
    return interaction;
  }

  private commandData(
    name: string,
    options: readonly { name: string; value: string | number; focused?: boolean }[],
    guildId: string = this.guildId,
  ): Json {
    // Another server sees the global registration only.
    const cmd =
      guildId === this.guildId
        ? this.command(name)
        : this.commands.get('global')?.find((c) => c.name === name);
    if (!cmd) throw new Error(`fake discord: /${name} is not registered, so Discord would not offer it`);
    const declared = (cmd.options as { name: string; type: number }[] | undefined) ?? [];
    return {
      id: cmd.id,
      name,
      type: 1,
      ...(cmd.guild_id === undefined ? {} : { guild_id: cmd.guild_id }),
      options: options.map((o) => {
        const decl = declared.find((d) => d.name === o.name);
        if (!decl) throw new Error(`fake discord: /${name} has no option "${o.name}"`);
        return { name: o.name, type: decl.type, value: o.value, ...(o.focused ? { focused: true } : {}) };
      }),
    };
  }

  /**
   * A user runs a slash command (INTERACTION_CREATE, type 2); with `guildId`, in another server the bot
   * was added to (a global registration shows the commands there too).
   */
  slash(opts: {
    readonly command: string;
    readonly options?: readonly { name: string; value: string | number }[];
    readonly user: FakeUser;
    readonly roles?: readonly string[];
    readonly channelId?: string;
    readonly guildId?: string;
  }): FakeInteraction {
    const data = this.commandData(opts.command, opts.options ?? [], opts.guildId);
    const base = this.baseInteraction(InteractionType.applicationCommand, opts);
    return this.record({
      id: base.id,
      token: base.token,
      type: InteractionType.applicationCommand,
      payload: { ...base.payload, data },
      createdAt: Date.now(),
      expired: false,
    });
  }

  /** A user types in an autocompleted option (INTERACTION_CREATE, type 4); `guildId` as for `slash`. */
  autocomplete(opts: {
    readonly command: string;
    readonly options: readonly { name: string; value: string | number; focused?: boolean }[];
    readonly user: FakeUser;
    readonly roles?: readonly string[];
    readonly guildId?: string;
  }): FakeInteraction {
    const data = this.commandData(opts.command, opts.options, opts.guildId);
    const base = this.baseInteraction(InteractionType.autocomplete, opts);
    return this.record({
      id: base.id,
      token: base.token,
      type: InteractionType.autocomplete,
      payload: { ...base.payload, data },
      createdAt: Date.now(),
      expired: false,
    });
  }

  /**
   * A user clicks a button on a message (INTERACTION_CREATE, type 3). Throws when the message has no
   * enabled button with that custom id: a person could not click it on Discord either.
   */
  click(opts: {
    readonly messageId: string;
    readonly customId: string;
    readonly user: FakeUser;
    readonly roles?: readonly string[];
  }): FakeInteraction {
    const message = this.messages.get(opts.messageId);
    if (!message) throw new Error(`fake discord: no message ${opts.messageId}`);
    const button = message.components
      .flatMap((row) => (row.components as Json[] | undefined) ?? [])
      .find((c) => c.custom_id === opts.customId);
    if (!button) throw new Error(`fake discord: message ${opts.messageId} has no component ${opts.customId}`);
    if (button.disabled === true) throw new Error(`fake discord: button ${opts.customId} is disabled`);
    const base = this.baseInteraction(InteractionType.messageComponent, {
      ...opts,
      channelId: message.channel_id,
    });
    return this.record({
      id: base.id,
      token: base.token,
      type: InteractionType.messageComponent,
      payload: {
        ...base.payload,
        message: this.messageObject(message),
        data: { custom_id: opts.customId, component_type: ComponentType.button },
      },
      createdAt: Date.now(),
      expired: false,
      messageId: message.id,
    });
  }

  /**
   * Someone (a person or another bot) posts in a channel: stored and dispatched as MESSAGE_CREATE.
   * `at` (Unix ms, default now) dates the message — its snowflake and timestamp — as if it had been
   * posted then (a message from before the bot connected, read back with GET .../messages).
   */
  postMessage(opts: {
    readonly channelId: string;
    readonly author: FakeUser & { bot?: boolean };
    readonly content: string;
    readonly embeds?: Json[];
    readonly at?: number;
  }): StoredMessage {
    const message = this.storeMessage(opts.channelId, {
      ...(opts.at === undefined ? {} : { at: opts.at }),
      author: {
        id: opts.author.id,
        username: opts.author.username,
        discriminator: '0',
        avatar: null,
        ...(opts.author.bot ? { bot: true } : {}),
      },
      content: opts.content,
      embeds: opts.embeds ?? [],
      components: [],
      flags: 0,
      type: 0,
    });
    this.gateway.dispatch('MESSAGE_CREATE', {
      ...this.messageObject(message),
      member: this.member(opts.author),
    });
    return message;
  }

  /** Makes every interaction token issued so far invalid, as Discord does after 15 minutes. */
  expireInteractionTokens(): void {
    for (const i of this.interactions.values()) i.expired = true;
  }

  /**
   * Makes the next `times` requests matching `method` and `path` (below /api/v10) answer 429 with
   * `retry_after` seconds, the documented rate-limit response (docs: rate limits, exceeding a rate
   * limit): the body's `retry_after` as given (a float), the `Retry-After` header in whole seconds,
   * rounded up (Discord's example: 65 for 64.57). `scope` (default `user`): `user` or `shared` (a
   * per-route limit, or one shared by a resource) carry the bucket's headers; `global` carries
   * `X-RateLimit-Global: true` and no per-route headers, and its body says `global: true`.
   */
  rateLimitNext(opts: {
    method: string;
    path: RegExp;
    retryAfterSeconds: number;
    times?: number;
    scope?: RateLimitScope;
  }): void {
    const after = opts.retryAfterSeconds;
    const scope = opts.scope ?? 'user';
    const global = scope === 'global';
    this.injected.push({
      method: opts.method.toUpperCase(),
      path: opts.path,
      status: 429,
      body: { message: 'You are being rate limited.', retry_after: after, global },
      headers: global
        ? {
            'retry-after': String(Math.ceil(after)),
            'x-ratelimit-global': 'true',
            'x-ratelimit-scope': 'global',
          }
        : {
            'retry-after': String(Math.ceil(after)),
            'x-ratelimit-limit': '5',
            'x-ratelimit-remaining': '0',
            'x-ratelimit-reset-after': String(after),
            'x-ratelimit-reset': String((Date.now() + after * 1000) / 1000),
            'x-ratelimit-scope': scope,
          },
      remaining: opts.times ?? 1,
    });
  }

  /** Makes the next matching requests fail with a Discord JSON error. */
  failNext(opts: {
    method: string;
    path: RegExp;
    status: number;
    code: number;
    message: string;
    times?: number;
  }): void {
    this.injected.push({
      method: opts.method.toUpperCase(),
      path: opts.path,
      status: opts.status,
      body: { message: opts.message, code: opts.code },
      headers: {},
      remaining: opts.times ?? 1,
    });
  }

  /**
   * Holds the answers of the next `times` (default 1) requests matching `method` and `path` (below
   * /api/v10) until `release()` (see HeldAnswers): the request is handled and recorded as it arrives,
   * and its answer, as it would have been, is written only then. A client whose time-out passes
   * meanwhile gives up on it (discord.js then sends it again).
   */
  hold(opts: { method: string; path: RegExp; times?: number }): HeldAnswers {
    let open = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const hold: Hold = {
      method: opts.method.toUpperCase(),
      path: opts.path,
      remaining: opts.times ?? 1,
      arrived: 0,
      abandoned: 0,
      gate,
      changes: new EventEmitter(),
    };
    const release = () => {
      hold.remaining = 0;
      open();
    };
    this.holds.push(hold);
    this.releases.push(release);
    const until = (what: 'arrived' | 'abandoned', count: number) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (hold[what] < count) return;
          hold.changes.off('change', check);
          resolve();
        };
        hold.changes.on('change', check);
        check();
      });
    return {
      reached: (count = 1) => until('arrived', count),
      abandoned: (count = 1) => until('abandoned', count),
      release,
    };
  }

  /**
   * Resolves with the first recorded request (from `from`, default all) matching `match`; waits for
   * it when none has arrived yet. Rejects after `timeoutMs` listing what did arrive.
   */
  waitForRequest(
    match: (call: RestCall) => boolean,
    opts: { from?: number; timeoutMs?: number } = {},
  ): Promise<RestCall> {
    const from = opts.from ?? 0;
    const found = this.calls.slice(from).find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const onCall = (call: RestCall) => {
        if (call.index < from || !match(call)) return;
        clearTimeout(timer);
        this.events.off('request', onCall);
        resolve(call);
      };
      const timer = setTimeout(() => {
        this.events.off('request', onCall);
        const seen = this.calls
          .slice(-15)
          .map((c) => `${c.status} ${c.method} ${c.path}`)
          .join('\n  ');
        reject(new Error(`fake discord: expected request did not arrive; last requests:\n  ${seen}`));
      }, opts.timeoutMs ?? 10_000);
      this.events.on('request', onCall);
    });
  }

  /** Waits for the interaction's initial response (its callback) and returns it. */
  async waitForCallback(interaction: FakeInteraction, timeoutMs = 10_000): Promise<Callback> {
    await this.waitForRequest(
      (c) => c.path === `/interactions/${interaction.id}/${interaction.token}/callback` && c.status < 300,
      { timeoutMs },
    );
    const cb = this.interactions.get(interaction.id)?.callback;
    if (!cb) throw new Error('fake discord: callback recorded without a body');
    return cb;
  }

  /** Messages in a channel (not ephemeral), oldest first. */
  channelMessages(channelId: string): StoredMessage[] {
    return [...this.messages.values()].filter(
      (m) => m.channel_id === channelId && (m.flags & MessageFlag.ephemeral) === 0,
    );
  }

  // ---------------------------------------------------------------- messages

  private storeMessage(
    channelId: string,
    m: {
      author: Json;
      content: string;
      embeds: Json[];
      components: Json[];
      flags: number;
      type: number;
      webhook?: boolean;
      /** Unix ms the message is dated (default now). */
      at?: number;
    },
  ): StoredMessage {
    const at = m.at ?? Date.now();
    const message: StoredMessage = {
      id: makeSnowflake(at),
      channel_id: channelId,
      guild_id: this.guildId,
      author: m.author,
      content: m.content,
      embeds: m.embeds,
      components: m.components,
      flags: m.flags,
      type: m.type,
      timestamp: new Date(at).toISOString(),
      edited_timestamp: null,
      ...(m.webhook ? { webhook_id: this.applicationId, application_id: this.applicationId } : {}),
      history: [{ content: m.content, embeds: m.embeds, components: m.components, flags: m.flags }],
    };
    this.messages.set(message.id, message);
    return message;
  }

  /** The API message object of a stored message. */
  messageObject(m: StoredMessage): Json {
    return {
      id: m.id,
      channel_id: m.channel_id,
      ...(m.guild_id === undefined ? {} : { guild_id: m.guild_id }),
      author: m.author,
      content: m.content,
      timestamp: m.timestamp,
      edited_timestamp: m.edited_timestamp,
      tts: false,
      mention_everyone: false,
      mentions: [],
      mention_roles: [],
      attachments: [],
      embeds: m.embeds,
      components: m.components,
      pinned: false,
      type: m.type,
      flags: m.flags,
      ...(m.nonce === undefined ? {} : { nonce: m.nonce }),
      ...(m.webhook_id === undefined ? {} : { webhook_id: m.webhook_id, application_id: m.application_id }),
    };
  }

  private applyEdit(m: StoredMessage, body: MessageBody): void {
    if (body.content !== undefined) m.content = body.content ?? '';
    if (body.embeds !== undefined) m.embeds = (body.embeds ?? []) as Json[];
    if (body.components !== undefined) m.components = (body.components ?? []) as Json[];
    if (body.flags !== undefined && body.flags !== null) {
      // Only SUPPRESS_EMBEDS may change on edit; LOADING clears once real content arrives.
      m.flags = (m.flags & ~MessageFlag.loading) | (body.flags & 4);
    } else {
      m.flags &= ~MessageFlag.loading;
    }
    m.edited_timestamp = new Date().toISOString();
    m.history.push({ content: m.content, embeds: m.embeds, components: m.components, flags: m.flags });
  }

  private fromBody(body: MessageBody): {
    content: string;
    embeds: Json[];
    components: Json[];
    flags: number;
  } {
    const content = body.content ?? '';
    const embeds = (body.embeds ?? []) as Json[];
    const components = (body.components ?? []) as Json[];
    if (content === '' && embeds.length === 0 && components.length === 0) {
      throw new HttpError(400, ErrorCode.general, 'Cannot send an empty message');
    }
    return { content, embeds, components, flags: (body.flags ?? 0) & (MessageFlag.ephemeral | 4) };
  }

  // ---------------------------------------------------------------- HTTP

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = (req.method ?? 'GET').toUpperCase();
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const authorization = req.headers.authorization;
    const raw = url.pathname.startsWith('/api/v10') ? url.pathname.slice('/api/v10'.length) : url.pathname;
    // Clients percent-encode path segments (discord.js sends `%40original` for `@original`).
    const path = decodeURIComponent(raw);
    let status = 200;
    let payload: unknown = null;
    let headers: Record<string, string> = {};
    let body: unknown = null;
    const bucket = path.replace(/\d{5,}/g, ':id').replace(/\/[A-Za-z0-9._-]{30,}/g, '/:token');
    const hash = createHash('sha256').update(`${method} ${bucket}`).digest('base64url').slice(0, 32);
    const window = this.bucketWindow(`${hash}:${majorParameter(path)}`);
    try {
      if (!url.pathname.startsWith('/api/v10/'))
        throw new HttpError(404, ErrorCode.general, '404: Not Found');
      const type = req.headers['content-type'] ?? '';
      if (text.length > 0) {
        if (!type.startsWith('application/json')) {
          throw new HttpError(400, ErrorCode.general, `the fake accepts JSON bodies only, got ${type}`);
        }
        try {
          body = JSON.parse(text);
        } catch {
          throw new HttpError(400, ErrorCode.general, '400: Bad Request (invalid JSON)');
        }
      }
      const injected = this.injected.find((i) => i.remaining > 0 && i.method === method && i.path.test(path));
      if (window.count >= this.routeLimit.limit) {
        // Over the bucket's limit: refused, and nothing is done (docs: rate limits).
        const after = (window.resetAt - Date.now()) / 1000;
        status = 429;
        payload = { message: 'You are being rate limited.', retry_after: after, global: false };
        headers = {
          'retry-after': String(Math.ceil(after)),
          'x-ratelimit-scope': 'user',
        };
      } else if (injected) {
        window.count += 1;
        injected.remaining -= 1;
        status = injected.status;
        payload = injected.body;
        headers = { ...injected.headers };
      } else {
        window.count += 1;
        const out = this.route(method, path, body, authorization, Object.fromEntries(url.searchParams));
        status = out.status;
        payload = out.body;
      }
    } catch (e) {
      if (e instanceof HttpError) {
        status = e.status;
        payload = { message: e.message, code: e.code, ...(e.errors ? { errors: e.errors } : {}) };
      } else {
        status = 500;
        payload = { message: `fake discord fault: ${(e as Error).message}`, code: 0 };
      }
    }
    // A global 429 carries no per-route headers; every other response carries its bucket's.
    if (headers['x-ratelimit-global'] === undefined) {
      res.setHeader('x-ratelimit-bucket', hash);
      if (!headers['x-ratelimit-limit']) {
        const left = Math.max(0, window.resetAt - Date.now());
        res.setHeader('x-ratelimit-limit', String(this.routeLimit.limit));
        res.setHeader('x-ratelimit-remaining', String(Math.max(0, this.routeLimit.limit - window.count)));
        res.setHeader('x-ratelimit-reset-after', (left / 1000).toFixed(3));
        res.setHeader('x-ratelimit-reset', (window.resetAt / 1000).toFixed(3));
      }
    }
    const hold = this.holds.find((h) => h.remaining > 0 && h.method === method && h.path.test(path));
    if (hold) hold.remaining -= 1;
    const call: RestCall = {
      index: this.calls.length,
      method,
      path,
      query: Object.fromEntries(url.searchParams),
      body,
      authorization,
      status,
      response: payload,
      at: Date.now(),
    };
    this.calls.push(call);
    if (hold) {
      // Taken effect and recorded; the answer waits (a client that gives up closes the request).
      res.once('close', () => {
        if (res.writableEnded) return;
        hold.abandoned += 1;
        hold.changes.emit('change');
      });
      this.events.emit('request', call);
      hold.arrived += 1;
      hold.changes.emit('change');
      await hold.gate;
    }
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    if (status === 204 || payload === null) {
      res.writeHead(status === 200 ? 204 : status);
      res.end();
    } else {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    }
    if (!hold) this.events.emit('request', call);
  }

  /** The current window of a rate-limit bucket (a new one once the last has passed). */
  private bucketWindow(key: string): { count: number; resetAt: number } {
    const now = Date.now();
    const current = this.buckets.get(key);
    if (current && now < current.resetAt) return current;
    const fresh = { count: 0, resetAt: now + this.routeLimit.windowMs };
    this.buckets.set(key, fresh);
    return fresh;
  }

  private requireBot(authorization: string | undefined): void {
    if (this.tokenReset || authorization !== `Bot ${this.token}`)
      throw new HttpError(401, ErrorCode.general, '401: Unauthorized');
  }

  private parse<T>(schema: z.ZodType<T>, body: unknown): T {
    const result = schema.safeParse(body);
    if (!result.success) {
      throw new HttpError(400, ErrorCode.invalidFormBody, 'Invalid Form Body', flatten(result.error.issues));
    }
    return result.data;
  }

  private route(
    method: string,
    path: string,
    body: unknown,
    authorization: string | undefined,
    query: Record<string, string>,
  ): { status: number; body: unknown } {
    const m = (re: RegExp) => re.exec(path);

    // Interaction callbacks and interaction webhooks authenticate with the interaction token.
    const callback = m(/^\/interactions\/(\d+)\/([^/]+)\/callback$/);
    if (callback && method === 'POST') {
      return this.callback(callback[1] ?? '', callback[2] ?? '', body, query);
    }
    const hook = m(/^\/webhooks\/(\d+)\/([^/]+)(?:\/messages\/(@original|\d+))?$/);
    if (hook) {
      return this.webhook(method, hook[1] ?? '', hook[2] ?? '', hook[3], body);
    }

    this.requireBot(authorization);
    if (path === '/gateway/bot' && method === 'GET') {
      const limit = this.sessionStartLimit();
      return {
        status: 200,
        body: {
          url: this.gatewayUrl,
          shards: 1,
          session_start_limit: {
            total: limit.total,
            remaining: limit.remaining,
            reset_after: Math.max(0, limit.resetAt - Date.now()),
            max_concurrency: 1,
          },
        },
      };
    }
    if (path === '/users/@me' && method === 'GET') return { status: 200, body: this.botUser };
    if ((path === '/applications/@me' || path === '/oauth2/applications/@me') && method === 'GET') {
      return {
        status: 200,
        body: {
          id: this.applicationId,
          name: 'Switchyard',
          icon: null,
          description: '',
          bot_public: false,
          bot_require_code_grant: false,
          verify_key: '0'.repeat(64),
          flags: 0,
          bot: this.botUser,
        },
      };
    }
    const cmds = m(/^\/applications\/(\d+)(?:\/guilds\/(\d+))?\/commands$/);
    if (cmds) {
      return this.commandsRoute(method, cmds[1] ?? '', cmds[2], body);
    }
    const channel = m(/^\/channels\/(\d+)$/);
    if (channel && method === 'GET') {
      const name = (Object.entries(this.channels) as [keyof FakeDiscord['channels'], string][]).find(
        ([, id]) => id === channel[1],
      )?.[0];
      if (name) return { status: 200, body: this.channelObject(name) };
      if (this.threads.has(channel[1] ?? ''))
        return { status: 200, body: this.threadObject(channel[1] ?? '') };
      throw new HttpError(404, ErrorCode.unknownChannel, 'Unknown Channel');
    }
    const messages = m(/^\/channels\/(\d+)\/messages(?:\/(\d+))?$/);
    if (messages) {
      return this.channelMessagesRoute(method, messages[1] ?? '', messages[2], body, query);
    }
    throw new HttpError(
      404,
      ErrorCode.general,
      `404: Not Found (${method} ${path} is not implemented by the fake)`,
    );
  }

  private commandsRoute(method: string, appId: string, guildId: string | undefined, body: unknown) {
    if (appId !== this.applicationId) throw new HttpError(403, 50001, 'Missing Access');
    if (guildId !== undefined && guildId !== this.guildId)
      throw new HttpError(404, ErrorCode.unknownGuild, 'Unknown Guild');
    const key = guildId ?? 'global';
    if (method === 'GET') return { status: 200, body: this.commands.get(key) ?? [] };
    if (method !== 'PUT') throw new HttpError(405, 0, '405: Method Not Allowed');
    const input = this.parse(bulkCommandsSchema, body);
    const names = input.map((c) => c.name);
    if (new Set(names).size !== names.length) {
      throw new HttpError(400, ErrorCode.invalidFormBody, 'Invalid Form Body', {
        _root: {
          _errors: [
            {
              code: 'APPLICATION_COMMANDS_DUPLICATE_NAME',
              message: 'Application command names must be unique',
            },
          ],
        },
      });
    }
    const previous = this.commands.get(key) ?? [];
    const stored: StoredCommand[] = input.map((c) => {
      const same = previous.find((p) => p.name === c.name);
      const unchanged = same !== undefined && JSON.stringify(stripMeta(same)) === JSON.stringify(c);
      return {
        ...c,
        id: same?.id ?? makeSnowflake(),
        application_id: this.applicationId,
        ...(guildId === undefined ? {} : { guild_id: guildId }),
        version: unchanged && same ? same.version : makeSnowflake(),
      };
    });
    this.commands.set(key, stored);
    return { status: 200, body: stored };
  }

  private channelMessagesRoute(
    method: string,
    channelId: string,
    messageId: string | undefined,
    body: unknown,
    query: Record<string, string>,
  ) {
    if (!Object.values(this.channels).includes(channelId) && !this.threads.has(channelId)) {
      throw new HttpError(404, ErrorCode.unknownChannel, 'Unknown Channel');
    }
    if (messageId === undefined) {
      if (method === 'GET') return { status: 200, body: this.listMessages(channelId, query) };
      if (method !== 'POST') throw new HttpError(405, 0, '405: Method Not Allowed');
      const parsed = this.parse(messageBodySchema, body);
      const fields = this.fromBody(parsed);
      const same = parsed.enforce_nonce === true ? this.sameNonce(parsed.nonce) : undefined;
      if (same) return { status: 200, body: this.messageObject(same) };
      const message = this.storeMessage(channelId, {
        author: this.botUser,
        ...fields,
        flags: fields.flags & 4,
        type: 0,
      });
      if (parsed.nonce !== undefined) {
        message.nonce = parsed.nonce;
        if (parsed.enforce_nonce === true) {
          const at = this.clock.now();
          this.nonces.set(this.nonceKey(parsed.nonce), { messageId: message.id, at });
        }
      }
      this.gateway.dispatch('MESSAGE_CREATE', this.messageObject(message));
      return { status: 200, body: this.messageObject(message) };
    }
    const message = this.messages.get(messageId);
    if (!message || message.channel_id !== channelId || (message.flags & MessageFlag.ephemeral) !== 0) {
      throw new HttpError(404, ErrorCode.unknownMessage, 'Unknown Message');
    }
    if (method === 'GET') return { status: 200, body: this.messageObject(message) };
    if (method === 'PATCH') {
      if (message.author.id !== this.botUser.id) {
        throw new HttpError(
          403,
          ErrorCode.cannotEditOthersMessage,
          'Cannot edit a message authored by another user',
        );
      }
      this.applyEdit(message, this.parse(messageBodySchema, body));
      this.gateway.dispatch('MESSAGE_UPDATE', this.messageObject(message));
      return { status: 200, body: this.messageObject(message) };
    }
    if (method === 'DELETE') {
      this.messages.delete(messageId);
      return { status: 204, body: null };
    }
    throw new HttpError(405, 0, '405: Method Not Allowed');
  }

  /** Nonces are unique per author: the bot is the only author creating messages over REST. */
  private nonceKey(nonce: string | number): string {
    return `${this.botUser.id}:${String(nonce)}`;
  }

  /**
   * The message the bot created with this nonce and `enforce_nonce` within the window, if it still
   * exists (what Discord answers for a deleted one is not documented: the fake creates anew).
   */
  private sameNonce(nonce: string | number | undefined): StoredMessage | undefined {
    if (nonce === undefined) return undefined;
    const seen = this.nonces.get(this.nonceKey(nonce));
    if (seen === undefined || this.clock.now() - seen.at >= NONCE_WINDOW_MS) return undefined;
    return this.messages.get(seen.messageId);
  }

  /**
   * `GET /channels/{id}/messages` (docs: resources/message#get-channel-messages): at most `limit`
   * messages, always newest first. With `after`, the `limit` messages right after that id (the oldest
   * ones after it), so a client pages forward by passing the newest id it got; with `before`, the
   * ones right before it; with `around`, about half on each side; with none, the newest.
   */
  private listMessages(channelId: string, query: Record<string, string>): Json[] {
    const q = this.parse(channelMessagesQuerySchema, query);
    const id = (m: StoredMessage) => BigInt(m.id);
    const all = this.channelMessages(channelId).sort((a, b) => (id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0));
    let page: StoredMessage[];
    if (q.after !== undefined) {
      const after = BigInt(q.after);
      page = all.filter((m) => id(m) > after).slice(0, q.limit);
    } else if (q.before !== undefined) {
      const before = BigInt(q.before);
      page = all.filter((m) => id(m) < before).slice(-q.limit);
    } else if (q.around !== undefined) {
      const around = BigInt(q.around);
      const at = all.filter((m) => id(m) < around).length;
      const start = Math.max(0, at - Math.floor(q.limit / 2));
      page = all.slice(start, start + q.limit);
    } else {
      page = all.slice(-q.limit);
    }
    return page.reverse().map((m) => this.messageObject(m));
  }

  private callback(id: string, token: string, body: unknown, query: Record<string, string>) {
    const interaction = this.interactions.get(id);
    if (!interaction || interaction.token !== token) {
      throw new HttpError(404, ErrorCode.unknownInteraction, 'Unknown interaction');
    }
    if (interaction.callback) {
      throw new HttpError(400, ErrorCode.alreadyAcknowledged, 'Interaction has already been acknowledged.');
    }
    if (Date.now() - interaction.createdAt > this.deadlineMs) {
      throw new HttpError(404, ErrorCode.unknownInteraction, 'Unknown interaction');
    }
    const cb = this.parse(callbackSchema, body);
    const isComponent = interaction.type === InteractionType.messageComponent;
    const allowed: Record<number, readonly number[]> = {
      [InteractionType.applicationCommand]: [
        CallbackType.channelMessageWithSource,
        CallbackType.deferredChannelMessageWithSource,
        CallbackType.modal,
      ],
      [InteractionType.messageComponent]: [
        CallbackType.channelMessageWithSource,
        CallbackType.deferredChannelMessageWithSource,
        CallbackType.deferredUpdateMessage,
        CallbackType.updateMessage,
        CallbackType.modal,
      ],
      [InteractionType.autocomplete]: [CallbackType.autocompleteResult],
    };
    if (!(allowed[interaction.type] ?? []).includes(cb.type)) {
      throw new HttpError(
        400,
        ErrorCode.invalidFormBody,
        `Interaction callback type ${cb.type} is not valid here`,
      );
    }
    const channelId = String(interaction.payload.channel_id);
    let resource: Json | undefined;
    switch (cb.type) {
      case CallbackType.channelMessageWithSource: {
        const fields = this.fromBody(cb.data);
        const message = this.storeMessage(channelId, {
          author: this.botUser,
          ...fields,
          type: isComponent ? 19 : 20,
          webhook: true,
        });
        interaction.originalId = message.id;
        resource = this.messageObject(message);
        break;
      }
      case CallbackType.deferredChannelMessageWithSource: {
        const ephemeral = ((cb.data?.flags ?? 0) & MessageFlag.ephemeral) !== 0;
        const message = this.storeMessage(channelId, {
          author: this.botUser,
          content: '',
          embeds: [],
          components: [],
          flags: MessageFlag.loading | (ephemeral ? MessageFlag.ephemeral : 0),
          type: isComponent ? 19 : 20,
          webhook: true,
        });
        interaction.originalId = message.id;
        resource = this.messageObject(message);
        break;
      }
      case CallbackType.updateMessage: {
        const target =
          interaction.messageId === undefined ? undefined : this.messages.get(interaction.messageId);
        if (!target) throw new HttpError(404, ErrorCode.unknownMessage, 'Unknown Message');
        this.applyEdit(target, cb.data);
        resource = this.messageObject(target);
        break;
      }
      case CallbackType.pong:
      case CallbackType.deferredUpdateMessage:
      case CallbackType.autocompleteResult:
      case CallbackType.modal:
        break;
    }
    interaction.callback = cb;
    interaction.respondedAt = Date.now();
    if (query.with_response === 'true') {
      return {
        status: 200,
        body: {
          interaction: {
            id: interaction.id,
            type: interaction.type,
            activity_instance_id: null,
            response_message_id: resource?.id ?? null,
            response_message_loading: cb.type === CallbackType.deferredChannelMessageWithSource,
            response_message_ephemeral:
              (((resource?.flags as number | undefined) ?? 0) & MessageFlag.ephemeral) !== 0,
          },
          ...(resource ? { resource: { type: cb.type, message: resource } } : {}),
        },
      };
    }
    return { status: 204, body: null };
  }

  private webhook(
    method: string,
    appId: string,
    token: string,
    messageRef: string | undefined,
    body: unknown,
  ) {
    const interaction = [...this.interactions.values()].find((i) => i.token === token);
    if (appId !== this.applicationId || !interaction)
      throw new HttpError(404, ErrorCode.unknownWebhook, 'Unknown Webhook');
    if (interaction.expired) throw new HttpError(401, ErrorCode.invalidWebhookToken, 'Invalid Webhook Token');
    if (!interaction.callback) throw new HttpError(404, ErrorCode.unknownWebhook, 'Unknown Webhook');
    const channelId = String(interaction.payload.channel_id);
    if (messageRef === undefined) {
      if (method !== 'POST') throw new HttpError(405, 0, '405: Method Not Allowed');
      const fields = this.fromBody(this.parse(messageBodySchema, body));
      const message = this.storeMessage(channelId, {
        author: this.botUser,
        ...fields,
        type: 0,
        webhook: true,
      });
      return { status: 200, body: this.messageObject(message) };
    }
    const id =
      messageRef === '@original'
        ? (interaction.originalId ??
          (interaction.type === InteractionType.messageComponent ? interaction.messageId : undefined))
        : messageRef;
    const message = id === undefined ? undefined : this.messages.get(id);
    if (!message) throw new HttpError(404, ErrorCode.unknownMessage, 'Unknown Message');
    if (method === 'GET') return { status: 200, body: this.messageObject(message) };
    if (method === 'PATCH') {
      this.applyEdit(message, this.parse(messageBodySchema, body));
      return { status: 200, body: this.messageObject(message) };
    }
    if (method === 'DELETE') {
      this.messages.delete(message.id);
      return { status: 204, body: null };
    }
    throw new HttpError(405, 0, '405: Method Not Allowed');
  }
}

/**
 * The top-level resource a route's limit is counted per (docs: rate limits): a channel, a guild, a
 * webhook with its token; an interaction's callback is its own (Discord does not bucket callbacks
 * across interactions).
 */
function majorParameter(path: string): string {
  const resource =
    /^\/(?:channels|guilds)\/(\d+)/.exec(path)?.[1] ??
    /^\/webhooks\/(\d+\/[^/]+)/.exec(path)?.[1] ??
    /^\/interactions\/(\d+)\//.exec(path)?.[1];
  return resource ?? 'global';
}

function stripMeta(c: StoredCommand): Json {
  const { id: _id, application_id: _a, guild_id: _g, version: _v, ...rest } = c;
  return rest;
}

/** Starts a fake Discord on 127.0.0.1 (random port). Close it in afterEach/afterAll. */
export async function startFakeDiscord(opts: FakeDiscordOptions = {}): Promise<FakeDiscord> {
  return new FakeDiscord(opts).listen();
}
