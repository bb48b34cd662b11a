/**
 * Redis connections from a URL (`redis://`, `rediss://`, `unix:///path`, or a bare socket path), of two
 * kinds:
 *   - `createRedis`: patient. Commands sent while Redis is unreachable wait for the reconnection. Every
 *     BullMQ worker connection must be of this kind (`maxRetriesPerRequest: null`), and so is anything
 *     that must not lose a write to a blip: a running switch's lock, progress and audit, notices,
 *     platform pollers.
 *   - `createRequestRedis`: fails fast. For what answers a person or a sender: commands, clicks,
 *     webhooks, `/readyz`. While Redis is unreachable a command fails at once (never queued for later,
 *     never re-sent after a reconnection, so a request refused for it changes nothing later), and one
 *     sent just before an outage fails within `commandTimeout`. `asSwitchyardError` recognises these
 *     failures (src/errors.ts), so callers can say "Redis is unreachable" instead of "internal error".
 */
import { Redis, type RedisOptions } from 'ioredis';
import { systemClock, within } from './clock.js';
import { SwitchyardError } from './errors.js';
import type { Logger } from './log.js';

export function redisOptions(url: string): RedisOptions {
  const base: RedisOptions = { maxRetriesPerRequest: null, enableReadyCheck: true, lazyConnect: false };
  if (url.startsWith('unix://')) return { ...base, path: url.slice('unix://'.length) };
  if (url.startsWith('/')) return { ...base, path: url };
  const u = new URL(url);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined;
  return {
    ...base,
    host: u.hostname,
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db !== undefined && Number.isInteger(db) ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/** A new patient ioredis client for `url`, safe for BullMQ workers and queues. */
export function createRedis(url: string, extra: RedisOptions = {}): Redis {
  return new Redis({ ...redisOptions(url), ...extra });
}

/** How long a request-path command may wait for Redis's answer. */
export const REQUEST_COMMAND_TIMEOUT_MS = 5_000;

/** A new fail-fast ioredis client for request paths (see the module header). */
export function createRequestRedis(url: string, extra: RedisOptions = {}): Redis {
  return createRedis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: REQUEST_COMMAND_TIMEOUT_MS,
    ...extra,
  });
}

/**
 * Resolves once `client` is connected and ready; rejects after `timeoutMs` naming `what` and the last
 * connection error.
 */
export function redisReady(client: Redis, timeoutMs = 10_000, what = 'Redis'): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    let last: Error | undefined;
    const onError = (e: Error) => {
      last = e;
    };
    const done = (err?: Error) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const timer = setTimeout(
      () =>
        done(
          new SwitchyardError(
            'redis_unavailable',
            `${what} did not become ready within ${timeoutMs} ms${last ? `: ${last.message}` : ''}`,
            { retry: true, ...(last ? { cause: last } : {}) },
          ),
        ),
      timeoutMs,
    );
    client.on('ready', onReady);
    client.on('error', onError);
  });
}

/**
 * Logs a connection going down once (not at every reconnection attempt) and its coming back, and keeps
 * ioredis from printing "Unhandled error event" for each attempt.
 */
export function watchRedis(client: Redis, logger: Logger, name = 'redis'): void {
  let down = false;
  client.on('error', (err: Error) => {
    if (down) return;
    down = true;
    logger.warn({ err, connection: name }, 'Redis is unreachable; reconnecting');
  });
  client.on('ready', () => {
    if (!down) return;
    down = false;
    logger.info({ connection: name }, 'Redis is reachable again');
  });
}

/**
 * Whether Redis answers a PING on `client` within `ms`. A status check alone is not enough: a
 * connection whose server just went away may still read `ready` for a moment.
 */
export async function redisAnswers(client: Redis, ms = 500): Promise<boolean> {
  if (client.status !== 'ready') return false;
  const answered = client.ping().then(
    (pong) => pong === 'PONG',
    () => false,
  );
  return within(systemClock, ms, answered, false);
}

/** Closes a connection: QUIT when Redis answers, otherwise drops it at once (never waits for Redis). */
export async function closeRedis(client: Redis | undefined): Promise<void> {
  if (client === undefined || client.status === 'end') return;
  if (!(await redisAnswers(client))) {
    client.disconnect();
    return;
  }
  await client.quit().catch(() => client.disconnect());
}

/** `url` without its password, for messages and logs. */
export function redactRedisUrl(url: string): string {
  if (!/^rediss?:\/\//.test(url)) return url;
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the configured Redis URL';
  }
}
