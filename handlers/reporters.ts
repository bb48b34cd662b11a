/**
 * One Reporter over every connected chat surface: each job's message refs are routed to the surface
 * that posted them; a failing surface never fails the others (or the switch), and a slow one never
 * holds them up (see `compositeReporter`).
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

/**
 * Routes each state to every surface's reporter, each surface on its own: a surface gets a job's
 * states in order (the next after its previous report settled), without waiting for any other
 * surface. An intermediate state resolves as soon as it is handed on (the job's next state never
 * waits for a chat surface); a final state resolves once every surface settled it — each reporter
 * bounds that wait itself (`finalWaitMs`), so the slowest surface costs the job at most its own
 * bound, while the others' messages already show the end. Failures are logged, never thrown.
 */
export function compositeReporter(reporters: Partial<Record<Surface, Reporter>>, logger: Logger): Reporter {
  /** Per surface and job: the last report handed to that surface (a surface's states stay in order). */
  const tails = new Map<string, Promise<void>>();
  const send = (surface: Surface, reporter: Reporter, progress: Progress, refs: MessageRef[]) => {
    const key = `${surface}|${progress.jobId}`;
    const tail = (tails.get(key) ?? Promise.resolve())
      .then(() => reporter.report(progress, refs))
      .catch((e: unknown) =>
        logger.warn(
          { err: e, surface, jobId: progress.jobId, planId: progress.planId },
          'progress report failed',
        ),
      );
    tails.set(key, tail);
    void tail.then(() => {
      if (tails.get(key) === tail) tails.delete(key);
    });
    return tail;
  };
  return {
    async report(progress: Progress, messages: readonly MessageRef[]): Promise<void> {
      const bySurface = new Map<Surface, MessageRef[]>();
      for (const m of messages) bySurface.set(m.surface, [...(bySurface.get(m.surface) ?? []), m]);
      const sent: Promise<void>[] = [];
      for (const [surface, refs] of bySurface) {
        const reporter = reporters[surface];
        if (reporter) sent.push(send(surface, reporter, progress, refs));
      }
      if (progress.outcome === undefined) return;
      await Promise.all(sent);
    },
    async flush(): Promise<void> {
      // The states handed to a surface but not yet to its reporter first, then what each reporter holds.
      await Promise.all([...tails.values()]);
      await Promise.all(Object.values(reporters).map((r) => r.flush?.()));
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
    flush: () => chat.flush?.() ?? Promise.resolve(),
  };
}
