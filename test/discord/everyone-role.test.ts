/**
 * An allow list naming the server's @everyone role (its id is the server's id: Discord's "Copy Role ID"
 * on @everyone gives it) lets every member of the server act: every member holds @everyone, although
 * Discord leaves it out of an interaction's role list (handlers/discord/context.ts actingUser).
 */
import { describe, expect, it } from 'vitest';
import { CallbackType, MessageFlag } from '../fakes/discord/protocol.js';
import {
  advanceWhenParked,
  followUp,
  messageOf,
  NO_MESSAGE,
  press,
  REACTIVATION_MS,
  slash,
  startPerTest,
  textOf,
  waitForMessage,
  waitForPost,
} from './harness.js';

const start = startPerTest();

describe('Discord allow list naming @everyone', () => {
  it('a member of the server (holding only @everyone) may confirm', async () => {
    const e = await start({ allowRoles: (fake) => [fake.roles.everyone] });
    const from = e.fake.calls.length;
    const i = slash(e, 'rollback', { environment: 'preview' }, e.bob, [e.fake.roles.viewers]);
    await e.fake.waitForCallback(i);
    const message = await waitForPost(e.fake, e.fake.channels.ops, from);
    const from2 = e.fake.calls.length;
    const c = press(e, message, 'Rollback to target version', e.bob, [e.fake.roles.viewers]);
    expect((await e.fake.waitForCallback(c)).type).toBe(CallbackType.deferredUpdateMessage);
    // Either the message moves on (confirmed / progress) or bob gets an ephemeral refusal.
    const outcome = await Promise.race([
      waitForMessage(
        e.fake,
        message.id,
        (t) => /Confirmed by|Traffic is on|Switching|Validating/.test(t),
        from2,
      ).then(() => 'confirmed'),
      followUp(e, c, from2).then((x) => {
        const note = messageOf(e, x);
        expect((note?.flags ?? 0) & MessageFlag.ephemeral).toBe(MessageFlag.ephemeral);
        return `refused: ${textOf(note ?? NO_MESSAGE).slice(0, 300)}`;
      }),
    ]);
    expect(outcome).toBe('confirmed');
    // The switch it queued runs to its end (closing the world mid-switch waits out the shutdown timeout):
    // a standby target is reactivated on the world's clock first.
    const step = await waitForMessage(
      e.fake,
      message.id,
      (t) => /Traffic is on|⏳ Reactivating standby target.*\(running\)/.test(t),
      from2,
    );
    if (!textOf(step).includes('Traffic is on')) {
      await advanceWhenParked(e.clock, REACTIVATION_MS);
      await waitForMessage(e.fake, message.id, (t) => t.includes('Traffic is on'), from2);
    }
  });
});
