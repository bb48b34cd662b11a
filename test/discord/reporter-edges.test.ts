/**
 * handlers/discord/reporter.ts: a progress state the renderer cannot render is logged, never thrown
 * into the switch job (the Reporter port's contract: `report` never rejects), and edits nothing.
 */
import type { REST } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { DiscordMessages } from '../../handlers/discord/messages.js';
import { DiscordReporter } from '../../handlers/discord/reporter.js';
import type { MessageRef } from '../../src/progress.js';
import { progressFixture } from '../support/progress.js';

const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);

describe('Discord reporter with a renderer that fails', () => {
  it('report resolves (the job goes on) and no edit is sent', async () => {
    const patched: unknown[] = [];
    const rest = {
      patch: async (_route: string, opts: { body: unknown }) => {
        patched.push(opts.body);
        return {};
      },
    } as unknown as REST;
    const messages = new DiscordMessages({ rest });
    const reporter = new DiscordReporter({
      messages,
      render: () => {
        throw new Error('embed field too long');
      },
    });
    const ref: MessageRef = {
      surface: 'discord',
      channel: '100000000000000001',
      messageId: '100000000000000002',
    };
    const progress = progressFixture({
      steps: [{ step: 'queued', state: 'done', startedAt: T0, endedAt: T0 + 500 }],
      outcome: 'succeeded',
      message: 'Rollback succeeded.',
      updatedAt: T0 + 900,
    });
    await expect(reporter.report(progress, [ref])).resolves.toBeUndefined();
    await reporter.flush();
    expect(patched).toEqual([]);
  });
});
