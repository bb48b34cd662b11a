/**
 * Notices (src/notices.ts): behaviour no other test pinned down (each test here passes on
 * the real code and fails on one small mutation of it).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/audit.js';
import type { UpdateOptions } from '../../src/chat-sinks.js';
import type { Clock } from '../../src/clock.js';
import type { Deployment } from '../../src/domain/types.js';
import { lifecycleNoticeView, type NoticeJobs } from '../../src/notices.js';
import type { LocalPlatform } from '../../src/platform/local/platform.js';
import type { DeployPlatform, OperationRef, PlatformEvent } from '../../src/platform/port.js';
import type { MessageRef, Progress } from '../../src/progress.js';
import type { MessageView } from '../../src/views/types.js';
import {
  createWorld,
  FlakyPoster,
  nth,
  RecordingPoster,
  RelayPlatform,
  viewText,
  type World,
} from './world.js';

let w: World | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

/** The local platform, its events held back until `release()` (a notices service that fell behind). */
class HeldPlatform implements DeployPlatform {
  readonly name: string;
  private readonly held: PlatformEvent[] = [];
  private listener: ((e: PlatformEvent) => void) | undefined;
  private readonly off: () => void;

  constructor(private readonly inner: LocalPlatform) {
    this.name = inner.name;
    this.off = inner.subscribe((e) => this.held.push(e));
  }

  release(): void {
    for (const e of this.held.splice(0)) this.listener?.(e);
  }

  listEnvironments = () => this.inner.listEnvironments();
  snapshot = (env: string) => this.inner.snapshot(env);
  getDeployment = (id: string) => this.inner.getDeployment(id);
  routing = (env: string) => this.inner.routing(env);
  rollback = (r: Parameters<DeployPlatform['rollback']>[0]) => this.inner.rollback(r);
  promote = (r: Parameters<DeployPlatform['promote']>[0]) => this.inner.promote(r);
  operation = (ref: OperationRef) => this.inner.operation(ref);
  health = () => this.inner.health();
  subscribe(listener: (e: PlatformEvent) => void): () => void {
    this.listener = listener;
    return () => {
      this.listener = undefined;
    };
  }
  async close(): Promise<void> {
    this.off();
  }
}

const moved = (to: string, via: 'rollback' | 'promote', at: number, from = 'dep_4kq9wz'): PlatformEvent => ({
  type: 'traffic.moved',
  environment: 'production',
  from,
  to,
  via,
  at,
});

describe('ready but not live', () => {
  it('a retried "ready but not live" notice is dropped when the environment was rolled back again to the same deployment', async () => {
    // notices.ts prepare(): holdsWhile carries the period's `since` for a "ready but not live" notice.
    w = await createWorld();
    const flaky = new FlakyPoster('slack', w.clock, 0);
    const n = await w.notices({ posters: [flaky], postRetryMs: 5_000 });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    flaky.fails = 1;
    const fix = await w.pushAndBuild('production', [n]); // ready while rolled back: its post fails
    expect(flaky.titles().filter((t) => t.includes('ready but not live'))).toEqual([]);
    // the fix goes live, then production is rolled back again to the same deployment: a new period
    await w.switchDirectly('promote', 'production', fix.id, [n]);
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    await w.advance(10_000, [n]); // the retry is due
    expect(flaky.titles().filter((t) => t.includes('ready but not live'))).toEqual([]);
    expect(
      n.outcomes.some(
        (o) =>
          o.status === 'skipped' &&
          o.reason.includes('ready_not_live') &&
          o.reason.includes('rolled-back period'),
      ),
    ).toBe(true);
  });

  it('a deployment older than the one production is rolled back to is not offered for promote', async () => {
    // notices.ts prepare(): `rank(dep) >= rank(current)` skips it.
    w = await createWorld();
    const relay = new RelayPlatform(w.platform);
    const n = await w.notices({ platform: relay });
    const older = await w.pushAndBuild('production', [n]);
    const middle = await w.pushAndBuild('production', [n]);
    await w.pushAndBuild('production', [n]);
    await w.switchDirectly('rollback', 'production', middle.id, [n]);
    const before = w.slack.posts.length;
    // `older` reported ready (again) while production is rolled back to the newer `middle`
    relay.replay([
      {
        type: 'deployment.ready',
        environment: 'production',
        deploymentId: older.id,
        at: (older.readyAt ?? 0) + 1,
      },
    ]);
    await n.idle();
    expect(w.slack.posts.slice(before).map((p) => p.view.title)).toEqual([]);
    expect(n.outcomes).toContainEqual(
      expect.objectContaining({
        status: 'skipped',
        reason: 'older than the deployment production is rolled back to',
      }),
    );
  });
});

describe('traffic moved outside Switchyard', () => {
  it('names who moved it only from a history entry of the same kind (a later promote to the same deployment is someone else)', async () => {
    // notices.ts prepare(): `last.via === event.via`.
    w = await createWorld();
    const held = new HeldPlatform(w.platform);
    const n = await w.notices({ platform: held });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Dana (dashboard)');
    await w.switchDirectly('promote', 'production', 'dep_4kq9wz', [n], 'Alice (dashboard)');
    await w.switchDirectly('promote', 'production', 'dep_3hd7xa', [n], 'Carol (dashboard)');
    held.release(); // handled late: the newest history entry is Carol's promote to dep_3hd7xa
    await n.idle();
    const first = nth(w.slack.posts, 0);
    expect(first.view.title).toBe('Traffic on production moved to dep_3hd7xa');
    expect(viewText(first.view)).toContain('a rollback');
    expect(viewText(first.view)).not.toContain('Carol');
    await held.close();
  });

  it("a Switchyard job's start written more than a minute after the move does not explain it", async () => {
    // notices.ts switchyardJob(): `when(e) <= movedAt + 60_000`.
    w = await createWorld();
    const { relay, n } = await auditedNotices(w);
    const t = w.clock.now();
    await w.audit.append({
      at: t + 120_000,
      environment: 'production',
      action: 'rollback',
      event: 'started',
      jobId: 'sw_later',
      targetId: 'dep_3hd7xa',
    });
    relay.replay([moved('dep_3hd7xa', 'rollback', t)]);
    await n.idle();
    expect(w.slack.titles()).toEqual(['Traffic on production moved to dep_3hd7xa']);
  });

  it('a Switchyard promote to a deployment does not explain a rollback to it', async () => {
    // notices.ts switchyardJob(): `e.action === event.via`.
    w = await createWorld();
    const { relay, n } = await auditedNotices(w);
    const t = w.clock.now();
    await w.audit.append({
      at: t - 10_000,
      environment: 'production',
      action: 'promote',
      event: 'started',
      jobId: 'sw_promote',
      targetId: 'dep_3hd7xa',
    });
    relay.replay([moved('dep_3hd7xa', 'rollback', t)]);
    await n.idle();
    expect(w.slack.titles()).toEqual(['Traffic on production moved to dep_3hd7xa']);
  });

  it("a move at the very time its run ended failed is that run's own move (its message reports it): not announced", async () => {
    // notices.ts switchyardJob(): `when(end) < movedAt` (strictly after the failure only).
    w = await createWorld();
    const { relay, n } = await auditedNotices(w);
    const t = w.clock.now();
    const run = {
      environment: 'production',
      action: 'rollback',
      jobId: 'sw_failed',
      targetId: 'dep_3hd7xa',
    } as const;
    await w.audit.append({ ...run, at: t - 10_000, event: 'started' });
    await w.audit.append({ ...run, at: t, event: 'failed' });
    relay.replay([moved('dep_3hd7xa', 'rollback', t)]);
    await n.idle();
    expect(w.slack.posts).toEqual([]);
    expect(n.outcomes).toContainEqual(
      expect.objectContaining({
        status: 'skipped',
        reason: expect.stringContaining('moved by Switchyard job sw_failed'),
      }),
    );
  });

  it('of two runs that could explain a move, the one that started nearest before it does', async () => {
    // notices.ts switchyardJob(): explaining runs sorted by rank, best (nearest before the move) first.
    w = await createWorld();
    const { relay, n } = await auditedNotices(w);
    const t = w.clock.now();
    const run = {
      environment: 'production',
      action: 'rollback',
      targetId: 'dep_3hd7xa',
      event: 'started',
    } as const;
    await w.audit.append({ ...run, at: t - 30 * 60_000, jobId: 'sw_old' });
    await w.audit.append({ ...run, at: t - 5_000, jobId: 'sw_new' });
    relay.replay([moved('dep_3hd7xa', 'rollback', t)]);
    await n.idle();
    expect(w.slack.posts).toEqual([]);
    expect(n.outcomes).toContainEqual(
      expect.objectContaining({
        status: 'skipped',
        reason: expect.stringContaining('moved by Switchyard job sw_new'),
      }),
    );
  });

  it('a move completing a failed switch is credited to the run that failed last before it', async () => {
    // notices.ts switchyardJob(): late runs sorted by failedAt, newest first.
    w = await createWorld();
    const { relay, n } = await auditedNotices(w);
    const t = w.clock.now();
    const run = { environment: 'production', action: 'rollback', targetId: 'dep_3hd7xa' } as const;
    await w.audit.append({ ...run, at: t - 50 * 60_000, event: 'started', jobId: 'sw_first' });
    await w.audit.append({ ...run, at: t - 40 * 60_000, event: 'failed', jobId: 'sw_first' });
    await w.audit.append({ ...run, at: t - 20 * 60_000, event: 'started', jobId: 'sw_second' });
    await w.audit.append({ ...run, at: t - 10 * 60_000, event: 'failed', jobId: 'sw_second' });
    relay.replay([moved('dep_3hd7xa', 'rollback', t)]);
    await n.idle();
    expect(w.slack.titles()).toEqual(['Traffic on production moved to dep_3hd7xa']);
    const text = viewText(nth(w.slack.posts, 0).view);
    expect(text).toContain('This completes the rollback Switchyard reported failed');
    expect(text).toContain('(job sw_second)');
  });
});

const alice = { surface: 'slack', userId: 'U0ALICE', displayName: 'Alice' } as const;

/** A job's final progress: a rollback to `targetId` that ended failed at `at`. */
const failedProgress = (jobId: string, targetId: string, at: number): Progress => ({
  jobId,
  planId: `plan_${jobId}`,
  action: 'rollback',
  environment: 'production',
  targetId,
  fromId: 'dep_4kq9wz',
  requestedBy: alice,
  steps: [{ step: 'switching', state: 'failed', startedAt: at - 1_000, endedAt: at }],
  outcome: 'failed',
  code: 'platform_operation_failed',
  message: 'The platform may still complete it.',
  traffic: [],
  attempt: 1,
  updatedAt: at,
});

/** The audit of a Switchyard rollback to `targetId` (job `jobId`) that started and ended failed at `at`. */
const failedRun = (jobId: string, targetId: string, at: number): AuditEntry[] => {
  const e = { environment: 'production', action: 'rollback', jobId, targetId, actor: alice } as const;
  // newest first, as `recent` gives them
  return [
    { ...e, event: 'failed', at },
    { ...e, event: 'started', at: at - 1_000 },
  ];
};

/** A recording poster that keeps the options of each edit, and fails its first `failures` edits. */
class EditOptionsPoster extends RecordingPoster {
  readonly options: (UpdateOptions | undefined)[] = [];
  failures = 0;
  override async update(ref: MessageRef, view: MessageView, opts?: UpdateOptions): Promise<void> {
    this.options.push(opts);
    if (this.failures > 0) {
      this.failures -= 1;
      throw new Error('chat API unreachable');
    }
    return super.update(ref, view);
  }
  retryable(): boolean {
    return true;
  }
}

describe("a failed job's messages updated when the platform completes its switch", () => {
  it('a job whose final progress is a later failed run (it ran again and failed again) is not updated', async () => {
    // notices.ts jobUpdates(): `progress.updatedAt > late.failedAt`.
    w = await createWorld();
    const t = w.clock.now();
    const entries = failedRun('sw_a', 'dep_3hd7xa', t - 5_000);
    const message: MessageRef = { surface: 'slack', channel: 'C0ALERTS', messageId: '1700000000.000500' };
    // the job ran again after that failure, and failed again (a minute later): its messages show that run
    const jobs: NoticeJobs = {
      progress: async () => failedProgress('sw_a', 'dep_3hd7xa', t + 60_000),
      messages: async () => [message],
    };
    const n = await w.notices({ audit: { recent: async () => entries }, jobs });
    await w.advance(1_000, [n]);
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Dana (dashboard)');
    expect(w.slack.titles()).toEqual(['Traffic on production moved to dep_3hd7xa']);
    expect(viewText(nth(w.slack.posts, 0).view)).toContain('still shows its failure');
    expect(w.slack.updates).toEqual([]);
    expect(n.outcomes.filter((o) => o.status === 'job_updated')).toEqual([]);
  });

  it("the update of the job's message supersedes the job's final progress on its surface", async () => {
    // notices.ts editTo(): `supersedesProgress` for a job update (else the surface's edit lane drops it).
    w = await createWorld();
    const t = w.clock.now();
    const entries = failedRun('sw_a', 'dep_3hd7xa', t - 5_000);
    const message: MessageRef = { surface: 'slack', channel: 'C0ALERTS', messageId: '1700000000.000600' };
    const jobs: NoticeJobs = {
      progress: async () => failedProgress('sw_a', 'dep_3hd7xa', t - 5_000),
      messages: async () => [message],
    };
    const poster = new EditOptionsPoster('slack', w.clock);
    const n = await w.notices({
      audit: { recent: async () => entries },
      jobs,
      posters: [poster],
      jobUpdateAgainMs: 0,
    });
    await w.advance(1_000, [n]);
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Dana (dashboard)');
    expect(poster.updates.map((u) => u.ref)).toEqual([message]);
    expect(poster.options).toEqual([{ supersedesProgress: { at: w.clock.now() } }]);
  });

  it('an update for a surface the claiming replica cannot post to is made by a replica that can, at its next retry round', async () => {
    // notices.ts keep(): an entry for a surface without a poster here is due at once, not a lease later.
    w = await createWorld({ env: { DISCORD_ALERT_CHANNEL: '1200000000000000001' } });
    const t = w.clock.now();
    const entries = failedRun('sw_a', 'dep_3hd7xa', t - 5_000);
    const message: MessageRef = {
      surface: 'discord',
      channel: '1200000000000000001',
      messageId: '1300000000000000001',
    };
    const jobs: NoticeJobs = {
      progress: async () => failedProgress('sw_a', 'dep_3hd7xa', t - 5_000),
      messages: async () => [message],
    };
    const audit = { recent: async () => entries };
    // replica A: Slack only, receives the platform's events; replica B: Discord only, receives none
    const a = await w.notices({ audit, jobs, jobUpdateAgainMs: 0 });
    const held = new HeldPlatform(w.platform);
    const discord = new RecordingPoster('discord', w.clock);
    const b = await w.notices({
      audit,
      jobs,
      jobUpdateAgainMs: 0,
      platform: held,
      posters: [discord],
      retryPollMs: 30_000,
    });
    await w.advance(1_000, [a, b]);
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [a, b], 'Dana (dashboard)');
    expect(w.slack.titles()).toEqual(['Traffic on production moved to dep_3hd7xa']);
    // B's retry rounds (every 30 s) judge A's entry on A's clock as A last gave it: a round or two
    // at most, well within the 5-minute lease a post of A's own would hold
    for (let i = 0; i < 4 && discord.updates.length === 0; i++) await w.advance(30_000, [a, b]);
    expect(discord.updates.map((u) => u.ref)).toEqual([message]);
    expect(b.outcomes.filter((o) => o.status === 'job_updated')).toHaveLength(1);
    await held.close();
  });

  it('an update taken from a replica whose clock is 2 hours behind is retried, not dropped as an hour old', async () => {
    // notices.ts retryPage(): a taken entry's `since` is moved onto the taker's clock.
    w = await createWorld({ env: { DISCORD_ALERT_CHANNEL: '1200000000000000001' } });
    const world = w;
    const t = w.clock.now();
    const entries = failedRun('sw_a', 'dep_3hd7xa', t - 5_000);
    const message: MessageRef = {
      surface: 'discord',
      channel: '1200000000000000001',
      messageId: '1300000000000000002',
    };
    const jobs: NoticeJobs = {
      progress: async () => failedProgress('sw_a', 'dep_3hd7xa', t - 5_000),
      messages: async () => [message],
    };
    const audit = { recent: async () => entries };
    const a = await w.notices({ audit, jobs, jobUpdateAgainMs: 0 });
    const held = new HeldPlatform(w.platform);
    const discord = new EditOptionsPoster('discord', w.clock);
    discord.failures = 1;
    const ahead: Clock = {
      now: () => world.clock.now() + 2 * 3_600_000,
      sleep: (ms, signal) => world.clock.sleep(ms, signal),
    };
    const b = await w.notices({
      audit,
      jobs,
      jobUpdateAgainMs: 0,
      platform: held,
      posters: [discord],
      clock: ahead,
      retryPollMs: 10_000,
      postRetryMs: 5_000,
    });
    await w.advance(1_000, [a, b]);
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [a, b], 'Dana (dashboard)');
    for (let i = 0; i < 12 && discord.updates.length === 0; i++) await w.advance(10_000, [a, b]);
    expect(discord.options).toHaveLength(2); // failed once (a fault that may pass), then made
    expect(discord.updates.map((u) => u.ref)).toEqual([message]);
    expect([...a.outcomes, ...b.outcomes].filter((o) => o.status === 'job_update_failed')).toEqual([]);
    await held.close();
  });
});

/** A recording poster whose next post, once armed (`hangNext`), hangs until `release()` (a slow chat API). */
class HangingPoster extends RecordingPoster {
  private armed = false;
  private hang: (() => void) | undefined;
  private called: (() => void) | undefined;
  /** Resolves once the armed post hangs. */
  hanging: Promise<void> = Promise.resolve();
  hangNext(): void {
    this.armed = true;
    this.hanging = new Promise<void>((resolve) => {
      this.called = resolve;
    });
  }
  override async post(channel: string, view: MessageView): Promise<MessageRef> {
    if (this.armed) {
      this.armed = false;
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

describe('closing the messages of a rolled-back period', () => {
  it('a "ready but not live" notice whose period ended (automatic deploys resumed) while it was being posted is closed at once', async () => {
    // notices.ts post(): remember(..., wake) wakes the environment's check when the period is newly listed.
    w = await createWorld();
    const slow = new HangingPoster('slack', w.clock);
    const n = await w.notices({ posters: [slow] });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    slow.hangNext();
    const fix = await w.pushAndBuild('production', []);
    await slow.hanging; // the "ready but not live" notice is being posted
    // automatic deploys resumed meanwhile (a promote of the deployment rolled back to: no traffic moves, no event)
    await w.switchDirectly('promote', 'production', 'dep_3hd7xa', []);
    expect((await w.platform.snapshot('production')).environment.rolledBack).toBe(false);
    slow.release();
    await n.idle();
    await n.idle();
    const post = nth(
      slow.posts.filter((p) => p.view.title === `${fix.id} is ready but not live`),
      0,
    );
    const edits = slow.editsOf(post);
    expect(edits).toHaveLength(1);
    expect(nth(edits, 0).buttons).toEqual([]);
  });

  it("rolled back again to the same deployment between two checks: the first period's notices close", async () => {
    // notices.ts closeEnded(): the current period is the same deployment *and* the same since.
    w = await createWorld();
    const held = new HeldPlatform(w.platform);
    const n = await w.notices({ platform: held });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    held.release();
    await n.idle();
    const fix = await w.pushAndBuild('production', [n]);
    held.release();
    await n.idle();
    const post = nth(
      w.slack.posts.filter((p) => p.view.title === `${fix.id} is ready but not live`),
      0,
    );
    await w.advance(60_000, [n]);
    // the fix is promoted, then production rolled back again to the same deployment; seen together
    await w.switchDirectly('promote', 'production', fix.id, [n]);
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    held.release();
    await n.idle();
    await n.idle();
    const edits = w.slack.editsOf(post);
    expect(edits).toHaveLength(1);
    expect(nth(edits, 0).title).toContain(`${fix.id} went live on production`);
    await held.close();
  });

  it('a resume closed from the history is not credited to whoever resumed through Switchyard before the period began', async () => {
    // notices.ts audited(): only `succeeded` entries at or after the period's start.
    w = await createWorld();
    const n = await w.notices();
    // an earlier rolled-back period, resumed through Switchyard by Alice an hour ago
    await w.audit.append({
      at: w.clock.now() - 3_600_000,
      environment: 'production',
      action: 'promote',
      event: 'succeeded',
      actor: alice,
      jobId: 'sw_resume',
      targetId: 'dep_3hd7xa',
    });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Dana (dashboard)');
    const fix = await w.pushAndBuild('production', [n]);
    const post = nth(
      w.slack.posts.filter((p) => p.view.title === `${fix.id} is ready but not live`),
      0,
    );
    // resumed on the dashboard (no audit entry), then a push goes live by an automatic deploy
    await w.switchDirectly('promote', 'production', 'dep_3hd7xa', [n], 'Dana (dashboard)');
    await w.pushAndBuild('production', [n]);
    const edits = w.slack.editsOf(post);
    expect(edits).toHaveLength(1);
    const text = viewText(nth(edits, 0));
    expect(text).toContain('automatic deploys resumed');
    expect(text).not.toContain('Alice');
  });

  it('a closing edit for a surface the closing replica cannot post to is made by a replica that can, at its next retry round', async () => {
    // notices.ts closePeriod(): an edit for a surface without a poster here is due at once, not a lease later.
    w = await createWorld({ env: { DISCORD_ALERT_CHANNEL: '1200000000000000001' } });
    const ha = new HeldPlatform(w.platform);
    const hb = new HeldPlatform(w.platform);
    // replica A: Slack only; replica B: Slack and Discord
    const a = await w.notices({ platform: ha });
    const bSlack = new RecordingPoster('slack', w.clock);
    const discord = new RecordingPoster('discord', w.clock);
    const b = await w.notices({ platform: hb, posters: [bSlack, discord], retryPollMs: 30_000 });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [a, b]);
    hb.release();
    await b.idle();
    const fix = await w.pushAndBuild('production', [a, b]);
    hb.release(); // B alone sees the fix become ready: it posts the notice on both surfaces
    await b.idle();
    const offer = nth(
      discord.posts.filter((p) => p.view.title === `${fix.id} is ready but not live`),
      0,
    );
    await w.switchDirectly('promote', 'production', fix.id, [a, b]);
    ha.release(); // A alone sees the promote: it closes the period
    await w.advance(0, [a, b]);
    expect(bSlack.updates.length + w.slack.updates.length).toBe(1); // the Slack message, by A
    // B's retry rounds (every 30 s) judge A's entry on A's clock as A last gave it: a round or two
    // at most, well within the 5-minute lease an edit for A's own surface holds
    for (let i = 0; i < 4 && discord.updates.length === 0; i++) await w.advance(30_000, [a, b]);
    expect(discord.editsOf(offer)).toHaveLength(1);
    await ha.close();
    await hb.close();
  });
});

describe('traffic moves matched on the time they were seen', () => {
  it("a move that reached the service 3 minutes late is placed 3 minutes back: a job's start written just now does not explain it", async () => {
    // notices.ts auditAround(): `movedAt: read.readAt - age`.
    w = await createWorld();
    const relay = new RelayPlatform(w.platform);
    const n = await w.notices({ platform: relay });
    await w.audit.append({
      at: w.clock.now(),
      environment: 'production',
      action: 'rollback',
      event: 'started',
      jobId: 'sw_now',
      targetId: 'dep_3hd7xa',
    });
    relay.replay([moved('dep_3hd7xa', 'rollback', w.clock.now() - 180_000)]);
    await n.idle();
    expect(w.slack.titles()).toEqual(['Traffic on production moved to dep_3hd7xa']);
  });
});

/**
 * Notices of `world` that read its audit log's recent entries (the Switchyard job matching by
 * `recent`), on a relay to replay platform events with.
 */
async function auditedNotices(world: World) {
  const relay = new RelayPlatform(world.platform);
  const n = await world.notices({
    platform: relay,
    audit: { recent: (env, limit) => world.audit.recent(env, limit) },
  });
  return { world, relay, n };
}

describe('standby notices', () => {
  it('say what is true by environment and place: a current preview deployment keeps its domains and wakes; only one not current can be rolled back to', async () => {
    // notices.ts standbySpans(): the notice read the same for every deployment ("it serves nothing
    // now; a rollback to it still works"), wrong for preview's current deployment.
    w = await createWorld({
      environments: {
        production: { notices: { events: ['standby'] } },
        preview: { notices: { events: ['standby'] } },
      },
    });
    const n = await w.notices();
    const preview = await w.pushAndBuild('preview', [n], { branch: 'feature-search' });
    await w.pushAndBuild('production', [n]); // dep_4kq9wz stops serving
    // Six hours without a request: preview's deployments go idle; dep_4kq9wz is past its 30 minutes.
    await w.advance(6 * 3_600_000 + 60_000, [n]);
    expect(w.platform.maintain().sort()).toEqual(['dep_4kq9wz', 'dep_p2fe8r', preview.id].sort());
    await n.idle();
    const text = (title: string) => {
      const post = w?.slack.posts.find((p) => p.view.title === title);
      if (post === undefined) throw new Error(`no notice "${title}"`);
      return viewText(post.view);
    };
    const own = (id: string) => `${id.replace(/_/g, '-')}.acme.localhost`;

    const current = text(`${preview.id} went to standby on preview`);
    expect(current).toContain(
      `but it still holds its domains preview.acme.localhost, feature-search.acme.localhost, ${own(preview.id)}: the next request to one of them wakes it`,
    );
    expect(current).not.toContain('rollback');
    expect(current).not.toContain('serves nothing');

    const older = text('dep_p2fe8r went to standby on preview');
    expect(older).toContain(
      `but it still holds its domain ${own('dep_p2fe8r')}: the next request to it wakes it`,
    );
    expect(older).toContain('A rollback to it still works but takes longer (it is reactivated first).');

    expect(text('dep_4kq9wz went to standby on production')).toContain(
      'in standby: it serves nothing now. A rollback to it still works but takes longer (it is reactivated first).',
    );
  });

  it('read the platform once (the deployment is in the snapshot); the deployment alone only when the snapshot fails', async () => {
    // notices.ts prepare(): a standby notice read the deployment, then the snapshot that lists it too.
    w = await createWorld({ environments: { production: { notices: { events: ['standby'] } } } });
    const inner = w.platform;
    const reads: string[] = [];
    let snapshotFails = false;
    const counted: DeployPlatform = new Proxy(inner, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if ((prop !== 'snapshot' && prop !== 'getDeployment') || typeof value !== 'function') return value;
        return (arg: string) => {
          reads.push(`${prop} ${arg}`);
          if (prop === 'snapshot' && snapshotFails) return Promise.reject(new Error('platform unavailable'));
          return value.call(target, arg);
        };
      },
    });
    const n = await w.notices({ platform: counted });
    const second = await w.pushAndBuild('production', [n]); // dep_4kq9wz stops serving
    await w.advance(31 * 60_000, [n]);
    reads.length = 0;
    expect(w.platform.maintain()).toEqual(['dep_4kq9wz']);
    await n.idle();
    expect(reads).toEqual(['snapshot production']);
    expect(viewText(nth(w.slack.posts, w.slack.posts.length - 1).view)).toBe(
      'dep_4kq9wz went to standby on production\ndep_4kq9wz (0a0da9f main: Switch checkout to the new pricing API — Priya Raman) is in standby: it serves nothing now. A rollback to it still works but takes longer (it is reactivated first).',
    );

    await w.pushAndBuild('production', [n]); // `second` stops serving
    await w.advance(31 * 60_000, [n]);
    reads.length = 0;
    snapshotFails = true;
    expect(w.platform.maintain()).toEqual([second.id]);
    await n.idle();
    expect(reads).toEqual(['snapshot production', `getDeployment ${second.id}`]);
    const alone = await inner.getDeployment(second.id);
    if (alone === undefined) throw new Error(`no ${second.id}`);
    expect(nth(w.slack.posts, w.slack.posts.length - 1).view).toEqual(
      lifecycleNoticeView('deployment.standby', 'production', alone),
    );
  });

  it('name at most 5 domains and how many more; without the environment read, promise nothing it may not keep', () => {
    const dep = { id: 'dep_x' };
    const domains = Array.from({ length: 7 }, (_, k) => `d${k}.example.com`);
    const many = lifecycleNoticeView('deployment.standby', 'preview', dep as Deployment, {
      kind: 'preview',
      current: true,
      domains,
    });
    expect(viewText(many)).toContain(
      'its domains d0.example.com, d1.example.com, d2.example.com, d3.example.com, d4.example.com, …and 2 more: the next request',
    );
    const unknown = viewText(lifecycleNoticeView('deployment.standby', 'preview', dep as Deployment));
    expect(unknown).toBe(
      'dep_x went to standby on preview\ndep_x is in standby: it takes longer to serve again (reactivation).',
    );
  });
});
