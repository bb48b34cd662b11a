/**
 * The real `npm start`: starts on embedded defaults (its own redis-server, local platform, worker,
 * console), answers /readyz, stops gracefully at one Ctrl-C (which npm passes on too), and on SIGTERM
 * leaves no process of its group behind, nor its private redis-server (which runs in a process group
 * of its own: a terminal's Ctrl-C is Switchyard's to handle).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { redisServersFor } from './children/procs.js';

const root = new URL('../../', import.meta.url).pathname;
let child: ChildProcess | undefined;
const dataDir = mkdtempSync(join(tmpdir(), 'sy-start-'));

function groupMembers(pgid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '-g', String(pgid)], { encoding: 'utf8' })
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((n) => n > 0);
  } catch {
    return []; // ps exits 1 when no process matches
  }
}

afterAll(() => {
  if (child?.pid && groupMembers(child.pid).length > 0) process.kill(-child.pid, 'SIGKILL');
  for (const pid of redisServersFor(dataDir)) process.kill(pid, 'SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

/** `npm start` in its own process group (as a terminal's foreground job), on free ports. */
async function npmStart(): Promise<{ pgid: number; out: () => string; consoleUrl: string }> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/root',
    PORT: '0',
    LOCAL_ROUTER_PORT: '0',
    SWITCHYARD_DATA_DIR: dataDir,
    LOG_LEVEL: 'info',
  };
  const started = spawn('npm', ['start', '--silent'], {
    cwd: root,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = started;
  let out = '';
  started.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const consoleUrl = await new Promise<string>((resolve, reject) => {
    started.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /Console:\s+(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m?.[1]) resolve(m[1]);
    });
    started.once('exit', (code) => reject(new Error(`npm start exited with ${code}: ${out}`)));
  });
  return { pgid: started.pid ?? 0, out: () => out, consoleUrl };
}

/** Waits for the whole group to be gone (no orphans: redis-server, upstream servers, workers). */
async function groupGone(pgid: number): Promise<void> {
  for (let i = 0; i < 200 && groupMembers(pgid).length > 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(groupMembers(pgid)).toEqual([]);
}

describe('npm start', () => {
  it('runs on embedded defaults, is ready, and stops cleanly on SIGTERM', async () => {
    const { pgid, out, consoleUrl } = await npmStart();
    expect(out()).toMatch(/Local router:\s+http:\/\/127\.0\.0\.1:\d+/);
    const ready = await fetch(new URL('/readyz', consoleUrl));
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ok: true, platform: 'local' });
    const metrics = await (await fetch(new URL('/metrics', consoleUrl))).text();
    expect(metrics).toContain('switchyard_jobs_total');
    // npm and Switchyard in the group; the spawned redis-server outside it, in its own
    expect(groupMembers(pgid).length).toBeGreaterThan(1);
    const [redisPid] = redisServersFor(dataDir);
    expect(redisPid).toBeDefined();
    expect(groupMembers(pgid)).not.toContain(redisPid);

    const exited = new Promise<string>((resolve) =>
      child?.once('exit', (code, signal) => resolve(`${code}/${signal}`)),
    );
    // SIGTERM to npm itself, as a process manager would send it; npm forwards it to Switchyard.
    process.kill(pgid, 'SIGTERM');
    // npm re-raises the signal on itself once its child exited; Switchyard must have stopped cleanly.
    expect(['0/null', 'null/SIGTERM']).toContain(await exited);
    expect(out()).toMatch(/"msg":"stopped"/);
    expect(out()).not.toMatch(/shutdown step failed|took longer than/);
    await groupGone(pgid);
    // Switchyard stopped its redis-server before it exited
    expect(redisServersFor(dataDir)).toEqual([]);
  }, 60_000);

  it('one Ctrl-C (SIGINT to the whole group: npm passes it on too) shuts down gracefully, not forced', async () => {
    const { pgid, out } = await npmStart();
    const exited = new Promise<string>((resolve) =>
      child?.once('exit', (code, signal) => resolve(`${code}/${signal}`)),
    );
    process.kill(-pgid, 'SIGINT'); // what the terminal does at Ctrl-C
    expect(['0/null', 'null/SIGINT']).toContain(await exited);
    expect(out()).toMatch(/"msg":"stopped"/);
    // Before the fix: "forced shutdown: second signal", exit 130.
    expect(out()).not.toMatch(/forced shutdown|took longer than/);
    await groupGone(pgid);
    expect(redisServersFor(dataDir)).toEqual([]);
  }, 60_000);
});
