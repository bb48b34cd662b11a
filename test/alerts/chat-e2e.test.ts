/**
 * Chat-message alerts end to end (issue 7): the whole Switchyard (startSwitchyard: real Redis, the
 * embedded local platform with its demo project, queue, worker) with the REAL surface factories —
 * the Bolt app against the fake Slack, the discord.js client against the fake Discord. An alert
 * message in a watched channel becomes a rollback suggestion under it; its confirm button switches
 * traffic and the message ends in the final state. The demo's current production deployment went
 * live 40 minutes before "now", so an alert posted now is inside the 60-minute correlation window.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type RunningSwitchyard, type SurfaceFactory, startSwitchyard } from '../../handlers/app.js';
import { slackSurface } from '../../handlers/slack/surface.js';
import { discordSurface } from '../../handlers/surfaces.js';
import type { Clock } from '../../src/clock.js';
import { fileConfigSchema, parseEnv } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { buttonId, textOf, waitForMessage, waitForPost } from '../discord/harness.js';
import { type FakeDiscord, makeSnowflake, startFakeDiscord } from '../fakes/discord/server.js';
import { buttonsOf, SlackRequests } from '../fakes/slack/requests.js';
import { FakeSlack, type RecordedCall } from '../fakes/slack/server.js';
import { SlackFront } from '../slack/faulty-front.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { startTestSwitchyard, type TestSwitchyard } from '../support/switchyard.js';
import { AlertLog, observed } from './observe.js';

const SECRET = 'chat-e2e-signing-secret';
const WATCHED = 'C0ALERTS';
const UNWATCHED = 'C0RANDOM';
const LOCAL = { reactivationTime: '200ms', buildTime: '300ms' };

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** Everything a Slack test drives. */
interface SlackRig {
  readonly fake: FakeSlack;
  /** In front of `fake` when asked for (`front: true`): every Slack call goes through it. */
  readonly front: SlackFront | undefined;
  readonly app: TestSwitchyard;
  readonly requests: SlackRequests;
  readonly log: AlertLog;
  /** A fresh message ts "now", as Slack mints them. */
  ts(): string;
}

let tsCounter = 0;

async function startSlackRig(
  env: Record<string, string> = {},
  opts: { readonly front?: boolean; readonly clock?: Clock } = {},
): Promise<SlackRig> {
  const fake = await new FakeSlack({ channels: { [WATCHED]: 'alerts', [UNWATCHED]: 'random' } }).start();
  closers.push(() => fake.close());
  const front = opts.front === true ? await SlackFront.start(fake) : undefined;
  if (front) closers.push(() => front.close());
  const log = new AlertLog();
  const clock = opts.clock;
  const slack: SurfaceFactory = clock === undefined ? slackSurface : (ctx) => slackSurface({ ...ctx, clock });
  const app = await startTestSwitchyard({
    env: {
      SLACK_BOT_TOKEN: fake.token,
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_API_URL: front?.apiUrl ?? fake.apiUrl,
      ...env,
    },
    file: { local: LOCAL, alerts: { watch: { slack: [WATCHED] } } },
    factories: [observed(slack, log)],
  });
  closers.push(() => app.close());
  const requests = new SlackRequests(`${app.baseUrl}/slack/events`, SECRET, fake);
  return {
    fake,
    front,
    app,
    requests,
    log,
    ts() {
      tsCounter += 1;
      return `${Math.floor(Date.now() / 1000)}.${String(900_000 + tsCounter).padStart(6, '0')}`;
    },
  };
}

/** A `message.channels` event as Slack delivers it for a person's message. */
function userMessage(channel: string, ts: string, text: string): Record<string, unknown> {
  return {
    type: 'message',
    channel,
    user: 'U0ONCALL',
    text,
    ts,
    event_ts: ts,
    channel_type: 'channel',
  };
}

/**
 * What Alertmanager's Slack notifier posts with its default templates (incoming webhook): a
 * `bot_message` with an empty `text` and the alert in one attachment (title, text, fallback).
 */
function alertmanagerMessage(
  ts: string,
  status: 'firing' | 'resolved',
  title = 'HighErrorRate',
): Record<string, unknown> {
  const head = status === 'firing' ? `[FIRING:1] ${title} (production)` : `[RESOLVED] ${title} (production)`;
  return {
    type: 'message',
    subtype: 'bot_message',
    channel: WATCHED,
    bot_id: 'B0ALERTMGR',
    username: 'alertmanager',
    text: '',
    attachments: [
      {
        id: 1,
        color: status === 'firing' ? 'danger' : 'good',
        title: head,
        title_link: 'http://alertmanager.example/#/alerts?receiver=slack',
        text: '*Alert:* 5xx ratio above 5% for 5 minutes\n*Severity:* critical',
        fallback: `${head} | http://alertmanager.example/#/alerts?receiver=slack`,
        mrkdwn_in: ['text'],
      },
    ],
    ts,
    event_ts: ts,
    channel_type: 'channel',
  };
}

/**
 * The system clock, except that waiting takes no real time: `now()` moves on by what was slept (the
 * Slack reporter's pacing and backoff on it pass at once, in order).
 */
function skippingClock(): Clock {
  let skipped = 0;
  return {
    now: () => Date.now() + skipped,
    sleep: async (ms) => {
      skipped += Math.max(0, ms);
    },
  };
}

function slackEventId(): string {
  tsCounter += 1;
  return `Ev0CHAT${String(tsCounter).padStart(6, '0')}`;
}

/** Everything a person reads in a Slack message (fallback text and blocks). */
function slackText(call: { args: Readonly<Record<string, unknown>> }): string {
  return `${String(call.args.text)}\n${JSON.stringify(call.args.blocks ?? [])}`;
}

function suggestionsIn(fake: FakeSlack): RecordedCall[] {
  return fake.callsOf('chat.postMessage');
}

describe('Slack: alert messages in watched channels', () => {
  it('suggests the /rollback confirmation in the thread; confirming switches and ends in the final state', async () => {
    const { fake, app, requests, log, ts: nextTs } = await startSlackRig();
    const before = await app.platform.snapshot('production');
    const alertTs = nextTs();
    const event = userMessage(WATCHED, alertTs, '[FIRING] High error rate env=production');
    const eventId = slackEventId();
    expect((await requests.event(event, eventId)).status).toBe(200);

    const post = await fake.waitForCall('chat.postMessage');
    expect(post.response.ok).toBe(true);
    expect(post.args.channel).toBe(WATCHED);
    expect(post.args.thread_ts).toBe(alertTs);
    const text = slackText(post);
    const current = before.environment.currentDeploymentId;
    expect(current).toBe('dep_4kq9wz');
    expect(text).toContain(current);
    expect(text).toContain('dep_3hd7xa');
    expect(text).toContain('shop.localhost');
    expect(text).toContain('High error rate');
    expect(text).toMatch(/went live (39|40|41) minutes before this alert started/);
    const buttons = buttonsOf(post.args.blocks as unknown[]);
    expect(buttons.map((b) => b.text)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^Rollback/), 'Cancel', 'Dismiss']),
    );
    const [first] = await log.waitForCount(1);
    expect(first?.outcome).toBe('suggested');

    // An Events API retry of the same event (same event_id) and a burst of the same alert.
    const retry = await requests.event(event, eventId, {
      headers: { 'X-Slack-Retry-Num': '1', 'X-Slack-Retry-Reason': 'http_timeout' },
    });
    expect(retry.status).toBe(200);
    const burst = Array.from({ length: 12 }, () =>
      requests.event(
        userMessage(WATCHED, nextTs(), '[FIRING] High error rate env=production'),
        slackEventId(),
      ),
    );
    for (const r of await Promise.all(burst)) expect(r.status).toBe(200);
    const results = await log.waitForCount(13);
    expect(results.slice(1).map((r) => r.outcome)).toEqual(Array(12).fill('deduplicated'));
    // The retry never reached the alert service (12 burst messages + the first, nothing more).
    expect(log.results()).toHaveLength(13);
    expect(suggestionsIn(fake)).toHaveLength(1);

    // Confirm on the suggestion: the switch runs and edits the suggestion to its final state.
    const ts = String(post.response.ts);
    const confirm = buttons.find((b) => b.actionId.startsWith('sy1:confirm:'));
    if (!confirm) throw new Error('no confirm button on the suggestion');
    const click = await requests.click({ actionId: confirm.actionId, messageTs: ts, channelId: WATCHED });
    expect(click.status).toBe(200);
    const final = await fake.waitForCall(
      'chat.update',
      (c) => c.args.ts === ts && /Traffic is on/.test(String(c.args.text)),
      20_000,
    );
    expect(final.args.channel).toBe(WATCHED);
    const target = /Traffic is on (\S+?)\./.exec(String(final.args.text))?.[1];
    expect(target).toBe('dep_3hd7xa');
    const after = await app.platform.snapshot('production');
    expect(after.environment.currentDeploymentId).toBe('dep_3hd7xa');
    expect(suggestionsIn(fake)).toHaveLength(1);
  });

  it('ignores unwatched channels, its own messages and edits', async () => {
    const { fake, requests, log, ts: nextTs } = await startSlackRig();
    // Each of these would be a fresh production incident if it were read as an alert.
    await requests.event(
      userMessage(UNWATCHED, nextTs(), '[FIRING] Disk full env=production'),
      slackEventId(),
    );
    await requests.event(
      { ...userMessage(WATCHED, nextTs(), '[FIRING] Queue stuck env=production'), bot_id: fake.botId },
      slackEventId(),
    );
    await requests.event(
      {
        ...userMessage(WATCHED, nextTs(), '[FIRING] Cache cold env=production'),
        subtype: 'message_changed',
      },
      slackEventId(),
    );
    // A real alert afterwards: the only one that reaches the service and the only suggestion.
    const alertTs = nextTs();
    await requests.event(
      userMessage(WATCHED, alertTs, '[FIRING] Checkout down env=production'),
      slackEventId(),
    );
    const results = await log.waitForCount(1);
    expect(results.map((r) => r.title)).toEqual([expect.stringContaining('Checkout down')]);
    const post = await fake.waitForCall('chat.postMessage');
    expect(post.args.thread_ts).toBe(alertTs);
    expect(suggestionsIn(fake)).toHaveLength(1);
    expect(log.results()).toHaveLength(1);
  });

  it('answers an alert posted as a reply in the thread it was posted in', async () => {
    const { fake, requests, log, ts: nextTs } = await startSlackRig();
    const parentTs = nextTs();
    await requests.event(
      userMessage(WATCHED, parentTs, 'Anyone else seeing slow checkouts?'),
      slackEventId(),
    );
    const replyTs = nextTs();
    await requests.event(
      { ...userMessage(WATCHED, replyTs, '[FIRING] Checkout latency env=production'), thread_ts: parentTs },
      slackEventId(),
    );
    expect((await log.waitForCount(1))[0]?.outcome).toBe('suggested');
    const post = await fake.waitForCall('chat.postMessage');
    expect(post.args.channel).toBe(WATCHED);
    expect(post.args.thread_ts).toBe(parentTs);
  });

  it('Dismiss closes the suggestion without switching', async () => {
    const { fake, app, requests, log, ts: nextTs } = await startSlackRig();
    await requests.event(
      userMessage(WATCHED, nextTs(), '[FIRING] Error budget burn env=production'),
      slackEventId(),
    );
    const post = await fake.waitForCall('chat.postMessage');
    expect((await log.waitForCount(1))[0]?.outcome).toBe('suggested');
    const ts = String(post.response.ts);
    const dismiss = buttonsOf(post.args.blocks as unknown[]).find((b) => b.text === 'Dismiss');
    if (!dismiss) throw new Error('no Dismiss button on the suggestion');
    expect(
      (await requests.click({ actionId: dismiss.actionId, messageTs: ts, channelId: WATCHED })).status,
    ).toBe(200);
    const closed = await fake.waitForCall('chat.update', (c) => c.args.ts === ts);
    expect(buttonsOf(closed.args.blocks as unknown[]).map((b) => b.text)).not.toContain('Dismiss');
    expect(String(closed.args.text)).toMatch(
      /^Dismissed: roll back production to dep_3hd7xa\. Nothing changed\./,
    );
    expect((await app.platform.snapshot('production')).environment.currentDeploymentId).toBe('dep_4kq9wz');
  });

  it('reads an Alertmanager notification (attachment only) and edits the suggestion when it resolves', async () => {
    const { fake, requests, log, ts: nextTs } = await startSlackRig();
    const alertTs = nextTs();
    await requests.event(alertmanagerMessage(alertTs, 'firing'), slackEventId());
    const post = await fake.waitForCall('chat.postMessage');
    expect(post.args.thread_ts).toBe(alertTs);
    expect(slackText(post)).toContain('HighErrorRate');
    const ts = String(post.response.ts);
    expect((await log.waitForCount(1))[0]?.outcome).toBe('suggested');

    await requests.event(alertmanagerMessage(nextTs(), 'resolved'), slackEventId());
    const resolved = await log.waitForCount(2);
    expect(resolved[1]?.outcome).toBe('resolved');
    const edit = await fake.waitForCall(
      'chat.update',
      (c) => c.args.ts === ts && /resolved/i.test(slackText(c)),
    );
    expect(edit.args.channel).toBe(WATCHED);
    const edited = slackText(edit);
    expect(edited).toContain('The alert resolved');
    // The button stays, labelled optional.
    const labels = buttonsOf(edit.args.blocks as unknown[]).map((b) => b.text);
    expect(labels).toEqual(expect.arrayContaining([expect.stringMatching(/^Rollback.*\(optional\)/)]));
    expect(suggestionsIn(fake)).toHaveLength(1);
  });
});

describe('Slack: an alert storm in a watched channel', () => {
  it('50 Alertmanager alerts of one bad deploy: one suggestion in the first one’s thread, listing every alert', async () => {
    const { fake, app, requests, log, ts: nextTs } = await startSlackRig();
    const sent = Array.from({ length: 50 }, (_, i) => ({ ts: nextTs(), title: `StormAlert${i}x` }));
    const answers = await Promise.all(
      sent.map((m) => requests.event(alertmanagerMessage(m.ts, 'firing', m.title), slackEventId())),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(200));
    const results = await log.waitForCount(50, 30_000);
    const outcomes = results.map((r) => r.outcome);
    expect({
      suggested: outcomes.filter((o) => o === 'suggested').length,
      grouped: outcomes.filter((o) => o === 'grouped').length,
    }).toEqual({ suggested: 1, grouped: 49 });
    // One message in the channel (Slack allows about one a second there), not one per alert.
    const posts = suggestionsIn(fake).filter((c) => c.args.channel === WATCHED);
    expect(posts).toHaveLength(1);
    const thread = String(posts[0]?.args.thread_ts);
    const suggestedTitle = results.find((r) => r.outcome === 'suggested')?.title ?? '';
    expect(sent.find((m) => m.ts === thread)?.title).toBeDefined();
    expect(suggestedTitle).toContain(sent.find((m) => m.ts === thread)?.title);
    // Its edits (in the background) end counting every alert (Slack shows the first of the list and
    // "…and N more"); the plan lists each one.
    const ts = String(posts[0]?.response.ts);
    await fake.waitForCall(
      'chat.update',
      (c) => c.args.ts === ts && slackText(c).includes('49 more alerts on this deployment (49 still firing)'),
      30_000,
    );
    const planIds = new Set(results.map((r) => r.planId));
    expect(planIds.size).toBe(1);
    const listed = (await app.flow.get([...planIds][0] ?? ''))?.alerts?.map((a) => a.alert.title) ?? [];
    expect(sent.filter((m) => !listed.some((t) => t.includes(m.title))).map((m) => m.title)).toEqual([]);
    expect(buttonsOf(fake.message(WATCHED, ts)?.blocks as unknown[]).map((b) => b.text)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^Rollback/), 'Cancel', 'Dismiss']),
    );
    expect(suggestionsIn(fake)).toHaveLength(1);
  }, 60_000);
});

describe('Slack: webhook alerts of several incidents that point at one rollback', () => {
  const titles = [
    'Checkout 5xx above 5%',
    'Checkout p99 above 2s',
    'Payment provider errors',
    'Cart API down',
  ];
  const alert = (i: number, status: 'firing' | 'resolved' = 'firing') => ({
    title: titles[i],
    status,
    environment: 'production',
    fingerprint: `incident-${i}`,
    startedAt: new Date(Date.now() - 60_000).toISOString(),
  });
  async function webhook(app: TestSwitchyard, body: unknown): Promise<{ status: number; outcome: unknown }> {
    const res = await fetch(`${app.baseUrl}/webhooks/alerts/generic`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as { alerts?: { outcome?: unknown }[] };
    return { status: res.status, outcome: json.alerts?.[0]?.outcome };
  }
  function latest(fake: FakeSlack, ts: string): { text: string; buttons: string[] } {
    const m = fake.message(WATCHED, ts);
    return {
      text: `${m?.text}\n${JSON.stringify(m?.blocks ?? [])}`,
      buttons: buttonsOf((m?.blocks ?? []) as unknown[]).map((b) => b.text),
    };
  }

  it('posts one suggestion listing every alert, marks each as it resolves, and switches from it', async () => {
    const { fake, app, requests } = await startSlackRig({ SLACK_ALERT_CHANNEL: WATCHED });
    expect(await webhook(app, alert(0))).toEqual({ status: 202, outcome: 'suggested' });
    const more = await Promise.all([1, 2].map((i) => webhook(app, alert(i))));
    expect(more).toEqual([
      { status: 202, outcome: 'grouped' },
      { status: 202, outcome: 'grouped' },
    ]);
    const posts = suggestionsIn(fake);
    expect(posts).toHaveLength(1);
    expect(posts[0]?.args.channel).toBe(WATCHED);
    expect(posts[0]?.args.thread_ts).toBeUndefined();
    const ts = String(posts[0]?.response.ts);
    // The message is edited to list all three, the first one first (each grouped webhook was answered
    // once an edit of the message came back: the one listing both may come just after).
    await fake.waitForCall(
      'chat.update',
      (c) => c.args.ts === ts && titles.slice(0, 3).every((t) => slackText(c).includes(t)),
    );
    let view = latest(fake, ts);
    expect(view.text.indexOf(titles[0] ?? '')).toBeLessThan(view.text.indexOf(titles[1] ?? ''));
    for (const title of titles.slice(0, 3)) expect(view.text).toContain(title);
    expect(view.text).toContain('2 more alerts on this deployment (2 still firing)');

    // Two of them resolve: each is marked, and the suggestion still asks (one alert still fires).
    expect(await webhook(app, alert(1, 'resolved'))).toEqual({ status: 202, outcome: 'resolved' });
    expect(await webhook(app, alert(0, 'resolved'))).toEqual({ status: 202, outcome: 'resolved' });
    view = latest(fake, ts);
    expect(view.text).toContain('2 more alerts on this deployment (1 still firing)');
    expect(view.text).toContain('It has resolved.');
    expect(view.text).not.toContain('optional');
    // The last one resolves: now the rollback is optional.
    expect(await webhook(app, alert(2, 'resolved'))).toEqual({ status: 202, outcome: 'resolved' });
    view = latest(fake, ts);
    expect(view.text).toContain('All 3 alerts resolved');
    expect(view.buttons).toEqual(expect.arrayContaining([expect.stringMatching(/^Rollback.*\(optional\)/)]));
    expect(suggestionsIn(fake)).toHaveLength(1);

    // Confirming it switches traffic, and the one message ends in the final state.
    const confirm = buttonsOf(fake.message(WATCHED, ts)?.blocks as unknown[]).find((b) =>
      b.actionId.startsWith('sy1:confirm:'),
    );
    if (!confirm) throw new Error('no confirm button on the suggestion');
    await requests.click({ actionId: confirm.actionId, messageTs: ts, channelId: WATCHED });
    await fake.waitForCall(
      'chat.update',
      (c) => c.args.ts === ts && /Traffic is on dep_3hd7xa/.test(String(c.args.text)),
      20_000,
    );
    expect((await app.platform.snapshot('production')).environment.currentDeploymentId).toBe('dep_3hd7xa');
  });

  it('a suggestion deleted in Slack: the next incident posts it again in the channel, answered suggested, not grouped onto a message nobody sees', async () => {
    // The console shows the plan too: the Slack channel is a place of its own all the same.
    const { fake, app } = await startSlackRig({ SLACK_ALERT_CHANNEL: WATCHED });
    expect(await webhook(app, alert(0))).toEqual({ status: 202, outcome: 'suggested' });
    fake.refuse('chat.update', 'message_not_found'); // someone deleted the suggestion
    expect(await webhook(app, alert(1))).toEqual({ status: 202, outcome: 'suggested' });
    const posts = suggestionsIn(fake).filter((c) => c.response.ok === true);
    expect(posts.map((c) => c.args.channel)).toEqual([WATCHED, WATCHED]);
    const again = latest(fake, String(posts[1]?.response.ts));
    expect(again.text).toContain(titles[1]);
    expect(again.text).toContain(titles[0]);
    expect(again.buttons).toEqual(expect.arrayContaining([expect.stringMatching(/^Rollback/), 'Dismiss']));
  });

  it('an edit Slack failed for now (its 5xx) posts nothing more: grouped, and the one message lists it once Slack is back', async () => {
    const { fake, front, app } = await startSlackRig(
      { SLACK_ALERT_CHANNEL: WATCHED, SWITCHYARD_CONSOLE: 'off' },
      { front: true, clock: skippingClock() },
    );
    if (!front) throw new Error('no front');
    expect(await webhook(app, alert(0))).toEqual({ status: 202, outcome: 'suggested' });
    const ts = String(suggestionsIn(fake)[0]?.response.ts);
    front.fail('chat.update', Number.POSITIVE_INFINITY); // Slack answers 503 to every edit
    expect(await webhook(app, alert(1))).toEqual({ status: 202, outcome: 'grouped' });
    expect(front.faulted.length).toBeGreaterThan(0);
    front.heal('chat.update');
    expect(await webhook(app, alert(2))).toEqual({ status: 202, outcome: 'grouped' });
    // Answered once an edit of the message came back; none was under way when it joined, so that
    // edit lists it.
    const view = latest(fake, ts);
    for (const title of titles.slice(0, 3)) expect(view.text).toContain(title);
    expect(suggestionsIn(fake)).toHaveLength(1);
  });

  it("a RESOLVED whose Slack edit failed (Slack's 5xx) answers 503, and the sender's retry edits the suggestion", async () => {
    // Slack is the only surface (with the console on, its edit would pass and hide Slack's failure);
    // the Slack surface's clock skips the lane's backoff so no real time passes.
    const { fake, front, app } = await startSlackRig(
      { SLACK_ALERT_CHANNEL: WATCHED, SWITCHYARD_CONSOLE: 'off' },
      { front: true, clock: skippingClock() },
    );
    if (!front) throw new Error('no front');
    expect(await webhook(app, alert(0))).toEqual({ status: 202, outcome: 'suggested' });
    const ts = String(suggestionsIn(fake)[0]?.response.ts);
    const firing = latest(fake, ts).text;
    expect(firing).not.toContain('resolved');

    front.fail('chat.update', Number.POSITIVE_INFINITY); // Slack answers 503 to every edit
    expect(await webhook(app, alert(0, 'resolved'))).toEqual({ status: 503, outcome: 'failed' });
    expect(front.faulted.length).toBeGreaterThan(0);
    expect(latest(fake, ts).text).toBe(firing); // the message still asks to roll back, as before

    front.heal('chat.update');
    expect(await webhook(app, alert(0, 'resolved'))).toEqual({ status: 202, outcome: 'resolved' });
    const resolved = latest(fake, ts);
    expect(resolved.text).toContain('alert resolved');
    expect(resolved.buttons).toEqual(
      expect.arrayContaining([expect.stringMatching(/^Rollback.*\(optional\)/)]),
    );
    expect(suggestionsIn(fake)).toHaveLength(1);
  });

  it("Dismiss in Slack sticks: the console's copy does not count, says dismissed, and later alerts are not suggested", async () => {
    const { fake, app, requests } = await startSlackRig({ SLACK_ALERT_CHANNEL: WATCHED });
    const first = await webhook(app, alert(0));
    expect(first.outcome).toBe('suggested');
    const ts = String(suggestionsIn(fake)[0]?.response.ts);
    const dismiss = buttonsOf(fake.message(WATCHED, ts)?.blocks as unknown[]).find(
      (b) => b.text === 'Dismiss',
    );
    if (!dismiss) throw new Error('no Dismiss button on the suggestion');
    await requests.click({ actionId: dismiss.actionId, messageTs: ts, channelId: WATCHED });
    await fake.waitForCall('chat.update', (c) => c.args.ts === ts && /^Dismissed/.test(String(c.args.text)));
    const planId = dismiss.actionId.split(':').at(-1) ?? '';
    expect((await app.flow.get(planId))?.state).toBe('cancelled');
    // The console's copy is shown closed too (in the background, after the click).
    const consoleCopy = async () => {
      const res = await fetch(`${app.baseUrl}/console/api/timeline?user=ana`);
      const body = (await res.json()) as { entries: { message?: { title?: string; buttons?: unknown[] } }[] };
      return body.entries.flatMap((e) => (e.message ? [e.message] : []));
    };
    await vi.waitFor(
      async () => expect((await consoleCopy()).filter((m) => (m.buttons ?? []).length > 0)).toEqual([]),
      { timeout: 5_000, interval: 20 },
    );

    expect(await webhook(app, alert(3))).toMatchObject({ status: 202, outcome: 'dismissed' });
    expect(suggestionsIn(fake)).toHaveLength(1);
  });
});

/** Everything a Discord test drives. */
interface DiscordRig {
  readonly fake: FakeDiscord;
  readonly app: TestSwitchyard;
  readonly log: AlertLog;
}

async function startDiscordRig(): Promise<DiscordRig> {
  const fake = await startFakeDiscord();
  closers.push(() => fake.close());
  const log = new AlertLog();
  const app = await startTestSwitchyard({
    env: {
      DISCORD_TOKEN: fake.token,
      DISCORD_APPLICATION_ID: fake.applicationId,
      DISCORD_API_URL: fake.apiUrl,
    },
    file: { local: LOCAL, alerts: { watch: { discord: [fake.channels.alerts] } } },
    factories: [observed(discordSurface, log)],
  });
  closers.push(() => app.close());
  return { fake, app, log };
}

describe('Slack: the workspace changed under an open alert suggestion', () => {
  /** One Switchyard on `fake`'s workspace, on a given data dir and namespace (a second one is a restart). */
  async function startOn(fake: FakeSlack, dataDir: string, namespace: string): Promise<RunningSwitchyard> {
    const env = parseEnv({
      PORT: '0',
      LOCAL_ROUTER_PORT: '0',
      REDIS_URL: redisUrl(),
      LOG_LEVEL: 'silent',
      SWITCHYARD_CONSOLE: 'off',
      SLACK_BOT_TOKEN: fake.token,
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_API_URL: fake.apiUrl,
      // By name, as the README allows: the slot `slack:#alerts` is the same place in both workspaces.
      SLACK_ALERT_CHANNEL: '#alerts',
    });
    const file = fileConfigSchema.parse({ local: LOCAL });
    return startSwitchyard(
      { config: { env, file, platform: 'local' }, logger: silentLogger, dataDir, namespace },
      [slackSurface],
    );
  }

  it("after SLACK_BOT_TOKEN and SLACK_API_URL moved to another workspace, the next incident's suggestion is posted there, answered suggested", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sy-chat-e2e-'));
    closers.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const namespace = uniqueName('sy');
    const before = await new FakeSlack({
      token: 'xoxb-old-workspace',
      teamId: 'T0OLD',
      channels: { C0OLDALERTS: 'alerts' },
    }).start();
    closers.push(() => before.close());
    const after = await new FakeSlack({
      token: 'xoxb-new-workspace',
      teamId: 'T0NEW',
      channels: { C0NEWALERTS: 'alerts' },
    }).start();
    closers.push(() => after.close());
    const send = async (app: RunningSwitchyard, title: string, fingerprint: string) => {
      const res = await fetch(`http://127.0.0.1:${app.port}/webhooks/alerts/generic`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          title,
          status: 'firing',
          environment: 'production',
          fingerprint,
          startedAt: new Date(Date.now() - 60_000).toISOString(),
        }),
      });
      const body = (await res.json()) as { alerts?: { outcome?: string }[] };
      return { status: res.status, outcome: body.alerts?.[0]?.outcome };
    };

    const first = await startOn(before, dataDir, namespace);
    let firstRunning = true;
    closers.push(async () => {
      if (firstRunning) await first.stop();
    });
    expect(await send(first, 'Checkout 5xx above 5%', 'inc-1')).toEqual({
      status: 202,
      outcome: 'suggested',
    });
    expect(suggestionsIn(before)).toHaveLength(1);
    await first.stop();
    firstRunning = false;

    // Restarted on the other workspace, same Redis and state: another incident of the same bad deploy.
    const second = await startOn(after, dataDir, namespace);
    closers.push(() => second.stop());
    expect(await send(second, 'Payment provider errors', 'inc-2')).toEqual({
      status: 202,
      outcome: 'suggested',
    });
    const posts = suggestionsIn(after).filter((c) => c.response.ok === true);
    expect(posts).toHaveLength(1);
    const ts = String(posts[0]?.response.ts);
    const shown = () => {
      const m = after.message('C0NEWALERTS', ts);
      return `${m?.text}\n${JSON.stringify(m?.blocks ?? [])}`;
    };
    expect(shown()).toContain('Payment provider errors');
    expect(shown()).toContain('Checkout 5xx above 5%');
    // The next incident is listed on that message (answered once an edit of it came back: none was under
    // way before, so that one lists it), and nothing more is posted.
    expect(await send(second, 'Cart API down', 'inc-3')).toEqual({ status: 202, outcome: 'grouped' });
    expect(suggestionsIn(after)).toHaveLength(1);
    expect(shown()).toContain('Cart API down');
  });
});

describe('Discord: alert messages in watched channels', () => {
  it('replies to another bot’s alert with one suggestion; confirming switches and ends in the final state', async () => {
    const { fake, app, log } = await startDiscordRig();
    const alertBot = { id: makeSnowflake(), username: 'Alertmanager', bot: true };
    const channel = fake.channels.alerts;
    // Ignored: another channel, and nothing else in the watched one yet.
    fake.postMessage({
      channelId: fake.channels.general,
      author: alertBot,
      content: '[FIRING:1] DiskFull env=production',
    });
    const from = fake.calls.length;
    const alert = fake.postMessage({
      channelId: channel,
      author: alertBot,
      content: '[FIRING:1] HighErrorRate env=production\n5xx ratio above 5% for 5 minutes',
    });
    const suggestion = await waitForPost(fake, channel, from);
    const postCall = fake.calls.find(
      (c) => c.method === 'POST' && c.path === `/channels/${channel}/messages` && c.index >= from,
    );
    expect(postCall?.body).toMatchObject({
      message_reference: { message_id: alert.id, channel_id: channel },
    });
    const text = textOf(suggestion);
    expect(text).toContain('dep_4kq9wz');
    expect(text).toContain('dep_3hd7xa');
    expect(text).toContain('HighErrorRate');
    expect(text).toMatch(/went live (39|40|41) minutes before this alert started/);
    const confirmId = buttonId(suggestion, 'Rollback');
    buttonId(suggestion, 'Cancel');
    buttonId(suggestion, 'Dismiss');

    expect((await log.waitForCount(1))[0]?.outcome).toBe('suggested');

    // A burst of the same alert: storm control, no second suggestion.
    for (let i = 0; i < 5; i++)
      fake.postMessage({
        channelId: channel,
        author: alertBot,
        content: '[FIRING:1] HighErrorRate env=production',
      });
    const results = await log.waitForCount(6);
    expect(results.map((r) => r.outcome)).toEqual(['suggested', ...Array(5).fill('deduplicated')]);
    const botPosts = () => fake.channelMessages(channel).filter((m) => m.author.id === fake.botUser.id);
    expect(botPosts()).toHaveLength(1);

    // Confirm: the switch runs and edits the suggestion to its final state.
    const alice = fake.user('alice');
    const click = fake.click({ messageId: suggestion.id, customId: confirmId, user: alice });
    await fake.waitForCallback(click);
    const final = await waitForMessage(fake, suggestion.id, (t) => /Traffic is on/.test(t));
    expect(textOf(final)).toMatch(/Traffic is on\W+dep_3hd7xa/);
    const after = await app.platform.snapshot('production');
    expect(after.environment.currentDeploymentId).toBe('dep_3hd7xa');
    expect(botPosts()).toHaveLength(1);
    // Nothing else reached the alert service: not the bot's own posts, not the other channel.
    expect(log.results()).toHaveLength(6);
    // The other channel was never answered.
    expect(
      fake.channelMessages(fake.channels.general).filter((m) => m.author.id === fake.botUser.id),
    ).toEqual([]);
  });
});

describe('Discord: an alert storm in a watched channel', () => {
  it('20 alerts of one bad deploy: one reply, to the first, listing every alert', async () => {
    const { fake, app, log } = await startDiscordRig();
    const alertBot = { id: makeSnowflake(), username: 'Alertmanager', bot: true };
    const channel = fake.channels.alerts;
    const from = fake.calls.length;
    const sent = Array.from({ length: 20 }, (_, i) =>
      fake.postMessage({
        channelId: channel,
        author: alertBot,
        content: `[FIRING:1] StormAlert${i}x env=production`,
      }),
    );
    const results = await log.waitForCount(20, 30_000);
    const outcomes = results.map((r) => r.outcome);
    expect({
      suggested: outcomes.filter((o) => o === 'suggested').length,
      grouped: outcomes.filter((o) => o === 'grouped').length,
    }).toEqual({ suggested: 1, grouped: 19 });
    const botPosts = fake.channelMessages(channel).filter((m) => m.author.id === fake.botUser.id);
    expect(botPosts).toHaveLength(1);
    const suggestion = await waitForPost(fake, channel, from);
    const postCall = fake.calls.find(
      (c) => c.method === 'POST' && c.path === `/channels/${channel}/messages` && c.index >= from,
    );
    const repliedTo = (postCall?.body as { message_reference?: { message_id?: string } } | undefined)
      ?.message_reference?.message_id;
    const first = sent.find((m) => m.id === repliedTo);
    expect(results.find((r) => r.outcome === 'suggested')?.title).toContain(
      first?.content.replace('[FIRING:1] ', '').replace(' env=production', ''),
    );
    const listed = await waitForMessage(fake, suggestion.id, (t) =>
      t.includes('19 more alerts on this deployment (19 still firing)'),
    );
    const planIds = new Set(results.map((r) => r.planId));
    expect(planIds.size).toBe(1);
    const titles = (await app.flow.get([...planIds][0] ?? ''))?.alerts?.map((a) => a.alert.title) ?? [];
    expect(
      Array.from({ length: 20 }, (_, i) => `StormAlert${i}x`).filter(
        (t) => !titles.some((x) => x.includes(t)),
      ),
    ).toEqual([]);
    buttonId(listed, 'Rollback');
    buttonId(listed, 'Dismiss');
  }, 60_000);
});

describe('Discord: threads under a watched channel', () => {
  it('answers an alert posted in a thread of a watched channel in that thread; threads elsewhere are ignored', async () => {
    const { fake, app, log } = await startDiscordRig();
    const alertBot = { id: makeSnowflake(), username: 'Alertmanager', bot: true };
    // A thread under an unwatched channel: ignored.
    const elsewhere = fake.createThread(fake.channels.general, 'DiskFull');
    fake.postMessage({
      channelId: elsewhere,
      author: alertBot,
      content: '[FIRING:1] DiskFull env=production',
    });
    // A thread (or forum post) under the watched channel.
    const thread = fake.createThread(fake.channels.alerts, 'HighErrorRate');
    const from = fake.calls.length;
    const alert = fake.postMessage({
      channelId: thread,
      author: alertBot,
      content: '[FIRING:1] HighErrorRate env=production\n5xx ratio above 5% for 5 minutes',
    });
    const suggestion = await waitForPost(fake, thread, from);
    const postCall = fake.calls.find(
      (c) => c.method === 'POST' && c.path === `/channels/${thread}/messages` && c.index >= from,
    );
    expect(postCall?.body).toMatchObject({ message_reference: { message_id: alert.id, channel_id: thread } });
    expect(textOf(suggestion)).toContain('HighErrorRate');
    expect((await log.waitForCount(1))[0]?.outcome).toBe('suggested');

    const click = fake.click({
      messageId: suggestion.id,
      customId: buttonId(suggestion, 'Rollback'),
      user: fake.user('alice'),
    });
    await fake.waitForCallback(click);
    const final = await waitForMessage(fake, suggestion.id, (t) => /Traffic is on/.test(t));
    expect(textOf(final)).toMatch(/Traffic is on\W+dep_3hd7xa/);
    expect((await app.platform.snapshot('production')).environment.currentDeploymentId).toBe('dep_3hd7xa');
    // Only the watched thread's alert reached the alert service; nothing was posted elsewhere.
    expect(log.results()).toHaveLength(1);
    expect(fake.channelMessages(elsewhere).filter((m) => m.author.id === fake.botUser.id)).toEqual([]);
    expect(fake.channelMessages(fake.channels.alerts).filter((m) => m.author.id === fake.botUser.id)).toEqual(
      [],
    );
  });
});

describe('Discord: alert bots that post embeds only', () => {
  it('reads an Alertmanager embed, replies with a suggestion and edits it when the alert resolves', async () => {
    const { fake, log } = await startDiscordRig();
    const alertmanager = { id: makeSnowflake(), username: 'Alertmanager', bot: true };
    const channel = fake.channels.alerts;
    // Alertmanager's Discord notifier: no content, one embed with the title and the description.
    const embed = (status: 'firing' | 'resolved') => ({
      title:
        status === 'firing'
          ? '[FIRING:1] HighErrorRate (production)'
          : '[RESOLVED] HighErrorRate (production)',
      description: 'Alert: 5xx ratio above 5% for 5 minutes\nSeverity: critical',
      color: status === 'firing' ? 10038562 : 3066993,
    });
    const from = fake.calls.length;
    const alert = fake.postMessage({
      channelId: channel,
      author: alertmanager,
      content: '',
      embeds: [embed('firing')],
    });
    const suggestion = await waitForPost(fake, channel, from);
    const postCall = fake.calls.find(
      (c) => c.method === 'POST' && c.path === `/channels/${channel}/messages` && c.index >= from,
    );
    expect(postCall?.body).toMatchObject({ message_reference: { message_id: alert.id } });
    expect(textOf(suggestion)).toContain('HighErrorRate');
    buttonId(suggestion, 'Rollback');
    expect((await log.waitForCount(1))[0]?.outcome).toBe('suggested');

    fake.postMessage({ channelId: channel, author: alertmanager, content: '', embeds: [embed('resolved')] });
    expect((await log.waitForCount(2))[1]?.outcome).toBe('resolved');
    const edited = await waitForMessage(fake, suggestion.id, (t) => /The alert resolved/.test(t));
    // The button stays, labelled optional.
    buttonId(edited, 'Rollback to target version (optional)');
    expect(fake.channelMessages(channel).filter((m) => m.author.id === fake.botUser.id)).toHaveLength(1);
  });
});

describe('Discord: a RESOLVED after the switch ran', () => {
  /** One Switchyard process on a given data dir and namespace (so a second one is a restart). */
  async function startProcess(
    fake: FakeDiscord,
    dataDir: string,
    namespace: string,
    factory: SurfaceFactory,
  ): Promise<RunningSwitchyard> {
    const env = parseEnv({
      PORT: '0',
      LOCAL_ROUTER_PORT: '0',
      REDIS_URL: redisUrl(),
      LOG_LEVEL: 'silent',
      DISCORD_TOKEN: fake.token,
      DISCORD_APPLICATION_ID: fake.applicationId,
      DISCORD_API_URL: fake.apiUrl,
    });
    const file = fileConfigSchema.parse({
      local: LOCAL,
      alerts: { watch: { discord: [fake.channels.alerts] } },
    });
    return startSwitchyard(
      { config: { env, file, platform: 'local' }, logger: silentLogger, dataDir, namespace },
      [factory],
    );
  }

  it('leaves the final state of the switch in place, even after a restart', async () => {
    const fake = await startFakeDiscord();
    closers.push(() => fake.close());
    const dataDir = mkdtempSync(join(tmpdir(), 'sy-chat-e2e-'));
    closers.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const namespace = uniqueName('sy');
    const channel = fake.channels.alerts;
    const alertBot = { id: makeSnowflake(), username: 'Alertmanager', bot: true };

    const firstLog = new AlertLog();
    const first = await startProcess(fake, dataDir, namespace, observed(discordSurface, firstLog));
    let firstRunning = true;
    closers.push(async () => {
      if (firstRunning) await first.stop();
    });
    const from = fake.calls.length;
    fake.postMessage({
      channelId: channel,
      author: alertBot,
      content: '[FIRING:1] HighErrorRate env=production',
    });
    const suggestion = await waitForPost(fake, channel, from);
    expect((await firstLog.waitForCount(1))[0]?.outcome).toBe('suggested');
    const click = fake.click({
      messageId: suggestion.id,
      customId: buttonId(suggestion, 'Rollback'),
      user: fake.user('alice'),
    });
    await fake.waitForCallback(click);
    await waitForMessage(fake, suggestion.id, (t) => /Traffic is on/.test(t));
    await first.stop();
    firstRunning = false;

    // A new process (same Redis namespace and state): the alert resolves.
    const secondLog = new AlertLog();
    const second = await startProcess(fake, dataDir, namespace, observed(discordSurface, secondLog));
    closers.push(() => second.stop());
    fake.postMessage({
      channelId: channel,
      author: alertBot,
      content: '[RESOLVED] HighErrorRate env=production',
    });
    expect((await secondLog.waitForCount(1))[0]?.outcome).toBe('resolved');
    const now = fake.messages.get(suggestion.id);
    if (!now) throw new Error('the suggestion message is gone');
    expect(textOf(now)).toMatch(/Traffic is on\W+dep_3hd7xa/);
  });
});
