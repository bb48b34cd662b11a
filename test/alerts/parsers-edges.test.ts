/**
 * Parser decisions no other test pinned down (found by mutation testing of src/alerts/parsers.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mapAlert } from '../../src/alerts/mapping.js';
import { parseAlertDelivery, parseAlertPayload, parseDatadogTags } from '../../src/alerts/parsers.js';
import type { AlertSource, NormalizedAlert } from '../../src/alerts/types.js';

const NOW = Date.UTC(2026, 10, 29, 12, 30);
const fixtureDir = join(import.meta.dirname, '../fixtures/alerts');

function fixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(fixtureDir, name), 'utf8')) as Record<string, unknown>;
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

/** The first member of a fixture's group, with `changes` applied to it. */
function member(name: string, changes: Record<string, unknown>): Record<string, unknown> {
  const first = (fixture(name).alerts as Record<string, unknown>[])[0] ?? {};
  return { ...first, ...changes };
}

describe('alertmanager and grafana groups', () => {
  it('a group of exactly 1,000 members is complete: its resolved members are kept', () => {
    const body = fixture('alertmanager-grouped.json');
    const firing = member('alertmanager-grouped.json', {});
    const resolved = {
      ...firing,
      status: 'resolved',
      labels: { ...(firing.labels as object), env: 'staging' },
    };
    const alerts = [...Array.from({ length: 999 }, () => firing), resolved];
    const parsed = parseOk('alertmanager', { ...body, status: 'firing', alerts });
    expect(parsed).toHaveLength(1_000);
    expect(parsed.at(-1)).toMatchObject({ status: 'resolved', labels: { env: 'staging' } });
  });

  it('titles a member with its summary annotation before its title annotation', () => {
    const body = fixture('alertmanager-firing.json');
    const alerts = [
      member('alertmanager-firing.json', {
        annotations: { summary: 'error ratio above 5%', title: 'a dashboard title' },
      }),
    ];
    expect(parseOk('alertmanager', { ...body, alerts })[0]?.title).toBe(
      'HighErrorRate: error ratio above 5%',
    );
  });

  it("falls back to the Grafana notification's title when a member has neither alertname nor summary", () => {
    const body = fixture('grafana-firing.json');
    const alerts = [
      member('grafana-firing.json', {
        labels: { service: 'checkout', deployment_environment: 'production' },
        annotations: {},
      }),
    ];
    const [a] = parseOk('grafana', { ...body, commonLabels: {}, commonAnnotations: {}, alerts });
    expect(a?.title).toBe('[FIRING:2] High latency (production)');
  });

  it('takes the severity from a `priority` label when there is no `severity` label', () => {
    const body = fixture('alertmanager-firing.json');
    const first = member('alertmanager-firing.json', {});
    const { severity: _s, ...labels } = first.labels as Record<string, string>;
    const alerts = [{ ...first, labels: { ...labels, priority: 'P1' } }];
    const [a] = parseOk('alertmanager', { ...body, commonLabels: {}, alerts });
    expect(a?.severity).toBe('P1');
  });

  it("carries a member's `message` annotation in its text (what alertMatchers read)", () => {
    const body = fixture('grafana-firing.json');
    const alerts = [
      member('grafana-firing.json', { annotations: { message: 'checkout-api pods crash-looping' } }),
    ];
    expect(parseOk('grafana', { ...body, alerts })[0]?.text).toContain('checkout-api pods crash-looping');
  });

  it("dates a member whose startsAt is Go's zero time (0001-01-01) from when it was received", () => {
    const body = fixture('grafana-firing.json');
    const alerts = [member('grafana-firing.json', { startsAt: '0001-01-01T00:00:00Z' })];
    expect(parseOk('grafana', { ...body, alerts })[0]?.startedAt).toBe(NOW);
  });
});

describe('datadog fields', () => {
  it("takes the severity from $ALERT_PRIORITY (P1) before the event's $PRIORITY (normal)", () => {
    const [a] = parseOk('datadog', {
      title: '[Triggered] API errors',
      body: 'x',
      alert_priority: 'P1',
      priority: 'normal',
    });
    expect(a?.severity).toBe('P1');
  });

  it('dates the alert from $DATE, not $LAST_UPDATED', () => {
    const date = Date.UTC(2026, 10, 29, 11, 55);
    const [a] = parseOk('datadog', {
      title: '[Triggered] API errors',
      body: 'x',
      date,
      last_updated: date + 20 * 60_000,
    });
    expect(a?.startedAt).toBe(date);
  });
});

describe('sentry resolutions', () => {
  it('an issue alert that carries the issue besides its event is an alert, not an activity alert', () => {
    const alert = fixture('sentry-issue-alert.json') as { data: Record<string, unknown> };
    const body = {
      ...alert,
      data: { ...alert.data, issue: { id: '1117540176', title: 'ReferenceError: heck is not defined' } },
    };
    expect(parseOk('sentry', body)).toMatchObject([
      { status: 'firing', fingerprint: '1117540176', labels: { environment: 'production' } },
    ]);
  });

  it('an issue resolved with statusDetails.inCommit false resolves now', () => {
    const resolved = fixture('sentry-issue-resolved.json') as { data: { issue: Record<string, unknown> } };
    const body = {
      ...resolved,
      data: { issue: { ...resolved.data.issue, statusDetails: { inCommit: false } } },
    };
    expect(parseOk('sentry', body).map((a) => a.status)).toEqual(['resolved']);
  });
});

describe('datadog status', () => {
  it('a custom payload whose $ALERT_TYPE is "success" is a recovery, whatever its title', () => {
    const [a] = parseOk('datadog', { title: 'API error rate is high', body: 'x', alert_type: 'success' });
    expect(a?.status).toBe('resolved');
    const [b] = parseOk('datadog', { title: 'API error rate is high', body: 'x', alert_type: ' Success ' });
    expect(b?.status).toBe('resolved');
    const [c] = parseOk('datadog', { title: 'API error rate is high', body: 'x', alert_type: 'error' });
    expect(c?.status).toBe('firing');
  });

  it("reads the recovery from $ALERT_TITLE's status tag when $EVENT_TITLE has none", () => {
    const [a] = parseOk('datadog', {
      title: 'API error rate is high',
      alert_title: '[Recovered] API error rate is high',
      body: 'x',
    });
    expect(a?.status).toBe('resolved');
  });
});

describe('generic', () => {
  it('accepts an array of exactly 1,000 alerts (docs: "up to 1,000 objects")', () => {
    const alerts = Array.from({ length: 1_000 }, (_, i) => ({
      title: `alert ${i}`,
      environment: 'production',
    }));
    expect(parseOk('generic', alerts)).toHaveLength(1_000);
  });

  it('the `environment` field names the environment, over an `environment` label', () => {
    const [a] = parseOk('generic', {
      title: 'checkout errors',
      environment: 'production',
      labels: { environment: 'staging' },
    });
    expect(a?.labels.environment).toBe('production');
  });
});

describe('a refused field shows the value received (clipped), not only its type', () => {
  const refusal = (body: unknown) => {
    const result = parseAlertPayload('generic', body, { now: NOW });
    return result.ok ? 'accepted' : result.refusal.message;
  };

  it('a value of the wrong type', () => {
    expect(refusal({ title: 'x', severity: 5 })).toBe('severity: expected a string, got 5');
    expect(refusal({ title: ['a'] })).toBe('title: expected a string, got ["a"]');
    expect(refusal({ title: { a: { b: { c: { d: 1 } } } } })).toBe(
      'title: expected a string, got {"a":{"b":{"c":{…}}}}',
    );
  });

  it("a value the schema's own wording refuses", () => {
    expect(refusal({ title: 'x', startedAt: 'yesterday' })).toBe(
      'startedAt: expected an ISO date, got "yesterday"',
    );
  });
});

describe('vendor deliveries as the senders send them', () => {
  const SLUGS = ['production', 'staging', 'preview'];
  const mapped = (alert: NormalizedAlert | undefined) =>
    alert === undefined ? undefined : mapAlert(alert, SLUGS, new Map());

  describe("Sentry's resolution_type decides whether an issue resolved now", () => {
    const later = (when: string) =>
      `Sentry resolves this issue ${when}: its fix is not known to be live in the deployment running now, so its suggestion is not marked resolved.`;
    const resolvedAs = (resolutionType: string, statusDetails: unknown = {}, extra: object = {}) => {
      const body = fixture('sentry-issue-resolved.json') as { data: { issue: Record<string, unknown> } };
      return deliveryOk(
        'sentry',
        {
          ...body,
          ...extra,
          data: { resolution_type: resolutionType, issue: { ...body.data.issue, statusDetails } },
        },
        'issue',
      );
    };

    it('"Resolve in the upcoming release" (statusDetails carry only the actor) is a release still to come', () => {
      expect(deliveryOk('sentry', fixture('sentry-issue-resolved-upcoming-release.json'), 'issue')).toEqual({
        alerts: [],
        ignored: [
          {
            title: 'ReferenceError: heck is not defined',
            status: 'resolved',
            fingerprint: '1117540176',
            detail: later('in the upcoming release'),
          },
        ],
      });
      expect(
        deliveryOk('sentry', fixture('sentry-issue-resolved-next-release.json'), 'issue').ignored.map(
          (i) => i.detail,
        ),
      ).toEqual([later('in the next release')]);
    });

    it('a release or commit still to come waits for its fix, whatever statusDetails say', () => {
      const cases: [string, unknown, string][] = [
        ['in_release', { inRelease: 'web@3f2a1b9' }, 'in release web@3f2a1b9'],
        ['in_release', {}, 'in the current release'],
        ['in_commit', { inCommit: { repository: 'shop/web', commit: 'a1b2c3d' } }, 'in commit a1b2c3d'],
        ['in_commit', {}, 'in a commit'],
        // Sentry found a commit saying it fixes the issue (pushed, or in a release being made).
        ['with_commit', {}, 'by a commit'],
        ['with_commit', { inRelease: 'web@3f2a1b9' }, 'by a commit'],
        ['in_upcoming_release', { inUpcomingRelease: true }, 'in the upcoming release'],
        ['in_next_release', {}, 'in the next release'],
      ];
      for (const [type, details, when] of cases)
        expect(
          resolvedAs(type, details).ignored.map((i) => i.detail),
          type,
        ).toEqual([later(when)]);
      // "now" resolves now, even beside statusDetails that would say otherwise.
      expect(resolvedAs('now', { inNextRelease: true }).alerts.map((a) => a.status)).toEqual(['resolved']);
    });

    it('an issue Sentry auto-resolved (resolution_type "autoresolve") resolves its incident now', () => {
      // As Sentry's auto-resolve job sends it: no person, empty statusDetails.
      const sentry = { actor: { type: 'application', id: 'sentry', name: 'Sentry' } };
      const d = resolvedAs('autoresolve', {}, sentry);
      expect(d.ignored).toEqual([]);
      expect(d.alerts).toMatchObject([{ status: 'resolved', fingerprint: '1117540176' }]);
      expect(resolvedAs('AutoResolve', { inNextRelease: true }).alerts.map((a) => a.status)).toEqual([
        'resolved',
      ]);
    });

    it('a resolution type not known here resolves now, unless its statusDetails name a fix to come', () => {
      for (const type of ['with_third_party_app', 'constructor', '__proto__', 'toString'])
        expect(
          resolvedAs(type).alerts.map((a) => a.status),
          type,
        ).toEqual(['resolved']);
      expect(resolvedAs('in_a_future_type', { inNextRelease: true }).ignored.map((i) => i.detail)).toEqual([
        later('in the next release'),
      ]);
    });

    it('an issue resolved now resolves, and links to its web_url', () => {
      const [a] = deliveryOk('sentry', fixture('sentry-issue-resolved.json'), 'issue').alerts;
      expect(a).toMatchObject({ status: 'resolved', fingerprint: '1117540176' });
      expect(a?.url).toBe('https://sentry.io/organizations/test-org/issues/1117540176/');
    });
  });

  describe('Datadog environment', () => {
    it("the default payload's status tag scope ({env:production,service:api}) names the environment", () => {
      const [a] = parseOk('datadog', fixture('datadog-default-multi-triggered.json'));
      expect(a?.labels).toEqual({ env: 'production', service: 'api' });
      expect(mapped(a)).toMatchObject({ ok: true, environment: 'production' });
    });

    it("the triggering group's $ALERT_SCOPE names the environment over $TAGS", () => {
      const base = {
        title: '[Triggered on {env:staging}] Checkout errors',
        body: 'errors',
        alert_cycle_key: '7539816743018764111',
      };
      const scoped = (extra: Record<string, unknown>) => parseOk('datadog', { ...base, ...extra })[0];
      for (const tags of ['env:production,monitor', 'env:staging,env:production,monitor,team:payments']) {
        const a = scoped({ alert_scope: 'env:staging', tags });
        expect(a?.labels).toMatchObject({ env: 'staging' });
        expect(mapped(a)).toMatchObject({ ok: true, environment: 'staging' });
      }
      // Without $ALERT_SCOPE, the title's scope does the same.
      expect(scoped({ tags: 'env:production' })?.labels.env).toBe('staging');
      // A key the scope does not name comes from $TAGS.
      expect(scoped({ alert_scope: 'env:staging', tags: 'env:production,team:payments' })?.labels.team).toBe(
        'payments',
      );
    });

    it('$TAGS naming several environments (and no scope) maps to none of them', () => {
      const [a] = parseOk('datadog', {
        title: 'Checkout errors',
        body: 'errors',
        tags: 'env:staging,env:production,monitor',
      });
      expect(a?.labels.env).toBe('staging,production');
      expect(mapped(a)).toEqual({
        ok: false,
        reason:
          'label env=staging,production names several environments (staging, production); an alert must name one',
      });
      expect(parseDatadogTags('env:prod, env:prod ,service:api')).toEqual({ env: 'prod', service: 'api' });
    });

    it('a "No Data" transition is a firing alert marked missingData (a deploy may have stopped the data); Re-No Data a re-notification', () => {
      // The default payload: the title's status tag says it.
      expect(deliveryOk('datadog', fixture('datadog-default-no-data.json'))).toEqual({
        alerts: [
          {
            source: 'datadog',
            status: 'firing',
            title: '[P2] API heartbeat (env:production,service:api)',
            fingerprint: 'title:{env:production,service:api} API heartbeat',
            startedAt: 1795953300000,
            missingData: true,
            labels: { env: 'production', service: 'api' },
            text: expect.stringContaining('No data for heartbeat'),
          },
        ],
        ignored: [],
      });
      const read = (alert_transition: string) =>
        parseOk('datadog', { ...fixture('datadog-triggered.json'), alert_transition })[0];
      expect(read('No Data')).toMatchObject({ status: 'firing', missingData: true });
      expect(read('No Data')?.renotification).toBeUndefined();
      // Re-sent: marked, and never correlated (its $DATE is when it was re-sent).
      expect(read('Re-No Data')).toMatchObject({ status: 'firing', missingData: true, renotification: true });
      // Its recovery (data came back) resolves, unmarked; a plain trigger is no missing data.
      expect(read('No Data Recovery')).toMatchObject({ status: 'resolved' });
      expect(read('No Data Recovery')?.missingData).toBeUndefined();
      expect(read('Triggered')?.missingData).toBeUndefined();
    });
  });

  describe('Grafana and Alertmanager', () => {
    it("Grafana's DatasourceError (the query failed) is accepted and ignored; DatasourceNoData is read, marked missingData", () => {
      expect(deliveryOk('grafana', fixture('grafana-datasource-error.json'))).toEqual({
        alerts: [],
        ignored: [
          {
            title: 'DatasourceError: Checkout p99 latency is above 2s',
            status: 'firing',
            fingerprint:
              '{}/{__grafana_autogenerated__="true"}/{__grafana_receiver__="Switchyard"}:{alertname="DatasourceError", grafana_folder="Checkout"}',
            detail:
              'DatasourceError says the rule "High latency" could not query its datasource (an error or a time-out), not that the deployment is bad: no rollback is suggested for it.',
          },
        ],
      });
      const noData = deliveryOk('grafana', fixture('grafana-datasource-no-data.json'));
      expect(noData.ignored).toEqual([]);
      expect(noData.alerts).toMatchObject([
        {
          status: 'firing',
          title: 'DatasourceNoData: Checkout p99 latency is above 2s',
          startedAt: Date.parse('2026-11-29T11:58:10Z'),
          missingData: true,
          labels: { deployment_environment: 'production', rulename: 'High latency' },
        },
      ]);
      // In a group, each member is what it says: the DatasourceError left out, the others read.
      const body = fixture('grafana-firing.json');
      const [first, second] = body.alerts as Record<string, unknown>[];
      const as = (alertname: string, status = 'firing') => ({
        ...second,
        status,
        labels: { ...(second?.labels as object), alertname },
      });
      const d = deliveryOk('grafana', {
        ...body,
        commonLabels: {},
        alerts: [first, as('DatasourceNoData'), as('DatasourceError'), as('DatasourceNoData', 'resolved')],
      });
      expect(d.alerts.map((a) => [a.title, a.status, a.missingData])).toEqual([
        ['High latency: Checkout p99 latency is 3.1s', 'firing', undefined],
        ['DatasourceNoData: Checkout worker p99 latency is 2.4s', 'firing', true],
        // Data came back: resolves, unmarked.
        ['DatasourceNoData: Checkout worker p99 latency is 2.4s', 'resolved', undefined],
      ]);
      expect(d.ignored.map((i) => i.title)).toEqual(['DatasourceError: Checkout worker p99 latency is 2.4s']);
    });

    it("Grafana's test notification (TestAlert, instance Grafana) is read as an alert naming no environment", () => {
      const [a, ...rest] = parseOk('grafana', fixture('grafana-test-alert.json'));
      expect(rest).toEqual([]);
      expect(a).toMatchObject({
        status: 'firing',
        title: 'TestAlert: Notification test',
        labels: { alertname: 'TestAlert', instance: 'Grafana' },
      });
      expect(mapped(a)).toEqual({
        ok: false,
        reason: 'no environment label and no alertMatchers entry matches',
      });
    });

    it('a captured Alertmanager body (generatorURL "", annotations {}, truncatedAlerts) says what it left out', () => {
      const d = deliveryOk('alertmanager', fixture('alertmanager-captured-truncated.json'));
      expect(d.alerts.map((a) => [a.title, a.url, a.labels.instance])).toEqual([
        ['HighErrorRate: 5xx', undefined, 'a'],
        ['HighErrorRate', undefined, 'b'],
      ]);
      expect(d.ignored).toEqual([
        {
          title: '1 more alert of this group',
          fingerprint: '{}:{alertname="HighErrorRate"}',
          detail:
            "Alertmanager left 1 alert of this group out of the notification (max_alerts; truncatedAlerts: 1): Switchyard never saw them. They share the group's incident; an environment that only they name gets no suggestion by this notification.",
        },
      ]);
      // Its resolved notification says the same of what it could not resolve.
      const resolved = fixture('alertmanager-captured-truncated.json');
      const members = (resolved.alerts as Record<string, unknown>[]).map((m) => ({
        ...m,
        status: 'resolved',
      }));
      const r = deliveryOk('alertmanager', { ...resolved, status: 'resolved', alerts: members });
      expect(r.alerts.map((a) => a.status)).toEqual(['resolved', 'resolved']);
      expect(r.ignored[0]?.detail).toContain('an environment that only they name is not marked resolved');
      // A resolved member of a firing group that leaves members out is said too (its incident resolves
      // with the group).
      const mixed = { ...resolved, alerts: [members[0], (resolved.alerts as unknown[])[1]] };
      const m = deliveryOk('alertmanager', mixed);
      expect(m.alerts.map((a) => a.labels.instance)).toEqual(['b']);
      expect(m.ignored.map((i) => [i.title, i.status])).toEqual([
        ['1 more alert of this group', undefined],
        ['HighErrorRate: 5xx', 'resolved'],
      ]);
    });
  });

  it("PagerDuty's ping (pagey.ping) is accepted with nothing to act on", () => {
    expect(deliveryOk('pagerduty', fixture('pagerduty-ping.json'))).toEqual({ alerts: [], ignored: [] });
  });
});

describe('sentry refusals say what was expected (found by test/edges-random.test.ts)', () => {
  function refusal(mutate: (event: Record<string, unknown>) => void): string {
    const body = fixture('sentry-issue-alert.json');
    mutate((body.data as { event: Record<string, unknown> }).event);
    const result = parseAlertDelivery('sentry', body, { now: NOW, sentryResource: 'event_alert' });
    if (result.ok) throw new Error('expected a refusal');
    return result.refusal.message;
  }

  it('a tag value that is neither a string nor null', () => {
    expect(refusal((e) => ((e.tags as unknown[][])[0] = ['browser', 7]))).toBe(
      'data.event.tags[0][1]: expected a string or null, got 7',
    );
  });

  it('a project that is neither a number nor a string', () => {
    expect(refusal((e) => (e.project = null))).toBe(
      'data.event.project: expected a number or a string, got null',
    );
  });
});
