/**
 * The HTTP client of Vercel's REST API (`{baseUrl}/v<n>/…`, bearer token, `teamId` query parameter on
 * every call when a team is configured). Owns the network behaviour: a timeout on every call (an
 * AbortSignal driven by the injected Clock), retries with exponential backoff and jitter on 429 and 5xx
 * honouring `Retry-After` (else `X-RateLimit-Reset`), no retry on other 4xx, every answer parsed with
 * zod at the edge, and errors as PlatformHttpError naming status, method, URL and Vercel's error code.
 * The token never appears in an error or a log.
 */
import type { z } from 'zod';
import { type Clock, systemClock } from '../../clock.js';
import { PlatformHttpError } from '../../errors.js';
import { type Logger, scrub, silentLogger } from '../../log.js';
import { parseRetryAfter } from '../unkey/client.js';
import { ErrorResponseSchema } from './schemas.js';

/** Tuning of the client; every field but `baseUrl` and `token` has a default (`vercelClientDefaults`). */
export interface VercelClientOptions {
  /** API origin, e.g. `https://api.vercel.com` (a trailing slash is ignored). */
  readonly baseUrl: string;
  /** Vercel access token; sent only in the Authorization header. */
  readonly token: string;
  /** Team the project belongs to; sent as `teamId` on every call when set. */
  readonly teamId?: string;
  readonly fetch?: typeof fetch;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Per-attempt timeout (ms). */
  readonly timeoutMs?: number;
  /** Retries after the first attempt for 429/5xx (and, for reads, timeouts and network errors). */
  readonly maxRetries?: number;
  /** First backoff delay (ms); doubles per attempt, capped by `maxDelayMs`, with jitter. */
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  /** A `Retry-After` longer than this is not waited for: the error is thrown (retry=true) instead. */
  readonly maxRetryAfterMs?: number;
  /** Source of jitter in [0, 1). */
  readonly random?: () => number;
}

type Tuning = Required<
  Pick<VercelClientOptions, 'timeoutMs' | 'maxRetries' | 'baseDelayMs' | 'maxDelayMs' | 'maxRetryAfterMs'>
>;

/** Defaults of the tunables. */
export const vercelClientDefaults = {
  timeoutMs: 10_000,
  maxRetries: 3,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  maxRetryAfterMs: 60_000,
} as const satisfies Tuning;

export type HttpMethod = 'GET' | 'POST';

/** One request: method, path below the origin (e.g. `/v9/projects/acme`), query and JSON body. */
export interface VercelRequest {
  readonly method: HttpMethod;
  readonly path: string;
  readonly query?: Readonly<Record<string, string | number | undefined>>;
  readonly body?: unknown;
  /**
   * True for reads: a timeout or network error is retried too. Writes (rollback, promote) retry only
   * answers that prove the request was not acted on (429) or that Vercel failed (5xx); after a timeout
   * the outcome is unknown, so the caller re-reads state instead of sending it again.
   */
  readonly idempotent: boolean;
}

class TimeoutSignal extends Error {
  override readonly name = 'TimeoutSignal';
}

/** A small typed client over Vercel's REST API. */
export class VercelClient {
  private readonly baseUrl: string;
  private readonly token: string;
  /** The team sent as `teamId`, when one is configured. */
  readonly teamId: string | undefined;
  private readonly fetchImpl: typeof fetch;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly random: () => number;
  private readonly tuning: Tuning;

  constructor(options: VercelClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.token = options.token;
    this.teamId = options.teamId;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.random = options.random ?? Math.random;
    this.tuning = {
      timeoutMs: options.timeoutMs ?? vercelClientDefaults.timeoutMs,
      maxRetries: options.maxRetries ?? vercelClientDefaults.maxRetries,
      baseDelayMs: options.baseDelayMs ?? vercelClientDefaults.baseDelayMs,
      maxDelayMs: options.maxDelayMs ?? vercelClientDefaults.maxDelayMs,
      maxRetryAfterMs: options.maxRetryAfterMs ?? vercelClientDefaults.maxRetryAfterMs,
    };
  }

  /** Full URL of a request, with `teamId` appended when a team is configured. */
  url(path: string, query: VercelRequest['query'] = {}): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    if (this.teamId !== undefined) params.set('teamId', this.teamId);
    const qs = params.toString();
    return `${this.baseUrl}${path}${qs === '' ? '' : `?${qs}`}`;
  }

  /**
   * Sends `request` and parses a 2xx answer with `schema` (an empty body parses as `undefined`).
   * Throws PlatformHttpError for every failure: Vercel's error answers (with its code), timeouts
   * (`platform_timeout`), network errors (`platform_unavailable`) and answers that do not match the
   * schema (`invalid_response`, naming the field).
   */
  async call<S extends z.ZodType>(request: VercelRequest, schema: S): Promise<z.infer<S>> {
    const url = this.url(request.path, request.query);
    const { method } = request;
    const payload = request.body === undefined ? undefined : JSON.stringify(request.body);
    for (let attempt = 0; ; attempt++) {
      const canRetry = attempt < this.tuning.maxRetries;
      let answer: Awaited<ReturnType<VercelClient['attempt']>>;
      try {
        answer = await this.attempt(method, url, payload);
      } catch (e) {
        const error =
          e instanceof TimeoutSignal
            ? new PlatformHttpError(
                0,
                method,
                url,
                'timeout',
                `no answer within ${this.tuning.timeoutMs} ms`,
                {
                  retry: true,
                  code: 'platform_timeout',
                },
              )
            : new PlatformHttpError(0, method, url, 'network_error', this.redact(describeCause(e)), {
                retry: true,
                code: 'platform_unavailable',
              });
        if (request.idempotent && canRetry) {
          await this.backoff(method, request.path, attempt, undefined, error.message);
          continue;
        }
        throw error;
      }
      const { status, text } = answer;
      if (status >= 200 && status < 300) return this.parse(method, url, status, text, schema);

      const { code, detail } = this.describeError(status, text);
      const retryable = status === 429 || status >= 500;
      const retryAfterMs = this.retryAfterOf(answer);
      const error = new PlatformHttpError(status, method, url, code, detail, {
        retry: retryable,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      });
      if (!retryable || !canRetry) throw error;
      if (retryAfterMs !== undefined && retryAfterMs > this.tuning.maxRetryAfterMs) throw error;
      await this.backoff(method, request.path, attempt, retryAfterMs, error.message);
    }
  }

  /** `Retry-After` (seconds or HTTP date), else Vercel's `X-RateLimit-Reset` (Unix seconds) on a 429. */
  private retryAfterOf(answer: { status: number; retryAfter: string | null; rateLimitReset: string | null }) {
    const now = this.clock.now();
    const fromHeader = parseRetryAfter(answer.retryAfter, now);
    if (fromHeader !== undefined) return fromHeader;
    if (answer.status !== 429 || answer.rateLimitReset === null) return undefined;
    const reset = Number(answer.rateLimitReset.trim());
    if (!Number.isFinite(reset) || reset <= 0) return undefined;
    return Math.max(0, Math.round(reset * 1000 - now));
  }

  /** One HTTP exchange with its own timeout; resolves with the status, headers and the whole body. */
  private async attempt(
    method: HttpMethod,
    url: string,
    payload: string | undefined,
  ): Promise<{ status: number; text: string; retryAfter: string | null; rateLimitReset: string | null }> {
    const request = new AbortController();
    const timer = new AbortController();
    const timeout = this.clock.sleep(this.tuning.timeoutMs, timer.signal).then(
      () => request.abort(new TimeoutSignal('timeout')),
      () => undefined,
    );
    try {
      const res = await this.fetchImpl(url, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          accept: 'application/json',
          ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(payload === undefined ? {} : { body: payload }),
        signal: request.signal,
      });
      const text = await res.text();
      return {
        status: res.status,
        text,
        retryAfter: res.headers.get('retry-after'),
        rateLimitReset: res.headers.get('x-ratelimit-reset'),
      };
    } catch (e) {
      if (request.signal.aborted && request.signal.reason instanceof TimeoutSignal) {
        throw request.signal.reason;
      }
      throw e;
    } finally {
      timer.abort();
      await timeout;
    }
  }

  private async backoff(
    method: HttpMethod,
    path: string,
    attempt: number,
    retryAfterMs: number | undefined,
    reason: string,
  ): Promise<void> {
    const exponential = Math.min(this.tuning.maxDelayMs, this.tuning.baseDelayMs * 2 ** attempt);
    // Jitter in [50%, 100%] of the exponential delay spreads replicas that failed together.
    const delayMs = retryAfterMs ?? Math.round(exponential * (0.5 + this.random() / 2));
    this.logger.warn(
      { method, path, attempt: attempt + 1, delayMs, reason: this.redact(reason) },
      'vercel: retrying',
    );
    await this.clock.sleep(delayMs);
  }

  private parse<S extends z.ZodType>(
    method: HttpMethod,
    url: string,
    status: number,
    text: string,
    schema: S,
  ): z.infer<S> {
    let json: unknown;
    if (text.trim() === '') json = undefined;
    else {
      try {
        json = JSON.parse(text);
      } catch {
        throw new PlatformHttpError(status, method, url, 'invalid_response', 'response body is not JSON', {
          retry: false,
        });
      }
    }
    const result = schema.safeParse(json);
    if (!result.success) {
      const issue = result.error.issues[0];
      const field = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : '(body)';
      throw new PlatformHttpError(
        status,
        method,
        url,
        'invalid_response',
        `response field ${field}: ${issue?.message ?? 'does not match the documented schema'}`,
        { retry: false },
      );
    }
    return result.data;
  }

  private describeError(status: number, text: string): { code: string | undefined; detail: string } {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const parsed = ErrorResponseSchema.safeParse(json);
    if (!parsed.success) {
      const snippet = text.trim().slice(0, 200);
      return { code: undefined, detail: this.redact(snippet === '' ? `HTTP ${status}` : snippet) };
    }
    const err = parsed.data.error;
    return { code: err.code, detail: this.redact(err.message ?? `HTTP ${status}`) };
  }

  /** Removes the token (and anything that looks like a secret) from text bound for errors/logs. */
  redact(text: string): string {
    const withoutToken = this.token.length > 0 ? text.split(this.token).join('[redacted]') : text;
    return scrub(withoutToken);
  }
}

function describeCause(e: unknown): string {
  if (e instanceof Error) {
    const cause = e.cause instanceof Error ? `: ${e.cause.message}` : '';
    return `${e.message}${cause}`;
  }
  return String(e);
}
