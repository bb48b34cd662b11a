/**
 * Spawns a private `redis-server` (for `npm start` without REDIS_URL, and for the tests): unix socket in
 * a data directory, AOF on, `maxmemory-policy noeviction` as BullMQ requires. When the binary is
 * missing, explains the one command that installs it (or installs it with apt when running as root on
 * Debian, if allowed).
 *
 * It is supervised: a redis-server that exits without being asked (killed, out of memory) is started
 * again on the same socket and data (AOF), with a backoff, and the log says so. A redis-server left
 * serving the data directory by a Switchyard that died (`kill -9`: the child outlives its parent) is
 * recognised by the owner file beside it and shut down before a fresh one starts; one whose owner is
 * still running is refused, naming that process.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

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
function alive(pid: number): boolean {
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
  const startOne = async (): Promise<{ child: ChildProcess; exited: Promise<void> }> => {
    const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
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
    return { child, exited };
  };

  let current = await startOne();
  let stopping = false;
  let restartTimer: NodeJS.Timeout | undefined;
  let delayMs = 500;
  const supervise = (one: { child: ChildProcess; exited: Promise<void> }) => {
    void one.exited.then(() => {
      if (stopping || current !== one) return;
      const how = one.child.signalCode ?? `code ${one.child.exitCode}`;
      warn(`the private redis-server exited unexpectedly (${how}); starting it again in ${delayMs} ms`);
      const again = () => {
        restartTimer = undefined;
        if (stopping) return;
        rmSync(socketPath, { force: true });
        startOne().then(
          (next) => {
            if (stopping) {
              next.child.kill('SIGTERM');
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
      const { child, exited } = current;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(ownerFile, { force: true });
    },
  };
}
