/**
 * Channel messages owned by the bot: posting a confirmation and editing it afterwards with the bot
 * token (`POST /channels/{id}/messages`, `PATCH /channels/{id}/messages/{mid}`), never with an
 * interaction token, so edits keep working after the 15-minute interaction token expires.
 *
 * Edits go through one lane per message: while an edit is in flight the newest wanted state replaces
 * any queued one (coalescing), and progress always wins over a confirmation view — a click handler
 * that finishes after the job already reported progress must not paint "confirmed" over "switching".
 * Rate limits: discord.js waits out a 429 (it reads `Retry-After` and the bucket headers) before the
 * edit goes through; meanwhile newer states coalesce. A 5xx or a network fault it retries only three
 * times, at once (a blip of a few milliseconds uses them up), so a switch's final state that still
 * fails retryably is put back on its lane and tried again after growing pauses (`finalRetryMinMs`
 * doubling to `finalRetryMaxMs`), for up to `finalRetryForMs`: the message must not say "Switching…"
 * for good because Discord answered 502 for a moment. A newer state queued meanwhile replaces it.
 * Failures are logged and counted, never thrown into progress reporting or a click; only an edit made
 * with `rejectOnFailure` (the ChatPoster's `update`, handlers/surfaces.ts) rejects when it was given up.
 *
 * A re-send does not duplicate a post. discord.js sends a create again when its answer does not come
 * in time (`timeout`, 15 s) or is a 5xx, and Discord may have created the message all the same: the
 * channel would show two copies, and only the one whose answer came back would follow the switch (the
 * other keeps its first view for good). So every create carries a `nonce` with `enforce_nonce: true`
 * (Discord, Create Message: "checked for uniqueness in the past few minutes. If another message was
 * created by the same author with the same nonce, that message will be returned and no new message
 * will be created"): the re-sends of one `post` carry the same body, hence the same nonce, and get the
 * message the first one created. A caller that posts the same message again itself later (a notice's
 * retry) passes the same `key`, from which the same nonce is made. Beyond Discord's few minutes, a
 * re-send may still post a second copy.
 */
import { createHash, randomBytes } from 'node:crypto';
import { DiscordAPIError, type REST, Routes } from 'discord.js';
import { type Clock, systemClock } from '../../src/clock.js';
import { type Logger, silentLogger } from '../../src/log.js';
import type { Metrics } from '../../src/metrics.js';
import type { DiscordMessage } from '../../src/views/discord.js';

/** Which kind of state an edit shows. */
export type EditKind =
  /**
   * A confirmation view (pending, awaiting approval, enqueued, cancelled, stale…). `skipIf`, asked
   * right before it goes out, drops it when true: the job's progress (from a worker in another
   * process, which this lane cannot order against) has begun meanwhile. A guard that throws lets it go.
   */
  | { readonly kind: 'view'; readonly skipIf?: () => Promise<boolean> }
  /** A job's progress; `at` orders snapshots (Progress.updatedAt), `final` marks the end state. */
  | { readonly kind: 'progress'; readonly at: number; readonly final: boolean };

/** The REST body of a rendered message: API fields only (the renderer also carries discord.js options). */
function apiBody(m: DiscordMessage): Record<string, unknown> {
  return {
    ...(m.content === undefined ? {} : { content: m.content }),
    embeds: m.embeds,
    components: m.components,
    allowed_mentions: m.allowed_mentions,
  };
}

/**
 * The nonce of a message create (at most 25 characters, Discord's limit): made from `key` when the
 * caller names the logical post (the same key, the same nonce, whichever process sends it), else
 * random, so that two posts are never taken for one.
 */
export function discordNonce(key?: string): string {
  const bytes = key === undefined ? randomBytes(16) : createHash('sha256').update(key).digest();
  return bytes.toString('hex').slice(0, 25);
}

/** Messages whose edit ordering is remembered (a few per switch; far more than run at once). */
const MAX_LANES = 10_000;

/** Options of `DiscordMessages.edit`. */
export interface DiscordEditOptions {
  /**
   * Reject with the REST error when the edit (or the newer state that replaced it in the lane) failed,
   * instead of resolving. An edit dropped by the lane's ordering (the message shows progress) still
   * resolves. No retry is added here, even for a final state: discord.js REST already retries a 5xx or
   * a timed-out call (`retries`, 3 by default) and waits out a 429 before the error reaches the lane,
   * and the caller retries later by itself (a webhook sender on the 503, the notices' backoff), so it
   * hears of the failure at once.
   */
  readonly rejectOnFailure?: boolean;
}

/** A caller waiting for a state: `reject` only when it asked to hear of a failure. */
interface Waiter {
  readonly resolve: () => void;
  readonly reject?: (error: unknown) => void;
}

interface Pending {
  readonly body: DiscordMessage;
  readonly edit: EditKind;
  /**
   * A final progress state nobody asked to hear of the failure of (a job's end, not a ChatPoster's
   * `update`): retried after a retryable failure (see the module header).
   */
  readonly outlasts: boolean;
  /** Settled when this state (or a newer one that replaced it) was delivered or given up on. */
  readonly waiters: Waiter[];
  /** When Discord first failed this state retryably, and how many times since (its pauses grow). */
  failingSince?: number;
  failures?: number;
}

interface Lane {
  pending: Pending | undefined;
  running: boolean;
  /** A progress state was queued or shown: confirmation views no longer apply. */
  progressSeen: boolean;
  lastProgressAt: number;
  /** `at` of the newest final state queued: a non-final state no newer than it never replaces it. */
  finalAt: number | undefined;
}

export interface DiscordMessagesOptions {
  /** discord.js REST with the bot token set (the client's `client.rest`, or a standalone REST). */
  readonly rest: REST;
  readonly logger?: Logger;
  readonly metrics?: Pick<Metrics, 'chatApiErrors'>;
  /** What the pauses between tries of a final state are waited on. */
  readonly clock?: Clock;
  /** The first pause before a final state that failed retryably is tried again; it doubles from there. */
  readonly finalRetryMinMs?: number;
  /** The longest pause between two tries of a final state. */
  readonly finalRetryMaxMs?: number;
  /**
   * How long a final state is tried again, counted from its first retryable failure: the try after
   * that gives it up (logged and counted).
   */
  readonly finalRetryForMs?: number;
}

/** Defaults (STYLE 6). */
export const discordMessagesDefaults = {
  clock: systemClock,
  // A blip (the usual 502 of an incident) is over within a second or two; a longer outage is tried
  // about once a minute, not in a storm, and its end noticed within a minute.
  finalRetryMinMs: 1000,
  finalRetryMaxMs: 60_000,
  // As long as Slack waits a final state out (handlers/slack/reporter.ts `finalRateLimitWaitMs`): a
  // dropped final state leaves the message saying the switch is still running, for good.
  finalRetryForMs: 30 * 60_000,
} as const satisfies Required<
  Pick<DiscordMessagesOptions, 'clock' | 'finalRetryMinMs' | 'finalRetryMaxMs' | 'finalRetryForMs'>
>;

/** The error code label for metrics: Discord's JSON code, the HTTP status, or the error name. */
export function discordErrorCode(e: unknown): string {
  if (e instanceof DiscordAPIError) return String(e.code);
  if (typeof e === 'object' && e !== null && 'status' in e) return String((e as { status: unknown }).status);
  return e instanceof Error ? e.name : 'unknown';
}

/**
 * Whether a failed Discord REST call may succeed later: a 5xx or 429 (after the REST client's own
 * retries), a timeout or a network fault. Discord's 4xx refusals (Missing Access, Unknown Channel,
 * invalid form body, …) are final.
 */
export function discordRetryable(e: unknown): boolean {
  // DiscordAPIError and the REST client's HTTPError both carry the HTTP status; a network fault none.
  const status = typeof e === 'object' && e !== null && 'status' in e ? e.status : undefined;
  return typeof status === 'number' ? status === 429 || status >= 500 : true;
}

/** Posts and edits bot-owned channel messages (see the module header). */
export class DiscordMessages {
  private readonly lanes = new Map<string, Lane>();
  /** Lanes with an edit queued or in flight, and who waits for there to be none (`flush`). */
  private running = 0;
  private readonly idle = new Set<() => void>();
  private readonly rest: REST;
  private readonly logger: Logger;
  private readonly metrics: Pick<Metrics, 'chatApiErrors'> | undefined;
  private readonly clock: Clock;
  private readonly finalRetryMinMs: number;
  private readonly finalRetryMaxMs: number;
  private readonly finalRetryForMs: number;

  constructor(opts: DiscordMessagesOptions) {
    this.rest = opts.rest;
    this.logger = opts.logger ?? silentLogger;
    this.metrics = opts.metrics;
    this.clock = opts.clock ?? discordMessagesDefaults.clock;
    this.finalRetryMinMs = opts.finalRetryMinMs ?? discordMessagesDefaults.finalRetryMinMs;
    this.finalRetryMaxMs = opts.finalRetryMaxMs ?? discordMessagesDefaults.finalRetryMaxMs;
    this.finalRetryForMs = opts.finalRetryForMs ?? discordMessagesDefaults.finalRetryForMs;
  }

  /**
   * Posts a message in a channel as the bot; resolves with its id. Throws DiscordAPIError on refusal.
   * `replyTo` makes it a reply to that message of the same channel (Discord `message_reference`);
   * when the message is gone by then, it is posted as a plain channel message instead. `key` names
   * the logical post: a post made again with the same key within Discord's nonce window (a few
   * minutes) resolves with the message an earlier one created instead of posting another (see the
   * module header); without it, only discord.js's own re-sends of this call are covered.
   */
  async post(
    channelId: string,
    body: DiscordMessage,
    opts: { readonly replyTo?: string; readonly key?: string } = {},
  ): Promise<{ readonly id: string }> {
    const reference =
      opts.replyTo === undefined
        ? {}
        : {
            message_reference: {
              message_id: opts.replyTo,
              channel_id: channelId,
              fail_if_not_exists: false,
            },
          };
    try {
      const created = (await this.rest.post(Routes.channelMessages(channelId), {
        body: { ...apiBody(body), ...reference, nonce: discordNonce(opts.key), enforce_nonce: true },
      })) as { id: string };
      return { id: created.id };
    } catch (e) {
      this.count('channels.messages.create', e);
      throw e;
    }
  }

  /**
   * Edits a bot message to `body` (coalesced, ordered as described in the module header). Resolves
   * at once when the lane drops it (a view once progress was shown, an older snapshot, a non-final
   * state after the final one), else when this state, or a newer one that replaced it, was delivered
   * or given up on. Never rejects, unless `rejectOnFailure` is set: then a given-up edit rejects with
   * the REST error (`discordRetryable` classifies it).
   */
  edit(
    channelId: string,
    messageId: string,
    body: DiscordMessage,
    edit: EditKind,
    opts: DiscordEditOptions = {},
  ): Promise<void> {
    const key = `${channelId}/${messageId}`;
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = {
        pending: undefined,
        running: false,
        progressSeen: false,
        lastProgressAt: 0,
        finalAt: undefined,
      };
      this.lanes.set(key, lane);
    }
    if (edit.kind === 'view' && lane.progressSeen) return Promise.resolve();
    if (edit.kind === 'progress') {
      if (edit.at < lane.lastProgressAt) return Promise.resolve();
      if (!edit.final && lane.finalAt !== undefined && edit.at <= lane.finalAt) return Promise.resolve();
      lane.progressSeen = true;
      lane.lastProgressAt = edit.at;
      if (edit.final) lane.finalAt = edit.at;
    }
    const waiters = lane.pending?.waiters ?? [];
    const done = new Promise<void>((resolve, reject) =>
      waiters.push(opts.rejectOnFailure === true ? { resolve, reject } : { resolve }),
    );
    const outlasts = edit.kind === 'progress' && edit.final && opts.rejectOnFailure !== true;
    lane.pending = { body, edit, outlasts, waiters };
    if (!lane.running) void this.drain(key, lane, channelId, messageId);
    return done;
  }

  /** Resolves when no edit is queued or in flight (shutdown, tests). */
  flush(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.add(resolve));
  }

  /** Whether a final progress state of this message was queued or delivered here. */
  isFinal(channelId: string, messageId: string): boolean {
    return this.lanes.get(`${channelId}/${messageId}`)?.finalAt !== undefined;
  }

  private async drain(key: string, lane: Lane, channelId: string, messageId: string): Promise<void> {
    lane.running = true;
    this.running += 1;
    try {
      for (;;) {
        const next = lane.pending;
        if (next === undefined) break;
        lane.pending = undefined;
        const guard = next.edit.kind === 'view' ? next.edit.skipIf : undefined;
        if (guard !== undefined && (await guard().catch(() => false))) {
          // Superseded (its guard says so): a newer state queued during the check carries on.
          const newer = lane.pending as Pending | undefined;
          if (newer) newer.waiters.push(...next.waiters);
          else for (const w of next.waiters) w.resolve();
          continue;
        }
        try {
          await this.rest.patch(Routes.channelMessage(channelId, messageId), { body: apiBody(next.body) });
        } catch (e) {
          this.count('channels.messages.edit', e);
          const pauseMs = this.retryIn(next, e);
          this.logger.warn(
            {
              channelId,
              messageId,
              code: discordErrorCode(e),
              err: (e as Error).message,
              ...(pauseMs === undefined ? {} : { retryInMs: pauseMs, failures: next.failures }),
            },
            pauseMs !== undefined
              ? 'discord message edit failed; its final state is tried again'
              : next.failingSince === undefined
                ? 'discord message edit failed'
                : 'discord message edit failed; its final state is given up after retrying it',
          );
          if (pauseMs !== undefined) {
            // Put back unless a newer state arrived meanwhile (it carries the waiters, and goes after
            // the pause: Discord is failing now).
            const newer = lane.pending as Pending | undefined;
            if (newer) newer.waiters.push(...next.waiters);
            else lane.pending = next;
            await this.clock.sleep(pauseMs);
            continue;
          }
          // A newer state queued meanwhile replaces this one: a caller that hears of failures follows
          // its outcome (the message is to show that state now). The others resolve, as they always did.
          const newer = lane.pending as Pending | undefined;
          for (const w of next.waiters) {
            if (w.reject === undefined) w.resolve();
            else if (newer) newer.waiters.push(w);
            else w.reject(e);
          }
          continue;
        }
        for (const w of next.waiters) w.resolve();
      }
    } finally {
      lane.running = false;
      this.trim(key);
      this.running -= 1;
      if (this.running === 0) {
        for (const resolve of this.idle) resolve();
        this.idle.clear();
      }
    }
  }

  /**
   * The pause before a failed state is tried again, or undefined when it is given up: only a final
   * state that `outlasts` failures, after a failure that may pass (`discordRetryable`), and while it
   * has been failing for less than `finalRetryForMs`.
   */
  private retryIn(state: Pending, e: unknown): number | undefined {
    if (!state.outlasts || !discordRetryable(e)) return undefined;
    const now = this.clock.now();
    state.failingSince ??= now;
    if (now - state.failingSince >= this.finalRetryForMs) return undefined;
    state.failures = (state.failures ?? 0) + 1;
    return Math.min(this.finalRetryMinMs * 2 ** (state.failures - 1), this.finalRetryMaxMs);
  }

  /**
   * Bounds memory. A finished message's lane is kept (not deleted on completion) so that a late view
   * edit cannot paint over its final state; only the oldest idle lanes beyond the bound are dropped.
   */
  private trim(current: string): void {
    if (this.lanes.size <= MAX_LANES) return;
    for (const [key, lane] of this.lanes) {
      if (this.lanes.size <= MAX_LANES) break;
      if (key !== current && !lane.running && lane.pending === undefined) this.lanes.delete(key);
    }
  }

  private count(method: string, e: unknown): void {
    this.metrics?.chatApiErrors.inc({ surface: 'discord', method, code: discordErrorCode(e) });
  }
}
