/**
 * The one small family of fault errors (STYLE 1). Each carries a stable `code`, whether retrying may
 * help (`retry`) and a typed `context`. Refusals (a rule's "no") are values in src/domain/result.ts; when
 * a refusal must travel as an exception (inside a job), it becomes a `RefusalError` with retry=false.
 * Match on `code`/`name`, not only `instanceof`: these cross process boundaries as job failure reasons.
 */
import type { Refusal, RefusalCode } from './domain/result.js';
import { maskCredentials } from './log.js';

export type ErrorCode =
  | RefusalCode
  | 'config_invalid'
  | 'platform_http'
  | 'platform_timeout'
  | 'platform_unavailable'
  | 'verify_timeout'
  /** The platform accepted a switch and then reported that it failed. */
  | 'platform_operation_failed'
  /** A worker lost its environment lock mid-switch (Redis unreachable or lock expired). */
  | 'lock_lost'
  /** Redis could not be reached (or did not answer in time): nothing was done. */
  | 'redis_unavailable'
  | 'internal';

export class SwitchyardError extends Error {
  override readonly name: string = 'SwitchyardError';
  readonly code: ErrorCode;
  readonly retry: boolean;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { retry?: boolean; context?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.retry = opts.retry ?? false;
    this.context = opts.context ?? {};
  }
}

/** A refusal carried as an exception (never retried). */
export class RefusalError extends SwitchyardError {
  override readonly name = 'RefusalError';
  constructor(readonly refusal: Refusal) {
    super(refusal.code, refusal.message, { retry: false, context: { ...refusal.context } });
  }
}

/** A bad env var, config file entry or other operator input; stops start-up. */
export class ConfigError extends SwitchyardError {
  override readonly name = 'ConfigError';
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('config_invalid', message, { retry: false, context });
  }
}

/**
 * An HTTP call to a platform failed. The message names the request (STYLE 4):
 * `PlatformHttpError[deployment_not_found] 404 POST https://…/v2/deployments.getDeployment: …`.
 * Credentials in the URL or the detail (a proxy's `user:password@`, a network error quoting the URL)
 * are masked, in the message and in `url`: the error reaches logs, chat messages and `/readyz`.
 */
export class PlatformHttpError extends SwitchyardError {
  override readonly name = 'PlatformHttpError';
  /** The request's URL, its credentials masked. */
  readonly url: string;
  constructor(
    readonly status: number,
    readonly method: string,
    url: string,
    readonly platformCode: string | undefined,
    detail: string,
    opts: { retry?: boolean; retryAfterMs?: number; code?: ErrorCode } = {},
  ) {
    const shown = maskCredentials(url);
    super(
      opts.code ?? 'platform_http',
      `PlatformHttpError[${platformCode ?? status}] ${status} ${method} ${shown}: ${maskCredentials(detail)}`,
      {
        retry: opts.retry ?? (status === 429 || status >= 500),
        context: { status, method, url: shown, platformCode, retryAfterMs: opts.retryAfterMs },
      },
    );
    this.url = shown;
  }
}

/** Wraps anything thrown into a SwitchyardError once, at the edge. */
export function asSwitchyardError(e: unknown): SwitchyardError {
  if (e instanceof SwitchyardError) return e;
  const unreachable = redisUnavailable(e);
  if (unreachable) return unreachable;
  if (e instanceof Error) return new SwitchyardError('internal', e.message, { retry: false, cause: e });
  return new SwitchyardError('internal', String(e), { retry: false });
}

/** True when `e` looks like a Switchyard error with this code, even after crossing a process boundary. */
export function hasCode(e: unknown, code: ErrorCode): boolean {
  return typeof e === 'object' && e !== null && 'code' in e && (e as { code: unknown }).code === code;
}

/**
 * What ioredis rejects a command with when Redis cannot be reached or did not answer in time. Only
 * ioredis's own messages: a socket error such as ECONNREFUSED may come from the deploy platform's API.
 */
const REDIS_UNREACHABLE = [
  /^Stream isn't writeable and enableOfflineQueue options is false/,
  /^Connection is closed\.?$/,
  /^Command timed out$/,
  /^Reached the max retries per request limit/,
  // A Redis Cluster: not connected (yet, or any more), or down (a slot without a master); never run.
  /^Cluster isn't ready and enableOfflineQueue options is false/,
  /^CLUSTERDOWN /,
];

/**
 * The error as a retryable `redis_unavailable` SwitchyardError when it says Redis could not be reached
 * or did not answer in time (src/redis.ts `createRequestRedis` fails this way while Redis is down);
 * undefined for anything else (a Redis reply error, a bug).
 */
export function redisUnavailable(e: unknown): SwitchyardError | undefined {
  if (e instanceof SwitchyardError) return e.code === 'redis_unavailable' ? e : undefined;
  if (!(e instanceof Error)) return undefined;
  if (!REDIS_UNREACHABLE.some((re) => re.test(e.message))) return undefined;
  // The person reading it needs the what, not ioredis's wording (which stays in `cause`, for the logs).
  return new SwitchyardError('redis_unavailable', 'Switchyard cannot reach its Redis right now', {
    retry: true,
    cause: e,
  });
}

/**
 * A chat service's refusal that no retry can change (ChatPoster.retryable said so): the bot is not in
 * the channel, the channel or message is gone, the token lacks a scope.
 */
export class PermanentChatError extends Error {
  override readonly name = 'PermanentChatError';
  constructor(override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/** Whether a failure is a refusal no retry can change (see PermanentChatError). */
export function isPermanentChatError(e: unknown): boolean {
  return e instanceof PermanentChatError;
}
