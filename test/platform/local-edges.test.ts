/**
 * Edge tests (found by mutation testing) of src/platform/local/platform.ts (the seed's switch, standby and idle rules):
 * behaviour no other test pinned down. The demo platform on a ManualClock.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { RefusalError } from '../../src/errors.js';
import { LocalPlatformClient } from '../../src/platform/local/client.js';
import { createLocalApi } from '../../src/platform/local/http-api.js';
import { LocalPlatform, OPERATIONS_KEPT } from '../../src/platform/local/platform.js';

let platform: LocalPlatform | undefined;

afterEach(async () => {
  await platform?.close();
  platform = undefined;
});

async function open(clock = new ManualClock()) {
  platform = await LocalPlatform.open({ clock, buildTimeMs: 3000, reactivationTimeMs: 1500 });
  return { p: platform, clock };
}

/** Yields until code under test parks one more sleep on the clock. */
async function parked(clock: ManualClock, before: number): Promise<void> {
  for (let i = 0; i < 100_000 && clock.pending === before; i++) await new Promise((r) => setImmediate(r));
  expect(clock.pending).toBe(before + 1);
}

describe('local platform', () => {
  it('a wake-up of a preview deployment stopped while it slept answers false: it was not woken', async () => {
    const { p, clock } = await open();
    expect((await p.getDeployment('dep_p1rw4n'))?.status).toBe('standby');
    const sleepers = clock.pending;
    const woken = p.wake('dep_p1rw4n');
    await parked(clock, sleepers);
    await p.stop('dep_p1rw4n');
    await clock.advance(1500);

    expect(await woken).toBe(false);
    expect((await p.getDeployment('dep_p1rw4n'))?.status).toBe('stopped');
  });

  it('a preview deployment woken from standby counts as just used: the next maintenance leaves it running', async () => {
    const { p, clock } = await open();
    expect((await p.getDeployment('dep_p1rw4n'))?.status).toBe('standby');
    const sleepers = clock.pending;
    const woken = p.wake('dep_p1rw4n');
    await parked(clock, sleepers);
    await clock.advance(1500);
    expect(await woken).toBe(true);

    expect(p.maintain()).toEqual([]);
    expect((await p.getDeployment('dep_p1rw4n'))?.status).toBe('ready');
  });

  it('refuses to stop the deployment serving an environment, and changes nothing', async () => {
    const { p } = await open();
    const current = (await p.snapshot('production')).environment.currentDeploymentId ?? '';

    const stopping = p.stop(current);

    await expect(stopping).rejects.toBeInstanceOf(RefusalError);
    await expect(stopping).rejects.toMatchObject({ code: 'target_is_current' });
    expect((await p.getDeployment(current))?.status).toBe('ready');
    expect((await p.snapshot('production')).environment.currentDeploymentId).toBe(current);
  });

  it('a failed build stopped by the operator still reads failed', async () => {
    const { p, clock } = await open();
    const broken = await p.push({ environment: 'production', fail: true });
    await clock.advance(3000);
    await p.settle();
    expect((await p.getDeployment(broken.id))?.status).toBe('failed');

    await p.stop(broken.id);

    expect((await p.getDeployment(broken.id))?.status).toBe('failed');
  });

  it(`never drops an operation still under way to keep its last ${OPERATIONS_KEPT}, however many others end meanwhile`, async () => {
    const { p, clock } = await open();
    const { currentDeploymentId: current } = (await p.snapshot('production')).environment;
    // First wake production's previous deployment: both are running from then on.
    const first = await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' });
    while ((await p.operation(first)).state !== 'succeeded') await clock.advance(500);
    // A rollback of preview to its standby deployment: reactivating until the clock moves again.
    const slow = await p.rollback({ environment: 'preview', targetId: 'dep_p1rw4n' });
    expect((await p.operation(slow)).state).toBe('reactivating');
    // More than OPERATIONS_KEPT switches of production end meanwhile (back and forth).
    for (let i = 0; i < OPERATIONS_KEPT + 2; i++) {
      const ref =
        i % 2 === 0
          ? await p.promote({ environment: 'production', targetId: current ?? '' })
          : await p.rollback({ environment: 'production', targetId: 'dep_3hd7xa' });
      while ((await p.operation(ref)).state !== 'succeeded') await new Promise((r) => setImmediate(r));
    }

    expect((await p.operation(slow)).state).toBe('reactivating');
  });

  it('records the job id a switch was requested with on its live-history entry, kept across a restart and served by the HTTP API', async () => {
    // jobs/switch-processor.ts ownEntry knows a job's own switch by this id: display names are not
    // unique. Sent over the wire (a separate worker process talks to the platform through the client),
    // written to the state file and read back after a restart, it must reach the job each way.
    const dir = mkdtempSync(join(tmpdir(), 'sy-local-jobid-'));
    const stateFile = join(dir, 'state.json');
    const clock = new ManualClock();
    const servers: Server[] = [];
    const serve = async (p: LocalPlatform): Promise<LocalPlatformClient> => {
      const server = createServer(createLocalApi(p));
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      return new LocalPlatformClient({
        baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      });
    };
    try {
      const first = await LocalPlatform.open({ clock, stateFile, reactivationTimeMs: 10 });
      const client = await serve(first);
      const ref = await client.rollback({
        environment: 'production',
        targetId: 'dep_3hd7xa',
        requestedBy: 'Alice',
        jobId: 'sw_job_a',
      });
      while ((await client.operation(ref)).state !== 'succeeded') await clock.advance(500);
      const entry = { deploymentId: 'dep_3hd7xa', via: 'rollback', by: 'Alice', jobId: 'sw_job_a' };
      expect((await first.snapshot('production')).liveHistory.at(-1)).toMatchObject(entry);
      expect((await client.snapshot('production')).liveHistory.at(-1)).toMatchObject(entry);
      await first.close();

      platform = await LocalPlatform.open({ clock, stateFile });
      const again = await serve(platform);

      expect((await platform.snapshot('production')).liveHistory.at(-1)).toMatchObject(entry);
      expect((await again.snapshot('production')).liveHistory.at(-1)).toMatchObject(entry);
      // An entry recorded without one (a deploy, an older state file) has no job id, not an empty one.
      expect((await again.snapshot('production')).liveHistory.at(0)).not.toHaveProperty('jobId');
    } finally {
      for (const server of servers) {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
