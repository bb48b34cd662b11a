/**
 * A switch's progress for tests of what renders or delivers it: a rollback of production from dep_a
 * to dep_b requested by alice on Discord, with the fields a test cares about given in `over`, parsed
 * with the real schema (so a fixture can never drift from what the worker publishes).
 */
import { type Progress, progressSchema } from '../../src/progress.js';

export function progressFixture(over: Partial<Progress> & Pick<Progress, 'steps' | 'updatedAt'>): Progress {
  return progressSchema.parse({
    jobId: 'sw_1',
    planId: 'plan_0123abcd',
    action: 'rollback',
    environment: 'production',
    targetId: 'dep_b',
    fromId: 'dep_a',
    requestedBy: { surface: 'discord', userId: '42', displayName: 'alice' },
    traffic: [],
    ...over,
  });
}
