/**
 * `deriveLive`, pure: what a platform without live history (Unkey, Vercel) tells of how the current
 * deployment went live, and that nothing is claimed the state does not make certain.
 */
import { describe, expect, it } from 'vitest';
import type { Deployment, DeploymentStatus, Environment } from '../../src/domain/types.js';
import { type DeriveLiveInput, deriveLive, type LastSwitch } from '../../src/platform/live-history.js';

const M = 60_000;
const NOW = 1_000 * M;
const STOP_AFTER = 30 * M;

/** A deployment created at `createdAt` that became ready 3 minutes later (unless it never did). */
function dep(id: string, createdAt: number, status: DeploymentStatus = 'ready'): Deployment {
  return {
    id,
    projectId: 'p',
    environment: 'production',
    branch: 'main',
    commit: { sha: '', message: '', author: '' },
    createdAt,
    ...(status === 'building' || status === 'failed' ? {} : { readyAt: createdAt + 3 * M }),
    status,
  };
}

function env(current: string | undefined, over: Partial<Environment> = {}): Environment {
  return {
    slug: 'production',
    kind: 'production',
    projectId: 'p',
    rolledBack: false,
    ...(current === undefined ? {} : { currentDeploymentId: current }),
    ...over,
  };
}

/** Ready windows as Vercel gives them: exactly `readyAt`. */
function input(deployments: Deployment[], environment: Environment, over: Partial<DeriveLiveInput> = {}) {
  return {
    platform: 'Vercel',
    environment,
    deployments,
    readAt: NOW,
    readyWindow: (d: Deployment) =>
      d.readyAt === undefined ? undefined : { notBefore: d.readyAt, notAfter: d.readyAt },
    ...over,
  } satisfies DeriveLiveInput;
}

describe('deriveLive: automatic deploys', () => {
  it('the newest deployment that was ever ready went live when it became ready, replacing the one before', () => {
    const deployments = [
      dep('d3', NOW - 20 * M),
      dep('d2', NOW - 200 * M),
      dep('d1', NOW - 400 * M, 'stopped'),
    ];
    expect(deriveLive(input(deployments, env('d3')))).toEqual({
      platform: 'Vercel',
      current: {
        deploymentId: 'd3',
        via: 'deploy',
        notBefore: NOW - 17 * M,
        notAfter: NOW - 17 * M,
        previous: 'd2',
      },
    });
  });

  it('ignores newer deployments that never became ready (building, failed)', () => {
    const deployments = [
      dep('d5', NOW - 2 * M, 'building'),
      dep('d4', NOW - 10 * M, 'failed'),
      dep('d3', NOW - 20 * M),
      dep('d2', NOW - 200 * M),
    ];
    expect(deriveLive(input(deployments, env('d3'))).current).toMatchObject({
      deploymentId: 'd3',
      via: 'deploy',
    });
  });

  it('keeps the whole interval the platform leaves (Unkey: created … last updated)', () => {
    const deployments = [dep('d3', NOW - 20 * M), dep('d2', NOW - 25 * M)];
    const derived = deriveLive(
      input(deployments, env('d3'), {
        platform: 'Unkey',
        readyWindow: (d) => ({ notBefore: d.createdAt, notAfter: d.readyAt ?? NOW }),
        stopsReplacedAfterMs: STOP_AFTER,
      }),
    );
    expect(derived.current).toEqual({
      deploymentId: 'd3',
      via: 'deploy',
      notBefore: NOW - 20 * M,
      notAfter: NOW - 17 * M,
      previous: 'd2',
    });
  });
});

describe('deriveLive: what the state does not tell', () => {
  it('an environment rolled back, with no record of the rollback', () => {
    const deployments = [dep('d3', NOW - 20 * M), dep('d2', NOW - 200 * M)];
    expect(deriveLive(input(deployments, env('d2', { rolledBack: true })))).toEqual({
      platform: 'Vercel',
      unknown: 'production is rolled back to it, and Vercel does not say since when',
    });
  });

  it('a current deployment older than one that was ready (promoted or rolled back to, then resumed)', () => {
    const deployments = [dep('d3', NOW - 20 * M, 'stopped'), dep('d2', NOW - 200 * M)];
    expect(deriveLive(input(deployments, env('d2'))).unknown).toBe(
      'it is older than d3, so it was promoted or rolled back to',
    );
    // Created in the same millisecond: which is newer is open, so it counts as newer.
    const tie = [dep('d3', NOW - 20 * M), dep('d2', NOW - 20 * M)];
    expect(deriveLive(input(tie, env('d2'))).unknown).toBe(
      'it is older than d3, so it was promoted or rolled back to',
    );
  });

  it('no current deployment, a preview environment, a ready time the platform does not give', () => {
    expect(deriveLive(input([dep('d1', NOW - 20 * M)], env(undefined))).unknown).toBe(
      'production has no current deployment',
    );
    expect(
      deriveLive(input([dep('d1', NOW - 20 * M)], env('d1', { slug: 'preview', kind: 'preview' }))).unknown,
    ).toBe('Vercel keeps no live history, and preview is not a production environment');
    expect(
      deriveLive(input([dep('d1', NOW - 20 * M)], env('d1'), { readyWindow: () => undefined })).unknown,
    ).toBe('Vercel does not say when it became ready');
  });
});

describe('deriveLive on a platform that stops replaced deployments (Unkey)', () => {
  const unkey = (deployments: Deployment[], environment: Environment) =>
    deriveLive(
      input(deployments, environment, {
        platform: 'Unkey',
        readyWindow: (d) => ({ notBefore: d.createdAt, notAfter: d.readyAt ?? NOW }),
        stopsReplacedAfterMs: STOP_AFTER,
      }),
    );

  it('two older deployments still running is what a rollback and a promote leave, and two deploys within 30 minutes too: unknown', () => {
    // d2 went bad, production was rolled back to d1, the fix d3 was promoted: d1 (left by the promote)
    // and d2 (left by the rollback, which schedules no stop) both run. Two automatic deploys (d2 at
    // -22 minutes, d3 at -7) leave the same: each replaced one runs 30 minutes more.
    const deployments = [dep('d3', NOW - 10 * M), dep('d2', NOW - 25 * M), dep('d1', NOW - 300 * M)];
    expect(unkey(deployments, env('d3')).unknown).toBe(
      "d2 and d1 still run, as they do after automatic deploys within the last 30 minutes and after a rollback and a promote, which Unkey's state does not tell apart, so it may have been promoted",
    );
    // d1 still running 37 minutes after d2 became ready fits no automatic deploy: only the rollback.
    const later = [dep('d3', NOW - 10 * M), dep('d2', NOW - 40 * M), dep('d1', NOW - 300 * M)];
    expect(unkey(later, env('d3')).unknown).toBe(
      'd2 and d1 still run, as they do after a rollback and a promote, so it may have been promoted',
    );
  });

  it('the predecessor still running 30 minutes after the current one became ready contradicts a deploy', () => {
    const deployments = [
      dep('d3', NOW - 40 * M),
      dep('d2', NOW - 200 * M),
      dep('d1', NOW - 300 * M, 'stopped'),
    ];
    expect(unkey(deployments, env('d3')).unknown).toBe(
      'd2 still runs, though an automatic deploy has it stopped 30 minutes after replacing it, so it was promoted or rolled back to',
    );
    // Within the 30 minutes it fits an automatic deploy.
    const fresh = [dep('d3', NOW - 20 * M), dep('d2', NOW - 200 * M), dep('d1', NOW - 300 * M, 'stopped')];
    expect(unkey(fresh, env('d3')).current).toMatchObject({ via: 'deploy', previous: 'd2' });
  });
});

describe("deriveLive with the platform's record of its last switch (Vercel's lastAliasRequest)", () => {
  const job = (over: Partial<LastSwitch>): LastSwitch => ({
    via: 'rollback',
    from: 'd3',
    to: 'd2',
    succeeded: true,
    requestedAt: NOW - 5 * M,
    ...over,
  });
  const deployments = [dep('d3', NOW - 20 * M), dep('d2', NOW - 200 * M), dep('d1', NOW - 300 * M)];
  const withJob = (environment: Environment, lastSwitch: LastSwitch, list = deployments) =>
    deriveLive(input(list, environment, { lastSwitch, switchTakesAtMostMs: 3 * M }));

  it('a rollback it records went live when requested, within the time a switch takes', () => {
    expect(withJob(env('d2', { rolledBack: true }), job({})).current).toEqual({
      deploymentId: 'd2',
      via: 'rollback',
      notBefore: NOW - 5 * M,
      notAfter: NOW - 2 * M,
      previous: 'd3',
    });
    // Never later than the state was read.
    expect(withJob(env('d2', { rolledBack: true }), job({ requestedAt: NOW - M })).current?.notAfter).toBe(
      NOW,
    );
  });

  it('a promote of a newer fix after a rollback names the deployment live before it', () => {
    const list = [dep('d4', NOW - 15 * M), ...deployments];
    const promote = job({ via: 'promote', from: 'd2', to: 'd4', requestedAt: NOW - 8 * M });
    expect(withJob(env('d4'), promote, list).current).toMatchObject({ via: 'promote', previous: 'd2' });
  });

  it('a switch that moved nothing (resuming automatic deploys), failed or is under way says nothing', () => {
    const unknown = 'it was rolled back or promoted to, and Vercel does not say when';
    expect(withJob(env('d2'), job({ via: 'promote', from: 'd2' })).unknown).toBe(unknown);
    expect(withJob(env('d2', { rolledBack: true }), job({ succeeded: false })).unknown).toBe(unknown);
    const noFrom: LastSwitch = { via: 'rollback', to: 'd2', succeeded: true, requestedAt: NOW - 5 * M };
    expect(withJob(env('d2', { rolledBack: true }), noFrom).unknown).toBe(unknown);
  });

  it('a deploy after a promote: the promoted deployment served before it, unless another became ready since', () => {
    const list = [dep('d5', NOW - 20 * M), dep('d4', NOW - 100 * M), dep('d3', NOW - 200 * M)];
    // d3 was promoted over d4 (traffic to an older deployment, automatic deploys on), then d5 deployed.
    const promote = job({ via: 'promote', from: 'd4', to: 'd3', requestedAt: NOW - 60 * M });
    expect(withJob(env('d5'), promote, list).current).toMatchObject({ via: 'deploy', previous: 'd3' });
    const more = [dep('d6', NOW - 10 * M), ...list];
    expect(withJob(env('d6'), promote, more).current).toMatchObject({ via: 'deploy', previous: 'd5' });
    // After a rollback (resumed at a time not recorded) what served before is open.
    const rollback = job({ via: 'rollback', from: 'd4', to: 'd3', requestedAt: NOW - 60 * M });
    expect(withJob(env('d5'), rollback, list).current).toEqual({
      deploymentId: 'd5',
      via: 'deploy',
      notBefore: NOW - 17 * M,
      notAfter: NOW - 17 * M,
    });
  });

  it('a switch recorded after the current deployment became ready leaves its going live unknown', () => {
    const list = [dep('d5', NOW - 20 * M), dep('d4', NOW - 100 * M)];
    const later = job({ via: 'promote', from: 'd5', to: 'd4', requestedAt: NOW - 10 * M, succeeded: false });
    expect(withJob(env('d5'), later, list).unknown).toBe(
      "Vercel's last switch, to d4, came after it became ready, so it was promoted or rolled back to since",
    );
  });
});
