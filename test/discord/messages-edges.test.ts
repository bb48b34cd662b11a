/**
 * handlers/discord/messages.ts `discordRetryable`: which failures a job's final state outlasts. Every
 * 5xx may pass — 500 Internal Server Error as much as 502/503 — and so may a 429 or a network fault;
 * Discord's 4xx refusals are final.
 */
import { DiscordAPIError, HTTPError } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { discordRetryable } from '../../handlers/discord/messages.js';

function http(status: number): HTTPError {
  return new HTTPError(status, 'error', 'PATCH', 'https://discord.test/api', {
    files: undefined,
    body: undefined,
  });
}

describe('discordRetryable', () => {
  it('a 500, 502, 503 and 429 may pass; so may a network fault', () => {
    for (const status of [500, 502, 503, 429])
      expect(discordRetryable(http(status)), String(status)).toBe(true);
    expect(discordRetryable(new Error('socket hang up'))).toBe(true);
  });

  it("Discord's refusals (403 Missing Access, 404 Unknown Message) are final", () => {
    expect(
      discordRetryable(
        new DiscordAPIError({ code: 50001, message: 'Missing Access' }, 50001, 403, 'PATCH', '', {}),
      ),
    ).toBe(false);
    expect(
      discordRetryable(
        new DiscordAPIError({ code: 10008, message: 'Unknown Message' }, 10008, 404, 'PATCH', '', {}),
      ),
    ).toBe(false);
  });
});
