/** Config parsing: defaults, every bad value named with what was expected, secrets never echoed. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  envSchema,
  fileConfigSchema,
  httpUrl,
  isSecretKey,
  loadConfig,
  localHttpUrl,
  parseConfigFile,
  parseDuration,
  parseEnv,
  parseFlags,
} from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';

describe('env vars', () => {
  it('has defaults for the embedded setup', () => {
    const env = parseEnv({});
    expect(env.PORT).toBe(3000);
    expect(env.LOCAL_ROUTER_PORT).toBe(8080);
    expect(env.UNKEY_API_URL).toBe('https://api.unkey.com');
    expect(loadConfig({}, () => '').platform).toBe('local');
  });
  it('names the key, the value and the expectation', () => {
    expect(() => parseEnv({ PORT: 'abc' })).toThrow(/PORT: got "abc", expected a port number/);
    expect(() => parseEnv({ PORT: '70000' })).toThrow(
      /PORT: got "70000", expected a port between 0 and 65535/,
    );
    expect(() => parseEnv({ REDIS_URL: 'localhost:6379' })).toThrow(
      /REDIS_URL: got "localhost:6379", expected redis:\/\//,
    );
    expect(() => parseEnv({ PLATFORM: 'heroku' })).toThrow(
      /PLATFORM: got "heroku", expected one of local, unkey, vercel/,
    );
  });
  it('never echoes a secret value', () => {
    try {
      parseEnv({ SLACK_BOT_TOKEN: 'xoxp-user-token-secret' });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect(String((e as Error).message)).toContain(
        'SLACK_BOT_TOKEN: got (redacted), expected a bot token starting with xoxb-',
      );
      expect(String((e as Error).message)).not.toContain('xoxp-user-token-secret');
    }
  });
  it('normalises DISCORD_TOKEN: a "Bot " or "Bearer " prefix copied along is dropped once, here', () => {
    const base = { DISCORD_APPLICATION_ID: '123456789012345678' };
    expect(parseEnv({ ...base, DISCORD_TOKEN: 'MTIz.abc.def' }).DISCORD_TOKEN).toBe('MTIz.abc.def');
    expect(parseEnv({ ...base, DISCORD_TOKEN: 'Bot MTIz.abc.def' }).DISCORD_TOKEN).toBe('MTIz.abc.def');
    expect(parseEnv({ ...base, DISCORD_TOKEN: '  bot   MTIz.abc.def ' }).DISCORD_TOKEN).toBe('MTIz.abc.def');
    expect(parseEnv({ ...base, DISCORD_TOKEN: 'Bearer MTIz.abc.def' }).DISCORD_TOKEN).toBe('MTIz.abc.def');
    expect(loadConfig({ ...base, DISCORD_TOKEN: 'Bot MTIz.abc.def' }).env.DISCORD_TOKEN).toBe('MTIz.abc.def');
    // Only the prefix: nothing to send (the value itself is a secret: never echoed).
    expect(() => parseEnv({ ...base, DISCORD_TOKEN: 'Bot ' })).toThrow(
      /DISCORD_TOKEN: got \(redacted\), expected the bot token itself/,
    );
  });
  it('DISCORD_GATEWAY: on by default, off for a REST-only replica, anything else refused by name', () => {
    expect(parseEnv({}).DISCORD_GATEWAY).toBe('on');
    expect(parseEnv({ DISCORD_GATEWAY: 'off' }).DISCORD_GATEWAY).toBe('off');
    expect(parseEnv({ DISCORD_GATEWAY: 'on' }).DISCORD_GATEWAY).toBe('on');
    expect(() => parseEnv({ DISCORD_GATEWAY: 'false' })).toThrow(
      /DISCORD_GATEWAY: got "false", expected on or off/,
    );
  });
  it('treats empty values as unset', () => {
    expect(parseEnv({ PORT: '' }).PORT).toBe(3000);
  });
  it('requires the credentials that go with a chosen platform or surface', () => {
    expect(() => loadConfig({ PLATFORM: 'unkey' })).toThrow(/UNKEY_ROOT_KEY: got nothing/);
    expect(() => loadConfig({ SLACK_BOT_TOKEN: 'xoxb-1' })).toThrow(/SLACK_SIGNING_SECRET: got nothing/);
    expect(() => loadConfig({ DISCORD_TOKEN: 'abc' })).toThrow(/DISCORD_APPLICATION_ID: got nothing/);
  });
});

describe('YAML config file', () => {
  it('parses environments, durations and defaults', () => {
    const cfg = parseConfigFile(
      [
        'platform: local',
        'environments:',
        '  production:',
        '    twoPersonRule: true',
        '    allow:',
        '      slack: { users: [U1], groups: [S1] }',
        '    notices: { reminderEvery: 2h }',
        'verify: { timeout: 90s }',
      ].join('\n'),
    );
    expect(cfg.environments.production?.twoPersonRule).toBe(true);
    expect(cfg.environments.production?.allow?.slack.groups).toEqual(['S1']);
    expect(cfg.environments.production?.notices.reminderEvery).toBe(2 * 3_600_000);
    expect(cfg.verify.timeout).toBe(90_000);
    expect(cfg.alerts.correlationWindow).toBe(3_600_000);
  });
  it('names the file, the key path and the expectation', () => {
    expect(() =>
      parseConfigFile('environments:\n  production:\n    twoPersonRule: "yes"\n', 'sy.yml'),
    ).toThrow(/sy\.yml: environments\.production\.twoPersonRule: got "yes", expected true or false/);
    expect(() => parseConfigFile('verify: { timeout: soon }', 'sy.yml')).toThrow(
      /verify\.timeout: got "soon"/,
    );
    expect(() => parseConfigFile('environments:\n  Prod!: {}\n', 'sy.yml')).toThrow(
      /expected a lowercase slug/,
    );
    expect(() => parseConfigFile('platfrom: local\n', 'sy.yml')).toThrow(/platfrom/);
    expect(() => parseConfigFile('a: [\n', 'sy.yml')).toThrow(/sy\.yml: not valid YAML/);
  });
  it('reports an unreadable file by name', () => {
    expect(() =>
      loadConfig({ SWITCHYARD_CONFIG: '/nope.yml' }, () => {
        throw Object.assign(new Error('x'), { code: 'ENOENT' });
      }),
    ).toThrow(/SWITCHYARD_CONFIG: cannot read "\/nope.yml": ENOENT/);
  });
  it('parses durations', () => {
    expect(parseDuration('15m')).toBe(900_000);
    expect(() => parseDuration('15 minutes')).toThrow(ConfigError);
  });
});

describe('config errors never echo a secret', () => {
  const SECRET = 'sntry_s3cr3t_value_123';
  const message = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      return (e as Error).message;
    }
    return '(no error)';
  };

  it('a misspelt key beside a secret names the key and shows the parent by its keys, not its values', () => {
    const m = message(() =>
      parseConfigFile(`alerts:\n  sentrySecret: ${SECRET}\n  outsidewindow: note\n`, 'sy.yml'),
    );
    expect(m).toContain('outsidewindow');
    expect(m).toContain('sentrySecret');
    expect(m).not.toContain(SECRET);
    const root = message(() =>
      parseConfigFile(`alerts: { pagerdutySecret: ${SECRET} }\nverfy: {}\n`, 'sy.yml'),
    );
    expect(root).toContain('verfy');
    expect(root).not.toContain(SECRET);
  });

  it('a YAML error says where, without quoting the line (it may hold the secret)', () => {
    const m = message(() =>
      parseConfigFile(`alerts:\n  sentrySecret: old\n  sentrySecret: ${SECRET}\n`, 'sy.yml'),
    );
    expect(m).toMatch(/^sy\.yml: not valid YAML: .*line 3/);
    expect(m).not.toContain(SECRET);
  });

  describe('a value starting with a YAML indicator (a generated secret written unquoted)', () => {
    afterEach(() => vi.restoreAllMocks());
    /** parseConfigFile's message, and what the YAML library printed through process.emitWarning. */
    const refusal = (text: string) => {
      const printed: string[] = [];
      vi.spyOn(process, 'emitWarning').mockImplementation(((w: unknown) => {
        printed.push(w instanceof Error ? w.message : String(w));
      }) as typeof process.emitWarning);
      return { message: message(() => parseConfigFile(text, 'sy.yml')), printed };
    };

    it('`!…` (a tag) is refused naming the key, line and column; nothing is printed', () => {
      // Before: the library's warning, through process.emitWarning, printed the line with the secret.
      const r = refusal(`alerts:\n  sentrySecret: !${SECRET}\n`);
      expect(r).toEqual({
        message:
          'sy.yml: not valid YAML: alerts.sentrySecret: unresolved tag at line 2, column 17 (quote values that start with ! or *)',
        printed: [],
      });
    });

    it('`*…` (an alias) is refused naming the key, line and column, not the alias', () => {
      // Before: "not valid YAML: Unresolved alias (the anchor must be set before the alias): <secret>".
      const r = refusal(`alerts:\n  pagerdutySecret: *${SECRET}\n`);
      expect(r).toEqual({
        message:
          'sy.yml: not valid YAML: alerts.pagerdutySecret: unresolved alias at line 2, column 20 (quote values that start with * or !)',
        printed: [],
      });
    });

    it('a tag is refused, not read as "" (a value silently read differently)', () => {
      const r = refusal('environments:\n  production:\n    alertMatchers: [checkout, !prod]\n');
      expect(r.message).toBe(
        'sy.yml: not valid YAML: environments.production.alertMatchers.1: unresolved tag at line 3, column 31 (quote values that start with ! or *)',
      );
      expect(r.printed).toEqual([]);
    });

    it('no YAML error quotes the source: only codes, lines, columns and keys', () => {
      for (const text of [
        `alerts:\n  sentrySecret: "${SECRET}\n`,
        `alerts:\n  sentrySecret: @${SECRET}\n`,
        `alerts:\n  sentrySecret: \`${SECRET}\n`,
        `alerts: { sentrySecret: [${SECRET}\n`,
        `alerts:\n\tsentrySecret: ${SECRET}\n`,
        `alerts:\n  sentrySecret: !!map ${SECRET}\n`,
        `alerts:\n  sentrySecret: &${SECRET}: x\n`,
        `%${SECRET} x\n---\nalerts: {}\n`,
        `alerts: {}\n---\n${SECRET}: 1\n`,
        `alerts:\n  sentrySecret: *a\n  pagerdutySecret: &${SECRET} *${SECRET}\n`,
      ]) {
        const r = refusal(text);
        expect(r.message, text).toMatch(/^sy\.yml: not valid YAML: .*line \d+, column \d+/);
        expect(r.message, text).not.toContain(SECRET.slice(0, 8));
        expect(r.printed, text).toEqual([]);
      }
    });
  });

  it('a URL with a password and a wrong scheme is named with its credentials masked', () => {
    const m = message(() => loadConfig({ REDIS_URL: `http://default:${SECRET}@redis.internal:6379` }));
    expect(m).toContain('REDIS_URL: got "http://***@redis.internal:6379"');
    expect(m).not.toContain(SECRET);
    const at = message(() => loadConfig({ REDIS_URL: 'http://default:p@ss@redis.internal:6379' }));
    expect(at).not.toContain('ss@');
    const token = message(() => loadConfig({ REDIS_URL: `https://${SECRET}@redis.internal` }));
    expect(token).not.toContain(SECRET);
  });
});

/** The secrets Switchyard reads: every one must be redacted in an error, and nothing else. */
const SECRET_ENV = [
  'SWITCHYARD_CONSOLE_TOKEN',
  'SLACK_BOT_TOKEN',
  'SLACK_SIGNING_SECRET',
  'SLACK_APP_TOKEN',
  'DISCORD_TOKEN',
  'UNKEY_ROOT_KEY',
  'VERCEL_TOKEN',
  'ALERT_WEBHOOK_SECRET',
];
const SECRET_FILE_KEYS = ['alerts.sentrySecret', 'alerts.pagerdutySecret'];

/** zod's own English, which no config error may show (each key says what it expected, in words). */
const ZOD_WORDING =
  /Invalid (input|option|string|number)|Too (small|big)|Unrecognized key|received \w+|>=|<=/;

/**
 * The key path of every leaf of the config file's schema (`environments.production.unkey.project`, …),
 * walking through defaults, optionals and transforms; a record is entered under the key `production`.
 */
function leafKeys(schema: z.ZodType, path: string[] = []): string[][] {
  const def = schema.def as unknown as {
    type: string;
    innerType?: z.ZodType;
    in?: z.ZodType;
    shape?: Record<string, z.ZodType>;
    valueType?: z.ZodType;
  };
  if (def.innerType) return leafKeys(def.innerType, path);
  if (def.type === 'pipe' && def.in) return leafKeys(def.in, path);
  if (def.type === 'object' && def.shape) {
    return Object.entries(def.shape).flatMap(([k, v]) => leafKeys(v, [...path, k]));
  }
  if (def.type === 'record' && def.valueType) return leafKeys(def.valueType, [...path, 'production']);
  return [path];
}

/** `{a: {b: value}}` for the path a.b. */
function nested(path: readonly string[], value: unknown): unknown {
  return path.reduceRight<unknown>((inner, key) => ({ [key]: inner }), value);
}

describe('config errors show every value but a secret, in words', () => {
  it('every env var: a secret is redacted, any other shows the value it got', () => {
    // Every env var is classified here, so a new one cannot slip in unnoticed.
    const all = Object.keys(envSchema.shape);
    expect(all.filter(isSecretKey).sort()).toEqual([...SECRET_ENV].sort());
    for (const key of all) {
      // blank-but-not-empty is refused by every env var, secrets included
      const m = refused({ [key]: ' \t ' });
      if (SECRET_ENV.includes(key)) expect(m, key).toContain(`${key}: got (redacted), expected `);
      else expect(m, key).toContain(`${key}: got " \\t ", expected `);
      expect(m, key).not.toMatch(ZOD_WORDING);
    }
  });

  it('UNKEY_API_URL is no secret: the "KEY" in UNKEY is not the word KEY', () => {
    expect(refused({ UNKEY_API_URL: 'api.unkey.com' })).toContain(
      'UNKEY_API_URL: got "api.unkey.com", expected an http:// or https:// URL',
    );
    expect(isSecretKey('UNKEY_ROOT_KEY')).toBe(true);
    expect(isSecretKey('environments.production.unkey.project')).toBe(false);
    expect(isSecretKey('apiKey')).toBe(true);
    expect(isSecretKey('APIKey')).toBe(true);
    expect(isSecretKey('--platform-url')).toBe(false);
  });

  it('every key of the config file: a secret is redacted, any other shows the value it got', () => {
    const keys = leafKeys(fileConfigSchema).filter((p) => p.join('.') !== 'local.seed');
    expect(keys.length).toBeGreaterThan(25);
    const redacted: string[] = [];
    for (const path of keys) {
      const key = path.join('.');
      // a number no string, list, boolean or whole-number key takes; a word no duration takes
      let m = '(no error)';
      for (const bad of [987654321.5, 'zz-987654321']) {
        try {
          parseConfigFile(JSON.stringify(nested(path, bad)), 'c.yml');
        } catch (e) {
          m = (e as Error).message;
          break;
        }
      }
      expect(m, key).not.toMatch(ZOD_WORDING);
      // this key's part (a required sibling, such as unkey.project beside unkey.app, adds its own)
      const mine = m
        .replace(/^c\.yml: /, '')
        .split('; ')
        .find((part) => part.startsWith(`${key}: got `));
      expect(mine, `${key} in ${m}`).toMatch(/, expected /);
      if (mine?.startsWith(`${key}: got (redacted)`)) {
        redacted.push(key);
        expect(m, key).not.toContain('987654321');
      } else expect(mine, key).toMatch(/: got (987654321\.5|"zz-987654321"), /);
    }
    expect(redacted.sort()).toEqual([...SECRET_FILE_KEYS].sort());
  });

  it('environments.<env>.unkey.* (slugs, not secrets) show the value they got', () => {
    expect(() =>
      parseConfigFile(
        'environments:\n  production:\n    unkey: {project: 42, environment: production}\n',
        'c.yml',
      ),
    ).toThrow('c.yml: environments.production.unkey.project: got 42, expected the Unkey project slug or id');
  });

  it.each([
    [
      'LOG_LEVEL',
      () => parseEnv({ LOG_LEVEL: 'verbose' }),
      'LOG_LEVEL: got "verbose", expected one of trace, debug, info, warn, error, fatal, silent',
    ],
    [
      'platform',
      () => parseConfigFile('platform: heroku'),
      'platform: got "heroku", expected one of local, unkey, vercel',
    ],
    [
      'alerts.outsideWindow',
      () => parseConfigFile('alerts: {outsideWindow: silent}'),
      'alerts.outsideWindow: got "silent", expected nothing or note',
    ],
    [
      'local.buildTime',
      () => parseConfigFile('local: {buildTime: -1}'),
      'local.buildTime: got -1, expected a duration from 0ms to 2147483647ms',
    ],
    [
      'local.buildTime (neither)',
      () => parseConfigFile('local: {buildTime: true}'),
      'local.buildTime: got true, expected a duration such as 30s, 15m or 4h, or a number of milliseconds',
    ],
    [
      'alerts.maxBodyBytes',
      () => parseConfigFile('alerts: {maxBodyBytes: 1.5}'),
      'alerts.maxBodyBytes: got 1.5, expected a whole number of bytes, at least 1',
    ],
    [
      'alerts.maxBodyBytes 0',
      () => parseConfigFile('alerts: {maxBodyBytes: 0}'),
      'alerts.maxBodyBytes: got 0, expected a whole number of bytes, at least 1',
    ],
    [
      'notices.events',
      () => parseConfigFile('environments: {production: {notices: {events: [deploy]}}}'),
      'notices.events.0: got "deploy", expected one of ready, failed, traffic_moved, standby, stopped',
    ],
    [
      'notices.workingHoursUtc',
      () => parseConfigFile('environments: {production: {notices: {workingHoursUtc: [8]}}}'),
      'workingHoursUtc: got a list of 1, expected [first hour, end hour] in UTC, e.g. [8, 20]',
    ],
    [
      'notices.workingHoursUtc.0',
      () => parseConfigFile('environments: {production: {notices: {workingHoursUtc: [8.5, 20]}}}'),
      'workingHoursUtc.0: got 8.5, expected the first working hour: a whole number from 0 to 23',
    ],
    [
      'alertMatchers',
      () => parseConfigFile('environments: {production: {alertMatchers: [""]}}'),
      'alertMatchers.0: got "", expected a non-empty substring or /regex/flags',
    ],
    [
      'channels.discord',
      () => parseConfigFile('environments: {production: {channels: {discord: abc}}}'),
      'channels.discord: got "abc", expected a numeric Discord channel id',
    ],
    [
      'a boolean',
      () => parseConfigFile('environments: {production: {twoPersonRule: 1}}'),
      'twoPersonRule: got 1, expected true or false',
    ],
    [
      'a mapping',
      () => parseConfigFile('environments: [production]'),
      'environments: got a list of 1, expected a mapping',
    ],
    [
      'a misspelt key',
      () => parseConfigFile('platfrom: local'),
      '(root): got a mapping of platfrom, expected only known keys ("platfrom" is not one: misspelt?)',
    ],
  ])("%s: says what it expected in words, not zod's English", (_key, parse, expected) => {
    let m = '(no error)';
    try {
      parse();
    } catch (e) {
      m = (e as Error).message;
    }
    expect(m).toContain(expected);
    expect(m).not.toMatch(ZOD_WORDING);
  });

  it('an unquoted Discord id (a YAML number, already rounded) is refused with the advice to quote it', () => {
    // 112233445566778899 is past 2^53: YAML hands over 112233445566778900
    for (const [yaml, key] of [
      ['environments: {production: {channels: {discord: 112233445566778899}}}', 'channels.discord'],
      ['environments: {production: {allow: {discord: {roles: [112233445566778899]}}}}', 'roles.0'],
      ['environments: {production: {allow: {discord: {users: [112233445566778899]}}}}', 'users.0'],
      ['alerts: {watch: {discord: [112233445566778899]}}', 'watch.discord.0'],
    ] as const) {
      expect(() => parseConfigFile(yaml, 'c.yml'), key).toThrow(
        new RegExp(
          `${key.replace(/\./g, '\\.')}: got 112233445566778900, expected (the|each) Discord \\w+ id in quotes, e\\.g\\. "\\d+": unquoted, YAML reads it as a number and rounds it`,
        ),
      );
    }
    // quoted, it is the id
    expect(
      parseConfigFile('environments: {production: {channels: {discord: "112233445566778899"}}}').environments
        .production?.channels.discord,
    ).toBe('112233445566778899');
  });
});

describe("people: one person's accounts on several chat surfaces", () => {
  it('links a Slack user, a Discord user and a console name as one person; none by default', () => {
    const cfg = parseConfigFile(
      [
        'people:',
        '  - { name: Alice, slack: U0ALICE, discord: "112233445566778899" }',
        '  - { slack: W0BOB, console: bob }',
      ].join('\n'),
    );
    expect(cfg.people).toEqual([
      { name: 'Alice', slack: 'U0ALICE', discord: '112233445566778899' },
      { slack: 'W0BOB', console: 'bob' },
    ]);
    expect(parseConfigFile('platform: local\n').people).toEqual([]);
  });

  it('refuses an entry of one account, an account in two entries, and ids of the wrong kind, naming the key', () => {
    expect(refusedFile('people:\n  - { slack: U0ALICE }\n', 'sy.yml')).toMatch(
      /sy\.yml: people\.0: .*expected the accounts of one person on at least two of slack, discord and console/,
    );
    expect(
      refusedFile(
        'people:\n  - { slack: U0ALICE, console: alice }\n  - { slack: U0ALICE, discord: "112233445566778899" }\n',
        'sy.yml',
      ),
    ).toContain(
      'people.1.slack: got "U0ALICE", expected each account in one entry only: slack U0ALICE is also in people.0',
    );
    expect(refusedFile('people:\n  - { slack: "#alice", console: alice }\n', 'sy.yml')).toMatch(
      /people\.0\.slack: got "#alice", expected a Slack user id, e\.g\. U012ABCDEF/,
    );
    expect(refusedFile('people:\n  - { slack: U0ALICE, discord: 112233445566778899 }\n', 'sy.yml')).toMatch(
      /people\.0\.discord: .*expected the Discord user id in quotes/,
    );
    expect(refusedFile('people:\n  - { slack: U0ALICE, email: a@example.com }\n', 'sy.yml')).toMatch(
      /people\.0.*email/,
    );
  });
});

/** Refused by parseConfigFile: the ConfigError's message. */
function refusedFile(text: string, fileName: string): string {
  try {
    parseConfigFile(text, fileName);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error(`accepted ${text}`);
}

/** Refused by parseEnv: the ConfigError's message. */
function refused(env: Record<string, string>): string {
  try {
    parseEnv(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(env)}`);
}

describe('REDIS_URL is validated as a whole URL, not only by its scheme', () => {
  it('refuses a non-numeric, zero or out-of-range port, naming REDIS_URL without the password', () => {
    for (const url of [
      'redis://:s3cret@127.0.0.1:abc',
      'redis://:s3cret@127.0.0.1:99999',
      'redis://:s3cret@127.0.0.1:0',
    ]) {
      const msg = refused({ REDIS_URL: url });
      expect(msg).toMatch(/REDIS_URL: got .*the port is not a number from 1 to 65535/);
      expect(msg).not.toContain('s3cret');
    }
  });
  it('refuses a password with invalid percent-encoding (start-up died with a bare "URI malformed")', () => {
    const msg = refused({ REDIS_URL: 'redis://:50%off@127.0.0.1:6379' });
    expect(msg).toMatch(/REDIS_URL: .*password is not valid percent-encoding/);
    expect(msg).not.toContain('50%off');
    expect(refused({ REDIS_URL: 'redis://b%ZZob:pw@127.0.0.1:6379' })).toMatch(/user name is not valid/);
  });
  it('refuses a database that is not a number (silently used db 0), and a missing host', () => {
    expect(refused({ REDIS_URL: 'redis://127.0.0.1:6379/abc' })).toMatch(
      /REDIS_URL: .*the path is not a database number/,
    );
    expect(refused({ REDIS_URL: 'redis://:pw@:6379' })).toMatch(/REDIS_URL: .*there is no host/);
    expect(refused({ REDIS_URL: 'unix://relative.sock' })).toMatch(/REDIS_URL: .*socket path/);
  });
  it('shows a mistyped or missing scheme with everything up to the last @ masked (it was echoed whole)', () => {
    for (const [url, shown] of [
      ['redis//u:Sup3rS3cret@host', '"***@host"'],
      [':Sup3rS3cret@host:6379', '"***@host:6379"'],
      ['redis:/u:Sup3rS3cret@host:6379', '"redis:/***@host:6379"'],
      ['redis:/u:Sup3r@S3cret@host:6379', '"redis:/***@host:6379"'],
      ['redis//u:Sup3r S3cret@host', '"***@host"'],
    ] as const) {
      const msg = refused({ REDIS_URL: url });
      expect(msg, url).toContain(`REDIS_URL: got ${shown}, expected redis://host:port`);
      expect(msg, url).not.toContain('S3cret');
    }
  });
  it('refuses an @ of the password written unencoded, telling to write it %40, without echoing it', () => {
    for (const url of [
      'redis://user:p@ss@Sup3rS3cret@host:6379',
      'rediss://:Sup3r@S3cret@host',
      'redis+cluster://user:Sup3r@S3cret@h1:7000,h2:7000',
    ]) {
      const msg = refused({ REDIS_URL: url });
      expect(msg, url).toMatch(
        /^Invalid environment: REDIS_URL: got "redis(s|\+cluster)?:\/\/\*\*\*@(host|h1)[^"]*", expected .*the user name or password contains an @ that is not percent-encoded: write each @ in them as %40$/,
      );
      expect(msg, url).not.toMatch(/S3cret|p@ss/);
    }
    // Percent-encoded, it is the same password, taken.
    expect(parseEnv({ REDIS_URL: 'redis://user:p%40ss@host:6379' }).REDIS_URL).toBe(
      'redis://user:p%40ss@host:6379',
    );
  });
  it('accepts the documented forms', () => {
    for (const url of [
      'redis://127.0.0.1:6379',
      'redis://localhost',
      'redis://default:p%40ss%25word@redis.internal:6380/2',
      'rediss://user:pw@redis.example.com:6380/0',
      'redis://[::1]:6379/1',
      'redis://redis_node_1:6379',
      'unix:///run/redis.sock',
      '/run/redis.sock',
    ]) {
      expect(parseEnv({ REDIS_URL: url }).REDIS_URL).toBe(url);
    }
  });
});

describe('PORT / LOCAL_ROUTER_PORT / HOST', () => {
  it('refuses whitespace (coerced to 0: a random port) and hex or exponent spellings', () => {
    expect(refused({ PORT: '   ' })).toMatch(/PORT: got " {3}", expected a port number/);
    expect(refused({ LOCAL_ROUTER_PORT: '0x1F90' })).toMatch(/LOCAL_ROUTER_PORT: got "0x1F90"/);
    expect(refused({ PORT: '3e3' })).toMatch(/PORT: got "3e3"/);
    expect(refused({ PORT: '-1' })).toMatch(/PORT: got "-1"/);
    expect(refused({ PORT: '80.5' })).toMatch(/PORT: got "80.5"/);
  });
  it('takes decimal ports, 0 included (any free port, as the tests use)', () => {
    expect(parseEnv({ PORT: '0', LOCAL_ROUTER_PORT: '65535' })).toMatchObject({
      PORT: 0,
      LOCAL_ROUTER_PORT: 65535,
    });
  });
  it('refuses PORT and LOCAL_ROUTER_PORT on one port when the local router runs', () => {
    expect(() => loadConfig({ PORT: '4000', LOCAL_ROUTER_PORT: '4000' })).toThrow(
      /LOCAL_ROUTER_PORT: got 4000, expected a port other than PORT's/,
    );
    expect(loadConfig({ PORT: '0', LOCAL_ROUTER_PORT: '0' }).env.PORT).toBe(0);
  });
  it('trims HOST, takes IP addresses (IPv6 with or without brackets) and host names, refuses the rest', () => {
    expect(parseEnv({ HOST: ' 127.0.0.1 ' }).HOST).toBe('127.0.0.1');
    expect(parseEnv({ HOST: '[::1]' }).HOST).toBe('::1');
    expect(parseEnv({ HOST: '::' }).HOST).toBe('::');
    expect(parseEnv({ HOST: 'switchyard.internal' }).HOST).toBe('switchyard.internal');
    for (const host of ['   ', 'two words', 'http://0.0.0.0', '999.1.1.1', '127.0.0.1:3000', '[not-v6]']) {
      expect(refused({ HOST: host })).toMatch(/HOST: got .*expected an IP address .* or a host name/);
    }
  });
});

describe('API URLs', () => {
  it('refuses a URL without http(s):// (host:port, other schemes), naming the key and the form', () => {
    expect(refused({ VERCEL_API_URL: 'api.vercel.com:443' })).toMatch(
      /VERCEL_API_URL: got "api\.vercel\.com:443", expected an http:\/\/ or https:\/\/ URL such as https:\/\/api\.vercel\.com/,
    );
    expect(refused({ SLACK_API_URL: 'localhost:9000/api/' })).toMatch(
      /SLACK_API_URL: .*http:\/\/ or https:\/\//,
    );
    expect(refused({ UNKEY_API_URL: 'ftp://api.unkey.com' })).toMatch(/UNKEY_API_URL/);
    expect(refused({ DISCORD_API_URL: 'mailto:ops@example.com' })).toMatch(/DISCORD_API_URL/);
    expect(refused({ SLACK_API_URL: 'http:slack.com' })).toMatch(/SLACK_API_URL/);
  });
  it('refuses credentials in an API URL (never sent, and then shown everywhere), masked in the refusal', () => {
    // Before: accepted; every request failed, and /readyz, the errors and the log lines showed the
    // URL, password and all.
    for (const key of ['SLACK_API_URL', 'DISCORD_API_URL', 'UNKEY_API_URL', 'VERCEL_API_URL']) {
      for (const url of [
        'http://proxyuser:Sup3rS3cretProxy@127.0.0.1:9/',
        'https://Sup3rS3cretToken@proxy.internal/api',
        'https://proxyuser:Sup3r@S3cretProxy@proxy.internal',
        'HTTPS://:Sup3rS3cret@proxy.internal',
      ]) {
        const msg = refused({ [key]: url });
        expect(msg, `${key}=${url}`).toMatch(
          new RegExp(
            `^Invalid environment: ${key}: got "(https?|HTTPS)://\\*\\*\\*@[^"]+", expected a URL without user:password@, such as https://[^:]+: requests carry their token, and credentials in a URL are never sent .*; remove them$`,
          ),
        );
        expect(msg, `${key}=${url}`).not.toMatch(/S3cret|proxyuser/);
      }
    }
    expect(refused({ UNKEY_API_URL: 'http://proxyuser:Sup3rS3cretProxy@127.0.0.1:9/' })).toContain(
      'got "http://***@127.0.0.1:9/"',
    );
    // A flag built on the same check (`npm run worker -- --platform-url`) says it the same way.
    const flags = z.object({ 'platform-url': httpUrl('http://127.0.0.1:8080').optional() });
    expect(() =>
      parseFlags(['--platform-url', 'http://ops:Sup3rS3cret@127.0.0.1:8080'], flags, 'string'),
    ).toThrow(
      /^--platform-url: got "http:\/\/\*\*\*@127\.0\.0\.1:8080", expected a URL without user:password@/,
    );
  });
  it('accepts http and https URLs', () => {
    expect(
      parseEnv({ SLACK_API_URL: 'http://127.0.0.1:9000/api/', VERCEL_API_URL: 'https://api.vercel.com' }),
    ).toMatchObject({
      SLACK_API_URL: 'http://127.0.0.1:9000/api/',
      VERCEL_API_URL: 'https://api.vercel.com',
    });
  });
});

describe('durations in the YAML file', () => {
  it('refuses verify.interval 0 (the operation poll and traffic probes would spin with no pause)', () => {
    expect(() => parseConfigFile('verify: { interval: 0s }', 'cfg.yml')).toThrow(
      /cfg\.yml: verify\.interval: got "0s", expected a duration from 10ms to 2147483647ms/,
    );
    expect(() => parseConfigFile('verify: { interval: 0 }', 'cfg.yml')).toThrow(/verify\.interval/);
  });
  it('takes verify.operationTimeout (how long one attempt follows the platform operation) from 1s, default 10 minutes', () => {
    expect(parseConfigFile('', 'cfg.yml').verify.operationTimeout).toBe(600_000);
    expect(parseConfigFile('verify: { timeout: 90s }', 'cfg.yml').verify).toEqual({
      timeout: 90_000,
      interval: 500,
      operationTimeout: 600_000,
    });
    expect(parseConfigFile('verify: { operationTimeout: 30m }', 'cfg.yml').verify.operationTimeout).toBe(
      1_800_000,
    );
    expect(() => parseConfigFile('verify: { operationTimeout: 500ms }', 'cfg.yml')).toThrow(
      /cfg\.yml: verify\.operationTimeout: got "500ms", expected a duration from 1s/,
    );
  });
  it('refuses durations a timer cannot hold (over 2^31-1 ms setTimeout fires after 1 ms)', () => {
    expect(() => parseConfigFile('verify: { interval: 30d }', 'cfg.yml')).toThrow(/verify\.interval/);
    expect(() => parseConfigFile('verify: { timeout: 25d }', 'cfg.yml')).toThrow(/verify\.timeout/);
    expect(() => parseConfigFile('local: { buildTime: 30d }', 'cfg.yml')).toThrow(/local\.buildTime/);
    expect(() => parseConfigFile('alerts: { correlationWindow: 2147483648 }', 'cfg.yml')).toThrow(
      /alerts\.correlationWindow/,
    );
    expect(parseConfigFile('verify: { timeout: 24d }', 'cfg.yml').verify.timeout).toBe(24 * 86_400_000);
    expect(() => parseConfigFile('verify: { operationTimeout: 25d }', 'cfg.yml')).toThrow(
      /verify\.operationTimeout/,
    );
  });
  it('applies per-key minimums; reminderEvery 0 still turns reminders off', () => {
    expect(() => parseConfigFile('verify: { timeout: 500ms }', 'cfg.yml')).toThrow(
      /verify\.timeout: got "500ms", expected a duration from 1s/,
    );
    const notices = (every: string) =>
      parseConfigFile(`environments:\n  production:\n    notices: { reminderEvery: ${every} }\n`, 'cfg.yml');
    expect(() => notices('30s')).toThrow(
      /reminderEvery: got "30s", expected a duration from 1m .*or 0 \(off\)/,
    );
    expect(notices('0').environments.production?.notices.reminderEvery).toBe(0);
    expect(parseConfigFile('local: { buildTime: 0ms, reactivationTime: 0 }', 'c.yml').local.buildTime).toBe(
      0,
    );
  });
});

describe('alerts.watch.slack', () => {
  // Slack's message events carry the channel's id: a name never matched, and the channel went unwatched.
  it('refuses a channel name (#alerts, alerts) or a lowercase id, naming the key, the value and where to find the id', () => {
    for (const [written, shown] of [
      ['"#alerts"', '"#alerts"'],
      ['alerts', '"alerts"'],
      ['c0alerts', '"c0alerts"'],
      ['D0DIRECT', '"D0DIRECT"'],
    ] as const) {
      const m = refusedFile(`alerts: { watch: { slack: [C0OK, ${written}] } }`, 'sy.yml');
      expect(m, written).toContain(`sy.yml: alerts.watch.slack.1: got ${shown}, expected a Slack channel id`);
      expect(m, written).toContain('not a channel name');
      expect(m, written).toContain('bottom of the About tab');
      expect(m, written).not.toContain('alerts.watch.slack.0');
    }
  });
  it('takes channel ids (C…, and G… for an old private channel), trimmed', () => {
    const cfg = parseConfigFile('alerts: { watch: { slack: [C0123ALERTS, " G0PRIVATE ", C0AB12CD34] } }');
    expect(cfg.alerts.watch.slack).toEqual(['C0123ALERTS', 'G0PRIVATE', 'C0AB12CD34']);
    expect(parseConfigFile('alerts: {}').alerts.watch.slack).toEqual([]);
  });
  it('leaves SLACK_ALERT_CHANNEL and environments.<env>.channels.slack as they were (not ids only)', () => {
    const cfg = parseConfigFile('environments: { production: { channels: { slack: "#incidents" } } }');
    expect(cfg.environments.production?.channels.slack).toBe('#incidents');
    expect(parseEnv({ SLACK_ALERT_CHANNEL: '#alerts' }).SLACK_ALERT_CHANNEL).toBe('#alerts');
  });
});

describe('alertMatchers', () => {
  it('refuses an invalid /regex/ at start-up, naming the key', () => {
    expect(() =>
      parseConfigFile('environments:\n  production:\n    alertMatchers: [checkout, "/api-(/i"]\n', 'cfg.yml'),
    ).toThrow(
      /cfg\.yml: environments\.production\.alertMatchers\.1: got "\/api-\(\/i", expected a plain substring or a valid \/regex\/flags/,
    );
  });
  it('accepts substrings and valid regexes', () => {
    const cfg = parseConfigFile(
      'environments:\n  production:\n    alertMatchers: ["[prod]", "/api-[0-9]+/i", "/x/g"]\n',
      'cfg.yml',
    );
    expect(cfg.environments.production?.alertMatchers).toEqual(['[prod]', '/api-[0-9]+/i', '/x/g']);
  });
});

describe('printed addresses', () => {
  it('bracket IPv6 and show a wildcard address as the loopback one', () => {
    expect(localHttpUrl('127.0.0.1', 3000)).toBe('http://127.0.0.1:3000/');
    expect(localHttpUrl('0.0.0.0', 3000, '/healthz')).toBe('http://127.0.0.1:3000/healthz');
    expect(localHttpUrl('::', 3000)).toBe('http://[::1]:3000/');
    expect(localHttpUrl('::1', 8080, '')).toBe('http://[::1]:8080');
    expect(localHttpUrl('fe80::1', 8080, '')).toBe('http://[fe80::1]:8080');
    expect(localHttpUrl('switchyard.internal', 8080, '')).toBe('http://switchyard.internal:8080');
  });
});
