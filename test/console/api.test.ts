/**
 * The console's JSON API on the real app: bad input is refused naming the field and changes nothing,
 * a fired alert posts a rollback suggestion (with Dismiss) into the channel, a simulated push builds
 * and, outside a rollback, takes the domains; the live panel probes as many domains per refresh however
 * many pushes came before.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConsoleEntry } from '../../handlers/console/surface.js';
import { runWorker } from '../../jobs/worker-main.js';
import { silentLogger } from '../../src/log.js';
import { LocalPlatformClient } from '../../src/platform/local/client.js';
import type { LocalPlatform } from '../../src/platform/local/platform.js';
import { spawnRedis } from '../../src/redis-server.js';
import { ObservedClock } from '../support/observed-clock.js';
import { startTestSwitchyard, type TestSwitchyard } from '../support/switchyard.js';

let app: TestSwitchyard;

beforeAll(async () => {
  app = await startTestSwitchyard();
});

afterAll(async () => {
  await app?.close();
});

async function post(path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${app.baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function timeline(user = 'alice'): Promise<ConsoleEntry[]> {
  const res = await fetch(`${app.baseUrl}/console/api/timeline?user=${user}`);
  return ((await res.json()) as { entries: ConsoleEntry[] }).entries;
}

describe('console API', () => {
  it('refuses bad bodies naming the field, and posts nothing', async () => {
    const before = (await timeline()).length;
    const noUser = await post('/console/api/command', { text: '/rollback production' });
    expect(noUser.status).toBe(400);
    expect(String(noUser.json.message)).toContain('user');
    const notJson = await post('/console/api/action', 'not json');
    expect(notJson.status).toBe(400);
    const badAction = await post('/console/api/action', {
      user: 'alice',
      actionId: 'sy1:confirm:nope',
      messageId: 'm1',
    });
    expect(badAction.status).toBe(200);
    expect(badAction.json.outcome).toBe('invalid');
    const after = await timeline();
    // only the ephemeral explanation of the malformed action id was added, visible to alice alone
    expect(after.length).toBe(before + 1);
    expect(after.at(-1)?.visibleTo).toBe('alice');
    expect((await timeline('bob')).length).toBe(before);
  });

  it("a command answered to the sender alone (a refusal) is the sender's alone too; a plan's is everyone's", async () => {
    const before = (await timeline('bob')).length;
    const refused = await post('/console/api/command', { user: 'alice', text: '/rollback staging' });
    expect(refused.status).toBe(200);
    const mine = await timeline('alice');
    expect(mine.at(-2)).toMatchObject({ text: '/rollback staging', visibleTo: 'alice' });
    expect(mine.at(-1)?.visibleTo).toBe('alice');
    expect((await timeline('bob')).length).toBe(before);
    // A plan is posted for everyone, and so is the line that asked for it.
    const plan = await post('/console/api/command', { user: 'alice', text: '/deployments production' });
    expect(plan.status).toBe(200);
    const seen = await timeline('bob');
    expect(seen.some((e) => e.text === '/deployments production' && e.visibleTo === undefined)).toBe(true);
  });

  it('answers bad input with what works: every command for an unknown one (and the near miss), /help, a bare "/"', async () => {
    const reply = async (text: string) => {
      expect((await post('/console/api/command', { user: 'erin', text })).status).toBe(200);
      const mine = await timeline('erin');
      // The typed line and its answer, both erin's alone.
      expect(mine.at(-2)).toMatchObject({ text, visibleTo: 'erin' });
      expect(mine.at(-1)?.visibleTo).toBe('erin');
      return mine.at(-1)?.message;
    };
    const usages = [
      '/rollback <environment> [deployment-id]',
      '/promote <deployment-id | environment>',
      '/deployments <environment>',
    ];
    const said = (m: ConsoleEntry['message']) => JSON.stringify(m);
    const typo = await reply('/rolback production');
    expect(typo).toMatchObject({ kind: 'usage', title: 'Unknown command' });
    expect(said(typo)).toContain('\\"/rolback\\" is not a Switchyard command. Did you mean /rollback?');
    for (const line of usages) expect(said(typo)).toContain(line);
    expect(said(typo)).toContain('Valid environments: ');
    const help = await reply('/help');
    expect(help).toMatchObject({ kind: 'usage', title: 'Switchyard commands', tone: 'info' });
    for (const line of usages) expect(said(help)).toContain(line);
    expect(said(help)).not.toContain('Did you mean');
    // Nothing near: no guess.
    expect(said(await reply('/status production'))).not.toContain('Did you mean');
    const bare = await reply('/');
    expect(bare).toMatchObject({ kind: 'usage', title: 'Unknown command' });
    expect(said(bare)).toContain('A command goes right after the \\"/\\".');
    for (const line of usages) expect(said(bare)).toContain(line);
  });

  it('a command typed without its "/" stays chat, with a hint for its sender; other chat gets none', async () => {
    const before = (await timeline('bob')).length;
    expect((await post('/console/api/command', { user: 'erin', text: 'rollback production' })).status).toBe(
      200,
    );
    const mine = await timeline('erin');
    // Everyone sees the line (it is chat); only erin sees how to run it.
    expect(mine.at(-2)).toMatchObject({
      text: 'rollback production',
      author: { kind: 'user', name: 'erin' },
    });
    expect(mine.at(-2)?.visibleTo).toBeUndefined();
    expect(mine.at(-1)).toMatchObject({ visibleTo: 'erin', message: { title: 'Not run' } });
    expect(JSON.stringify(mine.at(-1)?.message)).toContain('Commands start with /: /rollback production');
    expect((await timeline('bob')).length).toBe(before + 1);
    // A sentence that begins with a command name is chat, and so is anything else.
    for (const text of ['rollback went fine, watching the 5xx graph', 'looking at it'])
      expect((await post('/console/api/command', { user: 'erin', text })).status).toBe(200);
    expect((await timeline('erin')).slice(-2).map((e) => e.text)).toEqual([
      'rollback went fine, watching the 5xx graph',
      'looking at it',
    ]);
  });

  it('a mistyped environment is refused with the one it looks like, for /rollback and /promote', async () => {
    for (const text of ['/rollback prodution', '/promote prodution']) {
      expect((await post('/console/api/command', { user: 'erin', text })).status).toBe(200);
      const answer = (await timeline('erin')).at(-1)?.message;
      expect({ text, kind: answer?.kind }).toEqual({ text, kind: 'refusal' });
      expect(JSON.stringify(answer)).toContain('Did you mean production?');
    }
  });

  it('fires an alert that posts a rollback suggestion with Dismiss', async () => {
    const fired = await post('/console/api/alert', {
      environment: 'production',
      title: 'Checkout 5xx above 5%',
    });
    expect(fired.status).toBe(202);
    expect(fired.json.outcome).toBe('suggested');
    const suggestion = (await timeline()).find(
      (e) => e.message?.kind === 'confirmation' && e.message.title.includes('dep_3hd7xa'),
    );
    expect(suggestion).toBeDefined();
    const labels = suggestion?.message?.buttons.map((b) => b.label) ?? [];
    expect(labels).toContain('Dismiss');
    expect(JSON.stringify(suggestion?.message)).toContain('Checkout 5xx above 5%');
    // the same incident again: storm control, no second suggestion
    const again = await post('/console/api/alert', {
      environment: 'production',
      title: 'Checkout 5xx above 5%',
    });
    expect(again.json.outcome).toBe('deduplicated');
    // and says in words what that means (the console shows it to whoever fired it)
    // named by what it would do, as its message is titled (a plan id appears on no message)
    expect(again.json.detail).toBe(
      'This incident already has a suggestion, to roll back production to dep_3hd7xa: see its message.',
    );
  });

  it('simulates a push that builds and then serves the environment', async () => {
    const pushed = await post('/console/api/push', {
      environment: 'preview',
      branch: 'feature-x',
      user: 'alice',
    });
    expect(pushed.status).toBe(201);
    const id = String(pushed.json.deploymentId);
    // the console's user is the commit's author
    const built = (await app.platform.snapshot('preview')).deployments.find((d) => d.id === id);
    expect(built?.commit.author).toBe('alice');
    for (let i = 0; i < 200; i++) {
      const snap = await app.platform.snapshot('preview');
      if (snap.environment.currentDeploymentId === id) break;
      await new Promise<void>((r) => app.platform.subscribe?.(() => r()) ?? setImmediate(r));
    }
    expect((await app.platform.snapshot('preview')).environment.currentDeploymentId).toBe(id);
    const bad = await post('/console/api/push', { environment: 'staging' });
    expect(bad.status).toBe(400);
    expect(String(bad.json.message)).toContain('staging');
  });
});

describe('console metrics', () => {
  it('counts commands with the outcome values Slack and Discord use: planned, listed, usage, refused', async () => {
    const counts = async () => {
      const text = await (await fetch(`${app.baseUrl}/metrics`)).text();
      const out = new Map<string, number>();
      for (const m of text.matchAll(
        /^switchyard_commands_total\{surface="console",command="(\w+)",outcome="(\w+)"\} (\d+)$/gm,
      ))
        out.set(`${m[1]}:${m[2]}`, Number(m[3]));
      return out;
    };
    const before = await counts();
    for (const text of ['/rollback production', '/deployments production', '/rollback', '/rollback staging'])
      expect((await post('/console/api/command', { user: 'dana', text })).status).toBe(200);
    const after = await counts();
    const grown = [...after]
      .filter(([k, v]) => v > (before.get(k) ?? 0))
      .map(([k, v]) => `${k}:${v - (before.get(k) ?? 0)}`);
    expect(grown.sort()).toEqual([
      'deployments:listed:1',
      'rollback:planned:1',
      'rollback:refused:1',
      'rollback:usage:1',
    ]);
  });

  it('typed junk does not grow /metrics: unknown commands and actions share one label value', async () => {
    for (let i = 0; i < 10; i++) {
      await post('/console/api/command', { user: 'mallory', text: `/junk${i} x` });
      await post('/console/api/action', { user: 'mallory', actionId: `sy1:kind${i}:x`, messageId: 'm_none' });
    }
    const text = await (await fetch(`${app.baseUrl}/metrics`)).text();
    const series = (name: string) =>
      text.split('\n').filter((l) => l.startsWith(`${name}{`) && l.includes('surface="console"'));
    expect(series('switchyard_commands_total').filter((l) => l.includes('junk'))).toEqual([]);
    expect(series('switchyard_commands_total').filter((l) => l.includes('command="other"')).length).toBe(1);
    expect(series('switchyard_clicks_total').filter((l) => l.includes('kind'))).toEqual([]);
    expect(series('switchyard_clicks_total').filter((l) => l.includes('action="invalid"')).length).toBe(1);
  });
});

describe('a replica without a worker (SWITCHYARD_WORKER=off): /readyz and /metrics on the switch queue', () => {
  // Runs on a Redis Cluster too (vitest project `cluster`): BullMQ counts the workers in each master's
  // client list there, and the queue's counts come from its one hash slot.
  it('fails readiness while no worker is connected to its queue, and shows the switch waiting', async () => {
    const sy = await startTestSwitchyard({ env: { SWITCHYARD_WORKER: 'off' } });
    const closers: (() => Promise<void>)[] = [() => sy.close()];
    try {
      const planned = await fetch(`${sy.baseUrl}/console/api/command`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user: 'alice', text: '/rollback production' }),
      });
      const messageId = String(((await planned.json()) as { messageId: string }).messageId);
      const timelineOf = async () =>
        (
          (await (await fetch(`${sy.baseUrl}/console/api/timeline?user=alice`)).json()) as {
            entries: ConsoleEntry[];
          }
        ).entries;
      const confirm = (await timelineOf())
        .find((e) => e.id === messageId)
        ?.message?.buttons.find((b) => b.actionId.startsWith('sy1:confirm:'));
      if (!confirm) throw new Error('no confirm button on the rollback plan');
      const clicked = await fetch(`${sy.baseUrl}/console/api/action`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user: 'alice', actionId: confirm.actionId, messageId }),
      });
      expect(((await clicked.json()) as { outcome: string }).outcome).toBe('enqueued');

      const down = await fetch(`${sy.baseUrl}/readyz`);
      expect(down.status).toBe(200);
      const body = (await down.json()) as { warnings: string[]; workersConnected: unknown };
      expect(body.workersConnected).toBe(0);
      expect(body.warnings).toEqual([
        expect.stringMatching(
          new RegExp(
            `^worker: no switch worker is connected to queue ${sy.queueName} .*or set SWITCHYARD_WORKER=on$`,
          ),
        ),
      ]);
      const metrics = await (await fetch(`${sy.baseUrl}/metrics`)).text();
      expect(metrics).toContain('switchyard_switches_waiting{state="waiting"} 1');

      // A worker elsewhere connects to the same queue (what `npm run worker` starts).
      if (sy.routerPort === undefined) throw new Error('the test app runs the local platform');
      const worker = await runWorker({
        argv: ['--queue', sy.queueName, '--prefix', sy.namespace, '--verify-interval', '20'],
        config: sy.config,
        logger: silentLogger,
        platform: new LocalPlatformClient({ baseUrl: `http://127.0.0.1:${sy.routerPort}` }),
      });
      closers.push(() => worker.stop());
      const up = await fetch(`${sy.baseUrl}/readyz`);
      expect({ status: up.status, body: await up.json() }).toMatchObject({
        status: 200,
        body: { ok: true, workersConnected: 1 },
      });
      expect(
        ((await (await fetch(`${sy.baseUrl}/readyz`)).json()) as { warnings?: unknown }).warnings,
      ).toBeUndefined();
    } finally {
      for (const close of closers.reverse()) await close();
    }
  });
});

describe('console live panel', () => {
  let sy: TestSwitchyard;
  beforeAll(async () => {
    sy = await startTestSwitchyard({ file: { local: { buildTime: '0ms', reactivationTime: '0ms' } } });
  });
  afterAll(async () => {
    await sy?.close();
  });

  interface PanelEnvironment {
    slug: string;
    current: string | null;
    deployments: { id: string; branch: string }[];
    domains: { hostname: string; routedTo: string | null; servedBy: string | null; status: number | null }[];
    otherDeploymentDomains: number;
    otherBranchDomains: number;
  }
  const preview = async (): Promise<PanelEnvironment> => {
    const res = await fetch(`${sy.baseUrl}/console/api/platform`);
    const body = (await res.json()) as { environments: PanelEnvironment[] };
    const env = body.environments.find((e) => e.slug === 'preview');
    if (env === undefined) throw new Error('no preview environment on the panel');
    return env;
  };

  /**
   * What the panel of `env` shows: every live and environment domain, and the branch and own domains
   * of the deployments it lists, plus the domain of the live deployment's branch.
   */
  async function expectedDomains(env: PanelEnvironment): Promise<string[]> {
    const snap = await sy.platform.snapshot(env.slug);
    const listed = new Set(env.deployments.map((d) => d.id));
    const liveBranch = env.deployments.find((d) => d.id === env.current)?.branch;
    return snap.domains
      .filter(
        (d) =>
          d.stickiness === 'live' ||
          d.stickiness === 'environment' ||
          listed.has(d.deploymentId ?? '') ||
          (d.stickiness === 'branch' && d.branch === liveBranch),
      )
      .map((d) => d.hostname)
      .sort();
  }

  /** Pushes `n` deployments to preview through the console, each ready before the next. */
  async function push(n: number, branch: (i: number) => string = () => 'main'): Promise<void> {
    const ready = new Set<string>();
    let onReady = () => {};
    const off = sy.platform.subscribe?.((e) => {
      if (e.type !== 'deployment.ready') return;
      ready.add(e.deploymentId);
      onReady();
    });
    try {
      for (let i = 0; i < n; i++) {
        const res = await fetch(`${sy.baseUrl}/console/api/push`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ environment: 'preview', branch: branch(i), user: 'alice' }),
        });
        expect(res.status).toBe(201);
        const { deploymentId } = (await res.json()) as { deploymentId: string };
        while (!ready.has(deploymentId)) {
          await new Promise<void>((resolve) => {
            onReady = resolve;
          });
        }
      }
    } finally {
      off?.();
    }
  }

  it('probes the same number of domains per refresh however many pushes: the shared ones and the listed deployments’ own', async () => {
    await push(15);
    const before = await preview();
    await push(15);
    const after = await preview();
    expect(after.domains.length).toBe(before.domains.length);
    expect(after.domains.filter((d) => d.status !== null).length).toBe(
      before.domains.filter((d) => d.status !== null).length,
    );
    // Every live and environment domain, and the own (and branch) domain of each deployment it lists;
    // the other per-deployment domains are counted, not shown.
    const routes = await sy.platform.routing('preview');
    const expected = await expectedDomains(after);
    expect(after.domains.map((d) => d.hostname).sort()).toEqual(expected);
    expect(after.otherDeploymentDomains + after.otherBranchDomains).toBe(routes.length - expected.length);
    expect(after.otherDeploymentDomains).toBe(before.otherDeploymentDomains + 15);
    // Each shown domain is probed, and answers from the deployment it routes to.
    for (const d of after.domains) expect({ ...d, servedBy: d.routedTo, status: 200 }).toEqual(d);
  });

  it('probes the same number of domains per refresh however many branches are pushed: the branch domains of the listed deployments and of the live branch', async () => {
    let n = 0;
    const next = () => `feature-${++n}`;
    await push(15, next);
    const before = await preview();
    await push(15, next);
    const after = await preview();
    expect(after.domains.length).toBe(before.domains.length);
    const expected = await expectedDomains(after);
    expect(after.domains.map((d) => d.hostname).sort()).toEqual(expected);
    // The new branches' domains beyond the listed deployments are counted, neither shown nor probed
    // (feature-search's went meanwhile: its deployment left the live history, and its branch is no
    // longer among the newest pushes).
    const routes = await sy.platform.routing('preview');
    expect(after.otherDeploymentDomains + after.otherBranchDomains).toBe(routes.length - expected.length);
    expect(after.otherBranchDomains).toBeGreaterThanOrEqual(before.otherBranchDomains + 14);
    const live = after.deployments.find((d) => d.id === after.current);
    expect(after.domains.map((d) => d.hostname)).toContain(`${live?.branch}.acme.localhost`);
    for (const d of after.domains) expect({ ...d, servedBy: d.routedTo, status: 200 }).toEqual(d);
  });

  it("shows the live branch's domain where it points at a deployment the panel does not list (rolled back to an older push of that branch)", async () => {
    await push(2, () => 'feature-a');
    const [a2, a1] = (await sy.platform.snapshot('preview')).deployments.filter(
      (d) => d.branch === 'feature-a',
    );
    let n = 0;
    await push(13, () => `later-${++n}`);
    // Rolled back to a1: the switch moves the environment domain only (the current deployment is of
    // another branch), so feature-a's domain stays on a2, which is too old to be listed.
    const moved = new Promise<void>((resolve) => {
      const off = sy.platform.subscribe?.((e) => {
        if (e.type === 'traffic.moved' && e.to === a1?.id) {
          off?.();
          resolve();
        }
      });
    });
    await sy.platform.rollback({ environment: 'preview', targetId: a1?.id ?? '' });
    await moved;
    const env = await preview();
    expect(env.current).toBe(a1?.id);
    expect(env.deployments.map((d) => d.id)).not.toContain(a2?.id);
    expect(env.domains.find((d) => d.hostname === 'feature-a.acme.localhost')).toEqual({
      hostname: 'feature-a.acme.localhost',
      stickiness: 'branch',
      routedTo: a2?.id,
      servedBy: a2?.id,
      status: 200,
    });
  });
});

describe('console live panel: why a domain is not answered by its deployment', () => {
  const clock = new ObservedClock();
  /** The reactivation time: a sleep of exactly this long is the reactivation waiting. */
  const REACTIVATION_MS = 7777;
  let sy: TestSwitchyard;
  beforeAll(async () => {
    sy = await startTestSwitchyard({
      clock,
      file: { local: { buildTime: '3s', reactivationTime: `${REACTIVATION_MS}ms` } },
    });
  });
  afterAll(async () => {
    await sy?.close();
  });

  interface Panel {
    deployments: { id: string; status: string; reactivating?: true }[];
    domains: { hostname: string; routedTo: string | null; servedBy: string | null; status: number | null }[];
  }
  const production = async (): Promise<Panel> => {
    const res = await fetch(`${sy.baseUrl}/console/api/platform`);
    const body = (await res.json()) as { environments: (Panel & { slug: string })[] };
    const env = body.environments.find((e) => e.slug === 'production');
    if (env === undefined) throw new Error('no production environment on the panel');
    return env;
  };
  const own = (id: string) => `${id.replace(/_/g, '-')}.acme.localhost`;

  it('a 503 says "building" or "build failed", a standby deployment a rollback brings back says "reactivating"', async () => {
    const local = sy.platform as LocalPlatform;
    const failed = await local.push({ environment: 'production', fail: true });
    await clock.advance(3000);
    await local.settle();
    // Pushed after the failed build finished, and never given the 3 s: it builds for the whole test.
    const building = await local.push({ environment: 'production' });
    let env = await production();
    expect(env.domains.find((d) => d.hostname === own(failed.id))).toEqual({
      hostname: own(failed.id),
      stickiness: 'deployment',
      routedTo: failed.id,
      servedBy: null,
      status: 503,
      why: 'build failed',
    });
    expect(env.domains.find((d) => d.hostname === own(building.id))).toMatchObject({
      status: 503,
      why: 'building',
    });
    // A standby deployment (the demo's) nothing brings back: its domain is asleep.
    expect(env.domains.find((d) => d.hostname === own('dep_2mc5ty'))).toMatchObject({
      servedBy: null,
      status: 503,
      why: 'standby',
    });
    // Served domains have no "why".
    expect(env.domains.find((d) => d.hostname === 'shop.localhost')).not.toHaveProperty('why');

    // A rollback to a standby deployment: it is started, then the reactivation time passes before any
    // domain moves; meanwhile its status still reads standby, and the panel says it is reactivating.
    const reactivating = clock.sleepOf(REACTIVATION_MS);
    const ref = await local.rollback({ environment: 'production', targetId: 'dep_3hd7xa' });
    await reactivating;
    expect((await local.getDeployment('dep_3hd7xa'))?.status).toBe('standby');
    env = await production();
    expect(env.deployments.find((d) => d.id === 'dep_3hd7xa')).toMatchObject({
      status: 'standby',
      reactivating: true,
    });
    expect(env.deployments.find((d) => d.id === 'dep_2mc5ty')).not.toHaveProperty('reactivating');
    await clock.advance(REACTIVATION_MS);
    await local.settle();
    expect((await local.operation(ref)).state).toBe('succeeded');
    env = await production();
    expect(env.deployments.find((d) => d.id === 'dep_3hd7xa')).toEqual(
      expect.not.objectContaining({ reactivating: true }),
    );
    expect(env.deployments.find((d) => d.id === 'dep_3hd7xa')?.status).toBe('ready');
  });
});

describe('console without a token (loopback only)', () => {
  /** A request with a Host (and headers) of the caller's choosing (fetch sets Host from the URL). */
  const answer = (host: string, path: string, method = 'GET', body?: string, headers = {}) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const url = new URL(app.baseUrl);
      const req = request(
        {
          host: '127.0.0.1',
          port: url.port,
          method,
          path,
          headers: {
            host,
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
            ...headers,
          },
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const withHost = async (host: string, path: string, method = 'GET', body?: string) =>
    (await answer(host, path, method, body)).status;

  it('answers only to a loopback name: a page that points its own name at 127.0.0.1 gets 403 (DNS rebinding)', async () => {
    const port = new URL(app.baseUrl).port;
    const evil = `rebind.evil.example:${port}`;
    expect(await withHost(evil, '/')).toBe(403);
    expect(await withHost(evil, '/console/api/timeline?user=alice')).toBe(403);
    const body = JSON.stringify({ user: 'mallory', text: '/rollback production' });
    expect(await withHost(evil, '/console/api/command', 'POST', body)).toBe(403);
    expect(await withHost(`localhost:${port}`, '/console/api/platform')).toBe(200);
    expect(await withHost(`127.0.0.1:${port}`, '/')).toBe(200);
  });

  it('refuses what a proxy on this machine forwards (Forwarded, X-Forwarded-*, X-Real-IP), naming SWITCHYARD_CONSOLE_TOKEN', async () => {
    // nginx's `proxy_pass http://127.0.0.1:3000` connects from loopback with `Host: 127.0.0.1:3000`:
    // only the headers it adds tell that the browser is somewhere else.
    const host = `127.0.0.1:${new URL(app.baseUrl).port}`;
    const before = (await timeline('mallory')).length;
    const body = JSON.stringify({ user: 'mallory', text: '/rollback production' });
    for (const headers of [
      { 'x-forwarded-for': '203.0.113.9' },
      { 'x-real-ip': '203.0.113.9' },
      { forwarded: 'for=203.0.113.9;proto=https;host=switchyard.example.com' },
      { 'x-forwarded-host': 'switchyard.example.com' },
      { 'x-forwarded-proto': 'https' },
    ]) {
      const [name] = Object.keys(headers);
      const page = await answer(host, '/', 'GET', undefined, headers);
      expect({ name, status: page.status }).toEqual({ name, status: 403 });
      expect(page.text).toContain('SWITCHYARD_CONSOLE_TOKEN');
      expect(page.text.toLowerCase()).toContain(`proxy (${name})`);
      expect((await answer(host, '/console/api/timeline?user=alice', 'GET', undefined, headers)).status).toBe(
        403,
      );
      expect((await answer(host, '/console/events?user=alice', 'GET', undefined, headers)).status).toBe(403);
      expect((await answer(host, '/console/api/command', 'POST', body, headers)).status).toBe(403);
    }
    // Nothing was planned, and the health check stays open (a proxy may probe it).
    expect((await timeline('mallory')).length).toBe(before);
    expect(
      (await answer(host, '/console/health', 'GET', undefined, { 'x-forwarded-for': '1.2.3.4' })).status,
    ).toBe(200);
  });
});

/** POSTs JSON to a console of the test's own. */
async function postTo(
  sy: TestSwitchyard,
  path: string,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${sy.baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function timelineOf(sy: TestSwitchyard, user: string): Promise<ConsoleEntry[]> {
  const res = await fetch(`${sy.baseUrl}/console/api/timeline?user=${user}`);
  return ((await res.json()) as { entries: ConsoleEntry[] }).entries;
}

describe('the console\'s "Fire alert"', () => {
  let sy: TestSwitchyard;
  beforeAll(async () => {
    sy = await startTestSwitchyard();
  });
  afterAll(async () => {
    await sy?.close();
  });

  /** Resolves once `id` is the environment's live deployment (checked at each platform event). */
  async function untilLive(environment: string, id: string): Promise<void> {
    for (;;) {
      let off: (() => void) | undefined;
      const changed = new Promise<void>((resolve) => {
        off = sy.platform.subscribe?.(() => resolve());
      });
      try {
        if ((await sy.platform.snapshot(environment)).environment.currentDeploymentId === id) return;
        await changed;
      } finally {
        off?.();
      }
    }
  }

  it('is one incident per live deployment: pressed again it dedupes, after a new deployment went live it suggests again', async () => {
    const fire = () => postTo(sy, '/console/api/alert', { environment: 'production', title: 'Checkout 5xx' });
    const suggestions = async () =>
      (await timelineOf(sy, 'alice')).filter((e) => e.message?.kind === 'confirmation');
    expect((await fire()).json.outcome).toBe('suggested');
    expect((await fire()).json.outcome).toBe('deduplicated');
    const [first] = await suggestions();
    expect(first?.message?.title).toBe('Roll back production to dep_3hd7xa?');
    // Dismissed: not this rollback again.
    const dismiss = first?.message?.buttons.find((b) => b.label === 'Dismiss');
    if (!first || !dismiss) throw new Error(`no Dismiss on ${JSON.stringify(first)}`);
    const dismissed = await postTo(sy, '/console/api/action', {
      user: 'alice',
      actionId: dismiss.actionId,
      messageId: first.id,
    });
    expect(dismissed.status).toBe(200);
    expect((await fire()).json.outcome).toBe('deduplicated');

    // A new deployment goes live, and it is bad: a new incident, a new suggestion (rolling it back).
    const pushed = await postTo(sy, '/console/api/push', { environment: 'production', user: 'alice' });
    expect(pushed.status).toBe(201);
    const id = String(pushed.json.deploymentId);
    await untilLive('production', id);
    const again = await fire();
    expect({ outcome: again.json.outcome, detail: again.json.detail }).toEqual({
      outcome: 'suggested',
      detail: expect.stringMatching(new RegExp(`^${id} went live .* roll back to dep_4kq9wz\\?$`)),
    });
    expect((await suggestions()).map((e) => e.message?.title)).toEqual([
      'Dismissed: roll back production to dep_3hd7xa',
      'Roll back production to dep_4kq9wz?',
    ]);
    // Against that same deployment, the button is one incident again.
    expect((await fire()).json.outcome).toBe('deduplicated');
  });
});

describe('a console command that fails', () => {
  it('is not in the channel when refused (Redis unreachable); a handled one is, right before its answer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-console-redis-'));
    const redis = await spawnRedis({ dir: join(dir, 'redis') });
    const sy = await startTestSwitchyard({ env: { REDIS_URL: redis.url } });
    try {
      const handled = await postTo(sy, '/console/api/command', {
        user: 'alice',
        text: '/deployments production',
      });
      expect(handled.status).toBe(200);
      const shown = await timelineOf(sy, 'bob');
      const answer = shown.findIndex((e) => e.id === handled.json.messageId);
      expect(answer).toBeGreaterThan(0);
      expect(shown[answer - 1]).toMatchObject({
        author: { kind: 'user', name: 'alice' },
        text: '/deployments production',
      });

      await redis.stop();
      const refused = await postTo(sy, '/console/api/command', {
        user: 'alice',
        text: '/rollback production',
      });
      // The page says "Not sent" (nothing was done): nobody's channel shows the command as if it ran.
      expect(refused.status).toBe(503);
      for (const user of ['alice', 'bob'])
        expect({ user, texts: (await timelineOf(sy, user)).map((e) => e.text) }).toEqual({
          user,
          texts: shown.map((e) => e.text),
        });
    } finally {
      await sy.close();
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
