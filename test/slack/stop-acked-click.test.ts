/**
 * startSlack's stop() and clicks already acked: the after-ack work of a click (its permission check,
 * the platform read, the enqueue of its switch) is carried out before stop() returns and the app
 * closes the worker, the queue and Redis, however long it takes (Slack does not send an acked
 * interaction again); only edits waiting on Slack's pacing are given up after SHUTDOWN_FLUSH_MS.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { DeployPlatform } from '../../src/platform/port.js';
import { gate } from '../support/gate.js';
import { ObservedClock } from '../support/observed-clock.js';
import { buttonOf, confirmation, settled, startBot } from './bot.js';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
}, 60_000);

const HOUR_MS = 3_600_000;
/** handlers/slack/index.ts SHUTDOWN_FLUSH_MS. */
const SHUTDOWN_FLUSH_MS = 10_000;

describe('Slack stop() and an acked click still being handled', () => {
  it('does not return (letting the app close queue and Redis) while an acked confirm click has not queued its switch yet', async () => {
    const clock = new ObservedClock(Date.now());
    // The platform read of the click's freshness check is held (a slow Unkey/Vercel API).
    const held = gate();
    let armed = false;
    const b = await startBot({
      clock,
      add: (close) => closers.push(close),
      name: 'slack-stop-acked',
      platform: (local) =>
        Object.assign(Object.create(local) as DeployPlatform, {
          snapshot: async (environment: string) => {
            if (armed) {
              armed = false;
              await held.wait();
            }
            return local.snapshot(environment);
          },
        }),
    });
    let stopping: Promise<void> | undefined;
    closers.push(async () => {
      held.open();
      await clock.advance(2 * HOUR_MS);
      await b.surface.idle(); // the held click finishes before the queue and Redis close
      await stopping;
    });

    const { post, ts } = await confirmation(b);
    armed = true;
    const ack = await b.requests.click({
      actionId: buttonOf(post, 'sy1:confirm:'),
      messageTs: ts,
      userId: 'U0ALICE',
      userName: 'alice',
    });
    expect(ack.status).toBe(200); // Slack has its ack: it will not send this click again
    await held.reached; // the click's task is under way, before its enqueue

    stopping = b.surface.stop();
    for (let waited = 0; waited <= SHUTDOWN_FLUSH_MS; waited += 1_000) {
      await settled(stopping);
      await clock.advance(1_000);
    }
    const returned = await settled(stopping);
    const jobsWhenStopReturned = (await b.queue.waitingCounts()).waiting;
    // stop() returned with the acked click's switch not queued: the app's next cleanups close the
    // worker, the queue and Redis, and the click is lost.
    expect({ stopReturned: returned, jobsQueued: jobsWhenStopReturned }).toEqual({
      stopReturned: false,
      jobsQueued: 0,
    });
  }, 30_000);
});
