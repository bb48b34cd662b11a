/**
 * Allow lists by Slack user group when the group lookup (`usergroups.users.list`) fails: access is still
 * refused (fail closed), but the refusal tells the person the truth — Switchyard could not check their
 * user groups right now, try again — instead of "not on the allow list, ask an operator to add you".
 * Once Slack answers again the same click goes through. People allowed by user id are not affected.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { canAct } from '../../src/permissions.js';
import { buttonsOf } from '../fakes/slack/requests.js';
import type { RecordedCall, RecordedResponse } from '../fakes/slack/server.js';
import { startWorld, type World, type WorldOptions } from '../fakes/slack/world.js';
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
