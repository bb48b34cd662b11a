/**
 * handlers/discord/commands/run.ts `runCommand` with a stub ChatService and a stub REST: a channel the
 * bot may not post in (Missing Access 50001 or Missing Permissions 50013) is explained to the person
 * who typed the command and counted `not_posted`; a fault that may pass says "try again in a moment";
 * a command whose post went out but could not be attached to its plan is counted an error, not planned.
 */
import { type ChatInputCommandInteraction, DiscordAPIError, type REST } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { runCommand } from '../../handlers/discord/commands/run.js';
import type { DiscordDeps } from '../../handlers/discord/context.js';
import { DiscordMessages } from '../../handlers/discord/messages.js';
import type { ChatReply } from '../../src/chat.js';
import { ManualClock } from '../../src/clock.js';
import { RefusalCode } from '../../src/domain/result.js';
import { SwitchyardError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { refusalView } from '../../src/views/model.js';

const CHANNEL = '100000000000000001';

const planned: ChatReply = {
  view: refusalView({ code: RefusalCode.invalidInput, message: 'Roll back production?' }),
  visibility: 'channel',
  planId: 'plan_0123abcd',
};

function slash(): { interaction: ChatInputCommandInteraction; edits: string[] } {
  const edits: string[] = [];
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
    editReply: async (body: { content?: string }) => {
      edits.push(body.content ?? '');
    },
    reply: async (body: { content?: string }) => {
      edits.push(body.content ?? '');
    },
  } as unknown as ChatInputCommandInteraction;
  return { interaction, edits };
}

function deps(opts: {
  command: () => Promise<ChatReply>;
  post?: () => Promise<unknown>;
  attach?: () => Promise<undefined>;
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
    logger: silentLogger,
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
    expect(a.edits).toEqual([
      '/rollback failed: Redis did not answer. Nothing was changed; try again in a moment.',
    ]);
    const lasting = deps({
      command: async () => {
        throw new SwitchyardError('config_invalid', 'no such platform', { retry: false });
      },
    });
    const b = slash();
    await runCommand(lasting.deps, b.interaction, 'rollback', ['production']);
    expect(b.edits).toEqual(['/rollback failed: no such platform. Nothing was changed.']);
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
    expect(s.edits.at(-1)).toContain('/rollback failed');
  });
});
