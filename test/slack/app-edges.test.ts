/**
 * The Bolt app shell (handlers/slack/app.ts), what no other test pins down: how long an Events API
 * event_id is remembered (Slack retries after 1 and 5 minutes), and SLACK_API_URL ending with /api/.
 */
import { EventEmitter } from 'node:events';
import type { App } from '@slack/bolt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  checkApiUrl,
  createSlackApp,
  type SlackApp,
  type SlackAppOptions,
} from '../../handlers/slack/app.js';
import { HttpServer } from '../../src/http.js';
import { silentLogger } from '../../src/log.js';
import { createRedis, type RedisClient } from '../../src/redis.js';
import { SlackRequests } from '../fakes/slack/requests.js';
import { FakeSlack } from '../fakes/slack/server.js';
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
