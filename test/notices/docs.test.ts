/**
 * The configuration example in docs/notices.md parses with the real config schema and means what the
 * document says (channels per surface, event selection, reminder interval, working hours, off switch).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfigFile } from '../../src/config.js';
import { noticeChannel } from '../../src/notices.js';

function yamlExample(): string {
  const text = readFileSync(new URL('../../docs/notices.md', import.meta.url), 'utf8');
  const block = /```yaml\n([\s\S]*?)```/.exec(text)?.[1];
  if (block === undefined) throw new Error('docs/notices.md has no yaml example');
  return block;
}

describe('docs/notices.md', () => {
  it('its YAML example is a valid configuration with the documented meaning', () => {
    const file = parseConfigFile(yamlExample(), 'docs/notices.md');
    const production = file.environments.production;
    const preview = file.environments.preview;
    if (!production || !preview) throw new Error('expected production and preview');
    expect(production.notices).toEqual({
      enabled: true,
      events: ['ready', 'failed', 'traffic_moved', 'stopped'],
      reminderEvery: 4 * 3_600_000,
      workingHoursUtc: [8, 18],
    });
    expect(preview.notices.enabled).toBe(false);
    const env = { SLACK_ALERT_CHANNEL: 'C0ALERTS', DISCORD_ALERT_CHANNEL: undefined };
    expect(noticeChannel('slack', production, env)).toBe('C0123DEPLOYS');
    expect(noticeChannel('discord', production, env)).toBe('112233445566778899');
    expect(noticeChannel('slack', preview, env)).toBe('C0ALERTS');
    expect(noticeChannel('discord', preview, env)).toBeUndefined();
    expect(noticeChannel('console', preview, env)).toBe('console');
  });

  it('a bad notices value is refused with the key and what was expected', () => {
    expect(() =>
      parseConfigFile('environments:\n  production:\n    notices:\n      reminderEvery: soon\n', 'c.yml'),
    ).toThrow(/environments\.production\.notices\.reminderEvery: got "soon", expected a duration/);
    expect(() =>
      parseConfigFile('environments:\n  production:\n    notices:\n      events: [deployed]\n', 'c.yml'),
    ).toThrow(/environments\.production\.notices\.events\.0/);
  });
});
