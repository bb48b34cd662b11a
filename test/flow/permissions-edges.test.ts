/**
 * Permission rules no other test of the area pinned. Each test fails on one
 * small change of src/permissions.ts that the area's tests let through.
 */
import { describe, expect, it } from 'vitest';
import { type ActingUser, canAct, sameActor, unknownEnvironmentKeys } from '../../src/permissions.js';
import { bob, testConfig } from '../flow/actors.js';

const allow = {
  production: { allow: { slack: { users: ['U0ALICE'], groups: ['S0ONCALL'] } } },
  staging: { allow: { slack: { users: [], groups: ['S0STAGING'] } } },
};

function refusalOf(p: ReturnType<typeof canAct>) {
  if (p.ok) throw new Error('expected a refusal');
  return p.refusal;
}

describe("Slack user groups that could not be checked: only the environment's own are named", () => {
  const ctx = { config: testConfig(allow, 'unkey') };

  it("a group Slack refused for good that another environment lists is not blamed for this one's refusal", () => {
    // The resolver looks up every configured group: staging's group is refused for good, production's
    // failed for now.
    const actor: ActingUser = {
      ...bob,
      uncheckedGroups: ['S0ONCALL', 'S0STAGING'],
      rejectedGroups: [
        { group: 'S0STAGING', code: 'no_such_subteam', problem: 'Slack knows no such group.' },
      ],
    };
    const r = refusalOf(canAct(actor, 'production', ctx));
    expect(r.context).toMatchObject({ reason: 'groups_unavailable', groups: ['S0ONCALL'] });
    expect(r.message).toContain('try again in a moment');
    expect(r.message).not.toContain('S0STAGING');
    expect(r.message).not.toContain('refuses for good');
  });
});

describe('Slack refused every listed group for good: no "try again"', () => {
  it('says what has to be fixed, not to retry', () => {
    const ctx = { config: testConfig(allow, 'unkey') };
    const actor: ActingUser = {
      ...bob,
      uncheckedGroups: ['S0ONCALL'],
      rejectedGroups: [{ group: 'S0ONCALL', code: 'no_such_subteam', problem: 'Slack knows no such group.' }],
    };
    const r = refusalOf(canAct(actor, 'production', ctx));
    expect(r.context).toMatchObject({
      reason: 'groups_rejected',
      key: 'environments.production.allow.slack.groups',
      groups: [{ group: 'S0ONCALL', code: 'no_such_subteam' }],
    });
    expect(r.message).not.toContain('try again');
    expect(r.message).toContain(
      'Retrying will not change that: an operator has to fix environments.production.allow.slack.groups in the config file (SWITCHYARD_CONFIG). ',
    );
  });
});

describe('sameActor: a person is a user id on one surface', () => {
  it('a Slack user and a Discord user with the same id are two people', () => {
    expect(
      sameActor(
        { surface: 'slack', userId: '42', displayName: 'A' },
        { surface: 'discord', userId: '42', displayName: 'A' },
      ),
    ).toBe(false);
    expect(
      sameActor(
        { surface: 'slack', userId: '42', displayName: 'A' },
        { surface: 'slack', userId: '42', displayName: 'B' },
      ),
    ).toBe(true);
  });
});

describe('unknownEnvironmentKeys: what a misnamed key leaves open', () => {
  const slugs = ['production', 'preview'];

  it('a misnamed key without an allow list leaves nothing open (it was not meant to close anything)', () => {
    const config = testConfig({ prod: { twoPersonRule: true } }, 'local');
    expect(unknownEnvironmentKeys(config, slugs).map((u) => [u.key, u.leavesOpen])).toEqual([
      ['environments.prod', []],
    ]);
  });

  it('names only the environments that have no allow list of their own', () => {
    const config = testConfig(
      {
        prod: { allow: { slack: { users: ['U0ALICE'] } } },
        production: { allow: { slack: { users: ['U0ALICE'] } } },
      },
      'local',
    );
    const [unknown] = unknownEnvironmentKeys(config, slugs);
    expect(unknown?.leavesOpen).toEqual(['preview']);
    expect(unknown?.message).toContain(
      'preview has no allow list, so on the local platform everyone may act on preview.',
    );
  });
});
