/**
 * The Bolt app shell on the shared HTTP server: signature checks (forged, replayed → 401 and no handler
 * runs), one path for commands/interactivity/events, and Events API retries deduplicated in Redis
 * across two replicas. What a request must pass besides its signature (handlers/slack/guard.ts), on a
 * real socket: a body limit (413, connection closed), a timestamp window both ways, a signed command
 * or click delivered twice run once (across replicas), requests from another workspace refused.
 */
import { EventEmitter } from 'node:events';
import { connect } from 'node:net';
import type { App } from '@slack/bolt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  boltLogger,
  checkApiUrl,
  createSlackApp,
  SIGNATURE_WARNING_INTERVAL_MS,
  type SlackApp,
  type SlackAppOptions,
} from '../../handlers/slack/app.js';
import { SLACK_BODY_LIMIT_BYTES, SLACK_REQUEST_WINDOW_S } from '../../handlers/slack/guard.js';
import { ManualClock, systemClock, within } from '../../src/clock.js';
import { HttpServer } from '../../src/http.js';
import { silentLogger } from '../../src/log.js';
import { createRedis, type RedisClient } from '../../src/redis.js';
import { postSigned, SlackRequests, slackSignature } from '../fakes/slack/requests.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { CapturedLog } from '../support/captured-log.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const SECRET = 'test-signing-secret';

interface Replica {
  http: HttpServer;
  slack: SlackApp;
  port: number;
  requests: SlackRequests;
  seen: string[];
  /** Emits 'seen' (handler ran) and 'duplicate' (retry dropped). */
  events: EventEmitter;
}

function once(emitter: EventEmitter, name: string, value: string): Promise<void> {
  return new Promise((resolve) => {
    const on = (v: string) => {
      if (v === value) {
        emitter.off(name, on);
        resolve();
      }
    };
    emitter.on(name, on);
  });
}

let fake: FakeSlack;
let redis: RedisClient;
let prefix: string;
const replicas: Replica[] = [];

async function replica(extra: Partial<SlackAppOptions> = {}): Promise<Replica> {
  const http = new HttpServer();
  const seen: string[] = [];
  const events = new EventEmitter();
  const slack = createSlackApp(
    {
      botToken: fake.token,
      signingSecret: SECRET,
      apiUrl: fake.apiUrl,
      http,
      redis,
      keyPrefix: prefix,
      logger: silentLogger,
      onDuplicateEvent: (id) => events.emit('duplicate', id),
      ...extra,
    },
    (app: App) => {
      app.command('/rollback', async ({ ack, command }) => {
        seen.push(`command:${command.text}`);
        await ack();
      });
      app.action(/.*/, async ({ ack, action }) => {
        seen.push(`action:${'action_id' in action ? action.action_id : ''}`);
        await ack();
      });
      app.event('message', async ({ event }) => {
        const text = `event:${'text' in event ? String(event.text) : ''}`;
        seen.push(text);
        events.emit('seen', text);
      });
    },
  );
  const port = await http.listen(0);
  const r = {
    http,
    slack,
    port,
    requests: new SlackRequests(`http://127.0.0.1:${port}/slack/events`, SECRET, fake),
    seen,
    events,
  };
  replicas.push(r);
  return r;
}

beforeEach(async () => {
  fake = await new FakeSlack().start();
  redis = createRedis(redisUrl());
  await redis.ping();
  prefix = `${uniqueName('slack')}:`;
});

afterEach(async () => {
  for (const r of replicas.splice(0)) {
    await r.slack.stop();
    await r.http.close();
  }
  await fake.close();
  await redis.quit();
});

describe('Slack app shell', () => {
  it('accepts a correctly signed slash command on POST /slack/events', async () => {
    const r = await replica();
    const res = await r.requests.command({ command: '/rollback', text: 'production' });
    expect(res.status).toBe(200);
    expect(r.seen).toEqual(['command:production']);
  });

  it('answers 401 to a forged signature and runs no handler', async () => {
    const r = await replica();
    const res = await r.requests.command(
      { command: '/rollback', text: 'production' },
      { secret: 'not-the-secret' },
    );
    expect(res.status).toBe(401);
    expect(r.seen).toEqual([]);
  });

  it('a signature mismatch (a wrong SLACK_SIGNING_SECRET) logs a warning naming it and where its value is, at most once a minute', async () => {
    const log = new CapturedLog('info');
    const clock = new ManualClock();
    const r = await replica({ logger: log.logger, clock });
    const wrongSecret = 'the-client-secret-copied-by-mistake';
    const forged = () =>
      r.requests.command({ command: '/rollback', text: 'production' }, { secret: wrongSecret });
    expect((await forged()).status).toBe(401);
    const [first] = await log.waitFor((l) => /SLACK_SIGNING_SECRET/.test(l.msg));
    expect(first).toMatchObject({
      level: 40,
      key: 'SLACK_SIGNING_SECRET',
      problem: 'signature mismatch',
      refused: 1,
    });
    expect(first?.msg).toContain('Basic Information → App Credentials → Signing Secret');
    // Bolt's own line is replaced, not added: the first line about the check names the variable.
    expect(log.lines.find((l) => /verif|signature|authentic/i.test(l.msg))?.msg).toContain(
      'SLACK_SIGNING_SECRET',
    );
    // A burst gives no more warnings within the minute…
    expect((await forged()).status).toBe(401);
    expect((await forged()).status).toBe(401);
    clock.set(clock.now() + SIGNATURE_WARNING_INTERVAL_MS - 1);
    expect((await forged()).status).toBe(401);
    expect(log.lines.filter((l) => /SLACK_SIGNING_SECRET/.test(l.msg))).toHaveLength(1);
    // …and the next one after it counts the requests refused meanwhile.
    clock.set(clock.now() + 1);
    expect((await forged()).status).toBe(401);
    const [, second] = await log.waitFor((l) => /SLACK_SIGNING_SECRET/.test(l.msg), 2);
    expect(second).toMatchObject({ refused: 4 });
    expect(r.seen).toEqual([]);
    // Neither secret nor any signature is ever logged.
    const all = JSON.stringify(log.lines);
    expect(all).not.toContain(wrongSecret);
    expect(all).not.toContain(SECRET);
    expect(all).not.toMatch(/v0=[0-9a-f]{16}/);
  });

  it('a replayed (stale) request keeps Bolt’s own line: the signing secret is not blamed', async () => {
    const log = new CapturedLog('info');
    const r = await replica({ logger: log.logger, clock: new ManualClock() });
    const old = Math.floor(Date.now() / 1000) - 6 * 60;
    expect((await r.requests.command({ command: '/rollback' }, { timestamp: old })).status).toBe(401);
    const [line] = await log.waitFor((l) => /Failed to parse and verify/.test(l.msg));
    expect(line?.msg).toMatch(/stale/);
    expect(log.lines.filter((l) => /SLACK_SIGNING_SECRET/.test(l.msg))).toEqual([]);
  });

  it('answers 401 to a replayed request older than 5 minutes, even correctly signed', async () => {
    const r = await replica();
    const old = Math.floor(Date.now() / 1000) - 6 * 60;
    const res = await r.requests.command({ command: '/rollback', text: 'production' }, { timestamp: old });
    expect(res.status).toBe(401);
    expect(r.seen).toEqual([]);
    const fresh = Math.floor(Date.now() / 1000) - 4 * 60;
    expect(
      (await r.requests.command({ command: '/rollback', text: 'staging' }, { timestamp: fresh })).status,
    ).toBe(200);
    expect(r.seen).toEqual(['command:staging']);
  });

  it('deduplicates Events API retries on event_id across replicas', async () => {
    const a = await replica();
    const b = await replica();
    const event = { type: 'message', channel: 'C0PROD', user: 'U0ALICE', text: '5xx spike', ts: '1.000001' };
    const handled = once(a.events, 'seen', 'event:5xx spike');
    expect((await a.requests.event(event, 'Ev0001')).status).toBe(200);
    await handled;
    // Slack retries the same event (possibly to another replica) with X-Slack-Retry-Num.
    const dropped = once(b.events, 'duplicate', 'Ev0001');
    const retry = await b.requests.event(event, 'Ev0001', {
      headers: { 'x-slack-retry-num': '1', 'x-slack-retry-reason': 'http_timeout' },
    });
    expect(retry.status).toBe(200);
    await dropped;
    const other = once(b.events, 'seen', 'event:other');
    expect((await b.requests.event({ ...event, text: 'other' }, 'Ev0002')).status).toBe(200);
    await other;
    expect([...a.seen, ...b.seen]).toEqual(['event:5xx spike', 'event:other']);
  });

  it('answers Slack’s url_verification challenge (the request URL "Verify" button)', async () => {
    const r = await replica();
    const body = JSON.stringify({ token: 'x', challenge: 'c0ffee', type: 'url_verification' });
    const res = await postSigned(r.requests.url, SECRET, body, 'application/json');
    expect(res.status).toBe(200);
    expect(res.text).toContain('c0ffee');
    const forged = await postSigned(r.requests.url, 'wrong', body, 'application/json');
    expect(forged.status).toBe(401);
  });

  it('leaves other paths to the shared router', async () => {
    const r = await replica();
    const res = await fetch(r.requests.url.replace('/slack/events', '/slack/nope'), { method: 'POST' });
    expect(res.status).toBe(404);
  });

  it('requires SLACK_API_URL to end with /api/', () => {
    expect(checkApiUrl('http://127.0.0.1:1/api/')).toBe('http://127.0.0.1:1/api/');
    expect(() => checkApiUrl('http://127.0.0.1:1/api')).toThrow(/ending with \/api\//);
  });
});

describe('Slack app shell: Events API dedupe and SLACK_API_URL', () => {
  it('remembers an event_id for an hour by default, past the retries Slack sends after 1 and 5 minutes', async () => {
    const a = await replica();
    const event = { type: 'message', channel: 'C0PROD', user: 'U0ALICE', text: '5xx spike', ts: '1.000001' };
    const handled = once(a.events, 'seen', 'event:5xx spike');
    expect((await a.requests.event(event, 'Ev0TTL1')).status).toBe(200);
    await handled;
    const ttl = await redis.ttl(`${prefix}slack:event:Ev0TTL1`);
    expect(ttl).toBeGreaterThan(3_590);
    expect(ttl).toBeLessThanOrEqual(3_600);
  });

  it('honours eventDedupeTtlSeconds', async () => {
    const a = await replica({ eventDedupeTtlSeconds: 900 });
    const event = { type: 'message', channel: 'C0PROD', user: 'U0ALICE', text: 'latency', ts: '1.000002' };
    const handled = once(a.events, 'seen', 'event:latency');
    expect((await a.requests.event(event, 'Ev0TTL2')).status).toBe(200);
    await handled;
    const ttl = await redis.ttl(`${prefix}slack:event:Ev0TTL2`);
    expect(ttl).toBeGreaterThan(890);
    expect(ttl).toBeLessThanOrEqual(900);
  });

  it('refuses a SLACK_API_URL with more path after /api/ (Bolt joins method names onto it)', () => {
    expect(() => checkApiUrl('http://127.0.0.1:1/api/chat.postMessage')).toThrow(/ending with \/api\//);
    expect(checkApiUrl('https://proxy.internal/slack/api/')).toBe('https://proxy.internal/slack/api/');
  });

  it('callTimeoutMs bounds the "cannot reach Slack" answer to a click\'s response URL (not 10 s)', async () => {
    const dead = await new FakeSlack().start();
    const apiUrl = dead.apiUrl;
    await dead.close(); // every check of the bot token fails: a click is answered "cannot reach Slack"
    const log = new CapturedLog('warn');
    const r = await replica({
      apiUrl,
      callTimeoutMs: 200,
      logger: log.logger,
      startup: { retryMinMs: 60_000, retryMaxMs: 60_000 },
    });
    await r.slack.start();
    fake.stall('response_url', 1);
    const click = await r.requests.click({ actionId: 'sy1:confirm:plan_0123abcd', messageTs: '1.000001' });
    expect(click.status).toBe(200);
    const gaveUp = log.waitFor(
      (l) => l.msg === 'slack: could not tell the clicker that Slack cannot be reached',
    );
    // Within callTimeoutMs; well under the 10 s an unbounded answer would hang for.
    const inTime = await within(
      systemClock,
      5_000,
      gaveUp.then(() => true),
      false,
    );
    expect(inTime).toBe(true);
    expect(fake.stalled('response_url')).toBe(1);
  });

  it('a burst of commands right after a failed check is answered at once, without a check of Slack each', async () => {
    const dead = await new FakeSlack().start();
    const apiUrl = dead.apiUrl;
    await dead.close(); // nothing listens there: every check of the bot token fails (ECONNREFUSED)
    const http = new HttpServer();
    const handled: string[] = [];
    const slack = createSlackApp(
      {
        botToken: fake.token,
        signingSecret: SECRET,
        apiUrl,
        http,
        redis,
        keyPrefix: prefix,
        logger: silentLogger,
        callTimeoutMs: 200,
        startup: { retryMinMs: 60_000, retryMaxMs: 60_000 },
      },
      (app: App) => {
        app.command('/rollback', async ({ ack, command }) => {
          handled.push(command.text);
          await ack();
        });
      },
    );
    try {
      const port = await http.listen(0);
      const requests = new SlackRequests(`http://127.0.0.1:${port}/slack/events`, SECRET, fake);
      await slack.start();
      expect(slack.status()).toMatchObject({ state: 'waiting', problem: 'ECONNREFUSED', attempts: 1 });
      for (const text of ['production', 'staging', 'production']) {
        const reply = await requests.command({ command: '/rollback', text });
        expect(reply.status).toBe(200);
        expect(String(reply.json?.text)).toMatch(/cannot reach Slack's Web API right now/);
      }
      // The check that just failed is not repeated for each request (a burst must not hammer Slack).
      expect(slack.status()).toMatchObject({ state: 'waiting', attempts: 1 });
      expect(handled).toEqual([]);
    } finally {
      await slack.stop();
      await http.close();
    }
  });
});

/** What the server answered on a raw connection: its status line, and when it closed the connection. */
interface RawAnswer {
  readonly status: string;
  readonly closed: Promise<void>;
}

/**
 * Sends one POST to /slack/events on a raw socket, the body either with its Content-Length or chunked
 * (no length declared), and resolves with the answer's status line as soon as it arrives (the body may
 * still be going out: the server may answer before reading it all).
 */
function rawPost(
  port: number,
  headers: Record<string, string>,
  body: Buffer,
  framing: 'length' | 'chunked',
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    let answered = false;
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.on('error', (e) => {
      // Writing into a connection the server closed after answering is expected; before it, a failure.
      if (!answered) reject(e);
    });
    socket.on('data', (d: Buffer) => {
      received += d.toString('latin1');
      const end = received.indexOf('\r\n');
      if (!answered && end >= 0) {
        answered = true;
        resolve({ status: received.slice(0, end), closed });
      }
    });
    socket.on('close', () => {
      if (!answered) reject(new Error(`connection closed without an answer: ${JSON.stringify(received)}`));
    });
    const lines = [
      'POST /slack/events HTTP/1.1',
      `Host: 127.0.0.1:${port}`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      framing === 'length' ? `Content-Length: ${body.length}` : 'Transfer-Encoding: chunked',
    ];
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    // Written, not ended: it is the server's to close the connection.
    if (framing === 'length') socket.write(body);
    else {
      for (let at = 0; at < body.length; at += 65_536) {
        const chunk = body.subarray(at, at + 65_536);
        socket.write(`${chunk.length.toString(16)}\r\n`);
        socket.write(chunk);
        socket.write('\r\n');
      }
      socket.write('0\r\n\r\n');
    }
  });
}

/** An Events API envelope (a `message` in C0PROD) whose JSON body is exactly `bytes` long. */
function eventBodyOf(bytes: number, eventId: string): string {
  const envelope = (text: string) =>
    JSON.stringify({
      token: 'deprecated-verification-token',
      team_id: fake.teamId,
      api_app_id: 'A0SWITCH',
      event: { type: 'message', channel: 'C0PROD', user: 'U0ALICE', text, ts: '1.000001' },
      type: 'event_callback',
      event_id: eventId,
      event_time: Math.floor(Date.now() / 1000),
      authorizations: [{ team_id: fake.teamId, user_id: fake.botUserId, is_bot: true }],
    });
  const body = envelope('x'.repeat(bytes - Buffer.byteLength(envelope(''))));
  expect(Buffer.byteLength(body)).toBe(bytes);
  return body;
}

/** Headers Slack signs a body with, now. */
function signedHeaders(body: string, contentType = 'application/json'): Record<string, string> {
  const timestamp = Math.floor(Date.now() / 1000);
  return {
    'Content-Type': contentType,
    'X-Slack-Request-Timestamp': String(timestamp),
    'X-Slack-Signature': slackSignature(SECRET, timestamp, body),
  };
}

describe('Slack app shell: what a request must pass besides its signature', () => {
  it('a body over 1 MiB is answered 413 and its connection closed, declared or chunked, even correctly signed; 1 MiB is taken', async () => {
    const log = new CapturedLog('info');
    const r = await replica({ logger: log.logger });
    const over = eventBodyOf(SLACK_BODY_LIMIT_BYTES + 1, 'Ev0BIG1');
    // Declared too long: answered before the body is read (the sender may still be writing it).
    const declared = await rawPost(r.port, signedHeaders(over), Buffer.from(over), 'length');
    expect(declared.status).toBe('HTTP/1.1 413 Payload Too Large');
    await declared.closed;
    // No length declared: read up to the limit, then the same answer.
    const chunked = await rawPost(r.port, signedHeaders(over), Buffer.from(over), 'chunked');
    expect(chunked.status).toBe('HTTP/1.1 413 Payload Too Large');
    await chunked.closed;
    expect(r.seen).toEqual([]);
    expect(log.lines.filter((l) => l.msg.includes(`limit: ${SLACK_BODY_LIMIT_BYTES} bytes`))).toHaveLength(2);
    // A body of exactly the limit is Slack's to send: taken and handled.
    const limit = eventBodyOf(SLACK_BODY_LIMIT_BYTES, 'Ev0BIG2');
    const handled = new Promise<void>((resolve) => r.events.once('seen', () => resolve()));
    expect((await postSigned(r.requests.url, SECRET, limit, 'application/json')).status).toBe(200);
    await handled;
    expect(r.seen).toHaveLength(1);
  });

  it('a correctly signed request dated more than 5 minutes ahead or behind the clock is refused 401 as stale; at 5 minutes it is taken', async () => {
    const log = new CapturedLog('info');
    const clock = new ManualClock(Date.now());
    const r = await replica({ logger: log.logger, requestClock: clock });
    const now = Math.floor(clock.now() / 1000);
    const ahead = await r.requests.command(
      { command: '/rollback', text: 'ahead' },
      { timestamp: now + SLACK_REQUEST_WINDOW_S + 1 },
    );
    expect(ahead.status).toBe(401);
    // Bolt's line for a stale request: a timestamp out of the window, not a wrong signing secret.
    const [line] = await log.waitFor((l) => /Failed to parse and verify/.test(l.msg));
    expect(line?.msg).toMatch(/stale/);
    expect(log.lines.filter((l) => /SLACK_SIGNING_SECRET/.test(l.msg))).toEqual([]);
    const edge = await r.requests.command(
      { command: '/rollback', text: 'edge' },
      { timestamp: now + SLACK_REQUEST_WINDOW_S },
    );
    expect(edge.status).toBe(200);
    // Behind, on the same clock (Bolt's own check of the past reads the system time).
    clock.set(clock.now() + (SLACK_REQUEST_WINDOW_S + 1) * 1000);
    expect(
      (await r.requests.command({ command: '/rollback', text: 'behind' }, { timestamp: now })).status,
    ).toBe(401);
    expect(r.seen).toEqual(['command:edge']);
  });

  it('a signed command or click delivered again (same timestamp and signature) runs once, on any replica, and is answered 200', async () => {
    const a = await replica();
    const b = await replica();
    const form = 'application/x-www-form-urlencoded';
    const timestamp = Math.floor(Date.now() / 1000);
    const command = a.requests.slashCommandBody({ command: '/rollback', text: 'production' }).body;
    expect((await postSigned(a.requests.url, SECRET, command, form, { timestamp })).status).toBe(200);
    const again = await postSigned(a.requests.url, SECRET, command, form, { timestamp });
    expect(again.status).toBe(200);
    expect(again.text).toBe('');
    expect((await postSigned(b.requests.url, SECRET, command, form, { timestamp })).status).toBe(200);
    const click = a.requests.blockActionBody({
      actionId: 'sy1:confirm:plan_0123abcd',
      messageTs: '1.000001',
    }).body;
    expect((await postSigned(b.requests.url, SECRET, click, form, { timestamp })).status).toBe(200);
    expect((await postSigned(a.requests.url, SECRET, click, form, { timestamp })).status).toBe(200);
    expect([...a.seen, ...b.seen]).toEqual(['command:production', 'action:sy1:confirm:plan_0123abcd']);
    // Remembered in Redis until the request leaves the window.
    for (const body of [command, click]) {
      const ttl = await redis.pttl(
        `${prefix}slack:request:${timestamp}:${slackSignature(SECRET, timestamp, body).slice('v0='.length)}`,
      );
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(SLACK_REQUEST_WINDOW_S * 1000);
    }
    // The same command typed again is a new request (Slack signs it anew): it runs.
    expect((await a.requests.command({ command: '/rollback', text: 'production' })).status).toBe(200);
    expect(a.seen).toEqual(['command:production', 'command:production']);
  });

  it('an Events API delivery sent again with the same timestamp and signature is left to the event_id dedupe', async () => {
    const r = await replica();
    const event = { type: 'message', channel: 'C0PROD', user: 'U0ALICE', text: 'disk full', ts: '1.000003' };
    const timestamp = Math.floor(Date.now() / 1000);
    const handled = once(r.events, 'seen', 'event:disk full');
    expect((await r.requests.event(event, 'Ev0SAME', { timestamp })).status).toBe(200);
    await handled;
    const dropped = once(r.events, 'duplicate', 'Ev0SAME');
    const retry = await r.requests.event(event, 'Ev0SAME', {
      timestamp,
      headers: { 'x-slack-retry-num': '1', 'x-slack-retry-reason': 'http_timeout' },
    });
    expect(retry.status).toBe(200);
    await dropped;
    expect(r.seen).toEqual(['event:disk full']);
  });

  it('a command, click or event from another workspace than the bot token’s is refused, told only to the sender, and runs nothing', async () => {
    const log = new CapturedLog('warn');
    const r = await replica({ logger: log.logger });
    const form = 'application/x-www-form-urlencoded';
    // A distributed install in another workspace, signed by Slack with this app's signing secret.
    const { payload: command } = r.requests.slashCommandPayload({ command: '/rollback', text: 'production' });
    const foreignCommand = new URLSearchParams({
      ...command,
      team_id: 'TEVILCORP',
      api_app_id: 'A0OTHERAPP',
    });
    const told = await postSigned(r.requests.url, SECRET, foreignCommand.toString(), form);
    expect(told.status).toBe(200);
    expect(told.json).toMatchObject({ response_type: 'ephemeral' });
    expect(String(told.json?.text)).toMatch(
      /not permitted.*another workspace or organization.*Nothing was changed/,
    );
    // A click from that workspace, and one from a person of another organization in a Slack Connect
    // channel (the workspace is ours, the person's own is not): told through the response URL.
    for (const [team, userTeam] of [
      ['TEVILCORP', 'TEVILCORP'],
      [fake.teamId, 'TPARTNER'],
    ] as const) {
      const { payload, responseUrl } = r.requests.blockActionPayload({
        actionId: 'sy1:confirm:plan_0123abcd',
        messageTs: '1.000001',
      });
      const foreign = {
        ...payload,
        api_app_id: 'A0OTHERAPP',
        team: { id: team, domain: 'other' },
        user: { ...(payload.user as Record<string, unknown>), team_id: userTeam },
      };
      const body = new URLSearchParams({ payload: JSON.stringify(foreign) }).toString();
      expect((await postSigned(r.requests.url, SECRET, body, form)).status).toBe(200);
      const id = responseUrl.split('/')[5];
      const reply = await fake.waitForResponse((x) => x.id === id);
      expect(reply.body).toMatchObject({ response_type: 'ephemeral', replace_original: false });
      expect(String(reply.body.text)).toMatch(/not permitted/);
    }
    // An event delivered for another workspace's installation: acknowledged, not handled.
    const event = JSON.stringify({
      team_id: 'TEVILCORP',
      api_app_id: 'A0SWITCH',
      event: { type: 'message', channel: 'C0PROD', user: 'U0EVE', text: 'outage', ts: '1.000004' },
      type: 'event_callback',
      event_id: 'Ev0EVIL',
      event_time: Math.floor(Date.now() / 1000),
      authorizations: [{ team_id: 'TEVILCORP', user_id: 'U0BOT', is_bot: true }],
    });
    expect((await postSigned(r.requests.url, SECRET, event, 'application/json')).status).toBe(200);
    await log.waitFor((l) => /another workspace/.test(l.msg), 4);
    expect(r.seen).toEqual([]);
    // The bot's own workspace is served.
    expect((await r.requests.command({ command: '/rollback', text: 'ours' })).status).toBe(200);
    expect(r.seen).toEqual(['command:ours']);
  });

  it("Bolt's log lines have the credentials of URLs and tokens masked", () => {
    const log = new CapturedLog('debug');
    const bolt = boltLogger(log.logger);
    bolt.warn('http request failed: POST https://ops:hunter2@proxy.internal/api/chat.postMessage', {
      token: 'xoxb-1234-5678-abcdef',
    });
    bolt.error('socket closed: wss://user:s3cret@wss-primary.slack.com/link');
    const all = JSON.stringify(log.lines);
    expect(all).not.toContain('hunter2');
    expect(all).not.toContain('s3cret');
    expect(all).not.toContain('xoxb-1234');
    expect(log.lines.map((l) => l.msg)).toEqual([
      expect.stringContaining('https://***@proxy.internal/api/chat.postMessage'),
      expect.stringContaining('wss://***@wss-primary.slack.com/link'),
    ]);
  });
});
