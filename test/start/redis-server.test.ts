/**
 * The private redis-server (src/redis-server.ts) is supervised: one that dies is started again on the
 * same socket with its data (AOF); one left serving the data directory by a Switchyard that died
 * (`kill -9` orphans it) is shut down and replaced; one whose Switchyard still runs is refused, naming it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRedis } from '../../src/redis.js';
import { ensureRedisBinary, type SpawnedRedis, spawnRedis } from '../../src/redis-server.js';

const closers: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
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
    const server = await started(tempDir(), lines);
    const c = client(server.url);
    await c.set('kept', 'yes');
    await c.call('BGREWRITEAOF');
    const first = server.pid;
    const back = new Promise<void>((resolve) => c.once('ready', () => resolve()));
    process.kill(first ?? 0, 'SIGKILL');
    await back; // ioredis reconnects once the new redis-server listens on the same socket
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
