/**
 * The fake Discord gateway: one WebSocket endpoint speaking gateway v10 with `encoding=json` and no
 * transport compression (what discord.js 14 negotiates when `zlib-sync` is not installed — it is not).
 * HELLO with a heartbeat interval, IDENTIFY → READY + GUILD_CREATE, heartbeat → ACK, RESUME →
 * replay of missed dispatches + RESUMED, invalid session (op 9, resumable or not), and ways to drop the
 * connection (close code or abrupt terminate) so reconnect behaviour can be tested. Dispatches carry
 * increasing sequence numbers per session; dispatches made while the bot is disconnected are kept for
 * replay. As on Discord: a session closed with 4007 or 4009 (by the gateway) or with 1000/1001 (by the
 * bot) cannot be resumed; every IDENTIFY is a session start counted against the daily budget
 * (`GatewayIdentity.sessionStart`); heartbeat ACKs can be withheld (a zombied connection).
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import {
  CloseCode,
  gatewayPayloadSchema,
  Intent,
  identifySchema,
  Op,
  PRIVILEGED_INTENTS,
  resumeSchema,
} from './protocol.js';

/** What the gateway reports to tests (`gateway.events.on('event', …)`). */
export type GatewayEvent =
  | { readonly kind: 'connect'; readonly path: string; readonly query: Readonly<Record<string, string>> }
  | {
      readonly kind: 'identify';
      readonly intents: number;
      readonly shard?: readonly [number, number];
      /** True when READY is held back (`holdReady()`): the bot waits for it. */
      readonly held?: boolean;
    }
  | {
      readonly kind: 'resume';
      readonly sessionId: string;
      readonly seq: number | null;
      readonly replayed: number;
    }
  | { readonly kind: 'heartbeat'; readonly seq: number | null }
  | { readonly kind: 'dispatch'; readonly t: string; readonly s: number; readonly live: boolean }
  | { readonly kind: 'invalid_session'; readonly resumable: boolean }
  /** An IDENTIFY came with the session start budget used up: the token was reset, sessions closed. */
  | { readonly kind: 'token_reset' }
  | { readonly kind: 'close'; readonly code: number; readonly by: 'server' | 'client' };

interface Dispatched {
  readonly s: number;
  readonly t: string;
  readonly d: unknown;
}

interface Session {
  readonly id: string;
  readonly intents: number;
  seq: number;
  readonly log: Dispatched[];
  socket: WebSocket | null;
  /** False after `invalidateSession()`: RESUME is refused with op 9. */
  resumable: boolean;
  /** Sequence the client acknowledged having (from RESUME/heartbeat); for diagnostics. */
  clientSeq: number | null;
}

export interface GatewayIdentity {
  readonly token: string;
  /**
   * Counts an IDENTIFY against the session start limit (docs: gateway, session start limit): `false`
   * when the budget was already used up — Discord then resets the token and closes every session.
   */
  readonly sessionStart: () => boolean;
  /** True once the token was reset (session start budget overrun): it no longer authenticates. */
  readonly tokenReset: () => boolean;
  readonly user: Readonly<Record<string, unknown>>;
  readonly application: { readonly id: string; readonly flags: number };
  /** Full guild objects, sent as GUILD_CREATE after READY. */
  readonly guilds: () => readonly Readonly<Record<string, unknown>>[];
}

export interface GatewayOptions {
  readonly heartbeatIntervalMs: number;
  /** Privileged intents enabled for the application in the developer portal. */
  readonly privilegedIntents: number;
  /** Public base URL of this gateway, e.g. `ws://127.0.0.1:1234`. */
  readonly url: () => string;
}

let sessionCounter = 0;

/** What the gateway knows about one open connection. */
interface Connection {
  /** The session this connection identified or resumed (null: not authenticated). */
  authed: Session | null;
  /** False once `stopAcking()` made it a zombie: heartbeats get no ACK. */
  acks: boolean;
}

/**
 * Close codes after which Discord says to start a new session (docs: gateway close event codes): 4007
 * Invalid seq and 4009 Session timed out. The fake then refuses a RESUME of that session.
 */
const UNRESUMABLE_SERVER_CLOSES: ReadonlySet<number> = new Set([
  CloseCode.invalidSeq,
  CloseCode.sessionTimedOut,
]);

/** The gateway half of the fake Discord. */
export class FakeGateway {
  readonly events = new EventEmitter();
  private readonly wss = new WebSocketServer({ noServer: true });
  private session: Session | null = null;
  private readonly sockets = new Map<WebSocket, Connection>();
  /** While true, a valid IDENTIFY gets no READY (`holdReady()`). */
  private readyHeld = false;
  /** IDENTIFYs waiting for READY while it is held, with how to start their session. */
  private readonly heldIdentifies: (() => void)[] = [];
  /** Close codes the next IDENTIFYs are answered with (`closeNextIdentify()`), in order. */
  private readonly identifyCloses: { readonly code: number; readonly reason: string }[] = [];

  constructor(
    private readonly identity: GatewayIdentity,
    private readonly options: GatewayOptions,
  ) {}

  /** URL clients use to resume (`resume_gateway_url` in READY). */
  get resumeUrl(): string {
    return `${this.options.url()}/resume`;
  }

  /** Current session id, when the bot has identified. */
  get sessionId(): string | undefined {
    return this.session?.id;
  }

  /** True while a socket of the current session is open. */
  get connected(): boolean {
    return this.session?.socket?.readyState === 1;
  }

  /** Every dispatch of the current session, in sequence order. */
  get dispatched(): readonly { s: number; t: string }[] {
    return (this.session?.log ?? []).map(({ s, t }) => ({ s, t }));
  }

  /** Accepts an HTTP upgrade (the HTTP server forwards every upgrade here). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams.entries());
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const connection: Connection = { authed: null, acks: true };
      this.sockets.set(ws, connection);
      ws.on('close', (code) => {
        this.sockets.delete(ws);
        if (this.session?.socket === ws) {
          this.session.socket = null;
          // Docs (gateway, disconnecting): closing with 1000 or 1001 invalidates the session.
          if (code === 1000 || code === 1001) this.session.resumable = false;
        }
        this.emit({ kind: 'close', code, by: 'client' });
      });
      this.emit({ kind: 'connect', path: url.pathname, query });
      if (query.v !== undefined && query.v !== '10') {
        ws.close(CloseCode.invalidApiVersion, 'Invalid API version');
        return;
      }
      if (query.encoding !== undefined && query.encoding !== 'json') {
        ws.close(CloseCode.decodeError, 'only encoding=json is supported by the fake');
        return;
      }
      if (query.compress !== undefined) {
        ws.close(CloseCode.decodeError, 'transport compression is not supported by the fake');
        return;
      }
      this.send(ws, { op: Op.hello, d: { heartbeat_interval: this.options.heartbeatIntervalMs } });
      ws.on('message', (raw) => this.onMessage(ws, connection, raw));
    });
  }

  private onMessage(ws: WebSocket, connection: Connection, raw: RawData): void {
    let json: unknown;
    try {
      json = JSON.parse(raw.toString());
    } catch {
      ws.close(CloseCode.decodeError, 'Error while decoding payload');
      return;
    }
    const parsed = gatewayPayloadSchema.safeParse(json);
    if (!parsed.success) {
      ws.close(CloseCode.decodeError, 'Error while decoding payload');
      return;
    }
    const { op, d } = parsed.data;
    const authed = connection.authed;
    switch (op) {
      case Op.heartbeat: {
        const seq = typeof d === 'number' ? d : null;
        if (authed) authed.clientSeq = seq;
        this.emit({ kind: 'heartbeat', seq });
        if (connection.acks) this.send(ws, { op: Op.heartbeatAck });
        return;
      }
      case Op.identify:
        if (authed) {
          ws.close(CloseCode.alreadyAuthenticated, 'Already authenticated');
          return;
        }
        this.identify(ws, connection, d);
        return;
      case Op.resume:
        if (authed) {
          ws.close(CloseCode.alreadyAuthenticated, 'Already authenticated');
          return;
        }
        connection.authed = this.resume(ws, d);
        return;
      case Op.presenceUpdate:
      case Op.voiceStateUpdate:
      case Op.requestGuildMembers:
        if (!authed) ws.close(CloseCode.notAuthenticated, 'Not authenticated');
        return;
      default:
        ws.close(CloseCode.unknownOpcode, 'Unknown opcode');
        return;
    }
  }

  private validToken(token: string): boolean {
    if (this.identity.tokenReset()) return false;
    return token === this.identity.token || token === `Bot ${this.identity.token}`;
  }

  private identify(ws: WebSocket, connection: Connection, d: unknown): void {
    const parsed = identifySchema.safeParse(d);
    if (!parsed.success) {
      ws.close(CloseCode.decodeError, 'Invalid identify payload');
      return;
    }
    const identify = parsed.data;
    if (!this.validToken(identify.token)) {
      ws.close(CloseCode.authenticationFailed, 'Authentication failed');
      return;
    }
    // Every IDENTIFY with the bot's token is a session start, whatever follows.
    if (!this.identity.sessionStart()) {
      this.emit({ kind: 'token_reset' });
      for (const socket of this.sockets.keys())
        socket.close(CloseCode.authenticationFailed, 'Authentication failed');
      return;
    }
    const injected = this.identifyCloses.shift();
    if (injected) {
      ws.close(injected.code, injected.reason);
      return;
    }
    if (identify.shard && (identify.shard[1] !== 1 || identify.shard[0] !== 0)) {
      ws.close(CloseCode.invalidShard, 'Invalid shard');
      return;
    }
    const privileged = identify.intents & PRIVILEGED_INTENTS;
    if ((privileged & ~this.options.privilegedIntents) !== 0) {
      ws.close(CloseCode.disallowedIntents, 'Disallowed intent(s)');
      return;
    }
    this.emit({
      kind: 'identify',
      intents: identify.intents,
      ...(identify.shard === undefined ? {} : { shard: identify.shard }),
      ...(this.readyHeld ? { held: true } : {}),
    });
    if (this.readyHeld) {
      // Accepted, but READY does not come (yet): the connection stays open, heartbeats are answered.
      this.heldIdentifies.push(() => {
        if (ws.readyState === 1) connection.authed = this.startSession(ws, identify.intents);
      });
      return;
    }
    connection.authed = this.startSession(ws, identify.intents);
  }

  /** A new session for an accepted IDENTIFY: READY, then GUILD_CREATE for each guild. */
  private startSession(ws: WebSocket, intents: number): Session {
    // A new identify replaces the previous session (its unsent events are lost, as on Discord).
    this.session?.socket?.close(CloseCode.unknownError, 'Session replaced');
    sessionCounter += 1;
    const session: Session = {
      id: `fake-session-${sessionCounter}-${Math.random().toString(36).slice(2, 10)}`,
      intents,
      seq: 0,
      log: [],
      socket: ws,
      clientSeq: null,
      resumable: true,
    };
    this.session = session;
    const guilds = this.identity.guilds();
    this.dispatch('READY', {
      v: 10,
      user: this.identity.user,
      guilds: guilds.map((g) => ({ id: g.id, unavailable: true })),
      session_id: session.id,
      resume_gateway_url: this.resumeUrl,
      shard: [0, 1],
      application: this.identity.application,
    });
    for (const guild of guilds) this.dispatch('GUILD_CREATE', guild);
    return session;
  }

  /**
   * From now on a valid IDENTIFY is accepted but answered with no READY (as when Discord's gateway is
   * degraded): the connection stays open and heartbeats are acknowledged until `releaseReady()`.
   */
  holdReady(): void {
    this.readyHeld = true;
  }

  /** Stops holding READY: every IDENTIFY still waiting on an open connection gets its READY now. */
  releaseReady(): void {
    this.readyHeld = false;
    for (const start of this.heldIdentifies.splice(0)) start();
  }

  /**
   * Answers the next IDENTIFY by closing the connection with `code` (docs: topics/opcodes-and-status-codes
   * #gateway-close-event-codes), e.g. 4004 "Authentication failed" for a token reset after the bot
   * discovered the gateway, or 4014 "Disallowed intent(s)".
   */
  closeNextIdentify(code: number, reason: string): void {
    this.identifyCloses.push({ code, reason });
  }

  private resume(ws: WebSocket, d: unknown): Session | null {
    const parsed = resumeSchema.safeParse(d);
    const session = this.session;
    const resumable =
      parsed.success &&
      session?.resumable === true &&
      parsed.data.session_id === session.id &&
      this.validToken(parsed.data.token) &&
      (parsed.data.seq ?? 0) <= session.seq;
    if (!resumable || !parsed.success || session === null) {
      this.emit({ kind: 'invalid_session', resumable: false });
      this.send(ws, { op: Op.invalidSession, d: false });
      return null;
    }
    session.socket?.close(CloseCode.unknownError, 'Session resumed elsewhere');
    session.socket = ws;
    const from = parsed.data.seq ?? 0;
    session.clientSeq = from;
    const missed = session.log.filter((e) => e.s > from);
    this.emit({ kind: 'resume', sessionId: session.id, seq: parsed.data.seq, replayed: missed.length });
    for (const e of missed) this.send(ws, { op: Op.dispatch, t: e.t, s: e.s, d: e.d });
    this.dispatch('RESUMED', {});
    return session;
  }

  /**
   * Dispatches an event to the bot. Sent now when connected; otherwise kept and replayed on RESUME.
   * Events the session's intents do not cover are not sent (and take no sequence number).
   * Returns the sequence number, or undefined when nothing was dispatched.
   */
  dispatch(t: string, d: unknown): number | undefined {
    const session = this.session;
    if (!session) return undefined;
    if (!this.wanted(session.intents, t)) return undefined;
    const payload = t === 'MESSAGE_CREATE' || t === 'MESSAGE_UPDATE' ? this.redact(session.intents, d) : d;
    session.seq += 1;
    const entry: Dispatched = { s: session.seq, t, d: payload };
    session.log.push(entry);
    const live = session.socket !== null && session.socket.readyState === 1;
    if (live && session.socket) this.send(session.socket, { op: Op.dispatch, t, s: entry.s, d: payload });
    this.emit({ kind: 'dispatch', t, s: entry.s, live });
    return entry.s;
  }

  private wanted(intents: number, t: string): boolean {
    if (t.startsWith('GUILD_') || t.startsWith('CHANNEL_')) return (intents & Intent.guilds) !== 0;
    if (t.startsWith('MESSAGE_')) return (intents & Intent.guildMessages) !== 0;
    return true;
  }

  /** Without MessageContent, content/embeds/components arrive empty (docs: message content intent). */
  private redact(intents: number, d: unknown): unknown {
    if ((intents & Intent.messageContent) !== 0) return d;
    if (typeof d !== 'object' || d === null) return d;
    const author = (d as { author?: { id?: unknown } }).author;
    if (author?.id === this.identity.user.id) return d;
    return { ...d, content: '', embeds: [], components: [], attachments: [] };
  }

  /** Asks the bot to heartbeat now (op 1 from the server). */
  requestHeartbeat(): void {
    const ws = this.session?.socket;
    if (ws) this.send(ws, { op: Op.heartbeat, d: this.session?.seq ?? null });
  }

  /**
   * Invalidates the session mid-connection with op 9 (docs: gateway, Invalid Session): `resumable`
   * is its `d`. The connection is no longer authenticated: the bot may RESUME (when resumable) or
   * IDENTIFY, on this connection or a new one; dispatches meanwhile are kept for a resume.
   */
  invalidSession(resumable: boolean): void {
    const session = this.session;
    const ws = session?.socket;
    if (!session || !ws) throw new Error('fake gateway: no connected session to invalidate');
    const connection = this.sockets.get(ws);
    if (connection) connection.authed = null;
    session.socket = null;
    if (!resumable) session.resumable = false;
    this.emit({ kind: 'invalid_session', resumable });
    this.send(ws, { op: Op.invalidSession, d: resumable });
  }

  /**
   * Stops acknowledging heartbeats on the bot's current connection, as when the network path breaks
   * silently (a zombied connection): the bot should close it and resume on a new one, whose heartbeats
   * are acknowledged again.
   */
  stopAcking(): void {
    const ws = this.session?.socket;
    const connection = ws ? this.sockets.get(ws) : undefined;
    if (!connection) throw new Error('fake gateway: no connected session to stop acknowledging');
    connection.acks = false;
  }

  /** Tells the bot to reconnect and resume (op 7). */
  requestReconnect(): void {
    const ws = this.session?.socket;
    if (ws) this.send(ws, { op: Op.reconnect, d: null });
  }

  /**
   * Drops the bot's connection. `code` closes cleanly with that close code (4000 by default: the bot
   * should resume); `terminate` destroys the socket without a close frame (the bot sees 1006).
   */
  drop(how: { readonly code?: number; readonly terminate?: boolean } = {}): void {
    const session = this.session;
    const ws = session?.socket;
    if (!session || !ws) throw new Error('fake gateway: no connected session to drop');
    const code = how.terminate ? 1006 : (how.code ?? CloseCode.unknownError);
    if (UNRESUMABLE_SERVER_CLOSES.has(code)) session.resumable = false;
    this.emit({ kind: 'close', code, by: 'server' });
    if (how.terminate) ws.terminate();
    else ws.close(how.code ?? CloseCode.unknownError, 'dropped by test');
  }

  /** Marks the session unresumable: the next RESUME is refused (op 9) and the bot must identify again. */
  invalidateSession(): void {
    if (this.session) this.session.resumable = false;
  }

  private send(ws: WebSocket, payload: { op: number; d?: unknown; s?: number; t?: string }): void {
    if (ws.readyState !== 1) return;
    ws.send(
      JSON.stringify({ op: payload.op, d: payload.d ?? null, s: payload.s ?? null, t: payload.t ?? null }),
    );
  }

  private emit(event: GatewayEvent): void {
    this.events.emit('event', event);
  }

  /** Drops every connection without a close frame (the network went away: the bot sees 1006). */
  terminateAll(): void {
    for (const ws of this.sockets.keys()) ws.terminate();
  }

  /** Closes every socket. */
  async close(): Promise<void> {
    for (const ws of this.sockets.keys()) ws.terminate();
    this.sockets.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
