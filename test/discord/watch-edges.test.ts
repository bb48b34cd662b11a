/**
 * handlers/discord/watch.ts, the parts no end-to-end test pins: a new gateway session that begins while
 * a channel's catch-up is reading reads it back once more (what was posted meanwhile reached neither
 * that read nor a live session); a second "session usable" signal (a shard ready then a resume) does
 * not start a second catch-up of the same gap; the stores' last seen id only moves forward (compared
 * as numbers, not strings); read-back messages without `author.bot` are people's; a message whose
 * claim the store cannot make is handled anyway.
 */
import type { REST } from 'discord.js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ChannelWatch,
  MemoryWatchStore,
  parseMessagePage,
  RedisWatchStore,
  snowflakeAt,
} from '../../handlers/discord/watch.js';
import { ManualClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { createRedis, type RedisClient } from '../../src/redis.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);
const CHANNEL = '1200000000000000000';

/** A message of CHANNEL posted `agoMs` before T0, as GET /channels/{id}/messages lists it. */
function apiMessage(agoMs: number, content: string, author: Record<string, unknown> = { id: '77' }) {
  return {
    id: (BigInt(snowflakeAt(T0 - agoMs)) + 1n).toString(),
    channel_id: CHANNEL,
    author,
    type: 0,
    content,
  };
}

/** A ChannelWatch of CHANNEL (last seen a minute ago) whose reads wait for the test to answer them. */
async function gatedWatch() {
  const clock = new ManualClock(T0);
  const store = new MemoryWatchStore();
  await store.advance(CHANNEL, snowflakeAt(T0 - 60_000));
  const answers: ((page: unknown[]) => void)[] = [];
  const waiting: (() => void)[] = [];
  const rest = {
    get: () =>
      new Promise<unknown>((resolve) => {
        answers.push(resolve);
        for (const w of waiting.splice(0)) w();
      }),
  } as unknown as Pick<REST, 'get'>;
  const seen = new Set<string>();
  const handled: string[] = [];
  const watch = new ChannelWatch({
    channels: [CHANNEL],
    rest,
    store,
    clock,
    logger: silentLogger,
    seen: { first: (id) => !seen.has(id) && Boolean(seen.add(id)) },
    botUserId: () => undefined,
    handle: async (m) => {
      handled.push(m.content);
    },
  });
  /** Resolves once `n` reads have been asked for. */
  const reads = async (n: number): Promise<void> => {
    while (answers.length < n) await new Promise<void>((r) => waiting.push(r));
  };
  return { watch, handled, answers, reads };
}

describe('ChannelWatch catch-ups', () => {
  it('a new session that begins while a catch-up reads reads the channel back once more', async () => {
    const t = await gatedWatch();
    t.watch.sessionStarted();
    t.watch.catchUp();
    await t.reads(1);
    // The connection drops and a NEW session begins while the first read is under way: an alert posted
    // in between came on neither session.
    t.watch.sessionStarted();
    t.answers[0]?.([apiMessage(30_000, 'first')]);
    // Either a second read is asked for, or the catch-up ends without one (the gap stays missed).
    await Promise.race([t.reads(2), t.watch.settled()]);
    expect(t.answers).toHaveLength(2);
    t.answers[1]?.([apiMessage(10_000, 'posted between the sessions'), apiMessage(30_000, 'first')]);
    await t.watch.settled();
    expect(t.handled).toEqual(['first', 'posted between the sessions']);
  });

  it('a second "session usable" signal while the catch-up runs starts no second one', async () => {
    const t = await gatedWatch();
    t.watch.sessionStarted();
    t.watch.catchUp();
    await t.reads(1);
    t.watch.catchUp(); // e.g. ShardResume after ShardReady
    t.answers[0]?.([apiMessage(30_000, 'alert')]);
    await t.watch.settled();
    expect(t.answers).toHaveLength(1);
    expect(t.handled).toEqual(['alert']);
  });
});

describe('ChannelWatch paging', () => {
  it('stops at the page that reaches the last seen message: older pages are not read', async () => {
    const clock = new ManualClock(T0);
    const store = new MemoryWatchStore();
    const last = BigInt(snowflakeAt(T0 - 60_000));
    await store.advance(CHANNEL, last.toString());
    // A full page (100) of the newest messages: its oldest is from before the last seen one.
    const page = Array.from({ length: 100 }, (_, k) => ({
      ...apiMessage(0, `m${k}`),
      id: (last - 40n + BigInt(k) * 1_000n).toString(),
    })).reverse();
    let reads = 0;
    const rest = {
      get: async () => {
        reads += 1;
        return reads === 1 ? page : [];
      },
    } as unknown as Pick<REST, 'get'>;
    const handled: string[] = [];
    const seen = new Set<string>();
    const watch = new ChannelWatch({
      channels: [CHANNEL],
      rest,
      store,
      clock,
      logger: silentLogger,
      seen: { first: (id) => !seen.has(id) && Boolean(seen.add(id)) },
      botUserId: () => undefined,
      handle: async (m) => {
        handled.push(m.content);
      },
    });
    watch.sessionStarted();
    watch.catchUp();
    await watch.settled();
    expect(reads).toBe(1);
    expect(handled).toHaveLength(99);
  });
});

describe('ChannelWatch when the store fails', () => {
  it('a live alert whose claim cannot be made (Redis unreachable) is handled anyway, not dropped', async () => {
    const handled: string[] = [];
    const store = {
      lastSeen: async () => undefined,
      advance: async () => undefined,
      claim: async () => {
        throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
      },
    };
    const watch = new ChannelWatch({
      channels: [CHANNEL],
      rest: { get: async () => [] } as unknown as Pick<REST, 'get'>,
      store,
      clock: new ManualClock(T0),
      logger: silentLogger,
      seen: { first: () => true },
      botUserId: () => undefined,
      handle: async (m) => {
        handled.push(m.content);
      },
    });
    const m = apiMessage(1_000, 'HighErrorRate firing');
    await watch.live({
      id: m.id,
      channelId: CHANNEL,
      watchedAs: CHANNEL,
      authorId: '77',
      authorBot: true,
      content: m.content,
      embeds: [],
      createdTimestamp: T0 - 1_000,
      via: 'gateway',
    });
    expect(handled).toEqual(['HighErrorRate firing']);
  });
});

describe('watch stores', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  it('MemoryWatchStore: the last seen id never moves back', async () => {
    const store = new MemoryWatchStore();
    await store.advance(CHANNEL, '1300000000000000002');
    await store.advance(CHANNEL, '1300000000000000001');
    expect(await store.lastSeen(CHANNEL)).toBe('1300000000000000002');
  });

  it('RedisWatchStore: ids compare as numbers, so a longer id is newer and a shorter one never replaces it', async () => {
    const redis: RedisClient = createRedis(redisUrl());
    closers.push(() => redis.quit());
    const store = new RedisWatchStore(redis, `${uniqueName('sy')}:`);
    await store.advance(CHANNEL, '999999999999999999');
    await store.advance(CHANNEL, '1000000000000000000');
    expect(await store.lastSeen(CHANNEL)).toBe('1000000000000000000');
    await store.advance(CHANNEL, '999999999999999999');
    expect(await store.lastSeen(CHANNEL)).toBe('1000000000000000000');
  });
});

describe('parseMessagePage', () => {
  it('a message whose author carries no bot flag is a person’s; bot: true is a bot’s', () => {
    const page = parseMessagePage(
      [apiMessage(1_000, 'from a bot', { id: '78', bot: true }), apiMessage(2_000, 'from a person')],
      CHANNEL,
    );
    expect(page.messages.map((m) => [m.content, m.authorBot])).toEqual([
      ['from a person', false],
      ['from a bot', true],
    ]);
  });
});
