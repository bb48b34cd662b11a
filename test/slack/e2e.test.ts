/**
 * Slack end to end: the REAL Bolt app on the shared HTTP server, real Redis, the real switch queue and
 * worker, the real LocalPlatform, and the wire-level fake Slack Web API. Requests are signed exactly as
 * Slack signs them. Every wait is on an event (a fake Slack call, a platform event, a job's end); there
 * are no sleeps.
 */
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { SLACK_COMMANDS, SLACK_METHOD_SCOPES } from '../../handlers/slack/needs.js';
import { createReporterClient, SlackReporter } from '../../handlers/slack/reporter.js';
import { startSwitchWorker } from '../../jobs/switch-worker.js';
import { systemClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import type { LocalPlatform } from '../../src/platform/local/platform.js';
import type { PlatformEvent } from '../../src/platform/port.js';
import { jobIdForPlan } from '../../src/queue.js';
import { buttonsOf, postSigned } from '../fakes/slack/requests.js';
import type { RecordedCall, RecordedResponse } from '../fakes/slack/server.js';
import { WORLD_CHANNEL as CHANNEL, startWorld, WORLD_SECRET, type World } from '../fakes/slack/world.js';
import { CapturedLog } from '../support/captured-log.js';
import { gate } from '../support/gate.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const worlds: World[] = [];

afterEach(async () => {
  for (const w of worlds.splice(0)) await w.close();
});

async function world(environments: Record<string, unknown> = {}): Promise<World> {
  const w = await startWorld({ redisUrl: redisUrl(), name: uniqueName('slack-e2e'), environments });
  worlds.push(w);
  return w;
}

function blocksText(blocks: readonly unknown[]): string {
  return JSON.stringify(blocks);
}

function button(call: RecordedCall | { blocks: readonly unknown[] }, prefix: string) {
  const blocks = 'args' in call ? (call.args.blocks as unknown[]) : call.blocks;
  const found = buttonsOf(blocks).find((b) => b.actionId.startsWith(prefix));
  if (!found) throw new Error(`no ${prefix} button in ${blocksText(blocks).slice(0, 400)}`);
  return found;
}

/** Posts `/rollback production` as alice and returns the confirmation message. */
async function confirmation(w: World, text = 'production', user = 'U0ALICE') {
  const before = w.fake.callsOf('chat.postMessage').length;
  const ack = await w.requests.command({
    command: '/rollback',
    text,
    userId: user,
    userName: user.slice(2).toLowerCase(),
  });
  expect(ack.status).toBe(200);
  const post = await w.fake.waitForCall(
    'chat.postMessage',
    (c) => c.response.ok === true && w.fake.callsOf('chat.postMessage').indexOf(c) >= before,
  );
  return { post, ts: String(post.response.ts) };
}

async function click(w: World, ts: string, actionId: string, user: string) {
  const res = await w.requests.click({
    actionId,
    messageTs: ts,
    userId: user,
    userName: user.slice(2).toLowerCase(),
  });
  expect(res.status).toBe(200);
  return res;
}

function isEphemeral(r: RecordedResponse): boolean {
  return r.body.response_type === 'ephemeral';
}

function finalUpdate(w: World, ts: string): Promise<RecordedCall> {
  return w.fake.waitForCall(
    'chat.update',
    (c) => c.args.ts === ts && /Traffic is on/.test(String(c.args.text)),
    15_000,
  );
}

async function jobCount(w: World): Promise<number> {
  const counts = await w.queue.queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed');
  return Object.values(counts).reduce((a, n) => a + n, 0);
}

function waitForTraffic(platform: LocalPlatform): Promise<PlatformEvent> {
  return new Promise((resolve) => {
    const off = platform.subscribe((e) => {
      if (e.type === 'traffic.moved') {
        off();
        resolve(e);
      }
    });
  });
}

describe('Slack end to end', () => {
  it('/rollback production → confirmation with domains → confirm → chat.update through every step to traffic switched', async () => {
    const w = await world();
    const before = await w.platform.snapshot('production');
    const { post, ts } = await confirmation(w);
    // The confirmation is visible to the channel and names current, every affected domain and target.
    expect(post.args.channel).toBe(CHANNEL);
    const shown = blocksText(post.args.blocks as unknown[]);
    expect(shown).toContain(String(before.environment.currentDeploymentId));
    for (const d of before.domains.filter((d) => d.stickiness === 'live' || d.stickiness === 'environment')) {
      expect(shown).toContain(d.hostname);
    }
    const confirm = button(post, 'sy1:confirm:');
    expect(buttonsOf(post.args.blocks as unknown[]).some((b) => b.actionId.startsWith('sy1:cancel:'))).toBe(
      true,
    );

    await click(w, ts, confirm.actionId, 'U0ALICE');
    const final = await finalUpdate(w, ts);
    const target = /Traffic is on (\S+?)\./.exec(String(final.args.text))?.[1];
    expect(target).toBeDefined();

    // The platform really switched: current deployment, rolled-back state and every live route.
    const after = await w.platform.snapshot('production');
    expect(after.environment.currentDeploymentId).toBe(target);
    expect(after.environment.rolledBack).toBe(true);
    const routes = await w.platform.routing('production');
    for (const d of after.domains.filter((d) => d.stickiness === 'live' || d.stickiness === 'environment')) {
      expect(routes.find((r) => r.hostname === d.hostname)?.deploymentId).toBe(target);
      expect((await w.platform.probe(d.hostname)).deploymentId).toBe(target);
    }

    // The same message was edited from the confirmation to the final state; the final lists each step.
    await w.surface.reporter.flush();
    const versions = w.fake.message(CHANNEL, ts)?.versions ?? [];
    expect(versions.length).toBeGreaterThanOrEqual(3);
    const last = blocksText(versions.at(-1)?.blocks ?? []);
    for (const step of ['alidat', 'witch', 'erif']) expect(last).toContain(step);
    expect(String(versions.at(-1)?.text)).toContain(`Traffic is on ${target}`);
    expect(last).toContain('Confirmed by <@U0ALICE>');
    // Every edit after the click went to the same channel and ts; none failed.
    expect(w.fake.callsOf('chat.update').every((c) => c.args.ts === ts && c.response.ok === true)).toBe(true);
    expect(await jobCount(w)).toBe(1);
    // Every Web API method the surface called is one the manifest's scopes allow.
    for (const call of w.fake.calls) {
      expect(call.method === 'auth.test' || call.method in SLACK_METHOD_SCOPES, call.method).toBe(true);
    }
  });

  it('shows the reactivation step for a standby target only: a promote to a running one ends without it', async () => {
    const w = await world();
    // The demo's default rollback target is in standby: the final message lists its reactivation.
    const rollback = await confirmation(w);
    await click(w, rollback.ts, button(rollback.post, 'sy1:confirm:').actionId, 'U0ALICE');
    const rolledBack = blocksText((await finalUpdate(w, rollback.ts)).args.blocks as unknown[]);
    expect(rolledBack).toMatch(/Reactivating standby target/);
    expect(rolledBack).not.toMatch(/Reactivating standby target[^"]*not reached/);
    // Promoting the deployment that was live (running, not in standby) back.
    const before = w.fake.callsOf('chat.postMessage').length;
    await w.requests.command({
      command: '/promote',
      text: 'dep_4kq9wz',
      userId: 'U0ALICE',
      userName: 'alice',
    });
    const post = await w.fake.waitForCall(
      'chat.postMessage',
      (c) => c.response.ok === true && w.fake.callsOf('chat.postMessage').indexOf(c) >= before,
    );
    const ts = String(post.response.ts);
    await click(w, ts, button(post, 'sy1:confirm:').actionId, 'U0ALICE');
    const promoted = blocksText((await finalUpdate(w, ts)).args.blocks as unknown[]);
    expect(promoted).toContain('Verifying traffic');
    expect(promoted).not.toContain('Reactivating');
  });

  it('a forged signature gets 401 and changes nothing', async () => {
    const w = await world();
    const res = await w.requests.command({ command: '/rollback', text: 'production' }, { secret: 'forged' });
    expect(res.status).toBe(401);
    expect(w.fake.callsOf('chat.postMessage')).toEqual([]);
    expect(w.fake.responses).toEqual([]);
    // A forged click on a real plan does nothing either.
    const { post, ts } = await confirmation(w);
    const forged = await w.requests.click(
      { actionId: button(post, 'sy1:confirm:').actionId, messageTs: ts },
      { secret: 'forged' },
    );
    expect(forged.status).toBe(401);
    expect(await jobCount(w)).toBe(0);
    expect((await w.platform.snapshot('production')).environment.rolledBack).toBe(false);
  });

  it('a replayed request (timestamp older than 5 minutes) gets 401 and changes nothing', async () => {
    const w = await world();
    const { post, ts } = await confirmation(w);
    const old = Math.floor(Date.now() / 1000) - 301;
    const replay = await w.requests.click(
      { actionId: button(post, 'sy1:confirm:').actionId, messageTs: ts },
      { timestamp: old },
    );
    expect(replay.status).toBe(401);
    const cmd = await w.requests.command({ command: '/rollback', text: 'production' }, { timestamp: old });
    expect(cmd.status).toBe(401);
    expect(await jobCount(w)).toBe(0);
    expect(w.fake.callsOf('chat.update')).toEqual([]);
    expect(w.fake.callsOf('chat.postMessage')).toHaveLength(1);
  });

  it('a signed /rollback delivered again (same timestamp and signature) posts no second confirmation', async () => {
    const w = await world();
    const { body } = w.requests.slashCommandBody({ command: '/rollback', text: 'production' });
    const timestamp = Math.floor(Date.now() / 1000);
    const form = 'application/x-www-form-urlencoded';
    expect((await postSigned(w.requests.url, WORLD_SECRET, body, form, { timestamp })).status).toBe(200);
    await w.fake.waitForCall('chat.postMessage', (c) => c.response.ok === true);
    const replay = await postSigned(w.requests.url, WORLD_SECRET, body, form, { timestamp });
    expect(replay.status).toBe(200);
    // The replay went through the whole door before the next command: one post, from the first.
    await confirmation(w, 'production');
    await w.surface.idle();
    expect(w.fake.callsOf('chat.postMessage')).toHaveLength(2);
  });

  it('a confirm click from another workspace (a distributed install) rolls nothing back; the clicker is told they may not act', async () => {
    const w = await world();
    const { post, ts } = await confirmation(w);
    const { payload, responseUrl } = w.requests.blockActionPayload({
      actionId: button(post, 'sy1:confirm:').actionId,
      messageTs: ts,
    });
    const foreign = {
      ...payload,
      api_app_id: 'A0OTHERAPP',
      team: { id: 'TEVILCORP', domain: 'evilcorp' },
      user: { ...(payload.user as Record<string, unknown>), team_id: 'TEVILCORP' },
    };
    const body = new URLSearchParams({ payload: JSON.stringify(foreign) }).toString();
    const res = await postSigned(w.requests.url, WORLD_SECRET, body, 'application/x-www-form-urlencoded');
    expect(res.status).toBe(200);
    const id = responseUrl.split('/')[5];
    const told = await w.fake.waitForResponse((r) => r.id === id);
    expect(told.body).toMatchObject({ response_type: 'ephemeral', replace_original: false });
    expect(String(told.body.text)).toMatch(/not permitted/);
    await w.surface.idle();
    expect(await jobCount(w)).toBe(0);
    expect(w.fake.message(CHANNEL, ts)?.versions).toHaveLength(1);
    expect((await w.platform.snapshot('production')).environment.rolledBack).toBe(false);
  });

  it('refuses a user outside the allow list ephemerally; a member of an allowed user group may act', async () => {
    const w = await world({ production: { allow: { slack: { users: ['U0ALICE'], groups: ['S0OPS'] } } } });
    const { post, ts } = await confirmation(w, 'production', 'U0BOB');
    const confirm = button(post, 'sy1:confirm:');
    await click(w, ts, confirm.actionId, 'U0BOB');
    const refusal = await w.fake.waitForResponse(isEphemeral);
    expect(JSON.stringify(refusal.body)).toMatch(/U0BOB|bob/);
    expect(JSON.stringify(refusal.body)).toMatch(/allow/);
    expect(refusal.body.replace_original).toBe(false);
    expect(await jobCount(w)).toBe(0);
    expect(w.fake.message(CHANNEL, ts)?.versions).toHaveLength(1);
    expect((await w.platform.snapshot('production')).environment.rolledBack).toBe(false);

    // Carol is not listed by id but is in S0OPS (usergroups.users.list).
    await click(w, ts, confirm.actionId, 'U0CAROL');
    await finalUpdate(w, ts);
    expect(w.fake.callsOf('usergroups.users.list').length).toBeGreaterThanOrEqual(1);
    expect(await jobCount(w)).toBe(1);
  });

  it('a double click makes one job and one switch', async () => {
    const w = await world();
    const { post, ts } = await confirmation(w);
    const confirm = button(post, 'sy1:confirm:');
    const moved = waitForTraffic(w.platform);
    await Promise.all([click(w, ts, confirm.actionId, 'U0ALICE'), click(w, ts, confirm.actionId, 'U0ALICE')]);
    await moved;
    await finalUpdate(w, ts);
    expect(await jobCount(w)).toBe(1);
    const snap = await w.platform.snapshot('production');
    expect(snap.liveHistory.filter((h) => h.via === 'rollback')).toHaveLength(1);
    const clicks = await w.metrics.clicks.get();
    const outcomes = clicks.values.map((v) => `${v.labels.outcome}:${v.value}`).sort();
    expect(outcomes).toEqual(['enqueued:1', 'joined:1']);
  });

  it('a click whose switch was queued but whose job id could not be stored is answered as queued, never "Nothing was switched"', async () => {
    const log = new CapturedLog();
    const w = await startWorld({ redisUrl: redisUrl(), name: uniqueName('slack-e2e'), logger: log.logger });
    worlds.push(w);
    const before = await w.platform.snapshot('production');
    // One Redis blip: the write that stores the queued job's id on the plan fails as a dropped
    // connection does. Everything before it (claim, audit, enqueue) went through.
    const redis = w.redis as unknown as { eval: (...args: unknown[]) => Promise<unknown> };
    const realEval = redis.eval.bind(w.redis);
    let failed = 0;
    redis.eval = (...args: unknown[]) => {
      const jobIdWrite =
        args[1] === 2 && args[4] === 'enqueued' && args[5] === 'enqueued' && args.includes('jobId');
      if (jobIdWrite && failed === 0) {
        failed += 1;
        return Promise.reject(new Error('Connection is closed.'));
      }
      return realEval(...args);
    };
    const { post, ts } = await confirmation(w);
    const confirm = button(post, 'sy1:confirm:');
    await click(w, ts, confirm.actionId, 'U0ALICE');
    const final = await finalUpdate(w, ts);
    await w.surface.idle();
    expect(failed).toBe(1);
    // The job the click queued switched production…
    const after = await w.platform.snapshot('production');
    expect(after.environment.rolledBack).toBe(true);
    expect(after.environment.currentDeploymentId).not.toBe(before.environment.currentDeploymentId);
    // …so the click was answered as queued (no "Something went wrong … Nothing was switched" to the
    // clicker), and the clicked message ends on the switch's final state.
    expect(w.fake.responses.filter(isEphemeral).map((r) => JSON.stringify(r.body))).toEqual([]);
    const clicks = await w.metrics.clicks.get();
    expect(clicks.values.map((v) => `${v.labels.outcome}:${v.value}`)).toEqual(['enqueued:1']);
    expect(String(w.fake.message(CHANNEL, ts)?.text)).toBe(String(final.args.text));
    expect(String(final.args.text)).toContain(`Traffic is on ${after.environment.currentDeploymentId}`);
    const planId = confirm.actionId.split(':').at(-1) ?? '';
    expect(
      log.lines
        .filter((l) => l.level === 40 && /could not be stored/.test(l.msg))
        .map((l) => ({ planId: l.planId, jobId: l.jobId })),
    ).toEqual([{ planId, jobId: jobIdForPlan(planId) }]);
    // …and the job id is on the plan by now (the next read of the plan stored it).
    expect((await w.flow.get(planId))?.jobId).toBe(jobIdForPlan(planId));
  });

  it('two-person rule: the requester confirms, cannot approve themselves, a second person approves', async () => {
    const w = await world({
      production: { twoPersonRule: true, allow: { slack: { users: ['U0ALICE', 'U0BOB'] } } },
    });
    const { post, ts } = await confirmation(w);
    await click(w, ts, button(post, 'sy1:confirm:').actionId, 'U0ALICE');
    const waiting = await w.fake.waitForCall('chat.update', (c) => c.args.ts === ts);
    expect(String(waiting.args.text).toLowerCase()).toContain('approv');
    const approve = button(waiting, 'sy1:approve:');
    expect(await jobCount(w)).toBe(0);

    await click(w, ts, approve.actionId, 'U0ALICE');
    const self = await w.fake.waitForResponse(isEphemeral);
    expect(JSON.stringify(self.body)).toContain(
      'asked for and confirmed this rollback of production, so someone other than',
    );
    expect(await jobCount(w)).toBe(0);

    await click(w, ts, approve.actionId, 'U0BOB');
    const final = await finalUpdate(w, ts);
    expect(blocksText(final.args.blocks as unknown[])).toContain('approved by <@U0BOB>');
    expect(await jobCount(w)).toBe(1);
  });

  it('Slack Connect: the edits mention people by user id (<@U…>), so two "alice" handles are told apart where it matters; posts name them without pinging', async () => {
    const w = await world({
      production: { twoPersonRule: true, allow: { slack: { users: ['U0ALICE', 'U0CAROL'] } } },
    });
    // A partner organisation's alice (another workspace, same legacy handle "alice"), not permitted, asks.
    const before = w.fake.callsOf('chat.postMessage').length;
    const ack = await w.requests.command({
      command: '/rollback',
      text: 'production',
      userId: 'U0PARTNERALICE',
      userName: 'alice',
    });
    expect(ack.status).toBe(200);
    const post = await w.fake.waitForCall(
      'chat.postMessage',
      (c) => c.response.ok === true && w.fake.callsOf('chat.postMessage').indexOf(c) >= before,
    );
    const ts = String(post.response.ts);
    // Posted (chat.postMessage notifies everyone it mentions): the requester by name, not pinged by
    // their own command.
    expect(blocksText(post.args.blocks as unknown[])).toContain('Requested by alice');
    expect(blocksText(post.args.blocks as unknown[])).not.toContain('<@');
    await click(w, ts, button(post, 'sy1:confirm:').actionId, 'U0CAROL');
    const waiting = await w.fake.waitForCall(
      'chat.update',
      (c) => c.args.ts === ts && /Waiting for approval/.test(blocksText(c.args.blocks as unknown[])),
    );
    const shown = blocksText(waiting.args.blocks as unknown[]);
    expect(shown).toContain(
      'Requested by <@U0PARTNERALICE>, confirmed by <@U0CAROL>. *Waiting for approval* by someone other than <@U0PARTNERALICE> and <@U0CAROL>.',
    );
    expect(shown).not.toContain('Requested by alice');
    // Our own alice (a different person) cancels: named by her id too.
    await click(w, ts, button(waiting, 'sy1:cancel:').actionId, 'U0ALICE');
    const cancelled = await w.fake.waitForCall(
      'chat.update',
      (c) => c.args.ts === ts && /Cancelled by/.test(blocksText(c.args.blocks as unknown[])),
    );
    expect(blocksText(cancelled.args.blocks as unknown[])).toContain(
      'Cancelled by <@U0ALICE>. Nothing changed.',
    );
    // /deployments is posted for everyone: its history names who acted without pinging them.
    const listed = w.fake.callsOf('chat.postMessage').length;
    await w.requests.command({
      command: '/deployments',
      text: 'production',
      userId: 'U0CAROL',
      userName: 'carol',
    });
    const list = await w.fake.waitForCall(
      'chat.postMessage',
      (c) => c.response.ok === true && w.fake.callsOf('chat.postMessage').indexOf(c) >= listed,
    );
    const activity = blocksText(list.args.blocks as unknown[]);
    expect(activity).toContain('Other requests');
    expect(activity).toMatch(/\*cancelled\* by alice · asked by alice, confirmed by carol\b/);
    expect(activity).not.toContain('<@');
  });

  it('a stale plan is not acted on: the message says what changed and offers a fresh plan', async () => {
    const w = await world();
    const { post, ts } = await confirmation(w);
    const snap = await w.platform.snapshot('production');
    // Someone moves traffic outside this plan (another rollback, straight on the platform).
    const candidates = snap.deployments.filter(
      (d) =>
        d.id !== snap.environment.currentDeploymentId && (d.status === 'ready' || d.status === 'standby'),
    );
    const elsewhere = candidates.at(-1);
    if (!elsewhere) throw new Error('demo project has no second switchable deployment');
    const moved = waitForTraffic(w.platform);
    await w.platform.rollback({
      environment: 'production',
      targetId: elsewhere.id,
      requestedBy: 'someone else',
    });
    await moved;

    await click(w, ts, button(post, 'sy1:confirm:').actionId, 'U0ALICE');
    const stale = await w.fake.waitForCall('chat.update', (c) => c.args.ts === ts);
    expect(JSON.stringify(stale.args.blocks)).toContain(elsewhere.id);
    const replan = button(stale, 'sy1:replan:');
    expect(await jobCount(w)).toBe(0);
    expect((await w.platform.snapshot('production')).environment.currentDeploymentId).toBe(elsewhere.id);

    await click(w, ts, replan.actionId, 'U0ALICE');
    const fresh = await w.fake.waitForCall(
      'chat.postMessage',
      (c) => c.args.ts === undefined && c.response.ts !== ts,
    );
    expect(fresh.response.ok).toBe(true);
    expect(buttonsOf(fresh.args.blocks as unknown[]).some((b) => b.actionId.startsWith('sy1:confirm:'))).toBe(
      true,
    );
    // A post: the clicker is named, not pinged by their own click.
    expect(blocksText(fresh.args.blocks as unknown[])).toContain('Requested by alice');
    expect(JSON.stringify(fresh.args)).not.toContain('<@');
  });

  it('bad arguments get an ephemeral usage with the valid environments or deployments, never silence', async () => {
    const w = await world();
    const cases: [string, string, RegExp][] = [
      ['/rollback', '', /production[\s\S]*preview|preview[\s\S]*production/],
      ['/rollback', 'nowhere', /production/],
      ['/rollback', 'production dep_nope', /dep_/],
      ['/promote', '', /production/],
      ['/deployments', 'a b c', /production/],
    ];
    for (const [command, text, expected] of cases) {
      const before = w.fake.responses.length;
      const ack = await w.requests.command({ command, text });
      expect(ack.status).toBe(200);
      const reply = await w.fake.waitForResponse(
        (r) => isEphemeral(r) && w.fake.responses.indexOf(r) >= before,
      );
      const body = JSON.stringify(reply.body);
      expect(body).toMatch(expected);
      expect(body).not.toMatch(/at \S+\.(ts|js):\d+/);
    }
    expect(w.fake.callsOf('chat.postMessage')).toEqual([]);
    // Every command the manifest declares is handled (usage, not silence).
    for (const command of SLACK_COMMANDS) {
      const before = w.fake.responses.length;
      await w.requests.command({ command, text: '' });
      await w.fake.waitForResponse((r) => isEphemeral(r) && w.fake.responses.indexOf(r) >= before);
    }
  });

  it('/deployments lists the environment and its Rollback buttons post a fresh confirmation', async () => {
    const w = await world();
    const ack = await w.requests.command({ command: '/deployments', text: 'production' });
    expect(ack.status).toBe(200);
    const list = await w.fake.waitForCall('chat.postMessage');
    const row = button(list, 'sy1:rollback_to:');
    await click(w, String(list.response.ts), row.actionId, 'U0ALICE');
    const plan = await w.fake.waitForCall('chat.postMessage', (c) => c.response.ts !== list.response.ts);
    expect(button(plan, 'sy1:confirm:').actionId).toMatch(/^sy1:confirm:plan_/);
  });

  it('/deployments during a switch says it is running and offers no Rollback/Promote buttons', async () => {
    // The platform's switch stays under way until `held` opens; `held.reached` once the worker is on it.
    const held = gate();
    const w = await startWorld({
      redisUrl: redisUrl(),
      name: uniqueName('slack-e2e'),
      wrapPlatform: (local) =>
        Object.assign(Object.create(local) as LocalPlatform, {
          operation: async (ref: Parameters<LocalPlatform['operation']>[0]) => {
            await held.wait();
            return local.operation(ref);
          },
        }),
    });
    worlds.push(w);
    try {
      const { post, ts } = await confirmation(w);
      await click(w, ts, button(post, 'sy1:confirm:').actionId, 'U0ALICE');
      await held.reached;
      const before = w.fake.callsOf('chat.postMessage').length;
      await w.requests.command({ command: '/deployments', text: 'production', userId: 'U0BOB' });
      const list = await w.fake.waitForCall(
        'chat.postMessage',
        (c) => w.fake.callsOf('chat.postMessage').indexOf(c) >= before,
      );
      const blocks = list.args.blocks as unknown[];
      // Posted for bob: the running switch's requester by name, not pinged by someone else's command.
      expect(blocksText(blocks)).toMatch(
        /A rollback to\* `dep_\w+` \*is running\* \(requested by alice\), started/,
      );
      expect(blocksText(blocks)).not.toContain('<@');
      expect(buttonsOf(blocks).filter((b) => /^sy1:(rollback_to|promote):/.test(b.actionId))).toEqual([]);
    } finally {
      held.open();
    }
  });

  it('with the worker in another process, a late click on a finished switch leaves its outcome on the message', async () => {
    // The bot runs no worker (SWITCHYARD_WORKER=off); a separate worker edits with its own reporter.
    const w = await startWorld({ redisUrl: redisUrl(), name: uniqueName('slack-e2e'), worker: false });
    worlds.push(w);
    const reporter = new SlackReporter({ client: createReporterClient(w.fake.token, w.fake.apiUrl) });
    const worker = startSwitchWorker({
      redisUrl: redisUrl(),
      queueName: w.queue.queueName,
      platform: w.platform,
      reporter,
      clock: systemClock,
      verify: { timeoutMs: 5_000, intervalMs: 5 },
      lockDurationMs: 5_000,
      concurrency: 1,
      logger: silentLogger,
    });
    try {
      await worker.worker.waitUntilReady();
      const { post, ts } = await confirmation(w);
      const confirm = button(post, 'sy1:confirm:');
      await click(w, ts, confirm.actionId, 'U0ALICE');
      const final = await finalUpdate(w, ts);
      await reporter.flush();
      await w.surface.reporter.flush();
      // A late double click (or a retried delivery) on the same message joins the finished job.
      const before = w.fake.callsOf('chat.update').length;
      await click(w, ts, confirm.actionId, 'U0ALICE');
      await w.fake.waitForCall('chat.update', (c) => w.fake.callsOf('chat.update').indexOf(c) >= before);
      await w.surface.reporter.flush();
      expect(String(w.fake.message(CHANNEL, ts)?.text)).toBe(String(final.args.text));
      expect(await jobCount(w)).toBe(1);
    } finally {
      await worker.close();
    }
  });

  it('a click on a confirmation whose attach failed when it was posted makes it follow its switch to the end', async () => {
    const w = await world();
    const before = await w.platform.snapshot('production');
    // The attach after the post fails once (a Redis blip): alice is told the command failed, and the
    // confirmation stays in the channel with working buttons, listed nowhere.
    const attach = w.flow.attach.bind(w.flow);
    let failed = 0;
    w.flow.attach = (planId, ref) => {
      if (failed++ === 0) return Promise.reject(new Error('Connection is closed.'));
      return attach(planId, ref);
    };
    const { post, ts } = await confirmation(w);
    await w.fake.waitForResponse(isEphemeral);
    expect(failed).toBe(1);
    const confirm = button(post, 'sy1:confirm:');
    const planId = confirm.actionId.split(':').at(-1) as string;
    expect((await w.flow.get(planId))?.messages).toEqual([]);

    // Bob clicks Rollback on it: the switch runs, and the worker edits this message to its end.
    await click(w, ts, confirm.actionId, 'U0BOB');
    await finalUpdate(w, ts);
    const after = await w.platform.snapshot('production');
    expect(after.environment.currentDeploymentId).not.toBe(before.environment.currentDeploymentId);
    await w.surface.idle();
    await w.surface.reporter.flush();
    expect(String(w.fake.message(CHANNEL, ts)?.text)).toContain('Traffic is on');
    expect((await w.flow.get(planId))?.messages.map((m) => m.messageId)).toEqual([ts]);
  });

  describe('a click on a confirmation its plan does not list, while the switch runs', () => {
    /**
     * Two copies of one plan: alice's (listed) and bob's, whose attach failed (listed nowhere). Alice
     * confirms on hers; the switch is held in the platform's operation, its progress so far reported to
     * her copy only (the worker is on the standby target's reactivation), and its worker reports
     * nothing more until `held` opens.
     */
    /** The step the held switch is on (the platform's operation is polled while reactivating). */
    const RUNNING = /:hourglass_flowing_sand: Reactivating standby target[^"]*\(running\)/;

    async function heldWithUnlistedCopy() {
      const held = gate();
      const w = await startWorld({
        redisUrl: redisUrl(),
        name: uniqueName('slack-e2e'),
        wrapPlatform: (local) =>
          Object.assign(Object.create(local) as LocalPlatform, {
            operation: async (ref: Parameters<LocalPlatform['operation']>[0]) => {
              await held.wait();
              return local.operation(ref);
            },
          }),
      });
      worlds.push(w);
      // Attaches as they settle (a command's reply does not wait for its message's attach); `failing`
      // makes the next one fail as a Redis blip does.
      const attach = w.flow.attach.bind(w.flow);
      const settled = new Set<string>();
      const attachedEvents = new EventEmitter();
      let failing = false;
      w.flow.attach = async (planId, ref, opts) => {
        try {
          if (failing) {
            failing = false;
            throw new Error('Connection is closed.');
          }
          return await attach(planId, ref, opts);
        } finally {
          settled.add(ref.messageId);
          attachedEvents.emit('settled');
        }
      };
      const attached = (ts: string) =>
        new Promise<void>((resolve) => {
          const check = () => {
            if (!settled.has(ts)) return;
            attachedEvents.off('settled', check);
            resolve();
          };
          attachedEvents.on('settled', check);
          check();
        });
      const listed = await confirmation(w);
      await attached(listed.ts);
      failing = true;
      const unlisted = await confirmation(w, 'production', 'U0BOB');
      await attached(unlisted.ts);
      expect(failing).toBe(false);
      const confirm = button(listed.post, 'sy1:confirm:');
      expect(button(unlisted.post, 'sy1:confirm:').actionId).toBe(confirm.actionId);
      await click(w, listed.ts, confirm.actionId, 'U0ALICE');
      await held.reached;
      await w.fake.waitForCall(
        'chat.update',
        (c) => c.args.ts === listed.ts && RUNNING.test(JSON.stringify(c.args.blocks)),
      );
      const planId = confirm.actionId.split(':').at(-1) as string;
      expect((await w.flow.get(planId))?.messages.map((m) => m.messageId)).toEqual([listed.ts]);
      return { w, held, listed, unlisted, planId };
    }

    /** What the message shows now: its buttons' kinds and its blocks. */
    function shown(w: World, ts: string) {
      const blocks = (w.fake.message(CHANNEL, ts)?.blocks ?? []) as unknown[];
      return { buttons: buttonsOf(blocks).map((b) => b.actionId.split(':')[1]), text: blocksText(blocks) };
    }

    it('Confirm on it joins the switch: the message shows the step the switch is on at once, then its end', async () => {
      const { w, held, unlisted, planId } = await heldWithUnlistedCopy();
      try {
        await click(w, unlisted.ts, `sy1:confirm:${planId}`, 'U0BOB');
        await w.surface.idle();
        // Not the plan any more, nor "Confirmed… progress follows": where the switch stands.
        expect(shown(w, unlisted.ts).buttons).toEqual([]);
        expect(shown(w, unlisted.ts).text).toMatch(RUNNING);
      } finally {
        held.open();
      }
      await finalUpdate(w, unlisted.ts);
      await w.surface.reporter.flush();
      expect(String(w.fake.message(CHANNEL, unlisted.ts)?.text)).toContain('Traffic is on');
      expect(await jobCount(w)).toBe(1);
    });

    it('a Cancel on it is too late: the clicker is told, and the message shows the running switch, then its end', async () => {
      const { w, held, unlisted, planId } = await heldWithUnlistedCopy();
      try {
        const from = w.fake.responses.length;
        await click(w, unlisted.ts, `sy1:cancel:${planId}`, 'U0BOB');
        const told = await w.fake.waitForResponse(
          (r) => isEphemeral(r) && w.fake.responses.indexOf(r) >= from,
        );
        expect(JSON.stringify(told.body)).toContain('Too late to cancel');
        await w.surface.idle();
        expect(shown(w, unlisted.ts).buttons).toEqual([]);
        expect(shown(w, unlisted.ts).text).toMatch(RUNNING);
      } finally {
        held.open();
      }
      await finalUpdate(w, unlisted.ts);
      await w.surface.reporter.flush();
      expect(String(w.fake.message(CHANNEL, unlisted.ts)?.text)).toContain('Traffic is on');
    });
  });

  it('a late click on a switch that ran before traffic moved again tells the clicker, and keeps the record', async () => {
    const w = await world();
    const { post, ts } = await confirmation(w);
    const confirm = button(post, 'sy1:confirm:');
    await click(w, ts, confirm.actionId, 'U0ALICE');
    const final = await finalUpdate(w, ts);
    await w.surface.reporter.flush();
    // Traffic moves on (on the dashboard, say).
    await w.platform.promote({ environment: 'production', targetId: 'dep_4kq9wz' });
    while ((await w.platform.snapshot('production')).environment.currentDeploymentId !== 'dep_4kq9wz') {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    // A stale client (or a late delivery) clicks the old confirm button again.
    const from = w.fake.responses.length;
    await click(w, ts, confirm.actionId, 'U0ALICE');
    const reply = await w.fake.waitForResponse((r) => isEphemeral(r) && w.fake.responses.indexOf(r) >= from);
    expect(JSON.stringify(reply.body)).toMatch(
      /already ran \(succeeded, .*\); production now serves dep_4kq9wz/,
    );
    await w.surface.reporter.flush();
    // The message still records what that switch did; no second job.
    expect(w.fake.message(CHANNEL, ts)?.text).toBe(final.args.text);
    expect(await jobCount(w)).toBe(1);
  });

  it('tells the user to invite the bot when it cannot post in the channel', async () => {
    const w = await world();
    await w.requests.command({ command: '/rollback', text: 'production', channelId: 'C0NOBOT' });
    const reply = await w.fake.waitForResponse(isEphemeral);
    expect(JSON.stringify(reply.body)).toContain('/invite');
  });

  it('in a direct message (D…, or a group DM mpdm-…) it says to run the command in a channel Switchyard is in, not to /invite it', async () => {
    const w = await world();
    const dms = [
      { channelId: 'D0CAROLDAVE', channelName: 'directmessage' },
      { channelId: 'G0CAROLDAVEEVE', channelName: 'mpdm-carol--dave--eve-1' },
    ];
    for (const dm of dms) {
      const from = w.fake.responses.length;
      await w.requests.command({ command: '/rollback', text: 'production', userId: 'U0CAROL', ...dm });
      const reply = await w.fake.waitForResponse(
        (r) => isEphemeral(r) && w.fake.responses.indexOf(r) >= from,
      );
      const post = w.fake.callsOf('chat.postMessage').at(-1);
      expect(post?.args.channel).toBe(dm.channelId);
      expect(post?.response.error).toBe('channel_not_found');
      const text = JSON.stringify(reply.body);
      expect(text).not.toContain('/invite');
      expect(text).toContain('Run the command in a channel Switchyard was invited to');
    }
  });
});

/**
 * Slack notifies everyone a posted message mentions (`chat.postMessage`; Slack has no
 * `allowed_mentions`), and, as we understand it, nobody an edit (`chat.update`) mentions. So posts name
 * people and the edits mention them, where the two-person rule needs to know who is who.
 */
describe('Slack mentions: posts never ping, edits identify', () => {
  /** The next chat.postMessage Slack took, from now on. */
  function nextPost(w: World): () => Promise<RecordedCall> {
    const before = w.fake.callsOf('chat.postMessage').length;
    return () =>
      w.fake.waitForCall(
        'chat.postMessage',
        (c) => c.response.ok === true && w.fake.callsOf('chat.postMessage').indexOf(c) >= before,
      );
  }

  it('/deployments (posted to the channel) names the people of its history without mentioning them', async () => {
    const w = await world();
    // alice asks for a rollback and cancels it: the audit records her.
    const { post, ts } = await confirmation(w);
    await click(w, ts, button(post, 'sy1:cancel:').actionId, 'U0ALICE');
    await w.fake.waitForCall(
      'chat.update',
      (c) => c.args.ts === ts && /Cancelled by/.test(blocksText(c.args.blocks as unknown[])),
    );

    // Later bob looks at the environment: alice took no part in that message.
    const listed = nextPost(w);
    await w.requests.command({
      command: '/deployments',
      text: 'production',
      userId: 'U0BOB',
      userName: 'bob',
    });
    const list = await listed();
    const shown = blocksText(list.args.blocks as unknown[]);
    expect(shown).toContain('Other requests');
    expect(shown).toMatch(/\*cancelled\* by alice\b/);
    expect(JSON.stringify(list.args)).not.toContain('<@');
  });

  it("a /rollback that joins someone else's plan does not mention its first requester; the approval prompt (an edit) mentions asker and confirmer", async () => {
    const w = await world({
      production: { twoPersonRule: true, allow: { slack: { users: ['U0ALICE', 'U0BOB', 'U0CAROL'] } } },
    });
    await confirmation(w, 'production', 'U0ALICE');

    // bob types the same command on the same state: it joins alice's plan, posted once more.
    const joined = nextPost(w);
    await w.requests.command({ command: '/rollback', text: 'production', userId: 'U0BOB', userName: 'bob' });
    const second = await joined();
    const posted = blocksText(second.args.blocks as unknown[]);
    expect(posted).toContain('sy1:confirm:');
    expect(posted).toContain('Requested by alice');
    expect(JSON.stringify(second.args)).not.toContain('<@');

    // carol confirms on bob's message: the message is edited, and the edit says who is who by id.
    const ts = String(second.response.ts);
    await click(w, ts, button(second, 'sy1:confirm:').actionId, 'U0CAROL');
    const waiting = await w.fake.waitForCall(
      'chat.update',
      (c) => c.args.ts === ts && /Waiting for approval/.test(blocksText(c.args.blocks as unknown[])),
    );
    expect(blocksText(waiting.args.blocks as unknown[])).toContain(
      'Requested by <@U0ALICE>, confirmed by <@U0CAROL>. *Waiting for approval* by someone other than <@U0ALICE> and <@U0CAROL>.',
    );
  });
});
