/**
 * The embedded local platform's traffic plane: a real reverse proxy (a `node:http` server in front, one
 * undici connection pool per upstream behind) that routes by `Host` to one Upstream (upstream.ts) per
 * running deployment. It owns the hostname→deployment table, the set
 * of running upstreams and their keep-alive connection pools, the atomic switch and the drain.
 *
 * Guarantees (issue 2):
 * - A request picks its upstream once, on arrival, from one immutable table; `applyRoutes` swaps the
 *   whole table with one reference assignment, so a request is answered wholly by the old or wholly by
 *   the new deployment, never by a half-switched state.
 * - `stopUpstream` removes the deployment from service for new arrivals, waits until every request that
 *   already picked it has finished, and only then closes its pool and its server: nothing is dropped.
 * - Every response carries `x-deployment-id` (`none` when no deployment answered).
 * - Client disconnects and upstream faults end one request, never the process.
 *
 * The state machine that decides what points where is the local platform (platform.ts); it drives this
 * module through `applyRoutes`, `startUpstream` and `stopUpstream` and mounts its operator API through
 * the `operator` option.
 */
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Dispatcher, Pool } from 'undici';
import { type Clock, systemClock } from '../../clock.js';
import { SwitchyardError } from '../../errors.js';
import type { ProbeResult } from '../port.js';
import {
  type DeploymentInfo,
  PROBE_HEADER,
  Upstream,
  type UpstreamStats,
  WARMUP_HEADER,
} from './upstream.js';

export type { DeploymentInfo, UpstreamStats } from './upstream.js';

/** Header naming the deployment that answered. */
export const DEPLOYMENT_HEADER = 'x-deployment-id';
/** Value of DEPLOYMENT_HEADER when no deployment answered (unknown host, nothing running, proxy error). */
export const NO_DEPLOYMENT = 'none';
/** Paths under this prefix always go to the operator listener, whatever the Host. */
export const OPERATOR_PREFIX = '/_switchyard/';

export interface TrafficRouterOptions {
  /** Port to listen on; 0 picks a free one. The caller applies LOCAL_ROUTER_PORT (default 8080). */
  readonly port?: number;
  /** Address to listen on. Default 127.0.0.1. */
  readonly host?: string;
  /** Time source handed to every upstream (idle accounting). Default: the system clock. */
  readonly clock?: Clock;
  /**
   * Receives requests for the router's own address (`127.0.0.1`, `localhost`, `[::1]`, any port) when
   * that is not a routed domain, and every request under `/_switchyard/`. Without it those get 404.
   * `x-deployment-id: none` is already set on the response it receives.
   */
  readonly operator?: RequestListener;
  /**
   * Called for a request whose domain points to a deployment with no running upstream (a preview
   * deployment idled by the six-hour rule): resolves true once that deployment runs again, and the
   * request, held meanwhile, is proxied to it; false (or a rejection) answers 503 as without it.
   */
  readonly wake?: (deploymentId: string) => Promise<boolean>;
  /**
   * Keep-alive sockets per upstream; further concurrent requests wait in the pool's queue. Every
   * upstream shares the router's event loop, so more sockets add no throughput, while each pooled socket
   * holds two file descriptors (both ends live in this process). Default 16.
   */
  readonly maxSocketsPerUpstream?: number;
  /**
   * Sockets opened to a new upstream by `startUpstream` before it can receive traffic (at most
   * maxSocketsPerUpstream). libuv (1.45+) accepts one connection per event-loop turn, and under load a
   * turn takes milliseconds, so a pool opened only when traffic arrives would stall the first requests
   * for up to a second. Default: maxSocketsPerUpstream.
   */
  readonly warmSockets?: number;
  /**
   * Upper bound, real time, on how long a drain (stopUpstream, close) waits for in-flight requests
   * before cutting them off. Default 30 000.
   */
  readonly drainTimeoutMs?: number;
}

const defaults = {
  port: 0,
  host: '127.0.0.1',
  clock: systemClock,
  operator: (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(
      `${JSON.stringify({ error: 'not_found', message: 'no operator API is mounted on this router' })}\n`,
    );
  },
  maxSocketsPerUpstream: 16,
  warmSockets: 16,
  drainTimeoutMs: 30_000,
  wake: (_deploymentId: string) => Promise.resolve(false),
} as const satisfies Required<TrafficRouterOptions>;

const OPERATOR_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** Headers that describe one connection, not the message: never forwarded by a proxy (RFC 9110 §7.6.1). */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
]);

/** Counters of the router itself (not per upstream). */
export interface RouterStats {
  /** Requests handed to an upstream. */
  readonly proxied: number;
  /** 404: Host is not a routed domain (nor the operator's). */
  readonly unknownHost: number;
  /** 503: the domain's deployment has no running upstream. */
  readonly unavailable: number;
  /** 502: the upstream failed before sending response headers. */
  readonly badGateway: number;
  /** Requests given to the operator listener. */
  readonly operator: number;
  /** Proxied requests not finished yet (what `close()` waits for; operator requests are not counted). */
  readonly inFlight: number;
}

/** An upstream's own counters plus what the router knows about it. */
export interface RoutedUpstreamStats extends UpstreamStats {
  /**
   * Requests that picked this deployment at the router and have not finished, including those still
   * waiting for a pooled connection (the upstream's own `inFlight` only sees requests that reached it).
   */
  readonly routedInFlight: number;
}

interface Entry {
  readonly upstream: Upstream;
  /** The router's keep-alive connection pool to this upstream (undici). */
  readonly pool: Pool;
  readonly port: number;
  /** Router requests that picked this upstream and have not closed yet. */
  inFlight: number;
  /** Set once stopUpstream ran: no new request picks this entry. */
  stopping: Promise<void> | undefined;
  onIdle: (() => void) | undefined;
}

/**
 * `Host` header value → the key of the routing table: port stripped, trailing dot dropped, lowercase.
 * `[::1]:8080` → `[::1]`; `App.Example.com:8080` → `app.example.com`; missing → ``.
 */
export function normalizeHost(raw: string | undefined): string {
  if (raw === undefined || raw === '') return '';
  let h = raw;
  if (h.charCodeAt(0) === 91 /* [ */) {
    const end = h.indexOf(']');
    if (end !== -1) h = h.slice(0, end + 1);
  } else {
    const colon = h.indexOf(':');
    if (colon !== -1) h = h.slice(0, colon);
  }
  if (h.charCodeAt(h.length - 1) === 46 /* . */) h = h.slice(0, -1);
  return h.toLowerCase();
}

function hasBody(req: IncomingMessage): boolean {
  const h = req.headers;
  return (
    h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0')
  );
}

/**
 * Request headers for the upstream: the client's raw headers minus hop-by-hop ones (Host kept), and
 * minus those the pool sets itself from the body (`transfer-encoding`) or does not support (`expect`:
 * node's server has already answered `100 Continue` to the client).
 */
function forwardRequestHeaders(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower === 'transfer-encoding' || lower === 'expect') continue;
    out.push(name, raw[i + 1] as string);
  }
  return out;
}

/**
 * Response headers for the client from the pool's raw `[name, value, …]` buffers: hop-by-hop ones
 * dropped, x-deployment-id assured. One flat array, handed to `writeHead` as is.
 */
function forwardResponseHeaders(raw: readonly Buffer[], deploymentId: string): string[] {
  const out: string[] = [];
  let sawId = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString('latin1');
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) continue;
    if (lower === DEPLOYMENT_HEADER) sawId = true;
    out.push(name, (raw[i + 1] as Buffer).toString('latin1'));
  }
  if (!sawId) out.push(DEPLOYMENT_HEADER, deploymentId);
  return out;
}

function replyJson(req: IncomingMessage, res: ServerResponse, status: number, body: object): void {
  // Discard any request body so the connection can be reused.
  req.resume();
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    [DEPLOYMENT_HEADER]: NO_DEPLOYMENT,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function waitFor(setWaiter: (resolve: () => void) => void, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    timer.unref();
    setWaiter(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Opens `count` keep-alive connections to a fresh upstream by sending that many concurrent warm-up
 * requests through its pool; the connections stay open in the pool. Best effort: a failed warm-up only
 * means the pool grows on demand instead.
 */
function warmPool(pool: Pool, count: number): Promise<void> {
  const one = () =>
    pool.request({ method: 'HEAD', path: '/', headers: { [WARMUP_HEADER]: '1' } }).then(
      (r) => r.body.dump().catch(() => undefined),
      () => undefined,
    );
  return Promise.all(Array.from({ length: count }, one)).then(() => undefined);
}

/** Pool options for an upstream: connections never time out while idle (see upstream.ts), no pipelining. */
function poolOptions(connections: number): Pool.Options {
  return {
    connections,
    pipelining: 1,
    // The upstream never closes idle connections and stop() destroys the pool: keep them for good.
    keepAliveTimeout: 2_147_483_647,
    keepAliveMaxTimeout: 2_147_483_647,
    // An upstream may hold a request (tests) or stream for long; the drain timeout bounds a stop.
    headersTimeout: 0,
    bodyTimeout: 0,
  };
}

/**
 * Host-routing reverse proxy over real upstream servers.
 *
 * ```ts
 * const router = new TrafficRouter({ port: 8080, operator: api });
 * await router.startUpstream(deploymentA);
 * router.applyRoutes(new Map([['app.example.com', deploymentA.id]]));
 * await router.listen();
 * // switch: start B, point every domain at it in one swap, then drain A.
 * await router.startUpstream(deploymentB);
 * router.applyRoutes(new Map([['app.example.com', deploymentB.id]]));
 * await router.stopUpstream(deploymentA.id);
 * ```
 */
export class TrafficRouter {
  private readonly server: Server;
  private readonly options: Required<TrafficRouterOptions>;
  /** hostname → deployment id. Replaced wholesale, never mutated. */
  private routes: ReadonlyMap<string, string> = new Map();
  /** Running and draining upstreams by deployment id. */
  private readonly entries = new Map<string, Entry>();
  private readonly starting = new Map<string, Promise<void>>();
  private boundPort: number | undefined;
  private closing: Promise<void> | undefined;
  private inFlight = 0;
  private onIdle: (() => void) | undefined;
  private proxied = 0;
  private unknownHost = 0;
  private unavailable = 0;
  private badGateway = 0;
  private operatorCount = 0;

  constructor(options: TrafficRouterOptions = {}) {
    this.options = {
      port: options.port ?? defaults.port,
      host: options.host ?? defaults.host,
      clock: options.clock ?? defaults.clock,
      operator: options.operator ?? defaults.operator,
      maxSocketsPerUpstream: options.maxSocketsPerUpstream ?? defaults.maxSocketsPerUpstream,
      warmSockets: Math.min(
        options.warmSockets ?? options.maxSocketsPerUpstream ?? defaults.warmSockets,
        options.maxSocketsPerUpstream ?? defaults.maxSocketsPerUpstream,
      ),
      drainTimeoutMs: options.drainTimeoutMs ?? defaults.drainTimeoutMs,
      wake: options.wake ?? defaults.wake,
    };
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
  }

  /** Bound port; undefined before `listen()` resolves. */
  get port(): number | undefined {
    return this.boundPort;
  }

  /** Starts accepting connections; resolves with the bound port. Idempotent. */
  async listen(): Promise<number> {
    if (this.boundPort !== undefined) return this.boundPort;
    if (this.closing) throw new SwitchyardError('internal', 'traffic router was closed');
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) =>
        reject(
          new SwitchyardError(
            'config_invalid',
            `traffic router cannot listen on ${this.options.host}:${this.options.port}: ${e.message}`,
            { cause: e, context: { host: this.options.host, port: this.options.port } },
          ),
        );
      this.server.once('error', onError);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.boundPort = (this.server.address() as AddressInfo).port;
    return this.boundPort;
  }

  /**
   * Replaces the whole hostname→deployment table in one swap. Hostnames are normalised like the Host
   * header (lowercase, no port). Requests already in flight keep the upstream they picked.
   */
  applyRoutes(routes: ReadonlyMap<string, string>): void {
    const next = new Map<string, string>();
    for (const [hostname, deploymentId] of routes) next.set(normalizeHost(hostname), deploymentId);
    this.routes = next;
  }

  /** The table in force now (a read-only view; applyRoutes never mutates it). */
  currentRoutes(): ReadonlyMap<string, string> {
    return this.routes;
  }

  /**
   * Starts the upstream of a deployment and warms its connection pool; resolves once it can take
   * traffic. Idempotent (a running deployment is left as is). When the same deployment is still draining
   * from an earlier stop, waits for that first. `delayMs` adds artificial latency (tests, benchmarks).
   */
  startUpstream(info: DeploymentInfo, options: { delayMs?: number } = {}): Promise<void> {
    if (this.closing) return Promise.reject(new SwitchyardError('internal', 'traffic router was closed'));
    const running = this.entries.get(info.id);
    if (running !== undefined && running.stopping === undefined) return Promise.resolve();
    const pending = this.starting.get(info.id);
    if (pending !== undefined) return pending;
    const start = (async () => {
      if (running?.stopping) await running.stopping;
      const upstream = new Upstream(info, {
        clock: this.options.clock,
        drainTimeoutMs: this.options.drainTimeoutMs,
        ...(options.delayMs === undefined ? {} : { delayMs: options.delayMs }),
      });
      const port = await upstream.start();
      if (this.closing) {
        await upstream.stop();
        throw new SwitchyardError('internal', 'traffic router was closed');
      }
      const pool = new Pool(`http://127.0.0.1:${port}`, poolOptions(this.options.maxSocketsPerUpstream));
      await warmPool(pool, this.options.warmSockets);
      if (this.closing) {
        await pool.destroy();
        await upstream.stop();
        throw new SwitchyardError('internal', 'traffic router was closed');
      }
      this.entries.set(info.id, {
        upstream,
        pool,
        port,
        inFlight: 0,
        stopping: undefined,
        onIdle: undefined,
      });
    })().finally(() => this.starting.delete(info.id));
    this.starting.set(info.id, start);
    return start;
  }

  /**
   * Takes a deployment out of service: new arrivals no longer reach it (a domain still pointing at it
   * answers 503), requests that already picked it run to completion, then its connections and server
   * close. Idempotent; resolves when the upstream is fully closed.
   */
  stopUpstream(deploymentId: string): Promise<void> {
    const pending = this.starting.get(deploymentId);
    if (pending !== undefined) {
      return pending.then(
        () => this.stopUpstream(deploymentId),
        () => undefined,
      );
    }
    const entry = this.entries.get(deploymentId);
    if (entry === undefined) return Promise.resolve();
    entry.stopping ??= this.drain(deploymentId, entry);
    return entry.stopping;
  }

  private async drain(deploymentId: string, entry: Entry): Promise<void> {
    if (entry.inFlight > 0) {
      await waitFor((resolve) => {
        entry.onIdle = resolve;
      }, this.options.drainTimeoutMs);
    }
    await entry.pool.destroy();
    await entry.upstream.stop();
    if (this.entries.get(deploymentId) === entry) this.entries.delete(deploymentId);
  }

  /**
   * Counters of a running (or draining) deployment's upstream, plus `routedInFlight`; undefined when
   * it has none. For the idle rule, a deployment is idle only when `routedInFlight` is 0 too.
   */
  upstreamStats(deploymentId: string): RoutedUpstreamStats | undefined {
    const entry = this.entries.get(deploymentId);
    if (entry === undefined) return undefined;
    return { ...entry.upstream.stats(), routedInFlight: entry.inFlight };
  }

  /** Port of a running (or draining) deployment's upstream on 127.0.0.1; undefined when it has none. */
  upstreamPort(deploymentId: string): number | undefined {
    return this.entries.get(deploymentId)?.port;
  }

  /** The Upstream object of a running (or draining) deployment (tests use `hold()` and its events). */
  upstream(deploymentId: string): Upstream | undefined {
    return this.entries.get(deploymentId)?.upstream;
  }

  /** Deployment ids whose upstream is in service (started and not being stopped). */
  runningUpstreams(): string[] {
    const ids: string[] = [];
    for (const [id, entry] of this.entries) if (entry.stopping === undefined) ids.push(id);
    return ids;
  }

  /**
   * Asks this router who serves `hostname` (verification of a switch, the port's `probe`): a GET through
   * the router's own port with that Host. Never throws; an unreachable router is reported in `error`.
   */
  async probe(hostname: string, signal?: AbortSignal): Promise<ProbeResult> {
    const port = this.boundPort;
    if (port === undefined) return { hostname, error: 'traffic router is not listening' };
    // A wildcard listen address is reached over loopback; a specific one as bound.
    const bound = (this.server.address() as AddressInfo | null)?.address;
    const host = bound === undefined || bound === '0.0.0.0' || bound === '::' ? '127.0.0.1' : bound;
    return probeResult(port, hostname, { host, ...(signal === undefined ? {} : { signal }) });
  }

  /** Router-level counters. */
  stats(): RouterStats {
    return {
      proxied: this.proxied,
      unknownHost: this.unknownHost,
      unavailable: this.unavailable,
      badGateway: this.badGateway,
      operator: this.operatorCount,
      inFlight: this.inFlight,
    };
  }

  /**
   * Stops accepting connections, lets in-flight proxied requests finish (bounded by drainTimeoutMs),
   * stops every upstream and closes every socket (operator requests still open are cut). Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const listening = this.boundPort !== undefined;
    const closed = listening
      ? new Promise<void>((resolve) => this.server.close(() => resolve()))
      : Promise.resolve();
    await Promise.allSettled([...this.starting.values()]);
    if (this.inFlight > 0) {
      await waitFor((resolve) => {
        this.onIdle = resolve;
      }, this.options.drainTimeoutMs);
    }
    await Promise.all([...this.entries.keys()].map((id) => this.stopUpstream(id)));
    if (listening) this.server.closeAllConnections();
    await closed;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.url?.startsWith(OPERATOR_PREFIX)) {
      this.toOperator(req, res);
      return;
    }
    const host = normalizeHost(req.headers.host);
    const deploymentId = this.routes.get(host);
    if (deploymentId === undefined) {
      if (OPERATOR_HOSTS.has(host)) {
        this.toOperator(req, res);
        return;
      }
      this.unknownHost++;
      replyJson(req, res, 404, {
        error: 'unknown_host',
        message: `no domain "${host}" is routed by this router`,
        host,
      });
      return;
    }
    const entry = this.entries.get(deploymentId);
    // Switchyard's own probes ask who serves a domain; they never wake a sleeping deployment.
    if (
      (entry === undefined || entry.stopping !== undefined) &&
      !this.closing &&
      req.headers[PROBE_HEADER] === undefined
    ) {
      this.wakeThenProxy(req, res, host, deploymentId, this.options.wake);
      return;
    }
    if (entry === undefined || entry.stopping !== undefined) {
      this.replyUnavailable(req, res, host, deploymentId);
      return;
    }
    this.proxy(req, res, entry, deploymentId);
  }

  /** 503: the domain points to a deployment with no running upstream (and it did not wake). */
  private replyUnavailable(
    req: IncomingMessage,
    res: ServerResponse,
    host: string,
    deploymentId: string,
  ): void {
    this.unavailable++;
    replyJson(req, res, 503, {
      error: 'deployment_unavailable',
      message: `domain "${host}" points to deployment ${deploymentId}, which has no running upstream`,
      host,
      deploymentId,
    });
  }

  /** Holds a request while its deployment is woken, then proxies it (or answers 503). */
  private wakeThenProxy(
    req: IncomingMessage,
    res: ServerResponse,
    host: string,
    deploymentId: string,
    wake: (deploymentId: string) => Promise<boolean>,
  ): void {
    let woken: Promise<boolean>;
    try {
      woken = wake(deploymentId);
    } catch {
      woken = Promise.resolve(false);
    }
    void woken
      .catch(() => false)
      .then((ok) => {
        if (res.destroyed || res.writableEnded) return;
        const entry = this.entries.get(deploymentId);
        if (ok && entry !== undefined && entry.stopping === undefined && !this.closing) {
          this.proxy(req, res, entry, deploymentId);
          return;
        }
        this.replyUnavailable(req, res, host, deploymentId);
      });
  }

  private toOperator(req: IncomingMessage, res: ServerResponse): void {
    // Not tracked for close(): an operator stream (e.g. server-sent events) may never end by itself;
    // close() cuts operator connections once proxied traffic has drained.
    this.operatorCount++;
    res.setHeader(DEPLOYMENT_HEADER, NO_DEPLOYMENT);
    const fail = () => {
      if (!res.headersSent) replyJson(req, res, 500, { error: 'internal', message: 'operator API failed' });
      else res.destroy();
    };
    try {
      const out: unknown = this.options.operator(req, res);
      if (out instanceof Promise) out.catch(fail);
    } catch {
      fail();
    }
  }

  private proxy(req: IncomingMessage, res: ServerResponse, entry: Entry, deploymentId: string): void {
    this.proxied++;
    this.inFlight++;
    entry.inFlight++;
    new ProxyExchange(this.hooks, req, res, entry, deploymentId).send(true);
  }

  /** What a ProxyExchange reports back (created once, shared by every exchange). */
  private readonly hooks: ExchangeHooks = {
    settled: (entry) => {
      if (--entry.inFlight === 0 && entry.onIdle !== undefined) entry.onIdle();
      if (--this.inFlight === 0 && this.onIdle !== undefined) this.onIdle();
    },
    badGateway: () => {
      this.badGateway++;
    },
  };
}

/** The router's side of a proxied request. */
interface ExchangeHooks {
  /** The request has closed (finished or cut off): release its drain counters. */
  settled(entry: Entry): void;
  /** The request was answered 502. */
  badGateway(): void;
}

/**
 * One proxied request: the undici dispatch handler that streams the upstream's answer into the client's
 * response (backpressure both ways), plus its bookkeeping. One object per request, methods on the
 * prototype: no per-request closures beyond the two listeners on the client side.
 */
class ProxyExchange implements Dispatcher.DispatchHandler {
  private abortUpstream: ((err?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  private mayRetry = false;
  private done = false;

  constructor(
    private readonly hooks: ExchangeHooks,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly entry: Entry,
    private readonly deploymentId: string,
  ) {
    res.once('close', () => this.closed());
    req.once('error', () => this.abortUpstream?.());
  }

  send(mayRetry: boolean): void {
    const req = this.req;
    const bodyless = !hasBody(req);
    this.mayRetry = mayRetry && bodyless;
    this.entry.pool.dispatch(
      {
        path: req.url ?? '/',
        method: req.method ?? 'GET',
        headers: forwardRequestHeaders(req.rawHeaders),
        body: bodyless ? null : req,
      },
      this,
    );
  }

  onConnect(abort: (err?: Error) => void): void {
    if (this.done) abort();
    else this.abortUpstream = abort;
  }

  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx interim answers are the hop's business (node's server sends its own 100 Continue).
    if (statusCode < 200) return true;
    this.mayRetry = false;
    this.resumeUpstream = resume;
    const res = this.res;
    if (res.destroyed) return false;
    res.writeHead(
      statusCode,
      statusText,
      // node accepts raw [name, value, …] arrays here; the type only lists the object form.
      forwardResponseHeaders(headers, this.deploymentId) as unknown as OutgoingHttpHeaders,
    );
    return true;
  }

  onData(chunk: Buffer): boolean {
    const res = this.res;
    if (res.destroyed) return false;
    if (res.write(chunk)) return true;
    res.once('drain', this.resumeUpstream ?? noop);
    return false;
  }

  onComplete(): void {
    this.res.end();
  }

  onError(err: Error): void {
    const res = this.res;
    if (res.destroyed || res.writableEnded) return;
    if (res.headersSent) {
      // Cut the client connection: a truncated body must never pass for a whole one.
      res.destroy();
      return;
    }
    // A pooled connection the upstream closed just as it was reused: retry a bodyless request once.
    if (this.mayRetry && isConnectionReset(err)) {
      this.abortUpstream = undefined;
      this.send(false);
      return;
    }
    this.hooks.badGateway();
    replyJson(this.req, res, 502, {
      error: 'bad_gateway',
      message: `deployment ${this.deploymentId} failed before answering: ${err.message}`,
      deploymentId: this.deploymentId,
    });
  }

  private closed(): void {
    this.done = true;
    // The client went away before the answer was complete: do not leave the upstream request running.
    if (!this.res.writableFinished) this.abortUpstream?.();
    this.hooks.settled(this.entry);
  }
}

function noop(): void {}

/** A socket-level failure of a reused pooled connection (reset or closed before any answer). */
function isConnectionReset(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE';
}

/**
 * `probe` as the DeployPlatform port's ProbeResult (the router itself, and `LocalPlatformClient` in a
 * worker process): never throws; a router that cannot be reached is reported in `error`.
 */
export async function probeResult(
  routerPort: number,
  hostname: string,
  options: { timeoutMs?: number; signal?: AbortSignal; host?: string } = {},
): Promise<ProbeResult> {
  try {
    const r = await probe(routerPort, hostname, options);
    return {
      hostname,
      status: r.status,
      ...(r.deploymentId === undefined ? {} : { deploymentId: r.deploymentId }),
    };
  } catch (e) {
    return { hostname, error: e instanceof Error ? e.message : String(e) };
  }
}

/** What answered a probe through the router. */
export interface RouterProbe {
  readonly status: number;
  /** Value of `x-deployment-id`; undefined when the router answered `none` or sent no header. */
  readonly deploymentId: string | undefined;
}

/**
 * GETs `/` through the router at `127.0.0.1:<routerPort>` (or `options.host`) with `Host: <hostname>`
 * and reports who answered (verification of a switch). Throws a retryable SwitchyardError
 * (`platform_unavailable`) naming the request when the router cannot be reached or does not answer
 * within `timeoutMs` (default 5 000).
 */
export function probe(
  routerPort: number,
  hostname: string,
  options: { timeoutMs?: number; signal?: AbortSignal; path?: string; host?: string } = {},
): Promise<RouterProbe> {
  const address = options.host ?? '127.0.0.1';
  const path = options.path ?? '/';
  const timeoutMs = options.timeoutMs ?? 5_000;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]);
  const authority = address.includes(':') ? `[${address}]:${routerPort}` : `${address}:${routerPort}`;
  const target = `GET http://${authority}${path} (Host: ${hostname})`;
  return new Promise<RouterProbe>((resolve, reject) => {
    const req = httpRequest(
      {
        host: address,
        port: routerPort,
        path,
        method: 'GET',
        headers: { host: hostname, accept: 'application/json', [PROBE_HEADER]: '1' },
        agent: false,
        signal,
      },
      (res) => {
        const raw = res.headers[DEPLOYMENT_HEADER];
        const id = Array.isArray(raw) ? raw[0] : raw;
        res.resume();
        res.on('error', () => undefined);
        resolve({
          status: res.statusCode ?? 0,
          deploymentId: id === undefined || id === NO_DEPLOYMENT ? undefined : id,
        });
      },
    );
    req.on('error', (e) => {
      const timedOut = timeout.aborted;
      reject(
        new SwitchyardError(
          'platform_unavailable',
          `probe ${target} failed: ${timedOut ? `no answer within ${timeoutMs} ms` : e.message}`,
          { retry: true, cause: e, context: { routerPort, hostname, path } },
        ),
      );
    });
    req.end();
  });
}
