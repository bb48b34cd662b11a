/**
 * A click's view never paints over the progress of the job it made or joined (as on Slack and
 * Discord): a second Rollback click while the switch runs (a double click, a second tab, a colleague)
 * once replaced the message's live steps with "Confirmed… progress follows" until the worker's next
 * report. The console applies followed progress itself (ConsoleSurface.report), so the surface knows
 * which job's progress each message shows.
 *
 * And a confirm whose switch was queued but whose next Redis write (the job id on the plan) failed: it
 * is answered as queued, never with the HTTP server's 503 "nothing was done", and the clicked message
 * ends on the switch's final state (the real Flow, ChatService, queue and a worker on test/flow's
 * harness).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { registerConsole } from '../../handlers/console/routes.js';
import { ConsoleSurface } from '../../handlers/console/surface.js';
import { ChatService, type ClickReply } from '../../src/chat.js';
import { RefusalCode } from '../../src/domain/result.js';
import { HttpServer } from '../../src/http.js';
import type { PlanStore } from '../../src/plan-store.js';
import type { Reporter } from '../../src/progress.js';
import { jobIdForPlan } from '../../src/queue.js';
import { progressView, refusalView } from '../../src/views/model.js';
import { createHarness } from '../flow/harness.js';
import { RecordingReporter } from '../jobs/fixtures/harness.js';
import { progressFixture } from '../support/progress.js';
import { startTestWorker } from '../support/switch-worker.js';

const closers: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

const T0 = Date.UTC(2026, 10, 30, 12, 0, 0);
const clickView = refusalView({ code: RefusalCode.invalidInput, message: 'Confirmed: progress follows.' });

async function rig(reply: ClickReply) {
  const surface = new ConsoleSurface();
  const http = new HttpServer();
  const routes = registerConsole(http, {
    surface,
    chat: { click: async () => reply } as never,
    flow: {} as never,
    platform: { name: 'fake' } as never,
  });
  const port = await http.listen(0);
  closers.push(async () => {
    routes.close();
    await http.close(50);
  });
  const click = async (messageId: string) => {
    const res = await fetch(`http://127.0.0.1:${port}/console/api/action`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'bob', actionId: 'sy1:confirm:plan_0123abcd', messageId }),
    });
    expect(res.status).toBe(200);
  };
  return { surface, click };
}

function running(jobId: string) {
  return progressFixture({
    jobId,
    steps: [{ step: 'reactivating', state: 'running', startedAt: T0 }],
    updatedAt: T0,
  });
}

describe('console: a click on a message showing a job', () => {
  it("leaves that job's progress on the message", async () => {
    const { surface, click } = await rig({
      outcome: 'joined',
      jobId: 'sw_1',
      update: clickView,
    } as ClickReply);
    const ref = surface.postView(clickView);
    await surface.report(running('sw_1'), [ref]);
    expect(surface.get(ref.messageId)?.message?.kind).toBe('progress');
    await click(ref.messageId);
    expect(surface.get(ref.messageId)?.message?.kind).toBe('progress');
  });

  it('still shows the view on a message that shows no progress, or another job’s', async () => {
    const { surface, click } = await rig({
      outcome: 'joined',
      jobId: 'sw_2',
      update: clickView,
    } as ClickReply);
    const fresh = surface.postView(refusalView({ code: RefusalCode.invalidInput, message: 'before' }));
    await click(fresh.messageId);
    expect(JSON.stringify(surface.get(fresh.messageId)?.message)).toContain('Confirmed: progress follows.');
    const other = surface.postView(clickView);
    await surface.report(running('sw_1'), [other]);
    await click(other.messageId);
    expect(surface.get(other.messageId)?.message?.kind).not.toBe('progress');
  });
});

function ended(jobId: string) {
  return progressFixture({
    jobId,
    steps: [{ step: 'done', state: 'done', startedAt: T0 + 2000, endedAt: T0 + 2000 }],
    outcome: 'succeeded',
    updatedAt: T0 + 2000,
  });
}

describe('console: a click that finds its job ended', () => {
  const endedReply = (jobId: string): ClickReply => ({
    outcome: 'joined',
    jobId,
    update: progressView(ended(jobId)),
    ended: ended(jobId),
  });
  const shown = (surface: ConsoleSurface, id: string) => JSON.stringify(surface.get(id)?.message);
  const showsEnd = (surface: ConsoleSurface, id: string) =>
    shown(surface, id).includes('"summary":"Rolled back production to dep_b. Traffic is on dep_b."');

  it('shows the end on a message that showed a running state of that job', async () => {
    const { surface, click } = await rig(endedReply('sw_1'));
    const ref = surface.postView(clickView);
    await surface.report(running('sw_1'), [ref]);
    expect(showsEnd(surface, ref.messageId)).toBe(false);
    await click(ref.messageId);
    expect(showsEnd(surface, ref.messageId)).toBe(true);
  });

  it('keeps the end when a state the job published before it is delivered after the click', async () => {
    const { surface, click } = await rig(endedReply('sw_1'));
    const ref = surface.postView(clickView);
    await click(ref.messageId);
    const end = shown(surface, ref.messageId);
    expect(showsEnd(surface, ref.messageId)).toBe(true);
    // The job's running state, published before its end, reaches this process late.
    await surface.report(running('sw_1'), [ref]);
    expect(shown(surface, ref.messageId)).toBe(end);
  });
});

describe('console: a confirm whose switch was queued but whose job id could not be stored', () => {
  it('is answered as queued, never 503 "nothing was done", and its message ends on the switch’s end', async () => {
    const x = await createHarness();
    closers.push(() => x.close());
    // One Redis blip: the write of the queued job's id on the plan fails as a dropped connection does.
    const transition = x.plans.transition.bind(x.plans);
    let failed = 0;
    x.plans.transition = (...args: Parameters<PlanStore['transition']>) => {
      if (args[3]?.jobId !== undefined && failed === 0) {
        failed += 1;
        return Promise.reject(new Error('Connection is closed.'));
      }
      return transition(...args);
    };
    const surface = new ConsoleSurface({ clock: x.clock });
    const http = new HttpServer();
    const chat = new ChatService({ flow: x.flow, clock: x.clock });
    const routes = registerConsole(http, {
      surface,
      chat,
      flow: x.flow,
      platform: x.platform,
      clock: x.clock,
    });
    const port = await http.listen(0);
    closers.push(async () => {
      routes.close();
      await http.close(50);
    });
    // The switch worker reports to the console (and to a recorder the test waits on).
    const recorder = new RecordingReporter();
    const reporter: Reporter = {
      async report(progress, messages) {
        await surface.report(progress, messages);
        await recorder.report(progress, messages);
      },
    };
    await startTestWorker(
      { add: (close) => closers.push(close) },
      { queueName: x.switchQueue.queueName, platform: x.platform, reporter },
    );
    const api = async (path: string, body: unknown) => {
      const res = await fetch(`http://127.0.0.1:${port}/console/api/${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    };

    const asked = await api('command', { user: 'alice', text: '/rollback production' });
    expect(asked.status).toBe(200);
    const messageId = String(asked.json.messageId);
    const confirm = surface
      .get(messageId)
      ?.message?.buttons.find((b) => b.actionId.startsWith('sy1:confirm:'));
    if (!confirm) throw new Error('no confirm button');
    const planId = confirm.actionId.split(':').at(-1) ?? '';
    const clicked = await api('action', { user: 'alice', actionId: confirm.actionId, messageId });
    expect(failed).toBe(1);
    expect(clicked).toEqual({
      status: 200,
      json: { ok: true, outcome: 'enqueued', jobId: jobIdForPlan(planId) },
    });
    // Nothing only the clicker sees (no refusal, no fault).
    expect(surface.timeline('alice').filter((e) => e.visibleTo !== undefined)).toEqual([]);

    // The job the click queued runs to its end (the local platform's operation moves on the clock).
    let ended = false;
    const done = recorder
      .waitFor((p) => p.planId === planId && p.outcome !== undefined)
      .finally(() => {
        ended = true;
      });
    while (!ended) {
      if (x.clock.pending > 0) await x.clock.advance(1_000);
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const end = await done;
    expect(end.outcome).toBe('succeeded');
    expect((await x.platform.snapshot('production')).environment.currentDeploymentId).toBe(end.targetId);
    expect(JSON.stringify(surface.get(messageId)?.message)).toContain(`Traffic is on ${end.targetId}`);
  });
});
