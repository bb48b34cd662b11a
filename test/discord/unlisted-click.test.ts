/**
 * Discord: a click on a confirmation its plan does not list (its attach failed when it was posted, a
 * Redis blip; or the plan already followed 40 messages) makes the message follow the switch — and shows
 * the switch as it stands at once. The job may have reported its first steps to its other messages
 * before this one was listed, and its worker reads the job's messages again only at its next step (here
 * after a whole standby reactivation): the click's "Confirmed…" view, which yields to progress already
 * reported, was dropped, and the message kept offering the plan it had just confirmed. The real
 * discord.js bot on the fake Discord, real Redis, Flow, queue and worker (test/discord/harness.ts).
 */
import { describe, expect, it } from 'vitest';
import { CallbackType } from '../fakes/discord/protocol.js';
import type { StoredMessage } from '../fakes/discord/server.js';
import {
  advanceWhenParked,
  buttonsOf,
  type DiscordE2E,
  originalEdited,
  press,
  REACTIVATION_MS,
  slash,
  startPerTest,
  textOf,
  waitForMessage,
  waitForPost,
} from './harness.js';

const start = startPerTest();

/** `/rollback environment:production` typed by `user`: the posted confirmation, once answered. */
async function askRollback(e: DiscordE2E, user = e.alice): Promise<StoredMessage> {
  const from = e.fake.calls.length;
  const i = slash(e, 'rollback', { environment: 'production' }, user);
  await e.fake.waitForCallback(i);
  const posted = await waitForPost(e.fake, e.fake.channels.ops, from);
  await originalEdited(e, i, from);
  return posted;
}

/** Makes the next `n` attaches fail as a Redis blip does; returns how many failed so far. */
function failAttaches(e: DiscordE2E, n: number): () => number {
  const attach = e.flow.attach.bind(e.flow);
  let failed = 0;
  e.flow.attach = (planId, ref, opts) => {
    if (failed < n) {
      failed += 1;
      return Promise.reject(new Error('Connection is closed.'));
    }
    return attach(planId, ref, opts);
  };
  return () => failed;
}

/** Resolves with the outcome of the next click the bot has handled in full (its edits delivered). */
function clickHandled(e: DiscordE2E): Promise<string> {
  const inc = e.metrics.clicks.inc.bind(e.metrics.clicks) as (labels: Record<string, string>) => void;
  return new Promise<string>((resolve) => {
    e.metrics.clicks.inc = ((labels: Record<string, string>) => {
      inc(labels);
      e.metrics.clicks.inc = inc as typeof e.metrics.clicks.inc;
      resolve(String(labels.outcome));
    }) as typeof e.metrics.clicks.inc;
  });
}

/** `user` presses `label` on `m`; resolves with the click's outcome once it was handled in full. */
async function clickOn(e: DiscordE2E, m: StoredMessage, label: string, user = e.alice): Promise<string> {
  const handled = clickHandled(e);
  const i = press(e, m, label, user);
  expect((await e.fake.waitForCallback(i)).type).toBe(CallbackType.deferredUpdateMessage);
  return handled;
}

function shown(e: DiscordE2E, id: string): { text: string; buttons: string[] } {
  const m = e.fake.messages.get(id);
  if (!m) throw new Error(`no message ${id}`);
  return { text: textOf(m), buttons: buttonsOf(m).map((b) => b.label) };
}

const REACTIVATING = /Reactivating standby target.*\(running\)/;

/**
 * Two copies of one plan: Alice's (listed), and Carol's, whose attach failed (listed nowhere). Alice
 * confirms on hers: the switch parks reactivating the standby target, reported to her copy only.
 */
async function parkedWithUnlistedCopy(e: DiscordE2E): Promise<{ m1: StoredMessage; m2: StoredMessage }> {
  const m1 = await askRollback(e);
  const failed = failAttaches(e, 1);
  const m2 = await askRollback(e, e.carol);
  expect(failed()).toBe(1);
  expect(shown(e, m2.id).buttons).toEqual(['Rollback to target version', 'Cancel']);
  const from = e.fake.calls.length;
  expect(await clickOn(e, m1, 'Rollback to target version')).toBe('enqueued');
  await waitForMessage(e.fake, m1.id, (t) => REACTIVATING.test(t), from);
  return { m1, m2 };
}

describe('Discord: a click on a confirmation its plan does not list', () => {
  it('Confirm (it makes the job): the message stops offering the plan at once and ends on the switch’s final state', async () => {
    const e = await start();
    const failed = failAttaches(e, 1);
    const message = await askRollback(e);
    expect(failed()).toBe(1);
    expect((await e.flow.get(buttonsOf(message)[0]?.custom_id.split(':').at(-1) ?? ''))?.messages).toEqual(
      [],
    );
    const from = e.fake.calls.length;
    expect(await clickOn(e, message, 'Rollback to target version', e.carol)).toBe('enqueued');
    // The click was handled in full: the message shows the switch, whatever step it had reached.
    expect(shown(e, message.id).buttons).toEqual([]);
    expect(shown(e, message.id).text).toContain(`Confirmed by <@${e.carol.id}>`);
    await advanceWhenParked(e.clock, REACTIVATION_MS);
    const final = await waitForMessage(e.fake, message.id, (t) => t.includes('Traffic is on'), from);
    expect(textOf(final)).toMatch(/Rolled back production/);
  });

  it.each([
    ['a worker in this process', false],
    ['a worker in another process', true],
  ])(
    'Confirm joining a switch that already reported (%s): the message shows the step the switch is on, then its end',
    async (_, separateWorker) => {
      const e = await start({ separateWorker });
      const { m1, m2 } = await parkedWithUnlistedCopy(e);
      const from = e.fake.calls.length;
      expect(await clickOn(e, m2, 'Rollback to target version', e.carol)).toBe('joined');
      // Not the plan any more, nor "Confirmed… progress follows": where the switch stands.
      expect(shown(e, m2.id).buttons).toEqual([]);
      expect(shown(e, m2.id).text).toMatch(REACTIVATING);
      await advanceWhenParked(e.clock, REACTIVATION_MS);
      await waitForMessage(e.fake, m1.id, (t) => t.includes('Traffic is on'), from);
      const final = await waitForMessage(e.fake, m2.id, (t) => t.includes('Traffic is on'), from);
      expect(textOf(final)).toMatch(/Rolled back production/);
    },
  );

  it('a Cancel too late: the clicker is told, and the message shows the running switch, then its end', async () => {
    const e = await start();
    const { m1, m2 } = await parkedWithUnlistedCopy(e);
    const from = e.fake.calls.length;
    expect(await clickOn(e, m2, 'Cancel', e.carol)).toBe('running');
    expect(shown(e, m2.id).buttons).toEqual([]);
    expect(shown(e, m2.id).text).toMatch(REACTIVATING);
    await advanceWhenParked(e.clock, REACTIVATION_MS);
    await waitForMessage(e.fake, m1.id, (t) => t.includes('Traffic is on'), from);
    const final = await waitForMessage(e.fake, m2.id, (t) => t.includes('Traffic is on'), from);
    expect(textOf(final)).toMatch(/Rolled back production/);
  });
});
