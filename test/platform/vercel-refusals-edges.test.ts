/**
 * Edge cases of Vercel's refusals (src/platform/vercel/refusals.ts) through VercelPlatform against
 * the fake Vercel server: a promote Vercel refuses with a 400 is a precondition, like a rollback.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { RefusalError } from '../../src/errors.js';
import { VercelPlatform } from '../../src/platform/vercel/adapter.js';
import { VercelFakeServer } from '../fakes/vercel-server.js';

const TOKEN = 'vcp_mutantRefusalToken0123456789ab';

let clock: ManualClock;
let server: VercelFakeServer;
let platform: VercelPlatform;
let projectId: string;
let d1: string;
let d2: string;

beforeEach(async () => {
  clock = new ManualClock();
  server = await VercelFakeServer.start({ clock, tokens: { [TOKEN]: ['personal'] } });
  projectId = server.addProject({ name: 'acme-web', domains: [{ name: 'shop.acme.com' }] });
  d1 = server.deploy({ project: projectId, message: 'First' });
  await clock.advance(60_000);
  d2 = server.deploy({ project: projectId, message: 'Second' });
  await clock.advance(60_000);
  platform = new VercelPlatform({
    project: 'acme-web',
    client: { baseUrl: server.url, token: TOKEN, timeoutMs: 5_000, maxRetries: 0 },
    clock,
  });
});

afterEach(async () => {
  await platform.close();
  await server.close();
});

describe('Vercel refusals', () => {
  it("turns Vercel's 400 to a promote into platform_precondition carrying Vercel's code and message", async () => {
    server.setRefusal({ code: 'promote_not_allowed', message: 'This plan cannot promote this deployment.' });
    const e = await platform.promote({ environment: 'production', targetId: d1 }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(RefusalError);
    const r = e as RefusalError;
    expect(r.code).toBe('platform_precondition');
    expect(r.retry).toBe(false);
    expect(r.message).toContain('Vercel refused to promote');
    expect(r.message).toContain('promote_not_allowed');
    expect(r.message).toContain('This plan cannot promote this deployment.');
    expect(server.productionOf(projectId)).toBe(d2);
  });
});
