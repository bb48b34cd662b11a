/**
 * Discord's budget of gateway session starts, kept so that Switchyard never spends it all. Every
 * IDENTIFY is a session start; a bot has `total` of them (1000 for most bots) per window of about a
 * day, and "upon hitting this limit… the bot token will be reset" (docs: gateway, session start limit)
 * — which would take Discord away until an operator puts a new token in. A loop of new sessions (a
 * gateway that drops every new session, zombied connections, a READY that never comes) would get there
 * in hours, so IDENTIFYs are counted and stop while only `reserve` are left, until the window renews.
 *
 * What is left comes from `GET /gateway/bot` (`session_start_limit`), which discord.js reads at every
 * login; between logins (discord.js identifying again by itself) the IDENTIFYs are counted here. The
 * reserve covers what this count cannot see: other processes using the same token (a second gateway
 * replica by mistake, a developer's bot) and an operator's restart once the window renews.
 */
import { SimpleIdentifyThrottler } from '@discordjs/ws';
import { z } from 'zod';
import type { Clock } from '../../src/clock.js';
import { formatTime, shortDuration } from '../../src/views/format.js';

/** `session_start_limit` of `GET /gateway/bot` (docs: gateway, session start limit object). */
export const sessionStartLimitSchema = z.object({
  total: z.number().int().nonnegative(),
  remaining: z.number().int().nonnegative(),
  /** Milliseconds until `remaining` is back to `total`. */
  reset_after: z.number().nonnegative(),
  /** IDENTIFYs allowed per 5 s. */
  max_concurrency: z.number().int().positive(),
});
export type SessionStartLimit = z.infer<typeof sessionStartLimitSchema>;

const gatewayBotSchema = z.object({ session_start_limit: sessionStartLimitSchema });

/** Why no IDENTIFY may be sent now, and when one may again. */
export interface SessionStartsSpent {
  readonly problem: string;
  /** Until the window renews (the earliest a new session may start). */
  readonly retryInMs: number;
}

/** Window length assumed after a renewal this process has not read from Discord yet. */
const WINDOW_MS = 24 * 60 * 60 * 1000;

export class SessionStartBudget {
  private known: { total: number; remaining: number; resetAt: number } | undefined;

  constructor(private readonly opts: { readonly reserve: number; readonly clock: Clock }) {}

  /** What Discord said (at a login). Until then nothing is known, and nothing is held back. */
  learn(limit: SessionStartLimit): void {
    const now = this.opts.clock.now();
    this.known = { total: limit.total, remaining: limit.remaining, resetAt: now + limit.reset_after };
  }

  /** Why no IDENTIFY may be sent now (only the reserve is left until the window renews), or undefined. */
  spent(): SessionStartsSpent | undefined {
    const known = this.known;
    if (!known) return undefined;
    const now = this.opts.clock.now();
    if (now >= known.resetAt) {
      // Renewed. The next login reads the new count; until then, count down from a full budget.
      known.remaining = known.total;
      known.resetAt = now + WINDOW_MS;
    }
    if (known.remaining > this.opts.reserve) return undefined;
    const retryInMs = known.resetAt - now;
    return {
      problem: `only ${known.remaining} of the bot's ${known.total} gateway session starts (IDENTIFY) are left until Discord renews them at ${formatTime(known.resetAt)} (in ${shortDuration(retryInMs)}), and Discord resets the bot token when none are left: Switchyard keeps them and starts no new session until then`,
      retryInMs,
    };
  }

  /** An IDENTIFY is being sent. */
  take(): void {
    if (this.known) this.known.remaining -= 1;
  }
}

/**
 * discord.js's identify throttle (IDENTIFYs spaced by `max_concurrency` per 5 s), behind the budget:
 * an IDENTIFY is sent only while the budget allows. When it does not, `onSpent` is told and the
 * IDENTIFY waits until the shard closes (the surface gives the client up), so none is sent. Learns the
 * budget from the gateway information the manager read at this login.
 */
export async function budgetedIdentifyThrottler(
  manager: { fetchGatewayInformation(): Promise<unknown> },
  budget: SessionStartBudget,
  onSpent: (spent: SessionStartsSpent) => void,
) {
  const info = gatewayBotSchema.safeParse(await manager.fetchGatewayInformation());
  // Discord always sends it; were it ever missing, the count kept so far still holds.
  if (info.success) budget.learn(info.data.session_start_limit);
  const throttle = new SimpleIdentifyThrottler(
    info.success ? info.data.session_start_limit.max_concurrency : 1,
  );
  const holdBack = (spent: SessionStartsSpent, signal: AbortSignal) => {
    onSpent(spent);
    return new Promise<never>((_, reject) => {
      if (signal.aborted) reject(signal.reason);
      else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  };
  return {
    async waitForIdentify(shardId: number, signal: AbortSignal): Promise<void> {
      // Checked before the throttle's wait too, so a spent budget is said at once, not 5 s later.
      const before = budget.spent();
      if (before) await holdBack(before, signal);
      await throttle.waitForIdentify(shardId, signal);
      const after = budget.spent();
      if (after) await holdBack(after, signal);
      budget.take();
    },
  };
}
