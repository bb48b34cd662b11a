/**
 * handlers/discord/messages.ts, decisions no other test pins down, against a scripted REST (each PATCH
 * answered by the test): a reply's message reference never fails the post when the replied-to message
 * is gone; a view its guard drops hands its waiters to the newer state queued meanwhile; a job's final
 * state that failed retryably does not come back over a newer state queued while it was in flight.
 */
import { DiscordAPIError, HTTPError, type REST } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { DiscordMessages } from '../../handlers/discord/messages.js';
import { createMetrics } from '../../src/metrics.js';
import type { DiscordMessage } from '../../src/views/discord.js';
import { gate } from '../support/gate.js';
import { ObservedClock } from '../support/observed-clock.js';

const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);

function plain(title: string): DiscordMessage {
  return {
    embeds: [{ title }],
    components: [],
    allowed_mentions: { parse: [] },
    allowedMentions: { parse: [] },
  };
}

/** A REST whose calls the test answers one by one (`answer`), in order. */
function scriptedRest() {
  const calls: { method: string; route: string; body: Record<string, unknown> }[] = [];
  const answers: { resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = [];
  let arrived: (() => void) | undefined;
  const call = (method: string) => (route: string, opts: { body: Record<string, unknown> }) => {
    calls.push({ method, route, body: opts.body });
    const p = new Promise((resolve, reject) => answers.push({ resolve, reject }));
    arrived?.();
    return p;
  };
  return {
    rest: { post: call('POST'), patch: call('PATCH') } as unknown as REST,
    calls,
    /** Resolves once `n` calls were made. */
    async calledTimes(n: number): Promise<void> {
      while (calls.length < n) await new Promise<void>((r) => (arrived = r));
    },
    answer(k: number, outcome: { ok: unknown } | { error: unknown }): void {
      const a = answers[k];
      if (!a) throw new Error(`no call ${k}`);
      if ('ok' in outcome) a.resolve(outcome.ok);
      else a.reject(outcome.error);
    },
  };
}

const titleOf = (body: Record<string, unknown>) => (body.embeds as { title: string }[])[0]?.title;
const badGateway = () =>
  new HTTPError(502, 'Bad Gateway', 'PATCH', 'https://discord.test/api', {
    files: undefined,
    body: undefined,
  });
const missingAccess = () =>
  new DiscordAPIError({ code: 50001, message: 'Missing Access' }, 50001, 403, 'PATCH', '', {});

describe('DiscordMessages', () => {
  it('a reply is posted with a reference that does not fail when the replied-to message is gone', async () => {
    const r = scriptedRest();
    const messages = new DiscordMessages({ rest: r.rest });
    const posted = messages.post('c1', plain('Roll back production?'), { replyTo: 'm-alert' });
    await r.calledTimes(1);
    r.answer(0, { ok: { id: 'm-new' } });
    await expect(posted).resolves.toEqual({ id: 'm-new' });
    expect(r.calls[0]?.body.message_reference).toEqual({
      message_id: 'm-alert',
      channel_id: 'c1',
      fail_if_not_exists: false,
    });
  });

  it('a view its guard drops settles with the newer state queued during the check, not at once', async () => {
    const r = scriptedRest();
    const messages = new DiscordMessages({ rest: r.rest });
    const checking = gate();
    const view = messages.edit(
      'c1',
      'm1',
      plain('Confirmed'),
      {
        kind: 'view',
        skipIf: async () => {
          await checking.wait();
          return true;
        },
      },
      { rejectOnFailure: true },
    );
    await checking.reached;
    // The job's progress arrives while the guard is asked; the guard then drops the view.
    const progress = messages.edit('c1', 'm1', plain('Switching'), {
      kind: 'progress',
      at: T0,
      final: false,
    });
    checking.open();
    await r.calledTimes(1);
    expect(titleOf(r.calls[0]?.body ?? {})).toBe('Switching');
    // The newer state is what the message is to show: the view's caller hears how it went.
    r.answer(0, { error: missingAccess() });
    await expect(view).rejects.toMatchObject({ status: 403, code: 50001 });
    await expect(progress).resolves.toBeUndefined();
  });

  it('a final state that failed retryably gives way to a newer state queued while it was in flight', async () => {
    const r = scriptedRest();
    const clock = new ObservedClock(T0);
    const messages = new DiscordMessages({ rest: r.rest, clock, finalRetryMinMs: 1000 });
    const failed = messages.edit('c1', 'm1', plain('Rollback failed'), {
      kind: 'progress',
      at: T0,
      final: true,
    });
    await r.calledTimes(1);
    // While the job's final state is in flight, a notice supersedes it (a newer final state).
    const superseding = messages.edit(
      'c1',
      'm1',
      plain('Failed, then completed by the platform'),
      { kind: 'progress', at: T0 + 60_000, final: true },
      { rejectOnFailure: true },
    );
    const paused = clock.sleepOf(1000);
    r.answer(0, { error: badGateway() });
    await paused;
    await clock.advance(1000);
    await r.calledTimes(2);
    expect(r.calls.map((c) => titleOf(c.body))).toEqual([
      'Rollback failed',
      'Failed, then completed by the platform',
    ]);
    r.answer(1, { ok: {} });
    await expect(superseding).resolves.toBeUndefined();
    await expect(failed).resolves.toBeUndefined();
    await messages.flush();
    expect(r.calls).toHaveLength(2);
  });

  it('a final state still failing finalRetryForMs after its first failure is given up on that try', async () => {
    const r = scriptedRest();
    const clock = new ObservedClock(T0);
    const messages = new DiscordMessages({
      rest: r.rest,
      clock,
      finalRetryMinMs: 1000,
      finalRetryMaxMs: 1000,
      finalRetryForMs: 2000,
    });
    const final = messages.edit('c1', 'm1', plain('Rollback succeeded'), {
      kind: 'progress',
      at: T0,
      final: true,
    });
    for (let k = 0; k < 2; k += 1) {
      await r.calledTimes(k + 1);
      const paused = clock.sleepOf(1000);
      r.answer(k, { error: badGateway() });
      await paused;
      await clock.advance(1000);
    }
    // Third try, 2000 ms after the first failure: its failure is the last.
    await r.calledTimes(3);
    const next = clock.sleepOf(1000).then(() => 'tried again');
    r.answer(2, { error: badGateway() });
    expect(await Promise.race([final.then(() => 'given up'), next])).toBe('given up');
    expect(r.calls).toHaveLength(3);
  });

  it('flush waits for every message with an edit in flight, not only the first to finish', async () => {
    const r = scriptedRest();
    const messages = new DiscordMessages({ rest: r.rest });
    const a = messages.edit('c1', 'm-a', plain('A'), { kind: 'view' });
    const b = messages.edit('c1', 'm-b', plain('B'), { kind: 'view' });
    await r.calledTimes(2);
    let flushed = false;
    const flush = messages.flush().then(() => {
      flushed = true;
    });
    r.answer(1, { ok: {} });
    await b;
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(flushed).toBe(false); // m-a's edit is still in flight
    r.answer(0, { ok: {} });
    await a;
    await flush;
    expect(flushed).toBe(true);
  });

  it('a post Discord refuses is counted (chat API errors) and thrown to the caller', async () => {
    const r = scriptedRest();
    const metrics = createMetrics();
    const messages = new DiscordMessages({ rest: r.rest, metrics });
    const posted = messages.post('c1', plain('Roll back production?'));
    await r.calledTimes(1);
    r.answer(0, { error: missingAccess() });
    await expect(posted).rejects.toMatchObject({ status: 403, code: 50001 });
    const errors = await metrics.chatApiErrors.get();
    expect(errors.values).toEqual([
      expect.objectContaining({
        labels: { surface: 'discord', method: 'channels.messages.create', code: '50001' },
        value: 1,
      }),
    ]);
  });

  it('a finished message keeps its lane while others are edited: a late view never paints over its final state', async () => {
    const r = scriptedRest();
    const messages = new DiscordMessages({ rest: r.rest });
    const final = messages.edit('c1', 'm1', plain('Rollback succeeded'), {
      kind: 'progress',
      at: T0,
      final: true,
    });
    await r.calledTimes(1);
    r.answer(0, { ok: {} });
    await final;
    // Other messages are edited and finish meanwhile.
    const other = messages.edit('c1', 'm2', plain('Alert resolved'), { kind: 'view' });
    await r.calledTimes(2);
    r.answer(1, { ok: {} });
    await other;
    // A click handler that finishes late: its confirmation view is dropped.
    await expect(messages.edit('c1', 'm1', plain('Confirmed'), { kind: 'view' })).resolves.toBeUndefined();
    await messages.flush();
    expect(r.calls.map((c) => titleOf(c.body))).toEqual(['Rollback succeeded', 'Alert resolved']);
    expect(messages.isFinal('c1', 'm1')).toBe(true);
  });
});
