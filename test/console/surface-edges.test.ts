/**
 * handlers/console/surface.ts: the timeline's default bound (and how many entries it dropped), threaded
 * posts of the console's ChatPoster (alert suggestions under their alert), edits of a message that is
 * gone, two states of a job stamped in the same millisecond, the plan a progress view is rendered with,
 * and a switch whose messages were in the channel of the process before this one (a restart).
 */

import { describe, expect, it } from 'vitest';
import { ConsoleSurface } from '../../handlers/console/surface.js';
import { ManualClock } from '../../src/clock.js';
import { RefusalCode } from '../../src/domain/result.js';
import type { MessageRef } from '../../src/progress.js';
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

  it('knows when it began and how many of its oldest entries it dropped (the page says both)', () => {
    const clock = new ManualClock(T0);
    const surface = new ConsoleSurface({ clock, limit: 3 });
    clock.set(T0 + 5000);
    for (let i = 0; i < 3; i++) surface.postUser('alice', `entry ${i}`);
    expect({ startedAt: surface.startedAt, dropped: surface.dropped, kept: surface.kept }).toEqual({
      startedAt: T0,
      dropped: 0,
      kept: 3,
    });
    surface.postUser('alice', 'entry 3');
    surface.postUser('alice', 'entry 4');
    expect(surface.dropped).toBe(2);
    expect(surface.timeline().map((e) => e.text)).toEqual(['entry 2', 'entry 3', 'entry 4']);
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

describe('ConsoleSurface.report: a switch from before this channel began', () => {
  const validating = progressFixture({
    steps: [{ step: 'validating', state: 'running', startedAt: T0 + 60_000 }],
    updatedAt: T0 + 60_000,
  });
  const done = progressFixture({
    steps: [
      { step: 'validating', state: 'done', startedAt: T0 + 60_000, endedAt: T0 + 61_000 },
      { step: 'switching', state: 'done', startedAt: T0 + 61_000, endedAt: T0 + 62_000 },
      { step: 'verifying', state: 'done', startedAt: T0 + 62_000, endedAt: T0 + 63_000 },
    ],
    outcome: 'succeeded',
    updatedAt: T0 + 63_000,
  });
  /** The confirmation and the alert suggestion of the switch, posted by the process before the restart. */
  const fromBeforeRestart = (): [MessageRef, MessageRef] => {
    const gone = new ConsoleSurface({ clock: new ManualClock(T0) });
    return [gone.postView(note('Roll back production?')), gone.postView(note('Checkout 5xx: roll back?'))];
  };
  const carriedNote = (e: { message?: { blocks: readonly unknown[] } } | undefined) =>
    JSON.stringify(e?.message?.blocks[0]);

  it('gets one message here, which the switch then edits to its end', async () => {
    const refs = fromBeforeRestart();
    // Switchyard restarted a minute later; the switch, handed back to the queue, resumes.
    const clock = new ManualClock(T0 + 60_000);
    const surface = new ConsoleSurface({ clock });
    await surface.report(validating, refs);
    const shown = surface.timeline();
    expect(shown).toHaveLength(1);
    const posted = shown[0];
    expect(posted?.message?.kind).toBe('progress');
    expect(posted?.visibleTo).toBeUndefined();
    expect(carriedNote(posted)).toContain('Asked for before Switchyard last started');
    expect(posted?.message?.blocks.slice(1)).toEqual(renderConsole(progressView(validating)).blocks);

    clock.set(T0 + 63_000);
    await surface.report(done, refs);
    const ended = surface.timeline();
    expect(ended.map((e) => e.id)).toEqual([posted?.id]);
    expect(ended[0]?.message?.blocks.slice(1)).toEqual(renderConsole(progressView(done)).blocks);
    expect(carriedNote(ended[0])).toContain('Asked for before Switchyard last started');
  });

  it('not when one of its messages is in this channel: that one follows it', async () => {
    const [old] = fromBeforeRestart();
    const surface = new ConsoleSurface({ clock: new ManualClock(T0 + 60_000) });
    const here = surface.postView(note('Confirmed: progress follows.'));
    await surface.report(validating, [old, here]);
    expect(surface.timeline().map((e) => e.id)).toEqual([here.messageId]);
    expect(surface.get(here.messageId)?.message).toEqual(renderConsole(progressView(validating)));
  });

  it("not for a message posted since it began that it does not hold (another replica's)", async () => {
    const surface = new ConsoleSurface({ clock: new ManualClock(T0) });
    const other = new ConsoleSurface({ clock: new ManualClock(T0 + 1000) });
    await surface.report(validating, [other.postView(note('Confirmed: progress follows.'))]);
    await surface.report(validating, [{ surface: 'console', channel: 'console', messageId: 'not-an-id' }]);
    expect(surface.timeline()).toEqual([]);
  });
});
