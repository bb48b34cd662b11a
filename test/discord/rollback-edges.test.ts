/**
 * handlers/discord/commands/rollback.ts: the options reach ChatService as Slack's
 * `/rollback <environment> [<deployment>]` words, one word each; an option of several words is never
 * planned from (ChatService answers with usage naming the option), so `environment: "production dep_1"`
 * is never taken for both the environment and the target.
 */
import type { ChatInputCommandInteraction } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { rollbackCommand } from '../../handlers/discord/commands/rollback.js';
import type { DiscordDeps } from '../../handlers/discord/context.js';
import { ManualClock } from '../../src/clock.js';
import { RefusalCode } from '../../src/domain/result.js';
import { silentLogger } from '../../src/log.js';
import { refusalView } from '../../src/views/model.js';

const USAGE = {
  view: refusalView({ code: RefusalCode.invalidInput, message: 'usage' }),
  visibility: 'ephemeral',
};

/** What ChatService was asked: the command's arguments, or usage for an option of several words. */
async function argsOf(options: Record<string, string>): Promise<readonly string[] | string> {
  const asked: (readonly string[] | string)[] = [];
  const deps = {
    chat: {
      command: async (_actor: unknown, _name: string, args: readonly string[]) => {
        asked.push(args);
        return USAGE;
      },
      optionTooManyWords: async (_name: string, option: string, _takes: string, words: readonly string[]) => {
        asked.push(`${option}: ${words.join(' ')}`);
        return USAGE;
      },
    },
    flow: {},
    messages: {},
    clock: new ManualClock(),
    logger: silentLogger,
    autocompleteBudgetMs: 2_000,
  } as unknown as DiscordDeps;
  const interaction = {
    id: '100000000000000009',
    channelId: '100000000000000001',
    guildId: '100000000000000004',
    user: { id: '42', username: 'alice', globalName: 'Alice' },
    member: { roles: [], nick: null },
    deferred: false,
    replied: false,
    options: { getString: (name: string) => options[name] ?? null },
    async deferReply(this: { deferred: boolean }) {
      this.deferred = true;
    },
    editReply: async () => undefined,
    reply: async () => undefined,
  } as unknown as ChatInputCommandInteraction;
  await rollbackCommand.execute(deps, interaction);
  expect(asked).toHaveLength(1);
  return asked[0] ?? [];
}

describe('/rollback options', () => {
  it('environment and deployment of one word each are the two arguments', async () => {
    expect(await argsOf({ environment: 'production', deployment: 'dep_1' })).toEqual(['production', 'dep_1']);
    expect(await argsOf({ environment: 'production' })).toEqual(['production']);
  });

  it('an environment option of several words is not split into environment and target: usage naming it', async () => {
    expect(await argsOf({ environment: 'production dep_1' })).toBe('environment: production dep_1');
  });

  it('a deployment option of several words plans nothing: usage naming it', async () => {
    expect(await argsOf({ environment: 'production', deployment: 'dep_1 dep_2' })).toBe(
      'deployment: dep_1 dep_2',
    );
  });
});
