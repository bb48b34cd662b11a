/**
 * handlers/console/surface.ts: the timeline's default bound, threaded posts of the
 * console's ChatPoster (alert suggestions under their alert), edits of a message that is gone, two
 * states of a job stamped in the same millisecond, and the plan a progress view is rendered with.
 */

import { describe, expect, it } from 'vitest';
import { ConsoleSurface } from '../../handlers/console/surface.js';
import { ManualClock } from '../../src/clock.js';
import { RefusalCode } from '../../src/domain/result.js';
import { renderConsole } from '../../src/views/console.js';
import { progressView, refusalView } from '../../src/views/model.js';
import { progressFixture } from '../support/progress.js';
import { plan } from '../views/fixtures.js';

const T0 = Date.UTC(2026, 10, 30, 12, 0, 0);
const note = (message: string) => refusalView({ code: RefusalCode.invalidInput, message });

describe('ConsoleSurface timeline', () => {
  it('keeps the newest 500 entries by default, dropping the oldest first', () => {
    const surface = new ConsoleSurface({ clock: new ManualClock(T0) });
    const first = surface.postUser('alice', 'entry 0');
    const second = surface.postUser('alice', 'entry 1');
    for (let i = 2; i < 500; i++) surface.postUser('alice', `entry ${i}`);
    expect(surface.timeline()).toHaveLength(500);
    expect(surface.get(first.id)?.text).toBe('entry 0');
    surface.postUser('alice', 'entry 500');
    const kept = surface.timeline();
    expect(kept).toHaveLength(500);
    expect(surface.get(first.id)).toBeUndefined();
    expect(kept[0]?.id).toBe(second.id);
    expect(kept.at(-1)?.text).toBe('entry 500');
  });

  it('an edit of a message that is gone (pushed out of the timeline) changes nothing and emits nothing', () => {
    const surface = new ConsoleSurface({ clock: new ManualClock(T0), limit: 2 });
    const gone = surface.postView(note('oldest'));
    surface.postUser('alice', 'one');
    surface.postUser('alice', 'two');
    const seen: unknown[] = [];
    surface.onEntry((e) => seen.push(e));
    expect(surface.updateView(gone.messageId, note('edited'))).toBe(false);
    expect(surface.updateView('m_never_posted', note('edited'))).toBe(false);
    expect(seen).toEqual([]);
    expect(surface.timeline().map((e) => e.text)).toEqual(['one', 'two']);
  });
});

describe("ConsoleSurface's ChatPoster", () => {
  it('posts a reply threaded under its parent: the entry names the parent, the ref carries the thread', async () => {
    const surface = new ConsoleSurface({ clock: new ManualClock(T0) });
    const poster = surface.poster();
    const alert = await poster.post('console', note('High error rate on production'));
    const suggestion = await poster.post('console', note('Roll back production?'), {
      threadId: alert.messageId,
    });
    expect(suggestion).toMatchObject({ surface: 'console', threadId: alert.messageId });
    expect(surface.get(suggestion.messageId)?.threadOf).toBe(alert.messageId);
    // A top-level post is in no thread.
    expect(alert.threadId).toBeUndefined();
    expect(surface.get(alert.messageId)?.threadOf).toBeUndefined();
  });
});

describe('ConsoleSurface.report', () => {
  it('applies a later state of the job stamped in the same millisecond as the one shown', async () => {
    const surface = new ConsoleSurface({ clock: new ManualClock(T0) });
    const ref = surface.postView(note('Confirmed: progress follows.'));
    const switching = progressFixture({
      steps: [
        { step: 'validating', state: 'done', startedAt: T0, endedAt: T0 },
        { step: 'switching', state: 'running', startedAt: T0 },
      ],
      updatedAt: T0,
    });
    const verifying = progressFixture({
      steps: [
        { step: 'validating', state: 'done', startedAt: T0, endedAt: T0 },
        { step: 'switching', state: 'done', startedAt: T0, endedAt: T0 },
        { step: 'verifying', state: 'running', startedAt: T0 },
      ],
      updatedAt: T0,
    });
    await surface.report(switching, [ref]);
    await surface.report(verifying, [ref]);
    expect(surface.get(ref.messageId)?.message).toEqual(renderConsole(progressView(verifying)));
  });

  it("renders progress with the job's plan (its standby target's reactivation step), and without it when the lookup fails", async () => {
    const standby = { ...plan('rollback'), targetStandby: true };
    const running = progressFixture({
      planId: standby.id,
      steps: [{ step: 'validating', state: 'running', startedAt: T0 }],
      updatedAt: T0,
    });
    const withPlan = renderConsole(progressView(running, standby));
    // The fixture's point: the plan changes what the view shows.
    expect(withPlan).not.toEqual(renderConsole(progressView(running)));

    const surface = new ConsoleSurface({
      clock: new ManualClock(T0),
      planLookup: async (id) => (id === standby.id ? standby : undefined),
    });
    const ref = surface.postView(note('Confirmed: progress follows.'));
    await surface.report(running, [ref]);
    expect(surface.get(ref.messageId)?.message).toEqual(withPlan);

    const failing = new ConsoleSurface({
      clock: new ManualClock(T0),
      planLookup: async () => {
        throw new Error('Connection is closed.');
      },
    });
    const other = failing.postView(note('Confirmed: progress follows.'));
    await failing.report(running, [other]);
    expect(failing.get(other.messageId)?.message).toEqual(renderConsole(progressView(running)));
  });
});
