/**
 * handlers/discord/commands.ts `registerCommands` against the fake Discord, called directly: the other
 * list that cannot be read is only a note on a plain registration, but the failure of the command when
 * it was asked to clear that list (--clear-global): the operator must not be told it is done.
 */
import { DiscordAPIError } from 'discord.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { registerCommands, registerProblem, SWITCHYARD_COMMANDS } from '../../handlers/discord/commands.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/server.js';

describe('registerCommands: the other list cannot be read', () => {
  let fake: FakeDiscord;

  beforeEach(async () => {
    fake = await startFakeDiscord();
  });
  afterEach(async () => {
    await fake.close();
  });

  const globalList = () => new RegExp(`^/applications/${fake.applicationId}/commands$`);

  it('registering to a guild notes an unreadable global list, and registers all the same', async () => {
    fake.failNext({ method: 'GET', path: globalList(), status: 403, code: 50001, message: 'Missing Access' });
    const result = await registerCommands({
      token: fake.token,
      applicationId: fake.applicationId,
      guildId: fake.guildId,
      apiUrl: fake.apiUrl,
    });
    expect(result.scope).toBe('guild');
    expect(result.other).toMatchObject({ scope: 'global', duplicates: [], cleared: [] });
    expect(result.other?.unchecked).toMatch(/DISCORD_APPLICATION_ID/);
  });

  it("only Switchyard's own commands in the global list are reported as shown twice", async () => {
    fake.commands.set(
      'global',
      ['rollback', 'status'].map((name, k) => ({
        id: `13000000000000000${20 + k}`,
        application_id: fake.applicationId,
        name,
        description: name,
        type: 1,
        version: '1',
      })),
    );
    const result = await registerCommands({
      token: fake.token,
      applicationId: fake.applicationId,
      guildId: fake.guildId,
      apiUrl: fake.apiUrl,
    });
    expect(result.other).toEqual({ scope: 'global', duplicates: ['rollback'], cleared: [] });
  });

  it('asked to clear the global list (--clear-global), a failure to read it fails the command', async () => {
    fake.commands.set(
      'global',
      SWITCHYARD_COMMANDS.map((c, k) => ({
        id: `13000000000000000${10 + k}`,
        application_id: fake.applicationId,
        name: c.name,
        description: c.description,
        type: 1,
        version: '1',
      })),
    );
    fake.failNext({
      method: 'GET',
      path: globalList(),
      status: 500,
      code: 0,
      message: 'Internal Server Error',
      times: 4,
    });
    await expect(
      registerCommands({
        token: fake.token,
        applicationId: fake.applicationId,
        guildId: fake.guildId,
        clearOther: true,
        apiUrl: fake.apiUrl,
      }),
    ).rejects.toMatchObject({ status: 500 });
    // Not cleared: the global commands still stand (each still shows twice in the server).
    expect(fake.commands.get('global')?.map((c) => c.name)).toEqual(SWITCHYARD_COMMANDS.map((c) => c.name));
  });
});

describe('registerProblem: any 403', () => {
  it('a 403 with another code than Missing Access (50013 Missing Permissions) still names the settings', () => {
    const e = new DiscordAPIError(
      { code: 50013, message: 'Missing Permissions' },
      50013,
      403,
      'PUT',
      'https://discord.test/api/v10/applications/123/guilds/456/commands',
      {},
    );
    const problem = registerProblem(e, { applicationId: '123', guildId: '456' });
    expect(problem?.message).toMatch(
      /^DISCORD_APPLICATION_ID is not this token's application, or the bot was not invited/,
    );
    expect(problem?.context).toEqual({ key: 'DISCORD_APPLICATION_ID, DISCORD_GUILD_ID' });
  });
});
