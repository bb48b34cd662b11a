/**
 * `npm run discord:register` against the fake Discord: guild registration when DISCORD_GUILD_ID is
 * set, global otherwise, bulk overwrite (re-running keeps command ids), and clear config errors.
 * The script runs as a child process exactly as npm runs it (tsx), configured by env vars only.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { registerCommands, SWITCHYARD_COMMANDS } from '../../handlers/discord/commands.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/server.js';

const ROOT = resolve(import.meta.dirname, '../..');

function runScript(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      resolve(ROOT, 'node_modules/.bin/tsx'),
      ['scripts/discord-register.ts'],
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
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(
      'DISCORD_APPLICATION_ID: got "my-app", expected a numeric Discord snowflake',
    );
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
    expect(result).toEqual({ scope: 'guild', names: SWITCHYARD_COMMANDS.map((c) => c.name) });
  });
});
