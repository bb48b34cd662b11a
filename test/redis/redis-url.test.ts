/**
 * One Redis from `REDIS_URL` (src/redis-url.ts `parseRedisUrl`, src/redis.ts `redisOptions`): host
 * (IPv6 without its brackets), port, percent-encoded credentials, database; a URL that cannot be used is
 * refused with a RedisUrlError that never carries the URL or its password (the TypeError of `new URL`
 * carries the whole URL as `input`, which a logged `{ err }` printed).
 */
import { describe, expect, it } from 'vitest';
import { redisOptions } from '../../src/redis.js';
import { parseRedisUrl, RedisUrlError } from '../../src/redis-url.js';

describe('parseRedisUrl', () => {
  it('reads host, port, decoded credentials, database and TLS', () => {
    expect(parseRedisUrl('rediss://ops:p%40ss%3Aw@redis.internal:6380/2')).toEqual({
      host: 'redis.internal',
      port: 6380,
      username: 'ops',
      password: 'p@ss:w',
      db: 2,
      tls: true,
    });
    expect(parseRedisUrl('redis://localhost')).toEqual({ host: 'localhost', port: 6379, tls: false });
    expect(parseRedisUrl('unix:///run/redis.sock')).toEqual({ path: '/run/redis.sock' });
    expect(parseRedisUrl('/run/redis.sock')).toEqual({ path: '/run/redis.sock' });
  });

  it('gives an IPv6 host without its brackets (ioredis and node:net look "[::1]" up as a name)', () => {
    expect(parseRedisUrl('redis://[::1]:6379/2')).toMatchObject({ host: '::1', port: 6379, db: 2 });
    expect(redisOptions('redis://[::1]:6379/2')).toMatchObject({ host: '::1', port: 6379, db: 2 });
    expect(redisOptions('redis://[fe80::1]')).toMatchObject({ host: 'fe80::1', port: 6379 });
  });

  it('refuses what it cannot use with an error that holds neither the URL nor the password', () => {
    for (const [url, why] of [
      ['redis://:s3cret-pw@127.0.0.1:abc', /port/],
      ['redis://:s3cret-pw@127.0.0.1:99999', /port/],
      ['redis://:50%s3cret-pw@127.0.0.1:6379', /password is not valid percent-encoding/],
      ['redis://:s3cret-pw@127.0.0.1:6379/db1', /database number/],
      ['redis://:s3cret-pw@/', /no host/],
    ] as const) {
      let error: unknown;
      try {
        redisOptions(url);
      } catch (e) {
        error = e;
      }
      expect(error, url).toBeInstanceOf(RedisUrlError);
      expect((error as Error).message).toMatch(why);
      // Nothing of the error, whatever a logger serialises of it, holds the secret.
      const shown = JSON.stringify({
        ...(error as object),
        message: (error as Error).message,
        stack: (error as Error).stack,
      });
      expect(shown).not.toContain('s3cret-pw');
      expect(Object.keys(error as object)).not.toContain('input');
    }
  });
});
