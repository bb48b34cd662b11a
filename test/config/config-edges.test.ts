/**
 * src/config.ts: decisions no test pinned down (the console's default per platform
 * and the token it then requires, the PORT/LOCAL_ROUTER_PORT clash that only the local platform has, the
 * console token's 16-character minimum at its boundary, the HTTP port's limits).
 */
import { describe, expect, it } from 'vitest';
import { consoleEnabled, loadConfig, parseConfigFile, parseEnv } from '../../src/config.js';

const UNKEY = { PLATFORM: 'unkey', UNKEY_ROOT_KEY: 'unkey_root_0123456789' } as const;

describe('the console by platform', () => {
  it('is on by default with the local platform only; SWITCHYARD_CONSOLE decides when set', () => {
    expect(consoleEnabled({}, 'local')).toBe(true);
    expect(consoleEnabled({}, 'unkey')).toBe(false);
    expect(consoleEnabled({}, 'vercel')).toBe(false);
    expect(consoleEnabled({ SWITCHYARD_CONSOLE: 'on' }, 'unkey')).toBe(true);
    expect(consoleEnabled({ SWITCHYARD_CONSOLE: 'off' }, 'local')).toBe(false);
  });

  it('a bot on a real platform listening on a reachable address needs no console token (its console is off)', () => {
    expect(() => loadConfig({ ...UNKEY, HOST: '0.0.0.0' })).not.toThrow();
    // unless its console is turned on
    expect(() => loadConfig({ ...UNKEY, HOST: '0.0.0.0', SWITCHYARD_CONSOLE: 'on' })).toThrow(
      /^SWITCHYARD_CONSOLE_TOKEN: got nothing/,
    );
  });
});

describe('PORT and LOCAL_ROUTER_PORT', () => {
  it('clash on the local platform only: a real platform runs no local router', () => {
    expect(() => loadConfig({ PORT: '8080' })).toThrow(
      /^LOCAL_ROUTER_PORT: got 8080, expected a port other than PORT's/,
    );
    expect(loadConfig({ ...UNKEY, PORT: '8080' }).env.PORT).toBe(8080);
  });
});

describe('SWITCHYARD_CONSOLE_TOKEN', () => {
  it('takes 16 characters and refuses 15, never echoing it', () => {
    expect(parseEnv({ SWITCHYARD_CONSOLE_TOKEN: 'a'.repeat(16) }).SWITCHYARD_CONSOLE_TOKEN).toBe(
      'a'.repeat(16),
    );
    expect(() => parseEnv({ SWITCHYARD_CONSOLE_TOKEN: 'b'.repeat(15) })).toThrow(
      /SWITCHYARD_CONSOLE_TOKEN: got \(redacted\), expected a token of at least 16 characters/,
    );
  });
});

describe('durations in the config file', () => {
  it('take the longest a timer can wait (2^31-1 ms) and refuse one more', () => {
    const file = (ms: number) =>
      loadConfig({ SWITCHYARD_CONFIG: 'c.yml' }, () => `verify:\n  timeout: ${ms}\n`);
    expect(file(2 ** 31 - 1).file.verify.timeout).toBe(2 ** 31 - 1);
    expect(() => file(2 ** 31)).toThrow(
      /verify\.timeout: got 2147483648, expected a duration from 1s to 2147483647ms/,
    );
  });
});

describe('Slack credentials', () => {
  it('SLACK_APP_TOKEN (Socket Mode) stands in for SLACK_SIGNING_SECRET', () => {
    expect(() =>
      loadConfig({ SLACK_BOT_TOKEN: 'xoxb-1-2-abc', SLACK_APP_TOKEN: 'xapp-1-abc' }),
    ).not.toThrow();
    expect(() => loadConfig({ SLACK_BOT_TOKEN: 'xoxb-1-2-abc' })).toThrow(
      /^SLACK_SIGNING_SECRET: got nothing/,
    );
  });

  it("a surface's other settings without its bot token stop start-up naming the token (a typo is not taken for turning it off)", () => {
    expect(() => loadConfig({ SLACK_SIGNING_SECRET: 'abc' })).toThrow(
      /^SLACK_BOT_TOKEN: got nothing, expected the bot token \(xoxb-…\) when SLACK_SIGNING_SECRET is set \(without it Slack would not start; unset SLACK_SIGNING_SECRET to run without Slack\)$/,
    );
    expect(() => loadConfig({ SLACK_APP_TOKEN: 'xapp-1-abc', SLACK_SIGNING_SECRET: 'abc' })).toThrow(
      /^SLACK_BOT_TOKEN: got nothing, expected the bot token \(xoxb-…\) when SLACK_SIGNING_SECRET and SLACK_APP_TOKEN are set/,
    );
    expect(() => loadConfig({ DISCORD_APPLICATION_ID: '123456789012345678' })).toThrow(
      /^DISCORD_TOKEN: got nothing, expected the bot token when DISCORD_APPLICATION_ID is set/,
    );
    expect(() => loadConfig({})).not.toThrow();
  });
});

describe('REDIS_URL', () => {
  it("a cluster's seed nodes written as a redis:// URL are refused with the cluster URL to write", () => {
    expect(() => parseEnv({ REDIS_URL: 'redis://10.0.0.1:7000,10.0.0.2:7000' })).toThrow(
      /REDIS_URL: got "redis:\/\/10\.0\.0\.1:7000,10\.0\.0\.2:7000", expected one host in a redis:\/\/ URL; for a Redis Cluster list its nodes as redis\+cluster:\/\//,
    );
  });
});

describe('the YAML file', () => {
  it('refuses an alias bomb (more than 100 alias expansions), naming it', () => {
    const ten = (alias: string) => `[${Array(10).fill(alias).join(', ')}]`;
    const text = `local:\n  seed:\n    a: &a ${ten('x')}\n    b: &b ${ten('*a')}\n    c: ${ten('*b')}\n`;
    expect(() => loadConfig({ SWITCHYARD_CONFIG: 'bomb.yml' }, () => text)).toThrow(
      'bomb.yml: not valid YAML: too many aliases (at most 100 expansions)',
    );
  });
});

describe('Vercel project', () => {
  it("VERCEL_PROJECT stands in for the file's vercel.project", () => {
    const vercel = { PLATFORM: 'vercel', VERCEL_TOKEN: 'vercel-token-0123' } as const;
    expect(loadConfig({ ...vercel, VERCEL_PROJECT: 'my-app' }).env.VERCEL_PROJECT).toBe('my-app');
    expect(() => loadConfig(vercel)).toThrow(/^vercel\.project: got nothing/);
  });
});

describe('refusals of any size stay short (found by test/edges-random.test.ts)', () => {
  it('a list of many wrong items names the first ten and counts the rest', () => {
    const events = Array.from({ length: 5_000 }, (_, i) => `event${i}`);
    const text = `environments:\n  production:\n    notices:\n      events: ${JSON.stringify(events)}\n`;
    const message = ((): string => {
      try {
        parseConfigFile(text, 'sy.yml');
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    expect(message).toMatch(
      /^sy\.yml: environments\.production\.notices\.events\.0: got "event0", expected one of /,
    );
    expect(message).toContain('environments.production.notices.events.9: got "event9"');
    expect(message).not.toContain('events.10:');
    expect(message).toMatch(/; and 4990 more$/);
  });

  it('a huge misspelt key is clipped where it is named', () => {
    const key = 'k'.repeat(1_000);
    expect(() => parseConfigFile(`${key}: 1\n`, 'sy.yml')).toThrow(
      `sy.yml: (root): got a mapping of ${'k'.repeat(39)}…, expected only known keys ("${'k'.repeat(39)}…" is not one: misspelt?)`,
    );
  });
});

describe('http (what one client may hold of the HTTP port)', () => {
  it('defaults to 10 s for headers, 30 s for a whole request and 1024 connections; takes durations', () => {
    expect(parseConfigFile('', 'sy.yml').http).toEqual({
      headersTimeout: 10_000,
      requestTimeout: 30_000,
      maxConnections: 1024,
    });
    expect(
      parseConfigFile('http: { headersTimeout: 5s, requestTimeout: 2m, maxConnections: 64 }', 'sy.yml').http,
    ).toEqual({ headersTimeout: 5_000, requestTimeout: 120_000, maxConnections: 64 });
  });

  it('refuses a headers timeout longer than the request one (node would throw at start-up), naming both', () => {
    expect(() => parseConfigFile('http: { headersTimeout: 60s }', 'sy.yml')).toThrow(
      'sy.yml: http.headersTimeout: got "60s", expected at most http.requestTimeout (30s): the headers are part of the request',
    );
    // A bad duration is named on its own, not also as a comparison.
    expect(() => parseConfigFile('http: { requestTimeout: 50ms }', 'sy.yml')).toThrow(
      /^sy\.yml: http\.requestTimeout: got "50ms", expected a duration from 100ms to \d+ms[^;]*$/,
    );
    expect(() => parseConfigFile('http: { maxConnections: 0 }', 'sy.yml')).toThrow(
      'sy.yml: http.maxConnections: got 0, expected a whole number of connections, at least 1 (default 1024)',
    );
  });
});
