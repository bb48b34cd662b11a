/**
 * Integration tests of the local platform's traffic plane (router.ts + upstream.ts) over real sockets
 * on 127.0.0.1: Host routing, the 404/503/502 answers, x-deployment-id on every response, draining,
 * and the issue-2 load test (hundreds of requests in flight across 50 back-and-forth switches).
 * Synchronisation is by events (upstream `request`/`idle`, response counts), never by sleeping.
 */
import { once } from 'node:events';
import { Agent, type IncomingHttpHeaders, type IncomingMessage, request } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import {
  clientErrorResponse,
  type DeploymentInfo,
  NO_DEPLOYMENT,
  normalizeHost,
  probe,
  TrafficRouter,
} from '../../src/platform/local/router.js';
import { Upstream } from '../../src/platform/local/upstream.js';

const A: DeploymentInfo = {
  id: 'dpl_a',
  environment: 'production',
  branch: 'main',
  commit: { sha: 'aaaa111', message: 'first', author: 'ana' },
};
const B: DeploymentInfo = {
  id: 'dpl_b',
  environment: 'production',
  branch: 'main',
  commit: { sha: 'bbbb222', message: 'second', author: 'bo' },
};
const HOST = 'app.example.com';

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly deploymentId: string | undefined;
  readonly body: Buffer;
}

interface Call {
  readonly host?: string;
  readonly path?: string;
  readonly method?: string;
  readonly body?: Buffer;
  readonly accept?: string;
  readonly agent?: Agent | false;
}

/** One HTTP request to 127.0.0.1:port; resolves with the whole answer. */
function call(port: number, opts: Call = {}): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.host !== undefined) headers.host = opts.host;
    if (opts.accept !== undefined) headers.accept = opts.accept;
    if (opts.body !== undefined) headers['content-length'] = String(opts.body.length);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: opts.path ?? '/',
        method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'),
        headers,
        agent: opts.agent ?? false,
      },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const raw = res.headers['x-deployment-id'];
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            deploymentId: Array.isArray(raw) ? raw[0] : raw,
            body: Buffer.concat(chunks),
          });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

function json(reply: Reply): Record<string, unknown> {
  return JSON.parse(reply.body.toString('utf8')) as Record<string, unknown>;
}

/** Resolves when a TCP connect to the port is refused (the server is really gone). */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

/**
 * Writes `data` on a raw TCP connection and resolves with everything the server sent once it closes the
 * connection (each use asks for that: HTTP/1.0, `Connection: close`, or an error answer).
 */
function rawExchange(port: number, data: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.write(data);
  });
}

/** Splits a raw HTTP answer into its status line, lowercase header lines and body. */
function parseRaw(answer: string): { statusLine: string; headers: string[]; body: string } {
  const end = answer.indexOf('\r\n\r\n');
  const [statusLine = '', ...headers] = answer.slice(0, end).split('\r\n');
  return { statusLine, headers: headers.map((h) => h.toLowerCase()), body: answer.slice(end + 4) };
}

const routers: TrafficRouter[] = [];
const agents: Agent[] = [];
const upstreams: Upstream[] = [];

function newRouter(options: ConstructorParameters<typeof TrafficRouter>[0] = {}): TrafficRouter {
  const r = new TrafficRouter({ port: 0, ...options });
  routers.push(r);
  return r;
}

function newAgent(maxSockets: number): Agent {
  const a = new Agent({ keepAlive: true, maxSockets });
  agents.push(a);
  return a;
}

afterEach(async () => {
  for (const a of agents.splice(0)) a.destroy();
  await Promise.all(routers.splice(0).map((r) => r.close()));
  await Promise.all(upstreams.splice(0).map((u) => u.stop()));
});

describe('normalizeHost', () => {
  it('strips the port and trailing dot and lowercases', () => {
    expect(normalizeHost('App.Example.COM:8080')).toBe('app.example.com');
    expect(normalizeHost('app.example.com.')).toBe('app.example.com');
    expect(normalizeHost('[::1]:8080')).toBe('[::1]');
    expect(normalizeHost('localhost')).toBe('localhost');
    expect(normalizeHost(undefined)).toBe('');
  });
});

describe('Upstream', () => {
  it('answers 200 with x-deployment-id and a page naming deployment, branch and commit', async () => {
    const clock = new ManualClock();
    const up = new Upstream(A, { clock });
    upstreams.push(up);
    const port = await up.start();
    expect(up.stats()).toMatchObject({
      total: 0,
      inFlight: 0,
      lastRequestAt: undefined,
      startedAt: clock.now(),
    });

    const asJson = await call(port, { path: '/anything?x=1' });
    expect(asJson.status).toBe(200);
    expect(asJson.deploymentId).toBe(A.id);
    expect(json(asJson)).toMatchObject({ deploymentId: A.id, branch: 'main', commit: 'aaaa111' });

    await clock.advance(60_000);
    const asHtml = await call(port, { accept: 'text/html' });
    expect(asHtml.headers['content-type']).toContain('text/html');
    expect(asHtml.body.toString()).toContain('dpl_a');
    expect(asHtml.body.toString()).toContain('aaaa111');

    expect(up.stats()).toMatchObject({ total: 2, inFlight: 0, lastRequestAt: clock.now() });
  });

  it('stop() waits for an in-flight request, refuses new connections and is idempotent', async () => {
    const up = new Upstream(A);
    upstreams.push(up);
    const port = await up.start();
    const release = up.hold();
    const arrived = once(up, 'request');
    const pending = call(port);
    await arrived;
    expect(up.stats().inFlight).toBe(1);

    const stop1 = up.stop();
    const stop2 = up.stop();
    expect(stop2).toBe(stop1);
    let stopped = false;
    void stop1.then(() => {
      stopped = true;
    });
    expect(await refused(port)).toBe(true);
    expect(stopped).toBe(false);

    release();
    const reply = await pending;
    expect(reply.status).toBe(200);
    expect(reply.deploymentId).toBe(A.id);
    await stop1;
    expect(up.stats().inFlight).toBe(0);
  });

  it('drains a request slowed by delayMs', async () => {
    const up = new Upstream(A, { delayMs: 50 });
    upstreams.push(up);
    const port = await up.start();
    const arrived = once(up, 'request');
    const pending = call(port);
    await arrived;
    await up.stop();
    expect((await pending).status).toBe(200);
  });
});

describe('TrafficRouter', () => {
  it('routes by Host (any case, any port) to the deployment the domain points to', async () => {
    const router = newRouter();
    await router.startUpstream(A);
    await router.startUpstream(B);
    router.applyRoutes(
      new Map([
        [HOST, A.id],
        ['Docs.Example.com', B.id],
      ]),
    );
    const port = await router.listen();

    const a = await call(port, { host: `APP.example.com:${port}` });
    expect(a.status).toBe(200);
    expect(a.deploymentId).toBe(A.id);
    expect(json(a)).toMatchObject({ deploymentId: A.id, commit: 'aaaa111' });

    const b = await call(port, { host: 'docs.example.com' });
    expect(b.deploymentId).toBe(B.id);
    expect(json(b)).toMatchObject({ deploymentId: B.id, commit: 'bbbb222' });
    // hop-by-hop headers of the upstream leg are not passed on
    expect(b.headers['keep-alive']).toBeUndefined();

    expect(router.runningUpstreams().sort()).toEqual([A.id, B.id]);
    expect(router.upstreamStats(A.id)).toMatchObject({ total: 1, inFlight: 0 });
    expect(router.stats()).toMatchObject({ proxied: 2, unknownHost: 0 });
  });

  it('counts traffic on the injected clock for the idle rule; the pool warm-up is not traffic', async () => {
    const clock = new ManualClock();
    const router = newRouter({ clock, warmSockets: 4 });
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();
    const startedAt = clock.now();
    expect(router.upstreamStats(A.id)).toMatchObject({
      total: 0,
      inFlight: 0,
      routedInFlight: 0,
      startedAt,
      lastRequestAt: undefined,
    });

    await clock.advance(6 * 60 * 60_000);
    await call(port, { host: HOST });
    await call(port, { host: HOST });
    expect(router.upstreamStats(A.id)).toMatchObject({
      total: 2,
      inFlight: 0,
      routedInFlight: 0,
      startedAt,
      lastRequestAt: startedAt + 6 * 60 * 60_000,
    });
  });

  it('answers 404 with x-deployment-id none and a JSON error naming an unknown host', async () => {
    const router = newRouter();
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();

    const reply = await call(port, { host: 'nope.example.org:8080' });
    expect(reply.status).toBe(404);
    expect(reply.deploymentId).toBe(NO_DEPLOYMENT);
    expect(json(reply)).toMatchObject({ error: 'unknown_host', host: 'nope.example.org' });
    expect(String(json(reply).message)).toContain('nope.example.org');
  });

  it('answers 503 with x-deployment-id none when the deployment has no running upstream', async () => {
    const router = newRouter();
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();

    const reply = await call(port, { host: HOST });
    expect(reply.status).toBe(503);
    expect(reply.deploymentId).toBe(NO_DEPLOYMENT);
    expect(json(reply)).toMatchObject({ error: 'deployment_unavailable', deploymentId: A.id, host: HOST });

    await router.startUpstream(A);
    expect((await call(port, { host: HOST })).deploymentId).toBe(A.id);
    await router.stopUpstream(A.id);
    expect((await call(port, { host: HOST })).status).toBe(503);
    expect(router.upstreamStats(A.id)).toBeUndefined();
    expect(router.runningUpstreams()).toEqual([]);
  });

  it('gives the router address and /_switchyard/ paths to the operator listener, with x-deployment-id none', async () => {
    const seen: string[] = [];
    const router = newRouter({
      operator: (req, res) => {
        seen.push(`${req.headers.host} ${req.url}`);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"operator":true}');
      },
    });
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();

    for (const host of [`127.0.0.1:${port}`, 'localhost', `[::1]:${port}`]) {
      const reply = await call(port, { host, path: '/routes' });
      expect(reply.status).toBe(200);
      expect(reply.deploymentId).toBe(NO_DEPLOYMENT);
      expect(json(reply)).toEqual({ operator: true });
    }
    const viaDomain = await call(port, { host: HOST, path: '/_switchyard/routes' });
    expect(json(viaDomain)).toEqual({ operator: true });
    expect(seen).toHaveLength(4);
    expect(router.upstreamStats(A.id)?.total).toBe(0);
  });

  it('answers 404 on the operator address when no operator is mounted, and 500 when it throws', async () => {
    const bare = newRouter();
    const barePort = await bare.listen();
    const reply = await call(barePort, { host: 'localhost' });
    expect(reply.status).toBe(404);
    expect(reply.deploymentId).toBe(NO_DEPLOYMENT);

    const failing = newRouter({
      operator: () => {
        throw new Error('boom');
      },
    });
    const failingPort = await failing.listen();
    const failed = await call(failingPort, { host: 'localhost' });
    expect(failed.status).toBe(500);
    expect(failed.deploymentId).toBe(NO_DEPLOYMENT);
  });

  it('close() does not wait for an operator stream that never ends', async () => {
    const router = newRouter({
      operator: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: hello\n\n');
      },
    });
    const port = await router.listen();
    const req = request({ host: '127.0.0.1', port, path: '/_switchyard/events', agent: false });
    req.on('error', () => undefined);
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    expect(res.headers['x-deployment-id']).toBe(NO_DEPLOYMENT);
    res.on('error', () => undefined); // the cut stream reports "aborted"
    res.resume();
    const ended = new Promise<void>((resolve) => res.once('close', () => resolve()));
    await router.close();
    await ended;
    expect(await refused(port)).toBe(true);
  });

  it('streams request and response bodies both ways', async () => {
    const router = newRouter();
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();
    const body = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;

    const reply = await call(port, { host: HOST, body, method: 'PUT' });
    expect(reply.status).toBe(200);
    expect(reply.deploymentId).toBe(A.id);
    expect(reply.body.equals(body)).toBe(true);
  });

  it('forwards a chunked request body and answers Expect: 100-continue', async () => {
    const router = newRouter();
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();
    const parts = [Buffer.from('first part, '), Buffer.from('second part, '), Buffer.from('last part')];
    const reply = await new Promise<{ status: number; id: unknown; body: Buffer; continued: boolean }>(
      (resolve, reject) => {
        let continued = false;
        const req = request({
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/',
          // no content-length: node sends the body chunked
          headers: { host: HOST, expect: '100-continue', 'content-type': 'text/plain' },
          agent: false,
        });
        req.on('continue', () => {
          continued = true;
          for (const p of parts) req.write(p);
          req.end();
        });
        req.on('response', (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              id: res.headers['x-deployment-id'],
              body: Buffer.concat(chunks),
              continued,
            }),
          );
        });
        req.on('error', reject);
        req.flushHeaders();
      },
    );
    expect(reply.continued).toBe(true);
    expect(reply.status).toBe(200);
    expect(reply.id).toBe(A.id);
    expect(reply.body.toString('utf8')).toBe(Buffer.concat(parts).toString('utf8'));
  });

  it('stopUpstream lets a slow in-flight request finish with 200 before closing', async () => {
    const router = newRouter();
    await router.startUpstream(A);
    await router.startUpstream(B);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();
    const upA = router.upstream(A.id);
    if (upA === undefined) throw new Error('upstream A not running');
    const upPort = upA.port;
    if (upPort === undefined) throw new Error('upstream A has no port');

    const release = upA.hold();
    const arrived = once(upA, 'request');
    const slow = call(port, { host: HOST });
    await arrived;

    router.applyRoutes(new Map([[HOST, B.id]]));
    let stopped = false;
    const stopping = router.stopUpstream(A.id).then(() => {
      stopped = true;
    });
    expect(router.stopUpstream(A.id)).toBe(router.stopUpstream(A.id));
    expect(router.runningUpstreams()).toEqual([B.id]);
    // new arrivals already go to B while A drains
    expect((await call(port, { host: HOST })).deploymentId).toBe(B.id);
    expect(stopped).toBe(false);

    release();
    const reply = await slow;
    expect(reply.status).toBe(200);
    expect(reply.deploymentId).toBe(A.id);
    await stopping;
    expect(await refused(upPort)).toBe(true);
    expect(router.upstreamStats(A.id)).toBeUndefined();
  });

  it('answers 502 with x-deployment-id none when the upstream fails before headers, and keeps serving', async () => {
    const router = newRouter();
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();
    const upA = router.upstream(A.id);
    if (upA === undefined) throw new Error('upstream A not running');

    const kill = (req: IncomingMessage) => req.socket.destroy();
    upA.on('request', kill);
    const reply = await call(port, { host: HOST });
    expect(reply.status).toBe(502);
    expect(reply.deploymentId).toBe(NO_DEPLOYMENT);
    expect(json(reply)).toMatchObject({ error: 'bad_gateway', deploymentId: A.id });
    upA.off('request', kill);

    expect((await call(port, { host: HOST })).deploymentId).toBe(A.id);
    expect(router.stats().badGateway).toBe(1);
  });

  it('survives a client that disconnects mid-request', async () => {
    const router = newRouter();
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();
    const upA = router.upstream(A.id);
    if (upA === undefined) throw new Error('upstream A not running');

    const release = upA.hold();
    const arrived = once(upA, 'request');
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host: HOST }, agent: false });
    const clientError = once(req, 'error');
    req.end();
    await arrived;
    const idle = once(upA, 'idle');
    req.destroy();
    await clientError;
    await idle; // the router cut the upstream request off too
    release();

    expect(router.stats().inFlight).toBe(0);
    expect(upA.stats().inFlight).toBe(0);
    expect((await call(port, { host: HOST })).status).toBe(200);
  });

  it('probe() reports status and the deployment that answered', async () => {
    const router = newRouter();
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();

    expect(await probe(port, HOST)).toEqual({ status: 200, deploymentId: A.id });
    expect(await probe(port, 'unknown.example.com')).toEqual({ status: 404, deploymentId: undefined });
    expect(await router.probe(HOST)).toEqual({ hostname: HOST, status: 200, deploymentId: A.id });
    expect(await router.probe('unknown.example.com')).toEqual({
      hostname: 'unknown.example.com',
      status: 404,
    });
    await router.close();
    await expect(probe(port, HOST)).rejects.toMatchObject({ code: 'platform_unavailable', retry: true });
    const down = await router.probe(HOST);
    expect(down.error).toContain(`127.0.0.1:${port}`);
    expect(down.deploymentId).toBeUndefined();
  });

  it('close() stops the router and every upstream; no port or socket stays open', async () => {
    const tcpHandles = () => process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP')).length;
    // closed handles are released a loop turn or two after their close callbacks
    const settled = async () => {
      for (let turn = 0; turn < 20; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
      return tcpHandles();
    };
    const before = await settled();
    const router = newRouter();
    await router.startUpstream(A);
    await router.startUpstream(B);
    const upPortA = router.upstreamPort(A.id);
    const upPortB = router.upstreamPort(B.id);
    if (upPortA === undefined || upPortB === undefined) throw new Error('upstreams not running');
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();
    const agent = newAgent(4);
    expect((await call(port, { host: HOST, agent })).status).toBe(200);
    expect(tcpHandles()).toBeGreaterThan(before);

    await router.close();
    await router.close();
    agent.destroy(); // the test's own client socket
    expect(await settled()).toBe(before);
    expect(await refused(port)).toBe(true);
    expect(await refused(upPortA)).toBe(true);
    expect(await refused(upPortB)).toBe(true);
    expect(router.runningUpstreams()).toEqual([]);
    await expect(router.startUpstream(A)).rejects.toMatchObject({ code: 'internal' });
  });
});

describe('TrafficRouter: framing, client errors, stalled clients, close', () => {
  it('never sends Transfer-Encoding to an HTTP/1.0 client: the chunked upstream answer arrives close-delimited and whole', async () => {
    const router = newRouter({ warmSockets: 1 });
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();

    // The upstream echoes a body chunked (no content-length); HTTP/1.0 has no chunked coding.
    const answer = parseRaw(
      await rawExchange(port, `POST /echo HTTP/1.0\r\nHost: ${HOST}\r\nContent-Length: 5\r\n\r\nhello`),
    );
    expect(answer.statusLine).toMatch(/^HTTP\/1\.[01] 200 /);
    expect(answer.headers).toContain(`x-deployment-id: ${A.id}`);
    expect(answer.headers.filter((h) => h.startsWith('transfer-encoding'))).toEqual([]);
    expect(answer.body).toBe('hello');

    // An HTTP/1.1 client still gets it chunked, framed by the router's server, and intact.
    const reply = await call(port, { host: HOST, body: Buffer.from('hello') });
    expect(reply.headers['transfer-encoding']).toBe('chunked');
    expect(reply.body.toString()).toBe('hello');
  });

  it('drops the headers a Connection header names, on the response and on the request', async () => {
    const router = newRouter({ warmSockets: 1 });
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();
    const upA = router.upstream(A.id);
    if (upA === undefined) throw new Error('upstream A not running');

    // Request side: the client's Connection names x-client-hop; the upstream must not see it.
    const arrived = once(upA, 'request') as Promise<[IncomingMessage]>;
    const sent = rawExchange(
      port,
      `GET / HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close, X-Client-Hop\r\nX-Client-Hop: 1\r\nX-Client-Kept: 1\r\n\r\n`,
    );
    const [seen] = await arrived;
    expect(seen.headers['x-client-hop']).toBeUndefined();
    expect(seen.headers['x-client-kept']).toBe('1');
    expect(parseRaw(await sent).statusLine).toMatch(/ 200 /);

    // Response side: an answer written raw on the upstream's socket, naming x-hop in Connection.
    upA.hold(); // the stand-in app must not answer on top of the raw one
    upA.once('request', (req: IncomingMessage) => {
      req.socket.end(
        'HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: secret\r\nX-Kept: yes\r\n' +
          'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      );
    });
    const reply = await call(port, { host: HOST });
    expect(reply.status).toBe(200);
    expect(reply.deploymentId).toBe(A.id);
    expect(reply.headers['x-hop']).toBeUndefined();
    expect(reply.headers['x-kept']).toBe('yes');
    expect(reply.body.toString()).toBe('hello');
  });

  it('answers what node cannot parse with the right status and x-deployment-id none', async () => {
    const router = newRouter({ warmSockets: 1 });
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();

    const tooLarge = parseRaw(
      await rawExchange(port, `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
    );
    expect(tooLarge.statusLine).toBe('HTTP/1.1 431 Request Header Fields Too Large');
    expect(tooLarge.headers).toContain('x-deployment-id: none');
    expect(JSON.parse(tooLarge.body)).toMatchObject({ error: 'headers_too_large' });

    const garbage = parseRaw(await rawExchange(port, 'NOT AN HTTP REQUEST\r\n\r\n'));
    expect(garbage.statusLine).toBe('HTTP/1.1 400 Bad Request');
    expect(garbage.headers).toContain('x-deployment-id: none');

    // node reports a request not received within its requestTimeout as ERR_HTTP_REQUEST_TIMEOUT
    expect(parseRaw(clientErrorResponse('ERR_HTTP_REQUEST_TIMEOUT')).statusLine).toBe(
      'HTTP/1.1 408 Request Timeout',
    );
    expect(router.upstreamStats(A.id)?.total).toBe(0);
  });

  it('answers OPTIONS * itself (200, Allow) and never blames the deployment with a 502', async () => {
    const router = newRouter({ warmSockets: 1 });
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();

    const options = parseRaw(
      await rawExchange(port, `OPTIONS * HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`),
    );
    expect(options.statusLine).toBe('HTTP/1.1 200 OK');
    expect(options.headers).toContain('x-deployment-id: none');
    expect(options.headers.find((h) => h.startsWith('allow:'))).toContain('options');

    const get = parseRaw(
      await rawExchange(port, `GET * HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`),
    );
    expect(get.statusLine).toBe('HTTP/1.1 400 Bad Request');
    expect(get.headers).toContain('x-deployment-id: none');

    expect(router.stats().badGateway).toBe(0);
    expect(router.upstreamStats(A.id)?.total).toBe(0);
  });

  it('retries a bodyless request after a reset of its pooled connection only when its method is idempotent', async () => {
    const router = newRouter({ warmSockets: 2 });
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();
    const upA = router.upstream(A.id);
    if (upA === undefined) throw new Error('upstream A not running');
    const killOnce = () => upA.once('request', (req: IncomingMessage) => req.socket.destroy());

    killOnce();
    const get = await call(port, { host: HOST });
    expect(get.status).toBe(200);
    expect(get.deploymentId).toBe(A.id);
    expect(upA.stats().total).toBe(2); // the cut attempt and its retry

    killOnce();
    const post = await call(port, { host: HOST, method: 'POST' });
    expect(post.status).toBe(502); // the upstream may have acted on it: never sent twice
    expect(upA.stats().total).toBe(3);
    expect(router.stats().badGateway).toBe(1);
  });

  it('cuts a client that stops reading after stallTimeoutMs, freeing its pooled connection for everyone else (the verification probe too)', async () => {
    // One pooled connection, so that one stalled client is enough to hold the whole pool.
    const router = newRouter({ maxSocketsPerUpstream: 1, warmSockets: 1, stallTimeoutMs: 200 });
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();
    const upA = router.upstream(A.id);
    if (upA === undefined) throw new Error('upstream A not running');

    // Uploads 64 MiB to the echoing upstream and never reads the echo.
    const arrived = once(upA, 'request');
    const stalled = connect(port, '127.0.0.1');
    stalled.on('error', () => undefined);
    stalled.pause();
    const size = 64 * 1024 * 1024;
    stalled.write(`POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${size}\r\n\r\n`);
    const chunk = Buffer.alloc(1024 * 1024, 97);
    let sent = 0;
    const pump = () => {
      while (sent < size && !stalled.destroyed) {
        sent += chunk.length;
        if (!stalled.write(chunk)) {
          stalled.once('drain', pump);
          return;
        }
      }
    };
    pump();
    const cut = new Promise<void>((resolve) => stalled.once('close', () => resolve()));
    await arrived;

    // Queued behind the stalled exchange until the router cuts it.
    expect(await probe(port, HOST, { timeoutMs: 10_000 })).toEqual({ status: 200, deploymentId: A.id });
    await cut;
    expect(router.stats()).toMatchObject({ stalled: 1, badGateway: 0 });
    expect(sent).toBeLessThan(size);
  });

  it('never cuts a client that reads slowly but keeps reading', async () => {
    // The stall timer runs on a clock only this test moves, so the reader is slow in stall windows
    // whatever the load on the machine (on real time, a loaded machine delayed the reader's own reads
    // and the router rightly took it for stalled).
    const stallTimeoutMs = 1_000;
    const stallClock = new ManualClock();
    const arms = vi.spyOn(stallClock, 'sleep');
    const router = newRouter({ warmSockets: 1, stallTimeoutMs, stallClock });
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();
    const upA = router.upstream(A.id);
    if (upA === undefined) throw new Error('upstream A not running');
    const body = Buffer.alloc(16 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;

    const echoing = once(upA, 'request') as Promise<[IncomingMessage]>;
    const req = request({
      host: '127.0.0.1',
      port,
      method: 'PUT',
      path: '/',
      headers: { host: HOST, 'content-length': String(body.length) },
      agent: false,
    });
    const answered = once(req, 'response') as Promise<[IncomingMessage]>;
    req.end(body);
    const [res] = await answered;
    // The upstream's end of its pooled connection: what it has written so far bounds what is on its
    // way to the client (in the kernel, or buffered by the router).
    const [{ socket: upstreamSide }] = await echoing;

    const chunks: Buffer[] = [];
    let received = 0;
    let wanted = 0;
    let gotWanted: () => void = () => undefined;
    res.on('data', (c: Buffer) => {
      chunks.push(c);
      received += c.length;
      if (received >= wanted) {
        res.pause();
        gotWanted();
      }
    });
    res.pause();
    let ended = false;
    const end = new Promise<void>((resolve, reject) => {
      res.once('end', () => {
        ended = true;
        resolve();
      });
      res.once('error', reject);
      req.once('error', reject);
    });

    // Takes nothing for almost a stall window, then more than the upstream has sent: so all the router
    // had buffered when it last started waiting on the reader is taken. Again and again, to the end.
    const start = stallClock.now();
    while (!ended) {
      await stallClock.advance(stallTimeoutMs - 1);
      wanted = upstreamSide.bytesWritten;
      const taken = new Promise<void>((resolve) => {
        gotWanted = resolve;
      });
      res.resume();
      await Promise.race([taken, end]);
    }
    expect(Buffer.concat(chunks).equals(body)).toBe(true);
    // Slow: its reading spanned several stall windows, in which the router waited on it again and again.
    expect(stallClock.now() - start).toBeGreaterThan(2 * stallTimeoutMs);
    expect(arms.mock.calls.length).toBeGreaterThan(2);
    expect(router.stats().stalled).toBe(0);
  });

  it('close() waits for in-flight requests at most drainTimeoutMs in all', async () => {
    const router = newRouter({ warmSockets: 1, drainTimeoutMs: 400 });
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();
    const upA = router.upstream(A.id);
    if (upA === undefined) throw new Error('upstream A not running');
    upA.hold(); // never answered: only the drain timeout ends it
    const arrived = once(upA, 'request');
    const held = request({ host: '127.0.0.1', port, path: '/', headers: { host: HOST }, agent: false });
    held.on('error', () => undefined);
    held.on('response', (res) => res.resume());
    held.end();
    await arrived;

    const t0 = performance.now();
    await router.close();
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(350);
    expect(took).toBeLessThan(700); // it was 2 × drainTimeoutMs: the router's wait, then the upstream's
    expect(await refused(port)).toBe(true);
  });
});

interface LoadResult {
  readonly ok: number;
  readonly failures: string[];
  /** Requests that started and ended between two swaps yet were answered by another deployment. */
  readonly stale: string[];
  /** Requests that fell wholly between two swaps (the ones the stale check could judge). */
  readonly judged: number;
  readonly seen: ReadonlySet<string>;
  readonly maxInFlightAtSwitch: number;
}

const HOST2 = 'www.example.com';

/**
 * The issue-2 load test: `workers` clients loop requests through the router, alternating between two
 * domains, while `switches` times both domains are moved to the other deployment in one swap. Each
 * switch waits (on a response counter, not a timer) until `perSwitch` more responses have arrived, so
 * traffic is flowing during every switch. `afterSwitch` runs between switches (e.g. drain the old
 * upstream). Besides failures, it checks every request that began and ended between two swaps was
 * answered by the deployment in force then (no stale or half-switched answer, on either domain).
 */
async function loadAcrossSwitches(
  router: TrafficRouter,
  port: number,
  opts: {
    workers: number;
    switches: number;
    perSwitch: number;
    beforeSwitch?: (to: DeploymentInfo) => Promise<void>;
    afterSwitch?: (from: DeploymentInfo) => Promise<void>;
  },
): Promise<LoadResult> {
  const agent = newAgent(opts.workers);
  const allowed = new Set([A.id, B.id]);
  const failures: string[] = [];
  const seen = new Set<string>();
  const records: Array<{ start: number; end: number; id: string; host: string }> = [];
  const swapAt: number[] = [];
  const generation: string[] = [A.id];
  let ok = 0;
  let done = false;
  let waiter: { target: number; resolve: () => void } | undefined;
  const answered = () => {
    if (waiter !== undefined && ok + failures.length >= waiter.target) {
      const w = waiter;
      waiter = undefined;
      w.resolve();
    }
  };
  const worker = async (n: number) => {
    let host = n % 2 === 0 ? HOST : HOST2;
    while (!done) {
      host = host === HOST ? HOST2 : HOST;
      const start = performance.now();
      try {
        const reply = await call(port, { host, agent });
        const id = reply.deploymentId ?? '';
        const bodyId = reply.status === 200 ? json(reply).deploymentId : undefined;
        if (reply.status !== 200) failures.push(`status ${reply.status} from ${id}`);
        else if (!allowed.has(id)) failures.push(`unexpected deployment ${id}`);
        else if (bodyId !== id) failures.push(`header says ${id} but body says ${String(bodyId)}`);
        else {
          ok++;
          seen.add(id);
          records.push({ start, end: performance.now(), id, host });
        }
      } catch (e) {
        failures.push(`request failed: ${(e as Error).message}`);
      }
      answered();
    }
  };
  const running = Array.from({ length: opts.workers }, (_, n) => worker(n));

  let current = A;
  let maxInFlightAtSwitch = 0;
  for (let i = 0; i < opts.switches; i++) {
    await new Promise<void>((resolve) => {
      waiter = { target: ok + failures.length + opts.perSwitch, resolve };
      answered();
    });
    const next = current === A ? B : A;
    await opts.beforeSwitch?.(next);
    maxInFlightAtSwitch = Math.max(maxInFlightAtSwitch, router.stats().inFlight);
    router.applyRoutes(
      new Map([
        [HOST, next.id],
        [HOST2, next.id],
      ]),
    );
    swapAt.push(performance.now());
    generation.push(next.id);
    await opts.afterSwitch?.(current);
    current = next;
  }
  await new Promise<void>((resolve) => {
    waiter = { target: ok + failures.length + opts.perSwitch, resolve };
    answered();
  });
  done = true;
  await Promise.all(running);

  // generation in force at time t = number of swaps made at or before t
  const genAt = (t: number) => {
    let g = 0;
    while (g < swapAt.length && (swapAt[g] ?? Number.POSITIVE_INFINITY) <= t) g++;
    return g;
  };
  const stale: string[] = [];
  let judged = 0;
  for (const r of records) {
    const g = genAt(r.start);
    if (g !== genAt(r.end)) continue; // spans a swap: either deployment is right
    judged++;
    if (r.id !== generation[g])
      stale.push(`${r.host} answered by ${r.id} in generation ${g} (${generation[g]})`);
  }
  return { ok, failures, stale, judged, seen, maxInFlightAtSwitch };
}

describe('TrafficRouter under load (issue 2)', () => {
  it('300 concurrent clients across 50 back-and-forth switches: zero failures, every answer from A or B', async () => {
    const router = newRouter();
    await router.startUpstream(A);
    await router.startUpstream(B);
    router.applyRoutes(
      new Map([
        [HOST, A.id],
        [HOST2, A.id],
      ]),
    );
    const port = await router.listen();

    const result = await loadAcrossSwitches(router, port, { workers: 300, switches: 50, perSwitch: 100 });

    expect(result.failures.slice(0, 5)).toEqual([]);
    expect(result.failures).toHaveLength(0);
    expect(result.stale.slice(0, 5)).toEqual([]);
    // most requests span a swap (300 in flight, a swap every 100 answers); enough fall between two
    expect(result.judged).toBeGreaterThan(result.ok / 50);
    expect(result.ok).toBeGreaterThanOrEqual(51 * 100);
    expect([...result.seen].sort()).toEqual([A.id, B.id]);
    expect(result.maxInFlightAtSwitch).toBeGreaterThanOrEqual(100);
    const total = (router.upstreamStats(A.id)?.total ?? 0) + (router.upstreamStats(B.id)?.total ?? 0);
    expect(total).toBe(result.ok);
  }, 120_000);

  it('draining the old upstream after every switch, with requests in flight, still fails none', async () => {
    const router = newRouter();
    await router.startUpstream(A);
    router.applyRoutes(
      new Map([
        [HOST, A.id],
        [HOST2, A.id],
      ]),
    );
    const port = await router.listen();
    const drainedWithInFlight: number[] = [];

    const result = await loadAcrossSwitches(router, port, {
      workers: 300,
      switches: 50,
      perSwitch: 100,
      beforeSwitch: async (to) => {
        await router.startUpstream(to);
      },
      afterSwitch: async (from) => {
        drainedWithInFlight.push(router.upstreamStats(from.id)?.routedInFlight ?? 0);
        await router.stopUpstream(from.id);
      },
    });

    expect(result.failures.slice(0, 5)).toEqual([]);
    expect(result.failures).toHaveLength(0);
    expect(result.stale.slice(0, 5)).toEqual([]);
    expect([...result.seen].sort()).toEqual([A.id, B.id]);
    expect(drainedWithInFlight).toHaveLength(50);
    // the old deployment still had requests to finish when it was told to stop
    expect(Math.max(...drainedWithInFlight)).toBeGreaterThan(0);
    expect(router.runningUpstreams()).toEqual([A.id]);
  }, 120_000);
});
