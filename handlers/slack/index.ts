/**
 * The Slack surface, assembled: `register(app, deps)` wires one file per command, action and event
 * (STYLE 7, Bolt's starter layout), and `startSlack(options)` builds everything a process needs — the
 * Bolt app on the shared HTTP server (or Socket Mode), the progress Reporter the switch worker takes,
 * and the user-group resolver for the allow lists (whose configured groups `checkGroups()` looks up
 * once at start, logging an error naming the config key for each group Slack refuses for good, and
 * where the fix is: the config for an unknown group id, the app, token or workspace otherwise).
 */
import type { App } from '@slack/bolt';
import { ChatService } from '../../src/chat.js';
import { type Clock, systemClock, within } from '../../src/clock.js';
import type { Config } from '../../src/config.js';
import type { Flow } from '../../src/flow.js';
import type { HttpServer } from '../../src/http.js';
import type { Logger } from '../../src/log.js';
import type { Metrics } from '../../src/metrics.js';
import { slackGroupsKey, UNKNOWN_GROUP_CODE } from '../../src/permissions.js';
import * as approve from './actions/approve.js';
import * as cancel from './actions/cancel.js';
import * as confirm from './actions/confirm.js';
import * as dismiss from './actions/dismiss.js';
import * as replan from './actions/replan.js';
import * as rows from './actions/rows.js';
import { createSlackApp, type SlackApp, type SlackAppOptions } from './app.js';
import * as deployments from './commands/deployments.js';
import * as promote from './commands/promote.js';
import * as rollback from './commands/rollback.js';
import type { ChannelMessage, SlackHandlerDeps } from './context.js';
import * as message from './events/message.js';
import { type GroupCheckProblem, UserGroupResolver } from './groups.js';
import { createPosterClient, SlackPoster } from './poster.js';
import { createReporterClient, SlackReporter } from './reporter.js';
import { WorkQueue } from './work.js';

/** How long `stop()` waits for Slack edits still queued (see `stop`). */
const SHUTDOWN_FLUSH_MS = 10_000;

export type { ChannelMessage, SlackHandlerDeps };

/** Registers every Slack command, action and event handler on `app`. */
export function register(app: App, deps: SlackHandlerDeps): void {
  rollback.register(app, deps);
  promote.register(app, deps);
  deployments.register(app, deps);
  confirm.register(app, deps);
  cancel.register(app, deps);
  approve.register(app, deps);
  replan.register(app, deps);
  dismiss.register(app, deps);
  rows.register(app, deps);
  message.register(app, deps);
}

/** The Slack user-group ids named by any environment's allow list. */
export function configuredGroups(config: Pick<Config, 'file'>): string[] {
  return [...groupKeys(config).keys()];
}

/** For each Slack user-group id named by an allow list, the config keys naming it. */
export function groupKeys(config: Pick<Config, 'file'>): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  for (const [env, settings] of Object.entries(config.file.environments)) {
    for (const g of settings.allow?.slack.groups ?? [])
      keys.set(g, [...(keys.get(g) ?? []), slackGroupsKey(env)]);
  }
  return keys;
}

export interface StartSlackOptions
  extends Pick<
    SlackAppOptions,
    | 'botToken'
    | 'signingSecret'
    | 'appToken'
    | 'apiUrl'
    | 'redis'
    | 'keyPrefix'
    | 'onDuplicateEvent'
    | 'callTimeoutMs'
  > {
  readonly flow: Flow;
  /** The process's ChatService (its hooks, e.g. closing a plan's other messages); default: a new one. */
  readonly chat?: ChatService;
  readonly config: Pick<Config, 'file'>;
  /** Shared HTTP server to mount `POST /slack/events` on (HTTP mode). */
  readonly http?: HttpServer;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly onChannelMessage?: (message: ChannelMessage) => Promise<void>;
  /**
   * Spacing of progress edits of one message (default 1 s). Slack's Tier 3 limit for `chat.update` is
   * per workspace: the reporter's shared budget (handlers/slack/reporter.ts) applies on top.
   */
  readonly progressIntervalMs?: number;
  /** After-ack tasks running at once (default 8). */
  readonly workConcurrency?: number;
}

/** A running Slack surface. */
export interface SlackSurface {
  readonly slack: SlackApp;
  /** Hand this to the switch worker (directly, or inside a composite reporter). */
  readonly reporter: SlackReporter;
  readonly groups: UserGroupResolver;
  /** Posts alert suggestions and notices (the ChatPoster port of src/chat-sinks.ts). */
  readonly poster: SlackPoster;
  /**
   * Looks up every user group the allow lists name, once (call it when Slack accepted the bot token),
   * and logs an error naming the config key for each one Slack refuses for good (`no_such_subteam`,
   * `plan_upgrade_required`, `missing_scope`, …). It stops nothing: such a group grants nothing and its
   * refusals say why, while people listed by user id keep working (a workspace moved to a plan without
   * user groups must not take the bot down). Returns what it found; never rejects.
   */
  checkGroups(): Promise<GroupCheckProblem[]>;
  /** Resolves when no after-ack work and no message edit is pending. */
  idle(): Promise<void>;
  /**
   * Waits for pending after-ack work (commands and clicks already acked), and for message edits up to
   * SHUTDOWN_FLUSH_MS, then stops Socket Mode if used.
   */
  stop(): Promise<void>;
}

/** Builds the Slack surface from configuration (see the module header). */
export function startSlack(opts: StartSlackOptions): SlackSurface {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger.child({ surface: 'slack' });
  const reporter = new SlackReporter({
    client: createReporterClient(opts.botToken, opts.apiUrl, opts.callTimeoutMs),
    clock,
    logger,
    metrics: opts.metrics,
    ...(opts.progressIntervalMs === undefined ? {} : { minIntervalMs: opts.progressIntervalMs }),
  });
  const work = new WorkQueue({
    logger,
    clock,
    ...(opts.workConcurrency === undefined ? {} : { concurrency: opts.workConcurrency }),
  });
  // Commands' and clicks' posts, alert suggestions and notices: fails fast on a 429, never re-sends.
  const posts = createPosterClient(opts.botToken, opts.apiUrl, opts.callTimeoutMs);
  // Ends the poster's waits between tries when the surface stops.
  const stopping = new AbortController();
  let groups: UserGroupResolver | undefined;
  const slack = createSlackApp(
    {
      botToken: opts.botToken,
      redis: opts.redis,
      logger,
      clock,
      ...(opts.signingSecret === undefined ? {} : { signingSecret: opts.signingSecret }),
      ...(opts.appToken === undefined ? {} : { appToken: opts.appToken }),
      ...(opts.apiUrl === undefined ? {} : { apiUrl: opts.apiUrl }),
      ...(opts.http === undefined ? {} : { http: opts.http }),
      ...(opts.keyPrefix === undefined ? {} : { keyPrefix: opts.keyPrefix }),
      ...(opts.onDuplicateEvent === undefined ? {} : { onDuplicateEvent: opts.onDuplicateEvent }),
      ...(opts.callTimeoutMs === undefined ? {} : { callTimeoutMs: opts.callTimeoutMs }),
    },
    (app) => {
      groups = new UserGroupResolver({
        client: app.client,
        groups: configuredGroups(opts.config),
        clock,
        logger,
        metrics: opts.metrics,
      });
      register(app, {
        chat: opts.chat ?? new ChatService({ flow: opts.flow, clock }),
        flow: opts.flow,
        reporter,
        groups,
        work,
        posts,
        metrics: opts.metrics,
        logger,
        ...(opts.onChannelMessage === undefined ? {} : { onChannelMessage: opts.onChannelMessage }),
      });
    },
  );
  if (groups === undefined) throw new Error('slack handlers were not registered');
  const resolver = groups;
  return {
    slack,
    reporter,
    groups: resolver,
    poster: new SlackPoster(posts, reporter, { clock, logger, signal: stopping.signal }),
    async checkGroups() {
      const problems = await resolver.check().catch((e: unknown) => {
        logger.warn({ err: e }, 'slack: could not check the configured user groups');
        return [];
      });
      const keys = groupKeys(opts.config);
      for (const p of problems) {
        if (!p.lasting) continue; // passing: logged by the resolver, asked again at the next click
        const named = keys.get(p.group) ?? [];
        // Only an id Slack does not know is the config's to fix; for any other code (a missing scope,
        // a rejected token, an admin setting) the id is right and the problem says where the fix is.
        const until =
          p.code === UNKNOWN_GROUP_CODE
            ? 'Until an operator fixes the config (SWITCHYARD_CONFIG)'
            : 'The group id is right, so correcting the config will not help; until that is done';
        logger.error(
          { key: named.join(', '), group: p.group, code: p.code },
          `slack: ${named.join(' and ')} ${named.length > 1 ? 'name' : 'names'} the user group ${p.group}, and Slack refuses to list its members (${p.code}: ${p.problem}). ` +
            `${until}, the group lets nobody act, and its members who are not listed by user id are refused.`,
        );
      }
      return problems;
    },
    async idle() {
      await work.idle();
      await reporter.flush();
    },
    async stop() {
      // Commands and clicks Slack was told are received are carried out (it will not send them again:
      // a click's enqueue must not be cut short). Edits still waiting on Slack's pacing (a long
      // Retry-After, many messages on the workspace budget: a click's own edit is tracked work too)
      // are waited for a while, not for good. A worker closing after this flushes its own within its
      // shutdown timeout. A suggestion or notice post waiting out a rate limit fails at once instead.
      stopping.abort();
      await work.tasksIdle();
      await within(
        clock,
        SHUTDOWN_FLUSH_MS,
        work.idle().then(() => reporter.flush()),
        undefined,
      );
      await slack.stop();
    },
  };
}
