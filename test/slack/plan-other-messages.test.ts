/**
 * One plan shown in two Slack messages (alice and bob both typed `/rollback production` on the same
 * state), clicked on one of them: the other message shows the same state (waiting for approval, then
 * cancelled), edited with `chat.update` through the Slack poster. Found in review (a chaos run): the
 * other message kept "Waiting for approval" and a live Approve button after the plan was cancelled.
 * The whole app (handlers/app.ts) with the real Slack surface against the wire-level fake Slack; every
 * wait is on an event (a fake Slack call, a message attached, the ChatService's background edits).
 */
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { SurfaceFactory } from '../../handlers/app.js';
import { slackSurface } from '../../handlers/slack/surface.js';
import type { ChatService } from '../../src/chat.js';
import { type Clock, systemClock } from '../../src/clock.js';
import { buttonsOf, SlackRequests } from '../fakes/slack/requests.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { startTestSwitchyard, type TestSwitchyard } from '../support/switchyard.js';

const SECRET = 'other-messages-signing-secret';
const CHANNEL = 'C0PROD';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  offset.ms = 0;
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
  readonly fake: FakeSlack;
  readonly app: TestSwitchyard;
  readonly requests: SlackRequests;
  /** Resolves once the message `ts` was attached to its plan (its command handled to the end). */
  attached(ts: string): Promise<void>;
}

/** The system clock moved forward by `offset.ms` (a plan's hour passes at once; waits are real). */
const offset = { ms: 0 };
const shiftedClock: Clock = {
  now: () => Date.now() + offset.ms,
  sleep: (ms, signal) => systemClock.sleep(ms, signal),
};

async function rig(): Promise<Rig> {
  const fake = await new FakeSlack({ channels: { [CHANNEL]: 'incidents' } }).start();
  closers.push(() => fake.close());
  const done = new Set<string>();
  const events = new EventEmitter();
  // The real Slack surface, whose ChatService reports each message it attached (same object
  // underneath: only `attach` is wrapped).
  const slack: SurfaceFactory = (ctx) => {
    const chat = Object.create(ctx.chat) as ChatService;
    chat.attach = async (planId, ref) => {
      const out = await ctx.chat.attach(planId, ref);
      done.add(ref.messageId);
      events.emit('attached');
      return out;
    };
    return slackSurface({ ...ctx, chat, clock: skippingClock() });
  };
  const app = await startTestSwitchyard({
    env: { SLACK_BOT_TOKEN: fake.token, SLACK_SIGNING_SECRET: SECRET, SLACK_API_URL: fake.apiUrl },
    file: {
      local: { reactivationTime: '0ms', buildTime: '0ms' },
      environments: { production: { twoPersonRule: true } },
    },
    factories: [slack],
    clock: shiftedClock,
  });
  closers.push(() => app.close());
  return {
    fake,
    app,
    requests: new SlackRequests(`${app.baseUrl}/slack/events`, SECRET, fake),
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

/** `/rollback production` typed by `user`: the ts of the confirmation, once attached to its plan. */
async function rollback(r: Rig, user: string): Promise<string> {
  const before = r.fake.callsOf('chat.postMessage').length;
  const ack = await r.requests.command({ command: '/rollback', text: 'production', userId: user });
  expect(ack.status).toBe(200);
  const post = await r.fake.waitForCall(
    'chat.postMessage',
    (c) => c.response.ok === true && r.fake.callsOf('chat.postMessage').indexOf(c) >= before,
  );
  const ts = String(post.response.ts);
  await r.attached(ts);
  return ts;
}

/**
 * `user` clicks the `kind` button of message `ts`; resolves once the clicked message shows the answer
 * (`answer` in its text) and the plan's other messages were edited too.
 */
async function click(r: Rig, ts: string, kind: string, user: string, answer: RegExp): Promise<void> {
  const message = r.fake.message(CHANNEL, ts);
  const id = buttonsOf(message?.blocks ?? []).find((b) => b.actionId.startsWith(`sy1:${kind}:`))?.actionId;
  if (id === undefined) throw new Error(`no ${kind} button on ${ts}`);
  expect((await r.requests.click({ actionId: id, messageTs: ts, userId: user })).status).toBe(200);
  await r.fake.waitForCall('chat.update', (c) => c.args.ts === ts && answer.test(JSON.stringify(c.args)));
  await r.app.chat.idle();
}

/** What message `ts` shows now: its title (the header block) and which of the plan's buttons it offers. */
function shown(r: Rig, ts: string) {
  const blocks = (r.fake.message(CHANNEL, ts)?.blocks ?? []) as { type?: string; text?: { text?: string } }[];
  return {
    title: blocks.find((b) => b.type === 'header')?.text?.text,
    buttons: buttonsOf(blocks).map((b) => /^sy1:([a-z_]+):/.exec(b.actionId)?.[1]),
  };
}

const waiting = expect.stringMatching(/Waiting for approval: roll back production/);
const cancelled = expect.stringMatching(/Cancelled: roll back production/);

describe('Slack: a plan shown in two messages, clicked on one', () => {
  it('two-person rule: a confirm on one message makes the other wait for approval; a Cancel on that one cancels both', async () => {
    const r = await rig();
    const m1 = await rollback(r, 'U0ALICE');
    const m2 = await rollback(r, 'U0BOB');
    expect(shown(r, m2)).toEqual({
      title: expect.stringMatching(/Roll back production .*\?$/),
      buttons: ['confirm', 'cancel'],
    });

    await click(r, m1, 'confirm', 'U0ALICE', /Waiting for approval/);
    expect(shown(r, m2)).toEqual({ title: waiting, buttons: ['approve', 'cancel'] });

    await click(r, m2, 'cancel', 'U0BOB', /Cancelled/);
    expect(shown(r, m1)).toEqual({ title: cancelled, buttons: [] });
    expect(shown(r, m2)).toEqual({ title: cancelled, buttons: [] });
  });

  it('a plan whose hour runs out with nobody clicking: the sweep shows both messages expired, offering only a fresh plan', async () => {
    const r = await rig();
    const m1 = await rollback(r, 'U0ALICE');
    const m2 = await rollback(r, 'U0BOB');
    offset.ms = 3_600_000;
    expect(await r.app.chat.expireDue()).toHaveLength(1);
    await r.app.chat.idle();
    const expired = expect.stringMatching(/^Expired: roll back production/);
    expect(shown(r, m1)).toEqual({ title: expired, buttons: ['replan'] });
    expect(shown(r, m2)).toEqual({ title: expired, buttons: ['replan'] });
  });
});
