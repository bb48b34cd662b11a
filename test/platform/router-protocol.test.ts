/**
 * Protocol-level tests of the local traffic router (router.ts + upstream.ts) on real sockets on
 * 127.0.0.1: pipelined requests whose client goes away (drain and idle accounting), pipelining and the
 * stall timer, one 'close' listener per connection however deep the pipelining, the warm connection
 * pool, `x-deployment-id` on answers node's server would otherwise give itself (missing Host, headers
 * not received in time, unknown Expect, CONNECT), Switchyard's own `x-switchyard-*` headers sent by a visitor, absolute-form request
 * targets, and the id the router names on a proxied answer.
 * Synchronisation is by events (upstream `request`/`idle`, socket `close`); the only timed waits are the
 * observation windows of the stall-timer tests, where real time has to pass for a bug to show.
 */
import { once } from 'node:events';
import type { IncomingMessage, Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { type DeploymentInfo, probe, TrafficRouter } from '../../src/platform/local/router.js';
import type { Upstream } from '../../src/platform/local/upstream.js';

const A: DeploymentInfo = { id: 'dpl_a', environment: 'preview', branch: 'main', commit: { sha: 'aaaa' } };
const B: DeploymentInfo = { id: 'dpl_b', environment: 'preview', branch: 'feat', commit: { sha: 'bbbb' } };
const HOST_A = 'a.localhost';
const HOST_B = 'b.localhost';

const routers: TrafficRouter[] = [];
const sockets: Socket[] = [];

function newRouter(options: ConstructorParameters<typeof TrafficRouter>[0] = {}): TrafficRouter {
  const r = new TrafficRouter({ port: 0, ...options });
  routers.push(r);
  return r;
}

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

/** A router with A (and B when asked) running and routed, listening; returns it and its port. */
async function routed(
  options: ConstructorParameters<typeof TrafficRouter>[0] = {},
  withB = false,
): Promise<{ router: TrafficRouter; port: number }> {
  const router = newRouter(options);
  await router.startUpstream(A);
  if (withB) await router.startUpstream(B);
  router.applyRoutes(
    new Map([
      [HOST_A, A.id],
      [HOST_B, B.id],
    ]),
  );
  return { router, port: await router.listen() };
}

function upstreamOf(router: TrafficRouter, id: string): Upstream {
  const up = router.upstream(id);
  if (up === undefined) throw new Error(`upstream ${id} not running`);
  return up;
}

/** Resolves once `count` requests have reached the upstream. */
function arrivals(up: Upstream, count: number): Promise<IncomingMessage[]> {
  return new Promise((resolve) => {
    const seen: IncomingMessage[] = [];
    const on = (req: IncomingMessage) => {
      seen.push(req);
      if (seen.length === count) {
        up.off('request', on);
        resolve(seen);
      }
    };
    up.on('request', on);
  });
}

async function rawSocket(port: number): Promise<Socket> {
  const s = connect(port, '127.0.0.1');
  sockets.push(s);
  s.on('error', () => undefined);
  await once(s, 'connect');
  return s;
}

/** Resolves when `s` closes, whatever the reason (events.once would reject on an 'error' first). */
function closed(s: Socket): Promise<void> {
  return new Promise((resolve) => s.once('close', () => resolve()));
}

/** Everything the server sends on `s` until the connection closes. */
function readAll(s: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => s.once('close', () => resolve(Buffer.concat(chunks))));
}

/** Writes `data` on a new connection; resolves with everything the server sent once it closes it. */
async function rawExchange(port: number, data: string): Promise<string> {
  const s = await rawSocket(port);
  const all = readAll(s);
  s.write(data);
  return (await all).toString('latin1');
}

/** Status line and lowercase header lines of a raw HTTP answer (the first one in `answer`). */
function head(answer: string): { statusLine: string; headers: string[]; body: string } {
  const end = answer.indexOf('\r\n\r\n');
  const [statusLine = '', ...headers] = answer.slice(0, end).split('\r\n');
  return { statusLine, headers: headers.map((h) => h.toLowerCase()), body: answer.slice(end + 4) };
}

/** Parses `count` consecutive HTTP/1.1 responses from a buffer (content-length or chunked bodies). */
function parseResponses(buf: Buffer, count: number): Array<{ headers: string[]; body: Buffer }> {
  const out: Array<{ headers: string[]; body: Buffer }> = [];
  let at = 0;
  for (let n = 0; n < count; n++) {
    const end = buf.indexOf('\r\n\r\n', at);
    if (end === -1) throw new Error(`response ${n + 1} is incomplete`);
    const headers = buf.subarray(at, end).toString('latin1').toLowerCase().split('\r\n').slice(1);
    at = end + 4;
    const length = headers.find((h) => h.startsWith('content-length:'));
    if (length !== undefined) {
      const size = Number(length.slice('content-length:'.length));
      out.push({ headers, body: buf.subarray(at, at + size) });
      at += size;
      continue;
    }
    const parts: Buffer[] = [];
    for (;;) {
      const eol = buf.indexOf('\r\n', at);
      const size = Number.parseInt(buf.subarray(at, eol).toString('latin1'), 16);
      at = eol + 2;
      if (size === 0) {
        at += 2;
        break;
      }
      parts.push(buf.subarray(at, at + size));
      at += size + 2;
    }
    out.push({ headers, body: Buffer.concat(parts) });
  }
  return out;
}

/** The router's own node:http server (private): its accepted connections, as the router sees them. */
function acceptedSockets(router: TrafficRouter): Socket[] {
  const accepted: Socket[] = [];
  (router as unknown as { server: Server }).server.on('connection', (s: Socket) => accepted.push(s));
  return accepted;
}

describe('TrafficRouter: pipelined requests whose client goes away', () => {
  it('releases routedInFlight and inFlight for every pipelined request, with no false 502', async () => {
    const { router, port } = await routed({ warmSockets: 1, drainTimeoutMs: 20_000 });
    const up = upstreamOf(router, A.id);
    const release = up.hold();
    const arrived = arrivals(up, 3);

    const s = await rawSocket(port);
    // The second carries a body the router reads whole before the client goes away.
    s.write(
      `GET /1 HTTP/1.1\r\nHost: ${HOST_A}\r\n\r\n` +
        `POST /2 HTTP/1.1\r\nHost: ${HOST_A}\r\nContent-Length: 5\r\n\r\nhello` +
        `GET /3 HTTP/1.1\r\nHost: ${HOST_A}\r\n\r\n`,
    );
    await arrived;
    expect(router.upstreamStats(A.id)?.routedInFlight).toBe(3);
    expect(router.stats().inFlight).toBe(3);

    // The client goes away with all three in flight: the first owns the connection, the other two
    // wait behind it (node never closes those responses).
    const idle = once(up, 'idle');
    s.destroy();
    await idle; // every upstream request was cut off
    release();
    expect(router.upstreamStats(A.id)?.routedInFlight).toBe(0);
    expect(router.stats()).toMatchObject({ inFlight: 0, badGateway: 0 });

    // And a stop no longer waits for them (drainTimeoutMs is 20 s, the test timeout 30 s).
    await router.stopUpstream(A.id);
  });

  it('proxies no pipelined request held during a wake-up whose client went away meanwhile', async () => {
    const wakes: Array<(ok: boolean) => void> = [];
    let bothHeld: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      bothHeld = resolve;
    });
    const router = newRouter({
      warmSockets: 1,
      wake: () =>
        new Promise<boolean>((resolve) => {
          if (wakes.push(resolve) === 2) bothHeld();
        }),
    });
    router.applyRoutes(new Map([[HOST_A, A.id]])); // A is asleep: no upstream
    const port = await router.listen();
    const accepted = acceptedSockets(router);

    const s = await rawSocket(port);
    s.write(`GET /1 HTTP/1.1\r\nHost: ${HOST_A}\r\n\r\nGET /2 HTTP/1.1\r\nHost: ${HOST_A}\r\n\r\n`);
    await held; // both requests wait for the wake-up
    const serverSide = accepted[0];
    if (serverSide === undefined) throw new Error('no accepted connection');
    const gone = once(serverSide, 'close');
    s.destroy();
    await gone;

    // The deployment wakes up, but nobody is left to answer.
    await router.startUpstream(A);
    for (const wake of wakes) wake(true);
    await new Promise<void>((resolve) => setImmediate(resolve)); // the wake continuations (microtasks)
    expect(router.stats()).toMatchObject({ proxied: 0, inFlight: 0, unavailable: 0, badGateway: 0 });
    expect(router.upstreamStats(A.id)).toMatchObject({ routedInFlight: 0, total: 0 });
  });
});

describe('TrafficRouter: pipelining and the stall timer', () => {
  const stallTimeoutMs = 150;
  const big = Buffer.alloc(1_000_000, 'z');

  it('does not cut a reading client whose pipelined response waits behind a slower one', async () => {
    // The stall timer runs on a clock only this test moves: a loaded machine that delays the client's
    // reads must not make it look stalled once its response has the connection.
    const stallClock = new ManualClock();
    const { router, port } = await routed({ warmSockets: 1, stallTimeoutMs, stallClock }, true);
    const upA = upstreamOf(router, A.id);
    const upB = upstreamOf(router, B.id);
    const release = upA.hold();

    const s = await rawSocket(port);
    const all = readAll(s);
    const cut = closed(s);
    // 1 is slow (A is held); 2, a 1 MB echo from B, must wait for it (HTTP/1.1 answers in order).
    const bArrived = once(upB, 'request');
    s.write(
      `GET / HTTP/1.1\r\nHost: ${HOST_A}\r\n\r\n` +
        `POST / HTTP/1.1\r\nHost: ${HOST_B}\r\nContent-Length: ${big.length}\r\nConnection: close\r\n\r\n`,
    );
    s.write(big);
    await bArrived;
    // Real time for B's answer to reach the router (a timer wrongly started for 2 while it waits would
    // be running by then), then several stall timeouts pass while 2 still waits behind 1.
    await Promise.race([cut, new Promise((resolve) => setTimeout(resolve, 500))]);
    await stallClock.advance(4 * stallTimeoutMs);
    expect(router.stats().stalled).toBe(0);
    release();

    const [first, second] = parseResponses(await all, 2);
    expect(first?.headers).toContain(`x-deployment-id: ${A.id}`);
    expect(second?.headers).toContain(`x-deployment-id: ${B.id}`);
    expect(second?.body.equals(big)).toBe(true);
    expect(router.stats().stalled).toBe(0);
  });

  it('still cuts a pipelined response once it owns the connection and its client stops reading', async () => {
    const { router, port } = await routed(
      { maxSocketsPerUpstream: 1, warmSockets: 1, stallTimeoutMs: 200 },
      true,
    );
    const upA = upstreamOf(router, A.id);
    const upB = upstreamOf(router, B.id);
    const release = upA.hold();

    // The client never reads: 2 is a 64 MiB echo from B, queued behind the held 1.
    const s = await rawSocket(port);
    s.pause();
    const cut = closed(s);
    const bArrived = once(upB, 'request');
    const size = 64 * 1024 * 1024;
    s.write(
      `GET / HTTP/1.1\r\nHost: ${HOST_A}\r\n\r\n` +
        `POST / HTTP/1.1\r\nHost: ${HOST_B}\r\nContent-Length: ${size}\r\n\r\n`,
    );
    const chunk = Buffer.alloc(1024 * 1024, 97);
    let sent = 0;
    const pump = () => {
      while (sent < size && !s.destroyed) {
        sent += chunk.length;
        if (!s.write(chunk)) {
          s.once('drain', pump);
          return;
        }
      }
    };
    pump();
    await bArrived;
    release();
    await cut;
    expect(router.stats()).toMatchObject({ stalled: 1, badGateway: 0 });
    expect(sent).toBeLessThan(size);
    // B's only pooled connection is free again: the verification probe gets through.
    expect(await probe(port, HOST_B)).toEqual({ status: 200, deploymentId: B.id });
  });
});

describe('TrafficRouter: pipelining depth', () => {
  /**
   * Sends `n` pipelined GETs on one connection and holds the upstream until all `n` reached it (so
   * `n - 1` responses wait behind the first); returns the 'close' listeners on the router's side of
   * the connection at that moment. Every answer must still come, in order.
   */
  async function closeListenersAtDepth(n: number): Promise<number> {
    const { router, port } = await routed({ maxSocketsPerUpstream: n, warmSockets: 1 });
    const up = upstreamOf(router, A.id);
    const release = up.hold();
    const arrived = arrivals(up, n);
    const accepted = acceptedSockets(router);
    const s = await rawSocket(port);
    let got = '';
    const answered = new Promise<void>((resolve) => {
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if ((got.match(/HTTP\/1\.1 200 /g) ?? []).length === n) resolve();
      });
    });
    s.write(Array.from({ length: n }, (_, i) => `GET /${i} HTTP/1.1\r\nHost: ${HOST_A}\r\n\r\n`).join(''));
    await arrived;
    const serverSide = accepted[0];
    if (serverSide === undefined) throw new Error('no accepted connection');
    const listeners = serverSide.listenerCount('close');
    release();
    await answered;
    expect([...got.matchAll(/x-deployment-id: (\S+)/g)].map((m) => m[1])).toEqual(Array(n).fill(A.id));
    return listeners;
  }

  it('keeps one close listener per connection however many responses wait (no MaxListenersExceededWarning)', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const shallow = await closeListenersAtDepth(2);
      const deep = await closeListenersAtDepth(40);
      // node emits its warnings on a later tick
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(deep).toBe(shallow);
      expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('TrafficRouter: warm connection pool', () => {
  it('startUpstream leaves warmSockets connections open, and the first concurrent requests use them', async () => {
    const { router, port } = await routed({ maxSocketsPerUpstream: 4, warmSockets: 4 });
    const up = upstreamOf(router, A.id);
    expect(up.stats().connections).toBe(4);

    // Four concurrent requests (held until all four reached the upstream): one warm connection each.
    const release = up.hold();
    const arrived = arrivals(up, 4);
    const answers = Array.from({ length: 4 }, () =>
      rawExchange(port, `GET / HTTP/1.1\r\nHost: ${HOST_A}\r\nConnection: close\r\n\r\n`),
    );
    await arrived;
    release();
    for (const a of await Promise.all(answers)) expect(head(a).statusLine).toBe('HTTP/1.1 200 OK');
    expect(up.stats().connections).toBe(4);
  });

  it('a client HEAD does not cost the pool its upstream connection', async () => {
    const { router, port } = await routed({ maxSocketsPerUpstream: 1, warmSockets: 1 });
    const up = upstreamOf(router, A.id);
    for (let i = 0; i < 5; i++) {
      const answer = head(
        await rawExchange(port, `HEAD / HTTP/1.1\r\nHost: ${HOST_A}\r\nConnection: close\r\n\r\n`),
      );
      expect(answer.statusLine).toBe('HTTP/1.1 200 OK');
      expect(answer.headers).toContain(`x-deployment-id: ${A.id}`);
      expect(answer.body).toBe('');
    }
    expect(up.stats()).toMatchObject({ total: 5, connections: 1 });
  });
});

describe("TrafficRouter: answers node's server would give without x-deployment-id", () => {
  it('an HTTP/1.1 request without Host gets the router’s 400 (an HTTP/1.0 one is still routed by Host)', async () => {
    const { router, port } = await routed({ warmSockets: 1 });
    const answer = head(await rawExchange(port, 'GET / HTTP/1.1\r\nConnection: close\r\n\r\n'));
    expect(answer.statusLine).toBe('HTTP/1.1 400 Bad Request');
    expect(answer.headers).toContain('x-deployment-id: none');
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'bad_request' });

    const absolute = head(
      await rawExchange(port, `GET http://${HOST_A}/ HTTP/1.1\r\nConnection: close\r\n\r\n`),
    );
    expect(absolute.statusLine).toBe('HTTP/1.1 400 Bad Request');
    expect(absolute.headers).toContain('x-deployment-id: none');

    const old = head(await rawExchange(port, 'GET / HTTP/1.0\r\n\r\n'));
    expect(old.statusLine).toMatch(/^HTTP\/1\.1 404 /);
    expect(old.headers).toContain('x-deployment-id: none');
    expect(router.upstreamStats(A.id)?.total).toBe(0);
  });

  it('headers not all in within headersTimeoutMs get 408 with x-deployment-id none, then the connection is closed', async () => {
    const { router, port } = await routed({ warmSockets: 1, headersTimeoutMs: 100 });
    // A slow-loris client (/tmp/sec-audit slowloris.mjs): the request line and a header, never the end.
    const slow = await rawSocket(port);
    const all = readAll(slow);
    slow.write(`GET / HTTP/1.1\r\nHost: ${HOST_A}\r\n`);
    const answer = head((await all).toString('latin1'));
    expect(answer.statusLine).toBe('HTTP/1.1 408 Request Timeout');
    expect(answer.headers).toContain('x-deployment-id: none');
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'request_timeout' });
    expect(router.upstreamStats(A.id)?.total).toBe(0);
    // By default 10 s for the headers, and node's 300 s still for a whole request (an upload).
    const server = (newRouter() as unknown as { server: Server }).server;
    expect({ headers: server.headersTimeout, request: server.requestTimeout }).toEqual({
      headers: 10_000,
      request: 300_000,
    });
  });

  it('an unknown Expect gets 417 with x-deployment-id none', async () => {
    const { router, port } = await routed({ warmSockets: 1 });
    const answer = head(
      await rawExchange(
        port,
        `GET / HTTP/1.1\r\nHost: ${HOST_A}\r\nExpect: foo\r\nConnection: close\r\n\r\n`,
      ),
    );
    expect(answer.statusLine).toBe('HTTP/1.1 417 Expectation Failed');
    expect(answer.headers).toContain('x-deployment-id: none');
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'expectation_failed' });
    expect(router.upstreamStats(A.id)?.total).toBe(0);
  });

  it('CONNECT gets 405 with Allow and x-deployment-id none, then the connection is closed', async () => {
    const { router, port } = await routed({ warmSockets: 1 });
    // rawExchange resolves only once the router closes the connection.
    const answer = head(
      await rawExchange(port, `CONNECT ${HOST_A}:443 HTTP/1.1\r\nHost: ${HOST_A}:443\r\n\r\n`),
    );
    expect(answer.statusLine).toBe('HTTP/1.1 405 Method Not Allowed');
    expect(answer.headers).toContain('x-deployment-id: none');
    expect(answer.headers.find((h) => h.startsWith('allow:'))).toContain('get');
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'method_not_allowed' });
    expect(router.upstreamStats(A.id)?.total).toBe(0);
  });
});

describe('TrafficRouter: headers a visitor cannot forge', () => {
  it('a visitor’s x-switchyard-warmup is not forwarded: the page is served and counted as traffic', async () => {
    const { router, port } = await routed({ warmSockets: 1 });
    const up = upstreamOf(router, A.id);
    const arrived = once(up, 'request') as Promise<[IncomingMessage]>;
    const answer = head(
      await rawExchange(
        port,
        `GET / HTTP/1.1\r\nHost: ${HOST_A}\r\nX-Switchyard-Warmup: 1\r\nX-Switchyard-Other: 1\r\nConnection: close\r\n\r\n`,
      ),
    );
    expect(answer.statusLine).toBe('HTTP/1.1 200 OK');
    expect(JSON.parse(answer.body)).toMatchObject({ deploymentId: A.id });
    const [seen] = await arrived;
    expect(seen.headers['x-switchyard-warmup']).toBeUndefined();
    expect(seen.headers['x-switchyard-other']).toBeUndefined();
    expect(router.upstreamStats(A.id)?.total).toBe(1);
  });

  it('the probe mark reaches the upstream only as the router’s own, and a probe is still not traffic', async () => {
    const { router, port } = await routed({ warmSockets: 1 });
    const up = upstreamOf(router, A.id);
    const arrived = once(up, 'request') as Promise<[IncomingMessage]>;
    expect(await probe(port, HOST_A)).toEqual({ status: 200, deploymentId: A.id });
    const [seen] = await arrived;
    expect(seen.headers['x-switchyard-probe']).toBe('1');
    expect(await router.probe(HOST_A)).toEqual({ hostname: HOST_A, status: 200, deploymentId: A.id });
    expect(router.upstreamStats(A.id)).toMatchObject({ total: 0, lastRequestAt: undefined });

    const marked = once(up, 'request') as Promise<[IncomingMessage]>;
    await rawExchange(
      port,
      `GET / HTTP/1.1\r\nHost: ${HOST_A}\r\nX-Switchyard-Probe: anything\r\nConnection: close\r\n\r\n`,
    );
    const [forwarded] = await marked;
    expect(forwarded.headers['x-switchyard-probe']).toBe('1');
  });

  it('names the deployment it routed to in x-deployment-id, whatever the upstream sent', async () => {
    const { router, port } = await routed({ warmSockets: 1 });
    const up = upstreamOf(router, A.id);
    up.hold(); // the stand-in app must not answer on top of the raw one
    up.once('request', (req: IncomingMessage) => {
      req.socket.end('HTTP/1.1 200 OK\r\nX-Deployment-Id: dpl_someone_else\r\nContent-Length: 2\r\n\r\nok');
    });
    const answer = head(
      await rawExchange(port, `GET / HTTP/1.1\r\nHost: ${HOST_A}\r\nConnection: close\r\n\r\n`),
    );
    expect(answer.statusLine).toBe('HTTP/1.1 200 OK');
    expect(answer.headers.filter((h) => h.startsWith('x-deployment-id:'))).toEqual([
      `x-deployment-id: ${A.id}`,
    ]);
    expect(answer.body).toBe('ok');
  });
});

describe('TrafficRouter: absolute-form request targets (RFC 9112 §3.2.2)', () => {
  it('routes by the target’s authority, forwarding it as Host and only path and query as the target', async () => {
    const { router, port } = await routed({ warmSockets: 1 }, true);
    const upB = upstreamOf(router, B.id);

    const arrived = once(upB, 'request') as Promise<[IncomingMessage]>;
    const answer = head(
      await rawExchange(
        port,
        `GET http://B.Localhost:8080/path?q=1 HTTP/1.1\r\nHost: ${HOST_A}\r\nConnection: close\r\n\r\n`,
      ),
    );
    expect(answer.headers).toContain(`x-deployment-id: ${B.id}`);
    const [seen] = await arrived;
    expect(seen.url).toBe('/path?q=1');
    expect(seen.headers.host).toBe('B.Localhost:8080');
    expect(seen.rawHeaders.filter((h) => h.toLowerCase() === 'host')).toHaveLength(1);

    const query = once(upB, 'request') as Promise<[IncomingMessage]>;
    await rawExchange(
      port,
      `GET http://${HOST_B}?x=1 HTTP/1.1\r\nHost: ${HOST_A}\r\nConnection: close\r\n\r\n`,
    );
    expect((await query)[0].url).toBe('/?x=1');
    expect(router.upstreamStats(A.id)?.total).toBe(0);
  });

  it('gives an absolute-form operator path to the operator, and answers 400 to a target it cannot route', async () => {
    const seen: string[] = [];
    const router = newRouter({
      warmSockets: 1,
      operator: (req, res) => {
        seen.push(`${req.headers.host} ${req.url}`);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
        res.end('{}');
      },
    });
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST_A, A.id]]));
    const port = await router.listen();

    const op = head(
      await rawExchange(
        port,
        `GET http://localhost/_switchyard/state HTTP/1.1\r\nHost: ${HOST_A}\r\nConnection: close\r\n\r\n`,
      ),
    );
    expect(op.statusLine).toBe('HTTP/1.1 200 OK');
    expect(seen).toEqual(['localhost /_switchyard/state']);

    for (const target of [`ftp://${HOST_A}/`, `http://user@${HOST_A}/`, 'http:///x']) {
      const bad = head(
        await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: ${HOST_A}\r\nConnection: close\r\n\r\n`),
      );
      expect(bad.statusLine, target).toBe('HTTP/1.1 400 Bad Request');
      expect(bad.headers, target).toContain('x-deployment-id: none');
    }
    expect(router.upstreamStats(A.id)?.total).toBe(0);
    expect(router.stats().badGateway).toBe(0);
  });
});
