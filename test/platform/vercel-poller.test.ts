/**
 * Deployment events of the Vercel adapter by polling (the snapshot-diffing poller shared with the Unkey
 * adapter), against the fake Vercel server and a real Redis: a baseline first, then builds, readiness
 * and traffic moves by rollback and promote, emitted once across two replicas.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import type { PlatformEvent } from '../../src/platform/port.js';
import { VercelPlatform } from '../../src/platform/vercel/adapter.js';
import { createRedis, type RedisClient } from '../../src/redis.js';
import { VercelFakeServer } from '../fakes/vercel-server.js';
import { redisUrl, uniqueName } from '../support/redis.js';

const TOKEN = 'vcp_pollerTestToken0123456789abcd';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

function strip(events: PlatformEvent[]): unknown[] {
  return events.map(({ at: _at, ...rest }) => rest);
}

describe('VercelPlatform events', () => {
  it('emits deploy, rollback and promote events once across replicas', async () => {
    const clock = new ManualClock();
    const server = await VercelFakeServer.start({ clock, tokens: { [TOKEN]: ['personal'] } });
    closers.push(() => server.close());
    const projectId = server.addProject({ name: 'acme-web' });
    const d1 = server.deploy({ project: projectId });
    await clock.advance(1_000);
    const d2 = server.deploy({ project: projectId });
    const prefix = uniqueName('vercel-poll');
    const replica = () => {
      const redis: RedisClient = createRedis(redisUrl());
      closers.push(() => redis.quit());
      const p = new VercelPlatform({
        project: 'acme-web',
        preview: false,
        client: { baseUrl: server.url, token: TOKEN },
        clock,
        events: { redis, keyPrefix: prefix },
      });
      closers.push(() => p.close());
      const poller = p.eventPoller;
      if (!poller) throw new Error('events not configured');
      return { p, poll: () => poller.pollOnce() };
    };
    const a = replica();
    const b = replica();
    expect(typeof a.p.subscribe).toBe('function');
    expect(await a.poll()).toEqual([]);

    await clock.advance(1_000);
    const d3 = server.deploy({ project: projectId, readyState: 'BUILDING' });
    expect(strip(await a.poll())).toEqual([
      { type: 'deployment.building', environment: 'production', deploymentId: d3 },
    ]);
    expect(await b.poll()).toEqual([]);

    server.setReadyState(d3, 'READY');
    expect(strip(await b.poll())).toEqual([
      { type: 'deployment.ready', environment: 'production', deploymentId: d3 },
      { type: 'traffic.moved', environment: 'production', from: d2, to: d3, via: 'deploy' },
    ]);

    await a.p.rollback({ environment: 'production', targetId: d1 });
    server.finishAliasJob(projectId);
    expect(strip(await a.poll())).toEqual([
      { type: 'traffic.moved', environment: 'production', from: d3, to: d1, via: 'rollback' },
    ]);
    await a.p.promote({ environment: 'production', targetId: d3 });
    server.finishAliasJob(projectId);
    expect(strip(await b.poll())).toEqual([
      { type: 'traffic.moved', environment: 'production', from: d1, to: d3, via: 'promote' },
    ]);
    expect(await a.poll()).toEqual([]);
  });
});
