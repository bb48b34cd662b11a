/**
 * Closing a notice through the REAL Slack poster (handlers/slack/poster.ts, edits through the
 * SlackReporter lane) against the fake Slack Web API behind a front that can fail calls: a closing
 * edit Slack refuses is reported `close_failed` at once; one that meets Slack's 5xx is retried by the
 * notices service with its backoff and then made. (closing.test.ts covers the same rules with a
 * recording poster; this proves the Slack poster tells the service that its edit failed.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createPosterClient, SlackPoster } from '../../handlers/slack/poster.js';
import { createReporterClient, SlackReporter } from '../../handlers/slack/reporter.js';
import type { NoticeOutcome } from '../../src/notices.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { SlackFront } from '../slack/faulty-front.js';
import { createWorld, HOUR, type World } from './world.js';

const CHANNEL = 'C0ALERTS';

let w: World | undefined;
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await w?.close();
  w = undefined;
});

const ofStatus = <S extends NoticeOutcome['status']>(outcomes: readonly NoticeOutcome[], status: S) =>
  outcomes.filter((o): o is Extract<NoticeOutcome, { status: S }> => o.status === status);

/** The fake Slack, a front to fail its calls, and the Slack poster as `npm start` builds it. */
async function slackOn(world: World): Promise<{ fake: FakeSlack; front: SlackFront; poster: SlackPoster }> {
  const fake = await new FakeSlack({ channels: { [CHANNEL]: 'alerts' } }).start();
  const front = await SlackFront.start(fake);
  // The lane on the world's manual clock, without pacing (pacing is the reporter tests' subject): its
  // retries then need no clock advance while the notices service waits for the edit.
  const reporter = new SlackReporter({
    client: createReporterClient(fake.token, front.apiUrl),
    clock: world.clock,
    minIntervalMs: 0,
  });
  closers.push(async () => {
    await reporter.flush();
    await front.close();
    await fake.close();
  });
  return { fake, front, poster: new SlackPoster(createPosterClient(fake.token, front.apiUrl), reporter) };
}

/** The Slack message titled `title` (its fallback text starts with the view's title). */
function messageTs(fake: FakeSlack, title: string): string {
  const posts = fake.callsOf('chat.postMessage').filter((c) => String(c.args.text).startsWith(title));
  expect(posts, `posts of "${title}"`).toHaveLength(1);
  return String(posts[0]?.response.ts);
}

describe('closing a notice through the Slack poster', () => {
  it('a notice posted to a channel given by name (#alerts) is closed: its edit names the channel by id', async () => {
    w = await createWorld({ env: { SLACK_ALERT_CHANNEL: '#alerts' } });
    const { fake, poster } = await slackOn(w);
    const n = await w.notices({ posters: [poster] });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    const ts = messageTs(fake, `${fresh.id} is ready but not live`);
    expect(fake.callsOf('chat.postMessage').map((c) => [c.args.channel, c.response.channel])).toContainEqual([
      '#alerts',
      CHANNEL,
    ]);

    await w.switchDirectly('promote', 'production', fresh.id, [n]);
    expect(fake.callsOf('chat.update').map((c) => [c.args.channel, c.response.ok])).toEqual([
      [CHANNEL, true],
    ]);
    expect(fake.message(CHANNEL, ts)?.text).toContain(`${fresh.id} went live on production`);
    expect(ofStatus(n.outcomes, 'closed')).toEqual([
      expect.objectContaining({ ref: expect.objectContaining({ channel: CHANNEL, messageId: ts }) }),
    ]);
    expect(ofStatus(n.outcomes, 'close_failed')).toEqual([]);
  });

  it('a closing edit Slack refuses (message_not_found) is reported close_failed at once, not retried', async () => {
    w = await createWorld();
    const { fake, front, poster } = await slackOn(w);
    const n = await w.notices({ posters: [poster] });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    const ts = messageTs(fake, `${fresh.id} is ready but not live`);

    // The message was deleted meanwhile: Slack answers the edit with message_not_found.
    front.fail('chat.update', 1, { status: 200, body: { ok: false, error: 'message_not_found' } });
    await w.switchDirectly('promote', 'production', fresh.id, [n]);
    await w.advance(HOUR, [n]);

    expect(front.faulted).toEqual(['chat.update']);
    expect(fake.callsOf('chat.update')).toEqual([]); // never tried again
    expect(ofStatus(n.outcomes, 'closed')).toEqual([]);
    expect(ofStatus(n.outcomes, 'close_failed')).toEqual([
      expect.objectContaining({
        surface: 'slack',
        kind: 'ready_not_live',
        attempts: 1,
        error: expect.stringContaining('message_not_found'),
      }),
    ]);
    expect(fake.message(CHANNEL, ts)?.text).toContain('is ready but not live');
  });

  it("a closing edit that meets Slack's 5xx is retried by the notices service, then made", async () => {
    w = await createWorld();
    const { fake, front, poster } = await slackOn(w);
    const n = await w.notices({ posters: [poster], postRetryMs: 5_000 });
    await w.switchDirectly('rollback', 'production', 'dep_3hd7xa', [n]);
    const fresh = await w.pushAndBuild('production', [n]);
    const ts = messageTs(fake, `${fresh.id} is ready but not live`);

    front.fail('chat.update', Number.POSITIVE_INFINITY); // Slack answers 503 to every edit
    await w.switchDirectly('promote', 'production', fresh.id, [n]);
    const tried = front.faulted.length;
    expect(tried).toBeGreaterThan(0);
    expect(ofStatus(n.outcomes, 'closed')).toEqual([]);
    expect(ofStatus(n.outcomes, 'close_failed')).toEqual([]);
    expect(fake.message(CHANNEL, ts)?.text).toContain('is ready but not live');

    front.heal('chat.update'); // Slack is back before the service's retry (5 s later)
    await w.advance(5_000, [n]);
    expect(front.faulted).toHaveLength(tried);
    expect(fake.message(CHANNEL, ts)?.text).toContain(`${fresh.id} went live on production`);
    expect(ofStatus(n.outcomes, 'closed')).toEqual([
      expect.objectContaining({ ref: expect.objectContaining({ messageId: ts }), attempt: 2 }),
    ]);
    expect(ofStatus(n.outcomes, 'close_failed')).toEqual([]);
  });
});
