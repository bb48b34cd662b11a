/**
 * The Redis Cluster contract without a cluster: `REDIS_URL=redis+cluster://…` parsed and validated
 * (errors name the variable and never echo the password), the key namespace rule (hash tag on a cluster
 * only), and the options of the two kinds of cluster connection.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseEnv } from '../../src/config.js';
import { ConfigError, redisUnavailable } from '../../src/errors.js';
import {
  createRedis,
  createRequestRedis,
  isCluster,
  type RedisClient,
  redactRedisUrl,
} from '../../src/redis.js';
import { hashTagOf, isClusterUrl, keyNamespace, parseClusterUrl } from '../../src/redis-url.js';

describe('cluster URLs', () => {
  it('lists seed nodes, with credentials for all of them and TLS with rediss+cluster://', () => {
    expect(parseClusterUrl('redis+cluster://10.0.0.1:7000,10.0.0.2:7001, redis-3.internal')).toEqual({
      seeds: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: 'redis-3.internal', port: 6379 },
      ],
      tls: false,
    });
    expect(parseClusterUrl('rediss+cluster://ops:p%40ss%3Aw@[::1]:7000/')).toEqual({
      seeds: [{ host: '::1', port: 7000 }],
      username: 'ops',
      password: 'p@ss:w',
      tls: true,
    });
    expect(parseClusterUrl('redis+cluster://:only-password@h:1/0')).toMatchObject({
      password: 'only-password',
    });
    expect(isClusterUrl('REDIS+CLUSTER://h:1')).toBe(true);
    expect(isClusterUrl('redis://h:1')).toBe(false);
  });

  it.each([
    ['redis+cluster://', /at least one seed node/],
    ['redis+cluster://:secret@', /at least one seed node/],
    ['redis+cluster://h1:7000,,h2:7001', /no empty seed node/],
    ['redis+cluster://h1:70000', /"h1:70000" has no valid port/],
    ['redis+cluster://h1:port', /"h1:port" has no valid port/],
    ['redis+cluster://h!1:7000', /"h!1:7000" is not host:port/],
    ['redis+cluster://-h1:7000', /"-h1:7000" is not host:port/],
    ['redis+cluster://h1:7000/2', /database 0 only/],
    ['redis+cluster://h1:7000?tls=1', /no query string/],
    ['redis+cluster://u:%zz@h1:7000', /password is not valid percent-encoding/],
  ])('refuses %s saying why', (url, why) => {
    expect(() => parseClusterUrl(url)).toThrow(why);
  });

  it('accepts host names with underscores, as a redis:// URL does (Docker Compose service names)', () => {
    expect(parseEnv({ REDIS_URL: 'redis://redis_node_1:6379' }).REDIS_URL).toBe('redis://redis_node_1:6379');
    const url = 'redis+cluster://redis_node_1:7000,redis_node_2:7000,_r3_:7001';
    expect(parseClusterUrl(url).seeds).toEqual([
      { host: 'redis_node_1', port: 7000 },
      { host: 'redis_node_2', port: 7000 },
      { host: '_r3_', port: 7001 },
    ]);
    expect(parseEnv({ REDIS_URL: url }).REDIS_URL).toBe(url);
  });

  it('is refused by the configuration naming REDIS_URL, with the password hidden', () => {
    const bad = 'redis+cluster://ops:hunter2-secret@h1:7000,h2:0';
    try {
      parseEnv({ REDIS_URL: bad });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const message = (e as Error).message;
      expect(message).toContain(
        'REDIS_URL: got "redis+cluster://***@h1:7000,h2:0", expected redis+cluster://',
      );
      expect(message).toContain('seed node "h2:0" has no valid port');
      expect(message).not.toContain('hunter2');
    }
    expect(parseEnv({ REDIS_URL: 'rediss+cluster://:pw@h1:7000,h2:7000' }).REDIS_URL).toBe(
      'rediss+cluster://:pw@h1:7000,h2:7000',
    );
  });

  it('keeps one-Redis URLs as they were, and refuses several hosts in one, pointing at redis+cluster://', () => {
    for (const url of [
      'redis://localhost:6379',
      'rediss://:pw@cache:6380/2',
      'unix:///run/r.sock',
      '/run/r.sock',
    ])
      expect(parseEnv({ REDIS_URL: url }).REDIS_URL).toBe(url);
    expect(() => parseEnv({ REDIS_URL: 'redis://:pw@h1:7000,h2:7001' })).toThrow(
      /REDIS_URL: got "redis:\/\/\*\*\*@h1:7000,h2:7001", expected one host in a redis:\/\/ URL; for a Redis Cluster list its nodes as redis\+cluster:\/\//,
    );
    expect(() => parseEnv({ REDIS_URL: 'cluster://h1:7000' })).toThrow(
      /or redis\+cluster:\/\/.*\(a Redis Cluster\)/,
    );
  });

  it('is shown with its credentials masked', () => {
    expect(redactRedisUrl('rediss+cluster://ops:s3cret@h1:7000,h2:7001')).toBe(
      'rediss+cluster://***@h1:7000,h2:7001',
    );
    expect(redactRedisUrl('redis+cluster://h1:7000')).toBe('redis+cluster://h1:7000');
  });
});

describe('the key namespace', () => {
  it('is hash-tagged on a cluster only, once, keeping a tag it already has', () => {
    expect(keyNamespace('switchyard', false)).toBe('switchyard');
    expect(keyNamespace('switchyard', true)).toBe('{switchyard}');
    expect(keyNamespace('{switchyard}', true)).toBe('{switchyard}');
    expect(keyNamespace('acme{prod}', true)).toBe('acme{prod}');
    expect(keyNamespace('odd{}', true)).toBe('{odd{}}');
  });

  it('reads hash tags as Redis Cluster does', () => {
    expect(hashTagOf('{switchyard}:plan:p1')).toBe('switchyard');
    expect(hashTagOf('switchyard:plan:p1')).toBeUndefined();
    expect(hashTagOf('{}:x{y}')).toBeUndefined();
    expect(hashTagOf('a{b}{c}')).toBe('b');
    expect(hashTagOf('{{switchyard}}:x')).toBe('{switchyard');
  });
});

describe('cluster connections', () => {
  const clients: RedisClient[] = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.disconnect();
  });
  /** A client towards a port nothing listens on: only its options are looked at. */
  function open(make: (url: string) => RedisClient, url: string): RedisClient {
    const c = make(url);
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  }

  it('patient: every node connection waits for Redis (maxRetriesPerRequest null), as BullMQ workers need, and the cluster never gives a command up', () => {
    const c = open(createRedis, 'redis+cluster://ops:pw@127.0.0.1:1,127.0.0.1:2');
    if (!isCluster(c)) throw new Error('expected a Cluster client');
    expect(c.options.enableOfflineQueue).toBe(true);
    expect(c.options.redisOptions).toMatchObject({
      maxRetriesPerRequest: null,
      username: 'ops',
      password: 'pw',
    });
    expect(c.options.redisOptions?.tls).toBeUndefined();
    // ioredis's default gives up after 16 redirections 100 ms apart: a master away for a second.
    expect(c.options.maxRedirections).toBe(Number.POSITIVE_INFINITY);
    for (const delay of ['retryDelayOnFailover', 'retryDelayOnClusterDown', 'retryDelayOnTryAgain'] as const)
      expect(c.options[delay]).toBeGreaterThan(0);
  });

  it('fail-fast: no retry after a closed node connection, commands time out', () => {
    const c = open(createRequestRedis, 'rediss+cluster://:pw@127.0.0.1:1');
    if (!isCluster(c)) throw new Error('expected a Cluster client');
    expect(c.options).toMatchObject({ retryDelayOnFailover: 0, retryDelayOnClusterDown: 0 });
    expect(c.options.maxRedirections).toBe(16);
    expect(c.options.redisOptions).toMatchObject({
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: 5_000,
      password: 'pw',
      tls: {},
    });
  });

  it('fail-fast: refuses a command at once while the cluster is not ready (never queued), and so does a duplicate', async () => {
    const c = open(createRequestRedis, 'redis+cluster://127.0.0.1:1');
    if (!isCluster(c)) throw new Error('expected a Cluster client');
    const copy = c.duplicate();
    copy.on('error', () => undefined);
    clients.push(copy);
    for (const client of [c, copy]) {
      const started = Date.now();
      const error = await client.set('k', 'v').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(redisUnavailable(error)?.code).toBe('redis_unavailable');
      expect((error as Error).message).toMatch(/^Cluster isn't ready/);
      expect(Date.now() - started).toBeLessThan(200);
    }
  });

  it('a one-Redis URL still makes a plain client', () => {
    expect(isCluster(open(createRequestRedis, 'redis://127.0.0.1:1'))).toBe(false);
  });
});
