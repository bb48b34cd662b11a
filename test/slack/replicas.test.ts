/**
 * Slack across bot replicas, with the switch worker in another process: every message showing a plan
 * ends on its switch's final state, whichever replica posted or edited it and however late its call
 * to Slack landed. Holds on each replica's way to Slack (test/support/holding-proxy.ts) and on the
 * platform put the race in the order each test names; tests wait on events, never on sleeps.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { LocalPlatform } from '../../src/platform/local/platform.js';
import type { DeployPlatform } from '../../src/platform/port.js';
import { jobIdForPlan } from '../../src/queue.js';
import { buttonsOf } from '../fakes/slack/requests.js';
import type { RecordedCall } from '../fakes/slack/server.js';
import { gate } from '../support/gate.js';
import type { ProxiedCall } from '../support/holding-proxy.js';
import { REPLICAS_CHANNEL, type Replica, type Replicas, startReplicas } from './replicas.js';

let r: Replicas | undefined;
/** Gates to open before closing: a failed test must not leave a worker waiting at one. */
const opens: (() => void)[] = [];
afterEach(async () => {
  for (const open of opens.splice(0)) open();
  await r?.close();
  r = undefined;
}, 60_000);

/** Calls of one Slack Web API method through a proxy. */
const slack =
  (method: string) =>
  (call: ProxiedCall): boolean =>
    call.path === `/api/${method}`;

/** What a person sees of a Slack call's message: blocks and fallback text. */
const shown = (m: { blocks?: unknown; text?: unknown } | undefined): string =>
  `${JSON.stringify(m?.blocks ?? [])}${String(m?.text ?? '')}`;

/** The kinds of the buttons a stored message still offers (`confirm`, `approve`, …). */
const buttons = (m: { blocks?: readonly unknown[] } | undefined): string[] =>
  buttonsOf([...(m?.blocks ?? [])]).map((b) => b.actionId.split(':')[1] ?? '');

function actionOf(post: RecordedCall, kind: string): string {
  const found = buttonsOf(post.args.blocks as unknown[]).find((b) => b.actionId.startsWith(`sy1:${kind}:`));
  if (!found) throw new Error(`no ${kind} button`);
  return found.actionId;
}

/** The platform with every rollback held at `g` before it moves traffic (the job is switching). */
function heldSwitch(local: LocalPlatform, g: ReturnType<typeof gate>): DeployPlatform {
  return new Proxy(local, {
    get(target, prop, receiver) {
      if (prop === 'rollback') {
        return async (...args: Parameters<LocalPlatform['rollback']>) => {
          await g.wait();
          return target.rollback(...args);
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Alice's `/rollback production` on `replica`: its post, and the plan's job id. */
async function request(x: Replicas, replica: Awaited<ReturnType<Replicas['replica']>>, user = 'alice') {
  const before = x.fake.callsOf('chat.postMessage').length;
  await replica.requests.command({
    command: '/rollback',
    text: 'production',
    userId: `U0${user.toUpperCase()}`,
    userName: user,
  });
  const post = await x.fake.waitForCall(
    'chat.postMessage',
    (c) => x.fake.callsOf('chat.postMessage').indexOf(c) >= before,
  );
  const confirm = actionOf(post, 'confirm');
  return { post, ts: String(post.response.ts), confirm, jobId: jobIdForPlan(confirm.split(':')[2] ?? '') };
}

/** Alice clicks Confirm on her request's message, delivered to `replica`. */
function aliceConfirms(replica: Replica, request: { readonly confirm: string; readonly ts: string }) {
  return replica.requests.click({
    actionId: request.confirm,
    messageTs: request.ts,
    userId: 'U0ALICE',
    userName: 'alice',
  });
}

describe('a /rollback that joins the running switch on another replica', () => {
  it('ends on the final state when the switch ended while its message was being posted', async () => {
    const held = gate();
    r = await startReplicas({ platform: (local) => heldSwitch(local, held) });
    opens.push(held.open);
    const a = await r.replica();
    const b = await r.replica();
    await r.worker();
    const alice = await request(r, a);
    await aliceConfirms(a, alice);
    await held.reached; // the worker is switching

    // Bob asks for the same rollback on replica B: it joins the running switch ("Confirmed… progress
    // follows"). Slack answers his post slowly.
    const slowPost = b.proxy.holdAnswer(slack('chat.postMessage'));
    await b.requests.command({ command: '/rollback', text: 'production', userId: 'U0BOB', userName: 'bob' });
    await slowPost.reached;
    const bobPost = r.fake.callsOf('chat.postMessage').at(-1);
    const bobTs = String(bobPost?.response.ts);
    expect(bobTs).not.toBe(alice.ts);
    expect(shown(bobPost?.args)).toContain('Progress follows in this message');

    // The switch ends meanwhile: its worker has read the job's messages for the last time.
    held.open();
    expect((await b.queue.waitForEnd(alice.jobId))?.outcome).toBe('succeeded');
    expect(shown(r.fake.message(REPLICAS_CHANNEL, alice.ts))).toMatch(/Traffic is on/);

    // Now Slack answers Bob's post; replica B attaches it and finds the switch ended.
    slowPost.release();
    await b.surface.idle();
    const bob = r.fake.message(REPLICAS_CHANNEL, bobTs);
    expect(shown(bob)).toMatch(/Traffic is on/);
    expect(buttons(bob)).toEqual([]);
  });

  it('is handed to the job when it is attached while another replica is queueing the switch', async () => {
    r = await startReplicas();
    const queueing = gate();
    const a = await r.replica();
    const b = await r.replica();
    // Replica C's enqueue (after the plan's claim, before its job id is stored) waits at a gate.
    const c = await r.replica({
      queue: (real) => ({
        enqueue: async (data) => {
          await queueing.wait();
          return real.enqueue(data);
        },
        addMessages: (jobId, refs) => real.addMessages(jobId, refs),
        progress: (jobId) => real.progress(jobId),
        activeForEnvironment: (environment) => real.activeForEnvironment(environment),
      }),
    });
    await r.worker();
    const alice = await request(r, a);

    // Bob's /rollback on replica B: the same plan, posted slowly.
    const slowPost = b.proxy.holdAnswer(slack('chat.postMessage'));
    await b.requests.command({ command: '/rollback', text: 'production', userId: 'U0BOB', userName: 'bob' });
    await slowPost.reached;
    const bobTs = String(r.fake.callsOf('chat.postMessage').at(-1)?.response.ts);

    // Alice confirms on replica C: the plan is claimed, its job is being added.
    await aliceConfirms(c, alice);
    await queueing.reached;
    // Bob's post is answered now: replica B attaches it to the plan, claimed and without a job id yet.
    slowPost.release();
    await b.surface.idle();
    queueing.open();

    expect((await b.queue.waitForEnd(alice.jobId))?.outcome).toBe('succeeded');
    const followers = ((await b.queue.messages(alice.jobId)) ?? []).map((m) => m.messageId);
    expect(followers).toContain(bobTs);
    // The worker edits Bob's message to the end (the message set is read again as the switch ends).
    await r.fake.waitForCall(
      'chat.update',
      (x) => x.args.ts === bobTs && /Traffic is on/.test(shown(x.args)),
    );
    const bob = r.fake.message(REPLICAS_CHANNEL, bobTs);
    expect(shown(bob)).toMatch(/Traffic is on/);
    expect(buttons(bob)).toEqual([]);
  });
});

describe('the two-person rule across replicas', () => {
  it('a "waiting for a second person" view that lands after the switch ended leaves the final state on the message', async () => {
    r = await startReplicas({
      environments: {
        production: { twoPersonRule: true, allow: { slack: { users: ['U0ALICE', 'U0CAROL'] } } },
      },
    });
    const a = await r.replica();
    const b = await r.replica();
    const c = await r.replica();
    await r.worker();
    const alice = await request(r, a);
    const approve = alice.confirm.replace('sy1:confirm:', 'sy1:approve:');

    // Alice confirms on replica B; B's edit ("waiting for a second person") is slow to reach Slack.
    const slowEdit = b.proxy.holdRequest(slack('chat.update'));
    await aliceConfirms(b, alice);
    await slowEdit.reached;

    // Carol approves on replica C; the worker runs the switch to its end and edits the message.
    await c.requests.click({ actionId: approve, messageTs: alice.ts, userId: 'U0CAROL', userName: 'carol' });
    expect((await c.queue.waitForEnd(alice.jobId))?.outcome).toBe('succeeded');
    await r.fake.waitForCall(
      'chat.update',
      (x) => x.args.ts === alice.ts && /Traffic is on/.test(shown(x.args)),
    );
    await c.surface.idle();

    // B's view lands now, over the final state; B then puts the final state back.
    slowEdit.release();
    await b.surface.idle();
    const message = r.fake.message(REPLICAS_CHANNEL, alice.ts);
    expect(
      r.fake.callsOf('chat.update').some((x) => x.args.ts === alice.ts && /second/i.test(shown(x.args))),
    ).toBe(true); // the late view did land
    expect(buttons(message)).toEqual([]);
    expect(shown(message)).toMatch(/Traffic is on/);
  });
});
