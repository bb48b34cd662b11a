/**
 * handlers/discord/commands/run.ts `runCommand` with a stub ChatService and a stub REST: a channel the
 * bot may not post in (Missing Access 50001 or Missing Permissions 50013) is explained to the person
 * who typed the command and counted `not_posted`; a fault is said with the shared fault view (as on
 * Slack and the console), which says "try again in a moment" of one that may pass; a command whose
 * post went out but could not be attached to its plan is counted an error, not planned.
 */
import {
  type ChatInputCommandInteraction,
  DiscordAPIError,
  type InteractionEditReplyOptions,
  type REST,
} from 'discord.js';
import { describe, expect, it } from 'vitest';
import { runCommand } from '../../handlers/discord/commands/run.js';
import { type DiscordDeps, editBody } from '../../handlers/discord/context.js';
import { DiscordMessages } from '../../handlers/discord/messages.js';
import type { ChatReply } from '../../src/chat.js';
import { ManualClock } from '../../src/clock.js';
import { RefusalCode } from '../../src/domain/result.js';
import { SwitchyardError } from '../../src/errors.js';
import { type Logger, silentLogger } from '../../src/log.js';
import { faultView } from '../../src/views/fault.js';
import { refusalView } from '../../src/views/model.js';
import { CapturedLog } from '../support/captured-log.js';
import { platformUnreachable, textOf } from './harness.js';

const CHANNEL = '100000000000000001';

const planned: ChatReply = {
  view: refusalView({ code: RefusalCode.invalidInput, message: 'Roll back production?' }),
  visibility: 'channel',
  planId: 'plan_0123abcd',
};

/** What a reply shows: its content and its embeds' text (the harness's `textOf`). */
function shown(body: InteractionEditReplyOptions): string {
  return textOf({
    content: body.content ?? '',
    embeds: (body.embeds ?? []) as unknown as Record<string, unknown>[],
  }).trim();
}

function slash(): {
  interaction: ChatInputCommandInteraction;
  edits: string[];
  bodies: InteractionEditReplyOptions[];
} {
  const edits: string[] = [];
  const bodies: InteractionEditReplyOptions[] = [];
  const interaction = {
    id: '100000000000000009',
    channelId: CHANNEL,
    guildId: '100000000000000004',
    user: { id: '42', username: 'alice', globalName: 'Alice' },
    member: { roles: [], nick: null },
    deferred: false,
    replied: false,
    async deferReply(this: { deferred: boolean }) {
      this.deferred = true;
    },
    editReply: async (body: InteractionEditReplyOptions) => {
      bodies.push(body);
      edits.push(shown(body));
    },
    reply: async (body: InteractionEditReplyOptions) => {
      bodies.push(body);
      edits.push(shown(body));
    },
  } as unknown as ChatInputCommandInteraction;
  return { interaction, edits, bodies };
}

function deps(opts: {
  command: () => Promise<ChatReply>;
  post?: () => Promise<unknown>;
  attach?: () => Promise<undefined>;
  logger?: Logger;
}): { deps: DiscordDeps; outcomes: string[] } {
  const outcomes: string[] = [];
  const rest = {
    post: opts.post ?? (async () => ({ id: '100000000000000003' })),
    patch: async () => ({}),
  } as unknown as REST;
  const d = {
    chat: {
      command: opts.command,
      attach: opts.attach ?? (async () => undefined),
    },
    flow: {},
    messages: new DiscordMessages({ rest }),
    clock: new ManualClock(),
    logger: opts.logger ?? silentLogger,
    autocompleteBudgetMs: 2_000,
    metrics: {
      commands: { inc: (labels: { outcome: string }) => outcomes.push(labels.outcome) },
      clicks: { inc: () => undefined },
      chatApiErrors: { inc: () => undefined },
    },
  } as unknown as DiscordDeps;
  return { deps: d, outcomes };
}

function refused(code: number, message: string): DiscordAPIError {
  return new DiscordAPIError(
    { code, message },
    code,
    403,
    'POST',
    `https://discord.test/api/v10/channels/${CHANNEL}/messages`,
    {},
  );
}

describe('runCommand', () => {
  for (const [code, message] of [
    [50001, 'Missing Access'],
    [50013, 'Missing Permissions'],
  ] as const) {
    it(`a channel the bot may not post in (${code} ${message}) is explained and counted not_posted`, async () => {
      const t = deps({
        command: async () => planned,
        post: async () => {
          throw refused(code, message);
        },
      });
      const s = slash();
      await runCommand(t.deps, s.interaction, 'rollback', ['production']);
      expect(s.edits).toHaveLength(1);
      expect(s.edits[0]).toContain('I cannot post in this channel');
      expect(s.edits[0]).toContain('Nothing was changed');
      expect(t.outcomes).toEqual(['not_posted']);
    });
  }

  it('a fault that may pass tells the person to try again in a moment; one that will not, does not', async () => {
    const passing = deps({
      command: async () => {
        throw new SwitchyardError('redis_unavailable', 'Redis did not answer', { retry: true });
      },
    });
    const a = slash();
    await runCommand(passing.deps, a.interaction, 'rollback', ['production']);
    expect(a.edits).toHaveLength(1);
    expect(a.edits[0]).toContain(
      'Switchyard could not run /rollback (its Redis is unreachable). It may work if you try again in a moment.',
    );
    const lasting = deps({
      command: async () => {
        throw new SwitchyardError('config_invalid', 'no such platform', { retry: false });
      },
    });
    const b = slash();
    await runCommand(lasting.deps, b.interaction, 'rollback', ['production']);
    expect(b.edits[0]).toContain('Switchyard could not run /rollback (config_invalid).');
    expect(b.edits[0]).not.toContain('try again');
  });

  it("a platform fault is said as Slack and the console say it (the shared fault view), not the error's own wording, and logged as a WARN line", async () => {
    const unreachable = platformUnreachable();
    const log = new CapturedLog();
    const t = deps({
      command: async () => {
        throw unreachable;
      },
      logger: log.logger,
    });
    const s = slash();
    await runCommand(t.deps, s.interaction, 'rollback', ['production']);
    // The view every surface shows for it, rendered as Discord's other ephemeral replies are.
    expect(s.bodies).toEqual([editBody(faultView(unreachable, 'run /rollback'))]);
    expect(s.edits[0]).toContain(
      'Switchyard could not run /rollback (the deploy platform could not be reached: platform_unavailable). It may work if you try again in a moment.',
    );
    expect(s.edits[0]).not.toMatch(/PlatformHttpError|127\.0\.0\.1/);
    expect(t.outcomes).toEqual(['error']);
    // The raw error stays in the log: an outage of the platform, a WARN line without a stack.
    expect(log.lines.map((l) => [l.level, l.msg, l.code, l.reason, 'err' in l])).toEqual([
      [
        40,
        'discord command failed: the deploy platform could not be reached: platform_unavailable',
        'platform_unavailable',
        unreachable.message,
        false,
      ],
    ]);
  });

  it('a fault that is no outage of the platform is logged as an ERROR with the error', async () => {
    const log = new CapturedLog();
    const t = deps({
      command: async () => {
        throw new Error('a bug');
      },
      logger: log.logger,
    });
    await runCommand(t.deps, slash().interaction, 'rollback', ['production']);
    expect(
      log.lines.map((l) => [l.level, l.msg, (l.err as { message?: string } | undefined)?.message]),
    ).toEqual([[50, 'discord command failed', 'a bug']]);
  });

  it('a confirmation posted but not attached to its plan is counted an error, not planned', async () => {
    const t = deps({
      command: async () => planned,
      attach: async () => {
        throw new SwitchyardError('redis_unavailable', 'Redis did not answer', { retry: true });
      },
    });
    const s = slash();
    await runCommand(t.deps, s.interaction, 'rollback', ['production']);
    expect(t.outcomes).toEqual(['error']);
    expect(s.edits.at(-1)).toContain('Switchyard could not run /rollback');
  });
});
