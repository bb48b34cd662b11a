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

/**
 * A plan whose hour runs out with nobody clicking used to keep its buttons on every message until
 * someone clicked one (plans expired only when read). The sweep (`ChatService.expireDue`, run every
 * few seconds by each bot process: `sweepExpired`) expires it, audited once across replicas, and shows
 * it expired on every message it lists.
 */
describe('plans whose time runs out unclicked', () => {
  it('are shown expired on every message by the sweep, audited once, and swept only once', async () => {
    h = await createHarness({ ttlMs: 60_000 });
    const slack = new RecordingPoster('slack');
    const discord = new RecordingPoster('discord');
    const closed: string[] = [];
    const chat = new ChatService({
      flow: h.flow,
      clock: h.clock,
      posters: () => ({ slack, discord }),
      onPlanClosed: (planId) => closed.push(planId),
    });
    const planned = await h.flow.plan(alice, 'rollback', 'production', undefined, {});
    if (!planned.ok) throw new Error(planned.refusal.message);
    const id = planned.plan.id;
    for (const ref of [slackRef('1.000001'), slackRef('1.000002'), discordRef])
      await h.flow.attachMessage(id, ref);

    await h.clock.advance(59_999);
    expect(await chat.expireDue()).toEqual([]);
    await h.clock.advance(1);
    const swept = await chat.expireDue();
    await chat.idle();
    expect(swept.map((r) => [r.plan.id, r.state])).toEqual([[id, 'expired']]);
    const expired = expect.stringMatching(/^Expired: roll back production/);
    expect({
      m1: slack.titles('1.000001'),
      m2: slack.titles('1.000002'),
      discord: discord.titles('998877'),
      closed,
    }).toEqual({ m1: [expired], m2: [expired], discord: [expired], closed: [id] });
    // no button that acts on the lapsed plan is left on them (the expired view offers a fresh plan only)
    expect(slack.edits.flatMap((e) => e.view.buttons.map((b) => b.label))).toEqual([
      'Make a fresh plan',
      'Make a fresh plan',
    ]);
    expect((await h.flow.get(id))?.state).toBe('expired');
    const audit = await h.audit.recent('production', 10);
    expect(audit.map((a) => `${a.event}:${a.code ?? ''}`)).toEqual(['cancelled:expired', 'requested:']);

    // Taken off the index: a later sweep finds nothing and edits nothing again.
    expect(await h.plans.dueToExpire(h.clock.now() + 3_600_000, 10)).toEqual([]);
    await h.clock.advance(60_000);
    expect(await chat.expireDue()).toEqual([]);
    await chat.idle();
    expect(slack.edits).toHaveLength(2);
  });

  it('two replicas sweeping at once expire a plan once: one edits its messages, one audit entry', async () => {
    const harness = await createHarness({ ttlMs: 60_000 });
    h = harness;
    const posters = [new RecordingPoster('slack'), new RecordingPoster('slack')] as const;
    const replicas = posters.map(
      (slack) => new ChatService({ flow: harness.flow, clock: harness.clock, posters: () => ({ slack }) }),
    );
    const planned = await h.flow.plan(alice, 'rollback', 'production', undefined, {});
    if (!planned.ok) throw new Error(planned.refusal.message);
    await h.flow.attachMessage(planned.plan.id, slackRef('1.000001'));
    await h.clock.advance(60_000);

    const swept = await Promise.all(replicas.map((c) => c.expireDue()));
    await Promise.all(replicas.map((c) => c.idle()));
    expect(swept.map((s) => s.length).sort()).toEqual([0, 1]);
    expect(posters.map((p) => p.edits.length).sort()).toEqual([0, 1]);
    const audit = await h.audit.recent('production', 10);
    expect(audit.filter((a) => a.code === 'expired')).toHaveLength(1);
  });

  it('leaves alone a plan confirmed in time, and a plan asked for again (its new record expires an hour later)', async () => {
    h = await createHarness({ ttlMs: 60_000 });
    const slack = new RecordingPoster('slack');
    const chat = new ChatService({ flow: h.flow, clock: h.clock, posters: () => ({ slack }) });
    const rollback = await h.flow.plan(alice, 'rollback', 'production', undefined, {});
    if (!rollback.ok) throw new Error(rollback.refusal.message);
    await h.flow.attachMessage(rollback.plan.id, slackRef('1.000001'));
    expect((await chat.click(alice, `sy1:confirm:${rollback.plan.id}`, slackRef('1.000001'))).outcome).toBe(
      'enqueued',
    );
    const promote = await h.flow.plan(bob, 'rollback', 'preview', undefined, {});
    if (!promote.ok) throw new Error(promote.refusal.message);
    await h.flow.attachMessage(promote.plan.id, slackRef('2.000001'));

    await h.clock.advance(60_000);
    // The preview rollback is asked for again after its time ran out: a new record, open for another minute.
    const again = await h.flow.plan(bob, 'rollback', 'preview', undefined, {});
    if (!again.ok) throw new Error(again.refusal.message);
    expect(again.plan.id).toBe(promote.plan.id);
    await chat.expireDue();
    await chat.idle();
    expect(slack.edits).toEqual([]);
    expect((await h.flow.get(rollback.plan.id))?.state).toBe('enqueued');
    expect((await h.flow.get(promote.plan.id))?.state).toBe('pending');

    await h.clock.advance(60_000);
    expect((await chat.expireDue()).map((r) => r.plan.id)).toEqual([promote.plan.id]);
    expect((await h.flow.get(rollback.plan.id))?.state).toBe('enqueued');
  });

  it('a claim whose job never came is expired by the sweep once abandoned, not dropped from it', async () => {
    h = await createHarness({ ttlMs: 60_000 });
    const slack = new RecordingPoster('slack');
    const chat = new ChatService({ flow: h.flow, clock: h.clock, posters: () => ({ slack }) });
    const planned = await h.flow.plan(alice, 'rollback', 'production', undefined, {});
    if (!planned.ok) throw new Error(planned.refusal.message);
    const id = planned.plan.id;
    await h.flow.attachMessage(id, slackRef('1.000001'));
    await h.clock.advance(50_000);
    // A click claimed the plan 10 s before its time ran out, but its job never came (its enqueue and
    // the undo of its claim both failed, or its process died in between).
    expect((await h.plans.transition(id, ['pending'], 'enqueued', { confirmedBy: alice })).ok).toBe(true);

    await h.clock.advance(10_000);
    // Still a claim under way (its click may yet queue it): left alone, and looked at again later.
    expect(await chat.expireDue()).toEqual([]);
    expect((await h.flow.get(id))?.state === 'expired').toBe(false);
    expect(await h.plans.dueToExpire(h.clock.now(), 10)).toEqual([id]);

    await h.clock.advance(60_000); // abandoned now
    expect((await chat.expireDue()).map((r) => r.plan.id)).toEqual([id]);
    await chat.idle();
    expect(slack.titles('1.000001')).toEqual([expect.stringMatching(/^Expired:/)]);
    expect((await h.plans.get(id))?.state).toBe('expired');
    expect(await h.plans.dueToExpire(h.clock.now(), 10)).toEqual([]);
    const audit = await h.audit.recent('production', 10);
    expect(audit.filter((a) => a.code === 'expired')).toHaveLength(1);
  });

  it('a plan waiting for its second approver says so when it expires', async () => {
    h = await createHarness({ ttlMs: 60_000, environments: { production: { twoPersonRule: true } } });
    const slack = new RecordingPoster('slack');
    const chat = new ChatService({ flow: h.flow, clock: h.clock, posters: () => ({ slack }) });
    const planned = await h.flow.plan(alice, 'rollback', 'production', undefined, {});
    if (!planned.ok) throw new Error(planned.refusal.message);
    const [m1, m2] = [slackRef('1.000001'), slackRef('1.000002')];
    for (const ref of [m1, m2]) await h.flow.attachMessage(planned.plan.id, ref);
    expect((await chat.click(alice, `sy1:confirm:${planned.plan.id}`, m1)).outcome).toBe('awaiting_approval');
    await chat.idle();
    await h.clock.advance(60_000);
    await chat.expireDue();
    await chat.idle();
    const last = slack.edits.filter((e) => e.ref.messageId === m1.messageId).at(-1);
    expect(last?.view.title).toMatch(/^Expired: roll back production/);
    expect(JSON.stringify(last?.view)).toMatch(/no second person approved it in time/);
    expect(slack.edits.filter((e) => e.ref.messageId === m2.messageId).at(-1)?.view.title).toBe(
      last?.view.title,
    );
  });

  it('a request joining a plan 10 s before its time runs out restarts it: the sweep leaves the plan for its whole time again', async () => {
    h = await createHarness({ ttlMs: 60_000 });
    const slack = new RecordingPoster('slack');
    const chat = new ChatService({ flow: h.flow, clock: h.clock, posters: () => ({ slack }) });
    const planned = await h.flow.plan(alice, 'rollback', 'production', undefined, {});
    if (!planned.ok) throw new Error(planned.refusal.message);
    const id = planned.plan.id;
    await h.flow.attachMessage(id, slackRef('1.000001'));

    await h.clock.advance(50_000);
    // Bob types the same /rollback: he joins the plan and is shown its confirmation.
    const joined = await h.flow.plan(bob, 'rollback', 'production', undefined, {
      messages: [slackRef('2.000001')],
    });
    if (!joined.ok) throw new Error(joined.refusal.message);
    expect({ id: joined.plan.id, created: joined.created }).toEqual({ id, created: false });
    expect(joined.record.expiresAt).toBe(h.clock.now() + 60_000);

    await h.clock.advance(15_000); // the first minute is over: the sweep's turn
    expect(await chat.expireDue()).toEqual([]);
    await chat.idle();
    expect(slack.edits).toEqual([]);
    expect((await h.flow.get(id))?.state).toBe('pending');

    await h.clock.advance(45_000); // a minute after Bob asked
    expect((await chat.expireDue()).map((r) => r.plan.id)).toEqual([id]);
    await chat.idle();
    const expired = expect.stringMatching(/^Expired: roll back production/);
    expect({ m1: slack.titles('1.000001'), m2: slack.titles('2.000001') }).toEqual({
      m1: [expired],
      m2: [expired],
    });
  });

  it('a plan expired by a read just before the sweep (/deployments, a refresh) is shown expired by one replica’s sweep, once', async () => {
    const harness = await createHarness({ ttlMs: 60_000 });
    h = harness;
    const posters = [new RecordingPoster('slack'), new RecordingPoster('slack')] as const;
    const closed: string[] = [];
    const replicas = posters.map(
      (slack) =>
        new ChatService({
          flow: harness.flow,
          clock: harness.clock,
          posters: () => ({ slack }),
          onPlanClosed: (planId) => closed.push(planId),
        }),
    );
    const planned = await h.flow.plan(alice, 'rollback', 'production', undefined, {});
    if (!planned.ok) throw new Error(planned.refusal.message);
    const id = planned.plan.id;
    await h.flow.attachMessage(id, slackRef('1.000001'));

    await h.clock.advance(63_000); // 3 s after the plan's time, before the next sweep
    expect((await h.flow.deployments('production')).ok).toBe(true); // someone types /deployments
    expect((await h.flow.get(id))?.state).toBe('expired'); // the read expired it (and a refresh read it)
    expect(posters.flatMap((p) => p.edits)).toEqual([]); // …showing nothing

    await h.clock.advance(12_000); // the sweep's turn, on two replicas at once
    const swept = await Promise.all(replicas.map((c) => c.expireDue()));
    await Promise.all(replicas.map((c) => c.idle()));
    expect(swept.map((s) => s.map((r) => [r.plan.id, r.state]))).toContainEqual([[id, 'expired']]);
    expect(swept.map((s) => s.length).sort()).toEqual([0, 1]);
    expect(posters.flatMap((p) => p.titles('1.000001'))).toEqual([
      expect.stringMatching(/^Expired: roll back production/),
    ]);
    expect(closed).toEqual([id]); // its alert suggestions too
    const audit = await h.audit.recent('production', 10);
    expect(audit.filter((a) => a.code === 'expired')).toHaveLength(1);

    // Shown once: taken off the index, and a later sweep shows nothing again.
    expect(await h.plans.dueToExpire(h.clock.now() + 3_600_000, 10)).toEqual([]);
    await h.clock.advance(15_000);
    expect(await Promise.all(replicas.map((c) => c.expireDue()))).toEqual([[], []]);
    await Promise.all(replicas.map((c) => c.idle()));
    expect(posters.flatMap((p) => p.edits)).toHaveLength(1);
  });

  it('sweepExpired sweeps every interval of the clock, logs a failing sweep once, and stops', async () => {
    h = await createHarness({ ttlMs: 60_000 });
    const harness = h;
    const slack = new RecordingPoster('slack');
    const log = new CapturedLog('debug');
    // Flow's sweep, failing twice before it works: Redis away (said at debug: the watchdog or the
    // connection's events warn of that), then another fault (a warning).
    const failures = [
      new Error('Connection is closed.'),
      new Error('WRONGTYPE Operation against a key holding the wrong kind of value'),
    ];
    const flow = Object.create(harness.flow) as typeof harness.flow;
    flow.expireDue = async () => {
      const failure = failures.shift();
      if (failure !== undefined) throw failure;
      return harness.flow.expireDue();
    };
    // The harness clock, announcing each sleep of the sweep.
    const sleeps: (() => void)[] = [];
    const clock = {
      now: () => harness.clock.now(),
      sleep: (ms: number, signal?: AbortSignal) => {
        const p = harness.clock.sleep(ms, signal);
        sleeps.shift()?.();
        return p;
      },
    };
    const parked = () => new Promise<void>((resolve) => sleeps.push(resolve));
    const chat = new ChatService({ flow, clock, posters: () => ({ slack }), logger: log.logger });
    const planned = await harness.flow.plan(alice, 'rollback', 'production', undefined, {});
    if (!planned.ok) throw new Error(planned.refusal.message);
    await harness.flow.attachMessage(planned.plan.id, slackRef('1.000001'));
    await harness.clock.advance(60_000);

    let next = parked();
    const stop = chat.sweepExpired(5_000);
    for (let round = 0; round < 3; round++) {
      await next;
      next = parked();
      await harness.clock.advance(5_000);
    }
    await next; // the third sweep (the first that worked) is done
    await chat.idle();
    expect(slack.titles('1.000001')).toEqual([expect.stringMatching(/^Expired:/)]);
    expect(
      log.lines.filter((l) => /could not look for expired plans/.test(String(l.msg))).map((l) => l.level),
    ).toEqual([20, 40]);
    expect(
      log.lines
        .filter((l) => /looking for expired plans works again/.test(String(l.msg)))
        .map((l) => l.level),
    ).toEqual([30]);
    await stop();
    expect(harness.clock.pending).toBe(0);
  });
});
