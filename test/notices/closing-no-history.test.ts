/**
 * Closing the notices of a rolled-back period on a platform that says neither since when the
 * environment is rolled back nor what was live before (Unkey, Vercel: no `rolledBackAt`, an empty
 * `liveHistory`). The world's LocalPlatform is wrapped to look like one; its events still come through,
 * as the poller would emit them. A period starts when a replica first saw it; a new rollback (A → B →
 * A) is a new period; how a period ended comes from Switchyard's audit when it made the switch, else
 * from the state seen, and a notice is not said to have not gone live when nothing tells.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ActingUser } from '../../src/permissions.js';
import { formatTime } from '../../src/views/format.js';
import type { MessageView } from '../../src/views/types.js';
import {
  createWorld,
  HOUR,
  nth,
  type RecordedPost,
  type RecordingPoster,
  unkeyLike,
  WaitingReporter,
  type World,
} from './world.js';

const MIN = 60_000;
const alice: ActingUser = { surface: 'slack', userId: 'U0ALICE', displayName: 'Alice' };

let w: World | undefined;

afterEach(async () => {
  await w?.close();
  w = undefined;
});

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

describe('a new rollback is a new period, though the platform does not say when it began', () => {
  it("rolled back to A, then to B, then to A again: the third period's notice stays open until that period ends", async () => {
    w = await createWorld();
    const u = unkeyLike(w);
    const n = await w.notices({ platform: u.platform });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const first = await w.pushAndBuild('production', [n]);
    await w.advance(10 * MIN, [n]);
    await w.switchDirectly('rollback', 'production', 'dep_2mc5ty', [n]);
    const toB = w.clock.now();
    expect(closedView(w.slack, postTitled(w.slack, `${first.id} is ready but not live`)).summary).toBe(
      `${first.id} did not go live: production was rolled back to dep_2mc5ty at ${formatTime(toB)}.`,
    );
    await w.advance(10 * MIN, [n]);
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    await w.advance(10 * MIN, [n]);

    const second = await w.pushAndBuild('production', [n]);
    const offer = postTitled(w.slack, `${second.id} is ready but not live`);
    await w.advance(30 * MIN, [n]);
    expect(w.slack.editsOf(offer), 'closed although production is still rolled back').toEqual([]);
    await w.switchDirectly('promote', 'production', second.id, [n]);
    expect(closedView(w.slack, offer).title).toBe(`${second.id} went live on production`);
  });

  it('a first-seen time kept by an earlier version, of a period since closed, is not reused', async () => {
    w = await createWorld();
    const u = unkeyLike(w);
    const n = await w.notices({ platform: u.platform });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const seenKey = `${w.prefix}:notices:rolled-back-seen:production`;
    const firstSeen = await w.redis.hget(seenKey, 'dep_3hd7xa');
    await w.pushAndBuild('production', [n]);
    await w.switchDirectly('rollback', 'production', 'dep_2mc5ty', [n]);
    expect(await w.redis.exists(`${w.prefix}:notices:ended:production:dep_3hd7xa:${firstSeen}`)).toBe(1);
    await w.advance(10 * MIN, [n]);
    // The earlier version kept every deployment's first-seen time until the rollback ended. (Restored
    // after the wait: a check during it drops the other deployments' times.)
    await w.redis.hset(seenKey, 'dep_3hd7xa', String(firstSeen));
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    expect(await w.redis.hget(seenKey, 'dep_3hd7xa'), 'the closed period’s time reused').not.toBe(firstSeen);

    const again = await w.pushAndBuild('production', [n]);
    const offer = postTitled(w.slack, `${again.id} is ready but not live`);
    await w.advance(30 * MIN, [n]);
    expect(w.slack.editsOf(offer), 'closed although production is still rolled back').toEqual([]);
  });

  it('a read that misses the current deployment closes nothing and starts no new period', async () => {
    w = await createWorld({ environments: { production: { notices: { reminderEvery: '4h' } } } });
    const u = unkeyLike(w);
    const n = await w.notices({ platform: u.platform, recheckMs: 5 * MIN });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const since = w.clock.now();
    const fresh = await w.pushAndBuild('production', [n]);
    const offer = postTitled(w.slack, `${fresh.id} is ready but not live`);

    u.missCurrent(true);
    await w.advance(5 * MIN, [n]);
    u.missCurrent(false);
    expect(w.slack.editsOf(offer), 'closed on one read without a current deployment').toEqual([]);
    // The reminders still count from the rollback, not from the read after the miss.
    await w.advance(4 * HOUR - 5 * MIN - 60_000, [n]);
    const reminder = postTitled(w.slack, 'production is still rolled back to dep_3hd7xa');
    expect(reminder.at).toBe(since + 4 * HOUR);
    await w.switchDirectly('promote', 'production', fresh.id, [n]);
    expect(closedView(w.slack, offer).title).toBe(`${fresh.id} went live on production`);
  });
});

describe("how a period ended, without the platform's history", () => {
  it('a Switchyard promote, then a dashboard rollback within one poll: the audit says it went live', async () => {
    w = await createWorld();
    const u = unkeyLike(w);
    const n = await w.notices({ platform: u.platform });
    const reporter = new WaitingReporter();
    await w.worker(reporter);
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    const offer = postTitled(w.slack, `${fresh.id} is ready but not live`);

    // Within one poll: Alice promotes it through Switchyard, errors spike, Dana rolls back on the
    // dashboard. The poll sees one change: dep_3hd7xa → dep_2mc5ty, rolled back.
    u.hold();
    const planned = await w.flow.plan(alice, 'promote', 'production', fresh.id);
    if (!planned.ok) throw new Error(planned.refusal.message);
    await w.flow.attachMessage(planned.plan.id, { surface: 'slack', channel: 'C0ALERTS', messageId: '1.2' });
    expect((await w.flow.confirm(alice, planned.plan.id)).status).toBe('enqueued');
    expect((await reporter.waitFor((p) => p.outcome !== undefined)).outcome).toBe('succeeded');
    const promotedAt = w.clock.now();
    await w.advance(5_000, [n]);
    await w.switchDirectly('rollback', 'production', 'dep_2mc5ty', [n]);
    u.deliver({
      type: 'traffic.moved',
      environment: 'production',
      from: 'dep_3hd7xa',
      to: 'dep_2mc5ty',
      via: 'rollback',
      at: w.clock.now(),
    });
    await w.advance(1_000, [n]);

    const closed = closedView(w.slack, offer);
    expect(closed.summary).toBe(
      `${fresh.id} went live on production (promoted at ${formatTime(promotedAt)} by Alice).`,
    );
  });

  it('a Switchyard promote that started and failed: it says how the period ended, not that it did not go live', async () => {
    w = await createWorld();
    const u = unkeyLike(w);
    const n = await w.notices({ platform: u.platform });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    const offer = postTitled(w.slack, `${fresh.id} is ready but not live`);
    // Alice's promote started (it may have moved traffic before it failed: nothing here says).
    const base = {
      environment: 'production',
      action: 'promote' as const,
      actor: alice,
      jobId: 'switch-plan_x',
      planId: 'plan_x',
      targetId: fresh.id,
      fromId: 'dep_3hd7xa',
    };
    await w.audit.append({ ...base, at: w.clock.now(), event: 'started' });
    await w.advance(1_000, [n]);
    await w.audit.append({ ...base, at: w.clock.now(), event: 'failed', code: 'verify_timeout' });
    await w.switchDirectly('rollback', 'production', 'dep_2mc5ty', [n]);
    const at = w.clock.now();

    const closed = closedView(w.slack, offer);
    expect(closed.title).toBe(`${fresh.id}: the rollback of production ended`);
    expect(closed.summary).toBe(
      `${fresh.id}: the rollback of production to dep_3hd7xa ended: production was rolled back to dep_2mc5ty at ${formatTime(at)}.`,
    );
  });

  it('resumed on the dashboard, then an automatic deploy the poll reported: not said to be promoted', async () => {
    w = await createWorld();
    const u = unkeyLike(w);
    const n = await w.notices({ platform: u.platform, recheckMs: 5 * MIN });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    const offer = postTitled(w.slack, `${fresh.id} is ready but not live`);
    // A dashboard resume (a promote of the deployment rolled back to: no event), then a push that goes
    // live by itself before the next check. The poll reports it as an automatic deploy from dep_3hd7xa.
    await w.switchDirectly('promote', 'production', 'dep_3hd7xa', [n]);
    const next = await w.pushAndBuild('production', [n]);
    expect((await u.platform.snapshot('production')).environment.currentDeploymentId).toBe(next.id);

    expect(closedView(w.slack, offer).summary).toBe(
      `${fresh.id} did not go live: automatic deploys resumed on production; dep_3hd7xa stayed live until ${next.id} went live by an automatic deploy.`,
    );
  });

  it('resumed, then the deployment offered promoted, which the poll reports as an automatic deploy: it went live', async () => {
    w = await createWorld();
    const u = unkeyLike(w);
    const n = await w.notices({ platform: u.platform, recheckMs: 5 * MIN });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    const offer = postTitled(w.slack, `${fresh.id} is ready but not live`);
    // Resumed, then, by the next poll, the deployment offered promoted on the dashboard: the poll saw
    // dep_3hd7xa live and not rolled back, then a newer one taking over, which it reports as a deploy.
    u.hold();
    await w.switchDirectly('promote', 'production', 'dep_3hd7xa', [n]);
    await w.switchDirectly('promote', 'production', fresh.id, [n]);
    const at = w.clock.now();
    u.deliver({
      type: 'traffic.moved',
      environment: 'production',
      from: 'dep_3hd7xa',
      to: fresh.id,
      via: 'deploy',
      at,
    });
    await w.advance(0, [n]);

    // Ready while production was rolled back, it cannot have gone live by an automatic deploy.
    expect(closedView(w.slack, offer).summary).toBe(`${fresh.id} went live on production (promoted).`);
  });

  it('another deployment live, and nothing tells how it got there: not said to be promoted', async () => {
    w = await createWorld();
    const u = unkeyLike(w);
    const n = await w.notices({ platform: u.platform, recheckMs: 5 * MIN });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    const offer = postTitled(w.slack, `${fresh.id} is ready but not live`);
    // Resumed, and a push went live by itself: the poll that saw it reported it to another replica.
    u.hold();
    await w.switchDirectly('promote', 'production', 'dep_3hd7xa', [n]);
    const next = await w.pushAndBuild('production', [n]);
    await w.advance(5 * MIN, [n]);

    const closed = closedView(w.slack, offer);
    expect(closed.title).toBe(`${fresh.id}: the rollback of production ended`);
    expect(closed.summary).toBe(
      `${fresh.id}: the rollback of production to dep_3hd7xa ended; ${next.id} is live.`,
    );
  });

  it('an audit that cannot be read: it says how the period ended, not that it did not go live', async () => {
    w = await createWorld();
    const u = unkeyLike(w);
    const audit = {
      recent: async () => {
        throw new Error('the audit stream is unreadable');
      },
    };
    const n = await w.notices({ platform: u.platform, audit, recheckMs: 5 * MIN });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    const offer = postTitled(w.slack, `${fresh.id} is ready but not live`);
    await w.switchDirectly('promote', 'production', 'dep_3hd7xa', [n]);
    await w.advance(5 * MIN, [n]);

    expect(closedView(w.slack, offer).summary).toBe(
      `${fresh.id}: the rollback of production to dep_3hd7xa ended: automatic deploys resumed on production; dep_3hd7xa is live.`,
    );
  });
});
