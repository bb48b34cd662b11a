/**
 * LocalPlatformClient against the local platform's real HTTP API: the port works the same over the
 * wire as in process (what separate worker processes rely on).
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { RefusalError } from '../../src/errors.js';
import { LocalPlatformClient } from '../../src/platform/local/client.js';
import { createLocalApi } from '../../src/platform/local/http-api.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import { TrafficRouter } from '../../src/platform/local/router.js';

let platform: LocalPlatform;
let server: Server;
let client: LocalPlatformClient;
let base: string;
const clock = new ManualClock();

beforeEach(async () => {
  platform = await LocalPlatform.open({ clock, reactivationTimeMs: 0, buildTimeMs: 10 });
  server = createServer(createLocalApi(platform));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  client = new LocalPlatformClient({ baseUrl: base });
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await platform.close();
});

const JSON_BODY = { 'content-type': 'application/json' };

describe('LocalPlatformClient', () => {
  it('reads the same snapshot and routing as the platform in process', async () => {
    expect(await client.listEnvironments()).toEqual(await platform.listEnvironments());
    expect(await client.snapshot('production')).toEqual(await platform.snapshot('production'));
    expect(await client.routing('production')).toEqual(await platform.routing('production'));
    expect(await client.getDeployment('dep_4kq9wz')).toEqual(await platform.getDeployment('dep_4kq9wz'));
    expect(await client.getDeployment('dep_nope')).toBeUndefined();
    await client.health();
  });

  it('runs a rollback over the wire and observes the operation', async () => {
    const ref = await client.rollback({
      environment: 'production',
      targetId: 'dep_3hd7xa',
      requestedBy: 'bob',
    });
    let state = (await client.operation(ref)).state;
    for (let i = 0; i < 50 && state !== 'succeeded' && state !== 'failed'; i++) {
      await clock.advance(100);
      state = (await client.operation(ref)).state;
    }
    expect(state).toBe('succeeded');
    const snap = await client.snapshot('production');
    expect(snap.environment.currentDeploymentId).toBe('dep_3hd7xa');
    expect(snap.environment.rolledBack).toBe(true);
    // every fact of the rolled-back environment travels, the start of its period included (a worker's
    // default promote reads it)
    expect(snap.environment.rolledBackSince).toBe(snap.environment.rolledBackAt);
    expect(snap).toEqual(await platform.snapshot('production'));
  });

  it('turns platform refusals into RefusalError with the same code', async () => {
    const err = await client
      .rollback({ environment: 'production', targetId: 'dep_4kq9wz' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RefusalError);
    expect(err).toMatchObject({ code: 'target_is_current', retry: false });
    await expect(client.snapshot('staging')).rejects.toMatchObject({ code: 'unknown_environment' });
    // what the plan expected travels too: a moved environment is refused as stale, atomically
    const stale = await client
      .rollback({ environment: 'production', targetId: 'dep_3hd7xa', expectedCurrent: 'dep_2mc5ty' })
      .catch((e: unknown) => e);
    expect(stale).toMatchObject({ code: 'plan_stale', retry: false });
    expect((await client.snapshot('production')).environment.currentDeploymentId).toBe('dep_4kq9wz');
  });

  it('answers 400 naming the field for a bad operator request, and changes nothing', async () => {
    const before = platform.dump();
    const res = await fetch(`${base}/_switchyard/push`, {
      method: 'POST',
      headers: JSON_BODY,
      body: JSON.stringify({ environment: 5 }),
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('environment');
    const bad = await fetch(`${base}/_switchyard/rollback`, {
      method: 'POST',
      headers: JSON_BODY,
      body: 'not json',
    });
    expect(bad.status).toBe(400);
    expect(platform.dump()).toEqual(before);
  });

  it('answers 400 naming the path segment whose percent-encoding is malformed (not a 500 "URI malformed"); changes nothing', async () => {
    const before = platform.dump();
    const port = new URL(base).port;
    // node:http sends the path as written (fetch and URL would re-encode some of it)
    const send = (method: string, path: string) =>
      new Promise<{ status: number; body: unknown }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, method, path }, (r) => {
          let text = '';
          r.on('data', (c: Buffer) => {
            text += c.toString();
          });
          r.on('end', () => resolve({ status: r.statusCode ?? 0, body: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.end();
      });
    const cases: [string, string, string][] = [
      ['GET', '/_switchyard/environments/%zz/snapshot', '%zz'],
      ['GET', '/_switchyard/deployments/dep_%E0%A4', 'dep_%E0%A4'],
      ['POST', '/_switchyard/deployments/%E0/stop', '%E0'],
    ];
    for (const [method, path, segment] of cases) {
      expect({ path, ...(await send(method, path)) }).toEqual({
        path,
        status: 400,
        body: {
          error: { code: 'invalid_input', message: `path segment "${segment}": malformed percent-encoding` },
          retry: false,
        },
      });
    }
    expect(platform.dump()).toEqual(before);
    // A well-formed escape still reaches its endpoint.
    expect((await send('GET', '/_switchyard/deployments/dep_4kq9w%7A')).status).toBe(200);
  });

  it("refuses another site's page, a body that is not JSON, and a name that is not loopback; changes nothing", async () => {
    const before = platform.dump();
    const body = JSON.stringify({ environment: 'production', message: 'from a web page' });
    // A page's cross-site "simple" POST (text/plain) and its cross-origin JSON POST
    const plain = await fetch(`${base}/_switchyard/push`, { method: 'POST', body });
    expect(plain.status).toBe(415);
    const fromPage = await fetch(`${base}/_switchyard/push`, {
      method: 'POST',
      headers: { ...JSON_BODY, origin: 'https://evil.example' },
      body,
    });
    expect(fromPage.status).toBe(403);
    // DNS rebinding: the page's own name, pointed at 127.0.0.1
    const port = new URL(base).port;
    const rebound = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/_switchyard/state',
          headers: { host: `rebind.evil.example:${port}` },
        },
        (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(rebound).toBe(403);
    expect(platform.dump()).toEqual(before);
  });

  it('refuses what a proxy or tunnel on this machine forwards to the router port, reads included; changes nothing', async () => {
    // The router's port is the one shown through a proxy or tunnel, and it hands `/_switchyard/` to the
    // operator API whatever the Host (ngrok --host-header=shop.localhost, nginx proxy_pass 127.0.0.1).
    const router = new TrafficRouter({ port: 0, operator: createLocalApi(platform) });
    const port = await router.listen();
    try {
      const send = (method: string, path: string, headers: Record<string, string>, body?: unknown) =>
        new Promise<{ status: number; text: string }>((resolve, reject) => {
          const text = body === undefined ? undefined : JSON.stringify(body);
          const req = request(
            {
              host: '127.0.0.1',
              port,
              method,
              path,
              headers: text === undefined ? headers : { ...JSON_BODY, ...headers },
            },
            (r) => {
              let out = '';
              r.on('data', (c: Buffer) => {
                out += c.toString();
              });
              r.on('end', () => resolve({ status: r.statusCode ?? 0, text: out }));
            },
          );
          req.on('error', reject);
          req.end(text);
        });
      const before = platform.dump();
      const tunnel = {
        host: 'shop.localhost',
        'x-forwarded-for': '203.0.113.9',
        'x-forwarded-proto': 'https',
      };
      const rollback = await send('POST', '/_switchyard/rollback', tunnel, {
        environment: 'production',
        targetId: 'dep_3hd7xa',
        requestedBy: 'mallory',
      });
      expect(rollback.status).toBe(403);
      expect(JSON.parse(rollback.text)).toMatchObject({
        error: {
          code: 'forbidden',
          message: expect.stringContaining('came through a proxy (X-Forwarded-For)'),
        },
        retry: false,
      });
      const nginx = { host: `127.0.0.1:${port}` };
      const refused = [
        await send(
          'POST',
          '/_switchyard/push',
          { ...nginx, 'x-real-ip': '203.0.113.9' },
          { environment: 'production' },
        ),
        await send('POST', '/_switchyard/deployments/dep_3hd7xa/stop', {
          ...nginx,
          forwarded: 'for=203.0.113.9',
        }),
        await send(
          'POST',
          '/_switchyard/promote',
          { ...nginx, 'x-forwarded-host': 'shop.example.com' },
          {
            environment: 'production',
            targetId: 'dep_3hd7xa',
          },
        ),
        await send('GET', '/_switchyard/state', { ...nginx, 'x-real-ip': '203.0.113.9' }),
        await send('GET', '/_switchyard/environments/production/snapshot', {
          ...nginx,
          'x-forwarded-for': '::1',
        }),
      ];
      expect(refused.map((r) => r.status)).toEqual([403, 403, 403, 403, 403]);
      expect(refused[3]?.text).toContain('X-Real-IP');
      expect(refused[3]?.text).not.toContain('dep_4kq9wz');
      await platform.settle();
      expect(platform.dump()).toEqual(before);

      // A worker's LocalPlatformClient sends none of those headers: it still acts through the router.
      const worker = new LocalPlatformClient({ baseUrl: `http://127.0.0.1:${port}` });
      const ref = await worker.rollback({ environment: 'production', targetId: 'dep_3hd7xa' });
      let state = (await worker.operation(ref)).state;
      for (let i = 0; i < 50 && state !== 'succeeded' && state !== 'failed'; i++) {
        await clock.advance(100);
        state = (await worker.operation(ref)).state;
      }
      expect(state).toBe('succeeded');
      expect((await worker.snapshot('production')).environment.currentDeploymentId).toBe('dep_3hd7xa');
    } finally {
      await router.close();
    }
  });

  it('pushes a deployment through the operator API', async () => {
    const res = await fetch(`${base}/_switchyard/push`, {
      method: 'POST',
      headers: JSON_BODY,
      body: JSON.stringify({ environment: 'production', branch: 'main', message: 'hotfix', fail: true }),
    });
    expect(res.status).toBe(201);
    const dep = (await res.json()) as { id: string; status: string };
    expect(dep.status).toBe('building');
    await clock.advance(10);
    await platform.settle();
    expect((await client.getDeployment(dep.id))?.status).toBe('failed');
  });

  it('reports a platform that is down as a retryable error naming the request', async () => {
    const down = new LocalPlatformClient({ baseUrl: 'http://127.0.0.1:1', timeoutMs: 500 });
    const err = await down.listEnvironments().catch((e: unknown) => e);
    expect(err).toMatchObject({ retry: true });
    expect(String((err as Error).message)).toContain('GET http://127.0.0.1:1/_switchyard/environments');
  });
});
