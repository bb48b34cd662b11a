/**
 * Once the rolled-back period a "ready but not live" notice or a reminder belongs to is over (promoted
 * from Switchyard or the dashboard, automatic deploys resumed, rolled back again), every such message
 * of the period, on every surface, is edited into a closed view without buttons that says what
 * happened: which deployment went live, which did not, how long the rollback lasted. The refs are kept
 * in Redis, so another replica or a restarted process closes them, each message once; a failed edit is
 * retried like a failed post.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConsoleSurface } from '../../handlers/console/surface.js';
import type { ChatPoster } from '../../src/chat-sinks.js';
import type { Clock } from '../../src/clock.js';
import { createLogger } from '../../src/log.js';
import type { NoticeOutcome } from '../../src/notices.js';
import type { ActingUser } from '../../src/permissions.js';
import type { MessageRef } from '../../src/progress.js';
import { scanKeys } from '../../src/redis.js';
import { formatTime } from '../../src/views/format.js';
import type { MessageView } from '../../src/views/types.js';
import {
  BUILD_MS,
  createWorld,
  HOUR,
  idleAll,
  nth,
  type RecordedPost,
  RecordingPoster,
  viewText,
  WaitingReporter,
  type World,
} from './world.js';

const MIN = 60_000;
const alice: ActingUser = { surface: 'slack', userId: 'U0ALICE', displayName: 'Alice' };
const confirmationMessage: MessageRef = {
  surface: 'slack',
  channel: 'C0ALERTS',
  messageId: '1700000000.000200',
};

let w: World | undefined;

afterEach(async () => {
  await w?.close();
  w = undefined;
});

const ofStatus = <S extends NoticeOutcome['status']>(outcomes: readonly NoticeOutcome[], status: S) =>
  outcomes.filter((o): o is Extract<NoticeOutcome, { status: S }> => o.status === status);

function buttonId(view: MessageView, kind: string): string {
  const button = view.buttons.find((b) => b.action.kind === kind);
  if (!button) throw new Error(`no ${kind} button in "${view.title}"`);
  return button.actionId;
}

/** The one post titled `title`. */
function postTitled(poster: RecordingPoster, title: string): RecordedPost {
  const found = poster.posts.filter((p) => p.view.title === title);
  if (found.length !== 1) throw new Error(`expected one post "${title}", got ${found.length}`);
  return nth(found, 0);
}

/** The single edit of `post`, checked to be a closed view (no buttons). */
function closedView(poster: RecordingPoster, post: RecordedPost): MessageView {
  const edits = poster.editsOf(post);
  expect(edits, `edits of "${post.view.title}"`).toHaveLength(1);
  const view = nth(edits, 0);
  expect(view.buttons).toEqual([]);
  return view;
}

class Fault extends Error {
  constructor(
    message: string,
    readonly transient: boolean,
  ) {
    super(message);
  }
}

/** A recording poster whose edits first fail with the queued faults, one per call. */
class FlakyEditor extends RecordingPoster {
  readonly editAttempts: number[] = [];
  constructor(
    surface: ChatPoster['surface'],
    private readonly at: Clock,
    private readonly faults: Fault[],
  ) {
    super(surface, at);
  }

  override async update(ref: MessageRef, view: MessageView): Promise<void> {
    this.editAttempts.push(this.at.now());
    const fault = this.faults.shift();
    if (fault) throw fault;
    return super.update(ref, view);
  }

  retryable(error: unknown): boolean {
    return error instanceof Fault && error.transient;
  }
}

/** A recording poster whose first "ready but not live" post hangs until `release()`. */
class HangingOfferPoster extends RecordingPoster {
  private released: (() => void) | undefined;
  private markHanging: (() => void) | undefined;
  private armed = true;
  /** Resolves once the post hangs (the chat API took it and has not answered). */
  readonly hanging = new Promise<void>((resolve) => {
    this.markHanging = resolve;
  });

  override async post(channel: string, view: MessageView): Promise<MessageRef> {
    if (this.armed && view.title.endsWith('is ready but not live')) {
      this.armed = false;
      await new Promise<void>((resolve) => {
        this.released = resolve;
        this.markHanging?.();
      });
    }
    return super.post(channel, view);
  }

  release(): void {
    this.released?.();
  }
}

describe('closing the notices of a rolled-back period that ended', () => {
  it('a promote from the notice\'s button closes it on every surface: "went live", without buttons', async () => {
    w = await createWorld({ env: { DISCORD_ALERT_CHANNEL: '1200000000000000001' } });
    const discord = new RecordingPoster('discord', w.clock);
    const surface = new ConsoleSurface({ clock: w.clock });
    const n = await w.notices({ posters: [w.slack, discord, surface.poster()] });
    const reporter = new WaitingReporter();
    await w.worker(reporter);
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Dana (dashboard)');
    const fresh = await w.pushAndBuild('production', [n], { message: 'Fix the checkout' });
    const offer = postTitled(w.slack, `${fresh.id} is ready but not live`);

    const planned = await w.chat.click(alice, buttonId(offer.view, 'promote'));
    const confirmation = planned.post?.view;
    if (!confirmation) throw new Error('expected a confirmation to post');
    await w.flow.attachMessage(planned.post?.planId ?? '', confirmationMessage);
    expect((await w.chat.click(alice, buttonId(confirmation, 'confirm'))).outcome).toBe('enqueued');
    expect((await reporter.waitFor((p) => p.outcome !== undefined)).outcome).toBe('succeeded');
    const promotedAt = w.clock.now();
    await idleAll([n]);

    for (const poster of [w.slack, discord]) {
      const closed = closedView(poster, postTitled(poster, `${fresh.id} is ready but not live`));
      expect(closed.title).toBe(`${fresh.id} went live on production`);
      expect(closed.summary).toBe(
        `${fresh.id} went live on production (promoted at ${formatTime(promotedAt)} by Alice).`,
      );
      expect(viewText(closed)).toContain('Fix the checkout');
      expect(viewText(closed)).toContain(
        'Was ready but not live while production was rolled back to dep_3hd7xa.',
      );
      expect(viewText(closed)).not.toMatch(/but not live:|Promote it/);
    }
    const entry = surface.timeline().find((e) => e.message?.title === `${fresh.id} went live on production`);
    expect(entry?.editedAt).toBe(promotedAt);
    expect(entry?.message?.buttons).toEqual([]);
    expect(surface.timeline().map((e) => e.message?.title)).not.toContain(
      `${fresh.id} is ready but not live`,
    );
    expect(ofStatus(n.outcomes, 'closed').map((o) => o.ref.surface)).toEqual(
      expect.arrayContaining(['slack', 'discord', 'console']),
    );
    expect(ofStatus(n.outcomes, 'closed')).toHaveLength(3);
    // Nothing else was edited, and nothing is edited again later.
    await w.advance(8 * HOUR, [n]);
    expect(w.slack.updates).toHaveLength(1);
    expect(discord.updates).toHaveLength(1);
  });

  it('a dashboard promote closes every notice of the period: the one promoted went live, the others did not, reminders say how long', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const n = await w.notices();
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Dana (dashboard)');
    const since = w.clock.now();
    const first = await w.pushAndBuild('production', [n], { message: 'Fix the cart' });
    const second = await w.pushAndBuild('production', [n], { message: 'Fix the cart, again' });
    await w.advance(4 * HOUR - 2 * BUILD_MS, [n]);
    const reminder = postTitled(w.slack, 'production is still rolled back to dep_3hd7xa');
    await w.advance(23 * MIN, [n]);
    expect(w.slack.updates).toEqual([]);

    await w.switchDirectly('promote', 'production', second.id, [n], 'Sam (dashboard)');
    const promotedAt = w.clock.now();
    expect(promotedAt - since).toBe(4 * HOUR + 23 * MIN);

    const wentLive = closedView(w.slack, postTitled(w.slack, `${second.id} is ready but not live`));
    expect(wentLive.title).toBe(`${second.id} went live on production`);
    expect(wentLive.tone).toBe('success');
    expect(wentLive.summary).toBe(
      `${second.id} went live on production (promoted at ${formatTime(promotedAt)} by Sam (dashboard)).`,
    );
    const notLive = closedView(w.slack, postTitled(w.slack, `${first.id} is ready but not live`));
    expect(notLive.title).toBe(`${first.id} did not go live on production`);
    expect(notLive.summary).toBe(
      `${first.id} did not go live: production was promoted to ${second.id} at ${formatTime(promotedAt)} by Sam (dashboard).`,
    );
    const over = closedView(w.slack, reminder);
    expect(over.title).toBe('production was rolled back to dep_3hd7xa');
    expect(over.summary).toBe(
      `production was rolled back to dep_3hd7xa from ${formatTime(since)} to 16:23 UTC (4 hours 23 minutes) (promoted to ${second.id}).`,
    );
    expect(viewText(over)).toContain(
      `from ${formatTime(since)} to 16:23 UTC (4 hours 23 minutes), by Dana (dashboard). Ended: promoted to ${second.id} by Sam (dashboard).`,
    );
    // The dashboard promote itself is announced as before (a new message, not an edit).
    expect(w.slack.titles().at(-1)).toBe(`Traffic on production moved to ${second.id}`);
    expect(w.slack.updates).toHaveLength(3);
    await w.advance(8 * HOUR, [n]);
    expect(w.slack.updates).toHaveLength(3);
  });

  it('resuming automatic deploys (no traffic moves, no event) closes them at the next check: nothing went live', async () => {
    w = await createWorld();
    const n = await w.notices({ recheckMs: 5 * MIN });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    await w.switchDirectly('promote', 'production', 'dep_3hd7xa', [n]);
    expect((await w.platform.snapshot('production')).environment.rolledBack).toBe(false);
    expect(w.slack.updates).toEqual([]); // nothing told the service yet

    await w.advance(5 * MIN, [n]);
    const closed = closedView(w.slack, postTitled(w.slack, `${fresh.id} is ready but not live`));
    expect(closed.title).toBe(`${fresh.id} did not go live on production`);
    // A dashboard resume is recorded nowhere: no time, no name.
    expect(closed.summary).toBe(
      `${fresh.id} did not go live: automatic deploys resumed on production; dep_3hd7xa stayed live.`,
    );
  });

  it('resumed, then a push that goes live by itself before the next check: the history says so, nothing claims a promote', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '30m' } } } });
    const n = await w.notices({ recheckMs: 5 * MIN });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const since = w.clock.now();
    const fresh = await w.pushAndBuild('production', [n]);
    await w.advance(30 * MIN - BUILD_MS, [n]);
    const reminder = postTitled(w.slack, 'production is still rolled back to dep_3hd7xa');
    await w.switchDirectly('promote', 'production', 'dep_3hd7xa', [n]);
    const next = await w.pushAndBuild('production', [n]);
    expect((await w.platform.snapshot('production')).environment.currentDeploymentId).toBe(next.id);

    expect(closedView(w.slack, postTitled(w.slack, `${fresh.id} is ready but not live`)).summary).toBe(
      `${fresh.id} did not go live: automatic deploys resumed on production; dep_3hd7xa stayed live until ${next.id} went live by an automatic deploy.`,
    );
    const over = closedView(w.slack, reminder);
    expect(over.summary).toBe(
      `production was rolled back to dep_3hd7xa from ${formatTime(since)} (automatic deploys resumed; then ${next.id} went live by an automatic deploy).`,
    );
    expect(viewText(over)).toContain(
      `Ended: automatic deploys resumed; then ${next.id} went live by an automatic deploy.`,
    );
  });

  it('a resume made through Switchyard says who and when, from the audit', async () => {
    w = await createWorld();
    const n = await w.notices({ recheckMs: 5 * MIN });
    const reporter = new WaitingReporter();
    await w.worker(reporter);
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    const planned = await w.flow.plan(alice, 'promote', 'production', 'dep_3hd7xa');
    if (!planned.ok) throw new Error(planned.refusal.message);
    expect(planned.plan.resumesAutoDeploys).toBe(true);
    await w.flow.attachMessage(planned.plan.id, confirmationMessage);
    expect((await w.flow.confirm(alice, planned.plan.id)).status).toBe('enqueued');
    expect((await reporter.waitFor((p) => p.outcome !== undefined)).outcome).toBe('succeeded');
    const resumedAt = w.clock.now();
    await w.advance(5 * MIN, [n]);

    const closed = closedView(w.slack, postTitled(w.slack, `${fresh.id} is ready but not live`));
    expect(closed.summary).toBe(
      `${fresh.id} did not go live: automatic deploys resumed on production at ${formatTime(resumedAt)} by Alice; dep_3hd7xa stayed live.`,
    );
  });

  it('rolled back again to another deployment: the first period closes, the new one stays open until it ends', async () => {
    w = await createWorld();
    const n = await w.notices();
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Dana (dashboard)');
    const fresh = await w.pushAndBuild('production', [n]);
    await w.advance(10 * MIN, [n]);
    await w.switchDirectly('rollback', 'production', 'dep_2mc5ty', [n], 'Eve (dashboard)');
    const againAt = w.clock.now();
    const closed = closedView(w.slack, postTitled(w.slack, `${fresh.id} is ready but not live`));
    expect(closed.summary).toBe(
      `${fresh.id} did not go live: production was rolled back to dep_2mc5ty at ${formatTime(againAt)} by Eve (dashboard).`,
    );

    // The new period's notice stays open until that period ends.
    const next = await w.pushAndBuild('production', [n]);
    const offer = postTitled(w.slack, `${next.id} is ready but not live`);
    expect(offer.view.summary).toBe(
      `${next.id} is ready but not live: production is rolled back to dep_2mc5ty.`,
    );
    await w.advance(30 * MIN, [n]);
    expect(w.slack.editsOf(offer)).toEqual([]);
    await w.switchDirectly('promote', 'production', next.id, [n]);
    expect(closedView(w.slack, offer).title).toBe(`${next.id} went live on production`);
    // The first period's message was closed once, and stays as it was closed.
    expect(w.slack.editsOf(postTitled(w.slack, `${fresh.id} is ready but not live`))).toHaveLength(1);
  });
});

describe('closing across replicas and restarts', () => {
  it('two replicas close each message once, on every surface', async () => {
    w = await createWorld({
      env: { DISCORD_ALERT_CHANNEL: '1200000000000000001' },
      environments: { production: { notices: { reminderEvery: '4h' } } },
    });
    const discord = new RecordingPoster('discord', w.clock);
    const a = await w.notices({ posters: [w.slack, discord] });
    const b = await w.notices({ posters: [w.slack, discord] });
    const both = [a, b];
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', both);
    const fresh = await w.pushAndBuild('production', both);
    await w.advance(4 * HOUR, both);
    await w.advance(4 * HOUR, both);
    expect(w.slack.titles().filter((t) => t.startsWith('production is still rolled back'))).toHaveLength(2);

    await w.switchDirectly('promote', 'production', fresh.id, both);
    await w.advance(HOUR, both);
    for (const poster of [w.slack, discord]) {
      // the ready-but-not-live notice and two reminders, each edited once
      expect(poster.updates).toHaveLength(3);
      expect(new Set(poster.updates.map((u) => u.ref.messageId)).size).toBe(3);
      expect(poster.updates.map((u) => u.view.title).sort()).toEqual([
        `${fresh.id} went live on production`,
        'production was rolled back to dep_3hd7xa',
        'production was rolled back to dep_3hd7xa',
      ]);
    }
    expect(ofStatus([...a.outcomes, ...b.outcomes], 'closed')).toHaveLength(6);
  });

  it('a restart between posting and the promote still closes them: the refs are kept in Redis', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const before = await w.notices();
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [before], 'Dana (dashboard)');
    const since = w.clock.now();
    const fresh = await w.pushAndBuild('production', [before]);
    await w.advance(4 * HOUR - BUILD_MS, [before]);
    await before.stop();

    // Promoted while no Switchyard runs; the process that starts next has posted nothing itself.
    await w.advance(HOUR, []);
    await w.switchDirectly('promote', 'production', fresh.id, [], 'Sam (dashboard)');
    const promotedAt = w.clock.now();
    const after = await w.notices();
    await idleAll([after]);

    const wentLive = closedView(w.slack, postTitled(w.slack, `${fresh.id} is ready but not live`));
    expect(wentLive.summary).toBe(
      `${fresh.id} went live on production (promoted at ${formatTime(promotedAt)} by Sam (dashboard)).`,
    );
    const over = closedView(w.slack, postTitled(w.slack, 'production is still rolled back to dep_3hd7xa'));
    expect(over.summary).toBe(
      `production was rolled back to dep_3hd7xa from ${formatTime(since)} to 17:00 UTC (5 hours) (promoted to ${fresh.id}).`,
    );
    expect(ofStatus(after.outcomes, 'closed')).toHaveLength(2);
  });

  it('a message whose post was under way while its period closed is closed as soon as it is kept', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const slack = new HangingOfferPoster('slack', w.clock);
    const n = await w.notices({ posters: [slack], recheckMs: 5 * MIN });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    await w.advance(4 * HOUR, [n]);
    const reminder = postTitled(slack, 'production is still rolled back to dep_3hd7xa');

    // A push becomes ready: its "ready but not live" post goes out and hangs (events wait behind it).
    const fresh = await w.platform.push({ environment: 'production' });
    try {
      await w.clock.advance(BUILD_MS);
      await w.platform.settle();
      await slack.hanging;
      // Meanwhile someone promotes it on the dashboard; the periodic check closes the period (the
      // reminder), before the offer's post has come back.
      await w.switchDirectly('promote', 'production', fresh.id, []);
      await w.clock.advance(5 * MIN);
      await slack.updated(1);
      expect(closedView(slack, reminder).title).toBe('production was rolled back to dep_3hd7xa');
    } finally {
      slack.release();
    }
    await idleAll([n]);
    const offer = postTitled(slack, `${fresh.id} is ready but not live`);
    expect(closedView(slack, offer).title).toBe(`${fresh.id} went live on production`);
    expect(slack.updates).toHaveLength(2);
    // Closed by the post itself, from the period's recorded end (not left for a later check): before
    // the post was even reported.
    const order = n.outcomes.filter((o) => 'kind' in o && o.kind === 'ready_not_live').map((o) => o.status);
    expect(order).toEqual(['closed', 'posted']);
  });
});

describe('what is kept for closing', () => {
  it('at most maxOpenNotices messages per period, expiring after claimTtlMs; nothing left once closed', async () => {
    w = await createWorld();
    const n = await w.notices({ maxOpenNotices: 2, claimTtlMs: 24 * HOUR });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const [oldest, middle, newest] = [
      await w.pushAndBuild('production', [n]),
      await w.pushAndBuild('production', [n]),
      await w.pushAndBuild('production', [n]),
    ];
    const keys = (await scanKeys(w.redis, `${w.prefix}:notices:open*`)).sort();
    const since = (await w.platform.snapshot('production')).environment.rolledBackAt;
    expect(keys).toEqual([
      `${w.prefix}:notices:open-periods:production`,
      `${w.prefix}:notices:open:production:dep_3hd7xa:${since}`,
    ]);
    expect(await w.redis.zcard(nth(keys, 1))).toBe(2);
    for (const key of keys) {
      const ttl = await w.redis.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(24 * HOUR);
    }

    await w.switchDirectly('promote', 'production', newest.id, [n]);
    const edited = (d: { id: string }) =>
      w?.slack.editsOf(postTitled(w.slack, `${d.id} is ready but not live`));
    expect(edited(oldest)).toEqual([]); // pushed out by the cap: left as posted
    expect(edited(middle)?.map((v) => v.title)).toEqual([`${middle.id} did not go live on production`]);
    expect(edited(newest)?.map((v) => v.title)).toEqual([`${newest.id} went live on production`]);
    expect(await scanKeys(w.redis, `${w.prefix}:notices:open*`)).toEqual([]);
    const ended = await scanKeys(w.redis, `${w.prefix}:notices:ended:*`);
    expect(ended).toHaveLength(1);
    expect(await w.redis.pttl(nth(ended, 0))).toBeGreaterThan(0);
  });
});

describe('closing edits that fail', () => {
  it('an edit that fails with a fault that may pass is retried with backoff, on that surface only', async () => {
    w = await createWorld({ env: { DISCORD_ALERT_CHANNEL: '1200000000000000001' } });
    const flaky = new FlakyEditor('slack', w.clock, [
      new Fault('503 from the chat API', true),
      new Fault('503 from the chat API', true),
    ]);
    const discord = new RecordingPoster('discord', w.clock);
    const n = await w.notices({ posters: [flaky, discord], postRetryMs: 5_000 });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    await w.switchDirectly('promote', 'production', fresh.id, [n]);
    const t0 = w.clock.now();
    expect(discord.updates.map((u) => u.view.title)).toEqual([`${fresh.id} went live on production`]);
    expect(flaky.updates).toEqual([]);

    await w.advance(4_999, [n]);
    expect(flaky.editAttempts).toEqual([t0]);
    await w.advance(1, [n]); // 5 s: second attempt, fails again
    await w.advance(10_000, [n]); // 10 s later: third attempt, made
    expect(flaky.editAttempts).toEqual([t0, t0 + 5_000, t0 + 15_000]);
    expect(flaky.updates.map((u) => u.view.title)).toEqual([`${fresh.id} went live on production`]);
    expect(ofStatus(n.outcomes, 'closed').map((o) => [o.ref.surface, o.attempt])).toEqual([
      ['discord', undefined],
      ['slack', 3],
    ]);
    await w.advance(HOUR, [n]);
    expect(flaky.editAttempts).toHaveLength(3);
    expect(discord.updates).toHaveLength(1);
    expect(await w.redis.zcard(`${w.prefix}:notices:retries`)).toBe(0);
  });

  it('a closing edit waiting for its retry survives a restart: the next process makes it, once', async () => {
    w = await createWorld();
    const flaky = new FlakyEditor('slack', w.clock, [new Fault('503 from the chat API', true)]);
    const first = await w.notices({ posters: [flaky], postRetryMs: 5_000 });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [first]);
    const fresh = await w.pushAndBuild('production', [first]);
    await w.switchDirectly('promote', 'production', fresh.id, [first]);
    await first.stop(); // the retry is due in 5 s

    const next = new RecordingPoster('slack', w.clock);
    const after = await w.notices({ posters: [next], postRetryMs: 5_000 });
    await w.advance(5_000, [after]);
    const offer = postTitled(flaky, `${fresh.id} is ready but not live`);
    expect(next.updates.map((u) => [u.ref, u.view.title])).toEqual([
      [offer.ref, `${fresh.id} went live on production`],
    ]);
    expect(ofStatus(after.outcomes, 'closed')).toMatchObject([{ attempt: 2 }]);
    await w.advance(HOUR, [after]);
    expect(next.updates).toHaveLength(1);
    expect(flaky.editAttempts).toHaveLength(1);
  });

  it('an edit refused for good (message deleted, no access) is given up at once and reported', async () => {
    w = await createWorld();
    const flaky = new FlakyEditor('slack', w.clock, [new Fault('message_not_found', false)]);
    const n = await w.notices({ posters: [flaky] });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    await w.switchDirectly('promote', 'production', fresh.id, [n]);
    await w.advance(HOUR, [n]);

    expect(flaky.editAttempts).toHaveLength(1);
    expect(flaky.updates).toEqual([]);
    expect(ofStatus(n.outcomes, 'close_failed')).toEqual([
      expect.objectContaining({
        surface: 'slack',
        kind: 'ready_not_live',
        attempts: 1,
        error: 'message_not_found',
      }),
    ]);
    // Not a notice lost: the posts were made, so nothing counts as a failed post.
    expect(ofStatus(n.outcomes, 'post_failed')).toEqual([]);
    expect(await w.redis.zcard(`${w.prefix}:notices:retries`)).toBe(0);
  });
});

/** A logger writing its JSON lines to `lines` (warn and above). */
function recordingLogger(lines: string[]) {
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return createLogger({ level: 'warn', pretty: false, destination });
}

/** The error messages of failed environment checks among `lines`. */
function failedChecks(lines: readonly string[]): string[] {
  return lines
    .filter((l) => l.includes('reminder check failed'))
    .map((l) => String((JSON.parse(l) as { err?: { message?: string } }).err?.message));
}

describe('closing with what Redis holds and the audit says', () => {
  it('an end marker holding a time no date can hold is ignored: the period closes, later reminders go on', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const lines: string[] = [];
    const n = await w.notices({ logger: recordingLogger(lines) });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const since = (await w.platform.snapshot('production')).environment.rolledBackAt;
    const fresh = await w.pushAndBuild('production', [n]);
    // Written by a bug, a manual edit, another version: JSON of the right shape, no date.
    await w.redis.set(
      `${w.prefix}:notices:ended:production:dep_3hd7xa:${since}`,
      JSON.stringify({ kind: 'resumed', at: 9_000_000_000_000_000 }),
    );
    await w.switchDirectly('promote', 'production', 'dep_3hd7xa', [n]);
    await w.advance(10 * MIN, [n]);
    expect(closedView(w.slack, postTitled(w.slack, `${fresh.id} is ready but not live`)).summary).toBe(
      `${fresh.id} did not go live: automatic deploys resumed on production; dep_3hd7xa stayed live.`,
    );

    await w.switchDirectly('rollback', 'production', 'dep_2mc5ty', [n]);
    await w.advance(4 * HOUR, [n]);
    expect(w.slack.titles()).toContain('production is still rolled back to dep_2mc5ty');
    expect(failedChecks(lines)).toEqual([]);
  });

  it('a period whose closing fails is logged and dropped: the other periods close, the reminders go on', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const lines: string[] = [];
    const n = await w.notices({ logger: recordingLogger(lines) });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    // A period listed whose kept messages cannot be read (a key of another type: an operator's mistake,
    // another version): every attempt to close it fails the same way.
    const broken = { to: 'dep_1old', since: 1_000 };
    await w.redis.zadd(`${w.prefix}:notices:open-periods:production`, broken.since, JSON.stringify(broken));
    await w.redis.set(`${w.prefix}:notices:open:production:${broken.to}:${broken.since}`, 'not a sorted set');
    await w.advance(10 * MIN, [n]);
    expect(lines.some((l) => l.includes('could not close the notices of a rolled-back period'))).toBe(true);
    expect(await w.redis.zrange(`${w.prefix}:notices:open-periods:production`, 0, -1)).toEqual([
      JSON.stringify({
        to: 'dep_3hd7xa',
        since: (await w.platform.snapshot('production')).environment.rolledBackAt,
      }),
    ]);

    await w.advance(4 * HOUR, [n]);
    expect(w.slack.titles()).toContain('production is still rolled back to dep_3hd7xa');
    await w.switchDirectly('promote', 'production', fresh.id, [n]);
    expect(closedView(w.slack, postTitled(w.slack, `${fresh.id} is ready but not live`)).title).toBe(
      `${fresh.id} went live on production`,
    );
    expect(failedChecks(lines)).toEqual([]);
  });

  it('a closing that meets a Redis fault (a failover) is tried again at the next check, not dropped', async () => {
    w = await createWorld();
    const n = await w.notices({ recheckMs: 5 * MIN });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    const redis = w.redis;
    const real = redis.eval.bind(redis) as (...args: unknown[]) => Promise<unknown>;
    let failOnce = true;
    vi.spyOn(redis, 'eval').mockImplementation((async (...args: unknown[]) => {
      if (failOnce && String(args[0]).includes("'SET', KEYS[3]")) {
        failOnce = false;
        throw new Error("READONLY You can't write against a read only replica.");
      }
      return real(...args);
    }) as typeof redis.eval);
    await w.switchDirectly('promote', 'production', fresh.id, [n]);
    expect(failOnce).toBe(false); // the first closing met the fault
    await w.advance(5 * MIN, [n]);
    expect(closedView(w.slack, postTitled(w.slack, `${fresh.id} is ready but not live`)).title).toBe(
      `${fresh.id} went live on production`,
    );
  });

  it('a dashboard resume after a Switchyard resume that failed is not credited to the engineer whose job failed', async () => {
    w = await createWorld();
    const n = await w.notices({ recheckMs: 5 * MIN });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Dana (dashboard)');
    const fresh = await w.pushAndBuild('production', [n]);
    const offer = postTitled(w.slack, `${fresh.id} is ready but not live`);
    // Alice's resume through Switchyard starts and fails (what the worker writes: started, then failed);
    // nothing changed on the platform.
    const base = {
      environment: 'production',
      action: 'promote' as const,
      actor: alice,
      jobId: 'switch-plan_x',
      planId: 'plan_x',
      targetId: 'dep_3hd7xa',
      fromId: 'dep_3hd7xa',
    };
    await w.audit.append({ ...base, at: w.clock.now(), event: 'started' });
    await w.advance(1_000, [n]);
    await w.audit.append({
      ...base,
      at: w.clock.now(),
      event: 'failed',
      code: 'platform_http',
      message: 'The platform answered 503.',
    });
    await w.advance(MIN, [n]);
    // Sam resumes on the dashboard instead (no event: a resume moves no traffic).
    await w.switchDirectly('promote', 'production', 'dep_3hd7xa', [n], 'Sam (dashboard)');
    await w.advance(5 * MIN, [n]);

    expect(closedView(w.slack, offer).summary).toBe(
      `${fresh.id} did not go live: automatic deploys resumed on production; dep_3hd7xa stayed live.`,
    );
  });
});
