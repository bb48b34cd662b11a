/**
 * Slack handler behaviour around the main flow: the ack goes out before any platform work, faults end
 * in an ephemeral message (no stack trace), Cancel withdraws a plan, user-group lookups are cached and
 * fail closed, channel messages reach the alert watcher, and the poster posts threaded messages.
 */
import { WebClient } from '@slack/web-api';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChannelMessage } from '../../handlers/slack/context.js';
import { UserGroupResolver } from '../../handlers/slack/groups.js';
import { WorkQueue } from '../../handlers/slack/work.js';
import { textView } from '../../src/chat-sinks.js';
import { ManualClock } from '../../src/clock.js';
import { type Logger, silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import type { LocalPlatform } from '../../src/platform/local/platform.js';
import type { DeployPlatform } from '../../src/platform/port.js';
import { buttonsOf } from '../fakes/slack/requests.js';
import { FakeSlack, type RecordedResponse } from '../fakes/slack/server.js';
import { startWorld, WORLD_CHANNEL, type World, type WorldOptions } from '../fakes/slack/world.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const closers: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function world(opts: Partial<WorldOptions> = {}): Promise<World> {
  const w = await startWorld({ redisUrl: redisUrl(), name: uniqueName('slack-h'), worker: false, ...opts });
  closers.push(() => w.close());
  return w;
}

/** A platform whose snapshots wait for `open()` (or fail with `fail()`): a slow or broken platform. */
function gated(local: LocalPlatform) {
  let release: (() => void) | undefined;
  let reject: ((e: Error) => void) | undefined;
  const gate = new Promise<void>((res, rej) => {
    release = res;
    reject = rej;
  });
  // Rejected before anyone awaits it: mark it handled; every awaiting snapshot still sees the error.
  gate.catch(() => undefined);
  const platform: DeployPlatform = {
    name: local.name,
    listEnvironments: () => local.listEnvironments(),
    snapshot: async (env) => {
      await gate;
      return local.snapshot(env);
    },
    getDeployment: (id) => local.getDeployment(id),
    routing: (env) => local.routing(env),
    rollback: (r) => local.rollback(r),
    promote: (r) => local.promote(r),
    operation: (r) => local.operation(r),
    probe: (h, s) => local.probe(h, s),
    health: () => local.health(),
    close: () => local.close(),
  };
  return { platform, open: () => release?.(), fail: (e: Error) => reject?.(e) };
}

const isEphemeral = (r: RecordedResponse) => r.body.response_type === 'ephemeral';

describe('Slack handlers', () => {
  it('acks a slash command before the platform answers, then posts the confirmation', async () => {
    let gate: ReturnType<typeof gated> | undefined;
    const w = await world({
      wrapPlatform: (local) => {
        gate = gated(local);
        return gate.platform;
      },
    });
    const ack = await w.requests.command({ command: '/rollback', text: 'production' });
    expect(ack.status).toBe(200);
    // The platform has not answered yet, and nothing was posted: the ack did not wait for it.
    expect(w.fake.callsOf('chat.postMessage')).toEqual([]);
    gate?.open();
    const post = await w.fake.waitForCall('chat.postMessage');
    expect(post.response.ok).toBe(true);
  });

  it('a platform fault ends in an ephemeral message with the code, never a stack trace', async () => {
    let gate: ReturnType<typeof gated> | undefined;
    const w = await world({
      wrapPlatform: (local) => {
        gate = gated(local);
        return gate.platform;
      },
    });
    gate?.fail(new Error('connect ECONNREFUSED 10.0.0.1:443'));
    const ack = await w.requests.command({ command: '/rollback', text: 'production' });
    expect(ack.status).toBe(200);
    const reply = await w.fake.waitForResponse(isEphemeral);
    const body = JSON.stringify(reply.body);
    expect(body).toContain('could not run /rollback');
    expect(body).toContain('internal');
    expect(body).not.toMatch(/ECONNREFUSED|at \S+\.(ts|js):\d+/);
    expect(w.fake.callsOf('chat.postMessage')).toEqual([]);
  });

  it('counts commands with the outcome values every surface uses (planned, listed, usage, refused)', async () => {
    const w = await world();
    for (const text of ['production', '', 'staging'])
      expect((await w.requests.command({ command: '/rollback', text })).status).toBe(200);
    expect((await w.requests.command({ command: '/deployments', text: 'production' })).status).toBe(200);
    await w.surface.idle(); // the replies are sent after the ack: counted once they are
    const counted = (await w.metrics.commands.get()).values.map(
      (v) => `${v.labels.surface}:${v.labels.command}:${v.labels.outcome}:${v.value}`,
    );
    // The same values Discord and the console count for the same events (src/metrics.ts CommandOutcome).
    expect(counted.sort()).toEqual([
      'slack:deployments:listed:1',
      'slack:rollback:planned:1',
      'slack:rollback:refused:1',
      'slack:rollback:usage:1',
    ]);
  });

  it('a Slack that hangs does not hold a handler: the reply is given up and the next one goes out', async () => {
    const w = await world({ callTimeoutMs: 200 });
    w.fake.stall('response_url', 1);
    const first = await w.requests.command({ command: '/rollback', text: 'nowhere' });
    expect(first.status).toBe(200);
    // Without a limit the after-ack work would wait for the hung response URL forever.
    await w.surface.idle();
    expect(w.fake.stalled('response_url')).toBe(1);
    expect(await w.metrics.registry.getSingleMetricAsString('switchyard_chat_api_errors_total')).toContain(
      'method="response_url"',
    );
    await w.requests.command({ command: '/rollback', text: 'nowhere' });
    const reply = await w.fake.waitForResponse(isEphemeral);
    expect(JSON.stringify(reply.body)).toContain('nowhere');
  });

  it('Cancel withdraws the plan: the message says so and a later confirm enqueues nothing', async () => {
    const w = await world();
    await w.requests.command({ command: '/rollback', text: 'production' });
    const post = await w.fake.waitForCall('chat.postMessage');
    const ts = String(post.response.ts);
    const buttons = buttonsOf(post.args.blocks as unknown[]);
    const cancel = buttons.find((b) => b.actionId.startsWith('sy1:cancel:'));
    const confirm = buttons.find((b) => b.actionId.startsWith('sy1:confirm:'));
    if (!cancel || !confirm) throw new Error('confirmation lacks Cancel or Confirm');
    await w.requests.click({ actionId: cancel.actionId, messageTs: ts });
    const cancelled = await w.fake.waitForCall('chat.update', (c) => c.args.ts === ts);
    expect(String(cancelled.args.text).toLowerCase()).toContain('cancel');
    expect(
      buttonsOf(cancelled.args.blocks as unknown[]).some((b) => b.actionId.startsWith('sy1:confirm:')),
    ).toBe(false);
    // A stale client still showing the old buttons clicks confirm: nothing is enqueued.
    await w.requests.click({ actionId: confirm.actionId, messageTs: ts });
    await w.fake.waitForCall('chat.update', (c) => c.args.ts === ts && c !== cancelled);
    const counts = await w.queue.queue.getJobCounts('waiting', 'active', 'completed', 'delayed');
    expect(Object.values(counts).reduce((a, n) => a + n, 0)).toBe(0);
  });

  it('an action id that is not ours gets an ephemeral explanation', async () => {
    const w = await world();
    await w.requests.command({ command: '/rollback', text: 'production' });
    const post = await w.fake.waitForCall('chat.postMessage');
    await w.requests.click({ actionId: 'sy1:confirm:plan_zz', messageTs: String(post.response.ts) });
    const reply = await w.fake.waitForResponse(isEphemeral);
    expect(JSON.stringify(reply.body)).toMatch(/plan id|action id/i);
  });

  it('passes new channel messages to the alert watcher, skipping its own and edited messages', async () => {
    const seen: ChannelMessage[] = [];
    let resolveSeen: (() => void) | undefined;
    const twoSeen = new Promise<void>((r) => {
      resolveSeen = r;
    });
    const w = await world({
      onChannelMessage: async (m) => {
        seen.push(m);
        if (seen.length === 2) resolveSeen?.();
      },
    });
    const base = { type: 'message', channel: WORLD_CHANNEL, ts: '1700000000.000100' };
    await w.requests.event({ ...base, user: 'U0ALICE', text: 'first' }, 'Ev1');
    await w.requests.event({ ...base, bot_id: w.fake.botId, text: 'from switchyard itself' }, 'Ev2');
    await w.requests.event({ ...base, subtype: 'message_changed', text: 'edit' }, 'Ev3');
    await w.requests.event(
      { ...base, subtype: 'bot_message', bot_id: 'B0GRAFANA', username: 'Grafana', text: '[FIRING] 5xx' },
      'Ev4',
    );
    await twoSeen;
    expect(seen.map((m) => m.text)).toEqual(['first', '[FIRING] 5xx']);
    expect(seen[1]).toMatchObject({ botId: 'B0GRAFANA', username: 'Grafana', channel: WORLD_CHANNEL });
  });

  it('passes messages of a private channel the bot was invited to (message.groups, channel_type "group") to the alert watcher', async () => {
    let resolveSeen: ((m: ChannelMessage) => void) | undefined;
    const seen = new Promise<ChannelMessage>((r) => {
      resolveSeen = r;
    });
    const w = await world({
      fake: { privateChannels: { G0SECALERTS: 'sec-alerts' } },
      onChannelMessage: async (m) => resolveSeen?.(m),
    });
    const sent = await w.requests.message(
      {
        channel: 'G0SECALERTS',
        ts: '1700000000.000100',
        user: 'U0ALICE',
        text: '[FIRING] checkout down (production)',
      },
      'EvPrivate1',
    );
    expect(sent).toMatchObject({ subscription: 'message.groups', channelType: 'group', delivered: true });
    expect(sent.delivered && sent.status).toBe(200);
    expect(await seen).toMatchObject({ channel: 'G0SECALERTS', text: '[FIRING] checkout down (production)' });
  });

  it("skips Slack's own notices (topic, purpose, name, pin, join…) and reads every content subtype", async () => {
    const seen: ChannelMessage[] = [];
    let resolveMarker: (() => void) | undefined;
    const marker = new Promise<void>((r) => {
      resolveMarker = r;
    });
    const w = await world({
      onChannelMessage: async (m) => {
        seen.push(m);
        if (m.text === 'marker') resolveMarker?.();
      },
    });
    const base = { type: 'message', channel: WORLD_CHANNEL, user: 'U0ALICE' };
    let n = 0;
    const send = (fields: Record<string, unknown>) =>
      w.requests.event({ ...base, ts: `1700000000.${String(++n).padStart(6, '0')}`, ...fields }, `EvSys${n}`);
    // Notices whose text quotes a topic or a name holding an environment and a firing word.
    const notices = [
      {
        subtype: 'channel_topic',
        text: '<@U0ALICE> set the channel topic: 🚨 alerts for [production] outages',
        topic: '🚨 alerts for [production] outages',
      },
      {
        subtype: 'channel_purpose',
        text: '<@U0ALICE> set the channel purpose: errors and 5xx of [prod]',
        purpose: 'errors and 5xx of [prod]',
      },
      {
        subtype: 'channel_name',
        text: '<@U0ALICE> renamed the channel from "alerts" to "prod-incidents (production)"',
        old_name: 'alerts',
        name: 'prod-incidents',
      },
      { subtype: 'pinned_item', text: '<@U0ALICE> pinned a message: [FIRING] checkout down (production)' },
      { subtype: 'channel_join', text: '<@U0BOB> has joined the channel' },
      { subtype: 'bot_add', text: 'added an integration to this channel: outage-bot (production)' },
      { subtype: 'some_future_notice', text: '[FIRING] (production) errors' },
    ];
    for (const notice of notices) expect((await send(notice)).status).toBe(200);
    for (const subtype of ['thread_broadcast', 'file_share', 'me_message'])
      await send({ subtype, text: `content: ${subtype}` });
    await send({ text: 'marker' });
    await marker;
    expect(seen.map((m) => m.text)).toEqual([
      'content: thread_broadcast',
      'content: file_share',
      'content: me_message',
      'marker',
    ]);
  });

  it('the poster posts threaded alert messages and edits them', async () => {
    const w = await world();
    const ref = await w.surface.poster.post(WORLD_CHANNEL, textView('Alert on production', ['5xx spike']), {
      threadId: '1700000000.000001',
    });
    expect(ref).toMatchObject({ surface: 'slack', channel: WORLD_CHANNEL, threadId: '1700000000.000001' });
    expect((await w.fake.waitForCall('chat.postMessage')).args.thread_ts).toBe('1700000000.000001');
    await w.surface.poster.update(ref, textView('Resolved: 5xx spike', ['The alert resolved.'], 'success'));
    expect(w.fake.message(WORLD_CHANNEL, ref.messageId)?.text).toContain('Resolved');
    await expect(w.surface.poster.post('C0NOTIN', textView('x', ['y']))).rejects.toThrow(
      /SlackPostError\[channel_not_found\] chat.postMessage/,
    );
  });
});

describe('UserGroupResolver', () => {
  it('caches member lists briefly, refreshes after the TTL and fails closed', async () => {
    const fake = await new FakeSlack({
      usergroups: { S0OPS: ['U0CAROL'], S0SRE: ['U0CAROL', 'U0DAVE'] },
    }).start();
    closers.push(() => fake.close());
    const clock = new ManualClock();
    const metrics = createMetrics();
    const client = new WebClient(fake.token, { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 } });
    const groups = new UserGroupResolver({
      client,
      groups: ['S0OPS', 'S0SRE', 'S0GONE'],
      clock,
      metrics,
      ttlMs: 60_000,
    });
    // S0GONE's lookup fails for good (no_such_subteam): it grants nothing and comes back as unchecked,
    // and as rejected with Slack's code (see test/slack/group-lookup.test.ts).
    const gone = {
      uncheckedGroups: ['S0GONE'],
      rejectedGroups: [{ group: 'S0GONE', code: 'no_such_subteam', problem: expect.any(String) }],
    };
    expect(await groups.groupsOf('U0CAROL')).toEqual({ groups: ['S0OPS', 'S0SRE'], ...gone });
    expect(await groups.groupsOf('U0DAVE')).toEqual({ groups: ['S0SRE'], ...gone });
    expect(fake.callsOf('usergroups.users.list').filter((c) => c.response.ok === true)).toHaveLength(2);
    fake.usergroups.set('S0OPS', ['U0CAROL', 'U0DAVE']);
    expect(await groups.groupsOf('U0DAVE')).toEqual({ groups: ['S0SRE'], ...gone });
    clock.set(clock.now() + 60_001);
    expect(await groups.groupsOf('U0DAVE')).toEqual({ groups: ['S0OPS', 'S0SRE'], ...gone });
    const errors = await metrics.chatApiErrors.get();
    expect(errors.values.find((v) => v.labels.code === 'no_such_subteam')?.value).toBeGreaterThanOrEqual(1);
  });

  it('makes no API call when no allow list names a group', async () => {
    const fake = await new FakeSlack().start();
    closers.push(() => fake.close());
    const client = new WebClient(fake.token, { slackApiUrl: fake.apiUrl });
    const groups = new UserGroupResolver({ client, groups: [] });
    expect(await groups.groupsOf('U0ALICE')).toEqual({ groups: [] });
    expect(fake.calls).toEqual([]);
  });
});

describe('WorkQueue (after-ack work)', () => {
  it('runs tasks after the current turn with bounded concurrency and refuses beyond the backlog', async () => {
    const work = new WorkQueue({ concurrency: 1, maxPending: 1 });
    let release: (() => void) | undefined;
    const started: string[] = [];
    const first = new Promise<void>((r) => {
      release = r;
    });
    expect(
      work.run(async () => {
        started.push('a');
        await first;
      }),
    ).toBe(true);
    // Not started synchronously: the handler's ack goes out first.
    expect(started).toEqual([]);
    expect(work.size).toBe(1);
    const idle = work.idle();
    await new Promise<void>((r) => setImmediate(r));
    expect(started).toEqual(['a']);
    expect(work.run(async () => void started.push('b'))).toBe(true);
    expect(work.run(async () => void started.push('c'))).toBe(false);
    release?.();
    await idle;
    expect(started).toEqual(['a', 'b']);
    expect(work.size).toBe(0);
  });

  it('tracked work holds no slot, is waited for by idle(), and a failure of it is logged', async () => {
    const errors: unknown[] = [];
    const logger = { ...silentLogger, error: (o: unknown) => void errors.push(o) } as unknown as Logger;
    const work = new WorkQueue({ concurrency: 1, logger });
    let release: (() => void) | undefined;
    const edit = new Promise<void>((r) => {
      release = r;
    });
    const started: string[] = [];
    // A task hands its slow part (an edit waiting for Slack) to `track` and ends.
    work.run(async () => {
      started.push('click');
      work.track(edit, 'click edit');
    });
    work.run(async () => void started.push('command'));
    const idle = work.idle();
    let idleNow = false;
    void idle.then(() => {
      idleNow = true;
    });
    for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
    // The next task ran with the only slot while the edit still waits; idle() waits for the edit.
    expect(started).toEqual(['click', 'command']);
    expect(idleNow).toBe(false);
    release?.();
    await idle;
    work.track(Promise.reject(new Error('boom')), 'click edit');
    await work.idle();
    expect(errors).toEqual([expect.objectContaining({ err: expect.any(Error) })]);
  });
});
