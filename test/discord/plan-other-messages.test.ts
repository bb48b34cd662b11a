/**
 * One plan shown in several messages (the same `/rollback production` typed twice on the same state
 * joins one plan), on Discord: a click that closes the plan (Cancel, an Approve found out of date) or
 * makes it wait for approval is shown on every message of the plan, not only the clicked one — two
 * Discord messages, a Discord and a Slack message (a click on either changes the other), a Discord and
 * a console message. The Slack and console sides have their own tests (test/slack/ and
 * test/console/plan-other-messages.test.ts); these are the Discord parity checks. The whole app
 * (handlers/app.ts) with the real Discord surface (and the real Slack surface) against the fake Discord
 * and the fake Slack; every wait is on an event (a fake's recorded call, a message attached, the
 * ChatService's background edits, a platform event).
 */
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { SurfaceFactory } from '../../handlers/app.js';
import { slackSurface } from '../../handlers/slack/surface.js';
import { discordSurface } from '../../handlers/surfaces.js';
import type { ChatService } from '../../src/chat.js';
import type { Clock } from '../../src/clock.js';
import type { FakeDiscord, FakeUser, StoredMessage } from '../fakes/discord/server.js';
import { startFakeDiscord } from '../fakes/discord/server.js';
import { SlackRequests, buttonsOf as slackButtons } from '../fakes/slack/requests.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { startTestSwitchyard, type TestSwitchyard } from '../support/switchyard.js';
import { buttonId, registerCommandsOn, textOf, waitForMessage, waitForPost } from './harness.js';

const SECRET = 'discord-other-messages-signing-secret';
const SLACK_CHANNEL = 'C0PROD';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
});

/**
 * The system clock, except that waiting takes no real time (the Slack reporter's pacing of edits of
 * one message passes at once, in order).
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

interface Rig {
  readonly fake: FakeDiscord;
  readonly slack: FakeSlack | undefined;
  readonly requests: SlackRequests | undefined;
  readonly app: TestSwitchyard;
  /** The fake Discord member called `name` (the same one each time). */
  person(name: string): FakeUser;
  /** Resolves once the Slack message `ts` was attached to its plan. */
  attached(ts: string): Promise<void>;
}

/** The app with the Discord surface, and the Slack one with `slack`; production needs two people. */
async function rig(opts: { slack?: boolean } = {}): Promise<Rig> {
  const fake = await startFakeDiscord();
  closers.push(() => fake.close());
  await registerCommandsOn(fake);
  let slack: FakeSlack | undefined;
  const factories: SurfaceFactory[] = [discordSurface];
  const done = new Set<string>();
  const events = new EventEmitter();
  const env: Record<string, string> = {
    DISCORD_TOKEN: fake.token,
    DISCORD_APPLICATION_ID: fake.applicationId,
    DISCORD_API_URL: fake.apiUrl,
  };
  if (opts.slack === true) {
    const s = await new FakeSlack({ channels: { [SLACK_CHANNEL]: 'incidents' } }).start();
    slack = s;
    closers.push(() => s.close());
    Object.assign(env, { SLACK_BOT_TOKEN: s.token, SLACK_SIGNING_SECRET: SECRET, SLACK_API_URL: s.apiUrl });
    // The real Slack surface, whose ChatService reports each message it attached (same object
    // underneath: only `attach` is wrapped).
    factories.unshift((ctx) => {
      const chat = Object.create(ctx.chat) as ChatService;
      chat.attach = async (planId, ref) => {
        const out = await ctx.chat.attach(planId, ref);
        done.add(ref.messageId);
        events.emit('attached');
        return out;
      };
      return slackSurface({ ...ctx, chat, clock: skippingClock() });
    });
  }
  const app = await startTestSwitchyard({
    env,
    file: {
      local: { reactivationTime: '0ms', buildTime: '0ms' },
      environments: { production: { twoPersonRule: true } },
    },
    factories,
  });
  closers.push(() => app.close());
  const people = new Map<string, FakeUser>();
  return {
    fake,
    slack,
    requests: slack ? new SlackRequests(`${app.baseUrl}/slack/events`, SECRET, slack) : undefined,
    app,
    person(name) {
      let u = people.get(name);
      if (!u) {
        u = fake.user(name);
        people.set(name, u);
      }
      return u;
    },
    attached: (ts) =>
      new Promise((resolve) => {
        const check = () => {
          if (!done.has(ts)) return;
          events.off('attached', check);
          resolve();
        };
        events.on('attached', check);
        check();
      }),
  };
}

/** `/rollback production` on Discord as `username`: the posted confirmation, once attached. */
async function discordRollback(r: Rig, username: string): Promise<StoredMessage> {
  const from = r.fake.calls.length;
  const i = r.fake.slash({
    command: 'rollback',
    options: [{ name: 'environment', value: 'production' }],
    user: r.person(username),
    roles: [r.fake.roles.deployers],
  });
  await r.fake.waitForCallback(i);
  const posted = await waitForPost(r.fake, r.fake.channels.ops, from);
  // The reply pointing at the message is edited after the attach.
  await r.fake.waitForRequest(
    (c) =>
      c.method === 'PATCH' && c.path === `/webhooks/${r.fake.applicationId}/${i.token}/messages/@original`,
    { from },
  );
  return posted;
}

/**
 * `username` clicks `label` on Discord message `m`; resolves once `m` shows `answer` and the plan's
 * other messages were edited too.
 */
async function discordClick(r: Rig, m: StoredMessage, label: string, username: string, answer: RegExp) {
  const from = r.fake.calls.length;
  r.fake.click({
    messageId: m.id,
    customId: buttonId(r.fake.messages.get(m.id) ?? m, label),
    user: r.person(username),
    roles: [r.fake.roles.deployers],
  });
  await waitForMessage(r.fake, m.id, (t) => answer.test(t), from);
  await r.app.chat.idle();
}

/** What Discord message `id` shows now: its title and which of the plan's buttons it offers. */
function discordShown(r: Rig, id: string) {
  const m = r.fake.messages.get(id);
  if (!m) throw new Error(`no message ${id}`);
  const title = String((m.embeds[0] as { title?: string } | undefined)?.title ?? '');
  const buttons = m.components
    .flatMap((row) => (row.components as { custom_id?: string }[] | undefined) ?? [])
    .map((b) => /^sy1:([a-z_]+):/.exec(b.custom_id ?? '')?.[1]);
  return { title, buttons, text: textOf(m) };
}

/** `/rollback production` on Slack as `user`: the ts of the confirmation, once attached. */
async function slackRollback(r: Rig, user: string): Promise<string> {
  const slack = r.slack as FakeSlack;
  const before = slack.callsOf('chat.postMessage').length;
  const ack = await (r.requests as SlackRequests).command({
    command: '/rollback',
    text: 'production',
    userId: user,
  });
  expect(ack.status).toBe(200);
  const post = await slack.waitForCall(
    'chat.postMessage',
    (c) => c.response.ok === true && slack.callsOf('chat.postMessage').indexOf(c) >= before,
  );
  const ts = String(post.response.ts);
  await r.attached(ts);
  return ts;
}

/** `user` clicks the `kind` button of Slack message `ts`; resolves once it shows `answer`, and the rest. */
async function slackClick(r: Rig, ts: string, kind: string, user: string, answer: RegExp) {
  const slack = r.slack as FakeSlack;
  const message = slack.message(SLACK_CHANNEL, ts);
  const id = slackButtons(message?.blocks ?? []).find((b) => b.actionId.startsWith(`sy1:${kind}:`))?.actionId;
  if (id === undefined) throw new Error(`no ${kind} button on ${ts}`);
  const res = await (r.requests as SlackRequests).click({ actionId: id, messageTs: ts, userId: user });
  expect(res.status).toBe(200);
  await slack.waitForCall('chat.update', (c) => c.args.ts === ts && answer.test(JSON.stringify(c.args)));
  await r.app.chat.idle();
}

/** What Slack message `ts` shows now: its title (the header block) and the plan's buttons it offers. */
function slackShown(r: Rig, ts: string) {
  const blocks = ((r.slack as FakeSlack).message(SLACK_CHANNEL, ts)?.blocks ?? []) as {
    type?: string;
    text?: { text?: string };
  }[];
  return {
    title: blocks.find((b) => b.type === 'header')?.text?.text,
    buttons: slackButtons(blocks).map((b) => /^sy1:([a-z_]+):/.exec(b.actionId)?.[1]),
  };
}

async function post(r: Rig, path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${r.app.baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return (await res.json()) as Record<string, unknown>;
}

/** Resolves once deployment `id` serves production (waits on the platform's events). */
async function untilLive(r: Rig, id: string): Promise<void> {
  for (;;) {
    let off: (() => void) | undefined;
    const changed = new Promise<void>((resolve) => {
      off = r.app.platform.subscribe?.(() => resolve());
    });
    try {
      if ((await r.app.platform.snapshot('production')).environment.currentDeploymentId === id) return;
      await changed;
    } finally {
      off?.();
    }
  }
}

const waiting = expect.stringMatching(/Waiting for approval: roll back production/);
const cancelled = expect.stringMatching(/Cancelled: roll back production/);

describe('Discord: a plan shown in two messages, clicked on one', () => {
  it('a confirm on one makes the other wait for approval; a Cancel on that one cancels both', async () => {
    const r = await rig();
    const m1 = await discordRollback(r, 'alice');
    const m2 = await discordRollback(r, 'bob');
    expect(discordShown(r, m2.id).buttons).toEqual(['confirm', 'cancel']);
    await discordClick(r, m1, 'Rollback', 'alice', /Waiting for approval/);
    expect(discordShown(r, m2.id)).toMatchObject({ title: waiting, buttons: ['approve', 'cancel'] });
    await discordClick(r, m2, 'Cancel', 'bob', /Cancelled/);
    expect(discordShown(r, m1.id)).toMatchObject({ title: cancelled, buttons: [] });
    expect(discordShown(r, m2.id)).toMatchObject({ title: cancelled, buttons: [] });
  });

  it('an Approve found out of date on one shows the other out of date too', async () => {
    const r = await rig();
    const m1 = await discordRollback(r, 'alice');
    await discordClick(r, m1, 'Rollback', 'alice', /Waiting for approval/);
    const m2 = await discordRollback(r, 'bob');
    expect(discordShown(r, m2.id).title).toMatch(/Waiting for approval/);
    // A push moves production on before anyone approves.
    const pushed = await post(r, '/console/api/push', {
      environment: 'production',
      branch: 'main',
      user: 'dana',
    });
    await untilLive(r, String(pushed.deploymentId));
    await discordClick(r, m1, 'Approve', 'carol', /Out of date/);
    expect(discordShown(r, m2.id)).toMatchObject({
      title: expect.stringMatching(/Out of date: roll back production/),
      buttons: ['replan'],
    });
  });
});

describe('Slack and Discord: one plan on both surfaces', () => {
  it('a confirm on Slack makes the Discord copy wait; a Cancel on Discord cancels the Slack copy', async () => {
    const r = await rig({ slack: true });
    const s1 = await slackRollback(r, 'U0ALICE');
    const d1 = await discordRollback(r, 'bob');
    expect(discordShown(r, d1.id).buttons).toEqual(['confirm', 'cancel']);
    await slackClick(r, s1, 'confirm', 'U0ALICE', /Waiting for approval/);
    expect(discordShown(r, d1.id)).toMatchObject({ title: waiting, buttons: ['approve', 'cancel'] });
    await discordClick(r, d1, 'Cancel', 'bob', /Cancelled/);
    expect(slackShown(r, s1)).toEqual({ title: cancelled, buttons: [] });
  });

  it('a confirm on Discord makes the Slack copy wait; a Cancel on Slack cancels the Discord copy', async () => {
    const r = await rig({ slack: true });
    const d1 = await discordRollback(r, 'alice');
    const s1 = await slackRollback(r, 'U0BOB');
    await discordClick(r, d1, 'Rollback', 'alice', /Waiting for approval/);
    expect(slackShown(r, s1)).toEqual({ title: waiting, buttons: ['approve', 'cancel'] });
    await slackClick(r, s1, 'cancel', 'U0BOB', /Cancelled/);
    expect(discordShown(r, d1.id)).toMatchObject({ title: cancelled, buttons: [] });
  });
});

describe('the console and Discord: one plan on both', () => {
  it('a confirm on Discord shows on the console copy; a Cancel in the console cancels the Discord copy', async () => {
    const r = await rig();
    const c1 = String(
      (await post(r, '/console/api/command', { user: 'local', text: '/rollback production' })).messageId,
    );
    const d1 = await discordRollback(r, 'alice');
    await discordClick(r, d1, 'Rollback', 'alice', /Waiting for approval/);
    const res = await fetch(`${r.app.baseUrl}/console/api/timeline?user=nobody`);
    const { entries } = (await res.json()) as {
      entries: { id: string; message?: { title?: string; buttons: { actionId: string }[] } }[];
    };
    const c = entries.find((e) => e.id === c1);
    expect(c?.message?.title).toMatch(/Waiting for approval/);
    const cancel = c?.message?.buttons.find((b) => b.actionId.startsWith('sy1:cancel:'))?.actionId;
    expect(
      (await post(r, '/console/api/action', { user: 'local', actionId: cancel, messageId: c1 })).outcome,
    ).toBe('cancelled');
    await r.app.chat.idle();
    expect(discordShown(r, d1.id)).toMatchObject({ title: cancelled, buttons: [] });
  });
});
