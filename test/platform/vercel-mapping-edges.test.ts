/**
 * the pure Vercel mapping (src/platform/vercel/mapping.ts): the last alias job is
 * evidence of a switch only once it succeeded.
 */
import { describe, expect, it } from 'vitest';
import { lastSwitchOf } from '../../src/platform/vercel/mapping.js';
import { aliasJobStatuses } from '../../src/platform/vercel/schemas.js';

describe('lastSwitchOf', () => {
  const job = (jobStatus: (typeof aliasJobStatuses)[number]) => ({
    lastAliasRequest: {
      fromDeploymentId: 'dpl_from',
      toDeploymentId: 'dpl_to',
      jobStatus,
      requestedAt: 1_700_000_000_000,
      type: 'rollback' as const,
    },
  });

  it('counts only a succeeded alias job as a finished switch (pending, in progress, failed, skipped do not)', () => {
    expect(aliasJobStatuses.map((s) => [s, lastSwitchOf(job(s))?.succeeded])).toEqual([
      ['pending', false],
      ['in-progress', false],
      ['succeeded', true],
      ['failed', false],
      ['skipped', false],
    ]);
    expect(lastSwitchOf(job('succeeded'))).toEqual({
      via: 'rollback',
      from: 'dpl_from',
      to: 'dpl_to',
      succeeded: true,
      requestedAt: 1_700_000_000_000,
    });
    expect(lastSwitchOf({ lastAliasRequest: null })).toBeUndefined();
  });
});
