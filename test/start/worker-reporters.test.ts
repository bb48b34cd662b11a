/**
 * `npm run worker`'s reporters: a separate worker process edits the Slack confirmation message with
 * the bot token (through the fake Slack Web API), as the worker inside `npm start` does. And a job's
 * messages on a surface the worker has no reporter for (its token not set there): nobody else edits
 * them, so the worker says so, once per job and surface, with the fix, and counts it.
 */
import { WebClient } from '@slack/web-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chatReporters, compositeReporter } from '../../handlers/reporters.js';
import { parseEnv } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import type { MessageRef, Progress, Reporter } from '../../src/progress.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { CapturedLog } from '../support/captured-log.js';
import { progressFixture } from '../support/progress.js';

let slack: FakeSlack;

beforeAll(async () => {
  slack = await new FakeSlack({ channels: { C0PROD: 'incidents' } }).start();
});

afterAll(async () => {
  await slack.close();
});

describe('worker chat reporters', () => {
  it('edit the Slack message of a switch through chat.update, up to the final state', async () => {
    const posted = await new WebClient(slack.token, { slackApiUrl: slack.apiUrl }).chat.postMessage({
      channel: 'C0PROD',
      text: 'Roll back production to dep_3hd7xa?',
    });
    const ts = String(posted.ts);
    const env = parseEnv({
      SLACK_BOT_TOKEN: slack.token,
      SLACK_API_URL: slack.apiUrl,
      SLACK_SIGNING_SECRET: 's',
    });
    const reporter = chatReporters({ env }, silentLogger);
    const now = Date.now();
    const progress: Progress = {
      jobId: 'sw_1',
      planId: 'plan_0123456789abcdef01234567',
      action: 'rollback',
      environment: 'production',
      targetId: 'dep_3hd7xa',
      fromId: 'dep_4kq9wz',
      requestedBy: { surface: 'slack', userId: 'U1', displayName: 'Alice' },
      steps: [
        { step: 'queued', state: 'done', startedAt: now - 50, endedAt: now - 40 },
        { step: 'validating', state: 'done', startedAt: now - 40, endedAt: now - 30 },
        { step: 'switching', state: 'done', startedAt: now - 30, endedAt: now - 20 },
        { step: 'verifying', state: 'done', startedAt: now - 20, endedAt: now - 10 },
        { step: 'done', state: 'done', startedAt: now - 10, endedAt: now },
      ],
      outcome: 'succeeded',
      message: 'Rolled back production to dep_3hd7xa.',
      traffic: [{ hostname: 'shop.localhost', deploymentId: 'dep_3hd7xa', ok: true }],
      attempt: 1,
      updatedAt: now,
    };
    await reporter.report(progress, [
      { surface: 'slack', channel: 'C0PROD', messageId: ts },
      { surface: 'console', channel: 'console', messageId: 'm1' },
    ]);
    const update = await slack.waitForCall('chat.update', (c) => c.args.ts === ts);
    expect(update.response.ok).toBe(true);
    expect(JSON.stringify(slack.message('C0PROD', ts))).toContain('Traffic is on');
  });
});

const WARN = 40;
const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);

/** State `n` of job `jobId`; the last one has an outcome. */
function stateOf(jobId: string, n: number, final = false): Progress {
  return progressFixture({
    jobId,
    steps: [{ step: 'switching', state: final ? 'done' : 'running', startedAt: T0 }],
    ...(final ? { outcome: 'succeeded' as const } : {}),
    updatedAt: T0 + n,
  });
}

class Recording implements Reporter {
  readonly got: { jobId: string; refs: readonly MessageRef[] }[] = [];
  async report(progress: Progress, messages: readonly MessageRef[]): Promise<void> {
    this.got.push({ jobId: progress.jobId, refs: messages });
  }
}

describe('a job with messages on a surface this process has no reporter for', () => {
  const refs: MessageRef[] = [
    { surface: 'slack', channel: 'C0PROD', messageId: '1700000000.000100' },
    { surface: 'discord', channel: '223344556677889900', messageId: '1300000000000000001' },
    // Console messages are edited from published progress by every bot process: never warned about.
    { surface: 'console', channel: 'console', messageId: 'm1' },
  ];

  it('is warned about once per job and surface (not per state), naming the fix, and counted', async () => {
    const { logger, lines } = new CapturedLog();
    const metrics = createMetrics();
    const slack = new Recording();
    const reporter = compositeReporter({ slack }, logger, { metrics });
    for (const jobId of ['sw_1', 'sw_2']) {
      await reporter.report(stateOf(jobId, 1), refs);
      await reporter.report(stateOf(jobId, 2), refs);
      await reporter.report(stateOf(jobId, 3, true), refs);
    }
    await reporter.flush?.();
    // The surface it has goes on as ever, with only its own refs routed to it.
    expect(slack.got.map((g) => g.jobId)).toEqual(['sw_1', 'sw_1', 'sw_1', 'sw_2', 'sw_2', 'sw_2']);
    expect(slack.got.every((g) => g.refs.every((r) => r.surface === 'slack'))).toBe(true);
    const warned = lines.filter((l) => l.level === WARN);
    expect(warned.map((l) => [l.surface, l.jobId])).toEqual([
      ['discord', 'sw_1'],
      ['discord', 'sw_2'],
    ]);
    const msg = String(warned[0]?.msg);
    expect(msg).toContain('cannot edit the discord messages of job sw_1');
    expect(msg).toContain('DISCORD_TOKEN, with DISCORD_GATEWAY=off');
    expect(msg).toContain('SWITCHYARD_WORKER=off');
    expect(warned[0]?.messages).toEqual([
      { channel: '223344556677889900', messageId: '1300000000000000001' },
    ]);
    const counted = await metrics.progressUnreported.get();
    expect(counted.values).toEqual([{ labels: { surface: 'discord' }, value: 2 }]);
  });

  it('in npm run worker (chatReporters) names the token the worker lacks', async () => {
    const { logger, lines } = new CapturedLog();
    const metrics = createMetrics();
    // Slack only: the Discord ref of the job is one this worker cannot edit.
    const env = parseEnv({
      SLACK_BOT_TOKEN: slack.token,
      SLACK_API_URL: slack.apiUrl,
      SLACK_SIGNING_SECRET: 's',
    });
    const reporter = chatReporters({ env }, logger, metrics);
    await reporter.report(stateOf('sw_9', 1), refs.slice(1));
    await reporter.report(stateOf('sw_9', 2, true), refs.slice(1));
    const warned = lines.filter((l) => l.level === WARN);
    expect(warned).toHaveLength(1);
    expect(warned[0]?.surface).toBe('discord');
    expect(String(warned[0]?.msg)).toContain("Give this worker DISCORD_TOKEN (the bot's env vars)");
    expect((await metrics.progressUnreported.get()).values).toEqual([
      { labels: { surface: 'discord' }, value: 1 },
    ]);
  });
});
