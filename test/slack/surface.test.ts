/**
 * The Slack surface inside the real composition root (handlers/app.ts `startSwitchyard`): configured
 * from env vars only, it mounts `POST /slack/events` on the one HTTP port, and a signed `/rollback`
 * plus a confirm click switch the embedded platform with progress edited into the Slack message.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type RunningSwitchyard, startSwitchyard } from '../../handlers/app.js';
import { slackSurface } from '../../handlers/slack/surface.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { buttonsOf, SlackRequests } from '../fakes/slack/requests.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { CapturedLog } from '../support/captured-log.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { SlackFront } from './faulty-front.js';

const SECRET = 'surface-signing-secret';
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

describe('Slack surface in startSwitchyard', () => {
  it('is off without SLACK_BOT_TOKEN', async () => {
    const config = loadConfig({ PORT: '0', LOCAL_ROUTER_PORT: '0', REDIS_URL: redisUrl() });
    const ctx = { config } as Parameters<typeof slackSurface>[0];
    expect(await slackSurface(ctx)).toBeUndefined();
  });

  it('serves signed commands and clicks on the shared port and edits progress into the message', async () => {
    const fake = await new FakeSlack().start();
    closers.push(() => fake.close());
    const dataDir = mkdtempSync(join(tmpdir(), 'sy-slack-surface-'));
    closers.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const config = loadConfig({
      PORT: '0',
      LOCAL_ROUTER_PORT: '0',
      REDIS_URL: redisUrl(),
      SLACK_BOT_TOKEN: fake.token,
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_API_URL: fake.apiUrl,
    });
    const running: RunningSwitchyard = await startSwitchyard(
      { config, logger: silentLogger, dataDir, namespace: uniqueName('sy') },
      [slackSurface],
    );
    closers.push(() => running.stop());
    expect(running.surfaces).toContain('slack');
    const requests = new SlackRequests(`http://127.0.0.1:${running.port}/slack/events`, SECRET, fake);

    const ack = await requests.command({ command: '/rollback', text: 'production' });
    expect(ack.status).toBe(200);
    const post = await fake.waitForCall('chat.postMessage');
    const ts = String(post.response.ts);
    const confirm = buttonsOf(post.args.blocks as unknown[]).find((b) =>
      b.actionId.startsWith('sy1:confirm:'),
    );
    if (!confirm) throw new Error('no confirm button');
    expect((await requests.click({ actionId: confirm.actionId, messageTs: ts })).status).toBe(200);
    const final = await fake.waitForCall(
      'chat.update',
      (c) => c.args.ts === ts && /Traffic is on/.test(String(c.args.text)),
      20_000,
    );
    const target = /Traffic is on (\S+?)\./.exec(String(final.args.text))?.[1];
    const snap = await running.platform.snapshot('production');
    expect(snap.environment.currentDeploymentId).toBe(target);
  });

  it('a token Slack rejects only after start-up (Slack could not be reached then) leaves the surface rejected, and the process up', async () => {
    const fake = await new FakeSlack().start();
    closers.push(() => fake.close());
    const front = await SlackFront.start(fake);
    closers.push(() => front.close());
    // Slack answers but is not available: start-up goes on and retries in the background.
    front.fail('auth.test', 1_000, { status: 200, body: { ok: false, error: 'service_unavailable' } });
    const dataDir = mkdtempSync(join(tmpdir(), 'sy-slack-surface-'));
    closers.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const config = loadConfig({
      PORT: '0',
      LOCAL_ROUTER_PORT: '0',
      REDIS_URL: redisUrl(),
      SLACK_BOT_TOKEN: fake.token,
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_API_URL: front.apiUrl,
    });
    const log = new CapturedLog('info');
    const running = await startSwitchyard(
      { config, logger: log.logger, dataDir, namespace: uniqueName('sy') },
      [slackSurface],
    );
    closers.push(() => running.stop());
    expect(running.surfaces).toContain('slack');
    expect(front.faulted).toContain('auth.test');
    // Slack is back, and refuses the token for good at the next background check.
    fake.revokeToken();
    front.heal('auth.test');
    const [refused] = await log.waitFor((l) => l.level >= 50 && l.key === 'SLACK_BOT_TOKEN');
    expect(refused).toMatchObject({ code: 'token_revoked' });
    // Node reports a rejection nobody handles once the current tick's promise jobs have run.
    await new Promise((resolve) => setImmediate(resolve));
    expect(rejections).toEqual([]);
    expect(fake.callsOf('auth.test').map((c) => c.response.error)).toEqual(['token_revoked']);
    // Still serving (console, webhooks), with the Slack surface's state said where operators look.
    const ready = await fetch(`http://127.0.0.1:${running.port}/readyz`);
    const body = (await ready.json()) as { chat?: Record<string, string> };
    expect(body.chat?.slack).toBe('rejected: token_revoked');
  });
});
