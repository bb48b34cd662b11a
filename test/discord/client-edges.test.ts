/**
 * handlers/discord/client.ts, the connection state after the session was READY, which no other test
 * pins down (real discord.js client against the fake Discord): a reconnect turns the status to
 * `waiting` (so /readyz says so), a resumed or re-identified session turns it back to `ready`, and a
 * stopped surface no longer says `ready`.
 */
import { Events, GatewayDispatchEvents } from 'discord.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createDiscordSurface,
  type DiscordConnectionStatus,
  type DiscordSurface,
} from '../../handlers/discord/client.js';
import type { GatewayEvent } from '../fakes/discord/gateway.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/server.js';
import { CapturedLog } from '../support/captured-log.js';

function nextGatewayEvent<K extends GatewayEvent['kind']>(fake: FakeDiscord, kind: K): Promise<unknown> {
  return new Promise((resolve) => {
    const on = (e: GatewayEvent) => {
      if (e.kind !== kind) return;
      fake.gateway.events.off('event', on);
      resolve(e);
    };
    fake.gateway.events.on('event', on);
  });
}

describe('discord connection state across a reconnect (mutants)', () => {
  let fake: FakeDiscord;
  let surface: DiscordSurface | undefined;
  let log: CapturedLog;

  beforeEach(async () => {
    fake = await startFakeDiscord();
    log = new CapturedLog('debug');
  });

  afterEach(async () => {
    await surface?.stop();
    surface = undefined;
    await fake.close();
  });

  function connect(): DiscordSurface {
    surface = createDiscordSurface({ token: fake.token, apiUrl: fake.apiUrl, logger: log.logger });
    return surface;
  }

  /** The status seen right after the client emitted `event` (listeners run in order: ours is last). */
  function statusOn(
    s: DiscordSurface,
    event: Events.ShardReconnecting | Events.ShardResume | Events.ShardReady,
  ) {
    return new Promise<DiscordConnectionStatus>((resolve) => s.client.once(event, () => resolve(s.status())));
  }

  it('a dropped connection says waiting while discord.js reconnects, and ready once resumed', async () => {
    const s = connect();
    await s.start();
    expect(s.status()).toEqual({ state: 'ready' });
    const reconnecting = statusOn(s, Events.ShardReconnecting);
    const resumed = statusOn(s, Events.ShardResume);
    fake.gateway.drop({ code: 4000 });
    expect(await reconnecting).toEqual({
      state: 'waiting',
      problem: 'gateway connection lost; reconnecting',
      attempts: 1,
    });
    expect(await resumed).toEqual({ state: 'ready' });
    expect(log.lines.filter((l) => l.msg === 'discord reconnected')).toHaveLength(1);
    expect(s.client.isReady()).toBe(true);
  });

  it('a session that could not be resumed is ready again once the new session is READY', async () => {
    const s = connect();
    await s.start();
    const invalid = nextGatewayEvent(fake, 'invalid_session');
    const reconnecting = statusOn(s, Events.ShardReconnecting);
    // discord.js spaces identifies 5 s apart (its identify throttle), so this test takes ~5 s.
    const ready = statusOn(s, Events.ShardReady);
    fake.gateway.invalidateSession();
    fake.gateway.drop({ code: 4000 });
    await invalid;
    expect((await reconnecting).state).toBe('waiting');
    expect(await ready).toEqual({ state: 'ready' });
  }, 20_000);

  it('a stopped surface no longer says ready', async () => {
    const s = connect();
    await s.start();
    expect(s.status()).toEqual({ state: 'ready' });
    await s.stop();
    surface = undefined;
    expect(s.status().state).toBe('waiting');
  });

  it('a session READY but resumed before the shard was ready is caught up on the resume (live alerts do not wait for good)', async () => {
    const handled: string[] = [];
    let liveHandled = () => {};
    const live = new Promise<void>((resolve) => {
      liveHandled = resolve;
    });
    const s = createDiscordSurface({
      token: fake.token,
      apiUrl: fake.apiUrl,
      logger: log.logger,
      onMessage: async (m) => {
        handled.push(m.content);
        if (m.content === 'live') liveHandled();
      },
      watch: { channels: [fake.channels.alerts] },
    });
    surface = s;
    await s.start();
    await s.caughtUp();
    // A new session's READY (a catch-up is now due), then the connection drops before the shard was
    // ready (discord.js waits for the guilds) and the session is resumed: ShardResume, no ShardReady.
    s.client.ws.emit(GatewayDispatchEvents.Ready, {}, 0);
    s.client.emit(Events.ShardResume, 0, 0);
    const caughtUp = await Promise.race([
      s.caughtUp().then(() => 'caught up'),
      new Promise<string>((resolve) => setTimeout(() => resolve('still due'), 5_000).unref()),
    ]);
    expect(caughtUp).toBe('caught up');
    fake.postMessage({
      channelId: fake.channels.alerts,
      author: { ...fake.user('grafana'), bot: true },
      content: 'live',
    });
    await live;
    expect(handled).toEqual(['live']);
  });

  it('watched channels but no message handler: MessageContent is not asked for (no 4014 where it is not enabled)', async () => {
    await fake.close();
    fake = await startFakeDiscord({ privilegedIntents: 0 });
    const s = createDiscordSurface({
      token: fake.token,
      apiUrl: fake.apiUrl,
      logger: log.logger,
      watch: { channels: [fake.channels.alerts] },
    });
    surface = s;
    await s.start();
    expect(s.status()).toEqual({ state: 'ready' });
  });
});
