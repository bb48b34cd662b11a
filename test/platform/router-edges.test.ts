/**
 * Edge tests (found by mutation testing) of src/platform/local/router.ts (in-flight draining): behaviour no other test
 * pinned down. Real sockets on 127.0.0.1, synchronised by upstream events.
 */
import { once } from 'node:events';
import { type IncomingMessage, request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { type DeploymentInfo, probe, TrafficRouter } from '../../src/platform/local/router.js';

const A: DeploymentInfo = {
  id: 'dpl_a',
  environment: 'production',
  branch: 'main',
  commit: { sha: 'aaaa111', message: 'first', author: 'ana' },
};
const HOST = 'app.example.com';

const routers: TrafficRouter[] = [];
afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

/** A GET through the router; resolves with its answer once the whole answer arrived. */
function answerOf(port: number, host: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A GET through the router; resolves with its status once the whole answer arrived. */
async function get(port: number, host: string): Promise<number> {
  return (await answerOf(port, host)).statusCode ?? 0;
}

describe('traffic router draining', () => {
  it('sends no new request, not even a verification probe, to a deployment that is draining', async () => {
    const router = new TrafficRouter({ port: 0 });
    routers.push(router);
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();
    const upA = router.upstream(A.id);
    if (upA === undefined) throw new Error('upstream A not running');
    const release = upA.hold();
    const arrived = once(upA, 'request');
    const slow = get(port, HOST);
    await arrived;

    // A is taken out of service while a request is still in flight on it (the domain not moved yet).
    const stopping = router.stopUpstream(A.id);
    const answer = await probe(port, HOST, { timeoutMs: 5_000 });

    expect(answer.status).toBe(503);
    release();
    expect(await slow).toBe(200);
    await stopping;
  });

  it('starts a deployment again when asked while it still drains: it runs once the drain is over', async () => {
    const router = new TrafficRouter({ port: 0 });
    routers.push(router);
    await router.startUpstream(A);
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();
    const upA = router.upstream(A.id);
    if (upA === undefined) throw new Error('upstream A not running');
    const release = upA.hold();
    const arrived = once(upA, 'request');
    const slow = get(port, HOST);
    await arrived;
    const stopping = router.stopUpstream(A.id);

    // Reactivated (a rollback back to it) before its drain ended.
    const started = router.startUpstream(A);
    release();
    await Promise.all([slow, stopping, started]);

    expect(router.runningUpstreams()).toEqual([A.id]);
    expect(await get(port, HOST)).toBe(200);
  });

  it('a request held while its deployment wakes is served by it even when a stop comes before it is proxied', async () => {
    // Found by the seeded random test (router-random.test.ts): the domain moved away during the wake-up
    // and the old deployment was drained; the held request had picked it, yet was answered 503.
    let woke: () => void = () => undefined;
    const waking = new Promise<void>((resolve) => {
      woke = resolve;
    });
    const router: TrafficRouter = new TrafficRouter({
      port: 0,
      wake: async () => {
        woke();
        await router.startUpstream(A);
        return true;
      },
    });
    routers.push(router);
    router.applyRoutes(new Map([[HOST, A.id]])); // A is asleep
    const port = await router.listen();

    const answer = answerOf(port, HOST);
    await waking;
    const stopped = router.stopUpstream(A.id); // the switch away from A drains it while it still starts

    const res = await answer;
    expect([res.statusCode, res.headers['x-deployment-id']]).toEqual([200, A.id]);
    await stopped;
    expect(router.runningUpstreams()).toEqual([]);
    expect(router.stats()).toMatchObject({ inFlight: 0, unavailable: 0, badGateway: 0 });
  });

  it('a request held while its deployment wakes, past a drain that gave up waiting for it, is answered 503, not sent to the closed pool', async () => {
    // router.ts: the drain claimed the held request and timed out (drainTimeoutMs), destroying the pool;
    // the wake-up then resolved and the request was proxied to it: 502.
    let woke: () => void = () => undefined;
    const waking = new Promise<void>((resolve) => {
      woke = resolve;
    });
    let finish: () => void = () => undefined;
    const finishing = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const router: TrafficRouter = new TrafficRouter({
      port: 0,
      drainTimeoutMs: 50,
      wake: async () => {
        await router.startUpstream(A);
        woke();
        await finishing; // a slow wake-up: it resolves only after the drain gave up
        return true;
      },
    });
    routers.push(router);
    router.applyRoutes(new Map([[HOST, A.id]])); // A is asleep
    const port = await router.listen();
    const answer = answerOf(port, HOST);
    await waking;
    await router.stopUpstream(A.id); // drains, waits for the held request, gives up after 50 ms
    finish();

    const res = await answer;
    // The router's own 503 for a deployment without a running upstream (x-deployment-id: none).
    expect([res.statusCode, res.headers['x-deployment-id']]).toEqual([503, 'none']);
    expect(router.stats()).toMatchObject({ inFlight: 0, badGateway: 0, unavailable: 1 });
  });
});
