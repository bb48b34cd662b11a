/**
 * Alerts of several incidents that point at one rollback share one suggestion message per place
 * (src/alerts/service.ts `postGrouped`, the plan's alert list and suggestion slots in
 * src/plan-store.ts), through the REAL suggestion sinks and ChatService, posting to in-memory Slack
 * and Discord: what each message shows at the end is what a person would see. Races are staged by
 * holding a post or an edit (MemoryPoster hooks, `afterSinkGet`), never by sleeping.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ALERT_ACTOR, AlertService, compositeSink } from '../../src/alerts/service.js';
import { ChatService } from '../../src/chat.js';
import { suggestionSink } from '../../src/chat-sinks.js';
import { MAX_ALERTS_PER_PLAN, MAX_COUNTED_ALERTS_PER_PLAN } from '../../src/plan-store.js';
import { type Progress, progressSchema } from '../../src/progress.js';
import { progressView } from '../../src/views/model.js';
import { buttonLabels, createHarness, type Harness, type MemoryPoster, MINUTE, viewText } from './helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.service.idle();
  await h?.close();
  h = undefined;
});

const ana = { surface: 'slack' as const, userId: 'U0ANA', displayName: 'Ana' };
const anaOnDiscord = { surface: 'discord' as const, userId: '999', displayName: 'Ana' };
const slackOnly = { environments: { production: { channels: { slack: 'C0ALERTS' } }, preview: {} } };

function gate(): { held: Promise<void>; reached: Promise<void>; arrive: () => void; release: () => void } {
  let arrive!: () => void;
  let release!: () => void;
  const reached = new Promise<void>((r) => {
    arrive = r;
  });
  const held = new Promise<void>((r) => {
    release = r;
  });
  return { held, reached, arrive, release };
}

describe('one suggestion per place for one rollback', () => {
  it('a Discord post that failed is made by the next alert, and the Slack message lists that alert too', async () => {
    h = await createHarness({ memoryChat: ['slack', 'discord'] });
    h.discord.failPost = 1;
    expect((await h.service.handle([h.alert()]))[0]?.outcome).toBe('suggested');
    const [later] = await h.service.handle([
      h.alert({ fingerprint: 'incident-2', title: 'Checkout latency' }),
    ]);
    expect(later?.outcome).toBe('suggested');
    await h.service.idle();
    expect(viewText(h.discord.inChannel('123456789012')[0]?.view)).toContain('Checkout latency');
    expect(viewText(h.slack.inChannel('C0ALERTS')[0]?.view)).toContain('Checkout latency');
  });

  it('a Slack channel given by name (#alerts, answered with its id): the next alert is listed on the one message', async () => {
    h = await createHarness({
      file: {
        environments: {
          production: { channels: { slack: '#alerts', discord: '123456789012' } },
          preview: {},
        },
      },
      memoryChat: ['slack', 'discord'],
    });
    h.slack.channelIds.set('#alerts', 'C0ALERTS');
    expect((await h.service.handle([h.alert()]))[0]?.outcome).toBe('suggested');
    const [later] = await h.service.handle([
      h.alert({ fingerprint: 'incident-2', title: 'Checkout latency' }),
    ]);
    await h.service.idle();
    const inAlerts = h.slack.inChannel('C0ALERTS');
    expect({
      later: later?.outcome,
      slackMessages: inAlerts.length,
      listsBoth: viewText(inAlerts[0]?.view).includes('Checkout latency'),
      discordMessages: h.discord.inChannel('123456789012').length,
    }).toEqual({ later: 'grouped', slackMessages: 1, listsBoth: true, discordMessages: 1 });
  });

  it("an alert answered in its own chat thread is listed on the channel's suggestion too", async () => {
    h = await createHarness({ memoryChat: ['slack', 'discord'] });
    await h.service.handle([h.alert()]);
    const [threaded] = await h.service.handle(
      [h.alert({ fingerprint: 'incident-2', title: 'Checkout latency' })],
      {
        surface: 'slack',
        channel: 'C0WATCHED',
        messageId: '17.02',
      },
    );
    expect(threaded?.outcome).toBe('suggested');
    await h.service.idle();
    expect(viewText(h.slack.inChannel('C0ALERTS')[0]?.view)).toContain('Checkout latency');
  });

  it('a post that failed where the plan has a message elsewhere: grouped, and listed there', async () => {
    h = await createHarness({ memoryChat: ['slack', 'discord'] });
    h.discord.failPost = 2;
    await h.service.handle([h.alert()]);
    const [later] = await h.service.handle([
      h.alert({ fingerprint: 'incident-2', title: 'Checkout latency' }),
    ]);
    expect(later?.outcome).toBe('grouped');
    await h.service.idle();
    expect(viewText(h.slack.inChannel('C0ALERTS')[0]?.view)).toContain('Checkout latency');
  });

  it('an alert grouped into a post that then failed posts the suggestion itself', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const hh = h;
    const post = gate();
    hh.slack.beforePost = async () => {
      post.arrive();
      await post.held;
    };
    hh.slack.failPost = 1; // Slack answers 503 to the first alert's post
    const first = hh.service.handle([
      hh.alert({ fingerprint: 'sentry-1', source: 'sentry', title: 'TypeError' }),
    ]);
    await post.reached;
    hh.slack.beforePost = undefined;
    const second = hh.service.handle([hh.alert({ fingerprint: 'am-2', title: 'Checkout 5xx above 5%' })]);
    post.release();
    expect((await first)[0]?.outcome).toBe('failed'); // its sender retries
    expect((await second)[0]?.outcome).toBe('suggested');
    await hh.service.idle();
    const shown = hh.slack.inChannel('C0ALERTS').map((m) => viewText(m.view));
    expect(shown).toHaveLength(1);
    expect(shown[0]).toContain('Checkout 5xx above 5%');
    // The alert that failed to post left the list; its sender's retry lists it again.
    expect(shown[0]).not.toContain('TypeError');
    expect(
      (
        await hh.service.handle([hh.alert({ fingerprint: 'sentry-1', source: 'sentry', title: 'TypeError' })])
      )[0]?.outcome,
    ).toBe('grouped');
    await hh.service.idle();
    expect(viewText(hh.slack.inChannel('C0ALERTS')[0]?.view)).toContain('TypeError');
  });

  it('an alert whose post failed does not keep the suggestion firing once the others resolved', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    h.slack.failPost = 1;
    expect((await h.service.handle([h.alert({ fingerprint: 'a', title: 'Alert A' })]))[0]?.outcome).toBe(
      'failed',
    );
    expect((await h.service.handle([h.alert({ fingerprint: 'b', title: 'Alert B' })]))[0]?.outcome).toBe(
      'suggested',
    );
    await h.service.handle([h.alert({ fingerprint: 'b', title: 'Alert B', status: 'resolved' })]);
    await h.service.idle();
    const view = h.slack.inChannel('C0ALERTS')[0]?.view;
    expect(viewText(view)).not.toContain('Alert A');
    expect(buttonLabels(view)).toEqual(expect.arrayContaining([expect.stringMatching(/\(optional\)$/)]));
  });

  it('a storm that keeps changing the list during a slow edit still ends with every alert listed', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const hh = h;
    await hh.service.handle([hh.alert({ fingerprint: 'incident-0', title: 'Alert #0#' })]);
    let n = 0;
    let inside = false;
    // Each edit lands only after one more alert of the storm joined the plan's list. (Not after it was
    // answered: a grouped alert is answered once an edit of the message came back after it joined.)
    const joinPlan = hh.plans.groupAlert.bind(hh.plans);
    let onJoin: (() => void) | undefined;
    hh.plans.groupAlert = async (...args) => {
      const group = await joinPlan(...args);
      onJoin?.();
      return group;
    };
    const storm: Promise<unknown>[] = [];
    hh.slack.beforeUpdate = async () => {
      if (inside || n >= 6) return;
      inside = true;
      n += 1;
      try {
        const joined = new Promise<void>((resolve) => {
          onJoin = resolve;
        });
        storm.push(hh.service.handle([hh.alert({ fingerprint: `storm-${n}`, title: `Alert #s${n}#` })]));
        await joined;
      } finally {
        onJoin = undefined;
        inside = false;
      }
    };
    await hh.service.handle([hh.alert({ fingerprint: 'incident-1', title: 'Alert #1#' })]);
    await Promise.all(storm);
    await hh.service.idle();
    hh.slack.beforeUpdate = undefined;
    const t = viewText(hh.slack.inChannel('C0ALERTS')[0]?.view);
    const titles = ['Alert #0#', 'Alert #1#', ...Array.from({ length: n }, (_, i) => `Alert #s${i + 1}#`)];
    expect(n).toBe(6);
    expect(titles.filter((x) => !t.includes(x))).toEqual([]);
  });
});

/**
 * Makes `poster` a chat service that refuses, for good, every edit of the messages in the returned set
 * (deleted by someone, as Slack's `message_not_found`), and calls its other failures transient.
 */
function deletable(poster: MemoryPoster): Set<string> {
  const deleted = new Set<string>();
  poster.beforeUpdate = async (ref) => {
    if (deleted.has(ref.messageId)) throw new Error(`message_not_found: ${ref.messageId}`);
  };
  Object.assign(poster, {
    retryable: (e: unknown) => !(e instanceof Error && e.message.startsWith('message_not_found')),
  });
  return deleted;
}

describe('a suggestion message that is gone (deleted, or out of reach)', () => {
  it('the next alert of the rollback posts the suggestion again in its place, answered suggested; later alerts are listed on the new message', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const deleted = deletable(h.slack);
    const [first] = await h.service.handle([h.alert()]);
    expect(first?.outcome).toBe('suggested');
    const [old] = h.slack.inChannel('C0ALERTS');
    if (!old) throw new Error('no suggestion');
    deleted.add(old.ref.messageId); // someone deleted it in Slack
    const [second] = await h.service.handle([
      h.alert({ fingerprint: 'incident-2', title: 'Checkout latency' }),
    ]);
    expect(second?.outcome).toBe('suggested');
    const posted = h.slack.inChannel('C0ALERTS').filter((m) => m.ref.messageId !== old.ref.messageId);
    expect(posted).toHaveLength(1);
    const fresh = posted[0];
    if (!fresh) throw new Error('not posted again');
    expect(viewText(fresh.view)).toContain('Checkout latency');
    expect(viewText(fresh.view)).toContain('Checkout 5xx above 5%');
    // The slot records the new message: the next alert is listed on it, with no other post.
    expect((await h.flow.get(first?.planId ?? ''))?.suggestions?.map((x) => x.ref)).toEqual([fresh.ref]);
    const [third] = await h.service.handle([h.alert({ fingerprint: 'incident-3', title: 'Cart API down' })]);
    expect(third?.outcome).toBe('grouped');
    await h.service.idle();
    expect(h.slack.inChannel('C0ALERTS')).toHaveLength(2);
    expect(viewText(h.slack.messages.get(fresh.ref.messageId)?.view)).toContain('Cart API down');
  });

  it('an edit that failed for now (a 5xx) is no reason to post again: grouped, and the one message lists it later', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    deletable(h.slack);
    await h.service.handle([h.alert()]);
    const [msg] = h.slack.inChannel('C0ALERTS');
    if (!msg) throw new Error('no suggestion');
    let down = true;
    h.slack.beforeUpdate = async () => {
      if (down) throw new Error('slack API unavailable (503)');
    };
    const [second] = await h.service.handle([
      h.alert({ fingerprint: 'incident-2', title: 'Checkout latency' }),
    ]);
    expect(second?.outcome).toBe('grouped');
    await h.service.idle();
    expect(h.slack.inChannel('C0ALERTS')).toHaveLength(1);
    down = false;
    const [third] = await h.service.handle([h.alert({ fingerprint: 'incident-3', title: 'Cart API down' })]);
    expect(third?.outcome).toBe('grouped');
    await h.service.idle();
    expect(h.slack.inChannel('C0ALERTS')).toHaveLength(1);
    const shown = viewText(h.slack.messages.get(msg.ref.messageId)?.view);
    expect(['Checkout latency', 'Cart API down'].filter((t) => !shown.includes(t))).toEqual([]);
  });

  it('an edit that takes long (Slack rate limiting it) keeps the joining alert waiting 5 s at most: answered grouped, the edit goes on', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const hh = h;
    await hh.service.handle([hh.alert()]);
    const [msg] = hh.slack.inChannel('C0ALERTS');
    if (!msg) throw new Error('no suggestion');
    const edit = gate();
    hh.slack.beforeUpdate = async () => {
      edit.arrive();
      await edit.held;
    };
    let answered = false;
    const joining = hh.service
      .handle([hh.alert({ fingerprint: 'incident-2', title: 'Checkout latency' })])
      .finally(() => {
        answered = true;
      });
    await edit.reached;
    await hh.clock.advance(4_999);
    expect(answered).toBe(false);
    await hh.clock.advance(1);
    expect((await joining)[0]?.outcome).toBe('grouped');
    edit.release();
    await hh.service.idle();
    expect(hh.slack.inChannel('C0ALERTS')).toHaveLength(1);
    expect(viewText(hh.slack.messages.get(msg.ref.messageId)?.view)).toContain('Checkout latency');
  });

  it('two replicas whose alerts find the message gone at once post it again once; the other alert is asked to retry, then listed', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const hh = h;
    const deleted = deletable(hh.slack);
    // A second replica: its own AlertService (and its own posts under way) on the same Redis and plans.
    const replica = new AlertService({
      platform: hh.platform,
      flow: hh.flow,
      sink: compositeSink({ slack: suggestionSink(hh.slack, hh.chat, hh.flow) }),
      dedupe: hh.dedupe,
      config: hh.config,
      clock: hh.clock,
      surfaces: ['slack'],
    });
    await hh.service.handle([hh.alert()]);
    const [old] = hh.slack.inChannel('C0ALERTS');
    if (!old) throw new Error('no suggestion');
    deleted.add(old.ref.messageId);
    // This replica's alert posts the suggestion again, held; meanwhile the other replica's alert finds
    // the message gone too.
    const post = gate();
    hh.slack.beforePost = async () => {
      post.arrive();
      await post.held;
    };
    const second = hh.service.handle([hh.alert({ fingerprint: 'incident-2', title: 'Checkout latency' })]);
    await post.reached;
    hh.slack.beforePost = undefined;
    const [third] = await replica.handle([hh.alert({ fingerprint: 'incident-3', title: 'Cart API down' })]);
    expect({ outcome: third?.outcome, retry: third?.retry }).toEqual({ outcome: 'failed', retry: true });
    expect(third?.detail).toContain('still being posted');
    post.release();
    expect((await second)[0]?.outcome).toBe('suggested');
    // Its sender retries: listed on the new message.
    const [retried] = await replica.handle([hh.alert({ fingerprint: 'incident-3', title: 'Cart API down' })]);
    expect(retried?.outcome).toBe('grouped');
    await replica.idle();
    await hh.service.idle();
    const now = hh.slack.inChannel('C0ALERTS').filter((m) => m.ref.messageId !== old.ref.messageId);
    expect(now).toHaveLength(1);
    expect(viewText(now[0]?.view)).toContain('Cart API down');
  });
});

describe('Dismiss and grouping', () => {
  it('dismissing the suggestion on every surface it went to cancels the plan: later alerts are `dismissed`', async () => {
    h = await createHarness({ memoryChat: ['slack', 'discord'] });
    const [first] = await h.service.handle([h.alert()]);
    const planId = first?.planId ?? '';
    const [slackMsg] = h.slack.inChannel('C0ALERTS');
    const [discordMsg] = h.discord.inChannel('123456789012');
    if (!slackMsg || !discordMsg) throw new Error('no suggestion posted');
    const a = await h.chat.click(ana, `sy1:dismiss:${planId}`, slackMsg.ref);
    expect(a.outcome).toBe('dismissed');
    if (a.update) h.slack.apply(slackMsg.ref, a.update);
    const b = await h.chat.click(anaOnDiscord, `sy1:dismiss:${planId}`, discordMsg.ref);
    expect(b.outcome).toBe('cancelled');
    if (b.update) h.discord.apply(discordMsg.ref, b.update);
    const [later] = await h.service.handle([
      h.alert({ fingerprint: 'incident-2', title: 'Checkout latency' }),
    ]);
    expect({ state: (await h.flow.get(planId))?.state, outcome: later?.outcome }).toEqual({
      state: 'cancelled',
      outcome: 'dismissed',
    });
  });

  it('a Dismiss that lands while an edit for another alert is under way stays dismissed', async () => {
    h = await createHarness({ memoryChat: ['slack', 'discord'] });
    const [first] = await h.service.handle([h.alert()]);
    const planId = first?.planId ?? '';
    const [slackMsg] = h.slack.inChannel('C0ALERTS');
    if (!slackMsg) throw new Error('no suggestion');
    const read = gate();
    h.afterSinkGet = async () => {
      read.arrive();
      await read.held;
    };
    // Answered once an edit of its messages came back after it joined (or found them gone).
    const second = h.service.handle([h.alert({ fingerprint: 'incident-2', title: 'Checkout latency' })]);
    await read.reached; // the edit read the plan and waits
    const click = await h.chat.click(ana, `sy1:dismiss:${planId}`, slackMsg.ref);
    expect(click.outcome).toBe('dismissed');
    if (click.update) h.slack.apply(slackMsg.ref, click.update);
    h.afterSinkGet = undefined;
    read.release();
    expect((await second)[0]?.outcome).toBe('grouped');
    await h.service.idle();
    const now = h.slack.inChannel('C0ALERTS')[0]?.view;
    expect({ dismissed: viewText(now).includes('Dismissed by Ana'), buttons: buttonLabels(now) }).toEqual({
      dismissed: true,
      buttons: [],
    });
    // The Discord copy still offers it, listing both alerts.
    expect(viewText(h.discord.inChannel('123456789012')[0]?.view)).toContain('Checkout latency');
  });

  it('a Dismiss that cancels the plan during an edit leaves no live buttons', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const [first] = await h.service.handle([h.alert()]);
    const planId = first?.planId ?? '';
    const [slackMsg] = h.slack.inChannel('C0ALERTS');
    if (!slackMsg) throw new Error('no suggestion');
    const read = gate();
    h.afterSinkGet = async () => {
      read.arrive();
      await read.held;
    };
    const second = h.service.handle([h.alert({ fingerprint: 'incident-2', title: 'Checkout latency' })]);
    await read.reached;
    const click = await h.chat.click(ana, `sy1:dismiss:${planId}`, slackMsg.ref);
    expect(click.outcome).toBe('cancelled');
    if (click.update) h.slack.apply(slackMsg.ref, click.update);
    h.afterSinkGet = undefined;
    read.release();
    expect((await second)[0]?.outcome).toBe('grouped');
    await h.service.idle();
    expect((await h.flow.get(planId))?.state).toBe('cancelled');
    expect(buttonLabels(h.slack.inChannel('C0ALERTS')[0]?.view)).toEqual([]);
  });

  it("a colleague's /rollback of a dismissed rollback does not bring the suggestion back", async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const [first] = await h.service.handle([h.alert()]);
    const [msg] = h.slack.inChannel('C0ALERTS');
    if (!msg) throw new Error('no suggestion');
    expect((await h.chat.click(ana, `sy1:dismiss:${first?.planId}`, msg.ref)).outcome).toBe('cancelled');
    const bob = { surface: 'slack' as const, userId: 'U0BOB', displayName: 'Bob' };
    const asked = await h.chat.command(bob, 'rollback', ['production']);
    expect(asked.planId).toBe(first?.planId);
    const [during] = await h.service.handle([h.alert({ fingerprint: 'incident-3', title: 'Errors' })]);
    await h.chat.click(bob, `sy1:cancel:${first?.planId}`);
    const [after] = await h.service.handle([h.alert({ fingerprint: 'incident-4', title: 'More errors' })]);
    expect({
      during: during?.outcome,
      after: after?.outcome,
      inAlerts: h.slack.inChannel('C0ALERTS').length,
    }).toEqual({
      during: 'dismissed',
      after: 'dismissed',
      inAlerts: 1,
    });
  });
});

describe('resolutions', () => {
  it('alerts beyond the list are tracked: one resolving neither makes the rollback optional nor revives a dismissed message', async () => {
    h = await createHarness({ memoryChat: ['slack', 'discord'] });
    let planId = '';
    for (let i = 0; i < MAX_ALERTS_PER_PLAN; i++) {
      const [res] = await h.service.handle([h.alert({ fingerprint: `incident-${i}`, title: `Alert ${i}` })]);
      planId = res?.planId ?? planId;
    }
    const [extra] = await h.service.handle([h.alert({ fingerprint: 'extra', title: 'Alert extra' })]);
    expect(extra?.outcome).toBe('grouped');
    expect((await h.flow.get(planId))?.alertsMore).toBe(1);
    await h.service.idle();
    const [slackMsg] = h.slack.inChannel('C0ALERTS');
    const [discordMsg] = h.discord.inChannel('123456789012');
    if (!slackMsg || !discordMsg) throw new Error('no suggestion');
    const click = await h.chat.click(ana, `sy1:dismiss:${planId}`, slackMsg.ref);
    if (click.update) h.slack.apply(slackMsg.ref, click.update);
    const [resolved] = await h.service.handle([
      h.alert({ fingerprint: 'extra', title: 'Alert extra', status: 'resolved' }),
    ]);
    expect(resolved?.outcome).toBe('resolved');
    await h.service.idle();
    const discordNow = h.discord.inChannel('123456789012')[0]?.view;
    const slackNow = h.slack.inChannel('C0ALERTS')[0]?.view;
    expect({
      discordSaysOptional: viewText(discordNow).includes('optional'),
      discordSaysFiring: viewText(discordNow).includes('50 more alerts on this deployment (49 still firing)'),
      slackStillDismissed: viewText(slackNow).includes('Dismissed by Ana'),
      slackButtons: buttonLabels(slackNow),
    }).toEqual({
      discordSaysOptional: false,
      discordSaysFiring: true,
      slackStillDismissed: true,
      slackButtons: [],
    });
  });

  it('after Cancel and a fresh suggestion under the same plan id, the old alert resolving shows on the cancelled message only, without buttons', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const [a] = await h.service.handle([h.alert({ fingerprint: 'a', title: 'Alert A' })]);
    const [m1] = h.slack.inChannel('C0ALERTS');
    if (!m1) throw new Error('no suggestion');
    const cancel = await h.chat.click(ana, `sy1:cancel:${a?.planId}`, m1.ref);
    if (cancel.update) h.slack.apply(m1.ref, cancel.update);
    const [b] = await h.service.handle([h.alert({ fingerprint: 'b', title: 'Alert B' })]);
    expect(b).toMatchObject({ outcome: 'suggested', planId: a?.planId });
    const [ra] = await h.service.handle([
      h.alert({ fingerprint: 'a', title: 'Alert A', status: 'resolved' }),
    ]);
    expect(ra?.detail).toContain('it now shows the alert resolved');
    await h.service.idle();
    expect(buttonLabels(h.slack.messages.get(m1.ref.messageId)?.view)).toEqual([]);
    expect(viewText(h.slack.messages.get(m1.ref.messageId)?.view)).toContain('The alert resolved');
    expect(viewText(h.slack.inChannel('C0ALERTS')[1]?.view)).not.toContain('optional');
  });

  it('an expired suggestion whose alert resolves says so plainly: nothing below is called optional', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    await h.service.handle([h.alert({ fingerprint: 'incident-1' })]);
    await h.service.idle();
    await h.clock.advance(60 * MINUTE + 5_000); // the sweep shows it expired
    await h.chat.expireDue();
    await h.chat.idle();
    await h.service.idle();
    await h.clock.advance(30 * MINUTE);
    const [res] = await h.service.handle([h.alert({ fingerprint: 'incident-1', status: 'resolved' })]);
    await h.service.idle();
    expect(res?.outcome).toBe('resolved');
    const [msg] = h.slack.inChannel('C0ALERTS');
    expect(msg?.view.title).toMatch(/^Expired:/);
    expect(viewText(msg?.view)).toContain('The alert resolved');
    expect(viewText(msg?.view)).not.toContain('optional');
    expect(buttonLabels(msg?.view)).toEqual(['Make a fresh plan']);
  });

  /** 03:00 incident-1's suggestion; 04:00 expired unclicked; 04:25 incident-2 makes the plan again. */
  async function expiredThenMadeAgain(harness: Harness, also: readonly string[] = []) {
    const start = harness.clock.now();
    const [first] = await harness.service.handle([harness.alert({ fingerprint: 'incident-1' })]);
    for (const fingerprint of also) {
      const [more] = await harness.service.handle([
        harness.alert({ fingerprint, title: `Alert ${fingerprint}` }),
      ]);
      expect(more?.outcome).toBe('grouped');
    }
    await harness.service.idle();
    await harness.clock.advance(60 * MINUTE + 5_000);
    await harness.chat.expireDue();
    await harness.chat.idle();
    await harness.service.idle();
    await harness.clock.advance(20 * MINUTE);
    const [second] = await harness.service.handle([
      harness.alert({
        fingerprint: 'incident-2',
        title: 'Checkout p99 above 2 s',
        startedAt: start - 30 * MINUTE,
      }),
    ]);
    expect(second).toMatchObject({ outcome: 'suggested', planId: first?.planId });
    const [expired, fresh] = harness.slack.inChannel('C0ALERTS');
    if (!expired || !fresh) throw new Error('expected the expired suggestion and a fresh one');
    return { expired: expired.ref, fresh: fresh.ref };
  }

  it('an expired suggestion whose plan was made again since: its alert resolving shows on the expired message, never the new plan', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const { expired, fresh } = await expiredThenMadeAgain(h);
    await h.service.idle();
    await h.clock.advance(15 * MINUTE); // 04:40 incident-1 resolves
    const [res] = await h.service.handle([h.alert({ fingerprint: 'incident-1', status: 'resolved' })]);
    await h.service.idle();
    expect(res).toMatchObject({ outcome: 'resolved' });
    expect(res?.detail).toContain('it now shows the alert resolved');
    const old = h.slack.messages.get(expired.messageId)?.view;
    const now = h.slack.messages.get(fresh.messageId)?.view;
    expect({
      title: old?.title,
      resolved: viewText(old).includes('The alert resolved'),
      tone: old?.tone,
      buttons: buttonLabels(old),
    }).toEqual({
      title: expect.stringMatching(/^Expired: roll back production/),
      resolved: true,
      tone: 'neutral',
      buttons: ['Make a fresh plan'],
    });
    // The fresh suggestion lists incident-2 only, still firing.
    expect(now?.title).toMatch(/^Roll back production/);
    expect(viewText(now)).not.toContain('resolved');
  });

  it('alerts of a replaced suggestion resolving at once: its message ends showing every one of them resolved', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const { expired } = await expiredThenMadeAgain(h, ['incident-3']);
    await h.service.idle();
    const results = await Promise.all([
      h.service.handle([h.alert({ fingerprint: 'incident-1', status: 'resolved' })]),
      h.service.handle([
        h.alert({ fingerprint: 'incident-3', title: 'Alert incident-3', status: 'resolved' }),
      ]),
    ]);
    await h.service.idle();
    expect(results.flat().map((r) => r.outcome)).toEqual(['resolved', 'resolved']);
    const old = h.slack.messages.get(expired.messageId)?.view;
    expect(old?.title).toMatch(/^Expired:/);
    expect(viewText(old)).toContain('All 2 alerts resolved');
  });

  it('an alert resolving while the replaced suggestion is still being shown closed: the closed message ends resolved', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const start = h.clock.now();
    await h.service.handle([h.alert({ fingerprint: 'incident-1' })]);
    await h.service.idle();
    await h.clock.advance(60 * MINUTE + 5_000);
    await h.chat.expireDue();
    await h.chat.idle();
    await h.service.idle();
    const [expired] = h.slack.inChannel('C0ALERTS');
    if (!expired) throw new Error('no suggestion');
    // Hold the edit that shows the replaced record closed (the first edit of the expired message).
    const g = gate();
    let held = false;
    h.slack.beforeUpdate = async (ref) => {
      if (ref.messageId !== expired.ref.messageId || held) return;
      held = true;
      g.arrive();
      await g.held;
    };
    await h.clock.advance(20 * MINUTE);
    const [second] = await h.service.handle([
      h.alert({ fingerprint: 'incident-2', title: 'Checkout p99 above 2 s', startedAt: start - 30 * MINUTE }),
    ]);
    expect(second?.outcome).toBe('suggested');
    await g.reached;
    // incident-1 resolves meanwhile: its edit lands first, then the held one (rendered before it).
    const [res] = await h.service.handle([h.alert({ fingerprint: 'incident-1', status: 'resolved' })]);
    g.release();
    expect(res?.detail).toContain('it now shows the alert resolved');
    await h.service.idle();
    const old = h.slack.messages.get(expired.ref.messageId)?.view;
    expect(old?.title).toMatch(/^Expired:/);
    expect(viewText(old)).toContain('The alert resolved');
  });

  it('a repeat of an incident whose suggestion was dismissed names the dismissed rollback, not a plan id', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const [first] = await h.service.handle([h.alert({ fingerprint: 'incident-1' })]);
    await h.service.idle();
    const planId = first?.planId ?? '';
    const target = (await h.flow.get(planId))?.plan.target.id;
    expect((await h.flow.dismiss(ana, planId)).status).toBe('cancelled');
    expect((await h.flow.get(planId))?.dismissedAt).toBe(h.clock.now());
    const [repeat] = await h.service.handle([h.alert({ fingerprint: 'incident-1' })]);
    expect(repeat?.detail).toBe(
      `This incident already has a suggestion, to roll back production to ${target}, but Ana dismissed it: alerts of this incident do not suggest it again; /rollback production still offers it.`,
    );
  });

  it('a repeat of an incident whose suggestion expired says it expired and how to get a fresh plan', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const [first] = await h.service.handle([h.alert({ fingerprint: 'incident-1' })]);
    await h.service.idle();
    const [before] = await h.service.handle([h.alert({ fingerprint: 'incident-1' })]);
    const target = (await h.flow.get(first?.planId ?? ''))?.plan.target.id;
    expect(before).toMatchObject({
      outcome: 'deduplicated',
      detail: `This incident already has a suggestion, to roll back production to ${target}: see its message.`,
    });
    await h.clock.advance(60 * MINUTE + 5_000);
    await h.chat.expireDue();
    await h.chat.idle();
    await h.service.idle();
    const [after] = await h.service.handle([h.alert({ fingerprint: 'incident-1' })]);
    expect(after).toMatchObject({ outcome: 'deduplicated', planId: first?.planId });
    expect(after?.detail).toBe(
      `This incident already has a suggestion, to roll back production to ${target}, but its plan expired unused (nothing was switched): a fresh plan can be asked for with "Make a fresh plan" on its message or /rollback production.`,
    );
  });

  it('an expired suggestion offers "Make a fresh plan": a click posts a fresh suggestion of the same rollback, for the same alert', async () => {
    const guarded = {
      environments: {
        production: { channels: { slack: 'C0ALERTS' }, allow: { slack: { users: ['U0ANA'] } } },
        preview: {},
      },
    };
    h = await createHarness({ file: guarded, memoryChat: ['slack'] });
    const [first] = await h.service.handle([h.alert({ fingerprint: 'incident-1' })]);
    await h.service.idle();
    await h.clock.advance(60 * MINUTE + 5_000);
    await h.chat.expireDue();
    await h.chat.idle();
    await h.service.idle();
    const [msg] = h.slack.inChannel('C0ALERTS');
    if (!msg) throw new Error('no suggestion');
    expect(buttonLabels(msg.view)).toEqual(['Make a fresh plan']);
    const replan = msg.view.buttons[0]?.actionId ?? '';
    expect(replan).toBe(`sy1:replan:${first?.planId}`);
    // Anyone may ask for a plan (confirming it is what the allow list guards): Nico, not on it, too.
    const bystander = { surface: 'slack' as const, userId: 'U0NEW', displayName: 'Nico' };
    const click = await h.chat.click(bystander, replan, msg.ref);
    expect(click.outcome).toBe('planned');
    const fresh = click.post?.view;
    expect(fresh?.title).toMatch(/^Roll back production to dep_3hd7xa/);
    expect(buttonLabels(fresh)[0]).toMatch(/^Rollback/);
    expect(viewText(fresh)).toContain('Checkout 5xx above 5%');
    expect((await h.flow.get(first?.planId ?? ''))?.state).toBe('pending');
  });

  /**
   * An alert's suggestion expires unclicked in `channel`; someone clicks "Make a fresh plan" on it, and
   * the surface posts and attaches the answer as Slack's and Discord's click handlers do. Returns the
   * expired message and the fresh one.
   */
  async function freshPlanClicked(
    harness: Harness,
    surface: 'slack' | 'discord',
    channel: string,
    also: readonly string[] = [],
  ) {
    const [first] = await harness.service.handle([harness.alert({ fingerprint: 'incident-1' })]);
    expect(first?.outcome).toBe('suggested');
    for (const fingerprint of also) {
      const [more] = await harness.service.handle([
        harness.alert({ fingerprint, title: `Alert ${fingerprint}` }),
      ]);
      expect(more?.outcome).toBe('grouped');
    }
    await harness.service.idle();
    await harness.clock.advance(61 * MINUTE);
    expect((await harness.chat.expireDue()).map((r) => r.plan.id)).toEqual([first?.planId]);
    await harness.chat.idle();
    await harness.service.idle();
    const poster = surface === 'slack' ? harness.slack : harness.discord;
    const [expired] = poster.inChannel(channel);
    if (!expired) throw new Error('no suggestion');
    let freshPlanId: string | undefined;
    return {
      planId: first?.planId ?? '',
      poster,
      expired: expired.ref,
      /** The plan id of the click's fresh plan (once clicked). */
      get freshPlanId() {
        return freshPlanId;
      },
      async click(also: () => Promise<void> = async () => undefined) {
        await also();
        const who = surface === 'slack' ? ana : anaOnDiscord;
        const click = await harness.chat.click(who, expired.view.buttons[0]?.actionId ?? '', expired.ref);
        expect(click.outcome).toBe('planned');
        if (click.post?.planId === undefined) throw new Error('the click posted no plan');
        freshPlanId = click.post.planId;
        const fresh = await poster.post(channel, click.post.view);
        await harness.chat.attach(click.post.planId, fresh);
        await harness.service.idle();
        return fresh;
      },
    };
  }

  it.each([
    ['slack', 'C0ALERTS'],
    ['discord', '123456789012'],
  ] as const)(
    '"Make a fresh plan" on an expired suggestion, then its incident resolves: the fresh message says so and calls the rollback optional, the closed one shows it resolved (%s)',
    async (surface, channel) => {
      const file = { environments: { production: { channels: { [surface]: channel } }, preview: {} } };
      h = await createHarness({ file, memoryChat: [surface] });
      const run = await freshPlanClicked(h, surface, channel);
      const fresh = await run.click();
      expect(run.poster.messages.get(fresh.messageId)?.view.title).toMatch(/^Roll back production/);

      await h.clock.advance(MINUTE);
      const [resolved] = await h.service.handle([h.alert({ fingerprint: 'incident-1', status: 'resolved' })]);
      await h.service.idle();
      await h.chat.idle();
      expect(resolved).toMatchObject({ outcome: 'resolved', planId: run.planId });
      const now = run.poster.messages.get(fresh.messageId);
      const last = now?.history.at(-1);
      expect({
        title: last?.title,
        resolved: viewText(last).includes('The alert resolved'),
        optional: viewText(last).includes('The rollback below is optional now.'),
        edits: (now?.history.length ?? 0) > 1,
      }).toEqual({
        title: expect.stringMatching(/^Roll back production/),
        resolved: true,
        optional: true,
        edits: true,
      });
      const old = run.poster.messages.get(run.expired.messageId)?.view;
      expect({
        title: old?.title,
        resolved: viewText(old).includes('The alert resolved'),
        optional: viewText(old).includes('optional'),
        buttons: buttonLabels(old),
      }).toEqual({
        title: expect.stringMatching(/^Expired: roll back production/),
        resolved: true,
        optional: false,
        buttons: ['Make a fresh plan'],
      });
    },
  );

  /**
   * The platform moves (a deploy goes live) between a suggestion's expiry and the "Make a fresh plan"
   * click: the fresh plan is the same rollback on another current deployment, so another plan id.
   */
  async function pushLive(harness: Harness): Promise<string> {
    const pushed = await harness.platform.push({ environment: 'production' });
    await harness.clock.advance(10_000);
    await harness.platform.settle();
    expect((await harness.platform.snapshot('production')).environment.currentDeploymentId).toBe(pushed.id);
    return pushed.id;
  }

  it.each([
    ['slack', 'C0ALERTS'],
    ['discord', '123456789012'],
  ] as const)(
    '"Make a fresh plan" after the platform moved (another plan id), then its incident resolves: the fresh message says so and calls the rollback optional, the closed one shows it resolved (%s)',
    async (surface, channel) => {
      const file = { environments: { production: { channels: { [surface]: channel } }, preview: {} } };
      h = await createHarness({ file, memoryChat: [surface] });
      const hh = h;
      const run = await freshPlanClicked(hh, surface, channel);
      const fresh = await run.click(async () => {
        await pushLive(hh);
      });
      const freshId = run.freshPlanId;
      expect(freshId).toBeDefined();
      expect(freshId).not.toBe(run.planId);
      expect((await hh.flow.get(freshId ?? ''))?.suggestions?.map((s) => s.ref?.messageId)).toEqual([
        fresh.messageId,
      ]);

      await hh.clock.advance(MINUTE);
      const [resolved] = await hh.service.handle([
        hh.alert({ fingerprint: 'incident-1', status: 'resolved' }),
      ]);
      await hh.service.idle();
      await hh.chat.idle();
      expect(resolved).toMatchObject({
        outcome: 'resolved',
        planId: freshId,
        detail: 'The suggestion now lists the alert as resolved.',
      });
      const now = run.poster.messages.get(fresh.messageId);
      const last = now?.history.at(-1);
      expect({
        title: last?.title,
        resolved: viewText(last).includes('The alert resolved'),
        optional: viewText(last).includes('The rollback below is optional now.'),
        edits: (now?.history.length ?? 0) > 1,
      }).toEqual({
        title: expect.stringMatching(/^Roll back production/),
        resolved: true,
        optional: true,
        edits: true,
      });
      const old = run.poster.messages.get(run.expired.messageId)?.view;
      expect({
        title: old?.title,
        resolved: viewText(old).includes('The alert resolved'),
        buttons: buttonLabels(old),
      }).toEqual({
        title: expect.stringMatching(/^Expired: roll back production/),
        resolved: true,
        buttons: ['Make a fresh plan'],
      });
    },
  );

  it('"Make a fresh plan" after the platform moved: a repeat of the incident points at the fresh suggestion, and once that expires too, says so', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const hh = h;
    const run = await freshPlanClicked(hh, 'slack', 'C0ALERTS');
    await run.click(async () => {
      await pushLive(hh);
    });
    const freshId = run.freshPlanId ?? '';
    expect(freshId).not.toBe(run.planId);
    const [repeat] = await hh.service.handle([hh.alert({ fingerprint: 'incident-1' })]);
    const target = (await hh.flow.get(freshId))?.plan.target.id;
    expect(repeat).toMatchObject({
      outcome: 'deduplicated',
      planId: freshId,
      detail: `This incident already has a suggestion, to roll back production to ${target}: see its message.`,
    });
    // The fresh plan expires unclicked as well: the repeat says that one expired.
    await hh.clock.advance(61 * MINUTE);
    await hh.chat.expireDue();
    await hh.chat.idle();
    await hh.service.idle();
    const [later] = await hh.service.handle([hh.alert({ fingerprint: 'incident-1' })]);
    expect(later).toMatchObject({ outcome: 'deduplicated', planId: freshId });
    expect(later?.detail).toBe(
      `This incident already has a suggestion, to roll back production to ${target}, but its plan expired unused (nothing was switched): a fresh plan can be asked for with "Make a fresh plan" on its message or /rollback production.`,
    );
  });

  it('"Make a fresh plan" twice, the platform moving before each: a resolution marks the expired suggestion and both fresh ones', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const hh = h;
    const run = await freshPlanClicked(hh, 'slack', 'C0ALERTS');
    const second = await run.click(async () => {
      await pushLive(hh);
    });
    const secondId = run.freshPlanId ?? '';
    // The second fresh plan expires unclicked too; after another deploy, a fresh plan is asked for on it.
    await hh.clock.advance(61 * MINUTE);
    await hh.chat.expireDue();
    await hh.chat.idle();
    await hh.service.idle();
    await pushLive(hh);
    const expired = hh.slack.messages.get(second.messageId);
    if (!expired) throw new Error('no second suggestion');
    const click = await hh.chat.click(ana, expired.view.buttons[0]?.actionId ?? '', expired.ref);
    expect(click.outcome).toBe('planned');
    const thirdId = click.post?.planId ?? '';
    const third = await hh.slack.post('C0ALERTS', click.post?.view ?? expired.view);
    await hh.chat.attach(thirdId, third);
    await hh.service.idle();
    expect(new Set([run.planId, secondId, thirdId]).size).toBe(3);

    const [repeat] = await hh.service.handle([hh.alert({ fingerprint: 'incident-1' })]);
    expect(repeat).toMatchObject({ outcome: 'deduplicated', planId: thirdId });
    await hh.clock.advance(MINUTE);
    const [resolved] = await hh.service.handle([hh.alert({ fingerprint: 'incident-1', status: 'resolved' })]);
    expect(resolved).toMatchObject({ outcome: 'resolved', planId: thirdId });
    await hh.service.idle();
    await hh.chat.idle();
    const shown = [run.expired, second, third].map((ref) => hh.slack.messages.get(ref.messageId)?.view);
    expect(shown.map((v) => viewText(v).includes('The alert resolved'))).toEqual([true, true, true]);
    expect(viewText(shown[2])).toContain('The rollback below is optional now.');
  });

  it('the fresh plan lists every alert of the expired one as it stands: one resolved before the click shows resolved, and the last to resolve says they all did', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const run = await freshPlanClicked(h, 'slack', 'C0ALERTS', ['incident-3']);
    await h.clock.advance(MINUTE);
    const [early] = await h.service.handle([h.alert({ fingerprint: 'incident-3', status: 'resolved' })]);
    expect(early?.outcome).toBe('resolved');
    await h.service.idle();
    const fresh = await run.click();
    const record = await h.flow.get(run.planId);
    expect(
      (record?.alerts ?? []).map((a) => ({ title: a.alert.title, resolved: a.resolvedAt !== undefined })),
    ).toEqual([
      { title: 'Checkout 5xx above 5%', resolved: false },
      { title: 'Alert incident-3', resolved: true },
    ]);
    // The click's message is the channel's suggestion of the fresh plan: a later alert of the same
    // rollback is listed on it, not posted beside it.
    expect(record?.suggestions?.map((s) => s.ref?.messageId)).toEqual([fresh.messageId]);
    const [later] = await h.service.handle([
      // Started when incident-1 did (62 minutes ago: 33 + 62), so it points at the same rollback.
      h.alert({
        fingerprint: 'incident-4',
        title: 'Alert incident-4',
        startedAt: h.clock.now() - 95 * MINUTE,
      }),
    ]);
    expect(later?.outcome).toBe('grouped');
    await h.service.idle();
    expect(h.slack.inChannel('C0ALERTS')).toHaveLength(2);
    expect(viewText(h.slack.messages.get(fresh.messageId)?.view)).toContain('Alert incident-4');

    await h.clock.advance(MINUTE);
    await h.service.handle([
      h.alert({ fingerprint: 'incident-4', title: 'Alert incident-4', status: 'resolved' }),
    ]);
    await h.service.handle([h.alert({ fingerprint: 'incident-1', status: 'resolved' })]);
    await h.service.idle();
    const last = h.slack.messages.get(fresh.messageId)?.view;
    expect(viewText(last)).toContain('All 3 alerts resolved');
    expect(viewText(last)).toContain('The rollback below is optional now.');
  });

  it('a suggestion recorded before alerts were listed: its RESOLVED does not call the rollback optional while a newer alert fires', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    // What Switchyard before the alert lists left behind: a plan with its alert and message, an
    // incident without an alert id.
    const planned = await h.flow.plan(ALERT_ACTOR, 'rollback', 'production', 'dep_3hd7xa', {
      alert: {
        source: 'generic',
        title: 'Checkout 5xx above 5%',
        startedAt: h.clock.now() - 33 * MINUTE,
        status: 'firing',
      },
    });
    if (!planned.ok) throw new Error(planned.refusal.message);
    const record = await h.flow.get(planned.plan.id);
    if (!record) throw new Error('no record');
    const ref = await h.slack.post('C0ALERTS', h.chat.confirmation(record));
    await h.flow.attachMessage(planned.plan.id, ref);
    const incident = { environment: 'production', source: 'generic', fingerprint: 'incident-1' };
    await h.dedupe.claim(incident, h.clock.now());
    await h.dedupe.complete(incident, {
      state: 'posted',
      refs: [ref],
      planId: planned.plan.id,
      sentence: 'old',
    });

    await h.service.handle([h.alert({ fingerprint: 'incident-2', title: 'Checkout latency' })]);
    const [res] = await h.service.handle([h.alert({ fingerprint: 'incident-1', status: 'resolved' })]);
    expect(res?.outcome).toBe('resolved');
    await h.service.idle();
    expect(viewText(h.slack.messages.get(ref.messageId)?.view)).not.toContain('optional');
  });
});

describe('second review: faults, the switch, clicks, storms', () => {
  it('a deduplicated repeat keeps the replaced records of its plan alive (their closed messages show its resolution later)', async () => {
    h = await createHarness();
    const [first] = await h.service.handle([h.alert()]);
    expect(first?.outcome).toBe('suggested');
    const touched: string[] = [];
    const touch = h.dedupe.touchReplaced.bind(h.dedupe);
    h.dedupe.touchReplaced = async (planId: string) => {
      touched.push(planId);
      return touch(planId);
    };
    expect((await h.service.handle([h.alert()]))[0]?.outcome).toBe('deduplicated');
    expect(touched).toEqual([first?.planId]);
  });

  it('a deduplicated repeat (a sender re-sending a firing alert) reads the plan record once, pointers of fresh plans included', async () => {
    h = await createHarness();
    expect((await h.service.handle([h.alert()]))[0]?.outcome).toBe('suggested');
    let reads = 0;
    const get = h.plans.get.bind(h.plans);
    h.plans.get = (async (...args: Parameters<typeof get>) => {
      reads += 1;
      return get(...args);
    }) as typeof h.plans.get;
    for (let i = 0; i < 20; i++) {
      expect((await h.service.handle([h.alert()]))[0]?.outcome).toBe('deduplicated');
    }
    expect(reads).toBe(20);
  });
  it('a Redis fault while recording the posted message neither hangs later alerts nor leaves the place claimed', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const hh = h;
    const real = hh.flow.suggestionPosted.bind(hh.flow);
    let failOnce = true;
    hh.flow.suggestionPosted = async (...args) => {
      if (failOnce) {
        failOnce = false;
        throw new Error('Connection is closed.');
      }
      return real(...args);
    };
    await expect(hh.service.handle([hh.alert({ fingerprint: 'a', title: 'Alert A' })])).rejects.toThrow(
      'Connection is closed.',
    );
    // The next alert neither waits for that post nor finds the place taken: it posts.
    const [b] = await hh.service.handle([hh.alert({ fingerprint: 'b', title: 'Alert B' })]);
    expect(b?.outcome).toBe('suggested');
  });

  it("an edit of ours landing after the switch's final state is repaired with that final state", async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const hh = h;
    const [first] = await hh.service.handle([hh.alert()]);
    const planId = first?.planId ?? '';
    const [msg] = hh.slack.inChannel('C0ALERTS');
    if (!msg) throw new Error('no suggestion');
    const record = await hh.flow.get(planId);
    if (!record) throw new Error('no plan');
    const final = {
      jobId: 'sw_1',
      planId,
      action: 'rollback' as const,
      environment: 'production',
      targetId: record.plan.target.id,
      fromId: record.plan.current.id,
      requestedBy: ana,
      steps: [{ step: 'done' as const, state: 'done' as const, startedAt: 1 }],
      traffic: [],
      attempt: 1,
      updatedAt: hh.clock.now(),
      outcome: 'succeeded' as const,
      message: 'Traffic is on dep_3hd7xa.',
    };
    const read = gate();
    hh.afterSinkGet = async () => {
      read.arrive();
      await read.held;
    };
    const second = hh.service.handle([hh.alert({ fingerprint: 'incident-2', title: 'Checkout latency' })]);
    await read.reached;
    // Meanwhile Ana confirmed, and the switch (a worker elsewhere) ran and showed its final state.
    await hh.plans.transition(planId, ['pending'], 'enqueued', { jobId: 'sw_1' });
    hh.flow.jobProgress = async () => final;
    hh.slack.apply(msg.ref, progressView(final));
    hh.afterSinkGet = undefined;
    read.release();
    expect((await second)[0]?.outcome).toBe('grouped');
    await hh.service.idle();
    expect(viewText(hh.slack.inChannel('C0ALERTS')[0]?.view)).toBe(viewText(progressView(final)));
  });

  it('an alert posted for a switch confirmed meanwhile, which ends while it is posted, shows that end', async () => {
    // The switch's progress as the queue reports it: nothing yet, then its end.
    const reported = new Map<string, Progress>();
    h = await createHarness({
      file: slackOnly,
      memoryChat: ['slack'],
      queue: {
        async enqueue() {
          throw new Error('this test confirms by claiming the plan');
        },
        progress: async (jobId) => reported.get(jobId),
        addMessages: async () => true,
      },
    });
    const hh = h;
    const asked = await hh.flow.plan(ana, 'rollback', 'production');
    if (!asked.ok) throw new Error(asked.refusal.message);
    const planId = asked.plan.id;
    // Ana confirmed: the plan is claimed with its job, which the environment's queue does not list yet
    // (`jobs.active` stays unset), so the alert is not answered with a link to it but posted for it.
    const claimed = await hh.plans.transition(planId, ['pending'], 'enqueued', {
      confirmedBy: ana,
      jobId: 'sw_1',
    });
    expect(claimed.ok).toBe(true);
    const final = progressSchema.parse({
      jobId: 'sw_1',
      planId,
      action: 'rollback',
      environment: 'production',
      targetId: asked.plan.target.id,
      fromId: asked.plan.current.id,
      requestedBy: ana,
      steps: [{ step: 'done', state: 'done', startedAt: hh.clock.now() }],
      traffic: [],
      updatedAt: hh.clock.now(),
      outcome: 'succeeded',
      message: 'Traffic is on dep_3hd7xa.',
    });
    // The switch ends (its worker's last look at the plan's messages done) while the post is under way.
    hh.slack.beforePost = async () => {
      reported.set('sw_1', final);
    };
    const [res] = await hh.service.handle([hh.alert()]);
    await hh.service.idle();
    const posted = hh.slack.inChannel('C0ALERTS');
    expect({ outcome: res?.outcome, messages: posted.length }).toEqual({ outcome: 'suggested', messages: 1 });
    expect(viewText(posted[0]?.view)).toBe(viewText(progressView(final)));
  });

  it('one message that can no longer be edited does not stop the others', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    await h.service.handle([h.alert()]);
    const thread = { surface: 'slack' as const, channel: 'C0X', messageId: '1.1' };
    await h.service.handle([h.alert({ fingerprint: 't', title: 'Thread alert' })], thread);
    await h.service.idle();
    const [channelMsg] = h.slack.inChannel('C0ALERTS');
    if (!channelMsg) throw new Error('no suggestion');
    h.slack.messages.delete(channelMsg.ref.messageId); // someone deleted it
    // The thread's alert resolves: its thread is edited, though the channel's message cannot be.
    const [resolved] = await h.service.handle(
      [h.alert({ fingerprint: 't', title: 'Thread alert', status: 'resolved' })],
      thread,
    );
    expect(resolved?.outcome).toBe('failed');
    expect(viewText(h.slack.inChannel('C0X')[0]?.view)).toContain('It has resolved.');
  });

  it('two people dismissing the two copies at the same moment: the last one cancels, and it sticks', async () => {
    h = await createHarness({ memoryChat: ['slack', 'discord'] });
    const [first] = await h.service.handle([h.alert()]);
    const planId = first?.planId ?? '';
    const [s] = h.slack.inChannel('C0ALERTS');
    const [d] = h.discord.inChannel('123456789012');
    if (!s || !d) throw new Error('no suggestion');
    const [a, b] = await Promise.all([
      h.chat.click(ana, `sy1:dismiss:${planId}`, s.ref),
      h.chat.click(anaOnDiscord, `sy1:dismiss:${planId}`, d.ref),
    ]);
    const [later] = await h.service.handle([
      h.alert({ fingerprint: 'incident-2', title: 'Checkout latency' }),
    ]);
    expect({
      clicks: [a.outcome, b.outcome].sort(),
      state: (await h.flow.get(planId))?.state,
      later: later?.outcome,
    }).toEqual({
      clicks: ['cancelled', 'dismissed'],
      state: 'cancelled',
      later: 'dismissed',
    });
  });

  it("the console's copy does not keep a suggestion dismissed everywhere else open", async () => {
    h = await createHarness({ memoryChat: ['slack', 'discord'] });
    const [first] = await h.service.handle([h.alert()]);
    const planId = first?.planId ?? '';
    const [s] = h.slack.inChannel('C0ALERTS');
    if (!s) throw new Error('no suggestion');
    // What the console's copy looks like on the plan: one more message showing it.
    await h.flow.attachMessage(planId, { surface: 'console', channel: 'console', messageId: 'm_1' });
    await h.chat.click(ana, `sy1:dismiss:${planId}`, s.ref);
    const [d] = h.discord.inChannel('123456789012');
    if (!d) throw new Error('no suggestion');
    expect((await h.chat.click(anaOnDiscord, `sy1:dismiss:${planId}`, d.ref)).outcome).toBe('cancelled');
  });

  it('someone not permitted on the environment cannot Dismiss, as they cannot Cancel', async () => {
    h = await createHarness({
      file: {
        environments: {
          production: {
            channels: { slack: 'C0ALERTS', discord: '123456789012' },
            allow: { slack: { users: ['U0ONCALL'] } },
          },
          preview: {},
        },
      },
      memoryChat: ['slack', 'discord'],
    });
    const [first] = await h.service.handle([h.alert()]);
    const [s] = h.slack.inChannel('C0ALERTS');
    if (!s) throw new Error('no suggestion');
    const visitor = { surface: 'slack' as const, userId: 'U0VISITOR', displayName: 'Visitor' };
    expect((await h.chat.click(visitor, `sy1:cancel:${first?.planId}`, s.ref)).outcome).toBe('refused');
    const dismiss = await h.chat.click(visitor, `sy1:dismiss:${first?.planId}`, s.ref);
    expect(dismiss.outcome).toBe('refused');
    expect((await h.flow.get(first?.planId ?? ''))?.state).toBe('pending');
  });

  it("someone not permitted who asked for the rollback first cannot Dismiss or Cancel the alert's suggestion of it", async () => {
    h = await createHarness({
      file: {
        environments: {
          production: { channels: { slack: 'C0ALERTS' }, allow: { slack: { users: ['U0ANA'] } } },
          preview: {},
        },
      },
      memoryChat: ['slack'],
    });
    const bob = { surface: 'slack' as const, userId: 'U0BOB', displayName: 'Bob' };
    const asked = await h.chat.command(bob, 'rollback', ['production']);
    const planId = asked.planId ?? '';
    const own = await h.slack.post('C0DEV', asked.view);
    await h.chat.attach(planId, own);
    const [first] = await h.service.handle([h.alert()]);
    expect({ outcome: first?.outcome, planId: first?.planId }).toEqual({ outcome: 'suggested', planId });
    const [s] = h.slack.inChannel('C0ALERTS');
    if (!s) throw new Error('no suggestion');

    const dismissed = await h.chat.click(bob, `sy1:dismiss:${planId}`, s.ref);
    const cancelled = await h.chat.click(bob, `sy1:cancel:${planId}`, own);
    const [later] = await h.service.handle([
      h.alert({ fingerprint: 'incident-2', title: 'Checkout latency' }),
    ]);
    await h.service.idle();
    expect({
      dismissed: dismissed.outcome,
      cancelled: cancelled.outcome,
      state: (await h.flow.get(planId))?.state,
      dismissal: (await h.plans.dismissal(planId)) ?? null,
      later: later?.outcome,
      buttons: buttonLabels(h.slack.inChannel('C0ALERTS')[0]?.view),
    }).toEqual({
      dismissed: 'refused',
      cancelled: 'refused',
      state: 'pending',
      dismissal: null,
      later: 'grouped',
      buttons: ['Rollback to target version', 'Cancel', 'Dismiss'],
    });
  });

  it('a click that closes the plan asks for its other copies to be shown closed', async () => {
    h = await createHarness({ memoryChat: ['slack', 'discord'] });
    const closed: string[] = [];
    const chat = new ChatService({ flow: h.flow, clock: h.clock, onPlanClosed: (id) => closed.push(id) });
    const [first] = await h.service.handle([h.alert()]);
    const [s] = h.slack.inChannel('C0ALERTS');
    if (!s) throw new Error('no suggestion');
    expect((await chat.click(ana, `sy1:cancel:${first?.planId}`, s.ref)).outcome).toBe('cancelled');
    expect(closed).toEqual([first?.planId]);
    // What app.ts wires it to: the Discord copy then says cancelled.
    h.service.refreshSuggestions(first?.planId ?? '');
    await h.service.idle();
    expect(buttonLabels(h.discord.inChannel('123456789012')[0]?.view)).toEqual([]);
  });

  it('a suggestion whose plan expired unclicked is shown closed when the next alert makes a fresh one', async () => {
    h = await createHarness({
      file: { ...slackOnly, alerts: { correlationWindow: '3h' } },
      memoryChat: ['slack'],
    });
    const [first] = await h.service.handle([h.alert()]);
    await h.clock.advance(60 * MINUTE + 1); // nobody acted within the plan's hour
    const [next] = await h.service.handle([
      h.alert({ fingerprint: 'incident-2', title: 'Checkout latency', startedAt: h.clock.now() - MINUTE }),
    ]);
    expect(next).toMatchObject({ outcome: 'suggested', planId: first?.planId });
    await h.service.idle();
    const [old, fresh] = h.slack.inChannel('C0ALERTS');
    expect(buttonLabels(old?.view).some((l) => l.startsWith('Rollback'))).toBe(false);
    expect(viewText(old?.view)).toMatch(/[Ee]xpired/);
    expect(buttonLabels(fresh?.view).some((l) => l.startsWith('Rollback'))).toBe(true);
  });

  it('with more alerts than listed, "All N alerts resolved" counts every one', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    for (let i = 0; i < MAX_ALERTS_PER_PLAN + 5; i++)
      await h.service.handle([h.alert({ fingerprint: `i-${i}`, title: `Alert ${i}` })]);
    for (let i = 0; i < MAX_ALERTS_PER_PLAN + 5; i++)
      await h.service.handle([h.alert({ fingerprint: `i-${i}`, title: `Alert ${i}`, status: 'resolved' })]);
    await h.service.idle();
    expect(viewText(h.slack.inChannel('C0ALERTS')[0]?.view)).toContain(
      `All ${MAX_ALERTS_PER_PLAN + 5} alerts resolved`,
    );
  });
});

describe('a storm past the alerts a plan tracks one by one', () => {
  it('the message gives their number as an estimate and never says they all resolved; a resolution among them says it edited nothing', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const [first] = await h.service.handle([h.alert()]);
    expect(first?.outcome).toBe('suggested');
    const planId = first?.planId ?? '';
    // Other incidents fill the list and the counted ids (through the plan's store, as the service does).
    const tracked = MAX_ALERTS_PER_PLAN + MAX_COUNTED_ALERTS_PER_PLAN;
    const context = { source: 'generic', title: 'Checkout 5xx on one pod' };
    for (let i = 1; i < tracked; i++) await h.flow.groupAlert(planId, `storm-${i}`, context, []);
    const [late] = await h.service.handle([h.alert({ fingerprint: 'late', title: 'Late alert' })]);
    expect(late?.outcome).toBe('grouped');

    // Every alert tracked one by one resolves, the first one too; then the one only estimated.
    for (let i = 1; i < tracked; i++) await h.flow.resolveAlert(planId, `storm-${i}`, h.clock.now());
    await h.service.handle([h.alert({ status: 'resolved' })]);
    const [lateResolved] = await h.service.handle([
      h.alert({ fingerprint: 'late', title: 'Late alert', status: 'resolved' }),
    ]);
    await h.service.idle();

    expect(lateResolved).toMatchObject({
      outcome: 'resolved',
      detail: expect.stringContaining(`beyond its first ${tracked} only as an estimate`),
    });
    const text = viewText(h.slack.inChannel('C0ALERTS')[0]?.view);
    // 49 other listed alerts, 1,000 counted, and the late one in the estimate (of one: exact here).
    expect(text).toContain(
      'about 1050 more alerts on this deployment (0 still firing, and about 1 whose state is not tracked)',
    );
    expect(text).toContain('…and about 1001 more, not listed');
    expect(text).not.toMatch(/alerts resolved|optional/);
  });
});

describe('alerts read from a watched channel: one suggestion per rollback and channel', () => {
  /** An alert message in a watched Slack channel (its own ts: a thread of its own). */
  const watched = (messageId: string) => ({ surface: 'slack' as const, channel: 'C0WATCHED', messageId });

  it('a storm of 50 alert messages posts one suggestion, in the first one’s thread, listing them all, with a few edits', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const hh = h;
    // Edits are held until every alert joined the plan's list, as a chat API that takes its time would
    // do: the alerts that join meanwhile are shown by the next edit, not one edit each (and each is
    // answered once an edit of the message came back after it joined).
    const edit = gate();
    let updates = 0;
    hh.slack.beforeUpdate = async () => {
      updates += 1;
      await edit.held;
    };
    const joinPlan = hh.plans.groupAlert.bind(hh.plans);
    const joined = new Set<string>();
    hh.plans.groupAlert = async (...args) => {
      const group = await joinPlan(...args);
      joined.add(args[1]);
      if (joined.size === 50) edit.release();
      return group;
    };
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        hh.service.handle(
          [hh.alert({ fingerprint: `chat-${i}`, title: `Alert #${i}#` })],
          watched(`17.${i}`),
        ),
      ),
    );
    await hh.service.idle();
    const outcomes = results.map(([r]) => r?.outcome);
    const first = outcomes.indexOf('suggested');
    const posted = hh.slack.inChannel('C0WATCHED');
    const shown = viewText(posted[0]?.view);
    expect({
      suggested: outcomes.filter((o) => o === 'suggested').length,
      grouped: outcomes.filter((o) => o === 'grouped').length,
      onePlan: new Set(results.map(([r]) => r?.planId)).size,
      messages: posted.length,
      thread: posted[0]?.ref.threadId,
      missing: Array.from({ length: 50 }, (_, i) => `Alert #${i}#`).filter((t) => !shown.includes(t)),
      counted: shown.includes('49 more alerts on this deployment (49 still firing)'),
      buttons: buttonLabels(posted[0]?.view),
    }).toEqual({
      suggested: 1,
      grouped: 49,
      onePlan: 1,
      messages: 1,
      thread: `17.${first}`,
      missing: [],
      counted: true,
      buttons: ['Rollback to target version', 'Cancel', 'Dismiss'],
    });
    // The edit under way, one more for what joined during it, and at most one more run: not one per alert.
    expect(updates).toBeGreaterThan(0);
    expect(updates).toBeLessThanOrEqual(3);
    expect(hh.slack.inChannel('C0ALERTS')).toEqual([]);
  });

  it("a chat alert in the channel of the rollback's suggestion is listed on it: no reply in its thread", async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const [hooked] = await h.service.handle([h.alert()]); // a webhook: C0ALERTS, at the top level
    const [chat] = await h.service.handle([h.alert({ fingerprint: 'chat-1', title: 'Checkout latency' })], {
      surface: 'slack',
      channel: 'C0ALERTS',
      messageId: '17.01',
    });
    // And the other way round: a webhook alert joins a suggestion threaded under a chat alert.
    const [inThread] = await h.service.handle(
      [h.alert({ fingerprint: 'chat-2', title: 'Cart down' })],
      watched('17.02'),
    );
    const [hookedThere] = await h.service.handle([
      h.alert({ fingerprint: 'incident-3', title: 'Payment errors' }),
    ]);
    await h.service.idle();
    const top = h.slack.inChannel('C0ALERTS');
    const threadRef = h.slack.inChannel('C0WATCHED')[0]?.ref;
    expect({
      outcomes: [hooked, chat, inThread, hookedThere].map((r) => r?.outcome),
      inAlerts: top.map((m) => m.ref.threadId ?? 'top level'),
      listed: ['Checkout latency', 'Cart down', 'Payment errors'].every((t) =>
        viewText(top[0]?.view).includes(t),
      ),
      inWatched: h.slack.inChannel('C0WATCHED').map((m) => m.ref.threadId),
      // The thread's suggestion lists the plan's other alerts from its first version on.
      threadPostedWithOthers: viewText(h.slack.messages.get(threadRef?.messageId ?? '')?.history[0]).includes(
        'Checkout latency',
      ),
    }).toEqual({
      outcomes: ['suggested', 'grouped', 'suggested', 'grouped'],
      inAlerts: ['top level'],
      listed: true,
      inWatched: ['17.02'],
      threadPostedWithOthers: true,
    });
  });

  it('a second bad deploy in the same channel gets a suggestion of its own; its alerts group there', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'], env: {} });
    const [a] = await h.service.handle([h.alert({ fingerprint: 'a', title: 'Alert A' })], watched('17.01'));
    const [b] = await h.service.handle([h.alert({ fingerprint: 'b', title: 'Alert B' })], watched('17.02'));
    // A new production deployment goes live; alerts that started after it point at another rollback.
    const pushed = await h.platform.push({ environment: 'production' });
    await h.clock.advance(10_000);
    await h.platform.settle();
    expect((await h.platform.snapshot('production')).environment.currentDeploymentId).toBe(pushed.id);
    await h.clock.advance(2 * MINUTE);
    const startedAt = h.clock.now() - MINUTE;
    const [c] = await h.service.handle(
      [h.alert({ fingerprint: 'c', title: 'Alert C', startedAt })],
      watched('17.03'),
    );
    const [d] = await h.service.handle(
      [h.alert({ fingerprint: 'd', title: 'Alert D', startedAt })],
      watched('17.04'),
    );
    await h.service.idle();
    const posted = h.slack.inChannel('C0WATCHED');
    expect({
      outcomes: [a, b, c, d].map((r) => r?.outcome),
      samePlan: [a?.planId === b?.planId, c?.planId === d?.planId, a?.planId === c?.planId],
      threads: posted.map((m) => m.ref.threadId),
      second: ['Alert C', 'Alert D'].map((t) => viewText(posted[1]?.view).includes(t)),
      secondShowsFirst: viewText(posted[1]?.view).includes('Alert A'),
    }).toEqual({
      outcomes: ['suggested', 'grouped', 'suggested', 'grouped'],
      samePlan: [true, true, false],
      threads: ['17.01', '17.03'],
      second: [true, true],
      secondShowsFirst: false,
    });
  });

  it("after its channel's suggestion was dismissed (the plan open elsewhere), later chat alerts there are `dismissed`, not posted", async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const [chat] = await h.service.handle(
      [h.alert({ fingerprint: 'chat-1', title: 'Alert A' })],
      watched('17.01'),
    );
    const [hooked] = await h.service.handle([h.alert({ fingerprint: 'incident-2', title: 'Alert B' })]);
    const planId = chat?.planId ?? '';
    const [thread] = h.slack.inChannel('C0WATCHED');
    if (!thread) throw new Error('no suggestion in the thread');
    const click = await h.chat.click(ana, `sy1:dismiss:${planId}`, thread.ref);
    if (click.update) h.slack.apply(thread.ref, click.update);
    const [later] = await h.service.handle(
      [h.alert({ fingerprint: 'chat-3', title: 'Alert C' })],
      watched('17.03'),
    );
    const [hookedLater] = await h.service.handle([h.alert({ fingerprint: 'incident-4', title: 'Alert D' })]);
    await h.service.idle();
    expect({
      outcomes: [chat, hooked, click, later, hookedLater].map((r) => r?.outcome),
      state: (await h.flow.get(planId))?.state,
      inWatched: h.slack.inChannel('C0WATCHED').length,
      threadStillDismissed: viewText(h.slack.inChannel('C0WATCHED')[0]?.view).includes('Dismissed by Ana'),
      // The channel's message that still offers the rollback lists the alert that was not shown.
      listedElsewhere: viewText(h.slack.inChannel('C0ALERTS')[0]?.view).includes('Alert C'),
    }).toEqual({
      outcomes: ['suggested', 'suggested', 'dismissed', 'dismissed', 'grouped'],
      state: 'pending',
      inWatched: 1,
      threadStillDismissed: true,
      listedElsewhere: true,
    });
  });

  it('dismissing its only message stops the suggestions; after Cancel a later alert suggests again, once', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const [first] = await h.service.handle(
      [h.alert({ fingerprint: 'chat-1', title: 'Alert A' })],
      watched('17.01'),
    );
    const [m1] = h.slack.inChannel('C0WATCHED');
    if (!m1) throw new Error('no suggestion');
    // Cancel is "not now": the next alert of the channel gets a suggestion again, and the one after
    // joins it.
    const cancel = await h.chat.click(ana, `sy1:cancel:${first?.planId}`, m1.ref);
    if (cancel.update) h.slack.apply(m1.ref, cancel.update);
    const [again] = await h.service.handle(
      [h.alert({ fingerprint: 'chat-2', title: 'Alert B' })],
      watched('17.02'),
    );
    const [joins] = await h.service.handle(
      [h.alert({ fingerprint: 'chat-3', title: 'Alert C' })],
      watched('17.03'),
    );
    const m2 = h.slack.inChannel('C0WATCHED')[1];
    if (!m2) throw new Error('no second suggestion');
    // Dismiss on the plan's only message cancels it for good: later alerts are not suggested.
    const dismiss = await h.chat.click(ana, `sy1:dismiss:${again?.planId}`, m2.ref);
    const [after] = await h.service.handle(
      [h.alert({ fingerprint: 'chat-4', title: 'Alert D' })],
      watched('17.04'),
    );
    expect({
      outcomes: [first, cancel, again, joins, dismiss, after].map((r) => r?.outcome),
      threads: h.slack.inChannel('C0WATCHED').map((m) => m.ref.threadId),
    }).toEqual({
      outcomes: ['suggested', 'cancelled', 'suggested', 'grouped', 'cancelled', 'dismissed'],
      threads: ['17.01', '17.02'],
    });
  });
  it('a thread suggestion recorded by an older Switchyard (a slot of its own) still shows its own alert only', async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const [first] = await h.service.handle([h.alert()]);
    const planId = first?.planId ?? '';
    // What an older Switchyard left: a chat alert listed on the plan, its suggestion in the slot of
    // its thread.
    const slot = 'slack:C0WATCHED:17.01';
    const legacy = { id: 'legacy-1', source: 'slack', title: 'Legacy alert', status: 'firing' as const };
    expect(await h.flow.groupAlert(planId, 'legacy-1', legacy, [slot])).toBeDefined();
    const record = await h.flow.get(planId);
    if (!record) throw new Error('no plan');
    const ref = await h.slack.post(
      'C0WATCHED',
      h.chat.confirmation(record, { alertId: 'legacy-1', alone: true }),
      {
        threadId: '17.01',
      },
    );
    await h.flow.suggestionPosted(planId, slot, 'legacy-1', ref);
    // Another webhook alert: the channel's message is edited to list it, the old thread's is not.
    const [later] = await h.service.handle([
      h.alert({ fingerprint: 'incident-2', title: 'Checkout latency' }),
    ]);
    // A chat alert in that channel: the old thread slot is no place of the channel, so it posts once.
    const [chat] = await h.service.handle(
      [h.alert({ fingerprint: 'chat-1', title: 'Cart down' })],
      watched('17.02'),
    );
    const [chatLater] = await h.service.handle(
      [h.alert({ fingerprint: 'chat-2', title: 'Payment errors' })],
      watched('17.03'),
    );
    await h.service.idle();
    expect({
      outcomes: [later, chat, chatLater].map((r) => r?.outcome),
      oldThreadEdits: (h.slack.messages.get(ref.messageId)?.history.length ?? 0) - 1,
      threads: h.slack.inChannel('C0WATCHED').map((m) => m.ref.threadId),
      channelLists: viewText(h.slack.inChannel('C0ALERTS')[0]?.view).includes('Payment errors'),
    }).toEqual({
      outcomes: ['grouped', 'suggested', 'grouped'],
      oldThreadEdits: 0,
      threads: ['17.01', '17.02'],
      channelLists: true,
    });
  });
});

describe('a repeat of an incident whose confirmed plan expired waiting for approval', () => {
  it('does not say nobody confirmed it (the record says Alice did)', async () => {
    h = await createHarness({
      file: {
        environments: { production: { channels: { slack: 'C0ALERTS' }, twoPersonRule: true }, preview: {} },
      },
    });
    const [first] = await h.service.handle([h.alert({ fingerprint: 'incident-1' })]);
    expect(first?.outcome).toBe('suggested');
    await h.service.idle();
    const planId = first?.planId ?? '';
    const alice = { surface: 'slack' as const, userId: 'U0ALICE', displayName: 'Alice' };
    expect((await h.flow.confirm(alice, planId)).status).toBe('awaiting_approval');

    await h.clock.advance(61 * MINUTE); // nobody approves
    const [repeat] = await h.service.handle([h.alert({ fingerprint: 'incident-1' })]);
    expect(repeat?.outcome).toBe('deduplicated');
    expect((await h.flow.get(planId))?.confirmedBy?.displayName).toBe('Alice');
    expect(repeat?.detail).not.toContain('before anyone confirmed it');
    expect(repeat?.detail).toContain('expired unused');
  });
});

describe('"Make a fresh plan": the suggestion slot reserved for the click\'s message', () => {
  /**
   * An alert's suggestion posted to `channel` (as configured: an id, or a Slack name such as `#alerts`
   * that the chat service answers with `id`) expires unclicked. Returns it and the surface's poster.
   */
  async function expiredSuggestion(harness: Harness, surface: 'slack' | 'discord', id: string) {
    const [first] = await harness.service.handle([harness.alert({ fingerprint: 'incident-1' })]);
    expect(first?.outcome).toBe('suggested');
    await harness.service.idle();
    await harness.clock.advance(61 * MINUTE);
    expect((await harness.chat.expireDue()).map((r) => r.plan.id)).toEqual([first?.planId]);
    await harness.chat.idle();
    await harness.service.idle();
    const poster = surface === 'slack' ? harness.slack : harness.discord;
    const [expired] = poster.inChannel(id);
    if (!expired) throw new Error('no suggestion');
    expect(buttonLabels(expired.view)).toEqual(['Make a fresh plan']);
    return { planId: first?.planId ?? '', expired, poster };
  }

  /** A later alert of the same rollback (it started when incident-1 did). */
  function laterAlert(harness: Harness) {
    return harness.alert({
      fingerprint: 'incident-4',
      title: 'Alert incident-4',
      startedAt: harness.clock.now() - 95 * MINUTE,
    });
  }

  it("a Slack alert channel given by name (#alerts): the click's message takes the place of the clicked one, and a later alert is listed on it, not posted beside it", async () => {
    h = await createHarness({
      file: { environments: { production: { channels: { slack: '#alerts' } }, preview: {} } },
      memoryChat: ['slack'],
    });
    h.slack.channelIds.set('#alerts', 'C0ALERTS');
    const { planId, expired } = await expiredSuggestion(h, 'slack', 'C0ALERTS');
    // Slack's click payload names the channel by its id, as the expired message's ref does.
    expect(expired.ref.channel).toBe('C0ALERTS');
    const click = await h.chat.click(ana, expired.view.buttons[0]?.actionId ?? '', expired.ref);
    expect(click.outcome).toBe('planned');
    if (click.post?.planId === undefined) throw new Error('no post');
    // As handlers/slack/actions/run.ts does: the answer goes to the click's channel, then is attached.
    const fresh = await h.slack.post('C0ALERTS', click.post.view);
    await h.chat.attach(click.post.planId, fresh);
    await h.service.idle();
    expect(
      (await h.flow.get(planId))?.suggestions?.map((s) => ({ slot: s.slot, ref: s.ref?.messageId })),
    ).toEqual([{ slot: 'slack:#alerts', ref: fresh.messageId }]);

    const [later] = await h.service.handle([laterAlert(h)]);
    await h.service.idle();
    expect({
      later: later?.outcome,
      messagesInChannel: h.slack.inChannel('C0ALERTS').length,
      freshListsIt: viewText(h.slack.messages.get(fresh.messageId)?.view).includes('Alert incident-4'),
    }).toEqual({ later: 'grouped', messagesInChannel: 2, freshListsIt: true });
  });

  it.each([
    ['slack', 'C0ALERTS', 'C0ALERTS'],
    ['slack', '#alerts', 'C0ALERTS'],
    ['discord', '123456789012', '123456789012'],
  ] as const)(
    "a click whose answer could not be posted (%s, alerts to %s) frees the place at once: the rollback's next alert there is posted, not bounced",
    async (surface, configured, id) => {
      h = await createHarness({
        file: { environments: { production: { channels: { [surface]: configured } }, preview: {} } },
        memoryChat: [surface],
      });
      if (configured !== id) h.slack.channelIds.set(configured, id);
      const { planId, expired, poster } = await expiredSuggestion(h, surface, id);
      const who = surface === 'slack' ? ana : anaOnDiscord;
      const click = await h.chat.click(who, expired.view.buttons[0]?.actionId ?? '', expired.ref);
      expect(click.outcome).toBe('planned');
      if (click.post?.planId === undefined) throw new Error('no post');
      // The surface's post of the answer fails (Slack answered 429 or an error; Discord's post threw):
      // it tells ChatService, as handlers/slack/actions/run.ts and handlers/discord/actions/click.ts do.
      poster.failPost = 1;
      await expect(poster.post(id, click.post.view)).rejects.toThrow();
      await h.chat.postFailed(click.post.planId, { surface, channel: expired.ref.channel });
      expect((await h.flow.get(planId))?.suggestions ?? []).toEqual([]);

      await h.clock.advance(5_000); // well within the reservation's 2-minute lease
      const [later] = await h.service.handle([laterAlert(h)]);
      await h.service.idle();
      expect({
        outcome: later?.outcome,
        detail: later?.outcome === 'failed' ? later.detail : undefined,
        messagesInChannel: poster.inChannel(id).length,
      }).toEqual({ outcome: 'suggested', detail: undefined, messagesInChannel: 2 });
    },
  );

  it("a click whose answer could not be posted: an alert read from the watched channel is shown at once (its retries would end before the reservation's lease)", async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const { expired } = await expiredSuggestion(h, 'slack', 'C0ALERTS');
    const click = await h.chat.click(ana, expired.view.buttons[0]?.actionId ?? '', expired.ref);
    if (click.post?.planId === undefined) throw new Error('no post');
    await h.chat.postFailed(click.post.planId, { surface: 'slack', channel: 'C0ALERTS' });
    const origin = { surface: 'slack' as const, channel: 'C0ALERTS', messageId: '1700000000.000200' };
    const [first] = await h.service.handleChat([laterAlert(h)], origin);
    await h.service.idle();
    const shown = h.slack.inChannel('C0ALERTS').some((m) => viewText(m.view).includes('Alert incident-4'));
    expect({ first: first?.outcome, shown }).toEqual({ first: 'suggested', shown: true });
  });

  it("two clicks at once, one answer not posted: the other one's message keeps the place, and a later alert is listed on it", async () => {
    h = await createHarness({ file: slackOnly, memoryChat: ['slack'] });
    const { planId, expired } = await expiredSuggestion(h, 'slack', 'C0ALERTS');
    const bob = { surface: 'slack' as const, userId: 'U0BOB', displayName: 'Bob' };
    const id = expired.view.buttons[0]?.actionId ?? '';
    const [a, b] = await Promise.all([
      h.chat.click(ana, id, expired.ref),
      h.chat.click(bob, id, expired.ref),
    ]);
    if (a.post?.planId === undefined || b.post?.planId === undefined) throw new Error('no post');
    // One answer fails first (whichever click claimed the place), then the other is posted.
    await h.chat.postFailed(a.post.planId, { surface: 'slack', channel: 'C0ALERTS' });
    const fresh = await h.slack.post('C0ALERTS', b.post.view);
    await h.chat.attach(b.post.planId, fresh);
    await h.service.idle();
    expect((await h.flow.get(planId))?.suggestions?.map((s) => s.ref?.messageId)).toEqual([fresh.messageId]);
    const [later] = await h.service.handle([laterAlert(h)]);
    await h.service.idle();
    expect({
      later: later?.outcome,
      messagesInChannel: h.slack.inChannel('C0ALERTS').length,
      freshListsIt: viewText(h.slack.messages.get(fresh.messageId)?.view).includes('Alert incident-4'),
    }).toEqual({ later: 'grouped', messagesInChannel: 2, freshListsIt: true });
  });
});

describe('"Make a fresh plan" on an alert suggestion under the two-person rule', () => {
  it('keeps the plan the alert’s: the person who clicked is not its asker and may approve it', async () => {
    h = await createHarness({
      file: {
        environments: { production: { channels: { slack: 'C0ALERTS' }, twoPersonRule: true }, preview: {} },
      },
    });
    const [first] = await h.service.handle([h.alert({ fingerprint: 'incident-1' })]);
    expect(first?.outcome).toBe('suggested');
    await h.service.idle();
    const planId = first?.planId ?? '';
    await h.clock.advance(61 * MINUTE);
    expect((await h.chat.expireDue()).map((r) => r.plan.id)).toEqual([planId]);
    await h.chat.idle();

    const bob = { surface: 'slack' as const, userId: 'U0BOB', displayName: 'bob' };
    const alice = { surface: 'slack' as const, userId: 'U0ALICE', displayName: 'alice' };
    const fresh = await h.flow.replan(bob, planId);
    if (!fresh.ok) throw new Error(fresh.refusal.message);
    expect(fresh.record.requestedBy).toEqual(ALERT_ACTOR);
    expect((await h.flow.confirm(alice, fresh.plan.id)).status).toBe('awaiting_approval');
    // The waiting message names only the confirmer (an alert's suggestion: nobody typed the command).
    const waiting = await h.flow.get(fresh.plan.id);
    if (!waiting) throw new Error('expected the plan');
    expect(viewText(h.chat.confirmation(waiting))).not.toContain('bob');
    // Bob's approval passes every check and goes on to queue the switch (these tests' queue refuses
    // to, by throwing: it is never reached by a refused approval).
    await expect(h.flow.approve(bob, fresh.plan.id)).rejects.toThrow('the alert tests never confirm a plan');
    const d = await h.flow.deployments('production');
    if (!d.ok) throw new Error(d.refusal.message);
    expect(d.refusals).toEqual([]);
    const suggested = d.recent.filter((e) => e.event === 'requested' && e.message?.startsWith('suggested'));
    expect(suggested[0]?.message).toMatch(/suggested after alert .*; a fresh plan asked for by bob$/);
    expect(suggested[0]?.actor).toEqual(ALERT_ACTOR);
  });
});

describe('"Make a fresh plan" on the suggestion of a person’s request an alert joined', () => {
  it('keeps that person as the asker (never the one who clicked), who may then approve under the two-person rule', async () => {
    h = await createHarness({
      file: {
        environments: { production: { channels: { slack: 'C0ALERTS' }, twoPersonRule: true }, preview: {} },
      },
    });
    const ana = { surface: 'slack' as const, userId: 'U0ANA', displayName: 'Ana' };
    const bob = { surface: 'slack' as const, userId: 'U0BOB', displayName: 'bob' };
    const alice = { surface: 'slack' as const, userId: 'U0ALICE', displayName: 'alice' };
    const asked = await h.flow.plan(ana, 'rollback', 'production');
    if (!asked.ok) throw new Error(asked.refusal.message);
    const [joined] = await h.service.handle([h.alert({ fingerprint: 'incident-1' })]);
    await h.service.idle();
    expect(joined?.planId).toBe(asked.plan.id);
    await h.clock.advance(61 * MINUTE);
    await h.chat.expireDue();
    await h.chat.idle();

    const fresh = await h.flow.replan(bob, asked.plan.id);
    if (!fresh.ok) throw new Error(fresh.refusal.message);
    expect(fresh.record.requestedBy).toEqual(ana);
    expect((await h.flow.confirm(alice, fresh.plan.id)).status).toBe('awaiting_approval');
    // Bob's approval passes every check and goes on to queue the switch (these tests' queue throws).
    await expect(h.flow.approve(bob, fresh.plan.id)).rejects.toThrow('the alert tests never confirm a plan');
    // Ana typed the command: she may not approve.
    expect((await h.flow.approve(ana, fresh.plan.id)).status).toBe('refused');
  });
});
