/** The README's configuration example stays valid: it is parsed with the real config schema. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfigFile } from '../../src/config.js';

describe('README', () => {
  it('shows a YAML config example that Switchyard accepts', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const block = /```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    const cfg = parseConfigFile(block ?? '', 'README.md');
    expect(cfg.environments.production?.twoPersonRule).toBe(true);
    expect(cfg.environments.production?.notices.reminderEvery).toBe(4 * 3_600_000);
    expect(cfg.verify.timeout).toBe(120_000);
  });

  it('keeps the two-command quick start', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const quick = /## Quick start[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const commands = quick
      .split('\n')
      .map((l) => l.replace(/#.*$/, '').trim())
      .filter(Boolean);
    expect(commands).toEqual(['npm start', 'npm test']);
  });
});
