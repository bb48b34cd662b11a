/**
 * Switchyard's Discord application commands, as the JSON Discord's bulk-overwrite endpoint takes
 * (`PUT /applications/{app}/commands`, or `/guilds/{guild}/commands`), and the function that
 * registers them. Registering is a bulk overwrite: re-running it is harmless (same names keep their
 * ids; anything else Switchyard registered before is replaced).
 */
import { REST, type RESTPutAPIApplicationCommandsJSONBody, Routes } from 'discord.js';

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
  /** Register to this guild only (instant); absent: globally (may take a while to show everywhere). */
  readonly guildId?: string;
  /** REST base (`DISCORD_API_URL`), default discord.com. */
  readonly apiUrl?: string;
}

export interface RegisterResult {
  readonly scope: 'guild' | 'global';
  readonly names: readonly string[];
}

/** Registers the commands with one bulk overwrite. Throws discord.js's DiscordAPIError on refusal. */
export async function registerCommands(opts: RegisterOptions): Promise<RegisterResult> {
  const rest = new REST({ ...(opts.apiUrl === undefined ? {} : { api: opts.apiUrl }) }).setToken(opts.token);
  const route =
    opts.guildId === undefined
      ? Routes.applicationCommands(opts.applicationId)
      : Routes.applicationGuildCommands(opts.applicationId, opts.guildId);
  const stored = (await rest.put(route, { body: SWITCHYARD_COMMANDS })) as readonly { name: string }[];
  return { scope: opts.guildId === undefined ? 'global' : 'guild', names: stored.map((c) => c.name) };
}
