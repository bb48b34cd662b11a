/**
 * The HTTP client of Unkey's API v2: `POST {baseUrl}/v2/<resource>.<verb>` with a JSON body and the root
 * key as bearer token, and Unkey's error body (`error.type`/`detail`, `meta.requestId`). The network
 * behaviour (timeouts on the injected Clock, retries with backoff and jitter on 429 and 5xx honouring
 * `Retry-After`, zod parsing at the edge, PlatformHttpError, the root key kept out of errors and logs)
 * is the one every platform shares: src/platform/http-client.ts.
 */
import type { z } from 'zod';
import {
  type HttpClientOptions,
  httpTuningDefaults,
  JsonHttpClient,
  jsonOrUndefined,
  rawErrorDetail,
} from '../http-client.js';
import { ErrorResponseSchema, errorCodeFromType } from './schemas.js';

export { parseRetryAfter } from '../http-client.js';

/** Tuning of the client; every field has a default (see `unkeyClientDefaults`). */
export interface UnkeyClientOptions extends HttpClientOptions {
  /** API origin, e.g. `https://api.unkey.com` (a trailing slash is ignored). */
  readonly baseUrl: string;
  /** Unkey root key; sent only in the Authorization header. */
  readonly rootKey: string;
}

/** Defaults of the tunables. */
export const unkeyClientDefaults = httpTuningDefaults;

export interface CallOptions {
  /**
   * True for reads: a timeout or network error is retried too. Writes (rollback, promote) retry only
   * answers that prove the request was not acted on (429) or that Unkey asks to retry (5xx); after a
   * timeout the outcome is unknown, so the caller re-reads state instead of sending it again.
   */
  readonly idempotent: boolean;
}

/** A small typed client over Unkey's API v2. */
export class UnkeyClient {
  private readonly baseUrl: string;
  private readonly http: JsonHttpClient;

  constructor(options: UnkeyClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    const { baseUrl: _baseUrl, rootKey, ...rest } = options;
    this.http = new JsonHttpClient({
      ...rest,
      platform: 'unkey',
      secret: rootKey,
      headers: { authorization: `Bearer ${rootKey}`, accept: 'application/json' },
      describeError: (status, text) => this.describeError(status, text),
    });
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
  call<S extends z.ZodType>(
    endpoint: string,
    body: unknown,
    schema: S,
    options: CallOptions,
  ): Promise<z.infer<S>> {
    return this.http.request(
      {
        method: 'POST',
        url: this.url(endpoint),
        body: JSON.stringify(body),
        idempotent: options.idempotent,
        logFields: { endpoint },
      },
      schema,
    );
  }

  /** Unkey's problem body: `error.type` (→ code), `detail`/`title`, and the request id when given. */
  private describeError(status: number, text: string): { code: string | undefined; detail: string } {
    const parsed = ErrorResponseSchema.safeParse(jsonOrUndefined(text));
    if (!parsed.success) return { code: undefined, detail: this.redact(rawErrorDetail(status, text)) };
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
    return this.http.redact(text);
  }
}
