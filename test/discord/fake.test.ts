/**
 * The fake Discord's rules at the wire (plain fetch and a plain WebSocket, no SDK), so the fake cannot
 * silently accept what Discord would refuse: bot auth, rate-limit headers (buckets that run down per
 * resource, 429s per route, shared or global), one acknowledgement per interaction within the deadline,
 * callback types per interaction type, message limits (custom_id ≤ 100, 5×5 buttons), editing only the
 * bot's own messages, interaction tokens that expire, and `with_response`; on the gateway, the session
 * start limit every IDENTIFY uses up, sessions that cannot be resumed after 4009 or a client's 1000,
 * op 9 with `d: true`, and heartbeats left unacknowledged.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type RawData, WebSocket } from 'ws';
import { ManualClock } from '../../src/clock.js';
import type { GatewayEvent } from '../fakes/discord/gateway.js';
import { CallbackType, CloseCode, ErrorCode, Intent, MessageFlag, Op } from '../fakes/discord/protocol.js';
import {
  type FakeDiscord,
  type FakeDiscordOptions,
  NONCE_WINDOW_MS,
  startFakeDiscord,
} from '../fakes/discord/server.js';

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

  it('answers the documented 429 when told to: retry_after a float, Retry-After in whole seconds', async () => {
    fake.rateLimitNext({ method: 'GET', path: /^\/users\/@me$/, retryAfterSeconds: 64.57 });
    const limited = await call('GET', '/users/@me');
    expect(limited.status).toBe(429);
    expect(limited.json).toEqual({
      message: 'You are being rate limited.',
      retry_after: 64.57,
      global: false,
    });
    // Discord's own example: header 65 for a body of 64.57.
    expect(limited.headers.get('retry-after')).toBe('65');
    expect(limited.headers.get('x-ratelimit-scope')).toBe('user');
    expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(limited.headers.get('x-ratelimit-reset-after')).toBe('64.57');
    expect(limited.headers.get('x-ratelimit-global')).toBeNull();
    expect((await call('GET', '/users/@me')).status).toBe(200);
  });

  it("answers a shared 429 (a resource's limit) and a global one (no per-route headers)", async () => {
    fake.rateLimitNext({ method: 'GET', path: /^\/users\/@me$/, retryAfterSeconds: 0.4, scope: 'shared' });
    const shared = await call('GET', '/users/@me');
    expect(shared.status).toBe(429);
    expect(shared.headers.get('x-ratelimit-scope')).toBe('shared');
    expect(shared.headers.get('retry-after')).toBe('1');
    expect(shared.json).toMatchObject({ retry_after: 0.4, global: false });

    fake.rateLimitNext({ method: 'GET', path: /^\/users\/@me$/, retryAfterSeconds: 0.4, scope: 'global' });
    const global = await call('GET', '/users/@me');
    expect(global.status).toBe(429);
    expect(global.json).toEqual({ message: 'You are being rate limited.', retry_after: 0.4, global: true });
    expect(global.headers.get('retry-after')).toBe('1');
    expect(global.headers.get('x-ratelimit-global')).toBe('true');
    expect(global.headers.get('x-ratelimit-scope')).toBe('global');
    for (const h of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-bucket']) {
      expect(global.headers.get(h)).toBeNull();
    }
  });

  it('counts each bucket down per channel within its window; past it, 429 and the request does nothing', async () => {
    await fake.close();
    fake = await startFakeDiscord({ routeLimit: { limit: 2, windowMs: 60_000 } });
    const post = (channel: string, content: string) =>
      call('POST', `/channels/${channel}/messages`, { content });
    const first = await post(fake.channels.ops, 'one');
    const second = await post(fake.channels.ops, 'two');
    expect([first.headers.get('x-ratelimit-remaining'), second.headers.get('x-ratelimit-remaining')]).toEqual(
      ['1', '0'],
    );
    expect(first.headers.get('x-ratelimit-limit')).toBe('2');
    expect(first.headers.get('x-ratelimit-bucket')).toBe(second.headers.get('x-ratelimit-bucket'));
    const resetAfter = Number(second.headers.get('x-ratelimit-reset-after'));
    expect(resetAfter).toBeGreaterThan(0);
    expect(resetAfter).toBeLessThanOrEqual(60);

    const third = await post(fake.channels.ops, 'three');
    expect(third.status).toBe(429);
    expect(third.headers.get('x-ratelimit-scope')).toBe('user');
    const retryAfter = (third.json as { retry_after: number }).retry_after;
    expect(retryAfter).toBeGreaterThan(0);
    expect(third.headers.get('retry-after')).toBe(String(Math.ceil(retryAfter)));
    expect(fake.channelMessages(fake.channels.ops).map((m) => m.content)).toEqual(['one', 'two']);

    // Another channel (another top-level resource) and another route have buckets of their own.
    expect((await post(fake.channels.general, 'elsewhere')).status).toBe(200);
    expect((await call('GET', `/channels/${fake.channels.ops}/messages`)).status).toBe(200);
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

  it('a create with enforce_nonce answers the message made with that nonce in the window, and makes none', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 29, 12, 0, 0));
    await fake.close();
    fake = await startFakeDiscord({ clock });
    const gw = await gatewayClient(fake.gatewayUrl);
    try {
      await gw.next(Op.hello);
      const intents = Intent.guilds | Intent.guildMessages;
      gw.send(Op.identify, {
        token: fake.token,
        properties: { os: 'l', browser: 't', device: 't' },
        intents,
      });
      await gw.next(Op.dispatch, 'READY');
      const creates: number[] = [];
      fake.gateway.events.on('event', (e: GatewayEvent) => {
        if (e.kind === 'dispatch' && e.t === 'MESSAGE_CREATE') creates.push(e.s);
      });
      const ops = fake.channels.ops;
      const post = (body: Record<string, unknown>) => call('POST', `/channels/${ops}/messages`, body);
      const ids = () => fake.channelMessages(ops).map((m) => m.id);

      const first = await post({ content: 'one', nonce: 'n-1', enforce_nonce: true });
      expect(first.status).toBe(200);
      expect(first.json).toMatchObject({ content: 'one', nonce: 'n-1' });
      const id = (first.json as { id: string }).id;
      // The same nonce a minute later, whatever the body says: the first message, nothing made or sent.
      await clock.advance(60_000);
      const again = await post({ content: 'two', nonce: 'n-1', enforce_nonce: true });
      expect(again.status).toBe(200);
      expect(again.json).toMatchObject({ id, content: 'one', nonce: 'n-1' });
      expect(ids()).toEqual([id]);
      expect(creates).toHaveLength(1);

      // Without enforce_nonce the nonce is only echoed; an integer nonce is one too.
      const unchecked = await post({ content: 'three', nonce: 'n-1' });
      const numeric = await post({ content: 'four', nonce: 1234567890, enforce_nonce: true });
      const numericAgain = await post({ content: 'five', nonce: 1234567890, enforce_nonce: true });
      expect((unchecked.json as { id: string }).id).not.toBe(id);
      expect(numeric.json).toMatchObject({ nonce: 1234567890 });
      expect((numericAgain.json as { id: string }).id).toBe((numeric.json as { id: string }).id);
      expect(ids()).toHaveLength(3);
      expect(creates).toHaveLength(3);

      // Past the window (5 minutes after the first create) the nonce makes a new message.
      await clock.advance(NONCE_WINDOW_MS - 60_000);
      const later = await post({ content: 'six', nonce: 'n-1', enforce_nonce: true });
      expect((later.json as { id: string }).id).not.toBe(id);
      expect(ids()).toHaveLength(4);
      expect(creates).toHaveLength(4);

      // A nonce is a string or an integer of at most 25 characters (Discord's 50035 otherwise).
      for (const nonce of ['x'.repeat(26), 1.5, 10 ** 25, { n: 1 }, true]) {
        const bad = await post({ content: 'bad', nonce, enforce_nonce: true });
        expect(bad.status).toBe(400);
        expect(bad.json).toMatchObject({ code: ErrorCode.invalidFormBody, errors: { nonce: {} } });
      }
      expect((await post({ content: 'ok', nonce: 'x'.repeat(25), enforce_nonce: true })).status).toBe(200);
      expect(ids()).toHaveLength(5);
    } finally {
      gw.ws.terminate();
    }
  });

  it("holds a request's answer when told to: it takes effect at once, and the client may give up on it", async () => {
    const ops = fake.channels.ops;
    const held = fake.hold({ method: 'POST', path: /^\/channels\/\d+\/messages$/ });
    const abort = new AbortController();
    const first = fetch(`${fake.apiUrl}/v10/channels/${ops}/messages`, {
      method: 'POST',
      headers: { authorization: `Bot ${fake.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'one' }),
      signal: abort.signal,
    }).catch((e: unknown) => e);
    await held.reached();
    expect(fake.channelMessages(ops).map((m) => m.content)).toEqual(['one']);
    expect(fake.calls.at(-1)).toMatchObject({ method: 'POST', status: 200 });
    abort.abort();
    expect(await first).toMatchObject({ name: 'AbortError' });
    await held.abandoned();
    // Only the next one was held: the following request is answered at once.
    expect((await call('POST', `/channels/${ops}/messages`, { content: 'two' })).status).toBe(200);

    const more = fake.hold({ method: 'GET', path: /^\/users\/@me$/, times: 2 });
    const answers = [call('GET', '/users/@me'), call('GET', '/users/@me')];
    await more.reached(2);
    more.release();
    expect((await Promise.all(answers)).map((a) => a.status)).toEqual([200, 200]);
  });
});

/** A plain gateway client: connects, and reads what the fake sends, in order. */
async function gatewayClient(url: string) {
  const ws = new WebSocket(`${url}/?v=10&encoding=json`);
  const inbox: { op: number; d: unknown; t: string | null }[] = [];
  /** Every payload received, in order (`inbox` is what `next` has not consumed yet). */
  const received: { op: number; d: unknown; t: string | null }[] = [];
  const waiting: (() => void)[] = [];
  ws.on('message', (raw: RawData) => {
    const payload = JSON.parse(raw.toString()) as { op: number; d: unknown; t: string | null };
    inbox.push(payload);
    received.push(payload);
    for (const w of waiting.splice(0)) w();
  });
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    ws,
    closed,
    received,
    send: (op: number, d: unknown) => ws.send(JSON.stringify({ op, d })),
    /** The next payload with `op` (and `t`), skipping others. */
    async next(op: number, t?: string) {
      for (;;) {
        const i = inbox.findIndex((p) => p.op === op && (t === undefined || p.t === t));
        if (i >= 0) return inbox.splice(0, i + 1).at(-1) as { op: number; d: unknown; t: string | null };
        await new Promise<void>((resolve) => waiting.push(resolve));
      }
    },
  };
}

describe('fake Discord gateway', () => {
  let fake: FakeDiscord;
  const open: WebSocket[] = [];

  async function start(opts: FakeDiscordOptions = {}) {
    fake = await startFakeDiscord(opts);
  }
  afterEach(async () => {
    for (const ws of open.splice(0)) ws.terminate();
    await fake.close();
  });

  async function client() {
    const c = await gatewayClient(fake.gatewayUrl);
    open.push(c.ws);
    await c.next(Op.hello);
    return c;
  }
  const properties = { os: 'linux', browser: 'test', device: 'test' };
  async function identified() {
    const c = await client();
    c.send(Op.identify, { token: fake.token, properties, intents: 1 });
    const ready = await c.next(Op.dispatch, 'READY');
    return { ...c, sessionId: (ready.d as { session_id: string }).session_id };
  }
  async function limit() {
    const res = await fetch(`${fake.apiUrl}/v10/gateway/bot`, {
      headers: { authorization: `Bot ${fake.token}` },
    });
    return {
      status: res.status,
      body: (await res.json()) as { session_start_limit?: Record<string, number> },
    };
  }

  it('every IDENTIFY uses up a session start; one past the limit resets the token (4004 everywhere, REST 401)', async () => {
    await start({ sessionStartLimit: { total: 1000, remaining: 2, resetAfterMs: 3_600_000 } });
    expect((await limit()).body.session_start_limit).toMatchObject({
      total: 1000,
      remaining: 2,
      max_concurrency: 1,
    });
    await identified();
    const current = await identified();
    const { body } = await limit();
    expect(body.session_start_limit?.remaining).toBe(0);
    expect(body.session_start_limit?.reset_after).toBeGreaterThan(3_500_000);
    expect(body.session_start_limit?.reset_after).toBeLessThanOrEqual(3_600_000);

    const over = await client();
    over.send(Op.identify, { token: fake.token, properties, intents: 1 });
    expect(await over.closed).toBe(CloseCode.authenticationFailed);
    expect(await current.closed).toBe(CloseCode.authenticationFailed);
    expect((await limit()).status).toBe(401);
  });

  it('renews the session starts once the window has passed', async () => {
    await start({ sessionStartLimit: { remaining: 0 } });
    expect((await limit()).body.session_start_limit?.remaining).toBe(0);
    fake.renewSessionStarts();
    expect((await limit()).body.session_start_limit).toMatchObject({ total: 1000, remaining: 1000 });
    expect(fake.sessionStartsRemaining).toBe(1000);
  });

  it('a session closed with 4009 (timed out) or by the client with 1000 cannot be resumed', async () => {
    await start();
    for (const end of ['server 4009', 'client 1000'] as const) {
      const c = await identified();
      if (end === 'server 4009') fake.gateway.drop({ code: CloseCode.sessionTimedOut });
      else c.ws.close(1000);
      await c.closed;
      const again = await client();
      again.send(Op.resume, { token: fake.token, session_id: c.sessionId, seq: 1 });
      expect((await again.next(Op.invalidSession)).d).toBe(false);
    }
    // Closed otherwise (4000), it can.
    const c = await identified();
    fake.gateway.drop({ code: CloseCode.unknownError });
    await c.closed;
    const again = await client();
    again.send(Op.resume, { token: fake.token, session_id: c.sessionId, seq: 1 });
    await again.next(Op.dispatch, 'RESUMED');
  });

  it('op 9 with d: true leaves the session resumable on the same connection; d: false does not', async () => {
    await start();
    const c = await identified();
    fake.gateway.invalidSession(true);
    expect((await c.next(Op.invalidSession)).d).toBe(true);
    c.send(Op.resume, { token: fake.token, session_id: c.sessionId, seq: 2 });
    await c.next(Op.dispatch, 'RESUMED');
    expect(fake.gateway.sessionId).toBe(c.sessionId);

    fake.gateway.invalidSession(false);
    expect((await c.next(Op.invalidSession)).d).toBe(false);
    c.send(Op.resume, { token: fake.token, session_id: c.sessionId, seq: 2 });
    expect((await c.next(Op.invalidSession)).d).toBe(false);
  });

  it('withholds heartbeat ACKs on a zombied connection only', async () => {
    await start();
    const c = await identified();
    c.send(Op.heartbeat, null);
    await c.next(Op.heartbeatAck);
    fake.gateway.stopAcking();
    c.send(Op.heartbeat, null);
    // Answered in order: an IDENTIFY on an authenticated connection closes it (4005), so an ACK of the
    // heartbeat before it would have arrived first.
    c.send(Op.identify, { token: fake.token, properties, intents: 1 });
    expect(await c.closed).toBe(CloseCode.alreadyAuthenticated);
    expect(c.received.filter((p) => p.op === Op.heartbeatAck)).toHaveLength(1);
    // A new connection is healthy again.
    const other = await client();
    other.send(Op.heartbeat, null);
    await other.next(Op.heartbeatAck);
  });
});
