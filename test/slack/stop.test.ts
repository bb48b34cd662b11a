/**
 * startSlack's stop() (handlers/slack/index.ts) closes the Socket Mode connection: Slack would
 * otherwise keep delivering commands and clicks to a process that closed its queue and Redis. (How
 * stop() waits for click edits held by a Retry-After: click-edits.test.ts; for acked clicks still being
 * handled: stop-acked-click.test.ts.) It also ends the poster's waits between tries: a suggestion or
 * notice post waiting out a rate limit fails at once, as transient, instead of holding shutdown.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { textView } from '../../src/chat-sinks.js';
import { startWorld, WORLD_CHANNEL, type World } from '../fakes/slack/world.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const worlds: World[] = [];
afterEach(async () => {
  for (const w of worlds.splice(0)) await w.close();
}, 60_000);

/** The fake's open Socket Mode connections (FakeSlack keeps them private). */
const openSockets = (w: World) => (w.fake as unknown as { sockets: Set<unknown> }).sockets.size;

describe('Slack surface stop()', () => {
  it('closes the Socket Mode connection', async () => {
    const w = await startWorld({ redisUrl: redisUrl(), name: uniqueName('slack-stop-sm'), socketMode: true });
    worlds.push(w);
    await w.fake.socketConnected();
    expect(openSockets(w)).toBe(1);
    await w.surface.stop();
    await vi.waitFor(() => expect(openSockets(w)).toBe(0), { timeout: 5_000, interval: 20 });
  });

  it("ends a post's wait out of a rate limit at once, with a transient failure", async () => {
    const w = await startWorld({ redisUrl: redisUrl(), name: uniqueName('slack-stop-post') });
    worlds.push(w);
    // Slack asks for 10 s before each of the post's tries.
    w.fake.rateLimit('chat.postMessage', 10, 3);
    let failure: unknown;
    const posting = w.surface.poster
      .post(WORLD_CHANNEL, textView('Alert on production', ['It fires.'], 'warning'))
      .catch((e: unknown) => {
        failure = e;
      });
    await w.fake.waitForCall('chat.postMessage', (c) => c.status === 429);
    await w.surface.stop();
    // Ended with stop(), not 20 s later.
    await vi.waitFor(() => expect(failure).toBeDefined(), { timeout: 1_000, interval: 10 });
    await posting;
    expect(failure).toMatchObject({ name: 'SlackPostError', slackCode: 'ratelimited', transient: true });
    expect((failure as Error).message).toContain('Switchyard is stopping, so it was not tried again');
    expect(w.fake.callsOf('chat.postMessage')).toHaveLength(1);
  });
});
