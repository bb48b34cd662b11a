/**
 * Switchyard's Discord application commands, as the JSON Discord's bulk-overwrite endpoint takes
 * (`PUT /applications/{app}/commands`, or `/guilds/{guild}/commands`), and the function that
 * registers them. Registering is a bulk overwrite: re-running it is harmless (same names keep their
 * ids; anything else Switchyard registered before is replaced).
 *
 * A guild registration and a global one are two lists: Discord shows a server both, so a command
 * registered in both scopes shows twice in that server's picker (e.g. registered globally first, then to
 * a test server with DISCORD_GUILD_ID). Registering reads the other list and says so (`duplicates`);
 * it empties it only when asked (`clearOther`): a bulk overwrite with no commands.
 */
import {
  DiscordAPIError,
  REST,
  RESTJSONErrorCodes,
  type RESTPutAPIApplicationCommandsJSONBody,
  Routes,
} from 'discord.js';
import { z } from 'zod';
import { ConfigError } from '../../src/errors.js';
import { describeIssues } from '../../src/zod-issues.js';
import { discordTokenRejected } from './client.js';

/** Option type STRING (docs: application command option type). */
const STRING = 3;
/** Command type CHAT_INPUT. */
const CHAT_INPUT = 1;
/** Contexts: GUILD only (no DMs: permission is by guild role). */
const GUILD_ONLY = [0];
/** Installation: GUILD_INSTALL. */
const GUILD_INSTALL = [0];

/** The three commands, identical in meaning to the Slack ones. */
export const SWITCHYARD_COMMANDS = [
  {
    type: CHAT_INPUT,
    name: 'rollback',
    description: 'Roll an environment back to an earlier deployment (asks for confirmation first).',
    contexts: GUILD_ONLY,
    integration_types: GUILD_INSTALL,
    options: [
      {
        type: STRING,
        name: 'environment',
        description: 'Environment to roll back, e.g. production',
        required: true,
        autocomplete: true,
      },
      {
        type: STRING,
        name: 'deployment',
        description: 'Deployment to roll back to (default: the one live before the current one)',
        required: false,
        autocomplete: true,
      },
    ],
  },
  {
    type: CHAT_INPUT,
    name: 'promote',
    description: 'Promote a deployment, or resume automatic deploys of a rolled-back environment.',
    contexts: GUILD_ONLY,
    integration_types: GUILD_INSTALL,
    options: [
      {
        type: STRING,
        name: 'target',
        description:
          'A deployment id, or an environment (its newest ready deployment, never one rolled back from)',
        required: true,
        autocomplete: true,
      },
    ],
  },
  {
    type: CHAT_INPUT,
    name: 'deployments',
    description: 'Show the deployments of an environment and which one serves traffic.',
    contexts: GUILD_ONLY,
    integration_types: GUILD_INSTALL,
    options: [
      {
        type: STRING,
        name: 'environment',
        description: 'Environment to list, e.g. production',
        required: true,
        autocomplete: true,
      },
    ],
  },
] as const satisfies RESTPutAPIApplicationCommandsJSONBody;

export interface RegisterOptions {
  readonly token: string;
  readonly applicationId: string;
  /**
   * `DISCORD_GUILD_ID`: register to this guild only (instant), unless `global`; absent: globally (may
   * take a while to show everywhere).
   */
  readonly guildId?: string;
  /**
   * Register globally even though `guildId` is given: `guildId` then names the server whose own
   * registration is checked (and cleared with `clearOther`), e.g. after testing in it.
   */
  readonly global?: boolean;
  /**
   * Also empty the other list once this one is registered: the global commands when registering to a
   * guild (`--clear-global`), the guild's when registering globally (`--global --clear-guild`).
   */
  readonly clearOther?: boolean;
  /** REST base (`DISCORD_API_URL`), default discord.com. */
  readonly apiUrl?: string;
}

/** The list a registration is not in: global for a guild registration, the guild's for a global one. */
export interface OtherRegistration {
  readonly scope: 'global' | 'guild';
  /** The guild (`scope: 'guild'`). */
  readonly guildId?: string;
  /** Switchyard's commands in that list, before any clearing: each shows twice in the guild. */
  readonly duplicates: readonly string[];
  /** Every command that list held, removed by `clearOther` (empty without it). */
  readonly cleared: readonly string[];
  /** Why it could not be read (the registration itself succeeded). */
  readonly unchecked?: string;
}

export interface RegisterResult {
  readonly scope: 'guild' | 'global';
  readonly names: readonly string[];
  /** The other list, when there is one to look at (a global registration without a guild id has none). */
  readonly other?: OtherRegistration;
}

/** What Discord returns for a list of application commands: only the names are used. */
const storedCommandsSchema = z.array(z.object({ name: z.string() }).loose());

/**
 * Registers the commands with one bulk overwrite, then reads the other list (see the module header).
 * Throws discord.js's DiscordAPIError on refusal (`registerProblem` names the setting to fix).
 */
export async function registerCommands(opts: RegisterOptions): Promise<RegisterResult> {
  const rest = new REST({ ...(opts.apiUrl === undefined ? {} : { api: opts.apiUrl }) }).setToken(opts.token);
  try {
    const guildId = opts.guildId;
    const globalRoute = Routes.applicationCommands(opts.applicationId);
    if (guildId === undefined) {
      // No server named: no other list to look at.
      const names = commandNames(await rest.put(globalRoute, { body: SWITCHYARD_COMMANDS }), globalRoute);
      return { scope: 'global', names };
    }
    const guildRoute = Routes.applicationGuildCommands(opts.applicationId, guildId);
    const scope = opts.global === true ? 'global' : 'guild';
    const [route, otherRoute] = scope === 'global' ? [globalRoute, guildRoute] : [guildRoute, globalRoute];
    const names = commandNames(await rest.put(route, { body: SWITCHYARD_COMMANDS }), route);
    const where: Pick<OtherRegistration, 'scope' | 'guildId'> =
      scope === 'guild' ? { scope: 'global' } : { scope: 'guild', guildId };
    let held: readonly string[];
    try {
      held = commandNames(await rest.get(otherRoute), otherRoute);
    } catch (e) {
      // Asked to clear it: a failure is the command's. Otherwise the registration stands: say so.
      if (opts.clearOther === true) throw e;
      const problem = registerProblem(e, opts)?.message ?? (e instanceof Error ? e.message : String(e));
      return { scope, names, other: { ...where, duplicates: [], cleared: [], unchecked: problem } };
    }
    const ours = new Set<string>(SWITCHYARD_COMMANDS.map((c) => c.name));
    const duplicates = held.filter((n) => ours.has(n));
    if (opts.clearOther === true && held.length > 0) {
      const empty: RESTPutAPIApplicationCommandsJSONBody = [];
      await rest.put(otherRoute, { body: empty });
      return { scope, names, other: { ...where, duplicates, cleared: held } };
    }
    return { scope, names, other: { ...where, duplicates, cleared: [] } };
  } finally {
    rest.clearHashSweeper();
    rest.clearHandlerSweeper();
  }
}

/** The names of a list of commands Discord answered with (checked: it is Discord's data). */
function commandNames(body: unknown, route: string): string[] {
  const parsed = storedCommandsSchema.safeParse(body);
  if (!parsed.success) {
    throw new Error(`Discord answered ${route} with an unexpected body: ${describeIssues(parsed.error)}`);
  }
  return parsed.data.map((c) => c.name);
}

/**
 * Discord's refusal of a registration as a ConfigError naming the setting to fix, or undefined when it
 * is not one a setting can fix (Discord down, a rate limit): 401 is the token (the bot's own message),
 * 403 Missing Access (50001) is the application id or the bot's invitation to the guild, 403 code 20012
 * and 404 Unknown Application (10002) the application id, 404 Unknown Guild (10004) the guild id
 * (https://discord.com/developers/docs/topics/opcodes-and-status-codes#json-json-error-codes).
 */
export function registerProblem(
  e: unknown,
  opts: Pick<RegisterOptions, 'applicationId' | 'guildId'>,
  /** What to do once a rejected token is replaced (`restart Switchyard` by default). */
  tokenThen?: string,
): ConfigError | undefined {
  if (!(e instanceof DiscordAPIError)) return undefined;
  const answer = `Discord answered ${e.status} ${e.message} on ${e.method.toUpperCase()} ${new URL(e.url).pathname}`;
  const app = `DISCORD_APPLICATION_ID is "${opts.applicationId}"; copy the Application ID from General Information of the bot's application at https://discord.com/developers/applications`;
  // The bot's own words for the token (npm start, DISCORD_GATEWAY=off), whatever Discord's text.
  if (e.status === 401) return discordTokenRejected('401 Unauthorized', tokenThen);
  if (e.code === RESTJSONErrorCodes.NotAuthorizedToPerformThisActionOnThisApplication) {
    return new ConfigError(`DISCORD_APPLICATION_ID is not this token's application (${answer}). ${app}.`, {
      key: 'DISCORD_APPLICATION_ID',
    });
  }
  if (e.code === RESTJSONErrorCodes.UnknownApplication) {
    return new ConfigError(`DISCORD_APPLICATION_ID: Discord knows no such application (${answer}). ${app}.`, {
      key: 'DISCORD_APPLICATION_ID',
    });
  }
  if (e.code === RESTJSONErrorCodes.UnknownGuild) {
    return new ConfigError(
      `DISCORD_GUILD_ID: Discord knows no such server (${answer}). DISCORD_GUILD_ID is "${opts.guildId}"; with Developer Mode on, right-click the server icon → Copy Server ID.`,
      { key: 'DISCORD_GUILD_ID' },
    );
  }
  if (e.status === 403 || e.code === RESTJSONErrorCodes.MissingAccess) {
    const invite =
      'https://discord.com/oauth2/authorize?client_id=<DISCORD_APPLICATION_ID>&scope=bot+applications.commands&permissions=274877991936';
    return new ConfigError(
      opts.guildId === undefined
        ? `DISCORD_APPLICATION_ID is not this token's application (${answer}). ${app}.`
        : `DISCORD_APPLICATION_ID is not this token's application, or the bot was not invited to DISCORD_GUILD_ID with the applications.commands scope (${answer}). ${app}; DISCORD_GUILD_ID is "${opts.guildId}": invite the bot to it with ${invite} (docs/discord.md, step 4).`,
      {
        key:
          opts.guildId === undefined ? 'DISCORD_APPLICATION_ID' : 'DISCORD_APPLICATION_ID, DISCORD_GUILD_ID',
      },
    );
  }
  return undefined;
}
