/**
 * An HTTP proxy in front of a chat fake (Slack's Web API, Discord's REST API) that can hold chosen
 * calls: before they reach the fake (a slow network, a client sitting out a `Retry-After`: the call
 * lands late) or after the fake answered (a slow answer: the caller learns late what happened). Every
 * other call is forwarded unchanged. Tests open the holds themselves, so a race between replicas
 * happens in the order the test chose, without sleeping.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer } from '../fakes/loopback-server.js';

/** A call as the proxy sees it. */
export interface ProxiedCall {
  readonly method: string;
  /** The request path, without the query (e.g. `/api/chat.postMessage`). */
  readonly path: string;
}

/** A hold on one call: `reached` once the call waits at it, `release()` lets it go on. */
export interface HeldCall {
  readonly reached: Promise<void>;
  release(): void;
}

interface Hold {
  readonly match: (call: ProxiedCall) => boolean;
  readonly arrive: () => void;
  readonly gate: Promise<void>;
}

/** Request headers not forwarded as they are (the proxy's own connection and body framing). */
const HOP_HEADERS = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive']);

/** Answer headers not forwarded (`fetch` already decoded and de-chunked the body). */
const ANSWER_SKIPPED = new Set(['connection', 'content-length', 'transfer-encoding', 'content-encoding']);

export class HoldingProxy {
  private readonly before: Hold[] = [];
  private readonly after: Hold[] = [];
  private readonly releases: (() => void)[] = [];

  private constructor(
    private readonly server: LoopbackServer,
    /** The fake's origin (`http://127.0.0.1:<port>`). */
    private readonly target: string,
  ) {}

  /** Starts a proxy forwarding to `target`'s origin (any path of `target` is ignored). */
  static async start(target: string): Promise<HoldingProxy> {
    let proxy: HoldingProxy | undefined;
    const server = await LoopbackServer.start((req, res) => {
      void proxy?.forward(req, res);
    });
    proxy = new HoldingProxy(server, new URL(target).origin);
    return proxy;
  }

  /** `url` on this proxy: the same path, this proxy's origin. */
  rebase(url: string): string {
    const u = new URL(url);
    return `${this.server.url}${u.pathname}${u.search}`;
  }

  /** Holds the next call matching `match` before it reaches the fake (it lands when released). */
  holdRequest(match: (call: ProxiedCall) => boolean): HeldCall {
    return this.add(this.before, match);
  }

  /** Lets the next call matching `match` reach the fake, and holds the fake's answer until released. */
  holdAnswer(match: (call: ProxiedCall) => boolean): HeldCall {
    return this.add(this.after, match);
  }

  /** Lets every held call go on: a test that failed half-way must not leave its clients waiting. */
  releaseAll(): void {
    for (const release of this.releases.splice(0)) release();
  }

  close(): Promise<void> {
    this.releaseAll();
    return this.server.close();
  }

  private add(list: Hold[], match: (call: ProxiedCall) => boolean): HeldCall {
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.releases.push(release);
    let arrive = () => {};
    const reached = new Promise<void>((resolve) => {
      arrive = resolve;
    });
    list.push({ match, arrive, gate });
    return { reached, release };
  }

  /** Takes the first hold of `list` matching `call`, if any (each hold catches one call). */
  private take(list: Hold[], call: ProxiedCall): Hold | undefined {
    const i = list.findIndex((h) => h.match(call));
    return i < 0 ? undefined : list.splice(i, 1)[0];
  }

  private async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const call: ProxiedCall = { method: req.method ?? 'GET', path: url.pathname };
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (HOP_HEADERS.has(name) || value === undefined) continue;
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    const before = this.take(this.before, call);
    if (before) {
      before.arrive();
      await before.gate;
    }
    try {
      const answer = await fetch(`${this.target}${url.pathname}${url.search}`, {
        method: call.method,
        headers,
        ...(chunks.length === 0 ? {} : { body: Buffer.concat(chunks) }),
      });
      const body = Buffer.from(await answer.arrayBuffer());
      const after = this.take(this.after, call);
      if (after) {
        after.arrive();
        await after.gate;
      }
      const out: Record<string, string> = {};
      answer.headers.forEach((value, name) => {
        if (!ANSWER_SKIPPED.has(name)) out[name] = value;
      });
      res.writeHead(answer.status, out);
      res.end(body);
    } catch {
      res.destroy();
    }
  }
}
