/**
 * Parser decisions no other test pinned down (found by mutation testing of src/alerts/parsers.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAlertPayload } from '../../src/alerts/parsers.js';
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
