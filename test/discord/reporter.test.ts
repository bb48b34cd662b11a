/**
 * The Discord Reporter and message editor against the fake Discord with the real discord.js REST
 * client: edits with the bot token, coalescing (the newest state wins), 429 honoured per Retry-After
 * (per route, and global: every request waits), a bucket that runs down waited for before it is
 * exceeded,
 * ordering (progress beats a late confirmation view; an older snapshot never replaces a newer one;
 * nothing replaces the final state), and failures logged and counted but never thrown.
 */
import { DiscordAPIError, HTTPError, REST, RESTEvents, Routes } from 'discord.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDiscordRest } from '../../handlers/discord/client.js';
import { DiscordMessages } from '../../handlers/discord/messages.js';
import { DiscordReporter } from '../../handlers/discord/reporter.js';
import { ManualClock } from '../../src/clock.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import type { MessageRef, Progress } from '../../src/progress.js';
import type { DiscordMessage } from '../../src/views/discord.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/server.js';
import { ObservedClock } from '../support/observed-clock.js';
import { progressFixture } from '../support/progress.js';
import { textOf } from './harness.js';

const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);

function progress(step: number, outcome?: 'succeeded' | 'failed'): Progress {
  const names = ['queued', 'validating', 'switching', 'verifying', 'done'] as const;
  const steps = names.slice(0, step + 1).map((name, k) => ({
    step: name,
    state: k < step || outcome !== undefined ? ('done' as const) : ('running' as const),
    startedAt: T0 + k * 1000,
    ...(k < step || outcome !== undefined ? { endedAt: T0 + k * 1000 + 500 } : {}),
  }));
  return progressFixture({
    steps,
    ...(outcome === undefined ? {} : { outcome, message: `Rollback ${outcome}.` }),
    traffic: outcome === 'succeeded' ? [{ hostname: 'shop.example', deploymentId: 'dep_b', ok: true }] : [],
    updatedAt: T0 + step * 1000 + (outcome === undefined ? 0 : 900),
  });
}

function plain(title: string): DiscordMessage {
  return {
    embeds: [{ title }],
    components: [],
    allowed_mentions: { parse: [] },
    allowedMentions: { parse: [] },
  };
}

describe('Discord reporter', () => {
  let fake: FakeDiscord;
  let rest: REST;
  let metrics: Metrics;
  let messages: DiscordMessages;
  let reporter: DiscordReporter;
  let ref: MessageRef;

  beforeEach(async () => {
    fake = await startFakeDiscord();
    rest = new REST({ api: fake.apiUrl }).setToken(fake.token);
    metrics = createMetrics();
    messages = new DiscordMessages({ rest, metrics });
    reporter = new DiscordReporter({ messages });
    const posted = await messages.post(fake.channels.ops, plain('Roll back production?'));
    ref = { surface: 'discord', channel: fake.channels.ops, messageId: posted.id };
  });

  afterEach(async () => {
    rest.clearHashSweeper();
    rest.clearHandlerSweeper();
    await fake.close();
  });

  const edits = () => fake.calls.filter((c) => c.method === 'PATCH');

  it('edits the channel message with the bot token, coalescing states that arrive during an edit', async () => {
    const all = [0, 1, 2, 3].map((s) => reporter.report(progress(s), [ref]));
    all.push(reporter.report(progress(4, 'succeeded'), [ref]));
    await Promise.all(all);
    // The first state went out at once; the three in between were replaced by the final one.
    expect(edits()).toHaveLength(2);
    for (const c of edits()) {
      expect(c.path).toBe(`/channels/${fake.channels.ops}/messages/${ref.messageId}`);
      expect(c.authorization).toBe(`Bot ${fake.token}`);
      expect(c.status).toBe(200);
    }
    const text = textOf(fake.messages.get(ref.messageId) ?? { content: '', embeds: [] });
    expect(text).toContain('Rolled back production to dep_b');
    expect(text).toContain('Traffic is on');
  });

  it('waits out a 429 for its Retry-After, then sends the newest state', async () => {
    fake.rateLimitNext({ method: 'PATCH', path: /^\/channels\/\d+\/messages\/\d+$/, retryAfterSeconds: 0.2 });
    const first = reporter.report(progress(1), [ref]);
    const middle = reporter.report(progress(2), [ref]);
    const last = reporter.report(progress(3), [ref]);
    await Promise.all([first, middle, last]);
    await reporter.flush();
    const calls = edits();
    expect(calls.map((c) => c.status)).toEqual([429, 200, 200]);
    const [limited, retried] = calls;
    if (!limited || !retried) throw new Error('missing calls');
    // Honoured: the retry came no sooner than retry_after (0.2 s) after the 429.
    expect(retried.at - limited.at).toBeGreaterThanOrEqual(200);
    const text = textOf(fake.messages.get(ref.messageId) ?? { content: '', embeds: [] });
    expect(text).toMatch(/Verifying traffic.*\(running\)/);
    const errors = await metrics.chatApiErrors.get();
    expect(errors.values).toEqual([]);
  });

  it('logs and counts a failed edit without throwing, and later states still go out', async () => {
    fake.failNext({
      method: 'PATCH',
      path: /^\/channels\/\d+\/messages\/\d+$/,
      status: 403,
      code: 50001,
      message: 'Missing Access',
    });
    await expect(reporter.report(progress(1), [ref])).resolves.toBeUndefined();
    await reporter.flush();
    const errors = await metrics.chatApiErrors.get();
    expect(errors.values).toEqual([
      expect.objectContaining({
        labels: { surface: 'discord', method: 'channels.messages.edit', code: '50001' },
        value: 1,
      }),
    ]);
    await reporter.report(progress(4, 'succeeded'), [ref]);
    expect(edits().map((c) => c.status)).toEqual([403, 200]);
  });

  it('never lets a late confirmation view or an older snapshot replace newer progress', async () => {
    await reporter.report(progress(2), [ref]);
    await messages.edit(ref.channel, ref.messageId, plain('Confirmed'), { kind: 'view' });
    await reporter.report(progress(1), [ref]);
    await reporter.flush();
    expect(edits()).toHaveLength(1);
    await reporter.report(progress(4, 'failed'), [ref]);
    await reporter.report(progress(3), [ref]);
    // Same timestamp as the final state but not final: still never replaces it.
    const final = progress(4, 'failed');
    await reporter.report({ ...progress(4), updatedAt: final.updatedAt }, [ref]);
    await reporter.flush();
    expect(edits()).toHaveLength(2);
    expect(textOf(fake.messages.get(ref.messageId) ?? { content: '', embeds: [] })).toContain('failed');
  });

  it('drops a view whose guard says the job has reported by the time it goes out; a failing guard lets it go', async () => {
    await messages.edit(ref.channel, ref.messageId, plain('Confirmed'), {
      kind: 'view',
      skipIf: async () => true,
    });
    await messages.flush();
    expect(edits()).toHaveLength(0);
    await messages.edit(ref.channel, ref.messageId, plain('Confirmed again'), {
      kind: 'view',
      skipIf: async () => {
        throw new Error('redis down');
      },
    });
    await messages.flush();
    expect(edits()).toHaveLength(1);
    expect(textOf(fake.messages.get(ref.messageId) ?? { content: '', embeds: [] })).toContain(
      'Confirmed again',
    );
  });

  it('ignores message refs of other surfaces', async () => {
    await reporter.report(progress(1), [{ surface: 'slack', channel: 'C1', messageId: '1.2' }]);
    expect(edits()).toHaveLength(0);
  });
});

describe("Discord reporter against Discord's rate limits (the bot's REST as Switchyard builds it)", () => {
  let fake: FakeDiscord;
  let rest: REST;
  let reporter: DiscordReporter;
  let ref: MessageRef;

  async function setUp(opts: Parameters<typeof startFakeDiscord>[0] = {}) {
    fake = await startFakeDiscord(opts);
    rest = createDiscordRest(fake.token, fake.apiUrl);
    const messages = new DiscordMessages({ rest, metrics: createMetrics() });
    reporter = new DiscordReporter({ messages });
    const posted = await messages.post(fake.channels.ops, plain('Roll back production?'));
    ref = { surface: 'discord', channel: fake.channels.ops, messageId: posted.id };
  }

  afterEach(async () => {
    rest.clearHashSweeper();
    rest.clearHandlerSweeper();
    await fake.close();
  });

  const edits = () => fake.calls.filter((c) => c.method === 'PATCH');

  it('a global 429 holds every request for its Retry-After, then the edit lands once', async () => {
    await setUp();
    fake.rateLimitNext({
      method: 'PATCH',
      path: /^\/channels\/\d+\/messages\/\d+$/,
      retryAfterSeconds: 0.3,
      scope: 'global',
    });
    // Once discord.js has read the 429 (its response event comes just before it reads the headers).
    const seen = new Promise<void>((resolve) =>
      rest.on(RESTEvents.Response, (_request, response) => {
        if (response.status === 429) setImmediate(resolve);
      }),
    );
    const reported = reporter.report(progress(2), [ref]);
    const limited = await fake.waitForRequest((c) => c.status === 429);
    await seen;
    // Another route, asked for during the global limit, waits for it too.
    const read = await rest.get(Routes.channelMessage(ref.channel, ref.messageId));
    await reported;
    await reporter.flush();
    expect(edits().map((c) => c.status)).toEqual([429, 200]);
    const [, retried] = edits();
    const got = fake.calls.find((c) => c.method === 'GET' && c.index > limited.index);
    // Retry-After is in whole seconds (1 for 0.3): nothing went out before it had passed.
    expect((retried?.at ?? 0) - limited.at).toBeGreaterThanOrEqual(1000);
    expect((got?.at ?? 0) - limited.at).toBeGreaterThanOrEqual(1000);
    expect(read).toMatchObject({ id: ref.messageId });
    const message = fake.messages.get(ref.messageId);
    expect(message?.history).toHaveLength(2); // posted, then this one edit
    expect(textOf(message ?? { content: '', embeds: [] })).toMatch(/Switching.*\(running\)/);
  });

  it('a bucket that has run down is waited for (its reset) before the next edit: no 429', async () => {
    await setUp({ routeLimit: { limit: 2, windowMs: 1_000 } });
    for (const step of [1, 2, 3]) {
      await reporter.report(progress(step), [ref]);
      await reporter.flush();
    }
    const calls = edits();
    expect(calls.map((c) => c.status)).toEqual([200, 200, 200]);
    const [first, , third] = calls;
    // The first two used the bucket up; discord.js held the third until the window reset.
    expect((third?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(1_000 - 50);
    expect(textOf(fake.messages.get(ref.messageId) ?? { content: '', embeds: [] })).toMatch(
      /Verifying traffic.*\(running\)/,
    );
  });
});

/** A REST whose edits hang until the test lets them through: a Discord that answers slowly. */
function slowRest() {
  const held: (() => void)[] = [];
  /** Every edit Discord was sent, in order (the embed text). */
  const sent: string[] = [];
  const rest = {
    patch: (_route: string, opts: { body: unknown }) =>
      new Promise<unknown>((resolve) => {
        sent.push(JSON.stringify(opts.body));
        held.push(() => resolve({}));
      }),
    post: async () => ({ id: '1' }),
  } as unknown as REST;
  /** Lets every held edit through (and the ones they were queued behind, once sent). */
  const releaseAll = async () => {
    while (held.length > 0) {
      for (const release of held.splice(0)) release();
      await new Promise<void>((r) => setImmediate(r));
    }
  };
  return { rest, held, sent, releaseAll };
}

/** Whether `p` has settled once pending callbacks ran (no wall-clock wait). */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => {
    done = true;
  });
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
  return done;
}

describe('Discord reporter with a slow Discord', () => {
  const ref: MessageRef = {
    surface: 'discord',
    channel: '100000000000000001',
    messageId: '100000000000000002',
  };

  it('returns at once for intermediate states, coalescing them to the newest per message', async () => {
    const slow = slowRest();
    const reporter = new DiscordReporter({
      messages: new DiscordMessages({ rest: slow.rest }),
      clock: new ManualClock(T0),
    });
    // The first edit hangs at Discord; each later state is handed over without waiting for it.
    for (const s of [0, 1, 2, 3]) expect(await settled(reporter.report(progress(s), [ref]))).toBe(true);
    expect(slow.held).toHaveLength(1);
    await slow.releaseAll();
    await reporter.flush();
    // The two in between were replaced by the newest before they went out.
    expect(slow.sent).toHaveLength(2);
    expect(slow.sent[0]).toMatch(/Queued.*running/);
    expect(slow.sent[1]).toMatch(/Verifying traffic.*running/);
  });

  it('waits at most finalWaitMs (its clock) for the final state; the edit carries on and lands', async () => {
    const slow = slowRest();
    const clock = new ManualClock(T0);
    const reporter = new DiscordReporter({
      messages: new DiscordMessages({ rest: slow.rest }),
      clock,
      finalWaitMs: 10_000,
    });
    expect(await settled(reporter.report(progress(2), [ref]))).toBe(true);
    const final = reporter.report(progress(4, 'succeeded'), [ref]);
    expect(await settled(final)).toBe(false);
    await clock.advance(9_999);
    expect(await settled(final)).toBe(false);
    await clock.advance(1);
    expect(await settled(final)).toBe(true);
    // Discord still has the intermediate edit; the final one follows it once Discord answers.
    expect(slow.sent).toHaveLength(1);
    await slow.releaseAll();
    await reporter.flush();
    expect(slow.sent).toHaveLength(2);
    expect(slow.sent[1]).toContain('Traffic is on');
  });

  it('a final state Discord takes in time resolves as soon as it landed', async () => {
    const slow = slowRest();
    const clock = new ManualClock(T0);
    const reporter = new DiscordReporter({ messages: new DiscordMessages({ rest: slow.rest }), clock });
    const final = reporter.report(progress(4, 'succeeded'), [ref]);
    expect(await settled(final)).toBe(false);
    await slow.releaseAll();
    expect(await settled(final)).toBe(true);
    expect(clock.pending).toBe(0); // its time limit was let go
  });
});

/**
 * The next pause the lane takes on `clock` (ms), or 'idle' once nothing is queued or in flight (its
 * state delivered or given up). Subscribe before the lane can get there (before moving the clock).
 */
function nextPause(clock: ObservedClock, messages: DiscordMessages): Promise<number | 'idle'> {
  return Promise.race([
    new Promise<number>((resolve) => clock.events.once('sleep', resolve)),
    messages.flush().then(() => 'idle' as const),
  ]);
}

/** Moves `clock` through every pause the lane takes until it is idle; returns the pauses. */
async function ridePauses(
  clock: ObservedClock,
  messages: DiscordMessages,
  first: Promise<number | 'idle'>,
  onPause: (pause: number) => void = () => undefined,
): Promise<number[]> {
  const pauses: number[] = [];
  let next = first;
  for (;;) {
    const pause = await next;
    if (pause === 'idle') return pauses;
    pauses.push(pause);
    onPause(pause);
    next = nextPause(clock, messages);
    await clock.advance(pause);
  }
}

/** A REST whose edits fail (`fail(n)`: the nth edit's error, or undefined to let it through). */
function failingRest(clock: ObservedClock, fail: (n: number) => Error | undefined) {
  /** Every edit Discord was sent: when (on the clock) and the embed text. */
  const sent: { at: number; body: string }[] = [];
  const rest = {
    patch: async (_route: string, opts: { body: unknown }) => {
      sent.push({ at: clock.now(), body: JSON.stringify(opts.body) });
      const error = fail(sent.length);
      if (error) throw error;
      return {};
    },
    post: async () => ({ id: '1' }),
  } as unknown as REST;
  return { rest, sent };
}

/** What discord.js REST throws for a 5xx once its own retries are used up. */
function http5xx(status = 503): HTTPError {
  return new HTTPError(status, 'Service Unavailable', 'PATCH', 'https://discord.test/api', {
    files: undefined,
    body: undefined,
  });
}

describe('Discord reporter when Discord fails for a while', () => {
  const ref: MessageRef = {
    surface: 'discord',
    channel: '100000000000000001',
    messageId: '100000000000000002',
  };

  it("a final state that met a 502 blip outlasting discord.js's own retries is tried again after a pause, and lands", async () => {
    const fake = await startFakeDiscord();
    const rest = new REST({ api: fake.apiUrl }).setToken(fake.token);
    try {
      const clock = new ObservedClock(T0);
      const messages = new DiscordMessages({ rest, clock });
      const reporter = new DiscordReporter({ messages, clock: new ManualClock(T0) });
      const posted = await messages.post(fake.channels.ops, plain('Roll back production?'));
      const msg: MessageRef = { surface: 'discord', channel: fake.channels.ops, messageId: posted.id };
      await reporter.report(progress(2), [msg]);
      await reporter.flush();
      // Discord answers 502 to the next eight calls: two tries of REST's four calls each.
      fake.failNext({
        method: 'PATCH',
        path: /^\/channels\/\d+\/messages\/\d+$/,
        status: 502,
        code: 0,
        message: '502 Bad Gateway',
        times: 8,
      });
      void reporter.report(progress(4, 'succeeded'), [msg]);
      const pauses = await ridePauses(clock, messages, nextPause(clock, messages));
      expect(pauses).toEqual([1000, 2000]);
      expect(fake.calls.filter((c) => c.method === 'PATCH').map((c) => c.status)).toEqual([
        200, 502, 502, 502, 502, 502, 502, 502, 502, 200,
      ]);
      const text = textOf(fake.messages.get(msg.messageId) ?? { content: '', embeds: [] });
      expect(text).toContain('Traffic is on');
    } finally {
      rest.clearHashSweeper();
      rest.clearHandlerSweeper();
      await fake.close();
    }
  });

  it('pauses double from 1 s to a minute; the final state is given up once it has failed for 30 minutes', async () => {
    const clock = new ObservedClock(T0);
    const { rest, sent } = failingRest(clock, () => http5xx());
    const messages = new DiscordMessages({ rest, clock });
    const start = clock.now();
    const edit = messages.edit(ref.channel, ref.messageId, plain('Rolled back'), {
      kind: 'progress',
      at: T0,
      final: true,
    });
    const pauses = await ridePauses(clock, messages, nextPause(clock, messages));
    await expect(edit).resolves.toBeUndefined(); // given up: logged and counted, never thrown
    expect(pauses.slice(0, 8)).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
    expect(new Set(pauses.slice(6))).toEqual(new Set([60_000]));
    // Tries at 0, 1, 3, 7, 15, 31 s, then every minute from 63 s; the one at 1803 s (30 minutes after
    // the first failure) is the last.
    expect(sent.at(-1)?.at).toBe(start + 1_803_000);
    expect(sent).toHaveLength(36);
  });

  it('a newer state queued while a failed final state waits replaces it', async () => {
    const clock = new ObservedClock(T0);
    const { rest, sent } = failingRest(clock, (n) => (n === 1 ? http5xx(502) : undefined));
    const messages = new DiscordMessages({ rest, clock });
    const first = messages.edit(ref.channel, ref.messageId, plain('Failed'), {
      kind: 'progress',
      at: T0,
      final: true,
    });
    const paused = nextPause(clock, messages);
    expect(await paused).toBe(1000);
    // The job ran again and ended once more (or a notice superseded it) while the first waited.
    const second = messages.edit(ref.channel, ref.messageId, plain('Succeeded'), {
      kind: 'progress',
      at: T0 + 60_000,
      final: true,
    });
    const after = nextPause(clock, messages);
    await clock.advance(1000);
    expect(await after).toBe('idle');
    await Promise.all([first, second]);
    expect(sent.map((c) => c.body)).toEqual([
      expect.stringContaining('Failed'),
      expect.stringContaining('Succeeded'),
    ]);
  });

  it('is not retried: an intermediate state, a view, a refusal, nor a final edit whose caller hears of the failure', async () => {
    const clock = new ObservedClock(T0);
    let refuse = false;
    const { rest, sent } = failingRest(clock, () =>
      refuse
        ? new DiscordAPIError({ code: 10008, message: 'Unknown Message' }, 10008, 404, 'PATCH', '', {})
        : http5xx(),
    );
    const messages = new DiscordMessages({ rest, clock });
    /** How an edit ended: 'resolved', the error it rejected with, or 'paused' when the lane waits to retry it. */
    const outcome = (edit: Promise<void>): Promise<unknown> =>
      Promise.race([
        edit.then(
          () => 'resolved',
          (e: unknown) => e,
        ),
        new Promise((resolve) => clock.events.once('sleep', () => resolve('paused'))),
      ]);
    const on = (n: number) => String(BigInt(ref.messageId) + BigInt(n));
    const progressState = (final: boolean) => ({ kind: 'progress', at: T0, final }) as const;
    expect(await outcome(messages.edit(ref.channel, on(1), plain('Switching'), progressState(false)))).toBe(
      'resolved',
    );
    expect(await outcome(messages.edit(ref.channel, on(2), plain('Confirmed'), { kind: 'view' }))).toBe(
      'resolved',
    );
    // A ChatPoster's update superseding the progress: its caller (the notices' backoff) retries it.
    const poster = messages.edit(ref.channel, on(3), plain('Failed, then completed'), progressState(true), {
      rejectOnFailure: true,
    });
    expect(await outcome(poster)).toMatchObject({ status: 503 });
    refuse = true;
    expect(await outcome(messages.edit(ref.channel, on(4), plain('Rolled back'), progressState(true)))).toBe(
      'resolved',
    );
    await messages.flush();
    expect(sent).toHaveLength(4);
    expect(clock.pending).toBe(0);
  });
});
