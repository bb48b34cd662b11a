/**
 * Contract tests of the Vercel HTTP client against the fake Vercel server: bearer auth and `teamId` on
 * every call, retries with backoff on 429 and 5xx honouring Retry-After / X-RateLimit-Reset (driven by
 * an injected clock, never real sleeps), no retry on 4xx or on a write that timed out, responses parsed
 * at the edge with the bad field named, and the token kept out of every error.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PlatformHttpError } from '../../src/errors.js';
import { VercelClient } from '../../src/platform/vercel/client.js';
import {
  AcceptedResponseSchema,
  GetDeploymentResponseSchema,
  ListDeploymentsResponseSchema,
  ProjectSchema,
} from '../../src/platform/vercel/schemas.js';
import { SleepRecordingClock } from '../fakes/unkey-server.js';
import { VercelFakeServer } from '../fakes/vercel-server.js';

const TOKEN = 'vcp_clientTestToken0123456789abcdef';
const TEAM = 'team_acme123';
const TIMEOUT = 5_000;

let clock: SleepRecordingClock;
let server: VercelFakeServer;
let client: VercelClient;
let projectId: string;
let depId: string;

function makeClient(overrides: { token?: string; teamId?: string | null } = {}): VercelClient {
  const teamId = overrides.teamId === undefined ? TEAM : overrides.teamId;
  return new VercelClient({
    baseUrl: `${server.url}/`,
    token: overrides.token ?? TOKEN,
    ...(teamId === null ? {} : { teamId }),
    clock,
    timeoutMs: TIMEOUT,
    maxRetries: 3,
    baseDelayMs: 200,
    maxDelayMs: 1_000,
    maxRetryAfterMs: 10_000,
    random: () => 0.5,
  });
}

beforeEach(async () => {
  clock = new SleepRecordingClock();
  server = await VercelFakeServer.start({ clock, tokens: { [TOKEN]: [TEAM] } });
  projectId = server.addProject({ name: 'acme-web', teamId: TEAM });
  depId = server.deploy({ project: projectId });
  client = makeClient();
});

afterEach(async () => {
  await server.close();
});

function getProject(c: VercelClient = client) {
  return c.call({ method: 'GET', path: '/v9/projects/acme-web', idempotent: true }, ProjectSchema);
}

async function failure(p: Promise<unknown>): Promise<PlatformHttpError> {
  const e = await clock.drive(
    p.then(
      () => undefined,
      (err: unknown) => err,
    ),
    TIMEOUT,
  );
  expect(e).toBeInstanceOf(PlatformHttpError);
  return e as PlatformHttpError;
}

describe('VercelClient', () => {
  it('sends the bearer token and teamId, and parses the project', async () => {
    const project = await getProject();
    expect(project.id).toBe(projectId);
    expect(project.targets?.production?.id).toBe(depId);
    expect(project.autoAssignCustomDomains).toBe(true);
    const req = server.requests[0];
    expect(req?.authorization).toBe(`Bearer ${TOKEN}`);
    expect(req?.query).toEqual({ teamId: TEAM });
    expect(client.url('/v6/deployments', { projectId: 'p', until: undefined, limit: 5 })).toBe(
      `${server.url}/v6/deployments?projectId=p&limit=5&teamId=${TEAM}`,
    );
  });

  it('omits teamId without a team: a team project is then not found (404 not_found, not retried)', async () => {
    await server.close();
    server = await VercelFakeServer.start({ clock, tokens: { [TOKEN]: ['personal', TEAM] } });
    server.addProject({ name: 'acme-web', teamId: TEAM });
    const e = await failure(getProject(makeClient({ teamId: null })));
    expect(e.status).toBe(404);
    expect(e.platformCode).toBe('not_found');
    expect(e.retry).toBe(false);
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]?.query).toEqual({});
  });

  it('maps list and single-deployment shapes to one deployment shape', async () => {
    const list = await client.call(
      { method: 'GET', path: '/v6/deployments', query: { projectId, limit: 10 }, idempotent: true },
      ListDeploymentsResponseSchema,
    );
    const one = await client.call(
      { method: 'GET', path: `/v13/deployments/${depId}`, idempotent: true },
      GetDeploymentResponseSchema,
    );
    expect(list.deployments[0]).toEqual(one);
    expect(one).toMatchObject({ id: depId, readyState: 'READY', target: 'production', projectId });
    expect(one.meta.githubCommitSha).toMatch(/^[0-9a-f]{7}/);
    expect(list.pagination.next).toBeNull();
  });

  it('answers 403 forbidden for a wrong token, without retrying and without the token in the error', async () => {
    const e = await failure(getProject(makeClient({ token: 'vcp_wrongToken0123456789' })));
    expect(e.status).toBe(403);
    expect(e.platformCode).toBe('forbidden');
    expect(e.retry).toBe(false);
    expect(server.requests).toHaveLength(1);
    expect(e.message).not.toContain('vcp_wrongToken0123456789');
  });

  it('answers 403 for a team the token may not access', async () => {
    const e = await failure(getProject(makeClient({ teamId: 'team_other' })));
    expect(e.status).toBe(403);
    expect(e.message).toContain('team_other');
  });

  it('waits Retry-After seconds on 429, then succeeds', async () => {
    server.fault({ kind: 'status', status: 429, retryAfter: '2' });
    const project = await clock.drive(getProject(), TIMEOUT);
    expect(project.id).toBe(projectId);
    expect(server.requests).toHaveLength(2);
    expect(clock.sleeps.filter((ms) => ms !== TIMEOUT)).toEqual([2_000]);
    expect((server.requests[1]?.at ?? 0) - (server.requests[0]?.at ?? 0)).toBe(2_000);
  });

  it('falls back to X-RateLimit-Reset on a 429 without Retry-After', async () => {
    const t0 = clock.now();
    const reset = Math.ceil((t0 + 3_000) / 1000);
    server.fault({ kind: 'status', status: 429, headers: { 'x-ratelimit-reset': String(reset) } });
    await clock.drive(getProject(), TIMEOUT);
    expect(clock.sleeps.filter((ms) => ms !== TIMEOUT)).toEqual([reset * 1000 - t0]);
    expect(server.requests).toHaveLength(2);
  });

  it('does not wait for a Retry-After longer than the maximum', async () => {
    server.fault({ kind: 'status', status: 429, retryAfter: '600' });
    const e = await failure(getProject());
    expect(e.status).toBe(429);
    expect(e.retry).toBe(true);
    expect(e.context.retryAfterMs).toBe(600_000);
    expect(server.requests).toHaveLength(1);
  });

  it('retries 5xx with exponential backoff and jitter, then succeeds', async () => {
    server.fault({ kind: 'status', status: 503 }, 2);
    await clock.drive(getProject(), TIMEOUT);
    expect(server.requests).toHaveLength(3);
    // 200 ms then 400 ms, each scaled by the jitter factor 0.5 + 0.5/2 = 0.75.
    expect(clock.sleeps.filter((ms) => ms !== TIMEOUT)).toEqual([150, 300]);
  });

  it('gives up after maxRetries with a retryable error naming status, method and URL', async () => {
    server.fault({ kind: 'status', status: 500, code: 'internal_server_error', message: 'boom' }, 10);
    const e = await failure(getProject());
    expect(server.requests).toHaveLength(4);
    expect(e.retry).toBe(true);
    expect(e.message).toMatch(
      /^PlatformHttpError\[internal_server_error\] 500 GET http:\/\/127\.0\.0\.1:\d+\/v9\/projects\/acme-web\?teamId=team_acme123: boom$/,
    );
  });

  it('re-sends a write after a 429 but not after a 5xx, and sends the JSON body', async () => {
    const rollback = () =>
      client.call(
        { method: 'POST', path: `/v1/projects/${projectId}/rollback/${depId}`, body: {}, idempotent: false },
        AcceptedResponseSchema,
      );
    server.fault({ kind: 'status', status: 429, retryAfter: '1', method: 'POST' });
    await clock.drive(rollback(), TIMEOUT);
    const posts = () => server.requests.filter((r) => r.method === 'POST');
    expect(posts()).toHaveLength(2);
    expect(posts().every((r) => JSON.stringify(r.body) === '{}')).toBe(true);

    // A 5xx leaves the outcome unknown (an alias job may have started): not sent again.
    server.fault({ kind: 'status', status: 502, method: 'POST' });
    const e = await clock.drive(
      rollback().then(
        () => undefined,
        (err: unknown) => err as PlatformHttpError,
      ),
      TIMEOUT,
    );
    expect(e?.status).toBe(502);
    expect(e?.retry).toBe(true);
    expect(posts()).toHaveLength(3);
  });

  it('retries a read that timed out but not a write (its outcome is unknown)', async () => {
    server.fault({ kind: 'hang', method: 'GET' });
    const readP = getProject();
    await server.waitForRequest(() => true);
    await clock.advance(TIMEOUT);
    expect((await clock.drive(readP, TIMEOUT)).id).toBe(projectId);

    server.fault({ kind: 'hang', method: 'POST' });
    const writeP = client
      .call(
        { method: 'POST', path: `/v10/projects/${projectId}/promote/${depId}`, body: {}, idempotent: false },
        AcceptedResponseSchema,
      )
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    await server.waitForRequest((r) => r.method === 'POST');
    await clock.advance(TIMEOUT);
    const e = await writeP;
    if (!(e instanceof PlatformHttpError)) throw new Error('expected a PlatformHttpError');
    expect(e.code).toBe('platform_timeout');
    expect(server.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
  });

  it('names the missing field of a bad answer (invalid_response, not retried)', async () => {
    server.fault({ kind: 'body', status: 200, body: { id: 'prj_1', targets: {} } });
    const e = await failure(getProject());
    expect(e.platformCode).toBe('invalid_response');
    expect(e.message).toContain('response field name');
    expect(e.retry).toBe(false);

    server.fault({
      kind: 'body',
      status: 200,
      body: {
        deployments: [{ uid: 'dpl_1', url: 'x.vercel.app', created: 1 }],
        pagination: { count: 1, next: null },
      },
    });
    const e2 = await failure(
      client.call(
        { method: 'GET', path: '/v6/deployments', idempotent: true },
        ListDeploymentsResponseSchema,
      ),
    );
    expect(e2.message).toContain('response field deployments.0.state: expected state or readyState');

    server.fault({
      kind: 'body',
      status: 200,
      body: { id: 'prj_1', name: 'x', lastAliasRequest: { jobStatus: 'weird' } },
    });
    const e3 = await failure(getProject());
    expect(e3.message).toContain('response field lastAliasRequest.');
  });

  it('reports a body that is not JSON', async () => {
    server.fault({ kind: 'body', status: 200, body: undefined });
    const e = await failure(getProject());
    expect(e.platformCode).toBe('invalid_response');
  });

  it('keeps the token out of an error that echoes it', async () => {
    server.fault({ kind: 'status', status: 400, code: 'bad_request', message: `bad header Bearer ${TOKEN}` });
    const e = await failure(getProject());
    expect(e.message).not.toContain(TOKEN);
    expect(e.message).toContain('[redacted]');
  });
});
