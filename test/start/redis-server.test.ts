/**
 * The private redis-server (src/redis-server.ts) is supervised: one that dies is started again on the
 * same socket with its data (AOF), unless its owner is shutting down; one left serving the data
 * directory by a Switchyard that died (`kill -9` orphans it) is shut down and replaced; one whose
 * Switchyard still runs is refused, naming it. It runs in its own process group, so a terminal's Ctrl-C
 * is Switchyard's to handle (Redis keeps serving its graceful shutdown), and its watchdog stops it when
 * its owner is killed with `kill -9`.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRedis } from '../../src/redis.js';
import { ensureRedisBinary, type SpawnedRedis, spawnRedis } from '../../src/redis-server.js';
import { tempDir as childDir, killStarted, run, running, until, waitFor } from './children/procs.js';

const closers: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  killStarted();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sy-redis-server-'));
  closers.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function started(dir: string, lines: string[] = []): Promise<SpawnedRedis> {
  const redis = await spawnRedis({ dir, log: (l) => lines.push(l), warn: (l) => lines.push(`WARN ${l}`) });
  closers.push(() => redis.stop());
  return redis;
}

/** A redis-server started by hand on the socket a Switchyard would use (as one orphaned by kill -9). */
async function handStarted(dir: string): Promise<ChildProcess> {
  const socket = join(dir, 'redis.sock');
  const child = spawn(
    ensureRedisBinary(),
    ['--port', '0', '--unixsocket', socket, '--dir', dir, '--appendonly', 'yes', '--save', ''],
    { stdio: 'ignore' },
  );
  closers.push(() => child.kill('SIGKILL'));
  const probe = client(`unix://${socket}`);
  await new Promise<void>((resolve) => probe.once('ready', () => resolve()));
  return child;
}

/** A client that reconnects quietly (a restart makes it see ECONNREFUSED for a moment). */
function client(url: string) {
  const c = createRedis(url);
  c.on('error', () => undefined);
  closers.push(() => c.disconnect());
  return c;
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => child.once('exit', () => resolve()));

describe('the private redis-server', () => {
  it('is started again, with its data, when it dies', async () => {
    const lines: string[] = [];
    let again: () => void = () => undefined;
    const restarted = new Promise<void>((resolve) => {
      again = resolve;
    });
    const server = await spawnRedis({
      dir: tempDir(),
      log: (l) => {
        lines.push(l);
        if (l.includes('is running again')) again();
      },
      warn: (l) => lines.push(`WARN ${l}`),
    });
    closers.push(() => server.stop());
    const c = client(server.url);
    await c.set('kept', 'yes');
    await c.call('BGREWRITEAOF');
    const first = server.pid;
    const back = new Promise<void>((resolve) => c.once('ready', () => resolve()));
    process.kill(first ?? 0, 'SIGKILL');
    // ioredis reconnects once the new redis-server listens on the same socket, which may be a moment
    // before the supervisor sees its socket and says it runs again (and `pid` names it): both.
    await Promise.all([back, restarted]);
    expect(server.pid).not.toBe(first);
    expect(await c.get('kept')).toBe('yes');
    expect(lines.some((l) => l.startsWith('WARN the private redis-server exited unexpectedly'))).toBe(true);
  });

  it('replaces one a dead Switchyard left serving the data directory, keeping its data', async () => {
    const dir = tempDir();
    const orphan = await handStarted(dir);
    const direct = client(`unix://${join(dir, 'redis.sock')}`);
    await direct.set('kept', 'yes');
    writeFileSync(join(dir, 'redis.owner'), '999999\n'); // a pid nobody runs
    const server = await started(dir);
    await exited(orphan);
    expect(await client(server.url).get('kept')).toBe('yes');
  });

  it('refuses one whose Switchyard is still running, naming its pid', async () => {
    const dir = tempDir();
    await handStarted(dir);
    const owner = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    closers.push(() => owner.kill('SIGKILL'));
    writeFileSync(join(dir, 'redis.owner'), `${owner.pid}\n`);
    await expect(spawnRedis({ dir })).rejects.toThrow(`for the Switchyard running as pid ${owner.pid}`);
  });
});

/** The process group of `pid`. */
function pgid(pid: number): number {
  return Number(execFileSync('ps', ['-o', 'pgid=', '-p', String(pid)], { encoding: 'utf8' }).trim());
}

describe('the private redis-server and its owner', () => {
  it("runs in its own process group: a terminal's Ctrl-C leaves it serving the owner's graceful shutdown", async () => {
    const dir = childDir();
    const owner = run(['test/start/children/redis-owner.ts', dir, 'ctrl-c']);
    const started = JSON.parse((await waitFor(owner, /\{"pid".*\}/))[0]) as { pid: number; redisPid: number };
    // Not in the group a terminal signals (the owner's, as a foreground job)…
    expect(pgid(started.redisPid)).not.toBe(pgid(started.pid));
    // …so the Ctrl-C reaches the owner only: Redis still answers, and nothing was reported.
    process.kill(-started.pid, 'SIGINT');
    const report = JSON.parse((await waitFor(owner, /\{"answers".*\}/))[0]) as {
      answers: boolean;
      warnings: string[];
    };
    expect(report).toEqual({ answers: true, warnings: [] });
    expect(await owner.exited).toBe(0);
    expect(running(started.redisPid)).toBe(false);
  });

  it('is not reported nor restarted when it exits once its owner began shutting down', async () => {
    const dir = childDir();
    const owner = run(['test/start/children/redis-owner.ts', dir, 'shutdown-exit']);
    const report = JSON.parse((await waitFor(owner, /\{"logs".*\}/))[0]) as {
      logs: string[];
      warnings: string[];
    };
    expect(report.warnings).toEqual([]);
    expect(report.logs.some((l) => /exited during shutdown \(code 0\)/.test(l))).toBe(true);
    expect(await owner.exited).toBe(0);
  });

  it('is stopped by its watchdog when its owner is killed with kill -9', async () => {
    const dir = childDir();
    const owner = run(['test/start/children/redis-owner.ts', dir, 'owner']);
    const started = JSON.parse((await waitFor(owner, /\{"pid".*\}/))[0]) as { pid: number; redisPid: number };
    expect(running(started.redisPid)).toBe(true);
    process.kill(started.pid, 'SIGKILL');
    await owner.exited;
    await until(() => !running(started.redisPid), 10_000, 'the orphaned redis-server to stop');
  });
});
