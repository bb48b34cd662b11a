/**
 * src/http.ts beyond isLoopbackHostHeader: a body declared too large is refused
 * before it is sent, a body cut off by its client rejects (the handler does not wait forever), paths
 * with a trailing slash, 405 against 404, shutdown cutting a response still under way after its grace,
 * Sec-Fetch-Site `none`, and which content types count as JSON.
 */
import type { IncomingMessage } from 'node:http';
import { request } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BodyTooLargeError,
  crossSiteReason,
  HttpServer,
  isJsonContentType,
  readBody,
  sendJson,
} from '../../src/http.js';

const closers: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function serve(
  setup: (server: HttpServer) => void,
  grace = 50,
): Promise<{ server: HttpServer; port: number }> {
  const server = new HttpServer();
  setup(server);
  const port = await server.listen(0);
  closers.push(() => server.close(grace));
  return { server, port };
}

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

function headers(h: Record<string, string>): IncomingMessage {
  return { headers: h } as unknown as IncomingMessage;
}

describe('readBody', () => {
  it('refuses a body whose Content-Length is over the limit at once, before any of it arrives', async () => {
    const { port } = await serve((s) =>
      s.route('POST', '/in', async (req, res) => {
        try {
          await readBody(req, 10);
          sendJson(res, 200, { ok: true });
        } catch (e) {
          sendJson(res, e instanceof BodyTooLargeError ? 413 : 400, { error: (e as Error).message });
        }
      }),
    );
    const client = connect(port, '127.0.0.1');
    closers.push(() => client.destroy());
    let text = '';
    const answered = new Promise<string>((resolve) =>
      client.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\r\n\r\n')) resolve(text);
      }),
    );
    // Headers only: the 11 declared bytes never come.
    client.write('POST /in HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\n');
    expect((await answered).split('\r\n')[0]).toBe('HTTP/1.1 413 Payload Too Large');
  });

  it('rejects when the client goes away in the middle of the body (the handler does not wait forever)', async () => {
    let settle!: (v: string) => void;
    const settled = new Promise<string>((resolve) => (settle = resolve));
    const { port } = await serve((s) =>
      s.route('POST', '/in', async (req, res) => {
        req.once('data', () => client.destroy());
        try {
          await readBody(req, 1000);
          settle('resolved');
        } catch (e) {
          settle(`rejected: ${(e as Error).message}`);
        }
        res.destroy();
      }),
    );
    const client = connect(port, '127.0.0.1');
    client.on('error', () => {});
    closers.push(() => client.destroy());
    client.write('POST /in HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nfirst-half');
    expect(await settled).toMatch(/^rejected: /);
  });
});

describe('HttpServer routing', () => {
  it('a path with a trailing slash reaches its route', async () => {
    const { port } = await serve((s) =>
      s.route('GET', '/health', (_req, res) => sendJson(res, 200, { ok: true })),
    );
    expect((await raw(port, 'GET', '/health/')).status).toBe(200);
  });

  it('answers 405 naming the method on a known path, 404 on an unknown one', async () => {
    const { port } = await serve((s) =>
      s.route('GET', '/health', (_req, res) => sendJson(res, 200, { ok: true })),
    );
    const wrong = await raw(port, 'POST', '/health');
    expect(wrong.status).toBe(405);
    expect(JSON.parse(wrong.body)).toEqual({
      error: 'method_not_allowed',
      message: 'POST not allowed on /health',
    });
    const unknown = await raw(port, 'GET', '/nowhere');
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body)).toMatchObject({ error: 'not_found' });
  });

  it('close() cuts a response still under way once its grace is over (an open event stream cannot hold shutdown)', async () => {
    let started!: () => void;
    const streaming = new Promise<void>((resolve) => (started = resolve));
    const { server, port } = await serve((s) =>
      s.route('GET', '/stream', (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        started();
        // never ends
      }),
    );
    const client = connect(port, '127.0.0.1');
    closers.push(() => client.destroy());
    client.resume();
    const clientClosed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    client.write('GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await streaming;
    let closed = false;
    await Promise.race([
      server.close(20).then(() => {
        closed = true;
      }),
      // The test's own bound: without the cut, close() never resolves (the stream never ends).
      new Promise((resolve) => setTimeout(resolve, 5_000)),
    ]);
    expect(closed).toBe(true);
    await clientClosed;
  });
});

describe('request classification', () => {
  it('Sec-Fetch-Site: none (the person opened it themselves) is not cross-site', () => {
    expect(crossSiteReason(headers({ 'sec-fetch-site': 'none' }))).toBeUndefined();
    expect(crossSiteReason(headers({ 'sec-fetch-site': 'same-site' }))).toBe('Sec-Fetch-Site: same-site');
  });

  it('takes application/json in any case and with parameters, and no other JSON-ish type', () => {
    for (const type of ['application/json', 'Application/JSON; charset=utf-8', ' application/json ;x=1'])
      expect({ type, json: isJsonContentType(headers({ 'content-type': type })) }).toEqual({
        type,
        json: true,
      });
    for (const type of ['text/json', 'application/vnd.api+json', 'application/jsonp', 'text/plain'])
      expect({ type, json: isJsonContentType(headers({ 'content-type': type })) }).toEqual({
        type,
        json: false,
      });
    expect(isJsonContentType(headers({}))).toBe(false);
  });
});
