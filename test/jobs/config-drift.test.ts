/**
 * A switch queued under one configuration and run under another: the job waited (no worker running,
 * workers restarting, a retry's backoff, another switch of the environment) while an operator took the
 * person who confirmed it off the allow list, or turned the two-person rule on, and restarted. When its
 * turn comes the worker judges the people the job names by the configuration in force in its own
 * process (`permissions`), under the environment lock and before the platform is asked anything: a job
 * they may no longer have made ends `refused` (code `forbidden`), saying what changed and that nothing
 * was switched, audited and counted like any refusal. A job records who acted and which of their Slack
 * user groups or Discord roles on the allow list let them in at the click (`grants`): those count, and no
 * others; a job of an earlier version records none, and where a listed group or role could have let the
 * person in, the worker cannot tell, and the switch goes on. A switch this job already asked the
 * platform for is followed whatever the config says.
 *
 * In process, on the real Redis and LocalPlatform (test/jobs/fixtures), and through the whole app
 * (handlers/app.ts) restarted with an edited config on the same Redis namespace and platform state.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startSwitchyard } from '../../handlers/app.js';
import { type Config, fileConfigSchema, parseEnv } from '../../src/config.js';
import { PlatformHttpError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import type { PermissionContext } from '../../src/permissions.js';
import type { OperationRef } from '../../src/platform/port.js';
import type { Actor } from '../../src/progress.js';
import { jobIdForPlan, type SwitchJobData, SwitchQueue, switchKeys } from '../../src/queue.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { alice, bob, Cleanup, jobData, planFor } from './fixtures/harness.js';
import { seedIds } from './fixtures/seed.js';
import { type JobsEnv, REACTIVATION_MS, setupJobs } from './fixtures/setup.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** The configuration in force in the worker's process: `file` (the YAML's content) on `platform`. */
function inForce(file: unknown, platform: Config['platform'] = 'local'): PermissionContext {
  return { config: { platform, file: fileConfigSchema.parse(file) } };
}

/** A Slack user and a Discord user (the harness's alice and bob are console users). */
const carol: Actor = { surface: 'slack', userId: 'U0CAROL', displayName: 'carol' };
const dave: Actor = { surface: 'discord', userId: '222222222222', displayName: 'dave' };

/** env0's allow list names these console users (and nothing else). */
function consoleUsers(users: string[], twoPersonRule = false) {
  return { environments: { env0: { allow: { console: { users } }, twoPersonRule } } };
}

/** A rollback of env0 (to the previous deployment) as the job a click queued: `who` confirmed (and approved). */
async function rollbackJob(
  env: JobsEnv,
  who: { requestedBy: Actor; approvedBy?: Actor } = { requestedBy: alice },
): Promise<SwitchJobData> {
  const now = env.clock.now();
  const data = jobData(await planFor(env.local, 'env0', 'rollback', now), now, who.requestedBy);
  return who.approvedBy === undefined ? data : { ...data, approvedBy: who.approvedBy };
}

/** Runs `data` on a worker judging by `permissions`; resolves with its end. */
async function runUnder(env: JobsEnv, permissions: PermissionContext, data: SwitchJobData) {
  await env.startWorker({ permissions });
  const { jobId } = await env.queue.enqueue(data);
  return { jobId, final: await env.queue.waitForEnd(jobId) };
}

async function refusedCount(env: JobsEnv): Promise<number> {
  const m = await env.metrics.jobs.get();
  return m.values.filter((v) => v.labels.outcome === 'refused').reduce((n, v) => n + v.value, 0);
}

const serving = `env0 is serving ${seedIds(0).current}.`;

describe('a queued switch whose people the configuration in force no longer permits', () => {
  it('its confirmer taken off the allow list: refused before the platform is asked, saying so, audited and counted', async () => {
    const env = await setupJobs(cleanup);
    const { jobId, final } = await runUnder(env, inForce(consoleUsers(['u-bob'])), await rollbackJob(env));

    expect(final).toMatchObject({ outcome: 'refused', code: 'forbidden', attempt: 1 });
    expect(final?.message).toBe(
      `Alice (u-alice) is no longer permitted on env0: not on its allow list in the configuration in force (it changed since the click), and this rollback is made in their name; nothing was switched. Someone permitted now can ask for it again. ${serving}`,
    );
    // It ended while validating, under the lock: no switch was asked for, traffic stayed where it was.
    expect(final?.steps.at(-1)).toMatchObject({ step: 'validating', state: 'failed' });
    expect(final?.steps.at(-1)?.detail).toContain('Alice (u-alice) is no longer permitted on env0');
    expect(env.platform.switchCalls).toBe(0);
    expect((await env.local.snapshot('env0')).environment.currentDeploymentId).toBe(seedIds(0).current);
    expect(env.reporter.of(jobId).at(-1)).toEqual(final);
    const audit = await env.audit.recent('env0', 10);
    expect(audit.map((e) => [e.event, e.code])).toEqual([
      ['refused', 'forbidden'],
      ['started', undefined],
      ['requested', undefined],
    ]);
    expect(audit[0]?.message).toBe(final?.message);
    expect(await refusedCount(env)).toBe(1);
  });

  it('the two-person rule turned on after a one-person confirm: refused, naming the rule', async () => {
    const env = await setupJobs(cleanup);
    const permissions = inForce(consoleUsers(['u-alice', 'u-bob'], true));
    const { final } = await runUnder(env, permissions, await rollbackJob(env));

    expect(final).toMatchObject({ outcome: 'refused', code: 'forbidden' });
    expect(final?.message).toBe(
      `env0 needs a second permitted person's approval (environments.env0.twoPersonRule was turned on since the click), and this rollback was queued on Alice (u-alice)'s confirmation alone; nothing was switched. Ask for it again: a permitted person confirms it, and a second one approves. ${serving}`,
    );
    expect(env.platform.switchCalls).toBe(0);
  });

  it('with the two-person rule, its approver taken off the allow list: refused, naming the approver', async () => {
    const env = await setupJobs(cleanup);
    const permissions = inForce(consoleUsers(['u-alice'], true));
    const data = await rollbackJob(env, { requestedBy: alice, approvedBy: bob });
    const { final } = await runUnder(env, permissions, data);

    expect(final).toMatchObject({ outcome: 'refused', code: 'forbidden' });
    expect(final?.message).toBe(
      `Bob (u-bob), who approved this rollback, is no longer permitted on env0: not on its allow list in the configuration in force (it changed since the click), and env0 needs two permitted people; nothing was switched. Ask for it again: a permitted person confirms it, and a second one approves. ${serving}`,
    );
    expect(env.platform.switchCalls).toBe(0);
  });

  it('an environment that lost its allow list on a real platform: nobody may act on it any more', async () => {
    const env = await setupJobs(cleanup);
    const { final } = await runUnder(env, inForce({}, 'unkey'), await rollbackJob(env));

    expect(final).toMatchObject({ outcome: 'refused', code: 'forbidden' });
    expect(final?.message).toBe(
      `env0 has no allow list in the configuration in force (it changed since Alice (u-alice)'s click, or this worker was started without the config file the bot runs with), so nobody may roll it back or promote it on the unkey platform; nothing was switched. An operator adds environments.env0.allow to the config file (SWITCHYARD_CONFIG), the same file for every bot and worker. ${serving}`,
    );
    expect(env.platform.switchCalls).toBe(0);
  });

  it('judged before the platform is asked anything: a platform that does not answer still ends it refused, not failed', async () => {
    // Every read of the platform fails (more faults than the job could ever use). Judged after a
    // read, each attempt would fail on it and be retried, the last ending `failed` (platform_http).
    const down = () =>
      new PlatformHttpError(503, 'GET', 'http://platform.invalid/snapshot', undefined, 'unavailable');
    const env = await setupJobs(cleanup, {
      attempts: 2,
      faults: { snapshotErrors: Array.from({ length: 8 }, down) },
    });
    const { jobId, final } = await runUnder(env, inForce(consoleUsers(['u-bob'])), await rollbackJob(env));

    expect(final).toMatchObject({ outcome: 'refused', code: 'forbidden', attempt: 1 });
    // Where traffic is could not be read for the message: said as other endings say it.
    expect(final?.message).toBe(
      'Alice (u-alice) is no longer permitted on env0: not on its allow list in the configuration in force (it changed since the click), and this rollback is made in their name; nothing was switched. Someone permitted now can ask for it again. Where traffic is now could not be read from the platform: check it there.',
    );
    expect(final?.steps.at(-1)).toMatchObject({ step: 'validating', state: 'failed' });
    expect(env.platform.switchCalls).toBe(0);
    expect((await env.audit.recent('env0', 10)).map((e) => [e.event, e.code])).toEqual([
      ['refused', 'forbidden'],
      ['started', undefined],
      ['requested', undefined],
    ]);
    expect(env.reporter.of(jobId).at(-1)).toEqual(final);
  });

  it('an earlier attempt whose operation the platform reports failed: judged once that is read, refused', async () => {
    const env = await setupJobs(cleanup);
    const data = await rollbackJob(env);
    // The stored operation of an earlier attempt (it died before following it), which the platform
    // reports failed: that attempt switched nothing, so the job decides afresh, its people included.
    const ref = {
      id: 'op_earlier',
      action: 'rollback',
      environment: 'env0',
      targetId: data.targetId,
      startedAt: env.clock.now(),
    } as OperationRef;
    const keys = switchKeys(env.queue.prefix, env.queueName);
    await env.redis.set(keys.operation(jobIdForPlan(data.planId)), JSON.stringify(ref));
    const operationsRead: string[] = [];
    await env.startWorker({
      permissions: inForce(consoleUsers(['u-bob'])),
      platform: {
        ...env.platform,
        operation: async (r: OperationRef) => {
          operationsRead.push(r.id);
          return r.id === 'op_earlier' ? ({ ...r, state: 'failed' } as never) : env.platform.operation(r);
        },
      },
    });
    const { jobId } = await env.queue.enqueue(data);
    const final = await env.queue.waitForEnd(jobId);

    expect(final).toMatchObject({ outcome: 'refused', code: 'forbidden', attempt: 1 });
    expect(final?.message).toContain('Alice (u-alice) is no longer permitted on env0');
    expect(operationsRead).toEqual(['op_earlier']);
    expect(env.platform.switchCalls).toBe(0);
    expect((await env.local.snapshot('env0')).environment.currentDeploymentId).toBe(seedIds(0).current);
  });

  it('a Slack user let in by a user group since taken off the allow list: refused, naming the group, though other groups are listed', async () => {
    const env = await setupJobs(cleanup);
    // At the click S0ONCALL was listed, and carol in it; now only S0DEVELOP is (carol's membership in
    // it, if any, did not let her in: the click recorded S0ONCALL only).
    const permissions = inForce({
      environments: { env0: { allow: { slack: { users: ['U0DAVE'], groups: ['S0DEVELOP'] } } } },
    });
    const data = await rollbackJob(env, { requestedBy: carol });
    const { final } = await runUnder(env, permissions, {
      ...data,
      grants: { requestedBy: { groups: ['S0ONCALL'] } },
    });

    expect(final).toMatchObject({ outcome: 'refused', code: 'forbidden' });
    expect(final?.message).toContain(
      'carol (U0CAROL) is no longer permitted on env0: not on its allow list in the configuration in force (it changed since the click: Slack user group S0ONCALL, which let them in at the click, is no longer on it), and this rollback is made in their name; nothing was switched.',
    );
    expect(env.platform.switchCalls).toBe(0);
  });

  it('a Slack user let in by their user id, since taken off the list, while user groups are listed: refused (the job records no group of theirs)', async () => {
    const env = await setupJobs(cleanup);
    const permissions = inForce({
      environments: { env0: { allow: { slack: { users: ['U0DAVE'], groups: ['S0ONCALL'] } } } },
    });
    const data = await rollbackJob(env, { requestedBy: carol });
    const { final } = await runUnder(env, permissions, { ...data, grants: {} });

    expect(final).toMatchObject({ outcome: 'refused', code: 'forbidden' });
    expect(final?.message).toContain(
      'carol (U0CAROL) is no longer permitted on env0: not on its allow list in the configuration in force (it changed since the click), and this rollback',
    );
    expect(env.platform.switchCalls).toBe(0);
  });

  it('with the two-person rule, a Discord approver let in by a role since taken off the list: refused, naming the role', async () => {
    const env = await setupJobs(cleanup);
    const permissions = inForce({
      environments: {
        env0: {
          twoPersonRule: true,
          allow: { console: { users: ['u-alice'] }, discord: { roles: ['444'] } },
        },
      },
    });
    const data = await rollbackJob(env, { requestedBy: alice, approvedBy: dave });
    const { final } = await runUnder(env, permissions, {
      ...data,
      grants: { approvedBy: { roles: ['333', '555'] } },
    });

    expect(final).toMatchObject({ outcome: 'refused', code: 'forbidden' });
    expect(final?.message).toContain(
      'dave (222222222222), who approved this rollback, is no longer permitted on env0: not on its allow list in the configuration in force (it changed since the click: Discord role 333 and Discord role 555, which let them in at the click, are no longer on it)',
    );
    expect(env.platform.switchCalls).toBe(0);
  });

  it("with the two-person rule, an approver the config's people now links to the confirmer as one person: refused", async () => {
    const env = await setupJobs(cleanup);
    const permissions = inForce({
      environments: {
        env0: {
          twoPersonRule: true,
          allow: { console: { users: ['u-alice'] }, discord: { users: ['222222222222'] } },
        },
      },
      people: [{ name: 'Alice', console: 'u-alice', discord: '222222222222' }],
    });
    const { final } = await runUnder(
      env,
      permissions,
      await rollbackJob(env, { requestedBy: alice, approvedBy: dave }),
    );

    expect(final).toMatchObject({ outcome: 'refused', code: 'forbidden' });
    expect(final?.message).toContain(
      "env0 needs two different permitted people, and dave (222222222222), who approved this rollback, is the person who confirmed it (the config's people.0 (Alice) links discord 222222222222 and console u-alice as one person) in the configuration in force (it changed since the click); nothing was switched.",
    );
    expect(env.platform.switchCalls).toBe(0);
  });

  it('a Slack user whose allow list names users only, and not them: refused (their user id was the only way in)', async () => {
    const env = await setupJobs(cleanup);
    const permissions = inForce({ environments: { env0: { allow: { slack: { users: ['U0DAVE'] } } } } });
    const { final } = await runUnder(env, permissions, await rollbackJob(env, { requestedBy: carol }));

    expect(final).toMatchObject({ outcome: 'refused', code: 'forbidden' });
    expect(final?.message).toContain('carol (U0CAROL) is no longer permitted on env0');
    expect(env.platform.switchCalls).toBe(0);
  });
});

describe('a queued switch the configuration in force still permits, or cannot judge', () => {
  it('its confirmer still on the allow list: switched', async () => {
    const env = await setupJobs(cleanup);
    const { final } = await runUnder(env, inForce(consoleUsers(['u-alice'])), await rollbackJob(env));
    expect(final?.outcome).toBe('succeeded');
    expect(env.platform.switchCalls).toBe(1);
  });

  it('with the two-person rule, two different permitted people: switched', async () => {
    const env = await setupJobs(cleanup);
    const permissions = inForce(consoleUsers(['u-alice', 'u-bob'], true));
    const data = await rollbackJob(env, { requestedBy: alice, approvedBy: bob });
    const { final } = await runUnder(env, permissions, data);
    expect(final?.outcome).toBe('succeeded');
  });

  it('no allow list on the local platform (the demo): open to everyone, as at the click', async () => {
    const env = await setupJobs(cleanup);
    const { final } = await runUnder(env, inForce({}), await rollbackJob(env));
    expect(final?.outcome).toBe('succeeded');
  });

  it('a Slack user when the allow list names Slack user groups, in a job of an earlier version (no grants recorded): it goes on', async () => {
    const env = await setupJobs(cleanup);
    const permissions = inForce({
      environments: { env0: { allow: { slack: { users: ['U0DAVE'], groups: ['S0ONCALL'] } } } },
    });
    const data = await rollbackJob(env, { requestedBy: carol });
    expect(data.grants).toBeUndefined();
    const { final } = await runUnder(env, permissions, data);
    expect(final?.outcome).toBe('succeeded');
  });

  it('a Slack user let in by a user group that is still listed: switched', async () => {
    const env = await setupJobs(cleanup);
    const permissions = inForce({
      environments: { env0: { allow: { slack: { users: ['U0DAVE'], groups: ['S0OTHER', 'S0ONCALL'] } } } },
    });
    const data = await rollbackJob(env, { requestedBy: carol });
    const { final } = await runUnder(env, permissions, {
      ...data,
      grants: { requestedBy: { groups: ['S0ONCALL'] } },
    });
    expect(final?.outcome).toBe('succeeded');
  });

  it('a Discord approver let in by a role that is still listed (two-person rule): switched', async () => {
    const env = await setupJobs(cleanup);
    const permissions = inForce({
      environments: {
        env0: {
          twoPersonRule: true,
          allow: { console: { users: ['u-alice'] }, discord: { roles: ['333'] } },
        },
      },
    });
    const data = await rollbackJob(env, { requestedBy: alice, approvedBy: dave });
    const { final } = await runUnder(env, permissions, {
      ...data,
      grants: { approvedBy: { roles: ['333'] } },
    });
    expect(final?.outcome).toBe('succeeded');
  });

  it('a switch this job already asked the platform for is followed to its end, whatever the config says now', async () => {
    const env = await setupJobs(cleanup);
    // Under the config of the click, the first worker starts a rollback to a standby target, then shuts
    // down (out of time) and hands the job back while the platform reactivates it.
    const first = await env.startWorker({
      shutdownTimeoutMs: 20,
      permissions: inForce(consoleUsers(['u-alice'])),
    });
    const now = env.clock.now();
    const plan = await planFor(env.local, 'env0', 'rollback', now, seedIds(0).standby);
    const { jobId } = await env.queue.enqueue(jobData(plan, now));
    await env.reporter.waitFor((p) => p.jobId === jobId && p.operationId !== undefined);
    await first.close();
    expect(env.platform.switchCalls).toBe(1);

    // The worker that resumes it runs under a config without alice: it follows the same operation.
    await env.startWorker({ permissions: inForce(consoleUsers(['u-bob'])) });
    await env.reporter.waitFor(
      (p) => p.jobId === jobId && p.steps[1]?.detail?.includes('Resuming') === true && p.attempt === 1,
    );
    await env.clock.advance(REACTIVATION_MS);
    const final = await env.queue.waitForEnd(jobId);
    expect(final?.outcome).toBe('succeeded');
    expect(env.platform.switchCalls).toBe(1);
  });
});

describe('the whole app restarted with an edited config', () => {
  /** Starts handlers/app.ts on `file`, on the Redis namespace and platform state given (a restart). */
  async function startApp(
    state: { namespace: string; dataDir: string },
    file: unknown,
    env: Record<string, string> = {},
  ) {
    const parsedEnv = parseEnv({
      PORT: '0',
      LOCAL_ROUTER_PORT: '0',
      REDIS_URL: redisUrl(),
      LOG_LEVEL: 'silent',
      ...env,
    });
    const parsedFile = fileConfigSchema.parse(file);
    const config: Config = { env: parsedEnv, file: parsedFile, platform: parsedFile.platform };
    return startSwitchyard({ config, logger: silentLogger, ...state }, []);
  }

  it('a switch confirmed before the restart runs only if the new config still permits its confirmer', async () => {
    const state = { namespace: uniqueName('drift'), dataDir: mkdtempSync(join(tmpdir(), 'sy-drift-')) };
    cleanup.add(async () => rmSync(state.dataDir, { recursive: true, force: true }));
    const file = (users: string[]) => ({
      local: { reactivationTime: '200ms', buildTime: '300ms' },
      environments: { production: { allow: { console: { users } } } },
    });
    const who: Actor = { surface: 'console', userId: 'alice', displayName: 'alice' };

    // Config A: alice may act on production; this bot runs no worker, so her switch waits.
    const a = await startApp(state, file(['alice']), { SWITCHYARD_WORKER: 'off' });
    let aRunning = true;
    cleanup.add(async () => {
      if (aRunning) await a.stop();
    });
    const before = (await a.platform.snapshot('production')).environment.currentDeploymentId;
    const planId = (await a.chat.command(who, 'rollback', ['production'])).planId ?? '';
    expect(planId).not.toBe('');
    expect((await a.chat.click(who, `sy1:confirm:${planId}`)).outcome).toBe('enqueued');
    await a.stop();
    aRunning = false;

    // Config B: only bob may act on production. Restarted with its worker on.
    const b = await startApp(state, file(['bob']));
    cleanup.add(() => b.stop());
    const queue = new SwitchQueue({ redisUrl: b.redisUrl, queueName: b.queueName, prefix: b.namespace });
    cleanup.add(() => queue.close());
    const ended = await queue.waitForEnd(jobIdForPlan(planId));

    expect({ outcome: ended?.outcome, code: ended?.code }).toEqual({ outcome: 'refused', code: 'forbidden' });
    expect(ended?.message).toMatch(
      /^alice is no longer permitted on production: not on its allow list in the configuration in force \(it changed since the click\), and this rollback is made in their name; nothing was switched\./,
    );
    expect((await b.platform.snapshot('production')).environment.currentDeploymentId).toBe(before);
  });
});
