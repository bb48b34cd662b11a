/**
 * A Slack alert channel given by name (`SLACK_ALERT_CHANNEL=#alerts`), as `chat.postMessage` allows:
 * Slack answers the post with the channel's id, and every later edit of the message (`chat.update`,
 * which takes ids only) must name the channel by that id. The whole app (handlers/app.ts) with the
 * Slack surface and its worker, against the fake Slack (which resolves names in `chat.postMessage`
 * only, as Slack does).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { slackSurface } from '../../handlers/slack/surface.js';
import { jobIdForPlan, SwitchQueue } from '../../src/queue.js';
import { buttonsOf, SlackRequests } from '../fakes/slack/requests.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { startTestSwitchyard } from '../support/switchyard.js';

const SECRET = 'alert-channel-name-signing-secret';
const ALERTS = 'C0ALERTS';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
}, 60_000);

/**
 * The fake Slack (the channel `#alerts` is ALERTS) and the app with its Slack surface, alerts going to
 * `#alerts` by name; `file` is the app's config file.
 */
async function start(file?: Record<string, unknown>) {
  const fake = await new FakeSlack({ channels: { [ALERTS]: 'alerts' } }).start();
  closers.push(() => fake.close());
  const app = await startTestSwitchyard({
    env: {
      SLACK_BOT_TOKEN: fake.token,
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_API_URL: fake.apiUrl,
      SLACK_ALERT_CHANNEL: '#alerts',
      SWITCHYARD_CONSOLE: 'off',
    },
    ...(file === undefined ? {} : { file }),
    factories: [slackSurface],
  });
  closers.push(() => app.close());
  return { fake, app };
}

/** Posts a firing generic alert for production; resolves with its outcome. */
async function webhook(baseUrl: string, title: string, fingerprint: string): Promise<unknown> {
  const res = await fetch(`${baseUrl}/webhooks/alerts/generic`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      title,
      status: 'firing',
      environment: 'production',
      fingerprint,
      startedAt: new Date(Date.now() - 60_000).toISOString(),
    }),
  });
  expect(res.status).toBe(202);
  const body = (await res.json()) as { alerts?: { outcome?: unknown }[] };
  return body.alerts?.[0]?.outcome;
}

describe('a Slack alert channel given by name', () => {
  it('a second alert of the same rollback is listed on the one suggestion in #alerts (an edit), not posted again', async () => {
    const { fake, app } = await start();

    expect(await webhook(app.baseUrl, 'Checkout 5xx above 5%', 'inc-1')).toBe('suggested');
    const post = await fake.waitForCall('chat.postMessage');
    const ts = String(post.response.ts);
    expect(await webhook(app.baseUrl, 'Payment provider errors', 'inc-2')).toBe('grouped');
    // The edit listing the second alert runs in the background: wait for it to reach Slack.
    const edit = await fake.waitForCall(
      'chat.update',
      (c) => c.args.ts === ts && JSON.stringify(c.args.blocks).includes('Payment provider errors'),
    );
    expect({
      posts: fake.callsOf('chat.postMessage').length,
      edit: [edit.args.channel, edit.response.ok],
      shown: JSON.stringify(fake.message(ALERTS, ts)?.blocks).includes('Payment provider errors'),
    }).toEqual({ posts: 1, edit: [ALERTS, true], shown: true });
  });

  it('a switch confirmed from a suggestion posted to #alerts edits the suggestion through to its end', async () => {
    const { fake, app } = await start({ local: { reactivationTime: '200ms', buildTime: '300ms' } });
    const queue = new SwitchQueue({
      redisUrl: app.redisUrl,
      queueName: app.queueName,
      prefix: app.namespace,
    });
    closers.push(() => queue.close());

    await webhook(app.baseUrl, 'Checkout 5xx above 5%', 'inc-1');
    const post = await fake.waitForCall('chat.postMessage');
    expect([post.args.channel, post.response.channel]).toEqual(['#alerts', ALERTS]);
    const ts = String(post.response.ts);
    const confirm = buttonsOf(post.args.blocks as unknown[]).find((b) =>
      b.actionId.startsWith('sy1:confirm:'),
    );
    if (!confirm) throw new Error('no confirm button');

    const requests = new SlackRequests(`${app.baseUrl}/slack/events`, SECRET, fake);
    await requests.click({ actionId: confirm.actionId, messageTs: ts, channelId: ALERTS });
    const ended = await queue.waitForEnd(jobIdForPlan(confirm.actionId.split(':')[2] ?? ''));
    expect(ended?.outcome).toBe('succeeded');

    // Every edit of the suggestion named its channel by id, and Slack took each one; the worker's last
    // one (the job ends once it is delivered) shows where traffic is.
    const edits = fake.callsOf('chat.update').filter((c) => c.args.ts === ts);
    expect(
      edits.filter((c) => c.response.ok !== true).map((c) => [c.args.channel, c.response.error]),
    ).toEqual([]);
    expect(edits.some((c) => c.args.channel === ALERTS && /Traffic is on/.test(String(c.args.text)))).toBe(
      true,
    );
  });
});
