/**
 * The Discord ChatPoster's `update` (handlers/surfaces.ts `discordPoster`) through the real
 * DiscordMessages lane and discord.js REST against the fake Discord: an edit that failed rejects with
 * the REST error, which `retryable` classifies (a 5xx after REST's own retries may pass; Unknown
 * Message is final); an edit replaced by a newer one settles as that one does; an edit the lane drops
 * because the message shows a switch's progress resolves. Progress reports and click edits still
 * never reject. Its `post` is never duplicated by a re-send: discord.js's own, after its time-out, nor
 * the caller's with the same key.
 */
import { REST } from 'discord.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDiscordRest } from '../../handlers/discord/client.js';
import { DiscordMessages } from '../../handlers/discord/messages.js';
import { DiscordReporter } from '../../handlers/discord/reporter.js';
import { discordPoster } from '../../handlers/surfaces.js';
import type { ChatPoster } from '../../src/chat-sinks.js';
import { textView } from '../../src/chat-sinks.js';
import type { MessageRef, Progress } from '../../src/progress.js';
import { renderDiscord } from '../../src/views/discord.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/server.js';
import { progressFixture } from '../support/progress.js';
import { textOf } from './harness.js';

const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);
const EDIT = /^\/channels\/\d+\/messages\/\d+$/;

function progress(outcome?: 'succeeded' | 'failed'): Progress {
  return progressFixture({
    steps: [{ step: 'switching', state: outcome ? 'done' : 'running', startedAt: T0 }],
    // (A success shows the worker's note, a failure its message.)
    ...(outcome === undefined
      ? {}
      : { outcome, message: `Rollback ${outcome}.`, note: `Rollback ${outcome}.` }),
    updatedAt: T0 + (outcome === undefined ? 0 : 900),
  });
}

/** What the update promise came to: 'resolved', or the error it rejected with. */
async function outcomeOf(p: Promise<void>): Promise<'resolved' | unknown> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return e;
  }
}

describe('Discord poster update', () => {
  let fake: FakeDiscord;
  let rest: REST;
  let messages: DiscordMessages;
  let poster: ChatPoster;
  let ref: MessageRef;

  beforeEach(async () => {
    fake = await startFakeDiscord();
    rest = new REST({ api: fake.apiUrl }).setToken(fake.token);
    messages = new DiscordMessages({ rest });
    poster = discordPoster(messages);
    ref = await poster.post(fake.channels.ops, textView('Alert on production', ['It fires.'], 'warning'));
  });

  afterEach(async () => {
    rest.clearHashSweeper();
    rest.clearHandlerSweeper();
    await fake.close();
  });

  const edits = () => fake.calls.filter((c) => c.method === 'PATCH');
  const shown = () => textOf(fake.messages.get(ref.messageId) ?? { content: '', embeds: [] });

  it("rejects after Discord's 5xx outlasted REST's retries: retryable", async () => {
    fake.failNext({
      method: 'PATCH',
      path: EDIT,
      status: 503,
      code: 0,
      message: 'Service Unavailable',
      times: 4,
    });
    const error = await outcomeOf(
      poster.update(ref, textView('Resolved', ['The alert resolved.'], 'success')),
    );
    expect(error).toMatchObject({ status: 503 });
    expect(poster.retryable?.(error)).toBe(true);
    expect(edits().map((c) => c.status)).toEqual([503, 503, 503, 503]); // 1 try + REST's 3 retries
    expect(shown()).toContain('Alert on production');
  });

  it('rejects when Discord refuses it (Unknown Message, Missing Access): not retryable', async () => {
    fake.messages.delete(ref.messageId);
    const gone = await outcomeOf(poster.update(ref, textView('Resolved', [], 'success')));
    expect(gone).toMatchObject({ status: 404, code: 10008 });
    expect(poster.retryable?.(gone)).toBe(false);

    const other = await poster.post(fake.channels.ops, textView('Another', []));
    fake.failNext({ method: 'PATCH', path: EDIT, status: 403, code: 50001, message: 'Missing Access' });
    const denied = await outcomeOf(poster.update(other, textView('Resolved', [], 'success')));
    expect(denied).toMatchObject({ status: 403, code: 50001 });
    expect(poster.retryable?.(denied)).toBe(false);
    expect(edits().map((c) => c.status)).toEqual([404, 403]);
  });

  it('an edit replaced by a newer one before it went out settles as the newer one does', async () => {
    // One goes out at once; Two waits behind it and is replaced by Three.
    const one = outcomeOf(poster.update(ref, textView('One', [])));
    const two = outcomeOf(poster.update(ref, textView('Two', [])));
    const three = outcomeOf(poster.update(ref, textView('Three', [])));
    expect([await one, await two, await three]).toEqual(['resolved', 'resolved', 'resolved']);
    expect(edits().map((c) => textOf(c.body as { content: string; embeds: [] }))).toEqual([
      expect.stringContaining('One'),
      expect.stringContaining('Three'),
    ]);

    // Four (in flight) is refused while Six waits: it follows Six; Six is refused: all three hear it.
    fake.failNext({
      method: 'PATCH',
      path: EDIT,
      status: 403,
      code: 50001,
      message: 'Missing Access',
      times: 2,
    });
    const four = outcomeOf(poster.update(ref, textView('Four', [])));
    const five = outcomeOf(poster.update(ref, textView('Five', [])));
    const six = outcomeOf(poster.update(ref, textView('Six', [])));
    const results = [await four, await five, await six];
    for (const r of results) expect(r).toMatchObject({ status: 403, code: 50001 });
    expect(
      edits()
        .slice(2)
        .map((c) => c.status),
    ).toEqual([403, 403]);
  });

  it('an edit refused while a newer one waits follows the newer one, which Discord took', async () => {
    fake.failNext({ method: 'PATCH', path: EDIT, status: 400, code: 50035, message: 'Invalid Form Body' });
    const first = outcomeOf(poster.update(ref, textView('First', [])));
    const second = outcomeOf(poster.update(ref, textView('Second', [])));
    expect([await first, await second]).toEqual(['resolved', 'resolved']);
    expect(edits().map((c) => c.status)).toEqual([400, 200]);
    expect(shown()).toContain('Second');
  });

  it('an edit after the switch showed its progress (final state) resolves without editing', async () => {
    const reporter = new DiscordReporter({ messages });
    await reporter.report(progress('succeeded'), [ref]);
    await expect(poster.update(ref, textView('Resolved', [], 'success'))).resolves.toBeUndefined();
    expect(edits()).toHaveLength(1);
    expect(shown()).toContain('succeeded');
  });

  it("an edit that supersedes the switch's progress is made over its final state", async () => {
    const reporter = new DiscordReporter({ messages });
    await reporter.report(progress('failed'), [ref]);
    const update = textView('Failed, then completed by the platform', [], 'warning');
    await poster.update(ref, update, { supersedesProgress: { at: T0 + 60_000 } });
    expect(edits()).toHaveLength(2);
    expect(shown()).toContain('Failed, then completed by the platform');
  });

  it('progress reports and click edits still resolve on a failure', async () => {
    const reporter = new DiscordReporter({ messages });
    fake.failNext({
      method: 'PATCH',
      path: EDIT,
      status: 503,
      code: 0,
      message: 'Service Unavailable',
      times: 4,
    });
    await expect(reporter.report(progress(), [ref])).resolves.toBeUndefined();
    await reporter.flush();
    const other = await poster.post(fake.channels.ops, textView('Another', []));
    fake.messages.delete(other.messageId);
    await expect(
      messages.edit(other.channel, other.messageId, renderDiscord(textView('Confirmed', [])), {
        kind: 'view',
      }),
    ).resolves.toBeUndefined();
    await expect(reporter.report(progress('failed'), [other])).resolves.toBeUndefined();
    expect(edits().map((c) => c.status)).toEqual([503, 503, 503, 503, 404, 404]);
  });
});

describe('Discord poster post', () => {
  const CREATE = /^\/channels\/\d+\/messages$/;
  let fake: FakeDiscord;
  let rest: REST;
  let messages: DiscordMessages;
  let poster: ChatPoster;

  beforeEach(async () => {
    fake = await startFakeDiscord();
    // A short time-out, so that discord.js gives a held answer up at once (15 s by default).
    rest = createDiscordRest(fake.token, fake.apiUrl, { timeoutMs: 500 });
    messages = new DiscordMessages({ rest });
    poster = discordPoster(messages);
  });

  afterEach(async () => {
    rest.clearHashSweeper();
    rest.clearHandlerSweeper();
    await fake.close();
  });

  const creates = () => fake.calls.filter((c) => c.method === 'POST' && CREATE.test(c.path));
  const nonceOf = (c: { body: unknown } | undefined) => (c?.body as { nonce?: unknown } | undefined)?.nonce;

  it('a post whose answer came too late is sent again by discord.js and posted once: its ref is that message', async () => {
    const ops = fake.channels.ops;
    // Discord creates the message; its answer does not come before discord.js's time-out.
    const held = fake.hold({ method: 'POST', path: CREATE });
    const posting = poster.post(ops, textView('Roll back production?', ['Alert: errors on checkout.']));
    await held.reached();
    await held.abandoned();
    const resent = await fake.waitForRequest((c) => c.method === 'POST' && CREATE.test(c.path), {
      from: (creates()[0]?.index ?? 0) + 1,
    });
    const ref = await posting;
    held.release();

    // One message, and it is the one the ref names (nothing left behind that no edit follows).
    expect(fake.channelMessages(ops).map((m) => m.id)).toEqual([ref.messageId]);
    const [first] = creates();
    expect(nonceOf(resent)).toBe(nonceOf(first));
    expect(resent.body).toMatchObject({ enforce_nonce: true });
    expect((resent.response as { id: string }).id).toBe(ref.messageId);
    // The switch's progress edits the one message people see.
    const reporter = new DiscordReporter({ messages });
    await reporter.report(progress('succeeded'), [ref]);
    expect(textOf(fake.messages.get(ref.messageId) ?? { content: '', embeds: [] })).toContain('succeeded');
  });

  it('a post made again with the same key answers the first message; posts without one are never merged', async () => {
    const ops = fake.channels.ops;
    const view = textView('staging is still rolled back', []);
    const first = await poster.post(ops, view, { key: 'notice:staging:reminder:1:discord' });
    const again = await poster.post(ops, view, { key: 'notice:staging:reminder:1:discord' });
    expect(again).toEqual(first);
    const other = await poster.post(ops, view, { key: 'notice:staging:reminder:2:discord' });
    const plain1 = await poster.post(ops, view);
    const plain2 = await poster.post(ops, view);
    const ids = [first, other, plain1, plain2].map((r) => r.messageId);
    expect(new Set(ids).size).toBe(4);
    expect(fake.channelMessages(ops).map((m) => m.id)).toEqual(ids);
    for (const c of creates()) expect(String(nonceOf(c)).length).toBeLessThanOrEqual(25);
  });
});
