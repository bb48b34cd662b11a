/**
 * handlers/cli.ts, what `npm start` and `npm run worker` share: what a fatal error may put in a log line
 * (never a raw error's `input`, which held the whole REDIS_URL, password included), a listen error named
 * by its variable, and signals (graceful first, forced at the second: exit 130 on Ctrl-C).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { listenProblem, safeError } from '../../handlers/cli.js';
import { parseEnv } from '../../src/config.js';
import { ConfigError, SwitchyardError } from '../../src/errors.js';
import { killStarted, run, waitFor } from './children/procs.js';

afterEach(() => killStarted());

describe('safeError', () => {
  it("keeps an error's type, code, message and stack, never its other fields, and masks URL credentials", () => {
    let raw: unknown;
    try {
      new URL('redis://:s3cret-pw@127.0.0.1:abc');
    } catch (e) {
      raw = e;
    }
    expect(JSON.stringify(raw)).toContain('s3cret-pw'); // what a logged `{ err }` printed
    const safe = safeError(raw);
    expect(safe).toMatchObject({ type: 'TypeError', code: 'ERR_INVALID_URL' });
    expect(JSON.stringify(safe)).not.toContain('s3cret-pw');
    expect(Object.keys(safe)).not.toContain('input');

    const wrapped = new Error('cannot reach redis://default:hunter2@redis.internal:6379', {
      cause: Object.assign(new Error('connect to rediss://u:hunter2@h failed'), { input: 'hunter2' }),
    });
    const shown = JSON.stringify(safeError(wrapped));
    expect(shown).not.toContain('hunter2');
    expect(shown).toContain('redis://***@redis.internal:6379');
  });
});

describe('listenProblem', () => {
  const env = parseEnv({ PORT: '3000', LOCAL_ROUTER_PORT: '8080' });
  const inUse = (port: number) =>
    Object.assign(new Error(`listen EADDRINUSE: address already in use 127.0.0.1:${port}`), {
      code: 'EADDRINUSE',
      syscall: 'listen',
      port,
    });
  it('names PORT for the HTTP server and LOCAL_ROUTER_PORT for the local router', () => {
    const http = listenProblem(inUse(3000), env);
    expect(http).toBeInstanceOf(ConfigError);
    expect(http?.message).toMatch(/^PORT: got 3000, but 127\.0\.0\.1:3000 is already in use/);
    const router = listenProblem(
      new SwitchyardError('config_invalid', 'traffic router cannot listen on 127.0.0.1:8080: …', {
        cause: inUse(8080),
      }),
      env,
    );
    expect(router?.message).toMatch(/^LOCAL_ROUTER_PORT: got 8080, but 127\.0\.0\.1:8080 is already in use/);
  });
  it('leaves other errors alone', () => {
    expect(listenProblem(new Error('boom'), env)).toBeUndefined();
    expect(
      listenProblem(Object.assign(new Error('x'), { code: 'ECONNREFUSED', syscall: 'connect' }), env),
    ).toBeUndefined();
  });
});

describe('handleSignals', () => {
  it('shuts down gracefully at the first signal: "stopped", exit 0', async () => {
    const child = run(['test/start/children/signals.ts', '50']);
    await waitFor(child, /ready/);
    process.kill(child.child.pid ?? 0, 'SIGTERM');
    expect(await child.exited).toBe(0);
    expect(child.out()).toMatch(/"msg":"shutting down"[\s\S]*"msg":"stopped"/);
    expect(child.out()).not.toContain('forced');
  });

  it('forces the exit at a second Ctrl-C: logs "forced", runs the forced cleanup, exit 130', async () => {
    const child = run(['test/start/children/signals.ts', 'never']);
    await waitFor(child, /ready/);
    process.kill(-(child.child.pid ?? 0), 'SIGINT');
    await waitFor(child, /"msg":"shutting down"/);
    process.kill(-(child.child.pid ?? 0), 'SIGINT');
    expect(await child.exited).toBe(130);
    expect(child.out()).toMatch(/forced shutdown: second signal[\s\S]*forced cleanup/);
  });
});
