/**
 * A console confirmation that joins a switch which ends as the message is attached: the console edits
 * its messages from the progress it follows, reading the job's messages when each state arrives, so a
 * message attached after the final state was followed would stay "progress follows". The console
 * routes (handlers/console/routes.ts) on their own HTTP server, over the real ChatService, Flow,
 * PlanStore and queue (test/flow/harness.ts); the queue reports the job ended from the moment the
 * message is handed to it (the worker read the job's messages for the last time just before).
 *
 * And a click on a confirmation its plan does not list (its attach after the post failed on a Redis
 * blip, or the plan already followed MAX_MESSAGES_PER_PLAN messages): the click makes the message
 * follow the switch, so the job's progress edits it; a Cancel that finds the switch running too.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { registerConsole } from '../../handlers/console/routes.js';
import { ConsoleSurface } from '../../handlers/console/surface.js';
import { ChatService } from '../../src/chat.js';
import { textView } from '../../src/chat-sinks.js';
import { HttpServer } from '../../src/http.js';
import { MAX_MESSAGES_PER_PLAN } from '../../src/plan-store.js';
import type { Progress, Reporter } from '../../src/progress.js';
import { jobIdForPlan } from '../../src/queue.js';
import { alice, createHarness, type Harness } from '../flow/harness.js';
import { RecordingReporter } from '../jobs/fixtures/harness.js';
import { progressFixture } from '../support/progress.js';
import { startTestWorker } from '../support/switch-worker.js';

const closers: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

describe('console: a /rollback that joins a running switch', () => {
  it('shows the switch’s end when the switch ended as its message was attached', async () => {
    const ended = new Set<string>();
    let endOnAttach = false;
    const x: Harness = await createHarness({
      queue: (real) => ({
        enqueue: (data) => real.enqueue(data),
        addMessages: async (jobId, refs) => {
          if (endOnAttach) ended.add(jobId);
          return real.addMessages(jobId, refs);
        },
        progress: async (jobId): Promise<Progress | undefined> => {
          const p = await real.progress(jobId);
          return p && ended.has(jobId)
            ? {
                ...p,
                steps: [{ step: 'done', state: 'done', startedAt: 0, endedAt: 0 }],
                outcome: 'succeeded',
              }
            : p;
        },
      }),
    });
    closers.push(() => x.close());
    const surface = new ConsoleSurface({ clock: x.clock });
    const http = new HttpServer();
    const routes = registerConsole(http, {
      surface,
      chat: new ChatService({ flow: x.flow, clock: x.clock }),
      flow: x.flow,
      platform: x.platform,
      clock: x.clock,
    });
    const port = await http.listen(0);
    closers.push(async () => {
      routes.close();
      await http.close(50);
    });

    // Alice's rollback is queued (its job runs elsewhere).
    const planned = await x.flow.plan(alice, 'rollback', 'production');
    if (!planned.ok) throw new Error(planned.refusal.message);
    expect((await x.flow.confirm(alice, planned.plan.id)).status).toBe('enqueued');

    // Bob types the same /rollback in the console: it joins the switch, which ends as it is attached.
    endOnAttach = true;
    const res = await fetch(`http://127.0.0.1:${port}/console/api/command`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'bob', text: '/rollback production' }),
    });
    expect(res.status).toBe(200);
    const { messageId } = (await res.json()) as { messageId: string };
    expect(ended.size).toBe(1);
    const entry = surface.get(messageId);
    expect(entry?.editedAt).toBeDefined();
    expect(JSON.stringify(entry?.message)).toContain(`Traffic is on ${planned.plan.target.id}`);
  });
});

/** The console routes over the harness' Flow, on their own HTTP server; `click` posts a button click. */
async function consoleOf(x: Harness) {
  const surface = new ConsoleSurface({ clock: x.clock });
  const chat = new ChatService({ flow: x.flow, clock: x.clock });
  const http = new HttpServer();
  const routes = registerConsole(http, { surface, chat, flow: x.flow, platform: x.platform, clock: x.clock });
  const port = await http.listen(0);
  closers.push(async () => {
    routes.close();
    await http.close(50);
  });
  const click = async (user: string, actionId: string, messageId: string) => {
    const res = await fetch(`http://127.0.0.1:${port}/console/api/action`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user, actionId, messageId }),
    });
    expect(res.status).toBe(200);
    return (await res.json()) as { outcome: string; jobId?: string };
  };
  return { surface, chat, click };
}

describe('console: a click on a confirmation its plan does not list', () => {
  it('the clicked message follows the switch the click queued', async () => {
    const x = await createHarness();
    closers.push(() => x.close());
    const { surface, chat, click } = await consoleOf(x);
    const planned = await x.flow.plan(alice, 'rollback', 'production');
    if (!planned.ok) throw new Error(planned.refusal.message);
    // Posted, but its attach failed: the plan lists no message.
    const ref = surface.postView(chat.confirmation(planned.record));
    expect((await x.flow.get(planned.plan.id))?.messages).toEqual([]);

    const out = await click('bob', `sy1:confirm:${planned.plan.id}`, ref.messageId);
    expect(out.outcome).toBe('enqueued');
    expect(out.jobId).toBe(jobIdForPlan(planned.plan.id));
    // The job's progress goes to the clicked message (what the worker's reporter is given).
    expect(await x.switchQueue.messages(out.jobId ?? '')).toContainEqual(ref);
    expect((await x.flow.get(planned.plan.id))?.messages).toEqual([ref]);
  });

  it('a confirm awaiting approval: the clicked message follows the job the approval on another message makes', async () => {
    const x = await createHarness({ environments: { production: { twoPersonRule: true } } });
    closers.push(() => x.close());
    const { surface, chat, click } = await consoleOf(x);
    const planned = await x.flow.plan(alice, 'rollback', 'production');
    if (!planned.ok) throw new Error(planned.refusal.message);
    const unlisted = surface.postView(chat.confirmation(planned.record));
    const listed = surface.postView(chat.confirmation(planned.record));
    await chat.attach(planned.plan.id, listed);

    // Alice confirms on the unlisted message; Bob approves on the other one.
    expect((await click('alice', `sy1:confirm:${planned.plan.id}`, unlisted.messageId)).outcome).toBe(
      'awaiting_approval',
    );
    const approved = await click('bob', `sy1:approve:${planned.plan.id}`, listed.messageId);
    expect(approved.outcome).toBe('enqueued');
    const messages = await x.switchQueue.messages(approved.jobId ?? '');
    expect(messages).toContainEqual(unlisted);
    expect(messages).toContainEqual(listed);
  });
});

describe('console: a click on a confirmation posted after its plan followed MAX_MESSAGES_PER_PLAN messages', () => {
  /**
   * A plan for production's rollback following MAX_MESSAGES_PER_PLAN console confirmations (attached
   * through Flow), one more posted that it refuses to follow, and a worker reporting to the console.
   */
  async function fullPlan() {
    const x = await createHarness();
    closers.push(() => x.close());
    const { surface, chat, click } = await consoleOf(x);
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
    const planned = await x.flow.plan(alice, 'rollback', 'production');
    if (!planned.ok) throw new Error(planned.refusal.message);
    const planId = planned.plan.id;
    const followed = [];
    for (let i = 0; i < MAX_MESSAGES_PER_PLAN; i++) {
      const ref = surface.postView(chat.confirmation(planned.record));
      expect((await x.flow.attach(planId, ref)).attached).toBe(true);
      followed.push(ref);
    }
    const late = surface.postView(chat.confirmation(planned.record));
    expect((await x.flow.attach(planId, late)).attached).toBe(false);
    expect((await x.flow.get(planId))?.messages).toHaveLength(MAX_MESSAGES_PER_PLAN);

    /**
     * Drives the local platform's clock until the plan's job has reported its end to `late`: the worker
     * reports its end to the messages it knew first, then to those attached since (read again after
     * the end was written), so the first final report may not include a message a click attached.
     */
    const end = async () => {
      let ended = false;
      const done = recorder
        .waitForReport(
          (r) =>
            r.progress.planId === planId &&
            r.progress.outcome !== undefined &&
            r.messages.some((m) => m.messageId === late.messageId),
        )
        .finally(() => {
          ended = true;
        });
      while (!ended) {
        if (x.clock.pending > 0) await x.clock.advance(1_000);
        else await new Promise<void>((resolve) => setImmediate(resolve));
      }
      return done;
    };
    return { x, surface, click, planId, followed, late, end, recorder };
  }

  it('a Rollback click on it queues the switch and the message ends on the switch’s final state', async () => {
    const { x, surface, click, planId, late, end } = await fullPlan();
    const out = await click('bob', `sy1:confirm:${planId}`, late.messageId);
    expect(out).toEqual({ ok: true, outcome: 'enqueued', jobId: jobIdForPlan(planId) });
    expect(await x.switchQueue.messages(out.jobId ?? '')).toContainEqual(late);

    const final = await end();
    expect(final.outcome).toBe('succeeded');
    expect(JSON.stringify(surface.get(late.messageId)?.message)).toContain(`Traffic is on ${final.targetId}`);
  });

  it('a click on it while the switch runs shows the step the switch is on at once, not "Confirmed…" until its next step', async () => {
    const { surface, click, planId, followed, late, end, recorder } = await fullPlan();
    const first = followed[0];
    if (!first) throw new Error('no message');
    // Alice confirms on a listed message: the switch parks reactivating the standby target, reported to
    // the messages the plan follows only.
    const queued = await click('alice', `sy1:confirm:${planId}`, first.messageId);
    expect(queued.outcome).toBe('enqueued');
    await recorder.waitFor(
      (p) =>
        p.planId === planId && p.steps.some((st) => st.step === 'reactivating' && st.state === 'running'),
    );

    // Bob confirms on the message the plan does not list: it joins, and shows where the switch stands.
    expect(await click('bob', `sy1:confirm:${planId}`, late.messageId)).toEqual({
      ok: true,
      outcome: 'joined',
      jobId: queued.jobId,
    });
    const steps = (id: string) =>
      (surface.get(id)?.message?.blocks ?? []).flatMap((b) => (b.type === 'steps' ? b.steps : []));
    expect(steps(late.messageId)).toContainEqual(
      expect.objectContaining({ label: 'Reactivating standby target', state: 'running' }),
    );
    expect(surface.get(late.messageId)?.message?.buttons ?? []).toEqual([]);

    const final = await end();
    expect(final.outcome).toBe('succeeded');
    expect(JSON.stringify(surface.get(late.messageId)?.message)).toContain(`Traffic is on ${final.targetId}`);
  });

  it('a Cancel click on it while the switch is queued: too late, and the message follows the switch to its end', async () => {
    const { x, surface, click, planId, followed, late, end } = await fullPlan();
    const first = followed[0];
    if (!first) throw new Error('no message');
    const queued = await click('alice', `sy1:confirm:${planId}`, first.messageId);
    expect(queued.outcome).toBe('enqueued');

    const out = await click('bob', `sy1:cancel:${planId}`, late.messageId);
    expect(out).toEqual({ ok: true, outcome: 'running', jobId: queued.jobId });
    // Bob is told it is too late; the message stops offering the plan.
    expect(JSON.stringify(surface.timeline('bob').filter((e) => e.visibleTo === 'bob'))).toContain(
      'Too late to cancel',
    );
    expect(surface.get(late.messageId)?.message?.buttons ?? []).toEqual([]);
    expect(await x.switchQueue.messages(queued.jobId ?? '')).toContainEqual(late);

    const final = await end();
    expect(final.outcome).toBe('succeeded');
    expect(JSON.stringify(surface.get(late.messageId)?.message)).toContain(`Traffic is on ${final.targetId}`);
    expect(JSON.stringify(surface.get(first.messageId)?.message)).toContain(
      `Traffic is on ${final.targetId}`,
    );
  });
});

describe('console: the progress a message shows', () => {
  it('is never replaced by an older state of the same job (one still being delivered after a click showed a newer one)', async () => {
    const surface = new ConsoleSurface();
    const ref = surface.postView(textView('Roll back production?', []));
    const validating = progressFixture({
      steps: [
        { step: 'queued', state: 'done', startedAt: 1, endedAt: 2 },
        { step: 'validating', state: 'running', startedAt: 2 },
      ],
      updatedAt: 2,
    });
    const reactivating = progressFixture({
      steps: [
        { step: 'queued', state: 'done', startedAt: 1, endedAt: 2 },
        { step: 'validating', state: 'done', startedAt: 2, endedAt: 3 },
        { step: 'reactivating', state: 'running', startedAt: 3 },
      ],
      updatedAt: 3,
    });
    const running = () =>
      (surface.get(ref.messageId)?.message?.blocks ?? [])
        .flatMap((b) => (b.type === 'steps' ? b.steps : []))
        .filter((st) => st.state === 'running')
        .map((st) => st.step);
    await surface.report(reactivating, [ref]);
    await surface.report(validating, [ref]);
    expect(running()).toEqual(['reactivating']);
    // The job's end always applies, whatever its stamp (another worker's clock may have made it).
    await surface.report(progressFixture({ steps: reactivating.steps, outcome: 'failed', updatedAt: 1 }), [
      ref,
    ]);
    expect(surface.get(ref.messageId)?.message?.title).toBe('Rollback of production to dep_b failed');
    // Another job's state (a later switch of the same message's plan) is shown whatever its stamp.
    await surface.report({ ...validating, jobId: 'sw_2', updatedAt: 0 }, [ref]);
    expect(running()).toEqual(['validating']);
  });

  it("a queued state the worker did not report yields to the worker's states, even on a clock behind the queuing process's", async () => {
    const surface = new ConsoleSurface();
    const ref = surface.postView(textView('Roll back production to dep_b?', []));
    // A click's caught-up progress of a job not taken yet: stamped by the bot that queued it (10 s).
    const queued = progressFixture({
      steps: [{ step: 'queued', state: 'running', startedAt: 10_000 }],
      updatedAt: 10_000,
    });
    await surface.report(queued, [ref]);
    // The worker, on another host 1 s behind, takes the job: its first state is stamped 9.2 s.
    const reactivating = progressFixture({
      steps: [
        { step: 'queued', state: 'done', startedAt: 9_100, endedAt: 9_150 },
        { step: 'validating', state: 'done', startedAt: 9_150, endedAt: 9_180 },
        { step: 'reactivating', state: 'running', startedAt: 9_200, detail: 'warming dep_b' },
      ],
      updatedAt: 9_200,
    });
    await surface.report(reactivating, [ref]);
    expect(JSON.stringify(surface.get(ref.messageId)?.message)).toContain('warming dep_b');
  });
});
