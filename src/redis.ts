/**
 * Redis connection options from a URL (`redis://`, `rediss://`, `unix:///path`, or a bare socket path).
 * Every BullMQ connection must use `maxRetriesPerRequest: null` (workers block on Redis).
 */
import { Redis, type RedisOptions } from 'ioredis';

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

/** A new ioredis client for `url`, safe for BullMQ workers and queues. */
export function createRedis(url: string, extra: RedisOptions = {}): Redis {
  return new Redis({ ...redisOptions(url), ...extra });
}
