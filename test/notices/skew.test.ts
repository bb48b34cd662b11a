/**
 * Clocks across processes. A switch worker stamps its audit entries with its own clock, the process
 * that sees a traffic move (the bot hosting the local platform, the replica polling Unkey or Vercel)
 * stamps the event with its own: a Switchyard job's own move is told from one outside Switchyard on
 * Redis's clock (the stream ids of the audit), whatever the skew between them. Pending notice posts
 * are leased on the clock of the replica that holds them, so a replica whose clock is ahead neither
 * takes another's post while it is being made, nor drops it as too old.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEntry, WrittenEntries } from '../../src/audit.js';
import type { Clock } from '../../src/clock.js';
import { systemClock } from '../../src/clock.js';
import type { NoticeOutcome } from '../../src/notices.js';
import type { ActingUser } from '../../src/permissions.js';
import type { DeployPlatform, OperationRef, OperationStatus } from '../../src/platform/port.js';
import type { MessageRef } from '../../src/progress.js';
import type { MessageView } from '../../src/views/types.js';
import { createWorld, HOUR, RecordingPoster, viewText, WaitingReporter, type World } from './world.js';

const alice: ActingUser = { surface: 'slack', userId: 'U0ALICE', displayName: 'Alice' };
const message: MessageRef = { surface: 'slack', channel: 'C0ALERTS', messageId: '1700000000.000100' };
let w: World | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

const explainedBy = (outcomes: readonly NoticeOutcome[]) =>
  outcomes.filter((o) => o.status === 'skipped' && o.reason.startsWith('moved by Switchyard job'));

/** The world's clock, `skewMs` off (another host's). */
function skewed(world: World, skewMs: number): Clock {
  return { now: () => world.clock.now() + skewMs, sleep: systemClock.sleep };
}

describe("a Switchyard job's own traffic move, with the worker's clock off the event source's", () => {
  it.each([
    { skewMs: 0, clocks: 'agreeing clocks' },
    { skewMs: 90_000, clocks: 'a worker 90 s ahead' },
    { skewMs: -2 * HOUR, clocks: 'a worker 2 h behind (beyond the 1 h window)' },
  ])('is explained by its job, and moves by hand after it are announced ($clocks)', async ({ skewMs }) => {
    w = await createWorld();
    const world = w;
    const n = await w.notices();
    const older = await w.pushAndBuild('production', [n]);
    const newer = await w.pushAndBuild('production', [n]);
    const planned = await w.flow.plan(alice, 'rollback', 'production');
    if (!planned.ok) throw new Error(planned.refusal.message);
    expect(planned.plan.target.id).toBe(older.id);
    await w.flow.attachMessage(planned.plan.id, message);
    expect((await w.flow.confirm(alice, planned.plan.id)).status).toBe('enqueued');
    const reporter = new WaitingReporter();
    await w.worker(reporter, { clock: skewed(world, skewMs) });
    const done = await reporter.waitFor((p) => p.outcome !== undefined);
    expect(done.outcome).toBe('succeeded');
    await w.queue.waitForEnd(done.jobId);
    await w.advance(0, [n]);

    const moved = () => w?.slack.titles().filter((t) => t.startsWith('Traffic on production moved')) ?? [];
    expect(explainedBy(n.outcomes)).toHaveLength(1);
    expect(moved()).toEqual([]);
    // Moves by hand are still moves outside Switchyard: back to the newer one, and the job's rollback
    // made again (its run explained one move, its own).
    await w.advance(1_000, [n]);
    await w.switchDirectly('promote', 'production', newer.id, [n]);
    await w.advance(1_000, [n]);
    await w.switchDirectly('rollback', 'production', older.id, [n]);
    expect(explainedBy(n.outcomes)).toHaveLength(1);
    expect(moved()).toEqual([
      `Traffic on production moved to ${newer.id}`,
      `Traffic on production moved to ${older.id}`,
    ]);
  });

  it('a job that ended failed, with a worker 90 s ahead: the platform completing its switch afterwards is announced as completing it', async () => {
    w = await createWorld();
    const world = w;
    const n = await w.notices();
    const older = await w.pushAndBuild('production', [n]);
    await w.pushAndBuild('production', [n]);
    // The older deployment goes to standby: rolling back to it reactivates it first.
    await w.advance(31 * 60_000, [n]);
    w.platform.maintain();
    const planned = await w.flow.plan(alice, 'rollback', 'production');
    if (!planned.ok) throw new Error(planned.refusal.message);
    await w.flow.attachMessage(planned.plan.id, message);
    expect((await w.flow.confirm(alice, planned.plan.id)).status).toBe('enqueued');
    // The worker stops waiting while the target still reactivates (the platform goes on).
    const platform = Object.assign(Object.create(world.platform) as DeployPlatform, {
      operation: async (ref: OperationRef): Promise<OperationStatus> => {
        const status = await world.platform.operation(ref);
        if (status.state === 'succeeded' || status.state === 'failed') return status;
        return {
          id: ref.id,
          state: 'failed',
          error: { code: 'operation_timeout', message: 'still reactivating', mayStillComplete: true },
          updatedAt: world.clock.now(),
        };
      },
    });
    const reporter = new WaitingReporter();
    await w.worker(reporter, { platform, clock: skewed(world, 90_000) });
    const done = await reporter.waitFor((p) => p.outcome !== undefined);
    expect(done.outcome).toBe('failed');
    await w.queue.waitForEnd(done.jobId);

    // The platform finishes the switch a second later (its `failed` entry reads 89 s after it).
    await w.advance(1_000, [n]);
    expect((await w.platform.snapshot('production')).environment.currentDeploymentId).toBe(older.id);
    expect(explainedBy(n.outcomes)).toEqual([]);
    const moved = w.slack.posts.filter((p) => p.view.title === `Traffic on production moved to ${older.id}`);
    expect(moved.map((p) => viewText(p.view))).toEqual([
      expect.stringContaining('This completes the rollback Switchyard reported failed'),
    ]);
  });

  // Redis's clock decides, not the entries' `at`: an audit that says when Redis wrote each entry.
  it('a start Redis wrote more than the window before the move explains nothing, whatever its `at` says', async () => {
    w = await createWorld();
    const world = w;
    let written: WrittenEntries = { entries: [], readAt: 0 };
    const entry = (jobId: string, at: number): AuditEntry => ({
      at,
      environment: 'production',
      action: 'rollback',
      event: 'started',
      jobId,
      targetId: 'dep_3hd7xa',
      actor: alice,
    });
    const redisNow = 1_900_000_000_000;
    const audit = {
      recent: async () => written.entries.map((e) => e.entry),
      recentWritten: async () => written,
    };
    const n = await w.notices({ audit });
    // Written 2 hours ago on Redis's clock, by a worker whose clock was 2 hours ahead: its `at` reads
    // as just before the move. A dashboard rollback to its target now is a move outside Switchyard.
    written = {
      entries: [{ entry: entry('sw_old', world.clock.now() - 5_000), writtenAt: redisNow - 2 * HOUR }],
      readAt: redisNow,
    };
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Dana (dashboard)');
    expect(explainedBy(n.outcomes)).toEqual([]);
    expect(w.slack.titles()).toEqual(['Traffic on production moved to dep_3hd7xa']);

    // Written 5 s before the read, by a worker 3 hours behind: it explains the move.
    await w.advance(1_000, [n]);
    await w.switchDirectly('promote', 'production', 'dep_4kq9wz', [n]);
    await w.advance(1_000, [n]);
    written = {
      entries: [{ entry: entry('sw_new', world.clock.now() - 3 * HOUR), writtenAt: redisNow + HOUR }],
      readAt: redisNow + HOUR + 5_000,
    };
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Alice');
    expect(explainedBy(n.outcomes).map((o) => o.status === 'skipped' && o.reason)).toEqual([
      'moved by Switchyard job sw_new (reported in its message)',
    ]);
    expect(w.slack.titles()).toEqual([
      'Traffic on production moved to dep_3hd7xa',
      'Traffic on production moved to dep_4kq9wz',
    ]);
  });
});

/** A recording poster whose first post hangs until `release` (a slow chat API). */
class HangingPoster extends RecordingPoster {
  private hang: (() => void) | undefined;
  private called: (() => void) | undefined;
  calls = 0;
  /** Resolves when the first post hangs. */
  readonly hanging = new Promise<void>((resolve) => {
    this.called = resolve;
  });

  override async post(channel: string, view: MessageView): Promise<MessageRef> {
    this.calls += 1;
    if (this.calls === 1) {
      await new Promise<void>((resolve) => {
        this.hang = resolve;
        this.called?.();
      });
    }
    return super.post(channel, view);
  }

  release(): void {
    this.hang?.();
  }
}

/** A recording poster whose first post fails with a fault that may pass (a 503). */
class OnceDownPoster extends RecordingPoster {
  private failed = false;
  override async post(channel: string, view: MessageView): Promise<MessageRef> {
    if (!this.failed) {
      this.failed = true;
      throw new Error('503 from the chat API');
    }
    return super.post(channel, view);
  }
}

describe('pending notice posts across replicas whose clocks disagree', () => {
  /** The world's clock, `skewMs` ahead, sleeping on it (another replica's host). */
  const ahead = (world: World, skewMs: number): Clock => ({
    now: () => world.clock.now() + skewMs,
    sleep: (ms, signal) => world.clock.sleep(ms, signal),
  });

  it("a replica 6 minutes ahead does not take another's post while it is being made (5 min lease)", async () => {
    w = await createWorld();
    const slow = new HangingPoster('slack', w.clock);
    const a = await w.notices({ posters: [slow] });
    const d = await w.pushAndBuild('production', []);
    await slow.hanging; // replica A is posting it: the chat API is slow to answer
    const other = new RecordingPoster('slack', w.clock);
    const b = await w.notices({ posters: [other], clock: ahead(w, 6 * 60_000), retryPollMs: 10_000 });
    // A minute of B's retry rounds: on A's clock the post is a minute into its 5-minute lease.
    for (let i = 0; i < 6; i++) await w.advance(10_000, [b]);
    expect(other.posts).toEqual([]);
    slow.release();
    await w.advance(10_000, [a, b]);
    await w.advance(3_600_000, [a, b]);
    expect([...slow.titles(), ...other.titles()]).toEqual([`${d.id} is live on production`]);
    expect(await w.redis.zcard(`${w.prefix}:notices:retries`)).toBe(0);
  });

  it('a replica 6 minutes ahead takes a hung post once its lease ended on the clock of the replica holding it', async () => {
    w = await createWorld();
    const slow = new HangingPoster('slack', w.clock);
    await w.notices({ posters: [slow] });
    const d = await w.pushAndBuild('production', []);
    await slow.hanging; // and never answers
    try {
      const other = new RecordingPoster('slack', w.clock);
      const b = await w.notices({ posters: [other], clock: ahead(w, 6 * 60_000), retryPollMs: 10_000 });
      await w.advance(4 * 60_000, [b]);
      expect(other.posts).toEqual([]);
      // The lease ends 5 minutes after A took it, on A's clock: B takes it then (a few rounds at most,
      // as A's clock is known to B by A's periodic word of it).
      for (let round = 0; round < 30 && other.posts.length === 0; round++) await w.advance(10_000, [b]);
      expect(other.titles()).toEqual([`${d.id} is live on production`]);
    } finally {
      slow.release();
    }
  });

  it("a replica 2 hours ahead does not drop another's retry as a post nobody made within an hour", async () => {
    w = await createWorld();
    const flaky = new OnceDownPoster('slack', w.clock);
    const a = await w.notices({ posters: [flaky], postRetryMs: 20_000 });
    const d = await w.pushAndBuild('production', [a]);
    expect(flaky.posts).toEqual([]); // the first attempt failed: a retry is due in 20 s
    const other = new RecordingPoster('slack', w.clock);
    const b = await w.notices({ posters: [other], clock: ahead(w, 2 * HOUR), retryPollMs: 10_000 });
    await w.advance(60_000, [a, b]);
    expect([...b.outcomes, ...a.outcomes].filter((o) => o.status === 'post_failed')).toEqual([]);
    expect([...flaky.titles(), ...other.titles()]).toEqual([`${d.id} is live on production`]);
  });
});
