/**
 * handlers/discord/index.ts `register`: a slash command Switchyard does not know (a stale registration
 * after an upgrade) is answered within Discord's 3 s, ephemerally, naming the commands and how to
 * refresh them — never left to time out as "The application did not respond". With DISCORD_GUILD_ID
 * set, commands and autocompletes from any other server the bot was added to (Public Bot left on) are
 * answered "not set up for this server" and read nothing (the real bot on the fake Discord); unset,
 * start-up says once that any server can use it.
 */
import { type Interaction, MessageFlags } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { registerCommands } from '../../handlers/discord/commands.js';
import type { DiscordDeps } from '../../handlers/discord/context.js';
import { NOT_THIS_SERVER, register } from '../../handlers/discord/index.js';
import { CallbackType } from '../fakes/discord/protocol.js';
import { type FakeDiscord, makeSnowflake } from '../fakes/discord/server.js';
import { CapturedLog } from '../support/captured-log.js';
import { slash, startPerTest } from './harness.js';

describe('register', () => {
  it('answers an unknown slash command with the known ones, only to the person who typed it', async () => {
    const replies: { content?: string; flags?: number }[] = [];
    const interaction = {
      id: '100000000000000009',
      commandName: 'deploy',
      isAutocomplete: () => false,
      isChatInputCommand: () => true,
      isButton: () => false,
      reply: async (body: { content?: string; flags?: number }) => {
        replies.push(body);
      },
    } as unknown as Interaction;
    await register({} as DiscordDeps)(interaction);
    expect(replies).toHaveLength(1);
    expect(replies[0]?.content).toContain('Unknown command /deploy');
    expect(replies[0]?.content).toContain('/rollback, /promote, /deployments');
    expect(replies[0]?.flags).toBe(MessageFlags.Ephemeral);
  });
});

/** Registers the commands globally too, as a bot offered to every server it is in would have them. */
function registerGlobally(fake: FakeDiscord) {
  return registerCommands({
    token: fake.token,
    applicationId: fake.applicationId,
    apiUrl: fake.apiUrl,
    global: true,
  });
}

describe('DISCORD_GUILD_ID: the one server Switchyard acts in', () => {
  const start = startPerTest();

  it('set: commands and autocompletes from another server are told "not set up for this server", only to the sender, and read nothing; its own server is served', async () => {
    const e = await start({ configuredGuild: true });
    await registerGlobally(e.fake);
    const elsewhere = makeSnowflake();
    const before = { ...e.held.reads };
    for (const command of ['deployments', 'rollback'] as const) {
      const i = e.fake.slash({
        command,
        options: [{ name: 'environment', value: 'production' }],
        user: e.alice,
        roles: [e.fake.roles.deployers],
        guildId: elsewhere,
      });
      expect(await e.fake.waitForCallback(i), command).toEqual({
        type: CallbackType.channelMessageWithSource,
        data: expect.objectContaining({ content: NOT_THIS_SERVER, flags: MessageFlags.Ephemeral }),
      });
    }
    const typed = e.fake.autocomplete({
      command: 'rollback',
      options: [{ name: 'environment', value: 'pro', focused: true }],
      user: e.alice,
      guildId: elsewhere,
    });
    expect(await e.fake.waitForCallback(typed)).toEqual({
      type: CallbackType.autocompleteResult,
      data: { choices: [] },
    });
    // Nothing was read from the platform (so nothing planned) or posted.
    expect(e.held.reads).toEqual(before);
    expect(e.fake.channelMessages(e.fake.channels.ops)).toEqual([]);
    // Its own server is served.
    const own = slash(e, 'deployments', { environment: 'production' });
    expect((await e.fake.waitForCallback(own)).type).toBe(CallbackType.deferredChannelMessageWithSource);
    await e.held.whenRead('snapshot', before.snapshot + 1);
  });

  it('unset: start-up warns once that any server the bot is added to can use it, and another server is served', async () => {
    const log = new CapturedLog('info');
    const e = await start({ logger: log.logger });
    const warnings = log.lines.filter((l) => l.msg.includes('DISCORD_GUILD_ID'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, key: 'DISCORD_GUILD_ID' });
    expect(warnings[0]?.msg).toMatch(/any server the bot is added to can use Switchyard/);
    expect(warnings[0]?.msg).toMatch(/Public Bot/);
    await registerGlobally(e.fake);
    const i = e.fake.slash({
      command: 'deployments',
      options: [{ name: 'environment', value: 'production' }],
      user: e.alice,
      guildId: makeSnowflake(),
    });
    expect((await e.fake.waitForCallback(i)).type).toBe(CallbackType.deferredChannelMessageWithSource);
  });
});
