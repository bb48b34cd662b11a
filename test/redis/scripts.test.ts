/**
 * Every Lua script Switchyard sends names each key it touches in KEYS. On a Redis Cluster a script may
 * only touch keys of its own slot, and Redis 7 does not refuse one that builds a key name itself when
 * that key happens to live on the same node: it would work in tests and break in production after a
 * resharding. So the rule is checked in the source: in every script, each `redis.call` of a key command
 * has `KEYS[n]` as its key (every argument for the multi-key DEL and EXISTS).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** The arguments of the call whose `(` is at `open`, split at top-level commas. */
function callArguments(text: string, open: number): string[] {
  const args: string[] = [];
  let depth = 0;
  let current = '';
  for (let i = open + 1; i < text.length; i++) {
    const c = text[i] ?? '';
    if (c === '(' || c === '{' || c === '[') depth++;
    if (c === ')' || c === '}' || c === ']') {
      if (depth === 0) {
        args.push(current.trim());
        return args;
      }
      depth--;
    }
    if (c === ',' && depth === 0) {
      args.push(current.trim());
      current = '';
    } else current += c;
  }
  throw new Error(`unterminated call at ${open}`);
}

/** Commands whose every argument is a key. */
const ALL_KEYS = new Set(['DEL', 'EXISTS', 'UNLINK', 'MGET', 'TOUCH']);

/**
 * Commands that touch no key (Redis's own clock: claim leases on one clock for every replica, see
 * src/plan-store.ts CLAIM_LEASE_LUA); allowed in a script on a cluster node as anywhere.
 */
const NO_KEYS = new Set(['TIME']);

interface Call {
  readonly file: string;
  readonly command: string;
  readonly args: readonly string[];
}

/** Every `redis.call`/`redis.pcall` inside a template literal (a Lua script) of the app's code. */
function scriptCalls(): Call[] {
  const calls: Call[] = [];
  for (const file of ['src', 'handlers', 'jobs'].flatMap(sources)) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    for (const literal of text.matchAll(/`([^`]*)`/g)) {
      const lua = literal[1] ?? '';
      for (const m of lua.matchAll(/redis\.p?call\(/g)) {
        const [command = '', ...args] = callArguments(lua, (m.index ?? 0) + m[0].length - 1);
        calls.push({ file: relative(ROOT, join(ROOT, file)), command: command.replace(/'/g, ''), args });
      }
    }
  }
  return calls;
}

describe('Lua scripts', () => {
  const calls = scriptCalls();

  it('are found in every module that keeps state with a script', () => {
    const files = new Set(calls.map((c) => c.file));
    for (const f of [
      'src/queue.ts',
      'src/queue-keys.ts',
      'src/plan-store.ts',
      'src/alerts/dedupe.ts',
      'src/notices.ts',
      'src/platform/snapshot-poller.ts',
      'handlers/discord/watch.ts',
    ])
      expect(files).toContain(f);
    expect(calls.length).toBeGreaterThan(50);
  });

  it('name every key they touch in KEYS', () => {
    const undeclared = calls
      .filter((c) => {
        if (NO_KEYS.has(c.command.toUpperCase())) return c.args.length > 0;
        const keys = ALL_KEYS.has(c.command.toUpperCase()) ? c.args : c.args.slice(0, 1);
        return keys.length === 0 || keys.some((k) => !/^KEYS\[\d+\]$/.test(k));
      })
      .map((c) => `${c.file}: redis.call('${c.command}', ${c.args.join(', ')})`);
    expect(undeclared).toEqual([]);
  });
});
