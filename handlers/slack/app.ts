/**
 * The Slack app: a real `@slack/bolt` App, in HTTP mode with its `HTTPReceiver` mounted on the shared
 * HTTP server at `POST /slack/events` (commands, interactivity and events on one path, Bolt's default),
 * or in Socket Mode when an app-level token is given. It owns what every Slack request goes through
 * before a handler sees it: Bolt's signature check with its 5-minute replay window (forged or replayed
 * requests answer 401 and reach no handler), Events API retry deduplication on `event_id` in Redis
 * (SET NX with a TTL, so any replica dedupes), and error logging. Handlers ack first and do slow work
 * after, so the ack always beats Slack's 3-second deadline.
 */
import { App, HTTPReceiver, LogLevel, type Logger as SlackLogger, SocketModeReceiver } from '@slack/bolt';
import type { WebClient } from '@slack/web-api';
import type { Redis } from 'ioredis';
import { ConfigError } from '../../src/errors.js';
import type { HttpServer } from '../../src/http.js';
import { sendJson } from '../../src/http.js';
import type { Logger } from '../../src/log.js';
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
  readonly redis: Redis;
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
}

/** `fetch` that gives up after `ms` (the caller's own signal still applies). */
export function timedFetch(ms: number): typeof fetch {
  return (input, init) => {
    const timeout = AbortSignal.timeout(ms);
    const signal = init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    return fetch(input, { ...init, signal });
  };
}

/** A built Slack app: the Bolt App, its Web API client, and lifecycle. */
export interface SlackApp {
  readonly app: App;
  readonly client: WebClient;
  readonly mode: 'http' | 'socket';
  /** Connects Socket Mode (HTTP mode is served by the shared server; nothing to start). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

const DEFAULTS = {
  keyPrefix: 'switchyard:',
  eventDedupeTtlSeconds: 3600,
} as const;

/** Adapts pino to Bolt's Logger interface (Bolt logs through it; secrets are redacted by pino). */
export function boltLogger(logger: Logger): SlackLogger {
  const child = logger.child({ component: 'slack-bolt' });
  let level: LogLevel = LogLevel.INFO;
  const text = (msg: unknown[]) => msg.map((m) => (typeof m === 'string' ? m : JSON.stringify(m))).join(' ');
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

/** Checks `SLACK_API_URL`: Bolt joins method names onto it, so it must end with `/api/`. */
export function checkApiUrl(url: string): string {
  if (!/^https?:\/\/.+\/api\/$/.test(url)) {
    throw new ConfigError(`SLACK_API_URL: got ${JSON.stringify(url)}, expected a URL ending with /api/`, {
      key: 'SLACK_API_URL',
    });
  }
  return url;
}

/**
 * Builds the Bolt app, installs the shared middleware, lets `register` add the handlers, and in HTTP
 * mode mounts the receiver on `opts.http` at `POST /slack/events`.
 */
export function createSlackApp(opts: SlackAppOptions, register: (app: App) => void): SlackApp {
  const logger = boltLogger(opts.logger);
  const keyPrefix = opts.keyPrefix ?? DEFAULTS.keyPrefix;
  const ttl = opts.eventDedupeTtlSeconds ?? DEFAULTS.eventDedupeTtlSeconds;
  // Bolt's client and `respond()` (response URLs, through `fetch`) answer commands and clicks: a call
  // that hangs must not hold a handler forever.
  const callTimeoutMs = opts.callTimeoutMs ?? SLACK_CALL_TIMEOUT_MS;
  const clientOptions = {
    timeout: callTimeoutMs,
    fetch: timedFetch(callTimeoutMs),
    retryConfig: SLACK_INTERACTIVE_RETRIES,
    ...(opts.apiUrl === undefined ? {} : { slackApiUrl: checkApiUrl(opts.apiUrl) }),
  };
  let app: App;
  let mode: 'http' | 'socket';
  let receiver: HTTPReceiver | undefined;
  if (opts.appToken !== undefined) {
    mode = 'socket';
    app = new App({
      token: opts.botToken,
      // The receiver's own client opens the connection (apps.connections.open): same API URL.
      receiver: new SocketModeReceiver({
        appToken: opts.appToken,
        logger,
        installerOptions: { clientOptions },
      }),
      clientOptions,
      logger,
    });
  } else {
    if (opts.signingSecret === undefined) {
      throw new ConfigError(
        'SLACK_SIGNING_SECRET: got nothing, expected the app signing secret (or SLACK_APP_TOKEN for Socket Mode)',
        { key: 'SLACK_SIGNING_SECRET' },
      );
    }
    mode = 'http';
    receiver = new HTTPReceiver({
      signingSecret: opts.signingSecret,
      endpoints: SLACK_EVENTS_PATH,
      logger,
      // Acks go out as soon as a handler calls ack(); slow work happens after.
      processBeforeResponse: false,
      // Bolt's own check: HMAC v0 signature and a timestamp within 5 minutes; anything else is 401.
      signatureVerification: true,
    });
    app = new App({ token: opts.botToken, receiver, clientOptions, logger });
  }

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

  if (receiver !== undefined && opts.http !== undefined) {
    const listener = receiver.requestListener;
    opts.http.route('POST', SLACK_EVENTS_PATH, (req, res) => {
      try {
        listener(req, res);
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
    async start() {
      if (mode === 'socket') await app.start();
    },
    async stop() {
      if (mode === 'socket') await app.stop();
    },
  };
}
