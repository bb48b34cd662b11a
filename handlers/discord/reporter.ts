/**
 * The Discord side of the Reporter port (src/progress.ts): every progress snapshot of a switch job
 * edits the job's Discord channel messages in place (PATCH /channels/{id}/messages/{mid} with the bot
 * token, so updates keep working after the interaction token expires). Coalesced per message by
 * DiscordMessages (the newest state wins, the final state is always sent last); 429s are waited out
 * per `Retry-After`; failures are logged and counted, never thrown into the job.
 *
 * Like Slack's reporter, it never holds the job (or another surface) up for Discord: an intermediate
 * state returns as soon as it is queued on its message's lane, and a final state waits at most
 * `finalWaitMs` for Discord (the edit carries on in the background).
 */
import { type Clock, systemClock, within } from '../../src/clock.js';
import type { Logger } from '../../src/log.js';
import { silentLogger } from '../../src/log.js';
import type { MessageRef, Progress, Reporter } from '../../src/progress.js';
import { type DiscordMessage, renderDiscord } from '../../src/views/discord.js';
import { progressView } from '../../src/views/model.js';
import type { DiscordMessages } from './messages.js';

export interface DiscordReporterOptions {
  readonly messages: DiscordMessages;
  /** Progress → message; default: the shared progress view rendered for Discord. */
  readonly render?: (progress: Progress) => DiscordMessage;
  readonly logger?: Logger;
  readonly clock?: Clock;
  /**
   * Longest time `report` waits for a final state to reach Discord before returning to the job; the
   * edit itself carries on in the background (a slow or rate-limited Discord never holds a worker).
   */
  readonly finalWaitMs?: number;
}

/** Defaults (STYLE 6). */
export const discordReporterDefaults = {
  render: (progress: Progress): DiscordMessage => renderDiscord(progressView(progress)),
  logger: silentLogger,
  clock: systemClock,
  finalWaitMs: 10_000,
} as const satisfies Required<Pick<DiscordReporterOptions, 'render' | 'logger' | 'clock' | 'finalWaitMs'>>;

/** Edits a job's Discord messages through every step (see the module header). */
export class DiscordReporter implements Reporter {
  private readonly messages: DiscordMessages;
  private readonly render: (progress: Progress) => DiscordMessage;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly finalWaitMs: number;

  constructor(opts: DiscordReporterOptions) {
    this.messages = opts.messages;
    this.render = opts.render ?? discordReporterDefaults.render;
    this.logger = opts.logger ?? discordReporterDefaults.logger;
    this.clock = opts.clock ?? discordReporterDefaults.clock;
    this.finalWaitMs = opts.finalWaitMs ?? discordReporterDefaults.finalWaitMs;
  }

  /**
   * Queues an edit of every Discord message in `messages`. An intermediate state returns at once; a
   * final one (an `outcome` is set) resolves once every message shows it (or a newer state), was given
   * up on, or after `finalWaitMs`, whichever comes first. Never rejects.
   */
  async report(progress: Progress, messages: readonly MessageRef[]): Promise<void> {
    const refs = messages.filter((m) => m.surface === 'discord');
    if (refs.length === 0) return;
    let body: DiscordMessage;
    try {
      body = this.render(progress);
    } catch (e) {
      this.logger.error(
        { jobId: progress.jobId, err: (e as Error).message },
        'discord progress render failed',
      );
      return;
    }
    const final = progress.outcome !== undefined;
    // Queued synchronously, in report order: the lanes keep a job's states in order per message.
    const edits = refs.map((ref) =>
      this.messages.edit(ref.channel, ref.messageId, body, {
        kind: 'progress',
        at: progress.updatedAt,
        final,
      }),
    );
    if (!final) return;
    await within(
      this.clock,
      this.finalWaitMs,
      Promise.all(edits).then(() => undefined),
      undefined,
    );
  }

  /** Resolves when no edit of a Discord message is queued or in flight (shutdown, tests). */
  flush(): Promise<void> {
    return this.messages.flush();
  }
}
