/**
 * The HTTP plumbing the platform fakes share (unkey-server.ts, vercel-server.ts): a `node:http` server
 * on 127.0.0.1 with a free port, responses a fault keeps hanging until the fake closes, and a close
 * that cuts every connection. Each fake keeps its own routes, state and wire format.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A started loopback HTTP server handing every request to `handler`. */
export class LoopbackServer {
  private readonly hanging = new Set<ServerResponse>();

  private constructor(
    private readonly server: Server,
    /** `http://127.0.0.1:<port>` */
    readonly url: string,
  ) {}

  static async start(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<LoopbackServer> {
    const server = createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new LoopbackServer(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  }

  /** Leaves `res` unanswered (a hanging request) until the client gives up or `close()` cuts it. */
  hang(res: ServerResponse): void {
    this.hanging.add(res);
    res.on('close', () => this.hanging.delete(res));
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
