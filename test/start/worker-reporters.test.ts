/**
 * `npm run worker`'s reporters: a separate worker process edits the Slack confirmation message with
 * the bot token (through the fake Slack Web API), as the worker inside `npm start` does.
 */
import { WebClient } from '@slack/web-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chatReporters } from '../../handlers/reporters.js';
import { parseEnv } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import type { Progress } from '../../src/progress.js';
import { FakeSlack } from '../fakes/slack/server.js';

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
