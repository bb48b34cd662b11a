/**
 * src/http.ts's router: whatever a request carries, it gets an answer and the process stays up (an
 * unhandled rejection would end it: a malformed percent-escape in a route parameter once did).
 */

import type { IncomingMessage } from 'node:http';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { crossSiteReason, forwardingHeader, HttpServer, sendJson } from '../src/http.js';

let server: HttpServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A raw request (fetch would normalise the path). */
function raw(port: number, method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HttpServer', () => {
  it('answers 400 to a malformed percent-escape in a route parameter, and keeps serving', async () => {
    const errors: unknown[] = [];
    server = new HttpServer((e) => errors.push(e));
    server.route('POST', '/webhooks/alerts/:source', (_req, res, params) => sendJson(res, 202, params));
    const port = await server.listen(0);
    const bad = await raw(port, 'POST', '/webhooks/alerts/%E0');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ error: 'bad_request' });
    const good = await raw(port, 'POST', '/webhooks/alerts/gr%61fana');
    expect(good.status).toBe(202);
    expect(JSON.parse(good.body)).toEqual({ source: 'grafana' });
    expect(errors).toEqual([]);
  });

  it('a handler that throws gets a 500, reported to onError', async () => {
    const errors: unknown[] = [];
    server = new HttpServer((e) => errors.push(e));
    server.route('GET', '/boom', () => {
      throw new Error('boom');
    });
    const port = await server.listen(0);
    expect((await raw(port, 'GET', '/boom')).status).toBe(500);
    expect(errors).toHaveLength(1);
  });

  it('Redis unreachable: 503; "nothing was done" only when the command was refused, not when it timed out', async () => {
    server = new HttpServer(() => undefined);
    server.route('POST', '/refused', () => {
      throw new Error("Stream isn't writeable and enableOfflineQueue options is false");
    });
    server.route('POST', '/stalled', () => {
      throw new Error('Command timed out');
    });
    const port = await server.listen(0);
    const refused = await raw(port, 'POST', '/refused');
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.body).message).toContain('nothing was done');
    const stalled = await raw(port, 'POST', '/stalled');
    expect(stalled.status).toBe(503);
    // a stalled Redis may still run the write once it resumes: no promise that nothing happened
    expect(JSON.parse(stalled.body).message).not.toContain('nothing was done');
    expect(JSON.parse(stalled.body).message).toContain('may not have been carried out');
  });
});

describe('crossSiteReason', () => {
  const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

  it("trusts the browser's Sec-Fetch-Site when present (right behind a proxy that rewrites Host)", () => {
    const behindProxy = { host: '127.0.0.1:3000', origin: 'https://switchyard.example.com' };
    expect(crossSiteReason(req({ ...behindProxy, 'sec-fetch-site': 'same-origin' }))).toBeUndefined();
    expect(crossSiteReason(req({ ...behindProxy, 'sec-fetch-site': 'same-site' }))).toBe(
      'Sec-Fetch-Site: same-site',
    );
    expect(crossSiteReason(req({ ...behindProxy, 'sec-fetch-site': 'cross-site' }))).toBe(
      'Sec-Fetch-Site: cross-site',
    );
  });

  it('without it, compares Origin with Host as the request reached the server, normalised', () => {
    expect(
      crossSiteReason(req({ host: 'Console.Example:80', origin: 'http://console.example' })),
    ).toBeUndefined();
    expect(crossSiteReason(req({ host: '127.0.0.1:3000', origin: 'http://127.0.0.1:5173' }))).toBe(
      'Origin: http://127.0.0.1:5173',
    );
    expect(crossSiteReason(req({ host: '127.0.0.1:3000' }))).toBeUndefined(); // a server or curl
    expect(crossSiteReason(req({ host: '127.0.0.1:3000', origin: 'null' }))).toBe('Origin: null');
  });
});

describe('forwardingHeader', () => {
  const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

  it('names the proxy header a request carries (node lower-cases header names), or none', () => {
    expect(forwardingHeader(req({ host: '127.0.0.1:3000' }))).toBeUndefined();
    expect(forwardingHeader(req({ host: '127.0.0.1:3000', 'x-forwarded-for': '203.0.113.9' }))).toBe(
      'X-Forwarded-For',
    );
    expect(forwardingHeader(req({ 'x-real-ip': '203.0.113.9' }))).toBe('X-Real-IP');
    expect(forwardingHeader(req({ forwarded: 'for=203.0.113.9' }))).toBe('Forwarded');
    expect(forwardingHeader(req({ 'x-forwarded-host': 'switchyard.example.com' }))).toBe('X-Forwarded-Host');
    expect(forwardingHeader(req({ 'x-forwarded-proto': 'https' }))).toBe('X-Forwarded-Proto');
    // present but empty still says a proxy was there
    expect(forwardingHeader(req({ 'x-forwarded-for': '' }))).toBe('X-Forwarded-For');
  });
});
