/**
 * Scaling out: a bot replica started with `SWITCHYARD_WORKER=off` runs no worker and is still ready;
 * a rollback typed in its console is run by a separate worker (`runWorker`, acting on the app's local
 * platform over HTTP), and the console message — which exists only in the bot's memory — still follows
 * the switch to its final state through the progress the worker publishes. With the bot's own worker
 * on, the console follows the same published progress (the worker's Reporter no longer edits it).
 * Slack messages are edited by the worker running the job (`npm run worker`'s chat reporters against
 * the fake Slack), not by the replica.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type SurfaceFactory, WORKER_OFF } from '../../handlers/app.js';
import type { ConsoleEntry } from '../../handlers/console/surface.js';
import { chatReporters } from '../../handlers/reporters.js';
import { slackSurface } from '../../handlers/slack/surface.js';
import { type RunningWorker, runWorker } from '../../jobs/worker-main.js';
import { silentLogger } from '../../src/log.js';
import { LocalPlatformClient } from '../../src/platform/local/client.js';
import type { MessageRef, Progress, Reporter } from '../../src/progress.js';
import { SwitchQueue } from '../../src/queue.js';
import { buttonsOf, SlackRequests } from '../fakes/slack/requests.js';
import { FakeSlack } from '../fakes/slack/server.js';
import { startTestSwitchyard, type TestSwitchyard } from '../support/switchyard.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function app(
  env: Record<string, string>,
  factories: readonly SurfaceFactory[] = [],
): Promise<TestSwitchyard> {
  const started = await startTestSwitchyard({ env, factories });
  closers.push(() => started.close());
  return started;
}

/** A Reporter recording what the separate worker reported (proof of who ran the job). */
class Recording implements Reporter {
  readonly calls: { progress: Progress; messages: readonly MessageRef[] }[] = [];
  async report(progress: Progress, messages: readonly MessageRef[]): Promise<void> {
    this.calls.push({ progress, messages });
  }
}

async function separateWorker(sy: TestSwitchyard, reporter: Reporter): Promise<RunningWorker> {
  if (sy.routerPort === undefined) throw new Error('the test app runs the local platform');
  const worker = await runWorker({
    argv: ['--queue', sy.queueName, '--prefix', sy.namespace, '--verify-interval', '20'],
    config: sy.config,
    logger: silentLogger,
    reporter,
    platform: new LocalPlatformClient({ baseUrl: `http://127.0.0.1:${sy.routerPort}` }),
  });
  closers.push(() => worker.stop());
  return worker;
}

/** The console's server-sent events: every added or edited entry, in order. */
async function consoleEvents(sy: TestSwitchyard, user: string) {
  const abort = new AbortController();
  const res = await fetch(`${sy.baseUrl}/console/events?user=${user}`, { signal: abort.signal });
  const body = res.body;
  if (!body) throw new Error('no event stream');
  const entries: ConsoleEntry[] = [];
  const waiters = new Set<() => void>();
  const decoder = new TextDecoder();
  let buffer = '';
  let hello: () => void = () => undefined;
  const helloSeen = new Promise<void>((resolve) => {
    hello = resolve;
  });
  const pump = (async () => {
    const reader = body.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf('\n\n');
          const event = /^event: (\S+)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (event === 'hello') hello();
          if (event === 'entry' && data !== undefined) {
            entries.push(JSON.parse(data) as ConsoleEntry);
            for (const w of waiters) w();
          }
        }
      }
    } catch {
      // aborted at the end of the test
    }
  })();
  await helloSeen;
  closers.push(async () => {
    abort.abort();
    await pump;
  });
  return {
    entries,
    /** Resolves with the first entry (seen so far or later) matching `pred`. */
    waitFor(pred: (e: ConsoleEntry) => boolean): Promise<ConsoleEntry> {
      return new Promise((resolve) => {
        const check = () => {
          const hit = entries.find(pred);
          if (!hit) return false;
          waiters.delete(check);
          resolve(hit);
          return true;
        };
        if (!check()) waiters.add(check);
      });
    },
  };
}

async function post(sy: TestSwitchyard, path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${sy.baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

async function timeline(sy: TestSwitchyard, user: string): Promise<ConsoleEntry[]> {
  const res = await fetch(`${sy.baseUrl}/console/api/timeline?user=${user}`);
  return ((await res.json()) as { entries: ConsoleEntry[] }).entries;
}

/** Types `/rollback production` and confirms it; returns the confirmation's message id and job id. */
async function rollbackProduction(
  sy: TestSwitchyard,
  user: string,
): Promise<{ messageId: string; jobId: string }> {
  const command = await post(sy, '/console/api/command', { user, text: '/rollback production' });
  const messageId = String(command.messageId);
  const entry = (await timeline(sy, user)).find((e) => e.id === messageId);
  expect(entry?.message?.kind).toBe('confirmation');
  const confirm = entry?.message?.buttons.find((b) => b.actionId.startsWith('sy1:confirm:'));
  if (!confirm) throw new Error(`no confirm button on ${JSON.stringify(entry)}`);
  const clicked = await post(sy, '/console/api/action', { user, actionId: confirm.actionId, messageId });
  expect(clicked.outcome).toBe('enqueued');
  return { messageId, jobId: String(clicked.jobId) };
}

const isFinal = (messageId: string) => (e: ConsoleEntry) =>
  e.id === messageId && JSON.stringify(e.message ?? {}).includes('Traffic is on dep_3hd7xa');

describe('SWITCHYARD_WORKER=off', () => {
  it('runs no worker, is ready, and its console follows a switch run by a separate worker', async () => {
    const sy = await app({ SWITCHYARD_WORKER: 'off' });
    expect(sy.workerRunning).toBe(false);
    const recorded = new Recording();
    await separateWorker(sy, recorded);
    const ready = await fetch(`${sy.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ok: true, worker: WORKER_OFF, workersConnected: 1 });

    const events = await consoleEvents(sy, 'alice');
    const { messageId, jobId } = await rollbackProduction(sy, 'alice');

    const final = await events.waitFor(isFinal(messageId));
    expect(final.message?.kind).toBe('progress');
    expect(final.message?.tone).toBe('success');
    const shown = (await timeline(sy, 'alice')).find((e) => e.id === messageId);
    expect(JSON.stringify(shown?.message)).toContain('Traffic is on dep_3hd7xa');

    // The separate worker ran it (the app has none) and switched the app's platform.
    const last = recorded.calls.at(-1);
    expect(last?.progress.jobId).toBe(jobId);
    expect(last?.progress.outcome).toBe('succeeded');
    expect(last?.messages).toContainEqual({ surface: 'console', channel: 'console', messageId });
    const snap = await sy.platform.snapshot('production');
    expect(snap.environment.currentDeploymentId).toBe('dep_3hd7xa');
    expect(snap.environment.rolledBack).toBe(true);
    // Readiness does not depend on a worker running here.
    expect((await fetch(`${sy.baseUrl}/readyz`)).status).toBe(200);
  });

  it('with no worker connected anywhere, /readyz warns naming the fix and the waiting switch shows in /metrics', async () => {
    const sy = await app({ SWITCHYARD_WORKER: 'off' });
    const events = await consoleEvents(sy, 'alice');
    // Confirmed while no worker is connected to the queue: nothing will ever take it.
    const { messageId } = await rollbackProduction(sy, 'alice');
    const res = await fetch(`${sy.baseUrl}/readyz`);
    // Still ready (it serves commands, clicks and webhooks): said as a warning naming the fix.
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      ok: true,
      worker: WORKER_OFF,
      workersConnected: 0,
      warnings: [
        `worker: no switch worker is connected to queue ${sy.queueName} (prefix ${sy.namespace}): start one (npm run worker -- --queue ${sy.queueName} --prefix ${sy.namespace}, with the same REDIS_URL) or set SWITCHYARD_WORKER=on`,
      ],
    });
    const waiting = (await (await fetch(`${sy.baseUrl}/metrics`)).text())
      .split('\n')
      .filter((l) => l.startsWith('switchyard_switches_waiting{'));
    expect(waiting.sort()).toEqual([
      'switchyard_switches_waiting{state="delayed"} 0',
      'switchyard_switches_waiting{state="lock"} 0',
      'switchyard_switches_waiting{state="waiting"} 1',
    ]);

    // A worker connects (npm run worker): it takes the waiting switch, and the replica is ready again.
    await separateWorker(sy, new Recording());
    await events.waitFor(isFinal(messageId));
    const ready = await fetch(`${sy.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ok: true, worker: WORKER_OFF, workersConnected: 1 });
    expect(await (await fetch(`${sy.baseUrl}/metrics`)).text()).toContain(
      'switchyard_switches_waiting{state="waiting"} 0',
    );
  });

  it('leaves Slack messages to the worker running the job: npm run worker reporters edit to the final state once', async () => {
    const secret = 'worker-off-signing-secret';
    const fake = await new FakeSlack({ channels: { C0PROD: 'incidents' } }).start();
    closers.push(() => fake.close());
    const sy = await app(
      {
        SWITCHYARD_WORKER: 'off',
        SLACK_BOT_TOKEN: fake.token,
        SLACK_SIGNING_SECRET: secret,
        SLACK_API_URL: fake.apiUrl,
      },
      [slackSurface],
    );
    // What `npm run worker` runs: the chat reporters built from the bot's env vars.
    await separateWorker(sy, chatReporters(sy.config, silentLogger));
    const queue = new SwitchQueue({ redisUrl: sy.redisUrl, queueName: sy.queueName, prefix: sy.namespace });
    closers.push(() => queue.close());

    const requests = new SlackRequests(`${sy.baseUrl}/slack/events`, secret, fake);
    expect((await requests.command({ command: '/rollback', text: 'production' })).status).toBe(200);
    const post = await fake.waitForCall('chat.postMessage', (c) => c.response.ok === true);
    const ts = String(post.response.ts);
    const confirm = buttonsOf(post.args.blocks as unknown[]).find((b) =>
      b.actionId.startsWith('sy1:confirm:'),
    );
    if (!confirm) throw new Error('no confirm button on the Slack confirmation');
    expect((await requests.click({ actionId: confirm.actionId, messageTs: ts })).status).toBe(200);

    const isFinalEdit = (c: { args: Record<string, unknown> }) =>
      c.args.ts === ts && String(c.args.text).includes('Traffic is on dep_3hd7xa');
    await fake.waitForCall('chat.update', isFinalEdit, 20_000);
    const jobs = await queue.queue.getJobs(['completed', 'failed', 'active', 'waiting', 'delayed']);
    expect(jobs).toHaveLength(1);
    const ended = await queue.waitForEnd(jobs[0]?.id ?? 'missing');
    expect(ended?.outcome).toBe('succeeded');
    // The worker's own reporter made the final edit once; the bot replica follows progress for its
    // console only, so it never edits the Slack message again for the same state.
    expect(fake.callsOf('chat.update').filter(isFinalEdit)).toHaveLength(1);
    expect(fake.message('C0PROD', ts)?.text).toContain('Traffic is on dep_3hd7xa');
  });

  it('refuses a value other than on or off, naming the variable', async () => {
    await expect(app({ SWITCHYARD_WORKER: 'maybe' })).rejects.toThrow(
      /SWITCHYARD_WORKER.*expected on or off/s,
    );
  });
});

describe('SWITCHYARD_WORKER=on (default)', () => {
  it('reports its worker as running; its console follows the switch its own worker runs', async () => {
    const sy = await app({});
    expect(sy.workerRunning).toBe(true);
    const ready = await fetch(`${sy.baseUrl}/readyz`);
    expect(await ready.json()).toMatchObject({ ok: true, worker: 'running' });

    const events = await consoleEvents(sy, 'alice');
    const { messageId } = await rollbackProduction(sy, 'alice');
    const final = await events.waitFor(isFinal(messageId));
    expect(final.message?.tone).toBe('success');
  });
});
