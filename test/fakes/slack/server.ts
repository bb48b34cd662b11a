/**
 * A local fake of the Slack Web API and of `response_url` endpoints, written from Slack's documented
 * wire protocol so the real `@slack/web-api` / `@slack/bolt` run unmodified against it (STYLE 10).
 * Channels are named by id everywhere except in `chat.postMessage`, which also takes the name of a
 * channel the bot is in (`#alerts` or `alerts`) and answers with the channel's id, as Slack does
 * (`chat.update` and the other methods answer `channel_not_found` to a name).
 *
 * It owns: bearer-token checks (`not_authed` / `invalid_auth`, and `token_revoked` / `account_inactive`
 * after `revokeToken`), JSON and form-encoded bodies (form values such as `blocks` are JSON strings, like
 * Slack accepts), the documented request shapes of the methods Switchyard calls (`auth.test`,
 * `chat.postMessage`, `chat.update`, `chat.postEphemeral`, `usergroups.users.list`, `users.info`,
 * `conversations.info`), Block Kit limits (`invalid_blocks`, see `blockProblems`), 429 injection with
 * `Retry-After`, calls that hang (`stall`) or are answered when the test says so (`hold`), Socket Mode
 * (`apps.connections.open`, envelopes, acks, and Slack's `disconnect` request), response URLs (5 uses
 * within 30 minutes) and a record of every call with an event emitter so tests wait for a call instead
 * of sleeping. It also knows which channels are private and which bot events the app subscribes to (by
 * default those of `manifest.yml`, what an operator pastes), so `SlackRequests.message` delivers a
 * channel's message as Slack does: a `message.channels` event for a public channel, `message.groups`
 * (`channel_type: "group"`) for a private one, and nothing when the app does not subscribe to that event.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import { parse } from 'yaml';
import { type Clock, systemClock } from '../../../src/clock.js';

/** One Web API call as the fake saw it. */
export interface RecordedCall {
  readonly method: string;
  /** Arguments, with JSON-string form values (blocks, attachments) parsed. */
  readonly args: Readonly<Record<string, unknown>>;
  readonly token: string | undefined;
  readonly contentType: string;
  readonly status: number;
  readonly response: Readonly<Record<string, unknown>>;
  /** Clock ms. */
  readonly at: number;
}

/** One POST to a response URL. */
export interface RecordedResponse {
  readonly id: string;
  readonly body: Readonly<Record<string, unknown>>;
  readonly status: number;
  readonly error?: string;
  readonly at: number;
}

/**
 * A Web API call the test holds (`FakeSlack.hold`): `reached` once it arrived, `release()` lets the fake
 * answer it as it would have at once, `abandoned` once the caller gave up on it (closed the request
 * before the answer), which is how a test sees that a client dropped a call instead of leaving it open.
 */
export interface HeldWebCall {
  readonly reached: Promise<void>;
  readonly abandoned: Promise<void>;
  release(): void;
}

/** A message as stored by the fake (the latest version). */
export interface StoredMessage {
  readonly channel: string;
  readonly ts: string;
  readonly text: string;
  readonly blocks: readonly unknown[];
  readonly user: string;
  /** Every version, oldest first (the post, then each update). */
  readonly versions: readonly { text: string; blocks: readonly unknown[] }[];
}

export interface FakeUser {
  readonly name: string;
  readonly realName?: string;
}

/** A Socket Mode acknowledgement the app sent back over the WebSocket. */
export interface SocketAck {
  readonly envelope_id: string;
  readonly payload?: Readonly<Record<string, unknown>>;
}

export interface FakeSlackOptions {
  /** Accepted bot token. */
  readonly token?: string;
  /** Accepted app-level token (Socket Mode: `apps.connections.open`). */
  readonly appToken?: string;
  readonly teamId?: string;
  readonly botUserId?: string;
  readonly botId?: string;
  readonly clock?: Clock;
  /** Channel id → name; the bot is a member of each. */
  readonly channels?: Readonly<Record<string, string>>;
  /** Private channel id → name; the bot was invited to each (also counted in `channels`). */
  readonly privateChannels?: Readonly<Record<string, string>>;
  /** The bot events the app subscribes to (default: `manifest.yml`'s `bot_events`). */
  readonly botEvents?: readonly string[];
  readonly users?: Readonly<Record<string, FakeUser>>;
  /** User group id → member user ids. */
  readonly usergroups?: Readonly<Record<string, readonly string[]>>;
}

const RESPONSE_URL_USES = 5;
const RESPONSE_URL_TTL_MS = 30 * 60_000;
const MAX_BLOCKS = 50;
const MAX_TEXT = 40_000;

const BLOCK_TYPES = new Set([
  'section',
  'header',
  'divider',
  'context',
  'actions',
  'image',
  'input',
  'rich_text',
  'file',
  'video',
  'markdown',
]);

interface ResponseUrlState {
  readonly id: string;
  readonly channel: string;
  readonly user: string;
  readonly messageTs?: string;
  readonly createdAt: number;
  uses: number;
}

type Answer = { status: number; body: Record<string, unknown>; headers?: Record<string, string> };

/** The bot events `manifest.yml` subscribes to (what an app created from it gets). */
export function manifestBotEvents(): string[] {
  const raw = readFileSync(new URL('../../../manifest.yml', import.meta.url), 'utf8');
  const manifest = parse(raw) as { settings?: { event_subscriptions?: { bot_events?: unknown } } };
  const events = manifest.settings?.event_subscriptions?.bot_events;
  return Array.isArray(events) ? events.filter((e): e is string => typeof e === 'string') : [];
}

/** How Slack delivers a message of a channel: the event subscription it needs and its `channel_type`. */
export interface MessageDelivery {
  readonly subscription: 'message.channels' | 'message.groups';
  readonly channelType: 'channel' | 'group';
}

function slackError(error: string, extra: Record<string, unknown> = {}): Answer {
  return { status: 200, body: { ok: false, error, ...extra } };
}

function textOf(obj: unknown): string | undefined {
  if (obj === null || typeof obj !== 'object') return undefined;
  const t = (obj as { text?: unknown }).text;
  return typeof t === 'string' ? t : undefined;
}

/** A Block Kit text object (`plain_text` or `mrkdwn`) of 1..`max` characters, or a reason with its pointer. */
function textProblem(obj: unknown, at: string, max: number, plainOnly: boolean): string | null {
  if (obj === null || typeof obj !== 'object') return `must be a text object [json-pointer:${at}]`;
  const t = obj as { type?: unknown; text?: unknown };
  if (t.type !== 'plain_text' && (plainOnly || t.type !== 'mrkdwn'))
    return `must be a ${plainOnly ? 'plain_text' : 'plain_text or mrkdwn'} text object [json-pointer:${at}/type]`;
  if (typeof t.text !== 'string' || t.text.length === 0 || t.text.length > max)
    return `must be between 1 and ${max} characters [json-pointer:${at}/text]`;
  return null;
}

/**
 * The confirmation dialog object: title (plain_text ≤ 100), text (≤ 300), confirm and deny (plain_text
 * ≤ 30) all required, style primary or danger.
 */
function confirmProblem(obj: unknown, at: string): string | null {
  if (obj === null || typeof obj !== 'object') return `confirm must be an object [json-pointer:${at}]`;
  const c = obj as Record<string, unknown>;
  if (c.style !== undefined && c.style !== 'primary' && c.style !== 'danger')
    return `must be primary or danger [json-pointer:${at}/style]`;
  return (
    textProblem(c.title, `${at}/title`, 100, true) ??
    textProblem(c.text, `${at}/text`, 300, false) ??
    textProblem(c.confirm, `${at}/confirm`, 30, true) ??
    textProblem(c.deny, `${at}/deny`, 30, true)
  );
}

/**
 * An interactive element in an `actions` block or a section `accessory`. Every such element: action_id
 * ≤ 255 and unique (see `actionIds`), a valid `confirm` when present. A button: plain_text ≤ 75, value
 * ≤ 2000, url ≤ 3000, style primary or danger.
 */
function elementProblem(el: unknown, at: string, actionIds: Set<string>): string | null {
  if (el === null || typeof el !== 'object') return `element must be an object [json-pointer:${at}]`;
  const e = el as Record<string, unknown>;
  if (typeof e.type !== 'string') return `element needs a type [json-pointer:${at}/type]`;
  if (e.type === 'button') {
    const label = textProblem(e.text, `${at}/text`, 75, true);
    if (label) return label;
    if (e.style !== undefined && e.style !== 'primary' && e.style !== 'danger')
      return `must be primary or danger [json-pointer:${at}/style]`;
    if (e.value !== undefined && (typeof e.value !== 'string' || e.value.length > 2000))
      return `must be at most 2000 characters [json-pointer:${at}/value]`;
    if (e.url !== undefined && (typeof e.url !== 'string' || e.url.length > 3000))
      return `must be at most 3000 characters [json-pointer:${at}/url]`;
  }
  if (e.action_id !== undefined) {
    if (typeof e.action_id !== 'string' || e.action_id.length > 255)
      return `must be at most 255 characters [json-pointer:${at}/action_id]`;
    if (actionIds.has(e.action_id)) return `duplicate action_id [json-pointer:${at}/action_id]`;
    actionIds.add(e.action_id);
  }
  if (e.confirm !== undefined) return confirmProblem(e.confirm, `${at}/confirm`);
  return null;
}

/**
 * Checks the documented Block Kit limits that a renderer can break (docs.slack.dev, Block Kit reference):
 * ≤ 50 blocks of known types; section text 1..3000 and ≤ 10 fields of 1..2000; header plain_text
 * 1..150; context 1..10 elements, each text 1..3000 (or an image); actions 1..25 elements; interactive
 * elements (actions elements and section accessories) as `elementProblem` says, confirmation dialogs as
 * `confirmProblem` says; block_id ≤ 255 and unique. action_id: Slack documents uniqueness within the
 * containing block; the fake requires it across the whole message (stricter: Switchyard's ids name the
 * plan and the action, so a repeat anywhere would be a renderer bug).
 * Returns a reason (Slack answers `invalid_blocks` with `errors`), or null.
 */
export function blockProblems(blocks: unknown): string | null {
  if (!Array.isArray(blocks)) return 'blocks must be an array';
  if (blocks.length > MAX_BLOCKS) return `no more than ${MAX_BLOCKS} items allowed [json-pointer:/blocks]`;
  const blockIds = new Set<string>();
  const actionIds = new Set<string>();
  for (const [i, block] of blocks.entries()) {
    const path = `/blocks/${i}`;
    const at = `[json-pointer:${path}]`;
    if (block === null || typeof block !== 'object') return `block must be an object ${at}`;
    const b = block as Record<string, unknown>;
    if (typeof b.type !== 'string' || !BLOCK_TYPES.has(b.type)) return `unknown block type ${at}`;
    if (typeof b.block_id === 'string') {
      if (b.block_id.length > 255) return `block_id too long ${at}`;
      if (blockIds.has(b.block_id)) return `duplicate block_id ${at}`;
      blockIds.add(b.block_id);
    }
    switch (b.type) {
      case 'section': {
        const text = textOf(b.text);
        const fields = Array.isArray(b.fields) ? b.fields : undefined;
        if (text === undefined && fields === undefined) return `section needs text or fields ${at}`;
        if (text !== undefined && (text.length === 0 || text.length > 3000))
          return `must be between 1 and 3000 characters [json-pointer:${path}/text/text]`;
        if (fields && fields.length > 10) return `no more than 10 fields ${at}`;
        for (const f of fields ?? []) {
          const ft = textOf(f);
          if (ft === undefined || ft.length === 0 || ft.length > 2000) return `bad field text ${at}`;
        }
        if (b.accessory !== undefined) {
          const problem = elementProblem(b.accessory, `${path}/accessory`, actionIds);
          if (problem) return problem;
        }
        break;
      }
      case 'header': {
        const t = b.text as { type?: unknown } | undefined;
        const text = textOf(t);
        if (t?.type !== 'plain_text' || text === undefined || text.length === 0 || text.length > 150)
          return `header needs plain_text of 1..150 characters ${at}`;
        break;
      }
      case 'context': {
        const els = b.elements;
        if (!Array.isArray(els) || els.length === 0 || els.length > 10)
          return `context needs 1..10 elements ${at}`;
        for (const [j, el] of els.entries()) {
          const type = (el as { type?: unknown } | null)?.type;
          if (type === 'image') continue;
          const problem = textProblem(el, `${path}/elements/${j}`, 3000, false);
          if (problem) return problem;
        }
        break;
      }
      case 'actions': {
        const els = b.elements;
        if (!Array.isArray(els) || els.length === 0 || els.length > 25)
          return `actions needs 1..25 elements ${at}`;
        for (const [j, el] of els.entries()) {
          const problem = elementProblem(el, `${path}/elements/${j}`, actionIds);
          if (problem) return problem;
        }
        break;
      }
      default:
        break;
    }
  }
  return null;
}

function parseMaybeJson(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}

/** The fake Slack: start(), point `slackApiUrl` at `apiUrl`, assert on `calls`, close(). */
export class FakeSlack extends EventEmitter {
  readonly token: string;
  readonly appToken: string;
  readonly teamId: string;
  readonly botUserId: string;
  readonly botId: string;
  readonly calls: RecordedCall[] = [];
  readonly responses: RecordedResponse[] = [];
  readonly channels = new Map<string, string>();
  /** Ids of the private channels among `channels`. */
  readonly privateChannels = new Set<string>();
  readonly botEvents: ReadonlySet<string>;
  readonly users = new Map<string, FakeUser>();
  readonly usergroups = new Map<string, string[]>();
  private readonly messages = new Map<string, StoredMessage>();
  private readonly responseUrls = new Map<string, ResponseUrlState>();
  private readonly rateLimits = new Map<string, { retryAfter: number; remaining: number }>();
  private readonly stalls = new Map<string, { remaining: number; seen: number }>();
  /** Set by hold: the next call of a method waits for its release. */
  private readonly holds = new Map<string, { arrive: () => void; gate: Promise<void>; gone: () => void }[]>();
  private readonly releases: (() => void)[] = [];
  /** Set by revokeToken: what every call made with the bot token answers. */
  private tokenError: string | undefined;
  /** Set by refuse: what every call of a method answers. */
  private readonly refusals = new Map<string, Answer>();
  private readonly clock: Clock;
  private readonly server: Server;
  private port = 0;
  private tsCounter = 0;
  private urlCounter = 0;

  constructor(opts: FakeSlackOptions = {}) {
    super();
    this.setMaxListeners(0);
    this.token = opts.token ?? 'xoxb-fake-bot-token';
    this.appToken = opts.appToken ?? 'xapp-fake-app-token';
    this.teamId = opts.teamId ?? 'T0FAKE';
    this.botUserId = opts.botUserId ?? 'U0BOT';
    this.botId = opts.botId ?? 'B0BOT';
    this.clock = opts.clock ?? systemClock;
    for (const [id, name] of Object.entries(opts.channels ?? { C0PROD: 'incidents' }))
      this.channels.set(id, name);
    for (const [id, name] of Object.entries(opts.privateChannels ?? {})) {
      this.channels.set(id, name);
      this.privateChannels.add(id);
    }
    this.botEvents = new Set(opts.botEvents ?? manifestBotEvents());
    for (const [id, u] of Object.entries(opts.users ?? {})) this.users.set(id, u);
    for (const [id, members] of Object.entries(opts.usergroups ?? {})) this.usergroups.set(id, [...members]);
    this.server = createServer((req, res) => {
      void this.dispatch(req, res);
    });
    this.server.on('upgrade', (req, socket, head) => {
      if (!(req.url ?? '').startsWith('/socket-mode/')) {
        socket.destroy();
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws));
    });
  }

  // ── Socket Mode ──────────────────────────────────────────────────────────────────────────────

  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly sockets = new Set<WebSocket>();
  /** Acks received over Socket Mode, by envelope id. */
  readonly socketAcks = new Map<string, SocketAck>();
  private envelopeCounter = 0;

  private onSocket(ws: WebSocket): void {
    this.sockets.add(ws);
    ws.on('close', () => this.sockets.delete(ws));
    ws.on('message', (data) => {
      let msg: unknown;
      try {
        msg = JSON.parse(String(data)) as unknown;
      } catch {
        return;
      }
      const m = msg as { envelope_id?: unknown; payload?: unknown };
      if (typeof m.envelope_id !== 'string') return;
      const ack: SocketAck = {
        envelope_id: m.envelope_id,
        ...(m.payload !== null && typeof m.payload === 'object'
          ? { payload: m.payload as Record<string, unknown> }
          : {}),
      };
      this.socketAcks.set(ack.envelope_id, ack);
      this.emit('socket-ack', ack);
    });
    // Slack finalizes the handshake with a hello message.
    ws.send(
      JSON.stringify({
        type: 'hello',
        num_connections: this.sockets.size,
        debug_info: { host: 'fake-slack', approximate_connection_time: 18060 },
        connection_info: { app_id: 'A0SWITCH' },
      }),
    );
    this.emit('socket-connected');
  }

  /** Resolves once an app is connected over Socket Mode (already, or when it connects). */
  socketConnected(): Promise<void> {
    if (this.sockets.size > 0) return Promise.resolve();
    return new Promise((resolve) => this.once('socket-connected', () => resolve()));
  }

  /**
   * Delivers an envelope over Socket Mode (`slash_commands`, `interactive`, `events_api`) to every
   * connected app and resolves with the app's ack.
   */
  sendEnvelope(
    type: 'slash_commands' | 'interactive' | 'events_api',
    payload: Record<string, unknown>,
  ): Promise<SocketAck> {
    this.envelopeCounter += 1;
    const envelopeId = `env-${this.envelopeCounter}`;
    const acked = new Promise<SocketAck>((resolve) => {
      const on = (ack: SocketAck) => {
        if (ack.envelope_id !== envelopeId) return;
        this.off('socket-ack', on);
        resolve(ack);
      };
      this.on('socket-ack', on);
    });
    const envelope = {
      envelope_id: envelopeId,
      type,
      payload,
      accepts_response_payload: type !== 'events_api',
      ...(type === 'events_api' ? { retry_attempt: 0, retry_reason: '' } : {}),
    };
    for (const ws of this.sockets) ws.send(JSON.stringify(envelope));
    return acked;
  }

  /**
   * Asks every connected app to reconnect, as Slack does before it recycles a connection (every few
   * hours): a `disconnect` message; the app is expected to open a new connection with
   * apps.connections.open.
   */
  requestReconnect(reason: 'refresh_requested' | 'warning' = 'refresh_requested'): void {
    for (const ws of this.sockets)
      ws.send(JSON.stringify({ type: 'disconnect', reason, debug_info: { host: 'fake-slack' } }));
  }

  /** Web API base URL, ending with `/api/` as `slackApiUrl` requires. */
  get apiUrl(): string {
    return `http://127.0.0.1:${this.port}/api/`;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.port = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
    return this;
  }

  close(): Promise<void> {
    // Held calls are answered into connections closed below, so that no handler waits for good.
    for (const release of this.releases.splice(0)) release();
    for (const ws of this.sockets) ws.terminate();
    this.wss.close();
    return new Promise((resolve) => {
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** The next `count` calls of `method` answer HTTP 429 with `Retry-After: retryAfterSeconds`. */
  rateLimit(method: string, retryAfterSeconds: number, count = 1): void {
    this.rateLimits.set(method, { retryAfter: retryAfterSeconds, remaining: count });
  }

  /**
   * The next `count` calls of `method` (or posts to response URLs: `'response_url'`) are read and then
   * never answered (a Slack that accepted the connection and hangs); they are not recorded.
   * `stalled(method)` counts them so far.
   */
  stall(method: string, count = 1): void {
    this.stalls.set(method, { remaining: count, seen: this.stalls.get(method)?.seen ?? 0 });
  }

  /**
   * Holds the next call of `method` (a test control, not Slack behaviour: a Slack that is slow to
   * answer): the call is read, then answered as usual once the test calls `release()`. Unlike `stall`,
   * the answer comes, late; unlike `rateLimit`, nothing in the answer changes.
   */
  hold(method: string): HeldWebCall {
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let arrive = () => {};
    const reached = new Promise<void>((resolve) => {
      arrive = resolve;
    });
    let gone = () => {};
    const abandoned = new Promise<void>((resolve) => {
      gone = resolve;
    });
    this.releases.push(release);
    const list = this.holds.get(method) ?? [];
    list.push({ arrive, gate, gone });
    this.holds.set(method, list);
    return { reached, abandoned, release };
  }

  /**
   * From now on every call made with the bot token answers `error`, as Slack does for a token that was
   * revoked (`token_revoked`) or whose bot or workspace was deactivated (`account_inactive`).
   */
  revokeToken(error: 'token_revoked' | 'account_inactive' | 'token_expired' = 'token_revoked'): void {
    this.tokenError = error;
  }

  /**
   * From now on every call of `method` answers `error`, as Slack does for answers no retry changes:
   * `usergroups.users.list` on a workspace whose plan has no user groups (`plan_upgrade_required`), or a
   * token without the method's scope (`missing_scope`, with Slack's `needed` and `provided`).
   */
  refuse(method: string, error: string, extra: Record<string, unknown> = {}): void {
    this.refusals.set(method, slackError(error, extra));
  }

  /**
   * How Slack delivers a message posted in `channel`: as `message.groups` (`channel_type: "group"`) in
   * a private channel, as `message.channels` (`channel_type: "channel"`) in a public one.
   */
  messageDelivery(channel: string): MessageDelivery {
    return this.privateChannels.has(channel)
      ? { subscription: 'message.groups', channelType: 'group' }
      : { subscription: 'message.channels', channelType: 'channel' };
  }

  stalled(method: string): number {
    return this.stalls.get(method)?.seen ?? 0;
  }

  /** A fresh response URL bound to a channel and user (and the message a button was on). */
  createResponseUrl(ref: { channel: string; user: string; messageTs?: string }): string {
    this.urlCounter += 1;
    const id = `R${String(this.urlCounter).padStart(6, '0')}`;
    this.responseUrls.set(id, { id, ...ref, createdAt: this.clock.now(), uses: 0 });
    return `http://127.0.0.1:${this.port}/hooks/${this.teamId}/${id}/secret${this.urlCounter}`;
  }

  /** The stored message, latest version. */
  message(channel: string, ts: string): StoredMessage | undefined {
    return this.messages.get(`${channel}/${ts}`);
  }

  /** Calls of one method, in order. */
  callsOf(method: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /**
   * Resolves with the first call of `method` (already recorded or future) matching `predicate`;
   * rejects after `timeoutMs` listing what was called, so a failing test says why.
   */
  waitForCall(
    method: string,
    predicate: (call: RecordedCall) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<RecordedCall> {
    const found = this.calls.find((c) => c.method === method && predicate(c));
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const onCall = (call: RecordedCall) => {
        if (call.method === method && predicate(call)) {
          clearTimeout(timer);
          this.off('call', onCall);
          resolve(call);
        }
      };
      const timer = setTimeout(() => {
        this.off('call', onCall);
        const seen = this.calls.map((c) => `${c.method}:${String(c.response.ok)}`).join(', ');
        reject(new Error(`no matching ${method} call within ${timeoutMs} ms; calls: ${seen || 'none'}`));
      }, timeoutMs);
      this.on('call', onCall);
    });
  }

  /** Like waitForCall, for POSTs to response URLs. */
  waitForResponse(
    predicate: (r: RecordedResponse) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<RecordedResponse> {
    const found = this.responses.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const onResponse = (r: RecordedResponse) => {
        if (predicate(r)) {
          clearTimeout(timer);
          this.off('response', onResponse);
          resolve(r);
        }
      };
      const timer = setTimeout(() => {
        this.off('response', onResponse);
        const seen = this.responses.map((r) => JSON.stringify(r.body).slice(0, 120)).join(' | ');
        reject(new Error(`no matching response_url POST within ${timeoutMs} ms; got: ${seen || 'none'}`));
      }, timeoutMs);
      this.on('response', onResponse);
    });
  }

  private nextTs(): string {
    this.tsCounter += 1;
    const seconds = Math.floor(this.clock.now() / 1000);
    return `${seconds}.${String(this.tsCounter).padStart(6, '0')}`;
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const contentType = String(req.headers['content-type'] ?? '');
    if (url.pathname.startsWith('/hooks/')) {
      const stall = this.stalls.get('response_url');
      if (stall && stall.remaining > 0) {
        stall.remaining -= 1;
        stall.seen += 1;
        return; // never answered
      }
      this.handleResponseUrl(url.pathname, raw, res);
      return;
    }
    const m = /^\/api\/([A-Za-z.]+)$/.exec(url.pathname);
    if (!m?.[1] || (req.method !== 'POST' && req.method !== 'GET')) {
      this.reply(res, { status: 404, body: { ok: false, error: 'unknown_method' } });
      return;
    }
    const method = m[1];
    let args: Record<string, unknown>;
    if (contentType.includes('application/json')) {
      try {
        const parsed = raw === '' ? {} : (JSON.parse(raw) as unknown);
        args = parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
      } catch {
        this.record(method, {}, undefined, contentType, res, slackError('invalid_json'));
        return;
      }
    } else {
      args = {};
      const form = new URLSearchParams(contentType.includes('x-www-form-urlencoded') ? raw : url.search);
      for (const [k, v] of form)
        args[k] = ['blocks', 'attachments', 'metadata'].includes(k) ? parseMaybeJson(v) : v;
    }
    const header = req.headers.authorization;
    const bearer = header?.startsWith('Bearer ') ? header.slice(7) : undefined;
    // JSON bodies must carry the token in the header; form bodies may also send `token`.
    const formToken = contentType.includes('application/json') ? undefined : args.token;
    const token = bearer ?? (typeof formToken === 'string' ? formToken : undefined);
    delete args.token;
    const stall = this.stalls.get(method);
    if (stall && stall.remaining > 0) {
      stall.remaining -= 1;
      stall.seen += 1;
      return; // never answered; close() ends the connection
    }
    const held = this.holds.get(method)?.shift();
    if (held) {
      res.once('close', () => {
        if (!res.writableEnded) held.gone();
      });
      held.arrive();
      await held.gate;
    }
    let answer: Answer;
    const limit = this.rateLimits.get(method);
    // apps.connections.open takes the app-level token; every other method the bot token.
    const expected = method === 'apps.connections.open' ? this.appToken : this.token;
    if (token === undefined) answer = slackError('not_authed');
    else if (token !== expected) answer = slackError('invalid_auth');
    else if (this.tokenError !== undefined && token === this.token) answer = slackError(this.tokenError);
    else if (this.refusals.has(method)) answer = this.refusals.get(method) ?? slackError('fatal_error');
    else if (limit && limit.remaining > 0) {
      limit.remaining -= 1;
      answer = {
        status: 429,
        body: { ok: false, error: 'ratelimited' },
        headers: { 'retry-after': String(limit.retryAfter) },
      };
    } else answer = this.handle(method, args);
    this.record(method, args, token, contentType, res, answer);
  }

  private record(
    method: string,
    args: Record<string, unknown>,
    token: string | undefined,
    contentType: string,
    res: ServerResponse,
    answer: Answer,
  ): void {
    const call: RecordedCall = {
      method,
      args,
      token,
      contentType,
      status: answer.status,
      response: answer.body,
      at: this.clock.now(),
    };
    this.calls.push(call);
    this.reply(res, answer);
    this.emit('call', call);
  }

  private reply(res: ServerResponse, answer: Answer): void {
    const text = JSON.stringify(answer.body);
    res.writeHead(answer.status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      ...answer.headers,
    });
    res.end(text);
  }

  private messageContent(args: Record<string, unknown>): Answer | { text: string; blocks: unknown[] } {
    const text = typeof args.text === 'string' ? args.text : undefined;
    const blocks = args.blocks;
    const attachments = args.attachments;
    if (blocks !== undefined) {
      const problem = blockProblems(blocks);
      if (problem) return slackError('invalid_blocks', { errors: [problem] });
    }
    const hasBlocks = Array.isArray(blocks) && blocks.length > 0;
    if ((text === undefined || text === '') && !hasBlocks && attachments === undefined)
      return slackError('no_text');
    if (text !== undefined && text.length > MAX_TEXT) return slackError('msg_too_long');
    return { text: text ?? '', blocks: Array.isArray(blocks) ? blocks : [] };
  }

  /** The `channel` argument of a method that takes a channel id only (`chat.update`, …). */
  private channelArg(args: Record<string, unknown>): string | Answer {
    const channel = args.channel;
    if (typeof channel !== 'string' || channel === '') return slackError('channel_not_found');
    if (!this.channels.has(channel)) return slackError('channel_not_found');
    return channel;
  }

  /**
   * The `channel` argument of `chat.postMessage`, which Slack documents as "an encoded ID or channel
   * name": a channel id, or the name of a channel the bot is in (`#alerts` or `alerts`), resolved to
   * its id (what Slack answers with, in `channel`).
   */
  private channelOrNameArg(args: Record<string, unknown>): string | Answer {
    const channel = args.channel;
    if (typeof channel === 'string' && !this.channels.has(channel)) {
      const name = channel.startsWith('#') ? channel.slice(1) : channel;
      for (const [id, known] of this.channels) if (name !== '' && known === name) return id;
    }
    return this.channelArg(args);
  }

  private handle(method: string, args: Record<string, unknown>): Answer {
    switch (method) {
      case 'apps.connections.open':
        return {
          status: 200,
          body: { ok: true, url: `ws://127.0.0.1:${this.port}/socket-mode/link?ticket=fake` },
        };
      case 'api.test':
        return { status: 200, body: { ok: true, args } };
      case 'auth.test':
        return {
          status: 200,
          body: {
            ok: true,
            url: `https://fake-${this.teamId.toLowerCase()}.slack.com/`,
            team: 'Fake Team',
            user: 'switchyard',
            team_id: this.teamId,
            user_id: this.botUserId,
            bot_id: this.botId,
            is_enterprise_install: false,
          },
        };
      case 'chat.postMessage': {
        const channel = this.channelOrNameArg(args);
        if (typeof channel !== 'string') return channel;
        const content = this.messageContent(args);
        if ('status' in content) return content;
        const ts = this.nextTs();
        const stored: StoredMessage = {
          channel,
          ts,
          text: content.text,
          blocks: content.blocks,
          user: this.botUserId,
          versions: [{ text: content.text, blocks: content.blocks }],
        };
        this.messages.set(`${channel}/${ts}`, stored);
        return {
          status: 200,
          body: {
            ok: true,
            channel,
            ts,
            message: {
              type: 'message',
              user: this.botUserId,
              bot_id: this.botId,
              text: content.text,
              blocks: content.blocks,
              ts,
            },
          },
        };
      }
      case 'chat.update': {
        const channel = this.channelArg(args);
        if (typeof channel !== 'string') return channel;
        const ts = args.ts;
        if (typeof ts !== 'string' || ts === '') return slackError('message_not_found');
        const existing = this.messages.get(`${channel}/${ts}`);
        if (!existing) return slackError('message_not_found');
        if (existing.user !== this.botUserId) return slackError('cant_update_message');
        const content = this.messageContent(args);
        if ('status' in content) return content;
        this.messages.set(`${channel}/${ts}`, {
          ...existing,
          text: content.text,
          blocks: content.blocks,
          versions: [...existing.versions, { text: content.text, blocks: content.blocks }],
        });
        return {
          status: 200,
          body: {
            ok: true,
            channel,
            ts,
            text: content.text,
            message: { text: content.text, blocks: content.blocks },
          },
        };
      }
      case 'chat.postEphemeral': {
        const channel = this.channelArg(args);
        if (typeof channel !== 'string') return channel;
        if (typeof args.user !== 'string' || args.user === '') return slackError('user_not_in_channel');
        const content = this.messageContent(args);
        if ('status' in content) return content;
        return { status: 200, body: { ok: true, message_ts: this.nextTs() } };
      }
      case 'usergroups.users.list': {
        const group = args.usergroup;
        if (typeof group !== 'string' || group === '') return slackError('invalid_arguments');
        const members = this.usergroups.get(group);
        if (!members) return slackError('no_such_subteam');
        return { status: 200, body: { ok: true, users: [...members] } };
      }
      case 'users.info': {
        const id = args.user;
        const user = typeof id === 'string' ? this.users.get(id) : undefined;
        if (typeof id !== 'string' || !user) return slackError('user_not_found');
        return {
          status: 200,
          body: {
            ok: true,
            user: {
              id,
              team_id: this.teamId,
              name: user.name,
              real_name: user.realName ?? user.name,
              profile: { display_name: user.name, real_name: user.realName ?? user.name },
              is_bot: false,
            },
          },
        };
      }
      case 'conversations.info': {
        const channel = this.channelArg(args);
        if (typeof channel !== 'string') return channel;
        return {
          status: 200,
          body: {
            ok: true,
            channel: {
              id: channel,
              name: this.channels.get(channel),
              is_channel: true,
              is_private: this.privateChannels.has(channel),
              is_member: true,
            },
          },
        };
      }
      default:
        return slackError('unknown_method');
    }
  }

  private handleResponseUrl(pathname: string, raw: string, res: ServerResponse): void {
    const id = pathname.split('/')[3] ?? '';
    const state = this.responseUrls.get(id);
    let body: Record<string, unknown> = {};
    try {
      const parsed = JSON.parse(raw) as unknown;
      if (parsed !== null && typeof parsed === 'object') body = parsed as Record<string, unknown>;
    } catch {
      body = {};
    }
    const done = (status: number, error?: string) => {
      const r: RecordedResponse = {
        id,
        body,
        status,
        ...(error === undefined ? {} : { error }),
        at: this.clock.now(),
      };
      this.responses.push(r);
      this.reply(res, { status, body: error === undefined ? { ok: true } : { ok: false, error } });
      this.emit('response', r);
    };
    if (!state) {
      done(404, 'invalid_url');
      return;
    }
    if (this.clock.now() - state.createdAt > RESPONSE_URL_TTL_MS) {
      done(404, 'expired_url');
      return;
    }
    if (state.uses >= RESPONSE_URL_USES) {
      done(404, 'used_url');
      return;
    }
    const content = this.messageContent(body);
    if ('status' in content && !body.delete_original) {
      done(400, typeof content.body.error === 'string' ? content.body.error : 'invalid_payload');
      return;
    }
    state.uses += 1;
    const key = state.messageTs === undefined ? undefined : `${state.channel}/${state.messageTs}`;
    const existing = key === undefined ? undefined : this.messages.get(key);
    if (key !== undefined && existing && body.delete_original === true) this.messages.delete(key);
    else if (key !== undefined && existing && body.replace_original === true && !('status' in content)) {
      this.messages.set(key, {
        ...existing,
        text: content.text,
        blocks: content.blocks,
        versions: [...existing.versions, { text: content.text, blocks: content.blocks }],
      });
    }
    done(200);
  }
}
