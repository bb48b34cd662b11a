/**
 * Prometheus metrics (served at GET /metrics). One registry per process object so tests can create
 * isolated ones; names are part of the public contract.
 */
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

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
}

export function createMetrics(opts: { defaults?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaults) collectDefaultMetrics({ register: registry, prefix: 'switchyard_' });
  const registers = [registry];
  return {
    registry,
    commands: new Counter({
      name: 'switchyard_commands_total',
      help: 'Slash commands received, by surface, command and outcome.',
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
      help: 'Time from job start to verified traffic (or failure).',
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
  };
}
