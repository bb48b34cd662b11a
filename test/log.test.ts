/**
 * src/log.ts: what a logged error (`err`) may put in a log line. Libraries attach secrets to their
 * errors: ioredis the command that failed (`command: { name: 'auth', args: [user, password] }` when
 * Redis refuses the credentials of REDIS_URL), an HTTP client its request headers. Every logger made by
 * `createLogger` (the bot's, a worker's, and their children) drops or masks them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { safeError } from '../handlers/cli.js';
import { ConfigError } from '../src/errors.js';
import { createLogger, maskCredentials, serializeError } from '../src/log.js';
import { createRedis, type RedisClient, watchRedis } from '../src/redis.js';
import { LogLines } from './jobs/fixtures/logs.js';
import { redisUrl, uniqueName } from './support/redis.js';

const clients: RedisClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
});

describe('logged errors', () => {
  it('never show the Redis password when Redis refuses the credentials (AUTH); the command is named', async () => {
    const password = `Sup3r-${uniqueName('secret')}`;
    const lines = new LogLines();
    const logger = createLogger({ level: 'info', pretty: false, destination: lines });
    // A user Redis does not know: it answers AUTH with WRONGPASS, as for a rotated or mistyped password.
    const client = createRedis(redisUrl(), {
      username: uniqueName('nobody'),
      password,
      retryStrategy: () => null,
    });
    clients.push(client);
    watchRedis(client, logger.child({ component: 'test' }));
    await lines.until((all) => all.some((l) => l.msg === 'Redis is unreachable; reconnecting'));
    expect(lines.raw.join('\n')).not.toContain(password);
    const err = lines.parsed.find((l) => l.msg === 'Redis is unreachable; reconnecting')?.err as
      | Record<string, unknown>
      | undefined;
    expect(err).toMatchObject({ message: expect.stringMatching(/^WRONGPASS/), command: { name: 'auth' } });
    expect(err?.command).toEqual({ name: 'auth' });
  });

  it('drop command arguments, credential fields and URL passwords at any depth', () => {
    const secret = 'hunter2-very-secret';
    const auth = new Error('WRONGPASS invalid username-password pair');
    Object.assign(auth, { command: { name: 'auth', args: ['switchyard', secret] } });
    const cluster = new Error('Failed to refresh slots cache.');
    Object.assign(cluster, { name: 'ClusterAllFailedError', lastNodeError: auth });
    const request = new Error(`request to https://ops:${secret}@api.example.com/v1 failed`, {
      cause: new Error(`connect to redis://switchyard:${secret}@10.0.0.1:6379 refused`),
    });
    Object.assign(request, {
      config: {
        url: '/v1',
        headers: { Authorization: `Token ${secret}`, 'X-Api-Key': secret, accept: 'json' },
      },
    });
    const both = new AggregateError([cluster, request], 'two failures');

    const lines = new LogLines();
    const logger = createLogger({ level: 'info', pretty: false, destination: lines }).child({ queue: 'q' });
    logger.warn({ err: both }, 'something failed');
    logger.error(request, 'an error as the first argument');

    expect(lines.raw).toHaveLength(2);
    for (const line of lines.raw) expect(line).not.toContain(secret);
    const [first, second] = lines.parsed;
    const serialized = first?.err as {
      aggregateErrors: { lastNodeError: { command: unknown } }[];
    };
    // What helps a reader stays: the command's name, the host, harmless fields.
    expect(serialized.aggregateErrors[0]?.lastNodeError.command).toEqual({ name: 'auth' });
    expect(JSON.stringify(second?.err)).toContain('https://***@api.example.com/v1');
    expect(JSON.stringify(second?.err)).toContain('redis://***@10.0.0.1:6379');
    expect((second?.err as { config?: unknown } | undefined)?.config).toEqual({
      url: '/v1',
      headers: { Authorization: '[redacted]', 'X-Api-Key': '[redacted]', accept: 'json' },
    });
  });

  it('keep the type of an error record made safe already (the CLI\'s safeError), not pino\'s "Object"', () => {
    const record = safeError(new ConfigError('REDIS_URL: cannot connect'));
    const out = serializeError(record) as { type: string; message: string };
    expect(out.type).toBe(record.type);
    expect(out.type).not.toBe('Object');
    expect(out.message).toBe('REDIS_URL: cannot connect');
    // A real error keeps pino's naming (its constructor).
    expect((serializeError(new TypeError('x')) as { type: string }).type).toBe('TypeError');
  });

  it("mask a URL's credentials in any shape: an unencoded @ or space in the password, a mistyped or missing scheme", () => {
    // Before: `redis://***@ss@Sup3rS3cret@host:6379` (masked to the first @), and the others whole.
    for (const [text, shown] of [
      ['redis://user:p@ss@Sup3rS3cret@host:6379', 'redis://***@host:6379'],
      ['redis://u:Sup3r S3cret@host:6379 refused', 'redis://***@host:6379 refused'],
      ['redis://u:Sup3r#S3cret@host:6379', 'redis://***@host:6379'],
      ['got "redis//u:Sup3rS3cret@host", expected', 'got "redis//***@host", expected'],
      ['got "redis:/u:Sup3rS3cret@host:6379"', 'got "redis:/***@host:6379"'],
      ['got ":Sup3rS3cret@host:6379"', 'got "***@host:6379"'],
      [
        'POST http://proxyuser:Sup3rS3cret@127.0.0.1:9/v2/x: refused',
        'POST http://***@127.0.0.1:9/v2/x: refused',
      ],
    ] as const) {
      expect(maskCredentials(text), text).toBe(shown);
    }
    // What is no credential stays: an e-mail address, a host and port followed by prose, an @ in a path.
    for (const text of [
      'ask alice@example.com',
      'http://127.0.0.1:3000 is down, ask ops@example.com',
      'https://discord.com/api/v10/users/@me: 401',
      'at file:///app/node_modules/@slack/bolt/dist/App.js:12:5',
    ]) {
      expect(maskCredentials(text), text).toBe(text);
    }
  });

  it('keep what is not an error as it is, and survive a cycle', () => {
    expect(serializeError('just a string')).toBe('just a string');
    const e = new Error('loop') as Error & { self?: unknown };
    e.self = { again: e };
    expect(JSON.stringify(serializeError(e))).toContain('[circular]');
  });
});
