/**
 * Where alert suggestions go and how resolutions are placed: rules of src/alerts/service.ts no other test
 * of the area pinned (found by mutation testing). Each test fails on one small change the area's tests
 * let through.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createPosterClient, SlackPostError, SlackPoster } from '../../handlers/slack/poster.js';
import type { SlackReporter } from '../../handlers/slack/reporter.js';
import { parseChatAlert } from '../../src/alerts/chat.js';
import { AlertDedupe } from '../../src/alerts/dedupe.js';
import { parseAlertPayload } from '../../src/alerts/parsers.js';
import {
  AlertService,
  compositeSink,
  MAX_LATE_DELIVERIES,
  MISSING_DATA_DETAIL,
  PENDING_DETAIL,
  PENDING_SENDER_RETRIES_DETAIL,
  type SuggestionInput,
  type SuggestionSink,
} from '../../src/alerts/service.js';
import type { AlertSource, NormalizedAlert } from '../../src/alerts/types.js';
import { fileConfigSchema, parseEnv } from '../../src/config.js';
import { PermanentChatError } from '../../src/errors.js';
import type { RedisClient } from '../../src/redis.js';
import { plainText } from '../../src/views/format.js';
import type { MessageView } from '../../src/views/types.js';
import { alertCount, createHarness, type Harness, MINUTE } from '../alerts/helpers.js';
import { FakeSlack } from '../fakes/slack/server.js';

const fixtureDir = join(import.meta.dirname, '../fixtures/alerts');
const fixture = (name: string) =>
  JSON.parse(readFileSync(join(fixtureDir, name), 'utf8')) as Record<string, unknown>;

/** The alerts of a vendor payload, parsed as the webhook does. */
function parsed(h: Harness, source: AlertSource, body: unknown): NormalizedAlert[] {
  const r = parseAlertPayload(source, body, { now: h.clock.now() });
  if (!r.ok) throw new Error(`expected a valid payload: ${r.refusal.message}`);
  return r.value;
}

/** Lets promises that are ready run (no clock involved). */
const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
};

/** An AlertService whose destinations are read (nothing is posted: the collaborators are never called). */
function serviceWith(opts: {
  environments: Record<string, unknown>;
  env?: Record<string, string>;
  surfaces?: readonly ('slack' | 'discord' | 'console')[];
  defaultChannels?: { console?: string };
}): AlertService {
  const unused = () => {
    throw new Error('not used by destinations()');
  };
  return new AlertService({
    platform: { listEnvironments: unused, snapshot: unused },
    flow: { plan: unused },
    sink: { suggest: unused, resolved: unused } as SuggestionSink,
    dedupe: new AlertDedupe({} as RedisClient),
    config: {
      env: parseEnv(opts.env ?? {}),
      file: fileConfigSchema.parse({ environments: opts.environments }),
    },
    ...(opts.surfaces === undefined ? {} : { surfaces: opts.surfaces }),
    ...(opts.defaultChannels === undefined ? {} : { defaultChannels: opts.defaultChannels }),
  });
}

describe('suggestion destinations (found by mutation testing)', () => {
  it("an environment's own channel wins over SLACK_ALERT_CHANNEL / DISCORD_ALERT_CHANNEL, which serve the others", () => {
    const service = serviceWith({
      environments: { production: { channels: { slack: 'C0PROD', discord: '111111111111' } }, preview: {} },
      env: { SLACK_ALERT_CHANNEL: 'C0GLOBAL', DISCORD_ALERT_CHANNEL: '999999999999' },
    });
    expect(service.destinations('production')).toEqual([
      { surface: 'slack', channel: 'C0PROD' },
      { surface: 'discord', channel: '111111111111' },
    ]);
    expect(service.destinations('preview')).toEqual([
      { surface: 'slack', channel: 'C0GLOBAL' },
      { surface: 'discord', channel: '999999999999' },
    ]);
  });

  it('only connected surfaces get a destination', () => {
    const service = serviceWith({
      environments: { production: { channels: { slack: 'C0PROD', discord: '111111111111' } } },
      surfaces: ['discord'],
    });
    expect(service.destinations('production')).toEqual([{ surface: 'discord', channel: '111111111111' }]);
  });

  it('a chat alert is answered in its own thread: the thread it sits in, else under the alert message', () => {
    const service = serviceWith({ environments: { production: { channels: { slack: 'C0PROD' } } } });
    expect(
      service.destinations('production', {
        surface: 'slack',
        channel: 'C0WATCH',
        messageId: '2.0',
        threadId: '1.0',
      }),
    ).toEqual([{ surface: 'slack', channel: 'C0WATCH', threadId: '1.0' }]);
    expect(
      service.destinations('production', { surface: 'slack', channel: 'C0WATCH', messageId: '2.0' }),
    ).toEqual([{ surface: 'slack', channel: 'C0WATCH', threadId: '2.0' }]);
  });
});

describe('a group member placed by a matcher resolves its own environment only (found by mutation testing)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it("never the group's incident in another environment where a member still fires", async () => {
    const x = await createHarness();
    h = x;
    const member = (env: string | undefined, status: 'firing' | 'resolved', title: string) =>
      x.alert({
        source: 'alertmanager',
        fingerprint: 'group-1',
        status,
        title,
        labels: env === undefined ? {} : { env },
      });
    // One group, members in production and preview: an incident in each.
    await x.service.handle([
      member('production', 'firing', 'checkout 5xx'),
      member('preview', 'firing', 'search 5xx'),
    ]);
    const preview = { environment: 'preview', source: 'alertmanager', fingerprint: 'group-1' };
    expect(await x.dedupe.get(preview)).toBeDefined();
    // The production member resolves, without its env label (the checkout matcher places it); the preview
    // member still fires.
    const results = await x.service.handle([
      member(undefined, 'resolved', 'checkout 5xx'),
      member('preview', 'firing', 'search 5xx'),
    ]);
    expect(results.map((r) => [r.environment, r.outcome])).toEqual([
      ['production', 'resolved'],
      ['preview', 'deduplicated'],
    ]);
    expect((await x.dedupe.get(preview))?.resolved).toBe(false);
  });
});

describe('a RESOLVED that raced a failed post', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('is not forgotten: the firing alert is not asked to retry (a retry would offer a rollback for an incident that is over)', async () => {
    const x = await createHarness();
    h = x;
    let open: () => void = () => {};
    x.sink.gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const firing = x.service.handle([x.alert()]);
    while (x.sink.suggestions.length === 0) await new Promise<void>((r) => setImmediate(r));
    const [resolved] = await x.service.handle([x.alert({ status: 'resolved' })]);
    expect(resolved?.detail).toBe('Resolved while the suggestion was being posted; it will say so.');
    // the chat API fails the post
    x.sink.failing = true;
    open();
    const [answer] = await firing;
    expect(answer).toMatchObject({ outcome: 'failed', retry: false });
    expect(answer?.detail).toMatch(/and the incident resolved meanwhile: nothing is suggested for it\.$/);
  });

  it('a post that fails with no resolution meanwhile still asks for a retry', async () => {
    const x = await createHarness();
    h = x;
    x.sink.failing = true;
    const [answer] = await x.service.handle([x.alert()]);
    expect(answer).toMatchObject({ outcome: 'failed', retry: true });
    x.sink.failing = false;
    expect((await x.service.handle([x.alert()]))[0]?.outcome).toBe('suggested');
  });
});

describe('an Alertmanager group re-sent after its incident record expired (repeat_interval longer than 6 hours)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  /** The captured-from-the-docs firing group, its members started `agoMs` before the clock. */
  function group(x: Harness, source: 'alertmanager' | 'grafana', agoMs: number) {
    const body = fixture(source === 'grafana' ? 'grafana-firing.json' : 'alertmanager-firing.json');
    const startsAt = new Date(x.clock.now() - agoMs).toISOString();
    const members = (body.alerts as Record<string, unknown>[]).map((m) => ({ ...m, startsAt }));
    return parsed(x, source, { ...body, alerts: members });
  }

  it('is taken as a re-notification: no second suggestion, and its later re-sends are deduplicated', async () => {
    const x = await createHarness();
    h = x;
    const first = group(x, 'alertmanager', 33 * MINUTE);
    expect((await x.service.handle(first)).map((r) => r.outcome)).toEqual(['suggested']);
    // 12 hours later Alertmanager re-sends the group with its first startsAt. The record's 6 hours ran
    // out meanwhile: Redis removes it by itself, it is removed here instead of waiting.
    const fingerprint = first[0]?.fingerprint ?? '';
    await x.redis.del(x.dedupe.key({ environment: 'production', source: 'alertmanager', fingerprint }));
    await x.clock.advance(12 * 60 * MINUTE);
    const again = await x.service.handle(first);
    expect(again).toEqual([
      {
        title: 'HighErrorRate: 5xx ratio above 5% on api',
        status: 'firing',
        fingerprint,
        environment: 'production',
        outcome: 'no_correlation',
        detail:
          'This alert started 12 hours 33 minutes ago, longer than an incident is remembered (6 hours after its latest alert): Alertmanager re-sends a group that keeps firing with its first start time, so this is taken as a re-notification of an incident handled then, and no deployment is blamed for it now. /rollback production if one is needed.',
      },
    ]);
    expect(x.sink.suggestions).toHaveLength(1);
    expect((await x.service.handle(first)).map((r) => r.outcome)).toEqual(['deduplicated']);
  });

  it('a group that started inside the record lifetime is correlated as before; so is a generic alert of any age', async () => {
    const x = await createHarness();
    h = x;
    // The demo went live 40 minutes before the clock's start; 6 hours on, a group that started a
    // minute after that (5 h 59 min ago) is still a first notification.
    await x.clock.advance(6 * 60 * MINUTE);
    expect(
      (await x.service.handle(group(x, 'grafana', 6 * 60 * MINUTE - MINUTE))).map((r) => r.outcome),
    ).toEqual(['suggested', 'deduplicated']);
    // One started a minute before it (6 h 1 min ago) would be re-sent: not correlated.
    const x2 = await createHarness();
    await x2.clock.advance(6 * 60 * MINUTE);
    try {
      const late = await x2.service.handle(group(x2, 'alertmanager', 6 * 60 * MINUTE + MINUTE));
      expect(late.map((r) => r.outcome)).toEqual(['no_correlation']);
      // A generic sender's start time is its own: it is correlated whatever its age.
      const generic = x2.alert({ startedAt: x2.clock.now() - 6 * 60 * MINUTE - MINUTE, fingerprint: 'g-1' });
      expect((await x2.service.handle([generic])).map((r) => r.outcome)).toEqual(['suggested']);
    } finally {
      await x2.close();
    }
  });
});

describe('deliveries answered within their budget (handleWithin)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it(`at most ${MAX_LATE_DELIVERIES} deliveries go on in the background: the next is answered once handled`, async () => {
    const x = await createHarness();
    h = x;
    let open: () => void = () => {};
    x.sink.gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const budget = 1_000;
    // Incidents of one rollback: the first posts (held at the gate), the others wait for that post.
    const answers = Array.from({ length: MAX_LATE_DELIVERIES }, (_, i) =>
      x.service.handleWithin([x.alert({ fingerprint: `incident-${i}` })], budget),
    );
    while (x.sink.suggestions.length === 0) await settle();
    await x.clock.advance(budget);
    for (const answer of await Promise.all(answers))
      expect(answer.map((r) => [r.outcome, r.detail])).toEqual([['pending', PENDING_DETAIL]]);
    let answered = false;
    const next = x.service.handleWithin([x.alert({ fingerprint: 'one-more' })], budget).then((r) => {
      answered = true;
      return r;
    });
    await settle();
    await x.clock.advance(budget);
    await settle();
    expect(answered).toBe(false);
    open();
    expect((await next).map((r) => r.outcome)).toEqual(['grouped']);
    await x.service.idle();
    expect(x.sink.suggestions).toHaveLength(1);
  });
  it('an answer holding a failure a retry may fix (a 503: its sender retries) is not also retried by Switchyard', async () => {
    const x = await createHarness();
    h = x;
    let open: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    let calls = 0;
    const original = x.sink.suggest.bind(x.sink);
    x.sink.suggest = async (input: SuggestionInput) => {
      calls += 1;
      // The first incident's post fails at once (the chat API is down), the second's is slow.
      if (calls === 1) throw new Error('chat API unavailable');
      if (calls === 2) await gate;
      return original(input);
    };
    const budget = 1_000;
    const answer = x.service.handleWithin(
      [x.alert({ fingerprint: 'incident-a' }), x.alert({ fingerprint: 'incident-b' })],
      budget,
    );
    while (calls < 2) await settle();
    await x.clock.advance(budget);
    const results = await answer;
    expect(results.map((r) => [r.fingerprint, r.outcome, r.retry])).toEqual([
      ['incident-a', 'failed', true],
      ['incident-b', 'pending', undefined],
    ]);
    expect(results[1]?.detail).toBe(PENDING_SENDER_RETRIES_DETAIL);
    open();
    await x.service.idle();
    // Switchyard's own first retry would come now: the delivery is left to its sender's retry.
    await x.clock.advance(5_000);
    await x.service.retriesSettled();
    await x.service.idle();
    // Handled once: nothing more was posted, joined or deduplicated, and nothing counted again.
    expect(calls).toBe(2);
    const counted = async () =>
      Object.fromEntries(
        await Promise.all(
          ['failed', 'suggested', 'grouped', 'deduplicated'].map(async (o) => [
            o,
            await alertCount(x.metrics, o),
          ]),
        ),
      );
    expect(await counted()).toEqual({ failed: 1, suggested: 1, grouped: 0, deduplicated: 0 });
    expect(
      await x.dedupe.get({ environment: 'production', source: 'generic', fingerprint: 'incident-a' }),
    ).toBe(undefined);
    // The sender's retry posts the first incident (the second is already on the suggestion).
    const retried = await x.service.handleWithin(
      [x.alert({ fingerprint: 'incident-a' }), x.alert({ fingerprint: 'incident-b' })],
      budget,
    );
    expect(retried.map((r) => r.outcome)).toEqual(['grouped', 'deduplicated']);
  });
});

describe('a chat message saying data is missing', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  const watched = ({
    memoryChat,
    outsideWindow = 'nothing',
  }: {
    memoryChat?: readonly 'slack'[];
    outsideWindow?: 'nothing' | 'note';
  } = {}) =>
    createHarness({
      file: {
        alerts: { watch: { slack: ['C0WATCHED'] }, outsideWindow },
        environments: { production: { channels: { slack: 'C0ALERTS' }, alertMatchers: ['checkout'] } },
      },
      ...(memoryChat === undefined ? {} : { memoryChat }),
    });
  const origin = (messageId: string) => ({ surface: 'slack' as const, channel: 'C0WATCHED', messageId });
  /** A message's text lines and list items, as read. */
  const lines = (view: MessageView | undefined) =>
    (view?.blocks ?? []).flatMap((b) =>
      b.type === 'text' || b.type === 'context'
        ? [plainText(b.spans)]
        : b.type === 'list'
          ? b.items.map((item) => plainText(item.spans))
          : [],
    );
  const chatAlert = (x: Harness, text: string) => {
    const alert = parseChatAlert(text, 'C0WATCHED', 'slack', x.config, { at: x.clock.now() });
    if (alert === undefined) throw new Error(`not read as an alert: ${text}`);
    return alert;
  };

  it('that its query returned nothing (DatasourceNoData, [No Data]) is correlated as any alert inside the window, and marked where shown', async () => {
    const x = await watched({ memoryChat: ['slack'] });
    h = x;
    // The demo went live 40 minutes ago: the service may have died with that deploy.
    const grafana = chatAlert(
      x,
      '[FIRING:1] DatasourceNoData Checkout (production)\nLabels:\n - alertname = DatasourceNoData\n - rulename = Checkout latency',
    );
    const [first] = await x.service.handleChat([grafana], origin('1700000000.000100'));
    expect(first).toMatchObject({
      outcome: 'suggested',
      environment: 'production',
      detail: `dep_4kq9wz went live 40 minutes before this alert started — roll back to dep_3hd7xa? ${MISSING_DATA_DETAIL}`,
    });
    const [message, ...others] = x.slack.inChannel('C0WATCHED');
    expect(others).toEqual([]);
    expect(lines(message?.view)[0]).toBe(
      'Alert from slack: DatasourceNoData Checkout (production) (no data: its query returned nothing; the service may have stopped reporting) — started 2026-11-29 12:00 UTC. dep_4kq9wz went live 40 minutes before this alert started.',
    );
    // Another incident of the same rollback in the channel joins the message, marked in its list too.
    const datadog = chatAlert(x, '[P2] [No Data] checkout heartbeat (production)');
    const [second] = await x.service.handleChat([datadog], origin('1700000000.000200'));
    expect(second).toMatchObject({
      outcome: 'grouped',
      detail: `Added to the open suggestion to roll back to dep_3hd7xa (${first?.planId}). ${MISSING_DATA_DETAIL}`,
    });
    expect(x.slack.inChannel('C0WATCHED')).toHaveLength(1);
    expect(lines(message && x.slack.messages.get(message.ref.messageId)?.view)).toContain(
      'slack: [P2] [No Data] checkout heartbeat (production) (no data) — started 2026-11-29 12:00 UTC',
    );
    expect([
      await alertCount(x.metrics, 'suggested', 'slack'),
      await alertCount(x.metrics, 'grouped', 'slack'),
    ]).toEqual([1, 1]);
  });

  it('that its query returned nothing, long after any deploy (outside the window), suggests nothing (its note says no data)', async () => {
    const x = await watched({ outsideWindow: 'note' });
    h = x;
    // 70 minutes after the demo's go-live: past the 60-minute window.
    await x.clock.advance(30 * MINUTE);
    const late = chatAlert(x, '[No Data] checkout heartbeat (production)');
    const [result] = await x.service.handleChat([late], origin('1700000000.000100'));
    expect(result).toMatchObject({
      outcome: 'outside_window',
      detail: expect.stringMatching(
        /outside the 60 minutes correlation window; no rollback suggested\. \(No data: /,
      ),
    });
    // A note without a button, marked as the answer is.
    expect(x.sink.suggestions.map((n) => [n.kind, n.sentence])).toEqual([['note', result?.detail]]);
  });

  it('that its query failed (DatasourceError) is answered ignored with why, counted so, and suggests nothing (inside the window of a go-live)', async () => {
    const x = await watched();
    h = x;
    const alert = chatAlert(
      x,
      '[FIRING:1] DatasourceError Checkout (production)\nLabels:\n - alertname = DatasourceError\n - rulename = Checkout latency',
    );
    const [result, ...more] = await x.service.handleChat([alert], origin('1700000000.000100'));
    expect(more).toEqual([]);
    expect(result).toEqual({
      title: alert.title,
      status: 'firing',
      ...(alert.fingerprint === undefined ? {} : { fingerprint: alert.fingerprint }),
      outcome: 'ignored',
      detail:
        'DatasourceError says the rule "Checkout latency" could not query its datasource (an error or a time-out), not that the deployment is bad: no rollback is suggested for it.',
    });
    expect(x.sink.suggestions).toEqual([]);
    expect(await alertCount(x.metrics, 'ignored', 'slack')).toBe(1);
    // The same words without the failed query: a suggestion (the demo went live 40 minutes ago).
    const real = chatAlert(x, '[FIRING:1] HighLatency checkout (production)');
    expect((await x.service.handleChat([real], origin('1700000000.000200')))[0]?.outcome).toBe('suggested');
  });
});

describe('a suggestion post that may have gone through (Slack did not answer it)', () => {
  let h: Harness | undefined;
  let fake: FakeSlack | undefined;
  afterEach(async () => {
    await h?.close();
    await fake?.close();
    h = undefined;
    fake = undefined;
  });

  /** The harness posting to the fake Slack through the real SlackPoster (a post times out after 300 ms). */
  async function throughSlack(file?: Record<string, unknown>): Promise<{ x: Harness; slack: FakeSlack }> {
    const slack = await new FakeSlack({ channels: { C0ALERTS: 'alerts' } }).start();
    fake = slack;
    const poster = new SlackPoster(createPosterClient(slack.token, slack.apiUrl, 300), {} as SlackReporter);
    const x = await createHarness({
      ...(file === undefined ? {} : { file }),
      memoryChat: ['slack'],
      posters: { slack: poster },
    });
    h = x;
    return { x, slack };
  }

  it('keeps its incident claimed: the next notification of the incident does not post a second copy', async () => {
    const { x, slack } = await throughSlack();
    const held = slack.hold('chat.postMessage');
    const [first] = await x.service.handle([x.alert({ fingerprint: 'inc-1' })]);
    expect(first).toMatchObject({ outcome: 'failed', retry: false });
    expect(first?.detail).toContain('the message may still appear, late, so it was not sent again');
    expect(first?.detail).toContain(
      'The incident stays claimed so that it is not posted a second time: its later notifications are answered deduplicated while its record lives (6 hours after its latest alert).',
    );
    // Slack took it after all: it shows in the channel, late.
    held.release();
    await slack.waitForCall('chat.postMessage', (c) => c.response.ok === true);
    // Minutes later the sender notifies the same incident again (Alertmanager's group_interval).
    await x.clock.advance(5 * MINUTE);
    const [again] = await x.service.handle([x.alert({ fingerprint: 'inc-1' })]);
    expect(again?.outcome).toBe('deduplicated');
    expect(slack.callsOf('chat.postMessage')).toHaveLength(1);
  });

  it('an outside-the-window note keeps its incident and its place claimed', async () => {
    const { x, slack } = await throughSlack({
      alerts: { outsideWindow: 'note', correlationWindow: '5m' },
      environments: { production: { channels: { slack: 'C0ALERTS' } } },
    });
    const held = slack.hold('chat.postMessage');
    const [first] = await x.service.handle([x.alert({ fingerprint: 'inc-1' })]);
    expect(first).toMatchObject({ outcome: 'failed', retry: false });
    held.release();
    await slack.waitForCall('chat.postMessage', (c) => c.response.ok === true);
    const later = await x.service.handle([
      x.alert({ fingerprint: 'inc-1' }),
      x.alert({ fingerprint: 'inc-2' }),
    ]);
    // The same incident is deduplicated; another one of the same deployment finds its note posted.
    expect(later.map((r) => r.outcome)).toEqual(['deduplicated', 'outside_window']);
    expect(slack.callsOf('chat.postMessage')).toHaveLength(1);
  });

  it('of several surfaces that all failed, the one that may have posted is the failure passed on', async () => {
    const x = await createHarness();
    h = x;
    const maybe = new PermanentChatError(
      new SlackPostError('chat.postMessage', 'C0ALERTS', 'timeout', false, undefined, 'no answer', true),
    );
    const failingWith = (e: unknown): SuggestionSink => ({
      suggest: () => Promise.reject(e),
      resolved: async () => undefined,
    });
    // The surface that may have posted comes last: it is still the one told.
    const sink = compositeSink({
      slack: failingWith(new Error('chat API unavailable')),
      discord: failingWith(maybe),
    });
    const input = {
      kind: 'note' as const,
      environment: 'production',
      alert: x.alert(),
      sentence: 's',
      correlation: { kind: 'none' as const, reason: 'r' },
      destinations: [
        { surface: 'slack' as const, channel: 'C0ALERTS' },
        { surface: 'discord' as const, channel: '123456789012' },
      ],
    };
    await expect(sink.suggest(input)).rejects.toBe(maybe);
  });
});
