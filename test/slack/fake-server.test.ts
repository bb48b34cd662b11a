/** The fake Slack Web API answers the real @slack/web-api client the way Slack documents. */
import { WebClient } from '@slack/web-api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { SlackRequests } from '../fakes/slack/requests.js';
import { FakeSlack, manifestBotEvents } from '../fakes/slack/server.js';

let slack: FakeSlack;
let clock: ManualClock;

function client(token = slack.token): WebClient {
  return new WebClient(token, {
    slackApiUrl: slack.apiUrl,
    rejectRateLimitedCalls: true,
    retryConfig: { retries: 0 },
  });
}

beforeEach(async () => {
  clock = new ManualClock();
  slack = await new FakeSlack({
    clock,
    usergroups: { S0OPS: ['U0ALICE'] },
    users: { U0ALICE: { name: 'alice' } },
  }).start();
});

afterEach(async () => {
  await slack.close();
});

describe('fake Slack Web API', () => {
  it('rejects a wrong token with invalid_auth and a missing one with not_authed', async () => {
    await expect(client('xoxb-wrong').auth.test()).rejects.toMatchObject({ data: { error: 'invalid_auth' } });
    await expect(
      new WebClient(undefined, { slackApiUrl: slack.apiUrl, retryConfig: { retries: 0 } }).apiCall(
        'auth.test',
      ),
    ).rejects.toMatchObject({
      data: { error: 'not_authed' },
    });
    const ok = await client().auth.test();
    expect(ok.user_id).toBe(slack.botUserId);
  });

  it('posts and updates a message, validating channel, ts and blocks', async () => {
    const web = client();
    await expect(web.chat.postMessage({ channel: 'C0NOPE', text: 'x' })).rejects.toMatchObject({
      data: { error: 'channel_not_found' },
    });
    await expect(web.chat.postMessage({ channel: 'C0PROD', text: '' })).rejects.toMatchObject({
      data: { error: 'no_text' },
    });
    const tooMany = Array.from({ length: 51 }, () => ({ type: 'divider' as const }));
    await expect(
      web.chat.postMessage({ channel: 'C0PROD', text: 'x', blocks: tooMany }),
    ).rejects.toMatchObject({
      data: { error: 'invalid_blocks' },
    });
    const posted = await web.chat.postMessage({
      channel: 'C0PROD',
      text: 'hello',
      blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 'hello' } }],
    });
    expect(posted.ts).toMatch(/^\d+\.\d{6}$/);
    const ts = String(posted.ts);
    await expect(web.chat.update({ channel: 'C0PROD', ts: '1.000000', text: 'y' })).rejects.toMatchObject({
      data: { error: 'message_not_found' },
    });
    await web.chat.update({ channel: 'C0PROD', ts, text: 'updated' });
    expect(slack.message('C0PROD', ts)?.versions.map((v) => v.text)).toEqual(['hello', 'updated']);
    const call = await slack.waitForCall('chat.update', (c) => c.args.text === 'updated');
    expect(call.contentType).toContain('x-www-form-urlencoded');
  });

  it('chat.postMessage takes a channel name (#name or name) and answers with the id; chat.update takes ids only', async () => {
    const web = client();
    const byHash = await web.chat.postMessage({ channel: '#incidents', text: 'one' });
    expect(byHash.channel).toBe('C0PROD');
    const bare = await web.chat.postMessage({ channel: 'incidents', text: 'two' });
    expect(bare.channel).toBe('C0PROD');
    expect(slack.message('C0PROD', String(byHash.ts))?.text).toBe('one');
    await expect(web.chat.postMessage({ channel: '#nowhere', text: 'x' })).rejects.toMatchObject({
      data: { error: 'channel_not_found' },
    });
    await expect(
      web.chat.update({ channel: '#incidents', ts: String(byHash.ts), text: 'edited' }),
    ).rejects.toMatchObject({ data: { error: 'channel_not_found' } });
    await web.chat.update({ channel: 'C0PROD', ts: String(byHash.ts), text: 'edited' });
    expect(slack.message('C0PROD', String(byHash.ts))?.text).toBe('edited');
  });

  it('accepts JSON bodies with the token in the Authorization header', async () => {
    const res = await fetch(`${slack.apiUrl}chat.postMessage`, {
      method: 'POST',
      headers: { authorization: `Bearer ${slack.token}`, 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ channel: 'C0PROD', blocks: [{ type: 'divider' }, { type: 'bogus' }] }),
    });
    expect(await res.json()).toMatchObject({ ok: false, error: 'invalid_blocks' });
  });

  it('answers 429 with Retry-After when told to', async () => {
    slack.rateLimit('chat.update', 7);
    const web = client();
    const posted = await web.chat.postMessage({ channel: 'C0PROD', text: 'a' });
    await expect(
      web.chat.update({ channel: 'C0PROD', ts: String(posted.ts), text: 'b' }),
    ).rejects.toMatchObject({
      code: 'slack_webapi_rate_limited_error',
      retryAfter: 7,
    });
    await web.chat.update({ channel: 'C0PROD', ts: String(posted.ts), text: 'b' });
  });

  it('serves user groups and users', async () => {
    const web = client();
    expect((await web.usergroups.users.list({ usergroup: 'S0OPS' })).users).toEqual(['U0ALICE']);
    await expect(web.usergroups.users.list({ usergroup: 'S0NONE' })).rejects.toMatchObject({
      data: { error: 'no_such_subteam' },
    });
    expect((await web.users.info({ user: 'U0ALICE' })).user?.name).toBe('alice');
  });

  it('answers a method told to refuse with that error, as Slack does for answers no retry changes', async () => {
    slack.refuse('usergroups.users.list', 'missing_scope', {
      needed: 'usergroups:read',
      provided: 'commands',
    });
    await expect(client().usergroups.users.list({ usergroup: 'S0OPS' })).rejects.toMatchObject({
      data: { error: 'missing_scope', needed: 'usergroups:read', provided: 'commands' },
    });
    expect((await client().auth.test()).ok).toBe(true);
  });

  it('delivers a public channel’s message as message.channels and a private one’s as message.groups (channel_type "group")', async () => {
    const fake = await new FakeSlack({
      channels: { C0ALERTS: 'alerts' },
      privateChannels: { G0SECRET: 'sec-alerts' },
      botEvents: ['message.channels'],
    }).start();
    try {
      expect(fake.messageDelivery('C0ALERTS')).toEqual({
        subscription: 'message.channels',
        channelType: 'channel',
      });
      expect(fake.messageDelivery('G0SECRET')).toEqual({
        subscription: 'message.groups',
        channelType: 'group',
      });
      expect(fake.channels.get('G0SECRET')).toBe('sec-alerts');
      expect((await client().conversations.info({ channel: 'C0PROD' })).channel?.is_private).toBe(false);
      // An app that does not subscribe to message.groups is sent nothing from a private channel.
      const requests = new SlackRequests('http://127.0.0.1:9/unused', 'secret', fake);
      expect(await requests.message({ channel: 'G0SECRET', ts: '1.000001', text: 'x' }, 'Ev1')).toEqual({
        subscription: 'message.groups',
        channelType: 'group',
        delivered: false,
      });
    } finally {
      await fake.close();
    }
    // By default the app subscribes to what manifest.yml asks for.
    expect([...slack.botEvents]).toEqual(manifestBotEvents());
  });

  it('lets a response URL be used 5 times within 30 minutes', async () => {
    const url = slack.createResponseUrl({ channel: 'C0PROD', user: 'U0ALICE' });
    const post = () =>
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'hi' }),
      });
    for (let i = 0; i < 5; i++) expect((await post()).status).toBe(200);
    expect((await post()).status).toBe(404);
    expect(slack.responses.at(-1)?.error).toBe('used_url');
    const late = slack.createResponseUrl({ channel: 'C0PROD', user: 'U0ALICE' });
    clock.set(clock.now() + 31 * 60_000);
    const res = await fetch(late, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"text":"x"}',
    });
    expect(res.status).toBe(404);
    expect(slack.responses.at(-1)?.error).toBe('expired_url');
  });
});
