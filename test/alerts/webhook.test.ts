/**
 * The alert webhook over real HTTP on 127.0.0.1. The loopback rule is exercised through the handler's
 * `peerAddress` hook (returning a documentation address, 203.0.113.7) rather than binding a public
 * interface: tests only ever listen on loopback.
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isLoopback, registerAlertWebhooks } from '../../handlers/webhooks/alerts.js';
import { HttpServer } from '../../src/http.js';
import { alertCount, createHarness, type Harness } from './helpers.js';

const fixtureDir = join(import.meta.dirname, '../fixtures/alerts');
const fixture = (name: string) => readFileSync(join(fixtureDir, name), 'utf8');

interface Started {
  readonly h: Harness;
  readonly base: string;
  readonly http: HttpServer;
}

let started: Started | undefined;
let peer: string | undefined;

afterEach(async () => {
  await started?.http.close();
  await started?.h.close();
  started = undefined;
  peer = undefined;
});

const FILE = {
  environments: {
    production: { channels: { slack: 'C0ALERTS' }, alertMatchers: ['checkout'] },
    preview: {},
  },
};

async function start(
  opts: { env?: Record<string, string>; alerts?: Record<string, unknown> } = {},
): Promise<Started> {
  const h = await createHarness({ file: { ...FILE, alerts: opts.alerts ?? {} }, env: opts.env ?? {} });
  const http = new HttpServer();
  registerAlertWebhooks(http, {
    intake: h.service,
    config: h.config,
    metrics: h.metrics,
    clock: h.clock,
    peerAddress: (req) => peer ?? req.socket.remoteAddress,
  });
  const port = await http.listen(0, '127.0.0.1');
  started = { h, http, base: `http://127.0.0.1:${port}` };
  return started;
}

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

async function post(s: Started, source: string, body: string | Buffer, headers: Record<string, string> = {}) {
  const res = await fetch(`${s.base}/webhooks/alerts/${source}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, body: parsed } satisfies Reply;
}

const hmac = (secret: string, body: string) => createHmac('sha256', secret).update(body).digest('hex');

function outcomes(reply: Reply): unknown[] {
  const alerts = reply.body.alerts;
  return Array.isArray(alerts) ? alerts.map((a) => (a as { outcome?: unknown }).outcome) : [];
}

describe('POST /webhooks/alerts/:source', () => {
  it('accepts every vendor fixture and answers 202 with a summary per alert', async () => {
    const s = await start();
    // Every firing fixture points at the same rollback of production: the first posts the suggestion,
    // the other incidents join it (one message listing them all).
    const cases: [string, string, unknown[]][] = [
      ['alertmanager', 'alertmanager-firing.json', ['suggested']],
      // web-3 resolved while the rest of its group still fires in production: ignored.
      ['alertmanager', 'alertmanager-grouped.json', ['grouped', 'deduplicated', 'ignored']],
      ['grafana', 'grafana-firing.json', ['grouped', 'deduplicated']],
      ['datadog', 'datadog-triggered.json', ['grouped']],
      ['sentry', 'sentry-issue-alert.json', ['grouped']],
      ['pagerduty', 'pagerduty-triggered.json', ['grouped']],
      ['pagerduty', 'pagerduty-acknowledged.json', []],
      ['generic', 'generic-firing.json', ['grouped']],
      ['alertmanager', 'alertmanager-resolved.json', ['resolved']],
      ['grafana', 'grafana-resolved.json', ['resolved']],
      ['datadog', 'datadog-recovered.json', ['resolved']],
      ['sentry', 'sentry-issue-resolved.json', ['resolved']],
      ['pagerduty', 'pagerduty-resolved.json', ['resolved']],
      ['generic', 'generic-resolved.json', ['resolved']],
    ];
    for (const [source, name, expected] of cases) {
      const reply = await post(s, source, fixture(name));
      expect({ name, status: reply.status, outcomes: outcomes(reply) }).toEqual({
        name,
        status: 202,
        outcomes: expected,
      });
      expect(reply.body.source).toBe(source);
      expect(reply.body.received).toBe(expected.length);
      if (expected.length > 0) expect(reply.body.environments).toEqual(['production']);
      await s.h.service.idle();
    }
    expect(s.h.sink.suggestions).toHaveLength(1);
    const planId = s.h.sink.refreshCalls[0]?.planId ?? '';
    const record = await s.h.flow.get(planId);
    expect(record?.alerts?.map((a) => a.alert.source)).toEqual([
      'alertmanager',
      'alertmanager',
      'grafana',
      'datadog',
      'sentry',
      'pagerduty',
      'generic',
    ]);
    // Six resolved; the second Alertmanager group never did, so the suggestion still fires.
    expect(record?.alerts?.map((a) => a.resolvedAt !== undefined)).toEqual([
      true,
      false,
      true,
      true,
      true,
      true,
      true,
    ]);
    expect(s.h.sink.resolvedCalls).toHaveLength(0);
  });

  it('answers 400 naming the invalid field, and for bodies that are not JSON', async () => {
    const s = await start();
    const body = JSON.parse(fixture('alertmanager-firing.json')) as { alerts: { startsAt: string }[] };
    const first = body.alerts[0];
    if (first) first.startsAt = 'not a date';
    const bad = await post(s, 'alertmanager', JSON.stringify(body));
    expect(bad).toEqual({
      status: 400,
      body: {
        error: 'invalid_payload',
        message: 'alerts[0].startsAt: expected an ISO date, got "not a date"',
      },
    });
    const notJson = await post(s, 'generic', '{"title": ');
    expect(notJson.status).toBe(400);
    expect(notJson.body.message).toContain('(root): expected a JSON body');
    expect(await alertCount(s.h.metrics, 'invalid')).toBe(2);
  });

  it('answers 400 naming the field to a deeply nested or huge value, bounded (not a 500 senders retry forever)', async () => {
    const s = await start({ alerts: { maxBodyBytes: 1_048_576 } });
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    const huge = JSON.stringify('x'.repeat(200_000));
    const cases: [string, string, string][] = [
      [
        'generic',
        `{"title":"checkout down","status":${deep}}`,
        'status: expected one of "firing", "resolved", got [[[[…]]]]',
      ],
      ['sentry', `{"action":${deep},"data":{}}`, 'action: expected "triggered"'],
      [
        'alertmanager',
        `{"version":"4","groupKey":"g","status":${deep},"alerts":[]}`,
        'status: expected one of',
      ],
      ['generic', `{"title":"checkout down","status":${huge}}`, 'status: expected one of'],
      ['sentry', `{"action":${huge},"data":{}}`, 'action: expected "triggered"'],
      [
        'alertmanager',
        `{"version":"4","groupKey":"g","status":${huge},"alerts":[]}`,
        'status: expected one of',
      ],
    ];
    for (const [source, body, start] of cases) {
      const reply = await post(s, source, body);
      expect({ source, status: reply.status, error: reply.body.error }).toEqual({
        source,
        status: 400,
        error: 'invalid_payload',
      });
      const message = String(reply.body.message);
      expect(message.startsWith(start), message.slice(0, 120)).toBe(true);
      expect(message.length).toBeLessThan(1_000);
    }
  });

  it('answers 404 listing the valid sources', async () => {
    const s = await start();
    const reply = await post(s, 'nagios', '{}');
    expect(reply.status).toBe(404);
    expect(reply.body.message).toBe(
      'Unknown alert source "nagios". Valid sources: alertmanager, grafana, datadog, sentry, pagerduty, generic.',
    );
  });

  it('answers 413 over alerts.maxBodyBytes, whether declared or streamed', async () => {
    const s = await start({ alerts: { maxBodyBytes: 1024 } });
    const big = JSON.stringify({ title: 'x'.repeat(4096) });
    expect((await post(s, 'generic', big)).status).toBe(413);
    // Chunked, with no content-length: the limit applies while reading.
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(`${s.base}/webhooks/alerts/generic`);
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { 'transfer-encoding': 'chunked' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      for (let i = 0; i < 8; i++) req.write('x'.repeat(512));
      req.end();
    });
    expect(status).toBe(413);
    expect((await post(s, 'generic', fixture('generic-firing.json'))).status).toBe(202);
  });

  it('with ALERT_WEBHOOK_SECRET set, needs the bearer token or a vendor signature', async () => {
    const s = await start({
      env: { ALERT_WEBHOOK_SECRET: 'hook-secret-123' },
      alerts: { sentrySecret: 'sentry-secret', pagerdutySecret: 'pd-secret' },
    });
    const body = fixture('generic-firing.json');
    expect((await post(s, 'generic', body)).status).toBe(401);
    expect((await post(s, 'generic', body, { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await post(s, 'generic', body, { authorization: 'Bearer hook-secret-123' })).status).toBe(202);

    const sentry = fixture('sentry-issue-alert.json');
    expect((await post(s, 'sentry', sentry, { 'sentry-hook-signature': hmac('nope', sentry) })).status).toBe(
      401,
    );
    expect(
      (await post(s, 'sentry', sentry, { 'sentry-hook-signature': hmac('sentry-secret', sentry) })).status,
    ).toBe(202);

    const pd = fixture('pagerduty-triggered.json');
    const rotated = `v1=${hmac('old-secret', pd)},v1=${hmac('pd-secret', pd)}`;
    expect((await post(s, 'pagerduty', pd, { 'x-pagerduty-signature': rotated })).status).toBe(202);
    expect((await post(s, 'pagerduty', pd, { 'x-pagerduty-signature': `v1=${hmac('x', pd)}` })).status).toBe(
      401,
    );
    // A signature over another body does not authorize this one.
    expect(
      (await post(s, 'pagerduty', `${pd} `, { 'x-pagerduty-signature': `v1=${hmac('pd-secret', pd)}` }))
        .status,
    ).toBe(401);
  });

  it('with a vendor secret and no ALERT_WEBHOOK_SECRET, loopback requests still need the signature', async () => {
    const s = await start({ alerts: { sentrySecret: 'sentry-secret' } });
    const sentry = fixture('sentry-issue-alert.json');
    expect((await post(s, 'sentry', sentry)).status).toBe(401);
    expect((await post(s, 'sentry', sentry, { 'sentry-hook-signature': 'deadbeef' })).status).toBe(401);
    expect(
      (await post(s, 'sentry', sentry, { 'sentry-hook-signature': hmac('sentry-secret', sentry) })).status,
    ).toBe(202);
  });

  it('without ALERT_WEBHOOK_SECRET, only loopback peers are accepted', async () => {
    const s = await start();
    peer = '203.0.113.7';
    const body = fixture('generic-firing.json');
    const refused = await post(s, 'generic', body);
    expect(refused.status).toBe(403);
    expect(refused.body.message).toContain('loopback only');
    expect(s.h.sink.suggestions).toHaveLength(0);
    peer = '::ffff:127.0.0.9';
    expect((await post(s, 'generic', body)).status).toBe(202);
  });

  it('without ALERT_WEBHOOK_SECRET, a request a proxy forwarded (loopback peer and Host) is refused; with it, accepted', async () => {
    const s = await start();
    const body = fixture('generic-firing.json');
    for (const headers of [
      { 'x-forwarded-for': '198.51.100.4' },
      { forwarded: 'for=198.51.100.4' },
      { 'x-real-ip': '198.51.100.4' },
    ]) {
      const refused = await post(s, 'generic', body, headers);
      expect(refused.status).toBe(403);
      expect(refused.body.message).toContain('ALERT_WEBHOOK_SECRET');
    }
    expect(s.h.sink.suggestions).toHaveLength(0);
    const secured = await start({ env: { ALERT_WEBHOOK_SECRET: 'hook-secret-123' } });
    const through = await post(secured, 'generic', body, {
      'x-forwarded-for': '198.51.100.4',
      authorization: 'Bearer hook-secret-123',
    });
    expect(through.status).toBe(202);
  });

  it('refuses requests from web pages (cross-site request forgery) and changes nothing', async () => {
    const s = await start();
    const body = fixture('generic-firing.json');
    for (const headers of [
      { origin: 'https://evil.example' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site', origin: 'http://127.0.0.1:5173' },
    ]) {
      const refused = await post(s, 'generic', body, headers);
      expect(refused.status).toBe(403);
      expect(refused.body.message).toContain('not accepted from web pages');
    }
    expect(s.h.sink.suggestions).toHaveLength(0);
    expect(await alertCount(s.h.metrics, 'forbidden')).toBe(3); // a misconfigured sender shows in /metrics
  });

  it('without ALERT_WEBHOOK_SECRET, a Host that is not loopback is refused (DNS rebinding)', async () => {
    const s = await start();
    const body = fixture('generic-firing.json');
    const port = new URL(s.base).port;
    const send = (host: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port, method: 'POST', path: '/webhooks/alerts/generic', headers: { host } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    expect(await send(`rebind.evil.example:${port}`)).toBe(403);
    expect(s.h.sink.suggestions).toHaveLength(0);
    expect(await send(`localhost:${port}`)).toBe(202);
  });

  it('with ALERT_WEBHOOK_SECRET, a non-loopback peer with the bearer token is accepted', async () => {
    const s = await start({ env: { ALERT_WEBHOOK_SECRET: 'hook-secret-123' } });
    peer = '203.0.113.7';
    const body = fixture('generic-firing.json');
    expect((await post(s, 'generic', body)).status).toBe(401);
    expect((await post(s, 'generic', body, { authorization: 'Bearer hook-secret-123' })).status).toBe(202);
  });

  it('never crashes on hostile bodies', async () => {
    const s = await start({ alerts: { maxBodyBytes: 262_144 } });
    const hostile: (string | Buffer)[] = [
      '',
      'null',
      '[]',
      '"string"',
      '1e999999',
      '{"__proto__":{"polluted":true},"title":"x"}',
      '{"constructor":{"prototype":{"polluted":true}}}',
      `${'['.repeat(50_000)}${']'.repeat(50_000)}`,
      `{"a":${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}}`,
      Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80, 0x7b]),
      '{"title":"\\ud800","environment":"production"}',
      JSON.stringify({
        event: { event_type: 'incident.triggered', data: { id: 'P1', title: { toString: 1 } } },
      }),
      JSON.stringify({ version: '4', groupKey: 'k', status: 'firing', alerts: Array(5_000).fill({}) }),
      JSON.stringify({ action: 'triggered', data: { event: { issue_id: 1, title: 't', tags: [[1, 2]] } } }),
    ];
    for (const source of ['alertmanager', 'grafana', 'datadog', 'sentry', 'pagerduty', 'generic']) {
      for (const body of hostile) {
        const reply = await post(s, source, body);
        expect([202, 400]).toContain(reply.status);
      }
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((await post(s, 'generic', fixture('generic-firing.json'))).status).toBe(202);
  });
});

describe('POST /webhooks/alerts/:source: when chat is down, the sender retries', () => {
  it('answers 503 naming the chat post when the suggestion could not be posted; the retry suggests once', async () => {
    const s = await start();
    s.h.sink.failing = true; // the chat API is down
    const body = fixture('generic-firing.json');
    const failed = await post(s, 'generic', body);
    expect(failed.status).toBe(503);
    expect(failed.body.error).toBe('chat_post_failed');
    expect(failed.body.message).toContain('Posting to chat failed for 1 of 1 alert');
    expect(failed.body.message).toContain('chat API unavailable');
    expect(failed.body.message).toContain('retry later');
    expect(outcomes(failed)).toEqual(['failed']);
    s.h.sink.failing = false;
    const retried = await post(s, 'generic', body);
    expect(retried.status).toBe(202);
    expect(outcomes(retried)).toEqual(['suggested']);
    const again = await post(s, 'generic', body);
    expect(outcomes(again)).toEqual(['deduplicated']);
    expect(await alertCount(s.h.metrics, 'suggested')).toBe(1);
    expect(s.h.sink.suggestions).toHaveLength(2); // the failed attempt and the one posted
  });

  it('answers 202 with the failure when chat refused for good (the sender must not retry forever)', async () => {
    const s = await start();
    s.h.sink.refusing = true; // e.g. Slack's not_in_channel: no retry can change it
    const refused = await post(s, 'generic', fixture('generic-firing.json'));
    expect(refused.status).toBe(202);
    expect(outcomes(refused)).toEqual(['failed']);
    expect(refused.body.alerts).toMatchObject([
      { retry: false, detail: expect.stringContaining('not_in_channel') },
    ]);
  });

  it('counts each alert of a delivery once when handling fails part-way (Redis gone on the second of three)', async () => {
    const s = await start();
    const claim = s.h.dedupe.claim.bind(s.h.dedupe);
    let claims = 0;
    s.h.dedupe.claim = async (incident, now) => {
      claims += 1;
      if (claims === 2) throw new Error('Connection is closed.');
      return claim(incident, now);
    };
    const startedAt = s.h.clock.now() - 33 * 60_000;
    const failed = await post(
      s,
      'generic',
      JSON.stringify(
        ['Checkout 502s', 'Login errors', 'Search slow'].map((title, i) => ({
          environment: 'production',
          title,
          fingerprint: `inc-${i}`,
          startedAt,
        })),
      ),
    );
    expect(failed.status).toBe(503);
    // Redis's words (the connection closed under a claim), not an unnamed "could not handle".
    expect(failed.body.error).toBe('redis_unavailable');
    expect(String(failed.body.message)).toBe(
      'Switchyard cannot reach its Redis right now, so the alerts could not be handled; retry later.',
    );
    // The first was suggested; the second threw and the third was never handled: both failed. Three
    // alerts, three counts (the webhook no longer adds the whole delivery on top).
    const counts = Object.fromEntries(
      (await s.h.metrics.alerts.get()).values.map((v) => [String(v.labels.outcome), v.value]),
    );
    expect(counts).toEqual({ suggested: 1, failed: 2 });
  });

  it('answers 503 when the resolved edit failed; the retry edits the suggestion, once', async () => {
    const s = await start();
    expect(outcomes(await post(s, 'alertmanager', fixture('alertmanager-firing.json')))).toEqual([
      'suggested',
    ]);
    s.h.sink.failRefresh = 1;
    const resolved = fixture('alertmanager-resolved.json');
    const failed = await post(s, 'alertmanager', resolved);
    expect(failed.status).toBe(503);
    expect(failed.body.error).toBe('chat_post_failed');
    expect(failed.body.message).toContain('Editing the suggestion failed');
    expect(s.h.sink.refreshCalls).toHaveLength(0);
    const retried = await post(s, 'alertmanager', resolved);
    expect({ status: retried.status, outcomes: outcomes(retried) }).toEqual({
      status: 202,
      outcomes: ['resolved'],
    });
    expect(s.h.sink.refreshCalls).toHaveLength(1);
    expect(outcomes(await post(s, 'alertmanager', resolved))).toEqual(['resolved_unknown']);
    expect(s.h.sink.refreshCalls).toHaveLength(1);
  });
});

describe('POST /webhooks/alerts/:source: vendor formats', () => {
  it('Datadog default payload of a monitor with a priority: "[P1] [Recovered]" resolves, no new suggestion', async () => {
    const s = await start();
    expect(outcomes(await post(s, 'datadog', fixture('datadog-default-triggered.json')))).toEqual([
      'suggested',
    ]);
    const recovered = await post(s, 'datadog', fixture('datadog-default-recovered.json'));
    expect(recovered.status).toBe(202);
    expect(recovered.body.alerts).toMatchObject([{ status: 'resolved', outcome: 'resolved' }]);
    expect(s.h.sink.suggestions).toHaveLength(1);
    expect(s.h.sink.refreshCalls).toHaveLength(1);
    expect(s.h.sink.refreshCalls[0]?.alerts[0]?.resolvedAt).toBeDefined();
  });

  it('PagerDuty incident.reopened correlates with when it reopened', async () => {
    const s = await start();
    // Created at 09:30 (before the current deployment went live at 11:20), reopened at 11:57.
    const reply = await post(s, 'pagerduty', fixture('pagerduty-reopened.json'));
    expect(outcomes(reply)).toEqual(['suggested']);
    expect(s.h.sink.suggestions[0]?.sentence).toContain('went live 37 minutes before this alert started');
  });

  it('Sentry: issue webhooks other than resolved are accepted and ignored; metric alerts fire and resolve', async () => {
    const s = await start();
    const created = fixture('sentry-issue-created.json');
    const issue = (JSON.parse(created) as { data: unknown }).data;
    for (const body of [
      created,
      ...['assigned', 'archived', 'unresolved'].map((action) => JSON.stringify({ action, data: issue })),
    ]) {
      const reply = await post(s, 'sentry', body);
      expect({ status: reply.status, received: reply.body.received }).toEqual({ status: 202, received: 0 });
    }
    expect(s.h.sink.suggestions).toHaveLength(0);

    // An issue alert and a metric alert whose ids coincide are different incidents.
    const issueAlert = JSON.parse(fixture('sentry-issue-alert.json')) as {
      data: { event: { issue_id: string } };
    };
    issueAlert.data.event.issue_id = '4';
    const issueReply = await post(s, 'sentry', JSON.stringify(issueAlert));
    expect(outcomes(issueReply)).toEqual(['suggested']);
    const critical = await post(s, 'sentry', fixture('sentry-metric-critical.json'));
    expect(critical.body.alerts).toMatchObject([
      { status: 'firing', outcome: 'grouped', fingerprint: 'metric_alert:4', environment: 'production' },
    ]);
    await s.h.service.idle();
    const resolved = await post(s, 'sentry', fixture('sentry-metric-resolved.json'));
    expect(resolved.body.alerts).toMatchObject([{ status: 'resolved', outcome: 'resolved' }]);
    // Two edits of the one suggestion: the metric alert joined it, then it resolved (the metric alert
    // only: the issue still fires).
    expect(s.h.sink.refreshCalls).toHaveLength(2);
    expect(
      s.h.sink.refreshCalls[1]?.alerts.map((a) => [a.alert.fingerprint, a.resolvedAt !== undefined]),
    ).toEqual([
      ['4', false],
      ['metric_alert:4', true],
    ]);
    // The issue's own resolution edits it too.
    expect(
      outcomes(
        await post(
          s,
          'sentry',
          JSON.stringify({
            ...JSON.parse(fixture('sentry-issue-resolved.json')),
            data: { issue: { id: '4', title: 't' } },
          }),
        ),
      ),
    ).toEqual(['resolved']);
    expect(s.h.sink.refreshCalls).toHaveLength(3);
    expect(s.h.sink.refreshCalls[2]?.alerts.every((a) => a.resolvedAt !== undefined)).toBe(true);
  });

  it('Sentry: deliveries that are not alerts (comment, installation, error, activity) are accepted and ignored, not refused', async () => {
    const s = await start();
    const cases: [string, string][] = [
      ['comment', fixture('sentry-comment-created.json')],
      ['installation', fixture('sentry-installation-created.json')],
      ['error', JSON.stringify({ action: 'created', data: { error: { event_id: 'e1' } } })],
      ['activity_alert', JSON.stringify({ action: 'triggered', data: { issue: { id: '1', title: 'x' } } })],
    ];
    for (const [resource, body] of cases) {
      const reply = await post(s, 'sentry', body, { 'sentry-hook-resource': resource });
      expect({ resource, status: reply.status, received: reply.body.received }).toEqual({
        resource,
        status: 202,
        received: 0,
      });
      expect(reply.body.alerts).toEqual([
        {
          title: expect.any(String),
          outcome: 'ignored',
          detail: `Sentry-Hook-Resource "${resource}" is not an alert: accepted and ignored.`,
        },
      ]);
    }
    // Without the header (a proxy dropped it), the body's shape says the same.
    const comment = await post(s, 'sentry', fixture('sentry-comment-created.json'));
    expect({ status: comment.status, outcomes: outcomes(comment) }).toEqual({
      status: 202,
      outcomes: ['ignored'],
    });
    expect(await alertCount(s.h.metrics, 'ignored', 'sentry')).toBe(5);
    expect(await alertCount(s.h.metrics, 'invalid', 'sentry')).toBe(0);
    expect(s.h.sink.suggestions).toHaveLength(0);
  });

  it('Sentry: an issue resolved in the next release (or a release or commit to come) does not resolve its suggestion', async () => {
    const s = await start();
    const fired = await post(s, 'sentry', fixture('sentry-issue-alert.json'), {
      'sentry-hook-resource': 'event_alert',
    });
    expect(outcomes(fired)).toEqual(['suggested']);
    await s.h.service.idle();
    const reply = await post(s, 'sentry', fixture('sentry-issue-resolved-next-release.json'), {
      'sentry-hook-resource': 'issue',
    });
    expect({ status: reply.status, received: reply.body.received }).toEqual({ status: 202, received: 0 });
    expect(reply.body.alerts).toEqual([
      {
        title: 'ReferenceError: heck is not defined',
        status: 'resolved',
        fingerprint: '1117540176',
        outcome: 'ignored',
        detail:
          'Sentry resolves this issue in the next release: its fix is not known to be live in the deployment running now, so its suggestion is not marked resolved.',
      },
    ]);
    const incident = { environment: 'production', source: 'sentry', fingerprint: '1117540176' };
    expect((await s.h.dedupe.get(incident))?.resolved).toBe(false);
    expect(s.h.sink.refreshCalls).toHaveLength(0);
    // Once it is resolved for good (resolution_type "now"), the suggestion says so.
    const done = await post(s, 'sentry', fixture('sentry-issue-resolved.json'), {
      'sentry-hook-resource': 'issue',
    });
    expect(outcomes(done)).toEqual(['resolved']);
    expect((await s.h.dedupe.get(incident))?.resolved).toBe(true);
  });

  it('Datadog: variables rendered empty ("") are absent, not refused (Datadog does not retry a 4xx)', async () => {
    const s = await start();
    const body = {
      ...JSON.parse(fixture('datadog-triggered.json')),
      id: '',
      alert_id: '',
      alert_cycle_key: '',
      aggreg_key: '',
      date: '',
      last_updated: '',
      alert_scope: '',
      link: '',
    };
    const reply = await post(s, 'datadog', JSON.stringify(body));
    expect(reply.status).toBe(202);
    expect(reply.body.alerts).toMatchObject([
      {
        title: 'API error rate is high',
        status: 'firing',
        fingerprint: 'title:API error rate is high',
        environment: 'production',
      },
    ]);
    expect(await alertCount(s.h.metrics, 'invalid', 'datadog')).toBe(0);
  });

  it('Alertmanager and Grafana groups of more than 1,000 alerts (within the body limit) get their suggestion', async () => {
    const s = await start();
    const startsAt = '2026-11-29T11:55:00Z';
    const members = Array.from({ length: 1_001 }, (_, i) => ({
      status: 'firing',
      labels: { alertname: 'InstanceDown', env: 'production', job: 'web', instance: `web-${i}:9100` },
      annotations: { summary: 'Instance down' },
      startsAt,
      endsAt: '0001-01-01T00:00:00Z',
      generatorURL: 'http://prometheus:9090/graph',
      fingerprint: i.toString(16).padStart(16, '0'),
    }));
    const group = {
      version: '4',
      groupKey: '{}:{alertname="InstanceDown", env="production"}',
      truncatedAlerts: 0,
      status: 'firing',
      receiver: 'switchyard',
      groupLabels: { alertname: 'InstanceDown', env: 'production' },
      commonLabels: { alertname: 'InstanceDown', env: 'production', job: 'web' },
      commonAnnotations: { summary: 'Instance down' },
      externalURL: 'http://alertmanager:9093',
      alerts: members,
    };
    const body = JSON.stringify(group);
    expect(Buffer.byteLength(body)).toBeLessThan(1_048_576);
    const reply = await post(s, 'alertmanager', body);
    expect(reply.status).toBe(202);
    expect(reply.body.received).toBe(1_000);
    expect(outcomes(reply)[0]).toBe('suggested');
    expect(new Set(outcomes(reply).slice(1, 1_000))).toEqual(new Set(['deduplicated']));
    // The member past the first 1,000 is said, not dropped silently.
    expect((reply.body.alerts as unknown[]).slice(1_000)).toEqual([
      {
        title: '1 more alert of this group',
        fingerprint: '{}:{alertname="InstanceDown", env="production"}',
        outcome: 'ignored',
        detail:
          "Only the first 1,000 alerts of a notification are read: this one shares the group's incident and was not examined.",
      },
    ]);
    const grafana = await post(s, 'grafana', JSON.stringify({ ...group, groupKey: 'grafana-group' }));
    expect(grafana.status).toBe(202);
    expect(outcomes(grafana)[0]).toBe('grouped');
    expect(s.h.sink.suggestions).toHaveLength(1);
    await s.h.service.idle();
    expect(s.h.sink.refreshCalls.at(-1)?.alerts.map((a) => a.alert.source)).toEqual([
      'alertmanager',
      'grafana',
    ]);
  });
});

describe('isLoopback', () => {
  it('knows loopback addresses', () => {
    for (const a of ['127.0.0.1', '127.255.0.9', '::1', '::ffff:127.0.0.1', '0:0:0:0:0:ffff:127.1.2.3']) {
      expect(isLoopback(a)).toBe(true);
    }
    for (const a of [
      '10.0.0.1',
      '203.0.113.7',
      '::ffff:10.0.0.1',
      '::2',
      'localhost',
      '',
      undefined,
      '128.0.0.1',
    ]) {
      expect(isLoopback(a)).toBe(false);
    }
  });
});
