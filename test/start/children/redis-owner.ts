/**
 * Child of test/start/redis-server.test.ts: a process owning a private redis-server
 * (src/redis-server.ts), as `npm start` does. Prints `{"pid","redisPid","socketPath"}` once Redis serves,
 * then, by mode (argv[3]):
 *   - `ctrl-c`: on SIGINT (a terminal's Ctrl-C reaches the whole foreground process group) begins
 *     shutting down, asks Redis for a PING (the graceful part of a shutdown still uses Redis), prints
 *     `{"answers","warnings"}`, stops Redis and exits 0;
 *   - `shutdown-exit`: begins shutting down, then SIGTERMs redis-server itself (as a process manager
 *     signalling the whole control group would) and prints `{"logs","warnings"}` once its exit was seen;
 *   - `owner`: nothing more (the test kills this process with SIGKILL).
 */
import { createConnection } from 'node:net';
import { beginRedisShutdown, spawnRedis } from '../../../src/redis-server.js';

const dir = process.argv[2] ?? '';
const mode = process.argv[3] ?? 'owner';
const logs: string[] = [];
const warnings: string[] = [];
let onLog: (line: string) => void = () => undefined;
const redis = await spawnRedis({
  dir,
  log: (l) => {
    logs.push(l);
    onLog(l);
  },
  warn: (l) => {
    warnings.push(l);
    // Not expected in any mode: say so at once instead of leaving the test waiting.
    process.stdout.write(`${JSON.stringify({ logs, warnings })}\n`);
  },
});
const print = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

function ping(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(redis.socketPath);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d: Buffer) => {
      socket.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
}

if (mode === 'ctrl-c') {
  process.on('SIGINT', () => {
    beginRedisShutdown();
    void ping().then(async (answers) => {
      print({ answers, warnings });
      await redis.stop();
      process.exit(0);
    });
  });
}
print({ pid: process.pid, redisPid: redis.pid, socketPath: redis.socketPath });
if (mode === 'shutdown-exit') {
  beginRedisShutdown();
  onLog = (line) => {
    if (!line.includes('exited during shutdown')) return;
    // The supervisor saw the exit (and said so, instead of warning and scheduling a restart).
    print({ logs, warnings });
    void redis.stop().then(() => process.exit(0));
  };
  process.kill(redis.pid ?? 0, 'SIGTERM');
}
// Stays alive until signalled or killed.
setInterval(() => undefined, 60_000);
