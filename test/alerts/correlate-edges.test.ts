/**
 * Which deployment an alert is blamed on: boundaries and rules of src/alerts/correlate.ts no other test
 * of the area pinned. Each test fails on one small change the area's tests
 * let through.
 */
import { describe, expect, it } from 'vitest';
import { correlate } from '../../src/alerts/correlate.js';
import type { DerivedLive, EnvironmentSnapshot, LiveEntry } from '../../src/domain/types.js';
import { MINUTE, productionSnapshot } from '../alerts/helpers.js';

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const WINDOW = 60 * MINUTE;

/** productionSnapshot (dep_c current, live 7 minutes before NOW) with another live history. */
function withHistory(history: LiveEntry[]): EnvironmentSnapshot {
  return { ...productionSnapshot(NOW), liveHistory: history };
}

/**
 * productionSnapshot as a platform without live history shows it: dep_c current, went live (by an
 * automatic deploy, replacing dep_b unless said otherwise) between `notBefore` and `notAfter`.
 */
function derived(
  current: Partial<NonNullable<DerivedLive['current']>> & { notBefore: number; notAfter: number },
): EnvironmentSnapshot {
  return {
    ...productionSnapshot(NOW),
    liveHistory: [],
    derivedLive: {
      platform: 'Unkey',
      current: { deploymentId: 'dep_c', via: 'deploy', previous: 'dep_b', ...current },
    },
  };
}

describe('correlate with a live history', () => {
  it('blames a deployment that went live in the very millisecond the alert started', () => {
    const c = correlate(
      withHistory([
        { deploymentId: 'dep_b', since: NOW - 1_440 * MINUTE, via: 'deploy' },
        { deploymentId: 'dep_c', since: NOW, via: 'deploy' },
      ]),
      NOW,
    );
    expect(c).toMatchObject({
      kind: 'suggest',
      culprit: { id: 'dep_c' },
      target: { id: 'dep_b' },
      minutesBefore: 0,
    });
  });

  it('of two entries at the same instant, the later one recorded is what was live', () => {
    const at = NOW - 5 * MINUTE;
    const c = correlate(
      withHistory([
        { deploymentId: 'dep_b', since: NOW - 1_440 * MINUTE, via: 'deploy' },
        { deploymentId: 'dep_a', since: at, via: 'deploy' },
        { deploymentId: 'dep_c', since: at, via: 'deploy' },
      ]),
      NOW,
    );
    expect(c).toMatchObject({ kind: 'suggest', culprit: { id: 'dep_c' } });
  });

  it('says when the culprit went live (the history entry), not when the alert started', () => {
    const c = correlate(productionSnapshot(NOW, 7 * MINUTE), NOW);
    expect(c.kind === 'suggest' && c.wentLiveAt).toBe(NOW - 7 * MINUTE);
  });
});

describe('correlate on a platform without live history', () => {
  it('suggests when the deployment went live exactly when the alert started', () => {
    expect(correlate(derived({ notBefore: NOW, notAfter: NOW }), NOW, WINDOW)).toMatchObject({
      kind: 'suggest',
      culprit: { id: 'dep_c' },
      target: { id: 'dep_b' },
    });
  });

  it('suggests nothing when it may have gone live before or after the alert started', () => {
    const c = correlate(derived({ notBefore: NOW - MINUTE, notAfter: NOW + MINUTE }), NOW, WINDOW);
    expect(c.kind).toBe('none');
    expect(c.kind === 'none' && c.reason).toContain('does not say whether dep_c went live before or after');
  });

  it('suggests at exactly the window, like a full history does', () => {
    const c = correlate(derived({ notBefore: NOW - WINDOW, notAfter: NOW - WINDOW }), NOW, WINDOW);
    expect(c.kind).toBe('suggest');
  });

  it('suggests nothing when the earliest it can have gone live is outside the window', () => {
    const c = correlate(
      derived({ notBefore: NOW - WINDOW - MINUTE, notAfter: NOW - 10 * MINUTE }),
      NOW,
      WINDOW,
    );
    expect(c.kind).toBe('none');
    expect(c.kind === 'none' && c.reason).toContain('may be outside the 60 minutes correlation window');
  });

  it('suggests nothing when the deployment live before it is not the one /rollback would go back to', () => {
    // Switchyard rolled back from dep_a once (its own record): /rollback passes it over for dep_b.
    const c = correlate(
      derived({ notBefore: NOW - 7 * MINUTE, notAfter: NOW - 7 * MINUTE, previous: 'dep_a' }),
      NOW,
      WINDOW,
      { rolledBackFrom: new Set(['dep_a']) },
    );
    expect(c.kind).toBe('none');
    expect(c.kind === 'none' && c.reason).toContain('replacing dep_a, not dep_b');
  });

  it('suggests going back to the deployment the platform says was live before it, though an older one is newer', () => {
    const c = correlate(
      derived({ notBefore: NOW - 7 * MINUTE, notAfter: NOW - 7 * MINUTE, previous: 'dep_a' }),
      NOW,
      WINDOW,
    );
    expect(c).toMatchObject({ kind: 'suggest', culprit: { id: 'dep_c' }, target: { id: 'dep_a' } });
  });

  it('suggests nothing when the platform does not say which deployment was live before it', () => {
    const s = derived({ notBefore: NOW - 7 * MINUTE, notAfter: NOW - 7 * MINUTE });
    const current = s.derivedLive?.current;
    if (current === undefined) throw new Error('fixture');
    const { previous: _, ...withoutPrevious } = current;
    const c = correlate({ ...s, derivedLive: { platform: 'Unkey', current: withoutPrevious } }, NOW, WINDOW);
    expect(c.kind === 'none' && c.reason).toContain('does not say which deployment was live before it');
  });

  it('suggests nothing when what the platform tells is about another deployment than the current one', () => {
    const c = correlate(
      derived({
        deploymentId: 'dep_b',
        notBefore: NOW - 7 * MINUTE,
        notAfter: NOW - 7 * MINUTE,
        previous: 'dep_a',
      }),
      NOW,
      WINDOW,
    );
    expect(c.kind).toBe('none');
    expect(c.kind === 'none' && c.reason).toContain('Unkey does not say when dep_c went live');
  });

  it('suggests nothing after a rollback to the current deployment (a person chose it)', () => {
    const c = correlate(
      derived({ via: 'rollback', notBefore: NOW - 7 * MINUTE, notAfter: NOW - 7 * MINUTE }),
      NOW,
      WINDOW,
    );
    expect(c.kind === 'none' && c.reason).toContain('was rolled back to dep_c');
  });

  it('a live history, when there is one, decides over derived knowledge', () => {
    // the history says dep_c went live 7 minutes before; the derived knowledge would not tell
    const s: EnvironmentSnapshot = {
      ...productionSnapshot(NOW),
      derivedLive: { platform: 'Unkey', unknown: 'no idea' },
    };
    expect(correlate(s, NOW, WINDOW).kind).toBe('suggest');
  });
});

describe('the outside-the-window sentence never names a gap inside the window', () => {
  it('a deployment live 60 minutes 30 seconds before the alert is "more than 60 minutes" before it', () => {
    const now = Date.UTC(2026, 0, 15, 12, 0, 0);
    const c = correlate(productionSnapshot(now, 60 * MINUTE + 30_000), now, 60 * MINUTE);
    expect(c.kind).toBe('outside_window');
    if (c.kind !== 'outside_window') return;
    expect(c.sentence).toContain(
      'went live more than 60 minutes before this alert started, outside the 60 minutes correlation window',
    );
    const far = correlate(productionSnapshot(now, 61 * MINUTE), now, 60 * MINUTE);
    expect(far.kind === 'outside_window' && far.sentence).toContain(
      'went live 61 minutes before this alert started',
    );
  });
});
