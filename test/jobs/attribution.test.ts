/**
 * An earlier attempt whose operation the platform reports as failed did not switch: when another
 * switch made the target live meanwhile, the job ends stale ("through another switch"), not
 * succeeded ("an earlier attempt did it").
 */
import { afterEach, expect, it } from 'vitest';
import type { OperationRef } from '../../src/platform/port.js';
import { jobIdForPlan, switchKeys } from '../../src/queue.js';
import { Cleanup, jobData, planFor } from './fixtures/harness.js';
import { setupJobs } from './fixtures/setup.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

it('an earlier attempt whose operation failed does not make another switch count as this job', async () => {
  const env = await setupJobs(cleanup);
  const plan = await planFor(env.local, 'env0', 'rollback', env.clock.now());
  const keys = switchKeys(env.queue.prefix, env.queueName);
  const ref: OperationRef = {
    id: 'op_earlier',
    action: 'rollback',
    environment: 'env0',
    targetId: plan.target.id,
    startedAt: env.clock.now(),
  } as OperationRef;
  await env.startWorker({
    platform: {
      ...env.platform,
      // The earlier attempt's operation definitely failed on the platform.
      operation: async (r: OperationRef) =>
        r.id === 'op_earlier' ? ({ ...r, state: 'failed' } as never) : env.platform.operation(r),
    },
  });
  // Someone else (outside this job) rolled env0 back to the same target meanwhile.
  const other = await env.local.rollback({
    environment: 'env0',
    targetId: plan.target.id,
    requestedBy: 'Dana',
  });
  for (let i = 0; i < 50 && (await env.local.operation(other)).state !== 'succeeded'; i++)
    await new Promise((r) => setTimeout(r, 20));
  // The stored ref of the crashed earlier attempt (enqueue drops refs only when replacing a job).
  await env.redis.set(keys.operation(jobIdForPlan(plan.id)), JSON.stringify(ref));
  const { jobId } = await env.queue.enqueue(jobData(plan, env.clock.now()));
  const final = await env.queue.waitForEnd(jobId);
  expect(final?.outcome).toBe('stale');
});
