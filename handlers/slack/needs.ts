/**
 * What the Slack handlers rely on the app manifest to declare: the slash commands they register, the
 * bot events they listen to and the bot scopes the Web API methods they call require. The manifest
 * test checks `manifest.yml` against this list, so a handler cannot depend on something a user's
 * pasted manifest does not grant.
 */

/** Slash commands registered in handlers/slack/index.ts. */
export const SLACK_COMMANDS = ['/rollback', '/promote', '/deployments'] as const;
export type SlackCommand = (typeof SLACK_COMMANDS)[number];

/** Bot events subscribed to (alert watching in channels the bot is in). */
export const SLACK_BOT_EVENTS = ['message.channels'] as const;

/** Web API methods called, with the bot scope each needs (from each method's documentation). */
export const SLACK_METHOD_SCOPES = {
  'chat.postMessage': 'chat:write',
  'chat.update': 'chat:write',
  'chat.postEphemeral': 'chat:write',
  'usergroups.users.list': 'usergroups:read',
} as const;

/** Bot scopes the code needs: slash commands, the methods above, and history for message.channels. */
export const SLACK_BOT_SCOPES: readonly string[] = [
  'commands',
  ...new Set(Object.values(SLACK_METHOD_SCOPES)),
  'channels:history',
];
