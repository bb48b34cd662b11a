/**
 * One running deployment of the embedded local platform: a real `node:http` server on 127.0.0.1 with
 * an ephemeral port. It owns the deployment's request counters (in flight, total, last request time from
 * the injected Clock — what the "preview idle for six hours" rule reads) and its graceful stop (drain).
 *
 * What it serves: every request is answered 200 with `x-deployment-id: <id>`. A request without a body
 * gets a small page naming the deployment (HTML when the client accepts `text/html`, JSON otherwise);
 * a request with a body gets that body streamed back (so a proxy in front can be checked for streaming
 * in both directions). The traffic router (router.ts) proxies to it.
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Clock, systemClock } from '../../clock.js';

/** What an upstream needs to know about its deployment. A domain `Deployment` is assignable to it. */
export interface DeploymentInfo {
  readonly id: string;
  readonly branch: string;
  readonly environment?: string;
  readonly commit: { readonly sha: string; readonly message?: string; readonly author?: string };
}

/** Counters of one upstream (times are Unix ms from the injected clock). */
export interface UpstreamStats {
  readonly deploymentId: string;
  /** Requests received whose response has not finished (or been aborted) yet. */
  readonly inFlight: number;
  /** Requests received since start. */
  readonly total: number;
  /** When the upstream started listening. */
  readonly startedAt: number;
  /** Last time a request arrived or finished; undefined while no request has arrived. */
  readonly lastRequestAt: number | undefined;
  /**
   * TCP connections accepted since start. The router opens its warm pool before traffic; a count that
   * grows with traffic afterwards means its pool had to open (or reopen) connections.
   */
  readonly connections: number;
}

export interface UpstreamOptions {
  /** Time source for `startedAt`/`lastRequestAt`. Default: the system clock. */
  readonly clock?: Clock;
  /** Artificial latency added to every request (tests and benchmarks), real time. Default 0. */
  readonly delayMs?: number;
  /**
   * How long `stop()` waits for in-flight requests before closing their connections anyway, real time.
   * Default 30 000.
   */
  readonly drainTimeoutMs?: number;
}

const defaults = {
  clock: systemClock,
  delayMs: 0,
  drainTimeoutMs: 30_000,
} as const satisfies Required<UpstreamOptions>;

/**
 * Idle keep-alive connections are never timed out by the server (0 disables the timer): the router's
 * pool is their only regular client, it is bounded, and `stop()` closes every connection. This removes
 * the race where a server drops an idle socket just as the client reuses it, and a timer per request.
 */
const KEEP_ALIVE_TIMEOUT_MS = 0;

/**
 * Request header marking a connection-pool warm-up request from the router: answered 204 and not
 * counted as traffic (it must not reset the idle clock of a preview deployment). The router never
 * forwards a client's `x-switchyard-*` headers, so only its own warm-ups carry it.
 */
export const WARMUP_HEADER = 'x-switchyard-warmup';

/**
 * Request header marking Switchyard's own probe (who serves this domain?): answered as any request,
 * but not traffic for the idle rule, so verification and the console's domain panel never keep a
 * preview deployment awake. On the upstream leg the router sets it itself (`1`), for a request that
 * carried it to the router.
 */
export const PROBE_HEADER = 'x-switchyard-probe';

/** Events emitted by an Upstream. */
export interface UpstreamEvents {
  /** A request arrived (after the counters were updated). */
  request: [req: IncomingMessage];
  /** Every in-flight request has finished. */
  idle: [];
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * A real HTTP server standing for one running deployment.
 *
 * ```ts
 * const up = new Upstream({ id: 'dpl_1', branch: 'main', commit: { sha: 'abc123' } }, { clock });
 * const port = await up.start();
 * // … later: stop accepting, let in-flight requests finish, close.
 * await up.stop();
 * ```
 */
export class Upstream extends EventEmitter<UpstreamEvents> {
  readonly info: DeploymentInfo;
  private readonly clock: Clock;
  private readonly delayMs: number;
  private readonly drainTimeoutMs: number;
  private readonly server: Server;
  private readonly jsonBody: Buffer;
  private readonly htmlBody: Buffer;
  private inFlightCount = 0;
  private totalCount = 0;
  private connectionCount = 0;
  private startedAtMs = 0;
  private lastRequestAtMs: number | undefined;
  private boundPort: number | undefined;
  private stopping: Promise<void> | undefined;
  private holds = 0;
  private held: Array<() => void> = [];

  constructor(info: DeploymentInfo, options: UpstreamOptions = {}) {
    super();
    this.info = info;
    this.clock = options.clock ?? defaults.clock;
    this.delayMs = options.delayMs ?? defaults.delayMs;
    this.drainTimeoutMs = options.drainTimeoutMs ?? defaults.drainTimeoutMs;
    const page = {
      deploymentId: info.id,
      ...(info.environment === undefined ? {} : { environment: info.environment }),
      branch: info.branch,
      commit: info.commit.sha,
      ...(info.commit.message === undefined ? {} : { message: info.commit.message }),
    };
    // Built once: answering a request allocates no body.
    this.jsonBody = Buffer.from(`${JSON.stringify(page)}\n`);
    const title = `Deployment ${escapeHtml(info.id)}`;
    this.htmlBody = Buffer.from(
      `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body>` +
        `<h1>${title}</h1><p>Branch <code>${escapeHtml(info.branch)}</code>, commit ` +
        `<code>${escapeHtml(info.commit.sha)}</code>` +
        (info.commit.message === undefined ? '' : ` — ${escapeHtml(info.commit.message)}`) +
        `</p></body></html>\n`,
    );
    this.server = createServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, (req, res) =>
      this.handle(req, res),
    );
    this.server.on('connection', () => {
      this.connectionCount++;
    });
    // A client that sends garbage or resets mid-request must never take the process down.
    this.server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
  }

  /** Deployment id this upstream serves. */
  get deploymentId(): string {
    return this.info.id;
  }

  /** Bound port; undefined before `start()` resolves. */
  get port(): number | undefined {
    return this.boundPort;
  }

  /** True once `stop()` has been called. */
  get stopped(): boolean {
    return this.stopping !== undefined;
  }

  /** Starts listening on 127.0.0.1 with an ephemeral port; resolves with that port. Idempotent. */
  async start(): Promise<number> {
    if (this.boundPort !== undefined) return this.boundPort;
    if (this.stopping) throw new Error(`upstream for ${this.info.id} was stopped; create a new one`);
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.server.once('error', onError);
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.startedAtMs = this.clock.now();
    this.boundPort = (this.server.address() as AddressInfo).port;
    return this.boundPort;
  }

  /** Current counters. */
  stats(): UpstreamStats {
    return {
      deploymentId: this.info.id,
      inFlight: this.inFlightCount,
      total: this.totalCount,
      startedAt: this.startedAtMs,
      lastRequestAt: this.lastRequestAtMs,
      connections: this.connectionCount,
    };
  }

  /**
   * Holds every request (arrived or arriving) before it is answered until the returned release function
   * is called — lets tests keep requests in flight deterministically instead of sleeping. Holds nest.
   */
  hold(): () => void {
    this.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
      if (this.holds === 0) {
        const waiting = this.held;
        this.held = [];
        for (const go of waiting) go();
      }
    };
  }

  /**
   * Stops accepting connections, waits until in-flight requests finish (at most `drainTimeoutMs`,
   * then their connections are closed), and closes. Idempotent: every call returns the same promise.
   */
  stop(): Promise<void> {
    this.stopping ??= this.drainAndClose();
    return this.stopping;
  }

  private async drainAndClose(): Promise<void> {
    if (this.boundPort === undefined) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // server.close() already dropped idle keep-alive connections; in-flight ones close after their response.
    if (this.inFlightCount > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.drainTimeoutMs);
        timer.unref();
        this.once('idle', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.server.closeAllConnections();
    await closed;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.headers[WARMUP_HEADER] !== undefined) {
      // The router opening its connection pool: not traffic, so not counted (idle rule) nor announced.
      res.writeHead(204, { 'x-deployment-id': this.info.id });
      res.end();
      return;
    }
    this.inFlightCount++;
    if (req.headers[PROBE_HEADER] === undefined) {
      this.totalCount++;
      this.lastRequestAtMs = this.clock.now();
    }
    res.once('close', () => this.finished(req.headers[PROBE_HEADER] === undefined));
    req.on('error', () => res.destroy());
    this.emit('request', req);
    if (this.holds > 0) {
      this.held.push(() => this.answerAfterDelay(req, res));
      return;
    }
    this.answerAfterDelay(req, res);
  }

  private answerAfterDelay(req: IncomingMessage, res: ServerResponse): void {
    if (this.delayMs > 0) setTimeout(() => this.answer(req, res), this.delayMs);
    else this.answer(req, res);
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    if (res.destroyed) return;
    // While draining, tell the client not to reuse the connection.
    if (this.stopping) res.shouldKeepAlive = false;
    const headers = req.headers;
    const hasBody =
      headers['transfer-encoding'] !== undefined ||
      (headers['content-length'] !== undefined && headers['content-length'] !== '0');
    if (hasBody) {
      res.writeHead(200, {
        'x-deployment-id': this.info.id,
        'content-type': headers['content-type'] ?? 'application/octet-stream',
      });
      req.pipe(res);
      return;
    }
    const html = headers.accept?.includes('text/html') === true;
    const body = html ? this.htmlBody : this.jsonBody;
    res.writeHead(200, {
      'x-deployment-id': this.info.id,
      'content-type': html ? 'text/html; charset=utf-8' : 'application/json',
      'content-length': body.length,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  /** A request ended; `traffic` is false for Switchyard's own probes (not traffic for the idle rule). */
  private finished(traffic: boolean): void {
    this.inFlightCount--;
    if (traffic) this.lastRequestAtMs = this.clock.now();
    if (this.inFlightCount === 0) this.emit('idle');
  }
}
