import { describe, expect, it } from 'vitest';
import { correlate, describeGap } from '../../src/alerts/correlate.js';
import { ManualClock } from '../../src/clock.js';
import { MINUTE, productionSnapshot } from './helpers.js';

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
