/**
 * Spawns a private `redis-server` (for `npm start` without REDIS_URL, and for the tests): unix socket in
 * a data directory, AOF on, `maxmemory-policy noeviction` as BullMQ requires. When the binary is
 * missing, explains the one command that installs it (or installs it with apt when running as root on
 * Debian, if allowed).
 *
 * It is supervised: a redis-server that exits without being asked (killed, out of memory) is started
 * again on the same socket and data (AOF), with a backoff, and the log says so; once this process
 * began shutting down (`beginRedisShutdown`), an exit is expected and nothing is restarted.
 *
 * It runs in its own process group (spawned detached): a terminal's Ctrl-C signals the whole foreground
 * group, and Redis must keep serving while Switchyard shuts down gracefully (a switch finishing still
 * writes its lock, progress and audit); Switchyard stops it last, with SIGTERM (Redis writes and fsyncs
 * its AOF). Its owner going away without stopping it (`kill -9`, a crash) is covered twice:
 *   - a watchdog (a `sh` in its own group too) holds a pipe from this process and sends redis-server a
 *     SIGTERM when that pipe closes, which the kernel does when this process dies however it dies;
 *   - a redis-server still left serving the data directory (the watchdog killed too) is recognised by the
 *     owner file beside it and shut down before a fresh one starts; one whose owner is still running is
 *     refused, naming that process.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

/** Set once this process began shutting down: an exit of a private redis-server is then expected. */
let shutdownBegan = false;

/** The live private redis-servers of this process, for `stopSpawnedRedis`. */
const live = new Set<ChildProcess>();

/**
 * Says this process is shutting down: from now on a private redis-server that exits is not an
 * "unexpected exit" and is not started again (a signal meant for Switchyard may reach it too, e.g. a
 * process manager signalling the whole control group).
 */
export function beginRedisShutdown(): void {
  shutdownBegan = true;
}

/**
 * Stops every private redis-server this process started, at once (a forced shutdown): SIGTERM, so Redis
 * writes and fsyncs its AOF, then SIGKILL after `graceMs`. Resolves once they exited.
 */
export async function stopSpawnedRedis(graceMs = 5_000): Promise<void> {
  shutdownBegan = true;
  await Promise.all([...live].map((child) => terminate(child, graceMs)));
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once `child` exited. */
async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts the watchdog of redis-server `pid`: a shell in its own process group that waits for the end of
 * a pipe from this process and then sends `pid` a SIGTERM. The kernel closes the pipe when this process
 * dies, `kill -9` included; the watchdog is killed first when Switchyard stops Redis itself.
 */
function startWatchdog(pid: number): ChildProcess {
  const watchdog = spawn(
    '/bin/sh',
    ['-c', 'read _ignored; kill -TERM "$1" 2>/dev/null', 'switchyard-redis-watchdog', String(pid)],
    {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
    },
  );
  watchdog.on('error', () => undefined); // no shell: the owner file still covers a kill -9
  watchdog.stdin?.on('error', () => undefined);
  // Neither the watchdog nor its pipe keeps this process alive.
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return watchdog;
}

export interface SpawnedRedis {
  /** `unix:///…/redis.sock` style URL accepted by src/queue connection helpers. */
  readonly url: string;
  readonly socketPath: string;
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

export interface SpawnRedisOptions {
  /** Directory for the socket, AOF and RDB files. */
  readonly dir: string;
  /** Try `apt-get install -y redis-server` when missing and running as root with apt available. */
  readonly installIfMissing?: boolean;
  readonly aof?: boolean;
  readonly log?: (line: string) => void;
  /** Problems (a redis-server that died and is restarted); default: `log`. */
  readonly warn?: (line: string) => void;
}

function which(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/usr/sbin', '/usr/local/bin'])) {
    const candidate = join(dir, bin);
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Finds redis-server, installing it with apt when allowed; throws with the install command otherwise. */
export function ensureRedisBinary(
  opts: { installIfMissing?: boolean; log?: (line: string) => void } = {},
): string {
  const found = which('redis-server');
  if (found) return found;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (opts.installIfMissing && isRoot && which('apt-get')) {
    opts.log?.('redis-server not found; installing it with apt-get (once)…');
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', 'redis-server'], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    const installed = which('redis-server');
    if (installed) return installed;
  }
  throw new Error(
    'redis-server is not installed. Install it with `sudo apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis` (macOS), or set REDIS_URL to an existing Redis.',
  );
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Whether process `pid` is running (and is not this one). */
export function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Asks the redis-server on `socketPath` to shut down (it writes its AOF first); waits until it is gone. */
async function shutdownOrphan(socketPath: string): Promise<void> {
  await new Promise<void>((resolve) => {
    const socket = connect(socketPath);
    socket.once('connect', () => socket.end('SHUTDOWN\r\n'));
    socket.once('close', () => resolve());
    socket.once('error', () => resolve());
  });
  for (let i = 0; i < 250 && (await answers(socketPath)); i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (await answers(socketPath))
    throw new Error(`the orphaned redis-server on ${socketPath} did not shut down`);
}

/** One redis-server started by `spawnRedis`, with its watchdog. */
interface Started {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  readonly watchdog: ChildProcess | undefined;
}

/** Starts redis-server on a unix socket inside `dir`; resolves once it accepts connections. */
export async function spawnRedis(opts: SpawnRedisOptions): Promise<SpawnedRedis> {
  const bin = ensureRedisBinary(opts);
  const warn = opts.warn ?? opts.log ?? (() => undefined);
  mkdirSync(opts.dir, { recursive: true });
  const socketPath = join(opts.dir, 'redis.sock');
  const ownerFile = join(opts.dir, 'redis.owner');
  if (existsSync(socketPath)) {
    if (await answers(socketPath)) {
      const owner = existsSync(ownerFile) ? Number(readFileSync(ownerFile, 'utf8').trim()) : Number.NaN;
      if (alive(owner)) {
        throw new Error(
          `a redis-server is already serving ${socketPath} for the Switchyard running as pid ${owner} (data directory ${opts.dir}); stop it first, or use another SWITCHYARD_DATA_DIR`,
        );
      }
      // Its Switchyard died without stopping it (kill -9): ours now. A fresh one reloads its AOF.
      opts.log?.(`shutting down the redis-server a stopped Switchyard left serving ${socketPath}`);
      await shutdownOrphan(socketPath);
    }
    rmSync(socketPath, { force: true }); // left over from a crash
  }
  writeFileSync(ownerFile, `${process.pid}\n`);
  const args = [
    '--port',
    '0',
    '--unixsocket',
    socketPath,
    '--unixsocketperm',
    '700',
    '--dir',
    opts.dir,
    '--appendonly',
    opts.aof === false ? 'no' : 'yes',
    '--appendfsync',
    'everysec',
    '--maxmemory-policy',
    'noeviction',
    '--save',
    '',
    '--daemonize',
    'no',
    '--loglevel',
    'warning',
  ];

  /** Starts one redis-server; resolves with it once its socket exists. */
  const startOne = async (): Promise<Started> => {
    // Its own process group: a terminal's Ctrl-C (SIGINT to the foreground group) is Switchyard's to
    // handle; Redis keeps serving until Switchyard stops it.
    const child: ChildProcess = spawn(bin, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    const watchdog = child.pid === undefined ? undefined : startWatchdog(child.pid);
    let output = '';
    child.stdout?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const exited = new Promise<void>((resolve) =>
      child.once('exit', () => {
        live.delete(child);
        watchdog?.kill('SIGKILL');
        resolve();
      }),
    );
    await new Promise<void>((resolve, reject) => {
      let tries = 0;
      const onExit = (code: number | null) =>
        reject(new Error(`redis-server exited with ${code}: ${output.trim()}`));
      child.once('exit', onExit);
      const poll = () => {
        if (existsSync(socketPath)) {
          child.off('exit', onExit);
          resolve();
          return;
        }
        if (++tries > 500) {
          child.off('exit', onExit);
          child.kill('SIGKILL');
          reject(new Error(`redis-server did not create ${socketPath} within 10s: ${output.trim()}`));
          return;
        }
        setTimeout(poll, 20);
      };
      poll();
    });
    return { child, exited, watchdog };
  };

  let current = await startOne();
  let stopping = false;
  let restartTimer: NodeJS.Timeout | undefined;
  let delayMs = 500;
  const supervise = (one: Started) => {
    void one.exited.then(() => {
      if (stopping || current !== one) return;
      const how = one.child.signalCode ?? `code ${one.child.exitCode}`;
      if (shutdownBegan) {
        // Switchyard is shutting down: the signal that ended it was meant for it too. Not restarted.
        opts.log?.(`the private redis-server exited during shutdown (${how})`);
        return;
      }
      warn(`the private redis-server exited unexpectedly (${how}); starting it again in ${delayMs} ms`);
      const again = () => {
        restartTimer = undefined;
        if (stopping || shutdownBegan) return;
        rmSync(socketPath, { force: true });
        startOne().then(
          (next) => {
            if (stopping || shutdownBegan) {
              void terminate(next.child, 5_000);
              return;
            }
            current = next;
            delayMs = 500;
            opts.log?.(`the private redis-server is running again on ${socketPath}`);
            supervise(next);
          },
          (e: unknown) => {
            delayMs = Math.min(delayMs * 2, 30_000);
            warn(
              `could not start the private redis-server again (${(e as Error).message}); retrying in ${delayMs} ms`,
            );
            restartTimer = setTimeout(again, delayMs);
          },
        );
      };
      restartTimer = setTimeout(again, delayMs);
    });
  };
  supervise(current);

  return {
    url: `unix://${socketPath}`,
    socketPath,
    get pid() {
      return current.child.pid;
    },
    async stop() {
      stopping = true;
      if (restartTimer) clearTimeout(restartTimer);
      const { child, exited, watchdog } = current;
      // This process stops Redis itself: the watchdog is not needed (and must not signal a reused pid).
      watchdog?.kill('SIGKILL');
      await terminate(child, 5_000);
      await exited;
      rmSync(ownerFile, { force: true });
    },
  };
}
