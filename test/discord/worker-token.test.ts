/**
 * DISCORD_TOKEN written as `Bot <token>` (as in examples of the Authorization header): the config
 * normalises it once, so `npm run worker`'s reporters (handlers/reporters.ts) authenticate their message
 * edits against the fake Discord exactly as the gateway bot does — `Authorization: Bot <token>`, never
 * `Bot Bot <token>`.
 */
import { REST } from 'discord.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiscordMessages } from '../../handlers/discord/messages.js';
import { chatReporters } from '../../handlers/reporters.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import type { Progress } from '../../src/progress.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/server.js';
import { progressFixture } from '../support/progress.js';

const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);

function final(): Progress {
  return progressFixture({
    steps: [{ step: 'done', state: 'done', startedAt: T0, endedAt: T0 + 10 }],
    targetStandby: false,
    outcome: 'succeeded',
    message: 'Rolled back production to dep_b.',
    updatedAt: T0 + 10,
  });
}

describe('worker reporters with a "Bot "-prefixed DISCORD_TOKEN', () => {
  let fake: FakeDiscord;
  let rest: REST;

  beforeEach(async () => {
    fake = await startFakeDiscord();
    rest = new REST({ api: fake.apiUrl }).setToken(fake.token);
  });
  afterEach(async () => {
    rest.clearHashSweeper();
    rest.clearHandlerSweeper();
    await fake.close();
  });

  for (const written of ['Bot', 'Bearer'] as const) {
    it(`edits the switch's message with Authorization: Bot <token> (written "${written} <token>")`, async () => {
      const posted = await new DiscordMessages({ rest }).post(fake.channels.ops, {
        embeds: [{ title: 'Roll back production?' }],
        components: [],
        allowed_mentions: { parse: [] },
        allowedMentions: { parse: [] },
      });
      const { env } = loadConfig({
        DISCORD_TOKEN: `${written} ${fake.token}`,
        DISCORD_APPLICATION_ID: fake.applicationId,
        DISCORD_API_URL: fake.apiUrl,
      });
      const from = fake.calls.length;
      const reporter = chatReporters({ env }, silentLogger);
      await reporter.report(final(), [
        { surface: 'discord', channel: fake.channels.ops, messageId: posted.id },
      ]);
      const patch = await fake.waitForRequest((c) => c.method === 'PATCH', { from });
      expect(patch.authorization).toBe(`Bot ${fake.token}`);
      expect(patch.status).toBe(200);
      expect(JSON.stringify(fake.messages.get(posted.id))).toContain('Traffic is on');
    });
  }
});
