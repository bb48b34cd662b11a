/**
 * A switch queue and worker as the in-process tests start them: on the test Redis, with the tests'
 * defaults (the system clock, verification polled every 5 ms for up to 5 s, a 5 s job lock, one job at
 * a time, a silent logger), which a test adds to or overrides.
 */
import { type SwitchWorker, type SwitchWorkerOptions, startSwitchWorker } from '../../jobs/switch-worker.js';
import { systemClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { SwitchQueue, type SwitchQueueOptions } from '../../src/queue.js';
import { redisUrl } from './redis.js';

/** Where a test registers what its afterEach closes (e.g. test/jobs/fixtures/harness.ts Cleanup). */
export interface Closers {
  add(close: () => Promise<unknown>): void;
}

/** What a test's worker must be given; every other option has a test default or none. */
export type TestWorkerOptions = Pick<SwitchWorkerOptions, 'queueName' | 'platform' | 'reporter'> &
  Partial<SwitchWorkerOptions>;

/** Quick retries of a failed attempt (5–20 ms) and of an environment lock held elsewhere (200 ms). */
export const QUICK_RETRIES = { retry: { baseDelayMs: 5, maxDelayMs: 20 }, lockRetryMs: 200 } as const;

/** A test's switch worker options: the tests' defaults, then `opts`. */
export function testWorkerOptions(opts: TestWorkerOptions): SwitchWorkerOptions {
  return {
    redisUrl: redisUrl(),
    clock: systemClock,
    verify: { timeoutMs: 5_000, intervalMs: 5 },
    lockDurationMs: 5_000,
    concurrency: 1,
    logger: silentLogger,
    ...opts,
  };
}

/** Starts a switch worker with `testWorkerOptions(opts)`, closed by `closers`, once it takes jobs. */
export async function startTestWorker(closers: Closers, opts: TestWorkerOptions): Promise<SwitchWorker> {
  const worker = startSwitchWorker(testWorkerOptions(opts));
  closers.add(() => worker.close());
  await worker.worker.waitUntilReady();
  return worker;
}

/** A switch queue on the test Redis, emptied and closed by `closers`, once it is ready. */
export async function openTestQueue(
  closers: Closers,
  opts: Omit<SwitchQueueOptions, 'redisUrl'>,
): Promise<SwitchQueue> {
  const queue = new SwitchQueue({ redisUrl: redisUrl(), ...opts });
  closers.add(() => queue.close());
  closers.add(() => queue.obliterate());
  await queue.waitUntilReady();
  return queue;
}
