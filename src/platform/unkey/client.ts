/**
 * The HTTP client of Unkey's API v2: `POST {baseUrl}/v2/<resource>.<verb>` with a JSON body and the root
 * key as bearer token. Owns the network behaviour: a timeout on every call (AbortSignal driven by the
 * injected Clock), retries with exponential backoff and jitter on 429 and 5xx honouring `Retry-After`,
 * no retry on 4xx refusals, every answer parsed with zod at the edge, and errors as PlatformHttpError
 * naming status, method, URL and Unkey's error code. The root key never appears in an error or a log.
 */
import type { z } from 'zod';
import { type Clock, systemClock } from '../../clock.js';
import { PlatformHttpError } from '../../errors.js';
import { type Logger, scrub, silentLogger } from '../../log.js';
import { ErrorResponseSchema, errorCodeFromType } from './schemas.js';

/** Tuning of the client; every field has a default (see `unkeyClientDefaults`). */
export interface UnkeyClientOptions {
  /** API origin, e.g. `https://api.unkey.com` (a trailing slash is ignored). */
  readonly baseUrl: string;
  /** Unkey root key; sent only in the Authorization header. */
  readonly rootKey: string;
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

/** Defaults of the tunables. */
export const unkeyClientDefaults = {
  timeoutMs: 10_000,
  maxRetries: 3,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  maxRetryAfterMs: 60_000,
} as const satisfies Required<
  Pick<UnkeyClientOptions, 'timeoutMs' | 'maxRetries' | 'baseDelayMs' | 'maxDelayMs' | 'maxRetryAfterMs'>
>;

export interface CallOptions {
  /**
   * True for reads: a timeout or network error is retried too. Writes (rollback, promote) retry only
   * answers that prove the request was not acted on (429) or that Unkey asks to retry (5xx); after a
   * timeout the outcome is unknown, so the caller re-reads state instead of sending it again.
   */
  readonly idempotent: boolean;
}

const METHOD = 'POST';

/** Parses `Retry-After` (delta seconds or an HTTP date) into ms from `now`; undefined when absent/invalid. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

class TimeoutSignal extends Error {
  override readonly name = 'TimeoutSignal';
}

/** A small typed client over Unkey's API v2. */
export class UnkeyClient {
  private readonly baseUrl: string;
  private readonly rootKey: string;
  private readonly fetchImpl: typeof fetch;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly random: () => number;
  private readonly tuning: Required<
    Pick<UnkeyClientOptions, 'timeoutMs' | 'maxRetries' | 'baseDelayMs' | 'maxDelayMs' | 'maxRetryAfterMs'>
  >;

  constructor(options: UnkeyClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.rootKey = options.rootKey;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.random = options.random ?? Math.random;
    this.tuning = {
      timeoutMs: options.timeoutMs ?? unkeyClientDefaults.timeoutMs,
      maxRetries: options.maxRetries ?? unkeyClientDefaults.maxRetries,
      baseDelayMs: options.baseDelayMs ?? unkeyClientDefaults.baseDelayMs,
      maxDelayMs: options.maxDelayMs ?? unkeyClientDefaults.maxDelayMs,
      maxRetryAfterMs: options.maxRetryAfterMs ?? unkeyClientDefaults.maxRetryAfterMs,
    };
  }

  /** Full URL of an endpoint such as `deployments.getDeployment`. */
  url(endpoint: string): string {
    return `${this.baseUrl}/v2/${endpoint}`;
  }

  /**
   * Calls `endpoint` with `body` and parses a 2xx answer with `schema`. Throws PlatformHttpError for
   * every failure: Unkey's error answers (with its code), timeouts (`platform_timeout`), network errors
   * (`platform_unavailable`) and answers that do not match the schema (`invalid_response`).
   */
  async call<S extends z.ZodType>(
    endpoint: string,
    body: unknown,
    schema: S,
    options: CallOptions,
  ): Promise<z.infer<S>> {
    const url = this.url(endpoint);
    const payload = JSON.stringify(body);
    for (let attempt = 0; ; attempt++) {
      const canRetry = attempt < this.tuning.maxRetries;
      let status: number;
      let text: string;
      let retryAfterHeader: string | null;
      try {
        ({ status, text, retryAfterHeader } = await this.attempt(url, payload));
      } catch (e) {
        const timedOut = e instanceof TimeoutSignal;
        const error = timedOut
          ? new PlatformHttpError(0, METHOD, url, 'timeout', `no answer within ${this.tuning.timeoutMs} ms`, {
              retry: true,
              code: 'platform_timeout',
            })
          : new PlatformHttpError(0, METHOD, url, 'network_error', this.redact(describeCause(e)), {
              retry: true,
              code: 'platform_unavailable',
            });
        if (options.idempotent && canRetry) {
          await this.backoff(endpoint, attempt, undefined, error.message);
          continue;
        }
        throw error;
      }

      if (status >= 200 && status < 300) return this.parse(url, status, text, schema);

      const { code, detail } = this.describeError(status, text);
      const retryable = status === 429 || status >= 500;
      const retryAfterMs = parseRetryAfter(retryAfterHeader, this.clock.now());
      const error = new PlatformHttpError(status, METHOD, url, code, detail, {
        retry: retryable,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      });
      if (!retryable || !canRetry) throw error;
      if (retryAfterMs !== undefined && retryAfterMs > this.tuning.maxRetryAfterMs) throw error;
      await this.backoff(endpoint, attempt, retryAfterMs, error.message);
    }
  }

  /** One HTTP exchange with its own timeout; resolves with the status and the whole body. */
  private async attempt(
    url: string,
    payload: string,
  ): Promise<{ status: number; text: string; retryAfterHeader: string | null }> {
    const request = new AbortController();
    const timer = new AbortController();
    const timeout = this.clock.sleep(this.tuning.timeoutMs, timer.signal).then(
      () => request.abort(new TimeoutSignal('timeout')),
      () => undefined,
    );
    try {
      const res = await this.fetchImpl(url, {
        method: METHOD,
        headers: {
          authorization: `Bearer ${this.rootKey}`,
          'content-type': 'application/json',
          accept: 'application/json',
        },
        body: payload,
        signal: request.signal,
      });
      const text = await res.text();
      return { status: res.status, text, retryAfterHeader: res.headers.get('retry-after') };
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
    endpoint: string,
    attempt: number,
    retryAfterMs: number | undefined,
    reason: string,
  ): Promise<void> {
    const exponential = Math.min(this.tuning.maxDelayMs, this.tuning.baseDelayMs * 2 ** attempt);
    // Jitter in [50%, 100%] of the exponential delay spreads replicas that failed together.
    const delayMs = retryAfterMs ?? Math.round(exponential * (0.5 + this.random() / 2));
    this.logger.warn(
      { endpoint, attempt: attempt + 1, delayMs, reason: this.redact(reason) },
      'unkey: retrying',
    );
    await this.clock.sleep(delayMs);
  }

  private parse<S extends z.ZodType>(url: string, status: number, text: string, schema: S): z.infer<S> {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new PlatformHttpError(status, METHOD, url, 'invalid_response', 'response body is not JSON', {
        retry: false,
      });
    }
    const result = schema.safeParse(json);
    if (!result.success) {
      const issue = result.error.issues[0];
      const field = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : '(body)';
      throw new PlatformHttpError(
        status,
        METHOD,
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
    const requestId = parsed.data.meta?.requestId;
    const detail = err.detail ?? err.title ?? `HTTP ${status}`;
    return {
      code: errorCodeFromType(err.type),
      detail: this.redact(requestId === undefined ? detail : `${detail} (request ${requestId})`),
    };
  }

  /** Removes the root key (and anything that looks like a secret) from text bound for errors/logs. */
  redact(text: string): string {
    const withoutKey = this.rootKey.length > 0 ? text.split(this.rootKey).join('[redacted]') : text;
    return scrub(withoutKey);
  }
}

function describeCause(e: unknown): string {
  if (e instanceof Error) {
    const cause = e.cause instanceof Error ? `: ${e.cause.message}` : '';
    return `${e.message}${cause}`;
  }
  return String(e);
}
