/**
 * A front for the fake Slack Web API that can fail calls the fake itself cannot: Slack's 5xx (or any
 * answer) for the next calls of one method; every other call is forwarded to the fake unchanged. Point
 * a client's `slackApiUrl` (or `SLACK_API_URL`) at `apiUrl`. Used by the tests of failed edits.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer } from '../fakes/loopback-server.js';
import type { FakeSlack } from '../fakes/slack/server.js';

/** What a faulted call answers: an HTTP status and a JSON body. */
export interface FrontAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** A Slack 5xx (`service_unavailable` body): a fault that may pass. */
export const SLACK_503: FrontAnswer = { status: 503, body: { ok: false, error: 'service_unavailable' } };

export class SlackFront {
  private readonly faults = new Map<string, { answer: FrontAnswer; remaining: number }>();
  /** Methods answered by a fault, in order. */
  readonly faulted: string[] = [];

  private constructor(
    private readonly server: LoopbackServer,
    private readonly fake: FakeSlack,
  ) {}

  static async start(fake: FakeSlack): Promise<SlackFront> {
    let front: SlackFront | undefined;
    const server = await LoopbackServer.start((req, res) => {
      void front?.handle(req, res);
    });
    front = new SlackFront(server, fake);
    return front;
  }

  /** Web API base URL, ending with `/api/` as `slackApiUrl` requires. */
  get apiUrl(): string {
    return `${this.server.url}/api/`;
  }

  /** The next `count` calls of `method` answer `answer` (default: HTTP 503) instead of reaching the fake. */
  fail(method: string, count = 1, answer: FrontAnswer = SLACK_503): void {
    this.faults.set(method, { answer, remaining: count });
  }

  /** Lifts the faults left of `method`. */
  heal(method: string): void {
    this.faults.delete(method);
  }

  close(): Promise<void> {
    return this.server.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = /^\/api\/([A-Za-z.]+)$/.exec(url.pathname)?.[1] ?? '';
    const fault = this.faults.get(method);
    if (fault && fault.remaining > 0) {
      fault.remaining -= 1;
      this.faulted.push(method);
      const text = JSON.stringify(fault.answer.body);
      res.writeHead(fault.answer.status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(text);
      return;
    }
    const headers: Record<string, string> = {};
    for (const name of ['content-type', 'authorization']) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    try {
      const answer = await fetch(`${this.fake.apiUrl}${method}${url.search}`, {
        method: req.method ?? 'POST',
        headers,
        ...(req.method === 'GET' ? {} : { body: Buffer.concat(chunks) }),
      });
      const out: Record<string, string> = {};
      for (const name of ['content-type', 'retry-after']) {
        const value = answer.headers.get(name);
        if (value !== null) out[name] = value;
      }
      res.writeHead(answer.status, out);
      res.end(Buffer.from(await answer.arrayBuffer()));
    } catch {
      // The fake is gone (closed under a call still in flight): cut the call as it would be.
      res.destroy();
    }
  }
}
