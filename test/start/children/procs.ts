/**
 * Child processes of the start-up tests: spawned in their own process group (as a terminal's foreground
 * job), their output collected, waited for by what they print or by their exit, and killed afterwards
 * with everything they started (`killStarted`: their groups, and the redis-servers serving the data
 * directories the tests made).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = new URL('../../../', import.meta.url).pathname;

export interface Run {
  readonly child: ChildProcess;
  /** stdout and stderr so far. */
  out(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
}

const children: ChildProcess[] = [];
const dirs: string[] = [];

/** A temporary data directory, removed by `killStarted`. */
export function tempDir(prefix = 'sy-start-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** Runs `node --import tsx <args>` from the repository root with only `env` (and PATH, HOME). */
export function run(args: readonly string[], env: Record<string, string> = {}): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env },
    detached: true, // its own process group, as a terminal's foreground job
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  const add = (d: Buffer) => {
    out += d.toString();
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out: () => out, exited };
}

/** Resolves with the first match of `re` in the output; rejects if the process exits without one. */
export function waitFor(r: Run, re: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = re.exec(r.out());
      if (!m) return false;
      r.child.stdout?.off('data', check);
      r.child.stderr?.off('data', check);
      resolve(m);
      return true;
    };
    if (check()) return;
    r.child.stdout?.on('data', check);
    r.child.stderr?.on('data', check);
    void r.exited.then(() => {
      // the last chunks may arrive just before the exit event
      setImmediate(() => {
        if (!check()) reject(new Error(`exited before printing ${re}:\n${r.out()}`));
      });
    });
  });
}

/** Whether process `pid` runs (a zombie waiting to be reaped does not). */
export function running(pid: number): boolean {
  try {
    const stat = execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).trim();
    return stat !== '' && !stat.startsWith('Z');
  } catch {
    return false; // ps exits 1 when no process matches
  }
}

/** The pids of the redis-servers serving a socket inside `dir` (redis-server shows it in its title). */
export function redisServersFor(dir: string): number[] {
  return execFileSync('ps', ['-eo', 'pid=,stat=,args='], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(
      ([, stat, ...args]) =>
        !stat?.startsWith('Z') && args.join(' ').includes('redis-server') && args.join(' ').includes(dir),
    )
    .map(([pid]) => Number(pid));
}

/** Resolves once `gone()` holds, checking every 20 ms; rejects after `ms`. */
export async function until(gone: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!gone()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Kills every process group `run` started and every redis-server serving a `tempDir`; removes them. */
export function killStarted(extraPids: readonly number[] = []): void {
  for (const c of children.splice(0)) {
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(-c.pid, 'SIGKILL');
      } catch {}
    }
  }
  for (const d of dirs.splice(0)) {
    for (const pid of redisServersFor(d)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    rmSync(d, { recursive: true, force: true });
  }
  for (const pid of extraPids) {
    try {
      if (running(pid)) process.kill(pid, 'SIGKILL');
    } catch {}
  }
}
