/**
 * Prometheus metrics (served at GET /metrics). One registry per process object so tests can create
 * isolated ones; names are part of the public contract.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  readonly commands: Counter<'surface' | 'command' | 'outcome'>;
  readonly clicks: Counter<'surface' | 'action' | 'outcome'>;
  readonly jobs: Counter<'action' | 'outcome'>;
  readonly switchDuration: Histogram<'action' | 'outcome'>;
  readonly alerts: Counter<'source' | 'outcome'>;
  readonly chatApiErrors: Counter<'surface' | 'method' | 'code'>;
  readonly notices: Counter<'surface' | 'kind'>;
  readonly noticesFailed: Counter<'surface' | 'kind'>;
  readonly progressUnreported: Counter<'surface'>;
  /** Set by whoever serves /metrics from the switch queue just before each scrape (handlers/app.ts). */
  readonly switchesWaiting: Gauge<'state'>;
}

/**
 * The `outcome` label of `switchyard_commands_total`: one value per event, the same on every surface
 * (Slack, Discord, the console), so a dashboard or alert summing by outcome does not depend on where a
 * command was typed. Not every surface can meet every event (only Slack acks before it works, so only
 * Slack can be busy).
 */
export const CommandOutcome = {
  /** A plan's confirmation was posted to the channel (/rollback, /promote). */
  planned: 'planned',
  /** A listing was posted to the channel (/deployments). */
  listed: 'listed',
  /** Bad or missing arguments: the usage was shown to the person who typed it only. */
  usage: 'usage',
  /** Refused (not allowed, an unknown environment or deployment, nothing to do, an unknown command): shown to them only. */
  refused: 'refused',
  /** The reply could not be posted in the channel (the bot may not post there). */
  notPosted: 'not_posted',
  /** The surface could not read the command it received (a malformed payload). */
  invalid: 'invalid',
  /** Too much work under way: they were asked to try again. */
  busy: 'busy',
  /** Failed (Redis or the platform unreachable, an unexpected error): they were told nothing was done. */
  error: 'error',
} as const;
export type CommandOutcome = (typeof CommandOutcome)[keyof typeof CommandOutcome];

/**
 * The outcome of a command ChatService answered (src/chat.ts `ChatReply`) once the surface showed the
 * reply: a channel message is a plan's confirmation (it has a plan id) or a listing; an ephemeral one is
 * the usage or a refusal.
 */
export function commandReplyOutcome(reply: {
  readonly visibility: 'channel' | 'ephemeral';
  readonly planId?: string;
  readonly view: { readonly kind: string };
}): CommandOutcome {
  if (reply.visibility === 'ephemeral')
    return reply.view.kind === 'usage' ? CommandOutcome.usage : CommandOutcome.refused;
  return reply.planId === undefined ? CommandOutcome.listed : CommandOutcome.planned;
}

export function createMetrics(opts: { defaults?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaults) collectDefaultMetrics({ register: registry, prefix: 'switchyard_' });
  const registers = [registry];
  return {
    registry,
    commands: new Counter({
      name: 'switchyard_commands_total',
      help: 'Slash commands received, by surface, command and outcome (planned, listed, usage, refused, not_posted, invalid, busy, error).',
      labelNames: ['surface', 'command', 'outcome'],
      registers,
    }),
    clicks: new Counter({
      name: 'switchyard_clicks_total',
      help: 'Button clicks, by surface, action and outcome.',
      labelNames: ['surface', 'action', 'outcome'],
      registers,
    }),
    jobs: new Counter({
      name: 'switchyard_jobs_total',
      help: 'Switch jobs finished, by action and outcome.',
      labelNames: ['action', 'outcome'],
      registers,
    }),
    switchDuration: new Histogram({
      name: 'switchyard_switch_duration_seconds',
      help: 'Time from a worker first taking the switch job (its first attempt) to verified traffic (or the failure), across every attempt.',
      labelNames: ['action', 'outcome'],
      buckets: [0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300],
      registers,
    }),
    alerts: new Counter({
      name: 'switchyard_alerts_total',
      help: 'Alerts received, by source and outcome (suggested, deduplicated, grouped, dismissed, unmapped, outside_window, no_correlation, linked_job, resolved, resolved_unknown, ignored, refused, no_destination, failed, invalid).',
      labelNames: ['source', 'outcome'],
      registers,
    }),
    chatApiErrors: new Counter({
      name: 'switchyard_chat_api_errors_total',
      help: 'Errors from the Slack and Discord APIs, by surface, method and error code.',
      labelNames: ['surface', 'method', 'code'],
      registers,
    }),
    notices: new Counter({
      name: 'switchyard_notices_total',
      help: 'Deployment notices posted, by surface and kind.',
      labelNames: ['surface', 'kind'],
      registers,
    }),
    noticesFailed: new Counter({
      name: 'switchyard_notices_failed_total',
      help: 'Deployment notices given up on a surface (refused, out of attempts, or not kept for a retry).',
      labelNames: ['surface', 'kind'],
      registers,
    }),
    progressUnreported: new Counter({
      name: 'switchyard_progress_unreported_total',
      help: 'Switch jobs whose messages on a surface a worker could not edit, having no reporter for that surface (its token is not set in that process); once per job and surface.',
      labelNames: ['surface'],
      registers,
    }),
    switchesWaiting: new Gauge({
      name: 'switchyard_switches_waiting',
      help: 'Confirmed switches no worker has started, by state (waiting: for a worker; delayed: for the backoff of a retry), and apart from them switches a worker took and parked behind another switch of the same environment (lock), read from the switch queue at each scrape; absent when the queue could not be read. Waiting switches that do not go down mean no worker takes them.',
      labelNames: ['state'],
      registers,
    }),
  };
}
