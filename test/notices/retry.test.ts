/**
 * A notice whose post fails is not lost: a fault that may pass (the chat API down, a 5xx after the
 * SDK's own retries) is tried again with backoff on the injected clock, on that surface only; a
 * refusal (no access, unknown channel) gives up at once. The real Slack and Discord SDKs against the
 * fake servers show which of their failures count as which, and that a Discord post retried after its
 * answer was lost (it went through) is not posted twice: every attempt carries the same nonce.
 */

import { LogLevel, WebClient } from '@slack/web-api';
import { REST } from 'discord.js';
import { afterEach, describe, expect, it } from 'vitest';
import { createDiscordRest } from '../../handlers/discord/client.js';
import { DiscordMessages, discordRetryable } from '../../handlers/discord/messages.js';
import { SlackPoster } from '../../handlers/slack/poster.js';
import { SlackReporter } from '../../handlers/slack/reporter.js';
import { discordPoster } from '../../handlers/surfaces.js';
import type { ChatPoster } from '../../src/chat-sinks.js';
import type { Clock } from '../../src/clock.js';
import { createMetrics } from '../../src/metrics.js';
import type { NoticeOutcome } from '../../src/notices.js';
import type { MessageRef } from '../../src/progress.js';
import type { MessageView } from '../../src/views/types.js';
import { startFakeDiscord } from '../fakes/discord/server.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { CapturedLog } from '../support/captured-log.js';
import { createWorld, RecordingPoster, type World } from './world.js';

let w: World | undefined;

afterEach(async () => {
  await w?.close();
  w = undefined;
});

class Fault extends Error {
  constructor(
    message: string,
    readonly transient: boolean,
  ) {
    super(message);
  }
}

/** A recording poster that first fails with the queued faults, one per call. */
class FlakyPoster extends RecordingPoster {
  readonly attempts: number[] = [];
  constructor(
    surface: ChatPoster['surface'],
    private readonly at: Clock,
    private readonly faults: Fault[],
  ) {
    super(surface, at);
  }

  override async post(channel: string, view: MessageView): Promise<MessageRef> {
    this.attempts.push(this.at.now());
    const fault = this.faults.shift();
    if (fault) throw fault;
    return super.post(channel, view);
  }

  retryable(error: unknown): boolean {
    return error instanceof Fault && error.transient;
  }
}

/** A recording poster whose next post hangs until `release` (a process stuck, or dead, mid-post). */
class HangingPoster extends RecordingPoster {
  readonly calls: number[] = [];
  private hang: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private called: (() => void) | undefined;
  /** Resolves when a post hangs. */
  readonly hanging = new Promise<void>((resolve) => {
    this.called = resolve;
  });

  override async post(channel: string, view: MessageView): Promise<MessageRef> {
    this.calls.push(Date.now());
    if (this.calls.length === 1) {
      await new Promise<void>((resolve, reject) => {
        this.hang = { resolve, reject };
        this.called?.();
      });
    }
    return super.post(channel, view);
  }

  /** Ends the hanging post: delivered (`ok`), or refused for good. */
  release(ok: boolean): void {
    if (ok) this.hang?.resolve();
    else this.hang?.reject(new Fault('gone', false));
  }

  retryable(error: unknown): boolean {
    return error instanceof Fault && error.transient;
  }
}

const down = (n: number) => Array.from({ length: n }, () => new Fault('503 from the chat API', true));

const ofStatus = <S extends NoticeOutcome['status']>(outcomes: NoticeOutcome[], status: S) =>
  outcomes.filter((o): o is Extract<NoticeOutcome, { status: S }> => o.status === status);

describe('notice posts that fail', () => {
  it('retries a transient fault on that surface only, with backoff, and posts it once', async () => {
    w = await createWorld({ env: { DISCORD_ALERT_CHANNEL: '1200000000000000001' } });
    const flaky = new FlakyPoster('slack', w.clock, down(2));
    const discord = new RecordingPoster('discord', w.clock);
    const n = await w.notices({ posters: [flaky, discord], postRetryMs: 5_000 });
    const d = await w.pushAndBuild('production', [n], { message: 'Fix the cart total' });
    const t0 = w.clock.now();

    // the first attempt failed; Discord got its notice at once and is not posted again
    expect(flaky.posts).toHaveLength(0);
    expect(discord.titles()).toEqual([`${d.id} is live on production`]);
    expect(ofStatus(n.outcomes, 'posted')).toMatchObject([
      { kind: 'ready', refs: [{ surface: 'discord' }], retrying: ['slack'] },
    ]);

    await w.advance(4_999, [n]);
    expect(flaky.attempts).toHaveLength(1);
    await w.advance(1, [n]); // 5 s: second attempt, fails again
    expect(flaky.attempts).toEqual([t0, t0 + 5_000]);
    await w.advance(9_999, [n]);
    expect(flaky.attempts).toHaveLength(2);
    await w.advance(1, [n]); // 10 s later: third attempt, delivered
    expect(flaky.attempts).toEqual([t0, t0 + 5_000, t0 + 15_000]);
    expect(flaky.titles()).toEqual([`${d.id} is live on production`]);
    expect(ofStatus(n.outcomes, 'posted').at(-1)).toMatchObject({
      kind: 'ready',
      refs: [{ surface: 'slack', channel: 'C0ALERTS' }],
      attempt: 3,
    });

    await w.advance(3_600_000, [n]);
    expect(flaky.posts).toHaveLength(1);
    expect(discord.posts).toHaveLength(1);
    expect(ofStatus(n.outcomes, 'post_failed')).toEqual([]);
  });

  it('gives up at once on a refusal, and the other surfaces still get the notice', async () => {
    w = await createWorld({ env: { DISCORD_ALERT_CHANNEL: '1200000000000000001' } });
    const flaky = new FlakyPoster('slack', w.clock, [new Fault('not_in_channel', false)]);
    const discord = new RecordingPoster('discord', w.clock);
    const metrics = createMetrics();
    const n = await w.notices({ posters: [flaky, discord], metrics });
    const d = await w.pushAndBuild('production', [n], { fail: true });

    expect(discord.titles()).toEqual([`${d.id} failed on production`]);
    expect(ofStatus(n.outcomes, 'post_failed')).toEqual([
      expect.objectContaining({ surface: 'slack', kind: 'failed', attempts: 1, error: 'not_in_channel' }),
    ]);
    await w.advance(3_600_000, [n]);
    expect(flaky.attempts).toHaveLength(1);
    const text = await metrics.registry.metrics();
    expect(text).toContain('switchyard_notices_failed_total{surface="slack",kind="failed"} 1');
    expect(text).toContain('switchyard_notices_total{surface="discord",kind="failed"} 1');
  });

  it('stops after postAttempts, reporting how many were made', async () => {
    w = await createWorld();
    const flaky = new FlakyPoster('slack', w.clock, down(10));
    const n = await w.notices({
      posters: [flaky],
      postAttempts: 4,
      postRetryMs: 1_000,
      postRetryMaxMs: 3_000,
    });
    await w.pushAndBuild('production', [n]);
    const t0 = w.clock.now();
    // A second at a time: each retry reads and writes Redis (real I/O) before it sleeps again.
    for (let s = 0; s < 10; s++) await w.advance(1_000, [n]);
    await w.advance(3_600_000, [n]);

    // waits of 1 s, 2 s, then capped at 3 s
    expect(flaky.attempts).toEqual([t0, t0 + 1_000, t0 + 3_000, t0 + 6_000]);
    expect(flaky.posts).toHaveLength(0);
    expect(ofStatus(n.outcomes, 'post_failed')).toEqual([
      expect.objectContaining({ surface: 'slack', attempts: 4, error: '503 from the chat API' }),
    ]);
  });

  it('does not hold up the next notice while one waits for its retry', async () => {
    w = await createWorld();
    const flaky = new FlakyPoster('slack', w.clock, down(1));
    const n = await w.notices({ posters: [flaky], postRetryMs: 600_000 });
    const first = await w.pushAndBuild('production', [n]);
    const second = await w.pushAndBuild('production', [n]);
    // the second build took BUILD_MS; the first notice's retry is still a while away
    expect(flaky.titles()).toEqual([`${second.id} is live on production`]);
    await w.advance(600_000, [n]);
    expect(flaky.titles()).toEqual([
      `${second.id} is live on production`,
      `${first.id} is live on production`,
    ]);
  });

  it('a pending retry survives a restart: the next process posts it, once', async () => {
    w = await createWorld();
    const flaky = new FlakyPoster('slack', w.clock, down(1));
    const first = await w.notices({ posters: [flaky], postRetryMs: 5_000 });
    const d = await w.pushAndBuild('production', [first]);
    await first.stop(); // the process stops before its retry is due

    const after = new RecordingPoster('slack', w.clock);
    const next = await w.notices({ posters: [after], postRetryMs: 5_000 });
    await w.advance(5_000, [next]);
    expect(after.titles()).toEqual([`${d.id} is live on production`]);
    expect(flaky.attempts).toHaveLength(1);
    expect(ofStatus(next.outcomes, 'posted')).toMatchObject([{ kind: 'ready', attempt: 2 }]);
    await w.advance(3_600_000, [next]);
    expect(after.posts).toHaveLength(1);
  });

  it('two replicas: a pending retry is posted by one of them, once', async () => {
    w = await createWorld();
    const a = new FlakyPoster('slack', w.clock, down(1));
    const replicaA = await w.notices({ posters: [a] });
    const d = await w.pushAndBuild('production', [replicaA]);
    const b = new RecordingPoster('slack', w.clock);
    const replicaB = await w.notices({ posters: [b] });
    for (let s = 0; s < 6; s++) await w.advance(1_000, [replicaA, replicaB]);
    await w.advance(3_600_000, [replicaA, replicaB]);
    expect([...a.titles(), ...b.titles()]).toEqual([`${d.id} is live on production`]);
  });

  // Flaky under CI load since session 7 (2 of 6 full runs: the next process never took the post, even
  // after 30 poll rounds): retried while the cause is looked for (see the session 7 note on issue 3).
  it('a process that dies mid-post leaves the notice to another: the first attempt is kept in Redis', async () => {
    w = await createWorld();
    const stuck = new HangingPoster('slack', w.clock);
    const dying = await w.notices({ posters: [stuck], postLeaseMs: 120_000 });
    const d = await w.pushAndBuild('production', []);
    await stuck.hanging; // the post went out and never came back: the process is as good as dead

    try {
      const after = new RecordingPoster('slack', w.clock);
      const next = await w.notices({ posters: [after], postLeaseMs: 120_000, retryPollMs: 10_000 });
      await w.advance(110_000, [next]);
      expect(after.posts).toHaveLength(0); // still held by the first process's attempt
      // The lease ends at 120 s and the next poll (every 10 s) takes the post. A poll's Redis reads
      // outlast a tick of the manual clock under load, so a poll may land one round later: step on
      // until it did (a few rounds at most), never sleeping on the wall clock.
      for (let round = 0; round < 30 && after.posts.length === 0; round++) await w.advance(10_000, [next]);
      expect(after.titles()).toEqual([`${d.id} is live on production`]);
      expect(ofStatus(next.outcomes, 'posted')).toMatchObject([{ kind: 'ready', attempt: 1 }]);
      await w.advance(3_600_000, [next]);
      expect(after.posts).toHaveLength(1);
      expect(await w.redis.zcard(`${w.prefix}:notices:retries`)).toBe(0);
    } finally {
      stuck.release(false); // lets the "dead" process stop, whatever the assertions said
      await dying.stop();
    }
  });

  it('a post slower than its lease is not made again by the process still making it', async () => {
    w = await createWorld();
    const slow = new HangingPoster('slack', w.clock);
    const n = await w.notices({ posters: [slow], postLeaseMs: 60_000, retryPollMs: 10_000 });
    const d = await w.pushAndBuild('production', []);
    await slow.hanging;
    // The lease ends at 60 s: another replica could take the post then, but not this process's own
    // retry rounds, which would post it a second time while the first attempt is still under way.
    // (The service is busy with that post, so `idle()` cannot tell when a round ended: each step waits
    // until its loops are parked on the clock again.)
    const world = w;
    const parked = world.clock.pending;
    for (let round = 0; round < 12; round++) {
      await world.clock.advance(10_000);
      for (let i = 0; i < 100_000 && world.clock.pending < parked; i++) {
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      expect(world.clock.pending).toBeGreaterThanOrEqual(parked);
    }
    expect(slow.calls).toHaveLength(1);
    slow.release(true);
    await w.advance(10_000, [n]);
    expect(slow.titles()).toEqual([`${d.id} is live on production`]);
    expect(ofStatus(n.outcomes, 'posted')).toMatchObject([{ kind: 'ready' }]);
    expect(await w.redis.zcard(`${w.prefix}:notices:retries`)).toBe(0);
  });

  it('a process that dies during a retry leaves it to another once the lease ends', async () => {
    w = await createWorld();
    const flaky = new FlakyPoster('slack', w.clock, down(1));
    const first = await w.notices({ posters: [flaky], postRetryMs: 5_000 });
    const d = await w.pushAndBuild('production', [first]);
    await first.stop(); // the retry is due in 5 s

    const stuck = new HangingPoster('slack', w.clock);
    const dying = await w.notices({ posters: [stuck], postLeaseMs: 60_000 });
    void w.clock.advance(5_000);
    await stuck.hanging; // it took the retry, then hung

    try {
      const after = new RecordingPoster('slack', w.clock);
      const next = await w.notices({ posters: [after], postLeaseMs: 60_000, retryPollMs: 10_000 });
      await w.advance(50_000, [next]);
      expect(after.posts).toHaveLength(0);
      // the lease ends at 65 s; a poll may land a round late under load (see the test above)
      for (let round = 0; round < 30 && after.posts.length === 0; round++) await w.advance(10_000, [next]);
      expect(after.titles()).toEqual([`${d.id} is live on production`]);
      expect(ofStatus(next.outcomes, 'posted')).toMatchObject([{ kind: 'ready', attempt: 2 }]);
    } finally {
      stuck.release(false);
      await dying.stop();
    }
    expect(stuck.posts).toHaveLength(0);
    expect(await w.redis.zcard(`${w.prefix}:notices:retries`)).toBe(0);
  });

  it('a slow post is not taken by another replica while it runs, and is posted once', async () => {
    w = await createWorld();
    const slow = new HangingPoster('slack', w.clock);
    const a = await w.notices({ posters: [slow], postLeaseMs: 120_000 });
    const d = await w.pushAndBuild('production', []);
    await slow.hanging;
    const other = new RecordingPoster('slack', w.clock);
    const b = await w.notices({ posters: [other], postLeaseMs: 120_000, retryPollMs: 10_000 });
    await w.advance(100_000, [b]);
    slow.release(true);
    await w.advance(3_600_000, [a, b]);
    expect(slow.titles()).toEqual([`${d.id} is live on production`]);
    expect(other.posts).toHaveLength(0);
    expect(await w.redis.zcard(`${w.prefix}:notices:retries`)).toBe(0);
  });

  it("is not held up by many due posts for a surface it cannot post to (another replica's)", async () => {
    w = await createWorld();
    const world = w;
    // 60 due Discord posts (this replica has no Discord poster), then one due Slack post.
    const entry = (surface: string, i: number) =>
      JSON.stringify({
        environment: 'production',
        kind: 'ready',
        key: `k-${surface}-${i}`,
        surface,
        channel: surface === 'slack' ? 'C0ALERTS' : '1200000000000000001',
        view: {
          kind: 'notice',
          title: `${surface} ${i}`,
          blocks: [],
          buttons: [],
          tone: 'info',
          summary: 'x',
          ephemeral: false,
        },
        attempt: 2,
        since: world.clock.now(),
        id: `${surface}${i}`,
      });
    const key = `${w.prefix}:notices:retries`;
    for (let i = 0; i < 60; i++) await w.redis.zadd(key, w.clock.now() - 1_000 + i, entry('discord', i));
    await w.redis.zadd(key, w.clock.now(), entry('slack', 0));
    const slack = new RecordingPoster('slack', w.clock);
    const n = await w.notices({ posters: [slack], retryPollMs: 10_000 });
    await w.advance(10_000, [n]);
    expect(slack.titles()).toEqual(['slack 0']);
    expect(await w.redis.zcard(key)).toBe(60); // the Discord ones are left for a replica that can post them
  });

  it('drops a malformed pending post without stopping the others', async () => {
    w = await createWorld();
    const flaky = new FlakyPoster('slack', w.clock, down(1));
    const n = await w.notices({ posters: [flaky], postRetryMs: 5_000 });
    await w.redis.zadd(`${w.prefix}:notices:retries`, w.clock.now(), '{"not":"a pending post"}');
    const d = await w.pushAndBuild('production', [n]);
    await w.advance(5_000, [n]);
    expect(flaky.titles()).toEqual([`${d.id} is live on production`]);
    expect(await w.redis.zcard(`${w.prefix}:notices:retries`)).toBe(0);
  });

  it('drops a pending post that no replica can post within an hour', async () => {
    w = await createWorld({ env: { DISCORD_ALERT_CHANNEL: '1200000000000000001' } });
    const discord = new FlakyPoster('discord', w.clock, down(1));
    const first = await w.notices({ posters: [w.slack, discord] });
    await w.pushAndBuild('production', [first]);
    await first.stop();
    // The next process has no Discord surface: the pending Discord post is not its to post.
    const next = await w.notices({ posters: [w.slack], retryPollMs: 60_000 });
    for (let m = 0; m < 60; m++) await w.advance(60_000, [next]);
    expect(await w.redis.zcard(`${w.prefix}:notices:retries`)).toBe(1);
    await w.advance(60_000, [next]);
    expect(await w.redis.zcard(`${w.prefix}:notices:retries`)).toBe(0);
    expect(ofStatus(next.outcomes, 'post_failed')).toEqual([
      expect.objectContaining({ surface: 'discord', error: expect.stringContaining('within an hour') }),
    ]);
    expect(discord.attempts).toHaveLength(1);
  });

  it('stop() ends a pending retry without posting', async () => {
    w = await createWorld();
    const flaky = new FlakyPoster('slack', w.clock, down(1));
    const n = await w.notices({ posters: [flaky] });
    await w.pushAndBuild('production', [n]);
    await n.stop();
    await w.advance(3_600_000, []);
    expect(flaky.attempts).toHaveLength(1);
    expect(flaky.posts).toHaveLength(0);
  });

  it('stop() waits for a hanging post at most stopTimeoutMs, says so once, and the next process posts it', async () => {
    w = await createWorld();
    const { logger, lines } = new CapturedLog();
    const stuck = new HangingPoster('slack', w.clock);
    const dying = await w.notices({ posters: [stuck], postLeaseMs: 60_000, stopTimeoutMs: 50, logger });
    const d = await w.pushAndBuild('production', []);
    await stuck.hanging; // the chat API never answers (its client's own time limit is not modelled)

    try {
      // A hang guard, not a speed check: the old stop() waited for the post for ever.
      let guard: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        dying.stop().then(() => 'stopped'),
        new Promise<string>((resolve) => {
          guard = setTimeout(() => resolve('still waiting after 10 s'), 10_000);
        }),
      ]);
      clearTimeout(guard);
      expect(outcome).toBe('stopped');
      expect(lines.filter((l) => /without waiting/.test(String(l.msg))).map((l) => [l.level, l.msg])).toEqual(
        [
          [
            40,
            expect.stringMatching(
              /^notices: stopping without waiting longer than 50 ms for the work under way/,
            ),
          ],
        ],
      );

      // The attempt was kept in Redis before it was made: the next process posts it once the lease ends.
      const after = new RecordingPoster('slack', w.clock);
      const next = await w.notices({ posters: [after], postLeaseMs: 60_000, retryPollMs: 10_000 });
      for (let round = 0; round < 10 && after.posts.length === 0; round++) await w.advance(10_000, [next]);
      expect(after.titles()).toEqual([`${d.id} is live on production`]);
    } finally {
      stuck.release(false);
    }
  });
});

describe('which chat API failures are retried', () => {
  const view: MessageView = {
    kind: 'notice',
    tone: 'info',
    title: 'dep_x is live on production',
    summary: 'dep_x is live on production',
    blocks: [],
    buttons: [],
    ephemeral: false,
  };

  it('Slack: a refusal is final; an unreachable API may pass', async () => {
    const slack = await new FakeSlack().start();
    try {
      const client = new WebClient(slack.token, {
        slackApiUrl: slack.apiUrl,
        retryConfig: { retries: 0 },
        logLevel: LogLevel.ERROR,
      });
      const poster = new SlackPoster(client, new SlackReporter({ client }));
      const refused = await poster.post('C0NOPE', view).catch((e: unknown) => e);
      expect(refused).toMatchObject({ name: 'SlackPostError', slackCode: 'channel_not_found' });
      expect(poster.retryable(refused)).toBe(false);
      await expect(poster.post('C0PROD', view)).resolves.toMatchObject({
        surface: 'slack',
        channel: 'C0PROD',
      });

      // A Slack never connected to (a socket the client kept from the calls above would fail as a
      // dropped connection instead, which may follow a delivered post: final, see slack.md).
      const gone = await new FakeSlack().start();
      await gone.close();
      const offline = new WebClient(gone.token, {
        slackApiUrl: gone.apiUrl,
        retryConfig: { retries: 0 },
        logLevel: LogLevel.ERROR,
      });
      const unreachable = await new SlackPoster(offline, new SlackReporter({ client: offline }))
        .post('C0PROD', view)
        .catch((e: unknown) => e);
      expect(unreachable).toMatchObject({ name: 'SlackPostError' });
      expect(poster.retryable(unreachable)).toBe(true);
    } finally {
      await slack.close();
    }
  });

  it('Discord: 4xx refusals are final; 5xx after the REST retries may pass', async () => {
    const fake = await startFakeDiscord();
    const rest = new REST({ api: fake.apiUrl, retries: 1 }).setToken(fake.token);
    try {
      const post = () =>
        rest
          .post(`/channels/${fake.channels.ops}/messages`, { body: { content: 'hi' } })
          .catch((e: unknown) => e);
      fake.failNext({
        method: 'POST',
        path: /\/messages$/,
        status: 403,
        code: 50001,
        message: 'Missing Access',
      });
      expect(discordRetryable(await post())).toBe(false);
      fake.failNext({
        method: 'POST',
        path: /\/messages$/,
        status: 404,
        code: 10003,
        message: 'Unknown Channel',
      });
      expect(discordRetryable(await post())).toBe(false);
      fake.failNext({
        method: 'POST',
        path: /\/messages$/,
        status: 502,
        code: 0,
        message: 'Bad Gateway',
        times: 2,
      });
      const bad = await post();
      expect(bad).toBeInstanceOf(Error);
      expect(discordRetryable(bad)).toBe(true);
      await expect(post()).resolves.toMatchObject({ content: 'hi' });
    } finally {
      rest.clearHashSweeper();
      rest.clearHandlerSweeper();
      await fake.close();
    }
  });

  it('Discord: a post Discord made but never answered is retried with the same nonce: one message', async () => {
    const fake = await startFakeDiscord();
    // discord.js gives an answer up after this and sends the post again (3 times), then fails it.
    const rest = createDiscordRest(fake.token, fake.apiUrl, { timeoutMs: 200 });
    try {
      w = await createWorld({ env: { DISCORD_ALERT_CHANNEL: fake.channels.alerts } });
      const poster = discordPoster(new DiscordMessages({ rest }));
      const n = await w.notices({ posters: [poster], postRetryMs: 5_000 });
      // The first attempt: Discord creates the message, and no answer to it or its re-sends comes in time.
      const held = fake.hold({ method: 'POST', path: /^\/channels\/\d+\/messages$/, times: 4 });
      const d = await w.pushAndBuild('production', [n]);
      await held.reached(4);
      held.release();
      expect(ofStatus(n.outcomes, 'posted')).toMatchObject([
        { kind: 'ready', refs: [], retrying: ['discord'] },
      ]);

      await w.advance(5_000, [n]); // the second attempt, answered at once
      const shown = fake.channelMessages(fake.channels.alerts);
      // The title as rendered for Discord (markdown escaped: `dep\_…`).
      expect(shown.map((m) => m.embeds[0]?.title)).toEqual([
        expect.stringContaining(`${d.id.replaceAll('_', '\\_')} is live on production`),
      ]);
      expect(ofStatus(n.outcomes, 'posted').at(-1)).toMatchObject({
        refs: [{ surface: 'discord', messageId: shown[0]?.id }],
        attempt: 2,
      });
    } finally {
      rest.clearHashSweeper();
      rest.clearHandlerSweeper();
      await fake.close();
    }
  });
});
