/**
 * Child of test/start/cli.test.ts and cli-edges.test.ts: handlers/cli.ts `handleSignals` with
 * `signals.ts <graceful> [cleanup] [timeoutMs]`:
 *   - graceful: `never` (until forced), `<ms>` (resolves after that long), `fail` (rejects at once),
 *     `at-cleanup` / `fail-at-cleanup` (resolves / rejects once the forced cleanup has begun: a graceful
 *     shutdown that ends while the exit is being forced);
 *   - cleanup, the forced cleanup, which prints `forced cleanup` when it begins: `quick` (the default),
 *     `<ms>` (takes that long), `never` (does not end), `fail` (rejects);
 *   - timeoutMs: handleSignals' bound on the graceful shutdown (its default when absent; `-` for it);
 *   - repeatWindowMs: handleSignals' window for a repeat of the first signal (its default when absent).
 */

import { handleSignals } from '../../../handlers/cli.js';
import { createLogger } from '../../../src/log.js';

const [graceful = 'never', cleanup = 'quick', timeoutMs, repeatWindowMs] = process.argv.slice(2);
const logger = createLogger({ level: 'info', pretty: false });

let settle: { resolve: () => void; reject: (e: Error) => void } | undefined;
const gracefulShutdown = () =>
  new Promise<void>((resolve, reject) => {
    if (graceful === 'fail') reject(new Error('graceful shutdown failed on purpose'));
    else if (graceful === 'at-cleanup' || graceful === 'fail-at-cleanup') settle = { resolve, reject };
    else if (graceful !== 'never') setTimeout(resolve, Number(graceful));
  });

const forcedCleanup = () => {
  process.stdout.write('forced cleanup\n');
  if (graceful === 'at-cleanup') settle?.resolve();
  if (graceful === 'fail-at-cleanup') settle?.reject(new Error('graceful shutdown failed late'));
  if (cleanup === 'quick') return Promise.resolve();
  if (cleanup === 'fail') return Promise.reject(new Error('cleanup failed on purpose'));
  if (cleanup === 'never') return new Promise<void>(() => undefined);
  return new Promise<void>((resolve) => setTimeout(resolve, Number(cleanup)));
};

handleSignals({
  logger,
  graceful: gracefulShutdown,
  forced: forcedCleanup,
  ...(timeoutMs === undefined || timeoutMs === '-' ? {} : { timeoutMs: Number(timeoutMs) }),
  ...(repeatWindowMs === undefined ? {} : { repeatWindowMs: Number(repeatWindowMs) }),
});
process.stdout.write('ready\n');
setInterval(() => undefined, 60_000);
