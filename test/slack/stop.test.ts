/**
 * startSlack's stop() (handlers/slack/index.ts) closes the Socket Mode connection: Slack would
 * otherwise keep delivering commands and clicks to a process that closed its queue and Redis. (How
 * stop() waits for click edits held by a Retry-After: click-edits.test.ts; for acked clicks still being
 * handled: stop-acked-click.test.ts.)
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startWorld, type World } from '../fakes/slack/world.js';
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
});
