/**
 * `npm run discord:register`: registers /rollback, /promote and /deployments with Discord — to the
 * guild `DISCORD_GUILD_ID` when set (shows up instantly), else globally. A bulk overwrite, so
 * re-running is harmless. Configuration comes from src/config.ts only (DISCORD_TOKEN,
 * DISCORD_APPLICATION_ID, DISCORD_GUILD_ID, DISCORD_API_URL).
 *
 * Discord shows a server its guild commands and the global ones, so a command registered both ways
 * shows twice there. After registering, the script reads the other list and warns when Switchyard's
 * commands are in it too; flags (after `--`: `npm run discord:register -- --clear-global`) remove it:
 *   --clear-global   with DISCORD_GUILD_ID: also remove the application's global commands;
 *   --global         register globally even with DISCORD_GUILD_ID set (that server's own registration
 *                    is then the one checked);
 *   --clear-guild    with --global: also remove the commands registered to DISCORD_GUILD_ID.
 * Exit codes: 0 registered (warnings on stderr), 1 Discord refused (naming the setting to fix when
 * one can: DISCORD_TOKEN, DISCORD_APPLICATION_ID, DISCORD_GUILD_ID) or could not be reached, 2 a
 * configuration error before Discord is asked (a missing or bad setting, as `npm start` exits) or a
 * bad flag.
 */
import { z } from 'zod';
import { type RegisterResult, registerCommands, registerProblem } from '../handlers/discord/commands.js';
import { loadConfig, parseFlags } from '../src/config.js';
import { asSwitchyardError, ConfigError } from '../src/errors.js';

const flagsSchema = z.strictObject({
  global: z.boolean().default(false),
  'clear-global': z.boolean().default(false),
  'clear-guild': z.boolean().default(false),
});
type Flags = z.infer<typeof flagsSchema>;

/** The flags, or the message naming the bad one. */
function registerFlags(argv: readonly string[], guildId: string | undefined): Flags | string {
  let flags: Flags;
  try {
    flags = parseFlags(argv, flagsSchema, 'boolean');
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  if (flags['clear-global'] && (guildId === undefined || flags.global)) {
    return '--clear-global: removes the global registration after registering to a server; expected DISCORD_GUILD_ID set, without --global';
  }
  if (flags['clear-guild'] && (guildId === undefined || !flags.global)) {
    return "--clear-guild: removes DISCORD_GUILD_ID's registration after registering globally; expected --global and DISCORD_GUILD_ID set";
  }
  return flags;
}

const list = (names: readonly string[]) => names.map((n) => `/${n}`).join(', ');

/** What the other registration means for the operator: stdout for what was done, stderr for warnings. */
function reportOther(result: RegisterResult, guildId: string | undefined): void {
  const other = result.other;
  if (other === undefined) {
    // Global, no server named: a server's own registration (from testing) cannot be looked up.
    process.stdout.write(
      'If these commands were registered to a server before (DISCORD_GUILD_ID), they show twice there; remove that registration with: DISCORD_GUILD_ID=<server id> npm run discord:register -- --global --clear-guild\n',
    );
    return;
  }
  const server = `server ${guildId}`;
  const otherList = other.scope === 'global' ? 'global registration' : `registration to ${server}`;
  if (other.unchecked !== undefined) {
    process.stderr.write(
      `Warning: could not read the ${otherList} (${other.unchecked}); if Switchyard's commands are there too, each shows twice in ${server}.\n`,
    );
    return;
  }
  if (other.cleared.length > 0) {
    process.stdout.write(
      other.scope === 'global'
        ? `Removed the global registration (${list(other.cleared)}): each command shows once in ${server} (Discord may take up to an hour to drop global commands everywhere).\n`
        : `Removed the registration to ${server} (${list(other.cleared)}): each command shows once there (the global ones).\n`,
    );
    return;
  }
  if (other.duplicates.length === 0) return;
  process.stderr.write(
    other.scope === 'global'
      ? `Warning: ${list(other.duplicates)} are also registered globally (by an earlier run without DISCORD_GUILD_ID), so each shows twice in ${server}. To remove the global registration (every global command of this application): npm run discord:register -- --clear-global. To keep the global commands for every server instead, remove this server's: npm run discord:register -- --global --clear-guild\n`
      : `Warning: ${list(other.duplicates)} are also registered to ${server} (DISCORD_GUILD_ID), so each shows twice there once the global ones appear. To remove that server's registration: npm run discord:register -- --global --clear-guild\n`,
  );
}

async function main(): Promise<number> {
  let env: ReturnType<typeof loadConfig>['env'];
  try {
    ({ env } = loadConfig());
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`discord:register: ${e.message}\n`);
    return 2;
  }
  if (!env.DISCORD_TOKEN || !env.DISCORD_APPLICATION_ID) {
    process.stderr.write(
      'DISCORD_TOKEN and DISCORD_APPLICATION_ID: got nothing, expected the bot token and application id (see docs/discord.md)\n',
    );
    return 2;
  }
  const flags = registerFlags(process.argv.slice(2), env.DISCORD_GUILD_ID);
  if (typeof flags === 'string') {
    process.stderr.write(`discord:register: ${flags}\n`);
    return 2;
  }
  const opts = {
    token: env.DISCORD_TOKEN,
    applicationId: env.DISCORD_APPLICATION_ID,
    ...(env.DISCORD_GUILD_ID === undefined ? {} : { guildId: env.DISCORD_GUILD_ID }),
    ...(env.DISCORD_API_URL === undefined ? {} : { apiUrl: env.DISCORD_API_URL }),
    global: flags.global,
    clearOther: flags['clear-global'] || flags['clear-guild'],
  };
  let result: RegisterResult;
  try {
    result = await registerCommands(opts);
  } catch (e) {
    // Discord's bare words ("401: Unauthorized", "Missing Access") name no setting: say which to fix.
    throw registerProblem(e, opts, 'run npm run discord:register again') ?? e;
  }
  const where =
    result.scope === 'guild'
      ? `guild ${env.DISCORD_GUILD_ID}`
      : 'all guilds (global; may take up to an hour to appear)';
  process.stdout.write(`Registered ${list(result.names)} for ${where}.\n`);
  reportOther(result, env.DISCORD_GUILD_ID);
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
