/**
 * The README's configuration example stays valid: it is parsed with the real config schema. And what the
 * docs say about behaviour that lives in code they do not show stays true (docs/notices.md on failed
 * closing edits).
 */
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

describe('docs/notices.md', () => {
  const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

  it('says what the Slack and Discord posters do with a closing edit they give up: report it', () => {
    // The posters edit with rejectOnFailure (test/notices/slack-closing.test.ts proves the outcomes): a
    // refused closing edit ends close_failed, a 5xx is retried. The bullet once said both were logged
    // and left unreported.
    expect(read('handlers/slack/poster.ts')).toMatch(/rejectOnFailure: true/);
    expect(read('handlers/surfaces.ts')).toMatch(/rejectOnFailure: true/);
    const doc = read('docs/notices.md').replace(/\s+/g, ' ');
    const bullet = /- \*\*Failed edits are retried like posts\.\*\*(.*?) - \*\*/.exec(doc)?.[1] ?? '';
    expect(bullet).toContain('Slack and Discord posters');
    expect(bullet).not.toMatch(/without reporting it|logged and left/);
    expect(bullet).toMatch(/`rejectOnFailure: true`/);
    expect(bullet).toMatch(/5xx.*retried/);
    expect(bullet).toMatch(/refusal.*`close_failed`/);
  });
});
