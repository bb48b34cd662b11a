/**
 * The test cluster (test/support/redis-cluster.ts) outlives no test process: on SIGTERM, SIGINT or
 * SIGHUP (a cancelled run, Ctrl-C) its process kills the nodes and removes their directory; after a
 * SIGKILL, which no process can handle, the next cluster or node started reaps them (never those of
 * the process starting it).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { startRedisNode } from '../support/redis-cluster.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/hold-cluster.ts', import.meta.url));

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

interface Holder {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly pids: readonly number[];
}

/** Runs the fixture; resolves with what it printed once its cluster is up. */
async function holdCluster(): Promise<Holder> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], { stdio: ['ignore', 'pipe', 'pipe'] });
  closers.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  });
  let out = '';
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const end = out.indexOf('\n');
      if (end >= 0) resolve(out.slice(0, end));
    });
    child.once('exit', (code) => reject(new Error(`the fixture exited (${code}): ${err}`)));
  });
  const held = JSON.parse(line) as { dir: string; pids: number[] };
  return { child, ...held };
}

/** Whether `pid` no longer runs (a zombie waiting for its reaper counts as gone). */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    return / Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\)/, ''));
  } catch {
    return true;
  }
}

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('a test cluster whose process is stopped without stop()', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    'is gone after %s: nodes killed, directory removed',
    async (signal) => {
      const held = await holdCluster();
      expect(held.pids.every((p) => !gone(p))).toBe(true);
      expect(existsSync(held.dir)).toBe(true);
      const exited = once(held.child, 'exit');
      held.child.kill(signal);
      const [code, by] = (await exited) as [number | null, NodeJS.Signals | null];
      // The process still ends as the signal ends it.
      expect({ code, by }).toEqual({ code: null, by: signal });
      await until('the nodes to be gone', () => held.pids.every(gone));
      expect(existsSync(held.dir)).toBe(false);
    },
    30_000,
  );

  it('is not reaped by a node its own process starts next', async () => {
    const first = await startRedisNode();
    closers.push(() => first.stop());
    const second = await startRedisNode();
    closers.push(() => second.stop());
    const client = new Redis({ port: first.port, password: first.password, retryStrategy: () => null });
    client.on('error', () => undefined);
    closers.push(async () => client.disconnect());
    expect(await client.ping()).toBe('PONG');
  });

  it('is reaped by the next start after SIGKILL, which its process cannot handle', async () => {
    const held = await holdCluster();
    const exited = once(held.child, 'exit');
    held.child.kill('SIGKILL');
    await exited;
    // The nodes outlive their owner…
    expect(held.pids.every((p) => !gone(p))).toBe(true);
    // …until a test cluster or node is started again.
    const node = await startRedisNode();
    closers.push(() => node.stop());
    await until('the orphaned nodes to be gone', () => held.pids.every(gone));
    expect(existsSync(held.dir)).toBe(false);
  }, 30_000);
});
