/**
 * An allow list naming the server's @everyone role (its id is the server's id: Discord's "Copy Role ID"
 * on @everyone gives it) lets every member of the server act: every member holds @everyone, although
 * Discord leaves it out of an interaction's role list (handlers/discord/context.ts actingUser).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CallbackType, MessageFlag } from '../fakes/discord/protocol.js';
import {
  buttonId,
  type DiscordE2E,
  startDiscordE2E,
  textOf,
  waitForMessage,
  waitForPost,
} from './harness.js';

let env: DiscordE2E | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

describe('Discord allow list naming @everyone', () => {
  it('a member of the server (holding only @everyone) may confirm', async () => {
    const e = await startDiscordE2E({ allowRoles: (fake) => [fake.roles.everyone] });
    env = e;
    const from = e.fake.calls.length;
    const i = e.fake.slash({
      command: 'rollback',
      options: [{ name: 'environment', value: 'preview' }],
      user: e.bob,
      roles: [e.fake.roles.viewers],
    });
    await e.fake.waitForCallback(i);
    const message = await waitForPost(e.fake, e.fake.channels.ops, from);
    const from2 = e.fake.calls.length;
    const c = e.fake.click({
      messageId: message.id,
      customId: buttonId(message, 'Rollback to target version'),
      user: e.bob,
      roles: [e.fake.roles.viewers],
    });
    expect((await e.fake.waitForCallback(c)).type).toBe(CallbackType.deferredUpdateMessage);
    // Either the message moves on (confirmed / progress) or bob gets an ephemeral refusal.
    const outcome = await Promise.race([
      waitForMessage(
        e.fake,
        message.id,
        (t) => /Confirmed by|Traffic is on|Switching|Validating/.test(t),
        from2,
      ).then(() => 'confirmed'),
      e.fake
        .waitForRequest(
          (x) => x.method === 'POST' && x.path === `/webhooks/${e.fake.applicationId}/${c.token}`,
          { from: from2 },
        )
        .then((x) => {
          const note = e.fake.messages.get(String((x.response as { id: string }).id));
          expect((note?.flags ?? 0) & MessageFlag.ephemeral).toBe(MessageFlag.ephemeral);
          return `refused: ${textOf(note ?? { content: '', embeds: [] }).slice(0, 300)}`;
        }),
    ]);
    expect(outcome).toBe('confirmed');
  });
});
