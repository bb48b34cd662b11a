/**
 * handlers/cli.ts: a lookup failure that is not the server's listen (a Redis host
 * that does not resolve) is not blamed on HOST; a fatal error's cause is kept, its credentials masked;
 * and every way a signalled shutdown ends (children/signals.ts): its exit code and its log lines.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { listenProblem, npmForwardsSignals, safeError } from '../../handlers/cli.js';
import { parseEnv } from '../../src/config.js';
import { killStarted, type Run, run, waitFor } from './children/procs.js';

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

/** handleSignals in a child (children/signals.ts): `args` are its graceful, cleanup and timeout modes. */
async function signalled(...args: string[]): Promise<Run> {
  const child = run(['test/start/children/signals.ts', ...args]);
  await waitFor(child, /^ready$/m);
  return child;
}

const signal = (child: Run, name: NodeJS.Signals) => process.kill(child.child.pid ?? 0, name);

/** The child's output, one entry a line: `<level>: <msg>` for a log line, the line itself otherwise. */
function transcript(child: Run): string[] {
  return child
    .out()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      if (!line.startsWith('{')) return line;
      const { levelName, msg } = JSON.parse(line) as { levelName: string; msg: string };
      return `${levelName}: ${msg}`;
    });
}

const SHUTTING_DOWN = 'info: shutting down';
const SECOND = 'warn: forced shutdown: second signal; exiting without waiting for the active switch';

describe('handleSignals: one Ctrl-C that npm passes on too', () => {
  afterEach(() => killStarted());
  const REPEAT =
    'info: SIGINT again within 60000 ms of the first: taken as the same one (npm passes on the signal it got too); send it again to force the exit';

  it("the first signal's repeat within the window is taken as the same one, once: the shutdown goes on; a third forces it", async () => {
    const child = await signalled('never', 'quick', '-', '60000');
    signal(child, 'SIGINT');
    await waitFor(child, /"msg":"shutting down"/);
    signal(child, 'SIGINT'); // npm's forwarded copy
    await waitFor(child, /taken as the same one/);
    // A third is a second Ctrl-C: forced.
    signal(child, 'SIGINT');
    expect(await child.exited).toBe(130);
    expect(transcript(child)).toEqual(['ready', SHUTTING_DOWN, REPEAT, SECOND, 'forced cleanup']);
  });

  it("the second press's repeat, while the forced cleanups run, is taken as that press: the cleanups are waited for", async () => {
    const child = await signalled('never', '2000', '-', '60000');
    signal(child, 'SIGINT'); // first press
    await waitFor(child, /"msg":"shutting down"/);
    signal(child, 'SIGINT'); // npm's copy of it
    await waitFor(child, /taken as the same one/);
    signal(child, 'SIGINT'); // second press: forced, after the cleanups (2 s)
    await waitFor(child, /^forced cleanup$/m);
    signal(child, 'SIGINT'); // npm's copy of the second press
    expect(await child.exited).toBe(130);
    expect(transcript(child)).toEqual([
      'ready',
      SHUTTING_DOWN,
      REPEAT,
      SECOND,
      'forced cleanup',
      'info: SIGINT again within 60000 ms of the second: taken as the same one (npm passes on the signal it got too)',
    ]);
  });

  it('another signal within the window is not a repeat: it forces the exit', async () => {
    const child = await signalled('never', 'quick', '-', '60000');
    signal(child, 'SIGINT');
    await waitFor(child, /"msg":"shutting down"/);
    signal(child, 'SIGTERM');
    expect(await child.exited).toBe(143);
    expect(transcript(child)).toEqual(['ready', SHUTTING_DOWN, SECOND, 'forced cleanup']);
  });

  it('the window is on only when npm runs the process', () => {
    expect(npmForwardsSignals({ npm_lifecycle_event: 'start' })).toBe(true);
    expect(npmForwardsSignals({ npm_lifecycle_event: 'worker' })).toBe(true);
    expect(npmForwardsSignals({})).toBe(false);
    expect(npmForwardsSignals({ npm_lifecycle_event: '' })).toBe(false);
  });
});

describe('handleSignals: how each shutdown exits', () => {
  afterEach(() => killStarted());

  it('a second SIGTERM forces the exit with 143 (128 + SIGTERM), after the forced cleanup', async () => {
    const child = await signalled('never');
    signal(child, 'SIGTERM');
    await waitFor(child, /"msg":"shutting down"/);
    signal(child, 'SIGTERM');
    expect(await child.exited).toBe(143);
    expect(transcript(child)).toEqual(['ready', SHUTTING_DOWN, SECOND, 'forced cleanup']);
  });

  it('a signal while the forced cleanup runs exits at once with its own code, saying the cleanups were cut short', async () => {
    const child = await signalled('never', 'never');
    signal(child, 'SIGINT');
    await waitFor(child, /"msg":"shutting down"/);
    signal(child, 'SIGINT');
    await waitFor(child, /^forced cleanup$/m);
    signal(child, 'SIGTERM');
    expect(await child.exited).toBe(143);
    expect(transcript(child)).toEqual([
      'ready',
      SHUTTING_DOWN,
      SECOND,
      'forced cleanup',
      'warn: forced shutdown: another signal; exiting without waiting for the cleanups',
    ]);
  });

  it('a graceful shutdown that fails is forced: exit 1, a failing forced cleanup logged', async () => {
    const child = await signalled('fail', 'fail');
    signal(child, 'SIGTERM');
    expect(await child.exited).toBe(1);
    expect(transcript(child)).toEqual([
      'ready',
      SHUTTING_DOWN,
      'error: shutdown failed',
      'forced cleanup',
      'error: forced shutdown: a cleanup failed',
    ]);
  });

  it('a graceful shutdown longer than its bound is forced: exit 1', async () => {
    const child = await signalled('never', 'quick', '1000');
    signal(child, 'SIGTERM');
    expect(await child.exited).toBe(1);
    expect(transcript(child)).toEqual([
      'ready',
      SHUTTING_DOWN,
      'error: shutdown took longer than 1s; forcing the exit',
      'forced cleanup',
    ]);
  });

  it('a graceful shutdown that ends while a second signal forces the exit does not turn it into exit 0', async () => {
    const child = await signalled('at-cleanup', '300');
    signal(child, 'SIGINT');
    await waitFor(child, /"msg":"shutting down"/);
    signal(child, 'SIGINT');
    expect(await child.exited).toBe(130);
    expect(transcript(child)).toEqual(['ready', SHUTTING_DOWN, SECOND, 'forced cleanup']);
  });

  it('a graceful shutdown that fails while a second signal forces the exit is not reported nor forced again', async () => {
    const child = await signalled('fail-at-cleanup', '300');
    signal(child, 'SIGINT');
    await waitFor(child, /"msg":"shutting down"/);
    signal(child, 'SIGINT');
    expect(await child.exited).toBe(130);
    expect(transcript(child)).toEqual(['ready', SHUTTING_DOWN, SECOND, 'forced cleanup']);
  });

  it('a graceful shutdown that ends after its bound forced the exit leaves it at exit 1', async () => {
    const child = await signalled('at-cleanup', '300', '1000');
    signal(child, 'SIGTERM');
    expect(await child.exited).toBe(1);
    expect(transcript(child)).toEqual([
      'ready',
      SHUTTING_DOWN,
      'error: shutdown took longer than 1s; forcing the exit',
      'forced cleanup',
    ]);
  });

  it('the bound passing while a second signal forces the exit neither says "took longer" nor runs the cleanup twice', async () => {
    // The forced cleanup outlasts the bound (1 s from the first signal): it began after that signal.
    const child = await signalled('never', '1200', '1000');
    signal(child, 'SIGINT');
    await waitFor(child, /"msg":"shutting down"/);
    signal(child, 'SIGINT');
    expect(await child.exited).toBe(130);
    expect(transcript(child)).toEqual(['ready', SHUTTING_DOWN, SECOND, 'forced cleanup']);
  });
});
