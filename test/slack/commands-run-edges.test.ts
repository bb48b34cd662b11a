/**
 * handlers/slack/commands/run.ts (runCommand), on fake dependencies (a ChatService
 * answering a scripted reply): who the actor is named as, the confirmation attached to its plan, the
 * command counted once with the right outcome (not posted, error, invalid, busy), and where a refused
 * post tells the user to go when Slack names the channel a DM only by channel_name.
 */
import type { WebClient } from '@slack/web-api';
import { describe, expect, it } from 'vitest';
import { type CommandArgs, runCommand } from '../../handlers/slack/commands/run.js';
import type { SlackHandlerDeps } from '../../handlers/slack/context.js';
import type { UserGroupResolver } from '../../handlers/slack/groups.js';
import type { SlackReporter } from '../../handlers/slack/reporter.js';
import { WorkQueue } from '../../handlers/slack/work.js';
import type { ChatReply, ChatService } from '../../src/chat.js';
import { textView } from '../../src/chat-sinks.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import type { MessageRef } from '../../src/progress.js';

interface Harness {
  readonly deps: SlackHandlerDeps;
  readonly work: WorkQueue;
  readonly actors: unknown[];
  readonly attached: { planId: string; ref: MessageRef }[];
  readonly responses: Record<string, unknown>[];
  readonly client: WebClient;
}

function harness(
  reply: ChatReply | (() => Promise<ChatReply>),
  opts: { postAnswer?: () => Promise<unknown>; work?: WorkQueue } = {},
): Harness {
  const actors: unknown[] = [];
  const attached: Harness['attached'] = [];
  const responses: Record<string, unknown>[] = [];
  const chat = {
    command: async (actor: unknown) => {
      actors.push(actor);
      return typeof reply === 'function' ? reply() : reply;
    },
    attach: async (planId: string, ref: MessageRef) => {
      attached.push({ planId, ref });
      return undefined;
    },
  } as unknown as ChatService;
  const work = opts.work ?? new WorkQueue({ logger: silentLogger });
  const client = {
    chat: {
      postMessage: async () =>
        opts.postAnswer ? opts.postAnswer() : { ok: true, ts: '1700000000.000100', channel: 'C0INCIDENT' },
    },
  } as unknown as WebClient;
  const deps: SlackHandlerDeps = {
    chat,
    flow: { jobReported: async () => false },
    reporter: { report: async () => undefined } as unknown as SlackReporter,
    groups: {} as unknown as UserGroupResolver,
    work,
    posts: client,
    metrics: createMetrics(),
    logger: silentLogger,
  };
  return { deps, work, actors, attached, responses, client };
}

function args(h: Harness, command: Record<string, unknown> = {}): CommandArgs {
  return {
    ack: async () => undefined,
    respond: async (r: Record<string, unknown>) => {
      h.responses.push(r);
    },
    client: h.client,
    command: {
      command: '/rollback',
      text: 'production',
      user_id: 'U0ALICE',
      user_name: 'alice',
      channel_id: 'C0INCIDENT',
      channel_name: 'incidents',
      ...command,
    },
  } as unknown as CommandArgs;
}

async function counted(h: Harness): Promise<string[]> {
  return (await h.deps.metrics.commands.get()).values.map(
    (v) => `${v.labels.surface}:${v.labels.command}:${v.labels.outcome}:${v.value}`,
  );
}

const planReply: ChatReply = {
  visibility: 'channel',
  view: textView('Roll back production?', ['plan']),
  planId: 'plan_0123456789abcdef01234567',
} as ChatReply;

const notInChannel = async () => {
  throw Object.assign(new Error('An API error occurred: channel_not_found'), {
    data: { ok: false, error: 'channel_not_found' },
  });
};

describe('handlers/slack/commands/run.ts', () => {
  it('names the actor by user_name, and attaches the posted confirmation to its plan', async () => {
    const h = harness(planReply);
    await runCommand(h.deps, 'rollback', args(h));
    await h.work.idle();
    expect(h.actors).toEqual([{ surface: 'slack', userId: 'U0ALICE', displayName: 'alice' }]);
    expect(h.attached).toEqual([
      {
        planId: 'plan_0123456789abcdef01234567',
        ref: { surface: 'slack', channel: 'C0INCIDENT', messageId: '1700000000.000100' },
      },
    ]);
    expect(await counted(h)).toEqual(['slack:rollback:planned:1']);
  });

  it('a confirmation Slack would not post is counted as not posted (once), not as planned or an error', async () => {
    const h = harness(planReply, { postAnswer: notInChannel });
    await runCommand(h.deps, 'rollback', args(h));
    await h.work.idle();
    expect(await counted(h)).toEqual(['slack:rollback:not_posted:1']);
  });

  it('a group DM known only by channel_name (mpdm-…) gets the "run it in a channel" hint', async () => {
    const h = harness(planReply, { postAnswer: notInChannel });
    await runCommand(
      h.deps,
      'rollback',
      args(h, { channel_id: 'G0GROUPDM', channel_name: 'mpdm-alice--bob-1' }),
    );
    await h.work.idle();
    expect(JSON.stringify(h.responses)).toContain('cannot post in direct messages');
  });

  it('a fault is counted as an error and told ephemerally', async () => {
    const h = harness(async () => {
      throw new Error('boom');
    });
    await runCommand(h.deps, 'rollback', args(h));
    await h.work.idle();
    expect(await counted(h)).toEqual(['slack:rollback:error:1']);
    expect(h.responses[0]?.response_type).toBe('ephemeral');
    expect(JSON.stringify(h.responses[0])).toContain('could not run /rollback');
  });

  it('an unreadable payload is counted as invalid', async () => {
    const h = harness(planReply);
    await runCommand(h.deps, 'rollback', args(h, { user_id: '' }));
    await h.work.idle();
    expect(await counted(h)).toEqual(['slack:rollback:invalid:1']);
    expect(JSON.stringify(h.responses[0])).toContain('user_id');
  });

  it('a command turned away by a full backlog is counted as busy', async () => {
    const work = new WorkQueue({ logger: silentLogger, concurrency: 1, maxPending: 1 });
    const h = harness(planReply, { work });
    // A task is pending: the backlog (one) is full.
    let release: (() => void) | undefined;
    expect(work.run(() => new Promise<void>((r) => (release = r)))).toBe(true);
    await runCommand(h.deps, 'rollback', args(h));
    expect(h.responses[0]?.response_type).toBe('ephemeral');
    while (release === undefined) await new Promise<void>((r) => setImmediate(r));
    release();
    await work.idle();
    expect(await counted(h)).toContain('slack:rollback:busy:1');
  });
});
