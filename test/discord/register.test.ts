/**
 * `npm run discord:register` against the fake Discord: guild registration when DISCORD_GUILD_ID is
 * set, global otherwise, bulk overwrite (re-running keeps command ids), and clear config errors —
 * Discord's refusals name the setting to fix. A registration in one scope beside Switchyard's commands
 * in the other (each shown twice in the server) is reported, and removed on request (--clear-global,
 * --global --clear-guild: a bulk overwrite with no commands).
 * The script runs as a child process exactly as npm runs it (tsx), configured by env vars only.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { discordTokenRejected } from '../../handlers/discord/client.js';
import { registerCommands, registerProblem, SWITCHYARD_COMMANDS } from '../../handlers/discord/commands.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/server.js';

const ROOT = resolve(import.meta.dirname, '../..');

function runScript(
  env: Record<string, string>,
  flags: readonly string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      resolve(ROOT, 'node_modules/.bin/tsx'),
      ['scripts/discord-register.ts', ...flags],
      // Only what the script needs: no DISCORD_* from the developer's shell leaks in.
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env } },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        done({ code, stdout, stderr });
      },
    );
  });
}

describe('discord command registration', () => {
  let fake: FakeDiscord;

  beforeEach(async () => {
    fake = await startFakeDiscord();
  });
  afterEach(async () => {
    await fake.close();
  });

  it('registers the three commands to the guild with autocomplete, and re-running keeps their ids', async () => {
    const env = {
      DISCORD_TOKEN: fake.token,
      DISCORD_APPLICATION_ID: fake.applicationId,
      DISCORD_GUILD_ID: fake.guildId,
      DISCORD_API_URL: fake.apiUrl,
    };
    const first = await runScript(env);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('/rollback, /promote, /deployments');
    expect(first.stdout).toContain(`guild ${fake.guildId}`);
    const put = fake.calls.find((c) => c.method === 'PUT');
    expect(put?.path).toBe(`/applications/${fake.applicationId}/guilds/${fake.guildId}/commands`);
    expect(put?.authorization).toBe(`Bot ${fake.token}`);
    const stored = fake.commands.get(fake.guildId) ?? [];
    expect(stored.map((c) => c.name)).toEqual(['rollback', 'promote', 'deployments']);
    const rollback = stored.find((c) => c.name === 'rollback');
    expect(rollback?.options).toEqual([
      expect.objectContaining({ name: 'environment', type: 3, required: true, autocomplete: true }),
      expect.objectContaining({ name: 'deployment', type: 3, required: false, autocomplete: true }),
    ]);
    const ids = stored.map((c) => c.id);
    const versions = stored.map((c) => c.version);

    const again = await runScript(env);
    expect(again.code).toBe(0);
    const after = fake.commands.get(fake.guildId) ?? [];
    expect(after.map((c) => c.id)).toEqual(ids);
    expect(after.map((c) => c.version)).toEqual(versions);
    expect(fake.commands.has('global')).toBe(false);
  });

  it('registers globally when DISCORD_GUILD_ID is not set', async () => {
    const out = await runScript({
      DISCORD_TOKEN: fake.token,
      DISCORD_APPLICATION_ID: fake.applicationId,
      DISCORD_API_URL: fake.apiUrl,
    });
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('global');
    expect(fake.calls.find((c) => c.method === 'PUT')?.path).toBe(
      `/applications/${fake.applicationId}/commands`,
    );
    expect(fake.commands.get('global')?.map((c) => c.name)).toEqual(['rollback', 'promote', 'deployments']);
  });

  it('sends the token once, with DISCORD_TOKEN written "Bot <token>"', async () => {
    const out = await runScript({
      DISCORD_TOKEN: `Bot ${fake.token}`,
      DISCORD_APPLICATION_ID: fake.applicationId,
      DISCORD_GUILD_ID: fake.guildId,
      DISCORD_API_URL: fake.apiUrl,
    });
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    const put = fake.calls.find((c) => c.method === 'PUT');
    expect(put?.authorization).toBe(`Bot ${fake.token}`);
    expect(put?.status).toBe(200);
  });

  it('says which setting is missing or wrong, and registers nothing', async () => {
    const missing = await runScript({ DISCORD_API_URL: fake.apiUrl });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('DISCORD_TOKEN and DISCORD_APPLICATION_ID');
    const bad = await runScript({
      DISCORD_TOKEN: fake.token,
      DISCORD_APPLICATION_ID: 'my-app',
      DISCORD_API_URL: fake.apiUrl,
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(
      'DISCORD_APPLICATION_ID: got "my-app", expected a numeric Discord snowflake',
    );
    // One of the pair set: the configuration names the other (exit 2, as a missing setting).
    const noApp = await runScript({ DISCORD_TOKEN: fake.token, DISCORD_API_URL: fake.apiUrl });
    expect(noApp.code).toBe(2);
    expect(noApp.stderr).toMatch(/^discord:register: DISCORD_APPLICATION_ID: got nothing/);
    expect(fake.calls).toHaveLength(0);
  });

  it('reports Discord refusing the token', async () => {
    await expect(
      registerCommands({ token: 'wrong', applicationId: fake.applicationId, apiUrl: fake.apiUrl }),
    ).rejects.toThrow(/401|Unauthorized/);
    expect(fake.commands.size).toBe(0);
  });

  it('sends definitions the documented validation accepts (names, descriptions, option order)', async () => {
    const result = await registerCommands({
      token: fake.token,
      applicationId: fake.applicationId,
      guildId: fake.guildId,
      apiUrl: fake.apiUrl,
    });
    expect(result).toEqual({
      scope: 'guild',
      names: SWITCHYARD_COMMANDS.map((c) => c.name),
      other: { scope: 'global', duplicates: [], cleared: [] },
    });
  });

  it('a token Discord rejects (401) is reported naming DISCORD_TOKEN, in the words of npm start, saying to run the script again', async () => {
    const out = await runScript({
      DISCORD_TOKEN: 'MTAxMjM0NTY3ODkwMTIzNDU2Nzg5.Gabcde.copied-the-oauth2-client-secret',
      DISCORD_APPLICATION_ID: fake.applicationId,
      DISCORD_GUILD_ID: fake.guildId,
      DISCORD_API_URL: fake.apiUrl,
    });
    expect(out.code).toBe(1);
    expect(out.stderr).toBe(
      `discord:register failed: ${discordTokenRejected('401 Unauthorized', 'run npm run discord:register again').message}\n`,
    );
    expect(out.stderr).toMatch(
      /put the new token in DISCORD_TOKEN and run npm run discord:register again\.\n$/,
    );
    expect(fake.commands.size).toBe(0);
  });

  it('403 Missing Access (50001) names DISCORD_APPLICATION_ID, and DISCORD_GUILD_ID when registering to a server', async () => {
    const env = {
      DISCORD_TOKEN: fake.token,
      DISCORD_APPLICATION_ID: '123456789012345678',
      DISCORD_API_URL: fake.apiUrl,
    };
    const guild = await runScript({ ...env, DISCORD_GUILD_ID: fake.guildId });
    expect(guild.code).toBe(1);
    expect(guild.stderr).toContain(
      "DISCORD_APPLICATION_ID is not this token's application, or the bot was not invited to DISCORD_GUILD_ID with the applications.commands scope (Discord answered 403 Missing Access on PUT ",
    );
    expect(guild.stderr).toContain(
      `DISCORD_GUILD_ID is "${fake.guildId}": invite the bot to it with https://discord.com/oauth2/authorize?`,
    );
    const global = await runScript(env);
    expect(global.code).toBe(1);
    expect(global.stderr).toMatch(
      /^discord:register failed: DISCORD_APPLICATION_ID is not this token's application \(Discord answered 403 Missing Access on PUT \/api\/v10\/applications\/123456789012345678\/commands\)\. DISCORD_APPLICATION_ID is "123456789012345678"/,
    );
    expect(fake.commands.size).toBe(0);
  });

  it('names the setting for Discord’s other refusals: 20012 and Unknown Application, Unknown Guild', async () => {
    const refusal = (opts: { guildId?: string }) =>
      registerCommands({
        token: fake.token,
        applicationId: fake.applicationId,
        apiUrl: fake.apiUrl,
        ...opts,
      }).then(
        () => undefined,
        (e: unknown) => registerProblem(e, { applicationId: fake.applicationId, ...opts })?.message,
      );
    fake.failNext({
      method: 'PUT',
      path: /\/commands$/,
      status: 403,
      code: 20012,
      message: 'You are not authorized to perform this action on this application',
    });
    expect(await refusal({})).toMatch(
      /^DISCORD_APPLICATION_ID is not this token's application \(Discord answered 403/,
    );
    fake.failNext({
      method: 'PUT',
      path: /\/commands$/,
      status: 404,
      code: 10002,
      message: 'Unknown Application',
    });
    expect(await refusal({})).toMatch(
      /^DISCORD_APPLICATION_ID: Discord knows no such application \(Discord answered 404/,
    );
    // The fake knows one server: any other id is Unknown Guild (10004), as on Discord.
    expect(await refusal({ guildId: '998877665544332211' })).toMatch(
      /^DISCORD_GUILD_ID: Discord knows no such server \(Discord answered 404 Unknown Guild .*DISCORD_GUILD_ID is "998877665544332211"/,
    );
    // Not a setting: Discord failing is reported as it is.
    fake.failNext({
      method: 'PUT',
      path: /\/commands$/,
      status: 500,
      code: 0,
      message: 'Internal Server Error',
      times: 4,
    });
    expect(await refusal({})).toBeUndefined();
    expect(fake.commands.size).toBe(0);
  });

  it('global first, then DISCORD_GUILD_ID: warns that each command shows twice and how to clear the global ones; --clear-global does', async () => {
    const env = {
      DISCORD_TOKEN: fake.token,
      DISCORD_APPLICATION_ID: fake.applicationId,
      DISCORD_API_URL: fake.apiUrl,
    };
    expect((await runScript(env)).code).toBe(0); // global, as Troubleshooting's first advice leaves it
    const names = SWITCHYARD_COMMANDS.map((c) => c.name);
    const guild = await runScript({ ...env, DISCORD_GUILD_ID: fake.guildId });
    expect(guild.code).toBe(0);
    expect(guild.stderr).toContain(
      `Warning: /rollback, /promote, /deployments are also registered globally (by an earlier run without DISCORD_GUILD_ID), so each shows twice in server ${fake.guildId}. To remove the global registration (every global command of this application): npm run discord:register -- --clear-global.`,
    );
    // Told, not changed: both lists stand.
    expect(fake.commands.get('global')?.map((c) => c.name)).toEqual(names);
    expect(fake.commands.get(fake.guildId)?.map((c) => c.name)).toEqual(names);

    const from = fake.calls.length;
    const cleared = await runScript({ ...env, DISCORD_GUILD_ID: fake.guildId }, ['--clear-global']);
    expect(cleared.stderr).toBe('');
    expect(cleared.code).toBe(0);
    expect(cleared.stdout).toContain(
      `Removed the global registration (/rollback, /promote, /deployments): each command shows once in server ${fake.guildId}`,
    );
    // The guild's list first (never a moment without the commands), then the documented bulk
    // overwrite of the global list with none.
    expect(
      fake.calls
        .slice(from)
        .map(
          (c) =>
            `${c.method} ${c.path} ${JSON.stringify(c.method === 'PUT' && c.path.endsWith(`${fake.applicationId}/commands`) ? c.body : '')} ${c.status}`,
        ),
    ).toEqual([
      `PUT /applications/${fake.applicationId}/guilds/${fake.guildId}/commands "" 200`,
      `GET /applications/${fake.applicationId}/commands "" 200`,
      `PUT /applications/${fake.applicationId}/commands [] 200`,
    ]);
    expect(fake.commands.get('global')).toEqual([]);
    expect(fake.commands.get(fake.guildId)?.map((c) => c.name)).toEqual(names);

    // Nothing twice any more: no warning, nothing to clear.
    const again = await runScript({ ...env, DISCORD_GUILD_ID: fake.guildId });
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('the reverse: --global with DISCORD_GUILD_ID warns about the server’s own registration; --global --clear-guild removes it', async () => {
    const env = {
      DISCORD_TOKEN: fake.token,
      DISCORD_APPLICATION_ID: fake.applicationId,
      DISCORD_GUILD_ID: fake.guildId,
      DISCORD_API_URL: fake.apiUrl,
    };
    const names = SWITCHYARD_COMMANDS.map((c) => c.name);
    await registerCommands({
      token: fake.token,
      applicationId: fake.applicationId,
      guildId: fake.guildId,
      apiUrl: fake.apiUrl,
    });
    const global = await runScript(env, ['--global']);
    expect(global.code).toBe(0);
    expect(global.stdout).toContain('Registered /rollback, /promote, /deployments for all guilds (global');
    expect(global.stderr).toContain(
      `Warning: /rollback, /promote, /deployments are also registered to server ${fake.guildId} (DISCORD_GUILD_ID), so each shows twice there once the global ones appear. To remove that server's registration: npm run discord:register -- --global --clear-guild`,
    );
    expect(fake.commands.get(fake.guildId)?.map((c) => c.name)).toEqual(names);

    const cleared = await runScript(env, ['--global', '--clear-guild']);
    expect(cleared.stderr).toBe('');
    expect(cleared.code).toBe(0);
    expect(cleared.stdout).toContain(
      `Removed the registration to server ${fake.guildId} (/rollback, /promote, /deployments)`,
    );
    const clear = fake.calls.find(
      (c) =>
        c.method === 'PUT' &&
        c.path.endsWith(`/guilds/${fake.guildId}/commands`) &&
        Array.isArray(c.body) &&
        c.body.length === 0,
    );
    expect(clear?.status).toBe(200);
    expect(fake.commands.get(fake.guildId)).toEqual([]);
    expect(fake.commands.get('global')?.map((c) => c.name)).toEqual(names);
  });

  it('refuses a clearing flag without the scope it belongs to, or an unknown flag, naming it, before calling Discord', async () => {
    const env = {
      DISCORD_TOKEN: fake.token,
      DISCORD_APPLICATION_ID: fake.applicationId,
      DISCORD_API_URL: fake.apiUrl,
    };
    const [clearGlobal, clearGuild, unknown] = await Promise.all([
      runScript(env, ['--clear-global']),
      runScript({ ...env, DISCORD_GUILD_ID: fake.guildId }, ['--clear-guild']),
      runScript(env, ['--clear-everything']),
    ]);
    expect(clearGlobal).toEqual({
      code: 2,
      stdout: '',
      stderr:
        'discord:register: --clear-global: removes the global registration after registering to a server; expected DISCORD_GUILD_ID set, without --global\n',
    });
    expect(clearGuild.code).toBe(2);
    expect(clearGuild.stderr).toContain(
      "--clear-guild: removes DISCORD_GUILD_ID's registration after registering globally; expected --global and DISCORD_GUILD_ID set",
    );
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('Known flags: --global, --clear-global, --clear-guild');
    expect(fake.calls).toHaveLength(0);
  });
});
