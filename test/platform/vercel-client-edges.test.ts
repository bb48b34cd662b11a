/**
 * Edge cases of the Vercel HTTP client (src/platform/vercel/client.ts) against the fake Vercel
 * server: `X-RateLimit-Reset` is the wait of a 429 only.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VercelClient } from '../../src/platform/vercel/client.js';
import { ProjectSchema } from '../../src/platform/vercel/schemas.js';
import { SleepRecordingClock } from '../fakes/unkey-server.js';
import { VercelFakeServer } from '../fakes/vercel-server.js';

const TOKEN = 'vcp_mutantClientToken0123456789abcd';
const TIMEOUT = 5_000;

let clock: SleepRecordingClock;
let server: VercelFakeServer;
let client: VercelClient;

beforeEach(async () => {
  clock = new SleepRecordingClock();
  server = await VercelFakeServer.start({ clock, tokens: { [TOKEN]: ['personal'] } });
  server.addProject({ name: 'acme-web' });
  client = new VercelClient({
    baseUrl: server.url,
    token: TOKEN,
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

describe('VercelClient', () => {
  it('backs off exponentially on a 5xx even when it carries X-RateLimit-Reset (Vercel sends it on every answer)', async () => {
    const reset = Math.ceil((clock.now() + 8_000) / 1000);
    server.fault({ kind: 'status', status: 503, headers: { 'x-ratelimit-reset': String(reset) } }, 2);
    const project = await clock.drive(
      client.call({ method: 'GET', path: '/v9/projects/acme-web', idempotent: true }, ProjectSchema),
      TIMEOUT,
    );
    expect(project.name).toBe('acme-web');
    expect(server.requests).toHaveLength(3);
    // 200 ms then 400 ms, scaled by the jitter 0.75: not the 8 s until the rate-limit window resets.
    expect(clock.sleeps.filter((ms) => ms !== TIMEOUT)).toEqual([150, 300]);
  });
});
