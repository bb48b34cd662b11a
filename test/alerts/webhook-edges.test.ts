/**
 * Alert webhook behaviour no other test pinned down (found by mutation testing of
 * handlers/webhooks/alerts.ts). Real HTTP on 127.0.0.1; the loopback rule through `peerAddress`.
 */
import { readFileSync } from 'node:fs';
import { type IncomingHttpHeaders, request } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { registerAlertWebhooks } from '../../handlers/webhooks/alerts.js';
import { HttpServer } from '../../src/http.js';
import { alertCount, createHarness, type Harness } from '../alerts/helpers.js';

const fixtureDir = join(import.meta.dirname, '../fixtures/alerts');
const fixture = (name: string) => readFileSync(join(fixtureDir, name), 'utf8');

interface Started {
  readonly h: Harness;
  readonly port: number;
  readonly http: HttpServer;
}

const running: Started[] = [];
let peer: string | undefined;

afterEach(async () => {
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
