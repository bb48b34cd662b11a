/**
 * Edge cases of UnkeyPlatform (src/platform/unkey/adapter.ts) against the stateful fake Unkey v2
 * server: behaviour no other test pinned down (the environment kind from the slug when no deployment
 * tells it, the app check before a switch, the operation timeout's boundary, the source of a switch
 * when the read after Unkey accepted it fails, a switch completing between the overtaken check's reads).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RefusalError } from '../../src/errors.js';
import { UnkeyPlatform } from '../../src/platform/unkey/adapter.js';
import { SleepRecordingClock, type UnkeyFakeServer } from '../fakes/unkey-server.js';
import { pushMainDeployments, startAcmeUnkey } from '../support/unkey.js';

const KEY = 'unkey_3ZmutantAdapterRootKey0123456';
const TIMEOUT = 5_000;
const SWITCH_DELAY = 1_000;

const prodEnv = { project: 'acme', app: 'api', environment: 'production' } as const;
const previewEnv = { project: 'acme', app: 'api', environment: 'preview' } as const;

let clock: SleepRecordingClock;
let server: UnkeyFakeServer;
let platform: UnkeyPlatform;
let d1: string;
let d2: string;
let d3: string;

function makePlatform(
  extra: Partial<ConstructorParameters<typeof UnkeyPlatform>[0]> = {},
  fetchImpl?: typeof fetch,
): UnkeyPlatform {
  return new UnkeyPlatform({
    environments: { production: prodEnv, preview: previewEnv },
    client: {
      baseUrl: server.url,
      rootKey: KEY,
      clock,
      timeoutMs: TIMEOUT,
      maxRetries: 2,
      random: () => 0.5,
      ...(fetchImpl === undefined ? {} : { fetch: fetchImpl }),
    },
    clock,
    ...extra,
  });
}

beforeEach(async () => {
  clock = new SleepRecordingClock();
  server = await startAcmeUnkey(KEY, { clock, switchDelayMs: SWITCH_DELAY });
  [d1, d2, d3] = (await pushMainDeployments(server, clock, 3)) as [string, string, string];
  platform = makePlatform();
});

afterEach(async () => {
  await platform.close();
  await server.close();
});

async function refusal(p: Promise<unknown>): Promise<RefusalError> {
  const e = await clock.drive(
    p.then(
      () => undefined,
      (err: unknown) => err,
    ),
    TIMEOUT,
  );
  expect(e).toBeInstanceOf(RefusalError);
  return e as RefusalError;
}

describe('UnkeyPlatform', () => {
  it('takes the environment kind from the slug when no deployment tells it: preview stays preview', async () => {
    // Only a failed deployment: it is not current and offers no action.
    server.push({ ...previewEnv, branch: 'feature-x', status: 'failed' });
    const snap = await platform.snapshot('preview');
    expect(snap.deployments.map((d) => d.status)).toEqual(['failed']);
    expect(snap.environment.kind).toBe('preview');
  });

  it('refuses a target of another app in the same project and environment before calling Unkey', async () => {
    const other = server.push({ project: 'acme', app: 'web', environment: 'production', branch: 'main' });
    await platform.snapshot('production');
    const r = await refusal(platform.rollback({ environment: 'production', targetId: other }));
    expect(r.code).toBe('target_wrong_environment');
    expect(r.message).toContain('acme/web/production');
    expect(server.requests.some((q) => q.endpoint === 'deployments.rollbackDeployment')).toBe(false);
    expect(server.currentOf('acme', 'api')).toBe(d3);
  });

  it('fails an operation on timeout only once more than operationTimeoutMs has passed', async () => {
    const slow = makePlatform({ operationTimeoutMs: 500 });
    try {
      const ref = await slow.rollback({ environment: 'production', targetId: d2 });
      await clock.advance(500);
      expect((await slow.operation(ref)).state).toBe('switching');
      await clock.advance(1);
      const late = await slow.operation(ref);
      expect(late).toMatchObject({
        state: 'failed',
        error: { code: 'operation_timeout', mayStillComplete: true },
      });
    } finally {
      await slow.close();
    }
  });

  it('follows a switch from the planned deployment when the read after Unkey accepted it fails', async () => {
    await platform.snapshot('production');
    // Every attempt (1 + maxRetries 2) of the listing right after the 202 fails.
    server.fault({ kind: 'status', status: 503, endpoint: 'deployments.listDeployments' }, 3);
    const ref = await clock.drive(
      platform.rollback({ environment: 'production', targetId: d2, expectedCurrent: d3 }),
      TIMEOUT,
    );
    expect(server.requests.filter((q) => q.endpoint === 'deployments.rollbackDeployment')).toHaveLength(1);
    expect(ref.fromId).toBe(d3);
    // With its source known, a dashboard rollback overtaking it fails it at once, not at the timeout.
    server.switchNow('rollback', d1);
    expect(await platform.operation(ref)).toMatchObject({
      state: 'failed',
      error: { code: 'operation_superseded' },
    });
  });

  it('does not take its own target for another switch when the switch completes between the checks', async () => {
    // Unkey carries the rollback out right after the adapter read the target (not current yet): the
    // source then reads not current and the listing shows the target current.
    let armed = false;
    const racing: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (armed && String(input).endsWith('deployments.getDeployment') && String(init?.body).includes(d2)) {
        armed = false;
        await clock.advance(SWITCH_DELAY);
      }
      return res;
    };
    const raced = makePlatform({}, racing);
    try {
      const ref = await raced.rollback({ environment: 'production', targetId: d2, expectedCurrent: d3 });
      expect(ref.fromId).toBe(d3);
      armed = true;
      const op = await raced.operation(ref);
      expect(armed).toBe(false);
      expect(server.currentOf('acme', 'api')).toBe(d2);
      expect(op.state).not.toBe('failed');
      expect(op.error).toBeUndefined();
      expect((await raced.operation(ref)).state).toBe('succeeded');
    } finally {
      await raced.close();
    }
  });
});
