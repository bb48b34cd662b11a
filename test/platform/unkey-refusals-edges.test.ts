/**
 * Edge cases of Unkey's refusals (src/platform/unkey/refusals.ts) through UnkeyPlatform against the
 * fake Unkey v2 server: Unkey answers no other test sent (the 400 authentication errors, a 404 whose
 * type is the generic `not-found` of Unkey's published examples, a promote with no current deployment).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RefusalError } from '../../src/errors.js';
import { UnkeyPlatform } from '../../src/platform/unkey/adapter.js';
import { SleepRecordingClock, type UnkeyFakeServer } from '../fakes/unkey-server.js';
import { pushMainDeployments, startAcmeUnkey } from '../support/unkey.js';

const KEY = 'unkey_3ZmutantRefusalRootKey01234567';
const TIMEOUT = 5_000;
const prodEnv = { project: 'acme', app: 'api', environment: 'production' } as const;

let clock: SleepRecordingClock;
let server: UnkeyFakeServer;
let platform: UnkeyPlatform;
let d1: string;
let d2: string;

beforeEach(async () => {
  clock = new SleepRecordingClock();
  server = await startAcmeUnkey(KEY, { clock, switchDelayMs: 1_000 });
  [d1, d2] = (await pushMainDeployments(server, clock, 2)) as [string, string];
  platform = new UnkeyPlatform({
    environments: { production: prodEnv },
    client: {
      baseUrl: server.url,
      rootKey: KEY,
      clock,
      timeoutMs: TIMEOUT,
      maxRetries: 2,
      random: () => 0.5,
    },
    clock,
  });
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
  const r = e as RefusalError;
  expect(r.message).not.toContain(KEY);
  return r;
}

describe('Unkey refusals', () => {
  it.each(['authentication/missing', 'authentication/malformed'])(
    'a 400 %s is the root key rejected (platform_unauthorized), listing the permissions',
    async (code) => {
      server.fault({ kind: 'status', status: 400, code, endpoint: 'deployments.listDeployments' });
      const r = await refusal(platform.snapshot('production'));
      expect(r.code).toBe('platform_unauthorized');
      expect(r.retry).toBe(false);
      expect(r.message).toContain('UNKEY_ROOT_KEY');
      expect(r.message).toContain('environment.*.read_deployment');
      expect(r.message).toContain('environment.*.rollback_deployment');
      expect(r.message).toContain('environment.*.promote_deployment');
    },
  );

  it("a getDeployment 404 typed like Unkey's published example (`not-found`) is an unknown deployment", async () => {
    // unkey-openapi-deployments.yaml, getDeployment 404: `type: not-found`, not `deployment_not_found`.
    server.fault({ kind: 'status', status: 404, code: 'not-found', endpoint: 'deployments.getDeployment' });
    expect(await clock.drive(platform.getDeployment(d1), TIMEOUT)).toBeUndefined();

    server.fault({ kind: 'status', status: 404, code: 'not-found', endpoint: 'deployments.getDeployment' });
    const r = await refusal(platform.rollback({ environment: 'production', targetId: d1 }));
    expect(r.code).toBe('unknown_deployment');
    expect(r.message).toContain(d1);
    expect(server.requests.some((q) => q.endpoint === 'deployments.rollbackDeployment')).toBe(false);
  });

  it('a promote refused with deployment_no_current says there is nothing to promote over', async () => {
    server.fault({
      kind: 'status',
      status: 412,
      code: 'application/deployment_no_current',
      endpoint: 'deployments.promoteDeployment',
    });
    const r = await refusal(platform.promote({ environment: 'production', targetId: d1 }));
    expect(r.code).toBe('no_current_deployment');
    expect(r.message).toContain('nothing to promote over');
    expect(r.message).not.toContain('roll back from');
    expect(server.currentOf('acme', 'api')).toBe(d2);
  });
});
