/**
 * src/http.ts beyond isLoopbackHostHeader: a body declared too large is refused
 * before it is sent, a body cut off by its client rejects (the handler does not wait forever), paths
 * with a trailing slash, 405 against 404, shutdown cutting a response still under way after its grace,
 * what one client may hold of the server (config `http.*`: headers and whole requests not received in
 * time get 408, connections beyond the cap are closed), Sec-Fetch-Site `none`, and which content types
 * count as JSON.
 */
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfigFile } from '../../src/config.js';
import {
  BodyTooLargeError,
  crossSiteReason,
  type HttpLimits,
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
  limits: HttpLimits = {},
): Promise<{ server: HttpServer; port: number }> {
  const server = new HttpServer(undefined, limits);
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

/** The `http:` limits of a config file, as the app hands them to its server. */
const limits = (yaml: string): HttpLimits => parseConfigFile(`http: ${yaml}`, 'test.yml').http;

/** A raw connection to `port`, destroyed after the test; resolves once connected. */
async function rawSocket(port: number): Promise<Socket> {
  const s = connect(port, '127.0.0.1');
  closers.push(() => s.destroy());
  s.on('error', () => undefined);
  await once(s, 'connect');
  return s;
}

/** Everything the server sends on `s` until the connection closes. */
function untilClosed(s: Socket): Promise<string> {
  let text = '';
  s.on('data', (d: Buffer) => {
    text += d.toString('latin1');
  });
  return new Promise((resolve) => s.once('close', () => resolve(text)));
}

/** GETs `path` on an open keep-alive connection; resolves with the status line of the whole answer. */
function ask(s: Socket, path: string): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)/i.exec(text);
      if (end === -1 || !length || text.length < end + 4 + Number(length[1])) return;
      s.off('data', onData);
      resolve(text.slice(0, text.indexOf('\r\n')));
    };
    s.on('data', onData);
    s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  });
}

describe('what one client may hold of the server (config http.*)', () => {
  const health = (s: HttpServer) =>
    s.route('GET', '/health', (_req, res) => sendJson(res, 200, { ok: true }));

  it('headers not all in within http.headersTimeout get 408 and the connection closed; the server serves on', async () => {
    const { port } = await serve(health, 50, limits('{ headersTimeout: 200ms, requestTimeout: 1s }'));
    // A slow-loris client (/tmp/sec-audit slowloris.mjs): the request line and a header, never the end.
    const slow = await rawSocket(port);
    const answer = untilClosed(slow);
    slow.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    expect((await answer).split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
    expect((await raw(port, 'GET', '/health')).status).toBe(200);
  });

  it('a body not all in within http.requestTimeout gets 408, and the handler reading it is let go', async () => {
    let settle!: (v: string) => void;
    const settled = new Promise<string>((resolve) => (settle = resolve));
    const { port } = await serve(
      (s) =>
        s.route('POST', '/in', async (req, res) => {
          try {
            await readBody(req, 1000);
            settle('resolved');
          } catch (e) {
            settle(`rejected: ${(e as Error).message}`);
          }
          if (!res.headersSent) sendJson(res, 400, { error: 'bad_request' });
        }),
      50,
      limits('{ headersTimeout: 100ms, requestTimeout: 300ms }'),
    );
    const client = await rawSocket(port);
    const answer = untilClosed(client);
    // The headers in time, then 10 of the 100 bytes declared.
    client.write('POST /in HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nfirst-part');
    expect((await answer).split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
    expect(await settled).toMatch(/^rejected: /);
  });

  it('connections beyond http.maxConnections are closed at once, unanswered, while the earlier ones are served', async () => {
    const accepted: Socket[] = [];
    const { server, port } = await serve(health, 50, limits('{ maxConnections: 2 }'));
    server.server.on('connection', (s: Socket) => accepted.push(s));
    const first = await rawSocket(port);
    const second = await rawSocket(port);
    expect(await ask(first, '/health')).toBe('HTTP/1.1 200 OK');
    expect(await ask(second, '/health')).toBe('HTTP/1.1 200 OK');

    const third = await rawSocket(port);
    const refused = untilClosed(third);
    third.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(await refused).toBe('');
    expect(accepted).toHaveLength(2);
    // The two it holds are served on, and a place freed is taken again.
    expect(await ask(first, '/health')).toBe('HTTP/1.1 200 OK');
    const gone = once(accepted[1] as Socket, 'close');
    second.destroy();
    await gone;
    expect(await ask(await rawSocket(port), '/health')).toBe('HTTP/1.1 200 OK');
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
