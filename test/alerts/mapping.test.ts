import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  compileMatcher,
  compileMatchers,
  mapAlert,
  resolveEnvironmentExact,
  resolveEnvironmentName,
} from '../../src/alerts/mapping.js';
import { parseAlertPayload } from '../../src/alerts/parsers.js';
import { type AlertSource, type NormalizedAlert, normalizedAlert } from '../../src/alerts/types.js';

const slugs = ['production', 'staging', 'preview'];
const matchers = compileMatchers({
  production: { alertMatchers: ['checkout-api', '/\\bshop\\.example\\.com\\b/i'] },
  staging: { alertMatchers: ['/stg-[0-9]+/'] },
  preview: { alertMatchers: [] },
});

function alert(labels: Record<string, string>, title = 'Something broke', text = ''): NormalizedAlert {
  return normalizedAlert({ source: 'generic', status: 'firing', title, startedAt: 0, labels, text });
}

function fromFixture(source: AlertSource, name: string): NormalizedAlert {
  const body: unknown = JSON.parse(
    readFileSync(join(import.meta.dirname, '../fixtures/alerts', name), 'utf8'),
  );
  const parsed = parseAlertPayload(source, body, { now: 0 });
  if (!parsed.ok || !parsed.value[0]) throw new Error('fixture did not parse');
  return parsed.value[0];
}

describe('resolveEnvironmentName', () => {
  it('resolves exact, alias and unique prefix', () => {
    expect(resolveEnvironmentName(slugs, 'Production')).toBe('production');
    expect(resolveEnvironmentName(slugs, 'prod')).toBe('production');
    expect(resolveEnvironmentName(slugs, 'prd')).toBe('production');
    expect(resolveEnvironmentName(slugs, 'live')).toBe('production');
    expect(resolveEnvironmentName(slugs, 'stg')).toBe('staging');
    expect(resolveEnvironmentName(slugs, 'pre')).toBe('preview');
    expect(resolveEnvironmentName(slugs, 'p')).toBeUndefined();
    expect(resolveEnvironmentName(slugs, 'qa')).toBeUndefined();
    expect(resolveEnvironmentName(['prod-eu', 'prod-us'], 'prod')).toBeUndefined();
  });
});

describe('resolveEnvironmentExact', () => {
  it('resolves exact names and aliases, never a prefix', () => {
    expect(resolveEnvironmentExact(slugs, 'Production')).toBe('production');
    expect(resolveEnvironmentExact(slugs, 'prod')).toBe('production');
    expect(resolveEnvironmentExact(slugs, 'stage')).toBe('staging');
    expect(resolveEnvironmentExact(slugs, 'product')).toBeUndefined();
    expect(resolveEnvironmentExact(slugs, 'pre')).toBeUndefined();
    expect(resolveEnvironmentExact(slugs, 'st')).toBeUndefined();
  });
});

describe('mapAlert', () => {
  it("reads OpenTelemetry's deployment.environment.name, and its Prometheus label deployment_environment_name", () => {
    // An Alertmanager alert for a service instrumented with OpenTelemetry (labels translated from OTLP
    // by Prometheus). production's matcher "checkout-api" must not claim a preview alert.
    const body = {
      version: '4',
      groupKey: '{}:{alertname="HighErrorRate"}',
      truncatedAlerts: 0,
      status: 'firing',
      receiver: 'switchyard',
      groupLabels: { alertname: 'HighErrorRate' },
      commonLabels: {},
      commonAnnotations: {},
      externalURL: 'http://alertmanager:9093',
      alerts: [
        {
          status: 'firing',
          labels: {
            alertname: 'HighErrorRate',
            service_name: 'checkout-api',
            deployment_environment_name: 'preview',
          },
          annotations: { summary: 'checkout-api 5xx above 5%' },
          startsAt: '2026-11-29T11:27:00Z',
          endsAt: '0001-01-01T00:00:00Z',
          generatorURL: 'http://prometheus:9090/graph',
          fingerprint: '1a30ba71cca2921f',
        },
      ],
    };
    const parsed = parseAlertPayload('alertmanager', body, { now: 0 });
    if (!parsed.ok || !parsed.value[0]) throw new Error('payload did not parse');
    expect(mapAlert(parsed.value[0], slugs, matchers)).toEqual({
      ok: true,
      environment: 'preview',
      by: 'label',
      via: 'label deployment_environment_name=preview',
    });
    // The attribute itself (an OTLP-native sender, or a generic alert's labels).
    expect(
      mapAlert(alert({ 'deployment.environment.name': 'stg' }, 'checkout-api errors'), slugs, matchers),
    ).toEqual({
      ok: true,
      environment: 'staging',
      by: 'label',
      via: 'label deployment.environment.name=stg',
    });
    // Naming no known environment leaves it unmapped, as every environment label does.
    expect(
      mapAlert(alert({ deployment_environment_name: 'qa' }, 'checkout-api errors'), slugs, matchers),
    ).toMatchObject({
      ok: false,
    });
  });

  it('maps an environment label of an alert read from chat exactly or by alias, never by prefix', () => {
    const chat = (env: string, source: 'slack' | 'discord' = 'slack') =>
      mapAlert({ ...alert({ env }, 'checkout-api down'), source }, slugs, matchers);
    expect(chat('prod')).toMatchObject({ ok: true, environment: 'production' });
    expect(chat('staging', 'discord')).toMatchObject({ ok: true, environment: 'staging' });
    const prefix = chat('produc');
    expect(prefix.ok).toBe(false);
    if (!prefix.ok) expect(prefix.reason).toContain('env=produc names no known environment');
    // A webhook label may still be a unique prefix.
    expect(mapAlert(alert({ env: 'produc' }), slugs, matchers)).toMatchObject({ environment: 'production' });
  });

  it('uses environment labels first', () => {
    expect(mapAlert(alert({ env: 'prod' }), slugs, matchers)).toMatchObject({
      ok: true,
      environment: 'production',
    });
    expect(mapAlert(alert({ deployment_environment: 'staging' }), slugs, matchers)).toMatchObject({
      environment: 'staging',
    });
  });

  it('refuses an environment label naming an unknown environment, even when a matcher would match', () => {
    const r = mapAlert(alert({ env: 'qa' }, 'checkout-api down'), slugs, matchers);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain('env=qa');
  });

  it('accepts a service label naming an environment', () => {
    expect(mapAlert(alert({ service: 'staging' }), slugs, matchers)).toMatchObject({
      environment: 'staging',
      by: 'service',
    });
  });

  it('applies substring and regex matchers to title, text and labels', () => {
    expect(mapAlert(alert({ service: 'checkout-api' }), slugs, matchers)).toMatchObject({
      environment: 'production',
      by: 'matcher',
      via: 'matcher checkout-api',
    });
    expect(mapAlert(alert({}, 'Errors on SHOP.example.com'), slugs, matchers)).toMatchObject({
      environment: 'production',
    });
    expect(mapAlert(alert({}, 'x', 'host stg-12 down'), slugs, matchers)).toMatchObject({
      environment: 'staging',
    });
  });

  it('leaves ambiguous and unmatched alerts unmapped', () => {
    expect(mapAlert(alert({}, 'checkout-api on stg-3'), slugs, matchers).ok).toBe(false);
    expect(mapAlert(alert({}, 'disk full'), slugs, matchers).ok).toBe(false);
  });

  it('maps every vendor fixture', () => {
    expect(mapAlert(fromFixture('alertmanager', 'alertmanager-firing.json'), slugs, matchers)).toMatchObject({
      environment: 'production',
    });
    expect(mapAlert(fromFixture('grafana', 'grafana-firing.json'), slugs, matchers)).toMatchObject({
      environment: 'production',
    });
    expect(mapAlert(fromFixture('datadog', 'datadog-triggered.json'), slugs, matchers)).toMatchObject({
      via: 'label env=production',
    });
    expect(mapAlert(fromFixture('sentry', 'sentry-issue-alert.json'), slugs, matchers)).toMatchObject({
      via: 'label environment=production',
    });
    expect(mapAlert(fromFixture('pagerduty', 'pagerduty-triggered.json'), slugs, matchers)).toMatchObject({
      via: 'matcher checkout-api',
    });
  });
});

describe('compileMatcher', () => {
  it('drops stateful flags and falls back to a literal on a bad regex', () => {
    const g = compileMatcher('/api/g');
    expect(g.kind === 'regex' && g.re.flags).toBe('');
    expect(compileMatcher('/(/')).toMatchObject({ kind: 'substring', needle: '/(/' });
  });
});
