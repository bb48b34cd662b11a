/** Config parsing: defaults, every bad value named with what was expected, secrets never echoed. */
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfigFile, parseDuration, parseEnv } from '../../src/config.js';
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
    ).toThrow(/sy\.yml: environments\.production\.twoPersonRule: got "yes", expected boolean/);
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

  it('a URL with a password and a wrong scheme is named with its password masked', () => {
    const m = message(() => loadConfig({ REDIS_URL: `http://default:${SECRET}@redis.internal:6379` }));
    expect(m).toContain('REDIS_URL: got "http://default:***@redis.internal:6379"');
    expect(m).not.toContain(SECRET);
    const at = message(() => loadConfig({ REDIS_URL: 'http://default:p@ss@redis.internal:6379' }));
    expect(at).not.toContain('ss@');
    const token = message(() => loadConfig({ REDIS_URL: `https://${SECRET}@redis.internal` }));
    expect(token).not.toContain(SECRET);
  });
});
