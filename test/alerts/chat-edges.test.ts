/**
 * parseChatAlert decisions no other test pinned down (found by mutation testing of
 * src/alerts/chat.ts). Pure; no Redis.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseChatAlert } from '../../src/alerts/chat.js';
import { compileMatchers, mapAlert } from '../../src/alerts/mapping.js';
import { parseAlertDelivery } from '../../src/alerts/parsers.js';
import type { AlertSource } from '../../src/alerts/types.js';
import { fileConfigSchema } from '../../src/config.js';

const config = {
  file: fileConfigSchema.parse({
    alerts: { watch: { slack: ['C0WATCHED'], discord: ['111122223333'] } },
    environments: { production: { alertMatchers: ['checkout'] }, staging: {}, preview: {} },
  }),
};
const slugs = Object.keys(config.file.environments);
const matchers = compileMatchers(config.file.environments);
const read = (text: string) => parseChatAlert(text, 'C0WATCHED', 'slack', config, { at: 1_000 });

describe('parseChatAlert: environments', () => {
  it('"environment: dev checkout is down" names dev (no such environment): unmapped, not matched to production', () => {
    const alert = read('[FIRING:1] environment: dev checkout is down');
    expect(alert?.labels.env).toBe('dev');
    expect(alert && mapAlert(alert, slugs, matchers)).toMatchObject({ ok: false });
  });
});

describe('parseChatAlert: incident key', () => {
  it("a bot title is one incident per channel, whatever the title's case", () => {
    const firing = read('[FIRING:1] HighLatency (production)');
    expect(read('[RESOLVED] highlatency (PRODUCTION)')?.fingerprint).toBe(firing?.fingerprint);
    const elsewhere = parseChatAlert('[FIRING:1] HighLatency (production)', 'C0OTHER', 'slack', {
      file: { ...config.file, alerts: { ...config.file.alerts, watch: { slack: ['C0OTHER'], discord: [] } } },
    });
    expect(elsewhere?.fingerprint).toBeDefined();
    expect(elsewhere?.fingerprint).not.toBe(firing?.fingerprint);
  });
});

describe('parseChatAlert: bounds', () => {
  it('reads the first 4,000 characters of a message only', () => {
    const long = `[FIRING:1] checkout errors\n${'x'.repeat(5_000)}\nenv=staging`;
    const alert = read(long);
    expect(alert?.text.length).toBeLessThanOrEqual(4_000);
    expect(alert?.labels.env).toBeUndefined();
  });
});

describe('parseChatAlert: status tags', () => {
  it('a leading [OK] tag resolves, whatever words follow', () => {
    expect(read('[OK] checkout 5xx errors (production)')?.status).toBe('resolved');
  });

  it('"never recovered", "without recovery", "yet to be resolved" are no resolution', () => {
    expect(read('checkout errors since the deploy, never recovered')?.status).toBe('firing');
    expect(read('checkout 5xx errors without recovery')?.status).toBe('firing');
    expect(read('checkout errors yet to be resolved')?.status).toBe('firing');
  });

  it('a leading [PROBLEM] tag fires, whatever words follow', () => {
    expect(read('[PROBLEM] checkout disk full (production): the recovery job failed')?.status).toBe('firing');
  });

  it('the status tag after a leading emoji decides over words later in the message', () => {
    expect(
      read(':rotating_light: [FIRING:1] HighLatency (production)\nsummary: previously resolved')?.status,
    ).toBe('firing');
    expect(read('🔥 [FIRING:1] HighLatency (production)\nsummary: previously resolved')?.status).toBe(
      'firing',
    );
  });

  it('"env = qa" (spaces around =) names qa even in prose: unmapped, not matched to production', () => {
    const alert = read('[FIRING:1] checkout down env = qa since the deploy');
    expect(alert?.labels.env).toBe('qa');
    expect(alert && mapAlert(alert, slugs, matchers)).toMatchObject({ ok: false });
  });
});

describe('parseChatAlert: the first line decides', () => {
  const text = '[FIRING:1] HighErrorRate (production)\nRunbook: see how it was resolved last time';

  it("a leading blank line (a template's) does not change the title or incident key", () => {
    const plain = read(text);
    expect(plain).toMatchObject({ status: 'firing', title: 'HighErrorRate (production)' });
    for (const lead of ['\n', ' \n', '\n\n']) {
      const withBlank = read(`${lead}${text}`);
      expect(withBlank?.title).toBe('HighErrorRate (production)');
      expect(withBlank?.fingerprint).toBe(plain?.fingerprint);
    }
  });

  // DEFECT (fails on the current code): statusOf reads text.split('\n')[0] (the blank line here), while
  // the title and fingerprint come from the first non-blank line; a template that leaves a leading
  // newline makes a firing notification that mentions "resolved" resolve its own incident.
  it("a leading blank line does not change the status its first line's tag gives", () => {
    for (const lead of ['\n', ' \n', '\n\n']) {
      expect(read(`${lead}${text}`)?.status, JSON.stringify(lead)).toBe('firing');
    }
  });
});

describe('parseChatAlert: missing data, as by webhook', () => {
  const fixture = (name: string) =>
    JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/alerts', name), 'utf8')) as Record<
      string,
      unknown
    >;
  /** The webhook's reading of a fixture: its alerts (marks only) and its ignored entries' details. */
  function webhook(source: AlertSource, body: unknown) {
    const parsed = parseAlertDelivery(source, body, { now: 1_000 });
    if (!parsed.ok) throw new Error(parsed.refusal.message);
    return {
      alerts: parsed.value.alerts.map((a) => ({ status: a.status, missingData: a.missingData })),
      details: parsed.value.ignored.map((i) => i.detail),
    };
  }
  /** As its contact point posts a Grafana notification: the title and the message. */
  const posted = (body: Record<string, unknown>) => read(`${String(body.title)}\n${String(body.message)}`);

  it("Grafana's DatasourceError (the query failed) carries the webhook's detail, whatever the status", () => {
    const grafana = fixture('grafana-datasource-error.json');
    const { alerts, details } = webhook('grafana', grafana);
    expect(alerts).toEqual([]);
    expect(details[0]).toContain('"High latency" could not query its datasource');
    const message = posted(grafana);
    expect(message).toMatchObject({ status: 'firing', noEvidence: details[0] });
    expect(message?.missingData).toBeUndefined();
    // Without the labels, the title names it (Alertmanager's title: the group's label values).
    expect(read('[RESOLVED] DatasourceError Checkout (production)')).toMatchObject({
      status: 'resolved',
      noEvidence:
        'DatasourceError says the rule could not query its datasource (an error or a time-out), not that the deployment is bad: no rollback is suggested for it.',
    });
  });

  it("Grafana's DatasourceNoData (the query returned nothing) is an alert marked missingData, as by webhook", () => {
    const grafana = fixture('grafana-datasource-no-data.json');
    expect(webhook('grafana', grafana)).toEqual({
      alerts: [{ status: 'firing', missingData: true }],
      details: [],
    });
    for (const text of [
      `${String(grafana.title)}\n${String(grafana.message)}`,
      '[FIRING:1] DatasourceNoData Checkout (production)',
      // Beside a DatasourceError, the rule also returned nothing somewhere: no data.
      '[FIRING:2] Checkout (production)\n - alertname = DatasourceError\n - alertname = DatasourceNoData',
    ]) {
      const alert = read(text);
      expect({
        text,
        status: alert?.status,
        missingData: alert?.missingData,
        noEvidence: alert?.noEvidence,
      }).toEqual({ text, status: 'firing', missingData: true, noEvidence: undefined });
    }
    // Data came back: a resolution as any, unmarked.
    const back = read('[RESOLVED] DatasourceNoData Checkout (production)');
    expect(back).toMatchObject({ status: 'resolved' });
    expect([back?.missingData, back?.noEvidence]).toEqual([undefined, undefined]);
  });

  it("Datadog's [No Data] / [Re-No Data] status tags: an alert marked missingData, read as firing (Re-No Data a re-notification)", () => {
    expect(webhook('datadog', fixture('datadog-default-no-data.json'))).toEqual({
      alerts: [{ status: 'firing', missingData: true }],
      details: [],
    });
    for (const [text, renotification] of [
      ['[P2] [No Data on {env:production,service:api}] API heartbeat', undefined],
      ['[No Data] checkout heartbeat (production)', undefined],
      [':rotating_light: *[Re-No Data] checkout errors* env:production', true],
      ['🔥 [P1] [Re-No Data on {host:web-1}] checkout latency [prod]', true],
    ] as const) {
      const alert = read(text);
      expect({
        text,
        status: alert?.status,
        missingData: alert?.missingData,
        renotification: alert?.renotification,
        noEvidence: alert?.noEvidence,
      }).toEqual({ text, status: 'firing', missingData: true, renotification, noEvidence: undefined });
    }
  });

  it('a real alert is not marked: other alert names, a recovery, "no data" in prose', () => {
    for (const text of [
      '[FIRING:1] HighLatency (production)\nLabels:\n - alertname = HighLatency\n - rulename = High latency',
      // A group listing a real alert beside a missing-data one is about that alert too.
      '[FIRING:2] Checkout (production)\n - alertname = DatasourceNoData\n - alertname = HighErrorRate',
      '[FIRING:2] Checkout (production)\n - alertname = DatasourceError\n - alertname = HighErrorRate',
      '[FIRING:1] HighErrorRate (production): the DatasourceError panel is red',
      '[No Data Recovery] checkout heartbeat (production)',
      '[P1] [Triggered] checkout errors: no data since the deploy',
      '[P1] [Triggered] [No Data] checkout errors',
    ]) {
      const alert = read(text);
      expect([text, alert?.missingData, alert?.noEvidence]).toEqual([text, undefined, undefined]);
    }
  });
});
