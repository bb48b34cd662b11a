/**
 * Deployment event notices on the real LocalPlatform (ManualClock) and real Redis: ready and failed
 * builds, traffic moved outside Switchyard, standby/stopped when selected, per-environment off switch
 * and event selection, channels per surface (with the alert-channel fallback), and the console.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConsoleSurface } from '../../handlers/console/surface.js';
import { createMetrics } from '../../src/metrics.js';
import { createWorld, nth, RecordingPoster, RelayPlatform, viewText, type World } from './world.js';

let w: World | undefined;

afterEach(async () => {
  await w?.close();
  w = undefined;
});

describe('deployment notices', () => {
  it('announces a deployment that became ready and live, on the environment channel', async () => {
    w = await createWorld({ environments: { production: { channels: { slack: 'C0PROD' } } } });
    const n = await w.notices();
    const d = await w.pushAndBuild('production', [n], { message: 'Fix the cart total' });

    expect(w.slack.posts).toHaveLength(1);
    const post = nth(w.slack.posts, 0);
    expect(post.channel).toBe('C0PROD');
    expect(post.view.title).toBe(`${d.id} is live on production`);
    expect(post.view.kind).toBe('notice');
    expect(viewText(post.view)).toContain('Fix the cart total');
    // the automatic deploy's traffic move is not announced a second time
    expect(n.outcomes.find((o) => o.status === 'skipped' && o.event?.type === 'traffic.moved')).toMatchObject(
      {
        reason: expect.stringContaining('automatic deploy'),
      },
    );
  });

  it('announces a failed build (and counts it in the metrics)', async () => {
    w = await createWorld();
    const metrics = createMetrics();
    const n = await w.notices({ metrics });
    const d = await w.pushAndBuild('production', [n], { fail: true });

    expect(w.slack.titles()).toEqual([`${d.id} failed on production`]);
    const post = nth(w.slack.posts, 0);
    expect(post.channel).toBe('C0ALERTS');
    expect(post.view.tone).toBe('danger');
    expect(viewText(post.view)).toContain('Traffic did not move');
    const text = await metrics.registry.metrics();
    expect(text).toContain('switchyard_notices_total{surface="slack",kind="failed"} 1');
  });

  it('announces traffic moved outside Switchyard (a rollback on the dashboard), naming who did it', async () => {
    w = await createWorld();
    const n = await w.notices();
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n], 'Dana (dashboard)');

    expect(w.slack.titles()).toEqual(['Traffic on production moved to dep_3hd7xa']);
    const text = viewText(nth(w.slack.posts, 0).view);
    expect(text).toContain('outside Switchyard (a rollback by Dana (dashboard)');
    expect(text).toContain('before: dep_4kq9wz');
  });

  it('honours the per-environment off switch and the event selection', async () => {
    w = await createWorld({
      environments: {
        production: { notices: { enabled: false } },
        preview: { notices: { events: ['failed'] } },
      },
    });
    const n = await w.notices();
    await w.pushAndBuild('production', [n]);
    await w.pushAndBuild('production', [n], { fail: true });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const ok = await w.pushAndBuild('preview', [n], { message: 'feature' });
    const bad = await w.pushAndBuild('preview', [n], { fail: true });

    expect(w.slack.titles()).toEqual([`${bad.id} failed on preview`]);
    expect(n.outcomes).toContainEqual(
      expect.objectContaining({
        status: 'skipped',
        environment: 'production',
        reason: expect.stringContaining('off'),
      }),
    );
    expect(n.outcomes).toContainEqual(
      expect.objectContaining({ status: 'skipped', environment: 'preview', reason: 'ready is not selected' }),
    );
    expect(ok.id).not.toBe(bad.id);
  });

  it('announces standby and stopped only when selected', async () => {
    w = await createWorld({
      environments: { production: { notices: { events: ['standby', 'stopped'] } } },
    });
    const n = await w.notices();
    const first = await w.pushAndBuild('production', [n]);
    const second = await w.pushAndBuild('production', [n]);
    await w.platform.stop('dep_4kq9wz');
    await n.idle();
    // `first` stopped serving when `second` went live; after 30 minutes production puts it in standby
    await w.advance(31 * 60_000, [n]);
    expect(w.platform.maintain()).toEqual([first.id]);
    await n.idle();

    expect(w.slack.titles()).toEqual([
      'dep_4kq9wz was stopped on production',
      `${first.id} went to standby on production`,
    ]);
    expect(second.id).not.toBe(first.id);
  });

  it('posts to each surface on its own channel; a surface without a channel is skipped', async () => {
    w = await createWorld({
      environments: { production: { channels: { discord: '123456789012345678', console: 'ops' } } },
    });
    const discord = new RecordingPoster('discord', w.clock);
    const console = new RecordingPoster('console', w.clock);
    const n = await w.notices({ posters: [w.slack, discord, console] });
    await w.pushAndBuild('production', [n], { fail: true });
    await w.pushAndBuild('preview', [n], { fail: true });

    // Slack falls back to SLACK_ALERT_CHANNEL; Discord has a channel only for production.
    expect(w.slack.posts.map((p) => p.channel)).toEqual(['C0ALERTS', 'C0ALERTS']);
    expect(discord.posts.map((p) => p.channel)).toEqual(['123456789012345678']);
    expect(console.posts.map((p) => p.channel)).toEqual(['ops', 'console']);
  });

  it('shows the same notices in the console timeline', async () => {
    w = await createWorld();
    const surface = new ConsoleSurface({ clock: w.clock });
    const n = await w.notices({ posters: [surface.poster()] });
    const d = await w.pushAndBuild('production', [n], { fail: true });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);

    const titles = surface.timeline().map((e) => e.message?.title);
    expect(titles).toEqual([
      `${d.id} failed on production`,
      'Traffic on production moved to dep_3hd7xa',
      `${fresh.id} is ready but not live`,
    ]);
    const offer = surface.timeline()[2]?.message;
    expect(offer?.buttons.map((b) => b.label)).toEqual([`Promote ${fresh.id}`]);
    expect(offer?.buttons[0]?.actionId).toBe(`sy1:promote:production:${fresh.id}`);
  });

  it('does not announce the rollback target becoming ready again (reactivation) as a new deployment', async () => {
    w = await createWorld();
    const relay = new RelayPlatform(w.platform);
    // Without the readyAt rule, as on a platform that refreshes readyAt when it reactivates.
    const n = await w.notices({ platform: relay, reactivationGraceMs: Number.MAX_SAFE_INTEGER });
    const older = await w.pushAndBuild('production', [n]);
    await w.pushAndBuild('production', [n]);
    await w.switchDirectly('rollback', 'production', older.id, [n]);
    const before = w.slack.posts.length;
    relay.replay([
      { type: 'deployment.ready', environment: 'production', deploymentId: older.id, at: w.clock.now() },
    ]);
    await n.idle();
    expect(w.slack.posts).toHaveLength(before);
    expect(w.slack.titles().at(-1)).toBe(`Traffic on production moved to ${older.id}`);
    expect(
      n.outcomes.filter((o) => o.status === 'skipped').map((o) => o.status === 'skipped' && o.reason),
    ).toContain('the deployment production is rolled back to');
  });

  it('ignores a malformed platform event instead of crashing', async () => {
    w = await createWorld();
    const relay = new RelayPlatform(w.platform);
    const n = await w.notices({ platform: relay });
    relay.replay([{ type: 'deployment.ready', environment: '', deploymentId: 42 } as never]);
    await n.idle();
    const d = await w.pushAndBuild('production', [n], { fail: true });
    expect(w.slack.titles()).toEqual([`${d.id} failed on production`]);
  });
});
