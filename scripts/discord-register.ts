/**
 * `npm run discord:register`: registers /rollback, /promote and /deployments with Discord — to the
 * guild `DISCORD_GUILD_ID` when set (shows up instantly), else globally. A bulk overwrite, so
 * re-running is harmless. Configuration comes from src/config.ts only (DISCORD_TOKEN,
 * DISCORD_APPLICATION_ID, DISCORD_GUILD_ID, DISCORD_API_URL).
 */
import { registerCommands } from '../handlers/discord/commands.js';
import { loadConfig } from '../src/config.js';
import { asSwitchyardError } from '../src/errors.js';

async function main(): Promise<number> {
  const { env } = loadConfig();
  if (!env.DISCORD_TOKEN || !env.DISCORD_APPLICATION_ID) {
    process.stderr.write(
      'DISCORD_TOKEN and DISCORD_APPLICATION_ID: got nothing, expected the bot token and application id (see docs/discord.md)\n',
    );
    return 2;
  }
  const result = await registerCommands({
    token: env.DISCORD_TOKEN,
    applicationId: env.DISCORD_APPLICATION_ID,
    ...(env.DISCORD_GUILD_ID === undefined ? {} : { guildId: env.DISCORD_GUILD_ID }),
    ...(env.DISCORD_API_URL === undefined ? {} : { apiUrl: env.DISCORD_API_URL }),
  });
  const where =
    result.scope === 'guild'
      ? `guild ${env.DISCORD_GUILD_ID}`
      : 'all guilds (global; may take up to an hour to appear)';
  process.stdout.write(`Registered ${result.names.map((n) => `/${n}`).join(', ')} for ${where}.\n`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const err = asSwitchyardError(e);
    process.stderr.write(`discord:register failed: ${err.message}\n`);
    process.exitCode = 1;
  },
);
