/**
 * Discord across bot replicas (README "Architecture"): one gateway session per token, so exactly one
 * replica keeps `DISCORD_GATEWAY=on` and every other one gets DISCORD_TOKEN with `DISCORD_GATEWAY=off`
 * (REST only). Whichever replica's worker runs a switch confirmed on Discord, it edits the Discord
 * message to its final state; whichever replica receives an alert webhook, it posts the Discord
 * suggestion. Two whole Switchyard processes (startSwitchyard) on one Redis namespace, one fake Unkey
 * (a platform both reach) and the fake Discord. The gateway replica's worker is off, so the REST-only
 * replica's worker runs every job (with both on, the job goes to whichever takes it first). The alert
 * webhook test runs one REST-only replica on the embedded local platform, whose demo has the live
 * history an alert correlates with.
 * A replica without DISCORD_TOKEN where the config names Discord channels says so at start-up.
 * Tests wait on recorded traffic and log lines, never on sleeps.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningSwitchyard, startSwitchyard } from '../../handlers/app.js';
import { createDiscordRestBot, DISCORD_REST_ONLY } from '../../handlers/discord/index.js';
import { discordSurface } from '../../handlers/surfaces.js';
import { ManualClock } from '../../src/clock.js';
import { fileConfigSchema, parseEnv } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { type Logger, silentLogger } from '../../src/log.js';
import type { GatewayEvent } from '../fakes/discord/gateway.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/server.js';
import { UnkeyFakeServer } from '../fakes/unkey-server.js';
import { CapturedLog } from '../support/captured-log.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { buttonId, registerCommandsOn, textOf, waitForMessage, waitForPost } from './harness.js';

const KEY = 'unkey_3ZreplicasTestRootKey0123456';
const prodEnv = { project: 'acme', app: 'api', environment: 'production' } as const;

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
});

const WARN = 40;
const ERROR = 50;

interface Rig {
  readonly fake: FakeDiscord;
  readonly unkey: UnkeyFakeServer;
  /** The deployment live before the current one: a rollback's target. */
  readonly previous: string;
  /** Gateway connections opened, by any process. */
  readonly gatewayConnects: () => number;
  start(
    env: Record<string, string>,
    opts?: { readonly withDiscord?: boolean; readonly logger?: Logger },
  ): Promise<RunningSwitchyard & { readonly base: string }>;
}

/** The fake Discord and Unkey, and a way to start replicas of one Switchyard on one namespace. */
async function rig(): Promise<Rig> {
  // The fake's switches wait on this clock; with no switch delay they land at the next request.
  const unkeyClock = new ManualClock();
  const unkey = await UnkeyFakeServer.start({
    clock: unkeyClock,
    switchDelayMs: 0,
    rootKeys: {
      [KEY]: [
        'environment.*.read_deployment',
        'environment.*.rollback_deployment',
        'environment.*.promote_deployment',
      ],
    },
    customDomains: { 'acme/api': ['api.acme.com'] },
  });
  closers.push(() => unkey.close());
  const previous = unkey.push({ ...prodEnv, branch: 'main' });
  await unkeyClock.advance(60_000);
  unkey.push({ ...prodEnv, branch: 'main' });

  const fake = await startFakeDiscord();
  closers.push(() => fake.close());
  await registerCommandsOn(fake);
  let connects = 0;
  fake.gateway.events.on('event', (e: GatewayEvent) => {
    if (e.kind === 'connect') connects += 1;
  });
  const namespace = uniqueName('sy');
  const file = fileConfigSchema.parse({
    platform: 'unkey',
    verify: { timeout: '5s', interval: '10ms' },
    environments: {
      production: {
        unkey: prodEnv,
        allow: { discord: { roles: [fake.roles.deployers] } },
        channels: { discord: fake.channels.alerts },
        notices: { enabled: false },
      },
    },
  });
  return {
    fake,
    unkey,
    previous,
    gatewayConnects: () => connects,
    async start(extra, opts = {}) {
      const dataDir = mkdtempSync(join(tmpdir(), 'sy-replicas-'));
      closers.push(async () => rmSync(dataDir, { recursive: true, force: true }));
      const env = parseEnv({
        PORT: '0',
        REDIS_URL: redisUrl(),
        LOG_LEVEL: 'silent',
        PLATFORM: 'unkey',
        UNKEY_ROOT_KEY: KEY,
        UNKEY_API_URL: unkey.url,
        SWITCHYARD_CONSOLE: 'off',
        ...extra,
      });
      const running = await startSwitchyard(
        {
          config: { env, file, platform: 'unkey' },
          logger: opts.logger ?? silentLogger,
          dataDir,
          namespace,
        },
        opts.withDiscord === false ? [] : [discordSurface],
      );
      closers.push(() => running.stop());
      return { ...running, base: `http://127.0.0.1:${running.port}` };
    },
  };
}

const discordEnv = (fake: FakeDiscord) => ({
  DISCORD_TOKEN: fake.token,
  DISCORD_APPLICATION_ID: fake.applicationId,
  DISCORD_API_URL: fake.apiUrl,
});

async function readyz(base: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('Discord across replicas: one gateway replica, the others REST only (DISCORD_GATEWAY=off)', () => {
  it('a rollback confirmed on Discord reaches its final state there when a REST-only replica runs it', async () => {
    const r = await rig();
    const { fake } = r;
    // The gateway replica: commands and clicks arrive here; its worker is off.
    const gateway = await r.start({ ...discordEnv(fake), SWITCHYARD_WORKER: 'off' });
    // A REST-only replica with the same token: no second session, but its worker reaches Discord.
    const restOnly = await r.start({ ...discordEnv(fake), DISCORD_GATEWAY: 'off' });
    expect(restOnly.workerRunning).toBe(true);
    expect(r.gatewayConnects()).toBe(1);
    expect((await readyz(gateway.base)).body.chat).toEqual({ discord: 'connected' });
    const rest = await readyz(restOnly.base);
    expect(rest.status).toBe(200);
    expect(rest.body.chat).toEqual({ discord: DISCORD_REST_ONLY });
    expect(DISCORD_REST_ONLY).toBe('rest only (DISCORD_GATEWAY=off)');

    const alice = fake.user('alice');
    const from = fake.calls.length;
    const slash = fake.slash({
      command: 'rollback',
      options: [{ name: 'environment', value: 'production' }],
      user: alice,
      roles: [fake.roles.deployers],
    });
    await fake.waitForCallback(slash);
    const message = await waitForPost(fake, fake.channels.ops, from);
    expect(textOf(message)).toContain(r.previous);
    const click = fake.click({
      messageId: message.id,
      customId: buttonId(message, 'Rollback to target version'),
      user: alice,
      roles: [fake.roles.deployers],
    });
    await fake.waitForCallback(click);

    // Only the REST-only replica runs a worker: its Discord reporter edits the message to the end.
    const done = await waitForMessage(fake, message.id, (text) => /Traffic is on/.test(text), from);
    expect(textOf(done)).toContain(r.previous);
    expect(r.unkey.currentOf('acme', 'api')).toBe(r.previous);
    // Still one gateway session: the REST-only replica never connected.
    expect(r.gatewayConnects()).toBe(1);
  }, 30_000);

  it('an alert webhook received by a REST-only replica posts its Discord suggestion, with no gateway session', async () => {
    // The embedded local platform (its demo's current deployment went live 40 minutes ago, so an alert
    // firing now correlates with it): Unkey's API gives no live history to correlate with.
    const fake = await startFakeDiscord();
    closers.push(() => fake.close());
    let connects = 0;
    fake.gateway.events.on('event', (e: GatewayEvent) => {
      if (e.kind === 'connect') connects += 1;
    });
    const dataDir = mkdtempSync(join(tmpdir(), 'sy-replicas-'));
    closers.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const env = parseEnv({
      PORT: '0',
      LOCAL_ROUTER_PORT: '0',
      REDIS_URL: redisUrl(),
      LOG_LEVEL: 'silent',
      SWITCHYARD_CONSOLE: 'off',
      ...discordEnv(fake),
      DISCORD_GATEWAY: 'off',
    });
    const file = fileConfigSchema.parse({
      local: { reactivationTime: '200ms', buildTime: '300ms' },
      environments: { production: { channels: { discord: fake.channels.alerts } } },
    });
    const restOnly = await startSwitchyard(
      {
        config: { env, file, platform: 'local' },
        logger: silentLogger,
        dataDir,
        namespace: uniqueName('sy'),
      },
      [discordSurface],
    );
    closers.push(() => restOnly.stop());
    const from = fake.calls.length;
    const res = await fetch(`http://127.0.0.1:${restOnly.port}/webhooks/alerts/generic`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        title: 'checkout 5xx above 5%',
        status: 'firing',
        environment: 'production',
        fingerprint: 'checkout-5xx',
        startedAt: new Date().toISOString(),
      }),
    });
    const answer = (await res.json()) as { alerts?: { outcome?: string }[] };
    expect(res.status, JSON.stringify(answer)).toBe(202);
    expect(answer.alerts?.[0]?.outcome, JSON.stringify(answer)).toBe('suggested');
    const suggestion = await waitForPost(fake, fake.channels.alerts, from);
    expect(textOf(suggestion)).toContain('checkout 5xx above 5%');
    expect(connects).toBe(0);
  }, 30_000);

  it('a REST-only replica whose token Discord rejects stops at start-up, naming DISCORD_TOKEN', async () => {
    const r = await rig();
    const from = r.fake.calls.length;
    const started = r.start({
      ...discordEnv(r.fake),
      DISCORD_TOKEN: 'not.the.token',
      DISCORD_GATEWAY: 'off',
    });
    await expect(started).rejects.toBeInstanceOf(ConfigError);
    await expect(started).rejects.toThrow(
      /^DISCORD_TOKEN: Discord rejected the bot token \(401 Unauthorized\)/,
    );
    // Checked with the bot's own user, never by looking up the gateway it does not open.
    const asked = r.fake.calls.slice(from).map((c) => `${c.method} ${c.path} ${c.status}`);
    expect(asked).toEqual(['GET /users/@me 401']);
    expect(r.gatewayConnects()).toBe(0);
  }, 30_000);

  it('a replica without DISCORD_TOKEN, where the config names Discord channels, warns at start-up', async () => {
    const r = await rig();
    const log = new CapturedLog();
    await r.start({}, { withDiscord: false, logger: log.logger });
    // Logged during start-up, before startSwitchyard resolved.
    const line = log.lines.find((l) => l.level === WARN && l.surface === 'discord');
    expect(line, 'the start-up warning').toBeDefined();
    expect(line?.configured).toEqual(['environments.production.channels.discord']);
    expect(line?.msg).toContain('this process has no DISCORD_TOKEN');
    expect(line?.msg).toContain('not posted to discord');
    expect(line?.msg).toContain('DISCORD_GATEWAY=off');
  }, 30_000);
});

describe('createDiscordRestBot', () => {
  it('opens no gateway session; start() checks the token over REST', async () => {
    const fake = await startFakeDiscord();
    closers.push(() => fake.close());
    const connects: GatewayEvent[] = [];
    fake.gateway.events.on('event', (e: GatewayEvent) => connects.push(e));
    const log = new CapturedLog();
    const bot = createDiscordRestBot({ token: `Bot ${fake.token}`, apiUrl: fake.apiUrl, logger: log.logger });
    closers.push(() => bot.stop());
    const from = fake.calls.length;
    await bot.start();
    const check = await fake.waitForRequest((c) => c.path === '/users/@me', { from });
    expect(check.authorization).toBe(`Bot ${fake.token}`);
    expect(check.status).toBe(200);
    expect(fake.calls.slice(from).some((c) => c.path === '/gateway/bot')).toBe(false);
    expect(connects).toEqual([]);
  });

  it('goes on when Discord cannot be reached, saying so', async () => {
    const fake = await startFakeDiscord();
    closers.push(() => fake.close());
    await fake.goOffline();
    const log = new CapturedLog();
    const bot = createDiscordRestBot({
      token: fake.token,
      apiUrl: fake.apiUrl,
      logger: log.logger,
      startupWaitMs: 2_000,
    });
    closers.push(() => bot.stop());
    await bot.start();
    const [line] = await log.waitFor((l) => l.level === ERROR);
    expect(line?.msg).toContain('could not check DISCORD_TOKEN');
    expect(line?.msg).toContain(DISCORD_REST_ONLY);
  });
});
