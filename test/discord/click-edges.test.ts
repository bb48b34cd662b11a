/**
 * handlers/discord/actions/click.ts `runClick` with stub ChatService/Flow answers and the real
 * DiscordMessages on a recording REST: a confirmation view yields to a job that has reported (another
 * process's worker), and then nothing else is sent; a click that makes the message follow a running
 * job shows its progress and, when the job ended by the time that edit landed, puts its end back.
 */
import type { ButtonInteraction, REST } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { runClick } from '../../handlers/discord/actions/click.js';
import { type DiscordDeps, ephemeralBody } from '../../handlers/discord/context.js';
import { DiscordMessages } from '../../handlers/discord/messages.js';
import type { ClickReply } from '../../src/chat.js';
import { ManualClock } from '../../src/clock.js';
import { RefusalCode } from '../../src/domain/result.js';
import { type Logger, silentLogger } from '../../src/log.js';
import type { Progress } from '../../src/progress.js';
import { faultView } from '../../src/views/fault.js';
import { progressView, refusalView } from '../../src/views/model.js';
import { CapturedLog } from '../support/captured-log.js';
import { progressFixture } from '../support/progress.js';
import { platformUnreachable, textOf } from './harness.js';

const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);
const CHANNEL = '100000000000000001';
const MESSAGE = '100000000000000002';

const running: Progress = progressFixture({
  steps: [
    { step: 'queued', state: 'done', startedAt: T0, endedAt: T0 + 500 },
    { step: 'switching', state: 'running', startedAt: T0 + 500 },
  ],
  updatedAt: T0 + 600,
});
const ended: Progress = progressFixture({
  steps: [
    { step: 'queued', state: 'done', startedAt: T0, endedAt: T0 + 500 },
    { step: 'switching', state: 'done', startedAt: T0 + 500, endedAt: T0 + 900 },
  ],
  outcome: 'succeeded',
  message: 'Rollback succeeded.',
  note: 'Rollback succeeded.',
  updatedAt: T0 + 1_000,
});

function recordingRest(): { rest: REST; patched: string[] } {
  const patched: string[] = [];
  const rest = {
    patch: async (_route: string, opts: { body: unknown }) => {
      patched.push(JSON.stringify(opts.body));
      return {};
    },
    post: async () => ({ id: '100000000000000003' }),
  } as unknown as REST;
  return { rest, patched };
}

function button(followUps: unknown[] = []): ButtonInteraction {
  return {
    id: '100000000000000009',
    customId: 'sy:confirm:plan_0123abcd',
    channelId: CHANNEL,
    guildId: '100000000000000004',
    user: { id: '42', username: 'alice', globalName: 'Alice' },
    member: { roles: [], nick: null },
    message: { id: MESSAGE, flags: { has: () => false } },
    deferred: true,
    replied: false,
    deferUpdate: async () => undefined,
    followUp: async (body: unknown) => {
      followUps.push(body);
    },
    editReply: async () => undefined,
    reply: async () => undefined,
  } as unknown as ButtonInteraction;
}

function deps(
  reply: ClickReply,
  opts: { reported?: boolean; ended?: Progress; click?: () => Promise<ClickReply>; logger?: Logger } = {},
): { deps: DiscordDeps; patched: string[]; endedReads: string[]; attached: unknown[] } {
  const { rest, patched } = recordingRest();
  const endedReads: string[] = [];
  const attached: unknown[] = [];
  const d = {
    chat: {
      click: opts.click ?? (async () => reply),
      endedProgress: async (jobId: string) => {
        endedReads.push(jobId);
        return opts.ended;
      },
      attach: async (planId: string, ref: unknown) => {
        attached.push({ planId, ref });
        return undefined;
      },
      postFailed: async () => undefined,
    },
    flow: { jobReported: async () => opts.reported ?? false },
    messages: new DiscordMessages({ rest }),
    clock: new ManualClock(T0),
    logger: opts.logger ?? silentLogger,
    autocompleteBudgetMs: 2_000,
  } as unknown as DiscordDeps;
  return { deps: d, patched, endedReads, attached };
}

const confirmedView = refusalView({ code: RefusalCode.invalidInput, message: 'Confirmed: queued.' });

describe('runClick', () => {
  it('a click that fails is answered, only to the clicker, with the fault view Slack shows; a platform fault is a WARN line', async () => {
    const unreachable = platformUnreachable();
    const log = new CapturedLog();
    const t = deps(
      { outcome: 'error' },
      {
        click: async () => {
          throw unreachable;
        },
        logger: log.logger,
      },
    );
    const followUps: unknown[] = [];
    await runClick(t.deps, button(followUps), 'confirm');
    expect(followUps).toEqual([ephemeralBody(faultView(unreachable, 'handle this click'))]);
    const [said] = followUps as { embeds: Record<string, unknown>[] }[];
    expect(textOf({ content: '', embeds: said?.embeds ?? [] })).toContain(
      'Switchyard could not handle this click (the deploy platform could not be reached: platform_unavailable). It may work if you try again in a moment.',
    );
    expect(JSON.stringify(followUps)).not.toMatch(/PlatformHttpError|127\.0\.0\.1/);
    expect(log.lines.map((l) => [l.level, l.msg, l.code, 'err' in l])).toEqual([
      [
        40,
        'discord button failed: the deploy platform could not be reached: platform_unavailable',
        'platform_unavailable',
        false,
      ],
    ]);
  });

  it("a confirmation view yields to the job's progress a worker elsewhere reported: not sent, nothing re-read", async () => {
    const t = deps({ update: confirmedView, jobId: 'sw_1', outcome: 'enqueued' }, { reported: true, ended });
    await runClick(t.deps, button(), 'confirm');
    await t.deps.messages.flush();
    expect(t.patched).toEqual([]);
    // A view that did not go out covered nothing: the job's end is not fetched and painted again.
    expect(t.endedReads).toEqual([]);
  });

  it('a confirmation view goes out while the job has not reported', async () => {
    const t = deps({ update: confirmedView, jobId: 'sw_1', outcome: 'enqueued' }, { reported: false });
    await runClick(t.deps, button(), 'confirm');
    await t.deps.messages.flush();
    expect(t.patched).toHaveLength(1);
    expect(t.patched[0]).toContain('Confirmed: queued.');
    expect(t.endedReads).toEqual(['sw_1']);
  });

  it("a click that makes the message follow a running job puts the job's end back when it ended meanwhile", async () => {
    const t = deps({ update: progressView(running), progress: running, outcome: 'joined' }, { ended });
    await runClick(t.deps, button(), 'confirm');
    await t.deps.messages.flush();
    expect(t.endedReads).toEqual(['sw_1']);
    expect(t.deps.messages.isFinal(CHANNEL, MESSAGE)).toBe(true);
    expect(t.patched.at(-1)).toContain('succeeded');
  });

  it('a fresh plan posted in answer to a click is attached to its plan (so its progress and expiry reach it)', async () => {
    const t = deps({
      post: { view: confirmedView, visibility: 'channel', planId: 'plan_fresh0001' },
      outcome: 'planned',
    });
    await runClick(t.deps, button(), 'row');
    expect(t.attached).toEqual([
      {
        planId: 'plan_fresh0001',
        ref: { surface: 'discord', channel: CHANNEL, messageId: '100000000000000003' },
      },
    ]);
  });
});
