/**
 * Test harness for the Flow tests: a real Redis (fresh key prefix per test), the real embedded
 * LocalPlatform on a ManualClock, the real PlanStore, AuditLog and SwitchQueue.
 */
import type { JobType } from 'bullmq';
import { AuditLog } from '../../src/audit.js';
import { ManualClock } from '../../src/clock.js';
import type { Config } from '../../src/config.js';
import { Flow, type FlowQueue } from '../../src/flow.js';
import { PlanStore } from '../../src/plan-store.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import type { OperationRef } from '../../src/platform/port.js';
import { type SwitchJobData, SwitchQueue, switchJobSchema } from '../../src/queue.js';
import { createRedis, deleteKeys, type RedisClient, scanKeys } from '../../src/redis.js';
import { redisUrl, uniqueName } from '../support/redis.js';

import { testConfig } from './actors.js';

export { alice, bob, carol, dave, system, testConfig } from './actors.js';

export interface Harness {
  readonly flow: Flow;
  readonly platform: LocalPlatform;
  readonly plans: PlanStore;
  readonly audit: AuditLog;
  /** The real switch queue (fresh queue name per test); Flow uses it unless a test wraps it. */
  readonly switchQueue: SwitchQueue;
  readonly clock: ManualClock;
  readonly redis: RedisClient;
  readonly prefix: string;
  /** Data of every job in the switch queue, whatever its state. */
  jobs(): Promise<SwitchJobData[]>;
  /** Data of one job, or undefined when there is no such job. */
  job(jobId: string): Promise<SwitchJobData | undefined>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** The `environments` part of the config file. */
  readonly environments?: Record<string, unknown>;
  readonly platform?: Config['platform'];
  /** Wraps the real queue (fault injection). */
  readonly queue?: (real: SwitchQueue) => FlowQueue;
  readonly ttlMs?: number;
}

const ALL_STATES: JobType[] = ['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'];

export async function createHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const clock = new ManualClock();
  const prefix = uniqueName('flow');
  const redis = createRedis(redisUrl());
  const platform = await LocalPlatform.open({ clock, maintenance: false, reactivationTimeMs: 1_000 });
  const plans = new PlanStore({
    redis,
    prefix: `${prefix}:`,
    clock,
    ...(opts.ttlMs === undefined ? {} : { ttlMs: opts.ttlMs }),
  });
  const audit = new AuditLog(redis, { prefix });
  const switchQueue = new SwitchQueue({ redisUrl: redisUrl(), queueName: uniqueName('switch'), clock });
  await switchQueue.waitUntilReady();
  const flow = new Flow({
    platform,
    queue: opts.queue ? opts.queue(switchQueue) : switchQueue,
    plans,
    audit,
    config: testConfig(opts.environments, opts.platform),
    clock,
  });
  return {
    flow,
    platform,
    plans,
    audit,
    switchQueue,
    clock,
    redis,
    prefix,
    async jobs() {
      const jobs = await switchQueue.queue.getJobs(ALL_STATES);
      return jobs.map((j) => switchJobSchema.parse(j.data));
    },
    async job(jobId) {
      const job = await switchQueue.queue.getJob(jobId);
      return job ? switchJobSchema.parse(job.data) : undefined;
    },
    async close() {
      await switchQueue.obliterate();
      await switchQueue.close();
      await platform.close();
      await deleteKeys(redis, await scanKeys(redis, `${prefix}*`));
      await redis.quit();
    },
  };
}

/**
 * Switches the local platform directly (someone else acting outside this plan), driving its clock
 * through a standby reactivation, and resolves when the operation has succeeded.
 */
export async function switchDirectly(
  h: Harness,
  action: 'rollback' | 'promote',
  environment: string,
  targetId: string,
): Promise<void> {
  const ref: OperationRef =
    action === 'rollback'
      ? await h.platform.rollback({ environment, targetId, requestedBy: 'someone else' })
      : await h.platform.promote({ environment, targetId, requestedBy: 'someone else' });
  for (;;) {
    const status = await h.platform.operation(ref);
    if (status.state === 'succeeded') return;
    if (status.state === 'failed') throw new Error(`switch failed: ${status.error?.message ?? ''}`);
    if (h.clock.pending > 0) await h.clock.advance(1_000);
    else await new Promise<void>((r) => setImmediate(r));
  }
}
