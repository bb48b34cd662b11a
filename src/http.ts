/**
 * The one HTTP port (DESIGN: `PORT`, default 3000). A tiny method+path router over node:http so that
 * Bolt's request listener (`/slack/events`), alert webhooks, health, metrics and the console share one
 * server. Handlers are plain node request listeners; helpers here read bounded bodies and answer JSON.
 * What one client may hold of the server (time to send a request, connections) is bounded: HttpLimits.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, isIPv4, isIPv6 } from 'node:net';
import { redisUnavailable } from './errors.js';

export type Handler = (
  req: IncomingMessage,
  res: ServerResponse,
  params: Record<string, string>,
) => void | Promise<void>;

interface Route {
  readonly method: string;
  readonly pattern: RegExp;
  readonly keys: readonly string[];
  readonly handler: Handler;
}

/** Thrown by readBody when the body is larger than allowed (answer 413). */
export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
  constructor(readonly limit: number) {
    super(`request body larger than ${limit} bytes`);
  }
}

/** Reads a request body up to `limit` bytes; rejects with BodyTooLargeError beyond it. */
export function readBody(req: IncomingMessage, limit = 1_048_576): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      reject(new BodyTooLargeError(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        reject(new BodyTooLargeError(limit));
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (e) => {
      if (!failed) reject(e);
    });
  });
}

/** Answers with a JSON body. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Answers with plain text. */
export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  contentType = 'text/plain; charset=utf-8',
): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function compile(path: string): { pattern: RegExp; keys: string[] } {
  const keys: string[] = [];
  const source = path
    .split('/')
    .map((part) => {
      if (part === '*') return '.*';
      if (part.startsWith(':')) {
        keys.push(part.slice(1));
        return '([^/]+)';
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return { pattern: new RegExp(`^${source}/?$`), keys };
}

/**
 * What one stranger may hold of the server (config `http.*`, README "Configuration"; durations in
 * milliseconds, named as node's own options). node's defaults let a client take 60 s to send its
 * headers and 300 s for its whole request, with no cap on connections: a few thousand slow connections
 * from one peer held the port for minutes.
 */
export interface HttpLimits {
  /** How long a client may take to send a request's headers; then 408 and the connection is closed. */
  readonly headersTimeout?: number;
  /**
   * How long a client may take to send a whole request, body included; then 408 (or, once an answer has
   * started, the connection is cut). A response is not bounded by it: the console's event stream stays.
   */
  readonly requestTimeout?: number;
  /** Connections open at once; a connection beyond them is closed as soon as it is accepted. */
  readonly maxConnections?: number;
}

export const DEFAULT_HTTP_LIMITS = {
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  maxConnections: 1024,
} as const satisfies Required<HttpLimits>;

/**
 * How often node looks for connections past their time. Its default (30 s) would let a 10 s headers
 * timeout run to 40 s; a quarter of the shorter timeout, at most a second, keeps the overshoot small.
 */
export function connectionsCheckingInterval(headersTimeoutMs: number, requestTimeoutMs: number): number {
  return Math.max(1, Math.min(1_000, Math.ceil(Math.min(headersTimeoutMs, requestTimeoutMs) / 4)));
}

/** One HTTP server with a route table; unmatched paths answer 404 JSON. */
export class HttpServer {
  private readonly routes: Route[] = [];
  readonly server: Server;

  constructor(
    private readonly onError: (e: unknown, req: IncomingMessage) => void = () => {},
    limits: HttpLimits = {},
  ) {
    const requestTimeout = limits.requestTimeout ?? DEFAULT_HTTP_LIMITS.requestTimeout;
    // The headers are part of the request: node refuses a headers timeout longer than the request's.
    const headersTimeout = Math.min(
      limits.headersTimeout ?? DEFAULT_HTTP_LIMITS.headersTimeout,
      requestTimeout,
    );
    const options = {
      headersTimeout,
      requestTimeout,
      connectionsCheckingInterval: connectionsCheckingInterval(headersTimeout, requestTimeout),
    };
    this.server = createServer(options, (req, res) => {
      // Nothing a request carries may reject past this point: an unhandled rejection ends the process.
      this.dispatch(req, res).catch((e: unknown) => {
        this.onError(e, req);
        if (res.headersSent) res.destroy();
        else sendJson(res, 500, { error: 'internal_error', message: 'internal error' });
      });
    });
    this.server.keepAliveTimeout = 5_000;
    this.server.maxConnections = limits.maxConnections ?? DEFAULT_HTTP_LIMITS.maxConnections;
  }

  /** Registers a handler; `path` may contain `:param` segments and a trailing `*`. */
  route(method: string, path: string, handler: Handler): this {
    const { pattern, keys } = compile(path);
    this.routes.push({ method: method.toUpperCase(), pattern, keys, handler });
    return this;
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      sendJson(res, 400, { error: 'bad_request', message: 'the request target is not a valid URL path' });
      return;
    }
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.pattern.exec(url.pathname);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== req.method && !(route.method === 'GET' && req.method === 'HEAD')) continue;
      const params: Record<string, string> = {};
      try {
        route.keys.forEach((k, i) => {
          params[k] = decodeURIComponent(m[i + 1] ?? '');
        });
      } catch {
        sendJson(res, 400, {
          error: 'bad_request',
          message: `malformed percent-encoding in the path ${url.pathname}`,
        });
        return;
      }
      try {
        await route.handler(req, res, params);
      } catch (e) {
        this.onError(e, req);
        const unreachable = redisUnavailable(e);
        if (res.headersSent) res.end();
        else if (unreachable)
          sendJson(res, 503, {
            error: 'redis_unavailable',
            // Refused before anything was sent: nothing was done. Timed out against a stalled Redis: a
            // write may still run once it resumes, so that is not promised (trying again is safe: Flow
            // settles the clicker's own unfinished claim).
            message: timedOut(unreachable)
              ? `${unreachable.message} (it did not answer in time), so this may not have been carried out: try again in a moment (trying again is safe).`
              : `${unreachable.message}: nothing was done; try again in a moment.`,
          });
        else sendJson(res, 500, { error: 'internal_error', message: 'internal error' });
      }
      return;
    }
    if (pathMatched)
      sendJson(res, 405, {
        error: 'method_not_allowed',
        message: `${req.method} not allowed on ${url.pathname}`,
      });
    else sendJson(res, 404, { error: 'not_found', message: `no route for ${req.method} ${url.pathname}` });
  }

  /** Starts listening; resolves with the bound port (use port 0 in tests). */
  listen(port: number, host = '127.0.0.1'): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  /**
   * Stops accepting connections and closes idle keep-alive sockets; requests under way get `graceMs`
   * (real time) to finish, then their connections are cut, so a long-lived response (an event stream
   * some browser tab keeps open) cannot hold shutdown forever.
   */
  close(graceMs = 5_000): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) {
        resolve();
        return;
      }
      const cut = setTimeout(() => this.server.closeAllConnections(), graceMs);
      cut.unref();
      this.server.close(() => {
        clearTimeout(cut);
        resolve();
      });
      this.server.closeIdleConnections();
    });
  }
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped ::ffff:127.x.x.x (a peer address, as the socket reports it). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.trim().toLowerCase();
  if (isIPv4(a)) return a.startsWith('127.');
  if (!isIPv6(a)) return false;
  if (a === '::1' || a === '0:0:0:0:0:0:0:1') return true;
  const mapped = /^(?:::|0:0:0:0:0:)ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  return mapped?.[1] !== undefined && isIPv4(mapped[1]) && mapped[1].startsWith('127.');
}

/**
 * Whether a request's Host header names this machine's loopback (`localhost`, `*.localhost`, 127.0.0.0/8,
 * `[::1]`; any port). A service that trusts loopback callers checks it too: a web page can point a name
 * of its own at 127.0.0.1 (DNS rebinding), but its requests then carry that name as their Host.
 */
export function isLoopbackHostHeader(host: string | undefined): boolean {
  if (host === undefined) return false;
  const h = host.trim().toLowerCase();
  const name = h.startsWith('[') ? h.slice(1, h.indexOf(']')) : h.replace(/:\d*$/, '');
  return (
    name === 'localhost' ||
    name.endsWith('.localhost') ||
    name === '::1' ||
    (isIPv4(name) && name.startsWith('127.'))
  );
}

/** Headers a reverse proxy (nginx, Caddy, a tunnel) adds to say whom it forwards for, as they are named. */
export const FORWARDING_HEADERS = [
  'Forwarded',
  'X-Forwarded-For',
  'X-Forwarded-Host',
  'X-Forwarded-Proto',
  'X-Real-IP',
] as const;

/**
 * The first proxy header a request carries (`Forwarded`, `X-Forwarded-For`, …), or undefined. A
 * service that trusts loopback callers refuses such a request: a reverse proxy on the same machine
 * connects from loopback with a loopback Host (`proxy_pass http://127.0.0.1:3000`), yet forwards for
 * whoever reached the proxy. A proxy that adds none of these headers cannot be told apart.
 */
export function forwardingHeader(req: IncomingMessage): string | undefined {
  return FORWARDING_HEADERS.find((name) => req.headers[name.toLowerCase()] !== undefined);
}

/** Whether a `redis_unavailable` error is a command that timed out (sent; Redis may still run it). */
function timedOut(e: Error): boolean {
  const cause = (e as { cause?: unknown }).cause;
  return cause instanceof Error && /^Command timed out$/.test(cause.message);
}

/**
 * Why a request looks sent by a web page of another site (cross-site request forgery), or undefined.
 * Browsers mark every request with `Sec-Fetch-Site`, and cross-origin POSTs with `Origin`; servers and
 * command-line clients send neither. A state-changing endpoint refuses such a request: a browser sends a
 * page's cross-site "simple" POST (a form, or `text/plain`) without asking first, cookies included.
 */
export function crossSiteReason(req: IncomingMessage): string | undefined {
  const site = req.headers['sec-fetch-site'];
  // The browser's own verdict, which a page cannot forge, wins when it is there: it stays right behind
  // a reverse proxy that rewrites Host (nginx's default), where Origin and Host no longer match.
  if (typeof site === 'string') {
    return site === 'same-origin' || site === 'none' ? undefined : `Sec-Fetch-Site: ${site}`;
  }
  const origin = req.headers.origin;
  if (origin === undefined) return undefined;
  // Older browsers: Origin must name this server as the request reached it (the URL parser lower-cases
  // the host and drops a default port, so `Host` is normalised the same way before comparing).
  let host: string | undefined;
  let own: string | undefined;
  try {
    const o = new URL(origin);
    host = o.host;
    own = new URL(`${o.protocol}//${req.headers.host ?? ''}`).host;
  } catch {
    host = undefined;
  }
  return host !== undefined && host === own ? undefined : `Origin: ${origin.slice(0, 100)}`;
}

/** Whether a request body is declared as JSON (`application/json`, any parameters). */
export function isJsonContentType(req: IncomingMessage): boolean {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  return type === 'application/json';
}
