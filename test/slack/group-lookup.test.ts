/**
 * Allow lists by Slack user group when the group lookup (`usergroups.users.list`) fails: access is still
 * refused (fail closed), but the refusal tells the person the truth — Switchyard could not check their
 * user groups right now, try again — instead of "not on the allow list, ask an operator to add you".
 * Once Slack answers again the same click goes through. People allowed by user id are not affected.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebClient } from '@slack/web-api';
import { afterEach, describe, expect, it } from 'vitest';
import { startSwitchyard } from '../../handlers/app.js';
import { LASTING_GROUP_ERRORS, UserGroupResolver } from '../../handlers/slack/groups.js';
import { slackSurface } from '../../handlers/slack/surface.js';
import { ManualClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { canAct } from '../../src/permissions.js';
import { buttonsOf } from '../fakes/slack/requests.js';
import type { RecordedCall, RecordedResponse } from '../fakes/slack/server.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { startWorld, type World, type WorldOptions } from '../fakes/slack/world.js';
import { CapturedLog } from '../support/captured-log.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const worlds: World[] = [];
afterEach(async () => {
  for (const w of worlds.splice(0)) await w.close();
});

async function world(opts: Partial<WorldOptions> = {}): Promise<World> {
  // The world's fake Slack has the user group S0OPS = [U0CAROL].
  const w = await startWorld({
    redisUrl: redisUrl(),
    name: uniqueName('slack-groups'),
    worker: false,
    ...opts,
  });
  worlds.push(w);
  return w;
}

const GROUPS_ONLY = { production: { allow: { slack: { groups: ['S0OPS'] } } } };

async function confirmation(w: World, user: string): Promise<{ post: RecordedCall; ts: string }> {
  const before = w.fake.callsOf('chat.postMessage').length;
  await w.requests.command({ command: '/rollback', text: 'production', userId: user });
  const post = await w.fake.waitForCall(
    'chat.postMessage',
    (c) => c.response.ok === true && w.fake.callsOf('chat.postMessage').indexOf(c) >= before,
  );
  return { post, ts: String(post.response.ts) };
}

function confirmButton(call: RecordedCall): string {
  const found = buttonsOf(call.args.blocks as unknown[]).find((b) => b.actionId.startsWith('sy1:confirm:'));
  if (!found) throw new Error('no confirm button');
  return found.actionId;
}

const ephemeralAfter = (w: World, n: number) => (r: RecordedResponse) =>
  r.body.response_type === 'ephemeral' && w.fake.responses.indexOf(r) >= n;

describe('Slack allow list by user group, when the group lookup fails', () => {
  it('tells a member that their groups could not be checked and to try again; the retry goes through', async () => {
    const w = await world({ callTimeoutMs: 200, environments: GROUPS_ONLY });
    const { post, ts } = await confirmation(w, 'U0CAROL');
    const actionId = confirmButton(post);

    // Slack's usergroups.users.list hangs (the call and the client's two retries time out).
    w.fake.stall('usergroups.users.list', 3);
    const before = w.fake.responses.length;
    await w.requests.click({ actionId, messageTs: ts, userId: 'U0CAROL' });
    const reply = await w.fake.waitForResponse(ephemeralAfter(w, before), 15_000);
    const text = JSON.stringify(reply.body);
    expect(text).toMatch(/could not check your Slack user groups/);
    expect(text).toMatch(/S0OPS/);
    expect(text).toMatch(/try again/);
    expect(text).not.toMatch(/neither your slack user id/);
    expect(text).not.toMatch(/have an operator add you/);
    // Fail closed: nothing was queued.
    expect(await w.flow.activeSwitch('production')).toBeUndefined();

    // Slack answers again: the same click is allowed (a failed lookup is not cached).
    const edits = w.fake.callsOf('chat.update').length;
    await w.requests.click({ actionId, messageTs: ts, userId: 'U0CAROL' });
    await w.fake.waitForCall(
      'chat.update',
      (c) => c.args.ts === ts && w.fake.callsOf('chat.update').indexOf(c) >= edits,
      15_000,
    );
    expect(await w.flow.activeSwitch('production')).toBeDefined();
  }, 40_000);

  it('still says "not on the allow list" when the lookup worked and the person is not a member', async () => {
    const w = await world({ environments: GROUPS_ONLY });
    const { post, ts } = await confirmation(w, 'U0DAVE');
    const before = w.fake.responses.length;
    await w.requests.click({ actionId: confirmButton(post), messageTs: ts, userId: 'U0DAVE' });
    const reply = await w.fake.waitForResponse(ephemeralAfter(w, before));
    const text = JSON.stringify(reply.body);
    expect(text).toMatch(/neither your slack user id nor any of your user groups is on its allow list/);
    expect(text).not.toMatch(/could not check/);
  });
});

describe('canAct with a user group that could not be looked up', () => {
  const config = (allow: { users?: string[]; groups?: string[] }) => ({
    platform: 'unkey' as const,
    file: {
      environments: {
        production: {
          allow: {
            slack: { users: [], groups: [], ...allow },
            discord: { users: [], roles: [] },
            console: { users: [] },
          },
        },
      },
    } as never,
  });
  const carol = (groups: string[], uncheckedGroups: string[]) => ({
    surface: 'slack' as const,
    userId: 'U0CAROL',
    displayName: 'carol',
    groups,
    uncheckedGroups,
  });

  it('refuses with reason groups_unavailable when only that group could have allowed the person', () => {
    const p = canAct(carol([], ['S0OPS']), 'production', {
      config: config({ groups: ['S0OPS'] }),
    });
    expect(p.ok).toBe(false);
    if (p.ok) return;
    expect(p.refusal.code).toBe('forbidden');
    expect(p.refusal.context).toMatchObject({ reason: 'groups_unavailable', groups: ['S0OPS'] });
    expect(p.refusal.message).toMatch(/could not check your Slack user groups .*S0OPS.*try again/);
  });

  it('allows a person listed by user id whatever the group lookup did', () => {
    const p = canAct(carol([], ['S0OPS']), 'production', {
      config: config({ users: ['U0CAROL'], groups: ['S0OPS'] }),
    });
    expect(p).toEqual({ ok: true });
  });

  it('allows a member of another listed group that was looked up fine', () => {
    const p = canAct(carol(['S0SRE'], ['S0OPS']), 'production', {
      config: config({ groups: ['S0OPS', 'S0SRE'] }),
    });
    expect(p).toEqual({ ok: true });
  });

  it('gives the usual "not on the allow list" refusal when the failed group is not on this allow list', () => {
    const p = canAct(carol([], ['S0OTHER']), 'production', {
      config: config({ groups: ['S0OPS'] }),
    });
    expect(p.ok).toBe(false);
    if (p.ok) return;
    expect(p.refusal.context).toMatchObject({ reason: 'not_listed' });
  });
});

/**
 * A group Slack refuses to list for good (`no_such_subteam`: a mistyped or deleted id, or one of another
 * workspace; `plan_upgrade_required`: a plan without user groups; `missing_scope`; a rejected token):
 * asking again cannot help, so the person is not told to try again — the refusal names the config key,
 * the group and Slack's code, and says an operator has to fix it — and start-up logs an error naming
 * the key, without stopping.
 */
describe('Slack allow list by user group, when Slack refuses the lookup for good', () => {
  it('the resolver tells lasting refusals (kept for the TTL) from passing failures (asked again)', async () => {
    const fake = await new FakeSlack({ usergroups: { S0OPS: ['U0CAROL'] } }).start();
    worlds.push({ close: () => fake.close() } as World);
    const clock = new ManualClock();
    const client = new WebClient(fake.token, { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 } });
    const resolver = new UserGroupResolver({ client, groups: ['S0OPS', 'S0TYPO'], clock, ttlMs: 60_000 });
    const typo = {
      group: 'S0TYPO',
      code: 'no_such_subteam',
      problem: expect.stringMatching(/no user group with this id/),
    };
    expect(await resolver.groupsOf('U0CAROL')).toEqual({
      groups: ['S0OPS'],
      uncheckedGroups: ['S0TYPO'],
      rejectedGroups: [typo],
    });
    // Kept like an answer: a click storm on a mistyped id asks Slack once per TTL.
    expect(await resolver.groupsOf('U0DAVE')).toMatchObject({ rejectedGroups: [typo] });
    const lookupsOf = (g: string) =>
      fake.callsOf('usergroups.users.list').filter((c) => c.args.usergroup === g).length;
    expect(lookupsOf('S0TYPO')).toBe(1);

    // A plan without user groups: every group is refused for good, with Slack's code.
    clock.set(clock.now() + 60_001);
    fake.refuse('usergroups.users.list', 'plan_upgrade_required');
    const plan = await resolver.groupsOf('U0CAROL');
    expect(plan.groups).toEqual([]);
    expect(plan.rejectedGroups?.map((r) => [r.group, r.code])).toEqual([
      ['S0OPS', 'plan_upgrade_required'],
      ['S0TYPO', 'plan_upgrade_required'],
    ]);
    expect(plan.rejectedGroups?.[0]?.problem).toMatch(/paid plan/);

    // A passing failure (rate limited) is unchecked but not rejected, and not kept: the next click asks again.
    clock.set(clock.now() + 60_001);
    const fresh = new FakeSlack({ usergroups: { S0OPS: ['U0CAROL'] } });
    await fresh.start();
    worlds.push({ close: () => fresh.close() } as World);
    const passing = new UserGroupResolver({
      client: new WebClient(fresh.token, {
        slackApiUrl: fresh.apiUrl,
        retryConfig: { retries: 0 },
        rejectRateLimitedCalls: true,
      }),
      groups: ['S0OPS'],
      clock,
    });
    fresh.rateLimit('usergroups.users.list', 1);
    expect(await passing.groupsOf('U0CAROL')).toEqual({ groups: [], uncheckedGroups: ['S0OPS'] });
    expect(await passing.groupsOf('U0CAROL')).toEqual({ groups: ['S0OPS'] });
  });

  it('check() reports a missing scope as lasting, with Slack’s code', async () => {
    const fake = await new FakeSlack({ usergroups: { S0OPS: ['U0CAROL'] } }).start();
    worlds.push({ close: () => fake.close() } as World);
    fake.refuse('usergroups.users.list', 'missing_scope', {
      needed: 'usergroups:read',
      provided: 'commands,chat:write',
    });
    const client = new WebClient(fake.token, { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 } });
    const resolver = new UserGroupResolver({ client, groups: ['S0OPS'] });
    const [problem, ...rest] = await resolver.check();
    expect(rest).toEqual([]);
    expect(problem).toMatchObject({ group: 'S0OPS', code: 'missing_scope', lasting: true });
    expect(problem?.lasting === true ? problem.problem : '').toMatch(/usergroups:read.*reinstall/);
  });

  it('canAct: a group refused for good gives a refusal naming the key, the group and the code, with no "try again"', () => {
    const carol = {
      surface: 'slack' as const,
      userId: 'U0CAROL',
      displayName: 'carol',
      groups: [],
      uncheckedGroups: ['S0ONCALL'],
      rejectedGroups: [{ group: 'S0ONCALL', code: 'no_such_subteam', problem: 'no user group with this id' }],
    };
    const p = canAct(carol, 'production', { config: unkeyConfig({ groups: ['S0ONCALL'] }) });
    expect(p.ok).toBe(false);
    if (p.ok) return;
    expect(p.refusal.code).toBe('forbidden');
    expect(p.refusal.context).toMatchObject({
      reason: 'groups_rejected',
      key: 'environments.production.allow.slack.groups',
      groups: [{ group: 'S0ONCALL', code: 'no_such_subteam' }],
    });
    const m = p.refusal.message;
    expect(m).toMatch(/environments\.production\.allow\.slack\.groups/);
    expect(m).toMatch(/S0ONCALL \(no_such_subteam\): no user group with this id\./);
    expect(m).toMatch(/an operator has to fix/);
    expect(m).toMatch(/environments\.production\.allow\.slack\.users/);
    expect(m).not.toMatch(/try again/);
    expect(m).not.toMatch(/right now/);
  });

  it.each([
    ['missing_scope', /usergroups:read scope; add it .* and reinstall the app/],
    ['token_revoked', /fix SLACK_BOT_TOKEN and restart Switchyard/],
    ['no_permission', /a workspace admin has to allow it/],
  ])(
    'canAct: a group refused for good with %s names its own fix, not the config key (the group id is right)',
    (code, fix) => {
      const carol = {
        surface: 'slack' as const,
        userId: 'U0CAROL',
        displayName: 'carol',
        groups: [],
        uncheckedGroups: ['S0ONCALL'],
        rejectedGroups: [{ group: 'S0ONCALL', code, problem: LASTING_GROUP_ERRORS.get(code) ?? '' }],
      };
      const p = canAct(carol, 'production', { config: unkeyConfig({ groups: ['S0ONCALL'] }) });
      if (p.ok) throw new Error('expected a refusal');
      expect(p.refusal.context).toMatchObject({
        reason: 'groups_rejected',
        groups: [{ group: 'S0ONCALL', code }],
      });
      const m = p.refusal.message;
      expect(m).toMatch(new RegExp(`S0ONCALL \\(${code}\\): `));
      expect(m).toMatch(fix);
      // One fix, not two that contradict each other: the config's group id is not what is wrong.
      expect(m).not.toMatch(/has to fix environments\.production\.allow\.slack\.groups/);
      expect(m).toMatch(
        /Retrying will not change that until what is said above is done \(its id is right, so correcting environments\.production\.allow\.slack\.groups will not help\)\./,
      );
      expect(m).toMatch(/an operator can add you under environments\.production\.allow\.slack\.users/);
      expect(m).not.toMatch(/try again/);
    },
  );

  it('canAct: groups refused for good for different reasons: the config key only for the unknown id', () => {
    const carol = {
      surface: 'slack' as const,
      userId: 'U0CAROL',
      displayName: 'carol',
      groups: [],
      uncheckedGroups: ['S0TYPO', 'S0ONCALL', 'S0SRE'],
      rejectedGroups: ['no_such_subteam', 'missing_scope', 'missing_scope'].map((code, i) => ({
        group: ['S0TYPO', 'S0ONCALL', 'S0SRE'][i] ?? '',
        code,
        problem: LASTING_GROUP_ERRORS.get(code) ?? '',
      })),
    };
    const key = 'environments.production.allow.slack.groups';
    const p = canAct(carol, 'production', {
      config: unkeyConfig({ groups: ['S0TYPO', 'S0ONCALL', 'S0SRE'] }),
    });
    if (p.ok) throw new Error('expected a refusal');
    expect(p.refusal.message).toContain(
      `Retrying will not change that: for S0TYPO, an operator has to fix ${key} in the config file (SWITCHYARD_CONFIG); ` +
        `for S0ONCALL and S0SRE, what is said above has to be done (their ids are right, so correcting ${key} will not help).`,
    );
  });

  it('canAct: while a group may still pass, a group with a missing scope is named with its own fix, not the config key', () => {
    const carol = {
      surface: 'slack' as const,
      userId: 'U0CAROL',
      displayName: 'carol',
      groups: [],
      uncheckedGroups: ['S0ONCALL', 'S0SRE'],
      rejectedGroups: [
        {
          group: 'S0ONCALL',
          code: 'missing_scope',
          problem: LASTING_GROUP_ERRORS.get('missing_scope') ?? '',
        },
      ],
    };
    const p = canAct(carol, 'production', { config: unkeyConfig({ groups: ['S0ONCALL', 'S0SRE'] }) });
    if (p.ok) throw new Error('expected a refusal');
    expect(p.refusal.context).toMatchObject({ reason: 'groups_unavailable', groups: ['S0SRE'] });
    expect(p.refusal.message).toMatch(
      /also refuses for good .*S0ONCALL \(missing_scope\).*reinstall the app/,
    );
    expect(p.refusal.message).not.toMatch(/has to fix environments\.production\.allow\.slack\.groups/);
  });

  it('canAct: while another listed group may still pass, the person is told to try again (and of the broken group)', () => {
    const carol = {
      surface: 'slack' as const,
      userId: 'U0CAROL',
      displayName: 'carol',
      groups: [],
      uncheckedGroups: ['S0ONCALL', 'S0SRE'],
      rejectedGroups: [{ group: 'S0ONCALL', code: 'no_such_subteam', problem: 'no user group with this id' }],
    };
    const p = canAct(carol, 'production', { config: unkeyConfig({ groups: ['S0ONCALL', 'S0SRE'] }) });
    if (p.ok) throw new Error('expected a refusal');
    expect(p.refusal.context).toMatchObject({ reason: 'groups_unavailable', groups: ['S0SRE'] });
    expect(p.refusal.message).toMatch(/looking up the members of S0SRE failed.*try again in a moment/);
    expect(p.refusal.message).toMatch(
      /also refuses for good .*S0ONCALL \(no_such_subteam\).*environments\.production\.allow\.slack\.groups/,
    );
    // Listed by user id: allowed whatever Slack says about the groups.
    expect(
      canAct(carol, 'production', {
        config: unkeyConfig({ users: ['U0CAROL'], groups: ['S0ONCALL', 'S0SRE'] }),
      }),
    ).toEqual({ ok: true });
  });

  it('the Slack click of a member asks Slack once per TTL for a group it refused for good, and says each time what is wrong (no "try again")', async () => {
    const w = await world({ environments: { production: { allow: { slack: { groups: ['S0ONCALL'] } } } } });
    const { post, ts } = await confirmation(w, 'U0CAROL');
    const actionId = confirmButton(post);
    const replies: string[] = [];
    for (let i = 0; i < 2; i++) {
      const before = w.fake.responses.length;
      await w.requests.click({ actionId, messageTs: ts, userId: 'U0CAROL' });
      replies.push(JSON.stringify((await w.fake.waitForResponse(ephemeralAfter(w, before))).body));
    }
    expect(replies[1]).toBe(replies[0]);
    expect(w.fake.callsOf('usergroups.users.list').map((c) => c.response.error)).toEqual(['no_such_subteam']);
    expect(await w.flow.activeSwitch('production')).toBeUndefined();
    // What the person reads: the configuration is wrong (key, group, Slack's code), not "try again".
    expect(replies[0]).not.toMatch(/try again in a moment/);
    expect(replies[0]).toMatch(/environments\.production\.allow\.slack\.groups/);
    expect(replies[0]).toMatch(/S0ONCALL/);
    expect(replies[0]).toMatch(/no_such_subteam/);
  });
});

describe('Slack user groups checked at start-up', () => {
  it('logs an error naming the config key for each group Slack refuses for good, and none for the others', async () => {
    const log = new CapturedLog('info');
    const w = await world({
      logger: log.logger,
      environments: {
        production: { allow: { slack: { groups: ['S0OPS', 'S0ONCALL'] } } },
        staging: { allow: { slack: { groups: ['S0ONCALL'] } } },
      },
    });
    const problems = await w.surface.checkGroups();
    expect(problems.map((p) => [p.group, p.code, p.lasting])).toEqual([
      ['S0ONCALL', 'no_such_subteam', true],
    ]);
    const errors = log.lines.filter((l) => l.level >= 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({
      group: 'S0ONCALL',
      code: 'no_such_subteam',
      key: 'environments.production.allow.slack.groups, environments.staging.allow.slack.groups',
    });
    expect(errors[0]?.msg).toMatch(
      /environments\.production\.allow\.slack\.groups and environments\.staging\.allow\.slack\.groups name the user group S0ONCALL.*no_such_subteam/,
    );
    // An id Slack does not know: the config is what to fix.
    expect(errors[0]?.msg).toMatch(/Until an operator fixes the config \(SWITCHYARD_CONFIG\)/);
  });

  it('a group refused for a missing scope is logged with that fix, not as a config to correct', async () => {
    const log = new CapturedLog('info');
    const w = await world({
      logger: log.logger,
      environments: { production: { allow: { slack: { groups: ['S0OPS', 'S0TYPO'] } } } },
    });
    w.fake.refuse('usergroups.users.list', 'missing_scope', { needed: 'usergroups:read' });
    await w.surface.checkGroups();
    const errors = log.lines.filter((l) => l.level >= 50);
    expect(errors.map((l) => [l.group, l.code])).toEqual([
      ['S0OPS', 'missing_scope'],
      ['S0TYPO', 'missing_scope'],
    ]);
    for (const e of errors) {
      expect(e.msg).toMatch(/usergroups:read scope; add it .* and reinstall the app/);
      expect(e.msg).not.toMatch(/Until an operator fixes the config/);
      expect(e.msg).toMatch(
        /The group id is right, so correcting the config will not help; until that is done, the group lets nobody act/,
      );
    }
  });

  it('a Slack that does not answer just now (timeouts) logs no error: the next click asks again', async () => {
    const log = new CapturedLog('info');
    const w = await world({
      logger: log.logger,
      callTimeoutMs: 200,
      environments: { production: { allow: { slack: { groups: ['S0OPS'] } } } },
    });
    w.fake.stall('usergroups.users.list', 3);
    const problems = await w.surface.checkGroups();
    expect(problems.map((p) => [p.group, p.lasting])).toEqual([['S0OPS', false]]);
    expect(log.lines.filter((l) => l.level >= 50)).toEqual([]);
  });

  it('startSwitchyard with the Slack surface logs it and starts anyway (a plan downgrade must not stop the bot)', async () => {
    const fake = await new FakeSlack().start();
    worlds.push({ close: () => fake.close() } as World);
    fake.refuse('usergroups.users.list', 'plan_upgrade_required');
    const dataDir = mkdtempSync(join(tmpdir(), 'sy-slack-groups-'));
    worlds.push({ close: async () => rmSync(dataDir, { recursive: true, force: true }) } as World);
    const yaml = 'environments:\n  production:\n    allow:\n      slack:\n        groups: [S0ONCALL]\n';
    const config = loadConfig(
      {
        PORT: '0',
        LOCAL_ROUTER_PORT: '0',
        REDIS_URL: redisUrl(),
        SLACK_BOT_TOKEN: fake.token,
        SLACK_SIGNING_SECRET: 'groups-signing-secret',
        SLACK_API_URL: fake.apiUrl,
        SWITCHYARD_CONFIG: 'switchyard.yml',
      },
      () => yaml,
    );
    const log = new CapturedLog('info');
    const running = await startSwitchyard(
      { config, logger: log.logger, dataDir, namespace: uniqueName('sy') },
      [slackSurface],
    );
    worlds.push({ close: () => running.stop() } as World);
    expect(running.surfaces).toContain('slack');
    const [line] = await log.waitFor((l) => l.level >= 50 && /S0ONCALL/.test(l.msg));
    expect(line).toMatchObject({
      key: 'environments.production.allow.slack.groups',
      code: 'plan_upgrade_required',
    });
    expect(line?.msg).toMatch(/paid plan/);
  });
});

function unkeyConfig(allow: { users?: string[]; groups?: string[] }) {
  return {
    platform: 'unkey' as const,
    file: {
      environments: {
        production: {
          allow: {
            slack: { users: [], groups: [], ...allow },
            discord: { users: [], roles: [] },
            console: { users: [] },
          },
        },
      },
    } as never,
  };
}
