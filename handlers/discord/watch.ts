/**
 * Watched alert channels (`alerts.watch.discord`) without gaps. Discord delivers a message once, on
 * the gateway session that is connected when it is posted: a RESUME replays what the session missed,
 * but a NEW session (op 9 Invalid Session, a disconnect that could not be resumed, a Switchyard
 * restart) starts empty. So whenever a new session becomes ready, each watched channel is caught up
 * over REST — `GET /channels/{id}/messages?limit=100` and then `before=` the oldest read, page by
 * page back to the last seen id — and every message read back goes down the same path as a live one,
 * oldest first. Reading from the newest end means a gap larger than the bound keeps its newest
 * messages (the alerts that matter now), not its oldest.
 *
 * - The last seen message id of each watched channel is kept in Redis (`RedisWatchStore`), so a
 *   restart catches up too. On the very first start (no id yet) nothing is read back: history from
 *   before Switchyard watched the channel is not a fresh alert. The start is remembered instead.
 * - Bounded: only messages younger than `maxAgeMs` (30 minutes) and at most `maxPages` pages (500
 *   messages, the newest) per channel, so a long outage does not turn stale alerts into suggestions.
 * - Exactly once: a message is claimed by id (in this process, and in Redis for `claimTtlMs`) before
 *   it is handled, so the catch-up, a live delivery of the same message, a restart and a second
 *   replica never handle it twice. Live messages of a channel whose catch-up is due or running wait
 *   for it, so messages are handled in the order they were posted and the last seen id never jumps
 *   over messages not yet read back.
 * - A read-back that fails in a way that may pass (Discord's 5xx after discord.js's own three immediate
 *   retries, a 429, a network fault, Redis unreachable) is tried again after growing pauses
 *   (`retryMinMs` doubling to `retryMaxMs`) while the watch runs, for up to `maxAgeMs` from its first
 *   failure (by then what it missed is too old to read back anyway). The gap stays open meanwhile:
 *   live messages of the channel wait, so the last seen id does not move past messages not read back
 *   (a later catch-up would start after them). A refusal (403 Missing Access, 404 Unknown Channel) or
 *   a malformed answer is given up at once, logged.
 * - Threads of a watched channel (their messages are watched too) are not read back: only live.
 * - Only what someone posted is handled (`isContentMessage`), live or read back: Discord's own notices
 *   in a channel (a thread was created — its content is the thread's name —, a pin, a member joined, …)
 *   are not.
 *
 * Everything read from Discord is parsed with zod here; a failure is logged, never thrown.
 */
import { type Message, MessageType, type REST, Routes } from 'discord.js';
import { z } from 'zod';
import type { Clock } from '../../src/clock.js';
import type { Logger } from '../../src/log.js';
import type { RedisClient } from '../../src/redis.js';
import { discordRetryable } from './messages.js';

/** The text parts of an embed (what alert bots such as Alertmanager and Grafana post). */
export interface EmbedText {
  readonly title: string | null;
  readonly description: string | null;
  readonly fields: readonly { readonly name: string; readonly value: string }[];
}

/** A guild message from someone else, from the gateway or read back by a catch-up. */
export interface ChannelMessage {
  readonly id: string;
  /** Where it was posted (a thread's own id for a message in a thread). */
  readonly channelId: string;
  /** The channel whose watch covers it: a thread's parent channel, otherwise `channelId`. */
  readonly watchedAs: string;
  readonly authorId: string;
  readonly authorBot: boolean;
  readonly content: string;
  readonly embeds: readonly EmbedText[];
  /** Unix ms it was posted (from its snowflake). */
  readonly createdTimestamp: number;
  /** `gateway`: delivered live; `catch-up`: read back after a new gateway session. */
  readonly via: 'gateway' | 'catch-up';
}

/**
 * Message types that are something someone posted: Default (0) and Reply (19). Every other type is a
 * notice Discord writes itself (ThreadCreated 18, whose content is the thread's name; ChannelPinnedMessage
 * 6; UserJoin 7; …), never an alert.
 */
export const CONTENT_MESSAGE_TYPES: ReadonlySet<number> = new Set([MessageType.Default, MessageType.Reply]);

/** Whether a message of this type is content someone posted (see CONTENT_MESSAGE_TYPES). */
export function isContentMessage(type: number): boolean {
  return CONTENT_MESSAGE_TYPES.has(type);
}

const DISCORD_EPOCH = 1_420_070_400_000n;

/** The smallest snowflake of `ms` (docs: reference#snowflake-ids-in-pagination). */
export function snowflakeAt(ms: number): string {
  const since = BigInt(Math.floor(ms)) - DISCORD_EPOCH;
  return (since > 0n ? since << 22n : 0n).toString();
}

/** Unix ms a snowflake was made. */
export function snowflakeTime(id: string): number {
  return Number((BigInt(id) >> 22n) + DISCORD_EPOCH);
}

function newer(a: string, b: string): string {
  return BigInt(a) >= BigInt(b) ? a : b;
}

function byId(a: { id: string }, b: { id: string }): number {
  const x = BigInt(a.id);
  const y = BigInt(b.id);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A message from the gateway (discord.js has parsed it) as a ChannelMessage. */
export function gatewayMessage(message: Message<true>): ChannelMessage {
  const channel = message.channel;
  return {
    id: message.id,
    channelId: message.channelId,
    watchedAs: channel.isThread() ? (channel.parentId ?? message.channelId) : message.channelId,
    authorId: message.author.id,
    authorBot: message.author.bot,
    content: message.content,
    embeds: message.embeds.map((e) => ({
      title: e.title,
      description: e.description,
      fields: e.fields.map((f) => ({ name: f.name, value: f.value })),
    })),
    createdTimestamp: message.createdTimestamp,
    via: 'gateway',
  };
}

const snowflake = z.string().regex(/^(0|[1-9]\d{0,19})$/, 'expected a snowflake');

/** The fields of Discord's message object that Switchyard reads (others are ignored). */
const apiMessageSchema = z.object({
  id: snowflake,
  channel_id: snowflake,
  author: z.object({ id: snowflake, bot: z.boolean().optional() }),
  type: z.number().int(),
  content: z.string(),
  embeds: z
    .array(
      z.object({
        title: z.string().optional(),
        description: z.string().optional(),
        fields: z.array(z.object({ name: z.string(), value: z.string() })).optional(),
      }),
    )
    .optional(),
});

const withIdSchema = z.object({ id: snowflake });

/** Discord answered a read of channel messages with something that is not a page: not worth a retry. */
export class MalformedPageError extends Error {
  override readonly name = 'MalformedPageError';
}

/**
 * One page of `GET /channels/{id}/messages`: every id on it, and the messages that parsed and are
 * content (Discord's own notices are left out, not counted as malformed).
 */
export function parseMessagePage(
  raw: unknown,
  watchedAs: string,
): { readonly ids: string[]; readonly messages: ChannelMessage[]; readonly malformed: number } {
  const list = z.array(z.unknown()).safeParse(raw);
  if (!list.success)
    throw new MalformedPageError(`GET channel messages: expected an array (${list.error.message})`);
  const ids: string[] = [];
  const messages: ChannelMessage[] = [];
  let malformed = 0;
  for (const item of list.data) {
    const withId = withIdSchema.safeParse(item);
    if (withId.success) ids.push(withId.data.id);
    const parsed = apiMessageSchema.safeParse(item);
    if (!parsed.success) {
      malformed += 1;
      continue;
    }
    const m = parsed.data;
    if (!isContentMessage(m.type)) continue;
    messages.push({
      id: m.id,
      channelId: m.channel_id,
      watchedAs,
      authorId: m.author.id,
      authorBot: m.author.bot ?? false,
      content: m.content,
      embeds: (m.embeds ?? []).map((e) => ({
        title: e.title ?? null,
        description: e.description ?? null,
        fields: e.fields ?? [],
      })),
      createdTimestamp: snowflakeTime(m.id),
      via: 'catch-up',
    });
  }
  return { ids, messages: messages.sort(byId), malformed };
}

/** Where the watch remembers what it has seen. */
export interface WatchStore {
  /** The newest message id of `channelId` handled (or the moment watching began), if any. */
  lastSeen(channelId: string): Promise<string | undefined>;
  /** Moves the last seen id of `channelId` forward to `messageId` (never back). */
  advance(channelId: string, messageId: string): Promise<void>;
  /** True for the first claim of a message id within `ttlMs`; false when it was claimed already. */
  claim(messageId: string, ttlMs: number): Promise<boolean>;
}

/** In-process WatchStore (no Redis): catch-ups after a new session, but not after a restart. */
export class MemoryWatchStore implements WatchStore {
  private readonly last = new Map<string, string>();
  private readonly claimed = new Set<string>();

  constructor(private readonly capacity = 10_000) {}

  async lastSeen(channelId: string): Promise<string | undefined> {
    return this.last.get(channelId);
  }

  async advance(channelId: string, messageId: string): Promise<void> {
    const current = this.last.get(channelId);
    this.last.set(channelId, current === undefined ? messageId : newer(current, messageId));
  }

  async claim(messageId: string): Promise<boolean> {
    if (this.claimed.has(messageId)) return false;
    this.claimed.add(messageId);
    if (this.claimed.size > this.capacity) {
      const oldest = this.claimed.values().next();
      if (!oldest.done) this.claimed.delete(oldest.value);
    }
    return true;
  }
}

/** Sets KEYS[1] to ARGV[1] unless it already holds a snowflake at least as large (decimal strings). */
const ADVANCE = `
local current = redis.call('GET', KEYS[1])
local wanted = ARGV[1]
if current and (#current > #wanted or (#current == #wanted and current >= wanted)) then
  return 0
end
redis.call('SET', KEYS[1], wanted)
return 1
`;

/**
 * WatchStore in Redis: `<prefix>discord:watch:last:<channel>` (the last seen id, kept) and
 * `<prefix>discord:watch:msg:<message>` (a claim, expiring after `ttlMs`).
 */
export class RedisWatchStore implements WatchStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly keyPrefix = 'switchyard:',
  ) {}

  private lastKey(channelId: string): string {
    return `${this.keyPrefix}discord:watch:last:${channelId}`;
  }

  async lastSeen(channelId: string): Promise<string | undefined> {
    const value = await this.redis.get(this.lastKey(channelId));
    return value !== null && snowflake.safeParse(value).success ? value : undefined;
  }

  async advance(channelId: string, messageId: string): Promise<void> {
    await this.redis.eval(ADVANCE, 1, this.lastKey(channelId), messageId);
  }

  async claim(messageId: string, ttlMs: number): Promise<boolean> {
    const set = await this.redis.set(
      `${this.keyPrefix}discord:watch:msg:${messageId}`,
      '1',
      'PX',
      Math.max(1, Math.round(ttlMs)),
      'NX',
    );
    return set === 'OK';
  }
}

/** Options of the catch-up bounds (STYLE 6 defaults below). */
export interface ChannelWatchLimits {
  /** Messages older than this are not read back. */
  readonly maxAgeMs?: number;
  /** Pages of 100 read per channel and catch-up at most. */
  readonly maxPages?: number;
  /** How long a handled message id is remembered in the store (longer than `maxAgeMs`). */
  readonly claimTtlMs?: number;
  /** The first pause before a catch-up that failed retryably is tried again; it doubles from there. */
  readonly retryMinMs?: number;
  /** The longest pause between two tries of a catch-up. */
  readonly retryMaxMs?: number;
}

export const channelWatchDefaults = {
  maxAgeMs: 30 * 60_000,
  maxPages: 5,
  claimTtlMs: 2 * 3_600_000,
  // A blip (Discord's 502s during an incident) is over within a second or two: live messages of the
  // channel wait no longer than that for it; a longer outage is read about once a minute, not in a storm.
  retryMinMs: 1000,
  retryMaxMs: 60_000,
} as const satisfies Required<ChannelWatchLimits>;

/** Messages per page: the most Discord returns. */
export const PAGE_SIZE = 100;

export interface ChannelWatchOptions extends ChannelWatchLimits {
  /** Watched channel ids (`alerts.watch.discord`). */
  readonly channels: readonly string[];
  readonly rest: Pick<REST, 'get'>;
  readonly store: WatchStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Remembers ids already handled in this process (true the first time an id is offered). */
  readonly seen: { first(id: string): boolean };
  /** The bot's own user id (its messages are skipped), once known. */
  readonly botUserId: () => string | undefined;
  /** The message path (alert watching); failures are logged. */
  readonly handle: (message: ChannelMessage) => Promise<void>;
}

/** A watched channel whose catch-up is due or running; live messages of it wait for `done`. */
interface Gap {
  readonly done: Promise<void>;
  readonly close: () => void;
  running: boolean;
  /** Another new session began while it ran: read back once more. */
  again: boolean;
}

/** Live delivery plus catch-up of watched channels (see the module header). */
export class ChannelWatch {
  private readonly channels: ReadonlySet<string>;
  private readonly gaps = new Map<string, Gap>();
  private readonly limits: Required<ChannelWatchLimits>;
  /** Ends the pauses between tries of a catch-up when the watch stops. */
  private readonly stopping = new AbortController();
  /** Whether the watch stopped (`stop`). */
  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  constructor(private readonly opts: ChannelWatchOptions) {
    this.channels = new Set(opts.channels);
    this.limits = {
      maxAgeMs: opts.maxAgeMs ?? channelWatchDefaults.maxAgeMs,
      maxPages: opts.maxPages ?? channelWatchDefaults.maxPages,
      claimTtlMs: Math.max(
        opts.claimTtlMs ?? channelWatchDefaults.claimTtlMs,
        2 * (opts.maxAgeMs ?? channelWatchDefaults.maxAgeMs),
      ),
      retryMinMs: opts.retryMinMs ?? channelWatchDefaults.retryMinMs,
      retryMaxMs: opts.retryMaxMs ?? channelWatchDefaults.retryMaxMs,
    };
  }

  /** A new gateway session began (READY): every watched channel must be caught up before going on. */
  sessionStarted(): void {
    if (this.stopped) return;
    for (const channelId of this.channels) {
      const gap = this.gaps.get(channelId);
      if (gap) {
        gap.again = true;
        continue;
      }
      let close: () => void = () => undefined;
      const done = new Promise<void>((resolve) => {
        close = resolve;
      });
      this.gaps.set(channelId, { done, close, running: false, again: false });
    }
  }

  /** The session is usable (shard ready, or resumed): catches up every channel that needs it. */
  catchUp(): void {
    for (const [channelId, gap] of this.gaps) {
      if (gap.running) continue;
      gap.running = true;
      void this.runGap(channelId, gap);
    }
  }

  /** Handles a message from the gateway: after its channel's catch-up, and only once. */
  async live(message: ChannelMessage): Promise<void> {
    await this.gaps.get(message.channelId)?.done;
    await this.deliver(message);
  }

  /** Resolves once no watched channel has a catch-up due or running. */
  async settled(): Promise<void> {
    while (this.gaps.size > 0) await Promise.all([...this.gaps.values()].map((g) => g.done));
  }

  /** Stops reading back and handling; messages waiting for a catch-up are dropped. */
  stop(): void {
    this.stopping.abort();
    for (const gap of this.gaps.values()) gap.close();
    this.gaps.clear();
  }

  private async runGap(channelId: string, gap: Gap): Promise<void> {
    try {
      do {
        gap.again = false;
        await this.catchUpRetrying(channelId);
      } while (gap.again && !this.stopped);
    } finally {
      if (this.gaps.get(channelId) === gap) this.gaps.delete(channelId);
      gap.close();
    }
  }

  /**
   * One catch-up of a channel, tried again after growing pauses while it fails in a way that may pass,
   * the watch runs and its first failure is less than `maxAgeMs` ago (see the module header). The
   * caller keeps the channel's gap open until this returns. Never throws.
   */
  private async catchUpRetrying(channelId: string): Promise<void> {
    let failingSince: number | undefined;
    for (let failures = 1; !this.stopped; failures++) {
      try {
        await this.catchUpChannel(channelId);
        if (failingSince !== undefined)
          this.opts.logger.info(
            { channelId, failures: failures - 1 },
            'discord catch-up of a watched channel went through after failing',
          );
        return;
      } catch (e) {
        const now = this.opts.clock.now();
        failingSince ??= now;
        const retryable = !(e instanceof MalformedPageError) && discordRetryable(e);
        const log = { channelId, failures, err: (e as Error).message };
        if (!retryable || now - failingSince >= this.limits.maxAgeMs || this.stopped) {
          this.opts.logger.warn(
            log,
            'discord catch-up of a watched channel failed; alerts posted while disconnected may be missed',
          );
          return;
        }
        const retryInMs = Math.min(this.limits.retryMinMs * 2 ** (failures - 1), this.limits.retryMaxMs);
        this.opts.logger.warn(
          { ...log, retryInMs },
          'discord catch-up of a watched channel failed; trying again (live messages of the channel wait for it)',
        );
        try {
          await this.opts.clock.sleep(retryInMs, this.stopping.signal);
        } catch {
          return; // stopped
        }
      }
    }
  }

  private async catchUpChannel(channelId: string): Promise<void> {
    const now = this.opts.clock.now();
    const last = await this.opts.store.lastSeen(channelId);
    if (last === undefined) {
      // First start: remember it, so a later restart catches up from here; read no history.
      await this.opts.store.advance(channelId, snowflakeAt(now));
      this.opts.logger.info({ channelId }, 'discord watched channel: watching starts now');
      return;
    }
    // Everything newer than this is the gap: after the last message seen, and within the age bound.
    const floor = BigInt(newer(last, snowflakeAt(now - this.limits.maxAgeMs)));
    const gap: ChannelMessage[] = [];
    let before: string | undefined;
    for (let page = 1; !this.stopped; page++) {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (before !== undefined) query.set('before', before);
      const raw = await this.opts.rest.get(Routes.channelMessages(channelId), { query });
      const { ids, messages, malformed } = parseMessagePage(raw, channelId);
      if (malformed > 0)
        this.opts.logger.warn({ channelId, malformed }, 'discord catch-up skipped malformed messages');
      gap.push(...messages.filter((m) => BigInt(m.id) > floor));
      if (ids.length < PAGE_SIZE || ids.some((id) => BigInt(id) <= floor)) break; // reached the floor
      before = ids.reduce((a, b) => (BigInt(a) <= BigInt(b) ? a : b));
      if (page >= this.limits.maxPages) {
        this.opts.logger.warn(
          { channelId, pages: page, before },
          'discord catch-up stopped at its page limit; older messages of the gap are not read back',
        );
        break;
      }
    }
    let read = 0;
    for (const message of gap.sort(byId)) {
      if (this.stopped) return;
      await this.deliver(message);
      read += 1;
    }
    if (read > 0) this.opts.logger.info({ channelId, messages: read }, 'discord watched channel caught up');
  }

  /**
   * The one path of every message, live or read back: claim it once, remember it as the channel's
   * last seen message, then handle it. (Remembered first: once claimed it is never handled again
   * anyway, and so the cursor is current by the time the handler runs.)
   */
  private async deliver(message: ChannelMessage): Promise<void> {
    if (this.stopped || !this.opts.seen.first(message.id)) return;
    const watched = this.channels.has(message.watchedAs);
    const own = message.authorId === this.opts.botUserId();
    const handle = !own && (!watched || (await this.claim(message)));
    if (watched && message.channelId === message.watchedAs) {
      try {
        await this.opts.store.advance(message.channelId, message.id);
      } catch (e) {
        this.opts.logger.warn(
          { channelId: message.channelId, err: (e as Error).message },
          'discord watched channel: could not remember the last message seen',
        );
      }
    }
    if (!handle) return;
    try {
      await this.opts.handle(message);
    } catch (e) {
      this.opts.logger.error(
        { err: (e as Error).message, messageId: message.id },
        'discord message handler failed',
      );
    }
  }

  /** Claims a watched message across restarts and replicas; when the store fails, handles it anyway. */
  private async claim(message: ChannelMessage): Promise<boolean> {
    try {
      const first = await this.opts.store.claim(message.id, this.limits.claimTtlMs);
      if (!first)
        this.opts.logger.info(
          { messageId: message.id, via: message.via },
          'discord message already handled (by a catch-up, an earlier process or a replica); skipped',
        );
      return first;
    } catch (e) {
      this.opts.logger.warn(
        { messageId: message.id, err: (e as Error).message },
        'discord watched channel: could not claim a message; handling it anyway',
      );
      return true;
    }
  }
}
