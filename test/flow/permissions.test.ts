import { describe, expect, it } from 'vitest';
import { parseConfigFile } from '../../src/config.js';
import { type ActingUser, allowSnippet, canAct, unknownEnvironmentKeys } from '../../src/permissions.js';
import { alice, bob, dave, system, testConfig } from './actors.js';

const prodAllow = {
  production: {
    allow: {
      slack: { users: ['U0ALICE'], groups: ['S0ONCALL'] },
      discord: { users: ['222222222222'], roles: ['333333333333'] },
      console: { users: ['ops'] },
    },
  },
};

function refusalOf(p: ReturnType<typeof canAct>) {
  if (p.ok) throw new Error('expected a refusal');
  return p.refusal;
}

describe('canAct', () => {
  describe('local platform without an allow list (demo)', () => {
    const ctx = { config: testConfig({}, 'local') };
    it.each([alice, bob, dave, { surface: 'console', userId: 'local', displayName: 'You' } as const])(
      'lets $surface user $userId act',
      (actor) => {
        expect(canAct(actor, 'production', ctx)).toEqual({ ok: true });
      },
    );
    it('never lets the system actor confirm', () => {
      const r = refusalOf(canAct(system, 'production', ctx));
      expect(r.code).toBe('forbidden');
      expect(r.message).toMatch(/permitted person/);
    });
  });

  describe.each(['unkey', 'vercel'] as const)('real platform %s without an allow list', (platform) => {
    const ctx = { config: testConfig({ production: { twoPersonRule: false } }, platform) };
    it('refuses everyone and says how to configure the allow list', () => {
      for (const actor of [alice, dave]) {
        const r = refusalOf(canAct(actor, 'production', ctx));
        expect(r.code).toBe('forbidden');
        expect(r.message).toContain(`environments.production.allow.${actor.surface}.users`);
        expect(r.message).toContain(platform);
        expect(r.message).toContain(allowSnippet('production', actor));
        expect(r.context).toMatchObject({ reason: 'no_allow_list' });
      }
    });
    it('the YAML in the refusal is valid config that grants exactly that person', () => {
      const snippet = allowSnippet('production', alice);
      const file = parseConfigFile(`platform: ${platform}\n${snippet}\n`, 'snippet.yml');
      const config = { platform, file };
      expect(canAct(alice, 'production', { config })).toEqual({ ok: true });
      expect(canAct(bob, 'production', { config }).ok).toBe(false);
      const discordFile = parseConfigFile(`${allowSnippet('production', dave)}\n`, 'd.yml');
      expect(canAct(dave, 'production', { config: { platform, file: discordFile } })).toEqual({ ok: true });
    });
    it('an environment without a list is refused even when another one has a list', () => {
      const c = { config: testConfig(prodAllow, platform) };
      expect(canAct(alice, 'production', c)).toEqual({ ok: true });
      expect(refusalOf(canAct(alice, 'preview', c)).message).toContain(
        'environments.preview.allow.slack.users',
      );
    });
  });

  describe.each(['local', 'unkey'] as const)('with an allow list on %s', (platform) => {
    const ctx = { config: testConfig(prodAllow, platform) };
    const cases: [string, ActingUser, boolean][] = [
      ['listed slack user', alice, true],
      ['unlisted slack user', bob, false],
      ['slack user in a listed group', { ...bob, groups: ['S0OTHER', 'S0ONCALL'] }, true],
      ['slack user in other groups only', { ...bob, groups: ['S0OTHER'] }, false],
      ['slack user carrying a listed discord role', { ...bob, roles: ['333333333333'] }, false],
      ['listed discord user', { ...dave, userId: '222222222222' }, true],
      ['discord member with a listed role', { ...dave, roles: ['333333333333'] }, true],
      ['discord member without roles', dave, false],
      ['discord user whose id is a listed slack id', { ...dave, userId: 'U0ALICE' }, false],
      ['listed console user', { surface: 'console', userId: 'ops', displayName: 'Ops' }, true],
      ['unlisted console user', { surface: 'console', userId: 'local', displayName: 'You' }, false],
      ['system actor', system, false],
    ];
    it.each(cases)('%s', (_label, actor, allowed) => {
      const p = canAct(actor, 'production', ctx);
      expect(p.ok).toBe(allowed);
      if (!p.ok) expect(p.refusal.code).toBe('forbidden');
    });
    it('names the person and the key to add them under', () => {
      const r = refusalOf(canAct(bob, 'production', ctx));
      expect(r.message).toContain('Bob (U0BOB)');
      expect(r.message).toContain('environments.production.allow.slack.users');
      expect(r.message).toContain('user groups');
    });
  });
});

describe('unknownEnvironmentKeys', () => {
  const slugs = ['production', 'preview'];

  it('names a key the platform does not have, and on the local platform what its allow list leaves open', () => {
    const config = testConfig(
      { prod: { allow: { slack: { users: ['U0ALICE'] } } }, production: {} },
      'local',
    );
    const [unknown, ...rest] = unknownEnvironmentKeys(config, slugs);
    expect(rest).toEqual([]);
    expect(unknown?.key).toBe('environments.prod');
    expect(unknown?.leavesOpen).toEqual(['production', 'preview']);
    expect(unknown?.message).toBe(
      'The config file (SWITCHYARD_CONFIG) sets environments.prod, but the local platform has no environment "prod" (it has: production, preview), so its settings (allow list, two-person rule) apply to nothing. production and preview have no allow list, so on the local platform everyone may act on production and preview. Rename the key to the environment it was meant for.',
    );
  });

  it('leaves nothing open on a real platform (no allow list there means nobody may act)', () => {
    const config = testConfig({ prod: { allow: { slack: { users: ['U0ALICE'] } } } }, 'unkey');
    expect(unknownEnvironmentKeys(config, slugs).map((u) => [u.key, u.leavesOpen])).toEqual([
      ['environments.prod', []],
    ]);
  });

  it('is empty when every key is an environment of the platform', () => {
    expect(unknownEnvironmentKeys(testConfig(prodAllow, 'local'), slugs)).toEqual([]);
  });
});
