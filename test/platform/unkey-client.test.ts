/**
 * Contract tests of the Unkey HTTP client against the fake Unkey v2 server: retries with backoff on 429
 * and 5xx honouring Retry-After, no retry on 4xx, timeouts, response parsing at the edge, and the root
 * key kept out of every error.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PlatformHttpError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { quietRetries } from '../../src/platform/http-client.js';
import { parseRetryAfter, UnkeyClient } from '../../src/platform/unkey/client.js';
import {
  AcceptedResponseSchema,
  errorCodeFromType,
  GetDeploymentResponseSchema,
  ListDeploymentsResponseSchema,
} from '../../src/platform/unkey/schemas.js';
import { SleepRecordingClock, UnkeyFakeServer } from '../fakes/unkey-server.js';
import { LogLines } from '../jobs/fixtures/logs.js';

const KEY = 'unkey_3ZclientTestRootKey0123456789';
const TIMEOUT = 5_000;

let clock: SleepRecordingClock;
let server: UnkeyFakeServer;
let client: UnkeyClient;
let depId: string;

beforeEach(async () => {
  clock = new SleepRecordingClock();
  server = await UnkeyFakeServer.start({
    clock,
    rootKeys: {
      [KEY]: ['environment.*.read_deployment', 'environment.*.rollback_deployment'],
    },
  });
  depId = server.push({ project: 'acme', app: 'api', environment: 'production', branch: 'main' });
  client = new UnkeyClient({
    baseUrl: `${server.url}/`,
    rootKey: KEY,
    clock,
    timeoutMs: TIMEOUT,
    maxRetries: 3,
    baseDelayMs: 200,
    maxDelayMs: 1_000,
    maxRetryAfterMs: 10_000,
    random: () => 0.5,
  });
});

afterEach(async () => {
  await server.close();
});

function get(id = depId) {
  return client.call('deployments.getDeployment', { deploymentId: id }, GetDeploymentResponseSchema, {
    idempotent: true,
  });
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

/** A client of the fake (a fixed retry jitter) whose logger writes JSON lines, from debug on, to `destination`. */
function clientLoggingTo(destination: NodeJS.WritableStream): UnkeyClient {
  return new UnkeyClient({
    baseUrl: server.url,
    rootKey: KEY,
    clock,
    timeoutMs: TIMEOUT,
    random: () => 0.5,
    logger: createLogger({ level: 'debug', pretty: false, destination }),
  });
}

describe('UnkeyClient', () => {
  it('POSTs JSON to /v2/<resource>.<verb> with the bearer root key and parses the answer', async () => {
    const res = await get();
    expect(res.data.id).toBe(depId);
    expect(res.data.isCurrent).toBe(true);
    const req = server.requests[0];
    expect(req?.endpoint).toBe('deployments.getDeployment');
    expect(req?.authorization).toBe(`Bearer ${KEY}`);
    expect(req?.body).toEqual({ deploymentId: depId });
    expect(client.url('deployments.getDeployment')).toBe(`${server.url}/v2/deployments.getDeployment`);
  });

  it('waits Retry-After seconds on 429, then succeeds', async () => {
    server.fault({ kind: 'status', status: 429, retryAfter: '2' });
    const res = await clock.drive(get(), TIMEOUT);
    expect(res.data.id).toBe(depId);
    expect(server.requests).toHaveLength(2);
    expect(clock.sleeps.filter((ms) => ms !== TIMEOUT)).toEqual([2_000]);
    expect((server.requests[1]?.at ?? 0) - (server.requests[0]?.at ?? 0)).toBe(2_000);
  });

  it('honours Retry-After given as an HTTP date', async () => {
    server.fault({ kind: 'status', status: 429, retryAfter: new Date(clock.now() + 3_000).toUTCString() });
    await clock.drive(get(), TIMEOUT);
    expect(clock.sleeps.filter((ms) => ms !== TIMEOUT)).toEqual([3_000]);
  });

  it('retries 5xx with exponential backoff and jitter, then succeeds', async () => {
    server.fault({ kind: 'status', status: 503 }, 2);
    const res = await clock.drive(get(), TIMEOUT);
    expect(res.data.id).toBe(depId);
    expect(server.requests).toHaveLength(3);
    // 200 ms then 400 ms, each scaled by the jitter factor 0.5 + 0.5/2 = 0.75.
    expect(clock.sleeps.filter((ms) => ms !== TIMEOUT)).toEqual([150, 300]);
  });

  it('re-sends a write after a 429, never after a 5xx (the switch may have started)', async () => {
    // a newer deployment takes traffic, so rolling back to depId is a real switch
    server.push({ project: 'acme', app: 'api', environment: 'production', branch: 'main' });
    const rollback = () =>
      client.call('deployments.rollbackDeployment', { deploymentId: depId }, AcceptedResponseSchema, {
        idempotent: false,
      });
    const sent = () => server.requests.filter((r) => r.endpoint === 'deployments.rollbackDeployment');
    server.fault({ kind: 'status', status: 500, endpoint: 'deployments.rollbackDeployment' });
    const e = await failure(rollback());
    expect(e.status).toBe(500);
    expect(e.retry).toBe(true); // the job may try again, after re-reading the platform
    expect(sent()).toHaveLength(1);

    server.fault({
      kind: 'status',
      status: 429,
      retryAfter: '1',
      endpoint: 'deployments.rollbackDeployment',
    });
    const res = await clock.drive(rollback(), TIMEOUT);
    expect(res.meta.requestId).toMatch(/^req_/);
    expect(sent()).toHaveLength(3);
  });

  it('gives up after maxRetries with a retryable error naming status, method, URL and code', async () => {
    server.fault({ kind: 'status', status: 429, retryAfter: '1' }, 4);
    const e = await failure(get());
    expect(server.requests).toHaveLength(4);
    expect(e.status).toBe(429);
    expect(e.retry).toBe(true);
    expect(e.platformCode).toBe('rate_limited');
    expect(e.message).toContain(`429 POST ${server.url}/v2/deployments.getDeployment`);
    expect(e.context.retryAfterMs).toBe(1_000);
  });

  it('does not wait for a Retry-After longer than allowed', async () => {
    server.fault({ kind: 'status', status: 429, retryAfter: '120' });
    const e = await failure(get());
    expect(server.requests).toHaveLength(1);
    expect(e.retry).toBe(true);
    expect(e.context.retryAfterMs).toBe(120_000);
  });

  it('never retries a 4xx refusal', async () => {
    const e = await failure(
      client.call('deployments.rollbackDeployment', { deploymentId: depId }, AcceptedResponseSchema, {
        idempotent: false,
      }),
    );
    expect(server.requests).toHaveLength(1);
    expect(e.status).toBe(412);
    expect(e.retry).toBe(false);
    expect(e.platformCode).toBe('deployment_is_current');
    expect(e.message).toMatch(/^PlatformHttpError\[deployment_is_current\] 412 POST /);
  });

  it('times out a hanging read and retries it', async () => {
    server.fault({ kind: 'hang' });
    const p = get();
    await server.waitForRequests(1);
    await clock.advance(TIMEOUT);
    const res = await clock.drive(p, TIMEOUT);
    expect(res.data.id).toBe(depId);
    expect(server.requests).toHaveLength(2);
  });

  it('times out a hanging write without sending it again', async () => {
    server.fault({ kind: 'hang' });
    const p = client.call('deployments.rollbackDeployment', { deploymentId: depId }, AcceptedResponseSchema, {
      idempotent: false,
    });
    const outcome = failure(p);
    await server.waitForRequests(1);
    await clock.advance(TIMEOUT);
    const e = await outcome;
    expect(e.code).toBe('platform_timeout');
    expect(e.retry).toBe(true);
    expect(e.message).toContain(`no answer within ${TIMEOUT} ms`);
    expect(server.requests).toHaveLength(1);
  });

  it('reports a network failure as platform_unavailable', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const dead = new UnkeyClient({ baseUrl: `http://127.0.0.1:${port}`, rootKey: KEY, clock, maxRetries: 0 });
    const e = await failure(
      dead.call('deployments.getDeployment', { deploymentId: depId }, GetDeploymentResponseSchema, {
        idempotent: true,
      }),
    );
    expect(e.code).toBe('platform_unavailable');
    expect(e.message).not.toContain(KEY);
  });

  it('rejects an answer that does not match the schema, naming the field', async () => {
    server.fault({
      kind: 'body',
      status: 200,
      body: {
        meta: { requestId: 'req_x' },
        // A status Unkey adds later is accepted (see unkey-mapping.test.ts); a mistyped one is not.
        data: [{ id: 'dep_1', status: 42 }],
        pagination: { hasMore: false },
      },
    });
    const e = await failure(
      client.call('deployments.listDeployments', {}, ListDeploymentsResponseSchema, { idempotent: true }),
    );
    expect(e.platformCode).toBe('invalid_response');
    expect(e.retry).toBe(false);
    expect(e.message).toContain('response field data.0.status');
  });

  it('rejects a non-JSON success body', async () => {
    server.fault({ kind: 'body', status: 200, body: 'not json at all' });
    // The fake JSON-encodes bodies; a JSON string is valid JSON but not an object.
    const e = await failure(get());
    expect(e.message).toContain('response field (body)');
  });

  it('keeps the root key out of error messages even when Unkey echoes it', async () => {
    server.fault({
      kind: 'body',
      status: 400,
      body: {
        meta: { requestId: 'req_echo' },
        error: {
          title: 'Bad Request',
          detail: `header Bearer ${KEY} is not allowed here (${KEY})`,
          status: 400,
          type: 'https://unkey.com/docs/errors/unkey/application/invalid_input',
        },
      },
    });
    const e = await failure(get());
    expect(e.message).not.toContain(KEY);
    expect(JSON.stringify(e.context)).not.toContain(KEY);
    expect(e.message).toContain('[redacted]');
    expect(e.message).toContain('request req_echo');
  });

  it('logs retries without the root key', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const logged = clientLoggingTo(destination);
    server.fault({
      kind: 'body',
      status: 503,
      body: {
        meta: { requestId: 'req_503' },
        error: {
          title: 'Unavailable',
          detail: `upstream saw ${KEY}`,
          status: 503,
          type: 'https://unkey.com/docs/errors/unkey/application/service_unavailable',
        },
      },
    });
    await clock.drive(
      logged.call('deployments.getDeployment', { deploymentId: depId }, GetDeploymentResponseSchema, {
        idempotent: true,
      }),
      TIMEOUT,
    );
    expect(lines.join('')).toContain('unkey: retrying');
    expect(lines.join('')).toContain('service_unavailable');
    expect(lines.join('')).not.toContain(KEY);
  });

  it('logs retries at warn, and at debug inside quietRetries (a poll, which says its outage itself)', async () => {
    const lines = new LogLines();
    const logged = clientLoggingTo(lines);
    const read = () =>
      logged.call('deployments.getDeployment', { deploymentId: depId }, GetDeploymentResponseSchema, {
        idempotent: true,
      });
    server.fault({ kind: 'status', status: 503 }, 1);
    await clock.drive(read(), TIMEOUT);
    server.fault({ kind: 'status', status: 503 }, 1);
    await clock.drive(
      quietRetries(() => read()),
      TIMEOUT,
    );
    // A switch's own calls (no quietRetries) after it: warn again.
    server.fault({ kind: 'status', status: 503 }, 1);
    await clock.drive(read(), TIMEOUT);
    expect(lines.parsed.map((l) => `${l.levelName}: ${l.msg}`)).toEqual([
      'warn: unkey: retrying',
      'debug: unkey: retrying',
      'warn: unkey: retrying',
    ]);
  });

  it('describes an error answer that is not Unkey JSON', async () => {
    server.fault({ kind: 'body', status: 404, body: ['nope'] });
    const e = await failure(get());
    expect(e.platformCode).toBeUndefined();
    expect(e.message).toContain('PlatformHttpError[404] 404 POST');
  });
});

describe('helpers', () => {
  it('parses Retry-After seconds and HTTP dates', () => {
    const now = Date.UTC(2026, 0, 1, 0, 0, 0);
    expect(parseRetryAfter('3', now)).toBe(3_000);
    expect(parseRetryAfter('0.5', now)).toBe(500);
    expect(parseRetryAfter(new Date(now + 7_000).toUTCString(), now)).toBe(7_000);
    expect(parseRetryAfter(new Date(now - 7_000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });

  it('takes the error code from the last segment of the type URL', () => {
    expect(errorCodeFromType('https://unkey.com/docs/errors/unkey/application/deployment_not_ready')).toBe(
      'deployment_not_ready',
    );
    expect(errorCodeFromType('https://unkey.com/docs/errors/unkey/data/deployment_not_found/')).toBe(
      'deployment_not_found',
    );
    expect(errorCodeFromType('not-found')).toBe('not-found');
  });
});
