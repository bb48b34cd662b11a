/**
 * Alert webhook behaviour no other test pinned down (found by mutation testing of
 * handlers/webhooks/alerts.ts). Real HTTP on 127.0.0.1; the loopback rule through `peerAddress`.
 */
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { type IncomingHttpHeaders, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SLACK_CALL_TIMEOUT_MS } from '../../handlers/slack/reporter.js';
import { registerAlertWebhooks } from '../../handlers/webhooks/alerts.js';
import {
  AlertService,
  ANSWER_BUDGET_MS,
  MISSING_DATA_DETAIL,
  PENDING_DETAIL,
  RENOTIFICATION_REASON,
} from '../../src/alerts/service.js';
import type { AlertIntake } from '../../src/alerts/types.js';
import { SwitchyardError } from '../../src/errors.js';
import { HttpServer } from '../../src/http.js';
import { plainText } from '../../src/views/format.js';
import { alertCount, createHarness, DEMO_SENTENCE, type Harness, MINUTE } from '../alerts/helpers.js';

const fixtureDir = join(import.meta.dirname, '../fixtures/alerts');
const fixture = (name: string) => readFileSync(join(fixtureDir, name), 'utf8');

interface Started {
  readonly h: Harness;
  readonly port: number;
  readonly http: HttpServer;
}

const running: Started[] = [];
const sockets: Socket[] = [];
let peer: string | undefined;

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const s of running.splice(0)) {
    await s.http.close();
    await s.h.close();
  }
  peer = undefined;
});

const FILE = {
  environments: {
    production: { channels: { slack: 'C0ALERTS' }, alertMatchers: ['checkout'] },
    preview: {},
  },
};

async function start(
  opts: {
    env?: Record<string, string>;
    alerts?: Record<string, unknown>;
    /** What the webhook hands alerts to (default: the harness's AlertService). */
    intake?: (h: Harness) => AlertIntake;
  } = {},
): Promise<Started> {
  const h = await createHarness({ file: { ...FILE, alerts: opts.alerts ?? {} }, env: opts.env ?? {} });
  const http = new HttpServer();
  registerAlertWebhooks(http, {
    intake: opts.intake?.(h) ?? h.service,
    config: h.config,
    metrics: h.metrics,
    clock: h.clock,
    peerAddress: (req) => peer ?? req.socket.remoteAddress,
  });
  const port = await http.listen(0, '127.0.0.1');
  const s = { h, http, port };
  running.push(s);
  return s;
}

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Record<string, unknown>;
}

/** POSTs over node:http (so Host may be set), to 127.0.0.1. */
function send(s: Started, path: string, body: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: s.port,
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json', ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: Record<string, unknown> = {};
          try {
            parsed = JSON.parse(text) as Record<string, unknown>;
          } catch {
            parsed = { raw: text };
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('POST /webhooks/alerts/:source', () => {
  it('a deploy platform fault is answered 503 saying it was the platform, in words with its code', async () => {
    const failing = (code: 'platform_unavailable' | 'internal') => (): AlertIntake => ({
      handle: async () => {
        throw new SwitchyardError(code, 'POST http://127.0.0.1:9/v2/x: connect ECONNREFUSED', {
          retry: true,
        });
      },
    });
    const platform = await start({ intake: failing('platform_unavailable') });
    const reply = await send(platform, '/webhooks/alerts/alertmanager', fixture('alertmanager-firing.json'));
    expect(reply.status).toBe(503);
    expect(reply.body).toEqual({
      error: 'unavailable',
      message:
        'Could not handle the alerts now (the deploy platform could not be reached: platform_unavailable); retry later.',
    });
    // Anything else says nothing of its insides.
    const other = await start({ intake: failing('internal') });
    const second = await send(other, '/webhooks/alerts/alertmanager', fixture('alertmanager-firing.json'));
    expect(second.body).toEqual({
      error: 'unavailable',
      message: 'Could not handle the alerts now; retry later.',
    });
  });

  it('reads the source case-insensitively (/webhooks/alerts/Alertmanager)', async () => {
    const s = await start();
    const reply = await send(s, '/webhooks/alerts/Alertmanager', fixture('alertmanager-firing.json'));
    expect(reply.status).toBe(202);
    expect(reply.body.source).toBe('alertmanager');
  });

  it('with ALERT_WEBHOOK_SECRET, a public Host name (behind its own domain) with the bearer token is accepted', async () => {
    const s = await start({ env: { ALERT_WEBHOOK_SECRET: 'hook-secret-123' } });
    peer = '203.0.113.7';
    const reply = await send(s, '/webhooks/alerts/generic', fixture('generic-firing.json'), {
      host: 'switchyard.example.com',
      authorization: 'Bearer hook-secret-123',
    });
    expect(reply.status).toBe(202);
  });

  it('alerts.maxBodyBytes is the largest body accepted: one byte more is refused, and the connection closed', async () => {
    const s = await start({ alerts: { maxBodyBytes: 1024 } });
    const sized = (n: number) => {
      const base = JSON.stringify({ title: 'checkout errors', text: '' });
      return JSON.stringify({ title: 'checkout errors', text: 'x'.repeat(n - base.length) });
    };
    expect(Buffer.byteLength(sized(1024))).toBe(1024);
    expect((await send(s, '/webhooks/alerts/generic', sized(1024))).status).toBe(202);
    const over = await send(s, '/webhooks/alerts/generic', sized(1025));
    expect(over.status).toBe(413);
    expect(over.body.message).toBe('Body larger than 1024 bytes (alerts.maxBodyBytes).');
    expect(over.headers.connection).toBe('close');
    expect(await alertCount(s.h.metrics, 'too_large', 'generic')).toBe(1);
  });

  it('answers 401 with WWW-Authenticate: Bearer when the token is missing or wrong, counted as unauthorized', async () => {
    const s = await start({ env: { ALERT_WEBHOOK_SECRET: 'hook-secret-123' } });
    const reply = await send(s, '/webhooks/alerts/generic', fixture('generic-firing.json'), {
      authorization: 'Bearer wrong',
    });
    expect(reply.status).toBe(401);
    expect(reply.headers['www-authenticate']).toBe('Bearer');
    expect(await alertCount(s.h.metrics, 'unauthorized', 'generic')).toBe(1);
  });

  it("dates an alert that gives no start time from the handler's clock (the time correlation uses)", async () => {
    const s = await start();
    await s.h.clock.advance(7 * 60_000);
    const reply = await send(
      s,
      '/webhooks/alerts/generic',
      JSON.stringify({ title: 'Checkout error rate 12%', environment: 'production' }),
    );
    expect(reply.status).toBe(202);
    await s.h.service.idle();
    expect(s.h.sink.suggestions.map((x) => x.alert.startedAt)).toEqual([s.h.clock.now()]);
  });
});

/** An answer read off a raw connection: its status line, lower-cased header lines and body. */
interface RawAnswer {
  readonly statusLine: string;
  readonly headers: string[];
  readonly body: Record<string, unknown>;
}

/**
 * Sends a POST's head declaring a `declared`-byte body and then only its first `sent` bytes, as a
 * stranger holding connections open does (/tmp/sec-audit hold-bodies.mjs); resolves with what the
 * server answered once it closes the connection. The rest of the body is never sent: a server that
 * waits for it never answers (the test then times out).
 */
async function partialPost(
  s: Started,
  path: string,
  headers: Record<string, string>,
  declared: number,
  sent: number,
): Promise<RawAnswer> {
  const client = connect(s.port, '127.0.0.1');
  sockets.push(client);
  client.on('error', () => undefined);
  const chunks: Buffer[] = [];
  client.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  await once(client, 'connect');
  const lines = Object.entries({
    host: `127.0.0.1:${s.port}`,
    'content-length': String(declared),
    ...headers,
  })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  client.write(`POST ${path} HTTP/1.1\r\n${lines}\r\n`);
  client.write(Buffer.alloc(sent, 'x'));
  await closed;
  const text = Buffer.concat(chunks).toString('utf8');
  const end = text.indexOf('\r\n\r\n');
  const [statusLine = '', ...rest] = text.slice(0, end).split('\r\n');
  return {
    statusLine,
    headers: rest.map((h) => h.toLowerCase()),
    body: JSON.parse(text.slice(end + 4)) as Record<string, unknown>,
  };
}

describe('a request is judged before its body is read, where its headers suffice', () => {
  const MIB = 1_048_576;

  it('a 1 MiB POST without the bearer token is answered 401 while its sender still holds all but 1 KiB of it, and the connection closed', async () => {
    const s = await start({ env: { ALERT_WEBHOOK_SECRET: 'hook-secret-123' } });
    const answer = await partialPost(
      s,
      '/webhooks/alerts/generic',
      { 'content-type': 'application/json', authorization: 'Bearer wrong' },
      MIB,
      1024,
    );
    expect(answer.statusLine).toBe('HTTP/1.1 401 Unauthorized');
    expect(answer.headers).toEqual(expect.arrayContaining(['www-authenticate: bearer', 'connection: close']));
    expect(answer.body).toEqual({
      error: 'unauthorized',
      message: 'Send "Authorization: Bearer <ALERT_WEBHOOK_SECRET>".',
    });
    expect(await alertCount(s.h.metrics, 'unauthorized', 'generic')).toBe(1);
    // A vendor that cannot sign (Alertmanager) and a signing one whose signature header is absent alike.
    const signing = await start({
      env: { ALERT_WEBHOOK_SECRET: 'hook-secret-123' },
      alerts: { sentrySecret: 'sentry-secret' },
    });
    for (const source of ['alertmanager', 'sentry']) {
      const unsigned = await partialPost(signing, `/webhooks/alerts/${source}`, {}, MIB, 1024);
      expect({ source, status: unsigned.statusLine }).toEqual({
        source,
        status: 'HTTP/1.1 401 Unauthorized',
      });
    }
    expect(await alertCount(signing.h.metrics, 'unauthorized')).toBe(2);
  });

  it('without ALERT_WEBHOOK_SECRET, a loopback request lacking the signature its vendor secret needs is answered 401 before its body', async () => {
    const s = await start({ alerts: { pagerdutySecret: 'pd-secret' } });
    const answer = await partialPost(s, '/webhooks/alerts/pagerduty', {}, MIB, 1024);
    expect(answer.statusLine).toBe('HTTP/1.1 401 Unauthorized');
    expect(answer.headers).toContain('connection: close');
    expect(answer.body).toEqual({
      error: 'bad_signature',
      message: 'X-PagerDuty-Signature is missing or does not match the body.',
    });
    expect(await alertCount(s.h.metrics, 'unauthorized', 'pagerduty')).toBe(1);
  });

  it('a request carrying the signature header of a vendor whose secret is set has its body read: signed, accepted; forged, refused after it', async () => {
    const s = await start({
      env: { ALERT_WEBHOOK_SECRET: 'hook-secret-123' },
      alerts: { sentrySecret: 'sentry-secret' },
    });
    const body = fixture('sentry-issue-alert.json');
    const signed = (secret: string) => ({
      'sentry-hook-resource': 'event_alert',
      'sentry-hook-signature': createHmac('sha256', secret).update(body).digest('hex'),
    });
    const accepted = await send(s, '/webhooks/alerts/sentry', body, signed('sentry-secret'));
    expect(accepted.status).toBe(202);
    const forged = await send(s, '/webhooks/alerts/sentry', body, signed('guess'));
    expect(forged.status).toBe(401);
    // The body was read to check it: the connection is kept for the next request.
    expect(forged.headers.connection).not.toBe('close');
    expect(await alertCount(s.h.metrics, 'unauthorized', 'sentry')).toBe(1);
  });

  it('a body declared as something other than JSON is answered 415 naming what is expected; JSON types and no type at all are read', async () => {
    const s = await start();
    const body = fixture('generic-firing.json');
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonp']) {
      const refused = await send(s, '/webhooks/alerts/generic', body, { 'content-type': type });
      expect({ type, status: refused.status, body: refused.body }).toEqual({
        type,
        status: 415,
        body: {
          error: 'unsupported_media_type',
          message: `Content-Type "${type}" is not JSON: send the alerts as JSON, with "Content-Type: application/json".`,
        },
      });
    }
    expect(await alertCount(s.h.metrics, 'invalid', 'generic')).toBe(3);
    expect(s.h.sink.suggestions).toHaveLength(0);
    for (const type of ['Application/JSON; charset=utf-8', 'application/vnd.alerts+json']) {
      const reply = await send(s, '/webhooks/alerts/generic', body, { 'content-type': type });
      expect({ type, status: reply.status }).toEqual({ type, status: 202 });
    }
    const untyped = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: s.port, method: 'POST', path: '/webhooks/alerts/generic' },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(untyped).toBe(202);
  });
});

/** A promise and the function that resolves it (to hold a chat post or a platform read). */
function gate(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Lets promises that are ready run (no clock involved). */
const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
};

describe("the answer comes within the sender's time; slow work goes on in the background", () => {
  it("Datadog's budget outlasts a Slack post's time-out, and ends well inside Datadog's 15 s", () => {
    // A post Slack does not answer is then answered failed (retry: false), not pending.
    expect(ANSWER_BUDGET_MS.datadog).toBeGreaterThan(SLACK_CALL_TIMEOUT_MS + 1_000);
    expect(ANSWER_BUDGET_MS.datadog).toBeLessThanOrEqual(15_000 - 3_000);
  });

  const SENTRY_ALERT = { 'sentry-hook-resource': 'event_alert' };
  const sentryIncident = { environment: 'production', source: 'sentry', fingerprint: '1117540176' };

  it('Sentry (1 s): a suggestion still being posted is answered pending, and is posted and counted after', async () => {
    const s = await start();
    const held = gate();
    s.h.sink.gate = held.promise;
    const reply = send(s, '/webhooks/alerts/sentry', fixture('sentry-issue-alert.json'), SENTRY_ALERT);
    while (s.h.sink.suggestions.length === 0) await settle();
    await s.h.clock.advance(ANSWER_BUDGET_MS.sentry);
    const answer = await reply;
    expect(answer.status).toBe(202);
    expect(answer.body).toEqual({
      source: 'sentry',
      received: 1,
      environments: ['production'],
      alerts: [
        {
          title: 'ReferenceError: heck is not defined',
          status: 'firing',
          fingerprint: '1117540176',
          environment: 'production',
          outcome: 'pending',
          detail: PENDING_DETAIL,
        },
      ],
    });
    // Counted with the outcome it ends with, once known.
    expect(await alertCount(s.h.metrics, 'suggested', 'sentry')).toBe(0);
    held.open();
    await s.h.service.idle();
    expect(await alertCount(s.h.metrics, 'suggested', 'sentry')).toBe(1);
    expect(await alertCount(s.h.metrics, 'pending')).toBe(0);
    expect((await s.h.dedupe.get(sentryIncident))?.state).toBe('posted');
  });

  it('a post that fails after the answer is tried again by Switchyard (the sender got a 2xx and will not)', async () => {
    const s = await start();
    const held = gate();
    s.h.sink.gate = held.promise;
    const reply = send(s, '/webhooks/alerts/sentry', fixture('sentry-issue-alert.json'), SENTRY_ALERT);
    while (s.h.sink.suggestions.length === 0) await settle();
    await s.h.clock.advance(ANSWER_BUDGET_MS.sentry);
    expect((await reply).status).toBe(202);
    s.h.sink.failing = true;
    held.open();
    await s.h.service.idle();
    expect(await alertCount(s.h.metrics, 'failed', 'sentry')).toBe(1);
    expect(await s.h.dedupe.get(sentryIncident)).toBeUndefined();
    s.h.sink.failing = false;
    s.h.sink.gate = undefined;
    await s.h.clock.advance(5_000); // the first retry's wait
    await s.h.service.retriesSettled();
    expect(s.h.sink.suggestions).toHaveLength(2);
    expect((await s.h.dedupe.get(sentryIncident))?.state).toBe('posted');
  });

  it('PagerDuty (5 s), a slow platform: answered pending within 4 s, and shutdown waits for the work', async () => {
    const held = gate();
    let service: AlertService | undefined;
    const s = await start({
      intake: (h) => {
        service = new AlertService({
          platform: {
            listEnvironments: () => h.platform.listEnvironments(),
            snapshot: async (environment) => {
              await held.promise;
              return h.platform.snapshot(environment);
            },
          },
          flow: h.flow,
          sink: h.sink,
          dedupe: h.dedupe,
          config: h.config,
          clock: h.clock,
          metrics: h.metrics,
        });
        return service;
      },
    });
    const reply = send(s, '/webhooks/alerts/pagerduty', fixture('pagerduty-triggered.json'));
    await settle();
    await s.h.clock.advance(ANSWER_BUDGET_MS.pagerduty - 1);
    await settle();
    let answered = false;
    void reply.then(() => {
      answered = true;
    });
    await settle();
    expect(answered).toBe(false);
    await s.h.clock.advance(1);
    const answer = await reply;
    expect(answer.status).toBe(202);
    expect(answer.body.alerts).toMatchObject([{ outcome: 'pending', environment: 'production' }]);
    let closed = false;
    const closing = service?.close(60_000).then(() => {
      closed = true;
    });
    await settle();
    expect(closed).toBe(false);
    held.open();
    await closing;
    expect(s.h.sink.suggestions.map((x) => x.environment)).toEqual(['production']);
    expect(await alertCount(s.h.metrics, 'suggested', 'pagerduty')).toBe(1);
  });
});

describe('vendor bodies the senders really send', () => {
  it("Grafana's DatasourceError (the query failed: the monitoring, not the app) is answered ignored with why, and suggests nothing", async () => {
    const s = await start();
    // Inside the window of the demo's go-live: a real alert would be suggested.
    const body = JSON.parse(fixture('grafana-datasource-error.json'));
    body.alerts[0].startsAt = new Date(s.h.clock.now() - 33 * MINUTE).toISOString();
    const reply = await send(s, '/webhooks/alerts/grafana', JSON.stringify(body));
    expect({ status: reply.status, received: reply.body.received }).toEqual({ status: 202, received: 0 });
    expect(reply.body.alerts).toEqual([
      {
        title: 'DatasourceError: Checkout p99 latency is above 2s',
        status: 'firing',
        fingerprint: body.groupKey,
        outcome: 'ignored',
        detail:
          'DatasourceError says the rule "High latency" could not query its datasource (an error or a time-out), not that the deployment is bad: no rollback is suggested for it.',
      },
    ]);
    expect(await alertCount(s.h.metrics, 'ignored', 'grafana')).toBe(1);
    expect(s.h.sink.suggestions).toHaveLength(0);
  });

  /** The alert line of the suggestion the plan shows for its first alert, as read. */
  async function suggestedLine(s: Started, planId: unknown): Promise<string | undefined> {
    const record = await s.h.flow.get(String(planId));
    if (record === undefined) throw new Error(`no plan ${String(planId)}`);
    const head = s.h.chat.confirmation(record).blocks[0];
    return head?.type === 'text' ? plainText(head.spans) : undefined;
  }

  it("Datadog's No Data right after a deploy is suggested (the service may have died with it), marked in the answer and on the suggestion", async () => {
    const s = await start();
    const body = {
      ...JSON.parse(fixture('datadog-default-no-data.json')),
      date: String(s.h.clock.now() - 33 * MINUTE),
    };
    const reply = await send(s, '/webhooks/alerts/datadog', JSON.stringify(body));
    expect({ status: reply.status, received: reply.body.received }).toEqual({ status: 202, received: 1 });
    const [answer] = reply.body.alerts as Record<string, unknown>[];
    expect(answer).toMatchObject({
      title: '[P2] API heartbeat (env:production,service:api)',
      environment: 'production',
      outcome: 'suggested',
      detail: `${DEMO_SENTENCE} ${MISSING_DATA_DETAIL}`,
    });
    expect(await suggestedLine(s, answer?.planId)).toBe(
      'Alert from datadog: [P2] API heartbeat (env:production,service:api) (no data: its query returned nothing; the service may have stopped reporting) — started 2026-11-29 11:27 UTC. dep_4kq9wz went live 7 minutes before this alert started.',
    );
    // The sentence kept with the incident (what its message says once its plan closed) says it too.
    expect(s.h.sink.suggestions.map((x) => x.sentence)).toEqual([`${DEMO_SENTENCE} ${MISSING_DATA_DETAIL}`]);
  });

  it("Datadog's No Data long after any deploy suggests nothing; its Re-No Data is never correlated", async () => {
    const s = await start();
    // 70 minutes after the demo's go-live: past the 60-minute window.
    await s.h.clock.advance(30 * MINUTE);
    const late = { ...JSON.parse(fixture('datadog-default-no-data.json')), date: String(s.h.clock.now()) };
    const reply = await send(s, '/webhooks/alerts/datadog', JSON.stringify(late));
    expect(reply.body.alerts).toMatchObject([
      {
        outcome: 'outside_window',
        detail: `dep_4kq9wz went live 70 minutes before this alert started, outside the 60 minutes correlation window; no rollback suggested. ${MISSING_DATA_DETAIL}`,
      },
    ]);
    // A re-sent No Data is dated when it was re-sent: no deployment is blamed for it.
    const resent = {
      ...JSON.parse(fixture('datadog-triggered.json')),
      title: '[Re-No Data on {env:production,service:api}] API error rate is high',
      alert_transition: 'Re-No Data',
      alert_cycle_key: '7539816743018769999',
      date: String(s.h.clock.now() - 60 * MINUTE),
    };
    const again = await send(s, '/webhooks/alerts/datadog', JSON.stringify(resent));
    expect(again.body.alerts).toMatchObject([{ outcome: 'no_correlation', detail: RENOTIFICATION_REASON }]);
    expect(s.h.sink.suggestions).toHaveLength(0);
  });

  it("Grafana's DatasourceNoData is correlated as any alert: suggested and marked right after a deploy, nothing long after", async () => {
    const s = await start();
    const body = JSON.parse(fixture('grafana-datasource-no-data.json'));
    const at = (ms: number) => {
      body.alerts[0].startsAt = new Date(ms).toISOString();
      return JSON.stringify(body);
    };
    const reply = await send(s, '/webhooks/alerts/grafana', at(s.h.clock.now() - 33 * MINUTE));
    const [answer] = reply.body.alerts as Record<string, unknown>[];
    expect(answer).toMatchObject({
      title: 'DatasourceNoData: Checkout p99 latency is above 2s',
      environment: 'production',
      outcome: 'suggested',
      detail: `${DEMO_SENTENCE} ${MISSING_DATA_DETAIL}`,
    });
    expect(await suggestedLine(s, answer?.planId)).toContain(
      'DatasourceNoData: Checkout p99 latency is above 2s (no data: its query returned nothing; the service may have stopped reporting) — started',
    );
    // Another rule's no data, starting 70 minutes after the go-live (its own incident): nothing.
    body.groupKey = '{}:{alertname="DatasourceNoData", grafana_folder="Payments"}';
    const late = await send(s, '/webhooks/alerts/grafana', at(s.h.clock.now() + 30 * MINUTE));
    expect(late.body.alerts).toMatchObject([
      { outcome: 'outside_window', detail: expect.stringContaining(MISSING_DATA_DETAIL) },
    ]);
    expect(s.h.sink.suggestions).toHaveLength(1);
  });

  it("Datadog's default payload of a multi-alert monitor: the status tag's {env:production} places it", async () => {
    const s = await start();
    const body = {
      ...JSON.parse(fixture('datadog-default-multi-triggered.json')),
      date: String(s.h.clock.now() - 33 * MINUTE),
    };
    const reply = await send(s, '/webhooks/alerts/datadog', JSON.stringify(body));
    expect(reply.body.alerts).toMatchObject([
      {
        title: 'API error rate is high (env:production,service:api)',
        environment: 'production',
        outcome: 'suggested',
      },
    ]);
  });

  it("Alertmanager's max_alerts truncation is said in the answer", async () => {
    const s = await start();
    const reply = await send(
      s,
      '/webhooks/alerts/alertmanager',
      fixture('alertmanager-captured-truncated.json'),
    );
    expect(reply.status).toBe(202);
    expect(reply.body.received).toBe(2);
    expect((reply.body.alerts as unknown[]).at(-1)).toEqual({
      title: '1 more alert of this group',
      fingerprint: '{}:{alertname="HighErrorRate"}',
      outcome: 'ignored',
      detail:
        "Alertmanager left 1 alert of this group out of the notification (max_alerts; truncatedAlerts: 1): Switchyard never saw them. They share the group's incident; an environment that only they name gets no suggestion by this notification.",
    });
  });

  it('PagerDuty ping and Grafana test notification are accepted; neither suggests anything', async () => {
    const s = await start();
    const ping = await send(s, '/webhooks/alerts/pagerduty', fixture('pagerduty-ping.json'));
    expect(ping.body).toEqual({ source: 'pagerduty', received: 0, environments: [], alerts: [] });
    const test = await send(s, '/webhooks/alerts/grafana', fixture('grafana-test-alert.json'));
    expect(test.status).toBe(202);
    expect(test.body.alerts).toMatchObject([{ title: 'TestAlert: Notification test', outcome: 'unmapped' }]);
    expect(s.h.sink.suggestions).toHaveLength(0);
  });
});
