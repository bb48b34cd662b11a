/**
 * Watched alert channels are caught up after a NEW gateway session (op 9 → IDENTIFY again, or a
 * Switchyard restart): the real discord.js client against the fake Discord, the last seen message
 * per channel in the real Redis. Messages posted while no session was connected are read back with
 * GET /channels/{id}/messages?after=…&limit=100, oldest first, each handled once — never history
 * from before the first start, never older than the window, never more than the page limit.
 * Tests wait on events (handled messages, gateway events, `caughtUp()`), never on sleeps.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Events, HTTPError, type REST } from 'discord.js';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningSwitchyard, startSwitchyard } from '../../handlers/app.js';
import { createDiscordSurface, type DiscordSurface } from '../../handlers/discord/client.js';
import {
  type ChannelMessage,
  ChannelWatch,
  MemoryWatchStore,
  parseMessagePage,
  RedisWatchStore,
  snowflakeAt,
  type WatchStore,
} from '../../handlers/discord/watch.js';
import { discordSurface } from '../../handlers/surfaces.js';
import { fileConfigSchema, parseEnv } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { createRedis, type RedisClient } from '../../src/redis.js';
import type { GatewayEvent } from '../fakes/discord/gateway.js';
import { type FakeDiscord, makeSnowflake, type RestCall, startFakeDiscord } from '../fakes/discord/server.js';
import { ObservedClock } from '../support/observed-clock.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { textOf, waitForPost } from './harness.js';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
});

function nextGatewayEvent(fake: FakeDiscord, kind: GatewayEvent['kind']): Promise<GatewayEvent> {
  return new Promise((resolve) => {
    const on = (e: GatewayEvent) => {
      if (e.kind !== kind) return;
      fake.gateway.events.off('event', on);
      resolve(e);
    };
    fake.gateway.events.on('event', on);
  });
}

/** What the surface handed to onMessage, in order; lets a test wait for a message by content. */
class Handled {
  readonly messages: ChannelMessage[] = [];
  private readonly events = new EventEmitter();

  readonly onMessage = async (m: ChannelMessage): Promise<void> => {
    this.messages.push(m);
    this.events.emit('message', m);
  };

  get contents(): string[] {
    return this.messages.map((m) => m.content);
  }

  waitFor(content: string): Promise<ChannelMessage> {
    const found = this.messages.find((m) => m.content === content);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => {
      const on = (m: ChannelMessage) => {
        if (m.content !== content) return;
        this.events.off('message', on);
        resolve(m);
      };
      this.events.on('message', on);
    });
  }
}

async function fakeDiscord(): Promise<FakeDiscord> {
  const fake = await startFakeDiscord();
  closers.push(() => fake.close());
  return fake;
}

function redis(): RedisClient {
  const r = createRedis(redisUrl());
  closers.push(() => r.quit());
  return r;
}

function surfaceOn(
  fake: FakeDiscord,
  handled: Handled,
  watch: { store?: WatchStore; maxPages?: number; clock?: ObservedClock } = {},
): DiscordSurface {
  const s = createDiscordSurface({
    token: fake.token,
    apiUrl: fake.apiUrl,
    onMessage: handled.onMessage,
    watch: { channels: [fake.channels.alerts], ...watch },
  });
  closers.push(() => s.stop());
  return s;
}

/** Starts the surface and waits until its first catch-up (or first-start bookkeeping) is done. */
async function started(s: DiscordSurface): Promise<DiscordSurface> {
  await s.start();
  await s.caughtUp();
  return s;
}

function messageReads(fake: FakeDiscord, channelId: string, from = 0): RestCall[] {
  return fake.calls
    .slice(from)
    .filter((c) => c.method === 'GET' && c.path === `/channels/${channelId}/messages`);
}

const grafana = (fake: FakeDiscord) => ({ ...fake.user('grafana'), bot: true });

describe('discord: watched channels are caught up after a new gateway session', () => {
  it('reads back an alert posted while the session was re-identified (op 9), once, oldest first', async () => {
    const fake = await fakeDiscord();
    const handled = new Handled();
    const s = await started(surfaceOn(fake, handled));
    const alerter = grafana(fake);
    const alerts = fake.channels.alerts;
    fake.postMessage({ channelId: alerts, author: alerter, content: 'before: all quiet' });
    await handled.waitFor('before: all quiet');

    const invalid = nextGatewayEvent(fake, 'invalid_session');
    const ready = new Promise<void>((resolve) => s.client.once(Events.ShardReady, () => resolve()));
    fake.gateway.invalidateSession();
    fake.gateway.drop({ code: 4000 });
    await invalid;
    // While the bot waits to identify again (discord.js spaces identifies 5 s apart), alerts arrive.
    const from = fake.calls.length;
    fake.postMessage({
      channelId: alerts,
      author: alerter,
      content: '[FIRING:1] HighErrorRate (production)',
    });
    fake.postMessage({
      channelId: alerts,
      author: alerter,
      content: '[RESOLVED] HighErrorRate (production)',
    });
    fake.postMessage({ channelId: fake.channels.general, author: alerter, content: 'not watched' });
    await ready;
    await s.caughtUp();

    expect(handled.contents).toEqual([
      'before: all quiet',
      '[FIRING:1] HighErrorRate (production)',
      '[RESOLVED] HighErrorRate (production)',
    ]);
    expect(handled.messages.slice(1).map((m) => m.via)).toEqual(['catch-up', 'catch-up']);
    // One read (the newest page reaches back past the last message seen); unwatched channels are not
    // read back.
    const reads = messageReads(fake, alerts, from);
    expect(reads.map((c) => c.query)).toEqual([{ limit: '100' }]);
    expect(messageReads(fake, fake.channels.general)).toEqual([]);

    // Live delivery goes on, and nothing read back is handled a second time.
    fake.postMessage({ channelId: alerts, author: alerter, content: 'after: live again' });
    await handled.waitFor('after: live again');
    expect(handled.contents).toHaveLength(4);
    expect(new Set(handled.messages.map((m) => m.id)).size).toBe(4);
  }, 30_000);

  it('a resumed session is not read back (Discord replays what it missed)', async () => {
    const fake = await fakeDiscord();
    const handled = new Handled();
    const s = await started(surfaceOn(fake, handled));
    const from = fake.calls.length;
    const resumed = new Promise<void>((resolve) => s.client.once(Events.ShardResume, () => resolve()));
    fake.gateway.drop({ code: 4000 });
    fake.postMessage({ channelId: fake.channels.alerts, author: grafana(fake), content: 'replayed' });
    await resumed;
    await handled.waitFor('replayed');
    await s.caughtUp();
    expect(handled.messages.map((m) => [m.content, m.via])).toEqual([['replayed', 'gateway']]);
    expect(messageReads(fake, fake.channels.alerts, from)).toEqual([]);
  });

  it('the very first start reads no history; a restart catches up from the last message seen (Redis)', async () => {
    const fake = await fakeDiscord();
    const store = new RedisWatchStore(redis(), `${uniqueName('sy')}:`);
    const alerter = grafana(fake);
    const alerts = fake.channels.alerts;
    fake.postMessage({ channelId: alerts, author: alerter, content: 'history: outage yesterday' });

    const first = new Handled();
    const a = await started(surfaceOn(fake, first, { store }));
    expect(first.contents).toEqual([]);
    expect(messageReads(fake, alerts)).toEqual([]);
    expect(await store.lastSeen(alerts)).toBeDefined();
    const live = fake.postMessage({ channelId: alerts, author: alerter, content: 'live: 5xx errors' });
    await first.waitFor('live: 5xx errors');
    expect(await store.lastSeen(alerts)).toBe(live.id);
    await a.stop();

    // Switchyard is down: these are dispatched to nobody.
    fake.postMessage({
      channelId: alerts,
      author: alerter,
      content: 'down 1: [FIRING:1] Latency (production)',
    });
    fake.postMessage({ channelId: alerts, author: alerter, content: 'down 2: checkout failing (prod)' });
    // The bot's own messages are read back too, and skipped.
    const own = await fetch(`${fake.apiUrl}/v10/channels/${alerts}/messages`, {
      method: 'POST',
      headers: { authorization: `Bot ${fake.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'own message' }),
    });
    expect(own.status).toBe(200);
    const ownId = ((await own.json()) as { id: string }).id;

    const second = new Handled();
    const from = fake.calls.length;
    await started(surfaceOn(fake, second, { store }));
    expect(second.contents).toEqual([
      'down 1: [FIRING:1] Latency (production)',
      'down 2: checkout failing (prod)',
    ]);
    expect(messageReads(fake, alerts, from).map((c) => c.query)).toEqual([{ limit: '100' }]);
    expect(await store.lastSeen(alerts)).toBe(ownId);
  }, 30_000);

  it('reads back only messages younger than the window', async () => {
    const fake = await fakeDiscord();
    const store = new RedisWatchStore(redis(), `${uniqueName('sy')}:`);
    const alerts = fake.channels.alerts;
    const alerter = grafana(fake);
    const now = Date.now();
    // Last seen two hours ago (a long outage).
    await store.advance(alerts, snowflakeAt(now - 2 * 3_600_000));
    fake.postMessage({
      channelId: alerts,
      author: alerter,
      content: 'stale: 40 min old',
      at: now - 40 * 60_000,
    });
    fake.postMessage({
      channelId: alerts,
      author: alerter,
      content: 'fresh: 5 min old',
      at: now - 5 * 60_000,
    });
    const handled = new Handled();
    await started(surfaceOn(fake, handled, { store }));
    expect(handled.contents).toEqual(['fresh: 5 min old']);
  });

  it('reads back from the newest end, keeps the newest messages at the page limit, and hands them over oldest first', async () => {
    const fake = await fakeDiscord();
    const store = new RedisWatchStore(redis(), `${uniqueName('sy')}:`);
    const alerts = fake.channels.alerts;
    const alerter = grafana(fake);
    await store.advance(alerts, snowflakeAt(Date.now() - 10 * 60_000));
    const posted = Array.from({ length: 250 }, (_, k) =>
      fake.postMessage({ channelId: alerts, author: alerter, content: `m${k}` }),
    );
    const handled = new Handled();
    await started(surfaceOn(fake, handled, { store, maxPages: 2 }));
    // 250 messages in the gap, 200 read: the newest 200, handled oldest first.
    expect(handled.contents).toEqual(posted.slice(50).map((m) => m.content));
    const reads = messageReads(fake, alerts);
    expect(reads).toHaveLength(2);
    expect(reads[1]?.query).toEqual({ before: posted[150]?.id, limit: '100' });
    expect(await store.lastSeen(alerts)).toBe(posted[249]?.id);
  });

  it('a message already handled (by a replica, or before a crash) is not handled again when read back', async () => {
    const fake = await fakeDiscord();
    const r = redis();
    const prefix = `${uniqueName('sy')}:`;
    const store = new RedisWatchStore(r, prefix);
    const alerts = fake.channels.alerts;
    const alerter = grafana(fake);
    const first = new Handled();
    const a = await started(surfaceOn(fake, first, { store }));
    const cursor = await store.lastSeen(alerts);
    fake.postMessage({ channelId: alerts, author: alerter, content: '[FIRING:1] DiskFull (production)' });
    await first.waitFor('[FIRING:1] DiskFull (production)');
    await a.stop();
    // The process died before it remembered the message as seen: the cursor is still before it.
    await r.set(`${prefix}discord:watch:last:${alerts}`, cursor ?? '0');

    const second = new Handled();
    const from = fake.calls.length;
    await started(surfaceOn(fake, second, { store }));
    expect(messageReads(fake, alerts, from).map((c) => c.query)).toEqual([{ limit: '100' }]);
    expect(second.contents).toEqual([]);
  }, 30_000);

  it('a catch-up that Discord refuses is logged, and live messages still flow', async () => {
    const fake = await fakeDiscord();
    const store = new RedisWatchStore(redis(), `${uniqueName('sy')}:`);
    const alerts = fake.channels.alerts;
    await store.advance(alerts, snowflakeAt(Date.now() - 60_000));
    fake.failNext({
      method: 'GET',
      path: /^\/channels\/\d+\/messages$/,
      status: 403,
      code: 50001,
      message: 'Missing Access',
    });
    const handled = new Handled();
    await started(surfaceOn(fake, handled, { store }));
    fake.postMessage({ channelId: alerts, author: grafana(fake), content: 'live after a failed catch-up' });
    await handled.waitFor('live after a failed catch-up');
    expect(messageReads(fake, alerts).map((c) => c.status)).toEqual([403]);
  });

  it('a catch-up that meets a 502 blip is tried again after a pause on its clock; live messages wait for it', async () => {
    const fake = await fakeDiscord();
    const store = new RedisWatchStore(redis(), `${uniqueName('sy')}:`);
    const alerts = fake.channels.alerts;
    const alerter = grafana(fake);
    const cursor = snowflakeAt(Date.now() - 60_000);
    await store.advance(alerts, cursor);
    // Posted while Switchyard was away; Discord answers 502 to the first read back, and to the three
    // retries discord.js makes of it at once.
    fake.postMessage({
      channelId: alerts,
      author: alerter,
      content: '[FIRING:1] HighErrorRate (production)',
    });
    fake.failNext({
      method: 'GET',
      path: new RegExp(`^/channels/${alerts}/messages$`),
      status: 502,
      code: 0,
      message: '502 Bad Gateway',
      times: 4,
    });
    const clock = new ObservedClock(Date.now());
    const handled = new Handled();
    const s = surfaceOn(fake, handled, { store, clock });
    const paused = new Promise<number>((resolve) => clock.events.once('sleep', resolve));
    await s.start();
    expect(await Promise.race([paused, s.caughtUp().then(() => 'given up')])).toBe(1000);

    // A live message meanwhile waits for the catch-up: the cursor does not move past the gap.
    const arrived = new Promise<void>((resolve) => s.client.once(Events.MessageCreate, () => resolve()));
    const live = fake.postMessage({ channelId: alerts, author: alerter, content: 'live: still firing' });
    await arrived;
    expect(handled.contents).toEqual([]);
    expect(await store.lastSeen(alerts)).toBe(cursor);

    await clock.advance(1000); // Discord answers again
    await s.caughtUp();
    await handled.waitFor('live: still firing');
    // In the order posted, each once (the retried read found the live message too).
    expect(handled.contents).toEqual(['[FIRING:1] HighErrorRate (production)', 'live: still firing']);
    expect(messageReads(fake, alerts).map((c) => c.status)).toEqual([502, 502, 502, 502, 200]);
    expect(await store.lastSeen(alerts)).toBe(live.id);
  }, 30_000);

  it('parses a page of messages with zod: malformed entries are skipped, a non-list is an error', () => {
    const ok = {
      id: '1300000000000000002',
      channel_id: '1200000000000000000',
      author: { id: '1100000000000000000', bot: true },
      content: '',
      embeds: [{ title: '[FIRING:1] HighLatency', fields: [{ name: 'env', value: 'production' }] }],
      type: 0,
    };
    const page = parseMessagePage(
      [ok, { id: '1300000000000000001', channel_id: 'x', content: 7 }, { nonsense: true }],
      '1200000000000000000',
    );
    expect(page.ids).toEqual(['1300000000000000002', '1300000000000000001']);
    expect(page.malformed).toBe(2);
    expect(page.messages).toEqual([
      expect.objectContaining({
        id: ok.id,
        authorBot: true,
        embeds: [
          {
            title: '[FIRING:1] HighLatency',
            description: null,
            fields: [{ name: 'env', value: 'production' }],
          },
        ],
        via: 'catch-up',
      }),
    ]);
    expect(() => parseMessagePage({ message: 'not a list' }, '1')).toThrow(/expected an array/);
  });
});

describe("discord: Discord's own notices in a watched channel are not messages to read", () => {
  it('live: a thread created (type 18, content = the thread name), a pin and a join are skipped; a reply (19) is read', async () => {
    const fake = await fakeDiscord();
    const handled = new Handled();
    await started(surfaceOn(fake, handled));
    const alice = fake.user('alice');
    const alerts = fake.channels.alerts;
    // A message to build notices from (in an unwatched channel: handed on too, as every guild message).
    const base = fake.postMessage({ channelId: fake.channels.general, author: alice, content: 'hello' });
    await handled.waitFor('hello');
    const notice = (type: number, content: string) =>
      fake.gateway.dispatch('MESSAGE_CREATE', {
        ...(fake.messageObject(base) as Record<string, unknown>),
        id: makeSnowflake(),
        channel_id: alerts,
        type,
        content,
      });
    notice(18, 'postmortem: checkout errors [prod] last week'); // THREAD_CREATED
    notice(6, ''); // CHANNEL_PINNED_MESSAGE
    notice(7, ''); // USER_JOIN
    notice(19, '[FIRING:1] Checkout down (production)'); // REPLY: someone posted it
    // A message posted after them all: once it is handled, the notices have been through the same path.
    fake.postMessage({ channelId: alerts, author: grafana(fake), content: 'marker' });
    await handled.waitFor('marker');
    expect(handled.contents).toEqual(['hello', '[FIRING:1] Checkout down (production)', 'marker']);
  });

  it('read back: notices on a page are neither handed on nor counted as malformed (their ids still page)', () => {
    const message = (id: string, type: number, content: string) => ({
      id,
      channel_id: '1200000000000000000',
      author: { id: '1100000000000000000' },
      content,
      embeds: [],
      type,
    });
    const page = parseMessagePage(
      [
        message('1300000000000000004', 0, '[FIRING:1] DiskFull env=staging'),
        message('1300000000000000003', 18, 'postmortem: checkout errors [prod] last week'),
        message('1300000000000000002', 19, '[FIRING:1] Checkout down (production)'),
        message('1300000000000000001', 6, ''),
      ],
      '1200000000000000000',
    );
    expect(page.ids).toHaveLength(4);
    expect(page.malformed).toBe(0);
    expect(page.messages.map((m) => m.content)).toEqual([
      '[FIRING:1] Checkout down (production)',
      '[FIRING:1] DiskFull env=staging',
    ]);
  });
});

describe('discord: an alert posted while Switchyard was down (whole process)', () => {
  /** One Switchyard process with the real Discord surface; the same namespace again is a restart. */
  function startProcess(fake: FakeDiscord, dataDir: string, namespace: string): Promise<RunningSwitchyard> {
    const env = parseEnv({
      PORT: '0',
      LOCAL_ROUTER_PORT: '0',
      REDIS_URL: redisUrl(),
      LOG_LEVEL: 'silent',
      DISCORD_TOKEN: fake.token,
      DISCORD_APPLICATION_ID: fake.applicationId,
      DISCORD_API_URL: fake.apiUrl,
    });
    const file = fileConfigSchema.parse({
      local: { reactivationTime: '200ms', buildTime: '300ms' },
      alerts: { watch: { discord: [fake.channels.alerts] } },
    });
    return startSwitchyard(
      { config: { env, file, platform: 'local' }, logger: silentLogger, dataDir, namespace },
      [discordSurface],
    );
  }

  it('gets its suggestion, as a reply, once Switchyard is back', async () => {
    const fake = await fakeDiscord();
    const dataDir = mkdtempSync(join(tmpdir(), 'sy-catch-up-'));
    closers.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const namespace = uniqueName('sy');
    const channel = fake.channels.alerts;
    const alertmanager = { ...fake.user('Alertmanager'), bot: true };

    const first = await startProcess(fake, dataDir, namespace);
    await first.stop();
    // While Switchyard is down, Alertmanager's Discord integration posts an embed-only alert.
    const alert = fake.postMessage({
      channelId: channel,
      author: alertmanager,
      content: '',
      embeds: [{ title: '[FIRING:1] HighErrorRate (production)', description: '5xx ratio above 5%' }],
    });
    const from = fake.calls.length;
    const second = await startProcess(fake, dataDir, namespace);
    closers.push(() => second.stop());
    const suggestion = await waitForPost(fake, channel, from);
    const post = fake.calls.find(
      (c) => c.method === 'POST' && c.path === `/channels/${channel}/messages` && c.index >= from,
    );
    expect(post?.body).toMatchObject({ message_reference: { message_id: alert.id } });
    expect(textOf(suggestion)).toContain('HighErrorRate');
    expect(messageReads(fake, channel, from)).toHaveLength(1);
  }, 30_000);
});

describe('discord: a catch-up Discord keeps failing', () => {
  const CHANNEL = '1200000000000000000';

  /** A ChannelWatch of CHANNEL (last seen a minute ago) over a REST whose reads `read` answers. */
  async function watchOver(clock: ObservedClock, read: (n: number) => Promise<unknown>) {
    let reads = 0;
    const rest = { get: () => read(++reads) } as unknown as Pick<REST, 'get'>;
    const store = new MemoryWatchStore();
    await store.advance(CHANNEL, snowflakeAt(clock.now() - 60_000));
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
    return { watch, store, handled, reads: () => reads };
  }

  const unavailable = () =>
    Promise.reject(
      new HTTPError(503, 'Service Unavailable', 'GET', 'https://discord.test/api', {
        files: undefined,
        body: undefined,
      }),
    );

  /** The watch's next pause on the clock, or 'settled'; subscribe before it can get there. */
  const nextPause = (clock: ObservedClock, watch: ChannelWatch): Promise<number | 'settled'> =>
    Promise.race([
      new Promise<number>((resolve) => clock.events.once('sleep', resolve)),
      watch.settled().then(() => 'settled' as const),
    ]);

  /** Moves the clock through the watch's pauses until its catch-ups are settled; returns the pauses. */
  async function ridePauses(
    clock: ObservedClock,
    watch: ChannelWatch,
    first: Promise<number | 'settled'>,
  ): Promise<number[]> {
    const pauses: number[] = [];
    let next = first;
    for (;;) {
      const pause = await next;
      if (pause === 'settled') return pauses;
      pauses.push(pause);
      next = nextPause(clock, watch);
      await clock.advance(pause);
    }
  }

  it('tries again with pauses doubling to a minute, and gives the gap up once its first failure is maxAgeMs ago', async () => {
    const clock = new ObservedClock(Date.now());
    const { watch, store, handled, reads } = await watchOver(clock, unavailable);
    const start = clock.now();
    watch.sessionStarted();
    const first = nextPause(clock, watch);
    watch.catchUp();
    const pauses = await ridePauses(clock, watch, first);
    expect(pauses.slice(0, 8)).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
    expect(new Set(pauses.slice(6))).toEqual(new Set([60_000]));
    // Reads at 0, 1, 3, 7, 15, 31 s, then every minute from 63 s; the one at 1803 s is the last.
    expect(clock.now() - start).toBe(1_803_000);
    expect(reads()).toBe(36);
    // Given up: live messages flow again.
    const id = snowflakeAt(clock.now());
    await watch.live({
      id,
      channelId: CHANNEL,
      watchedAs: CHANNEL,
      authorId: '1100000000000000000',
      authorBot: true,
      content: 'live after the outage',
      embeds: [],
      createdTimestamp: clock.now(),
      via: 'gateway',
    });
    expect(handled).toEqual(['live after the outage']);
    expect(await store.lastSeen(CHANNEL)).toBe(id);
  });

  it('stop() ends the retries at once', async () => {
    const clock = new ObservedClock(Date.now());
    const { watch, reads } = await watchOver(clock, unavailable);
    watch.sessionStarted();
    const paused = nextPause(clock, watch);
    watch.catchUp();
    expect(await paused).toBe(1000);
    watch.stop();
    await watch.settled();
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(clock.pending).toBe(0);
    await clock.advance(60_000);
    expect(reads()).toBe(1);
  });

  it('a refusal or a malformed answer is given up at once', async () => {
    const clock = new ObservedClock(Date.now());
    const sleeps: number[] = [];
    clock.events.on('sleep', (ms: number) => sleeps.push(ms));
    const malformed = await watchOver(clock, async () => ({ message: 'not a page' }));
    malformed.watch.sessionStarted();
    malformed.watch.catchUp();
    await malformed.watch.settled();
    const refused = await watchOver(clock, () =>
      Promise.reject(
        new HTTPError(403, 'Forbidden', 'GET', 'https://discord.test/api', {
          files: undefined,
          body: undefined,
        }),
      ),
    );
    refused.watch.sessionStarted();
    refused.watch.catchUp();
    await refused.watch.settled();
    expect([malformed.reads(), refused.reads(), sleeps]).toEqual([1, 1, []]);
  });
});
