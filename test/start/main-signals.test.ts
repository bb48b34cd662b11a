/**
 * `npm start` (handlers/main.ts) and `npm run worker` (handlers/worker.ts, jobs/worker-main.ts) as an
 * operator meets them: configuration errors (exit 2, never a password), signals during start-up and a
 * second Ctrl-C (never an orphan redis-server), and a start-up banner whose addresses answer.
 */

import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { redisUrl } from '../support/redis.js';
import { killStarted, redisServersFor, run, tempDir, waitFor } from './children/procs.js';

const servers: Server[] = [];
afterEach(async () => {
  killStarted();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** `npm start` itself (node --import tsx handlers/main.ts), on free ports and its own data directory. */
function start(env: Record<string, string> = {}, dir = tempDir()) {
  return run(['handlers/main.ts'], {
    PORT: '0',
    LOCAL_ROUTER_PORT: '0',
    SWITCHYARD_DATA_DIR: dir,
    LOG_LEVEL: 'info',
    ...env,
  });
}

/** A port some other process listens on. */
async function busyPort(): Promise<number> {
  const server = createServer();
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  return typeof address === 'object' && address !== null ? address.port : 0;
}

describe('npm start: configuration errors', () => {
  it('a malformed REDIS_URL is a configuration error naming REDIS_URL (exit 2), never printing the password', async () => {
    for (const url of ['redis://:s3cret-pw@127.0.0.1:abc', 'redis://:s3cret-pw%zz@127.0.0.1:6379']) {
      const sy = start({ REDIS_URL: url });
      expect(await sy.exited).toBe(2);
      expect(sy.out()).toMatch(/^switchyard: configuration error\n {2}Invalid environment: REDIS_URL: /);
      expect(sy.out()).not.toContain('s3cret-pw');
    }
  });

  it('a port already in use is a configuration error naming PORT or LOCAL_ROUTER_PORT, leaving no redis-server', async () => {
    const port = await busyPort();
    const dir = tempDir();
    const http = start({ PORT: String(port) }, dir);
    expect(await http.exited).toBe(2);
    expect(http.out()).toMatch(
      new RegExp(
        `switchyard: configuration error\\n {2}PORT: got ${port}, but 127\\.0\\.0\\.1:${port} is already in use`,
      ),
    );
    const router = start({ LOCAL_ROUTER_PORT: String(port) }, dir);
    expect(await router.exited).toBe(2);
    expect(router.out()).toMatch(new RegExp(`LOCAL_ROUTER_PORT: got ${port}, but .* is already in use`));
    // start-up's cleanups ran before the exit: its redis-server was stopped
    expect(redisServersFor(dir)).toEqual([]);
  });
});

describe('npm start and signals', () => {
  it('SIGTERM while still starting stops the redis-server it already spawned (no orphan)', async () => {
    const dir = tempDir();
    const sy = start({}, dir);
    await waitFor(sy, /started a private redis-server/);
    // a process manager (or npm forwarding it) signals the Switchyard process, not redis-server
    process.kill(sy.child.pid ?? 0, 'SIGTERM');
    expect(await sy.exited).toBe(0);
    expect(sy.out()).toMatch(/"msg":"stopped"/);
    expect(redisServersFor(dir)).toEqual([]);
  });

  it('a second Ctrl-C stops at once (exit 130), stopping the private redis-server, while the first waits for an active switch', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'cfg.yml'), 'local: { reactivationTime: 30s, buildTime: 1s }\n');
    const sy = start({ SWITCHYARD_CONFIG: join(dir, 'cfg.yml') }, dir);
    const [, base] = await waitFor(sy, /Console:\s+(http:\/\/127\.0\.0\.1:\d+)\//);
    const post = async (path: string, body: unknown) =>
      (await (
        await fetch(`${base}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
      ).json()) as Record<string, unknown>;
    const timeline = async () => await (await fetch(`${base}/console/api/timeline?user=alice`)).text();
    const cmd = await post('/console/api/command', { user: 'alice', text: '/rollback production' });
    const actionId = /"(sy1:confirm:plan_[a-z0-9]+)"/.exec(await timeline())?.[1];
    expect(actionId).toBeDefined();
    const click = await post('/console/api/action', { user: 'alice', actionId, messageId: cmd.messageId });
    expect(click.outcome).toBe('enqueued');
    // the switch is under way (30 s of reactivation): the console message says so
    await expect.poll(timeline, { timeout: 15_000, interval: 100 }).toMatch(/reactivating/i);

    const pgid = sy.child.pid ?? 0;
    process.kill(-pgid, 'SIGINT'); // Ctrl-C: the whole foreground process group
    await waitFor(sy, /"msg":"shutting down"/);
    // the first Ctrl-C did not reach the private redis-server: still serving the graceful shutdown
    expect(redisServersFor(dir)).toHaveLength(1);
    const second = Date.now();
    process.kill(-pgid, 'SIGINT');
    expect(await sy.exited).toBe(130);
    expect(Date.now() - second).toBeLessThan(10_000);
    expect(sy.out()).toMatch(/forced shutdown/);
    expect(sy.out()).not.toMatch(/exited unexpectedly/);
    expect(redisServersFor(dir)).toEqual([]);
  }, 60_000);
});

describe('the start-up banner', () => {
  it('with HOST=::1 prints a console URL and a local router URL that answer', async () => {
    const sy = start({ HOST: '::1' });
    const [, consoleUrl] = await waitFor(sy, /Console:\s+(\S+)/);
    const [, routerUrl] = await waitFor(sy, /Local router:\s+(\S+)/);
    const [, health] = await waitFor(sy, /Health:\s+(\S+)/);
    expect(consoleUrl).toMatch(/^http:\/\/\[::1\]:\d+\/$/);
    expect(routerUrl).toMatch(/^http:\/\/\[::1\]:\d+\/$/);
    expect((await fetch(consoleUrl ?? '')).status).toBe(200);
    expect((await fetch(health ?? '')).status).toBe(200);
    // What one Ctrl-C does to a switch under way (waits the worker's shutdown timeout, then hands it
    // back to the queue), and that a second stops at once.
    expect(sy.out()).toContain(
      '  Ctrl-C stops: a running switch gets 25 s to finish, else the next start resumes it. Twice: stop now.\n',
    );
    const routed = await fetch(new URL('/_switchyard/', routerUrl));
    expect(routed.status).toBeLessThan(500);
    process.kill(sy.child.pid ?? 0, 'SIGTERM');
    expect(await sy.exited).toBe(0);
  });
});

describe('npm run worker: configuration errors', () => {
  for (const entry of ['handlers/worker.ts', 'jobs/worker-main.ts']) {
    it(`${entry}: a bad flag or a missing REDIS_URL is a configuration error (exit 2)`, async () => {
      const flag = run([entry, '--verify-interval', '0'], { REDIS_URL: redisUrl() });
      expect(await flag.exited).toBe(2);
      expect(flag.out()).toMatch(
        /^switchyard worker: configuration error\n {2}Invalid worker flags: --verify-interval: got "0"/,
      );
      const unknown = run([entry, '--colour', 'blue'], { REDIS_URL: redisUrl() });
      expect(await unknown.exited).toBe(2);
      expect(unknown.out()).toMatch(/configuration error[\s\S]*Known flags: --queue/);
      const noRedis = run([entry], {});
      expect(await noRedis.exited).toBe(2);
      expect(noRedis.out()).toMatch(/configuration error\n {2}REDIS_URL: got nothing/);
    });
  }
});
