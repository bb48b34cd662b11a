/**
 * UserGroupResolver's cache (handlers/slack/groups.ts): an answer serves for exactly `ttlMs`, and a
 * passing failure that settles late never evicts a newer answer for the same group.
 */
import type { WebClient } from '@slack/web-api';
import { describe, expect, it } from 'vitest';
import { UserGroupResolver } from '../../handlers/slack/groups.js';
import { ManualClock } from '../../src/clock.js';

/** A Web API client whose `usergroups.users.list` answers are handed out by the test, call by call. */
function scriptedClient() {
  const calls: { group: string; answer: (users: string[]) => void; fail: (code: string) => void }[] = [];
  const client = {
    usergroups: {
      users: {
        list: ({ usergroup }: { usergroup: string }) =>
          new Promise((resolve, reject) => {
            calls.push({
              group: usergroup,
              answer: (users) => resolve({ ok: true, users }),
              fail: (code) =>
                reject(
                  Object.assign(new Error(`An API error occurred: ${code}`), {
                    data: { ok: false, error: code },
                  }),
                ),
            });
          }),
      },
    },
  } as unknown as WebClient;
  return { client, calls };
}

/** Lets pending promise callbacks run. */
async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

describe('UserGroupResolver cache', () => {
  it('serves an answer for less than ttlMs; at ttlMs after the lookup it asks Slack again', async () => {
    const { client, calls } = scriptedClient();
    const clock = new ManualClock(1_000_000);
    const resolver = new UserGroupResolver({ client, groups: ['S0OPS'], clock, ttlMs: 60_000 });
    const first = resolver.groupsOf('U0CAROL');
    await turns();
    calls[0]?.answer(['U0CAROL']);
    expect(await first).toEqual({ groups: ['S0OPS'] });
    clock.set(1_000_000 + 59_999);
    expect(await resolver.groupsOf('U0CAROL')).toEqual({ groups: ['S0OPS'] });
    expect(calls).toHaveLength(1);
    // Carol was taken out of the group: from ttlMs on, the removal counts.
    clock.set(1_000_000 + 60_000);
    const again = resolver.groupsOf('U0CAROL');
    await turns();
    expect(calls).toHaveLength(2);
    calls[1]?.answer([]);
    expect(await again).toEqual({ groups: [] });
  });

  it('a passing failure that settles after a newer lookup answered does not evict that answer', async () => {
    const { client, calls } = scriptedClient();
    const clock = new ManualClock(1_000_000);
    const resolver = new UserGroupResolver({ client, groups: ['S0OPS'], clock, ttlMs: 60_000 });
    // A lookup that hangs past the TTL…
    const slow = resolver.groupsOf('U0CAROL');
    await turns();
    expect(calls).toHaveLength(1);
    // …so the next click, a TTL later, asks again and gets an answer.
    clock.set(1_000_000 + 60_001);
    const fresh = resolver.groupsOf('U0CAROL');
    await turns();
    expect(calls).toHaveLength(2);
    calls[1]?.answer(['U0CAROL']);
    expect(await fresh).toEqual({ groups: ['S0OPS'] });
    // Only now does the old one fail (rate limited: a failure that passes).
    calls[0]?.fail('ratelimited');
    expect(await slow).toEqual({ groups: [], uncheckedGroups: ['S0OPS'] });
    await turns();
    // The newer answer still serves the next clicks within its TTL: no third lookup.
    const next = resolver.groupsOf('U0CAROL');
    await turns();
    expect(calls).toHaveLength(2);
    expect(await next).toEqual({ groups: ['S0OPS'] });
  });
});
