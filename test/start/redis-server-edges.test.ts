/**
 * src/redis-server.ts: the private redis-server is reachable by its owner only (a
 * unix socket of mode 700, no TCP port: it has no password), and keeps what a queue needs (AOF fsynced
 * every second, no eviction, no RDB snapshots).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRedis } from '../../src/redis.js';
import { alive, spawnRedis } from '../../src/redis-server.js';

const closers: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

describe('the private redis-server', () => {
  it('listens on a socket only its user may use, on no TCP port, with AOF every second and no eviction', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-review-redis-'));
    closers.push(() => rmSync(dir, { recursive: true, force: true }));
    const redis = await spawnRedis({ dir });
    closers.push(() => redis.stop());
    expect(statSync(redis.socketPath).mode & 0o777).toBe(0o700);
    const r = createRedis(redis.url);
    closers.push(() => r.quit());
    const get = async (name: string) => ((await r.call('CONFIG', 'GET', name)) as string[])[1];
    expect(await get('port')).toBe('0');
    expect(await get('appendonly')).toBe('yes');
    expect(await get('appendfsync')).toBe('everysec');
    expect(await get('maxmemory-policy')).toBe('noeviction');
    expect(await get('save')).toBe('');
  });
});

describe('alive (whose redis-server a data directory is)', () => {
  it('never takes this process for a running owner: a restart with the same pid (pid 1 in a container) owns the directory', () => {
    expect(alive(process.pid)).toBe(false);
    expect(alive(process.ppid)).toBe(true);
  });
});
