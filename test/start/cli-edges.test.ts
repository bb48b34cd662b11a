/**
 * handlers/cli.ts: a lookup failure that is not the server's listen (a Redis host
 * that does not resolve) is not blamed on HOST; a fatal error's cause is kept, its credentials masked.
 */
import { describe, expect, it } from 'vitest';
import { listenProblem, safeError } from '../../handlers/cli.js';
import { parseEnv } from '../../src/config.js';

describe('listenProblem', () => {
  it('leaves a failed lookup of another host alone (not the listen: HOST is not the one to change)', () => {
    const env = parseEnv({ HOST: '127.0.0.1' });
    const lookup = Object.assign(new Error('getaddrinfo ENOTFOUND redis.internal'), {
      code: 'ENOTFOUND',
      syscall: 'getaddrinfo',
      hostname: 'redis.internal',
    });
    expect(listenProblem(lookup, env)).toBeUndefined();
    const listen = Object.assign(new Error('getaddrinfo ENOTFOUND nohost'), {
      code: 'ENOTFOUND',
      syscall: 'listen',
    });
    expect(listenProblem(listen, parseEnv({ HOST: 'nohost' }))?.message).toBe(
      'HOST: got "nohost", expected a host name that resolves',
    );
  });
});

describe('safeError', () => {
  it("keeps an error's cause (as safe), its credentials masked", () => {
    const e = new Error('start-up failed', {
      cause: Object.assign(new Error('connect to redis://u:hunter2@redis.internal:6379 failed'), {
        code: 'ECONNREFUSED',
      }),
    });
    expect(safeError(e).cause).toMatchObject({
      type: 'Error',
      code: 'ECONNREFUSED',
      message: 'connect to redis://***@redis.internal:6379 failed',
    });
  });
});
