/**
 * One Reporter over every connected chat surface: each job's message refs are routed to the surface
 * that posted them; a failing surface never fails the others (or the switch), and a slow one never
 * holds them up (see `compositeReporter`). A job's refs on a surface this process has no reporter for
 * are not edited by anyone else: that is logged, once per job and surface, saying how to fix it.
 */
import type { WebClient } from '@slack/web-api';
import { logReporter, unreportedWarning } from '../jobs/worker-main.js';
import { systemClock, within } from '../src/clock.js';
import type { Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { createMetrics, type Metrics } from '../src/metrics.js';
import type { MessageRef, Progress, Reporter, Surface } from '../src/progress.js';
import { duration } from './connection.js';
import { createDiscordRestBotFromConfig } from './discord/index.js';
import { slackFailure, slackStartupDefaults, slackTokenRejected } from './slack/app.js';
import { createReporterClient, SlackReporter } from './slack/reporter.js';

/** What gives a process a surface's reporter. */
const TOKEN_OF: Readonly<Record<Exclude<Surface, 'console'>, string>> = {
  slack: 'SLACK_BOT_TOKEN',
  discord: 'DISCORD_TOKEN',
};

/** The fix for a job's messages on `surface` that this process cannot edit. */
function fixFor(surface: Exclude<Surface, 'console'>, where: 'bot' | 'worker'): string {
  if (where === 'worker') return `Give this worker ${TOKEN_OF[surface]} (the bot's env vars)`;
  const token =
    surface === 'discord'
      ? 'DISCORD_TOKEN, with DISCORD_GATEWAY=off unless it is the one replica whose gateway is on,'
      : TOKEN_OF[surface];
  return `Give this process ${token} or run it with SWITCHYARD_WORKER=off, so that workers which have it run the switches`;
}

export interface CompositeReporterOptions {
  /** Counts jobs whose messages on a surface could not be edited here (`progressUnreported`). */
  readonly metrics?: Pick<Metrics, 'progressUnreported'>;
  /** Which process this is, for the fix the warning names: a bot process (default) or `npm run worker`. */
  readonly process?: 'bot' | 'worker';
}

/**
 * Routes each state to every surface's reporter, each surface on its own: a surface gets a job's
 * states in order (the next after its previous report settled), without waiting for any other
 * surface. An intermediate state resolves as soon as it is handed on (the job's next state never
 * waits for a chat surface); a final state resolves once every surface settled it — each reporter
 * bounds that wait itself (`finalWaitMs`), so the slowest surface costs the job at most its own
 * bound, while the others' messages already show the end. Failures are logged, never thrown.
 */
export function compositeReporter(
  reporters: Partial<Record<Surface, Reporter>>,
  logger: Logger,
  opts: CompositeReporterOptions = {},
): Reporter {
  /** Per surface and job: the last report handed to that surface (a surface's states stay in order). */
  const tails = new Map<string, Promise<void>>();
  /**
   * A job's messages on a surface this process has no reporter for: the worker running a job is the
   * only process that edits its Slack and Discord messages (docs/jobs.md, "Scaling out"), so they
   * would stay on their last view without a word.
   */
  const unreported = unreportedWarning(
    logger,
    opts.metrics,
    (surface, progress) =>
      `this worker cannot edit the ${surface} messages of job ${progress.jobId}: it has no ${surface} reporter, and no other process edits them, so they stay on their last view. ${fixFor(surface, opts.process ?? 'bot')}`,
  );
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
        else unreported(surface, progress, refs);
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

/**
 * `npm run worker`'s check of SLACK_BOT_TOKEN, as the bot's start-up makes it: `auth.test`, classified
 * by the bot's `slackFailure`, waiting `waitMs` at most. A token Slack rejects is a ConfigError naming
 * SLACK_BOT_TOKEN; a Slack that cannot be reached or does not answer in time is logged and start-up goes
 * on (switches must run during a chat outage; their edits are tried when they come).
 */
async function checkSlackToken(
  client: WebClient,
  logger: Logger,
  waitMs: number,
  stopped: Promise<'stopped'>,
): Promise<void> {
  const checked = client.auth.test().then(
    () => ({ ok: true }) as const,
    (e: unknown) => ({ ok: false, failure: slackFailure(e) }) as const,
  );
  // Real time, not an injected clock: this bounds a wait on the network.
  const answer = await within(systemClock, waitMs, Promise.race([checked, stopped]), undefined);
  if (answer === 'stopped') return; // shutting down: its answer no longer decides anything
  if (answer?.ok === true) {
    logger.info({ surface: 'slack' }, 'slack: bot token accepted');
    return;
  }
  if (answer?.failure.kind === 'rejected') throw slackTokenRejected('SLACK_BOT_TOKEN', answer.failure.code);
  const problem = answer === undefined ? `no answer within ${duration(waitMs)}` : answer.failure.code;
  logger.error(
    { surface: 'slack', problem },
    `slack: could not check SLACK_BOT_TOKEN (${problem}); the worker starts anyway, and its Slack edits go out when Slack answers`,
  );
}

/** Resolves once `signal` aborts (never without one). */
function aborted(signal: AbortSignal | undefined): Promise<'stopped'> {
  return new Promise((resolve) => {
    if (signal === undefined) return;
    if (signal.aborted) resolve('stopped');
    else signal.addEventListener('abort', () => resolve('stopped'), { once: true });
  });
}

/** How long `WorkerChat.start` waits for each chat service to answer its token check. */
export interface WorkerChatOptions {
  /** Slack's `auth.test` (default: the bot's `slackStartupDefaults.waitMs`). */
  readonly slackWaitMs?: number;
  /** Discord's `GET /users/@me` (default: the REST-only bot's, the gateway's `waitMs`). */
  readonly discordWaitMs?: number;
}

/** The Reporter of `npm run worker`, with the token checks of its start-up. */
export interface WorkerChat extends Reporter {
  /**
   * Checks every configured chat token as the bot process does at start-up (Slack `auth.test`,
   * Discord `GET /users/@me` as with DISCORD_GATEWAY=off): rejects with a ConfigError naming the
   * variable when a chat service rejects its token; a service that cannot be reached is logged and
   * start-up goes on. Once `signal` aborts (the process is told to stop), it resolves at once without
   * waiting for the answers, which are then dropped (a rejected token included): the caller checks
   * `signal` before going on.
   */
  start(signal?: AbortSignal): Promise<void>;
  /** Clears the Discord REST client's timers (edits still go out: `flush` runs after it). */
  stop(): Promise<void>;
}

/**
 * The chat reporters the configuration has credentials for, plus a log line per step (`npm run
 * worker`). Discord's is the REST-only bot's (a worker never opens a gateway session, whatever
 * DISCORD_GATEWAY says), the same one a bot process with DISCORD_GATEWAY=off gives its worker.
 * `start()` checks their tokens before the worker takes a job: without it, a token the chat service
 * rejects would leave every message of every switch this worker runs on its last view.
 */
export function chatReporters(
  config: Pick<Config, 'env'>,
  logger: Logger,
  metrics: Metrics = createMetrics(),
  opts: WorkerChatOptions = {},
): WorkerChat {
  const reporters: Partial<Record<Surface, Reporter>> = {};
  const env = config.env;
  const slackClient = env.SLACK_BOT_TOKEN
    ? createReporterClient(env.SLACK_BOT_TOKEN, env.SLACK_API_URL)
    : undefined;
  if (slackClient) reporters.slack = new SlackReporter({ client: slackClient, logger, metrics });
  const discord = createDiscordRestBotFromConfig(config, {
    logger,
    metrics,
    ...(opts.discordWaitMs === undefined ? {} : { startupWaitMs: opts.discordWaitMs }),
  });
  if (discord) reporters.discord = discord.reporter;
  const chat = compositeReporter(reporters, logger, { metrics, process: 'worker' });
  const log = logReporter(logger);
  return {
    async report(progress, messages) {
      await Promise.all([log.report(progress, messages), chat.report(progress, messages)]);
    },
    flush: () => chat.flush?.() ?? Promise.resolve(),
    async start(signal) {
      const stopped = aborted(signal);
      // Both at once: the first rejected token ends start-up without waiting for the other service.
      const checks = Promise.all([
        slackClient &&
          checkSlackToken(slackClient, logger, opts.slackWaitMs ?? slackStartupDefaults.waitMs, stopped),
        discord?.start(),
      ]);
      // A shutdown does not wait up to `waitMs` for a chat service that does not answer. The race
      // handles a later rejection of `checks` (a token rejected after the signal is not reported).
      await Promise.race([checks, stopped]);
    },
    stop: () => discord?.stop() ?? Promise.resolve(),
  };
}
