/**
 * handlers/slack/context.ts: behaviour no test pinned — the fault view's "try again"
 * hint only for a retryable fault, a confirmation posted after its switch ended getting the switch's
 * final state, a failed chat.postMessage counted under its Slack error code, and a `D…` channel id
 * alone (no channel_name) being a direct message.
 */
import type { WebClient } from '@slack/web-api';
import { describe, expect, it } from 'vitest';
import {
  blockActionSchema,
  cannotPostView,
  describeIssues,
  faultView,
  isDirectMessage,
  postView,
} from '../../handlers/slack/context.js';
import type { SlackReporter } from '../../handlers/slack/reporter.js';
import { WorkQueue } from '../../handlers/slack/work.js';
import type { ChatService } from '../../src/chat.js';
import { textView } from '../../src/chat-sinks.js';
import { SwitchyardError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import type { MessageRef, Progress } from '../../src/progress.js';

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

function deps(opts: { attached?: Progress } = {}) {
  const reported: { progress: Progress; refs: readonly MessageRef[] }[] = [];
  const reporter = {
    report: async (progress: Progress, refs: readonly MessageRef[]) => {
      reported.push({ progress, refs });
    },
  } as unknown as SlackReporter;
  const chat = { attach: async () => opts.attached } as unknown as ChatService;
  const metrics = createMetrics();
  const work = new WorkQueue({ logger: silentLogger });
  return { deps: { chat, reporter, work, logger: silentLogger, metrics }, reported, metrics, work };
}

const posting = (answer: () => Promise<unknown>) =>
  ({ chat: { postMessage: answer } }) as unknown as WebClient;

describe('handlers/slack/context.ts', () => {
  it('the fault view says "try again in a moment" for a retryable fault only', () => {
    const retryable = faultView(
      new SwitchyardError('platform_http', 'HTTP 503', { retry: true }),
      'run /rollback',
    );
    expect(retryable.summary).toBe(
      'Switchyard could not run /rollback (the deploy platform answered with an error: platform_http). It may work if you try again in a moment.',
    );
    const lasting = faultView(
      new SwitchyardError('platform_http', 'HTTP 404', { retry: false }),
      'run /rollback',
    );
    expect(lasting.summary).toBe(
      'Switchyard could not run /rollback (the deploy platform answered with an error: platform_http).',
    );
  });

  it("a confirmation posted after its switch ended gets the switch's final state (a late joiner)", async () => {
    const d = deps({ attached: ended });
    const client = posting(async () => ({ ok: true, ts: '1700000000.000100', channel: 'C0INCIDENT' }));
    const posted = await postView(d.deps, client, 'C0INCIDENT', textView('Roll back?', ['plan']), 'plan_1');
    expect(posted.ok).toBe(true);
    await d.work.idle();
    expect(d.reported).toEqual([
      {
        progress: ended,
        refs: [{ surface: 'slack', channel: 'C0INCIDENT', messageId: '1700000000.000100' }],
      },
    ]);
  });

  it('a confirmation attached to a switch still running is left to its progress (no report here)', async () => {
    const d = deps({});
    const client = posting(async () => ({ ok: true, ts: '1700000000.000200', channel: 'C0INCIDENT' }));
    expect(
      (await postView(d.deps, client, 'C0INCIDENT', textView('Roll back?', ['plan']), 'plan_1')).ok,
    ).toBe(true);
    await d.work.idle();
    expect(d.reported).toEqual([]);
  });

  it("a chat.postMessage Slack refuses is counted under Slack's error code", async () => {
    const d = deps();
    const client = posting(async () => {
      throw Object.assign(new Error('An API error occurred: not_in_channel'), {
        data: { ok: false, error: 'not_in_channel' },
      });
    });
    expect(await postView(d.deps, client, 'C0INCIDENT', textView('Roll back?', ['plan']))).toEqual({
      ok: false,
      code: 'not_in_channel',
      transient: false,
    });
    const counted = (await d.metrics.chatApiErrors.get()).values.map(
      (v) => `${v.labels.surface}:${v.labels.method}:${v.labels.code}:${v.value}`,
    );
    expect(counted).toEqual(['slack:chat.postMessage:not_in_channel:1']);
  });

  it('a D… channel id is a direct message even when Slack sends no channel_name', () => {
    expect(isDirectMessage({ id: 'D0123ABCD' })).toBe(true);
    expect(isDirectMessage({ id: 'C0123ABCD' })).toBe(false);
    const view = cannotPostView('channel_not_found', textView('Roll back?', ['plan']), { id: 'D0123ABCD' });
    expect(view.summary).toContain('cannot post in direct messages');
  });
});

describe('describeIssues (found by test/edges-random.test.ts)', () => {
  it('names the first five problems of a payload and counts the rest', () => {
    const parsed = blockActionSchema.safeParse({
      type: 'block_actions',
      user: { id: 'U0ALICE' },
      container: { channel_id: 'C0PROD', message_ts: '1.2' },
      actions: Array.from({ length: 5_000 }, () => ({})),
    });
    if (parsed.success) throw new Error('expected a refusal');
    expect(describeIssues(parsed.error)).toBe(
      [0, 1, 2, 3, 4].map((i) => `actions.${i}.action_id: expected an action_id`).join('; ') +
        '; and 4995 more',
    );
  });
});
