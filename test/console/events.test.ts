/**
 * The console's event stream (`/console/events`) on its own HTTP server: HEAD answers at once instead of
 * holding the connection; an entry posted after the console closed its streams writes nothing (it once
 * crashed the process with ERR_STREAM_WRITE_AFTER_END); a tab that stops reading gets its stream cut
 * once MAX_STREAM_BUFFER_BYTES wait for it, instead of the server buffering every entry for it. And on
 * the app's port: a stream outlives the server's `http.requestTimeout`, which bounds requests only.
 */
import { once } from 'node:events';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_STREAM_BUFFER_BYTES, registerConsole } from '../../handlers/console/routes.js';
import { ConsoleSurface } from '../../handlers/console/surface.js';
import { HttpServer } from '../../src/http.js';
import { startTestSwitchyard } from '../support/switchyard.js';

const closers: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

interface Rig {
  readonly surface: ConsoleSurface;
  readonly http: HttpServer;
  readonly port: number;
  readonly routes: { close(): void };
  /** Server-side sockets, as accepted. */
  readonly sockets: Socket[];
}

async function rig(limit = 500): Promise<Rig> {
  const surface = new ConsoleSurface({ limit });
  const http = new HttpServer();
  const sockets: Socket[] = [];
  http.server.on('connection', (s: Socket) => sockets.push(s));
  const routes = registerConsole(http, {
    surface,
    chat: {} as never,
    flow: {} as never,
    platform: { name: 'fake' } as never,
  });
  const port = await http.listen(0);
  closers.push(async () => {
    routes.close();
    await http.close(50);
  });
  return { surface, http, port, routes, sockets };
}

/** Opens an event stream over a raw socket and resolves once its `hello` arrived. */
async function openStream(port: number, user = 'alice'): Promise<{ client: Socket; received: () => string }> {
  const client = connect(port, '127.0.0.1');
  closers.push(() => client.destroy());
  let text = '';
  const hello = new Promise<void>((resolve) =>
    client.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('event: hello')) resolve();
    }),
  );
  client.write(`GET /console/events?user=${user} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  await hello;
  return { client, received: () => text };
}

describe('console event stream', () => {
  it('HEAD /console/events answers with the stream headers and ends; the connection keeps serving', async () => {
    const { port } = await rig();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    closers.push(() => agent.destroy());
    const head = await new Promise<{ status: number; type: string | undefined; body: string }>(
      (resolve, reject) => {
        const req = request({
          host: '127.0.0.1',
          port,
          method: 'HEAD',
          path: '/console/events?user=a',
          agent,
        });
        req.on('response', (res) => {
          let body = '';
          res.on('data', (c: Buffer) => {
            body += c.toString();
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body }),
          );
        });
        req.on('error', reject);
        req.end();
      },
    );
    expect(head).toEqual({ status: 200, type: 'text/event-stream; charset=utf-8', body: '' });
    // The same (kept-alive) connection answers the next request: HEAD did not hold it.
    const next = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/console/health', agent }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(next).toBe(200);
  });

  it('delivers entries to an open stream, and after close() an entry writes nothing and throws nothing', async () => {
    const errors: unknown[] = [];
    const onError = (e: unknown) => errors.push(e);
    process.on('uncaughtException', onError);
    closers.push(() => process.off('uncaughtException', onError));
    const { surface, routes, port } = await rig();
    const { client, received } = await openStream(port);
    // The last chunk of a chunked response: the server ended the stream.
    const ended = new Promise<void>((resolve) =>
      client.on('data', () => {
        if (received().endsWith('0\r\n\r\n')) resolve();
      }),
    );
    const delivered = new Promise<void>((resolve) =>
      client.on('data', () => {
        if (received().includes('"before close"')) resolve();
      }),
    );
    surface.postUser('bob', 'before close');
    await delivered;
    routes.close();
    // A late entry (a progress edit during shutdown) right after: no listener may write to the ended stream.
    surface.postUser('bob', 'after close');
    await ended;
    await new Promise((resolve) => setImmediate(resolve));
    expect(errors).toEqual([]);
    expect(received()).not.toContain('after close');
  });

  it(`cuts a stream whose reader stopped reading once more than ${MAX_STREAM_BUFFER_BYTES} bytes wait for it`, async () => {
    const { surface, port, sockets } = await rig(50);
    const { client } = await openStream(port);
    client.pause(); // the tab stops reading (a suspended laptop, a stalled proxy)
    const server = sockets.at(-1);
    if (!server) throw new Error('no server-side socket');
    const cut = once(server, 'close');
    let closed = false;
    void cut.then(() => {
      closed = true;
    });
    const text = 'x'.repeat(8_000);
    let most = 0;
    // A busy channel: entries keep coming until the server gives the stream up (bounded, in case it never does).
    for (let i = 0; i < 8_000 && !closed; i++) {
      surface.postUser('bob', text);
      most = Math.max(most, server.writableLength);
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve)); // I/O gets its turn
    }
    expect(closed).toBe(true);
    // Never much more than the bound waited in memory (one entry may cross it before the cut).
    expect(most).toBeLessThan(MAX_STREAM_BUFFER_BYTES + 64 * 1024);
    // The stream's subscription is gone with it: later entries write nothing and a new stream works.
    surface.postUser('bob', 'after the cut');
    const fresh = await openStream(port, 'bob');
    const seen = new Promise<void>((resolve) =>
      fresh.client.on('data', () => {
        if (fresh.received().includes('"fresh"')) resolve();
      }),
    );
    surface.postUser('bob', 'fresh');
    await seen;
  });
});

describe("the console event stream on the app's port", () => {
  it('outlives http.requestTimeout, which bounds a request still being sent, not a response', async () => {
    const app = await startTestSwitchyard({
      file: {
        local: { reactivationTime: '200ms', buildTime: '300ms' },
        http: { headersTimeout: '100ms', requestTimeout: '300ms' },
      },
    });
    closers.push(() => app.close());
    const { client, received } = await openStream(app.port);
    const streamClosed = once(client, 'close');
    // A request started after the stream whose body never comes: its 408 says requestTimeout has
    // passed for the stream too (and that the app's server took its limits from the config).
    const late = connect(app.port, '127.0.0.1');
    closers.push(() => late.destroy());
    late.on('error', () => undefined);
    let answer = '';
    late.on('data', (d: Buffer) => {
      answer += d.toString();
    });
    const cut = once(late, 'close');
    late.write(
      'POST /console/api/command HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"user"',
    );
    await cut;
    // The stream is still open: an entry posted now reaches it (or the stream is found closed).
    const delivered = new Promise<void>((resolve) =>
      client.on('data', () => {
        if (received().includes('still here')) resolve();
      }),
    );
    const res = await fetch(`${app.baseUrl}/console/api/command`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'alice', text: 'still here' }),
    });
    expect(res.status).toBeLessThan(300);
    await Promise.race([delivered, streamClosed]);
    expect(received()).toContain('still here');
    expect(client.destroyed).toBe(false);
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
  });
});
