/**
 * Socket Mode (SLACK_APP_TOKEN): the same app connects out over a WebSocket opened with
 * `apps.connections.open` (app-level token, SLACK_API_URL respected) instead of exposing a request URL;
 * slash commands and clicks arrive as envelopes and are acked over the socket. The full flow runs to
 * traffic switched, as over HTTP.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { buttonsOf } from '../fakes/slack/requests.js';
import { startWorld, type World } from '../fakes/slack/world.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const worlds: World[] = [];

afterEach(async () => {
  for (const w of worlds.splice(0)) await w.close();
});

describe('Slack over Socket Mode', () => {
  it('connects with the app-level token and runs /rollback → confirm → switched', async () => {
    const w = await startWorld({ redisUrl: redisUrl(), name: uniqueName('slack-sm'), socketMode: true });
    worlds.push(w);
    expect(w.surface.slack.mode).toBe('socket');
    await w.fake.socketConnected();
    const open = await w.fake.waitForCall('apps.connections.open');
    expect(open.token).toBe(w.fake.appToken);

    const { payload } = w.requests.slashCommandPayload({ command: '/rollback', text: 'production' });
    const ack = await w.fake.sendEnvelope('slash_commands', payload);
    expect(ack.envelope_id).toMatch(/^env-/);
    const post = await w.fake.waitForCall('chat.postMessage');
    const ts = String(post.response.ts);
    const confirm = buttonsOf(post.args.blocks as unknown[]).find((b) =>
      b.actionId.startsWith('sy1:confirm:'),
    );
    if (!confirm) throw new Error('no confirm button');

    const click = w.requests.blockActionPayload({ actionId: confirm.actionId, messageTs: ts });
    await w.fake.sendEnvelope('interactive', click.payload);
    const final = await w.fake.waitForCall(
      'chat.update',
      (c) => c.args.ts === ts && /Traffic is on/.test(String(c.args.text)),
      15_000,
    );
    const target = /Traffic is on (\S+?)\./.exec(String(final.args.text))?.[1];
    expect((await w.platform.snapshot('production')).environment.currentDeploymentId).toBe(target);
  });
});
