/**
 * ChatService shows a click that closed a plan (cancelled, out of date, expired) or made it wait for
 * approval on the plan's other messages, through each surface's poster, in the background: not on the
 * clicked message (the click's own answer updates it), not on the plan's alert suggestions (their sink
 * refreshes them, with their own alert or dismissed), and again when the plan moved under its edits
 * (a click on another replica). Real Redis, Flow and PlanStore on a ManualClock; recording posters.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ChatService } from '../../src/chat.js';
import type { ChatPoster } from '../../src/chat-sinks.js';
import type { MessageRef } from '../../src/progress.js';
import type { MessageView } from '../../src/views/types.js';
import { CapturedLog } from '../support/captured-log.js';
import { gate } from '../support/gate.js';
import { alice, bob, createHarness, dave, type Harness } from './harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** A poster that records each edit (`hold`: awaited before an edit lands). */
class RecordingPoster implements ChatPoster {
  readonly edits: { ref: MessageRef; view: MessageView }[] = [];
  hold: ((ref: MessageRef) => Promise<void>) | undefined;
  constructor(readonly surface: 'slack' | 'discord' | 'console') {}
  async post(): Promise<MessageRef> {
    throw new Error('not posting in these tests');
  }
  async update(ref: MessageRef, view: MessageView): Promise<void> {
    await this.hold?.(ref);
    this.edits.push({ ref, view });
  }
  /** The titles shown on message `messageId`, in the order they landed. */
  titles(messageId: string): string[] {
    return this.edits.filter((e) => e.ref.messageId === messageId).map((e) => e.view.title);
  }
}

const slackRef = (messageId: string): MessageRef => ({ surface: 'slack', channel: 'C0PROD', messageId });
const discordRef: MessageRef = { surface: 'discord', channel: '123456789012', messageId: '998877' };

describe('a click shown on the plan’s other messages', () => {
  it('expired: a click on one message after the plan’s time shows every other message expired', async () => {
    h = await createHarness({ ttlMs: 60_000 });
    const slack = new RecordingPoster('slack');
    const discord = new RecordingPoster('discord');
    const chat = new ChatService({ flow: h.flow, clock: h.clock, posters: () => ({ slack, discord }) });
    const planned = await h.flow.plan(alice, 'rollback', 'production', undefined, {});
    if (!planned.ok) throw new Error(planned.refusal.message);
    const id = planned.plan.id;
    for (const ref of [slackRef('1.000001'), slackRef('1.000002'), discordRef])
      await h.flow.attachMessage(id, ref);

    await h.clock.advance(60_001); // nobody acted within the plan's time
    const out = await chat.click(bob, `sy1:confirm:${id}`, slackRef('1.000001'));
    expect(out.outcome).toBe('expired');
    await chat.idle();
    expect({
      clicked: slack.titles('1.000001'),
      other: slack.titles('1.000002'),
      discord: discord.titles('998877'),
    }).toEqual({
      clicked: [], // the click's own answer (`out.update`) shows it there
      other: [out.update?.title],
      discord: [out.update?.title],
    });
    expect(out.update?.title).toMatch(/^Expired: roll back production/);
  });

  it('leaves the plan’s alert suggestions to their sink, and logs messages on a surface it has no poster for', async () => {
    h = await createHarness();
    const slack = new RecordingPoster('slack');
    const log = new CapturedLog('warn');
    const chat = new ChatService({
      flow: h.flow,
      clock: h.clock,
      posters: () => ({ slack }),
      logger: log.logger,
    });
    const alert = {
      source: 'grafana',
      title: 'p99 latency',
      startedAt: h.clock.now(),
      status: 'firing' as const,
    };
    const planned = await h.flow.plan(alice, 'rollback', 'production', undefined, { alert });
    if (!planned.ok) throw new Error(planned.refusal.message);
    const id = planned.plan.id;
    const suggestion = { surface: 'slack' as const, channel: 'C0ALERTS', messageId: '2.000001' };
    expect((await h.plans.groupAlert(id, 'incident-1', alert, ['slack:C0ALERTS']))?.slots).toEqual([
      { slot: 'slack:C0ALERTS', claimed: true },
    ]);
    await h.plans.suggestionPosted(id, 'slack:C0ALERTS', 'incident-1', suggestion);
    for (const ref of [suggestion, slackRef('1.000001'), slackRef('1.000002'), discordRef])
      await h.flow.attachMessage(id, ref);

    expect((await chat.click(alice, `sy1:cancel:${id}`, slackRef('1.000001'))).outcome).toBe('cancelled');
    await chat.idle();
    expect(slack.edits.map((e) => [e.ref.messageId, e.view.title])).toEqual([
      ['1.000002', expect.stringMatching(/^Cancelled: roll back production/)],
    ]);
    expect(log.lines.filter((l) => l.surface === 'discord').map((l) => l.msg)).toEqual([
      "this process has no discord poster: the plan's discord messages keep showing its earlier state",
    ]);
  });

  it('a plan cancelled on another replica while the click’s edits were under way: every message ends cancelled, the clicked one too', async () => {
    h = await createHarness({ environments: { production: { twoPersonRule: true } } });
    const slack = new RecordingPoster('slack');
    const here = new ChatService({ flow: h.flow, clock: h.clock, posters: () => ({ slack }) });
    // Another replica, whose own edits are not seen here (they may land before ours).
    const there = new ChatService({ flow: h.flow, clock: h.clock });
    const planned = await h.flow.plan(alice, 'rollback', 'production', undefined, {});
    if (!planned.ok) throw new Error(planned.refusal.message);
    const id = planned.plan.id;
    const [m1, m2] = [slackRef('1.000001'), slackRef('1.000002')];
    for (const ref of [m1, m2]) await h.flow.attachMessage(id, ref);

    const held = gate();
    slack.hold = async () => {
      slack.hold = undefined; // only the first edit
      await held.wait();
    };
    expect((await here.click(alice, `sy1:confirm:${id}`, m1)).outcome).toBe('awaiting_approval');
    await held.reached; // "Waiting for approval" on m2, not landed yet
    expect((await there.click(dave, `sy1:cancel:${id}`, m2)).outcome).toBe('cancelled');
    held.open();
    await here.idle();

    expect({ m1: slack.titles(m1.messageId), m2: slack.titles(m2.messageId) }).toEqual({
      m1: [expect.stringMatching(/^Cancelled:/)],
      m2: [expect.stringMatching(/^Waiting for approval:/), expect.stringMatching(/^Cancelled:/)],
    });
  });
});
