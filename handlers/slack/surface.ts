/**
 * The Slack surface for the composition root (handlers/app.ts): when `SLACK_BOT_TOKEN` is set, builds
 * the Slack app (HTTP mode on the shared server at `POST /slack/events`, or Socket Mode with
 * `SLACK_APP_TOKEN`) and hands back its progress Reporter, its ChatPoster (alert suggestions, notices)
 * and its lifecycle (start-up against Slack: handlers/slack/app.ts; then a one-time check of the allow
 * lists' user groups). Messages in watched channels (`alerts.watch.slack`) become alerts for the
 * AlertService. Add `slackSurface` to the `surfaceFactories` list to enable it.
 */
import { parseChatAlert } from '../../src/alerts/chat.js';
import { describeConnection, type SurfaceContext, type SurfaceFactory, type SurfaceHandle } from '../app.js';
import { startSlack } from './index.js';

/** Slack: the Bolt app when SLACK_BOT_TOKEN is set; undefined otherwise. */
export const slackSurface: SurfaceFactory = async (
  ctx: SurfaceContext,
): Promise<SurfaceHandle | undefined> => {
  const env = ctx.config.env;
  if (env.SLACK_BOT_TOKEN === undefined) return undefined;
  const surface = startSlack({
    botToken: env.SLACK_BOT_TOKEN,
    ...(env.SLACK_SIGNING_SECRET === undefined ? {} : { signingSecret: env.SLACK_SIGNING_SECRET }),
    ...(env.SLACK_APP_TOKEN === undefined ? {} : { appToken: env.SLACK_APP_TOKEN }),
    ...(env.SLACK_API_URL === undefined ? {} : { apiUrl: env.SLACK_API_URL }),
    redis: ctx.redis,
    keyPrefix: `${ctx.namespace}:`,
    flow: ctx.flow,
    chat: ctx.chat,
    config: ctx.config,
    http: ctx.http,
    metrics: ctx.metrics,
    logger: ctx.logger,
    clock: ctx.clock,
    onChannelMessage: async (message) => {
      const at = Math.round(Number(message.ts) * 1000);
      const alert = parseChatAlert(message.text, message.channel, 'slack', ctx.config, {
        ...(Number.isFinite(at) ? { at } : {}),
      });
      if (!alert) return;
      await ctx.alerts()?.handleChat([alert], {
        surface: 'slack',
        channel: message.channel,
        messageId: message.ts,
        // An alert posted as a reply: suggest in that thread (Slack threads hang off the parent's ts).
        ...(message.threadTs === undefined ? {} : { threadId: message.threadTs }),
      });
    },
  });
  return {
    surface: 'slack',
    reporter: surface.reporter,
    poster: surface.poster,
    // Checks SLACK_BOT_TOKEN with Slack (and connects, in Socket Mode): a token Slack rejects stops
    // start-up with a ConfigError naming it; an unreachable Slack does not (see handlers/slack/app.ts).
    start: async () => {
      await surface.slack.start();
      const status = surface.slack.status();
      ctx.logger.info(
        { mode: surface.slack.mode, slack: status.state },
        status.state === 'ready'
          ? 'slack surface ready'
          : 'slack surface ready; Slack not reached yet, retrying in the background',
      );
      // The allow lists' user groups, looked up once Slack accepted the token: a group Slack refuses
      // for good (a mistyped id, a plan without user groups, a missing scope) is logged as an error
      // naming its config key. In the background, and it stops nothing (see SlackSurface.checkGroups).
      // `ready()` rejects when Slack refuses the token only later (start-up went on while Slack could
      // not be reached): the surface is then `rejected` and SlackStartup has logged it, so there is no
      // group to check — and a rejection left unhandled would take the whole process down.
      void surface.slack.ready().then(
        () => surface.checkGroups(),
        () => undefined,
      );
    },
    stop: () => surface.stop(),
    connection: () => describeConnection(surface.slack.status()),
  };
};
