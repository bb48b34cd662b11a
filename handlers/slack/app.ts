/**
 * The Slack app: a real `@slack/bolt` App, in HTTP mode with its `HTTPReceiver` mounted on the shared
 * HTTP server at `POST /slack/events` (commands, interactivity and events on one path, Bolt's default),
 * or in Socket Mode when an app-level token is given. It owns what every Slack request goes through
 * before a handler sees it: a body limit (413) and a timestamp window in both directions (401), then
 * Bolt's signature check (forged or stale requests answer 401 and reach no handler; a signature
 * mismatch is logged as a warning naming SLACK_SIGNING_SECRET and where its value is, at most once a
 * minute: see signatureWarnings), replayed commands and clicks answered 200 and dropped, requests from
 * another workspace than the bot token's refused (./guard.ts), Events API retry deduplication on
 * `event_id` in Redis (SET NX with a TTL, so any replica dedupes), and error logging. Handlers ack
 * first and do slow work after, so the ack always beats Slack's 3-second deadline.
 *
 * Start-up against Slack (SlackStartup below): Bolt is built with `deferInitialization`, so its
 * constructor makes no `auth.test` call of its own (one that nobody awaits, whose rejection kills the
 * process, and whose rejected promise Bolt would keep forever). `start()` checks the bot token with
 * `app.init()` and, in Socket Mode, then connects. A token Slack rejects (`invalid_auth`, `not_authed`,
 * `account_inactive`, `token_revoked`, …) stops start-up with a ConfigError naming SLACK_BOT_TOKEN (or
 * SLACK_APP_TOKEN). A Slack that cannot be reached does not: start-up waits a bounded time, then goes on
 * and keeps retrying in the background (backing off); commands and clicks that arrive meanwhile try once
 * more and are otherwise told, only to the person, that Slack's Web API cannot be reached right now;
 * Events API deliveries are then not acknowledged (HTTP 503), so Slack sends them again.
 * In Socket Mode it also reconnects when the connection closes, with the same backoff (the Socket Mode
 * client's own reconnect is off: it can end the process, see SlackStartup.connectionClosed).
 */
import type { ServerResponse } from 'node:http';
import {
  App,
  type AppOptions,
  HTTPModuleFunctions,
  HTTPReceiver,
  LogLevel,
  type ReceiverEvent,
  type ReceiverProcessEventErrorHandlerArgs,
  type Logger as SlackLogger,
  SocketModeReceiver,
  type SocketModeReceiverProcessEventErrorHandlerArgs,
  defaultProcessEventErrorHandler as socketModeProcessEventErrorHandler,
} from '@slack/bolt';
import { ErrorCode, type RetryOptions, type WebClient } from '@slack/web-api';
import { z } from 'zod';
import { type Clock, systemClock, within } from '../../src/clock.js';
import { ConfigError } from '../../src/errors.js';
import type { HttpServer } from '../../src/http.js';
import { BodyTooLargeError, readBody, sendJson } from '../../src/http.js';
import { type Logger, maskCredentials } from '../../src/log.js';
import type { RedisClient } from '../../src/redis.js';
import { type ConnectionStatus, duration, SurfaceConnection } from '../connection.js';
import {
  fromOwnWorkspace,
  OTHER_WORKSPACE_TEXT,
  OUT_OF_WINDOW_LINE,
  originOf,
  outsideWindow,
  ReplayGuard,
  SLACK_BODY_LIMIT_BYTES,
  type SlackWorkspace,
  signedRequestOf,
  tooLargeLine,
  workspaceOf,
} from './guard.js';
import { SLACK_CALL_TIMEOUT_MS, SLACK_INTERACTIVE_RETRIES } from './reporter.js';

/** Bolt's default request path: commands, interactivity and events all arrive here. */
export const SLACK_EVENTS_PATH = '/slack/events';

export interface SlackAppOptions {
  /** `SLACK_BOT_TOKEN` (xoxb-…). */
  readonly botToken: string;
  /** `SLACK_SIGNING_SECRET`; required in HTTP mode. */
  readonly signingSecret?: string;
  /** `SLACK_APP_TOKEN` (xapp-…): Socket Mode instead of HTTP. */
  readonly appToken?: string;
  /** `SLACK_API_URL`: Web API base URL, must end with `/api/` (proxies, tests). */
  readonly apiUrl?: string;
  /** Where the HTTP receiver is mounted (HTTP mode). */
  readonly http?: HttpServer;
  /** Redis for Events API dedupe keys. */
  readonly redis: RedisClient;
  /** Key prefix for dedupe keys (tests use a unique one). */
  readonly keyPrefix?: string;
  /** How long an `event_id` is remembered; Slack retries within minutes. */
  readonly eventDedupeTtlSeconds?: number;
  readonly logger: Logger;
  /** Called when a retried event is dropped (metrics, tests). */
  readonly onDuplicateEvent?: (eventId: string) => void;
  /**
   * How long one call to Slack may take, Web API or response URL (default 10 s; the SDKs have no
   * limit): a Slack that accepts a call and hangs must not hold a handler forever.
   */
  readonly callTimeoutMs?: number;
  /** Start-up and recovery when Slack cannot be reached (defaults: `slackStartupDefaults`). */
  readonly startup?: Partial<SlackStartupOptions>;
  /** Paces the signature-mismatch warning (default: the system clock). */
  readonly clock?: Clock;
  /**
   * What X-Slack-Request-Timestamp is judged against, and how long a request is remembered against
   * replays (default: the system clock; Slack dates its requests by its own).
   */
  readonly requestClock?: Clock;
}

/** How the Slack app comes up when Slack's Web API is slow or unreachable (see the module header). */
export interface SlackStartupOptions {
  /** How long `start()` waits for Slack to accept the bot token before start-up goes on without it. */
  readonly waitMs: number;
  /**
   * How long a command or click that arrives before then waits for one more check before it is
   * answered "cannot reach Slack" (well under Slack's 3-second ack deadline).
   */
  readonly requestWaitMs: number;
  /** First pause between background checks while Slack cannot be reached; doubles up to `retryMaxMs`. */
  readonly retryMinMs: number;
  readonly retryMaxMs: number;
}

/** Defaults (STYLE 6). */
export const slackStartupDefaults: SlackStartupOptions = {
  waitMs: 15_000,
  requestWaitMs: 2_000,
  retryMinMs: 1_000,
  retryMaxMs: 60_000,
};

/**
 * Slack's answers to `auth.test` (bot token) and `apps.connections.open` (app-level token) that mean the
 * token itself is wrong: no retry can help, an operator has to replace it.
 */
export const REJECTED_TOKEN_ERRORS: ReadonlySet<string> = new Set([
  'not_authed',
  'invalid_auth',
  'account_inactive',
  'token_revoked',
  'token_expired',
  'not_allowed_token_type',
]);

/** `fetch` that gives up after `ms` (the caller's own signal still applies). */
export function timedFetch(ms: number): typeof fetch {
  return (input, init) => {
    const timeout = AbortSignal.timeout(ms);
    const signal = init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    return fetch(input, { ...init, signal });
  };
}

/**
 * What the Socket Mode client has in flight with Slack when the app stops is abandoned: `stop()` aborts
 * its `apps.connections.open`, and a retry of it that the client had already scheduled ends without
 * calling Slack; `start()` renews. Left alone, the call would keep its socket until it timed out, be
 * retried after the stop, and an answer arriving late would open a Socket Mode connection for an app
 * that was stopped.
 */
class AbandonOnStop {
  private controller = new AbortController();

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get abandoned(): boolean {
    return this.controller.signal.aborted;
  }

  abandon(): void {
    this.controller.abort();
  }

  renew(): void {
    if (this.abandoned) this.controller = new AbortController();
  }

  /** `fetch` that also gives up once abandoned (the signal is read at each call: retries too). */
  fetch(inner: typeof fetch): typeof fetch {
    return (input, init) => {
      const signal = init?.signal ? AbortSignal.any([init.signal, this.signal]) : this.signal;
      return inner(input, { ...init, signal });
    };
  }

  /**
   * The client's retries, ended once abandoned: the Web API client hands `retryConfig` to p-retry,
   * which stops retrying when `onFailedAttempt` throws (no pause, no later call). A pause already begun
   * at stop() cannot be cancelled: it runs out (2 s at most), then its retry fails at once, unsent.
   */
  retries(base: RetryOptions): RetryOptions {
    const onFailedAttempt = (e: Error) => {
      if (this.abandoned) throw e;
    };
    return Object.assign({ ...base }, { onFailedAttempt });
  }

  /** Bolt's logger, with the client's lines about a call abandoned by stop() sent to debug. */
  logger(bolt: SlackLogger): SlackLogger {
    return {
      debug: (...msg: unknown[]) => bolt.debug(...msg),
      info: (...msg: unknown[]) => bolt.info(...msg),
      warn: (...msg: unknown[]) => (this.abandoned ? bolt.debug(...msg) : bolt.warn(...msg)),
      error: (...msg: unknown[]) => (this.abandoned ? bolt.debug(...msg) : bolt.error(...msg)),
      setLevel: (l: LogLevel) => bolt.setLevel(l),
      getLevel: () => bolt.getLevel(),
      setName: (name: string) => bolt.setName(name),
    };
  }
}

/** A built Slack app: the Bolt App, its Web API client, and lifecycle. */
export interface SlackApp {
  readonly app: App;
  readonly client: WebClient;
  readonly mode: 'http' | 'socket';
  /**
   * Checks the bot token with Slack (and connects, in Socket Mode). Rejects with a ConfigError when
   * Slack rejects a token; when Slack cannot be reached it resolves after `startup.waitMs` at most and
   * keeps retrying in the background.
   */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Where start-up against Slack stands (for logs, readiness checks and tests). */
  status(): SlackStartupStatus;
  /** Resolves once the bot token is accepted (and, in Socket Mode, the connection is up). */
  ready(): Promise<void>;
}

/** `ready`: serving; `waiting`: Slack not reached yet (`problem` says why); `rejected`: bad token. */
export type SlackStartupStatus = ConnectionStatus;

const DEFAULTS = {
  keyPrefix: 'switchyard:',
  eventDedupeTtlSeconds: 3600,
} as const;

/**
 * Adapts pino to Bolt's Logger interface. Bolt and its clients log free text (a failed call's URL,
 * a request they could not send): pino's redaction sees only fields, so each line has the credentials
 * of any URL in it masked and tokens scrubbed here (`maskCredentials`).
 */
export function boltLogger(logger: Logger): SlackLogger {
  const child = logger.child({ component: 'slack-bolt' });
  let level: LogLevel = LogLevel.INFO;
  const text = (msg: unknown[]) =>
    maskCredentials(msg.map((m) => (typeof m === 'string' ? m : JSON.stringify(m))).join(' '));
  return {
    debug: (...msg: unknown[]) => child.debug(text(msg)),
    info: (...msg: unknown[]) => child.info(text(msg)),
    warn: (...msg: unknown[]) => child.warn(text(msg)),
    error: (...msg: unknown[]) => child.error(text(msg)),
    setLevel: (l: LogLevel) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => {},
  };
}

/**
 * The configuration error of a token Slack rejected (`invalid_auth`, `token_revoked`, …): names the
 * variable and where its right value is. The bot's start-up and `npm run worker` say the same.
 */
export function slackTokenRejected(key: 'SLACK_BOT_TOKEN' | 'SLACK_APP_TOKEN', code: string): ConfigError {
  return new ConfigError(
    key === 'SLACK_BOT_TOKEN'
      ? `SLACK_BOT_TOKEN: Slack rejected the bot token (${code}). Copy the Bot User OAuth Token (xoxb-…) from OAuth & Permissions in the Slack app's settings (reinstall the app if the token was revoked).`
      : `SLACK_APP_TOKEN: Slack rejected the app-level token (${code}). Create one under Basic Information → App-Level Tokens with the connections:write scope (xapp-…), or unset SLACK_APP_TOKEN to use HTTP mode.`,
    { key, code },
  );
}

/** How often at most the signature-mismatch warning is logged (a burst of requests gives one line). */
export const SIGNATURE_WARNING_INTERVAL_MS = 60_000;

/** The start of what Bolt's HTTPReceiver logs (warn) for a request that fails its signature check. */
const BOLT_VERIFY_FAILED = 'Failed to parse and verify the request data: ';
const BOLT_VERIFY_PREFIX = 'Failed to verify authenticity: ';

/**
 * The logger handed to the HTTP receiver: Bolt's logger, except that its line for a request whose
 * signature does not match ("signature mismatch": every request Slack sends, when SLACK_SIGNING_SECRET
 * holds a wrong value such as the Client Secret or the Verification Token from the same settings page)
 * becomes a warning naming SLACK_SIGNING_SECRET and where the right value is, at most once per
 * `SIGNATURE_WARNING_INTERVAL_MS` (the next one counts the requests refused meanwhile; in between,
 * Bolt's line goes to debug). Bolt's reason names neither the secret nor the signature, and neither is
 * logged. Other verification failures (a stale timestamp, missing headers) keep Bolt's line.
 */
export function signatureWarnings(bolt: SlackLogger, logger: Logger, clock: Clock): SlackLogger {
  let lastAt = Number.NEGATIVE_INFINITY;
  let since = 0;
  const warn = (...msg: unknown[]) => {
    const [first] = msg;
    const reason =
      typeof first === 'string' && first.startsWith(BOLT_VERIFY_FAILED)
        ? first.slice(BOLT_VERIFY_FAILED.length).replace(BOLT_VERIFY_PREFIX, '')
        : undefined;
    if (reason !== 'signature mismatch') {
      bolt.warn(...msg);
      return;
    }
    const now = clock.now();
    if (now - lastAt < SIGNATURE_WARNING_INTERVAL_MS) {
      since += 1;
      bolt.debug(...msg);
      return;
    }
    const refused = since + 1;
    lastAt = now;
    since = 0;
    logger.warn(
      { key: 'SLACK_SIGNING_SECRET', problem: reason, refused },
      `slack: a request to ${SLACK_EVENTS_PATH} failed Slack's signature check (${reason}) and was refused with 401` +
        `${refused > 1 ? ` (${refused} since the last warning)` : ''}. If Slack sent it, SLACK_SIGNING_SECRET is wrong: ` +
        "copy the Signing Secret from the Slack app's settings, Basic Information → App Credentials → Signing Secret " +
        '(not the Client Secret or the Verification Token), and restart Switchyard. Logged at most once a minute.',
    );
  };
  return {
    debug: (...msg: unknown[]) => bolt.debug(...msg),
    info: (...msg: unknown[]) => bolt.info(...msg),
    warn,
    error: (...msg: unknown[]) => bolt.error(...msg),
    setLevel: (l: LogLevel) => bolt.setLevel(l),
    getLevel: () => bolt.getLevel(),
    setName: (name: string) => bolt.setName(name),
  };
}

/** Checks `SLACK_API_URL`: Bolt joins method names onto it, so it must end with `/api/`. */
export function checkApiUrl(url: string): string {
  if (!/^https?:\/\/.+\/api\/$/.test(url)) {
    throw new ConfigError(`SLACK_API_URL: got ${JSON.stringify(url)}, expected a URL ending with /api/`, {
      key: 'SLACK_API_URL',
    });
  }
  return url;
}

/** Why a call to Slack failed. */
export interface SlackFailure {
  /** `rejected`: the token is wrong; `unavailable`: Slack could not be reached or did not answer. */
  readonly kind: 'rejected' | 'unavailable';
  /** Slack's error code, `http_<status>`, or the network error (ECONNREFUSED, TimeoutError, …). */
  readonly code: string;
}

/** Classifies an error thrown by `@slack/web-api` (Bolt's client, or the Socket Mode client's). */
export function slackFailure(e: unknown): SlackFailure {
  const err = (e ?? {}) as {
    code?: unknown;
    data?: { error?: unknown };
    statusCode?: unknown;
    original?: unknown;
  };
  switch (err.code) {
    case ErrorCode.PlatformError: {
      const code = typeof err.data?.error === 'string' ? err.data.error : 'unknown_error';
      return { kind: REJECTED_TOKEN_ERRORS.has(code) ? 'rejected' : 'unavailable', code };
    }
    case ErrorCode.HTTPError:
      return { kind: 'unavailable', code: `http_${String(err.statusCode)}` };
    case ErrorCode.RateLimitedError:
      return { kind: 'unavailable', code: 'ratelimited' };
    case ErrorCode.RequestError:
      return { kind: 'unavailable', code: networkCode(err.original) };
    default:
      return { kind: 'unavailable', code: e instanceof Error ? e.message : String(e) };
  }
}

function networkCode(original: unknown): string {
  const o = original as
    | { name?: unknown; code?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } }
    | undefined;
  if (typeof o?.cause?.code === 'string') return o.cause.code; // fetch failed: ECONNREFUSED, ENOTFOUND, …
  if (typeof o?.code === 'string') return o.code;
  if (typeof o?.name === 'string' && !['Error', 'TypeError'].includes(o.name)) return o.name; // TimeoutError
  if (typeof o?.cause?.message === 'string') return o.cause.message;
  if (typeof o?.message === 'string') return o.message;
  return 'request_failed';
}

/** The fields of a request answered without handling (not reached Slack yet, another workspace). */
const earlyRequestSchema = z.object({
  command: z.string().optional(),
  type: z.string().optional(),
  response_url: z.url({ protocol: /^https?$/ }).optional(),
});

/**
 * Thrown (instead of an ack) for an Events API delivery that arrives before Slack accepted the bot
 * token: nobody can be told, and a 2xx would drop it for good (a message in a watched alert channel).
 * Unacknowledged, Slack delivers it again (HTTP: answered 503; Socket Mode: no envelope ack).
 */
export class SlackNotReadyError extends Error {
  override readonly name = 'SlackNotReadyError';
}

/** HTTPReceiver's error handler: a 503 for SlackNotReadyError (Slack retries), Bolt's default otherwise. */
async function httpProcessEventError(args: ReceiverProcessEventErrorHandlerArgs): Promise<boolean> {
  if (!(args.error instanceof SlackNotReadyError))
    return HTTPModuleFunctions.defaultProcessEventErrorHandler(args);
  if (!args.response.headersSent) {
    args.response.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
    args.response.end('Switchyard has not reached Slack yet; send this event again\n');
  }
  return true; // answered: Bolt's "not acknowledged within 3 seconds" answer must not follow
}

/** SocketModeReceiver's error handler: SlackNotReadyError stays unacknowledged without an error log. */
async function socketProcessEventError(
  args: SocketModeReceiverProcessEventErrorHandlerArgs,
): Promise<boolean> {
  if (args.error instanceof SlackNotReadyError) return false;
  return socketModeProcessEventErrorHandler(args);
}

/**
 * A Bolt App whose `processEvent` (the one door every verified request goes through, whatever the
 * receiver) can be gated: requests that arrive before Slack accepted the bot token are answered by
 * SlackStartup instead of failing Bolt's authorization with an empty ack.
 */
class GatedApp extends App {
  private gate: ((event: ReceiverEvent, handle: () => Promise<void>) => Promise<void>) | undefined;

  setGate(gate: (event: ReceiverEvent, handle: () => Promise<void>) => Promise<void>): void {
    this.gate = gate;
  }

  override async processEvent(event: ReceiverEvent): Promise<void> {
    const gate = this.gate;
    if (gate === undefined) return super.processEvent(event);
    return gate(event, () => super.processEvent(event));
  }
}

/**
 * Brings the Bolt app up against Slack (see the module header): one attempt at a time (`app.init()`,
 * which calls `auth.test`, then in Socket Mode `app.start()`, which opens the connection), retried in
 * the background with backoff while Slack cannot be reached, never throwing into the process. The state,
 * waiters, backoff and retry loop are SurfaceConnection's (../connection.ts); Slack's own steps, messages
 * and request gate are here.
 */
class SlackStartup {
  private readonly conn: SurfaceConnection;
  private initialized = false;
  /** Which token Slack rejected, once it has. */
  private rejectedKey: 'SLACK_BOT_TOKEN' | 'SLACK_APP_TOKEN' | undefined;
  private lastFailureAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly deps: {
      readonly app: App;
      readonly mode: 'http' | 'socket';
      readonly logger: Logger;
      readonly opts: SlackStartupOptions;
      readonly apiUrl: string;
      readonly callTimeoutMs: number;
      /** Socket Mode: the receiver client's calls, abandoned at stop(). */
      readonly abandon: AbandonOnStop;
    },
  ) {
    const { retryMinMs, retryMaxMs } = deps.opts;
    this.conn = new SurfaceConnection({
      retryMinMs,
      retryMaxMs,
      problem: 'no answer yet',
      attempt: () => this.run(),
    });
  }

  status(): SlackStartupStatus {
    return this.conn.status();
  }

  ready(): Promise<void> {
    return this.conn.ready();
  }

  /** `start()` of the SlackApp: bounded wait for the first attempt, then background retries. */
  async start(): Promise<void> {
    this.deps.abandon.renew();
    await this.conn.start(this.deps.opts.waitMs);
    if (this.conn.state === 'waiting') {
      const { problem, attempts } = this.conn;
      this.deps.logger.warn(
        { apiUrl: this.deps.apiUrl, problem, attempts },
        `slack: Switchyard starts without reaching Slack's Web API (${problem}); it keeps trying in the background, and commands and clicks are answered "cannot reach Slack" until it succeeds`,
      );
    }
  }

  async stop(): Promise<void> {
    this.conn.stop();
    this.deps.abandon.abandon();
    if (this.deps.mode === 'socket') await this.deps.app.stop();
  }

  /**
   * Socket Mode: the connection closed (Slack asked for a reconnect, a ping went unanswered, the
   * network dropped). The Socket Mode client's own reconnect is off — when apps.connections.open then
   * fails with a network error it drops the rejection (unhandled: the process ends) and never tries
   * again — so reconnecting is SlackStartup's job, with the same backoff as at start.
   */
  connectionClosed(): void {
    if (this.conn.stopped || this.conn.state !== 'ready') return; // a failing attempt of ours reports itself
    this.conn.lost('connection closed');
    this.deps.logger.warn({ mode: this.deps.mode }, 'slack: Socket Mode connection closed; reconnecting');
    void this.conn.attempt();
  }

  /** Bolt's `processEvent`, gated: handled when ready (after one bounded try), answered otherwise. */
  async gate(event: ReceiverEvent, handle: () => Promise<void>): Promise<void> {
    if (this.conn.state === 'waiting') {
      // Join the running attempt, or try once more unless one just failed (a burst must not hammer Slack).
      const recent = systemClock.now() - this.lastFailureAt < this.deps.opts.retryMinMs;
      if (this.conn.attempting || !recent) {
        await within(systemClock, this.deps.opts.requestWaitMs, this.conn.attempt(), undefined);
      }
    }
    if (this.conn.state === 'ready') {
      await handle();
      return;
    }
    await this.refuse(event);
  }

  /** One attempt (SurfaceConnection runs one at a time); never rejects. */
  private async run(): Promise<void> {
    if (!this.initialized) {
      // auth.test with the bot token (Bolt keeps the bot's user and bot ids for its `ignoreSelf`).
      const failure = await this.step(() => this.deps.app.init());
      if (failure) return this.failed(failure, 'SLACK_BOT_TOKEN');
      this.initialized = true;
    }
    if (this.conn.stopped) {
      // Stopped while auth.test was under way: its late answer must neither connect nor report ready.
      this.deps.logger.debug({ mode: this.deps.mode }, 'slack: stopped during start-up; not going on');
      return;
    }
    if (this.deps.mode === 'socket') {
      // apps.connections.open with the app-level token, then the WebSocket.
      const failure = await this.step(() => this.deps.app.start());
      if (failure) return this.failed(failure, 'SLACK_APP_TOKEN');
      if (this.conn.stopped) {
        await this.deps.app.stop();
        return;
      }
    }
    this.conn.succeeded();
    const { attempts } = this.conn;
    this.deps.logger.info(
      { mode: this.deps.mode, attempts },
      attempts > 1 ? 'slack: reached Slack, the bot token is accepted' : 'slack: bot token accepted',
    );
  }

  private async step(fn: () => Promise<unknown>): Promise<SlackFailure | undefined> {
    try {
      await fn();
      return undefined;
    } catch (e) {
      return slackFailure(e);
    }
  }

  private failed(failure: SlackFailure, key: 'SLACK_BOT_TOKEN' | 'SLACK_APP_TOKEN'): void {
    this.lastFailureAt = systemClock.now();
    if (failure.kind === 'rejected') {
      const error = slackTokenRejected(key, failure.code);
      this.rejectedKey = key;
      this.conn.rejected(failure.code, error);
      this.deps.logger.error({ key, code: failure.code }, error.message);
      return;
    }
    // Schedules the next attempt once start() has run (a request's own try before then does not).
    const retryInMs = this.conn.unavailable(failure.code);
    if (this.conn.stopped) return;
    const what = key === 'SLACK_BOT_TOKEN' ? 'auth.test' : 'apps.connections.open (Socket Mode)';
    this.deps.logger.warn(
      {
        apiUrl: this.deps.apiUrl,
        method: what,
        problem: failure.code,
        attempt: this.conn.attempts,
        retryInMs,
      },
      `slack: cannot reach Slack's Web API (${what}: ${failure.code})${retryInMs === undefined ? '' : `; trying again in ${duration(retryInMs)}`}`,
    );
  }

  /** Answers a request that arrived before Slack accepted the bot token: only its sender sees it. */
  private async refuse(event: ReceiverEvent): Promise<void> {
    const key = this.rejectedKey;
    const { problem, state } = this.conn;
    const text =
      key !== undefined
        ? `Switchyard cannot act on this: Slack rejected its ${key === 'SLACK_BOT_TOKEN' ? 'bot token' : 'app-level token'} (${problem}). An operator has to fix ${key} and restart Switchyard. Nothing was changed.`
        : `Switchyard cannot reach Slack's Web API right now (${problem}), so it cannot act on this. Nothing was changed; try again in a minute.`;
    const body = requestFields(event.body);
    if (body.type === 'event_callback') {
      // An Events API delivery (a message in a watched alert channel): nobody to tell, and acking it
      // would lose it. Not acknowledged, Slack sends it again (at once, after 1 and 5 minutes).
      this.deps.logger.warn(
        { state, problem, retryNum: event.retryNum },
        'slack event not acknowledged: Slack has not accepted the bot token yet; Slack delivers it again',
      );
      throw new SlackNotReadyError(`Slack has not accepted the bot token yet (${problem})`);
    }
    this.deps.logger.warn(
      { state, problem, command: body.command, type: body.type },
      'slack request answered without handling: Slack has not accepted the bot token yet',
    );
    await answerSenderOnly(event, text, {
      ...this.deps,
      failure: 'slack: could not tell the clicker that Slack cannot be reached',
    });
  }
}

/** The fields of a request that an answer without handling needs (see `answerSenderOnly`). */
function requestFields(body: unknown): z.infer<typeof earlyRequestSchema> {
  const parsed = earlyRequestSchema.safeParse(body);
  return parsed.success ? parsed.data : {};
}

/**
 * Acknowledges a request without handling it and tells `text` to the person who sent it, only them: a
 * slash command's ack body is shown to whoever typed it; a click's answer goes through its response
 * URL. An event has nobody to tell.
 */
async function answerSenderOnly(
  event: ReceiverEvent,
  text: string,
  deps: { readonly logger: Logger; readonly callTimeoutMs: number; readonly failure: string },
): Promise<void> {
  const body = requestFields(event.body);
  if (body.command !== undefined) {
    await event.ack({ response_type: 'ephemeral', text });
    return;
  }
  await event.ack();
  if (body.response_url === undefined) return; // nobody to tell
  try {
    const res = await timedFetch(deps.callTimeoutMs)(body.response_url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ response_type: 'ephemeral', replace_original: false, text }),
    });
    await res.body?.cancel();
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  } catch (e) {
    deps.logger.warn({ err: e instanceof Error ? e.message : String(e) }, deps.failure);
  }
}

/**
 * Answers a request whose body was not read, or not all of it (what still comes is read and dropped):
 * the connection is closed after the answer, so the sender cannot keep it to send more.
 */
function refuseUnread(res: ServerResponse, status: 401 | 413): void {
  res.writeHead(status, { connection: 'close', 'content-length': 0 });
  res.end();
}

/**
 * Builds the Bolt app, installs the shared middleware, lets `register` add the handlers, and in HTTP
 * mode mounts the receiver on `opts.http` at `POST /slack/events`.
 */
export function createSlackApp(opts: SlackAppOptions, register: (app: App) => void): SlackApp {
  const logger = boltLogger(opts.logger);
  const clock = opts.clock ?? systemClock;
  const requestClock = opts.requestClock ?? systemClock;
  const keyPrefix = opts.keyPrefix ?? DEFAULTS.keyPrefix;
  const ttl = opts.eventDedupeTtlSeconds ?? DEFAULTS.eventDedupeTtlSeconds;
  // Bolt's client (user-group lookups, the token check) and `respond()` (response URLs, through
  // `fetch`) serve commands and clicks: a call that hangs must not hold a handler forever. Their posts
  // go through a client of their own (SlackHandlerDeps.posts: no wait in a slot, no re-sent post).
  const callTimeoutMs = opts.callTimeoutMs ?? SLACK_CALL_TIMEOUT_MS;
  const clientOptions = {
    timeout: callTimeoutMs,
    fetch: timedFetch(callTimeoutMs),
    retryConfig: SLACK_INTERACTIVE_RETRIES,
    ...(opts.apiUrl === undefined ? {} : { slackApiUrl: checkApiUrl(opts.apiUrl) }),
  };
  // No auth.test in the constructor: SlackStartup runs it (app.init()) where failures are handled.
  const abandon = new AbandonOnStop();
  const common = {
    token: opts.botToken,
    clientOptions,
    logger,
    deferInitialization: true,
  } satisfies AppOptions;
  let app: GatedApp;
  let mode: 'http' | 'socket';
  let receiver: HTTPReceiver | undefined;
  let receiverLogger: SlackLogger | undefined;
  let socketReceiver: SocketModeReceiver | undefined;
  if (opts.appToken !== undefined) {
    mode = 'socket';
    socketReceiver = new SocketModeReceiver({
      appToken: opts.appToken,
      logger: abandon.logger(logger),
      // The receiver's own client opens the connection (apps.connections.open): same API URL, and
      // what it has in flight is abandoned at stop().
      installerOptions: {
        clientOptions: {
          ...clientOptions,
          fetch: abandon.fetch(clientOptions.fetch),
          retryConfig: abandon.retries(clientOptions.retryConfig),
        },
      },
      // SlackStartup reconnects (see connectionClosed): the client's own reconnect can crash the process.
      autoReconnectEnabled: false,
      processEventErrorHandler: socketProcessEventError,
    });
    app = new GatedApp({
      ...common,
      receiver: socketReceiver,
    });
  } else {
    if (opts.signingSecret === undefined) {
      throw new ConfigError(
        'SLACK_SIGNING_SECRET: got nothing, expected the app signing secret (or SLACK_APP_TOKEN for Socket Mode)',
        { key: 'SLACK_SIGNING_SECRET' },
      );
    }
    mode = 'http';
    // Bolt's logger, with a wrong SLACK_SIGNING_SECRET named (rate-limited) on signature mismatches.
    receiverLogger = signatureWarnings(logger, opts.logger, clock);
    receiver = new HTTPReceiver({
      signingSecret: opts.signingSecret,
      endpoints: SLACK_EVENTS_PATH,
      logger: receiverLogger,
      // Acks go out as soon as a handler calls ack(); slow work happens after.
      processBeforeResponse: false,
      // Bolt's own check: HMAC v0 signature and a timestamp no more than 5 minutes old; anything else
      // is 401. The route below refuses a timestamp too far ahead and a body too large before it.
      signatureVerification: true,
      // The route reads the body (up to this limit) before Bolt; said again should Bolt read one.
      bodyLimit: SLACK_BODY_LIMIT_BYTES,
      // The signature and timestamp of each verified request, for the replay check (./guard.ts).
      customPropertiesExtractor: signedRequestOf,
      processEventErrorHandler: httpProcessEventError,
    });
    app = new GatedApp({ ...common, receiver });
  }
  const startup = new SlackStartup({
    app,
    mode,
    logger: opts.logger,
    opts: { ...slackStartupDefaults, ...opts.startup },
    apiUrl: opts.apiUrl ?? 'https://slack.com/api/',
    callTimeoutMs,
    abandon,
  });
  // The workspace of the bot token: Bolt's token check (app.init(): auth.test) keeps only the bot's
  // user and bot ids from Slack's answer, so the answer is read on its way to Bolt as well.
  let workspace: SlackWorkspace | undefined;
  const authTest = app.client.auth.test;
  app.client.auth.test = async (args) => {
    const answer = await authTest(args);
    workspace = workspaceOf(answer);
    if (workspace === undefined)
      opts.logger.error(
        { team: answer.team_id, enterprise: answer.enterprise_id },
        "slack: Slack's auth.test named no workspace for SLACK_BOT_TOKEN, so every command and click is refused as coming from another workspace",
      );
    return answer;
  };
  const replays = new ReplayGuard({ redis: opts.redis, keyPrefix, clock: requestClock });
  // Every request Bolt hands on (verified, over HTTP or Socket Mode) comes through here: a replay is
  // answered 200 and dropped; then the start-up gate; then requests from another workspace are refused.
  app.setGate(async (event, handle) => {
    if (await replays.replayed(event.customProperties, event.body)) {
      const fields = requestFields(event.body);
      opts.logger.warn(
        { command: fields.command, type: fields.type },
        'slack: a signed request Slack had already delivered came again (a replay: Slack never sends a command or click twice); answered 200, nothing done',
      );
      await event.ack();
      return;
    }
    await startup.gate(event, async () => {
      const origin = originOf(event.body);
      if (fromOwnWorkspace(workspace, origin)) {
        await handle();
        return;
      }
      const fields = requestFields(event.body);
      opts.logger.warn(
        {
          teams: origin.teams.join(','),
          enterprise: origin.enterprise,
          workspace: workspace?.teamId,
          command: fields.command,
          type: fields.type,
        },
        "slack: refused a request from another workspace or organization (not the bot token's); nothing was done",
      );
      await answerSenderOnly(event, OTHER_WORKSPACE_TEXT, {
        logger: opts.logger,
        callTimeoutMs,
        failure: 'slack: could not tell the person that requests from their workspace are refused',
      });
    });
  });
  // Emitted when the connection closes (with the client's own reconnect off) and on stop().
  socketReceiver?.client.on('disconnected', () => startup.connectionClosed());

  // Events API retries (X-Slack-Retry-Num) carry the same event_id: act once across all replicas.
  app.use(async ({ body, next }) => {
    const b = body as { type?: unknown; event_id?: unknown };
    if (b.type === 'event_callback' && typeof b.event_id === 'string') {
      const first = await opts.redis.set(`${keyPrefix}slack:event:${b.event_id}`, '1', 'EX', ttl, 'NX');
      if (first === null) {
        opts.logger.debug({ eventId: b.event_id }, 'slack event retry deduplicated');
        opts.onDuplicateEvent?.(b.event_id);
        return;
      }
    }
    await next();
  });

  app.error(async (error) => {
    opts.logger.error({ err: error, code: (error as { code?: unknown }).code }, 'slack handler failed');
  });

  register(app);

  if (receiver !== undefined && receiverLogger !== undefined && opts.http !== undefined) {
    const listener = receiver.requestListener;
    const verifyLog = receiverLogger;
    opts.http.route('POST', SLACK_EVENTS_PATH, async (req, res) => {
      // A timestamp outside the window in either direction: refused as Bolt refuses a stale one.
      if (outsideWindow(req, requestClock.now())) {
        verifyLog.warn(OUT_OF_WINDOW_LINE);
        refuseUnread(res, 401);
        return;
      }
      // Read here, bounded (a declared length over the limit is refused before any of it is read),
      // and handed to Bolt already read: Bolt would take 4 MiB from anyone before the signature check.
      let rawBody: Buffer;
      try {
        rawBody = await readBody(req, SLACK_BODY_LIMIT_BYTES);
      } catch (e) {
        if (!(e instanceof BodyTooLargeError)) {
          // The sender went away before its body was whole: nobody to answer.
          res.destroy();
          return;
        }
        verifyLog.warn(tooLargeLine(e.limit));
        refuseUnread(res, 413);
        return;
      }
      try {
        listener(Object.assign(req, { rawBody }), res);
      } catch {
        // Bolt defers paths it does not own (e.g. a trailing slash) by throwing.
        if (!res.headersSent)
          sendJson(res, 404, { error: 'not_found', message: `no Slack endpoint at ${req.url}` });
      }
    });
  }

  return {
    app,
    client: app.client,
    mode,
    start: () => startup.start(),
    stop: () => startup.stop(),
    status: () => startup.status(),
    ready: () => startup.ready(),
  };
}
