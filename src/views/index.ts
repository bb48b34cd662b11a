/**
 * Public entry of the views module: the action id scheme, the view model builders and the three
 * renderers. Handlers import from here: build a MessageView once, render it for their surface.
 */
export * from './actions.js';
export { type ConsoleMessage, consoleMessageSchema, renderConsole } from './console.js';
export { DISCORD_LIMITS, type DiscordMessage, escapeDiscord, renderDiscord } from './discord.js';
export * from './model.js';
export { escapeMrkdwn, renderSlack, SLACK_LIMITS, type SlackMessage } from './slack.js';
export type * from './types.js';
