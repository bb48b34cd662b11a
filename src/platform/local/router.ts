/**
 * The embedded local platform's traffic plane: a real reverse proxy (a `node:http` server in front, one
 * undici connection pool per upstream behind) that routes by `Host` to one Upstream (upstream.ts) per
 * running deployment. It owns the hostname→deployment table, the set
 * of running upstreams and their keep-alive connection pools (warm or lean), the atomic switch and the
 * drain.
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
  STATUS_CODES,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type Dispatcher, Pool } from 'undici';
import { type Clock, systemClock } from '../../clock.js';
import { SwitchyardError } from '../../errors.js';
import { connectionsCheckingInterval } from '../../http.js';
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
   * It must not wait for `stopUpstream` of the deployment it wakes: that drain waits for the requests
   * held for this wake-up (see WakeRoom), which are answered only once it resolves.
   */
  readonly wake?: (deploymentId: string) => Promise<boolean>;
  /**
   * Keep-alive sockets per upstream; further concurrent requests wait in the pool's queue. Every
   * upstream shares the router's event loop, so more sockets add no throughput, while each pooled socket
   * holds two file descriptors (both ends live in this process). Default 16.
   */
  readonly maxSocketsPerUpstream?: number;
  /**
   * Sockets a warm pool (see UpstreamPool) opens to its upstream before it can receive traffic, on
   * `startUpstream` or `resizeUpstream` (at most maxSocketsPerUpstream). libuv (1.45+) accepts one connection per event-loop turn, and under load a
   * turn takes milliseconds, so a pool opened only when traffic arrives would stall the first requests
   * for up to a second. Default: maxSocketsPerUpstream.
   */
  readonly warmSockets?: number;
  /**
   * How long, real time, a connection of a lean pool (see UpstreamPool) stays open once idle. A lean
   * pool opens its connections on demand and closes them when unused, so a deployment reached only by
   * its own and its branch's domain holds no socket at rest. Default 5 000.
   */
  readonly leanIdleTimeoutMs?: number;
  /**
   * Upper bound, real time, on how long a drain (stopUpstream, close) waits for in-flight requests
   * before cutting them off. Default 30 000.
   */
  readonly drainTimeoutMs?: number;
  /**
   * How long, on stallClock, a proxied response may wait on a client that takes none of it (its socket is
   * full: the client stopped reading) before the router cuts that client off and frees the upstream
   * connection it held. A client that keeps taking data is not cut; its progress is seen as the kernel
   * takes more of the buffered response, so one far slower than the socket buffers per stallTimeoutMs
   * is (docs/router.md, Limits). 0 disables it. Default 30 000.
   */
  readonly stallTimeoutMs?: number;
  /**
   * The clock the stall timer runs on. Default: the system clock (real time). Not `clock`: tests move
   * that one by hours for the idle rule, which must not cut a download in progress; a test passes a
   * ManualClock here to end a stall window when it chooses, whatever the load on the machine.
   */
  readonly stallClock?: Clock;
  /**
   * How long, real time, a client may take to send a request's headers before the router answers 408
   * and closes the connection (node's default, 60 s checked every 30 s, let a stranger hold a connection
   * for a minute and a half without sending one request). A body is still bounded by node's
   * `requestTimeout` only (docs/router.md, Limits). Default 10 000.
   */
  readonly headersTimeoutMs?: number;
}

/** node's default `requestTimeout`, kept: a visitor's upload may take that long (docs/router.md, Limits). */
const ROUTER_REQUEST_TIMEOUT_MS = 300_000;

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
  leanIdleTimeoutMs: 5_000,
  drainTimeoutMs: 30_000,
  stallTimeoutMs: 30_000,
  stallClock: systemClock,
  headersTimeoutMs: 10_000,
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

/**
 * Methods whose request may be sent twice with the effect of once (RFC 9110 §9.2.2): only these are
 * retried after a pooled connection reset before any answer (the upstream may have acted on the first).
 */
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Methods the router forwards; the `Allow` of its own answer to `OPTIONS *` and to `CONNECT`. */
const ALLOW = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';

/**
 * Request headers of this prefix are Switchyard's own (WARMUP_HEADER, PROBE_HEADER): a client's are never
 * forwarded as sent (see forwardRequestHeaders).
 */
const INTERNAL_PREFIX = 'x-switchyard-';

/** An absolute-form request target (RFC 9112 §3.2.2): scheme, authority, then path and query. */
const ABSOLUTE_FORM = /^https?:\/\/([^/?#]*)([^#]*)/i;

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
  /** Responses cut because their client took none of them for stallTimeoutMs (it stopped reading). */
  readonly stalled: number;
  /** Requests given to the operator listener. */
  readonly operator: number;
  /** Proxied requests not finished yet (what `close()` waits for; operator requests are not counted). */
  readonly inFlight: number;
}

/**
 * How the router keeps connections to an upstream. `warm`: `warmSockets` connections opened before it
 * takes traffic and kept for good, so the first requests after a switch to it never wait for
 * connections to be accepted (a deployment serving, or about to serve, live or environment domains).
 * `lean`: none opened in advance; connections are opened on demand and closed once idle for
 * `leanIdleTimeoutMs` (a deployment reached only by its own domain and perhaps its branch's: every
 * preview branch keeps one running for hours, and 16 sockets each ran the process out of descriptors).
 */
export type UpstreamPool = 'warm' | 'lean';

/** An upstream's own counters plus what the router knows about it. */
export interface RoutedUpstreamStats extends UpstreamStats {
  /**
   * Requests that picked this deployment at the router and have not finished, including those still
   * waiting for a pooled connection (the upstream's own `inFlight` only sees requests that reached it).
   */
  readonly routedInFlight: number;
  /** How the router keeps connections to it now (see UpstreamPool). */
  readonly pool: UpstreamPool;
  /**
   * Connections the router holds open to it now: its pool's, and those of a pool it was resized away
   * from that still finishes its requests (each connection is two descriptors of this process).
   */
  readonly poolSockets: number;
}

interface Entry {
  readonly upstream: Upstream;
  /** The router's keep-alive connection pool to this upstream (undici); replaced by a resize. */
  pool: Pool;
  /** What `pool` is. */
  size: UpstreamPool;
  /** What the last resizeUpstream asked for (the resize under way works towards it). */
  wanted: UpstreamPool;
  /** The resize under way, if any. */
  resizing: Promise<void> | undefined;
  /** Pools replaced by a resize, closing once their requests are done. */
  readonly retired: Set<Pool>;
  readonly port: number;
  /** Router requests that picked this upstream and have not closed yet. */
  inFlight: number;
  /** Set once stopUpstream ran: no new request picks this entry. */
  stopping: Promise<void> | undefined;
  onIdle: (() => void) | undefined;
  /**
   * Requests held for this deployment's wake-up when its drain began (see WakeRoom): the drain waits
   * for them too, and they are proxied to this entry although it is stopping.
   */
  held: WakeRoom | undefined;
}

/**
 * Requests held while a deployment wakes (wakeThenProxy), counted until each is proxied or answered.
 * They picked that deployment when they arrived, so a stop that comes before they are proxied (the
 * domain moved away meanwhile, and the old deployment is drained) must not answer them 503: the drain
 * of the entry their wake-up started claims the room (`entry`) and waits for them as for its in-flight
 * requests. Requests held after that drain began go to a new room (they wait for the next start).
 */
interface WakeRoom {
  count: number;
  entry: Entry | undefined;
  /** The claiming entry's drain is over (its pool destroyed): a request still held gets 503. */
  closed: boolean;
}

/** The entry has nothing left to wait for: no request in flight, none held for its wake-up. */
function entryIdle(entry: Entry): boolean {
  return entry.inFlight === 0 && (entry.held === undefined || entry.held.count === 0);
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
 * Adds the header names a `Connection` header value nominates as hop-by-hop (RFC 9110 §7.6.1) to
 * `into`, leaving out those dropped anyway; returns `into` (undefined while none was found). The usual
 * `keep-alive` / `close` costs no allocation.
 */
function connectionOptions(value: string, into: Set<string> | undefined): Set<string> | undefined {
  const v = value.toLowerCase();
  if (v === 'keep-alive' || v === 'close') return into;
  let out = into;
  for (const token of v.split(',')) {
    const name = token.trim();
    if (name === '' || name === 'close' || HOP_BY_HOP.has(name)) continue;
    out ??= new Set();
    out.add(name);
  }
  return out;
}

/** `[name, value, …]` without the pairs whose lowercase name is in `drop` (rare path). */
function withoutNames(flat: string[], drop: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i] as string;
    if (!drop.has(name.toLowerCase())) out.push(name, flat[i + 1] as string);
  }
  return out;
}

/**
 * Request headers for the upstream: the client's raw headers minus hop-by-hop ones and those its
 * `Connection` header names (Host kept), and minus those the pool sets itself from the body
 * (`transfer-encoding`) or does not support (`expect`: node's server has already answered
 * `100 Continue` to the client). Switchyard's own `x-switchyard-*` headers are never passed on as the
 * client sent them: the upstream trusts them (a warm-up gets an empty 204 and is not traffic), so only
 * the router sets them. The one a client may carry is the probe mark, which Switchyard's verification
 * sends from other processes too (LocalPlatformClient): the router forwards it as its own
 * `x-switchyard-probe: 1` (it makes that one request not traffic, nothing more).
 */
function forwardRequestHeaders(raw: readonly string[]): string[] {
  const out: string[] = [];
  let nominated: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (lower === 'connection') nominated = connectionOptions(raw[i + 1] as string, nominated);
    if (HOP_BY_HOP.has(lower) || lower === 'transfer-encoding' || lower === 'expect') continue;
    if (lower.charCodeAt(0) === 120 /* x */ && lower.startsWith(INTERNAL_PREFIX)) {
      if (lower === PROBE_HEADER) out.push(PROBE_HEADER, '1');
      continue;
    }
    out.push(name, raw[i + 1] as string);
  }
  return nominated === undefined ? out : withoutNames(out, nominated);
}

/**
 * Response headers for the client from the pool's raw `[name, value, …]` buffers: hop-by-hop ones and
 * those the upstream's `Connection` header names dropped, and `transfer-encoding` too (with the
 * `content-length` it overrides, RFC 9112 §6.3): the router's server frames the body for its own client
 * (chunked for HTTP/1.1, close-delimited for HTTP/1.0, which must never get chunked). x-deployment-id is
 * always the router's own, naming the deployment it routed to (whatever the upstream sent). One flat
 * array, handed to `writeHead` as is.
 */
function forwardResponseHeaders(raw: readonly Buffer[], deploymentId: string): string[] {
  const out: string[] = [];
  let chunked = false;
  let nominated: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString('latin1');
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection')
        nominated = connectionOptions((raw[i + 1] as Buffer).toString('latin1'), nominated);
      continue;
    }
    if (lower === 'transfer-encoding') {
      chunked = true;
      continue;
    }
    if (lower === DEPLOYMENT_HEADER) continue;
    out.push(name, (raw[i + 1] as Buffer).toString('latin1'));
  }
  let headers = out;
  if (chunked) {
    nominated ??= new Set();
    nominated.add('content-length');
  }
  if (nominated !== undefined) headers = withoutNames(out, nominated);
  headers.push(DEPLOYMENT_HEADER, deploymentId);
  return headers;
}

/**
 * The router's own answer to a request node's parser rejected (`clientError`): 431 for headers too
 * large, 408 for a request not received in time, 400 otherwise; `x-deployment-id: none` like every
 * router answer, and the connection closed (what follows on it cannot be trusted).
 */
export function clientErrorResponse(code: string | undefined): string {
  const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const error = status === 431 ? 'headers_too_large' : status === 408 ? 'request_timeout' : 'bad_request';
  return rawJsonResponse(status, {
    error,
    message: `the router could not read the request (${code ?? 'unknown'})`,
  });
}

/**
 * The router's answer to a `CONNECT` (RFC 9110 §9.3.6): it routes requests to deployments and opens no
 * tunnels, so 405 with the methods it does forward; the connection is then closed.
 */
export function connectResponse(): string {
  return rawJsonResponse(
    405,
    { error: 'method_not_allowed', message: 'the router does not tunnel: CONNECT is not supported' },
    `allow: ${ALLOW}\r\n`,
  );
}

/** A whole HTTP/1.1 answer written straight on a socket, `x-deployment-id: none`, then `connection: close`. */
function rawJsonResponse(status: number, body: object, extraHeaders = ''): string {
  const text = `${JSON.stringify(body)}\n`;
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
    `${DEPLOYMENT_HEADER}: ${NO_DEPLOYMENT}\r\n` +
    extraHeaders +
    'content-type: application/json\r\n' +
    `content-length: ${Buffer.byteLength(text)}\r\n` +
    'connection: close\r\n\r\n' +
    text
  );
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

/**
 * The client's connection is gone (closed or being closed): nobody is left to answer. A response queued
 * behind an earlier pipelined one on that connection is never closed by node (it has no socket), so this
 * is how such a request is known to be over.
 */
function clientGone(req: IncomingMessage): boolean {
  const socket = req.socket as Socket | null;
  return socket === null || socket.destroyed;
}

/**
 * Turns an absolute-form request (`GET http://b.example/x?y HTTP/1.1`, RFC 9112 §3.2.2) into the
 * origin-form one it stands for: the target's authority replaces any `Host` header (in `headers` and
 * in `rawHeaders`, which the upstream leg forwards), and `url` keeps only path and query. Returns an
 * error message, for the 400, when the target is neither origin-form nor absolute-form http(s).
 */
function toOriginForm(req: IncomingMessage, url: string): string | undefined {
  const match = ABSOLUTE_FORM.exec(url);
  const authority = match?.[1];
  if (match === null || authority === undefined) {
    return `the request target "${url.slice(0, 200)}" is neither a path nor an http(s) URL`;
  }
  if (authority === '' || authority.includes('@')) {
    return `the request target "${url.slice(0, 200)}" has no valid authority`;
  }
  const rest = match[2] ?? '';
  req.url = rest === '' ? '/' : rest.charCodeAt(0) === 47 /* / */ ? rest : `/${rest}`;
  const raw = req.rawHeaders;
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.toLowerCase() !== 'host') headers.push(name, raw[i + 1] as string);
  }
  headers.push('Host', authority);
  req.rawHeaders = headers;
  req.headers.host = authority;
  return undefined;
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
 * requests through its pool; the connections stay open in the pool (`reset: false`: undici otherwise
 * closes a connection after a HEAD). Best effort: a failed warm-up only means the pool grows on demand
 * instead.
 */
function warmPool(pool: Pool, count: number): Promise<void> {
  const one = () =>
    pool.request({ method: 'HEAD', path: '/', headers: { [WARMUP_HEADER]: '1' }, reset: false }).then(
      (r) => r.body.dump().catch(() => undefined),
      () => undefined,
    );
  return Promise.all(Array.from({ length: count }, one)).then(() => undefined);
}

/**
 * Pool options for an upstream, no pipelining. A warm pool's connections never time out while idle
 * (see upstream.ts); a lean pool closes its own after `leanIdleMs` (the router closes them, not the
 * upstream, so no request is ever sent on a connection the other side is closing).
 */
function poolOptions(connections: number, size: UpstreamPool, leanIdleMs: number): Pool.Options {
  // The upstream never closes idle connections and stop() destroys the pool: a warm pool keeps them.
  const keepAlive = size === 'warm' ? 2_147_483_647 : Math.max(1, leanIdleMs);
  return {
    connections,
    pipelining: 1,
    keepAliveTimeout: keepAlive,
    keepAliveMaxTimeout: keepAlive,
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
  /** Requests held for a deployment's wake-up, by deployment id (see WakeRoom). */
  private readonly wakeRooms = new Map<string, WakeRoom>();
  private boundPort: number | undefined;
  private closing: Promise<void> | undefined;
  private inFlight = 0;
  private onIdle: (() => void) | undefined;
  private proxied = 0;
  private unknownHost = 0;
  private unavailable = 0;
  private badGateway = 0;
  private stalled = 0;
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
      leanIdleTimeoutMs: options.leanIdleTimeoutMs ?? defaults.leanIdleTimeoutMs,
      drainTimeoutMs: options.drainTimeoutMs ?? defaults.drainTimeoutMs,
      stallTimeoutMs: options.stallTimeoutMs ?? defaults.stallTimeoutMs,
      stallClock: options.stallClock ?? defaults.stallClock,
      headersTimeoutMs: options.headersTimeoutMs ?? defaults.headersTimeoutMs,
      wake: options.wake ?? defaults.wake,
    };
    this.hooks = {
      stallTimeoutMs: this.options.stallTimeoutMs,
      stallClock: this.options.stallClock,
      settled: (entry) => {
        if (--entry.inFlight === 0 && entryIdle(entry) && entry.onIdle !== undefined) entry.onIdle();
        if (--this.inFlight === 0 && this.onIdle !== undefined) this.onIdle();
      },
      badGateway: () => {
        this.badGateway++;
      },
      stalled: () => {
        this.stalled++;
      },
    };
    // A missing Host is answered by handle() (node's own 400 would carry no x-deployment-id).
    this.server = createServer(
      {
        requireHostHeader: false,
        // node refuses a headers timeout longer than the request's
        headersTimeout: Math.min(this.options.headersTimeoutMs, ROUTER_REQUEST_TIMEOUT_MS),
        requestTimeout: ROUTER_REQUEST_TIMEOUT_MS,
        connectionsCheckingInterval: connectionsCheckingInterval(
          this.options.headersTimeoutMs,
          ROUTER_REQUEST_TIMEOUT_MS,
        ),
      },
      (req, res) => this.handle(req, res),
    );
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      // As node's default: no answer on a socket already answering a request (it would corrupt it).
      const current = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
      if (socket.writable && current?.headersSent !== true) socket.end(clientErrorResponse(err.code));
      else socket.destroy();
    });
    // An `Expect` other than 100-continue (node's own 417 would carry no x-deployment-id).
    this.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
      res.shouldKeepAlive = false; // the client may or may not send the body it announced
      replyJson(req, res, 417, {
        error: 'expectation_failed',
        message: `the router cannot meet "Expect: ${String(req.headers.expect).slice(0, 200)}"`,
      });
    });
    // Without a listener node closes a CONNECT's connection with no answer at all.
    this.server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      socket.on('error', () => undefined);
      // Not on a connection still answering an earlier pipelined request (it would corrupt that answer).
      if ((socket as Duplex & { _httpMessage?: unknown })._httpMessage) socket.destroy();
      else socket.end(connectResponse());
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
   * Starts the upstream of a deployment and opens its connection pool (`pool`, default `warm`: its
   * warmSockets connections are open before it resolves; see UpstreamPool); resolves once it can take
   * traffic. Idempotent (a running deployment is left as is: resizeUpstream changes its pool). When the
   * same deployment is still draining from an earlier stop, waits for that first. `delayMs` adds
   * artificial latency (tests, benchmarks).
   */
  startUpstream(
    info: DeploymentInfo,
    options: { delayMs?: number; pool?: UpstreamPool } = {},
  ): Promise<void> {
    if (this.closing) return Promise.reject(new SwitchyardError('internal', 'traffic router was closed'));
    const running = this.entries.get(info.id);
    if (running !== undefined && running.stopping === undefined) return Promise.resolve();
    const pending = this.starting.get(info.id);
    if (pending !== undefined) return pending;
    const size = options.pool ?? 'warm';
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
      const pool = await this.openPool(port, size);
      if (this.closing) {
        await pool.destroy();
        await upstream.stop();
        throw new SwitchyardError('internal', 'traffic router was closed');
      }
      this.entries.set(info.id, {
        upstream,
        pool,
        size,
        wanted: size,
        resizing: undefined,
        retired: new Set(),
        port,
        inFlight: 0,
        stopping: undefined,
        onIdle: undefined,
        held: undefined,
      });
    })().finally(() => this.starting.delete(info.id));
    this.starting.set(info.id, start);
    return start;
  }

  /** A connection pool to the upstream on `port`; a warm one has its warmSockets open when it resolves. */
  private async openPool(port: number, size: UpstreamPool): Promise<Pool> {
    const pool = new Pool(
      `http://127.0.0.1:${port}`,
      poolOptions(this.options.maxSocketsPerUpstream, size, this.options.leanIdleTimeoutMs),
    );
    if (size === 'warm') await warmPool(pool, this.options.warmSockets);
    return pool;
  }

  /**
   * Changes how the router keeps connections to a running deployment (see UpstreamPool): the new pool
   * takes every request from the moment it is in place, and the old one closes once the requests it
   * carries are done, so nothing is dropped. Resolves once the pool asked for is in place: a `warm`
   * one with its connections open, which is why a switch to a deployment asks for it before moving
   * domains to it. Resolves at once for a deployment with no running upstream, or one being stopped.
   * Calls made while a resize runs end in the size asked for last.
   */
  resizeUpstream(deploymentId: string, pool: UpstreamPool): Promise<void> {
    const entry = this.entries.get(deploymentId);
    if (entry === undefined || entry.stopping !== undefined || this.closing) return Promise.resolve();
    entry.wanted = pool;
    if (entry.resizing === undefined && entry.size !== pool) {
      entry.resizing = this.resize(entry).finally(() => {
        entry.resizing = undefined;
      });
    }
    return entry.resizing ?? Promise.resolve();
  }

  private async resize(entry: Entry): Promise<void> {
    while (entry.size !== entry.wanted && entry.stopping === undefined && !this.closing) {
      const size = entry.wanted;
      const pool = await this.openPool(entry.port, size);
      // Asked otherwise meanwhile (the loop opens that one), or being stopped: this pool serves nobody.
      if (size !== entry.wanted || entry.stopping !== undefined || this.closing) {
        await pool.destroy();
        continue;
      }
      const old = entry.pool;
      entry.pool = pool;
      entry.size = size;
      // Requests already dispatched to it finish there; a retry goes to the new pool (send reads it).
      entry.retired.add(old);
      void old
        .close()
        .catch(() => undefined)
        .finally(() => entry.retired.delete(old));
    }
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
    const room = this.wakeRooms.get(deploymentId);
    if (room !== undefined) {
      this.wakeRooms.delete(deploymentId);
      room.entry = entry;
      entry.held = room;
    }
    if (!entryIdle(entry)) {
      await waitFor((resolve) => {
        entry.onIdle = resolve;
      }, this.options.drainTimeoutMs);
    }
    entry.onIdle = undefined;
    // A wake-up that resolves after the drain gave up (drainTimeoutMs) finds its entry gone.
    if (entry.held !== undefined) entry.held.closed = true;
    // A resize under way sees the stop and destroys the pool it opened.
    await entry.resizing;
    await Promise.all([entry.pool, ...entry.retired].map((pool) => pool.destroy()));
    await entry.upstream.stop();
    if (this.entries.get(deploymentId) === entry) this.entries.delete(deploymentId);
  }

  /**
   * Counters of a running (or draining) deployment's upstream, plus `routedInFlight` and its pool;
   * undefined when it has none. For the idle rule, a deployment is idle only when `routedInFlight` is
   * 0 too.
   */
  upstreamStats(deploymentId: string): RoutedUpstreamStats | undefined {
    const entry = this.entries.get(deploymentId);
    if (entry === undefined) return undefined;
    let poolSockets = entry.pool.stats.connected;
    for (const pool of entry.retired) poolSockets += pool.stats.connected;
    return { ...entry.upstream.stats(), routedInFlight: entry.inFlight, pool: entry.size, poolSockets };
  }

  /** Port of a running (or draining) deployment's upstream on 127.0.0.1; undefined when it has none. */
  upstreamPort(deploymentId: string): number | undefined {
    return this.entries.get(deploymentId)?.port;
  }

  /** The Upstream object of a running (or draining) deployment (tests use `hold()` and its events). */
  upstream(deploymentId: string): Upstream | undefined {
    return this.entries.get(deploymentId)?.upstream;
  }

  /** Deployment ids with requests held while they wake (see WakeRoom). */
  wakingDeployments(): string[] {
    return [...this.wakeRooms.keys()];
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
      stalled: this.stalled,
      operator: this.operatorCount,
      inFlight: this.inFlight,
    };
  }

  /**
   * Stops accepting connections, lets in-flight proxied requests finish, stops every upstream and
   * closes every socket (operator requests still open are cut). The whole wait for in-flight requests
   * is bounded by one drainTimeoutMs, after which they are cut. Idempotent.
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
    const deadline = performance.now() + this.options.drainTimeoutMs;
    await Promise.allSettled([...this.starting.values()]);
    if (this.inFlight > 0) {
      await waitFor(
        (resolve) => {
          this.onIdle = resolve;
        },
        Math.max(0, deadline - performance.now()),
      );
    }
    // One bound for the whole close: whatever is still in flight now is cut, including requests an
    // earlier stopUpstream is still draining (its wait ends here instead of at its own timeout).
    const stops = [...this.entries.keys()].map((id) => this.stopUpstream(id));
    for (const entry of this.entries.values()) entry.onIdle?.();
    await Promise.all(stops);
    if (listening) this.server.closeAllConnections();
    await closed;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is answered 400 (absolute-form included).
    if (req.headers.host === undefined && req.httpVersionMinor === 1 && req.httpVersionMajor === 1) {
      replyJson(req, res, 400, {
        error: 'bad_request',
        message: 'an HTTP/1.1 request must carry a Host header',
      });
      return;
    }
    const url = req.url ?? '/';
    if (url.charCodeAt(0) !== 47 /* / */) {
      if (url === '*') {
        this.asteriskForm(req, res);
        return;
      }
      // Absolute-form: routed by the target's authority, forwarded in origin-form (RFC 9112 §3.2.2).
      const invalid = toOriginForm(req, url);
      if (invalid !== undefined) {
        replyJson(req, res, 400, { error: 'bad_request', message: invalid });
        return;
      }
    }
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

  /**
   * A request for the server as a whole (asterisk-form, RFC 9112 §3.2.4): `OPTIONS *` is answered by the
   * router itself, 200 with the methods it forwards (RFC 9110 §9.3.7); no deployment serves "*", and
   * the upstream leg cannot carry it. Any other method with "*" is malformed: 400.
   */
  private asteriskForm(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    if (req.method === 'OPTIONS') {
      res.writeHead(200, { [DEPLOYMENT_HEADER]: NO_DEPLOYMENT, allow: ALLOW, 'content-length': 0 });
      res.end();
      return;
    }
    replyJson(req, res, 400, {
      error: 'bad_request',
      message: `the request target "*" is only valid for OPTIONS, not ${req.method ?? 'this method'}`,
    });
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
    let room = this.wakeRooms.get(deploymentId);
    if (room === undefined) {
      room = { count: 0, entry: undefined, closed: false };
      this.wakeRooms.set(deploymentId, room);
    }
    const held = room;
    held.count++;
    const leave = () => {
      if (--held.count > 0) return;
      const claimed = held.entry;
      if (claimed !== undefined) {
        if (entryIdle(claimed)) claimed.onIdle?.();
        return;
      }
      // Nobody is held and no drain claimed the room: it goes, or every deployment ever requested
      // while asleep (a failed build, a stopped or pruned deployment, which never drains) keeps one.
      if (this.wakeRooms.get(deploymentId) === held) this.wakeRooms.delete(deploymentId);
    };
    let woken: Promise<boolean>;
    try {
      woken = wake(deploymentId);
    } catch {
      woken = Promise.resolve(false);
    }
    void woken
      .catch(() => false)
      .then((ok) => {
        // The client went away meanwhile (a pipelined request's response is never closed by node).
        if (res.destroyed || res.writableEnded || clientGone(req)) {
          leave();
          return;
        }
        // The entry this wake-up started, stopped since (its drain waits for this request), or one in service.
        const entry = held.entry ?? this.entries.get(deploymentId);
        if (
          ok &&
          entry !== undefined &&
          (entry.stopping === undefined || (entry === held.entry && !held.closed)) &&
          !this.closing
        ) {
          this.proxy(req, res, entry, deploymentId);
          leave();
          return;
        }
        leave();
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
  private readonly hooks: ExchangeHooks;
}

/** The router's side of a proxied request. */
interface ExchangeHooks {
  /** The router's stallTimeoutMs (0: never cut a client for not reading). */
  readonly stallTimeoutMs: number;
  /** What the stall timer runs on. */
  readonly stallClock: Clock;
  /** The request has closed (finished, cut off, or its client gone): release its drain counters, once. */
  settled(entry: Entry): void;
  /** The request was answered 502. */
  badGateway(): void;
  /** The response was cut because its client stopped taking it. */
  stalled(): void;
}

/**
 * One proxied request: the undici dispatch handler that streams the upstream's answer into the client's
 * response (backpressure both ways), plus its bookkeeping. One object per request, methods on the
 * prototype: no per-request closures beyond the two listeners on the client side (one more for a
 * response queued behind an earlier pipelined one, see awaitTurn).
 */
class ProxyExchange implements Dispatcher.DispatchHandler {
  private abortUpstream: ((err?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  private mayRetry = false;
  private done = false;
  /**
   * The response waits behind an earlier pipelined response on its connection: it has no socket yet,
   * buffers what it is given, and its client is not the one holding it up (head-of-line waiting).
   */
  private queued: boolean;
  /** The stall timer was asked for while queued: it is armed once the response gets its socket. */
  private stallDeferred = false;
  /** Armed only while the response waits on its client (socket full); see watchStall. Aborting disarms it. */
  private stallTimer: AbortController | undefined;
  /** `res.writableLength` when the stall timer was armed: less at expiry means the client read some. */
  private stallMark = 0;

  constructor(
    private readonly hooks: ExchangeHooks,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly entry: Entry,
    private readonly deploymentId: string,
  ) {
    res.once('close', () => this.closed());
    req.once('error', () => this.abortUpstream?.());
    this.queued = res.socket === null;
    if (this.queued) this.awaitTurn();
  }

  /**
   * A response queued behind an earlier pipelined one: node emits no 'close' on it when the connection
   * dies (only the response that owns the socket gets one), so the connection's own 'close' settles it
   * until it gets the socket (one listener per connection for all its queued responses: waitForTurn);
   * from then on its 'close' does, and a stall timer may run.
   */
  private awaitTurn(): void {
    const socket = this.req.socket;
    waitForTurn(socket, this);
    this.res.once('socket', () => {
      waitingOn.get(socket)?.delete(this);
      this.queued = false;
      if (this.stallDeferred) {
        this.stallDeferred = false;
        this.watchStall();
      }
    });
  }

  send(mayRetry: boolean): void {
    const req = this.req;
    const bodyless = !hasBody(req);
    const method = req.method ?? 'GET';
    this.mayRetry = mayRetry && bodyless && IDEMPOTENT.has(method);
    this.entry.pool.dispatch(
      {
        path: req.url ?? '/',
        method,
        headers: forwardRequestHeaders(req.rawHeaders),
        body: bodyless ? null : req,
        // Keep the pooled connection after any answer: undici closes it after a HEAD by default (for
        // servers that wrongly send a body), which would cost a connection per client HEAD. The
        // upstream is node's own server and frames every answer.
        reset: false,
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
    if (this.done || res.destroyed) return false;
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
    if (this.done || res.destroyed) return false;
    if (res.write(chunk)) return true;
    // Backpressure: the upstream leg waits for the client; the stall timer bounds that wait.
    res.once('drain', () => this.drained());
    this.watchStall();
    return false;
  }

  onComplete(): void {
    const res = this.res;
    if (this.done) return;
    res.end();
    // end() flushes what it can at once; anything left waits on a client not reading (socket full).
    if (!res.destroyed && res.writableLength > 0) this.watchStall();
  }

  private drained(): void {
    this.unwatchStall();
    this.resumeUpstream?.();
  }

  /**
   * Arms the stall timer while the response waits on its client. A client that takes none of what is
   * buffered for stallTimeoutMs is cut, which frees the pooled upstream connection it held (and the
   * deployment's drain and idle accounting); one that took some is watched again, so a slow reader
   * that keeps reading is not cut. Only a response under backpressure has a timer, and only while it
   * owns its socket: a response queued behind an earlier pipelined one is waiting on that one, not on
   * its client, so its timer starts when it gets the socket.
   */
  private watchStall(): void {
    const ms = this.hooks.stallTimeoutMs;
    if (ms <= 0 || this.stallTimer !== undefined || this.done) return;
    if (this.queued) {
      this.stallDeferred = true;
      return;
    }
    this.stallMark = this.res.writableLength;
    const timer = new AbortController();
    this.stallTimer = timer;
    this.hooks.stallClock.sleep(ms, timer.signal).then(
      () => this.stallCheck(timer),
      () => undefined,
    );
  }

  private unwatchStall(): void {
    this.stallTimer?.abort();
    this.stallTimer = undefined;
  }

  /** The stall timer expired: cut the client unless it took some of the response meanwhile. */
  private stallCheck(timer: AbortController): void {
    // Disarmed once its sleep was over but before this ran: a newer timer (or none) is in charge.
    if (this.stallTimer !== timer) return;
    this.stallTimer = undefined;
    const res = this.res;
    if (this.done || res.destroyed || res.writableFinished) return;
    if (res.writableLength < this.stallMark) {
      this.watchStall();
      return;
    }
    this.hooks.stalled();
    // Cutting the client closes the response: closed() aborts the upstream request, which frees its
    // pooled connection.
    res.destroy();
  }

  onError(err: Error): void {
    const res = this.res;
    // Settled, or the client is gone: nobody to answer, and no fault of the deployment's to count.
    if (this.done || res.destroyed || res.writableEnded || clientGone(this.req)) return;
    if (res.headersSent) {
      // Cut the client connection: a truncated body must never pass for a whole one.
      res.destroy();
      return;
    }
    // A pooled connection the upstream closed just as it was reused: retry a bodyless idempotent
    // request once.
    if (this.mayRetry && isConnectionReset(err)) {
      this.abortUpstream = undefined;
      this.send(false);
      return;
    }
    // A request the upstream leg cannot carry (undici refuses its target before sending anything): the
    // client's request is at fault, not the deployment.
    if ((err as NodeJS.ErrnoException).code === 'UND_ERR_INVALID_ARG') {
      replyJson(this.req, res, 400, {
        error: 'bad_request',
        message: `the request cannot be forwarded to deployment ${this.deploymentId}: ${err.message}`,
        deploymentId: this.deploymentId,
      });
      return;
    }
    this.hooks.badGateway();
    replyJson(this.req, res, 502, {
      error: 'bad_gateway',
      message: `deployment ${this.deploymentId} failed before answering: ${err.message}`,
      deploymentId: this.deploymentId,
    });
  }

  /** Settles the exchange: its response finished, its client went away, or (queued) the connection closed. */
  closed(): void {
    if (this.done) return;
    this.done = true;
    this.unwatchStall();
    // The client went away before the answer was complete: do not leave the upstream request running.
    if (!this.res.writableFinished) this.abortUpstream?.();
    this.hooks.settled(this.entry);
  }
}

/**
 * Responses queued behind an earlier pipelined one, by client connection (see awaitTurn). One 'close'
 * listener per connection settles all of them: a listener per queued response would grow with the
 * pipelining depth (and past 10 make node warn of a listener leak).
 */
const waitingOn = new WeakMap<Socket, Set<ProxyExchange>>();

function waitForTurn(socket: Socket, exchange: ProxyExchange): void {
  const waiting = waitingOn.get(socket);
  if (waiting !== undefined) {
    waiting.add(exchange);
    return;
  }
  const queue = new Set([exchange]);
  waitingOn.set(socket, queue);
  socket.once('close', () => {
    waitingOn.delete(socket);
    for (const queued of queue) queued.closed();
    queue.clear();
  });
}

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
