/**
 * `deriveLive` (src/platform/live-history.ts), pure: cases no test held (a switch
 * requested shortly before the current deployment became ready, the predecessor's 30 minutes counted
 * from the latest ready time, the deployment live before among several ready since a promote, a
 * promote on record while production reads rolled back).
 */
import { describe, expect, it } from 'vitest';
import type { Deployment, Environment } from '../../src/domain/types.js';
import { type DeriveLiveInput, deriveLive, type LastSwitch } from '../../src/platform/live-history.js';

const M = 60_000;
const NOW = 1_000 * M;
const STOP_AFTER = 30 * M;

/** A deployment created at `createdAt` that became ready at `readyAt` (3 minutes later by default). */
function dep(id: string, createdAt: number, readyAt = createdAt + 3 * M): Deployment {
  return {
    id,
    projectId: 'p',
    environment: 'production',
    branch: 'main',
    commit: { sha: '', message: '', author: '' },
    createdAt,
    readyAt,
    status: 'ready',
  };
}

function env(current: string, over: Partial<Environment> = {}): Environment {
  return {
    slug: 'production',
    kind: 'production',
    projectId: 'p',
    rolledBack: false,
    currentDeploymentId: current,
    ...over,
  };
}

/** Vercel-like input: exactly `readyAt`, switches taking at most 3 minutes. */
function vercel(
  deployments: Deployment[],
  environment: Environment,
  lastSwitch?: LastSwitch,
): DeriveLiveInput {
  return {
    platform: 'Vercel',
    environment,
    deployments,
    readAt: NOW,
    readyWindow: (d) => (d.readyAt === undefined ? undefined : { notBefore: d.readyAt, notAfter: d.readyAt }),
    ...(lastSwitch === undefined ? {} : { lastSwitch }),
    switchTakesAtMostMs: 3 * M,
  };
}

describe('deriveLive', () => {
  it('claims nothing when the last switch was requested less than a switch’s duration before the current deployment became ready', () => {
    // d3 became ready at NOW - 20 min; a promote to d1 was requested 2 minutes before and may have
    // finished (up to 3 minutes) after d3 became ready.
    const list = [dep('d3', NOW - 23 * M), dep('d2', NOW - 200 * M), dep('d1', NOW - 300 * M)];
    const promote: LastSwitch = {
      via: 'promote',
      from: 'd2',
      to: 'd1',
      succeeded: true,
      requestedAt: NOW - 22 * M,
    };
    expect(deriveLive(vercel(list, env('d3'), promote)).unknown).toBe(
      "Vercel's last switch, to d1, came after it became ready, so it was promoted or rolled back to since",
    );
    // Requested more than 3 minutes before: over before d3 became ready, so d3 went live by a deploy.
    const earlier: LastSwitch = { ...promote, requestedAt: NOW - 24 * M };
    expect(deriveLive(vercel(list, env('d3'), earlier)).current).toMatchObject({
      deploymentId: 'd3',
      via: 'deploy',
    });
  });

  it('names the newest of several deployments that became ready after a promote as the one live before', () => {
    // d3 was promoted over d4 an hour ago; d5 and then d6 became ready since; d7 is current.
    const list = [
      dep('d7', NOW - 10 * M),
      dep('d6', NOW - 20 * M),
      dep('d5', NOW - 30 * M),
      dep('d4', NOW - 100 * M),
      dep('d3', NOW - 200 * M),
    ];
    const promote: LastSwitch = {
      via: 'promote',
      from: 'd4',
      to: 'd3',
      succeeded: true,
      requestedAt: NOW - 60 * M,
    };
    expect(deriveLive(vercel(list, env('d7'), promote)).current).toMatchObject({
      deploymentId: 'd7',
      via: 'deploy',
      previous: 'd6',
    });
  });

  it('says nothing of a promote on record while production reads rolled back', () => {
    const list = [dep('d3', NOW - 20 * M), dep('d2', NOW - 200 * M)];
    const promote: LastSwitch = {
      via: 'promote',
      from: 'd2',
      to: 'd3',
      succeeded: true,
      requestedAt: NOW - 5 * M,
    };
    expect(deriveLive(vercel(list, env('d3', { rolledBack: true }), promote)).unknown).toBe(
      'it was rolled back or promoted to, and Vercel does not say when',
    );
    // Not rolled back, the same record dates it.
    expect(deriveLive(vercel(list, env('d3'), promote)).current).toMatchObject({
      via: 'promote',
      previous: 'd2',
    });
  });

  it('counts the predecessor’s 30 minutes (Unkey) from the latest time the current one may have become ready', () => {
    // d3 was created 45 minutes ago and built for 20 minutes: ready 25 minutes ago at the latest. d2,
    // which it replaced, still runs: within the 30 minutes Unkey keeps it, so a deploy fits.
    const list = [dep('d3', NOW - 45 * M, NOW - 25 * M), dep('d2', NOW - 200 * M)];
    const derived = deriveLive({
      platform: 'Unkey',
      environment: env('d3'),
      deployments: list,
      readAt: NOW,
      readyWindow: (d) => ({ notBefore: d.createdAt, notAfter: d.readyAt ?? NOW }),
      stopsReplacedAfterMs: STOP_AFTER,
    });
    expect(derived.current).toEqual({
      deploymentId: 'd3',
      via: 'deploy',
      notBefore: NOW - 45 * M,
      notAfter: NOW - 25 * M,
      previous: 'd2',
    });
  });
});
