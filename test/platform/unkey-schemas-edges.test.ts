/**
 * the Unkey answer schemas (src/platform/unkey/schemas.ts): what Unkey's published
 * OpenAPI document (unkey-openapi-deployments.yaml) leaves optional must not fail a page.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UnkeyPlatform } from '../../src/platform/unkey/adapter.js';
import { SleepRecordingClock, UnkeyFakeServer } from '../fakes/unkey-server.js';

const KEY = 'unkey_3ZmutantSchemaRootKey012345678';
const TIMEOUT = 5_000;
const prodEnv = { project: 'acme', app: 'api', environment: 'production' } as const;

let clock: SleepRecordingClock;
let server: UnkeyFakeServer;
let platform: UnkeyPlatform;

beforeEach(async () => {
  clock = new SleepRecordingClock();
  server = await UnkeyFakeServer.start({
    clock,
    rootKeys: { [KEY]: ['environment.*.read_deployment'] },
    customDomains: { 'acme/api': ['api.acme.com'] },
  });
  platform = new UnkeyPlatform({
    environments: { production: prodEnv },
    client: { baseUrl: server.url, rootKey: KEY, clock, timeoutMs: TIMEOUT, maxRetries: 0 },
    clock,
  });
});

afterEach(async () => {
  await platform.close();
  await server.close();
});

/** listDeployments of production as the fake answers it on the wire. */
async function wirePage(): Promise<{ data: Record<string, unknown>[] } & Record<string, unknown>> {
  const res = await fetch(`${server.url}/v2/deployments.listDeployments`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ...prodEnv, limit: 100 }),
  });
  return (await res.json()) as { data: Record<string, unknown>[] } & Record<string, unknown>;
}

describe('Unkey schemas', () => {
  it('reads a deployment without `domains` (not required by the schema) as one with no hostnames', async () => {
    const live = server.push({ ...prodEnv, branch: 'main', sha: `aaaaaaa${'1'.repeat(33)}` });
    await clock.advance(60_000);
    const building = server.push({
      ...prodEnv,
      branch: 'main',
      sha: `bbbbbbb${'2'.repeat(33)}`,
      status: 'building',
    });
    const page = await wirePage();
    const withoutDomains = {
      ...page,
      data: page.data.map((d) => {
        if (d.id !== building) return d;
        const { domains: _domains, ...rest } = d;
        return rest;
      }),
    };
    expect(withoutDomains.data.find((d) => d.id === building)).not.toHaveProperty('domains');
    server.fault({
      kind: 'body',
      status: 200,
      body: withoutDomains,
      endpoint: 'deployments.listDeployments',
    });

    const snap = await clock.drive(platform.snapshot('production'), TIMEOUT);
    expect(snap.deployments.map((d) => [d.id, d.status])).toEqual([
      [building, 'building'],
      [live, 'ready'],
    ]);
    expect(snap.environment.currentDeploymentId).toBe(live);
    expect(snap.domains.some((d) => d.deploymentId === building)).toBe(false);
    expect(snap.domains.find((d) => d.hostname === 'api.acme.com')?.deploymentId).toBe(live);
  });
});
