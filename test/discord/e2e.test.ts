/**
 * Discord end to end: the real discord.js bot on the fake Discord, with real Redis, PlanStore, Flow,
 * ChatService, SwitchQueue, a switch worker and the LocalPlatform. Slash command → confirmation
 * posted by the bot → button click → traffic switched, with the same message edited (bot token, after
 * the interaction tokens expired) through every step; plus unauthorized role, double click, stale
 * plan, two-person rule and a gateway connection dropped mid-job. Tests wait on the fake's recorded
 * traffic and the clock, never on sleeps.
 */
import type { ChatInputCommandInteraction } from 'discord.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runCommand } from '../../handlers/discord/commands/run.js';
import type { DiscordDeps } from '../../handlers/discord/context.js';
import { ChatService } from '../../src/chat.js';
import { ManualClock, systemClock } from '../../src/clock.js';
import { flowDefaults } from '../../src/flow.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import type { PlanStore } from '../../src/plan-store.js';
import { UnkeyPlatform } from '../../src/platform/unkey/adapter.js';
import { VercelPlatform } from '../../src/platform/vercel/adapter.js';
import { jobIdForPlan } from '../../src/queue.js';
import { renderDiscord } from '../../src/views/discord.js';
import type { GatewayEvent } from '../fakes/discord/gateway.js';
import { type Callback, CallbackType, MessageFlag } from '../fakes/discord/protocol.js';
import type { FakeInteraction, StoredMessage } from '../fakes/discord/server.js';
import { VercelFakeServer } from '../fakes/vercel-server.js';
import type { ProxiedCall } from '../support/holding-proxy.js';
import { startAcmeUnkey } from '../support/unkey.js';
import {
  advanceWhenParked,
  buttonId,
  buttonsOf,
  type DiscordE2E,
  followUp,
  messageOf,
  NO_MESSAGE,
  originalEdited,
  press,
  REACTIVATION_MS,
  slash,
  startPerTest,
  textOf,
  waitForMessage,
  waitForPost,
} from './harness.js';

const start = startPerTest();

/** Runs `/rollback environment:production` as `user` and returns the posted confirmation. */
async function askRollback(
  e: DiscordE2E,
  roles: readonly string[] = [e.fake.roles.deployers],
): Promise<StoredMessage> {
  const from = e.fake.calls.length;
  const i = slash(e, 'rollback', { environment: 'production' }, e.alice, roles);
  const cb = await e.fake.waitForCallback(i);
  expect(cb.type).toBe(CallbackType.deferredChannelMessageWithSource);
  const posted = await waitForPost(e.fake, e.fake.channels.ops, from);
  // The handler finishes by pointing the requester at the message (after attaching it to the plan).
  await originalEdited(e, i, from);
  return posted;
}

function gatewayEvent(e: DiscordE2E, kind: GatewayEvent['kind']): Promise<GatewayEvent> {
  return new Promise((resolve) => {
    const on = (ev: GatewayEvent) => {
      if (ev.kind !== kind) return;
      e.fake.gateway.events.off('event', on);
      resolve(ev);
    };
    e.fake.gateway.events.on('event', on);
  });
}

/** The plan behind a confirmation message (its confirm button carries the plan id). */
async function planOf(e: DiscordE2E, message: StoredMessage) {
  const ref = buttonId(message, 'Rollback to target version').split(':').at(-1) ?? '';
  const record = await e.flow.get(ref);
  if (!record) throw new Error(`plan ${ref} not found`);
  return record.plan;
}

/** The contents of the follow-up messages the bot sent on interaction `i` (from call `from` on). */
function followUps(e: DiscordE2E, i: FakeInteraction, from: number): string[] {
  return e.fake.calls
    .slice(from)
    .filter((c) => c.method === 'POST' && c.path === `/webhooks/${e.fake.applicationId}/${i.token}`)
    .map((c) => JSON.stringify(c.body));
}

async function jobTotal(e: DiscordE2E): Promise<number> {
  const counts = await e.queue.queue.getJobCounts();
  return Object.values(counts).reduce((n, v) => n + v, 0);
}

async function rollbacks(e: DiscordE2E): Promise<number> {
  const snap = await e.platform.snapshot('production');
  return snap.liveHistory.filter((h) => h.via === 'rollback').length;
}

/** Clicks `label` as `user` and waits for the click's acknowledgement. */
async function click(
  e: DiscordE2E,
  message: StoredMessage,
  label: string,
  user = e.alice,
  roles: readonly string[] = [e.fake.roles.deployers],
): Promise<FakeInteraction> {
  const i = press(e, message, label, user, roles);
  const cb = await e.fake.waitForCallback(i);
  expect(cb.type).toBe(CallbackType.deferredUpdateMessage);
  return i;
}

/** Resolves with the message once it shows the job parked reactivating the standby target. */
function reactivating(e: DiscordE2E, messageId: string, from?: number): Promise<StoredMessage> {
  return waitForMessage(
    e.fake,
    messageId,
    (t) => /⏳ Reactivating standby target.*\(running\)/.test(t),
    from,
  );
}

/** Resolves with the message once it shows the switch's end ("Traffic is on …"). */
function trafficOn(e: DiscordE2E, messageId: string, from?: number): Promise<StoredMessage> {
  return waitForMessage(e.fake, messageId, (t) => t.includes('Traffic is on'), from);
}

/**
 * Follows a switch to a standby target to its end: waits until the job is parked reactivating it, lets
 * the reactivation time pass, and resolves with the message once it shows the switch's end.
 */
async function throughReactivation(e: DiscordE2E, messageId: string, from?: number): Promise<StoredMessage> {
  await reactivating(e, messageId, from);
  await advanceWhenParked(e.clock, REACTIVATION_MS);
  return trafficOn(e, messageId, from);
}

describe('Discord end to end', () => {
  it('slash command → confirmation → click → traffic switched, the message edited through every step', async () => {
    const e = await start();
    const before = await e.platform.snapshot('production');
    const current = before.environment.currentDeploymentId ?? '';
    const message = await askRollback(e);

    // The confirmation: same content as Slack (current, every affected domain, target, notes).
    const text = textOf(message);
    const plan = await planOf(e, message);
    const target = plan.target;
    // The demo's default rollback target is in standby: the job parks in "reactivating" on the clock.
    expect(plan.targetStandby).toBe(true);
    expect(text).toContain('Current deployment');
    expect(text).toContain(current);
    expect(text).toContain('Target deployment');
    expect(text).toContain(target.id);
    for (const d of plan.affectedDomains) expect(text).toContain(d.hostname);
    expect(message.author.id).toBe(e.fake.botUser.id);
    const buttons = buttonsOf(message);
    expect(buttons.map((b) => [b.label, b.style])).toEqual([
      ['Rollback to target version', 4],
      ['Cancel', 2],
    ]);
    for (const b of buttons) {
      expect(b.custom_id.length).toBeLessThanOrEqual(100);
      expect(b.custom_id).toMatch(/^sy1:(confirm|cancel):plan_[0-9a-f]+$/);
    }
    // The person who typed the command got an ephemeral pointer to the posted message.
    const pointer = [...e.fake.messages.values()].find(
      (m) => (m.flags & MessageFlag.ephemeral) !== 0 && m.content.includes(message.id),
    );
    expect(pointer?.content).toContain(`/channels/${e.fake.guildId}/${e.fake.channels.ops}/${message.id}`);

    // 15 minutes later on Discord: interaction tokens are dead; progress must use the bot token.
    e.fake.expireInteractionTokens();
    const from = e.fake.calls.length;
    await click(e, message, 'Rollback to target version');
    const final = await throughReactivation(e, message.id, from);
    expect(textOf(final)).toContain(`Rolled back production to ${target.id}`);
    expect(buttonsOf(final)).toEqual([]);

    const after = await e.platform.snapshot('production');
    expect(after.environment.currentDeploymentId).toBe(target.id);
    expect(after.environment.rolledBack).toBe(true);

    // Every edit went to the channel message with the bot token and succeeded; none via webhooks.
    const edits = e.fake.calls.slice(from).filter((c) => c.method === 'PATCH');
    expect(edits.length).toBeGreaterThanOrEqual(2);
    for (const c of edits) {
      expect(c.path).toBe(`/channels/${e.fake.channels.ops}/messages/${message.id}`);
      expect(c.authorization).toBe(`Bot ${e.fake.token}`);
      expect(c.status).toBe(200);
    }
    // The message went from the confirmation through progress to the final state, in order.
    const seen = final.history.map((h) => textOf(h));
    expect(seen[0]).toContain('Roll back production');
    const progressIdx = seen.findIndex(
      (t) => /Validating the plan|Switching domains|Reactivating/.test(t) && !t.includes('Traffic is on'),
    );
    expect(progressIdx).toBeGreaterThan(0);
    expect(seen.at(-1)).toContain('Traffic is on');
    expect(seen.some((t) => /⏳ Reactivating standby target.*\(running\)/.test(t))).toBe(true);
    expect(await rollbacks(e)).toBe(1);
  });

  it('a click whose switch was queued but whose job id could not be stored is answered as queued, never "That click failed"', async () => {
    const e = await start();
    // One Redis blip: the write of the queued job's id on the plan fails as a dropped connection does.
    const transition = e.plans.transition.bind(e.plans);
    let failed = 0;
    e.plans.transition = (...args: Parameters<PlanStore['transition']>) => {
      if (args[3]?.jobId !== undefined && failed === 0) {
        failed += 1;
        return Promise.reject(new Error('Connection is closed.'));
      }
      return transition(...args);
    };
    // The click handler counts its outcome last, once it has answered (edit, follow-up) in full.
    const inc = e.metrics.clicks.inc.bind(e.metrics.clicks) as (labels: Record<string, string>) => void;
    const counted = new Promise<string>((resolve) => {
      e.metrics.clicks.inc = ((labels: Record<string, string>) => {
        inc(labels);
        resolve(String(labels.outcome));
      }) as typeof e.metrics.clicks.inc;
    });
    const message = await askRollback(e);
    const from = e.fake.calls.length;
    const i = await click(e, message, 'Rollback to target version');
    expect(await counted).toBe('enqueued');
    expect(failed).toBe(1);
    // No "That click failed: …" follow-up: the switch was queued, and the message follows it to its end.
    expect(followUps(e, i, from)).toEqual([]);
    const final = await throughReactivation(e, message.id, from);
    const after = await e.platform.snapshot('production');
    expect(after.environment.rolledBack).toBe(true);
    expect(textOf(final)).toContain(`Rolled back production to ${after.environment.currentDeploymentId}`);
    expect(await rollbacks(e)).toBe(1);
    expect(followUps(e, i, from)).toEqual([]);
  });

  it('refuses a member without an allowed role: ephemeral reason, message unchanged, no job', async () => {
    const e = await start();
    const message = await askRollback(e);
    const versions = message.history.length;
    const from = e.fake.calls.length;
    const i = await click(e, message, 'Rollback to target version', e.bob, [e.fake.roles.viewers]);
    const sent = await followUp(e, i, from);
    expect(sent.status).toBe(200);
    const note = messageOf(e, sent);
    expect((note?.flags ?? 0) & MessageFlag.ephemeral).toBe(MessageFlag.ephemeral);
    expect(textOf(note ?? NO_MESSAGE)).toMatch(/not allowed|may not|permission|allow/i);
    expect(textOf(note ?? NO_MESSAGE)).toContain('environments.production.allow.discord');
    expect(e.fake.messages.get(message.id)?.history.length).toBe(versions);
    expect(await jobTotal(e)).toBe(0);
    expect(await rollbacks(e)).toBe(0);
  });

  it('allows a member listed by user id even without an allowed role', async () => {
    const e = await start({ allowUsers: ['bob'] });
    const message = await askRollback(e);
    const from = e.fake.calls.length;
    await click(e, message, 'Rollback to target version', e.bob, [e.fake.roles.viewers]);
    await waitForMessage(e.fake, message.id, (t) => /Reactivating standby target.*\(running\)/.test(t), from);
    await advanceWhenParked(e.clock, REACTIVATION_MS);
    const done = await trafficOn(e, message.id, from);
    expect(textOf(done)).toContain(`Confirmed by <@${e.bob.id}>`);
    expect(await rollbacks(e)).toBe(1);
  });

  it('a double click makes one job and one switch', async () => {
    const e = await start();
    const message = await askRollback(e);
    const from = e.fake.calls.length;
    const first = press(e, message, 'Rollback to target version');
    const second = press(e, message, 'Rollback to target version');
    await e.fake.waitForCallback(first);
    await e.fake.waitForCallback(second);
    await throughReactivation(e, message.id, from);
    expect(await jobTotal(e)).toBe(1);
    expect(await rollbacks(e)).toBe(1);
    const clicks = await e.metrics.clicks.get();
    const outcomes = clicks.values
      .filter((v) => v.labels.action === 'confirm')
      .map((v) => `${v.labels.outcome}:${v.value}`);
    expect(outcomes.sort()).toEqual(['enqueued:1', 'joined:1']);
  });

  it('a stale plan is refused, nothing changes, and a fresh plan can be made', async () => {
    const e = await start();
    const message = await askRollback(e);
    // Someone else moves traffic before the click: a rollback to a different deployment.
    const plan = await planOf(e, message);
    const snap = await e.platform.snapshot('production');
    const alt = snap.deployments.find(
      (d) =>
        d.id !== snap.environment.currentDeploymentId &&
        d.id !== plan.target.id &&
        (d.status === 'ready' || d.status === 'standby'),
    );
    if (!alt) throw new Error('demo project has no third switchable deployment');
    const op = await e.platform.rollback({
      environment: 'production',
      targetId: alt.id,
      requestedBy: 'someone else',
    });
    for (;;) {
      const st = await e.platform.operation(op);
      if (st.state === 'succeeded') break;
      if (st.state === 'failed') throw new Error(st.error?.message ?? 'failed');
      if (e.clock.pending > 0) await advanceWhenParked(e.clock, REACTIVATION_MS);
      else await new Promise<void>((r) => setImmediate(r));
    }
    const moved = await rollbacks(e);
    const from = e.fake.calls.length;
    await click(e, message, 'Rollback to target version');
    const stale = await waitForMessage(e.fake, message.id, (t) => t.includes('out of date'), from);
    expect(textOf(stale)).toContain('Nothing was changed');
    expect(buttonsOf(stale).map((b) => b.label)).toEqual(['Make a fresh plan']);
    expect(await jobTotal(e)).toBe(0);
    expect(await rollbacks(e)).toBe(moved);

    const fromReplan = e.fake.calls.length;
    await click(e, stale, 'Make a fresh plan');
    const fresh = await waitForPost(e.fake, e.fake.channels.ops, fromReplan);
    expect(buttonsOf(fresh).map((b) => b.label)).toEqual(['Rollback to target version', 'Cancel']);
  });

  it("Make a fresh plan whose answer Discord refuses tells ChatService (postFailed: the plan and the click's channel), so the suggestion slot its fresh plan reserved is freed, and tells the clicker", async () => {
    const e = await start();
    const message = await askRollback(e);
    // Someone else moves traffic before the click: the plan is stale and offers a fresh one.
    const plan = await planOf(e, message);
    const snap = await e.platform.snapshot('production');
    const alt = snap.deployments.find(
      (d) =>
        d.id !== snap.environment.currentDeploymentId &&
        d.id !== plan.target.id &&
        (d.status === 'ready' || d.status === 'standby'),
    );
    if (!alt) throw new Error('demo project has no third switchable deployment');
    const op = await e.platform.rollback({
      environment: 'production',
      targetId: alt.id,
      requestedBy: 'someone else',
    });
    for (;;) {
      const st = await e.platform.operation(op);
      if (st.state === 'succeeded') break;
      if (st.state === 'failed') throw new Error(st.error?.message ?? 'failed');
      if (e.clock.pending > 0) await advanceWhenParked(e.clock, REACTIVATION_MS);
      else await new Promise<void>((r) => setImmediate(r));
    }
    let from = e.fake.calls.length;
    await click(e, message, 'Rollback to target version');
    const stale = await waitForMessage(e.fake, message.id, (t) => t.includes('out of date'), from);

    const postFailed = vi.spyOn(ChatService.prototype, 'postFailed');
    try {
      // Discord refuses the answer's post (the bot lost its permission to send messages there).
      e.fake.failNext({
        method: 'POST',
        path: new RegExp(`^/channels/${e.fake.channels.ops}/messages$`),
        status: 403,
        code: 50013,
        message: 'Missing Permissions',
      });
      from = e.fake.calls.length;
      const i = await click(e, stale, 'Make a fresh plan');
      const failed = await followUp(e, i, from);
      // Told what to grant, as a command's answer that cannot be posted is.
      expect(JSON.stringify(failed.body)).toContain(
        'I cannot post in this channel (Missing Permissions). Give the Switchyard bot the View Channel, Send Messages and Embed Links permissions here',
      );
      // Told before the clicker is, of the fresh plan (another id: the platform changed since).
      expect(postFailed.mock.calls).toEqual([
        [expect.stringMatching(/^plan_/), { surface: 'discord', channel: e.fake.channels.ops }],
      ]);
      expect((await e.flow.get(String(postFailed.mock.calls[0]?.[0])))?.state).toBe('pending');
    } finally {
      postFailed.mockRestore();
    }
  });

  it('cancel leaves production untouched', async () => {
    const e = await start();
    const message = await askRollback(e);
    const from = e.fake.calls.length;
    await click(e, message, 'Cancel');
    const cancelled = await waitForMessage(e.fake, message.id, (t) => t.includes('Cancelled'), from);
    expect(textOf(cancelled)).toContain('Nothing changed');
    expect(buttonsOf(cancelled)).toEqual([]);
    expect(await jobTotal(e)).toBe(0);
  });

  it('the two-person rule names people by <@id> mention and a username that differs from the nickname anyone can set, and never pings', async () => {
    const e = await start({ twoPerson: ['production'] });
    // Mallory, not permitted (viewers only), sets her server nickname to "alice" (any member may) and asks.
    const mallory = e.fake.user('mallory');
    const member = e.fake.member.bind(e.fake);
    e.fake.member = (user, roles) =>
      user.id === mallory.id ? { ...member(user, roles), nick: 'alice' } : member(user, roles);
    let from = e.fake.calls.length;
    const ask = slash(e, 'rollback', { environment: 'production' }, mallory, [e.fake.roles.viewers]);
    await e.fake.waitForCallback(ask);
    const message = await waitForPost(e.fake, e.fake.channels.ops, from);
    await originalEdited(e, ask, from);
    // Discord shows <@id> with the server nickname ("@alice"): her unique username follows it, as it
    // differs from the name shown.
    expect(textOf(message)).toContain(`Requested by <@${mallory.id}> (@mallory)`);

    from = e.fake.calls.length;
    await click(e, message, 'Rollback to target version', e.carol);
    const waiting = await waitForMessage(e.fake, message.id, (t) => t.includes('Waiting for approval'), from);
    // Approvers read who asked as "@alice (@mallory)", not as the nickname "alice" alone; carol, whose
    // name is her username, by the mention alone.
    expect(textOf(waiting)).toContain(
      `Requested by <@${mallory.id}> (@mallory), confirmed by <@${e.carol.id}>. **Waiting for approval** by someone other than <@${mallory.id}> (@mallory) and <@${e.carol.id}>.`,
    );
    expect(textOf(waiting)).not.toContain('Requested by alice');
    // Every post and edit carrying a mention says no one is pinged.
    const carrying = e.fake.calls.filter(
      (c) =>
        (c.method === 'POST' || c.method === 'PATCH') &&
        c.path.includes(`/channels/${e.fake.channels.ops}/messages`) &&
        JSON.stringify(c.body).includes(`<@${mallory.id}>`),
    );
    expect(carrying.length).toBeGreaterThanOrEqual(2);
    for (const c of carrying)
      expect((c.body as { allowed_mentions?: unknown }).allowed_mentions).toEqual({ parse: [] });
    expect(await jobTotal(e)).toBe(0);
  });

  it('the two-person rule: the requester cannot approve; a second deployer can', async () => {
    const e = await start({ twoPerson: ['production'] });
    const message = await askRollback(e);
    const from = e.fake.calls.length;
    await click(e, message, 'Rollback to target version');
    const waiting = await waitForMessage(e.fake, message.id, (t) => t.includes('Waiting for approval'), from);
    expect(buttonsOf(waiting).map((b) => b.label)).toEqual(['Approve', 'Cancel']);
    const self = await click(e, waiting, 'Approve');
    const refusal = await followUp(e, self);
    expect(textOf(messageOf(e, refusal) ?? NO_MESSAGE)).toMatch(/someone other than/i);
    expect(await jobTotal(e)).toBe(0);
    const fromApprove = e.fake.calls.length;
    await click(e, waiting, 'Approve', e.carol);
    const done = await throughReactivation(e, message.id, fromApprove);
    expect(textOf(done)).toContain(`approved by <@${e.carol.id}>`);
    expect(await jobTotal(e)).toBe(1);
  });

  it('survives a gateway connection dropped mid-job: resumes, the job completes, nothing is handled twice', async () => {
    const e = await start();
    const message = await askRollback(e);
    expect((await planOf(e, message)).targetStandby).toBe(true);
    const from = e.fake.calls.length;
    const confirm = await click(e, message, 'Rollback to target version');
    // The job is parked on the clock in "reactivating": drop the connection now, mid-job.
    await reactivating(e, message.id, from);
    const resumed = gatewayEvent(e, 'resume');
    e.fake.gateway.drop({ terminate: true });
    // A command typed while the bot is away: kept by the session and replayed on RESUME.
    const fromLate = e.fake.calls.length;
    const late = slash(e, 'deployments', { environment: 'production' });
    const r = await resumed;
    expect(r.kind === 'resume' && r.replayed).toBeGreaterThanOrEqual(1);
    await e.fake.waitForCallback(late);
    await waitForPost(e.fake, e.fake.channels.ops, fromLate);
    await advanceWhenParked(e.clock, REACTIVATION_MS);
    await trafficOn(e, message.id, from);
    expect(await jobTotal(e)).toBe(1);
    expect(await rollbacks(e)).toBe(1);
    // Each interaction was answered exactly once (a second answer would be 400 "already acknowledged").
    for (const i of [confirm, late]) {
      const answers = e.fake.calls.filter((c) => c.path === `/interactions/${i.id}/${i.token}/callback`);
      expect(answers.map((c) => c.status)).toEqual([204]);
    }
    expect(e.fake.calls.filter((c) => c.status === 400)).toEqual([]);
    // The replayed command was handled once: one /deployments list posted.
    const lists = e.fake
      .channelMessages(e.fake.channels.ops)
      .filter((m) => m.id !== message.id && textOf(m).includes('production'));
    expect(lists).toHaveLength(1);
  });

  it('answers bad arguments with ephemeral usage listing the valid environments', async () => {
    const e = await start();
    const i = slash(e, 'rollback', { environment: 'nope' });
    await e.fake.waitForCallback(i);
    const edit = await originalEdited(e, i);
    expect(edit.status).toBe(200);
    const reply = e.fake.messages.get(i.originalId ?? '');
    expect((reply?.flags ?? 0) & MessageFlag.ephemeral).toBe(MessageFlag.ephemeral);
    const text = textOf(reply ?? NO_MESSAGE);
    expect(text).toContain('nope');
    expect(text).toContain('production');
    expect(text).toContain('preview');
    expect(text).toContain('/rollback environment:');
    expect(e.fake.channelMessages(e.fake.channels.ops)).toEqual([]);
    expect(await jobTotal(e)).toBe(0);
  });

  it('reads options as Slack reads command text: pasted invisible characters, quotes and backticks go', async () => {
    const e = await start();
    const snap = await e.platform.snapshot('production');
    const current = snap.environment.currentDeploymentId;
    const older = snap.deployments.find(
      (d) => d.id !== current && (d.status === 'ready' || d.status === 'standby'),
    );
    if (!older) throw new Error('the demo has no older deployment to roll back to');
    /** Runs the slash command and returns what the bot answered: a channel post or its ephemeral edit. */
    const answer = async (command: string, options: Record<string, string>) => {
      const from = e.fake.calls.length;
      const before = e.fake.channelMessages(e.fake.channels.ops).length;
      const i = slash(e, command, options);
      await e.fake.waitForCallback(i);
      // The bot posts in the channel before it edits its reply to point there.
      const edit = await originalEdited(e, i, from);
      const reply = textOf(e.fake.messages.get(i.originalId ?? '') ?? NO_MESSAGE);
      const posted = e.fake.channelMessages(e.fake.channels.ops).slice(before).map(textOf);
      return { status: edit.status, reply, posted };
    };
    // An id pasted with a zero-width space, an environment in backticks (Discord's inline code): the
    // same confirmation as typed plainly. Before, "no deployment dep_…" and an unknown environment.
    const rollback = await answer('rollback', {
      environment: '`production`',
      deployment: `${older.id}\u200b`,
    });
    expect(rollback.reply).toContain('Posted in this channel');
    expect(rollback.posted.join('\n')).toContain(older.id);
    // A byte-order mark and curly quotes (what chat clients make of typed quotes).
    const list = await answer('deployments', { environment: '\ufeffproduction' });
    expect(list.reply).toContain('Posted in this channel');
    expect(list.posted.join('\n')).toContain(current ?? '?');
    const promote = await answer('promote', { target: `\u201c${older.id}\u201d` });
    expect(promote.reply).toContain('Posted in this channel');
    expect(promote.posted.join('\n')).toContain(older.id);
    expect(await jobTotal(e)).toBe(0);
  });

  it('answers an option of several words with usage naming the option, as Slack names extra words', async () => {
    const e = await start();
    const snap = await e.platform.snapshot('production');
    const id = snap.deployments[0]?.id ?? '?';
    for (const [command, options, problem] of [
      [
        'rollback',
        { environment: `production ${id}` },
        `The environment option of /rollback takes one word, an environment: "production ${id}" is 2 words, so nothing was done. Give a deployment in the deployment option; to say why, write it in a message of its own.`,
      ],
      [
        'rollback',
        { environment: 'production', deployment: `${id} ${id}` },
        `The deployment option of /rollback takes one word, a deployment id: "${id} ${id}" is 2 words`,
      ],
      [
        'promote',
        { target: `production ${id}` },
        `The target option of /promote takes one word, a deployment or an environment: "production ${id}" is 2 words`,
      ],
      [
        'deployments',
        { environment: 'production preview' },
        'The environment option of /deployments takes one word, an environment: "production preview" is 2 words, so nothing was done.',
      ],
    ] as const) {
      const from = e.fake.calls.length;
      const i = slash(e, command, options);
      await e.fake.waitForCallback(i);
      expect((await originalEdited(e, i, from)).status).toBe(200);
      const reply = e.fake.messages.get(i.originalId ?? '');
      expect((reply?.flags ?? 0) & MessageFlag.ephemeral, command).toBe(MessageFlag.ephemeral);
      expect(textOf(reply ?? NO_MESSAGE), `${command} ${JSON.stringify(options)}`).toContain(`/${command} `);
      expect(textOf(reply ?? NO_MESSAGE)).toContain(problem);
    }
    expect(e.fake.channelMessages(e.fake.channels.ops)).toEqual([]);
    expect(await jobTotal(e)).toBe(0);
  });

  it('autocompletes environments and recent deployments', async () => {
    const e = await start();
    const envs = e.fake.autocomplete({
      command: 'rollback',
      options: [{ name: 'environment', value: 'pro', focused: true }],
      user: e.alice,
    });
    const envAnswer = await e.fake.waitForCallback(envs);
    expect(envAnswer).toEqual({
      type: CallbackType.autocompleteResult,
      data: { choices: [{ name: 'production', value: 'production' }] },
    });
    const deps = e.fake.autocomplete({
      command: 'rollback',
      options: [
        { name: 'environment', value: 'production' },
        { name: 'deployment', value: '', focused: true },
      ],
      user: e.alice,
    });
    const depAnswer = await e.fake.waitForCallback(deps);
    const snap = await e.platform.snapshot('production');
    if (depAnswer.type !== CallbackType.autocompleteResult) throw new Error('not an autocomplete answer');
    expect(depAnswer.data.choices.map((c) => c.value)).toEqual(
      snap.deployments.slice(0, 25).map((d) => d.id),
    );
    const current = depAnswer.data.choices.find((c) => c.value === snap.environment.currentDeploymentId);
    expect(current?.name).toContain('current');
  });

  it('autocomplete reads the typed id and the chosen environment as the command does (a zero-width space or backticks pasted along)', async () => {
    const e = await start();
    const snap = await e.platform.snapshot('production');
    const older = snap.deployments.find(
      (d) =>
        d.id !== snap.environment.currentDeploymentId && (d.status === 'ready' || d.status === 'standby'),
    );
    if (!older) throw new Error('no switchable older deployment');
    const offered = async (
      command: string,
      options: { name: string; value: string; focused?: boolean }[],
    ) => {
      const answer = await e.fake.waitForCallback(e.fake.autocomplete({ command, options, user: e.alice }));
      if (answer.type !== CallbackType.autocompleteResult) throw new Error('not an autocomplete answer');
      return answer.data.choices.map((c) => c.value);
    };
    for (const typed of [`${older.id}\u200b`, `\`${older.id}\``]) {
      expect(
        await offered('rollback', [
          { name: 'environment', value: 'production' },
          { name: 'deployment', value: typed, focused: true },
        ]),
        JSON.stringify(typed),
      ).toEqual([older.id]);
      expect(await offered('promote', [{ name: 'target', value: typed, focused: true }])).toContain(older.id);
    }
    expect(
      await offered('rollback', [
        { name: 'environment', value: 'production\u200b' },
        { name: 'deployment', value: '', focused: true },
      ]),
    ).toEqual(snap.deployments.slice(0, 25).map((d) => d.id));
  });

  it('/deployments posts the list with row buttons, and a row button posts a fresh confirmation', async () => {
    const e = await start();
    const from = e.fake.calls.length;
    const i = slash(e, 'deployments', { environment: 'production' });
    await e.fake.waitForCallback(i);
    const list = await waitForPost(e.fake, e.fake.channels.ops, from);
    const snap = await e.platform.snapshot('production');
    expect(textOf(list)).toContain(snap.environment.currentDeploymentId ?? '?');
    const row = buttonsOf(list).find((b) => b.custom_id.startsWith('sy1:rollback_to:production:'));
    if (!row)
      throw new Error(
        `no row button; buttons: ${buttonsOf(list)
          .map((b) => b.custom_id)
          .join(', ')}`,
      );
    const fromRow = e.fake.calls.length;
    const clickRow = e.fake.click({
      messageId: list.id,
      customId: row.custom_id,
      user: e.alice,
      roles: [e.fake.roles.deployers],
    });
    await e.fake.waitForCallback(clickRow);
    const confirmation = await waitForPost(e.fake, e.fake.channels.ops, fromRow);
    expect(buttonsOf(confirmation).map((b) => b.label)).toEqual(['Rollback to target version', 'Cancel']);
    expect(textOf(confirmation)).toContain(row.custom_id.split(':').at(-1) ?? '?');
  });

  it('acknowledges within the deadline while the platform is slow, then finishes the work', async () => {
    const e = await start();
    e.held.hold();
    const from = e.fake.calls.length;
    const i = slash(e, 'rollback', { environment: 'production' });
    // Deferred at once (the fake refuses callbacks later than 3 s), before any platform read finished.
    expect((await e.fake.waitForCallback(i)).type).toBe(CallbackType.deferredChannelMessageWithSource);
    expect(e.fake.channelMessages(e.fake.channels.ops)).toEqual([]);
    e.held.release();
    const message = await waitForPost(e.fake, e.fake.channels.ops, from);
    expect(buttonsOf(message).map((b) => b.label)).toEqual(['Rollback to target version', 'Cancel']);
  });

  it('autocomplete answers with what it has when the platform is slower than its budget', async () => {
    const e = await start();
    e.held.hold();
    const i = e.fake.autocomplete({
      command: 'deployments',
      options: [{ name: 'environment', value: '', focused: true }],
      user: e.alice,
    });
    await advanceWhenParked(e.clock, 2_000);
    expect(await e.fake.waitForCallback(i)).toEqual({
      type: CallbackType.autocompleteResult,
      data: { choices: [] },
    });
    e.held.release();
  });

  it('/promote after a rollback promotes and turns automatic deploys back on', async () => {
    const e = await start();
    const message = await askRollback(e);
    const from = e.fake.calls.length;
    await click(e, message, 'Rollback to target version');
    await throughReactivation(e, message.id, from);
    expect((await e.platform.snapshot('production')).environment.rolledBack).toBe(true);

    const fromPromote = e.fake.calls.length;
    const i = slash(e, 'promote', { target: 'production' });
    await e.fake.waitForCallback(i);
    const promote = await waitForPost(e.fake, e.fake.channels.ops, fromPromote);
    expect(textOf(promote)).toContain('rolled back');
    const confirm = buttonsOf(promote).find((b) => b.custom_id.startsWith('sy1:confirm:'));
    if (!confirm) throw new Error('no confirm button on the promote confirmation');
    const record = await e.flow.get(confirm.custom_id.split(':').at(-1) ?? '');
    const fromClick = e.fake.calls.length;
    await click(e, promote, confirm.label);
    if (record?.plan.targetStandby) {
      await waitForMessage(
        e.fake,
        promote.id,
        (t) => /Reactivating standby target.*\(running\)/.test(t),
        fromClick,
      );
      await advanceWhenParked(e.clock, REACTIVATION_MS);
    }
    const done = await trafficOn(e, promote.id, fromClick);
    expect(textOf(done)).toContain('Automatic deploys resume with the next successful deployment.');
    const after = await e.platform.snapshot('production');
    expect(after.environment.rolledBack).toBe(false);
    expect(after.environment.currentDeploymentId).toBe(record?.plan.target.id);
  });

  it('autocompletes /promote targets: environments and switchable deployments', async () => {
    const e = await start();
    const i = e.fake.autocomplete({
      command: 'promote',
      options: [{ name: 'target', value: 'dep_', focused: true }],
      user: e.alice,
    });
    const answer = await e.fake.waitForCallback(i);
    if (answer.type !== CallbackType.autocompleteResult) throw new Error('not an autocomplete answer');
    const values = answer.data.choices.map((c) => c.value);
    expect(values.length).toBeGreaterThan(0);
    for (const v of values) expect(String(v).startsWith('dep_')).toBe(true);
    for (const c of answer.data.choices) expect(c.name).toMatch(/· (ready|standby)/);
  });

  it("a button that is not Switchyard's gets an ephemeral explanation and changes nothing", async () => {
    const e = await start();
    const posted = await e.bot.messages.post(e.fake.channels.ops, {
      embeds: [{ title: 'Another tool' }],
      components: [
        { type: 1, components: [{ type: 2, style: 2, label: 'Other', custom_id: 'other-tool:42' }] },
      ],
      allowed_mentions: { parse: [] },
      allowedMentions: { parse: [] },
    });
    const message = e.fake.messages.get(posted.id);
    if (!message) throw new Error('not stored');
    const from = e.fake.calls.length;
    const i = await click(e, message, 'Other');
    const note = await followUp(e, i, from);
    const text = textOf(messageOf(e, note) ?? NO_MESSAGE);
    expect(text).toContain('Invalid action id');
    expect(e.fake.messages.get(posted.id)?.history).toHaveLength(1);
    expect(await jobTotal(e)).toBe(0);
  });

  it('an alert suggestion posted in Discord can be dismissed with nothing changed', async () => {
    const e = await start();
    const system = { surface: 'system' as const, userId: 'switchyard', displayName: 'Switchyard' };
    const planned = await e.flow.plan(system, 'rollback', 'production', undefined, {
      alert: { source: 'grafana', title: 'HighErrorRate', startedAt: e.clock.now(), status: 'firing' },
    });
    if (!planned.ok) throw new Error(planned.refusal.message);
    const chat = new ChatService({ flow: e.flow, clock: e.clock });
    const posted = await e.bot.messages.post(
      e.fake.channels.alerts,
      renderDiscord(chat.confirmation(planned.record)),
    );
    await e.flow.attachMessage(planned.plan.id, {
      surface: 'discord',
      channel: e.fake.channels.alerts,
      messageId: posted.id,
    });
    const message = e.fake.messages.get(posted.id);
    if (!message) throw new Error('not stored');
    expect(textOf(message)).toContain('HighErrorRate');
    expect(buttonsOf(message).map((b) => b.label)).toEqual([
      'Rollback to target version',
      'Cancel',
      'Dismiss',
    ]);
    const from = e.fake.calls.length;
    await click(e, message, 'Dismiss');
    const dismissed = await waitForMessage(e.fake, message.id, (t) => t.includes('Dismissed'), from);
    expect(buttonsOf(dismissed)).toEqual([]);
    expect(await jobTotal(e)).toBe(0);
    expect(await rollbacks(e)).toBe(0);
    // audited as a dismissal of the suggestion, not as a cancelled request
    expect((await e.audit.recent('production', 1))[0]?.message).toContain('dismissed');
    // and counted as a Dismiss click
    const clicks = (await e.metrics.clicks.get()).values.map((v) => `${v.labels.action}:${v.labels.outcome}`);
    expect(clicks).toEqual(['dismiss:cancelled']);
  });
});

describe('a message whose switch ends, or is approved elsewhere, before its own post or edit lands', () => {
  /** A REST call of the bot's on the messages of the ops channel (`/api/v10/…` on the proxy). */
  const opsMessages = (e: DiscordE2E, method: string, messageId?: string) => (c: ProxiedCall) =>
    c.method === method &&
    c.path.endsWith(
      `/channels/${e.fake.channels.ops}/messages${messageId === undefined ? '' : `/${messageId}`}`,
    );

  /** Whether a recorded PATCH of `messageId` from call `from` on shows the switch's end. */
  const finalEdit = (e: DiscordE2E, messageId: string, from: number) =>
    e.fake.waitForRequest(
      (c) =>
        c.method === 'PATCH' &&
        c.path.endsWith(`/messages/${messageId}`) &&
        JSON.stringify(c.body).includes('Traffic is on'),
      { from },
    );

  it('a /rollback that joins the running switch, posted as the switch ends, ends on its final state', async () => {
    const e = await start({ proxy: true });
    const proxy = e.proxy;
    if (!proxy) throw new Error('no proxy');
    const message = await askRollback(e);
    const jobId = jobIdForPlan((await planOf(e, message)).id);
    const from = e.fake.calls.length;
    await click(e, message, 'Rollback to target version');
    await reactivating(e, message.id, from);

    // Carol asks for the same rollback while it runs: it joins the switch. Discord answers the post late.
    const slowPost = proxy.holdAnswer(opsMessages(e, 'POST'));
    const fromCarol = e.fake.calls.length;
    const i = slash(e, 'rollback', { environment: 'production' }, e.carol);
    await e.fake.waitForCallback(i);
    await slowPost.reached;
    const carols = await waitForPost(e.fake, e.fake.channels.ops, fromCarol);
    expect(textOf(carols)).toContain('Progress follows in this message');

    // The switch ends meanwhile: its worker has read the job's messages for the last time.
    await advanceWhenParked(e.clock, REACTIVATION_MS);
    expect((await e.queue.waitForEnd(jobId))?.outcome).toBe('succeeded');
    await trafficOn(e, message.id);

    // The post is answered now: the bot attaches the message, finds the switch ended and shows its end.
    slowPost.release();
    await originalEdited(e, i, fromCarol);
    const shown = e.fake.messages.get(carols.id);
    if (!shown) throw new Error('not stored');
    expect(textOf(shown)).toContain('Traffic is on');
    expect(buttonsOf(shown)).toEqual([]);
  });

  it('a "waiting for approval" view that lands after a worker elsewhere ended the switch leaves the final state', async () => {
    const e = await start({ twoPerson: ['production'], proxy: true, separateWorker: true });
    const proxy = e.proxy;
    if (!proxy) throw new Error('no proxy');
    const message = await askRollback(e);
    const jobId = jobIdForPlan((await planOf(e, message)).id);

    // Alice confirms; the bot's edit ("waiting for approval") is slow to reach Discord.
    const slowEdit = proxy.holdRequest(opsMessages(e, 'PATCH', message.id));
    await click(e, message, 'Rollback to target version');
    await slowEdit.reached;
    // Carol asks for the same rollback: her message shows the request waiting for approval, and she
    // approves there. A worker in another process runs the switch to its end and edits both messages.
    const fromCarol = e.fake.calls.length;
    const asked = slash(e, 'rollback', { environment: 'production' }, e.carol);
    await e.fake.waitForCallback(asked);
    const carols = await waitForPost(e.fake, e.fake.channels.ops, fromCarol);
    expect(textOf(carols)).toContain('Waiting for approval');
    await originalEdited(e, asked, fromCarol);
    await click(e, carols, 'Approve', e.carol);
    await advanceWhenParked(e.clock, REACTIVATION_MS);
    expect((await e.queue.waitForEnd(jobId))?.outcome).toBe('succeeded');
    await trafficOn(e, message.id);

    // The view lands now, over the final state; the bot then puts the final state back.
    const from = e.fake.calls.length;
    slowEdit.release();
    await finalEdit(e, message.id, from);
    const shown = e.fake.messages.get(message.id);
    if (!shown) throw new Error('not stored');
    const versions = shown.history.map((v) => textOf({ content: v.content, embeds: v.embeds }));
    expect(versions.slice(-2).map((t) => t.includes('Waiting for approval'))).toEqual([true, false]);
    expect(textOf(shown)).toContain('Traffic is on');
    expect(buttonsOf(shown)).toEqual([]);
  });
});

describe('switchyard_commands_total on Discord', () => {
  it('counts each command with the outcome values every surface uses (planned, listed, usage, refused)', async () => {
    const e = await start();
    const chat = new ChatService({ flow: e.flow, clock: e.clock });
    const metrics = createMetrics();
    const deps: DiscordDeps = {
      chat,
      flow: e.flow,
      messages: e.bot.messages,
      clock: e.clock,
      logger: silentLogger,
      metrics,
      autocompleteBudgetMs: 2_000,
    };
    // The interaction as the command handlers use it (runCommand awaits everything it does, so the
    // count is made when it returns): a deployer typing in the ops channel.
    let n = 0;
    const interaction = () => {
      const replies: unknown[] = [];
      n += 1;
      const i = {
        id: `interaction-${n}`,
        channelId: e.fake.channels.ops,
        guildId: e.fake.guildId,
        user: { id: e.alice.id, username: e.alice.username, globalName: null },
        member: { roles: [e.fake.roles.deployers], nick: null },
        deferred: false,
        replied: false,
        async deferReply() {
          i.deferred = true;
        },
        async editReply(body: unknown) {
          replies.push(body);
        },
        async reply(body: unknown) {
          i.replied = true;
          replies.push(body);
        },
      };
      return i as unknown as ChatInputCommandInteraction;
    };
    await runCommand(deps, interaction(), 'rollback', ['production']);
    await runCommand(deps, interaction(), 'deployments', ['production']);
    await runCommand(deps, interaction(), 'rollback', []);
    await runCommand(deps, interaction(), 'rollback', ['nope']);
    const counted = (await metrics.commands.get()).values.map(
      (v) => `${v.labels.surface}:${v.labels.command}:${v.labels.outcome}:${v.value}`,
    );
    // The same values Slack and the console count for the same events (src/metrics.ts CommandOutcome).
    expect(counted.sort()).toEqual([
      'discord:deployments:listed:1',
      'discord:rollback:planned:1',
      'discord:rollback:refused:1',
      'discord:rollback:usage:1',
    ]);
  });
});

describe('a command the deploy platform cannot answer', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  it('is answered, only to the person, with the fault view Slack and the console show, never the raw error', async () => {
    // A real Unkey adapter whose API is gone (its port closed): the read fails as a network error,
    // `PlatformHttpError[network_error] 0 POST http://127.0.0.1:…` (no retry, to answer at once).
    const key = 'unkey_root_unreachable';
    const server = await startAcmeUnkey(key, { clock: new ManualClock() });
    await server.close();
    const platform = new UnkeyPlatform({
      environments: { production: { project: 'acme', app: 'api', environment: 'production' } },
      client: { baseUrl: server.url, rootKey: key, clock: systemClock, timeoutMs: 5_000, maxRetries: 0 },
      clock: systemClock,
    });
    closers.push(() => platform.close());
    const e = await start({ platform });
    const from = e.fake.calls.length;
    const i = slash(e, 'rollback', { environment: 'production' });
    await e.fake.waitForCallback(i);
    const edit = await originalEdited(e, i, from);
    expect(edit.status).toBe(200);
    const reply = e.fake.messages.get(i.originalId ?? '');
    expect((reply?.flags ?? 0) & MessageFlag.ephemeral).toBe(MessageFlag.ephemeral);
    const text = textOf(reply ?? NO_MESSAGE);
    expect(text).toContain(
      'Switchyard could not run /rollback (the deploy platform could not be reached: platform_unavailable). It may work if you try again in a moment.',
    );
    expect(text).toContain('Nothing was switched by this request. The error is in the Switchyard logs.');
    expect(text).not.toMatch(/PlatformHttpError|network_error|127\.0\.0\.1/);
    expect(e.fake.channelMessages(e.fake.channels.ops)).toEqual([]);
  });
});

describe('what an autocomplete reads', () => {
  // Discord sends an autocomplete request every few keystrokes: each reads the platform only through
  // Flow.deploymentChoices (one snapshot, shared by a burst and reused for choicesCacheMs), never the
  // whole /deployments view (routing: one alias read per domain on Vercel; audit log; queue).
  const closers: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  /** Keystrokes in `/rollback deployment:` for production: one autocomplete request per value. */
  function typeDeployment(e: DiscordE2E, typed: readonly string[]): FakeInteraction[] {
    return typed.map((value) =>
      e.fake.autocomplete({
        command: 'rollback',
        options: [
          { name: 'environment', value: 'production' },
          { name: 'deployment', value, focused: true },
        ],
        user: e.alice,
      }),
    );
  }

  /** The values an answer offers (throws when it is not an autocomplete answer). */
  function offered(answer: Callback): string[] {
    if (answer.type !== CallbackType.autocompleteResult) throw new Error('not an autocomplete answer');
    return answer.data.choices.map((c) => String(c.value));
  }

  /** What a person typing `id` sends: its first 1, 2, … `n` characters. */
  function typing(id: string, n: number): string[] {
    return Array.from({ length: n }, (_, k) => id.slice(0, k + 1));
  }

  it('a burst of keystrokes shares one snapshot read, reads no routing, and reuses it until choicesCacheMs passed', async () => {
    const e = await start();
    const newest = (await e.platform.snapshot('production')).deployments[0]?.id ?? '';
    expect(newest).not.toBe('');
    e.held.hold(['snapshot']);
    const burst = typeDeployment(e, typing(newest, 5));
    try {
      await e.held.whenRead('listEnvironments', burst.length);
      // Past the (in-memory) environment list every keystroke reaches its snapshot read at once.
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(e.held.reads.snapshot).toBe(1);
    } finally {
      e.held.release();
    }
    for (const answer of await Promise.all(burst.map((i) => e.fake.waitForCallback(i))))
      expect(offered(answer)).toContain(newest);
    expect(e.held.reads).toMatchObject({ snapshot: 1, routing: 0 });

    // Another keystroke within choicesCacheMs answers from the same read.
    const [soon] = typeDeployment(e, [newest]);
    if (!soon) throw new Error('no interaction');
    expect(offered(await e.fake.waitForCallback(soon))).toContain(newest);
    expect(e.held.reads.snapshot).toBe(1);

    // Past it, the next keystroke reads afresh.
    await e.clock.advance(flowDefaults.choicesCacheMs);
    const [later] = typeDeployment(e, [newest]);
    if (!later) throw new Error('no interaction');
    expect(offered(await e.fake.waitForCallback(later))).toContain(newest);
    expect(e.held.reads).toMatchObject({ snapshot: 2, routing: 0 });
  });

  it('/promote target keystrokes read each environment once, with no routing', async () => {
    const e = await start();
    const environments = await e.platform.listEnvironments();
    const burst = ['d', 'de', 'dep'].map((value) =>
      e.fake.autocomplete({
        command: 'promote',
        options: [{ name: 'target', value, focused: true }],
        user: e.alice,
      }),
    );
    for (const answer of await Promise.all(burst.map((i) => e.fake.waitForCallback(i))))
      expect(offered(answer).length).toBeGreaterThan(0);
    expect(e.held.reads).toMatchObject({ snapshot: environments.length, routing: 0 });
  });

  it('on Vercel with 300 domains, a burst of keystrokes reads the deployments once and no domain alias', async () => {
    const token = 'vcp_autocompleteToken0123456789abcdef';
    const team = 'team_acme123';
    const server = await VercelFakeServer.start({ clock: systemClock, tokens: { [token]: [team] } });
    closers.push(() => server.close());
    const domains = Array.from({ length: 300 }, (_, k) => ({ name: `shop-${k}.acme.com` }));
    const project = server.addProject({ name: 'acme-web', teamId: team, domains });
    for (let k = 0; k < 3; k++) server.deploy({ project });
    const platform = new VercelPlatform({
      project: 'acme-web',
      client: { baseUrl: server.url, token, teamId: team, timeoutMs: 5_000 },
      clock: systemClock,
    });
    closers.push(() => platform.close());
    const e = await start({ platform });
    const newest = (await platform.snapshot('production')).deployments[0]?.id ?? '';
    expect(newest).not.toBe('');
    const from = server.requests.length;
    const burst = typeDeployment(e, typing(newest, 5));
    for (const answer of await Promise.all(burst.map((i) => e.fake.waitForCallback(i))))
      expect(offered(answer)).toContain(newest);
    const calls = server.requests.slice(from);
    expect({
      aliasReads: calls.filter((r) => r.path.startsWith('/v4/aliases/')).length,
      deploymentListings: calls.filter((r) => r.path === '/v6/deployments').length,
    }).toEqual({ aliasReads: 0, deploymentListings: 1 });
    expect(e.held.reads).toMatchObject({ snapshot: 1, routing: 0 });
  });

  it('on Unkey with 1 200 deployments, a burst of keystrokes lists the environment once (5 pages)', async () => {
    const key = 'unkey_root_autocomplete';
    const unkeyClock = new ManualClock();
    const server = await startAcmeUnkey(key, { clock: unkeyClock });
    closers.push(() => server.close());
    for (let k = 0; k < 1_200; k++)
      server.push({ project: 'acme', app: 'api', environment: 'production', branch: 'main' });
    const platform = new UnkeyPlatform({
      environments: { production: { project: 'acme', app: 'api', environment: 'production' } },
      client: { baseUrl: server.url, rootKey: key, clock: unkeyClock, timeoutMs: 5_000 },
      clock: unkeyClock,
    });
    closers.push(() => platform.close());
    const e = await start({ platform });
    const from = server.requests.length;
    const newest = (await platform.snapshot('production')).deployments[0]?.id ?? '';
    expect(newest).not.toBe('');
    // One snapshot of this environment: maxDeployments (500) read in pages of 100.
    const pages = server.requests
      .slice(from)
      .filter((r) => r.endpoint === 'deployments.listDeployments').length;
    expect(pages).toBe(5);
    const burstFrom = server.requests.length;
    const burst = typeDeployment(e, typing(newest, 5));
    for (const answer of await Promise.all(burst.map((i) => e.fake.waitForCallback(i))))
      expect(offered(answer)).toContain(newest);
    const lists = server.requests
      .slice(burstFrom)
      .filter((r) => r.endpoint === 'deployments.listDeployments').length;
    expect(lists).toBe(pages);
  });
});
