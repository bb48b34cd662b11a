/**
 * The network behaviour every remote platform adapter shares (Unkey, Vercel): one JSON request with a
 * timeout on every attempt (an AbortSignal driven by the injected Clock), retries with exponential
 * backoff and jitter on 408, 429 and 5xx honouring `Retry-After` (or what the platform says instead),
 * reads also retried after a timeout (theirs or ours) or a network error, no retry on other 4xx, a
 * write re-sent only after a 429 (a 408 or 5xx is thrown retryable: the caller re-reads state first),
 * every 2xx answer parsed with zod at the edge (a mismatch names the field), and every failure a
 * PlatformHttpError naming status, method, URL and the platform's error code. The secret (token, root
 * key) and a URL's credentials never appear in an error or a log. The adapters' clients
 * (unkey/client.ts, vercel/client.ts) add their URLs, headers and error body.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { z } from 'zod';
import { type Clock, systemClock } from '../clock.js';
import { PlatformHttpError } from '../errors.js';
import { type Logger, maskCredentials, silentLogger } from '../log.js';

/** Tunables of the retry and timeout behaviour. */
export interface HttpTuning {
  /** Per-attempt timeout (ms). */
  readonly timeoutMs: number;
  /** Retries after the first attempt for 408/429/5xx (and, for reads, timeouts and network errors). */
  readonly maxRetries: number;
  /** First backoff delay (ms); doubles per attempt, capped by `maxDelayMs`, with jitter. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** A `Retry-After` longer than this is not waited for: the error is thrown (retry=true) instead. */
  readonly maxRetryAfterMs: number;
}

/** Defaults of the tunables (both adapters use them). */
export const httpTuningDefaults = {
  timeoutMs: 10_000,
  maxRetries: 3,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  maxRetryAfterMs: 60_000,
} as const satisfies HttpTuning;

/** One answer as received: status, body text and the headers retries look at. */
export interface HttpAnswer {
  readonly status: number;
  readonly text: string;
  readonly headers: Headers;
}

/** What a platform client's caller may tune (the rest comes from the platform's client). */
export interface HttpClientOptions extends Partial<HttpTuning> {
  readonly fetch?: typeof fetch;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Source of jitter in [0, 1). */
  readonly random?: () => number;
}

/** What a platform adds to the shared behaviour. */
export interface JsonHttpClientOptions extends HttpClientOptions {
  /** Log prefix and name of the platform (`unkey`, `vercel`). */
  readonly platform: string;
  /** The credential: sent by `headers`, removed from every error and log line. */
  readonly secret: string;
  /** Request headers (authorization, accept); `content-type` is added when there is a body. */
  readonly headers: Readonly<Record<string, string>>;
  /** The platform's error code and a human detail from a non-2xx answer (already redacted). */
  readonly describeError: (status: number, text: string) => { code: string | undefined; detail: string };
  /** How long the platform asks to wait before a retry; default: `Retry-After`. */
  readonly retryAfter?: (answer: HttpAnswer, now: number) => number | undefined;
  /** Whether an empty 2xx body is `undefined` for the schema (else it is "not JSON"). */
  readonly emptyBodyIsUndefined?: boolean;
}

/** One request of `JsonHttpClient.request`. */
export interface JsonRequest {
  readonly method: string;
  readonly url: string;
  /** The JSON body, already serialized. */
  readonly body?: string;
  /**
   * True for reads: a timeout or network error is retried too. Writes (rollback, promote) retry only
   * answers that prove the request was not acted on (429) or that the platform failed (5xx); after a
   * timeout the outcome is unknown, so the caller re-reads state instead of sending it again.
   */
  readonly idempotent: boolean;
  /** Fields that name the request in the retry log line (e.g. `{ endpoint }` or `{ method, path }`). */
  readonly logFields: Readonly<Record<string, string>>;
}

/** Parses `Retry-After` (delta seconds or an HTTP date) into ms from `now`; undefined when absent/invalid. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/**
 * Requests made inside `quietRetries` log their retries at debug instead of warn. Their caller says
 * itself when its requests fail and recover (the snapshot poller, src/platform/snapshot-poller.ts),
 * where a warning per retry would repeat an outage on every poll tick. Everything else (a switch's
 * calls and reads, a command's reads, `/readyz`) keeps its retries at warn.
 */
const quiet = new AsyncLocalStorage<true>();

/** Runs `work` with the retries of its platform requests logged at debug (see `quiet`). */
export function quietRetries<T>(work: () => Promise<T>): Promise<T> {
  return quiet.run(true, work);
}

class TimeoutSignal extends Error {
  override readonly name = 'TimeoutSignal';
}

/** JSON over HTTP with the shared timeout, retry, parsing and redaction behaviour (see the header). */
export class JsonHttpClient {
  readonly tuning: HttpTuning;
  private readonly fetchImpl: typeof fetch;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly random: () => number;

  constructor(private readonly options: JsonHttpClientOptions) {
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.random = options.random ?? Math.random;
    this.tuning = {
      timeoutMs: options.timeoutMs ?? httpTuningDefaults.timeoutMs,
      maxRetries: options.maxRetries ?? httpTuningDefaults.maxRetries,
      baseDelayMs: options.baseDelayMs ?? httpTuningDefaults.baseDelayMs,
      maxDelayMs: options.maxDelayMs ?? httpTuningDefaults.maxDelayMs,
      maxRetryAfterMs: options.maxRetryAfterMs ?? httpTuningDefaults.maxRetryAfterMs,
    };
  }

  /**
   * Sends `request`, retrying as the header says, and parses a 2xx answer with `schema`. Throws
   * PlatformHttpError for every failure: the platform's error answers (with its code), timeouts
   * (`platform_timeout`), network errors (`platform_unavailable`) and answers that do not match the
   * schema (`invalid_response`, naming the field).
   */
  async request<S extends z.ZodType>(request: JsonRequest, schema: S): Promise<z.infer<S>> {
    const { method, url } = request;
    for (let attempt = 0; ; attempt++) {
      const canRetry = attempt < this.tuning.maxRetries;
      let answer: HttpAnswer;
      try {
        answer = await this.attempt(method, url, request.body);
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
          await this.backoff(request, attempt, undefined, error.message);
          continue;
        }
        throw error;
      }
      const { status, text } = answer;
      if (status >= 200 && status < 300) return this.parse(method, url, status, text, schema);

      const { code, detail } = this.options.describeError(status, text);
      // 408 Request Timeout is a timeout on the platform's side: as retryable as one of ours.
      const retryable = status === 408 || status === 429 || status >= 500;
      const now = this.clock.now();
      const retryAfterMs = this.options.retryAfter
        ? this.options.retryAfter(answer, now)
        : parseRetryAfter(answer.headers.get('retry-after'), now);
      const error = new PlatformHttpError(status, method, url, code, detail, {
        retry: retryable,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      });
      // A write is sent again only after a 429 (refused unprocessed). After a 5xx or a 408 its outcome
      // is unknown — the platform (or a proxy in front of it) may have started the switch and failed or
      // timed out afterwards — so it is not re-sent: the caller re-reads the platform first (the switch
      // job's retry does, under the lock).
      const resend = request.idempotent || status === 429;
      if (!retryable || !canRetry || !resend) throw error;
      if (retryAfterMs !== undefined && retryAfterMs > this.tuning.maxRetryAfterMs) throw error;
      await this.backoff(request, attempt, retryAfterMs, error.message);
    }
  }

  /**
   * Removes the secret (and anything that looks like one, and the credentials of a URL: fetch's own
   * error quotes the URL it refused) from text bound for errors and logs.
   */
  redact(text: string): string {
    const secret = this.options.secret;
    return maskCredentials(secret.length > 0 ? text.split(secret).join('[redacted]') : text);
  }

  /** One HTTP exchange with its own timeout; resolves with the status, the headers and the whole body. */
  private async attempt(method: string, url: string, body: string | undefined): Promise<HttpAnswer> {
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
          ...this.options.headers,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body }),
        signal: request.signal,
      });
      const text = await res.text();
      return { status: res.status, text, headers: res.headers };
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
    request: JsonRequest,
    attempt: number,
    retryAfterMs: number | undefined,
    reason: string,
  ): Promise<void> {
    const exponential = Math.min(this.tuning.maxDelayMs, this.tuning.baseDelayMs * 2 ** attempt);
    // Jitter in [50%, 100%] of the exponential delay spreads replicas that failed together.
    const delayMs = retryAfterMs ?? Math.round(exponential * (0.5 + this.random() / 2));
    const level = quiet.getStore() ? 'debug' : 'warn';
    this.logger[level](
      { ...request.logFields, attempt: attempt + 1, delayMs, reason: this.redact(reason) },
      `${this.options.platform}: retrying`,
    );
    await this.clock.sleep(delayMs);
  }

  private parse<S extends z.ZodType>(
    method: string,
    url: string,
    status: number,
    text: string,
    schema: S,
  ): z.infer<S> {
    let json: unknown;
    if (this.options.emptyBodyIsUndefined && text.trim() === '') json = undefined;
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
}

/** The named keys of `obj` whose values are defined (tuning passed on to a client or an adapter). */
export function pickDefined<T extends object, K extends keyof T>(
  obj: T,
  keys: readonly K[],
): { [P in K]?: Exclude<T[P], undefined> } {
  const out: { [P in K]?: Exclude<T[P], undefined> } = {};
  for (const k of keys) {
    const v = obj[k];
    if (v !== undefined) out[k] = v as Exclude<T[K], undefined>;
  }
  return out;
}

/** Parses an error body as JSON; undefined when it is not JSON. */
export function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The detail of an error answer whose body the platform's schema does not describe: a snippet of it. */
export function rawErrorDetail(status: number, text: string): string {
  const snippet = text.trim().slice(0, 200);
  return snippet === '' ? `HTTP ${status}` : snippet;
}

function describeCause(e: unknown): string {
  if (e instanceof Error) {
    const cause = e.cause instanceof Error ? `: ${e.cause.message}` : '';
    return `${e.message}${cause}`;
  }
  return String(e);
}
