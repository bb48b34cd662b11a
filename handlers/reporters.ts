/**
 * One Reporter over every connected chat surface: each job's message refs are routed to the surface
 * that posted them; a failing surface never fails the others (or the switch).
 */
import { REST } from 'discord.js';
import { logReporter } from '../jobs/worker-main.js';
import type { Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { createMetrics } from '../src/metrics.js';
import type { MessageRef, Progress, Reporter, Surface } from '../src/progress.js';
import { DiscordMessages } from './discord/messages.js';
import { DiscordReporter } from './discord/reporter.js';
import { createReporterClient, SlackReporter } from './slack/reporter.js';

export function compositeReporter(reporters: Partial<Record<Surface, Reporter>>, logger: Logger): Reporter {
  return {
    async report(progress: Progress, messages: readonly MessageRef[]): Promise<void> {
      const bySurface = new Map<Surface, MessageRef[]>();
      for (const m of messages) bySurface.set(m.surface, [...(bySurface.get(m.surface) ?? []), m]);
      await Promise.all(
        [...bySurface].map(async ([surface, refs]) => {
          const reporter = reporters[surface];
          if (!reporter) return;
          try {
            await reporter.report(progress, refs);
          } catch (e) {
            logger.warn(
              { err: e, surface, jobId: progress.jobId, planId: progress.planId },
              'progress report failed',
            );
          }
        }),
      );
    },
  };
}

/** The chat reporters the configuration has credentials for, plus a log line per step. */
export function chatReporters(config: Pick<Config, 'env'>, logger: Logger): Reporter {
  const metrics = createMetrics();
  const reporters: Partial<Record<Surface, Reporter>> = {};
  const env = config.env;
  if (env.SLACK_BOT_TOKEN) {
    reporters.slack = new SlackReporter({
      client: createReporterClient(env.SLACK_BOT_TOKEN, env.SLACK_API_URL),
      logger,
      metrics,
    });
  }
  if (env.DISCORD_TOKEN) {
    const rest = new REST({
      version: '10',
      ...(env.DISCORD_API_URL ? { api: env.DISCORD_API_URL } : {}),
    }).setToken(env.DISCORD_TOKEN);
    reporters.discord = new DiscordReporter({
      messages: new DiscordMessages({ rest, logger, metrics }),
      logger,
    });
  }
  const chat = compositeReporter(reporters, logger);
  const log = logReporter(logger);
  return {
    async report(progress, messages) {
      await Promise.all([log.report(progress, messages), chat.report(progress, messages)]);
    },
  };
}
