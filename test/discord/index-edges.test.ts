/**
 * handlers/discord/index.ts `register`: a slash command Switchyard does not know (a stale registration
 * after an upgrade) is answered within Discord's 3 s, ephemerally, naming the commands and how to
 * refresh them — never left to time out as "The application did not respond".
 */
import { type Interaction, MessageFlags } from 'discord.js';
import { describe, expect, it } from 'vitest';
import type { DiscordDeps } from '../../handlers/discord/context.js';
import { register } from '../../handlers/discord/index.js';

describe('register', () => {
  it('answers an unknown slash command with the known ones, only to the person who typed it', async () => {
    const replies: { content?: string; flags?: number }[] = [];
    const interaction = {
      id: '100000000000000009',
      commandName: 'deploy',
      isAutocomplete: () => false,
      isChatInputCommand: () => true,
      isButton: () => false,
      reply: async (body: { content?: string; flags?: number }) => {
        replies.push(body);
      },
    } as unknown as Interaction;
    await register({} as DiscordDeps)(interaction);
    expect(replies).toHaveLength(1);
    expect(replies[0]?.content).toContain('Unknown command /deploy');
    expect(replies[0]?.content).toContain('/rollback, /promote, /deployments');
    expect(replies[0]?.flags).toBe(MessageFlags.Ephemeral);
  });
});
