import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  datadogTitle,
  parseAlertDelivery,
  parseAlertPayload,
  parseDatadogTags,
  shownValue,
} from '../../src/alerts/parsers.js';
import type { AlertSource, NormalizedAlert } from '../../src/alerts/types.js';

const NOW = Date.UTC(2026, 10, 29, 12, 30);
const fixtureDir = join(import.meta.dirname, '../fixtures/alerts');

function fixture(name: string): unknown {
  return JSON.parse(readFileSync(join(fixtureDir, name), 'utf8'));
}

function parseOk(source: AlertSource, body: unknown): NormalizedAlert[] {
  const result = parseAlertPayload(source, body, { now: NOW });
  if (!result.ok) throw new Error(`expected ok, got ${result.refusal.message}`);
  return result.value;
}

function deliveryOk(source: AlertSource, body: unknown, sentryResource?: string) {
  const result = parseAlertDelivery(source, body, { now: NOW, sentryResource });
  if (!result.ok) throw new Error(`expected ok, got ${result.refusal.message}`);
  return result.value;
}

function parseError(source: AlertSource, body: unknown): string {
  const result = parseAlertPayload(source, body, { now: NOW });
  if (result.ok) throw new Error('expected a refusal');
  expect(result.refusal.code).toBe('invalid_input');
  return result.refusal.message;
}

describe('alertmanager (webhook version 4)', () => {
  it('parses a firing payload', () => {
    const [a, ...rest] = parseOk('alertmanager', fixture('alertmanager-firing.json'));
    expect(rest).toHaveLength(0);
    expect(a).toMatchObject({
      source: 'alertmanager',
      status: 'firing',
      title: 'HighErrorRate: 5xx ratio above 5% on api',
      severity: 'critical',
      fingerprint: '{}/{severity="critical"}:{alertname="HighErrorRate"}',
      startedAt: Date.parse('2026-11-29T11:52:00.123Z'),
      labels: { env: 'production', job: 'api', instance: 'api-1:9100' },
    });
    expect(a?.url).toContain('prometheus.example.org');
    expect(a?.text).toContain('more than 5% of requests');
  });

  it('yields one alert per member of a grouped payload, firing ones first, all keyed by the group', () => {
    const alerts = parseOk('alertmanager', fixture('alertmanager-grouped.json'));
    // web-3 resolved while the group still fires: it is kept (the group may span environments; the
    // service decides whether its environment's incident resolved), after the firing members.
    expect(alerts.map((a) => [a.labels.instance, a.status])).toEqual([
      ['web-1:9100', 'firing'],
      ['web-2:9100', 'firing'],
      ['web-3:9100', 'resolved'],
    ]);
    expect(new Set(alerts.map((a) => a.fingerprint))).toEqual(
      new Set(['{}:{alertname="InstanceDown", env="production"}']),
    );
    expect(alerts[0]?.startedAt).toBe(Date.parse('2026-11-29T11:55:00Z'));
  });

  it("lists a group's members earliest first: the incident started when its first member did", () => {
    const body = fixture('alertmanager-grouped.json') as { alerts: { startsAt: string }[] };
    const [first, second] = body.alerts;
    if (!first || !second) throw new Error('fixture has two firing members');
    first.startsAt = '2026-11-29T12:10:00Z';
    second.startsAt = '2026-11-29T11:40:00Z';
    const alerts = parseOk('alertmanager', body);
    expect(alerts.map((a) => [a.labels.instance, new Date(a.startedAt).toISOString()])).toEqual([
      ['web-2:9100', '2026-11-29T11:40:00.000Z'],
      ['web-1:9100', '2026-11-29T12:10:00.000Z'],
      // Resolved members come after the firing ones, even one that started earlier.
      ['web-3:9100', '2026-11-29T11:54:00.000Z'],
    ]);
  });

  it('parses a resolved payload', () => {
    const alerts = parseOk('alertmanager', fixture('alertmanager-resolved.json'));
    expect(alerts).toHaveLength(1);
    expect(alerts[0]?.status).toBe('resolved');
    expect(alerts[0]?.fingerprint).toBe('{}/{severity="critical"}:{alertname="HighErrorRate"}');
  });

  it('accepts a group larger than 1,000 alerts: reads the first 1,000, does not examine the rest', () => {
    const body = fixture('alertmanager-grouped.json') as { alerts: Record<string, unknown>[] };
    const member = body.alerts[0] ?? {};
    const alerts = Array.from({ length: 1_500 }, (_, i) =>
      i < 1_001 ? { ...member, labels: { ...(member.labels as object), instance: `web-${i}:9100` } } : {},
    );
    const parsed = parseOk('alertmanager', { ...body, alerts });
    expect(parsed).toHaveLength(1_000);
    expect(parsed[999]?.labels.instance).toBe('web-999:9100');
    expect(new Set(parsed.map((a) => a.fingerprint)).size).toBe(1);
    // Within the members read, a bad one is still named.
    const bad = alerts.map((a, i) => (i === 3 ? { ...a, startsAt: 'soon' } : a));
    expect(parseError('alertmanager', { ...body, alerts: bad })).toBe(
      'alerts[3].startsAt: expected an ISO date, got "soon"',
    );
    expect(parseOk('grafana', { ...(fixture('grafana-firing.json') as object), alerts })).toHaveLength(1_000);
  });

  it('names the invalid field', () => {
    const body = fixture('alertmanager-firing.json') as { alerts: { startsAt: string }[] };
    const first = body.alerts[0];
    if (first) first.startsAt = 'yesterday';
    expect(parseError('alertmanager', body)).toBe(
      'alerts[0].startsAt: expected an ISO date, got "yesterday"',
    );
    expect(parseError('alertmanager', { ...body, version: '3' })).toContain('version: expected "4"');
    const { groupKey: _g, ...noKey } = fixture('alertmanager-firing.json') as Record<string, unknown>;
    expect(parseError('alertmanager', noKey)).toContain('groupKey: ');
    expect(parseError('alertmanager', { ...noKey, groupKey: 'k', status: 'burning' })).toContain(
      'status: expected one of "firing", "resolved", got "burning"',
    );
  });
});

describe('grafana (unified alerting webhook)', () => {
  it('parses a grouped firing payload', () => {
    const alerts = parseOk('grafana', fixture('grafana-firing.json'));
    expect(alerts).toHaveLength(2);
    expect(alerts[0]).toMatchObject({
      source: 'grafana',
      status: 'firing',
      title: 'High latency: Checkout p99 latency is 3.1s',
      fingerprint: '{}:{alertname="High latency"}',
      labels: { service: 'checkout', deployment_environment: 'production' },
      url: 'https://grafana.example.com/d/checkout',
    });
    expect(alerts[1]?.labels.service).toBe('checkout-worker');
  });

  it('parses a resolved payload', () => {
    const alerts = parseOk('grafana', fixture('grafana-resolved.json'));
    expect(alerts.map((a) => a.status)).toEqual(['resolved']);
  });

  it('keeps a member that resolved while its group (spanning environments) still fires', () => {
    // Grouped by alert rule (Grafana's default): production recovered, preview still fires.
    const alerts = parseOk('grafana', fixture('grafana-spanning-environments.json'));
    expect(alerts.map((a) => [a.labels.env, a.status, a.fingerprint])).toEqual([
      ['preview', 'firing', '{}:{alertname="High latency"}'],
      ['production', 'resolved', '{}:{alertname="High latency"}'],
    ]);
    // Unless the group is incomplete (max_alerts truncated it): members still firing in production
    // may be among those left out, so its resolved members wait for the group to resolve.
    const truncated = { ...(fixture('grafana-spanning-environments.json') as object), truncatedAlerts: 3 };
    expect(parseOk('grafana', truncated).map((a) => `${a.labels.env}:${a.status}`)).toEqual([
      'preview:firing',
    ]);
    const resolvedGroup = { ...(fixture('grafana-resolved.json') as object), truncatedAlerts: 3 };
    expect(parseOk('grafana', resolvedGroup).map((a) => a.status)).toEqual(['resolved']);
  });

  it('names a bad label value', () => {
    const body = fixture('grafana-firing.json') as { alerts: { labels: Record<string, unknown> }[] };
    const second = body.alerts[1];
    if (second) second.labels.service = 42;
    expect(parseError('grafana', body)).toContain('alerts[1].labels.service: expected a string label value');
  });
});

describe('datadog (webhook payload variables)', () => {
  it('parses a triggered monitor', () => {
    const [a] = parseOk('datadog', fixture('datadog-triggered.json'));
    expect(a).toMatchObject({
      source: 'datadog',
      status: 'firing',
      title: 'API error rate is high',
      severity: 'P1',
      fingerprint: '7539816743018764000',
      startedAt: Date.UTC(2026, 10, 29, 11, 55),
      labels: { env: 'production', service: 'api', team: 'payments' },
      url: 'https://app.datadoghq.com/event/event?id=7539816743018764012',
    });
  });

  it('parses a recovery as resolved with the same incident key', () => {
    const [a] = parseOk('datadog', fixture('datadog-recovered.json'));
    expect(a?.status).toBe('resolved');
    expect(a?.fingerprint).toBe('7539816743018764000');
  });

  it('accepts the bare default payload (title, body, id, date) and seconds', () => {
    const [a] = parseOk('datadog', {
      body: 'x',
      title: '[Recovered] Memory',
      id: 1,
      date: 1795953300,
      event_type: 'metric_alert_monitor',
    });
    expect(a).toMatchObject({ status: 'resolved', startedAt: 1795953300000, title: 'Memory' });
    // No incident key: the title without its status tag stands in for one.
    expect(a?.fingerprint).toBe('title:Memory');
  });

  it("reads the status tag wherever it sits among the title's leading tags ([P1] [Recovered] …)", () => {
    const status = (title: string, extra: Record<string, unknown> = {}) =>
      parseOk('datadog', { title, body: 'x', ...extra })[0]?.status;
    expect(parseOk('datadog', fixture('datadog-default-recovered.json'))[0]?.status).toBe('resolved');
    expect(parseOk('datadog', fixture('datadog-default-triggered.json'))[0]?.status).toBe('firing');
    expect(status('[P1] [Recovered] checkout error rate is high')).toBe('resolved');
    expect(status('[P2] [Recovered on {env:production,service:api}] API errors')).toBe('resolved');
    expect(status('[Recovered on {host:web-1}] Disk')).toBe('resolved');
    expect(status('[P3] [Warn Recovery] Disk filling up')).toBe('resolved');
    expect(status('[P1] [Triggered] checkout error rate is high')).toBe('firing');
    expect(status('[P1] [Re-Triggered on {host:web-1}] Disk')).toBe('firing');
    expect(status('[P2] [Warn] Disk filling up')).toBe('firing');
    // Tags after the status tag belong to the monitor's name.
    expect(status('[P1] [Triggered] [Recovery service] latency')).toBe('firing');
    expect(status('[Recovery service] latency')).toBe('firing');
    expect(status('checkout [Recovered]')).toBe('firing');
    expect(status('x', { alert_transition: 'Warn Recovery' })).toBe('resolved');
    expect(status('x', { alert_transition: 'Re-Triggered' })).toBe('firing');
  });

  it('marks a re-notification (Re-Triggered, Re-Warn, Re-No Data, Renotify): its $DATE is when it was re-sent', () => {
    const [again] = parseOk('datadog', fixture('datadog-retriggered.json'));
    expect(again).toMatchObject({
      status: 'firing',
      renotification: true,
      // The same alert cycle as the first notification: the same incident.
      fingerprint: '7539816743018764000',
      startedAt: 1795978500000,
      title: 'API error rate is high',
    });
    const [first] = parseOk('datadog', fixture('datadog-triggered.json'));
    expect(first?.fingerprint).toBe(again?.fingerprint);
    expect(first?.renotification).toBeUndefined();
    const renotified = (title: string, extra: Record<string, unknown> = {}) =>
      parseOk('datadog', { title, body: 'x', ...extra })[0]?.renotification === true;
    // $ALERT_TRANSITION decides when it names a transition.
    for (const transition of ['Re-Triggered', 'Re-Warn', 'Renotify', 're-triggered'])
      expect(renotified('API errors', { alert_transition: transition }), transition).toBe(true);
    for (const transition of ['Triggered', 'Warn', 'No Data', 'Recovered', 'Warn Recovery'])
      expect(renotified('[Re-Triggered] API errors', { alert_transition: transition }), transition).toBe(
        false,
      );
    // Else the title's status tag (the default payload), wherever it sits among the leading tags.
    expect(renotified('[P1] [Re-Triggered] checkout error rate is high')).toBe(true);
    expect(renotified('[Re-Warn on {host:web-1}] Disk usage is high')).toBe(true);
    expect(renotified('[P2] [Renotify] Heartbeat')).toBe(true);
    expect(renotified('[P1] [Triggered] checkout error rate is high')).toBe(false);
    expect(renotified('[Recovered] checkout error rate is high')).toBe(false);
    expect(renotified('[P1] [Triggered] [Re-Triggered] name')).toBe(false);
    expect(renotified('Re-Triggered checkout')).toBe(false);
  });

  it('names the invalid field', () => {
    expect(parseError('datadog', { id: '1', body: 'x' })).toContain('title: expected the event title');
    expect(parseError('datadog', { title: 't', date: 'noon' })).toBe(
      'date: expected epoch milliseconds, got "noon"',
    );
  });

  it('derives the incident key of a payload without one from the title without its status tag', () => {
    const key = (title: string) => parseOk('datadog', { title, body: 'x' })[0];
    const triggered = key('[P1] [Triggered] checkout error rate is high');
    const recovered = key('[P1] [Recovered] checkout error rate is high');
    expect(triggered).toMatchObject({
      status: 'firing',
      title: '[P1] checkout error rate is high',
      fingerprint: 'title:checkout error rate is high',
    });
    expect(recovered).toMatchObject({ status: 'resolved', title: '[P1] checkout error rate is high' });
    expect(recovered?.fingerprint).toBe(triggered?.fingerprint);
    // Every transition of one monitor shares the key; another monitor has its own.
    for (const tag of ['Re-Triggered', 'Warn', 'Re-Warn', 'Renotify', 'Warn Recovery', 'No Data Recovery'])
      expect(key(`[${tag}] checkout error rate is high`)?.fingerprint).toBe(triggered?.fingerprint);
    expect(key('[P1] [Triggered] checkout disk usage is high')?.fingerprint).not.toBe(triggered?.fingerprint);
    // A multi-alert monitor: one incident per scope.
    const hostA = key('[Triggered on {host:web-1}] Disk usage is high');
    expect(hostA).toMatchObject({ title: 'Disk usage is high (host:web-1)' });
    expect(key('[Recovered on {host:web-1}] Disk usage is high')?.fingerprint).toBe(hostA?.fingerprint);
    expect(key('[Triggered on {host:web-2}] Disk usage is high')?.fingerprint).not.toBe(hostA?.fingerprint);
    // Tags after the status tag belong to the monitor's name; a title without one is its own key.
    expect(datadogTitle('[P1] [Triggered] [Recovery service] latency')).toEqual({
      display: '[P1] [Recovery service] latency',
      key: 'title:[Recovery service] latency',
    });
    expect(datadogTitle('checkout  latency')).toEqual({
      display: 'checkout latency',
      key: 'title:checkout latency',
    });
    // A payload's own key wins.
    expect(parseOk('datadog', fixture('datadog-triggered.json'))[0]?.fingerprint).toBe('7539816743018764000');
    // The documented default payload pair.
    const [t] = parseOk('datadog', fixture('datadog-default-triggered.json'));
    const [r] = parseOk('datadog', fixture('datadog-default-recovered.json'));
    expect([t?.status, r?.status, t?.title]).toEqual([
      'firing',
      'resolved',
      '[P1] checkout error rate is high',
    ]);
    expect(r?.fingerprint).toBe(t?.fingerprint);
  });

  it('treats variables Datadog rendered empty ("") as absent', () => {
    // A custom payload on an event where $ALERT_CYCLE_KEY, $AGGREG_KEY, $ALERT_ID, $ID, $DATE, $TAGS[env]
    // and friends have no value.
    const [a] = parseOk('datadog', {
      id: '',
      title: '[Triggered] checkout error rate is high',
      body: '',
      date: '',
      last_updated: ' ',
      alert_id: '',
      alert_cycle_key: '',
      aggreg_key: '',
      alert_transition: '',
      alert_type: '',
      alert_priority: '',
      alert_scope: '',
      tags: '',
      link: '',
      hostname: '',
    });
    expect(a).toMatchObject({
      status: 'firing',
      title: 'checkout error rate is high',
      fingerprint: 'title:checkout error rate is high',
      startedAt: NOW,
      labels: {},
    });
    expect(a?.url).toBeUndefined();
    // A value that is there still has to be right.
    expect(parseError('datadog', { title: 't', date: 'noon', id: '' })).toBe(
      'date: expected epoch milliseconds, got "noon"',
    );
    expect(parseError('datadog', { title: '', alert_title: '' })).toContain(
      'title: expected the event title',
    );
  });

  it('splits $TAGS', () => {
    expect(parseDatadogTags('env:production, service:api ,monitor,version:1:2')).toEqual({
      env: 'production',
      service: 'api',
      version: '1:2',
    });
  });
});

describe('sentry (issue alerts, metric alerts, issue webhooks)', () => {
  it('parses an issue alert', () => {
    const [a] = parseOk('sentry', fixture('sentry-issue-alert.json'));
    expect(a).toMatchObject({
      source: 'sentry',
      status: 'firing',
      title: 'ReferenceError: heck is not defined',
      severity: 'error',
      fingerprint: '1117540176',
      startedAt: Date.parse('2026-11-29T11:57:17.677Z'),
      labels: { environment: 'production', project: '1', release: 'web@3f2a1b9' },
    });
    expect(a?.url).toContain('/issues/1117540176/');
    expect(a?.text).toContain('Checkout errors');
  });

  it('parses a resolved issue webhook with the same incident key', () => {
    const [a] = parseOk('sentry', fixture('sentry-issue-resolved.json'));
    expect(a).toMatchObject({
      status: 'resolved',
      fingerprint: '1117540176',
      labels: { project: 'front-end' },
    });
  });

  it('parses metric alerts: critical and warning fire, resolved resolves, in their own incident namespace', () => {
    const [critical] = parseOk('sentry', fixture('sentry-metric-critical.json'));
    expect(critical).toMatchObject({
      source: 'sentry',
      status: 'firing',
      title: 'Checkout errors',
      severity: 'critical',
      fingerprint: 'metric_alert:4',
      startedAt: Date.parse('2026-11-29T11:57:00Z'),
      labels: { environment: 'production', project: 'front-end' },
      url: 'https://sentry.io/organizations/test-org/alerts/1/',
    });
    const warning = { ...(fixture('sentry-metric-critical.json') as object), action: 'warning' };
    expect(parseOk('sentry', warning)[0]).toMatchObject({ status: 'firing', severity: 'warning' });
    const [resolved] = parseOk('sentry', fixture('sentry-metric-resolved.json'));
    expect(resolved).toMatchObject({
      status: 'resolved',
      fingerprint: 'metric_alert:4',
      title: 'Checkout errors',
    });
    // The bare minimum: the incident id; the title comes from description_title.
    const [bare] = parseOk('sentry', {
      action: 'resolved',
      data: { metric_alert: { id: 7 }, description_title: 'Resolved: Too many errors' },
    });
    expect(bare).toMatchObject({
      status: 'resolved',
      fingerprint: 'metric_alert:7',
      title: 'Too many errors',
    });
    expect(bare?.startedAt).toBe(NOW);
    expect(parseError('sentry', { action: 'triggered', data: { metric_alert: { id: '7' } } })).toContain(
      'action: expected one of "critical", "warning", "resolved"',
    );
    expect(parseError('sentry', { action: 'resolved', data: { metric_alert: {} } })).toContain(
      'data.metric_alert.id: ',
    );
  });

  it('accepts the other issue webhooks (created, assigned, archived, unresolved) and gives no alert', () => {
    expect(parseOk('sentry', fixture('sentry-issue-created.json'))).toEqual([]);
    const issue = (fixture('sentry-issue-created.json') as { data: unknown }).data;
    for (const action of ['assigned', 'archived', 'ignored', 'unresolved']) {
      expect(parseOk('sentry', { action, data: issue })).toEqual([]);
    }
    expect(parseError('sentry', { action: 'created' })).toBe('data: required, expected an object');
  });

  it('a resolution in a release or commit still to come is accepted and ignored: the error is still live', () => {
    const resolved = fixture('sentry-issue-resolved.json') as {
      data: { issue: Record<string, unknown> };
    };
    // A Sentry that sends no resolution_type: its statusDetails decide.
    const withDetails = (statusDetails: unknown) => ({
      ...resolved,
      data: { issue: { ...resolved.data.issue, statusDetails } },
    });
    const cases: [unknown, string][] = [
      [{ inNextRelease: true }, 'in the next release'],
      [{ inRelease: 'web@3f2a1b9' }, 'in release web@3f2a1b9'],
      [{ inRelease: 'latest' }, 'in release latest'],
      [{ inCommit: { repository: 'shop/web', commit: 'a1b2c3d' } }, 'in commit a1b2c3d'],
    ];
    for (const [details, when] of cases) {
      expect(deliveryOk('sentry', withDetails(details), 'issue')).toEqual({
        alerts: [],
        ignored: [
          {
            title: 'ReferenceError: heck is not defined',
            status: 'resolved',
            fingerprint: '1117540176',
            detail: `Sentry resolves this issue ${when}: its fix is not known to be live in the deployment running now, so its suggestion is not marked resolved.`,
          },
        ],
      });
    }
    // Resolved now (statusDetails empty, or saying nothing of a release): resolves.
    for (const details of [{}, null, { inNextRelease: false }, { inRelease: null, inCommit: null }])
      expect(deliveryOk('sentry', withDetails(details)).alerts.map((a) => a.status)).toEqual(['resolved']);
  });

  it('accepts deliveries that are not alerts (Sentry-Hook-Resource or shape) and ignores them', () => {
    const ignored = (body: unknown, resource?: string) => {
      const d = deliveryOk('sentry', body, resource);
      expect(d.alerts).toEqual([]);
      return d.ignored.map((i) => i.detail);
    };
    expect(ignored(fixture('sentry-comment-created.json'), 'comment')).toEqual([
      'Sentry-Hook-Resource "comment" is not an alert: accepted and ignored.',
    ]);
    expect(ignored(fixture('sentry-installation-created.json'), 'installation')).toEqual([
      'Sentry-Hook-Resource "installation" is not an alert: accepted and ignored.',
    ]);
    expect(ignored({ action: 'created', data: { error: { event_id: 'x' } } }, 'error')).toHaveLength(1);
    // Whatever the body, a resource that is not an alert is not read.
    expect(ignored({ action: 'triggered', data: { issue: { id: '1' } } }, 'activity_alert')).toHaveLength(1);
    // Without the header, the shape says so.
    expect(ignored(fixture('sentry-comment-created.json'))).toEqual([
      'A Sentry comment webhook is not an alert: accepted and ignored.',
    ]);
    expect(ignored(fixture('sentry-installation-created.json'))).toEqual([
      'A Sentry installation webhook is not an alert: accepted and ignored.',
    ]);
    // An activity alert: the issue, no event, so no environment.
    const activity = deliveryOk('sentry', {
      action: 'triggered',
      data: { issue: { id: '1117540176', title: 'ReferenceError: heck is not defined' } },
    });
    expect(activity.ignored).toMatchObject([
      { title: 'ReferenceError: heck is not defined', fingerprint: '1117540176' },
    ]);
    expect(activity.ignored[0]?.detail).toContain('no event, so no environment');
    // Issue webhooks other than resolved, an action Sentry may add later included.
    const issue = (fixture('sentry-issue-created.json') as { data: unknown }).data;
    expect(ignored({ action: 'created', data: issue }, 'issue')[0]).toContain('carries no environment');
    expect(ignored({ action: 'escalating', data: issue }, 'issue')).toHaveLength(1);
    // Alert resources are still read (a malformed one is named).
    expect(deliveryOk('sentry', fixture('sentry-issue-alert.json'), 'event_alert').alerts).toHaveLength(1);
    expect(deliveryOk('sentry', fixture('sentry-metric-critical.json'), 'metric_alert').alerts).toHaveLength(
      1,
    );
    expect(
      parseAlertDelivery(
        'sentry',
        { action: 'triggered', data: {} },
        { now: NOW, sentryResource: 'event_alert' },
      ),
    ).toMatchObject({ ok: false });
  });

  it('names the invalid field', () => {
    expect(parseError('sentry', { action: 'burning' })).toContain('action: expected "triggered"');
    expect(parseError('sentry', {})).toContain('got nothing');
    const body = fixture('sentry-issue-alert.json') as { data: { event: Record<string, unknown> } };
    body.data.event.issue_id = undefined;
    expect(parseError('sentry', body)).toContain('data.event.issue_id: ');
    body.data.event.issue_id = '1';
    body.data.event.tags = [['environment']];
    expect(parseError('sentry', body)).toContain('data.event.tags[0]');
  });
});

describe('pagerduty (v3 webhooks)', () => {
  it('parses incident.triggered', () => {
    const [a] = parseOk('pagerduty', fixture('pagerduty-triggered.json'));
    expect(a).toMatchObject({
      source: 'pagerduty',
      status: 'firing',
      title: 'Checkout API returning 502 in production',
      severity: 'P1',
      fingerprint: 'PGR0VU2',
      startedAt: Date.parse('2026-11-29T11:58:02Z'),
      labels: { service: 'checkout-api', urgency: 'high' },
      url: 'https://acme.pagerduty.com/incidents/PGR0VU2',
    });
  });

  it('dates a reopened incident from when it reopened, not from when it was first created', () => {
    const [reopened] = parseOk('pagerduty', fixture('pagerduty-reopened.json'));
    expect(reopened).toMatchObject({
      status: 'firing',
      fingerprint: 'PGR0VU2',
      startedAt: Date.parse('2026-11-29T11:57:00.000Z'),
    });
    const body = fixture('pagerduty-reopened.json') as { event: Record<string, unknown> };
    delete body.event.occurred_at;
    expect(parseOk('pagerduty', body)[0]?.startedAt).toBe(Date.parse('2026-11-29T09:30:00Z'));
  });

  it('parses incident.resolved and ignores other event types', () => {
    expect(parseOk('pagerduty', fixture('pagerduty-resolved.json')).map((a) => a.status)).toEqual([
      'resolved',
    ]);
    expect(parseOk('pagerduty', fixture('pagerduty-acknowledged.json'))).toEqual([]);
    expect(parseOk('pagerduty', { event: { event_type: 'pagey.ping', data: {} } })).toEqual([]);
  });

  it('names the invalid field', () => {
    const body = fixture('pagerduty-triggered.json') as { event: { data: Record<string, unknown> } };
    body.event.data.title = 7;
    expect(parseError('pagerduty', body)).toBe('event.data.title: expected a string, got 7');
    expect(parseError('pagerduty', { event: {} })).toContain('event.event_type: ');
  });
});

describe('generic', () => {
  it('parses firing, resolved and grouped payloads', () => {
    const [firing] = parseOk('generic', fixture('generic-firing.json'));
    expect(firing).toMatchObject({
      source: 'generic',
      status: 'firing',
      severity: 'critical',
      fingerprint: 'checkout-errors-2026-11-29',
      startedAt: Date.UTC(2026, 10, 29, 11, 58),
      labels: { environment: 'production' },
    });
    const [resolved] = parseOk('generic', fixture('generic-resolved.json'));
    expect(resolved).toMatchObject({ status: 'resolved', startedAt: NOW });
    const grouped = parseOk('generic', fixture('generic-grouped.json'));
    expect(grouped.map((a) => a.labels)).toEqual([
      { environment: 'prod' },
      { region: 'eu-west-1', service: 'checkout' },
    ]);
  });

  it('names the invalid field, unknown keys included', () => {
    expect(parseError('generic', { title: 'x', status: 'on fire' })).toContain('status: expected one of');
    expect(parseError('generic', { title: 'x', enviroment: 'prod' })).toBe(
      '(root): unknown key "enviroment"',
    );
    expect(parseError('generic', [{ title: 'ok' }, { title: '' }])).toBe(
      '[1].title: expected a non-empty title, got ""',
    );
    expect(parseError('generic', { title: 'x', startedAt: 'soon' })).toContain('startedAt: ');
  });
});

describe('hostile bodies', () => {
  const sources: AlertSource[] = ['alertmanager', 'grafana', 'datadog', 'sentry', 'pagerduty', 'generic'];
  const bodies: unknown[] = [
    null,
    42,
    'string',
    [],
    [1, 2],
    {},
    { alerts: 'x' },
    { alerts: [null] },
    { __proto__: { polluted: true }, title: 'x' },
    { constructor: { prototype: { polluted: true } } },
    { event: { event_type: 'incident.triggered', data: null } },
    { action: 'triggered', data: { event: { tags: 'nope' } } },
    JSON.parse(
      '{"version":"4","groupKey":"k","status":"firing","alerts":[{"status":"firing","labels":{"__proto__":"x"},"startsAt":"2026-11-29T11:52:00Z"}]}',
    ),
  ];
  it('never throws, always a value', () => {
    for (const source of sources) {
      for (const body of bodies) {
        const result = parseAlertPayload(source, body, { now: NOW });
        expect(typeof result.ok).toBe('boolean');
      }
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('refusals show what was received, bounded', () => {
  /** `[[[…]]]` `depth` levels deep, built without recursion (a sender's body parsed by JSON.parse). */
  function nested(depth: number, inner: unknown = []): unknown {
    let v = inner;
    for (let i = 0; i < depth; i++) v = [v];
    return v;
  }
  function deepObject(depth: number): unknown {
    let v: unknown = 'firing';
    for (let i = 0; i < depth; i++) v = { a: v };
    return v;
  }
  const huge = 'x'.repeat(200_000);

  it('shownValue: JSON-like, clipped to about 100 characters and 3 levels, never throwing', () => {
    expect(shownValue(undefined)).toBe('nothing');
    expect(shownValue('burning')).toBe('"burning"');
    expect(shownValue([1, { a: null, b: true }])).toBe('[1,{"a":null,"b":true}]');
    expect(shownValue(nested(200_000))).toBe('[[[[…]]]]');
    expect(shownValue(deepObject(200_000))).toBe('{"a":{"a":{"a":{…}}}}');
    expect(shownValue(huge)).toMatch(/^"x{98}…$/);
    expect(shownValue(huge).length).toBe(100);
    expect(shownValue({ [huge]: 1 }).length).toBeLessThanOrEqual(100);
    expect(shownValue(Array(1_000_000).fill('firing')).length).toBeLessThanOrEqual(100);
    const throwing = new Proxy(
      {},
      {
        ownKeys: () => {
          throw new Error('boom');
        },
      },
    );
    expect(shownValue(throwing)).toBe('an object');
  });

  it('a deeply nested value in a field that expects a fixed value is refused naming the field', () => {
    // JSON.stringify throws a RangeError on these: the webhook answered 500, which senders retry forever.
    const deep = nested(200_000);
    expect(parseError('generic', { title: 'checkout down', status: deep })).toBe(
      'status: expected one of "firing", "resolved", got [[[[…]]]]',
    );
    expect(parseError('sentry', { action: deep, data: {} })).toMatch(
      /^action: expected "triggered".*, got \[\[\[\[…\]\]\]\]$/,
    );
    expect(
      parseError('alertmanager', { version: '4', groupKey: 'g', status: deepObject(200_000), alerts: [] }),
    ).toBe('status: expected one of "firing", "resolved", got {"a":{"a":{"a":{…}}}}');
    // Sentry's ignored deliveries name the action too.
    const ignored = deliveryOk('sentry', { action: deep, data: { comment: {} } });
    expect(ignored.ignored[0]?.title).toBe('Sentry comment "[[[[…]]]]"');
  });

  it('a huge bad value, key or label name is not echoed back whole', () => {
    for (const [source, body] of [
      ['sentry', { action: huge, data: {} }],
      ['generic', { title: 'checkout down', status: huge }],
      ['generic', { title: 'checkout down', [huge]: 1, [`${huge}y`]: 2 }],
      ['alertmanager', { version: '4', groupKey: 'g', status: huge, alerts: [] }],
      ['generic', { title: 'checkout down', labels: { [huge]: 7 } }],
    ] as const) {
      const message = parseError(source, body);
      expect(message.length, `${source} ${message.slice(0, 80)}`).toBeLessThan(1_000);
      expect(message).toMatch(/^\S+: \S/);
    }
    const keys = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, i]));
    expect(parseError('generic', { title: 'x', ...keys })).toBe(
      '(root): unknown keys "k0", "k1", "k2", "k3", "k4" (and 9995 more)',
    );
  });

  it('every field of every fixture, replaced by a hostile value: a value or a bounded refusal, never a throw', () => {
    const hostile: unknown[] = [
      nested(100_000),
      deepObject(100_000),
      huge,
      { [huge]: huge },
      // As large as a body within alerts.maxBodyBytes gets.
      Array(100_000).fill('firing'),
      nested(50, { toString: 1, __proto__: null }),
    ];
    /** Every path in `v` (arrays: their first three members). */
    function paths(v: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []) {
      out.push(prefix);
      if (Array.isArray(v)) for (const [i, x] of v.slice(0, 3).entries()) paths(x, [...prefix, i], out);
      else if (v !== null && typeof v === 'object')
        for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out);
      return out;
    }
    function replaced(root: unknown, path: (string | number)[], value: unknown): unknown {
      const [head, ...rest] = path;
      if (head === undefined) return value;
      const copy = (Array.isArray(root) ? [...root] : { ...(root as object) }) as Record<
        string | number,
        unknown
      >;
      copy[head] = replaced(copy[head], rest, value);
      return copy;
    }
    const failures: string[] = [];
    let refusals = 0;
    for (const name of readdirSync(fixtureDir)) {
      const source = name.split('-')[0] as AlertSource;
      const body = fixture(name);
      for (const path of paths(body).slice(1)) {
        for (const value of hostile) {
          const where = `${name} ${path.join('.')}`;
          let result: ReturnType<typeof parseAlertDelivery>;
          try {
            result = parseAlertDelivery(source, replaced(body, path, value), { now: NOW });
          } catch (e) {
            failures.push(`${where}: threw ${(e as Error).message}`);
            continue;
          }
          if (result.ok) continue;
          refusals++;
          const m = result.refusal.message;
          if (!/^\S+: \S/.test(m) || m.length > 2_000)
            failures.push(`${where}: ${m.slice(0, 120)} (${m.length})`);
        }
      }
    }
    expect(failures.slice(0, 10)).toEqual([]);
    expect(refusals).toBeGreaterThan(100);
  });
});
