/**
 * Edge tests (found by mutation testing) of src/platform/local/router.ts (in-flight draining, lean and
 * warm pools, wake-ups): behaviour no other test pinned down. Real sockets on 127.0.0.1, synchronised
 * by upstream events.
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

describe('traffic router pools and wake-ups', () => {
  it('a lean upstream holds no connection at rest; resizing it warm opens warmSockets before resolving, and back lean lets a request in flight finish', async () => {
    const router = new TrafficRouter({ port: 0, warmSockets: 3, leanIdleTimeoutMs: 20 });
    routers.push(router);
    await router.startUpstream(A, { pool: 'lean' });
    router.applyRoutes(new Map([[HOST, A.id]]));
    const port = await router.listen();
    const up = router.upstream(A.id);
    if (up === undefined) throw new Error('upstream A not running');
    expect(router.upstreamStats(A.id)).toMatchObject({ pool: 'lean', poolSockets: 0, connections: 0 });

    // Warm before it is switched to: every warm connection is open when the resize resolves.
    await router.resizeUpstream(A.id, 'warm');
    expect(router.upstreamStats(A.id)).toMatchObject({ pool: 'warm', poolSockets: 3, connections: 3 });

    // A request in flight on the warm pool when it goes lean is answered (nothing dropped), and the
    // warm connections close once it is done.
    const release = up.hold();
    const arrived = once(up, 'request');
    const slow = get(port, HOST);
    await arrived;
    await router.resizeUpstream(A.id, 'lean');
    expect(router.upstreamStats(A.id)?.pool).toBe('lean');
    release();
    expect(await slow).toBe(200);
    // The lean pool opened the connection this one needed, and closes it once idle.
    expect(await get(port, HOST)).toBe(200);
    for (let i = 0; i < 100_000 && (router.upstreamStats(A.id)?.poolSockets ?? 0) > 0; i++) {
      await new Promise((r) => setImmediate(r));
    }
    expect(router.upstreamStats(A.id)).toMatchObject({ pool: 'lean', poolSockets: 0, connections: 4 });
    expect(router.stats()).toMatchObject({ badGateway: 0, unavailable: 0, inFlight: 0 });
  });

  it('forgets the requests held for a deployment that did not wake once they are answered (failed, stopped or dropped deployments never drain)', async () => {
    let answer: (woke: boolean) => void = () => undefined;
    let asked: () => void = () => undefined;
    const asking = new Promise<void>((resolve) => {
      asked = resolve;
    });
    const router = new TrafficRouter({
      port: 0,
      wake: () => {
        asked();
        return new Promise<boolean>((resolve) => {
          answer = resolve;
        });
      },
    });
    routers.push(router);
    router.applyRoutes(new Map([[HOST, A.id]])); // A has no running upstream (a failed build)
    const port = await router.listen();
    const status = get(port, HOST);
    await asking;
    expect(router.wakingDeployments()).toEqual([A.id]);
    answer(false);
    expect(await status).toBe(503);
    expect(router.wakingDeployments()).toEqual([]);
  });
});
