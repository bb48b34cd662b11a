/**
 * Edge cases of the shared HTTP client (src/platform/http-client.ts), through the Unkey client
 * against the fake Unkey v2 server (and the Vercel client against the fake Vercel): behaviour no other
 * test pinned down (the backoff cap, the longest Retry-After still waited for, the secret removed even
 * where no token pattern would catch it, a URL's credentials masked in errors, retry warnings and the
 * app's `/readyz`).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PlatformHttpError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { UnkeyClient } from '../../src/platform/unkey/client.js';
import { GetDeploymentResponseSchema } from '../../src/platform/unkey/schemas.js';
import { VercelClient } from '../../src/platform/vercel/client.js';
import { ProjectSchema } from '../../src/platform/vercel/schemas.js';
import { SleepRecordingClock, UnkeyFakeServer } from '../fakes/unkey-server.js';
import { VercelFakeServer } from '../fakes/vercel-server.js';
import { LogLines } from '../jobs/fixtures/logs.js';
import { startTestSwitchyard } from '../support/switchyard.js';

const KEY = 'unkey_3ZmutantHttpRootKey0123456789';
const TIMEOUT = 5_000;

let clock: SleepRecordingClock;
let server: UnkeyFakeServer;
let depId: string;

beforeEach(async () => {
  clock = new SleepRecordingClock();
  server = await UnkeyFakeServer.start({
    clock,
    rootKeys: { [KEY]: ['environment.*.read_deployment'] },
  });
  depId = server.push({ project: 'acme', app: 'api', environment: 'production', branch: 'main' });
});

afterEach(async () => {
  await server.close();
});

function clientWith(tuning: {
  maxRetries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  maxRetryAfterMs: number;
}): UnkeyClient {
  return new UnkeyClient({
    baseUrl: server.url,
    rootKey: KEY,
    clock,
    timeoutMs: TIMEOUT,
    random: () => 0.5,
    ...tuning,
  });
}

function get(client: UnkeyClient) {
  return client.call('deployments.getDeployment', { deploymentId: depId }, GetDeploymentResponseSchema, {
    idempotent: true,
  });
}

describe('JsonHttpClient retries', () => {
  it('caps the exponential backoff at maxDelayMs, jitter applied to the capped delay', async () => {
    const client = clientWith({
      maxRetries: 5,
      baseDelayMs: 200,
      maxDelayMs: 1_000,
      maxRetryAfterMs: 10_000,
    });
    server.fault({ kind: 'status', status: 503 }, 5);
    const res = await clock.drive(get(client), TIMEOUT);
    expect(res.data.id).toBe(depId);
    expect(server.requests).toHaveLength(6);
    // 200, 400, 800, then 1600 and 3200 capped at 1000; each scaled by the jitter 0.75.
    expect(clock.sleeps.filter((ms) => ms !== TIMEOUT)).toEqual([150, 300, 600, 750, 750]);
  });

  it('waits a Retry-After exactly as long as maxRetryAfterMs (only a longer one fails the call)', async () => {
    const client = clientWith({
      maxRetries: 3,
      baseDelayMs: 200,
      maxDelayMs: 1_000,
      maxRetryAfterMs: 10_000,
    });
    server.fault({ kind: 'status', status: 429, retryAfter: '10' });
    const res = await clock.drive(get(client), TIMEOUT);
    expect(res.data.id).toBe(depId);
    expect(server.requests).toHaveLength(2);
    expect(clock.sleeps.filter((ms) => ms !== TIMEOUT)).toEqual([10_000]);
  });
});

describe('JsonHttpClient redaction', () => {
  // A Vercel token has no recognisable shape (no `unkey_` prefix): only the client's own secret removal
  // keeps it out when Vercel echoes it without a `Bearer` in front.
  const TOKEN = 'mutantReviewToken0123456789abcdef';

  it('removes the token from an error and from the retry log lines that echo it bare', async () => {
    const vercel = await VercelFakeServer.start({ clock, tokens: { [TOKEN]: ['personal'] } });
    try {
      vercel.addProject({ name: 'acme-web' });
      const lines = new LogLines();
      const client = new VercelClient({
        baseUrl: vercel.url,
        token: TOKEN,
        clock,
        timeoutMs: TIMEOUT,
        maxRetries: 1,
        random: () => 0.5,
        logger: createLogger({ level: 'debug', pretty: false, destination: lines }),
      });
      vercel.fault({ kind: 'status', status: 503, code: 'internal', message: `token ${TOKEN} is throttled` });
      vercel.fault({
        kind: 'status',
        status: 400,
        code: 'bad_request',
        message: `token ${TOKEN} is not valid here`,
      });
      const e = await clock.drive(
        client.call({ method: 'GET', path: '/v9/projects/acme-web', idempotent: true }, ProjectSchema).then(
          () => undefined,
          (err: unknown) => err,
        ),
        TIMEOUT,
      );
      expect(e).toBeInstanceOf(PlatformHttpError);
      expect((e as PlatformHttpError).message).toContain('is not valid here');
      expect((e as PlatformHttpError).message).not.toContain(TOKEN);
      expect(lines.parsed.some((l) => l.msg === 'vercel: retrying')).toBe(true);
      expect(lines.raw.join('\n')).not.toContain(TOKEN);
    } finally {
      await vercel.close();
    }
  });
});

describe('URL credentials', () => {
  // A proxy's login written into the platform's URL: config refuses it at start-up (test/config), and
  // whatever still quotes such a URL (fetch's own error, a proxy's answer) is masked on the way out.
  const PASSWORD = 'Sup3rS3cretProxy';

  it('PlatformHttpError masks them in its message, its url and its context', () => {
    const e = new PlatformHttpError(
      0,
      'POST',
      `http://proxyuser:${PASSWORD}@127.0.0.1:9/v2/deployments.getDeployment`,
      'network_error',
      `fetch refused http://proxyuser:${PASSWORD}@127.0.0.1:9/v2/deployments.getDeployment`,
    );
    expect(e.message).toBe(
      'PlatformHttpError[network_error] 0 POST http://***@127.0.0.1:9/v2/deployments.getDeployment: fetch refused http://***@127.0.0.1:9/v2/deployments.getDeployment',
    );
    expect(e.url).toBe('http://***@127.0.0.1:9/v2/deployments.getDeployment');
    expect(JSON.stringify(e.context)).not.toContain(PASSWORD);
  });

  it('never shows them in the error nor in the retry warnings of a request fetch refused for them', async () => {
    const lines = new LogLines();
    const client = new UnkeyClient({
      baseUrl: server.url.replace('http://', `http://proxyuser:${PASSWORD}@`),
      rootKey: KEY,
      clock,
      timeoutMs: TIMEOUT,
      maxRetries: 2,
      random: () => 0.5,
      logger: createLogger({ level: 'debug', pretty: false, destination: lines }),
    });
    const e = await clock.drive(
      get(client).then(
        () => undefined,
        (err: unknown) => err,
      ),
      TIMEOUT,
    );
    expect(e).toBeInstanceOf(PlatformHttpError);
    expect((e as PlatformHttpError).message).toMatch(
      /^PlatformHttpError\[network_error\] 0 POST http:\/\/\*\*\*@127\.0\.0\.1:\d+\/v2\/deployments\.getDeployment: Request cannot be constructed from a URL that includes credentials: http:\/\/\*\*\*@127/,
    );
    expect(lines.parsed.filter((l) => l.msg === 'unkey: retrying')).toHaveLength(2);
    expect(lines.raw.join('\n')).not.toContain(PASSWORD);
    expect(server.requests).toHaveLength(0);
    // What the clients' error details go through (a platform's answer quoting a URL) masks them too.
    expect(client.redact(`upstream http://proxyuser:${PASSWORD}@10.0.0.1:3128 refused`)).toBe(
      'upstream http://***@10.0.0.1:3128 refused',
    );
  });

  it("/readyz never shows them when the platform's answer quotes them (it answers without a login)", async () => {
    const sy = await startTestSwitchyard({
      env: {
        PLATFORM: 'unkey',
        UNKEY_ROOT_KEY: KEY,
        UNKEY_API_URL: server.url,
        SWITCHYARD_CONSOLE: 'off',
      },
      file: {
        platform: 'unkey',
        environments: { production: { unkey: { project: 'acme', app: 'api', environment: 'production' } } },
      },
    });
    try {
      // A proxy in front of Unkey refusing the request, naming its upstream with its login.
      server.fault(
        {
          kind: 'body',
          status: 400,
          body: `proxy http://proxyuser:${PASSWORD}@10.0.0.1:3128 refused the request`,
          endpoint: 'deployments.listDeployments',
        },
        20,
      );
      const res = await fetch(`${sy.baseUrl}/readyz`);
      const text = await res.text();
      expect(res.status).toBe(503);
      expect(text).not.toContain(PASSWORD);
      expect((JSON.parse(text) as { problems: string[] }).problems).toEqual([
        expect.stringMatching(
          /^platform unkey: .*proxy http:\/\/\*\*\*@10\.0\.0\.1:3128 refused the request/,
        ),
      ]);
    } finally {
      await sy.close();
    }
  });
});
