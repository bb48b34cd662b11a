import { afterEach, describe, expect, it } from 'vitest';
import { correlate, describeGap } from '../../src/alerts/correlate.js';
import { ManualClock } from '../../src/clock.js';
import { defaultRollbackTarget } from '../../src/domain/plan.js';
import { MINUTE, productionSnapshot, unkeyAfterAutoDeploy, vercelAfterAutoDeploy } from './helpers.js';

/** What the tests on the fake servers started, closed after each test. */
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

describe('correlate', () => {
  it('suggests rolling back the deployment that went live 7 minutes before the alert', () => {
    const clock = new ManualClock();
    const snapshot = productionSnapshot(clock.now(), 7 * MINUTE);
    const c = correlate(snapshot, clock.now());
    expect(c.kind).toBe('suggest');
    if (c.kind !== 'suggest') return;
    expect(c.culprit.id).toBe('dep_c');
    expect(c.target.id).toBe('dep_b');
    expect(c.minutesBefore).toBe(7);
    expect(c.sentence).toBe('dep_c went live 7 minutes before this alert started — roll back to dep_b?');
  });

  it('uses the alert start, not the time the alert arrives', () => {
    const clock = new ManualClock();
    const snapshot = productionSnapshot(clock.now(), 7 * MINUTE);
    const alertStarted = clock.now() - 6 * MINUTE;
    void clock.advance(90 * MINUTE);
    const c = correlate(snapshot, alertStarted);
    expect(c.kind === 'suggest' && c.sentence).toBe(
      'dep_c went live 1 minute before this alert started — roll back to dep_b?',
    );
  });

  it('picks the deployment live before the alert, ignoring later ones', () => {
    const clock = new ManualClock();
    const snapshot = productionSnapshot(clock.now(), 7 * MINUTE);
    // The alert started before dep_c went live: dep_b was live then, but traffic has moved since.
    const c = correlate(snapshot, clock.now() - 30 * MINUTE);
    expect(c.kind).toBe('none');
    if (c.kind === 'none') expect(c.reason).toContain('dep_b went live');
  });

  it('stays within the window boundary and goes outside just past it', () => {
    const now = new ManualClock().now();
    expect(correlate(productionSnapshot(now, 60 * MINUTE), now).kind).toBe('suggest');
    const outside = correlate(productionSnapshot(now, 61 * MINUTE), now);
    expect(outside.kind).toBe('outside_window');
    if (outside.kind === 'outside_window') {
      expect(outside.sentence).toBe(
        'dep_c went live 61 minutes before this alert started, outside the 60 minutes correlation window; no rollback suggested.',
      );
    }
    expect(correlate(productionSnapshot(now, 61 * MINUTE), now, 2 * 60 * MINUTE).kind).toBe('suggest');
  });

  it('says why when nothing went live before the alert or there is no target', () => {
    const now = new ManualClock().now();
    const snap = productionSnapshot(now);
    expect(correlate(snap, now - 10_000 * MINUTE)).toMatchObject({ kind: 'none' });
    const onlyOne = {
      ...snap,
      deployments: snap.deployments.filter((d) => d.id === 'dep_c'),
      liveHistory: snap.liveHistory.filter((e) => e.deploymentId === 'dep_c'),
    };
    const c = correlate(onlyOne, now);
    expect(c.kind).toBe('none');
    if (c.kind === 'none') expect(c.reason).toContain('no ready or standby deployment older than dep_c');
  });

  it('suggests nothing for an alert after a rollback: the deployment rolled back to is no new release', () => {
    const clock = new ManualClock();
    const base = productionSnapshot(clock.now(), 40 * MINUTE);
    // dep_c went bad, production was rolled back to dep_b 2 minutes ago, and an alert fires now.
    const snapshot = {
      ...base,
      environment: { ...base.environment, currentDeploymentId: 'dep_b', rolledBack: true },
      liveHistory: [
        ...base.liveHistory,
        { deploymentId: 'dep_b', since: clock.now() - 2 * MINUTE, via: 'rollback' as const },
      ],
    };
    const c = correlate(snapshot, clock.now());
    expect(c.kind).toBe('none');
    if (c.kind !== 'none') return;
    expect(c.reason).toBe(
      'production was rolled back to dep_b 2 minutes before this alert started; no further rollback is suggested (if dep_b is bad too, /rollback production <deployment>).',
    );
  });

  it('describes gaps', () => {
    expect(describeGap(30_000)).toBe('less than a minute');
    expect(describeGap(MINUTE)).toBe('1 minute');
    expect(describeGap(185 * MINUTE)).toBe('3 hours 5 minutes');
  });
});

/**
 * Unkey and Vercel keep no live history that their APIs expose: correlation works from what the snapshot
 * derives (`derivedLive`, src/platform/live-history.ts), on snapshots read from the fake servers.
 */
describe('correlate on Unkey (no live history)', () => {
  const KEY = 'unkey_3ZcorrelateTestRootKey012345678';
  const prod = { project: 'acme', app: 'api', environment: 'production' } as const;

  /** dep_0001 live since long ago; dep_0002 pushed, built for 3 minutes, live `liveAgoMs` before now. */
  function unkey(liveAgoMs = 7 * MINUTE) {
    return unkeyAfterAutoDeploy(closers, { key: KEY, switchDelayMs: 0, liveAgoMs });
  }

  it('suggests rolling back a deployment that went live by an automatic deploy before the alert', async () => {
    const { clock, platform, d1, d2 } = await unkey(7 * MINUTE);
    const snap = await platform.snapshot('production');
    expect(snap.liveHistory).toEqual([]);
    const c = correlate(snap, clock.now());
    expect(c).toMatchObject({ kind: 'suggest', culprit: { id: d2 }, target: { id: d1 }, minutesBefore: 7 });
    // Unkey says when a deployment was created and last updated, not when it became ready: "at least".
    expect(c.kind === 'suggest' && c.sentence).toBe(
      `${d2} went live at least 7 minutes before this alert started — roll back to ${d1}?`,
    );
    // The suggestion's target is the one /rollback production picks.
    expect(snap.deployments.find((d) => d.id === d2)?.status).toBe('ready');
    const target = defaultRollbackTarget(snap);
    expect(target.ok && target.value.id).toBe(d1);
  });

  it('says what Unkey does not tell while production is rolled back', async () => {
    const { clock, platform, d1 } = await unkey();
    await platform.rollback({ environment: 'production', targetId: d1 });
    await clock.advance(2 * MINUTE);
    const snap = await platform.snapshot('production');
    expect(snap.environment).toMatchObject({ rolledBack: true, currentDeploymentId: d1 });
    expect(correlate(snap, clock.now())).toEqual({
      kind: 'none',
      reason: `Unkey does not say when ${d1} went live (production is rolled back to it, and Unkey does not say since when), so no rollback is suggested; /rollback production if one is needed.`,
    });
  });

  it('after a rollback and a promote of a newer fix, suggests going back to the deployment live before the fix, not the one rolled back from', async () => {
    const { clock, server, platform, d1, d2 } = await unkey();
    await platform.rollback({ environment: 'production', targetId: d1 });
    await clock.advance(MINUTE);
    const fix = server.push({ ...prod, branch: 'main' });
    await clock.advance(MINUTE);
    await platform.promote({ environment: 'production', targetId: fix });
    await clock.advance(5 * MINUTE);
    const snap = await platform.snapshot('production');
    expect(snap.environment).toMatchObject({ rolledBack: false, currentDeploymentId: fix });
    // /rollback production would go to d2, the deployment rolled back from: no suggestion may name it.
    const target = defaultRollbackTarget(snap);
    expect(target.ok && target.value.id).toBe(d2);
    expect(correlate(snap, clock.now())).toEqual({
      kind: 'none',
      reason: `Unkey does not say when ${fix} went live (${d2} and ${d1} still run, as they do after automatic deploys within the last 30 minutes and after a rollback and a promote, which Unkey's state does not tell apart, so it may have been promoted), so no rollback is suggested; /rollback production if one is needed.`,
    });
    // Once Unkey stopped d1 (30 minutes after the promote left it), d2 still runs: no automatic deploy
    // leaves that, so the fix was promoted or rolled back to.
    await clock.advance(30 * MINUTE + 2 * MINUTE);
    const later = await platform.snapshot('production');
    expect(later.deployments.find((d) => d.id === d1)?.status).toBe('stopped');
    const c = correlate(later, clock.now() - MINUTE);
    expect(c.kind).toBe('none');
    if (c.kind === 'none') {
      expect(c.reason).toBe(
        `Unkey does not say when ${fix} went live (${d2} still runs, though an automatic deploy has it stopped 30 minutes after replacing it, so it was promoted or rolled back to), so no rollback is suggested; /rollback production if one is needed.`,
      );
    }
  });

  it('never makes a deployment touched again long after it went live look freshly deployed', async () => {
    const { clock, server, platform, d2 } = await unkey(3 * 60 * MINUTE);
    // Unkey writes `updatedAt` again (e.g. a suspended workspace resumed): it now reads 5 minutes ago.
    server.setStatus(d2, 'ready');
    await clock.advance(5 * MINUTE);
    const snap = await platform.snapshot('production');
    expect(snap.deployments.find((d) => d.id === d2)?.readyAt).toBe(clock.now() - 5 * MINUTE);
    const c = correlate(snap, clock.now());
    expect(c.kind).toBe('none');
    if (c.kind === 'none') {
      expect(c.reason).toBe(
        `Unkey does not say exactly when ${d2} went live (5 minutes to 3 hours 8 minutes before this alert started), so it may be outside the 60 minutes correlation window; no rollback is suggested; /rollback production if one is needed.`,
      );
    }
  });
});

describe('correlate on Vercel (no live history)', () => {
  const TOKEN = 'vcp_correlateTestToken0123456789ab';

  /** d1 live since long ago; d2 built for 3 minutes, live `liveAgoMs` before now. */
  function vercel(liveAgoMs = 7 * MINUTE) {
    return vercelAfterAutoDeploy(closers, { token: TOKEN, aliasJobReads: 1, liveAgoMs });
  }

  it('suggests rolling back a deployment that went live by an automatic deploy before the alert', async () => {
    const { clock, platform, d1, d2 } = await vercel(7 * MINUTE);
    const snap = await platform.snapshot('production');
    expect(snap.liveHistory).toEqual([]);
    const c = correlate(snap, clock.now());
    expect(c).toMatchObject({ kind: 'suggest', culprit: { id: d2 }, target: { id: d1 }, minutesBefore: 7 });
    // Vercel says exactly when a deployment became ready.
    expect(c.kind === 'suggest' && c.sentence).toBe(
      `${d2} went live 7 minutes before this alert started — roll back to ${d1}?`,
    );
    expect(snap.deployments.find((d) => d.id === d2)?.status).toBe('ready');
    const target = defaultRollbackTarget(snap);
    expect(target.ok && target.value.id).toBe(d1);
    expect(correlate(snap, clock.now() + 54 * MINUTE).kind).toBe('outside_window');
  });

  it('tells a rollback from its alias job, and suggests no further rollback', async () => {
    const { clock, platform, d1 } = await vercel();
    await platform.rollback({ environment: 'production', targetId: d1 });
    await clock.advance(2 * MINUTE);
    const snap = await platform.snapshot('production');
    expect(snap.environment).toMatchObject({ rolledBack: true, currentDeploymentId: d1 });
    expect(correlate(snap, clock.now())).toEqual({
      kind: 'none',
      reason: `production was rolled back to ${d1} 2 minutes before this alert started; no further rollback is suggested (if ${d1} is bad too, /rollback production <deployment>).`,
    });
  });

  it('after a rollback and a promote of a newer fix, suggests going back to the deployment live before the fix, not the one rolled back from', async () => {
    const { clock, server, platform, projectId, d1, d2 } = await vercel();
    await platform.rollback({ environment: 'production', targetId: d1 });
    await platform.snapshot('production'); // the alias job finishes on the next project read
    await clock.advance(MINUTE);
    const fix = server.deploy({ project: projectId });
    await clock.advance(MINUTE);
    await platform.promote({ environment: 'production', targetId: fix });
    await platform.snapshot('production');
    await clock.advance(10 * MINUTE);
    const snap = await platform.snapshot('production');
    expect(snap.environment).toMatchObject({ rolledBack: false, currentDeploymentId: fix });
    // Vercel's last alias job says d1 was live before the fix: /rollback goes back to it, as does the
    // suggestion (before, both named d2, the newest older deployment, which was rolled back from).
    expect(snap.deployments.find((d) => d.id === d2)?.status).toBe('ready');
    const target = defaultRollbackTarget(snap);
    expect(target.ok && target.value.id).toBe(d1);
    expect(correlate(snap, clock.now())).toMatchObject({
      kind: 'suggest',
      culprit: { id: fix },
      target: { id: d1 },
      sentence: `${fix} went live at least 7 minutes before this alert started — roll back to ${d1}?`,
    });
  });

  it('knows nothing of a deployment rolled back to once automatic deploys resume', async () => {
    const { clock, platform, d1 } = await vercel();
    await platform.rollback({ environment: 'production', targetId: d1 });
    await platform.snapshot('production');
    await clock.advance(MINUTE);
    // Resuming automatic deploys promotes the current deployment: a switch that moves nothing.
    await platform.promote({ environment: 'production', targetId: d1 });
    await platform.snapshot('production');
    await clock.advance(MINUTE);
    const snap = await platform.snapshot('production');
    expect(snap.environment).toMatchObject({ rolledBack: false, currentDeploymentId: d1 });
    expect(correlate(snap, clock.now())).toEqual({
      kind: 'none',
      reason: `Vercel does not say when ${d1} went live (it was rolled back or promoted to, and Vercel does not say when), so no rollback is suggested; /rollback production if one is needed.`,
    });
  });
});
