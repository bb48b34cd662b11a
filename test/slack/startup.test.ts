/**
 * Start-up against Slack (handlers/slack/app.ts, SlackStartup), on the wire-level fake Slack: a bot
 * token Slack rejects stops start-up with a message naming SLACK_BOT_TOKEN (SLACK_APP_TOKEN for the
 * Socket Mode token); a Slack Web API that hangs at start neither kills the process (no unhandled
 * rejection) nor disables the surface: start-up goes on, retries in the background, commands and
 * clicks meanwhile get a "cannot reach Slack" reply only their sender sees, and once Slack answers
 * they are handled — over HTTP and over Socket Mode. And `stop()`: a stopped app neither says it
 * reconnects nor connects, whatever Slack was still answering when it stopped.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { App, SocketModeReceiver } from '@slack/bolt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startSwitchyard } from '../../handlers/app.js';
import { createSlackApp, type SlackApp, type SlackAppOptions } from '../../handlers/slack/app.js';
import { slackSurface } from '../../handlers/slack/surface.js';
import { loadConfig } from '../../src/config.js';
import { HttpServer } from '../../src/http.js';
import { type Logger, silentLogger } from '../../src/log.js';
import { SlackRequests } from '../fakes/slack/requests.js';
import { FakeSlack, type FakeSlackOptions, type RecordedCall } from '../fakes/slack/server.js';
import { CapturedLog } from '../support/captured-log.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const SECRET = 'startup-signing-secret';
const closers: (() => unknown)[] = [];
const rejections: unknown[] = [];
const onRejection = (reason: unknown) => rejections.push(reason);

beforeEach(() => {
  rejections.length = 0;
  process.on('unhandledRejection', onRejection);
});

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  process.off('unhandledRejection', onRejection);
});

interface Rig {
  readonly fake: FakeSlack;
  readonly slack: SlackApp;
  readonly requests: SlackRequests;
  /** Slash command texts, action ids and message texts the registered handlers saw. */
  readonly handled: string[];
}

/** Redis' `SET key value EX ttl NX` for the Events API dedupe middleware, in memory. */
function dedupeRedis() {
  const keys = new Set<string>();
  return {
    set: async (key: string) => {
      if (keys.has(key)) return null;
      keys.add(key);
      return 'OK';
    },
  } as never;
}

async function rig(
  opts: {
    fake?: FakeSlackOptions;
    botToken?: string;
    appToken?: string;
    socket?: boolean;
    before?: (fake: FakeSlack) => void;
    logger?: Logger;
  } & Pick<SlackAppOptions, 'startup' | 'callTimeoutMs'> = {},
): Promise<Rig> {
  const fake = await new FakeSlack(opts.fake).start();
  closers.push(() => fake.close());
  opts.before?.(fake);
  const http = new HttpServer();
  const handled: string[] = [];
  const slack = createSlackApp(
    {
      botToken: opts.botToken ?? fake.token,
      ...(opts.socket === true
        ? { appToken: opts.appToken ?? fake.appToken }
        : { signingSecret: SECRET, http }),
      apiUrl: fake.apiUrl,
      redis: dedupeRedis(),
      logger: opts.logger ?? silentLogger,
      // Far away unless a test of hanging calls asks for a short one: under load an answer can take
      // longer than a short limit, and the client would send the call again (one call more at the fake).
      callTimeoutMs: opts.callTimeoutMs ?? 60_000,
      ...(opts.startup === undefined ? {} : { startup: opts.startup }),
    },
    (app: App) => {
      app.command('/rollback', async ({ ack, command }) => {
        handled.push(`command:${command.text}`);
        await ack();
      });
      app.action(/.*/, async ({ ack, action }) => {
        handled.push(`click:${'action_id' in action ? action.action_id : '?'}`);
        await ack();
      });
      app.event('message', async ({ event }) => {
        handled.push(`message:${String((event as { text?: unknown }).text)}`);
      });
    },
  );
  const port = await http.listen(0);
  closers.push(async () => {
    await slack.stop();
    await http.close();
  });
  return {
    fake,
    slack,
    requests: new SlackRequests(`http://127.0.0.1:${port}/slack/events`, SECRET, fake),
    handled,
  };
}

const FAST_RETRY = { retryMinMs: 20, retryMaxMs: 20 } as const;
/** The call time limit of the tests of hanging calls: a hang ends with a TimeoutError this soon. */
const HANG_LIMIT_MS = 200;

describe('Slack start-up: a token Slack rejects', () => {
  it('a wrong SLACK_BOT_TOKEN stops start-up with a config message naming it (invalid_auth)', async () => {
    const r = await rig({ botToken: 'xoxb-typo' });
    const failure = await r.slack.start().then(
      () => undefined,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(failure?.name).toBe('ConfigError');
    expect(failure?.code).toBe('config_invalid');
    expect(failure?.message).toMatch(/^SLACK_BOT_TOKEN: Slack rejected the bot token \(invalid_auth\)/);
    expect(r.slack.status()).toEqual({ state: 'rejected', problem: 'invalid_auth' });
    expect(rejections).toEqual([]);
  });

  it.each(['token_revoked', 'account_inactive'] as const)(
    'a %s bot token stops start-up the same way',
    async (error) => {
      const r = await rig({ before: (fake) => fake.revokeToken(error) });
      await expect(r.slack.start()).rejects.toThrow(
        `SLACK_BOT_TOKEN: Slack rejected the bot token (${error})`,
      );
      expect(rejections).toEqual([]);
    },
  );

  it('startSwitchyard fails with that message instead of crashing on an unhandled invalid_auth', async () => {
    const fake = await new FakeSlack().start();
    closers.push(() => fake.close());
    const dataDir = mkdtempSync(join(tmpdir(), 'sy-slack-startup-'));
    closers.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const config = loadConfig({
      PORT: '0',
      LOCAL_ROUTER_PORT: '0',
      REDIS_URL: redisUrl(),
      SLACK_BOT_TOKEN: 'xoxb-not-the-right-one',
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_API_URL: fake.apiUrl,
    });
    await expect(
      startSwitchyard({ config, logger: silentLogger, dataDir, namespace: uniqueName('sy') }, [slackSurface]),
    ).rejects.toThrow(/^SLACK_BOT_TOKEN: Slack rejected the bot token \(invalid_auth\)/);
    expect(rejections).toEqual([]);
  });

  it('startSwitchyard starts while Slack cannot be reached, and /readyz says so without failing', async () => {
    const fake = await new FakeSlack().start();
    const apiUrl = fake.apiUrl;
    await fake.close(); // nothing listens there: Slack is down
    const dataDir = mkdtempSync(join(tmpdir(), 'sy-slack-startup-'));
    closers.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const config = loadConfig({
      PORT: '0',
      LOCAL_ROUTER_PORT: '0',
      REDIS_URL: redisUrl(),
      SLACK_BOT_TOKEN: fake.token,
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_API_URL: apiUrl,
    });
    const running = await startSwitchyard(
      { config, logger: silentLogger, dataDir, namespace: uniqueName('sy') },
      [slackSurface],
    );
    closers.push(() => running.stop());
    const ready = await fetch(`http://127.0.0.1:${running.port}/readyz`);
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { chat?: Record<string, string> };
    expect(body.chat?.slack).toMatch(/^waiting: ECONNREFUSED/);
    expect(rejections).toEqual([]);
  });

  it('a wrong SLACK_APP_TOKEN (Socket Mode) stops start-up with a message naming it', async () => {
    const r = await rig({ socket: true, appToken: 'xapp-typo' });
    await expect(r.slack.start()).rejects.toThrow(
      /^SLACK_APP_TOKEN: Slack rejected the app-level token \(invalid_auth\)/,
    );
    expect(rejections).toEqual([]);
  });
});

describe('Slack start-up: Slack unreachable or hanging at start', () => {
  it('HTTP: start-up goes on, nothing crashes, and once Slack answers commands and clicks are handled', async () => {
    // The first check (auth.test and the client's two retries) hangs until it times out.
    const r = await rig({
      before: (fake) => fake.stall('auth.test', 3),
      callTimeoutMs: HANG_LIMIT_MS,
      startup: FAST_RETRY,
    });
    await r.slack.start();
    expect(r.fake.stalled('auth.test')).toBe(3);
    expect(r.slack.status()).toMatchObject({ state: 'waiting', problem: 'TimeoutError' });
    // The background retry reaches Slack: no restart needed.
    await r.fake.waitForCall('auth.test', (c) => c.response.ok === true);
    await r.slack.ready();
    const command = await r.requests.command({ command: '/rollback', text: 'production' });
    expect(command.status).toBe(200);
    const click = await r.requests.click({ actionId: 'sy1:confirm:plan1', messageTs: '1.000001' });
    expect(click.status).toBe(200);
    expect(r.handled).toEqual(['command:production', 'click:sy1:confirm:plan1']);
    expect(rejections).toEqual([]);
  }, 20_000);

  it('HTTP: connection refused at start (Slack down, or a wrong SLACK_API_URL): start-up goes on', async () => {
    const r = await rig({ startup: { retryMinMs: 60_000, retryMaxMs: 60_000 } });
    await r.fake.close(); // nothing listens on its port any more
    await r.slack.start();
    expect(r.slack.status()).toMatchObject({ state: 'waiting', problem: 'ECONNREFUSED', attempts: 1 });
    expect(rejections).toEqual([]);
  });

  it('HTTP: a command or click while Slack cannot be reached gets a reply only its sender sees', async () => {
    const r = await rig({
      before: (fake) => fake.stall('auth.test', 1_000),
      startup: { waitMs: 50, requestWaitMs: 100, retryMinMs: 60_000, retryMaxMs: 60_000 },
    });
    await r.slack.start(); // bounded: does not wait for Slack
    expect(r.slack.status().state).toBe('waiting');

    const command = await r.requests.command({ command: '/rollback', text: 'production' });
    expect(command.status).toBe(200);
    expect(command.json).toMatchObject({ response_type: 'ephemeral' });
    expect(String(command.json?.text)).toMatch(
      /cannot reach Slack's Web API right now \(.+\).*Nothing was changed/,
    );

    const click = await r.requests.click({ actionId: 'sy1:confirm:plan1', messageTs: '1.000001' });
    expect(click.status).toBe(200);
    const note = await r.fake.waitForResponse((res) => res.body.response_type === 'ephemeral');
    expect(String(note.body.text)).toMatch(/cannot reach Slack's Web API right now/);
    expect(note.body.replace_original).toBe(false);

    expect(r.handled).toEqual([]);
    expect(rejections).toEqual([]);
  });

  it('HTTP: an Events API delivery while Slack cannot be reached is answered 503, so Slack retries it, and the retry is handled', async () => {
    // Every auth.test hangs (the client gives up after callTimeoutMs) until the stall is lifted.
    const r = await rig({
      before: (fake) => fake.stall('auth.test', 1_000),
      callTimeoutMs: 100,
      startup: { waitMs: 50, requestWaitMs: 100, retryMinMs: 20, retryMaxMs: 50 },
    });
    await r.slack.start();
    expect(r.slack.status().state).toBe('waiting');
    // An alert posted in a watched channel during the blip: a 2xx would make Slack drop it for good.
    const alert = {
      type: 'message',
      channel: 'C0ALERTS',
      ts: '1700000000.000100',
      user: 'U0X',
      text: '[FIRING:1] Down env=production',
    };
    const first = await r.requests.event(alert, 'EvBLIP1');
    expect(first.status).toBe(503);
    expect(r.handled).toEqual([]);
    // Slack is back: the retry (same event_id) is handled, once — the refused delivery claimed nothing.
    r.fake.stall('auth.test', 0);
    await r.slack.ready();
    const retry = await r.requests.event(alert, 'EvBLIP1', { headers: { 'X-Slack-Retry-Num': '1' } });
    expect(retry.status).toBe(200);
    await expect.poll(() => r.handled).toEqual(['message:[FIRING:1] Down env=production']);
    expect(rejections).toEqual([]);
  }, 20_000);

  it('HTTP: a request that arrives while the check is still running waits for it (no start() needed)', async () => {
    const r = await rig({ startup: FAST_RETRY });
    // start() not called (as in embedded uses): the first request runs the check itself.
    const command = await r.requests.command({ command: '/rollback', text: 'staging' });
    expect(command.status).toBe(200);
    expect(r.handled).toEqual(['command:staging']);
    expect(r.fake.callsOf('auth.test')).toHaveLength(1);
  });

  it('Socket Mode: a hanging auth.test at start does not crash; it connects once Slack answers', async () => {
    const r = await rig({
      socket: true,
      before: (fake) => fake.stall('auth.test', 3),
      callTimeoutMs: HANG_LIMIT_MS,
      startup: FAST_RETRY,
    });
    await r.slack.start();
    expect(r.slack.status().state).toBe('waiting');
    await r.fake.socketConnected();
    await r.slack.ready();
    const { payload } = r.requests.slashCommandPayload({ command: '/rollback', text: 'production' });
    await r.fake.sendEnvelope('slash_commands', payload);
    expect(r.handled).toEqual(['command:production']);
    expect(rejections).toEqual([]);
  }, 20_000);

  it('Socket Mode: a hanging apps.connections.open at start does not fail start-up; it connects later', async () => {
    const r = await rig({
      socket: true,
      before: (fake) => fake.stall('apps.connections.open', 3),
      callTimeoutMs: HANG_LIMIT_MS,
      startup: FAST_RETRY,
    });
    await r.slack.start();
    expect(r.slack.status()).toMatchObject({ state: 'waiting', problem: 'TimeoutError' });
    await r.fake.socketConnected();
    await r.slack.ready();
    expect(r.fake.stalled('apps.connections.open')).toBe(3);
    expect(rejections).toEqual([]);
  }, 20_000);

  it('Socket Mode: Slack asks for a reconnect and apps.connections.open then hangs: no crash, it reconnects', async () => {
    let connections = 0;
    const r = await rig({
      socket: true,
      before: (fake) =>
        fake.on('socket-connected', () => {
          connections += 1;
        }),
      callTimeoutMs: HANG_LIMIT_MS,
      startup: FAST_RETRY,
    });
    await r.slack.start();
    await r.fake.socketConnected();
    const reconnected = once(r.fake, 'socket-connected');
    r.fake.stall('apps.connections.open', 3);
    r.fake.requestReconnect();
    await reconnected;
    await r.slack.ready();
    expect(r.fake.stalled('apps.connections.open')).toBe(3);
    // Connected once more, in all. (Counted where the sockets arrive, not as answered calls: under load
    // an answer can come after the short limit, and the client's retry is answered too.)
    expect(connections).toBe(2);
    const { payload } = r.requests.slashCommandPayload({ command: '/rollback', text: 'production' });
    await r.fake.sendEnvelope('slash_commands', payload);
    expect(r.handled).toEqual(['command:production']);
    expect(rejections).toEqual([]);
  }, 20_000);
});

/** The Socket Mode client under the app (Bolt keeps its receiver private): its `disconnected` event. */
function socketClient(slack: SlackApp) {
  return (slack.app as unknown as { receiver: SocketModeReceiver }).receiver.client;
}

/** Timers keeping the process alive (`process.getActiveResourcesInfo`; unref'd ones are not listed). */
function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

const RECONNECTING = /Socket Mode connection closed; reconnecting/;

describe('Slack stop()', () => {
  it('Socket Mode: stopping a connected app closes the connection without saying it reconnects, and opens none', async () => {
    const log = new CapturedLog('debug');
    const r = await rig({ socket: true, logger: log.logger, startup: FAST_RETRY });
    await r.slack.start();
    await r.fake.socketConnected();
    const disconnected = new Promise<void>((resolve) => socketClient(r.slack).once('disconnected', resolve));
    await r.slack.stop();
    // The client reports the closed connection to SlackStartup (which listens first) after stop().
    await disconnected;
    expect(log.lines.filter((l) => RECONNECTING.test(l.msg))).toEqual([]);
    expect(r.slack.status()).not.toMatchObject({ problem: 'connection closed' });
    expect(r.fake.callsOf('apps.connections.open')).toHaveLength(1);
    expect(rejections).toEqual([]);
  });

  it('Socket Mode: stop() while apps.connections.open is held returns at once and drops the call: no socket or timer left, and its late answer opens no connection', async () => {
    const log = new CapturedLog('debug');
    const r = await rig({
      socket: true,
      logger: log.logger,
      // The call's own time limit is far away: only stop() can end it within the test.
      callTimeoutMs: 60_000,
      startup: { waitMs: 50, retryMinMs: 20, retryMaxMs: 20 },
    });
    const held = r.fake.hold('apps.connections.open');
    await r.slack.start(); // bounded: goes on while the call is held
    await held.reached;
    const timersBefore = activeTimers();

    // stop() waits for no answer, pause or time limit: it is done before the event loop turns.
    let stopped = false;
    const stopping = r.slack.stop().then(() => {
      stopped = true;
    });
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(stopped).toBe(true);
    await stopping;
    // The client closed the held request (its socket) instead of waiting for the answer …
    await held.abandoned;
    // … and pauses before no retry of it (the Web API client's backoff would be a live timer now) …
    expect(activeTimers()).toBeLessThanOrEqual(timersBefore);
    await expect
      .poll(() => r.slack.status(), { timeout: 5_000, interval: 20 })
      .toMatchObject({ state: 'waiting', problem: 'AbortError' });
    // … so the attempt ended with that one failed call, not after the client's two retries.
    const failures = log.lines.filter(
      (l) => l.component === 'slack-bolt' && /http request failed/.test(l.msg),
    );
    expect(failures).toHaveLength(1);

    // Slack answers the held call after all: nobody is there to connect with it.
    const connected: unknown[] = [];
    r.fake.on('socket-connected', () => connected.push('socket'));
    held.release();
    await r.fake.waitForCall('apps.connections.open', (c) => c.response.ok === true);
    expect(connected).toEqual([]);
    expect(r.fake.callsOf('apps.connections.open')).toHaveLength(1);
    // What the client logs about the call it dropped is no failure: debug, not warn or error.
    expect(log.lines.filter((l) => l.level >= 40 && l.component === 'slack-bolt')).toEqual([]);
    expect(rejections).toEqual([]);
  });

  it("Socket Mode: stop() during the client's pause before retrying apps.connections.open: no retry reaches Slack", async () => {
    const log = new CapturedLog('debug');
    const r = await rig({
      socket: true,
      logger: log.logger,
      before: (fake) => {
        // Bolt's own client fails first (its auth.test, as when it is slow under load): stopping during
        // its pause instead would stop before apps.connections.open was ever sent.
        fake.rateLimit('auth.test', 0, 1);
        // Slack refuses the first apps.connections.open with a 429 (Retry-After: 0): its failure comes
        // when Slack answers, not when a time limit runs out, whatever the load.
        fake.rateLimit('apps.connections.open', 0, 1);
      },
      startup: { waitMs: 50, retryMinMs: 60_000, retryMaxMs: 60_000 },
    });
    await r.slack.start();
    // The Socket Mode client's call failed (its line names the method, the auth.test one does not
    // match); the Web API client pauses (500 ms or more) before its retry.
    await log.waitFor(
      (l) =>
        l.component === 'slack-bolt' &&
        /http request failed/.test(l.msg) &&
        /apps\.connections\.open/.test(l.msg),
    );
    // That failure's handling (the pause begins) ends within the loop turn the failure came in.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await r.slack.stop();
    // The pause runs out; then either its retry fails unsent and the client gives up, or (the defect)
    // the retry reaches Slack. (Start-up giving up before apps.connections.open: stopped too early.)
    await new Promise<void>((resolve) => {
      void log.waitFor((l) => /Failed to retrieve a new WSS URL/.test(l.msg)).then(() => resolve());
      void log.waitFor((l) => /stopped during start-up/.test(l.msg)).then(() => resolve());
      r.fake.on('call', (c: RecordedCall) => {
        if (c.method === 'apps.connections.open') resolve();
      });
    });
    expect(r.fake.callsOf('apps.connections.open').map((c) => c.status)).toEqual([429]);
    await expect
      .poll(() => r.slack.status(), { timeout: 5_000, interval: 20 })
      .toMatchObject({ state: 'waiting', problem: 'AbortError' });
    expect(rejections).toEqual([]);
  });

  it.each([
    ['HTTP', false],
    ['Socket Mode', true],
  ] as const)(
    '%s: stop() while auth.test is held: its late answer neither connects nor reports the token accepted',
    async (_mode, socket) => {
      const log = new CapturedLog('debug');
      const r = await rig({
        socket,
        logger: log.logger,
        callTimeoutMs: 60_000,
        startup: { waitMs: 50, retryMinMs: 20, retryMaxMs: 20 },
      });
      const held = r.fake.hold('auth.test');
      await r.slack.start();
      await held.reached;
      await r.slack.stop();
      held.release();
      // Whichever comes first: start-up giving up, or going on (connecting, or "token accepted").
      await Promise.race([
        log.waitFor((l) => /stopped during start-up/.test(l.msg)),
        log.waitFor((l) => /bot token accepted/.test(l.msg)),
        new Promise<void>((resolve) =>
          r.fake.on('call', (c: RecordedCall) => {
            if (c.method === 'apps.connections.open') resolve();
          }),
        ),
      ]);
      expect(log.lines.filter((l) => /stopped during start-up/.test(l.msg))).toHaveLength(1);
      expect(log.lines.filter((l) => /bot token accepted/.test(l.msg))).toEqual([]);
      expect(r.fake.callsOf('apps.connections.open')).toEqual([]);
      expect(r.slack.status().state).toBe('waiting');
      expect(rejections).toEqual([]);
    },
  );
});
