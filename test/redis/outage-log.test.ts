/**
 * src/redis.ts `redisOutageLog`: what a connection whose errors arrive mixed with others (a BullMQ
 * worker's, a QueueEvents') says while Redis is away: one WARN when it goes, one INFO when it is back,
 * never a line per reconnection attempt; any other error is left to the caller.
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { isRedisConnectionError, redisOutageLog } from '../../src/redis.js';

function recorder() {
  const lines: { level: string; msg: string; connection?: unknown }[] = [];
  const logger = silentLogger.child({});
  for (const level of ['debug', 'info', 'warn', 'error'] as const) {
    logger[level] = ((obj: { connection?: unknown }, msg: string) => {
      lines.push({ level, msg, connection: obj.connection });
    }) as typeof logger.info;
  }
  return { logger, lines };
}

function socketError(code: string, syscall = 'connect'): Error {
  return Object.assign(new Error(`${syscall} ${code} /tmp/redis.sock`), { code, syscall });
}

describe('redisOutageLog', () => {
  it('says once that Redis is away and once that it is back, whatever the number of attempts', () => {
    const { logger, lines } = recorder();
    const outage = redisOutageLog(logger, 'switch worker');
    outage.ready(); // the first connection: nothing to say
    for (let i = 0; i < 20; i++) expect(outage.error(socketError('ECONNREFUSED'))).toBe(true);
    outage.ready();
    outage.ready(); // the second connection of the same worker
    expect(outage.error(socketError('ENOENT'))).toBe(true); // away again
    expect(lines.filter((l) => l.level !== 'debug')).toEqual([
      { level: 'warn', msg: 'Redis is unreachable; reconnecting', connection: 'switch worker' },
      { level: 'info', msg: 'Redis is reachable again', connection: 'switch worker' },
      { level: 'warn', msg: 'Redis is unreachable; reconnecting', connection: 'switch worker' },
    ]);
    expect(lines.filter((l) => l.level === 'debug')).toHaveLength(19);
  });

  it('leaves any other error to the caller', () => {
    const { logger, lines } = recorder();
    const outage = redisOutageLog(logger, 'switch worker');
    expect(outage.error(new Error('Missing lock for job sw_1. moveToFinished'))).toBe(false);
    expect(outage.error(new Error('ERR unknown command'))).toBe(false);
    expect(outage.error('not even an error')).toBe(false);
    expect(lines).toEqual([]);
  });
});

describe('isRedisConnectionError', () => {
  it('knows the ways a connection fails', () => {
    const refused = Object.assign(new Error('WRONGPASS invalid username-password pair'), {
      name: 'ReplyError',
      command: { name: 'auth', args: ['u', 'p'] },
    });
    for (const e of [
      socketError('ECONNREFUSED'),
      socketError('ECONNRESET', 'read'),
      socketError('ENOTFOUND', 'getaddrinfo'),
      Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }),
      refused,
      new Error('Ready check failed: NOAUTH Authentication required.'),
      new Error('Connection is closed.'),
      Object.assign(new Error('Failed to refresh slots cache.'), { name: 'ClusterAllFailedError' }),
    ]) {
      expect(isRedisConnectionError(e), e.message).toBe(true);
    }
    expect(isRedisConnectionError(new Error('Missing lock for job sw_1'))).toBe(false);
    expect(
      isRedisConnectionError(new Error('ERR Error running script (call to f_…): @user_script:1: bad')),
    ).toBe(false);
  });
});
