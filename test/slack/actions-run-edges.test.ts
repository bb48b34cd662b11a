/**
 * handlers/slack/actions/run.ts (runAction): behaviour no test pinned, on fake
 * dependencies (a ChatService answering a scripted ClickReply, a reporter recording what it is asked
 * to show): an ended job's state is never put on an ephemeral message, nor again on a message already
 * showing a final state; a fresh plan Slack refused to post frees its slot (postFailed) and tells the
 * clicker; a click on a thread's parent posts the fresh plan in the channel, a click on a reply in its
 * thread (also when only the message carries `thread_ts`).
 */
import type { WebClient } from '@slack/web-api';
import { describe, expect, it } from 'vitest';
import { type ActionArgs, runAction } from '../../handlers/slack/actions/run.js';
import type { SlackHandlerDeps } from '../../handlers/slack/context.js';
import type { UserGroupResolver } from '../../handlers/slack/groups.js';
import type { SlackReporter } from '../../handlers/slack/reporter.js';
import { WorkQueue } from '../../handlers/slack/work.js';
import type { ChatService, ClickReply } from '../../src/chat.js';
import { textView } from '../../src/chat-sinks.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import type { MessageRef, Progress } from '../../src/progress.js';

const CHANNEL = 'C0INCIDENT';
const MESSAGE_TS = '1700000000.000100';

const ended: Progress = {
  jobId: 'job-1',
  planId: 'plan_0123456789abcdef01234567',
  action: 'rollback',
  environment: 'production',
  targetId: 'dep_b',
  fromId: 'dep_a',
  requestedBy: { surface: 'slack', userId: 'U0ALICE', displayName: 'alice' },
  steps: [{ step: 'verifying', state: 'done', startedAt: 1_000, detail: 'done' }],
  traffic: [],
  attempt: 1,
  updatedAt: 2_000,
  outcome: 'succeeded',
  message: 'production: switched',
};

interface Harness {
  readonly deps: SlackHandlerDeps;
  readonly work: WorkQueue;
  readonly reported: { progress: Progress; refs: readonly MessageRef[] }[];
  readonly edits: MessageRef[];
  readonly posts: Record<string, unknown>[];
  readonly postFailed: { planId: string; where: unknown }[];
  readonly responses: Record<string, unknown>[];
  readonly clicks: { actor: unknown; actionId: string; clicked: MessageRef }[];
  readonly client: WebClient;
}

function harness(
  reply: ClickReply,
  opts: { final?: boolean; postAnswer?: () => Promise<unknown>; endedJobs?: Record<string, Progress> } = {},
): Harness {
  const reported: Harness['reported'] = [];
  const edits: MessageRef[] = [];
  const posts: Record<string, unknown>[] = [];
  const postFailed: Harness['postFailed'] = [];
  const responses: Record<string, unknown>[] = [];
  const clicks: Harness['clicks'] = [];
  const reporter = {
    report: async (progress: Progress, refs: readonly MessageRef[]) => {
      reported.push({ progress, refs });
    },
    edit: async (ref: MessageRef) => {
      edits.push(ref);
    },
    isFinal: () => opts.final === true,
  } as unknown as SlackReporter;
  const chat = {
    click: async (actor: unknown, actionId: string, clicked: MessageRef) => {
      clicks.push({ actor, actionId, clicked });
      return reply;
    },
    attach: async () => undefined,
    postFailed: async (planId: string, where: unknown) => {
      postFailed.push({ planId, where });
    },
    endedProgress: async (jobId: string) => opts.endedJobs?.[jobId],
  } as unknown as ChatService;
  const work = new WorkQueue({ logger: silentLogger });
  const client = {
    chat: {
      postMessage: async (args: Record<string, unknown>) => {
        posts.push(args);
        return opts.postAnswer ? opts.postAnswer() : { ok: true, ts: '1700000000.000900', channel: CHANNEL };
      },
    },
  } as unknown as WebClient;
  const deps: SlackHandlerDeps = {
    chat,
    flow: { jobReported: async () => false },
    reporter,
    groups: { groupsOf: async () => ({}) } as unknown as UserGroupResolver,
    work,
    posts: client,
    metrics: createMetrics(),
    logger: silentLogger,
  };
  return { deps, work, reported, edits, posts, postFailed, responses, clicks, client };
}

function args(
  h: Harness,
  container: Record<string, unknown> = {},
  message?: Record<string, unknown>,
): ActionArgs {
  return {
    ack: async () => undefined,
    respond: async (r: Record<string, unknown>) => {
      h.responses.push(r);
    },
    client: h.client,
    body: {
      type: 'block_actions',
      user: { id: 'U0BOB', username: 'bob' },
      container: { type: 'message', channel_id: CHANNEL, message_ts: MESSAGE_TS, ...container },
      ...(message === undefined ? {} : { message }),
      actions: [{ action_id: 'switchyard:confirm' }],
    },
  } as unknown as ActionArgs;
}

async function click(h: Harness, a: ActionArgs): Promise<void> {
  await runAction(h.deps, 'confirm', a);
  await h.work.idle();
}

describe('handlers/slack/actions/run.ts', () => {
  it("a click on an ephemeral message whose job has ended does not put the job's final state on it", async () => {
    const h = harness({ outcome: 'joined', update: textView('Done', ['switched']), ended, jobId: 'job-1' });
    await click(h, args(h, { is_ephemeral: true }));
    // An ephemeral message cannot be edited with chat.update (message_not_found): nothing is queued.
    expect(h.reported).toEqual([]);
    expect(h.edits).toEqual([]);
  });

  it('a click whose job has ended puts the final state on a message once (not again when it already shows one)', async () => {
    const fresh = harness({
      outcome: 'joined',
      update: textView('Done', ['switched']),
      ended,
      jobId: 'job-1',
    });
    await click(fresh, args(fresh));
    expect(fresh.reported).toEqual([
      { progress: ended, refs: [{ surface: 'slack', channel: CHANNEL, messageId: MESSAGE_TS }] },
    ]);
    const shown = harness(
      { outcome: 'joined', update: textView('Done', ['switched']), ended, jobId: 'job-1' },
      { final: true },
    );
    await click(shown, args(shown));
    expect(shown.reported).toEqual([]);
  });

  it('a fresh plan Slack refused to post frees its suggestion slot and tells the clicker why', async () => {
    const h = harness(
      {
        outcome: 'planned',
        post: { view: textView('Roll back?', ['plan']), planId: 'plan_fresh', visibility: 'channel' },
      },
      {
        postAnswer: async () => {
          throw Object.assign(new Error('An API error occurred: not_in_channel'), {
            data: { ok: false, error: 'not_in_channel' },
          });
        },
      },
    );
    await click(h, args(h));
    expect(h.postFailed).toEqual([{ planId: 'plan_fresh', where: { surface: 'slack', channel: CHANNEL } }]);
    expect(h.responses).toHaveLength(1);
    expect(h.responses[0]?.response_type).toBe('ephemeral');
    expect(JSON.stringify(h.responses[0])).toContain('Switchyard is not in this channel');
  });

  it("a click on a thread's parent posts the fresh plan in the channel, not as a reply to itself", async () => {
    const h = harness({
      outcome: 'planned',
      post: { view: textView('Roll back?', ['plan']), planId: 'plan_fresh', visibility: 'channel' },
    });
    await click(h, args(h, { thread_ts: MESSAGE_TS }, { thread_ts: MESSAGE_TS }));
    expect(h.posts).toHaveLength(1);
    expect(h.posts[0]?.thread_ts).toBeUndefined();
  });

  it('a click on a thread reply posts the fresh plan in its thread, also when only the message says so', async () => {
    const h = harness({
      outcome: 'planned',
      post: { view: textView('Roll back?', ['plan']), planId: 'plan_fresh', visibility: 'channel' },
    });
    await click(h, args(h, {}, { thread_ts: '1700000000.000001' }));
    expect(h.posts[0]?.thread_ts).toBe('1700000000.000001');
  });

  it('the clicker is named by their Slack username, and the click is counted with its outcome', async () => {
    const h = harness({ outcome: 'refused', ephemeral: textView('No', ['not allowed']) });
    await click(h, args(h));
    expect(h.clicks[0]?.actor).toMatchObject({ surface: 'slack', userId: 'U0BOB', displayName: 'bob' });
    const counted = (await h.deps.metrics.clicks.get()).values.map(
      (v) => `${v.labels.surface}:${v.labels.action}:${v.labels.outcome}:${v.value}`,
    );
    expect(counted).toEqual(['slack:confirm:refused:1']);
  });

  it('a progress or view reply to a click on an ephemeral message edits nothing (chat.update cannot reach it)', async () => {
    const running: Progress = { ...ended, outcome: undefined, message: undefined } as unknown as Progress;
    const followed = harness({
      outcome: 'joined',
      update: textView('Switching', ['…']),
      progress: running,
      jobId: 'job-1',
    });
    await click(followed, args(followed, { is_ephemeral: true }));
    expect(followed.edits).toEqual([]);
    const viewed = harness({ outcome: 'cancelled', update: textView('Cancelled', ['by bob']) });
    await click(viewed, args(viewed, { is_ephemeral: true }));
    expect(viewed.edits).toEqual([]);
  });

  it("the 'waiting for a second person' view puts back the approval job's end when it ended before the view landed", async () => {
    const h = harness(
      {
        outcome: 'awaiting_approval',
        update: textView('Waiting for a second person', ['…']),
        approvalJobId: 'job-2',
      },
      { endedJobs: { 'job-2': { ...ended, jobId: 'job-2' } } },
    );
    await click(h, args(h));
    expect(h.edits).toEqual([{ surface: 'slack', channel: CHANNEL, messageId: MESSAGE_TS }]);
    expect(h.reported).toEqual([
      {
        progress: { ...ended, jobId: 'job-2' },
        refs: [{ surface: 'slack', channel: CHANNEL, messageId: MESSAGE_TS }],
      },
    ]);
  });

  it('a click on a thread reply posts the fresh plan in its thread when only the container says so', async () => {
    const h = harness({
      outcome: 'planned',
      post: { view: textView('Roll back?', ['plan']), planId: 'plan_fresh', visibility: 'channel' },
    });
    await click(h, args(h, { thread_ts: '1700000000.000001' }));
    expect(h.posts[0]?.thread_ts).toBe('1700000000.000001');
  });

  it('after a view landed, an end this process already put on the message is not read and shown again', async () => {
    const h = harness(
      { outcome: 'enqueued', update: textView('Confirmed', ['…']), jobId: 'job-1' },
      { final: true, endedJobs: { 'job-1': ended } },
    );
    await click(h, args(h));
    expect(h.edits).toHaveLength(1);
    expect(h.reported).toEqual([]);
  });

  it('a click turned away by a full backlog is counted as busy and told so', async () => {
    const h = harness({ outcome: 'refused', ephemeral: textView('No', ['not allowed']) });
    const work = new WorkQueue({ logger: silentLogger, concurrency: 1, maxPending: 1 });
    let release: (() => void) | undefined;
    expect(work.run(() => new Promise<void>((r) => (release = r)))).toBe(true);
    await runAction({ ...h.deps, work }, 'confirm', args(h));
    expect(h.clicks).toEqual([]);
    expect(JSON.stringify(h.responses)).toContain('Busy, try again');
    while (release === undefined) await new Promise<void>((r) => setImmediate(r));
    release();
    await work.idle();
    const counted = (await h.deps.metrics.clicks.get()).values.map(
      (v) => `${v.labels.surface}:${v.labels.action}:${v.labels.outcome}:${v.value}`,
    );
    expect(counted).toEqual(['slack:confirm:busy:1']);
  });

  it('the work slot is held until the fresh plan is posted (idle() and stop() wait for it)', async () => {
    let answer: ((v: unknown) => void) | undefined;
    const h = harness(
      {
        outcome: 'planned',
        post: { view: textView('Roll back?', ['plan']), planId: 'plan_fresh', visibility: 'channel' },
      },
      { postAnswer: () => new Promise((r) => (answer = r)) },
    );
    let idle = false;
    await runAction(h.deps, 'confirm', args(h));
    const waited = h.work.tasksIdle().then(() => {
      idle = true;
    });
    while (answer === undefined) await new Promise<void>((r) => setImmediate(r));
    for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
    expect(idle).toBe(false);
    answer({ ok: true, ts: '1700000000.000900', channel: CHANNEL });
    await waited;
    expect(idle).toBe(true);
  });
});
