/**
 * The HTTP client of Vercel's REST API (`{baseUrl}/v<n>/…`, bearer token, `teamId` query parameter on
 * every call when a team is configured) and Vercel's error body (`{ error: { code, message } }`), with
 * `X-RateLimit-Reset` as the wait of a 429 that has no `Retry-After`. The network behaviour (timeouts on
 * the injected Clock, retries with backoff and jitter on 429 and 5xx, zod parsing at the edge,
 * PlatformHttpError, the token kept out of errors and logs) is the one every platform shares:
 * src/platform/http-client.ts.
 */
import type { z } from 'zod';
import {
  type HttpAnswer,
  type HttpClientOptions,
  httpTuningDefaults,
  JsonHttpClient,
  jsonOrUndefined,
  parseRetryAfter,
  rawErrorDetail,
} from '../http-client.js';
import { ErrorResponseSchema, INVALID_TOKEN_NOTE } from './schemas.js';

/** Tuning of the client; every field but `baseUrl` and `token` has a default (`vercelClientDefaults`). */
export interface VercelClientOptions extends HttpClientOptions {
  /** API origin, e.g. `https://api.vercel.com` (a trailing slash is ignored). */
  readonly baseUrl: string;
  /** Vercel access token; sent only in the Authorization header. */
  readonly token: string;
  /** Team the project belongs to; sent as `teamId` on every call when set. */
  readonly teamId?: string;
}

/** Defaults of the tunables. */
export const vercelClientDefaults = httpTuningDefaults;

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

/** A small typed client over Vercel's REST API. */
export class VercelClient {
  private readonly baseUrl: string;
  /** The team sent as `teamId`, when one is configured. */
  readonly teamId: string | undefined;
  private readonly http: JsonHttpClient;

  constructor(options: VercelClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.teamId = options.teamId;
    const { baseUrl: _baseUrl, token, teamId: _teamId, ...rest } = options;
    this.http = new JsonHttpClient({
      ...rest,
      platform: 'vercel',
      secret: token,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      describeError: (status, text) => this.describeError(status, text),
      retryAfter: retryAfterOf,
      emptyBodyIsUndefined: true,
    });
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
  call<S extends z.ZodType>(request: VercelRequest, schema: S): Promise<z.infer<S>> {
    return this.http.request(
      {
        method: request.method,
        url: this.url(request.path, request.query),
        ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
        idempotent: request.idempotent,
        logFields: { method: request.method, path: request.path },
      },
      schema,
    );
  }

  /** Vercel's error body: `error.code` and `error.message`. */
  private describeError(status: number, text: string): { code: string | undefined; detail: string } {
    const parsed = ErrorResponseSchema.safeParse(jsonOrUndefined(text));
    if (!parsed.success) return { code: undefined, detail: this.redact(rawErrorDetail(status, text)) };
    const err = parsed.data.error;
    const detail = this.redact(err.message ?? `HTTP ${status}`);
    return { code: err.code, detail: err.invalidToken === true ? `${detail}${INVALID_TOKEN_NOTE}` : detail };
  }

  /** Removes the token (and anything that looks like a secret) from text bound for errors/logs. */
  redact(text: string): string {
    return this.http.redact(text);
  }
}

/** `Retry-After` (seconds or HTTP date), else Vercel's `X-RateLimit-Reset` (Unix seconds) on a 429. */
function retryAfterOf(answer: HttpAnswer, now: number): number | undefined {
  const fromHeader = parseRetryAfter(answer.headers.get('retry-after'), now);
  if (fromHeader !== undefined) return fromHeader;
  const reset = answer.headers.get('x-ratelimit-reset');
  if (answer.status !== 429 || reset === null) return undefined;
  const at = Number(reset.trim());
  if (!Number.isFinite(at) || at <= 0) return undefined;
  return Math.max(0, Math.round(at * 1000 - now));
}
