/**
 * The Discord Reporter and message editor against the fake Discord with the real discord.js REST
 * client: edits with the bot token, coalescing (the newest state wins), 429 honoured per Retry-After,
 * ordering (progress beats a late confirmation view; an older snapshot never replaces a newer one;
 * nothing replaces the final state), and failures logged and counted but never thrown.
 */
import { REST } from 'discord.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiscordMessages } from '../../handlers/discord/messages.js';
import { DiscordReporter } from '../../handlers/discord/reporter.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { type MessageRef, type Progress, progressSchema } from '../../src/progress.js';
import type { DiscordMessage } from '../../src/views/discord.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/server.js';
import { textOf } from './harness.js';

const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);

function progress(step: number, outcome?: 'succeeded' | 'failed'): Progress {
  const names = ['queued', 'validating', 'switching', 'verifying', 'done'] as const;
  const steps = names.slice(0, step + 1).map((name, k) => ({
    step: name,
    state: k < step || outcome !== undefined ? ('done' as const) : ('running' as const),
    startedAt: T0 + k * 1000,
    ...(k < step || outcome !== undefined ? { endedAt: T0 + k * 1000 + 500 } : {}),
  }));
  return progressSchema.parse({
    jobId: 'sw_1',
    planId: 'plan_0123abcd',
    action: 'rollback',
    environment: 'production',
    targetId: 'dep_b',
    fromId: 'dep_a',
    requestedBy: { surface: 'discord', userId: '42', displayName: 'alice' },
    steps,
    ...(outcome === undefined ? {} : { outcome, message: `Rollback ${outcome}.` }),
    traffic: outcome === 'succeeded' ? [{ hostname: 'shop.example', deploymentId: 'dep_b', ok: true }] : [],
    updatedAt: T0 + step * 1000 + (outcome === undefined ? 0 : 900),
  });
}

function plain(title: string): DiscordMessage {
  return {
    embeds: [{ title }],
    components: [],
    allowed_mentions: { parse: [] },
    allowedMentions: { parse: [] },
  };
}

describe('Discord reporter', () => {
  let fake: FakeDiscord;
  let rest: REST;
  let metrics: Metrics;
  let messages: DiscordMessages;
  let reporter: DiscordReporter;
  let ref: MessageRef;

  beforeEach(async () => {
    fake = await startFakeDiscord();
    rest = new REST({ api: fake.apiUrl }).setToken(fake.token);
    metrics = createMetrics();
    messages = new DiscordMessages({ rest, metrics });
    reporter = new DiscordReporter({ messages });
    const posted = await messages.post(fake.channels.ops, plain('Roll back production?'));
    ref = { surface: 'discord', channel: fake.channels.ops, messageId: posted.id };
  });

  afterEach(async () => {
    rest.clearHashSweeper();
    rest.clearHandlerSweeper();
    await fake.close();
  });

  const edits = () => fake.calls.filter((c) => c.method === 'PATCH');

  it('edits the channel message with the bot token, coalescing states that arrive during an edit', async () => {
    const all = [0, 1, 2, 3].map((s) => reporter.report(progress(s), [ref]));
    all.push(reporter.report(progress(4, 'succeeded'), [ref]));
    await Promise.all(all);
    // The first state went out at once; the three in between were replaced by the final one.
    expect(edits()).toHaveLength(2);
    for (const c of edits()) {
      expect(c.path).toBe(`/channels/${fake.channels.ops}/messages/${ref.messageId}`);
      expect(c.authorization).toBe(`Bot ${fake.token}`);
      expect(c.status).toBe(200);
    }
    const text = textOf(fake.messages.get(ref.messageId) ?? { content: '', embeds: [] });
    expect(text).toContain('Rolled back production to dep_b');
    expect(text).toContain('Traffic is on');
  });

  it('waits out a 429 for its Retry-After, then sends the newest state', async () => {
    fake.rateLimitNext({ method: 'PATCH', path: /^\/channels\/\d+\/messages\/\d+$/, retryAfterSeconds: 0.2 });
    const first = reporter.report(progress(1), [ref]);
    const middle = reporter.report(progress(2), [ref]);
    const last = reporter.report(progress(3), [ref]);
    await Promise.all([first, middle, last]);
    const calls = edits();
    expect(calls.map((c) => c.status)).toEqual([429, 200, 200]);
    const [limited, retried] = calls;
    if (!limited || !retried) throw new Error('missing calls');
    // Honoured: the retry came no sooner than retry_after (0.2 s) after the 429.
    expect(retried.at - limited.at).toBeGreaterThanOrEqual(200);
    const text = textOf(fake.messages.get(ref.messageId) ?? { content: '', embeds: [] });
    expect(text).toMatch(/Verifying traffic.*\(running\)/);
    const errors = await metrics.chatApiErrors.get();
    expect(errors.values).toEqual([]);
  });

  it('logs and counts a failed edit without throwing, and later states still go out', async () => {
    fake.failNext({
      method: 'PATCH',
      path: /^\/channels\/\d+\/messages\/\d+$/,
      status: 403,
      code: 50001,
      message: 'Missing Access',
    });
    await expect(reporter.report(progress(1), [ref])).resolves.toBeUndefined();
    const errors = await metrics.chatApiErrors.get();
    expect(errors.values).toEqual([
      expect.objectContaining({
        labels: { surface: 'discord', method: 'channels.messages.edit', code: '50001' },
        value: 1,
      }),
    ]);
    await reporter.report(progress(4, 'succeeded'), [ref]);
    expect(edits().map((c) => c.status)).toEqual([403, 200]);
  });

  it('never lets a late confirmation view or an older snapshot replace newer progress', async () => {
    await reporter.report(progress(2), [ref]);
    await messages.edit(ref.channel, ref.messageId, plain('Confirmed'), { kind: 'view' });
    await reporter.report(progress(1), [ref]);
    expect(edits()).toHaveLength(1);
    await reporter.report(progress(4, 'failed'), [ref]);
    await reporter.report(progress(3), [ref]);
    // Same timestamp as the final state but not final: still never replaces it.
    const final = progress(4, 'failed');
    await reporter.report({ ...progress(4), updatedAt: final.updatedAt }, [ref]);
    expect(edits()).toHaveLength(2);
    expect(textOf(fake.messages.get(ref.messageId) ?? { content: '', embeds: [] })).toContain('failed');
  });

  it('ignores message refs of other surfaces', async () => {
    await reporter.report(progress(1), [{ surface: 'slack', channel: 'C1', messageId: '1.2' }]);
    expect(edits()).toHaveLength(0);
  });
});
