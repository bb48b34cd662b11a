/**
 * handlers/discord/context.ts `actingUser` when the interaction's member is Discord's raw API member
 * (discord.js hands that over, not a GuildMember, while the guild is not in its cache yet — e.g. right
 * after READY, before GUILD_CREATE): its role ids and server nickname must still be read, or a member
 * holding an allowed role is refused and messages name people by their global name instead of the
 * nickname everyone in the server sees. And `showEnded`: an ended job's outcome made the message's
 * final state once (a final progress state of its lane), not re-sent when this process already did.
 */
import type { BaseInteraction, REST } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { actingUser, showEnded } from '../../handlers/discord/context.js';
import { DiscordMessages } from '../../handlers/discord/messages.js';
import { progressFixture } from '../support/progress.js';

function interaction(
  member: unknown,
  user: { globalName: string | null; username: string },
): BaseInteraction {
  return {
    guildId: '900000000000000001',
    user: { id: '100000000000000042', ...user },
    member,
  } as unknown as BaseInteraction;
}

describe('actingUser with an API member (guild not cached)', () => {
  it('takes the member role ids from the interaction, plus the server @everyone role', () => {
    const acting = actingUser(
      interaction(
        { roles: ['700000000000000007', '700000000000000008'], nick: null },
        { globalName: 'Alice', username: 'alice' },
      ),
    );
    expect(acting.roles).toEqual(['700000000000000007', '700000000000000008', '900000000000000001']);
  });

  it('names the member by the server nickname when set, else the global display name', () => {
    const nicked = actingUser(
      interaction({ roles: [], nick: 'Ops Alice' }, { globalName: 'Alice', username: 'alice' }),
    );
    expect(nicked).toMatchObject({
      displayName: 'Ops Alice',
      username: 'alice',
      userId: '100000000000000042',
    });
    const plain = actingUser(
      interaction({ roles: [], nick: null }, { globalName: 'Alice', username: 'alice' }),
    );
    expect(plain.displayName).toBe('Alice');
  });

  it('without a member (no guild) holds no roles and no @everyone', () => {
    const acting = actingUser({
      guildId: null,
      user: { id: '100000000000000042', globalName: null, username: 'alice' },
      member: null,
    } as unknown as BaseInteraction);
    expect(acting).toMatchObject({ displayName: 'alice', username: 'alice', roles: [] });
  });
});

describe('showEnded', () => {
  const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);
  const ended = progressFixture({
    steps: [{ step: 'queued', state: 'done', startedAt: T0, endedAt: T0 + 500 }],
    outcome: 'succeeded',
    message: 'Rollback succeeded.',
    updatedAt: T0 + 900,
  });

  function recordingRest(): { rest: REST; patched: string[] } {
    const patched: string[] = [];
    const rest = {
      patch: async (route: string) => {
        patched.push(route);
        return {};
      },
      post: async () => ({ id: '1' }),
    } as unknown as REST;
    return { rest, patched };
  }

  it("marks the message final: the lane knows it shows the job's end", async () => {
    const { rest } = recordingRest();
    const messages = new DiscordMessages({ rest });
    await showEnded({ messages }, '100000000000000001', '100000000000000002', ended);
    expect(messages.isFinal('100000000000000001', '100000000000000002')).toBe(true);
  });

  it('edits the message once: a message already showing its final state here is not edited again', async () => {
    const { rest, patched } = recordingRest();
    const messages = new DiscordMessages({ rest });
    await showEnded({ messages }, '100000000000000001', '100000000000000002', ended);
    await showEnded({ messages }, '100000000000000001', '100000000000000002', ended);
    await messages.flush();
    expect(patched).toEqual(['/channels/100000000000000001/messages/100000000000000002']);
  });
});
