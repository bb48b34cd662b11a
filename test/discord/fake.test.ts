/**
 * The fake Discord's REST rules at the wire (plain fetch, no SDK), so the fake cannot silently accept
 * what Discord would refuse: bot auth, rate-limit headers, one acknowledgement per interaction within
 * the deadline, callback types per interaction type, message limits (custom_id ≤ 100, 5×5 buttons),
 * editing only the bot's own messages, interaction tokens that expire, and `with_response`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CallbackType, ErrorCode, MessageFlag } from '../fakes/discord/protocol.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/server.js';

describe('fake Discord REST', () => {
  let fake: FakeDiscord;

  beforeEach(async () => {
    fake = await startFakeDiscord({ interactionDeadlineMs: 3_000 });
    fake.commands.set(fake.guildId, [
      {
        id: '1300000000000000001',
        application_id: fake.applicationId,
        guild_id: fake.guildId,
        name: 'deployments',
        description: 'List deployments',
        type: 1,
        version: '1',
        options: [{ type: 3, name: 'environment', description: 'env', required: true }],
      },
    ]);
  });
  afterEach(async () => {
    await fake.close();
  });

  async function call(
    method: string,
    path: string,
    body?: unknown,
    auth: string | null = `Bot ${fake.token}`,
  ) {
    const res = await fetch(`${fake.apiUrl}/v10${path}`, {
      method,
      headers: {
        ...(auth === null ? {} : { authorization: auth }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      json: text === '' ? null : (JSON.parse(text) as unknown),
    };
  }

  const slash = () =>
    fake.slash({
      command: 'deployments',
      options: [{ name: 'environment', value: 'production' }],
      user: fake.user('alice'),
    });

  it('checks the bot token and sends rate-limit headers', async () => {
    const bad = await call('GET', '/users/@me', undefined, 'Bot nope');
    expect(bad.status).toBe(401);
    const ok = await call('GET', '/gateway/bot');
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({
      url: fake.gatewayUrl,
      shards: 1,
      session_start_limit: { max_concurrency: 1 },
    });
    for (const h of [
      'x-ratelimit-limit',
      'x-ratelimit-remaining',
      'x-ratelimit-reset-after',
      'x-ratelimit-bucket',
    ]) {
      expect(ok.headers.get(h)).not.toBeNull();
    }
  });

  it('answers the documented 429 when told to', async () => {
    fake.rateLimitNext({ method: 'GET', path: /^\/users\/@me$/, retryAfterSeconds: 1.5 });
    const limited = await call('GET', '/users/@me');
    expect(limited.status).toBe(429);
    expect(limited.json).toEqual({ message: 'You are being rate limited.', retry_after: 1.5, global: false });
    expect(limited.headers.get('retry-after')).toBe('1.5');
    expect((await call('GET', '/users/@me')).status).toBe(200);
  });

  it('accepts one acknowledgement per interaction, of a type valid for it', async () => {
    const i = slash();
    const wrong = await call(
      'POST',
      `/interactions/${i.id}/${i.token}/callback`,
      {
        type: CallbackType.updateMessage,
        data: { content: 'x' },
      },
      null,
    );
    expect(wrong.status).toBe(400);
    const first = await call(
      'POST',
      `/interactions/${i.id}/${i.token}/callback?with_response=true`,
      {
        type: CallbackType.channelMessageWithSource,
        data: { content: 'hello', flags: MessageFlag.ephemeral },
      },
      null,
    );
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({
      interaction: { id: i.id, response_message_ephemeral: true },
      resource: { type: 4, message: { content: 'hello' } },
    });
    const again = await call('POST', `/interactions/${i.id}/${i.token}/callback`, { type: 5 }, null);
    expect(again.status).toBe(400);
    expect(again.json).toMatchObject({ code: ErrorCode.alreadyAcknowledged });
  });

  it('refuses an acknowledgement after the deadline as an unknown interaction', async () => {
    await fake.close();
    fake = await startFakeDiscord({ interactionDeadlineMs: -1 });
    fake.commands.set(fake.guildId, [
      {
        id: '1',
        application_id: fake.applicationId,
        guild_id: fake.guildId,
        name: 'deployments',
        description: 'd',
        type: 1,
        version: '1',
        options: [{ type: 3, name: 'environment', description: 'env', required: true }],
      },
    ]);
    const i = slash();
    const late = await call('POST', `/interactions/${i.id}/${i.token}/callback`, { type: 5 }, null);
    expect(late.status).toBe(404);
    expect(late.json).toMatchObject({ code: ErrorCode.unknownInteraction });
  });

  it('validates message bodies against Discord limits', async () => {
    const button = (id: string) => ({ type: 2, style: 1, label: 'b', custom_id: id });
    const tooLong = await call('POST', `/channels/${fake.channels.ops}/messages`, {
      components: [{ type: 1, components: [button('x'.repeat(101))] }],
    });
    expect(tooLong.status).toBe(400);
    expect(tooLong.json).toMatchObject({ code: ErrorCode.invalidFormBody });
    const sixInARow = await call('POST', `/channels/${fake.channels.ops}/messages`, {
      components: [{ type: 1, components: ['1', '2', '3', '4', '5', '6'].map(button) }],
    });
    expect(sixInARow.status).toBe(400);
    const duplicate = await call('POST', `/channels/${fake.channels.ops}/messages`, {
      components: [{ type: 1, components: [button('a'), button('a')] }],
    });
    expect(duplicate.status).toBe(400);
    const empty = await call('POST', `/channels/${fake.channels.ops}/messages`, { content: '' });
    expect(empty.status).toBe(400);
    const unknownChannel = await call('POST', '/channels/1/messages', { content: 'x' });
    expect(unknownChannel.json).toMatchObject({ code: ErrorCode.unknownChannel });
    expect(fake.channelMessages(fake.channels.ops)).toEqual([]);
  });

  it('lets the bot edit only its own messages, and expired interaction tokens stop working', async () => {
    const someone = fake.postMessage({
      channelId: fake.channels.ops,
      author: fake.user('eve'),
      content: 'hi',
    });
    const edit = await call('PATCH', `/channels/${fake.channels.ops}/messages/${someone.id}`, {
      content: 'no',
    });
    expect(edit.status).toBe(403);
    expect(edit.json).toMatchObject({ code: ErrorCode.cannotEditOthersMessage });

    const i = slash();
    await call('POST', `/interactions/${i.id}/${i.token}/callback`, { type: 5 }, null);
    const hook = `/webhooks/${fake.applicationId}/${i.token}/messages/@original`;
    expect((await call('PATCH', hook, { content: 'done' }, null)).status).toBe(200);
    fake.expireInteractionTokens();
    const expired = await call('PATCH', hook, { content: 'later' }, null);
    expect(expired.status).toBe(401);
    expect(expired.json).toMatchObject({ code: ErrorCode.invalidWebhookToken });
    expect(fake.messages.get(i.originalId ?? '')?.content).toBe('done');
  });

  it('lists channel messages newest first, paging with after/before/around and limit 1-100', async () => {
    const author = fake.user('grafana');
    const channel = fake.channels.alerts;
    const posted = Array.from({ length: 7 }, (_, k) =>
      fake.postMessage({ channelId: channel, author, content: `m${k}` }),
    );
    const ids = posted.map((m) => m.id);
    const list = async (query: string) => {
      const res = await call('GET', `/channels/${channel}/messages${query}`);
      expect(res.status).toBe(200);
      return (res.json as { id: string }[]).map((m) => m.id);
    };
    // No cursor: the newest, newest first.
    expect(await list('?limit=3')).toEqual([ids[6], ids[5], ids[4]]);
    // after: the oldest messages right after the id (so a client pages forward), still newest first.
    expect(await list(`?after=${ids[1]}&limit=2`)).toEqual([ids[3], ids[2]]);
    expect(await list(`?after=${ids[6]}`)).toEqual([]);
    // before: the messages right before the id.
    expect(await list(`?before=${ids[5]}&limit=2`)).toEqual([ids[4], ids[3]]);
    // around: about half on each side.
    expect(await list(`?around=${ids[3]}&limit=3`)).toEqual([ids[4], ids[3], ids[2]]);
    // Any snowflake works as a cursor, for example one made from a time before the first message.
    const dated = fake.postMessage({
      channelId: channel,
      author,
      content: 'old',
      at: Date.now() - 3_600_000,
    });
    expect((await list('?limit=100')).at(-1)).toBe(dated.id);
    // Discord's rules: limit 1-100, one cursor at a time, ids are snowflakes.
    for (const bad of ['?limit=0', '?limit=101', `?after=${ids[0]}&before=${ids[6]}`, '?after=abc']) {
      const res = await call('GET', `/channels/${channel}/messages${bad}`);
      expect(res.status).toBe(400);
      expect(res.json).toMatchObject({ code: ErrorCode.invalidFormBody });
    }
  });
});
