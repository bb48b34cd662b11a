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
    const cases: [string, string, unknown[]][] = [
      ['alertmanager', 'alertmanager-firing.json', ['suggested']],
      ['alertmanager', 'alertmanager-grouped.json', ['suggested', 'deduplicated']],
      ['grafana', 'grafana-firing.json', ['suggested', 'deduplicated']],
      ['datadog', 'datadog-triggered.json', ['suggested']],
      ['sentry', 'sentry-issue-alert.json', ['suggested']],
      ['pagerduty', 'pagerduty-triggered.json', ['suggested']],
      ['pagerduty', 'pagerduty-acknowledged.json', []],
      ['generic', 'generic-firing.json', ['suggested']],
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
    }
    expect(s.h.sink.suggestions).toHaveLength(7);
    expect(s.h.sink.resolvedCalls).toHaveLength(6);
  });

  it('answers 400 naming the invalid field, and for bodies that are not JSON', async () => {
    const s = await start();
    const body = JSON.parse(fixture('alertmanager-firing.json')) as { alerts: { startsAt: string }[] };
    const first = body.alerts[0];
    if (first) first.startsAt = 'not a date';
    const bad = await post(s, 'alertmanager', JSON.stringify(body));
    expect(bad).toEqual({
      status: 400,
      body: { error: 'invalid_payload', message: 'alerts[0].startsAt: expected an ISO date' },
    });
    const notJson = await post(s, 'generic', '{"title": ');
    expect(notJson.status).toBe(400);
    expect(notJson.body.message).toContain('(root): expected a JSON body');
    expect(await alertCount(s.h.metrics, 'invalid')).toBe(2);
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
