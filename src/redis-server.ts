/**
 * Spawns a private `redis-server` (for `npm start` without REDIS_URL, and for the tests): unix socket in
 * a data directory, AOF on, `maxmemory-policy noeviction` as BullMQ requires. When the binary is
 * missing, explains the one command that installs it (or installs it with apt when running as root on
 * Debian, if allowed).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
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

/** Starts redis-server on a unix socket inside `dir`; resolves once it accepts connections. */
export async function spawnRedis(opts: SpawnRedisOptions): Promise<SpawnedRedis> {
  const bin = ensureRedisBinary(opts);
  mkdirSync(opts.dir, { recursive: true });
  const socketPath = join(opts.dir, 'redis.sock');
  if (existsSync(socketPath)) {
    if (await answers(socketPath)) {
      throw new Error(
        `a redis-server is already serving ${socketPath}: another Switchyard uses the data directory ${opts.dir}`,
      );
    }
    rmSync(socketPath, { force: true }); // left over from a crash
  }
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
  return {
    url: `unix://${socketPath}`,
    socketPath,
    pid: child.pid,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
