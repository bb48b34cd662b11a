/**
 * handlers/console/routes.ts from /console/api/platform on: what the live panel says
 * of an environment (rolled back since when and by whom, the current deployment, twelve deployments,
 * the clock's time, what this process can simulate), what it says when the platform cannot be read
 * (why, in words, logged once per reason until a read works again), and the push and alert endpoints (404 where not
 * wired, every field of a push passed on, the default alert title, every result's outcome, body bounds).
 */

import { afterEach, describe, expect, it } from 'vitest';
import { registerConsole } from '../../handlers/console/routes.js';
import { ConsoleSurface } from '../../handlers/console/surface.js';
import { ManualClock } from '../../src/clock.js';
import type { EnvironmentSnapshot } from '../../src/domain/types.js';
import { SwitchyardError } from '../../src/errors.js';
import { HttpServer } from '../../src/http.js';
import { CapturedLog } from '../support/captured-log.js';
import { snapshot } from '../views/fixtures.js';

const closers: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

const T0 = Date.UTC(2026, 10, 30, 12, 0, 0);

type Extra = Partial<Pick<Parameters<typeof registerConsole>[1], 'push' | 'fireAlert' | 'logger'>>;

async function rig(snap: EnvironmentSnapshot, extra: Extra = {}) {
  const surface = new ConsoleSurface({ clock: new ManualClock(T0) });
  const http = new HttpServer();
  // What the platform fails with while set (see `failWith`); it answers again once cleared.
  let fault: Error | undefined;
  const platform = {
    name: 'fake',
    listEnvironments: async () => {
      if (fault) throw fault;
      return [snap.environment.slug];
    },
    snapshot: async () => snap,
    routing: async () => snap.domains,
  };
  const routes = registerConsole(http, {
    surface,
    chat: {} as never,
    flow: {} as never,
    platform: platform as never,
    clock: new ManualClock(T0),
    ...extra,
  });
  const port = await http.listen(0);
  closers.push(async () => {
    routes.close();
    await http.close(50);
  });
  const base = `http://127.0.0.1:${port}`;
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  const read = async () => {
    const res = await fetch(`${base}/console/api/platform`);
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  const panel = async () => {
    const res = await fetch(`${base}/console/api/platform`);
    expect(res.status).toBe(200);
    return (await res.json()) as {
      now: number;
      canPush: boolean;
      canAlert: boolean;
      environments: Record<string, unknown>[];
    };
  };
  const failWith = (e: Error | undefined) => {
    fault = e;
  };
  return { post, panel, read, failWith };
}

describe('console live panel (/console/api/platform)', () => {
  it('says the environment is rolled back, since when, by whom, and which deployment is current', async () => {
    const snap = snapshot({ rolledBack: true });
    const { panel } = await rig(snap);
    const env = (await panel()).environments[0];
    expect(env).toMatchObject({
      slug: 'production',
      rolledBack: true,
      rolledBackAt: snap.environment.rolledBackAt,
      rolledBackBy: snap.environment.rolledBackBy,
      current: 'dep_2',
    });
    expect(snap.environment.rolledBackAt).toEqual(expect.any(Number));
    expect(snap.environment.rolledBackBy).toBeDefined();
  });

  it('lists the newest twelve deployments (plus the live one), stamps the answer with the clock, and offers no push or alert not wired', async () => {
    const snap = snapshot({ extraDeployments: 20 });
    const { panel } = await rig(snap);
    const body = await panel();
    expect(body.now).toBe(T0);
    expect(body.canPush).toBe(false);
    expect(body.canAlert).toBe(false);
    const ids = ((body.environments[0]?.deployments ?? []) as { id: string }[]).map((d) => d.id);
    expect(ids).toEqual(snap.deployments.slice(0, 12).map((d) => d.id));
  });
});

describe('console live panel while the platform cannot be read', () => {
  const unreachable = new SwitchyardError(
    'platform_unavailable',
    'GET http://127.0.0.1:9/v2/x: connect ECONNREFUSED',
    { retry: true },
  );
  const slow = new SwitchyardError(
    'platform_timeout',
    'GET http://127.0.0.1:9/v2/x: no answer within 10000 ms',
    {
      retry: true,
    },
  );
  const said = (log: CapturedLog) =>
    log.lines.map((l) => `${l.levelName} ${l.msg}${l.err ? ' (with err)' : ''}`);

  it('answers 503 naming the reason in words, and logs it once per reason (a WARN) until a read works again', async () => {
    const log = new CapturedLog();
    const { read, failWith } = await rig(snapshot(), { logger: log.logger });
    failWith(unreachable);
    // Every open page asks every 5 s: the same answer each time, one line in the log.
    for (let i = 0; i < 3; i++)
      expect(await read()).toEqual({
        status: 503,
        json: {
          error: 'platform_unavailable',
          message:
            'the platform could not be read (the deploy platform could not be reached: platform_unavailable)',
          reason: 'the deploy platform could not be reached: platform_unavailable',
        },
      });
    expect(said(log)).toEqual([
      'warn console panel could not read the platform: the deploy platform could not be reached: platform_unavailable',
    ]);
    // Another reason is said once too.
    failWith(slow);
    expect((await read()).json.reason).toBe('the deploy platform did not answer in time: platform_timeout');
    expect((await read()).status).toBe(503);
    expect(said(log)).toHaveLength(2);
    // Read again: said, and the next fault is said again.
    failWith(undefined);
    expect((await read()).status).toBe(200);
    expect((await read()).status).toBe(200);
    failWith(slow);
    expect((await read()).status).toBe(503);
    expect(said(log)).toEqual([
      'warn console panel could not read the platform: the deploy platform could not be reached: platform_unavailable',
      'warn console panel could not read the platform: the deploy platform did not answer in time: platform_timeout',
      'info console panel reads the platform again',
      'warn console panel could not read the platform: the deploy platform did not answer in time: platform_timeout',
    ]);
  });

  it("a fault that is not the platform's (a bug) answers 500 with its code, nothing of its message, and is an ERROR once per message", async () => {
    const log = new CapturedLog();
    const { read, failWith } = await rig(snapshot(), { logger: log.logger });
    failWith(new Error('secret internals'));
    const answer = await read();
    expect(answer).toEqual({
      status: 500,
      json: { error: 'internal', message: 'the platform could not be read (internal)', reason: 'internal' },
    });
    await read();
    failWith(new Error('another bug'));
    await read();
    expect(said(log)).toEqual([
      'error console panel could not read the platform (with err)',
      'error console panel could not read the platform (with err)',
    ]);
  });
});

describe('console push and alert endpoints', () => {
  it('answer 404 not_available where this process has no simulated pushes or alerts', async () => {
    const { post, panel } = await rig(snapshot());
    expect(await post('/console/api/push', { environment: 'production' })).toMatchObject({
      status: 404,
      json: { error: 'not_available' },
    });
    expect(await post('/console/api/alert', { environment: 'production' })).toMatchObject({
      status: 404,
      json: { error: 'not_available' },
    });
    expect(await panel()).toMatchObject({ canPush: false, canAlert: false });
  });

  it('passes every field of a push on (the branch, the commit message, the author), and says it can push', async () => {
    const pushes: unknown[] = [];
    const { post, panel } = await rig(snapshot(), {
      push: async (req) => {
        pushes.push(req);
        return { id: 'dep_new' };
      },
    });
    expect((await panel()).canPush).toBe(true);
    const res = await post('/console/api/push', {
      environment: 'production',
      branch: ' feature-x ',
      message: 'fix: the checkout',
      user: 'alice',
    });
    expect(res).toEqual({ status: 201, json: { ok: true, deploymentId: 'dep_new' } });
    expect(pushes).toEqual([
      { environment: 'production', branch: 'feature-x', message: 'fix: the checkout', author: 'alice' },
    ]);
    // Bounded: a 101-character branch or a blank one is refused, nothing pushed.
    expect(
      (await post('/console/api/push', { environment: 'production', branch: 'b'.repeat(101) })).status,
    ).toBe(400);
    expect((await post('/console/api/push', { environment: 'production', branch: '  ' })).status).toBe(400);
    expect(pushes).toHaveLength(1);
  });

  it('fires an alert with a default title naming the environment, and reports every result', async () => {
    const fired: { environment: string; title: string }[] = [];
    const { post, panel } = await rig(snapshot(), {
      fireAlert: async (environment, title) => {
        fired.push({ environment, title });
        return [{ outcome: 'suggested', detail: 'Suggested on Slack.' }, { outcome: 'deduplicated' }];
      },
    });
    expect((await panel()).canAlert).toBe(true);
    const res = await post('/console/api/alert', { environment: 'production' });
    expect(res).toEqual({
      status: 202,
      json: { ok: true, outcome: 'suggested, deduplicated', detail: 'Suggested on Slack.' },
    });
    expect(fired).toEqual([{ environment: 'production', title: 'High error rate on production' }]);
    // A title over 200 characters is refused, nothing fired.
    expect(
      (await post('/console/api/alert', { environment: 'production', title: 't'.repeat(201) })).status,
    ).toBe(400);
    expect(fired).toHaveLength(1);
  });
});
