/**
 * The Discord side of the Reporter port (src/progress.ts): every progress snapshot of a switch job
 * edits the job's Discord channel messages in place (PATCH /channels/{id}/messages/{mid} with the bot
 * token, so updates keep working after the interaction token expires). Coalesced per message by
 * DiscordMessages (the newest state wins, the final state is always sent last); 429s are waited out
 * per `Retry-After`; failures are logged and counted, never thrown into the job.
 */
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
}

/** Defaults (STYLE 6). */
export const discordReporterDefaults = {
  render: (progress: Progress): DiscordMessage => renderDiscord(progressView(progress)),
  logger: silentLogger,
} as const satisfies Required<Pick<DiscordReporterOptions, 'render' | 'logger'>>;

/** Edits a job's Discord messages through every step (see the module header). */
export class DiscordReporter implements Reporter {
  private readonly messages: DiscordMessages;
  private readonly render: (progress: Progress) => DiscordMessage;
  private readonly logger: Logger;

  constructor(opts: DiscordReporterOptions) {
    this.messages = opts.messages;
    this.render = opts.render ?? discordReporterDefaults.render;
    this.logger = opts.logger ?? discordReporterDefaults.logger;
  }

  /** Resolves once every Discord message shows this state (or a newer one), or gave up; never rejects. */
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
    await Promise.all(
      refs.map((ref) =>
        this.messages.edit(ref.channel, ref.messageId, body, {
          kind: 'progress',
          at: progress.updatedAt,
          final,
        }),
      ),
    );
  }
}
