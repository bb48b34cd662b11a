/**
 * What the Slack handlers rely on the app manifest to declare: the slash commands they register, the
 * bot events they listen to and the bot scopes the Web API methods they call require. The manifest
 * test checks `manifest.yml` against this list, so a handler cannot depend on something a user's
 * pasted manifest does not grant.
 */

/** Slash commands registered in handlers/slack/index.ts. */
export const SLACK_COMMANDS = ['/rollback', '/promote', '/deployments'] as const;
export type SlackCommand = (typeof SLACK_COMMANDS)[number];

/**
 * Bot events subscribed to (alert watching in channels the bot is in): Slack sends a public channel's
 * messages as `message.channels` and a private channel's as `message.groups` (both arrive as a `message`
 * event; a private channel's has `channel_type: "group"`), each only with its history scope below.
 */
export const SLACK_BOT_EVENTS = ['message.channels', 'message.groups'] as const;

/** The history scope each subscribed message event needs (from each event's documentation). */
export const SLACK_EVENT_SCOPES = {
  'message.channels': 'channels:history',
  'message.groups': 'groups:history',
} as const satisfies Record<(typeof SLACK_BOT_EVENTS)[number], string>;

/** Web API methods called, with the bot scope each needs (from each method's documentation). */
export const SLACK_METHOD_SCOPES = {
  'chat.postMessage': 'chat:write',
  'chat.update': 'chat:write',
  'chat.postEphemeral': 'chat:write',
  'usergroups.users.list': 'usergroups:read',
} as const;

/** Bot scopes the code needs: slash commands, the methods above, and history for the message events. */
export const SLACK_BOT_SCOPES: readonly string[] = [
  'commands',
  ...new Set(Object.values(SLACK_METHOD_SCOPES)),
  ...Object.values(SLACK_EVENT_SCOPES),
];
