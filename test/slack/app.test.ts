/**
 * The Bolt app shell on the shared HTTP server: signature checks (forged, replayed → 401 and no handler
 * runs), one path for commands/interactivity/events, and Events API retries deduplicated in Redis
 * across two replicas.
 */
import { EventEmitter } from 'node:events';
import type { App } from '@slack/bolt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  checkApiUrl,
  createSlackApp,
  SIGNATURE_WARNING_INTERVAL_MS,
  type SlackApp,
  type SlackAppOptions,
} from '../../handlers/slack/app.js';
import { ManualClock, systemClock, within } from '../../src/clock.js';
import { HttpServer } from '../../src/http.js';
import { silentLogger } from '../../src/log.js';
import { createRedis, type RedisClient } from '../../src/redis.js';
import { postSigned, SlackRequests } from '../fakes/slack/requests.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { CapturedLog } from '../support/captured-log.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const SECRET = 'test-signing-secret';

interface Replica {
  http: HttpServer;
  slack: SlackApp;
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
