/**
 * Child of test/start/cli.test.ts: handlers/cli.ts `handleSignals` with a graceful shutdown that takes
 * `argv[2]` ms (`never`: until forced), and a forced cleanup that prints `forced cleanup`.
 */

import { handleSignals } from '../../../handlers/cli.js';
import { createLogger } from '../../../src/log.js';

const takes = process.argv[2] ?? 'never';
const logger = createLogger({ level: 'info', pretty: false });
handleSignals({
  logger,
  graceful: () =>
    takes === 'never'
      ? new Promise<void>(() => undefined)
      : new Promise<void>((r) => setTimeout(r, Number(takes))),
  forced: async () => {
    process.stdout.write('forced cleanup\n');
  },
});
process.stdout.write('ready\n');
setInterval(() => undefined, 60_000);
